//! The account engine: every XEP-0384 business rule of one account, with no I/O of its own.
//!
//! It sits between the store (`hush-store`) and the network shell (`hush-xmpp`), in the shape
//! of quinn-proto: the shell hands it what arrived (a classified message, the device lists and
//! bundles it was asked to fetch, the user's command), the time and an RNG; the engine reads the
//! store and answers with values — the [`Transaction`](hush_store::Transaction) to commit for
//! the step, the stanza to transmit, what to fetch, what to show the user. The shell only
//! fetches, commits and transmits. Nothing of a step is written outside its transaction, and a
//! refused step hands out no transaction at all, so the store stays exactly as it was.
//!
//! * [`receive`]: one incoming message — deduplication, strangers and blocked JIDs, decryption
//!   (sessions with earlier states), the SCE envelope, trust (blind trust before verification),
//!   warnings, and the empty answers XEP-0384 asks for.
//! * [`send`]: one outgoing message — which devices can read it, the send policy, the sessions
//!   to build from which bundles, the encrypted element and its outbox entry.
//! * [`strangers`]: how many new sessions JIDs we never wrote to may make us build.
//! * [`archive`]: where a catch-up starts, restarts and resumes in our archive.
//! * [`keys`]: this device's published keys kept fresh (prekeys retired and refilled, the
//!   signed prekey rotated).
//! * [`atm`]: Automatic Trust Management (XEP-0450) — what a verification tells the user's other
//!   devices and the contact's, and what their trust messages change here.
//! * [`trust_message`]: XEP-0434 trust messages, as Automatic Trust Management (XEP-0450) sends
//!   them over OMEMO 2.
//! * [`stanza`]: the `<message/>` stanzas it hands the shell to transmit, whole.
//! * [`readers`]: who would read the next message, from what the store knows (`hush status`).
//! * [`refusal`]: why a message was not sent, and why a device gets no key: typed values.
//! * [`warning`]: what the user must be told prominently about a message that was read.
//! * [`outbox`]: what a previous run stored but did not send, and how it goes out now.
//! * [`devices`]: device lists — what a push records, the lists this device publishes, id
//!   collisions.
//! * [`room`]: group chats — which rooms may have encrypted messages, and a room message for
//!   every device of every member, one element per suite.
//! * [`rollback`]: a store put back behind Hush's back, found from our published bundle and
//!   our own messages in the archive, and repaired as a restore is.
//!
//! The phase of the account is a value ([`Phase`]): while it catches up on its archive, key
//! exchanges are answered only afterwards, once per device, and used prekeys are retired only
//! then (XEP-0384's advice for catch-up).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod atm;
pub mod devices;
mod error;
pub mod heal;
pub mod keys;
pub mod outbox;
pub mod readers;
pub mod receive;
pub mod refusal;
pub mod rollback;
pub mod room;
pub mod send;
pub mod stanza;
pub mod strangers;
pub mod trust_message;
mod types;
pub mod warning;

use std::time::Duration;

use hush_proto::{LocalDevice, Suite};

pub use archive::ArchiveCursor;
pub use atm::{AtmReport, TrustStep, UserDecision};
pub use devices::ListStep;
pub use error::{EngineError, Result};
pub use heal::Heal;
pub use keys::KeyMaintenance;
pub use outbox::Resend;
pub use readers::{Candidate, NextMessage};
pub use receive::{After, BundleRequest, Inbound, InboundPayload, ReceiveStep, ServerStamp};
pub use refusal::{DeviceState, FetchFailed, Obstacle, Refusal};
pub use rollback::{Repaired, Rollback, ROLLBACK_WARNING};
pub use room::{Announced, RoomPlan, RoomRefusal};
pub use send::{Control, ControlReaders, Fetched, Prepared, Route, SendPlan};
pub use stanza::{MessageStanza, Wire};
pub use types::{Arrival, Content, Delivery, SasArrival, SendOptions, SendReport, Unreached};
pub use warning::{KeyConcern, RoomChange, Unconfirmed, Warning};

/// How long a device may stay silent before Hush stops encrypting to it (it comes back with
/// its next message). Long enough for a holiday without the phone; short enough that a
/// phone lost years ago does not keep getting keys.
pub const DEFAULT_INACTIVE_AFTER: Duration = Duration::from_secs(90 * 24 * 3600);

/// How often the signed prekey is replaced (XEP-0384: every one to four weeks). The previous
/// one is kept for one more period, for key exchanges built on the old bundle.
pub const SIGNED_PREKEY_PERIOD: u64 = 7 * 86_400;

/// Longer device lists are refused or ignored (no real account has that many devices).
pub use hush_proto::MAX_LISTED_DEVICES;

/// What the account is doing, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading live traffic: key exchanges are answered at once, used prekeys retired at once.
    Live,
    /// Reading the archive: answers and prekey retirement wait for the end of the catch-up.
    CatchingUp,
}

/// A device owed an empty message: the answer to its key exchange, or a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owed {
    /// The suite of the session.
    pub suite: Suite,
    /// The device's owner.
    pub jid: String,
    /// The device.
    pub device: u32,
}

/// The rules of one account. Holds this device's keys (as stored) and what the rules remember
/// between steps; everything else is read from the store handed to each step.
#[derive(Debug)]
pub struct Engine {
    jid: String,
    local: LocalDevice,
    phase: Phase,
    owed: Vec<Owed>,
    /// Devices owed a key exchange that heals theirs (see [`heal`]).
    heals: Vec<Heal>,
    /// When each device was last healed (at most once per [`heal::HEAL_INTERVAL`]).
    healed_at: std::collections::BTreeMap<(String, u32), u64>,
    prekeys_used: bool,
    inactive_after: Duration,
    /// A rolled-back store was found and repaired (see [`rollback`]): later signs in this run
    /// are only recorded, not repaired or reported again.
    rollback_seen: bool,
}

impl Engine {
    /// The engine of account `jid` whose device keys are `local` (as stored).
    pub fn new(jid: &str, local: LocalDevice) -> Self {
        Self {
            jid: jid.to_owned(),
            local,
            phase: Phase::Live,
            owed: Vec::new(),
            heals: Vec::new(),
            healed_at: std::collections::BTreeMap::new(),
            prekeys_used: false,
            inactive_after: DEFAULT_INACTIVE_AFTER,
            rollback_seen: false,
        }
    }

    /// Our bare JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// This device's id.
    pub fn device_id(&self) -> u32 {
        self.local.device_id()
    }

    /// This device's keys, as the engine uses them.
    pub fn device(&self) -> &LocalDevice {
        &self.local
    }

    /// Takes the device keys as stored again (after a prekey refill or rotation).
    pub fn set_device(&mut self, local: LocalDevice) {
        self.local = local;
    }

    /// Leaves devices not heard from for `after` out of new messages.
    pub fn set_inactive_after(&mut self, after: Duration) {
        self.inactive_after = after;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// An archive catch-up starts: answers and prekey retirement wait for its end.
    pub fn begin_catch_up(&mut self) {
        self.phase = Phase::CatchingUp;
    }

    /// The catch-up is over (or stopped): back to live rules.
    pub fn end_catch_up(&mut self) {
        self.phase = Phase::Live;
    }

    /// Whether one-time prekeys were used since they were last retired, and retiring them is
    /// due now (never during a catch-up: the archive may still hold messages built on them).
    pub fn prekeys_to_retire(&self) -> bool {
        self.prekeys_used && self.phase == Phase::Live
    }

    /// Whether the signed prekey is due for replacement at `now` (see
    /// [`SIGNED_PREKEY_PERIOD`]). Checked whenever the bundle is maintained: after each
    /// catch-up and after a key exchange.
    pub fn signed_prekey_due(&self, now: u64) -> bool {
        self.local.signed_prekey_age(now) >= SIGNED_PREKEY_PERIOD
    }

    /// The used prekeys were retired (and the bundle republished).
    pub fn prekeys_retired(&mut self) {
        self.prekeys_used = false;
    }

    /// The next device owed an empty message, when answering is due (never during a
    /// catch-up). Call [`Engine::answered`] once it was sent.
    pub fn next_owed(&self) -> Option<&Owed> {
        (self.phase == Phase::Live)
            .then(|| self.owed.first())
            .flatten()
    }

    /// The empty message to `owed` went out (or is no longer possible).
    pub fn answered(&mut self, owed: &Owed) {
        self.owed.retain(|o| o != owed);
    }

    fn owe(&mut self, owed: Owed) {
        if !self.owed.contains(&owed) {
            self.owed.push(owed);
        }
    }
}
