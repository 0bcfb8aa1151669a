//! The line the user types in `hush chat`: a cursor inside a line of characters, the usual
//! editing keys, and the lines sent before to recall with Up and Down.

use unicode_width::UnicodeWidthChar;

/// How many sent lines Up can recall.
const RECALLED: usize = 100;

/// The input line.
#[derive(Default)]
pub(super) struct Input {
    chars: Vec<char>,
    /// Where the cursor is, as an index into `chars` (0 to `chars.len()`).
    cursor: usize,
    /// Lines taken before, oldest first.
    sent: Vec<String>,
    /// Which of `sent` is shown while recalling (Up/Down), and what was typed before.
    recalling: Option<(usize, Vec<char>)>,
}

impl Input {
    /// Whether nothing is typed.
    pub(super) fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The line as typed.
    pub(super) fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Types `c` at the cursor.
    pub(super) fn insert(&mut self, c: char) {
        self.chars.insert(self.cursor, c);
        self.cursor += 1;
    }

    /// Types `text` at the cursor (a paste): line breaks stay (a multi-line message); other
    /// control characters are left out, and a CRLF or a lone CR is one line break.
    pub(super) fn paste(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() != Some(&'\n') {
                        self.insert('\n');
                    }
                }
                '\n' | '\t' => self.insert(c),
                c if c.is_control() => {}
                c => self.insert(c),
            }
        }
    }

    /// Deletes the character before the cursor.
    pub(super) fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.chars.remove(self.cursor);
        }
    }

    /// Deletes the character under the cursor.
    pub(super) fn delete(&mut self) {
        if self.cursor < self.chars.len() {
            self.chars.remove(self.cursor);
        }
    }

    /// Moves the cursor one character left.
    pub(super) fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves the cursor one character right.
    pub(super) fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.chars.len());
    }

    /// Moves the cursor to the start of the line.
    pub(super) fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves the cursor to the end of the line.
    pub(super) fn end(&mut self) {
        self.cursor = self.chars.len();
    }

    /// Deletes everything before the cursor (Ctrl-U).
    pub(super) fn kill_to_start(&mut self) {
        self.chars.drain(..self.cursor);
        self.cursor = 0;
    }

    /// Deletes the word before the cursor, and the spaces after it (Ctrl-W).
    pub(super) fn delete_word(&mut self) {
        let mut start = self.cursor;
        while start > 0 && self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        while start > 0 && !self.chars[start - 1].is_whitespace() {
            start -= 1;
        }
        self.chars.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Shows the line sent before the one shown (Up).
    pub(super) fn older(&mut self) {
        let at = match &self.recalling {
            None if self.sent.is_empty() => return,
            None => {
                self.recalling = Some((self.sent.len(), self.chars.clone()));
                self.sent.len()
            }
            Some((at, _)) => *at,
        };
        if at > 0 {
            self.show_recalled(at - 1);
        }
    }

    /// Shows the line sent after the one shown, or what was typed before recalling (Down).
    pub(super) fn newer(&mut self) {
        let Some((at, _)) = &self.recalling else {
            return;
        };
        let next = at + 1;
        if next < self.sent.len() {
            self.show_recalled(next);
        } else if let Some((_, typed)) = self.recalling.take() {
            self.chars = typed;
            self.cursor = self.chars.len();
        }
    }

    fn show_recalled(&mut self, at: usize) {
        if let Some((shown, _)) = &mut self.recalling {
            *shown = at;
        }
        self.chars = self.sent[at].chars().collect();
        self.cursor = self.chars.len();
    }

    /// Takes the line (Enter): the input is empty afterwards, and the line can be recalled.
    pub(super) fn take(&mut self) -> String {
        let line: String = self.chars.drain(..).collect();
        self.cursor = 0;
        self.recalling = None;
        if !line.trim().is_empty() && self.sent.last() != Some(&line) {
            self.sent.push(line.clone());
            if self.sent.len() > RECALLED {
                self.sent.remove(0);
            }
        }
        line
    }

    /// The part of the line to show in `width` columns, and the cursor's column in it. A line
    /// break shows as `⏎`, a tab as a space; the view follows the cursor.
    pub(super) fn view(&self, width: usize) -> (String, usize) {
        let shown: Vec<(char, usize)> = self
            .chars
            .iter()
            .map(|&c| match c {
                '\n' => ('⏎', 1),
                '\t' => (' ', 1),
                c => (c, c.width().unwrap_or(0)),
            })
            .collect();
        let width = width.max(2);
        // The first character shown: as far left as keeps the cursor inside the width (one
        // column kept for the cursor itself at the end of the line).
        let mut first = 0;
        let mut used: usize = shown[..self.cursor].iter().map(|(_, w)| w).sum();
        while used + 1 > width && first < self.cursor {
            used -= shown[first].1;
            first += 1;
        }
        let mut text = String::new();
        let mut columns = 0;
        for &(c, w) in &shown[first..] {
            if columns + w > width {
                break;
            }
            text.push(c);
            columns += w;
        }
        (text, used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Input {
        let mut input = Input::default();
        for c in text.chars() {
            input.insert(c);
        }
        input
    }

    #[test]
    fn editing_keys_change_the_line_where_the_cursor_is() {
        let mut input = typed("hello world");
        input.left();
        input.left();
        input.backspace();
        assert_eq!(input.view(80), ("hello wold".to_owned(), 8));
        input.home();
        input.delete();
        input.insert('J');
        assert_eq!(input.view(80).0, "Jello wold");
        input.end();
        input.delete_word();
        assert_eq!(input.view(80).0, "Jello ");
        input.left();
        input.kill_to_start();
        assert_eq!(input.view(80), (" ".to_owned(), 0));
        // Nothing happens at the edges.
        input.home();
        input.backspace();
        input.left();
        input.end();
        input.delete();
        input.right();
        assert_eq!(input.view(80), (" ".to_owned(), 1));
    }

    #[test]
    fn a_paste_keeps_line_breaks_and_drops_other_controls() {
        let mut input = Input::default();
        input.paste("one\r\ntwo\rthree\x1b[2Jfour\u{7}");
        assert_eq!(input.take(), "one\ntwo\nthree[2Jfour");
        assert!(input.is_empty());
    }

    #[test]
    fn sent_lines_are_recalled_and_the_typed_one_comes_back() {
        let mut input = typed("first");
        input.take();
        for c in "second".chars() {
            input.insert(c);
        }
        input.take();
        input.take(); // an empty line is not kept
        for c in "draft".chars() {
            input.insert(c);
        }
        input.older();
        assert_eq!(input.view(80).0, "second");
        input.older();
        input.older();
        assert_eq!(input.view(80).0, "first");
        input.newer();
        assert_eq!(input.view(80).0, "second");
        input.newer();
        assert_eq!(input.view(80), ("draft".to_owned(), 5));
        input.newer();
        assert_eq!(input.view(80).0, "draft");
    }

    #[test]
    fn a_long_line_scrolls_to_keep_the_cursor_in_view() {
        let mut input = typed("abcdefghij");
        assert_eq!(input.view(5), ("ghij".to_owned(), 4));
        input.home();
        assert_eq!(input.view(5), ("abcde".to_owned(), 0));
        // Wide characters count two columns.
        let input = typed("日本語");
        assert_eq!(input.view(5), ("本語".to_owned(), 4));
        let (text, cursor) = typed("a\nb").view(10);
        assert_eq!((text.as_str(), cursor), ("a⏎b", 3));
    }
}
