//! The `hush` binary over STARTTLS (rustls) to a Prosody that requires encryption: with the
//! server's CA trusted (through `SSL_CERT_FILE`, which the system trust store loader honours)
//! two users talk; without it the login fails at once with a certificate error. Without
//! `--server`, the server is found through DNS SRV records (a private DNS server of the test),
//! over direct TLS or STARTTLS, in their order.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hush_test_support::dns::{Answer, DnsServer};
use hush_test_support::prosody::{Prosody, DNS_DOMAIN};

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

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hush init` without `--server`, finding the server through the DNS server `dns`.
fn init_through_dns(home: &Path, jid: &str, dns: &DnsServer, ca: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hush"));
    cmd.arg("--home")
        .arg(home)
        .args(["init", "--jid", jid, "--password-env", "HUSH_TEST_PW"])
        .env("HUSH_TEST_PW", "pw")
        .env("HUSH_PASSPHRASE", "tls test passphrase")
        .env("HUSH_DNS_SERVER", dns.address().to_string())
        .env("SSL_CERT_FILE", ca);
    cmd.output().unwrap()
}

/// The SRV records of the test domain for direct TLS (on `direct`) and STARTTLS (on
/// `starttls`), with their priorities, and the address of the host they name.
fn records(direct: (u16, u16), starttls: (u16, u16)) -> Vec<Answer> {
    let srv = |name: &str, (priority, port): (u16, u16)| Answer::Srv {
        name: name.into(),
        priority,
        weight: 0,
        port,
        target: format!("xmpp.{DNS_DOMAIN}"),
    };
    vec![
        srv(&format!("_xmpps-client._tcp.{DNS_DOMAIN}"), direct),
        srv(&format!("_xmpp-client._tcp.{DNS_DOMAIN}"), starttls),
        Answer::A {
            name: format!("xmpp.{DNS_DOMAIN}"),
            addr: std::net::Ipv4Addr::LOCALHOST,
        },
    ]
}

#[test]
fn the_server_is_found_through_dns_srv_with_direct_tls_or_starttls() {
    let server = Prosody::start_tls("srv");
    let ca = server.ca_file();
    let direct = server.direct_tls_port.unwrap();
    let (starttls, closed) = (server.port, closed_port());
    // A port that records whether anyone connected: a record that must not be tried.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let untried = trap.local_addr().unwrap().port();
    // A server that takes connections (the kernel does) and never says a word.
    let silent_server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = silent_server.local_addr().unwrap().port();
    // (what DNS says, as (priority, port) for direct TLS and STARTTLS; the lowest priority
    // that answers is used, and nothing after it is tried)
    let cases = [
        ("direct TLS first", records((5, direct), (10, untried))),
        ("STARTTLS first", records((10, untried), (5, starttls))),
        (
            "the first one is down",
            records((5, closed), (10, starttls)),
        ),
        (
            "the first one is silent",
            records((5, silent), (10, starttls)),
        ),
    ];
    for (n, (what, answers)) in cases.into_iter().enumerate() {
        let dns = DnsServer::start(answers);
        let user = format!("user{n}");
        let jid = server.register_on(&user, DNS_DOMAIN, "pw");
        let out = init_through_dns(&home(&user), &jid, &dns, &ca);
        assert!(out.status.success(), "{what}: {}", text(&out));
        assert!(dns.queries() >= 2, "{what}: DNS was not asked");
        assert!(
            matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{what}: a record after the one that answered was tried"
        );
    }
    // Nothing answers: one line naming every place tried, and why.
    let dns = DnsServer::start(records((5, closed), (10, closed)));
    let jid = server.register_on("nobody", DNS_DOMAIN, "pw");
    let out = init_through_dns(&home("nobody"), &jid, &dns, &ca);
    assert!(!out.status.success());
    let err = text(&out);
    let error_lines: Vec<_> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{err}");
    for named in [
        format!("xmpp.{DNS_DOMAIN}:{closed} (direct TLS)"),
        format!("xmpp.{DNS_DOMAIN}:{closed} (STARTTLS)"),
    ] {
        assert!(error_lines[0].contains(&named), "{named} in {err}");
    }
}
