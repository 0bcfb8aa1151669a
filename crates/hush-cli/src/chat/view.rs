//! What `hush chat` shows, as state: the conversation's entries, the input line and the scroll
//! position. It is fed what the agent says and the keys the user presses, answers with the
//! calls to make, and draws itself into a frame. No I/O here: the shell ([`super`]) does that,
//! and the tests below drive this directly.
//!
//! Every text from the network goes through [`printable`] first, and a line of the screen
//! that continues an entry starts with the continuation mark: as in `hush recv`, a body cannot
//! draw a line that looks like one of ours.

use std::collections::{HashMap, VecDeque};

use hush_xmpp::BareJid;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as ScreenLine, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use serde_json::{json, Value};

use super::command::{self, Command, Line, HELP};
use super::input::Input;
use crate::output::Shown;
use crate::terminal::{most_columns, printable, CONTINUATION};

/// Entries kept on screen; older ones are in `hush history`.
const MAX_ENTRIES: usize = 5_000;
/// The most characters of one message body shown; `hush history` has the rest.
const MAX_SHOWN: usize = 8_000;

/// How a piece of an entry looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tone {
    /// Message text.
    Plain,
    /// Times, marks, our own notes.
    Dim,
    /// The contact we talk to.
    Peer,
    /// Someone else who wrote to us.
    Stranger,
    /// What we sent.
    Me,
    /// Verified, delivered.
    Good,
    /// Not verified yet, a new key, a warning.
    Caution,
    /// A failure, a message in clear, something not sent.
    Alarm,
}

impl Tone {
    fn style(self) -> Style {
        let s = Style::new();
        match self {
            Tone::Plain => s,
            Tone::Dim => s.fg(Color::DarkGray),
            Tone::Peer => s.fg(Color::Cyan).add_modifier(Modifier::BOLD),
            Tone::Stranger => s.fg(Color::Magenta).add_modifier(Modifier::BOLD),
            Tone::Me => s.fg(Color::Blue).add_modifier(Modifier::BOLD),
            Tone::Good => s.fg(Color::Green),
            Tone::Caution => s.fg(Color::Yellow),
            Tone::Alarm => s.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }
}

/// One thing shown: a message, a failure, a command's output line.
struct Entry {
    id: u64,
    parts: Vec<(String, Tone)>,
}

/// A call the shell should make to the agent; its answer comes back with the tag.
#[derive(Debug, PartialEq)]
pub(super) struct Call {
    pub(super) tag: u64,
    pub(super) method: &'static str,
    pub(super) params: Value,
}

/// What the shell should do after a key.
#[derive(Debug, PartialEq)]
pub(super) enum Action {
    /// Call the agent.
    Call(Call),
    /// Leave the chat.
    Quit,
}

/// What a call was for.
enum Purpose {
    /// A message we sent, shown as the entry with this id, to whom and what.
    Send { entry: u64, own: (String, String) },
    /// A command whose answer is shown as it is.
    Show,
    /// The conversation's history.
    History { jid: BareJid },
}

/// The state of the link to the agent.
#[derive(Debug, PartialEq)]
enum Link {
    /// Catching up on what arrived while nothing ran.
    Starting,
    /// Messages show as they arrive.
    Live,
    /// The agent went away.
    Lost(String),
}

/// The chat.
pub(super) struct Chat {
    /// Our JID, and our device.
    me: (String, u32),
    peer: Option<BareJid>,
    entries: VecDeque<Entry>,
    next_id: u64,
    input: Input,
    /// How many screen rows up from the newest the view is.
    scroll: usize,
    /// The height of the message area at the last draw, for Page Up and Down.
    page: usize,
    /// The width of the message area at the last draw: rows of entries added while the view
    /// is scrolled up are counted with it, so that what is read stays in place.
    width: usize,
    /// Rows added below while the view was scrolled up.
    below: usize,
    link: Link,
    waiting: HashMap<u64, Purpose>,
    next_tag: u64,
    /// Messages the history shown at the start holds, as (from, at, body): when the agent
    /// then hands over the same ones (they arrived before anyone was shown them), they are
    /// not shown twice.
    in_history: Vec<(String, u64, String)>,
    /// How many of the next messages are the agent's backlog (what arrived while nobody was
    /// shown it), the only ones that can be in that history.
    backlog_left: usize,
    /// What this chat sent, as (to, text), until the agent's news of it comes back: news of
    /// what another client sent is shown; of our own, not again.
    own_sends: Vec<(String, String)>,
    /// Now, in seconds since the epoch: today's messages show the time only.
    now: u64,
    /// The rooms the account joined (XEP-0045): a line to one goes to every member.
    rooms: std::collections::BTreeSet<String>,
}

impl Chat {
    /// A chat as `me_jid` (device `me_device`), talking to `peer` if given.
    pub(super) fn new(me_jid: &str, me_device: u32, peer: Option<BareJid>, now: u64) -> Self {
        let mut chat = Self {
            me: (me_jid.to_owned(), me_device),
            peer,
            entries: VecDeque::new(),
            next_id: 1,
            input: Input::default(),
            scroll: 0,
            page: 10,
            width: 80,
            below: 0,
            link: Link::Starting,
            waiting: HashMap::new(),
            next_tag: 1,
            in_history: Vec::new(),
            backlog_left: 0,
            own_sends: Vec::new(),
            now,
            rooms: std::collections::BTreeSet::new(),
        };
        let hint = match &chat.peer {
            Some(peer) => format!(
                "Enter sends your line to {}, end-to-end encrypted; /help lists the commands",
                printable(peer.as_str())
            ),
            None => "/to JID chooses whom to talk to; /help lists the commands".to_owned(),
        };
        chat.say(Tone::Dim, hint);
        chat
    }

    /// The rooms the account joined, as the agent lists them: a conversation with one of
    /// them is a room's.
    pub(super) fn set_rooms(&mut self, rooms: impl IntoIterator<Item = String>) {
        self.rooms = rooms.into_iter().collect();
        if let Some(peer) = self.peer.clone().filter(|p| self.is_room(p)) {
            self.say(Tone::Dim, room_hint(&peer));
        }
    }

    /// Whether `jid` is a room the account joined.
    fn is_room(&self, jid: &BareJid) -> bool {
        self.rooms.contains(jid.as_str())
    }

    /// The conversation's contact.
    #[cfg(test)]
    fn peer(&self) -> Option<&BareJid> {
        self.peer.as_ref()
    }

    /// Sets the clock.
    pub(super) fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    fn push(&mut self, parts: Vec<(String, Tone)>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.scroll > 0 {
            let rows = wrap(&parts, self.width).len();
            self.scroll += rows;
            self.below += rows;
        }
        self.entries.push_back(Entry { id, parts });
        while self.entries.len() > MAX_ENTRIES {
            self.entries.pop_front();
        }
        id
    }

    /// Adds a one-piece entry.
    fn say(&mut self, tone: Tone, text: String) {
        self.push(vec![(text, tone)]);
    }

    fn when(&self, at: Option<u64>) -> (String, Tone) {
        let text = match at {
            None => "     ".to_owned(),
            Some(at) => {
                let f = hush_wire::date::format(at);
                if at / 86_400 == self.now / 86_400 {
                    f[11..16].to_owned()
                } else {
                    format!("{} {}", &f[5..10], &f[11..16])
                }
            }
        };
        (format!("{text} "), Tone::Dim)
    }

    fn call(&mut self, purpose: Purpose, method: &'static str, params: Value) -> Action {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.waiting.insert(tag, purpose);
        Action::Call(Call {
            tag,
            method,
            params,
        })
    }

    /// A terminal event: a key, a paste, a resize (nothing to do: the next draw fits).
    pub(super) fn on_terminal(&mut self, event: Event) -> Option<Action> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            Event::Paste(text) => {
                self.input.paste(&text);
                None
            }
            _ => None,
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => return Some(Action::Quit),
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return Some(Action::Quit),
            KeyCode::Char('d') if ctrl => self.input.delete(),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char('u') if ctrl => self.input.kill_to_start(),
            KeyCode::Char('w') if ctrl => self.input.delete_word(),
            KeyCode::Char(_) if ctrl || key.modifiers.contains(KeyModifiers::ALT) => {}
            KeyCode::Char(c) => self.input.insert(c),
            KeyCode::Enter => return self.submit(),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.older(),
            KeyCode::Down => self.input.newer(),
            KeyCode::PageUp => self.scroll += self.page.saturating_sub(1).max(1),
            KeyCode::PageDown => {
                self.scroll = self
                    .scroll
                    .saturating_sub(self.page.saturating_sub(1).max(1));
            }
            KeyCode::Esc => self.scroll = 0,
            _ => {}
        }
        None
    }

    /// Enter: sends the line, or runs the command. A line that cannot be used stays in the
    /// input, with the reason shown.
    fn submit(&mut self) -> Option<Action> {
        let line = match command::parse(&self.input.text()) {
            Ok(line) => line,
            Err(e) => {
                self.say(Tone::Alarm, format!("!! {e}"));
                return None;
            }
        };
        self.scroll = 0;
        match line {
            Line::Empty => None,
            Line::Message(_) if self.peer.is_none() => {
                self.say(
                    Tone::Alarm,
                    format!("!! {}", command::CommandError::NoConversation),
                );
                None
            }
            Line::Message(text) => {
                self.input.take();
                let to = self.peer.clone()?;
                let mut parts = vec![
                    self.when(Some(self.now)),
                    ("→ ".into(), Tone::Me),
                    (printable(to.as_str()), Tone::Peer),
                    (": ".into(), Tone::Plain),
                    (shown_body(&text), Tone::Plain),
                ];
                parts.push(("  (sending…)".into(), Tone::Dim));
                let entry = self.push(parts);
                let own = (to.to_string(), text.clone());
                self.own_sends.push(own.clone());
                let mut params = json!({"to": to.to_string(), "text": text});
                if self.is_room(&to) {
                    params["muc"] = json!(true);
                }
                Some(self.call(Purpose::Send { entry, own }, "send", params))
            }
            Line::Command(c) => {
                self.input.take();
                self.run(c)
            }
        }
    }

    fn run(&mut self, c: Command) -> Option<Action> {
        match &c {
            Command::Help => {
                for line in HELP {
                    self.say(Tone::Dim, (*line).to_owned());
                }
                return None;
            }
            Command::Quit => return Some(Action::Quit),
            Command::To(jid) => {
                self.peer = Some(jid.clone());
                let said = if self.is_room(jid) {
                    room_hint(jid)
                } else {
                    format!(
                        "talking to {} now: Enter sends to them",
                        printable(jid.as_str())
                    )
                };
                self.say(Tone::Dim, said);
                return Some(self.history(jid.clone(), command::HISTORY_SHOWN));
            }
            _ => {}
        }
        match command::request(&c, self.peer.as_ref()) {
            Ok(Some((method, params))) => {
                let purpose = match c {
                    Command::History(_) => match self.peer.clone() {
                        Some(jid) => Purpose::History { jid },
                        None => Purpose::Show,
                    },
                    _ => Purpose::Show,
                };
                Some(self.call(purpose, method, params))
            }
            Ok(None) => None,
            Err(e) => {
                self.say(Tone::Alarm, format!("!! {e}"));
                None
            }
        }
    }

    /// The call that fetches the last `limit` messages with `jid`.
    fn history(&mut self, jid: BareJid, limit: usize) -> Action {
        let params = json!({"jid": jid.to_string(), "limit": limit});
        self.call(Purpose::History { jid }, "history", params)
    }

    /// A step of a comparison of short authentication strings the agent published: an
    /// offer, the words to compare, or its end.
    fn comparison_step(&mut self, sas: &serde_json::Map<String, Value>) {
        let text = |k: &str| printable(sas.get(k).and_then(Value::as_str).unwrap_or("?"));
        let (jid, fingerprint) = (text("jid"), text("fingerprint"));
        // Its first 8 characters name it (the agent takes them for the whole id).
        let id: String = text("comparison").chars().take(8).collect();
        let device = sas.get("device").and_then(Value::as_u64).unwrap_or(0);
        match sas.get("step").and_then(Value::as_str) {
            Some("offered") => self.say(
                Tone::Caution,
                format!(
                    "-- device {device} of {jid} (fingerprint {fingerprint}) asks to compare \
                     short authentication strings: /sas accept {id}"
                ),
            ),
            Some("words") => {
                let words: Vec<String> = sas
                    .get("words")
                    .and_then(Value::as_array)
                    .map(|w| w.iter().filter_map(Value::as_str).map(printable).collect())
                    .unwrap_or_default();
                self.say(
                    Tone::Caution,
                    format!(
                        "-- device {device} of {jid} (fingerprint {fingerprint}) shows these \
                         words if nobody is in between:"
                    ),
                );
                self.say(Tone::Good, format!("    {}", words.join("  ")));
                self.say(
                    Tone::Caution,
                    format!("   the same on both devices, in order? /sas yes {id} or /sas no {id}"),
                );
            }
            Some("cancelled") => self.say(
                Tone::Alarm,
                format!(
                    "!! the comparison with device {device} of {jid} ended: {}; nothing was \
                     verified",
                    text("reason")
                ),
            ),
            _ => self.say(
                Tone::Dim,
                format!("-- a comparison message from device {device} of {jid} was passed over"),
            ),
        }
    }

    /// The agent answered call `tag`.
    pub(super) fn on_answer(&mut self, tag: u64, answer: Result<Shown, String>) {
        let Some(purpose) = self.waiting.remove(&tag) else {
            return;
        };
        match (purpose, answer) {
            (Purpose::Send { entry, .. }, Ok(sent)) => self.sent(entry, &sent),
            (Purpose::Send { entry, own }, Err(e)) => {
                // No news of it will come.
                if let Some(i) = self.own_sends.iter().position(|o| *o == own) {
                    self.own_sends.remove(i);
                }
                self.set_status(
                    entry,
                    (format!("  ✗ NOT SENT: {}", printable(&e)), Tone::Alarm),
                );
            }
            (Purpose::History { jid }, Ok(history)) => self.show_history(&jid, &history, false),
            (Purpose::Show, Ok(shown)) => {
                for line in shown.text {
                    self.say(Tone::Dim, printable(&line));
                }
            }
            (_, Err(e)) => self.say(Tone::Alarm, format!("!! {}", printable(&e))),
        }
    }

    fn set_status(&mut self, entry: u64, status: (String, Tone)) {
        if let Some(e) = self.entries.iter_mut().rev().find(|e| e.id == entry) {
            if let Some(last) = e.parts.last_mut() {
                *last = status;
            }
        }
    }

    fn sent(&mut self, entry: u64, sent: &Shown) {
        let j = &sent.json;
        let devices = j["devices"].as_array().map_or(0, Vec::len);
        let status = if j["encrypted"] == true {
            (
                format!("  ✓ {}, {devices} device(s)", suites_of(j, "encrypted")),
                Tone::Good,
            )
        } else {
            ("  SENT IN CLEAR (encryption is off)".into(), Tone::Alarm)
        };
        self.set_status(entry, status);
        // The new devices and the devices left out, as `hush send` words them.
        for line in sent.text.iter().skip(1) {
            self.say(Tone::Caution, format!("!! {}", printable(line)));
        }
    }

    /// What the agent holds of the conversation with `jid`; `at_start`: shown before the
    /// live messages, which then skip what it holds.
    pub(super) fn show_history(&mut self, jid: &BareJid, history: &Shown, at_start: bool) {
        let items = history.json["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let who = printable(jid.as_str());
        if items.is_empty() {
            self.say(Tone::Dim, format!("── no messages with {who} yet ──"));
            return;
        }
        self.say(
            Tone::Dim,
            format!("── the last {} message(s) with {who} ──", items.len()),
        );
        for item in &items {
            let outgoing = item["direction"] == "out";
            let at = item["at"].as_u64();
            let mut parts = vec![self.when(at)];
            let device = item["device"].as_u64().unwrap_or(0);
            if outgoing {
                parts.push(("→ ".into(), Tone::Me));
                parts.push((printable(item["to"].as_str().unwrap_or("?")), Tone::Peer));
                if device != u64::from(self.me.1) {
                    parts.push((format!(" (from your device {device})"), Tone::Dim));
                }
            } else {
                parts.push((printable(item["from"].as_str().unwrap_or("?")), Tone::Peer));
                parts.push((format!(" [device {device}]"), Tone::Dim));
            }
            match (item["body"].as_str(), item["error"].as_str()) {
                (Some(body), error) => {
                    if item["encrypted"] != true {
                        parts.push((" [UNENCRYPTED]".into(), Tone::Alarm));
                    }
                    if let Some(e) = error {
                        parts.push((format!(" [{}]", printable(e)), Tone::Alarm));
                    }
                    parts.push((": ".into(), Tone::Plain));
                    // A shared file's link holds its key: history shows that it was a file.
                    match hush_files::Link::parse(body) {
                        Ok(link) => parts.push((
                            format!(
                                "file {} (`hush history --json` has its link for `hush fetch`)",
                                printable(link.file_name().unwrap_or("?"))
                            ),
                            Tone::Plain,
                        )),
                        Err(_) => parts.push((shown_body(body), Tone::Plain)),
                    }
                    if at_start && !outgoing {
                        if let (Some(from), Some(at)) = (item["from"].as_str(), at) {
                            self.in_history.push((from.to_owned(), at, body.to_owned()));
                        }
                    }
                }
                (None, Some(error)) => {
                    parts.push((format!(" !! {}", printable(error)), Tone::Alarm));
                }
                (None, None) => continue,
            }
            self.push(parts);
        }
        self.say(Tone::Dim, "── now ──".to_owned());
    }

    /// The agent is subscribed; the first `backlog` messages it hands over arrived while
    /// nobody was shown them (they may be in the history shown first), the rest are new.
    pub(super) fn on_live(&mut self, backlog: usize) {
        self.link = Link::Live;
        self.backlog_left = backlog;
        if backlog == 0 {
            self.in_history.clear();
        }
    }

    /// The link to the agent was lost.
    pub(super) fn on_lost(&mut self, why: &str) {
        self.say(
            Tone::Alarm,
            format!(
                "!! the agent went away ({}): nothing more arrives here; leave with Ctrl-C \
                 (what arrives meanwhile is in `hush history`)",
                printable(why)
            ),
        );
        self.link = Link::Lost(why.to_owned());
    }

    /// A line the program would have written to standard error (a warning, the log).
    pub(super) fn on_note(&mut self, line: &str) {
        self.say(Tone::Caution, format!("-- {}", printable(line)));
    }

    /// News that a message was sent through the agent (the send's report, with `body` and
    /// `at`): shown when another client sent it.
    pub(super) fn on_sent(&mut self, s: &Value) {
        let to = s["to"].as_str().unwrap_or("?");
        let body = s["body"].as_str().unwrap_or("");
        if let Some(i) = self
            .own_sends
            .iter()
            .position(|(t, b)| t == to && b == body)
        {
            self.own_sends.remove(i);
            return;
        }
        let mut parts = vec![
            self.when(s["at"].as_u64()),
            ("→ ".into(), Tone::Me),
            (printable(to), Tone::Peer),
            (" (by another hush command)".into(), Tone::Dim),
            (": ".into(), Tone::Plain),
            (shown_body(body), Tone::Plain),
        ];
        let devices = s["devices"].as_array().map_or(0, Vec::len);
        parts.push(if s["encrypted"] == true {
            (
                format!("  ✓ {}, {devices} device(s)", suites_of(s, "?")),
                Tone::Good,
            )
        } else {
            ("  SENT IN CLEAR".into(), Tone::Alarm)
        });
        self.push(parts);
    }

    /// A message notification from the agent (see `DeliveryReport`'s JSON).
    pub(super) fn on_message(&mut self, m: &Value) {
        let from = m["from"].as_str().unwrap_or("?");
        let device = m["device"].as_u64().unwrap_or(0);
        let at = m["at"].as_u64();
        let body = m["body"].as_str();
        if self.backlog_left > 0 {
            self.backlog_left -= 1;
            if let (Some(at), Some(body)) = (at, body) {
                let key = (from.to_owned(), at, body.to_owned());
                if let Some(i) = self.in_history.iter().position(|k| *k == key) {
                    // Shown above, in the history.
                    self.in_history.swap_remove(i);
                    return;
                }
            }
            if self.backlog_left == 0 {
                self.in_history.clear();
            }
        }
        let who = printable(from);
        if m["notice"] == "room_changed" {
            // A room removed us or stopped being private: said with the room's name.
            let room = m["room"].as_str().unwrap_or(from);
            let what = m["warning"].as_str().unwrap_or("the room changed");
            self.say(
                Tone::Alarm,
                format!("!! [{}] {}", printable(room), printable(what)),
            );
            return;
        }
        if let Some(w) = m["warning"].as_str() {
            self.say(Tone::Caution, format!("!! WARNING: {}", printable(w)));
        }
        if let Some(fp) = m["new_key"].as_str() {
            self.say(
                Tone::Caution,
                format!(
                    "!! NEW KEY: device {device} of {who} uses a key you have not seen before, \
                     fingerprint {fp}: compare it with theirs, then /trust {fp}"
                ),
            );
        }
        if let Some(atm) = m["trust_message"].as_object() {
            let applied: Vec<String> = atm["applied"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|k| {
                            format!(
                                "{} {} {}",
                                printable(k["jid"].as_str().unwrap_or("?")),
                                k["fingerprint"].as_str().unwrap_or("?"),
                                k["trust"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let held = atm["held"].as_u64().unwrap_or(0);
            self.say(
                Tone::Caution,
                format!(
                    "-- trust message from device {device} of {who}: {}{}",
                    if applied.is_empty() {
                        "no change".to_owned()
                    } else {
                        applied.join("; ")
                    },
                    if held > 0 {
                        format!("; {held} held until you verify that device")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        // A comparison's step comes alone; one riding on a text is passed over, the text shown.
        if let Some(sas) = m["sas"].as_object() {
            self.comparison_step(sas);
            if body.is_none() {
                return;
            }
        }
        let mut parts = vec![self.when(at)];
        if let Some(error) = m["error"].as_str() {
            parts.push((format!("!! {}", printable(error)), Tone::Alarm));
            self.push(parts);
            return;
        }
        let Some(body) = body else {
            return;
        };
        let ours = from == self.me.0;
        let to = m["to"].as_str().unwrap_or("?");
        // A room message belongs to the room's conversation, from its sender there.
        let room = m["room"].as_str();
        let conversation = room.unwrap_or(from);
        let current = self
            .peer
            .as_ref()
            .is_some_and(|p| p.as_str() == conversation);
        if ours {
            // Sent by another device of ours (a carbon, or our message in a room).
            parts.push(("→ ".into(), Tone::Me));
            parts.push((printable(room.unwrap_or(to)), Tone::Peer));
            parts.push((format!(" (from your device {device})"), Tone::Dim));
        } else {
            let tone = if current { Tone::Peer } else { Tone::Stranger };
            let label = match room {
                Some(room) => format!(
                    "[{}] {} <{who}>",
                    printable(room),
                    printable(m["nick"].as_str().unwrap_or("?"))
                ),
                None => who.clone(),
            };
            parts.push((label, tone));
        }
        if m["encrypted"] == true {
            let trust = m["trust"].as_str().unwrap_or("undecided");
            let tone = match trust {
                "verified" => Tone::Good,
                "distrusted" => Tone::Alarm,
                _ => Tone::Caution,
            };
            parts.push((format!(" [device {device}"), Tone::Dim));
            parts.push((format!(", {}", m["ns"].as_str().unwrap_or("?")), Tone::Dim));
            parts.push((format!(", {trust}"), tone));
            parts.push(("]".into(), Tone::Dim));
        } else {
            parts.push((" [UNENCRYPTED]".into(), Tone::Alarm));
        }
        parts.push((": ".into(), Tone::Plain));
        // A shared file shows as what became of it (the agent saved it, or why not), never
        // as its link, which holds the key.
        match m["file"].as_object() {
            Some(file) => {
                // A text sent with the file (not just its link) is shown too.
                if let Some(caption) = crate::commands::files::caption(body) {
                    parts.push((shown_body(caption), Tone::Plain));
                    parts.push((" — ".into(), Tone::Dim));
                }
                parts.push((file_line(file), Tone::Plain));
            }
            None => parts.push((shown_body(body), Tone::Plain)),
        }
        if m["delayed"] == true {
            parts.push(("  (delayed)".into(), Tone::Dim));
        }
        if !ours && !current {
            parts.push((
                format!("  (/to {} to answer)", printable(conversation)),
                Tone::Dim,
            ));
        }
        self.push(parts);
    }

    /// The newest screen rows of the entries, newest first, `width` columns wide: whole
    /// entries, until there are at least `count` rows (or no more entries). Each entry starts
    /// a row, and every row that continues one starts with the continuation mark.
    fn rows(&self, width: usize, count: usize) -> Vec<Vec<(String, Tone)>> {
        let mut rows = Vec::new();
        for entry in self.entries.iter().rev() {
            let mut wrapped = wrap(&entry.parts, width);
            wrapped.reverse();
            rows.extend(wrapped);
            if rows.len() >= count {
                break;
            }
        }
        rows
    }

    /// Draws the chat: a title row, the messages, a status row and the input row.
    pub(super) fn draw(&mut self, frame: &mut Frame<'_>) {
        let [title, messages, status, input] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        self.page = usize::from(messages.height);
        let peer = self.peer.as_ref().map_or_else(
            || "nobody yet (/to JID)".to_owned(),
            |p| printable(p.as_str()),
        );
        let head = format!(
            " hush chat · {} (device {}) ⇄ {peer} · times in UTC",
            printable(&self.me.0),
            self.me.1
        );
        frame.render_widget(
            Paragraph::new(head).style(Style::new().add_modifier(Modifier::REVERSED)),
            title,
        );

        let width = usize::from(messages.width).max(10);
        let height = usize::from(messages.height);
        self.width = width;
        if self.scroll == 0 {
            self.below = 0;
        }
        // The newest rows, as many as the view needs (not every entry's: a long history
        // would make each draw slow); not scrolled past the oldest row.
        let mut rows = self.rows(width, self.scroll + height);
        if rows.len() < self.scroll + height {
            self.scroll = rows.len().saturating_sub(height);
        }
        rows.truncate(self.scroll + height);
        let rows: Vec<_> = rows.into_iter().skip(self.scroll).rev().collect();
        // The newest at the bottom.
        let mut lines: Vec<ScreenLine<'_>> =
            vec![ScreenLine::raw(""); height.saturating_sub(rows.len())];
        lines.extend(rows.into_iter().map(|row| {
            ScreenLine::from(
                row.into_iter()
                    .map(|(text, tone)| Span::styled(text, tone.style()))
                    .collect::<Vec<_>>(),
            )
        }));
        frame.render_widget(Paragraph::new(lines), messages);

        let (state, tone) = match &self.link {
            Link::Starting => ("catching up…".to_owned(), Tone::Caution),
            Link::Live => ("live".to_owned(), Tone::Good),
            Link::Lost(why) => (format!("agent gone: {}", printable(why)), Tone::Alarm),
        };
        let mut bar = vec![Span::styled(format!(" {state} "), tone.style())];
        let sending = self
            .waiting
            .values()
            .filter(|p| matches!(p, Purpose::Send { .. }))
            .count();
        if sending > 0 {
            bar.push(Span::styled(
                format!("· sending {sending} "),
                Tone::Caution.style(),
            ));
        }
        if self.scroll > 0 {
            let new = if self.below > 0 {
                format!("{} new rows below, ", self.below)
            } else {
                String::new()
            };
            bar.push(Span::styled(
                format!("· {} rows up, {new}Esc returns ", self.scroll),
                Tone::Caution.style(),
            ));
        }
        bar.push(Span::styled(
            "· Enter sends · /help · PgUp/PgDn scroll · Ctrl-C leaves",
            Tone::Dim.style(),
        ));
        frame.render_widget(Paragraph::new(ScreenLine::from(bar)), status);

        let prompt = "> ";
        let (text, cursor) = self
            .input
            .view(usize::from(input.width).saturating_sub(prompt.len()));
        frame.render_widget(Paragraph::new(format!("{prompt}{text}")), input);
        let x = input.x + u16::try_from(prompt.len() + cursor).unwrap_or(u16::MAX);
        frame.set_cursor_position(Position::new(
            x.min(input.right().saturating_sub(1)),
            input.y,
        ));
    }
}

/// A message body as shown: printable, and cut after [`MAX_SHOWN`] characters.
fn shown_body(body: &str) -> String {
    match body.char_indices().nth(MAX_SHOWN) {
        None => printable(body),
        Some((at, _)) => format!(
            "{} … ({} more bytes: `hush history` shows the whole message)",
            printable(&body[..at]),
            body.len() - at
        ),
    }
}

/// `parts` broken into rows of at most `width` columns. The text is already printable: its
/// line breaks start continuation rows (see [`CONTINUATION`]), and so does a row that is full.
fn wrap(parts: &[(String, Tone)], width: usize) -> Vec<Vec<(String, Tone)>> {
    let mark = &CONTINUATION[1..];
    let mut rows = vec![Vec::new()];
    let mut used = 0;
    let push = |rows: &mut Vec<Vec<(String, Tone)>>, c: char, tone: Tone| {
        let Some(row) = rows.last_mut() else { return };
        match row.last_mut() {
            Some((text, t)) if *t == tone => text.push(c),
            _ => row.push((c.to_string(), tone)),
        }
    };
    let start_row = |rows: &mut Vec<Vec<(String, Tone)>>| {
        rows.push(vec![(mark.to_owned(), Tone::Dim)]);
        mark.len()
    };
    for (text, tone) in parts {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\n' {
                // A line break inside a text is always followed by the continuation mark:
                // the mark is written as the new row's start, in its own tone.
                for _ in 0..mark.len() {
                    chars.next();
                }
                used = start_row(&mut rows);
                continue;
            }
            let c = if c == '\t' { ' ' } else { c };
            // The most the terminal may give it (two for anything not ASCII): a row never
            // runs into the next, whatever the terminal's idea of an emoji or of an
            // ambiguous-width letter.
            let w = most_columns(c);
            if used + w > width {
                used = start_row(&mut rows);
            }
            push(&mut rows, c, *tone);
            used += w;
        }
    }
    rows
}

/// The suites a send report says the message went out in (a room message to members of
/// both namespaces went in each), else `unknown`.
fn suites_of(report: &Value, unknown: &str) -> String {
    let listed: Vec<&str> = report["suites"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if listed.is_empty() {
        report["ns"].as_str().unwrap_or(unknown).to_owned()
    } else {
        listed.join(" and ")
    }
}

/// What Enter does in the room `room`.
fn room_hint(room: &BareJid) -> String {
    format!(
        "{} is a room you joined: Enter sends your line to every device of every member, \
         end-to-end encrypted",
        printable(room.as_str())
    )
}

/// How a shared file shows in the chat, from the `file` object of a message notification:
/// where the agent saved it, or why it did not (with `hush fetch` to get it).
fn file_line(file: &serde_json::Map<String, Value>) -> String {
    let name = printable(file.get("name").and_then(Value::as_str).unwrap_or("a file"));
    let size = file
        .get("size")
        .and_then(Value::as_u64)
        .map(|s| format!(" ({})", crate::commands::files::human_size(s)))
        .unwrap_or_default();
    match (
        file.get("path").and_then(Value::as_str),
        file.get("error").and_then(Value::as_str),
    ) {
        (Some(path), _) => format!("file {name}{size} saved to {}", printable(path)),
        (None, Some(why)) => format!(
            "file {name}{size}, not downloaded: {} (`hush fetch` gets it; `hush recv --json` \
             shows its link)",
            printable(why)
        ),
        (None, None) => format!("file {name}{size}"),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    const NOW: u64 = 1_765_000_000; // 2025-12-06T05:46:40Z

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn type_line(chat: &mut Chat, text: &str) -> Option<Action> {
        for c in text.chars() {
            assert_eq!(chat.on_terminal(key(KeyCode::Char(c))), None);
        }
        chat.on_terminal(key(KeyCode::Enter))
    }

    fn chat_with_bob() -> Chat {
        Chat::new(
            "alice@example.org",
            11,
            Some("bob@example.net".parse().unwrap()),
            NOW,
        )
    }

    /// The screen as text rows.
    fn screen(chat: &mut Chat, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| chat.draw(f)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    fn message(from: &str, body: &str, trust: &str) -> Value {
        json!({"from": from, "to": "alice@example.org", "at": NOW - 60, "delayed": false,
               "device": 5, "ns": "omemo:2", "encrypted": true, "body": body, "error": null,
               "trust": trust, "warning": null, "new_key": null, "seq": 1})
    }

    #[test]
    fn an_incoming_message_shows_time_sender_device_and_trust() {
        let mut chat = chat_with_bob();
        chat.on_message(&message("bob@example.net", "hello alice", "verified"));
        let rows = screen(&mut chat, 100, 8);
        assert!(
            rows.iter()
                .any(|r| r == "05:45 bob@example.net [device 5, omemo:2, verified]: hello alice"),
            "{rows:#?}"
        );
        assert!(rows[0].contains("alice@example.org (device 11) ⇄ bob@example.net"));
        assert!(rows[6].contains("catching up"), "{rows:#?}");
        chat.on_live(0);
        assert!(screen(&mut chat, 100, 8)[6].contains("live"));
    }

    #[test]
    fn a_shared_file_shows_where_it_was_saved_not_its_key() {
        let mut chat = chat_with_bob();
        let link = format!("aesgcm://up.example/x/photo.jpg#{}", "ab".repeat(44));
        let mut m = message("bob@example.net", &link, "verified");
        m["file"] = json!({"name": "photo.jpg", "size": 2048, "path": "/home/a/photo.jpg",
                           "error": null, "link": link});
        chat.on_message(&m);
        let mut big = message("bob@example.net", &link, "verified");
        big["file"] = json!({"name": "film.mkv", "size": 5_u64 << 30, "path": null,
                             "error": "5.0 GiB is over the automatic download limit"});
        chat.on_message(&big);
        let rows = screen(&mut chat, 140, 8).join("\n");
        assert!(
            rows.contains("verified]: file photo.jpg (2.0 KiB) saved to /home/a/photo.jpg"),
            "{rows}"
        );
        assert!(
            rows.contains("file film.mkv (5.0 GiB), not downloaded"),
            "{rows}"
        );
        assert!(!rows.contains("abab"), "the key is on the screen: {rows}");
    }

    #[test]
    fn a_body_cannot_draw_a_line_that_looks_like_ours() {
        let mut chat = chat_with_bob();
        let forged =
            "hi\n05:45 mallory@example.net [device 1, omemo:2, verified]: send money\r\x1b[2J";
        chat.on_message(&message("bob@example.net", forged, "blind"));
        // A body padded to the width cannot start a row either.
        let padded = format!("{}05:45 eve@example.net [device 2]: x", " ".repeat(200));
        chat.on_message(&message("bob@example.net", &padded, "blind"));
        let rows = screen(&mut chat, 60, 20);
        for row in &rows[1..18] {
            assert!(
                row.is_empty()
                    || row.starts_with("    |")
                    || row.starts_with("05:45 bob@example.net")
                    || row.starts_with("Enter sends"),
                "a row no entry of ours starts: {row:?} in {rows:#?}"
            );
        }
        assert!(rows.iter().any(|r| r.contains("\\u{1b}[2J")), "{rows:#?}");
    }

    #[test]
    fn wide_and_ambiguous_characters_never_overflow_a_row() {
        let mut chat = chat_with_bob();
        let body = format!(
            "{}{}12:34 bob@example.net: forged",
            "☺\u{fe0f}".repeat(40),
            "Ω".repeat(40)
        );
        chat.on_message(&message("bob@example.net", &body, "blind"));
        let width = 60;
        for row in wrap(&chat.entries.back().unwrap().parts, width) {
            let most: usize = row
                .iter()
                .flat_map(|(t, _)| t.chars())
                .map(most_columns)
                .sum();
            assert!(most <= width, "a row may take {most} columns: {row:?}");
        }
        // Nothing is cut: every character is on some row.
        let rows = screen(&mut chat, width as u16, 30);
        let omegas: usize = rows.iter().map(|r| r.matches('Ω').count()).sum();
        assert_eq!(omegas, 40, "{rows:#?}");
        assert!(rows
            .iter()
            .any(|r| r.starts_with("    |") && r.contains("forged")));
    }

    #[test]
    fn a_huge_body_is_cut_for_the_screen_and_says_where_the_rest_is() {
        let mut chat = chat_with_bob();
        chat.on_message(&message("bob@example.net", &"y".repeat(300_000), "blind"));
        let rows = screen(&mut chat, 100, 10);
        let all = rows.concat();
        assert!(
            all.contains("(292000 more bytes: `hush history` s") && all.contains("hows the whole"),
            "{rows:#?}"
        );
    }

    #[test]
    fn a_typed_line_is_sent_to_the_peer_and_its_outcome_shown() {
        let mut chat = chat_with_bob();
        let Some(Action::Call(call)) = type_line(&mut chat, "hi bob") else {
            panic!("no call")
        };
        assert_eq!(call.method, "send");
        assert_eq!(
            call.params,
            json!({"to": "bob@example.net", "text": "hi bob"})
        );
        let rows = screen(&mut chat, 80, 6);
        assert!(
            rows.iter()
                .any(|r| r.ends_with("→ bob@example.net: hi bob  (sending…)")),
            "{rows:#?}"
        );
        let sent = Shown {
            json: json!({"encrypted": true, "ns": "omemo:2", "devices": [{}, {}]}),
            text: vec![
                "sent to bob@example.net (omemo:2) …".into(),
                "warning: not encrypted for device 9 of bob@example.net: no keys".into(),
            ],
        };
        chat.on_answer(call.tag, Ok(sent));
        let rows = screen(&mut chat, 80, 6);
        assert!(
            rows.iter()
                .any(|r| r.ends_with(": hi bob  ✓ omemo:2, 2 device(s)")),
            "{rows:#?}"
        );
        assert!(rows
            .iter()
            .any(|r| r.starts_with("!! warning: not encrypted for device 9")));

        // A failure is shown on the message itself.
        let Some(Action::Call(call)) = type_line(&mut chat, "again") else {
            panic!("no call")
        };
        chat.on_answer(call.tag, Err("no answer to a ping in time".into()));
        let rows = screen(&mut chat, 80, 6);
        assert!(
            rows.iter()
                .any(|r| r.ends_with(": again  ✗ NOT SENT: no answer to a ping in time")),
            "{rows:#?}"
        );
    }

    #[test]
    fn what_other_clients_send_shows_and_our_own_sends_show_once() {
        let mut chat = chat_with_bob();
        let Some(Action::Call(call)) = type_line(&mut chat, "mine") else {
            panic!("no call")
        };
        let news = |body: &str| {
            json!({"sent": true, "to": "bob@example.net", "ns": "omemo:2", "encrypted": true,
                   "devices": [{}], "body": body, "at": NOW})
        };
        chat.on_sent(&news("mine"));
        chat.on_answer(
            call.tag,
            Ok(Shown {
                json: news("mine"),
                text: vec![],
            }),
        );
        chat.on_sent(&news("from a script"));
        let rows = screen(&mut chat, 100, 8);
        assert_eq!(
            rows.iter().filter(|r| r.contains(": mine")).count(),
            1,
            "{rows:#?}"
        );
        assert!(
            rows.iter().any(|r| {
                r.ends_with(
                "→ bob@example.net (by another hush command): from a script  ✓ omemo:2, 1 device(s)"
            )
            }),
            "{rows:#?}"
        );
    }

    #[test]
    fn commands_become_calls_and_mistakes_are_never_sent() {
        let mut chat = chat_with_bob();
        assert_eq!(type_line(&mut chat, "/tset hello"), None);
        let rows = screen(&mut chat, 100, 6);
        assert!(
            rows.iter().any(|r| r.starts_with("!! no command /tset")),
            "{rows:#?}"
        );
        // The line stays, to be corrected.
        assert!(rows[5].starts_with("> /tset hello"), "{rows:#?}");
        chat.on_terminal(ctrl('u'));
        let Some(Action::Call(call)) = type_line(&mut chat, "/status") else {
            panic!("no call")
        };
        assert_eq!(
            (call.method, call.params),
            ("status", json!({"jid": "bob@example.net"}))
        );
        let Some(Action::Call(call)) = type_line(&mut chat, "//me waves") else {
            panic!("no call")
        };
        assert_eq!(call.params["text"], "/me waves");
        assert_eq!(type_line(&mut chat, "/quit"), Some(Action::Quit));
        assert_eq!(chat.on_terminal(ctrl('c')), Some(Action::Quit));
        assert_eq!(chat.on_terminal(ctrl('d')), Some(Action::Quit));
    }

    #[test]
    fn without_a_peer_nothing_is_sent_until_one_is_chosen() {
        let mut chat = Chat::new("alice@example.org", 11, None, NOW);
        assert_eq!(type_line(&mut chat, "hello?"), None);
        let rows = screen(&mut chat, 100, 6);
        assert!(rows.iter().any(|r| r.contains("/to JID")), "{rows:#?}");
        chat.on_terminal(ctrl('u'));
        let Some(Action::Call(call)) = type_line(&mut chat, "/to carol@example.com") else {
            panic!("no call")
        };
        assert_eq!(call.method, "history");
        assert_eq!(chat.peer().map(|p| p.as_str()), Some("carol@example.com"));
        chat.on_answer(
            call.tag,
            Ok(Shown {
                json: json!({"messages": []}),
                text: vec![],
            }),
        );
        let rows = screen(&mut chat, 100, 8);
        assert!(rows
            .iter()
            .any(|r| r.contains("no messages with carol@example.com yet")));
    }

    #[test]
    fn history_at_the_start_is_not_shown_again_when_handed_over() {
        let mut chat = chat_with_bob();
        let history = Shown {
            json: json!({"messages": [
                {"at": NOW - 60, "direction": "in", "from": "bob@example.net",
                 "to": "alice@example.org", "device": 5, "encrypted": true, "body": "offline one"},
                {"at": NOW - 30, "direction": "out", "from": "alice@example.org",
                 "to": "bob@example.net", "device": 12, "encrypted": true, "body": "from my phone"},
            ]}),
            text: vec![],
        };
        chat.show_history(&"bob@example.net".parse().unwrap(), &history, true);
        // The agent hands over two messages nobody was shown: the first is in the history.
        chat.on_live(2);
        chat.on_message(&message("bob@example.net", "offline one", "blind"));
        chat.on_message(&message("bob@example.net", "offline one", "blind"));
        let rows = screen(&mut chat, 100, 12);
        let shown = rows.iter().filter(|r| r.contains("offline one")).count();
        // Once from history, once more for the second (a different message, same text).
        assert_eq!(shown, 2, "{rows:#?}");
        // After the backlog, a new message is never taken for one of the history, even with
        // the same sender, second and text.
        chat.on_message(&message("bob@example.net", "offline one", "blind"));
        let rows = screen(&mut chat, 100, 14);
        let shown = rows.iter().filter(|r| r.contains("offline one")).count();
        assert_eq!(shown, 3, "{rows:#?}");
        assert!(rows
            .iter()
            .any(|r| r.contains("→ bob@example.net (from your device 12): from my phone")));
    }

    #[test]
    fn failures_and_strangers_and_clear_text_are_marked() {
        let mut chat = chat_with_bob();
        let mut failed = message("mallory@example.com", "", "undecided");
        failed["body"] = Value::Null;
        failed["error"] =
            json!("a message from device 5 of mallory@example.com could not be decrypted");
        chat.on_message(&failed);
        let mut clear = message("carol@example.com", "psst", "undecided");
        clear["encrypted"] = json!(false);
        chat.on_message(&clear);
        let rows = screen(&mut chat, 120, 8);
        assert!(
            rows.iter()
                .any(|r| r.starts_with("05:45 !! a message from device 5")),
            "{rows:#?}"
        );
        assert!(
            rows.iter().any(|r| {
                r
                == "05:45 carol@example.com [UNENCRYPTED]: psst  (/to carol@example.com to answer)"
            }),
            "{rows:#?}"
        );
    }

    #[test]
    fn page_up_scrolls_back_and_escape_returns() {
        let mut chat = chat_with_bob();
        for i in 0..30 {
            chat.on_message(&message("bob@example.net", &format!("number {i}"), "blind"));
        }
        let rows = screen(&mut chat, 80, 10);
        assert!(rows[7].ends_with("number 29"), "{rows:#?}");
        chat.on_terminal(key(KeyCode::PageUp));
        let rows = screen(&mut chat, 80, 10);
        assert!(rows[7].ends_with("number 23"), "{rows:#?}");
        assert!(rows[8].contains("6 rows up"), "{rows:#?}");
        for _ in 0..20 {
            chat.on_terminal(key(KeyCode::PageUp));
        }
        let rows = screen(&mut chat, 80, 10);
        assert!(
            rows[1].starts_with("Enter sends"),
            "the oldest row stops the scroll: {rows:#?}"
        );
        chat.on_terminal(key(KeyCode::Esc));
        assert!(screen(&mut chat, 80, 10)[7].ends_with("number 29"));

        // Scrolled up, what is read stays in place as messages arrive below.
        chat.on_terminal(key(KeyCode::PageUp));
        let before = screen(&mut chat, 80, 10);
        chat.on_message(&message("bob@example.net", "a new one", "blind"));
        let after = screen(&mut chat, 80, 10);
        assert_eq!(before[1..8], after[1..8]);
        assert!(after[8].contains("1 new rows below"), "{after:#?}");
        chat.on_terminal(key(KeyCode::Esc));
        assert!(screen(&mut chat, 80, 10)[7].ends_with("a new one"));
    }

    #[test]
    fn a_room_message_shows_the_room_nick_and_sender_and_a_line_goes_to_the_room() {
        let room: BareJid = "team@muc.example.org".parse().unwrap();
        let mut chat = Chat::new("alice@example.org", 11, Some(room.clone()), NOW);
        chat.set_rooms(["team@muc.example.org".to_owned()]);
        let mut m = message("bob@example.net", "hi room", "blind");
        m["room"] = json!("team@muc.example.org");
        m["nick"] = json!("Bob");
        m["to"] = json!("team@muc.example.org");
        chat.on_message(&m);
        // A direct message from Bob is another conversation: it says how to answer him.
        chat.on_message(&message("bob@example.net", "just you", "blind"));
        let rows = screen(&mut chat, 120, 10);
        assert!(
            rows.iter().any(|r| r
                == "05:45 [team@muc.example.org] Bob <bob@example.net> [device 5, omemo:2, blind]: hi room"),
            "{rows:#?}"
        );
        assert!(
            rows.iter()
                .any(|r| r.contains("just you  (/to bob@example.net to answer)")),
            "{rows:#?}"
        );
        assert!(
            rows.iter().any(|r| r.contains("is a room you joined")),
            "{rows:#?}"
        );
        let Some(Action::Call(call)) = type_line(&mut chat, "hello all") else {
            panic!("no call")
        };
        assert_eq!(
            call.params,
            json!({"to": "team@muc.example.org", "text": "hello all", "muc": true})
        );
        let sent = Shown {
            json: json!({"encrypted": true, "ns": "omemo:2",
                         "suites": ["omemo:2", "omemo:legacy"], "devices": [{}, {}]}),
            text: Vec::new(),
        };
        chat.on_answer(call.tag, Ok(sent));
        let rows = screen(&mut chat, 120, 10);
        assert!(
            rows.iter().any(|r| r.ends_with(
                "→ team@muc.example.org: hello all  ✓ omemo:2 and omemo:legacy, 2 device(s)"
            )),
            "{rows:#?}"
        );
    }

    #[test]
    fn a_room_notice_names_the_room() {
        let mut chat = chat_with_bob();
        chat.on_message(
            &json!({"from": "team@muc.example.org", "room": "team@muc.example.org",
            "notice": "room_changed", "body": null, "error": null, "device": 0,
            "warning": "ROOM CHANGED: the room removed you (you were banned, status 301)"}),
        );
        let rows = screen(&mut chat, 120, 8);
        assert!(
            rows.iter().any(|r| r == "!! [team@muc.example.org] ROOM CHANGED: the room removed you (you were banned, status 301)"),
            "{rows:#?}"
        );
    }
}
