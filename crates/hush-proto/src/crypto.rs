//! Thin wrappers over the primitives (RustCrypto's AES modes, the HMAC-SHA-256 of `mac.rs`
//! and HKDF on it), so the protocol modules read like the spec.
//!
//! Every helper takes and returns plain byte arrays; intermediate secrets are zeroized.

use aes::{Aes128, Aes256};
use aes_gcm::aead::{Aead, KeyInit as AeadKeyInit, Payload};
use aes_gcm::AesGcm;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use std::sync::LazyLock;

use zeroize::Zeroizing;

use crate::error::{ProtoError, Result};

pub(crate) use crate::mac::HmacKey;

/// The HMAC key every OMEMO HKDF but the root chain's extracts with: 32 zero bytes (X3DH, the
/// message keys, the OMEMO:2 payload key). It is public, so it is keyed once per process.
static ZERO_SALT: LazyLock<HmacKey> = LazyLock::new(|| HmacKey::new(&[0u8; 32]));

/// HKDF-SHA-256 (RFC 5869) with the given salt and info, filling `N` bytes.
pub(crate) fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    hkdf_expand(&HmacKey::new(salt), ikm, info)
}

/// HKDF-SHA-256 with a salt of 32 zero bytes, as X3DH, the message keys and the OMEMO:2 payload
/// key use it; the salt's HMAC key is set up once per process.
pub(crate) fn hkdf_zero_salt<const N: usize>(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    hkdf_expand(&ZERO_SALT, ikm, info)
}

/// Extract with `salt`, then expand to `N` bytes.
fn hkdf_expand<const N: usize>(salt: &HmacKey, ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32, "HKDF-SHA-256 gives at most 255 blocks") };
    let prk = Zeroizing::new(salt.sign(&[ikm]));
    let expand = HmacKey::new(prk.as_ref());
    let mut out = Zeroizing::new([0u8; N]);
    let mut previous = Zeroizing::new([0u8; 32]);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        // T(i) = HMAC(PRK, T(i-1) || info || i), with T(0) empty; at most 255 blocks (above).
        let counter = [u8::try_from(i + 1).unwrap_or(u8::MAX)];
        *previous = if i == 0 {
            expand.sign(&[info, &counter])
        } else {
            expand.sign(&[previous.as_ref(), info, &counter])
        };
        chunk.copy_from_slice(&previous[..chunk.len()]);
    }
    out
}

/// Full HMAC-SHA-256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    HmacKey::new(key).sign(parts)
}

/// Constant-time check of a truncated HMAC-SHA-256 tag over `parts`.
pub(crate) fn hmac_verify_truncated(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    HmacKey::new(key).verify_truncated(parts, tag)
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
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    type HmacSha256 = Hmac<Sha256>;

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

    proptest::proptest! {
        /// The expansion here against the `hkdf` crate's, for any salt, key, info and each
        /// output length OMEMO uses (and one that ends mid-block).
        #[test]
        fn hkdf_matches_the_hkdf_crate(
            salt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            ikm in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            info in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            fn reference<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; N] {
                let mut out = [0u8; N];
                ::hkdf::Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out).unwrap();
                out
            }
            proptest::prop_assert_eq!(*hkdf::<32>(&salt, &ikm, &info), reference::<32>(&salt, &ikm, &info));
            proptest::prop_assert_eq!(*hkdf::<42>(&salt, &ikm, &info), reference::<42>(&salt, &ikm, &info));
            proptest::prop_assert_eq!(*hkdf::<64>(&salt, &ikm, &info), reference::<64>(&salt, &ikm, &info));
            proptest::prop_assert_eq!(*hkdf::<80>(&salt, &ikm, &info), reference::<80>(&salt, &ikm, &info));
            proptest::prop_assert_eq!(*hkdf_zero_salt::<80>(&ikm, &info), reference::<80>(&[0; 32], &ikm, &info));
        }

        /// One key used for several messages gives each the tag a fresh key would.
        /// (`every_padding_edge_against_the_hmac_crate` walks the lengths where SHA-256's
        /// padding changes shape.)
        #[test]
        fn a_reused_hmac_key_tags_like_a_fresh_one(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let fresh = |m: &[u8]| {
                let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
                mac.update(m);
                <[u8; 32]>::from(mac.finalize().into_bytes())
            };
            let reused = HmacKey::new(&key);
            proptest::prop_assert_eq!(reused.sign(&[&a]), fresh(&a));
            proptest::prop_assert_eq!(reused.sign(&[&b[..b.len() / 2], &b[b.len() / 2..]]), fresh(&b));
            proptest::prop_assert!(reused.verify_truncated(&[&a], &fresh(&a)[..16]));
            let mut wrong = fresh(&a);
            wrong[3] ^= 1;
            proptest::prop_assert!(!reused.verify_truncated(&[&a], &wrong[..16]));
        }
    }

    /// Every message length up to three blocks (the padding's one- and two-block cases, and
    /// whole blocks) with keys around one block, in one part and split in two, against the
    /// `hmac` crate.
    #[test]
    fn every_padding_edge_against_the_hmac_crate() {
        let message: Vec<u8> = (0..=192u8).map(|b| b.wrapping_mul(31)).collect();
        for key_len in [0usize, 1, 32, 55, 56, 63, 64, 65, 128] {
            let key: Vec<u8> = (0..key_len).map(|b| b as u8 ^ 0xa5).collect();
            let ours = HmacKey::new(&key);
            for len in 0..=192 {
                let m = &message[..len];
                let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
                mac.update(m);
                let expected: [u8; 32] = mac.finalize().into_bytes().into();
                assert_eq!(ours.sign(&[m]), expected, "key {key_len}, message {len}");
                let (a, b) = m.split_at(len / 3);
                assert_eq!(ours.sign(&[a, b]), expected, "key {key_len}, {len} in two");
            }
        }
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
