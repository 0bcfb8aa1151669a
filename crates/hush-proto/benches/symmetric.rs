//! The symmetric primitives of every OMEMO message side by side, in one run, with each
//! maintained implementation this workspace can use: the RustCrypto crates (`sha2`, `hmac`,
//! `hkdf`, `aes`, `cbc`) and aws-lc-rs (AWS-LC's assembly). One OMEMO:2 message costs each side
//! two HKDFs of 80 bytes, three or four HMACs over short inputs and two AES-256-CBC operations
//! over a few blocks, so the short-input rows are the ones that count. `hush_proto`'s own
//! operations are measured in `benches/proto.rs`.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::hint::black_box;

use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_256,
};
use aws_lc_rs::iv::FixedLength as Iv128;
use aws_lc_rs::{digest, hkdf as lc_hkdf, hmac as lc_hmac};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Output length of an OMEMO message-key HKDF, as aws-lc-rs wants it spelled.
struct Len80;

impl lc_hkdf::KeyType for Len80 {
    fn len(&self) -> usize {
        80
    }
}

fn sha256_blocks(c: &mut Criterion) {
    // Bulk hashing: what one compression of a 64-byte block costs without call overhead.
    let data = vec![0x5au8; 64 * 1024];
    let mut group = c.benchmark_group("sha-256 of 64 KiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("sha2", |b| b.iter(|| Sha256::digest(black_box(&data))));
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| digest::digest(&digest::SHA256, black_box(&data)))
    });
    assert_eq!(
        Sha256::digest(&data).as_slice(),
        digest::digest(&digest::SHA256, &data).as_ref()
    );
    group.finish();
}

fn hmac_short(c: &mut Criterion) {
    // A chain-key step: HMAC over one byte with a fresh 32-byte key.
    let key = [0x11u8; 32];
    let mut group = c.benchmark_group("hmac-sha-256, fresh key, 1 byte");
    group.bench_function("hmac + sha2", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(black_box(&key)).unwrap();
            mac.update(&[1]);
            mac.finalize().into_bytes()
        })
    });
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            let key = lc_hmac::Key::new(lc_hmac::HMAC_SHA256, black_box(&key));
            lc_hmac::sign(&key, &[1])
        })
    });
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(&[1]);
    assert_eq!(
        mac.finalize().into_bytes().as_slice(),
        lc_hmac::sign(&lc_hmac::Key::new(lc_hmac::HMAC_SHA256, &key), &[1]).as_ref()
    );
    group.finish();
}

fn hkdf_80(c: &mut Criterion) {
    let (salt, ikm, info) = ([0u8; 32], [0x22u8; 32], b"OMEMO Message Key Material");
    let mut group = c.benchmark_group("hkdf-sha-256, 80 bytes");
    group.bench_function("hkdf + sha2", |b| {
        b.iter(|| {
            let mut out = [0u8; 80];
            hkdf::Hkdf::<Sha256>::new(Some(&salt), black_box(&ikm))
                .expand(info, &mut out)
                .unwrap();
            out
        })
    });
    let lc = |ikm: &[u8]| {
        let mut out = [0u8; 80];
        lc_hkdf::Salt::new(lc_hkdf::HKDF_SHA256, &salt)
            .extract(ikm)
            .expand(&[info], Len80)
            .unwrap()
            .fill(&mut out)
            .unwrap();
        out
    };
    group.bench_function("aws-lc-rs", |b| b.iter(|| lc(black_box(&ikm))));
    let mut rc = [0u8; 80];
    hkdf::Hkdf::<Sha256>::new(Some(&salt), &ikm)
        .expand(info, &mut rc)
        .unwrap();
    assert_eq!(rc, lc(&ikm));
    group.finish();
}

fn aes_cbc(c: &mut Criterion) {
    let (key, iv, plaintext) = ([0x33u8; 32], [0x44u8; 16], [0x42u8; 100]);
    let mut group = c.benchmark_group("aes-256-cbc, 100 bytes, key set up each time");
    group.bench_function("aes + cbc: encrypt", |b| {
        b.iter(|| {
            cbc::Encryptor::<aes::Aes256>::new(black_box(&key).into(), (&iv).into())
                .encrypt_padded_vec::<Pkcs7>(black_box(&plaintext))
        })
    });
    let lc_encrypt = |plaintext: &[u8]| {
        let key =
            PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).unwrap())
                .unwrap();
        let mut buf = plaintext.to_vec();
        key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(Iv128::from(iv)))
            .unwrap();
        buf
    };
    group.bench_function("aws-lc-rs: encrypt", |b| {
        b.iter(|| lc_encrypt(black_box(&plaintext)))
    });
    let ciphertext = lc_encrypt(&plaintext);
    assert_eq!(
        ciphertext,
        cbc::Encryptor::<aes::Aes256>::new((&key).into(), (&iv).into())
            .encrypt_padded_vec::<Pkcs7>(&plaintext)
    );
    group.bench_function("aes + cbc: decrypt", |b| {
        b.iter(|| {
            cbc::Decryptor::<aes::Aes256>::new(black_box(&key).into(), (&iv).into())
                .decrypt_padded_vec::<Pkcs7>(black_box(&ciphertext))
                .unwrap()
        })
    });
    group.bench_function("aws-lc-rs: decrypt", |b| {
        b.iter(|| {
            let key =
                PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).unwrap())
                    .unwrap();
            let mut buf = black_box(&ciphertext).clone();
            let n = key
                .decrypt(&mut buf, DecryptionContext::Iv128(Iv128::from(iv)))
                .unwrap()
                .len();
            buf.truncate(n);
            buf
        })
    });
    group.finish();
}

criterion_group!(benches, sha256_blocks, hmac_short, hkdf_80, aes_cbc);
criterion_main!(benches);
