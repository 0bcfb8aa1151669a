//! The agent downloads files off its loop: an upload service that takes a download's request
//! and never answers (`hush-devserver`'s `Silent` mode) holds up neither the messages that come
//! after the file nor the agent's other work.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::Path;

use base64::Engine as _;
use hush_devserver::{DevServer, UploadAttack};
use support::{hush_command, json_lines, ok, scratch, Running};

/// `hush` for `home`, trusting the devserver's upload CA (written as PEM to `ca`).
fn hush(home: &Path, ca: &Path, args: &[&str]) -> std::process::Output {
    hush_command(home)
        .env("SSL_CERT_FILE", ca)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_silent_download_holds_up_nothing_else_in_the_agent() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(DevServer::start(Default::default()))
        .unwrap();
    let dir = scratch("files-agent-silent");
    let ca = dir.join("upload-ca.pem");
    let der = base64::engine::general_purpose::STANDARD.encode(server.upload_ca_der());
    std::fs::write(
        &ca,
        format!("-----BEGIN CERTIFICATE-----\n{der}\n-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    let addr = server.address().to_string();
    let mut homes = Vec::new();
    for user in ["alice", "bob"] {
        let jid = server.register(user, "pw").unwrap();
        let home = dir.join(user);
        ok(hush(
            &home,
            &ca,
            &[
                "init",
                "--jid",
                &jid,
                "--server",
                &addr,
                "--insecure-loopback",
                "--password-env",
                "HUSH_TEST_PW",
            ],
        ));
        homes.push((home, jid));
    }
    let (alice, alice_jid) = &homes[0];
    let (bob, bob_jid) = &homes[1];
    // Bob wrote to Alice: her files are fetched by themselves.
    ok(hush(bob, &ca, &["send", alice_jid, "send me the report"]));
    ok(hush(
        alice,
        &ca,
        &["recv", "--count", "1", "--timeout", "30"],
    ));

    let agent = Running::start_with(bob, &["agent"], &[("SSL_CERT_FILE", ca.as_os_str())]);
    agent.wait_note("listening on");
    server.set_upload_attack(Some(UploadAttack::Silent));
    let report = dir.join("report.pdf");
    std::fs::write(&report, vec![7u8; 10_000]).unwrap();
    ok(hush(
        alice,
        &ca,
        &["send-file", bob_jid, report.to_str().unwrap()],
    ));
    ok(hush(
        alice,
        &ca,
        &["send", bob_jid, "sent it, did it come?"],
    ));

    // The text comes at once, while the file's download hangs (it would take minutes to give
    // up); and the agent still does its other work.
    let got = json_lines(&ok(hush(
        bob,
        &ca,
        &["--json", "recv", "--count", "1", "--timeout", "30"],
    )));
    assert_eq!(got[0]["body"], "sent it, did it come?", "{got:?}");
    let status = ok(hush(bob, &ca, &["--json", "status", alice_jid]));
    assert!(status.contains(alice_jid.as_str()), "{status}");
    drop(agent);
    drop(runtime);
}
