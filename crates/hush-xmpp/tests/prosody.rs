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

use hush_store::{Failure, Store};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{ConnectOptions, XmppClient, XmppError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omemo_through_prosody_in_both_namespaces() {
    support::omemo_in_both_namespaces(&Prosody::start("omemo")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_subscribe_both_ways_through_prosody() {
    support::contacts_both_ways(&Prosody::start("contacts")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_bounded() {
    let server = Prosody::start("refusals");
    let jid = server.register("dave", "right");
    // A wrong password is reported as such at once, not retried until the timeout.
    let patient = ConnectOptions {
        timeout: Duration::from_secs(120),
        ..support::options(&server, None)
    };
    let err = XmppClient::connect(&jid, "wrong", &patient)
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::LoginRejected { .. }), "{err}");
    assert!(err.to_string().contains("check the password"), "{err}");
    let remote = ConnectOptions {
        server: Some("192.0.2.1:5222".into()),
        ..support::options(&server, None)
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
        XmppClient::connect("not a jid", "x", &support::options(&server, None)).await,
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
    let mut mallory = XmppClient::connect(
        &server.register("mallory", "pw"),
        "pw",
        &support::options(&server, None),
    )
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
