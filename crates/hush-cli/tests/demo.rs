//! `hush demo` is the README's first command: it must run with nothing set up (no home
//! directory, no server installed) and tell a story whose every claim it checked.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> (bool, String, String) {
    demo_logged(args, None)
}

fn demo_logged(args: &[&str], log: Option<&str>) -> (bool, String, String) {
    // No HOME, no HUSH_HOME, no passphrase and no terminal: the demo must not need any.
    let mut command = Command::new(env!("CARGO_BIN_EXE_hush"));
    match log {
        Some(level) => command.env("HUSH_LOG", level),
        None => command.env_remove("HUSH_LOG"),
    };
    let out = command
        .args(args)
        .env_remove("HOME")
        .env_remove("HUSH_HOME")
        .env_remove("HUSH_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn events<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["event"] == kind).collect()
}

#[test]
fn the_json_demo_tells_the_whole_story() {
    let (ok, out, err) = demo(&["--json", "demo"]);
    assert!(ok, "demo failed: {out}\n{err}");
    let all: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();

    // Four devices, each with its own key.
    let devices = events(&all, "device");
    assert_eq!(devices.len(), 4);
    let mut fps: Vec<&str> = devices
        .iter()
        .map(|d| d["fingerprint"].as_str().unwrap())
        .collect();
    fps.sort();
    fps.dedup();
    assert_eq!(fps.len(), 4);
    assert!(fps.iter().all(|f| f.len() == 71), "{fps:?}");

    // The server held only ciphertext, shown next to what the devices read.
    let stored = events(&all, "server_stored");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["plaintext_found"], false);
    let pairs = stored[0]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    for p in pairs {
        let cipher = p["server_has"].as_str().unwrap();
        let plain = p["devices_read"].as_str().unwrap();
        assert!(!cipher.contains(plain) && cipher.len() > plain.len() / 2);
    }

    // Both phones verified the three other devices.
    let verified = events(&all, "verified");
    assert_eq!(verified.len(), 2);
    assert!(verified
        .iter()
        .all(|v| v["verified"].as_array().unwrap().len() == 3));

    // The tampered message was refused visibly, and the session went on.
    let detected = events(&all, "tamper_detected");
    assert_eq!(detected.len(), 1);
    assert!(!detected[0]["error"].as_str().unwrap().is_empty());
    assert_eq!(events(&all, "session_survived").len(), 1);

    // The offline laptop caught up on all five messages, the tampered one intact.
    let catch_up = events(&all, "catch_up");
    assert_eq!(catch_up[0]["messages"], 5);

    // A private room: one message read by the three other devices, only ciphertext archived.
    let room = events(&all, "room");
    assert_eq!(room.len(), 1);
    assert_eq!(room[0]["members_only"], true);
    assert_eq!(room[0]["non_anonymous"], true);
    let room_sent = events(&all, "room_sent");
    assert_eq!(room_sent[0]["readers"].as_array().unwrap().len(), 3);
    let received = events(&all, "received");
    let room_read: Vec<&&Value> = received
        .iter()
        .filter(|e| {
            e["body"] == "Who's in for Friday?" || e["body"] == "Me! And I'll book the table."
        })
        .collect();
    assert_eq!(room_read.len(), 6, "{room_read:?}");
    assert_eq!(events(&all, "room_stored")[0]["plaintext_found"], false);

    // A photo: both of Alice's devices saved it identical; the server held ciphertext under a
    // random name; the copy served with a bit flipped was refused.
    assert_eq!(events(&all, "file_sent").len(), 1);
    let files = events(&all, "file_received");
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files
        .iter()
        .all(|f| f["identical"] == true && f["name"] == "summit.jpg"));
    let stored = events(&all, "file_stored");
    assert_eq!(stored[0]["plaintext_found"], false);
    assert_eq!(stored[0]["name_seen"], false);
    let tampered = events(&all, "file_tampered");
    assert!(tampered[0]["error"]
        .as_str()
        .unwrap()
        .contains("does not match"));

    // Properties: weak before verification, strong after.
    // Alice's laptop and phone compare the same seven words; the phone's trust messages
    // then make the laptop trust both of Bob's devices.
    let sas = events(&all, "sas");
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0]["words"].as_array().map(Vec::len), Some(7), "{sas:?}");
    assert_eq!(events(&all, "trust_before")[0]["verified"], 0);
    let spread = events(&all, "trust_message");
    assert_eq!(spread.len(), 1);
    let applied = spread[0]["applied"].as_array().unwrap();
    for bob_device in ["Bob's phone", "Bob's laptop"] {
        assert!(
            applied
                .iter()
                .any(|a| a.as_str().unwrap().starts_with(bob_device)
                    && a.as_str().unwrap().ends_with(": verified")),
            "{applied:?}"
        );
    }

    let summary = events(&all, "summary");
    assert_eq!(summary[0]["ok"], true);
    assert_eq!(summary[0]["before_verification"]["authentication"], "weak");
    assert_eq!(summary[0]["after_verification"]["authentication"], "strong");
    for key in [
        "confidentiality",
        "integrity",
        "forward_secrecy",
        "deniability",
    ] {
        assert_eq!(summary[0]["after_verification"][key], true, "{key}");
    }
}

#[test]
fn the_text_demo_reads_as_a_story() {
    let (ok, out, err) = demo(&["demo"]);
    assert!(ok, "demo failed: {out}\n{err}");
    for line in [
        "A private XMPP server, and four devices",
        "What the server stored",
        "Searching all the server's storage for the plaintexts: not found",
        "refused it, loudly",
        "The session survived",
        "catches up",
        "After verification:  confidentiality yes",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

/// The most verbose log shows every layer's log, but never the login exchange: the network
/// library's `trace` lines carry the raw stream, SASL included.
#[test]
fn no_log_level_prints_the_login_exchange() {
    let (ok, out, err) = demo_logged(&["--json", "demo"], Some("trace"));
    assert!(ok, "demo failed: {out}\n{err}");
    assert!(err.contains("[DEBUG"), "the log is on: {err}");
    for secret in ["<auth", "<response", "<success", "SEND ", "RECV "] {
        assert!(!err.contains(secret), "`{secret}` in the log:\n{err}");
    }
    assert!(!err.contains("demo-password"));
}

/// Standard output closed before anything is written (`hush demo | true`): the demo still
/// checks its story and ends well, with no panic. (Before, the first line panicked with
/// "failed printing to stdout: Broken pipe".)
#[test]
fn a_closed_standard_output_is_no_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["demo", "--json"])
        .env_remove("HUSH_LOG")
        .env_remove("HUSH_HOME")
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
