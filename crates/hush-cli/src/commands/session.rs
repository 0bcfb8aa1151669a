//! `hush session reset`: replaces broken sessions; the next message starts new ones.

use hush_store::SqliteStore;
use hush_xmpp::BareJid;
use serde_json::json;

use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{Printer, Shown};

pub(super) fn reset(home: &Home, jid: &BareJid, device: Option<u32>, out: Printer) -> Result<()> {
    home.require()?;
    home.lock_sessions()?;
    let mut store = home.open_store()?;
    out.show(&report(&mut store, jid, device)?)?;
    Ok(())
}

/// Removes the sessions with `jid` (one device, or all) and says how many.
pub(crate) fn report(store: &mut SqliteStore, jid: &BareJid, device: Option<u32>) -> Result<Shown> {
    let n = hush_store::reset_sessions(store, jid.as_str(), device)?;
    if let (Some(device), 0) = (device, n) {
        return Err(CliError::NoSessionToReset {
            jid: jid.to_string(),
            device,
        });
    }
    Ok(Shown {
        json: json!({"reset": n, "jid": jid.to_string()}),
        text: vec![format!(
            "removed {n} session(s) with {jid}; the next message you send starts new ones"
        )],
    })
}
