//! A store put back behind `hush`'s back. `store.db` alone replaced by an older copy is seen
//! on the next command from the `generation` file beside it; a whole home put back is seen
//! when the account connects, from the messages this device sent since (they are in the
//! server's archive, not in the store). Either way the user is warned once and the next
//! message reaches the contact, on a new session.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::Path;
use std::process::Output;

use hush_test_support::prosody::Prosody;
use serde_json::Value;
use support::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copies every file of the home `from` into `to` (made if missing), replacing what is there;
/// the store's side files left in `to` by a later run are removed, as restoring would.
fn copy_home(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for side in ["store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(to.join(side));
    }
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Bob reads one message with `--json`, which must be `text` from `from`, read without error.
fn bob_reads(bob: &User, from: &str, text: &str) {
    let got = json_lines(&ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "1", "--timeout", "20"],
    )));
    let texts: Vec<_> = got.iter().filter(|m| m["body"] == text).collect();
    assert_eq!(texts.len(), 1, "{got:?}");
    assert_eq!(texts[0]["from"], from);
    assert!(
        got.iter().all(|m| m["error"].is_null()),
        "Bob could not read something: {got:?}"
    );
}

/// The rollback notices among `hush --json` output lines.
fn notices(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|m| {
            m["warning"]
                .as_str()
                .is_some_and(|w| w.starts_with("THIS STORE WAS ROLLED BACK"))
        })
        .collect()
}

#[test]
fn a_store_put_back_is_found_and_the_next_message_is_read() {
    let server = Prosody::start("cli-rollback");
    let dir = scratch("cli-rollback");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    ok(hush(&alice.home, &["send", &bob.jid, "one"]));
    bob_reads(&bob, &alice.jid, "one");
    ok(hush(&bob.home, &["send", &alice.jid, "two"]));
    ok(hush(
        &alice.home,
        &["recv", "--count", "1", "--timeout", "20"],
    ));

    // store.db alone goes back to a copy: the file beside it shows it at once, even for a
    // command that never connects.
    let store_copy = dir.join("store-copy.db");
    std::fs::copy(alice.home.join("store.db"), &store_copy).unwrap();
    ok(hush(&alice.home, &["send", &bob.jid, "three"]));
    bob_reads(&bob, &alice.jid, "three");
    std::fs::copy(&store_copy, alice.home.join("store.db")).unwrap();
    let out = hush(&alice.home, &["history", &bob.jid]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("!! WARNING") && err.contains("replaced by an older copy"),
        "{err}"
    );
    let out = hush(&alice.home, &["--json", "send", &bob.jid, "four"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("older copy"),
        "warned once: {}",
        stderr(&out)
    );
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    // The server shows it too ("three" is in the archive, not in the store); the store was
    // already repaired, so this only records the lost message and says so.
    assert_eq!(notices(&lines).len(), 1, "{lines:?}");
    assert_eq!(lines.last().unwrap()["sent"], true);
    bob_reads(&bob, &alice.jid, "four");

    // The whole home goes back to a copy, generation file and all: only the server shows it.
    let home_copy = dir.join("home-copy");
    copy_home(&alice.home, &home_copy);
    ok(hush(&alice.home, &["send", &bob.jid, "five"]));
    bob_reads(&bob, &alice.jid, "five");
    copy_home(&home_copy, &alice.home);
    let out = hush(&alice.home, &["--json", "send", &bob.jid, "six"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("older copy"), "{}", stderr(&out));
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let found = notices(&lines);
    assert_eq!(found.len(), 1, "{lines:?}");
    assert_eq!(found[0]["failure"], "rolled-back", "{lines:?}");
    assert!(
        found[0]["error"]
            .as_str()
            .unwrap()
            .contains("1 message(s) this device sent"),
        "{lines:?}"
    );
    bob_reads(&bob, &alice.jid, "six");

    // Repaired, nothing is reported again; the lost message shows in Alice's history.
    let out = hush(&alice.home, &["recv", "--count", "0", "--timeout", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("ROLLED BACK"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let history = ok(hush(&alice.home, &["history", &bob.jid]));
    assert!(history.contains("not in this store"), "{history}");
}
