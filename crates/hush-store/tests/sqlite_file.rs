//! What only the SQLite store does: reopening, refusing foreign or damaged files without
//! touching them, encryption at rest, and encrypted backups with restore warnings.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};

use hush_proto::{seal, LocalDevice, Recipient, Session, Suite};
use hush_store::{
    Commit, MessageIds, OpenOptions, Outcome, Received, SessionKey, SqliteStore, Store, StoreError,
    Trust,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use zeroize::Zeroizing;

const SECRET_BODY: &str = "the eagle lands at midnight";

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sqlite-file-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_pass(p: &str) -> OpenOptions {
    OpenOptions {
        passphrase: Some(Zeroizing::new(p.to_owned())),
        synchronous_full: false,
    }
}

/// A store with an account, a session with alice@example.org and one received message.
fn populate(store: &mut SqliteStore) {
    let mut rng = StdRng::seed_from_u64(5);
    let bob = LocalDevice::generate(2, 30, 0, &mut rng).unwrap();
    store.create_account("bob@example.net", &bob).unwrap();
    let alice = LocalDevice::generate(1, 1, 0, &mut rng).unwrap();
    let mut s = Session::initiate(alice.identity(), &bob.bundle(Suite::Omemo2), &mut rng).unwrap();
    let el = seal(
        Suite::Omemo2,
        1,
        Some(SECRET_BODY.as_bytes()),
        &mut [Recipient {
            jid: "bob@example.net",
            device_id: 2,
            session: &mut s,
        }],
        &mut rng,
    )
    .unwrap();
    let o = bob
        .open(&el, "bob@example.net", "alice@example.org", None, &mut rng)
        .unwrap();
    let r = Received {
        ids: MessageIds {
            stanza_id: Some("1".into()),
            ..Default::default()
        },
        peer: "alice@example.org".into(),
        sender: "alice@example.org".into(),
        sender_device: 1,
        suite: Suite::Omemo2,
        at: 1,
        outcome: Outcome::Decrypted {
            session: Box::new(o.session),
            body: o.payload.map(|p| p.to_vec()),
            consumed_prekey: o.consumed_prekey,
        },
    };
    assert!(matches!(
        store.commit_received(vec![r]).unwrap()[0],
        Commit::Stored(_)
    ));
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", path.display())) {
        all.extend(wal);
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn state_survives_reopening() {
    let dir = scratch("reopen");
    let path = dir.join("store.db");
    {
        let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
        populate(&mut store);
    }
    let store = SqliteStore::open(&path, &Default::default()).unwrap();
    assert_eq!(store.account().unwrap().unwrap().jid, "bob@example.net");
    assert!(store
        .session(&SessionKey::new(Suite::Omemo2, "alice@example.org", 1))
        .unwrap()
        .is_some());
    assert_eq!(
        store.history("alice@example.org", 10).unwrap()[0]
            .body
            .as_deref(),
        Some(SECRET_BODY.as_bytes())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[test]
fn foreign_garbage_and_newer_files_are_refused_untouched() {
    let dir = scratch("refuse");
    let garbage = dir.join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&garbage, &Default::default()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unreadable { path } if path == &garbage),
        "{err}"
    );
    assert!(err.to_string().contains("garbage.db"));
    assert_eq!(std::fs::read(&garbage).unwrap(), vec![0x5a; 8192]);

    let foreign = dir.join("foreign.db");
    {
        let c = rusqlite_like::create_foreign(&foreign);
        drop(c);
    }
    let before = std::fs::read(&foreign).unwrap();
    assert!(matches!(
        SqliteStore::open(&foreign, &Default::default()),
        Err(StoreError::Foreign { .. })
    ));
    assert_eq!(std::fs::read(&foreign).unwrap(), before);

    let newer = dir.join("newer.db");
    drop(SqliteStore::open(&newer, &Default::default()).unwrap());
    rusqlite_like::set_user_version(&newer, 99);
    let err = SqliteStore::open(&newer, &Default::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn damaged_store_is_reported_not_overwritten() {
    let dir = scratch("damaged");
    let path = dir.join("store.db");
    {
        let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
        populate(&mut store);
        // Many rows, so that the file has pages to damage.
        for i in 0..200 {
            store
                .set_device_list(Suite::Legacy, &format!("c{i}@example.org"), &[1, 2, 3], i)
                .unwrap();
        }
    }
    // Fold the WAL in, then scribble over the middle of the file.
    drop(SqliteStore::open(&path, &Default::default()).unwrap());
    rusqlite_like::checkpoint(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // Pages 2 to 4 (4 KiB pages) hold b-tree roots: garbage there breaks the structure.
    assert!(bytes.len() > 5 * 4096);
    for b in &mut bytes[4096..4 * 4096] {
        *b = 0xa5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = SqliteStore::open(&path, &Default::default()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::Unreadable { .. }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the damaged file is left as it was"
    );
}

#[test]
fn encrypted_store_hides_everything_and_needs_the_passphrase() {
    let dir = scratch("encrypted");
    let plain = dir.join("plain.db");
    let secret = dir.join("secret.db");
    populate(&mut SqliteStore::open(&plain, &Default::default()).unwrap());
    populate(&mut SqliteStore::open(&secret, &with_pass("correct horse")).unwrap());
    // The search works: the plain store shows the body and the JID.
    assert!(contains(&file_bytes(&plain), SECRET_BODY.as_bytes()));
    let bytes = file_bytes(&secret);
    assert!(!contains(&bytes, SECRET_BODY.as_bytes()));
    assert!(!contains(&bytes, b"alice@example.org"));
    assert!(!contains(&bytes, b"SQLite format 3"));
    // A wrong passphrase, or none, is refused before anything is written: the file keeps
    // every byte and no journal appears beside it.
    let before = std::fs::read(&secret).unwrap();
    assert!(matches!(
        SqliteStore::open(&secret, &with_pass("wrong")),
        Err(StoreError::Unreadable { .. })
    ));
    assert!(matches!(
        SqliteStore::open(&secret, &Default::default()),
        Err(StoreError::Unreadable { .. })
    ));
    assert_eq!(std::fs::read(&secret).unwrap(), before);
    for side in ["secret.db-wal", "secret.db-shm", "secret.db-journal"] {
        assert!(!dir.join(side).exists(), "{side} was created");
    }
    let store = SqliteStore::open(&secret, &with_pass("correct horse")).unwrap();
    assert_eq!(
        store.history("alice@example.org", 1).unwrap()[0]
            .body
            .as_deref(),
        Some(SECRET_BODY.as_bytes())
    );
}

#[test]
fn backup_and_restore_warn_about_rewound_sessions() {
    let dir = scratch("backup");
    let path = dir.join("store.db");
    let backup = dir.join("bob.hush-backup");
    let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
    populate(&mut store);
    store.export_backup(&backup, "backup pass").unwrap();
    assert!(
        !contains(&std::fs::read(&backup).unwrap(), SECRET_BODY.as_bytes()),
        "the backup is encrypted"
    );
    assert!(matches!(
        store.export_backup(&backup, "x"),
        Err(StoreError::Exists(_))
    ));

    let restored_path = dir.join("restored.db");
    assert!(matches!(
        SqliteStore::restore_backup(&backup, "wrong", &restored_path, &Default::default()),
        Err(StoreError::Unreadable { .. })
    ));
    assert!(
        !restored_path.exists(),
        "a failed restore leaves nothing behind"
    );
    let (mut restored, report) = SqliteStore::restore_backup(
        &backup,
        "backup pass",
        &restored_path,
        &with_pass("new local pass"),
    )
    .unwrap();
    assert_eq!(
        report.sessions_to_reset,
        vec![SessionKey::new(Suite::Omemo2, "alice@example.org", 1)]
    );
    assert_eq!(
        restored.sessions_needing_reset().unwrap(),
        report.sessions_to_reset
    );
    // Reading on a rewound session does not move its sending chain past the keys it used
    // before the backup: it stays marked until a send replaces it.
    let key = report.sessions_to_reset[0].clone();
    let session = restored.session(&key).unwrap().unwrap();
    restored
        .commit_received(vec![Received {
            ids: MessageIds {
                stanza_id: Some("after-restore".into()),
                ..Default::default()
            },
            peer: "alice@example.org".into(),
            sender: "alice@example.org".into(),
            sender_device: 1,
            suite: Suite::Omemo2,
            at: 2,
            outcome: Outcome::Decrypted {
                session: Box::new(session.clone()),
                body: Some(b"read on the rewound session".to_vec()),
                consumed_prekey: None,
            },
        }])
        .unwrap();
    assert_eq!(
        restored.sessions_needing_reset().unwrap(),
        vec![key.clone()]
    );
    restored.save_sessions(&[(key, session)]).unwrap();
    assert!(restored.sessions_needing_reset().unwrap().is_empty());
    assert_eq!(restored.account().unwrap().unwrap().jid, "bob@example.net");
    assert_eq!(
        restored.history("alice@example.org", 2).unwrap()[0]
            .body
            .as_deref(),
        Some(SECRET_BODY.as_bytes())
    );
    drop(restored);
    assert!(SqliteStore::open(&restored_path, &with_pass("new local pass")).is_ok());
    assert!(matches!(
        SqliteStore::restore_backup(&backup, "backup pass", &restored_path, &Default::default()),
        Err(StoreError::Exists(_))
    ));
}

/// Direct SQLite access for setting up hostile files (rusqlite is a dependency of the store).
mod rusqlite_like {
    use std::path::Path;

    pub fn create_foreign(path: &Path) -> hush_store::testing::Connection {
        let c = hush_store::testing::Connection::open(path).unwrap();
        c.execute_batch("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('la');")
            .unwrap();
        c
    }

    pub fn set_user_version(path: &Path, v: i64) {
        let c = hush_store::testing::Connection::open(path).unwrap();
        c.pragma_update(None, "user_version", v).unwrap();
    }

    pub fn checkpoint(path: &Path) {
        let c = hush_store::testing::Connection::open(path).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
            .unwrap();
    }
}

/// A store written by an older Hush (schema 1: no conversations, no `encrypted` column, no
/// archive resume points, no content digests) opens, keeps its data and gains what the newer
/// schemas add.
#[test]
fn older_schemas_are_migrated_in_place() {
    let dir = scratch("migrate");
    let path = dir.join("old.sqlite");
    {
        let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
        populate(&mut store);
    }
    {
        // Turn it back into what schema 1 looked like.
        let c = hush_store::testing::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE held_trust; DROP TABLE trust_outbox; ALTER TABLE trust DROP COLUMN ed25519; ALTER TABLE trust DROP COLUMN source; DROP TABLE room_told; DROP TABLE room_members; DROP TABLE rooms; DROP TABLE published_keys; DROP TABLE strangers; DROP TABLE settings; DROP TABLE archive_resume; DROP TABLE conversations;
             DROP INDEX messages_digest; ALTER TABLE messages DROP COLUMN digest;
             ALTER TABLE messages DROP COLUMN encrypted; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
    let history = store.history("alice@example.org", 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body.as_deref(), Some(SECRET_BODY.as_bytes()));
    assert!(history[0].encrypted, "old messages count as encrypted");
    store.set_archive_resume("bob@example.net", "x-1").unwrap();
    assert_eq!(
        store.archive_resume("bob@example.net").unwrap().as_deref(),
        Some("x-1")
    );
    let record = store.conversation("alice@example.org").unwrap();
    assert!(!record.blocked);
    store.set_settings(&[("server", "localhost:5222")]).unwrap();
    assert_eq!(
        store
            .setting("server")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("localhost:5222")
    );
    assert_eq!(history[0].ids.digest, None, "old messages have no digest");
    // Schema 8's table is there too.
    let key = *LocalDevice::generate(9, 1, 0, &mut StdRng::seed_from_u64(9))
        .unwrap()
        .identity()
        .public();
    store
        .save_published_key("carol@example.com", 9, &key, 1)
        .unwrap();
    let kept = store.published_keys("carol@example.com").unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].0, kept[0].1.fingerprint()), (9, key.fingerprint()));
    drop(store);
    let c = hush_store::testing::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hush_store::SCHEMA_VERSION);
}

/// Schema 5 adds settings (the client keeps its connection settings and the XMPP password
/// there): a schema 4 store gains the table and keeps its data; settings survive reopening,
/// are replaced in place, and are encrypted with the rest of an encrypted store.
#[test]
fn settings_are_added_to_schema_4_stores_and_encrypted_with_them() {
    let dir = scratch("settings");
    let path = dir.join("four.sqlite");
    populate(&mut SqliteStore::open(&path, &Default::default()).unwrap());
    {
        let c = hush_store::testing::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE held_trust; DROP TABLE trust_outbox; ALTER TABLE trust DROP COLUMN ed25519; ALTER TABLE trust DROP COLUMN source; ALTER TABLE conversations DROP COLUMN trust_model; DROP TABLE room_told; DROP TABLE room_members; DROP TABLE rooms; DROP TABLE published_keys; DROP TABLE strangers; DROP TABLE settings; \
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }
    {
        let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
        assert_eq!(store.history("alice@example.org", 10).unwrap().len(), 1);
        assert!(store.setting("xmpp_password").unwrap().is_none());
        store
            .set_settings(&[("xmpp_password", "first"), ("server", "example.org:5222")])
            .unwrap();
        store.set_settings(&[("xmpp_password", "second")]).unwrap();
    }
    let store = SqliteStore::open(&path, &Default::default()).unwrap();
    let get = |k: &str| store.setting(k).unwrap().map(|v| v.to_string());
    assert_eq!(get("xmpp_password").as_deref(), Some("second"));
    assert_eq!(get("server").as_deref(), Some("example.org:5222"));
    assert_eq!(get("absent"), None);
    drop(store);
    let c = hush_store::testing::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, hush_store::SCHEMA_VERSION);
    drop(c);

    let secret = dir.join("secret.db");
    {
        let mut store = SqliteStore::open(&secret, &with_pass("pass")).unwrap();
        store
            .set_settings(&[("xmpp_password", "hunter2-settings")])
            .unwrap();
    }
    assert!(!contains(&file_bytes(&secret), b"hunter2-settings"));
    let store = SqliteStore::open(&secret, &with_pass("pass")).unwrap();
    assert_eq!(
        store
            .setting("xmpp_password")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("hunter2-settings")
    );
}

/// The generation only goes up, survives reopening, and two handles on one file raising it
/// in turn leave the larger value (a copy kept outside is then never ahead of the store).
#[test]
fn the_generation_only_goes_up() {
    let dir = scratch("generation");
    let path = dir.join("store.db");
    let mut first = SqliteStore::open(&path, &Default::default()).unwrap();
    assert_eq!(first.generation().unwrap(), 0, "a new store has none");
    assert_eq!(first.raise_generation(3).unwrap(), 3);
    let mut second = SqliteStore::open(&path, &Default::default()).unwrap();
    assert_eq!(second.raise_generation(7).unwrap(), 7);
    assert_eq!(
        first.raise_generation(5).unwrap(),
        7,
        "a lower value raised later does not lower it"
    );
    drop((first, second));
    let store = SqliteStore::open(&path, &Default::default()).unwrap();
    assert_eq!(store.generation().unwrap(), 7);
}

/// A store opened read-only reads what is there, writes nothing (not even its journal mode),
/// refuses a write, and tells a wrong passphrase apart; a path with URI characters in it
/// (`?`, `#`, `%`) is opened as the file it names.
#[test]
fn a_store_opened_read_only_reads_and_refuses_writes() {
    let dir = scratch("read-only").join("odd ?#% name");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    {
        let mut store = SqliteStore::open(&path, &with_pass("pw")).unwrap();
        populate(&mut store);
    }
    let before = std::fs::read(&path).unwrap();
    let mut store = SqliteStore::open_read_only(&path, &with_pass("pw")).unwrap();
    assert_eq!(store.account().unwrap().unwrap().jid, "bob@example.net");
    let history = store.history("alice@example.org", 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body.as_deref(), Some(SECRET_BODY.as_bytes()));
    assert!(
        store.set_settings(&[("x", "y")]).is_err(),
        "a write went through"
    );
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    assert!(matches!(
        SqliteStore::open_read_only(&path, &with_pass("wrong")),
        Err(StoreError::Unreadable { .. })
    ));
}

/// Trust decided before schema 12 kept only a key's Curve25519 form: the verified keys
/// Automatic Trust Management announces still include it when its Ed25519 form is known from a
/// bundle read to verify it (or an OMEMO 2 session), and leave out one known from nowhere.
#[test]
fn keys_verified_before_schema_12_are_still_announced() {
    let dir = scratch("old-trust");
    let path = dir.join("store.sqlite");
    let mut rng = StdRng::seed_from_u64(12);
    let mut key = || {
        *LocalDevice::generate(5, 1, 0, &mut rng)
            .unwrap()
            .identity()
            .public()
    };
    let (known, unknown) = (key(), key());
    {
        let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
        for k in [known, unknown] {
            store
                .set_trust("bob@example.net", &k, Trust::Verified, 1)
                .unwrap();
        }
        store
            .save_published_key("bob@example.net", 5, &known, 1)
            .unwrap();
    }
    {
        let c = hush_store::testing::Connection::open(&path).unwrap();
        c.execute_batch("UPDATE trust SET ed25519 = NULL, source = NULL;")
            .unwrap();
    }
    let store = SqliteStore::open(&path, &Default::default()).unwrap();
    let verified = store.keys_with_trust(Trust::Verified).unwrap();
    assert_eq!(verified.len(), 1, "{verified:?}");
    assert!(verified[0].1.same_identity(&known));
    assert_eq!(verified[0].1.ed25519(), known.ed25519());
}
