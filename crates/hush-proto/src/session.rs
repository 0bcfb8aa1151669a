//! A session with one remote device: X3DH result, ratchet, and the key-exchange bookkeeping.
//!
//! The initiator keeps sending its key exchange (`kex='true'`) with every message until the peer
//! has answered once (XEP-0384: "resend the OMEMOKeyExchange until the peer replies"). The
//! ephemeral key `ek` of the exchange is stored so that a repeated key exchange for the same
//! session is recognised and only its inner message processed.
//!
//! Sessions are plain values: the caller persists them after every successful operation, before
//! anything produced by that operation leaves the device.
//!
//! A [`Session`] is a record of Double Ratchet states with one device: the current one and up
//! to [`MAX_PREVIOUS_STATES`] earlier ones. Which state is current — after simultaneous
//! initiation, a restart by the peer, or a key exchange that arrives late — is described on
//! [`Session`], and so are the bounds that keep a record cheap whatever a peer or a server
//! sends:
//!
//! * One message that no state reads (forged, or garbage) makes at most 4 states derive
//!   message keys (at most 1,000 each) and runs at most 3 DH ratchet steps (each two X25519
//!   agreements and a new key pair), plus one MAC check per state holding a skipped key for its
//!   header — instead of 41 states doing all of it.
//! * A record holds at most 1,000 skipped message keys in all ([`MAX_SKIPPED_KEYS`]) and
//!   serialises to at most 140 KB, instead of 1,000 keys per state and 2.9 MB.
//!
//! [`MAX_SKIPPED_KEYS`]: crate::MAX_SKIPPED_KEYS

use std::collections::VecDeque;

use prost::Message;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::bundle::Bundle;
use crate::error::{ProtoError, Result};
use crate::keys::{IdentityKey, IdentityKeyPair, KeyPair};
use crate::ratchet::{Effort, Ratchet, SkippedKey, MAX_SKIPPED_KEYS};
use crate::suite::Suite;
use crate::wire;
use crate::x3dh;

/// Who started the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiation {
    /// We fetched the peer's bundle and sent the key exchange.
    Active,
    /// The peer's key exchange built this session.
    Passive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingKex {
    pk_id: u32,
    spk_id: u32,
    own_identity: Vec<u8>,
}

/// One encrypted `<key>`: the ratchet output for one device, and whether it carries a key exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedKey {
    /// Bytes to base64 into the `<key>` element.
    pub data: Vec<u8>,
    /// Set `kex='true'` (OMEMO:2) / `prekey='true'` (legacy).
    pub kex: bool,
}

/// Messages received without answering after which a heartbeat is sent (XEP-0384 §8
/// "Business rules" suggests 53, and deployed clients use it).
pub const HEARTBEAT_AFTER: u32 = 53;

/// One Double Ratchet state with a remote device: what one X3DH produced and the ratchet since.
#[derive(Clone)]
pub(crate) struct State {
    suite: Suite,
    peer_identity: IdentityKey,
    ad_send: Vec<u8>,
    ad_recv: Vec<u8>,
    ratchet: Ratchet,
    initiation: Initiation,
    pending_kex: Option<PendingKex>,
    kex_ek: [u8; 32],
    /// The earliest stamp among the messages read on this state that carried one: the peer's
    /// clock (unix seconds) when it first wrote on this state, as far as we know.
    first_stamp: Option<u64>,
    /// The state was replaced because its sending side can no longer be trusted (a restore or
    /// a rollback rewound it: its next message keys may have been used already). It still
    /// reads what the peer sent on it, but never becomes current again: sending on it could
    /// use a message key twice (see [`Session::restart`]).
    read_only: bool,
}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("suite", &self.suite)
            .field("peer", &self.peer_identity)
            .field("initiation", &self.initiation)
            .field("confirmed", &self.pending_kex.is_none())
            .field("sent", &self.ratchet.ns)
            .field("received", &self.ratchet.nr)
            .field("first_stamp", &self.first_stamp)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Associated data for each direction. OMEMO:2 uses `IK_A ‖ IK_B` (A = initiator) both ways;
/// libsignal (legacy) uses `sender ‖ recipient`.
fn associated_data(
    suite: Suite,
    own: &[u8],
    peer: &[u8],
    initiation: Initiation,
) -> (Vec<u8>, Vec<u8>) {
    let own_first = [own, peer].concat();
    let peer_first = [peer, own].concat();
    match (suite, initiation) {
        (Suite::Omemo2, Initiation::Active) => (own_first.clone(), own_first),
        (Suite::Omemo2, Initiation::Passive) => (peer_first.clone(), peer_first),
        (Suite::Legacy, _) => (own_first, peer_first),
    }
}

impl State {
    /// Starts a session from a peer's bundle (active X3DH). Verifies the bundle's signature and
    /// uses one of its one-time prekeys, chosen at random.
    fn initiate<R: CryptoRng + ?Sized>(
        own: &IdentityKeyPair,
        bundle: &Bundle,
        rng: &mut R,
    ) -> Result<Self> {
        Self::initiate_drawn(own, bundle, Draws::from(rng))
    }

    /// [`State::initiate`] with its randomness drawn already: deterministic, so that many
    /// can run at once on other threads ([`Session::initiate_all`]).
    fn initiate_drawn(own: &IdentityKeyPair, bundle: &Bundle, draws: Draws) -> Result<Self> {
        bundle.verify()?;
        let pick = prekey_at(bundle, draws.pick)?;
        let ephemeral = KeyPair::from_secret(*draws.ephemeral);
        let ratchet_key = KeyPair::from_secret(*draws.ratchet);
        Self::initiate_verified(own, bundle, pick, ephemeral, ratchet_key)
    }

    /// [`State::initiate`] from a bundle whose signature was verified, with one-time prekey
    /// `pick` of it, base key `ephemeral` and first ratchet key `ratchet_key`.
    fn initiate_verified(
        own: &IdentityKeyPair,
        bundle: &Bundle,
        pick: usize,
        ephemeral: KeyPair,
        ratchet_key: KeyPair,
    ) -> Result<Self> {
        let (pk_id, opk) = bundle.prekeys[pick];
        let suite = bundle.suite;
        let sk = x3dh::active(
            suite,
            own.pair(),
            &ephemeral,
            &bundle.identity.curve25519(),
            &bundle.spk,
            &opk,
        )?;
        let ratchet = Ratchet::init_active(suite, &sk, &bundle.spk, ratchet_key)?;
        let own_identity = suite.encode_identity(own.public());
        let (ad_send, ad_recv) = associated_data(
            suite,
            &own_identity,
            &suite.encode_identity(&bundle.identity),
            Initiation::Active,
        );
        Ok(Self {
            suite,
            peer_identity: bundle.identity,
            ad_send,
            ad_recv,
            ratchet,
            initiation: Initiation::Active,
            pending_kex: Some(PendingKex {
                pk_id,
                spk_id: bundle.spk_id,
                own_identity,
            }),
            kex_ek: ephemeral.public(),
            first_stamp: None,
            read_only: false,
        })
    }

    /// Builds the responder's session from a received key exchange (passive X3DH). The inner
    /// message is not decrypted here.
    fn from_key_exchange(
        suite: Suite,
        own: &IdentityKeyPair,
        spk: &KeyPair,
        opk: &KeyPair,
        kex: &wire::KeyExchange,
    ) -> Result<Self> {
        let sk = x3dh::passive(
            suite,
            own.pair(),
            spk,
            opk,
            &kex.identity.curve25519(),
            &kex.ek,
        )?;
        let own_identity = suite.encode_identity(own.public());
        let peer_identity_bytes = match suite {
            // OMEMO:2 authenticates the identity key bytes exactly as the peer sent them.
            Suite::Omemo2 => kex.identity_bytes.clone(),
            Suite::Legacy => suite.encode_identity(&kex.identity),
        };
        let (ad_send, ad_recv) = associated_data(
            suite,
            &own_identity,
            &peer_identity_bytes,
            Initiation::Passive,
        );
        Ok(Self {
            suite,
            peer_identity: kex.identity,
            ad_send,
            ad_recv,
            ratchet: Ratchet::init_passive(&sk, spk.clone()),
            initiation: Initiation::Passive,
            pending_kex: None,
            kex_ek: kex.ek,
            first_stamp: None,
            read_only: false,
        })
    }

    /// Fails if [`Session::encrypt_key`] would fail.
    fn check_can_encrypt(&self) -> Result<()> {
        self.ratchet.check_can_encrypt()
    }

    /// Encrypts key material (the per-message key, or the empty-message filler) for this device.
    /// Persist the session before sending the result.
    fn encrypt_key(&mut self, key_material: &[u8]) -> Result<EncryptedKey> {
        let message = self
            .ratchet
            .encrypt(self.suite, &self.ad_send, key_material)?;
        Ok(match &self.pending_kex {
            Some(p) => EncryptedKey {
                data: wire::encode_kex(
                    self.suite,
                    p.pk_id,
                    p.spk_id,
                    &p.own_identity,
                    &self.kex_ek,
                    message,
                ),
                kex: true,
            },
            None => EncryptedKey {
                data: message,
                kex: false,
            },
        })
    }

    /// Decrypts a ratchet message (the inner message of a key exchange, or a plain `<key>`),
    /// doing only the work `effort` allows. The state changes only if the message
    /// authenticates.
    fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        message: &wire::RatchetMessage,
        effort: Effort,
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let plain =
            self.ratchet
                .decrypt_message(self.suite, &self.ad_recv, message, effort, rng)?;
        // A message from the peer proves it has the session: stop sending the key exchange.
        self.pending_kex = None;
        Ok(plain)
    }

    /// Takes in the stamp of a message read on this state.
    fn note_stamp(&mut self, stamp: Option<u64>) {
        if let Some(t) = stamp {
            self.first_stamp = Some(self.first_stamp.map_or(t, |first| first.min(t)));
        }
    }

    /// Whether a new key exchange stamped `stamp` is late: the peer wrote it before it wrote
    /// on this state, so it is not the peer starting over (see [`Session`]).
    fn outdates(&self, stamp: Option<u64>) -> bool {
        match (stamp, self.first_stamp) {
            (Some(kex), Some(first)) => {
                kex < first || (kex == first && self.initiation == Initiation::Active)
            }
            _ => false,
        }
    }

    /// True for a state we started whose key exchange the peer has not answered yet.
    fn awaits_answer(&self) -> bool {
        self.initiation == Initiation::Active && self.pending_kex.is_some()
    }

    /// True if this session was built from the key exchange with ephemeral key `ek`.
    fn built_from(&self, ek: &[u8; 32]) -> bool {
        // Only a session the peer's key exchange built can be "the same session" again; our
        // own active sessions carry our ephemeral key here.
        self.initiation == Initiation::Passive && crate::crypto::ct_eq(&self.kex_ek, ek)
    }

    /// The state as its protobuf record, secrets included.
    fn to_pb(&self) -> PbSession {
        let r = &self.ratchet;
        let mut skipped = Vec::with_capacity(r.skipped.len());
        for k in &r.skipped {
            let mut b = Vec::with_capacity(68);
            b.extend_from_slice(&k.dh);
            b.extend_from_slice(&k.n.to_be_bytes());
            b.extend_from_slice(&k.mk);
            skipped.push(b);
        }
        PbSession {
            suite: self.suite.name().to_owned(),
            version: self.suite.version(),
            peer_curve: self.peer_identity.curve25519().to_vec(),
            peer_ed: self.peer_identity.ed25519().to_vec(),
            ad_send: self.ad_send.clone(),
            ad_recv: self.ad_recv.clone(),
            root: r.root.to_vec(),
            dhs: r.dhs.secret_bytes().to_vec(),
            dhs_public: Some(r.dhs.public().to_vec()),
            dhr: r.dhr.map(|k| k.to_vec()),
            cks: r.cks.as_ref().map(|k| k.to_vec()),
            ns: r.ns,
            pns: r.pns,
            ckr: r.ckr.as_ref().map(|k| k.to_vec()),
            nr: r.nr,
            skipped,
            old_dhr: r.old_dhr.iter().map(|k| k.to_vec()).collect(),
            active: self.initiation == Initiation::Active,
            pending_pk_id: self.pending_kex.as_ref().map(|p| p.pk_id),
            pending_spk_id: self.pending_kex.as_ref().map(|p| p.spk_id),
            pending_own_identity: self.pending_kex.as_ref().map(|p| p.own_identity.clone()),
            kex_ek: self.kex_ek.to_vec(),
            previous: Vec::new(),
            first_stamp: self.first_stamp,
            read_only: self.read_only.then_some(true),
        }
    }

    /// Restores a state from its protobuf record (its `previous` field is the caller's).
    /// `known`: an identity key already read from the same record, taken as it is when the
    /// record names it again with the same bytes (checking a key costs two field inversions,
    /// and all states of a record share the peer).
    fn from_pb(pb: &PbSession, known: Option<&IdentityKey>) -> Result<Self> {
        let bad = ProtoError::CorruptState;
        let suite = Suite::from_name(&pb.suite)?;
        let k32 = |v: &[u8]| -> Result<[u8; 32]> {
            v.try_into()
                .map_err(|_| bad("session key has the wrong length"))
        };
        let (ed, curve) = (k32(&pb.peer_ed)?, k32(&pb.peer_curve)?);
        let peer_identity = match known {
            Some(k) if k.ed25519() == ed && k.curve25519() == curve => *k,
            _ => IdentityKey::from_ed25519(ed)?,
        };
        if peer_identity.curve25519() != curve {
            return Err(bad("session identity forms disagree"));
        }
        if pb.skipped.len() > MAX_SKIPPED_KEYS
            || pb.old_dhr.len() > crate::ratchet::OLD_RATCHET_KEYS
        {
            return Err(bad("session keeps more keys than allowed"));
        }
        let mut skipped = std::collections::VecDeque::with_capacity(pb.skipped.len());
        for s in &pb.skipped {
            if s.len() != 68 {
                return Err(bad("skipped key record has the wrong length"));
            }
            skipped.push_back(SkippedKey {
                dh: k32(&s[..32])?,
                n: u32::from_be_bytes([s[32], s[33], s[34], s[35]]),
                mk: k32(&s[36..])?,
            });
        }
        let ratchet = Ratchet {
            root: Zeroizing::new(k32(&pb.root)?),
            dhs: match pb.dhs_public.as_deref() {
                Some(public) => KeyPair::from_stored(k32(&pb.dhs)?, k32(public)?),
                None => KeyPair::from_secret(k32(&pb.dhs)?),
            },
            dhr: pb.dhr.as_deref().map(k32).transpose()?,
            cks: pb.cks.as_deref().map(k32).transpose()?.map(Zeroizing::new),
            ns: pb.ns,
            pns: pb.pns,
            ckr: pb.ckr.as_deref().map(k32).transpose()?.map(Zeroizing::new),
            nr: pb.nr,
            skipped,
            old_dhr: pb.old_dhr.iter().map(|k| k32(k)).collect::<Result<_>>()?,
        };
        let pending_kex = match (
            pb.pending_pk_id,
            pb.pending_spk_id,
            &pb.pending_own_identity,
        ) {
            (Some(pk_id), Some(spk_id), Some(own)) => Some(PendingKex {
                pk_id,
                spk_id,
                own_identity: own.clone(),
            }),
            (None, None, None) => None,
            _ => return Err(bad("incomplete pending key exchange")),
        };
        Ok(Self {
            suite,
            peer_identity,
            ad_send: pb.ad_send.clone(),
            ad_recv: pb.ad_recv.clone(),
            ratchet,
            initiation: if pb.active {
                Initiation::Active
            } else {
                Initiation::Passive
            },
            pending_kex,
            kex_ek: k32(&pb.kex_ek)?,
            first_stamp: pb.first_stamp,
            read_only: pb.read_only.unwrap_or(false),
        })
    }
}

/// How many earlier states are kept per remote device, besides the current one. libsignal keeps
/// 40 (`ARCHIVED_STATES_MAX_LENGTH`), and so do the clients built on it; we keep as many, so a
/// message from any state a libsignal peer may still use finds its state here.
pub const MAX_PREVIOUS_STATES: usize = 40;

/// On how many earlier states, the most recently used first, one message may make us run a DH
/// ratchet step (besides the current state; see [`Session`]).
pub const MAX_EARLIER_STEPS: usize = 2;

/// Which state of a session read a message, for [`Session::settle`]: 0 is the current state,
/// `i + 1` earlier state `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// A message without a key exchange.
    Message(usize),
    /// A key exchange the state was built from, again; `empty`: the message had no payload.
    KeyExchange { index: usize, empty: bool },
}

/// Our session with one remote device: the state we send with, and earlier states kept for
/// messages the peer still sends on them (libsignal's "session record").
///
/// Earlier states exist because two devices may each start a session before reading the
/// other's key exchange (simultaneous initiation), or a peer may restart one. Decryption tries
/// the current state first, then the earlier ones, most recently used first; a state that
/// reads a message the peer sent without a key exchange becomes current, so both sides settle
/// on one state after a round trip, and no message sent on any kept state is lost.
///
/// Which state we send with when a peer's key exchange arrives while our own is unanswered
/// (the peer started at the same time as we did): ours stays current. Every peer ends up
/// holding the state our key exchange builds — python-omemo even discards its own for it — so
/// messages on ours are read by all of them. Two devices doing the same (two Hush devices)
/// would never settle, so an *empty* key-exchange message on the peer's state — an answer from
/// a peer that also kept its own — breaks the tie the same way on both sides: the state whose
/// key exchange has the
/// smaller ephemeral key wins.
///
/// # A new key exchange after the current state was answered: a restart, or late?
///
/// Usually the peer started over (`session reset`, a restored backup, a reinstall keeping its
/// identity), dropped the state we hold, and its new state must become current. But the same
/// message can also be a *late* one: the peer wrote it while our own key exchange was on its
/// way, then read ours, dropped its own state for it (python-omemo does) and went on writing on
/// ours — and a server delivered that first key exchange after the later messages. Taking it as
/// a restart would move us to a state the peer no longer has, and it would read nothing we
/// send. The order of arrival cannot tell the two apart; the peer's own clock can. In OMEMO:2
/// every payload is an SCE envelope (XEP-0420) whose `<time/>` stamp travels inside the
/// encryption, so only the peer sets it. Each state keeps the earliest stamp read on it, and a
/// new key exchange stays an earlier state when its stamp shows it was written before the peer
/// first wrote on the current one: the late key exchange was, since the peer wrote on our state
/// only after dropping its own, while a restart comes after everything the peer wrote on the
/// old state. Comparing with the earliest stamp rather than the latest keeps a restart a
/// restart even when the peer's clock was set back meanwhile, unless by more than the whole
/// time the state was in use. Stamps count whole seconds (XEP-0082 allows fractions; Hush writes
/// none and reads none), so equal stamps need a rule of their own: a late key exchange is the
/// trace of a race in which the peer took *our* key exchange over its own, and such a race fits
/// in a second. So against a current state we started, a key exchange stamped in the same
/// second as the peer's first message on it is late; against a state the peer started itself,
/// it is a restart (the peer had no other reason for a second key exchange of its own). A peer
/// that restarted within that second and finds us still sending on the old state keeps sending
/// its key exchange (nobody answered it); the first copy stamped later makes its state current.
/// Without stamps on both sides — legacy OMEMO, which has no authenticated time, or a current
/// state on which only empty messages were read — a new key exchange is a restart, as it was
/// before stamps were kept.
///
/// # What one message can cost
///
/// A message that the current state cannot read is tried on every earlier state, and a forged
/// one (anyone relaying messages can make one) is read by none. The expensive work is bounded
/// per message, not per state:
///
/// * Looking up a skipped message key: on every state; at most one MAC check each.
/// * Walking a receiving chain to the header's counter (up to [`MAX_SKIP_PER_MESSAGE`] derived
///   keys): on the current state, and on the first earlier state that knows the header's
///   ratchet key. An honest peer makes a new ratchet key for every state, so no other state
///   could read the message; a hostile one reusing a key gains nothing by it.
/// * A DH ratchet step (two X25519 agreements, a new key pair, and up to
///   [`MAX_SKIP_PER_MESSAGE`] derived keys): on the current state and on the
///   [`MAX_EARLIER_STEPS`] most recently used earlier ones. The peer steps its ratchet on a
///   state only in answer to a message we sent on it, and we send only with the current state;
///   the states we sent with most recently are those, so a step on an older state would need
///   the peer's answer to be overtaken by its messages on as many other states.
///
/// So a forged message makes at most 4 states derive message keys (at most
/// [`MAX_SKIP_PER_MESSAGE`] each, 4,000 in all) and runs at most 3 DH ratchet steps, whatever
/// the record holds; before these bounds each of 41 states could do both.
///
/// The record holds at most [`MAX_SKIPPED_KEYS`] skipped message keys across all its states
/// (the least recently used states lose theirs first, each its oldest first), and each state
/// at most 32 earlier ratchet keys of the peer, so a full record (41 states) is at most 140 KB
/// serialised (138 KB measured with every field at its largest, test
/// `a_full_record_stays_small`); with the keys bounded per state it could reach 2.9 MB, read
/// back and written again for every message from that peer. Reading a state does no public-key
/// arithmetic either: the public half of its ratchet key is stored with the secret, and the
/// peer's identity key is checked once per record, not once per state.
///
/// [`MAX_SKIP_PER_MESSAGE`]: crate::MAX_SKIP_PER_MESSAGE
#[derive(Clone)]
pub struct Session {
    current: State,
    /// Earlier states, the most recently used first; at most [`MAX_PREVIOUS_STATES`].
    previous: VecDeque<State>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("current", &self.current)
            .field("previous", &self.previous.len())
            .finish()
    }
}

#[cfg(test)]
impl Session {
    /// The current state's ratchet, for tests that look at its secrets.
    pub(crate) fn current_ratchet(&self) -> &crate::ratchet::Ratchet {
        &self.current.ratchet
    }
}

/// How many base keys [`Session::initiate_below`] draws at most (each costs one fixed-base
/// scalar multiplication).
pub const MAX_BASE_KEY_DRAWS: u32 = 4096;

/// The randomness one active X3DH and its first ratchet key take, drawn in one go from the
/// caller's RNG (in this order: the prekey choice, the base key, the ratchet key).
struct Draws {
    pick: u64,
    ephemeral: Zeroizing<[u8; 32]>,
    ratchet: Zeroizing<[u8; 32]>,
}

impl Draws {
    fn from<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let pick = rng.next_u64();
        let ephemeral = crate::keys::random_32(rng);
        let ratchet = crate::keys::random_32(rng);
        Self {
            pick,
            ephemeral,
            ratchet,
        }
    }
}

/// Bundles below this many are started on the calling thread alone: a thread costs more than
/// a few sessions.
const PARALLEL_FROM: usize = 8;

/// The one-time prekey of `bundle` that the random `draw` picks.
fn prekey_at(bundle: &Bundle, draw: u64) -> Result<usize> {
    if bundle.prekeys.is_empty() {
        return Err(ProtoError::NoPreKeys(bundle.device_id));
    }
    Ok((draw % bundle.prekeys.len() as u64) as usize)
}

impl Session {
    fn single(current: State) -> Self {
        Self {
            current,
            previous: VecDeque::new(),
        }
    }

    /// Starts a session from a peer's bundle (active X3DH). Verifies the bundle's signature and
    /// uses one of its one-time prekeys, chosen at random.
    pub fn initiate<R: CryptoRng + ?Sized>(
        own: &IdentityKeyPair,
        bundle: &Bundle,
        rng: &mut R,
    ) -> Result<Self> {
        State::initiate(own, bundle, rng).map(Self::single)
    }

    /// [`Session::initiate`] for each of `bundles`, in their order, on as many threads as the
    /// machine has cores (the calling thread included) when there are enough of them: first
    /// contact with a room or a contact with many devices. The randomness is drawn from `rng`
    /// first, on the calling thread, in the order the bundles come, so the result is the same
    /// as starting them one by one with those draws.
    pub fn initiate_all<R: CryptoRng + ?Sized>(
        own: &IdentityKeyPair,
        bundles: &[&Bundle],
        rng: &mut R,
    ) -> Vec<Result<Self>> {
        let draws: Vec<Draws> = bundles.iter().map(|_| Draws::from(rng)).collect();
        let start = |(bundle, draws): (&&Bundle, Draws)| {
            State::initiate_drawn(own, bundle, draws).map(Self::single)
        };
        if bundles.len() < PARALLEL_FROM {
            return bundles.iter().zip(draws).map(start).collect();
        }
        // Asked once: on Linux the answer reads the cgroup's CPU quota from files.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores =
            *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
        let threads = cores.min(bundles.len() / (PARALLEL_FROM / 2)).max(1);
        if threads == 1 {
            return bundles.iter().zip(draws).map(start).collect();
        }
        let chunk = bundles.len().div_ceil(threads);
        let mut draws = draws.into_iter();
        let work: Vec<Vec<(&&Bundle, Draws)>> = bundles
            .chunks(chunk)
            .map(|part| part.iter().zip(draws.by_ref()).collect())
            .collect();
        std::thread::scope(|scope| {
            let mut parts = work.into_iter();
            let first = parts.next().unwrap_or_default();
            let others: Vec<_> = parts
                .map(|part| scope.spawn(move || part.into_iter().map(start).collect::<Vec<_>>()))
                .collect();
            let mut out: Vec<Result<Self>> = first.into_iter().map(start).collect();
            for handle in others {
                // Every step returns its errors; a worker could only panic where the same
                // work on this thread would, and then its panic goes on here.
                match handle.join() {
                    Ok(done) => out.extend(done),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            out
        })
    }

    /// Like [`Session::initiate`], with a key exchange whose base key is smaller than `beat`:
    /// the base key of a peer's key exchange we cannot read (built on prekeys we retired).
    /// The peer keeps its own unanswered state current until a peer's *empty* key exchange
    /// with the smaller base key breaks the tie (see [`Session`]); this one always wins it,
    /// so the peer moves to it instead of writing on a state we can never read.
    ///
    /// The bundle is verified once; only base keys are drawn again, at most
    /// [`MAX_BASE_KEY_DRAWS`] of them. For an honest `beat` (uniformly random) a draw
    /// qualifies with probability `beat / 2^256`, so all of them fail with probability
    /// 1 / (`MAX_BASE_KEY_DRAWS` + 1) on average; `None` then, as for a forged `beat` near
    /// zero, whose cost stays bounded.
    pub fn initiate_below<R: CryptoRng + ?Sized>(
        own: &IdentityKeyPair,
        bundle: &Bundle,
        beat: &[u8; 32],
        rng: &mut R,
    ) -> Result<Option<Self>> {
        bundle.verify()?;
        let pick = prekey_at(bundle, rng.next_u64())?;
        for _ in 0..MAX_BASE_KEY_DRAWS {
            let ephemeral = KeyPair::generate(rng);
            if ephemeral.public() < *beat {
                let ratchet_key = KeyPair::generate(rng);
                return State::initiate_verified(own, bundle, pick, ephemeral, ratchet_key)
                    .map(|s| Some(Self::single(s)));
            }
        }
        Ok(None)
    }

    /// Builds the responder's session from a received key exchange (passive X3DH). The inner
    /// message is not decrypted here.
    pub(crate) fn from_key_exchange(
        suite: Suite,
        own: &IdentityKeyPair,
        spk: &KeyPair,
        opk: &KeyPair,
        kex: &wire::KeyExchange,
    ) -> Result<Self> {
        State::from_key_exchange(suite, own, spk, opk, kex).map(Self::single)
    }

    /// Fails if [`Session::encrypt_key`] would fail.
    pub(crate) fn check_can_encrypt(&self) -> Result<()> {
        self.current.check_can_encrypt()
    }

    /// Encrypts key material (the per-message key, or the empty-message filler) for this device
    /// with the current state. Persist the session before sending the result.
    pub fn encrypt_key(&mut self, key_material: &[u8]) -> Result<EncryptedKey> {
        self.current.encrypt_key(key_material)
    }

    /// Decrypts a ratchet message sent without a key exchange: with the current state, or else
    /// with the first earlier state that reads it within the bounds described on [`Session`].
    /// Returns which state read it, for [`Session::settle`] once the whole message has
    /// authenticated. On failure nothing changes and the current state's error is returned.
    pub(crate) fn decrypt_key<R: CryptoRng + ?Sized>(
        &mut self,
        message: &[u8],
        rng: &mut R,
    ) -> Result<(Zeroizing<Vec<u8>>, usize)> {
        let message = wire::decode_message(self.current.suite, message)?;
        let first_error = match self.current.decrypt(&message, Effort::ALL, rng) {
            Ok(plain) => return Ok((plain, 0)),
            Err(e) => e,
        };
        let dh = message.header.dh;
        let mut chain_walked = self.current.ratchet.dhr == Some(dh);
        for (i, state) in self.previous.iter_mut().enumerate() {
            let knows_chain = state.ratchet.dhr == Some(dh);
            let effort = Effort {
                chain: knows_chain && !chain_walked,
                step: i < MAX_EARLIER_STEPS,
            };
            chain_walked |= knows_chain;
            if let Ok(plain) = state.decrypt(&message, effort, rng) {
                return Ok((plain, i + 1));
            }
        }
        Err(first_error)
    }

    /// Where the state built from the key exchange with ephemeral key `ek` is: 0 for the
    /// current state, `i + 1` for earlier state `i`.
    pub(crate) fn state_built_from(&self, ek: &[u8; 32]) -> Option<usize> {
        core::iter::once(&self.current)
            .chain(&self.previous)
            .position(|s| s.built_from(ek))
    }

    /// Decrypts the inner message of a repeated key exchange in the state it built (see
    /// [`Session::state_built_from`]); [`Session::settle`] places the states afterwards.
    pub(crate) fn decrypt_key_in<R: CryptoRng + ?Sized>(
        &mut self,
        index: usize,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let message = wire::decode_message(self.current.suite, message)?;
        self.state_mut(index)
            .ok_or(ProtoError::CorruptState("no such session state"))?
            .decrypt(&message, Effort::ALL, rng)
    }

    /// Once the whole message has authenticated (`stamp`: its SCE stamp, if it had one): notes
    /// the stamp on the state that read it, and moves that state to current if the rules on
    /// [`Session`] say so.
    pub(crate) fn settle(&mut self, reader: Reader, stamp: Option<u64>) {
        let (index, becomes_current) = match reader {
            // A message without a key exchange on an earlier state: the peer sends with it.
            Reader::Message(index) => (index, true),
            Reader::KeyExchange { index, empty } => {
                let current = &self.current;
                let theirs_wins = index
                    .checked_sub(1)
                    .and_then(|i| self.previous.get(i))
                    .is_some_and(|s| empty && s.kex_ek < current.kex_ek);
                let moves = if current.awaits_answer() {
                    // The tie between two unanswered key exchanges.
                    theirs_wins
                } else {
                    // A copy of a key exchange we have moved past (the peer sent it before
                    // reading ours) must not move us back: a peer like python-omemo has
                    // discarded that state, and a peer that kept it settles on ours by itself
                    // (our messages reach it without a key exchange). A copy stamped after the
                    // peer first wrote on the current state is a restart we took for late
                    // (equal stamps): the peer is on that state now.
                    matches!((stamp, current.first_stamp), (Some(t), Some(first)) if t > first)
                };
                (index, moves)
            }
        };
        // A state whose sending side was rewound reads, but is never made current again.
        let becomes_current =
            becomes_current && self.state_mut(index).is_some_and(|state| !state.read_only);
        if let Some(state) = self.state_mut(index) {
            state.note_stamp(stamp);
        }
        if becomes_current {
            if let Some(i) = index.checked_sub(1) {
                self.promote(i);
            }
        }
        self.trim_skipped();
    }

    /// Takes in the state a peer's new key exchange built (`new` holds just that state; its
    /// identity key is this session's; `stamp`: the message's SCE stamp, if it had one;
    /// `empty`: the message carried no payload). It becomes current — a peer starting over —
    /// unless our own key exchange is current and unanswered, or the stamp shows the key
    /// exchange is late: then it is kept as an earlier state, and we go on sending on the
    /// current one (see [`Session`]). Against our unanswered key exchange, an *empty* one with
    /// the smaller key wins the tie as it does when it repeats a key exchange we already read
    /// ([`Session::settle`]): the same rule, whichever of the peer's messages came first. A
    /// peer that cannot read ours (built on prekeys it retired) heals the session this way.
    pub(crate) fn adopt(&mut self, new: Session, stamp: Option<u64>, empty: bool) {
        let mut new = new.current;
        new.note_stamp(stamp);
        let theirs_wins = self.current.awaits_answer() && empty && new.kex_ek < self.current.kex_ek;
        if theirs_wins {
            let old = core::mem::replace(&mut self.current, new);
            self.push_previous(old);
        } else if self.current.awaits_answer() || self.current.outdates(stamp) {
            self.push_previous(new);
        } else {
            let old = core::mem::replace(&mut self.current, new);
            self.push_previous(old);
        }
        self.trim_skipped();
    }

    /// A fresh session with the same device (`new`, started from its bundle) that takes over
    /// from this one, which can no longer send: a restore or a rollback rewound it, so its next
    /// message keys may have been used already. `new` becomes current; this record's states
    /// are kept as earlier states that read what the peer already sent on them but never
    /// become current again. A `new` with another identity key or suite replaces the record
    /// outright.
    pub fn restart(mut self, new: Session) -> Session {
        if self.suite() != new.suite() || !self.peer_identity().same_identity(new.peer_identity()) {
            return new;
        }
        let old = core::mem::replace(&mut self.current, new.current);
        self.push_previous(old);
        for state in &mut self.previous {
            state.read_only = true;
        }
        self.trim_skipped();
        self
    }

    /// Whether state `index` (0: current, then the earlier ones) only reads.
    pub(crate) fn is_read_only(&self, index: usize) -> bool {
        match index.checked_sub(1) {
            None => self.current.read_only,
            Some(i) => self.previous.get(i).is_some_and(|s| s.read_only),
        }
    }

    fn state_mut(&mut self, index: usize) -> Option<&mut State> {
        match index.checked_sub(1) {
            None => Some(&mut self.current),
            Some(i) => self.previous.get_mut(i),
        }
    }

    /// Makes earlier state `i` current; the current one becomes the most recent earlier one.
    fn promote(&mut self, i: usize) {
        if let Some(state) = self.previous.remove(i) {
            let old = core::mem::replace(&mut self.current, state);
            self.push_previous(old);
        }
    }

    fn push_previous(&mut self, state: State) {
        self.previous.push_front(state);
        self.previous.truncate(MAX_PREVIOUS_STATES);
    }

    /// Holds the whole record to [`MAX_SKIPPED_KEYS`] skipped message keys: the least recently
    /// used states lose theirs first, each its oldest first. Keys on a state the peer has
    /// stopped using are the least likely to be needed.
    fn trim_skipped(&mut self) {
        let total = core::iter::once(&self.current)
            .chain(&self.previous)
            .map(|s| s.ratchet.skipped.len())
            .sum::<usize>();
        let mut excess = total.saturating_sub(MAX_SKIPPED_KEYS);
        for state in self
            .previous
            .iter_mut()
            .rev()
            .chain(core::iter::once(&mut self.current))
        {
            if excess == 0 {
                break;
            }
            let n = excess.min(state.ratchet.skipped.len());
            state.ratchet.skipped.drain(..n);
            excess -= n;
        }
    }

    /// How many earlier states are kept (see [`MAX_PREVIOUS_STATES`]).
    pub fn previous_states(&self) -> usize {
        self.previous.len()
    }

    /// The suite of the session.
    pub fn suite(&self) -> Suite {
        self.current.suite
    }

    /// The peer device's identity key.
    pub fn peer_identity(&self) -> &IdentityKey {
        &self.current.peer_identity
    }

    /// Who started the session.
    pub fn initiation(&self) -> Initiation {
        self.current.initiation
    }

    /// False while we are still sending our key exchange and have heard nothing back.
    pub fn is_confirmed(&self) -> bool {
        self.current.pending_kex.is_none()
    }

    /// Messages sent on the current sending chain.
    pub fn sending_chain_length(&self) -> u32 {
        self.current.ratchet.ns
    }

    /// Messages received on the current receiving chain (XEP-0384's heartbeat rule uses this).
    pub fn receiving_chain_length(&self) -> u32 {
        self.current.ratchet.nr
    }

    /// Whether XEP-0384's heartbeat is due: [`HEARTBEAT_AFTER`] or more messages received on the
    /// current receiving chain with nothing sent back since the last ratchet step. An empty
    /// message then moves the ratchet forward (forward secrecy for the peer's next messages)
    /// and tells the peer this device is alive. Once it is sent, the sending chain is no
    /// longer empty, so it is due once per ratchet step, not once per message.
    pub fn needs_heartbeat(&self) -> bool {
        self.current.ratchet.nr >= HEARTBEAT_AFTER && self.current.ratchet.ns == 0
    }

    /// Number of skipped message keys kept for late messages, all states together (at most
    /// [`MAX_SKIPPED_KEYS`]).
    pub fn skipped_keys(&self) -> usize {
        core::iter::once(&self.current)
            .chain(&self.previous)
            .map(|s| s.ratchet.skipped.len())
            .sum()
    }

    /// Serializes the whole session, secrets included, for the store.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut pb = self.current.to_pb();
        pb.previous = self
            .previous
            .iter()
            .map(|s| s.to_pb().encode_to_vec())
            .collect();
        Zeroizing::new(pb.encode_to_vec())
    }

    /// Restores a session saved with [`Session::to_bytes`] (sessions saved before earlier
    /// states were kept restore with none; records saved before skipped keys were counted
    /// across the whole record are trimmed to [`MAX_SKIPPED_KEYS`] as [`Session`] describes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = ProtoError::CorruptState;
        let pb = PbSession::decode(bytes).map_err(|_| bad("session is not a valid record"))?;
        if pb.previous.len() > MAX_PREVIOUS_STATES {
            return Err(bad("session keeps more earlier states than allowed"));
        }
        let current = State::from_pb(&pb, None)?;
        let mut previous = VecDeque::with_capacity(pb.previous.len());
        for bytes in &pb.previous {
            let state = PbSession::decode(bytes.as_slice())
                .map_err(|_| bad("earlier session state is not a valid record"))?;
            if !state.previous.is_empty() {
                return Err(bad("an earlier session state holds states of its own"));
            }
            let state = State::from_pb(&state, Some(&current.peer_identity))?;
            if !state.peer_identity.same_identity(&current.peer_identity)
                || state.suite != current.suite
            {
                return Err(bad("session states disagree on the peer or the suite"));
            }
            previous.push_back(state);
        }
        let mut session = Self { current, previous };
        session.trim_skipped();
        Ok(session)
    }
}

#[derive(Clone, PartialEq, Message)]
struct PbSession {
    #[prost(string, tag = "1")]
    suite: String,
    #[prost(uint32, tag = "2")]
    version: u32,
    #[prost(bytes = "vec", tag = "3")]
    peer_curve: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    peer_ed: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    ad_send: Vec<u8>,
    #[prost(bytes = "vec", tag = "6")]
    ad_recv: Vec<u8>,
    #[prost(bytes = "vec", tag = "7")]
    root: Vec<u8>,
    #[prost(bytes = "vec", tag = "8")]
    dhs: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "9")]
    dhr: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "10")]
    cks: Option<Vec<u8>>,
    #[prost(uint32, tag = "11")]
    ns: u32,
    #[prost(uint32, tag = "12")]
    pns: u32,
    #[prost(bytes = "vec", optional, tag = "13")]
    ckr: Option<Vec<u8>>,
    #[prost(uint32, tag = "14")]
    nr: u32,
    #[prost(bytes = "vec", repeated, tag = "15")]
    skipped: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "16")]
    old_dhr: Vec<Vec<u8>>,
    #[prost(bool, tag = "17")]
    active: bool,
    #[prost(uint32, optional, tag = "18")]
    pending_pk_id: Option<u32>,
    #[prost(uint32, optional, tag = "19")]
    pending_spk_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "20")]
    pending_own_identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", tag = "21")]
    kex_ek: Vec<u8>,
    /// Earlier states of the session, each a `PbSession` without states of its own.
    #[prost(bytes = "vec", repeated, tag = "22")]
    previous: Vec<Vec<u8>>,
    /// The state's earliest stamp (absent in records written before stamps were kept).
    #[prost(uint64, optional, tag = "23")]
    first_stamp: Option<u64>,
    /// The public half of `dhs`, so that reading the state needs no scalar multiplication
    /// (absent in records written before it was kept: then it is computed).
    #[prost(bytes = "vec", optional, tag = "24")]
    dhs_public: Option<Vec<u8>>,
    /// The state only reads (see `State::read_only`); absent means it may send.
    #[prost(bool, optional, tag = "25")]
    read_only: Option<bool>,
}

impl Drop for PbSession {
    fn drop(&mut self) {
        self.root.zeroize();
        self.dhs.zeroize();
        self.cks.zeroize();
        self.ckr.zeroize();
        self.skipped.zeroize();
        self.previous.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratchet::OLD_RATCHET_KEYS;

    /// Sessions started many at once on several threads are the ones started one by one from
    /// the same draws, in the bundles' order; a bad bundle fails in its place.
    #[test]
    fn sessions_started_at_once_are_those_started_one_by_one() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alice = crate::LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let mut bundles: Vec<Bundle> = (0..23)
            .map(|i| {
                crate::LocalDevice::generate(100 + i, 2, 0, &mut rng)
                    .unwrap()
                    .bundle(Suite::ALL[i as usize % 2])
            })
            .collect();
        bundles[7].spk_signature[3] ^= 1;
        bundles[15].prekeys.clear();
        let refs: Vec<&Bundle> = bundles.iter().collect();
        let at_once = Session::initiate_all(
            alice.identity(),
            &refs,
            &mut rand::rngs::StdRng::seed_from_u64(3),
        );
        let mut one_rng = rand::rngs::StdRng::seed_from_u64(3);
        let one_by_one: Vec<Result<Session>> = bundles
            .iter()
            .map(|b| Session::initiate(alice.identity(), b, &mut one_rng))
            .collect();
        assert_eq!(at_once.len(), bundles.len());
        for (i, (a, b)) in at_once.iter().zip(&one_by_one).enumerate() {
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(*a.to_bytes(), *b.to_bytes(), "bundle {i}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "bundle {i}"),
                _ => panic!("bundle {i}: {a:?} / {b:?}"),
            }
        }
        assert!(at_once[7].is_err() && at_once[15].is_err());
        assert_eq!(at_once.iter().filter(|s| s.is_ok()).count(), 21);
    }

    /// A state record with every field at its largest as Hush writes it (legacy: 33-byte
    /// identities, 66 bytes of associated data each way), `skipped` skipped keys and as many
    /// earlier ratchet keys as are kept. Counters are at their largest too, so their varints are.
    fn largest_state(skipped: usize, tag: u8) -> PbSession {
        let identity = IdentityKeyPair::from_secret([tag; 32]);
        let suite = Suite::Legacy;
        let own = suite.encode_identity(identity.public());
        let key = |i: u8| vec![i ^ tag; 32];
        PbSession {
            suite: suite.name().to_owned(),
            version: u32::MAX,
            peer_curve: identity.public().curve25519().to_vec(),
            peer_ed: identity.public().ed25519().to_vec(),
            ad_send: [own.as_slice(), own.as_slice()].concat(),
            ad_recv: [own.as_slice(), own.as_slice()].concat(),
            root: key(1),
            dhs: key(2),
            dhr: Some(key(3)),
            cks: Some(key(4)),
            ns: u32::MAX,
            pns: u32::MAX,
            ckr: Some(key(5)),
            nr: u32::MAX,
            skipped: (0..skipped)
                .map(|n| {
                    let mut b = key(6);
                    b.extend_from_slice(&(u32::MAX - n as u32).to_be_bytes());
                    b.extend_from_slice(&key(7));
                    b
                })
                .collect(),
            old_dhr: (0..OLD_RATCHET_KEYS as u8).map(|i| key(8 + i)).collect(),
            active: true,
            pending_pk_id: Some(u32::MAX),
            pending_spk_id: Some(u32::MAX),
            pending_own_identity: Some(own),
            kex_ek: key(99),
            previous: Vec::new(),
            first_stamp: Some(u64::MAX),
            dhs_public: Some(key(10)),
            read_only: Some(true),
        }
    }

    /// A record of `states` states whose skipped keys are `skipped[i]` (the current one first).
    fn record(skipped: &[usize]) -> Vec<u8> {
        // One identity for all: the states of a record share the peer.
        let mut states: Vec<PbSession> = skipped.iter().map(|&n| largest_state(n, 9)).collect();
        let mut current = states.remove(0);
        current.previous = states.iter().map(|s| s.encode_to_vec()).collect();
        current.encode_to_vec()
    }

    /// The bound documented on [`Session`]: a record with every state kept and every field at
    /// its largest. Without the total on skipped keys, each state could hold as many.
    #[test]
    fn a_full_record_stays_small() {
        let states = MAX_PREVIOUS_STATES + 1;
        // As written before the total: every state with its own full set of skipped keys.
        let unbounded = record(&vec![MAX_SKIPPED_KEYS; states]);
        let session = Session::from_bytes(&unbounded).unwrap();
        assert_eq!(session.previous_states(), MAX_PREVIOUS_STATES);
        assert_eq!(session.skipped_keys(), MAX_SKIPPED_KEYS);
        let full = session.to_bytes();
        // Trimming left all keys in the current state; spread over all states instead, each
        // state's list costs a little framing more.
        let spread = record(&vec![MAX_SKIPPED_KEYS / states; states]);
        eprintln!(
            "largest record: {} bytes (keys spread over all states: {} bytes); before the \
             total: {} bytes",
            full.len(),
            spread.len(),
            unbounded.len()
        );
        for bytes in [&full[..], &spread[..]] {
            assert!(bytes.len() <= 140_000, "{} bytes", bytes.len());
        }
        assert!(unbounded.len() > 2_800_000, "{} bytes", unbounded.len());
    }

    /// Records written while skipped keys were bounded per state are trimmed to the total when
    /// read: the least recently used states lose theirs first, each its oldest first.
    #[test]
    fn a_record_over_the_total_is_trimmed_when_read() {
        let session = Session::from_bytes(&record(&[900, 700, 600])).unwrap();
        assert_eq!(session.skipped_keys(), MAX_SKIPPED_KEYS);
        assert_eq!(session.current.ratchet.skipped.len(), 900);
        assert_eq!(session.previous[0].ratchet.skipped.len(), 100);
        assert!(session.previous[1].ratchet.skipped.is_empty());
        // The newest 100 of the 700 stayed: counters count down from u32::MAX in `largest_state`.
        let kept: Vec<u32> = session.previous[0]
            .ratchet
            .skipped
            .iter()
            .map(|k| k.n)
            .collect();
        assert_eq!(kept.first(), Some(&(u32::MAX - 600)));
        assert_eq!(kept.last(), Some(&(u32::MAX - 699)));
    }

    /// A state's ratchet key pair reads back from its two stored halves; a record written
    /// before the public half was kept computes it from the secret.
    #[test]
    fn the_ratchet_key_pair_reads_back_with_or_without_its_public_half() {
        let pair = KeyPair::from_secret([5; 32]);
        let mut pb = largest_state(0, 9);
        pb.dhs = pair.secret_bytes().to_vec();
        pb.dhs_public = Some(pair.public().to_vec());
        let stored = Session::from_bytes(&pb.encode_to_vec()).unwrap();
        assert_eq!(stored.current.ratchet.dhs.public(), pair.public());
        pb.dhs_public = None;
        let older = Session::from_bytes(&pb.encode_to_vec()).unwrap();
        assert_eq!(older.current.ratchet.dhs.public(), pair.public());
        assert_eq!(
            older.to_bytes(),
            stored.to_bytes(),
            "written back with the half"
        );
    }

    /// The stamp of a state survives the store, and an older record without one reads as none.
    #[test]
    fn stamps_survive_the_store() {
        let session = Session::from_bytes(&record(&[0, 0])).unwrap();
        assert_eq!(session.current.first_stamp, Some(u64::MAX));
        let mut pb = largest_state(0, 9);
        pb.first_stamp = None;
        let session = Session::from_bytes(&pb.encode_to_vec()).unwrap();
        assert_eq!(session.current.first_stamp, None);
    }

    #[test]
    fn a_key_exchange_below_a_beat_has_a_smaller_base_key_or_none() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let alice = crate::LocalDevice::generate(1, 3, 0, &mut rng).unwrap();
        let bob = crate::LocalDevice::generate(2, 3, 0, &mut rng).unwrap();
        let bundle = bob.bundle(Suite::Omemo2);
        // A beat a few draws beat: the key exchange found is below it.
        let mut beat = [0xff; 32];
        beat[0] = 0x10;
        let s = Session::initiate_below(alice.identity(), &bundle, &beat, &mut rng)
            .unwrap()
            .expect("one in sixteen draws qualifies");
        assert!(s.current.kex_ek < beat);
        assert!(s.current.awaits_answer());
        // No key is below zero: bounded work, then none (a forged beat costs no more).
        assert!(
            Session::initiate_below(alice.identity(), &bundle, &[0; 32], &mut rng)
                .unwrap()
                .is_none()
        );
        // A bundle whose signature does not verify is refused before any draw.
        let mut forged = bundle.clone();
        forged.spk = [7; 32];
        assert!(Session::initiate_below(alice.identity(), &forged, &beat, &mut rng).is_err());
    }
}
