//! Stanza Content Encryption (XEP-0420) envelopes, in the profile OMEMO:2 requires.
//!
//! ```xml
//! <envelope xmlns='urn:xmpp:sce:1'>
//!   <content>…any stanza children: body, reactions, replies…</content>
//!   <rpad>random</rpad> <time stamp='…'/> <to jid='…'/> <from jid='…'/>
//! </envelope>
//! ```
//! XEP-0384 profile: `<rpad/>` MUST be present, `<from/>` SHOULD be, `<to/>` MUST be in group
//! chats. On receipt we check that `<from/>` names the stanza's sender and `<to/>` its addressee,
//! so a server cannot replay an envelope into another conversation or forge its sender.

use minidom::Element;
use rand_core::CryptoRng;

use crate::bounded_xml;
use crate::error::{EnvelopeFault, ProtoError, Result};
use crate::xml::an;

/// The SCE namespace.
pub const NS: &str = "urn:xmpp:sce:1";

/// A decrypted and checked envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The protected stanza children.
    pub content: Vec<Element>,
    /// The `<to jid/>` value, if any.
    pub to: Option<String>,
    /// The `<from jid/>` value, if any.
    pub from: Option<String>,
    /// The `<time stamp/>` value, if any (XEP-0082 DateTime).
    pub time: Option<String>,
}

/// What the receiver expects the envelope to say.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// The sender's JID as the stanza says (compared as bare JID).
    pub from: &'a str,
    /// The stanza's addressee: our bare JID, or the room's.
    pub to: &'a str,
    /// Whether `<to/>` is mandatory (group chats).
    pub require_to: bool,
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn same_bare(a: &str, b: &str) -> bool {
    bare(a).eq_ignore_ascii_case(bare(b))
}

/// Builds the envelope bytes for `content`. `now` (unix seconds) adds a `<time/>` affix.
/// Fails if the content holds characters XML cannot carry (e.g. control characters).
pub fn seal<R: CryptoRng + ?Sized>(
    content: &[Element],
    from: &str,
    to: &str,
    now: Option<u64>,
    rng: &mut R,
) -> Result<Vec<u8>> {
    // minidom panics on characters XML 1.0 cannot carry; refuse them up front instead.
    if !content.iter().all(xml_safe) || !xml_chars(from) || !xml_chars(to) {
        return Err(ProtoError::Envelope(EnvelopeFault::NotXmlCharacters));
    }
    let mut c = Element::builder("content", NS).build();
    for el in content {
        c.append_child(el.clone());
    }
    // Random-length padding hides the content length; 0..=199 characters from a 64-letter set.
    const SET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let len = (rng.next_u32() % 200) as usize;
    let mut raw = vec![0u8; len];
    rng.fill_bytes(&mut raw);
    let rpad: String = raw.iter().map(|b| SET[(b & 63) as usize] as char).collect();
    let mut env = Element::builder("envelope", NS)
        .append(c)
        .append(Element::builder("rpad", NS).append(rpad).build());
    if let Some(t) = now {
        env = env.append(
            Element::builder("time", NS)
                .attr(an("stamp"), hush_wire::date::format(t))
                .build(),
        );
    }
    let env = env
        .append(Element::builder("to", NS).attr(an("jid"), to).build())
        .append(Element::builder("from", NS).attr(an("jid"), from).build())
        .build();
    let mut out = Vec::new();
    env.write_to(&mut out)
        .map_err(|e| ProtoError::Envelope(EnvelopeFault::Unwritable(e.to_string())))?;
    Ok(out)
}

fn xml_chars(text: &str) -> bool {
    text.chars().all(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
}

fn xml_safe(el: &Element) -> bool {
    el.attrs().values().all(|v| xml_chars(v))
        && el.nodes().all(|n| match n {
            minidom::Node::Element(e) => xml_safe(e),
            minidom::Node::Text(t) => xml_chars(t),
        })
}

/// The largest envelope [`open`] parses.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;
/// The deepest element nesting [`open`] accepts (the envelope itself is level 1).
pub const MAX_DEPTH: usize = 32;
/// The most elements an envelope may hold, its own six included.
pub const MAX_ELEMENTS: usize = 2048;

/// What [`open`] lets an envelope become: a sender (any stranger can send one) decides the
/// shape of the tree, and its depth and size must be bounded before the tree exists.
const LIMITS: bounded_xml::Limits = bounded_xml::Limits {
    max_bytes: MAX_ENVELOPE_BYTES,
    max_depth: MAX_DEPTH,
    max_elements: MAX_ELEMENTS,
    max_attributes: 2 * MAX_ELEMENTS,
    max_text_nodes: 2 * MAX_ELEMENTS,
};

/// Parses and checks an envelope. One over [`MAX_ENVELOPE_BYTES`], [`MAX_DEPTH`] or
/// [`MAX_ELEMENTS`] (or with too many attributes or text nodes) is [`ProtoError::TooLarge`],
/// refused before its tree grows past the limit; one that is not well-formed restricted XML
/// (comments, processing instructions and DTDs included) is [`ProtoError::Envelope`].
pub fn open(bytes: &[u8], expect: Expect<'_>) -> Result<Envelope> {
    check(&parse(bytes)?, expect)
}

/// The first half of [`open`]: the bounded parse, and the root's name.
pub(crate) fn parse(bytes: &[u8]) -> Result<Element> {
    // The tree is built by a parser that counts what it builds: no recursion over a depth the
    // sender chose, and no tree larger than the limits, whatever the bytes contain.
    let el = bounded_xml::parse(bytes, &LIMITS).map_err(|e| {
        if e.is_over_limit() {
            ProtoError::TooLarge("SCE envelope")
        } else {
            ProtoError::Envelope(EnvelopeFault::NotXml(e.to_string()))
        }
    })?;
    if !el.is("envelope", NS) {
        return Err(ProtoError::Envelope(EnvelopeFault::NotAnEnvelope {
            name: el.name().to_owned(),
            namespace: el.ns(),
        }));
    }
    Ok(el)
}

/// The second half of [`open`]: the checks on an envelope [`parse`] returned.
pub(crate) fn check(el: &Element, expect: Expect<'_>) -> Result<Envelope> {
    let content = el
        .get_child("content", NS)
        .ok_or(ProtoError::Envelope(EnvelopeFault::NoContent))?
        .children()
        .cloned()
        .collect();
    if el.get_child("rpad", NS).is_none() {
        return Err(ProtoError::Envelope(EnvelopeFault::NoPadding));
    }
    let jid_of = |name: &str| {
        el.get_child(name, NS)
            .map(|c| c.attr("jid").unwrap_or("").to_owned())
    };
    let to = jid_of("to");
    let from = jid_of("from");
    match &to {
        Some(t) if !same_bare(t, expect.to) => {
            return Err(ProtoError::Envelope(EnvelopeFault::WrongRecipient {
                envelope: t.clone(),
                stanza: expect.to.to_owned(),
            }));
        }
        None if expect.require_to => return Err(ProtoError::Envelope(EnvelopeFault::NoRecipient)),
        _ => {}
    }
    if let Some(f) = &from {
        if !same_bare(f, expect.from) {
            return Err(ProtoError::Envelope(EnvelopeFault::WrongSender {
                envelope: f.clone(),
                stanza: expect.from.to_owned(),
            }));
        }
    }
    let time = el
        .get_child("time", NS)
        .and_then(|t| t.attr("stamp"))
        .map(str::to_owned);
    Ok(Envelope {
        content,
        to,
        from,
        time,
    })
}

/// The `<time/>` stamp of an envelope in unix seconds, and nothing else checked: the sender's
/// clock when it wrote the message. The envelope travels inside the encryption, so once the
/// message has authenticated, only the sending device can have set it (see
/// [`Session`](crate::Session), which orders a peer's messages by it). `None` if `bytes` is not
/// an envelope within the limits of [`open`], or has no stamp it can read.
pub fn stamp(bytes: &[u8]) -> Option<u64> {
    stamp_of(&parse(bytes).ok()?)
}

/// The stamp of an envelope [`parse`] returned.
pub(crate) fn stamp_of(envelope: &Element) -> Option<u64> {
    envelope
        .get_child("time", NS)?
        .attr("stamp")
        .and_then(hush_wire::date::parse)
}

/// A `<body xmlns='jabber:client'>` element, the usual content.
pub fn body(text: &str) -> Element {
    Element::builder("body", "jabber:client")
        .append(text)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            self.0 += 1;
            Ok(self.0 as u32)
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            self.0 += 1;
            Ok(self.0)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            for b in dst {
                self.0 += 1;
                *b = self.0 as u8;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}

    /// The stamp is read from an envelope with one, and from nothing else.
    #[test]
    fn stamp_of_an_envelope() {
        let with = seal(
            &[body("x")],
            "a@b.c",
            "d@e.f",
            Some(1_795_435_200),
            &mut Counter(0),
        );
        assert_eq!(stamp(&with.unwrap()), Some(1_795_435_200));
        let without = seal(&[body("x")], "a@b.c", "d@e.f", None, &mut Counter(0)).unwrap();
        assert_eq!(stamp(&without), None);
        let foreign =
            b"<envelope xmlns='urn:example'><time stamp='2026-11-23T12:00:00Z'/></envelope>";
        assert_eq!(stamp(foreign), None, "not an SCE envelope");
        let unreadable = format!("<envelope xmlns='{NS}'><time stamp='yesterday'/></envelope>");
        assert_eq!(stamp(unreadable.as_bytes()), None);
        assert_eq!(stamp(b"just bytes"), None);
    }

    #[test]
    fn round_trip_and_checks() {
        let bytes = seal(
            &[body("hi <there>")],
            "romeo@example.net/orchard",
            "juliet@example.org",
            Some(0),
            &mut Counter(0),
        )
        .unwrap();
        let expect = Expect {
            from: "romeo@example.net/balcony",
            to: "juliet@example.org",
            require_to: true,
        };
        let env = open(&bytes, expect).unwrap();
        assert_eq!(env.content[0].text(), "hi <there>");
        assert_eq!(env.time.as_deref(), Some("1970-01-01T00:00:00Z"));
        let wrong_to = Expect {
            to: "mallory@example.org",
            ..expect
        };
        assert!(matches!(
            open(&bytes, wrong_to),
            Err(ProtoError::Envelope(EnvelopeFault::WrongRecipient { .. }))
        ));
        let wrong_from = Expect {
            from: "mallory@example.org",
            ..expect
        };
        assert!(matches!(
            open(&bytes, wrong_from),
            Err(ProtoError::Envelope(EnvelopeFault::WrongSender { .. }))
        ));
        let no_rpad = b"<envelope xmlns='urn:xmpp:sce:1'><content/></envelope>";
        assert_eq!(
            open(no_rpad, expect).unwrap_err(),
            ProtoError::Envelope(EnvelopeFault::NoPadding)
        );
        assert!(matches!(
            open(b"<not xml", expect),
            Err(ProtoError::Envelope(EnvelopeFault::NotXml(_)))
        ));
    }

    #[test]
    fn deep_nesting_and_size_are_refused_before_parsing() {
        let expect = Expect {
            from: "a@b",
            to: "c@d",
            require_to: false,
        };
        let deep = format!(
            "<envelope xmlns='urn:xmpp:sce:1'><content>{}{}</content><rpad/></envelope>",
            "<x>".repeat(50_000),
            "</x>".repeat(50_000)
        );
        assert_eq!(
            open(deep.as_bytes(), expect),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
        let shallow = format!("<envelope xmlns='urn:xmpp:sce:1'><content>{}<y a='>' b=\"/>\"/>{}</content><rpad/></envelope>", "<x>".repeat(20), "</x>".repeat(20));
        assert!(open(shallow.as_bytes(), expect).is_ok());
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(
            open(&big, expect),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
    }

    /// An envelope around `inner`, as a sender would write it.
    fn envelope_around(inner: &str) -> String {
        format!("<envelope xmlns='urn:xmpp:sce:1'><content>{inner}</content><rpad/></envelope>")
    }

    const ANYONE: Expect<'static> = Expect {
        from: "a@b",
        to: "c@d",
        require_to: false,
    };

    /// The envelope that passed the old byte scanner: thirty levels at a time, each batch
    /// followed by a CDATA section holding thirty `</`, which the scanner took for end tags.
    /// 24,000 levels in 215 KB, under the size limit; opening it overflowed the stack.
    fn cdata_bypass() -> String {
        let rounds = 800;
        let batch = format!("{}<![CDATA[{}]]>", "<x>".repeat(30), "</".repeat(30));
        envelope_around(&format!(
            "{}{}",
            batch.repeat(rounds),
            "</x>".repeat(30 * rounds)
        ))
    }

    #[test]
    fn end_tags_hidden_in_cdata_do_not_hide_depth() {
        let doc = cdata_bypass();
        assert!(doc.len() <= MAX_ENVELOPE_BYTES, "{}", doc.len());
        assert_eq!(
            open(doc.as_bytes(), ANYONE),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
        // One level inside the limit, with the same trick, is an ordinary envelope.
        let levels = MAX_DEPTH - 2; // envelope and content are levels 1 and 2
        let inner = format!(
            "{}<![CDATA[{}]]>{}",
            "<x xmlns='jabber:client'>".repeat(levels),
            "</".repeat(levels),
            "</x>".repeat(levels)
        );
        let env = open(envelope_around(&inner).as_bytes(), ANYONE).unwrap();
        assert_eq!(env.content.len(), 1);
        assert_eq!(
            open(
                envelope_around(&format!("<x>{inner}</x>")).as_bytes(),
                ANYONE
            ),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
    }

    #[test]
    fn markup_the_parser_refuses_is_an_envelope_error() {
        // Comments, processing instructions, DTDs and entities that could hide end tags from
        // a scanner: each is refused by the parser, at the first level it appears.
        for hiding in [
            "<!-- </x> -->",
            "<?pi </x>?>",
            "<!DOCTYPE x [<!ENTITY e '</x>'>]>",
            "&e;",
        ] {
            let doc = envelope_around(&format!(
                "{}{}",
                format!("<x>{hiding}").repeat(2 * MAX_DEPTH),
                "</x>".repeat(2 * MAX_DEPTH)
            ));
            let r = open(doc.as_bytes(), ANYONE);
            assert!(matches!(r, Err(ProtoError::Envelope(_))), "{hiding}: {r:?}");
        }
        // Before the envelope, too.
        let doc = format!("<!DOCTYPE envelope>{}", envelope_around("<x/>"));
        assert!(matches!(
            open(doc.as_bytes(), ANYONE),
            Err(ProtoError::Envelope(_))
        ));
        assert!(matches!(
            open(b"\xff\xfe", ANYONE),
            Err(ProtoError::Envelope(_))
        ));
    }

    #[test]
    fn a_hundred_thousand_levels_and_wide_envelopes_are_refused() {
        // As deep as the size limit allows (80,000 levels, unclosed): refused on depth; and
        // 100,000 levels, closed, over the size limit too.
        let deep = envelope_around(&"<x>".repeat(80_000));
        assert!(deep.len() < MAX_ENVELOPE_BYTES);
        let deeper = envelope_around(&format!(
            "{}{}",
            "<x>".repeat(100_000),
            "</x>".repeat(100_000)
        ));
        for doc in [deep, deeper] {
            assert_eq!(
                open(doc.as_bytes(), ANYONE),
                Err(ProtoError::TooLarge("SCE envelope"))
            );
        }
        let wide = envelope_around(&"<x/>".repeat(MAX_ELEMENTS));
        assert_eq!(
            open(wide.as_bytes(), ANYONE),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
        let attrs: String = (0..2 * MAX_ELEMENTS + 1)
            .map(|i| format!(" a{i}=''"))
            .collect();
        let attrs = envelope_around(&format!("<x xmlns='jabber:client'{attrs}/>"));
        assert_eq!(
            open(attrs.as_bytes(), ANYONE),
            Err(ProtoError::TooLarge("SCE envelope"))
        );
        // A long body is one text node, however it is written.
        let long = envelope_around(&format!(
            "<body xmlns='jabber:client'>{}</body>",
            "a&amp;<![CDATA[b]]>".repeat(5_000)
        ));
        let env = open(long.as_bytes(), ANYONE).unwrap();
        assert_eq!(env.content[0].text().len(), 15_000);
    }

    #[test]
    fn unwritable_content_is_an_error_not_a_panic() {
        let r = seal(
            &[body("escape \u{1b} and nul \u{0}")],
            "a@b",
            "c@d",
            None,
            &mut Counter(0),
        );
        assert!(matches!(r, Err(ProtoError::Envelope(_))));
    }
}
