//! Two people (or two devices of one account) writing first at the same time, before either
//! has read the other: each device starts a session from the other's bundle. Every message must
//! be read, by every device it was encrypted for, with no failure, and the sessions must settle
//! (no key exchange resent forever). Before sessions kept earlier states, both sessions broke
//! for good here: the issue measured 1 of 3 messages read each way.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::collections::BTreeMap;

use hush_proto::Suite;
use hush_store::{MemoryStore, SessionKey, Store};
use hush_test_support::devserver::{account, device, server, PATIENCE};
use hush_xmpp::{BareJid, Hush};

type Device = Hush<MemoryStore>;

/// Reads until exactly `texts` arrived (any order), each once; any failure fails the test.
async fn read_all(hush: &mut Device, texts: &[String]) {
    let mut want: BTreeMap<&str, usize> = BTreeMap::new();
    for t in texts {
        *want.entry(t.as_str()).or_default() += 1;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    while got.values().sum::<usize>() < texts.len() {
        let d = hush.receive(PATIENCE).await.unwrap().unwrap_or_else(|| {
            panic!(
                "device {} still waits for {want:?}, got {got:?}",
                hush.device_id()
            )
        });
        assert!(
            d.failure.is_none(),
            "device {} could not read: {d:?}",
            hush.device_id()
        );
        let body = d.body.expect("a message with text");
        *got.entry(body).or_default() += 1;
    }
    let got: BTreeMap<&str, usize> = got.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(got, want, "device {} read something else", hush.device_id());
}

/// Nothing in `hush`'s history with `peer` is a failure, and every session it holds with
/// `peer`'s devices is confirmed (no key exchange still attached to what it sends).
fn settled(hush: &Device, peer: &BareJid, devices: &[u32]) {
    let history = hush.store().history(peer.as_str(), 1000).unwrap();
    let failures: Vec<_> = history.iter().filter_map(|m| m.failure.as_ref()).collect();
    assert!(
        failures.is_empty(),
        "device {}: {failures:?}",
        hush.device_id()
    );
    for d in devices {
        let key = SessionKey::new(Suite::Omemo2, peer.as_str(), *d);
        let session = hush.store().session(&key).unwrap().expect("a session");
        assert!(
            session.is_confirmed(),
            "device {} still sends its key exchange to {peer}/{d}: {session:?}",
            hush.device_id()
        );
    }
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    vec![format!("{prefix} {n}")]
}

/// Alice and Bob each write first; then three more rounds in which both write before reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_writing_first_read_everything() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    for n in 0..4 {
        alice.send_text(&b, &format!("alice {n}")).await.unwrap();
        bob.send_text(&a, &format!("bob {n}")).await.unwrap();
        read_all(&mut alice, &texts("bob", n)).await;
        read_all(&mut bob, &texts("alice", n)).await;
    }
    // One more exchange, each read before the answer: the sessions have settled.
    alice.send_text(&b, "settled?").await.unwrap();
    read_all(&mut bob, &["settled?".to_owned()]).await;
    bob.send_text(&a, "settled.").await.unwrap();
    read_all(&mut alice, &["settled.".to_owned()]).await;
    settled(&alice, &b, &[22]);
    settled(&bob, &a, &[11]);
}

/// Two devices of Alice and Bob's one device all write first: Alice's devices also start
/// sessions with each other at the same time (each sends a copy to the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_devices_writing_first_read_everything() {
    let server = server().await;
    let mut phone = account(&server, "alice", 11).await;
    let a = phone.jid().clone();
    let mut laptop = device(&server, a.as_str(), 12).await;
    let mut bob = account(&server, "bob", 22).await;
    let b = bob.jid().clone();
    for n in 0..3 {
        phone.send_text(&b, &format!("phone {n}")).await.unwrap();
        laptop.send_text(&b, &format!("laptop {n}")).await.unwrap();
        bob.send_text(&a, &format!("bob {n}")).await.unwrap();
        // Each of Alice's devices reads Bob's message and the other device's copy.
        read_all(&mut phone, &[format!("bob {n}"), format!("laptop {n}")]).await;
        read_all(&mut laptop, &[format!("bob {n}"), format!("phone {n}")]).await;
        read_all(&mut bob, &[format!("phone {n}"), format!("laptop {n}")]).await;
    }
    bob.send_text(&a, "settled?").await.unwrap();
    read_all(&mut phone, &["settled?".to_owned()]).await;
    read_all(&mut laptop, &["settled?".to_owned()]).await;
    phone.send_text(&b, "settled.").await.unwrap();
    read_all(&mut laptop, &["settled.".to_owned()]).await;
    read_all(&mut bob, &["settled.".to_owned()]).await;
    laptop.send_text(&b, "settled!").await.unwrap();
    read_all(&mut phone, &["settled!".to_owned()]).await;
    read_all(&mut bob, &["settled!".to_owned()]).await;
    settled(&phone, &b, &[22]);
    settled(&phone, &a, &[12]);
    settled(&laptop, &a, &[11]);
    settled(&bob, &a, &[11, 12]);
}
