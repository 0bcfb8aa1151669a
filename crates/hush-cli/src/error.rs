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
    /// A verification URI too long for a QR code (an account with very many verified devices).
    #[error("{0}; `hush fingerprint` without --qr gives the URI as text")]
    Qr(#[from] crate::qr::QrError),
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
    /// A local file could not be read (the file to send).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Not an `aesgcm://` link (`hush fetch`).
    #[error("{0}")]
    BadLink(#[source] hush_files::FileError),
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
    #[error("no device `{which}` of {jid}: none we hold a session with, none it publishes (`hush devices {jid}` lists those we know)")]
    NoSuchDevice {
        /// The contact.
        jid: String,
        /// The device id or fingerprint asked for.
        which: String,
    },
    /// `hush trust` / `distrust` with a fingerprint no device we know has.
    #[error("no device of {jid} has the fingerprint {fingerprint}, neither one we hold a session with nor one it publishes; nothing was changed (`hush devices {jid}` lists the fingerprints we know; compare theirs again)")]
    NoSuchFingerprint {
        /// The contact.
        jid: String,
        /// The fingerprint asked for.
        fingerprint: String,
    },
    /// An attestation that does not parse or does not hold.
    #[error("{0}")]
    Attest(#[from] hush_attest::AttestError),
    /// `hush attest publish` without a signature.
    #[error("`hush attest publish` needs --openpgp SIG.asc, or --x509-chain CHAIN.pem with --x509-signature SIG (run `hush attest statement` for what to sign)")]
    AttestUsage,
    /// `hush attest check` before any anchor was added.
    #[error("no OpenPGP key or certification authority is trusted to vouch yet: add one with `hush attest anchor --openpgp KEY.asc` or `--x509 CA.pem`")]
    NoAnchors,
    /// A file that should be text is not.
    #[error("{} is not text (an armored OpenPGP file was expected)", .0.display())]
    NotText(std::path::PathBuf),
    /// `hush sas` without what it needs.
    #[error("`hush sas JID DEVICE` starts a comparison; `hush sas --wait [JID]` waits for one")]
    SasUsage,
    /// No yes or no where one was asked for.
    #[error("no answer (yes or no) on standard input; nothing was verified")]
    NoAnswer,
    /// An OpenPGP key added again without the revocation the kept copy carries.
    #[error("the OpenPGP key {0} kept here is revoked, and this copy does not say so (an older export?): it was not replaced")]
    RevocationKept(String),
    /// `hush attest anchor --remove` with an id no anchor has.
    #[error("no trusted key or authority has the id {0} (`hush attest anchors` lists them)")]
    NoSuchAnchor(String),
    /// `hush attest anchor --remove` with a prefix several anchors share.
    #[error("several trusted keys or authorities start with {0}: give more of the id")]
    AmbiguousAnchor(String),
    /// The other device ended the comparison (or it broke off): nothing was verified.
    #[error("the comparison ended: {0}; nothing was verified")]
    ComparisonEnded(String),
    /// A comparison request the agent cannot serve (none waits, several do, no words yet).
    #[error("{0}")]
    Desk(#[from] crate::agent::sas::DeskError),
    /// The words of a comparison differ: someone may be in between.
    #[error("the words differ: device {device} of {jid} is NOT verified, and the other device was told. Someone may be between the two devices (the server can add a device of its own): compare fingerprints by another way before trusting it")]
    WordsDiffer {
        /// The account compared with.
        jid: String,
        /// Its device.
        device: u32,
    },
    /// "No" to a comparison the agent could not close as a mismatch (it had ended already, or
    /// telling the other device failed): nothing is verified all the same.
    #[error("the words differ: device {device} of {jid} is NOT verified; the other device may not have been told ({reason}). Someone may be between the two devices (the server can add a device of its own): compare fingerprints by another way before trusting it")]
    WordsDifferUntold {
        /// The account compared with.
        jid: String,
        /// Its device.
        device: u32,
        /// What the agent said.
        reason: String,
    },
    /// A comparison that did not finish in time.
    #[error("the comparison did not finish in time (the other device did not answer); nothing was verified")]
    ComparisonTimedOut,
    /// `hush config --trust-model account` without a JID.
    #[error("`--trust-model account` sets a contact back to the account's model: name the contact (`hush config JID --trust-model account`), or give the account a model (btbv, tofu, manual)")]
    AccountTrustModel,
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
    /// A message went out, but some devices it was meant for could not be encrypted to (the
    /// report on standard output names them).
    #[error("sent, but not to {missed} of the {meant} devices it was meant for (see the warnings above)")]
    Partial {
        /// Devices that could not be reached.
        missed: usize,
        /// Devices it was meant for.
        meant: usize,
    },
    /// Standard output could not be written (closed by the reader, or a full disk).
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    /// A message holding a character XML cannot carry.
    #[error("the message holds U+{code:04X} (a control character) at character {at}, which XMPP cannot carry; nothing was sent: remove it and send again")]
    NotXmlText {
        /// The character's code point.
        code: u32,
        /// Where, counting characters from 1.
        at: usize,
    },
    /// A note to self, with no other device of ours to read it.
    #[error("nothing was sent: {0} is this account, and it has no other device to read a note to self (`hush devices` lists ours)")]
    NoOtherDevice(String),
    /// No OMEMO device of a contact whose presence we do not see: servers often show device
    /// lists to presence subscribers only.
    #[error("nothing was sent to {0}: no OMEMO device of {0} could be read, and nothing goes in clear unless you ask. You do not see {0}'s presence, and servers often show device lists only to those who do: `hush contacts add {0}` asks for it, then send again; to send in clear, ask for it (`--plaintext`)")]
    NoDeviceUnsubscribed(String),
    /// A contact who lists no OMEMO device, although this device holds sessions with devices
    /// of theirs (that wrote to us unlisted, or that they listed before): Hush encrypts only
    /// to the devices a contact lists.
    #[error("nothing was sent to {jid}: {jid} lists no OMEMO device, although this device holds a session with their {devices} (one that wrote to you, or that they listed before); Hush encrypts only to the devices a contact lists, and nothing goes in clear unless you ask. Their client may not publish its list (Profanity 0.13 does not, on a new account): ask them to start OMEMO again, or to use a client that publishes it")]
    UnlistedWriters {
        /// The contact.
        jid: String,
        /// Those devices, in words ("device 162314076", "devices 1 and 2").
        devices: String,
    },
    /// `hush chat` without a terminal.
    #[error("`hush chat` needs a terminal on standard input and output; scripts use `hush recv --follow` and `hush send`, or the agent's JSON-RPC API")]
    NotATerminal,
    /// Drawing on the terminal, or reading its keys, failed.
    #[error("the terminal failed: {0}")]
    Terminal(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The demo did not go as written.
    #[cfg(feature = "demo")]
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
}

/// The reason a step failed, as `: REASON`, or nothing when there is none to give.
#[derive(Debug, Default)]
pub(crate) struct Because(pub(crate) Option<String>);

impl std::fmt::Display for Because {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(why) => write!(f, " ({why})"),
            None => Ok(()),
        }
    }
}

/// Why one device of a verification URI was not verified.
#[derive(Debug, Error)]
pub(crate) enum Unverified {
    /// No session with it yet: no key to compare (and why its published keys could not be
    /// read, when they were asked for).
    #[error("device {0}: no session with it, and its published keys could not be read{1}")]
    NoSession(u32, Because),
    /// A key the URI names (without a device) is none of the contact's we know or it
    /// publishes.
    #[error(
        "key {0}: none of the contact's devices (with a session or published) has it; not verified"
    )]
    UnknownKey(String),
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

/// What kind of failure an error is: the exit status, and `"kind"` in the JSON error line
/// (`--json`), so that a script can tell what to do without reading the words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Anything else (a damaged store, the disk, a server misbehaving): exit 1.
    Failed,
    /// The command line or its arguments (clap's own errors too): exit 2.
    Usage,
    /// The XMPP password or the store passphrase was not accepted, or not given: exit 3.
    Authentication,
    /// The server could not be reached, or the connection was lost: exit 4.
    Network,
    /// Nothing was sent because the encryption policy, trust or the contact's devices did not
    /// allow it: exit 5.
    Refused,
    /// The message went out, but not to every device of the contact it was meant for: exit 6.
    Partial,
}

impl Kind {
    /// The process's exit status.
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Authentication => 3,
            Kind::Network => 4,
            Kind::Refused => 5,
            Kind::Partial => 6,
        }
    }

    /// The kind with this [`Kind::name`] (`Failed` for a name it does not know).
    pub(crate) fn named(name: &str) -> Self {
        [
            Kind::Usage,
            Kind::Authentication,
            Kind::Network,
            Kind::Refused,
            Kind::Partial,
        ]
        .into_iter()
        .find(|k| k.name() == name)
        .unwrap_or(Kind::Failed)
    }

    /// Its name in JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Usage => "usage",
            Kind::Authentication => "authentication",
            Kind::Network => "network",
            Kind::Refused => "refused",
            Kind::Partial => "partial",
        }
    }
}

impl CliError {
    /// What kind of failure this is.
    pub(crate) fn kind(&self) -> Kind {
        use hush_xmpp::XmppError as X;
        match self {
            CliError::BadJid(_)
            | CliError::FullJid { .. }
            | CliError::EmptyMessage
            | CliError::TextAndPassphraseOnStdin
            | CliError::BadDnsServer { .. }
            | CliError::StdinTwice
            | CliError::PassphraseUnwanted
            | CliError::BadUri(_)
            | CliError::AccountTrustModel
            | CliError::NoAnswer
            | CliError::SasUsage
            | CliError::Desk(_)
            | CliError::NoSuchAnchor(_)
            | CliError::RevocationKept(_)
            | CliError::AmbiguousAnchor(_)
            | CliError::Attest(_)
            | CliError::AttestUsage
            | CliError::NoAnchors
            | CliError::NotText(_)
            | CliError::Qr(_)
            | CliError::NoSessionToReset { .. }
            | CliError::NotListed(_)
            | CliError::NoSuchDevice { .. }
            | CliError::NoSuchFingerprint { .. }
            | CliError::NoAccount
            | CliError::HomeInUse(_)
            | CliError::NotATerminal
            | CliError::NotXmlText { .. }
            | CliError::File { .. }
            | CliError::BadLink(_) => Kind::Usage,
            CliError::WordsDiffer { .. }
            | CliError::WordsDifferUntold { .. }
            | CliError::ComparisonEnded(_) => Kind::Refused,
            CliError::ComparisonTimedOut => Kind::Network,
            CliError::NoPassword | CliError::UnsetVariable(_) => Kind::Authentication,
            CliError::Home(h) | CliError::NewPassphrase(h) => match h {
                HomeError::WrongPassphrase(_)
                | HomeError::NoPassphrase { .. }
                | HomeError::EmptyPassphrase
                | HomeError::PassphrasesDiffer
                | HomeError::UnsetVariable(_) => Kind::Authentication,
                HomeError::NoDirectory
                | HomeError::NoAccount(_)
                | HomeError::NotADirectory(_)
                | HomeError::Busy(_) => Kind::Usage,
                _ => Kind::Failed,
            },
            CliError::Xmpp(x) => match x {
                X::LoginRejected { .. } => Kind::Authentication,
                X::NotSent { .. } | X::NoPep(_) | X::RoomRefused { .. } => Kind::Refused,
                X::BadJid(_)
                | X::InsecureNotLoopback(_)
                | X::RemoveSelf(_)
                | X::TooBig { .. }
                | X::NotJoined(_)
                | X::IsARoom(_) => Kind::Usage,
                X::Transfer(t) => match t {
                    hush_xmpp::TransferError::NoService { .. }
                    | hush_xmpp::TransferError::TooLarge { .. }
                    | hush_xmpp::TransferError::NotEncrypted { .. }
                    | hush_xmpp::TransferError::NotHttps { .. } => Kind::Refused,
                    hush_xmpp::TransferError::Http { .. }
                    | hush_xmpp::TransferError::Status { .. } => Kind::Network,
                    hush_xmpp::TransferError::Io { .. }
                    | hush_xmpp::TransferError::Changed { .. } => Kind::Usage,
                    _ => Kind::Failed,
                },
                X::DeviceListTooLong { .. } => Kind::Refused,
                x if x.is_connection() => Kind::Network,
                X::ConnectTimeout { .. } | X::NoLoginMechanism { .. } => Kind::Network,
                _ => Kind::Failed,
            },
            CliError::Agent(crate::agent::AgentError::Failed { code, kind, .. }) => {
                // The agent's errors are worded already; their kind travels with them.
                match (kind.as_deref(), *code) {
                    (Some(name), _) => Kind::named(name),
                    (None, -32602) => Kind::Usage,
                    _ => Kind::Failed,
                }
            }
            CliError::Agent(crate::agent::AgentError::Locked) => Kind::Authentication,
            CliError::Agent(
                crate::agent::AgentError::NotRunning(_)
                | crate::agent::AgentError::PathTooLong(_)
                | crate::agent::AgentError::NoTerminalToAsk(_),
            ) => Kind::Usage,
            CliError::Agent(_) => Kind::Failed,
            CliError::Partial { .. } => Kind::Partial,
            CliError::NoOtherDevice(_)
            | CliError::UnlistedWriters { .. }
            | CliError::NoDeviceUnsubscribed(_) => Kind::Refused,
            _ => Kind::Failed,
        }
    }
}

/// Shorthand for the results of commands.
pub(crate) type Result<T> = core::result::Result<T, CliError>;
