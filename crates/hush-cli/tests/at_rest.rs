//! Keys at rest: what `hush` leaves on disk. A store made by `hush init` is SQLCipher-encrypted
//! under the passphrase and holds the XMPP password; nothing in the home directory shows the
//! JID, the password or a message in clear; a wrong or missing passphrase is a one-line error
//! that changes nothing; loose permissions are tightened; the explicit opt-out works and warns;
//! homes of older versions keep working and `hush store encrypt` encrypts them.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use hush_store::{OpenOptions, SqliteStore, Store, StoreError};
use hush_test_support::prosody::Prosody;
use serde_json::{json, Value};
use support::*;
use zeroize::Zeroizing;

/// Long enough that finding it by chance in random bytes is out of the question.
const XMPP_PASSWORD: &str = "xmpp-password-that-must-stay-secret-7f3a";
const BODY: &str = "a message body that must never be on disk in clear";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file of a home: name, contents and mode.
fn snapshot(home: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(home)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            (
                e.file_name().to_string_lossy().into_owned(),
                (std::fs::read(e.path()).unwrap(), mode),
            )
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Asserts that no file of `home` holds any of `secrets` in clear.
fn nothing_in_clear(home: &Path, secrets: &[&str]) {
    let files = snapshot(home);
    assert!(files.contains_key("store.db"), "{:?}", files.keys());
    for (name, (bytes, _)) in &files {
        for s in secrets {
            assert!(!contains(bytes, s), "{s:?} is in clear in {name}");
        }
    }
}

fn config_json(home: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(home.join("config.json")).unwrap()).unwrap()
}

/// `hush init` with the long password, registered on `server` first.
fn init_user(server: &Prosody, dir: &Path, user: &str, extra: &[&str]) -> (User, Output) {
    let jid = server.register(user, XMPP_PASSWORD);
    let home = dir.join(user);
    let addr = server.address();
    let mut args = vec![
        "init",
        "--jid",
        &jid,
        "--server",
        &addr,
        "--insecure-loopback",
        "--password-env",
        "HUSH_TEST_PW",
    ];
    args.extend_from_slice(extra);
    let out = hush_command(&home)
        .env("HUSH_TEST_PW", XMPP_PASSWORD)
        .args(&args)
        .output()
        .unwrap();
    (User { home, jid }, out)
}

fn open_with(path: &Path, passphrase: Option<&str>) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(
        path,
        &OpenOptions {
            passphrase: passphrase.map(|p| Zeroizing::new(p.to_owned())),
            ..Default::default()
        },
    )
}

#[test]
fn the_store_is_encrypted_and_holds_the_password() {
    let server = Prosody::start("atrest");
    let dir = scratch("atrest");
    let (alice, out) = init_user(&server, &dir, "alice", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let (bob, out) = init_user(&server, &dir, "bob", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    ok(hush(&alice.home, &["send", &bob.jid, BODY]));
    let got = json_lines(&ok(hush(
        &bob.home,
        &["--json", "recv", "--count", "1", "--timeout", "20"],
    )));
    assert_eq!(got[0]["body"], BODY);

    for u in [&alice, &bob] {
        // Only the store kind is in config.json; the rest is in the encrypted store.
        assert_eq!(config_json(&u.home), json!({"store": "encrypted"}));
        nothing_in_clear(
            &u.home,
            &[&alice.jid, &bob.jid, XMPP_PASSWORD, BODY, "SQLite format 3"],
        );
        assert_eq!(mode(&u.home), 0o700);
        assert_eq!(mode(&u.home.join("store.db")), 0o600);
        assert_eq!(mode(&u.home.join("config.json")), 0o600);
        // Without the passphrase neither hush-store nor plain SQLite reads it.
        let store = u.home.join("store.db");
        assert!(matches!(
            open_with(&store, None),
            Err(StoreError::Unreadable { .. })
        ));
        let raw = hush_store::testing::Connection::open(&store).unwrap();
        assert!(raw
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r
                .get::<_, i64>(0))
            .is_err());
    }
    // With it, everything is there: the searches above looked at the right files.
    let store = open_with(&alice.home.join("store.db"), Some(PASSPHRASE)).unwrap();
    assert_eq!(
        store
            .setting("xmpp_password")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some(XMPP_PASSWORD)
    );
    let history = store.history(&bob.jid, 10).unwrap();
    assert_eq!(history[0].body.as_deref(), Some(BODY.as_bytes()));
    assert_eq!(store.account().unwrap().unwrap().jid, alice.jid);
    drop(store);

    // A wrong passphrase: one line, and not one byte, name or mode changes.
    let before = snapshot(&alice.home);
    let out = hush_command(&alice.home)
        .env("HUSH_PASSPHRASE", "wrong passphrase")
        .args(["send", &bob.jid, "never sent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "error: wrong passphrase for the store in {} (nothing was changed)\n",
            alice.home.display()
        )
    );
    assert_eq!(snapshot(&alice.home), before);

    // No passphrase and no terminal: one line saying how to give one.
    let out = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .arg("fingerprint")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the store in")
            && err.contains("HUSH_PASSPHRASE")
            && err.contains("--passphrase-env NAME")
            && err.contains("--passphrase-stdin")
            && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(snapshot(&alice.home), before);

    // The other sources: a named variable, standard input.
    let out = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .env("MY_STORE_KEY", PASSPHRASE)
        .args(["--passphrase-env", "MY_STORE_KEY", "--json", "fingerprint"])
        .output()
        .unwrap();
    let fp: Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(fp["jid"], alice.jid.as_str());
    let mut child = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .args(["--passphrase-stdin", "--json", "fingerprint"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSPHRASE}").unwrap();
    let again: Value = serde_json::from_str(&ok(child.wait_with_output().unwrap())).unwrap();
    assert_eq!(again, fp);

    // Loose permissions are tightened, with a warning for each; the next run is quiet.
    std::fs::set_permissions(&alice.home, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (f, m) in [("store.db", 0o644), ("config.json", 0o640)] {
        std::fs::set_permissions(alice.home.join(f), std::fs::Permissions::from_mode(m)).unwrap();
    }
    let out = hush(&alice.home, &["fingerprint"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for (f, m) in [("", "755"), ("/store.db", "644"), ("/config.json", "640")] {
        let line = format!(
            "warning: {}{f} was readable by others (mode {m}); changed to",
            alice.home.display()
        );
        assert!(err.contains(&line), "{line:?} not in {err}");
    }
    assert_eq!(mode(&alice.home), 0o700);
    assert_eq!(mode(&alice.home.join("store.db")), 0o600);
    assert_eq!(mode(&alice.home.join("config.json")), 0o600);
    let out = hush(&alice.home, &["fingerprint"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts the lines of `err` saying the store is not encrypted.
fn unencrypted_warnings(err: &str) -> usize {
    err.lines()
        .filter(|l| l.starts_with("warning: ") && l.contains("not encrypted"))
        .count()
}

#[test]
fn the_unencrypted_store_is_an_explicit_choice_that_warns() {
    let server = Prosody::start("atrest-optout");
    let dir = scratch("atrest-optout");
    let (bob, out) = init_user(&server, &dir, "bob", &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    // No passphrase and no terminal: `init` says how to give one, or how to opt out, and
    // creates nothing; never an unencrypted store by default.
    let out = hush_command(&dir.join("nobody"))
        .env_remove("HUSH_PASSPHRASE")
        .args([
            "init",
            "--jid",
            "nobody@localhost",
            "--password-env",
            "HUSH_TEST_PW",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: ")
            && err.contains("HUSH_PASSPHRASE")
            && err.contains("--unencrypted-store")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(!dir.join("nobody").exists());

    // A passphrase named together with the opt-out is a contradiction.
    let out = hush_command(&dir.join("nobody"))
        .args([
            "init",
            "--jid",
            "nobody@localhost",
            "--password-env",
            "HUSH_TEST_PW",
            "--unencrypted-store",
            "--passphrase-env",
            "HUSH_PASSPHRASE",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--unencrypted-store"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("nobody").exists());

    let (alice, out) = init_user(&server, &dir, "alice", &["--unencrypted-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(unencrypted_warnings(&stderr(&out)), 1, "{}", stderr(&out));
    assert_eq!(config_json(&alice.home), json!({"store": "unencrypted"}));
    assert!(!contains(
        &std::fs::read(alice.home.join("config.json")).unwrap(),
        XMPP_PASSWORD
    ));
    let bytes = std::fs::read(alice.home.join("store.db")).unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // The password is in the unencrypted store: the user's choice, and readable by anyone
    // who can read the file.
    let store = open_with(&alice.home.join("store.db"), None).unwrap();
    assert_eq!(
        store
            .setting("xmpp_password")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some(XMPP_PASSWORD)
    );
    drop(store);

    // Every command works without a passphrase and warns once (`send` opens the store and
    // reads the settings more than once).
    let out = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .args(["send", &bob.jid, BODY])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(unencrypted_warnings(&stderr(&out)), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hush store encrypt"),
        "{}",
        stderr(&out)
    );
    let out = hush(&alice.home, &["history", &bob.jid]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(BODY));
    assert_eq!(unencrypted_warnings(&stderr(&out)), 1, "{}", stderr(&out));

    // Encrypting it later: the whole home is then as if made encrypted.
    let out = hush(&alice.home, &["store", "encrypt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(unencrypted_warnings(&stderr(&out)), 0, "{}", stderr(&out));
    assert_eq!(config_json(&alice.home), json!({"store": "encrypted"}));
    nothing_in_clear(
        &alice.home,
        &[&alice.jid, &bob.jid, XMPP_PASSWORD, BODY, "SQLite format 3"],
    );
    let out = hush(&alice.home, &["history", &bob.jid]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(BODY));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = hush(&alice.home, &["store", "encrypt"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already encrypted"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Turns a home into what older versions made: settings and password in config.json, a plain
/// schema 4 store without the settings table.
fn make_legacy(home: &Path) -> Value {
    let store = home.join("store.db");
    let c = hush_store::testing::Connection::open(&store).unwrap();
    let get = |k: &str| -> String {
        c.query_row("SELECT value FROM settings WHERE key = ?1", [k], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let mut config: Value = serde_json::from_str(&get("config")).unwrap();
    config["password"] = json!(get("xmpp_password"));
    c.execute_batch(
        "DROP TABLE held_trust; DROP TABLE trust_outbox; ALTER TABLE trust DROP COLUMN ed25519; ALTER TABLE trust DROP COLUMN source; ALTER TABLE conversations DROP COLUMN trust_model; DROP TABLE room_told; DROP TABLE room_members; DROP TABLE rooms; DROP TABLE published_keys; DROP TABLE strangers; DROP TABLE settings; \
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(c);
    std::fs::write(home.join("config.json"), config.to_string()).unwrap();
    std::fs::set_permissions(
        home.join("config.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    config
}

fn store_path(u: &User) -> PathBuf {
    u.home.join("store.db")
}

#[test]
fn homes_of_older_versions_keep_working_until_encrypted() {
    let server = Prosody::start("atrest-legacy");
    let dir = scratch("atrest-legacy");
    let (bob, out) = init_user(&server, &dir, "bob", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (alice, out) = init_user(&server, &dir, "alice", &["--unencrypted-store"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let legacy = make_legacy(&alice.home);
    assert_eq!(legacy["password"], XMPP_PASSWORD);

    // It works as before, without a passphrase, and says once how to encrypt it.
    let out = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .args(["send", &bob.jid, BODY])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let advice: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(advice.len(), 1, "{err}");
    assert!(
        advice[0].contains("made by an older hush")
            && advice[0].contains("config.json holds your XMPP password in clear")
            && advice[0].contains("hush store encrypt"),
        "{err}"
    );
    // Settings changes still land in its config.json.
    ok(hush(&alice.home, &["config", "--encryption", "off"]));
    assert_eq!(config_json(&alice.home)["encryption_off"], true);
    ok(hush(&alice.home, &["config", "--encryption", "on"]));
    assert!(open_with(&store_path(&alice), None)
        .unwrap()
        .setting("config")
        .unwrap()
        .is_none());

    // `hush store encrypt` moves the settings into the store and encrypts it.
    let out = hush(&alice.home, &["store", "encrypt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(config_json(&alice.home), json!({"store": "encrypted"}));
    nothing_in_clear(
        &alice.home,
        &[&alice.jid, &bob.jid, XMPP_PASSWORD, BODY, "SQLite format 3"],
    );
    assert_eq!(mode(&store_path(&alice)), 0o600);
    let store = open_with(&store_path(&alice), Some(PASSPHRASE)).unwrap();
    assert_eq!(
        store.history(&bob.jid, 10).unwrap()[0].body.as_deref(),
        Some(BODY.as_bytes())
    );
    drop(store);
    // It still talks: Bob answers, Alice reads it (connecting with the moved password).
    ok(hush(&bob.home, &["send", &alice.jid, "answer"]));
    let got = json_lines(&ok(hush(
        &alice.home,
        &["--json", "recv", "--count", "1", "--timeout", "20"],
    )));
    assert_eq!(got[0]["body"], "answer");
    let out = hush_command(&alice.home)
        .env_remove("HUSH_PASSPHRASE")
        .arg("fingerprint")
        .output()
        .unwrap();
    assert!(!out.status.success() && stderr(&out).contains("is encrypted"));

    // Interrupted between the new store taking the old one's place and config.json being
    // rewritten: the encrypted store counts, and the password leaves config.json.
    std::fs::write(alice.home.join("config.json"), legacy.to_string()).unwrap();
    ok(hush(&alice.home, &["fingerprint"]));
    assert_eq!(config_json(&alice.home), json!({"store": "encrypted"}));
    nothing_in_clear(&alice.home, &[XMPP_PASSWORD, &alice.jid]);

    // An unencrypted file where an encrypted store was recorded is refused, not read.
    let encrypted = std::fs::read(store_path(&alice)).unwrap();
    let plain = dir.join("plain.db");
    drop(SqliteStore::open(&plain, &Default::default()).unwrap());
    std::fs::copy(&plain, store_path(&alice)).unwrap();
    let out = hush(&alice.home, &["fingerprint"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not encrypted although"),
        "{}",
        stderr(&out)
    );
    std::fs::write(store_path(&alice), encrypted).unwrap();
    ok(hush(&alice.home, &["fingerprint"]));
    let _ = std::fs::remove_dir_all(&dir);
}
