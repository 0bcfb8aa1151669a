//! The client logic that ties store, protocol core and server together: announcing our device,
//! sending to every device of a contact (and our own other devices), and receiving with every
//! state change committed before anything is acknowledged.
//!
//! Trust is blind-trust-before-verification for now: a new identity is recorded as `Blind`, a
//! `Distrusted` one is never encrypted to. Decryption errors are never answered with a new
//! session (XEP-0384 forbids it); the error says to run `hush session reset`.

use std::time::Duration;

use hush_proto::policy::{self, Authentication, Decision, KeyTrust, Properties, Reader};
use hush_proto::{
    sce, seal, Bundle, DeviceEntry, DeviceList, Element, EncryptedElement, IdentityKey, Recipient,
    Session, Suite,
};
use hush_store::{Commit, MessageIds, Outcome, Outgoing, Received, SessionKey, Store, Trust};
use rand::rngs::SysRng;
use rand_core::UnwrapErr;

use crate::client::{ConnectOptions, XmppClient};
use crate::error::{Result, XmppError};
use crate::incoming::{Incoming, Payload};
use crate::strangers::{self, StrangerLimits, Verdict};
use crate::BareJid;

/// What a send did.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// The suite used (OMEMO:2 when the contact announces it, legacy otherwise); `None` when
    /// the user had it sent in clear.
    pub suite: Option<Suite>,
    /// The devices the message was encrypted for: `(jid, device id)`.
    pub devices: Vec<(String, u32)>,
    /// Devices left out, with why (no bundle, distrusted, not verified, inactive).
    pub skipped: Vec<(String, u32, String)>,
    /// What the message had.
    pub properties: Properties,
    /// Keys this send met for the first time — a contact's new device, or one the server
    /// added to a device list: `(jid, device id, fingerprint)`. Whether each got the message
    /// is in `devices` / `skipped`; the user should be told either way.
    pub new_keys: Vec<(String, u32, String)>,
}

/// How one message may be sent, besides the conversation's own settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// The user asked for this message to go in clear (`hush send --plaintext`).
    pub plaintext: bool,
    /// The user switched encryption off for every conversation.
    pub global_off: bool,
}

/// A received message after it was committed to the store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's bare JID.
    pub from: String,
    /// The sender's device id (0 for a message in clear).
    pub device: u32,
    /// The suite it came in; `None` for a message in clear.
    pub suite: Option<Suite>,
    /// The text, when it decrypted (or came in clear) and had a body.
    pub body: Option<String>,
    /// Why it did not decrypt, when it did not (also stored in history).
    pub error: Option<String>,
    /// The trust state of the sending device's key.
    pub trust: Option<Trust>,
    /// What this message really had.
    pub properties: Properties,
    /// A warning to show prominently (a message in clear in an encrypted conversation).
    pub warning: Option<String>,
}

/// One account: a connection plus its store.
pub struct Hush<S: Store> {
    xmpp: XmppClient,
    store: S,
    jid: BareJid,
    device_id: u32,
    rng: UnwrapErr<SysRng>,
    /// Messages fetched from the archive after a lost session, not yet handed out.
    backlog: std::collections::VecDeque<Delivery>,
    /// Devices owed an empty message (answer to a key exchange, or heartbeat), held back
    /// while catching up so a backlog of key exchanges is answered once, afterwards.
    owed_empty: Vec<(Suite, BareJid, u32)>,
    /// True during an archive catch-up.
    catching_up: bool,
    /// The last catch-up stopped on an error: the next `receive` finishes it first.
    catch_up_unfinished: bool,
    /// How many new sessions strangers opened lately.
    strangers: StrangerLimits,
    /// The bundle changed but publishing it failed.
    republish_owed: bool,
    /// This device's keys, as stored (see [`Self::reload_device`]).
    local: hush_proto::LocalDevice,
    /// Devices not heard from for this long are left out until they show up again.
    inactive_after: Duration,
    /// The wall clock, in unix seconds (replaceable for tests and simulations).
    clock: fn() -> u64,
    /// Where an archive catch-up starts when no archived message is stored yet (unix seconds).
    since: u64,
}

impl<S: Store> core::fmt::Debug for Hush<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hush")
            .field("jid", &self.jid)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// How long a device may stay silent before Hush stops encrypting to it (it comes back with
/// its next message). Long enough for a holiday without the phone; short enough that a
/// phone lost years ago does not keep getting keys.
pub const DEFAULT_INACTIVE_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

/// Longer device lists pushed to us are ignored (no real account has that many devices).
const MAX_LISTED_DEVICES: usize = 128;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn store_err(e: hush_store::StoreError) -> XmppError {
    XmppError::Store(e.to_string())
}

impl<S: Store> Hush<S> {
    /// Connects the account kept in `store`.
    pub async fn connect(store: S, password: &str, options: &ConnectOptions) -> Result<Self> {
        let account = store
            .account()
            .map_err(store_err)?
            .ok_or_else(|| XmppError::Store("no account: run `hush init` first".into()))?;
        let xmpp = XmppClient::connect(&account.jid, password, options).await?;
        let jid = xmpp.jid().clone();
        let mut this = Self {
            xmpp,
            store,
            jid,
            device_id: account.device.device_id(),
            rng: UnwrapErr(SysRng),
            backlog: Default::default(),
            owed_empty: Vec::new(),
            catching_up: false,
            catch_up_unfinished: false,
            strangers: StrangerLimits::default(),
            republish_owed: false,
            local: account.device,
            since: unix_now(),
            inactive_after: DEFAULT_INACTIVE_AFTER,
            clock: unix_now,
        };
        this.resend_outbox().await?;
        Ok(this)
    }

    /// Sends what a previous run stored but did not get out (it stopped between storing a
    /// message and sending it): the exact stored bytes with the same origin id, so no message
    /// key is used twice and a receiver that got it after all recognises the copy. Encrypted
    /// messages only: one the user asked to send in clear is dropped from the outbox with a
    /// warning instead.
    async fn resend_outbox(&mut self) -> Result<()> {
        for pending in self.store.pending().map_err(store_err)? {
            let to: BareJid = match pending.peer.parse() {
                Ok(to) => to,
                Err(_) => {
                    log::warn!(
                        "outbox entry {} names an invalid JID `{}`; left in the outbox",
                        pending.id,
                        pending.peer
                    );
                    continue;
                }
            };
            let origin_id = pending
                .origin_id
                .clone()
                .unwrap_or_else(|| format!("hush-outbox-{}", pending.id));
            if pending.encrypted {
                let parsed = std::str::from_utf8(&pending.stanza)
                    .ok()
                    .and_then(|s| s.parse::<Element>().ok())
                    .and_then(|e| EncryptedElement::from_element(&e).ok());
                let Some(element) = parsed else {
                    log::warn!(
                        "outbox entry {} to {to} is not a readable OMEMO element; left in the \
                         outbox",
                        pending.id
                    );
                    continue;
                };
                self.xmpp.send_encrypted(&to, &element, &origin_id).await?;
                log::info!(
                    "sent message {} to {to}, stored by an earlier run",
                    pending.id
                );
            } else {
                // A message the user once asked to send in clear is not sent later by itself:
                // the settings may have changed since (encryption back on, the contact
                // blocked). It leaves the outbox, and the user is told.
                log::warn!(
                    "a message to {to} that you asked to send IN CLEAR was stored but not sent \
                     before Hush stopped; it is not sent now — send it again if you still want to"
                );
            }
            self.store.mark_sent(pending.id).map_err(store_err)?;
        }
        Ok(())
    }

    /// Leaves devices not heard from for `after` out of new messages (default
    /// [`DEFAULT_INACTIVE_AFTER`]).
    pub fn set_inactive_after(&mut self, after: Duration) {
        self.inactive_after = after;
    }

    /// Replaces the wall clock (unix seconds), for tests and simulations.
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = clock;
    }

    fn now(&self) -> u64 {
        (self.clock)()
    }

    /// Why a device is left out as inactive, if it is.
    fn inactive(&self, suite: Suite, jid: &BareJid, device: u32) -> Result<Option<String>> {
        let now = self.now();
        let records = self.store.devices(suite, jid.as_str()).map_err(store_err)?;
        Ok(records
            .iter()
            .find(|r| r.device_id == device)
            .filter(|r| now.saturating_sub(r.last_seen) > self.inactive_after.as_secs())
            .map(|r| {
                format!(
                    "inactive: not heard from for {} days (a message from it brings it back)",
                    now.saturating_sub(r.last_seen) / 86_400
                )
            }))
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, for changes the user makes (trust decisions, conversation settings).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Our bare JID.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// Our device id.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// Publishes our bundle in both suites, then adds our device to our device lists (bundle
    /// first, so nobody sees the id before it can be used). Devices already listed stay.
    pub async fn announce(&mut self) -> Result<()> {
        // A device with no place in the archive yet starts reading it here, before its keys
        // are out: nothing archived earlier can be encrypted for it, and everything later is
        // read (a message then lacking our key is reported, as it should be).
        let own = self.jid.as_str().to_owned();
        if self
            .store
            .archive_resume(&own)
            .map_err(store_err)?
            .is_none()
            && self
                .store
                .last_archive_id(&own)
                .map_err(store_err)?
                .is_none()
        {
            match self.xmpp.archive_end().await {
                Ok(Some(end)) => self
                    .store
                    .set_archive_resume(&own, &end)
                    .map_err(store_err)?,
                Ok(None) => {} // an empty archive: catch-ups start at `since`
                Err(e) => log::warn!("could not find the end of our archive: {e}"),
            }
        }
        let device = self.device()?;
        self.publish_bundles(&device).await?;
        for suite in Suite::ALL {
            let mut list = match self.xmpp.device_list(&self.jid.clone(), suite).await {
                Ok(l) => l,
                Err(XmppError::NothingPublished { .. }) => DeviceList {
                    suite,
                    devices: Vec::new(),
                },
                Err(e) => return Err(e),
            };
            if !list.devices.iter().any(|d| d.id == self.device_id) {
                list.devices.push(DeviceEntry::new(self.device_id));
            }
            self.xmpp.publish_device_list(&list).await?;
        }
        Ok(())
    }

    /// Removes other devices of ours from our published device lists (a lost phone, a
    /// reinstalled client): nobody encrypts to them afterwards. Only on request, never by
    /// itself; removing this device is refused (it would add itself back, as XEP-0384 asks of
    /// every device in use). Returns how many list entries were removed.
    pub async fn remove_own_devices(&mut self, ids: &[u32]) -> Result<usize> {
        if ids.contains(&self.device_id) {
            return Err(XmppError::RemoveSelf(self.device_id));
        }
        let mut removed = 0;
        for suite in Suite::ALL {
            let mut list = match self.xmpp.device_list(&self.jid.clone(), suite).await {
                Ok(l) => l,
                Err(XmppError::NothingPublished { .. }) => continue,
                Err(e) => return Err(e),
            };
            let before = list.devices.len();
            list.devices.retain(|d| !ids.contains(&d.id));
            if list.devices.len() != before {
                removed += before - list.devices.len();
                self.xmpp.publish_device_list(&list).await?;
                let listed: Vec<u32> = list.devices.iter().map(|d| d.id).collect();
                let now = self.now();
                self.store
                    .set_device_list(suite, self.jid.as_str(), &listed, now)
                    .map_err(store_err)?;
            }
        }
        Ok(removed)
    }

    /// The devices of `jid` in the first suite it announces.
    async fn devices_of(&mut self, jid: &BareJid) -> Result<Option<(Suite, Vec<u32>)>> {
        for (rank, suite) in Suite::ALL.into_iter().enumerate() {
            match self.xmpp.device_list(jid, suite).await {
                Ok(list) if list.devices.len() > MAX_LISTED_DEVICES => {
                    return Err(XmppError::DeviceListTooLong {
                        jid: jid.to_string(),
                        count: list.devices.len(),
                    });
                }
                Ok(list) if !list.devices.is_empty() => {
                    self.refuse_downgrade(jid, rank)?;
                    let ids: Vec<u32> = list.devices.iter().map(|d| d.id).collect();
                    let now = self.now();
                    self.store
                        .set_device_list(suite, jid.as_str(), &ids, now)
                        .map_err(store_err)?;
                    return Ok(Some((suite, ids)));
                }
                Ok(_) | Err(XmppError::NothingPublished { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Falling back to an older suite (`Suite::ALL[rank]`) is refused once we talked a newer
    /// one with this contact: a server hiding the omemo:2 list would otherwise downgrade the
    /// conversation silently (legacy has no SCE envelope binding sender and addressee).
    fn refuse_downgrade(&self, jid: &BareJid, rank: usize) -> Result<()> {
        for better in &Suite::ALL[..rank] {
            if !self
                .store
                .sessions_of(*better, jid.as_str())
                .map_err(store_err)?
                .is_empty()
            {
                let suite = Suite::ALL[rank];
                return Err(XmppError::NotSent {
                    jid: jid.to_string(),
                    missing: format!("their {better} device list"),
                    why: format!(
                        "it is gone although this conversation used {better}, and only {suite} is \
                         left: a server may be downgrading it; if {jid} really moved to a client \
                         without {better}, run `hush session reset {jid}`"
                    ),
                });
            }
        }
        Ok(())
    }

    /// This device's keys, as stored.
    fn device(&self) -> Result<hush_proto::LocalDevice> {
        Ok(self.local.clone())
    }

    /// Reads this device's keys from the store again, after the store changed them. Decoding
    /// derives every public key (a hundred or so scalar multiplications), so the keys are
    /// kept in memory instead of being read for every message.
    fn reload_device(&mut self) -> Result<()> {
        let account = self.store.account().map_err(store_err)?;
        self.local = account
            .ok_or_else(|| XmppError::Store("the account disappeared from the store".into()))?
            .device;
        Ok(())
    }

    /// Publishes this device's bundle in every suite.
    async fn publish_bundles(&mut self, device: &hush_proto::LocalDevice) -> Result<()> {
        for suite in Suite::ALL {
            self.xmpp.publish_bundle(&device.bundle(suite)).await?;
        }
        Ok(())
    }

    /// Records a new identity key; returns its trust state and whether it was new. New keys
    /// are trusted blindly only *before* verification (BTBV): once the user verified any key
    /// of `jid`, a new one stays undecided until the user looks at it — it is what a server
    /// slipping in a device would produce.
    fn note_identity(&mut self, jid: &str, identity: &IdentityKey) -> Result<(Trust, bool)> {
        if let Some(t) = self.store.trust(jid, identity).map_err(store_err)? {
            return Ok((t, false));
        }
        let trust = if self.store.has_verified_key(jid).map_err(store_err)? {
            Trust::Undecided
        } else {
            Trust::Blind
        };
        self.store
            .set_trust(jid, identity, trust, self.now())
            .map_err(store_err)?;
        Ok((trust, true))
    }

    /// The session with one device, building it from its bundle if needed.
    async fn session_for(
        &mut self,
        suite: Suite,
        jid: &BareJid,
        device: u32,
    ) -> core::result::Result<Session, String> {
        let key = SessionKey::new(suite, jid.as_str(), device);
        if let Some(s) = self.store.session(&key).map_err(|e| e.to_string())? {
            return Ok(s);
        }
        let bundle: Bundle = self
            .xmpp
            .bundle(jid, suite, device)
            .await
            .map_err(|e| e.to_string())?;
        Session::initiate(self.local.identity(), &bundle, &mut self.rng).map_err(|e| e.to_string())
    }

    /// Sends `text` to `to` encrypted, as the default policy says (see [`Self::send`]).
    pub async fn send_text(&mut self, to: &BareJid, text: &str) -> Result<SendReport> {
        self.send(to, text, SendOptions::default()).await
    }

    /// Sends `text` to `to` as the conversation's policy decides ([`hush_proto::policy`]):
    /// encrypted for every usable, trusted device of `to` and our own other devices — or, only
    /// when the user asked for it (`options` or the conversation's off switch), in clear. When
    /// the policy refuses (no usable device, a requirement not met), nothing is sent.
    pub async fn send(
        &mut self,
        to: &BareJid,
        text: &str,
        options: SendOptions,
    ) -> Result<SendReport> {
        let mut conversation = self.store.conversation(to.as_str()).map_err(store_err)?;
        if options.plaintext || options.global_off || conversation.policy.off {
            return match policy::decide(
                &conversation.policy,
                options.global_off,
                options.plaintext,
                &[],
            ) {
                Decision::Plaintext { .. } => self.send_in_clear(to, text).await,
                Decision::Refuse { missing } => Err(XmppError::NotSent {
                    jid: to.to_string(),
                    missing,
                    why: String::new(),
                }),
                Decision::Encrypt { .. } => Err(XmppError::NotSent {
                    jid: to.to_string(),
                    missing: "a decision (the policy had no readers to encrypt for)".into(),
                    why: String::new(),
                }),
            };
        }
        let (suite, their_devices) = self
            .devices_of(to)
            .await?
            .unwrap_or((Suite::Omemo2, vec![]));
        let mut own_devices = Vec::new();
        if let Ok(list) = self.xmpp.device_list(&self.jid.clone(), suite).await {
            if list.devices.len() > MAX_LISTED_DEVICES {
                return Err(XmppError::DeviceListTooLong {
                    jid: self.jid.to_string(),
                    count: list.devices.len(),
                });
            }
            own_devices = list.devices.iter().map(|d| d.id).collect();
            let now = self.now();
            self.store
                .set_device_list(suite, self.jid.as_str(), &own_devices, now)
                .map_err(store_err)?;
            own_devices.retain(|id| *id != self.device_id);
        }
        // The facts the policy decides on: every device that could read, its trust, and
        // whether a session exists or can be built.
        let mut silent: Vec<((BareJid, u32), String)> = Vec::new();
        for (jid, device) in their_devices
            .iter()
            .map(|d| (to, *d))
            .chain(own_devices.iter().map(|d| (&self.jid, *d)))
        {
            if let Some(why) = self.inactive(suite, jid, device)? {
                silent.push(((jid.clone(), device), why));
            }
        }
        // When every device of the contact is silent, leaving them all out would make the
        // contact unreachable: inactivity then excludes none of the contact's devices.
        let all_peer_devices_inactive = their_devices
            .iter()
            .all(|d| silent.iter().any(|((j, sd), _)| j == to && sd == d));
        let mut readers = Vec::new();
        let mut sessions: Vec<(BareJid, u32, Session)> = Vec::new();
        let mut reasons: Vec<((String, u32), String)> = Vec::new();
        let mut new_keys: Vec<(String, u32, String)> = Vec::new();
        let me = self.jid.clone();
        for (jid, device, peer) in their_devices
            .iter()
            .map(|d| (to.clone(), *d, true))
            .chain(own_devices.iter().map(|d| (me.clone(), *d, false)))
        {
            let mut reader = Reader {
                jid: jid.to_string(),
                device,
                trust: None,
                usable: false,
                peer,
            };
            let inactive = silent
                .iter()
                .find(|((j, d), _)| *j == jid && *d == device)
                .filter(|_| !(peer && all_peer_devices_inactive))
                .map(|(_, why)| why.clone());
            if let Some(why) = inactive {
                reasons.push(((jid.to_string(), device), why));
            } else {
                match self.session_for(suite, &jid, device).await {
                    Ok(session) => {
                        let (trust, new) =
                            self.note_identity(jid.as_str(), session.peer_identity())?;
                        if new {
                            let fingerprint = session.peer_identity().fingerprint();
                            new_keys.push((jid.to_string(), device, fingerprint));
                        }
                        reader.trust = Some(trust.into());
                        reader.usable = true;
                        sessions.push((jid, device, session));
                    }
                    Err(why) => reasons.push(((jid.to_string(), device), why)),
                }
            }
            readers.push(reader);
        }
        let reason = |jid: &str, device: u32, fallback: &policy::LeftOut| {
            reasons
                .iter()
                .find(|((j, d), _)| j == jid && *d == device)
                .map(|(_, w)| w.clone())
                .unwrap_or_else(|| fallback.to_string())
        };
        let (chosen, left_out, properties) =
            match policy::decide(&conversation.policy, options.global_off, false, &readers) {
                Decision::Encrypt {
                    to: chosen,
                    left_out,
                    properties,
                } => (chosen, left_out, properties),
                Decision::Refuse { missing } => {
                    let why: Vec<String> = readers
                        .iter()
                        .filter(|r| r.peer)
                        .map(|r| {
                            let w = match (r.usable, r.trust) {
                                (true, Some(KeyTrust::Verified)) => "verified".to_owned(),
                                (true, Some(KeyTrust::Blind)) => "not verified".to_owned(),
                                (true, Some(KeyTrust::Distrusted)) => "distrusted".to_owned(),
                                _ => reason(&r.jid, r.device, &policy::LeftOut::Unusable),
                            };
                            format!("device {}: {w}", r.device)
                        })
                        .collect();
                    return Err(XmppError::NotSent {
                        jid: to.to_string(),
                        missing,
                        why: why.join("; "),
                    });
                }
                Decision::Plaintext { .. } => {
                    return Err(XmppError::NotSent {
                        jid: to.to_string(),
                        missing: "encryption (the policy chose plaintext nobody asked for)".into(),
                        why: String::new(),
                    })
                }
            };
        let skipped: Vec<(String, u32, String)> = left_out
            .iter()
            .map(|(j, d, w)| (j.clone(), *d, reason(j, *d, w)))
            .collect();
        let mut targets: Vec<(BareJid, u32, Session)> = sessions
            .into_iter()
            .filter(|(j, d, _)| chosen.iter().any(|(cj, cd)| cj == j.as_str() && cd == d))
            .collect();
        let payload = match suite {
            Suite::Omemo2 => sce::seal(
                &[sce::body(text)],
                self.jid.as_str(),
                to.as_str(),
                Some(self.now()),
                &mut self.rng,
            )?,
            _ => text.as_bytes().to_vec(),
        };
        let jids: Vec<String> = targets.iter().map(|(j, _, _)| j.to_string()).collect();
        let mut recipients: Vec<Recipient<'_>> = targets
            .iter_mut()
            .zip(&jids)
            .map(|((_, device, session), jid)| Recipient {
                jid,
                device_id: *device,
                session,
            })
            .collect();
        let element = seal(
            suite,
            self.device_id,
            Some(&payload),
            &mut recipients,
            &mut self.rng,
        )?;
        drop(recipients);
        let sessions: Vec<(SessionKey, Session)> = targets
            .iter()
            .map(|(j, d, s)| (SessionKey::new(suite, j.as_str(), *d), s.clone()))
            .collect();
        let stanza = String::from(&element.to_element()).into_bytes();
        let (origin_id, outgoing) = self.outgoing(to, text, Some(suite), stanza);
        // The advanced sessions are stored before the ciphertext leaves.
        let id = self
            .store
            .commit_outgoing(&sessions, &outgoing)
            .map_err(store_err)?;
        self.xmpp.send_encrypted(to, &element, &origin_id).await?;
        self.store.mark_sent(id).map_err(store_err)?;
        // What this send reached becomes the conversation's floor; and writing to someone
        // makes them a contact. Read again: the user may have changed settings meanwhile.
        conversation = self.store.conversation(to.as_str()).map_err(store_err)?;
        conversation.policy = conversation.policy.after_encrypted(&properties);
        conversation.contact = true;
        self.store
            .set_conversation(to.as_str(), &conversation)
            .map_err(store_err)?;
        let devices = targets
            .iter()
            .map(|(j, d, _)| (j.to_string(), *d))
            .collect();
        Ok(SendReport {
            suite: Some(suite),
            devices,
            skipped,
            properties,
            new_keys,
        })
    }

    /// A new origin id and the outbox entry for `text` to `to`, sent in `suite` (`None`: in
    /// clear) as the bytes `stanza`.
    fn outgoing(
        &mut self,
        to: &BareJid,
        text: &str,
        suite: Option<Suite>,
        stanza: Vec<u8>,
    ) -> (String, Outgoing) {
        let origin_id = format!("hush-{:016x}", rand_core::Rng::next_u64(&mut self.rng));
        let outgoing = Outgoing {
            ids: MessageIds {
                origin_id: Some(origin_id.clone()),
                ..Default::default()
            },
            peer: to.to_string(),
            sender: self.jid.to_string(),
            sender_device: self.device_id,
            suite: suite.unwrap_or(Suite::Omemo2),
            at: self.now(),
            body: text.as_bytes().to_vec(),
            encrypted: suite.is_some(),
            stanza,
        };
        (origin_id, outgoing)
    }

    /// Sends `text` in clear — only reached on the user's explicit request.
    async fn send_in_clear(&mut self, to: &BareJid, text: &str) -> Result<SendReport> {
        let (origin_id, outgoing) = self.outgoing(to, text, None, text.as_bytes().to_vec());
        let id = self
            .store
            .commit_outgoing(&[], &outgoing)
            .map_err(store_err)?;
        self.xmpp.send_plain(to, text, &origin_id).await?;
        self.store.mark_sent(id).map_err(store_err)?;
        self.mark_contact(to)?;
        Ok(SendReport {
            suite: None,
            devices: Vec::new(),
            skipped: Vec::new(),
            properties: Properties::PLAINTEXT,
            new_keys: Vec::new(),
        })
    }

    /// Deletes the one-time prekeys that key exchanges used, refills the pool and republishes
    /// the bundle if anything changed.
    async fn retire_used_prekeys(&mut self) -> Result<()> {
        let retired = self.store.used_prekeys().map_err(store_err)?.len();
        let added = hush_store::finish_catch_up(
            &mut self.store,
            hush_proto::DEFAULT_PREKEYS,
            &mut self.rng,
        )
        .map_err(store_err)?;
        if retired + added > 0 {
            self.reload_device()?;
        }
        if retired + added > 0 || self.republish_owed {
            // Until the bundle is out, the server offers prekeys we no longer have: remember
            // to try again.
            self.republish_owed = true;
            let device = self.device()?;
            self.publish_bundles(&device).await?;
            self.republish_owed = false;
        }
        Ok(())
    }

    /// Sends the empty messages owed.
    async fn pay_empty_messages(&mut self) -> Result<()> {
        while let Some((suite, jid, device)) = self.owed_empty.first().cloned() {
            self.send_empty(suite, &jid, device).await?;
            self.owed_empty.remove(0);
        }
        Ok(())
    }

    /// Sends an empty message to one device (session completion after a key exchange).
    async fn send_empty(&mut self, suite: Suite, jid: &BareJid, device: u32) -> Result<()> {
        let key = SessionKey::new(suite, jid.as_str(), device);
        let Some(mut session) = self.store.session(&key).map_err(store_err)? else {
            return Ok(());
        };
        let element = seal(
            suite,
            self.device_id,
            None,
            &mut [Recipient {
                jid: jid.as_str(),
                device_id: device,
                session: &mut session,
            }],
            &mut self.rng,
        )?;
        // Saved before the stanza leaves, like every other advance of a sending chain.
        self.store
            .save_sessions(&[(key, session)])
            .map_err(store_err)?;
        let origin_id = format!("hush-{:016x}", rand_core::Rng::next_u64(&mut self.rng));
        self.xmpp.send_encrypted(jid, &element, &origin_id).await
    }

    /// Waits up to `timeout` for the next message and commits it. Exact duplicates are
    /// skipped silently; a message that does not decrypt is stored and returned with its error.
    ///
    /// The first call on a connection that has not caught up yet does so first (see
    /// [`Self::catch_up`]): the session goes online only after reading the archive, and
    /// whatever arrived since connecting waits there.
    pub async fn receive(&mut self, timeout: Duration) -> Result<Option<Delivery>> {
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.xmpp.is_online() || self.catch_up_unfinished {
            let found = self.catch_up(self.since).await?;
            self.backlog.extend(found);
        }
        loop {
            if let Some(d) = self.backlog.pop_front() {
                return Ok(Some(d));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let next = self.xmpp.next_encrypted(left).await?;
            if let Err(e) = self.apply_device_list_updates().await {
                log::warn!("could not record a device-list change: {e}");
            }
            let Some(incoming) = next else {
                if self.xmpp.take_state_lost().await? {
                    // What was in flight while the session was down is in the archive.
                    let found = self.catch_up(self.since).await?;
                    self.backlog.extend(found);
                    continue;
                }
                return Ok(None);
            };
            if let Some(d) = self.process(incoming).await? {
                return Ok(Some(d));
            }
        }
    }

    /// Records the device lists the server pushed (PEP notifications). If our own list no
    /// longer names this device, it is added back: XEP-0384 asks every device in use to keep
    /// itself listed (removing a device is for devices no longer in use).
    async fn apply_device_list_updates(&mut self) -> Result<()> {
        for (jid, mut list) in self.xmpp.take_device_list_updates() {
            // Only our own lists and our contacts' are kept: anyone can send a message that
            // looks like a notification, and each id would become a stored row.
            let record = self.store.conversation(jid.as_str()).map_err(store_err)?;
            if jid != self.jid && (!record.contact || record.blocked) {
                continue;
            }
            if list.devices.len() > MAX_LISTED_DEVICES {
                log::warn!(
                    "ignored a device list of {jid} with {} devices",
                    list.devices.len()
                );
                continue;
            }
            let ids: Vec<u32> = list.devices.iter().map(|d| d.id).collect();
            let now = self.now();
            self.store
                .set_device_list(list.suite, jid.as_str(), &ids, now)
                .map_err(store_err)?;
            if jid == self.jid && !ids.contains(&self.device_id) {
                log::warn!(
                    "this device ({}) was removed from our {} device list; adding it back",
                    self.device_id,
                    list.suite
                );
                list.devices.push(DeviceEntry::new(self.device_id));
                self.xmpp.publish_device_list(&list).await?;
            }
        }
        Ok(())
    }

    /// Catches up on what our archive (MAM) holds since the last message we stored — or, for a
    /// new device, since `since` (unix seconds) — and commits it in order. Afterwards the
    /// one-time prekeys used meanwhile are retired and the bundle republished (XEP-0384 keeps
    /// them until catch-up is over). Returns the messages with text or errors.
    pub async fn catch_up(&mut self, since: u64) -> Result<Vec<Delivery>> {
        self.since = self.since.min(since);
        let mut out = Vec::new();
        self.catching_up = true;
        let fetched = self.read_archive(since, &mut out).await;
        self.catching_up = false;
        self.catch_up_unfinished = fetched.is_err();
        if let Err(e) = fetched {
            if out.is_empty() {
                return Err(e);
            }
            // The pages read so far are committed, and the resume point is past them: they
            // must reach the caller now or never. The rest follows on the next `receive`,
            // which finishes the catch-up first (and reports the error if it persists); the
            // prekeys and empty answers wait for a complete catch-up, as XEP-0384 asks.
            log::warn!(
                "the archive catch-up stopped after {} messages ({e}); it continues on the next \
                 receive",
                out.len()
            );
            return Ok(out);
        }
        // The messages are committed: what follows must not lose them, so a failure is
        // logged and retried on the next occasion instead of returned.
        if let Err(e) = self.retire_used_prekeys().await {
            log::warn!("could not republish the bundle after catching up: {e}");
        }
        // XEP-0384: the empty answers to key exchanges found in the archive go out now, once
        // per device, after the prekeys they used are retired.
        if let Err(e) = self.pay_empty_messages().await {
            log::warn!("could not send the empty answers after catching up: {e}");
        }
        Ok(out)
    }

    /// Pages through the archive from our resume point, committing each page while the next
    /// one travels (one query always in flight until the end). The first catch-up of a
    /// connection sends initial presence once the archive is read, then reads once more: what
    /// arrived in between is archived but, as we queried the archive, not pushed to us.
    async fn read_archive(&mut self, since: u64, out: &mut Vec<Delivery>) -> Result<()> {
        let own = self.jid.as_str().to_owned();
        let mut after = match self.store.archive_resume(&own).map_err(store_err)? {
            Some(resume) => Some(resume),
            // Stores from before resume points: the last archived message stored.
            None => self.store.last_archive_id(&own).map_err(store_err)?,
        };
        self.xmpp
            .query_archive(after.as_deref(), Some(since))
            .await?;
        loop {
            let page = match self.xmpp.archive_page().await {
                Err(XmppError::ArchiveLostPlace) if after.is_some() => {
                    // Expired or lost: read everything again since `since`. Copies of what we
                    // already have are recognised by their ids and skipped.
                    log::warn!(
                        "the server's archive no longer has the last message we read from it; reading \
                         all it has since this device was set up again"
                    );
                    after = None;
                    self.xmpp.query_archive(None, Some(since)).await?;
                    continue;
                }
                page => page?,
            };
            if !page.complete && page.last.is_some() && page.last == after {
                return Err(XmppError::ArchiveMisbehaves(
                    "a page ended where it started, without saying the archive is complete".into(),
                ));
            }
            if page.last.is_some() {
                after = page.last.clone();
            }
            let more = if !page.complete {
                true
            } else if !self.xmpp.is_online() {
                self.xmpp.go_online().await?;
                true
            } else {
                false
            };
            if more {
                self.xmpp
                    .query_archive(after.as_deref(), Some(since))
                    .await?;
            }
            for incoming in page.messages {
                if let Some(d) = self.process(incoming).await? {
                    out.push(d);
                }
            }
            // The page is committed: the next catch-up starts after it.
            if let Some(last) = &page.last {
                self.store
                    .set_archive_resume(&own, last)
                    .map_err(store_err)?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// A message that came in clear: stored and shown as unencrypted, with a warning when the
    /// conversation was encrypted until now (a peer or a server downgrading it).
    fn process_plaintext(
        &mut self,
        sender: BareJid,
        peer: BareJid,
        ids: hush_store::MessageIds,
        body: String,
        at: u64,
    ) -> Result<Option<Delivery>> {
        let conversation = self.store.conversation(peer.as_str()).map_err(store_err)?;
        let warning = conversation.policy.plaintext_is_a_downgrade().then(|| {
            format!(
                "UNENCRYPTED: this message from {sender} came in clear, in a conversation that \
                 was encrypted until now; the servers on the way could read or change it"
            )
        });
        let record = Received {
            ids,
            peer: peer.to_string(),
            sender: sender.to_string(),
            sender_device: 0,
            suite: Suite::Omemo2,
            at,
            outcome: Outcome::Plaintext {
                body: body.clone().into_bytes(),
            },
        };
        if self
            .store
            .commit_received(vec![record])
            .map_err(store_err)?[0]
            == Commit::Duplicate
        {
            return Ok(None);
        }
        Ok(Some(Delivery {
            from: sender.to_string(),
            device: 0,
            suite: None,
            body: Some(body),
            error: None,
            trust: None,
            properties: Properties::PLAINTEXT,
            warning,
        }))
    }

    /// Spends one unit of a stranger's budget. `None`: go ahead. `Some(answer)`: over the
    /// limit; the answer is a stored, visible notice the first time in a window, then nothing.
    fn over_stranger_limit(
        &mut self,
        sender: &BareJid,
        peer: &BareJid,
        ids: &MessageIds,
        sid: u32,
        suite: Suite,
    ) -> Result<Option<Option<Delivery>>> {
        let verdict = self.strangers.check(sender.as_str(), self.now());
        if verdict == Verdict::Allow {
            return Ok(None);
        }
        if verdict == Verdict::Reject {
            return Ok(Some(None));
        }
        let reason = format!(
            "ignored messages and key exchanges from {sender}, whom you never wrote to: the \
             limit for strangers ({} new sessions or failures per sender, {} in all, per hour) \
             is reached. If you know them, write to them first; to stop them, `hush config \
             {sender} --blocked on`",
            strangers::PER_STRANGER,
            strangers::ALL_STRANGERS
        );
        let record = self.record_of(sender, peer, ids, sid, suite, self.now());
        Ok(Some(self.failed(record, reason)?))
    }

    /// The history record of a message from device `sid` of `sender` (its outcome to be
    /// filled in).
    fn record_of(
        &self,
        sender: &BareJid,
        peer: &BareJid,
        ids: &MessageIds,
        sid: u32,
        suite: Suite,
        at: u64,
    ) -> Received {
        Received {
            ids: ids.clone(),
            peer: peer.to_string(),
            sender: sender.to_string(),
            sender_device: sid,
            suite,
            at,
            outcome: Outcome::Failed {
                reason: String::new(),
            },
        }
    }

    /// Stores a message that could not be read, and returns it for display — unless the same
    /// message already failed (an archived copy of it): it was shown then.
    fn failed(&mut self, record: Received, reason: String) -> Result<Option<Delivery>> {
        let (from, device, suite) = (record.sender.clone(), record.sender_device, record.suite);
        let commit = self
            .store
            .commit_received(vec![Received {
                outcome: Outcome::Failed {
                    reason: reason.clone(),
                },
                ..record
            }])
            .map_err(store_err)?;
        if commit[0] == Commit::Duplicate {
            return Ok(None);
        }
        Ok(Some(Delivery {
            from,
            device,
            suite: Some(suite),
            body: None,
            error: Some(reason),
            trust: None,
            // Nothing was read, so nothing can be claimed about it.
            properties: Properties::PLAINTEXT,
            warning: None,
        }))
    }

    /// Decrypts one message and commits the result; `None` for duplicates, empty messages and
    /// copies of our own messages.
    async fn process(&mut self, incoming: Incoming) -> Result<Option<Delivery>> {
        let Incoming {
            sender,
            peer,
            payload,
            mut ids,
            sent_at,
        } = incoming;
        // An exact copy of an encrypted message is recognised by its content even when it
        // carries new stanza ids (or none): a replay is skipped silently only if the message
        // it copies was authenticated (see `Store::is_known`).
        if let Payload::Omemo(Ok(el)) = &payload {
            ids.digest = el.content_digest(self.jid.as_str(), self.device_id);
        }
        // History shows when the message was sent, as the archive or offline storage says,
        // but never a time in the future.
        let now = self.now();
        let at = sent_at.map_or(now, |t| t.min(now));
        if self
            .store
            .is_known(sender.as_str(), &ids)
            .map_err(store_err)?
        {
            return Ok(None);
        }
        // The sender's record says whether it is blocked, and whether it is a stranger: a JID
        // we never wrote to, whose new sessions are rate-limited (sessions it opened itself do
        // not make it a contact, or a flood would promote itself).
        let sender_record = self
            .store
            .conversation(sender.as_str())
            .map_err(store_err)?;
        let stranger = sender != self.jid && !sender_record.contact;
        if sender != self.jid && sender_record.blocked {
            log::info!("ignored a message from {sender}, whom you blocked");
            return Ok(None);
        }
        if sender == self.jid && peer != self.jid {
            // A copy of what another device of ours sent: we wrote to that contact.
            self.mark_contact(&peer)?;
        }
        let encrypted = match payload {
            Payload::Omemo(e) => e,
            Payload::Plain(body) => return self.process_plaintext(sender, peer, ids, body, at),
        };
        let (suite, sid, has_payload) = match &encrypted {
            Ok(el) => (el.suite, el.sid, el.payload.is_some()),
            Err(_) => (Suite::Omemo2, 0, true),
        };
        if sender == self.jid && sid == self.device_id {
            return Ok(None); // our own message, reflected
        }
        let key = SessionKey::new(suite, sender.as_str(), sid);
        let existing = self.store.session(&key).map_err(store_err)?;
        let device = &self.local;
        let result = encrypted.and_then(|el| {
            let o = device.open(
                &el,
                self.jid.as_str(),
                sender.as_str(),
                existing.as_ref(),
                &mut self.rng,
            )?;
            let body = match (&o.payload, suite) {
                (None, _) => None,
                (Some(p), Suite::Omemo2) => {
                    // The envelope must name the real sender and the conversation's addressee.
                    let to = if sender == self.jid {
                        peer.as_str()
                    } else {
                        self.jid.as_str()
                    };
                    let env = sce::open(
                        p,
                        sce::Expect {
                            from: sender.as_str(),
                            to,
                            require_to: false,
                        },
                    )?;
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
        let record = self.record_of(&sender, &peer, &ids, sid, suite, at);
        let (o, body) = match result {
            Ok(opened) => opened,
            // An empty message (a key-exchange answer or heartbeat) carries no content, so
            // none is lost: one that does not decrypt — between two other devices, or from a
            // session replaced since it was sent (after `session reset`) — is only logged. A
            // broken session still shows on the next message with content.
            Err(e) if !has_payload => {
                log::info!(
                    "ignored an empty OMEMO message from device {sid} of {sender} that did not \
                     decrypt: {e}"
                );
                return Ok(None);
            }
            Err(e) => {
                // A stranger's failures are budgeted like its new sessions: junk cannot fill
                // the history.
                if stranger {
                    if let Some(answer) =
                        self.over_stranger_limit(&sender, &peer, &ids, sid, suite)?
                    {
                        return Ok(answer);
                    }
                }
                let reason = format!(
                    "could not decrypt a message from device {sid} of {sender}: {e}. If this repeats, run `hush session reset {sender} {sid}`"
                );
                return self.failed(record, reason);
            }
        };
        if o.new_state {
            // A new session from a stranger costs a prekey and storage: budgeted. Nothing is
            // committed when over the limit, so the prekey stays unused.
            if stranger {
                if let Some(answer) = self.over_stranger_limit(&sender, &peer, &ids, sid, suite)? {
                    return Ok(answer);
                }
            }
            // A key exchange for a device we already hold a session with, under another
            // identity key, is not taken: XEP-0384 leaves replacing a session to the user, and
            // the server could otherwise swap a verified key for its own.
            if o.identity_changed {
                let reason = format!(
                    "device {sid} of {sender} sent a key exchange with a DIFFERENT identity key \
                     ({}); it was not accepted and the old session stays. If {sender} really \
                     reinstalled, verify the new fingerprint, then run `hush session reset \
                     {sender} {sid}`",
                    o.sender_identity.fingerprint()
                );
                return self.failed(record, reason);
            }
        }
        let (trust, _) = self.note_identity(sender.as_str(), &o.sender_identity)?;
        let kex = o.was_key_exchange;
        let session = o.session;
        let heartbeat = session.needs_heartbeat();
        let used_prekey = o.consumed_prekey.is_some();
        let outcome = Outcome::Decrypted {
            session: Box::new(session),
            body: body.as_ref().map(|b| b.as_bytes().to_vec()),
            consumed_prekey: o.consumed_prekey,
        };
        if self
            .store
            .commit_received(vec![Received { outcome, ..record }])
            .map_err(store_err)?[0]
            == Commit::Duplicate
        {
            return Ok(None);
        }
        // The message is committed: what follows must not lose it, so failures are reported
        // and retried later instead of returned.
        if used_prekey && !self.catching_up {
            // Outside a catch-up a used one-time prekey goes at once: XEP-0384 keeps them only
            // while the archive may still hold messages built on them.
            if let Err(e) = self.retire_used_prekeys().await {
                log::warn!("could not republish the bundle after a key exchange: {e}");
            }
        }
        if kex || heartbeat {
            // XEP-0384: answer a key exchange with an empty message so the peer stops sending
            // it, and send a heartbeat after many unanswered messages.
            let owed = (suite, sender.clone(), sid);
            if !self.owed_empty.contains(&owed) {
                self.owed_empty.push(owed);
            }
            if !self.catching_up {
                if let Err(e) = self.pay_empty_messages().await {
                    log::warn!("could not send the empty answer to {sender}: {e}");
                }
            }
        }
        let Some(body) = body else {
            return Ok(None);
        };
        let mut conversation = self.store.conversation(peer.as_str()).map_err(store_err)?;
        if !conversation.policy.encrypted {
            conversation.policy.encrypted = true;
            self.store
                .set_conversation(peer.as_str(), &conversation)
                .map_err(store_err)?;
        }
        let warning = if trust == Trust::Distrusted {
            Some(format!(
                "from device {sid} of {sender}, whose key you DISTRUSTED; it may not be {sender}"
            ))
        } else if trust == Trust::Undecided {
            Some(format!(
                "from device {sid} of {sender}, a NEW device you have not verified, although you \
                 verified others of {sender}; compare fingerprints before trusting it"
            ))
        } else if conversation.policy.min_auth == Authentication::Strong && trust != Trust::Verified
        {
            Some(format!(
                "from device {sid} of {sender}, which is NOT VERIFIED, in a conversation that \
                 requires verified devices; it may not be {sender}"
            ))
        } else {
            None
        };
        let authentication = if trust == Trust::Verified {
            Authentication::Strong
        } else {
            Authentication::Weak
        };
        Ok(Some(Delivery {
            from: sender.to_string(),
            device: sid,
            suite: Some(suite),
            body: Some(body),
            error: None,
            trust: Some(trust),
            properties: Properties::omemo(authentication),
            warning,
        }))
    }

    /// Records that we wrote to `jid` (from this device or another of ours).
    fn mark_contact(&mut self, jid: &BareJid) -> Result<()> {
        let mut conversation = self.store.conversation(jid.as_str()).map_err(store_err)?;
        if !conversation.contact {
            conversation.contact = true;
            self.store
                .set_conversation(jid.as_str(), &conversation)
                .map_err(store_err)?;
        }
        Ok(())
    }

    /// What happened to the link since login.
    pub fn link_stats(&self) -> crate::LinkStats {
        self.xmpp.link_stats()
    }

    /// Waits until the server has everything sent so far.
    pub async fn flush(&mut self) -> Result<()> {
        self.xmpp.flush().await
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<S> {
        self.xmpp.close().await?;
        Ok(self.store)
    }
}
