//! `hush trust`, `hush distrust` and `hush verify`: the user's decisions about keys — a
//! contact's, or our own other devices' — by device id, by fingerprint, or from a verification
//! URI (what a QR code holds).
//!
//! Every decision is recorded through the engine ([`hush_engine::atm`]), so that it releases
//! the trust statements held from a device now verified, and queues the trust messages that
//! tell our other devices and the contact (XEP-0450). Connected, they go at once; decided from
//! the store alone, they go on a short connection afterwards, or on the next one.

use hush_engine::atm::Applied;
use hush_engine::UserDecision;
use hush_proto::{IdentityKey, Suite};
use hush_store::{SqliteStore, Store, Trust};
use hush_xmpp::{BareJid, Hush};
use serde_json::json;

use super::unix_now;
use crate::error::{CliError, Result, Unverified};
use crate::home::Home;
use crate::output::{trust_name, Printer, Shown};
use crate::verification::{self, Claim, VerificationUri};

/// One device decided about: `(device, its key)`.
type Decided = (u32, IdentityKey);

/// `hush trust` / `hush distrust JID DEVICE-OR-FINGERPRINT`: from the store alone when a
/// device we hold a session with matches; otherwise connected, to look among the devices the
/// contact publishes.
pub(super) async fn run(
    home: &Home,
    jid: &BareJid,
    which: &str,
    trust: Trust,
    out: Printer,
) -> Result<()> {
    let mut store = home.open_store()?;
    let shown = match matching_sessions(&store, jid.as_str(), which) {
        Ok(matched) => {
            let (shown, queued) = record_offline(&mut store, jid.as_str(), &matched, trust)?;
            drop(store);
            send_queued(home, queued).await;
            shown
        }
        Err(CliError::NoSuchDevice { .. } | CliError::NoSuchFingerprint { .. }) => {
            drop(store);
            let (mut hush, _) = super::connect(home).await?;
            let decided = decide_fetching(&mut hush, jid, which, trust).await;
            hush.close().await?;
            decided?
        }
        Err(e) => return Err(e),
    };
    for d in shown {
        out.show(&d)?;
    }
    Ok(())
}

/// `hush trust` / `distrust` on a connection: the devices we hold a session with that match
/// `which`, else those `jid` publishes (their keys read from their bundles: a device can be
/// trusted or refused before it ever wrote).
pub(crate) async fn decide_fetching(
    hush: &mut Hush<SqliteStore>,
    jid: &BareJid,
    which: &str,
    trust: Trust,
) -> Result<Vec<Shown>> {
    let owner = jid.to_string();
    let matched = match matching_sessions(hush.store(), &owner, which) {
        Ok(matched) => matched,
        Err(none @ (CliError::NoSuchDevice { .. } | CliError::NoSuchFingerprint { .. })) => {
            let matched = matching_published(hush, jid, which).await?;
            if matched.is_empty() {
                return Err(none);
            }
            matched
        }
        Err(e) => return Err(e),
    };
    record_online(hush, &owner, &matched, trust).await
}

/// The devices `jid` publishes that match `which`, their keys read from their bundles (and
/// kept, so that `hush devices` shows them).
async fn matching_published(
    hush: &mut Hush<SqliteStore>,
    jid: &BareJid,
    which: &str,
) -> Result<Vec<Decided>> {
    let wanted_fp = hex_only(which);
    let wanted_device = which.parse::<u32>().ok();
    let devices = match wanted_device {
        Some(d) => vec![d],
        None => hush.published_devices(jid).await?,
    };
    let owner = jid.to_string();
    let mut matched = Vec::new();
    for device in devices {
        let Ok(identity) = hush.published_identity(jid, device).await else {
            continue;
        };
        hush.store_mut()
            .save_published_key(&owner, device, &identity, unix_now())?;
        let fp = identity.fingerprint();
        if wanted_device == Some(device) || (wanted_fp.len() >= 16 && hex_only(&fp) == wanted_fp) {
            matched.push((device, identity));
        }
    }
    Ok(matched)
}

fn decision(jid: &str, device: u32, fp: &str, trust: Trust) -> Shown {
    Shown {
        json: json!({"jid": jid, "device": device, "fingerprint": fp, "trust": trust_name(Some(trust))}),
        text: vec![format!(
            "{jid} device {device} ({fp}): {}",
            trust_name(Some(trust))
        )],
    }
}

/// The lines for keys Automatic Trust Management changed by itself after the user's
/// decision (statements held from a device just verified).
fn applied_lines(applied: &[Applied]) -> Vec<Shown> {
    applied
        .iter()
        .map(|(jid, fp, trust)| Shown {
            json: json!({"jid": jid, "fingerprint": fp, "trust": trust_name(Some(*trust)),
                         "by": "atm"}),
            text: vec![format!(
                "{jid} ({fp}): {} (a trust message held from a device you just verified)",
                trust_name(Some(*trust))
            )],
        })
        .collect()
}

fn user_decisions(jid: &str, decided: &[Decided], trust: Trust) -> Vec<UserDecision> {
    decided
        .iter()
        .map(|(_, identity)| UserDecision {
            jid: jid.to_owned(),
            identity: *identity,
            trust,
        })
        .collect()
}

/// Records decisions in the store alone, through the engine; gives what to show and how many
/// trust messages were queued.
fn record_offline(
    store: &mut SqliteStore,
    jid: &str,
    decided: &[Decided],
    trust: Trust,
) -> Result<(Vec<Shown>, usize)> {
    let account = super::account(store)?;
    let engine = hush_engine::Engine::new(&account.jid, account.device);
    let step = engine.decide_trust(store, &user_decisions(jid, decided, trust), unix_now())?;
    store.commit(step.transaction)?;
    let mut shown: Vec<Shown> = decided
        .iter()
        .map(|(d, k)| decision(jid, *d, &k.fingerprint(), trust))
        .collect();
    shown.extend(applied_lines(&step.applied));
    Ok((shown, step.queued))
}

/// Records decisions on a connection: the trust messages they call for go at once.
async fn record_online(
    hush: &mut Hush<SqliteStore>,
    jid: &str,
    decided: &[Decided],
    trust: Trust,
) -> Result<Vec<Shown>> {
    let outcome = hush
        .decide_trust(&user_decisions(jid, decided, trust))
        .await?;
    let mut shown: Vec<Shown> = decided
        .iter()
        .map(|(d, k)| decision(jid, *d, &k.fingerprint(), trust))
        .collect();
    shown.extend(applied_lines(&outcome.applied));
    Ok(shown)
}

/// After a decision made from the store alone: sends the trust messages it queued on a short
/// connection. Offline, they wait for the next one (which sends them after its catch-up).
async fn send_queued(home: &Home, queued: usize) {
    if queued == 0 {
        return;
    }
    match super::connect(home).await {
        Ok((mut hush, _)) => {
            hush.send_trust_messages().await;
            if let Err(e) = hush.close().await {
                log::warn!("closing after sending trust messages: {e}");
            }
        }
        Err(e) => log::warn!(
            "{queued} trust message(s) for your other devices and contacts wait for the next \
             connection: {e}"
        ),
    }
}

/// `hush verify URI`: from the store alone when it knows every key the URI names; otherwise
/// connected, to read the others' published keys.
pub(super) async fn run_verify(home: &Home, uri: &str, out: Printer) -> Result<()> {
    let read = verification::parse(uri)?;
    let store = home.open_store_to_read()?;
    let offline = check(&store, &read)?;
    drop(store);
    let shown = if offline.iter().all(|c| c.outcome.is_some()) {
        let mut store = home.open_store()?;
        let checked = check(&store, &read)?;
        let (shown, queued) = verify_checked(&mut store, &read.jid, checked)?;
        drop(store);
        send_queued(home, queued).await;
        shown
    } else {
        let (mut hush, _) = super::connect(home).await?;
        let verified = verify_fetching(&mut hush, uri).await;
        hush.close().await?;
        verified?
    };
    for v in shown {
        out.show(&v)?;
    }
    Ok(())
}

/// Verifies (or, for a trust message URI's `distrust=` keys, distrusts) the keys a
/// verification URI names and reports each device: a key we know of no session with (a
/// contact's new device that has not written yet) is read from the contact's published
/// bundles.
pub(crate) async fn verify_fetching(hush: &mut Hush<SqliteStore>, uri: &str) -> Result<Vec<Shown>> {
    let read = verification::parse(uri)?;
    let checked = check(hush.store(), &read)?;
    let mut unreadable = Vec::new();
    if checked.iter().any(|c| c.outcome.is_none()) {
        let owner = super::bare(&read.jid)?;
        // Devices the URI names, or all the contact publishes when it names keys only.
        let named: Vec<u32> = checked
            .iter()
            .filter(|c| c.outcome.is_none())
            .filter_map(|c| c.claim.device)
            .collect();
        let devices = if checked
            .iter()
            .any(|c| c.outcome.is_none() && c.claim.device.is_none())
        {
            hush.published_devices(&owner).await?
        } else {
            named
        };
        for device in devices {
            match hush.published_identity(&owner, device).await {
                Ok(identity) => {
                    // Kept, so that `hush devices` shows the key it was checked against.
                    hush.store_mut().save_published_key(
                        &read.jid,
                        device,
                        &identity,
                        unix_now(),
                    )?;
                }
                // Said with the device's refusal below.
                Err(e) => unreadable.push((device, e.to_string())),
            }
        }
    }
    let checked = check(hush.store(), &read)?;
    let settled = settle(&read.jid, checked, &unreadable)?;
    let mut shown = Vec::new();
    for (trust, decided) in [Trust::Verified, Trust::Distrusted]
        .into_iter()
        .map(|t| (t, settled.of(t)))
    {
        if !decided.is_empty() {
            shown.extend(record_online(hush, &read.jid, &decided, trust).await?);
        }
    }
    settled.finish(shown)
}

fn hex_only(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The devices of `jid` we hold a session with that match `which` (a device id, or a
/// fingerprint of at least 16 hex digits), each with its key.
fn matching_sessions(store: &SqliteStore, jid: &str, which: &str) -> Result<Vec<Decided>> {
    let wanted_fp = hex_only(which);
    let wanted_device = which.parse::<u32>().ok();
    let mut matched: Vec<Decided> = Vec::new();
    for suite in Suite::ALL {
        for (device, session) in store.sessions_of(suite, jid)? {
            let identity = *session.peer_identity();
            let hit = wanted_device == Some(device)
                || (wanted_fp.len() >= 16 && hex_only(&identity.fingerprint()) == wanted_fp);
            if hit && !matched.iter().any(|(d, _)| *d == device) {
                matched.push((device, identity));
            }
        }
    }
    if matched.is_empty() {
        return Err(if wanted_device.is_none() && wanted_fp.len() >= 16 {
            CliError::NoSuchFingerprint {
                jid: jid.to_owned(),
                fingerprint: which.to_owned(),
            }
        } else {
            CliError::NoSuchDevice {
                jid: jid.to_owned(),
                which: which.to_owned(),
            }
        });
    }
    Ok(matched)
}

/// The verification URI of one device (what its QR code holds):
/// `xmpp:JID?omemo-sid-DEVICE=FINGERPRINT-HEX`.
pub(crate) fn verification_uri(jid: &str, device: u32, identity: &IdentityKey) -> String {
    verification::omemo_sid_uri(jid, &[(device, *identity)])
}

/// `hush verify URI` from the store alone (the demo's phones): what [`run_verify`] does
/// without a connection; the trust messages stay queued for the next one.
pub(crate) fn verify(store: &mut SqliteStore, uri: &str) -> Result<Vec<Shown>> {
    let read = verification::parse(uri)?;
    let checked = check(store, &read)?;
    Ok(verify_checked(store, &read.jid, checked)?.0)
}

/// Records what checked claims settle, from the store alone.
fn verify_checked(
    store: &mut SqliteStore,
    jid: &str,
    checked: Vec<Checked>,
) -> Result<(Vec<Shown>, usize)> {
    let settled = settle(jid, checked, &[])?;
    let mut shown = Vec::new();
    let mut queued = 0;
    for trust in [Trust::Verified, Trust::Distrusted] {
        let decided = settled.of(trust);
        if !decided.is_empty() {
            let (lines, q) = record_offline(store, jid, &decided, trust)?;
            shown.extend(lines);
            queued += q;
        }
    }
    Ok((settled.finish(shown)?, queued))
}

/// One claim of a URI, checked against the keys we know.
struct Checked {
    claim: Claim,
    /// `None`: we know no key to compare with (no session, nothing published read).
    outcome: Option<Outcome>,
}

enum Outcome {
    /// These devices hold the key the claim names.
    Matches(Vec<(u32, IdentityKey)>),
    /// The device the claim names holds another key.
    Mismatch(u32, IdentityKey),
}

/// The keys we know for `jid`'s devices: those of our sessions (in any suite), then those read
/// from its bundles for devices without a session.
pub(super) fn known_keys(store: &SqliteStore, jid: &str) -> Result<Vec<(u32, IdentityKey)>> {
    let mut known: Vec<(u32, IdentityKey)> = Vec::new();
    for suite in Suite::ALL {
        for (device, session) in store.sessions_of(suite, jid)? {
            if !known.iter().any(|(d, _)| *d == device) {
                known.push((device, *session.peer_identity()));
            }
        }
    }
    for (device, identity) in store.published_keys(jid)? {
        if !known.iter().any(|(d, _)| *d == device) {
            known.push((device, identity));
        }
    }
    Ok(known)
}

/// Checks every claim of `uri` against the keys the store knows.
fn check(store: &SqliteStore, uri: &VerificationUri) -> Result<Vec<Checked>> {
    let known = known_keys(store, &uri.jid)?;
    Ok(uri
        .claims
        .iter()
        .map(|claim| {
            let outcome = match claim.device {
                Some(device) => known.iter().find(|(d, _)| *d == device).map(|&(d, k)| {
                    if claim.names(&k) {
                        Outcome::Matches(vec![(d, k)])
                    } else {
                        Outcome::Mismatch(d, k)
                    }
                }),
                None => {
                    let matches: Vec<(u32, IdentityKey)> = known
                        .iter()
                        .copied()
                        .filter(|(_, k)| claim.names(k))
                        .collect();
                    (!matches.is_empty()).then_some(Outcome::Matches(matches))
                }
            };
            Checked {
                claim: claim.clone(),
                outcome,
            }
        })
        .collect())
}

/// What a URI's checked claims come to: the devices to verify and to distrust, and the
/// problems (a different key, no key at all), which are reported after the rest is recorded.
struct Settled {
    jid: String,
    decided: Vec<(u32, IdentityKey, Trust)>,
    problems: Vec<Unverified>,
}

impl Settled {
    /// The devices to give `trust`.
    fn of(&self, trust: Trust) -> Vec<Decided> {
        self.decided
            .iter()
            .filter(|(_, _, t)| *t == trust)
            .map(|(d, k, _)| (*d, *k))
            .collect()
    }

    /// `shown` (what was recorded), or the error naming the problems and what was verified
    /// despite them.
    fn finish(self, shown: Vec<Shown>) -> Result<Vec<Shown>> {
        if self.problems.is_empty() {
            return Ok(shown);
        }
        Err(CliError::NotVerified {
            jid: self.jid,
            problems: self.problems,
            verified: self
                .decided
                .iter()
                .filter(|(_, _, t)| *t == Trust::Verified)
                .map(|(d, _, _)| *d)
                .collect(),
        })
    }
}

/// Each key the URI vouches for that is the one we know is to be verified (distrusted, for a
/// `distrust=` key); a different key is a mismatch and no key at all a problem of its own:
/// both are reported, and left as they were.
fn settle(jid: &str, checked: Vec<Checked>, unreadable: &[(u32, String)]) -> Result<Settled> {
    let mut decided = Vec::new();
    let mut problems = Vec::new();
    for Checked { claim, outcome } in checked {
        let trust = if claim.trusted {
            Trust::Verified
        } else {
            Trust::Distrusted
        };
        match outcome {
            None => problems.push(match claim.device {
                Some(device) => Unverified::NoSession(
                    device,
                    crate::error::Because(
                        unreadable
                            .iter()
                            .find(|(d, _)| *d == device)
                            .map(|(_, why)| why.clone()),
                    ),
                ),
                None => Unverified::UnknownKey(claim.key),
            }),
            Some(Outcome::Matches(devices)) => {
                for (device, identity) in devices {
                    if !decided.iter().any(|(d, _, _)| *d == device) {
                        decided.push((device, identity, trust));
                    }
                }
            }
            Some(Outcome::Mismatch(device, identity)) => problems.push(Unverified::Mismatch {
                device,
                held: identity.fingerprint(),
                uri: claim.key,
            }),
        }
    }
    Ok(Settled {
        jid: jid.to_owned(),
        decided,
        problems,
    })
}
