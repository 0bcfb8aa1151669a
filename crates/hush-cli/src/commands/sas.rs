//! `hush sas`: compare seven words with another device instead of two fingerprints.
//!
//! `hush sas JID DEVICE` starts a comparison with that device; `hush sas --wait [JID]` waits
//! for one (the other device runs `hush sas` with our JID and device id). Both show the same
//! seven words when nobody is in between (see [`hush_proto::sas`] for why a server cannot make
//! them match); the user answers whether they match, on each device. `yes` marks the other
//! device verified ("by a short authentication string"), which Automatic Trust Management
//! then tells our other verified devices and the contact; `no` tells the other device, and
//! nothing is verified. Messages that arrive meanwhile are shown as `recv` shows them, never
//! swallowed.
//!
//! It needs the account's connection for itself: while an agent runs, it says so.

use std::io::BufRead;
use std::time::{Duration, Instant};

use hush_store::SqliteStore;
use hush_xmpp::{BareJid, Delivery, Hush, SasArrival};
use serde_json::json;

use super::{connect, me};
use crate::agent::client::Agent;
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{note, DeliveryReport, Printer, Shown};

/// What `hush sas` was asked to do.
pub(crate) enum Ask {
    /// Start comparing with this device.
    Start(BareJid, u32),
    /// Wait for a device (of this account, if given) to start.
    Wait(Option<BareJid>),
}

pub(super) async fn run(home: &Home, ask: Ask, timeout: Duration, out: Printer) -> Result<()> {
    if Agent::find(home).await?.is_some() {
        return Err(CliError::AgentHoldsConnection("sas"));
    }
    let (mut hush, _) = connect(home).await?;
    let outcome = compare(&mut hush, ask, timeout, out).await;
    hush.close().await?;
    outcome
}

async fn compare(
    hush: &mut Hush<SqliteStore>,
    ask: Ask,
    timeout: Duration,
    out: Printer,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut comparison = match ask {
        Ask::Start(jid, device) => {
            let c = hush.sas_start(&jid, device).await?;
            note(&format!(
                "asked device {device} of {jid} to compare short authentication strings; on \
                 that device, run `hush sas --wait`"
            ));
            c
        }
        Ask::Wait(from) => {
            note("waiting for a device to start a comparison (`hush sas YOUR-JID YOUR-DEVICE` there)");
            let start = loop {
                let arrival = next_step(hush, deadline, out).await?;
                let wanted = from.as_ref().is_none_or(|j| j.as_str() == arrival.from.jid);
                if wanted && matches!(arrival.message, hush_proto::sas::SasMessage::Start { .. }) {
                    break arrival;
                }
                note(&format!(
                    "passed over a comparison message from device {} of {}",
                    arrival.from.device, arrival.from.jid
                ));
            };
            note(&format!(
                "device {} of {} (fingerprint {}) asks to compare",
                start.from.device,
                start.from.jid,
                start.from.identity.fingerprint()
            ));
            hush.sas_accept(&start).await?
        }
    };
    while comparison.code().is_none() {
        let arrival = next_step(hush, deadline, out).await?;
        if !hush.sas_continue(&mut comparison, &arrival).await? {
            note(&format!(
                "passed over a comparison message from device {} of {} (another comparison)",
                arrival.from.device, arrival.from.jid
            ));
        }
    }
    let them = comparison.them().clone();
    let words: Vec<&str> = comparison
        .code()
        .map(|c| c.words().to_vec())
        .unwrap_or_default();
    out.show(&Shown {
        json: json!({"comparison": comparison.id(), "jid": them.jid, "device": them.device,
                     "fingerprint": them.identity.fingerprint(), "words": words}),
        text: vec![
            format!(
                "device {} of {} (fingerprint {}) shows these words if nobody is in between:",
                them.device,
                them.jid,
                them.identity.fingerprint()
            ),
            format!("    {}", words.join("  ")),
        ],
    })?;
    if !out.is_json() {
        note("Do the words on both devices match, in the same order? Answer yes or no:");
    }
    let answer = tokio::task::spawn_blocking(read_answer)
        .await
        .map_err(|_| CliError::NoAnswer)??;
    if answer {
        let done = hush.sas_confirm(comparison).await?;
        out.show(&Shown {
            json: json!({"jid": them.jid, "device": them.device,
                         "fingerprint": them.identity.fingerprint(), "trust": "verified",
                         "by": "sas", "atm_applied": done.applied.len()}),
            text: vec![format!(
                "{} device {} ({}): verified (short authentication string)",
                them.jid,
                them.device,
                them.identity.fingerprint()
            )],
        })?;
        Ok(())
    } else {
        hush.sas_cancel(comparison, "mismatch").await?;
        Err(CliError::WordsDiffer {
            jid: them.jid,
            device: them.device,
        })
    }
}

/// The next comparison message; other messages are shown as `recv` shows them.
async fn next_step(
    hush: &mut Hush<SqliteStore>,
    deadline: Instant,
    out: Printer,
) -> Result<SasArrival> {
    let me = me(hush);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CliError::ComparisonTimedOut);
        }
        let Some(delivery) = hush.receive(left).await? else {
            continue;
        };
        if let Some(arrival) = sas_of(&delivery) {
            return Ok(arrival);
        }
        out.show(&DeliveryReport {
            delivery: &delivery,
            me: &me,
            saved: None,
        })?;
    }
}

fn sas_of(d: &Delivery) -> Option<SasArrival> {
    d.is_sas_notice().then(|| d.sas.clone()).flatten()
}

/// `yes` or `no` from standard input (`y`/`n` too, any case); anything else asks again.
fn read_answer() -> Result<bool> {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|_| CliError::NoAnswer)?;
        match line.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" => return Ok(true),
            "no" | "n" => return Ok(false),
            _ => note("answer yes or no"),
        }
    }
    Err(CliError::NoAnswer)
}
