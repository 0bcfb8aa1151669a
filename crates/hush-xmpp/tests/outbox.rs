//! A message stored but never sent (the process stopped between the two) goes out on the next
//! connect, as the exact stored bytes: through a real Prosody, the receiver reads it once.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::{sce, seal, Recipient, Suite};
use hush_store::{MessageIds, Outgoing, SessionKey, Store};
use hush_test_support::prosody::Prosody;
use support::{account, connect, expect_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_stored_before_a_crash_is_sent_on_the_next_connect() {
    let server = Prosody::start("outbox");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&bob_jid, "before").await.unwrap();
    expect_text(&mut bob, "before").await;
    let mut store = alice.close().await.unwrap();

    // What `send` does up to the network: encrypt with the stored session and commit the
    // advanced session with the outbox entry. Then the process "dies".
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let key = SessionKey::new(Suite::Omemo2, bob_jid.as_str(), 22);
    let mut session = store.session(&key).unwrap().unwrap();
    let envelope = sce::seal(
        &[sce::body("stored, then the power went out")],
        alice_jid.as_str(),
        bob_jid.as_str(),
        Some(1),
        &mut rng,
    )
    .unwrap();
    let element = seal(
        Suite::Omemo2,
        11,
        Some(&envelope),
        &mut [Recipient {
            jid: bob_jid.as_str(),
            device_id: 22,
            session: &mut session,
        }],
        &mut rng,
    )
    .unwrap();
    let outgoing = Outgoing {
        ids: MessageIds {
            origin_id: Some("hush-crashed-1".into()),
            ..Default::default()
        },
        peer: bob_jid.to_string(),
        sender: alice_jid.to_string(),
        sender_device: 11,
        suite: Suite::Omemo2,
        at: 1,
        body: b"stored, then the power went out".to_vec(),
        encrypted: true,
        stanza: String::from(&element.to_element()).into_bytes(),
    };
    store.commit_outgoing(&[(key, session)], &outgoing).unwrap();
    assert_eq!(store.pending().unwrap().len(), 1);

    // Nothing reached Bob.
    assert!(bob.receive(Duration::from_secs(1)).await.unwrap().is_none());

    // The next run sends it, and the outbox is empty afterwards.
    let alice = connect(&server, None, store).await;
    expect_text(&mut bob, "stored, then the power went out").await;
    assert!(alice.store().pending().unwrap().is_empty());

    // Another connect sends nothing again, and the session continues from the stored state.
    let store = alice.close().await.unwrap();
    let mut alice = connect(&server, None, store).await;
    alice.send_text(&bob_jid, "after").await.unwrap();
    expect_text(&mut bob, "after").await;
    let history = bob.store().history(alice_jid.as_str(), 10).unwrap();
    let bodies: Vec<_> = history
        .iter()
        .map(|m| String::from_utf8_lossy(m.body.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(
        bodies,
        ["before", "stored, then the power went out", "after"]
    );
}
