//! The user's trust decisions and Automatic Trust Management (XEP-0450) on the wire: a
//! decision is committed with the trust messages it calls for (see [`hush_engine::atm`]), and
//! the queue of trust messages goes out whenever the account is online — after the decision,
//! and after every catch-up, so a message queued offline or before a crash is not lost.

use hush_engine::atm::Applied;
use hush_engine::{Control, ControlReaders, TrustStep, UserDecision};
use hush_proto::sas::SasMessage;
use hush_proto::{Element, Suite};
use hush_store::{Store, TrustSource};

use super::Hush;
use crate::error::{Result, XmppError};
use crate::BareJid;

/// What recording the user's trust decisions did.
#[derive(Debug, Default)]
pub struct TrustDecided {
    /// Keys ATM changed by itself because of them (statements held from a device the user
    /// just verified): `(owner, fingerprint, trust)`.
    pub applied: Vec<Applied>,
    /// Trust messages queued for them.
    pub queued: usize,
    /// Trust messages sent now (the queue's, which may hold older ones).
    pub sent: usize,
}

impl<S: Store> Hush<S> {
    /// Records the user's `decisions` (with the held statements they release) and sends the
    /// trust messages they call for, as far as the connection allows: what cannot go now
    /// stays queued for the next connection. Returns what ATM changed by itself.
    pub async fn decide_trust(&mut self, decisions: &[UserDecision]) -> Result<TrustDecided> {
        self.decide_trust_by(decisions, TrustSource::User).await
    }

    /// [`Self::decide_trust`], recording how the user decided (`source`).
    pub async fn decide_trust_by(
        &mut self,
        decisions: &[UserDecision],
        source: TrustSource,
    ) -> Result<TrustDecided> {
        let now = self.now();
        let step = self
            .engine
            .decide_trust_by(&self.store, decisions, source, now)?;
        let TrustStep {
            transaction,
            applied,
            queued,
        } = step;
        self.store.commit(transaction)?;
        let sent = self.send_trust_messages().await;
        Ok(TrustDecided {
            applied,
            queued,
            sent,
        })
    }

    /// Sends the queued trust messages, each encrypted only for the addressee's verified
    /// devices (and our own verified ones). One that no verified device would read is taken
    /// off the queue unsent; one that fails on the way stays for the next occasion (logged).
    /// Returns how many went out.
    pub async fn send_trust_messages(&mut self) -> usize {
        let queued = match self.store.trust_messages_to_send() {
            Ok(q) => q,
            Err(e) => {
                log::warn!("could not read the queue of trust messages: {e}");
                return 0;
            }
        };
        let mut sent = 0;
        for q in queued {
            match self.send_trust_message(&q.to, &q.element).await {
                Ok(went) => {
                    sent += usize::from(went);
                    if let Err(e) = self.store.trust_message_sent(q.id) {
                        log::warn!("could not take a trust message off the queue: {e}");
                    }
                }
                // What no later attempt can change (a device list too long to write to, a
                // refused downgrade, a protocol error): dropped with a log line, so that one
                // addressee cannot hold up the rest of the queue.
                Err(
                    e @ (XmppError::DeviceListTooLong { .. }
                    | XmppError::NotSent { .. }
                    | XmppError::Protocol(_)
                    | XmppError::Engine(_)),
                ) => {
                    log::warn!("a trust message to {} cannot be sent, dropped: {e}", q.to);
                    if let Err(e) = self.store.trust_message_sent(q.id) {
                        log::warn!("could not take a trust message off the queue: {e}");
                    }
                }
                Err(e) => {
                    log::warn!(
                        "a trust message to {} stays queued for the next connection: {e}",
                        q.to
                    );
                    break;
                }
            }
        }
        sent
    }

    /// Publishes this device's attestations of its identity key (see [`hush_attest`]).
    pub async fn publish_attestations(&mut self, published: &hush_attest::Published) -> Result<()> {
        let device = self.device_id();
        self.xmpp.publish_attestations(device, published).await
    }

    /// What device `device` of `jid` published of its attestations, if anything.
    pub async fn attestations(
        &mut self,
        jid: &BareJid,
        device: u32,
    ) -> Result<Option<hush_attest::Published>> {
        self.xmpp.attestations(jid, device).await
    }

    /// Sends one message of a comparison of short authentication strings to device `device`
    /// of `to` alone, encrypted in OMEMO 2 whatever that device's trust (comparing is how the
    /// user comes to decide), unless the user distrusted it.
    pub async fn send_sas(
        &mut self,
        to: &BareJid,
        device: u32,
        message: &SasMessage,
    ) -> Result<()> {
        let control = Control {
            element: message.to_element(),
            readers: ControlReaders::Device(device),
        };
        if self.send_control(to, control).await? {
            Ok(())
        } else {
            Err(XmppError::CannotCompare {
                jid: to.to_string(),
                device,
            })
        }
    }

    /// One trust message: `Ok(false)` when nobody verified would read it (or it is damaged).
    async fn send_trust_message(&mut self, to: &str, element: &str) -> Result<bool> {
        let Ok(element) = element.parse::<Element>() else {
            log::warn!("dropped a damaged trust message from the queue");
            return Ok(false);
        };
        let Ok(to) = to.parse::<BareJid>() else {
            return Ok(false);
        };
        let control = Control {
            element,
            readers: ControlReaders::Verified,
        };
        self.send_control(&to, control).await
    }

    /// A message of elements only to the readers `control` names: `Ok(false)` when none of
    /// them can read it.
    async fn send_control(&mut self, to: &BareJid, control: Control) -> Result<bool> {
        let now = self.now();
        // ATM is OMEMO 2 only: the OMEMO 2 lists, whatever else the addressee speaks. An
        // account without one has nobody to tell; a list that cannot be read now is tried
        // again later (the message stays queued).
        let their = match self.xmpp.device_list(to, Suite::Omemo2).await {
            Ok(l) => Some((Suite::Omemo2, l.devices.iter().map(|d| d.id).collect())),
            Err(XmppError::NothingPublished { .. }) => None,
            Err(e) => return Err(e),
        };
        let (plan, bundles) = self.plan_with_bundles(to, their, now).await?;
        let prepared =
            self.engine
                .prepare_control(&self.store, plan, control, bundles, now, &mut self.rng)?;
        match prepared {
            Some(message) => {
                let committed = self.commit_and_send(message).await?;
                if let Some(id) = committed.outgoing {
                    self.store.mark_sent(id)?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
