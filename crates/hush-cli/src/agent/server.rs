//! The agent: the account loop owns the connection and the store and does one thing at a
//! time — a job from a client, or the next incoming message — so that nothing else ever
//! advances a ratchet session (the reason for the session lock). Each socket connection reads
//! requests, hands them to the account loop as jobs and writes what comes back; a subscribed
//! connection also gets each incoming message as a notification.
//!
//! Messages that arrive while nobody is subscribed are kept (up to [`MAX_BACKLOG`]) for the
//! first subscriber: they are committed, and nothing else would ever announce them. So are
//! those a subscriber that acknowledges (`hush recv` does) had not acknowledged when it went
//! away, if it was the last one: a message counts as shown once a subscriber acknowledged
//! it, or reached one that does not acknowledge.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hush_store::SqliteStore;
use hush_xmpp::{Delivery, Hush};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Notify};
use zeroize::Zeroizing;

use super::rpc::{self, Fault, Params};
use super::{socket_path, AgentError, MAX_SOCKET_PATH};
use crate::advice::Me;
use crate::commands::{bare, connect, devices, fingerprint, history, me, send, status, trust};
use crate::error::{CliError, Kind, Result};
use crate::home::Home;
use crate::output::{DeliveryReport, Shown};
use crate::terminal::printable;

/// Incoming messages kept for the first subscriber while nobody is subscribed; older ones
/// beyond this are only in history.
pub(crate) const MAX_BACKLOG: usize = 10_000;
/// Lines (responses and notifications) queued for one connection before it counts as not
/// reading: its subscription is then dropped (the messages are in history).
const CONNECTION_QUEUE: usize = 1_024;
/// How long the account loop waits for a message before looking at the stop flag again,
/// when nothing wakes it earlier.
const IDLE: Duration = Duration::from_secs(30);

/// What a connection hands the account loop.
enum Work {
    /// A request to run.
    Job(Job),
    /// The client hung up: its subscription ends, and what it did not acknowledge goes back
    /// to the backlog for the next subscriber.
    Closed(mpsc::Sender<String>),
}

/// One request handed to the account loop.
struct Job {
    request: rpc::Request,
    /// Where the connection's lines go (responses, and notifications once subscribed).
    sink: mpsc::Sender<String>,
    /// Said when the request is answered, so that a connection serves one at a time.
    done: oneshot::Sender<()>,
}

/// Runs the agent until SIGINT or SIGTERM (or a fatal error), then closes the connection as
/// usual and removes the socket.
pub(crate) async fn run(home: Home) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        crate::signals::on_interrupt(move || {
            stop.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    let path = socket_path(&home);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(AgentError::PathTooLong(path).into());
    }
    // The session lock is taken here: while the agent runs, it alone touches the sessions
    // (locked too: nothing else may advance them meanwhile).
    let (hush, config) = connect(&home).await?;
    let listener = listen(&path)?;
    let (jobs_tx, jobs) = mpsc::channel(64);
    let accept = tokio::spawn(accept(listener, jobs_tx, wake.clone()));
    crate::output::note(&format!(
        "agent for {} (device {}) listening on {}",
        hush.jid(),
        hush.device_id(),
        path.display()
    ));
    let mut account = Account {
        me: me(&hush),
        hush: None,
        home,
        subscribers: Vec::new(),
        backlog: VecDeque::new(),
        next_seq: 1,
    };
    let served = match account.begin(hush, config.created_at).await {
        Ok(()) => account.serve(jobs, &stop, &wake).await,
        Err(e) => Err(e),
    };
    accept.abort();
    let _ = std::fs::remove_file(&path);
    let closed = account.end().await;
    served?;
    closed?;
    crate::output::note("agent stopped");
    Ok(())
}

/// Binds the socket, mode 0600. A socket file already there is a dead agent's: a live one
/// would hold the session lock this process holds now.
fn listen(path: &Path) -> Result<UnixListener> {
    let listen_error = |source| AgentError::Listen {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => log::info!("removed the socket a stopped agent left behind"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_error(e).into()),
    }
    let listener = UnixListener::bind(path).map_err(listen_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(listen_error)?;
    }
    Ok(listener)
}

/// Accepts connections from processes of our own user only.
async fn accept(listener: UnixListener, jobs: mpsc::Sender<Work>, wake: Arc<Notify>) {
    let own_uid = rustix::process::getuid().as_raw();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::warn!("the agent could not accept a connection: {e}");
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == own_uid => {
                tokio::spawn(connection(stream, jobs.clone(), wake.clone()));
            }
            Ok(cred) => log::warn!(
                "refused a connection to the agent from user {} (only {own_uid} may use it)",
                cred.uid()
            ),
            Err(e) => log::warn!("refused a connection whose user cannot be known: {e}"),
        }
    }
}

/// Serves one client: reads requests, one at a time, and writes what comes back.
async fn connection(stream: UnixStream, jobs: mpsc::Sender<Work>, wake: Arc<Notify>) {
    let (read, mut write) = stream.into_split();
    let (sink, mut lines) = mpsc::channel::<String>(CONNECTION_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(mut line) = lines.recv().await {
            line.push('\n');
            if write.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(read);
    loop {
        // Zeroed when done with: an `unlock` request carries the store passphrase.
        let line = match read_line(&mut reader).await {
            Ok(Some(line)) => Zeroizing::new(line),
            Ok(None) => break,
            Err(fault) => {
                // Too long or not text: answered once, then the connection is closed (where
                // the next request starts is unknown).
                let _ = sink.send(rpc::error(Value::Null, &fault).to_string()).await;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let request = match rpc::parse(&line) {
            Ok(request) => request,
            Err((fault, id)) => {
                if sink.send(rpc::error(id, &fault).to_string()).await.is_err() {
                    break;
                }
                continue;
            }
        };
        let (done, answered) = oneshot::channel();
        let job = Job {
            request,
            sink: sink.clone(),
            done,
        };
        if jobs.send(Work::Job(job)).await.is_err() {
            break; // the agent is stopping
        }
        wake.notify_one();
        if answered.await.is_err() {
            break;
        }
    }
    // The account loop drops its copy of the sink (a subscription's); the writer then ends
    // once it wrote what is queued.
    if jobs.send(Work::Closed(sink)).await.is_ok() {
        wake.notify_one();
    }
    let _ = writer.await;
}

/// The next line (without its end), `None` at the end of the stream.
async fn read_line(
    reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
) -> std::result::Result<Option<String>, Fault> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(rpc::MAX_LINE + 1).unwrap_or(u64::MAX);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', &mut bytes)
        .await
        .map_err(|e| Fault::Parse(e.to_string()))?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.last() != Some(&b'\n') && bytes.len() > rpc::MAX_LINE {
        return Err(Fault::Invalid("a request longer than 1 MiB"));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Fault::Parse("not UTF-8".into()))
}

/// A subscribed connection.
struct Subscriber {
    sink: mpsc::Sender<String>,
    /// It also wants the text lines `hush recv` prints.
    lines: bool,
    /// It acknowledges what it showed (`ack`): what it did not when it goes away is handed
    /// to the next subscriber. Without acknowledgements a message counts as shown once it is
    /// queued for the connection.
    acks: bool,
    /// Messages sent and not acknowledged yet, with their sequence numbers, oldest first.
    unacked: VecDeque<(u64, Shown)>,
}

/// The account loop's state: the connection and store (none while locked), and who listens.
struct Account {
    hush: Option<Hush<SqliteStore>>,
    home: Home,
    me: Me,
    subscribers: Vec<Subscriber>,
    backlog: VecDeque<Shown>,
    /// The sequence number of the next message notification.
    next_seq: u64,
}

impl Account {
    /// Starts serving on a connection: first what arrived while no agent ran (or while it
    /// was locked), from the archive — since the account was set up, for a device that never
    /// read it — before any job: a send then builds on every session the archive advanced.
    /// (Left to the first wait, the catch-up would read only from when this connection was
    /// made.)
    async fn begin(&mut self, mut hush: Hush<SqliteStore>, created_at: u64) -> Result<()> {
        let notice = hush.take_rollback_notice();
        let found = hush.catch_up(created_at).await;
        self.hush = Some(hush);
        if let Some(notice) = notice {
            self.publish(&notice);
        }
        for d in &found? {
            self.publish(d);
        }
        Ok(())
    }

    /// Closes the connection and the store; what was read and not shown yet goes to the
    /// subscribers still here (it is in history in any case).
    async fn end(&mut self) -> Result<()> {
        let Some(mut hush) = self.hush.take() else {
            return Ok(());
        };
        for d in hush.take_unshown() {
            self.publish(&d);
        }
        hush.close().await?;
        Ok(())
    }

    /// `unlock`: opens the store with `passphrase` and connects again.
    async fn unlock(&mut self, passphrase: Zeroizing<String>) -> std::result::Result<Value, Fault> {
        if self.hush.is_none() {
            self.home.use_passphrase(passphrase);
            let opened = match connect(&self.home).await {
                Ok((hush, config)) => self.begin(hush, config.created_at).await,
                Err(e) => Err(e),
            };
            if let Err(e) = opened {
                self.home.forget_passphrase();
                return Err(failed(e));
            }
            log::info!("the agent was unlocked");
        }
        Ok(json!({"locked": false}))
    }

    /// `lock`: closes the connection and the store, and forgets the passphrase.
    async fn lock(&mut self) -> std::result::Result<Value, Fault> {
        let closed = self.end().await;
        self.home.forget_passphrase();
        if let Err(e) = closed {
            log::warn!("closing the connection to lock the agent: {e}");
        }
        log::info!("the agent was locked");
        Ok(json!({"locked": true}))
    }

    /// Jobs and incoming messages, one at a time, until `stop`.
    async fn serve(
        &mut self,
        mut jobs: mpsc::Receiver<Work>,
        stop: &AtomicBool,
        wake: &Notify,
    ) -> Result<()> {
        while !stop.load(Ordering::SeqCst) {
            while let Ok(work) = jobs.try_recv() {
                match work {
                    Work::Job(job) => self.handle(job).await,
                    Work::Closed(sink) => self.unsubscribe(&sink),
                }
            }
            match self.hush.as_mut() {
                // A catch-up cut short continues inside the wait (and after a lost session).
                Some(hush) => {
                    if let Some(d) = hush.receive_or_wake(IDLE, wake).await? {
                        self.publish(&d);
                    }
                }
                // Locked: nothing to read; a job or the stop signal wakes us.
                None => wake.notified().await,
            }
        }
        Ok(())
    }

    /// Does one job and writes its response.
    async fn handle(&mut self, job: Job) {
        let Job {
            mut request,
            sink,
            done,
        } = job;
        let outcome = if request.method == "unlock" {
            // The passphrase is taken out of the request at once, into memory that is zeroed.
            match request.params.remove("passphrase") {
                Some(Value::String(p)) => self.unlock(Zeroizing::new(p)).await,
                _ => Err(Fault::Params("`passphrase` (a string) is required".into())),
            }
        } else {
            self.call(&request.method, &request.params, &sink).await
        };
        let subscribed = request.method == "subscribe" && outcome.is_ok();
        if let Some(id) = request.id {
            let line = match outcome {
                Ok(result) => rpc::response(id, result),
                Err(fault) => rpc::error(id, &fault),
            };
            // A connection that is not reading gets nothing more.
            let _ = sink.try_send(line.to_string());
        }
        if subscribed {
            // What arrived while nobody listened, in order, after the response.
            for s in std::mem::take(&mut self.backlog) {
                self.publish_shown(s);
            }
        }
        let _ = done.send(());
    }

    /// Runs one method.
    async fn call(
        &mut self,
        method: &str,
        params: &Map<String, Value>,
        sink: &mpsc::Sender<String>,
    ) -> std::result::Result<Value, Fault> {
        let p = Params(params);
        let lines = p.flag("lines")?;
        let shown = |s: Shown| with_lines(s, lines);
        match method {
            "ping" => Ok(json!({"jid": self.me.jid, "device": self.me.device,
                                "locked": self.hush.is_none()})),
            "lock" => self.lock().await,
            "send" => {
                let to = bare(p.string("to")?).map_err(failed)?;
                let text = p.string("text")?;
                if text.trim().is_empty() {
                    return Err(failed(CliError::EmptyMessage));
                }
                let plaintext = p.flag("plaintext")?;
                // The config as it is now: `hush config` may have changed it meanwhile.
                let hush = unlocked(&mut self.hush)?;
                let global_off = self
                    .home
                    .config(hush.store())
                    .map_err(failed)?
                    .encryption_off;
                let sent = send::report(hush, &to, text, plaintext, global_off)
                    .await
                    .map_err(failed)?;
                Ok(shown(sent))
            }
            "history" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let limit = p.count("limit")?.unwrap_or(50);
                let messages = history::reports(unlocked(&mut self.hush)?.store(), &jid, limit)
                    .map_err(failed)?;
                Ok(shown(list("messages", messages)))
            }
            "status" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let store = unlocked(&mut self.hush)?.store();
                let global_off = self.home.config(store).map_err(failed)?.encryption_off;
                status::report(store, &jid, global_off)
                    .map(shown)
                    .map_err(failed)
            }
            "devices" => {
                let jid = match p.0.get("jid") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(bare(p.string("jid")?).map_err(failed)?),
                };
                let devices = devices::reports(unlocked(&mut self.hush)?.store(), jid.as_ref())
                    .map_err(failed)?;
                Ok(shown(list("devices", devices)))
            }
            "fingerprint" => fingerprint::report(unlocked(&mut self.hush)?.store())
                .map(shown)
                .map_err(failed),
            "trust" | "distrust" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let which = p.string("device")?;
                let trust = if method == "trust" {
                    hush_store::Trust::Verified
                } else {
                    hush_store::Trust::Distrusted
                };
                let decided =
                    trust::decide(unlocked(&mut self.hush)?.store_mut(), &jid, which, trust)
                        .map_err(failed)?;
                Ok(shown(list("devices", decided)))
            }
            "verify" => {
                let uri = p.string("uri")?;
                let verified = trust::verify_uri(unlocked(&mut self.hush)?.store_mut(), uri)
                    .map_err(failed)?;
                Ok(shown(list("devices", verified)))
            }
            "subscribe" => {
                if self.subscribers.iter().any(|s| s.sink.same_channel(sink)) {
                    return Err(Fault::Failed {
                        message: "this connection is subscribed already".into(),
                        kind: Kind::Usage.name(),
                    });
                }
                self.subscribers.push(Subscriber {
                    sink: sink.clone(),
                    lines,
                    acks: p.flag("ack")?,
                    unacked: VecDeque::new(),
                });
                // What arrived while nobody listened follows this response, in order (see
                // `handle`).
                Ok(json!({"subscribed": true}))
            }
            "ack" => {
                let seq = p
                    .count("seq")?
                    .ok_or_else(|| Fault::Params("`seq` (a count) is required".into()))?;
                let seq = u64::try_from(seq).unwrap_or(u64::MAX);
                let sub = self
                    .subscribers
                    .iter_mut()
                    .find(|s| s.sink.same_channel(sink))
                    .ok_or_else(|| Fault::Failed {
                        message: "this connection is not subscribed".into(),
                        kind: Kind::Usage.name(),
                    })?;
                while sub.unacked.front().is_some_and(|(n, _)| *n <= seq) {
                    sub.unacked.pop_front();
                }
                Ok(json!({"acknowledged": seq}))
            }
            other => Err(Fault::NoMethod(other.to_owned())),
        }
    }

    /// Ends the subscription of the connection whose sink this is: what it did not
    /// acknowledge goes back to the front of the backlog, for the next subscriber.
    fn unsubscribe(&mut self, sink: &mpsc::Sender<String>) {
        if let Some(at) = self
            .subscribers
            .iter()
            .position(|s| s.sink.same_channel(sink))
        {
            let gone = self.subscribers.swap_remove(at);
            self.requeue(gone);
        }
    }

    /// Puts what `gone` did not acknowledge back at the front of the backlog, in order, when
    /// nobody else listens: every message goes to every subscriber, so with others still
    /// subscribed, it reached them.
    fn requeue(&mut self, gone: Subscriber) {
        if self.subscribers.is_empty() {
            for (_, s) in gone.unacked.into_iter().rev() {
                self.backlog.push_front(s);
            }
        }
    }

    /// Hands an incoming message to every subscriber, or keeps it for the first one.
    fn publish(&mut self, delivery: &Delivery) {
        let s = Shown::of(&DeliveryReport {
            delivery,
            me: &self.me,
        });
        self.publish_shown(s);
    }

    fn publish_shown(&mut self, s: Shown) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.subscribers.len() {
            if notify(&mut self.subscribers[i], seq, &s) {
                i += 1;
            } else {
                gone.push(self.subscribers.swap_remove(i));
            }
        }
        let delivered = !self.subscribers.is_empty();
        for sub in gone {
            self.requeue(sub);
        }
        if !delivered {
            if self.backlog.len() == MAX_BACKLOG {
                self.backlog.pop_front();
                log::warn!(
                    "more than {MAX_BACKLOG} messages arrived with nobody subscribed; the \
                     oldest are only in `hush history`"
                );
            }
            self.backlog.push_back(s);
        }
    }
}

/// The connection, or the answer that the agent is locked.
fn unlocked(
    hush: &mut Option<Hush<SqliteStore>>,
) -> std::result::Result<&mut Hush<SqliteStore>, Fault> {
    hush.as_mut().ok_or_else(|| Fault::Failed {
        message: "the agent is locked: `hush agent unlock` gives it the passphrase again".into(),
        kind: Kind::Authentication.name(),
    })
}

/// Sends one message notification, numbered `seq`; false if the subscriber is gone or not
/// reading (it is then dropped: what it did not acknowledge goes to the next one).
fn notify(subscriber: &mut Subscriber, seq: u64, s: &Shown) -> bool {
    let mut params = with_lines(
        Shown {
            json: s.json.clone(),
            text: s.text.clone(),
        },
        subscriber.lines,
    );
    if let Value::Object(o) = &mut params {
        o.insert("seq".into(), json!(seq));
    }
    match subscriber
        .sink
        .try_send(rpc::notification("message", params).to_string())
    {
        Ok(()) => {
            if subscriber.acks {
                subscriber.unacked.push_back((
                    seq,
                    Shown {
                        json: s.json.clone(),
                        text: s.text.clone(),
                    },
                ));
            }
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            log::warn!("a subscriber is not reading; its subscription is dropped");
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Several reports as one: `{name: [their JSON objects]}` (empty objects, which only have
/// text, left out), and all their lines.
fn list(name: &str, reports: Vec<Shown>) -> Shown {
    let text: Vec<String> = reports.iter().flat_map(|r| r.text.clone()).collect();
    let json: Vec<Value> = reports
        .into_iter()
        .map(|r| r.json)
        .filter(|j| !j.as_object().is_some_and(|o| o.is_empty()))
        .collect();
    Shown {
        json: json!({ name: json }),
        text,
    }
}

/// The JSON form, with the text lines under `lines` when asked for.
fn with_lines(s: Shown, lines: bool) -> Value {
    let mut json = s.json;
    if lines {
        if let Value::Object(o) = &mut json {
            o.insert("lines".into(), json!(s.text));
        }
    }
    json
}

/// A command's error as the agent answers it: the line `hush` would print.
fn failed(e: impl Into<CliError>) -> Fault {
    let e = e.into();
    Fault::Failed {
        message: printable(&e.to_string()),
        kind: e.kind().name(),
    }
}
