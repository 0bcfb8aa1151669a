//! `hush send-file`, files arriving in `hush recv` (saved, or left for `hush fetch` over the
//! automatic limit) and `hush fetch`, through a real Prosody and its HTTPS upload service.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use hush_test_support::prosody::Prosody;
use rand::RngExt;
use support::{hush, init, json_lines, ok, scratch};

fn random_file(path: &std::path::Path, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill(&mut data[..]);
    std::fs::write(path, &data).unwrap();
    data
}

fn sha256_hex(data: &[u8]) -> String {
    let mut h = hush_files::Sha256::new();
    h.update(data);
    hex::encode(h.finish())
}

#[test]
fn a_file_sent_is_saved_by_recv_and_a_large_one_is_left_for_fetch() {
    let server = Prosody::start_with_uploads("cli-files");
    let dir = scratch("cli-files");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let photo = dir.join("summit photo.jpg");
    let content = random_file(&photo, 200_003);
    let downloads = dir.join("bob-downloads");

    // From someone Bob never wrote to nor added: shown, not fetched by itself.
    let early = dir.join("early.txt");
    random_file(&early, 1_000);
    ok(hush(
        &alice.home,
        &["send-file", &bob.jid, early.to_str().unwrap()],
    ));
    let got = ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "1", "--timeout", "30"]
            .into_iter()
            .chain(["--downloads", downloads.to_str().unwrap()])
            .collect::<Vec<_>>(),
    ));
    let got = &json_lines(&got)[0];
    assert!(got["file"]["path"].is_null(), "{got}");
    assert!(
        got["file"]["error"]
            .as_str()
            .unwrap()
            .contains("not one of your contacts"),
        "{got}"
    );
    assert!(!downloads.join("early.txt").exists());
    ok(hush(&bob.home, &["contacts", "add", &alice.jid]));

    let sent = ok(hush(
        &alice.home,
        &["--json", "send-file", &bob.jid, photo.to_str().unwrap()],
    ));
    let sent = &json_lines(&sent)[0];
    assert_eq!(sent["file"]["name"], "summit photo.jpg", "{sent}");
    assert_eq!(sent["file"]["size"], 200_003);
    assert_eq!(sent["file"]["sha256"], sha256_hex(&content));
    assert!(
        sent["file"].get("link").is_none(),
        "no key in the sender's output: {sent}"
    );
    assert_eq!(sent["devices"].as_array().unwrap().len(), 1, "{sent}");

    let got = ok(hush(
        &bob.home,
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
    ));
    let got = &json_lines(&got)[0];
    let file = &got["file"];
    assert_eq!(file["name"], "summit photo.jpg", "{got}");
    assert_eq!(file["size"], 200_003);
    assert_eq!(file["sha256"], sha256_hex(&content));
    assert_eq!(file["media_type"], "image/jpeg");
    assert!(file["url"]
        .as_str()
        .unwrap()
        .starts_with("https://localhost:"));
    assert!(file["error"].is_null(), "{got}");
    let saved = std::path::PathBuf::from(file["path"].as_str().unwrap());
    assert_eq!(saved, downloads.join("summit photo.jpg"));
    assert_eq!(std::fs::read(&saved).unwrap(), content);

    // Over the automatic limit: not downloaded; the text says how to get it.
    let big = dir.join("big.bin");
    let big_content = random_file(&big, 50_000);
    ok(hush(
        &alice.home,
        &["send-file", &bob.jid, big.to_str().unwrap()],
    ));
    let text = ok(hush(
        &bob.home,
        &[
            "recv",
            "--count",
            "1",
            "--timeout",
            "30",
            "--downloads",
            downloads.to_str().unwrap(),
            "--max-download",
            "10000",
        ],
    ));
    assert!(
        text.contains("file big.bin (48.8 KiB), not downloaded"),
        "{text}"
    );
    assert!(!downloads.join("big.bin").exists());
    let link = text
        .split("hush fetch '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no fetch command in {text}"));
    let fetched = ok(hush(
        &bob.home,
        &[
            "--json",
            "fetch",
            link,
            "--name",
            "big.bin",
            "--downloads",
            downloads.to_str().unwrap(),
        ],
    ));
    let fetched = &json_lines(&fetched)[0];
    assert_eq!(
        fetched["file"]["sha256"],
        sha256_hex(&big_content),
        "{fetched}"
    );
    assert_eq!(
        std::fs::read(downloads.join("big.bin")).unwrap(),
        big_content
    );

    // A link that is not one is a usage error, said plainly.
    let bad = hush(&bob.home, &["fetch", "aesgcm://h/p#00"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an aesgcm:// link"));
}

/// With agents running, the sender's agent uploads and sends, and the receiver's agent saves
/// the file in the home's `downloads` before `recv` (subscribed to it) shows the message.
#[test]
fn agents_send_and_save_files() {
    let server = Prosody::start_with_uploads("cli-files-agent");
    let dir = scratch("cli-files-agent");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let alices_agent = support::Running::start(&alice.home, &["agent"]);
    alices_agent.wait_note("listening on");
    ok(hush(&bob.home, &["contacts", "add", &alice.jid]));
    let bobs_agent = support::Running::start(&bob.home, &["agent"]);
    bobs_agent.wait_note("listening on");
    let notes = dir.join("notes.txt");
    let content = random_file(&notes, 4_321);

    // A relative path means the same to the agent: the command makes it absolute.
    let sent = support::hush_command(&alice.home)
        .current_dir(&dir)
        .args(["--json", "send-file", &bob.jid, "notes.txt"])
        .output()
        .unwrap();
    let sent = &json_lines(&ok(sent))[0];
    assert_eq!(sent["file"]["sha256"], sha256_hex(&content), "{sent}");

    let got = ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "1", "--timeout", "30"],
    ));
    let got = &json_lines(&got)[0];
    let saved = std::path::PathBuf::from(got["file"]["path"].as_str().unwrap());
    assert_eq!(saved, bob.home.join("downloads").join("notes.txt"), "{got}");
    assert_eq!(std::fs::read(saved).unwrap(), content);
    drop(alices_agent);
    drop(bobs_agent);
}
