//! Healing a session the peer built on keys we retired.
//!
//! A key exchange that reaches us only after we dropped the signed prekey (or one-time prekey)
//! it was built on cannot be read, ever. Its sender does not know: its state awaits an answer,
//! and by the tie-break of two unanswered key exchanges (see [`hush_proto::Session`]) it keeps
//! that state current even when it reads a key exchange of ours, so everything it writes goes
//! on a state we cannot read. XEP-0384 lets the receiver heal a broken session by sending a
//! key exchange of its own. Ours is built so that it wins the tie-break: an *empty* key
//! exchange whose base key is smaller than the base key of the one we could not read
//! ([`hush_proto::Session::initiate_below`]). The peer moves to it (a peer that discards its
//! own state on any key exchange, as python-omemo does, moves too), and writes on a session
//! we hold.
//!
//! Each heal costs a bundle fetch and a key agreement: it is done at most once per device per
//! [`HEAL_INTERVAL`], and for a stranger only when its failed message fit its budget (see
//! [`crate::strangers`]).

use hush_proto::{Session, Suite};
use hush_store::{SessionKey, Store, Transaction};
use rand_core::CryptoRng;

use crate::send::Fetched;
use crate::{Engine, Result};

/// At most one heal per device in this time, in seconds: a server replaying unreadable key
/// exchanges cannot make us rebuild a session more often.
pub const HEAL_INTERVAL: u64 = 3600;

/// A device whose key exchange we could not read because we retired its keys: we owe it a key
/// exchange of ours that wins the tie-break against `beat`, its base key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heal {
    /// The suite of the session.
    pub suite: Suite,
    /// The device's owner.
    pub jid: String,
    /// The device.
    pub device: u32,
    /// The base key of the key exchange we could not read.
    pub beat: [u8; 32],
}

impl Engine {
    /// The next heal owed, when sending is due (never during a catch-up: the archive may
    /// still hold a readable key exchange of the same device). The shell fetches the device's
    /// bundle, then calls [`Engine::prepare_heal`], and [`Engine::healed`] once it is sent.
    pub fn next_heal(&self) -> Option<&Heal> {
        (self.phase == crate::Phase::Live)
            .then(|| self.heals.first())
            .flatten()
    }

    /// The heal is done with: `sent` if it went out. One that could not be prepared (no
    /// bundle, another identity key) does not count against [`HEAL_INTERVAL`]: the device's
    /// next unreadable key exchange owes a heal again.
    pub fn healed(&mut self, heal: &Heal, sent: bool) {
        self.heals.retain(|h| h != heal);
        if !sent {
            self.healed_at.remove(&(heal.jid.clone(), heal.device));
        }
    }

    /// Records a heal owed by a committed step, unless that device was healed less than
    /// [`HEAL_INTERVAL`] ago.
    pub(crate) fn owe_heal(&mut self, heal: Heal, now: u64) {
        let key = (heal.jid.clone(), heal.device);
        if self
            .healed_at
            .get(&key)
            .is_some_and(|at| now < at.saturating_add(HEAL_INTERVAL))
        {
            return;
        }
        self.healed_at.insert(key, now);
        if !self
            .heals
            .iter()
            .any(|h| h.jid == heal.jid && h.device == heal.device)
        {
            self.heals.push(heal);
        }
    }

    /// The session that heals `heal` from the device's `bundle` (replacing ours, whose
    /// states stay readable but never send again), and the empty key exchange to send on it.
    /// `None` when the bundle cannot be had or is for another identity than our session's:
    /// nothing is sent, and the failure the user saw stays the answer.
    pub fn prepare_heal<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        heal: &Heal,
        bundle: &Fetched,
        rng: &mut R,
    ) -> Result<Option<(Transaction, crate::MessageStanza)>> {
        let Ok(bundle) = bundle else {
            log::info!(
                "could not heal the session with device {} of {}: its bundle is unavailable",
                heal.device,
                heal.jid
            );
            return Ok(None);
        };
        let key = SessionKey::new(heal.suite, &heal.jid, heal.device);
        let existing = store.session(&key)?;
        if existing
            .as_ref()
            .is_some_and(|s| !s.peer_identity().same_identity(&bundle.identity))
        {
            return Ok(None);
        }
        let Some(new) = Session::initiate_below(self.local.identity(), bundle, &heal.beat, rng)?
        else {
            return Ok(None);
        };
        let session = match existing {
            Some(old) => old.restart(new),
            None => new,
        };
        self.empty_message(key, session, rng).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn heal(beat: u8) -> Heal {
        Heal {
            suite: Suite::Omemo2,
            jid: "alice@example.org".into(),
            device: 11,
            beat: [beat; 32],
        }
    }

    #[test]
    fn a_device_is_healed_once_an_hour_unless_nothing_was_sent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let local = hush_proto::LocalDevice::generate(21, 1, 0, &mut rng).unwrap();
        let mut engine = Engine::new("bob@example.net", local);
        engine.owe_heal(heal(9), 1000);
        assert_eq!(engine.next_heal(), Some(&heal(9)));
        // Sent: another unreadable key exchange within the hour owes nothing.
        engine.healed(&heal(9), true);
        engine.owe_heal(heal(8), 1000 + HEAL_INTERVAL - 1);
        assert_eq!(engine.next_heal(), None);
        // An hour later it does.
        engine.owe_heal(heal(8), 1000 + HEAL_INTERVAL);
        assert_eq!(engine.next_heal(), Some(&heal(8)));
        // Not sent (no bundle, say): the next one owes a heal again at once.
        engine.healed(&heal(8), false);
        engine.owe_heal(heal(7), 1000 + HEAL_INTERVAL + 1);
        assert_eq!(engine.next_heal(), Some(&heal(7)));
    }
}
