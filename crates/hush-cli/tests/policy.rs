//! The policy commands of the `hush` binary against Prosody: `send --plaintext`, `config`,
//! `status`, `trust`, and the security properties in `send` / `recv` JSON.

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
use support::*;

#[test]
fn status_trust_switches_and_properties() {
    let server = Prosody::start("cli-policy");
    let dir = scratch("cli-policy");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);

    // Before anything was sent, status does not know Bob's devices: it says so, instead of
    // claiming he has none (it looks nothing up; the send will).
    let before = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    let next = before["next_message"].as_str().unwrap();
    assert!(next.starts_with("not known yet"), "{before}");
    assert_eq!(before["security"], Value::Null, "{before}");
    let text = ok(hush(&alice.home, &["status", &bob.jid]));
    assert!(!text.contains("no OMEMO device"), "{text}");

    // Encrypted by default; properties reported as they are: authentication weak (blind trust).
    let sent = one(ok(hush(&alice.home, &["--json", "send", &bob.jid, "hi"])));
    assert_eq!(sent["encrypted"], true);
    assert_eq!(sent["security"]["confidentiality"], true);
    assert_eq!(sent["security"]["authentication"], "weak");
    assert_eq!(sent["security"]["deniability"], true);
    let got = one(ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "1", "--timeout", "20"],
    )));
    assert_eq!(got["body"], "hi");
    assert_eq!(got["security"]["forward_secrecy"], true);
    assert_eq!(got["warning"], Value::Null);

    // Status: who can read, who could add a reader, what the next message gets.
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["encryption"], "on");
    assert_eq!(status["encrypted_so_far"], true);
    assert_eq!(status["next_message"], "encrypted");
    assert_eq!(status["security"]["authentication"], "weak");
    let readers = status["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1, "{status}");
    assert_eq!(readers[0]["jid"], bob.jid.as_str());
    assert_eq!(readers[0]["trust"], "blind");
    let adders = status["could_add_a_reader"].as_array().unwrap();
    assert!(adders
        .iter()
        .all(|a| a["new_devices_read_automatically"] == true));

    // Require strong authentication: refused (nothing sent) until Bob's device is verified.
    ok(hush(
        &alice.home,
        &["config", &bob.jid, "--require-auth", "strong"],
    ));
    let out = hush(&alice.home, &["send", &bob.jid, "needs strong"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.starts_with("error: nothing was sent"), "{err}");
    assert!(err.contains("strong authentication"), "{err}");
    let fp = readers[0]["fingerprint"].as_str().unwrap().to_owned();
    let trusted = one(ok(hush(&alice.home, &["--json", "trust", &bob.jid, &fp])));
    assert_eq!(trusted["trust"], "verified");
    let sent = one(ok(hush(
        &alice.home,
        &["--json", "send", &bob.jid, "strong now"],
    )));
    assert_eq!(sent["security"]["authentication"], "strong");
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["security"]["authentication"], "strong");
    assert!(status["could_add_a_reader"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["new_devices_read_automatically"] == false));

    // Plaintext only when asked, and marked as such on both ends. With strong authentication
    // required, even --plaintext is refused until the requirement is lowered.
    let out = hush(&alice.home, &["send", "--plaintext", &bob.jid, "x"]);
    assert!(!out.status.success());
    ok(hush(
        &alice.home,
        &["config", &bob.jid, "--require-auth", "weak"],
    ));
    // Back to weak: a new device of Bob's would still not be read automatically (one of his
    // keys is verified: blind trust is over for his account); one of Alice's own would.
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    let auto: Vec<(Value, Value)> = status["could_add_a_reader"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account"].clone(),
                a["new_devices_read_automatically"].clone(),
            )
        })
        .collect();
    assert_eq!(
        auto,
        [
            (Value::from(bob.jid.as_str()), Value::Bool(false)),
            (Value::from(alice.jid.as_str()), Value::Bool(true))
        ],
        "{status}"
    );
    let sent = one(ok(hush(
        &alice.home,
        &[
            "--json",
            "send",
            "--plaintext",
            &bob.jid,
            "in clear on purpose",
        ],
    )));
    assert_eq!(sent["encrypted"], false);
    assert_eq!(sent["security"]["confidentiality"], false);
    let got = json_lines(&ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "2", "--timeout", "20"],
    )));
    let clear = got
        .iter()
        .find(|m| m["body"] == "in clear on purpose")
        .expect("the plaintext message arrives");
    assert_eq!(clear["encrypted"], false);
    assert_eq!(clear["ns"], Value::Null);
    // Bob's conversation was encrypted: plaintext in it is flagged.
    assert!(clear["warning"]
        .as_str()
        .unwrap()
        .starts_with("UNENCRYPTED"));

    // The per-conversation off switch, visible in status.
    ok(hush(
        &alice.home,
        &["config", &bob.jid, "--encryption", "off"],
    ));
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["encryption"], "off");
    assert!(status["next_message"]
        .as_str()
        .unwrap()
        .starts_with("in clear"));
    let sent = one(ok(hush(
        &alice.home,
        &["--json", "send", &bob.jid, "off switch"],
    )));
    assert_eq!(sent["encrypted"], false);
    ok(hush(
        &alice.home,
        &["config", &bob.jid, "--encryption", "on"],
    ));
    let sent = one(ok(hush(
        &alice.home,
        &["--json", "send", &bob.jid, "back on"],
    )));
    assert_eq!(sent["encrypted"], true);

    // The global switch.
    let global = one(ok(hush(
        &alice.home,
        &["--json", "config", "--encryption", "off"],
    )));
    assert_eq!(global["global_encryption"], "off");
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["global_encryption"], "off");

    // No plaintext of encrypted messages on the server.
    let stored = server.stored_bytes();
    for secret in [b"strong now".as_slice(), b"back on"] {
        assert!(!stored.windows(secret.len()).any(|w| w == secret));
    }
}
