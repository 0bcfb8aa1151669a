//! Finding OMEMO messages in incoming stanzas: direct messages, Carbons (XEP-0280) and MAM
//! results (XEP-0313), with the checks that keep a server or a stranger from forging them.

use hush_proto::{Element, EncryptedElement, ProtoError, Suite};
use hush_store::MessageIds;
use tokio_xmpp::parsers::{
    carbons,
    delay::Delay,
    forwarding::Forwarded,
    jid::{BareJid, Jid},
    mam,
    message::{Lang, Message, MessageType},
    ns,
    stanza_id::{OriginId, StanzaId},
};
use xso::error::FromElementError;

/// What a message carries: an OMEMO element (or why it could not be read), or a body in clear.
pub use hush_engine::InboundPayload as Payload;
use hush_engine::ServerStamp;

/// A chat message found in a stanza: OMEMO, or in clear.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Who sent it (bare JID); our own JID for copies of what our other devices sent.
    pub sender: BareJid,
    /// The conversation it belongs to (the contact's bare JID, or the room's).
    pub peer: BareJid,
    /// For a room message: the sender's nickname in the room `peer` (`sender` is the real JID
    /// the room gave for it).
    pub nick: Option<String>,
    /// What it carries.
    pub payload: Payload,
    /// XEP-0359 / MAM ids, to recognise copies.
    pub ids: MessageIds,
    /// When the server says it was sent (XEP-0203 `<delay/>` added by our archive or by
    /// offline storage), unix seconds, and how far that can be believed.
    pub sent_at: Option<ServerStamp>,
    /// An OMEMO message with content but no fallback `<body/>`: a control message (a trust
    /// message, a step of a comparison), which a device it was not encrypted for passes over.
    pub control: bool,
}

impl Incoming {
    /// The `<encrypted/>` element (or why it could not be read), if it is an OMEMO message.
    pub fn encrypted(&self) -> Option<&Result<EncryptedElement, ProtoError>> {
        match &self.payload {
            Payload::Omemo(e) => Some(e),
            Payload::Plain(_) => None,
        }
    }
}

impl crate::queue::Weigh for Incoming {
    /// An estimate of the heap it holds: the ciphertexts, keys and texts, plus a fixed
    /// allowance per allocation. The stanza it came in was larger; what is kept is this.
    fn weight(&self) -> usize {
        const PER_ALLOCATION: usize = 32;
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + PER_ALLOCATION);
        let payload = match &self.payload {
            Payload::Omemo(Ok(e)) => {
                let keys: usize = e
                    .keys
                    .iter()
                    .map(|k| {
                        core::mem::size_of_val(k) + k.data.len() + text(&k.jid) + PER_ALLOCATION
                    })
                    .sum();
                let bytes =
                    |b: &Option<Vec<u8>>| b.as_ref().map_or(0, |b| b.len() + PER_ALLOCATION);
                keys + bytes(&e.iv) + bytes(&e.payload)
            }
            Payload::Omemo(Err(e)) => e.to_string().len() + PER_ALLOCATION,
            Payload::Plain(body) => body.len() + PER_ALLOCATION,
        };
        core::mem::size_of::<Self>()
            + payload
            + self.sender.as_str().len()
            + self.peer.as_str().len()
            + text(&self.nick)
            + text(&self.ids.archive)
            + text(&self.ids.stanza_id)
            + text(&self.ids.origin_id)
            + 2 * PER_ALLOCATION
    }
}

/// A chat message our own server forwarded to us: a Carbon copy (XEP-0280) or a result of
/// our archive query (XEP-0313), with the archive's id for it.
enum Wrapped {
    Carbon(Forwarded),
    Archived { id: String, forwarded: Forwarded },
}

/// Whether `p` is a Carbon, or a result of our archive query `mam_query` (results of another
/// query are not ours to read).
fn is_wrapper(p: &Element, mam_query: Option<&str>) -> bool {
    p.is("received", ns::CARBONS)
        || p.is("sent", ns::CARBONS)
        || (p.is("result", ns::MAM) && mam_query.is_some_and(|q| p.attr("queryid") == Some(q)))
}

/// The Carbon or archive result `p` (see [`is_wrapper`]), read with xmpp-parsers: an error
/// when a required part is missing or invalid (unknown extra content is ignored, as xso does
/// by default). What xmpp-parsers would refuse in the forwarded message although RFC 6121 or
/// XEP-0297 say how to read it is made readable first (see [`make_readable`]).
fn wrapped(mut p: Element) -> Result<Wrapped, FromElementError> {
    if let Some(forwarded) = p.get_child_mut("forwarded", ns::FORWARD) {
        make_readable(forwarded);
    }
    if p.is("result", ns::MAM) {
        mam::Result_::try_from(p).map(|r| Wrapped::Archived {
            id: r.id,
            forwarded: r.forwarded,
        })
    } else if p.is("sent", ns::CARBONS) {
        carbons::Sent::try_from(p).map(|c| Wrapped::Carbon(c.forwarded))
    } else {
        carbons::Received::try_from(p).map(|c| Wrapped::Carbon(c.forwarded))
    }
}

/// The archive id and the forwarded message of the archive result `p` (a `<result/>` of
/// XEP-0313), read as [`wrapped`] reads it; `None`, logged, when it cannot be read.
pub(crate) fn archive_result(p: Element) -> Option<(String, Forwarded)> {
    match wrapped(p) {
        Ok(Wrapped::Archived { id, forwarded }) => Some((id, forwarded)),
        Ok(Wrapped::Carbon(_)) => None,
        Err(e) => {
            log::warn!("an archive result cannot be read ({e}); skipped");
            None
        }
    }
}

/// Mends, in place, what xmpp-parsers refuses in a `<forwarded/>` that a reader can still make
/// sense of, so that a quirk of another client (or its server) does not cost the message:
/// - a second `<delay/>`, or one whose stamp is not a date: the first readable one is kept
///   (none counts as no stamp);
/// - in the forwarded message, a `type` RFC 6121 does not define: read as `normal`
///   (RFC 6121 §5.2.2); a second `<thread/>`, or a second `<body/>` or `<subject/>` in one
///   language: the first is kept.
fn make_readable(forwarded: &mut Element) {
    use tokio_xmpp::minidom::rxml::{Namespace, NcName};
    use tokio_xmpp::minidom::Node;
    let mut stamped = false;
    for node in forwarded.take_nodes() {
        if let Node::Element(e) = &node {
            if e.is("delay", ns::DELAY) {
                if stamped || Delay::try_from(e.clone()).is_err() {
                    continue;
                }
                stamped = true;
            }
        }
        forwarded.append_node(node);
    }
    let Some(message) = forwarded.get_child_mut("message", ns::DEFAULT_NS) else {
        return;
    };
    let known = ["chat", "normal", "groupchat", "headline", "error"];
    if message.attr("type").is_some_and(|t| !known.contains(&t)) {
        if let Ok(name) = NcName::try_from("type") {
            message.set_attr(Namespace::NONE, name, "normal");
        }
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    for node in message.take_nodes() {
        if let Node::Element(e) = &node {
            if e.ns() == ns::DEFAULT_NS && ["thread", "body", "subject"].contains(&e.name()) {
                let lang = e.attr_ns(&Namespace::XML, "lang").unwrap_or("");
                let key = match e.name() {
                    "thread" => (String::from("thread"), String::new()),
                    name => (name.to_owned(), lang.to_owned()),
                };
                if seen.contains(&key) {
                    continue;
                }
                seen.push(key);
            }
        }
        message.append_node(node);
    }
}

/// The OMEMO element of a message, or else its body in clear. Group chat, headline and error
/// messages are not conversations we handle here.
/// Whether `m` is a control message: OMEMO content without a fallback body (Hush sends its
/// trust messages and comparison steps so; every client's chat messages carry the body).
fn is_control(m: &Message, payload: &Payload) -> bool {
    matches!(payload, Payload::Omemo(Ok(e)) if e.payload.is_some()) && m.bodies.is_empty()
}

fn payload_of(m: &Message) -> Option<Payload> {
    match m.type_ {
        // An error bounce carries our own message back (RFC 6120 §8.3.1): it is news about a
        // delivery, not a message from the addressee, and reading it as one would show a
        // bogus decryption failure "from" them.
        MessageType::Error => {
            log::warn!(
                "the server returned a message to {} as undeliverable (origin id {})",
                m.from.as_ref().map_or("?", Jid::as_str),
                ids_of(m, None).origin_id.as_deref().unwrap_or("none")
            );
            return None;
        }
        // Group chats (a room's OMEMO is another protocol) and headlines are not
        // conversations we handle here.
        MessageType::Groupchat | MessageType::Headline => return None,
        MessageType::Chat | MessageType::Normal => {}
    }
    if let Some(e) = m
        .payloads
        .iter()
        .find(|p| p.name() == "encrypted" && Suite::from_namespace(&p.ns()).is_ok())
    {
        return Some(Payload::Omemo(EncryptedElement::from_element(e)));
    }
    // The body without a language first, as the sender's default.
    m.bodies
        .get(&Lang::new())
        .or_else(|| m.bodies.values().next())
        .map(|b| Payload::Plain(b.clone()))
}

/// A room message (`type='groupchat'`) from `nick` in `room`, whose real JID the room gave as
/// `sender`: its OMEMO element — of the several a message to a mixed room carries (one per
/// suite), the one with a key for `device`, else the first readable in [`Suite::ALL`] order —
/// or its body in clear; `None` for one with neither (a subject change).
pub(crate) fn room_message(
    m: &Message,
    room: BareJid,
    sender: BareJid,
    nick: String,
    device: u32,
) -> Option<Incoming> {
    let elements: Vec<&Element> = m
        .payloads
        .iter()
        .filter(|p| p.name() == "encrypted" && Suite::from_namespace(&p.ns()).is_ok())
        .collect();
    let payload = if elements.is_empty() {
        Payload::Plain(
            m.bodies
                .get(&Lang::new())
                .or_else(|| m.bodies.values().next())?
                .clone(),
        )
    } else {
        let mut parsed: Vec<Result<EncryptedElement, ProtoError>> = elements
            .into_iter()
            .map(EncryptedElement::from_element)
            .collect();
        let rank = |r: &Result<EncryptedElement, ProtoError>| match r {
            Ok(e) if e.keys.iter().any(|k| k.rid == device) => 0,
            Ok(e) => 1 + Suite::ALL.iter().position(|s| *s == e.suite).unwrap_or(0),
            Err(_) => usize::MAX,
        };
        parsed.sort_by_key(rank);
        Payload::Omemo(parsed.swap_remove(0))
    };
    Some(Incoming {
        ids: ids_of(m, Some(&room)),
        sender,
        peer: room,
        nick: Some(nick),
        control: is_control(m, &payload),
        payload,
        sent_at: None,
    })
}

/// The XEP-0359 ids of `m`: its origin id, and the stanza id our own archive (`own`) gave it.
fn ids_of(m: &Message, own: Option<&BareJid>) -> MessageIds {
    let mut ids = MessageIds::default();
    for p in &m.payloads {
        if p.is("origin-id", ns::SID) {
            ids.origin_id = OriginId::try_from(p.clone()).ok().map(|o| o.id);
        } else if p.is("stanza-id", ns::SID) {
            // Only ids our own archive assigned can be trusted for deduplication.
            let Some(own) = own else { continue };
            if let Ok(s) = StanzaId::try_from(p.clone()) {
                if s.by.as_str() == own.as_str() {
                    ids.archive = Some(own.to_string());
                    ids.stanza_id = Some(s.id);
                }
            }
        }
    }
    ids
}

/// A XEP-0203 stamp as unix seconds (`None` before 1970).
pub(crate) fn unix_seconds(d: &Delay) -> Option<u64> {
    u64::try_from(d.stamp.0.timestamp()).ok()
}

/// The stamp of the last `<delay/>` among `m`'s payloads that says it was added by `by` (our
/// server's domain): servers append theirs. A sender can write a `<delay/>` with any `from`
/// into its own message, so this is only [`ServerStamp::Delivered`], believed no further than
/// the engine allows.
fn delay_by(m: &Message, by: &str) -> Option<u64> {
    m.payloads
        .iter()
        .filter(|p| p.is("delay", ns::DELAY))
        .filter_map(|p| Delay::try_from(p.clone()).ok())
        .rfind(|d| d.from.as_ref().is_some_and(|f| f.as_str() == by))
        .as_ref()
        .and_then(unix_seconds)
}

/// Whether a stanza's `from` is our own account itself: absent (our server, on our stream) or
/// our bare JID exactly, not one of our clients' full JIDs.
fn from_own_bare(from: Option<&Jid>, own: &BareJid) -> bool {
    from.is_none_or(|f| f.as_str() == own.as_str())
}

/// Whether `m` is a result of our archive query `query_id`, from the archive asked (`archive`:
/// our own account, or a room) — whatever it carries: a result nobody can read still belongs
/// to the query's page.
pub(crate) fn is_archive_result(m: &Message, archive: &BareJid, query_id: &str) -> bool {
    from_own_bare(m.from.as_ref(), archive)
        && m.payloads
            .iter()
            .any(|c| c.is("result", ns::MAM) && c.attr("queryid") == Some(query_id))
}

/// Looks at a `<message/>` stanza. `mam_query` is the id of a running archive query, if any.
/// It takes the stanza whole, so that the message a Carbon or an archive result forwards is
/// moved out of it rather than copied.
pub(crate) fn classify(mut m: Message, own: &BareJid, mam_query: Option<&str>) -> Option<Incoming> {
    let outer_from = m.from.as_ref().map(Jid::to_bare);
    if let Some(at) = m.payloads.iter().position(|p| is_wrapper(p, mam_query)) {
        // Carbons and archive results must come from our own account's bare JID (XEP-0280
        // §11, XEP-0313 §4.2), or anyone could inject "copies" of messages — another client
        // of ours too, from its full JID.
        if !from_own_bare(m.from.as_ref(), own) {
            log::warn!(
                "ignored a forwarded message from {}: only our own account forwards to us",
                m.from.as_ref().map_or("?", |j| j.as_str())
            );
            return None;
        }
        return match wrapped(m.payloads.swap_remove(at)) {
            Ok(wrapped) => unwrap(wrapped, own),
            Err(e) => {
                log::warn!("our server forwarded a message that cannot be read ({e}); skipped");
                None
            }
        };
    }
    let sender = outer_from?;
    payload_of(&m).map(|payload| Incoming {
        peer: sender.clone(),
        nick: None,
        sender,
        control: is_control(&m, &payload),
        payload,
        ids: ids_of(&m, Some(own)),
        // Offline storage stamps what it kept with the server's domain.
        sent_at: delay_by(&m, own.domain().as_str()).map(ServerStamp::Delivered),
    })
}

/// The chat message inside a Carbon or an archive result.
fn unwrap(wrapped: Wrapped, own: &BareJid) -> Option<Incoming> {
    let (forwarded, archive_id) = match wrapped {
        Wrapped::Carbon(f) => (f, None),
        Wrapped::Archived { id, forwarded } => (forwarded, Some(id)),
    };
    let inner = &forwarded.message;
    let sender = inner
        .from
        .as_ref()
        .map_or_else(|| own.clone(), Jid::to_bare);
    let peer = if &sender == own {
        inner.to.as_ref()?.to_bare()
    } else {
        sender.clone()
    };
    let mut ids = ids_of(inner, Some(own));
    // The archive's stamp on its result; a Carbon is a live copy, read now.
    let mut sent_at = None;
    if let Some(id) = archive_id {
        ids.archive = Some(own.to_string());
        ids.stanza_id = Some(id);
        sent_at = forwarded
            .delay
            .as_ref()
            .and_then(unix_seconds)
            .map(ServerStamp::Archive);
    }
    payload_of(inner).map(|payload| Incoming {
        sender,
        peer,
        nick: None,
        control: is_control(inner, &payload),
        payload,
        ids,
        sent_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message stanza as tokio-xmpp hands it over: parsed by xmpp-parsers.
    fn el(s: &str) -> Message {
        let e: hush_proto::Element = s.parse().unwrap();
        Message::try_from(e).unwrap()
    }

    const ENC: &str = "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='7'><keys jid='me@x'><key rid='1'>AAAA</key></keys></header></encrypted>";

    #[test]
    fn an_error_bounce_of_our_own_message_is_no_message_from_the_addressee() {
        let own: BareJid = "me@x".parse().unwrap();
        let bounce = el(&format!(
            "<message xmlns='jabber:client' type='error' from='you@y' to='me@x/hush'>{ENC}\
             <origin-id xmlns='urn:xmpp:sid:0' id='o-1'/>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ));
        assert!(classify(bounce.clone(), &own, None).is_none());
        let message = el(&format!(
            "<message xmlns='jabber:client' type='chat' from='you@y/phone' to='me@x/hush'>{ENC}</message>"
        ));
        assert!(classify(message.clone(), &own, None).is_some());
    }

    #[test]
    fn carbons_only_from_our_own_account() {
        let own: BareJid = "me@x".parse().unwrap();
        let carbon = |from: &str| {
            el(&format!(
                "<message xmlns='jabber:client' from='{from}'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
                 <message xmlns='jabber:client' from='me@x/laptop' to='you@y'>{ENC}</message></forwarded></sent></message>"
            ))
        };
        let ok = classify(carbon("me@x"), &own, None).unwrap();
        assert_eq!(ok.sender, own);
        assert_eq!(ok.peer.as_str(), "you@y");
        assert!(ok.encrypted().unwrap().is_ok());
        assert!(classify(carbon("mallory@evil"), &own, None).is_none());
        // Another client of ours cannot forward "copies" either: only the account itself.
        assert!(classify(carbon("me@x/evil"), &own, None).is_none());
    }

    #[test]
    fn archive_results_need_our_query() {
        let own: BareJid = "me@x".parse().unwrap();
        let result = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></result></message>"
        ));
        let found = classify(result.clone(), &own, Some("q1")).unwrap();
        assert_eq!(found.ids.stanza_id.as_deref(), Some("A1"));
        assert_eq!(found.sender.as_str(), "you@y");
        assert!(classify(result.clone(), &own, Some("other")).is_none());
        assert!(classify(result.clone(), &own, None).is_none());
    }

    #[test]
    fn archive_results_belong_to_the_query_only_from_our_account() {
        let own: BareJid = "me@x".parse().unwrap();
        let result = |from: &str, query: &str| {
            el(&format!(
                "<message xmlns='jabber:client' from='{from}'><result xmlns='urn:xmpp:mam:2' queryid='{query}' id='A1'>\
                 <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='headline'/></forwarded></result></message>"
            ))
        };
        // Counted even though it carries nothing we read.
        assert!(is_archive_result(&result("me@x", "q1"), &own, "q1"));
        assert!(classify(result("me@x", "q1"), &own, Some("q1")).is_none());
        assert!(!is_archive_result(&result("me@x", "q2"), &own, "q1"));
        assert!(!is_archive_result(
            &result("mallory@evil", "q1"),
            &own,
            "q1"
        ));
    }

    #[test]
    fn only_the_servers_delay_stamps_count() {
        let own: BareJid = "me@x".parse().unwrap();
        let stamp = "2026-11-23T12:00:00Z";
        let direct = |by: &str| {
            el(&format!(
                "<message xmlns='jabber:client' from='you@y/a'>{ENC}\
                 <delay xmlns='urn:xmpp:delay' from='{by}' stamp='{stamp}'/></message>"
            ))
        };
        // Offline storage (our server's name) is taken, as a stamp the sender may have written;
        // a stamp with the sender's name is not.
        assert_eq!(
            classify(direct("x"), &own, None).unwrap().sent_at,
            Some(ServerStamp::Delivered(1_795_435_200))
        );
        assert_eq!(classify(direct("you@y"), &own, None).unwrap().sent_at, None);
        // The sender's forgery comes first and the server appends its own: the last counts.
        let forged_first = el(&format!(
            "<message xmlns='jabber:client' from='you@y/a'>{ENC}\
             <delay xmlns='urn:xmpp:delay' from='x' stamp='2001-01-01T00:00:00Z'/>\
             <delay xmlns='urn:xmpp:delay' from='x' stamp='{stamp}'/></message>"
        ));
        assert_eq!(
            classify(forged_first, &own, None).unwrap().sent_at,
            Some(ServerStamp::Delivered(1_795_435_200))
        );
        // The archive's stamp on its result is; one inside the forwarded message is not.
        let result = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></result></message>"
        ));
        assert_eq!(
            classify(result.clone(), &own, Some("q1")).unwrap().sent_at,
            Some(ServerStamp::Archive(1_795_435_200))
        );
        let carbon = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><received xmlns='urn:xmpp:carbons:2'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></received></message>"
        ));
        assert_eq!(classify(carbon.clone(), &own, None).unwrap().sent_at, None);
    }

    #[test]
    fn quirky_forwarded_messages_are_read_not_dropped() {
        let own: BareJid = "me@x".parse().unwrap();
        let stamp = "2026-11-23T12:00:00Z";
        let result = |delays: &str, attrs: &str, inner: &str| {
            el(&format!(
                "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'>\
                 <forwarded xmlns='urn:xmpp:forward:0'>{delays}\
                 <message xmlns='jabber:client' from='you@y/phone' to='me@x'{attrs}>{inner}</message></forwarded></result></message>"
            ))
        };
        let good = format!("<delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>");
        let bad = "<delay xmlns='urn:xmpp:delay' stamp='yesterday'/>";
        let cases = [
            // Two stamps, and a stamp that is not a date before a good one.
            (format!("{good}{good}"), "", ENC.to_owned()),
            (format!("{bad}{good}"), "", ENC.to_owned()),
            // A type RFC 6121 does not define is read as normal.
            (good.clone(), " type='urgent'", ENC.to_owned()),
            // Two threads; two bodies in one language.
            (
                good.clone(),
                " type='chat'",
                format!("<thread>a</thread><thread>b</thread>{ENC}"),
            ),
            (
                good.clone(),
                "",
                format!("{ENC}<body>fallback</body><body>again</body>"),
            ),
        ];
        for (delays, attrs, inner) in cases {
            let found = classify(result(&delays, attrs, &inner), &own, Some("q1"))
                .unwrap_or_else(|| panic!("dropped: {delays} {attrs} {inner}"));
            assert!(found.encrypted().is_some_and(|e| e.is_ok()));
            assert_eq!(found.sent_at, Some(ServerStamp::Archive(1_795_435_200)));
            assert_eq!(found.ids.stanza_id.as_deref(), Some("A1"));
        }
        // Only a stamp that is not a date: read, without a stamp.
        let found = classify(result(bad, "", ENC), &own, Some("q1")).unwrap();
        assert_eq!(found.sent_at, None);
    }

    #[test]
    fn bodies_in_clear_are_found_but_not_in_group_chats() {
        let own: BareJid = "me@x".parse().unwrap();
        let m = el(
            "<message xmlns='jabber:client' from='you@y/a' type='chat'><body>hi</body></message>",
        );
        let found = classify(m.clone(), &own, None).unwrap();
        assert!(matches!(found.payload, Payload::Plain(ref b) if b == "hi"));
        let g = el("<message xmlns='jabber:client' from='room@muc/nick' type='groupchat'><body>hi</body></message>");
        assert!(classify(g.clone(), &own, None).is_none());
        // The OMEMO element wins over the fallback body next to it.
        let both = el(&format!(
            "<message xmlns='jabber:client' from='you@y/a'><body>fallback</body>{ENC}</message>"
        ));
        assert!(classify(both.clone(), &own, None)
            .unwrap()
            .encrypted()
            .is_some());
    }

    #[test]
    fn quirky_extras_are_ignored_and_missing_parts_are_not_read() {
        let own: BareJid = "me@x".parse().unwrap();
        // Unknown attributes and children anywhere in the wrappers: read as usual.
        let quirky = el(&format!(
            "<message xmlns='jabber:client' from='me@x' x-server='1'><received xmlns='urn:xmpp:carbons:2' extra='y'>\
             <note xmlns='urn:example:server'/><forwarded xmlns='urn:xmpp:forward:0'><hint xmlns='urn:example:server'/>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></received></message>"
        ));
        let found = classify(quirky.clone(), &own, None).unwrap();
        assert_eq!(found.sender.as_str(), "you@y");
        assert!(found.encrypted().unwrap().is_ok());
        // A Carbon without its forwarded message, or an archive result without its id, is
        // no message: nothing in it can be attributed.
        let empty = el("<message xmlns='jabber:client' from='me@x'><received xmlns='urn:xmpp:carbons:2'/></message>");
        assert!(classify(empty.clone(), &own, None).is_none());
        let no_id = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1'>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='you@y/a' to='me@x'>{ENC}</message>\
             </forwarded></result></message>"
        ));
        assert!(is_archive_result(&no_id, &own, "q1"));
        assert!(classify(no_id.clone(), &own, Some("q1")).is_none());
        // A server stamp that is no date is no stamp; a stanza id by another entity is not
        // ours to deduplicate with.
        let odd = el(&format!(
            "<message xmlns='jabber:client' from='you@y/a'>{ENC}<delay xmlns='urn:xmpp:delay' from='x' stamp='yesterday'/>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='you@y' id='theirs'/><origin-id xmlns='urn:xmpp:sid:0' id='o-9'/></message>"
        ));
        let found = classify(odd.clone(), &own, None).unwrap();
        assert_eq!(found.sent_at, None);
        assert_eq!(found.ids.stanza_id, None);
        assert_eq!(found.ids.origin_id.as_deref(), Some("o-9"));
    }

    #[test]
    fn malformed_encrypted_is_reported_not_dropped() {
        let own: BareJid = "me@x".parse().unwrap();
        let m = el("<message xmlns='jabber:client' from='you@y/a'><encrypted xmlns='urn:xmpp:omemo:2'><header/></encrypted></message>");
        assert!(classify(m.clone(), &own, None)
            .unwrap()
            .encrypted()
            .unwrap()
            .is_err());
    }
}
