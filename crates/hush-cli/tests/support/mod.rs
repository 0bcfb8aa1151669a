//! Running the `hush` binary from the tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use hush_test_support::prosody::Prosody;

/// The store passphrase of every home the tests make with [`init`].
pub const PASSPHRASE: &str = "correct horse battery staple";

/// `hush --home HOME`, with the test password in `HUSH_TEST_PW` and the store passphrase in
/// `HUSH_PASSPHRASE`; standard input is empty, so nothing can be asked on a terminal.
pub fn hush_command(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.arg("--home")
        .arg(home)
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", PASSPHRASE)
        .stdin(std::process::Stdio::null());
    c
}

/// Runs `hush --home HOME ARGS…` (see [`hush_command`]).
pub fn hush(home: &Path, args: &[&str]) -> Output {
    hush_command(home).args(args).output().unwrap()
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

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
