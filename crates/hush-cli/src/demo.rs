//! `hush demo`: the whole story on a private XMPP server running inside this process, with
//! nothing to install or configure.
//!
//! Alice (phone and laptop) and Bob (phone and laptop) set up devices, talk while Bob's laptop
//! is away, compare fingerprints, watch the server fail to read or tamper with anything, and
//! talk in a private room.
//! Every device is a real Hush client (its own in-memory SQLite store, its own XMPP session)
//! and the server is `hush-devserver`; nothing is simulated. The story checks itself as it goes:
//! a step that does not turn out as told stops the demo with an error, which is how the demo
//! doubles as a test. `--json` prints the same story as one event per line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use hush_devserver::{Adversary, DevServer, Element};
use hush_proto::policy::{Authentication, Properties};
use hush_proto::{LocalDevice, DEFAULT_PREKEYS};
use hush_store::{SqliteStore, Store};
use hush_xmpp::{BareJid, ConnectOptions, Delivery, Hush};
use serde_json::{json, Value};

use crate::commands::{unix_now, verification_uri, verify};
use crate::output::{properties_json, trust_name};

/// Why the demo stopped: a part failed, or the story did not turn out as told (the demo
/// checks itself as it goes).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// A device's connection or a send.
    #[error(transparent)]
    Xmpp(#[from] hush_xmpp::XmppError),
    /// A device's store.
    #[error(transparent)]
    Store(#[from] hush_store::StoreError),
    /// Making a device's keys.
    #[error(transparent)]
    Protocol(#[from] hush_proto::ProtoError),
    /// The private server.
    #[error(transparent)]
    Server(#[from] hush_devserver::DevServerError),
    /// Verifying a fingerprint.
    #[error(transparent)]
    Verify(#[from] Box<crate::error::CliError>),
    /// The demo's scratch file (chapter 8).
    #[error("the demo's scratch file: {0}")]
    Scratch(#[source] std::io::Error),
    /// A step did not turn out as the story says.
    #[error("the demo went off its script: {0}")]
    OffScript(String),
}

type Fallible<T> = Result<T, DemoError>;

type Device = Hush<SqliteStore>;

/// How long the demo waits for a message before calling the step failed.
const WAIT: Duration = Duration::from_secs(15);
const PASSWORD: &str = "demo-password";

/// Prints the story: prose with pauses on a terminal, one JSON event per line with `--json`.
/// Once standard output is closed (`hush demo | head`), the story goes on unprinted: it still
/// checks itself, and ends in seconds.
struct Narrator {
    json: bool,
    pace: bool,
    closed: std::cell::Cell<bool>,
}

impl Narrator {
    fn print(&self, text: &str) {
        use std::io::Write as _;
        if !self.closed.get() && writeln!(std::io::stdout().lock(), "{text}").is_err() {
            self.closed.set(true);
        }
    }

    fn chapter(&self, n: u32, title: &str) {
        if self.json {
            self.print(&json!({"event": "chapter", "n": n, "title": title}).to_string());
        } else {
            self.print(&format!(
                "\n\x20{n}. {title}\n{}",
                "─".repeat(title.len() + 4)
            ));
        }
    }

    /// One event: `value` as JSON, or `text` for people.
    fn event(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            self.print(&value.to_string());
        } else {
            self.print(&format!("   {}", text().replace('\n', "\n   ")));
        }
    }

    /// A pause between steps, so a person can follow. Not with `--json` or off a terminal.
    async fn pause(&self) {
        if self.pace {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
}

/// Names the four devices by (JID, device id), for the story.
#[derive(Default)]
struct Cast {
    names: BTreeMap<(String, u32), String>,
    /// Each device's account, id and identity key.
    keys: Vec<(String, u32, hush_proto::IdentityKey)>,
}

impl Cast {
    fn add(&mut self, hush: &Device, name: &str) {
        self.names
            .insert((hush.jid().to_string(), hush.device_id()), name.to_owned());
        if let Ok(Some(account)) = hush.store().account() {
            let device = account.device.device_id();
            self.keys
                .push((account.jid, device, *account.device.identity().public()));
        }
    }
    /// The identity keys of the devices of accounts other than `jid`.
    fn keys_not_of(&self, jid: &str) -> Vec<(String, hush_proto::IdentityKey)> {
        self.keys
            .iter()
            .filter(|(j, _, _)| j != jid)
            .map(|(j, _, k)| (j.clone(), *k))
            .collect()
    }
    /// The name of the device of `jid` whose key has the fingerprint `fingerprint`.
    fn name_of_key(&self, jid: &str, fingerprint: &str) -> String {
        self.keys
            .iter()
            .find(|(j, _, k)| j == jid && k.fingerprint() == fingerprint)
            .map_or_else(
                || format!("a device of {jid}"),
                |(j, d, _)| self.name(j, *d),
            )
    }
    fn name(&self, jid: &str, device: u32) -> String {
        self.names
            .get(&(jid.to_owned(), device))
            .cloned()
            .unwrap_or_else(|| format!("device {device} of {jid}"))
    }
    fn of(&self, hush: &Device) -> String {
        self.name(hush.jid().as_str(), hush.device_id())
    }
}

/// The server's adversary for chapter 6: flips one bit in the encrypted payload of the next
/// message it delivers to one session, then behaves.
struct FlipOnePayloadBit {
    target: String,
    done: bool,
}

impl Adversary for FlipOnePayloadBit {
    fn to_client(&mut self, to: &str, mut stanza: Element) -> Vec<Element> {
        if !self.done && to.starts_with(&self.target) && flip_payload_bit(&mut stanza) {
            self.done = true;
        }
        vec![stanza]
    }
}

/// Flips the lowest bit of the first byte of a message's `<payload>` (either OMEMO
/// namespace). Returns whether there was one.
fn flip_payload_bit(stanza: &mut Element) -> bool {
    use base64::Engine as _;
    let Some(encrypted) = stanza.children_mut().find(|c| c.name() == "encrypted") else {
        return false;
    };
    let Some(payload) = encrypted.children_mut().find(|c| c.name() == "payload") else {
        return false;
    };
    let engine = base64::engine::general_purpose::STANDARD;
    let Ok(mut bytes) = engine.decode(payload.text().trim()) else {
        return false;
    };
    let Some(first) = bytes.first_mut() else {
        return false;
    };
    *first ^= 1;
    let text = engine.encode(&bytes);
    let name = payload.name().to_owned();
    let ns = payload.ns();
    *payload = Element::builder(name, ns).append(text).build();
    true
}

/// The base64 text of a stanza's `<payload>`, if any.
fn payload_of(stanza: &str) -> Option<String> {
    let el: Element = stanza.parse().ok()?;
    let encrypted = el.children().find(|c| c.name() == "encrypted")?;
    let payload = encrypted.children().find(|c| c.name() == "payload")?;
    Some(payload.text())
}

fn options(server: &DevServer) -> ConnectOptions {
    ConnectOptions {
        server: Some(server.address().to_string()),
        insecure_loopback: true,
        timeout: Duration::from_secs(15),
        dns: None,
    }
}

/// `jid` as a bare JID (the server made it: a failure is the demo's).
fn bare(jid: &str) -> Fallible<BareJid> {
    jid.parse()
        .map_err(|_| DemoError::OffScript(format!("the server registered `{jid}`, not a JID")))
}

/// A new device of `jid`: keys made here, an in-memory store, connected and announced.
async fn new_device(server: &DevServer, jid: &str) -> Fallible<Device> {
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let id = 1 + rand_core::Rng::next_u32(&mut rng) % 0x7fff_fffe;
    let keys = LocalDevice::generate(id, DEFAULT_PREKEYS, unix_now(), &mut rng)?;
    let mut store = SqliteStore::open_in_memory()?;
    store.create_account(jid, &keys)?;
    let mut hush = Hush::connect(store, PASSWORD, &options(server)).await?;
    hush.announce().await?;
    Ok(hush)
}

fn fingerprint(hush: &Device) -> Fallible<(String, String)> {
    let account = hush
        .store()
        .account()?
        .ok_or_else(|| DemoError::OffScript("a demo device has no account".into()))?;
    let identity = account.device.identity().public();
    Ok((
        identity.fingerprint(),
        verification_uri(&account.jid, account.device.device_id(), identity),
    ))
}

/// What `at` shows for a message that failed, worded as `hush recv` words it.
fn failure_text(at: &Device, d: &Delivery) -> Option<String> {
    let me = crate::advice::Me {
        jid: at.jid().to_string(),
        device: at.device_id(),
    };
    d.failure
        .as_ref()
        .map(|f| crate::advice::failure(f, &d.from, d.device, &me))
}

/// Waits for the next visible message on `hush`.
async fn next(hush: &mut Device, cast: &Cast) -> Fallible<Delivery> {
    hush.receive(WAIT).await?.ok_or_else(|| {
        DemoError::OffScript(format!(
            "{} received nothing within {} s",
            cast.of(hush),
            WAIT.as_secs()
        ))
    })
}

fn auth_words(a: Authentication) -> &'static str {
    match a {
        Authentication::None => "none",
        Authentication::Weak => "weak (keys trusted blindly, not yet verified)",
        Authentication::Strong => "strong (every key that can read it was verified)",
    }
}

fn properties_line(p: &Properties) -> String {
    format!(
        "confidentiality {}, integrity {}, forward secrecy {}, deniability {}, replay protection {}, authentication {}",
        yes(p.confidentiality),
        yes(p.integrity),
        yes(p.forward_secrecy),
        yes(p.deniability),
        yes(p.replay_protection),
        auth_words(p.authentication)
    )
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// Sends `text` and narrates who can read it.
async fn send(
    n: &Narrator,
    cast: &Cast,
    from: &mut Device,
    to: &BareJid,
    text: &str,
) -> Fallible<Properties> {
    let report = from.send_text(to, text).await?;
    let readers: Vec<String> = report
        .devices
        .iter()
        .map(|(j, d)| cast.name(j, *d))
        .collect();
    let who = cast.of(from);
    n.event(
        json!({"event": "sent", "from": who, "to": to.to_string(), "text": text,
               "readers": readers, "security": properties_json(&report.properties)}),
        || {
            format!(
                "{who} → {to}: “{text}”\n  encrypted for: {}\n  {}",
                readers.join(", "),
                properties_line(&report.properties)
            )
        },
    );
    Ok(report.properties)
}

/// Narrates a received message; fails if it is not `expected` from `sender`.
fn received(n: &Narrator, cast: &Cast, at: &Device, d: &Delivery, expected: &str) -> Fallible<()> {
    let who = cast.of(at);
    let sender = cast.name(&d.from, d.device);
    n.event(
        json!({"event": "received", "device": who, "from": sender, "body": d.body,
               "error": failure_text(at, d), "trust": trust_name(d.trust),
               "security": properties_json(&d.properties)}),
        || {
            format!(
                "{who} read “{}” from {sender} (key {})",
                d.body.as_deref().unwrap_or(""),
                trust_name(d.trust)
            )
        },
    );
    if d.body.as_deref() != Some(expected) {
        return Err(DemoError::OffScript(format!(
            "{who} expected “{expected}”, got {:?} (error: {:?})",
            d.body, d.failure
        )));
    }
    Ok(())
}

/// Runs the demo. `json`: events instead of prose.
pub(crate) async fn run(json: bool) -> Fallible<()> {
    let n = Narrator {
        json,
        pace: !json && std::io::stdout().is_terminal(),
        closed: std::cell::Cell::new(false),
    };
    let server = DevServer::start(Default::default()).await?;
    let result = story(&n, &server).await;
    server.shutdown().await;
    result
}

async fn story(n: &Narrator, server: &DevServer) -> Fallible<()> {
    n.chapter(1, "A private XMPP server, and four devices");
    n.event(
        json!({"event": "server", "address": server.address().to_string()}),
        || {
            format!(
                "An XMPP server is running inside this process on {} (hush-devserver).\n\
                 It stores and forwards everything, and in this story it is curious and hostile.",
                server.address()
            )
        },
    );
    let alice_jid = server.register("alice", PASSWORD)?;
    let bob_jid = server.register("bob", PASSWORD)?;
    let (alice, bob): (BareJid, BareJid) = (bare(&alice_jid)?, bare(&bob_jid)?);
    let mut cast = Cast::default();
    let mut devices = Vec::new();
    for (jid, name) in [
        (&alice_jid, "Alice's phone"),
        (&alice_jid, "Alice's laptop"),
        (&bob_jid, "Bob's phone"),
        (&bob_jid, "Bob's laptop"),
    ] {
        let hush = new_device(server, jid).await?;
        cast.add(&hush, name);
        let (fp, _) = fingerprint(&hush)?;
        n.event(
            json!({"event": "device", "name": name, "jid": jid, "device": hush.device_id(), "fingerprint": fp}),
            || {
                format!(
                    "{name}: new keys, device {} of {jid}, published its device list and key bundle\n  fingerprint {fp}",
                    hush.device_id()
                )
            },
        );
        devices.push(hush);
        n.pause().await;
    }
    let [mut alice_phone, mut alice_laptop, mut bob_phone, bob_laptop]: [Hush<_>; 4] = devices
        .try_into()
        .map_err(|_| DemoError::OffScript("the demo sets up exactly four devices".into()))?;
    let bob_laptop_name = cast.of(&bob_laptop);
    let bob_laptop_store = bob_laptop.close().await?;
    n.event(
        json!({"event": "offline", "device": bob_laptop_name}),
        || format!("{bob_laptop_name} goes offline (lid closed)."),
    );

    n.chapter(2, "An encrypted conversation on every device");
    let mut sent: Vec<String> = Vec::new();
    let hello = "Hi Bob! Lunch on Friday?";
    let before = send(n, &cast, &mut alice_phone, &bob, hello).await?;
    sent.push(hello.into());
    let d = next(&mut bob_phone, &cast).await?;
    received(n, &cast, &bob_phone, &d, hello)?;
    let d = next(&mut alice_laptop, &cast).await?;
    received(n, &cast, &alice_laptop, &d, hello)?;
    n.pause().await;
    let reply = "Friday works. The usual place?";
    send(n, &cast, &mut bob_phone, &alice, reply).await?;
    sent.push(reply.into());
    for device in [&mut alice_phone, &mut alice_laptop] {
        let d = next(device, &cast).await?;
        received(n, &cast, device, &d, reply)?;
    }
    n.pause().await;

    n.chapter(3, "What the server stored");
    show_server_view(n, server, &bob_jid, &sent)?;
    n.pause().await;

    n.chapter(4, "Comparing fingerprints (scanning each other's QR codes)");
    // Each phone scans the codes of every other device that can read the conversation.
    let others: Vec<(String, String)> = {
        let mut v = Vec::new();
        for d in [&alice_phone, &alice_laptop, &bob_phone] {
            v.push((cast.of(d), fingerprint(d)?.1));
        }
        let store = &bob_laptop_store;
        let account = store
            .account()?
            .ok_or_else(|| DemoError::OffScript("a demo device has no account".into()))?;
        v.push((
            bob_laptop_name.clone(),
            verification_uri(
                &account.jid,
                account.device.device_id(),
                account.device.identity().public(),
            ),
        ));
        v
    };
    for phone in [&mut alice_phone, &mut bob_phone] {
        let me = cast.of(phone);
        let mut verified = Vec::new();
        for (name, uri) in others.iter().filter(|(name, _)| *name != me) {
            verify(phone.store_mut(), uri).map_err(Box::new)?;
            verified.push(name.clone());
        }
        n.event(
            json!({"event": "verified", "device": me, "verified": verified}),
            || format!("{me} scanned and verified: {}", verified.join(", ")),
        );
    }
    let verified_text = "Verified! Same place, noon.";
    let after = send(n, &cast, &mut alice_phone, &bob, verified_text).await?;
    sent.push(verified_text.into());
    if after.authentication != Authentication::Strong {
        return Err(DemoError::OffScript(
            "after verification the conversation should be strongly authenticated".into(),
        ));
    }
    let d = next(&mut bob_phone, &cast).await?;
    received(n, &cast, &bob_phone, &d, verified_text)?;
    let d = next(&mut alice_laptop, &cast).await?;
    received(n, &cast, &alice_laptop, &d, verified_text)?;
    n.pause().await;

    n.chapter(5, "The server tampers with a message");
    let bob_phone_name = cast.of(&bob_phone);
    server.set_adversary(Some(Box::new(FlipOnePayloadBit {
        target: format!("{bob_jid}/"),
        done: false,
    })));
    n.event(
        json!({"event": "tamper", "by": "server", "target": bob_phone_name, "what": "one bit of the encrypted payload"}),
        || format!("The server flips one bit of the next message on its way to {bob_phone_name}."),
    );
    let tampered = "Bring the documents.";
    send(n, &cast, &mut alice_phone, &bob, tampered).await?;
    sent.push(tampered.into());
    let d = next(&mut bob_phone, &cast).await?;
    let Some(error) = failure_text(&bob_phone, &d) else {
        return Err(DemoError::OffScript(format!(
            "{bob_phone_name} accepted a tampered message: {:?}",
            d.body
        )));
    };
    n.event(
        json!({"event": "tamper_detected", "device": bob_phone_name, "error": error}),
        || format!("{bob_phone_name} refused it, loudly: {error}"),
    );
    server.set_adversary(None);
    let again = "(again) Bring the documents.";
    send(n, &cast, &mut alice_phone, &bob, again).await?;
    sent.push(again.into());
    let d = next(&mut bob_phone, &cast).await?;
    received(n, &cast, &bob_phone, &d, again)?;
    n.event(
        json!({"event": "session_survived", "device": bob_phone_name}),
        || "The session survived: the next message reads fine.".into(),
    );
    for text in [tampered, again] {
        let d = next(&mut alice_laptop, &cast).await?;
        received(n, &cast, &alice_laptop, &d, text)?;
    }
    n.pause().await;

    n.chapter(6, "Bob's laptop comes back and catches up");
    let mut bob_laptop = Hush::connect(bob_laptop_store, PASSWORD, &options(server)).await?;
    let got = bob_laptop.catch_up(0).await?;
    n.event(
        json!({"event": "catch_up", "device": bob_laptop_name, "messages": got.len()}),
        || {
            format!(
                "{bob_laptop_name} read {} messages from the server's archive (XEP-0313), \
                 including its intact copy of the one tampered with on the way to the phone:",
                got.len()
            )
        },
    );
    let texts: Vec<&str> = got.iter().filter_map(|d| d.body.as_deref()).collect();
    if texts != sent {
        return Err(DemoError::OffScript(format!(
            "{bob_laptop_name} caught up {texts:?}, expected {sent:?}"
        )));
    }
    for d in &got {
        let sender = cast.name(&d.from, d.device);
        n.event(
            json!({"event": "received", "device": bob_laptop_name, "from": sender, "body": d.body,
                   "error": failure_text(&bob_laptop, d), "trust": trust_name(d.trust),
                   "security": properties_json(&d.properties)}),
            || format!("  “{}” from {sender}", d.body.as_deref().unwrap_or("")),
        );
    }
    n.pause().await;

    n.chapter(7, "A private room");
    room_scene(
        n,
        &cast,
        server,
        [
            &mut alice_phone,
            &mut alice_laptop,
            &mut bob_phone,
            &mut bob_laptop,
        ],
    )
    .await?;
    n.pause().await;

    n.chapter(8, "A photo, encrypted end to end");
    file_scene(
        n,
        &cast,
        server,
        [
            &mut alice_phone,
            &mut alice_laptop,
            &mut bob_phone,
            &mut bob_laptop,
        ],
    )
    .await?;
    n.pause().await;

    n.chapter(9, "Seven words, and trust that spreads");
    sas_scene(n, &cast, &mut alice_phone, &mut alice_laptop).await?;
    n.pause().await;

    n.chapter(10, "What the conversation had");
    n.event(
        json!({"event": "summary", "before_verification": properties_json(&before),
               "after_verification": properties_json(&after), "ok": true}),
        || {
            format!(
                "Before verification: {}\nAfter verification:  {}\n\n\
                 The server carried every message and could neither read nor alter one unnoticed.\n\
                 Try it with your own server: `hush init --jid you@example.org --password-stdin`.",
                properties_line(&before),
                properties_line(&after)
            )
        },
    );
    drop(bob_laptop.close().await?);
    for d in [alice_phone, alice_laptop, bob_phone] {
        drop(d.close().await?);
    }
    Ok(())
}

/// Chapter 9: Alice's laptop, which verified nobody, compares seven words with her phone
/// (`hush sas`): a fresh exchange over their OMEMO 2 session, bound to both identity keys.
/// Each side says they match; the phone then tells the laptop, by a trust message (Automatic
/// Trust Management, XEP-0450), which keys Alice verified on it, and the laptop trusts Bob's
/// devices too, with no comparison of its own.
async fn sas_scene(
    n: &Narrator,
    cast: &Cast,
    phone: &mut Device,
    laptop: &mut Device,
) -> Fallible<()> {
    let (phone_name, laptop_name) = (cast.of(phone), cast.of(laptop));
    let alice = phone.jid().clone();
    let verified_before = laptop
        .store()
        .keys_with_trust(hush_store::Trust::Verified)?;
    n.event(
        json!({"event": "trust_before", "device": laptop_name, "verified": verified_before.len()}),
        || {
            format!(
                "{laptop_name} has verified {} key(s): it trusts Bob's devices blindly.",
                verified_before.len()
            )
        },
    );
    let mut on_laptop = laptop.sas_start(&alice, phone.device_id()).await?;
    let start = next_sas(phone, cast).await?;
    let mut on_phone = phone.sas_accept(&start).await?;
    // accept → the laptop's key → the phone's key: then both hold the words.
    for laptops_turn in [true, false, true] {
        let (device, comparison) = if laptops_turn {
            (&mut *laptop, &mut on_laptop)
        } else {
            (&mut *phone, &mut on_phone)
        };
        let step = next_sas(device, cast).await?;
        if !device.sas_continue(comparison, &step).await? {
            return Err(DemoError::OffScript(
                "a comparison message went astray".into(),
            ));
        }
    }
    let words = |c: &hush_xmpp::Comparison| c.code().map(|code| code.words().to_vec());
    let (on_l, on_p) = (words(&on_laptop), words(&on_phone));
    let Some(shown) = on_l.filter(|w| Some(w) == on_p.as_ref()) else {
        return Err(DemoError::OffScript(format!(
            "the two devices show different words: {:?} and {:?}",
            words(&on_laptop),
            words(&on_phone)
        )));
    };
    n.event(
        json!({"event": "sas", "devices": [laptop_name, phone_name], "words": shown}),
        || {
            format!(
                "{laptop_name} and {phone_name} compare short authentication strings. Both \
                 screens show:\n    {}\nAlice says yes on each.",
                shown.join("  ")
            )
        },
    );
    laptop.sas_confirm(on_laptop).await?;
    phone.sas_confirm(on_phone).await?;
    // The phone's trust messages reach the laptop, which now trusts the phone: the keys
    // Alice verified there (chapter 4) follow.
    let bob = cast.keys_not_of(alice.as_str());
    let trusted = |laptop: &Device| {
        bob.iter()
            .filter(|(jid, key)| {
                laptop.store().trust(jid, key).ok().flatten() == Some(hush_store::Trust::Verified)
            })
            .count()
    };
    let mut applied: Vec<String> = Vec::new();
    while bob.is_empty() || trusted(laptop) < bob.len() {
        let d = next(laptop, cast).await.map_err(|e| {
            DemoError::OffScript(format!(
                "{laptop_name} should trust Bob's devices after the trust messages \
                 (applied: {applied:?}): {e}"
            ))
        })?;
        for (jid, fp, t) in d.atm.iter().flat_map(|r| &r.applied) {
            applied.push(format!(
                "{} ({fp}): {}",
                cast.name_of_key(jid, fp),
                trust_name(Some(*t))
            ));
        }
    }
    n.event(
        json!({"event": "trust_message", "device": laptop_name, "from": phone_name,
               "applied": applied}),
        || {
            format!(
                "{phone_name} sent {laptop_name} a trust message (XEP-0450) with the keys \
                 Alice verified there:\n  {}\n{laptop_name} now trusts Bob's {} devices \
                 without a comparison of its own.",
                applied.join("\n  "),
                bob.len()
            )
        },
    );
    Ok(())
}

/// The next comparison message `hush` receives (anything else that comes first is passed
/// over: the scene has nothing else in flight).
async fn next_sas(hush: &mut Device, cast: &Cast) -> Fallible<hush_xmpp::SasArrival> {
    loop {
        if let Some(arrival) = next(hush, cast).await?.sas {
            return Ok(arrival);
        }
    }
}

/// Chapter 7: Alice opens a private room (members-only, non-anonymous: XEP-0384 §5.8) and adds
/// Bob; every device of both reads the room's messages, each encrypted once per device, and the
/// room's archive holds only ciphertext.
async fn room_scene(
    n: &Narrator,
    cast: &Cast,
    server: &DevServer,
    devices: [&mut Device; 4],
) -> Fallible<()> {
    let [alice_phone, alice_laptop, bob_phone, bob_laptop] = devices;
    let room = bare(&format!("friday@{}", server.muc_domain()))?;
    let created = alice_phone.join_room(&room, Some("alice")).await?;
    n.event(
        json!({"event": "room", "room": room.to_string(), "members_only": created.config.members_only,
               "non_anonymous": created.config.non_anonymous}),
        || {
            format!(
                "{} opens the room {room}: members-only, and every member sees the others' real \
                 addresses — what OMEMO needs to know whom to encrypt for.",
                cast.of(alice_phone)
            )
        },
    );
    let bob = bare(bob_phone.jid().as_str())?;
    alice_phone
        .set_room_member(&room, &bob, Some(hush_store::Affiliation::Member))
        .await?;
    alice_laptop.join_room(&room, Some("alice")).await?;
    bob_phone.join_room(&room, Some("bob")).await?;
    bob_laptop.join_room(&room, Some("bob")).await?;
    n.event(
        json!({"event": "room_members", "room": room.to_string(), "members": ["alice", "bob"]}),
        || "Alice makes Bob a member; both of his devices and her laptop join.".to_owned(),
    );
    let mut texts = Vec::new();
    let question = "Who's in for Friday?";
    let report = alice_phone
        .send_to_room(&room, question, hush_xmpp::SendOptions::default())
        .await?;
    texts.push(question);
    let readers: Vec<String> = report
        .devices
        .iter()
        .map(|(j, d)| cast.name(j, *d))
        .collect();
    let who = cast.of(alice_phone);
    n.event(
        json!({"event": "room_sent", "from": who, "room": room.to_string(), "text": question,
               "readers": readers}),
        || {
            format!(
                "{who} → {room}: “{question}”
  one message, a key for each reader: {}",
                readers.join(", ")
            )
        },
    );
    if readers.len() != 3 {
        return Err(DemoError::OffScript(format!(
            "the room message should have three readers, not {readers:?}"
        )));
    }
    for device in [&mut *alice_laptop, &mut *bob_phone, &mut *bob_laptop] {
        let d = next(device, cast).await?;
        received(n, cast, device, &d, question)?;
    }
    let answer = "Me! And I'll book the table.";
    bob_laptop
        .send_to_room(&room, answer, hush_xmpp::SendOptions::default())
        .await?;
    texts.push(answer);
    for device in [&mut *alice_phone, &mut *alice_laptop, &mut *bob_phone] {
        let d = next(device, cast).await?;
        received(n, cast, device, &d, answer)?;
    }
    let archived: String = server
        .room_archive(room.as_str())
        .into_iter()
        .map(|a| a.stanza)
        .collect();
    let leaked = texts.iter().any(|t| archived.contains(t));
    n.event(
        json!({"event": "room_stored", "room": room.to_string(), "plaintext_found": leaked}),
        || {
            format!(
                "The room's archive on the server: {}",
                if leaked {
                    "PLAINTEXT FOUND"
                } else {
                    "ciphertext only"
                }
            )
        },
    );
    if leaked {
        return Err(DemoError::OffScript(
            "plaintext in the room's archive".into(),
        ));
    }
    Ok(())
}

/// A scratch directory of the demo's, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Fallible<Self> {
        let dir = std::env::temp_dir().join(format!("hush-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(DemoError::Scratch)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Chapter 8: Bob's phone shares a photo with Alice. It is encrypted while it is uploaded to
/// the server's upload service; both of Alice's devices download, decrypt and check it; the
/// server holds the ciphertext and never learnt the name. Then the server swaps the file, and
/// Bob's laptop refuses what it is served.
async fn file_scene(
    n: &Narrator,
    cast: &Cast,
    server: &DevServer,
    devices: [&mut Device; 4],
) -> Fallible<()> {
    let [alice_phone, alice_laptop, bob_phone, bob_laptop] = devices;
    let scratch = Scratch::new()?;
    // Not a real picture: 300 KiB of random bytes, which cannot turn up on the server by chance.
    let mut photo = vec![0u8; 300 << 10];
    rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(rand::rngs::SysRng), &mut photo);
    let name = "summit.jpg";
    let path = scratch.0.join(name);
    std::fs::write(&path, &photo).map_err(DemoError::Scratch)?;
    for device in [
        &mut *alice_phone,
        &mut *alice_laptop,
        &mut *bob_phone,
        &mut *bob_laptop,
    ] {
        // The demo server's upload service has a CA of its own.
        device.trust_for_files(server.upload_ca_der());
    }
    let alice = bare(alice_phone.jid().as_str())?;
    let sent = bob_phone
        .send_file(&alice, &path, std::sync::Arc::new(hush_xmpp::NoProgress))
        .await?;
    let readers: Vec<String> = sent
        .report
        .devices
        .iter()
        .map(|(j, d)| cast.name(j, *d))
        .collect();
    let who = cast.of(bob_phone);
    n.event(
        json!({"event": "file_sent", "from": who, "name": name, "size": photo.len(),
               "readers": readers}),
        || {
            format!(
                "{who} shares {name} ({} KiB) with Alice: encrypted with a fresh key while it is \
                 uploaded, then the link and the key go in an encrypted message for: {}",
                photo.len() >> 10,
                readers.join(", ")
            )
        },
    );
    let downloads = scratch.0.join("downloads");
    for device in [&mut *alice_phone, &mut *alice_laptop] {
        let d = next(device, cast).await?;
        let file = d.file.clone().ok_or_else(|| {
            DemoError::OffScript(format!("{} got no file: {d:?}", cast.of(device)))
        })?;
        let got = device
            .fetch_file(&file, &downloads, 1 << 20, &hush_xmpp::NoProgress)
            .await?;
        let same = std::fs::read(&got.path).map_err(DemoError::Scratch)? == photo;
        let at = cast.of(device);
        let saved_as = got
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        n.event(
            json!({"event": "file_received", "device": at, "name": file.name, "saved_as": saved_as,
                   "size": got.size, "identical": same}),
            || {
                format!(
                    "{at} downloads it, decrypts and checks it as it streams: {} ({} bytes, {})",
                    file.name.as_deref().unwrap_or("?"),
                    got.size,
                    if same {
                        "identical to Bob's"
                    } else {
                        "DIFFERENT"
                    }
                )
            },
        );
        if !same {
            return Err(DemoError::OffScript("the photo changed on the way".into()));
        }
    }
    let stored = server.uploads();
    let held = stored.iter().map(Vec::len).sum::<usize>();
    let leaked = stored.iter().any(|f| {
        [0, photo.len() / 2, photo.len() - 32]
            .iter()
            .any(|at| f.windows(32).any(|w| w == &photo[*at..*at + 32]))
    });
    let name_seen = server
        .upload_requests()
        .iter()
        .any(|r| r.contains("summit"));
    n.event(
        json!({"event": "file_stored", "bytes": held, "plaintext_found": leaked,
               "name_seen": name_seen}),
        || {
            format!(
                "The server's upload service holds {held} bytes: {}; the name it was told: {}",
                if leaked {
                    "PLAINTEXT FOUND"
                } else {
                    "ciphertext only"
                },
                if name_seen {
                    "the real one"
                } else {
                    "a random one"
                }
            )
        },
    );
    if leaked || name_seen {
        return Err(DemoError::OffScript("the server learnt the photo".into()));
    }
    // Bob's laptop got a copy of what his phone sent (Carbons), link included.
    let copy = next(bob_laptop, cast).await?;
    let file = copy.file.ok_or_else(|| {
        DemoError::OffScript("Bob's laptop got no copy of the shared file".into())
    })?;
    server.set_upload_attack(Some(hush_devserver::UploadAttack::FlipByte));
    let tampered = bob_laptop
        .fetch_file(&file, &downloads, 1 << 20, &hush_xmpp::NoProgress)
        .await;
    server.set_upload_attack(None);
    let at = cast.of(bob_laptop);
    match tampered {
        Err(e) => n.event(
            json!({"event": "file_tampered", "device": at, "error": e.to_string()}),
            || format!("The server flips one bit of the file it serves to {at}: refused — {e}"),
        ),
        Ok(_) => {
            return Err(DemoError::OffScript(
                "a file with a bit flipped was accepted".into(),
            ))
        }
    }
    Ok(())
}

/// Prints what the server holds for `user` next to the plaintext, and checks that no
/// plaintext is anywhere in its storage.
fn show_server_view(n: &Narrator, server: &DevServer, jid: &str, sent: &[String]) -> Fallible<()> {
    let user = jid.split('@').next().unwrap_or(jid);
    let archive = server.archive(user);
    let mut rows = Vec::new();
    for entry in &archive {
        if let Some(payload) = payload_of(&entry.stanza) {
            rows.push(payload);
        }
    }
    let mut everything = String::new();
    for who in ["alice", "bob"] {
        for a in server.archive(who) {
            everything.push_str(&a.stanza);
        }
        for o in server.offline(who) {
            everything.push_str(&o);
        }
        for node in ["urn:xmpp:omemo:2:devices", "urn:xmpp:omemo:2:bundles"] {
            for item in server.pep_items(who, node) {
                everything.push_str(&String::from(&item));
            }
        }
    }
    let leaked: Vec<&String> = sent
        .iter()
        .filter(|t| everything.contains(t.as_str()))
        .collect();
    let pairs: Vec<Value> = rows
        .iter()
        .zip(sent)
        .map(|(c, p)| json!({"server_has": c, "devices_read": p}))
        .collect();
    n.event(
        json!({"event": "server_stored", "user": jid, "archived": archive.len(),
               "pairs": pairs, "plaintext_found": !leaked.is_empty()}),
        || {
            let empty = archive.len() - rows.len();
            let mut s = format!(
                "{} messages in {jid}'s archive{}. Side by side, what the server has and what the devices read:",
                rows.len(),
                match empty {
                    0 => String::new(),
                    1 => " (and 1 empty one: a key-exchange answer, with no text)".to_owned(),
                    k => format!(" (and {k} empty ones: key-exchange answers, with no text)"),
                }
            );
            for (c, p) in rows.iter().zip(sent) {
                let short: String = c.chars().take(40).collect();
                s.push_str(&format!("\n  {short:<42} │ {p}"));
            }
            s.push_str(&format!(
                "\nSearching all the server's storage for the plaintexts: {}",
                if leaked.is_empty() { "not found" } else { "FOUND" }
            ));
            s
        },
    );
    if !leaked.is_empty() {
        return Err(DemoError::OffScript(format!(
            "plaintext on the server: {leaked:?}"
        )));
    }
    Ok(())
}
