//! `hush send`: one message, encrypted for every device of the contact and our own others —
//! or in clear, only when the user asked.

use hush_store::{SqliteStore, Store};
use hush_xmpp::{BareJid, Hush, SendOptions, SendReport};
use serde_json::json;

use super::{connect, me};
use crate::advice;
use crate::agent::client::Agent;
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{properties_json, DeliveryReport, Printer, Report, Shown};
use crate::terminal::printable;

/// Whom a message goes to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum To<'a> {
    /// A contact (or our own account).
    Contact(&'a BareJid),
    /// A room joined with `hush join`.
    Room(&'a BareJid),
}

impl To<'_> {
    /// The contact's or the room's JID.
    pub(crate) fn jid(&self) -> &BareJid {
        match self {
            To::Contact(j) | To::Room(j) => j,
        }
    }
}

pub(super) async fn run(
    home: &Home,
    to: To<'_>,
    text: &str,
    plaintext: bool,
    out: Printer,
) -> Result<()> {
    // A running agent holds the account: it sends.
    if let Some(agent) = Agent::find(home).await? {
        let mut agent = agent.printing_for(out);
        let params = json!({"to": to.jid().to_string(), "text": text, "plaintext": plaintext,
                            "muc": matches!(to, To::Room(_))});
        let sent = agent.call("send", params).await?;
        out.show(&sent)?;
        return partial_of(&sent);
    }
    let (mut hush, config) = connect(home).await?;
    // Found on connecting: said before anything else (the send below is safe: it builds new
    // sessions).
    if let Some(notice) = hush.take_rollback_notice() {
        out.show(&DeliveryReport {
            delivery: &notice,
            me: &me(&hush),
            saved: None,
        })?;
    }
    let sent = report(&mut hush, to, text, plaintext, config.encryption_off).await?;
    hush.close().await?;
    out.show(&sent)?;
    partial_of(&sent)
}

/// [`CliError::Partial`] when the message missed devices it was meant for (their keys could not
/// be had or used), or room members whose device lists could not be read (each counted as
/// one), so that scripts see it in the exit status; devices left out on purpose (inactive, by
/// policy) do not count.
pub(crate) fn partial_of(sent: &Shown) -> Result<()> {
    let delivered = sent.json["devices"].as_array().map_or(0, Vec::len);
    let missed = sent.json["skipped"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|d| d["failed"] == true).count())
        + sent.json["members_unreached"]
            .as_array()
            .map_or(0, Vec::len);
    if missed == 0 {
        return Ok(());
    }
    Err(CliError::Partial {
        missed,
        meant: delivered + missed,
    })
}

/// What a send did, as a contact's or a room's send reports it.
pub(crate) fn shown_report(to: To<'_>, report: SendReport) -> Shown {
    Shown::of(&Sent {
        to: to.jid(),
        room: matches!(to, To::Room(_)),
        report,
    })
}

/// Sends one message on a connection and says what it did (`global_off`: the account's off
/// switch).
pub(crate) async fn report(
    hush: &mut Hush<SqliteStore>,
    to: To<'_>,
    text: &str,
    plaintext: bool,
    global_off: bool,
) -> Result<Shown> {
    // XML 1.0 (and so XMPP) cannot carry most control characters: said plainly, before
    // anything is done.
    if let Some((at, c)) = text.chars().enumerate().find(|(_, c)| !xml_char(*c)) {
        return Err(CliError::NotXmlText {
            code: u32::from(c),
            at: at + 1,
        });
    }
    let options = SendOptions {
        plaintext,
        global_off,
    };
    let to = match to {
        To::Room(room) => {
            let report = hush.send_to_room(room, text, options).await?;
            return Ok(Shown::of(&Sent {
                to: room,
                room: true,
                report,
            }));
        }
        To::Contact(to) => to,
    };
    let report = match hush.send(to, text, options).await {
        // A note to self with no other device of ours: not "the contact has no OMEMO device".
        Err(hush_xmpp::XmppError::NotSent {
            refusal:
                hush_xmpp::Refusal::Policy {
                    missing: hush_proto::policy::Missing::NoDevice,
                    ..
                },
            ..
        }) if to == hush.jid() => {
            return Err(CliError::NoOtherDevice(to.to_string()));
        }
        // A contact who lists nothing, though we hold sessions with devices of theirs: say
        // so, and why nothing goes to those; one whose presence we do not see: say that it
        // may be why.
        Err(
            e @ hush_xmpp::XmppError::NotSent {
                refusal:
                    hush_xmpp::Refusal::Policy {
                        missing: hush_proto::policy::Missing::NoDevice,
                        ..
                    },
                ..
            },
        ) => {
            let writers = unlisted_writers(hush.store(), &to.to_string())?;
            if !writers.is_empty() {
                return Err(CliError::UnlistedWriters {
                    jid: to.to_string(),
                    devices: devices_in_words(&writers),
                });
            }
            // Not seeing their presence may be why nothing could be read. The roster is asked
            // only on this path; if it cannot be read, the refusal stands as it is.
            let sees_them = match hush.contacts().await {
                Ok(contacts) => contacts.iter().any(|c| {
                    c.jid == *to
                        && matches!(
                            c.subscription,
                            hush_xmpp::Subscription::To | hush_xmpp::Subscription::Both
                        )
                }),
                Err(_) => true,
            };
            return Err(if sees_them {
                e.into()
            } else {
                CliError::NoDeviceUnsubscribed(to.to_string())
            });
        }
        sent => sent?,
    };
    Ok(Shown::of(&Sent {
        to,
        room: false,
        report,
    }))
}

/// The devices of `jid` this device holds a session with, in any suite: after a send found
/// no listed device, those that wrote to us unlisted or were listed before.
pub(crate) fn unlisted_writers(store: &SqliteStore, jid: &str) -> Result<Vec<u32>> {
    let mut devices = Vec::new();
    for suite in hush_proto::Suite::ALL {
        for (device, _) in store.sessions_of(suite, jid)? {
            if !devices.contains(&device) {
                devices.push(device);
            }
        }
    }
    devices.sort_unstable();
    Ok(devices)
}

/// "device 7", "devices 7 and 9", "devices 7, 9 and 12".
pub(crate) fn devices_in_words(devices: &[u32]) -> String {
    match devices {
        [one] => format!("device {one}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(u32::to_string).collect();
            format!("devices {} and {last}", init.join(", "))
        }
        [] => "no device".to_owned(),
    }
}

/// Whether XML 1.0 can carry `c` (its `Char` production).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// What a send did.
struct Sent<'a> {
    to: &'a BareJid,
    /// `to` is a room.
    room: bool,
    report: SendReport,
}

impl Report for Sent<'_> {
    fn json(&self) -> serde_json::Value {
        let r = &self.report;
        json!({"sent": true, "to": self.to.to_string(), "ns": r.suite.map(|s| s.name()),
               "encrypted": r.suite.is_some(),
               "devices": r.devices.iter().map(|(j, d)| json!({"jid": j, "device": d})).collect::<Vec<_>>(),
               "skipped": r.skipped.iter().map(|(j, d, w)| json!({"jid": j, "device": d, "why": advice::obstacle(w),
                                                                 "reason": w.kind(), "failed": w.is_failure()})).collect::<Vec<_>>(),
               "new_keys": r.new_keys.iter().map(|(j, d, f)| json!({"jid": j, "device": d, "fingerprint": f})).collect::<Vec<_>>(),
               "suites": r.suites.iter().map(|s| s.name()).collect::<Vec<_>>(),
               "room": self.room, "without_devices": r.without_devices,
               "members_added": r.members_added, "members_removed": r.members_removed,
               "members_unreached": r.members_unreached.iter().map(|(j, why)| json!({"jid": j, "why": why.to_string()})).collect::<Vec<_>>(),
               "security": properties_json(&r.properties)})
    }

    fn text(&self) -> Vec<String> {
        let (r, to) = (&self.report, self.to);
        let mut lines = vec![match r.suite {
            Some(suite) => {
                // A room message to members of both namespaces went out in each.
                let suites = if r.suites.len() > 1 {
                    r.suites
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" and ")
                } else {
                    suite.to_string()
                };
                format!(
                    "sent to {to} ({suites}), encrypted for {} device(s), authentication {}",
                    r.devices.len(),
                    r.properties.authentication
                )
            }
            None => format!("sent to {to} IN CLEAR, as you asked"),
        }];
        for (j, d, fp) in &r.new_keys {
            lines.push(format!(
                "new device {d} of {j}, fingerprint {fp}: not verified yet (compare \
                 fingerprints, then `hush verify URI`)"
            ));
        }
        for j in &r.members_added {
            lines.push(format!(
                "note: {} is a new reader of {to}: the room's member list names them since \
                 your last message there (the room's owners and admins — or its service — \
                 added them)",
                printable(j)
            ));
        }
        for j in &r.members_removed {
            lines.push(format!(
                "note: {} is no longer a member of {to}: from this message on they get no key",
                printable(j)
            ));
        }
        for (j, why) in &r.members_unreached {
            lines.push(format!(
                "warning: {}, a member of {to}, cannot read this message: {}",
                printable(j),
                printable(&why.to_string())
            ));
        }
        for j in &r.without_devices {
            lines.push(format!(
                "warning: {} is a member of {to} but announces no OMEMO device: they cannot read it",
                printable(j)
            ));
        }
        for (j, d, why) in &r.skipped {
            lines.push(format!(
                "warning: not encrypted for device {d} of {j}: {}",
                printable(&advice::obstacle(why))
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(devices: usize, skipped: &[bool]) -> Shown {
        let skipped: Vec<_> = skipped
            .iter()
            .map(|failed| json!({"device": 7, "failed": failed}))
            .collect();
        Shown {
            json: json!({"devices": vec![json!({"device": 1}); devices], "skipped": skipped}),
            text: Vec::new(),
        }
    }

    #[test]
    fn characters_xml_cannot_carry_are_found() {
        for c in ['a', '\t', '\n', '\r', 'é', '\u{fffd}', '😀'] {
            assert!(xml_char(c), "{c:?}");
        }
        for c in ['\u{0}', '\u{1b}', '\u{7}', '\u{fffe}', '\u{ffff}'] {
            assert!(!xml_char(c), "{c:?}");
        }
    }

    #[test]
    fn a_room_member_whose_device_list_could_not_be_read_makes_a_send_partial() {
        let mut shown = sent(2, &[]);
        shown.json["members_unreached"] = json!([{"jid": "carol@x", "why": "unreadable"}]);
        match partial_of(&shown) {
            Err(CliError::Partial {
                missed: 1,
                meant: 3,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_devices_that_could_not_be_reached_make_a_send_partial() {
        assert!(partial_of(&sent(2, &[])).is_ok());
        // Left out on purpose (inactive, by policy): a complete send.
        assert!(partial_of(&sent(2, &[false, false])).is_ok());
        match partial_of(&sent(2, &[true, false])) {
            Err(
                e @ CliError::Partial {
                    missed: 1,
                    meant: 3,
                },
            ) => {
                assert_eq!(e.kind().exit_code(), 6);
            }
            other => panic!("{other:?}"),
        }
    }
}
