//! Attestations of OMEMO identity keys: someone the user already trusts — an OpenPGP key, an
//! X.509 certification authority — vouches that a device's identity key is its owner's.
//!
//! The owner signs a [`Statement`]: a short text naming the account, the device and the
//! identity key (its Curve25519 form, as fingerprints show it). The signature is published
//! with the device's keys; a contact who trusts the signer checks it here and, when it holds,
//! has the device verified without comparing fingerprints.
//!
//! Every kind is an [`Attestation`]: it says what it is and checks itself against a device and
//! the user's [`Anchors`], giving who vouched ([`VouchedBy`]) or why not ([`AttestError`]).
//!
//! * [`OpenPgp`]: a detached OpenPGP signature (`gpg --detach-sign --armor`) over the
//!   statement, by the primary key or a signing subkey of a public key the user trusts. Checked
//!   with `rpgp`.
//! * [`X509`]: a signature over the statement by a certificate's key (`openssl dgst -sha256
//!   -sign`, or `openssl pkeyutl -sign -rawin` for Ed25519) and the certificate chain up to a
//!   certification authority the user trusts; each certificate's signature, validity period and
//!   (for issuers) CA flag are checked. Parsed with `x509-parser`, verified with aws-lc.
//!
//! An anchor vouches only for the accounts it names: an OpenPGP key for a JID one of its user
//! ids has as address (`Bob <bob@example.org>`, or `xmpp:bob@example.org`), a certificate for a
//! JID its subject alternative names (e-mail or `xmpp:` URI) or subject e-mail give. A key the
//! user trusts for Bob cannot vouch for Carol's devices.
//!
//! Native verification (a fingerprint compared, a short authentication string) is the user's
//! own act and needs no attestation; its record is the trust source in the store.
//!
//! No I/O here: the network shell fetches what devices publish, the command line reads the
//! user's files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod openpgp;
mod published;
mod statement;
mod x509;

pub use openpgp::{openpgp_key, openpgp_revoked, OpenPgp};
pub use published::{pem_certificates, Published, NODE};
pub use statement::{Statement, STATEMENT_HEADER};
pub use x509::{x509_anchor, X509};

/// The trust anchors the user chose: OpenPGP public keys (armored) and X.509 certification
/// authorities (DER), parsed when checked.
#[derive(Clone, Debug, Default)]
pub struct Anchors {
    /// Armored OpenPGP public keys.
    pub openpgp: Vec<String>,
    /// DER certificates of certification authorities.
    pub x509: Vec<Vec<u8>>,
}

/// Who vouched for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VouchedBy {
    /// An OpenPGP key the user trusts.
    OpenPgp {
        /// Its primary key's fingerprint (hex).
        fingerprint: String,
        /// Its first user id, if it has one.
        user_id: Option<String>,
    },
    /// A certificate issued under a certification authority the user trusts.
    X509 {
        /// The certificate's subject.
        subject: String,
        /// The anchor's subject.
        anchor: String,
        /// The anchor's id: the SHA-256 of its certificate (hex), as [`x509_anchor`] gives
        /// it. Two authorities may have the same subject; never the same id.
        anchor_id: String,
    },
}

impl core::fmt::Display for VouchedBy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OpenPgp {
                fingerprint,
                user_id,
            } => match user_id {
                Some(uid) => write!(f, "OpenPGP key {fingerprint} ({uid})"),
                None => write!(f, "OpenPGP key {fingerprint}"),
            },
            Self::X509 {
                subject, anchor, ..
            } => write!(f, "X.509 subject {subject} (under {anchor})"),
        }
    }
}

/// Why an attestation does not vouch for a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestError {
    /// Malformed input (a signature, a key, a certificate that does not parse).
    #[error("{what} does not parse: {why}")]
    Malformed {
        /// What.
        what: &'static str,
        /// The parser's words.
        why: String,
    },
    /// No anchor of this kind was given.
    #[error("no trusted {0} to check it against (add one first)")]
    NoAnchor(&'static str),
    /// The signature is not by any anchor, or not over this device's statement.
    #[error("the signature does not verify with any trusted {0} for this device's key")]
    BadSignature(&'static str),
    /// A certificate of the chain is outside its validity period.
    #[error(
        "certificate {subject} is not valid now (valid {not_before} to {not_after}, unix seconds)"
    )]
    Expired {
        /// The certificate.
        subject: String,
        /// Its validity.
        not_before: i64,
        /// Its validity.
        not_after: i64,
    },
    /// The chain does not lead to a trusted certification authority.
    #[error("the certificate chain of {0} does not lead to a trusted certification authority")]
    Untrusted(String),
    /// A certificate that signs others is not a certification authority.
    #[error("{0} signs certificates but is not a certification authority")]
    NotACa(String),
    /// The signer is trusted, but does not name the account it vouches for: an anchor vouches
    /// only for the accounts its keys or certificates name (an OpenPGP user id with the JID
    /// as its address, a certificate with the JID as an e-mail or `xmpp:` name).
    #[error("{signer} does not name {jid}: it may not vouch for that account's keys")]
    NotForAccount {
        /// The signer.
        signer: String,
        /// The account.
        jid: String,
    },
    /// The OpenPGP key (or the subkey that signed), or the signature itself, expired.
    #[error("the OpenPGP {what} expired at {at} (unix seconds)")]
    KeyExpired {
        /// `key`, `subkey` or `signature`.
        what: &'static str,
        /// When.
        at: i64,
    },
    /// The OpenPGP key (or the subkey that signed) is revoked, or may not sign.
    #[error("the OpenPGP key is revoked or may not sign")]
    Revoked,
    /// A certificate that may not do what it did (a critical extension this code does not
    /// know, a key usage that forbids it, a path longer than its issuer allows, SHA-1).
    #[error("certificate {subject} may not be used here: {why}")]
    Unusable {
        /// The certificate.
        subject: String,
        /// Why.
        why: &'static str,
    },
    /// A signature algorithm this build does not check.
    #[error("unsupported key or signature algorithm: {0}")]
    Unsupported(String),
}

/// An attestation of one device's identity key.
pub trait Attestation {
    /// Its kind, for people (`OpenPGP`, `X.509`).
    fn kind(&self) -> &'static str;

    /// Checks that it vouches for `statement` (the device's key) under the user's `anchors`,
    /// at `now` (unix seconds); gives who vouched.
    fn check(
        &self,
        statement: &Statement,
        anchors: &Anchors,
        now: i64,
    ) -> Result<VouchedBy, AttestError>;
}
