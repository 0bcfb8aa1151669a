//! # hush-devserver: a small, real XMPP server on loopback
//!
//! Enough XMPP for the Hush client and for standard clients on the same machine — and for
//! tests that need a *hostile* server: every stanza in both directions passes an
//! [`Adversary`] that may drop, change, duplicate or add stanzas, and tests can write stanzas
//! or raw bytes straight to a session ([`DevServer::inject`], [`DevServer::inject_raw`]) and
//! look at what the server stores ([`DevServer::archive`], [`DevServer::offline`],
//! [`DevServer::pep_items`]).
//!
//! What it speaks:
//! - RFC 6120 over plain TCP on 127.0.0.1: SASL SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN against
//!   registered users, resource binding (a second bind of the same full JID replaces the old
//!   session), the legacy session request; size and depth limits per stanza.
//! - One domain, no rosters: messages between local users by full or bare JID, offline
//!   storage, presence to the account's own sessions, XEP-0115 caps (the server asks a
//!   session's disco#info to learn its `+notify` features).
//! - Carbons (XEP-0280), the archive (XEP-0313, in memory) with XEP-0359 stanza ids, PEP
//!   (XEP-0163) with publish-options, disco (XEP-0030), ping (XEP-0199).
//! - Rooms (XEP-0045) at `conference.DOMAIN`: members-only and non-anonymous when configured,
//!   affiliations, the room's archive ([`DevServer::room_archive`]).
//! - HTTP File Upload (XEP-0363) at `upload.DOMAIN`, over HTTPS on another loopback port with
//!   a certificate for `localhost` from a CA made at start-up ([`DevServer::upload_ca_der`]);
//!   files are kept in memory ([`DevServer::uploads`]) and can be served changed, cut,
//!   extended or swapped, or slots answered with unusable URLs ([`UploadAttack`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hush_devserver::DevServerError> {
//! let server = hush_devserver::DevServer::start(Default::default()).await?;
//! let alice = server.register("alice", "secret")?; // "alice@localhost"
//! println!("connect to {} as {alice}", server.address());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod conn;
mod disco;
mod error;
mod guard;
mod mam;
mod pep;
mod router;
mod state;
mod upload;
mod xml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_xmpp::jid::Jid;

pub use error::DevServerError;
/// The element type of stanzas (minidom, as tokio-xmpp re-exports it).
pub use tokio_xmpp::minidom::Element;

use crate::guard::Limits;
use crate::state::{lock, Outbound, Shared, State, User};

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// The one domain served.
    pub domain: String,
    /// TCP port on 127.0.0.1; 0 picks a free one (see [`DevServer::address`]).
    pub port: u16,
    /// A stanza larger than this (bytes) closes the sender's stream with `policy-violation`.
    pub max_stanza_bytes: usize,
    /// Elements nested deeper than this inside a stanza close the stream the same way.
    pub max_depth: usize,
    /// The largest file the upload service takes (its `max-file-size`), in bytes.
    pub max_upload_bytes: u64,
    /// The most bytes the upload service keeps (in memory) and promises to open slots,
    /// together; slots beyond are refused with `resource-constraint`.
    pub max_upload_store_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            port: 0,
            max_stanza_bytes: 256 * 1024,
            max_depth: 64,
            max_upload_bytes: 32 << 20,
            max_upload_store_bytes: 256 << 20,
        }
    }
}

/// One archived message, as the server stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archived {
    /// The archive id (XEP-0359 stanza id, MAM result id).
    pub id: String,
    /// When it was archived, in seconds since the Unix epoch.
    pub stamp: u64,
    /// The other party's bare JID.
    pub with: String,
    /// The message, serialized.
    pub stanza: String,
}

/// What an archive holds, as [`Archived`] entries, oldest first.
fn archived(archive: &mam::Archive) -> Vec<Archived> {
    archive
        .entries
        .iter()
        .map(|e| Archived {
            id: e.id.clone(),
            stamp: e.stamp / 1_000_000,
            with: e.with.clone(),
            stanza: xml::to_string(&e.stanza),
        })
        .collect()
}

/// Hooks for a hostile server. The defaults pass everything through unchanged.
///
/// The hooks run on the server's connection tasks while the server waits: keep them quick, and
/// do not call [`DevServer::set_adversary`] from inside one (the other `DevServer` methods are
/// fine).
pub trait Adversary: Send {
    /// Every stanza a client sent (once its resource is bound), before the server handles it,
    /// with its `from` already set to the session's full JID. Return what the server should
    /// handle instead: empty = drop, several = duplicates or injections (each is handled as if
    /// this session had sent it).
    #[allow(clippy::wrong_self_convention)] // the name says where the stanza comes from
    fn from_client(&mut self, from_full_jid: &str, stanza: Element) -> Vec<Element> {
        let _ = from_full_jid;
        vec![stanza]
    }

    /// Every stanza the server is about to write to a session: messages, carbons, PEP
    /// notifications, archive results, IQ results and errors, presence, the server's own
    /// queries. Return what to write instead. (Stream negotiation and [`DevServer::inject`]
    /// do not pass here.)
    fn to_client(&mut self, to_full_jid: &str, stanza: Element) -> Vec<Element> {
        let _ = to_full_jid;
        vec![stanza]
    }
}

/// How the upload service (XEP-0363) misbehaves, for hostile-server tests; see
/// [`DevServer::set_upload_attack`]. Serving attacks apply to every download (GET) while set,
/// whenever the file was uploaded; slot attacks to the slots handed out while set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadAttack {
    /// Serve each file with one byte changed (its middle byte, one bit flipped).
    FlipByte,
    /// Serve each file cut to its first half, with a `Content-Length` that says so.
    Truncate,
    /// Serve each file with 1024 random bytes appended (counted in `Content-Length`).
    Extend,
    /// Serve another file of the same length instead: the latest other upload of that length
    /// if there is one, random bytes otherwise.
    Substitute,
    /// Answer slot requests with `http://` put and get URLs.
    PlainHttp,
    /// Answer slot requests with an honest put URL and a get URL on a loopback port where
    /// nothing listens (connections to it are refused): the upload works, the download cannot.
    GetElsewhere,
    /// Serve a whole-file download only half, then close the connection (as a network that
    /// drops it would); a download that resumes (`Range: bytes=N-`) gets the rest honestly.
    CutOff,
    /// Take a download's request and never answer it (the connection stays open until the
    /// service's time per connection is up).
    Silent,
}

/// The running server. Cheap to clone; every clone is the same server.
#[derive(Clone, Debug)]
pub struct DevServer {
    shared: Arc<Shared>,
}

/// How long [`DevServer::shutdown`] waits for connections to close.
const SHUTDOWN_TIME: Duration = Duration::from_secs(5);

impl DevServer {
    /// Starts listening on 127.0.0.1.
    pub async fn start(options: Options) -> Result<DevServer, DevServerError> {
        let domain = match Jid::new(&options.domain) {
            Ok(j) if j.node().is_none() && j.resource().is_none() => {
                j.domain().as_str().to_ascii_lowercase()
            }
            _ => return Err(DevServerError::BadDomain(options.domain)),
        };
        if options.max_stanza_bytes < 1024 {
            return Err(DevServerError::BadOptions(
                "max_stanza_bytes must be at least 1024",
            ));
        }
        if options.max_depth < 4 {
            return Err(DevServerError::BadOptions("max_depth must be at least 4"));
        }
        if options.max_upload_store_bytes < options.max_upload_bytes {
            return Err(DevServerError::BadOptions(
                "max_upload_store_bytes must be at least max_upload_bytes",
            ));
        }
        let listener = TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|source| DevServerError::Bind {
                port: options.port,
                source,
            })?;
        let address = listener
            .local_addr()
            .map_err(|source| DevServerError::Bind {
                port: options.port,
                source,
            })?;
        let limits = Limits {
            max_bytes: options.max_stanza_bytes,
            max_depth: options.max_depth,
        };
        let upload_listener = upload::Service::bind().await?;
        let upload_address = upload_listener
            .local_addr()
            .map_err(DevServerError::UploadBind)?;
        let upload_limits = upload::Limits {
            max_file: options.max_upload_bytes,
            max_total: options.max_upload_store_bytes,
        };
        let upload = upload::Service::new(upload_limits, upload_address)?;
        let shared = Arc::new(Shared::new(domain, limits, address, upload));
        let accepting = tokio::spawn(accept(shared.clone(), listener));
        let uploading = tokio::spawn(upload::accept(shared.clone(), upload_listener));
        lock(&shared.tasks).extend([accepting, uploading]);
        Ok(DevServer { shared })
    }

    /// The address clients connect to (`ConnectOptions.server`).
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// The domain served.
    pub fn domain(&self) -> &str {
        &self.shared.domain
    }

    /// Registers a user; returns the bare JID.
    pub fn register(&self, user: &str, password: &str) -> Result<String, DevServerError> {
        let name = auth::localpart(user).ok_or_else(|| DevServerError::BadUser(user.into()))?;
        let secrets = auth::Secrets::new(password)?;
        let mut st = lock(&self.shared.state);
        if st.users.contains_key(&name) {
            return Err(DevServerError::UserExists(self.shared.bare(&name)));
        }
        st.users.insert(
            name.clone(),
            User {
                secrets,
                archive: Default::default(),
                offline: Default::default(),
                pep: Default::default(),
            },
        );
        Ok(self.shared.bare(&name))
    }

    /// Installs (or removes, with `None`) the adversary that sees every stanza.
    pub fn set_adversary(&self, adversary: Option<Box<dyn Adversary>>) {
        *lock(&self.shared.adversary) = adversary;
    }

    /// Writes a stanza straight to a session (full JID) or to all available sessions of a
    /// bare JID, bypassing routing, storage and the adversary: for tests that forge, replay or
    /// deliver late. Returns how many sessions it reached.
    pub fn inject(&self, to: &str, stanza: Element) -> usize {
        self.send(to, |_| Outbound::Stanza(stanza.clone()))
    }

    /// Writes raw bytes to the sessions, as [`Self::inject`] does stanzas (for oversized or
    /// malformed XML from a hostile server).
    pub fn inject_raw(&self, to: &str, bytes: Vec<u8>) -> usize {
        self.send(to, |_| Outbound::Raw(bytes.clone()))
    }

    fn send(&self, to: &str, make: impl Fn(&str) -> Outbound) -> usize {
        let st = lock(&self.shared.state);
        self.targets(&st, to)
            .iter()
            .filter(|full| {
                st.sessions
                    .get(full.as_str())
                    .is_some_and(|s| s.tx.send(make(full)).is_ok())
            })
            .count()
    }

    /// A full JID's session (connected), or a bare JID's available sessions.
    fn targets(&self, st: &State, to: &str) -> Vec<String> {
        let Ok(jid) = Jid::new(to) else {
            return Vec::new();
        };
        let Some(user) = self.user_of(to) else {
            return Vec::new();
        };
        match jid.resource() {
            Some(r) => {
                let full = format!("{}/{}", self.shared.bare(&user), r.as_str());
                st.sessions
                    .contains_key(&full)
                    .then_some(full)
                    .into_iter()
                    .collect()
            }
            None => st
                .sessions
                .iter()
                .filter(|(_, s)| s.user == user && s.available)
                .map(|(f, _)| f.clone())
                .collect(),
        }
    }

    /// The localpart of `user` (a localpart or a JID of this domain).
    fn user_of(&self, user: &str) -> Option<String> {
        if !user.contains('@') {
            return auth::localpart(user);
        }
        let jid = Jid::new(user).ok()?;
        if !jid
            .domain()
            .as_str()
            .eq_ignore_ascii_case(&self.shared.domain)
        {
            return None;
        }
        jid.node().map(|n| n.as_str().to_owned())
    }

    /// The room service's domain (XEP-0045): `conference.DOMAIN`.
    pub fn muc_domain(&self) -> String {
        self.shared.muc_domain()
    }

    /// What the archive of the room `room` (`name@conference.DOMAIN`, or its localpart)
    /// holds, oldest first; empty for a room that does not exist.
    pub fn room_archive(&self, room: &str) -> Vec<Archived> {
        let name = room.split('@').next().unwrap_or(room).to_lowercase();
        let st = lock(&self.shared.state);
        st.rooms
            .get(&name)
            .map(|r| archived(&r.archive))
            .unwrap_or_default()
    }

    /// The rooms that exist, as `name@conference.DOMAIN`.
    pub fn rooms(&self) -> Vec<String> {
        let st = lock(&self.shared.state);
        st.rooms.values().map(|r| r.jid.clone()).collect()
    }

    /// Changes a room's privacy as a (hostile) room service would, without its owner: the
    /// occupants get the notices a configuration change sends (status 104, and 172 or 173).
    /// `false` when the room does not exist.
    pub fn set_room_privacy(&self, room: &str, members_only: bool, non_anonymous: bool) -> bool {
        let name = room.split('@').next().unwrap_or(room).to_lowercase();
        let mut out = state::Outbox::default();
        let done = {
            let mut st = lock(&self.shared.state);
            router::rooms::set_privacy(
                &self.shared,
                &mut st,
                &mut out,
                &name,
                members_only,
                non_anonymous,
            )
        };
        self.shared.flush(out);
        done
    }

    /// The upload service's address (XEP-0363): `upload.DOMAIN`, listed in the domain's
    /// disco#items.
    pub fn upload_domain(&self) -> String {
        self.shared.upload_domain()
    }

    /// Where the upload service's HTTPS listener is: 127.0.0.1 and a port of its own. Its URLs
    /// name the host `localhost`.
    pub fn upload_address(&self) -> SocketAddr {
        self.shared.upload.address
    }

    /// The certificate (DER) of the CA that issued the upload service's certificate, made when
    /// the server started: what a client must trust to use the service (for Hush,
    /// `Hush::trust_for_files`). Its key is gone; it issued that one certificate only.
    pub fn upload_ca_der(&self) -> Vec<u8> {
        self.shared.upload.ca_der()
    }

    /// Every file stored by the upload service, exactly as it was PUT, oldest first: what the
    /// server saw of the files shared through it.
    pub fn uploads(&self) -> Vec<Vec<u8>> {
        self.shared.upload.files()
    }

    /// The file names slot requests asked for (the last 10,000), oldest first: what the server
    /// was told of the files' names.
    pub fn upload_requests(&self) -> Vec<String> {
        self.shared.upload.names()
    }

    /// Makes the upload service misbehave as `attack` says (`None`: honest again). See
    /// [`UploadAttack`] for what each does and when it applies.
    pub fn set_upload_attack(&self, attack: Option<UploadAttack>) {
        self.shared.upload.set_attack(attack);
    }

    /// What the archive of `user` (localpart or JID) holds, oldest first.
    pub fn archive(&self, user: &str) -> Vec<Archived> {
        let Some(name) = self.user_of(user) else {
            return Vec::new();
        };
        let st = lock(&self.shared.state);
        st.users
            .get(&name)
            .map(|u| archived(&u.archive))
            .unwrap_or_default()
    }

    /// The offline messages waiting for `user`, serialized, oldest first.
    pub fn offline(&self, user: &str) -> Vec<String> {
        let Some(name) = self.user_of(user) else {
            return Vec::new();
        };
        let st = lock(&self.shared.state);
        st.users
            .get(&name)
            .map(|u| u.offline.iter().map(|(_, m)| xml::to_string(m)).collect())
            .unwrap_or_default()
    }

    /// The items of `user`'s PEP node `node`, oldest first, each as `<item id='…'>payload
    /// </item>` (namespace `http://jabber.org/protocol/pubsub`).
    pub fn pep_items(&self, user: &str, node: &str) -> Vec<Element> {
        let Some(name) = self.user_of(user) else {
            return Vec::new();
        };
        let st = lock(&self.shared.state);
        st.users
            .get(&name)
            .and_then(|u| u.pep.get(node))
            .map(|n| {
                n.items
                    .iter()
                    .map(|(id, payload)| pep::Node::item(id, payload, xml::ns::PUBSUB))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether a full JID currently has an available session.
    pub fn is_online(&self, full_jid: &str) -> bool {
        if !full_jid.contains('/') {
            return false;
        }
        let st = lock(&self.shared.state);
        self.targets(&st, full_jid)
            .first()
            .and_then(|f| st.sessions.get(f))
            .is_some_and(|s| s.available)
    }

    /// The full JIDs of `user`'s connected sessions (available or not).
    pub fn sessions(&self, user: &str) -> Vec<String> {
        let Some(name) = self.user_of(user) else {
            return Vec::new();
        };
        lock(&self.shared.state)
            .sessions
            .iter()
            .filter(|(_, s)| s.user == name)
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// Stops accepting, closes every stream with `system-shutdown` and waits (up to a few
    /// seconds) for the connections to end.
    pub async fn shutdown(self) {
        let _ = self.shared.shutdown.send(true);
        let tasks = std::mem::take(&mut *lock(&self.shared.tasks));
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TIME;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Accepts connections until shutdown, one task each.
async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut conn: u64 = 0;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((tcp, _)) => {
                conn += 1;
                let task = tokio::spawn(conn::serve(shared.clone(), tcp, conn));
                let mut tasks = lock(&shared.tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                log::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
