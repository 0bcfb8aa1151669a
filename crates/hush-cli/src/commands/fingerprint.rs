//! `hush fingerprint`: this device's fingerprint and verification URI, and as a QR code.
//!
//! The URI names this device and the account's other devices the user verified (as
//! Conversations and Gajim do): a contact who scans it verifies all of them at once. A device
//! of ours nobody verified is left out, since the server can add those.

use hush_proto::IdentityKey;
use hush_store::{SqliteStore, Store, Trust};
use serde_json::json;

use super::account;
use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};
use crate::qr::{self, Colors};
use crate::verification;

/// How `hush fingerprint` shows the URI.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Form {
    /// Also as a QR code, drawn for this background.
    pub(crate) qr: Option<Colors>,
    /// The XEP-0434 trust message form (which Kaidan reads) instead of `omemo-sid-`.
    pub(crate) trust_message: bool,
}

impl Form {
    /// From the command line's (or the agent's) names: `qr` is `dark` or `light` (the
    /// terminal's background), `uri` is `omemo` or `trust-message`.
    pub(crate) fn from_names(qr: Option<&str>, uri: Option<&str>) -> Self {
        Self {
            qr: qr.map(|bg| {
                if bg == "light" {
                    Colors::DarkOnLight
                } else {
                    Colors::LightOnDark
                }
            }),
            trust_message: uri == Some("trust-message"),
        }
    }
}

pub(super) fn run(home: &Home, form: Form, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    out.show(&report(&store, form)?)
}

/// This device's fingerprint and verification URI (with the QR code `form` asks for).
pub(crate) fn report(store: &SqliteStore, form: Form) -> Result<Shown> {
    let account = account(store)?;
    let identity = *account.device.identity().public();
    let device = account.device.device_id();
    let fp = identity.fingerprint();
    let mut devices = vec![(device, identity)];
    for (other, key) in super::trust::known_keys(store, &account.jid)? {
        if other != device && store.trust(&account.jid, &key)? == Some(Trust::Verified) {
            devices.push((other, key));
        }
    }
    let uri = if form.trust_message {
        let keys: Vec<IdentityKey> = devices.iter().map(|(_, k)| *k).collect();
        verification::trust_message_uri(&account.jid, &keys)
    } else {
        verification::omemo_sid_uri(&account.jid, &devices)
    };
    let listed: Vec<u32> = devices.iter().map(|(d, _)| *d).collect();
    let mut json = json!({"jid": account.jid, "device": device, "fingerprint": fp, "uri": uri,
                          "devices_in_uri": listed});
    let mut text = vec![format!("{} device {device}", account.jid), fp, uri.clone()];
    if listed.len() > 1 {
        text.push(format!(
            "(the URI also names the devices of ours you verified: {})",
            listed[1..]
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(colors) = form.qr {
        let code = qr::render(&uri, colors)?;
        json["qr"] = json!(code.lines().collect::<Vec<_>>());
        text.extend(code.lines().map(str::to_owned));
        text.push("scan it with the other device (hush verify reads the URI above)".into());
    }
    Ok(Shown { json, text })
}
