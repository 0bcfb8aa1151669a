//! Moving encrypted files over HTTPS: the PUT of a XEP-0363 slot and the GET of an
//! `aesgcm://` link, both streamed through [`hush_files::Sealer`] / [`hush_files::Opener`],
//! so memory stays flat whatever the file's size.
//!
//! Only `https://` is ever spoken (the client refuses plain HTTP, also on redirects), with
//! the same trust store as the XMPP connection: the system's roots, or the file
//! `SSL_CERT_FILE` names. A download is written to a private `.part` file beside its
//! destination and renamed only once its tag — and the size and hash its sender announced —
//! check out; on any failure the partial file is removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hush_files::{FileError, FileKey, Opener, Sealer, Sha256, SharedFile, TAG_LEN};
use thiserror::Error;
use tokio::io::AsyncReadExt;

use crate::upload::Slot;

/// How much of a file is read, encrypted and sent (or received and decrypted) at once.
const PIECE: usize = 1 << 20;

/// How long a transfer may go without a piece moving before it is given up as stalled.
const IDLE: Duration = Duration::from_secs(120);

/// The slowest download kept going, in bytes per second, averaged over each [`IDLE`].
const MIN_RATE: u64 = 16 << 10;

/// Why a file could not be sent or fetched.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The server offers no HTTP File Upload service.
    #[error(
        "{domain} has no HTTP file upload service (XEP-0363), so files cannot be shared through it"
    )]
    NoService {
        /// Our server's domain.
        domain: String,
    },
    /// The conversation is set to send in clear, and a file's key would go in clear with it.
    #[error("files are only shared encrypted, and encryption is off for {to}")]
    NotEncrypted {
        /// The conversation.
        to: String,
    },
    /// The file is larger than the upload service takes.
    #[error("the file is {size} bytes encrypted; the upload service takes at most {max}")]
    TooLarge {
        /// The encrypted size.
        size: u64,
        /// The service's limit.
        max: u64,
    },
    /// A URL that is not `https://`: refused, nothing is sent or fetched over plain HTTP.
    #[error("refused to use {url}: only https:// is used for files")]
    NotHttps {
        /// The URL.
        url: String,
    },
    /// The HTTP server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The HTTP request failed (connection, TLS, timeout).
    #[error("could not transfer {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be set up (its TLS configuration).
    #[error("could not set up HTTPS: {0}")]
    Client(#[source] reqwest::Error),
    /// The download is larger than allowed (the limit given, or the announced size).
    #[error("the download is larger than the {limit} bytes expected; it was stopped and removed")]
    Oversized {
        /// The limit, in bytes of ciphertext.
        limit: u64,
    },
    /// The file did not decrypt: changed, cut or another file.
    #[error("{0}; nothing of it was kept")]
    Crypto(#[from] FileError),
    /// The decrypted file's size is not what its sender announced.
    #[error("the file is {got} bytes, but its sender announced {announced}; it was removed")]
    SizeMismatch {
        /// The announced size.
        announced: u64,
        /// What arrived.
        got: u64,
    },
    /// The decrypted file's SHA-256 is not what its sender announced.
    #[error("the file's SHA-256 differs from what its sender announced; it was removed")]
    HashMismatch,
    /// The server stopped taking or sending data, or sends too slowly to finish.
    #[error("{url} stopped moving data (nothing for {} s, or under {} KiB/s)", IDLE.as_secs(), MIN_RATE >> 10)]
    Stalled {
        /// The URL.
        url: String,
    },
    /// The upload service answered before it had taken the whole file.
    #[error("{url} answered before it had the whole file; it is not shared")]
    Incomplete {
        /// The URL.
        url: String,
    },
    /// The file being sent changed size while it was read.
    #[error("{path} changed while it was being sent")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Where a long transfer has got to, for a progress bar. Called from the transfer's task.
pub trait Progress: Send + Sync {
    /// The transfer starts; `total` bytes (of the file) are expected, when known.
    fn start(&self, total: Option<u64>);
    /// `bytes` more went through.
    fn advance(&self, bytes: u64);
    /// The transfer goes on from `bytes` in (a resumed download).
    fn at(&self, _bytes: u64) {}
}

/// No progress shown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
}

/// What an upload produced: what the message sharing the file says.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The file's size in bytes (before encryption).
    pub size: u64,
    /// The SHA-256 of the file.
    pub sha256: [u8; 32],
}

/// A file fetched, decrypted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it was saved.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
}

/// An HTTPS client for file transfers, trusting what the XMPP connection trusts.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

fn http_error(url: &str) -> impl FnOnce(reqwest::Error) -> TransferError + '_ {
    move |source| TransferError::Http {
        url: url.to_owned(),
        source,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Http {
    /// A client with the system's trust roots (or those in `SSL_CERT_FILE`), HTTPS only.
    pub fn new() -> Result<Self, TransferError> {
        Self::with_extra_roots(&[])
    }

    /// The same, trusting the CA certificates `extra` (DER) too.
    pub fn with_extra_roots(extra: &[Vec<u8>]) -> Result<Self, TransferError> {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            log::warn!("a trust root could not be loaded: {e}");
        }
        let roots: Vec<reqwest::Certificate> = loaded
            .certs
            .iter()
            .map(|der| der.as_ref().to_vec())
            .chain(extra.iter().cloned())
            .filter_map(|der| reqwest::Certificate::from_der(&der).ok())
            .collect();
        let client = reqwest::Client::builder()
            .https_only(true)
            .tls_certs_only(roots)
            .connect_timeout(Duration::from_secs(30))
            // No read timeout: while a large body goes up nothing is read, and a read timeout
            // would end the upload. A stall in either direction is caught per piece (IDLE).
            .tcp_keepalive(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent("Hush")
            .build()
            .map_err(TransferError::Client)?;
        Ok(Self { client })
    }

    /// Encrypts the file at `path` with `key` while PUTting it to `slot`; reads exactly
    /// `size` bytes (the size the slot was asked for, less the tag).
    pub async fn upload(
        &self,
        slot: &Slot,
        path: &Path,
        size: u64,
        key: &FileKey,
        progress: Arc<dyn Progress>,
    ) -> Result<Uploaded, TransferError> {
        let file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
        let sealer = Sealer::new(key)?;
        progress.start(Some(size));
        // Two pieces in flight at most: memory stays flat however large the file.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let source = Source {
            file,
            path: path.to_owned(),
            url: slot.put.clone(),
            size,
            progress,
        };
        let reader = tokio::spawn(encrypt_pieces(source, sealer, tx));
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        let mut request = self
            .client
            .put(&slot.put)
            .header(reqwest::header::CONTENT_LENGTH, size + TAG_LEN as u64)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
        for (name, value) in &slot.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let send = request.body(reqwest::Body::wrap_stream(body)).send();
        tokio::pin!(send);
        let mut reader = reader;
        let joined = |done: Result<_, tokio::task::JoinError>| {
            done.unwrap_or_else(|_| {
                Err(TransferError::Changed {
                    path: path.to_owned(),
                })
            })
        };
        // The reader ends first when all went into the body, or when it failed or the
        // server stopped taking pieces; the request ends first when the server answered or
        // hung up early.
        let (response, read) = tokio::select! {
            response = &mut send => (response, joined(reader.await)),
            done = &mut reader => match joined(done) {
                // Dropping the request here stops the upload.
                Err(e) => return Err(e),
                Ok(sha256) => match tokio::time::timeout(IDLE, &mut send).await {
                    Ok(response) => (response, Ok(sha256)),
                    Err(_) => {
                        return Err(TransferError::Stalled {
                            url: slot.put.clone(),
                        })
                    }
                },
            },
        };
        // A failure reading the file ends the body early; it is the error to report, but
        // for a server that refused the upload (its status says why).
        let (response, sha256) = match (response, read) {
            (Ok(r), Err(TransferError::Incomplete { .. })) if !r.status().is_success() => {
                return Err(TransferError::Status {
                    url: slot.put.clone(),
                    status: r.status().as_u16(),
                })
            }
            (_, Err(e)) => return Err(e),
            (Err(e), _) => return Err(http_error(&slot.put)(e)),
            (Ok(r), Ok(sha256)) => (r, sha256),
        };
        if !response.status().is_success() {
            return Err(TransferError::Status {
                url: slot.put.clone(),
                status: response.status().as_u16(),
            });
        }
        Ok(Uploaded { size, sha256 })
    }

    /// Fetches `file`, decrypting as it streams into `dir` under a name of its own (the
    /// sender's, made safe, or the URL's), and checks it: its tag, and its size and SHA-256
    /// when the sender announced them. At most `limit` bytes are accepted.
    ///
    /// A download cut by the network resumes where it stopped, with an HTTP range request
    /// where the server takes one (up to [`RESUMES`] times here); after that the part already
    /// fetched is kept, and fetching the same link again goes on from it.
    pub async fn download(
        &self,
        file: &SharedFile,
        dir: &Path,
        limit: u64,
        progress: &dyn Progress,
    ) -> Result<Downloaded, TransferError> {
        let url = file.link.url.as_str();
        if !url.starts_with("https://") {
            return Err(TransferError::NotHttps {
                url: url.to_owned(),
            });
        }
        if file.size.is_some_and(|size| size > limit) {
            return Err(TransferError::Oversized { limit });
        }
        let most = file
            .size
            .map_or(limit, |size| size.min(limit))
            .saturating_add(TAG_LEN as u64);
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let fallback = file.link.file_name().unwrap_or("file");
        let name = hush_files::safe_file_name(file.name.as_deref().unwrap_or(fallback), "file");
        let mut part = Partial::for_link(dir, file)?;
        let mut resumes = 0;
        let (size, sha256) = loop {
            match self.fetch_into(file, most, &mut part, progress).await {
                Ok(done) => break done,
                Err(Attempt::Cut(e)) if resumes < RESUMES => {
                    resumes += 1;
                    log::info!("the download of {url} was cut ({e}); resuming");
                }
                Err(Attempt::Cut(e)) => {
                    // What arrived (if anything did) stays for the next try of the same link.
                    part.resumable =
                        part.by_link && part.file.metadata().is_ok_and(|m| m.len() > 0);
                    return Err(e);
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        };
        let path = part.keep(dir, &name)?;
        Ok(Downloaded { path, size, sha256 })
    }

    /// One attempt at fetching `file` into `part`, going on from what `part` holds when the
    /// server takes a range request.
    async fn fetch_into(
        &self,
        file: &SharedFile,
        most: u64,
        part: &mut Partial,
        progress: &dyn Progress,
    ) -> Result<(u64, [u8; 32]), Attempt> {
        let url = file.link.url.as_str();
        let failed = |e: TransferError| Attempt::Failed(e);
        let mut opener = Opener::new(&file.link.key).map_err(|e| failed(e.into()))?;
        let mut hash = Sha256::new();
        // What an earlier attempt released: whole blocks of it are taken as read.
        let have = part.replay(&mut opener, &mut hash).map_err(failed)?;
        let mut request = self.client.get(url);
        if have > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut response = match tokio::time::timeout(IDLE, request.send()).await {
            Ok(sent) => sent.map_err(|e| Attempt::Cut(http_error(url)(e)))?,
            Err(_) => {
                return Err(Attempt::Cut(TransferError::Stalled {
                    url: url.to_owned(),
                }))
            }
        };
        let status = response.status();
        let start = if have > 0 && status == reqwest::StatusCode::PARTIAL_CONTENT {
            let range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !range.starts_with(&format!("bytes {have}-")) {
                return Err(failed(TransferError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                }));
            }
            have
        } else if status.is_success() && status != reqwest::StatusCode::PARTIAL_CONTENT {
            if have > 0 {
                // The server sends it all again: start over.
                part.truncate(0).map_err(failed)?;
                opener = Opener::new(&file.link.key).map_err(|e| failed(e.into()))?;
                hash = Sha256::new();
            }
            0
        } else {
            return Err(failed(TransferError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            }));
        };
        if response
            .content_length()
            .is_some_and(|len| start.saturating_add(len) > most)
        {
            return Err(failed(TransferError::Oversized { limit: most }));
        }
        progress.start(
            response
                .content_length()
                .map(|len| start + len)
                .or(file.size),
        );
        progress.at(start);
        let mut plain = Vec::with_capacity(PIECE + 64);
        let mut received = start;
        // A server that drips (a byte now and then, never idle for long) is cut too: each
        // IDLE period must bring MIN_RATE on average.
        let mut window = (tokio::time::Instant::now(), received);
        loop {
            if window.0.elapsed() >= IDLE {
                if received - window.1 < MIN_RATE * IDLE.as_secs() {
                    return Err(Attempt::Cut(TransferError::Stalled {
                        url: url.to_owned(),
                    }));
                }
                window = (tokio::time::Instant::now(), received);
            }
            let chunk = match tokio::time::timeout(IDLE, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(Attempt::Cut(http_error(url)(e))),
                Err(_) => {
                    return Err(Attempt::Cut(TransferError::Stalled {
                        url: url.to_owned(),
                    }))
                }
            };
            received += chunk.len() as u64;
            if received > most {
                return Err(failed(TransferError::Oversized { limit: most }));
            }
            plain.clear();
            opener
                .update(&chunk, &mut plain)
                .map_err(|e| failed(e.into()))?;
            hash.update(&plain);
            part.append(&plain).map_err(failed)?;
            progress.advance(chunk.len() as u64);
        }
        plain.clear();
        opener.finish(&mut plain).map_err(|e| failed(e.into()))?;
        hash.update(&plain);
        part.append(&plain).map_err(failed)?;
        part.sync().map_err(failed)?;
        let size = received.saturating_sub(TAG_LEN as u64);
        if let Some(announced) = file.size {
            if announced != size {
                return Err(failed(TransferError::SizeMismatch {
                    announced,
                    got: size,
                }));
            }
        }
        let sha256 = hash.finish();
        if let Some(announced) = file.sha256 {
            use subtle::ConstantTimeEq;
            if !bool::from(announced.ct_eq(&sha256)) {
                return Err(failed(TransferError::HashMismatch));
            }
        }
        Ok((size, sha256))
    }
}

/// How many times one download resumes after the network cut it.
pub const RESUMES: u32 = 3;

/// How an attempt at a download ended, when it did not succeed.
enum Attempt {
    /// The network cut it: what arrived is good so far, and it may go on from there.
    Cut(TransferError),
    /// It cannot succeed: the file is not what was shared, or too large, or refused.
    Failed(TransferError),
}

/// Reads exactly `size` bytes of `file`, encrypting them into `pieces` (the request body);
/// gives the file's SHA-256. On a read failure, or a file that is not `size` bytes long any
/// more, the body gets an error (so the request stops) and this says why.
async fn encrypt_pieces(
    source: Source,
    sealer: Sealer,
    pieces: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> Result<[u8; 32], TransferError> {
    let Source {
        mut file,
        path,
        url,
        size,
        progress,
    } = source;
    let stop = |why: TransferError| async {
        // Never waits: the body may not be read any more.
        let _ = pieces.try_send(Err(std::io::Error::other("the upload stopped")));
        Err(why)
    };
    let stalled = || TransferError::Stalled { url: url.clone() };
    // Taken when finished, which happens once.
    let mut sealer = Some(sealer);
    let mut hash = Sha256::new();
    let mut left = size;
    let mut plain = vec![0u8; PIECE];
    while left > 0 {
        let want = left.min(PIECE as u64) as usize;
        let mut filled = 0;
        while filled < want {
            match file.read(&mut plain[filled..want]).await {
                Ok(0) => return stop(TransferError::Changed { path }).await,
                Ok(n) => filled += n,
                Err(source) => return stop(TransferError::Io { path, source }).await,
            }
        }
        left -= want as u64;
        hash.update(&plain[..want]);
        let mut out = Vec::with_capacity(want + 2 * TAG_LEN);
        if let Some(Err(e)) = sealer.as_mut().map(|s| s.update(&plain[..want], &mut out)) {
            return stop(e.into()).await;
        }
        if left == 0 {
            // One more byte means the file grew while it was read.
            let mut probe = [0u8; 1];
            if matches!(file.read(&mut probe).await, Ok(n) if n > 0) {
                return stop(TransferError::Changed { path }).await;
            }
            if let Some(sealer) = sealer.take() {
                sealer.finish(&mut out)?;
            }
        }
        match tokio::time::timeout(IDLE, pieces.send(Ok(out))).await {
            Ok(Ok(())) => {}
            // The request ended before the whole body went: the server answered or hung up
            // early (its answer, if an error, is the one reported).
            Ok(Err(_)) => return Err(TransferError::Incomplete { url }),
            Err(_) => return stop(stalled()).await,
        }
        progress.advance(want as u64);
        if left == 0 {
            return Ok(hash.finish());
        }
    }
    // An empty file: the body is the tag alone.
    let mut out = Vec::with_capacity(TAG_LEN);
    if let Some(sealer) = sealer.take() {
        sealer.finish(&mut out)?;
    }
    if tokio::time::timeout(IDLE, pieces.send(Ok(out)))
        .await
        .is_err()
    {
        return stop(stalled()).await;
    }
    Ok(hash.finish())
}

/// The file an upload reads.
struct Source {
    file: tokio::fs::File,
    path: PathBuf,
    /// Where it goes (for errors).
    url: String,
    size: u64,
    progress: Arc<dyn Progress>,
}

/// A download in progress: a private file beside its destination (its plaintext so far),
/// locked while in use, removed unless kept or left to resume.
struct Partial {
    path: PathBuf,
    file: std::fs::File,
    kept: bool,
    /// Left in place when dropped, for a later download of the same link to go on from.
    resumable: bool,
    /// Named after the link (a later download finds it); not a one-off name.
    by_link: bool,
}

impl Partial {
    /// The part file of `shared` in `dir`: named after the link (a hash of its URL and key, so
    /// a later try of the same link finds it), or a fresh one when another download holds it.
    fn for_link(dir: &Path, shared: &SharedFile) -> Result<Self, TransferError> {
        let mut h = Sha256::new();
        h.update(shared.link.url.as_bytes());
        h.update(shared.link.key.secret_bytes());
        h.update(shared.link.key.iv().as_bytes());
        let tag: String = h.finish()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".hush-{tag}.part"));
        // Never through a symbolic link someone left under that name.
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            let file = open_private(&path, false)?;
            // Locked, and still the file the name leads to (not one another download has
            // just saved or removed): then it is ours, and what it holds may be resumed.
            if file.try_lock().is_ok() && same_file(&file, &path) {
                return Ok(Self {
                    path,
                    file,
                    kept: false,
                    resumable: false,
                    by_link: true,
                });
            }
        }
        for n in 0..1000u32 {
            let path = dir.join(format!(".hush-{tag}.{}.{n}.part", std::process::id()));
            match open_private(&path, true) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        kept: false,
                        resumable: false,
                        by_link: false,
                    })
                }
                Err(TransferError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(TransferError::Io {
            path,
            source: std::io::Error::other("too many downloads of this file at once"),
        })
    }

    /// Feeds what the part holds (rounded down to whole blocks; the rest is cut off) to
    /// `opener` and `hash`, as if it had just been read; gives its length.
    fn replay(&mut self, opener: &mut Opener, hash: &mut Sha256) -> Result<u64, TransferError> {
        use std::io::{Read, Seek, SeekFrom};
        let io = io_error(&self.path);
        let len = self.file.metadata().map_err(io)?.len();
        let whole = len / 16 * 16;
        self.truncate(whole)?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(io_error(&self.path))?;
        let mut piece = vec![0u8; PIECE];
        let mut left = whole;
        while left > 0 {
            let n = left.min(PIECE as u64) as usize;
            self.file
                .read_exact(&mut piece[..n])
                .map_err(io_error(&self.path))?;
            opener.resume(&piece[..n])?;
            hash.update(&piece[..n]);
            left -= n as u64;
        }
        zeroize::Zeroize::zeroize(&mut piece);
        Ok(whole)
    }

    /// Copies the part into a new file at `target` (which must not exist yet).
    fn copy_to(&mut self, target: &Path) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut out = match open_private(target, true) {
            Ok(out) => out,
            Err(TransferError::Io { source, .. }) => return Err(source),
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        };
        self.file.seek(SeekFrom::Start(0))?;
        let copied = std::io::copy(&mut self.file, &mut out).and_then(|_| out.sync_all());
        if copied.is_err() {
            let _ = std::fs::remove_file(target);
        }
        copied
    }

    fn truncate(&mut self, len: u64) -> Result<(), TransferError> {
        use std::io::{Seek, SeekFrom};
        self.file.set_len(len).map_err(io_error(&self.path))?;
        self.file
            .seek(SeekFrom::Start(len))
            .map(drop)
            .map_err(io_error(&self.path))
    }

    fn append(&mut self, plain: &[u8]) -> Result<(), TransferError> {
        self.file.write_all(plain).map_err(io_error(&self.path))
    }

    fn sync(&mut self) -> Result<(), TransferError> {
        self.file.flush().map_err(io_error(&self.path))?;
        self.file.sync_all().map_err(io_error(&self.path))
    }

    /// Renames it to `name` in `dir`, or `name (1)`, `name (2)`… if taken; never overwrites.
    fn keep(mut self, dir: &Path, name: &str) -> Result<PathBuf, TransferError> {
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem, Some(ext)),
            _ => (name, None),
        };
        for n in 0..10_000u32 {
            let candidate = match (n, ext) {
                (0, _) => name.to_owned(),
                (n, Some(ext)) => format!("{stem} ({n}).{ext}"),
                (n, None) => format!("{stem} ({n})"),
            };
            let target = dir.join(candidate);
            // A hard link fails if the target exists, so nothing is overwritten even when
            // two downloads finish at once.
            match std::fs::hard_link(&self.path, &target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.path);
                    self.kept = true;
                    return Ok(target);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                // A file system without hard links (FAT, some network mounts): a new file,
                // created exclusively, gets a copy.
                Err(_) => match self.copy_to(&target) {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&self.path);
                        self.kept = true;
                        return Ok(target);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(source) => {
                        return Err(TransferError::Io {
                            path: target,
                            source,
                        })
                    }
                },
            }
        }
        Err(TransferError::Io {
            path: dir.join(name),
            source: std::io::Error::other("too many files with this name"),
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept && !self.resumable {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `file` is what `path` names now: the same file, with no other name.
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(open), Ok(named)) => {
                open.dev() == named.dev() && open.ino() == named.ino() && open.nlink() == 1
            }
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// Opens (or, with `new`, creates anew) a file only its owner may read.
fn open_private(path: &Path, new: bool) -> Result<std::fs::File, TransferError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(io_error(path))
}
