//! Every way a `hush` command can fail, as one typed value; `main` prints it as one
//! `error: …` line. Errors of the layers below keep their type here; their advice (the command
//! lines to run) is added in [`crate::advice`].

use std::path::PathBuf;

use thiserror::Error;

use crate::home::HomeError;

/// Why a command failed.
#[derive(Debug, Error)]
pub(crate) enum CliError {
    /// The home directory.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The store.
    #[error(transparent)]
    Store(#[from] hush_store::StoreError),
    /// The agent, or talking to it.
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// The protocol core (making a device's keys).
    #[error(transparent)]
    Protocol(#[from] hush_proto::ProtoError),
    /// The connection or a send, with what to do about it.
    #[error("{}", crate::advice::xmpp(.0))]
    Xmpp(#[from] hush_xmpp::XmppError),
    /// Reading the store for `hush status`.
    #[error(transparent)]
    Engine(#[from] hush_engine::EngineError),
    /// A JID that does not parse.
    #[error("`{0}` is not a valid JID")]
    BadJid(String),
    /// A full JID (with a resource) where an account is meant.
    #[error("`{full}` names one client of the account; use the bare JID `{bare}`")]
    FullJid {
        /// What was given.
        full: String,
        /// The account's bare JID.
        bare: String,
    },
    /// The DNS server variable is not `IP:PORT`.
    #[error("{var}={value:?} is not a DNS server address (IP:PORT, e.g. 127.0.0.1:53)")]
    BadDnsServer {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
    },
    /// An empty message (or one of white space only).
    #[error("the message is empty; nothing was sent")]
    EmptyMessage,
    /// The message text and the passphrase both asked from standard input.
    #[error("`-` reads the message from standard input, which --passphrase-stdin reads too; give the passphrase with an environment variable")]
    TextAndPassphraseOnStdin,
    /// Reading the message from standard input failed.
    #[error("reading the message from standard input: {0}")]
    ReadMessage(std::io::Error),
    /// `hush session reset JID DEVICE` for a device without a session.
    #[error("no session with device {device} of {jid}; nothing was reset (`hush devices {jid}` lists the sessions)")]
    NoSessionToReset {
        /// The contact.
        jid: String,
        /// The device asked for.
        device: u32,
    },
    /// `hush devices --remove` named devices none of our lists holds.
    #[error("none of the devices {0:?} is on our device lists; nothing was changed (`hush devices` lists them)")]
    NotListed(Vec<u32>),
    /// The home holds no account.
    #[error("no account here: run `hush init` first")]
    NoAccount,
    /// `hush init` into a home that has one.
    #[error("{} already holds an account; use another --home", .0.display())]
    HomeInUse(PathBuf),
    /// Both secrets asked from standard input.
    #[error("--password-stdin and --passphrase-stdin cannot both read standard input; give one of them with an environment variable")]
    StdinTwice,
    /// A passphrase given for a store that has none.
    #[error("--unencrypted-store keeps the store without a passphrase; do not give one")]
    PassphraseUnwanted,
    /// No way given to read the XMPP password.
    #[error("give the password with --password-stdin or --password-env NAME")]
    NoPassword,
    /// Reading the XMPP password failed.
    #[error("reading the password: {0}")]
    ReadPassword(std::io::Error),
    /// The environment variable named for the password is not set.
    #[error("environment variable {0} is not set")]
    UnsetVariable(String),
    /// The passphrase of a new store could not be had.
    #[error("{0} (or opt out with --unencrypted-store)")]
    NewPassphrase(HomeError),
    /// `hush trust` / `distrust` named no device we hold a session with.
    #[error("no device `{which}` of {jid} with a session here (exchange a message first, then check `hush devices {jid}`)")]
    NoSuchDevice {
        /// The contact.
        jid: String,
        /// The device id or fingerprint asked for.
        which: String,
    },
    /// Not a verification URI.
    #[error("`{0}` is not an OMEMO verification URI (xmpp:JID?omemo-sid-DEVICE=FINGERPRINT)")]
    BadUri(String),
    /// A verification URI with devices that could not be verified.
    #[error("{jid}: {}{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), verified_note(verified))]
    NotVerified {
        /// The contact.
        jid: String,
        /// Per device, why not.
        problems: Vec<Unverified>,
        /// The devices that were verified nevertheless.
        verified: Vec<u32>,
    },
    /// Standard output could not be written (closed by the reader, or a full disk).
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The demo did not go as written.
    #[cfg(feature = "demo")]
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
}

/// Why one device of a verification URI was not verified.
#[derive(Debug, Error)]
pub(crate) enum Unverified {
    /// No session with it yet: no key to compare.
    #[error("device {0}: no session yet (exchange a message first)")]
    NoSession(u32),
    /// The key we hold is not the one in the URI.
    #[error("device {device}: FINGERPRINT MISMATCH — we hold {held}, the URI says {uri}; not verified (someone may be intercepting)")]
    Mismatch {
        /// The device.
        device: u32,
        /// The fingerprint of the key we hold.
        held: String,
        /// The key the URI names.
        uri: String,
    },
}

fn verified_note(verified: &[u32]) -> String {
    if verified.is_empty() {
        String::new()
    } else {
        format!(" (verified: {verified:?})")
    }
}

/// Shorthand for the results of commands.
pub(crate) type Result<T> = core::result::Result<T, CliError>;
