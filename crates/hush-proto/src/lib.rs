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
mod crypto;
mod device;
mod element;
mod error;
#[cfg(test)]
mod kat;
mod keys;
mod message;
mod payload;
pub mod policy;
mod ratchet;
pub mod sce;
mod session;
mod suite;
mod wire;
pub mod x3dh;
pub mod xeddsa;
mod xml;

pub use bundle::{Bundle, DeviceEntry, DeviceList, MAX_LISTED_DEVICES};
pub use device::{LocalDevice, DEFAULT_PREKEYS, MAX_PREKEYS, MIN_PREKEYS};
pub use element::{EncryptedElement, KeyEntry};
pub use error::{ProtoError, Result};
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
