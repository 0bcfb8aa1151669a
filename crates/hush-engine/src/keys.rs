//! Keeping this device's published keys fresh: one-time prekeys retired after use and the pool
//! refilled, the signed prekey rotated on its schedule.
//!
//! XEP-0384: a one-time prekey a key exchange used leaves the bundle, but only once the
//! archive catch-up is over (the archive may hold more messages built on it); Hush keeps a
//! retired one for [`PREKEY_GRACE`](hush_store::PREKEY_GRACE) more, because every sender reads
//! the same bundle and two can pick the same prekey before the new bundle is out. The signed
//! prekey is replaced every [`SIGNED_PREKEY_PERIOD`], the previous one kept for one more
//! period for key exchanges built on the old bundle.

use hush_proto::{Bundle, LocalDevice};
use hush_store::{Store, PREKEY_GRACE};
use rand_core::CryptoRng;

use crate::{Engine, Result, SIGNED_PREKEY_PERIOD};

/// This device's keys after maintenance, to save (with the used-prekey list cleared) before
/// the bundle is republished.
#[derive(Debug)]
#[must_use = "save the device (Store::retire_prekeys), then republish the bundle if asked"]
pub struct KeyMaintenance {
    /// The keys to save.
    pub device: LocalDevice,
    /// The bundle changed (prekeys retired or added, signed prekey rotated): publish it.
    pub republish: bool,
    /// The signed prekey was rotated.
    pub rotated: bool,
}

impl Engine {
    /// What this device's keys become at `now`: the one-time prekeys key exchanges used are
    /// retired, those retired longer than the grace ago deleted, the pool refilled to
    /// `target`, and the signed prekey rotated if due. `None` when nothing changes. Never
    /// during a catch-up (see [`Engine::prekeys_to_retire`]).
    pub fn maintain_keys<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        target: usize,
        now: u64,
        rng: &mut R,
    ) -> Result<Option<KeyMaintenance>> {
        let used = store.used_prekeys()?;
        let mut device = self.local.clone();
        for id in &used {
            device.retire_prekey(*id, now);
        }
        let forgotten = device.forget_retired_prekeys(now.saturating_sub(PREKEY_GRACE));
        let added = device.refill_prekeys(target, rng);
        let rotated = device.signed_prekey_age(now) >= SIGNED_PREKEY_PERIOD;
        if rotated {
            device.rotate_signed_prekey(now, rng);
        }
        if used.is_empty() && forgotten == 0 && added == 0 && !rotated {
            return Ok(None);
        }
        Ok(Some(KeyMaintenance {
            device,
            // A prekey that was only forgotten had left the bundle already.
            republish: !used.is_empty() || added > 0 || rotated,
            rotated,
        }))
    }
}

impl Engine {
    /// Whether the bundles the server holds for this device (`published`, as fetched) differ
    /// from what this device would publish now: a run stopped between saving new keys and
    /// publishing them (the server then offers prekeys we no longer have, or misses new ones).
    /// Republish then. Only a bundle of this device under our identity key counts: another key
    /// under our id is another device's (the collision announcing refuses), never to be
    /// overwritten; an absent bundle is announcing's business.
    pub fn bundle_outdated(&self, published: &[Bundle]) -> bool {
        let ours = self.local.identity().public();
        published
            .iter()
            .filter(|b| b.device_id == self.device_id() && b.identity.same_identity(ours))
            .any(|b| *b != self.local.bundle(b.suite))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::Suite;
    use hush_store::MemoryStore;
    use rand::SeedableRng;

    #[test]
    fn used_prekeys_are_retired_and_replaced_and_the_signed_prekey_rotates_on_schedule() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let local = LocalDevice::generate(3, 5, 1_000, &mut rng).unwrap();
        let mut store = MemoryStore::default();
        store.create_account("me@x", &local).unwrap();
        let engine = Engine::new("me@x", local.clone());
        assert!(engine
            .maintain_keys(&store, 5, 2_000, &mut rng)
            .unwrap()
            .is_none());
        // A key exchange used the first prekey (as a commit records it).
        let first = local.bundle(Suite::Omemo2).prekeys[0].0;
        let other = LocalDevice::generate(4, 1, 1_000, &mut rng).unwrap();
        let session =
            hush_proto::Session::initiate(other.identity(), &local.bundle(Suite::Omemo2), &mut rng)
                .unwrap();
        store
            .commit_received(vec![hush_store::Received {
                ids: Default::default(),
                peer: "you@y".into(),
                sender: "you@y".into(),
                sender_device: 4,
                suite: Suite::Omemo2,
                at: 2_000,
                outcome: hush_store::Outcome::Decrypted {
                    session: Box::new(session),
                    body: None,
                    consumed_prekey: Some(first),
                },
            }])
            .unwrap();
        let m = engine
            .maintain_keys(&store, 5, 2_000, &mut rng)
            .unwrap()
            .unwrap();
        assert!(m.republish && !m.rotated);
        let bundle = m.device.bundle(Suite::Omemo2);
        assert!(bundle.prekeys.iter().all(|(id, _)| *id != first));
        assert_eq!(bundle.prekeys.len(), 5);
        store.retire_prekeys(&m.device).unwrap();
        let engine = Engine::new("me@x", m.device);
        // A period later the signed prekey is due.
        let m = engine
            .maintain_keys(&store, 5, 1_000 + SIGNED_PREKEY_PERIOD, &mut rng)
            .unwrap()
            .unwrap();
        assert!(m.rotated && m.republish);
        assert_ne!(
            m.device.bundle(Suite::Omemo2).spk_id,
            local.bundle(Suite::Omemo2).spk_id
        );
        // Saved but not published yet: what the server still has is outdated.
        let stale = engine.device().bundle(Suite::Omemo2);
        let engine = Engine::new("me@x", m.device);
        assert!(engine.bundle_outdated(std::slice::from_ref(&stale)));
        assert!(!engine.bundle_outdated(&[engine.device().bundle(Suite::Legacy)]));
        // Another device's keys under our id are not ours to replace.
        let mut theirs = LocalDevice::generate(3, 5, 1_000, &mut rng)
            .unwrap()
            .bundle(Suite::Omemo2);
        theirs.device_id = engine.device_id();
        assert!(!engine.bundle_outdated(&[theirs]));
    }
}
