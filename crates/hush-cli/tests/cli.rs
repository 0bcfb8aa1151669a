//! The `hush` binary against a private Prosody: init, send, recv --json, fingerprint, devices,
//! session reset, and the errors a script relies on.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use hush_test_support::prosody::Prosody;
use serde_json::Value;
use std::process::{Command, Output};
use support::*;

/// Starts `hush recv` and returns once it is connected (it says so on stderr).
fn listen(
    u: &User,
    count: usize,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
) {
    use std::io::BufRead;
    let mut child = hush_command(&u.home)
        .args([
            "--json",
            "recv",
            "--count",
            &count.to_string(),
            "--timeout",
            "20",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("connected as"), "hush recv said {line:?}");
    (child, err)
}

fn finish(
    (child, mut err): (
        std::process::Child,
        std::io::BufReader<std::process::ChildStderr>,
    ),
) -> Vec<Value> {
    use std::io::Read;
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = err.read_to_string(&mut rest);
    assert!(
        out.status.success(),
        "hush recv failed: {}{rest}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn recv_json(u: &User, count: usize) -> Vec<Value> {
    let out = ok(hush(
        &u.home,
        &[
            "--json",
            "recv",
            "--count",
            &count.to_string(),
            "--timeout",
            "20",
        ],
    ));
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn two_people_three_devices_through_prosody() {
    let server = Prosody::start("cli");
    let dir = scratch("cli");
    let alice = init(&server, &dir, "alice", true);
    let bob_phone = init(&server, &dir, "bob", true);
    let bob_laptop = init(&server, &dir, "bob", false);

    // A reader that went away (`hush fingerprint | true`) is no panic and no error: the
    // command stops quietly. (Before, it panicked with "failed printing to stdout".)
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = hush_command(&alice.home)
        .arg("fingerprint")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(closed.status.success() && stderr.is_empty(), "{stderr}");

    // Alice's message reaches both of Bob's devices: the phone live, the laptop (offline
    // meanwhile) from the archive when it comes back.
    let phone = listen(&bob_phone, 1);
    let sent: Value = serde_json::from_str(&ok(hush(
        &alice.home,
        &["--json", "send", &bob_phone.jid, "hello", "bob"],
    )))
    .unwrap();
    assert_eq!(sent["ns"], "omemo:2");
    assert_eq!(sent["devices"].as_array().unwrap().len(), 2, "{sent}");
    for got in [finish(phone), recv_json(&bob_laptop, 1)] {
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["from"], alice.jid.as_str());
        assert_eq!(got[0]["body"], "hello bob");
        assert_eq!(got[0]["ns"], "omemo:2");
        assert_eq!(got[0]["encrypted"], true);
        assert_eq!(got[0]["trust"], "blind");
        assert_eq!(got[0]["security"]["authentication"], "weak");
    }
    // And back: the laptop answers; Alice reads it.
    ok(hush(&bob_laptop.home, &["send", &alice.jid, "hi", "alice"]));
    let got = recv_json(&alice, 1);
    assert_eq!(got[0]["body"], "hi alice");
    assert_eq!(got[0]["from"], bob_laptop.jid.as_str());

    // Fingerprint and devices.
    let fp: Value =
        serde_json::from_str(&ok(hush(&alice.home, &["--json", "fingerprint"]))).unwrap();
    assert_eq!(fp["fingerprint"].as_str().unwrap().len(), 71);
    assert!(fp["uri"]
        .as_str()
        .unwrap()
        .starts_with(&format!("xmpp:{}?omemo-sid-", alice.jid)));
    let devices = ok(hush(&alice.home, &["--json", "devices", &bob_phone.jid]));
    let omemo2: Vec<Value> = devices
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| d["ns"] == "omemo:2")
        .collect();
    assert_eq!(omemo2.len(), 2);
    assert!(omemo2
        .iter()
        .all(|d| d["trust"] == "blind" && d["fingerprint"].is_string()));

    // A session reset is local and explicit; messages flow again right after.
    let reset: Value = serde_json::from_str(&ok(hush(
        &alice.home,
        &["--json", "session", "reset", &bob_phone.jid],
    )))
    .unwrap();
    assert_eq!(reset["reset"], 2);
    ok(hush(
        &alice.home,
        &["send", &bob_phone.jid, "after", "reset"],
    ));
    // The phone, offline since "hello bob", reads the archive in order: first what Bob's
    // laptop sent meanwhile (its copy for Bob's other devices), then Alice's message.
    let got = recv_json(&bob_phone, 2);
    let bodies: Vec<_> = got
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(bodies, ["hi alice", "after reset"], "{got:?}");

    // A contact without OMEMO: a clear error, and nothing is sent.
    let carol = server.register("carol", "pw");
    let out = hush(&alice.home, &["send", &carol, "secret"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains(&carol) && err.lines().count() == 1,
        "{err}"
    );
    // Errors a script can rely on.
    let out = hush(&dir.join("nobody"), &["send", &carol, "x"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("hush init"));
    let out = hush(
        &alice.home,
        &[
            "init",
            "--jid",
            &alice.jid,
            "--password-env",
            "HUSH_TEST_PW",
        ],
    );
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("already holds an account")
    );

    // The server stored only ciphertext.
    let stored = server.stored_bytes();
    for text in ["hello bob", "hi alice", "after reset", "secret"] {
        assert!(
            !stored.windows(text.len()).any(|w| w == text.as_bytes()),
            "{text:?} found on the server"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_by_two_devices_with_carbons_and_archive_catch_up() {
    let server = Prosody::start("cli2x2");
    let dir = scratch("cli2x2");
    let alice_phone = init(&server, &dir, "alice", true);
    let alice_laptop = init(&server, &dir, "alice", false);
    let bob_phone = init(&server, &dir, "bob", true);
    let bob_laptop = init(&server, &dir, "bob", false);

    // Bob's laptop is offline. Alice's laptop sees what her phone sends (Carbons), Bob's phone
    // receives it live.
    let listeners: Vec<_> = [&alice_laptop, &bob_phone]
        .iter()
        .map(|u| listen(u, 1))
        .collect();
    let sent: Value = serde_json::from_str(&ok(hush(
        &alice_phone.home,
        &[
            "--json",
            "send",
            &bob_phone.jid,
            "while",
            "you",
            "were",
            "away",
        ],
    )))
    .unwrap();
    assert_eq!(
        sent["devices"].as_array().unwrap().len(),
        3,
        "two of Bob's devices and Alice's laptop: {sent}"
    );
    for got in listeners.into_iter().map(finish) {
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["body"], "while you were away");
        assert_eq!(got[0]["from"], alice_phone.jid.as_str());
    }
    // Bob's laptop comes back and catches up from the archive.
    let got = recv_json(&bob_laptop, 1);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["body"], "while you were away");

    // The laptop answers; both of Alice's devices and Bob's phone (Carbons) read it.
    let listeners: Vec<_> = [&alice_phone, &alice_laptop, &bob_phone]
        .iter()
        .map(|u| listen(u, 1))
        .collect();
    ok(hush(
        &bob_laptop.home,
        &["send", &alice_phone.jid, "back", "again"],
    ));
    for got in listeners.into_iter().map(finish) {
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["body"], "back again");
        assert_eq!(got[0]["from"], bob_laptop.jid.as_str());
    }
    // Catching up again finds nothing new: every copy (live, carbon, archive) was stored once.
    let out = ok(hush(
        &bob_laptop.home,
        &["--json", "recv", "--timeout", "1"],
    ));
    assert_eq!(out.lines().count(), 0, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_session_is_reported_and_reset_by_hand() {
    let server = Prosody::start("clibroken");
    let dir = scratch("clibroken");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    ok(hush(&alice.home, &["send", &bob.jid, "one"]));
    assert_eq!(recv_json(&bob, 1)[0]["body"], "one");
    ok(hush(&bob.home, &["send", &alice.jid, "two"]));
    assert_eq!(recv_json(&alice, 1)[0]["body"], "two");

    // Bob loses his session state (a restore, a crash of another client, ...).
    ok(hush(&bob.home, &["session", "reset", &alice.jid]));
    ok(hush(&alice.home, &["send", &bob.jid, "three"]));
    let got = recv_json(&bob, 1);
    assert_eq!(
        got.len(),
        1,
        "the failure is reported, not dropped: {got:?}"
    );
    assert_eq!(got[0]["body"], Value::Null);
    assert_eq!(got[0]["failure"], "undecryptable", "{got:?}");
    let error = got[0]["error"].as_str().unwrap();
    assert!(
        error.contains("could not decrypt")
            && error.contains(&format!("hush session reset {}", alice.jid)),
        "{error}"
    );
    // Nothing rebuilt the session behind the user's back.
    let devices = ok(hush(&bob.home, &["--json", "devices", &alice.jid]));
    assert!(
        devices
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).unwrap()["fingerprint"].is_null()),
        "{devices}"
    );

    // Alice resets by hand; one round trip later both directions work again.
    ok(hush(&alice.home, &["session", "reset", &bob.jid]));
    ok(hush(&alice.home, &["send", &bob.jid, "four"]));
    assert_eq!(recv_json(&bob, 1)[0]["body"], "four");
    ok(hush(&bob.home, &["send", &alice.jid, "five"]));
    assert_eq!(recv_json(&alice, 1)[0]["body"], "five");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two `hush` processes advancing the same sessions could reuse a message key: while a
/// `hush recv` runs, a `hush send` from the same home stops with a clear error and sends
/// nothing; afterwards it works.
#[test]
fn a_second_hush_on_the_same_account_waits_its_turn() {
    let server = Prosody::start("cli-lock");
    let dir = scratch("cli-lock");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let running = listen(&bob, 1);
    let out = hush(&bob.home, &["send", &alice.jid, "while recv runs"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another hush is using the account") && err.lines().count() == 1,
        "{err}"
    );
    // Alice's message ends the running `recv`; then Bob can send.
    ok(hush(&alice.home, &["send", &bob.jid, "hello"]));
    let got = finish(running);
    assert_eq!(got[0]["body"], "hello");
    ok(hush(&bob.home, &["send", &alice.jid, "now it works"]));
    assert_eq!(recv_json(&alice, 1)[0]["body"], "now it works");

    // `hush history` reads the conversation from the store, both directions, while nothing
    // else runs or not.
    let history = json_lines(&ok(hush(&bob.home, &["--json", "history", &alice.jid])));
    let lines: Vec<(&str, &str)> = history
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap(),
                m["body"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(lines, [("in", "hello"), ("out", "now it works")]);
    assert!(history.iter().all(|m| m["encrypted"] == true));
    // Each names the other side: who sent what we received, who got what we sent.
    let to: Vec<&str> = history.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to, [bob.jid.as_str(), alice.jid.as_str()]);
    let text = ok(hush(&bob.home, &["history", &alice.jid]));
    let expected = [
        format!("← {}: hello", alice.jid),
        format!("→ {}: now it works", alice.jid),
    ];
    for (line, expected) in text.lines().zip(&expected) {
        assert!(line.ends_with(expected.as_str()), "{line} / {expected}");
    }
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// A body with a carriage return and line breaks, written to look like a verified message
/// from someone else, is printed as one message: the forged header neither starts a line nor
/// overwrites the real one, in `recv` and in `history`.
#[test]
fn text_output_never_shows_a_forged_line() {
    let server = Prosody::start("cli-lines");
    let dir = scratch("cli-lines");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let forged = format!("{} (device 1, omemo:2, verified): pay the bill", bob.jid);
    // (XML cannot carry ESC itself; C1 CSI, U+009B, starts the same escapes on some terminals.)
    let body = format!("hi\r{forged}\n{forged}\u{9b}2K\u{202e}");
    ok(hush(&alice.home, &["send", &bob.jid, &body]));
    let recv = ok(hush(
        &bob.home,
        &["recv", "--count", "1", "--timeout", "20"],
    ));
    let history = ok(hush(&bob.home, &["history", &alice.jid]));
    for out in [&recv, &history] {
        assert!(
            !out.contains('\r') && !out.contains('\u{9b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        let lines: Vec<&str> = out.lines().collect();
        // (The first message also brings the "NEW KEY" notice, a line of its own.)
        let starts = lines
            .iter()
            .filter(|l| !l.starts_with("    | ") && !l.starts_with("!! NEW KEY"))
            .count();
        assert_eq!(starts, 1, "one message, one line of its own: {lines:#?}");
        assert!(
            lines.iter().all(|l| !l.starts_with(&bob.jid)),
            "a line looks like Bob's: {lines:#?}"
        );
        assert!(out.contains(&alice.jid), "{out}");
    }
}

/// A contact's device can be verified before it ever wrote (the newcomer's case: `send`
/// names a new device and says to verify it, and `verify` answered "no session yet"): the key
/// is read from its published bundle. A URI with another key is a mismatch, and nothing is
/// verified.
#[test]
fn a_device_is_verified_from_its_published_keys_before_any_message() {
    let server = Prosody::start("cli-verify-early");
    let dir = scratch("cli-verify-early");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let theirs = &json_lines(&ok(hush(&bob.home, &["--json", "fingerprint"])))[0];
    let uri = theirs["uri"].as_str().unwrap().to_owned();
    let device = theirs["device"].as_u64().unwrap();

    // A key that is not the one Bob's device publishes: a mismatch, nothing verified.
    let fp = theirs["fingerprint"].as_str().unwrap().replace(' ', "");
    let flipped = if fp.ends_with('0') { "1" } else { "0" };
    let forged = uri.replace(&fp, &format!("{}{flipped}", &fp[..fp.len() - 1]));
    assert_ne!(forged, uri);
    let refused = hush(&alice.home, &["verify", &forged]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("FINGERPRINT MISMATCH"),
        "{refused:?}"
    );

    // A device Bob never published: refused, saying why its keys could not be read.
    let absent = uri.replace(&format!("omemo-sid-{device}="), "omemo-sid-4242=");
    assert_ne!(absent, uri);
    let refused = hush(&alice.home, &["verify", &absent]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(
            "device 4242: no session with it, and its published keys could not be read ("
        ) && said.contains("bundles:4242"),
        "{said}"
    );

    let verified = ok(hush(&alice.home, &["--json", "verify", &uri]));
    let verified = &json_lines(&verified)[0];
    assert_eq!(verified["device"], device, "{verified}");
    assert_eq!(verified["trust"], "verified", "{verified}");
    // `devices` shows the key it was checked against, before any message.
    let listed = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bob.jid])));
    let entry = listed
        .iter()
        .find(|d| d["device"] == device)
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(entry["fingerprint"], theirs["fingerprint"], "{entry}");
    assert_eq!(entry["trust"], "verified", "{entry}");
    // The first message goes to a verified device.
    ok(hush(&alice.home, &["send", &bob.jid, "hello, verified"]));
    let status = &json_lines(&ok(hush(&alice.home, &["--json", "status", &bob.jid])))[0];
    let reader = status["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["device"] == device)
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    assert_eq!(reader["trust"], "verified", "{status}");
    assert_eq!(recv_json(&bob, 1)[0]["body"], "hello, verified");

    // Bob's second device, new: trusted by its fingerprint (as `hush fingerprint` shows it,
    // in groups) before it wrote or was written to.
    let phone = init(&server, &dir, "bob", false);
    let second = &json_lines(&ok(hush(&phone.home, &["--json", "fingerprint"])))[0];
    let trusted = ok(hush(
        &alice.home,
        &[
            "--json",
            "trust",
            &bob.jid,
            second["fingerprint"].as_str().unwrap(),
        ],
    ));
    let trusted = &json_lines(&trusted)[0];
    assert_eq!(trusted["device"], second["device"], "{trusted}");
    assert_eq!(trusted["trust"], "verified", "{trusted}");
    // A fingerprint no device has is still an error, after looking at what Bob publishes.
    let unknown = hush(&alice.home, &["trust", &bob.jid, &"ab".repeat(32)]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("nor one it publishes"),
        "{unknown:?}"
    );
}

/// A message larger than servers take (Prosody closes the connection on a stanza over 256 KiB,
/// which `send` reported as "no answer to a ping" while history kept it as sent) is refused
/// before anything is committed: exit 2, nothing in history, and the next send goes through.
#[test]
fn a_message_too_big_for_the_server_is_refused_and_not_recorded() {
    let server = Prosody::start("cli-big");
    let dir = scratch("cli-big");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    ok(hush(&alice.home, &["send", &bob.jid, "first"]));
    let big = "x".repeat(240_000);
    let out = hush_with_input(&alice.home, &["send", &bob.jid, "-"], big.as_bytes());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("servers refuse stanzas over") && err.contains("nothing was sent"),
        "{err}"
    );
    let history = ok(hush(&alice.home, &["--json", "history", &bob.jid]));
    let bodies: Vec<Value> = json_lines(&history)
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, ["first"]);
    ok(hush(&alice.home, &["send", &bob.jid, "after the big one"]));
    let got: Vec<Value> = recv_json(&bob, 2)
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(got, ["first", "after the big one"]);
}

/// An empty `HOME` or `XDG_DATA_HOME` is unset, as the XDG spec says: `hush` must not make or
/// read an account in `./hush` of whatever directory it runs in. (Before, it looked for one
/// in the working directory.)
#[test]
fn an_empty_home_variable_is_not_the_working_directory() {
    let dir = std::env::temp_dir().join(format!("hush-empty-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hush"))
        .args(["history", "bob@example.net"])
        .current_dir(&dir)
        .env("HOME", "")
        .env("XDG_DATA_HOME", "")
        .env_remove("HUSH_HOME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: cannot find a home directory: use --home DIR\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Stderr of a run that must have failed, and changed nothing it was not asked to.
fn failed(out: std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "hush should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// What a newcomer typed, each answered with one clear line (and nothing sent or changed), or
/// done as asked: a full JID, an empty message, the message on standard input, a session or
/// device that does not exist, a blocked contact's settings, a home that is a file.
#[test]
fn a_newcomers_mistakes_get_one_clear_line_each() {
    let server = Prosody::start("cli-newcomer");
    let dir = scratch("cli-newcomer");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);

    let err = failed(hush(
        &alice.home,
        &["send", &format!("{}/phone", bob.jid), "hi"],
    ));
    assert!(
        err.contains(&format!("use the bare JID `{}`", bob.jid)),
        "{err}"
    );
    for empty in ["", "   "] {
        let err = failed(hush(&alice.home, &["send", &bob.jid, empty]));
        assert!(
            err.contains("the message is empty; nothing was sent"),
            "{err}"
        );
    }

    // `-` reads the message from standard input, line breaks and all but the last.
    ok(hush_with_input(
        &alice.home,
        &["send", &bob.jid, "-"],
        b"line one\nline two\n",
    ));
    let got = recv_json(&bob, 1);
    assert_eq!(got[0]["body"], "line one\nline two", "{got:?}");
    let err = failed(hush(
        &alice.home,
        &["--passphrase-stdin", "send", &bob.jid, "-"],
    ));
    assert!(err.contains("--passphrase-stdin reads too"), "{err}");

    // Nothing to reset or remove: an error, not "removed 0".
    let err = failed(hush(&bob.home, &["session", "reset", &alice.jid, "12345"]));
    assert!(err.contains("no session with device 12345"), "{err}");
    let err = failed(hush(&bob.home, &["devices", "--remove", "12345"]));
    assert!(err.contains("none of the devices [12345]"), "{err}");
    // In clear to an account that does not exist: the server's refusal is reported (before,
    // "sent … IN CLEAR" and exit 0, the bounce only logged by the next command).
    let nobody = hush(
        &bob.home,
        &["send", "--plaintext", "nobody@localhost", "anyone there?"],
    );
    assert!(!nobody.status.success(), "{nobody:?}");
    let err = String::from_utf8_lossy(&nobody.stderr);
    assert!(
        err.contains("could not deliver the message to nobody@localhost"),
        "{err}"
    );
    // ... and history says so, next to the text.
    let kept = &json_lines(&ok(hush(
        &bob.home,
        &["--json", "history", "nobody@localhost"],
    )))[0];
    assert_eq!(kept["body"], "anyone there?", "{kept}");
    assert_eq!(kept["failure"], "undelivered", "{kept}");
    let text = ok(hush(&bob.home, &["history", "nobody@localhost"]));
    assert!(
        text.contains("→ nobody@localhost (UNENCRYPTED) (!! NOT DELIVERED: the server returned it"),
        "{text}"
    );

    // A control character XML cannot carry: said plainly (it was "SCE envelope rejected").
    let escape = hush(&bob.home, &["send", &alice.jid, "bell\u{7}"]);
    assert_eq!(escape.status.code(), Some(2), "{escape:?}");
    let err = String::from_utf8_lossy(&escape.stderr);
    assert!(
        err.contains("holds U+0007 (a control character) at character 5"),
        "{err}"
    );

    // A note to self with no other device to read it: said as such, not "the contact has no
    // OMEMO device".
    let to_self = hush(&bob.home, &["send", &bob.jid, "note to self"]);
    assert_eq!(to_self.status.code(), Some(5), "{to_self:?}");
    let err = String::from_utf8_lossy(&to_self.stderr);
    assert!(
        err.contains("is this account, and it has no other device"),
        "{err}"
    );

    // Trusting what matches nothing says which: a device id, or a fingerprint.
    let err = failed(hush(&bob.home, &["trust", &alice.jid, "12345"]));
    assert!(err.contains("no device `12345`"), "{err}");
    let fingerprint = "0123abcd 0123abcd 0123abcd 0123abcd 0123abcd 0123abcd 0123abcd 0123abcd";
    let err = failed(hush(&bob.home, &["trust", &alice.jid, fingerprint]));
    assert!(err.contains("has the fingerprint"), "{err}");

    // A blocked contact says so in its settings.
    let text = ok(hush(&bob.home, &["config", &alice.jid, "--blocked", "on"]));
    assert!(text.contains("BLOCKED"), "{text}");
    let json = ok(hush(&bob.home, &["--json", "config", &alice.jid]));
    assert_eq!(json_lines(&json)[0]["blocked"], true, "{json}");

    // A home that is a file.
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"").unwrap();
    for args in [&["history", "bob@localhost"][..], &["fingerprint"]] {
        let err = failed(hush(&file, args));
        assert!(err.contains("is not a directory"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hush recv --follow` streams until it is interrupted, then closes as usual (exit 0); its
/// JSON lines say when each message was sent (the server's stamp for one kept while we were
/// away), whether the server held it, its id and its recipient.
#[test]
fn an_interrupted_recv_shows_every_message_it_committed() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::mpsc;
    use std::time::Duration;
    let server = Prosody::start("cli-interrupt");
    let dir = scratch("cli-interrupt");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let sent: Vec<String> = (0..4).map(|i| format!("while away {i}")).collect();
    for text in &sent {
        ok(hush(&alice.home, &["send", &bob.jid, text]));
    }

    // `recv` interrupted (once, then twice) the moment it says it is connected: its catch-up
    // has not begun or is under way. The first signal ends it between two messages, having
    // shown what it committed; the second ends it at once, with the status a shell expects.
    let mut shown = Vec::new();
    for (signals, follow) in [(1, true), (1, false), (2, true)] {
        let mut args = vec!["--json", "recv"];
        if follow {
            args.push("--follow");
        }
        let mut child = hush_command(&bob.home)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, next_line) = mpsc::channel();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            for line in stderr.lines() {
                if lines.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = next_line
                .recv_timeout(Duration::from_secs(60))
                .expect("hush recv said nothing within 60 s");
            if line.contains("connected as") {
                break;
            }
        }
        for _ in 0..signals {
            let status = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = child.wait_with_output().unwrap();
        reader.join().unwrap();
        assert_eq!(
            out.status.signal(),
            None,
            "killed by the signal: {:?}",
            out.status
        );
        if signals == 1 {
            assert!(out.status.success(), "{:?}", out.status);
            for m in json_lines(&String::from_utf8_lossy(&out.stdout)) {
                shown.push(m["body"].as_str().unwrap().to_owned());
            }
        } else {
            // The first signal may have ended it before the second came.
            assert!(
                matches!(out.status.code(), Some(0 | 130)),
                "{:?}",
                out.status
            );
        }
        if signals == 1 && follow {
            // Nothing committed went unshown: what the interrupted run did not show, the
            // next one does, and nothing twice.
            let rest = ok(hush(&bob.home, &["--json", "recv", "--timeout", "2"]));
            for m in json_lines(&rest) {
                shown.push(m["body"].as_str().unwrap().to_owned());
            }
            assert_eq!(shown, sent);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recv_follow_streams_until_interrupted_with_time_id_and_recipient() {
    use std::io::BufRead;
    use std::sync::mpsc;
    use std::time::Duration;
    let server = Prosody::start("cli-follow");
    let dir = scratch("cli-follow");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let before = support::unix_now();
    ok(hush(&alice.home, &["send", &bob.jid, "while away"]));

    let mut child = hush_command(&bob.home)
        .args(["--json", "recv", "--follow"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Lines as they come, read on a thread so that a silent hush fails the test in time.
    let (lines, next_line) = mpsc::channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || -> Value {
        let line = next_line
            .recv_timeout(Duration::from_secs(60))
            .expect("hush recv --follow printed nothing within 60 s");
        serde_json::from_str(&line).unwrap()
    };

    let away = next();
    assert_eq!(away["body"], "while away", "{away}");
    assert_eq!(away["to"], bob.jid.as_str(), "{away}");
    assert_eq!(away["delayed"], true, "{away}");
    let at = away["at"].as_u64().unwrap();
    assert!(at >= before - 1 && at <= support::unix_now(), "{away}");
    assert!(!away["id"].as_str().unwrap().is_empty(), "{away}");

    // After the catch-up, live messages come as they are sent.
    ok(hush(&alice.home, &["send", &bob.jid, "live one"]));
    let live = next();
    assert_eq!(live["body"], "live one", "{live}");
    assert_eq!(live["delayed"], false, "{live}");
    assert_ne!(live["id"], away["id"], "{live}");

    // SIGTERM: it stops between messages and closes the connection as usual.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reader.join().unwrap();
    assert!(next_line.try_recv().is_err(), "nothing else was printed");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every failure has a kind a script can act on: the exit status (2 usage, 3 authentication,
/// 4 network, 5 refused by policy, 6 partial delivery, 1 anything else), and with `--json` one
/// JSON object on stderr naming it.
#[test]
fn failures_have_exit_codes_by_kind_and_json_errors() {
    let server = Prosody::start("cli-exit");
    let dir = scratch("cli-exit");
    let alice = init(&server, &dir, "alice", true);
    let stranger = server.register("stranger", "pw");
    let check = |out: Output, code: i32, kind: &str| {
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{err}: {e}"));
        assert_eq!(v["kind"], kind, "{v}");
        assert_eq!(v["exit"], code, "{v}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    };
    // Usage: clap's own, and ours.
    check(hush(&alice.home, &["--json", "send"]), 2, "usage");
    check(
        hush(&alice.home, &["--json", "send", "not a jid", "x"]),
        2,
        "usage",
    );
    // Authentication: the store passphrase, and the XMPP password.
    let wrong = hush_command(&alice.home)
        .env("HUSH_PASSPHRASE", "not the passphrase")
        .args(["--json", "status", &stranger])
        .output()
        .unwrap();
    check(wrong, 3, "authentication");
    // `hush init --json` of the stranger's account in a new home, with `password`, at `server`.
    let init_at = |home: &str, password: &str, server: &str| {
        hush_command(&dir.join(home))
            .env("HUSH_TEST_PW", password)
            .args(["--json", "init", "--jid", &stranger, "--server", server])
            .args(["--insecure-loopback", "--password-env", "HUSH_TEST_PW"])
            .output()
            .unwrap()
    };
    let bad_password = init_at("bad-password", "wrong", &server.address());
    check(bad_password, 3, "authentication");
    // Network: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = init_at("unreachable", "pw", &closed.to_string());
    check(unreachable, 4, "network");
    // Refused by policy: the contact has no OMEMO device, and nothing goes in clear.
    check(
        hush(&alice.home, &["--json", "send", &stranger, "hi"]),
        5,
        "refused",
    );
    // Without --json: the same status, one `error:` line.
    let out = hush(&alice.home, &["send", &stranger, "hi"]);
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
    // Alice does not see the stranger's presence, which may be why nothing could be read.
    assert!(
        err.contains(&format!("`hush contacts add {stranger}`")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reading commands work on a home that cannot be written (read-only media, a mounted
/// snapshot): before, each failed with "unable to open database file". The store is left
/// exactly as it was. As root, whom file permissions do not stop, the home is mounted
/// read-only in a mount namespace of its own; otherwise its write permission is taken away.
#[test]
fn reading_commands_work_on_a_home_that_cannot_be_written() {
    let server = Prosody::start("cli-read-only");
    let dir = scratch("cli-read-only");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    ok(hush(
        &alice.home,
        &["send", &bob.jid, "kept on read-only media"],
    ));
    let store = alice.home.join("store.db");
    let before = std::fs::read(&store).unwrap();
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0";
    let home = alice.home.to_str().unwrap().to_owned();
    let run = |args: &[&str]| -> std::process::Output {
        if root {
            let mut c = Command::new("unshare");
            c.args(["-m", "sh", "-c"])
                .arg(
                    "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && \
                     touch \"$0/probe\" 2>/dev/null && exit 99; exec \"$@\"",
                )
                .arg(&home)
                .arg(env!("CARGO_BIN_EXE_hush"))
                .arg("--home")
                .arg(&home)
                .args(args)
                .env("HUSH_PASSPHRASE", PASSPHRASE)
                .stdin(std::process::Stdio::null());
            c.output().unwrap()
        } else {
            hush(&alice.home, args)
        }
    };
    if !root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&alice.home, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let history = run(&["--json", "history", &bob.jid]);
    let status = run(&["status", &bob.jid]);
    let devices = run(&["devices", &bob.jid]);
    let fingerprint = run(&["fingerprint"]);
    if !root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&alice.home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(
        json_lines(&ok(history))[0]["body"],
        "kept on read-only media"
    );
    assert!(ok(status).contains("next message: encrypted"));
    assert!(ok(devices).contains(&bob.jid));
    assert!(ok(fingerprint).starts_with(&alice.jid));
    assert_eq!(std::fs::read(&store).unwrap(), before, "the store changed");
}
