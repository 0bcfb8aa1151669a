//! The send policy against a real Prosody (#6): a contact's device list vanishing mid-
//! conversation, a contact falling back to plaintext, and a demand for strong authentication
//! with unverified devices. In none of them does anything leave in clear by itself.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::policy::{Authentication, LeftOut, Missing};
use hush_proto::{DeviceList, Suite};
use hush_store::{Failure, SessionKey, Store, Trust};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{ConnectOptions, Obstacle, Refusal, SendOptions, XmppClient, XmppError};
use support::{account, device, expect_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_device_list_refuses_instead_of_sending_in_clear() {
    let server = Prosody::start("policy-vanish");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let bob_jid = bob.jid().clone();
    alice.send_text(&bob_jid, "encrypted hello").await.unwrap();
    expect_text(&mut bob, "encrypted hello").await;

    // Bob's lists disappear (another client of his, or his server, empties them).
    let options = ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    };
    let mut bob_other = XmppClient::connect(bob_jid.as_str(), "pw", &options)
        .await
        .unwrap();
    for suite in Suite::ALL {
        let empty = DeviceList {
            suite,
            devices: vec![],
        };
        bob_other.publish_device_list(&empty).await.unwrap();
    }
    let err = alice
        .send_text(&bob_jid, "the secret plan")
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::NotSent { .. }), "{err}");
    assert!(
        matches!(
            &err,
            XmppError::NotSent {
                refusal: Refusal::Policy {
                    missing: Missing::NoDevice,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing reached Bob, in clear or otherwise, and the server has no trace of the text.
    bob_other.close().await.unwrap();
    assert!(bob.receive(Duration::from_secs(2)).await.unwrap().is_none());
    assert!(!server
        .stored_bytes()
        .windows(15)
        .any(|w| w == b"the secret plan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_from_the_peer_is_flagged_once_the_conversation_was_encrypted() {
    let server = Prosody::start("policy-plain");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());
    let clear = SendOptions {
        plaintext: true,
        ..Default::default()
    };
    // Before any encryption: shown as unencrypted, but not a downgrade.
    let report = bob.send(&alice_jid, "hello in clear", clear).await.unwrap();
    assert!(report.suite.is_none());
    let d = alice
        .receive(Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.body.as_deref(), Some("hello in clear"));
    assert!(d.suite.is_none() && !d.properties.confidentiality);
    assert!(d.warning.is_none(), "{d:?}");

    alice.send_text(&bob_jid, "let's encrypt").await.unwrap();
    let d = bob.receive(Duration::from_secs(20)).await.unwrap().unwrap();
    assert!(d.properties.confidentiality && d.properties.forward_secrecy);
    assert_eq!(d.properties.authentication, Authentication::Weak);

    // Now plaintext from Bob is a downgrade, and says so.
    bob.send(&alice_jid, "oops, in clear", clear).await.unwrap();
    let d = alice
        .receive(Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.body.as_deref(), Some("oops, in clear"));
    let warning = d.warning.expect("a downgrade warning");
    assert!(
        matches!(warning, hush_xmpp::Warning::Downgrade),
        "{warning}"
    );
    let history = alice.store().history(bob_jid.as_str(), 10).unwrap();
    assert!(!history.last().unwrap().encrypted);
    // Alice's own next message is still encrypted: the peer's plaintext changes nothing.
    let report = alice.send_text(&bob_jid, "still encrypted").await.unwrap();
    assert!(report.suite.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_authentication_sends_only_to_verified_devices() {
    let server = Prosody::start("policy-strong");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let bob_jid = bob.jid().clone();
    alice.send_text(&bob_jid, "weak is fine").await.unwrap();
    expect_text(&mut bob, "weak is fine").await;

    let mut record = alice.store().conversation(bob_jid.as_str()).unwrap();
    record.policy.min_auth = Authentication::Strong;
    alice
        .store_mut()
        .set_conversation(bob_jid.as_str(), &record)
        .unwrap();
    let err = alice.send_text(&bob_jid, "needs strong").await.unwrap_err();
    assert!(err.to_string().contains("strong authentication"), "{err}");
    assert!(err.to_string().contains("device 22: not verified"), "{err}");

    // Alice verifies Bob's phone (as `hush trust` does).
    let session = alice
        .store()
        .session(&SessionKey::new(Suite::Omemo2, bob_jid.as_str(), 22))
        .unwrap()
        .unwrap();
    alice
        .store_mut()
        .set_trust(
            bob_jid.as_str(),
            session.peer_identity(),
            Trust::Verified,
            1,
        )
        .unwrap();
    let report = alice.send_text(&bob_jid, "verified now").await.unwrap();
    assert_eq!(report.properties.authentication, Authentication::Strong);
    expect_text(&mut bob, "verified now").await;

    // A new device appears on Bob's account (his, or one his server injected): it gets
    // nothing until verified, and the report says why.
    let mut tablet = device(&server, None, bob_jid.as_str(), 23).await;
    let report = alice.send_text(&bob_jid, "phone only").await.unwrap();
    assert_eq!(report.devices, [(bob_jid.to_string(), 22)]);
    let (_, d, why) = &report.skipped[0];
    assert_eq!(*d, 23);
    assert!(
        matches!(why, Obstacle::Policy(LeftOut::NotVerified)),
        "{why}"
    );
    assert_eq!(report.properties.authentication, Authentication::Strong);
    expect_text(&mut bob, "phone only").await;
    // The tablet sees a message not encrypted for it, loudly.
    let seen = tablet
        .receive(Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert!(seen.failure.is_some(), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_key_for_a_known_device_is_not_taken_silently() {
    let server = Prosody::start("policy-new-key");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let bob_jid = bob.jid().clone();
    let alice_jid = alice.jid().clone();
    bob.send_text(&alice_jid, "original key").await.unwrap();
    expect_text(&mut alice, "original key").await;
    let held = |alice: &hush_xmpp::Hush<hush_store::MemoryStore>| {
        *alice
            .store()
            .session(&SessionKey::new(Suite::Omemo2, bob_jid.as_str(), 22))
            .unwrap()
            .unwrap()
            .peer_identity()
    };
    let original = held(&alice);
    bob.close().await.unwrap();

    // Device 22 comes back with other keys (a reinstall that kept the id — or someone who
    // took it over). Hush refuses to announce a taken id, so the keys are published by hand.
    let store = support::offline_device(bob_jid.as_str(), 22);
    let keys = store.account().unwrap().unwrap().device;
    let mut raw =
        hush_xmpp::XmppClient::connect(bob_jid.as_str(), "pw", &support::options(&server, None))
            .await
            .unwrap();
    for suite in Suite::ALL {
        raw.publish_bundle(&keys.bundle(suite)).await.unwrap();
    }
    raw.close().await.unwrap();
    let mut impostor = support::connect(&server, None, store).await;
    impostor.send_text(&alice_jid, "trust me").await.unwrap();
    let d = alice
        .receive(Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert!(d.body.is_none(), "{d:?}");
    let error = d.failure.unwrap();
    assert!(matches!(error, Failure::IdentityChanged { .. }), "{error}");
    assert_eq!(held(&alice), original, "the old session stays");

    // Only the user replaces it.
    assert_eq!(
        hush_store::reset_sessions(alice.store_mut(), bob_jid.as_str(), Some(22)).unwrap(),
        1
    );
    impostor
        .send_text(&alice_jid, "after the reset")
        .await
        .unwrap();
    expect_text(&mut alice, "after the reset").await;
    assert_ne!(held(&alice), original);
}
