//! # hush-test-support: what the Hush crates' tests share
//!
//! Integration tests, benches and examples of several crates need the same scaffolding: a
//! server to talk to, accounts on it, a simulated world of devices. It lives here once, as an
//! ordinary library that they take as a dev-dependency, instead of being compiled into each
//! test binary from another crate's `tests/` directory.
//!
//! Each module is behind a feature of the same name:
//!
//! * [`prosody`]: a private Prosody server per test, on a loopback port with its own data
//!   (for `hush-xmpp` and `hush-cli`).
//! * [`ejabberd`]: a private ejabberd per test, the same way (for `hush-xmpp`), so that what
//!   works with Prosody is shown to work with the other server most OMEMO users are on.
//! * [`devserver`]: a `hush-devserver` per test, Hush accounts on it, and a raw XMPP client
//!   driven by hand (for `hush-devserver` and `hush-xmpp`).
//! * [`hostile`] (with `devserver`): the adversary of the hostile-server tests, a devserver
//!   checked for plaintext when a test ends, and the accounts the attacks are tried on.
//! * [`simulation`]: the account engine's deterministic simulation of several accounts and
//!   devices without a network (for `hush-engine`'s tests, bench and `simulate` example).
//! * [`fixtures`]: protocol-core states for the benches: established sessions, key
//!   exchanges, a full session record (for `hush-proto`'s bench and `bench_ops` example).
//! * [`dns`]: a tiny authoritative DNS server on a loopback port answering SRV and A queries
//!   from a fixed table (for tests of how a client finds its server).
//! * [`tools`] (always built, std only): `gpg` and `openssl` run in a scratch directory (for
//!   the attestation tests of `hush-attest` and `hush-cli`).
//!
//! Every feature is on by default, so that this crate alone builds and documents all of it;
//! the workspace members take it without defaults and enable the modules they use, so that,
//! say, the engine's simulation builds without an XMPP stack.
//!
//! Only for integration tests, benches and examples: a crate's unit tests (`#[cfg(test)]` in
//! its `src/`) must not use it, because this crate links that crate's ordinary build, a
//! second copy whose types are not the ones the unit tests see.

#![forbid(unsafe_code)]
// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "devserver")]
pub mod devserver;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "ejabberd")]
pub mod ejabberd;
#[cfg(feature = "fixtures")]
pub mod fixtures;
#[cfg(any(feature = "prosody", feature = "ejabberd"))]
pub mod host;
#[cfg(feature = "devserver")]
pub mod hostile;
#[cfg(feature = "prosody")]
pub mod prosody;
#[cfg(feature = "qr")]
pub mod qr;
#[cfg(feature = "simulation")]
pub mod simulation;
pub mod tools;

/// A real XMPP server of the tests ([`prosody::Prosody`], [`ejabberd::Ejabberd`]): where to
/// connect, how to make an account, and what it stored, so that one scenario runs on both.
#[cfg(any(feature = "prosody", feature = "ejabberd"))]
pub trait XmppServer {
    /// `127.0.0.1:PORT`, what a client connects to.
    fn address(&self) -> String;
    /// Registers `user` on `localhost`; returns the bare JID.
    fn register(&self, user: &str, password: &str) -> String;
    /// Every byte the server stored on disk.
    fn stored_bytes(&self) -> Vec<u8>;
}

#[cfg(feature = "prosody")]
impl XmppServer for prosody::Prosody {
    fn address(&self) -> String {
        prosody::Prosody::address(self)
    }
    fn register(&self, user: &str, password: &str) -> String {
        prosody::Prosody::register(self, user, password)
    }
    fn stored_bytes(&self) -> Vec<u8> {
        prosody::Prosody::stored_bytes(self)
    }
}

#[cfg(feature = "ejabberd")]
impl XmppServer for ejabberd::Ejabberd {
    fn address(&self) -> String {
        ejabberd::Ejabberd::address(self)
    }
    fn register(&self, user: &str, password: &str) -> String {
        ejabberd::Ejabberd::register(self, user, password)
    }
    fn stored_bytes(&self) -> Vec<u8> {
        ejabberd::Ejabberd::stored_bytes(self)
    }
}
