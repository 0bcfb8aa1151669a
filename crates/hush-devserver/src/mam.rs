//! The message archive (XEP-0313, `urn:xmpp:mam:2`) of one account, in memory, and its query
//! language: the form fields `start`, `end` and `with`, and Result Set Management
//! (XEP-0059) with `max` (at most 250, 50 by default), `after` and `before` (empty `before`:
//! the last page).
//!
//! Archive ids are `PREFIX-SERIAL`: the serial is shared by every archive of the server, so ids
//! are unique and ordered; the prefix is random per server run, so a resume point a client
//! kept from another run is reported as unknown (`item-not-found`) instead of silently naming
//! some other message.

use std::collections::VecDeque;

use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element;

use crate::xml::{self, el, ns, Build};

/// Results per page unless the client asks for fewer.
pub(crate) const DEFAULT_MAX: usize = 50;
/// Results per page at most.
pub(crate) const MAX_MAX: usize = 250;
/// Entries kept per account; the oldest go first.
pub(crate) const MAX_ENTRIES: usize = 100_000;

/// One archived message.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) serial: u64,
    pub(crate) id: String,
    /// Microseconds since the epoch.
    pub(crate) stamp: u64,
    /// The other party's bare JID.
    pub(crate) with: String,
    /// The other party's JID as the message named it (full when known).
    pub(crate) peer: String,
    /// The message as archived.
    pub(crate) stanza: Element,
}

/// One account's archive, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    pub(crate) entries: VecDeque<Entry>,
}

/// A parsed archive query.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) start: Option<u64>,
    pub(crate) end: Option<u64>,
    /// A bare JID matches the conversation; a full JID only that resource.
    pub(crate) with: Option<String>,
    pub(crate) max: usize,
    pub(crate) after: Option<String>,
    /// `Some(None)`: an empty `<before/>`, the last page.
    pub(crate) before: Option<Option<String>>,
    pub(crate) flip: bool,
}

/// Why a query cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueryError {
    /// Malformed: the text says what.
    BadRequest(String),
    /// `after` or `before` names an id the archive does not have.
    ItemNotFound,
}

/// One page of results.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub(crate) items: Vec<&'a Entry>,
    /// Nothing further in the direction of the query.
    pub(crate) complete: bool,
    /// How many entries match the query's filters in all.
    pub(crate) count: usize,
    /// The position of the first item among them.
    pub(crate) index: usize,
}

impl Archive {
    /// Appends a message; returns its id.
    pub(crate) fn append(
        &mut self,
        serial: u64,
        prefix: &str,
        stamp: u64,
        with: String,
        peer: String,
        stanza: Element,
    ) -> String {
        let id = format!("{prefix}-{serial:012x}");
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            serial,
            id: id.clone(),
            stamp,
            with,
            peer,
            stanza,
        });
        id
    }

    /// The serial of the entry with this id, if the archive has it.
    fn serial_of(&self, id: &str) -> Option<u64> {
        let (_, hex) = id.rsplit_once('-')?;
        let serial = u64::from_str_radix(hex, 16).ok()?;
        let at = self
            .entries
            .binary_search_by_key(&serial, |e| e.serial)
            .ok()?;
        (self.entries[at].id == id).then_some(serial)
    }

    /// Runs a query.
    pub(crate) fn run(&self, q: &Query) -> Result<Page<'_>, QueryError> {
        let after = match &q.after {
            Some(id) => Some(self.serial_of(id).ok_or(QueryError::ItemNotFound)?),
            None => None,
        };
        let before = match &q.before {
            Some(Some(id)) => Some(self.serial_of(id).ok_or(QueryError::ItemNotFound)?),
            _ => None,
        };
        let with_full = q.with.as_deref().is_some_and(|w| w.contains('/'));
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| q.start.is_none_or(|s| e.stamp >= s))
            .filter(|e| q.end.is_none_or(|t| e.stamp <= t))
            .filter(|e| match q.with.as_deref() {
                None => true,
                Some(w) if with_full => e.peer == w,
                Some(w) => e.with == w,
            })
            .collect();
        let count = matching.len();
        let lo = after.map_or(0, |a| matching.partition_point(|e| e.serial <= a));
        let hi = before.map_or(count, |b| matching.partition_point(|e| e.serial < b));
        let hi = hi.max(lo);
        let (from, to, complete) = if q.before.is_some() {
            let from = hi.saturating_sub(q.max).max(lo);
            (from, hi, from == lo)
        } else {
            let to = (lo + q.max).min(hi);
            (lo, to, to == hi)
        };
        let mut items: Vec<&Entry> = matching[from..to].to_vec();
        if q.flip {
            items.reverse();
        }
        Ok(Page {
            items,
            complete,
            count,
            index: from,
        })
    }
}

/// Parses `<query xmlns='urn:xmpp:mam:2'>`.
pub(crate) fn parse_query(query: &Element) -> Result<Query, QueryError> {
    let bad = |s: &str| QueryError::BadRequest(s.to_owned());
    let mut q = Query {
        max: DEFAULT_MAX,
        flip: query.has_child("flip-page", ns::MAM),
        ..Query::default()
    };
    if let Some(form) = query.get_child("x", ns::DATA) {
        for (var, values) in xml::form_fields(form) {
            let value = values
                .first()
                .map(|v| v.trim().to_owned())
                .unwrap_or_default();
            match var.as_str() {
                "FORM_TYPE" if value != ns::MAM => return Err(bad("unexpected FORM_TYPE")),
                "start" => q.start = Some(xml::parse_stamp(&value).ok_or(bad("bad start"))?),
                "end" => q.end = Some(xml::parse_stamp(&value).ok_or(bad("bad end"))?),
                "with" => {
                    let jid = Jid::new(&value).map_err(|_| bad("bad with"))?;
                    q.with = Some(jid.to_string());
                }
                "after-id" => q.after = Some(value),
                "before-id" => q.before = Some(Some(value)),
                _ => {}
            }
        }
    }
    if let Some(set) = query.get_child("set", ns::RSM) {
        if let Some(max) = set.get_child("max", ns::RSM) {
            let n: usize = max.text().trim().parse().map_err(|_| bad("bad max"))?;
            q.max = n.min(MAX_MAX);
        }
        if let Some(after) = set.get_child("after", ns::RSM) {
            let id = after.text().trim().to_owned();
            if id.is_empty() {
                return Err(bad("empty after"));
            }
            q.after = Some(id);
        }
        if let Some(before) = set.get_child("before", ns::RSM) {
            let id = before.text().trim().to_owned();
            q.before = Some((!id.is_empty()).then_some(id));
        }
    }
    Ok(q)
}

/// A result message: `<message><result queryid id><forwarded><delay/>stanza</forwarded>
/// </result></message>`.
pub(crate) fn result_message(
    owner: &str,
    to: &str,
    id: String,
    query_id: Option<&str>,
    entry: &Entry,
) -> Element {
    let forwarded = el("forwarded", ns::FORWARD)
        .child(el("delay", ns::DELAY).with("stamp", xml::stamp(entry.stamp)))
        .child(entry.stanza.clone());
    el("message", ns::CLIENT)
        .with("from", owner)
        .with("to", to)
        .with("id", id)
        .child(
            el("result", ns::MAM)
                .with_opt("queryid", query_id)
                .with("id", entry.id.clone())
                .child(forwarded),
        )
}

/// The `<fin/>` that ends the results.
pub(crate) fn fin(page: &Page<'_>) -> Element {
    let mut set = el("set", ns::RSM);
    if let (Some(first), Some(last)) = (page.items.first(), page.items.last()) {
        // Flipped pages list newest first; `first`/`last` still name the page's ends in
        // archive order.
        let (first, last) = if first.serial <= last.serial {
            (first, last)
        } else {
            (last, first)
        };
        set.append_child(
            el("first", ns::RSM)
                .with("index", page.index.to_string())
                .with_text(first.id.clone()),
        );
        set.append_child(el("last", ns::RSM).with_text(last.id.clone()));
    }
    set.append_child(el("count", ns::RSM).with_text(page.count.to_string()));
    let fin = el("fin", ns::MAM);
    let fin = if page.complete {
        fin.with("complete", "true")
    } else {
        fin
    };
    fin.child(set)
}

/// The answer to a form request (`<iq type='get'><query/></iq>`).
pub(crate) fn form() -> Element {
    let mut x = el("x", ns::DATA).with("type", "form");
    x.append_child(xml::field("FORM_TYPE", Some("hidden"), &[ns::MAM]));
    x.append_child(xml::field("with", Some("jid-single"), &[]));
    x.append_child(xml::field("start", Some("text-single"), &[]));
    x.append_child(xml::field("end", Some("text-single"), &[]));
    el("query", ns::MAM).child(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(n: u64) -> Archive {
        let mut a = Archive::default();
        for i in 1..=n {
            let with = if i % 2 == 0 { "bob@x" } else { "carol@x" };
            a.append(
                i * 3,
                "p",
                i * 1_000_000,
                with.into(),
                format!("{with}/r"),
                el("message", ns::CLIENT),
            );
        }
        a
    }

    fn ids(page: &Page<'_>) -> Vec<u64> {
        page.items.iter().map(|e| e.serial / 3).collect()
    }

    fn q(max: usize) -> Query {
        Query {
            max,
            ..Query::default()
        }
    }

    #[test]
    fn forward_paging_visits_everything_once() {
        let a = archive(120);
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = a
                .run(&Query {
                    after: after.clone(),
                    ..q(50)
                })
                .unwrap();
            assert_eq!(page.count, 120);
            seen.extend(ids(&page));
            after = page.items.last().map(|e| e.id.clone());
            if page.complete {
                break;
            }
        }
        assert_eq!(seen, (1..=120).collect::<Vec<_>>());
    }

    #[test]
    fn before_pages_backwards_and_empty_before_is_the_last_page() {
        let a = archive(120);
        let last = a
            .run(&Query {
                before: Some(None),
                ..q(50)
            })
            .unwrap();
        assert_eq!(ids(&last), (71..=120).collect::<Vec<_>>());
        assert!(!last.complete);
        assert_eq!(last.index, 70);
        let earlier = a
            .run(&Query {
                before: Some(Some(last.items[0].id.clone())),
                ..q(50)
            })
            .unwrap();
        assert_eq!(ids(&earlier), (21..=70).collect::<Vec<_>>());
        let first = a
            .run(&Query {
                before: Some(Some(earlier.items[0].id.clone())),
                ..q(50)
            })
            .unwrap();
        assert_eq!(ids(&first), (1..=20).collect::<Vec<_>>());
        assert!(first.complete);
        let fin = fin(&first);
        assert_eq!(fin.attr("complete"), Some("true"));
    }

    #[test]
    fn filters_and_unknown_ids() {
        let a = archive(10);
        let page = a
            .run(&Query {
                with: Some("bob@x".into()),
                start: Some(3_000_000),
                end: Some(8_000_000),
                ..q(50)
            })
            .unwrap();
        assert_eq!(ids(&page), [4, 6, 8]);
        assert_eq!(page.count, 3);
        for unknown in ["p-000000000001", "q-000000000003", "nonsense", "", "p-zz"] {
            assert_eq!(
                a.run(&Query {
                    after: Some(unknown.into()),
                    ..q(5)
                })
                .err(),
                Some(QueryError::ItemNotFound),
                "{unknown}"
            );
        }
        let zero = a.run(&q(0)).unwrap();
        assert!(zero.items.is_empty() && !zero.complete && zero.count == 10);
    }

    #[test]
    fn queries_parse_and_cap_max() {
        let query: Element = "<query xmlns='urn:xmpp:mam:2' queryid='q'>\
            <x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
            <field var='start'><value>1970-01-01T00:00:10Z</value></field>\
            <field var='with'><value>bob@x</value></field></x>\
            <set xmlns='http://jabber.org/protocol/rsm'><max>1000</max><after>p-1</after></set></query>"
            .parse()
            .unwrap();
        let parsed = parse_query(&query).unwrap();
        assert_eq!(parsed.max, MAX_MAX);
        assert_eq!(parsed.start, Some(10_000_000));
        assert_eq!(parsed.with.as_deref(), Some("bob@x"));
        assert_eq!(parsed.after.as_deref(), Some("p-1"));
        let bad: Element = "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>"
            .parse()
            .unwrap();
        assert!(matches!(parse_query(&bad), Err(QueryError::BadRequest(_))));
        let bad: Element = "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='start'><value>soon</value></field></x></query>"
            .parse()
            .unwrap();
        assert!(matches!(parse_query(&bad), Err(QueryError::BadRequest(_))));
        let empty: Element = "<query xmlns='urn:xmpp:mam:2'/>".parse().unwrap();
        assert_eq!(parse_query(&empty).unwrap().max, DEFAULT_MAX);
    }
}
