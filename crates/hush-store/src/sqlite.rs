//! The SQLite implementation of [`Store`], optionally encrypted at rest with SQLCipher.
//!
//! ## Durability
//! WAL journal, `synchronous=NORMAL` by default: every commit survives the process being
//! killed at any instant (what the kill test checks); after a power loss the last commits may
//! be lost, never half-applied. `OpenOptions::synchronous_full` makes every commit durable on
//! power loss too, at a cost per commit.
//!
//! ## Encryption at rest (threat model)
//! With a passphrase the whole file — keys, sessions, history, JIDs, timestamps — and its WAL
//! are encrypted by SQLCipher 4 (AES-256, per-page HMAC-SHA512, PBKDF2-HMAC-SHA512 with 256,000
//! iterations). This protects a store that is copied, stolen or left in a backup against anyone
//! without the passphrase, and detects tampering with the file. It does not protect against
//! malware running as the user while Hush runs (keys are in memory then), nor does it hide the
//! file's size and modification times. Without a passphrase the file is plain SQLite and relies
//! on file permissions (the store is created with mode 0600 on Unix).
//!
//! ## Never overwrite
//! Opening checks, before writing anything, that an existing file is readable, is a Hush store
//! (`application_id`), is not from a newer Hush (`user_version`) and passes
//! `PRAGMA quick_check`. Anything else is a clear error naming the file, which is left as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hush_proto::policy::{Authentication, Conversation, TrustModel};
use hush_proto::{IdentityKey, LocalDevice, Session, Suite};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};
use zeroize::Zeroizing;

use crate::dedup::{Known, Verdict};
use crate::error::{Result, StoreError};
use crate::types::{
    Commit, ConversationRecord, DeviceRecord, Direction, MessageIds, Outcome, Outgoing, Pending,
    Received, SessionKey, StoredMessage, Trust,
};
use crate::{
    Account, Affiliation, Failure, HeldTrust, Member, QueuedTrustMessage, Room, RoomConfig, Store,
    TrustSource,
};

/// `PRAGMA application_id` of Hush stores: "HUSH".
pub(crate) const APPLICATION_ID: i64 = 0x4855_5348;
/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 12;

/// The setting holding the account's trust model ([`Store::default_trust_model`]).
const TRUST_MODEL: &str = "trust_model";

/// The setting holding when this device began to read its archive ([`Store::archive_start`]).
const ARCHIVE_START: &str = "archive_start";

/// The setting holding the store's generation (see [`SqliteStore::generation`]).
const GENERATION: &str = "generation";

/// The migrations, in order; entry `i` brings a store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    jid TEXT NOT NULL,
    device BLOB NOT NULL
);
CREATE TABLE used_prekeys (prekey_id INTEGER PRIMARY KEY);
CREATE TABLE sessions (
    suite TEXT NOT NULL,
    jid TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    state BLOB NOT NULL,
    needs_reset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (suite, jid, device_id)
);
CREATE TABLE devices (
    suite TEXT NOT NULL,
    jid TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    listed INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (suite, jid, device_id)
);
CREATE TABLE trust (
    jid TEXT NOT NULL,
    identity BLOB NOT NULL,
    trust TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    PRIMARY KEY (jid, identity)
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL,
    peer TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_device INTEGER NOT NULL,
    suite TEXT NOT NULL,
    body BLOB,
    error TEXT,
    at INTEGER NOT NULL,
    archive TEXT,
    stanza_id TEXT,
    origin_id TEXT
);
CREATE INDEX messages_peer ON messages (peer, id);
CREATE UNIQUE INDEX messages_stanza ON messages (ifnull(archive, ''), stanza_id) WHERE stanza_id IS NOT NULL;
CREATE UNIQUE INDEX messages_origin ON messages (sender, origin_id) WHERE origin_id IS NOT NULL;
CREATE TABLE outbox (id INTEGER PRIMARY KEY REFERENCES messages (id), stanza BLOB NOT NULL);
"#,
    r#"
ALTER TABLE messages ADD COLUMN encrypted INTEGER NOT NULL DEFAULT 1;
CREATE TABLE conversations (
    jid TEXT PRIMARY KEY,
    off INTEGER NOT NULL,
    encrypted INTEGER NOT NULL,
    min_auth TEXT NOT NULL,
    blocked INTEGER NOT NULL,
    contact INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE archive_resume (archive TEXT PRIMARY KEY, stanza_id TEXT NOT NULL);
"#,
    r#"
ALTER TABLE messages ADD COLUMN digest BLOB;
CREATE INDEX messages_digest ON messages (sender, digest) WHERE digest IS NOT NULL;
"#,
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    r#"
CREATE TABLE strangers (jid TEXT PRIMARY KEY, window INTEGER NOT NULL, spent INTEGER NOT NULL, notified INTEGER NOT NULL);
"#,
    // Schema 7: `messages.error` holds typed failures (`Failure::encode`); the rows of before
    // read back as `Failure::Recorded`. The shape is unchanged: the new version is there so
    // that an older Hush refuses this store instead of showing the encoding as text.
    r#"
UPDATE messages SET error = error WHERE 0;
"#,
    // Schema 8: the identity keys read from contacts' published bundles to verify or trust a
    // device before any session with it (its Ed25519 form).
    r#"
CREATE TABLE published_keys (jid TEXT NOT NULL, device_id INTEGER NOT NULL, identity BLOB NOT NULL, read_at INTEGER NOT NULL, PRIMARY KEY (jid, device_id));
"#,
    // Schema 9: the rooms joined (XEP-0045), with their privacy and member lists.
    r#"
CREATE TABLE rooms (jid TEXT PRIMARY KEY, nick TEXT NOT NULL, members_only INTEGER NOT NULL, non_anonymous INTEGER NOT NULL, members_known INTEGER NOT NULL, joined_at INTEGER NOT NULL);
CREATE TABLE room_members (room TEXT NOT NULL, jid TEXT NOT NULL, affiliation TEXT NOT NULL, PRIMARY KEY (room, jid));
"#,
    // Schema 10: per room, the members as the last message sent there named them (`told`:
    // whether any was), so the next send reports who joined and left since.
    r#"
ALTER TABLE rooms ADD COLUMN told INTEGER NOT NULL DEFAULT 0;
CREATE TABLE room_told (room TEXT NOT NULL, jid TEXT NOT NULL, PRIMARY KEY (room, jid));
"#,
    // Schema 11: a contact's own trust model (NULL: the account's, a setting).
    r#"
ALTER TABLE conversations ADD COLUMN trust_model TEXT;
"#,
    // Schema 12: Automatic Trust Management (XEP-0450). A trust row keeps the key's Ed25519
    // form (what trust messages name) and who decided; statements from devices not yet
    // authenticated are held; trust messages wait in a queue until sent.
    r#"
ALTER TABLE trust ADD COLUMN ed25519 BLOB;
ALTER TABLE trust ADD COLUMN source TEXT;
CREATE TABLE held_trust (sender TEXT NOT NULL, sender_key BLOB NOT NULL, owner TEXT NOT NULL, key BLOB NOT NULL, trust TEXT NOT NULL, at INTEGER NOT NULL, sender_ed25519 BLOB NOT NULL, PRIMARY KEY (sender, sender_key, owner, key));
CREATE TABLE trust_outbox (id INTEGER PRIMARY KEY, to_jid TEXT NOT NULL, element TEXT NOT NULL);
"#,
];

/// How to open a store.
#[derive(Clone, Default)]
pub struct OpenOptions {
    /// Encrypts the store at rest with this passphrase (SQLCipher).
    pub passphrase: Option<Zeroizing<String>>,
    /// `synchronous=FULL`: every commit survives power loss too (slower).
    pub synchronous_full: bool,
}

impl core::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenOptions")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("synchronous_full", &self.synchronous_full)
            .finish()
    }
}

/// What a restore found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Sessions that are now rewound. Messages their peers sent since the backup was made
    /// cannot be read with the old state, and each is replaced by a new key exchange before
    /// anything is sent on it; a front end tells the user so, and may offer to reset them.
    pub sessions_to_reset: Vec<SessionKey>,
}

/// A store in an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::Unreadable {
            path: path.to_owned(),
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

fn suite_of(name: String) -> rusqlite::Result<Suite> {
    Suite::from_name(&name).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Gives a new connection the passphrase and reads the store's application id and schema
/// version: the first read, which tells a wrong passphrase or a non-database apart before
/// anything is written.
fn read_header(conn: &Connection, path: &Path, options: &OpenOptions) -> Result<(i64, i64)> {
    // SQLCipher logs decryption failures to stderr; we report them as typed errors instead.
    let _ = conn.pragma_update(None, "cipher_log_level", "NONE");
    if let Some(p) = &options.passphrase {
        conn.pragma_update(None, "key", p.as_str())
            .map_err(|e| classify(path, e))?;
    }
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| classify(path, e))?;
    Ok((app, version))
}

/// `path` for an SQLite URI: every byte outside the unreserved set and `/` percent-encoded
/// (a `?` or `#` in a directory name would otherwise end the path).
fn uri_path(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    let mut out = String::new();
    for &b in &bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Finishes SQLCipher's process-wide set-up before any store connection opens.
///
/// SQLite marks itself initialised before SQLCipher has registered `sqlcipher_export`
/// (which backups use) for new connections, so a store a second thread opened in that window
/// could not export. The first connection opened here runs the whole set-up while every
/// other caller waits.
fn sqlcipher_initialised() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        // An in-memory connection cannot fail for lack of a file; if it fails for lack of
        // memory, the store's own open reports that.
        let _ = Connection::open_in_memory();
    });
}

fn session_of(blob: &[u8]) -> Result<Session> {
    Session::from_bytes(blob).map_err(|source| StoreError::CorruptRecord {
        what: "session",
        source,
    })
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let existed = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        if !existed {
            create_private_file(&path)?;
        }
        sqlcipher_initialised();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&path, e))?;
        Self::init(conn, path, options, existed)
    }

    /// Opens the store at `path` only to read it: nothing is written — no journal mode, no
    /// migration — so it works where the file cannot be written (read-only media, a mounted
    /// snapshot). Where SQLite cannot even keep its shared-memory index next to the file, the
    /// file is read as it is (`immutable`): nothing else can be writing it there either. A
    /// store of an older schema must be opened writable once first
    /// ([`StoreError::OlderSchemaReadOnly`]). Writing through it fails.
    pub fn open_read_only(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        sqlcipher_initialised();
        let open = |immutable: bool| -> Result<Self> {
            let uri = format!(
                "file:{}?mode=ro{}",
                uri_path(&path),
                if immutable { "&immutable=1" } else { "" }
            );
            let conn = Connection::open_with_flags(
                &uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| classify(&path, e))?;
            let (app, version) = read_header(&conn, &path, options)?;
            if app != APPLICATION_ID {
                return Err(StoreError::Foreign {
                    path: path.clone(),
                    application_id: app,
                });
            }
            if version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.clone(),
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            if version < SCHEMA_VERSION {
                return Err(StoreError::OlderSchemaReadOnly {
                    path: path.clone(),
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(Self {
                conn,
                path: path.clone(),
            })
        };
        match open(false) {
            // A wrong passphrase, another program's file: said as they are.
            Err(
                e @ (StoreError::Unreadable { .. }
                | StoreError::Foreign { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::OlderSchemaReadOnly { .. }),
            ) => Err(e),
            Err(_) => open(true),
            ok => ok,
        }
    }

    /// A store in memory (for benches and tests of the SQL code itself).
    pub fn open_in_memory() -> Result<Self> {
        sqlcipher_initialised();
        let conn = Connection::open_in_memory()?;
        Self::init(
            conn,
            PathBuf::from(":memory:"),
            &OpenOptions::default(),
            false,
        )
    }

    fn init(conn: Connection, path: PathBuf, options: &OpenOptions, existed: bool) -> Result<Self> {
        let (app, version) = read_header(&conn, &path, options)?;
        if existed {
            if app == 0 {
                let tables: i64 = conn
                    .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                    .map_err(|e| classify(&path, e))?;
                if tables > 0 {
                    return Err(StoreError::Foreign {
                        path,
                        application_id: 0,
                    });
                }
            } else if app != APPLICATION_ID {
                return Err(StoreError::Foreign {
                    path,
                    application_id: app,
                });
            }
            if version > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path,
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            let check: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(|e| classify(&path, e))?;
            if check != "ok" {
                return Err(StoreError::Corrupt {
                    path,
                    detail: check,
                });
            }
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| classify(&path, e))?;
        conn.pragma_update(
            None,
            "synchronous",
            if options.synchronous_full {
                "FULL"
            } else {
                "NORMAL"
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Self { conn, path };
        store.migrate(version)?;
        Ok(store)
    }

    fn migrate(&mut self, from: i64) -> Result<()> {
        if from >= SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        for sql in &MIGRATIONS[from as usize..] {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes an encrypted copy of the whole store (account, sessions, trust, history) to
    /// `dest`, which must not exist. Restore it with [`SqliteStore::restore_backup`].
    pub fn export_backup(&self, dest: impl AsRef<Path>, passphrase: &str) -> Result<()> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(StoreError::Exists(dest.to_owned()));
        }
        create_private_file(dest)?;
        copy_database(&self.conn, dest, passphrase).inspect_err(|_| {
            let _ = std::fs::remove_file(dest);
        })
    }

    /// Restores a backup into a new store at `dest` (which must not exist). Every session is
    /// marked as rewound; the report lists them (see [`BackupReport`]).
    pub fn restore_backup(
        backup: impl AsRef<Path>,
        backup_passphrase: &str,
        dest: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> Result<(Self, BackupReport)> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(StoreError::Exists(dest.to_owned()));
        }
        let source = Self::open(
            backup,
            &OpenOptions {
                passphrase: Some(Zeroizing::new(backup_passphrase.to_owned())),
                synchronous_full: false,
            },
        )?;
        create_private_file(dest)?;
        let key = options
            .passphrase
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or("");
        if let Err(e) = copy_database(&source.conn, dest, key) {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        drop(source);
        let store = Self::open(dest, options)?;
        rewind_sessions(&store.conn)?;
        let sessions_to_reset = store.sessions_needing_reset()?;
        Ok((store, BackupReport { sessions_to_reset }))
    }

    /// A setting of the application using the store (the client's connection settings,
    /// the XMPP password): kept in the store so that an encrypted store encrypts them too.
    pub fn setting(&self, key: &str) -> Result<Option<Zeroizing<String>>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .map(Zeroizing::new))
    }

    /// Sets several settings (see [`SqliteStore::setting`]) in one transaction.
    pub fn set_settings(&mut self, settings: &[(&str, &str)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (key, value) in settings {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The store's generation: a number the client raises each time it opens the store and
    /// also keeps outside it (`hush` in a file beside it), so that a store file put back from
    /// an older copy shows a lower number than the one outside. 0 for a store that never had
    /// one.
    pub fn generation(&self) -> Result<u64> {
        Ok(self
            .setting(GENERATION)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Raises the generation (see [`SqliteStore::generation`]) to `to`, never lowering it, and
    /// returns the value stored. A single statement, so two processes raising it at once
    /// leave the larger value: a copy kept outside the store is then never ahead of it, unless
    /// the store itself went back.
    pub fn raise_generation(&mut self, to: u64) -> Result<u64> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
            params![GENERATION, to.to_string()],
        )?;
        let stored: String = tx.query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [GENERATION],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(stored.parse().unwrap_or(0))
    }

    /// The stored messages from `sender` that share an id or the digest with `ids`.
    fn known_in(tx: &Connection, sender: &str, ids: &MessageIds) -> Result<Known> {
        let mut known = Known::default();
        let mut note = |row: Option<(i64, bool)>| match row {
            Some((_, true)) => known.authenticated = true,
            Some((id, false)) => known.unauthenticated.push(id),
            None => {}
        };
        // Each query selects the row id and whether it is authenticated: sent by us, or
        // decrypted (no error, not in clear). (Whole literals: no formatting per message.)
        macro_rules! row {
            ($condition:literal) => {
                concat!(
                    "SELECT id, direction = 'out' OR (error IS NULL AND encrypted = 1) FROM messages WHERE ",
                    $condition
                )
            };
        }
        if let Some(sid) = &ids.stanza_id {
            note(
                tx.prepare_cached(row!(
                    "ifnull(archive, '') = ifnull(?1, '') AND stanza_id = ?2"
                ))?
                .query_row(params![ids.archive, sid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
            );
        }
        if let Some(oid) = &ids.origin_id {
            note(
                tx.prepare_cached(row!("sender = ?1 AND origin_id = ?2"))?
                    .query_row(params![sender, oid], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            );
        }
        if let Some(digest) = &ids.digest {
            let mut stmt = tx.prepare_cached(row!("sender = ?1 AND digest = ?2"))?;
            for row in stmt.query_map(params![sender, digest.as_slice()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })? {
                note(Some(row?));
            }
        }
        Ok(known)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_message(
        tx: &Transaction<'_>,
        direction: Direction,
        peer: &str,
        sender: &str,
        sender_device: u32,
        suite: Suite,
        body: Option<&[u8]>,
        error: Option<&str>,
        encrypted: bool,
        at: u64,
        ids: &MessageIds,
    ) -> Result<i64> {
        tx.prepare_cached(
            "INSERT INTO messages (direction, peer, sender, sender_device, suite, body, error, at, archive, stanza_id, origin_id, encrypted, digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            if direction == Direction::In { "in" } else { "out" },
            peer,
            sender,
            sender_device,
            suite.name(),
            body,
            error,
            at as i64,
            ids.archive,
            ids.stanza_id,
            ids.origin_id,
            encrypted,
            ids.digest.as_ref().map(|d| d.as_slice())
        ])?;
        Ok(tx.last_insert_rowid())
    }

    /// The received-messages part of a transaction (see [`Store::commit_received`]).
    /// `first_known`: what the store holds of the first message, when the caller looked it up
    /// already in this transaction (nothing was written since).
    fn received_in(
        tx: &Transaction<'_>,
        batch: Vec<Received>,
        mut first_known: Option<Known>,
    ) -> Result<Vec<Commit>> {
        let mut results = Vec::with_capacity(batch.len());
        // Several messages of one batch often come from the same session: write it once, last
        // state wins, inside the same transaction.
        let mut sessions: BTreeMap<SessionKey, Session> = BTreeMap::new();
        for r in batch {
            let known = match first_known.take() {
                Some(known) => known,
                None => Self::known_in(tx, &r.sender, &r.ids)?,
            };
            match known.verdict(&r.outcome) {
                Verdict::Duplicate => {
                    results.push(Commit::Duplicate);
                    continue;
                }
                Verdict::Supersede => {
                    // The real message after a forgery (or failure) with its ids: the earlier
                    // entry stays in history, without the ids, which now name this one.
                    for id in &known.unauthenticated {
                        tx.prepare_cached(
                            "UPDATE messages SET archive = NULL, stanza_id = NULL, origin_id = NULL, digest = NULL WHERE id = ?1",
                        )?
                        .execute([id])?;
                    }
                }
                Verdict::New => {}
            }
            // Decrypted messages advance their session and may retire a prekey; all kinds
            // land in history, except empty messages, which carry no text.
            let mut plain = false;
            let (body, error) = match r.outcome {
                Outcome::Decrypted {
                    session,
                    body,
                    consumed_prekey,
                } => {
                    sessions.insert(
                        SessionKey::new(r.suite, &r.sender, r.sender_device),
                        *session,
                    );
                    // Only a device some list named has a row (see `Store::commit_received`).
                    tx.prepare_cached(
                        "UPDATE devices SET last_seen = MAX(last_seen, ?4)
                         WHERE suite = ?1 AND jid = ?2 AND device_id = ?3",
                    )?
                    .execute(params![
                        r.suite.name(),
                        r.sender,
                        r.sender_device,
                        r.at as i64
                    ])?;
                    if let Some(pk) = consumed_prekey {
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO used_prekeys (prekey_id) VALUES (?1)",
                        )?
                        .execute([pk])?;
                    }
                    match body {
                        Some(b) => (Some(b), None),
                        None => {
                            results.push(Commit::Stored(0));
                            continue;
                        }
                    }
                }
                Outcome::Failed { failure } => (None, Some(failure.encode())),
                Outcome::Plaintext { body } => {
                    plain = true;
                    (Some(body), None)
                }
                Outcome::LostSent => {
                    let id = Self::insert_message(
                        tx,
                        Direction::Out,
                        &r.peer,
                        &r.sender,
                        r.sender_device,
                        r.suite,
                        None,
                        Some(&Failure::LostSent { to: r.peer.clone() }.encode()),
                        true,
                        r.at,
                        &r.ids,
                    )?;
                    results.push(Commit::Stored(id));
                    continue;
                }
            };
            let id = Self::insert_message(
                tx,
                Direction::In,
                &r.peer,
                &r.sender,
                r.sender_device,
                r.suite,
                body.as_deref(),
                error.as_deref(),
                !plain,
                r.at,
                &r.ids,
            )?;
            results.push(Commit::Stored(id));
        }
        for (key, session) in &sessions {
            Self::put_received_session(tx, key, session)?;
        }
        Ok(results)
    }

    /// The outgoing part of a transaction (see [`Store::commit_outgoing`]).
    fn outgoing_in(
        tx: &Transaction<'_>,
        sessions: &[(SessionKey, Session)],
        m: &Outgoing,
    ) -> Result<i64> {
        for (key, session) in sessions {
            Self::put_session(tx, key, session)?;
        }
        let id = Self::insert_message(
            tx,
            Direction::Out,
            &m.peer,
            &m.sender,
            m.sender_device,
            m.suite,
            Some(&m.body),
            None,
            m.encrypted,
            m.at,
            &m.ids,
        )?;
        tx.execute(
            "INSERT INTO outbox (id, stanza) VALUES (?1, ?2)",
            params![id, m.stanza],
        )?;
        Ok(id)
    }

    /// The conversation record of `jid` as `c` sees it.
    fn conversation_in(c: &Connection, jid: &str) -> Result<ConversationRecord> {
        type Row = (bool, bool, String, bool, bool, Option<String>);
        let row: Option<Row> = c
            .query_row(
                "SELECT off, encrypted, min_auth, blocked, contact, trust_model FROM conversations WHERE jid = ?1",
                [jid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((off, encrypted, min_auth, blocked, contact, trust_model)) = row else {
            return Ok(ConversationRecord::default());
        };
        let min_auth = Authentication::from_name(&min_auth).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(2, "min_auth".into(), rusqlite::types::Type::Text)
        })?;
        Ok(ConversationRecord {
            policy: Conversation {
                off,
                encrypted,
                min_auth,
            },
            blocked,
            contact,
            // A name this version does not know (a newer Hush's) falls back to the account's.
            trust_model: trust_model.and_then(|m| TrustModel::from_name(&m)),
        })
    }

    /// Records one trust decision through `c` (replacing the stored one).
    fn trust_in(c: &Connection, change: &crate::TrustChange) -> Result<()> {
        c.prepare_cached(
            "INSERT INTO trust (jid, identity, trust, decided_at, ed25519, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (jid, identity) DO UPDATE SET trust = excluded.trust, decided_at = excluded.decided_at,
             ed25519 = excluded.ed25519, source = excluded.source",
        )?
        .execute(params![
            change.jid,
            change.identity.curve25519().as_slice(),
            change.trust.as_str(),
            change.at as i64,
            change.identity.ed25519().as_slice(),
            change.source.encode()
        ])?;
        Ok(())
    }

    /// Writes the conversation record of `jid` through `c`.
    fn set_conversation_in(c: &Connection, jid: &str, record: &ConversationRecord) -> Result<()> {
        let p = &record.policy;
        c.execute(
            "INSERT INTO conversations (jid, off, encrypted, min_auth, blocked, contact, trust_model) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (jid) DO UPDATE SET off = excluded.off, encrypted = excluded.encrypted,
             min_auth = excluded.min_auth, blocked = excluded.blocked, contact = excluded.contact,
             trust_model = excluded.trust_model",
            params![jid, p.off, p.encrypted, p.min_auth.name(), record.blocked, record.contact,
                    record.trust_model.map(|m| m.name())],
        )?;
        Ok(())
    }

    /// Replaces the listed devices of `jid` in `suite` (see [`Store::set_device_list`]).
    fn device_list_in(
        c: &Connection,
        suite: Suite,
        jid: &str,
        devices: &[u32],
        now: u64,
    ) -> Result<()> {
        c.prepare_cached("UPDATE devices SET listed = 0 WHERE suite = ?1 AND jid = ?2")?
            .execute(params![suite.name(), jid])?;
        let mut insert = c.prepare_cached(
            "INSERT INTO devices (suite, jid, device_id, listed, last_seen) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (suite, jid, device_id) DO UPDATE SET listed = 1",
        )?;
        for id in devices {
            insert.execute(params![suite.name(), jid, id, now as i64])?;
        }
        // A device no longer listed is remembered only if we hold a session with it: nothing
        // else was learnt about it, and a server pushing lists of new ids must not grow the
        // store without end.
        c.prepare_cached(
            "DELETE FROM devices WHERE suite = ?1 AND jid = ?2 AND listed = 0 AND NOT EXISTS
             (SELECT 1 FROM sessions s WHERE s.suite = devices.suite AND s.jid = devices.jid
              AND s.device_id = devices.device_id)",
        )?
        .execute(params![suite.name(), jid])?;
        Ok(())
    }

    /// Saves a session a received message advanced. A rewound session (after a restore)
    /// stays marked: reading on it does not move its sending chain past the keys it used before
    /// the backup, so only a replacement (or a send that built a new one) clears the mark.
    fn put_received_session(
        tx: &Transaction<'_>,
        key: &SessionKey,
        session: &Session,
    ) -> Result<()> {
        tx.prepare_cached(
            "INSERT INTO sessions (suite, jid, device_id, state, needs_reset) VALUES (?1, ?2, ?3, ?4, 0)
             ON CONFLICT (suite, jid, device_id) DO UPDATE SET state = excluded.state",
        )?
        .execute(params![key.suite.name(), key.jid, key.device_id, session.to_bytes().as_slice()])?;
        Ok(())
    }

    fn put_session(tx: &Transaction<'_>, key: &SessionKey, session: &Session) -> Result<()> {
        tx.prepare_cached(
            "INSERT INTO sessions (suite, jid, device_id, state, needs_reset) VALUES (?1, ?2, ?3, ?4, 0)
             ON CONFLICT (suite, jid, device_id) DO UPDATE SET state = excluded.state, needs_reset = 0",
        )?
        .execute(params![key.suite.name(), key.jid, key.device_id, session.to_bytes().as_slice()])?;
        Ok(())
    }
}

/// Marks every stored session as rewound: what a restore does, and what a transaction asks
/// for when the store was found rolled back (see [`crate::Transaction::rewind_sessions`]).
fn rewind_sessions(c: &Connection) -> Result<()> {
    c.prepare_cached("UPDATE sessions SET needs_reset = 1")?
        .execute([])?;
    Ok(())
}

/// Copies the open database into the (empty, existing) file `dest` encrypted with `key`
/// (`""` = unencrypted), keeping the Hush markers.
fn copy_database(conn: &Connection, dest: &Path, key: &str) -> Result<()> {
    let dest_str = dest.to_str().ok_or_else(|| StoreError::Io {
        path: dest.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
    })?;
    conn.execute(
        "ATTACH DATABASE ?1 AS hush_copy KEY ?2",
        params![dest_str, key],
    )?;
    let result = (|| -> Result<()> {
        conn.query_row("SELECT sqlcipher_export('hush_copy')", [], |_| Ok(()))?;
        conn.pragma_update(Some("hush_copy"), "application_id", APPLICATION_ID)?;
        conn.pragma_update(Some("hush_copy"), "user_version", SCHEMA_VERSION)?;
        Ok(())
    })();
    conn.execute("DETACH DATABASE hush_copy", [])?;
    result
}

fn create_private_file(path: &Path) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    match o.open(path) {
        Ok(_) => Ok(()),
        // An empty file is a store that was never initialised: fine to use.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        direction: if r.get::<_, String>(1)? == "in" {
            Direction::In
        } else {
            Direction::Out
        },
        peer: r.get(2)?,
        sender: r.get(3)?,
        sender_device: r.get(4)?,
        suite: suite_of(r.get(5)?)?,
        body: r.get(6)?,
        failure: r.get::<_, Option<String>>(7)?.map(|s| Failure::decode(&s)),
        encrypted: r.get(12)?,
        at: r.get::<_, i64>(8)? as u64,
        ids: MessageIds {
            archive: r.get(9)?,
            stanza_id: r.get(10)?,
            origin_id: r.get(11)?,
            digest: r
                .get::<_, Option<Vec<u8>>>(13)?
                .and_then(|d| d.try_into().ok()),
        },
    })
}

impl Store for SqliteStore {
    fn account(&self) -> Result<Option<Account>> {
        let row: Option<(String, Vec<u8>)> = self
            .conn
            .query_row("SELECT jid, device FROM account WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(jid, blob)| {
            let blob = Zeroizing::new(blob);
            let device =
                LocalDevice::from_bytes(&blob).map_err(|source| StoreError::CorruptRecord {
                    what: "device keys",
                    source,
                })?;
            Ok(Account { jid, device })
        })
        .transpose()
    }

    fn create_account(&mut self, jid: &str, device: &LocalDevice) -> Result<()> {
        let tx = self.conn.transaction()?;
        let existing: Option<String> = tx
            .query_row("SELECT jid FROM account WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        if let Some(j) = existing {
            return Err(StoreError::AccountExists(j));
        }
        tx.execute(
            "INSERT INTO account (id, jid, device) VALUES (1, ?1, ?2)",
            params![jid, device.to_bytes().as_slice()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn save_device(&mut self, device: &LocalDevice) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE account SET device = ?1 WHERE id = 1",
            params![device.to_bytes().as_slice()],
        )?;
        if n == 0 {
            return Err(StoreError::NoAccount);
        }
        Ok(())
    }

    fn session(&self, key: &SessionKey) -> Result<Option<Session>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT state FROM sessions WHERE suite = ?1 AND jid = ?2 AND device_id = ?3",
            )?
            .query_row(params![key.suite.name(), key.jid, key.device_id], |r| {
                r.get(0)
            })
            .optional()?;
        blob.map(|b| session_of(&Zeroizing::new(b))).transpose()
    }

    fn sessions_of(&self, suite: Suite, jid: &str) -> Result<Vec<(u32, Session)>> {
        let mut stmt = self.conn.prepare_cached("SELECT device_id, state FROM sessions WHERE suite = ?1 AND jid = ?2 ORDER BY device_id")?;
        let rows = stmt.query_map(params![suite.name(), jid], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, blob) = row?;
            out.push((id, session_of(&Zeroizing::new(blob))?));
        }
        Ok(out)
    }

    fn save_sessions(&mut self, sessions: &[(SessionKey, Session)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (key, session) in sessions {
            Self::put_session(&tx, key, session)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_session(&mut self, key: &SessionKey) -> Result<()> {
        self.conn.execute(
            "DELETE FROM sessions WHERE suite = ?1 AND jid = ?2 AND device_id = ?3",
            params![key.suite.name(), key.jid, key.device_id],
        )?;
        Ok(())
    }

    fn sessions_needing_reset(&self) -> Result<Vec<SessionKey>> {
        let mut stmt = self.conn.prepare("SELECT suite, jid, device_id FROM sessions WHERE needs_reset = 1 ORDER BY jid, device_id")?;
        let rows = stmt.query_map([], |r| {
            Ok(SessionKey {
                suite: suite_of(r.get(0)?)?,
                jid: r.get(1)?,
                device_id: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn last_archive_id(&self, archive: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT stanza_id FROM messages WHERE archive = ?1 AND stanza_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                [archive],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn archive_resume(&self, archive: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT stanza_id FROM archive_resume WHERE archive = ?1",
                [archive],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_archive_resume(&mut self, archive: &str, stanza_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO archive_resume (archive, stanza_id) VALUES (?1, ?2)
             ON CONFLICT (archive) DO UPDATE SET stanza_id = excluded.stanza_id",
            [archive, stanza_id],
        )?;
        Ok(())
    }

    fn archive_start(&self) -> Result<Option<u64>> {
        // Written only by `set_archive_start`; anything else reads as never recorded.
        Ok(self.setting(ARCHIVE_START)?.and_then(|v| v.parse().ok()))
    }

    fn set_archive_start(&mut self, at: u64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            rusqlite::params![ARCHIVE_START, at.to_string()],
        )?;
        Ok(())
    }

    fn is_known(&self, sender: &str, ids: &MessageIds) -> Result<bool> {
        Ok(Self::known_in(&self.conn, sender, ids)?.authenticated)
    }

    fn holds(&self, sender: &str, ids: &MessageIds) -> Result<bool> {
        let known = Self::known_in(&self.conn, sender, ids)?;
        Ok(known.authenticated || !known.unauthenticated.is_empty())
    }

    fn commit_received(&mut self, batch: Vec<Received>) -> Result<Vec<Commit>> {
        let tx = self.conn.transaction()?;
        let results = Self::received_in(&tx, batch, None)?;
        tx.commit()?;
        Ok(results)
    }

    fn stranger_usage(&self, jid: &str, window: u64) -> Result<crate::StrangerUsage> {
        let w = window as i64;
        let mine: Option<(u32, bool)> = self
            .conn
            .prepare_cached("SELECT spent, notified FROM strangers WHERE jid = ?1 AND window = ?2")?
            .query_row(params![jid, w], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (total, tracked): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT ifnull(SUM(spent), 0), COUNT(*) FROM strangers WHERE window = ?1",
            )?
            .query_row([w], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let (spent, notified) = mine.unwrap_or_default();
        Ok(crate::StrangerUsage {
            spent,
            notified,
            total: u32::try_from(total).unwrap_or(u32::MAX),
            tracked: usize::try_from(tracked).unwrap_or(usize::MAX),
        })
    }

    fn commit(&mut self, t: crate::Transaction) -> Result<crate::Committed> {
        let tx = self.conn.transaction()?;
        // A step whose messages are all copies of stored ones writes nothing (see
        // `Transaction::received`).
        // The lookup of the first message is kept for writing it: a receive step is one
        // message, so it is looked up once.
        let mut first_known = None;
        if t.is_receive_step() {
            let mut copies = true;
            for (i, r) in t.received.iter().enumerate() {
                let known = Self::known_in(&tx, &r.sender, &r.ids)?;
                let copy = known.verdict(&r.outcome) == Verdict::Duplicate;
                if i == 0 {
                    first_known = Some(known);
                }
                if !copy {
                    copies = false;
                    break;
                }
            }
            if copies {
                return Ok(crate::Committed {
                    received: vec![Commit::Duplicate; t.received.len()],
                    outgoing: None,
                });
            }
        }
        if t.rewind_sessions {
            rewind_sessions(&tx)?;
        }
        for id in &t.used_prekeys {
            tx.prepare_cached("INSERT OR IGNORE INTO used_prekeys (prekey_id) VALUES (?1)")?
                .execute([id])?;
        }
        for k in &t.new_keys {
            tx.prepare_cached(
                "INSERT INTO trust (jid, identity, trust, decided_at, ed25519) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (jid, identity) DO NOTHING",
            )?
            .execute(params![
                k.jid,
                k.identity.curve25519().as_slice(),
                k.trust.as_str(),
                k.at as i64,
                k.identity.ed25519().as_slice()
            ])?;
        }
        for change in &t.trust_changes {
            Self::trust_in(&tx, change)?;
        }
        for (sender, key) in &t.released_trust {
            tx.prepare_cached("DELETE FROM held_trust WHERE sender = ?1 AND sender_key = ?2")?
                .execute(params![sender, key.curve25519().as_slice()])?;
        }
        for h in &t.held_trust {
            tx.prepare_cached(
                "INSERT INTO held_trust (sender, sender_key, owner, key, trust, at, sender_ed25519) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (sender, sender_key, owner, key) DO UPDATE SET trust = excluded.trust, at = excluded.at",
            )?
            .execute(params![
                h.sender,
                h.sender_key.curve25519().as_slice(),
                h.owner,
                h.key.ed25519().as_slice(),
                h.trust.as_str(),
                h.at as i64,
                h.sender_key.ed25519().as_slice()
            ])?;
        }
        for (to, element) in &t.trust_messages {
            tx.prepare_cached("INSERT INTO trust_outbox (to_jid, element) VALUES (?1, ?2)")?
                .execute(params![to, element])?;
        }
        for l in &t.device_lists {
            Self::device_list_in(&tx, l.suite, &l.jid, &l.devices, l.at)?;
        }
        for (jid, change) in &t.conversations {
            let record = change.apply(Self::conversation_in(&tx, jid)?);
            Self::set_conversation_in(&tx, jid, &record)?;
        }
        for (key, session) in &t.sessions {
            Self::put_session(&tx, key, session)?;
        }
        if let Some(c) = &t.stranger {
            tx.prepare_cached("DELETE FROM strangers WHERE window < ?1")?
                .execute([c.window as i64])?;
            tx.prepare_cached(
                "INSERT INTO strangers (jid, window, spent, notified) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (jid) DO UPDATE SET window = excluded.window, spent = excluded.spent, notified = excluded.notified",
            )?
            .execute(params![c.jid, c.window as i64, c.spent, c.notified])?;
        }
        let received = Self::received_in(&tx, t.received, first_known)?;
        let outgoing = match &t.outgoing {
            Some((sessions, m)) => Some(Self::outgoing_in(&tx, sessions, m)?),
            None => None,
        };
        for key in &t.rewound_sessions {
            tx.prepare_cached(
                "UPDATE sessions SET needs_reset = 1 WHERE suite = ?1 AND jid = ?2 AND device_id = ?3",
            )?
            .execute(params![key.suite.name(), key.jid, key.device_id])?;
        }
        tx.commit()?;
        Ok(crate::Committed { received, outgoing })
    }

    fn commit_outgoing(&mut self, sessions: &[(SessionKey, Session)], m: &Outgoing) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let id = Self::outgoing_in(&tx, sessions, m)?;
        tx.commit()?;
        Ok(id)
    }

    fn mark_sent(&mut self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    fn mark_undelivered(&mut self, id: i64, why: &Failure) -> Result<()> {
        self.conn.execute(
            "UPDATE messages SET error = ?2 WHERE id = ?1",
            rusqlite::params![id, why.encode()],
        )?;
        Ok(())
    }

    fn pending(&self) -> Result<Vec<Pending>> {
        let mut stmt = self.conn.prepare(
            "SELECT o.id, m.peer, m.origin_id, m.encrypted, o.stanza
                 FROM outbox o JOIN messages m ON m.id = o.id ORDER BY o.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Pending {
                id: r.get(0)?,
                peer: r.get(1)?,
                origin_id: r.get(2)?,
                encrypted: r.get(3)?,
                stanza: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn history(&self, peer: &str, limit: usize) -> Result<Vec<StoredMessage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, direction, peer, sender, sender_device, suite, body, error, at, archive, stanza_id, origin_id, encrypted, digest
             FROM (SELECT * FROM messages WHERE peer = ?1
                   AND NOT (error IS NULL AND body IS NOT NULL AND body = x'00')
                   ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![peer, limit as i64], row_message)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn used_prekeys(&self) -> Result<Vec<u32>> {
        let mut stmt = self
            .conn
            .prepare("SELECT prekey_id FROM used_prekeys ORDER BY prekey_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn retire_prekeys(&mut self, device: &LocalDevice) -> Result<()> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE account SET device = ?1 WHERE id = 1",
            params![device.to_bytes().as_slice()],
        )?;
        if n == 0 {
            return Err(StoreError::NoAccount);
        }
        tx.execute("DELETE FROM used_prekeys", [])?;
        tx.commit()?;
        Ok(())
    }

    fn set_trust(
        &mut self,
        jid: &str,
        identity: &IdentityKey,
        trust: Trust,
        now: u64,
    ) -> Result<()> {
        Self::trust_in(
            &self.conn,
            &crate::TrustChange {
                jid: jid.to_owned(),
                identity: *identity,
                trust,
                source: crate::TrustSource::User,
                at: now,
            },
        )
    }

    fn trust_source(&self, jid: &str, identity: &IdentityKey) -> Result<Option<TrustSource>> {
        let row: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT source FROM trust WHERE jid = ?1 AND identity = ?2",
                params![jid, identity.curve25519().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(row.map(|s| TrustSource::decode(s.as_deref())))
    }

    fn keys_with_trust(&self, trust: Trust) -> Result<Vec<(String, IdentityKey)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT jid, ed25519 FROM trust WHERE trust = ?1 AND ed25519 IS NOT NULL ORDER BY jid, decided_at",
        )?;
        let rows = stmt.query_map([trust.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (jid, bytes) = row?;
            if let Some(key) = ed25519_key(&bytes) {
                keys.push((jid, key));
            }
        }
        // Rows decided before schema 12 kept only the Curve25519 form: their Ed25519 form is
        // found where the key came from — an OMEMO 2 session, or a bundle read to verify it.
        let mut old = self.conn.prepare_cached(
            "SELECT jid, identity FROM trust WHERE trust = ?1 AND ed25519 IS NULL ORDER BY jid, decided_at",
        )?;
        let old: Vec<(String, Vec<u8>)> = old
            .query_map([trust.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (jid, curve) in old {
            let mut known: Vec<IdentityKey> = self
                .sessions_of(Suite::Omemo2, &jid)?
                .into_iter()
                .map(|(_, s)| *s.peer_identity())
                .collect();
            known.extend(self.published_keys(&jid)?.into_iter().map(|(_, k)| k));
            if let Some(key) = known.into_iter().find(|k| k.curve25519()[..] == curve[..]) {
                keys.push((jid, key));
            }
        }
        Ok(keys)
    }

    fn held_trust_from(&self, sender: &str, sender_key: &IdentityKey) -> Result<Vec<HeldTrust>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT owner, key, trust, at, sender_ed25519 FROM held_trust WHERE sender = ?1 AND sender_key = ?2 ORDER BY at",
        )?;
        let rows = stmt.query_map(params![sender, sender_key.curve25519().as_slice()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let mut held = Vec::new();
        for row in rows {
            let (owner, key, trust, at, sender_ed) = row?;
            // A damaged row is skipped rather than failing every receive.
            if let (Some(key), Some(trust), Some(sender_key)) = (
                ed25519_key(&key),
                Trust::parse(&trust),
                ed25519_key(&sender_ed),
            ) {
                held.push(HeldTrust {
                    sender: sender.to_owned(),
                    sender_key,
                    owner,
                    key,
                    trust,
                    at: at as u64,
                });
            }
        }
        Ok(held)
    }

    fn trust_messages_to_send(&self) -> Result<Vec<QueuedTrustMessage>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, to_jid, element FROM trust_outbox ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(QueuedTrustMessage {
                id: r.get(0)?,
                to: r.get(1)?,
                element: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn trust_message_sent(&mut self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM trust_outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    fn save_published_key(
        &mut self,
        jid: &str,
        device: u32,
        identity: &IdentityKey,
        now: u64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO published_keys (jid, device_id, identity, read_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (jid, device_id) DO UPDATE SET identity = excluded.identity, read_at = excluded.read_at",
            params![jid, device, identity.ed25519().as_slice(), now as i64],
        )?;
        Ok(())
    }

    fn published_keys(&self, jid: &str) -> Result<Vec<(u32, IdentityKey)>> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, identity FROM published_keys WHERE jid = ?1 ORDER BY device_id",
        )?;
        let rows = stmt.query_map([jid], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (device, bytes) = row?;
            // A row that is not a key (damage) is left out rather than failing the listing.
            if let Some(identity) = <[u8; 32]>::try_from(bytes.as_slice())
                .ok()
                .and_then(|b| IdentityKey::from_ed25519(b).ok())
            {
                keys.push((device, identity));
            }
        }
        Ok(keys)
    }

    fn trust(&self, jid: &str, identity: &IdentityKey) -> Result<Option<Trust>> {
        let t: Option<String> = self
            .conn
            .query_row(
                "SELECT trust FROM trust WHERE jid = ?1 AND identity = ?2",
                params![jid, identity.curve25519().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(t.and_then(|s| Trust::parse(&s)))
    }

    fn has_any_key(&self, jid: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM trust WHERE jid = ?1 LIMIT 1", [jid], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    fn default_trust_model(&self) -> Result<TrustModel> {
        let name = self.setting(TRUST_MODEL)?;
        Ok(name
            .and_then(|n| TrustModel::from_name(&n))
            .unwrap_or_default())
    }

    fn set_default_trust_model(&mut self, model: TrustModel) -> Result<()> {
        self.set_settings(&[(TRUST_MODEL, model.name())])
    }

    fn has_verified_key(&self, jid: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM trust WHERE jid = ?1 AND trust = ?2 LIMIT 1",
                params![jid, Trust::Verified.as_str()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn set_device_list(
        &mut self,
        suite: Suite,
        jid: &str,
        devices: &[u32],
        now: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        Self::device_list_in(&tx, suite, jid, devices, now)?;
        tx.commit()?;
        Ok(())
    }

    fn conversation(&self, jid: &str) -> Result<ConversationRecord> {
        Self::conversation_in(&self.conn, jid)
    }

    fn set_conversation(&mut self, jid: &str, record: &ConversationRecord) -> Result<()> {
        Self::set_conversation_in(&self.conn, jid, record)
    }

    fn rooms(&self) -> Result<Vec<Room>> {
        let jids: Vec<String> = self
            .conn
            .prepare("SELECT jid FROM rooms ORDER BY jid")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut rooms = Vec::with_capacity(jids.len());
        for jid in jids {
            if let Some(room) = self.room(&jid)? {
                rooms.push(room);
            }
        }
        Ok(rooms)
    }

    fn room(&self, jid: &str) -> Result<Option<Room>> {
        let Some(mut room) = self
            .conn
            .prepare_cached(
                "SELECT nick, members_only, non_anonymous, members_known, joined_at, told FROM rooms WHERE jid = ?1",
            )?
            .query_row([jid], |r| {
                Ok(Room {
                    jid: jid.to_owned(),
                    nick: r.get(0)?,
                    config: RoomConfig {
                        members_only: r.get::<_, i64>(1)? != 0,
                        non_anonymous: r.get::<_, i64>(2)? != 0,
                    },
                    members: Vec::new(),
                    members_known: r.get::<_, i64>(3)? != 0,
                    joined_at: r.get::<_, i64>(4)?.max(0) as u64,
                    members_told: (r.get::<_, i64>(5)? != 0).then(Vec::new),
                })
            })
            .optional()?
        else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT jid, affiliation FROM room_members WHERE room = ?1")?;
        let rows = stmt.query_map([jid], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut members = Vec::new();
        for row in rows {
            let (jid, affiliation) = row?;
            // A row that names no affiliation giving a key (damage) gives none.
            if let Some(affiliation) = Affiliation::parse(&affiliation) {
                members.push(Member { jid, affiliation });
            }
        }
        room.set_members(members);
        if let Some(told) = room.members_told.as_mut() {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT jid FROM room_told WHERE room = ?1 ORDER BY jid")?;
            for jid in stmt.query_map([jid], |r| r.get::<_, String>(0))? {
                told.push(jid?);
            }
        }
        Ok(Some(room))
    }

    fn save_room(&mut self, room: &Room) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO rooms (jid, nick, members_only, non_anonymous, members_known, joined_at, told) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (jid) DO UPDATE SET nick = excluded.nick, members_only = excluded.members_only,
             non_anonymous = excluded.non_anonymous, members_known = excluded.members_known, joined_at = excluded.joined_at,
             told = excluded.told",
            params![
                room.jid,
                room.nick,
                room.config.members_only,
                room.config.non_anonymous,
                room.members_known,
                room.joined_at as i64,
                room.members_told.is_some()
            ],
        )?;
        tx.execute("DELETE FROM room_told WHERE room = ?1", [&room.jid])?;
        for jid in room.members_told.iter().flatten() {
            tx.execute(
                "INSERT OR IGNORE INTO room_told (room, jid) VALUES (?1, ?2)",
                params![room.jid, jid],
            )?;
        }
        tx.execute("DELETE FROM room_members WHERE room = ?1", [&room.jid])?;
        for m in &room.members {
            tx.execute(
                "INSERT OR REPLACE INTO room_members (room, jid, affiliation) VALUES (?1, ?2, ?3)",
                params![room.jid, m.jid, m.affiliation.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn forget_room(&mut self, jid: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM room_members WHERE room = ?1", [jid])?;
        tx.execute("DELETE FROM room_told WHERE room = ?1", [jid])?;
        tx.execute("DELETE FROM rooms WHERE jid = ?1", [jid])?;
        tx.execute("DELETE FROM archive_resume WHERE archive = ?1", [jid])?;
        tx.commit()?;
        Ok(())
    }

    fn devices(&self, suite: Suite, jid: &str) -> Result<Vec<DeviceRecord>> {
        let mut stmt = self.conn.prepare("SELECT device_id, listed, last_seen FROM devices WHERE suite = ?1 AND jid = ?2 ORDER BY device_id")?;
        let rows = stmt.query_map(params![suite.name(), jid], |r| {
            Ok(DeviceRecord {
                device_id: r.get(0)?,
                listed: r.get::<_, i64>(1)? != 0,
                last_seen: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// An identity key from its stored Ed25519 form; `None` for a damaged value.
fn ed25519_key(bytes: &[u8]) -> Option<IdentityKey> {
    <[u8; 32]>::try_from(bytes)
        .ok()
        .and_then(|b| IdentityKey::from_ed25519(b).ok())
}
