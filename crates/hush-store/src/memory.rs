//! An in-memory [`Store`] for tests. Same contract as the SQLite store; "transactions" hold
//! because every method computes its result before changing anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};

use hush_proto::policy::TrustModel;
use hush_proto::{IdentityKey, LocalDevice, Session, Suite};

use crate::dedup::{authenticated, Known, Verdict};
use crate::error::{Result, StoreError};
use crate::types::{
    Commit, ConversationRecord, DeviceRecord, Direction, HeldTrust, MessageIds, Outcome, Outgoing,
    Pending, QueuedTrustMessage, Received, SessionKey, StoredMessage, Trust, TrustSource,
};
use crate::{Account, Failure, Room, Store};

/// A store that lives only as long as the value.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    account: Option<Account>,
    sessions: BTreeMap<SessionKey, Session>,
    needs_reset: BTreeSet<SessionKey>,
    messages: Vec<StoredMessage>,
    outbox: BTreeMap<i64, Vec<u8>>,
    used_prekeys: BTreeSet<u32>,
    /// `(jid, Curve25519 form)` → the decision, the key, who decided.
    trust: BTreeMap<(String, [u8; 32]), (Trust, IdentityKey, TrustSource)>,
    held_trust: Vec<HeldTrust>,
    trust_outbox: BTreeMap<i64, (String, String)>,
    published_keys: BTreeMap<(String, u32), IdentityKey>,
    devices: BTreeMap<(Suite, String), BTreeMap<u32, DeviceRecord>>,
    conversations: BTreeMap<String, ConversationRecord>,
    trust_model: TrustModel,
    archive_resume: BTreeMap<String, String>,
    archive_start: Option<u64>,
    /// The ids each stored message can be recognised by (the SQLite store's indexes).
    index: IdIndex,
    /// Strangers' budgets: jid → (window, spent, notified).
    strangers: BTreeMap<String, (u64, u32, bool)>,
    rooms: BTreeMap<String, Room>,
}

/// One way a message can be recognised when it arrives again, borrowed from what arrived:
/// looking one up allocates nothing (this store sits on the receive path of the engine's
/// benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdKey<'a> {
    /// XEP-0359 stanza id, unique within its archive.
    Stanza(Option<&'a str>, &'a str),
    /// XEP-0359 origin id, unique per sender.
    Origin(&'a str, &'a str),
    /// Content digest, per sender.
    Digest(&'a str, &'a [u8; 32]),
}

fn id_keys<'a>(sender: &'a str, ids: &'a MessageIds) -> impl Iterator<Item = IdKey<'a>> {
    let stanza = ids
        .stanza_id
        .as_deref()
        .map(|sid| IdKey::Stanza(ids.archive.as_deref(), sid));
    let origin = ids
        .origin_id
        .as_deref()
        .map(|oid| IdKey::Origin(sender, oid));
    let digest = ids.digest.as_ref().map(|d| IdKey::Digest(sender, d));
    stanza.into_iter().chain(origin).chain(digest)
}

/// Message ids by [`IdKey`]. Keys are hashed, not stored: each bucket keeps the messages
/// whose keys hash alike, and a hit is confirmed against the message's own ids.
#[derive(Debug, Default, Clone)]
struct IdIndex {
    hasher: RandomState,
    buckets: HashMap<u64, Vec<i64>>,
}

impl IdIndex {
    fn hash(&self, key: IdKey<'_>) -> u64 {
        self.hasher.hash_one(key)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored message with history id `id` (ids count from 1, in order).
    fn message(&self, id: i64) -> Option<&StoredMessage> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.messages.get(i))
    }

    fn known(&self, sender: &str, ids: &MessageIds) -> Known {
        let mut known = Known::default();
        // At most three keys, each naming few messages: a sorted vector, not a set.
        let mut hits: Vec<i64> = Vec::new();
        for key in id_keys(sender, ids) {
            let Some(bucket) = self.index.buckets.get(&self.index.hash(key)) else {
                continue;
            };
            hits.extend(bucket.iter().copied().filter(|&id| {
                self.message(id)
                    .is_some_and(|m| id_keys(&m.sender, &m.ids).any(|k| k == key))
            }));
        }
        hits.sort_unstable();
        hits.dedup();
        for m in hits.into_iter().filter_map(|id| self.message(id)) {
            if authenticated(m) {
                known.authenticated = true;
            } else {
                known.unauthenticated.push(m.id);
            }
        }
        known
    }

    fn push(&mut self, mut m: StoredMessage) -> i64 {
        m.id = self.messages.len() as i64 + 1;
        let id = m.id;
        for k in id_keys(&m.sender, &m.ids) {
            let bucket = self.index.buckets.entry(self.index.hash(k)).or_default();
            if !bucket.contains(&id) {
                bucket.push(id);
            }
        }
        self.messages.push(m);
        id
    }

    /// Takes the ids away from stored message `id` (a real message supersedes it).
    fn forget_ids(&mut self, id: i64) {
        let Some(m) = usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.messages.get_mut(i))
        else {
            return;
        };
        for k in id_keys(&m.sender, &m.ids) {
            let h = self.index.hash(k);
            if let Some(bucket) = self.index.buckets.get_mut(&h) {
                bucket.retain(|&other| other != id);
                if bucket.is_empty() {
                    self.index.buckets.remove(&h);
                }
            }
        }
        m.ids = MessageIds::default();
    }
}

impl Store for MemoryStore {
    fn account(&self) -> Result<Option<Account>> {
        Ok(self.account.clone())
    }

    fn create_account(&mut self, jid: &str, device: &LocalDevice) -> Result<()> {
        if let Some(a) = &self.account {
            return Err(StoreError::AccountExists(a.jid.clone()));
        }
        self.account = Some(Account {
            jid: jid.to_owned(),
            device: device.clone(),
        });
        Ok(())
    }

    fn save_device(&mut self, device: &LocalDevice) -> Result<()> {
        self.account.as_mut().ok_or(StoreError::NoAccount)?.device = device.clone();
        Ok(())
    }

    fn session(&self, key: &SessionKey) -> Result<Option<Session>> {
        Ok(self.sessions.get(key).cloned())
    }

    fn sessions_of(&self, suite: Suite, jid: &str) -> Result<Vec<(u32, Session)>> {
        Ok(self
            .sessions
            .iter()
            .filter(|(k, _)| k.suite == suite && k.jid == jid)
            .map(|(k, s)| (k.device_id, s.clone()))
            .collect())
    }

    fn save_sessions(&mut self, sessions: &[(SessionKey, Session)]) -> Result<()> {
        for (k, s) in sessions {
            self.needs_reset.remove(k);
            self.sessions.insert(k.clone(), s.clone());
        }
        Ok(())
    }

    fn delete_session(&mut self, key: &SessionKey) -> Result<()> {
        self.sessions.remove(key);
        self.needs_reset.remove(key);
        Ok(())
    }

    fn sessions_needing_reset(&self) -> Result<Vec<SessionKey>> {
        Ok(self.needs_reset.iter().cloned().collect())
    }

    fn last_archive_id(&self, archive: &str) -> Result<Option<String>> {
        Ok(self
            .messages
            .iter()
            .rev()
            .find(|m| m.ids.archive.as_deref() == Some(archive) && m.ids.stanza_id.is_some())
            .and_then(|m| m.ids.stanza_id.clone()))
    }

    fn archive_resume(&self, archive: &str) -> Result<Option<String>> {
        Ok(self.archive_resume.get(archive).cloned())
    }

    fn set_archive_resume(&mut self, archive: &str, stanza_id: &str) -> Result<()> {
        self.archive_resume
            .insert(archive.to_owned(), stanza_id.to_owned());
        Ok(())
    }

    fn archive_start(&self) -> Result<Option<u64>> {
        Ok(self.archive_start)
    }

    fn set_archive_start(&mut self, at: u64) -> Result<()> {
        self.archive_start.get_or_insert(at);
        Ok(())
    }

    fn is_known(&self, sender: &str, ids: &MessageIds) -> Result<bool> {
        Ok(self.known(sender, ids).authenticated)
    }

    fn holds(&self, sender: &str, ids: &MessageIds) -> Result<bool> {
        let known = self.known(sender, ids);
        Ok(known.authenticated || !known.unauthenticated.is_empty())
    }

    fn commit_received(&mut self, batch: Vec<Received>) -> Result<Vec<Commit>> {
        let mut results = Vec::with_capacity(batch.len());
        for r in batch {
            let known = self.known(&r.sender, &r.ids);
            match known.verdict(&r.outcome) {
                Verdict::Duplicate => {
                    results.push(Commit::Duplicate);
                    continue;
                }
                Verdict::Supersede => {
                    for id in &known.unauthenticated {
                        self.forget_ids(*id);
                    }
                }
                Verdict::New => {}
            }
            let plain = matches!(r.outcome, Outcome::Plaintext { .. });
            let (body, failure) = match r.outcome {
                Outcome::Decrypted {
                    session,
                    body,
                    consumed_prekey,
                } => {
                    let key = SessionKey::new(r.suite, &r.sender, r.sender_device);
                    // Only a device some list named has a row (see `Store::commit_received`).
                    if let Some(seen) = self
                        .devices
                        .get_mut(&(r.suite, r.sender.clone()))
                        .and_then(|known| known.get_mut(&r.sender_device))
                    {
                        seen.last_seen = seen.last_seen.max(r.at);
                    }
                    // A rewound session stays marked: reading does not move its sending chain.
                    self.sessions.insert(key, *session);
                    if let Some(pk) = consumed_prekey {
                        self.used_prekeys.insert(pk);
                    }
                    match body {
                        Some(b) => (Some(b), None),
                        None => {
                            results.push(Commit::Stored(0));
                            continue;
                        }
                    }
                }
                Outcome::Failed { failure } => (None, Some(failure)),
                Outcome::Plaintext { body } => (Some(body), None),
                Outcome::LostSent => {
                    let id = self.push(StoredMessage {
                        id: 0,
                        direction: Direction::Out,
                        peer: r.peer.clone(),
                        sender: r.sender,
                        sender_device: r.sender_device,
                        suite: r.suite,
                        body: None,
                        failure: Some(Failure::LostSent { to: r.peer }),
                        encrypted: true,
                        at: r.at,
                        ids: r.ids,
                    });
                    results.push(Commit::Stored(id));
                    continue;
                }
            };
            let id = self.push(StoredMessage {
                id: 0,
                direction: Direction::In,
                peer: r.peer,
                sender: r.sender,
                sender_device: r.sender_device,
                suite: r.suite,
                body,
                failure,
                encrypted: !plain,
                at: r.at,
                ids: r.ids,
            });
            results.push(Commit::Stored(id));
        }
        Ok(results)
    }

    fn stranger_usage(&self, jid: &str, window: u64) -> Result<crate::StrangerUsage> {
        let current = self.strangers.values().filter(|(w, _, _)| *w == window);
        let (spent, notified) = match self.strangers.get(jid) {
            Some((w, spent, notified)) if *w == window => (*spent, *notified),
            _ => (0, false),
        };
        Ok(crate::StrangerUsage {
            spent,
            notified,
            total: current.clone().map(|(_, s, _)| *s).sum(),
            tracked: current.count(),
        })
    }

    fn commit(&mut self, tx: crate::Transaction) -> Result<crate::Committed> {
        // A step whose messages are all copies of stored ones writes nothing (see
        // `Transaction::received`).
        if tx.is_receive_step()
            && tx
                .received
                .iter()
                .all(|r| self.known(&r.sender, &r.ids).verdict(&r.outcome) == Verdict::Duplicate)
        {
            return Ok(crate::Committed {
                received: vec![Commit::Duplicate; tx.received.len()],
                outgoing: None,
            });
        }
        // Nothing below fails for an in-memory store, so the steps cannot stop halfway.
        if tx.rewind_sessions {
            self.needs_reset.extend(self.sessions.keys().cloned());
        }
        self.used_prekeys.extend(tx.used_prekeys.iter().copied());
        for k in &tx.new_keys {
            if self.trust(&k.jid, &k.identity)?.is_none() {
                self.set_trust(&k.jid, &k.identity, k.trust, k.at)?;
            }
        }
        for c in &tx.trust_changes {
            self.trust.insert(
                (c.jid.clone(), c.identity.curve25519()),
                (c.trust, c.identity, c.source.clone()),
            );
        }
        for (sender, key) in &tx.released_trust {
            self.held_trust
                .retain(|h| !(h.sender == *sender && h.sender_key.same_identity(key)));
        }
        for h in &tx.held_trust {
            self.held_trust.retain(|o| {
                !(o.sender == h.sender
                    && o.sender_key.same_identity(&h.sender_key)
                    && o.owner == h.owner
                    && o.key.same_identity(&h.key))
            });
            self.held_trust.push(h.clone());
        }
        for (to, element) in &tx.trust_messages {
            let id = self.trust_outbox.keys().next_back().map_or(1, |i| i + 1);
            self.trust_outbox.insert(id, (to.clone(), element.clone()));
        }
        for l in &tx.device_lists {
            self.set_device_list(l.suite, &l.jid, &l.devices, l.at)?;
        }
        for (jid, change) in &tx.conversations {
            let record = change.apply(self.conversation(jid)?);
            self.set_conversation(jid, &record)?;
        }
        self.save_sessions(&tx.sessions)?;
        if let Some(c) = &tx.stranger {
            self.strangers.retain(|_, (w, _, _)| *w >= c.window);
            self.strangers
                .insert(c.jid.clone(), (c.window, c.spent, c.notified));
        }
        let received = self.commit_received(tx.received)?;
        let outgoing = match &tx.outgoing {
            Some((sessions, m)) => Some(self.commit_outgoing(sessions, m)?),
            None => None,
        };
        for key in &tx.rewound_sessions {
            if self.sessions.contains_key(key) {
                self.needs_reset.insert(key.clone());
            }
        }
        Ok(crate::Committed { received, outgoing })
    }

    fn commit_outgoing(&mut self, sessions: &[(SessionKey, Session)], m: &Outgoing) -> Result<i64> {
        for (k, s) in sessions {
            self.needs_reset.remove(k);
            self.sessions.insert(k.clone(), s.clone());
        }
        let id = self.push(StoredMessage {
            id: 0,
            direction: Direction::Out,
            peer: m.peer.clone(),
            sender: m.sender.clone(),
            sender_device: m.sender_device,
            suite: m.suite,
            body: Some(m.body.clone()),
            failure: None,
            encrypted: m.encrypted,
            at: m.at,
            ids: m.ids.clone(),
        });
        self.outbox.insert(id, m.stanza.clone());
        Ok(id)
    }

    fn mark_sent(&mut self, id: i64) -> Result<()> {
        self.outbox.remove(&id);
        Ok(())
    }

    fn mark_undelivered(&mut self, id: i64, why: &Failure) -> Result<()> {
        if let Some(m) = usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.messages.get_mut(i))
        {
            m.failure = Some(why.clone());
        }
        Ok(())
    }

    fn pending(&self) -> Result<Vec<Pending>> {
        Ok(self
            .outbox
            .iter()
            .filter_map(|(id, s)| {
                let m = self.message(*id)?;
                Some(Pending {
                    id: *id,
                    peer: m.peer.clone(),
                    origin_id: m.ids.origin_id.clone(),
                    encrypted: m.encrypted,
                    stanza: s.clone(),
                })
            })
            .collect())
    }

    fn history(&self, peer: &str, limit: usize) -> Result<Vec<StoredMessage>> {
        let all: Vec<&StoredMessage> = self
            .messages
            .iter()
            .filter(|m| m.peer == peer && !is_control(m))
            .collect();
        Ok(all[all.len().saturating_sub(limit)..]
            .iter()
            .map(|m| (*m).clone())
            .collect())
    }

    fn used_prekeys(&self) -> Result<Vec<u32>> {
        Ok(self.used_prekeys.iter().copied().collect())
    }

    fn retire_prekeys(&mut self, device: &LocalDevice) -> Result<()> {
        self.save_device(device)?;
        self.used_prekeys.clear();
        Ok(())
    }

    fn set_trust(
        &mut self,
        jid: &str,
        identity: &IdentityKey,
        trust: Trust,
        _now: u64,
    ) -> Result<()> {
        self.trust.insert(
            (jid.to_owned(), identity.curve25519()),
            (trust, *identity, TrustSource::User),
        );
        Ok(())
    }

    fn trust_source(&self, jid: &str, identity: &IdentityKey) -> Result<Option<TrustSource>> {
        Ok(self
            .trust
            .get(&(jid.to_owned(), identity.curve25519()))
            .map(|(_, _, s)| s.clone()))
    }

    fn keys_with_trust(&self, trust: Trust) -> Result<Vec<(String, IdentityKey)>> {
        Ok(self
            .trust
            .iter()
            .filter(|(_, (t, _, _))| *t == trust)
            .map(|((j, _), (_, k, _))| (j.clone(), *k))
            .collect())
    }

    fn held_trust_from(&self, sender: &str, sender_key: &IdentityKey) -> Result<Vec<HeldTrust>> {
        Ok(self
            .held_trust
            .iter()
            .filter(|h| h.sender == sender && h.sender_key.same_identity(sender_key))
            .cloned()
            .collect())
    }

    fn trust_messages_to_send(&self) -> Result<Vec<QueuedTrustMessage>> {
        Ok(self
            .trust_outbox
            .iter()
            .map(|(id, (to, element))| QueuedTrustMessage {
                id: *id,
                to: to.clone(),
                element: element.clone(),
            })
            .collect())
    }

    fn trust_message_sent(&mut self, id: i64) -> Result<()> {
        self.trust_outbox.remove(&id);
        Ok(())
    }

    fn save_published_key(
        &mut self,
        jid: &str,
        device: u32,
        identity: &IdentityKey,
        _now: u64,
    ) -> Result<()> {
        self.published_keys
            .insert((jid.to_owned(), device), *identity);
        Ok(())
    }

    fn published_keys(&self, jid: &str) -> Result<Vec<(u32, IdentityKey)>> {
        Ok(self
            .published_keys
            .iter()
            .filter(|((j, _), _)| j == jid)
            .map(|((_, d), k)| (*d, *k))
            .collect())
    }

    fn trust(&self, jid: &str, identity: &IdentityKey) -> Result<Option<Trust>> {
        Ok(self
            .trust
            .get(&(jid.to_owned(), identity.curve25519()))
            .map(|(t, _, _)| *t))
    }

    fn has_verified_key(&self, jid: &str) -> Result<bool> {
        Ok(self
            .trust
            .iter()
            .any(|((j, _), (t, _, _))| j == jid && *t == Trust::Verified))
    }

    fn has_any_key(&self, jid: &str) -> Result<bool> {
        Ok(self.trust.keys().any(|(j, _)| j == jid))
    }

    fn default_trust_model(&self) -> Result<TrustModel> {
        Ok(self.trust_model)
    }

    fn set_default_trust_model(&mut self, model: TrustModel) -> Result<()> {
        self.trust_model = model;
        Ok(())
    }

    fn set_device_list(
        &mut self,
        suite: Suite,
        jid: &str,
        devices: &[u32],
        now: u64,
    ) -> Result<()> {
        let known = self.devices.entry((suite, jid.to_owned())).or_default();
        for d in known.values_mut() {
            d.listed = false;
        }
        for id in devices {
            known
                .entry(*id)
                .or_insert(DeviceRecord {
                    device_id: *id,
                    listed: true,
                    last_seen: now,
                })
                .listed = true;
        }
        // As the SQLite store: an unlisted device without a session is forgotten.
        let sessions = &self.sessions;
        known.retain(|id, d| d.listed || sessions.contains_key(&SessionKey::new(suite, jid, *id)));
        Ok(())
    }

    fn conversation(&self, jid: &str) -> Result<ConversationRecord> {
        Ok(self.conversations.get(jid).copied().unwrap_or_default())
    }

    fn set_conversation(&mut self, jid: &str, record: &ConversationRecord) -> Result<()> {
        self.conversations.insert(jid.to_owned(), *record);
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<Room>> {
        Ok(self.rooms.values().cloned().collect())
    }

    fn room(&self, jid: &str) -> Result<Option<Room>> {
        Ok(self.rooms.get(jid).cloned())
    }

    fn save_room(&mut self, room: &Room) -> Result<()> {
        let mut room = room.clone();
        let members = core::mem::take(&mut room.members);
        room.set_members(members);
        self.rooms.insert(room.jid.clone(), room);
        Ok(())
    }

    fn forget_room(&mut self, jid: &str) -> Result<()> {
        self.rooms.remove(jid);
        self.archive_resume.remove(jid);
        Ok(())
    }

    fn devices(&self, suite: Suite, jid: &str) -> Result<Vec<DeviceRecord>> {
        Ok(self
            .devices
            .get(&(suite, jid.to_owned()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }
}

/// A control message (see [`crate::CONTROL_BODY`]), never shown in history.
fn is_control(m: &StoredMessage) -> bool {
    m.failure.is_none() && m.body.as_deref() == Some(crate::CONTROL_BODY)
}
