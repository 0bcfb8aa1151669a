//! XEdDSA: Ed25519-compatible signatures made with an X25519 (Montgomery) private key.
//!
//! OMEMO keeps one identity key and uses it both for Diffie-Hellman (X25519) and for signing
//! prekeys (Ed25519). We hold the key in X25519 form and sign with XEdDSA as specified by Signal
//! ("The XEdDSA and VXEdDSA Signature Schemes", rev. 1): the Edwards public key used is the one
//! whose sign bit is 0, so every signature we make is a plain Ed25519 signature over that key.
//!
//! Verification must also accept what deployed libsignal clients produce: they sign with the
//! *unnegated* key and smuggle the Edwards sign bit in the top bit of `sig[63]` (which is always
//! 0 in a canonical `s`). [`verify_with_curve_key`] therefore reads that bit to pick the Edwards
//! point and clears it before checking `s`. A spec-style signature has that bit clear, so both
//! styles verify.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

fn sha512_parts(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The Ed25519 scalar `a` and compressed point `A` (sign bit 0) for an X25519 private key `k`.
pub(crate) fn edwards_keypair(k: &[u8; 32]) -> (Zeroizing<Scalar>, [u8; 32]) {
    let mut a = Scalar::from_bytes_mod_order(clamp_integer(*k));
    let mut big_a = EdwardsPoint::mul_base(&a).compress().to_bytes();
    if big_a[31] & 0x80 != 0 {
        // Negating the scalar negates the point, which flips only the sign bit.
        a = -a;
        big_a[31] &= 0x7f;
    }
    (Zeroizing::new(a), big_a)
}

/// Signs `msg` with the X25519 private key `k`, using 64 bytes of fresh randomness `z`.
pub fn sign(k: &[u8; 32], msg: &[u8], z: &[u8; 64]) -> [u8; 64] {
    let (a, big_a) = edwards_keypair(k);
    sign_with(&a, &big_a, msg, z)
}

/// [`sign`] with the Edwards key pair already derived (identity keys cache it).
pub(crate) fn sign_with(a: &Scalar, big_a: &[u8; 32], msg: &[u8], z: &[u8; 64]) -> [u8; 64] {
    // hash_1(X) = SHA-512(2^256 - 2 || X): 0xFE followed by 31 bytes of 0xFF, little-endian.
    let mut prefix = [0xffu8; 32];
    prefix[0] = 0xfe;
    let a_bytes = Zeroizing::new(a.to_bytes());
    let r_wide = Zeroizing::new(sha512_parts(&[&prefix, a_bytes.as_ref(), msg, z]));
    let r = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&r_wide));
    let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
    let h = Scalar::from_bytes_mod_order_wide(&sha512_parts(&[&big_r, big_a, msg]));
    let s = *r + h * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

/// Plain Ed25519 verification (cofactorless, canonical `s`, no small-order keys), as OMEMO:2 uses
/// for signed prekeys and device labels.
pub fn verify_ed25519(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match CompressedEdwardsY(*public).decompress() {
        Some(a) => verify_point(&a, public, msg, sig),
        None => false,
    }
}

fn verify_point(a: &EdwardsPoint, public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    if a.is_small_order() {
        return false;
    }
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let big_r = &sig[..32];
    let h = Scalar::from_bytes_mod_order_wide(&sha512_parts(&[big_r, public, msg]));
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &(-a), &s).compress();
    crate::crypto::ct_eq(check.as_bytes(), big_r)
}

/// Verifies an XEdDSA signature against an X25519 public key `u`, accepting both the spec form
/// and the libsignal form (Edwards sign bit carried in `sig[63]`).
pub fn verify_with_curve_key(u: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let sign_bit = sig[63] >> 7;
    let Some(a) = MontgomeryPoint(*u).to_edwards(sign_bit) else {
        return false;
    };
    let mut plain = *sig;
    plain[63] &= 0x7f;
    verify_point(&a, &a.compress().to_bytes(), msg, &plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> [u8; 32] {
        clamp_integer([seed; 32])
    }

    #[test]
    fn sign_verify_both_forms() {
        for seed in 0..32u8 {
            let k = key(seed);
            let u = MontgomeryPoint::mul_base_clamped(k).to_bytes();
            let (_, ed) = edwards_keypair(&k);
            let sig = sign(&k, b"message", &[seed; 64]);
            assert!(verify_with_curve_key(&u, b"message", &sig));
            assert!(verify_ed25519(&ed, b"message", &sig));
            assert!(!verify_with_curve_key(&u, b"messagE", &sig));
            let mut bad = sig;
            bad[5] ^= 0x10;
            assert!(!verify_with_curve_key(&u, b"message", &bad));
        }
    }

    /// libsignal signs with the unnegated scalar and stores the sign bit in sig[63]; emulate that
    /// and check we accept it for keys of both signs.
    #[test]
    fn accepts_libsignal_sign_bit_convention() {
        let mut seen_sign = [false; 2];
        for seed in 0..40u8 {
            let k = key(seed.wrapping_mul(7).wrapping_add(3));
            let a = Scalar::from_bytes_mod_order(k);
            let big_a = EdwardsPoint::mul_base(&a).compress().to_bytes();
            let sign_bit = big_a[31] >> 7;
            seen_sign[sign_bit as usize] = true;
            let r = Scalar::from_bytes_mod_order_wide(&[seed; 64]);
            let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
            let h = Scalar::from_bytes_mod_order_wide(&sha512_parts(&[&big_r, &big_a, b"m"]));
            let s = r + h * a;
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&big_r);
            sig[32..].copy_from_slice(s.as_bytes());
            sig[63] |= sign_bit << 7;
            let u = MontgomeryPoint::mul_base_clamped(k).to_bytes();
            assert!(verify_with_curve_key(&u, b"m", &sig), "seed {seed}");
        }
        assert_eq!(seen_sign, [true, true], "test must cover both sign bits");
    }

    #[test]
    fn rejects_non_canonical_s_and_bad_points() {
        let k = key(1);
        let u = MontgomeryPoint::mul_base_clamped(k).to_bytes();
        let mut sig = sign(&k, b"x", &[0; 64]);
        // s + l is non-canonical but would otherwise verify.
        sig[32..].copy_from_slice(&[0xff; 32]);
        sig[63] = 0x0f;
        assert!(!verify_with_curve_key(&u, b"x", &sig));
        assert!(!verify_ed25519(&[0u8; 32], b"x", &sig));
        // The identity point is of small order.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(!verify_ed25519(&ident, b"x", &sign(&k, b"x", &[0; 64])));
    }
}
