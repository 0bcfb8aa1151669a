//! Errors of the XMPP layer, each saying what the user can do about it.

use thiserror::Error;

/// Everything that can go wrong in `hush-xmpp`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum XmppError {
    /// No session came up in time: wrong address, wrong password, or a TLS problem.
    #[error("could not log in to {server} as {jid} within {seconds} s (check the address, the password and TLS)")]
    ConnectTimeout {
        /// The account.
        jid: String,
        /// Where we tried to connect.
        server: String,
        /// How long we waited.
        seconds: u64,
    },
    /// The server refused our credentials.
    #[error("the server rejected the login of {jid}: {why} (check the password)")]
    LoginRejected {
        /// The account.
        jid: String,
        /// The SASL failure.
        why: String,
    },
    /// No connection to the server could be made.
    #[error("cannot connect to {server}: {why}")]
    Unreachable {
        /// Where we tried to connect.
        server: String,
        /// The connection, DNS, TLS or protocol error.
        why: String,
    },
    /// The server ended the stream.
    #[error("the server closed the connection: {0}")]
    Disconnected(String),
    /// Plaintext connections are only allowed to loopback addresses.
    #[error("refusing an unencrypted connection to {0}: --insecure-loopback only allows 127.0.0.0/8 and ::1")]
    InsecureNotLoopback(String),
    /// A JID that does not parse.
    #[error("invalid JID `{0}`")]
    BadJid(String),
    /// A stanza the XMPP library does not take (a bug: the engine builds every stanza).
    #[error("cannot send a message to {to}: {why}")]
    Unsendable {
        /// The addressee.
        to: String,
        /// What the XMPP library objected to.
        why: String,
    },
    /// The server answered a request with an error.
    #[error("the server refused {what}: {condition}")]
    Refused {
        /// The request.
        what: String,
        /// The XMPP error condition.
        condition: String,
    },
    /// The server has no PEP, where OMEMO keys are published.
    #[error("{0} does not offer PEP (XEP-0163), where OMEMO publishes its keys; ask the server's operator to enable it")]
    NoPep(String),
    /// The server did not answer a request in time.
    #[error("no answer to {0} in time")]
    Timeout(String),
    /// A contact publishes nothing we can read on its OMEMO nodes.
    #[error("{jid} has published no {node} we can read; a presence subscription may be needed")]
    NothingPublished {
        /// The contact.
        jid: String,
        /// The node.
        node: String,
    },
    /// No device of the contact could be encrypted to: nothing was sent.
    #[error("cannot encrypt for {jid} ({why}); nothing was sent")]
    CannotEncrypt {
        /// The contact.
        jid: String,
        /// Per device, why not.
        why: String,
    },
    /// Another device of the account already uses this device id (XEP-0384: check for
    /// collisions before announcing); nothing was published.
    #[error("device id {0} is already used by another device of this account (its published keys differ); nothing was published — set the device up again to draw a new id")]
    DeviceIdTaken(u32),
    /// A device cannot remove itself from the device list.
    #[error("device {0} is this device; run the removal from another device (or stop using this one first)")]
    RemoveSelf(u32),
    /// The send policy refused: nothing was sent.
    #[error("nothing was sent to {jid}: missing {missing}{}", if why.is_empty() { String::new() } else { format!(" ({why})") })]
    NotSent {
        /// The contact.
        jid: String,
        /// The property that could not be provided, and what to do.
        missing: String,
        /// Per device, what stood in the way.
        why: String,
    },
    /// The local store failed.
    #[error("store: {0}")]
    Store(#[from] hush_store::StoreError),
    /// The store holds no account yet.
    #[error("this store holds no account yet")]
    NoAccount,
    /// The published data is not valid OMEMO data.
    #[error("{0}")]
    Protocol(#[from] hush_proto::ProtoError),
    /// The connection failed while sending.
    #[error("sending failed: {0}")]
    Io(#[from] std::io::Error),
    /// The archive no longer has the message a catch-up was to resume after (it expired, or
    /// the server lost it).
    #[error("the server's archive no longer has our resume point")]
    ArchiveLostPlace,
    /// A device list longer than any real account's: each device would cost a bundle fetch
    /// and a session, so the send is refused rather than fanned out.
    #[error("{jid}'s device list names {count} devices (at most 128 are accepted; is the server flooding it?); nothing was sent")]
    DeviceListTooLong {
        /// Whose list.
        jid: String,
        /// How many devices it named.
        count: usize,
    },
    /// The archive answered in a way no honest server does (pages overflowing, paging that
    /// does not advance); the catch-up stops instead of looping or growing without bound.
    #[error("the server's archive misbehaves: {0}")]
    ArchiveMisbehaves(String),
    /// One archive catch-up read more than Hush reads at once without the archive saying it
    /// is complete: an archive that never ends (a misbehaving server), or an honest one larger
    /// than one catch-up. What was read before is committed; the next catch-up goes on from
    /// there.
    #[error("the archive catch-up read {results} messages in {pages} pages without reaching the end of the archive; it stops here (what was read is kept) and goes on later")]
    ArchiveTooLong {
        /// Pages answered in this catch-up.
        pages: u32,
        /// Messages they held.
        results: usize,
    },
    /// Archive pages are read one query at a time.
    #[error("archive queries overlap: {0}")]
    ArchiveQueryOrder(&'static str),
    /// The account engine refused a step for a reason not listed above.
    #[error("{0}")]
    Engine(hush_engine::EngineError),
}

impl XmppError {
    /// True when the connection itself failed (closed, timed out, an I/O error): what was
    /// being sent may go later, on the next connection. Other errors are about one stanza.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Self::Disconnected(_) | Self::Timeout(_) | Self::Io(_) | Self::Unreachable { .. }
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, XmppError>;

impl From<hush_engine::EngineError> for XmppError {
    fn from(e: hush_engine::EngineError) -> Self {
        use hush_engine::EngineError as E;
        match e {
            E::NotSent { jid, missing, why } => Self::NotSent { jid, missing, why },
            E::DeviceListTooLong { jid, count } => Self::DeviceListTooLong { jid, count },
            E::Store(e) => Self::Store(e),
            E::Protocol(e) => Self::Protocol(e),
            E::RemoveSelf(id) => Self::RemoveSelf(id),
            E::ArchiveMisbehaves(why) => Self::ArchiveMisbehaves(why.into()),
            other => Self::Engine(other),
        }
    }
}
