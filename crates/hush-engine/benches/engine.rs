//! What the account engine costs per message on top of the protocol core.
//!
//! Both benches read the same 100 in-order messages from Alice on Bob's confirmed session:
//! `core_open` runs only the protocol core — `LocalDevice::open` (Double Ratchet, payload)
//! and `sce::open` (the envelope) — and keeps the advanced session; `engine_receive` runs the
//! whole receive step — deduplication, the stranger and trust rules, decryption, the SCE
//! envelope, the transaction, its commit to an in-memory store, and `settle`. The difference
//! is the engine's share; a file store adds its own (see hush-store's benches).

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use hush_engine::{Engine, Inbound, InboundPayload};
use hush_store::{Committed, SessionKey, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;
use support::{World, ALICE, BOB};

const MESSAGES: usize = 100;

fn world() -> (World, Vec<support::Envelope>) {
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
                    let o = device
                        .open(&env.element, BOB, ALICE, Some(session), &mut rng)
                        .unwrap();
                    let expect = hush_proto::sce::Expect {
                        from: ALICE,
                        to: BOB,
                        require_to: false,
                    };
                    hush_proto::sce::open(o.payload.as_deref().unwrap(), expect).unwrap();
                    session = o.session;
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
                // What the shell hands over, built outside the measurement (the parser makes
                // it; the core bench gets its elements ready-made too).
                let inbound: Vec<Inbound> = inbox
                    .iter()
                    .map(|env| Inbound {
                        sender: env.sender.clone(),
                        peer: env.peer.clone(),
                        payload: InboundPayload::Omemo(Ok(env.element.clone())),
                        ids: env.ids.clone(),
                        sent_at: None,
                    })
                    .collect();
                (store, engine, inbound, StdRng::seed_from_u64(1))
            },
            |(mut store, mut engine, inbound, mut rng)| {
                for inbound in inbound {
                    let (tx, after) = engine
                        .receive(&store, inbound, 1_700_000_000, &mut rng)
                        .unwrap()
                        .into_parts();
                    let committed = if tx.is_empty() {
                        Committed::default()
                    } else {
                        store.commit(tx).unwrap()
                    };
                    assert!(engine.settle(after, &committed).is_some());
                }
                store
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
