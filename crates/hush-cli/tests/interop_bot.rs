//! Interop over a real XMPP server with an independent client: the `hush` binary and a bot built
//! on slixmpp + slixmpp-omemo + python-omemo (`interop/bot.py`) exchange messages both ways
//! through a private Prosody, in OMEMO:2 and in legacy OMEMO — and once more through
//! `hush-devserver`, which shows that server serves a standard client too.
//!
//! The bot announces its device in one namespace only, so Hush has to pick that one. It runs
//! from the interop venv (`HUSH_PYTHON`, or `.venv/` as `./scripts/test` creates it); without it
//! this test fails with instructions — it never skips.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_devserver::DevServer;
use hush_test_support::prosody::Prosody;
use serde_json::{json, Value};
use support::*;

/// How long the bot gets for any one step (login and publishing, one decryption, one send).
const BOT_STEP: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
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

/// The server both clients use.
trait Server {
    fn address(&self) -> String;
    fn register(&self, user: &str, password: &str) -> String;
    /// Everything the server stored (archives, offline messages, PEP), as bytes.
    fn stored_bytes(&self) -> Vec<u8>;
}

impl Server for Prosody {
    fn address(&self) -> String {
        Prosody::address(self)
    }
    fn register(&self, user: &str, password: &str) -> String {
        Prosody::register(self, user, password)
    }
    fn stored_bytes(&self) -> Vec<u8> {
        Prosody::stored_bytes(self)
    }
}

/// `hush-devserver` on its own runtime, so it serves while the test thread waits on processes.
struct Embedded {
    server: DevServer,
    users: Mutex<Vec<String>>,
    _runtime: tokio::runtime::Runtime,
}

impl Embedded {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime
            .block_on(DevServer::start(Default::default()))
            .unwrap();
        Self {
            server,
            users: Mutex::default(),
            _runtime: runtime,
        }
    }
}

impl Server for Embedded {
    fn address(&self) -> String {
        self.server.address().to_string()
    }
    fn register(&self, user: &str, password: &str) -> String {
        self.users.lock().unwrap().push(user.to_owned());
        self.server.register(user, password).unwrap()
    }
    fn stored_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for user in self.users.lock().unwrap().iter() {
            for a in self.server.archive(user) {
                out.extend(a.stanza.into_bytes());
            }
            for o in self.server.offline(user) {
                out.extend(o.into_bytes());
            }
            for node in [
                "urn:xmpp:omemo:2:bundles",
                "eu.siacs.conversations.axolotl.devicelist",
            ] {
                for item in self.server.pep_items(user, node) {
                    out.extend(String::from(&item).into_bytes());
                }
            }
        }
        out
    }
}

/// A Hush account, set up with `hush init`.
struct User {
    home: PathBuf,
    jid: String,
    device: u64,
    fingerprint: String,
}

fn init(server: &dyn Server, dir: &Path, user: &str) -> User {
    let jid = server.register(user, "pw");
    let home = dir.join(user);
    let addr = server.address();
    let out = ok(hush(
        &home,
        &[
            "--json",
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
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    User {
        home,
        jid,
        device: v["device"].as_u64().unwrap(),
        fingerprint: v["fingerprint"].as_str().unwrap().to_owned(),
    }
}

/// `hush --json send`, checked: it used `ns` and encrypted for exactly `device` of `to`.
fn hush_send(u: &User, to: &str, device: u64, body: &str, ns: &str) {
    let sent: Value =
        serde_json::from_str(&ok(hush(&u.home, &["--json", "send", to, body]))).unwrap();
    assert_eq!(sent["sent"], true, "{sent}");
    assert_eq!(sent["ns"], ns, "Hush chose the wrong namespace: {sent}");
    assert_eq!(
        sent["devices"],
        json!([{"jid": to, "device": device}]),
        "{sent}"
    );
}

/// `hush --json recv --count N`: archive catch-up first, then live messages.
fn hush_recv(u: &User, count: usize) -> Vec<Value> {
    json_lines(&ok(hush(
        &u.home,
        &[
            "--json",
            "recv",
            "--count",
            &count.to_string(),
            "--timeout",
            "30",
        ],
    )))
}

/// The bot process, driven over JSON lines. Its stdout and stderr are read by threads, so a
/// wait for an event is bounded by a deadline, never by a sleep.
struct Bot {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    ns: &'static str,
    device: u64,
    fingerprint: String,
    /// Every event seen so far, for failure messages.
    seen: Vec<Value>,
}

impl Bot {
    fn start(server: &dyn Server, dir: &Path, jid: &str, password: &str, ns: &'static str) -> Self {
        let mut child = Command::new(python())
            .arg(workspace().join("interop/bot.py"))
            .args(["--jid", jid, "--password", password])
            .args(["--server", &server.address(), "--ns", ns])
            .arg("--store")
            .arg(dir.join(format!("bot-{ns}.json")))
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
                // Anything that is not JSON is kept as a string and fails the test below.
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
            device: 0,
            fingerprint: String::new(),
            seen: Vec::new(),
        };
        let ready = bot.next("ready");
        assert_eq!(ready["ready"], true, "{}", bot.report());
        assert_eq!(ready["ns"], ns, "{}", bot.report());
        bot.device = ready["device"].as_u64().unwrap();
        bot.fingerprint = ready["fingerprint"].as_str().unwrap().to_owned();
        bot
    }

    fn report(&self) -> String {
        format!(
            "bot events so far: {:?}\nbot stderr:\n{}",
            self.seen,
            self.stderr.lock().unwrap()
        )
    }

    /// The next event (errors and protocol violations fail the test), within `BOT_STEP`.
    fn next(&mut self, waiting_for: &str) -> Value {
        let v = match self.events.recv_timeout(BOT_STEP) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "no {waiting_for} from the bot within {BOT_STEP:?}; {}",
                    self.report()
                )
            }
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

    /// Waits for the next event of `kind`; only empty OMEMO messages (key-exchange completion,
    /// heartbeats) may come first.
    fn next_of(&mut self, kind: &str) -> Value {
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

    fn command(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    /// Has the bot encrypt `body` for `to` (which must have exactly one device, `device`).
    fn send(&mut self, to: &User, body: &str) {
        self.command(json!({"send": {"to": to.jid, "body": body}}));
        let sent = self.next_of("sent");
        assert_eq!(sent["to"], to.jid.as_str(), "{sent}");
        assert_eq!(sent["ns"], self.ns, "{sent}");
        assert_eq!(sent["devices"], json!([to.device]), "{sent}");
    }

    /// The bot decrypted `body` from `from`'s device, in its namespace, under `from`'s identity.
    fn expect_received(&mut self, from: &User, body: &str) {
        let got = self.next_of("received");
        assert_eq!(got["body"], body, "{got}; {}", self.report());
        assert_eq!(got["from"], from.jid.as_str(), "{got}");
        assert_eq!(got["device"], from.device, "{got}");
        assert_eq!(got["ns"], self.ns, "{got}");
        assert_eq!(got["fingerprint"], from.fingerprint.as_str(), "{got}");
    }

    /// `{"quit": true}`: the bot says goodbye and exits 0.
    fn quit(mut self) {
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

/// Checks one delivery printed by `hush --json recv`.
fn assert_delivery(got: &Value, bot: &Bot, bot_jid: &str, body: &str, hush_ns: &str) {
    assert_eq!(got["body"], body, "{got}");
    assert_eq!(got["from"], bot_jid, "{got}");
    assert_eq!(got["device"], bot.device, "{got}");
    assert_eq!(got["ns"], hush_ns, "{got}");
    assert_eq!(got["encrypted"], true, "{got}");
    assert_eq!(got["error"], Value::Null, "{got}");
    assert_eq!(got["trust"], "blind", "{got}");
}

/// Both directions between Hush and the bot in one namespace: `ns` is the bot's name for it,
/// `hush_ns` Hush's (`Suite::name()`).
fn exchange(server: &dyn Server, ns: &'static str, hush_ns: &str, label: &str) {
    let dir = scratch(&format!("interop-bot-{ns}{label}"));
    let alice = init(server, &dir, "alice");
    let bot_jid = server.register("bot", "bot-pw");
    let mut bot = Bot::start(server, &dir, &bot_jid, "bot-pw", ns);
    // Each body starts with a unique plain-ASCII part, searched for on the server's disk at the
    // end; the rest is there to survive both stacks' encodings unchanged.
    let mut markers = Vec::new();
    let mut text = |what: String| {
        let marker = format!("{what} over {ns}");
        markers.push(marker.clone());
        format!("{marker}: héllo ☃ <&>")
    };

    // Hush → bot, three messages. Hush has not heard back yet, so each carries its key exchange.
    let first: Vec<String> = (1..=3).map(|i| text(format!("hush to bot #{i}"))).collect();
    for body in &first {
        hush_send(&alice, &bot_jid, bot.device, body, hush_ns);
    }
    for body in &first {
        bot.expect_received(&alice, body);
    }

    // Hush saw the bot's device only in the bot's namespace, under the key the bot holds.
    let devices = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bot_jid])));
    assert!(
        devices.iter().all(|d| d["ns"] == hush_ns),
        "the bot announces only {hush_ns}: {devices:?}"
    );
    let entry = devices
        .iter()
        .find(|d| d["device"] == bot.device)
        .unwrap_or_else(|| panic!("bot device {} not known: {devices:?}", bot.device));
    assert_eq!(
        entry["fingerprint"],
        bot.fingerprint.as_str(),
        "{devices:?}"
    );

    // Bot → Hush, three messages; Hush is offline meanwhile and catches up from the archive.
    let second: Vec<String> = (1..=3).map(|i| text(format!("bot to hush #{i}"))).collect();
    for body in &second {
        bot.send(&alice, body);
    }
    let got = hush_recv(&alice, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    for (got, body) in got.iter().zip(&second) {
        assert_delivery(got, &bot, &bot_jid, body, hush_ns);
    }

    // Sessions established: more round trips, each turning the Double Ratchet's DH step.
    for round in 1..=2 {
        let body = text(format!("hush to bot, round {round}"));
        hush_send(&alice, &bot_jid, bot.device, &body, hush_ns);
        bot.expect_received(&alice, &body);
        let body = text(format!("bot to hush, round {round}"));
        bot.send(&alice, &body);
        let got = hush_recv(&alice, 1);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_delivery(&got[0], &bot, &bot_jid, &body, hush_ns);
    }

    // Now the bot starts, with a new Hush account: Hush answers its key exchange with an empty
    // OMEMO message, which python-omemo must accept as completing the session.
    let carol = init(server, &dir, "carol");
    let body = text("bot to carol first".into());
    bot.send(&carol, &body);
    let got = hush_recv(&carol, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_delivery(&got[0], &bot, &bot_jid, &body, hush_ns);
    let empty = bot.next("Hush's empty answer to the key exchange");
    assert_eq!(empty["empty"], true, "{empty}");
    assert_eq!(empty["from"], carol.jid.as_str(), "{empty}");
    assert_eq!(empty["device"], carol.device, "{empty}");
    assert_eq!(empty["ns"], ns, "{empty}");
    assert_eq!(empty["fingerprint"], carol.fingerprint.as_str(), "{empty}");
    let body = text("carol answers".into());
    hush_send(&carol, &bot_jid, bot.device, &body, hush_ns);
    bot.expect_received(&carol, &body);
    bot.quit();

    // The server stored only ciphertext.
    let stored = server.stored_bytes();
    assert!(stored.len() > 1000, "nothing stored? {}", stored.len());
    for marker in &markers {
        assert!(
            !stored.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker:?} found on the server"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hush_and_slixmpp_omemo_bot_over_omemo2() {
    exchange(&Prosody::start("bot-omemo2"), "omemo2", "omemo:2", "");
}

#[test]
fn hush_and_slixmpp_omemo_bot_over_legacy() {
    exchange(&Prosody::start("bot-legacy"), "legacy", "omemo:legacy", "");
}

#[test]
fn hush_and_slixmpp_omemo_bot_through_the_devserver() {
    exchange(&Embedded::start(), "omemo2", "omemo:2", "-devserver");
}
