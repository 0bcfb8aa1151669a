//! Device lists: what a pushed list records, the lists this device publishes (announcing
//! itself, staying listed, removing other devices of the account on request), and device-id
//! collisions.
//!
//! XEP-0384 asks every device in use to keep itself in its account's list, to check before
//! announcing that no other device of the account uses its id, and leaves removing devices to
//! the user. The shell reads and publishes the lists; these functions decide what to publish
//! and what to record, so the rules run without a server.

use hush_proto::{Bundle, DeviceEntry, DeviceList, Suite};
use hush_store::{DeviceListUpdate, Store, Transaction};

use crate::{Engine, EngineError, Result, MAX_LISTED_DEVICES};

/// What a device list pushed by the server leads to.
#[derive(Debug, Default)]
#[must_use = "commit the transaction, then re-add this device if asked"]
pub struct ListStep {
    /// The list as recorded (empty when the list is not kept).
    pub transaction: Transaction,
    /// Our own list no longer names this device: read the list the server has in this suite
    /// and publish it with this device added (see [`Engine::listing_self`]).
    pub re_add_self: Option<Suite>,
}

impl Engine {
    /// A device list of `jid` the server pushed (a PEP notification). Only our own lists and
    /// our contacts' are kept: anyone can send a message that looks like a notification, and
    /// each id would become a stored row. A list longer than any real account has is not kept
    /// either.
    pub fn device_list_pushed<S: Store + ?Sized>(
        &self,
        store: &S,
        jid: &str,
        list: &DeviceList,
        now: u64,
    ) -> Result<ListStep> {
        let own = jid == self.jid;
        if !own {
            let record = store.conversation(jid)?;
            if !record.contact || record.blocked {
                return Ok(ListStep::default());
            }
        }
        if list.devices.len() > MAX_LISTED_DEVICES {
            log::warn!(
                "ignored a device list of {jid} with {} devices",
                list.devices.len()
            );
            return Ok(ListStep::default());
        }
        let devices: Vec<u32> = list.devices.iter().map(|d| d.id).collect();
        let re_add_self = (own && !devices.contains(&self.device_id())).then_some(list.suite);
        if re_add_self.is_some() {
            log::warn!(
                "this device ({}) was removed from our {} device list; adding it back",
                self.device_id(),
                list.suite
            );
        }
        let mut transaction = Transaction::default();
        transaction.device_lists.push(DeviceListUpdate {
            suite: list.suite,
            jid: jid.to_owned(),
            devices,
            at: now,
        });
        Ok(ListStep {
            transaction,
            re_add_self,
        })
    }

    /// The list to publish in `suite` so that it names this device, built from `current`, the
    /// list the server has now (`None`: nothing published yet). `Ok(None)` when it names this
    /// device already. Built on the list read from the server, never on a pushed one, which a
    /// hostile server could fill with devices of its own for us to publish; and never longer
    /// than [`MAX_LISTED_DEVICES`], which every client (this one included) would refuse.
    pub fn listing_self(
        &self,
        suite: Suite,
        current: Option<DeviceList>,
    ) -> Result<Option<DeviceList>> {
        let mut list = current.unwrap_or(DeviceList {
            suite,
            devices: Vec::new(),
        });
        if list.devices.iter().any(|d| d.id == self.device_id()) {
            return Ok(None);
        }
        list.devices.push(DeviceEntry::new(self.device_id()));
        if list.devices.len() > MAX_LISTED_DEVICES {
            return Err(EngineError::DeviceListTooLong {
                jid: self.jid.clone(),
                count: list.devices.len(),
            });
        }
        Ok(Some(list))
    }

    /// Our list `current` without the devices `ids` (the user removes a lost phone, a
    /// reinstalled client), and the transaction recording it once published; `Ok(None)` when
    /// it names none of them. This device cannot remove itself: it would add itself back at
    /// once, as XEP-0384 asks of every device in use.
    pub fn without_devices(
        &self,
        mut current: DeviceList,
        ids: &[u32],
        now: u64,
    ) -> Result<Option<(DeviceList, Transaction)>> {
        if ids.contains(&self.device_id()) {
            return Err(EngineError::RemoveSelf(self.device_id()));
        }
        let before = current.devices.len();
        current.devices.retain(|d| !ids.contains(&d.id));
        if current.devices.len() == before {
            return Ok(None);
        }
        let mut transaction = Transaction::default();
        transaction.device_lists.push(DeviceListUpdate {
            suite: current.suite,
            jid: self.jid.clone(),
            devices: current.devices.iter().map(|d| d.id).collect(),
            at: now,
        });
        Ok(Some((current, transaction)))
    }

    /// Whether our device id is taken by another device of the account: `published` is the
    /// bundle the server holds for our id (XEP-0384: check for collisions before announcing).
    /// A bundle with another identity key belongs to someone else; publishing ours would
    /// overwrite its keys and break every session with it.
    pub fn id_taken(&self, published: &Bundle) -> bool {
        published.device_id == self.device_id()
            && !published
                .identity
                .same_identity(self.local.identity().public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_store::{ConversationChange, MemoryStore};
    use rand::SeedableRng;

    const ME: &str = "me@example.org";

    fn engine(id: u32) -> (Engine, MemoryStore) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(id));
        let local = hush_proto::LocalDevice::generate(id, 2, 0, &mut rng).unwrap();
        let mut store = MemoryStore::default();
        store.create_account(ME, &local).unwrap();
        (Engine::new(ME, local), store)
    }

    fn list(suite: Suite, ids: &[u32]) -> DeviceList {
        DeviceList {
            suite,
            devices: ids.iter().map(|i| DeviceEntry::new(*i)).collect(),
        }
    }

    #[test]
    fn pushed_lists_are_kept_for_ourselves_and_contacts_only() {
        let (engine, mut store) = engine(5);
        let stranger = engine
            .device_list_pushed(&store, "x@y", &list(Suite::Omemo2, &[1]), 9)
            .unwrap();
        assert!(stranger.transaction.is_empty());
        let mut tx = Transaction::default();
        tx.conversations
            .push(("x@y".into(), ConversationChange::Contact));
        store.commit(tx).unwrap();
        let contact = engine
            .device_list_pushed(&store, "x@y", &list(Suite::Omemo2, &[1, 2]), 9)
            .unwrap();
        assert_eq!(contact.transaction.device_lists[0].devices, [1, 2]);
        assert_eq!(contact.re_add_self, None);
        let flood: Vec<u32> = (1..=MAX_LISTED_DEVICES as u32 + 1).collect();
        let too_long = engine
            .device_list_pushed(&store, "x@y", &list(Suite::Omemo2, &flood), 9)
            .unwrap();
        assert!(too_long.transaction.is_empty());
    }

    #[test]
    fn our_list_without_us_asks_to_re_add_from_the_servers_list() {
        let (engine, store) = engine(5);
        let step = engine
            .device_list_pushed(&store, ME, &list(Suite::Legacy, &[7]), 9)
            .unwrap();
        assert_eq!(step.re_add_self, Some(Suite::Legacy));
        assert_eq!(step.transaction.device_lists[0].devices, [7]);
        let republish = engine
            .listing_self(Suite::Legacy, Some(list(Suite::Legacy, &[7, 8])))
            .unwrap()
            .unwrap();
        let ids: Vec<u32> = republish.devices.iter().map(|d| d.id).collect();
        assert_eq!(ids, [7, 8, 5]);
        assert!(engine
            .listing_self(Suite::Legacy, Some(list(Suite::Legacy, &[5])))
            .unwrap()
            .is_none());
        let fresh = engine.listing_self(Suite::Omemo2, None).unwrap().unwrap();
        assert_eq!(fresh.devices.len(), 1);
        // A full list is not made longer than anyone accepts.
        let full: Vec<u32> = (100..100 + MAX_LISTED_DEVICES as u32).collect();
        assert!(matches!(
            engine.listing_self(Suite::Omemo2, Some(list(Suite::Omemo2, &full))),
            Err(EngineError::DeviceListTooLong { .. })
        ));
    }

    #[test]
    fn removing_devices_never_removes_this_one() {
        let (engine, _) = engine(5);
        assert!(matches!(
            engine.without_devices(list(Suite::Omemo2, &[5, 6]), &[5], 1),
            Err(EngineError::RemoveSelf(5))
        ));
        let (left, tx) = engine
            .without_devices(list(Suite::Omemo2, &[5, 6, 7]), &[6], 1)
            .unwrap()
            .unwrap();
        assert_eq!(left.devices.len(), 2);
        assert_eq!(tx.device_lists[0].devices, [5, 7]);
        assert!(engine
            .without_devices(list(Suite::Omemo2, &[5]), &[9], 1)
            .unwrap()
            .is_none());
    }

    #[test]
    fn an_id_is_taken_only_by_another_identity() {
        let (other, _) = engine(6);
        let (engine, _) = engine(5);
        assert!(!engine.id_taken(&engine.device().bundle(Suite::Omemo2)));
        let mut theirs = other.device().bundle(Suite::Omemo2);
        theirs.device_id = 5;
        assert!(engine.id_taken(&theirs));
    }
}
