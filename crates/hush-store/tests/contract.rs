//! The same behaviour tests for every `Store` implementation (in memory and SQLite).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_proto::{seal, EncryptedElement, LocalDevice, Recipient, Session, Suite};
use hush_store::{
    finish_catch_up, rotate_signed_prekey_if_due, Commit, Direction, Failure, MemoryStore,
    MessageIds, Outcome, Outgoing, Received, SessionKey, SqliteStore, Store, StoreError, Trust,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

const MALLORY: &str = "mallory@example.net";
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

/// Alice's side, kept in memory: she encrypts for Bob's device.
struct Alice {
    device: LocalDevice,
    session: Session,
    rng: StdRng,
}

impl Alice {
    fn new(suite: Suite, bob: &LocalDevice) -> Self {
        let mut rng = StdRng::seed_from_u64(11 + suite as u64);
        let device = LocalDevice::generate(1, 5, 0, &mut rng).unwrap();
        let session = Session::initiate(device.identity(), &bob.bundle(suite), &mut rng).unwrap();
        Self {
            device,
            session,
            rng,
        }
    }

    fn send(&mut self, body: Option<&str>) -> EncryptedElement {
        let suite = self.session.suite();
        seal(
            suite,
            1,
            body.map(str::as_bytes),
            &mut [Recipient {
                jid: BOB,
                device_id: 2,
                session: &mut self.session,
            }],
            &mut self.rng,
        )
        .unwrap()
    }
}

fn ids(n: u32) -> MessageIds {
    MessageIds {
        archive: Some(BOB.into()),
        stanza_id: Some(format!("s{n}")),
        origin_id: Some(format!("o{n}")),
        digest: None,
    }
}

/// Bob decrypts with what the store has, the way the client will.
fn receive<S: Store>(
    store: &S,
    el: &EncryptedElement,
    ids: MessageIds,
    rng: &mut StdRng,
) -> Received {
    let account = store.account().unwrap().unwrap();
    let key = SessionKey::new(el.suite, ALICE, el.sid);
    let existing = store.session(&key).unwrap();
    let outcome = match account.device.open(el, BOB, ALICE, existing, rng) {
        Ok(o) => Outcome::Decrypted {
            session: Box::new(o.session),
            body: o.payload.map(|p| p.to_vec()),
            consumed_prekey: o.consumed_prekey,
        },
        Err(e) => Outcome::Failed {
            failure: Failure::Undecryptable {
                detail: e.to_string(),
            },
        },
    };
    Received {
        ids,
        peer: ALICE.into(),
        sender: ALICE.into(),
        sender_device: el.sid,
        suite: el.suite,
        at: 1000,
        outcome,
    }
}

fn new_bob<S: Store>(store: &mut S, rng: &mut StdRng) -> LocalDevice {
    let bob = LocalDevice::generate(2, 30, 0, rng).unwrap();
    store.create_account(BOB, &bob).unwrap();
    bob
}

fn account_lifecycle<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(1);
    assert!(store.account().unwrap().is_none());
    assert!(matches!(
        store.save_device(&LocalDevice::generate(9, 1, 0, &mut rng).unwrap()),
        Err(StoreError::NoAccount)
    ));
    let bob = new_bob(&mut store, &mut rng);
    let account = store.account().unwrap().unwrap();
    assert_eq!(account.jid, BOB);
    assert_eq!(account.device.identity().public(), bob.identity().public());
    assert!(matches!(
        store.create_account(BOB, &bob),
        Err(StoreError::AccountExists(_))
    ));
    // Signed prekey rotation happens only when due, and is persisted.
    assert!(!rotate_signed_prekey_if_due(&mut store, 100, 7 * 86_400, &mut rng).unwrap());
    assert!(rotate_signed_prekey_if_due(&mut store, 8 * 86_400, 7 * 86_400, &mut rng).unwrap());
    assert_ne!(
        store.account().unwrap().unwrap().device.signed_prekey().id,
        bob.signed_prekey().id
    );
}

fn receive_dedup_and_failures<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(2);
    let bob = new_bob(&mut store, &mut rng);
    for suite in Suite::ALL {
        receive_in_suite(&mut store, &bob, suite, &mut rng);
    }
}

fn receive_in_suite<S: Store>(store: &mut S, bob: &LocalDevice, suite: Suite, rng: &mut StdRng) {
    let mut alice = Alice::new(suite, bob);
    let base = if suite == Suite::Omemo2 { 0 } else { 100 };
    let used_before = store.used_prekeys().unwrap().len();
    let m0 = alice.send(Some("zero"));
    let m1 = alice.send(Some("one"));
    let r0 = receive(store, &m0, ids(base), rng);
    assert_eq!(store.commit_received(vec![r0]).unwrap().len(), 1);
    assert_eq!(
        store.used_prekeys().unwrap().len(),
        used_before + 1,
        "the key exchange's prekey is recorded"
    );
    // The same message again via MAM (same stanza-id) and via Carbons (same origin-id).
    assert!(store.is_known(ALICE, &ids(base)).unwrap());
    assert!(store
        .is_known(
            ALICE,
            &MessageIds {
                origin_id: Some(format!("o{base}")),
                ..Default::default()
            }
        )
        .unwrap());
    let again = Received {
        outcome: Outcome::Failed {
            failure: Failure::Undecryptable {
                detail: "dup".into(),
            },
        },
        ..receive(store, &m1, ids(base), rng)
    };
    assert_eq!(
        store.commit_received(vec![again]).unwrap(),
        vec![Commit::Duplicate]
    );
    // A batch with a message twice stores it once.
    let r1 = receive(store, &m1, ids(base + 1), rng);
    let r1_dup = Received {
        outcome: Outcome::Failed {
            failure: Failure::Undecryptable { detail: "x".into() },
        },
        ..receive(store, &m1, ids(base + 1), rng)
    };
    let results = store.commit_received(vec![r1, r1_dup]).unwrap();
    assert!(matches!(results[0], Commit::Stored(id) if id > 0));
    assert_eq!(results[1], Commit::Duplicate);
    // An undecryptable message is kept, loudly.
    let mut garbage = alice.send(Some("two"));
    garbage.payload.as_mut().unwrap()[0] ^= 1;
    let failed = receive(store, &garbage, ids(base + 2), rng);
    assert!(matches!(failed.outcome, Outcome::Failed { .. }));
    store.commit_received(vec![failed]).unwrap();
    // An empty message advances the session but adds no history line.
    let empty = alice.send(None);
    let r = receive(store, &empty, ids(base + 3), rng);
    assert_eq!(
        store.commit_received(vec![r]).unwrap(),
        vec![Commit::Stored(0)]
    );
    let history: Vec<_> = store
        .history(ALICE, 100)
        .unwrap()
        .into_iter()
        .filter(|m| m.suite == suite)
        .collect();
    let bodies: Vec<Option<&[u8]>> = history.iter().map(|m| m.body.as_deref()).collect();
    assert_eq!(bodies, vec![Some(&b"zero"[..]), Some(&b"one"[..]), None]);
    assert!(
        matches!(&history[2].failure, Some(Failure::Undecryptable { detail }) if detail.contains("tampered")),
        "{:?}",
        history[2].failure
    );
    assert!(history
        .iter()
        .all(|m| m.direction == Direction::In && m.sender_device == 1));
    // The stored session still decrypts what comes next.
    let next = alice.send(Some("three"));
    let r = receive(store, &next, ids(base + 4), rng);
    assert!(matches!(&r.outcome, Outcome::Decrypted { body: Some(b), .. } if b == b"three"));
}

fn outgoing_and_prekeys<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(3);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let m = alice.send(Some("hi"));
    let r = receive(&store, &m, ids(1), &mut rng);
    store.commit_received(vec![r]).unwrap();
    // Bob answers: the advanced session, history and outbox land together.
    let key = SessionKey::new(Suite::Omemo2, ALICE, 1);
    let mut s = store.session(&key).unwrap().unwrap();
    let el = seal(
        Suite::Omemo2,
        2,
        Some(b"reply"),
        &mut [Recipient {
            jid: ALICE,
            device_id: 1,
            session: &mut s,
        }],
        &mut rng,
    )
    .unwrap();
    let stanza = String::from(&el.to_element()).into_bytes();
    let out = Outgoing {
        ids: MessageIds {
            origin_id: Some("mine-1".into()),
            ..Default::default()
        },
        peer: ALICE.into(),
        sender: BOB.into(),
        sender_device: 2,
        suite: Suite::Omemo2,
        at: 5,
        body: b"reply".to_vec(),
        encrypted: true,
        stanza: stanza.clone(),
    };
    let id = store.commit_outgoing(&[(key.clone(), s)], &out).unwrap();
    assert_eq!(
        store
            .pending()
            .unwrap()
            .iter()
            .map(|p| (
                p.id,
                p.peer.clone(),
                p.origin_id.clone(),
                p.encrypted,
                p.stanza.clone()
            ))
            .collect::<Vec<_>>(),
        vec![(
            id,
            ALICE.to_owned(),
            out.ids.origin_id.clone(),
            true,
            stanza
        )]
    );
    assert!(
        store.is_known(BOB, &out.ids).unwrap(),
        "our own copy coming back via Carbons/MAM is a duplicate"
    );
    store.mark_sent(id).unwrap();
    assert!(store.pending().unwrap().is_empty());
    let last = store.history(ALICE, 1).unwrap();
    assert_eq!(last[0].direction, Direction::Out);
    assert_eq!(last[0].body.as_deref(), Some(&b"reply"[..]));
    assert_eq!(last[0].failure, None);
    // Returned by the server: the text stays, and history says it was not delivered.
    let bounced = Failure::Undelivered {
        condition: "service-unavailable".into(),
    };
    store.mark_undelivered(id, &bounced).unwrap();
    let last = store.history(ALICE, 1).unwrap();
    assert_eq!(last[0].body.as_deref(), Some(&b"reply"[..]));
    assert_eq!(last[0].failure, Some(bounced));
    // Alice can read the reply, so the saved session was the advanced one.
    let opened = alice
        .device
        .open(&el, ALICE, BOB, Some(alice.session.clone()), &mut rng)
        .unwrap();
    assert_eq!(opened.payload.unwrap().as_slice(), b"reply");

    // After catch-up the used prekey is deleted and the pool refilled.
    let used = store.used_prekeys().unwrap();
    assert_eq!(used.len(), 1);
    let before = store.account().unwrap().unwrap().device;
    assert!(before
        .bundle(Suite::Omemo2)
        .prekeys
        .iter()
        .any(|(id, _)| *id == used[0]));
    assert_eq!(finish_catch_up(&mut store, 30, 0, &mut rng).unwrap(), 1);
    let after = store.account().unwrap().unwrap().device;
    assert_eq!(after.prekey_count(), 30);
    assert!(after
        .bundle(Suite::Omemo2)
        .prekeys
        .iter()
        .all(|(id, _)| *id != used[0]));
    assert!(store.used_prekeys().unwrap().is_empty());
    assert_eq!(
        after.retired_prekey_count(),
        1,
        "out of the bundle, still held for a late key exchange that picked it too"
    );
    assert_eq!(finish_catch_up(&mut store, 30, 0, &mut rng).unwrap(), 0);
    finish_catch_up(&mut store, 30, hush_store::PREKEY_GRACE + 1, &mut rng).unwrap();
    let later = store.account().unwrap().unwrap().device;
    assert_eq!(
        later.retired_prekey_count(),
        0,
        "forgotten after the grace period"
    );
    assert_eq!(later.prekey_count(), 30);

    // Sessions advanced outside a message (an empty message we sent) are saved as they are.
    let mut s2 = store.session(&key).unwrap().unwrap();
    let _ = seal(
        Suite::Omemo2,
        2,
        None,
        &mut [Recipient {
            jid: ALICE,
            device_id: 1,
            session: &mut s2,
        }],
        &mut rng,
    )
    .unwrap();
    store.save_sessions(&[(key.clone(), s2.clone())]).unwrap();
    assert_eq!(
        store.session(&key).unwrap().unwrap().sending_chain_length(),
        s2.sending_chain_length()
    );
    assert_eq!(
        store.last_archive_id(BOB).unwrap().as_deref(),
        Some("s1"),
        "catch-up resumes after the newest archive id"
    );
    assert_eq!(store.last_archive_id("elsewhere").unwrap(), None);

    assert_eq!(
        hush_store::reset_sessions(&mut store, ALICE, Some(99)).unwrap(),
        0
    );
    assert_eq!(
        hush_store::reset_sessions(&mut store, ALICE, None).unwrap(),
        1
    );
    assert!(store.session(&key).unwrap().is_none());
}

fn trust_and_devices<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(4);
    let id = *LocalDevice::generate(3, 1, 0, &mut rng)
        .unwrap()
        .identity()
        .public();
    assert_eq!(store.trust(ALICE, &id).unwrap(), None);
    store.set_trust(ALICE, &id, Trust::Blind, 1).unwrap();
    assert!(!store.has_verified_key(ALICE).unwrap());
    store.set_trust(ALICE, &id, Trust::Verified, 2).unwrap();
    assert_eq!(store.trust(ALICE, &id).unwrap(), Some(Trust::Verified));
    assert_eq!(store.trust(BOB, &id).unwrap(), None);
    assert!(store.has_verified_key(ALICE).unwrap());
    assert!(!store.has_verified_key(BOB).unwrap());
    store
        .set_device_list(Suite::Omemo2, ALICE, &[1, 2], 10)
        .unwrap();
    store
        .set_device_list(Suite::Omemo2, ALICE, &[2, 3], 20)
        .unwrap();
    let d = store.devices(Suite::Omemo2, ALICE).unwrap();
    let summary: Vec<(u32, bool, u64)> = d
        .iter()
        .map(|r| (r.device_id, r.listed, r.last_seen))
        .collect();
    // A device keeps the time it was first listed: being listed again is no sign of life.
    // Device 1, unlisted and never talked to, is forgotten.
    assert_eq!(summary, vec![(2, true, 10), (3, true, 20)]);
    assert!(store.devices(Suite::Legacy, ALICE).unwrap().is_empty());
}

/// Trust models: the account's applies to a contact without its own; the first trust of a
/// new key follows the model and what is on record.
fn trust_models<S: Store>(mut store: S) {
    use hush_proto::policy::TrustModel;
    use hush_store::ConversationRecord;
    let mut rng = StdRng::seed_from_u64(11);
    let id = *LocalDevice::generate(3, 1, 0, &mut rng)
        .unwrap()
        .identity()
        .public();
    assert_eq!(
        store.default_trust_model().unwrap(),
        TrustModel::BlindBeforeVerification
    );
    assert_eq!(store.first_trust(ALICE).unwrap(), Trust::Blind);
    store
        .set_default_trust_model(TrustModel::OnFirstUse)
        .unwrap();
    assert_eq!(store.trust_model(ALICE).unwrap(), TrustModel::OnFirstUse);
    assert_eq!(store.first_trust(ALICE).unwrap(), Trust::Blind);
    assert!(!store.has_any_key(ALICE).unwrap());
    store.set_trust(ALICE, &id, Trust::Distrusted, 1).unwrap();
    assert!(store.has_any_key(ALICE).unwrap());
    assert!(!store.has_any_key(BOB).unwrap());
    // First use is over for Alice, not for Bob.
    assert_eq!(store.first_trust(ALICE).unwrap(), Trust::Undecided);
    assert_eq!(store.first_trust(BOB).unwrap(), Trust::Blind);
    let record = ConversationRecord {
        trust_model: Some(TrustModel::Manual),
        ..ConversationRecord::default()
    };
    store.set_conversation(BOB, &record).unwrap();
    assert_eq!(store.trust_model(BOB).unwrap(), TrustModel::Manual);
    assert_eq!(store.first_trust(BOB).unwrap(), Trust::Undecided);
    store
        .set_default_trust_model(TrustModel::BlindBeforeVerification)
        .unwrap();
    assert_eq!(store.first_trust(ALICE).unwrap(), Trust::Blind);
    assert_eq!(store.first_trust(BOB).unwrap(), Trust::Undecided);
}

/// A transaction whose messages are all copies of stored ones is a step already taken: it
/// writes nothing, not even the stranger budget or record changes it carries.
fn a_step_of_copies_writes_nothing<S: Store>(mut store: S) {
    use hush_store::{ConversationChange, StrangerCharge, Transaction};
    let mut rng = StdRng::seed_from_u64(16);
    new_bob(&mut store, &mut rng);
    let step = |spent: u32| Transaction {
        received: vec![Received {
            ids: ids(1),
            peer: MALLORY.into(),
            sender: MALLORY.into(),
            sender_device: 0,
            suite: Suite::Omemo2,
            at: 10,
            outcome: Outcome::Plaintext {
                body: b"buy now".to_vec(),
            },
        }],
        stranger: Some(StrangerCharge {
            jid: MALLORY.into(),
            window: 0,
            spent,
            notified: false,
        }),
        conversations: vec![(MALLORY.into(), ConversationChange::Encrypted)],
        ..Transaction::default()
    };
    let first = store.commit(step(1)).unwrap();
    assert!(matches!(first.received[..], [Commit::Stored(_)]));
    let before = store.conversation(MALLORY).unwrap();
    let mut copy = step(2);
    copy.conversations = vec![(MALLORY.into(), ConversationChange::Contact)];
    let again = store.commit(copy).unwrap();
    assert_eq!(again.received, vec![Commit::Duplicate]);
    assert_eq!(store.stranger_usage(MALLORY, 0).unwrap().spent, 1);
    assert_eq!(store.conversation(MALLORY).unwrap(), before);
    assert_eq!(store.history(MALLORY, 10).unwrap().len(), 1);
}

/// An empty message that decrypts under a failure's ids (a server reusing them) does not take
/// them over: it is not in history, so the failure keeps them and a later copy of the failed
/// message stays a copy instead of showing twice.
fn an_empty_message_leaves_a_failures_ids_alone<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(17);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let failed = |at| Received {
        ids: ids(1),
        peer: ALICE.into(),
        sender: ALICE.into(),
        sender_device: 1,
        suite: Suite::Omemo2,
        at,
        outcome: Outcome::Failed {
            failure: Failure::Undecryptable {
                detail: "did not decrypt".into(),
            },
        },
    };
    assert!(matches!(
        store.commit_received(vec![failed(1)]).unwrap()[0],
        Commit::Stored(_)
    ));
    let empty = receive(&store, &alice.send(None), ids(1), &mut rng);
    assert!(matches!(
        empty.outcome,
        Outcome::Decrypted { body: None, .. }
    ));
    assert!(matches!(
        store.commit_received(vec![empty]).unwrap()[0],
        Commit::Stored(_)
    ));
    assert_eq!(
        store.commit_received(vec![failed(2)]).unwrap()[0],
        Commit::Duplicate,
        "the failure still holds its ids"
    );
    assert_eq!(store.history(ALICE, 10).unwrap().len(), 1);
}

/// A rollback's repair is committed whole even when its lost-message records are copies of
/// stored entries (a message in clear injected under the same archive id): skipping it would
/// leave rewound sessions in use and handed-out prekeys accepted.
fn a_repair_whose_records_are_copies_is_still_committed<S: Store>(mut store: S) {
    use hush_store::Transaction;
    let mut rng = StdRng::seed_from_u64(18);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let r = receive(&store, &alice.send(Some("before")), ids(1), &mut rng);
    store.commit_received(vec![r]).unwrap();
    let stolen = MessageIds {
        archive: Some(BOB.into()),
        stanza_id: Some("lost-1".into()),
        ..Default::default()
    };
    let injected = Received {
        ids: stolen.clone(),
        peer: MALLORY.into(),
        sender: MALLORY.into(),
        sender_device: 0,
        suite: Suite::Omemo2,
        at: 5,
        outcome: Outcome::Plaintext {
            body: b"same archive id".to_vec(),
        },
    };
    store.commit_received(vec![injected]).unwrap();
    let repair = Transaction {
        rewind_sessions: true,
        used_prekeys: vec![7],
        received: vec![Received {
            ids: stolen,
            peer: ALICE.into(),
            sender: BOB.into(),
            sender_device: 2,
            suite: Suite::Omemo2,
            at: 6,
            outcome: Outcome::LostSent,
        }],
        ..Transaction::default()
    };
    assert!(!repair.is_receive_step());
    store.commit(repair).unwrap();
    assert_eq!(store.sessions_needing_reset().unwrap().len(), 1);
    assert!(
        store.used_prekeys().unwrap().contains(&7),
        "the handed-out prekey is retired"
    );
}

/// Lists of ever new device ids (a hostile server pushing them) do not grow the store: only
/// the devices listed now, and unlisted ones we hold a session with, are kept.
fn device_lists_of_new_ids_do_not_grow_the_store<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(15);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    store
        .set_device_list(Suite::Omemo2, ALICE, &[1], 0)
        .unwrap();
    let r = receive(&store, &alice.send(Some("hi")), ids(1), &mut rng);
    store.commit_received(vec![r]).unwrap();
    for push in 0..50u32 {
        let list: Vec<u32> = (0..128).map(|i| 1000 + push * 128 + i).collect();
        store
            .set_device_list(Suite::Omemo2, ALICE, &list, u64::from(push))
            .unwrap();
    }
    let d = store.devices(Suite::Omemo2, ALICE).unwrap();
    assert_eq!(d.iter().filter(|r| r.listed).count(), 128);
    let unlisted: Vec<u32> = d
        .iter()
        .filter(|r| !r.listed)
        .map(|r| r.device_id)
        .collect();
    assert_eq!(
        unlisted,
        vec![1],
        "only the device with a session is remembered"
    );
}

/// Devices are "heard from" when a message of theirs decrypts (empty ones too), not when a
/// list names them, and not when a message fails: that is what marks stale devices.
fn devices_are_seen_by_their_messages<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(5);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    store
        .set_device_list(Suite::Omemo2, ALICE, &[1, 77], 10)
        .unwrap();
    let seen = |store: &S| -> Vec<(u32, bool, u64)> {
        store
            .devices(Suite::Omemo2, ALICE)
            .unwrap()
            .iter()
            .map(|r| (r.device_id, r.listed, r.last_seen))
            .collect()
    };
    let m = alice.send(Some("hi"));
    let r = receive(&store, &m, ids(1), &mut rng); // at = 1000
    store.commit_received(vec![r]).unwrap();
    assert_eq!(seen(&store), vec![(1, true, 1000), (77, true, 10)]);
    store
        .set_device_list(Suite::Omemo2, ALICE, &[1, 77], 2000)
        .unwrap();
    assert_eq!(seen(&store), vec![(1, true, 1000), (77, true, 10)]);
    // A failure proves nothing about the device.
    let failed = Received {
        ids: ids(2),
        peer: ALICE.into(),
        sender: ALICE.into(),
        sender_device: 77,
        suite: Suite::Omemo2,
        at: 3000,
        outcome: Outcome::Failed {
            failure: Failure::Undecryptable {
                detail: "test".into(),
            },
        },
    };
    store.commit_received(vec![failed]).unwrap();
    assert_eq!(seen(&store), vec![(1, true, 1000), (77, true, 10)]);
    // A message from a device the current list leaves out updates the row a list made
    // (device 1 was listed); a device no list ever named gets no row (see below).
    let mut empty = receive(&store, &alice.send(None), ids(3), &mut rng);
    empty.at = 4000;
    store.commit_received(vec![empty]).unwrap();
    store
        .set_device_list(Suite::Omemo2, ALICE, &[77], 5000)
        .unwrap();
    assert_eq!(seen(&store), vec![(1, false, 4000), (77, true, 10)]);
    // A device no list ever named (a server can make one up) stays unknown, even when its
    // message decrypts: being known counts as having been announced.
    let mut carol = Alice::new(Suite::Omemo2, &bob);
    let r = Received {
        peer: "carol@example.com".into(),
        sender: "carol@example.com".into(),
        ..receive(&store, &carol.send(Some("hi")), ids(4), &mut rng)
    };
    store.commit_received(vec![r]).unwrap();
    assert!(store
        .devices(Suite::Omemo2, "carol@example.com")
        .unwrap()
        .is_empty());
}

/// Conversation settings persist; plaintext arrivals are kept and marked as such.
fn conversations_and_plaintext<S: Store>(mut store: S) {
    use hush_proto::policy::{Authentication, Conversation};
    use hush_store::ConversationRecord;
    let mut rng = StdRng::seed_from_u64(6);
    new_bob(&mut store, &mut rng);
    assert_eq!(
        store.conversation(ALICE).unwrap(),
        ConversationRecord::default()
    );
    let record = ConversationRecord {
        policy: Conversation {
            off: false,
            encrypted: true,
            min_auth: Authentication::Strong,
        },
        blocked: true,
        contact: true,
        trust_model: Some(hush_proto::policy::TrustModel::Manual),
    };
    store.set_conversation(ALICE, &record).unwrap();
    assert_eq!(store.conversation(ALICE).unwrap(), record);
    assert_eq!(
        store.conversation(BOB).unwrap(),
        ConversationRecord::default()
    );
    let plain = Received {
        ids: ids(7),
        peer: ALICE.into(),
        sender: ALICE.into(),
        sender_device: 0,
        suite: Suite::Omemo2,
        at: 5,
        outcome: Outcome::Plaintext {
            body: b"in clear".to_vec(),
        },
    };
    assert!(matches!(
        store.commit_received(vec![plain]).unwrap()[0],
        Commit::Stored(_)
    ));
    let h = store.history(ALICE, 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].body.as_deref(), Some(b"in clear".as_slice()));
    assert!(!h[0].encrypted);
    // A message without text (a file shared with no caption) is history; a control message
    // (a trust message, a comparison step) is kept to recognise its copies, never shown.
    for (n, body) in [(8, b"".to_vec()), (9, hush_store::CONTROL_BODY.to_vec())] {
        let r = Received {
            ids: ids(n),
            peer: ALICE.into(),
            sender: ALICE.into(),
            sender_device: 0,
            suite: Suite::Omemo2,
            at: 6,
            outcome: Outcome::Plaintext { body },
        };
        store.commit_received(vec![r]).unwrap();
    }
    let h = store.history(ALICE, 10).unwrap();
    let bodies: Vec<&[u8]> = h.iter().filter_map(|m| m.body.as_deref()).collect();
    assert_eq!(bodies, [b"in clear".as_slice(), b"".as_slice()]);
    assert!(
        store.holds(ALICE, &ids(9)).unwrap(),
        "the control message is kept"
    );
}

/// The archive resume point is separate from the last stored message and per archive.
fn archive_resume_points<S: Store>(mut store: S) {
    assert_eq!(store.archive_resume(ALICE).unwrap(), None);
    store.set_archive_resume(ALICE, "a-10").unwrap();
    store.set_archive_resume(BOB, "b-3").unwrap();
    store.set_archive_resume(ALICE, "a-12").unwrap();
    assert_eq!(
        store.archive_resume(ALICE).unwrap().as_deref(),
        Some("a-12")
    );
    assert_eq!(store.archive_resume(BOB).unwrap().as_deref(), Some("b-3"));
    assert_eq!(
        store.last_archive_id(ALICE).unwrap(),
        None,
        "no message was stored"
    );
    // When the device began to read its archive: recorded once, never moved later.
    assert_eq!(store.archive_start().unwrap(), None);
    store.set_archive_start(1_700_000_000).unwrap();
    store.set_archive_start(1_700_000_500).unwrap();
    assert_eq!(store.archive_start().unwrap(), Some(1_700_000_000));
}

/// Rooms are saved whole (their member list replaced, not merged), listed, and forgotten.
fn rooms_are_kept_and_forgotten<S: Store>(mut store: S) {
    use hush_store::{Affiliation, Member, Room, RoomConfig};
    assert!(store.rooms().unwrap().is_empty());
    let member = |jid: &str, affiliation| Member {
        jid: jid.into(),
        affiliation,
    };
    let mut room = Room {
        jid: "team@muc.x".into(),
        nick: "alice".into(),
        config: RoomConfig {
            members_only: true,
            non_anonymous: true,
        },
        members: Vec::new(),
        members_known: true,
        joined_at: 1_700_000_000,
        members_told: None,
    };
    room.set_members([
        member("carol@x", Affiliation::Member),
        member(ALICE, Affiliation::Owner),
    ]);
    room.members_told = Some(vec![ALICE.into(), "carol@x".into()]);
    store.save_room(&room).unwrap();
    let other = Room {
        jid: "lobby@muc.x".into(),
        members_known: false,
        members_told: None,
        ..room.clone()
    };
    store.save_room(&other).unwrap();
    store.set_archive_resume("team@muc.x", "r-41").unwrap();
    assert_eq!(store.room("team@muc.x").unwrap().as_ref(), Some(&room));
    room.set_members([
        member(ALICE, Affiliation::Owner),
        member(BOB, Affiliation::Admin),
    ]);
    room.config.members_only = false;
    store.save_room(&room).unwrap();
    let read = store.room("team@muc.x").unwrap().unwrap();
    assert_eq!(read, room, "carol's membership was replaced, not kept");
    assert_eq!(
        store
            .rooms()
            .unwrap()
            .iter()
            .map(|r| r.jid.as_str())
            .collect::<Vec<_>>(),
        ["lobby@muc.x", "team@muc.x"]
    );
    assert_eq!(
        store.archive_resume("team@muc.x").unwrap().as_deref(),
        Some("r-41")
    );
    store.forget_room("team@muc.x").unwrap();
    assert_eq!(store.room("team@muc.x").unwrap(), None);
    assert_eq!(
        store.archive_resume("team@muc.x").unwrap(),
        None,
        "joined again, the room's archive is read from then on"
    );
    assert_eq!(store.rooms().unwrap(), [other]);
}

/// A forgery with a real message's ids, stored first, does not hide the real message; only an
/// authenticated message makes later copies (by id or by content digest) duplicates.
fn unauthenticated_entries_never_hide_the_real_message<S: Store>(mut store: S) {
    let mut rng = StdRng::seed_from_u64(7);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let real = alice.send(Some("the real one"));
    let digest = real.content_digest(BOB, 2);
    assert!(digest.is_some());
    let stolen = MessageIds { digest, ..ids(1) };
    // 1. A message in clear and a failure carrying the real ids arrive first.
    let forged_plain = Received {
        ids: ids(1),
        peer: ALICE.into(),
        sender: ALICE.into(),
        sender_device: 0,
        suite: Suite::Omemo2,
        at: 1000,
        outcome: Outcome::Plaintext {
            body: b"forged".to_vec(),
        },
    };
    assert!(matches!(
        store.commit_received(vec![forged_plain]).unwrap()[0],
        Commit::Stored(_)
    ));
    let forged_garbage = Received {
        outcome: Outcome::Failed {
            failure: Failure::Undecryptable {
                detail: "garbage".into(),
            },
        },
        sender_device: 1,
        ..receive(&store, &real, stolen.clone(), &mut rng)
    };
    assert_eq!(
        store.commit_received(vec![forged_garbage]).unwrap()[0],
        Commit::Duplicate,
        "a second unauthenticated entry with these ids is a copy of what was shown"
    );
    assert!(
        !store.is_known(ALICE, &stolen).unwrap(),
        "unauthenticated entries do not make the real message known"
    );
    // 2. The real message is decrypted and stored beside the forgery.
    let r = receive(&store, &real, stolen.clone(), &mut rng);
    assert!(matches!(r.outcome, Outcome::Decrypted { .. }));
    assert!(matches!(
        store.commit_received(vec![r]).unwrap()[0],
        Commit::Stored(_)
    ));
    let history = store.history(ALICE, 10).unwrap();
    let bodies: Vec<_> = history.iter().filter_map(|m| m.body.clone()).collect();
    assert_eq!(bodies, vec![b"forged".to_vec(), b"the real one".to_vec()]);
    // 3. Now copies are known: by stanza id, by origin id, and by content alone.
    assert!(store.is_known(ALICE, &ids(1)).unwrap());
    let by_content = MessageIds {
        digest,
        ..Default::default()
    };
    assert!(store.is_known(ALICE, &by_content).unwrap());
    assert!(
        !store.is_known(BOB, &by_content).unwrap(),
        "a digest counts only for its sender"
    );
}

/// One protocol step's writes land together; trust the user decided and settings the user
/// changed meanwhile are not overwritten by them.
fn a_transaction_writes_a_whole_step<S: Store>(mut store: S) {
    use hush_proto::policy::{Authentication, Properties};
    use hush_store::{ConversationChange, DeviceListUpdate, NewKey, Transaction};
    let mut rng = StdRng::seed_from_u64(8);
    let bob = new_bob(&mut store, &mut rng);
    let known = *LocalDevice::generate(5, 1, 0, &mut rng)
        .unwrap()
        .identity()
        .public();
    let fresh = *LocalDevice::generate(6, 1, 0, &mut rng)
        .unwrap()
        .identity()
        .public();
    store.set_trust(ALICE, &known, Trust::Verified, 1).unwrap();
    let mut record = store.conversation(ALICE).unwrap();
    record.blocked = true;
    store.set_conversation(ALICE, &record).unwrap();
    assert!(Transaction::default().is_empty());

    let atm = hush_store::TrustSource::Atm {
        jid: ALICE.into(),
        fingerprint: known.fingerprint(),
    };
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let m = alice.send(Some("in the same step"));
    let tx = Transaction {
        new_keys: [known, fresh]
            .map(|identity| NewKey {
                jid: ALICE.into(),
                identity,
                trust: Trust::Blind,
                at: 2,
            })
            .to_vec(),
        device_lists: vec![DeviceListUpdate {
            suite: Suite::Omemo2,
            jid: ALICE.into(),
            devices: vec![1, 7],
            at: 2,
        }],
        conversations: vec![
            (ALICE.into(), ConversationChange::Contact),
            (
                ALICE.into(),
                ConversationChange::Reached(Properties::omemo(Authentication::Strong)),
            ),
        ],
        sessions: Vec::new(),
        received: vec![receive(&store, &m, ids(300), &mut rng)],
        outgoing: None,
        stranger: None,
        rewind_sessions: false,
        used_prekeys: Vec::new(),
        rewound_sessions: Vec::new(),
        // Automatic Trust Management: a decision (replacing a stored one), a statement held
        // from a device not authenticated yet, and a trust message to send.
        trust_changes: vec![hush_store::TrustChange {
            jid: BOB.into(),
            identity: fresh,
            trust: Trust::Distrusted,
            source: atm.clone(),
            at: 2,
        }],
        held_trust: vec![hush_store::HeldTrust {
            sender: ALICE.into(),
            sender_key: fresh,
            owner: ALICE.into(),
            key: known,
            trust: Trust::Verified,
            at: 2,
        }],
        released_trust: Vec::new(),
        trust_messages: vec![(ALICE.into(), "<trust-message/>".into())],
    };
    assert!(!tx.is_empty());
    let committed = store.commit(tx).unwrap();
    assert!(matches!(committed.received[..], [Commit::Stored(_)]));
    assert_eq!(committed.outgoing, None);
    assert_eq!(store.trust(ALICE, &known).unwrap(), Some(Trust::Verified));
    assert_eq!(store.trust(ALICE, &fresh).unwrap(), Some(Trust::Blind));
    assert_eq!(store.trust(BOB, &fresh).unwrap(), Some(Trust::Distrusted));
    assert_eq!(store.trust_source(BOB, &fresh).unwrap(), Some(atm));
    assert_eq!(
        store.trust_source(ALICE, &known).unwrap(),
        Some(hush_store::TrustSource::User)
    );
    let distrusted = store.keys_with_trust(Trust::Distrusted).unwrap();
    assert_eq!(distrusted.len(), 1);
    assert!(distrusted[0].1.same_identity(&fresh));
    let held = store.held_trust_from(ALICE, &fresh).unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].key.same_identity(&known) && held[0].trust == Trust::Verified);
    assert!(store.held_trust_from(ALICE, &known).unwrap().is_empty());
    let queued = store.trust_messages_to_send().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].to, ALICE);
    store.trust_message_sent(queued[0].id).unwrap();
    assert!(store.trust_messages_to_send().unwrap().is_empty());
    let release = Transaction {
        released_trust: vec![(ALICE.into(), fresh)],
        ..Transaction::default()
    };
    assert!(!release.is_empty());
    store.commit(release).unwrap();
    assert!(store.held_trust_from(ALICE, &fresh).unwrap().is_empty());
    let listed: Vec<u32> = store
        .devices(Suite::Omemo2, ALICE)
        .unwrap()
        .iter()
        .filter(|d| d.listed)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(listed, [1, 7]);
    let record = store.conversation(ALICE).unwrap();
    assert!(record.blocked, "a setting changed meanwhile stays");
    assert!(record.contact && record.policy.encrypted);
    assert_eq!(record.policy.min_auth, Authentication::Strong);
    assert!(store
        .session(&SessionKey::new(Suite::Omemo2, ALICE, 1))
        .unwrap()
        .is_some());
}

/// The step that repairs a rolled-back store: every session stored before it is rewound
/// (those it writes itself are not), the prekeys it names are recorded as used, and a lost
/// sent message is kept as an outgoing entry without text — which makes a later copy of it a
/// duplicate, so it is not reported twice.
fn a_rollback_step_rewinds_and_records<S: Store>(mut store: S) {
    use hush_store::Transaction;
    let mut rng = StdRng::seed_from_u64(9);
    let bob = new_bob(&mut store, &mut rng);
    let mut alice = Alice::new(Suite::Omemo2, &bob);
    let m = alice.send(Some("before the rollback"));
    let r = receive(&store, &m, ids(400), &mut rng);
    store.commit_received(vec![r]).unwrap();
    let old_key = SessionKey::new(Suite::Omemo2, ALICE, 1);
    let new_key = SessionKey::new(Suite::Omemo2, "carol@example.com", 3);
    assert!(store.sessions_needing_reset().unwrap().is_empty());
    let rewind_only = Transaction {
        rewind_sessions: true,
        ..Transaction::default()
    };
    assert!(
        !rewind_only.is_empty(),
        "a rewind alone is something to commit"
    );

    let lost_ids = MessageIds {
        archive: Some(BOB.into()),
        stanza_id: Some("lost-1".into()),
        origin_id: Some("hush-lost".into()),
        digest: None,
    };
    let lost = Received {
        ids: lost_ids.clone(),
        peer: ALICE.into(),
        sender: BOB.into(),
        sender_device: 2,
        suite: Suite::Omemo2,
        at: 2000,
        outcome: Outcome::LostSent,
    };
    let tx = Transaction {
        rewind_sessions: true,
        used_prekeys: vec![7, 8],
        sessions: vec![(new_key.clone(), alice.session.clone())],
        received: vec![lost],
        ..Transaction::default()
    };
    let committed = store.commit(tx).unwrap();
    assert!(matches!(committed.received[..], [Commit::Stored(_)]));
    assert_eq!(
        store.sessions_needing_reset().unwrap(),
        std::slice::from_ref(&old_key),
        "the stored session is rewound, the one the step wrote is not"
    );
    let mut used = store.used_prekeys().unwrap();
    used.sort_unstable();
    assert!(used.contains(&7) && used.contains(&8));
    assert!(
        store.is_known(BOB, &lost_ids).unwrap(),
        "a later copy is a duplicate"
    );
    let entry = store.history(ALICE, 10).unwrap().pop().unwrap();
    assert_eq!(entry.direction, Direction::Out);
    assert_eq!(entry.body, None);
    assert_eq!(entry.failure, Some(Failure::LostSent { to: ALICE.into() }));
    assert!(store.pending().unwrap().is_empty(), "nothing to send again");
    // A session written by a later step can be marked once that step's writes are in; a
    // key with no session marks nothing.
    let ghost = SessionKey::new(Suite::Omemo2, "nobody@example.com", 4);
    store
        .commit(Transaction {
            sessions: vec![(new_key.clone(), alice.session.clone())],
            rewound_sessions: vec![new_key.clone(), ghost],
            ..Transaction::default()
        })
        .unwrap();
    assert_eq!(store.sessions_needing_reset().unwrap(), [old_key, new_key]);
    // The same message read again changes nothing.
    let again = Received {
        ids: lost_ids,
        peer: ALICE.into(),
        sender: BOB.into(),
        sender_device: 2,
        suite: Suite::Omemo2,
        at: 2000,
        outcome: Outcome::LostSent,
    };
    assert_eq!(
        store.commit_received(vec![again]).unwrap(),
        [Commit::Duplicate]
    );
}

macro_rules! contract {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn account_lifecycle() {
                super::account_lifecycle($make);
            }

            #[test]
            fn receive_dedup_and_failures() {
                super::receive_dedup_and_failures($make);
            }

            #[test]
            fn outgoing_and_prekeys() {
                super::outgoing_and_prekeys($make);
            }

            #[test]
            fn trust_and_devices() {
                super::trust_and_devices($make);
            }

            #[test]
            fn trust_models() {
                super::trust_models($make);
            }

            #[test]
            fn conversations_and_plaintext() {
                super::conversations_and_plaintext($make);
            }

            #[test]
            fn archive_resume_points() {
                super::archive_resume_points($make);
            }

            #[test]
            fn unauthenticated_entries_never_hide_the_real_message() {
                super::unauthenticated_entries_never_hide_the_real_message($make);
            }

            #[test]
            fn a_transaction_writes_a_whole_step() {
                super::a_transaction_writes_a_whole_step($make);
            }

            #[test]
            fn a_rollback_step_rewinds_and_records() {
                super::a_rollback_step_rewinds_and_records($make);
            }

            #[test]
            fn devices_are_seen_by_their_messages() {
                super::devices_are_seen_by_their_messages($make);
            }

            #[test]
            fn a_step_of_copies_writes_nothing() {
                super::a_step_of_copies_writes_nothing($make);
            }

            #[test]
            fn an_empty_message_leaves_a_failures_ids_alone() {
                super::an_empty_message_leaves_a_failures_ids_alone($make);
            }

            #[test]
            fn a_repair_whose_records_are_copies_is_still_committed() {
                super::a_repair_whose_records_are_copies_is_still_committed($make);
            }

            #[test]
            fn rooms_are_kept_and_forgotten() {
                super::rooms_are_kept_and_forgotten($make);
            }

            #[test]
            fn device_lists_of_new_ids_do_not_grow_the_store() {
                super::device_lists_of_new_ids_do_not_grow_the_store($make);
            }
        }
    };
}

contract!(memory, MemoryStore::new());
contract!(sqlite_in_memory, SqliteStore::open_in_memory().unwrap());
contract!(
    sqlite_file,
    SqliteStore::open(fresh_path(), &Default::default()).unwrap()
);

/// A new file name under cargo's per-target scratch directory.
fn fresh_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!(
        "contract-{}-{}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}
