//! The adversary of the hostile-server tests, shared by the test files that run one: a
//! devserver whose stored messages are checked for plaintext when the test ends, rules that
//! rewrite what clients send and what the server delivers, and the Hush accounts (Alice and
//! Bob) the attacks are tried on.

use std::time::Duration;

use hush_devserver::{Adversary, DevServer, Element};
use hush_store::MemoryStore;
use hush_xmpp::{Delivery, Hush};

use crate::devserver::{self, device, PATIENCE};

/// A Hush account of the tests: an in-memory store.
pub type Device = Hush<MemoryStore>;

/// The server of one test; when the test ends (having passed so far), no stored message — in
/// an account's archive or offline storage, or a room's archive — may carry a body other than
/// Hush's fixed notice that it is encrypted.
pub struct World(pub DevServer);

impl std::ops::Deref for World {
    type Target = DevServer;
    fn deref(&self) -> &DevServer {
        &self.0
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let rooms: Vec<String> = self
            .0
            .rooms()
            .iter()
            .flat_map(|r| self.0.room_archive(r))
            .map(|a| a.stanza)
            .collect();
        for user in ["alice", "bob", "carol"] {
            let archived = self.0.archive(user).into_iter().map(|a| a.stanza);
            for stanza in archived.chain(self.0.offline(user)).chain(rooms.clone()) {
                for body in parse(&stanza).children().filter(|c| c.name() == "body") {
                    assert!(
                        body.text()
                            .starts_with("This message is encrypted with OMEMO"),
                        "plaintext stored on the server: {stanza}"
                    );
                }
            }
        }
    }
}

/// A devserver for one test, checked for plaintext when dropped.
pub async fn server() -> World {
    World(devserver::server().await)
}

/// Alice (device 11) and Bob (device 22), both online, with sessions confirmed both ways.
pub async fn pair(server: &DevServer) -> (Device, Device) {
    let alice = server.register("alice", "pw").unwrap();
    let bob = server.register("bob", "pw").unwrap();
    let mut alice = device(server, &alice, 11).await;
    let mut bob = device(server, &bob, 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&b, "hello bob").await.unwrap();
    expect(&mut bob, "hello bob").await;
    bob.send_text(&a, "hello alice").await.unwrap();
    expect(&mut alice, "hello alice").await;
    (alice, bob)
}

/// Alice and Bob as [`pair`] makes them; then Bob goes offline and Alice writes `text`, which
/// the server keeps for him. Returns Alice and Bob's store, to connect him again.
pub async fn bob_away(server: &DevServer, text: &str) -> (Device, MemoryStore) {
    let (mut alice, bob) = pair(server).await;
    let bob_jid = bob.jid().clone();
    let store = bob.close().await.unwrap();
    alice.send_text(&bob_jid, text).await.unwrap();
    alice.flush().await.unwrap();
    (alice, store)
}

/// The next visible delivery (bounded wait; no message fails the test).
pub async fn next(hush: &mut Device) -> Delivery {
    hush.receive(PATIENCE)
        .await
        .unwrap()
        .expect("a message should have arrived")
}

/// The next delivery is `text`, without a failure.
pub async fn expect(hush: &mut Device, text: &str) {
    let d = next(hush).await;
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
    assert!(d.failure.is_none(), "{d:?}");
}

/// The texts a catch-up (from the start of the archive) hands out, in order; it must succeed.
pub async fn caught_up(hush: &mut Device) -> Vec<String> {
    hush.catch_up(0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.body)
        .collect()
}

/// Nothing visible arrives within a short while (bounded wait for an absence).
pub async fn nothing(hush: &mut Device) {
    let d = hush.receive(Duration::from_millis(800)).await.unwrap();
    assert!(d.is_none(), "unexpected: {d:?}");
}

/// The bare part of a full JID.
pub fn bare_of(full: &str) -> &str {
    full.split('/').next().unwrap_or(full)
}

/// A live OMEMO message (not an archive result, Carbon or notification).
pub fn is_omemo(stanza: &Element) -> bool {
    stanza.name() == "message" && stanza.children().any(|c| c.name() == "encrypted")
}

/// A stanza as XML text.
pub fn xml(stanza: &Element) -> String {
    String::from(stanza)
}

/// XML text as a stanza.
pub fn parse(xml: &str) -> Element {
    xml.parse().unwrap()
}

/// One rewrite: given the full JID a stanza comes from (or goes to) and the stanza, what to
/// pass on instead.
pub type Rule = Box<dyn FnMut(&str, Element) -> Vec<Element> + Send>;

/// Rewrites what clients send (before the server handles it) and what the server delivers.
pub struct Rules {
    /// What clients send, before the server handles it.
    pub from_client: Option<Rule>,
    /// What the server delivers.
    pub to_client: Option<Rule>,
}

impl Adversary for Rules {
    fn from_client(&mut self, from: &str, stanza: Element) -> Vec<Element> {
        match self.from_client.as_mut() {
            Some(rule) => rule(from, stanza),
            None => vec![stanza],
        }
    }

    fn to_client(&mut self, to: &str, stanza: Element) -> Vec<Element> {
        match self.to_client.as_mut() {
            Some(rule) => rule(to, stanza),
            None => vec![stanza],
        }
    }
}

/// The adversary rewrites what clients send, before the server handles it.
pub fn on_request(
    server: &DevServer,
    rule: impl FnMut(&str, Element) -> Vec<Element> + Send + 'static,
) {
    server.set_adversary(Some(Box::new(Rules {
        from_client: Some(Box::new(rule)),
        to_client: None,
    })));
}

/// The adversary rewrites what the server delivers.
pub fn on_delivery(
    server: &DevServer,
    rule: impl FnMut(&str, Element) -> Vec<Element> + Send + 'static,
) {
    server.set_adversary(Some(Box::new(Rules {
        from_client: None,
        to_client: Some(Box::new(rule)),
    })));
}

/// The server behaves again.
pub fn honest(server: &DevServer) {
    server.set_adversary(None);
}
