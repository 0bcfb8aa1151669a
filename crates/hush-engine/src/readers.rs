//! Who would read the next message to a contact, from what the store knows, without any
//! network: the devices the contact's and our own stored lists name, each with its key, trust
//! and whether the send rules leave it out (no session yet, silent for longer than the
//! inactivity limit), and the send policy's decision over them. `hush status` shows this; a
//! send decides with the same rules ([`Engine::plan_send`] leaves out the same inactive devices,
//! the same [`policy::decide`] has the last word) over the lists it has just fetched.

use hush_proto::policy::{self, Decision, KeyTrust, Reader};
use hush_proto::{IdentityKey, Suite};
use hush_store::{Store, Trust};

use crate::{Engine, Result};

/// One device that could read the next message.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its account.
    pub jid: String,
    /// The device id.
    pub device: u32,
    /// One of our own other devices (not the contact's).
    pub own: bool,
    /// The identity key our session with it holds; `None` without a session yet (the next
    /// send fetches its bundle).
    pub identity: Option<IdentityKey>,
    /// The trust in that key; without a session, the trust its key would start with.
    pub trust: Option<Trust>,
    /// Why the send rules leave it out, if they do (other than trust, which the policy
    /// decides).
    pub left_out: Option<crate::Obstacle>,
    /// It would get the next message.
    pub reads: bool,
}

/// The next message to a contact, as the store knows it.
#[derive(Debug, Clone)]
pub struct NextMessage {
    /// The suite it would go in: the first in [`Suite::ALL`] order in which the contact lists
    /// devices; `None` when no list of theirs is stored.
    pub suite: Option<Suite>,
    /// The contact's devices, then our own other devices.
    pub candidates: Vec<Candidate>,
    /// What the send policy decides over them.
    pub decision: Decision,
}

impl Engine {
    /// Who would read the next message to `to` (see the module documentation). `global_off`:
    /// the user switched encryption off for every conversation.
    pub fn next_message<S: Store + ?Sized>(
        &self,
        store: &S,
        to: &str,
        global_off: bool,
        now: u64,
    ) -> Result<NextMessage> {
        let mut suite = None;
        for s in Suite::ALL {
            if store.devices(s, to)?.iter().any(|d| d.listed) {
                suite = Some(s);
                break;
            }
        }
        // With no list of theirs, a send goes in OMEMO:2 to our own other devices (and the
        // policy finds nobody of theirs to read it).
        let lists = suite.unwrap_or(Suite::Omemo2);
        // Every listed device, `(jid, device, is the addressee's)`, as a send's plan has them.
        let mut listed = Vec::new();
        for (jid, theirs) in [(to, true), (self.jid.as_str(), false)] {
            for d in store.devices(lists, jid)?.iter().filter(|d| d.listed) {
                let me = jid == self.jid && d.device_id == self.device_id();
                let seen = listed
                    .iter()
                    .any(|(j, id, _)| j == jid && *id == d.device_id);
                if !me && !seen {
                    listed.push((jid.to_owned(), d.device_id, theirs));
                }
            }
        }
        let inactive = self.left_out_inactive(store, lists, to, &listed, now)?;
        let mut candidates = Vec::new();
        for (jid, device, theirs) in listed {
            let identity = store
                .session(&hush_store::SessionKey::new(lists, &jid, device))?
                .map(|s| *s.peer_identity());
            let trust = match &identity {
                Some(i) => store.trust(&jid, i)?,
                // No session yet: a send fetches its bundle and meets its key, which starts as
                // the account's trust model says.
                None => Some(store.first_trust(&jid)?),
            };
            let left_out = inactive
                .iter()
                .find(|((j, d), _)| *j == jid && *d == device)
                .map(|(_, why)| why.clone());
            candidates.push(Candidate {
                jid,
                device,
                own: !theirs,
                identity,
                trust,
                left_out,
                reads: false,
            });
        }
        let readers: Vec<Reader> = candidates
            .iter()
            // As a send has them: a device left out is unusable and has no trust to count.
            .map(|c| Reader {
                jid: c.jid.clone(),
                device: c.device,
                trust: c
                    .left_out
                    .is_none()
                    .then_some(c.trust)
                    .flatten()
                    .map(KeyTrust::from),
                usable: c.left_out.is_none(),
                peer: !c.own,
            })
            .collect();
        let conversation = store.conversation(to)?;
        let decision = policy::decide(&conversation.policy, global_off, false, &readers);
        if let Decision::Encrypt { to: reached, .. } = &decision {
            for c in &mut candidates {
                c.reads = reached.iter().any(|(j, d)| *j == c.jid && *d == c.device);
            }
        }
        Ok(NextMessage {
            suite,
            candidates,
            decision,
        })
    }
}
