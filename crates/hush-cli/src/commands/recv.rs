//! `hush recv`: catches up on the archive, then prints messages as they are decrypted, until
//! a quiet while passes or, with `--follow`, until interrupted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use hush_store::SqliteStore;
use hush_xmpp::Hush;

use serde_json::json;

use super::files::{save_if_allowed, Downloads, Saved};
use super::{connect, me};
use crate::agent::client::Agent;
use crate::error::Result;
use crate::home::Home;
use crate::output::{DeliveryReport, Printer};

/// When `hush recv` stops (besides `--count`).
pub(super) enum Until {
    /// After this long without a message.
    Quiet(Duration),
    /// When interrupted (SIGINT or SIGTERM): then it closes the connection as usual, so
    /// nothing read is left unshown. (Either way a signal ends it between two messages.)
    Interrupted,
}

impl Until {
    /// How long the next wait for a message may last, given the last message came at
    /// `quiet_since`; `None` when the quiet time is over.
    fn next_wait(&self, quiet_since: Instant) -> Option<Duration> {
        match self {
            Until::Quiet(quiet) => quiet
                .checked_sub(quiet_since.elapsed())
                .filter(|left| !left.is_zero())
                .map(|left| left.min(WAIT_SLICE)),
            Until::Interrupted => Some(WAIT_SLICE),
        }
    }
}

/// How long one wait for a message lasts: how soon an interruption is noticed when nothing
/// arrives. (The connection's keepalive and reconnection go on inside.)
const WAIT_SLICE: Duration = Duration::from_millis(500);

pub(super) async fn run(
    home: &Home,
    count: Option<usize>,
    until: Until,
    downloads: &Downloads,
    out: Printer,
) -> Result<()> {
    // Ctrl-C or SIGTERM, from before the connection exists, ends `recv` between two messages,
    // never inside one: a message is committed before it is shown, and a step cut short
    // could leave one committed and never shown (a catch-up commits whole pages). A second
    // signal ends the process at once.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        crate::signals::on_interrupt(move || stop.store(true, Ordering::SeqCst));
    }
    // A running agent holds the account: it reads, and we subscribe.
    if let Some(agent) = Agent::find(home).await? {
        if downloads.given {
            crate::output::note(
                "the agent saves files into the downloads directory of the home, under its \
                 own limit: --downloads and --max-download apply without an agent",
            );
        }
        let agent = agent.printing_for(out);
        return through_agent(agent, count, until, &stop, out).await;
    }
    let (mut hush, config) = connect(home).await?;
    let me = me(&hush);
    let show = |d: &hush_xmpp::Delivery, saved: Option<&Saved>| {
        out.show(&DeliveryReport {
            delivery: d,
            me: &me,
            saved,
        })
    };
    // Status goes to stderr, so stdout stays one message (or JSON object) per line.
    crate::output::note(&format!(
        "connected as {} (device {}), waiting for messages",
        hush.jid(),
        hush.device_id()
    ));
    let received = receive(
        &mut hush,
        config.created_at,
        Limits {
            count,
            until: &until,
            stop: &stop,
        },
        downloads,
        &show,
    )
    .await;
    // Whatever ended the loop — `--count`, silence, a signal or an error — what was read
    // from the server and committed but not shown yet (a catch-up reads whole pages) is
    // shown now: nothing else would ever announce it.
    for d in hush.take_unshown() {
        let saved = save_if_allowed(hush.store(), &me.jid, &d, downloads).await;
        show(&d, saved.as_ref())?;
    }
    received?;
    hush.close().await?;
    Ok(())
}

/// `recv` through the account's agent: its messages as they come (first those that arrived
/// while nobody was subscribed), until `count`, `until` or `stop`.
async fn through_agent(
    mut agent: Agent,
    count: Option<usize>,
    until: Until,
    stop: &AtomicBool,
    out: Printer,
) -> Result<()> {
    let who = agent.call("ping", json!({})).await?.json;
    if who["locked"] == true {
        return Err(crate::agent::AgentError::Locked.into());
    }
    // Each message is acknowledged once shown: what this process did not show when it stops
    // goes to the next reader.
    agent.call("subscribe", json!({"ack": true})).await?;
    crate::output::note(&format!(
        "connected to the agent for {} (device {}), waiting for messages",
        who["jid"].as_str().unwrap_or("?"),
        who["device"]
    ));
    let mut seen = 0;
    let mut quiet_since = Instant::now();
    while count.is_none_or(|c| seen < c) && !stop.load(Ordering::SeqCst) {
        let Some(wait) = until.next_wait(quiet_since) else {
            break;
        };
        if let Some(mut message) = agent.next_message(wait).await? {
            // Printed as `recv` prints without an agent: the sequence number is the agent's.
            let seq = message
                .json
                .as_object_mut()
                .and_then(|o| o.remove("seq"))
                .and_then(|s| s.as_u64());
            out.show(&message)?;
            if let Some(seq) = seq {
                agent.call("ack", json!({"seq": seq})).await?;
            }
            // `--count` counts messages (texts and failures), not news of a new key.
            let j = &message.json;
            let key_notice = j["body"].is_null()
                && j["failure"].is_null()
                && !(j["new_key"].is_null() && j["trust_message"].is_null() && j["sas"].is_null());
            seen += usize::from(!key_notice);
            quiet_since = Instant::now();
        }
    }
    Ok(())
}

/// When a `recv` stops.
struct Limits<'a> {
    count: Option<usize>,
    until: &'a Until,
    stop: &'a AtomicBool,
}

/// The catch-up, then messages as they come, until `count`, `until` or `stop`; each file a
/// message shares is downloaded (see [`save`]) before the message is shown.
async fn receive(
    hush: &mut Hush<SqliteStore>,
    created_at: u64,
    limits: Limits<'_>,
    downloads: &Downloads,
    show: &impl Fn(&hush_xmpp::Delivery, Option<&Saved>) -> Result<()>,
) -> Result<()> {
    let Limits { count, until, stop } = limits;
    let me = hush.jid().to_string();
    let stopped = || stop.load(Ordering::SeqCst);
    // A rollback found on connecting comes first, and is not a message (`--count`).
    if let Some(notice) = hush.take_rollback_notice() {
        show(&notice, None)?;
    }
    if stopped() {
        return Ok(());
    }
    // First what arrived while we were away (the archive), then live messages.
    let mut seen = 0;
    // `--count` counts messages (texts and failures), not news of a new key.
    for d in hush.catch_up(created_at).await? {
        let saved = save_if_allowed(hush.store(), &me, &d, downloads).await;
        show(&d, saved.as_ref())?;
        seen += usize::from(!d.is_key_notice() && !d.is_trust_notice() && !d.is_sas_notice());
    }
    let mut quiet_since = Instant::now();
    while count.is_none_or(|c| seen < c) && !stopped() {
        let Some(wait) = until.next_wait(quiet_since) else {
            break;
        };
        if let Some(d) = hush.receive(wait).await? {
            let saved = save_if_allowed(hush.store(), &me, &d, downloads).await;
            show(&d, saved.as_ref())?;
            seen += usize::from(!d.is_key_notice() && !d.is_trust_notice() && !d.is_sas_notice());
            quiet_since = Instant::now();
        }
    }
    Ok(())
}
