//! The home directory of one account.
//!
//! ```text
//! DIR/              mode 0700
//!   config.json     0600  {"store": "encrypted"} or {"store": "unencrypted"}: nothing secret
//!   store.db        0600  keys, sessions, history, and the account settings: JID, server,
//!                         XMPP password (SQLCipher-encrypted unless opted out at init)
//!   store.db-wal    0600  its write-ahead log (encrypted with it)
//!   sessions.lock   0600  empty; held while a command advances ratchet sessions
//!   generation      0600  a number: the store's generation, kept outside it too (see below)
//! ```
//!
//! Every command that opens the store raises its generation (a setting in the store) and
//! writes the new value to `generation`, store first. The file is therefore never ahead of
//! the store — unless `store.db` alone was put back from an older copy (a backup tool, a sync
//! tool, a hand copy): then every session is marked rewound, as after a restore, and the
//! command warns once. A whole home put back (file and store together) looks consistent and
//! is not seen here; the account checks what the server shows when it connects.
//!
//! Homes made by older versions keep their settings and the XMPP password in config.json and
//! an unencrypted store; they keep working, with a warning, until `hush store encrypt` moves
//! the settings into the store and encrypts it.

use std::cell::{Cell, OnceCell};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use hush_store::{OpenOptions, SqliteStore, StoreError};
use serde_json::{json, Value};
use thiserror::Error;
use zeroize::Zeroizing;

/// What can go wrong with a home directory, each saying what to do.
#[derive(Debug, Error)]
pub(crate) enum HomeError {
    /// Neither `--home`, `XDG_DATA_HOME` nor `HOME` is set.
    #[error("cannot find a home directory: use --home DIR")]
    NoDirectory,
    /// The directory does not exist.
    #[error("{0} does not exist: run `hush init` first")]
    Missing(PathBuf),
    /// The directory holds no account.
    #[error("no account in {0}: run `hush init` first")]
    NoAccount(PathBuf),
    /// The home is a file (or something else that is not a directory).
    #[error(
        "{0} is not a directory: --home (or HUSH_HOME) names the directory that holds an account"
    )]
    NotADirectory(PathBuf),
    /// A settings file does not parse.
    #[error("{path} is damaged: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A setting is missing.
    #[error("{path} lacks {what}")]
    Incomplete {
        /// The file (or the store) it should be in.
        path: PathBuf,
        /// The setting.
        what: &'static str,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file readable by others could not be tightened.
    #[error("{path}: cannot tighten its permissions: {source}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Reading the passphrase failed.
    #[error("reading the passphrase: {0}")]
    ReadPassphrase(std::io::Error),
    /// The environment variable named for the passphrase is not set.
    #[error("environment variable {0} is not set")]
    UnsetVariable(String),
    /// An empty passphrase.
    #[error("the store passphrase is empty; an empty passphrase protects nothing")]
    EmptyPassphrase,
    /// A passphrase is needed and there is no way to ask for it.
    #[error("the store in {} {}: set {PASSPHRASE_VAR}, or use --passphrase-env NAME or --passphrase-stdin, or run on a terminal to be asked", dir.display(), if *new { "is to be encrypted and needs a passphrase" } else { "is encrypted and needs its passphrase" })]
    NoPassphrase {
        /// The home.
        dir: PathBuf,
        /// For a new store.
        new: bool,
    },
    /// The two passphrases typed differ.
    #[error("the two passphrases differ; nothing was changed")]
    PassphrasesDiffer,
    /// Another `hush` holds the session lock.
    #[error("another hush is using the account in {0} (a `hush agent`, or a `hush recv` without one?); two at once could reuse message keys, so this one stops. Commands that the agent serves (send, recv) use it when it runs; for the others, stop it and try again")]
    Busy(PathBuf),
    /// config.json names a store kind this version does not know.
    #[error("{path} names an unknown store kind `{kind}` (from a newer hush?)")]
    UnknownStoreKind {
        /// config.json.
        path: PathBuf,
        /// What it says.
        kind: String,
    },
    /// The store file is gone while config.json is there.
    #[error("{} is missing or empty although {} exists; restore it from a backup, or move the directory aside and run `hush init` again", store.display(), config.display())]
    StoreMissing {
        /// store.db.
        store: PathBuf,
        /// config.json.
        config: PathBuf,
    },
    /// An unencrypted store where an encrypted one was made.
    #[error("{0} is not encrypted although this home was made with an encrypted store; refusing to use a file that may have been replaced")]
    UnexpectedlyPlain(PathBuf),
    /// The passphrase does not open the store.
    #[error("wrong passphrase for the store in {0} (nothing was changed)")]
    WrongPassphrase(PathBuf),
    /// `hush store encrypt` on an encrypted store.
    #[error("the store in {0} is already encrypted")]
    AlreadyEncrypted(PathBuf),
    /// The encrypted copy made by `hush store encrypt` does not read back.
    #[error("the encrypted copy of {0} did not read back; nothing was changed")]
    CopyUnreadable(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of this module.
type Result<T> = core::result::Result<T, HomeError>;

/// An I/O error about `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The account's connection settings.
pub(crate) struct Config {
    pub jid: String,
    pub server: Option<String>,
    pub insecure_loopback: bool,
    pub password: Zeroizing<String>,
    /// When the account was set up here (unix seconds): a new device's archive catch-up
    /// starts there.
    pub created_at: u64,
    /// The global off switch: every conversation in clear unless it says otherwise.
    pub encryption_off: bool,
}

impl Config {
    /// Everything but the password, as stored in the `config` setting (and, in homes of
    /// older versions, in config.json together with the password).
    fn to_json(&self) -> Value {
        json!({"jid": self.jid, "server": self.server, "insecure_loopback": self.insecure_loopback,
               "created_at": self.created_at, "encryption_off": self.encryption_off})
    }

    fn from_json(v: &Value, password: Zeroizing<String>, what: &Path) -> Result<Self> {
        Ok(Config {
            jid: v["jid"]
                .as_str()
                .ok_or_else(|| HomeError::Incomplete {
                    path: what.to_owned(),
                    what: "the JID",
                })?
                .to_owned(),
            server: v["server"].as_str().map(str::to_owned),
            insecure_loopback: v["insecure_loopback"].as_bool().unwrap_or(false),
            password,
            created_at: v["created_at"].as_u64().unwrap_or(0),
            encryption_off: v["encryption_off"].as_bool().unwrap_or(false),
        })
    }
}

/// Where the store passphrase comes from.
#[derive(Clone, Debug)]
pub(crate) enum PassphraseSource {
    /// `--passphrase-stdin`.
    Stdin,
    /// `--passphrase-env NAME`.
    Env(String),
    /// `HUSH_PASSPHRASE` if set, else a prompt on the terminal.
    Default,
}

/// The environment variable read when no other passphrase source is named.
pub(crate) const PASSPHRASE_VAR: &str = "HUSH_PASSPHRASE";

/// How the store of a home is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// SQLCipher, with the passphrase.
    Encrypted,
    /// Plain SQLite, chosen with `hush init --unencrypted-store`.
    Unencrypted,
    /// Plain SQLite and the password in config.json: a home made by an older version.
    Legacy,
}

/// The first bytes of every unencrypted SQLite file; an SQLCipher file starts with its salt.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

pub(crate) struct Home {
    dir: PathBuf,
    source: PassphraseSource,
    passphrase: OnceCell<Zeroizing<String>>,
    warned: Cell<bool>,
    checked: Cell<bool>,
}

impl Home {
    /// `--home`, else `$XDG_DATA_HOME/hush`, else `~/.local/share/hush`.
    pub(crate) fn locate(explicit: Option<PathBuf>, source: PassphraseSource) -> Result<Self> {
        let dir = explicit
            // An empty variable counts as unset (XDG Base Directory spec), not as `./`.
            .or_else(|| set_var("XDG_DATA_HOME").map(|d| d.join("hush")))
            .or_else(|| set_var("HOME").map(|h| h.join(".local/share/hush")))
            .ok_or(HomeError::NoDirectory)?;
        Ok(Self {
            dir,
            source,
            passphrase: OnceCell::new(),
            warned: Cell::new(false),
            checked: Cell::new(false),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join("store.db")
    }

    /// True if a passphrase source was named on the command line.
    pub(crate) fn passphrase_named(&self) -> bool {
        !matches!(self.source, PassphraseSource::Default)
    }

    /// True if the passphrase is to be read from standard input.
    pub(crate) fn passphrase_from_stdin(&self) -> bool {
        matches!(self.source, PassphraseSource::Stdin)
    }

    /// The store passphrase, from the source given on the command line, `HUSH_PASSPHRASE` or
    /// the terminal; asked for once per run. `new` asks twice on a terminal (a new store).
    fn passphrase(&self, new: bool) -> Result<&Zeroizing<String>> {
        if let Some(p) = self.passphrase.get() {
            return Ok(p);
        }
        let p = self.read_passphrase(new)?;
        if p.is_empty() {
            return Err(HomeError::EmptyPassphrase);
        }
        Ok(self.passphrase.get_or_init(|| p))
    }

    fn read_passphrase(&self, new: bool) -> Result<Zeroizing<String>> {
        match &self.source {
            PassphraseSource::Stdin => {
                let mut s = Zeroizing::new(String::new());
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(HomeError::ReadPassphrase)?;
                Ok(Zeroizing::new(s.trim_end_matches(['\r', '\n']).to_owned()))
            }
            PassphraseSource::Env(var) => std::env::var(var)
                .map(Zeroizing::new)
                .map_err(|_| HomeError::UnsetVariable(var.clone())),
            PassphraseSource::Default => {
                if let Ok(p) = std::env::var(PASSPHRASE_VAR) {
                    return Ok(Zeroizing::new(p));
                }
                if !std::io::stdin().is_terminal() {
                    return Err(HomeError::NoPassphrase {
                        dir: self.dir.clone(),
                        new,
                    });
                }
                let prompt = if new {
                    format!("new passphrase for the store in {}: ", self.dir.display())
                } else {
                    format!("passphrase for the store in {}: ", self.dir.display())
                };
                let p = Zeroizing::new(
                    rpassword::prompt_password(prompt).map_err(HomeError::ReadPassphrase)?,
                );
                if new {
                    let again = Zeroizing::new(
                        rpassword::prompt_password("the same passphrase again: ")
                            .map_err(HomeError::ReadPassphrase)?,
                    );
                    if again != p {
                        return Err(HomeError::PassphrasesDiffer);
                    }
                }
                Ok(p)
            }
        }
    }

    /// The store passphrase, read from its source now (for `hush agent unlock`, which hands it
    /// to the agent instead of opening the store).
    pub(crate) fn read_store_passphrase(&self) -> Result<Zeroizing<String>> {
        let p = self.read_passphrase(false)?;
        if p.is_empty() {
            return Err(HomeError::EmptyPassphrase);
        }
        Ok(p)
    }

    /// Forgets the passphrase this run read (it is zeroed): the next store opening needs it
    /// again (`hush agent lock`).
    pub(crate) fn forget_passphrase(&mut self) {
        drop(self.passphrase.take());
    }

    /// Uses `passphrase` for the store from now on (`hush agent unlock`), instead of reading it.
    pub(crate) fn use_passphrase(&mut self, passphrase: Zeroizing<String>) {
        self.forget_passphrase();
        let _ = self.passphrase.set(passphrase);
    }

    /// Asks for the passphrase of a new store now (before anything is created).
    pub(crate) fn new_passphrase(&self) -> Result<()> {
        self.passphrase(true).map(|_| ())
    }

    /// Prints `message` as a warning, at most one such warning per run.
    fn warn_once(&self, message: &str) {
        if !self.warned.replace(true) {
            crate::output::note(&format!("warning: {message}"));
        }
    }

    /// Tightens the permissions of the home and its files: nobody but the owner may read
    /// them. A looser mode is fixed, with a warning naming what was readable.
    fn secure(&self) -> Result<()> {
        if self.checked.replace(true) {
            return Ok(());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mut paths = vec![(self.dir.clone(), 0o700)];
            for f in HOME_FILES {
                paths.push((self.dir.join(f), 0o600));
            }
            for (path, wanted) in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))
                        .map_err(|source| HomeError::Permissions {
                            path: path.clone(),
                            source,
                        })?;
                    crate::output::note(&format!(
                        "warning: {} was readable by others (mode {mode:03o}); changed to {wanted:03o}",
                        path.display()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Takes this account's session lock for the rest of the process. Two processes that
    /// both advance the same ratchet sessions (a `hush recv` left running and a `hush send`)
    /// would each save their own copy of a session, and the later save would roll back the
    /// other's sending chain: the next message would reuse a message key. So only one `hush`
    /// at a time does; a second one stops with this error instead.
    pub(crate) fn lock_sessions(&self) -> Result<()> {
        static HELD: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
        if HELD.get().is_some() {
            return Ok(());
        }
        let path = self.dir.join("sessions.lock");
        let mut o = std::fs::OpenOptions::new();
        o.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o.open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = HELD.set(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(HomeError::Busy(self.dir.clone())),
            Err(std::fs::TryLockError::Error(e)) => Err(io(&path)(e)),
        }
    }

    /// True if the directory already holds a home (made by `hush init`, maybe half-made).
    pub(crate) fn exists(&self) -> bool {
        self.config_path().exists() || self.store_path().exists()
    }

    /// Creates the directory (mode 0700) for a new home.
    pub(crate) fn create(&self) -> Result<()> {
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(HomeError::NotADirectory(self.dir.clone()));
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&self.dir))?;
        }
        Ok(())
    }

    /// Creates the store of a new home, encrypted with the passphrase (asked for by
    /// [`Home::new_passphrase`]) unless `encrypted` is false, and records which in
    /// config.json.
    pub(crate) fn create_store(&self, encrypted: bool) -> Result<SqliteStore> {
        let passphrase = if encrypted {
            Some(self.passphrase(true)?.clone())
        } else {
            None
        };
        let store = SqliteStore::open(
            self.store_path(),
            &OpenOptions {
                passphrase,
                ..Default::default()
            },
        )?;
        self.write_marker(if encrypted {
            StoreKind::Encrypted
        } else {
            StoreKind::Unencrypted
        })?;
        let mut store = store;
        self.check_generation(&mut store)?;
        Ok(store)
    }

    /// An error unless the directory holds a home made by `hush init`.
    pub(crate) fn require(&self) -> Result<()> {
        if !self.dir.exists() {
            return Err(HomeError::Missing(self.dir.clone()));
        }
        if !self.dir.is_dir() {
            return Err(HomeError::NotADirectory(self.dir.clone()));
        }
        self.read_config_file().map(|_| ())
    }

    /// What config.json says about the store, and whether the store file is encrypted.
    fn kind(&self) -> Result<StoreKind> {
        self.require()?;
        let config = self.read_config_file()?;
        let recorded = match config.get("store").and_then(Value::as_str) {
            Some("encrypted") => StoreKind::Encrypted,
            Some("unencrypted") => StoreKind::Unencrypted,
            Some(other) => {
                return Err(HomeError::UnknownStoreKind {
                    path: self.config_path(),
                    kind: other.to_owned(),
                })
            }
            None => StoreKind::Legacy,
        };
        let path = self.store_path();
        let mut header = [0u8; 16];
        let len = match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut n = 0;
                while n < header.len() {
                    match f.read(&mut header[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) => return Err(io(&path)(e)),
                    }
                }
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&path)(e)),
        };
        if len == 0 {
            return Err(HomeError::StoreMissing {
                store: path,
                config: self.config_path(),
            });
        }
        let plain = len == header.len() && &header == SQLITE_HEADER;
        match (recorded, plain) {
            (StoreKind::Encrypted, true) => Err(HomeError::UnexpectedlyPlain(path)),
            (_, true) => Ok(recorded),
            // An encrypted file under another record: `hush store encrypt` was interrupted
            // after the encrypted store took the old one's place. The store is what counts.
            (_, false) => Ok(StoreKind::Encrypted),
        }
    }

    fn read_config_file(&self) -> Result<Value> {
        let path = self.config_path();
        let text =
            std::fs::read_to_string(&path).map_err(|_| HomeError::NoAccount(self.dir.clone()))?;
        serde_json::from_str(&text).map_err(|source| HomeError::Damaged { path, source })
    }

    /// Opens the store: checks and tightens permissions, asks for the passphrase if it is
    /// encrypted, and warns (once per run) if it is not.
    pub(crate) fn open_store(&self) -> Result<SqliteStore> {
        self.secure()?;
        let options = self.store_options()?;
        let encrypted = options.passphrase.is_some();
        let store = SqliteStore::open(self.store_path(), &options)
            .map_err(|e| self.store_error(e, encrypted))?;
        if encrypted
            && self
                .read_config_file()?
                .get("store")
                .and_then(Value::as_str)
                != Some("encrypted")
        {
            // Finish an interrupted `hush store encrypt`: the settings are in the store now.
            if store.setting("config")?.is_some() {
                self.write_marker(StoreKind::Encrypted)?;
            }
        }
        let mut store = store;
        self.check_generation(&mut store)?;
        Ok(store)
    }

    /// Opens the store to read it: as [`Self::open_store`] where the home can be written;
    /// where it cannot (read-only media, a mounted snapshot), read-only: nothing is written,
    /// and the rollback check only compares.
    pub(crate) fn open_store_to_read(&self) -> Result<SqliteStore> {
        if !self.is_read_only() {
            return self.open_store();
        }
        let options = self.store_options()?;
        let encrypted = options.passphrase.is_some();
        let store = SqliteStore::open_read_only(self.store_path(), &options)
            .map_err(|e| self.store_error(e, encrypted))?;
        let outside: Option<u64> = std::fs::read_to_string(self.dir.join(GENERATION))
            .ok()
            .and_then(|text| text.trim().parse().ok());
        if outside.is_some_and(|o| o > store.generation().unwrap_or(0)) {
            self.warn_once(&format!(
                "the store in {} is older than its home says (put back from an older copy?); \
                 it is read-only here, so it is shown as it is and not repaired",
                self.dir.display()
            ));
        }
        Ok(store)
    }

    /// Whether the home directory cannot be written (a read-only file system, or no write
    /// permission).
    fn is_read_only(&self) -> bool {
        #[cfg(unix)]
        {
            use rustix::io::Errno;
            matches!(
                rustix::fs::access(&self.dir, rustix::fs::Access::WRITE_OK),
                Err(Errno::ROFS | Errno::ACCESS | Errno::PERM)
            )
        }
        #[cfg(not(unix))]
        {
            false
        }
    }

    /// How to open the store: its passphrase if it is encrypted (asked for if need be), with a
    /// warning (once per run) if it is not.
    fn store_options(&self) -> Result<OpenOptions> {
        let passphrase = match self.kind()? {
            StoreKind::Encrypted => Some(self.passphrase(false)?.clone()),
            StoreKind::Unencrypted => {
                self.warn_once(&format!(
                    "the store in {} is not encrypted (chosen with --unencrypted-store): \
                     anyone who can read it can read your keys, messages and XMPP password; \
                     `hush store encrypt` encrypts it",
                    self.dir.display()
                ));
                None
            }
            StoreKind::Legacy => {
                self.warn_once(&format!(
                    "{} was made by an older hush: its store is not encrypted and config.json \
                     holds your XMPP password in clear; run `hush store encrypt` to encrypt both",
                    self.dir.display()
                ));
                None
            }
        };
        Ok(OpenOptions {
            passphrase,
            ..Default::default()
        })
    }

    /// A store that cannot be opened, as the home words it: an unreadable encrypted store is
    /// a wrong passphrase.
    fn store_error(&self, e: StoreError, encrypted: bool) -> HomeError {
        match e {
            StoreError::Unreadable { .. } if encrypted => {
                HomeError::WrongPassphrase(self.dir.clone())
            }
            e => HomeError::Store(e),
        }
    }

    /// Compares the store's generation with the copy in the `generation` file, then raises
    /// both (see the module docs). A store behind the file was put back from an older copy:
    /// every session is marked rewound — the repair a restore makes — and the user is warned.
    /// A missing or unreadable file proves nothing (a home of an older version, or the file
    /// deleted) and is written anew.
    fn check_generation(&self, store: &mut SqliteStore) -> Result<()> {
        let path = self.dir.join(GENERATION);
        let outside: Option<u64> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse().ok());
        let inside = store.generation()?;
        if outside.is_some_and(|o| o > inside) {
            let repair = hush_store::Transaction {
                rewind_sessions: true,
                ..Default::default()
            };
            hush_store::Store::commit(store, repair)?;
            crate::output::note(&format!(
                "!! WARNING: {} is older than the last one hush used here (generation {inside}, \
                 expected {}): it was replaced by an older copy. {}",
                self.store_path().display(),
                outside.unwrap_or_default(),
                hush_xmpp::ROLLBACK_WARNING
            ));
        }
        // The store first: a crash before the file is written leaves the file behind the
        // store, which is no sign of anything.
        let next = inside.max(outside.unwrap_or(0)) + 1;
        let stored = store.raise_generation(next)?;
        self.write_private(&path, stored.to_string().as_bytes())
    }

    /// The account's settings: from the store, or from config.json in homes of older
    /// versions.
    pub(crate) fn config(&self, store: &SqliteStore) -> Result<Config> {
        match store.setting("config")? {
            Some(text) => {
                let v: Value =
                    serde_json::from_str(&text).map_err(|source| HomeError::Damaged {
                        path: self.store_path(),
                        source,
                    })?;
                let password =
                    store
                        .setting("xmpp_password")?
                        .ok_or_else(|| HomeError::Incomplete {
                            path: self.store_path(),
                            what: "the XMPP password",
                        })?;
                Config::from_json(&v, password, &self.store_path())
            }
            None => {
                let v = self.read_config_file()?;
                let password = v["password"].as_str().map(str::to_owned).ok_or_else(|| {
                    HomeError::Incomplete {
                        path: self.config_path(),
                        what: "the password",
                    }
                })?;
                Config::from_json(&v, Zeroizing::new(password), &self.config_path())
            }
        }
    }

    /// Saves the account's settings where [`Home::config`] reads them.
    pub(crate) fn write_config(&self, store: &mut SqliteStore, c: &Config) -> Result<()> {
        if self.kind()? == StoreKind::Legacy && store.setting("config")?.is_none() {
            let mut v = c.to_json();
            v["password"] = json!(c.password.as_str());
            return self.write_private(
                &self.config_path(),
                Zeroizing::new(v.to_string()).as_bytes(),
            );
        }
        let text = c.to_json().to_string();
        Ok(store.set_settings(&[("config", &text), ("xmpp_password", &c.password)])?)
    }

    /// Writes config.json as a record of the store kind only (nothing secret).
    fn write_marker(&self, kind: StoreKind) -> Result<()> {
        let name = match kind {
            StoreKind::Encrypted => "encrypted",
            _ => "unencrypted",
        };
        self.write_private(
            &self.config_path(),
            json!({"store": name}).to_string().as_bytes(),
        )
    }

    /// Replaces `path` with `bytes` (mode 0600), through a new file renamed into place, so a
    /// crash leaves either the old or the new content.
    fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = path.with_extension("json.new");
        let _ = std::fs::remove_file(&tmp);
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io(path))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(io(path))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// `hush store encrypt`: moves the settings of an older home into its store, encrypts
    /// the store under a new passphrase (through an encrypted copy that then takes the old
    /// file's place) and leaves config.json with nothing secret in it.
    pub(crate) fn encrypt_store(&self) -> Result<()> {
        let kind = self.kind()?;
        if kind == StoreKind::Encrypted {
            return Err(HomeError::AlreadyEncrypted(self.dir.clone()));
        }
        self.lock_sessions()?;
        // No "not encrypted" warning while encrypting it.
        self.warned.set(true);
        let passphrase = self.passphrase(true)?.clone();
        let mut store = self.open_store()?;
        if kind == StoreKind::Legacy && store.setting("config")?.is_none() {
            let config = self.config(&store)?;
            let text = config.to_json().to_string();
            store.set_settings(&[("config", &text), ("xmpp_password", &config.password)])?;
        }
        let tmp = self.dir.join("store.db.encrypting");
        let _ = std::fs::remove_file(&tmp);
        store.export_backup(&tmp, &passphrase)?;
        let check = SqliteStore::open(
            &tmp,
            &OpenOptions {
                passphrase: Some(passphrase),
                ..Default::default()
            },
        )
        .and_then(|s| s.setting("config"));
        if !matches!(check, Ok(Some(_))) {
            let _ = std::fs::remove_file(&tmp);
            return Err(HomeError::CopyUnreadable(self.store_path()));
        }
        // Closing the last connection folds the write-ahead log into the old file and
        // removes it, so no log of the unencrypted store is left beside the new one.
        drop(store);
        for side in ["store.db-wal", "store.db-shm"] {
            let _ = std::fs::remove_file(self.dir.join(side));
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, self.store_path()).map_err(io(&self.store_path()))?;
        sync_dir(&self.dir);
        self.write_marker(StoreKind::Encrypted)
    }

    /// Undoes a failed `init`.
    pub(crate) fn remove_created(&self) {
        for f in HOME_FILES {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
}

/// The file beside the store holding a copy of its generation.
const GENERATION: &str = "generation";

/// The files a home holds: their permissions are checked on open, and a failed `init` removes
/// them.
const HOME_FILES: [&str; 5] = [
    "config.json",
    "store.db",
    "store.db-wal",
    "store.db-shm",
    GENERATION,
];

/// The directory an environment variable names, if it is set and not empty.
fn set_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Makes renames in `dir` durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
