//! Group chats from the command line (issue #15) against a private Prosody with its room
//! service: `join` creates a private room, `members add` admits, `send --muc` encrypts for every
//! member's devices through each account's agent, `recv` names the room, the nickname and the
//! real sender, `status ROOM` lists the readers and who could add one, `members remove` takes
//! a reader out, `rooms` and `leave`.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::Path;

use hush_test_support::prosody::{Prosody, MUC_SERVICE};
use serde_json::Value;
use support::*;

/// Starts the agent of `home` and waits until it listens.
fn agent(home: &Path) -> Running {
    let agent = Running::start(home, &["agent"]);
    agent.wait_note("listening on");
    agent
}

/// The room messages `user`'s agent holds, as `(from, nick, body)`, read until 5 s of quiet.
fn room_messages(user: &User, room: &str) -> Vec<(String, String, String)> {
    let read = ok(hush(&user.home, &["--json", "recv", "--timeout", "5"]));
    json_lines(&read)
        .iter()
        .filter(|m: &&Value| m["room"] == room)
        .map(|m| {
            assert_eq!(m["encrypted"], true, "{m}");
            assert!(m["error"].is_null(), "{m}");
            (
                m["from"].as_str().unwrap().to_owned(),
                m["nick"].as_str().unwrap().to_owned(),
                m["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn triple(from: &str, nick: &str, body: &str) -> (String, String, String) {
    (from.to_owned(), nick.to_owned(), body.to_owned())
}

#[test]
fn three_accounts_talk_in_a_private_room_from_the_command_line() {
    let server = Prosody::start("cli-rooms");
    let dir = scratch("cli-rooms");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let carol = init(&server, &dir, "carol", true);
    let room = format!("team@{MUC_SERVICE}");

    // Alice creates it: members-only and non-anonymous, ready for encrypted messages.
    let joined = &json_lines(&ok(hush(
        &alice.home,
        &["--json", "join", &room, "--nick", "Alice"],
    )))[0];
    assert_eq!(joined["encrypted_ok"], true, "{joined}");
    assert_eq!(joined["nick"], "Alice", "{joined}");
    for who in [&bob, &carol] {
        let added = ok(hush(&alice.home, &["members", &room, "add", &who.jid]));
        assert!(added.contains("from the next one on"), "{added}");
    }
    for who in [&bob, &carol] {
        ok(hush(&who.home, &["join", &room]));
    }
    let members = json_lines(&ok(hush(&carol.home, &["--json", "members", &room])));
    assert_eq!(members.len(), 3, "{members:?}");

    // Each account's agent enters its rooms; a message sent through it is sent from inside.
    let _agents: Vec<Running> = [&alice, &bob, &carol]
        .iter()
        .map(|u| agent(&u.home))
        .collect();
    ok(hush(&bob.home, &["send", "--muc", &room, "bob is here"]));
    ok(hush(
        &carol.home,
        &["send", "--muc", &room, "carol is here"],
    ));
    let sent = &json_lines(&ok(hush(
        &alice.home,
        &["--json", "send", "--muc", &room, "hello room"],
    )))[0];
    assert_eq!(sent["room"], true, "{sent}");
    assert_eq!(sent["devices"].as_array().unwrap().len(), 2, "{sent}");
    let bobs = room_messages(&bob, &room);
    assert!(
        bobs.contains(&triple(&alice.jid, "Alice", "hello room")),
        "{bobs:?}"
    );
    assert!(
        bobs.contains(&triple(&carol.jid, "carol", "carol is here")),
        "{bobs:?}"
    );
    assert!(
        !bobs.iter().any(|(from, _, _)| *from == bob.jid),
        "bob's own message came back as a new one: {bobs:?}"
    );
    assert!(room_messages(&carol, &room).contains(&triple(&alice.jid, "Alice", "hello room")));

    // A direct message to the room's JID would be encrypted for the room service: refused.
    let direct = hush(&alice.home, &["send", &room, "meant for the room"]);
    assert_eq!(direct.status.code(), Some(2), "{direct:?}");
    assert!(
        String::from_utf8_lossy(&direct.stderr).contains("--muc"),
        "{direct:?}"
    );

    // Who reads the next message, and who could add a reader.
    let status = &json_lines(&ok(hush(&alice.home, &["--json", "status", &room])))[0];
    assert_eq!(status["room"], true, "{status}");
    assert_eq!(status["members_only"], true, "{status}");
    assert_eq!(status["security"]["confidentiality"], true, "{status}");
    assert_eq!(
        status["security"]["authentication"], "weak",
        "no member's key is verified: {status}"
    );
    let readers: Vec<&str> = status["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jid"].as_str().unwrap())
        .collect();
    assert!(
        readers.contains(&bob.jid.as_str()) && readers.contains(&carol.jid.as_str()),
        "{status}"
    );
    assert_eq!(
        status["could_add_a_reader"]["owners_and_admins"],
        serde_json::json!([alice.jid]),
        "{status}"
    );
    assert_eq!(
        status["could_add_a_reader"]["room_service"], MUC_SERVICE,
        "{status}"
    );

    // Carol loses her membership: the next message has no key for her.
    ok(hush(&alice.home, &["members", &room, "remove", &carol.jid]));
    let sent = &json_lines(&ok(hush(
        &alice.home,
        &["--json", "send", "--muc", &room, "without carol"],
    )))[0];
    let to: Vec<&str> = sent["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["jid"].as_str().unwrap())
        .collect();
    assert_eq!(to, [bob.jid.as_str()], "{sent}");
    assert!(room_messages(&bob, &room).contains(&triple(&alice.jid, "Alice", "without carol")));

    // History keeps the room's messages; `rooms` lists it; `leave` forgets it.
    let history = json_lines(&ok(hush(&bob.home, &["--json", "history", &room])));
    assert!(
        history.iter().any(|m| m["body"] == "hello room"),
        "{history:?}"
    );
    let rooms = json_lines(&ok(hush(&bob.home, &["--json", "rooms"])));
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["room"], room.as_str());
    ok(hush(&bob.home, &["leave", &room]));
    let rooms = ok(hush(&bob.home, &["rooms"]));
    assert!(rooms.contains("no rooms joined"), "{rooms}");
    assert!(json_lines(&ok(hush(&bob.home, &["--json", "rooms"]))).is_empty());
    let refused = hush(&bob.home, &["send", "--muc", &room, "after leaving"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");

    // Prosody kept only ciphertext.
    let stored = server.stored_bytes();
    for text in ["hello room", "bob is here", "without carol"] {
        assert!(
            !stored.windows(text.len()).any(|w| w == text.as_bytes()),
            "`{text}` is in clear in Prosody's storage"
        );
    }
}
