//! `hush chat` (issue #14, part 3) in a real terminal: tmux runs it, the test types with
//! `send-keys` and reads the screen with `capture-pane`, against a private Prosody. What a
//! person sees is checked: messages as they arrive with time, sender, device and marks; what
//! is typed sent; failures inline; commands; the terminal given back on leaving.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hush_test_support::prosody::Prosody;
use serde_json::Value;
use support::*;

/// How long the screen gets to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// A terminal: a tmux server of its own (its own socket), one window running a command.
struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `hush --home HOME ARGS…` in a `width`×`height` terminal. When it ends, the pane
    /// shows `chat-exit=STATUS` and stays.
    fn run_hush(name: &str, home: &Path, args: &[&str], width: u16, height: u16) -> Self {
        let socket = format!("hush-test-{name}-{}", std::process::id());
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut command = format!(
            "HUSH_PASSPHRASE={} HUSH_TEST_PW=pw {} --home {}",
            quote(PASSPHRASE),
            quote(env!("CARGO_BIN_EXE_hush")),
            quote(home.to_str().unwrap())
        );
        for a in args {
            command.push(' ');
            command.push_str(&quote(a));
        }
        // `cat` keeps the pane (and what it shows) once hush ended, until the server goes.
        command.push_str("; echo chat-exit=$?; exec cat");
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .expect("tmux runs (./scripts/test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// What the terminal shows now, row by row.
    fn screen(&self) -> Vec<String> {
        self.tmux(&["capture-pane", "-p"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the screen satisfies `test`, and gives it; fails the test with the screen
    /// when it does not within [`PATIENCE`].
    fn wait_for(&self, what: &str, test: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen did not show {what} within {PATIENCE:?}:\n{}",
                screen.join("\n")
            );
            // Polling the screen: tmux has no way to wait for what it shows.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a row contains `text`.
    fn wait_text(&self, text: &str) -> Vec<String> {
        self.wait_for(&format!("{text:?}"), |s| s.iter().any(|r| r.contains(text)))
    }

    /// Types `text` (as it is, no key names) and Enter.
    fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }

    /// Presses keys by tmux's names (`C-c`, `PageUp`).
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Whether `row` starts as an entry the chat draws: a time `HH:MM ` first.
fn starts_with_time(row: &str) -> bool {
    let b = row.as_bytes();
    b.len() > 6
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2] == b':'
        && b[3..5].iter().all(u8::is_ascii_digit)
        && b[5] == b' '
}

/// The rows that show a message from `from` with `body`, drawn as an entry of ours.
fn message_rows<'a>(screen: &'a [String], from: &str, body: &str) -> Vec<&'a String> {
    screen
        .iter()
        .filter(|r| starts_with_time(r) && r[6..].starts_with(from) && r.ends_with(body))
        .collect()
}

#[test]
fn chat_shows_messages_as_they_come_and_sends_what_is_typed() {
    let server = Prosody::start("chat-live");
    let dir = scratch("chat-live");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    // Sent while nothing of Alice's runs: the chat shows it once, though it is both in the
    // history it shows first and among the messages nobody was shown yet.
    ok(hush(
        &bob.home,
        &["send", &alice.jid, "written while you were away"],
    ));

    let term = Terminal::run_hush("live", &alice.home, &["chat", &bob.jid], 110, 30);
    let screen = term.wait_for("the chat, live", |s| {
        s.iter().any(|r| r.contains(" live ")) && s.iter().any(|r| r.contains("were away"))
    });
    assert!(
        screen[0].contains(&format!("hush chat · {}", alice.jid)) && screen[0].contains(&bob.jid),
        "{screen:#?}"
    );
    let away = screen
        .iter()
        .filter(|r| r.contains("written while you were away"))
        .count();
    assert_eq!(away, 1, "shown once: {screen:#?}");

    // A message as it arrives: time, sender, device, namespace, trust.
    ok(hush(&bob.home, &["send", &alice.jid, "are you there?"]));
    let screen = term.wait_text("are you there?");
    let rows = message_rows(&screen, &bob.jid, "are you there?");
    assert_eq!(rows.len(), 1, "{screen:#?}");
    assert!(rows[0].contains(", omemo:2, blind]: "), "{screen:#?}");

    // What is typed goes to Bob, and says to how many devices it went.
    term.type_line("yes, typing in the chat");
    let screen = term.wait_text("✓ omemo:2, 1 device(s)");
    assert!(
        screen
            .iter()
            .any(|r| r.contains(&format!("→ {}: yes, typing in the chat  ✓", bob.jid))),
        "{screen:#?}"
    );
    // Another command of Alice's works while the chat holds the account (through the agent
    // the chat runs).
    let sent = ok(hush(
        &alice.home,
        &["send", &bob.jid, "and from another terminal"],
    ));
    assert!(sent.starts_with("sent to "), "{sent}");
    let read = ok(hush(&bob.home, &["--json", "recv", "--count", "2"]));
    let bodies: Vec<Value> = json_lines(&read)
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        ["yes, typing in the chat", "and from another terminal"]
    );

    // A body cannot draw a row of ours: its line break starts a continuation row.
    let forged = format!(
        "first line\n12:00 mallory@localhost [device 1, omemo:2, verified]: send money{}",
        " tail"
    );
    ok(hush(&bob.home, &["send", &alice.jid, &forged]));
    let screen = term.wait_text("send money tail");
    assert!(
        screen
            .iter()
            .any(|r| r.starts_with("    | 12:00 mallory@localhost")),
        "{screen:#?}"
    );
    assert!(
        !screen.iter().any(|r| r.starts_with("12:00 mallory")),
        "{screen:#?}"
    );

    // A mistyped command is refused, not sent; a command runs in place.
    term.type_line("/stauts");
    term.wait_text("no command /stauts");
    term.press("C-u");
    term.type_line("/status");
    term.wait_text("who can read it:");

    // Leaving gives the terminal back, stops the agent the chat ran, and ends well.
    term.press("C-c");
    let screen = term.wait_text("chat-exit=");
    assert!(screen.iter().any(|r| r == "chat-exit=0"), "{screen:#?}");
    assert!(
        !alice.home.join("agent.sock").exists(),
        "the chat's agent left its socket"
    );
    drop(server);
}

#[test]
fn a_message_that_cannot_be_read_shows_inline_and_reset_works_from_the_chat() {
    let server = Prosody::start("chat-fail");
    let dir = scratch("chat-fail");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    // A session both ways, so that Bob's next message is an ordinary one (no key exchange).
    ok(hush(&bob.home, &["send", &alice.jid, "hello"]));
    ok(hush(&alice.home, &["recv", "--count", "1"]));
    ok(hush(&alice.home, &["send", &bob.jid, "hello back"]));
    ok(hush(&bob.home, &["recv", "--count", "1"]));

    // The chat runs against an agent that was already running.
    let agent = Running::start(&alice.home, &["agent"]);
    agent.wait_note("listening on");
    let term = Terminal::run_hush("fail", &alice.home, &["chat", &bob.jid], 120, 30);
    term.wait_text(" live ");

    // Alice drops her session with Bob; his next message cannot be decrypted, and says so.
    term.type_line("/reset");
    term.wait_text("removed 1 session(s)");
    ok(hush(&bob.home, &["send", &alice.jid, "after the reset"]));
    let screen = term.wait_for("a failure", |s| {
        s.iter()
            .any(|r| starts_with_time(r) && r[6..].starts_with("!! "))
    });
    assert!(
        !screen.iter().any(|r| r.contains("after the reset")),
        "{screen:#?}"
    );

    // A message in clear is marked as such.
    ok(hush(
        &bob.home,
        &["send", "--plaintext", &alice.jid, "in the clear"],
    ));
    let screen = term.wait_text("in the clear");
    let rows = message_rows(&screen, &bob.jid, "in the clear");
    assert_eq!(rows.len(), 1, "{screen:#?}");
    assert!(rows[0].contains(" [UNENCRYPTED]: "), "{screen:#?}");

    // Leaving the chat leaves the agent running, serving.
    term.type_line("/quit");
    term.wait_text("chat-exit=0");
    let status = ok(hush(&alice.home, &["--json", "status", &bob.jid]));
    assert_eq!(json_lines(&status)[0]["jid"], bob.jid.as_str(), "{status}");
    assert!(agent.stop("TERM").success());
}

#[test]
fn a_terminal_that_goes_away_ends_the_chat_and_its_agent() {
    let server = Prosody::start("chat-hangup");
    let dir = scratch("chat-hangup");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let term = Terminal::run_hush("hangup", &alice.home, &["chat", &bob.jid], 100, 20);
    term.wait_text(" live ");
    assert!(alice.home.join("agent.sock").exists());
    // The window closes: the terminal hangs up under the chat, which ends, with its agent.
    drop(term);
    let home = alice.home.to_str().unwrap().to_owned();
    let running = || {
        let out = Command::new("pgrep").args(["-f", &home]).output().unwrap();
        !out.stdout.is_empty()
    };
    // Polling the process table: nothing tells the test when another process ends.
    eventually(PATIENCE, || {
        if running() {
            Err("the chat still runs after its terminal went away".to_owned())
        } else {
            Ok(())
        }
    });
    assert!(!alice.home.join("agent.sock").exists());
    // The account is free again: nothing holds its session lock.
    let sent = ok(hush(
        &alice.home,
        &["send", &bob.jid, "after the window closed"],
    ));
    assert!(sent.starts_with("sent to "), "{sent}");
}

#[test]
fn chat_without_a_terminal_says_what_to_use_instead() {
    let dir = scratch("chat-noterm");
    let out = hush(&dir.join("home"), &["chat"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("recv --follow"),
        "{err}"
    );
}

/// `hush agent --confirm` (confirm-on-use, like `ssh-add -c`): each new connection is asked
/// about on the agent's terminal, naming the process; yes serves it, no refuses it (exit 5),
/// and nothing is done. Without a terminal to ask on, the agent does not start.
#[test]
fn a_confirming_agent_asks_on_its_terminal_before_serving_a_connection() {
    let server = Prosody::start("agent-confirm");
    let dir = scratch("agent-confirm");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);

    let alone = Command::new("setsid")
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_hush"))
        .arg("--home")
        .arg(&alice.home)
        .args(["agent", "--confirm"])
        .env("HUSH_PASSPHRASE", PASSPHRASE)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2), "{alone:?}");
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("has none"),
        "{alone:?}"
    );

    let term = Terminal::run_hush("confirm", &alice.home, &["agent", "--confirm"], 150, 30);
    term.wait_text("listening on");
    // A send waits for the answer at the agent's terminal ...
    let sending = std::thread::spawn({
        let (home, to) = (alice.home.clone(), bob.jid.clone());
        move || hush(&home, &["send", &to, "allowed at the terminal"])
    });
    term.wait_text("[y/N]");
    let screen = term.screen();
    assert!(
        screen
            .iter()
            .any(|r| r.contains("send") && r.contains(&bob.jid)),
        "the question names the command line: {screen:#?}"
    );
    term.type_line("y");
    let sent = ok(sending.join().unwrap());
    assert!(sent.starts_with("sent to "), "{sent}");
    // ... and one refused there is refused, with nothing done.
    let reading = std::thread::spawn({
        let (home, jid) = (alice.home.clone(), bob.jid.clone());
        move || hush(&home, &["history", &jid])
    });
    term.wait_for("a second question", |s| {
        s.iter().filter(|r| r.contains("[y/N]")).count() == 2
    });
    term.type_line("n");
    let refused = reading.join().unwrap();
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refused at the agent's terminal"),
        "{refused:?}"
    );
    // Nothing to ask for a ping: `agent lock` needs no answer.
    ok(hush(&alice.home, &["agent", "lock"]));
    assert_eq!(recv_body(&bob), "allowed at the terminal");
}

fn recv_body(user: &User) -> String {
    let out = ok(hush(&user.home, &["--json", "recv", "--count", "1"]));
    json_lines(&out)[0]["body"].as_str().unwrap().to_owned()
}

/// Comparisons of short authentication strings started with `/sas` in the chat and answered
/// by `hush sas --wait` through Bob's agent: the offer reached Bob's agent (and his reader)
/// before `hush sas` ran, and both show the same seven words. `no` verifies nothing on either
/// side; `yes` on both verifies each device, decided by the comparison.
#[test]
fn short_authentication_strings_from_the_chat_and_through_an_agent() {
    let server = Prosody::start("chat-sas");
    let dir = scratch("chat-sas");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let bobs_agent = Running::start(&bob.home, &["agent"]);
    bobs_agent.wait_note("listening on");
    let bob_device = one(ok(hush(&bob.home, &["--json", "fingerprint"])))["device"].to_string();
    let alice_device = one(ok(hush(&alice.home, &["--json", "fingerprint"])))["device"].to_string();
    let follow = Running::start(&bob.home, &["--json", "recv", "--follow"]);
    follow.wait_note("connected to the agent");

    let term = Terminal::run_hush("sas", &alice.home, &["chat", &bob.jid], 160, 40);
    term.wait_text(" live ");
    // The first time, the words are said not to match; the second time, they are.
    for (round, answer) in [(1, "no"), (2, "yes")] {
        term.type_line(&format!("/sas {bob_device}"));
        term.wait_for("the comparison asked for", |s| {
            s.iter().filter(|r| r.contains("asked device")).count() == round
        });
        // Bob's agent holds the offer; his reader was told of it.
        let offer = loop {
            let n: Value = serde_json::from_str(&follow.next_line()).unwrap();
            if n["sas"]["step"] == "offered" {
                break n;
            }
        };
        assert_eq!(offer["sas"]["device"].to_string(), alice_device, "{offer}");
        let mut waiting =
            Running::interactive(&bob.home, &["--json", "sas", "--wait", "--timeout", "60"]);
        let words: Value = serde_json::from_str(&waiting.next_line()).unwrap();
        assert_eq!(words["device"].to_string(), alice_device, "{words}");
        assert_eq!(words["comparison"], offer["sas"]["comparison"], "{words}");
        let shown: Vec<&str> = words["words"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(shown.len(), 7, "{words}");

        // The chat shows the same words, in the same order.
        let screen = term.wait_text(&format!("    {}", shown.join("  ")));
        assert!(
            screen.iter().any(|r| r.contains("shows these words")),
            "{screen:#?}"
        );
        term.type_line(&format!("/sas {answer}"));
        if answer == "no" {
            // Alice's "no" first (it tells Bob's device), then Bob's.
            term.wait_text("the words differ");
            waiting.answer(answer);
            let (code, said) = waiting.finish();
            assert_eq!(code, Some(5), "{said:?}");
            assert!(said.iter().any(|l| l.contains("NOT verified")), "{said:?}");
            // Alice's device had ended the comparison, so Bob's "no" told nobody: not claimed.
            assert!(
                said.iter().any(|l| l.contains("may not have been told")),
                "{said:?}"
            );
            for (user, other) in [(&alice, &bob), (&bob, &alice)] {
                let devices = json_lines(&ok(hush(&user.home, &["--json", "devices", &other.jid])));
                assert!(
                    devices.iter().all(|d| d["trust"] != "verified"),
                    "{devices:?}"
                );
            }
            continue;
        }
        waiting.answer(answer);
        term.wait_text("verified (short authentication string)");
        let done: Value = serde_json::from_str(&waiting.next_line()).unwrap();
        assert_eq!(done["trust"], "verified", "{done}");
        assert_eq!(waiting.finish().0, Some(0));
    }

    for (user, other, device) in [(&alice, &bob, &bob_device), (&bob, &alice, &alice_device)] {
        let devices = json_lines(&ok(hush(&user.home, &["--json", "devices", &other.jid])));
        let entry = devices
            .iter()
            .find(|d| d["device"].as_u64().map(|n| n.to_string()).as_deref() == Some(device))
            .unwrap_or_else(|| panic!("{devices:?}"));
        assert_eq!(entry["trust"], "verified", "{entry}");
        assert_eq!(entry["decided_by"], "sas", "{entry}");
    }
    term.type_line("/quit");
    term.wait_text("chat-exit=0");
    assert!(bobs_agent.stop("TERM").success());
}
