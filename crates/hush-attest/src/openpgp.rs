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
        now: i64,
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
            let by_subkey = key
                .public_subkeys
                .iter()
                .find(|sub| signature.verify(&sub.key, &signed).is_ok() && subkey_may_sign(sub));
            if !by_primary && by_subkey.is_none() {
                continue;
            }
            if !key.details.revocation_signatures.is_empty() {
                return Err(AttestError::Revoked);
            }
            // Nothing expired counts: the key, the subkey that signed, the signature.
            // Only the self-signatures that may carry a key's expiry count: direct-key
            // signatures and certifications of its user ids (a revoked user id's
            // certification revocation, newer, must not lift it), and a subkey's bindings.
            use pgp::packet::SignatureType as T;
            let self_signatures = key
                .details
                .direct_signatures
                .iter()
                .chain(key.details.users.iter().flat_map(|u| u.signatures.iter()))
                .filter(|s| {
                    matches!(
                        s.typ(),
                        Some(
                            T::Key
                                | T::CertGeneric
                                | T::CertPersona
                                | T::CertCasual
                                | T::CertPositive
                        )
                    )
                });
            expired("key", key.primary_key.created_at(), self_signatures, now)?;
            if let Some(sub) = by_subkey.filter(|_| !by_primary) {
                let bindings = sub
                    .signatures
                    .iter()
                    .filter(|s| s.typ() == Some(T::SubkeyBinding));
                expired("subkey", sub.key.created_at(), bindings, now)?;
            }
            if let (Some(made), Some(lasts)) = (
                signature.signature.created(),
                signature.signature.signature_expiration_time(),
            ) {
                let at = i64::from(made.as_secs()) + i64::from(lasts.as_secs());
                if lasts.as_secs() != 0 && now >= at {
                    return Err(AttestError::KeyExpired {
                        what: "signature",
                        at,
                    });
                }
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

/// Whether key material created at `created` has expired by `now`, as the newest of its
/// self-signatures (`signatures`) says: a key's expiry is a time after its creation, and a
/// newer self-signature may move or lift it.
fn expired<'a>(
    what: &'static str,
    created: pgp::types::Timestamp,
    signatures: impl Iterator<Item = &'a pgp::packet::Signature>,
    now: i64,
) -> Result<(), AttestError> {
    let newest = signatures
        .filter_map(|s| s.created().map(|made| (made.as_secs(), s)))
        .max_by_key(|(made, _)| *made);
    let Some(lasts) = newest.and_then(|(_, s)| s.key_expiration_time()) else {
        return Ok(());
    };
    let at = i64::from(created.as_secs()) + i64::from(lasts.as_secs());
    if lasts.as_secs() != 0 && now >= at {
        return Err(AttestError::KeyExpired { what, at });
    }
    Ok(())
}

/// Whether the armored OpenPGP key `armored` carries a revocation of its primary key: a
/// copy that does is never to be replaced by one that does not (an older export).
pub fn openpgp_revoked(armored: &str) -> Result<bool, AttestError> {
    let (key, _) = SignedPublicKey::from_armor_single(Cursor::new(armored)).map_err(|e| {
        AttestError::Malformed {
            what: "the OpenPGP key",
            why: e.to_string(),
        }
    })?;
    Ok(!key.details.revocation_signatures.is_empty())
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
