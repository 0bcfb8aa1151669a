//! Rooms (XEP-0045) as the network shell sees them: joining, the occupants' real JIDs, the
//! member lists, the room's configuration, and room messages handed on with the real JID of
//! their sender.
//!
//! What OMEMO needs from a room (XEP-0384 §5.8) is its members' real JIDs: the member, admin
//! and owner lists (present or not) say whom to encrypt for; the occupants' presence says
//! which real JID a nickname stands for, so a message can be read with its sender's session.
//! The room service gives both; a service that lies about them can hide or add a reader
//! (`hush status ROOM` shows the readers, and who could add one) or relabel a message, which
//! then does not decrypt under the wrong sender.
//!
//! xmpp-parsers' `muc#user` reader refuses what Prosody sends (a bare `jid`, an item without
//! `role`, a status code it does not know), and it has no `muc#admin` or `muc#owner` types:
//! those elements are read and built here.

use std::collections::BTreeMap;

use hush_store::{Affiliation, Member, RoomConfig};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};

use crate::incoming::Incoming;

pub(crate) const MUC: &str = "http://jabber.org/protocol/muc";
pub(crate) const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub(crate) const MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub(crate) const MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const DATA_FORMS: &str = "jabber:x:data";
const MAM: &str = "urn:xmpp:mam:2";
const ROOM_CONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

/// Occupants kept per room at most: a room service flooding presences cannot grow memory
/// without bound (the biggest public rooms have a few thousand).
const MAX_OCCUPANTS: usize = 10_000;

/// What one room's presences told us.
#[derive(Debug, Default)]
pub(crate) struct RoomState {
    /// Our nickname.
    pub(crate) nick: String,
    /// Occupants by nickname, with the real bare JID the room gave (none in a semi-anonymous
    /// room).
    pub(crate) occupants: BTreeMap<String, Option<BareJid>>,
    /// Our own presence came back (status 110): the occupant list is complete.
    pub(crate) entered: bool,
    /// The room was created by our join (status 201): it waits for its configuration.
    pub(crate) created: bool,
    /// The room refused us, with the condition.
    pub(crate) refused: Option<String>,
    /// The affiliation each real JID had in its last presence.
    pub(crate) affiliations: BTreeMap<BareJid, String>,
    /// Something changed that the stored room must learn: affiliations or the room's privacy.
    pub(crate) changed: bool,
    /// We were removed (kicked, banned, affiliation lost, room closed), with the status code.
    pub(crate) removed: Option<u16>,
}

/// The presence that enters `room` as `nick`, asking for no history (the room's archive is
/// read instead, from where we left off).
pub(crate) fn join(room: &BareJid, nick: &str) -> Result<Presence, crate::XmppError> {
    let to = room
        .with_resource_str(nick)
        .map_err(|_| crate::XmppError::BadJid(format!("{room}/{nick}")))?;
    let mut p = Presence::new(PresenceType::None).with_to(Jid::from(to));
    let history = Element::builder("history", MUC)
        .attr(name("maxstanzas"), "0")
        .build();
    p.payloads
        .push(Element::builder("x", MUC).append(history).build());
    Ok(p)
}

/// The presence that leaves `room` (where we are `nick`).
pub(crate) fn leave(room: &BareJid, nick: &str) -> Result<Presence, crate::XmppError> {
    let to = room
        .with_resource_str(nick)
        .map_err(|_| crate::XmppError::BadJid(format!("{room}/{nick}")))?;
    Ok(Presence::new(PresenceType::Unavailable).with_to(Jid::from(to)))
}

/// A `muc#admin` query for the list of `affiliation` (XEP-0045 §9.5, §10.5, §10.8).
pub(crate) fn list_request(affiliation: Affiliation) -> Element {
    Element::builder("query", MUC_ADMIN)
        .append(
            Element::builder("item", MUC_ADMIN)
                .attr(name("affiliation"), affiliation.as_str())
                .build(),
        )
        .build()
}

/// A `muc#admin` change of `jid`'s affiliation (`None`: to `none`).
pub(crate) fn set_affiliation(jid: &BareJid, affiliation: Option<Affiliation>) -> Element {
    Element::builder("query", MUC_ADMIN)
        .append(
            Element::builder("item", MUC_ADMIN)
                .attr(
                    name("affiliation"),
                    affiliation.map_or("none", Affiliation::as_str),
                )
                .attr(name("jid"), jid.as_str())
                .build(),
        )
        .build()
}

/// The members a list answer names with an affiliation that gets keys. An item whose `jid`
/// is not a JID is left out (and logged): it names nobody a key could go to.
pub(crate) fn list_answer(payload: Option<&Element>) -> Vec<Member> {
    let Some(query) = payload.filter(|q| q.is("query", MUC_ADMIN)) else {
        return Vec::new();
    };
    query
        .children()
        .filter(|i| i.is("item", MUC_ADMIN))
        .filter_map(|i| {
            let affiliation = Affiliation::parse(i.attr("affiliation")?)?;
            let jid = match i.attr("jid").map(str::parse::<Jid>) {
                Some(Ok(j)) => j.to_bare(),
                _ => {
                    log::warn!(
                        "the room's member list names {:?}, which is no JID",
                        i.attr("jid")
                    );
                    return None;
                }
            };
            Some(Member {
                jid: jid.to_string(),
                affiliation,
            })
        })
        .collect()
}

/// The configuration a room we create gets: members-only, non-anonymous, persistent and
/// archived (XEP-0045 §10.1.3; XEP-0384 §5.8).
pub(crate) fn private_room_form() -> Element {
    let field = |var: &str, value: &str| {
        Element::builder("field", DATA_FORMS)
            .attr(name("var"), var)
            .append(Element::builder("value", DATA_FORMS).append(value).build())
            .build()
    };
    let form = Element::builder("x", DATA_FORMS)
        .attr(name("type"), "submit")
        .append(field("FORM_TYPE", ROOM_CONFIG))
        .append(field("muc#roomconfig_membersonly", "1"))
        .append(field("muc#roomconfig_whois", "anyone"))
        .append(field("muc#roomconfig_persistentroom", "1"))
        .append(field("muc#roomconfig_enablearchiving", "1"))
        .append(field("muc#roomconfig_publicroom", "0"))
        .build();
    Element::builder("query", MUC_OWNER).append(form).build()
}

/// The room's privacy from its disco#info features (XEP-0045 §16.3).
pub(crate) fn config_of(features: &[String]) -> RoomConfig {
    RoomConfig {
        members_only: features.iter().any(|f| f == "muc_membersonly"),
        non_anonymous: features.iter().any(|f| f == "muc_nonanonymous"),
    }
}

/// The status codes of a `muc#user` element.
fn status_codes(x: &Element) -> Vec<u16> {
    x.children()
        .filter(|c| c.is("status", MUC_USER))
        .filter_map(|c| c.attr("code")?.parse().ok())
        .collect()
}

/// Takes in a presence from one of our rooms; `false` when it is not from a room we are in
/// or entering (other presence is for the caller).
pub(crate) fn note_presence(rooms: &mut BTreeMap<BareJid, RoomState>, p: &Presence) -> bool {
    let Some(from) = p.from.as_ref().and_then(|f| f.try_as_full().ok()) else {
        return false;
    };
    let room = from.to_bare();
    let Some(state) = rooms.get_mut(&room) else {
        return false;
    };
    let nick = from.resource().as_str().to_owned();
    if p.type_ == PresenceType::Error {
        if nick == state.nick || !state.entered {
            let condition = p
                .payloads
                .iter()
                .find(|e| e.name() == "error")
                .and_then(|e| e.children().next())
                .map_or_else(|| "no reason given".to_owned(), |c| c.name().to_owned());
            state.refused = Some(condition);
        }
        return true;
    }
    // The room appends its own `<x/>` after whatever the occupant put in its presence: the
    // last one is the room's (an occupant's own could claim any JID or status code).
    let x = p.payloads.iter().rfind(|e| e.is("x", MUC_USER));
    let codes = x.map(status_codes).unwrap_or_default();
    let item = x.and_then(|x| x.get_child("item", MUC_USER));
    let real = item
        .and_then(|i| i.attr("jid"))
        .and_then(|j| j.parse::<Jid>().ok())
        .map(|j| j.to_bare());
    // An affiliation other than the one this room's presences gave before for the same real
    // JID: the lists are read again. (A first presence is no news: whoever is in a
    // members-only room is on its lists, which are read again before every send anyway.)
    if let (Some(jid), Some(affiliation)) = (&real, item.and_then(|i| i.attr("affiliation"))) {
        let known = state.affiliations.get(jid).map(String::as_str);
        if known.is_some_and(|k| k != affiliation) {
            state.changed = true;
        }
        if known != Some(affiliation)
            && (state.affiliations.len() < MAX_OCCUPANTS || known.is_some())
        {
            state
                .affiliations
                .insert(jid.clone(), affiliation.to_owned());
        }
    }
    let own = codes.contains(&110);
    if p.type_ == PresenceType::Unavailable {
        state.occupants.remove(&nick);
        // Only about us on our current nickname: the room's answer to leaving an old one (a
        // nickname change) comes while the new one is being entered.
        if own && nick == state.nick {
            // Removed by the room: kicked (307), banned (301), affiliation lost (321),
            // members-only (322), shut down (332); 0 when it gave no reason (a room destroyed).
            // Our own leave is never seen here: leaving forgets the room first.
            state.removed = codes
                .iter()
                .copied()
                .find(|c| [301, 307, 321, 322, 332].contains(c))
                .or(Some(0));
            state.entered = false;
        }
        return true;
    }
    // Entering: the room may give us another nickname than the one asked for.
    if own && (nick == state.nick || !state.entered) {
        state.entered = true;
        state.nick = nick.clone();
        if codes.contains(&201) {
            state.created = true;
        }
    }
    if state.occupants.len() < MAX_OCCUPANTS || state.occupants.contains_key(&nick) {
        state.occupants.insert(nick, real);
    }
    true
}

/// A message from one of our rooms: a room message with its sender's real JID, or a notice
/// from the room itself (a configuration or affiliation change) that marks it changed.
/// `None` for what is not from a room we are in.
pub(crate) fn classify(
    rooms: &mut BTreeMap<BareJid, RoomState>,
    m: &Message,
    own: &BareJid,
    device: u32,
) -> Option<Option<Incoming>> {
    let from = m.from.as_ref()?;
    let room = from.to_bare();
    let state = rooms.get_mut(&room)?;
    let Ok(full) = from.try_as_full() else {
        // From the room itself: status codes 104 (configuration), 172/173 (anonymity),
        // or an affiliation change of someone absent.
        if m.payloads.iter().any(|e| e.is("x", MUC_USER)) {
            state.changed = true;
        }
        return Some(None);
    };
    if m.type_ != MessageType::Groupchat {
        // A private message through the room (XEP-0045 §7.5): not a room message. Read as a
        // direct one it would be filed under the room's JID, the sender's real JID lost: it is
        // not read (Hush sends none; OMEMO between occupants goes to real JIDs).
        if m.type_ != MessageType::Error {
            log::warn!(
                "ignored a private message through {room} from {}: Hush reads messages from \
                 members at their own addresses",
                full.resource().as_str()
            );
        }
        return Some(None);
    }
    let nick = full.resource().as_str().to_owned();
    let sender = if nick == state.nick {
        Some(own.clone())
    } else {
        state.occupants.get(&nick).cloned().flatten()
    };
    let Some(sender) = sender else {
        log::warn!(
            "a message in {room} from {nick}, whose real address the room does not give: not \
             read (is the room anonymous, or did {nick} leave?)"
        );
        return Some(None);
    };
    Some(crate::incoming::room_message(m, room, sender, nick, device))
}

/// A result of our query `query_id` to `room`'s archive (XEP-0313 §6): the room message it
/// holds, read with the real JID the archive kept for its sender, and recognised later by the
/// room's archive id.
///
/// In a non-anonymous room, Prosody keeps the sender's real JID in an `<x muc#user><item
/// jid/></x>` of the archived message (and strips it for those not allowed to see it); the
/// occupants present now say nothing about who wrote under a nickname back then. A result
/// without a real JID is not read, and said so in the log: whose session would decrypt it is
/// unknown. Like a live one, the room could give a wrong JID; the message then does not
/// decrypt, or decrypts as what that member really sent (a replay, recognised as a copy).
pub(crate) fn archived(
    m: Message,
    room: &BareJid,
    query_id: &str,
    device: u32,
) -> Option<Incoming> {
    let result = m
        .payloads
        .into_iter()
        .find(|p| p.is("result", MAM) && p.attr("queryid") == Some(query_id))?;
    let (id, forwarded) = crate::incoming::archive_result(result)?;
    let inner = &forwarded.message;
    let from = inner.from.as_ref()?;
    let Ok(full) = from.try_as_full() else {
        return None; // from the room itself: a subject, a notice
    };
    if full.to_bare() != *room || inner.type_ != MessageType::Groupchat {
        log::warn!("{room}'s archive holds a message from {from} that is no room message; skipped");
        return None;
    }
    let nick = full.resource().as_str().to_owned();
    // The archive appends its own `<x/>` to what the occupant sent, which may carry one of its
    // own naming anybody: the last is the archive's. Two that disagree are not read at all.
    let named: Vec<Option<BareJid>> = inner
        .payloads
        .iter()
        .filter(|e| e.is("x", MUC_USER))
        .filter_map(|x| x.get_child("item", MUC_USER))
        .filter_map(|i| i.attr("jid"))
        .map(|j| j.parse::<Jid>().ok().map(|j| j.to_bare()))
        .collect();
    if named.windows(2).any(|w| w[0] != w[1]) {
        log::warn!(
            "{room}'s archive names several senders for one message of {nick} (archive id \
             {id}): not read"
        );
        return None;
    }
    let real = named.last().cloned().flatten();
    let Some(sender) = real else {
        log::warn!(
            "{room}'s archive does not say who {nick} was when writing a message (archive id \
             {id}): not read"
        );
        return None;
    };
    let mut incoming = crate::incoming::room_message(inner, room.clone(), sender, nick, device)?;
    incoming.ids.archive = Some(room.to_string());
    incoming.ids.stanza_id = Some(id);
    incoming.sent_at = forwarded
        .delay
        .as_ref()
        .and_then(crate::incoming::unix_seconds)
        .map(hush_engine::ServerStamp::Archive);
    Some(incoming)
}

/// An attribute name, for the elements this module and [`crate::bookmarks`] build.
#[expect(
    clippy::expect_used,
    reason = "attribute names here are static literals, valid NCNames"
)]
pub(crate) fn name(name: &'static str) -> tokio_xmpp::minidom::rxml::NcName {
    tokio_xmpp::minidom::rxml::NcName::try_from(name)
        .expect("attribute names here are static literals, valid NCNames")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(s: &str) -> Presence {
        Presence::try_from(s.parse::<Element>().unwrap()).unwrap()
    }

    fn rooms() -> BTreeMap<BareJid, RoomState> {
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "team@muc.x".parse().unwrap(),
            RoomState {
                nick: "me".into(),
                ..RoomState::default()
            },
        );
        rooms
    }

    #[test]
    fn presences_give_real_jids_and_our_own_ends_the_list() {
        let mut r = rooms();
        let room: BareJid = "team@muc.x".parse().unwrap();
        assert!(note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='bob@x/phone'/></x></presence>")));
        assert!(!r[&room].entered);
        assert!(note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/me'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='me@x/laptop'/><status code='110'/><status code='201'/><status code='100'/></x></presence>")));
        let s = &r[&room];
        assert!(s.entered && s.created);
        assert_eq!(
            s.occupants["bob"].as_ref().map(|j| j.as_str()),
            Some("bob@x")
        );
        // Not from a room we are in: for the caller.
        assert!(!note_presence(
            &mut r,
            &presence("<presence xmlns='jabber:client' from='other@muc.x/bob'/>")
        ));
        // Bob leaves.
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' type='unavailable' from='team@muc.x/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='none'/></x></presence>"));
        assert!(!r[&room].occupants.contains_key("bob"));
        // We are removed for losing our membership.
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' type='unavailable' from='team@muc.x/me'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='110'/><status code='321'/></x></presence>"));
        assert_eq!(r[&room].removed, Some(321));
    }

    #[test]
    fn a_refused_join_is_kept_with_its_condition() {
        let mut r = rooms();
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' type='error' from='team@muc.x/me'><error type='auth'><registration-required xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"));
        assert_eq!(
            r[&"team@muc.x".parse::<BareJid>().unwrap()]
                .refused
                .as_deref(),
            Some("registration-required")
        );
    }

    #[test]
    fn member_lists_are_read_with_bare_or_full_jids_and_junk_left_out() {
        let q: Element = "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member' jid='bob@x'/><item affiliation='owner' jid='me@x/res' role='moderator'/><item affiliation='outcast' jid='eve@x'/><item affiliation='member' jid='@@'/><item affiliation='member'/></query>".parse().unwrap();
        let members = list_answer(Some(&q));
        assert_eq!(
            members,
            [
                Member {
                    jid: "bob@x".into(),
                    affiliation: Affiliation::Member
                },
                Member {
                    jid: "me@x".into(),
                    affiliation: Affiliation::Owner
                }
            ]
        );
        assert!(list_answer(None).is_empty());
    }

    #[test]
    fn a_private_message_through_a_room_is_not_read_as_the_rooms() {
        let mut r = rooms();
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='bob@x/phone'/></x></presence>"));
        let own: BareJid = "me@x".parse().unwrap();
        let pm = Message::try_from(
            "<message xmlns='jabber:client' type='chat' from='team@muc.x/bob'><body>psst</body></message>"
                .parse::<Element>()
                .unwrap(),
        )
        .unwrap();
        assert!(matches!(classify(&mut r, &pm, &own, 1), Some(None)));
        let live = Message::try_from(
            "<message xmlns='jabber:client' type='groupchat' from='team@muc.x/bob'><body>hi</body></message>"
                .parse::<Element>()
                .unwrap(),
        )
        .unwrap();
        let read = classify(&mut r, &live, &own, 1).unwrap().unwrap();
        assert_eq!(read.sender.as_str(), "bob@x");
        assert_eq!(read.peer.as_str(), "team@muc.x");
        assert_eq!(read.nick.as_deref(), Some("bob"));
    }

    #[test]
    fn privacy_comes_from_the_features() {
        let f = |v: &[&str]| config_of(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&["muc_membersonly", "muc_nonanonymous"]),
            RoomConfig {
                members_only: true,
                non_anonymous: true
            }
        );
        assert_eq!(f(&["muc_open", "muc_semianonymous"]), RoomConfig::default());
    }

    fn archived_result(inner: &str) -> Message {
        let xml = format!(
            "<message xmlns='jabber:client' from='team@muc.x' to='me@x/r'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='arch-7'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-01T10:00:00Z'/>{inner}</forwarded></result></message>"
        );
        Message::try_from(xml.parse::<Element>().unwrap()).unwrap()
    }

    #[test]
    fn an_archived_room_message_is_read_with_the_real_jid_the_archive_kept() {
        let room: BareJid = "team@muc.x".parse().unwrap();
        // Bob is not present now: the archive's item says who wrote.
        let m = archived_result("<message xmlns='jabber:client' type='groupchat' from='team@muc.x/bob'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='bob@x'/></x></message>");
        let read = archived(m, &room, "q1", 1).unwrap();
        assert_eq!(read.sender.as_str(), "bob@x");
        assert_eq!(read.peer.as_str(), "team@muc.x");
        assert_eq!(read.nick.as_deref(), Some("bob"));
        assert_eq!(read.ids.archive.as_deref(), Some("team@muc.x"));
        assert_eq!(read.ids.stanza_id.as_deref(), Some("arch-7"));
        assert!(matches!(
            read.sent_at,
            Some(hush_engine::ServerStamp::Archive(_))
        ));
        // Another query's result, a result without a real JID, and a message from another
        // room or not of type groupchat are not read.
        let m = archived_result("<message xmlns='jabber:client' type='groupchat' from='team@muc.x/bob'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@x'/></x></message>");
        assert!(archived(m, &room, "q2", 1).is_none());
        let m = archived_result("<message xmlns='jabber:client' type='groupchat' from='team@muc.x/bob'><body>hi</body></message>");
        assert!(archived(m, &room, "q1", 1).is_none());
        let m = archived_result("<message xmlns='jabber:client' type='groupchat' from='other@muc.x/bob'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@x'/></x></message>");
        assert!(archived(m, &room, "q1", 1).is_none());
        let m = archived_result("<message xmlns='jabber:client' type='chat' from='team@muc.x/bob'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='bob@x'/></x></message>");
        assert!(archived(m, &room, "q1", 1).is_none());
        // A member wrote an <x/> of its own naming Alice; the archive's, last, names Mallory:
        // they disagree, so it is not read as anyone's.
        let m = archived_result("<message xmlns='jabber:client' type='groupchat' from='team@muc.x/mallory'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'><item jid='alice@x'/></x><x xmlns='http://jabber.org/protocol/muc#user'><item jid='mallory@x'/></x></message>");
        assert!(archived(m, &room, "q1", 1).is_none());
    }

    #[test]
    fn only_a_changed_affiliation_marks_the_room_changed_and_the_rooms_own_x_counts() {
        let mut r = rooms();
        let room: BareJid = "team@muc.x".parse().unwrap();
        let bob = "<presence xmlns='jabber:client' from='team@muc.x/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='bob@x'/></x></presence>";
        note_presence(&mut r, &presence(bob));
        assert!(!r[&room].changed, "a first presence is no news");
        note_presence(&mut r, &presence(bob));
        assert!(!r[&room].changed, "the same affiliation again is no news");
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/bob'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='admin' role='moderator' jid='bob@x'/></x></presence>"));
        assert!(r[&room].changed);
        // Mallory writes her own <x/> claiming Alice's JID and our status 110; the room's own
        // comes last and is the one read.
        let mut r = rooms();
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/mallory'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' jid='alice@x'/><status code='110'/></x><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant' jid='mallory@x'/></x></presence>"));
        let s = &r[&room];
        assert!(!s.entered, "someone else's presence does not enter us");
        assert_eq!(
            s.occupants["mallory"].as_ref().map(|j| j.as_str()),
            Some("mallory@x")
        );
    }

    #[test]
    fn leaving_an_old_nickname_is_not_being_removed() {
        let mut r = BTreeMap::new();
        let room: BareJid = "team@muc.x".parse().unwrap();
        // Entering as "new" after leaving "old": the room's answer to the leave comes now.
        r.insert(
            room.clone(),
            RoomState {
                nick: "new".into(),
                ..RoomState::default()
            },
        );
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' type='unavailable' from='team@muc.x/old'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='none'/><status code='110'/></x></presence>"));
        assert_eq!(r[&room].removed, None);
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' from='team@muc.x/new'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member' role='participant'/><status code='110'/></x></presence>"));
        assert!(r[&room].entered);
        // A room destroyed without a reason: removed, code 0.
        note_presence(&mut r, &presence("<presence xmlns='jabber:client' type='unavailable' from='team@muc.x/new'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><destroy/><status code='110'/></x></presence>"));
        assert_eq!(r[&room].removed, Some(0));
    }
}
