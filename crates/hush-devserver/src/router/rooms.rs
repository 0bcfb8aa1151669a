//! Rooms (XEP-0045) at `conference.DOMAIN`: as much of a room service as the Hush client, its
//! demo and its hostile tests need.
//!
//! - Joining (a room that does not exist is created, its joiner the owner, open and
//!   semi-anonymous until configured, as Prosody does), leaving, nickname conflicts, refusals
//!   (`registration-required` for non-members of a members-only room, `forbidden` for
//!   outcasts); occupants' presence with their affiliation, role and — in a non-anonymous
//!   room — real JID; status codes 110, 100, 201, and 301/321/322 when someone is removed.
//! - Room messages (`type='groupchat'`) from occupants, broadcast from `room/nick` with the
//!   room's XEP-0359 stanza id, and archived (XEP-0313 §6) with the sender's real JID in a
//!   `muc#user` item in a non-anonymous room (stripped otherwise).
//! - Affiliation lists and changes (`muc#admin`), the configuration form (`muc#owner`:
//!   members-only and who sees real JIDs, with notices 104, 172 and 173), disco#info with
//!   the room's features.
//!
//! Everything the room writes goes through the server's delivery path, so an [`Adversary`]
//! sees (and may rewrite) every presence, message and answer — which is what the hostile
//! tests of rooms need.
//!
//! [`Adversary`]: crate::Adversary

use std::collections::BTreeMap;

use tokio_xmpp::minidom::Element;

use super::{strip_stanza_ids, worth_keeping, Cx};
use crate::mam::{self, Archive};
use crate::state::{Outbox, Shared, State};
use crate::xml::{self, el, form_fields, ns, set_attr, Build, Condition};

pub(crate) const MUC: &str = "http://jabber.org/protocol/muc";
pub(crate) const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const ROOM_CONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

/// Rooms the server keeps at most; occupants per room at most.
const MAX_ROOMS: usize = 1000;
const MAX_OCCUPANTS: usize = 1000;

/// A long-lived relation to a room (XEP-0045 §5.2); having none is `Option::None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Affiliation {
    Outcast,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Outcast => "outcast",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// `Some(None)` for `none`; `None` for what is no affiliation.
    fn parse(s: &str) -> Option<Option<Self>> {
        Some(match s {
            "none" => None,
            "outcast" => Some(Self::Outcast),
            "member" => Some(Self::Member),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => return None,
        })
    }
}

fn aff_str(a: Option<Affiliation>) -> &'static str {
    a.map_or("none", Affiliation::as_str)
}

/// The role an affiliation gives in the room (XEP-0045 §5.1.2 defaults).
fn role_of(a: Option<Affiliation>) -> &'static str {
    match a {
        Some(Affiliation::Owner | Affiliation::Admin) => "moderator",
        _ => "participant",
    }
}

/// Someone in the room: one account under one nickname, from one or more of its sessions
/// (several devices of one account share a nickname, as Prosody allows).
#[derive(Debug)]
pub(crate) struct Occupant {
    /// The sessions' full JIDs.
    sessions: Vec<String>,
    /// The account's bare JID.
    bare: String,
}

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    /// `room@conference.domain`.
    pub(crate) jid: String,
    pub(crate) members_only: bool,
    /// Real JIDs shown to every occupant (`muc#roomconfig_whois` = `anyone`).
    pub(crate) non_anonymous: bool,
    /// By bare JID.
    pub(crate) affiliations: BTreeMap<String, Affiliation>,
    /// By nickname.
    occupants: BTreeMap<String, Occupant>,
    pub(crate) archive: Archive,
}

impl Room {
    fn affiliation(&self, bare: &str) -> Option<Affiliation> {
        self.affiliations.get(bare).copied()
    }

    fn nick_of(&self, full: &str) -> Option<String> {
        self.occupants
            .iter()
            .find(|(_, o)| o.sessions.iter().any(|s| s == full))
            .map(|(n, _)| n.clone())
    }

    /// Every session in the room, but `except`.
    fn sessions_but(&self, except: &str) -> Vec<String> {
        self.occupants
            .values()
            .flat_map(|o| o.sessions.iter())
            .filter(|s| *s != except)
            .cloned()
            .collect()
    }

    /// Takes the session `full` out of the room: its nickname, its account, and whether the
    /// occupant left with it (no other session of the account is there under that name).
    fn remove_session(&mut self, full: &str) -> Option<(String, String, bool)> {
        let nick = self.nick_of(full)?;
        let o = self.occupants.get_mut(&nick)?;
        o.sessions.retain(|s| s != full);
        let bare = o.bare.clone();
        let last = o.sessions.is_empty();
        if last {
            self.occupants.remove(&nick);
        }
        Some((nick, bare, last))
    }

    /// Notices `x` from the room itself to every session in it.
    fn notice_all(
        &self,
        shared: &Shared,
        kind: Option<&str>,
        x: &Element,
    ) -> Vec<(String, Element)> {
        self.sessions_but("")
            .into_iter()
            .map(|to| {
                let m = el("message", ns::CLIENT)
                    .with_opt("type", kind)
                    .with("from", self.jid.as_str())
                    .with("to", to.as_str())
                    .with("id", shared.next_id("muc"))
                    .child(x.clone());
                (to, m)
            })
            .collect()
    }

    /// The `muc#user` element describing `occupant` (`None`: gone) to others.
    fn item(&self, bare: &str, present: bool, codes: &[u16]) -> Element {
        let aff = self.affiliation(bare);
        let role = if present { role_of(aff) } else { "none" };
        let mut item = el("item", MUC_USER)
            .with("affiliation", aff_str(aff))
            .with("role", role);
        if self.non_anonymous {
            set_attr(&mut item, "jid", bare);
        }
        let mut x = el("x", MUC_USER).child(item);
        for c in codes {
            x.append_child(el("status", MUC_USER).with("code", c.to_string()));
        }
        x
    }

    fn features(&self) -> Element {
        let mut q = el("query", ns::DISCO_INFO).child(
            el("identity", ns::DISCO_INFO)
                .with("category", "conference")
                .with("type", "text")
                .with("name", self.jid.as_str()),
        );
        let features = [
            MUC,
            ns::MAM,
            ns::SID,
            "muc_persistent",
            "muc_unmoderated",
            if self.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if self.non_anonymous {
                "muc_nonanonymous"
            } else {
                "muc_semianonymous"
            },
        ];
        for f in features {
            q.append_child(el("feature", ns::DISCO_INFO).with("var", f));
        }
        q
    }
}

/// Removes the session `full` from every room it is in (its connection ended), telling the
/// others it left.
pub(crate) fn drop_occupant(st: &mut State, out: &mut Outbox, full: &str) {
    let mut gone = Vec::new();
    for room in st.rooms.values_mut() {
        if let Some((nick, bare, true)) = room.remove_session(full) {
            let x = room.item(&bare, false, &[]);
            for other in room.sessions_but(full) {
                gone.push((other, room.jid.clone(), nick.clone(), x.clone()));
            }
        }
    }
    for (to, room, nick, x) in gone {
        let p = el("presence", ns::CLIENT)
            .with("type", "unavailable")
            .with("from", format!("{room}/{nick}"))
            .with("to", to.as_str())
            .child(x);
        out.push(st, &to, p);
    }
}

impl Cx<'_> {
    fn room_jid(&self, room: &str) -> String {
        format!("{room}@{}", self.shared.muc_domain())
    }

    fn own_bare(&self) -> String {
        self.shared.bare(self.user)
    }

    /// A presence to `room/nick` (or to the room itself).
    pub(super) fn room_presence(&mut self, room: &str, nick: Option<&str>, p: Element) {
        let Some(nick) = nick else {
            return self.error(&p, Condition::JidMalformed, None, Some("join as room/nick"));
        };
        match p.attr("type") {
            None => self.join(room, nick, &p),
            Some("unavailable") => self.leave(room),
            _ => {}
        }
    }

    fn join(&mut self, room: &str, nick: &str, p: &Element) {
        let bare = self.own_bare();
        let jid = self.room_jid(room);
        let created = !self.st.rooms.contains_key(room);
        if created {
            if self.st.rooms.len() >= MAX_ROOMS {
                return self.error(p, Condition::NotAllowed, None, Some("too many rooms"));
            }
            let mut affiliations = BTreeMap::new();
            affiliations.insert(bare.clone(), Affiliation::Owner);
            self.st.rooms.insert(
                room.to_owned(),
                Room {
                    jid: jid.clone(),
                    members_only: false,
                    non_anonymous: false,
                    affiliations,
                    occupants: BTreeMap::new(),
                    archive: Archive::default(),
                },
            );
        }
        let Some(r) = self.st.rooms.get(room) else {
            return;
        };
        let refusal = match r.affiliation(&bare) {
            Some(Affiliation::Outcast) => Some((Condition::Forbidden, "you are banned")),
            None if r.members_only => Some((
                Condition::RegistrationRequired,
                "this room is for its members only",
            )),
            _ => None,
        };
        let taken = r.occupants.get(nick).is_some_and(|o| o.bare != bare);
        let full_room = r.occupants.len() >= MAX_OCCUPANTS && r.nick_of(self.full).is_none();
        if let Some((condition, text)) = refusal {
            return self.error(p, condition, None, Some(text));
        }
        if taken {
            return self.error(p, Condition::Conflict, None, Some("that nickname is taken"));
        }
        if full_room {
            return self.error(
                p,
                Condition::ServiceUnavailable,
                None,
                Some("the room is full"),
            );
        }
        let full = self.full.to_owned();
        let mut out: Vec<(String, Element)> = Vec::new();
        let Some(r) = self.st.rooms.get_mut(room) else {
            return;
        };
        // A second join of the same session under another nickname: the old one leaves.
        if r.nick_of(&full).is_some_and(|n| n != nick) {
            if let Some((old, _, true)) = r.remove_session(&full) {
                let x = r.item(&bare, false, &[303]);
                for to in r.sessions_but(&full) {
                    let p = presence_from(&jid, &old, &to, true, x.clone());
                    out.push((to, p));
                }
            }
        }
        // The joiner learns who is there, then everyone learns about the joiner.
        for (n, o) in &r.occupants {
            if n != nick {
                let x = r.item(&o.bare, true, &[]);
                out.push((full.clone(), presence_from(&jid, n, &full, false, x)));
            }
        }
        let occupant = r.occupants.entry(nick.to_owned()).or_insert(Occupant {
            sessions: Vec::new(),
            bare: bare.clone(),
        });
        if !occupant.sessions.contains(&full) {
            occupant.sessions.push(full.clone());
        }
        let x = r.item(&bare, true, &[]);
        for to in r.sessions_but(&full) {
            let p = presence_from(&jid, nick, &to, false, x.clone());
            out.push((to, p));
        }
        let mut codes = vec![110];
        if r.non_anonymous {
            codes.push(100);
        }
        if created {
            codes.push(201);
        }
        let x = r.item(&bare, true, &codes);
        out.push((full.clone(), presence_from(&jid, nick, &full, false, x)));
        for (to, s) in out {
            self.push(&to, s);
        }
    }

    fn leave(&mut self, room: &str) {
        let full = self.full.to_owned();
        let jid = self.room_jid(room);
        let Some(r) = self.st.rooms.get_mut(room) else {
            return;
        };
        let Some((nick, bare, last)) = r.remove_session(&full) else {
            return;
        };
        let mut out = Vec::new();
        if last {
            let x = r.item(&bare, false, &[]);
            for to in r.sessions_but(&full) {
                let p = presence_from(&jid, &nick, &to, true, x.clone());
                out.push((to, p));
            }
        }
        let x = r.item(&bare, false, &[110]);
        out.push((full.clone(), presence_from(&jid, &nick, &full, true, x)));
        for (to, s) in out {
            self.push(&to, s);
        }
    }

    /// A message to the room: a room message from an occupant is archived and broadcast.
    pub(super) fn room_message(&mut self, room: &str, mut m: Element, kind: &str) {
        if kind == "error" {
            return;
        }
        let jid = self.room_jid(room);
        let full = self.full.to_owned();
        let Some(r) = self.st.rooms.get(room) else {
            return self.error(&m, Condition::ItemNotFound, None, Some("no such room"));
        };
        let Some(nick) = r.nick_of(&full) else {
            return self.error(
                &m,
                Condition::NotAcceptable,
                None,
                Some("join the room first"),
            );
        };
        if kind != "groupchat" {
            return self.error(
                &m,
                Condition::FeatureNotImplemented,
                None,
                Some("this room service takes room messages only"),
            );
        }
        strip_stanza_ids(&mut m, &jid);
        // Only the room says who an occupant is (as Prosody does): an `<x/>` of the sender's
        // own, which could name anyone, goes.
        while m.remove_child("x", MUC_USER).is_some() {}
        // Archived as broadcast: from `room/nick`, to the room (each copy is readdressed).
        set_attr(&mut m, "from", format!("{jid}/{nick}"));
        let (keep, _) = worth_keeping(&m);
        let bare = self.own_bare();
        let id = if keep {
            let mut stored = m.clone();
            if r.non_anonymous {
                stored
                    .append_child(el("x", MUC_USER).child(el("item", MUC_USER).with("jid", bare)));
            }
            self.st.archive_serial += 1;
            let serial = self.st.archive_serial;
            let prefix = self.shared.prefix.clone();
            self.st.rooms.get_mut(room).map(|r| {
                r.archive.append(
                    serial,
                    &prefix,
                    xml::now_micros(),
                    jid.clone(),
                    format!("{jid}/{nick}"),
                    stored,
                )
            })
        } else {
            None
        };
        let targets: Vec<String> = self
            .st
            .rooms
            .get(room)
            .map(|r| r.sessions_but(""))
            .unwrap_or_default();
        let m = super::with_stanza_id(m, &jid, id.as_ref());
        for t in targets {
            let mut copy = m.clone();
            set_attr(&mut copy, "to", t.as_str());
            self.push(&t, copy);
        }
    }

    /// An IQ request to a room (`room`) or to the room service (`None`).
    pub(super) fn room_request(&mut self, room: Option<&str>, iq: &Element, payload: &Element) {
        let get = iq.attr("type") == Some("get");
        let Some(room) = room else {
            return match (payload.ns().as_str(), payload.name(), get) {
                (ns::DISCO_INFO, "query", true) => {
                    let info = el("query", ns::DISCO_INFO)
                        .child(
                            el("identity", ns::DISCO_INFO)
                                .with("category", "conference")
                                .with("type", "text")
                                .with("name", "Rooms"),
                        )
                        .child(el("feature", ns::DISCO_INFO).with("var", MUC));
                    self.result(iq, Some(info))
                }
                (ns::DISCO_ITEMS, "query", true) => {
                    self.result(iq, Some(el("query", ns::DISCO_ITEMS)))
                }
                _ => self.error(iq, Condition::ServiceUnavailable, None, None),
            };
        };
        let Some(r) = self.st.rooms.get(room) else {
            return self.error(iq, Condition::ItemNotFound, None, Some("no such room"));
        };
        let mine = r.affiliation(&self.own_bare());
        match (payload.ns().as_str(), payload.name(), get) {
            (ns::DISCO_INFO, "query", true) => {
                let info = r.features();
                self.result(iq, Some(info))
            }
            (MUC_ADMIN, "query", true) => self.list(room, iq, payload, mine),
            (MUC_ADMIN, "query", false) => self.change_affiliations(room, iq, payload, mine),
            (MUC_OWNER, "query", get) if mine == Some(Affiliation::Owner) => {
                if get {
                    let form = config_form(r);
                    self.result(iq, Some(el("query", MUC_OWNER).child(form)))
                } else {
                    self.configure(room, iq, payload)
                }
            }
            (MUC_OWNER, "query", _) => self.error(iq, Condition::Forbidden, None, None),
            (ns::MAM, "query", false) => {
                let allowed = match mine {
                    Some(Affiliation::Outcast) => false,
                    None => !r.members_only,
                    Some(_) => true,
                };
                if allowed {
                    self.room_archive_query(room, iq, payload)
                } else {
                    self.error(iq, Condition::Forbidden, None, None)
                }
            }
            (ns::MAM, "query", true) => self.result(iq, Some(mam::form())),
            _ => self.error(iq, Condition::ServiceUnavailable, None, None),
        }
    }

    /// The list of one affiliation (XEP-0045 §9.5, §10.5, §10.8): members may read it in a
    /// members-only room, as Prosody allows; otherwise admins and owners.
    fn list(&mut self, room: &str, iq: &Element, query: &Element, mine: Option<Affiliation>) {
        let Some(r) = self.st.rooms.get(room) else {
            return;
        };
        let wanted = query
            .get_child("item", MUC_ADMIN)
            .and_then(|i| i.attr("affiliation"))
            .and_then(Affiliation::parse)
            .flatten();
        let Some(wanted) = wanted else {
            return self.error(iq, Condition::BadRequest, None, Some("which affiliation?"));
        };
        let allowed = match mine {
            Some(Affiliation::Owner | Affiliation::Admin) => true,
            Some(Affiliation::Member) => r.members_only,
            _ => false,
        };
        if !allowed {
            return self.error(iq, Condition::Forbidden, None, None);
        }
        let mut answer = el("query", MUC_ADMIN);
        for (jid, a) in &r.affiliations {
            if *a == wanted {
                answer.append_child(
                    el("item", MUC_ADMIN)
                        .with("affiliation", a.as_str())
                        .with("jid", jid.as_str()),
                );
            }
        }
        self.result(iq, Some(answer));
    }

    /// Affiliation changes (XEP-0045 §9, §10): owners change anyone's; admins those of
    /// members, outcasts and people without one. Who loses the right to be in the room is
    /// removed from it (321 or 301); everyone else present is told of the change.
    fn change_affiliations(
        &mut self,
        room: &str,
        iq: &Element,
        query: &Element,
        mine: Option<Affiliation>,
    ) {
        let mut changes = Vec::new();
        for item in query.children().filter(|c| c.is("item", MUC_ADMIN)) {
            let to = item.attr("affiliation").and_then(Affiliation::parse);
            let jid = item
                .attr("jid")
                .and_then(|j| tokio_xmpp::jid::Jid::new(j).ok())
                .map(|j| j.to_bare().to_string());
            let (Some(to), Some(jid)) = (to, jid) else {
                return self.error(
                    iq,
                    Condition::BadRequest,
                    None,
                    Some("an item needs jid and affiliation"),
                );
            };
            changes.push((jid, to));
        }
        let Some(r) = self.st.rooms.get(room) else {
            return;
        };
        let lesser = |a: Option<Affiliation>| {
            matches!(a, None | Some(Affiliation::Member | Affiliation::Outcast))
        };
        for (jid, to) in &changes {
            let allowed = match mine {
                Some(Affiliation::Owner) => true,
                Some(Affiliation::Admin) => lesser(*to) && lesser(r.affiliation(jid)),
                _ => false,
            };
            if !allowed {
                return self.error(iq, Condition::NotAllowed, None, None);
            }
        }
        let jid = self.room_jid(room);
        let mut out = Vec::new();
        let Some(r) = self.st.rooms.get_mut(room) else {
            return;
        };
        for (bare, to) in changes {
            match to {
                Some(a) => r.affiliations.insert(bare.clone(), a),
                None => r.affiliations.remove(&bare),
            };
            let removed_code = match to {
                Some(Affiliation::Outcast) => Some(301),
                None if r.members_only => Some(321),
                _ => None,
            };
            let present: Vec<String> = r
                .occupants
                .iter()
                .filter(|(_, o)| o.bare == bare)
                .map(|(n, _)| n.clone())
                .collect();
            if present.is_empty() {
                // XEP-0045 §9.3: the occupants hear of an absent user's new affiliation.
                let notice = el("x", MUC_USER).child(
                    el("item", MUC_USER)
                        .with("affiliation", aff_str(to))
                        .with("jid", bare.as_str()),
                );
                out.extend(r.notice_all(self.shared, None, &notice));
            }
            for nick in present {
                let gone = removed_code.is_some();
                let codes: Vec<u16> = removed_code.into_iter().collect();
                let x = r.item(&bare, !gone, &codes);
                if gone {
                    if let Some(o) = r.occupants.remove(&nick) {
                        let mut own = x.clone();
                        own.append_child(el("status", MUC_USER).with("code", "110"));
                        for s in o.sessions {
                            let p = presence_from(&jid, &nick, &s, true, own.clone());
                            out.push((s, p));
                        }
                    }
                }
                for to in r.sessions_but("") {
                    let p = presence_from(&jid, &nick, &to, gone, x.clone());
                    out.push((to, p));
                }
            }
        }
        for (to, s) in out {
            self.push(&to, s);
        }
        self.result(iq, None);
    }

    /// A configuration form submitted by the owner: members-only and who sees real JIDs are
    /// what this service keeps (the other fields are accepted and ignored).
    fn configure(&mut self, room: &str, iq: &Element, query: &Element) {
        let Some(form) = query.get_child("x", ns::DATA) else {
            return self.error(iq, Condition::BadRequest, None, Some("no form"));
        };
        if form.attr("type") == Some("cancel") {
            return self.result(iq, None);
        }
        let Some(r) = self.st.rooms.get(room) else {
            return;
        };
        let (mut members_only, mut non_anonymous) = (r.members_only, r.non_anonymous);
        for (var, values) in form_fields(form) {
            let value = values.first().map(String::as_str).unwrap_or("");
            match var.as_str() {
                "muc#roomconfig_membersonly" => members_only = matches!(value, "1" | "true"),
                "muc#roomconfig_whois" => non_anonymous = value == "anyone",
                _ => {}
            }
        }
        set_privacy(
            self.shared,
            self.st,
            self.out,
            room,
            members_only,
            non_anonymous,
        );
        self.result(iq, None);
    }

    /// A query of the room's archive: results come from the room's bare JID.
    fn room_archive_query(&mut self, room: &str, iq: &Element, query: &Element) {
        let jid = self.room_jid(room);
        self.answer_archive_query(iq, query, &jid, |st| {
            let r = st.rooms.get(room)?;
            let rewrite: Option<fn(&mut Element)> = if r.non_anonymous {
                None
            } else {
                Some(strip_real_jids)
            };
            Some((&r.archive, rewrite))
        });
    }
}

/// Changes `room`'s privacy as its service decides (an owner's form, or a test playing a
/// hostile service): occupants hear of it (104, and 172 or 173 when real JIDs become visible or
/// hidden), and those without an affiliation leave a room turned members-only (322). `false`
/// for a room that does not exist.
pub(crate) fn set_privacy(
    shared: &Shared,
    st: &mut State,
    out_box: &mut Outbox,
    room: &str,
    members_only: bool,
    non_anonymous: bool,
) -> bool {
    let jid = format!("{room}@{}", shared.muc_domain());
    let Some(r) = st.rooms.get_mut(room) else {
        return false;
    };
    let (was_members_only, was_non_anonymous) = (r.members_only, r.non_anonymous);
    r.members_only = members_only;
    r.non_anonymous = non_anonymous;
    let mut codes = vec![104];
    if r.non_anonymous != was_non_anonymous {
        codes.push(if r.non_anonymous { 172 } else { 173 });
    }
    let mut out = Vec::new();
    // Turned members-only: those without an affiliation are removed (322).
    if r.members_only && !was_members_only {
        let outsiders: Vec<String> = r
            .occupants
            .iter()
            .filter(|(_, o)| !r.affiliations.contains_key(&o.bare))
            .map(|(n, _)| n.clone())
            .collect();
        for nick in outsiders {
            if let Some(o) = r.occupants.remove(&nick) {
                let x = r.item(&o.bare, false, &[322, 110]);
                for s in o.sessions {
                    let p = presence_from(&jid, &nick, &s, true, x.clone());
                    out.push((s, p));
                }
                let x = r.item(&o.bare, false, &[322]);
                for to in r.sessions_but("") {
                    let p = presence_from(&jid, &nick, &to, true, x.clone());
                    out.push((to, p));
                }
            }
        }
    }
    let mut notice = el("x", MUC_USER);
    for c in codes {
        notice.append_child(el("status", MUC_USER).with("code", c.to_string()));
    }
    out.extend(r.notice_all(shared, Some("groupchat"), &notice));
    for (to, s) in out {
        out_box.push(st, &to, s);
    }
    true
}

/// A room that turned semi-anonymous shows no real JIDs in its archive either.
fn strip_real_jids(result: &mut Element) {
    let inner = result
        .get_child_mut("result", ns::MAM)
        .and_then(|r| r.get_child_mut("forwarded", ns::FORWARD))
        .and_then(|f| f.get_child_mut("message", ns::CLIENT));
    if let Some(m) = inner {
        while m.remove_child("x", MUC_USER).is_some() {}
    }
}

/// A presence from `room/nick` to `to` carrying `x`.
fn presence_from(room: &str, nick: &str, to: &str, unavailable: bool, x: Element) -> Element {
    let p = el("presence", ns::CLIENT)
        .with("from", format!("{room}/{nick}"))
        .with("to", to)
        .child(x);
    if unavailable {
        p.with("type", "unavailable")
    } else {
        p
    }
}

/// The owner's configuration form, with the room's current values.
fn config_form(r: &Room) -> Element {
    let flag = |b: bool| if b { "1" } else { "0" };
    el("x", ns::DATA)
        .with("type", "form")
        .child(xml::field("FORM_TYPE", Some("hidden"), &[ROOM_CONFIG]))
        .child(xml::field(
            "muc#roomconfig_membersonly",
            Some("boolean"),
            &[flag(r.members_only)],
        ))
        .child(xml::field(
            "muc#roomconfig_whois",
            Some("list-single"),
            &[if r.non_anonymous {
                "anyone"
            } else {
                "moderators"
            }],
        ))
}
