//! Device-list hygiene through a real Prosody: a new device joins mid-conversation, a removed
//! device stops receiving, a silent device is left out as inactive until it speaks again, and
//! our own device lists arrive by PEP notification (`+notify`, which needs disco and caps).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::Suite;
use hush_store::Store;
use hush_test_support::prosody::Prosody;
use hush_xmpp::{BareJid, Obstacle, SendReport, XmppError};
use support::{account, connect, device, expect_text};

fn reached(report: &SendReport, jid: &BareJid) -> Vec<u32> {
    let mut ids: Vec<u32> = report
        .devices
        .iter()
        .filter(|(j, _)| j == jid.as_str())
        .map(|(_, d)| *d)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_devices_join_and_removed_devices_stop_receiving() {
    let server = Prosody::start("devices-join");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid = alice.jid().clone();
    let report = bob.send_text(&alice_jid, "hello").await.unwrap();
    assert_eq!(reached(&report, &alice_jid), [11]);
    let first_key: Vec<u32> = report.new_keys.iter().map(|(_, d, _)| *d).collect();
    assert_eq!(first_key, [11], "the first key met is announced");
    expect_text(&mut alice, "hello").await;

    // Alice's laptop appears mid-conversation; Bob's next message reaches it too.
    let mut laptop = device(&server, None, alice_jid.as_str(), 12).await;
    let report = bob.send_text(&alice_jid, "both of you").await.unwrap();
    assert_eq!(reached(&report, &alice_jid), [11, 12]);
    // The new device is announced to Bob, with its fingerprint; the known one is not.
    assert_eq!(report.new_keys.len(), 1, "{:?}", report.new_keys);
    assert_eq!(report.new_keys[0].1, 12);
    assert_eq!(report.new_keys[0].2.len(), 71);
    expect_text(&mut alice, "both of you").await;
    expect_text(&mut laptop, "both of you").await;
    // Alice's phone was online meanwhile: the server pushed it the new list (+notify).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed: Vec<u32> = alice
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
        // Waiting for stanzas is what delivers the notification.
        assert!(alice
            .receive(Duration::from_millis(200))
            .await
            .unwrap()
            .is_none());
    }

    // The laptop is lost; the phone removes it, and Bob's next message leaves it out.
    drop(laptop.close().await.unwrap());
    assert!(matches!(
        alice.remove_own_devices(&[11]).await,
        Err(XmppError::RemoveSelf(11))
    ));
    assert_eq!(alice.remove_own_devices(&[12]).await.unwrap(), 2);
    let report = bob.send_text(&alice_jid, "just the phone").await.unwrap();
    assert_eq!(reached(&report, &alice_jid), [11]);
    expect_text(&mut alice, "just the phone").await;
}

/// A clock 100 days ahead of the real one.
fn hundred_days_later() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 100 * 86_400
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_devices_become_inactive_until_they_speak() {
    let server = Prosody::start("devices-inactive");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob_phone = account(&server, None, "bob", 21).await;
    let bob_jid = bob_phone.jid().clone();
    let mut bob_tablet = device(&server, None, bob_jid.as_str(), 22).await;
    let alice_jid = alice.jid().clone();

    let report = alice.send_text(&bob_jid, "hi both").await.unwrap();
    assert_eq!(reached(&report, &bob_jid), [21, 22]);
    expect_text(&mut bob_phone, "hi both").await;
    expect_text(&mut bob_tablet, "hi both").await;

    // Both devices answered Alice's key exchange with an empty message: take those first.
    assert!(alice
        .receive(Duration::from_secs(2))
        .await
        .unwrap()
        .is_none());
    let seen = alice
        .store()
        .devices(Suite::Omemo2, bob_jid.as_str())
        .unwrap();
    assert!(seen.iter().all(|r| r.listed), "{seen:?}");

    // A hundred days pass. Bob's phone speaks; the tablet stays silent.
    alice.set_clock(hundred_days_later);
    bob_phone.send_text(&alice_jid, "still here").await.unwrap();
    expect_text(&mut alice, "still here").await;
    let report = alice.send_text(&bob_jid, "phone only").await.unwrap();
    assert_eq!(reached(&report, &bob_jid), [21]);
    let why = report
        .skipped
        .iter()
        .find(|(j, d, _)| j == bob_jid.as_str() && *d == 22)
        .map(|(_, _, w)| w.clone())
        .expect("the tablet is reported as left out");
    assert!(matches!(why, Obstacle::Inactive { .. }), "{why}");
    expect_text(&mut bob_phone, "phone only").await;

    // The tablet speaks again and is back.
    bob_tablet.send_text(&alice_jid, "I'm back").await.unwrap();
    expect_text(&mut alice, "I'm back").await;
    let report = alice.send_text(&bob_jid, "welcome back").await.unwrap();
    assert_eq!(reached(&report, &bob_jid), [21, 22]);
}

/// XEP-0384: a new device checks that no other device of the account uses its id before it
/// announces itself. One that drew a taken id is refused, and the other device's keys stay
/// published (announcing used to overwrite them, breaking every session with that device).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_id_taken_by_another_device_is_refused() {
    let server = Prosody::start("devices-collision");
    let mut phone = account(&server, None, "alice", 11).await;
    let alice_jid = phone.jid().clone();
    let mut clash = connect(
        &server,
        None,
        support::offline_device(alice_jid.as_str(), 11),
    )
    .await;
    let err = clash.announce().await.unwrap_err();
    assert!(
        matches!(err, hush_xmpp::XmppError::DeviceIdTaken(11)),
        "{err}"
    );
    // Bob's new session is built from the phone's keys, still on the server.
    let mut bob = account(&server, None, "bob", 22).await;
    bob.send_text(&alice_jid, "still you?").await.unwrap();
    expect_text(&mut phone, "still you?").await;
    // A device announcing itself again is no collision.
    phone.announce().await.unwrap();
}
