//! `hush devices`: a contact's (or our own) devices with fingerprints and trust, and the
//! removal of our own lost devices from our published lists.

use hush_proto::Suite;
use hush_store::{SqliteStore, Store};
use hush_xmpp::{BareJid, Hush};
use serde_json::json;

use super::{account, connect};
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{trust_name, Printer, Shown};

/// `hush devices [JID]`: from the store (offline).
pub(super) fn list(home: &Home, jid: Option<&BareJid>, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    for device in reports(&store, jid)? {
        // The line about this device is for people only.
        if !(out.is_json() && device.json.as_object().is_some_and(|o| o.is_empty())) {
            out.show(&device)?;
        }
    }
    Ok(())
}

/// The devices of `jid` (default: our own account) the store knows, one report each; for our
/// own account, a last one with text only, about this device.
pub(crate) fn reports(store: &SqliteStore, jid: Option<&BareJid>) -> Result<Vec<Shown>> {
    let account = account(store)?;
    let jid = jid.map_or_else(|| account.jid.clone(), ToString::to_string);
    let mut shown = Vec::new();
    // Keys read from published bundles (to verify or trust a device before any session).
    let published = store.published_keys(&jid)?;
    let mut listed = Vec::new();
    for suite in Suite::ALL {
        let sessions = store.sessions_of(suite, &jid)?;
        for d in store.devices(suite, &jid)? {
            listed.push(d.device_id);
            let identity = sessions
                .iter()
                .find(|(id, _)| *id == d.device_id)
                .map(|(_, s)| *s.peer_identity())
                .or_else(|| {
                    published
                        .iter()
                        .find(|(id, _)| *id == d.device_id)
                        .map(|(_, k)| *k)
                });
            let trust = match &identity {
                Some(i) => store.trust(&jid, i)?,
                None => None,
            };
            let fp = identity.map(|i| i.fingerprint());
            let by = decided_by(store, &jid, identity.as_ref(), trust)?;
            shown.push(Shown {
                json: json!({"jid": jid, "device": d.device_id, "ns": suite.name(),
                             "listed": d.listed, "last_seen": d.last_seen, "fingerprint": fp,
                             "trust": trust_name(trust), "decided_by": by.json}),
                text: vec![format!(
                    "{jid} device {} ({suite}){} fingerprint {} trust {}{} last seen {}",
                    d.device_id,
                    if d.listed { "" } else { " [no longer listed]" },
                    fp.as_deref().unwrap_or("unknown (no session yet)"),
                    trust_name(trust),
                    by.text,
                    hush_wire::date::format(d.last_seen)
                )],
            });
        }
    }
    // Devices known only from their published keys (no device list read yet).
    for (device, identity) in published.iter().filter(|(d, _)| !listed.contains(d)) {
        let trust = store.trust(&jid, identity)?;
        let fp = identity.fingerprint();
        let by = decided_by(store, &jid, Some(identity), trust)?;
        shown.push(Shown {
            json: json!({"jid": jid, "device": device, "ns": null, "listed": null,
                         "last_seen": null, "fingerprint": fp, "trust": trust_name(trust),
                         "decided_by": by.json}),
            text: vec![format!(
                "{jid} device {device} fingerprint {fp} trust {}{} (its published keys were \
                 read; no message exchanged yet)",
                trust_name(trust),
                by.text
            )],
        });
    }
    // Devices known only from a session: one that wrote to us without being listed (some
    // clients publish no device list), kept after its list entry and bundle are gone. It
    // gets no keys while unlisted.
    for suite in Suite::ALL {
        for (device, session) in store.sessions_of(suite, &jid)? {
            if listed.contains(&device) || published.iter().any(|(d, _)| *d == device) {
                continue;
            }
            listed.push(device);
            let identity = *session.peer_identity();
            let trust = store.trust(&jid, &identity)?;
            let fp = identity.fingerprint();
            let by = decided_by(store, &jid, Some(&identity), trust)?;
            shown.push(Shown {
                json: json!({"jid": jid, "device": device, "ns": suite.name(),
                             "listed": false, "last_seen": null, "fingerprint": fp,
                             "trust": trust_name(trust), "decided_by": by.json,
                             "known_from": "session"}),
                text: vec![format!(
                    "{jid} device {device} ({suite}) [not listed] fingerprint {fp} trust {}{} \
                     (a session only: it wrote to you, or was listed before; it gets no keys \
                     while {jid} does not list it)",
                    trust_name(trust),
                    by.text
                )],
            });
        }
    }
    if shown.is_empty() && jid != account.jid {
        shown.push(Shown {
            json: json!({}),
            text: vec![format!(
                "no device of {jid} is known here: none listed or published as far as this \
                 device has fetched (a send fetches them), and none with a session"
            )],
        });
    }
    if jid == account.jid {
        shown.push(Shown {
            json: json!({}),
            text: vec![format!(
                "this device: {} fingerprint {}",
                account.device.device_id(),
                account.device.identity().public().fingerprint()
            )],
        });
    }
    Ok(shown)
}

/// Who decided a key's trust, for `hush devices`: nothing for keys no one decided about (blind
/// or undecided as first met), `you` for the user's decisions here, the device whose trust
/// message did it for Automatic Trust Management.
pub(crate) struct DecidedBy {
    pub(crate) json: serde_json::Value,
    pub(crate) text: String,
}

pub(crate) fn decided_by(
    store: &SqliteStore,
    jid: &str,
    identity: Option<&hush_proto::IdentityKey>,
    trust: Option<hush_store::Trust>,
) -> Result<DecidedBy> {
    use hush_store::{Trust, TrustSource};
    let decided = matches!(trust, Some(Trust::Verified | Trust::Distrusted));
    let source = match identity {
        Some(i) if decided => store.trust_source(jid, i)?,
        _ => None,
    };
    Ok(match source {
        None => DecidedBy {
            json: serde_json::Value::Null,
            text: String::new(),
        },
        Some(TrustSource::User) => DecidedBy {
            json: json!("you"),
            text: " (by you)".to_owned(),
        },
        Some(TrustSource::Sas) => DecidedBy {
            json: json!("sas"),
            text: " (by you, comparing short authentication strings)".to_owned(),
        },
        Some(TrustSource::OpenPgp {
            fingerprint,
            user_id,
        }) => DecidedBy {
            text: format!(
                " (by OpenPGP key {fingerprint}{})",
                user_id
                    .as_deref()
                    .map(|u| format!(", {}", crate::terminal::printable(u)))
                    .unwrap_or_default()
            ),
            json: json!({"openpgp": {"fingerprint": fingerprint, "user_id": user_id}}),
        },
        Some(TrustSource::X509 {
            subject,
            anchor,
            anchor_id,
        }) => DecidedBy {
            text: format!(
                " (by X.509 subject {} under {})",
                crate::terminal::printable(&subject),
                crate::terminal::printable(&anchor)
            ),
            json: json!({"x509": {"subject": subject, "anchor": anchor, "anchor_id": anchor_id}}),
        },
        Some(TrustSource::Atm { jid, fingerprint }) => DecidedBy {
            text: format!(" (by a trust message from {jid}, key {fingerprint})"),
            json: json!({"atm": {"jid": jid, "fingerprint": fingerprint}}),
        },
    })
}

/// `hush devices --remove ID…`: takes our lost devices off our published lists.
pub(super) async fn remove(home: &Home, remove: &[u32], out: Printer) -> Result<()> {
    let (mut hush, _) = connect(home).await?;
    let removed = remove_report(&mut hush, remove).await;
    hush.close().await?;
    out.show(&removed?)?;
    Ok(())
}

/// Removes `remove` (devices of ours) from our published device lists and says so.
pub(crate) async fn remove_report(hush: &mut Hush<SqliteStore>, remove: &[u32]) -> Result<Shown> {
    let n = hush.remove_own_devices(remove).await?;
    if n == 0 {
        return Err(CliError::NotListed(remove.to_vec()));
    }
    Ok(Shown {
        json: json!({"removed": remove, "entries": n}),
        text: vec![format!(
            "removed from our device lists: {remove:?} ({n} list entries)"
        )],
    })
}
