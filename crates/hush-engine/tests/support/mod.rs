//! A world of accounts and devices for driving engines without any network: a simulated
//! server that keeps device lists and bundles, fans messages out to every listed device (and
//! to the sender's other devices, as Carbons would), and lets the test decide when and in which
//! order each device reads its inbox. Clock and RNG are seeded; nothing depends on time.

#![allow(dead_code)]

use std::collections::BTreeMap;

use hush_engine::{Engine, Fetched, Inbound, InboundPayload, Route, SendOptions, Wire};
use hush_proto::{Bundle, EncryptedElement, LocalDevice, Suite};
use hush_store::{Committed, MemoryStore, MessageIds, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub const ALICE: &str = "alice@example.org";
pub const BOB: &str = "bob@example.net";
pub const CAROL: &str = "carol@example.com";

/// What the shell does with one incoming message: the bundle the engine asks for fetched from
/// `published` (by device id), the engine's step, its transaction committed, and what `settle`
/// says to show.
pub fn receive_step(
    engine: &mut Engine,
    store: &mut MemoryStore,
    mut inbound: Inbound,
    published: &BTreeMap<u32, Bundle>,
    now: u64,
    rng: &mut StdRng,
) -> Option<hush_engine::Delivery> {
    if let Some(request) = engine.bundle_needed(&*store, &inbound, now).unwrap() {
        let bundle = published
            .get(&request.device)
            .filter(|b| b.suite == request.suite)
            .cloned()
            .ok_or_else(|| "nothing published".to_owned());
        inbound.sender_bundle = Some(bundle);
    }
    let (tx, after) = engine
        .receive(&*store, inbound, now, rng)
        .unwrap()
        .into_parts();
    let committed = if tx.is_empty() {
        Committed::default()
    } else {
        store.commit(tx).unwrap()
    };
    engine.settle(after, &committed)
}

/// A message on its way to one device.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub sender: String,
    pub peer: String,
    pub element: EncryptedElement,
    pub ids: MessageIds,
}

/// One device: its engine, its store, its inbox.
pub struct Device {
    pub jid: String,
    pub engine: Engine,
    pub store: MemoryStore,
    pub inbox: Vec<Envelope>,
    /// What it showed: `(sender, text)` for texts, `(sender, "!error")` for failures.
    pub shown: Vec<(String, String)>,
}

/// The world: devices by id, the server's published state, a clock and an RNG.
pub struct World {
    pub devices: BTreeMap<u32, Device>,
    pub lists: BTreeMap<String, Vec<u32>>,
    pub bundles: BTreeMap<u32, Bundle>,
    pub now: u64,
    pub rng: StdRng,
    serial: u64,
}

impl World {
    pub fn new(seed: u64) -> Self {
        Self {
            devices: BTreeMap::new(),
            lists: BTreeMap::new(),
            bundles: BTreeMap::new(),
            now: 1_700_000_000,
            rng: StdRng::seed_from_u64(seed),
            serial: 0,
        }
    }

    /// A new device of `jid`, announced (bundle and list published).
    pub fn add_device(&mut self, jid: &str, id: u32) {
        let local = LocalDevice::generate(id, 30, self.now, &mut self.rng).unwrap();
        let mut store = MemoryStore::default();
        store.create_account(jid, &local).unwrap();
        self.bundles.insert(id, local.bundle(Suite::Omemo2));
        self.lists.entry(jid.to_owned()).or_default().push(id);
        let engine = Engine::new(jid, local);
        self.devices.insert(
            id,
            Device {
                jid: jid.to_owned(),
                engine,
                store,
                inbox: Vec::new(),
                shown: Vec::new(),
            },
        );
    }

    /// Device `from` sends `text` to `to`: what the shell does, with the server's state for
    /// fetches. Returns the device ids the engine encrypted for, or the refusal.
    pub fn send(&mut self, from: u32, to: &str, text: &str) -> Result<Vec<u32>, String> {
        let dev = self.devices.get_mut(&from).unwrap();
        let route = dev
            .engine
            .route(&dev.store, to, SendOptions::default())
            .map_err(|e| e.to_string())?;
        assert_eq!(route, Route::Encrypted);
        let their = self
            .lists
            .get(to)
            .filter(|l| !l.is_empty())
            .map(|l| (Suite::Omemo2, l.clone()));
        let own = self.lists.get(&dev.jid).cloned();
        let plan = dev
            .engine
            .plan_send(&dev.store, to, their, own, self.now)
            .map_err(|e| e.to_string())?;
        let bundles: Vec<((String, u32), Fetched)> = plan
            .bundles_needed
            .iter()
            .map(|(j, d)| {
                let b = self
                    .bundles
                    .get(d)
                    .cloned()
                    .ok_or_else(|| "no bundle".to_owned());
                ((j.clone(), *d), b)
            })
            .collect();
        let prepared = dev
            .engine
            .prepare_send(&dev.store, plan, text, bundles, self.now, &mut self.rng)
            .map_err(|e| e.to_string())?;
        let committed = dev.store.commit(prepared.transaction).unwrap();
        dev.store.mark_sent(committed.outgoing.unwrap()).unwrap();
        let Wire::Encrypted(element) = prepared.wire else {
            panic!("sent in clear");
        };
        let sender = dev.jid.clone();
        let targets: Vec<u32> = prepared.report.devices.iter().map(|(_, d)| *d).collect();
        self.fan_out(from, &sender, to, element);
        Ok(targets)
    }

    /// The server delivers `element` from device `from` of `sender` in the conversation with
    /// `peer` to every listed device of `peer` and every other listed device of `sender`.
    fn fan_out(&mut self, from: u32, sender: &str, peer: &str, element: EncryptedElement) {
        self.serial += 1;
        let ids = MessageIds {
            origin_id: Some(format!("o-{}", self.serial)),
            ..Default::default()
        };
        let mut to: Vec<u32> = self.lists.get(peer).cloned().unwrap_or_default();
        to.extend(self.lists.get(sender).cloned().unwrap_or_default());
        to.sort_unstable();
        to.dedup();
        for id in to.into_iter().filter(|id| *id != from) {
            if let Some(d) = self.devices.get_mut(&id) {
                d.inbox.push(Envelope {
                    sender: sender.to_owned(),
                    peer: if d.jid == sender {
                        peer.to_owned()
                    } else {
                        sender.to_owned()
                    },
                    element: element.clone(),
                    ids: ids.clone(),
                });
            }
        }
    }

    /// Device `id` reads inbox entry `pick` (modulo the inbox), keeping a copy when
    /// `duplicate`; commits, settles, answers what it owes, retires used prekeys.
    /// Returns false when the inbox was empty.
    pub fn deliver(&mut self, id: u32, pick: usize, duplicate: bool) -> bool {
        let dev = self.devices.get_mut(&id).unwrap();
        if dev.inbox.is_empty() {
            return false;
        }
        let i = pick % dev.inbox.len();
        let env = if duplicate {
            dev.inbox[i].clone()
        } else {
            dev.inbox.remove(i)
        };
        let inbound = Inbound {
            sender: env.sender.clone(),
            peer: env.peer.clone(),
            payload: InboundPayload::Omemo(Ok(env.element.clone())),
            ids: env.ids.clone(),
            sent_at: None,
            sender_bundle: None,
        };
        let delivery = receive_step(
            &mut dev.engine,
            &mut dev.store,
            inbound,
            &self.bundles,
            self.now,
            &mut self.rng,
        );
        if let Some(d) = delivery {
            let shown = match (&d.body, &d.error, &d.new_key) {
                (Some(b), _, _) => b.clone(),
                (None, Some(e), _) => format!("!{e}"),
                (None, None, Some(fp)) => format!("new key {fp}"),
                (None, None, None) => String::new(),
            };
            dev.shown.push((d.from.clone(), shown));
        }
        if dev.engine.prekeys_to_retire() {
            hush_store::finish_catch_up(&mut dev.store, 30, self.now, &mut self.rng).unwrap();
            let local = dev.store.account().unwrap().unwrap().device;
            self.bundles.insert(id, local.bundle(Suite::Omemo2));
            dev.engine.set_device(local);
            dev.engine.prekeys_retired();
        }
        let jid = dev.jid.clone();
        while let Some(owed) = self.devices[&id].engine.next_owed().cloned() {
            let dev = self.devices.get_mut(&id).unwrap();
            let prepared = dev
                .engine
                .prepare_empty(&dev.store, &owed, &mut self.rng)
                .unwrap();
            dev.engine.answered(&owed);
            if let Some((tx, element, _)) = prepared {
                dev.store.commit(tx).unwrap();
                // An empty message goes to that one device.
                self.serial += 1;
                let ids = MessageIds {
                    origin_id: Some(format!("o-{}", self.serial)),
                    ..Default::default()
                };
                if let Some(target) = self.devices.get_mut(&owed.device) {
                    let peer = if target.jid == jid {
                        owed.jid.clone()
                    } else {
                        jid.clone()
                    };
                    target.inbox.push(Envelope {
                        sender: jid.clone(),
                        peer,
                        element,
                        ids,
                    });
                }
            }
        }
        true
    }

    /// Device `id` restarts from what it committed: everything only in memory is gone.
    pub fn crash(&mut self, id: u32) {
        let dev = self.devices.get_mut(&id).unwrap();
        let local = dev.store.account().unwrap().unwrap().device;
        dev.engine = Engine::new(&dev.jid, local);
    }

    /// Every device reads everything, in a fixed order, answers included.
    pub fn drain(&mut self) {
        for _ in 0..100_000 {
            let busy: Vec<u32> = self
                .devices
                .iter()
                .filter(|(_, d)| !d.inbox.is_empty())
                .map(|(id, _)| *id)
                .collect();
            if busy.is_empty() {
                return;
            }
            for id in busy {
                self.deliver(id, 0, false);
            }
        }
        panic!("inboxes never emptied: empty messages kept bouncing");
    }
}

/// What the scheduler may do next.
#[derive(Clone, Debug)]
pub enum Action {
    Send {
        from: usize,
        to: usize,
    },
    Deliver {
        device: usize,
        pick: usize,
        duplicate: bool,
    },
    Crash {
        device: usize,
    },
}

pub const DEVICES: [u32; 4] = [11, 12, 21, 31];
pub const ACCOUNTS: [&str; 3] = [ALICE, BOB, CAROL];

pub fn account_of(device: u32) -> &'static str {
    match device {
        11 | 12 => ALICE,
        21 => BOB,
        _ => CAROL,
    }
}

/// Runs one schedule, then lets every device read everything and checks the invariants:
/// every message reaches every device it was encrypted for exactly once, nothing fails,
/// nothing is shown twice.
pub fn simulate(seed: u64, actions: &[Action]) -> Result<(), String> {
    let mut w = World::new(seed);
    for d in DEVICES {
        w.add_device(account_of(d), d);
    }
    let mut sent: Vec<(String, Vec<u32>)> = Vec::new();
    for (n, a) in actions.iter().enumerate() {
        match *a {
            Action::Send { from, to } => {
                let from = DEVICES[from];
                let to = ACCOUNTS[to];
                if to == account_of(from) {
                    continue;
                }
                let text = format!("m{n} from {from}");
                let targets = w
                    .send(from, to, &text)
                    .map_err(|e| format!("step {n}: {e}"))?;
                sent.push((text, targets));
            }
            Action::Deliver {
                device,
                pick,
                duplicate,
            } => {
                w.deliver(DEVICES[device], pick, duplicate);
            }
            Action::Crash { device } => w.crash(DEVICES[device]),
        }
        w.now += 1;
    }
    w.drain();
    for (id, dev) in &w.devices {
        let failures: Vec<_> = dev
            .shown
            .iter()
            .filter(|(_, t)| t.starts_with('!'))
            .collect();
        if !failures.is_empty() {
            return Err(format!("device {id}: {failures:?}"));
        }
    }
    for (text, targets) in &sent {
        for t in targets {
            let count = w.devices[t].shown.iter().filter(|(_, s)| s == text).count();
            if count != 1 {
                return Err(format!("device {t} showed `{text}` {count} times"));
            }
        }
    }
    Ok(())
}

/// A random schedule of `len` actions.
pub fn random_schedule<R: rand::RngExt>(rng: &mut R, len: usize) -> Vec<Action> {
    (0..len)
        .map(|_| match rng.random_range(0..10u32) {
            0..3 => Action::Send {
                from: rng.random_range(0..4),
                to: rng.random_range(0..3),
            },
            3..9 => Action::Deliver {
                device: rng.random_range(0..4),
                pick: rng.random_range(0..64),
                duplicate: rng.random_bool(0.2),
            },
            _ => Action::Crash {
                device: rng.random_range(0..4),
            },
        })
        .collect()
}

impl World {
    /// Device `from` of `sender` — keys of its own, not announced anywhere — starts a session
    /// with device `to` (of the account `peer`) from `to`'s bundle and sends it `text` (`None`:
    /// an empty message); `to` reads it. What a server can fabricate.
    pub fn key_exchange_from(
        &mut self,
        from: &LocalDevice,
        sender: &str,
        to: u32,
        peer: &str,
        text: Option<&str>,
    ) {
        let mut session =
            hush_proto::Session::initiate(from.identity(), &self.bundles[&to], &mut self.rng)
                .unwrap();
        let payload = text.map(|t| {
            hush_proto::sce::seal(
                &[hush_proto::sce::body(t)],
                sender,
                peer,
                Some(self.now),
                &mut self.rng,
            )
            .unwrap()
        });
        let element = hush_proto::seal(
            Suite::Omemo2,
            from.device_id(),
            payload.as_deref(),
            &mut [hush_proto::Recipient {
                jid: peer,
                device_id: to,
                session: &mut session,
            }],
            &mut self.rng,
        )
        .unwrap();
        self.devices.get_mut(&to).unwrap().inbox.push(Envelope {
            sender: sender.to_owned(),
            peer: sender.to_owned(),
            element,
            ids: MessageIds::default(),
        });
        self.deliver(to, 0, false);
    }
}
