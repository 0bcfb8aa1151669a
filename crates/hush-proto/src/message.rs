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

use minidom::Element;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::device::LocalDevice;
use crate::element::{EncryptedElement, KeyEntry};
use crate::error::{EnvelopeFault, ProtoError, Result};
use crate::keys::IdentityKey;
use crate::payload;
use crate::sce;
use crate::session::{Reader, Session};
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
    /// The session with the sending device after this message: the stored one advanced, or one
    /// a key exchange built (alone, or added to the stored one's states). Store it in place of
    /// the stored one — unless `identity_changed`.
    pub session: Session,
    /// A key exchange in this message built a new session state (it cost the one-time prekey
    /// in `consumed_prekey`). A peer does this when it starts a session, restarts one, or
    /// starts one at the same time as we did.
    pub new_state: bool,
    /// The key exchange came under another identity key than the stored session's: `session`
    /// then holds only the new state. A reinstalled peer does this, and so would a server
    /// slipping in its own key: the caller decides (XEP-0384 leaves replacing it to the user).
    pub identity_changed: bool,
    /// The one-time prekey that key exchange used; delete it (after catch-up) and republish.
    pub consumed_prekey: Option<u32>,
    /// The sending device's identity key, to check against trust decisions.
    pub sender_identity: IdentityKey,
    /// The message carried a key exchange: XEP-0384 says to answer with an empty message so
    /// the sender stops sending it.
    pub was_key_exchange: bool,
    /// The message was read on a state that no longer sends (a rewound session's, kept only
    /// to read what the peer already sent on it: see [`Session::restart`]). A key exchange
    /// read there needs no answer: we never write on that state, and the key exchange of the
    /// session that replaced it makes the peer move on.
    pub read_only_state: bool,
    /// OMEMO:2: the payload parsed as an SCE envelope, or why it is not one. `open` parses it
    /// to read the stamp; [`Opened::envelope`] checks it without parsing it again.
    parsed_envelope: Option<Result<Element>>,
}

impl Opened {
    /// The payload's SCE envelope (OMEMO:2), checked against `expect`: what [`sce::open`] says
    /// of the payload, from the parse `open` already made.
    pub fn envelope(&self, expect: sce::Expect<'_>) -> Result<sce::Envelope> {
        match (&self.parsed_envelope, &self.payload) {
            (Some(Ok(el)), _) => sce::check(el, expect),
            (Some(Err(e)), _) => Err(e.clone()),
            (None, Some(payload)) => sce::open(payload, expect),
            (None, None) => Err(ProtoError::Envelope(EnvelopeFault::NoPayload)),
        }
    }
}

/// What becomes of the session's states once a message has authenticated.
enum Place {
    /// A kept state read it.
    Read(Reader),
    /// A new key exchange built this state, to take into the stored session (boxed: a state
    /// is large, and this is the rare case).
    Adopt(Box<Session>),
}

impl LocalDevice {
    /// Whether opening `element` would run a key agreement (X3DH, a one-time prekey): it
    /// carries a key exchange for this device that no state of `existing` was built from.
    /// Cheap (it reads the key exchange's framing only), so a caller can ration the expensive
    /// work before doing it.
    pub fn needs_key_agreement(
        &self,
        element: &EncryptedElement,
        own_jid: &str,
        existing: Option<&Session>,
    ) -> bool {
        let Some(entry) = element.key_for(own_jid, self.device_id()) else {
            return false;
        };
        if !entry.kex {
            return false;
        }
        let Ok(kex) = wire::decode_kex(element.suite, &entry.data) else {
            return false;
        };
        !existing.is_some_and(|s| {
            s.peer_identity().same_identity(&kex.identity) && s.state_built_from(&kex.ek).is_some()
        })
    }

    /// The identity key the key exchange for this device in `element` claims, if it carries
    /// one (read from its framing only, nothing is verified). The caller binds it to the
    /// sender before any key agreement: it must be the identity key the sender's account
    /// publishes for that device.
    pub fn key_exchange_identity(
        &self,
        element: &EncryptedElement,
        own_jid: &str,
    ) -> Option<IdentityKey> {
        let entry = element.key_for(own_jid, self.device_id())?;
        if !entry.kex {
            return None;
        }
        wire::decode_kex(element.suite, &entry.data)
            .ok()
            .map(|kex| kex.identity)
    }

    /// The base key (the sender's ephemeral X3DH key) of the key exchange for this device in
    /// `element`, if it carries one (read from its framing only). A key exchange we cannot
    /// read is healed by answering with one of ours whose base key is smaller (see
    /// [`Session::initiate_below`]).
    pub fn key_exchange_base_key(
        &self,
        element: &EncryptedElement,
        own_jid: &str,
    ) -> Option<[u8; 32]> {
        let entry = element.key_for(own_jid, self.device_id())?;
        if !entry.kex {
            return None;
        }
        wire::decode_kex(element.suite, &entry.data)
            .ok()
            .map(|kex| kex.ek)
    }

    /// Decrypts an `<encrypted/>` element sent by `sender_jid` to us (`own_jid`), using our
    /// stored session with the sending device if there is one. `existing` is the stored
    /// session, taken by value: the session to store afterwards is [`Opened::session`], and on
    /// an error the stored one stays as it is (nothing to write back).
    ///
    /// A key exchange is processed in the state it built earlier if one is kept (a resent key
    /// exchange); otherwise it builds a new state from our prekeys, taken into the stored
    /// session as [`Session`] describes. A message without one is read by the current state or
    /// an earlier one. Nothing is returned unless the whole message authenticates.
    ///
    /// For OMEMO:2 the payload is parsed as an SCE envelope, and its `<time/>` stamp is kept
    /// with the state that read the message: it tells a late key exchange from a restart.
    /// Nothing else of the envelope is checked here; [`Opened::envelope`] does that with the
    /// JIDs the caller knows, from the same parse.
    pub fn open<R: CryptoRng + ?Sized>(
        &self,
        element: &EncryptedElement,
        own_jid: &str,
        sender_jid: &str,
        existing: Option<Session>,
        rng: &mut R,
    ) -> Result<Opened> {
        let suite = element.suite;
        let entry = element
            .key_for(own_jid, self.device_id())
            .ok_or(ProtoError::NotForThisDevice(self.device_id()))?;
        if let Some(s) = &existing {
            if s.suite() != suite {
                return Err(ProtoError::UnknownSuite(format!(
                    "stored session is {}, message is {suite}",
                    s.suite()
                )));
            }
        }
        // Work on the caller's copy of the stored session, handed back only once the payload
        // has authenticated too: a tampered payload must not burn the message key of the
        // genuine one (the stored session is untouched until the caller stores ours).
        let empty = element.payload.is_none();
        let mut new_state = false;
        let mut identity_changed = false;
        let mut consumed_prekey = None;
        // Which state read the message is settled only once the payload has authenticated
        // too: where a new state goes may depend on the stamp inside the payload.
        let (key_material, mut session, sender_identity, place) = if entry.kex {
            let kex = wire::decode_kex(suite, &entry.data)?;
            let had_session = existing.is_some();
            let staged = existing.filter(|s| s.peer_identity().same_identity(&kex.identity));
            let known = staged.as_ref().and_then(|s| s.state_built_from(&kex.ek));
            let (km, session, place) = match (staged, known) {
                (Some(mut session), Some(index)) => {
                    let km = session.decrypt_key_in(index, &kex.message, rng)?;
                    (
                        km,
                        session,
                        Place::Read(Reader::KeyExchange { index, empty }),
                    )
                }
                (staged, _) => {
                    let spk = self.signed_prekey_by_id(kex.spk_id)?;
                    let opk = self.prekey_by_id(kex.pk_id)?;
                    let mut fresh =
                        Session::from_key_exchange(suite, self.identity(), spk, opk, &kex)?;
                    let (km, _) = fresh.decrypt_key(&kex.message, rng)?;
                    new_state = true;
                    consumed_prekey = Some(kex.pk_id);
                    identity_changed = had_session && staged.is_none();
                    match staged {
                        Some(session) => (km, session, Place::Adopt(Box::new(fresh))),
                        None => (km, fresh, Place::Read(Reader::Message(0))),
                    }
                }
            };
            (km, session, kex.identity, place)
        } else {
            let mut session = existing.ok_or_else(|| ProtoError::NoSession {
                jid: sender_jid.to_owned(),
                device: element.sid,
            })?;
            let (km, index) = session.decrypt_key(&entry.data, rng)?;
            let identity = *session.peer_identity();
            (km, session, identity, Place::Read(Reader::Message(index)))
        };
        let payload = payload::open(
            suite,
            &key_material,
            element.payload.as_deref(),
            element.iv.as_deref(),
        )?;
        // OMEMO:2 payloads are SCE envelopes; their stamp is the sender's clock, set inside
        // the encryption. Legacy payloads carry no time.
        let parsed_envelope = match suite {
            Suite::Omemo2 => payload.as_deref().map(|p| sce::parse(p)),
            Suite::Legacy => None,
        };
        let stamp = match &parsed_envelope {
            Some(Ok(envelope)) => sce::stamp_of(envelope),
            _ => None,
        };
        let read_only_state = match &place {
            Place::Read(Reader::KeyExchange { index, .. } | Reader::Message(index)) => {
                session.is_read_only(*index)
            }
            Place::Adopt(_) => false,
        };
        match place {
            Place::Read(reader) => session.settle(reader, stamp),
            Place::Adopt(fresh) => session.adopt(*fresh, stamp, payload.is_none()),
        }
        Ok(Opened {
            payload,
            session,
            new_state,
            identity_changed,
            consumed_prekey,
            sender_identity,
            was_key_exchange: entry.kex,
            read_only_state,
            parsed_envelope,
        })
    }
}
