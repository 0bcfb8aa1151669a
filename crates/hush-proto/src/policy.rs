//! The send policy and the security properties a conversation really has.
//!
//! Three promises live here, as pure functions over facts the caller gathers:
//!
//! 1. **Nothing goes out in clear unless the user asked for it**: an explicit per-message
//!    request (`hush send --plaintext`) or an off switch (per conversation or global). A peer
//!    without usable devices, a server without PEP, an error on the way: all refuse the send,
//!    none falls back to plaintext.
//! 2. **Properties never go down by themselves.** A conversation remembers the best
//!    authentication it reached ([`Conversation::min_auth`]): once every device that could read it
//!    was verified, a new unverified device (which the server can inject) is left out, not
//!    silently admitted. Only the user lowers it.
//! 3. **Properties are computed from facts, not hopes**: OMEMO gives confidentiality,
//!    integrity, forward secrecy, deniability and replay protection; authentication is strong
//!    only when every reader's identity key was verified, weak when any was trusted blindly.
//!
//! The caller (hush-xmpp) turns a [`Decision`] into stanzas; this module never sees the network.

use core::fmt;

/// How well the devices that can read a conversation are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Authentication {
    /// No encryption, or nothing known about the keys.
    None,
    /// Encrypted to keys nobody verified: the server could have substituted them.
    Weak,
    /// Every key was verified by the user (fingerprint or QR code).
    Strong,
}

impl Authentication {
    /// The name used in `--json` output and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Weak => "weak",
            Self::Strong => "strong",
        }
    }

    /// Parses [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "weak" => Some(Self::Weak),
            "strong" => Some(Self::Strong),
            _ => None,
        }
    }
}

impl fmt::Display for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one message or one conversation really has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Properties {
    /// Only the listed devices can read it.
    pub confidentiality: bool,
    /// Any change on the way is detected.
    pub integrity: bool,
    /// How well the readers' keys are known.
    pub authentication: Authentication,
    /// Keys of past messages cannot be recomputed from today's state (Double Ratchet).
    pub forward_secrecy: bool,
    /// Nothing in it proves to a third party who wrote it (MACs, no signatures on messages);
    /// the opposite of non-repudiation.
    pub deniability: bool,
    /// A replayed copy is recognised (ratchet counters and stored message ids).
    pub replay_protection: bool,
}

impl Properties {
    /// A message in clear: nothing at all.
    pub const PLAINTEXT: Self = Self {
        confidentiality: false,
        integrity: false,
        authentication: Authentication::None,
        forward_secrecy: false,
        deniability: false,
        replay_protection: false,
    };

    /// An OMEMO message whose readers are authenticated as `authentication`.
    pub fn omemo(authentication: Authentication) -> Self {
        Self {
            confidentiality: true,
            integrity: true,
            authentication,
            forward_secrecy: true,
            deniability: true,
            replay_protection: true,
        }
    }

    /// Whether every property is at least as good as in `other` (deniability counts as a
    /// property here: OMEMO never gives it up).
    pub fn at_least(&self, other: &Self) -> bool {
        (self.confidentiality || !other.confidentiality)
            && (self.integrity || !other.integrity)
            && self.authentication >= other.authentication
            && (self.forward_secrecy || !other.forward_secrecy)
            && (self.deniability || !other.deniability)
            && (self.replay_protection || !other.replay_protection)
    }
}

/// How much the user trusts one device's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyTrust {
    /// Verified by the user.
    Verified,
    /// Trusted blindly (before any verification), the default for new keys.
    Blind,
    /// Seen, but the user has not decided, and blind trust does not apply.
    Undecided,
    /// Refused by the user: never encrypted to.
    Distrusted,
}

/// One device that could read the message (the peer's, or one of our own others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    /// Its account.
    pub jid: String,
    /// Its device id.
    pub device: u32,
    /// The trust in its identity key; `None` while we do not know the key yet (no bundle).
    pub trust: Option<KeyTrust>,
    /// Whether a session exists or can be built (bundle fetched, signature valid, active).
    pub usable: bool,
    /// Whether it belongs to the peer (`false`: one of our own other devices).
    pub peer: bool,
}

/// What a conversation remembers between messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conversation {
    /// The user switched encryption off for this conversation.
    pub off: bool,
    /// An encrypted message was sent or received here: plaintext from the peer is flagged.
    pub encrypted: bool,
    /// The authentication every send must reach. Raised by itself when a send reaches more;
    /// lowered only by the user.
    pub min_auth: Authentication,
}

impl Default for Conversation {
    fn default() -> Self {
        Self {
            off: false,
            encrypted: false,
            min_auth: Authentication::Weak,
        }
    }
}

/// Why a device was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeftOut {
    /// The user distrusted its key.
    Distrusted,
    /// Its key is not verified and the conversation needs strong authentication.
    NotVerified,
    /// No session could be built (no bundle, bad signature, inactive).
    Unusable,
    /// Its key is neither trusted nor verified.
    Undecided,
}

impl fmt::Display for LeftOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Distrusted => "distrusted",
            Self::NotVerified => "not verified, and this conversation needs strong authentication",
            Self::Unusable => "no usable session",
            Self::Undecided => "trust undecided",
        })
    }
}

/// What to do with one outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Encrypt for these readers.
    Encrypt {
        /// `(jid, device)` of every reader.
        to: Vec<(String, u32)>,
        /// Readers left out, and why.
        left_out: Vec<(String, u32, LeftOut)>,
        /// What the message will have.
        properties: Properties,
    },
    /// Send in clear: only ever because the user asked.
    Plaintext {
        /// Which user action allowed it.
        because: PlaintextReason,
    },
    /// Send nothing.
    Refuse {
        /// What the message could not have.
        missing: Missing,
    },
}

/// What a refused message could not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// Confidentiality, in clear: the conversation requires strong authentication, which a
    /// message in clear cannot have (the requirement must be lowered first).
    StrongAuthenticationInClear,
    /// Confidentiality: the contact has no OMEMO device, and nothing goes in clear unless the
    /// user asks.
    NoDevice,
    /// Strong authentication: none of the contact's devices is verified.
    NoVerifiedDevice,
    /// Confidentiality: none of the contact's devices can be encrypted to.
    NoUsableDevice,
    /// Confidentiality: the contact's devices that could be encrypted to all wait for the
    /// user's decision about their keys (the trust model did not trust them by itself).
    NoTrustedDevice,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StrongAuthenticationInClear => {
                "confidentiality: this conversation requires strong authentication, which a \
                 message in clear cannot have"
            }
            Self::NoDevice => {
                "confidentiality: the contact has no OMEMO device, and nothing is sent in clear \
                 unless you ask for it"
            }
            Self::NoVerifiedDevice => {
                "strong authentication: none of the contact's devices is verified"
            }
            Self::NoUsableDevice => {
                "confidentiality: none of the contact's devices can be encrypted to"
            }
            Self::NoTrustedDevice => {
                "confidentiality: the contact's devices wait for your decision about their keys"
            }
        })
    }
}

/// The user action that allowed a plaintext message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaintextReason {
    /// `--plaintext` on this message.
    ThisMessage,
    /// Encryption is off for this conversation.
    ConversationOff,
    /// Encryption is off for every conversation.
    GlobalOff,
}

/// Decides one send. `plaintext_requested` is the per-message request; `global_off` the
/// global switch. `readers` are the peer's devices and our own other devices.
pub fn decide(
    conversation: &Conversation,
    global_off: bool,
    plaintext_requested: bool,
    readers: &[Reader],
) -> Decision {
    if plaintext_requested || conversation.off || global_off {
        let because = if plaintext_requested {
            PlaintextReason::ThisMessage
        } else if conversation.off {
            PlaintextReason::ConversationOff
        } else {
            PlaintextReason::GlobalOff
        };
        if conversation.min_auth == Authentication::Strong {
            // A demand for strong authentication is a demand for encryption; lift it first.
            return Decision::Refuse {
                missing: Missing::StrongAuthenticationInClear,
            };
        }
        return Decision::Plaintext { because };
    }
    let strong_only = conversation.min_auth == Authentication::Strong;
    let mut to = Vec::new();
    let mut left_out = Vec::new();
    // Outside strong-only mode, authentication is strong only if every device that could read
    // (left out by a passing network error or not) is verified: otherwise a bundle fetch that
    // timed out would raise the conversation to "strong" and shut out a trusted device.
    let mut auth = if strong_only
        || readers.iter().all(|r| {
            matches!(
                r.trust,
                Some(KeyTrust::Verified) | Some(KeyTrust::Distrusted)
            )
        }) {
        Authentication::Strong
    } else {
        Authentication::Weak
    };
    for r in readers {
        let why = match (r.trust, r.usable) {
            (_, false) => Some(LeftOut::Unusable),
            (Some(KeyTrust::Distrusted), _) => Some(LeftOut::Distrusted),
            (Some(KeyTrust::Verified), true) => None,
            (Some(KeyTrust::Blind), true) if !strong_only => None,
            (Some(KeyTrust::Undecided) | None, true) if !strong_only => Some(LeftOut::Undecided),
            (_, true) => Some(LeftOut::NotVerified),
        };
        match why {
            Some(w) => left_out.push((r.jid.clone(), r.device, w)),
            None => {
                if r.trust != Some(KeyTrust::Verified) {
                    auth = Authentication::Weak;
                }
                to.push((r.jid.clone(), r.device));
            }
        }
    }
    let peer_reached = readers
        .iter()
        .any(|r| r.peer && to.iter().any(|(j, d)| *j == r.jid && *d == r.device));
    if !peer_reached {
        let peer_devices = readers.iter().filter(|r| r.peer).count();
        let missing = if peer_devices == 0 {
            Missing::NoDevice
        } else if strong_only && left_out.iter().any(|(_, _, w)| *w == LeftOut::NotVerified) {
            Missing::NoVerifiedDevice
        } else if left_out.iter().any(|(_, _, w)| *w == LeftOut::Undecided) {
            Missing::NoTrustedDevice
        } else {
            Missing::NoUsableDevice
        };
        return Decision::Refuse { missing };
    }
    Decision::Encrypt {
        to,
        left_out,
        properties: Properties::omemo(auth),
    }
}

/// How a key met for the first time starts out: the rule the user chose for an account (the
/// default for every contact) or for one contact.
///
/// Whichever model, a key the user decided about keeps that decision, a distrusted key is
/// never encrypted to, and a conversation that requires strong authentication reaches only
/// verified keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrustModel {
    /// Blind trust before verification (the default, as Conversations and Dino do): new keys
    /// are trusted until the user verified a key of that account; from then on a new key waits
    /// for the user's decision.
    #[default]
    BlindBeforeVerification,
    /// Trust on first use: the keys met when the account is met for the first time are
    /// trusted; every key met after that waits for the user's decision.
    OnFirstUse,
    /// Every new key waits for the user's decision (or for a verification).
    Manual,
}

/// What the store knows about an account's keys, for [`TrustModel::first_trust`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeysOnRecord {
    /// A key of the account was met before (any trust).
    pub any: bool,
    /// A key of the account was verified.
    pub verified: bool,
}

impl TrustModel {
    /// Every model, the default first.
    pub const ALL: [Self; 3] = [
        Self::BlindBeforeVerification,
        Self::OnFirstUse,
        Self::Manual,
    ];

    /// The name used in `--json` output and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::BlindBeforeVerification => "btbv",
            Self::OnFirstUse => "tofu",
            Self::Manual => "manual",
        }
    }

    /// Parses [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What a new key starts as under this model, given what was known of its account before
    /// it was met.
    pub fn first_trust(self, known: KeysOnRecord) -> KeyTrust {
        let blind = match self {
            Self::BlindBeforeVerification => !known.verified,
            // A verified key is a key on record, so "first use" is over for a verified account.
            Self::OnFirstUse => !known.any,
            Self::Manual => false,
        };
        if blind {
            KeyTrust::Blind
        } else {
            KeyTrust::Undecided
        }
    }

    /// One line for people: what happens to a new device of an account under this model,
    /// given what is on record.
    pub fn new_device_rule(self, known: KeysOnRecord) -> &'static str {
        match (self, self.first_trust(known)) {
            (Self::BlindBeforeVerification, KeyTrust::Blind) => {
                "a new device is trusted blindly until you verify one of this account's devices"
            }
            (Self::BlindBeforeVerification, _) => {
                "a new device waits for your decision, as a device of this account is verified"
            }
            (Self::OnFirstUse, KeyTrust::Blind) => {
                "the devices met first are trusted; any device after them waits for your decision"
            }
            (Self::OnFirstUse, _) => "a new device waits for your decision (first use is over)",
            (Self::Manual, _) => "every new device waits for your decision",
        }
    }
}

impl fmt::Display for TrustModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BlindBeforeVerification => "blind trust before verification",
            Self::OnFirstUse => "trust on first use",
            Self::Manual => "manual",
        })
    }
}

impl Conversation {
    /// The state after an encrypted message was sent or received with `properties`: the
    /// conversation is now encrypted, and its minimum authentication rises to what was reached.
    pub fn after_encrypted(self, properties: &Properties) -> Self {
        Self {
            encrypted: true,
            min_auth: self.min_auth.max(properties.authentication),
            ..self
        }
    }

    /// Whether an incoming message in clear deserves the warning that this conversation was
    /// encrypted until now.
    pub fn plaintext_is_a_downgrade(&self) -> bool {
        self.encrypted && !self.off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_that_wait_for_a_decision_are_named_as_such_in_a_refusal() {
        let conv = Conversation::default();
        let d = decide(&conv, false, false, &[reader(1, KeyTrust::Undecided, true)]);
        assert_eq!(
            d,
            Decision::Refuse {
                missing: Missing::NoTrustedDevice
            }
        );
        // One unusable device and one undecided: the undecided one is what the user can fix.
        let unusable = Reader {
            usable: false,
            ..reader(2, KeyTrust::Blind, true)
        };
        let d = decide(
            &conv,
            false,
            false,
            &[unusable, reader(1, KeyTrust::Undecided, true)],
        );
        assert_eq!(
            d,
            Decision::Refuse {
                missing: Missing::NoTrustedDevice
            }
        );
    }

    #[test]
    fn trust_models_start_new_keys_as_their_rules_say() {
        let fresh = KeysOnRecord::default();
        let met = KeysOnRecord {
            any: true,
            verified: false,
        };
        let verified = KeysOnRecord {
            any: true,
            verified: true,
        };
        use KeyTrust::{Blind, Undecided};
        let btbv = TrustModel::BlindBeforeVerification;
        assert_eq!(
            [fresh, met, verified].map(|k| btbv.first_trust(k)),
            [Blind, Blind, Undecided]
        );
        let tofu = TrustModel::OnFirstUse;
        assert_eq!(
            [fresh, met, verified].map(|k| tofu.first_trust(k)),
            [Blind, Undecided, Undecided]
        );
        let manual = TrustModel::Manual;
        assert_eq!(
            [fresh, met, verified].map(|k| manual.first_trust(k)),
            [Undecided, Undecided, Undecided]
        );
        assert_eq!(TrustModel::default(), btbv);
        for m in TrustModel::ALL {
            assert_eq!(TrustModel::from_name(m.name()), Some(m));
        }
        assert_eq!(TrustModel::from_name("blind"), None);
    }

    fn reader(device: u32, trust: KeyTrust, peer: bool) -> Reader {
        Reader {
            jid: if peer { "bob@x" } else { "me@x" }.into(),
            device,
            trust: Some(trust),
            usable: true,
            peer,
        }
    }

    #[test]
    fn blind_trust_gives_weak_and_verified_gives_strong() {
        let conv = Conversation::default();
        let d = decide(&conv, false, false, &[reader(1, KeyTrust::Blind, true)]);
        let Decision::Encrypt { properties, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(properties.authentication, Authentication::Weak);
        let d = decide(
            &conv,
            false,
            false,
            &[
                reader(1, KeyTrust::Verified, true),
                reader(2, KeyTrust::Verified, false),
            ],
        );
        let Decision::Encrypt { properties, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(properties, Properties::omemo(Authentication::Strong));
        // One blindly trusted own device makes the whole message weak.
        let d = decide(
            &conv,
            false,
            false,
            &[
                reader(1, KeyTrust::Verified, true),
                reader(2, KeyTrust::Blind, false),
            ],
        );
        let Decision::Encrypt { properties, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(properties.authentication, Authentication::Weak);
    }

    #[test]
    fn no_device_never_means_plaintext() {
        let conv = Conversation::default();
        for readers in [
            vec![],
            vec![Reader {
                usable: false,
                ..reader(1, KeyTrust::Blind, true)
            }],
            vec![
                reader(1, KeyTrust::Distrusted, true),
                reader(2, KeyTrust::Blind, false),
            ],
        ] {
            let d = decide(&conv, false, false, &readers);
            assert!(matches!(d, Decision::Refuse { .. }), "{readers:?}: {d:?}");
        }
    }

    #[test]
    fn once_strong_new_unverified_devices_are_left_out() {
        let conv =
            Conversation::default().after_encrypted(&Properties::omemo(Authentication::Strong));
        assert_eq!(conv.min_auth, Authentication::Strong);
        let d = decide(
            &conv,
            false,
            false,
            &[
                reader(1, KeyTrust::Verified, true),
                reader(9, KeyTrust::Blind, true),
            ],
        );
        let Decision::Encrypt {
            to,
            left_out,
            properties,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(to, [("bob@x".to_owned(), 1)]);
        assert_eq!(left_out, [("bob@x".to_owned(), 9, LeftOut::NotVerified)]);
        assert_eq!(properties.authentication, Authentication::Strong);
        // Only unverified devices left: refuse, naming what is missing.
        let d = decide(&conv, false, false, &[reader(9, KeyTrust::Blind, true)]);
        let Decision::Refuse { missing } = d else {
            panic!("{d:?}")
        };
        assert_eq!(missing, Missing::NoVerifiedDevice);
    }

    #[test]
    fn plaintext_only_by_user_action() {
        let conv = Conversation::default();
        let readers = [reader(1, KeyTrust::Blind, true)];
        assert!(matches!(
            decide(&conv, false, true, &readers),
            Decision::Plaintext {
                because: PlaintextReason::ThisMessage
            }
        ));
        assert!(matches!(
            decide(&conv, true, false, &readers),
            Decision::Plaintext {
                because: PlaintextReason::GlobalOff
            }
        ));
        let off = Conversation { off: true, ..conv };
        assert!(matches!(
            decide(&off, false, false, &readers),
            Decision::Plaintext {
                because: PlaintextReason::ConversationOff
            }
        ));
        let strong = Conversation {
            min_auth: Authentication::Strong,
            ..conv
        };
        assert!(matches!(
            decide(&strong, false, true, &readers),
            Decision::Refuse { .. }
        ));
    }
}
