//! Text from the network, made safe to print on a terminal.
//!
//! A message body, a JID or an error quoting a stanza is written by someone else: a carriage
//! return, a line feed, an escape sequence or a bidirectional override in it could overwrite or
//! forge the lines Hush prints around it ("bob@example.net (device 21, …, verified): …" under
//! a stranger's name). Every such text goes through [`printable`] before it reaches a line of
//! our text output: control characters become visible escapes, and a body's own line breaks
//! start indented continuation lines, which no line Hush prints itself does. `--json` output
//! needs none of this: JSON escapes them already.

use std::fmt::Write as _;

/// What a continuation line of a multi-line text starts with.
pub const CONTINUATION: &str = "\n    | ";

/// `text` with its line breaks turned into [`CONTINUATION`] lines and every other control or
/// direction-changing character shown as a `\u{…}` escape.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str(CONTINUATION),
            '\t' => out.push(c),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that move the cursor, start terminal escape sequences, or reorder what is shown.
fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1, carriage return and escape among them
        || matches!(c,
            '\u{061c}' // Arabic letter mark
            | '\u{200e}' | '\u{200f}' // left-to-right and right-to-left marks
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carriage_return_cannot_overwrite_the_line() {
        let forged = "hi\rbob@example.net (device 21, urn:xmpp:omemo:2, verified): pay";
        let shown = printable(forged);
        assert!(!shown.contains('\r'));
        assert_eq!(
            shown,
            "hi\\u{d}bob@example.net (device 21, urn:xmpp:omemo:2, verified): pay"
        );
    }

    #[test]
    fn line_breaks_start_indented_continuation_lines() {
        let shown = printable("first\nbob@example.net (device 21): forged");
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            ["first", "    | bob@example.net (device 21): forged"]
        );
    }

    #[test]
    fn escapes_and_direction_overrides_are_shown_not_obeyed() {
        for (c, escaped) in [
            ('\u{1b}', "\\u{1b}"),
            ('\u{7f}', "\\u{7f}"),
            ('\u{9b}', "\\u{9b}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2067}', "\\u{2067}"),
            ('\u{2028}', "\\u{2028}"),
        ] {
            assert_eq!(printable(&format!("a{c}b")), format!("a{escaped}b"));
        }
        assert_eq!(
            printable("plain text, ünïcödé, 日本語\tok"),
            "plain text, ünïcödé, 日本語\tok"
        );
    }
}
