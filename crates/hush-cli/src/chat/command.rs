//! What a line typed in `hush chat` means: a message for the conversation, or a `/command`.
//! A line starting with `/` is never sent as a message (a mistyped command would otherwise
//! go to the contact); `//` sends a line that starts with `/`.

use hush_xmpp::BareJid;
use serde_json::{json, Value};
use thiserror::Error;

use crate::commands::bare;

/// How many of the last messages with a contact the chat shows when it opens the
/// conversation, and `/history` without a count.
pub(super) const HISTORY_SHOWN: usize = 20;

/// The commands, for `/help`.
pub(super) const HELP: &[&str] = &[
    "/to JID              talk to JID, or to a room you joined (Enter sends to them)",
    "/history [N]         the last N (20) messages with them",
    "/status              who can read the conversation, and who could add a reader",
    "/devices [JID]       their devices (or JID's), fingerprints and trust",
    "/fingerprint         our own device and fingerprint",
    "/qr [light]          our verification URI as a QR code (for a light background: light)",
    "/trust DEVICE        mark their device (id or fingerprint) verified",
    "/distrust DEVICE     refuse their device: it gets no keys any more",
    "/verify URI          verify devices from an xmpp:…?omemo-sid-… URI",
    "/sas DEVICE          compare short authentication strings with their device",
    "/sas accept [ID]     take a comparison another device asked for",
    "/sas yes|no [ID]     say whether the words match on both devices",
    "/reset [DEVICE]      replace broken sessions with them (all, or one device)",
    "/help                this list",
    "/quit                leave (Ctrl-C and Ctrl-D too)",
    "//text               send a message starting with /text",
];

/// A typed line.
#[derive(Debug, PartialEq)]
pub(super) enum Line {
    /// Nothing but spaces.
    Empty,
    /// A message for the conversation.
    Message(String),
    /// A command.
    Command(Command),
}

/// A `/command`.
#[derive(Debug, PartialEq)]
pub(super) enum Command {
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// `/to JID`.
    To(BareJid),
    /// `/history [N]`.
    History(usize),
    /// `/status`.
    Status,
    /// `/devices [JID]`.
    Devices(Option<BareJid>),
    /// `/fingerprint`.
    Fingerprint,
    /// `/qr [light]`: the verification URI as a QR code (`true`: for a light background).
    Qr(bool),
    /// `/trust DEVICE`.
    Trust(String),
    /// `/distrust DEVICE`.
    Distrust(String),
    /// `/verify URI`.
    Verify(String),
    /// `/reset [DEVICE]`.
    Reset(Option<u32>),
    /// `/sas …`: a comparison of short authentication strings.
    Sas(Sas),
}

/// What `/sas` asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Sas {
    /// `/sas DEVICE`: start comparing with their device.
    Start(u32),
    /// `/sas accept [ID]`: take an offer (the only one, or ID).
    Accept(Option<String>),
    /// `/sas yes|no [ID]`: the words match, or not.
    Answer(bool, Option<String>),
}

/// Why a typed line is not understood.
#[derive(Debug, Error, PartialEq)]
pub(super) enum CommandError {
    /// No such command.
    #[error("no command /{0}: /help lists them (//{0} sends the line as a message)")]
    Unknown(String),
    /// A command without its argument.
    #[error("/{command} needs {what} (/help)")]
    Missing {
        /// The command.
        command: &'static str,
        /// What it needs.
        what: &'static str,
    },
    /// A command given something it does not take.
    #[error("/{command}: {why}")]
    Bad {
        /// The command.
        command: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A message or command about the conversation, with none chosen.
    #[error("no conversation yet: `/to JID` chooses whom to talk to")]
    NoConversation,
}

/// Reads a typed line.
pub(super) fn parse(line: &str) -> Result<Line, CommandError> {
    if line.trim().is_empty() {
        return Ok(Line::Empty);
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Ok(Line::Message(format!("/{literal}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Line::Message(line.to_owned()));
    };
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or_default();
    let arg = words.next();
    let extra = words.next();
    let bad = |command: &'static str, why: String| CommandError::Bad { command, why };
    let jid =
        |command: &'static str, text: &str| bare(text).map_err(|e| bad(command, e.to_string()));
    let parsed = match name {
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        "to" => Command::To(jid(
            "to",
            arg.ok_or(CommandError::Missing {
                command: "to",
                what: "a JID",
            })?,
        )?),
        "history" => Command::History(match arg {
            None => HISTORY_SHOWN,
            Some(n) => n
                .parse()
                .map_err(|_| bad("history", format!("`{n}` is not a count")))?,
        }),
        "status" => Command::Status,
        "devices" => Command::Devices(arg.map(|a| jid("devices", a)).transpose()?),
        "fingerprint" => Command::Fingerprint,
        "qr" => match arg {
            None | Some("dark") => Command::Qr(false),
            Some("light") => Command::Qr(true),
            Some(_) => return Err(bad("qr", "takes `light` or `dark` (the background)".into())),
        },
        "trust" | "distrust" => {
            if arg.is_none() {
                return Err(CommandError::Missing {
                    command: if name == "trust" { "trust" } else { "distrust" },
                    what: "a device id or fingerprint",
                });
            }
            // A fingerprint may be typed in groups of eight hex digits, as `hush devices` shows
            // it; anything else is one device.
            let words: Vec<&str> = command.split_whitespace().skip(1).collect();
            let groups = words
                .iter()
                .all(|w| w.len() == 8 && w.bytes().all(|b| b.is_ascii_hexdigit()));
            if words.len() > 1 && !groups {
                return Err(bad(
                    if name == "trust" { "trust" } else { "distrust" },
                    "takes one device id, or a fingerprint (in groups of eight if you like)".into(),
                ));
            }
            let device: String = words.concat();
            if name == "trust" {
                Command::Trust(device)
            } else {
                Command::Distrust(device)
            }
        }
        "verify" => Command::Verify(
            arg.ok_or(CommandError::Missing {
                command: "verify",
                what: "a verification URI",
            })?
            .to_owned(),
        ),
        "reset" => Command::Reset(match arg {
            None => None,
            Some(d) => Some(
                d.parse()
                    .map_err(|_| bad("reset", format!("`{d}` is not a device id")))?,
            ),
        }),
        "sas" => Command::Sas(sas(arg, extra, words.next())?),
        other => return Err(CommandError::Unknown(other.to_owned())),
    };
    let takes_rest = matches!(
        parsed,
        Command::Trust(_) | Command::Distrust(_) | Command::Sas(_)
    );
    if extra.is_some() && !takes_rest {
        return Err(bad(
            command_name(&parsed),
            "takes one argument at most".into(),
        ));
    }
    Ok(Line::Command(parsed))
}

/// `/sas` with its words.
fn sas(arg: Option<&str>, id: Option<&str>, extra: Option<&str>) -> Result<Sas, CommandError> {
    let bad = |why: &str| CommandError::Bad {
        command: "sas",
        why: why.to_owned(),
    };
    let arg = arg.ok_or(CommandError::Missing {
        command: "sas",
        what: "a device id, accept, yes or no",
    })?;
    if extra.is_some() {
        return Err(bad("takes two words at most"));
    }
    let id = id.map(str::to_owned);
    Ok(match arg {
        "accept" => Sas::Accept(id),
        "yes" | "y" => Sas::Answer(true, id),
        "no" | "n" => Sas::Answer(false, id),
        device => {
            if id.is_some() {
                return Err(bad("takes one device id"));
            }
            Sas::Start(device.parse().map_err(|_| {
                bad(&format!(
                    "`{device}` is not a device id (nor accept, yes or no)"
                ))
            })?)
        }
    })
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Help => "help",
        Command::Quit => "quit",
        Command::To(_) => "to",
        Command::History(_) => "history",
        Command::Status => "status",
        Command::Devices(_) => "devices",
        Command::Fingerprint => "fingerprint",
        Command::Qr(_) => "qr",
        Command::Trust(_) => "trust",
        Command::Distrust(_) => "distrust",
        Command::Verify(_) => "verify",
        Command::Reset(_) => "reset",
        Command::Sas(_) => "sas",
    }
}

/// The agent method and parameters that do `command` in the conversation with `peer`; `None`
/// for the commands the chat does itself (help, quit, choosing the peer).
pub(super) fn request(
    command: &Command,
    peer: Option<&BareJid>,
) -> Result<Option<(&'static str, Value)>, CommandError> {
    let peer = || {
        peer.map(ToString::to_string)
            .ok_or(CommandError::NoConversation)
    };
    Ok(Some(match command {
        Command::Help | Command::Quit | Command::To(_) => return Ok(None),
        Command::History(limit) => ("history", json!({"jid": peer()?, "limit": limit})),
        Command::Status => ("status", json!({"jid": peer()?})),
        Command::Devices(Some(jid)) => ("devices", json!({"jid": jid.to_string()})),
        Command::Devices(None) => ("devices", json!({"jid": peer()?})),
        Command::Fingerprint => ("fingerprint", json!({})),
        Command::Qr(light) => (
            "fingerprint",
            json!({"qr": if *light { "light" } else { "dark" }}),
        ),
        Command::Trust(device) => ("trust", json!({"jid": peer()?, "device": device})),
        Command::Distrust(device) => ("distrust", json!({"jid": peer()?, "device": device})),
        Command::Verify(uri) => ("verify", json!({"uri": uri})),
        Command::Reset(device) => ("reset", json!({"jid": peer()?, "device": device})),
        Command::Sas(Sas::Start(device)) => {
            ("sas_start", json!({"jid": peer()?, "device": device}))
        }
        Command::Sas(Sas::Accept(id)) => ("sas_accept", json!({"comparison": id})),
        Command::Sas(Sas::Answer(matched, id)) => {
            ("sas_answer", json!({"comparison": id, "match": matched}))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    #[test]
    fn lines_are_messages_unless_they_start_with_a_slash() {
        assert_eq!(parse("  "), Ok(Line::Empty));
        assert_eq!(parse("hello /to"), Ok(Line::Message("hello /to".into())));
        assert_eq!(parse("//me waves"), Ok(Line::Message("/me waves".into())));
        assert_eq!(
            parse("/to bob@example.net"),
            Ok(Line::Command(Command::To(jid("bob@example.net"))))
        );
        assert_eq!(parse("/history"), Ok(Line::Command(Command::History(20))));
        assert_eq!(parse("/history 5"), Ok(Line::Command(Command::History(5))));
        assert_eq!(
            parse("/reset 7"),
            Ok(Line::Command(Command::Reset(Some(7))))
        );
        assert_eq!(
            parse("/trust 05a1b2c3 d4e5f6a7"),
            Ok(Line::Command(Command::Trust("05a1b2c3d4e5f6a7".into())))
        );
        assert_eq!(
            parse("/distrust 1234"),
            Ok(Line::Command(Command::Distrust("1234".into())))
        );
        // Two device ids are not one: `/trust 1 2` must not trust device 12.
        assert!(matches!(
            parse("/trust 1 2"),
            Err(CommandError::Bad {
                command: "trust",
                ..
            })
        ));
    }

    #[test]
    fn a_mistyped_command_is_refused_never_sent() {
        assert_eq!(parse("/tset hi"), Err(CommandError::Unknown("tset".into())));
        assert!(matches!(
            parse("/to"),
            Err(CommandError::Missing { command: "to", .. })
        ));
        assert!(matches!(
            parse("/to bob@example.net/phone"),
            Err(CommandError::Bad { command: "to", .. })
        ));
        assert!(matches!(
            parse("/history many"),
            Err(CommandError::Bad {
                command: "history",
                ..
            })
        ));
        assert!(matches!(
            parse("/reset x"),
            Err(CommandError::Bad {
                command: "reset",
                ..
            })
        ));
        assert!(matches!(
            parse("/status now please"),
            Err(CommandError::Bad {
                command: "status",
                ..
            })
        ));
        let shown = CommandError::Unknown("tset".into()).to_string();
        assert!(shown.contains("//tset"), "{shown}");
    }

    #[test]
    fn commands_about_the_conversation_need_one() {
        let bob = jid("bob@example.net");
        assert_eq!(
            request(&Command::Status, None),
            Err(CommandError::NoConversation)
        );
        assert_eq!(
            request(&Command::Status, Some(&bob)),
            Ok(Some(("status", json!({"jid": "bob@example.net"}))))
        );
        assert_eq!(
            request(&Command::Reset(None), Some(&bob)),
            Ok(Some((
                "reset",
                json!({"jid": "bob@example.net", "device": null})
            )))
        );
        assert_eq!(
            request(&Command::Fingerprint, None),
            Ok(Some(("fingerprint", json!({}))))
        );
        assert_eq!(request(&Command::Quit, Some(&bob)), Ok(None));
        assert_eq!(parse("/qr"), Ok(Line::Command(Command::Qr(false))));
        assert_eq!(parse("/qr light"), Ok(Line::Command(Command::Qr(true))));
        assert!(parse("/qr big").is_err());
        assert_eq!(
            request(&Command::Qr(true), None),
            Ok(Some(("fingerprint", json!({"qr": "light"}))))
        );
    }

    #[test]
    fn comparisons_are_started_taken_and_answered() {
        let bob = jid("bob@example.net");
        assert_eq!(
            parse("/sas 42"),
            Ok(Line::Command(Command::Sas(Sas::Start(42))))
        );
        assert_eq!(
            request(&Command::Sas(Sas::Start(42)), Some(&bob)),
            Ok(Some((
                "sas_start",
                json!({"jid": "bob@example.net", "device": 42})
            )))
        );
        assert_eq!(
            request(&Command::Sas(Sas::Start(42)), None),
            Err(CommandError::NoConversation)
        );
        assert_eq!(
            parse("/sas accept"),
            Ok(Line::Command(Command::Sas(Sas::Accept(None))))
        );
        // Taking an offer or answering needs no conversation: the comparison names the device.
        assert_eq!(
            request(&Command::Sas(Sas::Accept(Some("x1".into()))), None),
            Ok(Some(("sas_accept", json!({"comparison": "x1"}))))
        );
        assert_eq!(
            parse("/sas yes"),
            Ok(Line::Command(Command::Sas(Sas::Answer(true, None))))
        );
        assert_eq!(
            request(&parse_sas("/sas no x1"), None),
            Ok(Some((
                "sas_answer",
                json!({"comparison": "x1", "match": false})
            )))
        );
        for wrong in [
            "/sas",
            "/sas maybe",
            "/sas 42 43",
            "/sas yes x1 x2",
            "/sas -1",
        ] {
            assert!(
                matches!(
                    parse(wrong),
                    Err(CommandError::Missing { command: "sas", .. }
                        | CommandError::Bad { command: "sas", .. })
                ),
                "{wrong}"
            );
        }
    }

    fn parse_sas(line: &str) -> Command {
        match parse(line) {
            Ok(Line::Command(c)) => c,
            other => panic!("{line}: {other:?}"),
        }
    }
}
