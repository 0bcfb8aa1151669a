//! XEP-0384's business rules through a real Prosody: the heartbeat after 53 unanswered
//! messages, and key exchanges found during an archive catch-up answered once, afterwards.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::{Suite, HEARTBEAT_AFTER};
use hush_store::{MemoryStore, SessionKey, Store};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{BareJid, Hush};
use support::{account, connect, expect_text};

fn session_with(hush: &Hush<MemoryStore>, jid: &BareJid, device: u32) -> hush_proto::Session {
    hush.store()
        .session(&SessionKey::new(Suite::Omemo2, jid.as_str(), device))
        .unwrap()
        .expect("a session")
}

fn prekey_ids(store: &MemoryStore) -> Vec<u32> {
    let device = store.account().unwrap().unwrap().device;
    let bundle = device.bundle(Suite::Omemo2);
    bundle.prekeys.iter().map(|(id, _)| *id).collect()
}

/// Nothing more arrives within a short while: in particular no "could not decrypt" entry for
/// the empty messages processed meanwhile.
async fn nothing_visible(hush: &mut Hush<MemoryStore>) {
    let extra = hush.receive(Duration::from_secs(2)).await.unwrap();
    assert!(extra.is_none(), "{extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_after_53_unanswered_messages() {
    let server = Prosody::start("heartbeat");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());

    // The first message carries Bob's key exchange; Alice answers it with an empty message.
    bob.send_text(&alice_jid, "m1").await.unwrap();
    expect_text(&mut alice, "m1").await;
    assert_eq!(session_with(&alice, &bob_jid, 22).sending_chain_length(), 1);
    nothing_visible(&mut bob).await;
    assert!(session_with(&bob, &alice_jid, 11).is_confirmed());

    // Now Bob's messages form a new receiving chain at Alice; she never answers.
    for i in 1..HEARTBEAT_AFTER {
        let text = format!("unanswered {i}");
        bob.send_text(&alice_jid, &text).await.unwrap();
        expect_text(&mut alice, &text).await;
        assert_eq!(
            session_with(&alice, &bob_jid, 22).sending_chain_length(),
            0,
            "no heartbeat after {i}"
        );
    }
    bob.send_text(&alice_jid, "the 53rd").await.unwrap();
    expect_text(&mut alice, "the 53rd").await;
    let at_alice = session_with(&alice, &bob_jid, 22);
    assert_eq!(at_alice.receiving_chain_length(), HEARTBEAT_AFTER);
    assert_eq!(at_alice.sending_chain_length(), 1, "one heartbeat went out");

    // Once per ratchet step: a further message before Bob reads the heartbeat adds none.
    bob.send_text(&alice_jid, "one more").await.unwrap();
    expect_text(&mut alice, "one more").await;
    assert_eq!(session_with(&alice, &bob_jid, 22).sending_chain_length(), 1);

    // Bob takes the heartbeat without any visible error; his next message starts a new chain.
    nothing_visible(&mut bob).await;
    bob.send_text(&alice_jid, "new chain").await.unwrap();
    expect_text(&mut alice, "new chain").await;
    assert_eq!(
        session_with(&alice, &bob_jid, 22).receiving_chain_length(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_exchanges_in_the_archive_are_answered_once_after_catch_up() {
    let server = Prosody::start("catchup-kex");
    let alice_jid = server.register("alice", "pw");
    // Alice's device exists and is announced, then goes offline.
    let alice = support::device(&server, None, &alice_jid, 11).await;
    let alice_store = alice.close().await.unwrap();
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_bare: BareJid = alice_jid.parse().unwrap();
    let bob_jid = bob.jid().clone();
    for i in 0..3 {
        bob.send_text(&alice_bare, &format!("while offline {i}"))
            .await
            .unwrap();
    }
    let prekeys_before = prekey_ids(&alice_store);

    let mut alice = connect(&server, None, alice_store).await;
    let found = alice.catch_up(0).await.unwrap();
    let bodies: Vec<_> = found.iter().filter_map(|d| d.body.clone()).collect();
    assert_eq!(
        bodies,
        ["while offline 0", "while offline 1", "while offline 2"]
    );
    // Three key exchanges, one answer, sent after the catch-up.
    assert_eq!(session_with(&alice, &bob_jid, 22).sending_chain_length(), 1);
    // The one-time prekey Bob used is retired and replaced.
    let prekeys_after = prekey_ids(alice.store());
    let retired: Vec<_> = prekeys_before
        .iter()
        .filter(|id| !prekeys_after.contains(id))
        .collect();
    assert_eq!(retired.len(), 1, "exactly the prekey Bob used is gone");
    assert!(
        prekeys_after.len() >= prekeys_before.len(),
        "the pool was refilled"
    );

    // Bob takes the answer and stops sending his key exchange.
    nothing_visible(&mut bob).await;
    assert!(session_with(&bob, &alice_bare, 11).is_confirmed());
    bob.send_text(&alice_bare, "confirmed").await.unwrap();
    expect_text(&mut alice, "confirmed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_key_exchange_retires_its_prekey_at_once() {
    let server = Prosody::start("live-kex");
    let mut alice = account(&server, None, "alice", 11).await;
    assert!(alice.catch_up(0).await.unwrap().is_empty());
    let before = prekey_ids(alice.store());
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid = alice.jid().clone();
    bob.send_text(&alice_jid, "first contact").await.unwrap();
    expect_text(&mut alice, "first contact").await;
    let after = prekey_ids(alice.store());
    let retired: Vec<_> = before.iter().filter(|id| !after.contains(id)).collect();
    assert_eq!(retired.len(), 1, "the prekey Bob used is gone at once");
    // And the published bundle no longer offers it.
    let options = hush_xmpp::ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    };
    let mut carol = hush_xmpp::XmppClient::connect(&server.register("carol", "pw"), "pw", &options)
        .await
        .unwrap();
    for suite in Suite::ALL {
        let bundle = carol.bundle(&alice_jid, suite, 11).await.unwrap();
        let offered: Vec<u32> = bundle.prekeys.iter().map(|(id, _)| *id).collect();
        assert!(
            !offered.contains(retired[0]),
            "{suite} bundle still offers it"
        );
        assert_eq!(offered, after, "{suite} bundle is the refilled pool");
    }
    assert!(alice.store().used_prekeys().unwrap().is_empty());
}

/// A clock eight days ahead of the real one: past one signed-prekey period.
fn eight_days_later() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 8 * 86_400
}

fn signed_prekey_id(store: &MemoryStore) -> u32 {
    store.account().unwrap().unwrap().device.signed_prekey().id
}

/// In real use the signed prekey rotates on schedule: a week after it was made, the next
/// catch-up replaces and republishes it; a new contact then reads it from the server, and the
/// conversation works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_prekey_rotates_on_schedule() {
    let server = Prosody::start("spk-rotation");
    let mut bob = account(&server, None, "bob", 22).await;
    let bob_jid = bob.jid().clone();
    let before = signed_prekey_id(bob.store());
    // Not due yet: a catch-up keeps it.
    nothing_visible(&mut bob).await;
    assert_eq!(signed_prekey_id(bob.store()), before);
    // A week later, the next catch-up rotates it.
    let store = bob.close().await.unwrap();
    let mut bob = connect(&server, None, store).await;
    bob.set_clock(eight_days_later);
    nothing_visible(&mut bob).await;
    let after = signed_prekey_id(bob.store());
    assert_ne!(after, before, "the signed prekey rotated");
    // Alice builds her session from the bundle the server now has: the new signed prekey.
    let mut alice = account(&server, None, "alice", 11).await;
    alice
        .send_text(&bob_jid, "after the rotation")
        .await
        .unwrap();
    expect_text(&mut bob, "after the rotation").await;
}
