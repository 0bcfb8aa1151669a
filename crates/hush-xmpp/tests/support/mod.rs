//! Accounts for the tests against Prosody: a device with a fresh key set in an in-memory store,
//! connected and announced.

#![allow(dead_code)]

use std::time::Duration;

use hush_store::MemoryStore;
/// A store holding a new device of `jid`, not yet connected (the same as the devserver tests').
pub use hush_test_support::devserver::offline_device;
use hush_test_support::prosody::Prosody;
use hush_xmpp::{ConnectOptions, Hush};

/// Registers `user` (password `pw`) and connects its first device `device_id`, through `via`
/// (`host:port`) when given.
pub async fn account(
    server: &Prosody,
    via: Option<&str>,
    user: &str,
    device_id: u32,
) -> Hush<MemoryStore> {
    let jid = server.register(user, "pw");
    device(server, via, &jid, device_id).await
}

/// Connects and announces a new device `device_id` of the existing account `jid`.
pub async fn device(
    server: &Prosody,
    via: Option<&str>,
    jid: &str,
    device_id: u32,
) -> Hush<MemoryStore> {
    let mut hush = connect(server, via, offline_device(jid, device_id)).await;
    hush.announce().await.unwrap();
    hush
}

/// How the tests connect to `server` (through `via`, a relay, if given).
pub fn options(server: &Prosody, via: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        server: Some(via.map_or_else(|| server.address(), str::to_owned)),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
    }
}

/// Connects the account in `store`.
pub async fn connect(server: &Prosody, via: Option<&str>, store: MemoryStore) -> Hush<MemoryStore> {
    Hush::connect(store, "pw", &options(server, via))
        .await
        .unwrap()
}

/// Waits (bounded) for the next message and checks its text.
pub async fn expect_text(hush: &mut Hush<MemoryStore>, text: &str) {
    let d = hush
        .receive(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("`{text}` did not arrive"));
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
}
