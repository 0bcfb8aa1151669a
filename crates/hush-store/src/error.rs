//! Errors of the store. Each names the file it is about when there is one, so users know what
//! to move aside or restore; none of them carries secret material.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in `hush-store`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file is not a database we can read: not SQLite at all, or encrypted with another
    /// passphrase (SQLCipher cannot tell the two apart).
    #[error(
        "cannot read {path}: wrong passphrase, or not a Hush store (the file was left untouched)"
    )]
    Unreadable {
        /// The file.
        path: PathBuf,
    },
    /// A valid SQLite database, but not one of ours.
    #[error("{path} is an SQLite database of another application (application_id {application_id:#x}); it was left untouched")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What the file says it belongs to.
        application_id: i64,
    },
    /// The store was written by a newer Hush.
    #[error("{path} has schema version {found}, newer than the {supported} this Hush understands; upgrade Hush")]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A store of an older schema opened read-only: it must be upgraded (opened writable)
    /// before this Hush can read it.
    #[error("{path} has schema version {found}, older than the {supported} this Hush reads; open it once where it can be written (any command that connects does) to upgrade it")]
    OlderSchemaReadOnly {
        /// The file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The version this build reads.
        supported: i64,
    },
    /// SQLite's integrity check found damage.
    #[error(
        "{path} is damaged ({detail}); restore it from a backup (the file was left untouched)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the integrity check said.
        detail: String,
    },
    /// A row holds protocol state that does not decode.
    #[error("stored {what} is corrupt: {source}")]
    CorruptRecord {
        /// Which record.
        what: &'static str,
        /// Why it does not decode.
        source: hush_proto::ProtoError,
    },
    /// The store has no account yet (`hush init` creates one).
    #[error("this store has no account yet")]
    NoAccount,
    /// The store already holds an account.
    #[error("this store already holds the account {0}")]
    AccountExists(String),
    /// A backup or restore target exists already; we never overwrite.
    #[error("{0} already exists; choose a new file name (nothing was overwritten)")]
    Exists(PathBuf),
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// File-system errors around the database.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, StoreError>;
