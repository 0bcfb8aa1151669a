//! A stranger floods Alice with key exchanges through a real Prosody: a thousand new sessions
//! from a JID she never talked to. A few are processed, she is told once, her one-time prekeys
//! survive, her store stays small, and her contact's message still gets through afterwards.
//! A blocked JID gets nothing processed at all.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::{sce, seal, LocalDevice, Recipient, Session, Suite, DEFAULT_PREKEYS};
use hush_store::{ConversationRecord, Failure, Store};
use hush_test_support::prosody::Prosody;
use hush_xmpp::strangers::PER_STRANGER;
use hush_xmpp::{BareJid, ConnectOptions, XmppClient};
use support::{account, expect_text};

const FLOOD: u32 = 1000;

/// Mallory's stanzas: each from a fresh device, each a key exchange with Alice's device 11.
/// With `one_device`, every exchange claims the same device id (a fresh session each time).
async fn flood(
    server: &Prosody,
    alice: &BareJid,
    count: u32,
    tag: &str,
    one_device: bool,
) -> XmppClient {
    let options = ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    };
    let jid = server.register(&format!("mallory-{tag}"), "pw");
    let mut mallory = XmppClient::connect(&jid, "pw", &options).await.unwrap();
    let bundle = mallory.bundle(alice, Suite::Omemo2, 11).await.unwrap();
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let identity = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
    for i in 0..count {
        let mut session = Session::initiate(identity.identity(), &bundle, &mut rng).unwrap();
        let payload =
            sce::seal(&[sce::body("spam")], &jid, alice.as_str(), None, &mut rng).unwrap();
        let el = seal(
            Suite::Omemo2,
            if one_device { 1000 } else { 1000 + i },
            Some(&payload),
            &mut [Recipient {
                jid: alice.as_str(),
                device_id: 11,
                session: &mut session,
            }],
            &mut rng,
        )
        .unwrap();
        mallory
            .send_message(&hush_engine::MessageStanza::encrypted(
                alice.as_str(),
                el.clone(),
                format!("flood-{tag}-{i}"),
            ))
            .await
            .unwrap();
    }
    mallory.flush().await.unwrap();
    mallory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_key_exchanges_from_a_stranger_is_bounded() {
    let server = Prosody::start("strangers");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid = alice.jid().clone();
    let prekeys = |a: &hush_xmpp::Hush<hush_store::MemoryStore>| {
        let device = a.store().account().unwrap().unwrap().device;
        device.prekey_count()
    };
    assert_eq!(prekeys(&alice), 20);
    // Bob and Alice already talk (a fresh key exchange of Bob's could pick a prekey one of
    // Mallory's processed exchanges used up: one-time prekeys are one-time).
    bob.send_text(&alice_jid, "hello").await.unwrap();
    expect_text(&mut alice, "hello").await;
    let pool = prekeys(&alice);

    let _mallory = flood(&server, &alice_jid, FLOOD, "a", false).await;
    bob.send_text(&alice_jid, "real message").await.unwrap();

    // Alice works through everything until Bob's message; exactly one notice about Mallory.
    let mut notices = 0;
    let mut spam = 0;
    loop {
        let d = alice
            .receive(Duration::from_secs(120))
            .await
            .unwrap()
            .expect("Bob's message arrives after the flood");
        if d.from.starts_with("mallory") {
            match (&d.body, &d.failure) {
                (Some(_), _) => spam += 1,
                (None, Some(Failure::StrangerLimit { .. } | Failure::StrangersUnnamed)) => {
                    notices += 1
                }
                // Mallory reuses one bundle: once a prekey is retired, later exchanges built
                // on it fail to decrypt, visibly. Those were processed too.
                (None, Some(Failure::Undecryptable { .. })) => spam += 1,
                _ => panic!("{d:?}"),
            }
        } else {
            assert_eq!(d.body.as_deref(), Some("real message"), "{d:?}");
            break;
        }
    }
    assert_eq!(spam, PER_STRANGER, "only the first few were processed");
    assert_eq!(notices, 1, "the user is told once");
    let mallory_jid = "mallory-a@localhost";
    let sessions = alice
        .store()
        .sessions_of(Suite::Omemo2, mallory_jid)
        .unwrap();
    assert!(sessions.len() <= PER_STRANGER as usize);
    let history = alice.store().history(mallory_jid, 10_000).unwrap();
    assert_eq!(history.len(), PER_STRANGER as usize + 1);
    // The prekeys the processed exchanges used were replaced; the pool is full.
    assert_eq!(prekeys(&alice), pool.max(DEFAULT_PREKEYS));
    assert!(alice.store().used_prekeys().unwrap().is_empty());

    // Blocked: nothing from that JID is processed any more.
    let blocked = "mallory-b@localhost";
    alice
        .store_mut()
        .set_conversation(
            blocked,
            &ConversationRecord {
                blocked: true,
                ..Default::default()
            },
        )
        .unwrap();
    let _mallory_b = flood(&server, &alice_jid, 50, "b", false).await;
    // Plaintext from a blocked JID is not kept either.
    let mut carol = account(&server, None, "carol", 77).await;
    let carol_jid = carol.jid().to_string();
    alice
        .store_mut()
        .set_conversation(
            &carol_jid,
            &ConversationRecord {
                blocked: true,
                ..Default::default()
            },
        )
        .unwrap();
    let clear = hush_xmpp::SendOptions {
        plaintext: true,
        ..Default::default()
    };
    carol.send(&alice_jid, "buy now", clear).await.unwrap();
    bob.send_text(&alice_jid, "after the block").await.unwrap();
    expect_text(&mut alice, "after the block").await;
    assert!(alice.store().history(blocked, 100).unwrap().is_empty());
    assert!(alice.store().history(&carol_jid, 100).unwrap().is_empty());
    assert!(alice
        .store()
        .sessions_of(Suite::Omemo2, blocked)
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_key_exchanges_on_one_device_id_are_bounded_too() {
    let server = Prosody::start("strangers-one-id");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid = alice.jid().clone();
    bob.send_text(&alice_jid, "hello").await.unwrap();
    expect_text(&mut alice, "hello").await;
    let _mallory = flood(&server, &alice_jid, 200, "one", true).await;
    bob.send_text(&alice_jid, "still here").await.unwrap();
    let mut seen = 0;
    loop {
        let d = alice
            .receive(Duration::from_secs(120))
            .await
            .unwrap()
            .unwrap();
        if d.from.starts_with("mallory") {
            seen += 1;
        } else {
            assert_eq!(d.body.as_deref(), Some("still here"), "{d:?}");
            break;
        }
    }
    // At most the budget plus one notice, although every exchange built a fresh session.
    assert!(
        seen <= PER_STRANGER + 1,
        "{seen} messages from the stranger got through"
    );
    assert!(alice.store().used_prekeys().unwrap().is_empty());
}
