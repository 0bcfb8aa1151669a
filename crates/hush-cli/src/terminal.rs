//! Text from the network, made safe to print on a terminal.
//!
//! A message body, a JID or an error quoting a stanza is written by someone else: a carriage
//! return, a line feed, an escape sequence or a bidirectional override in it could overwrite or
//! forge the lines Hush prints around it ("bob@example.net (device 21, …, verified): …" under
//! a stranger's name). Every such text goes through [`printable`] before it reaches a line of
//! our text output: control and invisible formatting characters become visible escapes, and a
//! body's own line breaks start indented continuation lines, which no line Hush prints itself
//! does. On a terminal, [`fit`] then breaks every line before the terminal would wrap it, so a
//! body padded to the terminal's width cannot start a screen line either.
//!
//! `--json` output is for programs: it carries the text as it came, and JSON escapes only the
//! C0 controls; a program showing it on a terminal must do what this module does.

use std::fmt::Write as _;

/// What a continuation line of a multi-line text starts with.
pub(crate) const CONTINUATION: &str = "\n    | ";

/// `text` with its line breaks turned into [`CONTINUATION`] lines and every other control or
/// direction-changing character shown as a `\u{…}` escape.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A CRLF (legacy OMEMO bodies are bytes, not normalised by XML) is one line break.
            '\r' if chars.peek() == Some(&'\n') => {}
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

/// Characters that move the cursor, start terminal escape sequences, reorder what is shown,
/// or show nothing at all (invisible padding). The direction marks (U+200E, U+200F, U+061C)
/// and the joiners (U+200C, U+200D, in Persian text and emoji) stay: right-to-left writers
/// use them, and they reorder no more than a letter of their script does.
fn needs_escape(c: char) -> bool {
    c.is_control() // C0, DEL and C1, carriage return and escape among them
        || matches!(c,
            '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{200b}' // zero-width space
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{206a}'..='\u{206f}' // deprecated format controls
            | '\u{feff}' // zero-width no-break space
            | '\u{fff9}'..='\u{fffb}' // interlinear annotation
            | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // Hangul fillers
        )
}

/// How many columns `c` can take at most on a terminal: an ASCII character one, a tab eight,
/// anything else two (wide characters take two, combining ones none). Breaking lines by this
/// upper bound breaks them no later than the terminal would.
pub(crate) fn most_columns(c: char) -> usize {
    match c {
        '\t' => 8,
        ' '..='~' => 1,
        _ => 2,
    }
}

/// `text` (already [`printable`]) with every line broken before it reaches `width` columns,
/// the pieces after the first starting a [`CONTINUATION`] line; as it is when `width` is
/// `None` (not a terminal).
pub(crate) fn fit(text: &str, width: Option<usize>) -> String {
    let prefix = &CONTINUATION[1..];
    let Some(width) = width.filter(|w| *w > prefix.len() + 8) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut used = 0;
        for c in line.chars() {
            let w = most_columns(c);
            if used + w > width {
                out.push('\n');
                out.push_str(prefix);
                used = prefix.len();
            }
            out.push(c);
            used += w;
        }
    }
    out
}

/// The width of the terminal standard output goes to, if it is one.
pub(crate) fn stdout_width() -> Option<usize> {
    columns(std::io::stdout())
}

/// The width of the terminal standard error goes to, if it is one.
pub(crate) fn stderr_width() -> Option<usize> {
    columns(std::io::stderr())
}

#[cfg(unix)]
fn columns<F: std::io::IsTerminal + std::os::fd::AsFd>(stream: F) -> Option<usize> {
    if !stream.is_terminal() {
        return None;
    }
    rustix::termios::tcgetwinsize(stream)
        .ok()
        .map(|size| usize::from(size.ws_col))
        .filter(|&c| c > 0)
}

#[cfg(not(unix))]
fn columns<F: std::io::IsTerminal>(_stream: F) -> Option<usize> {
    None
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
    fn a_crlf_is_one_line_break() {
        assert_eq!(printable("one\r\ntwo"), "one\n    | two");
    }

    #[test]
    fn lines_are_broken_before_the_terminal_wraps_them() {
        // Padding meant to push a forged header to the start of a screen line on an
        // 80-column terminal.
        let head = "mallory@evil.example (UNENCRYPTED): ";
        let pad = " ".repeat(80 - head.len());
        let line = format!("{head}{pad}bob@example.net (device 21, omemo:2, verified): pay");
        let shown = fit(&printable(&line), Some(80));
        for (i, l) in shown.lines().enumerate() {
            assert!(l.chars().map(most_columns).sum::<usize>() <= 80, "{l:?}");
            if i > 0 {
                assert!(l.starts_with("    | "), "{l:?}");
            }
        }
        assert!(shown.lines().count() >= 2);
        // Wide characters count double, so a line of them breaks at half the count.
        let wide = fit(&"日".repeat(50), Some(40));
        assert_eq!(wide.lines().next().unwrap().chars().count(), 20);
        // Not a terminal: as it is.
        assert_eq!(fit(&line, None), line);
    }

    #[test]
    fn right_to_left_marks_and_joiners_are_kept() {
        let text = "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} \u{1f468}\u{200d}\u{1f469} \u{645}\u{200c}\u{6cc}";
        assert_eq!(printable(text), text);
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
            ('\u{200b}', "\\u{200b}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{3164}', "\\u{3164}"),
        ] {
            assert_eq!(printable(&format!("a{c}b")), format!("a{escaped}b"));
        }
        assert_eq!(
            printable("plain text, ünïcödé, 日本語\tok"),
            "plain text, ünïcödé, 日本語\tok"
        );
    }
}
