//! `hush trust`, `hush distrust` and `hush verify`: the user's decisions about contacts' keys,
//! by device id, by fingerprint, or from a verification URI (what a QR code holds).

use hush_proto::{IdentityKey, Suite};
use hush_store::{SqliteStore, Store, Trust};
use hush_xmpp::{BareJid, Hush};
use serde_json::json;

use super::unix_now;
use crate::error::{CliError, Result, Unverified};
use crate::home::Home;
use crate::output::{trust_name, Printer, Shown};
use crate::verification::{self, Claim, VerificationUri};

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
    let decided = match decide(&mut store, jid, which, trust) {
        Err(CliError::NoSuchDevice { .. } | CliError::NoSuchFingerprint { .. }) => {
            drop(store);
            let (mut hush, _) = super::connect(home).await?;
            let decided = decide_fetching(&mut hush, jid, which, trust).await;
            hush.close().await?;
            decided?
        }
        other => other?,
    };
    for d in decided {
        out.show(&d)?;
    }
    Ok(())
}

/// [`decide`], and when no device we hold a session with matches, the devices `jid` publishes
/// (their keys read from their bundles): a contact's device can be trusted or refused before
/// it ever wrote.
pub(crate) async fn decide_fetching(
    hush: &mut Hush<SqliteStore>,
    jid: &BareJid,
    which: &str,
    trust: Trust,
) -> Result<Vec<Shown>> {
    let none = match decide(hush.store_mut(), jid, which, trust) {
        Err(e @ (CliError::NoSuchDevice { .. } | CliError::NoSuchFingerprint { .. })) => e,
        other => return other,
    };
    let wanted_fp = hex_only(which);
    let wanted_device = which.parse::<u32>().ok();
    let devices = match wanted_device {
        Some(d) => vec![d],
        None => hush.published_devices(jid).await?,
    };
    let owner = jid.to_string();
    let now = unix_now();
    let mut decided = Vec::new();
    for device in devices {
        let Ok(identity) = hush.published_identity(jid, device).await else {
            continue;
        };
        hush.store_mut()
            .save_published_key(&owner, device, &identity, now)?;
        let fp = identity.fingerprint();
        if wanted_device == Some(device) || (wanted_fp.len() >= 16 && hex_only(&fp) == wanted_fp) {
            hush.store_mut().set_trust(&owner, &identity, trust, now)?;
            decided.push(decision(&owner, device, &fp, trust));
        }
    }
    if decided.is_empty() {
        return Err(none);
    }
    Ok(decided)
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

/// Sets the trust of `jid`'s device(s) matching `which` (an id or a fingerprint) and reports
/// each.
pub(crate) fn decide(
    store: &mut SqliteStore,
    jid: &BareJid,
    which: &str,
    trust: Trust,
) -> Result<Vec<Shown>> {
    let jid = jid.to_string();
    Ok(set_trust(store, &jid, which, trust, unix_now())?
        .into_iter()
        .map(|(d, fp)| decision(&jid, d, &fp, trust))
        .collect())
}

/// `hush verify URI`: from the store alone when it knows every key the URI names; otherwise
/// connected, to read the others' published keys.
pub(super) async fn run_verify(home: &Home, uri: &str, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    let read = verification::parse(uri)?;
    let offline = check(&store, &read)?;
    let verified = if offline.iter().all(|c| c.outcome.is_some()) {
        drop(store);
        let mut store = home.open_store()?;
        let checked = check(&store, &read)?;
        reports(settle(&mut store, &read.jid, checked, unix_now())?)
    } else {
        drop(store);
        let (mut hush, _) = super::connect(home).await?;
        let verified = verify_fetching(&mut hush, uri).await;
        hush.close().await?;
        verified?
    };
    for v in verified {
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
                Err(e) => log::warn!("the published keys of device {device} of {}: {e}", read.jid),
            }
        }
    }
    let checked = check(hush.store(), &read)?;
    Ok(reports(settle(
        hush.store_mut(),
        &read.jid,
        checked,
        unix_now(),
    )?))
}

fn reports(decided: Vec<(u32, String, Trust)>) -> Vec<Shown> {
    decided
        .into_iter()
        .map(|(d, fp, trust)| Shown {
            json: json!({"device": d, "fingerprint": fp, "trust": trust_name(Some(trust))}),
            text: vec![format!("device {d} ({fp}): {}", trust_name(Some(trust)))],
        })
        .collect()
}

fn hex_only(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `hush trust` / `hush distrust JID DEVICE-OR-FINGERPRINT`: sets the trust of the matching
/// identity key(s) we hold a session with.
fn set_trust(
    store: &mut SqliteStore,
    jid: &str,
    which: &str,
    trust: Trust,
    now: u64,
) -> Result<Vec<(u32, String)>> {
    let wanted_fp = hex_only(which);
    let wanted_device = which.parse::<u32>().ok();
    let mut matched = Vec::new();
    for suite in Suite::ALL {
        for (device, session) in store.sessions_of(suite, jid)? {
            let identity = *session.peer_identity();
            let fp = identity.fingerprint();
            let hit = wanted_device == Some(device)
                || (wanted_fp.len() >= 16 && hex_only(&fp) == wanted_fp);
            if hit && !matched.iter().any(|(d, _)| *d == device) {
                store.set_trust(jid, &identity, trust, now)?;
                matched.push((device, fp));
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

/// `hush verify URI` from the store alone: settles each key the URI names as far as the store
/// knows it (see [`settle`]).
pub(crate) fn verify(
    store: &mut SqliteStore,
    uri: &str,
    now: u64,
) -> Result<Vec<(u32, String, Trust)>> {
    let read = verification::parse(uri)?;
    let checked = check(store, &read)?;
    settle(store, &read.jid, checked, now)
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

/// Marks verified each key the URI vouches for that is the one we know (distrusted, for a
/// `distrust=` key); a different key is a mismatch and no key at all a problem of its own: both
/// are reported, and left as they were.
fn settle(
    store: &mut SqliteStore,
    jid: &str,
    checked: Vec<Checked>,
    now: u64,
) -> Result<Vec<(u32, String, Trust)>> {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for Checked { claim, outcome } in checked {
        let trust = if claim.trusted {
            Trust::Verified
        } else {
            Trust::Distrusted
        };
        match outcome {
            None => problems.push(match claim.device {
                Some(device) => Unverified::NoSession(device),
                None => Unverified::UnknownKey(claim.key),
            }),
            Some(Outcome::Matches(devices)) => {
                for (device, identity) in devices {
                    store.set_trust(jid, &identity, trust, now)?;
                    done.push((device, identity.fingerprint(), trust));
                }
            }
            Some(Outcome::Mismatch(device, identity)) => problems.push(Unverified::Mismatch {
                device,
                held: identity.fingerprint(),
                uri: claim.key,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::NotVerified {
            jid: jid.to_owned(),
            problems,
            verified: done.iter().map(|(d, _, _)| *d).collect(),
        });
    }
    Ok(done)
}
