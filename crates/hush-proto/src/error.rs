//! The one error type of the protocol core.
//!
//! Every way a peer, a server or a corrupt state can make an operation fail has its own variant, so
//! callers (and users) learn *what* went wrong. None of them carries secret material.

use thiserror::Error;

/// Everything that can go wrong inside `hush-proto`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// A suite name we do not implement (e.g. a namespace from the future).
    #[error("unknown OMEMO suite or namespace `{0}`")]
    UnknownSuite(String),
    /// A key, IV, MAC or id had the wrong size.
    #[error("{what} has length {got}, expected {expected}")]
    BadLength {
        /// What was being read.
        what: &'static str,
        /// The length seen.
        got: usize,
        /// The length the suite requires.
        expected: &'static str,
    },
    /// Bytes that do not decode to a valid curve point, or a low-order point.
    #[error("{0} is not a valid public key")]
    InvalidPublicKey(&'static str),
    /// A signature (signed prekey, device label) did not verify.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// A protobuf structure could not be decoded or lacks a required field.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// An XML element did not have the shape the XEP requires.
    #[error("malformed XML: {0}")]
    MalformedXml(String),
    /// A MAC or an AEAD tag did not verify: the message was forged, corrupted or not for us.
    #[error("authentication failed: the {0} was tampered with or is not for this session")]
    AuthenticationFailed(&'static str),
    /// The ciphertext decrypted but its padding was invalid.
    #[error("decryption failed: invalid padding")]
    BadPadding,
    /// Key material for a payload arrived without the payload: the server stripped it.
    #[error("the message's payload is missing (stripped in transit?)")]
    MissingPayload,
    /// An SCE envelope exceeds our size or nesting limits.
    #[error("{0} exceeds the size or nesting limit")]
    TooLarge(&'static str),
    /// The message key for this message is no longer held: it was used to read this message
    /// before (a replay), or dropped as older than the keys kept for late messages. Without
    /// the key the message cannot be authenticated, so this is no proof of a duplicate: exact
    /// copies of messages read before are recognised by their ids or their
    /// [content digest](crate::EncryptedElement::content_digest) before decryption.
    #[error(
        "the message key for counter {counter} is gone: the message was read before (a replay) \
         or is older than the keys kept for late messages"
    )]
    MessageKeyGone {
        /// The message counter.
        counter: u32,
    },
    /// The sender wants us to skip more message keys than we allow (DoS protection).
    #[error("message would skip {requested} message keys, more than the limit of {limit}")]
    TooManySkipped {
        /// How many keys the message asks us to derive.
        requested: u64,
        /// The configured limit.
        limit: u32,
    },
    /// A key exchange refers to a signed prekey we do not (or no longer) have.
    #[error("key exchange uses signed prekey {0}, which this device does not have")]
    UnknownSignedPreKey(u32),
    /// A key exchange refers to a one-time prekey we do not (or no longer) have.
    #[error(
        "key exchange uses one-time prekey {0}, which this device does not have (already used?)"
    )]
    UnknownPreKey(u32),
    /// A bundle without any one-time prekey: OMEMO requires one for every key exchange.
    #[error("bundle of device {0} has no one-time prekeys")]
    NoPreKeys(u32),
    /// The message holds no `<key>` for our device.
    #[error("message is not encrypted for device {0}")]
    NotForThisDevice(u32),
    /// A message arrived from a device we have no session with, and it is no key exchange.
    #[error("no session with device {device} of {jid}, and the message is not a key exchange")]
    NoSession {
        /// The sender's bare JID.
        jid: String,
        /// The sender's device id.
        device: u32,
    },
    /// The SCE envelope failed one of its checks (recipient, sender, missing padding).
    #[error("SCE envelope rejected: {0}")]
    Envelope(EnvelopeFault),
    /// A state blob could not be restored.
    #[error("corrupt saved state: {0}")]
    CorruptState(&'static str),
    /// A device or key id outside 1..2^31-1.
    #[error("id {0} is outside 1..2^31-1")]
    BadId(u64),
}

/// Why an SCE envelope (XEP-0420) was refused, or could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeFault {
    /// The content holds characters XML 1.0 cannot carry (control characters).
    #[error("content holds characters XML cannot carry (control characters?)")]
    NotXmlCharacters,
    /// The content could not be serialised.
    #[error("content cannot be written as XML: {0}")]
    Unwritable(String),
    /// The bytes are not well-formed restricted XML.
    #[error("not XML: {0}")]
    NotXml(String),
    /// The root element is not an SCE envelope.
    #[error("root is <{name}/> in {namespace}, not an SCE envelope")]
    NotAnEnvelope {
        /// The root's name.
        name: String,
        /// The root's namespace.
        namespace: String,
    },
    /// No `<content/>`.
    #[error("no <content/>")]
    NoContent,
    /// No `<rpad/>`, which OMEMO requires.
    #[error("no <rpad/>, which OMEMO requires")]
    NoPadding,
    /// The envelope names another addressee than the stanza's.
    #[error("addressed to {envelope}, but the stanza went to {stanza}")]
    WrongRecipient {
        /// The addressee the envelope names.
        envelope: String,
        /// The stanza's addressee.
        stanza: String,
    },
    /// No `<to/>`, which a group chat message needs.
    #[error("no <to/> in a group chat message")]
    NoRecipient,
    /// The envelope names another sender than the stanza's.
    #[error("claims to be from {envelope}, but the stanza came from {stanza}")]
    WrongSender {
        /// The sender the envelope names.
        envelope: String,
        /// The stanza's sender.
        stanza: String,
    },
    /// A key for a payload arrived without the payload.
    #[error("the message has no payload")]
    NoPayload,
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, ProtoError>;
