//! `hush contacts`: the roster, with presence subscriptions. A contact subscribed both ways sees
//! us online and gets our device-list changes as they happen, and we get theirs.

use hush_store::SqliteStore;
use hush_xmpp::{BareJid, Contact, Hush, Subscription};
use serde_json::json;

use super::connect;
use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};
use crate::terminal::printable;

/// What `hush contacts` does.
pub(crate) enum Change {
    /// Lists the contacts.
    List,
    /// Adds one.
    Add(BareJid),
    /// Removes one.
    Remove(BareJid),
}

/// `hush contacts …` on its own connection.
pub(super) async fn run(home: &Home, change: &Change, out: Printer) -> Result<()> {
    let (mut hush, _) = connect(home).await?;
    let done = report(&mut hush, change).await;
    hush.close().await?;
    for shown in done? {
        // The line for an empty list is for people only.
        if !(out.is_json() && shown.json.as_object().is_some_and(|o| o.is_empty())) {
            out.show(&shown)?;
        }
    }
    Ok(())
}

/// Does `change` and says what: a list is one report per contact, then one per account that
/// asked to see us without being a contact.
pub(crate) async fn report(hush: &mut Hush<SqliteStore>, change: &Change) -> Result<Vec<Shown>> {
    match change {
        Change::List => {
            let contacts = hush.contacts().await?;
            let mut shown: Vec<Shown> = contacts.iter().map(contact).collect();
            for jid in hush.presence_requests() {
                let who = printable(jid.as_str());
                shown.push(Shown {
                    json: json!({"jid": jid.to_string(), "asks": true}),
                    text: vec![format!(
                        "{who} asks to see you (not a contact): `hush contacts add {who}` accepts"
                    )],
                });
            }
            if shown.is_empty() {
                shown.push(Shown {
                    json: json!({}),
                    text: vec!["no contacts yet: `hush contacts add JID` adds one".into()],
                });
            }
            Ok(shown)
        }
        Change::Add(jid) => {
            hush.add_contact(jid).await?;
            Ok(vec![Shown {
                json: json!({"added": jid.to_string()}),
                text: vec![format!(
                    "added {jid}: asked to see their presence and device changes; their request \
                     to see yours is accepted while this account is online (`hush agent`, \
                     `recv`, `chat`)"
                )],
            }])
        }
        Change::Remove(jid) => {
            hush.remove_contact(jid).await?;
            Ok(vec![Shown {
                json: json!({"removed": jid.to_string()}),
                text: vec![format!(
                    "removed {jid}: neither of you sees the other's presence any more"
                )],
            }])
        }
    }
}

/// One contact, as `hush contacts` shows it.
fn contact(c: &Contact) -> Shown {
    let how = match (c.subscription, c.asked) {
        (Subscription::Both, _) => {
            "both ways: you see each other online and get each other's device changes"
        }
        (Subscription::To, _) => "you see them; they do not see you",
        (Subscription::From, true) => "they see you; you asked to see them, no answer yet",
        (Subscription::From, false) => "they see you; you do not see them",
        (Subscription::None, true) => "you asked to see them, no answer yet",
        (Subscription::None, false) => "neither sees the other",
    };
    let name = c
        .name
        .as_deref()
        .map(|n| format!(" ({})", printable(n)))
        .unwrap_or_default();
    Shown {
        json: json!({"jid": c.jid.to_string(), "name": c.name, "subscription": c.subscription.name(),
                     "asked": c.asked}),
        text: vec![format!("{}{name}: {how}", printable(c.jid.as_str()))],
    }
}
