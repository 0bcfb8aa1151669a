//! Comparisons of short authentication strings ([`hush_proto::sas`]) on the wire: the four
//! messages go to the one device being compared, encrypted in OMEMO 2 (see
//! [`Hush::send_sas`]); each side's words bind the identity key its session holds for the
//! other. When the user says the words match, the other device's key is verified, with
//! "short authentication string" as the reason, and the trust messages of Automatic Trust
//! Management follow as for any verification.

use hush_engine::SasArrival;
use hush_proto::sas::{Party, Sas, SasCode, SasError, SasMessage};
use hush_proto::Suite;
use hush_store::{SessionKey, Store, Trust, TrustSource};

use super::Hush;
use crate::error::{Result, XmppError};
use crate::{BareJid, TrustDecided, UserDecision};

/// A comparison in progress on this device.
#[derive(Debug)]
pub struct Comparison {
    sas: Sas,
    peer: BareJid,
}

impl Comparison {
    /// The other device: its account, id and the identity key its session holds.
    pub fn them(&self) -> &Party {
        self.sas.them()
    }

    /// The words to compare, once both sides' keys are in.
    pub fn code(&self) -> Option<&SasCode> {
        self.sas.code()
    }

    /// The exchange's id.
    pub fn id(&self) -> &str {
        self.sas.id()
    }
}

impl<S: Store> Hush<S> {
    /// This device, as a party of a comparison.
    fn sas_self(&self) -> Result<Party> {
        let account = self.store.account()?.ok_or(XmppError::NoAccount)?;
        Ok(Party {
            jid: self.jid.to_string(),
            device: account.device.device_id(),
            identity: *account.device.identity().public(),
        })
    }

    /// The identity key our OMEMO 2 session with `device` of `jid` holds, if any.
    fn session_identity(
        &self,
        jid: &BareJid,
        device: u32,
    ) -> Result<Option<hush_proto::IdentityKey>> {
        Ok(self
            .store
            .session(&SessionKey::new(Suite::Omemo2, jid.as_str(), device))?
            .map(|s| *s.peer_identity()))
    }

    /// Starts comparing with device `device` of `jid`: sends it `start`. Its identity key is
    /// the one of our OMEMO 2 session with it (built from its bundle first, if need be).
    pub async fn sas_start(&mut self, jid: &BareJid, device: u32) -> Result<Comparison> {
        let us = self.sas_self()?;
        let identity = match self.session_identity(jid, device)? {
            Some(identity) => identity,
            None => self.published_identity(jid, device).await?,
        };
        let them = Party {
            jid: jid.to_string(),
            device,
            identity,
        };
        let (sas, start) = Sas::start(us, them, &mut self.rng);
        self.send_sas(jid, device, &start).await?;
        // The session the start went on must hold the key the words will bind.
        if self
            .session_identity(jid, device)?
            .is_some_and(|held| !held.same_identity(&identity))
        {
            return Err(XmppError::Comparison(SasError::CommitmentMismatch));
        }
        Ok(Comparison {
            sas,
            peer: jid.clone(),
        })
    }

    /// Answers a `start` that arrived (the user agreed to compare): sends `accept`.
    pub async fn sas_accept(&mut self, arrival: &SasArrival) -> Result<Comparison> {
        let SasMessage::Start { id } = &arrival.message else {
            return Err(XmppError::Comparison(SasError::OutOfOrder {
                expected: "start",
                got: "another step",
            }));
        };
        let peer: BareJid = arrival
            .from
            .jid
            .parse()
            .map_err(|_| XmppError::BadJid(arrival.from.jid.clone()))?;
        let us = self.sas_self()?;
        let (sas, accept) = Sas::accept(us, arrival.from.clone(), id, &mut self.rng)?;
        self.send_sas(&peer, arrival.from.device, &accept).await?;
        Ok(Comparison { sas, peer })
    }

    /// Takes a comparison message that arrived: `Ok(false)` when it belongs to another
    /// comparison or device; otherwise it is applied and the next step sent. A tampered or
    /// cancelled exchange is an error (the other side is told, unless it cancelled).
    pub async fn sas_continue(
        &mut self,
        comparison: &mut Comparison,
        arrival: &SasArrival,
    ) -> Result<bool> {
        let them = comparison.sas.them();
        let same_device = arrival.from.jid == them.jid
            && arrival.from.device == them.device
            && arrival.from.identity.same_identity(&them.identity);
        if !same_device || arrival.message.id() != comparison.sas.id() {
            return Ok(false);
        }
        let device = them.device;
        match comparison.sas.receive(&arrival.message) {
            Ok(Some(reply)) => {
                self.send_sas(&comparison.peer, device, &reply).await?;
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(e) => {
                if !matches!(e, SasError::Cancelled(_)) {
                    let cancel = SasMessage::Cancel {
                        id: comparison.sas.id().to_owned(),
                        reason: "protocol".into(),
                    };
                    if let Err(send) = self.send_sas(&comparison.peer, device, &cancel).await {
                        log::warn!("could not cancel the comparison: {send}");
                    }
                }
                Err(XmppError::Comparison(e))
            }
        }
    }

    /// The user saw the same words on both devices: the other device's key is verified (by a
    /// short authentication string), and Automatic Trust Management tells the others.
    pub async fn sas_confirm(&mut self, comparison: Comparison) -> Result<TrustDecided> {
        if comparison.code().is_none() {
            return Err(XmppError::Comparison(SasError::OutOfOrder {
                expected: "both keys",
                got: "a confirmation",
            }));
        }
        let them = comparison.sas.them();
        let decision = UserDecision {
            jid: them.jid.clone(),
            identity: them.identity,
            trust: Trust::Verified,
        };
        self.decide_trust_by(&[decision], TrustSource::Sas).await
    }

    /// Gives up a comparison (the words differ, or the user declined): the other device is
    /// told why (`mismatch`, `declined`, `timeout`), and nothing is verified.
    pub async fn sas_cancel(&mut self, comparison: Comparison, reason: &str) -> Result<()> {
        let cancel = SasMessage::Cancel {
            id: comparison.sas.id().to_owned(),
            reason: reason.to_owned(),
        };
        let device = comparison.sas.them().device;
        self.send_sas(&comparison.peer, device, &cancel).await
    }
}
