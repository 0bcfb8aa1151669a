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

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hush_devserver::DevServer;
use hush_test_support::prosody::Prosody;
use serde_json::{json, Value};
use support::bot::Bot;
use support::*;

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

impl Bot {
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
    let mut bot = Bot::start(&server.address(), &dir, &bot_jid, "bot-pw", ns);
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
    // Last (it changes the trust the deliveries above are checked with): the verification
    // URIs other clients write, from python-omemo's own renderings of the
    // bot's key: Conversations' form from its fingerprint (Curve25519), Kaidan's from the
    // key it holds (Ed25519). Each verifies the bot's device; another key does not.
    let curve_hex = bot.fingerprint.replace(' ', "");
    let conversations = format!("xmpp:{bot_jid}?omemo-sid-{}={curve_hex}", bot.device);
    let kaidan = format!(
        "xmpp:{bot_jid}?trust-message;encryption=urn:xmpp:omemo:2;trust={}",
        bot.identity_key
    );
    for uri in [&conversations, &kaidan] {
        ok(hush(
            &alice.home,
            &["distrust", &bot_jid, &bot.device.to_string()],
        ));
        let verified = json_lines(&ok(hush(&alice.home, &["--json", "verify", uri])));
        assert_eq!(verified.len(), 1, "{uri}: {verified:?}");
        assert_eq!(verified[0]["device"], bot.device, "{uri}: {verified:?}");
        assert_eq!(verified[0]["trust"], "verified", "{uri}: {verified:?}");
    }
    let other = format!("{}0", &curve_hex[..63]);
    let other = if other == curve_hex {
        format!("{}1", &curve_hex[..63])
    } else {
        other
    };
    let refused = hush(
        &alice.home,
        &[
            "verify",
            &format!("xmpp:{bot_jid}?omemo-sid-{}={other}", bot.device),
        ],
    );
    assert!(!refused.status.success(), "{refused:?}");
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

/// A contact whose client publishes its bundle but no device list (as Profanity 0.13 does on a
/// new account, found by hand): its message is read, `hush devices` shows the device it came
/// from as known from a session only, and an answer is refused, saying why, with nothing sent
/// in clear. Before, `hush devices` printed nothing at all and the refusal said only that the
/// contact had no OMEMO device.
#[test]
fn a_contact_who_lists_no_device_is_read_and_the_refusal_to_answer_says_why() {
    let server = Prosody::start("bot-unlisted");
    let dir = scratch("interop-bot-unlisted");
    let alice = init(&server, &dir, "alice");
    let bot_jid = server.register("bot", "bot-pw");
    let mut bot = Bot::start_with(
        &server.address(),
        &dir,
        &bot_jid,
        "bot-pw",
        "legacy",
        &["--unlisted"],
    );

    // Nothing is known of the bot yet: said in words, not an empty output.
    let before = ok(hush(&alice.home, &["devices", &bot_jid]));
    assert!(before.contains("no device of"), "{before}");

    bot.send(&alice, "from a device nobody lists");
    let got = hush_recv(&alice, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body"], "from a device nobody lists", "{got:?}");
    assert_eq!(got[0]["device"], bot.device, "{got:?}");
    assert_eq!(got[0]["error"], Value::Null, "{got:?}");

    let devices = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bot_jid])));
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["device"], bot.device, "{devices:?}");
    assert_eq!(devices[0]["listed"], false, "{devices:?}");
    assert_eq!(devices[0]["known_from"], "session", "{devices:?}");
    assert_eq!(devices[0]["ns"], "omemo:legacy", "{devices:?}");
    assert_eq!(
        devices[0]["fingerprint"],
        bot.fingerprint.as_str(),
        "{devices:?}"
    );

    let out = hush(
        &alice.home,
        &["send", &bot_jid, "an answer that must not go"],
    );
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("lists no OMEMO device"), "{err}");
    assert!(err.contains(&format!("device {}", bot.device)), "{err}");
    let status = ok(hush(&alice.home, &["status", &bot_jid]));
    assert!(
        status.contains("lists no OMEMO device")
            && status.contains(&format!("device {}", bot.device)),
        "{status}"
    );
    assert!(
        !String::from_utf8_lossy(&server.stored_bytes()).contains("an answer that must not go"),
        "the refused answer reached the server"
    );
    bot.quit();
    let _ = std::fs::remove_dir_all(&dir);
}
