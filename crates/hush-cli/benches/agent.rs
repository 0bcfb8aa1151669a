//! What the key agent costs (issue #14), on a private Prosody with sessions established and
//! stores on disk:
//!
//! - `agent/send/…`: one message sent through `hush agent`'s socket (JSON-RPC, as a script in
//!   another process sends it) against one sent with the in-process API (`Hush::send_text`).
//! - `agent/notify/…`: one message from an in-process sender until a subscriber of the agent's
//!   socket has its notification (and acknowledged it), against until an in-process receiver
//!   (`Hush::receive`) has it.
//! - `agent/history/…`: the last 200 messages of a conversation through the socket, with the
//!   agent holding 10,000 messages with 50 contacts; its resident memory is printed then.
//!
//! Target: the agent's cost per message at most 1.5× the in-process one.
//!
//! `cargo bench -p hush-cli --bench agent` measures; `cargo test --benches` runs each once.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hush_proto::{LocalDevice, DEFAULT_PREKEYS};
use hush_store::{SqliteStore, Store};
use hush_test_support::prosody::Prosody;
use hush_xmpp::{BareJid, ConnectOptions, Hush};

const PASSPHRASE: &str = "agent bench passphrase";

fn scratch() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hush(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.arg("--home")
        .arg(home)
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", PASSPHRASE)
        .stdin(Stdio::null());
    c
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `hush init` of `user` (registered first) in a home under `dir`.
fn init(server: &Prosody, dir: &Path, user: &str) -> (PathBuf, String) {
    let jid = server.register(user, "pw");
    let home = dir.join(user);
    let address = server.address();
    ok(hush(&home)
        .args(["init", "--jid", &jid, "--server", &address])
        .args(["--insecure-loopback", "--password-env", "HUSH_TEST_PW"])
        .output()
        .unwrap());
    (home, jid)
}

/// A running agent, stopped (SIGTERM) when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Starts the agent of `home` and waits until it listens.
fn agent(home: &Path) -> Agent {
    let mut child = hush(home)
        .arg("agent")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the agent ended before listening")
            .unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    // Its later notes are read and dropped, so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Agent(child)
}

/// A JSON-RPC client on the agent's socket, as a script would have one.
struct Rpc {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    id: u64,
}

impl Rpc {
    fn connect(home: &Path) -> Self {
        let stream = UnixStream::connect(home.join("agent.sock")).unwrap();
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            id: 0,
        }
    }

    /// Calls `method` and gives its result (notifications read meanwhile are dropped: only a
    /// subscribed connection gets them, and it calls nothing but `ack`).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.id += 1;
        let request = serde_json::json!({"jsonrpc": "2.0", "id": self.id, "method": method,
                                         "params": params});
        writeln!(self.writer, "{request}").unwrap();
        loop {
            let answer = self.line();
            if answer.get("id").is_some() {
                assert!(answer.get("error").is_none(), "{answer}");
                return answer["result"].clone();
            }
        }
    }

    fn line(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn send(&mut self, to: &str, text: &str) {
        let result = self.call("send", serde_json::json!({"to": to, "text": text}));
        assert_eq!(result["sent"], true, "{result}");
    }

    /// The next message notification's body, acknowledged.
    fn next_body(&mut self) -> String {
        let n = self.line();
        assert_eq!(n["method"], "message", "{n}");
        let seq = n["params"]["seq"].clone();
        self.call("ack", serde_json::json!({"seq": seq}));
        n["params"]["body"].as_str().unwrap_or_default().to_owned()
    }
}

/// A device of a new account `user`, in this process, with its store on disk.
async fn in_process(server: &Prosody, dir: &Path, user: &str) -> Hush<SqliteStore> {
    let jid = server.register(user, "pw");
    let mut store = SqliteStore::open(dir.join(format!("{user}.db")), &Default::default()).unwrap();
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let keys = LocalDevice::generate(4242, DEFAULT_PREKEYS, 0, &mut rng).unwrap();
    store.create_account(&jid, &keys).unwrap();
    let options = ConnectOptions {
        server: Some(server.address()),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    };
    let mut hush = Hush::connect(store, "pw", &options).await.unwrap();
    hush.announce().await.unwrap();
    hush
}

fn agent_against_in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = scratch();
    let server = Prosody::start("agent-bench");
    let (bob_home, bob) = init(&server, &dir, "bob");
    let (alice_home, _alice) = init(&server, &dir, "alice");
    let mut carol = rt.block_on(in_process(&server, &dir, "carol"));
    let bob_jid: BareJid = bob.parse().unwrap();

    // Sessions first: each sender's key exchange is read and answered by Bob, so what the
    // benches send are ordinary messages.
    let agent = agent(&alice_home);
    let mut rpc = Rpc::connect(&alice_home);
    rpc.send(&bob, "hello from alice");
    rt.block_on(carol.send_text(&bob_jid, "hello from carol"))
        .unwrap();
    ok(hush(&bob_home)
        .args(["recv", "--count", "2", "--timeout", "30"])
        .output()
        .unwrap());
    // Carol reads Bob's answer (the agent reads Alice's by itself).
    let _ = rt.block_on(carol.receive(Duration::from_secs(2))).unwrap();

    let mut group = c.benchmark_group("agent");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let mut n = 0u64;
    group.bench_function("send/through_the_agent", |b| {
        b.iter(|| {
            n += 1;
            rpc.send(&bob, &format!("through the agent {n}"));
        })
    });
    group.bench_function("send/in_process", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(carol.send_text(&bob_jid, &format!("in process {n}")))
                .unwrap();
        })
    });
    // Receiving: Carol writes to Alice (her agent; a script subscribed to it) and to Dave (in
    // this process); each iteration ends when the message is in the reader's hands.
    let mut dave = rt.block_on(in_process(&server, &dir, "dave"));
    let dave_jid = dave.jid().clone();
    let alice_jid: BareJid = _alice.parse().unwrap();
    let mut feed = Rpc::connect(&alice_home);
    feed.call("subscribe", serde_json::json!({"ack": true}));
    for (to, first) in [(&alice_jid, true), (&dave_jid, false)] {
        rt.block_on(carol.send_text(to, "hello")).unwrap();
        if first {
            assert_eq!(feed.next_body(), "hello");
        } else {
            let d = rt.block_on(dave.receive(Duration::from_secs(20))).unwrap();
            assert_eq!(d.unwrap().body.as_deref(), Some("hello"));
        }
    }
    group.bench_function("notify/through_the_agent", |b| {
        b.iter(|| {
            n += 1;
            let text = format!("to the agent {n}");
            rt.block_on(carol.send_text(&alice_jid, &text)).unwrap();
            assert_eq!(feed.next_body(), text);
        })
    });
    group.bench_function("notify/in_process", |b| {
        b.iter(|| {
            n += 1;
            let text = format!("in process {n}");
            rt.block_on(carol.send_text(&dave_jid, &text)).unwrap();
            let d = rt.block_on(dave.receive(Duration::from_secs(20))).unwrap();
            assert_eq!(d.unwrap().body.as_deref(), Some(text.as_str()));
        })
    });
    group.finish();
    drop(feed);
    drop(rpc);
    drop(agent);
    let _ = rt.block_on(carol.close());
    let _ = rt.block_on(dave.close());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Messages and contacts in the store of the agent whose memory is measured.
const HISTORY: usize = 10_000;
const CONTACTS: usize = 50;

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn agent_memory(c: &mut Criterion) {
    let dir = scratch().join("memory");
    let server = Prosody::start("agent-memory");
    let jid = server.register("erin", "pw");
    let home = dir.join("erin");
    ok(hush(&home)
        .args(["init", "--jid", &jid, "--server", &server.address()])
        .args(["--insecure-loopback", "--password-env", "HUSH_TEST_PW"])
        .arg("--unencrypted-store")
        .output()
        .unwrap());
    // 10,000 messages sent to 50 contacts, as history holds them (marked sent: nothing
    // waits in the outbox), written straight into the store before the agent opens it.
    {
        let mut store = SqliteStore::open(home.join("store.db"), &Default::default()).unwrap();
        let device = store.account().unwrap().unwrap().device.device_id();
        for i in 0..HISTORY {
            let message = hush_store::Outgoing {
                ids: hush_store::MessageIds {
                    origin_id: Some(format!("bench-{i}")),
                    ..Default::default()
                },
                peer: format!("contact{}@localhost", i % CONTACTS),
                sender: jid.clone(),
                sender_device: device,
                suite: hush_proto::Suite::Omemo2,
                at: 1_700_000_000 + i as u64,
                body: format!("message {i}: an ordinary line of chat, about as long as most")
                    .into_bytes(),
                encrypted: true,
                stanza: Vec::new(),
            };
            let id = store.commit_outgoing(&[], &message).unwrap();
            store.mark_sent(id).unwrap();
        }
    }
    let agent = agent(&home);
    let mut rpc = Rpc::connect(&home);
    for k in 0..CONTACTS {
        let got = rpc.call(
            "history",
            serde_json::json!({"jid": format!("contact{k}@localhost"), "limit": 200}),
        );
        assert_eq!(
            got["messages"].as_array().unwrap().len(),
            HISTORY / CONTACTS
        );
    }
    eprintln!(
        "agent/memory: the agent's resident memory with {HISTORY} messages with {CONTACTS} \
         contacts, each conversation's history read once: {} KiB",
        rss_kib(agent.0.id())
    );
    let mut group = c.benchmark_group("agent");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let mut k = 0;
    group.bench_function("history/200_of_10000_messages", |b| {
        b.iter(|| {
            k = (k + 1) % CONTACTS;
            rpc.call(
                "history",
                serde_json::json!({"jid": format!("contact{k}@localhost"), "limit": 200}),
            )
        })
    });
    group.finish();
    eprintln!(
        "agent/memory: after the history bench: {} KiB",
        rss_kib(agent.0.id())
    );
    drop(rpc);
    drop(agent);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, agent_against_in_process, agent_memory);
criterion_main!(benches);
