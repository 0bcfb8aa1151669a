//! One room message to 50 members with 3 devices each (issue #15): what the engine costs to
//! encrypt it, before anything reaches the network.
//!
//! The sender is one of three devices of its account; the room has 50 other members, each with
//! three `omemo:2` devices. A message is encrypted for 152 devices: the members' 150 and our
//! own two others.
//!
//! * `room message, 152 devices/sessions established`: [`Engine::prepare_room_send`] when every
//!   session exists and was confirmed by an answer (the steady state of a room): 152 key
//!   wraps, one payload encryption, the SCE envelope, the stanza and the transaction.
//! * `…/plan and prepare, sessions established`: the same with [`Engine::plan_room_send`]
//!   before it (which devices, which are inactive, which have no session: store look-ups):
//!   the engine's whole share of a room send once the device lists are fetched.
//! * `…/first message, no sessions`: the first message to the room, when no session exists
//!   yet: 152 bundles checked and 152 X3DH key agreements on top of the above.
//!
//! `prepare_room_send` only reads the store and hands out a transaction, so every iteration
//! starts from the same stored state; the plan and the bundles it consumes are cloned outside
//! the measurement. Committing the transaction is the store's cost, not included.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use hush_engine::{
    Announced, Engine, Fetched, Inbound, InboundPayload, MessageStanza, RoomPlan, SendOptions, Wire,
};
use hush_proto::{EncryptedElement, LocalDevice, Suite};
use hush_store::{
    Affiliation, Member, MemoryStore, MessageIds, Room, RoomConfig, SessionKey, Store,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const ROOM: &str = "team@conference.example.org";
const ALICE: &str = "alice@example.org";
/// Members besides us.
const MEMBERS: u32 = 50;
/// Devices per member, ours included.
const DEVICES: u32 = 3;
/// The device that sends.
const SENDER: u32 = 1;
const NOW: u64 = 1_800_000_000;
const TEXT: &str = "Are we still meeting at ten tomorrow? I booked the small room upstairs.";

/// One device: its account, engine, store and keys.
struct Device {
    jid: String,
    engine: Engine,
    store: MemoryStore,
    local: LocalDevice,
}

/// Alice's three devices (1, 2, 3) and every member's (`100 + 3 × member + n`), all joined.
struct World {
    devices: Vec<Device>,
    rng: StdRng,
}

impl World {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(15);
        let mut accounts: Vec<(String, u32)> =
            (0..DEVICES).map(|n| (ALICE.into(), 1 + n)).collect();
        for m in 0..MEMBERS {
            for n in 0..DEVICES {
                accounts.push((format!("member{m}@example.net"), 100 + DEVICES * m + n));
            }
        }
        let mut members: Vec<Member> = accounts
            .iter()
            .map(|(jid, _)| jid.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|jid| Member {
                affiliation: if jid == ALICE {
                    Affiliation::Owner
                } else {
                    Affiliation::Member
                },
                jid,
            })
            .collect();
        members.sort_by(|a, b| a.jid.cmp(&b.jid));
        let devices = accounts
            .into_iter()
            .map(|(jid, id)| {
                let local = LocalDevice::generate(id, 5, NOW, &mut rng).unwrap();
                let mut store = MemoryStore::new();
                store.create_account(&jid, &local).unwrap();
                let mut room = Room {
                    jid: ROOM.into(),
                    nick: jid.split('@').next().unwrap().into(),
                    config: RoomConfig {
                        members_only: true,
                        non_anonymous: true,
                    },
                    members: Vec::new(),
                    members_known: true,
                    joined_at: NOW,
                    members_told: None,
                };
                room.set_members(members.clone());
                store.save_room(&room).unwrap();
                Device {
                    engine: Engine::new(&jid, local.clone()),
                    jid,
                    store,
                    local,
                }
            })
            .collect();
        Self { devices, rng }
    }

    fn device(&self, id: u32) -> &Device {
        self.devices
            .iter()
            .find(|d| d.local.device_id() == id)
            .unwrap()
    }

    fn index(&self, id: u32) -> usize {
        self.devices
            .iter()
            .position(|d| d.local.device_id() == id)
            .unwrap()
    }

    /// The `omemo:2` device list `jid` publishes.
    fn list(&self, jid: &str) -> Announced {
        let ids = self
            .devices
            .iter()
            .filter(|d| d.jid == jid)
            .map(|d| d.local.device_id())
            .collect();
        Some((Suite::Omemo2, ids))
    }

    /// Steps 1 and 2 of a room send from `from`: the plan, from the device lists as fetched.
    fn plan(&self, from: u32) -> RoomPlan {
        self.plan_on(from, &self.device(from).store)
    }

    /// [`Self::plan`] on another state `store` of the sender.
    fn plan_on(&self, from: u32, store: &MemoryStore) -> RoomPlan {
        let sender = self.device(from);
        let (_, members) = sender
            .engine
            .room_readers(store, ROOM, SendOptions::default())
            .unwrap();
        let lists = members.iter().map(|j| (j.clone(), self.list(j))).collect();
        sender
            .engine
            .plan_room_send(store, ROOM, lists, self.list(&sender.jid), NOW)
            .unwrap()
    }

    /// The bundles `plan` asks for, as the shell fetches them.
    fn bundles(&self, plan: &RoomPlan) -> Vec<((String, u32), Fetched)> {
        plan.bundles_needed
            .iter()
            .map(|(suite, jid, id)| {
                (
                    (jid.clone(), *id),
                    Ok(self.device(*id).local.bundle(*suite)),
                )
            })
            .collect()
    }

    /// A whole room send from `from`, committed and marked sent; the stanza.
    fn send(&mut self, from: u32, text: &str) -> MessageStanza {
        let plan = self.plan(from);
        let bundles = self.bundles(&plan);
        let i = self.index(from);
        let sender = &mut self.devices[i];
        let prepared = sender
            .engine
            .prepare_room_send(&sender.store, plan, text, bundles, NOW, &mut self.rng)
            .unwrap();
        let committed = sender.store.commit(prepared.transaction).unwrap();
        sender.store.mark_sent(committed.outgoing.unwrap()).unwrap();
        prepared.stanza
    }

    /// Device `to` reads `element` from `sender` in conversation `peer` (`nick`: in a room).
    fn receive(
        &mut self,
        to: u32,
        sender: &str,
        peer: &str,
        nick: Option<&str>,
        element: EncryptedElement,
        origin_id: &str,
    ) {
        let mut inbound = Inbound {
            sender: sender.into(),
            peer: peer.into(),
            nick: nick.map(Into::into),
            payload: InboundPayload::Omemo(Ok(element)),
            ids: MessageIds {
                origin_id: Some(origin_id.to_owned()),
                ..MessageIds::default()
            },
            sent_at: None,
            sender_bundle: None,
            control: false,
        };
        let d = self.device(to);
        if let Some(r) = d.engine.bundle_needed(&d.store, &inbound, NOW).unwrap() {
            inbound.sender_bundle = Some(Ok(self.device(r.device).local.bundle(r.suite)));
        }
        let i = self.index(to);
        let d = &mut self.devices[i];
        let (tx, after) = d
            .engine
            .receive(&d.store, inbound, NOW, &mut self.rng)
            .unwrap()
            .into_parts();
        let committed = d.store.commit(tx).unwrap();
        d.engine.settle(after, &committed);
    }

    /// Every device but the sender reads the room message `stanza` from `SENDER` and answers
    /// its key exchange with the empty message it owes, which the sender reads: every session
    /// of the sender is then confirmed.
    fn confirm_all(&mut self, stanza: &MessageStanza) {
        let Wire::PerSuite(elements) = stanza.content() else {
            panic!("not a room message: {stanza:?}")
        };
        let element = elements[0].clone();
        let readers: Vec<u32> = self
            .devices
            .iter()
            .map(|d| d.local.device_id())
            .filter(|id| *id != SENDER)
            .collect();
        for id in readers {
            self.receive(
                id,
                ALICE,
                ROOM,
                Some("alice"),
                element.clone(),
                stanza.origin_id(),
            );
            let i = self.index(id);
            let d = &mut self.devices[i];
            let owed = d
                .engine
                .next_owed()
                .cloned()
                .expect("a key exchange is answered");
            assert_eq!((owed.jid.as_str(), owed.device), (ALICE, SENDER));
            let (tx, answer) = d
                .engine
                .prepare_empty(&d.store, &owed, &mut self.rng)
                .unwrap()
                .unwrap();
            d.store.commit(tx).unwrap();
            d.engine.answered(&owed);
            let jid = d.jid.clone();
            let Wire::Encrypted(empty) = answer.content().clone() else {
                panic!("not an empty message: {answer:?}")
            };
            self.receive(SENDER, &jid, &jid, None, empty, answer.origin_id());
        }
    }
}

/// The world with every session of the sender confirmed and one more message sent on them,
/// and a copy of the sender's store from before its first message.
fn rooms() -> (World, MemoryStore) {
    let mut w = World::new();
    let fresh = w.device(SENDER).store.clone();
    let first = w.send(SENDER, "hello room");
    w.confirm_all(&first);
    let sender = w.device(SENDER);
    for d in &w.devices {
        if d.local.device_id() != SENDER {
            let key = SessionKey::new(Suite::Omemo2, &d.jid, d.local.device_id());
            let session = sender.store.session(&key).unwrap().unwrap();
            assert!(session.is_confirmed(), "{key:?}");
        }
    }
    w.send(SENDER, "second message");
    (w, fresh)
}

fn bench(c: &mut Criterion) {
    let (w, fresh) = rooms();
    let sender = w.device(SENDER);
    let plan = w.plan(SENDER);
    assert!(plan.bundles_needed.is_empty());
    assert_eq!(plan.targets().len() as u32, MEMBERS * DEVICES + DEVICES - 1);
    let mut group = c.benchmark_group("room message, 152 devices");
    group.bench_function("sessions established", |b| {
        b.iter_batched(
            || (plan.clone(), StdRng::seed_from_u64(1)),
            |(plan, mut rng)| {
                sender
                    .engine
                    .prepare_room_send(&sender.store, plan, TEXT, Vec::new(), NOW, &mut rng)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("plan and prepare, sessions established", |b| {
        b.iter_batched(
            || StdRng::seed_from_u64(1),
            |mut rng| {
                let plan = w.plan(SENDER);
                sender
                    .engine
                    .prepare_room_send(&sender.store, plan, TEXT, Vec::new(), NOW, &mut rng)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    // The first message: the same sender before any session, and the bundles it fetched.
    let first = w.plan_on(SENDER, &fresh);
    assert_eq!(first.bundles_needed.len(), first.targets().len());
    let bundles = w.bundles(&first);
    // Tens of milliseconds an iteration: the same number of iterations in every sample, and
    // fewer samples, so that a short measurement holds them.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.bench_function("first message, no sessions", |b| {
        b.iter_batched(
            || (first.clone(), bundles.clone(), StdRng::seed_from_u64(1)),
            |(plan, bundles, mut rng)| {
                sender
                    .engine
                    .prepare_room_send(&fresh, plan, TEXT, bundles, NOW, &mut rng)
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
