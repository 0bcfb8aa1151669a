//! One outgoing message: which devices can read it, what the policy allows, and the element
//! and transaction that send it.
//!
//! A send takes three steps, the shell fetching in between:
//! 1. [`Engine::route`]: in clear (only on the user's request or an off switch) or encrypted.
//! 2. [`Engine::plan_send`], given the device lists the shell fetched: which devices to
//!    encrypt for, which are left out as inactive, and which bundles to fetch (devices with no
//!    session yet).
//! 3. [`Engine::prepare_send`], given those bundles: the send policy's decision over every
//!    possible reader, the sealed element, and one transaction with the advanced sessions, the
//!    history and outbox entry, the keys met for the first time, the device lists and the
//!    conversation's new floor. A refused send returns an error and no transaction: the store
//!    stays exactly as it was.

use hush_proto::policy::{self, Decision, KeyTrust, Properties, Reader};
use hush_proto::{sce, seal, Bundle, Recipient, Session, Suite};
use hush_store::{
    ConversationChange, DeviceListUpdate, MessageIds, Outgoing, SessionKey, Store, Transaction,
};
use rand_core::CryptoRng;

use crate::receive::first_trust;
use crate::refusal::{DeviceState, FetchFailed, Obstacle, Refusal};
use crate::stanza::MessageStanza;
use crate::{
    Content, Engine, EngineError, Owed, Result, SendOptions, SendReport, MAX_LISTED_DEVICES,
};

/// How a message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// In clear: the user asked (`--plaintext`) or switched encryption off.
    InClear,
    /// Encrypted, for the devices the plan finds.
    Encrypted,
}

/// A message ready to go: commit `transaction`, then transmit `stanza`, then mark the outbox
/// entry sent.
#[derive(Debug)]
#[must_use = "commit the transaction, then transmit"]
pub struct Prepared {
    /// Everything the send writes.
    pub transaction: Transaction,
    /// What to transmit.
    pub stanza: MessageStanza,
    /// What the user is told.
    pub report: SendReport,
}

/// The devices one encrypted send is for, decided from the device lists (step 2).
#[derive(Debug, Clone)]
pub struct SendPlan {
    to: String,
    suite: Suite,
    /// `(jid, device, is the addressee's)`, the addressee's devices first.
    devices: Vec<(String, u32, bool)>,
    /// Left out as inactive, with why.
    inactive: Vec<((String, u32), Obstacle)>,
    device_lists: Vec<DeviceListUpdate>,
    /// Devices to encrypt for that have no session yet: fetch their bundles (in
    /// [`SendPlan::suite`]) and hand them to [`Engine::prepare_send`].
    pub bundles_needed: Vec<(String, u32)>,
}

impl SendPlan {
    /// The suite of the message.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The devices to encrypt for, `(jid, device, is the addressee's)`, the addressee's first.
    pub fn devices(&self) -> &[(String, u32, bool)] {
        &self.devices
    }

    /// The devices left out as inactive, each with why.
    pub fn inactive(&self) -> &[((String, u32), Obstacle)] {
        &self.inactive
    }
}

/// A message of elements only (no text for the user; not in history).
#[derive(Debug)]
pub struct Control {
    /// The element for the SCE envelope's content.
    pub element: minidom::Element,
    /// Who reads it.
    pub readers: ControlReaders,
}

/// Who reads a [`Control`] message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlReaders {
    /// Every device of the plan whose key is verified (XEP-0434's rule for trust messages).
    Verified,
    /// This one device of the addressee, and nobody else (a comparison of short
    /// authentication strings).
    Device(u32),
}

/// A bundle the shell fetched, or why it could not.
pub type Fetched = core::result::Result<Bundle, FetchFailed>;

impl Engine {
    /// Step 1: whether a message to `to` goes in clear (only as the user asked) or encrypted.
    pub fn route<S: Store + ?Sized>(
        &self,
        store: &S,
        to: &str,
        options: SendOptions,
    ) -> Result<Route> {
        let conversation = store.conversation(to)?;
        if !(options.plaintext || options.global_off || conversation.policy.off) {
            return Ok(Route::Encrypted);
        }
        match policy::decide(
            &conversation.policy,
            options.global_off,
            options.plaintext,
            &[],
        ) {
            Decision::Plaintext { .. } => Ok(Route::InClear),
            Decision::Refuse { missing } => Err(EngineError::NotSent {
                jid: to.to_owned(),
                refusal: Refusal::Policy {
                    missing,
                    devices: Vec::new(),
                },
            }),
            Decision::Encrypt { .. } => Err(EngineError::NotSent {
                jid: to.to_owned(),
                refusal: Refusal::NoDecision,
            }),
        }
    }

    /// A message in clear — only reached on the user's explicit request (see
    /// [`Engine::route`]).
    pub fn prepare_in_clear<R: CryptoRng + ?Sized>(
        &self,
        to: &str,
        text: &str,
        now: u64,
        rng: &mut R,
    ) -> Prepared {
        let (origin_id, outgoing) =
            self.outgoing(to, text, None, text.as_bytes().to_vec(), now, rng);
        Prepared {
            transaction: Transaction {
                conversations: vec![(to.to_owned(), ConversationChange::Contact)],
                outgoing: Some((Vec::new(), outgoing)),
                ..Transaction::default()
            },
            stanza: MessageStanza::in_clear(to, text, origin_id),
            report: SendReport {
                suite: None,
                suites: Vec::new(),
                devices: Vec::new(),
                skipped: Vec::new(),
                properties: Properties::PLAINTEXT,
                new_keys: Vec::new(),
                without_devices: Vec::new(),
                members_added: Vec::new(),
                members_removed: Vec::new(),
                members_unreached: Vec::new(),
            },
        }
    }

    /// Step 2: plans an encrypted send to `to` from the device lists the shell fetched: the
    /// addressee's (`their`: the first suite, in [`Suite::ALL`] order, with a non-empty list)
    /// and ours in the same suite (`own`, if it could be read).
    pub fn plan_send<S: Store + ?Sized>(
        &self,
        store: &S,
        to: &str,
        their: Option<(Suite, Vec<u32>)>,
        own: Option<Vec<u32>>,
        now: u64,
    ) -> Result<SendPlan> {
        let mut device_lists = Vec::new();
        let (suite, their) = match their {
            Some((_, list)) if list.len() > MAX_LISTED_DEVICES => {
                return Err(EngineError::DeviceListTooLong {
                    jid: to.to_owned(),
                    count: list.len(),
                })
            }
            Some((suite, list)) => {
                self.refuse_downgrade(store, to, suite, &list)?;
                device_lists.push(DeviceListUpdate {
                    suite,
                    jid: to.to_owned(),
                    devices: list.clone(),
                    at: now,
                });
                (suite, list)
            }
            None => (Suite::Omemo2, Vec::new()),
        };
        let mut own = own.unwrap_or_default();
        if own.len() > MAX_LISTED_DEVICES {
            return Err(EngineError::DeviceListTooLong {
                jid: self.jid.clone(),
                count: own.len(),
            });
        }
        if !own.is_empty() {
            device_lists.push(DeviceListUpdate {
                suite,
                jid: self.jid.clone(),
                devices: own.clone(),
                at: now,
            });
        }
        own.retain(|id| *id != self.device_id());
        // Never this device itself, also when we write to our own account.
        let mut their = their;
        if to == self.jid {
            their.retain(|id| *id != self.device_id());
        }
        // Each device once, even if a list names it twice or we write to our own account: two
        // sessions built for one device in one message would leave the stored one unusable.
        let mut devices: Vec<(String, u32, bool)> = Vec::new();
        for (jid, device, peer) in their
            .iter()
            .map(|d| (to.to_owned(), *d, true))
            .chain(own.iter().map(|d| (self.jid.clone(), *d, false)))
        {
            if !devices.iter().any(|(j, d, _)| *j == jid && *d == device) {
                devices.push((jid, device, peer));
            }
        }
        let inactive = self.left_out_inactive(store, suite, to, &devices, now)?;
        // A session a restore rewound is never used to encrypt: its next message keys were
        // used before the backup was made. It is replaced by a new one, from the bundle.
        let rewound = store.sessions_needing_reset()?;
        let mut bundles_needed = Vec::new();
        for (jid, device, _) in &devices {
            let left_out = inactive.iter().any(|((j, d), _)| j == jid && d == device);
            let key = SessionKey::new(suite, jid, *device);
            if !left_out && (rewound.contains(&key) || store.session(&key)?.is_none()) {
                bundles_needed.push((jid.clone(), *device));
            }
        }
        Ok(SendPlan {
            to: to.to_owned(),
            suite,
            devices,
            inactive,
            device_lists,
            bundles_needed,
        })
    }

    /// Step 3: decides and seals. `bundles` answers the plan's `bundles_needed` (a missing
    /// answer counts as "no bundle").
    pub fn prepare_send<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        plan: SendPlan,
        content: impl Into<Content>,
        bundles: Vec<((String, u32), Fetched)>,
        now: u64,
        rng: &mut R,
    ) -> Result<Prepared> {
        let SendPlan {
            to,
            suite,
            devices,
            inactive,
            device_lists,
            ..
        } = plan;
        let content = content.into();
        let text = content.body.as_str();
        let conversation = store.conversation(&to)?;
        let targets = devices
            .into_iter()
            .map(|(jid, device, peer)| (suite, jid, device, peer))
            .collect();
        let opened = self.open_sessions(store, targets, inactive, bundles, now, rng)?;
        let Opened {
            readers,
            sessions,
            reasons,
            new_keys,
            report_keys,
        } = opened;
        let (chosen, skipped, properties) =
            decide_readers(&conversation.policy, &to, &readers, &reasons)?;
        let mut targets: Vec<(String, u32, Session)> = sessions
            .into_iter()
            .filter(|(_, j, d, _)| chosen.iter().any(|(cj, cd)| cj == j && cd == d))
            .map(|(_, j, d, s)| (j, d, s))
            .collect();
        let element = self.seal_content(suite, &content, &to, &mut targets, now, rng)?;
        let advanced: Vec<(SessionKey, Session)> = targets
            .iter()
            .map(|(j, d, s)| (SessionKey::new(suite, j, *d), s.clone()))
            .collect();
        let stanza = String::from(&element.to_element()).into_bytes();
        let (origin_id, mut outgoing) = self.outgoing(&to, text, Some(suite), stanza, now, rng);
        // Known by content too, should a server send it back to us under new ids.
        outgoing.ids.digest = element.sent_digest();
        let devices = targets.iter().map(|(j, d, _)| (j.clone(), *d)).collect();
        Ok(Prepared {
            transaction: Transaction {
                new_keys,
                device_lists,
                // What this send reached becomes the conversation's floor; and writing to
                // someone makes them a contact.
                conversations: vec![
                    (to.clone(), ConversationChange::Reached(properties)),
                    (to.clone(), ConversationChange::Contact),
                ],
                outgoing: Some((advanced, outgoing)),
                ..Transaction::default()
            },
            stanza: MessageStanza::encrypted(&to, element, origin_id),
            report: SendReport {
                suite: Some(suite),
                suites: vec![suite],
                devices,
                skipped,
                properties,
                new_keys: report_keys,
                without_devices: Vec::new(),
                members_added: Vec::new(),
                members_removed: Vec::new(),
                members_unreached: Vec::new(),
            },
        })
    }

    /// Step 3 for a trust message (XEP-0434): `element` sealed in OMEMO 2 for the devices of
    /// the plan whose keys are verified, and nobody else (XEP-0434 §6). Commit the transaction
    /// before transmitting: an outgoing entry without text (left out of history) and the
    /// sessions it advanced. `None`
    /// when no verified device would read it, or the addressee has no OMEMO 2 devices: ATM is
    /// OMEMO 2 only, and such a message would tell no one anything.
    pub fn prepare_trust_message<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        plan: SendPlan,
        element: minidom::Element,
        bundles: Vec<((String, u32), Fetched)>,
        now: u64,
        rng: &mut R,
    ) -> Result<Option<(Transaction, MessageStanza)>> {
        let control = Control {
            element,
            readers: ControlReaders::Verified,
        };
        self.prepare_control(store, plan, control, bundles, now, rng)
    }

    /// Step 3 for a message of elements only, to the readers `control` names: sealed in
    /// OMEMO 2, an outgoing entry without text (left out of history, recognised when the
    /// server echoes it) and the sessions it advanced — commit before transmitting. `None`
    /// when nobody it names can read it, or the addressee has no OMEMO 2 devices.
    pub fn prepare_control<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        plan: SendPlan,
        control: Control,
        bundles: Vec<((String, u32), Fetched)>,
        now: u64,
        rng: &mut R,
    ) -> Result<Option<(Transaction, MessageStanza)>> {
        let Control { element, readers } = control;
        let SendPlan {
            to,
            suite,
            mut devices,
            inactive,
            device_lists,
            ..
        } = plan;
        if suite != Suite::Omemo2 {
            return Ok(None);
        }
        if let ControlReaders::Device(only) = readers {
            devices.retain(|(j, d, _)| *j == to && *d == only);
        }
        let targets = devices
            .into_iter()
            .map(|(jid, device, peer)| (suite, jid, device, peer))
            .collect();
        let opened = self.open_sessions(store, targets, inactive, bundles, now, rng)?;
        let chosen = match readers {
            ControlReaders::Verified => {
                let verified_only = hush_proto::policy::Conversation {
                    off: false,
                    encrypted: true,
                    min_auth: hush_proto::policy::Authentication::Strong,
                };
                match decide_readers(&verified_only, &to, &opened.readers, &opened.reasons) {
                    Ok((chosen, _, _)) => chosen,
                    Err(EngineError::NotSent { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            // Whatever its trust (comparing is how the user comes to decide), but never a
            // device the user refused.
            ControlReaders::Device(_) => opened
                .readers
                .iter()
                .filter(|r| r.usable && r.trust != Some(KeyTrust::Distrusted))
                .map(|r| (r.jid.clone(), r.device))
                .collect(),
        };
        if chosen.is_empty() {
            return Ok(None);
        }
        let mut targets: Vec<(String, u32, Session)> = opened
            .sessions
            .into_iter()
            .filter(|(_, j, d, _)| chosen.iter().any(|(cj, cd)| cj == j && cd == d))
            .map(|(_, j, d, s)| (j, d, s))
            .collect();
        let content = Content {
            body: String::new(),
            extra: vec![element],
        };
        let sealed = self.seal_content(suite, &content, &to, &mut targets, now, rng)?;
        let advanced = targets
            .into_iter()
            .map(|(j, d, s)| (SessionKey::new(suite, &j, d), s))
            .collect();
        // An outgoing entry without text: its copies (the server's echo to our own account,
        // the archive) are recognised as ours, and the outbox resends it after a crash; the
        // history leaves it out.
        // Kept wrapped, so that a resend after a crash goes out as a control message too.
        let kept = minidom::Element::builder("control", crate::outbox::NS_CONTROL)
            .append(sealed.to_element())
            .build();
        let stanza = String::from(&kept).into_bytes();
        let (origin_id, mut outgoing) = self.outgoing(&to, "\0", Some(suite), stanza, now, rng);
        debug_assert_eq!(outgoing.body, hush_store::CONTROL_BODY);
        outgoing.ids.digest = sealed.sent_digest();
        let transaction = Transaction {
            new_keys: opened.new_keys,
            device_lists,
            outgoing: Some((advanced, outgoing)),
            ..Transaction::default()
        };
        Ok(Some((
            transaction,
            MessageStanza::control(&to, sealed, origin_id),
        )))
    }

    /// `content` for the conversation `to`, sealed in `suite` for the sessions of `targets`
    /// (advanced in place): the body and the extra elements in an SCE envelope naming us and
    /// `to` for omemo:2; the body alone for legacy, which encrypts nothing else.
    pub(crate) fn seal_content<R: CryptoRng + ?Sized>(
        &self,
        suite: Suite,
        content: &Content,
        to: &str,
        targets: &mut [(String, u32, Session)],
        now: u64,
        rng: &mut R,
    ) -> Result<hush_proto::EncryptedElement> {
        let payload = match suite {
            Suite::Omemo2 => {
                // A message of elements only (a trust message) has no body at all.
                let mut children = Vec::new();
                if !content.body.is_empty() || content.extra.is_empty() {
                    children.push(sce::body(&content.body));
                }
                children.extend(content.extra.iter().cloned());
                sce::seal(&children, &self.jid, to, Some(now), rng)?
            }
            _ => content.body.as_bytes().to_vec(),
        };
        let mut recipients: Vec<Recipient<'_>> = targets
            .iter_mut()
            .map(|(jid, device, session)| Recipient {
                jid,
                device_id: *device,
                session,
            })
            .collect();
        Ok(seal(
            suite,
            self.device_id(),
            Some(&payload),
            &mut recipients,
            rng,
        )?)
    }

    /// The empty message owed to a device (a key-exchange answer or heartbeat): the element,
    /// and the transaction saving the session it advanced — commit it before transmitting.
    /// `None` when there is no session with that device (any more).
    pub fn prepare_empty<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        owed: &Owed,
        rng: &mut R,
    ) -> Result<Option<(Transaction, MessageStanza)>> {
        let key = SessionKey::new(owed.suite, &owed.jid, owed.device);
        // A session a restore rewound gets no empty message either (it would reuse a key).
        if store.sessions_needing_reset()?.contains(&key) {
            return Ok(None);
        }
        let Some(session) = store.session(&key)? else {
            return Ok(None);
        };
        self.empty_message(key, session, rng).map(Some)
    }

    /// An empty message to the device of `key` on `session`, and the transaction that saves
    /// the session it advanced (committed before the message leaves), with its origin id.
    pub(crate) fn empty_message<R: CryptoRng + ?Sized>(
        &self,
        key: SessionKey,
        mut session: Session,
        rng: &mut R,
    ) -> Result<(Transaction, MessageStanza)> {
        let element = seal(
            key.suite,
            self.device_id(),
            None,
            &mut [Recipient {
                jid: &key.jid,
                device_id: key.device_id,
                session: &mut session,
            }],
            rng,
        )?;
        let stanza = MessageStanza::encrypted(&key.jid, element, origin_id(rng));
        let transaction = Transaction {
            sessions: vec![(key, session)],
            ..Transaction::default()
        };
        Ok((transaction, stanza))
    }

    /// The devices of `devices` (`(jid, device, is the addressee's)`) left out as inactive,
    /// each with why. Devices silent for too long are left out — except that when every
    /// device of the addressee `to` is silent, leaving them all out would make the addressee
    /// unreachable: inactivity then excludes none of the addressee's devices.
    pub(crate) fn left_out_inactive<S: Store + ?Sized>(
        &self,
        store: &S,
        suite: Suite,
        to: &str,
        devices: &[(String, u32, bool)],
        now: u64,
    ) -> Result<Vec<((String, u32), Obstacle)>> {
        let mut inactive = Vec::new();
        for (jid, device, _) in devices {
            if let Some(why) = self.inactive(store, suite, jid, *device, now)? {
                inactive.push(((jid.clone(), *device), why));
            }
        }
        let all_theirs_inactive = devices
            .iter()
            .filter(|(_, _, theirs)| *theirs)
            .all(|(j, d, _)| inactive.iter().any(|((ij, id), _)| ij == j && id == d));
        if all_theirs_inactive {
            inactive.retain(|((j, _), _)| j != to);
        }
        Ok(inactive)
    }

    /// Why a device is left out as inactive, if it is.
    pub(crate) fn inactive<S: Store + ?Sized>(
        &self,
        store: &S,
        suite: Suite,
        jid: &str,
        device: u32,
        now: u64,
    ) -> Result<Option<Obstacle>> {
        let limit = self.inactive_after.as_secs();
        Ok(store
            .devices(suite, jid)?
            .iter()
            .find(|r| r.device_id == device)
            .filter(|r| now.saturating_sub(r.last_seen) > limit)
            .map(|r| Obstacle::Inactive {
                days: now.saturating_sub(r.last_seen) / 86_400,
            }))
    }

    /// Falling back to an older suite than one we talked with `jid` is refused: a server
    /// hiding the omemo:2 list would otherwise downgrade the conversation silently (legacy has
    /// no SCE envelope binding sender and addressee). `offered`: the list `jid` has in `suite`.
    ///
    /// What shows that we talked in a better suite is a session in it that we built (from the
    /// bundle of a device `jid` listed), or one with a device `jid` announced: named by one of
    /// its lists in the better suite at any time (the store keeps those devices while a session
    /// exists), or in the list offered now (a client publishing both suites lists its devices
    /// in both). A session built from a key exchange of a device
    /// nobody announced anywhere shows nothing: anyone controlling a server can make one up,
    /// and it would lock the user out of writing to a legacy-only contact.
    pub(crate) fn refuse_downgrade<S: Store + ?Sized>(
        &self,
        store: &S,
        jid: &str,
        suite: Suite,
        offered: &[u32],
    ) -> Result<()> {
        let rank = Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0);
        for better in &Suite::ALL[..rank] {
            // Every device the store knows was named by a list of `jid` at some point (and,
            // if no longer listed, holds a session): a list hidden or emptied by the server
            // afterwards does not make a device we talked with unannounced.
            let recorded = store.devices(*better, jid)?;
            let announced = |device: u32| {
                offered.contains(&device) || recorded.iter().any(|r| r.device_id == device)
            };
            let used = store.sessions_of(*better, jid)?.iter().any(|(device, s)| {
                s.initiation() == hush_proto::Initiation::Active || announced(*device)
            });
            if used {
                return Err(EngineError::NotSent {
                    jid: jid.to_owned(),
                    refusal: Refusal::Downgrade {
                        used: *better,
                        left: suite,
                    },
                });
            }
        }
        Ok(())
    }

    /// A new origin id and the outbox entry for `text` to `to`, sent in `suite` (`None`: in
    /// clear) as the bytes `stanza`.
    fn outgoing<R: CryptoRng + ?Sized>(
        &self,
        to: &str,
        text: &str,
        suite: Option<Suite>,
        stanza: Vec<u8>,
        now: u64,
        rng: &mut R,
    ) -> (String, Outgoing) {
        let origin_id = origin_id(rng);
        let outgoing = self.outgoing_with_id(to, text, suite, stanza, now, origin_id.clone());
        (origin_id, outgoing)
    }

    /// The outbox entry for `text` to `to` under `origin_id` (see [`Self::outgoing`]).
    pub(crate) fn outgoing_with_id(
        &self,
        to: &str,
        text: &str,
        suite: Option<Suite>,
        stanza: Vec<u8>,
        now: u64,
        origin_id: String,
    ) -> Outgoing {
        Outgoing {
            ids: MessageIds {
                origin_id: Some(origin_id),
                ..Default::default()
            },
            peer: to.to_owned(),
            sender: self.jid.clone(),
            sender_device: self.device_id(),
            suite: suite.unwrap_or(Suite::Omemo2),
            at: now,
            body: text.as_bytes().to_vec(),
            encrypted: suite.is_some(),
            stanza,
        }
    }
}

/// What [`Engine::open_sessions`] found for the devices of a message.
pub(crate) struct Opened {
    /// Every device that could read, its trust, and whether it is usable.
    pub(crate) readers: Vec<Reader>,
    /// The sessions to encrypt on: `(suite, jid, device, session)`.
    pub(crate) sessions: Vec<(Suite, String, u32, Session)>,
    /// Why each unusable device is unusable.
    pub(crate) reasons: Vec<((String, u32), Obstacle)>,
    /// Keys met for the first time, to record.
    pub(crate) new_keys: Vec<hush_store::NewKey>,
    /// The same, for the report: `(jid, device, fingerprint)`.
    pub(crate) report_keys: Vec<(String, u32, String)>,
}

impl Engine {
    /// The facts the send policy decides on, for `targets` (`(suite, jid, device, is a
    /// reader of the conversation)`): each device's session (stored, or built from the bundle
    /// fetched for it), its trust, or why it cannot be used. `inactive` are left out already.
    pub(crate) fn open_sessions<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        targets: Vec<(Suite, String, u32, bool)>,
        inactive: Vec<((String, u32), Obstacle)>,
        mut bundles: Vec<((String, u32), Fetched)>,
        now: u64,
        rng: &mut R,
    ) -> Result<Opened> {
        let mut readers = Vec::new();
        let mut sessions = Vec::new();
        let mut reasons = inactive;
        let mut new_keys = Vec::new();
        let mut report_keys: Vec<(String, u32, String)> = Vec::new();
        // The sessions to start from fetched bundles are started together first (on every
        // core, for a first message to many devices), then taken below in the targets' order.
        let mut started = self.start_sessions(&targets, &reasons, &mut bundles, rng);
        for (suite, jid, device, peer) in targets {
            let mut reader = Reader {
                jid: jid.clone(),
                device,
                trust: None,
                usable: false,
                peer,
            };
            if reasons.iter().any(|((j, d), _)| *j == jid && *d == device) {
                readers.push(reader);
                continue;
            }
            let key = SessionKey::new(suite, &jid, device);
            let stored = store.session(&key)?;
            let session = match started.remove(&(suite, jid.clone(), device)) {
                // No bundle was fetched: its stored session, if it has one.
                None => stored.ok_or(Obstacle::NotFetched),
                Some(Err(why)) => Err(why),
                // A rewound session keeps reading what the peer already sent on it, and never
                // sends again.
                Some(Ok(new)) => Ok(match stored {
                    Some(old) => old.restart(new),
                    None => new,
                }),
            };
            match session {
                Ok(session) => {
                    let (trust, new) =
                        first_trust(store, &jid, session.peer_identity(), &new_keys)?;
                    if new {
                        new_keys.push(hush_store::NewKey {
                            jid: jid.clone(),
                            identity: *session.peer_identity(),
                            trust,
                            at: now,
                        });
                        report_keys.push((
                            jid.clone(),
                            device,
                            session.peer_identity().fingerprint(),
                        ));
                    }
                    reader.trust = Some(trust.into());
                    reader.usable = true;
                    sessions.push((suite, jid, device, session));
                }
                Err(why) => reasons.push(((jid, device), why)),
            }
            readers.push(reader);
        }
        Ok(Opened {
            readers,
            sessions,
            reasons,
            new_keys,
            report_keys,
        })
    }
}

/// The sessions [`Engine::start_sessions`] started, or why not, by suite, account and device.
type Started =
    std::collections::HashMap<(Suite, String, u32), core::result::Result<Session, Obstacle>>;

impl Engine {
    /// Starts a session from each bundle fetched for a device of `targets` (one with no
    /// session, or with a rewound one) that no reason leaves out, all at once
    /// ([`Session::initiate_all`]). A device whose fetch failed gets its error. Each target
    /// takes at most one bundle, the first fetched for it (as one by one did).
    fn start_sessions<R: CryptoRng + ?Sized>(
        &self,
        targets: &[(Suite, String, u32, bool)],
        reasons: &[((String, u32), Obstacle)],
        bundles: &mut Vec<((String, u32), Fetched)>,
        rng: &mut R,
    ) -> Started {
        let mut out = Started::new();
        let mut to_start: Vec<((Suite, String, u32), hush_proto::Bundle)> = Vec::new();
        for (suite, jid, device, _) in targets {
            if reasons.iter().any(|((j, d), _)| j == jid && d == device) {
                continue;
            }
            let Some(at) = bundles
                .iter()
                .position(|((j, d), _)| j == jid && d == device)
            else {
                continue;
            };
            let key = (*suite, jid.clone(), *device);
            match bundles.swap_remove(at).1 {
                Ok(bundle) => to_start.push((key, bundle)),
                // Fetched and failed: refused even with a stored session (the bundle was
                // fetched because that session is rewound or missing).
                Err(failed) => {
                    out.insert(key, Err(Obstacle::NoBundle(failed)));
                }
            }
        }
        let refs: Vec<&hush_proto::Bundle> = to_start.iter().map(|(_, b)| b).collect();
        let sessions = Session::initiate_all(self.local.identity(), &refs, rng);
        for ((key, _), session) in to_start.into_iter().zip(sessions) {
            out.insert(key, session.map_err(Obstacle::BadBundle));
        }
        out
    }
}

/// The send policy's decision over `readers` for the conversation `to` with `policy`: the
/// devices to encrypt for, those left out (each with why) and what the message will have — or
/// the refusal, naming how each reader stood.
#[allow(clippy::type_complexity)]
pub(crate) fn decide_readers(
    policy: &hush_proto::policy::Conversation,
    to: &str,
    readers: &[Reader],
    reasons: &[((String, u32), Obstacle)],
) -> Result<(Vec<(String, u32)>, Vec<(String, u32, Obstacle)>, Properties)> {
    let reason = |jid: &str, device: u32, fallback: &policy::LeftOut| {
        reasons
            .iter()
            .find(|((j, d), _)| j == jid && *d == device)
            .map(|(_, w)| w.clone())
            .unwrap_or(Obstacle::Policy(fallback.clone()))
    };
    // The send's own settings are not the conversation's: a global off switch was handled
    // by `route`, so only the conversation's policy decides here.
    match policy::decide(policy, false, false, readers) {
        Decision::Encrypt {
            to: chosen,
            left_out,
            properties,
        } => {
            let skipped = left_out
                .iter()
                .map(|(j, d, w)| (j.clone(), *d, reason(j, *d, w)))
                .collect();
            Ok((chosen, skipped, properties))
        }
        Decision::Refuse { missing } => {
            let devices = readers
                .iter()
                .filter(|r| r.peer)
                .map(|r| {
                    let state = match (r.usable, r.trust) {
                        (true, Some(KeyTrust::Verified)) => DeviceState::Verified,
                        (true, Some(KeyTrust::Blind)) => DeviceState::NotVerified,
                        (true, Some(KeyTrust::Distrusted)) => DeviceState::Distrusted,
                        (true, Some(KeyTrust::Undecided)) => DeviceState::Undecided,
                        _ => DeviceState::Unusable(reason(
                            &r.jid,
                            r.device,
                            &policy::LeftOut::Unusable,
                        )),
                    };
                    (r.device, state)
                })
                .collect();
            Err(EngineError::NotSent {
                jid: to.to_owned(),
                refusal: Refusal::Policy { missing, devices },
            })
        }
        Decision::Plaintext { .. } => Err(EngineError::NotSent {
            jid: to.to_owned(),
            refusal: Refusal::UnaskedPlaintext,
        }),
    }
}

/// A fresh XEP-0359 origin id.
pub(crate) fn origin_id<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    format!("hush-{:016x}", rng.next_u64())
}
