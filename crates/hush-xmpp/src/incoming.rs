//! Finding OMEMO messages in incoming stanzas: direct messages, Carbons (XEP-0280) and MAM
//! results (XEP-0313), with the checks that keep a server or a stranger from forging them.

use hush_proto::{Element, EncryptedElement, ProtoError, Suite};
use hush_store::MessageIds;
use tokio_xmpp::parsers::jid::{BareJid, Jid};

pub(crate) const SID: &str = "urn:xmpp:sid:0";
const CARBONS: &str = "urn:xmpp:carbons:2";
const FORWARD: &str = "urn:xmpp:forward:0";
pub(crate) const MAM: &str = "urn:xmpp:mam:2";
const DELAY: &str = "urn:xmpp:delay";

/// What a message carries: an OMEMO element (or why it could not be read), or a body in clear.
pub use hush_engine::InboundPayload as Payload;

/// A chat message found in a stanza: OMEMO, or in clear.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Who sent it (bare JID); our own JID for copies of what our other devices sent.
    pub sender: BareJid,
    /// The conversation it belongs to (the contact's bare JID).
    pub peer: BareJid,
    /// What it carries.
    pub payload: Payload,
    /// XEP-0359 / MAM ids, to recognise copies.
    pub ids: MessageIds,
    /// When the server says it was sent (XEP-0203 `<delay/>` added by our archive or by
    /// offline storage; a sender's own stamp is ignored), unix seconds. The server's word.
    pub sent_at: Option<u64>,
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
            + text(&self.ids.archive)
            + text(&self.ids.stanza_id)
            + text(&self.ids.origin_id)
            + 2 * PER_ALLOCATION
    }
}

fn bare_attr(el: &Element, name: &str) -> Option<BareJid> {
    el.attr(name)
        .and_then(|j| j.parse::<Jid>().ok())
        .map(|j| j.to_bare())
}

/// The OMEMO element of a message, or else its body in clear. Group chat, headline and error
/// messages are not conversations we handle here.
fn payload_of(m: &Element) -> Option<Payload> {
    match m.attr("type") {
        // An error bounce carries our own message back (RFC 6120 §8.3.1): it is news about a
        // delivery, not a message from the addressee, and reading it as one would show a
        // bogus decryption failure "from" them.
        Some("error") => {
            let origin = m
                .children()
                .find(|c| c.is("origin-id", SID))
                .and_then(|c| c.attr("id"));
            log::warn!(
                "the server returned a message to {} as undeliverable (origin id {})",
                m.attr("from").unwrap_or("?"),
                origin.unwrap_or("none")
            );
            return None;
        }
        // Group chats (a room's OMEMO is another protocol) and headlines are not
        // conversations we handle here.
        Some("groupchat" | "headline") => return None,
        _ => {}
    }
    if let Some(e) = m
        .children()
        .find(|p| p.name() == "encrypted" && Suite::from_namespace(&p.ns()).is_ok())
    {
        return Some(Payload::Omemo(EncryptedElement::from_element(e)));
    }
    m.children()
        .find(|c| c.name() == "body")
        .map(|b| Payload::Plain(b.text()))
}

fn ids_of(m: &Element, own: &BareJid) -> MessageIds {
    let mut ids = MessageIds::default();
    for p in m.children() {
        if p.is("origin-id", SID) {
            ids.origin_id = p.attr("id").map(str::to_owned);
        } else if p.is("stanza-id", SID) && p.attr("by") == Some(own.as_str()) {
            // Only ids our own archive assigned can be trusted for deduplication.
            ids.archive = Some(own.to_string());
            ids.stanza_id = p.attr("id").map(str::to_owned);
        }
    }
    ids
}

/// The XEP-0203 stamp among `el`'s children, if any, when it was added by `by` (our server's
/// domain; `None`: any, for the archive's own wrapper). A sender can put a `<delay/>` into
/// its own message, so only the server's is believed.
fn delay_of(el: &Element, by: Option<&str>) -> Option<u64> {
    el.children()
        .filter(|c| c.is("delay", DELAY))
        .find(|d| by.is_none_or(|b| d.attr("from") == Some(b)))
        .and_then(|d| d.attr("stamp"))
        .and_then(hush_wire::date::parse)
}

/// The message inside `<wrapper><forwarded><message/></forwarded></wrapper>`.
fn forwarded(wrapper: &Element) -> Option<&Element> {
    wrapper
        .get_child("forwarded", FORWARD)?
        .children()
        .find(|c| c.name() == "message")
}

/// Whether `m` is a result of our archive query `query_id`, from our own account (whatever it
/// carries: a result nobody can read still belongs to the query's page).
pub(crate) fn is_archive_result(m: &Element, own: &BareJid, query_id: &str) -> bool {
    bare_attr(m, "from").is_none_or(|f| &f == own)
        && m.children()
            .any(|c| c.is("result", MAM) && c.attr("queryid") == Some(query_id))
}

/// Looks at a `<message/>` stanza. `mam_query` is the id of a running archive query, if any.
pub(crate) fn classify(m: &Element, own: &BareJid, mam_query: Option<&str>) -> Option<Incoming> {
    let outer_from = bare_attr(m, "from");
    // Carbons and archive results must come from our own account, or anyone could inject
    // "copies" of messages.
    let from_own_account = outer_from.as_ref().is_none_or(|f| f == own);
    for wrapper in m.children() {
        let kind = if wrapper.is("received", CARBONS) || wrapper.is("sent", CARBONS) {
            "carbon"
        } else if wrapper.is("result", MAM)
            && mam_query.is_some_and(|q| wrapper.attr("queryid") == Some(q))
        {
            "mam"
        } else {
            continue;
        };
        if !from_own_account {
            return None;
        }
        let inner = forwarded(wrapper)?;
        // The archive's stamp on its result; a Carbon is a live copy, read now.
        let sent_at = (kind == "mam")
            .then(|| {
                wrapper
                    .get_child("forwarded", FORWARD)
                    .and_then(|f| delay_of(f, None))
            })
            .flatten();
        let sender = bare_attr(inner, "from").unwrap_or_else(|| own.clone());
        let peer = if &sender == own {
            bare_attr(inner, "to")?
        } else {
            sender.clone()
        };
        let mut ids = ids_of(inner, own);
        if kind == "mam" {
            ids.archive = Some(own.to_string());
            ids.stanza_id = wrapper.attr("id").map(str::to_owned);
        }
        return payload_of(inner).map(|payload| Incoming {
            sender,
            peer,
            payload,
            ids,
            sent_at,
        });
    }
    let sender = outer_from?;
    payload_of(m).map(|payload| Incoming {
        peer: sender.clone(),
        sender,
        payload,
        ids: ids_of(m, own),
        // Offline storage stamps what it kept with the server's domain.
        sent_at: delay_of(m, Some(own.domain().as_str())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Element {
        s.parse().unwrap()
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
        assert!(classify(&bounce, &own, None).is_none());
        let message = el(&format!(
            "<message xmlns='jabber:client' type='chat' from='you@y/phone' to='me@x/hush'>{ENC}</message>"
        ));
        assert!(classify(&message, &own, None).is_some());
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
        let ok = classify(&carbon("me@x"), &own, None).unwrap();
        assert_eq!(ok.sender, own);
        assert_eq!(ok.peer.as_str(), "you@y");
        assert!(ok.encrypted().unwrap().is_ok());
        assert!(classify(&carbon("mallory@evil"), &own, None).is_none());
    }

    #[test]
    fn archive_results_need_our_query() {
        let own: BareJid = "me@x".parse().unwrap();
        let result = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></result></message>"
        ));
        let found = classify(&result, &own, Some("q1")).unwrap();
        assert_eq!(found.ids.stanza_id.as_deref(), Some("A1"));
        assert_eq!(found.sender.as_str(), "you@y");
        assert!(classify(&result, &own, Some("other")).is_none());
        assert!(classify(&result, &own, None).is_none());
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
        assert!(classify(&result("me@x", "q1"), &own, Some("q1")).is_none());
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
        // Offline storage (our server) is believed; a sender's own stamp is not.
        assert_eq!(
            classify(&direct("x"), &own, None).unwrap().sent_at,
            Some(1_795_435_200)
        );
        assert_eq!(
            classify(&direct("you@y"), &own, None).unwrap().sent_at,
            None
        );
        // The archive's stamp on its result is; one inside the forwarded message is not.
        let result = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><result xmlns='urn:xmpp:mam:2' queryid='q1' id='A1'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></result></message>"
        ));
        assert_eq!(
            classify(&result, &own, Some("q1")).unwrap().sent_at,
            Some(1_795_435_200)
        );
        let carbon = el(&format!(
            "<message xmlns='jabber:client' from='me@x'><received xmlns='urn:xmpp:carbons:2'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\
             <message xmlns='jabber:client' from='you@y/phone' to='me@x'>{ENC}</message></forwarded></received></message>"
        ));
        assert_eq!(classify(&carbon, &own, None).unwrap().sent_at, None);
    }

    #[test]
    fn bodies_in_clear_are_found_but_not_in_group_chats() {
        let own: BareJid = "me@x".parse().unwrap();
        let m = el(
            "<message xmlns='jabber:client' from='you@y/a' type='chat'><body>hi</body></message>",
        );
        let found = classify(&m, &own, None).unwrap();
        assert!(matches!(found.payload, Payload::Plain(ref b) if b == "hi"));
        let g = el("<message xmlns='jabber:client' from='room@muc/nick' type='groupchat'><body>hi</body></message>");
        assert!(classify(&g, &own, None).is_none());
        // The OMEMO element wins over the fallback body next to it.
        let both = el(&format!(
            "<message xmlns='jabber:client' from='you@y/a'><body>fallback</body>{ENC}</message>"
        ));
        assert!(classify(&both, &own, None).unwrap().encrypted().is_some());
    }

    #[test]
    fn malformed_encrypted_is_reported_not_dropped() {
        let own: BareJid = "me@x".parse().unwrap();
        let m = el("<message xmlns='jabber:client' from='you@y/a'><encrypted xmlns='urn:xmpp:omemo:2'><header/></encrypted></message>");
        assert!(classify(&m, &own, None)
            .unwrap()
            .encrypted()
            .unwrap()
            .is_err());
    }
}
