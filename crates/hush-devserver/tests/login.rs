//! Stream negotiation against the devserver: the Hush client (tokio-xmpp, SCRAM) logs in; a
//! wrong password or an unknown user is a clear rejection; by hand: PLAIN, the offered
//! mechanisms, binding a chosen resource, the legacy session request, and a second bind of
//! the same full JID replacing the first session.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_test_support::devserver::{options, server, Raw};
use hush_xmpp::{XmppClient, XmppError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hush_client_logs_in_and_wrong_credentials_are_rejected() {
    let server = server().await;
    let jid = server.register("alice", "right").unwrap();
    assert_eq!(jid, "alice@localhost");

    let client = XmppClient::connect(&jid, "right", &options(&server))
        .await
        .unwrap();
    assert_eq!(server.sessions("alice").len(), 1);
    client.close().await.unwrap();

    let wrong = XmppClient::connect(&jid, "wrong", &options(&server)).await;
    assert!(
        matches!(wrong, Err(XmppError::LoginRejected { .. })),
        "{wrong:?}"
    );
    let nobody = XmppClient::connect("mallory@localhost", "right", &options(&server)).await;
    assert!(
        matches!(nobody, Err(XmppError::LoginRejected { .. })),
        "{nobody:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_by_hand_and_session_replacement() {
    let server = server().await;
    server.register("bob", "pw").unwrap();

    let mut raw = Raw::connect(&server).await;
    raw.header().await;
    let features = raw.until("</stream:features>").await;
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] {
        assert!(features.contains(mechanism), "{features}");
    }
    // A wrong PLAIN password: not-authorized, and the stream stays open for another try.
    raw.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJvYgBudWg=</auth>",
    )
    .await;
    let failure = raw.until("</failure>").await;
    assert!(failure.contains("not-authorized"), "{failure}");
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'>AA==</auth>")
        .await;
    assert!(raw.until("</failure>").await.contains("invalid-mechanism"));
    drop(raw);

    let (mut first, jid) = Raw::login(&server, "bob", "pw", "desk").await;
    assert_eq!(jid, "bob@localhost/desk");
    first
        .send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    let answer = first.until_id("s1").await;
    assert!(answer.contains("result"), "{answer}");
    first.send("<presence/>").await;
    first.until("<presence").await; // our own presence, reflected (RFC 6121 §4.2.2)
    assert!(server.is_online("bob@localhost/desk"));

    // The same full JID again: the first stream is closed with a conflict.
    let (mut second, jid2) = Raw::login(&server, "bob", "pw", "desk").await;
    assert_eq!(jid2, jid);
    let closed = first.read_to_close().await;
    assert!(closed.contains("conflict"), "{closed}");
    assert_eq!(server.sessions("bob"), ["bob@localhost/desk"]);
    assert!(
        !server.is_online("bob@localhost/desk"),
        "the new session has sent no presence"
    );
    second
        .send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(second.until_id("p").await.contains("result"));
    server.shutdown().await;
}
