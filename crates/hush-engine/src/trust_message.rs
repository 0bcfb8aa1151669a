//! XEP-0434 trust messages, as XEP-0450 (Automatic Trust Management) uses them for OMEMO 2.
//!
//! ```xml
//! <trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>
//!   <key-owner jid='bob@example.com'>
//!     <trust>BASE64 of the 32-byte Ed25519 identity key</trust>
//!     <distrust>…</distrust>
//!   </key-owner>
//! </trust-message>
//! ```
//!
//! The element travels only inside an OMEMO 2 SCE `<content/>` (XEP-0434 asks for it signed
//! and encrypted; an OMEMO 2 message is both). The key identifier is the identity key in the
//! form OMEMO 2 bundles carry (Ed25519, standard Base64 with padding), as QXmpp (Kaidan) writes
//! it. Parsing is strict about what it keeps and bounded in what it reads: a message naming
//! more owners or keys than [`MAX_OWNERS`] / [`MAX_KEYS`] is refused whole rather than cut, so
//! what is applied is always all of what the sender said.

use base64::Engine as _;
use hush_proto::{Element, IdentityKey};
use thiserror::Error;

use crate::stanza::name;

/// XEP-0434's namespace.
pub const NS_TM: &str = "urn:xmpp:tm:1";
/// XEP-0450's namespace: the `usage` of the trust messages Hush reads and writes.
pub const NS_ATM: &str = "urn:xmpp:atm:1";
/// The `encryption` of the keys: OMEMO 2's namespace.
const NS_OMEMO2: &str = "urn:xmpp:omemo:2";

/// Key owners one message may name (each of our contacts with verified keys, and us).
pub const MAX_OWNERS: usize = 256;
/// Keys one message may name per owner (more than any account's device list holds).
pub const MAX_KEYS: usize = hush_proto::MAX_LISTED_DEVICES * 2;
/// Keys one message may name in all.
pub const MAX_TOTAL_KEYS: usize = 1024;

/// What one trust message says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustMessage {
    /// Per account, the keys vouched for and refused.
    pub owners: Vec<KeyOwner>,
}

/// The keys of one account a trust message speaks of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOwner {
    /// The account (a bare JID).
    pub jid: String,
    /// Keys its sender authenticated.
    pub trust: Vec<IdentityKey>,
    /// Keys its sender distrusted.
    pub distrust: Vec<IdentityKey>,
}

/// Why an element is not a trust message Hush can use.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustMessageError {
    /// Another usage than ATM, or keys of another protocol than OMEMO 2.
    #[error("a trust message for {usage} with {encryption} keys, not ATM with OMEMO 2 keys")]
    NotAtmOmemo2 {
        /// Its `usage`.
        usage: String,
        /// Its `encryption`.
        encryption: String,
    },
    /// A `<key-owner/>` without a usable bare JID.
    #[error("a key owner without a bare JID")]
    BadOwner,
    /// A key identifier that is not the Base64 of an Ed25519 identity key.
    #[error("a key identifier that is not an OMEMO 2 identity key")]
    BadKey,
    /// More owners or keys than are accepted.
    #[error("a trust message naming more than {MAX_OWNERS} accounts or {MAX_KEYS} keys of one")]
    TooLarge,
    /// No key at all.
    #[error("a trust message naming no key")]
    Empty,
}

impl TrustMessage {
    /// Whether `element` is a trust message (of any usage): the SCE content child to hand to
    /// [`TrustMessage::from_element`].
    pub fn is(element: &Element) -> bool {
        element.is("trust-message", NS_TM)
    }

    /// The `<trust-message/>` element, for an SCE envelope's content.
    pub fn to_element(&self) -> Element {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut message = Element::builder("trust-message", NS_TM)
            .attr(name("usage"), NS_ATM)
            .attr(name("encryption"), NS_OMEMO2)
            .build();
        for owner in &self.owners {
            let mut el = Element::builder("key-owner", NS_TM)
                .attr(name("jid"), owner.jid.as_str())
                .build();
            for (tag, keys) in [("trust", &owner.trust), ("distrust", &owner.distrust)] {
                for key in keys {
                    el.append_child(
                        Element::builder(tag, NS_TM)
                            .append(b64.encode(key.ed25519()))
                            .build(),
                    );
                }
            }
            message.append_child(el);
        }
        message
    }

    /// Reads a `<trust-message/>` of ATM over OMEMO 2 keys. Unknown children are ignored, as
    /// XML extensions are; anything malformed refuses the whole message.
    pub fn from_element(element: &Element) -> Result<Self, TrustMessageError> {
        let usage = element.attr("usage").unwrap_or_default();
        let encryption = element.attr("encryption").unwrap_or_default();
        if usage != NS_ATM || encryption != NS_OMEMO2 {
            return Err(TrustMessageError::NotAtmOmemo2 {
                usage: usage.to_owned(),
                encryption: encryption.to_owned(),
            });
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut owners = Vec::new();
        for el in element.children().filter(|c| c.is("key-owner", NS_TM)) {
            if owners.len() == MAX_OWNERS {
                return Err(TrustMessageError::TooLarge);
            }
            let jid = el.attr("jid").unwrap_or_default();
            if !is_bare_jid(jid) {
                return Err(TrustMessageError::BadOwner);
            }
            let mut owner = KeyOwner {
                jid: jid.to_ascii_lowercase(),
                trust: Vec::new(),
                distrust: Vec::new(),
            };
            for key_el in el.children() {
                let trusted = if key_el.is("trust", NS_TM) {
                    true
                } else if key_el.is("distrust", NS_TM) {
                    false
                } else {
                    continue;
                };
                if owner.trust.len() + owner.distrust.len() == MAX_KEYS {
                    return Err(TrustMessageError::TooLarge);
                }
                let text = key_el.text();
                let bytes = b64
                    .decode(text.trim())
                    .map_err(|_| TrustMessageError::BadKey)?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| TrustMessageError::BadKey)?;
                let key =
                    IdentityKey::from_ed25519(bytes).map_err(|_| TrustMessageError::BadKey)?;
                if trusted {
                    owner.trust.push(key);
                } else {
                    owner.distrust.push(key);
                }
            }
            // The same account named twice is one owner (so that refusal wins across both).
            match owners
                .iter_mut()
                .find(|o: &&mut KeyOwner| o.jid == owner.jid)
            {
                Some(known) => {
                    known.trust.append(&mut owner.trust);
                    known.distrust.append(&mut owner.distrust);
                }
                None => owners.push(owner),
            }
        }
        for owner in &mut owners {
            // A key both vouched for and refused in one message: refusal wins.
            let distrust = owner.distrust.clone();
            owner
                .trust
                .retain(|k| !distrust.iter().any(|d| d.same_identity(k)));
        }
        owners.retain(|o| !o.trust.is_empty() || !o.distrust.is_empty());
        if owners.is_empty() {
            return Err(TrustMessageError::Empty);
        }
        let message = Self { owners };
        if message.key_count() > MAX_TOTAL_KEYS {
            return Err(TrustMessageError::TooLarge);
        }
        Ok(message)
    }

    /// How many keys it names, over all owners.
    pub fn key_count(&self) -> usize {
        self.owners
            .iter()
            .map(|o| o.trust.len() + o.distrust.len())
            .sum()
    }
}

/// A JID with a local part and a domain and nothing else: `user@domain`.
fn is_bare_jid(jid: &str) -> bool {
    match jid.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !jid.contains(['/', '<', '>', '"', '\''])
                && !jid.chars().any(|c| c.is_control() || c.is_whitespace())
                && !domain.contains('@')
                && jid.len() <= 3071
        }
        None => false,
    }
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

    fn parse(xml: &str) -> Result<TrustMessage, TrustMessageError> {
        TrustMessage::from_element(&xml.parse::<Element>().unwrap())
    }

    #[test]
    fn what_we_write_reads_back() {
        let message = TrustMessage {
            owners: vec![
                KeyOwner {
                    jid: "alice@example.org".into(),
                    trust: vec![key(1), key(2)],
                    distrust: vec![],
                },
                KeyOwner {
                    jid: "bob@example.com".into(),
                    trust: vec![key(3)],
                    distrust: vec![key(4)],
                },
            ],
        };
        let element = message.to_element();
        assert!(TrustMessage::is(&element));
        assert_eq!(TrustMessage::from_element(&element), Ok(message.clone()));
        assert_eq!(message.key_count(), 4);
        let xml = String::from(&element);
        assert!(xml.contains("usage='urn:xmpp:atm:1'"), "{xml}");
        assert!(xml.contains("encryption='urn:xmpp:omemo:2'"), "{xml}");
    }

    /// XEP-0434's own example, with keys of ours in place of its (made-up) identifiers.
    #[test]
    fn the_xeps_shape_is_read() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let k = |seed| b64.encode(key(seed).ed25519());
        let xml = format!(
            "<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>\
               <key-owner jid='alice@example.org'><trust>{}</trust><trust>{}</trust></key-owner>\
               <key-owner jid='bob@example.com'><trust>{}</trust><distrust>{}</distrust>\
               <distrust>\n{}\n</distrust></key-owner>\
               <something-else xmlns='urn:example'/>\
             </trust-message>",
            k(1),
            k(2),
            k(3),
            k(4),
            k(5)
        );
        let m = parse(&xml).unwrap();
        assert_eq!(m.owners.len(), 2);
        assert_eq!(m.owners[1].distrust.len(), 2);
        assert!(m.owners[1].distrust[1].same_identity(&key(5)));
    }

    #[test]
    fn malformed_messages_are_refused_whole() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let good = b64.encode(key(1).ed25519());
        let wrap = |usage: &str, enc: &str, inner: &str| {
            format!("<trust-message xmlns='urn:xmpp:tm:1' usage='{usage}' encryption='{enc}'>{inner}</trust-message>")
        };
        let owner = |jid: &str, inner: &str| format!("<key-owner jid='{jid}'>{inner}</key-owner>");
        let atm = "urn:xmpp:atm:1";
        let omemo = "urn:xmpp:omemo:2";
        let trust = format!("<trust>{good}</trust>");
        let cases = [
            (wrap("urn:other", omemo, &owner("a@b", &trust)), "usage"),
            (
                wrap(atm, "urn:xmpp:openpgp:0", &owner("a@b", &trust)),
                "encryption",
            ),
            (wrap(atm, omemo, &owner("a@b/phone", &trust)), "full JID"),
            (wrap(atm, omemo, &owner("nobody", &trust)), "no domain"),
            (
                wrap(atm, omemo, &owner("a&#10;b@c", &trust)),
                "a line break",
            ),
            (
                wrap(atm, omemo, &owner("a@b", "<trust>not base64!</trust>")),
                "base64",
            ),
            (
                wrap(
                    atm,
                    omemo,
                    &owner("a@b", &format!("<trust>{}</trust>", b64.encode([1u8; 31]))),
                ),
                "31 bytes",
            ),
            (wrap(atm, omemo, &owner("a@b", "")), "no key"),
            (wrap(atm, omemo, ""), "no owner"),
        ];
        for (xml, why) in cases {
            assert!(parse(&xml).is_err(), "{why}: {xml}");
        }
        let many = trust.repeat(MAX_KEYS + 1);
        assert_eq!(
            parse(&wrap(atm, omemo, &owner("a@b", &many))),
            Err(TrustMessageError::TooLarge)
        );
        let owners: String = (0..=MAX_OWNERS)
            .map(|i| owner(&format!("a{i}@b"), &trust))
            .collect();
        assert_eq!(
            parse(&wrap(atm, omemo, &owners)),
            Err(TrustMessageError::TooLarge)
        );
    }

    /// An account named twice is merged, and refusal wins across both.
    #[test]
    fn an_owner_named_twice_is_one_and_refusal_wins_across() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let k = b64.encode(key(1).ed25519());
        let m = parse(&format!(
            "<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>\
             <key-owner jid='a@b'><distrust>{k}</distrust></key-owner>\
             <key-owner jid='a@b'><trust>{k}</trust></key-owner></trust-message>"
        ))
        .unwrap();
        assert_eq!(m.owners.len(), 1);
        assert!(m.owners[0].trust.is_empty());
        assert_eq!(m.owners[0].distrust.len(), 1);
        let many = format!("<key-owner jid='a@b'><trust>{k}</trust></key-owner>")
            .repeat(MAX_TOTAL_KEYS + 1);
        assert_eq!(
            parse(&format!(
                "<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>{many}</trust-message>"
            )),
            Err(TrustMessageError::TooLarge)
        );
    }

    #[test]
    fn a_key_both_trusted_and_distrusted_is_distrusted() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let k = b64.encode(key(1).ed25519());
        let m = parse(&format!(
            "<trust-message xmlns='urn:xmpp:tm:1' usage='urn:xmpp:atm:1' encryption='urn:xmpp:omemo:2'>\
             <key-owner jid='a@b'><trust>{k}</trust><distrust>{k}</distrust></key-owner></trust-message>"
        ))
        .unwrap();
        assert!(m.owners[0].trust.is_empty());
        assert_eq!(m.owners[0].distrust.len(), 1);
    }
}
