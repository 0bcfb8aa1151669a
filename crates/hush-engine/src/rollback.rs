//! A store rolled back behind Hush's back: found where the server shows it, repaired as a
//! restore is.
//!
//! Putting back an older store — a filesystem or VM snapshot, an old copy of the home
//! directory, a sync tool restoring a previous version — rewinds every session exactly as
//! restoring a backup does, but nothing marks them: the next message would take message keys
//! the peer already saw used (two plaintexts under one key), and one-time prekeys a later
//! state already handed out would be published again. The store cannot tell by itself; what
//! this device did after the copy was made is only visible on the server:
//!
//! * **Our published bundle** ([`Engine::check_rollback`]). Every bundle this device publishes
//!   was saved in the store first (the shell commits, then publishes). So a bundle for this
//!   device, under our identity key, holding a one-time prekey id the store never issued
//!   (at or above its next id) or a key the store does not have under an id it did issue, or
//!   a validly signed prekey newer than the store's, was made by a later state of this store.
//! * **Our own messages in the archive** ([`Engine::check_rollback`] for the newest ones at
//!   connect, [`Engine::receive`] for every one a catch-up reads). Every message this device
//!   sends is committed to history (with its XEP-0359 origin id) before it is transmitted, and
//!   history is never pruned. So a message in our archive sent by this very device, with a
//!   payload, that the store does not know was sent by a later state of this store. (Empty
//!   messages are not in history, and are left out.)
//!
//! On either, the repair is what a restore does: every session is marked rewound (the engine
//! then never encrypts on one, see [`crate::send`]), the prekeys the later state had already
//! handed out are recorded as used (retired at the next bundle maintenance), the lost sent
//! messages are kept in history as sent with their text gone (so they are found only once),
//! and the user is told loudly, once. Work goes on.
//!
//! What this cannot see, and why, is in the README ("Rollbacks"): a rollback to a point after
//! the last publication with no message sent since, and anything a hostile server hides. A
//! hostile server can also fake either sign (one-time prekeys are not signed; it can make up
//! an archived message from our device id): that costs new sessions and a false warning, never
//! a reused key.

use hush_proto::policy::Properties;
use hush_proto::{Bundle, LocalDevice, Suite};
use hush_store::{Failure, Outcome, Received, Store, Transaction};

use crate::receive::{After, Inbound, InboundPayload, ReceiveStep};
use crate::{Delivery, Engine, Result, Warning};

/// A store found rolled back: the transaction that repairs it, and what to tell the user.
/// Commit the transaction, then hand the rest to [`Engine::rollback_repaired`].
#[derive(Debug)]
#[must_use = "commit the transaction, then call Engine::rollback_repaired"]
pub struct Rollback {
    /// Rewinds every session, records the prekeys a later state handed out as used, and keeps
    /// the lost sent messages in history.
    pub transaction: Transaction,
    repaired: Repaired,
}

/// What [`Engine::rollback_repaired`] needs once a [`Rollback`]'s transaction is committed.
#[derive(Debug)]
pub struct Repaired {
    notice: Delivery,
    used_prekeys: bool,
}

impl Rollback {
    /// The transaction, and what to hand [`Engine::rollback_repaired`] after committing it.
    pub fn into_parts(self) -> (Transaction, Repaired) {
        (self.transaction, self.repaired)
    }

    /// Why the store is taken to be rolled back (the evidence the notice carries).
    pub fn evidence(&self) -> &str {
        match &self.repaired.notice.failure {
            Some(Failure::RolledBack { evidence }) => evidence,
            _ => "",
        }
    }
}

/// What the user is told, once, when a rollback is found.
pub const ROLLBACK_WARNING: &str = "THIS STORE WAS ROLLED BACK: it is older than what this \
device already did (it was put back from a snapshot or an old copy, or a backup was restored). \
Every session is now marked rewound, so the next message to each contact starts a new session \
instead of reusing message keys; contacts may see a new key exchange from this device. \
Messages from after that copy are back only as far as the server's archive still holds them.";

impl Engine {
    /// Looks for signs that the store is older than what this device already did, in what the
    /// shell fetched just before: `published`, this device's bundles as the server holds them
    /// (any suite; others' are ignored), and `archive`, the newest messages of our archive.
    /// Read the store only after fetching them: a process that publishes or sends meanwhile
    /// commits first, so what is fetched is never ahead of the store unless the store went
    /// back. `None`: no sign (which does not prove there was no rollback, see the module docs).
    pub fn check_rollback<S: Store + ?Sized>(
        &self,
        store: &S,
        published: &[Bundle],
        archive: &[Inbound],
        now: u64,
    ) -> Result<Option<Rollback>> {
        // The device as stored, not as this engine loaded it: the store is what is compared.
        let device = match store.account()? {
            Some(account) => account.device,
            None => return Ok(None),
        };
        let mut evidence = Vec::new();
        let mut handed_out = Vec::new();
        for bundle in published {
            if let Some(found) = bundle_evidence(&device, bundle) {
                evidence.push(found);
                // The prekeys this store still offers that the later state no longer did:
                // it handed them out. Offered again, two key exchanges would share one.
                for (id, _) in device.bundle(bundle.suite).prekeys {
                    let still_offered = bundle.prekeys.iter().any(|(p, _)| *p == id);
                    if !still_offered && !handed_out.contains(&id) {
                        handed_out.push(id);
                    }
                }
            }
        }
        let mut lost = Vec::new();
        for inbound in archive {
            if let Some(record) = self.lost_sent(store, inbound, now)? {
                lost.push(record);
            }
        }
        if !lost.is_empty() {
            evidence.push(format!(
                "the server's archive holds {} message(s) this device sent that the store has \
                 no record of",
                lost.len()
            ));
        }
        if evidence.is_empty() {
            return Ok(None);
        }
        handed_out.sort_unstable();
        let used_prekeys = !handed_out.is_empty();
        Ok(Some(Rollback {
            transaction: Transaction {
                rewind_sessions: true,
                used_prekeys: handed_out,
                received: lost,
                ..Transaction::default()
            },
            repaired: Repaired {
                notice: self.notice(evidence.join("; ")),
                used_prekeys,
            },
        }))
    }

    /// A [`Rollback`]'s transaction was committed: the rollback is repaired (later lost
    /// messages found in this run are only recorded), the prekeys it named are retired at the
    /// next bundle maintenance, and this is the notice to show the user.
    pub fn rollback_repaired(&mut self, repaired: Repaired) -> Delivery {
        self.rollback_seen = true;
        if repaired.used_prekeys {
            self.prekeys_used = true;
        }
        repaired.notice
    }

    /// Whether a rollback was found and repaired during this engine's life.
    pub fn rollback_seen(&self) -> bool {
        self.rollback_seen
    }

    /// The receive step for a message that [`Engine::receive`] found to be sent by this very
    /// device and unknown to the store: it is recorded as a lost sent message and, the first
    /// time in this engine's life, the store is repaired and the user warned.
    pub(crate) fn lost_sent_step(&self, record: Received) -> ReceiveStep {
        let failure = Failure::LostSent {
            to: record.peer.clone(),
        };
        let first = !self.rollback_seen;
        let delivery = Delivery {
            from: self.jid.clone(),
            device: self.device_id(),
            suite: Some(record.suite),
            body: None,
            failure: Some(failure),
            trust: None,
            properties: Properties::PLAINTEXT,
            warning: first.then_some(Warning::RolledBack),
            file: None,
            new_key: None,
            atm: None,
            sas: None,
            arrival: crate::Arrival {
                to: record.peer.clone(),
                at: Some(record.at),
                delayed: true,
                id: record
                    .ids
                    .origin_id
                    .clone()
                    .or_else(|| record.ids.stanza_id.clone()),
                ..crate::Arrival::default()
            },
        };
        let transaction = Transaction {
            rewind_sessions: first,
            received: vec![record],
            ..Transaction::default()
        };
        ReceiveStep::new(transaction, After::rollback(delivery, first))
    }

    /// The history record of `inbound` if it is a message this device sent, with a payload,
    /// that the store does not know: a sign of rollback.
    pub(crate) fn lost_sent<S: Store + ?Sized>(
        &self,
        store: &S,
        inbound: &Inbound,
        now: u64,
    ) -> Result<Option<Received>> {
        let InboundPayload::Omemo(Ok(element)) = &inbound.payload else {
            return Ok(None);
        };
        if inbound.sender != self.jid
            || element.sid != self.device_id()
            || element.payload.is_none()
        {
            return Ok(None);
        }
        // Recognised exactly as `receive` recognises copies: by ids, or by the digest every
        // sent message is stored with (a replay under new ids is no sign of anything).
        let mut ids = inbound.ids.clone();
        ids.digest = element.digest_for(&self.jid, self.device_id(), &inbound.sender);
        if store.is_known(&inbound.sender, &ids)? {
            return Ok(None);
        }
        Ok(Some(Received {
            ids,
            peer: inbound.peer.clone(),
            sender: inbound.sender.clone(),
            sender_device: element.sid,
            suite: element.suite,
            at: crate::receive::arrival_time(store, &inbound.peer, inbound.sent_at, now)?,
            outcome: Outcome::LostSent,
        }))
    }

    fn notice(&self, evidence: String) -> Delivery {
        Delivery {
            from: self.jid.clone(),
            device: self.device_id(),
            suite: None,
            body: None,
            failure: Some(Failure::RolledBack { evidence }),
            trust: None,
            properties: Properties::PLAINTEXT,
            warning: Some(Warning::RolledBack),
            file: None,
            new_key: None,
            atm: None,
            sas: None,
            // A notice about this device, not a message: no time, no id.
            arrival: crate::Arrival {
                to: self.jid.clone(),
                ..crate::Arrival::default()
            },
        }
    }
}

/// Why `published` shows a later state of `device` than the stored one, if it does. Only a
/// bundle of this device under our identity key counts (another key under our id is the
/// device-id collision that announcing refuses).
fn bundle_evidence(device: &LocalDevice, published: &Bundle) -> Option<String> {
    if published.device_id != device.device_id()
        || !published.identity.same_identity(device.identity().public())
    {
        return None;
    }
    let suite = published.suite;
    let next = device.next_prekey_id();
    for (id, key) in &published.prekeys {
        match device.prekey_public(*id) {
            Some(held) if held == *key => {}
            Some(_) => {
                return Some(format!(
                    "our published {suite} bundle holds one-time prekey {id} with a key this \
                     store does not have"
                ))
            }
            // Issued by this store and forgotten since: not a sign of anything.
            None if *id < next => {}
            None => {
                return Some(format!(
                    "our published {suite} bundle holds one-time prekey {id}, which this store \
                     never issued (its next id is {next})"
                ))
            }
        }
    }
    signed_prekey_evidence(device, published)
}

/// Why the signed prekey of `published` shows a later state of `device`, if it does. Only a
/// signature by our identity key counts: nobody else can make one, whereas anyone on the
/// server can write ids and keys.
fn signed_prekey_evidence(device: &LocalDevice, published: &Bundle) -> Option<String> {
    let current = device.signed_prekey();
    let held = [Some(current), device.old_signed_prekey()]
        .into_iter()
        .flatten()
        .find(|s| s.id == published.spk_id);
    let newer = match held {
        Some(s) => s.pair.public() != published.spk,
        None => published.spk_id > current.id,
    };
    if !newer || published.verify().is_err() {
        return None;
    }
    let suite: Suite = published.suite;
    Some(format!(
        "our published {suite} bundle holds signed prekey {}, which this store does not have \
         (its newest is {})",
        published.spk_id, current.id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::{seal, EncryptedElement, Recipient, Session};
    use hush_store::{Commit, Committed, MemoryStore, MessageIds, SessionKey};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const ME: &str = "me@example.org";
    const PEER: &str = "peer@example.net";

    struct World {
        engine: Engine,
        store: MemoryStore,
        peer: LocalDevice,
        rng: StdRng,
    }

    /// This device (id 7, 10 prekeys) with a session to the peer's device 9.
    fn world() -> World {
        let mut rng = StdRng::seed_from_u64(42);
        let me = LocalDevice::generate(7, 10, 0, &mut rng).unwrap();
        let peer = LocalDevice::generate(9, 10, 0, &mut rng).unwrap();
        let mut store = MemoryStore::new();
        store.create_account(ME, &me).unwrap();
        let session =
            Session::initiate(me.identity(), &peer.bundle(Suite::Omemo2), &mut rng).unwrap();
        store
            .save_sessions(&[(SessionKey::new(Suite::Omemo2, PEER, 9), session)])
            .unwrap();
        World {
            engine: Engine::new(ME, me),
            store,
            peer,
            rng,
        }
    }

    impl World {
        fn device(&self) -> LocalDevice {
            self.store.account().unwrap().unwrap().device
        }

        /// A message this device sends to the peer, as our archive returns it.
        fn sent(&mut self, origin: &str, text: Option<&str>) -> Inbound {
            let key = SessionKey::new(Suite::Omemo2, PEER, 9);
            let mut session = self.store.session(&key).unwrap().unwrap();
            let element: EncryptedElement = seal(
                Suite::Omemo2,
                7,
                text.map(str::as_bytes),
                &mut [Recipient {
                    jid: PEER,
                    device_id: 9,
                    session: &mut session,
                }],
                &mut self.rng,
            )
            .unwrap();
            Inbound {
                nick: None,
                sender: ME.into(),
                peer: PEER.into(),
                payload: InboundPayload::Omemo(Ok(element)),
                ids: MessageIds {
                    archive: Some(ME.into()),
                    stanza_id: Some(format!("archive-{origin}")),
                    origin_id: Some(origin.into()),
                    digest: None,
                },
                sent_at: Some(crate::ServerStamp::Archive(500)),
                sender_bundle: None,
                control: false,
            }
        }

        fn check(&self, published: &[Bundle], archive: &[Inbound]) -> Option<Rollback> {
            self.engine
                .check_rollback(&self.store, published, archive, 1000)
                .unwrap()
        }

        fn commit(&mut self, rollback: Rollback) -> Delivery {
            let (tx, repaired) = rollback.into_parts();
            self.store.commit(tx).unwrap();
            self.engine.rollback_repaired(repaired)
        }
    }

    #[test]
    fn the_bundle_the_store_would_publish_is_no_sign() {
        let w = world();
        let device = w.device();
        assert!(w
            .check(&Suite::ALL.map(|s| device.bundle(s)), &[])
            .is_none());
    }

    #[test]
    fn an_older_bundle_is_no_sign() {
        // The store moved on (prekeys retired and refilled, signed prekey rotated) and the
        // server still has the bundle from before: a failed publication, not a rollback.
        let mut w = world();
        let older = w.device().bundle(Suite::Omemo2);
        let mut device = w.device();
        device.retire_prekey(1, 10);
        device.forget_retired_prekeys(11);
        device.refill_prekeys(10, &mut w.rng);
        device.rotate_signed_prekey(20, &mut w.rng);
        w.store.save_device(&device).unwrap();
        assert!(w.check(&[older], &[]).is_none());
    }

    #[test]
    fn prekeys_the_store_never_issued_are_a_rollback() {
        let mut w = world();
        // The later state used prekey 1, retired it and refilled with id 11.
        let mut later = w.device();
        later.retire_prekey(1, 10);
        later.refill_prekeys(10, &mut w.rng);
        let published = later.bundle(Suite::Omemo2);
        let found = w.check(&[published], &[]).expect("a rollback");
        assert!(
            found.evidence().contains("one-time prekey 11"),
            "{}",
            found.evidence()
        );
        assert!(found.transaction.rewind_sessions);
        assert_eq!(
            found.transaction.used_prekeys,
            [1],
            "the prekey the later state handed out is retired"
        );
        let notice = w.commit(found);
        assert!(matches!(notice.warning, Some(Warning::RolledBack)));
        assert_eq!(
            w.store.sessions_needing_reset().unwrap(),
            [SessionKey::new(Suite::Omemo2, PEER, 9)]
        );
        assert_eq!(w.store.used_prekeys().unwrap(), [1]);
        assert!(w.engine.rollback_seen());
        assert!(w.engine.prekeys_to_retire());
    }

    #[test]
    fn another_key_under_an_issued_prekey_id_is_a_rollback() {
        let mut w = world();
        let mut published = w.device().bundle(Suite::Omemo2);
        published.prekeys[0].1 = LocalDevice::generate(3, 0, 0, &mut w.rng)
            .unwrap()
            .signed_prekey()
            .pair
            .public();
        let found = w.check(&[published], &[]).expect("a rollback");
        assert!(found
            .evidence()
            .contains("with a key this store does not have"));
    }

    #[test]
    fn a_newer_signed_prekey_counts_only_with_our_signature() {
        let mut w = world();
        let mut later = w.device();
        later.rotate_signed_prekey(8 * 86_400, &mut w.rng);
        let published = later.bundle(Suite::Legacy);
        let found = w
            .check(std::slice::from_ref(&published), &[])
            .expect("a rollback");
        assert!(
            found.evidence().contains("signed prekey 2"),
            "{}",
            found.evidence()
        );
        assert!(
            found.transaction.used_prekeys.is_empty(),
            "no prekey was handed out"
        );

        // The same id and key, signed by someone else: anyone on the server can write that.
        let mut forged = published;
        forged.spk_signature[5] ^= 1;
        assert!(w.check(&[forged], &[]).is_none());
    }

    #[test]
    fn another_devices_bundle_is_no_sign() {
        let mut w = world();
        let mut later = w.device();
        later.refill_prekeys(20, &mut w.rng);
        let mut published = later.bundle(Suite::Omemo2);
        published.identity = *w.peer.identity().public();
        assert!(w.check(&[published.clone()], &[]).is_none(), "another key");
        let mut published = later.bundle(Suite::Omemo2);
        published.device_id = 8;
        assert!(w.check(&[published], &[]).is_none(), "another device id");
    }

    #[test]
    fn a_sent_message_the_store_does_not_know_is_a_rollback_and_is_found_once() {
        let mut w = world();
        let known = w.sent("hush-known", Some("stored before sending"));
        // What the shell commits before transmitting: the history entry with its origin id.
        let out = hush_store::Outgoing {
            ids: MessageIds {
                origin_id: Some("hush-known".into()),
                ..Default::default()
            },
            peer: PEER.into(),
            sender: ME.into(),
            sender_device: 7,
            suite: Suite::Omemo2,
            at: 400,
            body: b"stored before sending".to_vec(),
            encrypted: true,
            stanza: Vec::new(),
        };
        w.store.commit_outgoing(&[], &out).unwrap();
        let empty = w.sent("hush-empty", None);
        assert!(
            w.check(&[], &[known.clone(), empty.clone()]).is_none(),
            "known messages and empty ones are no sign"
        );

        let lost = w.sent("hush-lost", Some("sent by a later state"));
        let found = w
            .check(&[], &[known.clone(), lost.clone(), empty])
            .expect("a rollback");
        assert!(found.evidence().contains("1 message(s)"));
        let notice = w.commit(found);
        assert!(notice.warning.is_some());
        assert_eq!(w.store.sessions_needing_reset().unwrap().len(), 1);
        let entry = w.store.history(PEER, 1).unwrap().pop().unwrap();
        assert_eq!(entry.direction, hush_store::Direction::Out);
        assert_eq!(entry.failure, Some(Failure::LostSent { to: PEER.into() }));
        assert!(
            w.check(&[], &[known, lost]).is_none(),
            "recorded, it is not found again"
        );
    }

    #[test]
    fn messages_of_our_other_devices_and_peers_are_no_sign() {
        let mut w = world();
        let mut other = w.sent("hush-other", Some("from device 8"));
        if let InboundPayload::Omemo(Ok(el)) = &mut other.payload {
            el.sid = 8;
        }
        let mut theirs = w.sent("hush-theirs", Some("from the peer"));
        theirs.sender = PEER.into();
        assert!(w.check(&[], &[other, theirs]).is_none());
    }

    /// A key exchange from `jid`'s device `id`, to this device, as it arrives.
    fn key_exchange(w: &mut World, jid: &str, id: u32, origin: &str) -> Inbound {
        let them = LocalDevice::generate(id, 1, 0, &mut w.rng).unwrap();
        let mine = w.device().bundle(Suite::Omemo2);
        let mut session = Session::initiate(them.identity(), &mine, &mut w.rng).unwrap();
        let envelope =
            hush_proto::sce::seal(&[hush_proto::sce::body("hi")], jid, ME, Some(1), &mut w.rng)
                .unwrap();
        let element = seal(
            Suite::Omemo2,
            id,
            Some(&envelope),
            &mut [Recipient {
                jid: ME,
                device_id: 7,
                session: &mut session,
            }],
            &mut w.rng,
        )
        .unwrap();
        Inbound {
            sender: jid.into(),
            peer: jid.into(),
            nick: None,
            payload: InboundPayload::Omemo(Ok(element)),
            ids: MessageIds {
                origin_id: Some(origin.into()),
                ..Default::default()
            },
            sent_at: None,
            sender_bundle: None,
            control: false,
        }
    }

    #[test]
    fn after_a_rollback_sessions_rebuilt_from_the_archive_are_rewound() {
        let mut w = world();
        let mut rng = StdRng::seed_from_u64(3);
        let mut receive = |w: &mut World, inbound: Inbound| {
            let (tx, after) = w
                .engine
                .receive(&w.store, inbound, 1000, &mut rng)
                .unwrap()
                .into_parts();
            let rewound = tx.rewound_sessions.clone();
            let committed = w.store.commit(tx).unwrap();
            let shown = w.engine.settle(after, &committed).expect("shown");
            assert_eq!(shown.body.as_deref(), Some("hi"), "{shown:?}");
            rewound
        };
        let carol = SessionKey::new(Suite::Omemo2, "carol@example.com", 31);
        let dave = SessionKey::new(Suite::Omemo2, "dave@example.com", 41);
        let erin = SessionKey::new(Suite::Omemo2, "erin@example.com", 51);

        // Before any rollback, a catch-up's key exchange builds an ordinary session.
        w.engine.begin_catch_up();
        let first = key_exchange(&mut w, &carol.jid, 31, "k1");
        assert!(receive(&mut w, first).is_empty());

        let lost = w.sent("hush-lost", Some("lost"));
        let found = w.check(&[], &[lost]).expect("a rollback");
        let _ = w.commit(found);
        // The lost state may have answered this one: rebuilt, it must not be sent on.
        let again = key_exchange(&mut w, &dave.jid, 41, "k2");
        assert_eq!(receive(&mut w, again), std::slice::from_ref(&dave));
        w.engine.end_catch_up();
        // A live key exchange came after the lost state: nothing to fear.
        let live = key_exchange(&mut w, &erin.jid, 51, "k3");
        assert!(receive(&mut w, live).is_empty());

        let rewound = w.store.sessions_needing_reset().unwrap();
        assert!(rewound.contains(&carol) && rewound.contains(&dave));
        assert!(!rewound.contains(&erin));
        let owed = crate::Owed {
            suite: Suite::Omemo2,
            jid: dave.jid.clone(),
            device: 41,
        };
        assert!(
            w.engine
                .prepare_empty(&w.store, &owed, &mut w.rng)
                .unwrap()
                .is_none(),
            "no empty answer goes out on a rebuilt session"
        );
    }

    #[test]
    fn receive_finds_a_lost_message_warns_once_and_keeps_working() {
        let mut w = world();
        let first = w.sent("hush-lost-1", Some("one"));
        let second = w.sent("hush-lost-2", Some("two"));
        let mut rng = StdRng::seed_from_u64(1);

        let step = w
            .engine
            .receive(&w.store, first.clone(), 1000, &mut rng)
            .unwrap();
        let (tx, after) = step.into_parts();
        assert!(tx.rewind_sessions);
        let committed = w.store.commit(tx).unwrap();
        let shown = w.engine.settle(after, &committed).expect("shown");
        assert!(shown.warning.is_some() && shown.failure.is_some());
        assert_eq!(w.store.sessions_needing_reset().unwrap().len(), 1);

        // A fresh session built meanwhile is not rewound by the next lost message.
        let fresh = SessionKey::new(Suite::Omemo2, PEER, 9);
        let session = w.store.session(&fresh).unwrap().unwrap();
        w.store.save_sessions(&[(fresh, session)]).unwrap();
        let (tx, after) = w
            .engine
            .receive(&w.store, second, 1000, &mut rng)
            .unwrap()
            .into_parts();
        assert!(!tx.rewind_sessions, "repaired once");
        let committed = w.store.commit(tx).unwrap();
        let shown = w
            .engine
            .settle(after, &committed)
            .expect("recorded and shown");
        assert!(shown.warning.is_none(), "warned once");
        assert!(w.store.sessions_needing_reset().unwrap().is_empty());

        // A copy read again is a duplicate.
        let (tx, after) = w
            .engine
            .receive(&w.store, first, 1000, &mut rng)
            .unwrap()
            .into_parts();
        let committed = if tx.is_empty() {
            Committed::default()
        } else {
            w.store.commit(tx).unwrap()
        };
        assert!(w.engine.settle(after, &committed).is_none());
        assert!(committed.received.iter().all(|c| *c == Commit::Duplicate));
    }
}
