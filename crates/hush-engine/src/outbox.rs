//! What a previous run stored but did not send.
//!
//! The shell commits a message (its sessions, history and outbox entry) before it transmits
//! it, so a crash in between leaves the entry pending. On the next connection it is sent as
//! stored — the same `<encrypted/>` element and origin id, never encrypted again — so no
//! message key encrypts two different ciphertexts and a receiver that got it after all
//! recognises the copy. A message the user once asked to send in clear is not sent later by
//! itself: the settings may have changed since (encryption back on, the contact blocked).

use hush_proto::{Element, EncryptedElement};
use hush_store::Store;

use crate::{Engine, MessageStanza, Result};

/// One pending outbox entry, and what to do with it.
#[derive(Debug, Clone)]
pub enum Resend {
    /// Send this stanza, then mark entry `id` sent.
    Encrypted {
        /// The outbox entry.
        id: i64,
        /// The message: to the stored recipient, with the element exactly as stored and the
        /// origin id it was stored with (or one made from the entry id).
        stanza: MessageStanza,
    },
    /// A message in clear: not sent; mark entry `id` sent and tell the user.
    DropInClear {
        /// The outbox entry.
        id: i64,
        /// Whom it was for.
        to: String,
    },
    /// An entry that cannot be sent as it is (an unreadable element): left in the outbox,
    /// and the user is told why.
    Unreadable {
        /// The outbox entry.
        id: i64,
        /// Whom it was for.
        to: String,
    },
}

/// The wrapper of a control message's element in the outbox (Hush's own, never sent).
pub(crate) const NS_CONTROL: &str = "urn:hush:outbox:control:0";

impl Engine {
    /// The outbox entries a previous run left pending, in order, each with what to do.
    pub fn pending_resends<S: Store + ?Sized>(&self, store: &S) -> Result<Vec<Resend>> {
        Ok(store
            .pending()?
            .into_iter()
            .map(|p| {
                let (id, to) = (p.id, p.peer);
                if !p.encrypted {
                    return Resend::DropInClear { id, to };
                }
                let origin_id = p.origin_id.unwrap_or_else(|| format!("hush-outbox-{id}"));
                let parsed = std::str::from_utf8(&p.stanza)
                    .ok()
                    .and_then(|s| s.parse::<Element>().ok());
                let stanza = match parsed {
                    // A room message is stored whole: its elements, one per suite.
                    Some(e) if e.name() == "message" => {
                        let elements: Option<Vec<EncryptedElement>> = e
                            .children()
                            .filter(|c| c.name() == "encrypted")
                            .map(|c| EncryptedElement::from_element(c).ok())
                            .collect();
                        elements
                            .filter(|e| !e.is_empty())
                            .map(|e| MessageStanza::to_room(&to, e, origin_id))
                    }
                    // A control message: its element, wrapped.
                    Some(e) if e.is("control", NS_CONTROL) => e
                        .children()
                        .next()
                        .and_then(|c| EncryptedElement::from_element(c).ok())
                        .map(|element| MessageStanza::control(&to, element, origin_id)),
                    Some(e) => EncryptedElement::from_element(&e)
                        .ok()
                        .map(|element| MessageStanza::encrypted(&to, element, origin_id)),
                    None => None,
                };
                match stanza {
                    Some(stanza) => Resend::Encrypted { id, stanza },
                    None => Resend::Unreadable { id, to },
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_proto::Suite;
    use hush_store::{MemoryStore, MessageIds, Outgoing, Transaction};
    use rand::SeedableRng;

    fn outgoing(stanza: Vec<u8>, encrypted: bool, origin_id: Option<&str>) -> Transaction {
        Transaction {
            outgoing: Some((
                Vec::new(),
                Outgoing {
                    ids: MessageIds {
                        origin_id: origin_id.map(str::to_owned),
                        ..MessageIds::default()
                    },
                    peer: "you@y".into(),
                    sender: "me@x".into(),
                    sender_device: 3,
                    suite: Suite::Omemo2,
                    at: 6,
                    body: b"hi".to_vec(),
                    encrypted,
                    stanza,
                },
            )),
            ..Transaction::default()
        }
    }

    #[test]
    fn pending_entries_are_resent_as_stored_and_clear_ones_dropped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let local = hush_proto::LocalDevice::generate(3, 1, 0, &mut rng).unwrap();
        let peer = hush_proto::LocalDevice::generate(4, 1, 0, &mut rng).unwrap();
        let mut store = MemoryStore::default();
        store.create_account("me@x", &local).unwrap();
        let engine = Engine::new("me@x", local.clone());
        let mut session =
            hush_proto::Session::initiate(local.identity(), &peer.bundle(Suite::Omemo2), &mut rng)
                .unwrap();
        let element = hush_proto::seal(
            Suite::Omemo2,
            3,
            Some(b"sealed"),
            &mut [hush_proto::Recipient {
                jid: "you@y",
                device_id: 4,
                session: &mut session,
            }],
            &mut rng,
        )
        .unwrap();
        let bytes = String::from(&element.to_element()).into_bytes();
        store.commit(outgoing(bytes, true, Some("o-1"))).unwrap();
        store.commit(outgoing(b"hi".to_vec(), false, None)).unwrap();
        store
            .commit(outgoing(b"<not-omemo/>".to_vec(), true, None))
            .unwrap();
        let resends = engine.pending_resends(&store).unwrap();
        assert_eq!(resends.len(), 3);
        assert!(
            matches!(&resends[0], Resend::Encrypted { stanza, .. }
                if matches!(stanza.content(), crate::Wire::Encrypted(e) if *e == element)
                    && stanza.origin_id() == "o-1" && stanza.to() == "you@y"),
            "{resends:?}"
        );
        assert!(matches!(&resends[1], Resend::DropInClear { to, .. } if to == "you@y"));
        assert!(matches!(&resends[2], Resend::Unreadable { .. }));
    }
}
