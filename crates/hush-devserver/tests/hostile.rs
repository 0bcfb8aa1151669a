//! The hostile-server hooks with real clients: an adversary that drops the live copy for one
//! device (the message is still archived, and that device gets it from the archive), one
//! that replays what a client sends (the recipient keeps it once), a forged stanza and raw
//! bytes injected straight into a session.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::{Arc, Mutex};

use hush_devserver::{Adversary, Element};
use hush_test_support::devserver::{
    self, account, device, eventually, expect_text, online, server, Raw,
};

/// Drops every encrypted message written directly to one full JID (archive results and
/// Carbons wrap theirs, so they pass) and counts the drops.
struct DropLive {
    victim: String,
    dropped: Arc<Mutex<usize>>,
}

impl Adversary for DropLive {
    fn to_client(&mut self, to: &str, stanza: Element) -> Vec<Element> {
        let live = stanza.name() == "message" && stanza.children().any(|c| c.name() == "encrypted");
        if to == self.victim && live {
            *self.dropped.lock().unwrap() += 1;
            return Vec::new();
        }
        vec![stanza]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_message_is_still_in_the_archive() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut phone = account(&server, "bob", 21).await;
    let bob_jid = phone.jid().clone();
    let phone_full = server.sessions("bob").remove(0);
    let mut tablet = device(&server, bob_jid.as_str(), 22).await;
    let tablet_full = server
        .sessions("bob")
        .into_iter()
        .find(|f| *f != phone_full)
        .unwrap();
    for hush in [&mut alice, &mut phone, &mut tablet] {
        online(hush).await;
    }
    let dropped = Arc::new(Mutex::new(0));
    server.set_adversary(Some(Box::new(DropLive {
        victim: tablet_full,
        dropped: dropped.clone(),
    })));

    alice
        .send_text(&bob_jid, "you may not see this")
        .await
        .unwrap();
    // The phone gets it live; the tablet's copy was dropped on the way.
    expect_text(&mut phone, "you may not see this").await;
    eventually("the tablet's copy is dropped", || {
        *dropped.lock().unwrap() == 1
    })
    .await;

    // It is in Bob's archive, and the tablet finds it there.
    let archived: Vec<_> = server
        .archive("bob")
        .into_iter()
        .filter(|a| a.stanza.contains("<body"))
        .collect();
    assert_eq!(archived.len(), 1, "{archived:?}");
    let got = tablet.catch_up(0).await.unwrap();
    let texts: Vec<_> = got.iter().filter_map(|d| d.body.clone()).collect();
    assert_eq!(texts, ["you may not see this"]);
    server.shutdown().await;
}

/// Hands the server every message a client sends twice.
struct Replay;

impl Adversary for Replay {
    fn from_client(&mut self, _from: &str, stanza: Element) -> Vec<Element> {
        if stanza.name() == "message" {
            vec![stanza.clone(), stanza]
        } else {
            vec![stanza]
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_message_is_kept_once_and_injections_reach_the_session() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 21).await;
    let bob_jid = bob.jid().clone();
    online(&mut alice).await;
    online(&mut bob).await;

    server.set_adversary(Some(Box::new(Replay)));
    alice.send_text(&bob_jid, "once").await.unwrap();
    expect_text(&mut bob, "once").await;
    server.set_adversary(None);
    // The server archived both copies; Bob's client recognised the second.
    let copies = server
        .archive("bob")
        .iter()
        .filter(|a| a.with == "alice@localhost" && a.stanza.contains("<body"))
        .count();
    assert_eq!(copies, 2);
    alice.send_text(&bob_jid, "next").await.unwrap();
    expect_text(&mut bob, "next").await;

    // A forged plaintext message, written straight to Bob's session: it arrives, flagged.
    let bob_full = server.sessions("bob").remove(0);
    let forged: Element =
        "<message xmlns='jabber:client' from='alice@localhost/evil' type='chat' id='f1'>\
        <body>forged hello</body></message>"
            .parse()
            .unwrap();
    assert_eq!(server.inject(&bob_full, forged.clone()), 1);
    let d = bob.receive(devserver::PATIENCE).await.unwrap().unwrap();
    assert_eq!(d.body.as_deref(), Some("forged hello"));
    assert!(d.suite.is_none(), "it came in clear");
    assert!(d.warning.is_some(), "in an encrypted conversation: {d:?}");
    assert_eq!(server.inject("nobody@localhost/x", forged.clone()), 0);
    assert_eq!(
        server.inject("bob@localhost", forged),
        1,
        "bare: every available session"
    );
    assert!(
        server
            .archive("bob")
            .iter()
            .all(|a| !a.stanza.contains("forged hello")),
        "injections are not stored"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_are_written_as_they_are() {
    let server = server().await;
    server.register("carol", "pw").unwrap();
    let (mut carol, full) = Raw::login(&server, "carol", "pw", "raw").await;
    assert_eq!(server.inject_raw(&full, b"<not-xml <<<\xff".to_vec()), 1);
    carol.until("<not-xml <<<").await;
    server.shutdown().await;
}
