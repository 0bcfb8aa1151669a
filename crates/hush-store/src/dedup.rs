//! Recognising a message that arrives again (archive, Carbons, offline storage, a replay) —
//! without letting an unauthenticated copy hide the real message.
//!
//! Anyone can put a real message's stanza id or origin id on a forged stanza, and a server can
//! deliver the forgery first. So only an *authenticated* stored message (decrypted, or sent by
//! us) makes a later arrival with the same ids or content digest a duplicate. A stored failure
//! or message in clear with those ids does not: the arriving message is still decrypted, and if
//! it reads, it is stored beside the earlier entry, which keeps its place in history but gives
//! up the ids. If it fails (or comes in clear) again, it is a copy of what was already shown.

use crate::types::{Outcome, StoredMessage};
use crate::Direction;

/// What the store holds of an arriving message, by its ids and digest.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// An authenticated stored message shares an id or the digest.
    pub authenticated: bool,
    /// Stored entries that share one but are not authenticated (failures, messages in clear).
    pub unauthenticated: Vec<i64>,
}

/// What to do with an arriving message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing like it is stored.
    New,
    /// A copy of what is stored: skip it.
    Duplicate,
    /// It decrypted, and unauthenticated entries hold its ids: take the ids from them, store it.
    Supersede,
}

impl Known {
    pub(crate) fn verdict(&self, outcome: &Outcome) -> Verdict {
        if self.authenticated {
            Verdict::Duplicate
        } else if self.unauthenticated.is_empty() {
            Verdict::New
        } else if matches!(outcome, Outcome::Decrypted { body: Some(_), .. }) {
            Verdict::Supersede
        } else if matches!(outcome, Outcome::Decrypted { body: None, .. }) {
            // An empty message that decrypted is not in history, so it cannot take the ids
            // over: the entries keep them (a later copy of what they hold stays a copy).
            Verdict::New
        } else {
            Verdict::Duplicate
        }
    }
}

/// Whether a stored message counts as authenticated: sent by us, or decrypted.
pub(crate) fn authenticated(m: &StoredMessage) -> bool {
    m.direction == Direction::Out || (m.failure.is_none() && m.encrypted)
}
