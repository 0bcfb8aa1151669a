//! `hush fingerprint`: this device's fingerprint and verification URI.

use serde_json::json;

use super::{account, verification_uri};
use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};

pub(super) fn run(home: &Home, out: Printer) -> Result<()> {
    let store = home.open_store()?;
    let account = account(&store)?;
    let identity = account.device.identity().public();
    let device = account.device.device_id();
    let fp = identity.fingerprint();
    let uri = verification_uri(&account.jid, device, identity);
    out.show(&Shown {
        json: json!({"jid": account.jid, "device": device, "fingerprint": fp, "uri": uri}),
        text: vec![format!("{} device {device}", account.jid), fp, uri],
    })?;
    Ok(())
}
