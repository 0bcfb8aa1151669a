//! HTTP File Upload (XEP-0363) at `upload.DOMAIN`, over HTTPS on 127.0.0.1.
//!
//! The XMPP half (disco, slot requests) is answered by the router
//! ([`crate::router`]'s `uploads` module) with what this module hands out; the HTTP half is
//! served here:
//!
//! - A slot is a fresh, unguessable path `/upload/<128 random bits>/<file name>` and a random
//!   `Authorization` value the PUT must carry. It waits at most [`SLOT_LIFETIME`] for its PUT,
//!   and takes exactly the size asked for: a PUT with another `Content-Length`, without the
//!   header or with another `Authorization` is refused before its body is read.
//! - Files are kept in memory, exactly as they were PUT, and served to any GET (the URL is the
//!   capability, as with real services).
//! - Everything is bounded: the file size (the `max-file-size` disco announces), the bytes
//!   stored and promised to open slots together, the open slots, the files, the connections at
//!   once, the request head, and the time each step may take.
//! - TLS: a certificate for `localhost` from a CA made when the server starts
//!   ([`crate::DevServer::upload_ca_der`] gives it to clients that should trust it).
//!
//! A hostile service ([`crate::UploadAttack`], set with
//! [`crate::DevServer::set_upload_attack`]) serves files changed, cut, extended or swapped,
//! or answers slots with `http://` URLs or with a get URL where nothing listens.

mod http;
mod tls;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngExt;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use self::http::{Head, Method, Status};
use crate::state::{lock, Shared};
use crate::{DevServerError, UploadAttack};

/// How long a slot waits for its PUT before it is forgotten.
pub(crate) const SLOT_LIFETIME: Duration = Duration::from_secs(600);
/// Open slots (handed out, not yet PUT) at most.
const MAX_SLOTS: usize = 1000;
/// Files stored at most.
const MAX_FILES: usize = 10_000;
/// File names of slot requests remembered for [`crate::DevServer::upload_requests`].
const MAX_NAMES: usize = 10_000;
/// The longest file name a slot request may give, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// The longest content type a slot request may give, in bytes.
const MAX_TYPE_BYTES: usize = 255;
/// HTTPS connections served at once; more wait for their turn in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// The TLS handshake's time.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// The request head's time.
const HEAD_TIME: Duration = Duration::from_secs(10);
/// The longest wait for more of a body.
const BODY_IDLE: Duration = Duration::from_secs(30);
/// The longest a connection may take overall (a large file over loopback takes a second).
const CONNECTION_TIME: Duration = Duration::from_secs(300);
/// After an answer that left part of a request unread, what the client still sends is read and
/// dropped for at most this long (and [`MAX_DRAIN`] bytes), so that closing does not reset the
/// connection before the client has read the answer.
const DRAIN_TIME: Duration = Duration::from_secs(2);
const MAX_DRAIN: u64 = 1 << 20;
/// What [`UploadAttack::Extend`] appends.
pub(crate) const EXTRA_BYTES: usize = 1024;

/// The service's limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The largest file, in bytes (disco's `max-file-size`).
    pub(crate) max_file: u64,
    /// Bytes stored and promised to open slots, together, at most.
    pub(crate) max_total: u64,
}

/// A slot handed out and not yet used.
#[derive(Debug)]
struct Open {
    authorization: String,
    size: u64,
    content_type: Option<String>,
    expires: Instant,
    /// A PUT is reading its body.
    busy: bool,
}

/// A file as it was PUT.
#[derive(Debug)]
struct Stored {
    serial: u64,
    bytes: Arc<[u8]>,
    content_type: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    /// By path.
    open: HashMap<String, Open>,
    /// By path.
    files: HashMap<String, Stored>,
    /// Bytes promised to open slots.
    reserved: u64,
    /// Bytes of stored files.
    stored: u64,
    serial: u64,
    names: VecDeque<String>,
    attack: Option<UploadAttack>,
}

impl Inner {
    /// Forgets the slots past their time (not one being PUT).
    fn prune(&mut self, now: Instant) {
        let mut freed = 0;
        self.open.retain(|_, o| {
            let keep = o.busy || o.expires > now;
            if !keep {
                freed += o.size;
            }
            keep
        });
        self.reserved = self.reserved.saturating_sub(freed);
    }
}

/// A slot handed out: what the `<slot/>` answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Issued {
    pub(crate) put: String,
    pub(crate) get: String,
    pub(crate) authorization: String,
}

/// Why a slot is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub(crate) enum SlotRefusal {
    /// Larger than the service takes.
    #[error("the file is larger than the {max} bytes this service takes")]
    TooLarge { max: u64 },
    /// The service is full: too many open slots or files, or too many bytes.
    #[error("the upload service is full; try later")]
    Full,
}

/// The upload service.
pub(crate) struct Service {
    /// The HTTPS listener's address.
    pub(crate) address: SocketAddr,
    ca_der: Vec<u8>,
    acceptor: TlsAcceptor,
    limits: Limits,
    /// A loopback socket bound and never listening: connections to its port are refused
    /// (where [`UploadAttack::GetElsewhere`] points).
    nowhere: TcpSocket,
    nowhere_port: u16,
    inner: Mutex<Inner>,
    connections: Arc<Semaphore>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("address", &self.address)
            .field("limits", &self.limits)
            .field("nowhere", &self.nowhere.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// `s` with every byte but ALPHA, DIGIT, `-`, `.`, `_` and `~` percent-encoded.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// 128 random bits as 32 hex digits.
fn token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether the file name of a slot request can be used: not empty, not `.` or `..`, at most
/// [`MAX_NAME_BYTES`], no `/`, `\` or control characters.
pub(crate) fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// Whether a content type can be served back as it is: printable ASCII, bounded.
pub(crate) fn usable_type(content_type: &str) -> bool {
    !content_type.is_empty()
        && content_type.len() <= MAX_TYPE_BYTES
        && content_type.bytes().all(|b| matches!(b, 0x20..=0x7e))
}

/// Equal without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// How a request ended: how many bytes of its body may still be coming (to drain before
/// closing).
type Unread = u64;

impl Service {
    /// Opens the HTTPS listener on 127.0.0.1, on a port of its own.
    pub(crate) async fn bind() -> Result<TcpListener, DevServerError> {
        TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(DevServerError::UploadBind)
    }

    /// Makes the CA and certificate, and binds the port where nothing listens, for a service
    /// whose listener is at `address`.
    pub(crate) fn new(limits: Limits, address: SocketAddr) -> Result<Service, DevServerError> {
        let tls = tls::setup()?;
        let nowhere = TcpSocket::new_v4().map_err(DevServerError::UploadBind)?;
        nowhere
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(DevServerError::UploadBind)?;
        let nowhere_port = nowhere
            .local_addr()
            .map_err(DevServerError::UploadBind)?
            .port();
        Ok(Service {
            address,
            ca_der: tls.ca_der,
            acceptor: tls.acceptor,
            limits,
            nowhere,
            nowhere_port,
            inner: Mutex::new(Inner::default()),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    pub(crate) fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    pub(crate) fn max_file(&self) -> u64 {
        self.limits.max_file
    }

    pub(crate) fn attack(&self) -> Option<UploadAttack> {
        lock(&self.inner).attack
    }

    pub(crate) fn set_attack(&self, attack: Option<UploadAttack>) {
        lock(&self.inner).attack = attack;
    }

    /// The stored files, oldest first.
    pub(crate) fn files(&self) -> Vec<Vec<u8>> {
        let inner = lock(&self.inner);
        let mut files: Vec<&Stored> = inner.files.values().collect();
        files.sort_by_key(|f| f.serial);
        files.iter().map(|f| f.bytes.to_vec()).collect()
    }

    /// The file names slot requests gave, oldest first.
    pub(crate) fn names(&self) -> Vec<String> {
        lock(&self.inner).names.iter().cloned().collect()
    }

    /// Hands out a slot for `size` bytes under `name` (a [`usable_name`]), with `content_type`
    /// (a [`usable_type`]) when given.
    pub(crate) fn slot(
        &self,
        name: &str,
        size: u64,
        content_type: Option<&str>,
    ) -> Result<Issued, SlotRefusal> {
        if size > self.limits.max_file {
            return Err(SlotRefusal::TooLarge {
                max: self.limits.max_file,
            });
        }
        let mut inner = lock(&self.inner);
        inner.prune(Instant::now());
        let total = inner
            .reserved
            .saturating_add(inner.stored)
            .saturating_add(size);
        if inner.open.len() >= MAX_SLOTS
            || inner.open.len() + inner.files.len() >= MAX_FILES
            || total > self.limits.max_total
        {
            return Err(SlotRefusal::Full);
        }
        let path = loop {
            let path = format!("/upload/{}/{}", token(), escape(name));
            if !inner.open.contains_key(&path) && !inner.files.contains_key(&path) {
                break path;
            }
        };
        let authorization = format!("Bearer {}", token());
        inner.open.insert(
            path.clone(),
            Open {
                authorization: authorization.clone(),
                size,
                content_type: content_type.map(str::to_owned),
                expires: Instant::now() + SLOT_LIFETIME,
                busy: false,
            },
        );
        inner.reserved = inner.reserved.saturating_add(size);
        if inner.names.len() >= MAX_NAMES {
            inner.names.pop_front();
        }
        inner.names.push_back(name.to_owned());
        let attack = inner.attack;
        drop(inner);
        let here = format!("localhost:{}", self.address.port());
        let (put, get) = match attack {
            Some(UploadAttack::PlainHttp) => (
                format!("http://{here}{path}"),
                format!("http://{here}{path}"),
            ),
            Some(UploadAttack::GetElsewhere) => (
                format!("https://{here}{path}"),
                format!("https://localhost:{}{path}", self.nowhere_port),
            ),
            _ => (
                format!("https://{here}{path}"),
                format!("https://{here}{path}"),
            ),
        };
        Ok(Issued {
            put,
            get,
            authorization,
        })
    }

    /// Checks a PUT's head against its slot and marks the slot busy: the size to read, or
    /// the status refusing it.
    fn claim(&self, head: &Head) -> Result<u64, Status> {
        let mut inner = lock(&self.inner);
        inner.prune(Instant::now());
        if inner.files.contains_key(&head.path) {
            return Err(Status::Conflict);
        }
        let Some(open) = inner.open.get_mut(&head.path) else {
            return Err(Status::NotFound);
        };
        if open.busy {
            return Err(Status::Conflict);
        }
        if !head
            .authorization
            .as_deref()
            .is_some_and(|a| same(a, &open.authorization))
        {
            return Err(Status::Forbidden);
        }
        match head.content_length {
            None => Err(Status::LengthRequired),
            Some(n) if n > open.size => Err(Status::ContentTooLarge),
            Some(n) if n < open.size => Err(Status::BadRequest),
            Some(n) => {
                open.busy = true;
                Ok(n)
            }
        }
    }

    /// A claimed slot's PUT did not complete: the slot may be used again.
    fn release(&self, path: &str) {
        if let Some(open) = lock(&self.inner).open.get_mut(path) {
            open.busy = false;
        }
    }

    /// Keeps the body of a claimed slot's PUT.
    fn store(&self, path: &str, body: Vec<u8>) -> Status {
        let mut inner = lock(&self.inner);
        let Some(open) = inner.open.remove(path) else {
            return Status::NotFound;
        };
        inner.reserved = inner.reserved.saturating_sub(open.size);
        inner.stored = inner.stored.saturating_add(body.len() as u64);
        inner.serial += 1;
        let serial = inner.serial;
        inner.files.insert(
            path.to_owned(),
            Stored {
                serial,
                bytes: body.into(),
                content_type: open.content_type,
            },
        );
        Status::Created
    }

    /// What a GET of `path` is served, as the attack (if any) has it: the bytes and their
    /// content type.
    fn serve(&self, path: &str) -> Option<(Arc<[u8]>, Option<String>)> {
        let inner = lock(&self.inner);
        let file = inner.files.get(path)?;
        let content_type = file.content_type.clone();
        let changed = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = file.bytes.to_vec();
            change(&mut bytes);
            Arc::from(bytes)
        };
        let bytes = match inner.attack {
            None
            | Some(
                UploadAttack::PlainHttp
                | UploadAttack::GetElsewhere
                | UploadAttack::CutOff
                | UploadAttack::Silent,
            ) => file.bytes.clone(),
            Some(UploadAttack::FlipByte) => changed(&|bytes| {
                let middle = bytes.len() / 2;
                if let Some(b) = bytes.get_mut(middle) {
                    *b ^= 0x01;
                }
            }),
            Some(UploadAttack::Truncate) => changed(&|bytes| bytes.truncate(bytes.len() / 2)),
            Some(UploadAttack::Extend) => changed(&|bytes| {
                let mut extra = vec![0u8; EXTRA_BYTES];
                rand::rng().fill(&mut extra[..]);
                bytes.extend_from_slice(&extra);
            }),
            Some(UploadAttack::Substitute) => {
                let other = inner
                    .files
                    .values()
                    .filter(|f| f.serial != file.serial && f.bytes.len() == file.bytes.len())
                    .max_by_key(|f| f.serial);
                match other {
                    Some(f) => f.bytes.clone(),
                    None => changed(&|bytes| rand::rng().fill(&mut bytes[..])),
                }
            }
        };
        Some((bytes, content_type))
    }

    /// Serves one request on a TLS stream; gives how much of its body may still be coming.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
    ) -> std::io::Result<Unread> {
        let mut buf = Vec::with_capacity(2048);
        let end = match timeout(HEAD_TIME, read_head(io, &mut buf)).await {
            Err(_) => {
                respond(io, Status::RequestTimeout, &[]).await?;
                return Ok(MAX_DRAIN);
            }
            Ok(read) => match read? {
                HeadRead::Closed => return Ok(0),
                HeadRead::TooLarge => {
                    respond(io, Status::HeadTooLarge, &[]).await?;
                    return Ok(MAX_DRAIN);
                }
                HeadRead::Complete(end) => end,
            },
        };
        let (head_bytes, early) = buf.split_at(end);
        let head = match http::parse_head(head_bytes) {
            Ok(head) => head,
            Err(e) => {
                log::debug!("upload service: {e}");
                respond(io, e.status(), &[]).await?;
                return Ok(MAX_DRAIN);
            }
        };
        let unread = head
            .content_length
            .unwrap_or(0)
            .saturating_sub(early.len() as u64);
        match head.method {
            Method::Get | Method::Head => {
                match self.serve(&head.path) {
                    Some((bytes, content_type)) => {
                        let content_type =
                            content_type.unwrap_or_else(|| "application/octet-stream".into());
                        let total = bytes.len() as u64;
                        // A resumption (`bytes=N-`, N inside the file) gets the rest.
                        let from = head.range_from.filter(|n| *n > 0 && *n < total);
                        let (status, body, range) = match from {
                            Some(n) => (
                                Status::PartialContent,
                                &bytes[n as usize..],
                                Some(format!("bytes {n}-{}/{total}", total - 1)),
                            ),
                            None => (Status::Ok, &bytes[..], None),
                        };
                        let mut fields = vec![("Content-Type", content_type.as_str())];
                        if let Some(range) = &range {
                            fields.push(("Content-Range", range.as_str()));
                        }
                        if self.attack() == Some(UploadAttack::Silent) {
                            // Never answers: the connection is held until its time is up.
                            std::future::pending::<()>().await;
                        }
                        let out = http::response_head(status, body.len() as u64, &fields);
                        io.write_all(&out).await?;
                        if head.method == Method::Get {
                            if from.is_none() && self.attack() == Some(UploadAttack::CutOff) {
                                // Half the promised body, then the connection goes.
                                io.write_all(&body[..body.len() / 2]).await?;
                                io.flush().await?;
                                return Err(std::io::Error::other("cut off on purpose"));
                            }
                            io.write_all(body).await?;
                        }
                        io.flush().await?;
                    }
                    None => respond(io, Status::NotFound, &[]).await?,
                }
                Ok(unread)
            }
            Method::Put => self.put(io, &head, early).await,
            Method::Other => {
                respond(io, Status::MethodNotAllowed, &[("Allow", "GET, HEAD, PUT")]).await?;
                Ok(unread)
            }
        }
    }

    /// A PUT: checked against its slot before the body is read, then read and kept.
    async fn put<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut S,
        head: &Head,
        early: &[u8],
    ) -> std::io::Result<Unread> {
        let unread = head
            .content_length
            .map_or(MAX_DRAIN, |n| n.saturating_sub(early.len() as u64));
        let size = match self.claim(head) {
            Ok(size) => size,
            Err(status) => {
                respond(io, status, &[]).await?;
                return Ok(unread);
            }
        };
        // From here the slot is busy; it is freed again unless the body is kept.
        let claim = Claim {
            service: self,
            path: &head.path,
            kept: false,
        };
        let Ok(want) = usize::try_from(size) else {
            respond(io, Status::ContentTooLarge, &[]).await?;
            return Ok(unread);
        };
        if head.expect_continue {
            io.write_all(&http::interim(Status::Continue)).await?;
            io.flush().await?;
        }
        let mut body = Vec::with_capacity(want);
        body.extend_from_slice(early.get(..want.min(early.len())).unwrap_or_default());
        let mut chunk = vec![0u8; 64 * 1024];
        while body.len() < want {
            let room = (want - body.len()).min(chunk.len());
            let Some(space) = chunk.get_mut(..room) else {
                break;
            };
            match timeout(BODY_IDLE, io.read(space)).await {
                Err(_) => {
                    respond(io, Status::RequestTimeout, &[]).await?;
                    return Ok(0);
                }
                Ok(Ok(0)) => return Ok(0), // the client gave up: nothing is kept
                Ok(Ok(n)) => body.extend_from_slice(space.get(..n).unwrap_or_default()),
                Ok(Err(e)) => return Err(e),
            }
        }
        let status = self.store(&head.path, body);
        claim.keep(status == Status::Created);
        respond(io, status, &[]).await?;
        Ok(0)
    }
}

/// A slot being PUT: freed for another try when the PUT does not complete (also when its task
/// is cancelled).
struct Claim<'a> {
    service: &'a Service,
    path: &'a str,
    kept: bool,
}

impl Claim<'_> {
    fn keep(mut self, kept: bool) {
        self.kept = kept;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.service.release(self.path);
        }
    }
}

/// How reading a request head ended.
enum HeadRead {
    /// The head is `buf[..end]`; what follows is the start of the body.
    Complete(usize),
    /// Over [`http::MAX_HEAD`].
    TooLarge,
    /// The connection closed first.
    Closed,
}

async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<HeadRead> {
    let mut chunk = [0u8; 4096];
    loop {
        let searched = buf.len().saturating_sub(3);
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(HeadRead::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        match http::head_end(buf, searched) {
            Some(end) if end <= http::MAX_HEAD => return Ok(HeadRead::Complete(end)),
            Some(_) => return Ok(HeadRead::TooLarge),
            None if buf.len() >= http::MAX_HEAD => return Ok(HeadRead::TooLarge),
            None => {}
        }
    }
}

async fn respond<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: Status,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    io.write_all(&http::simple_response(status, extra)).await?;
    io.flush().await
}

/// Reads and drops what the client still sends, boundedly (see [`DRAIN_TIME`]).
async fn drain<S: AsyncRead + Unpin>(io: &mut S, most: u64) {
    let most = most.min(MAX_DRAIN);
    let mut scratch = [0u8; 8192];
    let mut read = 0u64;
    let _ = timeout(DRAIN_TIME, async {
        while read < most {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n as u64,
            }
        }
    })
    .await;
}

/// Serves one HTTPS connection: handshake, one request, close.
async fn connection(shared: Arc<Shared>, tcp: TcpStream, _permit: OwnedSemaphorePermit) {
    let service = &shared.upload;
    let Ok(Ok(mut tls)) = timeout(HANDSHAKE_TIME, service.acceptor.accept(tcp)).await else {
        return;
    };
    let served = timeout(CONNECTION_TIME, service.exchange(&mut tls)).await;
    if let Ok(Ok(unread)) = served {
        // The answer is complete: say so (close_notify, then FIN), and only then read what
        // the client may still be sending, so that it can read the answer before the socket
        // closes with unread data (which would reset the connection).
        let _ = timeout(DRAIN_TIME, tls.shutdown()).await;
        if unread > 0 {
            drain(&mut tls, unread).await;
        }
    }
}

/// Accepts HTTPS connections until shutdown, one task each, [`MAX_CONNECTIONS`] at once.
pub(crate) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            p = shared.upload.connections.clone().acquire_owned() => p,
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = permit else {
            return; // the semaphore is never closed
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((tcp, _)) => {
                let mut stop = shared.shutdown.subscribe();
                let conn = connection(shared.clone(), tcp, permit);
                let task = tokio::spawn(async move {
                    tokio::select! {
                        () = conn => {}
                        _ = stop.changed() => {}
                    }
                });
                let mut tasks = lock(&shared.tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            Err(e) => {
                log::warn!("accepting an HTTPS connection failed: {e}");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn service(max_file: u64, max_total: u64) -> Service {
        let listener = Service::bind().await.unwrap();
        let limits = Limits {
            max_file,
            max_total,
        };
        Service::new(limits, listener.local_addr().unwrap()).unwrap()
    }

    fn head(method: Method, path: &str, auth: Option<&str>, len: Option<u64>) -> Head {
        Head {
            method,
            path: path.into(),
            content_length: len,
            authorization: auth.map(str::to_owned),
            expect_continue: false,
            range_from: None,
        }
    }

    fn path_of(url: &str) -> String {
        let rest = url.split_once("://").unwrap().1;
        rest[rest.find('/').unwrap()..].to_owned()
    }

    #[tokio::test]
    async fn slots_are_fresh_bounded_and_checked() {
        let s = service(100, 250).await;
        let a = s.slot("a b/é.bin", 10, None).unwrap();
        let b = s.slot("a b/é.bin", 10, None).unwrap();
        assert_ne!(a.put, b.put);
        assert_ne!(a.authorization, b.authorization);
        assert_eq!(a.put, a.get);
        let port = s.address.port();
        assert!(
            a.put
                .starts_with(&format!("https://localhost:{port}/upload/")),
            "{a:?}"
        );
        assert!(a.put.ends_with("/a%20b%2F%C3%A9.bin"), "{a:?}");
        assert_eq!(
            s.slot("x", 101, None),
            Err(SlotRefusal::TooLarge { max: 100 })
        );
        // 10 + 10 + 100 + 100 promised: another 100 would pass the 250 in all.
        s.slot("x", 100, None).unwrap();
        s.slot("x", 100, None).unwrap();
        assert_eq!(s.slot("x", 100, None), Err(SlotRefusal::Full));
        assert!(s.slot("x", 30, None).is_ok());

        let path = path_of(&a.put);
        let auth = a.authorization.as_str();
        let check = |m, p: &str, au, l| s.claim(&head(m, p, au, l));
        assert_eq!(
            check(Method::Put, "/nope", Some(auth), Some(10)),
            Err(Status::NotFound)
        );
        assert_eq!(
            check(Method::Put, &path, None, Some(10)),
            Err(Status::Forbidden)
        );
        assert_eq!(
            check(Method::Put, &path, Some(&b.authorization), Some(10)),
            Err(Status::Forbidden)
        );
        assert_eq!(
            check(Method::Put, &path, Some(auth), None),
            Err(Status::LengthRequired)
        );
        assert_eq!(
            check(Method::Put, &path, Some(auth), Some(11)),
            Err(Status::ContentTooLarge)
        );
        assert_eq!(
            check(Method::Put, &path, Some(auth), Some(9)),
            Err(Status::BadRequest)
        );
        assert_eq!(check(Method::Put, &path, Some(auth), Some(10)), Ok(10));
        // Busy while its body is read; free again if that fails.
        assert_eq!(
            check(Method::Put, &path, Some(auth), Some(10)),
            Err(Status::Conflict)
        );
        s.release(&path);
        assert_eq!(check(Method::Put, &path, Some(auth), Some(10)), Ok(10));
        assert_eq!(s.store(&path, vec![7; 10]), Status::Created);
        assert_eq!(
            check(Method::Put, &path, Some(auth), Some(10)),
            Err(Status::Conflict)
        );
        assert_eq!(s.files(), vec![vec![7u8; 10]]);
        assert_eq!(s.names().len(), 5);
        assert_eq!(s.serve(&path).unwrap().0.to_vec(), vec![7u8; 10]);
        assert!(s.serve(&path_of(&b.get)).is_none(), "not PUT yet");
    }

    #[tokio::test]
    async fn attacks_change_what_is_served_and_what_slots_say() {
        let s = service(1000, 10_000).await;
        let mut paths = Vec::new();
        for fill in [1u8, 2] {
            let slot = s.slot("f", 100, None).unwrap();
            let path = path_of(&slot.put);
            s.claim(&head(
                Method::Put,
                &path,
                Some(&slot.authorization),
                Some(100),
            ))
            .unwrap();
            s.store(&path, vec![fill; 100]);
            paths.push(path);
        }
        let served = |s: &Service, attack| {
            s.set_attack(Some(attack));
            s.serve(&paths[0]).unwrap().0.to_vec()
        };
        let flipped = served(&s, UploadAttack::FlipByte);
        assert_eq!(flipped.len(), 100);
        assert_eq!(flipped.iter().filter(|b| **b != 1).count(), 1);
        assert_eq!(served(&s, UploadAttack::Truncate), vec![1u8; 50]);
        let extended = served(&s, UploadAttack::Extend);
        assert_eq!(extended.len(), 100 + EXTRA_BYTES);
        assert_eq!(extended[..100], [1u8; 100]);
        assert_eq!(served(&s, UploadAttack::Substitute), vec![2u8; 100]);
        assert_eq!(served(&s, UploadAttack::PlainHttp), vec![1u8; 100]);

        let plain = s.slot("f", 1, None).unwrap();
        assert!(plain.put.starts_with("http://") && plain.get.starts_with("http://"));
        s.set_attack(Some(UploadAttack::GetElsewhere));
        let elsewhere = s.slot("f", 1, None).unwrap();
        assert!(elsewhere
            .put
            .starts_with(&format!("https://localhost:{}/", s.address.port())));
        assert!(elsewhere
            .get
            .starts_with(&format!("https://localhost:{}/", s.nowhere_port)));
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", s.nowhere_port))
                .await
                .is_err()
        );
        s.set_attack(None);
        assert_eq!(s.serve(&paths[0]).unwrap().0.to_vec(), vec![1u8; 100]);
        assert_eq!(s.files(), vec![vec![1u8; 100], vec![2u8; 100]]);
    }

    #[test]
    fn names_and_types_are_checked() {
        assert!(usable_name("a9f3.bin"));
        assert!(usable_name("résumé final.pdf"));
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(256)] {
            assert!(!usable_name(bad), "{bad:?}");
        }
        assert!(usable_type("application/octet-stream"));
        assert!(!usable_type("text/plain\r\nX: y"));
        assert!(!usable_type(""));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
