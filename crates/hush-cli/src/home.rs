//! The home directory of one account: `config` (JID, server, password; mode 0600) and
//! `store.db`.

use std::path::{Path, PathBuf};

use hush_store::{SqliteStore, Store};
use serde_json::{json, Value};

/// The account's connection settings.
pub struct Config {
    pub jid: String,
    pub server: Option<String>,
    pub insecure_loopback: bool,
    pub password: String,
    /// When the account was set up here (unix seconds): a new device's archive catch-up
    /// starts there.
    pub created_at: u64,
    /// The global off switch: every conversation in clear unless it says otherwise.
    pub encryption_off: bool,
}

pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// `--home`, else `$XDG_DATA_HOME/hush`, else `~/.local/share/hush`.
    pub fn locate(explicit: Option<PathBuf>) -> Result<Self, String> {
        let dir = explicit
            .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("hush")))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/hush"))
            })
            .ok_or("cannot find a home directory: use --home DIR")?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    fn store_path(&self) -> PathBuf {
        self.dir.join("store.db")
    }

    /// Takes this account's session lock for the rest of the process. Two processes that
    /// both advance the same ratchet sessions (a `hush recv` left running and a `hush send`)
    /// would each save their own copy of a session, and the later save would roll back the
    /// other's sending chain: the next message would reuse a message key. So only one `hush`
    /// at a time does; a second one stops with this error instead.
    pub fn lock_sessions(&self) -> Result<(), String> {
        static HELD: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
        if HELD.get().is_some() {
            return Ok(());
        }
        let path = self.dir.join("sessions.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = HELD.set(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another hush is using the account in {} (a running `hush recv`?); two at once \
                 could reuse message keys, so this one stops. Let it finish, or stop it, and \
                 try again",
                self.dir.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn create(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(())
    }

    pub fn has_account(&self) -> Result<bool, String> {
        if !self.store_path().exists() {
            return Ok(false);
        }
        Ok(self
            .open_store()?
            .account()
            .map_err(|e| e.to_string())?
            .is_some())
    }

    pub fn open_store(&self) -> Result<SqliteStore, String> {
        if !self.dir.exists() {
            return Err(format!(
                "{} does not exist: run `hush init` first",
                self.dir.display()
            ));
        }
        SqliteStore::open(self.store_path(), &Default::default()).map_err(|e| e.to_string())
    }

    pub fn write_config(&self, c: &Config) -> Result<(), String> {
        let v = json!({"jid": c.jid, "server": c.server, "insecure_loopback": c.insecure_loopback, "password": c.password, "created_at": c.created_at, "encryption_off": c.encryption_off});
        let path = self.config_path();
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        use std::io::Write;
        o.open(&path)
            .and_then(|mut f| f.write_all(v.to_string().as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn config(&self) -> Result<Config, String> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).map_err(|_| {
            format!(
                "no account in {}: run `hush init` first",
                self.dir.display()
            )
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        Ok(Config {
            jid: s("jid").ok_or_else(|| format!("{} lacks the JID", path.display()))?,
            server: s("server"),
            insecure_loopback: v["insecure_loopback"].as_bool().unwrap_or(false),
            password: s("password")
                .ok_or_else(|| format!("{} lacks the password", path.display()))?,
            created_at: v["created_at"].as_u64().unwrap_or(0),
            encryption_off: v["encryption_off"].as_bool().unwrap_or(false),
        })
    }

    /// Undoes a failed `init`.
    pub fn remove_created(&self) {
        for f in ["config.json", "store.db", "store.db-wal", "store.db-shm"] {
            let _ = std::fs::remove_file(self.dir.join(f));
        }
    }
}
