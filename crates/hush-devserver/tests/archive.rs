//! The archive (XEP-0313) with real Hush clients: a device that was offline catches up from
//! the archive exactly once and is not pushed the offline copies as well (it queried the
//! archive before its presence, as Prosody expects); a 120-message backlog pages correctly
//! and in order; a resume point from another server run is answered with `item-not-found`
//! and the client reads again from the start.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::{Arc, Mutex};

use hush_devserver::{Adversary, Element};
use hush_store::Store;
use hush_test_support::devserver::{account, connect, expect_text, online, server};

/// Records every stanza written to one account's sessions.
struct Observer(&'static str, Arc<Mutex<Vec<String>>>);

impl Adversary for Observer {
    fn to_client(&mut self, to: &str, stanza: Element) -> Vec<Element> {
        if to.starts_with(self.0) {
            let mut out = Vec::new();
            stanza.write_to(&mut out).unwrap();
            self.1.lock().unwrap().push(String::from_utf8(out).unwrap());
        }
        vec![stanza]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_catches_up_from_the_archive_exactly_once() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 21).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());
    online(&mut alice).await;
    online(&mut bob).await;
    alice.send_text(&bob_jid, "first").await.unwrap();
    expect_text(&mut bob, "first").await;
    let store = bob.close().await.unwrap();

    for i in 0..3 {
        alice
            .send_text(&bob_jid, &format!("while away {i}"))
            .await
            .unwrap();
    }
    alice.flush().await.unwrap();
    // Nobody was online for Bob: the messages wait offline and in his archive.
    assert_eq!(server.offline("bob").len(), 3);
    let archived = server.archive("bob");
    assert_eq!(
        archived.len(),
        5,
        "first, Bob's empty key-exchange answer, three while away"
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    server.set_adversary(Some(Box::new(Observer("bob@", seen.clone()))));
    let mut bob = connect(&server, store).await;
    let got = bob.catch_up(0).await.unwrap();
    let texts: Vec<_> = got.iter().filter_map(|d| d.body.clone()).collect();
    assert_eq!(texts, ["while away 0", "while away 1", "while away 2"]);

    // Live messages still arrive, and nothing comes twice.
    alice.send_text(&bob_jid, "live").await.unwrap();
    expect_text(&mut bob, "live").await;
    let history = bob.store().history(alice_jid.as_str(), 100).unwrap();
    assert_eq!(history.len(), 5, "first, three while away, live: once each");

    // The server did not push the offline copies: the session had queried the archive
    // before its presence (Hush's order), so they stay for the archive, as in Prosody.
    let seen = seen.lock().unwrap().clone();
    let pushed_offline = seen
        .iter()
        .filter(|s| s.contains("urn:xmpp:delay") && !s.contains("urn:xmpp:mam:2"))
        .count();
    assert_eq!(pushed_offline, 0, "{seen:#?}");
    assert_eq!(server.offline("bob").len(), 3);
    server.shutdown().await;
}

/// More than two of the server's 50-result default pages (Hush asks for 100 at a time).
const BACKLOG: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backlog_pages_in_order_and_live_messages_follow() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 22).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());
    online(&mut alice).await;
    online(&mut bob).await;
    bob.send_text(&alice_jid, "first").await.unwrap();
    expect_text(&mut alice, "first").await;
    let store = alice.close().await.unwrap();

    for i in 0..BACKLOG {
        bob.send_text(&alice_jid, &format!("while away {i}"))
            .await
            .unwrap();
    }
    bob.flush().await.unwrap();

    let mut alice = connect(&server, store).await;
    let got = alice.catch_up(0).await.unwrap();
    let texts: Vec<_> = got
        .iter()
        .map(|d| d.body.clone().unwrap_or_default())
        .collect();
    let want: Vec<_> = (0..BACKLOG).map(|i| format!("while away {i}")).collect();
    assert_eq!(texts, want);

    bob.send_text(&alice_jid, "live").await.unwrap();
    expect_text(&mut alice, "live").await;
    let history = alice.store().history(bob_jid.as_str(), 1000).unwrap();
    assert_eq!(
        history.len(),
        BACKLOG + 2,
        "first, the backlog, live: once each"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_from_another_server_run_is_unknown() {
    // The first server: Alice reads one message from its archive.
    let first = server().await;
    let mut alice = account(&first, "alice", 11).await;
    let mut bob = account(&first, "bob", 22).await;
    online(&mut alice).await;
    online(&mut bob).await;
    bob.send_text(alice.jid(), "on the first server")
        .await
        .unwrap();
    expect_text(&mut alice, "on the first server").await;
    // A catch-up leaves a resume point behind (a message read live does not: see
    // `Engine::archive_cursor`).
    let again = alice.catch_up(0).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    bob.close().await.unwrap();
    let store = alice.close().await.unwrap();
    assert!(store.archive_resume("alice@localhost").unwrap().is_some());
    first.shutdown().await;

    // A fresh server: its archive ids must not collide with the old run's. (Bob comes back
    // as a new device: his old device's identity is remembered by Alice.)
    let second = server().await;
    second.register("alice", "pw").unwrap();
    let mut bob = account(&second, "bob", 23).await;
    online(&mut bob).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    second.set_adversary(Some(Box::new(Observer("alice@", seen.clone()))));
    let mut alice = connect(&second, store).await;
    alice.announce().await.unwrap();
    bob.send_text(alice.jid(), "on the second server")
        .await
        .unwrap();
    bob.flush().await.unwrap();
    let got = alice.catch_up(0).await.unwrap();
    let texts: Vec<_> = got.iter().filter_map(|d| d.body.clone()).collect();
    assert_eq!(texts, ["on the second server"], "{got:?}");
    // The old resume point was refused (and the client then read from the start).
    let refused = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains("item-not-found") && s.contains("the archive has no message"))
        .count();
    assert_eq!(refused, 1);
    second.shutdown().await;
}
