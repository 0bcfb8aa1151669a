//! Parsing XML that someone else wrote into a tree whose size and depth are bounded.
//!
//! minidom's [`Element`] is a recursive type: dropping, cloning, comparing and serialising a
//! tree recurse once per level of nesting, so a document nested some ten thousand levels deep
//! overflows the stack — an abort, not an error a caller could handle. A check on the raw text
//! before parsing has to agree with the parser about every construct that looks like markup
//! but is not (CDATA sections, attribute values, references), and one that does not is
//! bypassable: an earlier byte scanner here counted the `</` inside `<![CDATA[…]]>` as end
//! tags, and an envelope nested 24,000 deep passed it.
//!
//! [`parse`] therefore does not guess. It drives the tokenizer minidom itself uses (rxml's
//! `RawParser`, with minidom's default options) one event at a time and hands each event to
//! minidom's own [`TreeBuilder`] only after counting it: element depth from the real start and
//! end events, elements, attributes (namespace declarations included) and text nodes. The first
//! event over a limit stops the parse before the builder sees it, so the tree that exists at
//! any moment — finished or abandoned — was built from counted events only and is never deeper
//! or larger than the limits. Building is iterative (the builder keeps its open elements in a
//! vector); nothing recurses on the input's depth until the tree is complete and bounded.
//!
//! Unlike minidom's `Element::from_str`, which stops reading at the end of the root element,
//! [`parse`] reads to the end of the input: anything but whitespace after the root is an error.
//!
//! Every tree [`parse`] returns can be written out again. minidom keeps each element's own
//! namespace declarations, and its writer panics on some that its reader accepts: a prefix
//! declared again while an ancestor's declaration of it is in scope
//! (`<a xmlns:p='v'><b xmlns:p='v'/></a>`, valid XML), an explicit declaration of the `xml`
//! prefix (also valid), and the `xmlns` namespace name bound to anything (invalid). [`parse`]
//! leaves out a declaration that changes nothing (the prefix is already bound to that name, or
//! it is `xml`'s own) and refuses the rest: a prefix bound to another namespace while in scope
//! ([`XmlError::RedeclaredPrefix`]) and the `xmlns` namespace name
//! ([`XmlError::ReservedNamespace`]). No sender we know of writes either in a payload.

use std::collections::HashMap;

use minidom::rxml::error::EndOrError;
use minidom::rxml::{Parse, RawEvent, RawParser};
use minidom::tree_builder::TreeBuilder;
use minidom::Element;
use thiserror::Error;

/// Bounds on the input and on the tree built from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of input.
    pub max_bytes: usize,
    /// Element nesting; the root element is depth 1.
    pub max_depth: usize,
    /// Elements in the whole document.
    pub max_elements: usize,
    /// Attributes in the whole document, namespace declarations included.
    pub max_attributes: usize,
    /// Text nodes in the whole document (adjacent text, CDATA and references form one node).
    pub max_text_nodes: usize,
}

/// Why [`parse`] refused a document.
#[derive(Clone, Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum XmlError {
    /// The input is longer than [`Limits::max_bytes`].
    #[error("the document is longer than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Elements are nested deeper than [`Limits::max_depth`].
    #[error("elements are nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More elements than [`Limits::max_elements`].
    #[error("the document has more than {limit} elements")]
    TooManyElements {
        /// The limit.
        limit: usize,
    },
    /// More attributes than [`Limits::max_attributes`].
    #[error("the document has more than {limit} attributes")]
    TooManyAttributes {
        /// The limit.
        limit: usize,
    },
    /// More text nodes than [`Limits::max_text_nodes`].
    #[error("the document has more than {limit} text nodes")]
    TooManyTextNodes {
        /// The limit.
        limit: usize,
    },
    /// Not well-formed (restricted) XML: rxml's verdict, which also refuses comments,
    /// processing instructions other than the XML declaration, DTDs and custom entities.
    #[error("not well-formed XML: {0}")]
    Syntax(minidom::rxml::Error),
    /// An element or attribute uses a namespace prefix that was never declared.
    #[error("an element or attribute uses an undeclared namespace prefix")]
    UndeclaredPrefix,
    /// The input ends before a root element was complete.
    #[error("the document ends before its root element does")]
    Incomplete,
    /// An element binds a namespace prefix to another namespace while the prefix is already
    /// bound around it (see the module documentation for why this is refused).
    #[error("an element binds a namespace prefix that is already bound around it")]
    RedeclaredPrefix,
    /// The root element is in no namespace (`xmlns=''`), which minidom cannot write out.
    #[error("the root element has no namespace")]
    NoNamespace,
    /// The `xmlns` namespace name declared, or the `xml` prefix bound to another name.
    #[error("a namespace declaration uses a reserved prefix or namespace name")]
    ReservedNamespace,
}

/// The namespace name only the `xmlns` prefix may have (Namespaces in XML 1.0, §3).
const XMLNS_NAMESPACE: &str = "http://www.w3.org/2000/xmlns/";
/// The namespace name the `xml` prefix always has.
const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// What [`Tally::count`] says to do with an event within the limits.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Hand it to the tree builder.
    Build,
    /// Leave it out: a namespace declaration that changes nothing.
    Redundant,
}

impl XmlError {
    /// Whether the document was refused for one of the [`Limits`] rather than its syntax.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            XmlError::TooLarge { .. }
                | XmlError::TooDeep { .. }
                | XmlError::TooManyElements { .. }
                | XmlError::TooManyAttributes { .. }
                | XmlError::TooManyTextNodes { .. }
        )
    }
}

/// What the events seen so far add up to.
#[derive(Debug, Default)]
struct Tally {
    depth: usize,
    elements: usize,
    attributes: usize,
    text_nodes: usize,
    /// The previous event was text inside an element, so more text joins its node.
    in_text: bool,
    /// The namespace prefixes declared by the open elements, each element's in one entry.
    declared: Vec<Vec<String>>,
    /// The same prefixes with the namespace each is bound to (each bound once at a time).
    in_scope: HashMap<String, String>,
}

impl Tally {
    /// Counts `event` and says whether the tree needs it, or says which limit or namespace
    /// rule it would break.
    fn count(&mut self, event: &RawEvent, limits: &Limits) -> Result<Verdict, XmlError> {
        match event {
            RawEvent::XmlDeclaration(..) | RawEvent::ElementHeadClose(_) => {}
            RawEvent::ElementHeadOpen(..) => {
                self.in_text = false;
                self.depth += 1;
                self.declared.push(Vec::new());
                if self.depth > limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                self.elements += 1;
                if self.elements > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        limit: limits.max_elements,
                    });
                }
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                self.attributes += 1;
                if self.attributes > limits.max_attributes {
                    return Err(XmlError::TooManyAttributes {
                        limit: limits.max_attributes,
                    });
                }
                match (prefix.as_ref().map(|p| p.as_str()), name.as_str()) {
                    (None, "xmlns") if value.as_str() == XMLNS_NAMESPACE => {
                        return Err(XmlError::ReservedNamespace)
                    }
                    (Some("xmlns"), declared) => return self.prefix(declared, value),
                    _ => {}
                }
            }
            RawEvent::ElementFoot(_) => {
                self.in_text = false;
                self.depth = self.depth.saturating_sub(1);
                for prefix in self.declared.pop().unwrap_or_default() {
                    self.in_scope.remove(&prefix);
                }
            }
            RawEvent::Text(..) => {
                // The tree builder drops text outside the root element and appends text that
                // follows text to the same node.
                if self.depth > 0 && !self.in_text {
                    self.in_text = true;
                    self.text_nodes += 1;
                    if self.text_nodes > limits.max_text_nodes {
                        return Err(XmlError::TooManyTextNodes {
                            limit: limits.max_text_nodes,
                        });
                    }
                }
            }
        }
        Ok(Verdict::Build)
    }

    /// Checks and records `xmlns:prefix='value'` on the element being opened.
    fn prefix(&mut self, prefix: &str, value: &str) -> Result<Verdict, XmlError> {
        match (prefix, value) {
            (_, XMLNS_NAMESPACE) => return Err(XmlError::ReservedNamespace),
            ("xml", XML_NAMESPACE) => return Ok(Verdict::Redundant),
            // rxml refuses these already; refused here too so nothing depends on it.
            ("xml", _) | (_, XML_NAMESPACE) => return Err(XmlError::ReservedNamespace),
            _ => {}
        }
        match self.in_scope.get(prefix) {
            Some(bound) if bound == value => return Ok(Verdict::Redundant),
            Some(_) => return Err(XmlError::RedeclaredPrefix),
            None => {}
        }
        self.in_scope.insert(prefix.to_owned(), value.to_owned());
        if let Some(own) = self.declared.last_mut() {
            own.push(prefix.to_owned());
        }
        Ok(Verdict::Build)
    }
}

/// Parses one XML document into an [`Element`] within `limits`, refusing the document as soon
/// as it would exceed one of them (before the tree grows past it).
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if bytes.len() > limits.max_bytes {
        return Err(XmlError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let mut parser = RawParser::new();
    let mut builder = TreeBuilder::new();
    let mut tally = Tally::default();
    let mut rest = bytes;
    loop {
        let event = match parser.parse(&mut rest, true) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(EndOrError::NeedMoreData) => return Err(XmlError::Incomplete),
            Err(EndOrError::Error(e)) => return Err(XmlError::Syntax(e)),
        };
        if tally.count(&event, limits)? == Verdict::Build {
            builder
                .process_event(event)
                .map_err(|_| XmlError::UndeclaredPrefix)?;
        }
    }
    let root = builder.root.take().ok_or(XmlError::Incomplete)?;
    if root.ns().is_empty() {
        return Err(XmlError::NoNamespace);
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 256 * 1024,
        max_depth: 8,
        max_elements: 64,
        max_attributes: 64,
        max_text_nodes: 64,
    };

    /// The depth of a tree, without recursion (for trees the tests did not bound themselves).
    fn depth_of(root: &Element) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(root, 1usize)];
        while let Some((el, d)) = stack.pop() {
            deepest = deepest.max(d);
            stack.extend(el.children().map(|c| (c, d + 1)));
        }
        deepest
    }

    /// Elements, attributes plus namespace declarations, and text nodes of a tree.
    fn sizes_of(root: &Element) -> (usize, usize, usize) {
        let (mut elements, mut attributes, mut texts) = (0, 0, 0);
        let mut stack = vec![root];
        while let Some(el) = stack.pop() {
            elements += 1;
            attributes += el.attrs().len();
            texts += el
                .nodes()
                .filter(|n| matches!(n, minidom::Node::Text(_)))
                .count();
            stack.extend(el.children());
        }
        (elements, attributes, texts)
    }

    fn nested(levels: usize, inner: &str) -> String {
        format!(
            "<r xmlns='u'>{}{inner}{}</r>",
            "<x>".repeat(levels),
            "</x>".repeat(levels)
        )
    }

    #[test]
    fn ordinary_documents_parse_like_minidom() {
        let doc = "<?xml version='1.0'?>\n<r xmlns='u' xmlns:p='v' a='1 &gt; 0' b=\"/>\">\
            <p:x p:c='2'>text &amp; <![CDATA[<not-a-tag/> ]]>more</p:x><y/><z></z> </r>\n";
        let ours = parse(doc.as_bytes(), &LIMITS).unwrap();
        let theirs: Element = doc.parse().unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(
            ours.get_child("x", "v").unwrap().text(),
            "text & <not-a-tag/> more"
        );
        assert_eq!(ours.attr("b"), Some("/>"));
    }

    #[test]
    fn depth_is_counted_from_real_elements() {
        // The root is depth 1: seven levels of <x/> inside it is exactly the limit of 8.
        assert!(parse(nested(7, "").as_bytes(), &LIMITS).is_ok());
        assert!(parse(nested(6, "<e/>").as_bytes(), &LIMITS).is_ok());
        assert_eq!(
            parse(nested(7, "<e/>").as_bytes(), &LIMITS),
            Err(XmlError::TooDeep { limit: 8 })
        );
        assert_eq!(
            parse(nested(8, "").as_bytes(), &LIMITS),
            Err(XmlError::TooDeep { limit: 8 })
        );
    }

    #[test]
    fn end_tags_in_cdata_do_not_lower_the_count() {
        // The bypass of the old byte scanner: every `</` in CDATA counted as an end tag.
        let per_level = "<x><![CDATA[</x></x></x>]]>";
        let doc = format!(
            "<r xmlns='u'>{}{}</r>",
            per_level.repeat(20),
            "</x>".repeat(20)
        );
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooDeep { limit: 8 })
        );
        // Text in CDATA stays text, however much it looks like markup.
        let doc = nested(3, "<![CDATA[<a><b><c><d><e><f><g><h><i>]]>");
        assert_eq!(depth_of(&parse(doc.as_bytes(), &LIMITS).unwrap()), 4);
    }

    #[test]
    fn quoted_markup_in_attributes_does_not_lower_the_count() {
        // `<` cannot appear raw in an attribute value; `>` and `/>` can.
        let per_level = "<x a='&lt;/x>' b=\"/>\" c='>/>'>";
        let doc = format!(
            "<r xmlns='u'>{}{}</r>",
            per_level.repeat(20),
            "</x>".repeat(20)
        );
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooDeep { limit: 8 })
        );
    }

    #[test]
    fn comments_processing_instructions_and_doctypes_are_refused() {
        for construct in [
            "<!-- </x></x> -->",
            "<?pi </x></x>?>",
            "<!DOCTYPE r [<!ENTITY e '</x></x>'>]>",
            "<!ENTITY e '</x>'>",
            "<![IGNORE[</x>]]>",
        ] {
            // Before the root, and inside it at every level.
            let before = format!("{construct}{}", nested(2, ""));
            let inside = format!(
                "<r xmlns='u'>{}{}</r>",
                format!("<x>{construct}").repeat(20),
                "</x>".repeat(20)
            );
            for doc in [before, inside] {
                let err = parse(doc.as_bytes(), &LIMITS).unwrap_err();
                assert!(matches!(err, XmlError::Syntax(_)), "{construct}: {err:?}");
            }
        }
        // Undefined entities are not expanded into anything.
        let err = parse(nested(2, "&e;").as_bytes(), &LIMITS).unwrap_err();
        assert!(matches!(err, XmlError::Syntax(_)), "{err:?}");
    }

    #[test]
    fn namespace_tricks_do_not_change_the_count() {
        // Prefixed elements and their end tags, redeclared prefixes, the default namespace
        // undeclared and declared again: every element is still one level.
        let per_level = "<p:x xmlns:p='a'><q:x xmlns:q='a'><x xmlns=''><x xmlns='b'>";
        let closing = "</x></x></q:x></p:x>";
        let doc = format!(
            "<r xmlns='u'>{}{}</r>",
            per_level.repeat(2),
            closing.repeat(2)
        );
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooDeep { limit: 8 })
        );
        let doc = format!("<r xmlns='u'>{per_level}{closing}</r>");
        assert_eq!(depth_of(&parse(doc.as_bytes(), &LIMITS).unwrap()), 5);
        // An undeclared prefix is an error, not a panic.
        assert_eq!(
            parse(b"<r xmlns='u'><p:x/></r>", &LIMITS),
            Err(XmlError::UndeclaredPrefix)
        );
    }

    #[test]
    fn a_hundred_thousand_levels_are_refused_without_overflow() {
        let big = Limits {
            max_bytes: 4 << 20,
            ..LIMITS
        };
        for inner in ["", "<![CDATA[</x>]]>"] {
            let doc = format!(
                "<r xmlns='u'>{}{}</r>",
                format!("<x>{inner}").repeat(100_000),
                "</x>".repeat(100_000)
            );
            assert_eq!(
                parse(doc.as_bytes(), &big),
                Err(XmlError::TooDeep { limit: 8 })
            );
        }
        // Unclosed: the same refusal, not a syntax error at the end.
        let doc = format!("<r xmlns='u'>{}", "<x>".repeat(100_000));
        assert_eq!(
            parse(doc.as_bytes(), &big),
            Err(XmlError::TooDeep { limit: 8 })
        );
    }

    #[test]
    fn every_tree_returned_can_be_written_out_again() {
        // minidom's writer panics on each of these declarations as its reader keeps them (the
        // first was found by the xml_payload fuzz target).
        let refused = [
            (
                "<a xmlns='u' xmlns:p='v'><b xmlns:p='w'/></a>",
                XmlError::RedeclaredPrefix,
            ),
            (
                "<a xmlns='u' xmlns:p='v'><x><p:b xmlns:p='w'/></x></a>",
                XmlError::RedeclaredPrefix,
            ),
            (
                "<a xmlns='u' xmlns:tns0='v'><b xmlns='w'><c xmlns='x' xmlns:tns0='y'/></b></a>",
                XmlError::RedeclaredPrefix,
            ),
            (
                "<a xmlns='u' xmlns:p='http://www.w3.org/2000/xmlns/'/>",
                XmlError::ReservedNamespace,
            ),
            (
                "<a xmlns='http://www.w3.org/2000/xmlns/'/>",
                XmlError::ReservedNamespace,
            ),
            ("<a xmlns=''><b xmlns='u'/></a>", XmlError::NoNamespace),
        ];
        for (doc, error) in refused {
            assert_eq!(parse(doc.as_bytes(), &LIMITS), Err(error), "{doc}");
        }
        // Declarations that change nothing are left out of the tree.
        for (doc, same_as) in [
            (
                "<a xmlns='u' xmlns:p='v'><b xmlns:p='v'><p:c xmlns:p='v'/></b></a>",
                "<a xmlns='u' xmlns:p='v'><b><p:c/></b></a>",
            ),
            (
                "<a xmlns='u' xmlns:p='v' xmlns:p='v'/>",
                "<a xmlns='u' xmlns:p='v'/>",
            ),
            (
                "<a xmlns='u' xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
                "<a xmlns='u' xml:lang='en'/>",
            ),
        ] {
            let tree = parse(doc.as_bytes(), &LIMITS).unwrap();
            assert_eq!(tree, same_as.parse::<Element>().unwrap(), "{doc}");
            assert_eq!(String::from(&tree), same_as, "{doc}");
        }
        // What stays allowed: the same prefix on siblings, a second prefix for a namespace,
        // the default namespace changed and undeclared, attributes with prefixes.
        for doc in [
            "<a xmlns='u'><b xmlns:p='v'><p:c/></b><b xmlns:p='w'><p:c/></b></a>",
            "<a xmlns='u' xmlns:p='v'><b xmlns:q='v'><p:c/><q:c/></b></a>",
            "<a xmlns='u'><b xmlns='v'><c xmlns=''/></b><b xmlns='u'/></a>",
            "<a xmlns='u' xmlns:p='v' xml:lang='en' p:q='1'><b p:q='2'/></a>",
        ] {
            let tree = parse(doc.as_bytes(), &LIMITS).unwrap();
            let again: Element = String::from(&tree).parse().unwrap();
            assert_eq!(again, tree, "{doc}");
        }
    }

    #[test]
    fn wide_documents_are_bounded() {
        let doc = format!("<r xmlns='u'>{}</r>", "<x/>".repeat(1_000));
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooManyElements { limit: 64 })
        );
        let attrs: String = (0..100).map(|i| format!(" a{i}='v'")).collect();
        let doc = format!("<r xmlns='u'{attrs}/>");
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooManyAttributes { limit: 64 })
        );
        // Namespace declarations are attributes too.
        let decls: String = (0..100).map(|i| format!(" xmlns:p{i}='v'")).collect();
        let doc = format!("<r xmlns='u'{decls}/>");
        assert_eq!(
            parse(doc.as_bytes(), &LIMITS),
            Err(XmlError::TooManyAttributes { limit: 64 })
        );
        let doc = format!("<r xmlns='u'>{}</r>", "t<x/>".repeat(100));
        let many_elements = Limits {
            max_elements: 1_000,
            ..LIMITS
        };
        assert_eq!(
            parse(doc.as_bytes(), &many_elements),
            Err(XmlError::TooManyTextNodes { limit: 64 })
        );
        // Adjacent text, CDATA and references are one node, however they are split.
        let doc = format!("<r xmlns='u'>{}</r>", "a<![CDATA[b]]>&amp;".repeat(1_000));
        let tree = parse(doc.as_bytes(), &LIMITS).unwrap();
        assert_eq!(sizes_of(&tree), (1, 0, 1));
        assert_eq!(
            parse(&vec![b' '; LIMITS.max_bytes + 1], &LIMITS),
            Err(XmlError::TooLarge {
                limit: LIMITS.max_bytes
            })
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        for doc in [
            "",
            "   ",
            "<r xmlns='u'>",
            "<r xmlns='u'></s>",
            "<r xmlns='u'/><r xmlns='u'/>",
            "<r xmlns='u'/>junk",
            "text",
            "<r xmlns='u'>\u{1}</r>",
        ] {
            let err = parse(doc.as_bytes(), &LIMITS).unwrap_err();
            assert!(!err.is_over_limit(), "{doc:?}: {err:?}");
        }
        assert!(matches!(
            parse(b"\xff<r/>", &LIMITS),
            Err(XmlError::Syntax(_))
        ));
        // Whitespace after the root is fine.
        assert!(parse(b"<r xmlns='u'/>\n \t", &LIMITS).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces of XML-ish text: real markup, markup hidden in CDATA and attribute values,
        /// and the constructs rxml refuses.
        fn piece() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "<x>",
                "</x>",
                "<y a='1'>",
                "</y>",
                "<z/>",
                "<p:x xmlns:p='v'>",
                "</p:x>",
                "<w b='&lt;/w>' c=\"/>\" d='>/>'>",
                "<v b='</v>'>",
                "</w>",
                "<![CDATA[</x></y>]]>",
                "<![CDATA[<x><y>]]>",
                "text",
                "&amp;&#x3c;/x>",
                " ",
                "<!-- </x> -->",
                "<?pi </x>?>",
                "<!DOCTYPE r>",
                "&e;",
                "</",
                "<",
                ">",
                "'",
                "]]>",
            ])
        }

        /// A well-formed tree of at most `levels` levels, written with a random choice of
        /// constructs that look like markup but are not.
        fn tree(levels: u32) -> impl Strategy<Value = String> {
            let leaf = prop::sample::select(vec![
                "<z/>".to_owned(),
                "t".to_owned(),
                "<![CDATA[</x></x></x>]]>".to_owned(),
                "<q a='&lt;/x>' b=\"/>\" c='>/>'/>".to_owned(),
                "&lt;/x&gt;".to_owned(),
                String::new(),
            ]);
            leaf.prop_recursive(levels, 64, 4, |inner| {
                (
                    prop::collection::vec(inner, 0..4),
                    prop::sample::select(vec!["x", "p:x", "y"]),
                )
                    .prop_map(|(children, name)| {
                        let decl = if name.starts_with("p:") {
                            " xmlns:p='v'"
                        } else {
                            ""
                        };
                        format!("<{name}{decl} c='>'>{}</{name}>", children.concat())
                    })
            })
        }

        fn wrap(body: &str) -> String {
            format!("<r xmlns='u'>{body}</r>")
        }

        fn open(max_depth: usize) -> Limits {
            Limits {
                max_bytes: 1 << 20,
                max_depth,
                max_elements: 10_000,
                max_attributes: 10_000,
                max_text_nodes: 10_000,
            }
        }

        /// The guard's verdict against the tree minidom itself builds from the same text.
        fn check(doc: &str, max_depth: usize) -> Result<(), TestCaseError> {
            let ours = parse(doc.as_bytes(), &open(max_depth));
            let theirs = doc.parse::<Element>();
            if let Ok(tree) = &ours {
                // Whatever we accept, minidom reads as the same tree, within the limit.
                prop_assert_eq!(Ok(tree), theirs.as_ref().map_err(|_| ()));
                prop_assert!(depth_of(tree) <= max_depth);
                // And it can be written out again (minidom's writer panics on some trees its
                // reader builds), as the same tree.
                let again = String::from(tree).parse::<Element>();
                prop_assert_eq!(Ok(tree), again.as_ref().map_err(|_| ()));
            }
            if let Ok(tree) = &theirs {
                let real = depth_of(tree);
                // A prefix bound again to another namespace (which minidom could not write out
                // again) is refused wherever it comes, possibly before the depth is reached.
                let rebinds = matches!(ours, Err(XmlError::RedeclaredPrefix));
                if real > max_depth {
                    prop_assert!(
                        ours == Err(XmlError::TooDeep { limit: max_depth }) || rebinds,
                        "{:?}",
                        ours
                    );
                } else if ours.is_err() {
                    // Only trailing content after the root (which minidom ignores) may make
                    // us refuse a document minidom reads within the limit.
                    prop_assert!(
                        matches!(ours, Err(XmlError::Syntax(_))) || rebinds,
                        "{:?}",
                        ours
                    );
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn verdict_agrees_with_the_real_depth(body in tree(6), max_depth in 1usize..10) {
                check(&wrap(&body), max_depth)?;
            }

            #[test]
            fn arbitrary_pieces_never_exceed_the_limit(
                pieces in prop::collection::vec(piece(), 0..40),
                max_depth in 1usize..6,
            ) {
                check(&wrap(&pieces.concat()), max_depth)?;
            }

            #[test]
            fn mutated_trees_never_exceed_the_limit(
                body in tree(6),
                cut in any::<prop::sample::Index>(),
                insert in piece(),
                max_depth in 1usize..10,
            ) {
                // A well-formed document with a piece spliced in at a char boundary.
                let doc = wrap(&body);
                let mut at = cut.index(doc.len() + 1);
                while !doc.is_char_boundary(at) {
                    at -= 1;
                }
                check(&format!("{}{insert}{}", &doc[..at], &doc[at..]), max_depth)?;
            }

            #[test]
            fn counts_match_the_tree(body in tree(6)) {
                let doc = wrap(&body);
                let tree = parse(doc.as_bytes(), &open(64)).unwrap();
                let (elements, attributes, texts) = sizes_of(&tree);
                let with = |change: &dyn Fn(&mut Limits)| {
                    let mut limits = open(64);
                    change(&mut limits);
                    parse(doc.as_bytes(), &limits)
                };
                // As many elements and text nodes as the tree holds pass; one fewer does not.
                prop_assert!(with(&|l| l.max_elements = elements).is_ok());
                prop_assert_eq!(
                    with(&|l| l.max_elements = elements - 1),
                    Err(XmlError::TooManyElements { limit: elements - 1 })
                );
                prop_assert!(with(&|l| l.max_text_nodes = texts).is_ok());
                if texts > 0 {
                    prop_assert_eq!(
                        with(&|l| l.max_text_nodes = texts - 1),
                        Err(XmlError::TooManyTextNodes { limit: texts - 1 })
                    );
                }
                // Counted attributes include namespace declarations, which minidom keeps apart
                // from the attributes: never fewer than the tree holds.
                if attributes > 0 {
                    prop_assert_eq!(
                        with(&|l| l.max_attributes = attributes - 1),
                        Err(XmlError::TooManyAttributes { limit: attributes - 1 })
                    );
                }
            }
        }
    }
}
