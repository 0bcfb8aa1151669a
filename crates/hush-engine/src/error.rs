//! What the engine refuses, and why.

use thiserror::Error;

/// Everything a step of the account engine can fail with. A step that fails wrote nothing: its
/// transaction was never handed out.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store could not be read.
    #[error("store: {0}")]
    Store(#[from] hush_store::StoreError),
    /// The protocol core refused (a malformed element, an envelope it cannot build).
    #[error("{0}")]
    Protocol(#[from] hush_proto::ProtoError),
    /// The send was refused: nothing is sent, nothing is stored.
    #[error("nothing was sent to {jid}: {refusal}")]
    NotSent {
        /// The addressee.
        jid: String,
        /// Why.
        refusal: crate::Refusal,
    },
    /// A device list longer than any real account has (a server flooding it).
    #[error("{jid}'s device list names {count} devices (at most {max} are accepted; is the server flooding it?); nothing was sent", max = crate::MAX_LISTED_DEVICES)]
    DeviceListTooLong {
        /// Whose list.
        jid: String,
        /// How many devices it named.
        count: usize,
    },
    /// A device cannot remove itself from its account's device list.
    #[error("device {0} is this device; run the removal from another device (or stop using this one first)")]
    RemoveSelf(u32),
    /// The archive answers in a way that would never end a catch-up.
    #[error("the server's archive misbehaves: {0}")]
    ArchiveMisbehaves(&'static str),
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, EngineError>;
