//! hush-xmpp against a real Prosody on loopback: PEP publish and fetch of device lists and
//! bundles in both namespaces, an encrypted message each way through the server, and what the
//! server keeps on disk.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_proto::{sce, seal, DeviceEntry, DeviceList, LocalDevice, Recipient, Session, Suite};
use hush_store::{Failure, Store};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{BareJid, ConnectOptions, XmppClient, XmppError};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn options(server: &Prosody) -> ConnectOptions {
    ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omemo_through_prosody_in_both_namespaces() {
    let server = Prosody::start("omemo");
    let alice_jid = server.register("alice", "alice-pass");
    let bob_jid = server.register("bob", "bob-pass");
    let mut rng = StdRng::seed_from_u64(7);
    let alice_dev = LocalDevice::generate(1001, 30, 0, &mut rng).unwrap();
    let alice_laptop = LocalDevice::generate(1003, 30, 0, &mut rng).unwrap();
    let bob_dev = LocalDevice::generate(2002, 30, 0, &mut rng).unwrap();
    let mut alice = XmppClient::connect(&alice_jid, "alice-pass", &options(&server))
        .await
        .unwrap();
    let mut bob = XmppClient::connect(&bob_jid, "bob-pass", &options(&server))
        .await
        .unwrap();
    let alice_bare: BareJid = alice_jid.parse().unwrap();
    let bob_bare: BareJid = bob_jid.parse().unwrap();

    for suite in Suite::ALL {
        // Alice publishes two devices; on the single OMEMO:2 bundles node the second bundle
        // must not push the first out (max_items).
        let list = DeviceList {
            suite,
            devices: vec![DeviceEntry::new(1001), DeviceEntry::new(1003)],
        };
        alice.publish_device_list(&list).await.unwrap();
        alice
            .publish_bundle(&alice_dev.bundle(suite))
            .await
            .unwrap();
        alice
            .publish_bundle(&alice_laptop.bundle(suite))
            .await
            .unwrap();
        // Publishing again (a refill) replaces the item in place.
        alice
            .publish_bundle(&alice_dev.bundle(suite))
            .await
            .unwrap();

        let fetched = bob.device_list(&alice_bare, suite).await.unwrap();
        assert_eq!(
            fetched.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![1001, 1003]
        );
        assert_eq!(
            bob.bundle(&alice_bare, suite, 1003).await.unwrap(),
            alice_laptop.bundle(suite)
        );
        let bundle = bob.bundle(&alice_bare, suite, 1001).await.unwrap();
        assert_eq!(bundle, alice_dev.bundle(suite));

        let text = format!("attack at dawn via {suite}");
        let payload = match suite {
            Suite::Omemo2 => {
                sce::seal(&[sce::body(&text)], &bob_jid, &alice_jid, Some(0), &mut rng).unwrap()
            }
            _ => text.clone().into_bytes(),
        };
        let mut session = Session::initiate(bob_dev.identity(), &bundle, &mut rng).unwrap();
        let el = seal(
            suite,
            2002,
            Some(&payload),
            &mut [Recipient {
                jid: &alice_jid,
                device_id: 1001,
                session: &mut session,
            }],
            &mut rng,
        )
        .unwrap();
        bob.send_message(&hush_engine::MessageStanza::encrypted(
            alice_bare.as_str(),
            el.clone(),
            format!("m-{suite}"),
        ))
        .await
        .unwrap();

        let incoming = alice
            .next_encrypted(Duration::from_secs(20))
            .await
            .unwrap()
            .expect("the message arrives");
        assert_eq!(incoming.sender, bob_bare);
        let encrypted = incoming.encrypted().cloned().unwrap().unwrap();
        assert_eq!(encrypted, el);
        assert_eq!(incoming.peer, bob_bare);
        assert_eq!(incoming.ids.origin_id, Some(format!("m-{suite}")));
        let opened = alice_dev
            .open(&encrypted, &alice_jid, &bob_jid, None, &mut rng)
            .unwrap();
        let plain = opened.payload.unwrap();
        let got = match suite {
            Suite::Omemo2 => sce::open(
                &plain,
                sce::Expect {
                    from: &bob_jid,
                    to: &alice_jid,
                    require_to: false,
                },
            )
            .unwrap()
            .content[0]
                .text(),
            _ => String::from_utf8(plain.to_vec()).unwrap(),
        };
        assert_eq!(got, text);
    }

    // Contacts without OMEMO: a clear error, not an empty list.
    let carol_jid = server.register("carol", "carol-pass");
    let carol: BareJid = carol_jid.parse().unwrap();
    let err = bob.device_list(&carol, Suite::Omemo2).await.unwrap_err();
    assert!(matches!(err, XmppError::NothingPublished { .. }), "{err}");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    // The server's archives hold ciphertext only.
    let stored = server.stored_bytes();
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(12).any(|w| w == b"attack at da"),
        "plaintext found in Prosody's data directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_bounded() {
    let server = Prosody::start("refusals");
    let jid = server.register("dave", "right");
    // A wrong password is reported as such at once, not retried until the timeout.
    let patient = ConnectOptions {
        timeout: Duration::from_secs(120),
        ..options(&server)
    };
    let err = XmppClient::connect(&jid, "wrong", &patient)
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::LoginRejected { .. }), "{err}");
    assert!(err.to_string().contains("check the password"), "{err}");
    let remote = ConnectOptions {
        server: Some("192.0.2.1:5222".into()),
        ..options(&server)
    };
    let err = XmppClient::connect(&jid, "right", &remote)
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::InsecureNotLoopback(_)), "{err}");
    assert!(err.to_string().contains("192.0.2.1"));
    // Nothing listening: the refused connection is the error, without waiting for the timeout.
    let unreachable = ConnectOptions {
        server: Some("127.0.0.1:1".into()),
        ..patient.clone()
    };
    let err = XmppClient::connect(&jid, "right", &unreachable)
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(matches!(
        XmppClient::connect("not a jid", "x", &options(&server)).await,
        Err(XmppError::BadJid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_without_pep_is_a_clear_error() {
    let server = Prosody::start_without("nopep", &["pep"]);
    let jid = server.register("erin", "pw");
    let store = support::offline_device(&jid, 5);
    let mut hush = support::connect(&server, None, store).await;
    let err = hush.announce().await.unwrap_err();
    assert!(matches!(err, XmppError::NoPep(_)), "{err}");
    assert!(err.to_string().contains("does not offer PEP"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_encrypted_is_a_visible_failure() {
    let server = Prosody::start("garbage");
    let mut alice = support::account(&server, None, "alice", 11).await;
    let alice_jid = alice.jid().clone();
    let mut mallory =
        XmppClient::connect(&server.register("mallory", "pw"), "pw", &options(&server))
            .await
            .unwrap();
    let junk = format!(
        "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='666'><keys jid='{alice_jid}'>\
         <key rid='11' kex='true'>AAAAAAAAAAAAAAAA</key></keys></header><payload>AAAA</payload></encrypted>"
    );
    let el = hush_proto::EncryptedElement::from_element(&junk.parse().unwrap()).unwrap();
    mallory
        .send_message(&hush_engine::MessageStanza::encrypted(
            alice_jid.as_str(),
            el.clone(),
            "junk-1".to_owned(),
        ))
        .await
        .unwrap();
    let d = alice
        .receive(Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the failure is delivered, not dropped");
    assert!(d.body.is_none());
    assert_eq!((d.from.as_str(), d.device), ("mallory@localhost", 666));
    let error = d.failure.unwrap();
    assert!(matches!(error, Failure::Undecryptable { .. }), "{error}");
    let history = alice.store().history("mallory@localhost", 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].failure, Some(error));
}
