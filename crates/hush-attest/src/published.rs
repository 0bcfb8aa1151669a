//! What a device publishes of its attestations: one PEP item per device on [`NODE`], readable
//! by anyone (as bundles are).
//!
//! ```xml
//! <attestations xmlns='urn:hush:attestations:0'>
//!   <openpgp>-----BEGIN PGP SIGNATURE----- …</openpgp>
//!   <x509>
//!     <certificate>BASE64 DER (the signer's)</certificate>
//!     <certificate>BASE64 DER (an intermediate)</certificate>
//!     <signature>BASE64</signature>
//!   </x509>
//! </attestations>
//! ```

use base64::Engine as _;
use minidom::Element;

use crate::{AttestError, OpenPgp, X509};

/// The PEP node (item id: the device id). Hush's own: no XEP defines one.
pub const NODE: &str = "urn:hush:attestations:0";

/// The largest armored OpenPGP signature or single certificate accepted (bytes).
const MAX_PART: usize = 16 * 1024;

/// A device's published attestations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// A detached OpenPGP signature over the device's statement.
    pub openpgp: Option<OpenPgp>,
    /// A certificate's signature over it, with the chain.
    pub x509: Option<X509>,
}

fn malformed(why: &str) -> AttestError {
    AttestError::Malformed {
        what: "the published attestations",
        why: why.to_owned(),
    }
}

impl Published {
    /// The element to publish.
    pub fn to_element(&self) -> Element {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut el = Element::builder("attestations", NODE).build();
        if let Some(p) = &self.openpgp {
            el.append_child(
                Element::builder("openpgp", NODE)
                    .append(p.signature.as_str())
                    .build(),
            );
        }
        if let Some(x) = &self.x509 {
            let mut x509 = Element::builder("x509", NODE).build();
            for der in &x.chain {
                x509.append_child(
                    Element::builder("certificate", NODE)
                        .append(b64.encode(der))
                        .build(),
                );
            }
            x509.append_child(
                Element::builder("signature", NODE)
                    .append(b64.encode(&x.signature))
                    .build(),
            );
            el.append_child(x509);
        }
        el
    }

    /// Reads [`Self::to_element`] (bounded; unknown children are ignored).
    pub fn from_element(el: &Element) -> Result<Self, AttestError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if !el.is("attestations", NODE) {
            return Err(malformed("not an <attestations/> element"));
        }
        let openpgp = match el.get_child("openpgp", NODE) {
            Some(p) => {
                let text = p.text();
                if text.len() > MAX_PART {
                    return Err(malformed("an OpenPGP signature too large"));
                }
                Some(OpenPgp { signature: text })
            }
            None => None,
        };
        let x509 = match el.get_child("x509", NODE) {
            Some(x) => {
                let mut chain = Vec::new();
                for c in x.children().filter(|c| c.is("certificate", NODE)) {
                    let text = c.text();
                    if text.len() > MAX_PART * 2 || chain.len() == crate::x509::MAX_CHAIN {
                        return Err(malformed("a certificate chain too large"));
                    }
                    chain.push(
                        b64.decode(text.trim())
                            .map_err(|_| malformed("a certificate not in Base64"))?,
                    );
                }
                let signature = x
                    .get_child("signature", NODE)
                    .map(|s| s.text())
                    .ok_or_else(|| malformed("an X.509 attestation without a signature"))?;
                if signature.len() > MAX_PART {
                    return Err(malformed("a signature too large"));
                }
                let signature = b64
                    .decode(signature.trim())
                    .map_err(|_| malformed("a signature not in Base64"))?;
                Some(X509 { chain, signature })
            }
            None => None,
        };
        Ok(Self { openpgp, x509 })
    }
}

/// The certificates of a PEM file (`-----BEGIN CERTIFICATE-----` blocks), DER, in order.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, AttestError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| AttestError::Malformed {
            what: "a PEM file",
            why: e.to_string(),
        })?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    if out.is_empty() {
        return Err(AttestError::Malformed {
            what: "a PEM file",
            why: "no CERTIFICATE block".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_published_reads_back_and_junk_is_refused() {
        let published = Published {
            openpgp: Some(OpenPgp {
                signature: "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
                    .into(),
            }),
            x509: Some(X509 {
                chain: vec![vec![1, 2, 3], vec![4, 5]],
                signature: vec![9; 70],
            }),
        };
        assert_eq!(
            Published::from_element(&published.to_element()),
            Ok(published)
        );
        assert_eq!(
            Published::from_element(&Published::default().to_element()),
            Ok(Published::default())
        );
        for junk in [
            "<attestations xmlns='urn:other'/>",
            "<attestations xmlns='urn:hush:attestations:0'><x509><certificate>!!</certificate><signature>AA==</signature></x509></attestations>",
            "<attestations xmlns='urn:hush:attestations:0'><x509><certificate>AA==</certificate></x509></attestations>",
        ] {
            assert!(Published::from_element(&junk.parse().unwrap()).is_err(), "{junk}");
        }
    }

    #[test]
    fn pem_files_give_their_certificates() {
        assert!(pem_certificates(b"no certificate here").is_err());
    }
}
