//! Payload encryption: the one random key per message that is then wrapped for every device.
//!
//! * OMEMO:2: 32 random bytes → HKDF-SHA-256(zero salt, info "OMEMO Payload") → 32 B AES-256-CBC
//!   key ‖ 32 B HMAC key ‖ 16 B IV; the tag is HMAC-SHA-256 over the ciphertext, truncated to
//!   16 bytes. Each device gets `key(32) ‖ tag(16)`. An *empty* message wraps 32 zero bytes and has
//!   no `<payload>`.
//! * Legacy: AES-128-GCM with a random 16-byte key and 12-byte IV (the IV travels in `<iv>`);
//!   each device gets `key(16) ‖ tag(16)`. A key-transport message wraps a bare 16-byte key.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{ProtoError, Result};
use crate::suite::Suite;

/// The result of encrypting one payload.
pub(crate) struct Sealed {
    pub ciphertext: Option<Vec<u8>>,
    pub iv: Option<Vec<u8>>,
    /// What every recipient device gets, ratchet-encrypted.
    pub key_material: Zeroizing<Vec<u8>>,
}

const OMEMO2_EMPTY: [u8; 32] = [0; 32];

fn omemo2_keys(key: &[u8]) -> Zeroizing<[u8; 80]> {
    crypto::hkdf_zero_salt::<80>(key, b"OMEMO Payload")
}

fn split_omemo2(out: &[u8; 80]) -> ([u8; 32], [u8; 32], [u8; 16]) {
    let mut enc = [0u8; 32];
    let mut auth = [0u8; 32];
    let mut iv = [0u8; 16];
    enc.copy_from_slice(&out[..32]);
    auth.copy_from_slice(&out[32..64]);
    iv.copy_from_slice(&out[64..]);
    (enc, auth, iv)
}

/// Encrypts `plaintext` (or, for `None`, prepares an empty / key-transport message).
pub(crate) fn seal<R: CryptoRng + ?Sized>(
    suite: Suite,
    plaintext: Option<&[u8]>,
    rng: &mut R,
) -> Sealed {
    match (suite, plaintext) {
        (Suite::Omemo2, None) => Sealed {
            ciphertext: None,
            iv: None,
            key_material: Zeroizing::new(OMEMO2_EMPTY.to_vec()),
        },
        (Suite::Omemo2, Some(pt)) => {
            let key = crate::keys::random_32(rng);
            let derived = omemo2_keys(key.as_ref());
            let (enc, auth, iv) = split_omemo2(&derived);
            let enc = Zeroizing::new(enc);
            let auth = Zeroizing::new(auth);
            let ciphertext = crypto::aes256_cbc_encrypt(&enc, &iv, pt);
            let tag = crypto::hmac_sha256(auth.as_ref(), &[&ciphertext]);
            let mut km = Zeroizing::new(Vec::with_capacity(48));
            km.extend_from_slice(key.as_ref());
            km.extend_from_slice(&tag[..16]);
            Sealed {
                ciphertext: Some(ciphertext),
                iv: None,
                key_material: km,
            }
        }
        (Suite::Legacy, pt) => {
            let mut key = Zeroizing::new([0u8; 16]);
            rng.fill_bytes(key.as_mut());
            let mut iv = [0u8; 12];
            rng.fill_bytes(&mut iv);
            let mut km = Zeroizing::new(key.to_vec());
            let ciphertext = pt.map(|pt| {
                let (ct, tag) = crypto::aes128_gcm_encrypt(&key, &iv, pt);
                km.extend_from_slice(&tag);
                ct
            });
            Sealed {
                ciphertext,
                iv: Some(iv.to_vec()),
                key_material: km,
            }
        }
    }
}

/// Decrypts a payload with the key material recovered from our `<key>`. Returns `None` for an
/// empty / key-transport message.
pub(crate) fn open(
    suite: Suite,
    key_material: &[u8],
    ciphertext: Option<&[u8]>,
    iv: Option<&[u8]>,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    match suite {
        Suite::Omemo2 => match ciphertext {
            // XEP-0384: an empty message carries 32 zero bytes. Key material for a payload
            // without the payload means the server stripped it: refuse, so that the state stays
            // untouched and the genuine copy still decrypts.
            None if key_material == OMEMO2_EMPTY => Ok(None),
            None => Err(ProtoError::MissingPayload),
            Some(ct) => {
                if key_material.len() != 48 {
                    return Err(ProtoError::BadLength {
                        what: "OMEMO:2 key material",
                        got: key_material.len(),
                        expected: "48",
                    });
                }
                let derived = omemo2_keys(&key_material[..32]);
                let (enc, auth, iv) = split_omemo2(&derived);
                let enc = Zeroizing::new(enc);
                let auth = Zeroizing::new(auth);
                if !crypto::hmac_verify_truncated(auth.as_ref(), &[ct], &key_material[32..]) {
                    return Err(ProtoError::AuthenticationFailed("payload"));
                }
                crypto::aes256_cbc_decrypt(&enc, &iv, ct).map(|p| Some(Zeroizing::new(p)))
            }
        },
        Suite::Legacy => {
            let (ct, tag) = match (ciphertext, key_material.len()) {
                // Key transport: a bare 16-byte key (what Conversations and oldmemo send).
                (None, 16) => return Ok(None),
                // key || tag belongs to a payload: it was stripped in transit.
                (None, 32) => return Err(ProtoError::MissingPayload),
                (Some(ct), 32) => (ct, &key_material[16..32]),
                // Older senders: a bare key, with the GCM tag appended to the payload.
                (Some(ct), 16) if ct.len() >= 16 => ct.split_at(ct.len() - 16),
                (_, n) => {
                    return Err(ProtoError::BadLength {
                        what: "legacy key material",
                        got: n,
                        expected: "16 or 32",
                    });
                }
            };
            let iv = iv.ok_or_else(|| {
                ProtoError::MalformedXml("legacy message with payload lacks <iv/>".into())
            })?;
            let mut key = Zeroizing::new([0u8; 16]);
            key.copy_from_slice(&key_material[..16]);
            let mut tag_bytes = [0u8; 16];
            tag_bytes.copy_from_slice(tag);
            let tag = tag_bytes;
            crypto::aes128_gcm_decrypt(&key, iv, ct, &tag).map(|p| Some(Zeroizing::new(p)))
        }
    }
}
