//! `hush join`, `hush leave`, `hush rooms` and `hush members`: group chats (XEP-0045 rooms)
//! with OMEMO. A room Hush creates is members-only and non-anonymous, as OMEMO requires; its
//! owners and admins decide who is a member, and every member's devices get the keys of every
//! message.

use hush_store::{Affiliation, Room, SqliteStore, Store};
use hush_xmpp::{BareJid, Hush};
use serde_json::json;

use super::connect;
use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};
use crate::terminal::printable;

/// What a rooms command does.
pub(crate) enum Change {
    /// Joins (or creates) a room.
    Join {
        /// The room.
        room: BareJid,
        /// The nickname (default: the one used before, else the account's name).
        nick: Option<String>,
    },
    /// Leaves a room and forgets it.
    Leave(BareJid),
    /// Lists the joined rooms.
    List,
    /// Lists a room's members.
    Members(BareJid),
    /// Gives an account an affiliation with a room (`None`: takes it away).
    Affiliate {
        /// The room.
        room: BareJid,
        /// The account.
        jid: BareJid,
        /// The affiliation.
        affiliation: Option<Affiliation>,
    },
}

impl Change {
    /// Whether it needs the connection (a list is read from the store).
    fn online(&self) -> bool {
        !matches!(self, Change::List | Change::Members(_))
    }
}

/// A rooms command on its own connection (or from the store, for the lists).
pub(super) async fn run(home: &Home, change: &Change, out: Printer) -> Result<()> {
    let shown = if change.online() {
        let (mut hush, _) = connect(home).await?;
        let done = report(&mut hush, change).await;
        hush.close().await?;
        done?
    } else {
        let store = home.open_store_to_read()?;
        listed(&store, change)?
    };
    for s in shown {
        // The line for an empty list is for people only.
        if !(out.is_json() && s.json.as_object().is_some_and(|o| o.is_empty())) {
            out.show(&s)?;
        }
    }
    Ok(())
}

/// Does `change` on a connection and says what, one report per line.
pub(crate) async fn report(hush: &mut Hush<SqliteStore>, change: &Change) -> Result<Vec<Shown>> {
    match change {
        Change::Join { room, nick } => {
            let joined = hush.join_room(room, nick.as_deref()).await?;
            let mut lines = vec![format!(
                "joined {} as {}",
                printable(&joined.jid),
                printable(&joined.nick)
            )];
            lines.extend(room_privacy(&joined));
            Ok(vec![Shown {
                json: room_json(&joined),
                text: lines,
            }])
        }
        Change::Leave(room) => {
            hush.leave_room(room).await?;
            Ok(vec![Shown {
                json: json!({"left": room.to_string()}),
                text: vec![format!(
                    "left {room}: it is no longer entered; its history stays (`hush history {room}`)"
                )],
            }])
        }
        Change::Affiliate {
            room,
            jid,
            affiliation,
        } => {
            let after = hush.set_room_member(room, jid, *affiliation).await?;
            let what = match affiliation {
                Some(a) => format!(
                    "{jid} is now {} {} of {room}: their devices get the keys of every message from the next one on (not of earlier ones)",
                    article(*a),
                    a.as_str()
                ),
                None => format!(
                    "{jid} is no longer a member of {room}: their devices get no key from the next message on"
                ),
            };
            Ok(vec![Shown {
                json: room_json(&after),
                text: vec![what],
            }])
        }
        Change::List | Change::Members(_) => listed(hush.store(), change),
    }
}

/// The lists, from the store.
pub(crate) fn listed(store: &SqliteStore, change: &Change) -> Result<Vec<Shown>> {
    match change {
        Change::Members(room) => {
            let Some(stored) = store.room(room.as_str())? else {
                return Err(hush_xmpp::XmppError::NotJoined(room.to_string()).into());
            };
            Ok(stored
                .members
                .iter()
                .map(|m| Shown {
                    json: json!({"room": stored.jid, "jid": m.jid, "affiliation": m.affiliation.as_str()}),
                    text: vec![format!("{} ({})", printable(&m.jid), m.affiliation.as_str())],
                })
                .collect())
        }
        _ => {
            let rooms = store.rooms()?;
            if rooms.is_empty() {
                return Ok(vec![Shown {
                    json: json!({}),
                    text: vec!["no rooms joined: `hush join ROOM` joins (or creates) one".into()],
                }]);
            }
            Ok(rooms
                .iter()
                .map(|r| {
                    let mut text = vec![format!(
                        "{} as {}, {} member(s)",
                        printable(&r.jid),
                        printable(&r.nick),
                        r.members.len()
                    )];
                    text.extend(room_privacy(r).into_iter().map(|l| format!("  {l}")));
                    Shown {
                        json: room_json(r),
                        text,
                    }
                })
                .collect())
        }
    }
}

fn article(a: Affiliation) -> &'static str {
    match a {
        Affiliation::Owner => "an",
        Affiliation::Admin | Affiliation::Member => "a",
    }
}

/// A room for scripts.
pub(crate) fn room_json(r: &Room) -> serde_json::Value {
    json!({"room": r.jid, "nick": r.nick, "members_only": r.config.members_only,
           "non_anonymous": r.config.non_anonymous, "members_known": r.members_known,
           "encrypted_ok": r.config.members_only && r.config.non_anonymous && r.members_known,
           "joined_at": r.joined_at,
           "members": r.members.iter().map(|m| json!({"jid": m.jid, "affiliation": m.affiliation.as_str()})).collect::<Vec<_>>()})
}

/// What the room's privacy means for its messages, when it is not what OMEMO needs.
fn room_privacy(r: &Room) -> Vec<String> {
    let mut lines = Vec::new();
    if !r.config.non_anonymous {
        lines.push(
            "warning: the room is anonymous (members cannot see each other's addresses): \
             nothing encrypted can be sent there; its owner must make real addresses visible \
             to everyone"
                .to_owned(),
        );
    }
    if !r.config.members_only {
        lines.push(
            "warning: the room is open to non-members: nothing encrypted can be sent there; \
             its owner must make it members-only"
                .to_owned(),
        );
    }
    if !r.members_known {
        lines.push(
            "warning: the room does not show its member list to this account: nothing \
             encrypted can be sent there"
                .to_owned(),
        );
    }
    lines
}
