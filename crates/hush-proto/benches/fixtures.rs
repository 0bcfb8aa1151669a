//! Set-ups shared by the criterion benches and the `bench_ops` example (used by
//! `scripts/bench-vs-python`), so both measure exactly the same operations.

#![allow(dead_code)]

use hush_proto::{
    seal, x3dh, Bundle, EncryptedElement, KeyPair, LocalDevice, Recipient, Session, Suite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub const ALICE: &str = "alice@example.org";
pub const BOB: &str = "bob@example.net";

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Alice's device with confirmed sessions to `n` devices of Bob (each of which holds the
/// matching session back to Alice).
pub struct Established {
    pub suite: Suite,
    pub alice: LocalDevice,
    pub bobs: Vec<LocalDevice>,
    pub to_bob: Vec<Session>,
    pub from_alice: Vec<Session>,
    pub rng: StdRng,
}

impl Established {
    pub fn new(suite: Suite, n: usize) -> Self {
        let mut rng = rng(7);
        let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let mut bobs = Vec::new();
        let mut to_bob = Vec::new();
        let mut from_alice = Vec::new();
        for i in 0..n {
            let bob = LocalDevice::generate(100 + i as u32, 1, 0, &mut rng).unwrap();
            let mut s = Session::initiate(alice.identity(), &bob.bundle(suite), &mut rng).unwrap();
            let first = seal(
                suite,
                1,
                Some(b"hi"),
                &mut [Recipient {
                    jid: BOB,
                    device_id: bob.device_id(),
                    session: &mut s,
                }],
                &mut rng,
            )
            .unwrap();
            let mut back = bob
                .open(&first, BOB, ALICE, None, &mut rng)
                .unwrap()
                .new_session
                .unwrap();
            let reply = seal(
                suite,
                bob.device_id(),
                None,
                &mut [Recipient {
                    jid: ALICE,
                    device_id: 1,
                    session: &mut back,
                }],
                &mut rng,
            )
            .unwrap();
            alice
                .open(&reply, ALICE, BOB, Some(&mut s), &mut rng)
                .unwrap();
            assert!(s.is_confirmed());
            bobs.push(bob);
            to_bob.push(s);
            from_alice.push(back);
        }
        Self {
            suite,
            alice,
            bobs,
            to_bob,
            from_alice,
            rng,
        }
    }

    /// Encrypts `payload` once for all of Bob's devices.
    pub fn seal_all(&mut self, payload: &[u8]) -> EncryptedElement {
        let mut recipients: Vec<Recipient<'_>> = self
            .to_bob
            .iter_mut()
            .zip(&self.bobs)
            .map(|(s, b)| Recipient {
                jid: BOB,
                device_id: b.device_id(),
                session: s,
            })
            .collect();
        seal(self.suite, 1, Some(payload), &mut recipients, &mut self.rng).unwrap()
    }

    /// Encrypts for Bob's first device and decrypts there.
    pub fn round_trip(&mut self, payload: &[u8]) -> usize {
        let el = seal(
            self.suite,
            1,
            Some(payload),
            &mut [Recipient {
                jid: BOB,
                device_id: self.bobs[0].device_id(),
                session: &mut self.to_bob[0],
            }],
            &mut self.rng,
        )
        .unwrap();
        let opened = self.bobs[0]
            .open(
                &el,
                BOB,
                ALICE,
                Some(&mut self.from_alice[0]),
                &mut self.rng,
            )
            .unwrap();
        opened.payload.unwrap().len()
    }
}

/// A fresh key exchange from Alice to Bob: Bob's device and the first message.
pub struct KeyExchange {
    pub suite: Suite,
    pub alice: LocalDevice,
    pub bob: LocalDevice,
    pub bundle: Bundle,
    pub rng: StdRng,
    /// Raw X25519 pairs for the X3DH-only benches.
    alice_pair: KeyPair,
    bob_pair: KeyPair,
    opk: KeyPair,
    ek: [u8; 32],
}

impl KeyExchange {
    pub fn new(suite: Suite) -> Self {
        let mut rng = rng(9);
        let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let bob = LocalDevice::generate(2, 100, 0, &mut rng).unwrap();
        let bundle = bob.bundle(suite);
        let alice_pair = KeyPair::from_secret(*alice.identity().secret_bytes());
        let bob_pair = KeyPair::from_secret(*bob.identity().secret_bytes());
        let opk = KeyPair::generate(&mut rng);
        let ek = KeyPair::generate(&mut rng).public();
        Self {
            suite,
            alice,
            bob,
            bundle,
            rng,
            alice_pair,
            bob_pair,
            opk,
            ek,
        }
    }

    /// Active side: verify the bundle, X3DH, first ratchet step, wrap a 48-byte key.
    pub fn initiate(&mut self) -> EncryptedElement {
        let mut s = Session::initiate(self.alice.identity(), &self.bundle, &mut self.rng).unwrap();
        seal(
            self.suite,
            1,
            Some(&[0u8; 100]),
            &mut [Recipient {
                jid: BOB,
                device_id: 2,
                session: &mut s,
            }],
            &mut self.rng,
        )
        .unwrap()
    }

    /// X3DH alone, initiator: bundle signature check, ephemeral key, four DH, HKDF.
    pub fn agree_active(&mut self) -> [u8; 32] {
        self.bundle.verify().unwrap();
        let ek = KeyPair::generate(&mut self.rng);
        let (id, spk, opk) = (
            self.bundle.identity.curve25519(),
            self.bundle.spk,
            self.bundle.prekeys[0].1,
        );
        *x3dh::active(self.suite, &self.alice_pair, &ek, &id, &spk, &opk).unwrap()
    }

    /// X3DH alone, responder: four DH, HKDF.
    pub fn agree_passive(&mut self) -> [u8; 32] {
        let spk = &self.bob.signed_prekey().pair;
        let alice = self.alice.identity().public().curve25519();
        *x3dh::passive(self.suite, &self.bob_pair, spk, &self.opk, &alice, &self.ek).unwrap()
    }

    /// Passive side: X3DH from the key exchange, first ratchet step, decrypt.
    pub fn accept(&mut self, message: &EncryptedElement) -> usize {
        let opened = self
            .bob
            .open(message, BOB, ALICE, None, &mut self.rng)
            .unwrap();
        opened.payload.unwrap().len()
    }
}
