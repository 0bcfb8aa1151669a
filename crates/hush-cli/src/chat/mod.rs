//! `hush chat [JID]`: a conversation in the terminal. Messages show as they arrive, each with
//! its time, sender, device and an encryption and trust mark, while the user types; failures
//! show inline, in red; commands (`/trust`, `/status`, `/reset`…) run in place.
//!
//! The chat is a client of the account's agent, like every other command: it uses a running
//! one, or runs one inside this process for as long as the chat lasts, so that `hush send` and
//! scripts work meanwhile. It holds two connections to it: one subscribed to the messages
//! (each acknowledged once drawn, so what the chat never drew goes to the next reader), and one
//! for the calls the user makes.
//!
//! - [`view`]: the state and the drawing, without I/O (tested with a test backend).
//! - [`command`]: what a typed line means.
//! - [`input`]: the line editor.
//!
//! This module is the shell: the terminal (raw mode, the alternate screen, bracketed paste,
//! restored on every way out), a thread reading keys, and the loop that joins keys, messages,
//! answers and the log lines (shown inline instead of on standard error while the screen is
//! ours).

mod command;
mod input;
mod view;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hush_xmpp::BareJid;
use ratatui::crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use ratatui::crossterm::execute;
use ratatui::DefaultTerminal;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, Notify};

use self::view::{Action, Call, Chat};
use crate::agent::client::{Agent, Notification};
use crate::agent::server::{self, StopSwitch};
use crate::agent::{socket_path, AgentError};
use crate::commands::unix_now;
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::Shown;

/// How long the key-reading thread waits for a key before looking whether the chat ended.
const KEY_POLL: Duration = Duration::from_millis(100);
/// Messages taken at most between two draws.
const DRAIN: usize = 1_000;

/// Whether the chat holds the terminal (raw, on the alternate screen): a second signal, which
/// ends the process at once, gives it back first (see [`give_back_terminal`]).
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

/// Gives the terminal back if the chat holds it: bracketed paste off, raw mode off, the
/// alternate screen left. For ways out that skip the chat's own (a second signal, a panic).
pub(crate) fn give_back_terminal() {
    if TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        let _ = execute!(std::io::stdout(), DisableBracketedPaste);
        let _ = ratatui::try_restore();
    }
}

/// Runs the chat with `peer` (or nobody yet) until the user leaves.
pub(crate) async fn run(home: Home, peer: Option<BareJid>) -> Result<()> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(CliError::NotATerminal);
    }
    let path = socket_path(&home);
    if Agent::find_at(path.clone()).await?.is_some() {
        return converse(path, peer).await;
    }
    // None runs: one runs in this process while the chat lasts. It logs in (asking for the
    // passphrase on the terminal if it must) before the screen is taken.
    crate::output::note(
        "no agent runs for this account: one runs inside this chat until you leave \
         (other `hush` commands use it meanwhile)",
    );
    // On a thread of its own: neither a slow draw nor the agent's own work (a catch-up)
    // holds up the other.
    let switch = StopSwitch::default();
    let (ready, listening) = oneshot::channel();
    let (done, served) = oneshot::channel();
    {
        let switch = switch.clone();
        std::thread::spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(CliError::Runtime)
                .and_then(|rt| rt.block_on(server::serve(home, switch, Some(ready), None)));
            let _ = done.send(result);
        });
    }
    // When the agent fails before it listens, its error is the one to report.
    let chatted = match listening.await {
        Ok(()) => converse(path, peer).await,
        Err(_) => Ok(()),
    };
    switch.stop();
    let served = served
        .await
        .unwrap_or_else(|_| Err(AgentError::Closed.into()));
    // The agent's failure explains the chat's ("the agent went away").
    served.and(chatted)
}

/// The chat, on the agent listening at `path`.
async fn converse(path: PathBuf, peer: Option<BareJid>) -> Result<()> {
    let not_running = || AgentError::NotRunning(path.clone());
    let mut calls = Agent::find_at(path.clone())
        .await?
        .ok_or_else(not_running)?
        .quietly();
    let who = calls.call("ping", json!({})).await?.json;
    if who["locked"] == true {
        return Err(AgentError::Locked.into());
    }
    // The subscription needs only the JSON: the chat draws its own lines.
    let events = Agent::find_at(path.clone())
        .await?
        .ok_or_else(not_running)?
        .printing_for(crate::output::Printer::new(true))
        .quietly();
    let me = who["jid"].as_str().unwrap_or("?").to_owned();
    let device = who["device"]
        .as_u64()
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(0);
    let mut chat = Chat::new(&me, device, peer.clone(), unix_now());
    // Which conversations are rooms: a line to one goes to all its members.
    if let Ok(rooms) = calls.call("rooms", json!({})).await {
        let joined = rooms.json["rooms"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|r| r["room"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        chat.set_rooms(joined);
    }

    let (feed_tx, feed) = unbounded_channel();
    let (acks, acks_rx) = unbounded_channel();
    let feeding = tokio::spawn(feed_from(events, peer, feed_tx, acks_rx));
    let (calls_tx, calls_rx) = unbounded_channel();
    let (answers_tx, answers) = unbounded_channel();
    let calling = tokio::spawn(serve_calls(calls, calls_rx, answers_tx));
    let stop = Arc::new(Notify::new());
    {
        let stop = stop.clone();
        crate::signals::on_interrupt(move || stop.notify_one());
    }

    let (notes_tx, notes) = unbounded_channel();
    let mut screen = Screen::open()?;
    crate::output::divert_notes(Some(notes_tx));
    let (keys, key_rx) = Keys::start();
    let channels = Channels {
        feed,
        acks,
        calls: calls_tx,
        answers,
        notes,
    };
    let result = run_loop(&mut chat, &mut screen, key_rx, channels, &stop).await;
    keys.stop();
    drop(screen);
    crate::output::divert_notes(None);
    // The last acknowledgements go out (the loop's channels are closed: the feed ends after
    // them), or what was drawn would go to the next reader again.
    let _ = tokio::time::timeout(Duration::from_secs(2), feeding).await;
    calling.abort();
    result
}

/// What the loop reads and writes besides the terminal.
struct Channels {
    feed: UnboundedReceiver<Feed>,
    acks: UnboundedSender<u64>,
    calls: UnboundedSender<Call>,
    answers: UnboundedReceiver<(u64, std::result::Result<Shown, String>)>,
    notes: UnboundedReceiver<String>,
}

/// Draws, then waits for the next thing to happen, until the user leaves or a signal comes.
async fn run_loop(
    chat: &mut Chat,
    screen: &mut Screen,
    mut key_rx: UnboundedReceiver<std::io::Result<Event>>,
    mut ch: Channels,
    stop: &Notify,
) -> Result<()> {
    // The clock changes which messages count as today's, and notices a terminal that went
    // away without a signal (crossterm then never reports anything).
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    // The newest message drawn and not acknowledged yet (acknowledging it acknowledges every
    // one before it).
    let mut drawn: Option<u64> = None;
    let (mut feed_open, mut answers_open, mut notes_open) = (true, true, true);
    loop {
        chat.set_now(unix_now());
        screen
            .terminal
            .draw(|frame| chat.draw(frame))
            .map_err(CliError::Terminal)?;
        // Acknowledged once drawn: what never reached the screen goes to the next reader.
        if let Some(seq) = drawn.take() {
            let _ = ch.acks.send(seq);
        }
        let action = tokio::select! {
            key = key_rx.recv() => match key {
                Some(Ok(event)) => chat.on_terminal(event),
                Some(Err(e)) => return Err(CliError::Terminal(e)),
                None => Some(Action::Quit),
            },
            feed = ch.feed.recv(), if feed_open => {
                match feed {
                    Some(f) => on_feed(chat, f, &mut drawn),
                    None => feed_open = false,
                }
                None
            },
            answer = ch.answers.recv(), if answers_open => {
                match answer {
                    Some((tag, answer)) => chat.on_answer(tag, answer),
                    None => answers_open = false,
                }
                None
            },
            note = ch.notes.recv(), if notes_open => {
                match note {
                    Some(line) => chat.on_note(&line),
                    None => notes_open = false,
                }
                None
            },
            () = stop.notified() => Some(Action::Quit),
            _ = clock.tick() => {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::Terminal(std::io::Error::other("the terminal closed")));
                }
                None
            },
        };
        match action {
            Some(Action::Quit) => return Ok(()),
            Some(Action::Call(call)) => {
                if let Err(e) = ch.calls.send(call) {
                    // The caller is gone: say so on the call itself.
                    let call = e.0;
                    chat.on_answer(call.tag, Err("the connection to the agent is gone".into()));
                }
            }
            None => {}
        }
        // Whatever else is ready is taken before the next draw: a backlog of thousands of
        // messages is not drawn one by one.
        for _ in 0..DRAIN {
            match ch.feed.try_recv() {
                Ok(f) => on_feed(chat, f, &mut drawn),
                Err(_) => break,
            }
        }
        while let Ok(line) = ch.notes.try_recv() {
            chat.on_note(&line);
        }
    }
}

fn on_feed(chat: &mut Chat, feed: Feed, drawn: &mut Option<u64>) {
    match feed {
        Feed::History(jid, Ok(history)) => chat.show_history(&jid, &history, true),
        Feed::History(_, Err(e)) => chat.on_note(&format!("the history could not be read: {e}")),
        Feed::Live(backlog) => chat.on_live(backlog),
        Feed::Message(m) => {
            chat.on_message(&m);
            if let Some(seq) = m["seq"].as_u64() {
                *drawn = Some(drawn.map_or(seq, |d| d.max(seq)));
            }
        }
        Feed::Sent(s) => chat.on_sent(&s),
        Feed::Lost(why) => chat.on_lost(&why),
    }
}

/// What the subscribed connection brings.
enum Feed {
    /// The conversation's history, read before subscribing.
    History(BareJid, std::result::Result<Shown, AgentError>),
    /// Subscribed: the first this many messages arrived while nobody was shown them, the
    /// rest are new.
    Live(usize),
    /// A message notification.
    Message(Value),
    /// A message sent through the agent (by this chat, or another client).
    Sent(Value),
    /// The agent went away, or answered nonsense.
    Lost(String),
}

/// Reads the history of `peer`, subscribes, and hands over every message; acknowledges what
/// the loop drew.
async fn feed_from(
    mut agent: Agent,
    peer: Option<BareJid>,
    feed: UnboundedSender<Feed>,
    mut acks: UnboundedReceiver<u64>,
) {
    // History first: the messages the agent then hands over as unread are in it too, and
    // the view skips them.
    if let Some(peer) = peer {
        let history = agent
            .call(
                "history",
                json!({"jid": peer.to_string(), "limit": command::HISTORY_SHOWN}),
            )
            .await;
        let _ = feed.send(Feed::History(peer, history));
    }
    match agent
        .call("subscribe", json!({"ack": true, "sent": true}))
        .await
    {
        Ok(subscribed) => {
            let backlog = subscribed.json["backlog"].as_u64().unwrap_or(0);
            let _ = feed.send(Feed::Live(usize::try_from(backlog).unwrap_or(usize::MAX)));
        }
        Err(e) => {
            let _ = feed.send(Feed::Lost(e.to_string()));
            return;
        }
    }
    loop {
        tokio::select! {
            next = agent.next_notification(Duration::from_secs(3600)) => match next {
                Ok(Some((kind, n))) => {
                    let item = match kind {
                        Notification::Message => Feed::Message(n.json),
                        Notification::Sent => Feed::Sent(n.json),
                    };
                    if feed.send(item).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = feed.send(Feed::Lost(e.to_string()));
                    return;
                }
            },
            seq = acks.recv() => {
                let Some(seq) = seq else { return };
                if let Err(e) = agent.call("ack", json!({"seq": seq})).await {
                    let _ = feed.send(Feed::Lost(e.to_string()));
                    return;
                }
            }
        }
    }
}

/// Makes the calls the user asked for, one at a time, and hands back the answers.
async fn serve_calls(
    mut agent: Agent,
    mut calls: UnboundedReceiver<Call>,
    answers: UnboundedSender<(u64, std::result::Result<Shown, String>)>,
) {
    while let Some(call) = calls.recv().await {
        let answer = agent
            .call(call.method, call.params)
            .await
            .map_err(|e| e.to_string());
        if answers.send((call.tag, answer)).is_err() {
            return;
        }
    }
}

/// The terminal while the chat owns it: raw, on the alternate screen, with bracketed paste
/// (a pasted line break is part of the message, not Enter). Dropped, it is restored.
struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    fn open() -> Result<Self> {
        TERMINAL_TAKEN.store(true, Ordering::SeqCst);
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                // Raw mode may be on already.
                give_back_terminal();
                return Err(CliError::Terminal(e));
            }
        };
        let screen = Self { terminal };
        // A panic gives the terminal back whole (ratatui's own hook leaves bracketed paste on).
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            give_back_terminal();
            hook(info);
        }));
        execute!(std::io::stdout(), EnableBracketedPaste).map_err(CliError::Terminal)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        give_back_terminal();
    }
}

/// The thread that reads the terminal's events (crossterm reads them blocking).
struct Keys {
    done: Arc<AtomicBool>,
}

impl Keys {
    /// Starts the thread; its events come on the receiver.
    fn start() -> (Self, UnboundedReceiver<std::io::Result<Event>>) {
        let (tx, rx) = unbounded_channel();
        let done = Arc::new(AtomicBool::new(false));
        {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let next = match event::poll(KEY_POLL) {
                        Ok(false) => continue,
                        Ok(true) => event::read(),
                        Err(e) => Err(e),
                    };
                    let failed = next.is_err();
                    if tx.send(next).is_err() || failed {
                        return;
                    }
                }
            });
        }
        (Self { done }, rx)
    }

    /// Ends the thread (within [`KEY_POLL`]) without waiting for it: on a terminal that was
    /// hung up, crossterm reads the end of input again and again and never returns, and the
    /// process ends soon after the chat anyway.
    fn stop(self) {
        self.done.store(true, Ordering::SeqCst);
    }
}
