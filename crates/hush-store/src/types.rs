//! The records the store keeps and the units of work it commits.

use hush_proto::{Session, Suite};

use crate::Failure;

/// Identifies a session: suite, peer bare JID, peer device id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    /// The suite of the session.
    pub suite: Suite,
    /// The peer's bare JID.
    pub jid: String,
    /// The peer's device id.
    pub device_id: u32,
}

impl SessionKey {
    /// Builds a key.
    pub fn new(suite: Suite, jid: &str, device_id: u32) -> Self {
        Self {
            suite,
            jid: jid.to_owned(),
            device_id,
        }
    }
}

/// The ids a stanza can be recognised by when it arrives again (MAM, Carbons, offline).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageIds {
    /// The archive that assigned `stanza_id` (the `by` of XEP-0359 `<stanza-id/>`).
    pub archive: Option<String>,
    /// XEP-0359 `<stanza-id id/>`, unique within its archive.
    pub stanza_id: Option<String>,
    /// XEP-0359 `<origin-id id/>`, unique per sender.
    pub origin_id: Option<String>,
    /// For an encrypted message, its [content digest](hush_proto::EncryptedElement::content_digest)
    /// as this device receives it: an exact copy is recognised even with new or no stanza ids.
    pub digest: Option<[u8; 32]>,
}

/// What happened to one received encrypted message.
#[derive(Debug)]
pub enum Outcome {
    /// It decrypted: the session after decrypting it, the plaintext (none for empty messages)
    /// and the one-time prekey its key exchange used.
    Decrypted {
        /// The sender's session, advanced (or newly built).
        session: Box<Session>,
        /// The plaintext; `None` for empty / key-transport messages (not added to history).
        body: Option<Vec<u8>>,
        /// A one-time prekey to retire once catch-up is over.
        consumed_prekey: Option<u32>,
    },
    /// It could not be decrypted. Kept in history, loudly, so it is never silently lost.
    Failed {
        /// Why.
        failure: Failure,
    },
    /// It came in clear (no `<encrypted/>`): kept, and marked as unencrypted.
    Plaintext {
        /// The text.
        body: Vec<u8>,
    },
    /// A copy of a message *this device* sent that the store has no record of: the store was
    /// rolled back behind what the device did. It cannot be decrypted (a device does not
    /// encrypt for itself), so it is kept as a sent message whose text is gone
    /// ([`Failure::LostSent`] in its place); being an outgoing entry, it makes later copies
    /// duplicates.
    LostSent,
}

/// One received message to commit.
#[derive(Debug)]
pub struct Received {
    /// How to recognise it again.
    pub ids: MessageIds,
    /// The conversation: the peer's bare JID, or the room's.
    pub peer: String,
    /// The sender's bare JID.
    pub sender: String,
    /// The sender's device id.
    pub sender_device: u32,
    /// The suite it came in.
    pub suite: Suite,
    /// Unix seconds (from the stanza's delay or the local clock).
    pub at: u64,
    /// The result of decrypting it.
    pub outcome: Outcome,
}

/// What a commit did with one received message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Stored in history under this id (or, for empty messages, state saved and id 0).
    Stored(i64),
    /// Already in history: nothing was written for it.
    Duplicate,
}

/// A message we are about to send, with its encrypted stanza payload for the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// How the copy that comes back (Carbons, MAM) will be recognised.
    pub ids: MessageIds,
    /// The conversation.
    pub peer: String,
    /// Our bare JID.
    pub sender: String,
    /// Our device id.
    pub sender_device: u32,
    /// The suite used.
    pub suite: Suite,
    /// Unix seconds.
    pub at: u64,
    /// The plaintext, for our own history.
    pub body: Vec<u8>,
    /// Whether it was encrypted (plaintext only ever on the user's explicit request).
    pub encrypted: bool,
    /// The exact bytes to send; resent verbatim after a crash, never re-encrypted.
    pub stanza: Vec<u8>,
}

/// Direction of a history entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received from a peer (or from our own other device).
    In,
    /// Sent by this device.
    Out,
}

/// A history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Row id, increasing in arrival order.
    pub id: i64,
    /// In or out.
    pub direction: Direction,
    /// The conversation.
    pub peer: String,
    /// Sender bare JID.
    pub sender: String,
    /// Sender device id.
    pub sender_device: u32,
    /// The suite used.
    pub suite: Suite,
    /// The plaintext, if it decrypted.
    pub body: Option<Vec<u8>>,
    /// Why it has no text, if it has none.
    pub failure: Option<Failure>,
    /// Whether it travelled encrypted.
    pub encrypted: bool,
    /// Unix seconds.
    pub at: u64,
    /// Its ids.
    pub ids: MessageIds,
}

/// The user's decision about a device's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Seen, no decision yet.
    Undecided,
    /// Trusted without verification (blind trust before verification).
    Blind,
    /// Fingerprint verified by the user.
    Verified,
    /// Explicitly distrusted: never encrypt to it.
    Distrusted,
}

impl From<Trust> for hush_proto::policy::KeyTrust {
    fn from(t: Trust) -> Self {
        match t {
            Trust::Verified => Self::Verified,
            Trust::Blind => Self::Blind,
            Trust::Undecided => Self::Undecided,
            Trust::Distrusted => Self::Distrusted,
        }
    }
}

impl From<hush_proto::policy::KeyTrust> for Trust {
    fn from(t: hush_proto::policy::KeyTrust) -> Self {
        use hush_proto::policy::KeyTrust;
        match t {
            KeyTrust::Verified => Self::Verified,
            KeyTrust::Blind => Self::Blind,
            KeyTrust::Undecided => Self::Undecided,
            KeyTrust::Distrusted => Self::Distrusted,
        }
    }
}

impl Trust {
    /// The name shown to users and stored: `undecided`, `blind`, `verified`, `distrusted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Undecided => "undecided",
            Trust::Blind => "blind",
            Trust::Verified => "verified",
            Trust::Distrusted => "distrusted",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Trust::Undecided,
            Trust::Blind,
            Trust::Verified,
            Trust::Distrusted,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// A peer device as last seen in a device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device id.
    pub device_id: u32,
    /// Whether it was in the latest published list.
    pub listed: bool,
    /// Unix seconds when we last saw it (in a list or a message).
    pub last_seen: u64,
}

/// A message stored before sending, not yet confirmed as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The outbox entry (same as the history id).
    pub id: i64,
    /// The conversation it goes to (the recipient's bare JID).
    pub peer: String,
    /// Its XEP-0359 origin id, which receivers use to recognise a second copy.
    pub origin_id: Option<String>,
    /// Whether `stanza` is an `<encrypted/>` element (else the text, sent in clear on the
    /// user's request).
    pub encrypted: bool,
    /// The exact bytes to send.
    pub stanza: Vec<u8>,
}

/// What the store keeps per conversation (per contact's bare JID).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConversationRecord {
    /// The send policy state (off switch, encrypted so far, minimum authentication).
    pub policy: hush_proto::policy::Conversation,
    /// The user blocked this JID: nothing from it is processed.
    pub blocked: bool,
    /// A contact: we wrote to it (or the user said so). Others are strangers, whose new
    /// sessions are rate-limited.
    pub contact: bool,
    /// How this contact's new keys start out, if the user chose for this contact; `None`:
    /// the account's model ([`Store::default_trust_model`](crate::Store::default_trust_model)).
    pub trust_model: Option<hush_proto::policy::TrustModel>,
}

/// Everything one protocol step writes, committed at once by
/// [`Store::commit`](crate::Store::commit): the account engine decides, and nothing of a step
/// is written outside its transaction — so a refused step leaves the store as it was, and a
/// crash leaves it before or after the step, never in between.
#[derive(Debug, Default)]
#[must_use = "a transaction does nothing until it is committed"]
pub struct Transaction {
    /// Identity keys met for the first time, with the trust they start with. A key that has a
    /// trust row by commit time keeps it (the user may have decided meanwhile).
    pub new_keys: Vec<NewKey>,
    /// Device lists learnt (see [`Store::set_device_list`](crate::Store::set_device_list)).
    pub device_lists: Vec<DeviceListUpdate>,
    /// Changes to conversation records, applied to the record as stored at commit time (the
    /// user may have changed its settings meanwhile, from another process).
    pub conversations: Vec<(String, ConversationChange)>,
    /// Sessions advanced by something that is not in history (an empty message we send).
    pub sessions: Vec<(SessionKey, Session)>,
    /// Received messages (see [`Store::commit_received`](crate::Store::commit_received)).
    /// When every one of them is a copy of a stored message and the transaction is an ordinary
    /// receive step (see [`Transaction::is_receive_step`]), it is a copy of a step already
    /// taken and writes nothing: a copy must not spend a stranger's budget again or change a
    /// record.
    pub received: Vec<Received>,
    /// A message we send and the sessions it advanced (see
    /// [`Store::commit_outgoing`](crate::Store::commit_outgoing)).
    pub outgoing: Option<(Vec<(SessionKey, Session)>, Outgoing)>,
    /// What a stranger spent of its budget (see
    /// [`Store::stranger_usage`](crate::Store::stranger_usage)).
    pub stranger: Option<StrangerCharge>,
    /// Marks every session stored before this transaction as rewound, exactly as restoring a
    /// backup does: the store was found rolled back, so their sending chains may be behind
    /// what peers already saw (see
    /// [`Store::sessions_needing_reset`](crate::Store::sessions_needing_reset)). Applied
    /// first: sessions the same transaction writes are new and stay unmarked.
    pub rewind_sessions: bool,
    /// One-time prekeys to record as used (retired by
    /// [`finish_catch_up`](crate::finish_catch_up)), besides those key exchanges in
    /// `received` used: after a rollback, the ones a later state of this device had already
    /// handed out.
    pub used_prekeys: Vec<u32>,
    /// Sessions to mark rewound once everything else is written: after a rollback, sessions
    /// a catch-up rebuilds from key exchanges that the lost state may already have answered
    /// (the peer is then ahead of the rebuilt session's sending side).
    pub rewound_sessions: Vec<SessionKey>,
    /// Trust decisions to record, replacing what is stored (unlike `new_keys`): the user's,
    /// and those Automatic Trust Management applies.
    pub trust_changes: Vec<TrustChange>,
    /// Trust statements to keep until their sender's key is authenticated (XEP-0450).
    pub held_trust: Vec<HeldTrust>,
    /// Senders whose held statements were applied (or are void): `(jid, key)`; their held
    /// rows go.
    pub released_trust: Vec<(String, hush_proto::IdentityKey)>,
    /// Trust messages to send: `(addressee, <trust-message/> element as XML)`, kept until
    /// sent (see [`Store::trust_messages_to_send`](crate::Store::trust_messages_to_send)).
    pub trust_messages: Vec<(String, String)>,
}

impl Transaction {
    /// True if it only records received messages and what they bring along (new keys,
    /// conversation changes, a stranger's budget): what a store may skip whole when every
    /// message in it is a copy. A transaction that sends, saves sessions, records device lists,
    /// retires prekeys or rewinds sessions (a rollback's repair) is never skipped: losing it
    /// could reuse a message key.
    pub fn is_receive_step(&self) -> bool {
        !self.received.is_empty()
            && self.outgoing.is_none()
            && self.sessions.is_empty()
            && self.device_lists.is_empty()
            && !self.rewind_sessions
            && self.used_prekeys.is_empty()
            && self.rewound_sessions.is_empty()
            && self.trust_changes.is_empty()
            && self.held_trust.is_empty()
            && self.released_trust.is_empty()
            && self.trust_messages.is_empty()
    }

    /// True if committing it would write nothing.
    pub fn is_empty(&self) -> bool {
        self.new_keys.is_empty()
            && self.device_lists.is_empty()
            && self.conversations.is_empty()
            && self.sessions.is_empty()
            && self.received.is_empty()
            && self.outgoing.is_none()
            && self.stranger.is_none()
            && !self.rewind_sessions
            && self.used_prekeys.is_empty()
            && self.rewound_sessions.is_empty()
            && self.trust_changes.is_empty()
            && self.held_trust.is_empty()
            && self.released_trust.is_empty()
            && self.trust_messages.is_empty()
    }
}

/// Who decided a key's trust.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustSource {
    /// The user on this device (a fingerprint compared, a URI or QR code scanned, `hush
    /// trust`), or the trust model when the key was first met.
    #[default]
    User,
    /// The user, after comparing a short authentication string with that device.
    Sas,
    /// An OpenPGP key the user trusts signed the device's key (see `hush-attest`).
    OpenPgp {
        /// The key's fingerprint.
        fingerprint: String,
        /// Its first user id, if any.
        user_id: Option<String>,
    },
    /// A certificate under a certification authority the user trusts signed it.
    X509 {
        /// The certificate's subject.
        subject: String,
        /// The authority's subject.
        anchor: String,
        /// The authority's certificate's SHA-256 (hex): what tells two authorities with the
        /// same subject apart. `None` in records written before it was kept.
        anchor_id: Option<String>,
    },
    /// Automatic Trust Management (XEP-0450): a trust message from a device whose key was
    /// authenticated here.
    Atm {
        /// The sending device's account.
        jid: String,
        /// The sending device's fingerprint.
        fingerprint: String,
    },
}

impl TrustSource {
    /// The stored form: `user`, or `atm JID FINGERPRINT`.
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::User => "user".to_owned(),
            Self::Sas => "sas".to_owned(),
            // Tab-separated: subjects and user ids hold spaces (and never tabs, see decode).
            Self::OpenPgp {
                fingerprint,
                user_id,
            } => format!(
                "openpgp\t{fingerprint}\t{}",
                user_id.as_deref().unwrap_or("").replace('\t', " ")
            ),
            Self::X509 {
                subject,
                anchor,
                anchor_id,
            } => {
                let mut text = format!(
                    "x509\t{}\t{}",
                    subject.replace('\t', " "),
                    anchor.replace('\t', " ")
                );
                // A fourth field: versions that read three ignore it.
                if let Some(id) = anchor_id {
                    text.push('\t');
                    text.push_str(&id.replace('\t', " "));
                }
                text
            }
            Self::Atm { jid, fingerprint } => {
                format!("atm {jid} {}", fingerprint.replace(' ', ""))
            }
        }
    }

    /// Reads [`Self::encode`]; anything else (a newer Hush's, or none) is the user's.
    pub(crate) fn decode(text: Option<&str>) -> Self {
        let text = text.unwrap_or_default();
        let mut fields = text.split('\t');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("openpgp"), Some(fingerprint), Some(uid)) => {
                return Self::OpenPgp {
                    fingerprint: fingerprint.to_owned(),
                    user_id: (!uid.is_empty()).then(|| uid.to_owned()),
                }
            }
            (Some("x509"), Some(subject), Some(anchor)) => {
                return Self::X509 {
                    subject: subject.to_owned(),
                    anchor: anchor.to_owned(),
                    anchor_id: fields.next().map(str::to_owned),
                }
            }
            _ => {}
        }
        let mut parts = text.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("sas"), None, None) => Self::Sas,
            (Some("atm"), Some(jid), Some(fp)) => Self::Atm {
                jid: jid.to_owned(),
                fingerprint: fp
                    .as_bytes()
                    .chunks(8)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            _ => Self::User,
        }
    }
}

/// A trust decision to record.
#[derive(Clone, Debug)]
pub struct TrustChange {
    /// The key's owner.
    pub jid: String,
    /// The key.
    pub identity: hush_proto::IdentityKey,
    /// The decision.
    pub trust: Trust,
    /// Who made it.
    pub source: TrustSource,
    /// When (unix seconds).
    pub at: u64,
}

/// A trust statement from a device whose key is not authenticated yet, kept until it is
/// (XEP-0450: then it is applied).
#[derive(Clone, Debug)]
pub struct HeldTrust {
    /// The sending device's account.
    pub sender: String,
    /// The sending device's identity key.
    pub sender_key: hush_proto::IdentityKey,
    /// The account of the key it speaks of.
    pub owner: String,
    /// The key it speaks of.
    pub key: hush_proto::IdentityKey,
    /// What it says: [`Trust::Verified`] (authenticated) or [`Trust::Distrusted`].
    pub trust: Trust,
    /// When it arrived (unix seconds).
    pub at: u64,
}

/// A trust message waiting to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTrustMessage {
    /// Its id in the queue.
    pub id: i64,
    /// The addressee (a bare JID: a contact, or our own account).
    pub to: String,
    /// The `<trust-message/>` element, as XML.
    pub element: String,
}

/// An identity key of `jid` met for the first time.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The key's owner.
    pub jid: String,
    /// The key.
    pub identity: hush_proto::IdentityKey,
    /// The trust it starts with (blind trust before verification, or undecided after).
    pub trust: Trust,
    /// When it was met (unix seconds).
    pub at: u64,
}

/// A device list of `jid` in `suite`, as fetched or pushed at `at`.
#[derive(Debug, Clone)]
pub struct DeviceListUpdate {
    /// The suite of the list.
    pub suite: hush_proto::Suite,
    /// Whose list.
    pub jid: String,
    /// The device ids listed.
    pub devices: Vec<u32>,
    /// When it was read (unix seconds).
    pub at: u64,
}

/// One change to a conversation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationChange {
    /// We wrote to this JID (from this device or another of ours): a contact, not a stranger.
    Contact,
    /// An encrypted message was read in this conversation.
    Encrypted,
    /// An encrypted message was sent with these properties: the conversation's floor rises
    /// to them (see [`Conversation::after_encrypted`](hush_proto::policy::Conversation::after_encrypted)).
    Reached(hush_proto::policy::Properties),
}

impl ConversationChange {
    /// The record after this change.
    pub fn apply(self, mut record: ConversationRecord) -> ConversationRecord {
        match self {
            Self::Contact => record.contact = true,
            Self::Encrypted => record.policy.encrypted = true,
            Self::Reached(properties) => record.policy = record.policy.after_encrypted(&properties),
        }
        record
    }
}

/// What [`Store::commit`](crate::Store::commit) did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// One verdict per received message, in order.
    pub received: Vec<Commit>,
    /// The history id of the outgoing message, if there was one.
    pub outgoing: Option<i64>,
}

/// What strangers (JIDs we never wrote to) used of their budget in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrangerUsage {
    /// What this JID spent in the window.
    pub spent: u32,
    /// Whether this JID was told it is over its budget in the window.
    pub notified: bool,
    /// What all strangers together spent in the window.
    pub total: u32,
    /// How many strangers are on record in the window.
    pub tracked: usize,
}

/// A stranger's budget row after one step: kept for `window`; rows of earlier windows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrangerCharge {
    /// The stranger.
    pub jid: String,
    /// The window (an hour number, unix seconds / 3600).
    pub window: u64,
    /// What it spent in the window, this step included.
    pub spent: u32,
    /// Whether it was told it is over its budget.
    pub notified: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_sources_read_back() {
        for source in [
            TrustSource::User,
            TrustSource::Sas,
            TrustSource::OpenPgp {
                fingerprint: "ab12".into(),
                user_id: Some("Alice <alice@example.org>".into()),
            },
            TrustSource::OpenPgp {
                fingerprint: "ab12".into(),
                user_id: None,
            },
            TrustSource::X509 {
                subject: "CN=alice, emailAddress=alice@example.org".into(),
                anchor: "CN=Example CA".into(),
                anchor_id: Some("9f86d081884c7d65".into()),
            },
            TrustSource::X509 {
                subject: "CN=alice".into(),
                anchor: "CN=Example CA".into(),
                anchor_id: None,
            },
            TrustSource::Atm {
                jid: "bob@example.net".into(),
                fingerprint: "0123abcd 0123abcd".into(),
            },
        ] {
            assert_eq!(TrustSource::decode(Some(&source.encode())), source);
        }
        // A record from before the anchor's id was kept reads without it.
        assert_eq!(
            TrustSource::decode(Some("x509\tCN=alice\tCN=Example CA")),
            TrustSource::X509 {
                subject: "CN=alice".into(),
                anchor: "CN=Example CA".into(),
                anchor_id: None,
            }
        );
        assert_eq!(TrustSource::decode(None), TrustSource::User);
        assert_eq!(
            TrustSource::decode(Some("from the future")),
            TrustSource::User
        );
    }
}
