//! Kill test: a worker process decrypts and stores thousands of incoming messages while this
//! process kills it with SIGKILL at random moments (at least 50 times), restarting it each time.
//! Afterwards every message must be in history exactly once, none may have failed, and the
//! stored session must still work in both directions.
//!
//! Custom harness: `kill --worker DIR` is the worker; without arguments it is the test. The
//! short random pauses before a kill only pick *when* to kill; nothing waits on them.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hush_proto::{seal, EncryptedElement, LocalDevice, Recipient, Session, Suite};
use hush_store::{Commit, MessageIds, Outcome, Received, SessionKey, SqliteStore, Store};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";
const KILLS: usize = 50;
const PER_ROUND: usize = 120;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--worker" {
        worker(Path::new(&args[2]));
        return;
    }
    match std::panic::catch_unwind(parent) {
        Ok(()) => println!("kill test: 1 passed, 0 failed"),
        Err(_) => {
            println!("kill test: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

fn store_path(dir: &Path) -> PathBuf {
    dir.join("bob.db")
}

/// One inbox line: stanza id, then the `<encrypted/>` XML.
fn parse_line(line: &str) -> (String, EncryptedElement) {
    let (id, xml) = line.split_once('\t').expect("inbox line");
    (
        id.to_owned(),
        EncryptedElement::from_element(&xml.parse().unwrap()).unwrap(),
    )
}

/// The worker: catch up on the inbox in random-sized batches, one transaction each.
fn worker(dir: &Path) {
    let mut store = SqliteStore::open(store_path(dir), &Default::default()).unwrap();
    let device = store.account().unwrap().unwrap().device;
    let inbox = std::fs::read_to_string(dir.join("inbox")).unwrap();
    let mut rng = rand::rngs::SysRng;
    let mut rng = rand::rngs::StdRng::try_from_rng(&mut rng).unwrap();
    let key = SessionKey::new(Suite::Omemo2, ALICE, 1);
    let mut lines = inbox.lines().peekable();
    let mut out = std::io::stdout().lock();
    while lines.peek().is_some() {
        let size = rng.random_range(1..=16);
        let mut session = store.session(&key).unwrap();
        let mut batch = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for line in lines.by_ref().take(size) {
            let (sid, el) = parse_line(line);
            let ids = MessageIds {
                archive: Some(BOB.into()),
                stanza_id: Some(sid.clone()),
                origin_id: None,
                digest: None,
            };
            if store.is_known(ALICE, &ids).unwrap() || !seen.insert(sid) {
                continue; // a MAM / Carbons duplicate: ignored silently
            }
            let opened = device
                .open(&el, BOB, ALICE, session.take(), &mut rng)
                .unwrap();
            session = Some(opened.session.clone());
            batch.push(Received {
                ids,
                peer: ALICE.into(),
                sender: ALICE.into(),
                sender_device: 1,
                suite: Suite::Omemo2,
                at: 0,
                outcome: Outcome::Decrypted {
                    session: Box::new(session.clone().unwrap()),
                    body: opened.payload.map(|p| p.to_vec()),
                    consumed_prekey: opened.consumed_prekey,
                },
            });
        }
        let n = batch.len();
        for c in store.commit_received(batch).unwrap() {
            assert_ne!(c, Commit::Duplicate);
        }
        writeln!(out, "progress {n}").unwrap();
        out.flush().unwrap();
    }
    writeln!(out, "done").unwrap();
}

struct Alice {
    session: Session,
    device: LocalDevice,
    rng: StdRng,
    sent: BTreeMap<String, Vec<u8>>,
    serial: usize,
}

impl Alice {
    /// Appends a round of messages to the inbox: locally reordered, some delivered twice.
    fn round(&mut self, inbox: &Path) {
        let mut lines = Vec::new();
        for _ in 0..PER_ROUND {
            self.serial += 1;
            let body = format!("message {} {}", self.serial, self.rng.random::<u32>()).into_bytes();
            let el = seal(
                Suite::Omemo2,
                1,
                Some(&body),
                &mut [Recipient {
                    jid: BOB,
                    device_id: 2,
                    session: &mut self.session,
                }],
                &mut self.rng,
            )
            .unwrap();
            let sid = format!("s{}", self.serial);
            lines.push(format!("{sid}\t{}", String::from(&el.to_element())));
            if self.rng.random_range(0..10) == 0 {
                lines.push(lines.last().unwrap().clone());
            }
            self.sent.insert(sid, body);
        }
        for w in lines.chunks_mut(5) {
            let i = self.rng.random_range(0..w.len());
            w.swap(0, i);
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(inbox)
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }
}

fn parent() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = 20261123;
    let mut rng = StdRng::seed_from_u64(seed);
    let bob = LocalDevice::generate(2, 100, 0, &mut rng).unwrap();
    SqliteStore::open(store_path(&dir), &Default::default())
        .unwrap()
        .create_account(BOB, &bob)
        .unwrap();
    let alice_device = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
    let session = Session::initiate(
        alice_device.identity(),
        &bob.bundle(Suite::Omemo2),
        &mut rng,
    )
    .unwrap();
    let mut alice = Alice {
        session,
        device: alice_device,
        rng: StdRng::seed_from_u64(seed + 1),
        sent: BTreeMap::new(),
        serial: 0,
    };
    let exe = std::env::current_exe().unwrap();

    let (mut kills, mut finished_runs) = (0usize, 0usize);
    while kills < KILLS {
        alice.round(&dir.join("inbox"));
        let mut child = Command::new(&exe)
            .arg("--worker")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let wait_for = rng.random_range(0..4);
        let mut progressed = 0;
        let mut line = String::new();
        let mut done = false;
        while progressed < wait_for {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 || line.starts_with("done") {
                done = true;
                break;
            }
            progressed += 1;
        }
        if !done {
            // Land the kill anywhere inside the next batch, not just between batches.
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            finished_runs += 1;
        } else {
            kills += 1;
        }
    }
    // A last, uninterrupted run to finish the inbox.
    let out = Command::new(&exe)
        .arg("--worker")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "final worker failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("done\n"));

    let mut store = SqliteStore::open(store_path(&dir), &Default::default()).unwrap();
    let history = store.history(ALICE, usize::MAX >> 1).unwrap();
    assert!(
        history.iter().all(|m| m.failure.is_none()),
        "no message failed to decrypt"
    );
    let mut got: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for m in &history {
        let sid = m.ids.stanza_id.clone().unwrap();
        assert!(
            got.insert(sid.clone(), m.body.clone().unwrap()).is_none(),
            "{sid} stored twice"
        );
    }
    assert_eq!(got, alice.sent, "every message exactly once, with its text");

    // The stored session still works both ways.
    let key = SessionKey::new(Suite::Omemo2, ALICE, 1);
    let mut s = store.session(&key).unwrap().unwrap();
    let reply = seal(
        Suite::Omemo2,
        2,
        Some(b"got them all"),
        &mut [Recipient {
            jid: ALICE,
            device_id: 1,
            session: &mut s,
        }],
        &mut rng,
    )
    .unwrap();
    let opened = alice
        .device
        .open(&reply, ALICE, BOB, Some(alice.session.clone()), &mut rng)
        .unwrap();
    alice.session = opened.session;
    assert_eq!(opened.payload.unwrap().as_slice(), b"got them all");
    let next = seal(
        Suite::Omemo2,
        1,
        Some(b"great"),
        &mut [Recipient {
            jid: BOB,
            device_id: 2,
            session: &mut alice.session,
        }],
        &mut rng,
    )
    .unwrap();
    let bob_device = store.account().unwrap().unwrap().device;
    let opened = bob_device
        .open(&next, BOB, ALICE, Some(s.clone()), &mut rng)
        .unwrap();
    assert_eq!(opened.payload.unwrap().as_slice(), b"great");
    let _ = store.delete_session(&key);
    println!("kill test: {kills} SIGKILLs, {finished_runs} runs finished before their kill, {} messages stored once each", got.len());
    let _ = std::fs::remove_dir_all(&dir);
}
