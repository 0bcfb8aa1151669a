//! The statement an attestation signs: which key a device of an account has.

use hush_proto::IdentityKey;

/// The first line of every statement: what it is, and its version.
pub const STATEMENT_HEADER: &str = "Hush OMEMO identity key attestation v1";

/// `JID`'s device `device` has identity key `identity`: the exact bytes signed.
///
/// ```text
/// Hush OMEMO identity key attestation v1
/// jid: alice@example.org
/// device: 1234
/// identity: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
/// ```
///
/// Lines end with `\n`; the key is its Curve25519 form in lowercase hex (what fingerprints
/// show), so the statement names a legacy key and an OMEMO 2 key alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The account.
    pub jid: String,
    /// The device id.
    pub device: u32,
    /// The device's identity key.
    pub identity: IdentityKey,
}

impl Statement {
    /// The bytes to sign (and that a signature is checked over).
    pub fn to_bytes(&self) -> Vec<u8> {
        format!(
            "{STATEMENT_HEADER}\njid: {}\ndevice: {}\nidentity: {}\n",
            self.jid,
            self.device,
            hex::encode(self.identity.curve25519())
        )
        .into_bytes()
    }
}
