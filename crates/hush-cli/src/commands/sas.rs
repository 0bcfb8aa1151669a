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
//! While an agent runs (or `hush chat`), the comparison runs in the agent, which holds the
//! connection (see [`crate::agent::sas`]): this command starts or accepts it there, shows the
//! words it publishes, and hands over the answer.

use std::io::BufRead;
use std::time::{Duration, Instant};

use hush_store::SqliteStore;
use hush_xmpp::{BareJid, Delivery, Hush, SasArrival};
use serde_json::{json, Value};

use super::{connect, me};
use crate::agent::client::Agent;
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{note, DeliveryReport, Printer, Shown};
use crate::terminal::printable;

/// What `hush sas` was asked to do.
pub(crate) enum Ask {
    /// Start comparing with this device.
    Start(BareJid, u32),
    /// Wait for a device (of this account, if given) to start.
    Wait(Option<BareJid>),
}

pub(super) async fn run(home: &Home, ask: Ask, timeout: Duration, out: Printer) -> Result<()> {
    if let Some(agent) = Agent::find(home).await? {
        return through_agent(agent.printing_for(out), ask, timeout, out).await;
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
                "asked device {device} of {} to compare short authentication strings; on \
                 that device, run `hush sas --wait`",
                printable(jid.as_str())
            ));
            c
        }
        Ask::Wait(from) => {
            note("waiting for a device to start a comparison (`hush sas YOUR-JID YOUR-DEVICE` there)");
            let start = loop {
                let arrival = next_arrival(hush, deadline, out).await?;
                let wanted = from.as_ref().is_none_or(|j| j.as_str() == arrival.from.jid);
                if wanted && matches!(arrival.message, hush_proto::sas::SasMessage::Start { .. }) {
                    break arrival;
                }
                note(&format!(
                    "passed over a comparison message from device {} of {}",
                    arrival.from.device,
                    printable(&arrival.from.jid)
                ));
            };
            note(&format!(
                "device {} of {} (fingerprint {}) asks to compare",
                start.from.device,
                printable(&start.from.jid),
                start.from.identity.fingerprint()
            ));
            hush.sas_accept(&start).await?
        }
    };
    while comparison.code().is_none() {
        let arrival = next_arrival(hush, deadline, out).await?;
        if !hush.sas_continue(&mut comparison, &arrival).await? {
            note(&format!(
                "passed over a comparison message from device {} of {} (another comparison)",
                arrival.from.device,
                printable(&arrival.from.jid)
            ));
        }
    }
    let them = comparison.them().clone();
    let words: Vec<&str> = comparison
        .code()
        .map(|c| c.words().to_vec())
        .unwrap_or_default();
    let device = Compared {
        jid: them.jid.clone(),
        device: them.device,
        fingerprint: them.identity.fingerprint(),
    };
    if ask_user(&device, comparison.id(), &words, out).await? {
        let done = hush.sas_confirm(comparison).await?;
        out.show(&device.verified(done.applied.len()))
    } else {
        hush.sas_cancel(comparison, "mismatch").await?;
        Err(CliError::WordsDiffer {
            jid: them.jid,
            device: them.device,
        })
    }
}

/// The other device of a comparison, as the user is shown it.
struct Compared {
    jid: String,
    device: u32,
    fingerprint: String,
}

impl Compared {
    /// From the `sas` object of an agent's notification.
    fn of(sas: &Value) -> Self {
        Compared {
            jid: sas["jid"].as_str().unwrap_or("?").to_owned(),
            device: sas["device"]
                .as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(0),
            fingerprint: sas["fingerprint"].as_str().unwrap_or("?").to_owned(),
        }
    }

    /// The report of its verification (`atm_applied`: keys the trust messages it caused
    /// changed).
    fn verified(&self, atm_applied: usize) -> Shown {
        let (jid, device, fingerprint) = (&self.jid, self.device, &self.fingerprint);
        Shown {
            json: json!({"jid": jid, "device": device, "fingerprint": fingerprint,
                         "trust": "verified", "by": "sas", "atm_applied": atm_applied}),
            text: vec![format!(
                "{} device {device} ({fingerprint}): verified (short authentication string)",
                printable(jid)
            )],
        }
    }
}

/// Shows the words of comparison `id` and asks the user whether they match.
async fn ask_user(them: &Compared, id: &str, words: &[&str], out: Printer) -> Result<bool> {
    out.show(&Shown {
        json: json!({"comparison": id, "jid": them.jid, "device": them.device,
                     "fingerprint": them.fingerprint, "words": words}),
        text: vec![
            format!(
                "device {} of {} (fingerprint {}) shows these words if nobody is in between:",
                them.device,
                printable(&them.jid),
                them.fingerprint
            ),
            format!("    {}", words.join("  ")),
        ],
    })?;
    if !out.is_json() {
        note("Do the words on both devices match, in the same order? Answer yes or no:");
    }
    tokio::task::spawn_blocking(read_answer)
        .await
        .map_err(|_| CliError::NoAnswer)?
}

/// The comparison run by the agent: started or accepted there, its words from its
/// notifications, the answer handed back. Other messages are shown as `recv` shows them.
async fn through_agent(mut agent: Agent, ask: Ask, timeout: Duration, out: Printer) -> Result<()> {
    let who = agent.call("ping", json!({})).await?.json;
    if who["locked"] == true {
        return Err(crate::agent::AgentError::Locked.into());
    }
    let deadline = Instant::now() + timeout;
    // Subscribed first: no step can pass before we listen. Each message is acknowledged once
    // shown here: what this command did not show when it ends goes to the next reader.
    agent.call("subscribe", json!({"ack": true})).await?;
    let id = match ask {
        Ask::Start(jid, device) => {
            let started = agent
                .call(
                    "sas_start",
                    json!({"jid": jid.to_string(), "device": device}),
                )
                .await?;
            note(&format!(
                "asked device {device} of {} to compare short authentication strings; on \
                 that device, run `hush sas --wait` (or /sas accept in `hush chat`)",
                printable(jid.as_str())
            ));
            comparison_id(&started.json)
        }
        Ask::Wait(from) => {
            let from = from.map(|j| j.to_string());
            note("waiting for a device to start a comparison (`hush sas YOUR-JID YOUR-DEVICE` there)");
            // An offer that came before we did is taken first; then we wait for one.
            let mut accepted = agent
                .call("sas_accept", json!({"jid": from, "if_any": true}))
                .await?;
            while accepted.json["sas"].is_null() {
                let offer = next_step(&mut agent, deadline, out, None, |sas| {
                    sas["step"] == "offered"
                        && from
                            .as_deref()
                            .is_none_or(|j| sas["jid"].as_str() == Some(j))
                })
                .await?;
                let id = offer["comparison"].as_str().unwrap_or_default();
                accepted = agent
                    .call("sas_accept", json!({"comparison": id, "if_any": true}))
                    .await?;
            }
            let them = Compared::of(&accepted.json["sas"]);
            note(&format!(
                "device {} of {} (fingerprint {}) asks to compare",
                them.device,
                printable(&them.jid),
                them.fingerprint
            ));
            comparison_id(&accepted.json)
        }
    };
    let outcome = compare_through(&mut agent, &id, deadline, out).await;
    if let Err(e) = &outcome {
        // The other device is told, unless the comparison already ended there or here.
        if !matches!(
            e,
            CliError::WordsDiffer { .. } | CliError::ComparisonEnded(_)
        ) {
            let reason = if matches!(e, CliError::ComparisonTimedOut) {
                "timeout"
            } else {
                "declined"
            };
            if let Err(cancel) = agent
                .call("sas_cancel", json!({"comparison": id, "reason": reason}))
                .await
            {
                log::warn!("could not cancel the comparison: {cancel}");
            }
        }
    }
    outcome
}

/// Comparison `id`, started or accepted in the agent: its words, the user's answer.
async fn compare_through(
    agent: &mut Agent,
    id: &str,
    deadline: Instant,
    out: Printer,
) -> Result<()> {
    let words = next_step(agent, deadline, out, Some(id), |sas| {
        sas["comparison"] == id && matches!(sas["step"].as_str(), Some("words" | "cancelled"))
    })
    .await?;
    if words["step"] == "cancelled" {
        return Err(CliError::ComparisonEnded(
            words["reason"]
                .as_str()
                .unwrap_or("it was cancelled")
                .to_owned(),
        ));
    }
    let them = Compared::of(&words);
    let list: Vec<&str> = words["words"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let matched = ask_user(&them, id, &list, out).await?;
    let answered = agent
        .call("sas_answer", json!({"comparison": id, "match": matched}))
        .await;
    match answered {
        Ok(done) => out.show(&them.verified(
            usize::try_from(done.json["atm_applied"].as_u64().unwrap_or(0)).unwrap_or(0),
        )),
        // "No" is refused by the agent as the words differing: said the same way as here.
        // Any other failure after "no" (the comparison had ended, the notice to the other
        // device was not sent) leaves nothing verified too, but the other device may not know.
        Err(crate::agent::AgentError::Failed { kind, message, .. }) if !matched => {
            let refused =
                kind.as_deref().map(crate::error::Kind::named) == Some(crate::error::Kind::Refused);
            Err(if refused {
                CliError::WordsDiffer {
                    jid: them.jid,
                    device: them.device,
                }
            } else {
                CliError::WordsDifferUntold {
                    jid: them.jid,
                    device: them.device,
                    reason: message,
                }
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The comparison an agent's answer names.
fn comparison_id(answer: &Value) -> String {
    answer["sas"]["comparison"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `sas` object of the next notification of the agent that `wanted` takes; the other
/// messages are shown as `recv` shows them, except other steps of comparison `ours`.
async fn next_step(
    agent: &mut Agent,
    deadline: Instant,
    out: Printer,
    ours: Option<&str>,
    wanted: impl Fn(&Value) -> bool,
) -> Result<Value> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CliError::ComparisonTimedOut);
        }
        let Some(mut message) = agent.next_message(left).await? else {
            continue;
        };
        let seq = message
            .json
            .as_object_mut()
            .and_then(|o| o.remove("seq"))
            .and_then(|s| s.as_u64());
        let sas = &message.json["sas"];
        let taken = sas.is_object() && wanted(sas);
        // The news of our own comparison's other steps (the offer we took) is no news here.
        let ours = sas.is_object() && ours.is_some_and(|id| sas["comparison"] == id);
        if !taken && !ours {
            out.show(&message)?;
        }
        if let Some(seq) = seq {
            agent.call("ack", json!({"seq": seq})).await?;
        }
        if taken {
            return Ok(message.json["sas"].take());
        }
    }
}

/// The next comparison message; other messages are shown as `recv` shows them.
async fn next_arrival(
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
