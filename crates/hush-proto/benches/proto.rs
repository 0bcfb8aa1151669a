//! Criterion benches of the protocol core: XEdDSA, X3DH, established-session messages,
//! multi-device fan-out, in both suites where they differ, and what one message costs against
//! the largest session record a peer can make us keep.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hush_proto::hazmat;
use hush_proto::{IdentityKeyPair, Suite};

use hush_test_support::fixtures::{self, Established, FullRecord, KeyExchange, ALICE, BOB};

fn signatures(c: &mut Criterion) {
    let id = IdentityKeyPair::from_secret([7; 32]);
    let msg = [5u8; 33];
    let z = [9u8; 64];
    let sig = hazmat::xeddsa_sign(hazmat::identity_secret(&id), &msg, &z);
    let curve = id.public().curve25519();
    c.bench_function("xeddsa/sign", |b| {
        b.iter(|| hazmat::xeddsa_sign(black_box(hazmat::identity_secret(&id)), &msg, &z))
    });
    c.bench_function("xeddsa/verify", |b| {
        b.iter(|| assert!(hazmat::verify_with_curve_key(&curve, black_box(&msg), &sig)))
    });
}

fn x3dh(c: &mut Criterion) {
    for suite in Suite::ALL {
        let mut kx = KeyExchange::new(suite);
        c.bench_function(
            &format!("x3dh/{suite}/agreement active (verify bundle, ephemeral key, 4 DH, HKDF)"),
            |b| b.iter(|| kx.agree_active()),
        );
        c.bench_function(
            &format!("x3dh/{suite}/agreement passive (4 DH, HKDF)"),
            |b| b.iter(|| kx.agree_passive()),
        );
    }
    for suite in Suite::ALL {
        let mut kx = KeyExchange::new(suite);
        c.bench_function(
            &format!("x3dh/{suite}/active (verify bundle, X3DH, first message)"),
            |b| b.iter(|| kx.initiate()),
        );
        let first = kx.initiate();
        c.bench_function(
            &format!("x3dh/{suite}/passive (receive key exchange)"),
            |b| b.iter(|| kx.accept(black_box(&first))),
        );
    }
}

fn messages(c: &mut Criterion) {
    for suite in Suite::ALL {
        let mut est = Established::new(suite, 1);
        let payload = [0x42u8; 100];
        c.bench_function(&format!("message/{suite}/encrypt+decrypt 100 B"), |b| {
            b.iter(|| est.round_trip(black_box(&payload)))
        });
    }
    let mut group = c.benchmark_group("fanout/omemo:2");
    for n in [1usize, 10, 100] {
        let mut est = Established::new(Suite::Omemo2, n);
        group.bench_function(format!("encrypt for {n} devices"), |b| {
            b.iter(|| est.seal_all(black_box(&[0x42u8; 100])))
        });
    }
    group.finish();
}

/// The SCE envelope of a short message: the full check the account layer runs, and the stamp
/// alone, which `open` reads for every OMEMO:2 message (so each envelope is parsed twice).
fn envelopes(c: &mut Criterion) {
    let mut rng = fixtures::rng(3);
    let body = hush_proto::sce::body(
        "a message of about a hundred characters, as people write them, give or take a few",
    );
    let env = hush_proto::sce::seal(&[body], ALICE, BOB, Some(1_795_435_200), &mut rng).unwrap();
    let expect = hush_proto::sce::Expect {
        from: ALICE,
        to: BOB,
        require_to: true,
    };
    c.bench_function("sce/open (parse and check)", |b| {
        b.iter(|| hush_proto::sce::open(black_box(&env), expect).unwrap())
    });
    c.bench_function("sce/stamp (parse, read the time)", |b| {
        b.iter(|| hush_proto::sce::stamp(black_box(&env)).unwrap())
    });
}

/// A peer that starts over again and again fills our record with earlier states, each holding
/// skipped message keys; every message from that peer reads the whole record, and one that no
/// state can read (forged, or garbage) is tried on the earlier states too.
fn full_record(c: &mut Criterion) {
    let suite = Suite::Omemo2;
    // 41 starts: the current state and as many earlier ones as are kept; each start skips as
    // many keys as one message may.
    let mut full = FullRecord::new(
        suite,
        hush_proto::MAX_PREVIOUS_STATES + 1,
        hush_proto::MAX_SKIP_PER_MESSAGE,
    );
    let record = hush_proto::Session::from_bytes(&full.record).unwrap();
    eprintln!(
        "full record: {} bytes, {} earlier states",
        full.record.len(),
        record.previous_states()
    );
    let mut group = c.benchmark_group(format!("record/{suite}"));
    // Each forged message takes tens of milliseconds: fewer samples keep the run short.
    group.sample_size(20);
    group.bench_function("read a full record", |b| {
        b.iter(|| hush_proto::Session::from_bytes(black_box(&full.record)).unwrap())
    });
    group.bench_function(
        "genuine message against a full record (read, open, write)",
        |b| b.iter(|| full.open_genuine()),
    );
    group.bench_function("forged message against a full record (read, open)", |b| {
        b.iter(|| assert!(full.open_forged()))
    });
    group.finish();
}

criterion_group!(benches, signatures, x3dh, messages, envelopes, full_record);
criterion_main!(benches);
