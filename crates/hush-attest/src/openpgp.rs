//! OpenPGP attestations: a detached signature over the statement by a key the user trusts.

use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::{Anchors, AttestError, Attestation, Statement, VouchedBy};

/// A detached OpenPGP signature over a device's [`Statement`] (armored, as `gpg
/// --detach-sign --armor` writes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenPgp {
    /// The armored signature.
    pub signature: String,
}

impl Attestation for OpenPgp {
    fn kind(&self) -> &'static str {
        "OpenPGP"
    }

    fn check(
        &self,
        statement: &Statement,
        anchors: &Anchors,
        _now: i64,
    ) -> Result<VouchedBy, AttestError> {
        let (signature, _) = DetachedSignature::from_armor_single(Cursor::new(&self.signature))
            .map_err(|e| AttestError::Malformed {
                what: "the OpenPGP signature",
                why: e.to_string(),
            })?;
        if anchors.openpgp.is_empty() {
            return Err(AttestError::NoAnchor("OpenPGP key"));
        }
        let signed = statement.to_bytes();
        for armored in &anchors.openpgp {
            let (key, _) =
                SignedPublicKey::from_armor_single(Cursor::new(armored)).map_err(|e| {
                    AttestError::Malformed {
                        what: "a trusted OpenPGP key",
                        why: e.to_string(),
                    }
                })?;
            // A subkey counts only when the primary key bound it (its binding signatures).
            if key.verify_bindings().is_err() {
                continue;
            }
            let by_primary = signature.verify(&key.primary_key, &signed).is_ok();
            let by_subkey = || {
                key.public_subkeys
                    .iter()
                    .any(|sub| signature.verify(&sub.key, &signed).is_ok())
            };
            if by_primary || by_subkey() {
                return Ok(VouchedBy::OpenPgp {
                    fingerprint: format!("{:x}", key.primary_key.fingerprint()),
                    user_id: key
                        .details
                        .users
                        .first()
                        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned()),
                });
            }
        }
        Err(AttestError::BadSignature("OpenPGP key"))
    }
}

/// Who the armored OpenPGP public key `armored` is (its fingerprint and first user id), or why
/// it is no usable key: what `hush attest anchor --openpgp` checks before keeping it.
pub fn openpgp_key(armored: &str) -> Result<VouchedBy, AttestError> {
    let (key, _) = SignedPublicKey::from_armor_single(Cursor::new(armored)).map_err(|e| {
        AttestError::Malformed {
            what: "the OpenPGP key",
            why: e.to_string(),
        }
    })?;
    key.verify_bindings().map_err(|e| AttestError::Malformed {
        what: "the OpenPGP key",
        why: e.to_string(),
    })?;
    Ok(VouchedBy::OpenPgp {
        fingerprint: format!("{:x}", key.primary_key.fingerprint()),
        user_id: key
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned()),
    })
}
