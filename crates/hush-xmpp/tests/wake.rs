//! `Hush::receive_or_wake`: a connection waiting for messages lets another task wake it (the
//! agent's account loop waits there while clients hand it sends), and waking loses nothing.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::Arc;
use std::time::Duration;

use hush_test_support::devserver::{account, expect_text, online, server, PATIENCE};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_wait_returns_at_once_and_loses_nothing() {
    let server = server().await;
    let mut alice = account(&server, "alice", 11).await;
    let mut bob = account(&server, "bob", 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&b, "hello").await.unwrap();
    expect_text(&mut bob, "hello").await;
    online(&mut alice).await;

    // A wait far longer than the test's patience ends as soon as it is woken: before it
    // began (the wake is kept) and while it waits.
    let wake = Arc::new(Notify::new());
    let long = Duration::from_secs(3_600);
    wake.notify_one();
    let woken = tokio::time::timeout(PATIENCE, alice.receive_or_wake(long, &wake)).await;
    assert!(matches!(woken, Ok(Ok(None))), "{woken:?}");
    let waker = {
        let wake = wake.clone();
        tokio::spawn(async move { wake.notify_one() })
    };
    let woken = tokio::time::timeout(PATIENCE, alice.receive_or_wake(long, &wake)).await;
    assert!(matches!(woken, Ok(Ok(None))), "{woken:?}");
    waker.await.unwrap();

    // A message that arrives is returned, woken or not; nothing was lost by waking.
    bob.send_text(&a, "after the wake").await.unwrap();
    let got = tokio::time::timeout(PATIENCE, alice.receive_or_wake(long, &wake))
        .await
        .unwrap()
        .unwrap()
        .expect("a message");
    assert_eq!(got.body.as_deref(), Some("after the wake"));
}
