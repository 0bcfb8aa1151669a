//! Verification URIs: what a QR code of an OMEMO client holds, read and written.
//!
//! Two families are deployed, and `hush verify` reads both:
//!
//! | client | form |
//! |---|---|
//! | Conversations, Dino, Profanity, Monal | `xmpp:JID?omemo-sid-DEVICE=HEX;omemo-sid-DEVICE=HEX` |
//! | Gajim | the same after a `message` action: `xmpp:JID?message;omemo-sid-DEVICE=HEX` |
//! | Conversations (web link) | `https://conversations.im/i/JID?omemo-sid-DEVICE=HEX&…` |
//! | Kaidan (XEP-0434 trust message URI) | `xmpp:JID?trust-message;encryption=urn:xmpp:omemo:2;trust=HEX;distrust=HEX` |
//!
//! In the `omemo-sid-` form HEX is the identity key's Curve25519 form (64 lowercase hex
//! digits, the fingerprint users see; some add libsignal's `05` type byte). The XEP-0434 form
//! names no device: HEX is the identity key's Ed25519 form (as OMEMO 2 bundles carry it), and
//! a `distrust=` key is one its owner's other device refused. Either form of either family is
//! matched against both forms of the keys we hold, so no client's choice can make a match fail.
//!
//! What we write: the `omemo-sid-` form (every client but Kaidan reads it) with this device and
//! the account's other devices the user verified, as Conversations and Gajim do, so a contact
//! scanning it verifies all of them at once; or, for Kaidan, the trust message form of the same
//! keys. Never a device nobody verified: the server can add those.

use std::fmt::Write as _;

use hush_proto::IdentityKey;
use subtle::ConstantTimeEq;

use crate::error::{CliError, Result};

/// The namespace a Kaidan trust message URI names for OMEMO 2 keys.
const OMEMO2: &str = "urn:xmpp:omemo:2";

/// Conversations' web form of its URI.
const CONVERSATIONS_WEB: &str = "https://conversations.im/i/";

/// A verification URI read: whose keys, and what it says about each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerificationUri {
    /// The account the keys belong to (a bare JID, unchecked).
    pub(crate) jid: String,
    /// What it says, in its order.
    pub(crate) claims: Vec<Claim>,
}

/// One key a URI names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The device it names (`None` in the trust message form, which names keys only).
    pub(crate) device: Option<u32>,
    /// The key, as 64 lowercase hex digits (either form; a `05` type byte removed).
    pub(crate) key: String,
    /// `true`: the key is vouched for; `false`: its owner's device distrusted it.
    pub(crate) trusted: bool,
}

impl Claim {
    /// Whether `identity` is the key this claim names, in either form (compared in constant
    /// time: the hex came from outside).
    ///
    /// An Ed25519 form is compared through its Curve25519 form: a legacy key is held in its
    /// Curve25519 form, from which the Ed25519 form's sign bit cannot be known (python-omemo
    /// recovers it from the signed prekey's signature, Hush does not), so the Ed25519 bytes of
    /// one key can differ in that bit between two clients.
    pub(crate) fn names(&self, identity: &IdentityKey) -> bool {
        let held = identity.curve25519();
        let Ok(bytes) = <[u8; 32]>::try_from(hex::decode(&self.key).unwrap_or_default()) else {
            return false;
        };
        let as_curve = bool::from(held.ct_eq(&bytes));
        let as_ed25519 =
            IdentityKey::from_ed25519(bytes).is_ok_and(|k| bool::from(held.ct_eq(&k.curve25519())));
        as_curve | as_ed25519
    }
}

/// Reads a verification URI in any of the forms in the module documentation.
pub(crate) fn parse(uri: &str) -> Result<VerificationUri> {
    let bad = || CliError::BadUri(uri.to_owned());
    // Copied from a terminal where the URI was wrapped (`hush fingerprint` continues a long line
    // on the next as `    | `): the pieces join again. A URI never holds a line break.
    let joined = uri.trim().replace(crate::terminal::CONTINUATION, "");
    let text = joined.trim();
    let rest = if let Some(rest) = text.strip_prefix("xmpp:") {
        // `xmpp://ACCOUNT/JID?…` names the account to act as; only the JID matters here.
        match rest.strip_prefix("//") {
            Some(with_authority) => with_authority.split_once('/').ok_or_else(bad)?.1,
            None => rest,
        }
    } else if let Some(rest) = text.strip_prefix(CONVERSATIONS_WEB) {
        rest
    } else {
        return Err(bad());
    };
    let (jid, query) = rest.split_once('?').ok_or_else(bad)?;
    // As a JID compares: `Bob@Example.org` is bob@example.org.
    let jid = percent_decoded(jid)
        .and_then(|j| j.to_lowercase().parse::<hush_xmpp::BareJid>().ok())
        .map(|j| j.to_string())
        .ok_or_else(bad)?;
    let items: Vec<&str> = query.split([';', '&']).collect();
    let claims = if items.first() == Some(&"trust-message") {
        trust_message_claims(&items[1..]).ok_or_else(bad)?
    } else {
        omemo_sid_claims(&items).ok_or_else(bad)?
    };
    if jid.is_empty() || jid.contains(['/', '?', '#']) || claims.is_empty() {
        return Err(bad());
    }
    Ok(VerificationUri { jid, claims })
}

/// The claims of the `omemo-sid-DEVICE=HEX` form; other items (an action such as `message`,
/// parameters of other protocols) are left alone.
fn omemo_sid_claims(items: &[&str]) -> Option<Vec<Claim>> {
    let mut claims = Vec::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            continue;
        };
        let Some(id) = name
            .strip_prefix("omemo-sid-")
            .or_else(|| name.strip_prefix("omemo2-sid-"))
        else {
            continue;
        };
        claims.push(Claim {
            device: Some(id.parse().ok()?),
            key: key_hex(value)?,
            trusted: true,
        });
    }
    Some(claims)
}

/// The claims of the XEP-0434 form (after `trust-message`): OMEMO 2 keys only.
fn trust_message_claims(items: &[&str]) -> Option<Vec<Claim>> {
    let mut claims = Vec::new();
    for item in items {
        let (name, value) = item.split_once('=')?;
        match name {
            "encryption" if percent_decoded(value)? == OMEMO2 => {}
            // Keys of another protocol (OX, say) are nothing we could check.
            "encryption" => return None,
            "trust" | "distrust" => claims.push(Claim {
                device: None,
                key: key_hex(value)?,
                trusted: name == "trust",
            }),
            _ => {}
        }
    }
    Some(claims)
}

/// A key in hex, normalised: lowercase, separators and libsignal's `05` type byte removed.
fn key_hex(value: &str) -> Option<String> {
    let hex: String = percent_decoded(value)?
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        64 => Some(hex),
        66 => hex.strip_prefix("05").map(str::to_owned),
        _ => None,
    }
}

/// `%XX` escapes decoded (as UTF-8); `None` for a broken escape or invalid UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A JID as a URI path: characters that would end it or change its meaning are escaped
/// (RFC 5122 allows the rest, `@` included).
fn escaped_jid(jid: &str) -> String {
    let mut out = String::with_capacity(jid.len());
    for b in jid.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*+,@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `xmpp:JID?omemo-sid-DEVICE=HEX;…`: the form most clients read, with the Curve25519 form
/// (the fingerprint users compare).
pub(crate) fn omemo_sid_uri(jid: &str, devices: &[(u32, IdentityKey)]) -> String {
    let keys: Vec<String> = devices
        .iter()
        .map(|(d, k)| format!("omemo-sid-{d}={}", hex::encode(k.curve25519())))
        .collect();
    format!("xmpp:{}?{}", escaped_jid(jid), keys.join(";"))
}

/// `xmpp:JID?trust-message;encryption=urn:xmpp:omemo:2;trust=HEX;…`: XEP-0434's form, which
/// Kaidan reads, with the Ed25519 form its key identifiers use.
pub(crate) fn trust_message_uri(jid: &str, keys: &[IdentityKey]) -> String {
    let mut uri = format!(
        "xmpp:{}?trust-message;encryption={OMEMO2}",
        escaped_jid(jid)
    );
    for k in keys {
        let _ = write!(uri, ";trust={}", hex::encode(k.ed25519()));
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn key(seed: u64) -> IdentityKey {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        *hush_proto::LocalDevice::generate(1, 1, 0, &mut rng)
            .unwrap()
            .identity()
            .public()
    }

    #[test]
    fn every_clients_form_is_read() {
        let k = key(1);
        let curve = hex::encode(k.curve25519());
        let ed = hex::encode(k.ed25519());
        let upper = curve.to_uppercase();
        let forms = [
            // Conversations, Dino, Profanity, Monal.
            format!("xmpp:bob@example.org?omemo-sid-7={curve}"),
            // Gajim's action first; libsignal's type byte; upper case.
            format!("xmpp:bob@example.org?message;omemo-sid-7=05{upper}"),
            // Conversations' web link.
            format!("https://conversations.im/i/bob@example.org?omemo-sid-7={curve}&omemo-sid-9={curve}"),
            // An escaped `@`, surrounding blanks (copied from a terminal).
            format!("  xmpp:bob%40example.org?omemo2-sid-7={ed}\n"),
        ];
        for form in &forms {
            let uri = parse(form).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(uri.jid, "bob@example.org", "{form}");
            assert_eq!(uri.claims[0].device, Some(7), "{form}");
            assert!(uri.claims[0].names(&k), "{form}");
            assert!(uri.claims.iter().all(|c| c.trusted));
            assert!(!uri.claims[0].names(&key(2)), "{form}");
        }
        // Wrapped in a terminal and copied as it shows.
        let wrapped = format!(
            "xmpp:bob@example.org?omemo-sid-7={}{}{}",
            &curve[..20],
            crate::terminal::CONTINUATION,
            &curve[20..]
        );
        assert!(parse(&wrapped).unwrap().claims[0].names(&k));
        // Kaidan: keys without devices, trusted and distrusted.
        let other = key(3);
        let kaidan = format!(
            "xmpp:bob@example.org?trust-message;encryption=urn:xmpp:omemo:2;trust={ed};distrust={}",
            hex::encode(other.ed25519())
        );
        let uri = parse(&kaidan).unwrap();
        assert_eq!(uri.claims.len(), 2);
        assert_eq!((uri.claims[0].device, uri.claims[0].trusted), (None, true));
        assert!(uri.claims[0].names(&k));
        assert_eq!((uri.claims[1].device, uri.claims[1].trusted), (None, false));
        assert!(uri.claims[1].names(&other));
    }

    /// A legacy key's Ed25519 form is known only up to its sign bit: a client that recovered
    /// the other sign (python-omemo does, from the signature) still names the same key.
    #[test]
    fn an_ed25519_form_with_the_other_sign_names_the_same_key() {
        let k = key(6);
        let mut ed = k.ed25519();
        ed[31] ^= 0x80;
        let other_sign = IdentityKey::from_ed25519(ed).unwrap();
        assert_eq!(other_sign.curve25519(), k.curve25519());
        let uri = parse(&format!(
            "xmpp:bob@x?trust-message;encryption=urn:xmpp:omemo:2;trust={}",
            hex::encode(ed)
        ))
        .unwrap();
        assert!(uri.claims[0].names(&k));
        assert!(!uri.claims[0].names(&key(7)));
    }

    #[test]
    fn what_is_not_a_verification_uri_is_refused() {
        let hex = "ab".repeat(32);
        for bad in [
            "bob@x".to_owned(),
            "xmpp:bob@x".to_owned(),
            "xmpp:bob@x?message".to_owned(),
            "xmpp:bob@x?omemo-sid-x=aa".to_owned(),
            "xmpp:bob@x?omemo-sid-7=abcd".to_owned(),
            format!("xmpp:bob@x?omemo-sid-7={hex}00"),
            format!("xmpp:?omemo-sid-7={hex}"),
            format!("xmpp:bob@x/phone?omemo-sid-7={hex}"),
            format!("xmpp:bob%4@x?omemo-sid-7={hex}"),
            format!("xmpp:bob@x?trust-message;encryption=urn:xmpp:openpgp:0;trust={hex}"),
            format!("xmpp:bob@x?trust-message;encryption=urn:xmpp:omemo:2;trust={hex}ff"),
            "xmpp:bob@x?trust-message;encryption=urn:xmpp:omemo:2".to_owned(),
            format!("http://conversations.im/i/bob@x?omemo-sid-7={hex}"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_we_write_reads_back() {
        let (a, b) = (key(4), key(5));
        let uri = omemo_sid_uri("al;ice@example.org", &[(1, a), (2, b)]);
        assert!(
            uri.starts_with("xmpp:al%3Bice@example.org?omemo-sid-1="),
            "{uri}"
        );
        // A JID compares as a JID: case does not matter.
        let shouting = uri.replace("al%3Bice@example.org", "AL%3BICE@Example.ORG");
        assert_eq!(parse(&shouting).unwrap().jid, "al;ice@example.org");
        let read = parse(&uri).unwrap();
        assert_eq!(read.jid, "al;ice@example.org");
        assert_eq!(read.claims.len(), 2);
        assert!(read.claims[0].names(&a) && read.claims[1].names(&b));
        assert_eq!(read.claims[1].device, Some(2));
        let uri = trust_message_uri("alice@example.org", &[a, b]);
        assert!(uri.starts_with(
            "xmpp:alice@example.org?trust-message;encryption=urn:xmpp:omemo:2;trust="
        ));
        let read = parse(&uri).unwrap();
        assert!(read.claims.iter().all(|c| c.trusted && c.device.is_none()));
        assert!(read.claims[0].names(&a) && read.claims[1].names(&b));
    }
}
