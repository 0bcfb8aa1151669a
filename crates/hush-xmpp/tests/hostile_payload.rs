//! A hostile payload inside a properly encrypted message: a stranger (an account the victim never
//! wrote to) starts a session from the victim's published bundle and sends an OMEMO:2 message
//! whose SCE envelope nests 19,200 elements deep, with CDATA sections holding `</` so that a
//! byte scanner counting end tags sees no more than 32 levels. The stream limits cannot see it
//! (it is ciphertext on the wire); only the envelope parser meets it, after decryption.
//!
//! This used to abort the victim's process with a stack overflow, live, and again on every
//! catch-up that fetched the archived copy. Now the victim shows one visible failure per such
//! message, live or from the archive, never twice, and keeps receiving.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::time::Duration;

use hush_devserver::DevServer;
use hush_proto::{seal, LocalDevice, Recipient, Session, Suite};
use hush_store::{Failure, MemoryStore, Store};
use hush_test_support::devserver::{self, connect, device, options};
use hush_xmpp::{BareJid, Delivery, Hush, XmppClient};

type Device = Hush<MemoryStore>;

/// The victim's device id.
const ALICE_DEVICE: u32 = 11;

/// An envelope that passed the byte scanner `sce::open` used to run before parsing: batches
/// of thirty `<x>`, each followed by a CDATA section holding thirty `</` (which the scanner
/// took for end tags), then every real end tag. 640 batches are 19,200 levels in 181 KB,
/// small enough that the stanza carrying it stays under the usual 256 KiB server limit.
fn hostile_envelope(from: &str, to: &str) -> Vec<u8> {
    let rounds = 640;
    let batch = format!("{}<![CDATA[{}]]>", "<x>".repeat(30), "</".repeat(30));
    format!(
        "<envelope xmlns='urn:xmpp:sce:1'><content>{}{}</content><rpad>x</rpad>\
         <to jid='{to}'/><from jid='{from}'/></envelope>",
        batch.repeat(rounds),
        "</x>".repeat(30 * rounds)
    )
    .into_bytes()
}

/// The stranger: a bare XMPP client that encrypts by hand with hush-proto.
struct Stranger {
    client: XmppClient,
    jid: String,
    me: LocalDevice,
    sent: u32,
}

impl Stranger {
    async fn connect(server: &DevServer, user: &str) -> Stranger {
        let jid = server.register(user, "pw").unwrap();
        let client = XmppClient::connect(&jid, "pw", &options(server))
            .await
            .unwrap();
        let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
        let me = LocalDevice::generate(666, 1, 0, &mut rng).unwrap();
        // Published like any client's, so its key exchanges can be bound to it.
        let mut client = client;
        client
            .publish_bundle(&me.bundle(Suite::Omemo2))
            .await
            .unwrap();
        Stranger {
            client,
            jid,
            me,
            sent: 0,
        }
    }

    /// Sends `victim` an OMEMO:2 message carrying `envelope`, as a key exchange on a session
    /// started from the victim's published bundle, and waits until the server has it.
    async fn send(&mut self, victim: &BareJid, envelope: &[u8]) {
        let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
        let bundle = self
            .client
            .bundle(victim, Suite::Omemo2, ALICE_DEVICE)
            .await
            .unwrap();
        let mut session = Session::initiate(self.me.identity(), &bundle, &mut rng).unwrap();
        let encrypted = seal(
            Suite::Omemo2,
            self.me.device_id(),
            Some(envelope),
            &mut [Recipient {
                jid: victim.as_str(),
                device_id: ALICE_DEVICE,
                session: &mut session,
            }],
            &mut rng,
        )
        .unwrap();
        self.sent += 1;
        let id = format!("hostile-{}", self.sent);
        self.client
            .send_message(&hush_engine::MessageStanza::encrypted(
                victim.as_str(),
                encrypted.clone(),
                id.clone(),
            ))
            .await
            .unwrap();
        self.client.flush().await.unwrap();
    }
}

async fn next(hush: &mut Device) -> Delivery {
    hush.receive(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a message should have arrived")
}

async fn expect(hush: &mut Device, text: &str) {
    let d = next(hush).await;
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
    assert!(d.failure.is_none(), "{d:?}");
}

/// The hostile message, shown as what it is: a failure from the stranger, without text.
fn assert_refused(d: &Delivery, stranger: &str) {
    assert_eq!(d.from, stranger, "{d:?}");
    assert!(d.body.is_none(), "{d:?}");
    let error = d.failure.as_ref().expect("a visible failure");
    assert!(
        matches!(error, Failure::Undecryptable { detail }
            if detail.contains("SCE envelope exceeds the size or nesting limit")),
        "{error}"
    );
}

/// Nothing arrives within a short while (bounded wait for an absence).
async fn nothing(hush: &mut Device) {
    let d = hush.receive(Duration::from_millis(800)).await.unwrap();
    assert!(d.is_none(), "unexpected: {d:?}");
}

/// Disconnects and reconnects `hush`; returns it with what its archive catch-up found.
async fn reconnect(server: &DevServer, hush: Device) -> (Device, Vec<Delivery>) {
    let store = hush.close().await.unwrap();
    let mut hush = connect(server, store).await;
    let found = hush.catch_up(0).await.unwrap();
    (hush, found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_deeply_nested_envelope_is_one_visible_failure_live_and_archived() {
    let server = devserver::server().await;
    let alice_jid = server.register("alice", "pw").unwrap();
    let bob_jid = server.register("bob", "pw").unwrap();
    let mut alice = device(&server, &alice_jid, ALICE_DEVICE).await;
    let mut bob = device(&server, &bob_jid, 22).await;
    let (alice_bare, bob_bare) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&bob_bare, "hello bob").await.unwrap();
    expect(&mut bob, "hello bob").await;
    bob.send_text(&alice_bare, "hello alice").await.unwrap();
    expect(&mut alice, "hello alice").await;

    let mut mallory = Stranger::connect(&server, "mallory").await;
    let envelope = hostile_envelope(&mallory.jid, alice_bare.as_str());
    assert!(envelope.len() < 190_000, "{}", envelope.len());
    assert!(
        alice.store().history(&mallory.jid, 10).unwrap().is_empty(),
        "Mallory is a stranger"
    );

    // Live: one failure, and the client keeps running.
    mallory.send(&alice_bare, &envelope).await;
    assert_refused(&next(&mut alice).await, &mallory.jid);
    bob.send_text(&alice_bare, "still there?").await.unwrap();
    expect(&mut alice, "still there?").await;

    // While Alice is offline, a second one, then a message from Bob: her catch-up reads both
    // from the archive (next to the first one's archived copy, which it already has).
    let store = alice.close().await.unwrap();
    mallory.send(&alice_bare, &envelope).await;
    bob.send_text(&alice_bare, "while you were away")
        .await
        .unwrap();
    bob.flush().await.unwrap();
    let mut alice = connect(&server, store).await;
    let found = alice.catch_up(0).await.unwrap();
    let (from_mallory, from_bob): (Vec<_>, Vec<_>) =
        found.iter().partition(|d| d.from == mallory.jid);
    assert_eq!(from_mallory.len(), 1, "{found:?}");
    assert_refused(from_mallory[0], &mallory.jid);
    let texts: Vec<_> = from_bob.iter().map(|d| d.body.as_deref()).collect();
    assert_eq!(texts, [Some("while you were away")], "{found:?}");
    // The offline copies the server pushes on login are the same messages again: not shown.
    nothing(&mut alice).await;

    // Another catch-up over the same archive: nothing is shown twice, nothing aborts.
    let (mut alice, found) = reconnect(&server, alice).await;
    assert!(found.is_empty(), "{found:?}");
    nothing(&mut alice).await;

    // The history holds the two failures once each; the contact's messages still arrive.
    let history = alice.store().history(&mallory.jid, 10).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        history
            .iter()
            .all(|m| m.body.is_none() && m.failure.is_some()),
        "{history:?}"
    );
    bob.send_text(&alice_bare, "after all that").await.unwrap();
    expect(&mut alice, "after all that").await;
    alice.send_text(&bob_bare, "all fine here").await.unwrap();
    expect(&mut bob, "all fine here").await;
}
