//! Contacts: the roster and presence subscriptions (RFC 6121). A contact whose presence we
//! are subscribed to sends us its device-list changes as PEP notifications (with our
//! `+notify` caps) and sees us online; one subscribed to ours does the same with ours.
//!
//! Adding a contact puts it on the roster and asks for its presence. A request for our
//! presence from a contact on the roster is approved when it arrives (the server hands the
//! pending ones over when we go online); one from anybody else is left unanswered, and said,
//! until the user adds that account (which approves it).

use std::collections::HashSet;

use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use xmpp_parsers::roster::{Ask, Item, Roster, Subscription as WireSubscription};

/// Pending requests for our presence from accounts not on the roster, kept at most.
pub(crate) const MAX_REQUESTS: usize = 64;

/// Who sees whose presence (and device-list changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Neither.
    None,
    /// We see theirs.
    To,
    /// They see ours.
    From,
    /// Both ways.
    Both,
}

impl Subscription {
    /// The RFC 6121 name.
    pub fn name(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
}

/// One roster entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The account.
    pub jid: BareJid,
    /// The name we gave it, if any.
    pub name: Option<String>,
    /// Who sees whose presence.
    pub subscription: Subscription,
    /// We asked for their presence and they have not answered yet.
    pub asked: bool,
}

impl Contact {
    fn from_item(item: Item) -> Option<Self> {
        let subscription = match item.subscription {
            WireSubscription::None => Subscription::None,
            WireSubscription::To => Subscription::To,
            WireSubscription::From => Subscription::From,
            WireSubscription::Both => Subscription::Both,
            // Only in a push that removes the item.
            WireSubscription::Remove => return None,
        };
        Some(Self {
            jid: item.jid,
            name: item.name,
            subscription,
            asked: item.ask == Ask::Subscribe,
        })
    }
}

/// The roster as the server gave it: its contacts, sorted by JID.
pub(crate) fn contacts(roster: Roster) -> Vec<Contact> {
    let mut contacts: Vec<Contact> = roster
        .items
        .into_iter()
        .filter_map(Contact::from_item)
        .collect();
    contacts.sort_by(|a, b| a.jid.as_str().cmp(b.jid.as_str()));
    contacts
}

/// The roster request (get).
pub(crate) fn get() -> Roster {
    Roster {
        ver: None,
        items: Vec::new(),
    }
}

/// A roster set adding `jid` (or keeping it, with no name).
pub(crate) fn add(jid: &BareJid) -> Roster {
    one(jid, WireSubscription::None)
}

/// A roster set removing `jid`: the server also ends the subscriptions both ways.
pub(crate) fn remove(jid: &BareJid) -> Roster {
    one(jid, WireSubscription::Remove)
}

fn one(jid: &BareJid, subscription: WireSubscription) -> Roster {
    Roster {
        ver: None,
        items: vec![Item {
            jid: jid.clone(),
            name: None,
            subscription,
            ask: Ask::None,
            groups: Vec::new(),
            approved: None,
        }],
    }
}

/// A subscription presence of `kind` to `jid`.
pub(crate) fn presence(kind: PresenceType, jid: &BareJid) -> Presence {
    let mut p = Presence::new(kind);
    p.to = Some(Jid::from(jid.clone()));
    p
}

/// What the client knows of the roster, to answer requests for our presence: the JIDs on it
/// (learnt when first needed, kept current by the server's pushes), and the requests from
/// others.
#[derive(Default)]
pub(crate) struct Book {
    /// The roster's JIDs, once fetched.
    known: Option<HashSet<BareJid>>,
    /// Accounts not on the roster that asked for our presence, oldest first.
    requests: Vec<BareJid>,
}

impl Book {
    /// Whether the roster was fetched.
    pub(crate) fn is_known(&self) -> bool {
        self.known.is_some()
    }

    /// Learns the roster.
    pub(crate) fn learn(&mut self, contacts: &[Contact]) {
        self.known = Some(contacts.iter().map(|c| c.jid.clone()).collect());
    }

    /// Whether `jid` is on the roster (false until it was fetched).
    pub(crate) fn has(&self, jid: &BareJid) -> bool {
        self.known.as_ref().is_some_and(|k| k.contains(jid))
    }

    /// Applies a roster push: an item added, changed or removed.
    pub(crate) fn push(&mut self, roster: &Roster) {
        for item in &roster.items {
            if let Some(known) = self.known.as_mut() {
                if item.subscription == WireSubscription::Remove {
                    known.remove(&item.jid);
                } else {
                    known.insert(item.jid.clone());
                }
            }
            if item.subscription != WireSubscription::Remove {
                self.requests.retain(|j| *j != item.jid);
            }
        }
    }

    /// Keeps a request for our presence from `jid`, not on the roster; `false` when it was
    /// kept already (said once).
    pub(crate) fn request(&mut self, jid: BareJid) -> bool {
        if self.requests.contains(&jid) {
            return false;
        }
        if self.requests.len() >= MAX_REQUESTS {
            self.requests.remove(0);
        }
        self.requests.push(jid);
        true
    }

    /// The requests kept.
    pub(crate) fn requests(&self) -> &[BareJid] {
        &self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    #[test]
    fn a_roster_reads_as_sorted_contacts_and_pushes_keep_the_book_current() {
        let xml = "<query xmlns='jabber:iq:roster'>\
            <item jid='zed@example.org' subscription='both'/>\
            <item jid='bob@example.net' subscription='none' ask='subscribe' name='Bob'/>\
            <item jid='gone@example.net' subscription='remove'/></query>";
        let roster = Roster::try_from(xml.parse::<hush_proto::Element>().unwrap()).unwrap();
        let list = contacts(roster);
        assert_eq!(
            list,
            vec![
                Contact {
                    jid: jid("bob@example.net"),
                    name: Some("Bob".into()),
                    subscription: Subscription::None,
                    asked: true
                },
                Contact {
                    jid: jid("zed@example.org"),
                    name: None,
                    subscription: Subscription::Both,
                    asked: false
                },
            ]
        );
        let mut book = Book::default();
        assert!(!book.has(&jid("bob@example.net")));
        assert!(book.request(jid("carol@example.com")));
        assert!(!book.request(jid("carol@example.com")));
        book.learn(&list);
        assert!(book.has(&jid("bob@example.net")));
        book.push(&remove(&jid("bob@example.net")));
        assert!(!book.has(&jid("bob@example.net")));
        book.push(&add(&jid("carol@example.com")));
        assert!(book.has(&jid("carol@example.com")));
        assert!(book.requests().is_empty(), "added: no longer a request");
        for i in 0..100 {
            book.request(jid(&format!("u{i}@example.com")));
        }
        assert_eq!(book.requests().len(), MAX_REQUESTS);
    }
}
