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
//! Only a key exchange under an identity key we can vouch for is healed: the one our session
//! with the device was built on, or the one the device's account publishes. Anyone can make up
//! a key exchange under another identity key and an unknown signed prekey id; it must not make
//! us replace a working session. (A forgery under the real key still costs at most one heal
//! per device per [`HEAL_INTERVAL`], built on the real, verified bundle.) The heal is built on that same identity key (a bundle serving another is refused,
//! loudly), never on a distrusted one, and a key met this way is recorded and shown with the
//! failure like any new key.
//!
//! Each heal costs a bundle fetch and a key agreement: it is tried at most once per device per
//! [`HEAL_INTERVAL`], whether or not it could be sent (so a server that refuses the bundle, or
//! serves a bad one, cannot make us try again at every message), and for a stranger only when
//! its failed message fit its budget (see [`crate::strangers`]). The interval is kept in
//! memory: each run of the client may heal a device once. A heal still owed is dropped when a
//! later message from the device reads (its sending state is one we hold after all).

use hush_proto::{IdentityKey, Session, Suite};
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
    /// The smallest base key of the key exchanges we could not read.
    pub beat: [u8; 32],
    /// The identity key they were built under, which we vouch for: the heal is built on it.
    pub identity: IdentityKey,
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

    /// The heal is done with, whether it was sent or not (an attempt counts against
    /// [`HEAL_INTERVAL`] either way). Call it on every outcome, errors included, or the heal
    /// stays first in line.
    pub fn healed(&mut self, heal: &Heal) {
        self.heals
            .retain(|h| !(h.jid == heal.jid && h.device == heal.device));
    }

    /// A message from `device` of `jid` was read: a heal still owed to it is dropped, and a
    /// later unreadable key exchange of that device owes one again at once (this one was
    /// never tried).
    pub(crate) fn heard_from(&mut self, jid: &str, device: u32) {
        let before = self.heals.len();
        self.heals.retain(|h| !(h.jid == jid && h.device == device));
        if self.heals.len() != before {
            self.healed_at.remove(&(jid.to_owned(), device));
        }
    }

    /// Records a heal owed by a committed step, unless that device was healed less than
    /// [`HEAL_INTERVAL`] ago.
    pub(crate) fn owe_heal(&mut self, heal: Heal, now: u64) {
        // One still owed (several unreadable key exchanges read in one catch-up): ours must
        // win against the last of them, so it goes below the smallest.
        if let Some(owed) = self
            .heals
            .iter_mut()
            .find(|h| h.jid == heal.jid && h.device == heal.device)
        {
            if heal.identity.same_identity(&owed.identity) && heal.beat < owed.beat {
                owed.beat = heal.beat;
            }
            return;
        }
        let key = (heal.jid.clone(), heal.device);
        if self
            .healed_at
            .get(&key)
            .is_some_and(|at| now < at.saturating_add(HEAL_INTERVAL))
        {
            return;
        }
        self.healed_at.insert(key, now);
        self.heals.push(heal);
    }

    /// The session that heals `heal` from the device's `bundle` (replacing ours, whose
    /// states stay readable but never send again), and the empty key exchange to send on it.
    /// `None` when the bundle cannot be had, is for another suite, or carries another identity
    /// key than the one vouched for (logged as a warning: the server may be swapping keys), or
    /// that key was distrusted since: nothing is sent, and the failure the user saw stays the
    /// answer.
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
        if bundle.suite != heal.suite || bundle.device_id != heal.device {
            log::warn!(
                "could not heal the session with device {} of {}: the server answered with \
                 the bundle of another device or suite",
                heal.device,
                heal.jid
            );
            return Ok(None);
        }
        if !bundle.identity.same_identity(&heal.identity) {
            log::warn!(
                "did not heal the session with device {} of {}: its bundle carries identity key \
                 {}, not {} of its key exchange; is the server swapping keys?",
                heal.device,
                heal.jid,
                bundle.identity.fingerprint(),
                heal.identity.fingerprint()
            );
            return Ok(None);
        }
        if store.trust(&heal.jid, &heal.identity)? == Some(hush_store::Trust::Distrusted) {
            return Ok(None);
        }
        let key = SessionKey::new(heal.suite, &heal.jid, heal.device);
        let existing = store.session(&key)?;
        if existing
            .as_ref()
            .is_some_and(|s| !s.peer_identity().same_identity(&heal.identity))
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

    fn identity() -> IdentityKey {
        *hush_proto::IdentityKeyPair::from_secret([3; 32]).public()
    }

    fn heal(beat: u8) -> Heal {
        Heal {
            suite: Suite::Omemo2,
            jid: "alice@example.org".into(),
            device: 11,
            beat: [beat; 32],
            identity: identity(),
        }
    }

    fn engine() -> Engine {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let local = hush_proto::LocalDevice::generate(21, 1, 0, &mut rng).unwrap();
        Engine::new("bob@example.net", local)
    }

    #[test]
    fn a_device_is_healed_at_most_once_an_hour_sent_or_not() {
        let mut engine = engine();
        engine.owe_heal(heal(9), 1000);
        assert_eq!(engine.next_heal(), Some(&heal(9)));
        engine.healed(&heal(9));
        // Another unreadable key exchange within the hour owes nothing, whether the first
        // heal went out or not (a server refusing the bundle cannot make us retry each time).
        engine.owe_heal(heal(8), 1000 + HEAL_INTERVAL - 1);
        assert_eq!(engine.next_heal(), None);
        // An hour later it does.
        engine.owe_heal(heal(8), 1000 + HEAL_INTERVAL);
        assert_eq!(engine.next_heal(), Some(&heal(8)));
    }

    #[test]
    fn a_heal_still_owed_goes_below_the_smallest_unreadable_base_key() {
        let mut engine = engine();
        engine.owe_heal(heal(9), 1000);
        engine.owe_heal(heal(5), 1001);
        engine.owe_heal(heal(7), 1002);
        assert_eq!(engine.next_heal(), Some(&heal(5)));
    }

    #[test]
    fn a_heal_owed_is_dropped_when_the_device_is_read() {
        let mut engine = engine();
        engine.owe_heal(heal(9), 1000);
        engine.heard_from("alice@example.org", 12);
        assert_eq!(engine.next_heal(), Some(&heal(9)));
        engine.heard_from("alice@example.org", 11);
        assert_eq!(engine.next_heal(), None);
        // That heal was never tried: the next unreadable key exchange owes one at once.
        engine.owe_heal(heal(8), 1001);
        assert_eq!(engine.next_heal(), Some(&heal(8)));
    }

    #[test]
    fn a_heal_is_built_only_on_the_identity_key_it_vouched_for() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let engine = engine();
        let store = hush_store::MemoryStore::new();
        let alice = hush_proto::LocalDevice::generate(11, 3, 0, &mut rng).unwrap();
        let bundle = alice.bundle(Suite::Omemo2);
        let mut owed = heal(0xff);
        // The bundle the server serves carries another key than the key exchange did.
        let refused = engine
            .prepare_heal(&store, &owed, &Ok(bundle.clone()), &mut rng)
            .unwrap();
        assert!(refused.is_none());
        // The key vouched for, but another suite's bundle (or another device's): refused too.
        owed.identity = *alice.identity().public();
        let mut other = bundle.clone();
        other.suite = Suite::Legacy;
        assert!(engine
            .prepare_heal(&store, &owed, &Ok(other), &mut rng)
            .unwrap()
            .is_none());
        // The right bundle: a session on that key, and an empty key exchange to its device.
        let (tx, stanza) = engine
            .prepare_heal(&store, &owed, &Ok(bundle), &mut rng)
            .unwrap()
            .expect("a heal");
        assert_eq!(stanza.to(), "alice@example.org");
        assert!(tx.sessions[0]
            .1
            .peer_identity()
            .same_identity(&owed.identity));
    }

    /// Seed 3098 of the simulation: the key exchange a device could not read had a base key
    /// starting `02 39 26 a0` (about one key in 115 is smaller). Sixty-four full key
    /// agreements missed it more often than not and no heal was sent; drawing base keys alone,
    /// up to `MAX_BASE_KEY_DRAWS`, finds one.
    #[test]
    fn a_small_base_key_is_beaten() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3098);
        let engine = engine();
        let store = hush_store::MemoryStore::new();
        let alice = hush_proto::LocalDevice::generate(11, 3, 0, &mut rng).unwrap();
        let mut beat = [0xff; 32];
        beat[..4].copy_from_slice(&[0x02, 0x39, 0x26, 0xa0]);
        let owed = Heal {
            beat,
            identity: *alice.identity().public(),
            ..heal(0)
        };
        for i in 0..20 {
            let healed = engine
                .prepare_heal(&store, &owed, &Ok(alice.bundle(Suite::Omemo2)), &mut rng)
                .unwrap();
            assert!(
                healed.is_some(),
                "no heal against a base key of 02 39 26 a0 ({i})"
            );
        }
    }
}
