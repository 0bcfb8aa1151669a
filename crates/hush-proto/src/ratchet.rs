//! The Double Ratchet (Signal spec, as profiled by XEP-0384), without header encryption.
//!
//! * `KDF_RK(rk, dh)` = HKDF-SHA-256(salt = rk, ikm = dh, info = suite root info) → 64 bytes:
//!   new root key ‖ chain key.
//! * `KDF_CK(ck)` = HMAC-SHA-256(ck, 0x01) as the message key, HMAC-SHA-256(ck, 0x02) as the next
//!   chain key.
//! * Message keys expand by HKDF (zero salt, suite message info) into 32 bytes AES-256-CBC key,
//!   32 bytes HMAC key and a 16-byte IV; the MAC covers `ad ‖ serialized message`, truncated per
//!   suite.
//!
//! Decryption is transactional: every derived value lives in locals until the MAC has verified,
//! so a forged, corrupted or replayed message leaves the state exactly as it was. Skipped message
//! keys are bounded per message ([`MAX_SKIP_PER_MESSAGE`]) and per state ([`MAX_SKIPPED_KEYS`],
//! oldest dropped first), so a hostile counter cannot exhaust memory; the session record holds
//! its states to the same total (see `session`).

use std::collections::VecDeque;

use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto;
use crate::error::{ProtoError, Result};
use crate::keys::KeyPair;
use crate::suite::Suite;
use crate::wire::{self, Header};

/// The most message keys one incoming message may make us derive and keep.
pub const MAX_SKIP_PER_MESSAGE: u32 = 1000;
/// The most skipped message keys kept per session, all its states together; older ones are
/// deleted first (see [`Session`](crate::Session) for which).
pub const MAX_SKIPPED_KEYS: usize = 1000;
/// How many previous remote ratchet keys we remember to tell replays from new ratchet steps.
pub(crate) const OLD_RATCHET_KEYS: usize = 32;

/// The expensive work one decryption attempt may do on a state; looking up a skipped message
/// key (one MAC check at most) is always allowed. The session record decides, so that one
/// message cannot make it run this work on every state it keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Effort {
    /// Advance the receiving chain the header names, deriving up to
    /// [`MAX_SKIP_PER_MESSAGE`] message keys.
    pub chain: bool,
    /// Run a DH ratchet step for a ratchet key the state does not know: two X25519 agreements,
    /// a new key pair, and up to [`MAX_SKIP_PER_MESSAGE`] derived keys.
    pub step: bool,
}

impl Effort {
    /// Whatever the message takes.
    pub(crate) const ALL: Self = Self {
        chain: true,
        step: true,
    };
}

/// What a state answers for a message it was not allowed to work on: it did not read it.
const NOT_TRIED: ProtoError = ProtoError::AuthenticationFailed("ratchet message");

/// A message key kept for a message that has not arrived yet.
#[derive(Clone)]
pub(crate) struct SkippedKey {
    pub dh: [u8; 32],
    pub n: u32,
    pub mk: [u8; 32],
}

impl Drop for SkippedKey {
    fn drop(&mut self) {
        self.mk.zeroize();
    }
}

/// One side's ratchet state.
#[derive(Clone)]
pub(crate) struct Ratchet {
    pub root: Zeroizing<[u8; 32]>,
    pub dhs: KeyPair,
    pub dhr: Option<[u8; 32]>,
    pub cks: Option<Zeroizing<[u8; 32]>>,
    pub ns: u32,
    pub pns: u32,
    pub ckr: Option<Zeroizing<[u8; 32]>>,
    pub nr: u32,
    pub skipped: VecDeque<SkippedKey>,
    pub old_dhr: VecDeque<[u8; 32]>,
}

pub(crate) fn kdf_rk(
    suite: Suite,
    rk: &[u8; 32],
    dh: &[u8; 32],
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let out = crypto::hkdf::<64>(rk, dh, suite.params().root_info);
    let mut root = Zeroizing::new([0u8; 32]);
    let mut chain = Zeroizing::new([0u8; 32]);
    root.copy_from_slice(&out[..32]);
    chain.copy_from_slice(&out[32..]);
    (root, chain)
}

/// Advances a chain key in place and returns the message key.
pub(crate) fn kdf_ck(ck: &mut [u8; 32]) -> [u8; 32] {
    let key = crypto::HmacKey::new(ck);
    let mk = key.sign(&[&[0x01]]);
    let mut next = key.sign(&[&[0x02]]);
    ck.copy_from_slice(&next);
    next.zeroize();
    mk
}

struct MessageKeys {
    enc: [u8; 32],
    auth: [u8; 32],
    iv: [u8; 16],
}

impl Drop for MessageKeys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.auth.zeroize();
        self.iv.zeroize();
    }
}

fn expand_message_key(suite: Suite, mk: &[u8; 32]) -> MessageKeys {
    let out = crypto::hkdf_zero_salt::<80>(mk, suite.params().message_info);
    let mut keys = MessageKeys {
        enc: [0; 32],
        auth: [0; 32],
        iv: [0; 16],
    };
    keys.enc.copy_from_slice(&out[..32]);
    keys.auth.copy_from_slice(&out[32..64]);
    keys.iv.copy_from_slice(&out[64..]);
    keys
}

/// Encrypts and frames one message under message key `mk`.
pub(crate) fn seal(
    suite: Suite,
    mk: &[u8; 32],
    header: &Header,
    ad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let keys = expand_message_key(suite, mk);
    let ciphertext = crypto::aes256_cbc_encrypt(&keys.enc, &keys.iv, plaintext);
    let signed = wire::encode_signed(suite, header, &ciphertext);
    let mac = crypto::hmac_sha256(&keys.auth, &[ad, &signed]);
    wire::frame_message(suite, signed, &mac[..suite.params().mac_len])
}

/// Checks the MAC and decrypts; the first thing done with a candidate message key.
pub(crate) fn open(
    suite: Suite,
    mk: &[u8; 32],
    ad: &[u8],
    msg: &wire::RatchetMessage,
) -> Result<Zeroizing<Vec<u8>>> {
    let keys = expand_message_key(suite, mk);
    if !crypto::hmac_verify_truncated(&keys.auth, &[ad, &msg.signed], &msg.mac) {
        return Err(ProtoError::AuthenticationFailed("ratchet message"));
    }
    crypto::aes256_cbc_decrypt(&keys.enc, &keys.iv, &msg.ciphertext).map(Zeroizing::new)
}

impl Ratchet {
    /// The initiator's state right after X3DH: one sending chain towards the peer's signed prekey.
    /// Its first ratchet key `dhs` is drawn by the caller.
    pub(crate) fn init_active(
        suite: Suite,
        sk: &[u8; 32],
        their_spk: &[u8; 32],
        dhs: KeyPair,
    ) -> Result<Self> {
        let (root, cks) = kdf_rk(suite, sk, &*dhs.dh(their_spk)?);
        Ok(Self {
            root,
            dhs,
            dhr: Some(*their_spk),
            cks: Some(cks),
            ns: 0,
            pns: 0,
            ckr: None,
            nr: 0,
            skipped: VecDeque::new(),
            old_dhr: VecDeque::new(),
        })
    }

    /// The responder's state right after X3DH: its signed prekey is the first ratchet key; the
    /// chains come from the first message.
    pub(crate) fn init_passive(sk: &[u8; 32], spk: KeyPair) -> Self {
        Self {
            root: Zeroizing::new(*sk),
            dhs: spk,
            dhr: None,
            cks: None,
            ns: 0,
            pns: 0,
            ckr: None,
            nr: 0,
            skipped: VecDeque::new(),
            old_dhr: VecDeque::new(),
        }
    }

    /// Fails if [`Ratchet::encrypt`] would.
    pub(crate) fn check_can_encrypt(&self) -> Result<()> {
        match self.cks {
            None => Err(ProtoError::CorruptState("session has no sending chain yet")),
            Some(_) if self.ns == u32::MAX => {
                Err(ProtoError::CorruptState("sending counter overflow"))
            }
            Some(_) => Ok(()),
        }
    }

    /// Encrypts `plaintext` on the sending chain; returns the framed message.
    pub(crate) fn encrypt(&mut self, suite: Suite, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let Some(cks) = self.cks.as_mut() else {
            return Err(ProtoError::CorruptState("session has no sending chain yet"));
        };
        let header = Header {
            dh: self.dhs.public(),
            pn: self.pns,
            n: self.ns,
        };
        let next = self
            .ns
            .checked_add(1)
            .ok_or(ProtoError::CorruptState("sending counter overflow"))?;
        let mk = Zeroizing::new(kdf_ck(cks));
        self.ns = next;
        Ok(seal(suite, &mk, &header, ad, plaintext))
    }

    /// Decrypts a framed message, with whatever work it takes. On any error the state is
    /// unchanged.
    #[cfg(test)]
    pub(crate) fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        suite: Suite,
        ad: &[u8],
        bytes: &[u8],
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let msg = wire::decode_message(suite, bytes)?;
        self.decrypt_message(suite, ad, &msg, Effort::ALL, rng)
    }

    /// Decrypts a decoded message, doing only the expensive work `effort` allows. On any error
    /// the state is unchanged.
    pub(crate) fn decrypt_message<R: CryptoRng + ?Sized>(
        &mut self,
        suite: Suite,
        ad: &[u8],
        msg: &wire::RatchetMessage,
        effort: Effort,
        rng: &mut R,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let h = msg.header;

        // 1. A message we skipped earlier.
        if let Some(i) = self.skipped.iter().position(|k| k.dh == h.dh && k.n == h.n) {
            let plaintext = open(suite, &self.skipped[i].mk, ad, msg)?;
            self.skipped.remove(i);
            return Ok(plaintext);
        }

        // 2. The current receiving chain.
        if let (true, Some(ckr)) = (self.dhr == Some(h.dh), &self.ckr) {
            if h.n < self.nr {
                return Err(ProtoError::MessageKeyGone { counter: h.n });
            }
            check_skip(h.n - self.nr)?;
            if !effort.chain {
                return Err(NOT_TRIED);
            }
            let mut ck = ckr.clone();
            let mut new_skipped = Vec::new();
            let mk = Zeroizing::new(advance(&mut ck, self.nr, h.n, &h.dh, &mut new_skipped));
            let next =
                h.n.checked_add(1)
                    .ok_or(ProtoError::CorruptState("receiving counter overflow"))?;
            let plaintext = open(suite, &mk, ad, msg)?;
            self.ckr = Some(ck);
            self.nr = next;
            self.store_skipped(new_skipped);
            return Ok(plaintext);
        }

        // 3. A ratchet key we have moved past: a replay, or a message whose key we dropped.
        if self.old_dhr.contains(&h.dh) || (self.dhr == Some(h.dh)) {
            return Err(ProtoError::MessageKeyGone { counter: h.n });
        }

        // 4. A new ratchet key from the peer: DH ratchet step, all in locals first.
        if !effort.step {
            return Err(NOT_TRIED);
        }
        let mut new_skipped = Vec::new();
        let mut old_ck = self.ckr.clone();
        // How far the previous chain went. OMEMO:2 (and python's oldmemo) send its length;
        // libsignal senders send the index of its last message. For legacy we therefore keep
        // the key at index `pn` too: one spare key at worst, instead of a lost last message.
        let old_end = if suite.params().pn_is_last_index {
            h.pn.saturating_add(1)
        } else {
            h.pn
        };
        let old_gap = match (&old_ck, self.dhr) {
            (Some(_), Some(_)) => old_end.saturating_sub(self.nr),
            _ => 0,
        };
        // The limit holds for the whole message: old-chain and new-chain keys together.
        check_skip(old_gap.saturating_add(h.n))?;
        if let (Some(ck), Some(dhr)) = (old_ck.as_mut(), self.dhr) {
            if old_gap > 0 {
                // Keep keys nr..old_end, and throw away the key `advance` derives for old_end
                // itself, which no message uses.
                let mut unused = advance(ck, self.nr, old_end, &dhr, &mut new_skipped);
                unused.zeroize();
            }
        }
        let (root1, mut ckr) = kdf_rk(suite, &self.root, &*self.dhs.dh(&h.dh)?);
        let new_dhs = KeyPair::generate(rng);
        let (root2, cks) = kdf_rk(suite, &root1, &*new_dhs.dh(&h.dh)?);
        let mk = Zeroizing::new(advance(&mut ckr, 0, h.n, &h.dh, &mut new_skipped));
        let plaintext = open(suite, &mk, ad, msg)?;

        // Commit.
        if let Some(old) = self.dhr.replace(h.dh) {
            while self.old_dhr.len() >= OLD_RATCHET_KEYS {
                self.old_dhr.pop_front();
            }
            self.old_dhr.push_back(old);
        }
        self.root = root2;
        self.ckr = Some(ckr);
        self.nr = h.n + 1;
        self.dhs = new_dhs;
        self.cks = Some(cks);
        self.pns = self.ns;
        self.ns = 0;
        self.store_skipped(new_skipped);
        Ok(plaintext)
    }

    fn store_skipped(&mut self, keys: Vec<SkippedKey>) {
        for k in keys {
            while self.skipped.len() >= MAX_SKIPPED_KEYS {
                self.skipped.pop_front();
            }
            self.skipped.push_back(k);
        }
    }
}

fn check_skip(n: u32) -> Result<()> {
    if n > MAX_SKIP_PER_MESSAGE {
        Err(ProtoError::TooManySkipped {
            requested: n as u64,
            limit: MAX_SKIP_PER_MESSAGE,
        })
    } else {
        Ok(())
    }
}

/// Advances `ck` from counter `from` to `to`, keeping the keys in between as skipped, and
/// returns the message key for counter `to`.
fn advance(
    ck: &mut [u8; 32],
    from: u32,
    to: u32,
    dh: &[u8; 32],
    skipped: &mut Vec<SkippedKey>,
) -> [u8; 32] {
    for n in from..to {
        skipped.push(SkippedKey {
            dh: *dh,
            n,
            mk: kdf_ck(ck),
        });
    }
    kdf_ck(ck)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// libsignal puts the index of the previous chain's last message into `pn`, not the count.
    /// A late last message of that chain must still decrypt in the legacy suite.
    #[test]
    fn legacy_accepts_libsignal_previous_counter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let suite = Suite::Legacy;
        let sk = [7u8; 32];
        let bob_spk = KeyPair::generate(&mut rng);
        let mut alice =
            Ratchet::init_active(suite, &sk, &bob_spk.public(), KeyPair::generate(&mut rng))
                .unwrap();
        let mut bob = Ratchet::init_passive(&sk, bob_spk);
        let old: Vec<Vec<u8>> = (0..3)
            .map(|i| alice.encrypt(suite, b"ad", &[i]).unwrap())
            .collect();
        assert_eq!(*bob.decrypt(suite, b"ad", &old[0], &mut rng).unwrap(), [0]);
        let reply = bob.encrypt(suite, b"ad", b"r").unwrap();
        alice.decrypt(suite, b"ad", &reply, &mut rng).unwrap();
        // Alice now sends on a new chain and reports pn the libsignal way: last index = 2.
        assert_eq!(alice.pns, 3);
        alice.pns = 2;
        let fresh = alice.encrypt(suite, b"ad", b"new chain").unwrap();
        assert_eq!(
            *bob.decrypt(suite, b"ad", &fresh, &mut rng).unwrap(),
            *b"new chain"
        );
        assert_eq!(
            *bob.decrypt(suite, b"ad", &old[2], &mut rng).unwrap(),
            [2],
            "the chain's last message"
        );
        assert_eq!(*bob.decrypt(suite, b"ad", &old[1], &mut rng).unwrap(), [1]);
    }

    #[test]
    fn restored_state_over_the_caps_is_trimmed_on_next_store() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let spk = KeyPair::generate(&mut rng);
        let mut r = Ratchet::init_passive(&[1; 32], spk);
        for n in 0..(MAX_SKIPPED_KEYS as u32 + 5) {
            r.skipped.push_back(SkippedKey {
                dh: [0; 32],
                n,
                mk: [0; 32],
            });
        }
        r.store_skipped(vec![SkippedKey {
            dh: [1; 32],
            n: 0,
            mk: [0; 32],
        }]);
        assert_eq!(r.skipped.len(), MAX_SKIPPED_KEYS);
    }
}
