//! `hush history`: a conversation as the store holds it, failures included (offline).

use hush_store::Store;
use hush_xmpp::BareJid;

use super::account;
use crate::advice::Me;
use crate::error::Result;
use crate::home::Home;
use crate::output::{HistoryReport, Printer};

pub(super) fn run(home: &Home, jid: &BareJid, limit: usize, out: Printer) -> Result<()> {
    let store = home.open_store()?;
    let account = account(&store)?;
    let me = Me {
        jid: account.jid,
        device: account.device.device_id(),
    };
    for message in store.history(jid.as_str(), limit)? {
        out.show(&HistoryReport {
            message: &message,
            me: &me,
        })?;
    }
    Ok(())
}
