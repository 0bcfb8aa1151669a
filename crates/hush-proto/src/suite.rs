//! Named, versioned OMEMO suites (algorithm agility).
//!
//! A [`Suite`] is the one value callers pass around to say "which OMEMO". Everything that differs
//! between suites — namespaces, KDF info strings, MAC lengths, key encodings, framing — is looked
//! up from it inside this crate; code outside `hush-proto` never branches on algorithm details.
//! Adding a suite means adding a variant here and its arms in the codec modules; callers keep
//! working unchanged.

use core::fmt;

use crate::error::{ProtoError, Result};
use crate::keys::IdentityKey;

/// An OMEMO protocol suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Suite {
    /// XEP-0384 0.8+ in `urn:xmpp:omemo:2`: Ed25519 identities, AES-256-CBC+HMAC payloads and
    /// Stanza Content Encryption (XEP-0420).
    Omemo2,
    /// XEP-0384 0.3 as deployed by Conversations, Dino, Gajim & co. in
    /// `eu.siacs.conversations.axolotl`: libsignal framing and an AES-128-GCM `<body>` payload.
    Legacy,
}

/// The constants a suite is made of.
#[derive(Debug)]
pub(crate) struct Params {
    pub x3dh_info: &'static [u8],
    pub root_info: &'static [u8],
    pub message_info: &'static [u8],
    /// Truncated ratchet-message MAC length.
    pub mac_len: usize,
    /// Whether senders put the index of the previous chain's last message in `pn` (libsignal)
    /// rather than the chain's length (the Double Ratchet spec, OMEMO:2).
    pub pn_is_last_index: bool,
}

const OMEMO2: Params = Params {
    x3dh_info: b"OMEMO X3DH",
    root_info: b"OMEMO Root Chain",
    message_info: b"OMEMO Message Key Material",
    mac_len: 16,
    pn_is_last_index: false,
};

const LEGACY: Params = Params {
    x3dh_info: b"WhisperText",
    root_info: b"WhisperRatchet",
    message_info: b"WhisperMessageKeys",
    mac_len: 8,
    pn_is_last_index: true,
};

impl Suite {
    /// Every suite this build implements, newest first (the preference order).
    pub const ALL: [Suite; 2] = [Suite::Omemo2, Suite::Legacy];

    /// The stable name used in configs, JSON output and the store (`omemo:2`, `omemo:legacy`).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Omemo2 => "omemo:2",
            Suite::Legacy => "omemo:legacy",
        }
    }

    /// The version of the suite definition; bumps whenever its wire behaviour changes.
    pub fn version(self) -> u32 {
        match self {
            Suite::Omemo2 => 1,
            Suite::Legacy => 1,
        }
    }

    /// The XML namespace of the suite's elements.
    pub fn namespace(self) -> &'static str {
        match self {
            Suite::Omemo2 => "urn:xmpp:omemo:2",
            Suite::Legacy => "eu.siacs.conversations.axolotl",
        }
    }

    /// The PEP node holding the device list.
    pub fn devices_node(self) -> &'static str {
        match self {
            Suite::Omemo2 => "urn:xmpp:omemo:2:devices",
            Suite::Legacy => "eu.siacs.conversations.axolotl.devicelist",
        }
    }

    /// The PEP node (and item id) holding a device's bundle.
    pub fn bundle_location(self, device_id: u32) -> (String, Option<String>) {
        match self {
            Suite::Omemo2 => (
                "urn:xmpp:omemo:2:bundles".to_owned(),
                Some(device_id.to_string()),
            ),
            Suite::Legacy => (
                format!("eu.siacs.conversations.axolotl.bundles:{device_id}"),
                None,
            ),
        }
    }

    /// Parses a suite name as returned by [`Suite::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Suite::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| ProtoError::UnknownSuite(name.to_owned()))
    }

    /// Finds the suite of an XML namespace.
    pub fn from_namespace(ns: &str) -> Result<Self> {
        Suite::ALL
            .into_iter()
            .find(|s| s.namespace() == ns)
            .ok_or_else(|| ProtoError::UnknownSuite(ns.to_owned()))
    }

    pub(crate) fn params(self) -> &'static Params {
        match self {
            Suite::Omemo2 => &OMEMO2,
            Suite::Legacy => &LEGACY,
        }
    }

    /// The suite's wire encoding of an identity key.
    pub fn encode_identity(self, key: &IdentityKey) -> Vec<u8> {
        match self {
            Suite::Omemo2 => key.ed25519().to_vec(),
            Suite::Legacy => prefixed(&key.curve25519()),
        }
    }

    /// Parses an identity key in the suite's wire encoding.
    pub fn decode_identity(self, bytes: &[u8]) -> Result<IdentityKey> {
        match self {
            Suite::Omemo2 => IdentityKey::from_ed25519(exact32("identity key", bytes)?),
            Suite::Legacy => IdentityKey::from_curve25519(unprefix("identity key", bytes)?),
        }
    }

    /// The suite's wire encoding of an X25519 public key (prekeys, ratchet keys).
    pub(crate) fn encode_public(self, key: &[u8; 32]) -> Vec<u8> {
        match self {
            Suite::Omemo2 => key.to_vec(),
            Suite::Legacy => prefixed(key),
        }
    }

    /// Parses an X25519 public key in the suite's wire encoding. Only canonical encodings are
    /// accepted: X25519 ignores the top bit, so a flipped top bit would otherwise give a
    /// second, equally valid encoding of the same key (malleable key exchanges).
    pub(crate) fn decode_public(self, what: &'static str, bytes: &[u8]) -> Result<[u8; 32]> {
        let key = match self {
            Suite::Omemo2 => exact32(what, bytes)?,
            Suite::Legacy => unprefix(what, bytes)?,
        };
        if is_canonical_u(&key) {
            Ok(key)
        } else {
            Err(ProtoError::InvalidPublicKey(what))
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True if `u` is the canonical encoding of a field element: below 2^255 - 19.
pub(crate) fn is_canonical_u(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    // Values from 2^255 - 19 up to 2^255 - 1: 0x7f, thirty 0xff, then at least 0xed.
    !(u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff) && u[0] >= 0xed)
}

/// libsignal's key type byte for Curve25519 ("DJB") keys.
const DJB_TYPE: u8 = 0x05;

fn prefixed(key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(33);
    out.push(DJB_TYPE);
    out.extend_from_slice(key);
    out
}

pub(crate) fn exact32(what: &'static str, bytes: &[u8]) -> Result<[u8; 32]> {
    bytes.try_into().map_err(|_| ProtoError::BadLength {
        what,
        got: bytes.len(),
        expected: "32",
    })
}

fn unprefix(what: &'static str, bytes: &[u8]) -> Result<[u8; 32]> {
    match bytes {
        [DJB_TYPE, rest @ ..] if rest.len() == 32 => exact32(what, rest),
        // Some old clients published bare 32-byte keys; accept them as well.
        _ if bytes.len() == 32 => exact32(what, bytes),
        _ => Err(ProtoError::BadLength {
            what,
            got: bytes.len(),
            expected: "33 (0x05 || key)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::from_name(s.name()).unwrap(), s);
            assert_eq!(Suite::from_namespace(s.namespace()).unwrap(), s);
        }
        assert_eq!(
            Suite::from_namespace("urn:xmpp:omemo:1"),
            Err(ProtoError::UnknownSuite("urn:xmpp:omemo:1".into()))
        );
    }

    #[test]
    fn non_canonical_keys_are_refused() {
        let mut k = [9u8; 32];
        assert!(Suite::Omemo2.decode_public("k", &k).is_ok());
        k[31] |= 0x80;
        assert!(Suite::Omemo2.decode_public("k", &k).is_err(), "top bit set");
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xed;
        assert!(!is_canonical_u(&p), "the field prime itself");
        p[0] = 0xec;
        assert!(is_canonical_u(&p), "p - 1");
    }

    #[test]
    fn key_encodings() {
        let k = [9u8; 32];
        assert_eq!(Suite::Legacy.encode_public(&k).len(), 33);
        assert_eq!(
            Suite::Legacy
                .decode_public("k", &Suite::Legacy.encode_public(&k))
                .unwrap(),
            k
        );
        assert!(Suite::Legacy.decode_public("k", &[6; 33]).is_err());
        assert!(Suite::Omemo2.decode_public("k", &[6; 33]).is_err());
    }
}
