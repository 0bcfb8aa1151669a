//! The `<message/>` stanzas the engine hands the shell to transmit, whole.
//!
//! Everything a chat message carries on the wire is decided here, not in the network shell:
//! the addressee and `type='chat'`; the XEP-0359 origin id (also the stanza's `id`, so a
//! server echo or an archived copy can be matched to what we sent); for an encrypted message
//! the OMEMO element, a fixed fallback body saying the message is encrypted (nothing of the
//! user's text), the XEP-0334 store hint (so the server archives it and delivers it offline
//! even without a body it understands) and the XEP-0380 encryption mark; for a message the
//! user asked to send in clear, its body. The shell sends [`MessageStanza::to_element`] as it
//! is.

use hush_proto::{Element, EncryptedElement};

/// What a message carries.
#[derive(Debug, Clone)]
pub enum Wire {
    /// An OMEMO element.
    Encrypted(EncryptedElement),
    /// A body in clear.
    InClear(String),
    /// A room message: one OMEMO element per suite its readers use, each holding the keys of
    /// the devices that read it (a member's client reads the one with a key for its device).
    PerSuite(Vec<EncryptedElement>),
}

/// The text in clear of every encrypted message with content: only that it is encrypted.
pub const FALLBACK_BODY: &str =
    "This message is encrypted with OMEMO; your client cannot decrypt it.";

const CLIENT_NS: &str = "jabber:client";
const SID_NS: &str = "urn:xmpp:sid:0";
const HINTS_NS: &str = "urn:xmpp:hints";
const EME_NS: &str = "urn:xmpp:eme:0";

/// One chat message to transmit.
#[derive(Debug, Clone)]
pub struct MessageStanza {
    to: String,
    origin_id: String,
    content: Wire,
    /// A message to a room (`type='groupchat'`, XEP-0045 §7.4).
    groupchat: bool,
    /// A control message (a trust message, a comparison step): no fallback body, which is
    /// how a device it was not encrypted for recognises it and passes over it quietly.
    control: bool,
}

impl MessageStanza {
    /// An encrypted message to the bare JID `to`.
    pub fn encrypted(to: &str, element: EncryptedElement, origin_id: String) -> Self {
        Self {
            to: to.to_owned(),
            origin_id,
            content: Wire::Encrypted(element),
            groupchat: false,
            control: false,
        }
    }

    /// A control message to the bare JID `to`: encrypted content for a few devices, without
    /// the fallback body (see the `control` field).
    pub fn control(to: &str, element: EncryptedElement, origin_id: String) -> Self {
        Self {
            control: true,
            ..Self::encrypted(to, element, origin_id)
        }
    }

    /// Whether it is a control message.
    pub fn is_control(&self) -> bool {
        self.control
    }

    /// A message in clear to `to`: only ever built on the user's explicit request.
    pub(crate) fn in_clear(to: &str, text: &str, origin_id: String) -> Self {
        Self {
            to: to.to_owned(),
            origin_id,
            content: Wire::InClear(text.to_owned()),
            groupchat: false,
            control: false,
        }
    }

    /// An encrypted message to the room `room`: one element per suite, in the order given.
    pub fn to_room(room: &str, elements: Vec<EncryptedElement>, origin_id: String) -> Self {
        Self {
            to: room.to_owned(),
            origin_id,
            content: Wire::PerSuite(elements),
            groupchat: true,
            control: false,
        }
    }

    /// A message in clear to the room `room`: only ever built on the user's explicit request.
    pub(crate) fn in_clear_to_room(room: &str, text: &str, origin_id: String) -> Self {
        Self {
            groupchat: true,
            ..Self::in_clear(room, text, origin_id)
        }
    }

    /// Whether it goes to a room.
    pub fn is_groupchat(&self) -> bool {
        self.groupchat
    }

    /// The addressee's bare JID.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The XEP-0359 origin id (and stanza id).
    pub fn origin_id(&self) -> &str {
        &self.origin_id
    }

    /// What the message carries.
    pub fn content(&self) -> &Wire {
        &self.content
    }

    /// The whole `<message/>` stanza, in the `jabber:client` namespace.
    pub fn to_element(&self) -> Element {
        let mut message = Element::builder("message", CLIENT_NS)
            .attr(name("to"), self.to.as_str())
            .attr(
                name("type"),
                if self.groupchat { "groupchat" } else { "chat" },
            )
            .attr(name("id"), self.origin_id.as_str())
            .build();
        let body = |text: &str| Element::builder("body", CLIENT_NS).append(text).build();
        match &self.content {
            Wire::Encrypted(element) => {
                // Empty messages (key-exchange answers, heartbeats) carry no text to stand in
                // for.
                if element.payload.is_some() && !self.control {
                    message.append_child(body(FALLBACK_BODY));
                }
                message.append_child(origin_id(&self.origin_id));
                message.append_child(element.to_element());
                message.append_child(Element::builder("store", HINTS_NS).build());
                message.append_child(
                    Element::builder("encryption", EME_NS)
                        .attr(name("namespace"), element.suite.namespace())
                        .build(),
                );
            }
            Wire::PerSuite(elements) => {
                message.append_child(body(FALLBACK_BODY));
                message.append_child(origin_id(&self.origin_id));
                for element in elements {
                    message.append_child(element.to_element());
                }
                // Prosody's and ejabberd's room archives keep a message without a body they
                // understand only with this hint.
                message.append_child(Element::builder("store", HINTS_NS).build());
                if let Some(first) = elements.first() {
                    message.append_child(
                        Element::builder("encryption", EME_NS)
                            .attr(name("namespace"), first.suite.namespace())
                            .build(),
                    );
                }
            }
            Wire::InClear(text) => {
                message.append_child(body(text));
                message.append_child(origin_id(&self.origin_id));
            }
        }
        message
    }
}

fn origin_id(id: &str) -> Element {
    Element::builder("origin-id", SID_NS)
        .attr(name("id"), id)
        .build()
}

/// An attribute name of this module.
#[expect(
    clippy::expect_used,
    reason = "attribute names in this module are static, valid NCNames"
)]
pub(crate) fn name(name: &'static str) -> minidom::rxml::NcName {
    minidom::rxml::NcName::try_from(name).expect("attribute names in this module are valid NCNames")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::{KeyEntry, Suite};

    fn encrypted(payload: Option<Vec<u8>>) -> EncryptedElement {
        EncryptedElement {
            suite: Suite::Omemo2,
            sid: 7,
            keys: vec![KeyEntry {
                jid: Some("you@example.org".into()),
                rid: 9,
                kex: false,
                data: vec![1, 2, 3],
            }],
            iv: None,
            payload,
        }
    }

    #[test]
    fn an_encrypted_message_carries_no_text_but_the_fallback() {
        let s =
            MessageStanza::encrypted("you@example.org", encrypted(Some(vec![4; 8])), "o-1".into());
        let e = s.to_element();
        assert!(e.is("message", CLIENT_NS));
        assert_eq!(e.attr("to"), Some("you@example.org"));
        assert_eq!(e.attr("type"), Some("chat"));
        assert_eq!(e.attr("id"), Some("o-1"));
        let bodies: Vec<String> = e
            .children()
            .filter(|c| c.is("body", CLIENT_NS))
            .map(Element::text)
            .collect();
        assert_eq!(bodies, [FALLBACK_BODY]);
        assert_eq!(
            e.get_child("origin-id", SID_NS).and_then(|c| c.attr("id")),
            Some("o-1")
        );
        assert!(e.get_child("store", HINTS_NS).is_some());
        assert_eq!(
            e.get_child("encryption", EME_NS)
                .and_then(|c| c.attr("namespace")),
            Some(Suite::Omemo2.namespace())
        );
        let omemo = e
            .get_child("encrypted", Suite::Omemo2.namespace())
            .expect("the element");
        assert_eq!(
            EncryptedElement::from_element(omemo).unwrap(),
            encrypted(Some(vec![4; 8]))
        );
    }

    #[test]
    fn a_room_message_carries_one_element_per_suite_and_is_a_groupchat() {
        let mut legacy = encrypted(Some(vec![5; 8]));
        legacy.suite = Suite::Legacy;
        legacy.iv = Some(vec![6; 12]);
        // Legacy keys name no JID.
        legacy.keys[0].jid = None;
        let s = MessageStanza::to_room(
            "team@muc.x",
            vec![encrypted(Some(vec![4; 8])), legacy.clone()],
            "o-4".into(),
        );
        let e = s.to_element();
        assert_eq!(e.attr("type"), Some("groupchat"));
        assert_eq!(e.attr("to"), Some("team@muc.x"));
        assert!(e.get_child("store", HINTS_NS).is_some());
        assert!(e
            .get_child("encrypted", Suite::Omemo2.namespace())
            .is_some());
        assert_eq!(
            EncryptedElement::from_element(
                e.get_child("encrypted", Suite::Legacy.namespace()).unwrap()
            )
            .unwrap(),
            legacy
        );
        let bodies: Vec<String> = e
            .children()
            .filter(|c| c.is("body", CLIENT_NS))
            .map(Element::text)
            .collect();
        assert_eq!(bodies, [FALLBACK_BODY]);
        let clear = MessageStanza::in_clear_to_room("team@muc.x", "hi", "o-5".into());
        assert_eq!(clear.to_element().attr("type"), Some("groupchat"));
    }

    /// A control message carries content but no fallback body (how devices it was not
    /// encrypted for recognise it), and is stored like any message.
    #[test]
    fn a_control_message_has_no_body_and_is_stored() {
        let s =
            MessageStanza::control("you@example.org", encrypted(Some(vec![4; 8])), "o-6".into());
        assert!(s.is_control());
        let e = s.to_element();
        assert!(e.get_child("body", CLIENT_NS).is_none());
        assert!(e.get_child("store", HINTS_NS).is_some());
        assert!(e
            .get_child("encrypted", Suite::Omemo2.namespace())
            .is_some());
    }

    #[test]
    fn an_empty_message_has_no_body() {
        let s = MessageStanza::encrypted("you@example.org", encrypted(None), "o-2".into());
        assert!(s.to_element().get_child("body", CLIENT_NS).is_none());
    }

    #[test]
    fn a_message_in_clear_carries_its_text_and_no_encryption_mark() {
        let s = MessageStanza::in_clear("you@example.org", "hi <there>", "o-3".into());
        let e = s.to_element();
        assert_eq!(
            e.get_child("body", CLIENT_NS).map(Element::text).as_deref(),
            Some("hi <there>")
        );
        assert!(e.get_child("encryption", EME_NS).is_none());
        assert!(e.get_child("store", HINTS_NS).is_none());
    }
}
