//! Key types: the long-term identity, signed prekeys, one-time prekeys, and fingerprints.
//!
//! Private keys are X25519 scalars held in [`Zeroizing`] buffers; their `Debug` output is redacted.
//! Public identity keys remember both forms OMEMO uses: Curve25519 (legacy wire form, DH, and
//! fingerprints) and Ed25519 (the `urn:xmpp:omemo:2` wire form and signatures). The Ed25519 bytes
//! are kept exactly as the peer sent them, because OMEMO:2 authenticates them byte for byte.

use core::fmt;
use std::sync::{Arc, OnceLock};

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::clamp_integer;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{ProtoError, Result};
use crate::xeddsa;

/// Draws 32 random bytes from the caller's RNG.
pub(crate) fn random_32<R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(out.as_mut());
    out
}

/// An X25519 key pair (private scalar, clamped, and its public u-coordinate).
#[derive(Clone)]
pub struct KeyPair {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    /// The private key as AWS-LC holds it, made on first use and kept: AWS-LC derives the
    /// public key of every private key it is given (a fixed-base multiplication, about a
    /// quarter of an agreement: `benches/curve.rs`), so a key used for several agreements (an
    /// identity key, an X3DH ephemeral key, a signed prekey) pays that once. AWS-LC wipes the
    /// key when the last copy is dropped.
    agreement: OnceLock<Arc<aws_lc_rs::agreement::PrivateKey>>,
}

impl KeyPair {
    /// Builds the pair from 32 private bytes (clamped here). The public key is a fixed-base
    /// multiplication, by AWS-LC (about twice as fast here as curve25519-dalek's precomputed
    /// table: `benches/curve.rs`).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let secret = Zeroizing::new(clamp_integer(secret));
        let agreement = OnceLock::new();
        let public = match aws_lc_key(&secret) {
            Some(key) => {
                let public = key
                    .compute_public_key()
                    .ok()
                    .and_then(|p| <[u8; 32]>::try_from(p.as_ref()).ok());
                // Kept for the agreements to come; it cannot have been set yet.
                let _ = agreement.set(Arc::new(key));
                public
            }
            None => None,
        }
        // curve25519-dalek should AWS-LC ever refuse, which it does not for 32 bytes.
        .unwrap_or_else(|| MontgomeryPoint::mul_base_clamped(*secret).to_bytes());
        Self {
            secret,
            public,
            agreement,
        }
    }

    /// Restores a pair from its two halves as this crate stored them, without recomputing the
    /// public key (a scalar multiplication): reading a session record with many states does
    /// this for every state, on every message. The caller vouches that they belong together.
    pub(crate) fn from_stored(secret: [u8; 32], public: [u8; 32]) -> Self {
        Self {
            secret: Zeroizing::new(clamp_integer(secret)),
            public,
            agreement: OnceLock::new(),
        }
    }

    /// A fresh pair from the caller's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(*random_32(rng))
    }

    /// The public key (X25519 u-coordinate).
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The private bytes; only for persisting the key (and [`crate::hazmat`]).
    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// X25519 with a peer public key (RFC 7748), by AWS-LC: its assembly is about 1.6 times
    /// as fast here as curve25519-dalek's Montgomery ladder, and as fast as OpenSSL
    /// (`benches/curve.rs`). Rejects low-order peer keys (all-zero result).
    pub(crate) fn dh(&self, their_public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
        use aws_lc_rs::agreement::{agree, UnparsedPublicKey, X25519};
        let refused = || ProtoError::InvalidPublicKey("Diffie-Hellman peer key");
        let ours = match self.agreement.get() {
            Some(key) => key,
            None => {
                // Never for 32 bytes; but a key of ours it refuses is not the peer's fault.
                let key = aws_lc_key(&self.secret).ok_or(ProtoError::CorruptState(
                    "X25519 private key refused by AWS-LC",
                ))?;
                self.agreement.get_or_init(|| Arc::new(key))
            }
        };
        let peer = UnparsedPublicKey::new(&X25519, their_public);
        // AWS-LC refuses an all-zero result itself; checked here too, whatever it does.
        let shared = agree(ours.as_ref(), peer, refused(), |shared| {
            let mut out = Zeroizing::new([0u8; 32]);
            if shared.len() != out.len() {
                return Err(refused());
            }
            out.copy_from_slice(shared);
            Ok(out)
        })?;
        if crate::crypto::ct_eq(shared.as_ref(), &[0u8; 32]) {
            return Err(refused());
        }
        Ok(shared)
    }
}

/// AWS-LC's form of the clamped private key `secret` (which also derives its public key).
fn aws_lc_key(secret: &[u8; 32]) -> Option<aws_lc_rs::agreement::PrivateKey> {
    use aws_lc_rs::agreement::{PrivateKey, X25519};
    PrivateKey::from_private_key(&X25519, secret).ok()
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &hex32(&self.public))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A device's long-term identity key pair.
#[derive(Clone)]
pub struct IdentityKeyPair {
    pair: KeyPair,
    public: IdentityKey,
    /// The XEdDSA signing scalar (sign-bit-0 form), derived once.
    signing: Zeroizing<curve25519_dalek::Scalar>,
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKeyPair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl IdentityKeyPair {
    /// Restores an identity from its 32 private bytes.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let pair = KeyPair::from_secret(secret);
        let (signing, ed) = xeddsa::edwards_keypair(pair.secret_bytes());
        let public = IdentityKey {
            curve: pair.public(),
            ed25519: ed,
        };
        Self {
            pair,
            public,
            signing,
        }
    }

    /// A fresh identity from the caller's RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(*random_32(rng))
    }

    /// The public half.
    pub fn public(&self) -> &IdentityKey {
        &self.public
    }

    /// The X25519 pair, for X3DH.
    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// The private bytes; only for persisting the key (and [`crate::hazmat`]).
    pub(crate) fn secret_bytes(&self) -> &[u8; 32] {
        self.pair.secret_bytes()
    }

    /// An XEdDSA signature over `msg`, valid as Ed25519 under [`IdentityKey::ed25519`].
    pub fn sign<R: CryptoRng + ?Sized>(&self, msg: &[u8], rng: &mut R) -> [u8; 64] {
        let mut z = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(z.as_mut());
        xeddsa::sign_with(&self.signing, &self.public.ed25519, msg, &z)
    }
}

/// A public identity key in both of its forms.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey {
    curve: [u8; 32],
    ed25519: [u8; 32],
}

impl IdentityKey {
    /// From the Ed25519 form (OMEMO:2 wire form). Rejects invalid and small-order points.
    pub fn from_ed25519(bytes: [u8; 32]) -> Result<Self> {
        let point = CompressedEdwardsY(bytes)
            .decompress()
            .ok_or(ProtoError::InvalidPublicKey("Ed25519 identity key"))?;
        if point.is_small_order() {
            return Err(ProtoError::InvalidPublicKey("Ed25519 identity key"));
        }
        Ok(Self {
            curve: point.to_montgomery().to_bytes(),
            ed25519: bytes,
        })
    }

    /// From the Curve25519 form (legacy wire form, without the 0x05 prefix). The Ed25519 form is
    /// the one with sign bit 0, as XEdDSA defines it.
    pub fn from_curve25519(bytes: [u8; 32]) -> Result<Self> {
        if !crate::suite::is_canonical_u(&bytes) {
            return Err(ProtoError::InvalidPublicKey("Curve25519 identity key"));
        }
        let point = MontgomeryPoint(bytes)
            .to_edwards(0)
            .ok_or(ProtoError::InvalidPublicKey("Curve25519 identity key"))?;
        if point.is_small_order() {
            return Err(ProtoError::InvalidPublicKey("Curve25519 identity key"));
        }
        Ok(Self {
            curve: bytes,
            ed25519: point.compress().to_bytes(),
        })
    }

    /// The Curve25519 (X25519) form.
    pub fn curve25519(&self) -> [u8; 32] {
        self.curve
    }

    /// The Ed25519 form.
    pub fn ed25519(&self) -> [u8; 32] {
        self.ed25519
    }

    /// The fingerprint users compare: the Curve25519 form as 8 groups of 8 lowercase hex digits,
    /// which matches what legacy clients show for the same key.
    pub fn fingerprint(&self) -> String {
        let mut out = String::with_capacity(64 + 7);
        for (i, c) in hex32(&self.curve).chars().enumerate() {
            if i > 0 && i % 8 == 0 {
                out.push(' ');
            }
            out.push(c);
        }
        out
    }

    /// True if both keys are the same identity (sign of the Edwards form aside), in constant time.
    pub fn same_identity(&self, other: &IdentityKey) -> bool {
        crate::crypto::ct_eq(&self.curve, &other.curve)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

/// A one-time prekey with its id.
#[derive(Clone, Debug)]
pub struct PreKey {
    /// Id published in the bundle (1..2^31-1).
    pub id: u32,
    /// The key pair.
    pub pair: KeyPair,
}

/// A signed prekey: the key pair, when it was made (unix seconds, handed in by the caller), and
/// the identity key's signature over its public key in each suite's encoding.
#[derive(Clone, Debug)]
pub struct SignedPreKey {
    /// Id published in the bundle (1..2^31-1).
    pub id: u32,
    /// The key pair.
    pub pair: KeyPair,
    /// Creation time, unix seconds, as given by the caller.
    pub created_at: u64,
    /// Signature over the OMEMO:2 encoding (the raw 32 bytes).
    pub signature_omemo2: [u8; 64],
    /// Signature over the legacy encoding (0x05 || 32 bytes).
    pub signature_legacy: [u8; 64],
}

pub(crate) fn hex32(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Checks an OMEMO device or key id: 1..2^31-1.
pub fn check_id(id: u64) -> Result<u32> {
    if (1..=0x7fff_ffff).contains(&id) {
        Ok(id as u32)
    } else {
        Err(ProtoError::BadId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_forms_agree() {
        let id = IdentityKeyPair::from_secret([42; 32]);
        let from_ed = IdentityKey::from_ed25519(id.public().ed25519()).unwrap();
        let from_curve = IdentityKey::from_curve25519(id.public().curve25519()).unwrap();
        assert_eq!(from_ed, *id.public());
        assert_eq!(from_curve, *id.public());
        assert_eq!(
            id.public().ed25519()[31] & 0x80,
            0,
            "our Ed25519 form has sign bit 0"
        );
        let fp = id.public().fingerprint();
        assert_eq!(fp.len(), 8 * 8 + 7);
        assert!(fp.split(' ').all(|g| g.len() == 8));
    }

    #[test]
    fn debug_is_redacted() {
        let pair = KeyPair::from_secret([1; 32]);
        let text = format!("{pair:?}");
        assert!(text.contains("redacted"));
        assert!(!text.contains(&hex32(pair.secret_bytes())));
    }

    #[test]
    fn low_order_keys_are_rejected() {
        assert!(IdentityKey::from_curve25519([0; 32]).is_err());
        let pair = KeyPair::from_secret([3; 32]);
        assert_eq!(
            pair.dh(&[0; 32]),
            Err(ProtoError::InvalidPublicKey("Diffie-Hellman peer key"))
        );
    }

    fn hex(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 §5.2 (the scalar-multiplication vectors, whose input u has its top bit set,
    /// which X25519 ignores) and §6.1 (Alice and Bob), through `dh` and `from_secret`.
    #[test]
    fn x25519_matches_rfc_7748() {
        let cases = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
            ),
        ];
        for (scalar, u, out) in cases {
            let pair = KeyPair::from_secret(hex(scalar));
            assert_eq!(*pair.dh(&hex(u)).unwrap(), hex(out));
        }
        let alice = KeyPair::from_secret(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let bob = KeyPair::from_secret(hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            alice.public(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            bob.public(),
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(*alice.dh(&bob.public()).unwrap(), shared);
        assert_eq!(*bob.dh(&alice.public()).unwrap(), shared);
    }

    proptest::proptest! {
        /// AWS-LC's X25519 and fixed-base multiplication give what curve25519-dalek gives, for
        /// any private key and any 32 bytes as the peer's key (high bit, non-canonical and
        /// low-order values included: refused by both, or equal).
        #[test]
        fn x25519_agrees_with_curve25519_dalek(secret: [u8; 32], peer: [u8; 32]) {
            let pair = KeyPair::from_secret(secret);
            let clamped = clamp_integer(secret);
            proptest::prop_assert_eq!(
                pair.public(),
                MontgomeryPoint::mul_base_clamped(clamped).to_bytes()
            );
            let dalek = MontgomeryPoint(peer).mul_clamped(clamped).to_bytes();
            // The key AWS-LC made with the public key, kept; a stored pair's, made on first
            // use; a copy's; each used twice.
            let stored = KeyPair::from_stored(secret, pair.public());
            let copy = pair.clone();
            // A stored public key that is not the secret's changes nothing in the agreement.
            let mismatched = KeyPair::from_stored(secret, peer);
            for key in [&pair, &pair, &stored, &stored, &copy, &mismatched] {
                match key.dh(&peer) {
                    Ok(shared) => proptest::prop_assert_eq!(*shared, dalek),
                    Err(_) => proptest::prop_assert_eq!(dalek, [0u8; 32]),
                }
            }
        }
    }

    #[test]
    fn ids_are_range_checked() {
        assert!(check_id(0).is_err());
        assert!(check_id(1 << 31).is_err());
        assert_eq!(check_id(0x7fff_ffff).unwrap(), 0x7fff_ffff);
    }
}
