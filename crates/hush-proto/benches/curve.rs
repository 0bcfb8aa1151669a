//! The curve primitives side by side, in one run: X25519 (variable base, as every
//! Diffie-Hellman of X3DH and the ratchet does) and the public key of a private one (fixed
//! base, as key generation does), and Ed25519 signature verification, with each maintained
//! implementation this workspace can use: curve25519-dalek (its serial Montgomery ladder, its
//! precomputed Edwards table, the backend it picks at run time for the rest), ring
//! (BoringSSL's code) and aws-lc-rs (AWS-LC's assembly). It also prices what batch
//! verification of bundle signatures would cost per signature. `hush_proto`'s own
//! operations are measured in `benches/proto.rs`; `scripts/bench-vs-python` adds OpenSSL's
//! figures from the same machine.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::hint::black_box;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::signature::{self as lc_signature, KeyPair as _};
use criterion::{criterion_group, criterion_main, Criterion};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;

fn x25519(c: &mut Criterion) {
    let (ours, theirs) = ([0x41u8; 32], [0x17u8; 32]);
    let their_public = MontgomeryPoint::mul_base_clamped(theirs).to_bytes();
    let mut group = c.benchmark_group("x25519");
    group.bench_function("curve25519-dalek (Montgomery ladder)", |b| {
        b.iter(|| MontgomeryPoint(black_box(their_public)).mul_clamped(black_box(ours)))
    });
    // One agreement with AWS-LC's key.
    let agree = |key: &PrivateKey| {
        agreement::agree(
            key,
            UnparsedPublicKey::new(&X25519, black_box(&their_public)),
            (),
            |shared| {
                let mut out = [0u8; 32];
                out.copy_from_slice(shared);
                Ok(out)
            },
        )
        .unwrap()
    };
    group.bench_function("aws-lc-rs (key from bytes, then agree)", |b| {
        b.iter(|| agree(&PrivateKey::from_private_key(&X25519, black_box(&ours)).unwrap()))
    });
    // AWS-LC derives the public key of every private key it is given (a fixed-base
    // multiplication): a key made once and kept for several agreements pays it once.
    let kept = PrivateKey::from_private_key(&X25519, &ours).unwrap();
    group.bench_function("aws-lc-rs (key kept, agree)", |b| b.iter(|| agree(&kept)));
    // Both agree on the shared secret (the bench would mean nothing otherwise).
    let dalek = MontgomeryPoint(their_public).mul_clamped(ours).to_bytes();
    assert_eq!(agree(&kept), dalek);
    group.finish();

    // ring takes no private key from bytes, only ephemeral ones it draws: both libraries
    // measured that way (a fixed-base and a variable-base multiplication, and the draw).
    let mut group = c.benchmark_group("x25519 ephemeral key, public key and agreement");
    group.bench_function("ring", |b| {
        let rng = ring::rand::SystemRandom::new();
        b.iter(|| {
            let key =
                ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::X25519, &rng)
                    .unwrap();
            black_box(key.compute_public_key().unwrap());
            ring::agreement::agree_ephemeral(
                key,
                &ring::agreement::UnparsedPublicKey::new(
                    &ring::agreement::X25519,
                    black_box(&their_public),
                ),
                |shared| shared.len(),
            )
            .unwrap()
        })
    });
    group.bench_function("aws-lc-rs", |b| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        b.iter(|| {
            let key = agreement::EphemeralPrivateKey::generate(&X25519, &rng).unwrap();
            black_box(key.compute_public_key().unwrap());
            agreement::agree_ephemeral(
                key,
                UnparsedPublicKey::new(&X25519, black_box(&their_public)),
                (),
                |shared| Ok(shared.len()),
            )
            .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("x25519 public key (fixed base)");
    group.bench_function("curve25519-dalek (precomputed Edwards table)", |b| {
        b.iter(|| MontgomeryPoint::mul_base_clamped(black_box(ours)))
    });
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            PrivateKey::from_private_key(&X25519, black_box(&ours))
                .unwrap()
                .compute_public_key()
                .unwrap()
        })
    });
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    let pkcs8 = lc_signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
        .unwrap();
    let pair = lc_signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let msg = [5u8; 33];
    let sig = pair.sign(&msg);
    let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
    let mut group = c.benchmark_group("ed25519 verify");
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            lc_signature::UnparsedPublicKey::new(&lc_signature::ED25519, black_box(&public))
                .verify(&msg, sig.as_ref())
                .unwrap()
        })
    });
    group.bench_function("ring", |b| {
        b.iter(|| {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, black_box(&public))
                .verify(&msg, sig.as_ref())
                .unwrap()
        })
    });
    let sig: [u8; 64] = sig.as_ref().try_into().unwrap();
    assert!(hush_proto::hazmat::verify_ed25519(&public, &msg, &sig));
    group.bench_function("hush-proto (curve25519-dalek)", |b| {
        b.iter(|| {
            assert!(hush_proto::hazmat::verify_ed25519(
                black_box(&public),
                &msg,
                &sig
            ))
        })
    });
    group.bench_function("decompressing the key alone (curve25519-dalek)", |b| {
        b.iter(|| CompressedEdwardsY(black_box(public)).decompress().unwrap())
    });
    group.finish();

    // What batch verification of n bundle signatures would cost at least: its equation is one
    // multiscalar multiplication over 2n + 1 points (each R, each key, the base point), here
    // with the points already decompressed and the scalars already hashed.
    let mut group = c.benchmark_group("ed25519 batch equation, per signature");
    for n in [10usize, 100] {
        let points: Vec<EdwardsPoint> = (0..2 * n + 1)
            .map(|i| EdwardsPoint::mul_base(&Scalar::from(i as u64 + 7)))
            .collect();
        let scalars: Vec<Scalar> = (0..2 * n + 1)
            .map(|i| Scalar::from_bytes_mod_order_wide(&[i as u8 ^ 0x5a; 64]))
            .collect();
        group.throughput(criterion::Throughput::Elements(n as u64));
        group.bench_function(format!("{n} signatures (curve25519-dalek)"), |b| {
            b.iter(|| {
                EdwardsPoint::vartime_multiscalar_mul(black_box(&scalars), black_box(&points))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, x25519, ed25519);
criterion_main!(benches);
