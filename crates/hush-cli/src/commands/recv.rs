//! `hush recv`: catches up on the archive, then prints messages as they are decrypted, until
//! a quiet while passes or, with `--follow`, until interrupted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{connect, me};
use crate::error::Result;
use crate::home::Home;
use crate::output::{DeliveryReport, Printer};

/// When `hush recv` stops (besides `--count`).
pub(super) enum Until {
    /// After this long without a message.
    Quiet(Duration),
    /// When interrupted (SIGINT or SIGTERM): then it closes the connection as usual, so
    /// nothing read is left uncommitted.
    Interrupted,
}

/// How long one wait for a message lasts while following: how soon an interruption is
/// noticed when nothing arrives. (The connection's keepalive and reconnection go on inside.)
const FOLLOW_WAIT: Duration = Duration::from_millis(500);

pub(super) async fn run(
    home: &Home,
    count: Option<usize>,
    until: Until,
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
    // Ctrl-C or SIGTERM from here on ends the loop between two messages, never inside one:
    // a message is committed before it is shown, and a step cut short could leave one
    // committed and never shown. The connection is then closed as usual.
    let stop = Arc::new(AtomicBool::new(false));
    if let Until::Interrupted = until {
        let stop = stop.clone();
        tokio::spawn(async move {
            interrupted().await;
            stop.store(true, Ordering::SeqCst);
        });
    }
    while count.is_none_or(|c| seen < c) && !stop.load(Ordering::SeqCst) {
        let wait = match until {
            Until::Quiet(quiet) => quiet,
            Until::Interrupted => FOLLOW_WAIT,
        };
        match (hush.receive(wait).await?, &until) {
            (Some(d), _) => {
                show(&d)?;
                seen += usize::from(!d.is_key_notice());
            }
            (None, Until::Quiet(_)) => break,
            (None, Until::Interrupted) => {}
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. If the handlers cannot be installed it never
/// resolves: the process then ends as signals end it by default.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
