//! Thin wrappers over the RustCrypto primitives, so the protocol modules read like the spec.
//!
//! Every helper takes and returns plain byte arrays; intermediate secrets are zeroized.

use aes::{Aes128, Aes256};
use aes_gcm::aead::{Aead, KeyInit as AeadKeyInit, Payload};
use aes_gcm::AesGcm;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{ProtoError, Result};

type HmacSha256 = Hmac<Sha256>;

/// HKDF-SHA-256 with the given salt and info, filling `N` bytes.
#[expect(
    clippy::expect_used,
    reason = "HKDF-SHA-256 fails only above 255 * 32 output bytes; every N here is at most 80"
)]
pub(crate) fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        .expect("HKDF-SHA-256 output of at most 255*32 bytes");
    out
}

/// Full HMAC-SHA-256 over the concatenation of `parts`.
#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time check of a truncated HMAC-SHA-256 tag over `parts`.
#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
pub(crate) fn hmac_verify_truncated(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.verify_truncated_left(tag).is_ok()
}

/// AES-256-CBC with PKCS#7 padding.
pub(crate) fn aes256_cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// AES-256-CBC with PKCS#7 padding; invalid padding is an error.
pub(crate) fn aes256_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(ProtoError::BadLength {
            what: "AES-CBC ciphertext",
            got: ciphertext.len(),
            expected: "a non-zero multiple of 16",
        });
    }
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| ProtoError::BadPadding)
}

type Aes128Gcm12 = AesGcm<Aes128, aes_gcm::aead::consts::U12>;
type Aes128Gcm16 = AesGcm<Aes128, aes_gcm::aead::consts::U16>;

/// AES-128-GCM as legacy OMEMO uses it: returns `(ciphertext, tag)` separately, because the tag
/// travels inside the per-device key material, not with the payload.
#[expect(
    clippy::expect_used,
    reason = "AES-GCM refuses only plaintexts above 2^36 bytes; payloads are bounded far below"
)]
pub(crate) fn aes128_gcm_encrypt(
    key: &[u8; 16],
    iv: &[u8; 12],
    plaintext: &[u8],
) -> (Vec<u8>, [u8; 16]) {
    let cipher = Aes128Gcm12::new(key.into());
    let mut out = cipher
        .encrypt(
            iv.into(),
            Payload {
                msg: plaintext,
                aad: b"",
            },
        )
        .expect("AES-GCM encryption of in-memory data");
    let tag_start = out.len() - 16;
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&out[tag_start..]);
    out.truncate(tag_start);
    (out, tag)
}

/// AES-128-GCM decryption accepting the 12-byte IVs everybody sends today and the 16-byte IVs
/// some old senders used.
pub(crate) fn aes128_gcm_decrypt(
    key: &[u8; 16],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8; 16],
) -> Result<Vec<u8>> {
    let mut joined = Vec::with_capacity(ciphertext.len() + 16);
    joined.extend_from_slice(ciphertext);
    joined.extend_from_slice(tag);
    let payload = Payload {
        msg: &joined,
        aad: b"",
    };
    let result = if let Ok(iv) = <&[u8; 12]>::try_from(iv) {
        Aes128Gcm12::new(key.into()).decrypt(iv.into(), payload)
    } else if let Ok(iv) = <&[u8; 16]>::try_from(iv) {
        Aes128Gcm16::new(key.into()).decrypt(iv.into(), payload)
    } else {
        return Err(ProtoError::BadLength {
            what: "legacy payload IV",
            got: iv.len(),
            expected: "12 or 16",
        });
    };
    result.map_err(|_| ProtoError::AuthenticationFailed("payload"))
}

/// Compares two byte strings in constant time (for their common length).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let okm = hkdf::<42>(&salt, &ikm, &info);
        assert_eq!(
            hex::encode(okm.as_ref()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn cbc_round_trip_and_bad_padding() {
        let key = [7u8; 32];
        let iv = [9u8; 16];
        let ct = aes256_cbc_encrypt(&key, &iv, b"hello world");
        assert_eq!(ct.len(), 16);
        assert_eq!(aes256_cbc_decrypt(&key, &iv, &ct).unwrap(), b"hello world");
        assert!(aes256_cbc_decrypt(&[8u8; 32], &iv, &ct).is_err());
        assert!(aes256_cbc_decrypt(&key, &iv, &ct[..15]).is_err());
    }

    #[test]
    fn gcm_accepts_12_and_rejects_tampering() {
        let key = [1u8; 16];
        let (ct, tag) = aes128_gcm_encrypt(&key, &[2u8; 12], b"payload");
        assert_eq!(
            aes128_gcm_decrypt(&key, &[2u8; 12], &ct, &tag).unwrap(),
            b"payload"
        );
        let mut bad = tag;
        bad[0] ^= 1;
        assert_eq!(
            aes128_gcm_decrypt(&key, &[2u8; 12], &ct, &bad),
            Err(ProtoError::AuthenticationFailed("payload"))
        );
        assert!(aes128_gcm_decrypt(&key, &[2u8; 13], &ct, &tag).is_err());
    }
}
