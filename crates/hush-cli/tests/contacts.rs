//! `hush contacts` (issue #14, part 4) against a private Prosody: adding each other makes a
//! presence subscription both ways, seen from both sides, once each side was online to accept
//! the other's request; a stranger's request is listed, not accepted; removing ends it.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_test_support::prosody::Prosody;
use serde_json::Value;
use support::*;

/// `hush --json contacts` of `user`: (JID, subscription or "asks", asked).
fn contacts(user: &User) -> Vec<(String, String, bool)> {
    json_lines(&ok(hush(&user.home, &["--json", "contacts"])))
        .iter()
        .map(|c: &Value| {
            (
                c["jid"].as_str().unwrap().to_owned(),
                c["subscription"].as_str().unwrap_or("asks").to_owned(),
                c["asked"] == true,
            )
        })
        .collect()
}

/// How long the other side's agent gets to answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `user`'s contacts are `want`.
fn wait_contacts(user: &User, want: &[(&str, &str, bool)]) {
    eventually(PATIENCE, || {
        let got = contacts(user);
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(want)
                .all(|(g, w)| g.0 == w.0 && g.1 == w.1 && g.2 == w.2);
        if same {
            Ok(())
        } else {
            Err(format!("{}'s contacts are {got:?}, not {want:?}", user.jid))
        }
    });
}

#[test]
fn adding_each_other_subscribes_both_ways_and_removing_ends_it() {
    let server = Prosody::start("contacts");
    let dir = scratch("contacts");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let carol = init(&server, &dir, "carol", true);
    let empty = ok(hush(&alice.home, &["contacts"]));
    assert!(empty.starts_with("no contacts yet"), "{empty}");
    assert!(contacts(&alice).is_empty());

    // Alice adds Bob while Bob is offline: her request waits on the server.
    let added = ok(hush(&alice.home, &["contacts", "add", &bob.jid]));
    assert!(added.starts_with(&format!("added {}", bob.jid)), "{added}");
    assert_eq!(contacts(&alice), [(bob.jid.clone(), "none".into(), true)]);
    // So does Carol, whom Bob does not know.
    ok(hush(&carol.home, &["contacts", "add", &bob.jid]));

    // Bob's agent goes online: both requests reach it; neither is a contact yet, so both are
    // listed as asking, and nothing is accepted.
    let bobs_agent = Running::start(&bob.home, &["agent"]);
    bobs_agent.wait_note("listening on");
    let asking = |user: &User| {
        contacts(user)
            .into_iter()
            .filter(|c| c.1 == "asks")
            .map(|c| c.0)
            .collect::<Vec<_>>()
    };
    let mut both = eventually(PATIENCE, || {
        let asks = asking(&bob);
        if asks.len() >= 2 {
            Ok(asks)
        } else {
            Err(format!("{:?}", contacts(&bob)))
        }
    });
    both.sort();
    assert_eq!(both, [alice.jid.clone(), carol.jid.clone()]);
    let listed = ok(hush(&bob.home, &["contacts"]));
    assert!(
        listed.contains(&format!("{} asks to see you", carol.jid)),
        "{listed}"
    );
    assert_eq!(contacts(&carol), [(bob.jid.clone(), "none".into(), true)]);

    // Bob adds Alice: her request is accepted, and he asks for hers.
    ok(hush(&bob.home, &["contacts", "add", &alice.jid]));
    wait_contacts(&alice, &[(&bob.jid, "to", false)]);
    // Alice's agent goes online and accepts Bob's request: both ways.
    let alices_agent = Running::start(&alice.home, &["agent"]);
    alices_agent.wait_note("listening on");
    wait_contacts(&alice, &[(&bob.jid, "both", false)]);
    wait_contacts(
        &bob,
        &[(&alice.jid, "both", false), (&carol.jid, "asks", false)],
    );
    let text = ok(hush(&alice.home, &["contacts"]));
    assert!(
        text.contains(&format!(
            "{}: both ways: you see each other online",
            bob.jid
        )),
        "{text}"
    );

    // What the subscription is for: Bob sets up a new device, and its device list reaches
    // Alice's agent as a push (PEP notification) — she sends nothing, fetches nothing.
    let phone = init(&server, &dir, "bob", false);
    let new_device =
        json_lines(&ok(hush(&phone.home, &["--json", "fingerprint"])))[0]["device"].clone();
    eventually(PATIENCE, || {
        let known = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bob.jid])));
        if known.iter().any(|d| d["device"] == new_device) {
            Ok(())
        } else {
            Err(format!(
                "Bob's new device {new_device} did not reach Alice: {known:?}"
            ))
        }
    });

    // Alice removes Bob: gone from her list, and Bob no longer sees her or is seen.
    let removed = ok(hush(&alice.home, &["contacts", "remove", &bob.jid]));
    assert!(
        removed.starts_with(&format!("removed {}", bob.jid)),
        "{removed}"
    );
    wait_contacts(&alice, &[]);
    wait_contacts(
        &bob,
        &[(&alice.jid, "none", false), (&carol.jid, "asks", false)],
    );
    assert!(alices_agent.stop("TERM").success());
    assert!(bobs_agent.stop("TERM").success());
    drop(server);
}
