//! Multi-recipient messages: one random payload key, wrapped once per device.
//!
//! [`seal`] encrypts a payload (or nothing, for empty / key-transport messages) for a list of
//! device sessions — the recipients' devices and our own other devices alike — and produces the
//! `<encrypted/>` model. [`LocalDevice::open`] finds our key, runs the key exchange or the
//! existing session, and decrypts the payload.
//!
//! State changes are explicit: `seal` advances the sessions it is given (persist them before
//! sending), `open` advances the existing session only on success, and hands back any new
//! session and the consumed one-time prekey for the caller to persist in the same transaction as
//! the plaintext.

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::device::LocalDevice;
use crate::element::{EncryptedElement, KeyEntry};
use crate::error::{ProtoError, Result};
use crate::keys::IdentityKey;
use crate::payload;
use crate::session::Session;
use crate::suite::Suite;
use crate::wire;

/// One recipient device and our session with it.
#[derive(Debug)]
pub struct Recipient<'a> {
    /// The device owner's bare JID.
    pub jid: &'a str,
    /// The device id.
    pub device_id: u32,
    /// Our session with that device; advanced by [`seal`].
    pub session: &'a mut Session,
}

/// Encrypts `payload` for every recipient; `None` makes an empty message (OMEMO:2) or a
/// key-transport message (legacy), used to complete or heal sessions.
pub fn seal<R: CryptoRng + ?Sized>(
    suite: Suite,
    sender_device: u32,
    payload: Option<&[u8]>,
    recipients: &mut [Recipient<'_>],
    rng: &mut R,
) -> Result<EncryptedElement> {
    if let Some(r) = recipients.iter().find(|r| r.session.suite() != suite) {
        return Err(ProtoError::UnknownSuite(format!(
            "session with device {} of {} is {}, message is {}",
            r.device_id,
            r.jid,
            r.session.suite(),
            suite
        )));
    }
    // All or nothing: check every session can encrypt before advancing any of them, so a
    // failure never leaves some sessions advanced for a message that was not produced.
    for r in recipients.iter() {
        r.session.check_can_encrypt()?;
    }
    let sealed = payload::seal(suite, payload, rng);
    let mut keys = Vec::with_capacity(recipients.len());
    for r in recipients.iter_mut() {
        let k = r.session.encrypt_key(&sealed.key_material)?;
        keys.push(KeyEntry {
            jid: (suite == Suite::Omemo2).then(|| r.jid.to_owned()),
            rid: r.device_id,
            kex: k.kex,
            data: k.data,
        });
    }
    Ok(EncryptedElement {
        suite,
        sid: sender_device,
        keys,
        iv: sealed.iv,
        payload: sealed.ciphertext,
    })
}

/// The result of [`LocalDevice::open`]. Persist all of it: a forgotten `consumed_prekey` stays
/// usable, and a replayed key exchange could rebuild the session.
#[derive(Debug)]
#[must_use]
pub struct Opened {
    /// The decrypted payload; `None` for empty / key-transport messages.
    pub payload: Option<Zeroizing<Vec<u8>>>,
    /// A session built from a key exchange in this message; it replaces any stored one.
    pub new_session: Option<Session>,
    /// True if `new_session` replaces a session we already had with that device. A peer does
    /// this after losing its state, but so could a replayed old key exchange: the caller should
    /// tell the user, and may refuse it for sessions it has reason to keep.
    pub replaces_session: bool,
    /// The one-time prekey that key exchange used; delete it (after catch-up) and republish.
    pub consumed_prekey: Option<u32>,
    /// The sending device's identity key, to check against trust decisions.
    pub sender_identity: IdentityKey,
    /// The message carried a key exchange: XEP-0384 says to answer with an empty message so
    /// the sender stops sending it.
    pub was_key_exchange: bool,
}

impl LocalDevice {
    /// Decrypts an `<encrypted/>` element sent by `sender_jid` to us (`own_jid`), using our
    /// stored session with the sending device if there is one.
    ///
    /// A key exchange whose ephemeral key matches `existing` is processed in that session
    /// (a resent key exchange). A different key exchange builds a new session, returned in
    /// [`Opened::new_session`]; `existing` is left untouched then.
    pub fn open<R: CryptoRng + ?Sized>(
        &self,
        element: &EncryptedElement,
        own_jid: &str,
        sender_jid: &str,
        existing: Option<&mut Session>,
        rng: &mut R,
    ) -> Result<Opened> {
        let suite = element.suite;
        let entry = element
            .key_for(own_jid, self.device_id())
            .ok_or(ProtoError::NotForThisDevice(self.device_id()))?;
        if let Some(s) = existing.as_deref() {
            if s.suite() != suite {
                return Err(ProtoError::UnknownSuite(format!(
                    "stored session is {}, message is {suite}",
                    s.suite()
                )));
            }
        }
        // Work on a copy of the stored session and write it back only once the payload has
        // authenticated too: a tampered payload must not burn the message key of the genuine one.
        let mut staged = existing.as_deref().cloned();
        let (key_material, new_session, consumed_prekey, sender_identity) = if entry.kex {
            let kex = wire::decode_kex(suite, &entry.data)?;
            match staged.as_mut() {
                Some(session)
                    if session.built_from(&kex.ek)
                        && session.peer_identity().same_identity(&kex.identity) =>
                {
                    let km = session.decrypt_key(&kex.message, rng)?;
                    (km, None, None, kex.identity)
                }
                _ => {
                    staged = None;
                    let spk = self.signed_prekey_by_id(kex.spk_id)?;
                    let opk = self.prekey_by_id(kex.pk_id)?;
                    let mut session =
                        Session::from_key_exchange(suite, self.identity(), spk, opk, &kex)?;
                    let km = session.decrypt_key(&kex.message, rng)?;
                    (km, Some(session), Some(kex.pk_id), kex.identity)
                }
            }
        } else {
            let session = staged.as_mut().ok_or_else(|| ProtoError::NoSession {
                jid: sender_jid.to_owned(),
                device: element.sid,
            })?;
            let km = session.decrypt_key(&entry.data, rng)?;
            let identity = *session.peer_identity();
            (km, None, None, identity)
        };
        let payload = payload::open(
            suite,
            &key_material,
            element.payload.as_deref(),
            element.iv.as_deref(),
        )?;
        let replaces_session = existing.is_some() && new_session.is_some();
        if let (Some(stored), Some(updated)) = (existing, staged) {
            *stored = updated;
        }
        Ok(Opened {
            payload,
            new_session,
            replaces_session,
            consumed_prekey,
            sender_identity,
            was_key_exchange: entry.kex,
        })
    }
}
