//! What the user is told about a failure, and what they can do about it.
//!
//! The library records typed values ([`Failure`] in history, typed errors from sending); only
//! here are they worded for a person, with this program's command lines as the way out.

use hush_proto::policy::Missing;
use hush_store::Failure;
use hush_xmpp::{KeyConcern, Obstacle, Refusal, Warning, XmppError};

/// This account and device: some advice is addressed to the other side ("reset your session
/// with this device") and names them.
#[derive(Clone, Debug)]
pub(crate) struct Me {
    /// Our bare JID.
    pub(crate) jid: String,
    /// This device's id.
    pub(crate) device: u32,
}

/// The sentence shown for `failure`, a message from device `device` of `sender` (for a lost
/// sent message, `sender` is us): what happened, then what to do.
pub(crate) fn failure(failure: &Failure, sender: &str, device: u32, me: &Me) -> String {
    let Me {
        jid: my_jid,
        device: my_device,
    } = me;
    match failure {
        Failure::Undecryptable { detail } => format!(
            "could not decrypt a message from device {device} of {sender}: {detail}. If this \
             repeats, run `hush session reset {sender} {device}`"
        ),
        Failure::NotForThisDevice if sender == my_jid => format!(
            "a message from your device {device} was not encrypted for this device \
             ({my_device}): that device left this one out (it does not know it yet, counts it \
             inactive, or does not trust it). A session reset cannot help: on device {device}, \
             check that it lists and trusts device {my_device} (`hush devices` in Hush)"
        ),
        Failure::NotForThisDevice => format!(
            "a message from device {device} of {sender} was not encrypted for this device \
             ({my_device}): {sender}'s client left it out (it does not know it yet, counts it \
             inactive, or does not trust it). A session reset cannot help: ask {sender} to \
             check that they see and trust device {my_device} of {my_jid} (in Hush: `hush \
             devices {my_jid}`, then `hush trust {my_jid} {my_device}`)"
        ),
        Failure::RetiredKeys { detail } => format!(
            "could not decrypt a message from device {device} of {sender}: {detail}. Its session \
             was built on keys this device no longer keeps; a new session is offered to it, and \
             what it writes from then on reads here. If it keeps failing, ask {sender} to reset \
             their session with {my_jid} device {my_device} (`hush session reset {my_jid} \
             {my_device}` in Hush)"
        ),
        Failure::IdentityChanged { fingerprint } => format!(
            "device {device} of {sender} sent a key exchange with a DIFFERENT identity key \
             ({fingerprint}); it was not accepted and the old session stays. If {sender} really \
             reinstalled, verify the new fingerprint, then run `hush session reset {sender} \
             {device}`"
        ),
        Failure::ForgedKeyExchange { claimed, published } => format!(
            "REFUSED a key exchange claiming to come from device {device} of {sender}: it \
             carries identity key {claimed}, but {sender} publishes {published} for that device. \
             Someone other than {sender} made it (or changed it on the way); nothing of it was \
             read"
        ),
        Failure::StrangerLimit { per_sender, all } => format!(
            "ignored messages and key exchanges from {sender}, whom you never wrote to: the \
             limit for strangers ({per_sender} new sessions or failures per sender, {all} in \
             all, per hour) is reached. If you know them, write to them first; to stop them, \
             `hush config {sender} --blocked on`"
        ),
        Failure::StrangersUnnamed => format!(
            "ignored messages and key exchanges from {sender} and others over their hourly \
             limit: so many senders reached it this hour (a flood?) that they are no longer \
             named one by one; this notice comes once an hour. If you expect someone new, ask \
             them to write again later"
        ),
        Failure::UnlistedDevices { per_sender } => format!(
            "ignored key exchanges from devices of {sender} that {sender} does not list (at \
             most {per_sender} per hour are taken): devices made up by a server look like this. \
             Compare fingerprints with {sender} if they are real"
        ),
        Failure::UnconfirmedKeyExchanges { per_sender } => format!(
            "ignored more key exchanges claiming to come from devices of {sender} whose keys \
             {sender} does not publish (at most {per_sender} per hour are shown): someone is \
             sending them in {sender}'s name"
        ),
        Failure::LostSent { to } => format!(
            "a message this device sent to {to} is on the server but not in this store, which \
             was rolled back; its text is gone"
        ),
        Failure::RolledBack { evidence } => format!("this store was rolled back: {evidence}"),
        // Text stored by an earlier version, advice included.
        Failure::Recorded(text) => text.clone(),
        // A kind this version does not word yet: the library's own description.
        other => other.to_string(),
    }
}

/// The warning shown with a message from device `device` of `sender`.
pub(crate) fn warning(w: &Warning, sender: &str, device: u32) -> String {
    match w {
        Warning::Downgrade => format!(
            "UNENCRYPTED: this message from {sender} came in clear, in a conversation that was \
             encrypted until now; the servers on the way could read or change it"
        ),
        Warning::Sender { unconfirmed, key } => {
            let mut parts = Vec::new();
            if let Some(problem) = unconfirmed {
                parts.push(format!(
                    "UNCONFIRMED SENDER: could not check that device {device} really belongs to \
                     {sender} ({problem}); anyone able to send in {sender}'s name could have \
                     written this. Compare fingerprints with {sender}"
                ));
            }
            parts.push(match key {
                Some(KeyConcern::Distrusted) => format!(
                    "from device {device} of {sender}, whose key you DISTRUSTED; it may not be \
                     {sender}"
                ),
                Some(KeyConcern::NewUnverified) => format!(
                    "from device {device} of {sender}, a NEW device you have not verified, \
                     although you verified others of {sender}; compare fingerprints before \
                     trusting it (`hush verify URI` or `hush trust {sender} {device}`)"
                ),
                Some(KeyConcern::NotVerified) => format!(
                    "from device {device} of {sender}, which is NOT VERIFIED, in a conversation \
                     that requires verified devices; it may not be {sender}"
                ),
                Some(other) => format!("from device {device} of {sender}: {other}"),
                None => String::new(),
            });
            parts.retain(|p| !p.is_empty());
            parts.join("; and ")
        }
        other => other.to_string(),
    }
}

/// Why a device got no key, and what brings it back.
pub(crate) fn obstacle(o: &Obstacle) -> String {
    match o {
        Obstacle::Inactive { .. } => format!("{o} (a message from it brings it back)"),
        _ => o.to_string(),
    }
}

/// Why nothing was sent to `jid`, and what the user can do.
pub(crate) fn refusal(jid: &str, r: &Refusal) -> String {
    let advice = match r {
        Refusal::Policy { missing, .. } => missing_advice(jid, missing),
        Refusal::Downgrade { used, .. } => format!(
            "; if {jid} really moved to a client without {used}, run `hush session reset {jid}`"
        ),
        _ => String::new(),
    };
    let detail = match r {
        Refusal::Policy { missing, devices } if !devices.is_empty() => {
            let devices: Vec<String> = devices
                .iter()
                .map(|(d, state)| match state {
                    hush_xmpp::DeviceState::Unusable(o) => format!("device {d}: {}", obstacle(o)),
                    s => format!("device {d}: {s}"),
                })
                .collect();
            format!("missing {missing} ({})", devices.join("; "))
        }
        other => other.to_string(),
    };
    format!("nothing was sent to {jid}: {detail}{advice}")
}

/// What the user can do when a message to `jid` cannot have `missing` (starting with `; `, or
/// empty).
pub(crate) fn missing_advice(jid: &str, missing: &Missing) -> String {
    match missing {
        Missing::StrongAuthenticationInClear => {
            format!("; lower the requirement first (`hush config {jid} --require-auth weak`)")
        }
        Missing::NoDevice => "; to send in clear, ask for it (`--plaintext`)".to_owned(),
        Missing::NoVerifiedDevice => format!(
            "; verify a fingerprint (`hush verify URI` or `hush trust {jid} DEVICE`), or lower \
             the requirement (`hush config {jid} --require-auth weak`)"
        ),
        Missing::NoTrustedDevice => format!(
            "; decide about its devices: `hush devices {jid}` lists them, `hush trust {jid} \
             DEVICE` trusts one, `hush verify URI` verifies them"
        ),
        _ => String::new(),
    }
}

/// An error of the XMPP layer, with the advice this program adds.
pub(crate) fn xmpp(e: &XmppError) -> String {
    match e {
        XmppError::NotSent { jid, refusal: r } => refusal(jid, r),
        XmppError::InsecureNotLoopback(server) => format!(
            "refusing an unencrypted connection to {server}: --insecure-loopback only allows \
             127.0.0.0/8 and ::1"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Me {
        Me {
            jid: "alice@example.org".into(),
            device: 11,
        }
    }

    #[test]
    fn advice_names_the_command_for_the_sender_and_device() {
        let text = failure(
            &Failure::Undecryptable {
                detail: "bad MAC".into(),
            },
            "bob@example.net",
            7,
            &me(),
        );
        assert!(text.contains("bad MAC"), "{text}");
        assert!(
            text.contains("`hush session reset bob@example.net 7`"),
            "{text}"
        );
    }

    #[test]
    fn a_message_left_out_of_never_advises_a_session_reset() {
        let theirs = failure(&Failure::NotForThisDevice, "bob@example.net", 7, &me());
        let ours = failure(&Failure::NotForThisDevice, "alice@example.org", 12, &me());
        for text in [&theirs, &ours] {
            assert!(!text.contains("`hush session reset"), "{text}");
            assert!(text.contains("cannot help"), "{text}");
        }
        assert!(
            theirs.contains("ask bob@example.net to check that they see and trust device 11"),
            "{theirs}"
        );
        assert!(ours.contains("from your device 12"), "{ours}");
    }

    #[test]
    fn retired_keys_ask_the_sender_to_reset_its_session_with_this_device() {
        let text = failure(
            &Failure::RetiredKeys {
                detail: "signed prekey 3".into(),
            },
            "bob@example.net",
            7,
            &me(),
        );
        assert!(
            text.contains("`hush session reset alice@example.org 11` in Hush"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_send_says_what_to_do() {
        let text = refusal(
            "bob@example.net",
            &Refusal::Policy {
                missing: Missing::NoVerifiedDevice,
                devices: vec![(7, hush_xmpp::DeviceState::NotVerified)],
            },
        );
        assert!(text.starts_with("nothing was sent to bob@example.net: missing strong"));
        assert!(text.contains("device 7: not verified"), "{text}");
        assert!(text.contains("`hush config bob@example.net --require-auth weak`"));
        let text = refusal(
            "bob@example.net",
            &Refusal::Downgrade {
                used: hush_proto::Suite::Omemo2,
                left: hush_proto::Suite::Legacy,
            },
        );
        assert!(
            text.contains("`hush session reset bob@example.net`"),
            "{text}"
        );
    }

    #[test]
    fn a_stranger_is_told_how_to_be_blocked() {
        let text = failure(
            &Failure::StrangerLimit {
                per_sender: 8,
                all: 32,
            },
            "spam@example.com",
            3,
            &me(),
        );
        assert!(text.contains("8 new sessions or failures per sender, 32 in all"));
        assert!(text.contains("`hush config spam@example.com --blocked on`"));
    }
}
