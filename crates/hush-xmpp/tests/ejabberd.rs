//! hush-xmpp against a real ejabberd on loopback (Debian's, as many OMEMO users' servers run
//! it): the same PEP and message scenario as with Prosody, then Hush accounts as people use
//! them — two devices of one account, 1:1 both ways, Carbons and an archive catch-up.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use hush_test_support::ejabberd::Ejabberd;
use support::{account, connect, device, expect_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omemo_through_ejabberd_in_both_namespaces() {
    // ejabberd 23.01 refuses `pubsub#max_items` among publish-options: the node is created
    // by a plain publish and configured afterwards, and both devices' bundles stay.
    support::omemo_in_both_namespaces(&Ejabberd::start("omemo")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_subscribe_both_ways_through_ejabberd() {
    support::contacts_both_ways(&Ejabberd::start("contacts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_carbons_and_a_catch_up_through_ejabberd() {
    let server = Ejabberd::start("accounts");
    let mut phone = account(&server, None, "alice", 11).await;
    let alice_jid = phone.jid().clone();
    let mut laptop = device(&server, None, alice_jid.as_str(), 12).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let bob_jid = bob.jid().clone();

    // Bob writes first: both of Alice's devices read it.
    bob.send_text(&alice_jid, "hello alice").await.unwrap();
    expect_text(&mut phone, "hello alice").await;
    expect_text(&mut laptop, "hello alice").await;

    // Alice answers from her phone: Bob reads it, and her laptop reads the copy (a Carbon).
    phone.send_text(&bob_jid, "hello bob").await.unwrap();
    expect_text(&mut bob, "hello bob").await;
    let copy = laptop
        .receive(std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the laptop reads the phone's message");
    assert_eq!(copy.body.as_deref(), Some("hello bob"), "{copy:?}");
    assert_eq!(copy.from, alice_jid.as_str(), "{copy:?}");

    // Bob goes offline; what Alice writes meanwhile comes from his archive.
    let store = bob.close().await.unwrap();
    for i in 0..3 {
        phone
            .send_text(&bob_jid, &format!("while away {i}"))
            .await
            .unwrap();
    }
    phone.flush().await.unwrap();
    let mut bob = connect(&server, None, store).await;
    let got: Vec<String> = bob
        .catch_up(0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.body)
        .collect();
    assert_eq!(got, ["while away 0", "while away 1", "while away 2"]);

    // And the conversation goes on, live, both ways.
    bob.send_text(&alice_jid, "back").await.unwrap();
    expect_text(&mut phone, "back").await;
    let stored = server.stored_bytes();
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(10).any(|w| w == b"while away"),
        "plaintext found in ejabberd's database"
    );
}
