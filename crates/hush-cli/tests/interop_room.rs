//! Interop in a room (XEP-0045 with XEP-0384 §5.8) on a private Prosody: two Hush accounts
//! and the independent python client (`interop/bot.py`: slixmpp + slixmpp-omemo +
//! python-omemo) talk in a members-only, non-anonymous room that Hush created. The bot
//! announces legacy OMEMO only, as slixmpp-omemo encrypts rooms: Hush has to give it a legacy
//! key in every room message, and has to read the bot's legacy room messages under the bot's
//! real JID, which only the room's presence gives. The bot encrypts for the room's members (its
//! affiliation lists), as deployed clients do: a Hush account that was away reads what the bot
//! said meanwhile from the room's archive when it comes back. The other way round too: Hush
//! encrypts for every member, so the bot, back in the room after leaving it, reads what Alice
//! and Bob said meanwhile from the room's archive (XEP-0313), under the real JIDs the archive
//! keeps, even for a sender who has left since.
//!
//! The bot runs from the interop venv (`HUSH_PYTHON`, or `.venv/` as `./scripts/test` creates
//! it); without it this test fails with instructions — it never skips.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use hush_test_support::prosody::{Prosody, MUC_SERVICE};
use serde_json::{json, Value};
use support::bot::Bot;
use support::*;

/// A Hush account, its agent (while it runs), and who it is.
struct Member {
    user: User,
    agent: Option<Running>,
    device: u64,
    fingerprint: String,
}

impl Member {
    /// Starts the agent of `user` (see [`Member::start_agent`]).
    fn start(user: User) -> Self {
        let mut member = Self {
            user,
            agent: None,
            device: 0,
            fingerprint: String::new(),
        };
        member.start_agent();
        member
    }

    /// Starts the agent. Its answer to `fingerprint` comes only once it caught up and entered
    /// its joined rooms (it serves nothing before), so the member is then in them. Started
    /// again, it is the same device with the same key.
    fn start_agent(&mut self) {
        assert!(
            self.agent.is_none(),
            "{}: the agent runs already",
            self.jid()
        );
        let agent = Running::start(&self.user.home, &["agent"]);
        agent.wait_note("listening on");
        let me: Value =
            serde_json::from_str(&ok(hush(&self.user.home, &["--json", "fingerprint"]))).unwrap();
        assert_eq!(me["jid"], self.jid(), "{me}");
        let device = me["device"].as_u64().unwrap();
        let fingerprint = me["fingerprint"].as_str().unwrap();
        // Device ids start at 1: 0 means this is the first start.
        if self.device != 0 {
            assert_eq!(device, self.device, "{me}");
            assert_eq!(fingerprint, self.fingerprint, "{me}");
        }
        self.device = device;
        self.fingerprint = fingerprint.to_owned();
        self.agent = Some(agent);
    }

    /// Stops the agent with SIGTERM (it exits cleanly); with it the account leaves its rooms.
    fn stop_agent(&mut self) {
        let agent = self.agent.take().expect("the agent runs");
        let status = agent.stop("TERM");
        assert!(
            status.success(),
            "{}: the agent ended with {status}",
            self.jid()
        );
    }

    fn jid(&self) -> &str {
        &self.user.jid
    }

    /// `hush --json send --muc ROOM BODY` through the agent, checked: encrypted for exactly
    /// `readers` (as `(jid, device)`).
    fn send(&self, room: &str, body: &str, readers: &[(&str, u64)]) {
        let sent = &json_lines(&ok(hush(
            &self.user.home,
            &["--json", "send", "--muc", room, body],
        )))[0];
        assert_eq!(sent["sent"], true, "{sent}");
        assert_eq!(sent["room"], true, "{sent}");
        assert_eq!(sent["encrypted"], true, "{sent}");
        let mut devices: Vec<(String, u64)> = sent["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["jid"].as_str().unwrap().to_owned(),
                    d["device"].as_u64().unwrap(),
                )
            })
            .collect();
        devices.sort();
        let mut expected: Vec<(String, u64)> =
            readers.iter().map(|(j, d)| ((*j).to_owned(), *d)).collect();
        expected.sort();
        assert_eq!(devices, expected, "{sent}");
        assert_eq!(sent["skipped"], json!([]), "{sent}");
    }

    /// The next `count` messages (`recv --count`, bounded by 30 s of quiet): through the agent
    /// while it runs; without it, `recv` connects and catches up (the rooms' archives too), and
    /// prints all it caught up on, so any message read twice shows here.
    fn recv(&self, count: usize) -> Vec<Value> {
        let got = json_lines(&ok(hush(
            &self.user.home,
            &[
                "--json",
                "recv",
                "--count",
                &count.to_string(),
                "--timeout",
                "30",
            ],
        )));
        assert_eq!(got.len(), count, "{got:?}");
        got
    }
}

impl Bot {
    /// Joins `room` as `nick`; the occupants it then sees, by nickname, with their real JIDs.
    fn join(&mut self, room: &str, nick: &str) -> Value {
        self.command(json!({"join": {"room": room, "nick": nick}}));
        let joined = self.next_of("joined");
        assert_eq!(joined["room"], room, "{joined}");
        assert_eq!(joined["nick"], nick, "{joined}");
        assert_eq!(joined["occupants"][nick], self.jid.as_str(), "{joined}");
        joined["occupants"].clone()
    }

    /// Waits until the room told the bot that `nick` left (or at once, if `nick` is not there).
    fn await_leave(&mut self, room: &str, nick: &str) {
        self.command(json!({"await_leave": {"room": room, "nick": nick}}));
        let left = self.next_of("left");
        assert_eq!(left["room"], room, "{left}");
        assert_eq!(left["nick"], nick, "{left}");
    }

    /// Has the bot encrypt `body` for the room's members and occupants, which must be exactly
    /// `readers` with one device each; the room then sends it back to the bot. Gives the bot's
    /// `sent` report (`present` there: the readers who were in the room), and the archive id
    /// the room gave the message.
    fn send(&mut self, room: &str, body: &str, readers: &[&Member]) -> (Value, String) {
        self.command(json!({"send": {"room": room, "body": body}}));
        let sent = self.next_of("sent");
        let mut to: Vec<&str> = readers.iter().map(|m| m.jid()).collect();
        to.sort_unstable();
        let mut devices: Vec<u64> = readers.iter().map(|m| m.device).collect();
        devices.sort_unstable();
        assert_eq!(sent["room"], room, "{sent}");
        assert_eq!(sent["ns"], "legacy", "{sent}");
        assert_eq!(sent["member_lists"], true, "{sent}; {}", self.report());
        assert_eq!(sent["to"], json!(to), "{sent}");
        assert_eq!(sent["devices"], json!(devices), "{sent}");
        let echo = self.next_of("echo");
        assert_eq!(echo["room"], room, "{echo}");
        assert_eq!(echo["body"], body, "{echo}");
        assert_eq!(echo["archived"], Value::Null, "{echo}");
        let id = echo["id"]
            .as_str()
            .unwrap_or_else(|| panic!("the room gave no archive id: {echo}"))
            .to_owned();
        (sent, id)
    }

    /// Leaves `room`; the room confirmed it.
    fn leave(&mut self, room: &str) {
        self.command(json!({"leave": {"room": room}}));
        let left = self.next_of("left_room");
        assert_eq!(left["room"], room, "{left}");
        assert_eq!(left["nick"], "bot", "{left}");
    }

    /// Has the bot read `room`'s archive after the archive id `after`: the archived messages it
    /// reported, in the archive's order, each checked to be one that it read (no error, nothing
    /// skipped), and the archive id of the last one (`after` when there was none).
    fn catch_up(&mut self, room: &str, after: &str) -> (Vec<Value>, String) {
        self.command(json!({"catch_up": {"room": room, "after": after}}));
        let mut archived = Vec::new();
        let done = loop {
            let v = self.next("caught_up");
            if v["caught_up"] == true {
                break v;
            }
            if v["archived"] != true {
                // Only a live empty OMEMO message (a heartbeat) may come in between.
                assert_eq!(v["empty"], true, "{v}; {}", self.report());
                continue;
            }
            assert_eq!(v["room"], room, "{v}");
            assert_eq!(v["received"], true, "{v}; {}", self.report());
            archived.push(v);
        };
        assert_eq!(done["room"], room, "{done}");
        assert_eq!(done["count"], archived.len(), "{done}");
        assert_eq!(done["skipped"], 0, "{done}");
        assert_eq!(done["failed"], 0, "{done}");
        let last = done["last"].as_str().unwrap().to_owned();
        let expected_last = archived.last().map_or(after, |m| m["id"].as_str().unwrap());
        assert_eq!(last, expected_last, "{done}; {archived:?}");
        (archived, last)
    }

    /// The bot decrypted `body`, sent in `room` by `from` as `nick`, from its one device under
    /// its identity key.
    fn expect_received(&mut self, room: &str, from: &Member, nick: &str, body: &str) {
        let got = self.next_of("received");
        assert_eq!(got["body"], body, "{got}; {}", self.report());
        assert_eq!(got["room"], room, "{got}");
        assert_eq!(got["nick"], nick, "{got}");
        assert_eq!(got["from"], from.jid(), "{got}");
        assert_eq!(got["device"], from.device, "{got}");
        assert_eq!(got["ns"], "legacy", "{got}");
        assert_eq!(got["fingerprint"], from.fingerprint.as_str(), "{got}");
        assert_eq!(got["archived"], Value::Null, "{got}");
        assert!(got["id"].is_string(), "the room archived it: {got}");
    }
}

/// Checks a message the bot read from the room's archive: `body`, sent in `room` by `from` as
/// `nick`, from its one device under its identity key.
fn assert_archived(got: &Value, room: &str, from: &Member, nick: &str, body: &str) {
    assert_eq!(got["archived"], true, "{got}");
    assert_eq!(got["received"], true, "{got}");
    assert_eq!(got["body"], body, "{got}");
    assert_eq!(got["room"], room, "{got}");
    assert_eq!(got["nick"], nick, "{got}");
    assert_eq!(got["from"], from.jid(), "{got}");
    assert_eq!(got["device"], from.device, "{got}");
    assert_eq!(got["ns"], "legacy", "{got}");
    assert_eq!(got["fingerprint"], from.fingerprint.as_str(), "{got}");
    assert!(got["id"].is_string(), "{got}");
    assert!(got["stamp"].is_string(), "{got}");
}

/// Checks a room message as `hush --json recv` printed it: `body`, sent in `room` by `jid` as
/// `nick` from `device`, in `ns`, decrypted.
fn assert_room_message(got: &Value, room: &str, jid: &str, nick: &str, device: u64, ns: &str) {
    assert_eq!(got["room"], room, "{got}");
    assert_eq!(got["nick"], nick, "{got}");
    assert_eq!(got["from"], jid, "{got}");
    assert_eq!(got["device"], device, "{got}");
    assert_eq!(got["ns"], ns, "{got}");
    assert_eq!(got["encrypted"], true, "{got}");
    assert_eq!(got["error"], Value::Null, "{got}");
}

/// `from` (nickname `nick`) writes `body` to the room: the bot reads it (legacy), and `other`
/// reads it (`omemo:2`) through `hush recv`.
fn hush_writes(room: &str, from: &Member, nick: &str, other: &Member, bot: &mut Bot, body: &str) {
    let bot_jid = bot.jid.clone();
    from.send(
        room,
        body,
        &[(other.jid(), other.device), (&bot_jid, bot.device)],
    );
    bot.expect_received(room, from, nick, body);
    let got = other.recv(1);
    assert_room_message(&got[0], room, from.jid(), nick, from.device, "omemo:2");
    assert_eq!(got[0]["body"], body, "{got:?}");
}

/// The bot writes `body` to the room: `members` read it (legacy) under the bot's real JID and
/// nickname, its key trusted blindly. Gives the bot's `sent` report and the message's archive
/// id.
fn bot_writes(room: &str, bot: &mut Bot, members: [&Member; 2], body: &str) -> (Value, String) {
    let sent = bot.send(room, body, &members);
    for member in members {
        let got = member.recv(1);
        assert_room_message(&got[0], room, &bot.jid, "bot", bot.device, "omemo:legacy");
        assert_eq!(got[0]["body"], body, "{got:?}");
        assert_eq!(got[0]["trust"], "blind", "{got:?}");
    }
    sent
}

#[test]
fn hush_and_slixmpp_omemo_bot_talk_in_a_members_only_room_over_legacy() {
    let server = Prosody::start("bot-room");
    let dir = scratch("interop-room");
    let room = format!("team@{MUC_SERVICE}");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let bot_jid = server.register("bot", "bot-pw");
    // Each body starts with a unique plain-ASCII part, searched for on the server's disk at the
    // end; the rest is there to survive both stacks' encodings unchanged.
    let mut markers = Vec::new();
    let mut text = |what: &str| {
        markers.push(what.to_owned());
        format!("{what}: héllo ☃ <&>")
    };

    // Alice creates the room (members-only, non-anonymous) and admits Bob and the bot.
    let created = &json_lines(&ok(hush(
        &alice.home,
        &["--json", "join", &room, "--nick", "Alice"],
    )))[0];
    assert_eq!(created["encrypted_ok"], true, "{created}");
    assert_eq!(created["members_only"], true, "{created}");
    assert_eq!(created["non_anonymous"], true, "{created}");
    for jid in [&bob.jid, &bot_jid] {
        ok(hush(&alice.home, &["members", &room, "add", jid]));
    }
    let joined = &json_lines(&ok(hush(
        &bob.home,
        &["--json", "join", &room, "--nick", "Bob"],
    )))[0];
    assert_eq!(joined["encrypted_ok"], true, "{joined}");
    let mut members: Vec<(&str, &str)> = joined["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["jid"].as_str().unwrap(),
                m["affiliation"].as_str().unwrap(),
            )
        })
        .collect();
    members.sort_unstable();
    let mut expected = vec![
        (alice.jid.as_str(), "owner"),
        (bob.jid.as_str(), "member"),
        (bot_jid.as_str(), "member"),
    ];
    expected.sort_unstable();
    assert_eq!(members, expected, "{joined}");

    // Both Hush accounts stay in the room through their agents; then the bot enters and sees
    // them, with their real JIDs.
    let alice = Member::start(alice);
    let mut bob = Member::start(bob);
    let mut bot = Bot::start(&server.address(), &dir, &bot_jid, "bot-pw", "legacy");
    let occupants = bot.join(&room, "bot");
    assert_eq!(
        occupants,
        json!({"Alice": alice.jid(), "Bob": bob.jid(), "bot": bot_jid}),
        "{}",
        bot.report()
    );

    // Hush → room: the bot gets a legacy key (the only namespace it announces), Bob his own.
    let hello = text("alice to the room #1");
    hush_writes(&room, &alice, "Alice", &bob, &mut bot, &hello);

    let from_bob = text("bob to the room #1");
    hush_writes(&room, &bob, "Bob", &alice, &mut bot, &from_bob);

    // Bot → room: both Hush accounts read it under the bot's real JID, room and nickname set.
    let from_bot = text("bot to the room #1");
    bot_writes(&room, &mut bot, [&alice, &bob], &from_bot);

    // More rounds on the established sessions, each turning the Double Ratchet's DH step.
    for round in 2..=3 {
        let body = text(&format!("alice to the room #{round}"));
        hush_writes(&room, &alice, "Alice", &bob, &mut bot, &body);
        let body = text(&format!("bot to the room #{round}"));
        bot_writes(&room, &mut bot, [&alice, &bob], &body);
    }

    // Bob goes away: his agent stops, and the room tells the bot he left. The bot encrypts
    // for him all the same, a member, as Conversations would; Alice, there, reads it live.
    bob.stop_agent();
    bot.await_leave(&room, "Bob");
    let while_away = text("bot to the room while bob is away");
    let (sent, _) = bot.send(&room, &while_away, &[&alice, &bob]);
    assert_eq!(sent["present"], json!([alice.jid()]), "{sent}");
    let got = alice.recv(1);
    assert_room_message(&got[0], &room, &bot_jid, "bot", bot.device, "omemo:legacy");
    assert_eq!(got[0]["body"], while_away.as_str(), "{got:?}");
    // Bob, back without his agent: `recv` connects, catches up, enters the room and reads its
    // archive, where the message waits, under the bot's real JID and nickname — and nothing
    // he had read already.
    let got = bob.recv(1);
    assert_room_message(&got[0], &room, &bot_jid, "bot", bot.device, "omemo:legacy");
    assert_eq!(got[0]["body"], while_away.as_str(), "{got:?}");

    // Bob's agent back in the room: everyone reads everyone live again, on the same sessions.
    bob.start_agent();
    let body = text("bob to the room, back");
    hush_writes(&room, &bob, "Bob", &alice, &mut bot, &body);
    let body = text("bot to the room, bob back");
    let (_, last_read) = bot_writes(&room, &mut bot, [&alice, &bob], &body);

    // Now the bot goes away: it leaves the room (the room confirms it). Hush encrypts for it
    // all the same, a member: its device is among those of each `send`.
    bot.leave(&room);
    let from_alice = text("alice to the room while the bot is away");
    alice.send(
        &room,
        &from_alice,
        &[(bob.jid(), bob.device), (&bot_jid, bot.device)],
    );
    let got = bob.recv(1);
    assert_room_message(
        &got[0],
        &room,
        alice.jid(),
        "Alice",
        alice.device,
        "omemo:2",
    );
    assert_eq!(got[0]["body"], from_alice.as_str(), "{got:?}");
    let from_bob = text("bob to the room while the bot is away");
    bob.send(
        &room,
        &from_bob,
        &[(alice.jid(), alice.device), (&bot_jid, bot.device)],
    );
    let got = alice.recv(1);
    assert_room_message(&got[0], &room, bob.jid(), "Bob", bob.device, "omemo:2");
    assert_eq!(got[0]["body"], from_bob.as_str(), "{got:?}");
    // Bob leaves as well, so that when the bot comes back only the archive knows who he is.
    bob.stop_agent();

    // The bot back in the room (asking for no history): Alice is there, Bob is not.
    let occupants = bot.join(&room, "bot");
    assert_eq!(
        occupants,
        json!({"Alice": alice.jid(), "bot": bot_jid}),
        "{}",
        bot.report()
    );
    // It reads the archive after the last message it read: both messages, in order, under
    // the real JIDs the archive gives (Bob's although he is gone), each from the one device.
    let (archived, last) = bot.catch_up(&room, &last_read);
    assert_eq!(archived.len(), 2, "{archived:?}; {}", bot.report());
    assert_archived(&archived[0], &room, &alice, "Alice", &from_alice);
    assert_archived(&archived[1], &room, &bob, "Bob", &from_bob);
    assert_ne!(archived[0]["id"], archived[1]["id"], "{archived:?}");
    assert!(
        archived[0]["stamp"].as_str() <= archived[1]["stamp"].as_str(),
        "{archived:?}"
    );
    // Caught up: after the last of them there is nothing more, and nothing is read twice.
    let (again, still) = bot.catch_up(&room, &last);
    assert_eq!(again, Vec::<Value>::new(), "{}", bot.report());
    assert_eq!(still, last);

    // Bob back; one more live round: the sessions go on where the archive left them.
    bob.start_agent();
    let body = text("alice to the room, the bot back");
    hush_writes(&room, &alice, "Alice", &bob, &mut bot, &body);
    let body = text("bob to the room, the bot back");
    hush_writes(&room, &bob, "Bob", &alice, &mut bot, &body);
    let body = text("bot to the room, back");
    bot_writes(&room, &mut bot, [&alice, &bob], &body);

    bot.quit();
    for mut member in [alice, bob] {
        member.stop_agent();
    }

    // Prosody kept only ciphertext (the room's archive included).
    let stored = server.stored_bytes();
    assert!(stored.len() > 1000, "nothing stored? {}", stored.len());
    for marker in &markers {
        assert!(
            !stored.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "{marker:?} is in clear in Prosody's storage"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
