//! Comparisons of short authentication strings inside the agent (see [`hush_proto::sas`]).
//!
//! The agent owns the connection, so a comparison runs in its account loop: a client starts
//! one (`sas_start`), or accepts one another device offered (`sas_accept`), and each step that
//! arrives is taken by the loop as it reads messages. What the user must see — an offer, the
//! words, the other side giving up — is published to the subscribers like a message, with a
//! `sas` object in its JSON; the user's answer comes back as `sas_answer`. `hush sas` and the
//! `/sas` commands of `hush chat` are clients of this.
//!
//! Offers and comparisons are few and short-lived: at most [`MAX_OPEN`] of each, the oldest
//! dropped first, and none older than [`LIFETIME`].

use std::time::{Duration, Instant};

use hush_proto::sas::{Party, SasMessage};
use hush_store::SqliteStore;
use hush_xmpp::{BareJid, Comparison, Hush, SasArrival, XmppError};
use serde_json::{json, Value};

use crate::error::CliError;
use crate::output::Shown;
use crate::terminal::printable;

/// Offers, and comparisons under way, kept at once (each).
pub(crate) const MAX_OPEN: usize = 8;
/// How long an offer or a comparison stays open.
pub(crate) const LIFETIME: Duration = Duration::from_secs(600);

/// The offers waiting for the user and the comparisons under way.
#[derive(Default)]
pub(crate) struct Desk {
    offers: Vec<(Instant, SasArrival)>,
    running: Vec<(Instant, Comparison)>,
}

/// Why a comparison request cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeskError {
    /// No offer or comparison with that id (or none at all).
    #[error("no {what} {id}waits (offers and comparisons last ten minutes)")]
    Unknown {
        /// An offer, or a comparison.
        what: &'static str,
        /// The id asked for, with a trailing space, or nothing.
        id: String,
    },
    /// Several wait: the request must name one.
    #[error("several {what}s wait: name one of {ids}")]
    Ambiguous {
        /// Offers, or comparisons.
        what: &'static str,
        /// Their ids.
        ids: String,
    },
    /// An answer before the words are there.
    #[error("comparison {0} has no words yet: the other device has not sent its key")]
    NoWordsYet(String),
}

impl Desk {
    /// Drops what outlived [`LIFETIME`].
    fn expire(&mut self) {
        let now = Instant::now();
        self.offers
            .retain(|(at, _)| now.duration_since(*at) < LIFETIME);
        self.running
            .retain(|(at, _)| now.duration_since(*at) < LIFETIME);
    }

    /// A comparison message that arrived, `age` seconds after it was sent (the server's stamp:
    /// a catch-up reads old ones): what to publish about it. An offer is kept for the user,
    /// replacing an older one from the same device; a step of a comparison under way goes on
    /// (the words are published once both keys are in, other steps quietly); anything else,
    /// and an offer older than [`LIFETIME`], is said to be passed over.
    pub(crate) async fn arrived(
        &mut self,
        hush: &mut Hush<SqliteStore>,
        arrival: SasArrival,
        age: u64,
    ) -> Option<Shown> {
        self.expire();
        let from = arrival.from.clone();
        if let SasMessage::Start { id } = &arrival.message {
            let age = Duration::from_secs(age);
            if age >= LIFETIME {
                let why = format!(
                    "an offer made {} minutes ago: ask them to start again",
                    age.as_secs() / 60
                );
                return Some(shown(&from, id, Step::PassedOver(&why)));
            }
            if self.offers.iter().any(|(_, o)| o.message.id() == id)
                || self.running.iter().any(|(_, c)| c.id() == id)
            {
                return Some(shown(
                    &from,
                    id,
                    Step::PassedOver("an offer whose id is in use"),
                ));
            }
            let id = id.clone();
            // One offer per device: its newest.
            self.offers
                .retain(|(_, o)| !(o.from.jid == from.jid && o.from.device == from.device));
            if self.offers.len() == MAX_OPEN {
                self.offers.remove(0);
            }
            let made = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            self.offers.push((made, arrival));
            return Some(shown(&from, &id, Step::Offered));
        }
        let id = arrival.message.id().to_owned();
        for i in 0..self.running.len() {
            let had_words = self.running[i].1.code().is_some();
            match hush.sas_continue(&mut self.running[i].1, &arrival).await {
                Ok(false) => continue,
                Ok(true) => {
                    let c = &self.running[i].1;
                    return c
                        .code()
                        .filter(|_| !had_words)
                        .map(|code| shown(c.them(), &id, Step::Words(&code.words())));
                }
                Err(e) => {
                    let (_, c) = self.running.remove(i);
                    let why = match &e {
                        XmppError::Comparison(hush_proto::sas::SasError::Cancelled(reason)) => {
                            format!("the other device gave up ({reason})")
                        }
                        other => other.to_string(),
                    };
                    return Some(shown(c.them(), &id, Step::Cancelled(&why)));
                }
            }
        }
        Some(shown(&from, &id, Step::PassedOver("no comparison of ours")))
    }

    /// `sas_start`: asks device `device` of `jid` to compare.
    pub(crate) async fn start(
        &mut self,
        hush: &mut Hush<SqliteStore>,
        jid: &BareJid,
        device: u32,
    ) -> Result<Shown, CliError> {
        self.expire();
        let comparison = hush.sas_start(jid, device).await?;
        let shown = shown(comparison.them(), comparison.id(), Step::Started);
        self.keep(comparison);
        Ok(shown)
    }

    /// Whether an offer waits: the one named `id`, or any (from `from`, if given).
    pub(crate) fn offered(&mut self, id: Option<&str>, from: Option<&BareJid>) -> bool {
        self.expire();
        let mut offers = self.offers_from(from);
        match id {
            Some(id) => offers.any(|(_, o)| o == id),
            None => offers.next().is_some(),
        }
    }

    /// `sas_cancel`: gives up comparison `id` (the user's client stopped, or timed out): the
    /// other device is told `reason`. Unknown ids are no error: it may have ended already.
    pub(crate) async fn cancel(
        &mut self,
        hush: &mut Hush<SqliteStore>,
        id: &str,
        reason: &str,
    ) -> Result<bool, CliError> {
        let Some(at) = self.running.iter().position(|(_, c)| c.id() == id) else {
            return Ok(false);
        };
        let (_, comparison) = self.running.remove(at);
        hush.sas_cancel(comparison, reason).await?;
        Ok(true)
    }

    /// The offers (position, id) from `from`, or all.
    fn offers_from<'a>(
        &'a self,
        from: Option<&'a BareJid>,
    ) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        self.offers
            .iter()
            .enumerate()
            .filter(move |(_, (_, o))| from.is_none_or(|j| j.as_str() == o.from.jid))
            .map(|(i, (_, o))| (i, o.message.id()))
    }

    /// `sas_accept`: takes the offer `id`, or the only one (from `from`, if given).
    pub(crate) async fn accept(
        &mut self,
        hush: &mut Hush<SqliteStore>,
        id: Option<&str>,
        from: Option<&BareJid>,
    ) -> Result<Shown, CliError> {
        self.expire();
        let at = pick("offer", id, self.offers_from(from))?;
        let (_, offer) = self.offers.remove(at);
        let comparison = hush.sas_accept(&offer).await?;
        let shown = shown(comparison.them(), comparison.id(), Step::Accepted);
        self.keep(comparison);
        Ok(shown)
    }

    /// `sas_answer`: the user says whether the words of comparison `id` (or the only one with
    /// words) match. `true` verifies the other device; `false` tells it, and verifies nothing.
    pub(crate) async fn answer(
        &mut self,
        hush: &mut Hush<SqliteStore>,
        id: Option<&str>,
        matched: bool,
    ) -> Result<Shown, CliError> {
        self.expire();
        let at = match id.and_then(|id| self.running.iter().position(|(_, c)| c.id() == id)) {
            // A named comparison without words yet is said so, not called unknown.
            Some(at) if self.running[at].1.code().is_none() => {
                return Err(DeskError::NoWordsYet(self.running[at].1.id().to_owned()).into())
            }
            Some(at) => at,
            None => {
                let with_words = self.running.iter().enumerate();
                let with_words = with_words.filter(|(_, (_, c))| c.code().is_some());
                pick("comparison", id, with_words.map(|(i, (_, c))| (i, c.id())))?
            }
        };
        let (_, comparison) = self.running.remove(at);
        let them = comparison.them().clone();
        let id = comparison.id().to_owned();
        if matched {
            let done = hush.sas_confirm(comparison).await?;
            let mut verified = shown(&them, &id, Step::Verified);
            verified.json["atm_applied"] = json!(done.applied.len());
            Ok(verified)
        } else {
            hush.sas_cancel(comparison, "mismatch").await?;
            Err(CliError::WordsDiffer {
                jid: them.jid,
                device: them.device,
            })
        }
    }

    fn keep(&mut self, comparison: Comparison) {
        if self.running.len() == MAX_OPEN {
            self.running.remove(0);
        }
        self.running.push((Instant::now(), comparison));
    }
}

/// Which of `candidates` (position, id) is meant: the one with `id`, or the only one when no
/// id is given.
fn pick<'a>(
    what: &'static str,
    id: Option<&str>,
    candidates: impl Iterator<Item = (usize, &'a str)>,
) -> Result<usize, DeskError> {
    let candidates: Vec<(usize, &str)> = candidates.collect();
    let unknown = |id: &str| DeskError::Unknown {
        what,
        id: id.to_owned(),
    };
    match id {
        // The whole id, or its first 8 characters or more when no other shares them.
        Some(id) => {
            let exact = candidates.iter().find(|(_, c)| *c == id);
            let by_prefix: Vec<&(usize, &str)> = candidates
                .iter()
                .filter(|(_, c)| id.chars().count() >= 8 && c.starts_with(id))
                .collect();
            match (exact, by_prefix.as_slice()) {
                (Some((at, _)), _) | (None, [(at, _)]) => Ok(*at),
                (None, []) => Err(unknown(&format!("{id} "))),
                (None, _) => Err(DeskError::Ambiguous {
                    what,
                    ids: by_prefix
                        .iter()
                        .map(|(_, c)| *c)
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        }
        None => match candidates.as_slice() {
            [] => Err(unknown("")),
            [(at, _)] => Ok(*at),
            _ => Err(DeskError::Ambiguous {
                what,
                ids: candidates
                    .iter()
                    .map(|(_, c)| *c)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        },
    }
}

/// What the subscribers hear of a comparison.
pub(crate) enum Step<'a> {
    /// Another device asks to compare.
    Offered,
    /// We asked another device.
    Started,
    /// We accepted another device's offer.
    Accepted,
    /// Both keys are in: the words to compare.
    Words(&'a [&'static str]),
    /// The user said the words match: the other device is verified.
    Verified,
    /// It ended without a verification, and why.
    Cancelled(&'a str),
    /// A comparison message nothing waits for, and why.
    PassedOver(&'a str),
}

impl Step<'_> {
    /// Its name in the JSON (`sas.step`).
    fn name(&self) -> &'static str {
        match self {
            Step::Offered => "offered",
            Step::Started => "started",
            Step::Accepted => "accepted",
            Step::Words(_) => "words",
            Step::Verified => "verified",
            Step::Cancelled(_) => "cancelled",
            Step::PassedOver(_) => "passed_over",
        }
    }
}

/// A step of comparison `id` with `them`, as the subscribers see it: JSON with a `sas` object
/// (`step`, `comparison`, the other device, `words`, `reason`) and the lines `hush` prints.
pub(crate) fn shown(them: &Party, id: &str, step: Step<'_>) -> Shown {
    let fingerprint = them.identity.fingerprint();
    // What a user types to name it: its first 8 characters (enough unless two collide).
    let short = printable(&id.chars().take(8).collect::<String>());
    let (jid, device) = (printable(&them.jid), them.device);
    let (words, why): (&[&str], &str) = match &step {
        Step::Words(words) => (words, ""),
        Step::Cancelled(why) | Step::PassedOver(why) => (&[], why),
        _ => (&[], ""),
    };
    let text = match &step {
        Step::Offered => vec![format!(
            "-- device {device} of {jid} (fingerprint {fingerprint}) asks to compare short \
             authentication strings (comparison {short}): `hush sas --wait`, or /sas accept in \
             `hush chat`, to answer"
        )],
        Step::Started => vec![format!(
            "-- asked device {device} of {jid} to compare short authentication strings; on \
             that device, accept it (`hush sas --wait`, or /sas accept in `hush chat`)"
        )],
        Step::Accepted => vec![format!(
            "-- comparing with device {device} of {jid}: the words follow"
        )],
        Step::Words(words) => vec![
            format!(
                "-- device {device} of {jid} (fingerprint {fingerprint}) shows these words if \
                 nobody is in between:"
            ),
            format!("    {}", words.join("  ")),
            "   Do they match the other device's, in the same order? Answer where the comparison \
             was started or accepted (/sas yes or /sas no in `hush chat`)"
                .to_owned(),
        ],
        Step::Verified => vec![format!(
            "{jid} device {device} ({fingerprint}): verified (short authentication string)"
        )],
        Step::Cancelled(why) => vec![format!(
            "!! the comparison with device {device} of {jid} ended: {}",
            printable(why)
        )],
        Step::PassedOver(why) => vec![format!(
            "-- passed over a comparison message from device {device} of {jid} ({})",
            printable(why)
        )],
    };
    Shown {
        json: json!({"from": them.jid, "device": device, "body": Value::Null,
                     "sas": {"step": step.name(), "comparison": id, "jid": them.jid,
                             "device": device, "fingerprint": fingerprint, "words": words,
                             "reason": (!why.is_empty()).then_some(why)}}),
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: Option<&str>, ids: &[&'static str]) -> Result<usize, DeskError> {
        pick("comparison", id, ids.iter().copied().enumerate())
    }

    #[test]
    fn a_comparison_is_named_by_its_id_or_a_long_enough_prefix() {
        let ids = ["12943882ddb0aa", "12943882ffff00", "7a7a7a7a7a7a"];
        assert_eq!(at(Some("7a7a7a7a7a7a"), &ids).ok(), Some(2));
        assert_eq!(at(Some("7a7a7a7a"), &ids).ok(), Some(2));
        // Too short to name one, or shared by two: refused, never a guess.
        assert!(matches!(
            at(Some("7a7a"), &ids),
            Err(DeskError::Unknown { .. })
        ));
        assert!(matches!(
            at(Some("12943882"), &ids),
            Err(DeskError::Ambiguous { .. })
        ));
        assert_eq!(at(Some("12943882dd"), &ids).ok(), Some(0));
        // No id: the only one, or a refusal naming them all.
        assert_eq!(at(None, &ids[2..]).ok(), Some(0));
        assert!(matches!(at(None, &[]), Err(DeskError::Unknown { .. })));
        let several = at(None, &ids).unwrap_err().to_string();
        assert!(several.contains("7a7a7a7a7a7a"), "{several}");
    }
}
