//! `hush fingerprint`: this device's fingerprint and verification URI.

use hush_store::SqliteStore;
use serde_json::json;

use super::{account, verification_uri};
use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};

pub(super) fn run(home: &Home, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    out.show(&report(&store)?)
}

/// This device's fingerprint and verification URI.
pub(crate) fn report(store: &SqliteStore) -> Result<Shown> {
    let account = account(store)?;
    let identity = account.device.identity().public();
    let device = account.device.device_id();
    let fp = identity.fingerprint();
    let uri = verification_uri(&account.jid, device, identity);
    Ok(Shown {
        json: json!({"jid": account.jid, "device": device, "fingerprint": fp, "uri": uri}),
        text: vec![format!("{} device {device}", account.jid), fp, uri],
    })
}
