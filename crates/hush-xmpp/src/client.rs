//! One logged-in XMPP session and the OMEMO operations on it.

use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use hush_engine::MessageStanza;
use hush_proto::{Bundle, DeviceList, Element, Suite};
use tokio::sync::oneshot;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::stanza_error::StanzaError;
use tokio_xmpp::stanzastream::{Event, StanzaStage, StanzaState, StanzaStream, StreamEvent};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{IqRequest, IqResponse, Stanza};
use xmpp_parsers::data_forms::{DataForm, DataFormType, Field};
use xmpp_parsers::disco::DiscoInfoQuery;
use xmpp_parsers::rsm::SetQuery;
use xmpp_parsers::{carbons, mam, ping::Ping};

use crate::disco;
use crate::error::{ArchiveFault, DefinedCondition, Disconnect, Request, Result, XmppError};
use crate::incoming::{classify, is_archive_result, Incoming};
use crate::login::{self, FirstLogin};
use crate::muc;
use crate::pep;
use crate::queue::BoundedQueue;
use crate::roster::{self, Contact};
use crate::upload;

/// Bounced messages remembered, at most.
const MAX_BOUNCES: usize = 64;

/// How long to wait for the server before giving up on a request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Device-list notifications kept between two reads.
const MAX_PENDING_LISTS: usize = 256;
/// A pushed device list heavier than this (labels and their signatures, mostly) is not kept:
/// 128 devices with ordinary labels weigh a fraction of it.
const MAX_LIST_BYTES: usize = 64 * 1024;
/// Depth of the stanza queues in each direction.
const QUEUE_DEPTH: usize = 64;
/// Live messages kept while an answer to a request is awaited, at most: this many, and this
/// many bytes. A server flooding us meanwhile would otherwise grow memory without bound; what
/// does not fit is dropped, and the catch-up that follows fetches it from the archive.
const MAX_QUEUED: usize = 1024;
const MAX_QUEUED_BYTES: usize = 4 << 20;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `host:port` of the server; `None` looks up the JID's domain.
    pub server: Option<String>,
    /// Allow an unencrypted connection, only to a loopback address (local test servers).
    pub insecure_loopback: bool,
    /// How long login may take.
    pub timeout: Duration,
    /// The DNS server to find the account's server with (`server` unset), instead of the
    /// system's resolver.
    pub dns: Option<std::net::SocketAddr>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            server: None,
            insecure_loopback: false,
            timeout: Duration::from_secs(30),
            dns: None,
        }
    }
}

/// What happened to the link since login, for status displays and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Times the connection was lost.
    pub drops: u32,
    /// Times the session was resumed without loss (XEP-0198).
    pub resumed: u32,
    /// Times the session had to be rebuilt, with catch-up from the archive.
    pub rebuilt: u32,
    /// Live messages dropped because more (or larger) ones arrived while an answer from the
    /// server was awaited than are kept meanwhile; the archive catch-up that follows fetches
    /// those the server archived.
    pub not_queued: u32,
}

/// A logged-in session.
pub struct XmppClient {
    /// The stanza stream, used unsplit: tokio-xmpp 6's `Client` splits it behind a mutex whose
    /// receive side returns `Pending` without a wakeup when the send side holds the lock, which
    /// intermittently froze delivery of incoming stanzas.
    stream: StanzaStream,
    jid: BareJid,
    /// Messages that arrived while we were waiting for something else (bounded: see
    /// [`MAX_QUEUED`]).
    pending: BoundedQueue<Incoming>,
    /// Messages were dropped from `pending` since the last [`Self::take_state_lost`]: the
    /// caller must catch up from the archive, like after a lost session.
    missed: bool,
    query_serial: u64,
    /// The link dropped and the server could not resume the session (XEP-0198): stanzas may
    /// have been lost, and Carbons and presence are gone. Cleared by [`Self::take_state_lost`].
    state_lost: bool,
    link: LinkStats,
    /// Device lists pushed by the server (PEP `+notify`), not yet taken.
    device_updates: Vec<(BareJid, DeviceList)>,
    /// `link.rebuilt` at the last successful flush.
    rebuilt_at_flush: u32,
    /// A random prefix for our request ids, so answers cannot be guessed ahead.
    id_prefix: String,
    /// Whether initial presence went out. It waits for the first archive catch-up: Prosody
    /// then does not push the offline copies of messages the archive already gave us.
    online: bool,
    /// The archive query in flight, if any, and the results read so far.
    archive: Option<ArchiveQuery>,
    /// What the current catch-up has read so far (see [`CatchUpSpent`]).
    catch_up: CatchUpSpent,
    /// The roster's JIDs and the requests for our presence from others.
    book: roster::Book,
    /// Messages of ours the server returned as undeliverable, as (id, condition), newest last,
    /// at most [`MAX_BOUNCES`]: a send that waits for the server can tell its message bounced.
    bounces: std::collections::VecDeque<(String, String)>,
    /// Requests for our presence not answered yet (they are answered between two reads, not
    /// while a request waits for its answer), at most [`roster::MAX_REQUESTS`].
    asking: Vec<BareJid>,
    /// The rooms joined or being joined (XEP-0045), with what their presences said.
    rooms: std::collections::BTreeMap<BareJid, muc::RoomState>,
    /// This device's id: of the elements a room message carries, the one with our key is read.
    device_id: u32,
}

/// An archive query (XEP-0313) sent and not yet answered.
struct ArchiveQuery {
    /// The archive asked: a room's (XEP-0045 with XEP-0313 §6), or our own account's.
    room: Option<BareJid>,
    /// The `queryid` its results carry.
    query_id: String,
    /// The IQ id its end (`<fin/>`) answers.
    iq_id: String,
    /// The results carrying something we read (OMEMO or a body).
    results: BoundedQueue<Incoming>,
    /// Every result for this query from our own account, read or not.
    seen: usize,
    /// The server sent more results than a page holds (the rest were dropped).
    overflowed: bool,
    /// Its answer, when it came while another request was awaited.
    answer: Option<IqResponse>,
    /// It asks for the archive's last messages only (not part of a catch-up).
    last_only: bool,
}

/// Results we ask for per archive page, and the most we keep for one, in count and in bytes
/// (a page of ordinary messages weighs a few hundred KiB): a server sending more is broken or
/// hostile, and would otherwise grow memory without bound.
const PAGE_SIZE: usize = 100;
const MAX_PAGE_RESULTS: usize = 2 * PAGE_SIZE;
const MAX_PAGE_BYTES: usize = 16 << 20;

/// The most one catch-up reads before it stops with [`XmppError::ArchiveTooLong`]: pages,
/// results and bytes. A catch-up lasts until a page says the archive is complete; a server
/// that never says so (pages forever, ids advancing; or losing our place again and again)
/// would otherwise keep the client reading, and the account collecting what it read, forever.
/// An honest archive larger than this is read in several catch-ups: each commits what it read
/// and the next starts after it.
const MAX_CATCH_UP_PAGES: u32 = 1000;
const MAX_CATCH_UP_RESULTS: usize = 20_000;
const MAX_CATCH_UP_BYTES: usize = 128 << 20;

/// What the current catch-up has read: archive pages answered (errors included, so a server
/// that keeps losing our place counts too), their results and those results' weight.
#[derive(Debug, Default, Clone, Copy)]
struct CatchUpSpent {
    pages: u32,
    results: usize,
    bytes: usize,
}

impl CatchUpSpent {
    fn exceeded(&self) -> bool {
        self.pages > MAX_CATCH_UP_PAGES
            || self.results > MAX_CATCH_UP_RESULTS
            || self.bytes > MAX_CATCH_UP_BYTES
    }
}

/// One page of archive results, oldest first.
#[derive(Debug)]
pub struct ArchivePage {
    /// The OMEMO and plain messages on this page.
    pub messages: Vec<Incoming>,
    /// The archive id of the page's last result: where the next page starts.
    pub last: Option<String>,
    /// The server says there is nothing after this page.
    pub complete: bool,
}

impl core::fmt::Debug for XmppClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("XmppClient")
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

fn stream_with<C: tokio_xmpp::connect::ServerConnector>(
    connector: C,
    jid: &Jid,
    password: &str,
) -> (
    StanzaStream,
    oneshot::Receiver<core::result::Result<(), FirstLogin>>,
) {
    let (report, first) = oneshot::channel();
    let reconnector =
        login::reconnector(connector, jid.clone(), password, Timeouts::tight(), report);
    (StanzaStream::new(reconnector, QUEUE_DEPTH), first)
}

fn is_loopback(server: &str) -> bool {
    let host = server
        .rsplit_once(':')
        .map_or(server, |(h, _)| h)
        .trim_matches(['[', ']']);
    host.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// A MAM query for the messages after `after`, or since `start`, 100 per page; or, with
/// `last`, for the archive's last `last` messages alone (RSM `<before/>`).
fn mam_query(
    query_id: &str,
    after: Option<&str>,
    start: Option<u64>,
    last: Option<usize>,
) -> Element {
    let fields = start
        .map(|t| Field::text_single("start", &hush_wire::date::format(t)))
        .into_iter()
        .collect();
    mam::Query {
        queryid: Some(mam::QueryId(query_id.to_owned())),
        node: None,
        form: Some(DataForm::new(
            DataFormType::Submit,
            xmpp_parsers::ns::MAM,
            fields,
        )),
        set: Some(SetQuery {
            max: Some(last.unwrap_or(PAGE_SIZE).min(PAGE_SIZE)),
            after: after.map(str::to_owned),
            // An empty `<before/>`: the last page of the archive (XEP-0059 §2.5).
            before: last.map(|_| String::new()),
            index: None,
        }),
        flip_page: false,
    }
    .into()
}

impl XmppClient {
    /// Logs in and sends initial presence. Fails after `options.timeout` instead of retrying
    /// forever. `jid` is the account's bare JID, or a full JID to ask the server for that
    /// resource (it may give another).
    pub async fn connect(jid: &str, password: &str, options: &ConnectOptions) -> Result<Self> {
        let login_as: Jid = jid.parse().map_err(|_| XmppError::BadJid(jid.to_owned()))?;
        let bare = login_as.to_bare();
        // Errors name the account, not the resource asked for.
        let jid = bare.as_str();
        // Where errors say we tried to connect.
        let server = options
            .server
            .clone()
            .unwrap_or_else(|| format!("{} (found through DNS)", bare.domain()));
        if options.insecure_loopback && !options.server.as_deref().is_some_and(is_loopback) {
            return Err(XmppError::InsecureNotLoopback(server));
        }
        let (mut stream, first) = match &options.server {
            Some(address) if options.insecure_loopback => {
                stream_with(login::LoopbackTcp(address.clone()), &login_as, password)
            }
            Some(address) => {
                let (host, port) = address.rsplit_once(':').unwrap_or((address, "5222"));
                stream_with(
                    login::GuardedStartTls(DnsConfig::no_srv(host, port.parse().unwrap_or(5222))),
                    &login_as,
                    password,
                )
            }
            // No server given: DNS SRV (direct TLS and STARTTLS), else the domain itself.
            None => stream_with(login::Discovered { dns: options.dns }, &login_as, password),
        };
        let online = tokio::time::timeout(options.timeout, async {
            // The first login reports at once (wrong password, refused connection, TLS) ...
            match first.await {
                Ok(Ok(())) => {}
                Ok(Err(FirstLogin::Rejected(condition))) => {
                    return Err(XmppError::LoginRejected {
                        jid: jid.to_owned(),
                        condition,
                    })
                }
                Ok(Err(FirstLogin::NoMechanism)) => {
                    return Err(XmppError::NoLoginMechanism {
                        server: server.clone(),
                    })
                }
                Ok(Err(FirstLogin::Failed(source))) => {
                    return Err(XmppError::Unreachable {
                        server: server.clone(),
                        source,
                    })
                }
                Err(_) => return Err(XmppError::Disconnected(Disconnect::LoginAbandoned)),
            }
            // ... then the stream binds a resource (and enables Stream Management).
            while let Some(event) = stream.next().await {
                if let Event::Stream(StreamEvent::Reset { .. }) = event {
                    return Ok(());
                }
            }
            Err(XmppError::Disconnected(Disconnect::DuringLogin))
        })
        .await;
        match online {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(XmppError::ConnectTimeout {
                    jid: jid.to_owned(),
                    server,
                    seconds: options.timeout.as_secs(),
                });
            }
        }
        let mut this = Self {
            stream,
            jid: bare,
            pending: BoundedQueue::new(MAX_QUEUED, MAX_QUEUED_BYTES),
            missed: false,
            query_serial: 0,
            state_lost: false,
            link: LinkStats::default(),
            device_updates: Vec::new(),
            rebuilt_at_flush: 0,
            id_prefix: format!("hush-{:016x}", rand::random::<u64>()),
            online: false,
            archive: None,
            catch_up: CatchUpSpent::default(),
            book: roster::Book::default(),
            bounces: std::collections::VecDeque::new(),
            asking: Vec::new(),
            rooms: std::collections::BTreeMap::new(),
            device_id: 0,
        };
        this.start_session().await?;
        Ok(this)
    }

    /// What a fresh session needs: Carbons, copies of what our other devices send and receive
    /// (XEP-0280), and presence again if we had sent it before the session was lost.
    async fn start_session(&mut self) -> Result<()> {
        let enable = carbons::Enable.into();
        self.request(None, IqRequest::Set(enable), &Request::EnableCarbons)
            .await?;
        if self.online {
            self.send_presence().await?;
        }
        Ok(())
    }

    async fn send_presence(&mut self) -> Result<()> {
        let mut presence = Presence::new(PresenceType::None);
        presence.payloads.push(disco::caps());
        self.send(presence.into()).await
    }

    /// Sends initial presence, once: from then on the server delivers live messages and
    /// Carbons to this session. Messages stored offline meanwhile are pushed now, unless this
    /// session already queried the archive (Prosody then leaves them to the archive), so a
    /// catch-up should end with one more query after going online.
    pub async fn go_online(&mut self) -> Result<()> {
        if !self.online {
            self.send_presence().await?;
            self.online = true;
        }
        Ok(())
    }

    /// Whether initial presence went out (see [`Self::go_online`]).
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Answers a request addressed to us: disco#info (which is how the server learns our
    /// `+notify` features) and ping; anything else gets `service-unavailable`, as RFC 6120
    /// requires an answer to every request.
    async fn answer(&mut self, iq: Iq) -> Result<()> {
        use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
        let (from, id, payload, get) = match iq {
            Iq::Get {
                from, id, payload, ..
            } => (from, id, payload, true),
            Iq::Set {
                from, id, payload, ..
            } => (from, id, payload, false),
            _ => return Ok(()),
        };
        let disco_query = get
            .then(|| DiscoInfoQuery::try_from(payload.clone()).ok())
            .flatten()
            .filter(|q| disco::is_our_node(q.node.as_deref()));
        // A roster push, from our own account only (RFC 6121 §2.1.6): acknowledged.
        let from_us = from.as_ref().is_none_or(|f| f.to_bare() == self.jid);
        let push = (!get && from_us)
            .then(|| xmpp_parsers::roster::Roster::try_from(payload.clone()).ok())
            .flatten();
        let iq = if let Some(push) = push {
            self.book.push(&push);
            Iq::Result {
                from: None,
                to: from,
                id,
                payload: None,
            }
        } else if let Some(query) = disco_query {
            Iq::Result {
                from: None,
                to: from,
                id,
                payload: Some(disco::info(query.node.as_deref())),
            }
        } else if get && Ping::try_from(payload).is_ok() {
            Iq::Result {
                from: None,
                to: from,
                id,
                payload: None,
            }
        } else {
            let error = StanzaError::new(
                ErrorType::Cancel,
                DefinedCondition::ServiceUnavailable,
                "en",
                "",
            );
            Iq::Error {
                from: None,
                to: from,
                id,
                payload: None,
                error,
            }
        };
        self.send(iq.into()).await
    }

    /// Remembers a message of ours the server returned as undeliverable (RFC 6120 §8.3: the
    /// error carries our message's id), and says so.
    fn note_bounce(&mut self, m: &Message) {
        let condition = m
            .payloads
            .iter()
            .find(|p| p.name() == "error")
            .and_then(|e| StanzaError::try_from(e.clone()).ok())
            .map_or_else(
                || "no reason given".to_owned(),
                |e| crate::error::condition_name(&e.defined_condition),
            );
        log::warn!(
            "the server returned a message to {} as undeliverable ({condition})",
            m.from.as_ref().map_or("?", Jid::as_str),
        );
        if let Some(id) = &m.id {
            if self.bounces.len() >= MAX_BOUNCES {
                self.bounces.pop_front();
            }
            self.bounces.push_back((id.0.clone(), condition));
        }
    }

    /// The condition the server gave for returning our message `id`, if it did (taken).
    pub(crate) fn take_bounce(&mut self, id: &str) -> Option<String> {
        let at = self.bounces.iter().position(|(i, _)| i == id)?;
        self.bounces.remove(at).map(|(_, c)| c)
    }

    /// Keeps a request for our presence, to be answered between two reads
    /// ([`Self::answer_requests`]); other presence is not used.
    fn note_presence(&mut self, p: Presence) {
        log::debug!("presence of type {:?} from {:?}", p.type_, p.from);
        if muc::note_presence(&mut self.rooms, &p) {
            return;
        }
        if p.type_ != PresenceType::Subscribe {
            return;
        }
        let Some(from) = p.from.map(|f| f.to_bare()) else {
            return;
        };
        if from == self.jid || self.asking.contains(&from) {
            return;
        }
        if self.asking.len() < roster::MAX_REQUESTS {
            self.asking.push(from);
        }
    }

    /// Answers the requests for our presence: approved for contacts on the roster, kept and
    /// said for anybody else.
    async fn answer_requests(&mut self) -> Result<()> {
        if self.asking.is_empty() {
            return Ok(());
        }
        if !self.book.is_known() {
            self.roster().await?;
        }
        for jid in std::mem::take(&mut self.asking) {
            if self.book.has(&jid) {
                log::debug!("approved {jid}'s request for our presence (a contact)");
                self.send(roster::presence(PresenceType::Subscribed, &jid).into())
                    .await?;
            } else if self.book.request(jid.clone()) {
                log::warn!(
                    "{jid} asks to see this account's presence and device-list changes; not                      answered, as {jid} is not a contact"
                );
            }
        }
        Ok(())
    }

    /// The roster: our contacts, with who sees whose presence.
    pub async fn roster(&mut self) -> Result<Vec<Contact>> {
        let get = IqRequest::Get(roster::get().into());
        let payload = self.request(None, get, &Request::Roster).await?;
        let roster = match payload {
            // An empty result is an empty roster (RFC 6121 §2.1.3 allows it for versioning).
            None => roster::get(),
            Some(el) => {
                xmpp_parsers::roster::Roster::try_from(el).map_err(|e| XmppError::Unreadable {
                    request: Request::Roster,
                    source: e.into(),
                })?
            }
        };
        let contacts = roster::contacts(roster);
        self.book.learn(&contacts);
        Ok(contacts)
    }

    /// Adds `jid` to the roster and asks for its presence; approves its request for ours if
    /// one came since login (one that comes later, or waits on the server until we are
    /// online, is approved when it arrives: see [`Self::answer_requests`]). No approval is
    /// sent ahead of a request: Prosody 0.12 answers a request against such a pre-approval
    /// (RFC 6121 §3.4) without recording the subscription on the asking side.
    pub async fn add_contact(&mut self, jid: &BareJid) -> Result<()> {
        let asked_us = self.book.requests().contains(jid) || self.asking.contains(jid);
        let set = IqRequest::Set(roster::add(jid).into());
        self.request(None, set, &Request::Roster).await?;
        self.book.push(&roster::add(jid));
        self.send(roster::presence(PresenceType::Subscribe, jid).into())
            .await?;
        if asked_us {
            self.send(roster::presence(PresenceType::Subscribed, jid).into())
                .await?;
        }
        Ok(())
    }

    /// Removes `jid` from the roster; the server ends the subscriptions both ways.
    pub async fn remove_contact(&mut self, jid: &BareJid) -> Result<()> {
        let set = IqRequest::Set(roster::remove(jid).into());
        self.request(None, set, &Request::Roster).await?;
        Ok(())
    }

    /// Accounts not on the roster that asked for our presence since login, oldest first.
    pub fn presence_requests(&self) -> &[BareJid] {
        self.book.requests()
    }

    /// Takes the device lists that arrived as PEP notifications since the last call.
    pub fn take_device_list_updates(&mut self) -> Vec<(BareJid, DeviceList)> {
        std::mem::take(&mut self.device_updates)
    }

    /// Logs what the stream says about the link.
    fn note_link(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::Suspended => {
                self.link.drops += 1;
                log::warn!("lost the connection to the server; reconnecting");
            }
            StreamEvent::Resumed => {
                self.link.resumed += 1;
                log::info!("reconnected; the session resumed without loss");
            }
            StreamEvent::Reset { .. } => {
                self.link.rebuilt += 1;
                log::warn!("reconnected, but the server could not resume the session");
                self.state_lost = true;
                // The new session is in no room: each is entered again after the catch-up.
                self.rooms.clear();
            }
        }
    }

    /// What happened to the link since login.
    pub fn link_stats(&self) -> LinkStats {
        self.link
    }

    /// Whether messages may have been missed since the last call: the session was lost and
    /// re-established (then Carbons and presence are set up again here), or live messages were
    /// dropped because too many arrived while an answer was awaited (see
    /// [`LinkStats::not_queued`]). If so, the caller should catch up from the archive, where
    /// the server keeps what was in flight.
    pub async fn take_state_lost(&mut self) -> Result<bool> {
        if self.state_lost {
            self.start_session().await?;
            self.state_lost = false;
            self.missed = false;
            return Ok(true);
        }
        if self.missed {
            log::info!("catching up from the archive on the messages dropped during a flood");
            self.missed = false;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sends a stanza and waits until it is written to the connection.
    async fn send(&mut self, stanza: Stanza) -> Result<()> {
        let mut token = self.stream.send(Box::new(stanza)).await;
        // While the connection is down the stanza just waits in the queue: bound that.
        match tokio::time::timeout(REQUEST_TIMEOUT, token.wait_for(StanzaStage::Sent)).await {
            Err(_) => Err(XmppError::Timeout(Request::Send)),
            Ok(Some(StanzaState::Sent { .. })) | Ok(Some(StanzaState::Acked { .. })) => Ok(()),
            Ok(Some(StanzaState::Failed { error })) => Err(XmppError::Io(error.into_io_error())),
            Ok(_) => Err(XmppError::Disconnected(Disconnect::StanzaDropped)),
        }
    }

    /// Our bare JID.
    pub fn jid(&self) -> &BareJid {
        &self.jid
    }

    /// Sends an IQ and waits for its answer (see [`Self::await_answer`]).
    async fn exchange(
        &mut self,
        to: Option<Jid>,
        req: IqRequest,
        what: &Request,
    ) -> Result<IqResponse> {
        let expected = to.as_ref().map(|j| j.to_bare());
        let id = self.send_request(to, req).await?;
        self.await_answer(&id, &expected, what).await
    }

    /// Sends an IQ request and returns its id.
    async fn send_request(&mut self, to: Option<Jid>, req: IqRequest) -> Result<String> {
        self.query_serial += 1;
        let id = format!("{}-{}", self.id_prefix, self.query_serial);
        let iq = match req {
            IqRequest::Get(payload) => Iq::Get {
                from: None,
                to,
                id: id.clone(),
                payload,
            },
            IqRequest::Set(payload) => Iq::Set {
                from: None,
                to,
                id: id.clone(),
                payload,
            },
        };
        self.send(iq.into()).await?;
        Ok(id)
    }

    /// Waits for the answer to request `id`, reading incoming stanzas meanwhile (the event
    /// queue is small: if nobody drained it, the answer would never be read). The answer must
    /// come from where the request went, `expected` (our own account when `None`): anyone else
    /// could otherwise answer in its place. Messages seen on the way are kept: results of the
    /// archive query in flight with it, other OMEMO messages in `pending`.
    async fn await_answer(
        &mut self,
        id: &str,
        expected: &Option<BareJid>,
        what: &Request,
    ) -> Result<IqResponse> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            tokio::select! {
                event = self.stream.next() => match event {
                    Some(Event::Stanza(Stanza::Iq(Iq::Result { id: rid, payload, from, .. }))) if rid == id && self.answers(&from, expected) => {
                        return Ok(IqResponse::Result(payload));
                    }
                    Some(Event::Stanza(Stanza::Iq(Iq::Error { id: rid, error, from, .. }))) if rid == id && self.answers(&from, expected) => {
                        return Ok(IqResponse::Error(error));
                    }
                    // The end of the archive query in flight, while another request is awaited:
                    // kept for `archive_page`, or its page would never finish.
                    Some(Event::Stanza(Stanza::Iq(Iq::Result { id: rid, payload, from, .. }))) if self.is_archive_answer(&rid, &from) => {
                        if let Some(q) = self.archive.as_mut() {
                            q.answer = Some(IqResponse::Result(payload));
                        }
                    }
                    Some(Event::Stanza(Stanza::Iq(Iq::Error { id: rid, error, from, .. }))) if self.is_archive_answer(&rid, &from) => {
                        if let Some(q) = self.archive.as_mut() {
                            q.answer = Some(IqResponse::Error(error));
                        }
                    }
                    other => self.take_in(other).await?,
                },
                _ = tokio::time::sleep_until(deadline) => return Err(XmppError::Timeout(what.clone())),
            }
        }
    }

    /// Whether `id` from `from` answers the archive query in flight.
    fn is_archive_answer(&self, id: &str, from: &Option<Jid>) -> bool {
        self.archive
            .as_ref()
            .is_some_and(|q| q.iq_id == id && self.answers(from, &q.room))
    }

    /// Whether an IQ answer from `from` may answer a request sent to `expected` (`None`: our
    /// own account, answered by the account or the server).
    fn answers(&self, from: &Option<Jid>, expected: &Option<BareJid>) -> bool {
        match (from, expected) {
            (None, _) => true, // from the server itself, on our own stream
            (Some(f), Some(e)) => f.to_bare() == *e,
            (Some(f), None) => {
                f.to_bare() == self.jid || f.to_bare().as_str() == self.jid.domain().as_str()
            }
        }
    }

    /// Keeps a device-list notification: the latest one per owner and suite, at most
    /// `MAX_PENDING_LISTS` owners, so a flood of notifications cannot grow memory. A list
    /// naming more than [`hush_proto::MAX_LISTED_DEVICES`] devices, or heavier than
    /// `MAX_LIST_BYTES`, is not kept: no account has that many devices, and the account ignores
    /// such a list anyway.
    fn keep_device_list(&mut self, owner: BareJid, list: DeviceList) {
        let bytes: usize = list
            .devices
            .iter()
            .map(|d| {
                core::mem::size_of_val(d)
                    + d.label.as_ref().map_or(0, String::len)
                    + d.label_signature.as_ref().map_or(0, Vec::len)
            })
            .sum();
        if list.devices.len() > hush_proto::MAX_LISTED_DEVICES || bytes > MAX_LIST_BYTES {
            log::warn!(
                "ignored a {} device list of {owner} naming {} devices ({bytes} bytes): more \
                 than any account has",
                list.suite,
                list.devices.len()
            );
            return;
        }
        self.device_updates
            .retain(|(j, l)| !(*j == owner && l.suite == list.suite));
        if self.device_updates.len() >= MAX_PENDING_LISTS {
            self.device_updates.remove(0);
        }
        self.device_updates.push((owner, list));
    }

    /// A message that is no archive result: a bounce, a device-list notification or a room's
    /// notice is taken in; a message we read is returned.
    fn read_live(&mut self, m: Message) -> Option<Incoming> {
        if m.type_ == MessageType::Error {
            self.note_bounce(&m);
            return None;
        }
        if let Some((owner, list)) = disco::device_list_update(&m) {
            self.keep_device_list(owner, list);
            return None;
        }
        if let Some(found) = muc::classify(&mut self.rooms, &m, &self.jid, self.device_id) {
            return found;
        }
        classify(m, &self.jid, None)
    }

    fn sort(&mut self, m: Message) {
        if m.type_ == MessageType::Error {
            self.note_bounce(&m);
            return;
        }
        if let Some(q) = self.archive.as_mut() {
            let archive = q.room.as_ref().unwrap_or(&self.jid);
            // A room's results come from the room itself, never from nowhere (our server).
            let from_room = q.room.is_none() || m.from.is_some();
            if from_room && is_archive_result(&m, archive, &q.query_id) {
                // Every result counts toward the page's bound, even one carrying nothing we
                // read: a page must not go on forever either way.
                q.seen = q.seen.saturating_add(1);
                let read = match &q.room {
                    _ if q.seen > MAX_PAGE_RESULTS => None,
                    None => classify(m, &self.jid, Some(&q.query_id)),
                    Some(room) => muc::archived(m, room, &q.query_id, self.device_id),
                };
                if q.seen > MAX_PAGE_RESULTS {
                    q.overflowed = true;
                } else if let Some(i) = read {
                    if q.results.push(i).is_err() {
                        q.overflowed = true;
                    }
                }
                return;
            }
        }
        if let Some(live) = self.read_live(m) {
            self.queue(live);
        }
    }

    /// Keeps a live message that arrived while an answer was awaited, if the queue has room.
    /// Otherwise it is dropped — and with it every later one until the queue drains, so what
    /// is kept stays in order — and the next [`Self::take_state_lost`] asks for a catch-up,
    /// which fetches the dropped messages from the archive (all the server archived: every
    /// chat message with a body or OMEMO element, which carries a store hint; not what a
    /// server without an archive, or one lying about it, delivered).
    fn queue(&mut self, live: Incoming) {
        let refused = if self.missed {
            Some(live)
        } else {
            self.pending.push(live).err()
        };
        let Some(dropped) = refused else {
            return;
        };
        if !self.missed {
            log::warn!(
                "the server sent more messages than are kept while waiting for its answer \
                 ({} messages, {} bytes kept); further ones are dropped and fetched from the \
                 archive afterwards",
                self.pending.len(),
                self.pending.bytes()
            );
        }
        log::debug!("dropped a live message from {}", dropped.sender);
        self.missed = true;
        self.link.not_queued = self.link.not_queued.saturating_add(1);
    }

    async fn request(
        &mut self,
        to: Option<Jid>,
        req: IqRequest,
        what: &Request,
    ) -> Result<Option<Element>> {
        match self.exchange(to, req, what).await? {
            IqResponse::Result(payload) => Ok(payload),
            IqResponse::Error(e) => Err(XmppError::Refused {
                request: what.clone(),
                condition: e.defined_condition,
            }),
        }
    }

    /// Publishes an item with the access model OMEMO needs (`open`). If the node exists with a
    /// different configuration, the server refuses the publish-options; then the node is
    /// reconfigured and the item published again (XEP-0384 §"Server-side requirements").
    async fn publish(
        &mut self,
        node: &str,
        item_id: &str,
        payload: Element,
        config: pep::NodeConfig,
    ) -> Result<()> {
        let what = Request::Publish {
            node: node.to_owned(),
        };
        match self
            .request(
                None,
                IqRequest::Set(pep::publish(node, item_id, payload.clone(), true, config)),
                &what,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(XmppError::Refused {
                condition:
                    DefinedCondition::ServiceUnavailable | DefinedCondition::FeatureNotImplemented,
                ..
            }) => Err(XmppError::NoPep(self.jid.domain().to_string())),
            Err(XmppError::Refused { condition, .. }) => {
                log::debug!(
                    "publishing to {node} with options was refused ({}); configuring the node",
                    crate::condition_name(&condition)
                );
                let plain = pep::publish(node, item_id, payload, false, config);
                match self.configure(node, config).await {
                    Ok(()) => {
                        self.request(None, IqRequest::Set(plain), &what).await?;
                    }
                    // No such node yet, and the server would not create it with our options
                    // (ejabberd 23.01 knows no `pubsub#max_items` among publish-options): the
                    // first publish creates it, with the server's defaults, then it is
                    // configured. Until then the item is readable as the defaults allow.
                    Err(XmppError::Refused {
                        condition: DefinedCondition::ItemNotFound,
                        ..
                    }) => {
                        self.request(None, IqRequest::Set(plain), &what).await?;
                        self.configure(node, config).await?;
                    }
                    Err(e) => return Err(e),
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Configures our PEP node as OMEMO needs it (`pep::configure`).
    async fn configure(&mut self, node: &str, config: pep::NodeConfig) -> Result<()> {
        self.request(
            None,
            IqRequest::Set(pep::configure(node, config)),
            &Request::Configure {
                node: node.to_owned(),
            },
        )
        .await
        .map(drop)
    }

    async fn fetch(
        &mut self,
        jid: &BareJid,
        node: &str,
        item_id: Option<&str>,
    ) -> Result<Vec<Element>> {
        let what = Request::Fetch {
            node: node.to_owned(),
            jid: jid.to_string(),
        };
        let result = self
            .request(
                Some(jid.clone().into()),
                IqRequest::Get(pep::fetch(node, item_id)),
                &what,
            )
            .await;
        let nothing = || XmppError::NothingPublished {
            jid: jid.to_string(),
            node: node.to_owned(),
        };
        match result {
            Ok(Some(el)) => match pep::payloads(el) {
                Ok(found) if found.is_empty() => Err(nothing()),
                Ok(found) => Ok(found),
                Err(source) => Err(XmppError::Unreadable {
                    request: what,
                    source,
                }),
            },
            Ok(None) => Err(nothing()),
            Err(XmppError::Refused {
                condition: DefinedCondition::ItemNotFound | DefinedCondition::Forbidden,
                ..
            }) => Err(nothing()),
            Err(e) => Err(e),
        }
    }

    /// Publishes our device list in its suite. A list naming more than
    /// [`hush_proto::MAX_LISTED_DEVICES`] devices is refused with
    /// [`XmppError::DeviceListTooLong`], before anything is sent: every client (this one
    /// included) would refuse to write to an account with such a list, so publishing it — say,
    /// a list a hostile server pushed, with this device added back — would make the account
    /// unreachable.
    pub async fn publish_device_list(&mut self, list: &DeviceList) -> Result<()> {
        if list.devices.len() > hush_proto::MAX_LISTED_DEVICES {
            return Err(XmppError::DeviceListTooLong {
                jid: self.jid.to_string(),
                count: list.devices.len(),
            });
        }
        self.publish(
            list.suite.devices_node(),
            "current",
            list.to_element(),
            pep::NodeConfig::omemo(false),
        )
        .await
    }

    /// Publishes a bundle in its suite.
    pub async fn publish_bundle(&mut self, bundle: &Bundle) -> Result<()> {
        let (node, item) = bundle.suite.bundle_location(bundle.device_id);
        let item = item.unwrap_or_else(|| "current".to_owned());
        // OMEMO:2 keeps one item per device on a single node: it needs `max_items=max`.
        self.publish(
            &node,
            &item,
            bundle.to_element(),
            pep::NodeConfig::omemo(bundle.suite == Suite::Omemo2),
        )
        .await
    }

    /// Bookmarks `room` (XEP-0402) to be entered as `nick` by every device of the account,
    /// which the account joined at `joined_at` (unix seconds).
    pub async fn publish_bookmark(
        &mut self,
        room: &BareJid,
        nick: &str,
        joined_at: u64,
    ) -> Result<()> {
        self.publish(
            crate::bookmarks::NODE,
            room.as_str(),
            crate::bookmarks::conference(nick, joined_at),
            pep::NodeConfig::PRIVATE,
        )
        .await
    }

    /// Removes `room`'s bookmark (nothing to remove is no error).
    pub async fn retract_bookmark(&mut self, room: &BareJid) -> Result<()> {
        let what = Request::Publish {
            node: crate::bookmarks::NODE.to_owned(),
        };
        match self
            .request(None, IqRequest::Set(crate::bookmarks::retract(room)), &what)
            .await
        {
            Ok(_)
            | Err(XmppError::Refused {
                condition: DefinedCondition::ItemNotFound,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The account's room bookmarks (XEP-0402); none when it has none.
    pub async fn bookmarks(&mut self) -> Result<Vec<crate::Bookmark>> {
        let own = self.jid.clone();
        let what = Request::Fetch {
            node: crate::bookmarks::NODE.to_owned(),
            jid: own.to_string(),
        };
        match self
            .request(
                None,
                IqRequest::Get(pep::fetch(crate::bookmarks::NODE, None)),
                &what,
            )
            .await
        {
            Ok(answer) => Ok(crate::bookmarks::read(answer.as_ref())),
            Err(XmppError::Refused {
                condition: DefinedCondition::ItemNotFound,
                ..
            }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Publishes this device's attestations of its identity key (item `device_id` of
    /// [`hush_attest::NODE`], open to anyone, as bundles are).
    pub async fn publish_attestations(
        &mut self,
        device_id: u32,
        published: &hush_attest::Published,
    ) -> Result<()> {
        self.publish(
            hush_attest::NODE,
            &device_id.to_string(),
            published.to_element(),
            pep::NodeConfig::omemo(true),
        )
        .await
    }

    /// Fetches what device `device_id` of `jid` published of its attestations; `None` when
    /// it published none.
    pub async fn attestations(
        &mut self,
        jid: &BareJid,
        device_id: u32,
    ) -> Result<Option<hush_attest::Published>> {
        match self
            .fetch(jid, hush_attest::NODE, Some(&device_id.to_string()))
            .await
        {
            Ok(items) => Ok(items
                .first()
                .map(hush_attest::Published::from_element)
                .transpose()?),
            Err(XmppError::NothingPublished { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches a contact's device list.
    pub async fn device_list(&mut self, jid: &BareJid, suite: Suite) -> Result<DeviceList> {
        let items = self
            .fetch(jid, suite.devices_node(), Some("current"))
            .await?;
        Ok(DeviceList::from_element(&items[0])?)
    }

    /// Fetches one device's bundle (its signature is checked when a session is started).
    pub async fn bundle(&mut self, jid: &BareJid, suite: Suite, device_id: u32) -> Result<Bundle> {
        let (node, item) = suite.bundle_location(device_id);
        let items = self
            .fetch(jid, &node, Some(item.as_deref().unwrap_or("current")))
            .await?;
        Ok(Bundle::from_element(&items[0], device_id)?)
    }

    /// Sends a `<message/>` stanza exactly as the engine built it (see
    /// [`hush_engine::stanza`]).
    pub async fn send_message(&mut self, stanza: &MessageStanza) -> Result<()> {
        addressee(stanza)?;
        let message =
            Message::try_from(stanza.to_element()).map_err(|e| XmppError::Unsendable {
                to: stanza.to().to_owned(),
                source: Box::new(e),
            })?;
        self.send(message.into()).await
    }

    /// Waits for the next encrypted message (other stanzas are skipped), up to `timeout`.
    /// Returns `None` on timeout, when `wake` is notified, and early when the session was lost
    /// or messages were dropped in a flood (see [`Self::take_state_lost`], which says so and
    /// clears it), or when a room changed or removed us (see [`Self::rooms_changed`]).
    pub async fn next_encrypted(
        &mut self,
        timeout: Duration,
        wake: Option<&tokio::sync::Notify>,
    ) -> Result<Option<Incoming>> {
        self.go_online().await?;
        self.answer_requests().await?;
        if let Some(m) = self.pending.pop() {
            return Ok(Some(m));
        }
        if self.state_lost || self.missed || self.rooms_changed() {
            // Seen during a request, or messages dropped then: the caller catches up first.
            // Or a room changed: the caller looks at it first.
            return Ok(None);
        }
        let wait = async {
            loop {
                // Woken, the wait ends where no event has been taken from the stream yet.
                let event = match wake {
                    Some(wake) => tokio::select! {
                        biased;
                        event = self.stream.next() => event,
                        () = wake.notified() => return Ok(None),
                    },
                    None => self.stream.next().await,
                };
                let Some(event) = event else { break };
                match event {
                    Event::Stanza(Stanza::Message(m)) => {
                        if let Some(found) = self.read_live(m) {
                            return Ok(Some(found));
                        }
                        if self.rooms_changed() {
                            return Ok(None);
                        }
                    }
                    Event::Stanza(Stanza::Iq(iq @ (Iq::Get { .. } | Iq::Set { .. }))) => {
                        self.answer(iq).await?;
                    }
                    Event::Stanza(Stanza::Presence(p)) => {
                        self.note_presence(p);
                        self.answer_requests().await?;
                        if self.rooms_changed() {
                            return Ok(None);
                        }
                    }
                    Event::Stream(e) => {
                        self.note_link(e);
                        if self.state_lost {
                            return Ok(None);
                        }
                    }
                    Event::Stanza(_) => {}
                }
            }
            Err(XmppError::Disconnected(Disconnect::StreamEnded))
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    /// Asks our archive (XEP-0313) for the page of messages after archive id `after`, or
    /// since `start` (unix seconds) when `after` is `None`, without waiting for it: the caller
    /// can work on the previous page while this one travels. [`Self::archive_page`] reads it.
    pub async fn query_archive(&mut self, after: Option<&str>, start: Option<u64>) -> Result<()> {
        self.query_archive_of(None, after, start).await
    }

    /// [`Self::query_archive`] for our archive (`None`), or the archive of `room` (XEP-0313
    /// §6), which we must be in: its results are room messages from the real JIDs the archive
    /// kept for their senders.
    pub async fn query_archive_of(
        &mut self,
        room: Option<&BareJid>,
        after: Option<&str>,
        start: Option<u64>,
    ) -> Result<()> {
        if let Some(room) = room.filter(|r| !self.in_room(r)) {
            return Err(XmppError::NotJoined(room.to_string()));
        }
        let start = if after.is_none() { start } else { None };
        self.start_archive_query(room, after, start, None).await
    }

    /// The archive id of the last message in our archive, if any (one query, one result).
    pub async fn archive_end(&mut self) -> Result<Option<String>> {
        self.start_archive_query(None, None, None, Some(1)).await?;
        Ok(self.archive_page().await?.last)
    }

    /// The archive id of the last message in `room`'s archive, if any: where reading it starts
    /// for a room just joined.
    pub async fn room_archive_end(&mut self, room: &BareJid) -> Result<Option<String>> {
        self.start_archive_query(Some(room), None, None, Some(1))
            .await?;
        Ok(self.archive_page().await?.last)
    }

    /// The newest messages of our archive (one page, oldest first), outside any catch-up:
    /// what the check for a rolled-back store compares with the store.
    pub async fn archive_tail(&mut self) -> Result<Vec<Incoming>> {
        self.start_archive_query(None, None, None, Some(PAGE_SIZE))
            .await?;
        Ok(self.archive_page().await?.messages)
    }

    /// Sends an archive query (see [`mam_query`]) and makes it the one in flight. A query
    /// left in flight (its reader failed) is abandoned: its late results carry the old query
    /// id and are ignored.
    async fn start_archive_query(
        &mut self,
        room: Option<&BareJid>,
        after: Option<&str>,
        start: Option<u64>,
        last: Option<usize>,
    ) -> Result<()> {
        self.query_serial += 1;
        // Unpredictable, so nobody but the server we asked can make results look like ours.
        let nonce = rand_core::Rng::next_u64(&mut rand_core::UnwrapErr(rand::rngs::SysRng));
        let query_id = format!("hush-mam-{}-{nonce:016x}", self.query_serial);
        let request = mam_query(&query_id, after, start, last);
        let iq_id = self
            .send_request(room.map(|r| Jid::from(r.clone())), IqRequest::Set(request))
            .await?;
        self.archive = Some(ArchiveQuery {
            room: room.cloned(),
            query_id,
            iq_id,
            results: BoundedQueue::new(MAX_PAGE_RESULTS, MAX_PAGE_BYTES),
            seen: 0,
            overflowed: false,
            answer: None,
            last_only: last.is_some(),
        });
        Ok(())
    }

    /// Waits for the end of the archive query in flight and returns its page. A resume point
    /// the archive no longer has (expired, or a server that lost it) is
    /// [`XmppError::ArchiveLostPlace`].
    ///
    /// Everything here is bounded, whatever the server does: the page must end within the
    /// request timeout (20 s from when it is awaited; [`XmppError::Timeout`]); it holds at most
    /// twice the results asked for and 16 MiB ([`XmppError::ArchiveMisbehaves`]); and one
    /// catch-up — the pages up to one the server calls complete — reads at most 1,000 pages,
    /// 20,000 results and 128 MiB ([`XmppError::ArchiveTooLong`]; the page that crosses the
    /// bound is not returned, so the caller commits nothing of it and reads it again later).
    pub async fn archive_page(&mut self) -> Result<ArchivePage> {
        let Some(iq_id) = self.archive.as_ref().map(|q| q.iq_id.clone()) else {
            return Err(XmppError::ArchiveQueryOrder("no query in flight"));
        };
        let asked = self.archive.as_ref().and_then(|q| q.room.clone());
        let answer = match self.archive.as_mut().and_then(|q| q.answer.take()) {
            Some(early) => Ok(early),
            None => {
                self.await_answer(&iq_id, &asked, &Request::ArchiveQuery)
                    .await
            }
        };
        let Some(query) = self.archive.take() else {
            return Err(XmppError::ArchiveQueryOrder("no query in flight"));
        };
        if !query.last_only {
            let spent = &mut self.catch_up;
            spent.pages = spent.pages.saturating_add(1);
            spent.results = spent.results.saturating_add(query.seen);
            spent.bytes = spent.bytes.saturating_add(query.results.bytes());
        }
        if query.overflowed {
            return Err(XmppError::ArchiveMisbehaves(ArchiveFault::PageOverflow {
                results: MAX_PAGE_RESULTS,
                bytes: MAX_PAGE_BYTES,
                page: PAGE_SIZE,
            }));
        }
        let fin = match answer? {
            IqResponse::Result(fin) => fin,
            IqResponse::Error(e) => {
                if e.defined_condition == DefinedCondition::ItemNotFound {
                    return Err(XmppError::ArchiveLostPlace);
                }
                return Err(XmppError::Refused {
                    request: Request::ArchiveQuery,
                    condition: e.defined_condition,
                });
            }
        };
        // No `<fin/>` (nothing, or another element), or no `<last/>` in it: nothing more to
        // page through. A `<fin/>` that xmpp-parsers cannot read (its `<set/>` missing, say)
        // leaves the next page unknown: that is an error, not a silent end — unless it says
        // the archive is complete, which needs no next page (the page's messages are read,
        // and without a `<last/>` the resume point stays where it was: the next catch-up
        // reads them again and recognises them).
        let said_complete = fin.as_ref().is_some_and(|f| {
            f.is("fin", xmpp_parsers::ns::MAM) && f.attr("complete") == Some("true")
        });
        let (last, complete) = match fin.map(mam::Fin::try_from).transpose() {
            Ok(None) | Err(xso::error::FromElementError::Mismatch(_)) => (None, true),
            Ok(Some(fin)) => {
                let complete = fin.complete || fin.set.last.is_none();
                (fin.set.last, complete)
            }
            Err(xso::error::FromElementError::Invalid(e)) if said_complete => {
                log::warn!("the archive ended its last page with a <fin/> that cannot be read ({e}); taken as complete");
                (None, true)
            }
            Err(xso::error::FromElementError::Invalid(e)) => {
                log::warn!("the archive ended a page with a <fin/> that cannot be read: {e}");
                return Err(XmppError::ArchiveMisbehaves(ArchiveFault::UnreadableEnd));
            }
        };
        if query.last_only {
            // Not part of a catch-up.
        } else if complete {
            // The catch-up is over: the next one starts afresh.
            self.catch_up = CatchUpSpent::default();
        } else if self.catch_up.exceeded() {
            let spent = std::mem::take(&mut self.catch_up);
            log::warn!(
                "an archive catch-up read {} pages and {} results without the archive saying \
                 it is complete; stopping it here",
                spent.pages,
                spent.results
            );
            return Err(XmppError::ArchiveTooLong {
                pages: spent.pages,
                results: spent.results,
            });
        }
        Ok(ArchivePage {
            messages: query.results.into_vec(),
            last,
            complete,
        })
    }

    /// Makes sure everything sent so far reached the server: the server answers IQs in order,
    /// so once it answered a ping, it has every stanza sent before it.
    ///
    /// Fails if the session was rebuilt (not resumed) since the last flush: stanzas written
    /// before the link dropped may then never have reached the server.
    pub async fn flush(&mut self) -> Result<()> {
        self.request(None, IqRequest::Get(Ping.into()), &Request::Ping)
            .await?;
        let rebuilt = self.link.rebuilt;
        if rebuilt != std::mem::replace(&mut self.rebuilt_at_flush, rebuilt) {
            return Err(XmppError::Disconnected(Disconnect::NotResumed));
        }
        Ok(())
    }

    /// Flushes, then closes the stream politely.
    pub async fn close(mut self) -> Result<()> {
        self.flush().await?;
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, self.stream.close()).await;
        Ok(())
    }
}

/// The largest stanza sent: 256 KiB is the default limit of Prosody (`c2s_stanza_size_limit`)
/// and ejabberd (`max_stanza_size`), less room for what the server adds on the way.
pub const MAX_SENT_STANZA: usize = 256 * 1024 - 2048;

/// [`XmppError::TooBig`] when `stanza` written out is larger than [`MAX_SENT_STANZA`]:
/// checked before anything is committed for it.
pub(crate) fn fits(stanza: &MessageStanza) -> Result<()> {
    let mut bytes = Vec::new();
    if stanza.to_element().write_to(&mut bytes).is_err() {
        // Not writable at all: `send_message` says why.
        return Ok(());
    }
    if bytes.len() > MAX_SENT_STANZA {
        return Err(XmppError::TooBig {
            bytes: bytes.len(),
            limit: MAX_SENT_STANZA,
        });
    }
    Ok(())
}

/// The addressee of `stanza` as a bare JID, or [`XmppError::BadJid`]: checked before anything
/// is committed for it, and again before it is sent.
/// What entering a room found.
#[derive(Debug, Clone)]
pub struct Entered {
    /// Our nickname (the room may have changed it).
    pub nick: String,
    /// Our join created the room (and we configured it private).
    pub created: bool,
}

impl XmppClient {
    /// Sets this device's id: of the elements a room message carries, the one holding a key
    /// for it is read.
    pub fn set_device_id(&mut self, id: u32) {
        self.device_id = id;
    }

    /// Takes in one event read while waiting for something else: messages sorted and kept,
    /// presences noted, requests answered, link changes counted; the stream's end is an error.
    async fn take_in(&mut self, event: Option<Event>) -> Result<()> {
        match event {
            Some(Event::Stanza(Stanza::Message(m))) => self.sort(m),
            Some(Event::Stanza(Stanza::Presence(p))) => self.note_presence(p),
            Some(Event::Stanza(Stanza::Iq(iq @ (Iq::Get { .. } | Iq::Set { .. })))) => {
                self.answer(iq).await?
            }
            Some(Event::Stream(e)) => self.note_link(e),
            None => return Err(XmppError::Disconnected(Disconnect::StreamEnded)),
            _ => {}
        }
        Ok(())
    }

    /// Reads stanzas (keeping what arrives, as while awaiting an answer) until `done` holds,
    /// for at most the request timeout.
    async fn pump_until(&mut self, done: impl Fn(&Self) -> bool, what: Request) -> Result<()> {
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        while !done(self) {
            tokio::select! {
                event = self.stream.next() => self.take_in(event).await?,
                _ = tokio::time::sleep_until(deadline) => return Err(XmppError::Timeout(what)),
            }
        }
        Ok(())
    }

    /// Enters `room` as `nick` (XEP-0045 §7.2) and waits for the room to list its occupants
    /// and us. A room our join created is configured members-only, non-anonymous, persistent
    /// and archived before anyone else can enter (it stays locked until then).
    pub async fn join_room(&mut self, room: &BareJid, nick: &str) -> Result<Entered> {
        self.go_online().await?;
        if let Some(state) = self.rooms.get(room).filter(|r| r.entered) {
            if state.nick == nick {
                return Ok(Entered {
                    nick: nick.to_owned(),
                    created: false,
                });
            }
            // Another nickname: leave and enter again, rather than have the room's answer to
            // a nickname change read as our removal.
            self.leave_room(room).await?;
        }
        self.rooms.insert(
            room.clone(),
            muc::RoomState {
                nick: nick.to_owned(),
                ..muc::RoomState::default()
            },
        );
        self.send(muc::join(room, nick)?.into()).await?;
        let what = Request::JoinRoom {
            room: room.to_string(),
        };
        let key = room.clone();
        let waited = self
            .pump_until(
                move |c| {
                    c.rooms
                        .get(&key)
                        .is_none_or(|r| r.entered || r.refused.is_some())
                },
                what.clone(),
            )
            .await;
        let state = self.rooms.get(room);
        if let Some(condition) = state.and_then(|r| r.refused.clone()) {
            self.rooms.remove(room);
            return Err(XmppError::RoomRefused {
                room: room.to_string(),
                condition,
            });
        }
        if let Err(e) = waited {
            self.rooms.remove(room);
            return Err(e);
        }
        // Gone while waiting: the session was lost and rebuilt (rooms are entered again later).
        let Some((nick, created)) = state.map(|r| (r.nick.clone(), r.created)) else {
            return Err(XmppError::Disconnected(Disconnect::NotResumed));
        };
        if created {
            let form = IqRequest::Set(muc::private_room_form());
            self.request(
                Some(Jid::from(room.clone())),
                form,
                &Request::ConfigureRoom {
                    room: room.to_string(),
                },
            )
            .await?;
        }
        Ok(Entered { nick, created })
    }

    /// Leaves `room` (nothing is sent for a room we are not in).
    pub async fn leave_room(&mut self, room: &BareJid) -> Result<()> {
        if let Some(state) = self.rooms.remove(room) {
            self.send(muc::leave(room, &state.nick)?.into()).await?;
        }
        Ok(())
    }

    /// The room's privacy, from its disco#info features.
    pub async fn room_config(&mut self, room: &BareJid) -> Result<hush_store::RoomConfig> {
        let query = DiscoInfoQuery { node: None };
        let what = Request::RoomInfo {
            room: room.to_string(),
        };
        let payload = self
            .request(
                Some(Jid::from(room.clone())),
                IqRequest::Get(query.into()),
                &what,
            )
            .await?;
        // An empty answer names no feature: the room then counts as neither private nor
        // non-anonymous.
        let info =
            match payload {
                None => None,
                Some(el) => Some(xmpp_parsers::disco::DiscoInfoResult::try_from(el).map_err(
                    |e| XmppError::Unreadable {
                        request: what,
                        source: e.into(),
                    },
                )?),
            };
        let features: Vec<String> = info
            .map(|i| i.features.into_iter().map(|f| f.to_string()).collect())
            .unwrap_or_default();
        Ok(muc::config_of(&features))
    }

    /// Our server's HTTP upload service (XEP-0363): the domain itself if it offers one, else
    /// the first of its disco#items that does (at most [`upload::MAX_ITEMS_PROBED`] asked).
    /// `None` when there is none; an item that does not answer is skipped.
    pub async fn find_upload_service(&mut self) -> Result<Option<upload::UploadService>> {
        let domain = Jid::from(BareJid::from_parts(None, self.jid.domain()));
        let what = Request::FindUploadService;
        let mut candidates = vec![domain.clone()];
        let items = self
            .request(
                Some(domain),
                IqRequest::Get(
                    xmpp_parsers::disco::DiscoItemsQuery {
                        node: None,
                        rsm: None,
                    }
                    .into(),
                ),
                &what,
            )
            .await?;
        if let Some(el) = items {
            let items = xmpp_parsers::disco::DiscoItemsResult::try_from(el).map_err(|e| {
                XmppError::Unreadable {
                    request: what.clone(),
                    source: e.into(),
                }
            })?;
            candidates.extend(
                items
                    .items
                    .into_iter()
                    .map(|i| i.jid)
                    .take(upload::MAX_ITEMS_PROBED),
            );
        }
        for jid in candidates {
            let answer = self
                .request(
                    Some(jid.clone()),
                    IqRequest::Get(DiscoInfoQuery { node: None }.into()),
                    &what,
                )
                .await;
            let info = match answer {
                Ok(Some(el)) => xmpp_parsers::disco::DiscoInfoResult::try_from(el).ok(),
                Ok(None) | Err(XmppError::Refused { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(service) = info.and_then(|i| upload::service_of(jid, &i)) {
                return Ok(Some(service));
            }
        }
        Ok(None)
    }

    /// Asks `service` for a slot for `size` bytes, under `name` (a name saying nothing of
    /// the file). Both URLs of the answer must be `https://`.
    pub async fn upload_slot(
        &mut self,
        service: &Jid,
        name: &str,
        size: u64,
    ) -> Result<upload::Slot> {
        let what = Request::UploadSlot {
            service: service.to_string(),
        };
        let request = xmpp_parsers::http_upload::SlotRequest {
            filename: name.to_owned(),
            size,
            content_type: Some("application/octet-stream".to_owned()),
        };
        let answer = self
            .request(Some(service.clone()), IqRequest::Get(request.into()), &what)
            .await?
            .ok_or_else(|| XmppError::Unreadable {
                request: what.clone(),
                source: xso::error::Error::Other("an empty answer"),
            })?;
        let slot = xmpp_parsers::http_upload::SlotResult::try_from(answer).map_err(|e| {
            XmppError::Unreadable {
                request: what,
                source: e.into(),
            }
        })?;
        Ok(upload::slot_of(slot)?)
    }

    /// The room's members, admins and owners (three requests, XEP-0384 §5.8.1). A refusal of
    /// any of them is an error: a partial list would leave readers out, or in.
    pub async fn room_members(&mut self, room: &BareJid) -> Result<Vec<hush_store::Member>> {
        let mut members = Vec::new();
        for affiliation in [
            hush_store::Affiliation::Member,
            hush_store::Affiliation::Admin,
            hush_store::Affiliation::Owner,
        ] {
            let what = Request::RoomMembers {
                room: room.to_string(),
                affiliation: affiliation.as_str(),
            };
            let payload = self
                .request(
                    Some(Jid::from(room.clone())),
                    IqRequest::Get(muc::list_request(affiliation)),
                    &what,
                )
                .await?;
            members.extend(
                muc::list_answer(payload.as_ref())
                    .into_iter()
                    .filter(|m| m.affiliation == affiliation),
            );
        }
        Ok(members)
    }

    /// Grants `jid` an affiliation with `room` (`None`: takes it away), as its owner or admin.
    pub async fn set_affiliation(
        &mut self,
        room: &BareJid,
        jid: &BareJid,
        affiliation: Option<hush_store::Affiliation>,
    ) -> Result<()> {
        let what = Request::ChangeAffiliation {
            room: room.to_string(),
            jid: jid.to_string(),
        };
        self.request(
            Some(Jid::from(room.clone())),
            IqRequest::Set(muc::set_affiliation(jid, affiliation)),
            &what,
        )
        .await
        .map(drop)
    }

    /// The rooms whose members or privacy may have changed since the last call (taken).
    pub fn take_changed_rooms(&mut self) -> Vec<BareJid> {
        self.rooms
            .iter_mut()
            .filter_map(|(j, r)| core::mem::take(&mut r.changed).then(|| j.clone()))
            .collect()
    }

    /// The rooms that removed us since the last call, with the status code (taken; 0 when
    /// none was given).
    pub fn take_removed_rooms(&mut self) -> Vec<(BareJid, u16)> {
        let removed: Vec<(BareJid, u16)> = self
            .rooms
            .iter()
            .filter_map(|(j, r)| r.removed.map(|c| (j.clone(), c)))
            .collect();
        for (j, _) in &removed {
            self.rooms.remove(j);
        }
        removed
    }

    /// Whether a room said something changed, or removed us, since the last
    /// [`Self::take_changed_rooms`] and [`Self::take_removed_rooms`]: [`Self::next_encrypted`]
    /// returns early for the caller to look.
    pub fn rooms_changed(&self) -> bool {
        self.rooms
            .values()
            .any(|r| r.changed || r.removed.is_some())
    }

    /// Whether we are in `room` now.
    pub fn in_room(&self, room: &BareJid) -> bool {
        self.rooms.get(room).is_some_and(|r| r.entered)
    }

    /// The occupants of `room` by nickname, with the real JIDs the room gave.
    pub fn occupants(&self, room: &BareJid) -> Vec<(String, Option<BareJid>)> {
        self.rooms
            .get(room)
            .map(|r| {
                r.occupants
                    .iter()
                    .map(|(n, j)| (n.clone(), j.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(crate) fn addressee(stanza: &MessageStanza) -> Result<BareJid> {
    stanza
        .to()
        .parse()
        .map_err(|_| XmppError::BadJid(stanza.to().to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_counts_as_loopback() {
        assert!(super::is_loopback("127.0.0.1:5222"));
        assert!(super::is_loopback("127.8.9.1:1"));
        assert!(super::is_loopback("[::1]:5222"));
        assert!(!super::is_loopback("10.0.0.1:5222"));
        assert!(!super::is_loopback("example.org:5222"));
        assert!(!super::is_loopback("localhost.evil.com:5222"));
    }

    #[test]
    fn an_archive_query_asks_for_pages_after_a_point_or_for_the_last_messages() {
        let rsm = "http://jabber.org/protocol/rsm";
        let q = super::mam_query("q1", Some("id-9"), Some(86_400), None);
        assert!(q.is("query", xmpp_parsers::ns::MAM));
        assert_eq!(q.attr("queryid"), Some("q1"));
        let form = q.get_child("x", "jabber:x:data").unwrap();
        let value = |var: &str| {
            form.children()
                .find(|f| f.attr("var") == Some(var))
                .and_then(|f| f.get_child("value", "jabber:x:data"))
                .map(hush_proto::Element::text)
        };
        assert_eq!(value("FORM_TYPE").as_deref(), Some(xmpp_parsers::ns::MAM));
        assert_eq!(value("start").as_deref(), Some("1970-01-02T00:00:00Z"));
        let set = q.get_child("set", rsm).unwrap();
        let text = |name: &str| set.get_child(name, rsm).map(hush_proto::Element::text);
        assert_eq!(text("max"), Some(super::PAGE_SIZE.to_string()));
        assert_eq!(text("after").as_deref(), Some("id-9"));
        assert_eq!(text("before"), None);
        // The last message alone: an empty <before/>, one result.
        let q = super::mam_query("q2", None, None, Some(1));
        let set = q.get_child("set", rsm).unwrap();
        assert_eq!(
            set.get_child("before", rsm).map(hush_proto::Element::text),
            Some(String::new())
        );
        assert_eq!(
            set.get_child("max", rsm)
                .map(hush_proto::Element::text)
                .as_deref(),
            Some("1")
        );
        assert!(set.get_child("after", rsm).is_none());
    }
}
