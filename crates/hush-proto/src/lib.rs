//! # hush-proto: the sans-IO OMEMO core of Hush
//!
//! Everything cryptographic and protocol-shaped about OMEMO (XEP-0384), with no sockets, files,
//! clock or randomness of its own: callers hand in bytes, an RNG and "now", and get back values —
//! including every state change, which they must persist before anything leaves the device.
//!
//! * [`xeddsa`] — Ed25519-compatible signatures from X25519 identity keys (both sign-bit styles).
//! * [`Suite`] — the named, versioned protocol suites: `omemo:2` and `omemo:legacy`.
//! * [`LocalDevice`] — our identity, signed prekey and one-time prekeys; publishes [`Bundle`]s.
//! * [`x3dh`] — the key agreement; [`Session`] — X3DH + Double Ratchet with one remote device.
//! * [`seal`] / [`LocalDevice::open`] — one payload key per message, wrapped for every device,
//!   as an [`EncryptedElement`] (`<encrypted/>` in either namespace).
//! * [`sce`] — Stanza Content Encryption envelopes for OMEMO:2.
//! * [`bounded_xml`] — parsing untrusted XML into a tree of bounded depth and size.
//! * [`DeviceList`] — PEP device lists, with signed labels.
//!
//! Secrets live in zeroizing buffers and never appear in `Debug` output.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bounded_xml;
mod bundle;
#[cfg(test)]
mod cost_tests;
mod crypto;
mod device;
mod element;
mod error;
#[cfg(test)]
mod kat;
mod keys;
mod mac;
mod message;
mod payload;
pub mod policy;
mod ratchet;
pub mod sas;
pub mod sce;
mod session;
mod suite;
mod wire;
mod x3dh;
mod xeddsa;
mod xml;

pub use bundle::{Bundle, DeviceEntry, DeviceList, MAX_LISTED_DEVICES};
pub use device::{LocalDevice, DEFAULT_PREKEYS, MAX_PREKEYS, MIN_PREKEYS};
pub use element::{EncryptedElement, KeyEntry};
pub use error::{EnvelopeFault, ProtoError, Result};
pub use keys::{check_id, IdentityKey, IdentityKeyPair, KeyPair, PreKey, SignedPreKey};
pub use message::{seal, Opened, Recipient};
pub use minidom::Element;
/// The RNG trait every randomized operation takes (rand_core 0.10).
pub use rand_core::CryptoRng;
pub use ratchet::{MAX_SKIPPED_KEYS, MAX_SKIP_PER_MESSAGE};
pub use session::{
    EncryptedKey, Initiation, Session, HEARTBEAT_AFTER, MAX_BASE_KEY_DRAWS, MAX_EARLIER_STEPS,
    MAX_PREVIOUS_STATES,
};
pub use suite::Suite;

/// Raw primitives and secret bytes, outside the safe API: for benchmarks, known-answer tests
/// and interop work that needs them, never for sending or reading messages.
///
/// Everything here skips what the rest of the crate guarantees. A key agreement computed here
/// is tied to no session and no verified bundle; a signature made here is checked against
/// nothing; secret bytes borrowed here are the key itself, and any copy the caller makes is
/// its own to zeroize. Hush's own client never uses this module.
pub mod hazmat {
    use crate::{IdentityKeyPair, KeyPair};

    pub use crate::x3dh::{active as x3dh_active, passive as x3dh_passive};
    pub use crate::xeddsa::{sign as xeddsa_sign, verify_ed25519, verify_with_curve_key};

    /// The private scalar of an identity key.
    pub fn identity_secret(key: &IdentityKeyPair) -> &[u8; 32] {
        key.secret_bytes()
    }

    /// The private scalar of an X25519 key pair.
    pub fn key_pair_secret(key: &KeyPair) -> &[u8; 32] {
        key.secret_bytes()
    }

    /// X25519 of `key` with `their_public`, as every Diffie-Hellman of X3DH and the ratchet
    /// computes it (low-order results refused).
    pub fn x25519(
        key: &KeyPair,
        their_public: &[u8; 32],
    ) -> crate::Result<zeroize::Zeroizing<[u8; 32]>> {
        key.dh(their_public)
    }
}

#[cfg(test)]
mod redaction_tests;

/// The README's Rust example, compiled and run as a doctest so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExample;
