//! One resource per device, the same at every login: contacts (and the server) see one client
//! of the account coming and going, not a new one each time — and two installations that drew
//! the same device id do not log each other out.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_store::Store;
use hush_test_support::devserver::{account, connect, device, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_logs_in_with_its_own_stable_resource() {
    let server = server().await;
    let alice = account(&server, "alice", 11).await;
    let laptop = device(&server, alice.jid().as_str(), 12).await;
    let full = |hush: &hush_xmpp::Hush<hush_store::MemoryStore>| {
        let device = hush.store().account().unwrap().unwrap().device;
        format!("alice@localhost/{}", hush_xmpp::resource(&device))
    };
    let (phone_jid, laptop_jid) = (full(&alice), full(&laptop));
    assert_ne!(phone_jid, laptop_jid);
    let mut sessions = server.sessions("alice");
    sessions.sort();
    let mut expected = vec![phone_jid.clone(), laptop_jid];
    expected.sort();
    assert_eq!(sessions, expected);
    // Logged out and in again: the same resource.
    let store = alice.close().await.unwrap();
    drop(laptop);
    let _alice = connect(&server, store).await;
    assert!(server.sessions("alice").contains(&phone_jid));
}
