//! Bundles and device lists: the public data a device publishes over PEP, in both suites.
//!
//! OMEMO:2 bundle: `<bundle xmlns='urn:xmpp:omemo:2'><spk id/><spks/><ik/><prekeys><pk id/>…`.
//! Legacy bundle: `<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic
//! signedPreKeyId/><signedPreKeySignature/><identityKey/><prekeys><preKeyPublic preKeyId/>…`.
//! OMEMO:2 device list: `<devices xmlns='urn:xmpp:omemo:2'><device id label? labelsig?/>…`.
//! Legacy device list: `<list xmlns='eu.siacs.conversations.axolotl'><device id/>…`.

use minidom::Element;

use crate::error::{ProtoError, Result};
use crate::keys::{check_id, IdentityKey, IdentityKeyPair};
use crate::suite::Suite;
use crate::xeddsa;
use crate::xml::{an, b64_decode, b64_encode, child, id_attr, key_id_attr, text_of};

/// The bundle's element and attribute names in each suite: signed prekey, its id attribute,
/// signature, identity key, prekey, its id attribute.
fn element_names(
    suite: Suite,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
) {
    match suite {
        Suite::Omemo2 => ("spk", "id", "spks", "ik", "pk", "id"),
        Suite::Legacy => (
            "signedPreKeyPublic",
            "signedPreKeyId",
            "signedPreKeySignature",
            "identityKey",
            "preKeyPublic",
            "preKeyId",
        ),
    }
}

/// A device's published bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The suite the bundle was published in.
    pub suite: Suite,
    /// The device id the bundle belongs to.
    pub device_id: u32,
    /// The device's identity key.
    pub identity: IdentityKey,
    /// Id of the signed prekey.
    pub spk_id: u32,
    /// The signed prekey (X25519).
    pub spk: [u8; 32],
    /// Signature over the suite encoding of `spk`.
    pub spk_signature: [u8; 64],
    /// One-time prekeys `(id, public key)`.
    pub prekeys: Vec<(u32, [u8; 32])>,
}

impl Bundle {
    /// Checks the signed prekey's signature with the bundle's identity key.
    pub fn verify(&self) -> Result<()> {
        let msg = self.suite.encode_public(&self.spk);
        let ok = match self.suite {
            Suite::Omemo2 => {
                xeddsa::verify_ed25519(&self.identity.ed25519(), &msg, &self.spk_signature)
            }
            Suite::Legacy => xeddsa::verify_with_curve_key(
                &self.identity.curve25519(),
                &msg,
                &self.spk_signature,
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(ProtoError::BadSignature("signed prekey"))
        }
    }

    /// The bundle as its PEP item payload.
    pub fn to_element(&self) -> Element {
        let ns = self.suite.namespace();
        let s = self.suite;
        let key = |k: &[u8; 32]| b64_encode(&s.encode_public(k));
        let (spk_name, spk_attr, sig_name, ik_name, pk_name, pk_attr) = element_names(s);
        let mut prekeys = Element::builder("prekeys", ns).build();
        for (id, pk) in &self.prekeys {
            prekeys.append_child(
                Element::builder(pk_name, ns)
                    .attr(an(pk_attr), id.to_string())
                    .append(key(pk))
                    .build(),
            );
        }
        Element::builder("bundle", ns)
            .append(
                Element::builder(spk_name, ns)
                    .attr(an(spk_attr), self.spk_id.to_string())
                    .append(key(&self.spk))
                    .build(),
            )
            .append(
                Element::builder(sig_name, ns)
                    .append(b64_encode(&self.spk_signature))
                    .build(),
            )
            .append(
                Element::builder(ik_name, ns)
                    .append(b64_encode(&s.encode_identity(&self.identity)))
                    .build(),
            )
            .append(prekeys)
            .build()
    }

    /// Parses a bundle payload fetched for `device_id`. The signature is not checked here; call
    /// [`Bundle::verify`] (session setup does).
    pub fn from_element(el: &Element, device_id: u32) -> Result<Self> {
        let suite = Suite::from_namespace(&el.ns())?;
        if el.name() != "bundle" {
            return Err(ProtoError::MalformedXml(format!(
                "expected <bundle/>, got <{}/>",
                el.name()
            )));
        }
        let ns = suite.namespace();
        let (spk_name, spk_attr, sig_name, ik_name, pk_name, pk_attr) = element_names(suite);
        let spk_el = child(el, spk_name, ns)?;
        let spk_id = key_id_attr(spk_el, spk_attr)?;
        let spk = suite.decode_public("signed prekey", &b64_decode(&text_of(spk_el))?)?;
        let sig = b64_decode(&text_of(child(el, sig_name, ns)?))?;
        let spk_signature: [u8; 64] =
            sig.as_slice()
                .try_into()
                .map_err(|_| ProtoError::BadLength {
                    what: "signed prekey signature",
                    got: sig.len(),
                    expected: "64",
                })?;
        let identity = suite.decode_identity(&b64_decode(&text_of(child(el, ik_name, ns)?))?)?;
        let mut prekeys = Vec::new();
        for pk in child(el, "prekeys", ns)?
            .children()
            .filter(|c| c.is(pk_name, ns))
        {
            prekeys.push((
                key_id_attr(pk, pk_attr)?,
                suite.decode_public("prekey", &b64_decode(&text_of(pk))?)?,
            ));
        }
        Ok(Self {
            suite,
            device_id: check_id(device_id as u64)?,
            identity,
            spk_id,
            spk,
            spk_signature,
            prekeys,
        })
    }
}

/// One entry of a device list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device id.
    pub id: u32,
    /// The optional human-readable label (OMEMO:2 only).
    pub label: Option<String>,
    /// Signature of the label by the device's identity key (OMEMO:2 only).
    pub label_signature: Option<Vec<u8>>,
}

impl DeviceEntry {
    /// A device without a label.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            label: None,
            label_signature: None,
        }
    }

    /// A device with a label signed by `identity`.
    pub fn labelled<R: rand_core::CryptoRng + ?Sized>(
        id: u32,
        label: &str,
        identity: &IdentityKeyPair,
        rng: &mut R,
    ) -> Self {
        Self {
            id,
            label: Some(label.to_owned()),
            label_signature: Some(identity.sign(label.as_bytes(), rng).to_vec()),
        }
    }

    /// The label if its signature verifies with the device's identity key. XEP-0384 says an
    /// unsigned or badly signed label MUST be ignored, so this is the only way to read it.
    pub fn verified_label(&self, identity: &IdentityKey) -> Option<&str> {
        let label = self.label.as_deref()?;
        let sig: [u8; 64] = self.label_signature.as_deref()?.try_into().ok()?;
        xeddsa::verify_ed25519(&identity.ed25519(), label.as_bytes(), &sig).then_some(label)
    }
}

/// The most devices a device list may name for Hush to use it: no real account has that many,
/// and each device costs a bundle fetch and a session. Longer lists are refused or ignored.
pub const MAX_LISTED_DEVICES: usize = 128;

/// A device list as published on the devices node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceList {
    /// The suite of the list.
    pub suite: Suite,
    /// The announced devices.
    pub devices: Vec<DeviceEntry>,
}

impl DeviceList {
    /// The list as its PEP item payload.
    pub fn to_element(&self) -> Element {
        let ns = self.suite.namespace();
        let root = match self.suite {
            Suite::Omemo2 => "devices",
            Suite::Legacy => "list",
        };
        let mut el = Element::builder(root, ns).build();
        for d in &self.devices {
            let mut b = Element::builder("device", ns).attr(an("id"), d.id.to_string());
            if self.suite == Suite::Omemo2 {
                if let Some(label) = &d.label {
                    b = b.attr(an("label"), label.clone());
                }
                if let Some(sig) = &d.label_signature {
                    b = b.attr(an("labelsig"), b64_encode(sig));
                }
            }
            el.append_child(b.build());
        }
        el
    }

    /// Parses a device list payload, in time linear in its length. Entries with an invalid id
    /// are skipped; duplicate ids are merged (the first entry stays). How many devices a caller
    /// accepts is its own decision (see [`MAX_LISTED_DEVICES`]); the whole list is returned.
    pub fn from_element(el: &Element) -> Result<Self> {
        let suite = Suite::from_namespace(&el.ns())?;
        let ns = suite.namespace();
        let expected = match suite {
            Suite::Omemo2 => "devices",
            Suite::Legacy => "list",
        };
        if el.name() != expected {
            return Err(ProtoError::MalformedXml(format!(
                "expected <{expected}/>, got <{}/>",
                el.name()
            )));
        }
        let mut devices: Vec<DeviceEntry> = Vec::new();
        // The ids seen so far, for the duplicate check: a list is whatever the server sends,
        // so comparing each entry with every earlier one would take quadratic time (seconds
        // for the 50,000 entries that fit in one stanza).
        let mut seen = std::collections::HashSet::new();
        for d in el.children().filter(|c| c.is("device", ns)) {
            // One bad entry must not hide every other device of the account: skip it.
            let Ok(id) = id_attr(d, "id") else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let label = d.attr("label").map(str::to_owned);
            // A malformed signature only means the label is ignored (XEP-0384), not the device.
            let label_signature = d.attr("labelsig").and_then(|s| b64_decode(s).ok());
            devices.push(DeviceEntry {
                id,
                label,
                label_signature,
            });
        }
        Ok(Self { suite, devices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device list payload of `suite` naming `count` devices, with ids `1..=count`.
    fn long_list(suite: Suite, count: u32) -> Element {
        let root = match suite {
            Suite::Omemo2 => "devices",
            Suite::Legacy => "list",
        };
        let ns = suite.namespace();
        let mut xml = format!("<{root} xmlns='{ns}'>");
        for id in 1..=count {
            xml.push_str(&format!("<device id='{id}'/>"));
        }
        xml.push_str(&format!("</{root}>"));
        xml.parse().unwrap()
    }

    #[test]
    fn a_long_device_list_parses_in_linear_time() {
        let mut timings = Vec::new();
        for suite in Suite::ALL {
            let el = long_list(suite, 50_000);
            let started = std::time::Instant::now();
            let list = DeviceList::from_element(&el).unwrap();
            timings.push((suite, started.elapsed()));
            assert_eq!(list.devices.len(), 50_000);
            assert_eq!(list.devices.last().map(|d| d.id), Some(50_000));
        }
        // Generous: a linear parse takes milliseconds even unoptimised; a duplicate check
        // against every earlier entry took seconds here.
        assert!(
            timings
                .iter()
                .all(|(_, took)| *took < std::time::Duration::from_secs(1)),
            "{timings:?}"
        );
    }

    #[test]
    fn duplicate_and_invalid_entries_are_merged_or_skipped() {
        let el: Element = "<devices xmlns='urn:xmpp:omemo:2'><device id='5' label='first'/>\
            <device id='x'/><device id='9'/><device id='5' label='second'/><device id='0'/></devices>"
            .parse()
            .unwrap();
        let list = DeviceList::from_element(&el).unwrap();
        let ids: Vec<u32> = list.devices.iter().map(|d| d.id).collect();
        assert_eq!(ids, [5, 9]);
        assert_eq!(list.devices[0].label.as_deref(), Some("first"));
    }
}
