//! The server's shared state: accounts (credentials, archive, offline messages, PEP nodes),
//! the sessions that are connected, the entity-capabilities cache — and the delivery path that
//! every stanza the server writes goes through (the adversary's `to_client` hook, then the
//! session's queue).
//!
//! Everything sits behind one `std::sync::Mutex`, held only for synchronous work: a handler
//! collects what it wants to write in an [`Outbox`] while holding the lock and hands it to
//! [`Shared::flush`] after releasing it, so the adversary (user code) never runs under the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use tokio_xmpp::minidom::Element;

use crate::auth::Secrets;
use crate::guard::Limits;
use crate::mam::Archive;
use crate::pep::Node;
use crate::Adversary;

/// Locks a mutex, ignoring poisoning: no lock is held across code that can fail half-way,
/// except the adversary's, whose state is the test's own business.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a connection task writes to its client.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A stanza.
    Stanza(Element),
    /// Bytes, as they are (hostile-server tests).
    Raw(Vec<u8>),
    /// Close the stream with this stream error condition.
    Close(&'static str),
}

/// One connected (bound) session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The connection serving it (a replaced session's late clean-up must not remove its
    /// successor).
    pub(crate) conn: u64,
    /// The account's localpart.
    pub(crate) user: String,
    pub(crate) tx: mpsc::UnboundedSender<Outbound>,
    /// Sent available presence (and no unavailable since).
    pub(crate) available: bool,
    /// Presence priority; messages to the bare JID skip negative ones (RFC 6121 §8.5.2).
    pub(crate) priority: i32,
    /// The last available presence, as broadcast to the account's other sessions.
    pub(crate) presence: Option<Element>,
    /// Carbons (XEP-0280) enabled.
    pub(crate) carbons: bool,
    /// The session queried the archive: offline messages stay for the archive to deliver.
    pub(crate) mam_queried: bool,
    /// The features its entity capabilities announce; `None` while the disco#info query is
    /// out.
    pub(crate) features: Option<Arc<BTreeSet<String>>>,
    /// The caps `node#ver` last announced.
    pub(crate) caps: Option<String>,
}

impl Session {
    /// Whether PEP notifications of `node` go to this session (XEP-0163 `+notify`).
    pub(crate) fn wants(&self, node: &str) -> bool {
        self.available
            && self
                .features
                .as_ref()
                .is_some_and(|f| f.contains(&format!("{node}+notify")))
    }
}

/// One account.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) secrets: Secrets,
    pub(crate) archive: Archive,
    /// Messages that found no available session: `(stamp µs, stanza)`.
    pub(crate) offline: VecDeque<(u64, Element)>,
    pub(crate) pep: BTreeMap<String, Node>,
}

/// At most this many offline messages per account; older ones are dropped first.
pub(crate) const MAX_OFFLINE: usize = 10_000;

/// A disco#info query the server sent to learn a session's features.
#[derive(Debug)]
pub(crate) struct PendingDisco {
    /// The session asked.
    pub(crate) full: String,
    /// The caps `node#ver` it announced.
    pub(crate) caps: String,
    /// `(hash, ver)` when the caps can be verified and cached.
    pub(crate) verify: Option<(String, String)>,
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// By localpart.
    pub(crate) users: HashMap<String, User>,
    /// By full JID.
    pub(crate) sessions: BTreeMap<String, Session>,
    /// Verified entity capabilities: `hash ver` → features.
    pub(crate) caps: HashMap<String, Arc<BTreeSet<String>>>,
    /// By IQ id.
    pub(crate) disco: HashMap<String, PendingDisco>,
    /// The last archive serial handed out (shared by all archives, so ids are unique).
    pub(crate) archive_serial: u64,
    /// The rooms (XEP-0045) of `conference.DOMAIN`, by localpart.
    pub(crate) rooms: BTreeMap<String, crate::router::rooms::Room>,
}

impl State {
    /// Full JIDs of `user`'s available sessions that take messages sent to the bare JID
    /// (non-negative priority).
    pub(crate) fn bare_targets(&self, user: &str) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.user == user && s.available && s.priority >= 0)
            .map(|(full, _)| full.clone())
            .collect()
    }

    /// Full JIDs of every available session of `user`, whatever its priority.
    pub(crate) fn available_sessions(&self, user: &str) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.user == user && s.available)
            .map(|(full, _)| full.clone())
            .collect()
    }
}

/// Stanzas to write, collected under the lock, written after it.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    items: Vec<(String, mpsc::UnboundedSender<Outbound>, Element)>,
}

impl Outbox {
    /// Queues `stanza` for the session `full`, if it is connected.
    pub(crate) fn push(&mut self, state: &State, full: &str, stanza: Element) {
        if let Some(s) = state.sessions.get(full) {
            self.items.push((full.to_owned(), s.tx.clone(), stanza));
        }
    }
}

/// The state shared by the listener, every connection and every [`crate::DevServer`] handle.
pub(crate) struct Shared {
    pub(crate) domain: String,
    pub(crate) limits: Limits,
    pub(crate) address: SocketAddr,
    pub(crate) state: Mutex<State>,
    pub(crate) adversary: Mutex<Option<Box<dyn Adversary>>>,
    /// The HTTP File Upload service (XEP-0363) at `upload.DOMAIN`.
    pub(crate) upload: crate::upload::Service,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    serial: AtomicU64,
    /// A random prefix for ids this server makes (archive ids: a client's resume point from
    /// another server run is then unknown instead of naming some other message).
    pub(crate) prefix: String,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("domain", &self.domain)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        domain: String,
        limits: Limits,
        address: SocketAddr,
        upload: crate::upload::Service,
    ) -> Self {
        Self {
            domain,
            limits,
            address,
            state: Mutex::new(State::default()),
            adversary: Mutex::new(None),
            upload,
            shutdown: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
            prefix: format!("{:08x}", rand::random::<u32>()),
        }
    }

    /// A fresh id for a stanza the server makes.
    pub(crate) fn next_id(&self, what: &str) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{what}-{}-{n}", self.prefix)
    }

    /// The room service's domain: `conference.DOMAIN`.
    pub(crate) fn muc_domain(&self) -> String {
        format!("conference.{}", self.domain)
    }

    /// The upload service's address: `upload.DOMAIN`.
    pub(crate) fn upload_domain(&self) -> String {
        format!("upload.{}", self.domain)
    }

    /// `user@domain`.
    pub(crate) fn bare(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    /// Passes one stanza a client sent through the adversary.
    pub(crate) fn adversary_in(&self, full: &str, stanza: Element) -> Vec<Element> {
        match lock(&self.adversary).as_mut() {
            Some(a) => a.from_client(full, stanza),
            None => vec![stanza],
        }
    }

    /// Writes what a handler collected: each stanza through the adversary, then to its
    /// session's queue.
    pub(crate) fn flush(&self, outbox: Outbox) {
        if outbox.items.is_empty() {
            return;
        }
        let mut adversary = lock(&self.adversary);
        for (full, tx, stanza) in outbox.items {
            let stanzas = match adversary.as_mut() {
                Some(a) => a.to_client(&full, stanza),
                None => vec![stanza],
            };
            for s in stanzas {
                // A closed queue means the session just ended: nothing to do.
                let _ = tx.send(Outbound::Stanza(s));
            }
        }
    }
}
