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
                    .any(|sub| signature.verify(&sub.key, &signed).is_ok() && subkey_may_sign(sub))
            };
            if !(by_primary || by_subkey()) {
                continue;
            }
            if !key.details.revocation_signatures.is_empty() {
                return Err(AttestError::Revoked);
            }
            let fingerprint = format!("{:x}", key.primary_key.fingerprint());
            let Some(user_id) = naming(&key, &statement.jid) else {
                return Err(AttestError::NotForAccount {
                    signer: format!("OpenPGP key {fingerprint}"),
                    jid: statement.jid.clone(),
                });
            };
            return Ok(VouchedBy::OpenPgp {
                fingerprint,
                user_id: Some(user_id),
            });
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

/// A subkey that may sign: a binding signature gives it the signing flag, and none revokes it.
fn subkey_may_sign(sub: &pgp::composed::SignedPublicSubKey) -> bool {
    use pgp::packet::SignatureType;
    let revoked = sub
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation));
    let signs = sub
        .signatures
        .iter()
        .any(|s| s.typ() == Some(SignatureType::SubkeyBinding) && s.key_flags().sign());
    signs && !revoked
}

/// The user id of `key` that names `jid` as its address (`Name <jid>`, `jid`, or
/// `xmpp:jid`), compared without case.
fn naming(key: &SignedPublicKey, jid: &str) -> Option<String> {
    let jid = jid.to_ascii_lowercase();
    key.details.users.iter().find_map(|u| {
        let uid = String::from_utf8_lossy(u.id.id()).into_owned();
        let lower = uid.to_ascii_lowercase();
        let address = match (lower.rfind('<'), lower.rfind('>')) {
            (Some(open), Some(close)) if open < close => lower[open + 1..close].trim().to_owned(),
            _ => lower.trim().to_owned(),
        };
        let address = address.strip_prefix("xmpp:").unwrap_or(&address).to_owned();
        (address == jid).then_some(uid)
    })
}
