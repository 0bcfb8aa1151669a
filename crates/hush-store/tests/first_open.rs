//! The first stores a process opens, opened by several threads at once, all have the whole
//! SQLCipher library: `export_backup` works on every one of them.
//!
//! SQLite marks itself initialised before SQLCipher registers its `sqlcipher_export` function,
//! so a connection opened by a second thread in that window lacked the function and a backup
//! failed with "no such function: sqlcipher_export" (seen once in a full test run). The race
//! only exists at the first open of a process, so the test runs itself as fresh processes.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};

use hush_proto::LocalDevice;
use hush_store::{SqliteStore, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;

const CHILD: &str = "HUSH_FIRST_OPEN_CHILD";
const THREADS: usize = 8;
const PROCESSES: usize = 12;

/// What one fresh process does: `THREADS` threads open their first store at the same moment
/// and export a backup of it.
fn child(dir: &Path) {
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let barrier = barrier.clone();
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                let path = dir.join(format!("store-{i}.db"));
                barrier.wait();
                let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
                let device =
                    LocalDevice::generate(1, 1, 0, &mut StdRng::seed_from_u64(i as u64)).unwrap();
                store.create_account("a@example.org", &device).unwrap();
                store
                    .export_backup(dir.join(format!("backup-{i}")), "pass")
                    .map_err(|e| format!("thread {i}: {e}"))
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .filter_map(|w| w.join().unwrap().err())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn first_stores_opened_at_once_can_all_export_backups() {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("first-open-{}", std::process::id()));
    if let Ok(dir) = std::env::var(CHILD) {
        child(Path::new(&dir));
        return;
    }
    let _ = std::fs::remove_dir_all(&root);
    let me = std::env::current_exe().unwrap();
    for run in 0..PROCESSES {
        let dir = root.join(run.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(&me)
            .args([
                "--exact",
                "first_stores_opened_at_once_can_all_export_backups",
                "--nocapture",
            ])
            .env(CHILD, &dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "process {run} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
