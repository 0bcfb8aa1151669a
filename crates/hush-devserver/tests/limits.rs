//! Bad input from clients: an oversized or too deeply nested stanza closes that client's stream
//! with `policy-violation`, malformed XML with `not-well-formed`, an unknown top-level element
//! with `unsupported-stanza-type` — before or after login — and the server keeps serving
//! everyone else.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_devserver::{DevServer, Options};
use hush_test_support::devserver::{account, expect_text, online, server, Raw};

/// A bystander that must not notice any of it: a ping round trip on its own stream.
async fn still_served(bystander: &mut Raw, id: &str) {
    bystander
        .send(&format!(
            "<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await;
    let answer = bystander.until_id(id).await;
    assert!(answer.contains("result"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_deep_stanzas_close_only_their_stream() {
    let server = server().await;
    server.register("mallory", "pw").unwrap();
    server.register("bob", "pw").unwrap();
    let (mut bob, _) = Raw::login(&server, "bob", "pw", "home").await;

    // 300 KiB of body: more than the 256 KiB default.
    let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "a").await;
    let big = format!(
        "<message to='bob@localhost' type='chat'><body>{}</body></message>",
        "A".repeat(300 * 1024)
    );
    // The server may stop reading half-way: a failed write is fine.
    let _ = mallory.try_send(big.as_bytes()).await;
    let closed = mallory.read_to_close().await;
    assert!(closed.contains("policy-violation"), "{closed}");
    still_served(&mut bob, "after-big").await;
    assert!(
        server.offline("bob").is_empty(),
        "nothing of it was delivered"
    );

    // 100 nested elements: more than the default depth of 64.
    let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "b").await;
    let deep = format!(
        "<message to='bob@localhost'>{}{}</message>",
        "<x>".repeat(100),
        "</x>".repeat(100)
    );
    let _ = mallory.try_send(deep.as_bytes()).await;
    let closed = mallory.read_to_close().await;
    assert!(closed.contains("policy-violation"), "{closed}");
    still_served(&mut bob, "after-deep").await;

    // Before authentication too.
    let mut stranger = Raw::connect(&server).await;
    stranger.header().await;
    stranger.until("</stream:features>").await;
    let _ = stranger
        .try_send(format!("<auth>{}</auth>", "B".repeat(300 * 1024)).as_bytes())
        .await;
    assert!(stranger.read_to_close().await.contains("policy-violation"));
    still_served(&mut bob, "after-stranger").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_are_configurable() {
    let server = DevServer::start(Options {
        max_stanza_bytes: 4096,
        max_depth: 8,
        ..Options::default()
    })
    .await
    .unwrap();
    server.register("mallory", "pw").unwrap();
    let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "a").await;
    // Under the limits: fine.
    mallory
        .send(&format!(
            "<iq type='get' id='ok'><ping xmlns='urn:xmpp:ping'>{}</ping></iq>",
            "<a>".repeat(5) + &"</a>".repeat(5)
        ))
        .await;
    mallory.until_id("ok").await;
    let _ = mallory
        .try_send(format!("<message><body>{}</body></message>", "C".repeat(5000)).as_bytes())
        .await;
    assert!(mallory.read_to_close().await.contains("policy-violation"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_xml_never_takes_the_server_down() {
    let server = server().await;
    server.register("mallory", "pw").unwrap();
    server.register("bob", "pw").unwrap();
    let (mut bob, _) = Raw::login(&server, "bob", "pw", "home").await;

    // Garbage instead of a stream header.
    let mut garbage = Raw::connect(&server).await;
    let _ = garbage
        .try_send(b"<<<>>> \xff\xfe not xml at all &&&")
        .await;
    garbage.read_to_close().await;

    // A header, then broken markup before login.
    let mut broken = Raw::connect(&server).await;
    broken.header().await;
    broken.until("</stream:features>").await;
    let _ = broken
        .try_send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>a</wrong>")
        .await;
    assert!(broken.read_to_close().await.contains("not-well-formed"));

    // After login: an undefined entity, invalid UTF-8, an unknown top-level element.
    for bad in [
        &b"<message to='bob@localhost'><body>&bogus;</body></message>"[..],
        b"<message to='bob@localhost'><body>\xc3\x28</body></message>",
        b"<message to='bob@localhost' to='twice@localhost'/>",
    ] {
        let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "m").await;
        let _ = mallory.try_send(bad).await;
        let closed = mallory.read_to_close().await;
        assert!(closed.contains("not-well-formed"), "{closed}");
    }
    let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "m").await;
    mallory.send("<hello xmlns='urn:example:unknown'/>").await;
    assert!(mallory
        .read_to_close()
        .await
        .contains("unsupported-stanza-type"));
    // A client that just goes away mid-stanza.
    let (mut mallory, _) = Raw::login(&server, "mallory", "pw", "m").await;
    mallory.send("<message to='bob@localhost'><bo").await;
    drop(mallory);
    still_served(&mut bob, "after-malformed").await;

    // And real clients still work.
    let mut alice = account(&server, "alice", 11).await;
    let mut carol = account(&server, "carol", 31).await;
    online(&mut alice).await;
    online(&mut carol).await;
    alice.send_text(carol.jid(), "still here").await.unwrap();
    expect_text(&mut carol, "still here").await;
    server.shutdown().await;
}
