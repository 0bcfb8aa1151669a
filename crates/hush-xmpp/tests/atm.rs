//! Automatic Trust Management (XEP-0450) between three Hush devices of two accounts through a
//! real Prosody: Alice's laptop and phone, Bob's phone. A verification on one device reaches
//! the other; a trust message from a device not verified yet is held, and applied when it is;
//! a refusal stops the other device from encrypting to the refused key.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::IdentityKey;
use hush_store::{MemoryStore, Store, Trust, TrustSource};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{AtmReport, Delivery, Hush, UserDecision, XmppError};
use support::{account, device, expect_text};

fn key(hush: &Hush<MemoryStore>) -> IdentityKey {
    *hush
        .store()
        .account()
        .unwrap()
        .unwrap()
        .device
        .identity()
        .public()
}

fn decision(jid: &str, identity: IdentityKey, trust: Trust) -> UserDecision {
    UserDecision {
        jid: jid.to_owned(),
        identity,
        trust,
    }
}

/// The next delivery that is a trust message's report (other deliveries fail the test).
async fn next_trust_message(hush: &mut Hush<MemoryStore>) -> (Delivery, AtmReport) {
    let d = hush
        .receive(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no trust message arrived", hush.jid()));
    assert!(d.is_trust_notice(), "{d:?}");
    let report = d.atm.clone().unwrap();
    (d, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_spreads_is_held_and_revoked_across_three_devices() {
    let server = Prosody::start("atm");
    let mut laptop = account(&server, None, "alice", 11).await;
    let alice = laptop.jid().clone();
    let mut phone = device(&server, None, alice.as_str(), 12).await;
    let mut bob = account(&server, None, "bob", 21).await;
    let bob_jid = bob.jid().clone();
    // Sessions everywhere: each device writes once and the others read.
    bob.send_text(&alice, "hi alice").await.unwrap();
    expect_text(&mut laptop, "hi alice").await;
    expect_text(&mut phone, "hi alice").await;
    laptop.send_text(&bob_jid, "hi bob").await.unwrap();
    expect_text(&mut bob, "hi bob").await;
    expect_text(&mut phone, "hi bob").await;
    phone.send_text(&bob_jid, "me too").await.unwrap();
    expect_text(&mut bob, "me too").await;
    expect_text(&mut laptop, "me too").await;
    let (k_laptop, k_phone, k_bob) = (key(&laptop), key(&phone), key(&bob));

    // The laptop verifies the phone: the trust message to our own account reaches the phone,
    // which has not verified the laptop yet — held.
    let done = laptop
        .decide_trust(&[decision(alice.as_str(), k_phone, Trust::Verified)])
        .await
        .unwrap();
    assert_eq!((done.queued, done.sent), (1, 1), "{done:?}");
    let (from, report) = next_trust_message(&mut phone).await;
    assert_eq!((from.from.as_str(), from.device), (alice.as_str(), 11));
    // What it says is about the phone itself, which nobody else decides for it: nothing held.
    assert_eq!(report.applied, []);
    assert_eq!(report.ignored, 1, "{report:?}");

    // The phone verifies the laptop (and tells the laptop, which ignores news of its own key).
    phone
        .decide_trust(&[decision(alice.as_str(), k_laptop, Trust::Verified)])
        .await
        .unwrap();
    let (_, report) = next_trust_message(&mut laptop).await;
    assert_eq!((report.held, report.applied.len()), (0, 0), "{report:?}");

    // The laptop verifies Bob's phone. The phone learns it, from a device it verified: applied.
    let done = laptop
        .decide_trust(&[decision(bob_jid.as_str(), k_bob, Trust::Verified)])
        .await
        .unwrap();
    assert_eq!((done.queued, done.sent), (2, 2), "{done:?}");
    // The phone reads both: ours, and its copy of the one to Bob (which speaks of the phone
    // itself, so it changes nothing there).
    let (first, second) = (
        next_trust_message(&mut phone).await.1,
        next_trust_message(&mut phone).await.1,
    );
    let report = if first.applied.is_empty() {
        second
    } else {
        first
    };
    assert_eq!(
        report.applied,
        [(bob_jid.to_string(), k_bob.fingerprint(), Trust::Verified)]
    );
    assert_eq!(
        phone.store().trust(bob_jid.as_str(), &k_bob).unwrap(),
        Some(Trust::Verified)
    );
    assert_eq!(
        phone
            .store()
            .trust_source(bob_jid.as_str(), &k_bob)
            .unwrap(),
        Some(TrustSource::Atm {
            jid: alice.to_string(),
            fingerprint: k_laptop.fingerprint()
        })
    );
    // Bob hears from the laptop that Alice's phone is hers; he has not verified the laptop:
    // the statement is held, and nothing changes yet.
    let (from, report) = next_trust_message(&mut bob).await;
    assert_eq!(from.device, 11);
    assert_eq!((report.held, report.applied.len()), (1, 0), "{report:?}");
    assert_eq!(
        bob.store().trust(alice.as_str(), &k_phone).unwrap(),
        Some(Trust::Blind)
    );

    // Bob verifies the laptop: the held statement is applied, and Alice's phone is verified
    // on Bob's side without a second scan.
    let done = bob
        .decide_trust(&[decision(alice.as_str(), k_laptop, Trust::Verified)])
        .await
        .unwrap();
    assert_eq!(
        done.applied,
        [(alice.to_string(), k_phone.fingerprint(), Trust::Verified)]
    );
    assert_eq!(
        bob.store().trust(alice.as_str(), &k_phone).unwrap(),
        Some(Trust::Verified)
    );

    // Revocation: the laptop refuses Bob's phone; the phone stops encrypting to it at once.
    laptop
        .decide_trust(&[decision(bob_jid.as_str(), k_bob, Trust::Distrusted)])
        .await
        .unwrap();
    let (_, report) = next_trust_message(&mut phone).await;
    assert_eq!(
        report.applied,
        [(bob_jid.to_string(), k_bob.fingerprint(), Trust::Distrusted)]
    );
    let refused = phone.send_text(&bob_jid, "still there?").await.unwrap_err();
    assert!(matches!(refused, XmppError::NotSent { .. }), "{refused}");
    assert!(refused.to_string().contains("distrusted"), "{refused}");

    // Trust messages are no conversation: the histories hold only what people wrote.
    for (hush, peer) in [(&laptop, &bob_jid), (&bob, &alice), (&phone, &bob_jid)] {
        let texts: Vec<String> = hush
            .store()
            .history(peer.as_str(), 50)
            .unwrap()
            .iter()
            .map(|m| String::from_utf8_lossy(m.body.as_deref().unwrap_or(b"-")).into_owned())
            .collect();
        assert_eq!(texts, ["hi alice", "hi bob", "me too"], "{}", hush.jid());
    }

    // Read again from the archive (a new connection catching up from the start), the trust
    // messages are known copies: no failure (their message keys are spent), nothing anew.
    for (name, device) in [("phone", phone), ("bob", bob)] {
        let store = device.close().await.unwrap();
        let mut again = support::connect(&server, None, store).await;
        let got = again.catch_up(0).await.unwrap();
        assert!(got.is_empty(), "{name}: {got:?}");
    }
}
