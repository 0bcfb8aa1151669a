//! No `Debug` output of a type that holds secrets shows one: `LocalDevice` (identity key,
//! signed prekeys, one-time prekeys), every key type, and `Session` (root and chain keys, the
//! ratchet key pair, skipped message keys), in every form a secret could take in the text
//! (hex, or Rust's list of decimal bytes, whole or as its first eight bytes).

use rand::SeedableRng;

use crate::{IdentityKeyPair, KeyPair, LocalDevice, Session, Suite};

/// The ways `secret` could appear in formatted text.
fn forms(secret: &[u8]) -> Vec<String> {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = |bytes: &[u8]| {
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![hex[..16].to_owned(), decimal(secret), decimal(&secret[..8])]
}

fn assert_hidden(debug: &str, secret: &[u8], what: &str) {
    for form in forms(secret) {
        assert!(
            !debug.contains(&form),
            "{what} shows in Debug output as `{form}`:\n{debug}"
        );
    }
}

#[test]
fn key_types_print_no_secret() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let pair = KeyPair::generate(&mut rng);
    let debug = format!("{pair:?} {pair:#?}");
    assert_hidden(&debug, pair.secret_bytes(), "a key pair's secret");
    assert!(debug.contains("redacted"), "{debug}");
    let identity = IdentityKeyPair::from_secret([0x5a; 32]);
    let debug = format!("{identity:?} {identity:#?}");
    assert_hidden(&debug, identity.secret_bytes(), "an identity secret");
    assert!(debug.contains("redacted"), "{debug}");
}

#[test]
fn a_device_prints_no_secret() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let device = LocalDevice::generate(7, 5, 0, &mut rng).unwrap();
    let debug = format!("{device:?} {device:#?}");
    assert_hidden(
        &debug,
        device.identity().secret_bytes(),
        "the identity secret",
    );
    assert_hidden(
        &debug,
        device.signed_prekey().pair.secret_bytes(),
        "the signed prekey's secret",
    );
    for prekey in device.prekeys.values() {
        assert_hidden(
            &debug,
            prekey.pair.secret_bytes(),
            "a one-time prekey's secret",
        );
    }
}

#[test]
fn a_session_prints_no_secret() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let alice = LocalDevice::generate(1, 3, 0, &mut rng).unwrap();
    let bob = LocalDevice::generate(2, 3, 0, &mut rng).unwrap();
    let mut session =
        Session::initiate(alice.identity(), &bob.bundle(Suite::Omemo2), &mut rng).unwrap();
    // A few keys sent, so chain keys have moved on from the root.
    for _ in 0..3 {
        session.encrypt_key(&[9; 48]).unwrap();
    }
    let debug = format!("{session:?} {session:#?}");
    let ratchet = session.current_ratchet();
    assert_hidden(&debug, &ratchet.root[..], "the root key");
    assert_hidden(
        &debug,
        ratchet.dhs.secret_bytes(),
        "the ratchet key pair's secret",
    );
    if let Some(cks) = &ratchet.cks {
        assert_hidden(&debug, &cks[..], "the sending chain key");
    }
    if let Some(ckr) = &ratchet.ckr {
        assert_hidden(&debug, &ckr[..], "the receiving chain key");
    }
    for skipped in &ratchet.skipped {
        assert_hidden(&debug, &skipped.mk, "a skipped message key");
    }
}
