//! One incoming message, from classification to what the user sees.
//!
//! [`Engine::receive`] reads the store and decides; it returns a [`ReceiveStep`] whose
//! transaction the shell commits, then hands the commit's verdict to [`Engine::settle`], which
//! says what to show. Only then do the step's consequences (an empty answer owed, a used
//! prekey to retire) count: a message the store found to be a copy changes nothing.
//!
//! Decryption errors are never answered with a new session (XEP-0384 forbids it); the failure
//! is stored and shown as a typed [`hush_store::Failure`], which front ends word with what the
//! user can do (resetting the session by hand).

use hush_proto::policy::{Authentication, Properties};
use hush_proto::{sce, EncryptedElement, IdentityKey, ProtoError, Suite};
use hush_store::{
    Commit, Committed, ConversationChange, Failure, MessageIds, NewKey, Outcome, Store,
    Transaction, Trust,
};
use rand_core::CryptoRng;

use crate::send::Fetched;
use crate::strangers::{self, Verdict};
use crate::trust_message::TrustMessage;
use crate::warning::{KeyConcern, Unconfirmed, Warning};
use crate::{Delivery, Engine, Owed, Phase, Result};
use hush_proto::sas::SasMessage;

/// A bundle to fetch before a message can be read: the device `device` of `jid`, in `suite`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleRequest {
    /// The suite the message (and so the bundle) is in.
    pub suite: Suite,
    /// The account that claims to have sent the message.
    pub jid: String,
    /// The sending device.
    pub device: u32,
}

/// What a message carries.
#[derive(Debug, Clone)]
pub enum InboundPayload {
    /// An OMEMO `<encrypted/>` element, or why it could not be read.
    Omemo(core::result::Result<EncryptedElement, ProtoError>),
    /// A body in clear (no `<encrypted/>` at all).
    Plain(String),
}

/// When our server says a message was sent (XEP-0203), and how far that can be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStamp {
    /// The stamp on a result of our own archive query, in the wrapper our server writes:
    /// believed (never in the future).
    Archive(u64),
    /// A `<delay/>` with our server's name inside a message delivered live (offline storage).
    /// The sender wrote the message and may have written that `<delay/>` too, and some servers
    /// (ejabberd) then add none of their own: it is believed only as far as it cannot move the
    /// message before anything already in the conversation (or into the future).
    Delivered(u64),
}

impl ServerStamp {
    /// The time history shows for a message with this stamp (or none), arriving at `now` in a
    /// conversation whose newest message is from `newest`.
    pub fn arrival(stamp: Option<Self>, newest: Option<u64>, now: u64) -> u64 {
        match stamp {
            None => now,
            Some(ServerStamp::Archive(t)) => t.min(now),
            Some(ServerStamp::Delivered(t)) => t.max(newest.unwrap_or(0)).min(now),
        }
    }
}

/// A chat message the shell found in a stanza (already checked to come from where it says:
/// Carbons and archive results only from our own account).
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Who sent it (bare JID); our own JID for copies of what our other devices sent.
    pub sender: String,
    /// The conversation it belongs to: the contact's bare JID, or the room's.
    pub peer: String,
    /// For a room message (XEP-0045): the sender's nickname in the room `peer`; `sender` is
    /// then the real JID the room gave for that nickname.
    pub nick: Option<String>,
    /// What it carries.
    pub payload: InboundPayload,
    /// XEP-0359 / MAM ids, to recognise copies.
    pub ids: MessageIds,
    /// When our server says it was sent, if it says so.
    pub sent_at: Option<ServerStamp>,
    /// The bundle the sender's account publishes for the sending device, fetched because
    /// [`Engine::bundle_needed`] asked for it (`None` when it did not). A key exchange is
    /// accepted only from the device whose published identity key it carries.
    pub sender_bundle: Option<Fetched>,
    /// A control message (OMEMO content without a fallback body: a trust message, a step of a
    /// comparison): when it was not encrypted for this device, it is passed over with a log
    /// line instead of a visible failure — it was never meant for this device, and holds
    /// nothing for the user.
    pub control: bool,
}

/// The engine's decision on one incoming message: the transaction to commit, and what follows
/// once it is committed (see [`Engine::settle`]).
#[derive(Debug)]
#[must_use = "commit the transaction, then settle the step"]
pub struct ReceiveStep {
    /// Everything the message writes: committed in one go, before anything else happens.
    pub transaction: Transaction,
    after: After,
}

impl ReceiveStep {
    /// The transaction, and what to hand [`Engine::settle`] after committing it.
    pub fn into_parts(self) -> (Transaction, After) {
        (self.transaction, self.after)
    }

    fn nothing() -> Self {
        Self::new(Transaction::default(), After::default())
    }

    pub(crate) fn new(transaction: Transaction, after: After) -> Self {
        Self { transaction, after }
    }
}

/// What a receive step leads to once its transaction is committed.
#[derive(Debug, Default)]
pub struct After {
    delivery: Option<Delivery>,
    owed: Option<Owed>,
    /// A heal owed (see [`crate::heal`]), and when the step happened.
    heal: Option<(crate::Heal, u64)>,
    /// A device whose message was read: a heal owed to it is dropped.
    readable: Option<(String, u32)>,
    used_prekey: bool,
    /// The step repairs a rolled-back store (see [`crate::rollback`]).
    rollback: bool,
}

impl After {
    /// What follows a step recording a sent message the store had lost; `repairs`: the step
    /// also rewinds the sessions.
    pub(crate) fn rollback(delivery: Delivery, repairs: bool) -> Self {
        Self {
            delivery: Some(delivery),
            rollback: repairs,
            ..Self::default()
        }
    }
}

impl Engine {
    /// The bundle to fetch before `inbound` can be read, if any: the sending device's, when the
    /// message carries a key exchange under an identity key no session of ours with that device
    /// was built from. XEP-0384 binds a device to its account only through what the account
    /// publishes, so a key exchange is taken only from a device whose published identity key it
    /// carries: otherwise a key exchange from anyone could be relabelled as coming from a
    /// contact (legacy OMEMO has no signed sender at all; an omemo:2 envelope may omit
    /// `<from/>`, and its sender is whoever holds the session anyway). Nothing is asked for a
    /// message the rules drop before that point (copies, blocked senders, a budget spent).
    pub fn bundle_needed<S: Store + ?Sized>(
        &self,
        store: &S,
        inbound: &Inbound,
        now: u64,
    ) -> Result<Option<BundleRequest>> {
        let InboundPayload::Omemo(Ok(el)) = &inbound.payload else {
            return Ok(None);
        };
        if inbound.sender == self.jid && el.sid == self.device_id() {
            return Ok(None);
        }
        if self.local.key_exchange_identity(el, &self.jid).is_none() {
            return Ok(None);
        }
        let key = hush_store::SessionKey::new(el.suite, &inbound.sender, el.sid);
        if store.session(&key)?.is_some() {
            // Bound already (the session's identity was checked when it was built), or a
            // different identity that is refused without asking anyone.
            return Ok(None);
        }
        let record = store.conversation(&inbound.sender)?;
        if inbound.sender != self.jid && record.blocked {
            return Ok(None);
        }
        let mut ids = inbound.ids.clone();
        ids.digest = el.digest_for(&self.jid, self.device_id(), &inbound.sender);
        if store.is_known(&inbound.sender, &ids)? {
            return Ok(None);
        }
        // A stranger, or a device its account does not list, whose budget is spent gets
        // nothing fetched on its behalf either: the step drops its key exchange before the
        // binding anyway (see `Budget`). A listed device of a contact is always checked, so
        // forgeries in its name cannot lock out the real one.
        let stranger = inbound.sender != self.jid
            && !record.contact
            && !(inbound.nick.is_some()
                && self.is_room_member(store, &inbound.peer, &inbound.sender)?);
        if stranger || !listed(store, el.suite, &inbound.sender, el.sid)? {
            let window = strangers::window(now);
            let usage = store.stranger_usage(&inbound.sender, window)?;
            if strangers::charge(&inbound.sender, usage, window, stranger).0 != Verdict::Allow {
                return Ok(None);
            }
        }
        Ok(Some(BundleRequest {
            suite: el.suite,
            jid: inbound.sender.clone(),
            device: el.sid,
        }))
    }

    /// Decides what one incoming message does. Exact copies (known ids or content, of an
    /// authenticated message), blocked senders and our own reflected messages give an empty
    /// step; everything else gives a transaction with the message's record — decrypted, failed
    /// (stored and shown loudly) or in clear (flagged).
    pub fn receive<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &mut self,
        store: &S,
        inbound: Inbound,
        now: u64,
        rng: &mut R,
    ) -> Result<ReceiveStep> {
        let Inbound {
            sender,
            peer,
            nick,
            payload,
            mut ids,
            sent_at,
            sender_bundle,
            control,
        } = inbound;
        // History shows when the message was sent, as our server says, but never a time in
        // the future, nor (for a stamp the sender may have written) one before what the
        // conversation already holds.
        let at = arrival_time(store, &peer, sent_at, now)?;
        // An exact copy of an encrypted message is recognised by its content even when it
        // carries new stanza ids (or none): a replay is skipped silently only if the message
        // it copies was authenticated (see `Store::is_known`).
        if let InboundPayload::Omemo(Ok(el)) = &payload {
            ids.digest = el.digest_for(&self.jid, self.device_id(), &sender);
        }
        if store.is_known(&sender, &ids)? {
            return Ok(ReceiveStep::nothing());
        }
        // The sender's record says whether it is blocked, and whether it is a stranger: a JID
        // we never wrote to, whose new sessions are rate-limited (sessions it opened itself do
        // not make it a contact, or a flood would promote itself).
        let sender_record = store.conversation(&sender)?;
        let own = sender == self.jid;
        // A room's members are not strangers to each other: whoever admitted them to a
        // members-only room vouched for them.
        let member = nick.is_some() && self.is_room_member(store, &peer, &sender)?;
        let stranger = !(own || sender_record.contact || member);
        if !own && sender_record.blocked {
            log::info!("ignored a message from {sender}, whom you blocked");
            return Ok(ReceiveStep::nothing());
        }
        let mut step = ReceiveStep::nothing();
        // The conversation's record: for a message from a contact it is the sender's.
        let conversation = if peer == sender {
            sender_record
        } else {
            store.conversation(&peer)?
        };
        let to = if sender == peer {
            self.jid.clone()
        } else {
            peer.clone()
        };
        let message = Message {
            sender,
            peer,
            nick,
            to,
            ids,
            at,
            delayed: sent_at.is_some(),
            conversation,
            control,
        };
        let encrypted = match payload {
            InboundPayload::Omemo(e) => e,
            InboundPayload::Plain(body) => {
                // A stranger's messages in clear fill the history too: budgeted.
                if stranger {
                    let (sid, suite) = (0, Suite::Omemo2);
                    if let Some(over) = self.spend_budget(
                        store,
                        Budget::Stranger,
                        &message,
                        (sid, suite),
                        now,
                        &mut step,
                    )? {
                        return Ok(over);
                    }
                }
                self.plaintext(&message, body, &mut step);
                return Ok(step);
            }
        };
        self.encrypted(
            store,
            message,
            encrypted,
            sender_bundle,
            stranger,
            now,
            rng,
            step,
        )
    }

    /// Completes a receive step after its transaction was committed: what to show the user,
    /// if anything. A message the store found to be a copy shows nothing and changes nothing.
    pub fn settle(&mut self, after: After, committed: &Committed) -> Option<Delivery> {
        if committed.received.first() == Some(&Commit::Duplicate) {
            return None;
        }
        if after.used_prekey {
            self.prekeys_used = true;
        }
        if after.rollback {
            self.rollback_seen = true;
        }
        if let Some(owed) = after.owed {
            self.owe(owed);
        }
        if let Some((jid, device)) = after.readable {
            self.heard_from(&jid, device);
        }
        if let Some((heal, at)) = after.heal {
            self.owe_heal(heal, at);
        }
        after.delivery
    }

    /// A message that came in clear: stored and shown as unencrypted, with a warning when the
    /// conversation was encrypted until now (a peer or a server downgrading it).
    fn plaintext(&self, m: &Message, body: String, step: &mut ReceiveStep) {
        let warning = m
            .conversation
            .policy
            .plaintext_is_a_downgrade()
            .then_some(Warning::Downgrade);
        step.transaction.received.push(m.record(
            0,
            Suite::Omemo2,
            Outcome::Plaintext {
                body: body.clone().into_bytes(),
            },
        ));
        step.after.delivery = Some(Delivery {
            from: m.sender.clone(),
            device: 0,
            suite: None,
            body: Some(body),
            failure: None,
            trust: None,
            properties: Properties::PLAINTEXT,
            warning,
            // A file shared in clear is not offered for download: its key was in clear too,
            // and anyone on the path could have sent it.
            file: None,
            new_key: None,
            atm: None,
            sas: None,
            arrival: m.arrival(),
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn encrypted<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &mut self,
        store: &S,
        m: Message,
        encrypted: core::result::Result<EncryptedElement, ProtoError>,
        sender_bundle: Option<Fetched>,
        stranger: bool,
        now: u64,
        rng: &mut R,
        mut step: ReceiveStep,
    ) -> Result<ReceiveStep> {
        let (suite, sid, has_payload) = match &encrypted {
            Ok(el) => (el.suite, el.sid, el.payload.is_some()),
            Err(_) => (Suite::Omemo2, 0, true),
        };
        if m.sender == self.jid && sid == self.device_id() && m.nick.is_some() {
            // A room message "from this device" that this device has no record of. Our own
            // room messages come back and are recognised above (ids or content); a room, or
            // someone in it, can label anything as ours, so this is no evidence that the store
            // was rolled back (which would rewind every session): a visible failure only.
            let failure = Failure::Undecryptable {
                detail: "it claims to come from this device, which did not send it: the room \
                         or one of its members made it up"
                    .to_owned(),
            };
            return Ok(m.failed(step, sid, suite, failure));
        }
        if m.sender == self.jid && sid == self.device_id() {
            // Our own message, reflected. The store had no record of it (copies it knows were
            // skipped above), yet every message is committed before it leaves: the store was
            // rolled back behind what this device did. Empty messages are not in history.
            let inbound = Inbound {
                sender: m.sender,
                peer: m.peer,
                nick: m.nick,
                payload: InboundPayload::Omemo(encrypted),
                ids: m.ids,
                sent_at: Some(ServerStamp::Archive(m.at)),
                sender_bundle: None,
                control: m.control,
            };
            return Ok(match self.lost_sent(store, &inbound, now)? {
                Some(record) => self.lost_sent_step(record),
                None => ReceiveStep::nothing(),
            });
        }
        let key = hush_store::SessionKey::new(suite, &m.sender, sid);
        let existing = store.session(&key)?;
        // A stranger's budget is spent before any expensive work: a key agreement (X3DH and a
        // one-time prekey), or a message that cannot be read (no session, unreadable element).
        // Messages on a session the budget already paid for are not charged.
        // A key agreement from a device its account does not list (a contact's or our own)
        // is budgeted the same way: anyone controlling the server can make such devices up.
        let mut charged = false;
        let key_agreement = matches!(&encrypted, Ok(el)
            if self.local.needs_key_agreement(el, &self.jid, existing.as_ref()));
        let costly = key_agreement || existing.is_none() || encrypted.is_err();
        let budget = if stranger && costly {
            Some(Budget::Stranger)
        } else if key_agreement && !listed(store, suite, &m.sender, sid)? {
            Some(Budget::UnlistedDevice)
        } else {
            None
        };
        if let Some(budget) = budget {
            if let Some(over) =
                self.spend_budget(store, budget, &m, (sid, suite), now, &mut step)?
            {
                return Ok(over);
            }
            charged = true;
        }
        // The sender is bound to the key exchange before any key agreement: a session is built
        // only under the identity key the sender's account publishes for that device (see
        // `bundle_needed`). A session we hold already was bound when it was built.
        let mut unconfirmed = None;
        // The base key of a key exchange, in case it cannot be read (see `crate::heal`); the
        // identity key it claims, and whether we can vouch for it: the sender's account
        // publishes it for that device, or our session with the device was built on it.
        let kex_base = encrypted
            .as_ref()
            .ok()
            .and_then(|el| self.local.key_exchange_base_key(el, &self.jid));
        let claimed = match (&encrypted, kex_base) {
            (Ok(el), Some(_)) => self.local.key_exchange_identity(el, &self.jid),
            _ => None,
        };
        let mut vouched = match (&claimed, &existing) {
            (Some(claimed), Some(session)) => session.peer_identity().same_identity(claimed),
            _ => false,
        };
        if let (Some(claimed), None) = (&claimed, &existing) {
            match binding(sid, claimed, sender_bundle.as_ref()) {
                Binding::Confirmed => vouched = true,
                Binding::Unconfirmed(why) => {
                    log::warn!(
                        "could not check that device {sid} really belongs to {} ({why})",
                        m.sender
                    );
                    unconfirmed = Some(why);
                }
                Binding::Refused { claimed, published } => {
                    if !charged {
                        if let Some(over) = self.spend_budget(
                            store,
                            Budget::Unconfirmed,
                            &m,
                            (sid, suite),
                            now,
                            &mut step,
                        )? {
                            return Ok(over);
                        }
                    }
                    log::warn!(
                        "refused a key exchange claiming to come from device {sid} of {}: it \
                         carries identity key {claimed}, but the account publishes {published}",
                        m.sender
                    );
                    if !has_payload {
                        // An empty message carries nothing to lose (a late key-exchange
                        // answer from a device since reinstalled under its id, or a
                        // forgery): like one that does not decrypt, it is only logged.
                        return Ok(step);
                    }
                    let failure = Failure::ForgedKeyExchange { claimed, published };
                    return Ok(m.failed(step, sid, suite, failure));
                }
            }
        }
        let mut shared: Option<minidom::Element> = None;
        let mut trust_element: Option<minidom::Element> = None;
        let mut sas_element: Option<minidom::Element> = None;
        let result = encrypted.and_then(|el| {
            let o = self.local.open(&el, &self.jid, &m.sender, existing, rng)?;
            let body = match (&o.payload, suite) {
                (None, _) => None,
                (Some(_), Suite::Omemo2) => {
                    // The envelope must name the real sender and the conversation's addressee:
                    // a room message is addressed to the room (XEP-0384 §5.5.1).
                    let to = if m.sender == self.jid || m.nick.is_some() {
                        m.peer.as_str()
                    } else {
                        self.jid.as_str()
                    };
                    let env = o.envelope(sce::Expect {
                        from: &m.sender,
                        to,
                        require_to: false,
                    })?;
                    shared = env
                        .content
                        .iter()
                        .find(|c| c.is("file-sharing", hush_files::NS_SFS))
                        .cloned();
                    trust_element = env.content.iter().find(|c| TrustMessage::is(c)).cloned();
                    sas_element = env.content.iter().find(|c| SasMessage::is(c)).cloned();
                    Some(
                        env.content
                            .iter()
                            .filter(|c| c.name() == "body")
                            .map(|c| c.text())
                            .collect::<String>(),
                    )
                }
                (Some(p), _) => Some(String::from_utf8_lossy(p).into_owned()),
            };
            Ok((o, body))
        });
        let (o, body) = match result {
            Ok(opened) => opened,
            // An empty message (a key-exchange answer or heartbeat) carries no content, so
            // none is lost: one that does not decrypt — between two other devices, or from a
            // session replaced since it was sent (after `session reset`) — is only logged. A
            // broken session still shows on the next message with content.
            Err(e) if !has_payload => {
                log::info!(
                    "ignored an empty OMEMO message from device {sid} of {} that did not \
                     decrypt: {e}",
                    m.sender
                );
                return Ok(ReceiveStep::nothing());
            }
            Err(e) => {
                // A stranger's failures are budgeted like its new sessions: junk cannot fill
                // the history.
                if stranger && !charged {
                    if let Some(over) = self.spend_budget(
                        store,
                        Budget::Stranger,
                        &m,
                        (sid, suite),
                        now,
                        &mut step,
                    )? {
                        return Ok(over);
                    }
                }
                let mut new_key = None;
                let failure = match e {
                    // The sender built its session on keys this device retired (it was away
                    // longer than they are kept). It is sent a key exchange that heals it (see
                    // `crate::heal`; a stranger's failure was paid for from its budget above);
                    // a reset here would not help.
                    // Only for a key exchange under the identity key we can vouch for (our
                    // session's, or the one the account publishes): anyone can make one up
                    // under another key and a made-up signed prekey id, and it must not make
                    // us replace a working session. (One under the real key can still cost a
                    // heal an hour, built on the real bundle: churn, no takeover.) A key we
                    // never met is news, shown with the failure.
                    ProtoError::UnknownSignedPreKey(_) | ProtoError::UnknownPreKey(_)
                        if vouched =>
                    {
                        if let (Some(beat), Some(identity)) = (kex_base, claimed) {
                            let (trust, new) =
                                note_identity(store, &m.sender, &identity, m.at, &mut step)?;
                            new_key = new.then(|| identity.fingerprint());
                            if trust != Trust::Distrusted {
                                step.after.heal = Some((
                                    crate::Heal {
                                        suite,
                                        jid: m.sender.clone(),
                                        device: sid,
                                        beat,
                                        identity,
                                    },
                                    now,
                                ));
                            }
                        }
                        Failure::RetiredKeys {
                            detail: e.to_string(),
                        }
                    }
                    // A control message for another device (a trust message to verified devices
                    // only, a comparison with one device) is nothing this device lost.
                    ProtoError::NotForThisDevice(_) if m.control && suite == Suite::Omemo2 => {
                        log::info!(
                            "passed over a control message from device {sid} of {} meant for \
                             other devices",
                            m.sender
                        );
                        return Ok(ReceiveStep::nothing());
                    }
                    ProtoError::NotForThisDevice(_) => Failure::NotForThisDevice,
                    e => Failure::Undecryptable {
                        detail: e.to_string(),
                    },
                };
                let mut step = m.failed(step, sid, suite, failure);
                if let Some(d) = &mut step.after.delivery {
                    d.new_key = new_key;
                }
                return Ok(step);
            }
        };
        if o.new_state {
            // (A stranger's new session was paid for above, before the key agreement.)
            // A key exchange for a device we already hold a session with, under another
            // identity key, is not taken: XEP-0384 leaves replacing a session to the user, and
            // the server could otherwise swap a verified key for its own.
            if o.identity_changed {
                if !has_payload {
                    // Nothing to lose (a late answer from what the device was before a
                    // reinstall, or a forgery): like a refused empty key exchange without a
                    // session, it is only logged. A message with content shows the refusal.
                    log::warn!(
                        "ignored an empty key exchange from device {sid} of {} under another \
                         identity key ({}); the old session stays",
                        m.sender,
                        o.sender_identity.fingerprint()
                    );
                    return Ok(step);
                }
                let failure = Failure::IdentityChanged {
                    fingerprint: o.sender_identity.fingerprint(),
                };
                return Ok(m.failed(step, sid, suite, failure));
            }
        }
        step.after.readable = Some((m.sender.clone(), sid));
        // After a rollback, a key exchange read again from the archive may already have been
        // answered by the lost state: the peer is then ahead of the session rebuilt here, whose
        // sending side starts afresh. It is replaced from the bundle before we send, like every
        // rewound session (and gets no empty answer). Live messages came after the lost state.
        if o.new_state && self.rollback_seen && self.phase == Phase::CatchingUp {
            step.transaction
                .rewound_sessions
                .push(hush_store::SessionKey::new(suite, &m.sender, sid));
        }
        if m.sender == self.jid && m.peer != self.jid {
            // An authenticated copy of what another device of ours sent: we wrote to that
            // contact. (Only once it decrypted: a forged or unreadable "sent" copy, or one in
            // clear, must not lift anyone out of the stranger budget.)
            step.transaction
                .conversations
                .push((m.peer.clone(), ConversationChange::Contact));
        }
        let (trust, new) = note_identity(store, &m.sender, &o.sender_identity, m.at, &mut step)?;
        // Every key a session is built from is news to the user, however it came.
        let new_key = new.then(|| o.sender_identity.fingerprint());
        // XEP-0450: a trust message is applied or held in this step's transaction, and
        // shown as what it did rather than as an (empty) message.
        let mut atm = None;
        let mut body = body;
        if let Some(element) = trust_element.as_ref().filter(|_| m.nick.is_none()) {
            match TrustMessage::from_element(element) {
                Ok(message) => {
                    let from = crate::atm::SenderDevice {
                        jid: &m.sender,
                        key: &o.sender_identity,
                        trust,
                    };
                    atm = Some(self.trust_message_arrived(
                        store,
                        from,
                        &message,
                        now,
                        &mut step.transaction,
                    )?);
                }
                Err(e) => log::warn!(
                    "ignored a trust message from device {sid} of {}: {e}",
                    m.sender
                ),
            }
            if body.as_deref() == Some("") {
                body = None;
            }
        }
        // A comparison of short authentication strings, between two devices (not in rooms).
        let mut sas = None;
        if let Some(element) = sas_element.as_ref().filter(|_| m.nick.is_none()) {
            match SasMessage::from_element(element) {
                Ok(message) => {
                    sas = Some(crate::SasArrival {
                        message,
                        from: hush_proto::sas::Party {
                            jid: m.sender.clone(),
                            device: sid,
                            identity: o.sender_identity,
                        },
                    })
                }
                Err(e) => log::warn!(
                    "ignored a comparison message from device {sid} of {}: {e}",
                    m.sender
                ),
            }
            if body.as_deref() == Some("") {
                body = None;
            }
        }
        let heartbeat = o.session.needs_heartbeat();
        if (o.was_key_exchange && !o.read_only_state) || heartbeat {
            // XEP-0384: answer a key exchange with an empty message so the peer stops sending
            // it, and send a heartbeat after many unanswered messages.
            step.after.owed = Some(Owed {
                suite,
                jid: m.sender.clone(),
                device: sid,
            });
        }
        step.after.used_prekey = o.consumed_prekey.is_some();
        step.transaction.received.push(m.record(
            sid,
            suite,
            Outcome::Decrypted {
                session: Box::new(o.session),
                // A control message (a trust message, a comparison step) is kept without
                // text, out of history, so that its copies (the archive, a Carbon) are known.
                body: match &body {
                    Some(b) => Some(b.as_bytes().to_vec()),
                    None if atm.is_some() || sas.is_some() => {
                        Some(hush_store::CONTROL_BODY.to_vec())
                    }
                    None => None,
                },
                consumed_prekey: o.consumed_prekey,
            },
        ));
        let Some(body) = body else {
            if new_key.is_some() || atm.is_some() || sas.is_some() {
                step.after.delivery = Some(Delivery {
                    from: m.sender.clone(),
                    device: sid,
                    suite: Some(suite),
                    body: None,
                    failure: None,
                    trust: Some(trust),
                    properties: Properties::omemo(Authentication::Weak),
                    warning: unconfirmed.map(|u| Warning::Sender {
                        unconfirmed: Some(u),
                        key: None,
                    }),
                    file: None,
                    new_key,
                    atm,
                    sas,
                    arrival: m.arrival(),
                });
            }
            return Ok(step);
        };
        let conversation = m.conversation;
        if !conversation.policy.encrypted {
            step.transaction
                .conversations
                .push((m.peer.clone(), ConversationChange::Encrypted));
        }
        let key = if trust == Trust::Distrusted {
            Some(KeyConcern::Distrusted)
        } else if trust == Trust::Undecided {
            Some(KeyConcern::NewUnverified)
        } else if conversation.policy.min_auth == Authentication::Strong && trust != Trust::Verified
        {
            Some(KeyConcern::NotVerified)
        } else {
            None
        };
        let warning = (unconfirmed.is_some() || key.is_some())
            .then_some(Warning::Sender { unconfirmed, key });
        let authentication = if trust == Trust::Verified {
            Authentication::Strong
        } else {
            Authentication::Weak
        };
        let file = shared_file(shared.as_ref(), &body);
        step.after.delivery = Some(Delivery {
            from: m.sender.clone(),
            device: sid,
            suite: Some(suite),
            body: Some(body),
            failure: None,
            trust: Some(trust),
            properties: Properties::omemo(authentication),
            warning,
            file,
            new_key,
            atm,
            sas,
            arrival: m.arrival(),
        });
        Ok(step)
    }

    /// Spends one unit of a stranger's budget, as the store has it (the row goes into `step`).
    /// `None`: go ahead. `Some(step)`: over the limit; that step stores a visible notice the
    /// first time in a window, then nothing.
    /// `(sid, suite)`: the sending device and the suite it wrote in, for the notice.
    fn spend_budget<S: Store + ?Sized>(
        &self,
        store: &S,
        budget: Budget,
        m: &Message,
        (sid, suite): (u32, Suite),
        now: u64,
        step: &mut ReceiveStep,
    ) -> Result<Option<ReceiveStep>> {
        let window = strangers::window(now);
        let usage = store.stranger_usage(&m.sender, window)?;
        let shared = budget == Budget::Stranger;
        let (verdict, row) = strangers::charge(&m.sender, usage, window, shared);
        // A copy of something already recorded (read live, then again from the archive) is
        // not news: it gets no notice of its own, or "ignored" would be shown while nothing was.
        // (Copies that fit the budget are recognised at commit, where they write nothing.)
        let notice = matches!(verdict, Verdict::RejectAndNotify | Verdict::RejectUnnamed);
        if notice && store.holds(&m.sender, &m.ids)? {
            return Ok(Some(ReceiveStep::nothing()));
        }
        Ok(match verdict {
            Verdict::Allow => {
                step.transaction.stranger = row;
                None
            }
            Verdict::Reject => Some(ReceiveStep::nothing()),
            Verdict::RejectUnnamed => {
                let unnamed = store.stranger_usage(strangers::UNNAMED, window)?;
                let Some(row) = strangers::unnamed_notice(unnamed, window) else {
                    return Ok(Some(ReceiveStep::nothing()));
                };
                let failure = Failure::StrangersUnnamed;
                let mut notice = ReceiveStep::nothing();
                notice.transaction.stranger = Some(row);
                // Stored without the message's ids, like the notices by name (see below).
                let sender = Message {
                    ids: MessageIds::default(),
                    ..m.clone()
                };
                Some(sender.failed(notice, sid, suite, failure))
            }
            Verdict::RejectAndNotify => {
                let failure = match budget {
                    Budget::Stranger => Failure::StrangerLimit {
                        per_sender: strangers::PER_STRANGER,
                        all: strangers::ALL_STRANGERS,
                    },
                    Budget::UnlistedDevice => Failure::UnlistedDevices {
                        per_sender: strangers::PER_STRANGER,
                    },
                    Budget::Unconfirmed => Failure::UnconfirmedKeyExchanges {
                        per_sender: strangers::PER_STRANGER,
                    },
                };
                let mut notice = ReceiveStep::nothing();
                notice.transaction.stranger = row;
                // The notice is about the sender, not about this message: stored under the
                // message's ids, it would be taken for a copy of an earlier failure of the
                // same message (an archived copy arriving just as the budget runs out) and
                // dropped unseen, while the budget records the sender as told — everything
                // after it would then be ignored without a word.
                let sender = Message {
                    ids: MessageIds::default(),
                    ..m.clone()
                };
                Some(sender.failed(notice, sid, suite, failure))
            }
        })
    }
}

/// What a costly message is charged to (the same store-kept budget, per JID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    /// A JID we never wrote to.
    Stranger,
    /// A device its account does not list (a contact's, or one of "ours").
    UnlistedDevice,
    /// A key exchange whose identity key the claimed sender's account does not publish for
    /// that device (each one costs a bundle fetch and a visible failure).
    Unconfirmed,
}

/// What the sender's published bundle says of a key exchange.
enum Binding {
    /// The bundle carries the key exchange's identity key.
    Confirmed,
    /// No usable bundle could be had (none published, not readable without a presence
    /// subscription — Profanity publishes its bundle that way —, the server failing): the
    /// message is read, with this warning, rather than lost. A key that differs from the one
    /// published is another matter: see `Refused`.
    Unconfirmed(Unconfirmed),
    /// The sender publishes another identity key for that device: refused.
    Refused {
        /// The fingerprint of the key the key exchange carries.
        claimed: String,
        /// The fingerprint of the key published for the device.
        published: String,
    },
}

/// What the bundle fetched for device `sid` of `sender` says of a key exchange carrying
/// identity key `claimed`.
fn binding(sid: u32, claimed: &IdentityKey, bundle: Option<&Fetched>) -> Binding {
    Binding::Unconfirmed(match bundle {
        Some(Ok(b)) if b.device_id != sid => Unconfirmed::OtherDevice(b.device_id),
        Some(Ok(b)) if b.verify().is_err() => Unconfirmed::BadSignature,
        Some(Ok(b)) if b.identity.same_identity(claimed) => return Binding::Confirmed,
        Some(Ok(b)) => {
            return Binding::Refused {
                claimed: claimed.fingerprint(),
                published: b.identity.fingerprint(),
            }
        }
        Some(Err(e)) => Unconfirmed::Unreadable(e.clone()),
        None => Unconfirmed::NotFetched,
    })
}

/// Whether `jid` lists `device` in `suite`, as far as the store knows.
fn listed<S: Store + ?Sized>(store: &S, suite: Suite, jid: &str, device: u32) -> Result<bool> {
    Ok(store
        .devices(suite, jid)?
        .iter()
        .any(|d| d.device_id == device && d.listed))
}

/// The trust of an identity key of `jid`, and whether it is met for the first time (its first
/// trust is then written in the step's transaction). New keys are trusted blindly only *before*
/// verification (BTBV): once the user verified any key of `jid`, a new one stays undecided
/// until the user looks at it — it is what a server slipping in a device would produce.
pub(crate) fn note_identity<S: Store + ?Sized>(
    store: &S,
    jid: &str,
    identity: &IdentityKey,
    at: u64,
    step: &mut ReceiveStep,
) -> Result<(Trust, bool)> {
    let (trust, new) = first_trust(store, jid, identity, &step.transaction.new_keys)?;
    if new {
        step.transaction.new_keys.push(NewKey {
            jid: jid.to_owned(),
            identity: *identity,
            trust,
            at,
        });
    }
    Ok((trust, new))
}

/// The trust of `identity` of `jid` as stored, or as it would start (and `true`) when it is
/// new — `pending` holds keys already met in the same step.
pub(crate) fn first_trust<S: Store + ?Sized>(
    store: &S,
    jid: &str,
    identity: &IdentityKey,
    pending: &[NewKey],
) -> Result<(Trust, bool)> {
    if let Some(t) = store.trust(jid, identity)? {
        return Ok((t, false));
    }
    if let Some(k) = pending
        .iter()
        .find(|k| k.jid == jid && k.identity == *identity)
    {
        return Ok((k.trust, false));
    }
    // Keys met earlier in the same step do not count as on record: under trust on first use,
    // every device of an account met at once is part of the first use.
    Ok((store.first_trust(jid)?, true))
}

/// The facts of one incoming message the records are made of.
#[derive(Clone)]
struct Message {
    sender: String,
    peer: String,
    /// The sender's nickname, for a room message (the room is `peer`).
    nick: Option<String>,
    /// The recipient: us, or the contact for a copy of what our other devices sent.
    to: String,
    ids: MessageIds,
    at: u64,
    /// Our server held it (its stamp is `at`).
    delayed: bool,
    /// The conversation's record as stored before this message.
    conversation: hush_store::ConversationRecord,
    /// A control message (see [`Inbound::control`]).
    control: bool,
}

impl Message {
    /// Where it was going and when, for its delivery.
    fn arrival(&self) -> crate::Arrival {
        crate::Arrival {
            room: self.nick.as_ref().map(|_| self.peer.clone()),
            nick: self.nick.clone(),
            to: self.to.clone(),
            at: Some(self.at),
            delayed: self.delayed,
            id: self
                .ids
                .origin_id
                .clone()
                .or_else(|| self.ids.stanza_id.clone()),
        }
    }

    fn record(&self, sid: u32, suite: Suite, outcome: Outcome) -> hush_store::Received {
        hush_store::Received {
            ids: self.ids.clone(),
            peer: self.peer.clone(),
            sender: self.sender.clone(),
            sender_device: sid,
            suite,
            at: self.at,
            outcome,
        }
    }

    /// A step storing a message that could not be read, and showing it — unless the store
    /// finds the same message already failed (an archived copy of it): it was shown then.
    fn failed(
        &self,
        mut step: ReceiveStep,
        sid: u32,
        suite: Suite,
        failure: Failure,
    ) -> ReceiveStep {
        step.transaction.received.push(self.record(
            sid,
            suite,
            Outcome::Failed {
                failure: failure.clone(),
            },
        ));
        step.after.delivery = Some(Delivery {
            from: self.sender.clone(),
            device: sid,
            suite: Some(suite),
            body: None,
            failure: Some(failure),
            trust: None,
            // Nothing was read, so nothing can be claimed about it.
            properties: Properties::PLAINTEXT,
            warning: None,
            file: None,
            new_key: None,
            atm: None,
            sas: None,
            arrival: self.arrival(),
        });
        step
    }
}
/// The file an encrypted message shares: its `<file-sharing/>` element when it carries a usable
/// one, else its body when that is only an `aesgcm://` link. An element that cannot be used
/// is logged and the body tried.
fn shared_file(element: Option<&minidom::Element>, body: &str) -> Option<hush_files::SharedFile> {
    if let Some(element) = element {
        match hush_files::SharedFile::from_element(element) {
            Ok(file) => return Some(file),
            Err(e) => log::info!("a message shared a file Hush cannot use: {e}"),
        }
    }
    hush_files::Link::parse(body)
        .ok()
        .map(hush_files::SharedFile::from_link)
}

/// When a message with `stamp` arriving at `now` in the conversation with `peer` was sent, as
/// history shows it (see [`ServerStamp::arrival`]).
pub(crate) fn arrival_time<S: Store + ?Sized>(
    store: &S,
    peer: &str,
    stamp: Option<ServerStamp>,
    now: u64,
) -> Result<u64> {
    let newest = match stamp {
        Some(ServerStamp::Delivered(_)) => store.history(peer, 1)?.last().map(|m| m.at),
        _ => None,
    };
    Ok(ServerStamp::arrival(stamp, newest, now))
}
