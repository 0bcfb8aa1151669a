//! Automatic Trust Management (XEP-0450): one verification spreads to the user's other
//! devices and to the contact's, over OMEMO 2 trust messages (XEP-0434, [`crate::trust_message`]).
//!
//! **Sending** — only for the user's own decisions, never for decisions ATM made by itself:
//!
//! | the user… | to our own account | to the key's owner | to each contact with verified keys |
//! |---|---|---|---|
//! | verifies a contact's key | that key | our verified keys | — |
//! | distrusts a contact's key | that key, refused | — | — |
//! | verifies one of our keys | everything verified and refused, by account | — | that key |
//! | distrusts one of our keys | that key, refused | — | that key, refused |
//!
//! Each message is queued in the store with the decision (so a crash or a missing connection
//! loses none) and goes out encrypted only to devices whose keys are verified (XEP-0434 §6);
//! a message nobody verified could read is dropped, as it would tell no one anything.
//!
//! **Receiving** — a trust message counts only from a device of our own account (about any
//! account) or from a contact's device about that contact's own keys. From a device whose key
//! is verified here it is applied at once; from any other (not distrusted) device it is held
//! until the user verifies that device, and applied then — by whatever path the verification
//! comes, including another trust message (XEP-0450 §5). Two limits keep a contact from
//! overruling the user: a contact's statement never lifts a key the user distrusted here, and
//! nobody's statement changes this device's own key.

use hush_proto::IdentityKey;
use hush_store::{HeldTrust, Store, Transaction, Trust, TrustChange, TrustSource};

use crate::trust_message::{KeyOwner, TrustMessage};
use crate::{Engine, Result};

/// Statements kept from one device not verified yet, at most: more are ignored (a device
/// anyone can add must not fill the store).
pub const MAX_HELD: usize = 256;

/// One decision the user made on this device.
#[derive(Clone, Debug)]
pub struct UserDecision {
    /// The key's owner.
    pub jid: String,
    /// The key.
    pub identity: IdentityKey,
    /// The decision.
    pub trust: Trust,
}

/// A key whose trust changed by itself, through ATM: `(owner, fingerprint, new trust)`.
pub type Applied = (String, String, Trust);

/// What recording the user's decisions does ([`Engine::decide_trust`]).
#[derive(Debug)]
#[must_use = "the decisions are recorded only when the transaction is committed"]
pub struct TrustStep {
    /// Commit it: the decisions, what they released, the trust messages to send.
    pub transaction: Transaction,
    /// Keys ATM changed because of these decisions (statements held from a device the user
    /// just verified).
    pub applied: Vec<Applied>,
    /// How many trust messages were queued.
    pub queued: usize,
}

/// What a trust message that arrived did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AtmReport {
    /// Keys whose trust it changed, and those changed in turn by statements it released.
    pub applied: Vec<Applied>,
    /// Statements kept until the sending device's key is verified here.
    pub held: usize,
    /// Statements left alone: about another account from a contact's device, about this
    /// device's own key, lifting a key the user distrusted, already so, or from a distrusted
    /// device.
    pub ignored: usize,
}

/// Trust decisions of one step, over what the store holds.
struct Overlay<'a, S: Store + ?Sized> {
    store: &'a S,
    changes: Vec<TrustChange>,
}

impl<S: Store + ?Sized> Overlay<'_, S> {
    fn trust(&self, jid: &str, key: &IdentityKey) -> Result<Option<Trust>> {
        match self
            .changes
            .iter()
            .rev()
            .find(|c| c.jid == jid && c.identity.same_identity(key))
        {
            Some(c) => Ok(Some(c.trust)),
            None => Ok(self.store.trust(jid, key)?),
        }
    }

    /// Who decided the trust of `key` of `jid`, after the step's changes.
    fn source(&self, jid: &str, key: &IdentityKey) -> Result<Option<TrustSource>> {
        match self
            .changes
            .iter()
            .rev()
            .find(|c| c.jid == jid && c.identity.same_identity(key))
        {
            Some(c) => Ok(Some(c.source.clone())),
            None => Ok(self.store.trust_source(jid, key)?),
        }
    }

    /// Every key with `trust` after the step's changes.
    fn keys_with(&self, trust: Trust) -> Result<Vec<(String, IdentityKey)>> {
        let mut keys: Vec<(String, IdentityKey)> = Vec::new();
        for (jid, key) in self.store.keys_with_trust(trust)? {
            if self.trust(&jid, &key)? == Some(trust) {
                keys.push((jid, key));
            }
        }
        for c in &self.changes {
            let listed = keys
                .iter()
                .any(|(j, k)| *j == c.jid && k.same_identity(&c.identity));
            if !listed && self.trust(&c.jid, &c.identity)? == Some(trust) {
                keys.push((c.jid.clone(), c.identity));
            }
        }
        Ok(keys)
    }
}

impl Engine {
    /// Records the user's decisions about keys (`hush trust`, `verify`, `distrust`) with what
    /// ATM makes of them: statements held from a key now verified are applied (and those they
    /// verify release theirs in turn), and the trust messages of the module's table are
    /// queued. Verifications and refusals are announced; other decisions only recorded.
    pub fn decide_trust<S: Store + ?Sized>(
        &self,
        store: &S,
        decisions: &[UserDecision],
        now: u64,
    ) -> Result<TrustStep> {
        self.decide_trust_by(store, decisions, TrustSource::User, now)
    }

    /// [`Self::decide_trust`], recording how the user decided (`source`: the user's own
    /// comparison of a fingerprint or URI, or of a short authentication string).
    pub fn decide_trust_by<S: Store + ?Sized>(
        &self,
        store: &S,
        decisions: &[UserDecision],
        source: TrustSource,
        now: u64,
    ) -> Result<TrustStep> {
        let decisions = &last_per_key(decisions);
        let mut overlay = Overlay {
            store,
            changes: Vec::new(),
        };
        let mut tx = Transaction::default();
        let mut applied = Vec::new();
        for d in decisions {
            overlay.changes.push(TrustChange {
                jid: d.jid.clone(),
                identity: d.identity,
                trust: d.trust,
                source: source.clone(),
                at: now,
            });
            match d.trust {
                Trust::Verified => self.release(
                    &mut overlay,
                    &mut tx,
                    &d.jid,
                    &d.identity,
                    now,
                    &mut applied,
                )?,
                // A refused device's held statements will never count.
                Trust::Distrusted => tx.released_trust.push((d.jid.clone(), d.identity)),
                Trust::Blind | Trust::Undecided => {}
            }
        }
        let messages = self.announcements(&overlay, decisions)?;
        let queued = messages.len();
        tx.trust_messages = messages
            .into_iter()
            .map(|(to, m)| (to, String::from(&m.to_element())))
            .collect();
        tx.trust_changes = overlay.changes;
        Ok(TrustStep {
            transaction: tx,
            applied,
            queued,
        })
    }

    /// Applies a trust message from `sender`'s device, or holds it; what to write goes into
    /// `tx`.
    pub(crate) fn trust_message_arrived<S: Store + ?Sized>(
        &self,
        store: &S,
        from: SenderDevice<'_>,
        message: &TrustMessage,
        now: u64,
        tx: &mut Transaction,
    ) -> Result<AtmReport> {
        let SenderDevice {
            jid: sender,
            key: sender_key,
            trust: sender_trust,
        } = from;
        let mut report = AtmReport::default();
        let mut overlay = Overlay {
            store,
            changes: Vec::new(),
        };
        // What a device not verified yet may leave waiting here, in all.
        let mut room_to_hold = match sender_trust {
            Trust::Blind | Trust::Undecided => {
                MAX_HELD.saturating_sub(store.held_trust_from(sender, sender_key)?.len())
            }
            _ => 0,
        };
        for owner in &message.owners {
            // XEP-0450 §3: our own devices speak for anyone; a contact only for itself.
            let qualified = sender == self.jid || owner.jid == sender;
            for (key, trust) in statements(owner) {
                if !qualified || self.is_this_device(&owner.jid, &key) {
                    report.ignored += 1;
                    continue;
                }
                match sender_trust {
                    Trust::Verified => {
                        let source = TrustSource::Atm {
                            jid: sender.to_owned(),
                            fingerprint: sender_key.fingerprint(),
                        };
                        let statement = Statement {
                            owner: &owner.jid,
                            key,
                            trust,
                            from_own_device: sender == self.jid,
                            source,
                        };
                        if !self.apply(&mut overlay, tx, statement, now, &mut report.applied)? {
                            report.ignored += 1;
                        }
                    }
                    // XEP-0450: a distrusted device's statements never count.
                    Trust::Distrusted => report.ignored += 1,
                    Trust::Blind | Trust::Undecided if room_to_hold == 0 => report.ignored += 1,
                    Trust::Blind | Trust::Undecided => {
                        room_to_hold -= 1;
                        tx.held_trust.push(HeldTrust {
                            sender: sender.to_owned(),
                            sender_key: *sender_key,
                            owner: owner.jid.clone(),
                            key,
                            trust,
                            at: now,
                        });
                        report.held += 1;
                    }
                }
            }
        }
        tx.trust_changes.extend(overlay.changes);
        Ok(report)
    }

    /// Applies one statement from a verified device, then what the key it verifies had said
    /// (held) in turn. `false` when it changed nothing.
    fn apply<S: Store + ?Sized>(
        &self,
        overlay: &mut Overlay<'_, S>,
        tx: &mut Transaction,
        statement: Statement<'_>,
        now: u64,
        applied: &mut Vec<Applied>,
    ) -> Result<bool> {
        let Statement {
            owner,
            key,
            trust,
            from_own_device,
            source,
        } = statement;
        let current = overlay.trust(owner, &key)?;
        if current == Some(trust) {
            return Ok(false);
        }
        // Nobody overrules the user's own refusal here: a contact never lifts a refusal, and
        // our other devices only one that came from them by ATM (an old or reordered trust
        // message must not undo what the user decided on this device).
        if current == Some(Trust::Distrusted) && trust == Trust::Verified {
            let by_atm = matches!(overlay.source(owner, &key)?, Some(TrustSource::Atm { .. }));
            if !from_own_device || !by_atm {
                return Ok(false);
            }
        }
        overlay.changes.push(TrustChange {
            jid: owner.to_owned(),
            identity: key,
            trust,
            source,
            at: now,
        });
        applied.push((owner.to_owned(), key.fingerprint(), trust));
        match trust {
            Trust::Verified => self.release(overlay, tx, owner, &key, now, applied)?,
            _ => tx.released_trust.push((owner.to_owned(), key)),
        }
        Ok(true)
    }

    /// `key` of `jid` is now verified: the statements held from it are applied (each of which
    /// may verify more keys, whose statements follow).
    fn release<S: Store + ?Sized>(
        &self,
        overlay: &mut Overlay<'_, S>,
        tx: &mut Transaction,
        jid: &str,
        key: &IdentityKey,
        now: u64,
        applied: &mut Vec<Applied>,
    ) -> Result<()> {
        if tx
            .released_trust
            .iter()
            .any(|(j, k)| j == jid && k.same_identity(key))
        {
            return Ok(());
        }
        tx.released_trust.push((jid.to_owned(), *key));
        for held in overlay.store.held_trust_from(jid, key)? {
            if self.is_this_device(&held.owner, &held.key) {
                continue;
            }
            let statement = Statement {
                owner: &held.owner,
                key: held.key,
                trust: held.trust,
                from_own_device: held.sender == self.jid,
                source: TrustSource::Atm {
                    jid: held.sender.clone(),
                    fingerprint: held.sender_key.fingerprint(),
                },
            };
            self.apply(overlay, tx, statement, now, applied)?;
        }
        Ok(())
    }

    /// The trust messages the user's `decisions` call for (the module's table), one per
    /// addressee.
    fn announcements<S: Store + ?Sized>(
        &self,
        overlay: &Overlay<'_, S>,
        decisions: &[UserDecision],
    ) -> Result<Vec<(String, TrustMessage)>> {
        let verified = overlay.keys_with(Trust::Verified)?;
        let own_verified: Vec<IdentityKey> = verified
            .iter()
            .filter(|(j, k)| *j == self.jid && !self.is_this_device(j, k))
            .map(|(_, k)| *k)
            .collect();
        let contacts_verified: Vec<&String> = {
            let mut c: Vec<&String> = verified
                .iter()
                .map(|(j, _)| j)
                .filter(|j| **j != self.jid)
                .collect();
            c.dedup();
            c
        };
        let mut out = Outgoing::default();
        for d in decisions {
            let own = d.jid == self.jid;
            match (own, d.trust) {
                (false, Trust::Verified) => {
                    if !own_verified.is_empty() {
                        out.add(&self.jid, &d.jid, d.identity, true);
                        for k in &own_verified {
                            out.add(&d.jid, &self.jid, *k, true);
                        }
                    }
                }
                (false, Trust::Distrusted) => {
                    if !own_verified.is_empty() {
                        out.add(&self.jid, &d.jid, d.identity, false);
                    }
                }
                (true, Trust::Verified) => {
                    for c in &contacts_verified {
                        out.add(c, &self.jid, d.identity, true);
                    }
                    // Everything this device knows, for the device just verified.
                    for (j, k) in &verified {
                        if !self.is_this_device(j, k) {
                            out.add(&self.jid, j, *k, true);
                        }
                    }
                    for (j, k) in overlay.keys_with(Trust::Distrusted)? {
                        out.add(&self.jid, &j, k, false);
                    }
                }
                (true, Trust::Distrusted) => {
                    for c in &contacts_verified {
                        out.add(c, &self.jid, d.identity, false);
                    }
                    if !own_verified.is_empty() {
                        out.add(&self.jid, &self.jid, d.identity, false);
                    }
                }
                (_, Trust::Blind | Trust::Undecided) => {}
            }
        }
        Ok(out.messages)
    }

    fn is_this_device(&self, jid: &str, key: &IdentityKey) -> bool {
        jid == self.jid && key.same_identity(self.local.identity().public())
    }
}

/// The device a trust message came from.
#[derive(Clone, Copy)]
pub(crate) struct SenderDevice<'a> {
    /// Its account.
    pub(crate) jid: &'a str,
    /// Its identity key.
    pub(crate) key: &'a IdentityKey,
    /// The trust in that key here.
    pub(crate) trust: Trust,
}

/// One statement of a trust message, about to be applied.
struct Statement<'a> {
    owner: &'a str,
    key: IdentityKey,
    trust: Trust,
    from_own_device: bool,
    source: TrustSource,
}

/// One decision per key, the last one the batch makes about it, in the batch's order: a key
/// verified and then refused in one call must not first release the statements held from it.
fn last_per_key(decisions: &[UserDecision]) -> Vec<UserDecision> {
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<UserDecision> = decisions
        .iter()
        .rev()
        .filter(|d| seen.insert((d.jid.as_str(), d.identity.curve25519())))
        .cloned()
        .collect();
    last.reverse();
    last
}

/// The statements of one key owner: `(key, Verified | Distrusted)`.
fn statements(owner: &KeyOwner) -> impl Iterator<Item = (IdentityKey, Trust)> + '_ {
    owner
        .trust
        .iter()
        .map(|k| (*k, Trust::Verified))
        .chain(owner.distrust.iter().map(|k| (*k, Trust::Distrusted)))
}

/// Trust messages being put together, one per addressee.
#[derive(Default)]
struct Outgoing {
    messages: Vec<(String, TrustMessage)>,
}

impl Outgoing {
    /// Adds to the message for `to` that `owner`'s `key` is vouched for (`trusted`) or refused.
    fn add(&mut self, to: &str, owner: &str, key: IdentityKey, trusted: bool) {
        let m = match self.messages.iter().position(|(t, _)| t == to) {
            Some(i) => i,
            None => {
                self.messages.push((to.to_owned(), TrustMessage::default()));
                self.messages.len() - 1
            }
        };
        let message = &mut self.messages[m].1;
        let o = match message.owners.iter().position(|o| o.jid == owner) {
            Some(i) => i,
            None => {
                message.owners.push(KeyOwner {
                    jid: owner.to_owned(),
                    trust: Vec::new(),
                    distrust: Vec::new(),
                });
                message.owners.len() - 1
            }
        };
        let owner = &mut message.owners[o];
        let list = if trusted {
            &mut owner.trust
        } else {
            &mut owner.distrust
        };
        if !list.iter().any(|k| k.same_identity(&key)) {
            list.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::LocalDevice;
    use hush_store::MemoryStore;
    use rand::SeedableRng;

    const ME: &str = "alice@example.org";
    const BOB: &str = "bob@example.net";
    const CAROL: &str = "carol@example.com";

    fn device(seed: u64) -> LocalDevice {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        LocalDevice::generate(seed as u32 + 1, 1, 0, &mut rng).unwrap()
    }

    fn key(seed: u64) -> IdentityKey {
        *device(seed).identity().public()
    }

    fn engine() -> Engine {
        Engine::new(ME, device(100))
    }

    fn message(owner: &str, trust: &[IdentityKey], distrust: &[IdentityKey]) -> TrustMessage {
        TrustMessage {
            owners: vec![KeyOwner {
                jid: owner.into(),
                trust: trust.to_vec(),
                distrust: distrust.to_vec(),
            }],
        }
    }

    /// Hands `message` from `sender`'s device `sender_key` to the engine and commits the step.
    fn arrive(
        store: &mut MemoryStore,
        sender: &str,
        sender_key: IdentityKey,
        message: &TrustMessage,
    ) -> AtmReport {
        let sender_trust = store
            .trust(sender, &sender_key)
            .unwrap()
            .unwrap_or(Trust::Blind);
        let mut tx = Transaction::default();
        let report = engine()
            .trust_message_arrived(
                store,
                SenderDevice {
                    jid: sender,
                    key: &sender_key,
                    trust: sender_trust,
                },
                message,
                5,
                &mut tx,
            )
            .unwrap();
        store.commit(tx).unwrap();
        report
    }

    #[test]
    fn a_contact_speaks_only_for_its_own_keys() {
        let mut store = MemoryStore::new();
        let bob = key(1);
        store.set_trust(BOB, &bob, Trust::Verified, 1).unwrap();
        let both = TrustMessage {
            owners: vec![
                message(BOB, &[key(2)], &[]).owners.remove(0),
                message(CAROL, &[key(3)], &[]).owners.remove(0),
            ],
        };
        let report = arrive(&mut store, BOB, bob, &both);
        assert_eq!(
            report.applied,
            [(BOB.to_owned(), key(2).fingerprint(), Trust::Verified)]
        );
        assert_eq!(report.ignored, 1);
        assert_eq!(store.trust(CAROL, &key(3)).unwrap(), None);
        assert_eq!(
            store.trust_source(BOB, &key(2)).unwrap(),
            Some(TrustSource::Atm {
                jid: BOB.into(),
                fingerprint: bob.fingerprint()
            })
        );
    }

    #[test]
    fn our_own_verified_devices_speak_for_anyone_but_not_for_this_device() {
        let mut store = MemoryStore::new();
        let laptop = key(1);
        store.set_trust(ME, &laptop, Trust::Verified, 1).unwrap();
        let mine = *device(100).identity().public();
        let report = arrive(&mut store, ME, laptop, &message(CAROL, &[key(3)], &[]));
        assert_eq!(report.applied.len(), 1);
        let report = arrive(&mut store, ME, laptop, &message(ME, &[], &[mine]));
        assert_eq!((report.applied.len(), report.ignored), (0, 1));
        assert_eq!(store.trust(ME, &mine).unwrap(), None);
    }

    #[test]
    fn statements_wait_for_their_sender_and_follow_each_other() {
        let mut store = MemoryStore::new();
        let (bob_phone, bob_laptop, bob_tablet) = (key(1), key(2), key(3));
        // Bob's phone vouches for his laptop, his laptop for his tablet; neither is verified.
        let report = arrive(
            &mut store,
            BOB,
            bob_phone,
            &message(BOB, &[bob_laptop], &[]),
        );
        assert_eq!((report.held, report.applied.len()), (1, 0));
        let report = arrive(
            &mut store,
            BOB,
            bob_laptop,
            &message(BOB, &[bob_tablet], &[]),
        );
        assert_eq!(report.held, 1);
        assert_eq!(store.trust(BOB, &bob_tablet).unwrap(), None);
        // The user verifies the phone: the laptop follows, then the tablet.
        let step = engine()
            .decide_trust(
                &store,
                &[UserDecision {
                    jid: BOB.into(),
                    identity: bob_phone,
                    trust: Trust::Verified,
                }],
                9,
            )
            .unwrap();
        let applied: Vec<String> = step.applied.iter().map(|(_, fp, _)| fp.clone()).collect();
        assert_eq!(
            applied,
            [bob_laptop.fingerprint(), bob_tablet.fingerprint()]
        );
        store.commit(step.transaction).unwrap();
        for k in [bob_phone, bob_laptop, bob_tablet] {
            assert_eq!(store.trust(BOB, &k).unwrap(), Some(Trust::Verified));
        }
        assert!(store.held_trust_from(BOB, &bob_phone).unwrap().is_empty());
        assert!(store.held_trust_from(BOB, &bob_laptop).unwrap().is_empty());
    }

    #[test]
    fn the_last_decision_about_a_key_in_one_batch_is_the_one_that_counts() {
        let (bob_phone, bob_laptop) = (key(1), key(2));
        let decision = |trust| UserDecision {
            jid: BOB.into(),
            identity: bob_phone,
            trust,
        };
        for (batch, phone, laptop) in [
            // Verified, then refused in the same call: what the phone said stays unheard.
            (
                [decision(Trust::Verified), decision(Trust::Distrusted)],
                Trust::Distrusted,
                None,
            ),
            (
                [decision(Trust::Distrusted), decision(Trust::Verified)],
                Trust::Verified,
                Some(Trust::Verified),
            ),
        ] {
            let mut store = MemoryStore::new();
            // The phone, not verified yet, vouches for the laptop: held.
            let report = arrive(
                &mut store,
                BOB,
                bob_phone,
                &message(BOB, &[bob_laptop], &[]),
            );
            assert_eq!(report.held, 1);
            let step = engine().decide_trust(&store, &batch, 9).unwrap();
            store.commit(step.transaction).unwrap();
            assert_eq!(
                store.trust(BOB, &bob_phone).unwrap(),
                Some(phone),
                "{batch:?}"
            );
            assert_eq!(store.trust(BOB, &bob_laptop).unwrap(), laptop, "{batch:?}");
            if phone == Trust::Distrusted {
                assert!(store.held_trust_from(BOB, &bob_phone).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn a_contact_cannot_lift_the_users_refusal_and_a_refused_device_is_not_heard() {
        let mut store = MemoryStore::new();
        let (bob_phone, bob_old) = (key(1), key(2));
        store
            .set_trust(BOB, &bob_phone, Trust::Verified, 1)
            .unwrap();
        store
            .set_trust(BOB, &bob_old, Trust::Distrusted, 1)
            .unwrap();
        let report = arrive(&mut store, BOB, bob_phone, &message(BOB, &[bob_old], &[]));
        assert_eq!((report.applied.len(), report.ignored), (0, 1));
        assert_eq!(store.trust(BOB, &bob_old).unwrap(), Some(Trust::Distrusted));
        let report = arrive(&mut store, BOB, bob_old, &message(BOB, &[key(3)], &[]));
        assert_eq!((report.held, report.ignored), (0, 1));
        // Nor may our own verified device: the refusal was made here. It may lift one that
        // came from it by ATM (the user changed their mind there).
        let laptop = key(4);
        store.set_trust(ME, &laptop, Trust::Verified, 1).unwrap();
        let report = arrive(&mut store, ME, laptop, &message(BOB, &[bob_old], &[]));
        assert_eq!((report.applied.len(), report.ignored), (0, 1));
        let bob_lost = key(5);
        let report = arrive(&mut store, ME, laptop, &message(BOB, &[], &[bob_lost]));
        assert_eq!(
            report.applied,
            [(BOB.to_owned(), bob_lost.fingerprint(), Trust::Distrusted)]
        );
        let report = arrive(&mut store, ME, laptop, &message(BOB, &[bob_lost], &[]));
        assert_eq!(
            report.applied,
            [(BOB.to_owned(), bob_lost.fingerprint(), Trust::Verified)]
        );
        // A distrust from a verified device of the contact is applied.
        let report = arrive(&mut store, BOB, bob_phone, &message(BOB, &[], &[bob_lost]));
        assert_eq!(
            report.applied,
            [(BOB.to_owned(), bob_lost.fingerprint(), Trust::Distrusted)]
        );
    }

    fn decide(store: &MemoryStore, jid: &str, identity: IdentityKey, trust: Trust) -> TrustStep {
        engine()
            .decide_trust(
                store,
                &[UserDecision {
                    jid: jid.into(),
                    identity,
                    trust,
                }],
                3,
            )
            .unwrap()
    }

    /// `(addressee, owner, trusted keys, distrusted keys)` of each queued message.
    fn queued(step: &TrustStep) -> Vec<(String, String, usize, usize)> {
        let mut out = Vec::new();
        for (to, xml) in &step.transaction.trust_messages {
            let m = TrustMessage::from_element(&xml.parse().unwrap()).unwrap();
            for o in m.owners {
                out.push((to.clone(), o.jid, o.trust.len(), o.distrust.len()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn what_each_decision_announces_and_to_whom() {
        let mut store = MemoryStore::new();
        // Alone, verifying a contact tells nobody (no other device of ours is verified).
        let step = decide(&store, BOB, key(1), Trust::Verified);
        assert_eq!(step.queued, 0);
        store.commit(step.transaction).unwrap();
        // Our laptop verified: it hears everything we know; Bob hears of the laptop.
        let step = decide(&store, ME, key(5), Trust::Verified);
        assert_eq!(
            queued(&step),
            [
                (ME.into(), ME.into(), 1, 0),
                (ME.into(), BOB.into(), 1, 0),
                (BOB.into(), ME.into(), 1, 0),
            ]
        );
        store.commit(step.transaction).unwrap();
        // Now a contact's key: our devices hear of it, the contact of our verified keys.
        let step = decide(&store, CAROL, key(7), Trust::Verified);
        assert_eq!(
            queued(&step),
            [
                (ME.into(), CAROL.into(), 1, 0),
                (CAROL.into(), ME.into(), 1, 0)
            ]
        );
        // Refusing a contact's key tells only our own devices.
        let step = decide(&store, BOB, key(1), Trust::Distrusted);
        assert_eq!(queued(&step), [(ME.into(), BOB.into(), 0, 1)]);
        // Refusing one of ours tells every verified contact (and our other verified devices:
        // none is left here).
        let step = decide(&store, ME, key(5), Trust::Distrusted);
        assert_eq!(queued(&step), [(BOB.into(), ME.into(), 0, 1)]);
        // Blind trust is a decision, but nothing to announce.
        assert_eq!(decide(&store, BOB, key(9), Trust::Blind).queued, 0);
    }
}
