//! `hush recv`: catches up on the archive, then prints messages as they are decrypted.

use std::time::Duration;

use super::{connect, me};
use crate::error::Result;
use crate::home::Home;
use crate::output::{DeliveryReport, Printer};

pub(super) async fn run(
    home: &Home,
    count: Option<usize>,
    timeout: Duration,
    out: Printer,
) -> Result<()> {
    let (mut hush, config) = connect(home).await?;
    let me = me(&hush);
    let show = |d: &hush_xmpp::Delivery| {
        out.show(&DeliveryReport {
            delivery: d,
            me: &me,
        })
    };
    // Status goes to stderr, so stdout stays one message (or JSON object) per line.
    crate::output::note(&format!(
        "connected as {} (device {}), waiting for messages",
        hush.jid(),
        hush.device_id()
    ));
    // A rollback found on connecting comes first, and is not a message (`--count`).
    if let Some(notice) = hush.take_rollback_notice() {
        show(&notice)?;
    }
    // First what arrived while we were away (the archive), then live messages.
    let mut seen = 0;
    // `--count` counts messages (texts and failures), not news of a new key.
    for d in hush.catch_up(config.created_at).await? {
        show(&d)?;
        seen += usize::from(!d.is_key_notice());
    }
    while count.is_none_or(|c| seen < c) {
        match hush.receive(timeout).await? {
            Some(d) => {
                show(&d)?;
                seen += usize::from(!d.is_key_notice());
            }
            None => break,
        }
    }
    // `--count` is reached, but a catch-up may have read more from the server at once: they
    // are committed, so nothing else would ever show them. Shown now.
    for d in hush.take_unshown() {
        show(&d)?;
    }
    hush.close().await?;
    Ok(())
}
