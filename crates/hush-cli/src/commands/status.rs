//! `hush status JID`: what the conversation really has, who can read the next message and who
//! could add a reader. Offline, from the store (as of the last send or receive), with the same
//! rules a send applies ([`hush_engine::Engine::next_message`]).

use hush_proto::policy::{
    Authentication, Decision, KeyTrust, KeysOnRecord, PlaintextReason, Properties, TrustModel,
};
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
    if let Some(room) = store.room(jid.as_str())? {
        return room_report(store, &room, global_off);
    }
    let jid = jid.as_str();
    let account = account(store)?;
    let conversation = store.conversation(jid)?;
    let engine = hush_engine::Engine::new(&account.jid, account.device.clone());
    let next_message = engine.next_message(store, jid, global_off, unix_now())?;
    let known = &next_message.candidates;
    // Devices of a contact who lists none, known from sessions (see `hush devices`).
    let writers = super::send::unlisted_writers(store, jid)?;
    // No device of the contact known: nothing was looked up yet (status is offline), which is
    // not the same as a contact without OMEMO.
    let never_looked = writers.is_empty() && !known.iter().any(|k| !k.own) && {
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
        Decision::Refuse {
            missing: hush_proto::policy::Missing::NoDevice,
        } if !writers.is_empty() => (
            format!(
                "refused, nothing would be sent: {jid} lists no OMEMO device, although this \
                 device holds a session with their {} (one that wrote to you, or that they \
                 listed before); Hush encrypts only to the devices a contact lists",
                super::send::devices_in_words(&writers)
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
        let model = TrustModelShown::of(store, j)?;
        adders.push((j, weak && model.blind_next, model));
    }
    let could_add: Vec<Value> = adders
        .iter()
        .map(|(j, auto, model)| {
            let server = j.rsplit_once('@').map_or(*j, |(_, d)| d);
            json!({"account": j, "server": server, "new_devices_read_automatically": auto,
                   "trust_model": model.json()})
        })
        .collect();
    let model = &adders[0].2;
    let mut decided = Vec::with_capacity(known.len());
    for k in known {
        decided.push(super::devices::decided_by(
            store,
            &k.jid,
            k.identity.as_ref(),
            k.trust,
        )?);
    }
    let readers_json: Vec<Value> = known
        .iter()
        .zip(&decided)
        .map(|(k, by)| {
            json!({"jid": k.jid, "device": k.device, "own": k.own,
                   "fingerprint": k.identity.map(|i| i.fingerprint()),
                   "trust": trust_name(k.trust), "decided_by": by.json,
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
        "trust_model": model.json(),
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
        format!("trust model: {}", model.line()),
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
    for (k, by) in known.iter().zip(&decided) {
        let left_out = match (&k.left_out, k.reads) {
            (_, true) => String::new(),
            (Some(why), false) => format!(" [left out: {}]", advice::obstacle(why)),
            (None, false) => " [left out]".to_owned(),
        };
        text.push(format!(
            "  {} device {} ({}) fingerprint {} trust {}{}{}",
            k.jid,
            k.device,
            if k.own { "ours" } else { "theirs" },
            k.identity
                .map(|i| i.fingerprint())
                .unwrap_or_else(|| "unknown (no session yet)".into()),
            trust_name(k.trust),
            by.text,
            left_out
        ));
    }
    text.push(format!(
        "  and this device ({})",
        account.device.identity().public().fingerprint()
    ));
    text.push("who could add a reader:".to_owned());
    for (j, auto, model) in &adders {
        let server = j.rsplit_once('@').map_or(*j, |(_, d)| d);
        text.push(format!(
            "  whoever controls the account {j} or its server {server}: a new device {}",
            match (auto, model.blind_next) {
                (true, _) => "would be trusted blindly and read the next message".to_owned(),
                (false, false) => format!(
                    "would be left out until you decide ({}: {})",
                    model.model,
                    model.model.new_device_rule(model.known)
                ),
                (false, true) => "would be left out until you verify it".to_owned(),
            }
        ));
    }
    Ok(Shown { json, text })
}

/// The trust model that applies to one account, and what it does with its next new device.
pub(crate) struct TrustModelShown {
    /// The model.
    pub(crate) model: TrustModel,
    /// The contact has a model of its own (else the account's applies).
    pub(crate) own: bool,
    /// What is on record about its keys.
    pub(crate) known: KeysOnRecord,
    /// A new device of it would start blindly trusted.
    pub(crate) blind_next: bool,
}

impl TrustModelShown {
    /// The model that applies to `jid`, as the store holds it.
    pub(crate) fn of(store: &SqliteStore, jid: &str) -> Result<Self> {
        let model = store.trust_model(jid)?;
        let known = store.keys_on_record(jid)?;
        Ok(Self {
            model,
            own: store.conversation(jid)?.trust_model.is_some(),
            known,
            blind_next: model.first_trust(known) == KeyTrust::Blind,
        })
    }

    /// `"tofu (this contact's): …"`.
    pub(crate) fn line(&self) -> String {
        format!(
            "{} ({}): {}",
            self.model,
            if self.own {
                "this contact's"
            } else {
                "the account's"
            },
            self.model.new_device_rule(self.known)
        )
    }

    pub(crate) fn json(&self) -> Value {
        json!({"name": self.model.name(), "set_for": if self.own { "contact" } else { "account" },
               "new_devices": if self.blind_next { "trusted_blindly" } else { "wait_for_decision" }})
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

/// The status of a joined room: whether it may have encrypted messages, every device that
/// would read the next one (per member, as the store knows them: the next send reads the
/// member list and device lists again), and who could add a reader.
fn room_report(store: &SqliteStore, room: &hush_store::Room, global_off: bool) -> Result<Shown> {
    use hush_store::Trust;
    let account = account(store)?;
    let engine = hush_engine::Engine::new(&account.jid, account.device.clone());
    let conversation = store.conversation(&room.jid)?;
    let strong = conversation.policy.min_auth >= Authentication::Strong;
    let (next, encrypted) = if conversation.policy.off || global_off {
        ("in clear: you switched encryption off".to_owned(), false)
    } else {
        match engine.secure_room(store, &room.jid) {
            Ok(_) => (
                "encrypted, for every device below that reads it".to_owned(),
                true,
            ),
            Err(hush_engine::EngineError::NotSent { refusal, .. }) => {
                (format!("refused, nothing would be sent: {refusal}"), false)
            }
            Err(e) => return Err(e.into()),
        }
    };
    let now = unix_now();
    let mut readers = Vec::new();
    let mut text = vec![
        format!(
            "room {} (you are {}): {}, {}, member list {}",
            room.jid,
            room.nick,
            if room.config.members_only {
                "members-only"
            } else {
                "OPEN TO NON-MEMBERS"
            },
            if room.config.non_anonymous {
                "non-anonymous"
            } else {
                "ANONYMOUS"
            },
            if room.members_known {
                "known"
            } else {
                "NOT SHOWN"
            }
        ),
        format!("next message: {next}"),
        "who can read it (as last seen; the next send reads the member list again):".to_owned(),
    ];
    let mut own_done = false;
    // Devices that read the next message, and how many of them are verified.
    let mut reading = (0usize, 0usize);
    let mut members: Vec<(&str, Option<hush_store::Affiliation>)> = room
        .members
        .iter()
        .filter(|m| m.jid != account.jid)
        .map(|m| (m.jid.as_str(), Some(m.affiliation)))
        .collect();
    members.push((account.jid.as_str(), room.affiliation(&account.jid)));
    for (member, affiliation) in &members {
        let next_message = engine.next_message(store, member, false, now)?;
        let own_account = *member == account.jid;
        let devices: Vec<_> = next_message
            .candidates
            .iter()
            .filter(|c| c.own == own_account && !(own_account && own_done))
            .collect();
        own_done |= own_account;
        let role = affiliation.map_or("not affiliated", |a| a.as_str());
        if devices.is_empty() && !own_account {
            text.push(format!(
                "  {member} ({role}): no device known yet (fetched at the next send)"
            ));
        }
        for c in devices {
            let reads = c.left_out.is_none()
                && c.trust != Some(Trust::Distrusted)
                && (!strong || c.trust == Some(Trust::Verified));
            if reads {
                reading.0 += 1;
                reading.1 += usize::from(c.trust == Some(Trust::Verified));
            }
            readers.push(
                json!({"jid": c.jid, "affiliation": affiliation.map(|a| a.as_str()),
                "device": c.device, "fingerprint": c.identity.map(|i| i.fingerprint()),
                "trust": trust_name(c.trust), "reads_next_message": reads}),
            );
            text.push(format!(
                "  {} ({role}) device {} fingerprint {} trust {}{}",
                c.jid,
                c.device,
                c.identity
                    .map(|i| i.fingerprint())
                    .unwrap_or_else(|| "unknown (no session yet)".into()),
                trust_name(c.trust),
                if reads { "" } else { " [left out]" }
            ));
        }
    }
    text.push(format!(
        "  and this device ({})",
        account.device.identity().public().fingerprint()
    ));
    // As for a contact: strong authentication only when every reader's key is verified.
    let properties = match (encrypted, reading) {
        (false, _) => Some(Properties::PLAINTEXT),
        (true, (0, _)) => None,
        (true, (all, verified)) => Some(Properties::omemo(if verified == all {
            Authentication::Strong
        } else {
            Authentication::Weak
        })),
    };
    text.insert(
        2,
        match &properties {
            None => format!(
                "security: not known until the members' devices are (required: {} \
                 authentication)",
                conversation.policy.min_auth
            ),
            Some(p) => format!(
                "security: confidentiality {}, integrity {}, authentication {} (required: {}), \
                 forward secrecy {}, deniability {}, replay protection {}",
                yes(p.confidentiality),
                yes(p.integrity),
                p.authentication,
                conversation.policy.min_auth,
                yes(p.forward_secrecy),
                yes(p.deniability),
                yes(p.replay_protection)
            ),
        },
    );
    let service = room
        .jid
        .rsplit_once('@')
        .map_or(room.jid.as_str(), |(_, d)| d);
    let admins: Vec<&str> = room
        .members
        .iter()
        .filter(|m| m.affiliation.can_add_members())
        .map(|m| m.jid.as_str())
        .collect();
    text.push("who could add a reader:".to_owned());
    text.push(format!(
        "  the room's owners and admins ({}): a new member gets the keys of every message from \
         the next one on",
        admins.join(", ")
    ));
    text.push(format!(
        "  the room service {service}: it gives the member list; a member it adds gets the keys \
         of the next message (`hush status` lists them)"
    ));
    let mut adders = Vec::new();
    for (member, _) in &members {
        let server = member.rsplit_once('@').map_or(*member, |(_, d)| d);
        let auto = !strong && TrustModelShown::of(store, member)?.blind_next;
        adders.push(json!({"account": member, "server": server,
                           "new_devices_read_automatically": auto}));
        text.push(format!(
            "  whoever controls {member} or its server {server}: a new device {}",
            if auto {
                "would be trusted blindly and read the next message"
            } else {
                "would be left out until you verify it"
            }
        ));
    }
    let json = json!({"jid": room.jid, "room": true, "nick": room.nick,
        "members_only": room.config.members_only, "non_anonymous": room.config.non_anonymous,
        "members_known": room.members_known,
        "encryption": if conversation.policy.off { "off" } else { "on" },
        "global_encryption": if global_off { "off" } else { "on" },
        "min_authentication": conversation.policy.min_auth.name(),
        "next_message": next,
        "security": properties.as_ref().map(properties_json),
        "readers": readers,
        "could_add_a_reader": {"owners_and_admins": admins, "room_service": service,
                               "accounts": adders}});
    Ok(Shown { json, text })
}
