//! Room messages (XEP-0384 §5.8) through the engine alone: who gets keys, a mixed room of
//! `omemo:2` and legacy members, membership changes, rooms that must not get encrypted
//! messages, and what a room service could do to a message on its way (relabel its sender,
//! replay it, reflect ours back).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::collections::BTreeMap;

use hush_engine::{
    Delivery, Engine, EngineError, Inbound, InboundPayload, Refusal, RoomRefusal, SendOptions, Wire,
};
use hush_proto::{EncryptedElement, LocalDevice, Suite};
use hush_store::{Affiliation, Member, MemoryStore, MessageIds, Room, RoomConfig, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;

const ROOM: &str = "team@muc.example";
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.net";
const DAVE: &str = "dave@example.com";
const NOW: u64 = 1_800_000_000;

/// One device: its account, engine and store, and the suites it publishes.
struct Device {
    jid: &'static str,
    engine: Engine,
    store: MemoryStore,
    local: LocalDevice,
    /// The suites it publishes device lists and bundles in.
    suites: &'static [Suite],
    /// The suites it writes in: a Hush device writes both, whatever the world sees it
    /// publish; a client of one suite only writes that one.
    speaks: &'static [Suite],
}

/// Devices by id, and the room's member list as the room service gives it.
struct World {
    devices: BTreeMap<u32, Device>,
    members: Vec<Member>,
    rng: StdRng,
    /// Device lists the server hides: `(account, suite)`.
    hidden: Vec<(&'static str, Suite)>,
}

impl World {
    fn new() -> Self {
        Self {
            devices: BTreeMap::new(),
            members: Vec::new(),
            rng: StdRng::seed_from_u64(15),
            hidden: Vec::new(),
        }
    }

    fn add(&mut self, jid: &'static str, id: u32, suites: &'static [Suite]) {
        self.add_speaking(jid, id, suites, &Suite::ALL);
    }

    /// A device publishing `suites` that writes only in `speaks`.
    fn add_speaking(
        &mut self,
        jid: &'static str,
        id: u32,
        suites: &'static [Suite],
        speaks: &'static [Suite],
    ) {
        let local = LocalDevice::generate(id, 5, NOW, &mut self.rng).unwrap();
        let mut store = MemoryStore::new();
        store.create_account(jid, &local).unwrap();
        let engine = Engine::new(jid, local.clone());
        self.devices.insert(
            id,
            Device {
                jid,
                engine,
                store,
                local,
                suites,
                speaks,
            },
        );
    }

    fn member(&mut self, jid: &str, affiliation: Affiliation) {
        self.members.retain(|m| m.jid != jid);
        self.members.push(Member {
            jid: jid.into(),
            affiliation,
        });
    }

    fn unaffiliate(&mut self, jid: &str) {
        self.members.retain(|m| m.jid != jid);
    }

    /// Every device of a member joined, with the current member list, as Hush records it.
    fn join_all(&mut self) {
        let members = self.members.clone();
        for d in self.devices.values_mut() {
            if !members.iter().any(|m| m.jid == d.jid) {
                continue;
            }
            let mut room = d.store.room(ROOM).unwrap().unwrap_or(Room {
                jid: ROOM.into(),
                nick: d.jid.split('@').next().unwrap().into(),
                config: RoomConfig {
                    members_only: true,
                    non_anonymous: true,
                },
                members: Vec::new(),
                members_known: true,
                joined_at: NOW,
                members_told: None,
            });
            room.set_members(members.clone());
            d.store.save_room(&room).unwrap();
        }
    }

    /// The device list `jid` publishes: the first suite its devices announce, as the shell
    /// fetches it.
    fn list(&self, jid: &str) -> Option<(Suite, Vec<u32>)> {
        self.list_in(&Suite::ALL, jid)
    }

    /// [`Self::list`] as a client that speaks only `suites` reads it (a legacy-only client
    /// never writes `omemo:2`), without the lists the server hides.
    fn list_in(&self, suites: &[Suite], jid: &str) -> Option<(Suite, Vec<u32>)> {
        for suite in Suite::ALL {
            if !suites.contains(&suite) || self.hidden.iter().any(|(j, s)| *j == jid && *s == suite)
            {
                continue;
            }
            let ids: Vec<u32> = self
                .devices
                .iter()
                .filter(|(_, d)| d.jid == jid && d.suites.contains(&suite))
                .map(|(id, _)| *id)
                .collect();
            if !ids.is_empty() {
                return Some((suite, ids));
            }
        }
        None
    }

    /// Device `from` sends `text` to the room; the stanza, or the engine's refusal.
    fn send(
        &mut self,
        from: u32,
        text: &str,
    ) -> Result<(hush_engine::MessageStanza, hush_engine::SendReport), EngineError> {
        let sender = &self.devices[&from];
        let (_, members) =
            sender
                .engine
                .room_readers(&sender.store, ROOM, SendOptions::default())?;
        let lists = members
            .iter()
            .map(|j| (j.clone(), self.list_in(sender.speaks, j)))
            .collect();
        let own = self.list_in(sender.speaks, sender.jid);
        let plan = sender
            .engine
            .plan_room_send(&sender.store, ROOM, lists, own, NOW)?;
        let bundles = plan
            .bundles_needed
            .iter()
            .map(|(suite, j, d)| ((j.clone(), *d), Ok(self.devices[d].local.bundle(*suite))))
            .collect();
        let sender = self.devices.get_mut(&from).unwrap();
        let prepared = sender.engine.prepare_room_send(
            &sender.store,
            plan,
            text,
            bundles,
            NOW,
            &mut self.rng,
        )?;
        let committed = sender.store.commit(prepared.transaction).unwrap();
        sender.store.mark_sent(committed.outgoing.unwrap()).unwrap();
        Ok((prepared.stanza, prepared.report))
    }

    /// Device `to` reads a room message as the room delivers it: from `nick`, whose real JID
    /// the room says is `sender`; the element is the one with a key for `to` (else the first).
    fn deliver(
        &mut self,
        to: u32,
        stanza: &hush_engine::MessageStanza,
        sender: &str,
        nick: &str,
    ) -> Option<Delivery> {
        let ids = MessageIds {
            origin_id: Some(stanza.origin_id().to_owned()),
            ..MessageIds::default()
        };
        self.deliver_with_ids(to, stanza, sender, nick, ids)
    }

    /// [`Self::deliver`], with the ids the room gives it.
    fn deliver_with_ids(
        &mut self,
        to: u32,
        stanza: &hush_engine::MessageStanza,
        sender: &str,
        nick: &str,
        ids: MessageIds,
    ) -> Option<Delivery> {
        let Wire::PerSuite(elements) = stanza.content() else {
            panic!("not a room message: {stanza:?}")
        };
        let element: EncryptedElement = elements
            .iter()
            .find(|e| e.keys.iter().any(|k| k.rid == to))
            .unwrap_or(&elements[0])
            .clone();
        let inbound = Inbound {
            sender: sender.into(),
            peer: ROOM.into(),
            nick: Some(nick.into()),
            payload: InboundPayload::Omemo(Ok(element)),
            ids,
            sent_at: None,
            sender_bundle: None,
            control: false,
        };
        let d = self.devices.get_mut(&to).unwrap();
        let request = d.engine.bundle_needed(&d.store, &inbound, NOW).unwrap();
        let mut inbound = inbound;
        if let Some(r) = request {
            let owner = self
                .devices
                .values()
                .find(|x| x.jid == r.jid && x.local.device_id() == r.device)
                .map(|x| x.local.bundle(r.suite));
            inbound.sender_bundle = owner.map(Ok);
        }
        let d = self.devices.get_mut(&to).unwrap();
        let (tx, after) = d
            .engine
            .receive(&d.store, inbound, NOW, &mut self.rng)
            .unwrap()
            .into_parts();
        let committed = if tx.is_empty() {
            hush_store::Committed::default()
        } else {
            d.store.commit(tx).unwrap()
        };
        d.engine.settle(after, &committed)
    }
}

fn body(d: &Option<Delivery>) -> Option<&str> {
    d.as_ref().and_then(|d| d.body.as_deref())
}

/// Alice (two devices, both suites), Bob (omemo:2 only) and Carol (legacy only, as deployed
/// clients in rooms) in one members-only, non-anonymous room.
fn mixed_room() -> World {
    let mut w = World::new();
    w.add(ALICE, 11, &[Suite::Omemo2, Suite::Legacy]);
    w.add(ALICE, 12, &[Suite::Omemo2, Suite::Legacy]);
    w.add(BOB, 21, &[Suite::Omemo2]);
    w.add(CAROL, 31, &[Suite::Legacy]);
    w.member(ALICE, Affiliation::Owner);
    w.member(BOB, Affiliation::Member);
    w.member(CAROL, Affiliation::Admin);
    w.join_all();
    w
}

#[test]
fn a_mixed_room_reads_every_message_in_each_members_suite() {
    let mut w = mixed_room();
    let (stanza, report) = w.send(11, "hello room").unwrap();
    let Wire::PerSuite(elements) = stanza.content() else {
        panic!()
    };
    assert_eq!(
        elements.iter().map(|e| e.suite).collect::<Vec<_>>(),
        [Suite::Omemo2, Suite::Legacy],
        "one element per suite, the best first"
    );
    let mut reached = report.devices.clone();
    reached.sort();
    assert_eq!(
        reached,
        [
            (ALICE.to_owned(), 12),
            (BOB.to_owned(), 21),
            (CAROL.to_owned(), 31)
        ]
    );
    assert!(stanza.is_groupchat());
    for (to, suite) in [
        (12, Suite::Omemo2),
        (21, Suite::Omemo2),
        (31, Suite::Legacy),
    ] {
        let d = w.deliver(to, &stanza, ALICE, "alice");
        assert_eq!(body(&d), Some("hello room"), "device {to}: {d:?}");
        let d = d.unwrap();
        assert_eq!(d.suite, Some(suite));
        assert_eq!(d.from, ALICE);
        assert_eq!(d.arrival.room.as_deref(), Some(ROOM));
        assert_eq!(d.arrival.nick.as_deref(), Some("alice"));
    }
    // Carol answers (legacy): Alice's devices and Bob read it; she never met them before.
    let (answer, _) = w.send(31, "hi from carol").unwrap();
    for to in [11, 12] {
        assert_eq!(
            body(&w.deliver(to, &answer, CAROL, "carol")),
            Some("hi from carol")
        );
    }
    // A member with no OMEMO device cannot read; the others still do, and the report says so.
    w.member(DAVE, Affiliation::Member);
    w.join_all();
    let (_, report) = w.send(31, "again").unwrap();
    assert_eq!(report.without_devices, [DAVE]);
    assert_eq!(report.devices.len(), 3);
}

#[test]
fn our_reflected_message_is_recognised_and_shown_once() {
    let mut w = mixed_room();
    let (stanza, _) = w.send(11, "mine").unwrap();
    // The room sends it back to the sender, under its nickname: a copy of what it sent.
    assert!(w.deliver(11, &stanza, ALICE, "alice").is_none());
    assert_eq!(w.devices[&11].store.history(ROOM, 10).unwrap().len(), 1);
    // Alice's other device reads it as a message of her own account, in the room.
    let d = w.deliver(12, &stanza, ALICE, "alice").unwrap();
    assert_eq!(d.body.as_deref(), Some("mine"));
    // A replay of it is a copy too.
    assert!(w.deliver(12, &stanza, ALICE, "alice").is_none());
    // Sent back without its origin id, it is still recognised by its content: not taken for a
    // message this device sent and its store lost (which would rewind every session).
    let stripped = w.deliver_with_ids(11, &stanza, ALICE, "alice", MessageIds::default());
    assert!(stripped.is_none(), "{stripped:?}");
    assert!(!w.devices[&11].engine.rollback_seen());
}

#[test]
fn a_member_removed_gets_no_key_and_a_new_member_none_of_the_past() {
    let mut w = mixed_room();
    let (before, _) = w.send(11, "before dave").unwrap();
    // Carol loses her affiliation; Dave becomes a member.
    w.add(DAVE, 41, &[Suite::Omemo2]);
    w.unaffiliate(CAROL);
    w.member(DAVE, Affiliation::Member);
    w.join_all();
    let (after, report) = w.send(11, "after the change").unwrap();
    assert!(
        !report.devices.iter().any(|(j, _)| j == CAROL),
        "{:?}",
        report.devices
    );
    assert!(report.devices.contains(&(DAVE.to_owned(), 41)));
    let carol = w.deliver(31, &after, ALICE, "alice").unwrap();
    assert!(carol.body.is_none(), "{carol:?}");
    assert_eq!(carol.failure.map(|f| f.kind()), Some("not-for-this-device"));
    assert_eq!(
        body(&w.deliver(41, &after, ALICE, "alice")),
        Some("after the change")
    );
    let old = w.deliver(41, &before, ALICE, "alice").unwrap();
    assert!(old.body.is_none() && old.failure.is_some(), "{old:?}");
}

#[test]
fn a_room_that_is_not_private_gets_no_encrypted_message() {
    let mut w = mixed_room();
    let refusal = |w: &mut World| match w.send(11, "secret") {
        Err(EngineError::NotSent {
            refusal: Refusal::Room(why),
            ..
        }) => why,
        other => panic!("{other:?}"),
    };
    let mut room = w.devices[&11].store.room(ROOM).unwrap().unwrap();
    room.config.non_anonymous = false;
    w.devices
        .get_mut(&11)
        .unwrap()
        .store
        .save_room(&room)
        .unwrap();
    assert_eq!(refusal(&mut w), RoomRefusal::Anonymous);
    room.config.non_anonymous = true;
    room.config.members_only = false;
    w.devices
        .get_mut(&11)
        .unwrap()
        .store
        .save_room(&room)
        .unwrap();
    assert_eq!(refusal(&mut w), RoomRefusal::OpenToNonMembers);
    room.config.members_only = true;
    room.members_known = false;
    w.devices
        .get_mut(&11)
        .unwrap()
        .store
        .save_room(&room)
        .unwrap();
    assert_eq!(refusal(&mut w), RoomRefusal::MembersUnknown);
    w.devices
        .get_mut(&11)
        .unwrap()
        .store
        .forget_room(ROOM)
        .unwrap();
    assert_eq!(refusal(&mut w), RoomRefusal::NotJoined);
    // Nothing was stored for any of them.
    assert!(w.devices[&11].store.history(ROOM, 10).unwrap().is_empty());
}

#[test]
fn a_message_the_room_relabels_is_not_read_as_the_other_members() {
    let mut w = mixed_room();
    // Bob and Alice have talked, so Alice holds a session with Bob.
    let (first, _) = w.send(21, "bob here").unwrap();
    assert_eq!(body(&w.deliver(11, &first, BOB, "bob")), Some("bob here"));
    let (second, _) = w.send(21, "really bob").unwrap();
    // The room says Carol sent it.
    let d = w.deliver(11, &second, CAROL, "carol").unwrap();
    assert!(d.body.is_none(), "read as Carol's: {d:?}");
    assert!(d.failure.is_some());
    // The real one still reads.
    assert_eq!(
        body(&w.deliver(11, &second, BOB, "bob")),
        Some("really bob")
    );
}

#[test]
fn a_room_member_is_no_stranger() {
    let mut w = mixed_room();
    // More members writing first than all strangers together may open sessions in an hour
    // (`strangers::ALL_STRANGERS`) is not a stranger flood: every first message reads.
    let count = hush_engine::strangers::ALL_STRANGERS + 4;
    for i in 0..count {
        let id = 100 + i;
        let jid: &'static str = Box::leak(format!("m{i}@example.org").into_boxed_str());
        w.add(jid, id, &[Suite::Omemo2]);
        w.member(jid, Affiliation::Member);
    }
    w.join_all();
    for i in 0..count {
        let id = 100 + i;
        let jid = w.devices[&id].jid;
        let (m, _) = w.send(id, "first words").unwrap();
        assert_eq!(
            body(&w.deliver(11, &m, jid, "m")),
            Some("first words"),
            "{jid}"
        );
    }
}

#[test]
fn a_member_with_a_flooded_device_list_is_left_out_not_blocking_the_room() {
    let mut w = mixed_room();
    let sender = &w.devices[&11];
    let (_, members) = sender
        .engine
        .room_readers(&sender.store, ROOM, SendOptions::default())
        .unwrap();
    let flooded: Vec<u32> = (1..=500).collect();
    let lists = members
        .iter()
        .map(|j| {
            let list = if j == CAROL {
                Some((Suite::Legacy, flooded.clone()))
            } else {
                w.list(j)
            };
            (j.clone(), list)
        })
        .collect();
    let own = w.list(ALICE);
    let plan = sender
        .engine
        .plan_room_send(&sender.store, ROOM, lists, own, NOW)
        .unwrap();
    assert!(
        plan.targets().iter().all(|(_, j, _, _)| j != CAROL),
        "{:?}",
        plan.targets()
    );
    let bundles = plan
        .bundles_needed
        .iter()
        .map(|(suite, j, d)| ((j.clone(), *d), Ok(w.devices[d].local.bundle(*suite))))
        .collect();
    let sender = w.devices.get_mut(&11).unwrap();
    let prepared = sender
        .engine
        .prepare_room_send(&sender.store, plan, "still sent", bundles, NOW, &mut w.rng)
        .unwrap();
    assert_eq!(
        prepared.report.members_unreached,
        [(
            CAROL.to_owned(),
            hush_engine::Unreached::ListTooLong { count: 500 }
        )]
    );
    assert!(prepared.report.devices.iter().any(|(j, _)| j == BOB));
}

/// One step of [`any_order_of_room_messages_is_read_once_each`].
#[derive(Clone, Debug)]
enum Step {
    /// The device at this index (of [`MEMBERS`]) writes to the room.
    Send(usize),
    /// The room delivers one waiting message (the `pick`-th, modulo) to the device at `to`;
    /// with `copy`, it keeps a copy to deliver again later.
    Deliver { to: usize, pick: usize, copy: bool },
}

/// The devices of the room of [`any_order_of_room_messages_is_read_once_each`]: `(device,
/// account, nickname)`.
const MEMBERS: [(u32, &str, &str); 4] = [
    (11, ALICE, "alice"),
    (12, ALICE, "alice"),
    (21, BOB, "bob"),
    (31, CAROL, "carol"),
];

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        1 => (0..MEMBERS.len()).prop_map(Step::Send),
        3 => (0..MEMBERS.len(), any::<usize>(), any::<bool>())
            .prop_map(|(to, pick, copy)| Step::Deliver { to, pick, copy }),
    ]
}

/// A room message waiting for one device: the stanza, its sender and text.
struct Waiting {
    stanza: hush_engine::MessageStanza,
    from: usize,
    text: String,
}

proptest::proptest! {
    // Few cases: crypto in a debug build is slow.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Members of a mixed room writing whenever they like — several writing first before
    /// reading anything, so sessions start from both ends at once — while the room delivers
    /// in any order and repeats messages: every device reads every message of the others
    /// exactly once, with its text; a copy is never shown; nothing fails.
    #[test]
    fn any_order_of_room_messages_is_read_once_each(
        steps in proptest::collection::vec(step(), 1..48),
    ) {
        // Alice (two devices) and Bob write both suites; Carol's client only legacy.
        let mut w = World::new();
        w.add(ALICE, 11, &Suite::ALL);
        w.add(ALICE, 12, &Suite::ALL);
        w.add(BOB, 21, &Suite::ALL);
        w.add_speaking(CAROL, 31, &[Suite::Legacy], &[Suite::Legacy]);
        for (jid, a) in [
            (ALICE, Affiliation::Owner),
            (BOB, Affiliation::Member),
            (CAROL, Affiliation::Member),
        ] {
            w.member(jid, a);
        }
        w.join_all();
        let mut waiting: Vec<Vec<Waiting>> = MEMBERS.iter().map(|_| Vec::new()).collect();
        let mut read: BTreeMap<(usize, String), usize> = BTreeMap::new();
        let mut sent = Vec::new();
        let deliver = |w: &mut World,
                       read: &mut BTreeMap<(usize, String), usize>,
                       to: usize,
                       m: &Waiting|
         -> Result<(), proptest::test_runner::TestCaseError> {
            let (device, _, _) = MEMBERS[to];
            let (_, sender, nick) = MEMBERS[m.from];
            let d = w.deliver(device, &m.stanza, sender, nick);
            let count = read.entry((to, m.text.clone())).or_default();
            match d {
                None => proptest::prop_assert!(
                    *count == 1,
                    "device {device} showed nothing for `{}`, never read before", m.text
                ),
                Some(d) => {
                    proptest::prop_assert!(
                        d.body.as_deref() == Some(m.text.as_str()),
                        "device {device} expected `{}`, got {d:?}", m.text
                    );
                    proptest::prop_assert!(d.failure.is_none(), "{d:?}");
                    proptest::prop_assert_eq!(d.from.as_str(), sender);
                    *count += 1;
                    proptest::prop_assert!(*count == 1, "`{}` shown twice on {device}", m.text);
                }
            }
            Ok(())
        };
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Send(from) => {
                    let text = format!("message {n} from device {}", MEMBERS[from].0);
                    let (stanza, report) = w.send(MEMBERS[from].0, &text).unwrap();
                    for (to, (device, jid, _)) in MEMBERS.iter().enumerate() {
                        if to == from {
                            continue;
                        }
                        proptest::prop_assert!(
                            report.devices.contains(&((*jid).to_owned(), *device)),
                            "{text} has no key for device {device}: {report:?}"
                        );
                        waiting[to].push(Waiting {
                            stanza: stanza.clone(),
                            from,
                            text: text.clone(),
                        });
                    }
                    sent.push((from, text));
                }
                Step::Deliver { to, pick, copy } => {
                    if waiting[to].is_empty() {
                        continue;
                    }
                    let at = pick % waiting[to].len();
                    let m = if copy {
                        let m = &waiting[to][at];
                        Waiting { stanza: m.stanza.clone(), from: m.from, text: m.text.clone() }
                    } else {
                        waiting[to].remove(at)
                    };
                    deliver(&mut w, &mut read, to, &m)?;
                }
            }
        }
        // The room delivers the rest, in order.
        for (to, left) in waiting.iter_mut().enumerate() {
            for m in std::mem::take(left) {
                deliver(&mut w, &mut read, to, &m)?;
            }
        }
        for (from, text) in &sent {
            for to in (0..MEMBERS.len()).filter(|to| to != from) {
                proptest::prop_assert_eq!(
                    read.get(&(to, text.clone())).copied(),
                    Some(1),
                    "device {} never read `{}`", MEMBERS[to].0, text
                );
            }
        }
    }
}

#[test]
fn a_member_whose_better_list_is_hidden_is_left_out_and_the_room_still_gets_the_message() {
    let mut w = World::new();
    w.add(ALICE, 11, &[Suite::Omemo2, Suite::Legacy]);
    w.add(BOB, 21, &[Suite::Omemo2]);
    w.add(CAROL, 31, &[Suite::Omemo2, Suite::Legacy]);
    for (jid, a) in [
        (ALICE, Affiliation::Owner),
        (BOB, Affiliation::Member),
        (CAROL, Affiliation::Member),
    ] {
        w.member(jid, a);
    }
    w.join_all();
    let (first, _) = w.send(11, "in omemo:2").unwrap();
    assert_eq!(
        body(&w.deliver(31, &first, ALICE, "alice")),
        Some("in omemo:2")
    );
    // The server hides Carol's omemo:2 list: Carol is not downgraded, and not the whole room
    // held back for her either.
    w.hidden.push((CAROL, Suite::Omemo2));
    let (second, report) = w.send(11, "carol left out").unwrap();
    assert_eq!(
        report.members_unreached,
        [(
            CAROL.to_owned(),
            hush_engine::Unreached::Downgrade {
                used: Suite::Omemo2,
                left: Suite::Legacy
            }
        )]
    );
    assert!(report.devices.iter().all(|(j, _)| j != CAROL), "{report:?}");
    assert_eq!(
        body(&w.deliver(21, &second, ALICE, "alice")),
        Some("carol left out")
    );
}

#[test]
fn a_room_message_made_up_in_this_devices_name_fails_without_a_rollback_alarm() {
    let mut w = mixed_room();
    let (stanza, _) = w.send(11, "mine").unwrap();
    // The room (or a member) sends "this device's" message with another payload.
    let Wire::PerSuite(elements) = stanza.content() else {
        panic!()
    };
    let mut forged = elements.clone();
    for e in &mut forged {
        if let Some(p) = e.payload.as_mut() {
            p[0] ^= 1;
        }
    }
    let forged = hush_engine::MessageStanza::to_room(ROOM, forged, "made-up".into());
    let d = w
        .deliver_with_ids(11, &forged, ALICE, "alice", MessageIds::default())
        .expect("a visible failure");
    assert!(d.body.is_none(), "{d:?}");
    assert!(
        matches!(&d.failure, Some(hush_store::Failure::Undecryptable { detail }) if detail.contains("made it up")),
        "{d:?}"
    );
    assert!(d.warning.is_none(), "no rollback warning: {d:?}");
    // Nothing was rewound: the next message between the devices still reads.
    let (next, _) = w.send(21, "still fine").unwrap();
    assert_eq!(body(&w.deliver(11, &next, BOB, "bob")), Some("still fine"));
}
