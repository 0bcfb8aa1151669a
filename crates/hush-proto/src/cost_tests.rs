//! What one message costs in SHA-256 blocks, counted through the HMAC of `mac.rs` (all of a
//! message's hashing but the content digest the engine takes). `scripts/bench-vs-python`
//! divides the symmetric rows by what their SHA-256 and AES blocks cost in OpenSSL (its
//! `FLOORS`); these tests keep its SHA-256 figures true, and show where a change adds hashing.
//!
//! Per side of an OMEMO:2 message, in blocks: the payload key's HKDF 10 (extract 2 with the
//! zero salt keyed once, the expansion key 2, three output blocks 2 each); the payload tag 5
//! (key 2, 112 bytes of ciphertext 2, outer 1); then per device the chain step 6 (key 2, two
//! tags 2 each), the message key's HKDF 12 (its longer info takes a second block in the last
//! two outputs) and the message tag 6 (key 2, 64 bytes of associated data and the serialized
//! message 3, outer 1).

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::mac::counter::blocks_in;
use crate::{seal, EncryptedElement, LocalDevice, Recipient, Session, Suite};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

/// Alice (device 1) and `n` devices of Bob's with confirmed sessions both ways.
struct Pair {
    suite: Suite,
    rng: StdRng,
    bobs: Vec<(LocalDevice, Session)>,
    to_bob: Vec<Session>,
}

impl Pair {
    fn new(suite: Suite, n: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(5);
        let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let mut bobs = Vec::new();
        let mut to_bob = Vec::new();
        for id in 2..2 + n {
            let bob = LocalDevice::generate(id, 1, 0, &mut rng).unwrap();
            let mut to = Session::initiate(alice.identity(), &bob.bundle(suite), &mut rng).unwrap();
            let first = seal_to(suite, 1, &mut to, BOB, id, &mut rng);
            let mut back = bob
                .open(&first, BOB, ALICE, None, &mut rng)
                .unwrap()
                .session;
            let answer = seal_to(suite, id, &mut back, ALICE, 1, &mut rng);
            let to = alice
                .open(&answer, ALICE, BOB, Some(to), &mut rng)
                .unwrap()
                .session;
            assert!(to.is_confirmed());
            bobs.push((bob, back));
            to_bob.push(to);
        }
        Self {
            suite,
            rng,
            bobs,
            to_bob,
        }
    }

    /// Blocks to encrypt 100 bytes for every device, and the message.
    fn seal(&mut self) -> (usize, EncryptedElement) {
        let mut recipients: Vec<Recipient<'_>> = self
            .to_bob
            .iter_mut()
            .zip(&self.bobs)
            .map(|(session, (bob, _))| Recipient {
                jid: BOB,
                device_id: bob.device_id(),
                session,
            })
            .collect();
        let rng = &mut self.rng;
        blocks_in(|| seal(self.suite, 1, Some(&[0x42; 100]), &mut recipients, rng).unwrap())
    }

    /// Blocks for Bob's first device to decrypt `message`.
    fn open(&mut self, message: &EncryptedElement) -> usize {
        let (bob, session) = &mut self.bobs[0];
        let rng = &mut self.rng;
        let (blocks, opened) = blocks_in(|| {
            bob.open(message, BOB, ALICE, Some(session.clone()), rng)
                .unwrap()
        });
        assert_eq!(opened.payload.unwrap().len(), 100);
        *session = opened.session;
        blocks
    }
}

fn seal_to(
    suite: Suite,
    from: u32,
    session: &mut Session,
    jid: &str,
    device_id: u32,
    rng: &mut StdRng,
) -> EncryptedElement {
    let recipient = Recipient {
        jid,
        device_id,
        session,
    };
    seal(suite, from, Some(b"hi"), &mut [recipient], rng).unwrap()
}

#[test]
fn an_omemo2_message_costs_39_blocks_each_side_and_24_per_further_device() {
    let mut pair = Pair::new(Suite::Omemo2, 1);
    // Bob's first read of Alice's new ratchet key also turns his ratchet: two root-chain
    // HKDFs of 10 blocks each (the secret salt is keyed each time).
    let (_, turn) = pair.seal();
    assert_eq!(
        pair.open(&turn),
        39 + 2 * 10,
        "decrypting across a ratchet step"
    );
    // Then the same cost all along the chain, where its counters take more bytes.
    for _ in 0..200 {
        let (sealed, message) = pair.seal();
        assert_eq!(sealed, 39, "encrypting for one device");
        assert_eq!(pair.open(&message), 39, "decrypting");
    }
    let mut three = Pair::new(Suite::Omemo2, 3);
    assert_eq!(three.seal().0, 15 + 3 * 24, "encrypting for three devices");
}

#[test]
fn a_legacy_message_costs_its_ratchet_only() {
    // No hashing for the AES-GCM payload: per device the chain step 6, the message key's HKDF
    // 10 (its info is short) and the tag 6 (33-byte keys, a version byte and the message).
    let mut pair = Pair::new(Suite::Legacy, 1);
    let (_, turn) = pair.seal();
    pair.open(&turn);
    for _ in 0..200 {
        let (sealed, message) = pair.seal();
        assert_eq!(sealed, 22, "encrypting for one device");
        assert_eq!(pair.open(&message), 22, "decrypting");
    }
}
