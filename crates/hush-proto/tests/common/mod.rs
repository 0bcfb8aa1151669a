//! Shared test fixtures: parties with devices and sessions, talking through XML.

#![allow(dead_code)]

use std::collections::HashMap;

use hush_proto::{
    seal, Element, EncryptedElement, LocalDevice, Opened, ProtoError, Recipient, Session, Suite,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One device of one account, with its sessions to other devices.
pub struct Party {
    pub jid: String,
    pub device: LocalDevice,
    pub sessions: HashMap<(String, u32), Session>,
    pub rng: StdRng,
}

impl Party {
    pub fn new(jid: &str, device_id: u32, seed: u64) -> Self {
        let mut rng = rng(seed);
        let device = LocalDevice::generate(device_id, 30, 1_700_000_000, &mut rng).unwrap();
        Self {
            jid: jid.into(),
            device,
            sessions: HashMap::new(),
            rng,
        }
    }

    /// Starts sessions with `others` in `suite` from their published bundles (through XML).
    pub fn connect(&mut self, suite: Suite, others: &[&Party]) {
        for o in others {
            let xml = String::from(&o.device.bundle(suite).to_element());
            let bundle =
                hush_proto::Bundle::from_element(&xml.parse().unwrap(), o.device.device_id())
                    .unwrap();
            let s = Session::initiate(self.device.identity(), &bundle, &mut self.rng).unwrap();
            self.sessions
                .insert((o.jid.clone(), o.device.device_id()), s);
        }
    }

    /// Encrypts for the given devices (which must have sessions) and returns the XML text.
    pub fn send(&mut self, suite: Suite, to: &[(&str, u32)], payload: Option<&[u8]>) -> String {
        let mut taken: Vec<((String, u32), Session)> = to
            .iter()
            .map(|(j, d)| {
                let k = (j.to_string(), *d);
                let s = self.sessions.remove(&k).expect("session");
                (k, s)
            })
            .collect();
        let mut recipients: Vec<Recipient<'_>> = taken
            .iter_mut()
            .map(|((j, d), s)| Recipient {
                jid: j.as_str(),
                device_id: *d,
                session: s,
            })
            .collect();
        let el = seal(
            suite,
            self.device.device_id(),
            payload,
            &mut recipients,
            &mut self.rng,
        )
        .unwrap();
        drop(recipients);
        for (k, s) in taken {
            self.sessions.insert(k, s);
        }
        String::from(&el.to_element())
    }

    /// Parses and decrypts a message from `from_jid`, storing any new session.
    pub fn receive(&mut self, from_jid: &str, xml: &str) -> Result<Opened, ProtoError> {
        let el: Element = xml
            .parse()
            .map_err(|e| ProtoError::MalformedXml(format!("{e}")))?;
        let enc = EncryptedElement::from_element(&el)?;
        let key = (from_jid.to_string(), enc.sid);
        let existing = self.sessions.get(&key).cloned();
        let opened = self
            .device
            .open(&enc, &self.jid, from_jid, existing, &mut self.rng)?;
        self.sessions.insert(key, opened.session.clone());
        if let Some(pk) = opened.consumed_prekey {
            // Out of the bundle at once, still held for late key exchanges (the prekey race).
            self.device.retire_prekey(pk, 0);
        }
        Ok(opened)
    }

    pub fn receive_text(&mut self, from_jid: &str, xml: &str) -> Result<Vec<u8>, ProtoError> {
        self.receive(from_jid, xml)
            .map(|o| o.payload.expect("payload").to_vec())
    }
}
