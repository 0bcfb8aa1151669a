//! Running the `hush` binary from the tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::Prosody;

/// Runs `hush --home HOME ARGS…`, with the test password in `HUSH_TEST_PW`.
pub fn hush(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hush"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("HUSH_TEST_PW", "pw")
        .output()
        .unwrap()
}

/// Stdout of a run that must have succeeded (the failure shows both streams).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "hush failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One JSON value per line.
pub fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// An empty directory for this test under cargo's scratch space.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An account set up with `hush init` in its own home directory.
pub struct User {
    pub home: PathBuf,
    pub jid: String,
}

/// `hush init` for `user` (registered on `server` first when `register`), under `dir`.
pub fn init(server: &Prosody, dir: &Path, user: &str, register: bool) -> User {
    let jid = if register {
        server.register(user, "pw")
    } else {
        format!("{user}@localhost")
    };
    let home = dir.join(format!("{user}-{}", dir.read_dir().unwrap().count()));
    let addr = server.address();
    ok(hush(
        &home,
        &[
            "init",
            "--jid",
            &jid,
            "--server",
            &addr,
            "--insecure-loopback",
            "--password-env",
            "HUSH_TEST_PW",
        ],
    ));
    User { home, jid }
}
