//! What the account engine costs per message on top of the protocol core.
//!
//! * `one message/core_open` and `one message/engine_receive` read the same message from the
//!   same stored state: the protocol core alone (`LocalDevice::open` — Double Ratchet and
//!   payload — and the SCE envelope's checks) against the engine's whole decision
//!   (deduplication, strangers and trust, decryption, the envelope, the transaction). Their
//!   difference is the engine's cost on top of the core. Committing the transaction is the
//!   store's cost, not included.
//! * `per 100 messages/…` run 100 in-order messages each, the engine's with every transaction
//!   committed to an in-memory store and settled: the whole receive path without a network.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hush_engine::Engine;
use hush_store::{SessionKey, Store};
use hush_test_support::simulation::{self, World, ALICE, BOB};
use rand::rngs::StdRng;
use rand::SeedableRng;

const MESSAGES: usize = 100;

fn world() -> (World, Vec<simulation::Envelope>) {
    let mut w = World::new(7);
    w.add_device(ALICE, 11);
    w.add_device(BOB, 21);
    w.send(11, BOB, "hello").unwrap();
    w.drain();
    w.send(21, ALICE, "hello back").unwrap();
    w.drain();
    for n in 0..MESSAGES {
        w.send(
            11,
            BOB,
            &format!("message {n} with a line of ordinary length"),
        )
        .unwrap();
    }
    let inbox = std::mem::take(&mut w.devices.get_mut(&21).unwrap().inbox);
    assert_eq!(inbox.len(), MESSAGES);
    (w, inbox)
}

/// Bob's store after reading the first `n` messages of `inbox` through the engine.
fn store_after(
    bob: &hush_store::MemoryStore,
    inbox: &[simulation::Envelope],
    n: usize,
) -> hush_store::MemoryStore {
    let mut store = bob.clone();
    let device = store.account().unwrap().unwrap().device;
    let mut engine = Engine::new(BOB, device);
    let mut rng = StdRng::seed_from_u64(2);
    for env in &inbox[..n] {
        let shown = simulation::receive_step(
            &mut engine,
            &mut store,
            &Default::default(),
            env.clone(),
            1_700_000_000,
            &mut rng,
        );
        assert!(shown.is_some());
    }
    store
}

/// What the protocol core alone does for one message from Alice: the Double Ratchet and the
/// payload, then the SCE envelope. Returns the advanced session.
fn core_read(
    device: &hush_proto::LocalDevice,
    element: &hush_proto::EncryptedElement,
    session: hush_proto::Session,
    rng: &mut StdRng,
) -> hush_proto::Session {
    let o = device
        .open(element, BOB, ALICE, Some(session), rng)
        .unwrap();
    let expect = hush_proto::sce::Expect {
        from: ALICE,
        to: BOB,
        require_to: false,
    };
    o.envelope(expect).unwrap();
    o.session
}

fn one_message(c: &mut Criterion) {
    let (w, inbox) = world();
    let bob = &w.devices[&21];
    let before = store_after(&bob.store, &inbox, MESSAGES / 2);
    let message = &inbox[MESSAGES / 2];
    let key = SessionKey::new(hush_proto::Suite::Omemo2, ALICE, 11);
    let device = before.account().unwrap().unwrap().device;
    let session = before.session(&key).unwrap().unwrap();
    let mut group = c.benchmark_group("one message");
    group.bench_function("core_open", |b| {
        b.iter_batched(
            || (session.clone(), StdRng::seed_from_u64(1)),
            |(session, mut rng)| core_read(&device, message.element(), session, &mut rng),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("engine_receive", |b| {
        b.iter_batched(
            || {
                let engine = Engine::new(BOB, device.clone());
                (engine, message.clone(), StdRng::seed_from_u64(1))
            },
            |(mut engine, env, mut rng)| {
                let bundles = Default::default();
                let step = simulation::receive_one(
                    &mut engine,
                    &before,
                    &bundles,
                    env,
                    1_700_000_000,
                    &mut rng,
                );
                (step, engine)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let (w, inbox) = world();
    let bob = &w.devices[&21];
    let key = SessionKey::new(hush_proto::Suite::Omemo2, ALICE, 11);
    let device = bob.store.account().unwrap().unwrap().device;
    let session = bob.store.session(&key).unwrap().unwrap();
    let mut group = c.benchmark_group("per 100 messages");
    group.bench_function("core_open", |b| {
        b.iter_batched(
            || (session.clone(), StdRng::seed_from_u64(1)),
            |(mut session, mut rng)| {
                for env in &inbox {
                    session = core_read(&device, env.element(), session, &mut rng);
                }
                session
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("engine_receive", |b| {
        b.iter_batched(
            || {
                let store = bob.store.clone();
                let engine = Engine::new(BOB, device.clone());
                // What the shell hands over, copied outside the measurement (the parser makes
                // it; the core bench gets its elements ready-made too).
                let inbox = inbox.clone();
                (store, engine, inbox, StdRng::seed_from_u64(1))
            },
            |(mut store, mut engine, inbox, mut rng)| {
                let bundles = Default::default();
                for env in inbox {
                    let shown = simulation::receive_step(
                        &mut engine,
                        &mut store,
                        &bundles,
                        env,
                        1_700_000_000,
                        &mut rng,
                    );
                    assert!(shown.is_some());
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, one_message, bench);
criterion_main!(benches);
