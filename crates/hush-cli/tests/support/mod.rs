//! Running the `hush` binary from the tests.

#![allow(dead_code)]

pub mod bot;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use hush_test_support::prosody::Prosody;

/// The store passphrase of every home the tests make with [`init`].
pub const PASSPHRASE: &str = "correct horse battery staple";

/// `hush --home HOME`, with the test password in `HUSH_TEST_PW`, the store passphrase in
/// `HUSH_PASSPHRASE` and the test CA trusted (`SSL_CERT_FILE`, for the test servers' HTTPS
/// upload service); standard input is empty, so nothing can be asked on a terminal.
pub fn hush_command(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.arg("--home")
        .arg(home)
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", PASSPHRASE)
        .env("SSL_CERT_FILE", hush_test_support::prosody::test_ca_file())
        .stdin(std::process::Stdio::null());
    c
}

/// Runs `hush --home HOME ARGS…` (see [`hush_command`]).
pub fn hush(home: &Path, args: &[&str]) -> Output {
    hush_command(home).args(args).output().unwrap()
}

/// Runs `hush --home HOME ARGS…` with `input` on its standard input.
pub fn hush_with_input(home: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = hush_command(home)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
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

/// The one JSON object `out` holds (a command's `--json` report of one thing).
pub fn one(out: String) -> Value {
    let mut lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    lines.remove(0)
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

/// A `hush` that runs until stopped (`agent`, `recv --follow`), its output read line by line
/// on threads, so that a silent process fails the test in time instead of hanging it.
pub struct Running {
    pub child: std::process::Child,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// How long a running `hush` gets to print the next line a test waits for.
pub const LINE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

impl Running {
    /// Starts `hush --home HOME ARGS…` (see [`hush_command`]).
    pub fn start(home: &Path, args: &[&str]) -> Self {
        Self::start_with(home, args, &[])
    }

    /// [`Self::start`] with more environment variables.
    pub fn start_with(home: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        Self::spawn(hush_command(home).envs(env.iter().copied()).args(args))
    }

    /// [`Self::start`] with standard input ours to write to (see [`Self::answer`]): for a
    /// command that asks (`hush sas`).
    pub fn interactive(home: &Path, args: &[&str]) -> Self {
        Self::spawn(
            hush_command(home)
                .args(args)
                .stdin(std::process::Stdio::piped()),
        )
    }

    fn spawn(command: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = |stream: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The next line on standard output.
    pub fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(LINE_PATIENCE)
            .unwrap_or_else(|_| panic!("hush printed nothing within {LINE_PATIENCE:?}"))
    }

    /// Waits for a line on standard error containing `text`, and returns it.
    pub fn wait_note(&self, text: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(LINE_PATIENCE).unwrap_or_else(|_| {
                panic!("hush said nothing with {text:?} within {LINE_PATIENCE:?}")
            });
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends `signal` (a `kill` name: TERM, INT, KILL) and waits for the process to end.
    pub fn stop(mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    /// Writes `line` to its standard input (see [`Self::interactive`]).
    pub fn answer(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("started interactive");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes its standard input, waits for it to end, and gives its exit code and what it
    /// said on standard error meanwhile: every line, up to the end of the stream (the thread
    /// reading it may still be handing over its last lines when the process has ended; taking
    /// only those already handed over lost the last one in a CI run).
    pub fn finish(mut self) -> (Option<i32>, Vec<String>) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        let mut said = Vec::new();
        // Ends when the reader reaches the end of the stream (or, bounded, if something else
        // kept the pipe open).
        while let Ok(line) = self.stderr.recv_timeout(LINE_PATIENCE) {
            said.push(line);
        }
        (status.code(), said)
    }

    /// The lines printed on standard output and not read yet.
    pub fn rest(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }
}

impl Drop for Running {
    /// A test that failed before stopping its `hush` does not leave it running (an agent
    /// would run on forever).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `check` gives `Ok`, asking again every 200 ms — for what another process does
/// on its own time (an agent answering a push), which nothing announces — and gives its value;
/// fails the test with the last `Err` (what was seen instead) after `patience`.
pub fn eventually<T>(
    patience: std::time::Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + patience;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "not within {patience:?}: {seen}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
