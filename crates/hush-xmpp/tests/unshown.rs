//! Messages a catch-up inside `receive` read and committed, but that no `receive` handed out
//! yet, are not lost when the caller stops: `take_unshown` hands them over, in order.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_test_support::devserver::{account, connect, expect_text, server, PATIENCE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_catch_up_read_at_once_is_handed_out_before_closing() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&b, "hello bob").await.unwrap();
    expect_text(&mut bob, "hello bob").await;
    let store = alice.close().await.unwrap();
    for i in 0..3 {
        bob.send_text(&a, &format!("m{i}")).await.unwrap();
    }
    bob.flush().await.unwrap();
    // Alice comes back in a later second than the messages were archived in: a device that
    // never caught up must read from where it was announced, not from when it reconnects.
    // (Waiting on the clock itself, which is what this is about: nothing else is awaited.)
    let archived_in = unix_now();
    while unix_now() == archived_in {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Alice comes back: her first `receive` catches up (all three at once) and returns one.
    let mut alice = connect(&server, store).await;
    let first = alice.receive(PATIENCE).await.unwrap().expect("a message");
    assert_eq!(first.body.as_deref(), Some("m0"));
    let rest: Vec<String> = alice
        .take_unshown()
        .into_iter()
        .map(|d| d.body.unwrap_or_default())
        .collect();
    assert_eq!(rest, ["m1", "m2"]);
    assert!(alice.take_unshown().is_empty(), "handed out once");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
