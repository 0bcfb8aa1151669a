//! `hush agent`: one process per account that holds the store (and so the private keys) and
//! the connection, and serves the other `hush` commands and scripts on a Unix socket in the
//! home directory, like ssh-agent serves ssh.
//!
//! - [`rpc`]: the protocol, JSON-RPC 2.0 with one object per line.
//! - [`server`]: the agent itself: the account loop (the only code that touches the
//!   connection and the store) and the socket's connections, which hand it jobs.
//! - [`client`]: how the other commands find the agent and call it.
//! - [`sas`]: comparisons of short authentication strings run by the account loop.
//!
//! Only processes of the agent's own user may talk to it: the socket is mode 0600 in the
//! home directory (itself 0700), and every connection's peer credentials are checked.

pub(crate) mod client;
pub(crate) mod confirm;
pub(crate) mod rpc;
pub(crate) mod sas;
pub(crate) mod server;

use std::path::PathBuf;

use thiserror::Error;

use crate::home::Home;

/// The socket's name in the home directory.
const SOCKET: &str = "agent.sock";

/// The longest socket path the system takes (`sun_path` on Linux holds 108 bytes, with the
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the agent of `home` listens.
pub(crate) fn socket_path(home: &Home) -> PathBuf {
    home.dir().join(SOCKET)
}

/// What can go wrong between a command and the agent.
#[derive(Debug, Error)]
pub(crate) enum AgentError {
    /// The socket path is too long for a Unix socket.
    #[error("the agent's socket {} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket path may have; use a shorter --home", .0.display())]
    PathTooLong(PathBuf),
    /// Listening on the socket failed.
    #[error("cannot listen on {}: {source}", .path.display())]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `hush agent --confirm` without a terminal to ask on.
    #[error("`hush agent --confirm` asks on its terminal before serving a new connection, and it has none ({0}); run it in a terminal")]
    NoTerminalToAsk(std::io::Error),
    /// `hush agent lock`/`unlock` with no agent running.
    #[error("no agent runs for this home (nobody listens on {}); start one with `hush agent`", .0.display())]
    NotRunning(PathBuf),
    /// The agent is locked (`hush agent lock`).
    #[error("the agent is locked: `hush agent unlock` gives it the passphrase again")]
    Locked,
    /// Talking to a running agent failed.
    #[error("talking to the agent at {}: {source}", .path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The agent closed the connection before answering.
    #[error("the agent stopped before answering: what was asked may or may not have been done (a message it committed is sent when the account next connects; `hush history JID` shows it)")]
    Closed,
    /// The agent sent something that is not JSON-RPC.
    #[error("the agent answered something that is not a JSON-RPC response")]
    BadAnswer,
    /// The agent answered with an error: the command failed there.
    #[error("{message}")]
    Failed {
        /// The JSON-RPC error code.
        code: i64,
        /// The error, as `hush` would print it.
        message: String,
        /// Its kind, as the agent named it (see [`crate::error::Kind`]).
        kind: Option<String>,
    },
}
