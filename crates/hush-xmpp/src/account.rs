//! The network shell of one account: it connects, fetches what the account engine asks for,
//! commits the engine's transactions and transmits what they produced — and nothing else.
//!
//! Every XEP-0384 rule (trust, the send policy, strangers, sessions, answers to key exchanges,
//! prekey retirement, deduplication) lives in [`hush_engine`], which has no I/O: `Hush` hands
//! it what arrived, the time and an RNG, commits the transaction of each step in one go
//! before anything leaves, and reports what the engine says to show.

use std::time::Duration;

use hush_engine::{
    BundleRequest, Content, Engine, FetchFailed, Fetched, Inbound, MessageStanza, Owed, Prepared,
    Resend, Route,
};
use hush_proto::{DeviceList, Suite};
use hush_store::{Committed, Store, Transaction};
use rand::rngs::SysRng;
use rand_core::UnwrapErr;

use crate::client::{ConnectOptions, XmppClient};
use crate::error::{Result, XmppError};
use crate::incoming::Incoming;
use crate::transfer::TransferError;
use crate::BareJid;

pub use hush_engine::{
    Delivery, SendOptions, SendReport, DEFAULT_INACTIVE_AFTER, ROLLBACK_WARNING,
};

/// One account: a connection, its store, and the engine that decides.
pub struct Hush<S: Store> {
    xmpp: XmppClient,
    store: S,
    jid: BareJid,
    engine: Engine,
    rng: UnwrapErr<SysRng>,
    /// Messages fetched from the archive after a lost session, not yet handed out.
    backlog: std::collections::VecDeque<Delivery>,
    /// The last catch-up stopped on an error: the next `receive` finishes it first.
    catch_up_unfinished: bool,
    /// The bundle changed but publishing it failed.
    republish_owed: bool,
    /// The wall clock, in unix seconds (replaceable for tests and simulations).
    clock: fn() -> u64,
    /// Where an archive catch-up starts when no archived message is stored yet (unix seconds).
    since: u64,
    /// The store was found rolled back on connecting: what to tell the user (see
    /// [`Hush::take_rollback_notice`]).
    rollback_notice: Option<Delivery>,
    /// Certificates (DER) trusted for file transfers besides the system's: see
    /// [`Hush::trust_for_files`].
    file_roots: Vec<Vec<u8>>,
}

impl<S: Store> core::fmt::Debug for Hush<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hush")
            .field("jid", &self.jid)
            .field("device_id", &self.engine.device_id())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The resource a device logs in with: `hush-` and the first 8 hex digits of its identity
/// key's fingerprint. Stable for the device, and different for two installations that drew the
/// same device id (the id alone would make each log the other out before the collision is
/// even found).
pub fn resource(device: &hush_proto::LocalDevice) -> String {
    let fingerprint = device.identity().public().fingerprint();
    let hex: String = fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(8)
        .collect();
    format!("hush-{hex}")
}

mod files;
mod sas;
mod trust;
pub use files::FileSent;
pub use sas::Comparison;
pub use trust::TrustDecided;
mod rooms;

/// What the engine is handed of an incoming message.
fn inbound(incoming: Incoming) -> Inbound {
    Inbound {
        sender: incoming.sender.to_string(),
        peer: incoming.peer.to_string(),
        nick: incoming.nick,
        payload: incoming.payload,
        ids: incoming.ids,
        sent_at: incoming.sent_at,
        sender_bundle: None,
        control: incoming.control,
    }
}

impl<S: Store> Hush<S> {
    /// Connects the account kept in `store`.
    pub async fn connect(store: S, password: &str, options: &ConnectOptions) -> Result<Self> {
        let account = store.account()?.ok_or(XmppError::NoAccount)?;
        // One resource per device, the same at every login: contacts see one client coming
        // and going, not a new one each time.
        let login_as = format!("{}/{}", account.jid, resource(&account.device));
        let xmpp = XmppClient::connect(&login_as, password, options).await?;
        let mut xmpp = xmpp;
        xmpp.set_device_id(account.device.device_id());
        let jid = xmpp.jid().clone();
        let engine = Engine::new(jid.as_str(), account.device);
        // A device that never read to a place in its archive starts where it was announced.
        let store_since = store
            .archive_start()?
            .unwrap_or_else(unix_now)
            .min(unix_now());
        let mut this = Self {
            xmpp,
            store,
            jid,
            engine,
            rng: UnwrapErr(SysRng),
            backlog: Default::default(),
            catch_up_unfinished: false,
            republish_owed: false,
            since: store_since,
            clock: unix_now,
            rollback_notice: None,
            file_roots: Vec::new(),
        };
        // Before anything leaves: a rolled-back store must not encrypt on its sessions.
        this.check_rollback().await?;
        this.resend_outbox().await?;
        Ok(this)
    }

    /// Looks for signs that the store was rolled back behind Hush's back (a snapshot or an
    /// old copy put back; see [`hush_engine::rollback`]): this device's bundles and the
    /// newest messages of our archive are fetched first, then compared with the store. Found,
    /// the store is repaired at once (every session rewound, the prekeys a later state handed
    /// out retired, our bundle republished) and the notice kept for
    /// [`Self::take_rollback_notice`]. What cannot be fetched is skipped with a log line: the
    /// check must not keep the account from working.
    async fn check_rollback(&mut self) -> Result<()> {
        let own = self.jid.clone();
        let id = self.engine.device_id();
        let mut published = Vec::new();
        for suite in Suite::ALL {
            match self.xmpp.bundle(&own, suite, id).await {
                Ok(bundle) => published.push(bundle),
                Err(XmppError::NothingPublished { .. }) => {}
                Err(e) => log::warn!("could not read our {suite} bundle to check the store: {e}"),
            }
        }
        let archive: Vec<Inbound> = match self.xmpp.archive_tail().await {
            Ok(tail) => tail.into_iter().map(inbound).collect(),
            Err(e) => {
                log::warn!("could not read our archive to check the store: {e}");
                Vec::new()
            }
        };
        let now = self.now();
        let Some(rollback) = self
            .engine
            .check_rollback(&self.store, &published, &archive, now)?
        else {
            // No rollback, but a run may have stopped between saving new keys and publishing
            // them: the server would go on offering prekeys we no longer have.
            if self.engine.bundle_outdated(&published) {
                log::info!("our published bundle is older than our keys; publishing it again");
                let device = self.engine.device().clone();
                if let Err(e) = self.publish_bundles(&device).await {
                    // Tried again whenever the bundle is maintained next.
                    self.republish_owed = true;
                    log::warn!("could not republish the bundle: {e}");
                }
            }
            return Ok(());
        };
        log::warn!("the store was rolled back: {}", rollback.evidence());
        let (transaction, repaired) = rollback.into_parts();
        self.store.commit(transaction)?;
        self.rollback_notice = Some(self.engine.rollback_repaired(repaired));
        // The server may still offer what the later state published (prekeys and a signed
        // prekey this store does not have): ours replaces it now, without the prekeys that
        // state handed out. Retired prekeys stay accepted for the grace period, so a catch-up
        // reading key exchanges built on them still can.
        self.republish_owed = true;
        if let Err(e) = self.retire_used_prekeys().await {
            log::warn!("could not republish the bundle after finding the rollback: {e}");
        }
        Ok(())
    }

    /// The warning that the store was found rolled back on connecting, once: taken, it is not
    /// handed out again (else the first [`Self::receive`] hands it out). Its `warning` is
    /// [`hush_engine::ROLLBACK_WARNING`], its `error` says what showed the rollback.
    pub fn take_rollback_notice(&mut self) -> Option<Delivery> {
        self.rollback_notice.take()
    }

    /// Sends what a previous run stored but did not get out (it stopped between storing a
    /// message and sending it): the exact stored bytes with the same origin id, so no message
    /// key is used twice and a receiver that got it after all recognises the copy. Encrypted
    /// messages only: one the user asked to send in clear is dropped from the outbox with a
    /// warning instead.
    async fn resend_outbox(&mut self) -> Result<()> {
        for resend in self.engine.pending_resends(&self.store)? {
            match resend {
                Resend::Encrypted { id, stanza } => {
                    let to = stanza.to();
                    if crate::client::addressee(&stanza).is_err() {
                        log::warn!(
                            "outbox entry {id} names an invalid JID `{to}`; left in the outbox"
                        );
                        continue;
                    }
                    // A room takes messages only from its occupants: entered first.
                    let entered = match crate::client::addressee(&stanza) {
                        Ok(room) if stanza.is_groupchat() => self.enter(&room).await,
                        _ => Ok(()),
                    };
                    let sent = match entered {
                        Ok(()) => self.xmpp.send_message(&stanza).await,
                        Err(e) => Err(e),
                    };
                    match sent {
                        Ok(()) => {}
                        Err(e) if e.is_connection() => return Err(e),
                        Err(e) => {
                            log::warn!("outbox entry {id} to {to} cannot be sent ({e}); left in the outbox");
                            continue;
                        }
                    }
                    log::info!("sent message {id} to {to}, stored by an earlier run");
                    self.store.mark_sent(id)?;
                }
                Resend::DropInClear { id, to } => {
                    log::warn!(
                        "a message to {to} that you asked to send IN CLEAR was stored but not \
                         sent before Hush stopped; it is not sent now — send it again if you \
                         still want to"
                    );
                    self.store.mark_sent(id)?;
                }
                Resend::Unreadable { id, to } => log::warn!(
                    "outbox entry {id} to {to} is not a readable OMEMO element; left in the outbox"
                ),
            }
        }
        Ok(())
    }

    /// Leaves devices not heard from for `after` out of new messages (default
    /// [`DEFAULT_INACTIVE_AFTER`]).
    pub fn set_inactive_after(&mut self, after: Duration) {
        self.engine.set_inactive_after(after);
    }

    /// Replaces the wall clock (unix seconds), for tests and simulations.
    pub fn set_clock(&mut self, clock: fn() -> u64) {
        self.clock = clock;
    }

    fn now(&self) -> u64 {
        (self.clock)()
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
        self.engine.device_id()
    }

    /// Publishes our bundle in both suites, then adds our device to our device lists (bundle
    /// first, so nobody sees the id before it can be used). Devices already listed stay.
    pub async fn announce(&mut self) -> Result<()> {
        // A device with no place in the archive yet starts reading it here, before its keys
        // are out: nothing archived earlier can be encrypted for it, and everything later is
        // read (a message then lacking our key is reported, as it should be).
        let own = self.jid.as_str().to_owned();
        if self.store.archive_resume(&own)?.is_none() && self.store.last_archive_id(&own)?.is_none()
        {
            // Where catch-ups start while the archive gives no place to resume after: now, on
            // every later connection too (not "since connecting", which would skip what
            // arrived while this device was away).
            let now = self.now();
            self.store.set_archive_start(now)?;
            self.since = self.since.min(now);
            match self.xmpp.archive_end().await {
                Ok(Some(end)) => self.store.set_archive_resume(&own, &end)?,
                Ok(None) => {} // an empty archive: catch-ups start at `since`
                Err(e) => log::warn!("could not find the end of our archive: {e}"),
            }
        }
        let device = self.engine.device().clone();
        self.refuse_id_collision(&device).await?;
        self.publish_bundles(&device).await?;
        for suite in Suite::ALL {
            self.list_self(suite).await?;
        }
        Ok(())
    }

    /// Our device list in `suite` as the server has it (`None`: nothing published).
    async fn own_list(&mut self, suite: Suite) -> Result<Option<DeviceList>> {
        match self.xmpp.device_list(&self.jid.clone(), suite).await {
            Ok(list) => Ok(Some(list)),
            Err(XmppError::NothingPublished { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes sure our device list in `suite` names this device: reads the list the server has
    /// and publishes it with this device added, if it is missing.
    async fn list_self(&mut self, suite: Suite) -> Result<()> {
        let current = self.own_list(suite).await?;
        if let Some(list) = self.engine.listing_self(suite, current)? {
            self.xmpp.publish_device_list(&list).await?;
        }
        Ok(())
    }

    /// XEP-0384: before announcing, check that no other device of the account uses our id. A
    /// listed id whose published bundle carries another identity key is someone else's:
    /// publishing ours would overwrite its keys and break every session with it.
    async fn refuse_id_collision(&mut self, device: &hush_proto::LocalDevice) -> Result<()> {
        let id = device.device_id();
        let own = self.jid.clone();
        for suite in Suite::ALL {
            let listed = match self.xmpp.device_list(&own, suite).await {
                Ok(list) => list.devices.iter().any(|d| d.id == id),
                Err(XmppError::NothingPublished { .. }) => false,
                // Nothing to compare with (a server without PEP, say): publishing reports
                // what is wrong, with its own error.
                Err(e) => {
                    log::warn!("could not read our {suite} device list to check the id: {e}");
                    false
                }
            };
            if !listed {
                continue;
            }
            match self.xmpp.bundle(&own, suite, id).await {
                Ok(published) if self.engine.id_taken(&published) => {
                    return Err(XmppError::DeviceIdTaken(id));
                }
                Ok(_) | Err(XmppError::NothingPublished { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes other devices of ours from our published device lists (a lost phone, a
    /// reinstalled client): nobody encrypts to them afterwards. Only on request, never by
    /// itself; removing this device is refused (it would add itself back, as XEP-0384 asks of
    /// every device in use). Returns how many list entries were removed.
    pub async fn remove_own_devices(&mut self, ids: &[u32]) -> Result<usize> {
        let mut removed = 0;
        for suite in Suite::ALL {
            let now = self.now();
            // The engine refuses to remove this device before anything is read or published.
            let current = self.own_list(suite).await?.unwrap_or(DeviceList {
                suite,
                devices: Vec::new(),
            });
            let before = current.devices.len();
            let Some((list, transaction)) = self.engine.without_devices(current, ids, now)? else {
                continue;
            };
            removed += before - list.devices.len();
            self.xmpp.publish_device_list(&list).await?;
            self.store.commit(transaction)?;
        }
        Ok(removed)
    }

    /// The devices of `jid` in the first suite it announces (the engine checks the list).
    async fn devices_of(&mut self, jid: &BareJid) -> Result<Option<(Suite, Vec<u32>)>> {
        for suite in Suite::ALL {
            match self.xmpp.device_list(jid, suite).await {
                Ok(list) if !list.devices.is_empty() => {
                    return Ok(Some((suite, list.devices.iter().map(|d| d.id).collect())));
                }
                Ok(_) | Err(XmppError::NothingPublished { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Publishes this device's bundle in every suite.
    async fn publish_bundles(&mut self, device: &hush_proto::LocalDevice) -> Result<()> {
        for suite in Suite::ALL {
            self.xmpp.publish_bundle(&device.bundle(suite)).await?;
        }
        Ok(())
    }

    /// Sends `text` to `to` encrypted, as the default policy says (see [`Self::send`]).
    pub async fn send_text(&mut self, to: &BareJid, text: &str) -> Result<SendReport> {
        self.send(to, text, SendOptions::default()).await
    }

    /// Sends `text` to `to` as the conversation's policy decides ([`hush_proto::policy`]):
    /// encrypted for every usable, trusted device of `to` and our own other devices — or, only
    /// when the user asked for it (`options` or the conversation's off switch), in clear. When
    /// the policy refuses (no usable device, a requirement not met), nothing is sent and the
    /// store is left exactly as it was.
    pub async fn send(
        &mut self,
        to: &BareJid,
        content: impl Into<Content>,
        options: SendOptions,
    ) -> Result<SendReport> {
        let content = content.into();
        let text = content.body.as_str();
        let now = self.now();
        // A room's JID answers for the room service: a direct message there would be
        // encrypted for whatever devices the service publishes under it.
        if self.store.room(to.as_str())?.is_some() {
            return Err(XmppError::IsARoom(to.to_string()));
        }
        if self.engine.route(&self.store, to.as_str(), options)? == Route::InClear {
            if !content.extra.is_empty() {
                return Err(TransferError::NotEncrypted { to: to.to_string() }.into());
            }
            let prepared = self
                .engine
                .prepare_in_clear(to.as_str(), text, now, &mut self.rng);
            let origin_id = prepared.stanza.origin_id().to_owned();
            let (report, entry) = self.transmit(prepared).await?;
            // No device list was fetched, so nothing showed whether the account exists: wait
            // for the server, and say if it returned the message (history says so too).
            self.xmpp.flush().await?;
            if let Some(condition) = self.xmpp.take_bounce(&origin_id) {
                if let Some(id) = entry {
                    let why = hush_store::Failure::Undelivered {
                        condition: condition.clone(),
                    };
                    self.store.mark_undelivered(id, &why)?;
                }
                return Err(XmppError::Undeliverable {
                    to: to.to_string(),
                    condition,
                });
            }
            return Ok(report);
        }
        let prepared = self.prepare_encrypted(to, content, now).await?;
        Ok(self.transmit(prepared).await?.0)
    }

    /// Plans and seals `content` for `to` (device lists and bundles fetched as needed),
    /// changing nothing: what [`Self::send`] commits and transmits, or its refusal.
    async fn prepare_encrypted(
        &mut self,
        to: &BareJid,
        content: Content,
        now: u64,
    ) -> Result<Prepared> {
        let their = self.devices_of(to).await?;
        let (plan, bundles) = self.plan_with_bundles(to, their, now).await?;
        Ok(self
            .engine
            .prepare_send(&self.store, plan, content, bundles, now, &mut self.rng)?)
    }

    /// Plans a message to `to`, whose devices are `their` (`(suite, ids)`), with our own list
    /// in the same suite (if it can be read), and fetches the bundles the plan needs.
    async fn plan_with_bundles(
        &mut self,
        to: &BareJid,
        their: Option<(Suite, Vec<u32>)>,
        now: u64,
    ) -> Result<(
        hush_engine::SendPlan,
        Vec<((String, u32), hush_engine::Fetched)>,
    )> {
        let suite = their.as_ref().map_or(Suite::Omemo2, |(s, _)| *s);
        let own = match self.xmpp.device_list(&self.jid.clone(), suite).await {
            Ok(list) => Some(list.devices.iter().map(|d| d.id).collect()),
            Err(_) => None,
        };
        let plan = self
            .engine
            .plan_send(&self.store, to.as_str(), their, own, now)?;
        let mut bundles = Vec::with_capacity(plan.bundles_needed.len());
        for (jid, device) in plan.bundles_needed.clone() {
            let fetched = self.fetch_for(plan.suite(), &jid, device).await;
            bundles.push(((jid, device), fetched));
        }
        Ok((plan, bundles))
    }

    /// Whether an encrypted message to `to` could go now: the same planning and sealing as
    /// [`Self::send`], thrown away (nothing is committed or sent). Its refusal is the one the
    /// send would give — checked before work that would be wasted, such as an upload.
    pub(crate) async fn check_sendable(&mut self, to: &BareJid) -> Result<()> {
        if self.store.room(to.as_str())?.is_some() {
            return Err(XmppError::IsARoom(to.to_string()));
        }
        let now = self.now();
        self.prepare_encrypted(to, Content::from("(a check, never sent)"), now)
            .await
            .map(drop)
    }

    /// Commits a prepared message (its sessions, history and outbox entry, and what it
    /// changed), then transmits it and marks it sent; gives its history entry too.
    async fn transmit(&mut self, prepared: Prepared) -> Result<(SendReport, Option<i64>)> {
        let Prepared {
            transaction,
            stanza,
            report,
        } = prepared;
        let committed = self.commit_and_send((transaction, stanza)).await?;
        if let Some(id) = committed.outgoing {
            self.store.mark_sent(id)?;
        }
        Ok((report, committed.outgoing))
    }

    /// Keeps our published keys fresh, as the engine decides (used one-time prekeys retired,
    /// the pool refilled, the signed prekey rotated when due), saves them, and republishes the
    /// bundle if it changed (or an earlier republication failed).
    async fn retire_used_prekeys(&mut self) -> Result<()> {
        let now = self.now();
        let maintenance = self.engine.maintain_keys(
            &self.store,
            hush_proto::DEFAULT_PREKEYS,
            now,
            &mut self.rng,
        )?;
        if let Some(m) = maintenance {
            self.store.retire_prekeys(&m.device)?;
            if m.rotated {
                log::info!(
                    "rotated the signed prekey (every {} days)",
                    hush_engine::SIGNED_PREKEY_PERIOD / 86_400
                );
            }
            // Until the bundle is out, the server offers prekeys we no longer have: remember
            // to try again.
            self.republish_owed |= m.republish;
            self.engine.set_device(m.device);
        }
        self.engine.prekeys_retired();
        if self.republish_owed {
            let device = self.engine.device().clone();
            self.publish_bundles(&device).await?;
            self.republish_owed = false;
        }
        Ok(())
    }

    /// Sends the empty messages owed, as the engine lists them, then the key exchanges that
    /// heal sessions built on keys we retired (see [`hush_engine::heal`]).
    ///
    /// One that cannot be sent (a bad bundle, a session that cannot encrypt) is taken off the
    /// engine's list with a warning, so it does not block the others or come back at every
    /// message. A lost connection stops the round with its error and leaves the item owed, to
    /// go out after the reconnect.
    async fn pay_empty_messages(&mut self) -> Result<()> {
        while let Some(owed) = self.engine.next_owed().cloned() {
            match self.send_empty(&owed).await {
                Err(e) if e.is_connection() => return Err(e),
                Err(e) => log::warn!(
                    "could not answer device {} of {}: {e}",
                    owed.device,
                    owed.jid
                ),
                Ok(()) => {}
            }
            self.engine.answered(&owed);
        }
        while let Some(heal) = self.engine.next_heal().cloned() {
            match self.send_heal(&heal).await {
                Err(e) if e.is_connection() => return Err(e),
                Err(e) => log::warn!(
                    "could not heal the session with device {} of {}: {e}",
                    heal.device,
                    heal.jid
                ),
                Ok(()) => {}
            }
            self.engine.healed(&heal);
        }
        Ok(())
    }

    /// Fetches the device's bundle and sends it the key exchange that heals its session; the
    /// new session is committed before the stanza leaves (nothing is sent if none could be
    /// prepared).
    async fn send_heal(&mut self, heal: &hush_engine::Heal) -> Result<()> {
        let to: BareJid = heal
            .jid
            .parse()
            .map_err(|_| XmppError::BadJid(heal.jid.clone()))?;
        let bundle = match self.xmpp.bundle(&to, heal.suite, heal.device).await {
            // Not the bundle's fault: the heal stays owed until the connection is back.
            Err(e) if e.is_connection() => return Err(e),
            fetched => fetched.map_err(FetchFailed::new),
        };
        let Some(prepared) = self
            .engine
            .prepare_heal(&self.store, heal, &bundle, &mut self.rng)?
        else {
            return Ok(());
        };
        self.commit_and_send(prepared).await.map(drop)
    }

    /// Sends an empty message to one device (session completion after a key exchange, or a
    /// heartbeat); the advanced session is committed before the stanza leaves.
    async fn send_empty(&mut self, owed: &Owed) -> Result<()> {
        let Some(prepared) = self
            .engine
            .prepare_empty(&self.store, owed, &mut self.rng)?
        else {
            return Ok(());
        };
        self.commit_and_send(prepared).await.map(drop)
    }

    /// Commits a message's transaction, then sends the message (nothing is committed for
    /// an addressee that is not a bare JID).
    async fn commit_and_send(
        &mut self,
        (transaction, stanza): (Transaction, MessageStanza),
    ) -> Result<hush_store::Committed> {
        crate::client::addressee(&stanza)?;
        crate::client::fits(&stanza)?;
        let committed = self.store.commit(transaction)?;
        self.xmpp.send_message(&stanza).await?;
        Ok(committed)
    }

    /// Waits up to `timeout` for the next message and commits it. Exact duplicates are
    /// skipped silently; a message that does not decrypt is stored and returned with its error.
    ///
    /// The first call on a connection that has not caught up yet does so first (see
    /// [`Self::catch_up`]): the session goes online only after reading the archive, and
    /// whatever arrived since connecting waits there. That catch-up starts where the last one
    /// ended, or, for a device that never finished one, where it was announced (see
    /// [`Self::announce`]); a store made elsewhere and never announced reads from when this
    /// connection was made, unless [`Self::catch_up`] is called first with an earlier time.
    pub async fn receive(&mut self, timeout: Duration) -> Result<Option<Delivery>> {
        self.receive_until(timeout, None).await
    }

    /// [`Self::receive`], which also returns `None` early when `wake` is notified (by another
    /// task with something for this connection to do, such as a message to send). The wait is
    /// cut only where nothing has been read yet: no message is half taken.
    pub async fn receive_or_wake(
        &mut self,
        timeout: Duration,
        wake: &tokio::sync::Notify,
    ) -> Result<Option<Delivery>> {
        self.receive_until(timeout, Some(wake)).await
    }

    async fn receive_until(
        &mut self,
        timeout: Duration,
        wake: Option<&tokio::sync::Notify>,
    ) -> Result<Option<Delivery>> {
        if let Some(notice) = self.take_rollback_notice() {
            return Ok(Some(notice));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // An unfinished catch-up continues once what it found was handed out: an archive
        // that never ends must not grow the backlog by a chunk per call.
        if !self.xmpp.is_online() || (self.catch_up_unfinished && self.backlog.is_empty()) {
            let found = self.catch_up(self.since).await?;
            self.backlog.extend(found);
        }
        loop {
            if let Some(d) = self.backlog.pop_front() {
                return Ok(Some(d));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let next = self.xmpp.next_encrypted(left, wake).await?;
            let rooms_changed = self.xmpp.rooms_changed();
            if let Err(e) = self.apply_device_list_updates().await {
                log::warn!("could not record a device-list change: {e}");
            }
            if let Err(e) = self.apply_room_changes().await {
                log::warn!("could not record a room's change: {e}");
            }
            let Some(incoming) = next else {
                if !self.backlog.is_empty() {
                    continue; // a room's notice, found above
                }
                if rooms_changed && tokio::time::Instant::now() < deadline {
                    continue; // only a room's change, taken in above: the wait goes on
                }
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
        // Every list taken is recorded even if one of them fails (the first error is
        // returned after the others).
        let mut first_error = None;
        for (jid, list) in self.xmpp.take_device_list_updates() {
            if let Err(e) = self.apply_device_list(jid, list).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Records one pushed device list; re-adds this device to our own list if it is missing.
    async fn apply_device_list(&mut self, jid: BareJid, list: DeviceList) -> Result<()> {
        let now = self.now();
        let step = self
            .engine
            .device_list_pushed(&self.store, jid.as_str(), &list, now)?;
        if !step.transaction.is_empty() {
            self.store.commit(step.transaction)?;
        }
        if let Some(suite) = step.re_add_self {
            self.list_self(suite).await?;
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
        self.engine.begin_catch_up();
        let fetched = self.read_archive(since, &mut out).await;
        if fetched.is_ok() {
            // Online now: the joined rooms are entered (again, after a lost session), and what
            // their archives hold since we last read them is part of this catch-up.
            self.enter_rooms(&mut out).await;
        }
        self.engine.end_catch_up();
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
        // Trust messages queued while offline (or before a crash) go out now.
        self.send_trust_messages().await;
        Ok(out)
    }

    /// Pages through the archive from our resume point, committing each page while the next
    /// one travels (one query always in flight until the end). The first catch-up of a
    /// connection sends initial presence once the archive is read, then reads once more: what
    /// arrived in between is archived but, as we queried the archive, not pushed to us.
    async fn read_archive(&mut self, since: u64, out: &mut Vec<Delivery>) -> Result<()> {
        let cursor = self.engine.archive_cursor(&self.store, since)?;
        self.read_pages(None, cursor, out).await
    }

    /// Pages through our archive, or `room`'s (XEP-0313 §6), from `cursor`, committing each
    /// page and moving the archive's resume point past it while the next page travels: a
    /// crash never skips a message, and a copy read again (live, and in the archive) is
    /// recognised by its ids or its content. Reading our own archive on a connection not
    /// online yet goes online at its end and reads once more (see [`Self::read_archive`]).
    pub(crate) async fn read_pages(
        &mut self,
        room: Option<&BareJid>,
        mut cursor: hush_engine::ArchiveCursor,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        let archive = room.unwrap_or(&self.jid).as_str().to_owned();
        self.xmpp
            .query_archive_of(room, cursor.after(), Some(cursor.since()))
            .await?;
        loop {
            let page = match self.xmpp.archive_page().await {
                Err(XmppError::ArchiveLostPlace) if cursor.lost_place() => {
                    self.xmpp
                        .query_archive_of(room, None, Some(cursor.since()))
                        .await?;
                    continue;
                }
                page => page?,
            };
            cursor.page(page.complete, page.last.as_deref())?;
            let more = if !page.complete {
                true
            } else if room.is_none() && !self.xmpp.is_online() {
                self.xmpp.go_online().await?;
                true
            } else {
                false
            };
            if more {
                self.xmpp
                    .query_archive_of(room, cursor.after(), Some(cursor.since()))
                    .await?;
            }
            for incoming in page.messages {
                if let Some(d) = self.process(incoming).await? {
                    out.push(d);
                }
            }
            // The page is committed: the next reading starts after it.
            if let Some(last) = &page.last {
                self.store.set_archive_resume(&archive, last)?;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Hands one message to the engine, commits its decision, and does what follows: a used
    /// prekey retired and key exchanges answered (outside a catch-up). `None` for duplicates,
    /// empty messages and copies of our own messages.
    async fn process(&mut self, incoming: Incoming) -> Result<Option<Delivery>> {
        let mut inbound = inbound(incoming);
        let now = self.now();
        if let Some(request) = self.engine.bundle_needed(&self.store, &inbound, now)? {
            inbound.sender_bundle = Some(self.fetch_bundle(&request).await);
        }
        let (transaction, after) = self
            .engine
            .receive(&self.store, inbound, now, &mut self.rng)?
            .into_parts();
        let committed = if transaction.is_empty() {
            Committed::default()
        } else {
            self.store.commit(transaction)?
        };
        let delivery = self.engine.settle(after, &committed);
        // The message is committed: what follows must not lose it, so failures are reported
        // and retried later instead of returned.
        if self.engine.prekeys_to_retire() {
            // Outside a catch-up a used one-time prekey goes at once: XEP-0384 keeps them only
            // while the archive may still hold messages built on them.
            if let Err(e) = self.retire_used_prekeys().await {
                log::warn!("could not republish the bundle after a key exchange: {e}");
            }
        }
        if self.engine.next_owed().is_some() || self.engine.next_heal().is_some() {
            if let Err(e) = self.pay_empty_messages().await {
                log::warn!("could not send an empty answer: {e}");
            }
        }
        Ok(delivery)
    }

    /// Whether a rolled-back store was found (and repaired) since connecting, on connecting
    /// or by a catch-up reading messages this device sent that the store had lost.
    pub fn rollback_found(&self) -> bool {
        self.engine.rollback_seen()
    }

    /// The bundle the engine asked for, or why it could not be had.
    async fn fetch_bundle(&mut self, request: &BundleRequest) -> Fetched {
        let jid: BareJid = request
            .jid
            .parse()
            .map_err(|_| FetchFailed::new(XmppError::BadJid(request.jid.clone())))?;
        self.xmpp
            .bundle(&jid, request.suite, request.device)
            .await
            .map_err(FetchFailed::new)
    }

    /// What happened to the link since login.
    pub fn link_stats(&self) -> crate::LinkStats {
        self.xmpp.link_stats()
    }

    /// The identity key device `device` of `jid` publishes, from its bundle (`omemo:2` first,
    /// then legacy), whose signed prekey it must have signed: to verify a device before any
    /// session with it exists.
    pub async fn published_identity(
        &mut self,
        jid: &BareJid,
        device: u32,
    ) -> Result<hush_proto::IdentityKey> {
        let mut failed = None;
        for suite in Suite::ALL {
            match self.xmpp.bundle(jid, suite, device).await {
                Ok(bundle) => {
                    bundle.verify()?;
                    return Ok(bundle.identity);
                }
                Err(e) => failed = Some(e),
            }
        }
        Err(failed.unwrap_or(XmppError::NothingPublished {
            jid: jid.to_string(),
            node: "bundle".into(),
        }))
    }

    /// The devices `jid` publishes, in either suite (each id once).
    pub async fn published_devices(&mut self, jid: &BareJid) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for suite in Suite::ALL {
            match self.xmpp.device_list(jid, suite).await {
                Ok(list) => ids.extend(list.devices.iter().map(|d| d.id)),
                Err(XmppError::NothingPublished { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Our contacts (the roster), with who sees whose presence.
    pub async fn contacts(&mut self) -> Result<Vec<crate::Contact>> {
        self.xmpp.roster().await
    }

    /// Adds `jid` as a contact: on the roster, its presence asked for and ours approved, so
    /// that each side sees the other online and gets its device-list changes.
    pub async fn add_contact(&mut self, jid: &BareJid) -> Result<()> {
        self.xmpp.add_contact(jid).await?;
        // The user said so: a contact, no longer a stranger (its device lists pushed from now
        // on are kept, and its new sessions are not rate-limited).
        self.store.commit(Transaction {
            conversations: vec![(jid.to_string(), hush_store::ConversationChange::Contact)],
            ..Default::default()
        })?;
        Ok(())
    }

    /// Removes `jid` from the contacts, and the presence subscriptions both ways.
    pub async fn remove_contact(&mut self, jid: &BareJid) -> Result<()> {
        self.xmpp.remove_contact(jid).await
    }

    /// Accounts not among the contacts that asked for our presence since login.
    pub fn presence_requests(&self) -> &[BareJid] {
        self.xmpp.presence_requests()
    }

    /// Waits until the server has everything sent so far.
    pub async fn flush(&mut self) -> Result<()> {
        self.xmpp.flush().await
    }

    /// Messages already read from the server and committed that no [`Self::receive`] call
    /// handed out yet (a catch-up inside `receive` reads a whole archive page at once), in
    /// order. A caller that stops receiving takes them before closing: [`Self::close`] keeps
    /// them only in the history, where nothing new announces them.
    pub fn take_unshown(&mut self) -> Vec<Delivery> {
        self.backlog.drain(..).collect()
    }

    /// Closes the connection. Deliveries not taken yet (see [`Self::take_unshown`]) are logged
    /// as a warning: they are in the history, but were never shown.
    pub async fn close(self) -> Result<S> {
        if !self.backlog.is_empty() {
            log::warn!(
                "{} messages read from the server were not shown before closing; they are in \
                 the history",
                self.backlog.len()
            );
        }
        self.xmpp.close().await?;
        Ok(self.store)
    }
}
