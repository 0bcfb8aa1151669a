//! # hush-store: where Hush keeps its state, crash-safe
//!
//! One place for the account's device keys, one-time prekeys, sessions, trust decisions, device
//! lists and message history. The [`Store`] trait is what the client uses; [`SqliteStore`] keeps
//! it in SQLite (WAL mode, optionally encrypted at rest with SQLCipher) and [`MemoryStore`] in
//! memory for tests.
//!
//! ## Atomic protocol steps
//! * **Receiving**: [`Store::commit_received`] writes the advanced (or new) session, the
//!   consumed one-time prekey and the plaintext — or a visible "could not decrypt" entry — in one
//!   transaction. A message already in history (same XEP-0359 stanza-id or origin-id, as MAM,
//!   Carbons and offline copies have) is skipped as a whole, so a crash at any point neither
//!   loses a message nor stores it twice.
//! * **Sending**: [`Store::commit_outgoing`] saves the advanced sessions together with the
//!   history entry and, in the outbox, the exact bytes of the `<encrypted/>` element with the
//!   message's origin id *before* anything is sent. After a crash [`Store::pending`] returns them
//!   to send again unchanged: a message key is never used for two different ciphertexts.
//! * **Prekeys**: a used one-time prekey is only recorded at first (XEP-0384 keeps it until MAM
//!   catch-up has finished); [`finish_catch_up`] then deletes them, tops the pool back up and
//!   saves the device in one step.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedup;
mod error;
mod failure;
mod memory;
mod room;
mod sqlite;
mod types;

use hush_proto::policy::{KeysOnRecord, TrustModel};
use hush_proto::{CryptoRng, IdentityKey, LocalDevice, Session, Suite};

pub use error::{Result, StoreError};
pub use failure::Failure;
pub use memory::MemoryStore;
pub use room::{Affiliation, Member, Room, RoomConfig};
pub use sqlite::{BackupReport, OpenOptions, SqliteStore, SCHEMA_VERSION};
pub use types::{
    Commit, Committed, ConversationChange, ConversationRecord, DeviceListUpdate, DeviceRecord,
    Direction, HeldTrust, MessageIds, NewKey, Outcome, Outgoing, Pending, QueuedTrustMessage,
    Received, SessionKey, StoredMessage, StrangerCharge, StrangerUsage, Transaction, Trust,
    TrustChange, TrustSource,
};

/// The body kept for a control message (a trust message, a step of a comparison): it is in
/// the store so that its copies are recognised (and ours resent), and never in history. A
/// NUL, which no XML text can hold, so that no real message is ever taken for one.
pub const CONTROL_BODY: &[u8] = b"\0";

/// The account a store belongs to.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account's bare JID.
    pub jid: String,
    /// This device's keys.
    pub device: LocalDevice,
}

/// The persistence interface of the client.
pub trait Store {
    /// The account, if one was created.
    fn account(&self) -> Result<Option<Account>>;
    /// Creates the account; fails if there is one.
    fn create_account(&mut self, jid: &str, device: &LocalDevice) -> Result<()>;
    /// Saves the device keys (after a prekey refill or signed prekey rotation).
    fn save_device(&mut self, device: &LocalDevice) -> Result<()>;

    /// The session with one device.
    fn session(&self, key: &SessionKey) -> Result<Option<Session>>;
    /// All sessions with the devices of `jid` in `suite`, by device id.
    fn sessions_of(&self, suite: Suite, jid: &str) -> Result<Vec<(u32, Session)>>;
    /// Saves sessions advanced outside a message exchange (e.g. by an empty message we sent).
    fn save_sessions(&mut self, sessions: &[(SessionKey, Session)]) -> Result<()>;
    /// Deletes a session (`hush session reset`); a new key exchange replaces it.
    fn delete_session(&mut self, key: &SessionKey) -> Result<()>;
    /// Sessions that a restore rewound and the user should reset.
    fn sessions_needing_reset(&self) -> Result<Vec<SessionKey>>;

    /// The newest archive id (XEP-0313) stored for messages from `archive`: where MAM
    /// catch-up resumes.
    fn last_archive_id(&self, archive: &str) -> Result<Option<String>>;
    /// Where the next archive catch-up of `archive` starts: the last archive id a catch-up
    /// read to the end of a page. Unlike [`Store::last_archive_id`], live messages do not move
    /// it, so a message the server held back while later ones arrived live is still fetched.
    fn archive_resume(&self, archive: &str) -> Result<Option<String>>;
    /// Moves the resume point of `archive` (after the page up to `stanza_id` is committed).
    fn set_archive_resume(&mut self, archive: &str, stanza_id: &str) -> Result<()>;
    /// When this device began to read our archive (unix seconds), recorded when it was
    /// announced: where a catch-up starts while no resume point exists yet (the archive was
    /// empty then), so that what arrived between two connections is never skipped.
    fn archive_start(&self) -> Result<Option<u64>>;
    /// Records [`Store::archive_start`] (kept if one is recorded already).
    fn set_archive_start(&mut self, at: u64) -> Result<()>;
    /// True if a message from `sender` with one of these ids (or this digest) is in history as
    /// *authenticated*: decrypted, or sent by us. A stored failure or message in clear with the
    /// same ids does not count — anyone can forge those, and they must not hide the real
    /// message (it is decrypted, and [`Store::commit_received`] stores it beside them).
    fn is_known(&self, sender: &str, ids: &MessageIds) -> Result<bool>;
    /// True if any stored entry from `sender` has one of these ids (or this digest),
    /// authenticated or not: what a step that is not decrypted (a notice, a refusal) asks to
    /// tell a copy of something already recorded from a new message.
    fn holds(&self, sender: &str, ids: &MessageIds) -> Result<bool>;
    /// Commits received messages in one transaction (see the crate docs).
    /// Also records, for each decrypted message, that its device was heard from at `at`, if a
    /// device list ever named it: the devices known are those lists named (and that stay
    /// listed or hold a session), never one that only sent a message — a server can make
    /// those up, and a device known is taken as one the contact announced.
    fn commit_received(&mut self, batch: Vec<Received>) -> Result<Vec<Commit>>;
    /// Commits the sessions a send advanced, the history entry and the outbox entry, in one
    /// transaction; returns the history id. Send only after this returned.
    fn commit_outgoing(
        &mut self,
        sessions: &[(SessionKey, Session)],
        message: &Outgoing,
    ) -> Result<i64>;
    /// What `jid` and all strangers together spent of their budget in `window` (see
    /// [`StrangerCharge`]). Kept in the store, so a restart does not reset it.
    fn stranger_usage(&self, jid: &str, window: u64) -> Result<StrangerUsage>;
    /// Commits everything one protocol step writes, in one transaction (see [`Transaction`]):
    /// new keys, device lists, conversation changes, then the received messages (with the
    /// same rules as [`Store::commit_received`]) and the outgoing message (as
    /// [`Store::commit_outgoing`]).
    fn commit(&mut self, tx: Transaction) -> Result<Committed>;
    /// Marks an outbox entry as sent.
    fn mark_sent(&mut self, id: i64) -> Result<()>;
    /// Records that a message we sent (history entry `id`) was not delivered: the server
    /// returned it. Its text stays; history shows it with `why`.
    fn mark_undelivered(&mut self, id: i64, why: &Failure) -> Result<()>;
    /// Outbox entries stored but not confirmed as sent, oldest first.
    fn pending(&self) -> Result<Vec<Pending>>;
    /// The last `limit` history entries of a conversation, oldest first.
    /// (Control messages — see [`CONTROL_BODY`] — are left out.)
    fn history(&self, peer: &str, limit: usize) -> Result<Vec<StoredMessage>>;

    /// One-time prekeys used by key exchanges and not yet retired.
    fn used_prekeys(&self) -> Result<Vec<u32>>;
    /// Saves `device` (with used prekeys removed) and forgets the used-prekey list, atomically.
    fn retire_prekeys(&mut self, device: &LocalDevice) -> Result<()>;

    /// Records a trust decision about one identity key of `jid`.
    fn set_trust(
        &mut self,
        jid: &str,
        identity: &IdentityKey,
        trust: Trust,
        now: u64,
    ) -> Result<()>;
    /// The trust decision about one identity key of `jid`, if any.
    fn trust(&self, jid: &str, identity: &IdentityKey) -> Result<Option<Trust>>;
    /// Who made the trust decision about one identity key of `jid`, if one was made.
    fn trust_source(&self, jid: &str, identity: &IdentityKey) -> Result<Option<TrustSource>>;
    /// Every key with `trust`, by account (keys recorded by a Hush older than the trust
    /// records' Ed25519 column are left out unless decided again).
    fn keys_with_trust(&self, trust: Trust) -> Result<Vec<(String, IdentityKey)>>;
    /// The statements held from `sender`'s device with identity key `sender_key` (see
    /// [`HeldTrust`]).
    fn held_trust_from(&self, sender: &str, sender_key: &IdentityKey) -> Result<Vec<HeldTrust>>;
    /// The trust messages waiting to be sent, oldest first.
    fn trust_messages_to_send(&self) -> Result<Vec<QueuedTrustMessage>>;
    /// Takes a trust message off the queue (it was sent, or there was nobody to send it to).
    fn trust_message_sent(&mut self, id: i64) -> Result<()>;
    /// Keeps the identity key device `device` of `jid` publishes, read from its bundle to
    /// verify or trust it before any session with it.
    fn save_published_key(
        &mut self,
        jid: &str,
        device: u32,
        identity: &IdentityKey,
        now: u64,
    ) -> Result<()>;
    /// The identity keys kept by [`Store::save_published_key`] for `jid`, by device id.
    fn published_keys(&self, jid: &str) -> Result<Vec<(u32, IdentityKey)>>;
    /// Whether the user verified any identity key of `jid` (sessions or not: a reset session
    /// keeps its key's trust).
    fn has_verified_key(&self, jid: &str) -> Result<bool>;
    /// Whether any identity key of `jid` has a trust row (whatever the trust).
    fn has_any_key(&self, jid: &str) -> Result<bool>;
    /// What is on record about `jid`'s keys, for a trust model's first decision.
    fn keys_on_record(&self, jid: &str) -> Result<KeysOnRecord> {
        Ok(KeysOnRecord {
            any: self.has_any_key(jid)?,
            verified: self.has_verified_key(jid)?,
        })
    }
    /// The account's trust model: how new keys of a contact without its own model start out.
    fn default_trust_model(&self) -> Result<TrustModel>;
    /// Sets the account's trust model (keys already decided keep their trust).
    fn set_default_trust_model(&mut self, model: TrustModel) -> Result<()>;
    /// The trust model that applies to `jid`: its own, else the account's.
    fn trust_model(&self, jid: &str) -> Result<TrustModel> {
        match self.conversation(jid)?.trust_model {
            Some(m) => Ok(m),
            None => self.default_trust_model(),
        }
    }
    /// The trust a key of `jid` met for the first time starts with, under the model that
    /// applies to `jid`.
    fn first_trust(&self, jid: &str) -> Result<Trust> {
        let first = self
            .trust_model(jid)?
            .first_trust(self.keys_on_record(jid)?);
        Ok(Trust::from(first))
    }
    /// Replaces the known device list of `jid` in `suite`; devices not in it stay known but
    /// unlisted if we hold a session with them, and are forgotten otherwise (so lists of ever
    /// new ids cannot grow the store). A device new to us is "seen" at `now`; known devices keep their time, since
    /// stale devices stay listed forever (only a decrypted message counts as a sign of life,
    /// see [`Store::commit_received`]).
    fn set_device_list(&mut self, suite: Suite, jid: &str, devices: &[u32], now: u64)
        -> Result<()>;
    /// The devices known for `jid` in `suite`.
    fn devices(&self, suite: Suite, jid: &str) -> Result<Vec<DeviceRecord>>;
    /// The conversation with `jid` (the default for one never seen).
    fn conversation(&self, jid: &str) -> Result<ConversationRecord>;
    /// Saves the conversation with `jid`.
    fn set_conversation(&mut self, jid: &str, record: &ConversationRecord) -> Result<()>;
    /// The rooms joined, by JID.
    fn rooms(&self) -> Result<Vec<Room>>;
    /// The room `jid`, if joined.
    fn room(&self, jid: &str) -> Result<Option<Room>>;
    /// Saves a room (joined, or what was learnt of it), its member list replacing the stored
    /// one.
    fn save_room(&mut self, room: &Room) -> Result<()>;
    /// Forgets a room left, and where its archive was read up to (its history stays): joined
    /// again, the room is read from then on, not from where it was left.
    fn forget_room(&mut self, jid: &str) -> Result<()>;
}

/// How long a used one-time prekey is still accepted after it left the bundle: a sender that
/// read the bundle before (the prekey race), or whose message took a while, can still start a
/// session. Three days cover a weekend offline.
pub const PREKEY_GRACE: u64 = 3 * 86_400;

/// After MAM catch-up (or a key exchange outside one): takes the one-time prekeys key
/// exchanges used out of the bundle (kept for [`PREKEY_GRACE`]), deletes those retired longer
/// ago, refills the pool to `target` and saves the device. Returns how many prekeys were
/// added; republish the bundle when anything changed.
pub fn finish_catch_up<S: Store + ?Sized, R: CryptoRng + ?Sized>(
    store: &mut S,
    target: usize,
    now: u64,
    rng: &mut R,
) -> Result<usize> {
    let mut account = store.account()?.ok_or(StoreError::NoAccount)?;
    let used = store.used_prekeys()?;
    for id in &used {
        account.device.retire_prekey(*id, now);
    }
    let forgotten = account
        .device
        .forget_retired_prekeys(now.saturating_sub(PREKEY_GRACE));
    let added = account.device.refill_prekeys(target, rng);
    if used.is_empty() && added == 0 && forgotten == 0 {
        return Ok(0);
    }
    store.retire_prekeys(&account.device)?;
    Ok(added)
}

/// Deletes the sessions with `jid` (one device, or all) in every suite — `hush session reset`.
/// The next message starts new sessions; XEP-0384 allows this only on the user's request.
/// Returns how many sessions were deleted.
pub fn reset_sessions<S: Store + ?Sized>(
    store: &mut S,
    jid: &str,
    device: Option<u32>,
) -> Result<usize> {
    let mut n = 0;
    for suite in Suite::ALL {
        for (id, _) in store.sessions_of(suite, jid)? {
            if device.is_none_or(|d| d == id) {
                store.delete_session(&SessionKey::new(suite, jid, id))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Rotates the signed prekey when it is older than `max_age` seconds (XEP-0384: every one to
/// four weeks), keeping the previous one for late key exchanges. Returns whether it rotated.
pub fn rotate_signed_prekey_if_due<S: Store + ?Sized, R: CryptoRng + ?Sized>(
    store: &mut S,
    now: u64,
    max_age: u64,
    rng: &mut R,
) -> Result<bool> {
    let mut account = store.account()?.ok_or(StoreError::NoAccount)?;
    if account.device.signed_prekey_age(now) < max_age {
        return Ok(false);
    }
    account.device.rotate_signed_prekey(now, rng);
    store.save_device(&account.device)?;
    Ok(true)
}

/// Raw SQLite access for tests that need to build hostile or foreign files. Not for clients.
#[doc(hidden)]
pub mod testing {
    pub use rusqlite::Connection;
}
