//! Encrypted files between the `hush` binary and an independent client (`interop/bot.py`:
//! slixmpp's XEP-0454 code for the file's AES-256-GCM, python-omemo for the message) through a
//! private Prosody and its HTTPS upload service, both ways, one to one in each namespace and
//! in a room: the hashes match, and the server holds neither the files' content nor names.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::Path;

use hush_test_support::prosody::{Prosody, MUC_SERVICE, UPLOAD_SERVICE};
use rand::RngExt;
use serde_json::{json, Value};
use support::bot::Bot;
use support::*;

/// A file of random bytes at `path`; its SHA-256 in hex.
fn random_file(path: &Path, len: usize) -> (Vec<u8>, String) {
    let mut data = vec![0u8; len];
    rand::rng().fill(&mut data[..]);
    std::fs::write(path, &data).unwrap();
    let mut h = hush_files::Sha256::new();
    h.update(&data);
    (data, hex::encode(h.finish()))
}

/// `hush --json send-file`, checked: one device of the bot, in `ns`.
fn hush_sends_file(home: &Path, to: &str, path: &Path, ns: &str, muc: bool) -> Value {
    let mut args = vec!["--json", "send-file"];
    if muc {
        args.push("--muc");
    }
    args.extend([to, path.to_str().unwrap()]);
    let sent = json_lines(&ok(hush(home, &args))).remove(0);
    assert_eq!(sent["sent"], true, "{sent}");
    if !muc {
        assert_eq!(sent["ns"], ns, "{sent}");
    }
    sent
}

/// The bot decrypted a message whose body is an aesgcm:// link, and fetched and decrypted the
/// file to `sha256`.
fn bot_got_file(bot: &mut Bot, sha256: &str, len: usize) -> Value {
    let got = bot.next_of("received");
    assert!(
        got["body"]
            .as_str()
            .unwrap()
            .starts_with("aesgcm://localhost:"),
        "{got}"
    );
    assert_eq!(got["file_error"], Value::Null, "{got}; {}", bot.report());
    assert_eq!(got["file"]["sha256"], sha256, "{got}");
    assert_eq!(got["file"]["size"], len, "{got}");
    got
}

/// Has the bot share the file at `path` with `to` (a JID) or, with `room`, the room.
fn bot_sends_file(bot: &mut Bot, to: Value, path: &Path, sha256: &str) {
    let mut what = json!({"path": path.to_str().unwrap(), "service": UPLOAD_SERVICE});
    let key = if to.get("room").is_some() {
        "room"
    } else {
        "to"
    };
    what[key] = to[key].clone();
    bot.command(json!({ "send_file": what }));
    bot.next_of("sent");
    let shared = bot.next_of("sent_file");
    assert_eq!(shared["sha256"], sha256, "{shared}");
    if key == "room" {
        bot.next_of("echo");
    }
}

/// `hush --json recv --count 1` into `downloads`: the file it saved is `content`.
fn hush_got_file(home: &Path, downloads: &Path, bot_jid: &str, content: &[u8], sha256: &str) {
    let got = json_lines(&ok(hush(
        home,
        &[
            "--json",
            "recv",
            "--count",
            "1",
            "--timeout",
            "30",
            "--downloads",
            downloads.to_str().unwrap(),
        ],
    )))
    .remove(0);
    assert_eq!(got["from"], bot_jid, "{got}");
    let file = &got["file"];
    assert_eq!(file["error"], Value::Null, "{got}");
    assert_eq!(file["sha256"], sha256, "{got}");
    assert_eq!(file["size"], content.len(), "{got}");
    let path = file["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content, "{got}");
}

/// The server's storage holds none of `names` and no 32-byte piece of `contents`.
fn server_holds_nothing_of(server: &Prosody, names: &[&str], contents: &[&[u8]]) {
    let stored = server.stored_bytes();
    let find = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    for name in names {
        assert!(!find(name.as_bytes()), "{name} is on the server");
    }
    for content in contents {
        for at in [0, content.len() / 2, content.len() - 32] {
            assert!(
                !find(&content[at..at + 32]),
                "file content is on the server"
            );
        }
    }
}

fn one_to_one(ns: &'static str, hush_ns: &str) {
    let server = Prosody::start_with_uploads(&format!("files-bot-{ns}"));
    let dir = scratch(&format!("interop-files-{ns}"));
    let alice = init(&server, &dir, "alice", true);
    let bot_jid = server.register("bot", "bot-pw");
    let mut bot = Bot::start(&server.address(), &dir, &bot_jid, "bot-pw", ns);

    // Hush → python: the bot fetches the link and decrypts the file to the same hash.
    let ours = dir.join("quarterly report.pdf");
    let (ours_content, ours_sha) = random_file(&ours, 150_001);
    let sent = hush_sends_file(&alice.home, &bot_jid, &ours, hush_ns, false);
    assert_eq!(sent["file"]["sha256"], ours_sha.as_str(), "{sent}");
    bot_got_file(&mut bot, &ours_sha, ours_content.len());

    // Python → Hush: `recv` saves it, decrypted and checked.
    let theirs = dir.join("from python.png");
    let (theirs_content, theirs_sha) = random_file(&theirs, 77_777);
    bot_sends_file(&mut bot, json!({"to": alice.jid}), &theirs, &theirs_sha);
    hush_got_file(
        &alice.home,
        &dir.join("downloads"),
        &bot_jid,
        &theirs_content,
        &theirs_sha,
    );

    server_holds_nothing_of(
        &server,
        &["quarterly report", "from python"],
        &[&ours_content, &theirs_content],
    );
    bot.quit();
}

#[test]
fn files_go_both_ways_with_the_python_client_in_omemo2() {
    one_to_one("omemo2", "omemo:2");
}

#[test]
fn files_go_both_ways_with_the_python_client_in_legacy_omemo() {
    one_to_one("legacy", "omemo:legacy");
}

#[test]
fn files_go_both_ways_with_the_python_client_in_a_room() {
    let server = Prosody::start_with_uploads("files-bot-room");
    let dir = scratch("interop-files-room");
    let room = format!("files@{MUC_SERVICE}");
    let alice = init(&server, &dir, "alice", true);
    let bot_jid = server.register("bot", "bot-pw");
    let created = json_lines(&ok(hush(
        &alice.home,
        &["--json", "join", &room, "--nick", "Alice"],
    )))
    .remove(0);
    assert_eq!(created["encrypted_ok"], true, "{created}");
    ok(hush(&alice.home, &["members", &room, "add", &bot_jid]));
    // Alice stays in the room through her agent; then the bot enters.
    let agent = Running::start(&alice.home, &["agent"]);
    agent.wait_note("listening on");
    ok(hush(&alice.home, &["fingerprint"]));
    let mut bot = Bot::start(&server.address(), &dir, &bot_jid, "bot-pw", "legacy");
    bot.command(json!({"join": {"room": room, "nick": "bot"}}));
    let joined = bot.next_of("joined");
    assert_eq!(joined["occupants"]["Alice"], alice.jid.as_str(), "{joined}");

    // Hush → room: the bot reads the file from Alice's room message.
    let ours = dir.join("agenda.txt");
    let (ours_content, ours_sha) = random_file(&ours, 12_345);
    hush_sends_file(&alice.home, &room, &ours, "omemo:legacy", true);
    let got = bot_got_file(&mut bot, &ours_sha, ours_content.len());
    assert_eq!(got["room"], room.as_str(), "{got}");
    assert_eq!(got["from"], alice.jid.as_str(), "{got}");

    // Bot → room: Alice's agent saves the file in her home's downloads.
    let theirs = dir.join("minutes.odt");
    let (theirs_content, theirs_sha) = random_file(&theirs, 65_536);
    bot_sends_file(&mut bot, json!({"room": room}), &theirs, &theirs_sha);
    let got = json_lines(&ok(hush(
        &alice.home,
        &["--json", "recv", "--count", "1", "--timeout", "30"],
    )))
    .remove(0);
    assert_eq!(got["room"], room.as_str(), "{got}");
    assert_eq!(got["file"]["sha256"], theirs_sha.as_str(), "{got}");
    let saved = Path::new(got["file"]["path"].as_str().unwrap());
    assert!(saved.starts_with(alice.home.join("downloads")), "{got}");
    assert_eq!(std::fs::read(saved).unwrap(), theirs_content);

    server_holds_nothing_of(
        &server,
        &["agenda", "minutes"],
        &[&ours_content, &theirs_content],
    );
    bot.quit();
    drop(agent);
}
