//! # hush-files: encrypted file sharing, without I/O
//!
//! What every OMEMO client does to share a file: encrypt it with a fresh AES-256-GCM key,
//! upload the ciphertext (tag appended) with HTTP File Upload (XEP-0363), and send the
//! `aesgcm://` link (XEP-0454) — and, for clients that read it, the Stateless File Sharing
//! element (XEP-0447/0448) — inside an encrypted message. This crate holds the parts that
//! need no network or disk, so that they can be tested and fuzzed alone:
//!
//! * [`Sealer`] / [`Opener`] — AES-256-GCM over a stream, for files of any size in flat
//!   memory, at the speed of aws-lc's AES (see [`gcm`] for how).
//! * [`FileKey`] and [`Link`] — a file's secret and the `aesgcm://` link carrying it.
//! * [`SharedFile`] — the `<file-sharing/>` element with name, type, size and hash.
//! * [`Sha256`] — the file's hash as it streams.
//! * [`safe_file_name`] — a sender's file name made safe to save under.
//!
//! The caller hands in randomness; secrets are wiped on drop and never shown by `Debug`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod digest;
mod error;
pub mod gcm;
mod key;
mod name;
mod share;

pub use digest::Sha256;
pub use error::{FileError, LinkFault};
pub use gcm::{Opener, Sealer, MAX_PLAINTEXT, TAG_LEN};
pub use key::{FileKey, Iv, Link};
pub use name::safe_file_name;
pub use share::{SharedFile, CIPHER_AES_256_GCM, NS_ESFS, NS_SFS};
