//! What the private servers of the tests share: finding programs, whether we run as root, and
//! where server data lives.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// Whether the tests run as root (some need it to act as another user, or to start servers
/// that drop to their own user).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Where the servers keep their data: in memory (`/dev/shm`) when it has room, else in the
/// system's temporary directory (a library has no `CARGO_TARGET_TMPDIR`: cargo sets that only
/// for integration tests and benches). Prosody's SQLite storage syncs every archived message
/// to disk (no WAL), which on an ordinary disk costs milliseconds per message and would
/// dominate every timing.
pub(crate) fn data_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let room_kib = Command::new("df")
        .args(["-k", "--output=avail"])
        .arg(shm)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    if shm.is_dir() && room_kib >= 512 * 1024 {
        shm.join("hush-tests")
    } else {
        std::env::temp_dir().join("hush-tests")
    }
}

/// Every byte of every file under `dir`, concatenated (what a server stored on disk).
pub(crate) fn all_bytes(dir: &Path) -> Vec<u8> {
    fn walk(p: &Path, out: &mut Vec<u8>) {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(b) = std::fs::read(&path) {
                    out.extend(b);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// Polls until every one of `ports` on 127.0.0.1 accepts connections, for at most `within`,
/// failing with `log()` when the server `name` exits or takes longer.
pub(crate) fn wait_listening(
    child: &mut Child,
    ports: &[u16],
    within: Duration,
    name: &str,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{name} exited ({status}): {}", log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen within {} s: {}",
                within.as_secs(),
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
