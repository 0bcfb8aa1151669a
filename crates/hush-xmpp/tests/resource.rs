//! One resource per device, the same at every login: contacts (and the server) see one client
//! of the account coming and going, not a new one each time.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_test_support::devserver::{account, connect, device, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_logs_in_with_its_own_stable_resource() {
    let server = server().await;
    let alice = account(&server, "alice", 11).await;
    let laptop = device(&server, alice.jid().as_str(), 12).await;
    let mut sessions = server.sessions("alice");
    sessions.sort();
    assert_eq!(
        sessions,
        ["alice@localhost/hush-11", "alice@localhost/hush-12"]
    );
    // Logged out and in again: the same resource.
    let store = alice.close().await.unwrap();
    drop(laptop);
    let _alice = connect(&server, store).await;
    assert!(server
        .sessions("alice")
        .contains(&"alice@localhost/hush-11".to_owned()));
}
