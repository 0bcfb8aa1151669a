//! `hush status`, `hush config` and `hush trust` / `distrust`: what a conversation really has,
//! who can read it, who could add a reader, and the user's switches. All of it works offline,
//! from the store (as of the last send or receive).

use hush_proto::policy::{self, Authentication, Decision, Properties};
use hush_proto::{IdentityKey, Suite};
use hush_store::{SqliteStore, Store, Trust};
use serde_json::{json, Value};

use crate::Fallible;

/// The `security` object of `--json` output.
pub(crate) fn properties_json(p: &Properties) -> Value {
    json!({
        "confidentiality": p.confidentiality,
        "integrity": p.integrity,
        "authentication": p.authentication.name(),
        "forward_secrecy": p.forward_secrecy,
        "deniability": p.deniability,
        "non_repudiation": false,
        "replay_protection": p.replay_protection,
    })
}

/// The trust state's name; a key we have not seen yet counts as undecided.
pub(crate) fn trust_name(t: Option<Trust>) -> &'static str {
    t.map_or("undecided", Trust::as_str)
}

/// `hush status JID`.
pub(crate) fn status(
    store: &SqliteStore,
    jid: &str,
    global_off: bool,
    json_out: bool,
) -> Fallible<()> {
    let e = |e: hush_store::StoreError| e.to_string();
    let account = store
        .account()
        .map_err(e)?
        .ok_or("no account here: run `hush init` first")?;
    let conversation = store.conversation(jid).map_err(e)?;
    // The same rules a send applies (inactive devices left out, the send policy decides),
    // over the device lists the store holds.
    let engine = hush_engine::Engine::new(&account.jid, account.device.clone());
    let next_message = engine
        .next_message(store, jid, global_off, crate::unix_now())
        .map_err(|e| e.to_string())?;
    let known = &next_message.candidates;
    let (next, properties): (String, Properties) = match &next_message.decision {
        Decision::Encrypt { properties, .. } => ("encrypted".into(), *properties),
        Decision::Plaintext { because } => (
            format!(
                "in clear: you switched encryption off {}",
                match because {
                    policy::PlaintextReason::GlobalOff => "for every conversation",
                    _ => "for this conversation",
                }
            ),
            Properties::PLAINTEXT,
        ),
        Decision::Refuse { missing } => (
            format!(
                "refused, nothing would be sent: missing {missing}{}",
                crate::advice::missing_advice(jid, missing)
            ),
            Properties::PLAINTEXT,
        ),
    };
    // Whoever controls an account (or its server, which publishes device lists) can add a
    // device to it. Whether that new device would get the next message depends on the trust
    // policy: blind trust admits it; a conversation that reached strong authentication does not.
    let auto = conversation.policy.min_auth < Authentication::Strong;
    let could_add = [jid, account.jid.as_str()].map(|j| {
        let server = j.rsplit_once('@').map_or(j, |(_, d)| d);
        json!({"account": j, "server": server, "new_devices_read_automatically": auto})
    });
    if json_out {
        let readers_json: Vec<Value> = known
            .iter()
            .map(|k| {
                json!({"jid": k.jid, "device": k.device, "own": k.own,
                       "fingerprint": k.identity.map(|i| i.fingerprint()),
                       "trust": trust_name(k.trust),
                       "reads_next_message": k.reads,
                       "left_out": k.left_out.as_ref().map(crate::advice::obstacle)})
            })
            .collect();
        println!(
            "{}",
            json!({"jid": jid,
                   "encryption": if conversation.policy.off { "off" } else { "on" },
                   "global_encryption": if global_off { "off" } else { "on" },
                   "encrypted_so_far": conversation.policy.encrypted,
                   "min_authentication": conversation.policy.min_auth.name(),
                   "next_message": next,
                   "security": properties_json(&properties),
                   "readers": readers_json,
                   "could_add_a_reader": could_add})
        );
        return Ok(());
    }
    println!(
        "conversation with {jid}: encryption {} (global: {}), {}",
        if conversation.policy.off { "OFF" } else { "on" },
        if global_off { "OFF" } else { "on" },
        if conversation.policy.encrypted {
            "encrypted so far"
        } else {
            "nothing encrypted yet"
        }
    );
    println!("next message: {next}");
    println!(
        "security: confidentiality {}, integrity {}, authentication {} (required: {}), forward secrecy {}, deniability {}, replay protection {}",
        yes(properties.confidentiality),
        yes(properties.integrity),
        properties.authentication,
        conversation.policy.min_auth,
        yes(properties.forward_secrecy),
        yes(properties.deniability),
        yes(properties.replay_protection)
    );
    println!("who can read it:");
    for k in known {
        let left_out = match (&k.left_out, k.reads) {
            (_, true) => String::new(),
            (Some(why), false) => format!(" [left out: {why}]"),
            (None, false) => " [left out]".to_owned(),
        };
        println!(
            "  {} device {} ({}) fingerprint {} trust {}{}",
            k.jid,
            k.device,
            if k.own { "ours" } else { "theirs" },
            k.identity
                .map(|i| i.fingerprint())
                .unwrap_or_else(|| "unknown (no session yet)".into()),
            trust_name(k.trust),
            left_out
        );
    }
    println!(
        "  and this device ({})",
        account.device.identity().public().fingerprint()
    );
    println!("who could add a reader:");
    for j in [jid, account.jid.as_str()] {
        let server = j.rsplit_once('@').map_or(j, |(_, d)| d);
        println!(
            "  whoever controls the account {j} or its server {server}: a new device {}",
            if auto {
                "would be trusted blindly and read the next message"
            } else {
                "would be left out until you verify it"
            }
        );
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

fn hex_only(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `hush trust` / `hush distrust JID DEVICE-OR-FINGERPRINT`: sets the trust of the matching
/// identity key(s) we hold a session with.
pub(crate) fn set_trust(
    store: &mut SqliteStore,
    jid: &str,
    which: &str,
    trust: Trust,
    now: u64,
) -> Fallible<Vec<(u32, String)>> {
    let e = |e: hush_store::StoreError| e.to_string();
    let wanted_fp = hex_only(which);
    let wanted_device = which.parse::<u32>().ok();
    let mut matched = Vec::new();
    for suite in Suite::ALL {
        for (device, session) in store.sessions_of(suite, jid).map_err(e)? {
            let identity = *session.peer_identity();
            let fp = identity.fingerprint();
            let hit = wanted_device == Some(device)
                || (wanted_fp.len() >= 16 && hex_only(&fp) == wanted_fp);
            if hit && !matched.iter().any(|(d, _)| *d == device) {
                store.set_trust(jid, &identity, trust, now).map_err(e)?;
                matched.push((device, fp));
            }
        }
    }
    if matched.is_empty() {
        return Err(format!(
            "no device `{which}` of {jid} with a session here (exchange a message first, then check `hush devices {jid}`)"
        ));
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
pub(crate) fn parse_uri(uri: &str) -> Fallible<(String, Vec<(u32, String)>)> {
    let bad = || {
        format!("`{uri}` is not an OMEMO verification URI (xmpp:JID?omemo-sid-DEVICE=FINGERPRINT)")
    };
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
pub(crate) fn verify(store: &mut SqliteStore, uri: &str, now: u64) -> Fallible<Vec<(u32, String)>> {
    let e = |e: hush_store::StoreError| e.to_string();
    let (jid, keys) = parse_uri(uri)?;
    let mut done = Vec::new();
    let mut problems = Vec::new();
    for (device, hex) in keys {
        let mut held = None;
        for suite in Suite::ALL {
            if let Some((_, s)) = store
                .sessions_of(suite, &jid)
                .map_err(e)?
                .into_iter()
                .find(|(d, _)| *d == device)
            {
                held = Some(*s.peer_identity());
                break;
            }
        }
        match held {
            None => problems.push(format!(
                "device {device}: no session yet (exchange a message first)"
            )),
            Some(identity) if key_matches(&identity, &hex) => {
                store
                    .set_trust(&jid, &identity, Trust::Verified, now)
                    .map_err(e)?;
                done.push((device, identity.fingerprint()));
            }
            Some(identity) => problems.push(format!(
                "device {device}: FINGERPRINT MISMATCH — we hold {}, the URI says {hex}; \
                 not verified (someone may be intercepting)",
                identity.fingerprint()
            )),
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{jid}: {}{}",
            problems.join("; "),
            if done.is_empty() {
                String::new()
            } else {
                format!(
                    " (verified: {:?})",
                    done.iter().map(|(d, _)| d).collect::<Vec<_>>()
                )
            }
        ));
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
