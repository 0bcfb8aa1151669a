//! Limits on what strangers can make us do. Anyone may write to anyone on XMPP, and every key
//! exchange from a new device costs an X3DH agreement, a one-time prekey and a stored session.
//! A stranger — a JID we never wrote to — gets a few new
//! sessions per hour, and all strangers together a few more; the rest of their key exchanges
//! are not processed at all (no prekey consumed, nothing stored beyond one notice per JID per
//! window). The budget lives in the store (a restart does not reset it), is checked before
//! any expensive work, and covers messages in clear too. The table is bounded, so a flood from
//! many JIDs cannot grow it either.

use hush_store::{StrangerCharge, StrangerUsage};

/// New sessions one stranger JID may open per window (a few devices of a real new contact).
pub const PER_STRANGER: u32 = 8;
/// New sessions all strangers together may open per window.
pub const ALL_STRANGERS: u32 = 32;
/// The window, in seconds.
pub const WINDOW: u64 = 3600;
/// At most this many stranger JIDs are tracked; beyond it, unknown ones count as over the limit
/// until the window ends (a flood from many JIDs is bounded by `ALL_STRANGERS` anyway).
const MAX_TRACKED: usize = 4096;
/// At most this many JIDs are told they are over the limit per window, each in a notice of its
/// own; past that, one notice for all the others ([`Verdict::RejectUnnamed`]), so notices
/// cannot fill the history either and no sender is ignored without a word.
const MAX_NOTICES: usize = 64;
/// The budget row that records the one notice for strangers not told by name: not a JID (a JID
/// is never empty), so no sender can spend or clear it.
pub const UNNAMED: &str = "";

/// What to do with something from a stranger that costs us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Allow,
    /// Drop it, and tell the user (first time for this JID in this window).
    RejectAndNotify,
    /// Drop it; the user was already told in this window.
    Reject,
    /// Drop it; too many JIDs are on record this window to tell about this one by name. The
    /// user gets one notice for all of them per window (kept under [`UNNAMED`]).
    RejectUnnamed,
}

/// The window `now` (unix seconds) falls in.
pub fn window(now: u64) -> u64 {
    now / WINDOW
}

/// Decides one charge to stranger `jid`'s budget from what the store says was spent in
/// `window`, and the row to write with the step (none when nothing changes).
/// `shared`: the charge also counts against what all strangers together may spend
/// ([`ALL_STRANGERS`]). Devices a contact does not list are charged to that contact alone, so a
/// flood of strangers cannot lock out a contact's new device.
pub fn charge(
    jid: &str,
    usage: StrangerUsage,
    window: u64,
    shared: bool,
) -> (Verdict, Option<StrangerCharge>) {
    let row = |spent, notified| StrangerCharge {
        jid: jid.to_owned(),
        window,
        spent,
        notified,
    };
    let known = usage.spent > 0 || usage.notified;
    if !known && usage.tracked >= MAX_TRACKED {
        (Verdict::RejectUnnamed, None)
    } else if usage.spent < PER_STRANGER && (!shared || usage.total < ALL_STRANGERS) {
        (Verdict::Allow, Some(row(usage.spent + 1, usage.notified)))
    } else if usage.notified {
        (Verdict::Reject, None)
    } else if usage.tracked < MAX_NOTICES || !shared {
        // Charges to a contact (its unlisted devices, key exchanges in its name) are told by
        // name whatever strangers did: they are bounded by the number of contacts, and the
        // notice for strangers would give a contact's user the wrong advice.
        (Verdict::RejectAndNotify, Some(row(usage.spent, true)))
    } else {
        (Verdict::RejectUnnamed, None)
    }
}

/// For a [`Verdict::RejectUnnamed`]: whether the one notice for unnamed strangers is still to
/// be given in `window` (`unnamed` is what the store says of [`UNNAMED`]), and the row that
/// records it.
pub fn unnamed_notice(unnamed: StrangerUsage, window: u64) -> Option<StrangerCharge> {
    (!unnamed.notified).then(|| StrangerCharge {
        jid: UNNAMED.to_owned(),
        window,
        spent: 0,
        notified: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_store::{MemoryStore, Store, Transaction};

    /// Charges `jid` against `store` as the engine does, committing the row.
    fn check(store: &mut MemoryStore, jid: &str, now: u64) -> Verdict {
        let w = window(now);
        let (verdict, row) = charge(jid, store.stranger_usage(jid, w).unwrap(), w, true);
        let tx = Transaction {
            stranger: row,
            ..Transaction::default()
        };
        store.commit(tx).unwrap();
        verdict
    }

    #[test]
    fn one_stranger_gets_a_few_and_one_notice() {
        let mut store = MemoryStore::default();
        for _ in 0..PER_STRANGER {
            assert_eq!(check(&mut store, "m@x", 100), Verdict::Allow);
        }
        assert_eq!(check(&mut store, "m@x", 100), Verdict::RejectAndNotify);
        for _ in 0..1000 {
            assert_eq!(check(&mut store, "m@x", 101), Verdict::Reject);
        }
        // A new window starts afresh.
        assert_eq!(check(&mut store, "m@x", 100 + WINDOW), Verdict::Allow);
    }

    #[test]
    fn strangers_past_the_notice_cap_get_one_notice_together() {
        let mut store = MemoryStore::default();
        let mut named = 0;
        let mut unnamed = 0;
        for i in 0..MAX_NOTICES + ALL_STRANGERS as usize + 50 {
            let jid = format!("s{i}@x");
            let w = window(5);
            let (verdict, row) = charge(&jid, store.stranger_usage(&jid, w).unwrap(), w, true);
            let row = match verdict {
                Verdict::RejectAndNotify => {
                    named += 1;
                    row
                }
                Verdict::RejectUnnamed => {
                    let told = unnamed_notice(store.stranger_usage(UNNAMED, w).unwrap(), w);
                    unnamed += usize::from(told.is_some());
                    told
                }
                _ => row,
            };
            let tx = Transaction {
                stranger: row,
                ..Transaction::default()
            };
            store.commit(tx).unwrap();
        }
        assert_eq!(named, MAX_NOTICES - ALL_STRANGERS as usize);
        assert_eq!(unnamed, 1, "one notice for all the others, once per window");
    }

    #[test]
    fn a_contact_over_its_budget_is_told_by_name_whatever_strangers_did() {
        let mut store = MemoryStore::default();
        for i in 0..MAX_NOTICES + 10 {
            check(&mut store, &format!("s{i}@x"), 5);
        }
        let w = window(5);
        let mut verdicts = Vec::new();
        for _ in 0..=PER_STRANGER {
            let usage = store.stranger_usage("friend@x", w).unwrap();
            let (verdict, row) = charge("friend@x", usage, w, false);
            verdicts.push(verdict);
            let tx = Transaction {
                stranger: row,
                ..Transaction::default()
            };
            store.commit(tx).unwrap();
        }
        assert_eq!(verdicts.last(), Some(&Verdict::RejectAndNotify));
    }

    #[test]
    fn all_strangers_together_are_capped_and_the_table_is_bounded() {
        let mut store = MemoryStore::default();
        let mut allowed = 0;
        for i in 0..MAX_TRACKED + 100 {
            if check(&mut store, &format!("s{i}@x"), 5) == Verdict::Allow {
                allowed += 1;
            }
        }
        assert_eq!(allowed, ALL_STRANGERS);
        assert!(store.stranger_usage("x@x", window(5)).unwrap().tracked <= MAX_TRACKED);
    }
}
