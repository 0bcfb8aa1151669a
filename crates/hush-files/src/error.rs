//! What can go wrong with a shared file, before any I/O.

use thiserror::Error;

/// Why a file could not be encrypted, decrypted or described.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileError {
    /// The downloaded file does not match its tag: it was changed, cut, extended or is
    /// another file. Nothing of it may be kept.
    #[error("the file does not match what the sender encrypted (changed, cut short or replaced)")]
    Tampered,
    /// The download ended before the tag: it was cut short.
    #[error("the file ends before its authentication tag: the download was cut short")]
    Truncated,
    /// More than one GCM nonce may cover.
    #[error("files over {limit} bytes cannot be encrypted as one AES-GCM message")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A download resumed from a prefix that is not whole blocks, or after other input (a
    /// bug in the caller, not bad input).
    #[error("a download can only resume from whole 16-byte blocks, before anything else")]
    BadResume,
    /// The cipher library refused a key or buffer (a bug, not bad input).
    #[error("the AES library refused the operation")]
    Cipher,
    /// An `aesgcm://` link that is not one.
    #[error("not an aesgcm:// link: {0}")]
    BadLink(LinkFault),
    /// A `<file-sharing/>` element (XEP-0447/0448) that cannot be used.
    #[error("unusable file-sharing element: {0}")]
    BadShare(&'static str),
}

/// What is wrong with an `aesgcm://` link.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkFault {
    /// It does not start with `aesgcm://`.
    #[error("it does not start with aesgcm://")]
    Scheme,
    /// No `#` fragment with the key.
    #[error("it has no #fragment with the key")]
    NoKey,
    /// The fragment is not 88 or 96 hex digits (a 12- or 16-byte IV and a 32-byte key).
    #[error("its key fragment is not 88 or 96 hex digits")]
    KeyLength,
    /// The host or path is empty, or holds characters a URL may not.
    #[error("its host or path is not a usable URL")]
    Url,
}
