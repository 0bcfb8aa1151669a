//! End-to-end benches through a real local Prosody (issue #5): real `Hush` clients with
//! file-backed SQLite stores, talking over loopback TCP.
//!
//! * `one_to_one/*`: Alice (one device) to Bob (one device), sessions already established:
//!   the latency of one message from `send_text` to Bob's committed delivery, and messages/s
//!   for a burst sent back to back while Bob receives.
//! * `two_by_two/*`: Carol and Dave with two devices each; Carol's first device sends, and a
//!   message counts once Dave's two devices and Carol's other device (Carbons) have it.
//! * `mam_catch_up_10k`: Frank's device was offline while Erin sent 10,000 messages; a fresh
//!   connect plus `catch_up` fetching, decrypting and committing all of them, from a copy of
//!   Frank's store as it was before (target: ≤ 5 s wall time, network and store included).
//! * `mam_read_only_10k`: the server's share of that: the same archive paged through by a bare
//!   `XmppClient` that neither decrypts nor stores anything. Hush pipelines its work with the
//!   server's (it commits one page while the next travels), so the catch-up cannot be faster
//!   than this.
//!
//! * `mam_*_devserver`: the same two against `hush-devserver` in this process, whose archive
//!   is served from memory: what the client does when the server is not the bottleneck.
//! * `room_50x3/*` (issue #15): a members-only, non-anonymous room with 50 members of three
//!   devices each besides the sender's account (three devices too), sessions established: one
//!   room message is encrypted for 152 devices. `send` is `send_to_room` alone (the member list
//!   read again, every member's device list fetched, the message encrypted, committed and
//!   sent); `send_receive` lasts until all 152 other devices have it committed. All 153
//!   clients run in this process (their receiving one after another on one thread) and share
//!   the machine with Prosody, which relays a copy of the message to each of them:
//!   `send_receive` is what the last device waits with the server's fan-out and every
//!   reader's work on one machine, not what one member's own client waits. The engine's share
//!   of the send, without the network, is `hush-engine`'s `room` bench.
//!
//! `cargo bench -p hush-xmpp --bench e2e` measures. `cargo test --benches` (CI) runs each bench
//! once in test mode; there bursts are `BURST_TEST` messages and the archive holds
//! `MAM_MESSAGES_TEST`, because filling an archive with 10,000 messages and catching up on
//! them takes far longer than the rest of the suite (the setup of every bench is outside
//! criterion, so criterion's test mode alone would not make it cheap).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures::future::join_all;
use hush_devserver::DevServer;
use hush_proto::{sce, seal, LocalDevice, Recipient, Suite, DEFAULT_PREKEYS};
use hush_store::{Affiliation, SessionKey, SqliteStore, Store};
use hush_test_support::prosody::{Prosody, MUC_SERVICE};
use hush_xmpp::{BareJid, ConnectOptions, Hush, SendOptions, XmppClient};
use tokio::runtime::Runtime;

/// Messages per burst in the messages/s benches.
const BURST: u64 = 50;
/// Messages in the archive for the catch-up bench.
const MAM_MESSAGES: usize = 10_000;
/// The same two in test mode (`cargo test --benches`, each bench run once, as CI does), where
/// only correctness is checked: kept small so the whole file runs in seconds.
const BURST_TEST: u64 = 5;
/// More than two of Prosody's 50-message archive pages, so paging is exercised.
const MAM_MESSAGES_TEST: usize = 120;
/// Members of the room besides the sender's account (as issue #15 asks).
const ROOM_MEMBERS: usize = 50;
/// Devices of every account in the room, the sender's included.
const ROOM_DEVICES: usize = 3;
/// The members in test mode, for a quick run.
const ROOM_MEMBERS_TEST: usize = 2;
/// What is in Frank's archive before the fill: Erin's first message and Frank's empty answer.
const ARCHIVED_BEFORE_FILL: usize = 2;
/// Room left in Frank's archive for the heartbeat each catch-up ends with (an empty message to
/// Erin after that many unanswered messages, archived too), one per measured iteration.
const HEARTBEAT_ROOM: usize = 100;
const PASSWORD: &str = "bench-pass";
/// Bound on waiting for one message; only reached if something is broken.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

type Device = Hush<SqliteStore>;

/// True under `cargo bench`; false under `cargo test --benches`, where criterion runs each
/// bench once (its own rule: `--bench` without `--test`).
fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Whether any of the benches `names` is selected by the filters on the command line, so the
/// setup of unselected ones (such as filling the archive) can be skipped. Criterion searches
/// each filter as a regex in the bench id; here a filter is split at `|` and each alternative,
/// less `^` and `$` anchors, is searched as plain text, and an alternative with any other regex
/// syntax selects everything (running a setup for nothing is only slow).
fn selected(names: &[&str]) -> bool {
    // Criterion's options that take a value as the next argument.
    const VALUED: &[&str] = &[
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--profile-time",
        "--format",
        "-c",
        "--color",
        "--plotting-backend",
        "--output-format",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with('-') && (*i == 0 || !VALUED.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a)
        .collect();
    filters.is_empty()
        || filters.iter().flat_map(|f| f.split('|')).any(|alt| {
            let alt = alt.strip_prefix('^').unwrap_or(alt);
            let alt = alt.strip_suffix('$').unwrap_or(alt);
            alt.contains(|c: char| "\\.+*?()[]{}^$".contains(c))
                || names.iter().any(|n| format!("e2e/{n}").contains(alt))
        })
}

/// A scratch directory for the stores, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("e2e-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The server a bench talks to: the private Prosody, or `hush-devserver` in this process.
trait Server {
    fn address(&self) -> String;
    /// Registers `user` with the bench password; returns the bare JID.
    fn register(&self, user: &str) -> String;
    /// The most messages one archive keeps.
    fn archive_limit(&self) -> usize;
}

impl Server for Prosody {
    fn address(&self) -> String {
        Prosody::address(self)
    }
    fn register(&self, user: &str) -> String {
        Prosody::register(self, user, PASSWORD)
    }
    /// `storage_archive_item_limit` in the config. The test servers use SQL storage, which
    /// has no limit unless one is set (Prosody's file storage defaults to 10,000).
    fn archive_limit(&self) -> usize {
        let config = std::fs::read_to_string(self.dir.join("prosody.cfg.lua")).unwrap_or_default();
        config
            .lines()
            .filter_map(|l| l.trim().strip_prefix("storage_archive_item_limit"))
            .filter_map(|rest| rest.trim().strip_prefix('=')?.trim().parse().ok())
            .next()
            .unwrap_or(usize::MAX)
    }
}

impl Server for DevServer {
    fn address(&self) -> String {
        DevServer::address(self).to_string()
    }
    fn register(&self, user: &str) -> String {
        DevServer::register(self, user, PASSWORD).unwrap()
    }
    fn archive_limit(&self) -> usize {
        usize::MAX
    }
}

fn options(server: &dyn Server) -> ConnectOptions {
    ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    }
}

/// Removes an SQLite store and its WAL side files.
fn remove_store(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// A new device of `jid` with its store in `path`, connected and announced.
async fn device(server: &dyn Server, path: &Path, jid: &str) -> Device {
    remove_store(path);
    let mut store = SqliteStore::open(path, &Default::default()).unwrap();
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let id = 1 + rand_core::Rng::next_u32(&mut rng) % 0x7fff_fffe;
    let keys = LocalDevice::generate(id, DEFAULT_PREKEYS, unix_now(), &mut rng).unwrap();
    store.create_account(jid, &keys).unwrap();
    let mut hush = Hush::connect(store, PASSWORD, &options(server))
        .await
        .unwrap();
    hush.announce().await.unwrap();
    hush
}

/// Waits for the next message and checks its text.
async fn expect(hush: &mut Device, text: &str) {
    let d = hush
        .receive(RECEIVE_TIMEOUT)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{} did not receive `{text}`", hush.jid()));
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
}

/// Handles what is in flight (empty answers to key exchanges, heartbeats) for a moment;
/// nothing with text may arrive.
async fn settle(hush: &mut Device, wait: Duration) {
    if let Some(d) = hush.receive(wait).await.unwrap() {
        panic!("{} received an unexpected message: {d:?}", hush.jid());
    }
}

/// Handles incoming messages until `hush` has sessions with all of `peers` that the other
/// side has answered (with the empty message that answers a key exchange), so that what it
/// sends is no longer a key exchange, which would be answered each time.
async fn await_confirmed(hush: &mut Device, peers: &[(BareJid, u32)]) {
    let deadline = Instant::now() + RECEIVE_TIMEOUT;
    loop {
        let all = peers.iter().all(|(jid, device)| {
            hush.store()
                .session(&SessionKey::new(Suite::Omemo2, jid.as_str(), *device))
                .unwrap()
                .is_some_and(|s| s.is_confirmed())
        });
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no answer to the key exchange from {peers:?}",
            hush.jid()
        );
        settle(hush, Duration::from_millis(50)).await;
    }
}

fn text(serial: &mut u64) -> String {
    *serial += 1;
    format!("bench message {serial}")
}

fn e2e(c: &mut Criterion) {
    let bench = benchmarking();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let scratch = Scratch::new();
    let t = Instant::now();
    let server = Prosody::start("e2e-bench");
    eprintln!("e2e setup: Prosody started in {:.2?}", t.elapsed());

    let mut group = c.benchmark_group("e2e");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));

    let burst = if bench { BURST } else { BURST_TEST };
    if selected(&["one_to_one/send_receive", "one_to_one/burst"]) {
        one_to_one(&mut group, &rt, &server, &scratch, burst);
    }
    if selected(&["two_by_two/send_receive", "two_by_two/burst"]) {
        two_by_two(&mut group, &rt, &server, &scratch, burst);
    }
    let members = if bench {
        ROOM_MEMBERS
    } else {
        ROOM_MEMBERS_TEST
    };
    let room_bench = format!("room_{members}x{ROOM_DEVICES}");
    if selected(&[
        &format!("{room_bench}/send"),
        &format!("{room_bench}/send_receive"),
    ]) {
        room(&mut group, &rt, &server, &scratch, members, &room_bench);
    }
    if selected(&["mam_catch_up_10k", "mam_read_only_10k"]) {
        mam_catch_up(&mut group, &rt, &server, &scratch, bench, "");
    }
    if selected(&["mam_catch_up_10k_devserver", "mam_read_only_10k_devserver"]) {
        let devserver = rt.block_on(DevServer::start(Default::default())).unwrap();
        mam_catch_up(&mut group, &rt, &devserver, &scratch, bench, "_devserver");
        rt.block_on(devserver.shutdown());
    }
    group.finish();
}

fn one_to_one(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    server: &dyn Server,
    scratch: &Scratch,
    burst: u64,
) {
    let t = Instant::now();
    let alice_jid = server.register("alice");
    let bob_jid = server.register("bob");
    let (mut alice, mut bob) = rt.block_on(async {
        let mut alice = device(server, &scratch.file("alice.sqlite"), &alice_jid).await;
        let mut bob = device(server, &scratch.file("bob.sqlite"), &bob_jid).await;
        // Sessions both ways: Bob answers the key exchange with an empty message, which
        // confirms Alice's session.
        alice.send_text(bob.jid(), "hello").await.unwrap();
        expect(&mut bob, "hello").await;
        await_confirmed(&mut alice, &[(bob.jid().clone(), bob.device_id())]).await;
        (alice, bob)
    });
    eprintln!(
        "e2e setup: 1:1 accounts and sessions in {:.2?}",
        t.elapsed()
    );
    let bob_jid = bob.jid().clone();
    let mut serial = 0;

    group.sampling_mode(SamplingMode::Auto);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_to_one/send_receive", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let m = text(&mut serial);
                    let t = Instant::now();
                    alice.send_text(&bob_jid, &m).await.unwrap();
                    expect(&mut bob, &m).await;
                    total += t.elapsed();
                }
                // Bob's heartbeats (one per 53 unanswered messages), outside the clock.
                settle(&mut alice, Duration::ZERO).await;
                total
            })
        })
    });

    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(burst));
    group.bench_function("one_to_one/burst", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let texts: Vec<String> = (0..burst).map(|_| text(&mut serial)).collect();
                    let t = Instant::now();
                    let send = async {
                        for m in &texts {
                            alice.send_text(&bob_jid, m).await.unwrap();
                        }
                    };
                    let receive = async {
                        for m in &texts {
                            expect(&mut bob, m).await;
                        }
                    };
                    futures::join!(send, receive);
                    total += t.elapsed();
                    settle(&mut alice, Duration::ZERO).await;
                }
                total
            })
        })
    });

    rt.block_on(async {
        alice.close().await.unwrap();
        bob.close().await.unwrap();
    });
}

fn two_by_two(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    server: &dyn Server,
    scratch: &Scratch,
    burst: u64,
) {
    let t = Instant::now();
    let carol_jid = server.register("carol");
    let dave_jid = server.register("dave");
    // devices[0] sends; the other three receive.
    let mut devices = rt.block_on(async {
        let mut d = Vec::new();
        for (jid, file) in [
            (&carol_jid, "carol1.sqlite"),
            (&carol_jid, "carol2.sqlite"),
            (&dave_jid, "dave1.sqlite"),
            (&dave_jid, "dave2.sqlite"),
        ] {
            d.push(device(server, &scratch.file(file), jid).await);
        }
        let (sender, receivers) = d.split_first_mut().unwrap();
        let dave: BareJid = dave_jid.parse().unwrap();
        let report = sender.send_text(&dave, "hello").await.unwrap();
        assert_eq!(report.devices.len(), 3, "{report:?}");
        join_all(receivers.iter_mut().map(|r| expect(r, "hello"))).await;
        // Every receiver answers the key exchange with an empty message.
        let peers: Vec<(BareJid, u32)> = d[1..]
            .iter()
            .map(|r| (r.jid().clone(), r.device_id()))
            .collect();
        await_confirmed(&mut d[0], &peers).await;
        // The receivers see each other's answers (Carbons, messages to the bare JID).
        join_all(d.iter_mut().map(|h| settle(h, Duration::from_millis(100)))).await;
        d
    });
    eprintln!(
        "e2e setup: 2x2 accounts and sessions in {:.2?}",
        t.elapsed()
    );
    let dave: BareJid = dave_jid.parse().unwrap();
    let mut serial = 0;

    group.sampling_mode(SamplingMode::Auto);
    group.throughput(Throughput::Elements(1));
    group.bench_function("two_by_two/send_receive", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let m = text(&mut serial);
                    let (sender, receivers) = devices.split_first_mut().unwrap();
                    let t = Instant::now();
                    let send = async {
                        sender.send_text(&dave, &m).await.unwrap();
                    };
                    let receive = join_all(receivers.iter_mut().map(|r| expect(r, &m)));
                    futures::join!(send, receive);
                    total += t.elapsed();
                }
                join_all(devices.iter_mut().map(|h| settle(h, Duration::ZERO))).await;
                total
            })
        })
    });

    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(burst));
    group.bench_function("two_by_two/burst", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let texts: Vec<String> = (0..burst).map(|_| text(&mut serial)).collect();
                    let (sender, receivers) = devices.split_first_mut().unwrap();
                    let t = Instant::now();
                    let send = async {
                        for m in &texts {
                            sender.send_text(&dave, m).await.unwrap();
                        }
                    };
                    let receive = join_all(receivers.iter_mut().map(|r| async {
                        for m in &texts {
                            expect(r, m).await;
                        }
                    }));
                    futures::join!(send, receive);
                    total += t.elapsed();
                    join_all(devices.iter_mut().map(|h| settle(h, Duration::ZERO))).await;
                }
                total
            })
        })
    });

    rt.block_on(async {
        for d in devices {
            d.close().await.unwrap();
        }
    });
}

fn room(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    server: &dyn Server,
    scratch: &Scratch,
    members: usize,
    name: &str,
) {
    let t = Instant::now();
    let room: BareJid = format!("bench@{MUC_SERVICE}").parse().unwrap();
    let owner_jid = server.register("owner");
    let member_jids: Vec<String> = (0..members)
        .map(|m| server.register(&format!("member{m}")))
        .collect();
    // devices[0] sends; the other devices of its account and every member's receive.
    let mut devices = rt.block_on(async {
        let mut d = Vec::new();
        for jid in std::iter::once(&owner_jid).chain(&member_jids) {
            for n in 0..ROOM_DEVICES {
                let user = jid.split('@').next().unwrap();
                let file = scratch.file(&format!("room-{user}-{n}.sqlite"));
                d.push(device(server, &file, jid).await);
            }
        }
        // The sender creates the room (members-only and non-anonymous) and admits the members.
        d[0].join_room(&room, None).await.unwrap();
        for jid in &member_jids {
            let jid: BareJid = jid.parse().unwrap();
            d[0].set_room_member(&room, &jid, Some(Affiliation::Member))
                .await
                .unwrap();
        }
        for r in &mut d[1..] {
            r.join_room(&room, None).await.unwrap();
        }
        // The first message builds every session; each reader answers its key exchange.
        let report = d[0]
            .send_to_room(&room, "hello room", SendOptions::default())
            .await
            .unwrap();
        assert_eq!(report.devices.len(), d.len() - 1, "{report:?}");
        let (sender, receivers) = d.split_first_mut().unwrap();
        join_all(receivers.iter_mut().map(|r| expect(r, "hello room"))).await;
        let peers: Vec<(BareJid, u32)> = receivers
            .iter()
            .map(|r| (r.jid().clone(), r.device_id()))
            .collect();
        await_confirmed(sender, &peers).await;
        // The answers' copies (Carbons) and the sender's own message coming back from the room.
        join_all(d.iter_mut().map(|h| settle(h, Duration::from_millis(200)))).await;
        d
    });
    let readers = devices.len() - 1;
    eprintln!(
        "e2e setup: room of {members} members and the owner, {ROOM_DEVICES} devices each, \
         sessions established, in {:.2?}",
        t.elapsed()
    );
    let mut serial = 0;

    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/send"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let m = text(&mut serial);
                    let t = Instant::now();
                    let report = devices[0]
                        .send_to_room(&room, &m, SendOptions::default())
                        .await
                        .unwrap();
                    total += t.elapsed();
                    assert_eq!(report.devices.len(), readers, "{report:?}");
                    join_all(devices[1..].iter_mut().map(|r| expect(r, &m))).await;
                    settle(&mut devices[0], Duration::ZERO).await;
                }
                total
            })
        })
    });
    group.bench_function(format!("{name}/send_receive"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let m = text(&mut serial);
                    let (sender, receivers) = devices.split_first_mut().unwrap();
                    let t = Instant::now();
                    let send = async {
                        sender
                            .send_to_room(&room, &m, SendOptions::default())
                            .await
                            .unwrap();
                    };
                    let receive = join_all(receivers.iter_mut().map(|r| expect(r, &m)));
                    futures::join!(send, receive);
                    total += t.elapsed();
                    settle(sender, Duration::ZERO).await;
                }
                total
            })
        })
    });

    rt.block_on(async {
        for d in devices {
            d.close().await.unwrap();
        }
    });
}

fn mam_catch_up(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    server: &dyn Server,
    scratch: &Scratch,
    bench: bool,
    label: &str,
) {
    let read_name = format!("mam_read_only_10k{label}");
    let catch_up_name = format!("mam_catch_up_10k{label}");
    let wanted = if bench {
        MAM_MESSAGES
    } else {
        MAM_MESSAGES_TEST
    };
    let limit = server.archive_limit();
    let room = limit.saturating_sub(ARCHIVED_BEFORE_FILL + HEARTBEAT_ROOM);
    let fill = wanted.min(room);
    if fill < wanted {
        eprintln!(
            "e2e WARNING: Prosody keeps at most {limit} messages per archive \
             (storage_archive_item_limit; past it, it drops the oldest, our resume point \
             included) and Frank's needs room for {} more: filling {fill} instead of \
             {wanted}. Raise storage_archive_item_limit in hush-test-support's prosody module.",
            ARCHIVED_BEFORE_FILL + HEARTBEAT_ROOM
        );
    }
    let t = Instant::now();
    let erin_jid = server.register("erin");
    let frank_jid = server.register("frank");
    let frank_file = scratch.file("frank.sqlite");
    let snapshot = scratch.file("frank-before-catch-up.sqlite");
    let (erin_store, frank_device) = rt.block_on(async {
        let mut erin = device(server, &scratch.file("erin.sqlite"), &erin_jid).await;
        let mut frank = device(server, &frank_file, &frank_jid).await;
        erin.send_text(frank.jid(), "hello").await.unwrap();
        expect(&mut frank, "hello").await;
        let frank_device = frank.device_id();
        await_confirmed(&mut erin, &[(frank.jid().clone(), frank_device)]).await;
        // Closing the last connection checkpoints the WAL into the main file.
        drop(frank.close().await.unwrap());
        (erin.close().await.unwrap(), frank_device)
    });
    let mut wal = frank_file.as_os_str().to_owned();
    wal.push("-wal");
    assert!(
        !Path::new(&wal).exists(),
        "the store's WAL outlived its connection"
    );
    std::fs::copy(&frank_file, &snapshot).unwrap();
    eprintln!(
        "e2e setup: catch-up accounts and sessions in {:.2?}",
        t.elapsed()
    );

    // The fill: Erin's messages encrypted exactly as `send_text` does (SCE envelope, OMEMO:2,
    // her established session), but sent straight through an `XmppClient`: `send_text` spends
    // two device-list round trips per message, which would make this setup take minutes
    // (see `one_to_one/burst` for its real rate). What lands in the archive is the same.
    let t = Instant::now();
    rt.block_on(async {
        let erin_keys = erin_store.account().unwrap().unwrap().device;
        let mut session = erin_store
            .session(&SessionKey::new(Suite::Omemo2, &frank_jid, frank_device))
            .unwrap()
            .unwrap();
        let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
        let frank: BareJid = frank_jid.parse().unwrap();
        let mut xmpp = XmppClient::connect(&erin_jid, PASSWORD, &options(server))
            .await
            .unwrap();
        for i in 0..fill {
            let envelope = sce::seal(
                &[sce::body(&format!("archived {i}"))],
                &erin_jid,
                &frank_jid,
                Some(unix_now()),
                &mut rng,
            )
            .unwrap();
            let element = seal(
                Suite::Omemo2,
                erin_keys.device_id(),
                Some(&envelope),
                &mut [Recipient {
                    jid: &frank_jid,
                    device_id: frank_device,
                    session: &mut session,
                }],
                &mut rng,
            )
            .unwrap();
            xmpp.send_message(&hush_engine::MessageStanza::encrypted(
                frank.as_str(),
                element.clone(),
                format!("fill-{i}"),
            ))
            .await
            .unwrap();
            // Keep at most a few hundred messages queued at the server (its answer to a
            // ping comes after it has handled, and archived, everything sent before).
            if i % 200 == 199 {
                xmpp.flush().await.unwrap();
            }
        }
        // Once the server answered the close's ping, it has archived everything.
        xmpp.close().await.unwrap();
    });
    let filled = t.elapsed();
    eprintln!(
        "e2e setup: {fill} messages sent into Frank's archive in {filled:.2?} ({:.0} msgs/s)",
        fill as f64 / filled.as_secs_f64()
    );

    // One catch-up from Frank's store as it was before: open, connect, catch up, all timed.
    let (frank_file, snapshot) = (&frank_file, &snapshot);
    let catch_up = move || async move {
        remove_store(frank_file);
        std::fs::copy(snapshot, frank_file).unwrap();
        let t = Instant::now();
        let store = SqliteStore::open(frank_file, &Default::default()).unwrap();
        let mut hush = Hush::connect(store, PASSWORD, &options(server))
            .await
            .unwrap();
        let got = hush.catch_up(0).await.unwrap();
        let took = t.elapsed();
        assert_eq!(got.len(), fill, "messages caught up");
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d.body.as_deref(), Some(format!("archived {i}").as_str()));
        }
        drop(hush.close().await.unwrap());
        took
    };
    // The first connect after the fill is the real case: the messages are also waiting as
    // offline messages (Hush sends presence after reading the archive, so Prosody leaves them
    // to the archive instead of pushing them too).
    let first = rt.block_on(catch_up());
    eprintln!("e2e: first catch-up of {fill}{label} took {first:.2?}");

    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(fill as u64));
    let frank_jid = &frank_jid;
    let read_only = move || async move {
        let t = Instant::now();
        let mut xmpp = XmppClient::connect(frank_jid, PASSWORD, &options(server))
            .await
            .unwrap();
        let (mut after, mut read) = (None::<String>, 0);
        loop {
            xmpp.query_archive(after.as_deref(), Some(0)).await.unwrap();
            let page = xmpp.archive_page().await.unwrap();
            read += page.messages.len();
            after = page.last;
            if page.complete {
                break;
            }
        }
        let took = t.elapsed();
        // Everything Erin sent, plus what else Frank's archive holds (the first exchange, the
        // heartbeats of earlier catch-ups).
        assert!(read >= fill, "read {read} of at least {fill}");
        xmpp.close().await.unwrap();
        took
    };
    if selected(&[&read_name]) {
        group.bench_function(&read_name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += read_only().await;
                    }
                    total
                })
            })
        });
    }
    if !selected(&[&catch_up_name]) {
        return;
    }
    group.bench_function(&catch_up_name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += catch_up().await;
                }
                total
            })
        })
    });
}

criterion_group!(benches, e2e);
criterion_main!(benches);
