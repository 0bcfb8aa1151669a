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

/// `hush verify URI`: from the store alone when it holds a session with every device the URI
/// names; otherwise connected, to read the others' published keys.
pub(super) async fn run_verify(home: &Home, uri: &str, out: Printer) -> Result<()> {
    let store = home.open_store()?;
    let (_, keys) = claims(&store, uri)?;
    let verified = if keys.iter().all(|k| k.2.is_some()) {
        let mut store = store;
        reports(verify(&mut store, uri, unix_now())?)
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

/// Verifies the devices a verification URI names and reports each: a device we hold no
/// session with (a contact's new device that has not written yet) is checked against the
/// identity key it publishes.
pub(crate) async fn verify_fetching(hush: &mut Hush<SqliteStore>, uri: &str) -> Result<Vec<Shown>> {
    let (jid, mut keys) = claims(hush.store(), uri)?;
    if keys.iter().any(|k| k.2.is_none()) {
        let owner = super::bare(&jid)?;
        for (device, _, held) in keys.iter_mut().filter(|k| k.2.is_none()) {
            match hush.published_identity(&owner, *device).await {
                Ok(identity) => {
                    // Kept, so that `hush devices` shows the key it was checked against.
                    hush.store_mut()
                        .save_published_key(&jid, *device, &identity, unix_now())?;
                    *held = Some(identity);
                }
                Err(e) => log::warn!("the published keys of device {device} of {jid}: {e}"),
            }
        }
    }
    Ok(reports(settle(hush.store_mut(), jid, keys, unix_now())?))
}

fn reports(verified: Vec<(u32, String)>) -> Vec<Shown> {
    verified
        .into_iter()
        .map(|(d, fp)| Shown {
            json: json!({"device": d, "fingerprint": fp, "trust": "verified"}),
            text: vec![format!("device {d} ({fp}): verified")],
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
    format!(
        "xmpp:{jid}?omemo-sid-{device}={}",
        hex_only(&identity.fingerprint())
    )
}

/// The `(device, fingerprint hex)` pairs of a verification URI:
/// `xmpp:JID?omemo-sid-DEVICE=HEX;omemo-sid-DEVICE=HEX` (Conversations' form; `omemo2-sid-`
/// is accepted too). The JID is returned first.
fn parse_uri(uri: &str) -> Result<(String, Vec<(u32, String)>)> {
    let bad = || CliError::BadUri(uri.to_owned());
    let rest = uri.strip_prefix("xmpp:").ok_or_else(bad)?;
    let (jid, query) = rest.split_once('?').ok_or_else(bad)?;
    let mut keys = Vec::new();
    for part in query.split([';', '&']) {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let Some(id) = name
            .strip_prefix("omemo-sid-")
            .or_else(|| name.strip_prefix("omemo2-sid-"))
        else {
            continue;
        };
        let device = id.parse::<u32>().map_err(|_| bad())?;
        let hex = hex_only(value);
        if hex.len() != 64 && hex.len() != 66 {
            return Err(bad());
        }
        keys.push((device, hex));
    }
    if jid.is_empty() || keys.is_empty() {
        return Err(bad());
    }
    Ok((jid.to_owned(), keys))
}

/// Whether `hex` is this identity key: its Curve25519 form (with or without libsignal's 0x05
/// type byte) or its Ed25519 form.
fn key_matches(identity: &IdentityKey, hex: &str) -> bool {
    let to_hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let curve = to_hex(identity.curve25519());
    let hex = hex
        .strip_prefix("05")
        .filter(|h| h.len() == 64)
        .unwrap_or(hex);
    use subtle::ConstantTimeEq;
    let eq = |a: &str, b: &str| a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()));
    eq(&curve, hex) || eq(&to_hex(identity.ed25519()), hex)
}

/// `hush verify URI`: marks each listed device verified if the key we hold for it is the one in
/// the URI; a different key is reported as a mismatch and left as it is.
pub(crate) fn verify(store: &mut SqliteStore, uri: &str, now: u64) -> Result<Vec<(u32, String)>> {
    let (jid, keys) = claims(store, uri)?;
    settle(store, jid, keys, now)
}

/// A device of a verification URI: its id, the key the URI gives (hex), and the identity key
/// we have for it, if any.
type Claim = (u32, String, Option<IdentityKey>);

/// The JID and devices a verification URI names, each with the identity key of our session
/// with it, if we hold one.
fn claims(store: &SqliteStore, uri: &str) -> Result<(String, Vec<Claim>)> {
    let (jid, keys) = parse_uri(uri)?;
    let mut claims = Vec::with_capacity(keys.len());
    for (device, hex) in keys {
        let mut held = None;
        for suite in Suite::ALL {
            if let Some((_, s)) = store
                .sessions_of(suite, &jid)?
                .into_iter()
                .find(|(d, _)| *d == device)
            {
                held = Some(*s.peer_identity());
                break;
            }
        }
        claims.push((device, hex, held));
    }
    Ok((jid, claims))
}

/// Marks verified each claimed device whose key is the one we have for it; a different key is
/// a mismatch, no key at all a problem of its own; both are reported, and left as they were.
fn settle(
    store: &mut SqliteStore,
    jid: String,
    claims: Vec<Claim>,
    now: u64,
) -> Result<Vec<(u32, String)>> {
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for (device, hex, held) in claims {
        match held {
            None => problems.push(Unverified::NoSession(device)),
            Some(identity) if key_matches(&identity, &hex) => {
                store.set_trust(&jid, &identity, Trust::Verified, now)?;
                done.push((device, identity.fingerprint()));
            }
            Some(identity) => problems.push(Unverified::Mismatch {
                device,
                held: identity.fingerprint(),
                uri: hex,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(CliError::NotVerified {
            jid,
            problems,
            verified: done.iter().map(|(d, _)| *d).collect(),
        });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_uris_parse_in_both_spellings() {
        let hex = "ab".repeat(32);
        let (jid, keys) = parse_uri(&format!(
            "xmpp:bob@x?omemo-sid-7={hex};omemo2-sid-9=05{hex}"
        ))
        .unwrap();
        assert_eq!(jid, "bob@x");
        assert_eq!(keys, [(7, hex.clone()), (9, format!("05{hex}"))]);
        for bad in [
            "bob@x",
            "xmpp:bob@x",
            "xmpp:bob@x?omemo-sid-x=aa",
            "xmpp:bob@x?omemo-sid-7=abcd",
            "xmpp:?omemo-sid-7=",
        ] {
            assert!(parse_uri(bad).is_err(), "{bad}");
        }
    }
}
