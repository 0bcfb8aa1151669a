//! A large file's round trip through a private Prosody and its HTTPS upload service, with the
//! `hush` binary as users run it: `hush send-file` (encrypt while uploading, then the message)
//! and `hush recv` (the message, then download while decrypting and checking), each timed, and
//! the peak resident memory of each process.
//!
//! `cargo bench -p hush-cli --bench files` moves 1 GiB; `cargo test --benches` runs it once
//! with 8 MiB (`HUSH_BENCH_FILE_MIB` sets another size). Either way the received file must hash as the sent one, and neither process
//! may hold more than [`FLAT_MEMORY`] at its peak: the file streams, it is never in memory.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    missing_docs
)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hush_test_support::prosody::{test_ca_file, Prosody};
use rand::RngExt;

const PASSPHRASE: &str = "files bench passphrase";
/// The most resident memory a sending or receiving `hush` may reach, whatever the file's size.
const FLAT_MEMORY: u64 = 128 << 20;

fn hush(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hush"));
    c.arg("--home")
        .arg(home)
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", PASSPHRASE)
        .env("SSL_CERT_FILE", test_ca_file())
        .stdin(Stdio::null());
    c
}

/// Runs `cmd` to its end; its wall time and its peak resident memory (VmHWM, read from /proc
/// while it runs: the peak of a process streaming a file is reached long before it ends).
fn measured(mut cmd: Command) -> (Duration, u64, String) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = 0u64;
    let status = loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib * 1024);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        // Sampling for a measurement, not waiting for an event.
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {out}{err}");
    (elapsed, peak, out)
}

fn init(server: &Prosody, dir: &Path, user: &str) -> (PathBuf, String) {
    let jid = server.register(user, "pw");
    let home = dir.join(user);
    let out = hush(&home)
        .args(["init", "--jid", &jid, "--server", &server.address()])
        .args(["--insecure-loopback", "--password-env", "HUSH_TEST_PW"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (home, jid)
}

/// Writes `size` random bytes to `path` (1 MiB at a time); gives their SHA-256.
fn random_file(path: &Path, size: u64) -> [u8; 32] {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = hush_files::Sha256::new();
    let mut piece = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        rand::rng().fill(&mut piece[..n]);
        hash.update(&piece[..n]);
        file.write_all(&piece[..n]).unwrap();
        left -= n as u64;
    }
    file.flush().unwrap();
    hash.finish()
}

fn file_sha256(path: &Path) -> [u8; 32] {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hash = hush_files::Sha256::new();
    let mut piece = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&piece[..n]);
    }
    hash.finish()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // HUSH_BENCH_FILE_MIB picks another size (MiB).
    let size: u64 = match std::env::var("HUSH_BENCH_FILE_MIB") {
        Ok(mib) => {
            mib.parse::<u64>()
                .expect("HUSH_BENCH_FILE_MIB: a number of MiB")
                << 20
        }
        Err(_) if full => 1 << 30,
        Err(_) => 8 << 20,
    };
    let server = Prosody::start_with_uploads("files-bench");
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("files-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (alice, alice_jid) = init(&server, &dir, "alice");
    let (bob, bob_jid) = init(&server, &dir, "bob");
    // Bob's contact: her files are fetched by themselves.
    let added = hush(&bob)
        .args(["contacts", "add", &alice_jid])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let source = dir.join("big.bin");
    let sent_hash = random_file(&source, size);

    let mut send = hush(&alice);
    send.args(["send-file", &bob_jid, source.to_str().unwrap()]);
    let (up, up_peak, _) = measured(send);

    let downloads = dir.join("downloads");
    let mut recv = hush(&bob);
    recv.args(["--json", "recv", "--count", "1", "--timeout", "60"])
        .arg("--downloads")
        .arg(&downloads)
        .args(["--max-download", &(size + 1).to_string()]);
    let (down, down_peak, out) = measured(recv);
    let got: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let saved = PathBuf::from(
        got["file"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{got}")),
    );
    assert_eq!(
        file_sha256(&saved),
        sent_hash,
        "the file changed on the way"
    );

    let mib = size as f64 / f64::from(1 << 20);
    let mb_s = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    println!(
        "files/round_trip {mib:.0} MiB: send-file {:.2} s ({:.0} MB/s, peak RSS {} MiB), \
         recv {:.2} s ({:.0} MB/s, peak RSS {} MiB)",
        up.as_secs_f64(),
        mb_s(up),
        up_peak >> 20,
        down.as_secs_f64(),
        mb_s(down),
        down_peak >> 20
    );
    for (what, peak) in [("send-file", up_peak), ("recv", down_peak)] {
        assert!(
            peak > 0 && peak < FLAT_MEMORY,
            "{what} reached {} MiB of resident memory for a {mib:.0} MiB file",
            peak >> 20
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
