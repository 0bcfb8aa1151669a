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

use super::confirm::{self, Confirm};
use super::rpc::{self, Fault, Params};
use super::{socket_path, AgentError, MAX_SOCKET_PATH};
use crate::advice::Me;
use crate::commands::{
    bare, connect, contacts, devices, fingerprint, history, me, rooms, send, session, status, trust,
};
use crate::error::{CliError, Kind, Result};
use crate::home::Home;
use crate::output::{DeliveryReport, Report, Shown};

/// Incoming messages kept for the first subscriber while nobody is subscribed; older ones
/// beyond this are only in history.
pub(crate) const MAX_BACKLOG: usize = 10_000;
/// Message notifications queued for one connection (or sent and not acknowledged, for one
/// that acknowledges) before it counts as not reading: its subscription is then dropped, and
/// what it had not acknowledged goes to the next subscriber.
const NOTIFICATION_QUEUE: usize = MAX_BACKLOG;
/// Responses queued for one connection: it has at most one request outstanding, so a response
/// always fits and is never dropped.
const RESPONSE_QUEUE: usize = 4;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;
/// How long the agent waits before reconnecting after losing the connection (doubling up to
/// [`MAX_RETRY`]) — a job or a signal ends the wait early.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// How long the account loop waits for a message before looking at the stop flag again,
/// when nothing wakes it earlier.
const IDLE: Duration = Duration::from_secs(30);

/// What a connection hands the account loop.
enum Work {
    /// A request to run.
    Job(Job),
    /// The client hung up: its subscription ends, and what it did not acknowledge goes back
    /// to the backlog for the next subscriber.
    Closed(Outlet),
}

/// Where the lines for one connection go: responses on their own queue, so that a connection
/// slow to read its notifications still gets the answer to its request.
#[derive(Clone)]
struct Outlet {
    responses: mpsc::Sender<String>,
    notifications: mpsc::Sender<String>,
}

impl Outlet {
    fn is(&self, other: &Outlet) -> bool {
        self.responses.same_channel(&other.responses)
    }
}

/// One request handed to the account loop.
struct Job {
    request: rpc::Request,
    /// Where the connection's lines go.
    sink: Outlet,
    /// Said when the request is answered, so that a connection serves one at a time.
    done: oneshot::Sender<()>,
}

/// How an agent is asked to stop: the flag the account loop looks at between two steps, and
/// the wake-up that ends its wait.
#[derive(Clone, Default)]
pub(crate) struct StopSwitch {
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl StopSwitch {
    /// Asks the agent to stop after the step it is doing.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// Runs the agent until SIGINT, SIGTERM or SIGHUP (or a fatal error), then closes the
/// connection as usual and removes the socket.
pub(crate) async fn run(home: Home, confirm: bool) -> Result<()> {
    let confirm = if confirm {
        Some(Arc::new(Confirm::open()?))
    } else {
        None
    };
    let switch = StopSwitch::default();
    {
        let switch = switch.clone();
        crate::signals::on_interrupt(move || switch.stop());
    }
    serve(home, switch, None, confirm).await
}

/// Runs the agent until `switch` stops it (or a fatal error); `ready` is told once it listens
/// (`hush chat` runs one inside itself this way when none runs). With `confirm`, each new
/// connection is asked about on the terminal first (see [`super::confirm`]).
pub(crate) async fn serve(
    home: Home,
    switch: StopSwitch,
    ready: Option<oneshot::Sender<()>>,
    confirm: Option<Arc<Confirm>>,
) -> Result<()> {
    let StopSwitch { stop, wake } = switch;
    let path = socket_path(&home);
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(AgentError::PathTooLong(path).into());
    }
    // The session lock is taken here: while the agent runs, it alone touches the sessions
    // (locked too: nothing else may advance them meanwhile).
    let (hush, config) = connect(&home).await?;
    // The config holds the XMPP password: only the time the account was set up is kept.
    let created_at = config.created_at;
    drop(config);
    let listener = listen(&path)?;
    let (jobs_tx, jobs) = mpsc::channel(64);
    let accept = tokio::spawn(accept(listener, jobs_tx, wake.clone(), confirm));
    crate::output::note(&format!(
        "agent for {} (device {}) listening on {}",
        hush.jid(),
        hush.device_id(),
        path.display()
    ));
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let (fetched_tx, fetched) = mpsc::unbounded_channel();
    let mut account = Account {
        me: me(&hush),
        hush: None,
        downloads: crate::commands::files::Downloads::new(&home, None, None),
        fetching: Fetching {
            tasks: tokio::task::JoinSet::new(),
            done_tx: fetched_tx,
            done: fetched,
            wake: wake.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(PARALLEL_DOWNLOADS)),
            pending: std::collections::BTreeMap::new(),
            next: 0,
        },
        home,
        subscribers: Vec::new(),
        backlog: VecDeque::new(),
        next_seq: 1,
        sas: super::sas::Desk::default(),
    };
    let served = match account.begin(hush, created_at).await {
        Ok(()) => account.serve(jobs, &stop, &wake).await,
        Err(e) => Err(e),
    };
    accept.abort();
    let _ = std::fs::remove_file(&path);
    let closed = account.end().await;
    account.unread_note();
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

/// Accepts connections from processes of our own user only, at most [`MAX_CONNECTIONS`] at
/// once.
async fn accept(
    listener: UnixListener,
    jobs: mpsc::Sender<Work>,
    wake: Arc<Notify>,
    confirm: Option<Arc<Confirm>>,
) {
    let own_uid = rustix::process::getuid().as_raw();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: not a reason to spin.
                log::warn!("the agent could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == own_uid => {
                let (jobs, wake) = (jobs.clone(), wake.clone());
                // Asked about on its first request that needs asking.
                let gate = confirm.clone().map(|c| Gate {
                    confirm: c,
                    who: cred.pid(),
                    allowed: false,
                });
                tokio::spawn(async move {
                    connection(stream, jobs, wake, gate).await;
                    drop(slot);
                });
            }
            Ok(cred) => log::warn!(
                "refused a connection to the agent from user {} (only {own_uid} may use it)",
                cred.uid()
            ),
            Err(e) => log::warn!("refused a connection whose user cannot be known: {e}"),
        }
    }
}

/// Confirm-on-use for one connection: whether it was allowed yet.
struct Gate {
    confirm: Arc<Confirm>,
    who: Option<i32>,
    allowed: bool,
}

impl Gate {
    /// Whether `method` may be served on this connection, asking on the terminal the first
    /// time it matters.
    async fn lets(&mut self, method: &str) -> bool {
        if self.allowed || !confirm::needs_asking(method) {
            return true;
        }
        self.allowed = self.confirm.ask(confirm::describe(self.who)).await;
        if !self.allowed {
            log::warn!("refused {} (confirm-on-use)", confirm::describe(self.who));
        }
        self.allowed
    }
}

/// Serves one client: reads requests, one at a time, and writes what comes back.
async fn connection(
    stream: UnixStream,
    jobs: mpsc::Sender<Work>,
    wake: Arc<Notify>,
    mut gate: Option<Gate>,
) {
    let (read, mut write) = stream.into_split();
    let (responses, mut response_lines) = mpsc::channel::<String>(RESPONSE_QUEUE);
    let (notifications, mut notification_lines) = mpsc::channel::<String>(NOTIFICATION_QUEUE);
    let sink = Outlet {
        responses,
        notifications,
    };
    let writer = tokio::spawn(async move {
        let (mut responses_open, mut notifications_open) = (true, true);
        while responses_open || notifications_open {
            let line = tokio::select! {
                biased;
                line = response_lines.recv(), if responses_open => match line {
                    Some(line) => line,
                    None => { responses_open = false; continue; }
                },
                line = notification_lines.recv(), if notifications_open => match line {
                    Some(line) => line,
                    None => { notifications_open = false; continue; }
                },
            };
            if write.write_all(line.as_bytes()).await.is_err()
                || write.write_all(b"\n").await.is_err()
            {
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
                let answer = rpc::error(Value::Null, &fault).to_string();
                let _ = sink.responses.send(answer).await;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let request = match rpc::parse(&line) {
            Ok(request) => request,
            Err((fault, Some(id))) => {
                let answer = rpc::error(id, &fault).to_string();
                if sink.responses.send(answer).await.is_err() {
                    break;
                }
                continue;
            }
            // A notification is never answered, not even when it is wrong.
            Err((_, None)) => continue,
        };
        if let Some(gate) = gate.as_mut() {
            if !gate.lets(&request.method).await {
                if let Some(id) = request.id {
                    let fault = Fault::Failed {
                        message: "refused at the agent's terminal (it runs with --confirm): \
                                  nothing was done"
                            .into(),
                        kind: Kind::Refused.name(),
                    };
                    if sink
                        .responses
                        .send(rpc::error(id, &fault).to_string())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                continue;
            }
        }
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
    sink: Outlet,
    /// The sequence number of the first message published after it subscribed (the backlog it
    /// was handed included): it never got the ones before.
    since: u64,
    /// It also wants the text lines `hush recv` prints.
    lines: bool,
    /// It acknowledges what it showed (`ack`): what it did not when it goes away is handed
    /// to the next subscriber. Without acknowledgements a message counts as shown once it is
    /// queued for the connection.
    acks: bool,
    /// Messages sent and not acknowledged yet, with their sequence numbers, oldest first.
    unacked: VecDeque<(u64, Shown)>,
    /// It also wants to hear of the messages sent through the agent (`hush chat` shows them
    /// in the conversation).
    sent: bool,
}

/// The account loop's state: the connection and store (none while locked), and who listens.
struct Account {
    hush: Option<Hush<SqliteStore>>,
    home: Home,
    /// Where the files that arrive go (`downloads` in the home, under the usual limit).
    downloads: crate::commands::files::Downloads,
    /// The downloads running, off the loop: their messages are published when they end.
    fetching: Fetching,
    me: Me,
    subscribers: Vec<Subscriber>,
    backlog: VecDeque<Shown>,
    /// The sequence number of the next message notification.
    next_seq: u64,
    /// Comparisons of short authentication strings offered and under way.
    sas: super::sas::Desk,
}

/// Files being downloaded for messages that arrived: each download runs as a task of its
/// own, so a slow or silent server holds up neither the jobs nor other messages; its message
/// is published once the download ended (saved, or why not).
///
/// A task sends its result on `done_tx` *before* it wakes the loop: woken, the loop must find
/// the result. (The task's own return value would not do: the loop can wake before the task
/// has ended, find nothing, and sleep on with the message unpublished — a refactor that did
/// so failed `agents_send_and_save_files`.)
struct Fetching {
    tasks: tokio::task::JoinSet<()>,
    done_tx: mpsc::UnboundedSender<(u64, Option<crate::commands::files::Saved>)>,
    done: mpsc::UnboundedReceiver<(u64, Option<crate::commands::files::Saved>)>,
    /// Wakes the loop when one ends.
    wake: Arc<Notify>,
    /// Turns to run, [`PARALLEL_DOWNLOADS`] at a time.
    slots: Arc<tokio::sync::Semaphore>,
    /// The messages whose files are being fetched, by a number of their own: each is
    /// published once, when its download ends or when the agent stops.
    pending: std::collections::BTreeMap<u64, Delivery>,
    next: u64,
}

/// How many downloads run at once; the rest wait their turn (their messages with them).
const PARALLEL_DOWNLOADS: usize = 2;

impl Account {
    /// Starts serving on a connection: first what arrived while no agent ran (or while it
    /// was locked), from the archive — since the account was set up, for a device that never
    /// read it — before any job: a send then builds on every session the archive advanced.
    /// (Left to the first wait, the catch-up would read only from when this connection was
    /// made.)
    async fn begin(&mut self, mut hush: Hush<SqliteStore>, created_at: u64) -> Result<()> {
        let notice = hush.take_rollback_notice();
        if let Some(notice) = notice {
            self.publish(&notice).await;
        }
        // (A catch-up that read something returns it even when it stopped early; an error
        // means it read nothing: the connection is given up, and the agent stays as it was.)
        let found = hush.catch_up(created_at).await?;
        self.hush = Some(hush);
        for d in &found {
            self.publish(d).await;
        }
        Ok(())
    }

    /// Says on the agent's standard error how many messages arrived that no reader was shown
    /// (they are in history), when it stops with some.
    fn unread_note(&self) {
        let mut waiting: Vec<String> = self
            .backlog
            .iter()
            .filter_map(|s| s.json["from"].as_str().map(str::to_owned))
            .collect();
        if waiting.is_empty() {
            return;
        }
        let count = waiting.len();
        waiting.sort();
        waiting.dedup();
        crate::output::note(&format!(
            "{count} message(s) arrived that no `hush recv` was shown; they are in history \
             (`hush history JID` for {})",
            waiting.join(", ")
        ));
    }

    /// Closes the connection and the store; what was read and not shown yet goes to the
    /// subscribers still here (it is in history in any case).
    async fn end(&mut self) -> Result<()> {
        self.stop_fetching().await;
        let Some(mut hush) = self.hush.take() else {
            return Ok(());
        };
        // Published without downloading: the agent is closing (or locking) now.
        for d in hush.take_unshown() {
            self.publish_saved(&d, None);
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
        let mut retry = FIRST_RETRY;
        while !stop.load(Ordering::SeqCst) {
            self.publish_fetched();
            // The jobs queued now, no more: a stream of requests must not keep the loop from
            // reading the connection, or from seeing the stop signal.
            for _ in 0..jobs.len() {
                let Ok(work) = jobs.try_recv() else { break };
                match work {
                    Work::Job(job) => self.handle(job).await,
                    Work::Closed(sink) => self.unsubscribe(&sink),
                }
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
            }
            let Some(hush) = self.hush.as_mut() else {
                // Locked: nothing to read; a job or the stop signal wakes us.
                wake.notified().await;
                continue;
            };
            // A catch-up cut short continues inside the wait (and after a lost session).
            match hush.receive_or_wake(IDLE, wake).await {
                Ok(Some(d)) => {
                    self.publish(&d).await;
                    retry = FIRST_RETRY;
                }
                Ok(None) => retry = FIRST_RETRY,
                // The link, a timeout, or the archive: the agent stays, and tries again after
                // a pause (a job or a signal ends the pause early).
                Err(e)
                    if e.is_connection()
                        || matches!(
                            e,
                            hush_xmpp::XmppError::Timeout(_)
                                | hush_xmpp::XmppError::ArchiveMisbehaves(_)
                        ) =>
                {
                    log::warn!(
                        "receiving failed ({e}); trying again in {} s",
                        retry.as_secs()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(retry) => {}
                        () = wake.notified() => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
                Err(e) => return Err(e.into()),
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
            // Always room: a connection has one request outstanding at most.
            if sink.responses.try_send(line.to_string()).is_err() {
                log::warn!("a response could not be queued for its connection (it is gone)");
            }
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
        sink: &Outlet,
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
                let to = if p.flag("muc")? {
                    send::To::Room(&to)
                } else {
                    send::To::Contact(&to)
                };
                let sent = send::report(hush, to, text, plaintext, global_off)
                    .await
                    .map_err(failed)?;
                self.announce_sent(&sent, text);
                Ok(shown(sent))
            }
            "send_file" => {
                let to = bare(p.string("to")?).map_err(failed)?;
                let path = std::path::PathBuf::from(p.string("path")?);
                let hush = unlocked(&mut self.hush)?;
                let to = if p.flag("muc")? {
                    send::To::Room(&to)
                } else {
                    send::To::Contact(&to)
                };
                let sent = crate::commands::files::send_file_report(hush, to, &path)
                    .await
                    .map_err(failed)?;
                let text = sent.json["file"]["name"]
                    .as_str()
                    .unwrap_or("a file")
                    .to_owned();
                self.announce_sent(&sent, &format!("(file) {text}"));
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
            "fingerprint" => {
                let name = |n: &str| p.0.get(n).and_then(Value::as_str);
                let form = fingerprint::Form::from_names(name("qr"), name("uri"));
                fingerprint::report(unlocked(&mut self.hush)?.store(), form)
                    .map(shown)
                    .map_err(failed)
            }
            "trust" | "distrust" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let which = p.string("device")?;
                let trust = if method == "trust" {
                    hush_store::Trust::Verified
                } else {
                    hush_store::Trust::Distrusted
                };
                let decided = trust::decide_fetching(unlocked(&mut self.hush)?, &jid, which, trust)
                    .await
                    .map_err(failed)?;
                Ok(shown(list("devices", decided)))
            }
            "reset" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let device = p.device_id("device")?;
                session::report(unlocked(&mut self.hush)?.store_mut(), &jid, device)
                    .map(shown)
                    .map_err(failed)
            }
            "contacts" | "add_contact" | "remove_contact" => {
                let change = match method {
                    "contacts" => contacts::Change::List,
                    "add_contact" => contacts::Change::Add(bare(p.string("jid")?).map_err(failed)?),
                    _ => contacts::Change::Remove(bare(p.string("jid")?).map_err(failed)?),
                };
                let mut done = contacts::report(unlocked(&mut self.hush)?, &change)
                    .await
                    .map_err(failed)?;
                Ok(shown(match change {
                    contacts::Change::List => list("contacts", done),
                    _ => done.pop().unwrap_or_default(),
                }))
            }
            "join" | "leave" | "rooms" | "members" | "set_member" => {
                let room = || bare(p.string("room")?).map_err(failed);
                let change = match method {
                    "join" => rooms::Change::Join {
                        room: room()?,
                        nick: match p.0.get("nick") {
                            None | Some(Value::Null) => None,
                            Some(_) => Some(p.string("nick")?.to_owned()),
                        },
                    },
                    "leave" => rooms::Change::Leave(room()?),
                    "rooms" => rooms::Change::List,
                    "members" => rooms::Change::Members(room()?),
                    _ => rooms::Change::Affiliate {
                        room: room()?,
                        jid: bare(p.string("jid")?).map_err(failed)?,
                        affiliation: match p.0.get("affiliation") {
                            None | Some(Value::Null) => None,
                            Some(_) => Some(
                                hush_store::Affiliation::parse(p.string("affiliation")?)
                                    .ok_or_else(|| {
                                        Fault::Params(
                                            "`affiliation` is member, admin, owner or null".into(),
                                        )
                                    })?,
                            ),
                        },
                    },
                };
                let mut done = rooms::report(unlocked(&mut self.hush)?, &change)
                    .await
                    .map_err(failed)?;
                Ok(shown(match change {
                    rooms::Change::List => list("rooms", done),
                    rooms::Change::Members(_) => list("members", done),
                    _ => done.pop().unwrap_or_default(),
                }))
            }
            "remove_devices" => {
                let remove = p.device_ids("devices")?;
                devices::remove_report(unlocked(&mut self.hush)?, &remove)
                    .await
                    .map(shown)
                    .map_err(failed)
            }
            "verify" => {
                let uri = p.string("uri")?;
                let verified = trust::verify_fetching(unlocked(&mut self.hush)?, uri)
                    .await
                    .map_err(failed)?;
                Ok(shown(list("devices", verified)))
            }
            "sas_start" => {
                let jid = bare(p.string("jid")?).map_err(failed)?;
                let device = p
                    .device_id("device")?
                    .ok_or_else(|| Fault::Params("`device` (a device id) is required".into()))?;
                let hush = unlocked(&mut self.hush)?;
                let started = self.sas.start(hush, &jid, device).await.map_err(failed)?;
                Ok(shown(started))
            }
            "sas_accept" => {
                let id = optional_string(&p, "comparison")?;
                let from = optional_string(&p, "jid")?
                    .map(|j| bare(j).map_err(failed))
                    .transpose()?;
                let hush = unlocked(&mut self.hush)?;
                // `if_any`: a client about to wait for an offer takes one that came already.
                if p.flag("if_any")? && !self.sas.offered(id, from.as_ref()) {
                    return Ok(json!({"sas": null}));
                }
                let accepted = self
                    .sas
                    .accept(hush, id, from.as_ref())
                    .await
                    .map_err(failed)?;
                Ok(shown(accepted))
            }
            "sas_cancel" => {
                let id = p.string("comparison")?;
                let reason = optional_string(&p, "reason")?.unwrap_or("declined");
                let hush = unlocked(&mut self.hush)?;
                let cancelled = self.sas.cancel(hush, id, reason).await.map_err(failed)?;
                Ok(json!({"cancelled": cancelled}))
            }
            "sas_answer" => {
                let id = optional_string(&p, "comparison")?;
                let matched = match p.0.get("match") {
                    Some(Value::Bool(b)) => *b,
                    _ => return Err(Fault::Params("`match` (true or false) is required".into())),
                };
                let hush = unlocked(&mut self.hush)?;
                let answered = self.sas.answer(hush, id, matched).await.map_err(failed)?;
                Ok(shown(answered))
            }
            "subscribe" => {
                if self.subscribers.iter().any(|s| s.sink.is(sink)) {
                    return Err(Fault::Failed {
                        message: "this connection is subscribed already".into(),
                        kind: Kind::Usage.name(),
                    });
                }
                self.subscribers.push(Subscriber {
                    sink: sink.clone(),
                    since: self.next_seq,
                    lines,
                    acks: p.flag("ack")?,
                    unacked: VecDeque::new(),
                    sent: p.flag("sent")?,
                });
                // What arrived while nobody listened follows this response, in order (see
                // `handle`): `backlog` says how many.
                Ok(json!({"subscribed": true, "backlog": self.backlog.len()}))
            }
            "ack" => {
                let seq = p
                    .count("seq")?
                    .ok_or_else(|| Fault::Params("`seq` (a count) is required".into()))?;
                let seq = u64::try_from(seq).unwrap_or(u64::MAX);
                let sub = self
                    .subscribers
                    .iter_mut()
                    .find(|s| s.sink.is(sink))
                    .ok_or_else(|| Fault::Failed {
                        message: "this connection is not subscribed (any more: it fell more than \
                                  10,000 messages behind; they wait for the next reader)"
                            .into(),
                        kind: Kind::Failed.name(),
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
    /// acknowledge goes to those who never got it (see [`Self::requeue`]).
    fn unsubscribe(&mut self, sink: &Outlet) {
        if let Some(at) = self.subscribers.iter().position(|s| s.sink.is(sink)) {
            let gone = self.subscribers.swap_remove(at);
            self.requeue(gone);
        }
    }

    /// What `gone` did not acknowledge: to each subscriber still here that subscribed after
    /// it was published (the others got it), or back to the front of the backlog when nobody
    /// is left.
    fn requeue(&mut self, gone: Subscriber) {
        if self.subscribers.is_empty() {
            for (_, s) in gone.unacked.into_iter().rev() {
                self.backlog.push_front(s);
            }
            while self.backlog.len() > MAX_BACKLOG {
                self.backlog.pop_back();
            }
            return;
        }
        for (seq, s) in gone.unacked {
            let late: Vec<usize> = (0..self.subscribers.len())
                .filter(|&i| self.subscribers[i].since > seq)
                .collect();
            for i in late {
                let seq = self.next_seq;
                self.next_seq += 1;
                // One that cannot take it either is dropped with the next publish.
                let _ = notify(&mut self.subscribers[i], seq, &s);
            }
        }
    }

    /// Tells the subscribers that asked what was sent: the send's report, with the text and
    /// the time. Only news (the message is in history): one whose queue is full misses it.
    fn announce_sent(&self, sent: &Shown, text: &str) {
        let mut params = sent.json.clone();
        if let Value::Object(o) = &mut params {
            o.insert("body".into(), json!(text));
            o.insert("at".into(), json!(crate::commands::unix_now()));
        }
        let line = rpc::notification("sent", params).to_string();
        for s in self.subscribers.iter().filter(|s| s.sent) {
            let _ = s.sink.notifications.try_send(line.clone());
        }
    }

    /// Hands an incoming message to every subscriber, or keeps it for the first one. A file
    /// it shares, when it may be fetched by itself, is downloaded first, off the loop (the
    /// agent holds the account, so it saves the files): the message follows once it ended.
    async fn publish(&mut self, delivery: &Delivery) {
        // A step of a comparison goes to the desk, which says what the subscribers hear,
        // after any warning, new key or trust change that came with it.
        if let (Some(hush), Some(arrival)) = (self.hush.as_mut(), delivery.sas.clone()) {
            if delivery.is_sas_notice() {
                let now = crate::commands::unix_now();
                let age = delivery.arrival.at.map_or(0, |at| now.saturating_sub(at));
                let step = self.sas.arrived(hush, arrival, age).await;
                let report = DeliveryReport {
                    delivery,
                    me: &self.me,
                    saved: None,
                };
                let (notices, report) = (report.notices(), report.json());
                let mut shown = match step {
                    Some(step) => step,
                    None if notices.is_empty() => return,
                    // A quiet step that brought news of its own: the news alone.
                    None => Shown {
                        json: json!({"from": delivery.from, "device": delivery.device,
                                     "body": null}),
                        text: Vec::new(),
                    },
                };
                for field in ["warning", "new_key", "trust_message", "trust", "at"] {
                    shown.json[field] = report[field].clone();
                }
                shown.text.splice(0..0, notices);
                self.publish_shown(shown);
                return;
            }
        }
        let verdict = self
            .hush
            .as_ref()
            .map(|hush| crate::commands::files::may_fetch(hush.store(), &self.me.jid, delivery));
        match verdict {
            Some(crate::commands::files::Fetch::Now) => {
                let f = &mut self.fetching;
                let id = f.next;
                f.next += 1;
                f.pending.insert(id, delivery.clone());
                let downloads = self.downloads.clone();
                let delivery = delivery.clone();
                let done = f.done_tx.clone();
                let wake = f.wake.clone();
                let slots = Arc::clone(&f.slots);
                f.tasks.spawn(async move {
                    let _turn = slots.acquire_owned().await;
                    let saved = crate::commands::files::save(&delivery, &downloads).await;
                    let _ = done.send((id, saved));
                    wake.notify_one();
                });
            }
            verdict => {
                let saved = match verdict {
                    Some(crate::commands::files::Fetch::Not(why)) => {
                        Some(crate::commands::files::Saved::NotSaved(why))
                    }
                    _ => None,
                };
                self.publish_saved(delivery, saved.as_ref());
            }
        }
    }

    /// Publishes `delivery` with what became of its file.
    fn publish_saved(
        &mut self,
        delivery: &Delivery,
        saved: Option<&crate::commands::files::Saved>,
    ) {
        let s = Shown::of(&DeliveryReport {
            delivery,
            me: &self.me,
            saved,
        });
        self.publish_shown(s);
    }

    /// Publishes the messages whose downloads ended.
    fn publish_fetched(&mut self) {
        while let Ok((id, saved)) = self.fetching.done.try_recv() {
            if let Some(delivery) = self.fetching.pending.remove(&id) {
                self.publish_saved(&delivery, saved.as_ref());
            }
        }
        // Reap the finished tasks.
        while self.fetching.tasks.try_join_next().is_some() {}
    }

    /// Ends the downloads still running: their messages are published without their files
    /// (`hush fetch` gets them), before the connection closes.
    async fn stop_fetching(&mut self) {
        self.fetching.tasks.abort_all();
        while self.fetching.tasks.join_next().await.is_some() {}
        self.publish_fetched();
        for (_, delivery) in std::mem::take(&mut self.fetching.pending) {
            let why = crate::commands::files::Saved::NotSaved(
                "the agent stopped before it was downloaded".to_owned(),
            );
            self.publish_saved(&delivery, Some(&why));
        }
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
            while self.backlog.len() >= MAX_BACKLOG {
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
/// reading — more than [`NOTIFICATION_QUEUE`] queued or unacknowledged (it is then dropped:
/// what it did not acknowledge goes to the next one).
fn notify(subscriber: &mut Subscriber, seq: u64, s: &Shown) -> bool {
    if subscriber.unacked.len() >= NOTIFICATION_QUEUE {
        log::warn!("a subscriber acknowledges nothing; its subscription is dropped");
        return false;
    }
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
        .notifications
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

/// An optional string parameter.
fn optional_string<'p>(
    p: &'p Params<'_>,
    name: &str,
) -> std::result::Result<Option<&'p str>, Fault> {
    match p.0.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => p.string(name).map(Some),
    }
}

/// A command's error as the agent answers it: the line `hush` would print.
fn failed(e: impl Into<CliError>) -> Fault {
    let e = e.into();
    // As it is: the `hush` that prints it makes it printable (a script gets it exact in JSON).
    Fault::Failed {
        message: e.to_string(),
        kind: e.kind().name(),
    }
}
