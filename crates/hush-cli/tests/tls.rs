//! The `hush` binary over STARTTLS (rustls) to a Prosody that requires encryption: with the
//! server's CA trusted (through `SSL_CERT_FILE`, which the system trust store loader honours)
//! two users talk; without it the login fails at once with a certificate error.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hush_test_support::prosody::Prosody;

/// Runs `hush`, trusting `ca` when given (and nothing from the environment otherwise).
fn hush_tls(home: &Path, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hush"));
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", "tls test passphrase");
    match ca {
        Some(ca) => cmd.env("SSL_CERT_FILE", ca),
        // An empty trust store: no system CA can vouch for the test certificate anyway.
        None => cmd.env("SSL_CERT_FILE", home.join("no-such-ca.pem")),
    };
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn home(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn init(server: &Prosody, home: &Path, jid: &str, ca: Option<&Path>) -> Output {
    let addr = server.address();
    hush_tls(
        home,
        ca,
        &[
            "init",
            "--jid",
            jid,
            "--server",
            &addr,
            "--password-env",
            "HUSH_TEST_PW",
        ],
    )
}

#[test]
fn starttls_with_a_trusted_certificate_and_refusal_without() {
    let server = Prosody::start_tls("tls");
    let ca = server.ca_file();
    let alice_jid = server.register("alice", "pw");
    let bob_jid = server.register("bob", "pw");

    // Untrusted certificate: a clear error, quickly, and no account is left half-made.
    let mallory_home = home("untrusted");
    let out = init(&server, &mallory_home, &alice_jid, None);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "the error names the certificate problem: {err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );

    let alice = home("alice");
    let bob = home("bob");
    for (h, jid) in [(&alice, &alice_jid), (&bob, &bob_jid)] {
        let out = init(&server, h, jid, Some(&ca));
        assert!(out.status.success(), "init over TLS: {}", text(&out));
    }
    let out = hush_tls(&alice, Some(&ca), &["send", &bob_jid, "over TLS"]);
    assert!(out.status.success(), "send: {}", text(&out));
    let out = hush_tls(
        &bob,
        Some(&ca),
        &["--json", "recv", "--count", "1", "--timeout", "30"],
    );
    assert!(out.status.success(), "recv: {}", text(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["body"], "over TLS", "{line}");
    assert_eq!(v["from"], alice_jid.as_str());

    // The server saw an encrypted connection only: it refuses plaintext logins, and
    // `--insecure-loopback` cannot get around that.
    let out = hush_tls(
        &home("plain"),
        None,
        &[
            "init",
            "--jid",
            &alice_jid,
            "--server",
            &server.address(),
            "--insecure-loopback",
            "--password-env",
            "HUSH_TEST_PW",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("require TLS"), "{}", text(&out));
}
