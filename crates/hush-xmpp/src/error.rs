//! Errors of the XMPP layer, each saying what the user can do about it.

use core::fmt;

use thiserror::Error;
pub use xmpp_parsers::sasl::DefinedCondition as LoginCondition;
pub use xmpp_parsers::stanza_error::DefinedCondition;

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
    #[error(
        "the server rejected the login of {jid}: {} (check the password)",
        login_condition(condition)
    )]
    LoginRejected {
        /// The account.
        jid: String,
        /// The SASL failure condition (RFC 6120 §6.5).
        condition: LoginCondition,
    },
    /// The server offers no login mechanism this client accepts on this connection.
    #[error(
        "{server} offers no login mechanism Hush accepts on this connection (does it require TLS?)"
    )]
    NoLoginMechanism {
        /// Where we tried to connect.
        server: String,
    },
    /// No connection to the server could be made.
    #[error("cannot connect to {server}: {}", connect_reason(.source))]
    Unreachable {
        /// Where we tried to connect.
        server: String,
        /// The connection, DNS, TLS or protocol error.
        source: tokio_xmpp::Error,
    },
    /// The server ended the stream.
    #[error("the server closed the connection: {0}")]
    Disconnected(Disconnect),
    /// Plaintext connections are only allowed to loopback addresses.
    #[error("refusing an unencrypted connection to {0}: unencrypted connections are only allowed to 127.0.0.0/8 and ::1")]
    InsecureNotLoopback(String),
    /// A JID that does not parse.
    #[error("invalid JID `{0}`")]
    BadJid(String),
    /// A stanza the XMPP library does not take (a bug: the engine builds every stanza).
    #[error("cannot send a message to {to}: {source}")]
    Unsendable {
        /// The addressee.
        to: String,
        /// What the XMPP library objected to.
        source: Box<xmpp_parsers::FromElementError>,
    },
    /// A message sent in clear came back from the server as undeliverable (an account that
    /// does not exist, say). It is in history as sent.
    #[error("the server could not deliver the message to {to}: {condition} (does the account exist?); history marks it as not delivered")]
    Undeliverable {
        /// The addressee.
        to: String,
        /// The server's error condition.
        condition: String,
    },
    /// Published attestations that do not parse, or do not vouch.
    #[error("attestation: {0}")]
    Attestation(#[from] hush_attest::AttestError),
    /// A comparison of short authentication strings that cannot go on.
    #[error("the comparison of short authentication strings failed: {0}; nothing was verified")]
    Comparison(#[from] hush_proto::sas::SasError),
    /// A comparison of short authentication strings with a device that cannot be reached.
    #[error("device {device} of {jid} cannot be compared with: it has no OMEMO 2 session or bundle we can use (comparisons need OMEMO 2), or you distrusted it (`hush devices {jid}`)")]
    CannotCompare {
        /// The account.
        jid: String,
        /// The device.
        device: u32,
    },
    /// A direct message to a joined room's JID.
    #[error("{0} is a room: send to it with --muc (a direct message there would be encrypted for the room service)")]
    IsARoom(String),
    /// A room this account has not joined.
    #[error("{0} is not a room this account joined (hush join ROOM)")]
    NotJoined(String),
    /// The room would not let us in.
    #[error("{room} refused to let this account in ({condition}): a members-only room admits only the accounts its owners or admins made members")]
    RoomRefused {
        /// The room.
        room: String,
        /// The room's error condition.
        condition: String,
    },
    /// The message would make a stanza larger than servers take: nothing was committed or
    /// sent. (Prosody answers a larger one by closing the connection.)
    #[error("the message would be a stanza of {bytes} bytes, and servers refuse stanzas over {limit} bytes by default (Prosody, ejabberd); nothing was sent: send a shorter text")]
    TooBig {
        /// The stanza's size.
        bytes: usize,
        /// The most we send.
        limit: usize,
    },
    /// The server answered a request with an error.
    #[error("the server refused {request}: {}", condition_name(condition))]
    Refused {
        /// The request.
        request: Request,
        /// The stanza error condition (RFC 6120 §8.3.3).
        condition: DefinedCondition,
    },
    /// The server has no PEP, where OMEMO keys are published.
    #[error("{0} does not offer PEP (XEP-0163), where OMEMO publishes its keys; ask the server's operator to enable it")]
    NoPep(String),
    /// The server did not answer a request in time.
    #[error("no answer to {0} in time")]
    Timeout(Request),
    /// The server answered a request with something xmpp-parsers cannot read: a required part
    /// missing or invalid (unknown extra content is ignored, not an error).
    #[error("the server's answer to {request} cannot be read: {source}")]
    Unreadable {
        /// What was asked.
        request: Request,
        /// What is wrong with the answer.
        #[source]
        source: xso::error::Error,
    },
    /// A file could not be shared or fetched.
    #[error(transparent)]
    Transfer(#[from] crate::transfer::TransferError),
    /// A contact publishes nothing we can read on its OMEMO nodes.
    #[error("{jid} has published no {node} we can read; a presence subscription may be needed")]
    NothingPublished {
        /// The contact.
        jid: String,
        /// The node.
        node: String,
    },
    /// Another device of the account already uses this device id (XEP-0384: check for
    /// collisions before announcing); nothing was published.
    #[error("device id {0} is already used by another device of this account (its published keys differ); nothing was published — set the device up again to draw a new id")]
    DeviceIdTaken(u32),
    /// A device cannot remove itself from the device list.
    #[error("device {0} is this device; run the removal from another device (or stop using this one first)")]
    RemoveSelf(u32),
    /// The send was refused: nothing was sent.
    #[error("nothing was sent to {jid}: {refusal}")]
    NotSent {
        /// The contact.
        jid: String,
        /// Why.
        refusal: hush_engine::Refusal,
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
    ArchiveMisbehaves(ArchiveFault),
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

/// Why a connection failed, in words: an I/O error without tokio-xmpp's "I/O error:" in
/// front (connection refused, a DNS answer, every server tried).
pub(crate) fn connect_reason(e: &tokio_xmpp::Error) -> String {
    match e {
        tokio_xmpp::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, XmppError>;

impl From<hush_engine::EngineError> for XmppError {
    fn from(e: hush_engine::EngineError) -> Self {
        use hush_engine::EngineError as E;
        match e {
            E::NotSent { jid, refusal } => Self::NotSent { jid, refusal },
            E::DeviceListTooLong { jid, count } => Self::DeviceListTooLong { jid, count },
            E::Store(e) => Self::Store(e),
            E::Protocol(e) => Self::Protocol(e),
            E::RemoveSelf(id) => Self::RemoveSelf(id),
            E::ArchiveMisbehaves(why) => Self::ArchiveMisbehaves(ArchiveFault::Engine(why)),
            other => Self::Engine(other),
        }
    }
}

/// A request this client makes of a server, as errors name it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Enabling Carbons (XEP-0280).
    EnableCarbons,
    /// Publishing an item on one of our PEP nodes.
    Publish {
        /// The node.
        node: String,
    },
    /// Reconfiguring one of our PEP nodes.
    Configure {
        /// The node.
        node: String,
    },
    /// Fetching the items of a contact's PEP node.
    Fetch {
        /// The node.
        node: String,
        /// Whose.
        jid: String,
    },
    /// A query of our archive (XEP-0313).
    ArchiveQuery,
    /// A ping (XEP-0199), to learn that what was sent before arrived.
    Ping,
    /// Reading or changing the roster (RFC 6121).
    Roster,
    /// Writing a stanza to the connection.
    Send,
    /// Entering a room (XEP-0045).
    JoinRoom {
        /// The room.
        room: String,
    },
    /// Configuring a room we created.
    ConfigureRoom {
        /// The room.
        room: String,
    },
    /// Asking a room what it is (disco#info).
    RoomInfo {
        /// The room.
        room: String,
    },
    /// Reading a room's member, admin or owner list.
    RoomMembers {
        /// The room.
        room: String,
        /// Which list.
        affiliation: &'static str,
    },
    /// Granting or taking away an affiliation with a room.
    ChangeAffiliation {
        /// The room.
        room: String,
        /// Whose.
        jid: String,
    },
    /// Looking for the server's HTTP upload service (disco#items, disco#info).
    FindUploadService,
    /// Asking the upload service for a slot (XEP-0363).
    UploadSlot {
        /// The service.
        service: String,
    },
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnableCarbons => f.write_str("enabling Carbons"),
            Self::Publish { node } => write!(f, "publishing {node}"),
            Self::Configure { node } => write!(f, "configuring {node}"),
            Self::Fetch { node, jid } => write!(f, "fetching {node} of {jid}"),
            Self::ArchiveQuery => f.write_str("the archive query"),
            Self::Ping => f.write_str("a ping"),
            Self::Roster => f.write_str("the roster request"),
            Self::Send => f.write_str("sending (is the connection down?)"),
            Self::JoinRoom { room } => write!(f, "entering {room}"),
            Self::ConfigureRoom { room } => write!(f, "configuring {room}"),
            Self::RoomInfo { room } => write!(f, "asking {room} what it is"),
            Self::RoomMembers { room, affiliation } => {
                write!(f, "reading the {affiliation} list of {room}")
            }
            Self::ChangeAffiliation { room, jid } => {
                write!(f, "changing {jid}'s affiliation with {room}")
            }
            Self::FindUploadService => f.write_str("looking for the server's upload service"),
            Self::UploadSlot { service } => write!(f, "asking {service} for an upload slot"),
        }
    }
}

/// How the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The login was abandoned before it finished.
    LoginAbandoned,
    /// The stream ended while logging in.
    DuringLogin,
    /// The stream ended.
    StreamEnded,
    /// The stream dropped a stanza before writing it.
    StanzaDropped,
    /// The connection was lost and the session could not be resumed: what was sent just
    /// before may not have arrived.
    NotResumed,
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LoginAbandoned => "login abandoned",
            Self::DuringLogin => "stream ended during login",
            Self::StreamEnded => "stream ended",
            Self::StanzaDropped => "the stream dropped a stanza before sending it",
            Self::NotResumed => {
                "the connection was lost and the session could not be resumed; what was sent \
                 just before may not have arrived"
            }
        })
    }
}

/// How an archive misbehaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFault {
    /// One page held more results or bytes than a page of its size can.
    PageOverflow {
        /// Results the page may hold.
        results: usize,
        /// Bytes the page may hold.
        bytes: usize,
        /// The page size asked for.
        page: usize,
    },
    /// The `<fin/>` ending a page could not be read (XEP-0313 §4.3: it carries the page's
    /// RSM `<set/>`), so where the next page starts is unknown.
    UnreadableEnd,
    /// What the account engine found (paging that does not advance).
    Engine(&'static str),
}

impl fmt::Display for ArchiveFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PageOverflow {
                results,
                bytes,
                page,
            } => write!(
                f,
                "more than {results} results or {} MiB for one page of {page}",
                bytes >> 20
            ),
            Self::UnreadableEnd => f.write_str("the end of a page of results cannot be read"),
            Self::Engine(why) => f.write_str(why),
        }
    }
}

/// The name RFC 6120 gives a stanza error condition (`item-not-found`).
pub fn condition_name(condition: &DefinedCondition) -> String {
    element_name(condition)
}

/// The name RFC 6120 gives a SASL failure condition (`not-authorized`).
pub fn login_condition(condition: &LoginCondition) -> String {
    element_name(condition)
}

fn element_name<T: xso::AsXml>(value: &T) -> String {
    match xso::transform::<xmpp_parsers::minidom::Element, T>(value) {
        Ok(el) => el.name().to_owned(),
        Err(_) => "an unnamed condition".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_shown_by_their_rfc_names() {
        assert_eq!(
            condition_name(&DefinedCondition::ItemNotFound),
            "item-not-found"
        );
        assert_eq!(
            login_condition(&LoginCondition::NotAuthorized),
            "not-authorized"
        );
        let refused = XmppError::Refused {
            request: Request::ArchiveQuery,
            condition: DefinedCondition::Forbidden,
        };
        assert_eq!(
            refused.to_string(),
            "the server refused the archive query: forbidden"
        );
    }
}
