//! Stanza size and depth limits, enforced on the raw bytes of an XML stream before the XML
//! parser sees them.
//!
//! tokio-xmpp's XML stream builds a whole element in memory before handing it over, and its
//! element tree is recursive: a peer that sends a megabyte-long stanza makes us buffer it, and
//! one that nests elements a hundred thousand deep overflows the stack when the tree is built
//! or dropped (an abort, not a recoverable error). A check on parsed elements comes too late.
//! The [`Scanner`] is a small XML tokenizer that runs over every byte read: it knows the
//! element depth and how many bytes the current top-level element (stanza or nonza) has taken,
//! and reports a [`Violation`] as soon as either exceeds its limit.
//!
//! The scanner has to agree with the parser behind it about what is markup. Its tests check it
//! against rxml (tokio-xmpp's parser) on streams full of decoys: end tags inside CDATA sections
//! and attribute values, `>` and `/>` in attribute values, comments, processing instructions
//! and DTDs. Whatever the scanner lets through, rxml never nests deeper than the limit (plus
//! one empty element inside the deepest open one); the constructs the scanner merely skips
//! (comments, processing instructions, DTDs) are ones rxml refuses outright.
//!
//! The client wraps its connection in `hush_xmpp::limits::Guarded` (the server is the untrusted
//! side there); `hush-devserver` uses the same scanner on what clients send it.

/// Limits on what the other side of a stream may send.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Bytes of one top-level element (stanza), tags and text included.
    pub max_bytes: usize,
    /// Nesting depth of one stanza (the stanza element itself is depth 1).
    pub max_depth: usize,
}

/// Which limit the other side broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A stanza (or the text between stanzas) longer than the limit.
    #[error("stanza larger than {0} bytes")]
    TooLarge(usize),
    /// Elements nested deeper than the limit.
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
}

/// Where the tokenizer is inside the markup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    /// Character data (or nothing) between markup.
    Text,
    /// Just after `<`.
    Open,
    /// In the name of a start tag.
    StartName,
    /// In a start tag, after its name.
    InTag,
    /// In a quoted attribute value, with its quote character.
    Quoted(u8),
    /// In an end tag.
    EndTag,
    /// In a processing instruction (or the XML declaration), until `?>`.
    Pi,
    /// After `<!`, deciding between a comment, CDATA and a declaration.
    Bang,
    /// In a comment, until `-->`.
    Comment,
    /// In a CDATA section, until `]]>`.
    CData,
    /// In some other `<!…>` declaration, until `>`.
    Decl,
}

/// The byte-level tokenizer that tracks depth and stanza size.
#[derive(Debug)]
pub struct Scanner {
    limits: StreamLimits,
    lex: Lex,
    /// Element depth in the stream: 0 before the stream header, 1 between stanzas.
    depth: usize,
    /// Bytes of the current top-level construct, or of the text since the last one.
    count: usize,
    /// The start of the current start tag's name (enough to recognise `stream:stream`).
    name: Vec<u8>,
    /// The last significant byte in a start tag was `/` (an empty-element tag, if `>` follows).
    slash: bool,
    /// How many of the closing marker's leading bytes (`-` of `-->`, `]` of `]]>`, `?` of
    /// `?>`) were just seen.
    run: usize,
    /// The bytes after `<!` so far.
    bang: Vec<u8>,
}

const CDATA_OPEN: &[u8] = b"[CDATA[";

impl Scanner {
    /// A scanner at the start of a stream.
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            lex: Lex::Text,
            depth: 0,
            count: 0,
            name: Vec::new(),
            slash: false,
            run: 0,
            bang: Vec::new(),
        }
    }

    /// Runs the tokenizer over newly read bytes. `restart` says whether a new stream header
    /// is expected now (after SASL success); it is cleared when one is seen.
    pub fn feed(&mut self, bytes: &[u8], restart: &mut bool) -> Result<(), Violation> {
        for &b in bytes {
            self.count = self.count.saturating_add(1);
            if self.count > self.limits.max_bytes {
                return Err(Violation::TooLarge(self.limits.max_bytes));
            }
            self.step(b, restart)?;
        }
        Ok(())
    }

    fn step(&mut self, b: u8, restart: &mut bool) -> Result<(), Violation> {
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    if self.depth <= 1 {
                        // A new top-level construct starts: it is counted from here.
                        self.count = 1;
                    }
                    self.lex = Lex::Open;
                }
            }
            Lex::Open => {
                self.lex = match b {
                    b'/' => Lex::EndTag,
                    b'?' => {
                        self.run = 0;
                        Lex::Pi
                    }
                    b'!' => {
                        self.bang.clear();
                        Lex::Bang
                    }
                    _ => {
                        self.name.clear();
                        self.name.push(b);
                        self.slash = false;
                        Lex::StartName
                    }
                };
            }
            Lex::StartName => match b {
                b'>' => self.start_tag_done(false, restart)?,
                b'/' => {
                    self.slash = true;
                    self.lex = Lex::InTag;
                }
                b' ' | b'\t' | b'\r' | b'\n' => self.lex = Lex::InTag,
                _ => {
                    if self.name.len() < 32 {
                        self.name.push(b);
                    }
                }
            },
            Lex::InTag => match b {
                b'>' => self.start_tag_done(self.slash, restart)?,
                b'/' => self.slash = true,
                b'"' | b'\'' => {
                    self.slash = false;
                    self.lex = Lex::Quoted(b);
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                _ => self.slash = false,
            },
            Lex::Quoted(q) => {
                if b == q {
                    self.lex = Lex::InTag;
                }
            }
            Lex::EndTag => {
                if b == b'>' {
                    self.depth = self.depth.saturating_sub(1);
                    self.construct_done();
                }
            }
            Lex::Pi => {
                if b == b'>' && self.run > 0 {
                    self.construct_done();
                } else {
                    self.run = usize::from(b == b'?');
                }
            }
            Lex::Bang => {
                self.bang.push(b);
                if self.bang == b"--" {
                    self.run = 0;
                    self.lex = Lex::Comment;
                } else if self.bang == CDATA_OPEN {
                    self.run = 0;
                    self.lex = Lex::CData;
                } else if !b"--".starts_with(&self.bang) && !CDATA_OPEN.starts_with(&self.bang) {
                    if b == b'>' {
                        self.construct_done();
                    } else {
                        self.lex = Lex::Decl;
                    }
                }
            }
            Lex::Comment => {
                if b == b'>' && self.run >= 2 {
                    self.construct_done();
                } else if b == b'-' {
                    self.run += 1;
                } else {
                    self.run = 0;
                }
            }
            Lex::CData => {
                if b == b'>' && self.run >= 2 {
                    self.construct_done();
                } else if b == b']' {
                    self.run += 1;
                } else {
                    self.run = 0;
                }
            }
            Lex::Decl => {
                if b == b'>' {
                    self.construct_done();
                }
            }
        }
        Ok(())
    }

    fn start_tag_done(&mut self, empty: bool, restart: &mut bool) -> Result<(), Violation> {
        let is_stream_header = self.name == b"stream:stream" || self.name == b"stream";
        if self.depth == 0 || (self.depth == 1 && *restart && is_stream_header) {
            // The stream header: the stream element itself is depth 1.
            self.depth = 1;
            *restart = false;
        } else if !empty {
            self.depth += 1;
            if self.depth - 1 > self.limits.max_depth {
                return Err(Violation::TooDeep(self.limits.max_depth));
            }
        }
        self.construct_done();
        Ok(())
    }

    /// After the `>` ending any markup: back to text, and a finished top-level construct no
    /// longer counts towards the next one.
    fn construct_done(&mut self) {
        self.lex = Lex::Text;
        if self.depth <= 1 {
            self.count = 0;
        }
    }
}

/// What a Hush client accepts from a server: legitimate stanzas (an archive result holding an
/// OMEMO message for many devices, a bundle with a hundred prekeys) stay far below both.
pub const SERVER_LIMITS: StreamLimits = StreamLimits {
    max_bytes: 1 << 20,
    max_depth: 64,
};

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: StreamLimits = StreamLimits {
        max_bytes: 200,
        max_depth: 4,
    };

    fn scan(chunks: &[&str]) -> Result<Scanner, Violation> {
        let mut s = Scanner::new(LIMITS);
        let mut restart = false;
        for c in chunks {
            s.feed(c.as_bytes(), &mut restart)?;
        }
        Ok(s)
    }

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    #[test]
    fn ordinary_stanzas_pass_and_depth_returns_to_one() {
        let s = scan(&[
            HEADER,
            "<message to='a@b'><body>x &gt; y</body><a><b><c/></b></a></message>",
            "<presence/>",
            "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq> \n",
        ])
        .unwrap();
        assert_eq!(s.depth, 1);
        assert_eq!(s.lex, Lex::Text);
    }

    #[test]
    fn byte_by_byte_is_the_same_as_at_once() {
        let all = format!(
            "{HEADER}<message a='>/<' b=\"'\"><x/><![CDATA[</message>]]><!-- </x> --></message>"
        );
        let mut s = Scanner::new(LIMITS);
        let mut restart = false;
        for b in all.as_bytes() {
            s.feed(&[*b], &mut restart).unwrap();
        }
        assert_eq!(s.depth, 1);
        assert_eq!(s.count, 0);
    }

    #[test]
    fn quoted_brackets_and_cdata_do_not_fool_it() {
        // The `>`/`</x>` inside quotes, CDATA and comments must not end the stanza early, or
        // a client could reset the byte count in the middle of a huge stanza.
        let s = scan(&[
            HEADER,
            "<message a='></message>'><![CDATA[</message>]]><!-- </message> -->",
        ])
        .unwrap();
        assert_eq!(s.depth, 2);
    }

    #[test]
    fn large_stanzas_are_refused() {
        let big = format!("<message><body>{}</body></message>", "a".repeat(300));
        assert_eq!(
            scan(&[HEADER, &big]).err(),
            Some(Violation::TooLarge(LIMITS.max_bytes))
        );
        // The limit is per stanza: many small ones are fine.
        let small = "<message><body>hello</body></message>".repeat(50);
        assert!(scan(&[HEADER, &small]).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        assert!(scan(&[HEADER, "<a><b><c><d></d></c></b></a>"]).is_ok());
        assert_eq!(
            scan(&[HEADER, "<a><b><c><d><e>"]).err(),
            Some(Violation::TooDeep(LIMITS.max_depth))
        );
        // Empty elements do not nest.
        assert!(scan(&[HEADER, "<a><b><c><d><e/><e/></d></c></b></a>"]).is_ok());
    }

    #[test]
    fn a_stream_restart_is_only_accepted_when_announced() {
        let mut s = Scanner::new(LIMITS);
        let mut restart = false;
        s.feed(HEADER.as_bytes(), &mut restart).unwrap();
        restart = true;
        s.feed(HEADER.as_bytes(), &mut restart).unwrap();
        assert!(!restart);
        assert_eq!(s.depth, 1);
        // Unannounced, a second header is just an element that never ends.
        s.feed(HEADER.as_bytes(), &mut restart).unwrap();
        assert_eq!(s.depth, 2);
        let endless = "x".repeat(300);
        assert!(s.feed(endless.as_bytes(), &mut restart).is_err());
    }

    #[test]
    fn random_bytes_never_panic_and_stay_bounded() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"<>/?!-[]'\"= abcCDATA\n:\xff";
        for _ in 0..200 {
            let mut s = Scanner::new(LIMITS);
            let mut restart = seed & 1 == 0;
            let mut fed = 0usize;
            for _ in 0..2_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let b = alphabet[(seed % alphabet.len() as u64) as usize];
                fed += 1;
                if s.feed(&[b], &mut restart).is_err() {
                    break;
                }
                assert!(s.count <= LIMITS.max_bytes && s.depth <= LIMITS.max_depth + 1);
            }
            assert!(fed > 0);
        }
    }

    /// The element depth rxml (the parser under tokio-xmpp) reaches on `bytes`, the stream
    /// element counting as 1, up to the first error or the end of the bytes.
    fn rxml_depth(bytes: &[u8]) -> usize {
        use rxml::{error::EndOrError, Event, Parse, Parser};
        let mut parser = Parser::default();
        let mut rest = bytes;
        let (mut depth, mut deepest) = (0usize, 0usize);
        loop {
            match parser.parse(&mut rest, false) {
                Ok(Some(Event::StartElement(..))) => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                Ok(Some(Event::EndElement(..))) => depth = depth.saturating_sub(1),
                Ok(Some(_)) => {}
                Ok(None) | Err(EndOrError::NeedMoreData) | Err(EndOrError::Error(_)) => {
                    return deepest
                }
            }
        }
    }

    /// Stanza contents with markup the scanner must not take at face value: end tags inside
    /// CDATA sections and attribute values, `>` and `/>` in attribute values, comments and
    /// processing instructions (which rxml refuses), and stray bytes spliced in at random.
    fn stanza_soup(seed: &mut u64, depth: usize, out: &mut String) {
        const DECOYS: &[&str] = &[
            "<![CDATA[</a></b></message>]]>",
            "<![CDATA[<a><b>]]]>",
            "<x a='&lt;/a>' b=\"/>\" c='>'/>",
            "text &amp; &#60;/a&#62;",
            "<!-- </a> -->",
            "<?pi </a>?>",
            "<!DOCTYPE a>",
            "</",
            "<",
            "'",
            "]]>",
            "-->",
            "/",
            " ",
        ];
        fn next(seed: &mut u64) -> u64 {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        }
        for _ in 0..(next(seed) % 4) {
            let r = next(seed);
            if depth < 7 && !r.is_multiple_of(3) {
                let (name, attrs) = [
                    ("a", ""),
                    ("b", " v='>/>'"),
                    ("c", " w=\"'\""),
                    ("d", " u='/>' t=\"/\""),
                ][(r / 3 % 4) as usize];
                out.push_str(&format!("<{name}{attrs}>"));
                stanza_soup(seed, depth + 1, out);
                out.push_str(&format!("</{name}>"));
            } else {
                // Mostly harmless decoys; a stray token (breaking the XML) one time in eight.
                let d = next(seed) as usize;
                let pick = if d.is_multiple_of(8) {
                    d % DECOYS.len()
                } else {
                    d % 5
                };
                out.push_str(DECOYS[pick]);
            }
        }
    }

    #[test]
    fn the_scanner_never_lets_rxml_nest_deeper_than_the_limit() {
        // Whatever prefix of the stream the scanner accepts, the parser behind it reaches at
        // most the stream element, `max_depth` levels of open elements, and an empty element
        // inside the deepest (empty elements do not nest, but they are a level of the tree).
        let limits = StreamLimits {
            max_bytes: 1 << 20,
            max_depth: 4,
        };
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let (mut at_limit, mut refused) = (0, 0);
        for _ in 0..2_000 {
            let mut stream = HEADER.to_owned();
            for _ in 0..3 {
                stream.push_str("<message>");
                stanza_soup(&mut seed, 1, &mut stream);
                stream.push_str("</message>");
            }
            let mut s = Scanner::new(limits);
            let mut restart = false;
            let accepted = stream
                .as_bytes()
                .iter()
                .position(|b| s.feed(&[*b], &mut restart).is_err())
                .unwrap_or(stream.len());
            refused += usize::from(accepted < stream.len());
            let deepest = rxml_depth(&stream.as_bytes()[..accepted]);
            assert!(
                deepest <= limits.max_depth + 2,
                "rxml reached depth {deepest} in {:?}",
                &stream[..accepted]
            );
            at_limit += usize::from(deepest > limits.max_depth);
        }
        // Not vacuous: documents reach the limit, and deeper ones are refused.
        assert!(at_limit > 100 && refused > 100, "{at_limit} {refused}");
    }

    #[test]
    fn text_between_stanzas_is_bounded_too() {
        let mut s = Scanner::new(LIMITS);
        let mut restart = false;
        s.feed(HEADER.as_bytes(), &mut restart).unwrap();
        let junk = "y".repeat(300);
        assert!(s.feed(junk.as_bytes(), &mut restart).is_err());
    }
}
