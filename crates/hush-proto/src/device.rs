//! The local device: identity key, signed prekeys, one-time prekeys, and what it publishes.
//!
//! A used one-time prekey is *retired*: left out of the bundle at once, so no new sender picks
//! it, but kept for a grace period ([`LocalDevice::forget_retired_prekeys`]). Every sender reads
//! the same published bundle, so two of them can pick the same prekey before the bundle
//! without it is out (XEP-0384 calls it the prekey race); deleting it at the first use would
//! make the second sender's first message unreadable.
//!
//! One identity key serves every suite (the same fingerprint in OMEMO:2 and legacy). The signed
//! prekey is signed once per suite encoding. Using a one-time prekey does *not* delete it here:
//! [`Opened::consumed_prekey`](crate::message::Opened::consumed_prekey) tells the caller which
//! prekey was used, and the caller removes it (XEP-0384 advises keeping prekeys until MAM
//! catch-up has finished) and republishes the bundle.

use std::collections::BTreeMap;

use prost::Message;
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::bundle::Bundle;
use crate::error::{ProtoError, Result};
use crate::keys::{check_id, IdentityKeyPair, KeyPair, PreKey, SignedPreKey};
use crate::suite::Suite;

/// How many one-time prekeys a fresh device publishes (XEP-0384: SHOULD ~100, MUST ≥ 25).
pub const DEFAULT_PREKEYS: usize = 100;
/// Below this many prekeys the caller should refill.
pub const MIN_PREKEYS: usize = 25;
/// The most one-time prekeys a device holds (a bundle must stay a reasonable PEP item).
pub const MAX_PREKEYS: usize = 1000;
const MAX_ID: u32 = 0x7fff_ffff;

/// This device's private key material.
#[derive(Clone, Debug)]
pub struct LocalDevice {
    device_id: u32,
    identity: IdentityKeyPair,
    signed_prekey: SignedPreKey,
    old_signed_prekey: Option<SignedPreKey>,
    pub(crate) prekeys: BTreeMap<u32, PreKey>,
    /// Used prekeys, out of the bundle but still accepted, with when they were retired.
    retired: BTreeMap<u32, (PreKey, u64)>,
    next_prekey_id: u32,
}

fn next_id(id: u32) -> u32 {
    if id >= MAX_ID {
        1
    } else {
        id + 1
    }
}

fn make_signed_prekey<R: CryptoRng + ?Sized>(
    identity: &IdentityKeyPair,
    id: u32,
    now: u64,
    rng: &mut R,
) -> SignedPreKey {
    let pair = KeyPair::generate(rng);
    let signature_omemo2 = identity.sign(&Suite::Omemo2.encode_public(&pair.public()), rng);
    let signature_legacy = identity.sign(&Suite::Legacy.encode_public(&pair.public()), rng);
    SignedPreKey {
        id,
        pair,
        created_at: now,
        signature_omemo2,
        signature_legacy,
    }
}

impl LocalDevice {
    /// Creates a new device identity with `prekeys` one-time prekeys. `now` is unix seconds.
    pub fn generate<R: CryptoRng + ?Sized>(
        device_id: u32,
        prekeys: usize,
        now: u64,
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_identity(device_id, IdentityKeyPair::generate(rng), prekeys, now, rng)
    }

    /// Creates a device around an existing identity key.
    pub fn with_identity<R: CryptoRng + ?Sized>(
        device_id: u32,
        identity: IdentityKeyPair,
        prekeys: usize,
        now: u64,
        rng: &mut R,
    ) -> Result<Self> {
        check_id(device_id as u64)?;
        let signed_prekey = make_signed_prekey(&identity, 1, now, rng);
        let mut device = Self {
            device_id,
            identity,
            signed_prekey,
            old_signed_prekey: None,
            prekeys: BTreeMap::new(),
            retired: BTreeMap::new(),
            next_prekey_id: 1,
        };
        device.refill_prekeys(prekeys, rng);
        Ok(device)
    }

    /// The device id.
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The identity key pair.
    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    /// The current signed prekey.
    pub fn signed_prekey(&self) -> &SignedPreKey {
        &self.signed_prekey
    }

    /// Number of one-time prekeys held.
    pub fn prekey_count(&self) -> usize {
        self.prekeys.len()
    }

    /// The previous signed prekey, kept for one more period after a rotation.
    pub fn old_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.old_signed_prekey.as_ref()
    }

    /// The public key of one-time prekey `id`, if this device holds it (in the bundle or
    /// retired and still accepted).
    pub fn prekey_public(&self, id: u32) -> Option<[u8; 32]> {
        self.prekey_by_id(id).ok().map(KeyPair::public)
    }

    /// The id the next new one-time prekey gets: every id issued so far is below it (ids only
    /// wrap after 2^31 prekeys). A published prekey at or above it was made by a later state
    /// of this device than the one held here.
    pub fn next_prekey_id(&self) -> u32 {
        self.next_prekey_id
    }

    /// The bundle to publish in `suite`.
    pub fn bundle(&self, suite: Suite) -> Bundle {
        let spk = &self.signed_prekey;
        Bundle {
            suite,
            device_id: self.device_id,
            identity: *self.identity.public(),
            spk_id: spk.id,
            spk: spk.pair.public(),
            spk_signature: match suite {
                Suite::Omemo2 => spk.signature_omemo2,
                Suite::Legacy => spk.signature_legacy,
            },
            prekeys: self
                .prekeys
                .values()
                .map(|p| (p.id, p.pair.public()))
                .collect(),
        }
    }

    /// Tops the one-time prekeys up to `target`; returns how many were added.
    pub fn refill_prekeys<R: CryptoRng + ?Sized>(&mut self, target: usize, rng: &mut R) -> usize {
        let target = target.min(MAX_PREKEYS);
        let mut added = 0;
        while self.prekeys.len() < target {
            let id = self.next_prekey_id;
            self.next_prekey_id = next_id(id);
            if self.prekeys.contains_key(&id) || self.retired.contains_key(&id) {
                continue;
            }
            self.prekeys.insert(
                id,
                PreKey {
                    id,
                    pair: KeyPair::generate(rng),
                },
            );
            added += 1;
        }
        added
    }

    /// Deletes a used one-time prekey; returns whether it existed.
    pub fn remove_prekey(&mut self, id: u32) -> bool {
        self.prekeys.remove(&id).is_some()
    }

    /// Takes a used one-time prekey out of the bundle at `now` (unix seconds) but keeps it for
    /// late key exchanges that picked it too, until [`LocalDevice::forget_retired_prekeys`].
    /// Returns whether it was in the bundle.
    pub fn retire_prekey(&mut self, id: u32, now: u64) -> bool {
        match self.prekeys.remove(&id) {
            Some(p) => {
                self.retired.insert(id, (p, now));
                true
            }
            None => false,
        }
    }

    /// Deletes the prekeys retired before `before` (unix seconds); returns how many.
    pub fn forget_retired_prekeys(&mut self, before: u64) -> usize {
        let n = self.retired.len();
        self.retired.retain(|_, (_, at)| *at >= before);
        n - self.retired.len()
    }

    /// How many retired prekeys are still held.
    pub fn retired_prekey_count(&self) -> usize {
        self.retired.len()
    }

    /// Replaces the signed prekey, keeping the previous one for late key exchanges.
    pub fn rotate_signed_prekey<R: CryptoRng + ?Sized>(&mut self, now: u64, rng: &mut R) {
        let id = next_id(self.signed_prekey.id);
        let new = make_signed_prekey(&self.identity, id, now, rng);
        self.old_signed_prekey = Some(core::mem::replace(&mut self.signed_prekey, new));
    }

    /// Forgets the previous signed prekey once its grace period is over.
    pub fn drop_old_signed_prekey(&mut self) {
        self.old_signed_prekey = None;
    }

    /// Seconds since the current signed prekey was made.
    pub fn signed_prekey_age(&self, now: u64) -> u64 {
        now.saturating_sub(self.signed_prekey.created_at)
    }

    pub(crate) fn signed_prekey_by_id(&self, id: u32) -> Result<&KeyPair> {
        [Some(&self.signed_prekey), self.old_signed_prekey.as_ref()]
            .into_iter()
            .flatten()
            .find(|s| s.id == id)
            .map(|s| &s.pair)
            .ok_or(ProtoError::UnknownSignedPreKey(id))
    }

    pub(crate) fn prekey_by_id(&self, id: u32) -> Result<&KeyPair> {
        self.prekeys
            .get(&id)
            .or_else(|| self.retired.get(&id).map(|(p, _)| p))
            .map(|p| &p.pair)
            .ok_or(ProtoError::UnknownPreKey(id))
    }

    /// Serializes all private key material for the store.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let spk = |s: &SignedPreKey| PbSignedPreKey {
            id: s.id,
            secret: s.pair.secret_bytes().to_vec(),
            created_at: s.created_at,
            signature_omemo2: s.signature_omemo2.to_vec(),
            signature_legacy: s.signature_legacy.to_vec(),
        };
        let pb = PbDevice {
            device_id: self.device_id,
            identity: self.identity.secret_bytes().to_vec(),
            signed_prekey: Some(spk(&self.signed_prekey)),
            old_signed_prekey: self.old_signed_prekey.as_ref().map(spk),
            prekey_ids: self.prekeys.keys().copied().collect(),
            prekey_secrets: self
                .prekeys
                .values()
                .map(|p| p.pair.secret_bytes().to_vec())
                .collect(),
            next_prekey_id: self.next_prekey_id,
            retired_ids: self.retired.keys().copied().collect(),
            retired_secrets: self
                .retired
                .values()
                .map(|(p, _)| p.pair.secret_bytes().to_vec())
                .collect(),
            retired_at: self.retired.values().map(|(_, at)| *at).collect(),
        };
        Zeroizing::new(pb.encode_to_vec())
    }

    /// Restores a device saved with [`LocalDevice::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = ProtoError::CorruptState;
        let pb = PbDevice::decode(bytes).map_err(|_| bad("device is not a valid record"))?;
        let k32 = |v: &[u8]| -> Result<[u8; 32]> {
            v.try_into()
                .map_err(|_| bad("device key has the wrong length"))
        };
        let s64 = |v: &[u8]| -> Result<[u8; 64]> {
            v.try_into()
                .map_err(|_| bad("signature has the wrong length"))
        };
        let spk = |s: &PbSignedPreKey| -> Result<SignedPreKey> {
            Ok(SignedPreKey {
                id: s.id,
                pair: KeyPair::from_secret(k32(&s.secret)?),
                created_at: s.created_at,
                signature_omemo2: s64(&s.signature_omemo2)?,
                signature_legacy: s64(&s.signature_legacy)?,
            })
        };
        if pb.prekey_ids.len() != pb.prekey_secrets.len() {
            return Err(bad("prekey ids and secrets differ in number"));
        }
        let mut prekeys = BTreeMap::new();
        for (id, secret) in pb.prekey_ids.iter().zip(&pb.prekey_secrets) {
            prekeys.insert(
                *id,
                PreKey {
                    id: *id,
                    pair: KeyPair::from_secret(k32(secret)?),
                },
            );
        }
        if pb.retired_ids.len() != pb.retired_secrets.len()
            || pb.retired_ids.len() != pb.retired_at.len()
        {
            return Err(bad("retired prekey records differ in number"));
        }
        let mut retired = BTreeMap::new();
        for ((id, secret), at) in pb
            .retired_ids
            .iter()
            .zip(&pb.retired_secrets)
            .zip(&pb.retired_at)
        {
            let pair = KeyPair::from_secret(k32(secret)?);
            retired.insert(*id, (PreKey { id: *id, pair }, *at));
        }
        Ok(Self {
            device_id: check_id(pb.device_id as u64)?,
            identity: IdentityKeyPair::from_secret(k32(&pb.identity)?),
            signed_prekey: spk(pb.signed_prekey.as_ref().ok_or(bad("no signed prekey"))?)?,
            old_signed_prekey: pb.old_signed_prekey.as_ref().map(spk).transpose()?,
            prekeys,
            retired,
            next_prekey_id: pb.next_prekey_id.max(1),
        })
    }
}

#[derive(Clone, PartialEq, Message)]
struct PbSignedPreKey {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(bytes = "vec", tag = "2")]
    secret: Vec<u8>,
    #[prost(uint64, tag = "3")]
    created_at: u64,
    #[prost(bytes = "vec", tag = "4")]
    signature_omemo2: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    signature_legacy: Vec<u8>,
}

impl Drop for PbSignedPreKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

#[derive(Clone, PartialEq, Message)]
struct PbDevice {
    #[prost(uint32, tag = "1")]
    device_id: u32,
    #[prost(bytes = "vec", tag = "2")]
    identity: Vec<u8>,
    #[prost(message, optional, tag = "3")]
    signed_prekey: Option<PbSignedPreKey>,
    #[prost(message, optional, tag = "4")]
    old_signed_prekey: Option<PbSignedPreKey>,
    #[prost(uint32, repeated, tag = "5")]
    prekey_ids: Vec<u32>,
    #[prost(bytes = "vec", repeated, tag = "6")]
    prekey_secrets: Vec<Vec<u8>>,
    #[prost(uint32, tag = "7")]
    next_prekey_id: u32,
    #[prost(uint32, repeated, tag = "8")]
    retired_ids: Vec<u32>,
    #[prost(bytes = "vec", repeated, tag = "9")]
    retired_secrets: Vec<Vec<u8>>,
    #[prost(uint64, repeated, tag = "10")]
    retired_at: Vec<u64>,
}

impl Drop for PbDevice {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.prekey_secrets.zeroize();
        self.retired_secrets.zeroize();
    }
}
