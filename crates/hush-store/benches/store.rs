//! Store throughput: messages decrypted and committed per second through SQLite, one
//! transaction per message and in MAM-style batches, and a 10,000-message catch-up.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hush_proto::{seal, EncryptedElement, LocalDevice, Recipient, Session, Suite};
use hush_store::{MessageIds, Outcome, Received, SessionKey, SqliteStore, Store};
use rand::rngs::StdRng;
use rand::SeedableRng;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

struct Setup {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    bob: LocalDevice,
    alice: Session,
    session: Option<Session>,
    rng: StdRng,
    serial: u64,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            SqliteStore::open(dir.path().join("bench.db"), &Default::default()).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let bob = LocalDevice::generate(2, 100, 0, &mut rng).unwrap();
        store.create_account(BOB, &bob).unwrap();
        let alice_dev = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
        let alice =
            Session::initiate(alice_dev.identity(), &bob.bundle(Suite::Omemo2), &mut rng).unwrap();
        Self {
            _dir: dir,
            store,
            bob,
            alice,
            session: None,
            rng,
            serial: 0,
        }
    }

    fn messages(&mut self, n: usize) -> Vec<EncryptedElement> {
        (0..n)
            .map(|_| {
                seal(
                    Suite::Omemo2,
                    1,
                    Some(&[0x42; 100]),
                    &mut [Recipient {
                        jid: BOB,
                        device_id: 2,
                        session: &mut self.alice,
                    }],
                    &mut self.rng,
                )
                .unwrap()
            })
            .collect()
    }

    /// Decrypts and builds the record, as the client does, keeping the session in memory.
    fn decrypt(&mut self, el: &EncryptedElement) -> Received {
        if self.session.is_none() {
            self.session = self
                .store
                .session(&SessionKey::new(Suite::Omemo2, ALICE, 1))
                .unwrap();
        }
        let opened = self
            .bob
            .open(el, BOB, ALICE, self.session.take(), &mut self.rng)
            .unwrap();
        self.session = Some(opened.session.clone());
        self.serial += 1;
        Received {
            ids: MessageIds {
                archive: Some(BOB.into()),
                stanza_id: Some(self.serial.to_string()),
                origin_id: Some(format!("o{}", self.serial)),
                digest: None,
            },
            peer: ALICE.into(),
            sender: ALICE.into(),
            sender_device: 1,
            suite: Suite::Omemo2,
            at: self.serial,
            outcome: Outcome::Decrypted {
                session: Box::new(self.session.clone().unwrap()),
                body: opened.payload.map(|p| p.to_vec()),
                consumed_prekey: opened.consumed_prekey,
            },
        }
    }

    fn run(&mut self, msgs: &[EncryptedElement], batch: usize) -> Duration {
        let start = Instant::now();
        for chunk in msgs.chunks(batch) {
            let records: Vec<Received> = chunk.iter().map(|m| self.decrypt(m)).collect();
            self.store.commit_received(records).unwrap();
        }
        start.elapsed()
    }
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/receive (decrypt + commit)");
    group.throughput(Throughput::Elements(1));
    for batch in [1usize, 100] {
        let mut setup = Setup::new();
        let name = if batch == 1 {
            "one transaction per message".to_owned()
        } else {
            format!("batches of {batch}")
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let msgs = setup.messages(iters as usize);
                setup.run(&msgs, batch)
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("store/MAM catch-up");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(10_000));
    group.bench_function("10000 messages, batches of 100", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut setup = Setup::new();
                let msgs = setup.messages(10_000);
                total += setup.run(&msgs, 100);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
