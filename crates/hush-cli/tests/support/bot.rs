//! The independent python OMEMO client (`interop/bot.py`: slixmpp + slixmpp-omemo +
//! python-omemo) as a process driven over JSON lines, for the interop tests. Its stdout and
//! stderr are read by threads, so a wait for an event is bounded by a deadline, never by a
//! sleep. What a test asks of it (a direct message, a room) is built on [`Bot::command`] and
//! [`Bot::next_of`] in the test itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// How long the bot gets for any one step (login and publishing, joining, one decryption,
/// one send).
pub const BOT_STEP: Duration = Duration::from_secs(60);

/// The workspace's root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the interop venv (`HUSH_PYTHON`, or `.venv/` as `./scripts/test` creates it);
/// without it the test fails with instructions — it never skips.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HUSH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the interop peers are not installed: run ./scripts/test (it creates .venv with slixmpp, \
         slixmpp-omemo and python-omemo), or point HUSH_PYTHON at a Python with \
         interop/requirements.txt installed"
    );
    venv
}

/// The bot process.
pub struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    /// The namespace it speaks (`omemo2` or `legacy`).
    pub ns: &'static str,
    /// Its account.
    pub jid: String,
    /// Its device id.
    pub device: u64,
    /// Its fingerprint, as python-omemo shows it.
    pub fingerprint: String,
    /// Its identity key as python-omemo holds it (the Ed25519 form), in hex.
    pub identity_key: String,
    /// Every event seen so far, for failure messages.
    seen: Vec<Value>,
}

impl Bot {
    /// Starts the bot for `jid` on the server at `address`, speaking `ns`, its store in
    /// `dir`, and waits until it has published its keys.
    pub fn start(address: &str, dir: &Path, jid: &str, password: &str, ns: &'static str) -> Self {
        Self::start_with(address, dir, jid, password, ns, &[])
    }

    /// [`Self::start`] with more of `bot.py`'s options (`--unlisted`).
    pub fn start_with(
        address: &str,
        dir: &Path,
        jid: &str,
        password: &str,
        ns: &'static str,
        options: &[&str],
    ) -> Self {
        let mut child = Command::new(python())
            .arg(workspace().join("interop/bot.py"))
            .args(["--jid", jid, "--password", password])
            .args(["--server", address, "--ns", ns])
            .args(options)
            .arg("--store")
            .arg(dir.join(format!("bot-{ns}.json")))
            // The test servers' HTTPS upload service has a certificate from the test CA.
            .env("SSL_CERT_FILE", hush_test_support::prosody::test_ca_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start interop/bot.py");
        let (tx, events) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                // A line that is not JSON stays a string, and fails the test in `next`.
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut bot = Self {
            stdin: child.stdin.take(),
            child,
            events,
            stderr,
            ns,
            jid: jid.to_owned(),
            device: 0,
            fingerprint: String::new(),
            identity_key: String::new(),
            seen: Vec::new(),
        };
        let ready = bot.next("ready");
        assert_eq!(ready["ready"], true, "{}", bot.report());
        assert_eq!(ready["ns"], ns, "{}", bot.report());
        bot.device = ready["device"].as_u64().unwrap();
        bot.fingerprint = ready["fingerprint"].as_str().unwrap().to_owned();
        bot.identity_key = ready["identity_key"].as_str().unwrap().to_owned();
        bot
    }

    /// What the bot said and logged so far, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "bot events so far: {:?}\nbot stderr:\n{}",
            self.seen,
            self.stderr.lock().unwrap()
        )
    }

    /// The next event within [`BOT_STEP`]; an error or a line that is not a JSON object fails.
    pub fn next(&mut self, waiting_for: &str) -> Value {
        let v = match self.events.recv_timeout(BOT_STEP) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!(
                "no {waiting_for} from the bot within {BOT_STEP:?}; {}",
                self.report()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "the bot exited ({:?}) while we waited for {waiting_for}; {}",
                self.child.wait(),
                self.report()
            ),
        };
        self.seen.push(v.clone());
        assert!(
            v.is_object() && v.get("error").is_none(),
            "the bot reported {v} while we waited for {waiting_for}; {}",
            self.report()
        );
        v
    }

    /// The next event of `kind`; only empty OMEMO messages (key-exchange completion,
    /// heartbeats) may come before it.
    pub fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next(kind);
            if v[kind] == true {
                return v;
            }
            assert_eq!(
                v["empty"],
                true,
                "expected {kind}, the bot said {v}; {}",
                self.report()
            );
        }
    }

    /// Writes one command line.
    pub fn command(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// `{"quit": true}`: the bot says goodbye, exits 0, and logged no error on the way.
    pub fn quit(mut self) {
        self.command(json!({"quit": true}));
        self.next_of("bye");
        drop(self.stdin.take());
        // Its stdout closes as it exits; then waiting for it is bounded.
        match self.events.recv_timeout(BOT_STEP) {
            Err(RecvTimeoutError::Disconnected) => {}
            other => panic!(
                "the bot did not exit after bye: {other:?}; {}",
                self.report()
            ),
        }
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "bot exited with {status}; {}",
            self.report()
        );
        // Failures inside slixmpp's or python-omemo's own tasks only show up in the log.
        let log = self.stderr.lock().unwrap().clone();
        assert!(
            !log.contains("Traceback") && !log.contains(" ERROR "),
            "the bot logged errors:\n{log}"
        );
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        // Only still running if the test failed before `quit`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
