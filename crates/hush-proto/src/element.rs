//! The `<encrypted/>` element in both namespaces, as a typed model.
//!
//! OMEMO:2: `<encrypted xmlns='urn:xmpp:omemo:2'><header sid><keys jid><key rid kex?>…</keys>
//! </header><payload>?</encrypted>`. Legacy: `<encrypted xmlns='eu.siacs.conversations.axolotl'>
//! <header sid><key rid prekey?>…<iv/></header><payload>?</encrypted>`; legacy keys carry no JID.

use minidom::Element;

use crate::error::{ProtoError, Result};
use crate::suite::Suite;
use crate::xml::{an, b64_decode, b64_encode, child, id_attr, text_of};

/// One `<key/>`: the message key wrapped for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The recipient's bare JID (OMEMO:2 groups keys by JID; legacy does not say).
    pub jid: Option<String>,
    /// The recipient device id.
    pub rid: u32,
    /// Whether the key carries a key exchange.
    pub kex: bool,
    /// The ratchet message or key exchange bytes.
    pub data: Vec<u8>,
}

/// An `<encrypted/>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedElement {
    /// Which namespace/suite.
    pub suite: Suite,
    /// Sender device id.
    pub sid: u32,
    /// The wrapped keys.
    pub keys: Vec<KeyEntry>,
    /// Legacy only: the payload IV.
    pub iv: Option<Vec<u8>>,
    /// The encrypted payload; absent for empty / key-transport messages.
    pub payload: Option<Vec<u8>>,
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some("true") | Some("1"))
}

impl EncryptedElement {
    /// The keys addressed to `rid` (and, in OMEMO:2, to `jid`).
    pub fn key_for(&self, jid: &str, rid: u32) -> Option<&KeyEntry> {
        self.keys
            .iter()
            .find(|k| k.rid == rid && k.jid.as_deref().is_none_or(|j| j == jid))
    }

    /// What identifies this exact message as device `rid` of `jid` receives it: SHA-256 over
    /// the suite, that device's key entry, the IV and the payload. Copies of one message
    /// (archive, Carbons, a replay with new stanza ids) have the same digest; a change to any
    /// part a recipient decrypts gives another. `None` when nothing is addressed to `rid`.
    ///
    /// A receiver that stores the digest of every message it *authenticated* can ignore exact
    /// copies silently, as XEP-0384 asks, without taking a ratchet's "key already used" for
    /// proof of a duplicate.
    pub fn content_digest(&self, jid: &str, rid: u32) -> Option<[u8; 32]> {
        use sha2::Digest;
        let entry = self.key_for(jid, rid)?;
        let mut h = sha2::Sha256::new();
        // Each part length-prefixed, so no two different messages hash the same bytes.
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        part(self.suite.name().as_bytes());
        // Not the sender device id: nothing authenticates it, and the same message under
        // another id (a server relabelling it) is still the same message.
        part(&[u8::from(entry.kex)]);
        part(&entry.data);
        part(self.iv.as_deref().unwrap_or_default());
        part(self.payload.as_deref().unwrap_or_default());
        Some(h.finalize().into())
    }

    /// What identifies this message as its sender sent it, whoever receives it: SHA-256 over
    /// the suite, the sender device, the IV and the payload (kept apart from
    /// [`Self::content_digest`] by a label). `None` for an empty message. A device does not
    /// encrypt for itself, so it has no content digest of its own messages: it records this
    /// one instead, and knows a copy of what it sent coming back under new ids (a server
    /// replaying it) for what it is.
    pub fn sent_digest(&self) -> Option<[u8; 32]> {
        use sha2::Digest;
        let payload = self.payload.as_deref()?;
        let mut h = sha2::Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        part(b"hush sent message");
        part(self.suite.name().as_bytes());
        part(&self.sid.to_be_bytes());
        part(self.iv.as_deref().unwrap_or_default());
        part(payload);
        Some(h.finalize().into())
    }

    /// What identifies this message for `rid` of `jid`: its [sent digest](Self::sent_digest)
    /// when `rid` is the sending device itself (a copy of our own message), else its
    /// [content digest](Self::content_digest).
    pub fn digest_for(&self, jid: &str, rid: u32, sender_jid: &str) -> Option<[u8; 32]> {
        if sender_jid == jid && self.sid == rid {
            self.sent_digest()
        } else {
            self.content_digest(jid, rid)
        }
    }

    /// Serializes to XML.
    pub fn to_element(&self) -> Element {
        let ns = self.suite.namespace();
        let mut header = Element::builder("header", ns)
            .attr(an("sid"), self.sid.to_string())
            .build();
        match self.suite {
            Suite::Omemo2 => {
                // One <keys/> per JID, in the order the JIDs first appear: grouped in one pass
                // (a room message has a key for every device of every member).
                let mut groups: Vec<(&str, Element)> = Vec::new();
                let mut at: std::collections::HashMap<&str, usize> =
                    std::collections::HashMap::new();
                for k in &self.keys {
                    let j = k.jid.as_deref().unwrap_or("");
                    let i = *at.entry(j).or_insert_with(|| {
                        groups.push((j, Element::builder("keys", ns).attr(an("jid"), j).build()));
                        groups.len() - 1
                    });
                    let mut b = Element::builder("key", ns).attr(an("rid"), k.rid.to_string());
                    if k.kex {
                        b = b.attr(an("kex"), "true");
                    }
                    groups[i]
                        .1
                        .append_child(b.append(b64_encode(&k.data)).build());
                }
                for (_, keys) in groups {
                    header.append_child(keys);
                }
            }
            Suite::Legacy => {
                for k in &self.keys {
                    let mut b = Element::builder("key", ns).attr(an("rid"), k.rid.to_string());
                    if k.kex {
                        b = b.attr(an("prekey"), "true");
                    }
                    header.append_child(b.append(b64_encode(&k.data)).build());
                }
                if let Some(iv) = &self.iv {
                    header.append_child(Element::builder("iv", ns).append(b64_encode(iv)).build());
                }
            }
        }
        let mut el = Element::builder("encrypted", ns).append(header).build();
        if let Some(p) = &self.payload {
            el.append_child(
                Element::builder("payload", ns)
                    .append(b64_encode(p))
                    .build(),
            );
        }
        el
    }

    /// Parses XML, rejecting anything that is not a well-formed OMEMO element.
    pub fn from_element(el: &Element) -> Result<Self> {
        let suite = Suite::from_namespace(&el.ns())?;
        let ns = suite.namespace();
        if el.name() != "encrypted" {
            return Err(ProtoError::MalformedXml(format!(
                "expected <encrypted/>, got <{}/>",
                el.name()
            )));
        }
        let header = child(el, "header", ns)?;
        let sid = id_attr(header, "sid")?;
        let mut keys = Vec::new();
        // Entries for other devices are not ours to judge: one with a bad id is skipped (it may
        // be a third party's in a group chat), one with bad base64 is kept empty so that, if it
        // is ours, decryption fails with a clear error instead of "not for this device".
        let key_entry = |k: &Element, jid: Option<String>, kex_attr: &str| -> Option<KeyEntry> {
            let rid = id_attr(k, "rid").ok()?;
            let data = b64_decode(&text_of(k)).unwrap_or_default();
            Some(KeyEntry {
                jid,
                rid,
                kex: is_true(k.attr(kex_attr)),
                data,
            })
        };
        let mut iv = None;
        match suite {
            Suite::Omemo2 => {
                for group in header.children().filter(|c| c.is("keys", ns)) {
                    let jid = group
                        .attr("jid")
                        .ok_or_else(|| {
                            ProtoError::MalformedXml("<keys/> lacks the `jid` attribute".into())
                        })?
                        .to_owned();
                    for k in group.children().filter(|c| c.is("key", ns)) {
                        keys.extend(key_entry(k, Some(jid.clone()), "kex"));
                    }
                }
            }
            Suite::Legacy => {
                for k in header.children().filter(|c| c.is("key", ns)) {
                    keys.extend(key_entry(k, None, "prekey"));
                }
                iv = Some(b64_decode(&text_of(child(header, "iv", ns)?))?);
            }
        }
        let payload = el
            .get_child("payload", ns)
            .map(|p| b64_decode(&text_of(p)))
            .transpose()?;
        Ok(Self {
            suite,
            sid,
            keys,
            iv,
            payload,
        })
    }
}
