//! `hush status JID`: what the conversation really has, who can read the next message and who
//! could add a reader. Offline, from the store (as of the last send or receive), with the same
//! rules a send applies ([`hush_engine::Engine::next_message`]).

use hush_proto::policy::{Authentication, Decision, PlaintextReason, Properties};
use hush_store::{SqliteStore, Store};
use hush_xmpp::BareJid;
use serde_json::{json, Value};

use super::{account, unix_now};
use crate::advice;
use crate::error::Result;
use crate::home::Home;
use crate::output::{properties_json, trust_name, Printer, Shown};

pub(super) fn run(home: &Home, jid: &BareJid, out: Printer) -> Result<()> {
    let store = home.open_store_to_read()?;
    let global_off = home.config(&store)?.encryption_off;
    out.show(&report(&store, jid, global_off)?)
}

/// The status of the conversation with `jid`, as the store holds it (`global_off`: the
/// account's off switch).
pub(crate) fn report(store: &SqliteStore, jid: &BareJid, global_off: bool) -> Result<Shown> {
    let jid = jid.as_str();
    let account = account(store)?;
    let conversation = store.conversation(jid)?;
    let engine = hush_engine::Engine::new(&account.jid, account.device.clone());
    let next_message = engine.next_message(store, jid, global_off, unix_now())?;
    let known = &next_message.candidates;
    // No device of the contact known: nothing was looked up yet (status is offline), which is
    // not the same as a contact without OMEMO.
    let never_looked = !known.iter().any(|k| !k.own) && {
        let mut none = true;
        for suite in hush_proto::Suite::ALL {
            none &= store.devices(suite, jid)?.is_empty();
        }
        none
    };
    let (next, properties): (String, Properties) = match &next_message.decision {
        Decision::Refuse {
            missing: hush_proto::policy::Missing::NoDevice,
        } if never_looked => (
            format!(
                "not known yet: no device of {jid} is known here (nothing was fetched yet); \
                 the next send fetches its devices, and refuses if it has none"
            ),
            Properties::PLAINTEXT,
        ),
        Decision::Encrypt { properties, .. } => ("encrypted".into(), *properties),
        Decision::Plaintext { because } => (
            format!(
                "in clear: you switched encryption off {}",
                match because {
                    PlaintextReason::GlobalOff => "for every conversation",
                    _ => "for this conversation",
                }
            ),
            Properties::PLAINTEXT,
        ),
        Decision::Refuse { missing } => (
            format!(
                "refused, nothing would be sent: missing {missing}{}",
                advice::missing_advice(jid, missing)
            ),
            Properties::PLAINTEXT,
        ),
    };
    // Whoever controls an account (or its server, which publishes device lists) can add a
    // device to it. Whether that new device would get the next message depends on the trust
    // policy: blind trust admits it until the user verified a key of that account; a
    // conversation that requires strong authentication never does.
    let weak = conversation.policy.min_auth < Authentication::Strong;
    let mut adders = Vec::new();
    for j in [jid, account.jid.as_str()] {
        let verified = store.has_verified_key(j)?;
        adders.push((j, weak && !verified, verified));
    }
    let could_add: Vec<Value> = adders
        .iter()
        .map(|&(j, auto, _)| {
            let server = j.rsplit_once('@').map_or(j, |(_, d)| d);
            json!({"account": j, "server": server, "new_devices_read_automatically": auto})
        })
        .collect();
    let readers_json: Vec<Value> = known
        .iter()
        .map(|k| {
            json!({"jid": k.jid, "device": k.device, "own": k.own,
                   "fingerprint": k.identity.map(|i| i.fingerprint()),
                   "trust": trust_name(k.trust),
                   "reads_next_message": k.reads,
                   "left_out": k.left_out.as_ref().map(advice::obstacle)})
        })
        .collect();
    let security = if never_looked {
        Value::Null
    } else {
        properties_json(&properties)
    };
    let json = json!({"jid": jid,
        "encryption": if conversation.policy.off { "off" } else { "on" },
        "global_encryption": if global_off { "off" } else { "on" },
        "encrypted_so_far": conversation.policy.encrypted,
        "min_authentication": conversation.policy.min_auth.name(),
        "next_message": next,
        "security": security,
        "readers": readers_json,
        "could_add_a_reader": could_add});
    let mut text = vec![
        format!(
            "conversation with {jid}: encryption {} (global: {}), {}",
            if conversation.policy.off { "OFF" } else { "on" },
            if global_off { "OFF" } else { "on" },
            if conversation.policy.encrypted {
                "encrypted so far"
            } else {
                "nothing encrypted yet"
            }
        ),
        format!("next message: {next}"),
        if never_looked {
            format!(
                "security: not known until the devices are (required: {} authentication)",
                conversation.policy.min_auth
            )
        } else {
            format!(
                "security: confidentiality {}, integrity {}, authentication {} (required: {}), \
                 forward secrecy {}, deniability {}, replay protection {}",
                yes(properties.confidentiality),
                yes(properties.integrity),
                properties.authentication,
                conversation.policy.min_auth,
                yes(properties.forward_secrecy),
                yes(properties.deniability),
                yes(properties.replay_protection)
            )
        },
        "who can read it:".to_owned(),
    ];
    for k in known {
        let left_out = match (&k.left_out, k.reads) {
            (_, true) => String::new(),
            (Some(why), false) => format!(" [left out: {}]", advice::obstacle(why)),
            (None, false) => " [left out]".to_owned(),
        };
        text.push(format!(
            "  {} device {} ({}) fingerprint {} trust {}{}",
            k.jid,
            k.device,
            if k.own { "ours" } else { "theirs" },
            k.identity
                .map(|i| i.fingerprint())
                .unwrap_or_else(|| "unknown (no session yet)".into()),
            trust_name(k.trust),
            left_out
        ));
    }
    text.push(format!(
        "  and this device ({})",
        account.device.identity().public().fingerprint()
    ));
    text.push("who could add a reader:".to_owned());
    for (j, auto, verified) in adders {
        let server = j.rsplit_once('@').map_or(j, |(_, d)| d);
        text.push(format!(
            "  whoever controls the account {j} or its server {server}: a new device {}",
            match (auto, verified) {
                (true, _) => "would be trusted blindly and read the next message",
                (false, true) => {
                    "would be left out until you decide (you verified a key of this account, \
                     so new ones are no longer trusted blindly)"
                }
                (false, false) => "would be left out until you verify it",
            }
        ));
    }
    Ok(Shown { json, text })
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}
