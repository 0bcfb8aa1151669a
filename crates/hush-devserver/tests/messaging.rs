//! Real Hush clients talking through the devserver: OMEMO messages both ways between Alice
//! and Bob's two devices, Carbons copies of what Alice sends reaching her second device, and
//! a new device's device-list notification (PEP `+notify`, learnt through caps and disco)
//! reaching the account's other device.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::time::Duration;

use hush_proto::Suite;
use hush_store::Store;
use hush_test_support::devserver::{
    self, account, device, eventually, expect_text, online, server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omemo_both_ways_with_two_devices_and_carbons() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob_phone = account(&server, "bob", 21).await;
    let bob_jid = bob_phone.jid().clone();
    let alice_jid = alice.jid().clone();
    let mut bob_tablet = device(&server, bob_jid.as_str(), 22).await;
    let mut alice_laptop = device(&server, alice_jid.as_str(), 12).await;
    for hush in [
        &mut alice,
        &mut bob_phone,
        &mut bob_tablet,
        &mut alice_laptop,
    ] {
        online(hush).await;
    }

    // Alice → both of Bob's devices, and (Carbons) to her own laptop.
    let report = alice.send_text(&bob_jid, "hi both").await.unwrap();
    let mut reached: Vec<(String, u32)> = report.devices.clone();
    reached.sort();
    assert_eq!(
        reached,
        [
            ("alice@localhost".to_owned(), 12),
            ("bob@localhost".to_owned(), 21),
            ("bob@localhost".to_owned(), 22)
        ]
    );
    expect_text(&mut bob_phone, "hi both").await;
    expect_text(&mut bob_tablet, "hi both").await;
    expect_text(&mut alice_laptop, "hi both").await;

    // Bob's phone answers; Alice's two devices get it, Bob's tablet gets the Carbons copy.
    bob_phone
        .send_text(&alice_jid, "hello Alice")
        .await
        .unwrap();
    expect_text(&mut alice, "hello Alice").await;
    expect_text(&mut alice_laptop, "hello Alice").await;
    expect_text(&mut bob_tablet, "hello Alice").await;

    // And the tablet speaks too.
    bob_tablet
        .send_text(&alice_jid, "tablet here")
        .await
        .unwrap();
    expect_text(&mut alice, "tablet here").await;
    expect_text(&mut bob_phone, "tablet here").await;

    // The server only ever saw ciphertext: the archive holds the OMEMO fallback, never the
    // text.
    let archived = server.archive("bob");
    assert!(!archived.is_empty());
    for a in archived.iter().chain(server.archive("alice").iter()) {
        for secret in ["hi both", "hello Alice", "tablet here"] {
            assert!(!a.stanza.contains(secret), "{}", a.stanza);
        }
    }
    // Bob's archive: the conversation with Alice, and the empty key-exchange answers his
    // devices sent each other.
    assert!(archived.iter().any(|a| a.with == "alice@localhost"));
    assert!(archived
        .iter()
        .all(|a| a.with == "alice@localhost" || a.with == "bob@localhost"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_list_reaches_the_other_device_by_notification() {
    let server = server().await;
    let mut phone = account(&server, "alice", 11).await;
    let alice_jid = phone.jid().clone();
    online(&mut phone).await;
    // The server asked the phone's disco#info (its caps) and now knows it wants device lists.

    let laptop = device(&server, alice_jid.as_str(), 12).await;
    let deadline = tokio::time::Instant::now() + devserver::PATIENCE;
    loop {
        let listed: Vec<u32> = phone
            .store()
            .devices(Suite::Omemo2, alice_jid.as_str())
            .unwrap()
            .iter()
            .filter(|r| r.listed)
            .map(|r| r.device_id)
            .collect();
        if listed == [11, 12] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no device-list notification reached the phone: {listed:?}"
        );
        // Waiting for stanzas is what delivers the notification to the store.
        assert!(phone
            .receive(Duration::from_millis(100))
            .await
            .unwrap()
            .is_none());
    }
    // Both suites' lists are on the server.
    for node in [
        "urn:xmpp:omemo:2:devices",
        "eu.siacs.conversations.axolotl.devicelist",
    ] {
        let items = server.pep_items("alice", node);
        assert_eq!(items.len(), 1, "{node}");
    }
    // Two OMEMO:2 bundles share one node (max_items=max); each legacy bundle has its own.
    assert_eq!(
        server.pep_items("alice", "urn:xmpp:omemo:2:bundles").len(),
        2
    );
    drop(laptop);
    eventually("the laptop's session ends", || {
        server.sessions("alice").len() == 1
    })
    .await;
    server.shutdown().await;
}
