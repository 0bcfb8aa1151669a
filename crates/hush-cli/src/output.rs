//! The one printer of every command: each thing a command reports is a [`Report`], shown as
//! one JSON object per line with `--json`, else as lines of text.
//!
//! Text that came from the network (bodies, JIDs, errors quoting a stanza) is made
//! [`printable`](crate::terminal::printable) by the report that holds it, and every text line
//! is broken to the terminal's width (see [`crate::terminal::fit`]), so nobody can forge or
//! overwrite a line of ours.

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use hush_proto::policy::Properties;
use hush_store::{Direction, StoredMessage, Trust};
use hush_xmpp::Delivery;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::advice::{self, Me};
use crate::error::{CliError, Result};
use crate::terminal::{self, printable};

/// Something a command reports.
pub(crate) trait Report {
    /// The `--json` form: one object.
    fn json(&self) -> Value;
    /// The text form: lines (none for a report with nothing to say in text).
    fn text(&self) -> Vec<String>;
}

/// Prints reports on standard output, as JSON or text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printer {
    json: bool,
}

impl Printer {
    /// A printer for `--json` (`true`) or text.
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether it prints JSON.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Prints one report. Fails when standard output is closed (`hush recv | head -1`) or
    /// cannot be written: the command then stops instead of reading on for nobody.
    pub(crate) fn show(self, report: &impl Report) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let written = if self.json {
            writeln!(out, "{}", report.json())
        } else {
            report.text().iter().try_for_each(|line| {
                writeln!(out, "{}", terminal::fit(line, terminal::stdout_width()))
            })
        };
        written.and_then(|()| out.flush()).map_err(CliError::Output)
    }
}

/// Where the lines for standard error go instead while a full-screen program (`hush chat`)
/// owns the terminal: written there, they would be drawn over.
static DIVERTED: Mutex<Option<UnboundedSender<String>>> = Mutex::new(None);

/// Sends what [`note`] and [`note_raw`] write (the log included) to `to` instead of standard
/// error, until called with `None`.
pub(crate) fn divert_notes(to: Option<UnboundedSender<String>>) {
    *DIVERTED.lock().unwrap_or_else(PoisonError::into_inner) = to;
}

/// Hands `line` to the diverted notes, if they are; gives it back when they are not.
fn diverted(line: &str) -> bool {
    let guard = DIVERTED.lock().unwrap_or_else(PoisonError::into_inner);
    match guard.as_ref() {
        Some(to) => to.send(line.to_owned()).is_ok(),
        None => false,
    }
}

/// Writes a line to standard error (status, warnings, the final error), fitted to the
/// terminal. A closed standard error is no reason to stop: the line is dropped.
pub(crate) fn note(line: &str) {
    if diverted(line) {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        terminal::fit(line, terminal::stderr_width())
    );
}

/// Writes a line to standard error as it is (JSON, which needs no fitting: it is one line for
/// programs). A closed standard error is no reason to stop.
pub(crate) fn note_raw(line: &str) {
    if diverted(line) {
        return;
    }
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A report given as its two forms.
#[derive(Default)]
pub(crate) struct Shown {
    /// The JSON object.
    pub(crate) json: Value,
    /// The text lines.
    pub(crate) text: Vec<String>,
}

impl Shown {
    /// Both forms of `report`, taken now.
    pub(crate) fn of(report: &impl Report) -> Self {
        Self {
            json: report.json(),
            text: report.text(),
        }
    }
}

impl Report for Shown {
    fn json(&self) -> Value {
        self.json.clone()
    }
    fn text(&self) -> Vec<String> {
        self.text.clone()
    }
}

/// The `security` object of `--json` output.
pub(crate) fn properties_json(p: &Properties) -> Value {
    json!({
        "confidentiality": p.confidentiality,
        "integrity": p.integrity,
        "authentication": p.authentication.name(),
        "forward_secrecy": p.forward_secrecy,
        "deniability": p.deniability,
        "non_repudiation": false,
        "replay_protection": p.replay_protection,
    })
}

/// The trust state's name; a key we have not seen yet counts as undecided.
pub(crate) fn trust_name(t: Option<Trust>) -> &'static str {
    t.map_or("undecided", Trust::as_str)
}

/// A message as it arrives (or a notice): `hush recv`, and notices before a send.
pub(crate) struct DeliveryReport<'a> {
    /// What arrived.
    pub(crate) delivery: &'a Delivery,
    /// Who we are, for advice addressed to the sender.
    pub(crate) me: &'a Me,
    /// What became of the file it shares, when it shares one and a download was tried.
    pub(crate) saved: Option<&'a crate::commands::files::Saved>,
}

impl DeliveryReport<'_> {
    fn warning(&self) -> Option<String> {
        let d = self.delivery;
        d.warning
            .as_ref()
            .map(|w| advice::warning(w, &d.from, d.device))
    }

    fn error(&self) -> Option<String> {
        let d = self.delivery;
        d.failure
            .as_ref()
            .map(|f| advice::failure(f, &d.from, d.device, self.me))
    }

    /// Who sent it, as the lines name them: in a room, the room, the nickname and the real
    /// address behind it.
    fn sender(&self) -> String {
        let d = self.delivery;
        match (&d.arrival.room, &d.arrival.nick) {
            (Some(room), Some(nick)) => format!(
                "[{}] {} <{}>",
                printable(room),
                printable(nick),
                printable(&d.from)
            ),
            _ => printable(&d.from),
        }
    }

    /// The lines of news that come before the message itself: a warning, a new key, what a
    /// trust message did.
    pub(crate) fn notices(&self) -> Vec<String> {
        let d = self.delivery;
        let from = self.sender();
        let mut lines = Vec::new();
        if let Some(w) = self.warning() {
            lines.push(format!("!! WARNING: {}", printable(&w)));
        }
        if let Some(fp) = &d.new_key {
            lines.push(format!(
                "!! NEW KEY: device {} of {from} uses a key you have not seen before, \
                 fingerprint {fp} (compare it with theirs, then `hush verify` or `hush trust`)",
                d.device
            ));
        }
        if let Some(atm) = &d.atm {
            lines.push(atm_line(atm, &from, d.device, d.trust));
        }
        lines
    }

    /// A comparison message read where no comparison runs (`recv` without an agent), or one
    /// that came with a text (comparison steps travel alone): it is passed over, and an offer
    /// says how to take the next one.
    fn comparison(&self) -> Option<Shown> {
        use crate::agent::sas::{shown, Step};
        let arrival = self.delivery.sas.as_ref()?;
        let why = match arrival.message {
            _ if !self.delivery.is_sas_notice() => {
                "it came with a text or an error, and comparison steps travel alone"
            }
            hush_proto::sas::SasMessage::Start { .. } => {
                "it asks to compare short authentication strings, and no comparison runs here: \
                 ask again while `hush sas --wait`, `hush agent` or `hush chat` runs"
            }
            _ => "no comparison runs here",
        };
        Some(shown(
            &arrival.from,
            arrival.message.id(),
            Step::PassedOver(why),
        ))
    }
}

impl Report for DeliveryReport<'_> {
    fn json(&self) -> Value {
        let d = self.delivery;
        let a = &d.arrival;
        json!({"from": d.from, "to": a.to, "at": a.at, "delayed": a.delayed, "id": a.id,
               "room": a.room, "nick": a.nick, "device": d.device, "ns": d.suite.map(|s| s.name()),
               "encrypted": d.suite.is_some(), "body": d.body, "error": self.error(),
               "failure": d.failure.as_ref().map(|f| f.kind()),
               "trust": trust_name(d.trust), "warning": self.warning(), "new_key": d.new_key,
               "notice": d.is_room_notice().then_some("room_changed"),
               "trust_message": d.atm.as_ref().map(atm_json),
               "sas": self.comparison().map(|mut c| c.json["sas"].take()),
               "file": d.file.as_ref().map(|f| crate::commands::files::describe(f, self.saved).0),
               "security": properties_json(&d.properties)})
    }

    fn text(&self) -> Vec<String> {
        let d = self.delivery;
        if d.is_room_notice() {
            let room = printable(d.arrival.room.as_deref().unwrap_or(&d.from));
            return self
                .warning()
                .map(|w| format!("!! [{room}] {}", printable(&w)))
                .into_iter()
                .collect();
        }
        let mut lines = self.notices();
        if d.is_key_notice() || d.is_trust_notice() {
            return lines;
        }
        let from = self.sender();
        if let Some(comparison) = self.comparison() {
            lines.extend(comparison.text);
            if d.is_sas_notice() {
                return lines;
            }
        }
        // A shared file shows as what became of it, not as its link (which holds the key).
        let text = d.body.as_deref().unwrap_or("");
        let body = match &d.file {
            Some(file) => {
                let about = crate::commands::files::describe(file, self.saved).1;
                // A text sent with the file (not just its link) is shown before it.
                match crate::commands::files::caption(text) {
                    Some(caption) => format!("{} — {about}", printable(caption)),
                    None => about,
                }
            }
            None => printable(text),
        };
        // When it was sent (the server's stamp) or came, as history shows it.
        let when = d
            .arrival
            .at
            .map(|at| format!("{} ", hush_wire::date::format(at)))
            .unwrap_or_default();
        lines.push(match (self.error(), d.suite) {
            (Some(e), _) => format!("{when}!! {}", printable(&e)),
            (None, Some(suite)) => format!(
                "{when}{from} (device {}, {}, {}): {body}",
                d.device,
                suite,
                trust_name(d.trust),
            ),
            (None, None) => format!("{when}{from} (UNENCRYPTED): {body}"),
        });
        lines
    }
}

/// What a trust message did, for `--json`.
fn atm_json(atm: &hush_xmpp::AtmReport) -> Value {
    json!({"applied": atm.applied.iter().map(|(jid, fp, t)| json!({"jid": jid, "fingerprint": fp,
               "trust": trust_name(Some(*t))})).collect::<Vec<_>>(),
           "held": atm.held, "ignored": atm.ignored})
}

/// What a trust message did, in one line: the keys it changed, what waits.
fn atm_line(
    atm: &hush_xmpp::AtmReport,
    from: &str,
    device: u32,
    trust: Option<hush_store::Trust>,
) -> String {
    let mut parts: Vec<String> = atm
        .applied
        .iter()
        .map(|(jid, fp, t)| format!("{} ({fp}) {}", printable(jid), trust_name(Some(*t))))
        .collect();
    if atm.held > 0 {
        parts.push(format!(
            "{} statement(s) held until you verify device {device} of {from}",
            atm.held
        ));
    }
    if atm.ignored > 0 {
        parts.push(format!("{} statement(s) ignored", atm.ignored));
    }
    if parts.is_empty() {
        parts.push("nothing new".to_owned());
    }
    format!(
        "-- TRUST MESSAGE from device {device} of {from} ({}): {}",
        trust_name(trust),
        parts.join("; ")
    )
}

/// One entry of `hush history`.
pub(crate) struct HistoryReport<'a> {
    /// The entry.
    pub(crate) message: &'a StoredMessage,
    /// Who we are, for advice addressed to the sender.
    pub(crate) me: &'a Me,
}

impl HistoryReport<'_> {
    fn error(&self) -> Option<String> {
        let m = self.message;
        m.failure
            .as_ref()
            .map(|f| advice::failure(f, &m.sender, m.sender_device, self.me))
    }

    fn body(&self) -> Option<String> {
        self.message
            .body
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

impl Report for HistoryReport<'_> {
    fn json(&self) -> Value {
        let m = self.message;
        let outgoing = m.direction == Direction::Out;
        // An outgoing message went to the conversation's peer; an incoming one came to us.
        let to = if outgoing { &m.peer } else { &self.me.jid };
        json!({"at": m.at, "direction": if outgoing { "out" } else { "in" },
               "from": m.sender, "to": to, "device": m.sender_device,
               "ns": m.encrypted.then(|| m.suite.name()), "encrypted": m.encrypted,
               "body": self.body(), "error": self.error(),
               "failure": m.failure.as_ref().map(|f| f.kind())})
    }

    fn text(&self) -> Vec<String> {
        let m = self.message;
        let when = hush_wire::date::format(m.at);
        // `→ peer` for what we sent (naming the device when it was another of ours), `← sender`
        // for what we received.
        let (arrow, who) = if m.direction == Direction::Out {
            let other_device = if m.sender_device != self.me.device {
                format!(" (from your device {})", m.sender_device)
            } else {
                String::new()
            };
            ("→", format!("{}{other_device}", printable(&m.peer)))
        } else {
            ("←", printable(&m.sender))
        };
        let clear = if m.encrypted { "" } else { " (UNENCRYPTED)" };
        match (self.body(), self.error()) {
            // A message of ours the server returned: its text, and that it was not delivered.
            (Some(b), Some(e)) => vec![format!(
                "{when} {arrow} {who}{clear} (!! {}): {}",
                printable(&e),
                printable(&b)
            )],
            (Some(b), None) => vec![format!("{when} {arrow} {who}{clear}: {}", printable(&b))],
            (None, Some(e)) => vec![format!("{when} {arrow} !! {}", printable(&e))],
            (None, None) => Vec::new(),
        }
    }
}
