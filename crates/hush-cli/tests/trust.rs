//! Trust people can use, through the `hush` binary against Prosody: verification by QR code
//! (drawn by `hush fingerprint --qr`, read back by an independent decoder, given to
//! `hush verify`), the URIs other clients write, and the trust models.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use hush_test_support::prosody::Prosody;
use hush_test_support::tools::{gpg_revoke, run as tool};
use serde_json::Value;
use support::*;

/// What a phone reads from the QR code `hush fingerprint --qr BACKGROUND` draws.
fn scanned(user: &User, background: &str, extra: &[&str]) -> (String, Value) {
    let mut args = vec!["--json", "fingerprint", "--qr", background];
    args.extend_from_slice(extra);
    let shown = one(ok(hush(&user.home, &args)));
    let drawn: Vec<&str> = shown["qr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let text = drawn.join("\n");
    let read = hush_test_support::qr::read(&text, background == "light")
        .unwrap_or_else(|| panic!("no QR code in\n{text}"));
    // The text form draws a code that reads the same.
    let plain = ok(hush(&user.home, &args[1..]));
    let code: Vec<&str> = plain
        .lines()
        .filter(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| hush_test_support::qr::halves(c).is_some())
        })
        .collect();
    assert_eq!(
        hush_test_support::qr::read(&code.join("\n"), background == "light").as_deref(),
        Some(read.as_str()),
        "{plain}"
    );
    (read, shown)
}

/// Alice scans the QR code of Bob's first device and verifies it; Bob verifies his second
/// device, whose key his next QR code then carries too, so Alice verifies both with one scan.
/// Kaidan's form (XEP-0434 trust message URI) verifies as well; a code for another key is a
/// mismatch.
#[test]
fn qr_codes_verify_what_they_show() {
    let server = Prosody::start("cli-qr");
    let dir = scratch("cli-qr");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let bob_phone = init(&server, &dir, "bob", false);

    let (read, shown) = scanned(&bob, "dark", &[]);
    assert_eq!(read, shown["uri"].as_str().unwrap());
    assert!(
        read.starts_with(&format!("xmpp:{}?omemo-sid-", bob.jid)),
        "{read}"
    );
    assert_eq!(shown["devices_in_uri"].as_array().unwrap().len(), 1);
    let verified = json_lines(&ok(hush(&alice.home, &["--json", "verify", &read])));
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert_eq!(verified[0]["device"], shown["device"]);
    assert_eq!(verified[0]["trust"], "verified");

    // Bob's laptop verifies his phone; its code now names both.
    let phone = one(ok(hush(&bob_phone.home, &["--json", "fingerprint"])));
    ok(hush(&bob.home, &["verify", phone["uri"].as_str().unwrap()]));
    let (both, shown) = scanned(&bob, "light", &[]);
    assert_eq!(
        shown["devices_in_uri"].as_array().unwrap().len(),
        2,
        "{shown}"
    );
    let verified = json_lines(&ok(hush(&alice.home, &["--json", "verify", &both])));
    let devices: Vec<&Value> = verified.iter().map(|v| &v["device"]).collect();
    assert!(devices.contains(&&phone["device"]), "{verified:?}");
    assert!(verified.iter().all(|v| v["trust"] == "verified"));

    // Kaidan's form, from Bob's phone (its own key only: it verified nothing).
    let (kaidan, _) = scanned(&bob_phone, "dark", &["--uri", "trust-message"]);
    assert!(
        kaidan.starts_with(&format!(
            "xmpp:{}?trust-message;encryption=urn:xmpp:omemo:2;trust=",
            bob.jid
        )),
        "{kaidan}"
    );
    let carol = init(&server, &dir, "carol", true);
    let verified = one(ok(hush(&carol.home, &["--json", "verify", &kaidan])));
    assert_eq!(verified["device"], phone["device"], "{verified}");
    assert_eq!(verified["trust"], "verified");

    // A code whose key is not the one Bob's device publishes.
    let fp = shown["fingerprint"].as_str().unwrap().replace(' ', "");
    let last = if fp.ends_with('0') { "1" } else { "0" };
    let forged = read.replace(&fp, &format!("{}{last}", &fp[..fp.len() - 1]));
    assert_ne!(forged, read);
    let refused = hush(&carol.home, &["verify", &forged]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("FINGERPRINT MISMATCH"),
        "{refused:?}"
    );
}

/// The trust models through the commands: the account's model and a contact's own, shown by
/// `config` and `status`; under the manual model a send to a new contact is refused, naming
/// the device that waits, until the user trusts it.
#[test]
fn trust_models_are_set_shown_and_applied() {
    let server = Prosody::start("cli-models");
    let dir = scratch("cli-models");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);

    let global = one(ok(hush(&alice.home, &["--json", "config"])));
    assert_eq!(global["trust_model"], "btbv", "{global}");
    let set = one(ok(hush(
        &alice.home,
        &["--json", "config", "--trust-model", "tofu"],
    )));
    assert_eq!(set["trust_model"], "tofu", "{set}");
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["trust_model"]["name"], "tofu", "{status}");
    assert_eq!(status["trust_model"]["set_for"], "account", "{status}");
    let text = ok(hush(&alice.home, &["status", &bob.jid]));
    assert!(text.contains("trust model: trust on first use"), "{text}");

    let set = one(ok(hush(
        &alice.home,
        &["--json", "config", &bob.jid, "--trust-model", "manual"],
    )));
    assert_eq!(set["trust_model"], "manual", "{set}");
    assert_eq!(set["trust_model_set_for"], "contact", "{set}");
    let refused = hush(&alice.home, &["send", &bob.jid, "hello?"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("trust undecided"), "{why}");
    assert!(why.contains(&format!("hush trust {}", bob.jid)), "{why}");
    assert!(history_is_empty(&alice, &bob.jid));

    let device = one(ok(hush(&bob.home, &["--json", "fingerprint"])))["device"].to_string();
    ok(hush(&alice.home, &["trust", &bob.jid, &device]));
    ok(hush(&alice.home, &["send", &bob.jid, "hello!"]));
    let status = one(ok(hush(&alice.home, &["--json", "status", &bob.jid])));
    assert_eq!(status["trust_model"]["set_for"], "contact", "{status}");
    assert_eq!(
        status["trust_model"]["new_devices"], "wait_for_decision",
        "{status}"
    );
    // Back to the account's model.
    let set = one(ok(hush(
        &alice.home,
        &["--json", "config", &bob.jid, "--trust-model", "account"],
    )));
    assert_eq!(set["trust_model"], "tofu", "{set}");
    assert_eq!(set["trust_model_set_for"], "account", "{set}");
    let refused = hush(&alice.home, &["config", "--trust-model", "account"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
}

fn history_is_empty(user: &User, jid: &str) -> bool {
    json_lines(&ok(hush(&user.home, &["--json", "history", jid]))).is_empty()
}

/// The next line of `running`, as JSON.
fn next_json(running: &Running) -> Value {
    let line = running.next_line();
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
}

/// Two devices compare seven words (`hush sas`): the same words on both, `yes` on each
/// verifies the other, and `devices` says it was by a short authentication string. A `no`
/// verifies nothing and exits 5.
#[test]
fn short_authentication_strings_verify_both_devices() {
    let server = Prosody::start("cli-sas");
    let dir = scratch("cli-sas");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let alice_device = one(ok(hush(&alice.home, &["--json", "fingerprint"])))["device"].to_string();
    let bob_device = one(ok(hush(&bob.home, &["--json", "fingerprint"])))["device"].to_string();

    for (round, answer) in [(1, "no"), (2, "yes")] {
        let waiting =
            Running::interactive(&bob.home, &["--json", "sas", "--wait", "--timeout", "60"]);
        waiting.wait_note("waiting for a device");
        let starting = Running::interactive(
            &alice.home,
            &["--json", "sas", &bob.jid, &bob_device, "--timeout", "60"],
        );
        let (mut waiting, mut starting) = (waiting, starting);
        let (theirs, ours) = (next_json(&waiting), next_json(&starting));
        assert_eq!(
            theirs["words"], ours["words"],
            "round {round}: {theirs} {ours}"
        );
        assert_eq!(
            ours["words"].as_array().map(Vec::len),
            Some(7),
            "round {round}: {theirs} {ours}"
        );
        assert_eq!(ours["device"].to_string(), bob_device);
        assert_eq!(theirs["device"].to_string(), alice_device);
        starting.answer(answer);
        if answer == "no" {
            let (code, said) = starting.finish();
            assert_eq!(code, Some(5), "{said:?}");
            assert!(said.iter().any(|l| l.contains("NOT verified")), "{said:?}");
            // Bob's side hears of it and verifies nothing either.
            let (code, said) = waiting.finish();
            assert_ne!(code, Some(0), "{said:?}");
            let devices = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bob.jid])));
            assert!(
                devices.iter().all(|d| d["trust"] != "verified"),
                "{devices:?}"
            );
            continue;
        }
        waiting.answer("yes");
        let (verified, done) = (next_json(&starting), next_json(&waiting));
        assert_eq!(verified["trust"], "verified", "{verified}");
        assert_eq!(done["trust"], "verified", "{done}");
        assert_eq!(starting.finish().0, Some(0));
        assert_eq!(waiting.finish().0, Some(0));
    }
    for (user, other, device) in [(&alice, &bob, &bob_device), (&bob, &alice, &alice_device)] {
        let devices = json_lines(&ok(hush(&user.home, &["--json", "devices", &other.jid])));
        let entry = devices
            .iter()
            .find(|d| {
                d["device"].as_u64().map(|n| n.to_string()).as_deref() == Some(device.as_str())
            })
            .unwrap_or_else(|| panic!("{devices:?}"));
        assert_eq!(entry["trust"], "verified", "{entry}");
        assert_eq!(entry["decided_by"], "sas", "{entry}");
    }
}

/// OpenPGP and X.509 attestations through the commands: Bob signs his devices' statements
/// with gpg and openssl and publishes them; Alice trusts his OpenPGP key and his company's CA,
/// checks, and has both devices verified with who vouched; under a CA she does not trust,
/// nothing is verified.
#[test]
fn attestations_verify_devices_a_trusted_signer_vouches_for() {
    let server = Prosody::start("cli-attest");
    let dir = scratch("cli-attest");
    let alice = init(&server, &dir, "alice", true);
    let bob = init(&server, &dir, "bob", true);
    let phone = init(&server, &dir, "bob", false);
    let work = dir.join("tools");
    std::fs::create_dir_all(work.join("gnupg")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.join("gnupg"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
    }
    let uid = "Bob <bob@localhost>";

    // Bob's laptop: an OpenPGP signature over its statement.
    let statement = ok(hush(&bob.home, &["attest", "statement"]));
    assert!(
        statement.starts_with("Hush OMEMO identity key attestation v1\n"),
        "{statement}"
    );
    std::fs::write(work.join("laptop.txt"), &statement).unwrap();
    tool(
        &work,
        "gpg",
        &[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ],
    );
    tool(
        &work,
        "gpg",
        &[
            "--batch",
            "--local-user",
            uid,
            "--detach-sign",
            "--armor",
            "laptop.txt",
        ],
    );
    std::fs::write(
        work.join("bob.asc"),
        tool(&work, "gpg", &["--batch", "--armor", "--export", uid]),
    )
    .unwrap();
    let sig = work.join("laptop.txt.asc");
    let published = one(ok(hush(
        &bob.home,
        &[
            "--json",
            "attest",
            "publish",
            "--openpgp",
            sig.to_str().unwrap(),
        ],
    )));
    assert_eq!(published["openpgp"], true, "{published}");

    // Bob's phone: a certificate from Bob's company CA signs its statement.
    let statement = ok(hush(&phone.home, &["attest", "statement"]));
    std::fs::write(work.join("phone.txt"), &statement).unwrap();
    for (ca, cn) in [("ca", "Example Corp CA"), ("other", "Other CA")] {
        tool(
            &work,
            "openssl",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{ca}.key"),
            ],
        );
        tool(
            &work,
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{ca}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-days",
                "30",
                "-out",
                &format!("{ca}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
    }
    tool(
        &work,
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "phone.key",
        ],
    );
    tool(
        &work,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            "phone.key",
            "-subj",
            "/CN=Bob's phone/emailAddress=bob@localhost",
            "-out",
            "phone.csr",
        ],
    );
    tool(
        &work,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "phone.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "10",
            "-out",
            "phone.pem",
        ],
    );
    std::fs::write(
        work.join("phone.sig"),
        tool(
            &work,
            "openssl",
            &["dgst", "-sha256", "-sign", "phone.key", "phone.txt"],
        ),
    )
    .unwrap();
    // A signature over another statement is caught before anything is published.
    std::fs::write(
        work.join("laptop.sig"),
        tool(
            &work,
            "openssl",
            &["dgst", "-sha256", "-sign", "phone.key", "laptop.txt"],
        ),
    )
    .unwrap();
    let path = |f: &str| work.join(f).to_str().unwrap().to_owned();
    let refused = hush(
        &phone.home,
        &[
            "attest",
            "publish",
            "--x509-chain",
            &path("phone.pem"),
            "--x509-signature",
            &path("laptop.sig"),
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    ok(hush(
        &phone.home,
        &[
            "attest",
            "publish",
            "--x509-chain",
            &path("phone.pem"),
            "--x509-signature",
            &path("phone.sig"),
        ],
    ));

    // Alice trusts another CA only: nothing is vouched for.
    let none = hush(&alice.home, &["attest", "check", &bob.jid]);
    assert_eq!(none.status.code(), Some(2), "no anchors yet: {none:?}");
    ok(hush(
        &alice.home,
        &["attest", "anchor", "--x509", &path("other.pem")],
    ));
    let checked = json_lines(&ok(hush(
        &alice.home,
        &["--json", "attest", "check", &bob.jid],
    )));
    assert_eq!(checked.len(), 2, "{checked:?}");
    assert!(checked.iter().all(|c| c["trust"].is_null()), "{checked:?}");

    // Now Bob's key and his company's CA.
    ok(hush(
        &alice.home,
        &[
            "attest",
            "anchor",
            "--openpgp",
            &path("bob.asc"),
            "--x509",
            &path("ca.pem"),
        ],
    ));
    let anchors = one(ok(hush(&alice.home, &["--json", "attest", "anchors"])));
    assert_eq!(
        (anchors["openpgp"].as_u64(), anchors["x509"].as_u64()),
        (Some(1), Some(2))
    );
    let checked = json_lines(&ok(hush(
        &alice.home,
        &["--json", "attest", "check", &bob.jid],
    )));
    assert!(
        checked.iter().all(|c| c["trust"] == "verified"),
        "{checked:?}"
    );
    let devices = json_lines(&ok(hush(&alice.home, &["--json", "devices", &bob.jid])));
    let by: Vec<&Value> = devices.iter().map(|d| &d["decided_by"]).collect();
    assert!(
        by.iter().any(|b| b["openpgp"]["user_id"] == uid),
        "{devices:?}"
    );
    assert!(
        by.iter().any(|b| b["x509"]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Bob's phone"))),
        "{devices:?}"
    );
    let text = ok(hush(&alice.home, &["devices", &bob.jid]));
    assert!(text.contains("by OpenPGP key"), "{text}");
    assert!(text.contains("by X.509 subject"), "{text}");

    // The user's refusal stands: an attestation does not lift it.
    let phone_device = one(ok(hush(&phone.home, &["--json", "fingerprint"])))["device"].clone();
    let phone_id = phone_device.to_string();
    ok(hush(&alice.home, &["distrust", &bob.jid, &phone_id]));
    let checked = json_lines(&ok(hush(
        &alice.home,
        &["--json", "attest", "check", &bob.jid],
    )));
    let phone_line = checked
        .iter()
        .find(|c| c["device"] == phone_device)
        .unwrap_or_else(|| panic!("{checked:?}"));
    assert!(phone_line["trust"].is_null(), "{phone_line}");
    assert!(
        phone_line["not_vouched"]
            .as_str()
            .unwrap()
            .contains("distrusted"),
        "{phone_line}"
    );

    // Each anchor is listed with its id; adding one again keeps one copy.
    ok(hush(
        &alice.home,
        &[
            "attest",
            "anchor",
            "--openpgp",
            &path("bob.asc"),
            "--x509",
            &path("ca.pem"),
        ],
    ));
    let anchors = one(ok(hush(&alice.home, &["--json", "attest", "anchors"])));
    let listed = anchors["anchors"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{anchors}");
    let key = listed
        .iter()
        .find(|a| a["kind"] == "openpgp")
        .unwrap_or_else(|| panic!("{anchors}"));
    assert_eq!(key["name"], uid, "{anchors}");
    // Removed by the first digits of its fingerprint: what it vouched for stays verified,
    // and is named; it vouches for nothing more.
    let prefix = &key["id"].as_str().unwrap()[..12];
    let removed = one(ok(hush(
        &alice.home,
        &["--json", "attest", "anchor", "--remove", prefix],
    )));
    assert_eq!(removed["removed"]["id"], key["id"], "{removed}");
    assert_eq!(
        removed["still_verified"].as_array().map(Vec::len),
        Some(1),
        "{removed}"
    );
    let anchors = one(ok(hush(&alice.home, &["--json", "attest", "anchors"])));
    assert_eq!(
        (anchors["openpgp"].as_u64(), anchors["x509"].as_u64()),
        (Some(0), Some(2))
    );
    let again = hush(&alice.home, &["attest", "anchor", "--remove", prefix]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("attest anchors"),
        "{again:?}"
    );

    // Bob revokes his key (gpg's own revocation certificate): the revoked copy is kept, and
    // an older copy without the revocation does not replace it.
    let revoked = gpg_revoke(&work, key["id"].as_str().unwrap(), uid);
    std::fs::write(work.join("bob-revoked.asc"), revoked).unwrap();
    ok(hush(
        &alice.home,
        &["attest", "anchor", "--openpgp", &path("bob-revoked.asc")],
    ));
    let older = hush(
        &alice.home,
        &["attest", "anchor", "--openpgp", &path("bob.asc")],
    );
    assert_eq!(older.status.code(), Some(2), "{older:?}");
    assert!(
        String::from_utf8_lossy(&older.stderr).contains("is revoked"),
        "{older:?}"
    );
}
