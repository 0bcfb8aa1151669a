//! Room bookmarks (XEP-0402, `urn:xmpp:bookmarks:1`): the rooms an account is in, kept on its
//! own PEP node so that every device of the account enters them.
//!
//! One item per room, its id the room's JID, holding `<conference autojoin='true'><nick/>
//! </conference>`. The node is private (`whitelist`: only the account reads it) and keeps every
//! item (`max_items=max`), as the XEP asks. Joining publishes the room's item, leaving retracts
//! it, and every connection enters the rooms bookmarked with `autojoin` that this device has not
//! joined yet — a room joined on the phone is entered by the laptop too.

use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::jid::BareJid;

use crate::muc::name;

/// The node (XEP-0402 §3).
pub(crate) const NODE: &str = "urn:xmpp:bookmarks:1";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

/// Items kept from one fetch at most: an account is in a few dozen rooms, a server answering
/// with more is broken or hostile (each one entered costs requests on every connection).
pub(crate) const MAX_BOOKMARKS: usize = 100;

/// Where Hush keeps, inside a bookmark's `<extensions/>` (XEP-0402 §4), when the account
/// joined the room: another device entering it through the bookmark reads the room's archive
/// from then, not from when it enters (members encrypted for every device of the account
/// meanwhile). Other clients ignore it, as the XEP asks.
const JOINED: &str = "urn:hush:bookmark-joined:0";

/// One bookmarked room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bookmark {
    /// The room.
    pub room: BareJid,
    /// The nickname to enter with, if one is given.
    pub nick: Option<String>,
    /// Whether clients enter the room on connecting.
    pub autojoin: bool,
    /// When the account joined the room (unix seconds), if a Hush device bookmarked it.
    pub joined_at: Option<u64>,
}

/// The item payload for a room entered as `nick` since `joined_at`, to be entered
/// automatically.
pub(crate) fn conference(nick: &str, joined_at: u64) -> Element {
    let joined = Element::builder("joined", JOINED)
        .attr(name("at"), joined_at.to_string())
        .build();
    Element::builder("conference", NODE)
        .attr(name("autojoin"), "true")
        .append(Element::builder("nick", NODE).append(nick).build())
        .append(Element::builder("extensions", NODE).append(joined).build())
        .build()
}

/// `<pubsub><retract node notify='true'><item id='ROOM'/></retract></pubsub>`.
pub(crate) fn retract(room: &BareJid) -> Element {
    Element::builder("pubsub", PUBSUB)
        .append(
            Element::builder("retract", PUBSUB)
                .attr(name("node"), NODE)
                .attr(name("notify"), "true")
                .append(
                    Element::builder("item", PUBSUB)
                        .attr(name("id"), room.as_str())
                        .build(),
                )
                .build(),
        )
        .build()
}

/// The bookmarks in a fetch answer (`<pubsub><items node>…</items></pubsub>`): items whose id
/// is a room JID and whose payload is a `<conference/>`; others are skipped (and logged).
pub(crate) fn read(answer: Option<&Element>) -> Vec<Bookmark> {
    let Some(items) = answer
        .filter(|p| p.is("pubsub", PUBSUB))
        .and_then(|p| p.get_child("items", PUBSUB))
    else {
        return Vec::new();
    };
    items
        .children()
        .filter(|i| i.is("item", PUBSUB))
        .take(MAX_BOOKMARKS)
        .filter_map(|item| {
            let room = item.attr("id").and_then(|id| id.parse::<BareJid>().ok());
            let conference = item.get_child("conference", NODE);
            let (Some(room), Some(c)) = (room, conference) else {
                log::warn!(
                    "skipped a bookmark that names no room: {:?}",
                    item.attr("id")
                );
                return None;
            };
            let autojoin = matches!(c.attr("autojoin"), Some("true" | "1"));
            let nick = c
                .get_child("nick", NODE)
                .map(Element::text)
                .filter(|n| !n.trim().is_empty());
            let joined_at = c
                .get_child("extensions", NODE)
                .and_then(|e| e.get_child("joined", JOINED))
                .and_then(|j| j.attr("at")?.parse().ok());
            Some(Bookmark {
                room,
                nick,
                autojoin,
                joined_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookmarks_are_read_from_their_items_and_junk_is_skipped() {
        let answer: Element = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'>\
            <item id='team@muc.x'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>al</nick><extensions><joined xmlns='urn:hush:bookmark-joined:0' at='1700000000'/></extensions></conference></item>\
            <item id='quiet@muc.x'><conference xmlns='urn:xmpp:bookmarks:1'/></item>\
            <item id='not a jid@@'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='1'/></item>\
            <item id='other@muc.x'><storage xmlns='storage:bookmarks'/></item>\
            </items></pubsub>"
            .parse()
            .unwrap();
        let read = read(Some(&answer));
        assert_eq!(
            read,
            [
                Bookmark {
                    room: "team@muc.x".parse().unwrap(),
                    nick: Some("al".into()),
                    autojoin: true,
                    joined_at: Some(1_700_000_000),
                },
                Bookmark {
                    room: "quiet@muc.x".parse().unwrap(),
                    nick: None,
                    autojoin: false,
                    joined_at: None,
                },
            ]
        );
        assert!(super::read(None).is_empty());
    }

    #[test]
    fn a_conference_and_a_retraction_name_what_they_are_for() {
        let c = conference("al", 1_700_000_000);
        assert_eq!(c.attr("autojoin"), Some("true"));
        let item = Element::builder("item", PUBSUB)
            .attr(name("id"), "team@muc.x")
            .append(c.clone())
            .build();
        let answer = Element::builder("pubsub", PUBSUB)
            .append(
                Element::builder("items", PUBSUB)
                    .attr(name("node"), NODE)
                    .append(item)
                    .build(),
            )
            .build();
        assert_eq!(read(Some(&answer))[0].joined_at, Some(1_700_000_000));
        assert_eq!(
            c.get_child("nick", NODE).map(Element::text).as_deref(),
            Some("al")
        );
        let r = retract(&"team@muc.x".parse().unwrap());
        let retract = r.get_child("retract", PUBSUB).unwrap();
        assert_eq!(retract.attr("node"), Some(NODE));
        assert_eq!(
            retract.get_child("item", PUBSUB).and_then(|i| i.attr("id")),
            Some("team@muc.x")
        );
    }
}
