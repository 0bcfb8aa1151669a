//! How the other commands use a running agent: [`Agent::find`] connects if one listens in the
//! home directory, [`Agent::call`] runs a method there, and [`Agent::next_message`] reads the
//! messages of a subscription.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

use super::{rpc, socket_path, AgentError};
use crate::home::Home;
use crate::output::{Printer, Shown};

/// A connection to the account's agent.
pub(crate) struct Agent {
    path: PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// Notifications read while waiting for a response.
    notifications: VecDeque<Value>,
    /// What was read of a line not complete yet: kept across a read cut short by a timeout.
    partial: Vec<u8>,
    /// Whether to ask for the text lines `hush` prints (not needed for `--json`).
    lines: bool,
    /// Whether to say so on standard error when an answer takes long.
    say_waiting: bool,
}

/// How long an answer may take before the command says it is waiting for the agent.
const WAITING_NOTE: Duration = Duration::from_secs(3);

impl Agent {
    /// Connects to the agent of `home`, if one runs. `None` when there is no socket or nobody
    /// listens on it (an agent that was killed leaves its socket behind).
    pub(crate) async fn find(home: &Home) -> Result<Option<Self>, AgentError> {
        Self::find_at(socket_path(home)).await
    }

    /// Connects to the agent listening on `path`, if one does.
    pub(crate) async fn find_at(path: PathBuf) -> Result<Option<Self>, AgentError> {
        // A home too deep for a socket path can have no agent (`hush agent` refuses it).
        if path.as_os_str().len() > super::MAX_SOCKET_PATH {
            return Ok(None);
        }
        let stream = match UnixStream::connect(&path).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::InvalidInput
                        // A home that is not a directory: the command says so itself.
                        | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(source) => return Err(AgentError::Io { path, source }),
        };
        let (read, writer) = stream.into_split();
        Ok(Some(Self {
            path,
            reader: BufReader::new(read),
            writer,
            next_id: 1,
            notifications: VecDeque::new(),
            partial: Vec::new(),
            lines: true,
            say_waiting: true,
        }))
    }

    /// Asks for the text lines only when they will be printed (not with `--json`: a long
    /// message's lines would only make the answer longer).
    pub(crate) fn printing_for(mut self, out: Printer) -> Self {
        self.lines = !out.is_json();
        self
    }

    /// Says nothing while waiting for an answer (`hush chat` shows its own state).
    pub(crate) fn quietly(mut self) -> Self {
        self.say_waiting = false;
        self
    }

    /// Runs `method` in the agent and gives its result, with the text lines `hush` prints
    /// (the agent adds them when asked).
    pub(crate) async fn call(
        &mut self,
        method: &str,
        mut params: Value,
    ) -> Result<Shown, AgentError> {
        if let Value::Object(p) = &mut params {
            p.insert("lines".into(), Value::Bool(self.lines));
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut line = rpc::request(id, method, params).to_string();
        line.push('\n');
        self.answer_to(id, &line).await
    }

    /// `unlock` with `passphrase`, kept in memory that is zeroed (the request line too).
    pub(crate) async fn call_unlock(
        &mut self,
        passphrase: &Zeroizing<String>,
    ) -> Result<Shown, AgentError> {
        let id = self.next_id;
        self.next_id += 1;
        let quoted = Zeroizing::new(serde_json::to_string(passphrase.as_str()).unwrap_or_default());
        // One write, newline included, from memory that is zeroed.
        let line = Zeroizing::new(format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"unlock\",\"params\":{{\"passphrase\":{}}}}}\n",
            quoted.as_str()
        ));
        self.answer_to(id, &line).await
    }

    /// Writes the request `line` (numbered `id`, ending with its newline) and reads until its
    /// response.
    async fn answer_to(&mut self, id: u64, line: &str) -> Result<Shown, AgentError> {
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|source| self.io(source))?;
        let mut said = !self.say_waiting;
        loop {
            let read = if said {
                self.read().await
            } else {
                match tokio::time::timeout(WAITING_NOTE, self.read()).await {
                    Ok(read) => read,
                    Err(_) => {
                        said = true;
                        crate::output::note(
                            "waiting for the agent: it is busy (catching up after a start, or \
                             serving another request)",
                        );
                        continue;
                    }
                }
            };
            let mut answer = read?.ok_or(AgentError::Closed)?;
            if answer.get("id").is_none() {
                self.notifications.push_back(answer);
                continue;
            }
            if answer.get("id").and_then(Value::as_u64) != Some(id) {
                return Err(AgentError::BadAnswer);
            }
            if let Some(error) = answer.get("error") {
                return Err(AgentError::Failed {
                    code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                    kind: error
                        .pointer("/data/kind")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    message: error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the agent gave no reason")
                        .to_owned(),
                });
            }
            let result = answer
                .get_mut("result")
                .map(Value::take)
                .ok_or(AgentError::BadAnswer)?;
            return Ok(split_lines(result));
        }
    }

    /// The next message of a subscription (see the `subscribe` method), waiting up to `wait`.
    /// `Ok(None)` when none came in time.
    pub(crate) async fn next_message(
        &mut self,
        wait: Duration,
    ) -> Result<Option<Shown>, AgentError> {
        match self.next_notification(wait).await? {
            None => Ok(None),
            Some((Notification::Message, shown)) => Ok(Some(shown)),
            Some(_) => Err(AgentError::BadAnswer),
        }
    }

    /// The next notification of a subscription, waiting up to `wait`. `Ok(None)` when none
    /// came in time.
    pub(crate) async fn next_notification(
        &mut self,
        wait: Duration,
    ) -> Result<Option<(Notification, Shown)>, AgentError> {
        let mut notification = match self.notifications.pop_front() {
            Some(n) => n,
            None => match tokio::time::timeout(wait, self.read()).await {
                Err(_) => return Ok(None),
                Ok(read) => read?.ok_or(AgentError::Closed)?,
            },
        };
        let kind = match notification.get("method").and_then(Value::as_str) {
            Some("message") => Notification::Message,
            Some("sent") => Notification::Sent,
            _ => return Err(AgentError::BadAnswer),
        };
        let params = notification
            .get_mut("params")
            .map(Value::take)
            .ok_or(AgentError::BadAnswer)?;
        Ok(Some((kind, split_lines(params))))
    }

    /// One line from the agent, as JSON; `None` at the end of the stream. Safe to cut short
    /// (a timeout around it): what was read of the line is kept for the next call.
    async fn read(&mut self) -> Result<Option<Value>, AgentError> {
        // Bytes already looked at for the end of the line.
        let mut scanned = 0;
        loop {
            if let Some(at) = self.partial[scanned..].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=scanned + at).collect();
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|_| AgentError::BadAnswer);
            }
            scanned = self.partial.len();
            if scanned > rpc::MAX_ANSWER {
                return Err(AgentError::BadAnswer);
            }
            let available = self
                .reader
                .fill_buf()
                .await
                .map_err(|source| AgentError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if available.is_empty() {
                return Ok(None);
            }
            let n = available.len();
            self.partial.extend_from_slice(available);
            self.reader.consume(n);
        }
    }

    fn io(&self, source: std::io::Error) -> AgentError {
        AgentError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// What a subscription brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notification {
    /// An incoming message (or a failure, or news of a key).
    Message,
    /// A message another client of the agent sent (for subscribers that asked).
    Sent,
}

/// A result as its two forms: the JSON without `lines`, and the lines.
fn split_lines(mut json: Value) -> Shown {
    let text = json
        .as_object_mut()
        .and_then(|o| o.remove("lines"))
        .and_then(|l| serde_json::from_value::<Vec<String>>(l).ok())
        .unwrap_or_default();
    Shown { json, text }
}

/// The running agent of `home`, or an error saying none runs.
async fn running(home: &Home) -> Result<Agent, AgentError> {
    Agent::find(home)
        .await?
        .ok_or_else(|| AgentError::NotRunning(socket_path(home)))
}

/// `hush agent lock`.
pub(crate) async fn lock(home: &Home, out: Printer) -> crate::error::Result<()> {
    let mut agent = running(home).await?;
    let mut shown = agent.call("lock", serde_json::json!({})).await?;
    shown.text = vec!["the agent is locked: its store is closed and its keys out of memory; `hush agent unlock` to use it again".into()];
    out.show(&shown)
}

/// `hush agent unlock`: reads the store passphrase as every command does, and hands it over.
pub(crate) async fn unlock(home: &Home, out: Printer) -> crate::error::Result<()> {
    let mut agent = running(home).await?;
    let passphrase = home.read_store_passphrase()?;
    let mut shown = agent.call_unlock(&passphrase).await?;
    shown.text = vec!["the agent is unlocked".into()];
    out.show(&shown)
}
