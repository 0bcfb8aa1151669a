//! The hostile-server matrix: real Hush clients against `hush-devserver` with an adversary that
//! sees, changes, drops, delays, replays and forges what the server delivers. Each test asserts
//! that the client notices (or is immune), loses no legitimate message, and leaks no plaintext.
//! The README's table lists every attack here with its outcome.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hush_devserver::{DevServer, Element};
use hush_proto::policy::LeftOut;
use hush_proto::{ProtoError, Suite};
use hush_store::{Failure, SessionKey, Store, Trust};
use hush_test_support::devserver::{self, connect, device, offline_device};
use hush_test_support::hostile::*;
use hush_xmpp::{BareJid, DeviceState, KeyConcern, Obstacle, Refusal, Warning, XmppError};

// ---- the world (the shared part is `hush_test_support::hostile`) -----------------------------

/// A visible failure, and no text: `SENDER device N: FAILURE`.
async fn expect_failure(hush: &mut Device) -> String {
    let d = next(hush).await;
    assert!(d.body.is_none(), "a tampered message was shown: {d:?}");
    let failure = d.failure.expect("a visible failure");
    format!("{} device {}: {failure}", d.from, d.device)
}

/// The bodies in `hush`'s history with `peer`, in order (failures as `!error`).
fn history(hush: &Device, peer: &BareJid) -> Vec<String> {
    hush.store()
        .history(peer.as_str(), 1000)
        .unwrap()
        .iter()
        .map(|m| match (&m.body, &m.failure) {
            (Some(b), _) => String::from_utf8_lossy(b).into_owned(),
            (None, Some(e)) => format!("!{e}"),
            (None, None) => String::new(),
        })
        .collect()
}

/// No text in `texts` anywhere in what the server stored for anyone.
fn no_plaintext_on_server(server: &DevServer, users: &[&str], texts: &[&str]) {
    for user in users {
        let mut stored: String = server
            .archive(user)
            .iter()
            .map(|a| a.stanza.clone())
            .collect();
        stored.extend(server.offline(user));
        for t in texts {
            assert!(!stored.contains(t), "`{t}` is on the server in clear");
        }
    }
}

// ---- the adversary --------------------------------------------------------------------------

/// Flips the lowest bit of byte `index` (negative: from the end) of the base64 text of the
/// first descendant named `name` matching `pick`. Returns whether it did.
fn flip(el: &mut Element, name: &str, index: isize, pick: &dyn Fn(&Element) -> bool) -> bool {
    if el.name() == name && pick(el) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let Ok(mut bytes) = b64.decode(el.text().trim()) else {
            return false;
        };
        let i = if index < 0 {
            bytes.len() as isize + index
        } else {
            index
        };
        let Some(byte) = usize::try_from(i).ok().and_then(|i| bytes.get_mut(i)) else {
            return false;
        };
        *byte ^= 1;
        let text = b64.encode(&bytes);
        for t in el.texts_mut() {
            t.clear();
        }
        el.append_text(text);
        return true;
    }
    el.children_mut().any(|c| flip(c, name, index, pick))
}

fn any(_: &Element) -> bool {
    true
}

/// Keeps what the adversary captured, for later replay or delivery.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<Vec<(String, Element)>>>);

impl Held {
    fn push(&self, to: &str, s: Element) {
        self.0.lock().unwrap().push((to.to_owned(), s));
    }
    fn take(&self) -> Vec<(String, Element)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Live OMEMO messages to `jid`'s sessions are recorded (and, unless `deliver`, held back).
fn watch_omemo_to(server: &DevServer, jid: &str, deliver: bool) -> Held {
    let jid = jid.to_owned();
    let held = Held::default();
    let record = held.clone();
    on_delivery(server, move |to, s| {
        if bare_of(to) == jid && is_omemo(&s) {
            record.push(to, s.clone());
            if !deliver {
                return vec![];
            }
        }
        vec![s]
    });
    held
}

/// Nothing reached Bob; once the server behaves, Alice's next message `text` does.
async fn nothing_got_through_then_recovers(
    server: &DevServer,
    alice: &mut Device,
    bob: &mut Device,
    text: &str,
) {
    nothing(bob).await;
    honest(server);
    alice.send_text(&bob.jid().clone(), text).await.unwrap();
    expect(bob, text).await;
}

/// `hush` disconnects and reconnects; returns it with the texts its catch-up found.
async fn reconnect_and_catch_up(server: &DevServer, hush: Device) -> (Device, Vec<String>) {
    let store = hush.close().await.unwrap();
    let mut hush = connect(server, store).await;
    let texts = caught_up(&mut hush).await;
    (hush, texts)
}

// ---- 1. replay ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_an_old_message_is_never_shown_twice() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let held = watch_omemo_to(&server, &bob_jid, true);
    alice.send_text(bob.jid(), "transfer 100").await.unwrap();
    expect(&mut bob, "transfer 100").await;
    let (to, old) = held.take().pop().unwrap();
    honest(&server);

    // The exact copy again: ignored silently (XEP-0384: duplicates are dropped).
    server.inject(&to, old.clone());
    nothing(&mut bob).await;
    // The same ciphertext with its ids stripped, posing as a new message: the ratchet has
    // used that message key already and recognises the replay; it is dropped too.
    let stripped = xml(&old)
        .replace("urn:xmpp:sid:0", "urn:example:stripped")
        .replace(" id='", " data-old-id='");
    assert!(!stripped.contains("urn:xmpp:sid:0"));
    server.inject(&to, parse(&stripped));
    nothing(&mut bob).await;
    // The conversation goes on.
    alice.send_text(bob.jid(), "next").await.unwrap();
    expect(&mut bob, "next").await;
    let texts: Vec<String> = history(&bob, alice.jid())
        .into_iter()
        .filter(|t| !t.starts_with('!'))
        .collect();
    assert_eq!(texts, ["hello bob", "hello alice", "transfer 100", "next"]);
    no_plaintext_on_server(&server, &["alice", "bob"], &["transfer 100", "next"]);
}

// ---- 2. reordering --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_messages_all_arrive_once() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let held = watch_omemo_to(&server, &bob_jid, false);
    for t in ["first", "second", "third"] {
        alice.send_text(bob.jid(), t).await.unwrap();
    }
    alice.flush().await.unwrap();
    assert_eq!(held.len(), 3);
    honest(&server);
    for (to, s) in held.take().into_iter().rev() {
        server.inject(&to, s);
    }
    for t in ["third", "second", "first"] {
        expect(&mut bob, t).await;
    }
    nothing(&mut bob).await;
    no_plaintext_on_server(&server, &["alice", "bob"], &["first", "second", "third"]);
}

// ---- 3. dropped, then delivered late via the archive ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_messages_come_back_from_the_archive_once() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let dropped = Held::default();
    let record = dropped.clone();
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        // Drop every second live message to Bob (the archive keeps them).
        if bare_of(to) == bob_jid && is_omemo(&s) && !text.contains("urn:xmpp:mam:2") {
            record.push(to, s.clone());
            if record.len() % 2 == 0 {
                return vec![];
            }
        }
        vec![s]
    });
    for i in 1..=4 {
        alice.send_text(bob.jid(), &format!("m{i}")).await.unwrap();
    }
    alice.flush().await.unwrap();
    expect(&mut bob, "m1").await;
    expect(&mut bob, "m3").await;
    nothing(&mut bob).await;
    honest(&server);
    // Bob reconnects: the archive has the two dropped messages; the others are recognised.
    let (bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert_eq!(got, ["m2", "m4"]);
    let texts = history(&bob, alice.jid());
    for i in 1..=4 {
        let m = format!("m{i}");
        assert_eq!(texts.iter().filter(|t| **t == m).count(), 1, "{texts:?}");
    }
}

// ---- 4. duplicates via Carbons, archive and offline storage ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_via_carbons_archive_and_offline_count_once() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let held = watch_omemo_to(&server, &bob_jid, true);
    alice.send_text(bob.jid(), "once").await.unwrap();
    expect(&mut bob, "once").await;
    let (to, live) = held.take().pop().unwrap();
    honest(&server);
    let bob_jid = bob.jid().as_str().to_owned();
    // As a Carbon (a copy "received" by another of Bob's sessions) ...
    let carbon = format!(
        "<message xmlns='jabber:client' from='{bob_jid}' to='{to}' type='chat'>\
           <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>{}</forwarded></received>\
         </message>",
        xml(&live)
    );
    server.inject(&to, parse(&carbon));
    // ... as offline storage would push it ...
    server.inject(&to, live);
    nothing(&mut bob).await;
    // ... and from the archive.
    let (bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert!(got.is_empty(), "{got:?}");
    let texts = history(&bob, alice.jid());
    assert_eq!(
        texts.iter().filter(|t| *t == "once").count(),
        1,
        "{texts:?}"
    );
}

// ---- 5–7. bit flips in header, key and payload ----------------------------------------------

/// Flips one bit in Bob's copy of the next message; Bob must refuse it visibly, the session
/// must survive, and the archive keeps the intact copy.
async fn one_bit_flipped(name: &'static str, index: isize) {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let mut done = false;
    on_delivery(&server, move |to, mut s| {
        if !done && bare_of(to) == bob_jid && is_omemo(&s) {
            done = flip(&mut s, name, index, &any);
        }
        vec![s]
    });
    alice.send_text(bob.jid(), "pay 10 to carol").await.unwrap();
    let why = expect_failure(&mut bob).await;
    assert!(why.contains("alice"), "the failure names the sender: {why}");
    honest(&server);
    alice.send_text(bob.jid(), "still fine").await.unwrap();
    expect(&mut bob, "still fine").await;
    no_plaintext_on_server(
        &server,
        &["alice", "bob"],
        &["pay 10 to carol", "still fine"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_the_ratchet_header_is_refused() {
    // Bytes 20.. of an OMEMO:2 key element are the ratchet header (counter, ratchet key).
    one_bit_flipped("key", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_the_wrapped_key_is_refused() {
    one_bit_flipped("key", -1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_the_mac_is_refused() {
    one_bit_flipped("key", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flipped_in_the_payload_is_refused() {
    one_bit_flipped("payload", 0).await;
}

// ---- 8. key elements swapped between devices ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_elements_swapped_between_devices_are_refused() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut tablet = device(&server, bob.jid().as_str(), 23).await;
    alice.send_text(bob.jid(), "to both").await.unwrap();
    expect(&mut bob, "to both").await;
    expect(&mut tablet, "to both").await;
    let bob_jid = bob.jid().as_str().to_owned();
    on_delivery(&server, move |to, s| {
        if bare_of(to) == bob_jid && is_omemo(&s) {
            // rid 22 ↔ rid 23.
            let swapped = xml(&s)
                .replace("rid='22'", "rid='x'")
                .replace("rid='23'", "rid='22'")
                .replace("rid='x'", "rid='23'");
            return vec![parse(&swapped)];
        }
        vec![s]
    });
    alice.send_text(bob.jid(), "swapped").await.unwrap();
    expect_failure(&mut bob).await;
    expect_failure(&mut tablet).await;
    honest(&server);
    alice.send_text(bob.jid(), "after").await.unwrap();
    expect(&mut bob, "after").await;
    expect(&mut tablet, "after").await;
}

// ---- 9. a device injected into a contact's list ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_device_is_announced_and_left_out_once_verified() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    // The server operator adds a device of its own to Bob's account (it controls the
    // account's PEP nodes, so this is exactly what it can do).
    let mut mole = device(&server, bob.jid().as_str(), 666).await;
    let report = alice
        .send_text(bob.jid(), "before verifying")
        .await
        .unwrap();
    // Blind trust before verification: the new device reads along — but the user is told.
    assert!(
        report.new_keys.iter().any(|(_, d, _)| *d == 666),
        "{report:?}"
    );
    assert!(report.devices.iter().any(|(_, d)| *d == 666));
    expect(&mut bob, "before verifying").await;
    expect(&mut mole, "before verifying").await;

    // Alice verifies Bob's real device (fingerprint comparison); the conversation becomes
    // strongly authenticated once every reader is verified: the mole is distrusted by
    // the user, who noticed it.
    let b = bob.jid().as_str().to_owned();
    for (id, trust) in [(22, Trust::Verified), (666, Trust::Distrusted)] {
        let session = alice
            .store()
            .session(&SessionKey::new(Suite::Omemo2, &b, id))
            .unwrap()
            .unwrap();
        alice
            .store_mut()
            .set_trust(&b, session.peer_identity(), trust, 0)
            .unwrap();
    }
    let report = alice.send_text(bob.jid(), "verified now").await.unwrap();
    assert_eq!(
        report.properties.authentication,
        hush_proto::policy::Authentication::Strong
    );
    expect(&mut bob, "verified now").await;
    expect_failure(&mut mole).await;

    // A second injected device after verification: announced, and left out.
    let mut mole2 = device(&server, bob.jid().as_str(), 667).await;
    let report = alice.send_text(bob.jid(), "strong stays").await.unwrap();
    assert!(report.new_keys.iter().any(|(_, d, _)| *d == 667));
    assert!(report.devices.iter().all(|(_, d)| *d != 667 && *d != 666));
    let (_, _, why) = report
        .skipped
        .iter()
        .find(|(_, d, _)| *d == 667)
        .expect("the new device is reported as left out");
    assert!(
        matches!(why, Obstacle::Policy(LeftOut::NotVerified)),
        "{why}"
    );
    expect(&mut bob, "strong stays").await;
    expect_failure(&mut mole2).await;
}

/// Blind trust only before verification: once Alice verified one of Bob's devices, a device
/// that appears later is not trusted blindly, even while the conversation is not strongly
/// authenticated (Bob's tablet is still unverified).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_injected_after_a_verification_is_not_trusted_blindly() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut tablet = device(&server, bob.jid().as_str(), 23).await;
    alice.send_text(bob.jid(), "to both").await.unwrap();
    expect(&mut bob, "to both").await;
    expect(&mut tablet, "to both").await;
    nothing(&mut alice).await; // the tablet's answer to the key exchange
    let b = bob.jid().as_str().to_owned();
    let phone = alice
        .store()
        .session(&SessionKey::new(Suite::Omemo2, &b, 22))
        .unwrap()
        .unwrap();
    alice
        .store_mut()
        .set_trust(&b, phone.peer_identity(), Trust::Verified, 0)
        .unwrap();
    // A session reset (which a downgrade refusal asks for) forgets the sessions, not the
    // verification.
    hush_store::reset_sessions(alice.store_mut(), &b, None).unwrap();

    let mut mole = device(&server, &b, 666).await;
    let report = alice
        .send_text(bob.jid(), "weak, but careful")
        .await
        .unwrap();
    assert_eq!(
        report.properties.authentication,
        hush_proto::policy::Authentication::Weak
    );
    assert!(report.new_keys.iter().any(|(_, d, _)| *d == 666));
    let (_, _, why) = report
        .skipped
        .iter()
        .find(|(_, d, _)| *d == 666)
        .expect("the new device is left out");
    assert!(matches!(why, Obstacle::Policy(LeftOut::Undecided)), "{why}");
    expect(&mut bob, "weak, but careful").await;
    expect(&mut tablet, "weak, but careful").await;
    expect_failure(&mut mole).await;
    // What it writes is shown, with a warning that it is new and unverified.
    mole.send_text(alice.jid(), "it's me, trust me")
        .await
        .unwrap();
    let d = next(&mut alice).await;
    assert_eq!(d.body.as_deref(), Some("it's me, trust me"), "{d:?}");
    let warning = d.warning.expect("a warning");
    assert!(
        matches!(
            warning,
            Warning::Sender {
                key: Some(KeyConcern::NewUnverified),
                ..
            }
        ),
        "{warning}"
    );
}

// ---- 10. a device removed from a list -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_hidden_from_the_sender_notices_it_was_left_out() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut tablet = device(&server, bob.jid().as_str(), 23).await;
    let alice_jid = alice.jid().as_str().to_owned();
    // Alice is shown Bob's device list without the tablet.
    on_delivery(&server, move |to, s| {
        if bare_of(to) == alice_jid && s.name() == "iq" {
            let text = xml(&s);
            if text.contains("urn:xmpp:omemo:2:devices") {
                return vec![parse(&text.replace("<device id='23'/>", ""))];
            }
        }
        vec![s]
    });
    let report = alice.send_text(bob.jid(), "who reads this?").await.unwrap();
    // The sender's report names exactly who can read it.
    assert!(report.devices.iter().all(|(_, d)| *d != 23), "{report:?}");
    expect(&mut bob, "who reads this?").await;
    // The hidden device gets the message but no key: a visible failure, not silence.
    let why = expect_failure(&mut tablet).await;
    assert!(why.contains("not encrypted for this device"), "{why}");
    honest(&server);
}

// ---- 11. a bundle with a forged signed-prekey signature -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_with_a_forged_signature_gets_no_session() {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let mut alice = device(&server, &alice, 11).await;
    let mut bob = device(&server, &bob, 22).await;
    let mut tablet = device(&server, bob.jid().as_str(), 23).await;
    // The tablet's bundle comes with a signature that does not verify.
    on_delivery(&server, move |_, mut s| {
        if s.name() == "iq" {
            let text = xml(&s);
            if text.contains("urn:xmpp:omemo:2:bundles") && text.contains("<item id='23'") {
                flip(&mut s, "spks", 0, &any);
            }
        }
        vec![s]
    });
    let report = alice.send_text(bob.jid(), "hi").await.unwrap();
    honest(&server);
    // The report says who was left out, and why; no session was built on the forged keys.
    assert_eq!(report.devices, [(bob.jid().to_string(), 22)]);
    let (_, _, why) = report
        .skipped
        .iter()
        .find(|(_, d, _)| *d == 23)
        .expect("the tablet is reported");
    assert!(
        matches!(why, Obstacle::BadBundle(ProtoError::BadSignature(_))),
        "{why}"
    );
    assert!(alice
        .store()
        .session(&SessionKey::new(Suite::Omemo2, bob.jid().as_str(), 23))
        .unwrap()
        .is_none());
    expect(&mut bob, "hi").await;
    let why = expect_failure(&mut tablet).await;
    assert!(why.contains("not encrypted for this device"), "{why}");
}

// ---- 12. an old signed prekey ---------------------------------------------------------------

/// `<item id='ID'>` holding Bob's OMEMO:2 bundle as the server stores it now.
fn bundle_item(server: &DevServer, user: &str, id: u32) -> String {
    let want = format!("id='{id}'");
    let item = server
        .pep_items(user, "urn:xmpp:omemo:2:bundles")
        .into_iter()
        .find(|i| xml(i).contains(&want))
        .expect("the bundle is published");
    xml(&item)
}

/// Replaces the `<item …>…</item>` in a PEP answer with `item`.
fn with_item(answer: &Element, item: &str) -> Element {
    let text = xml(answer);
    let (Some(start), Some(end)) = (text.find("<item "), text.rfind("</item>")) else {
        return answer.clone();
    };
    parse(&format!(
        "{}{item}{}",
        &text[..start],
        &text[end + "</item>".len()..]
    ))
}

/// Every bundle fetch for device `id` is answered with `item` instead.
fn serve_bundle(server: &DevServer, id: u32, item: String) {
    let marker = format!("id='{id}'");
    on_delivery(server, move |_, s| {
        let text = xml(&s);
        if s.name() == "iq" && text.contains("urn:xmpp:omemo:2:bundles") && text.contains(&marker) {
            return vec![with_item(&s, &item)];
        }
        vec![s]
    });
}

/// Rotates the signed prekey of the account in `hush` and republishes its bundle.
async fn rotate_signed_prekey(server: &DevServer, hush: Device) -> Device {
    let mut store = hush.close().await.unwrap();
    let mut keys = store.account().unwrap().unwrap().device;
    keys.rotate_signed_prekey(0, &mut rand_core::UnwrapErr(rand::rngs::SysRng));
    store.save_device(&keys).unwrap();
    let mut hush = connect(server, store).await;
    hush.announce().await.unwrap();
    hush
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_signed_prekey_works_one_rotation_back_and_fails_visibly_beyond() {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let carol = server.register("carol", "pw").unwrap();
    let bob = device(&server, &bob, 22).await;
    let first = bundle_item(&server, "bob", 22);
    let bob = rotate_signed_prekey(&server, bob).await;
    assert_ne!(first, bundle_item(&server, "bob", 22));

    // The server hands Alice the bundle from before the rotation.
    let (mut alice, mut carol) = (
        device(&server, &alice, 11).await,
        device(&server, &carol, 33).await,
    );
    serve_bundle(&server, 22, first.clone());
    alice
        .send_text(&bob.jid().clone(), "old key, still kept")
        .await
        .unwrap();
    let mut bob = bob;
    expect(&mut bob, "old key, still kept").await;

    // Two rotations later the first key is gone: Carol, served the same stale bundle, gets
    // a visible failure at Bob instead of a silent loss.
    honest(&server);
    let bob = rotate_signed_prekey(&server, bob).await;
    let mut bob = rotate_signed_prekey(&server, bob).await;
    serve_bundle(&server, 22, first);
    carol
        .send_text(&bob.jid().clone(), "too old")
        .await
        .unwrap();
    let why = expect_failure(&mut bob).await;
    assert!(why.contains("carol"), "{why}");
}

// ---- 13. one-time prekeys exhausted ---------------------------------------------------------

/// Removes every descendant named `name`.
fn strip(el: &mut Element, name: &str) {
    loop {
        let ns = el.children().find(|c| c.name() == name).map(|c| c.ns());
        match ns {
            Some(ns) => {
                el.remove_child(name, ns.as_str());
            }
            None => break,
        }
    }
    for c in el.children_mut() {
        strip(c, name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_without_one_time_prekeys_is_refused_and_nothing_is_sent() {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let mut alice = device(&server, &alice, 11).await;
    let mut bob = device(&server, &bob, 22).await;
    on_delivery(&server, move |_, mut s| {
        if s.name() == "iq" && xml(&s).contains("urn:xmpp:omemo:2:bundles") {
            strip(&mut s, "pk");
        }
        vec![s]
    });
    // OMEMO:2 makes the one-time prekey mandatory (its key exchange names one): with none
    // left there is no session to build, and nothing goes out, in clear or otherwise.
    let err = alice.send_text(bob.jid(), "hi").await.unwrap_err();
    assert!(
        matches!(&err, XmppError::NotSent { refusal: Refusal::Policy { devices, .. }, .. }
            if matches!(devices[..], [(22, DeviceState::Unusable(Obstacle::BadBundle(ProtoError::NoPreKeys(22))))])),
        "{err:?}"
    );
    nothing_got_through_then_recovers(&server, &mut alice, &mut bob, "hi again").await;
}

// ---- 14. <encrypted> stripped, a body in clear instead --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stripped_of_encryption_is_flagged_and_the_real_one_recovered() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let mut done = false;
    on_delivery(&server, move |to, s| {
        if !done && bare_of(to) == bob_jid && is_omemo(&s) {
            done = true;
            let from = s.attr("from").unwrap_or_default().to_owned();
            return vec![parse(&format!(
                "<message xmlns='jabber:client' from='{from}' to='{to}' type='chat' id='forged-1'>\
                   <body>Send the money to mallory</body></message>"
            ))];
        }
        vec![s]
    });
    alice
        .send_text(bob.jid(), "Do not pay anyone")
        .await
        .unwrap();
    let d = next(&mut bob).await;
    assert_eq!(d.suite, None);
    let warning = d.warning.expect("a warning");
    assert!(matches!(warning, Warning::Downgrade), "{warning}");
    honest(&server);
    // The real message is in the archive; Bob's next catch-up finds it.
    let (_bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert_eq!(got, ["Do not pay anyone"]);
}

// ---- 15. a forged `from` --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_a_forged_sender_is_not_shown_as_from_anyone() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    server.register("carol", "pw").unwrap();
    let (alice_jid, bob_jid) = (alice.jid().to_string(), bob.jid().to_string());
    let mut done = false;
    on_delivery(&server, move |to, s| {
        if !done && bare_of(to) == bob_jid && is_omemo(&s) {
            done = true;
            return vec![parse(
                &xml(&s).replace(&format!("from='{alice_jid}"), "from='carol@localhost"),
            )];
        }
        vec![s]
    });
    alice.send_text(bob.jid(), "signed, alice").await.unwrap();
    let d = next(&mut bob).await;
    assert_eq!(d.from, "carol@localhost");
    assert!(d.body.is_none() && d.failure.is_some(), "{d:?}");
    honest(&server);
    alice.send_text(bob.jid(), "still alice").await.unwrap();
    expect(&mut bob, "still alice").await;
}

// ---- 16. a rewritten SCE `to` ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_redirected_to_another_conversation_is_refused() {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let carol = server.register("carol", "pw").unwrap();
    let mut phone = device(&server, &alice, 11).await;
    let mut laptop = device(&server, &alice, 12).await;
    let _bob = device(&server, &bob, 22).await;
    let mut carol = device(&server, &carol, 33).await;
    // Alice's copies of a message to Carol (the laptop's Carbon, and the archive's copy) are
    // rewritten to look like a message to Bob.
    let alice_jid = alice.clone();
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == alice_jid && text.contains("urn:xmpp:forward:0") {
            return vec![parse(
                &text.replace("to='carol@localhost'", "to='bob@localhost'"),
            )];
        }
        vec![s]
    });
    phone
        .send_text(&carol.jid().clone(), "for carol only")
        .await
        .unwrap();
    expect(&mut carol, "for carol only").await;
    // The envelope inside says "to carol": the laptop refuses the copy "to bob".
    let d = next(&mut laptop).await;
    assert!(d.body.is_none() && d.failure.is_some(), "{d:?}");
    let bob_jid: BareJid = bob.parse().unwrap();
    assert!(history(&laptop, &bob_jid)
        .iter()
        .all(|t| !t.contains("for carol only")));
}

// ---- 17. a replayed key exchange (session-reset attack) -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_key_exchange_does_not_reset_the_session() {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let bob_jid = bob.clone();
    let held = Held::default();
    let copy = held.clone();
    on_delivery(&server, move |to, s| {
        if bare_of(to) == bob_jid && is_omemo(&s) && xml(&s).contains("kex='true'") {
            copy.push(to, s.clone());
        }
        vec![s]
    });
    let mut alice = device(&server, &alice, 11).await;
    let mut bob = device(&server, &bob, 22).await;
    // Bob goes online (his first receive reads the archive, then sends presence), so the key
    // exchange reaches him live.
    nothing(&mut bob).await;
    alice.send_text(bob.jid(), "first").await.unwrap();
    expect(&mut bob, "first").await;
    bob.send_text(alice.jid(), "answer").await.unwrap();
    expect(&mut alice, "answer").await;
    alice.send_text(bob.jid(), "second").await.unwrap();
    expect(&mut bob, "second").await;
    let (to, kex) = held.take().into_iter().next().expect("the key exchange");
    honest(&server);
    let before = bob
        .store()
        .session(&SessionKey::new(Suite::Omemo2, alice.jid().as_str(), 11))
        .unwrap()
        .unwrap();
    // The server replays the key exchange as a new message.
    let replay = xml(&kex)
        .replace("urn:xmpp:sid:0", "urn:example:stripped")
        .replace(" id='", " data-old-id='");
    server.inject(&to, parse(&replay));
    let d = bob.receive(Duration::from_secs(2)).await.unwrap();
    assert!(d.as_ref().is_none_or(|d| d.body.is_none()), "{d:?}");
    let after = bob
        .store()
        .session(&SessionKey::new(Suite::Omemo2, alice.jid().as_str(), 11))
        .unwrap()
        .unwrap();
    assert_eq!(
        before.to_bytes().as_slice(),
        after.to_bytes().as_slice(),
        "the session was not replaced"
    );
    alice.send_text(bob.jid(), "third").await.unwrap();
    expect(&mut bob, "third").await;
    bob.send_text(alice.jid(), "both ways").await.unwrap();
    expect(&mut alice, "both ways").await;
}

// ---- 18. a forged key exchange with another identity ----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_exchange_from_an_impostor_device_is_refused() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    // The server (which can log in as anyone) writes as "Alice's device 11" with new keys.
    let mut impostor = connect(&server, offline_device(alice.jid().as_str(), 11)).await;
    let _ = impostor.send_text(bob.jid(), "I am alice, trust me").await;
    let why = expect_failure(&mut bob).await;
    assert!(why.contains("DIFFERENT identity key"), "{why}");
    alice.send_text(bob.jid(), "the real alice").await.unwrap();
    expect(&mut bob, "the real alice").await;
}

// ---- 19–20. oversized and deeply nested stanzas ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_stanza_from_the_server_loses_nothing() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let mut junk = format!(
        "<message xmlns='jabber:client' from='alice@localhost/x' to='{}' type='chat'><x xmlns='urn:example:junk'>",
        bob.jid()
    );
    junk.push_str(&"A".repeat(8 << 20));
    junk.push_str("</x></message>");
    server.inject_raw(bob.jid().as_str(), junk.into_bytes());
    alice.send_text(bob.jid(), "after the flood").await.unwrap();
    expect(&mut bob, "after the flood").await;
    // Cut off before parsing (the connection was dropped), not buffered whole and ignored.
    assert!(bob.link_stats().drops >= 1, "{:?}", bob.link_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_stanza_from_the_server_loses_nothing() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let depth = 100_000;
    let mut junk = format!(
        "<message xmlns='jabber:client' from='alice@localhost/x' to='{}' type='chat'>",
        bob.jid()
    );
    junk.push_str(&"<a>".repeat(depth));
    junk.push_str(&"</a>".repeat(depth));
    junk.push_str("</message>");
    server.inject_raw(bob.jid().as_str(), junk.into_bytes());
    alice
        .send_text(bob.jid(), "after the nesting")
        .await
        .unwrap();
    expect(&mut bob, "after the nesting").await;
    assert!(bob.link_stats().drops >= 1, "{:?}", bob.link_stats());
}

// ---- 21. a flooded device list --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_device_list_is_refused_and_nothing_is_sent() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let alice_jid = alice.jid().as_str().to_owned();
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == alice_jid && s.name() == "iq" && text.contains("urn:xmpp:omemo:2:devices")
        {
            let many: String = (1000..11_000)
                .map(|i| format!("<device id=\"{i}\"/>"))
                .collect();
            return vec![parse(&text.replacen(
                "<device ",
                &format!("{many}<device "),
                1,
            ))];
        }
        vec![s]
    });
    let err = alice
        .send_text(bob.jid(), "to ten thousand")
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::DeviceListTooLong { .. }), "{err}");
    nothing_got_through_then_recovers(&server, &mut alice, &mut bob, "to one").await;
}

// ---- 22–23. forged Carbons and archive results ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carbon_or_archive_result_not_from_our_account_is_ignored() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_jid = bob.jid().as_str().to_owned();
    let held = watch_omemo_to(&server, &bob_jid, false);
    alice.send_text(bob.jid(), "held back").await.unwrap();
    alice.flush().await.unwrap();
    let (to, real) = held.take().pop().unwrap();
    honest(&server);
    // Someone other than Bob's own account wraps it as a Carbon, and as an archive result.
    let inner = xml(&real);
    for wrapper in [
        format!("<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></received>"),
        format!("<result xmlns='urn:xmpp:mam:2' queryid='hush-mam-1' id='x1'><forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></result>"),
    ] {
        server.inject(
            &to,
            parse(&format!(
                "<message xmlns='jabber:client' from='mallory@localhost/m' to='{to}'>{wrapper}</message>"
            )),
        );
    }
    nothing(&mut bob).await;
    // The real message was never lost: it is in Bob's archive.
    let (_bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert_eq!(got, ["held back"]);
}

// ---- 24. a downgrade to the legacy protocol -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hiding_the_omemo2_list_does_not_downgrade_the_conversation() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let alice_jid = alice.jid().as_str().to_owned();
    // Alice is told Bob has no OMEMO:2 device list, only the legacy one.
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == alice_jid && s.name() == "iq" && text.contains("urn:xmpp:omemo:2:devices")
        {
            let id = s.attr("id").unwrap_or_default().to_owned();
            let from = s.attr("from").unwrap_or_default().to_owned();
            return vec![parse(&format!(
                "<iq xmlns='jabber:client' type='error' id='{id}' from='{from}' to='{to}'>\
                   <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            ))];
        }
        vec![s]
    });
    let err = alice.send_text(bob.jid(), "in legacy?").await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("downgrading"), "{text}");
    nothing(&mut bob).await;
    honest(&server);
    let report = alice.send_text(bob.jid(), "still omemo:2").await.unwrap();
    assert_eq!(report.suite, Some(Suite::Omemo2));
    expect(&mut bob, "still omemo:2").await;
}

// ---- 26. an archive query failed midway -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_failing_midway_loses_and_hides_nothing() {
    let server = server().await;
    let (mut alice, bob) = pair(&server).await;
    let store = bob.close().await.unwrap();
    let texts: Vec<String> = (0..120).map(|i| format!("backlog {i}")).collect();
    for t in &texts {
        alice
            .send_text(&"bob@localhost".parse().unwrap(), t)
            .await
            .unwrap();
    }
    alice.flush().await.unwrap();
    // Connecting reads the newest page of the archive (the rollback check): the pages
    // counted below are the catch-up's.
    let mut bob = connect(&server, store).await;
    // The second page of Bob's catch-up ends in an error instead of its `<fin/>`.
    let mut fins = 0;
    on_delivery(&server, move |to, s| {
        if bare_of(to) == "bob@localhost" && s.name() == "iq" && xml(&s).contains("<fin ") {
            fins += 1;
            if fins == 2 {
                let id = s.attr("id").unwrap_or_default().to_owned();
                return vec![parse(&format!(
                    "<iq xmlns='jabber:client' type='error' id='{id}' to='{to}'>\
                       <error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                ))];
            }
        }
        vec![s]
    });
    // What was committed before the error is returned, not hidden behind it.
    let first = caught_up(&mut bob).await;
    assert!(
        !first.is_empty() && first.len() < texts.len(),
        "{}",
        first.len()
    );
    assert_eq!(first[..], texts[..first.len()]);
    // The next receive finishes the catch-up: the rest, in order, once.
    let mut rest = Vec::new();
    while rest.len() < texts.len() - first.len() {
        rest.push(next(&mut bob).await.body.unwrap_or_default());
    }
    assert_eq!(rest[..], texts[first.len()..]);
    nothing(&mut bob).await;
}

// ---- 27. a flood of archive results ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_archive_results_is_cut_off() {
    let server = server().await;
    let (mut alice, bob) = pair(&server).await;
    let store = bob.close().await.unwrap();
    for i in 0..60 {
        alice
            .send_text(&"bob@localhost".parse().unwrap(), &format!("m{i}"))
            .await
            .unwrap();
    }
    alice.flush().await.unwrap();
    // Every archive result reaches Bob ten times over: more than any page holds.
    on_delivery(&server, move |to, s| {
        if bare_of(to) == "bob@localhost"
            && xml(&s).contains("urn:xmpp:mam:2")
            && s.name() == "message"
        {
            return vec![s; 10];
        }
        vec![s]
    });
    let mut bob = connect(&server, store).await;
    let err = bob.catch_up(0).await.unwrap_err();
    assert!(matches!(err, XmppError::ArchiveMisbehaves(_)), "{err}");
    // Once the server behaves, everything arrives, once.
    honest(&server);
    let mut got = Vec::new();
    while got.len() < 60 {
        got.push(next(&mut bob).await.body.unwrap_or_default());
    }
    let want: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    nothing(&mut bob).await;
}

// ---- 28. a forged archive result inside a real catch-up -------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_result_for_our_running_archive_query_is_ignored() {
    let server = server().await;
    let (mut alice, bob) = pair(&server).await;
    let store = bob.close().await.unwrap();
    alice
        .send_text(&"bob@localhost".parse().unwrap(), "real")
        .await
        .unwrap();
    alice.flush().await.unwrap();
    // Next to each real result of Bob's query, one with the same query id from someone else,
    // carrying a message "from Alice" in clear.
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == "bob@localhost"
            && s.name() == "message"
            && text.contains("urn:xmpp:mam:2")
        {
            let qid = s
                .children()
                .find(|c| c.name() == "result")
                .and_then(|r| r.attr("queryid"))
                .unwrap_or_default()
                .to_owned();
            let forged = parse(&format!(
                "<message xmlns='jabber:client' from='mallory@localhost/m' to='{to}'>\
                   <result xmlns='urn:xmpp:mam:2' queryid='{qid}' id='forged-1'><forwarded xmlns='urn:xmpp:forward:0'>\
                   <message xmlns='jabber:client' from='alice@localhost/x' to='bob@localhost' type='chat'>\
                   <body>forged by mallory</body></message></forwarded></result></message>"
            ));
            return vec![s, forged];
        }
        vec![s]
    });
    let mut bob = connect(&server, store).await;
    let got = bob.catch_up(0).await.unwrap();
    let bodies: Vec<_> = got.iter().filter_map(|d| d.body.clone()).collect();
    assert_eq!(bodies, ["real"]);
    nothing(&mut bob).await;
    assert!(history(&bob, alice.jid())
        .iter()
        .all(|t| !t.contains("forged by mallory")));
}

// ---- 29-31. unauthenticated stanzas never hide authenticated ones ----------------------------

/// Holds Alice's next message to Bob back and returns it (with the session it was for), after
/// the server archived it: live delivery is what the adversary controls here.
async fn hold_next_message(
    server: &DevServer,
    alice: &mut Device,
    bob: &Device,
    text: &str,
) -> (String, Element) {
    let held = watch_omemo_to(server, bob.jid().as_str(), false);
    alice.send_text(bob.jid(), text).await.unwrap();
    devserver::eventually("the message reached the server", || held.len() == 1).await;
    honest(server);
    held.take().pop().unwrap()
}

/// A copy of `real` with its encryption replaced by `body` in clear (the ids stay).
fn in_clear(real: &Element, body: &str) -> Element {
    let mut forged = real.clone();
    strip(&mut forged, "encrypted");
    strip(&mut forged, "body");
    forged.append_child(
        Element::builder("body", "jabber:client")
            .append(body)
            .build(),
    );
    forged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_message_in_clear_with_the_real_ids_does_not_hide_the_real_one() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let (to, real) = hold_next_message(&server, &mut alice, &bob, "the real one").await;
    assert!(xml(&real).contains("urn:xmpp:sid:0"), "{}", xml(&real));
    // The forgery arrives first, carrying the real message's origin id and stanza id.
    server.inject(&to, in_clear(&real, "pay mallory"));
    let d = next(&mut bob).await;
    assert_eq!(d.body.as_deref(), Some("pay mallory"));
    assert!(matches!(d.warning, Some(Warning::Downgrade)), "{d:?}");
    // The real message still arrives live, and is not shown again from the archive.
    server.inject(&to, real);
    expect(&mut bob, "the real one").await;
    let (_bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_message_with_the_real_ids_does_not_hide_the_real_one() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let (to, real) = hold_next_message(&server, &mut alice, &bob, "the real one").await;
    let mut garbage = real.clone();
    assert!(flip(&mut garbage, "payload", 3, &any));
    server.inject(&to, garbage.clone());
    expect_failure(&mut bob).await;
    // A second copy of the garbage is the same failure: not shown twice.
    server.inject(&to, garbage);
    nothing(&mut bob).await;
    server.inject(&to, real);
    expect(&mut bob, "the real one").await;
    let (bob, got) = reconnect_and_catch_up(&server, bob).await;
    assert!(got.is_empty(), "{got:?}");
    let texts = history(&bob, alice.jid());
    assert_eq!(
        texts.iter().filter(|t| t.starts_with('!')).count(),
        1,
        "{texts:?}"
    );
    assert_eq!(texts.last().map(String::as_str), Some("the real one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_replay_of_a_read_message_is_a_visible_failure() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let held = watch_omemo_to(&server, bob.jid().as_str(), true);
    alice.send_text(bob.jid(), "transfer 100").await.unwrap();
    expect(&mut bob, "transfer 100").await;
    let (to, old) = held.take().pop().unwrap();
    honest(&server);
    // The old message with new ids and one changed payload byte: its message key is used, so
    // nothing can authenticate it. That is no proof of a duplicate: it is shown as a failure.
    let mut changed = parse(
        &xml(&old)
            .replace("urn:xmpp:sid:0", "urn:example:stripped")
            .replace(" id='", " data-old-id='"),
    );
    assert!(flip(&mut changed, "payload", 0, &any));
    server.inject(&to, changed);
    let error = expect_failure(&mut bob).await;
    assert!(error.contains("message key"), "{error}");
    alice.send_text(bob.jid(), "next").await.unwrap();
    expect(&mut bob, "next").await;
}

// ---- 41. a key exchange relabelled as coming from another contact --------------------------

/// Carol (a contact of Bob's) builds a key exchange for Bob with her own identity key, and
/// the message reaches Bob labelled as coming from Alice's device 11, which Bob never wrote
/// to — a forged `from` on the way, as anyone able to inject stanzas in Alice's name can do.
/// Legacy OMEMO has nothing inside the encryption that names the sender; an omemo:2 envelope
/// may leave out `<from/>`. Either way Bob checks the key exchange against the key Alice
/// publishes for device 11, refuses it visibly, and shows nothing of it as Alice's.
async fn relabelled_key_exchange(suite: Suite) {
    let server = server().await;
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let carol = server.register("carol", "pw").unwrap();
    let mut alice = device(&server, &alice, 11).await;
    let mut bob = device(&server, &bob, 22).await;
    let carol = device(&server, &carol, 33).await;
    nothing(&mut bob).await; // online, so the forgery reaches it live
    let carol_keys = carol.store().account().unwrap().unwrap().device;
    let bob_bundle = bob.store().account().unwrap().unwrap().device.bundle(suite);
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let mut session =
        hush_proto::Session::initiate(carol_keys.identity(), &bob_bundle, &mut rng).unwrap();
    let payload: Vec<u8> = match suite {
        Suite::Legacy => b"I am alice".to_vec(),
        // An envelope without `<from/>` (XEP-0384 only says it SHOULD be there).
        _ => b"<envelope xmlns='urn:xmpp:sce:1'><content><body \
            xmlns='jabber:client'>I am alice</body></content><rpad>xyz</rpad></envelope>"
            .to_vec(),
    };
    let element = hush_proto::seal(
        suite,
        alice.device_id(),
        Some(&payload),
        &mut [hush_proto::Recipient {
            jid: bob.jid().as_str(),
            device_id: bob.device_id(),
            session: &mut session,
        }],
        &mut rng,
    )
    .unwrap();
    let stanza = format!(
        "<message xmlns='jabber:client' from='{}/forged' to='{}' type='chat' id='relabel-1'>\
         {}<body>This message is encrypted with OMEMO</body></message>",
        alice.jid(),
        bob.jid(),
        String::from(&element.to_element())
    );
    assert_eq!(server.inject(bob.jid().as_str(), parse(&stanza)), 1);
    let d = next(&mut bob).await;
    assert_eq!(d.from, alice.jid().as_str());
    assert!(
        d.body.is_none(),
        "a relabelled key exchange was read: {d:?}"
    );
    let why = d.failure.expect("a visible failure");
    assert!(matches!(why, Failure::ForgedKeyExchange { .. }), "{why}");
    assert!(history(&bob, alice.jid())
        .iter()
        .all(|t| !t.contains("I am alice")));
    assert!(bob
        .store()
        .session(&SessionKey::new(suite, alice.jid().as_str(), 11))
        .unwrap()
        .is_none());
    // The real Alice is not locked out.
    alice.send_text(bob.jid(), "the real alice").await.unwrap();
    expect(&mut bob, "the real alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_key_exchange_relabelled_as_from_another_contact_is_refused() {
    relabelled_key_exchange(Suite::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_omemo2_key_exchange_without_from_relabelled_as_from_another_contact_is_refused() {
    relabelled_key_exchange(Suite::Omemo2).await;
}
