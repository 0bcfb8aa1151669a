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
//! * [`devserver`]: a `hush-devserver` per test, Hush accounts on it, and a raw XMPP client
//!   driven by hand (for `hush-devserver` and `hush-xmpp`).
//! * [`simulation`]: the account engine's deterministic simulation of several accounts and
//!   devices without a network (for `hush-engine`'s tests, bench and `simulate` example).
//! * [`fixtures`]: protocol-core states for the benches: established sessions, key
//!   exchanges, a full session record (for `hush-proto`'s bench and `bench_ops` example).
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
#[cfg(feature = "fixtures")]
pub mod fixtures;
#[cfg(feature = "prosody")]
pub mod prosody;
#[cfg(feature = "simulation")]
pub mod simulation;
