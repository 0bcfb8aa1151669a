//! Limits on what strangers can make us do. Anyone may write to anyone on XMPP, and every key
//! exchange from a new device costs an X3DH agreement, a one-time prekey and a stored session.
//! A stranger — a JID we never wrote to — gets a few new
//! sessions per hour, and all strangers together a few more; the rest of their key exchanges
//! are not processed at all (no prekey consumed, nothing stored beyond one notice per JID per
//! window). The table is bounded, so a flood from many JIDs cannot grow memory either.

use std::collections::HashMap;

/// New sessions one stranger JID may open per window (a few devices of a real new contact).
pub const PER_STRANGER: u32 = 8;
/// New sessions all strangers together may open per window.
pub const ALL_STRANGERS: u32 = 32;
/// The window, in seconds.
pub const WINDOW: u64 = 3600;
/// At most this many stranger JIDs are tracked; beyond it, unknown ones count as over the limit
/// until the window ends (a flood from many JIDs is bounded by `ALL_STRANGERS` anyway).
const MAX_TRACKED: usize = 4096;

/// What to do with a key exchange from a stranger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Allow,
    /// Drop it, and tell the user (first time for this JID in this window).
    RejectAndNotify,
    /// Drop it; the user was already told in this window.
    Reject,
}

#[derive(Default, Debug)]
struct Seen {
    allowed: u32,
    notified: bool,
}

/// The per-window counters.
#[derive(Debug, Default)]
pub struct StrangerLimits {
    window_start: u64,
    total: u32,
    per_jid: HashMap<String, Seen>,
}

impl StrangerLimits {
    /// Decides one new-session key exchange from stranger `jid` at `now` (unix seconds).
    pub fn check(&mut self, jid: &str, now: u64) -> Verdict {
        if now.saturating_sub(self.window_start) >= WINDOW {
            self.window_start = now;
            self.total = 0;
            self.per_jid.clear();
        }
        if !self.per_jid.contains_key(jid) && self.per_jid.len() >= MAX_TRACKED {
            return Verdict::Reject;
        }
        let seen = self.per_jid.entry(jid.to_owned()).or_default();
        if seen.allowed < PER_STRANGER && self.total < ALL_STRANGERS {
            seen.allowed += 1;
            self.total += 1;
            Verdict::Allow
        } else if !seen.notified {
            seen.notified = true;
            Verdict::RejectAndNotify
        } else {
            Verdict::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stranger_gets_a_few_sessions_and_one_notice() {
        let mut l = StrangerLimits::default();
        for _ in 0..PER_STRANGER {
            assert_eq!(l.check("m@x", 100), Verdict::Allow);
        }
        assert_eq!(l.check("m@x", 100), Verdict::RejectAndNotify);
        for _ in 0..1000 {
            assert_eq!(l.check("m@x", 101), Verdict::Reject);
        }
        // A new window starts afresh.
        assert_eq!(l.check("m@x", 100 + WINDOW), Verdict::Allow);
    }

    #[test]
    fn all_strangers_together_are_capped_and_memory_is_bounded() {
        let mut l = StrangerLimits::default();
        let mut allowed = 0;
        for i in 0..10_000 {
            if l.check(&format!("s{i}@x"), 5) == Verdict::Allow {
                allowed += 1;
            }
        }
        assert_eq!(allowed, ALL_STRANGERS);
        assert!(l.per_jid.len() <= MAX_TRACKED);
    }
}
