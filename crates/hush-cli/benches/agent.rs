//! What the key agent costs (issue #14): one message sent through `hush agent`'s socket
//! (JSON-RPC, as a script in another process sends it) against one sent with the in-process
//! API (`Hush::send_text`), both to the same contact on a private Prosody, sessions
//! established, stores on disk. Target: the agent's cost per message at most 1.5× the
//! in-process one.
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

    fn send(&mut self, to: &str, text: &str) {
        self.id += 1;
        let request = serde_json::json!({"jsonrpc": "2.0", "id": self.id, "method": "send",
                                         "params": {"to": to, "text": text}});
        writeln!(self.writer, "{request}").unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["result"]["sent"], true, "{answer}");
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
    group.finish();
    drop(rpc);
    drop(agent);
    let _ = rt.block_on(carol.close());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, agent_against_in_process);
criterion_main!(benches);
