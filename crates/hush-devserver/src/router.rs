//! What happens to a stanza a bound client sent: routing between local users (RFC 6120 §10,
//! RFC 6121 §8, without rosters), presence and availability, offline storage, Carbons
//! (XEP-0280), the archive (XEP-0313) with XEP-0359 stanza ids, PEP (XEP-0163), disco, ping
//! and the other requests the server answers itself; the room service (`rooms`) and the
//! upload service's XMPP half (`uploads`). Also session binding and unbinding.
//!
//! Every handler runs under the state lock and only collects what to write in an [`Outbox`];
//! nothing here awaits or calls the adversary.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_xmpp::jid::{Jid, ResourcePart};
use tokio_xmpp::minidom::{Element, Node};

use crate::disco;
use crate::mam;
use crate::pep::{self, PepError};
use crate::state::{lock, Outbound, Outbox, PendingDisco, Session, Shared, State, MAX_OFFLINE};
use crate::xml::{self, el, error_reply, iq_result, ns, set_attr, Build, Condition};

pub(crate) mod rooms;
mod uploads;

/// Verified entity capabilities remembered at most (the cache starts over beyond).
const MAX_CAPS: usize = 1024;

/// Where a stanza is addressed, as far as this server is concerned.
#[derive(Debug, PartialEq, Eq)]
enum Addr {
    /// No `to`: the sender's own account (RFC 6120 §10.3).
    Own,
    /// The server itself.
    Domain,
    /// A local account's bare JID (localpart).
    Bare(String),
    /// A local account's full JID: `(localpart, full JID)`.
    Full(String, String),
    /// A local JID whose account does not exist.
    Unknown,
    /// The room service (`conference.DOMAIN`): itself (`None`), or a room, with a nickname
    /// when the JID has one.
    Room(Option<String>, Option<String>),
    /// The upload service (`upload.DOMAIN`): `true` for the service itself, `false` for a
    /// JID under it (with a localpart or resource), which is nobody.
    Upload(bool),
    /// Another domain.
    Remote,
}

/// One handler run: the state, where output goes, and who sent the stanza.
struct Cx<'a> {
    shared: &'a Shared,
    st: &'a mut State,
    out: &'a mut Outbox,
    /// The sender's full JID.
    full: &'a str,
    /// The sender's localpart.
    user: &'a str,
}

/// Handles one stanza a bound session sent: through the adversary, then routed.
pub(crate) fn client_stanza(shared: &Shared, full: &str, user: &str, conn: u64, stanza: Element) {
    for mut s in shared.adversary_in(full, stanza) {
        if !(s.has_ns(ns::CLIENT) && matches!(s.name(), "message" | "presence" | "iq")) {
            log::debug!("{full}: the adversary returned a non-stanza; ignored");
            continue;
        }
        // RFC 6120 §8.1.2.1: the server stamps the sender's full JID.
        set_attr(&mut s, "from", full);
        let mut out = Outbox::default();
        {
            let mut st = lock(&shared.state);
            if st.sessions.get(full).is_none_or(|x| x.conn != conn) {
                return; // replaced by a newer session of the same full JID
            }
            let mut cx = Cx {
                shared,
                st: &mut st,
                out: &mut out,
                full,
                user,
            };
            match s.name() {
                "message" => cx.message(s),
                "presence" => cx.presence(s),
                _ => cx.iq(s),
            }
        }
        shared.flush(out);
    }
}

/// Why a bind failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BindError {
    /// The resource is not a valid resourcepart.
    BadResource,
}

/// Binds a resource (RFC 6120 §7): the client's, or a fresh one. A session already bound to
/// the same full JID is closed with a `conflict` stream error and replaced.
pub(crate) fn bind(
    shared: &Shared,
    user: &str,
    resource: Option<&str>,
    conn: u64,
    tx: mpsc::UnboundedSender<Outbound>,
) -> Result<String, BindError> {
    let bare = shared.bare(user);
    let mut out = Outbox::default();
    let full = {
        let mut st = lock(&shared.state);
        let full = match resource.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => {
                let part = ResourcePart::new(r).map_err(|_| BindError::BadResource)?;
                format!("{bare}/{}", part.as_str())
            }
            None => loop {
                let candidate = format!("{bare}/hush-{:08x}", rand::random::<u32>());
                if !st.sessions.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        if let Some(old) = st.sessions.get(&full) {
            let _ = old.tx.send(Outbound::Close("conflict"));
            drop_session(&mut st, &mut out, &full);
        }
        st.sessions.insert(
            full.clone(),
            Session {
                conn,
                user: user.to_owned(),
                tx,
                available: false,
                priority: 0,
                presence: None,
                carbons: false,
                mam_queried: false,
                features: None,
                caps: None,
            },
        );
        full
    };
    shared.flush(out);
    Ok(full)
}

/// Ends the session of connection `conn` on `full` (its stream closed): it becomes
/// unavailable and the account's other sessions are told.
pub(crate) fn unbind(shared: &Shared, full: &str, conn: u64) {
    let mut out = Outbox::default();
    {
        let mut st = lock(&shared.state);
        if st.sessions.get(full).is_some_and(|s| s.conn == conn) {
            drop_session(&mut st, &mut out, full);
        }
    }
    shared.flush(out);
}

fn drop_session(st: &mut State, out: &mut Outbox, full: &str) {
    rooms::drop_occupant(st, out, full);
    let Some(gone) = st.sessions.remove(full) else {
        return;
    };
    st.disco.retain(|_, p| p.full != full);
    if gone.available {
        for other in st.available_sessions(&gone.user) {
            let p = el("presence", ns::CLIENT)
                .with("type", "unavailable")
                .with("from", full)
                .with("to", other.as_str());
            out.push(st, &other, p);
        }
    }
}

/// Removes the XEP-0359 `<stanza-id/>` elements that claim to come from `by`: only the
/// archive of `by` may set those (XEP-0359 §3.1).
fn strip_stanza_ids(m: &mut Element, by: &str) {
    let nodes = m.take_nodes();
    for node in nodes {
        let forged = matches!(&node, Node::Element(e)
            if e.is("stanza-id", ns::SID) && e.attr("by").is_none_or(|b| b.eq_ignore_ascii_case(by)));
        if !forged {
            m.append_node(node);
        }
    }
}

fn with_stanza_id(mut m: Element, by: &str, id: Option<&String>) -> Element {
    if let Some(id) = id {
        m.append_child(
            el("stanza-id", ns::SID)
                .with("id", id.as_str())
                .with("by", by),
        );
    }
    m
}

/// Whether a message is worth keeping: `(in the archive, offline)`. Chat and normal messages
/// with a body, an `<encrypted/>` payload (any namespace) or a `<store/>` hint; `<no-store/>`
/// keeps it out of both, `<no-permanent-store/>` out of the archive.
fn worth_keeping(m: &Element) -> (bool, bool) {
    let has = |name: &str, namespace: &str| m.has_child(name, namespace);
    let content = has("body", ns::CLIENT)
        || has("store", ns::HINTS)
        || m.children().any(|c| c.name() == "encrypted");
    let offline = content && !has("no-store", ns::HINTS);
    let archive = offline && !has("no-permanent-store", ns::HINTS);
    (archive, offline)
}

/// A Carbons wrapper (XEP-0280 §6, §7).
fn carbon(kind: &str, owner_bare: &str, to: &str, id: String, inner: Element) -> Element {
    el("message", ns::CLIENT)
        .with("from", owner_bare)
        .with("to", to)
        .with("type", "chat")
        .with("id", id)
        .child(el(kind, ns::CARBONS).child(el("forwarded", ns::FORWARD).child(inner)))
}

impl Cx<'_> {
    fn push(&mut self, to: &str, stanza: Element) {
        self.out.push(self.st, to, stanza);
    }

    fn error(
        &mut self,
        original: &Element,
        condition: Condition,
        extra: Option<Element>,
        text: Option<&str>,
    ) {
        if let Some(reply) = error_reply(original, condition, extra, text) {
            let to = self.full.to_owned();
            self.push(&to, reply);
        }
    }

    fn pubsub_error(&mut self, iq: &Element, condition: Condition, app: Option<&str>, text: &str) {
        let extra = app.map(|a| el(a, ns::PUBSUB_ERRORS));
        self.error(iq, condition, extra, (!text.is_empty()).then_some(text));
    }

    fn unsupported(&mut self, iq: &Element, feature: &str) {
        let extra = el("unsupported", ns::PUBSUB_ERRORS).with("feature", feature);
        self.error(iq, Condition::FeatureNotImplemented, Some(extra), None);
    }

    fn result(&mut self, request: &Element, payload: Option<Element>) {
        let to = self.full.to_owned();
        self.push(&to, iq_result(request, payload));
    }

    fn session_mut(&mut self) -> Option<&mut Session> {
        self.st.sessions.get_mut(self.full)
    }

    fn addr(&self, to: Option<&str>) -> Result<Addr, ()> {
        let Some(to) = to else {
            return Ok(Addr::Own);
        };
        let jid = Jid::new(to).map_err(|_| ())?;
        if jid
            .domain()
            .as_str()
            .eq_ignore_ascii_case(&self.shared.muc_domain())
        {
            return Ok(Addr::Room(
                jid.node().map(|n| n.as_str().to_owned()),
                jid.resource().map(|r| r.as_str().to_owned()),
            ));
        }
        if jid
            .domain()
            .as_str()
            .eq_ignore_ascii_case(&self.shared.upload_domain())
        {
            return Ok(Addr::Upload(
                jid.node().is_none() && jid.resource().is_none(),
            ));
        }
        if !jid
            .domain()
            .as_str()
            .eq_ignore_ascii_case(&self.shared.domain)
        {
            return Ok(Addr::Remote);
        }
        let Some(node) = jid.node() else {
            return Ok(Addr::Domain);
        };
        let user = node.as_str().to_owned();
        if !self.st.users.contains_key(&user) {
            return Ok(Addr::Unknown);
        }
        Ok(match jid.resource() {
            Some(r) => {
                let full = format!("{}/{}", self.shared.bare(&user), r.as_str());
                Addr::Full(user, full)
            }
            None => Addr::Bare(user),
        })
    }

    // ----- messages -----

    fn message(&mut self, m: Element) {
        let kind = m.attr("type").unwrap_or("normal").to_owned();
        if !matches!(
            kind.as_str(),
            "normal" | "chat" | "groupchat" | "headline" | "error"
        ) {
            return self.error(
                &m,
                Condition::BadRequest,
                None,
                Some("unknown message type"),
            );
        }
        let addr = match self.addr(m.attr("to")) {
            Ok(a) => a,
            Err(()) => return self.error(&m, Condition::JidMalformed, None, None),
        };
        let quiet = matches!(kind.as_str(), "error" | "headline");
        match addr {
            Addr::Own => {
                let user = self.user.to_owned();
                self.deliver_to_user(&user, None, m, &kind);
            }
            Addr::Bare(user) => self.deliver_to_user(&user, None, m, &kind),
            Addr::Full(user, full) => self.deliver_to_user(&user, Some(full), m, &kind),
            Addr::Room(Some(room), None) => self.room_message(&room, m, &kind),
            Addr::Room(..) if !quiet => self.error(
                &m,
                Condition::FeatureNotImplemented,
                None,
                Some("this room service takes no private messages"),
            ),
            Addr::Domain | Addr::Unknown | Addr::Upload(_) if !quiet => {
                self.error(&m, Condition::ServiceUnavailable, None, None)
            }
            Addr::Remote if !quiet => self.error(
                &m,
                Condition::RemoteServerNotFound,
                None,
                Some("this server only serves its own domain"),
            ),
            _ => {}
        }
    }

    fn available(&self, full: &str) -> bool {
        self.st.sessions.get(full).is_some_and(|s| s.available)
    }

    fn deliver_to_user(&mut self, user: &str, full: Option<String>, m: Element, kind: &str) {
        match kind {
            "error" => {
                // Errors go to a connected full JID or nowhere (never stored, never bounced).
                if let Some(f) = full.filter(|f| self.st.sessions.contains_key(f)) {
                    self.push(&f, m);
                }
            }
            "groupchat" => match full.filter(|f| self.available(f)) {
                Some(f) => self.push(&f, m),
                None => self.error(&m, Condition::ServiceUnavailable, None, None),
            },
            "headline" => {
                let targets = match full.filter(|f| self.available(f)) {
                    Some(f) => vec![f],
                    None => self.st.bare_targets(user),
                };
                for t in targets {
                    self.push(&t, m.clone());
                }
            }
            _ => self.chat(user, full, m, kind),
        }
    }

    /// A chat or normal message to a local user: archives, delivery, offline storage, Carbons.
    fn chat(&mut self, user: &str, full: Option<String>, mut m: Element, kind: &str) {
        let sender = self.user.to_owned();
        let sender_bare = self.shared.bare(&sender);
        let rcpt_bare = self.shared.bare(user);
        let to_self = sender == user;
        strip_stanza_ids(&mut m, &rcpt_bare);
        strip_stanza_ids(&mut m, &sender_bare);
        let (archive, offline) = worth_keeping(&m);
        let (rcpt_id, sender_id) = if archive {
            let r = self.archive(user, &sender_bare, self.full, &m);
            let s = if to_self {
                r.clone()
            } else {
                let peer = full.clone().unwrap_or_else(|| rcpt_bare.clone());
                self.archive(&sender, &rcpt_bare, &peer, &m)
            };
            (r, s)
        } else {
            (None, None)
        };
        let carbons = kind == "chat"
            && !to_self
            && !m.has_child("private", ns::CARBONS)
            && !m.has_child("no-copy", ns::HINTS)
            && !m.has_child("sent", ns::CARBONS)
            && !m.has_child("received", ns::CARBONS);
        let for_rcpt = with_stanza_id(m.clone(), &rcpt_bare, rcpt_id.as_ref());
        let for_sender = with_stanza_id(m, &sender_bare, sender_id.as_ref());

        let direct = full.filter(|f| self.available(f));
        let targets = match &direct {
            Some(f) => vec![f.clone()],
            None => self.st.bare_targets(user),
        };
        if targets.is_empty() {
            if offline {
                if let Some(u) = self.st.users.get_mut(user) {
                    if u.offline.len() >= MAX_OFFLINE {
                        u.offline.pop_front();
                    }
                    u.offline.push_back((xml::now_micros(), for_rcpt.clone()));
                }
            }
        } else {
            for t in &targets {
                self.push(t, for_rcpt.clone());
            }
        }
        if !carbons {
            return;
        }
        if let Some(f) = &direct {
            // Addressed to one session: the recipient's other sessions get a copy.
            let others: Vec<String> = self
                .st
                .sessions
                .iter()
                .filter(|(k, s)| s.user == user && s.available && s.carbons && *k != f)
                .map(|(k, _)| k.clone())
                .collect();
            for o in others {
                let id = self.shared.next_id("carbon");
                let c = carbon("received", &rcpt_bare, &o, id, for_rcpt.clone());
                self.push(&o, c);
            }
        }
        let mine: Vec<String> = self
            .st
            .sessions
            .iter()
            .filter(|(k, s)| s.user == sender && s.available && s.carbons && *k != self.full)
            .map(|(k, _)| k.clone())
            .collect();
        for o in mine {
            let id = self.shared.next_id("carbon");
            let c = carbon("sent", &sender_bare, &o, id, for_sender.clone());
            self.push(&o, c);
        }
    }

    fn archive(&mut self, owner: &str, with: &str, peer: &str, m: &Element) -> Option<String> {
        self.st.archive_serial += 1;
        let serial = self.st.archive_serial;
        let user = self.st.users.get_mut(owner)?;
        Some(user.archive.append(
            serial,
            &self.shared.prefix,
            xml::now_micros(),
            with.to_owned(),
            peer.to_owned(),
            m.clone(),
        ))
    }

    // ----- presence -----

    fn presence(&mut self, p: Element) {
        let kind = p.attr("type").map(str::to_owned);
        match kind.as_deref() {
            None | Some("unavailable") => {}
            Some("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {}
            Some("probe" | "error") => return,
            Some(_) => {
                return self.error(
                    &p,
                    Condition::BadRequest,
                    None,
                    Some("unknown presence type"),
                )
            }
        }
        if p.attr("to").is_none() {
            if kind.is_none() {
                self.available_presence(p);
            } else if kind.as_deref() == Some("unavailable") {
                self.unavailable_presence(p);
            }
            return;
        }
        // Directed presence (or a subscription request): delivered as is, never stored.
        match self.addr(p.attr("to")) {
            Ok(Addr::Full(_, full)) => {
                if self.st.sessions.contains_key(&full) {
                    self.push(&full, p);
                }
            }
            Ok(Addr::Bare(user)) => {
                for t in self.st.available_sessions(&user) {
                    self.push(&t, p.clone());
                }
            }
            Ok(Addr::Room(Some(room), nick)) => self.room_presence(&room, nick.as_deref(), p),
            Ok(_) => {}
            Err(()) => self.error(&p, Condition::JidMalformed, None, None),
        }
    }

    fn available_presence(&mut self, p: Element) {
        let priority = p
            .get_child("priority", ns::CLIENT)
            .and_then(|x| x.text().trim().parse::<i8>().ok())
            .map_or(0, i32::from);
        let caps = disco::caps(&p);
        let full = self.full.to_owned();
        let user = self.user.to_owned();
        let node_ver = caps.as_ref().map(disco::Caps::node_ver);
        // What verified caps with this hash and ver were found to mean before, if anything.
        let known = caps
            .as_ref()
            .and_then(|c| c.hash.as_ref().map(|h| format!("{h} {}", c.ver)))
            .and_then(|key| self.st.caps.get(&key).cloned());
        let Some(s) = self.session_mut() else {
            return;
        };
        let initial = !s.available;
        s.available = true;
        s.priority = priority;
        s.presence = Some(p.clone());
        // New caps, or the first presence (without caps: no features at all).
        let caps_changed = s.caps != node_ver || s.features.is_none() && caps.is_none();
        let mut ask = None;
        if caps_changed {
            s.caps = node_ver;
            s.features = match (&caps, known) {
                (None, _) => Some(Arc::new(BTreeSet::new())),
                (Some(_), Some(features)) => Some(features),
                (Some(c), None) => {
                    let verify = c.hash.clone().map(|h| (h, c.ver.clone()));
                    ask = Some((c.node_ver(), verify));
                    None
                }
            };
        }
        if let Some((nv, verify)) = ask {
            let id = self.shared.next_id("disco");
            // One query per session at a time: an unanswered older one is forgotten.
            self.st.disco.retain(|_, p| p.full != full);
            self.st.disco.insert(
                id.clone(),
                PendingDisco {
                    full: full.clone(),
                    caps: nv.clone(),
                    verify,
                },
            );
            let q = disco::query(&id, &self.shared.domain, &full, &nv);
            self.push(&full, q);
        }
        // RFC 6121 §4.2.2: to every available session of the account, this one included.
        for t in self.st.available_sessions(&user) {
            let mut copy = p.clone();
            set_attr(&mut copy, "to", t.as_str());
            self.push(&t, copy);
        }
        if initial {
            // RFC 6121 §4.4.2: the new session learns about the account's other sessions.
            let others: Vec<Element> = self
                .st
                .sessions
                .iter()
                .filter(|(k, s)| s.user == user && s.available && **k != full)
                .filter_map(|(_, s)| s.presence.clone())
                .collect();
            for mut o in others {
                set_attr(&mut o, "to", full.as_str());
                self.push(&full, o);
            }
            self.deliver_offline();
        }
        if initial || caps_changed {
            self.send_last_items(&full);
        }
    }

    fn unavailable_presence(&mut self, p: Element) {
        let user = self.user.to_owned();
        let targets = self.st.available_sessions(&user);
        if let Some(s) = self.session_mut() {
            if !s.available {
                return;
            }
            s.available = false;
            s.presence = None;
        }
        for t in targets {
            let mut copy = p.clone();
            set_attr(&mut copy, "to", t.as_str());
            self.push(&t, copy);
        }
    }

    /// Pushes the offline messages to a session that just became available — unless it
    /// queried the archive first: then they stay, the archive has them (as in Prosody).
    fn deliver_offline(&mut self) {
        if self
            .st
            .sessions
            .get(self.full)
            .is_none_or(|s| s.mam_queried)
        {
            return;
        }
        let Some(u) = self.st.users.get_mut(self.user) else {
            return;
        };
        let stored: Vec<(u64, Element)> = u.offline.drain(..).collect();
        let full = self.full.to_owned();
        for (stamp, mut m) in stored {
            m.append_child(
                el("delay", ns::DELAY)
                    .with("from", self.shared.domain.as_str())
                    .with("stamp", xml::stamp(stamp)),
            );
            self.push(&full, m);
        }
    }

    /// The last item of every node the session wants (`+notify`) and may read, as Prosody
    /// sends them when a session becomes available.
    fn send_last_items(&mut self, full: &str) {
        let Some(s) = self.st.sessions.get(full) else {
            return;
        };
        if !s.available {
            return;
        }
        let Some(features) = s.features.clone() else {
            return;
        };
        let reader = s.user.clone();
        let mut events = Vec::new();
        for (owner, u) in &self.st.users {
            for (name, node) in &u.pep {
                if !features.contains(&format!("{name}+notify"))
                    || !node.config.readable_by(owner, &reader)
                {
                    continue;
                }
                if let Some((id, payload)) = node.items.last() {
                    events.push((owner.clone(), pep::items_event(name, id, payload)));
                }
            }
        }
        for (owner, content) in events {
            let m = pep::event_message(
                &self.shared.bare(&owner),
                full,
                self.shared.next_id("pep"),
                content,
            );
            self.push(full, m);
        }
    }

    // ----- IQ -----

    fn iq(&mut self, iq: Element) {
        if iq.attr("id").is_none() {
            return self.error(&iq, Condition::BadRequest, None, Some("an IQ needs an id"));
        }
        match iq.attr("type") {
            Some("get") | Some("set") => self.request(iq),
            Some("result") | Some("error") => self.response(iq),
            _ => self.error(&iq, Condition::BadRequest, None, Some("unknown IQ type")),
        }
    }

    fn response(&mut self, iq: Element) {
        match self.addr(iq.attr("to")) {
            Ok(Addr::Full(_, full)) if self.st.sessions.contains_key(&full) => self.push(&full, iq),
            Ok(Addr::Own | Addr::Domain) => self.server_response(&iq),
            Ok(Addr::Bare(u)) if u == self.user => self.server_response(&iq),
            _ => {}
        }
    }

    /// An answer to a query the server sent (disco#info for caps).
    fn server_response(&mut self, iq: &Element) {
        let Some(id) = iq.attr("id") else {
            return;
        };
        if self.st.disco.get(id).is_none_or(|p| p.full != self.full) {
            return;
        }
        let Some(pending) = self.st.disco.remove(id) else {
            return;
        };
        let query = (iq.attr("type") == Some("result"))
            .then(|| iq.get_child("query", ns::DISCO_INFO))
            .flatten();
        let features = Arc::new(query.map(disco::features).unwrap_or_default());
        if let (Some(q), Some((hash, ver))) = (query, &pending.verify) {
            if disco::ver(hash, q).as_deref() == Some(ver.as_str()) {
                if self.st.caps.len() >= MAX_CAPS {
                    self.st.caps.clear(); // a crude bound: real deployments have a few
                }
                self.st
                    .caps
                    .insert(format!("{hash} {ver}"), features.clone());
            } else {
                log::debug!("{}: caps {ver} do not verify; not cached", self.full);
            }
        }
        let full = self.full.to_owned();
        let Some(s) = self.session_mut() else {
            return;
        };
        if s.caps.as_deref() != Some(pending.caps.as_str()) {
            return; // the session announced other caps meanwhile
        }
        s.features = Some(features);
        self.send_last_items(&full);
    }

    fn request(&mut self, iq: Element) {
        let addr = match self.addr(iq.attr("to")) {
            Ok(a) => a,
            Err(()) => return self.error(&iq, Condition::JidMalformed, None, None),
        };
        let account = match addr {
            Addr::Full(_, full) => {
                // To a client: routed to that session (available or not), else an error.
                return if self.st.sessions.contains_key(&full) {
                    self.push(&full, iq);
                } else {
                    self.error(&iq, Condition::ServiceUnavailable, None, None);
                };
            }
            Addr::Remote => {
                return self.error(&iq, Condition::RemoteServerNotFound, None, None);
            }
            Addr::Room(room, None) => {
                let children: Vec<&Element> = iq.children().collect();
                return match children.as_slice() {
                    [payload] => {
                        let payload = (*payload).clone();
                        self.room_request(room.as_deref(), &iq, &payload)
                    }
                    _ => self.error(&iq, Condition::BadRequest, None, None),
                };
            }
            Addr::Room(_, Some(_)) => {
                return self.error(&iq, Condition::FeatureNotImplemented, None, None);
            }
            Addr::Upload(true) => {
                let children: Vec<&Element> = iq.children().collect();
                return match children.as_slice() {
                    [payload] => {
                        let payload = (*payload).clone();
                        self.upload_request(&iq, &payload)
                    }
                    _ => self.error(
                        &iq,
                        Condition::BadRequest,
                        None,
                        Some("an IQ request has exactly one child"),
                    ),
                };
            }
            Addr::Upload(false) => {
                return self.error(&iq, Condition::ServiceUnavailable, None, None);
            }
            Addr::Unknown => return self.error(&iq, Condition::ServiceUnavailable, None, None),
            Addr::Own => Some(self.user.to_owned()),
            Addr::Bare(u) => Some(u),
            Addr::Domain => None,
        };
        let children: Vec<&Element> = iq.children().collect();
        let [payload] = children.as_slice() else {
            return self.error(
                &iq,
                Condition::BadRequest,
                None,
                Some("an IQ request has exactly one child"),
            );
        };
        let payload = (*payload).clone();
        let get = iq.attr("type") == Some("get");
        let own = account.as_deref().is_none_or(|a| a == self.user);
        let namespace = payload.ns();
        match (namespace.as_str(), payload.name(), get) {
            (ns::PING, "ping", true) => self.result(&iq, None),
            (ns::DISCO_INFO, "query", true) => self.disco_info(&iq, &payload, account.as_deref()),
            (ns::DISCO_ITEMS, "query", true) => self.disco_items(&iq, &payload, account.as_deref()),
            (ns::CARBONS, "enable" | "disable", false) if own => {
                let on = payload.name() == "enable";
                if let Some(s) = self.session_mut() {
                    s.carbons = on;
                }
                self.result(&iq, None);
            }
            (ns::SESSION, "session", false) => self.result(&iq, None),
            (ns::BIND, "bind", false) => self.error(
                &iq,
                Condition::NotAllowed,
                None,
                Some("a resource is already bound on this stream"),
            ),
            (ns::ROSTER, "query", true) if own => {
                self.result(&iq, Some(el("query", ns::ROSTER)));
            }
            (ns::ROSTER, "query", false) if own => self.error(
                &iq,
                Condition::FeatureNotImplemented,
                None,
                Some("this server has no rosters: everyone can write to everyone"),
            ),
            (ns::MAM, "query", _) => {
                if own {
                    self.mam(&iq, &payload, get);
                } else {
                    self.error(&iq, Condition::Forbidden, None, None);
                }
            }
            (ns::MAM, "prefs", _) if own => {
                let prefs = el("prefs", ns::MAM)
                    .with("default", "always")
                    .child(el("always", ns::MAM))
                    .child(el("never", ns::MAM));
                self.result(&iq, Some(prefs));
            }
            (ns::PUBSUB, "pubsub", _) => match account {
                Some(owner) => self.pubsub(&iq, &payload, get, &owner),
                None => self.error(&iq, Condition::ServiceUnavailable, None, None),
            },
            (ns::PUBSUB_OWNER, "pubsub", _) => match account {
                Some(owner) if owner == self.user => self.pubsub_owner(&iq, &payload, get),
                Some(_) => self.error(&iq, Condition::Forbidden, None, None),
                None => self.error(&iq, Condition::ServiceUnavailable, None, None),
            },
            (ns::CARBONS | ns::ROSTER | ns::MAM, _, _) if !own => {
                self.error(&iq, Condition::Forbidden, None, None)
            }
            _ => self.error(&iq, Condition::ServiceUnavailable, None, None),
        }
    }

    fn disco_info(&mut self, iq: &Element, query: &Element, account: Option<&str>) {
        let node = query.attr("node");
        let answer = match (account, node) {
            (None, None) => Some(disco::server_info()),
            (Some(_), None) => Some(disco::account_info()),
            (Some(owner), Some(n)) => self
                .st
                .users
                .get(owner)
                .and_then(|u| u.pep.get(n))
                .filter(|node| node.config.readable_by(owner, self.user))
                .map(|_| disco::node_info(n)),
            (None, Some(_)) => None,
        };
        match answer {
            Some(a) => self.result(iq, Some(a)),
            None => self.error(iq, Condition::ItemNotFound, None, None),
        }
    }

    fn disco_items(&mut self, iq: &Element, query: &Element, account: Option<&str>) {
        let mut answer = el("query", ns::DISCO_ITEMS).with_opt("node", query.attr("node"));
        if account.is_none() && query.attr("node").is_none() {
            // The server's services (XEP-0030 §4): the upload service.
            answer.append_child(
                el("item", ns::DISCO_ITEMS)
                    .with("jid", self.shared.upload_domain())
                    .with("name", "HTTP File Upload"),
            );
        }
        if let (Some(owner), None) = (account, query.attr("node")) {
            let bare = self.shared.bare(owner);
            if let Some(u) = self.st.users.get(owner) {
                for (name, node) in &u.pep {
                    if node.config.readable_by(owner, self.user) {
                        answer.append_child(
                            el("item", ns::DISCO_ITEMS)
                                .with("jid", bare.as_str())
                                .with("node", name.as_str()),
                        );
                    }
                }
            }
        }
        self.result(iq, Some(answer));
    }

    // ----- MAM -----

    fn mam(&mut self, iq: &Element, query: &Element, get: bool) {
        if get {
            return self.result(iq, Some(mam::form()));
        }
        // Marked even if the query fails, as Prosody does: offline messages now stay for
        // the archive.
        if let Some(s) = self.session_mut() {
            s.mam_queried = true;
        }
        let owner = self.shared.bare(self.user);
        let user = self.user.to_owned();
        self.answer_archive_query(iq, query, &owner, |st| {
            st.users.get(&user).map(|u| (&u.archive, None))
        });
    }

    /// Answers the archive query `iq` (its `<query/>` is `query`) from the archive `pick`
    /// finds (with a rewrite for each result, if any), the results coming from `owner`: the
    /// results, then the `<fin/>`; or the error a malformed query or an unknown id earns.
    fn answer_archive_query(
        &mut self,
        iq: &Element,
        query: &Element,
        owner: &str,
        pick: impl Fn(&State) -> Option<(&mam::Archive, Option<fn(&mut Element)>)>,
    ) {
        let q = match mam::parse_query(query) {
            Ok(q) => q,
            Err(mam::QueryError::BadRequest(why)) => {
                return self.error(iq, Condition::BadRequest, None, Some(&why))
            }
            Err(mam::QueryError::ItemNotFound) => {
                return self.error(iq, Condition::ItemNotFound, None, None)
            }
        };
        let query_id = query.attr("queryid");
        let Some((archive, rewrite)) = pick(self.st) else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        let (results, fin) = match archive.run(&q) {
            Ok(page) => {
                let results: Vec<Element> = page
                    .items
                    .iter()
                    .map(|e| {
                        let mut m = mam::result_message(
                            owner,
                            self.full,
                            self.shared.next_id("mam"),
                            query_id,
                            e,
                        );
                        if let Some(rewrite) = rewrite {
                            rewrite(&mut m);
                        }
                        m
                    })
                    .collect();
                (results, mam::fin(&page))
            }
            Err(mam::QueryError::ItemNotFound) => {
                return self.error(
                    iq,
                    Condition::ItemNotFound,
                    None,
                    Some("the archive has no message with that id"),
                )
            }
            Err(mam::QueryError::BadRequest(why)) => {
                return self.error(iq, Condition::BadRequest, None, Some(&why))
            }
        };
        let full = self.full.to_owned();
        for r in results {
            self.push(&full, r);
        }
        self.result(iq, Some(fin));
    }

    // ----- PEP -----

    fn pubsub(&mut self, iq: &Element, pubsub: &Element, get: bool, owner: &str) {
        if get {
            return self.pep_items(iq, pubsub, owner);
        }
        let own = owner == self.user;
        if let Some(publish) = pubsub.get_child("publish", ns::PUBSUB) {
            if !own {
                return self.error(iq, Condition::Forbidden, None, None);
            }
            return self.pep_publish(iq, pubsub, publish);
        }
        if let Some(retract) = pubsub.get_child("retract", ns::PUBSUB) {
            if !own {
                return self.error(iq, Condition::Forbidden, None, None);
            }
            return self.pep_retract(iq, retract);
        }
        if let Some(create) = pubsub.get_child("create", ns::PUBSUB) {
            if !own {
                return self.error(iq, Condition::Forbidden, None, None);
            }
            return self.pep_create(iq, pubsub, create);
        }
        let feature = pubsub.children().next().map_or("", |c| c.name()).to_owned();
        self.unsupported(iq, &feature);
    }

    fn pep_items(&mut self, iq: &Element, pubsub: &Element, owner: &str) {
        let Some(items) = pubsub.get_child("items", ns::PUBSUB) else {
            let feature = pubsub.children().next().map_or("", |c| c.name()).to_owned();
            return self.unsupported(iq, &feature);
        };
        let Some(name) = items.attr("node") else {
            return self.pubsub_error(iq, Condition::BadRequest, Some("nodeid-required"), "");
        };
        let Some(node) = self.st.users.get(owner).and_then(|u| u.pep.get(name)) else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        if !node.config.readable_by(owner, self.user) {
            return self.error(iq, Condition::Forbidden, None, None);
        }
        let mut answer = el("items", ns::PUBSUB).with("node", name);
        for (id, payload) in pep::select(node, items) {
            answer.append_child(pep::Node::item(id, payload, ns::PUBSUB));
        }
        self.result(iq, Some(el("pubsub", ns::PUBSUB).child(answer)));
    }

    fn pep_publish(&mut self, iq: &Element, pubsub: &Element, publish: &Element) {
        let request = match pep::parse_publish(pubsub, publish) {
            Ok(r) => r,
            Err(e) => return self.pep_failure(iq, e),
        };
        if self.too_many_nodes(&request.node) {
            return self.pubsub_error(iq, Condition::NotAllowed, Some("max-nodes-exceeded"), "");
        }
        let node = request.node.clone();
        let payload = request.payload.clone();
        let shared = self.shared;
        let Some(u) = self.st.users.get_mut(self.user) else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        let (id, access) = match pep::publish(&mut u.pep, request, || shared.next_id("item")) {
            Ok(done) => done,
            Err(e) => return self.pep_failure(iq, e),
        };
        let answer = el("pubsub", ns::PUBSUB).child(
            el("publish", ns::PUBSUB)
                .with("node", node.as_str())
                .child(el("item", ns::PUBSUB).with("id", id.as_str())),
        );
        self.result(iq, Some(answer));
        let owner = self.user.to_owned();
        self.notify(
            &owner,
            &node,
            access == "open",
            pep::items_event(&node, &id, &payload),
        );
    }

    /// Whether publishing to `node` would create one node too many.
    fn too_many_nodes(&self, node: &str) -> bool {
        self.st
            .users
            .get(self.user)
            .is_some_and(|u| !u.pep.contains_key(node) && u.pep.len() >= pep::MAX_NODES)
    }

    fn pep_retract(&mut self, iq: &Element, retract: &Element) {
        let Some(name) = retract.attr("node").map(str::to_owned) else {
            return self.pubsub_error(iq, Condition::BadRequest, Some("nodeid-required"), "");
        };
        let Some(id) = retract
            .get_child("item", ns::PUBSUB)
            .and_then(|i| i.attr("id"))
            .map(str::to_owned)
        else {
            return self.pubsub_error(iq, Condition::BadRequest, Some("item-required"), "");
        };
        let notify = matches!(retract.attr("notify"), Some("1" | "true"));
        let Some(node) = self
            .st
            .users
            .get_mut(self.user)
            .and_then(|u| u.pep.get_mut(&name))
        else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        if let Err(e) = pep::retract(node, &id) {
            return self.pep_failure(iq, e);
        }
        let open = node.config.access_model == "open";
        self.result(iq, None);
        if notify {
            let owner = self.user.to_owned();
            let content = el("items", ns::PUBSUB_EVENT)
                .with("node", name.as_str())
                .child(el("retract", ns::PUBSUB_EVENT).with("id", id));
            self.notify(&owner, &name, open, content);
        }
    }

    fn pep_create(&mut self, iq: &Element, pubsub: &Element, create: &Element) {
        let Some(name) = create.attr("node").filter(|n| !n.is_empty()) else {
            return self.pubsub_error(iq, Condition::NotAcceptable, Some("nodeid-required"), "");
        };
        let Some(u) = self.st.users.get_mut(self.user) else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        if u.pep.contains_key(name) {
            return self.error(iq, Condition::Conflict, None, Some("the node exists"));
        }
        if u.pep.len() >= pep::MAX_NODES {
            return self.pubsub_error(iq, Condition::NotAllowed, Some("max-nodes-exceeded"), "");
        }
        let mut node = pep::Node::default();
        if let Some(form) = pubsub
            .get_child("configure", ns::PUBSUB)
            .and_then(|c| c.get_child("x", ns::DATA))
        {
            if let Err(e) = pep::configure(&mut node, form) {
                return self.pep_failure(iq, e);
            }
        }
        u.pep.insert(name.to_owned(), node);
        self.result(iq, None);
    }

    fn pubsub_owner(&mut self, iq: &Element, pubsub: &Element, get: bool) {
        let Some(op) = pubsub.children().next() else {
            return self.error(iq, Condition::BadRequest, None, None);
        };
        let Some(name) = op.attr("node").map(str::to_owned) else {
            return self.pubsub_error(iq, Condition::BadRequest, Some("nodeid-required"), "");
        };
        let user = self.user.to_owned();
        let Some(u) = self.st.users.get_mut(&user) else {
            return self.error(iq, Condition::ItemNotFound, None, None);
        };
        if !u.pep.contains_key(&name) {
            return self.error(iq, Condition::ItemNotFound, None, None);
        }
        match (op.name(), get) {
            ("configure", true) => {
                let form = u.pep.get(&name).map(|n| n.config.to_form());
                let answer = el("pubsub", ns::PUBSUB_OWNER).child(
                    el("configure", ns::PUBSUB_OWNER)
                        .with("node", name.as_str())
                        .child(form.unwrap_or_else(|| el("x", ns::DATA))),
                );
                self.result(iq, Some(answer));
            }
            ("configure", false) => {
                let Some(form) = op.get_child("x", ns::DATA) else {
                    return self.error(iq, Condition::BadRequest, None, Some("no form"));
                };
                let Some(node) = u.pep.get_mut(&name) else {
                    return self.error(iq, Condition::ItemNotFound, None, None);
                };
                match pep::configure(node, form) {
                    Ok(()) => self.result(iq, None),
                    Err(e) => self.pep_failure(iq, e),
                }
            }
            ("delete", false) => {
                let open = u
                    .pep
                    .remove(&name)
                    .is_some_and(|n| n.config.access_model == "open");
                self.result(iq, None);
                let content = el("delete", ns::PUBSUB_EVENT).with("node", name.as_str());
                self.notify(&user, &name, open, content);
            }
            ("purge", false) => {
                let mut open = false;
                if let Some(node) = u.pep.get_mut(&name) {
                    node.items.clear();
                    open = node.config.access_model == "open";
                }
                self.result(iq, None);
                let content = el("purge", ns::PUBSUB_EVENT).with("node", name.as_str());
                self.notify(&user, &name, open, content);
            }
            (other, _) => {
                let other = other.to_owned();
                self.unsupported(iq, &other);
            }
        }
    }

    fn pep_failure(&mut self, iq: &Element, e: PepError) {
        match e {
            PepError::BadRequest(app, text) => {
                self.pubsub_error(iq, Condition::BadRequest, app, &text)
            }
            PepError::Precondition(field) => self.pubsub_error(
                iq,
                Condition::Conflict,
                Some("precondition-not-met"),
                &format!("{field} does not match the node's configuration"),
            ),
            PepError::NoItem => self.error(iq, Condition::ItemNotFound, None, None),
        }
    }

    /// Sends a PEP event to the sessions that want it: the owner's, and for an `open` node
    /// every local user's (the server has no rosters), each only with `NODE+notify`.
    fn notify(&mut self, owner: &str, node: &str, open: bool, content: Element) {
        let targets: Vec<String> = self
            .st
            .sessions
            .iter()
            .filter(|(_, s)| s.wants(node) && (s.user == owner || open))
            .map(|(f, _)| f.clone())
            .collect();
        let from = self.shared.bare(owner);
        for t in targets {
            let m = pep::event_message(&from, &t, self.shared.next_id("pep"), content.clone());
            self.push(&t, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el_of(s: &str) -> Element {
        s.parse().unwrap()
    }

    #[test]
    fn forged_stanza_ids_are_removed_and_others_kept() {
        let mut m = el_of(
            "<message xmlns='jabber:client'><stanza-id xmlns='urn:xmpp:sid:0' by='bob@x' id='forged'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='room@muc' id='keep'/><body>hi</body></message>",
        );
        strip_stanza_ids(&mut m, "bob@x");
        let ids: Vec<&str> = m
            .children()
            .filter(|c| c.is("stanza-id", ns::SID))
            .filter_map(|c| c.attr("id"))
            .collect();
        assert_eq!(ids, ["keep"]);
        assert!(m.has_child("body", ns::CLIENT));
    }

    #[test]
    fn what_is_kept() {
        let keep = |s: &str| worth_keeping(&el_of(s));
        assert_eq!(
            keep("<message xmlns='jabber:client'><body>x</body></message>"),
            (true, true)
        );
        assert_eq!(
            keep("<message xmlns='jabber:client'><encrypted xmlns='urn:xmpp:omemo:2'/></message>"),
            (true, true)
        );
        assert_eq!(
            keep("<message xmlns='jabber:client'><store xmlns='urn:xmpp:hints'/></message>"),
            (true, true)
        );
        assert_eq!(
            keep("<message xmlns='jabber:client'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
            (false, false)
        );
        assert_eq!(
            keep("<message xmlns='jabber:client'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>"),
            (false, true)
        );
        assert_eq!(
            keep("<message xmlns='jabber:client'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"),
            (false, false)
        );
    }
}
