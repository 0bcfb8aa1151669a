//! `hush history`: a conversation as the store holds it, failures included (offline).

use hush_store::{SqliteStore, Store};
use hush_xmpp::BareJid;

use super::account;
use crate::advice::Me;
use crate::error::Result;
use crate::home::Home;
use crate::output::{HistoryReport, Printer, Shown};

pub(super) fn run(home: &Home, jid: &BareJid, limit: usize, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    for message in reports(&store, jid, limit)? {
        out.show(&message)?;
    }
    Ok(())
}

/// The last `limit` messages of the conversation with `jid`, oldest first.
pub(crate) fn reports(store: &SqliteStore, jid: &BareJid, limit: usize) -> Result<Vec<Shown>> {
    let account = account(store)?;
    let me = Me {
        jid: account.jid,
        device: account.device.device_id(),
    };
    Ok(store
        .history(jid.as_str(), limit)?
        .iter()
        .map(|message| Shown::of(&HistoryReport { message, me: &me }))
        .collect())
}
