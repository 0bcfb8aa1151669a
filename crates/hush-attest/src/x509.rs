//! X.509 attestations: a certificate's key signs the statement, and the certificate chains up
//! to a certification authority the user trusts.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{Anchors, AttestError, Attestation, Statement, VouchedBy};

/// Certificates a chain may hold, leaf included (more is refused rather than walked).
pub(crate) const MAX_CHAIN: usize = 8;

/// A signature over a device's [`Statement`] by a certificate's key, and the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X509 {
    /// The certificates, DER: the signer's first, then any intermediates.
    pub chain: Vec<Vec<u8>>,
    /// The signature over the statement (ECDSA in DER form with SHA-256 or SHA-384, RSA
    /// PKCS #1 v1.5 with SHA-256, or Ed25519).
    pub signature: Vec<u8>,
}

/// A certification authority's certificate as the user is shown it: its subject and the
/// SHA-256 of its DER (hex), by which `hush attest anchor --remove` names it.
pub fn x509_anchor(der: &[u8]) -> Result<(String, String), AttestError> {
    let cert = parse(der, "the certificate")?;
    Ok((cert.subject().to_string(), anchor_id(der)))
}

/// An anchor's id: the SHA-256 of its certificate, in hex.
fn anchor_id(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

fn parse<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, AttestError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(AttestError::Malformed {
            what,
            why: "bytes after the certificate".into(),
        }),
        Err(e) => Err(AttestError::Malformed {
            what,
            why: e.to_string(),
        }),
    }
}

fn valid_now(cert: &X509Certificate<'_>, now: i64) -> Result<(), AttestError> {
    let v = cert.validity();
    let (not_before, not_after) = (v.not_before.timestamp(), v.not_after.timestamp());
    if now < not_before || now > not_after {
        return Err(AttestError::Expired {
            subject: cert.subject().to_string(),
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// Signature algorithms refused: SHA-1 (collisions can be made), with RSA and ECDSA.
const WEAK_SIGNATURES: [&str; 3] = [
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.113549.1.1.4", // md5WithRSAEncryption
];

/// Refuses a certificate with a critical extension this code does not understand, or signed
/// with a weak algorithm.
fn usable(cert: &X509Certificate<'_>) -> Result<(), AttestError> {
    let subject = || cert.subject().to_string();
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    if WEAK_SIGNATURES.contains(&algorithm.as_str()) {
        return Err(AttestError::Unusable {
            subject: subject(),
            why: "it is signed with SHA-1 or MD5",
        });
    }
    let unknown_critical = cert.extensions().iter().any(|e| {
        e.critical
            && matches!(
                e.parsed_extension(),
                x509_parser::extensions::ParsedExtension::UnsupportedExtension { .. }
                    | x509_parser::extensions::ParsedExtension::ParseError { .. }
            )
    });
    if unknown_critical {
        return Err(AttestError::Unusable {
            subject: subject(),
            why: "it has a critical extension this check does not know",
        });
    }
    Ok(())
}

/// Whether `issuer` may issue a certificate with `below` certificates authorities under it:
/// a CA, whose key usage (if given) allows signing certificates, whose path length allows it.
fn may_issue(issuer: &X509Certificate<'_>, below: usize) -> Result<(), AttestError> {
    let subject = || issuer.subject().to_string();
    let constraints = issuer
        .basic_constraints()
        .ok()
        .flatten()
        .map(|b| (b.value.ca, b.value.path_len_constraint));
    let Some((true, path_len)) = constraints else {
        return Err(AttestError::NotACa(subject()));
    };
    if path_len.is_some_and(|max| below > max as usize) {
        return Err(AttestError::Unusable {
            subject: subject(),
            why: "the chain below it is longer than its path length allows",
        });
    }
    if let Ok(Some(ku)) = issuer.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(AttestError::Unusable {
                subject: subject(),
                why: "its key usage does not allow signing certificates",
            });
        }
    }
    usable(issuer)
}

/// Whether `cert` names `jid`: as a subject alternative e-mail or `xmpp:` URI, or as its
/// subject's e-mail address (compared without case).
fn names(cert: &X509Certificate<'_>, jid: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let jid = jid.to_ascii_lowercase();
    let same = |s: &str| s.trim().to_ascii_lowercase() == jid;
    let in_san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| {
            san.value.general_names.iter().any(|n| match n {
                GeneralName::RFC822Name(mail) => same(mail),
                GeneralName::URI(uri) => uri.strip_prefix("xmpp:").is_some_and(&same),
                _ => false,
            })
        });
    let in_subject = cert
        .subject()
        .iter_email()
        .any(|e| e.as_str().is_ok_and(same));
    in_san || in_subject
}

/// Whether `cert` is signed by `issuer`'s key and names it as its issuer.
fn issued_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer() == issuer.subject() && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks `signature` over `message` with the key of `spki`.
fn verify_with(
    spki: &SubjectPublicKeyInfo<'_>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), AttestError> {
    let key = spki.subject_public_key.data.as_ref();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let candidates: &[&'static dyn VerificationAlgorithm] =
        match (algorithm.as_str(), curve.as_deref()) {
            // id-ecPublicKey on P-256 / P-384.
            ("1.2.840.10045.2.1", Some("1.2.840.10045.3.1.7")) => {
                &[&signature::ECDSA_P256_SHA256_ASN1]
            }
            ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => &[&signature::ECDSA_P384_SHA384_ASN1],
            // rsaEncryption.
            ("1.2.840.113549.1.1.1", _) => &[&signature::RSA_PKCS1_2048_8192_SHA256],
            // Ed25519.
            ("1.3.101.112", _) => &[&signature::ED25519],
            (other, curve) => {
                return Err(AttestError::Unsupported(format!(
                    "{other}{}",
                    curve.map(|c| format!(" on {c}")).unwrap_or_default()
                )))
            }
        };
    if candidates.iter().any(|alg| {
        UnparsedPublicKey::new(*alg, key)
            .verify(message, signature)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(AttestError::BadSignature("certificate"))
    }
}

impl Attestation for X509 {
    fn kind(&self) -> &'static str {
        "X.509"
    }

    fn check(
        &self,
        statement: &Statement,
        anchors: &Anchors,
        now: i64,
    ) -> Result<VouchedBy, AttestError> {
        if anchors.x509.is_empty() {
            return Err(AttestError::NoAnchor("certification authority"));
        }
        if self.chain.is_empty() || self.chain.len() > MAX_CHAIN {
            return Err(AttestError::Malformed {
                what: "the certificate chain",
                why: format!(
                    "{} certificates (1 to {MAX_CHAIN} expected)",
                    self.chain.len()
                ),
            });
        }
        let chain = self
            .chain
            .iter()
            .map(|der| parse(der, "a certificate of the chain"))
            .collect::<Result<Vec<_>, _>>()?;
        let trusted = anchors
            .x509
            .iter()
            .map(|der| parse(der, "a trusted certification authority"))
            .collect::<Result<Vec<_>, _>>()?;
        for cert in &chain {
            valid_now(cert, now)?;
            usable(cert)?;
        }
        // Each certificate is issued by the next; the last by an anchor (or is one).
        for (below, pair) in chain.windows(2).enumerate() {
            may_issue(&pair[1], below)?;
            if !issued_by(&pair[0], &pair[1]) {
                return Err(AttestError::Untrusted(pair[0].subject().to_string()));
            }
        }
        let (leaf, top) = match (chain.first(), chain.last()) {
            (Some(leaf), Some(top)) => (leaf, top),
            _ => return Err(AttestError::Untrusted(String::new())),
        };
        let top_der = self.chain.last().map(Vec::as_slice);
        let intermediates = chain.len() - 1;
        let anchor = anchors.x509.iter().zip(&trusted).find(|(der, a)| {
            let same = top_der == Some(der.as_slice());
            same || (may_issue(a, intermediates).is_ok()
                && valid_now(a, now).is_ok()
                && issued_by(top, a))
        });
        let Some((anchor_der, anchor)) = anchor else {
            return Err(AttestError::Untrusted(leaf.subject().to_string()));
        };
        if let Ok(Some(ku)) = leaf.key_usage() {
            if !ku.value.digital_signature() {
                return Err(AttestError::Unusable {
                    subject: leaf.subject().to_string(),
                    why: "its key usage does not allow signatures",
                });
            }
        }
        verify_with(leaf.public_key(), &statement.to_bytes(), &self.signature)?;
        if !names(leaf, &statement.jid) {
            return Err(AttestError::NotForAccount {
                signer: format!("certificate {}", leaf.subject()),
                jid: statement.jid.clone(),
            });
        }
        Ok(VouchedBy::X509 {
            subject: leaf.subject().to_string(),
            anchor: anchor.subject().to_string(),
            anchor_id: anchor_id(anchor_der),
        })
    }
}
