//! X3DH key agreement (Signal spec), in each suite's profile.
//!
//! `SK = HKDF-SHA-256(salt = 0^32, ikm = 0xFF^32 ‖ DH1 ‖ DH2 ‖ DH3 ‖ DH4, info = suite info)`,
//! 32 bytes, with DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
//! DH4 = DH(EK_A, OPK_B). OMEMO makes the one-time prekey mandatory, so DH4 is always there.
//! The associated data is `Encode(IK_A) ‖ Encode(IK_B)` with A the initiator.

use zeroize::Zeroizing;

use crate::crypto;
use crate::error::Result;
use crate::keys::KeyPair;
use crate::suite::Suite;

/// Derives the shared secret from the four DH outputs (in spec order).
fn derive(info: &[u8], dhs: [&[u8; 32]; 4]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0xffu8; 32 * 5]);
    for (i, dh) in dhs.iter().enumerate() {
        ikm[32 * (i + 1)..32 * (i + 2)].copy_from_slice(*dh);
    }
    crypto::hkdf_zero_salt::<32>(ikm.as_ref(), info)
}

/// The initiator's side: our identity and ephemeral key against the peer's identity, signed
/// prekey and one-time prekey (all X25519). Verify the bundle's signature first.
pub fn active(
    suite: Suite,
    own_identity: &KeyPair,
    ephemeral: &KeyPair,
    their_identity: &[u8; 32],
    their_spk: &[u8; 32],
    their_opk: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>> {
    let dh1 = own_identity.dh(their_spk)?;
    let dh2 = ephemeral.dh(their_identity)?;
    let dh3 = ephemeral.dh(their_spk)?;
    let dh4 = ephemeral.dh(their_opk)?;
    Ok(derive(suite.params().x3dh_info, [&dh1, &dh2, &dh3, &dh4]))
}

/// The responder's side: our identity, signed prekey and one-time prekey against the
/// initiator's identity and ephemeral key.
pub fn passive(
    suite: Suite,
    own_identity: &KeyPair,
    spk: &KeyPair,
    opk: &KeyPair,
    their_identity: &[u8; 32],
    their_ephemeral: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>> {
    let dh1 = spk.dh(their_identity)?;
    let dh2 = own_identity.dh(their_ephemeral)?;
    let dh3 = spk.dh(their_ephemeral)?;
    let dh4 = opk.dh(their_ephemeral)?;
    Ok(derive(suite.params().x3dh_info, [&dh1, &dh2, &dh3, &dh4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree() {
        let (ika, ek) = (KeyPair::from_secret([1; 32]), KeyPair::from_secret([2; 32]));
        let (ikb, spk, opk) = (
            KeyPair::from_secret([3; 32]),
            KeyPair::from_secret([4; 32]),
            KeyPair::from_secret([5; 32]),
        );
        let a = active(
            Suite::Omemo2,
            &ika,
            &ek,
            &ikb.public(),
            &spk.public(),
            &opk.public(),
        )
        .unwrap();
        let b = passive(Suite::Omemo2, &ikb, &spk, &opk, &ika.public(), &ek.public()).unwrap();
        assert_eq!(*a, *b);
        let other = passive(Suite::Legacy, &ikb, &spk, &opk, &ika.public(), &ek.public()).unwrap();
        assert_ne!(*a, *other, "the info string separates suites");
    }
}
