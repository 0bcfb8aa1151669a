//! Short authentication strings: two devices compare seven words instead of two fingerprints.
//!
//! Two devices with an OMEMO session run a fresh X25519 exchange over it, and each shows seven
//! words derived from the shared secret *and* from both identity keys as that device sees
//! them. The users compare the words (side by side, or over a call); when they match, each
//! marks the other device verified.
//!
//! ## The exchange
//!
//! ```text
//! initiator I                                   responder R
//! start(id)                          ─────────►
//!                                    ◄───────── accept(id, commitment = H(e_R ‖ id))
//! key(id, e_I)                       ─────────►
//!                                    ◄───────── key(id, e_R)      I checks H(e_R ‖ id)
//! both: s = X25519(own ephemeral, other's ephemeral)
//!       words = HKDF-SHA256(ikm = s, salt = id,
//!                           info = "Hush SAS v1" ‖ I's JID, device, identity key, e_I
//!                                               ‖ R's JID, device, identity key, e_R)
//! ```
//!
//! `H` is SHA-256 over a domain label, and every variable-length field of `info` is
//! length-prefixed. Identity keys enter in their Curve25519 form (the one every client agrees
//! on: see [`IdentityKey::fingerprint`]). Six bytes of output give seven words of six bits each
//! from [`WORDS`] (42 bits).
//!
//! ## Why someone in the middle cannot make the words match
//!
//! A server can add a device of its own to each account's list, and relay between Alice and
//! "Bob's device" (its own) and between "Alice's device" (its own) and Bob. Each side's words
//! then come from a different exchange, with a different shared secret and different identity
//! keys in `info`; they match only if the two 42-bit outputs collide. The commitment decides
//! who can try to steer that:
//!
//! * Facing the initiator, the attacker must commit to its ephemeral key before it sees
//!   `e_I`; the words Alice sees are then fixed, and only then known to it.
//! * Facing the responder, it must send its ephemeral key before Bob reveals `e_R` (Bob
//!   committed to it first): whatever it sends, Bob's words depend on a key it did not know.
//!
//! So one attempt succeeds with probability 2⁻⁴², and a failed attempt shows as words that
//! differ — which the users see. A different identity key on either side (the attacker's device
//! instead of the real one) changes `info`, so the attacker cannot reuse one exchange for both
//! sides either. This is the hash commitment of ZRTP (RFC 6189 §4.4.1) and Matrix's SAS.
//!
//! The messages travel inside OMEMO, encrypted to the one device being compared, so the
//! identity key each side binds is the one its session authenticated. Nothing here is secret
//! after the exchange: the ephemeral keys are dropped (zeroized) with the [`Sas`].

use core::fmt;

use minidom::Element;
use sha2::{Digest, Sha256};

use crate::keys::{IdentityKey, KeyPair};
use crate::CryptoRng;

/// The namespace of the exchange's elements (Hush's own; no XEP defines one for OMEMO).
pub const NS: &str = "urn:hush:sas:0";

/// How many words a code has.
pub const WORD_COUNT: usize = 7;

/// The 64 words: short, common, and unlike one another when read aloud.
pub const WORDS: [&str; 64] = [
    "apple", "anchor", "arrow", "banana", "basket", "beach", "bell", "bicycle", "bottle", "bridge",
    "butter", "camera", "candle", "carpet", "castle", "cherry", "circle", "cloud", "coffee",
    "copper", "desert", "diamond", "dolphin", "dragon", "eagle", "engine", "feather", "forest",
    "garden", "ginger", "guitar", "hammer", "harbor", "island", "jacket", "kettle", "ladder",
    "lemon", "lizard", "magnet", "meadow", "mirror", "monkey", "orange", "pencil", "pepper",
    "piano", "pillow", "planet", "pocket", "rabbit", "rocket", "saddle", "silver", "spider",
    "summer", "thunder", "tiger", "tomato", "tunnel", "violin", "window", "winter", "zebra",
];

const INFO_LABEL: &[u8] = b"Hush SAS v1";
const COMMIT_LABEL: &[u8] = b"Hush SAS commitment v1";
/// The longest exchange id accepted (ids are ours: 32 hex digits).
const MAX_ID: usize = 64;

/// One device of the exchange, as the device running it knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// Its account (bare JID).
    pub jid: String,
    /// Its device id.
    pub device: u32,
    /// Its identity key (for the other device: the one its OMEMO session holds).
    pub identity: IdentityKey,
}

/// One message of the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SasMessage {
    /// The initiator asks to compare.
    Start {
        /// The exchange.
        id: String,
    },
    /// The responder agrees and commits to its ephemeral key.
    Accept {
        /// The exchange.
        id: String,
        /// `H(e_R ‖ id)`.
        commitment: [u8; 32],
    },
    /// An ephemeral public key.
    Key {
        /// The exchange.
        id: String,
        /// The X25519 public key.
        key: [u8; 32],
    },
    /// Either side gives up (a mismatch, a refusal, a timeout).
    Cancel {
        /// The exchange.
        id: String,
        /// Why, in a word (`mismatch`, `declined`, `timeout`, `commitment`…).
        reason: String,
    },
}

/// Why an exchange cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// Not an element of the exchange, or a malformed one.
    #[error("not a well-formed short authentication string message")]
    Malformed,
    /// A message of another exchange.
    #[error("a message of another comparison ({0})")]
    OtherExchange(String),
    /// A message that does not come next.
    #[error("a {got} message where a {expected} was due")]
    OutOfOrder {
        /// What was due.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// The responder's key is not the one it committed to: someone changed it on the way.
    #[error("the other device's key does not match what it committed to: someone tampered with the comparison")]
    CommitmentMismatch,
    /// A key that gives no shared secret (low order).
    #[error("the other device sent an unusable key")]
    BadKey,
    /// The other side gave up.
    #[error("the other device cancelled the comparison ({0})")]
    Cancelled(String),
}

/// The words both users compare.
#[derive(Clone, PartialEq, Eq)]
pub struct SasCode {
    bytes: [u8; 6],
}

impl SasCode {
    /// The seven words, six bits each from the derived bytes.
    pub fn words(&self) -> [&'static str; WORD_COUNT] {
        let bits = self
            .bytes
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // 48 bits; the first 42 make the words.
        core::array::from_fn(|i| WORDS[((bits >> (42 - 6 * i)) & 0x3f) as usize])
    }
}

impl fmt::Display for SasCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(" "))
    }
}

impl fmt::Debug for SasCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SasCode(..)")
    }
}

/// Which side of the exchange this device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// It sent `start`.
    Initiator,
    /// It answered one.
    Responder,
}

#[derive(Debug)]
enum State {
    /// Initiator: waiting for `accept`.
    Started,
    /// Initiator: sent its key, waiting for the responder's.
    KeySent { commitment: [u8; 32] },
    /// Responder: committed, waiting for the initiator's key.
    Accepted,
    /// Both keys known: the words are there.
    Done(SasCode),
    /// Given up.
    Failed(SasError),
}

/// One comparison, on one device. Its ephemeral key lives only here (zeroized on drop).
pub struct Sas {
    id: String,
    role: Role,
    us: Party,
    them: Party,
    ephemeral: KeyPair,
    state: State,
}

impl fmt::Debug for Sas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sas")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("us", &(self.us.jid.as_str(), self.us.device))
            .field("them", &(self.them.jid.as_str(), self.them.device))
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Sas {
    /// Starts a comparison with `them`: the `start` to send them.
    pub fn start<R: CryptoRng + ?Sized>(us: Party, them: Party, rng: &mut R) -> (Self, SasMessage) {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let sas = Self {
            id: id.clone(),
            role: Role::Initiator,
            us,
            them,
            ephemeral: KeyPair::generate(rng),
            state: State::Started,
        };
        (sas, SasMessage::Start { id })
    }

    /// Answers `them`'s `start` of exchange `id`: the `accept` to send them.
    pub fn accept<R: CryptoRng + ?Sized>(
        us: Party,
        them: Party,
        id: &str,
        rng: &mut R,
    ) -> Result<(Self, SasMessage), SasError> {
        if id.is_empty() || id.len() > MAX_ID {
            return Err(SasError::Malformed);
        }
        let ephemeral = KeyPair::generate(rng);
        let commitment = commit(&ephemeral.public(), id);
        let sas = Self {
            id: id.to_owned(),
            role: Role::Responder,
            us,
            them,
            ephemeral,
            state: State::Accepted,
        };
        Ok((
            sas,
            SasMessage::Accept {
                id: id.to_owned(),
                commitment,
            },
        ))
    }

    /// The exchange's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This device's side.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The other device.
    pub fn them(&self) -> &Party {
        &self.them
    }

    /// The words, once both keys are known.
    pub fn code(&self) -> Option<&SasCode> {
        match &self.state {
            State::Done(code) => Some(code),
            _ => None,
        }
    }

    /// Why it failed, if it did.
    pub fn failure(&self) -> Option<&SasError> {
        match &self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Takes the other device's next message; gives what to send back, if anything. An error
    /// ends the exchange (send a `cancel`).
    pub fn receive(&mut self, message: &SasMessage) -> Result<Option<SasMessage>, SasError> {
        let result = self.step(message);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self, message: &SasMessage) -> Result<Option<SasMessage>, SasError> {
        if message.id() != self.id {
            return Err(SasError::OtherExchange(message.id().to_owned()));
        }
        if let SasMessage::Cancel { reason, .. } = message {
            return Err(SasError::Cancelled(reason.clone()));
        }
        match (&self.state, message) {
            (State::Started, SasMessage::Accept { commitment, .. }) => {
                self.state = State::KeySent {
                    commitment: *commitment,
                };
                Ok(Some(SasMessage::Key {
                    id: self.id.clone(),
                    key: self.ephemeral.public(),
                }))
            }
            (State::KeySent { commitment }, SasMessage::Key { key, .. }) => {
                let expected = commit(key, &self.id);
                if !bool::from(subtle::ConstantTimeEq::ct_eq(
                    &expected[..],
                    &commitment[..],
                )) {
                    return Err(SasError::CommitmentMismatch);
                }
                let code = self.derive(key)?;
                self.state = State::Done(code);
                Ok(None)
            }
            (State::Accepted, SasMessage::Key { key, .. }) => {
                let code = self.derive(key)?;
                self.state = State::Done(code);
                Ok(Some(SasMessage::Key {
                    id: self.id.clone(),
                    key: self.ephemeral.public(),
                }))
            }
            (state, got) => Err(SasError::OutOfOrder {
                expected: match state {
                    State::Started => "accept",
                    State::KeySent { .. } | State::Accepted => "key",
                    State::Done(_) | State::Failed(_) => "nothing",
                },
                got: got.kind(),
            }),
        }
    }

    /// The code from the other side's ephemeral key `theirs`.
    fn derive(&self, theirs: &[u8; 32]) -> Result<SasCode, SasError> {
        let shared = self.ephemeral.dh(theirs).map_err(|_| SasError::BadKey)?;
        let ours = self.ephemeral.public();
        let (initiator, e_i, responder, e_r) = match self.role {
            Role::Initiator => (&self.us, &ours, &self.them, theirs),
            Role::Responder => (&self.them, theirs, &self.us, &ours),
        };
        let mut info = INFO_LABEL.to_vec();
        for (party, ephemeral) in [(initiator, e_i), (responder, e_r)] {
            push_field(&mut info, party.jid.as_bytes());
            info.extend_from_slice(&party.device.to_be_bytes());
            info.extend_from_slice(&party.identity.curve25519());
            info.extend_from_slice(ephemeral);
        }
        let derived = crate::crypto::hkdf::<6>(self.id.as_bytes(), shared.as_ref(), &info);
        Ok(SasCode { bytes: *derived })
    }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// `H(e ‖ id)`, domain-separated.
fn commit(key: &[u8; 32], id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMIT_LABEL);
    h.update(key);
    h.update(id.as_bytes());
    h.finalize().into()
}

impl SasMessage {
    /// The exchange it belongs to.
    pub fn id(&self) -> &str {
        match self {
            Self::Start { id } | Self::Accept { id, .. } | Self::Key { id, .. } => id,
            Self::Cancel { id, .. } => id,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::Accept { .. } => "accept",
            Self::Key { .. } => "key",
            Self::Cancel { .. } => "cancel",
        }
    }

    /// Whether `element` is a message of the exchange (for an SCE envelope's content).
    pub fn is(element: &Element) -> bool {
        element.is("sas", NS)
    }

    /// `<sas xmlns='urn:hush:sas:0' id='…' step='start|accept|key|cancel' [value='…']/>`.
    pub fn to_element(&self) -> Element {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let value = match self {
            Self::Start { .. } => None,
            Self::Accept { commitment, .. } => Some(b64.encode(commitment)),
            Self::Key { key, .. } => Some(b64.encode(key)),
            Self::Cancel { reason, .. } => Some(reason.clone()),
        };
        let mut el = Element::builder("sas", NS)
            .attr(crate::xml::an("id"), self.id())
            .attr(crate::xml::an("step"), self.kind());
        if let Some(v) = value {
            el = el.attr(crate::xml::an("value"), v);
        }
        el.build()
    }

    /// Reads [`Self::to_element`].
    pub fn from_element(el: &Element) -> Result<Self, SasError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        if !Self::is(el) {
            return Err(SasError::Malformed);
        }
        let id = el.attr("id").unwrap_or_default();
        if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SasError::Malformed);
        }
        let id = id.to_owned();
        let bytes32 = || -> Result<[u8; 32], SasError> {
            let v = b64
                .decode(el.attr("value").unwrap_or_default())
                .map_err(|_| SasError::Malformed)?;
            v.try_into().map_err(|_| SasError::Malformed)
        };
        Ok(match el.attr("step").unwrap_or_default() {
            "start" => Self::Start { id },
            "accept" => Self::Accept {
                id,
                commitment: bytes32()?,
            },
            "key" => Self::Key {
                id,
                key: bytes32()?,
            },
            "cancel" => Self::Cancel {
                id,
                reason: el
                    .attr("value")
                    .unwrap_or("cancelled")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .take(32)
                    .collect(),
            },
            _ => return Err(SasError::Malformed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn party(jid: &str, device: u32, seed: u64) -> Party {
        let mut rng = StdRng::seed_from_u64(seed);
        Party {
            jid: jid.into(),
            device,
            identity: *crate::keys::IdentityKeyPair::generate(&mut rng).public(),
        }
    }

    /// Runs the four messages between `i` (initiator) and `r` (responder), each message through
    /// `wire` (which may change it), and gives both sides' results.
    fn run(
        i: &mut Sas,
        start: SasMessage,
        r_us: Party,
        r_them: Party,
        rng: &mut StdRng,
    ) -> (Sas, Result<(), SasError>) {
        let SasMessage::Start { id } = start else {
            panic!("not a start")
        };
        let (mut r, accept) = Sas::accept(r_us, r_them, &id, rng).unwrap();
        let key_i = i.receive(&accept).unwrap().unwrap();
        let key_r = r.receive(&key_i).unwrap().unwrap();
        let done = i.receive(&key_r).map(|none| assert!(none.is_none()));
        (r, done)
    }

    #[test]
    fn two_honest_devices_see_the_same_words() {
        let mut rng = StdRng::seed_from_u64(1);
        let (alice, bob) = (party("alice@x", 1, 10), party("bob@y", 2, 20));
        let (mut i, start) = Sas::start(alice.clone(), bob.clone(), &mut rng);
        let (r, done) = run(&mut i, start, bob, alice, &mut rng);
        done.unwrap();
        let (a, b) = (i.code().unwrap(), r.code().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.words().len(), 7);
        assert_eq!(a.to_string().split(' ').count(), 7);
        // Another run gives other words (fresh ephemeral keys).
        let (alice, bob) = (party("alice@x", 1, 10), party("bob@y", 2, 20));
        let (mut i2, start) = Sas::start(alice.clone(), bob.clone(), &mut rng);
        let (_, done) = run(&mut i2, start, bob, alice, &mut rng);
        done.unwrap();
        assert_ne!(i2.code().unwrap(), a);
    }

    /// The server relays through devices of its own: each side's words bind the key it sees,
    /// so they differ.
    #[test]
    fn a_device_in_the_middle_gets_different_words_on_each_side() {
        let mut rng = StdRng::seed_from_u64(2);
        let (alice, bob) = (party("alice@x", 1, 10), party("bob@y", 2, 20));
        // The attacker's stand-ins: "Bob's device 2" facing Alice, "Alice's device 1" facing Bob.
        let (fake_bob, fake_alice) = (party("bob@y", 2, 66), party("alice@x", 1, 77));
        let (mut a, start) = Sas::start(alice.clone(), fake_bob.clone(), &mut rng);
        let (m1, done) = run(&mut a, start, fake_bob.clone(), alice.clone(), &mut rng);
        done.unwrap();
        let (mut m2, start) = Sas::start(fake_alice.clone(), bob.clone(), &mut rng);
        let (b, done) = run(&mut m2, start, bob.clone(), fake_alice.clone(), &mut rng);
        done.unwrap();
        assert_eq!(a.code(), m1.code());
        assert_eq!(m2.code(), b.code());
        assert_ne!(a.code(), b.code(), "Alice and Bob must see different words");
    }

    /// Changing the responder's key after its commitment is caught; so are keys of another
    /// exchange, messages out of order and a cancel.
    #[test]
    fn tampering_and_disorder_end_the_exchange() {
        let mut rng = StdRng::seed_from_u64(3);
        let (alice, bob) = (party("alice@x", 1, 10), party("bob@y", 2, 20));
        let (mut i, start) = Sas::start(alice.clone(), bob.clone(), &mut rng);
        let SasMessage::Start { id } = start.clone() else {
            unreachable!()
        };
        let (mut r, accept) = Sas::accept(bob.clone(), alice.clone(), &id, &mut rng).unwrap();
        let key_i = i.receive(&accept).unwrap().unwrap();
        let SasMessage::Key { key, .. } = r.receive(&key_i).unwrap().unwrap() else {
            unreachable!()
        };
        let mut swapped = key;
        swapped[0] ^= 1;
        let forged = SasMessage::Key {
            id: id.clone(),
            key: swapped,
        };
        assert_eq!(i.receive(&forged), Err(SasError::CommitmentMismatch));
        assert!(i.code().is_none());
        assert_eq!(i.failure(), Some(&SasError::CommitmentMismatch));

        let (mut i, _) = Sas::start(alice.clone(), bob.clone(), &mut rng);
        let other = SasMessage::Key {
            id: "elsewhere".into(),
            key,
        };
        assert!(matches!(i.receive(&other), Err(SasError::OtherExchange(_))));
        let (mut i, start) = Sas::start(alice.clone(), bob.clone(), &mut rng);
        let early = SasMessage::Key {
            id: start.id().to_owned(),
            key,
        };
        assert!(matches!(
            i.receive(&early),
            Err(SasError::OutOfOrder { .. })
        ));
        let (mut i, start) = Sas::start(alice, bob, &mut rng);
        let cancel = SasMessage::Cancel {
            id: start.id().to_owned(),
            reason: "declined".into(),
        };
        assert_eq!(
            i.receive(&cancel),
            Err(SasError::Cancelled("declined".into()))
        );
    }

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        let messages = [
            SasMessage::Start { id: "ab12".into() },
            SasMessage::Accept {
                id: "ab12".into(),
                commitment: [7; 32],
            },
            SasMessage::Key {
                id: "ab12".into(),
                key: [9; 32],
            },
            SasMessage::Cancel {
                id: "ab12".into(),
                reason: "mismatch".into(),
            },
        ];
        for m in messages {
            assert_eq!(SasMessage::from_element(&m.to_element()), Ok(m));
        }
        for junk in [
            "<sas xmlns='urn:hush:sas:0' step='start'/>",
            "<sas xmlns='urn:hush:sas:0' id='a b' step='start'/>",
            "<sas xmlns='urn:hush:sas:0' id='ab' step='dance'/>",
            "<sas xmlns='urn:hush:sas:0' id='ab' step='key' value='AAAA'/>",
            "<sas xmlns='urn:other' id='ab' step='start'/>",
        ] {
            let el: Element = junk.parse().unwrap();
            assert_eq!(
                SasMessage::from_element(&el),
                Err(SasError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn the_word_list_has_64_distinct_words() {
        let mut w = WORDS.to_vec();
        w.sort_unstable();
        w.dedup();
        assert_eq!(w.len(), 64);
    }
}
