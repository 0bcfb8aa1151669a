//! Logging in, and logging in again when the link drops.
//!
//! tokio-xmpp's stanza stream asks a *reconnector* for every new authenticated connection and
//! then binds (or resumes, XEP-0198) the session itself. Its stock reconnector retries every
//! failure forever, a wrong password included, so a one-shot command could only time out. Ours
//! differs in one way: the **first** login reports its outcome to [`crate::XmppClient::connect`]
//! at once, so a wrong password or an unreachable server is a clear error within a second.
//! Once a session has existed, a lost link is retried with exponential backoff (1 s doubling to
//! [`MAX_BACKOFF`]), and the stream resumes the session without loss where the server offers
//! Stream Management.

use std::time::Duration;

use sasl::common::Credentials;
use tokio::sync::oneshot;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::stanzastream::Connection;
use tokio_xmpp::xmlstream::{PendingFeaturesRecv, StreamHeader, Timeouts};
use zeroize::Zeroizing;

use crate::limits::{Guarded, SERVER_LIMITS};

/// Longest wait between two reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The reconnector handed to `StanzaStream::new`.
pub(crate) type Reconnector = Box<dyn FnMut(Option<String>, oneshot::Sender<Connection>) + Send>;

/// Why the first login failed.
#[derive(Debug)]
pub(crate) enum FirstLogin {
    /// The server rejected the credentials (SASL failure).
    Rejected(xmpp_parsers::sasl::DefinedCondition),
    /// The server offers no mechanism we accept on this connection.
    NoMechanism,
    /// Anything else: connection refused, DNS, TLS, protocol.
    Failed(tokio_xmpp::Error),
}

/// One complete login: connect (STARTTLS or loopback TCP, as the connector says), SASL, stream
/// restart. Resource binding and resumption are left to the stanza stream.
async fn login<C: ServerConnector>(
    server: C,
    jid: &Jid,
    password: &str,
    timeouts: Timeouts,
) -> Result<Connection, tokio_xmpp::Error> {
    let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
    let (pending, binding) = server.connect(jid, "jabber:client", timeouts).await?;
    let (features, stream) = pending.recv_features().await?;
    let credentials = Credentials::default()
        .with_username(user)
        .with_password(password)
        .with_channel_binding(binding);
    // Tries SCRAM-SHA-256, SCRAM-SHA-1, then PLAIN, as the server offers them.
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, credentials).await?;
    let stream = stream
        .send_header(StreamHeader {
            to: Some(jid.domain().as_str().into()),
            from: None,
            id: None,
        })
        .await?;
    let (features, stream) = stream.recv_features().await?;
    Ok(Connection {
        stream: stream.box_stream(),
        features,
        identity: jid.clone(),
    })
}

/// Builds the reconnector. `first` receives the outcome of the first login attempt.
pub(crate) fn reconnector<C: ServerConnector>(
    server: C,
    jid: Jid,
    password: &str,
    timeouts: Timeouts,
    first: oneshot::Sender<Result<(), FirstLogin>>,
) -> Reconnector {
    let password = std::sync::Arc::new(Zeroizing::new(password.to_owned()));
    let mut first = Some(first);
    Box::new(move |_, slot: oneshot::Sender<Connection>| {
        let (server, jid, password) = (server.clone(), jid.clone(), password.clone());
        match first.take() {
            Some(report) => {
                tokio::spawn(async move {
                    match login(server.clone(), &jid, &password, timeouts).await {
                        Ok(conn) => {
                            let _ = report.send(Ok(()));
                            let _ = slot.send(conn);
                        }
                        Err(e) => {
                            let why = match e {
                                tokio_xmpp::Error::Auth(tokio_xmpp::error::AuthError::Fail(c)) => {
                                    FirstLogin::Rejected(c)
                                }
                                tokio_xmpp::Error::Auth(
                                    tokio_xmpp::error::AuthError::NoMechanism,
                                ) => FirstLogin::NoMechanism,
                                other => FirstLogin::Failed(other),
                            };
                            let _ = report.send(Err(why));
                            // Dropping the slot would make the stream's worker panic; hold it
                            // until the worker goes away (the frontend is dropped by `connect`).
                            let mut slot = slot;
                            slot.closed().await;
                        }
                    }
                });
            }
            None => {
                tokio::spawn(async move {
                    let mut delay = Duration::from_secs(1);
                    loop {
                        if slot.is_closed() {
                            return; // the client is gone
                        }
                        match login(server.clone(), &jid, &password, timeouts).await {
                            Ok(conn) => {
                                log::info!("reconnected as {jid}");
                                let _ = slot.send(conn);
                                return;
                            }
                            Err(e) => {
                                log::warn!(
                                    "reconnecting as {jid} failed: {e}; next attempt in {} s",
                                    delay.as_secs()
                                );
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(MAX_BACKOFF);
                            }
                        }
                    }
                });
            }
        }
    })
}

/// Opens an XML stream to `jid`'s domain over `io`, with the limits on what the server sends.
async fn open_stream<Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: Io,
    jid: &Jid,
    ns: &'static str,
    timeouts: Timeouts,
) -> std::io::Result<tokio_xmpp::xmlstream::PendingFeaturesRecv<tokio::io::BufStream<Guarded<Io>>>>
{
    let header = StreamHeader {
        to: Some(jid.domain().as_str().into()),
        from: None,
        id: None,
    };
    tokio_xmpp::xmlstream::initiate_stream(
        tokio::io::BufStream::new(Guarded::new(io, SERVER_LIMITS)),
        ns,
        header,
        timeouts,
    )
    .await
}

/// Plain TCP to a loopback address (`--insecure-loopback`), with Nagle's algorithm off:
/// XMPP writes many small stanzas and waits for answers, and Nagle plus delayed ACKs would add
/// tens of milliseconds to each round trip.
#[derive(Clone, Debug)]
pub(crate) struct LoopbackTcp(pub(crate) String);

impl ServerConnector for LoopbackTcp {
    type Stream = tokio::io::BufStream<Guarded<tokio::net::TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            tokio_xmpp::xmlstream::PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        tokio_xmpp::Error,
    > {
        let tcp = tokio::net::TcpStream::connect(&self.0).await?;
        tcp.set_nodelay(true)?;
        let pending = open_stream(tcp, jid, ns, timeouts).await?;
        Ok((pending, sasl::common::ChannelBinding::None))
    }
}

/// STARTTLS (RFC 6120 §5.4) to a server found through DNS, with the stream limits
/// ([`crate::limits`]) on the plaintext phase and on the encrypted stream: a hostile server
/// (or, before TLS, anyone on the path) cannot make us buffer without bound or nest elements
/// deep enough to overflow the stack. tokio-xmpp's own STARTTLS connector offers no place for
/// that wrapper, so the negotiation is done here.
#[derive(Clone, Debug)]
pub(crate) struct GuardedStartTls(pub(crate) tokio_xmpp::connect::DnsConfig);

type TlsOverTcp = tokio_xmpp::connect::tls_common::TlsStream<tokio::net::TcpStream>;

impl ServerConnector for GuardedStartTls {
    type Stream = tokio::io::BufStream<Guarded<TlsOverTcp>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        tokio_xmpp::Error,
    > {
        let tcp = self.0.resolve().await?;
        // Small stanzas, answers awaited: see `LoopbackTcp`.
        tcp.set_nodelay(true)?;
        starttls(tcp, jid, ns, timeouts).await
    }
}

/// The stream a TLS connection opens, and the channel binding it offers to SASL.
type Secured = (
    PendingFeaturesRecv<tokio::io::BufStream<Guarded<TlsOverTcp>>>,
    sasl::common::ChannelBinding,
);

/// STARTTLS on `tcp`, then the stream over TLS (certificate checked against the JID's domain).
async fn starttls(
    tcp: tokio::net::TcpStream,
    jid: &Jid,
    ns: &'static str,
    timeouts: Timeouts,
) -> Result<Secured, tokio_xmpp::Error> {
    use futures::{SinkExt, StreamExt};
    use tokio_xmpp::parsers::starttls::{Nonza, Request};
    use tokio_xmpp::xmlstream::{ReadError, XmppStreamElement};

    let plain = open_stream(tcp, jid, ns, timeouts).await?;
    let (features, mut plain) = plain
        .recv_features::<tokio_xmpp::xmlstream::FallibleStreamElement>()
        .await?;
    if !features.can_starttls() {
        // Never fall back to plaintext: `--insecure-loopback` is the only way to that.
        return Err(tokio_xmpp::Error::Protocol(
            tokio_xmpp::error::ProtocolError::NoTls,
        ));
    }
    plain
        .send(&XmppStreamElement::Starttls(Nonza::Request(Request)))
        .await?;
    loop {
        match plain
            .next()
            .await
            .map(|e| e.and_then(|e| e.into_read_error()))
        {
            Some(Ok(XmppStreamElement::Starttls(Nonza::Proceed(_)))) => break,
            Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
            Some(Err(ReadError::HardError(e))) => return Err(e.into()),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e).into())
            }
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                return Err(tokio_xmpp::Error::Disconnected)
            }
        }
    }
    // The server sends nothing more in clear after `<proceed/>`: nothing buffered is lost.
    let tcp = plain.into_inner().into_inner().into_inner();
    direct_tls(tcp, jid, ns, timeouts).await
}

/// TLS on `tcp` (certificate checked against the JID's domain), then the stream.
async fn direct_tls(
    tcp: tokio::net::TcpStream,
    jid: &Jid,
    ns: &'static str,
    timeouts: Timeouts,
) -> Result<Secured, tokio_xmpp::Error> {
    let (tls, binding) =
        tokio_xmpp::connect::tls_common::establish_tls_connection(tcp, jid.domain().as_str())
            .await?;
    Ok((open_stream(tls, jid, ns, timeouts).await?, binding))
}

/// How long one place a domain's server may be reached gets, from the TCP connection to the
/// stream over TLS, before the next one is tried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server of the JID's domain, found in DNS (see [`crate::resolve`]): each place its SRV
/// records name is tried in turn, with direct TLS or STARTTLS as the record says, until one
/// logs in. `dns` is the name server to ask instead of the system's.
#[derive(Clone, Debug)]
pub(crate) struct Discovered {
    pub(crate) dns: Option<std::net::SocketAddr>,
}

impl ServerConnector for Discovered {
    type Stream = tokio::io::BufStream<Guarded<TlsOverTcp>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<Secured, tokio_xmpp::Error> {
        let domain = jid.domain().as_str();
        let resolver = crate::resolve::resolver(self.dns)?;
        let mut attempts = Vec::new();
        for candidate in crate::resolve::candidates(&resolver, domain).await {
            log::debug!("trying {candidate} for {domain}");
            let tried = async {
                let tcp = crate::resolve::tcp(&resolver, &candidate.host, candidate.port).await?;
                tcp.set_nodelay(true)?;
                match candidate.security {
                    crate::resolve::Security::DirectTls => direct_tls(tcp, jid, ns, timeouts).await,
                    crate::resolve::Security::StartTls => starttls(tcp, jid, ns, timeouts).await,
                }
            };
            // A server that takes the connection and never answers must not keep us from the
            // next one.
            match tokio::time::timeout(ATTEMPT_TIMEOUT, tried).await {
                Ok(Ok(secured)) => return Ok(secured),
                Ok(Err(e)) => attempts.push((candidate, crate::error::connect_reason(&e))),
                Err(_) => attempts.push((
                    candidate,
                    format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                )),
            }
        }
        Err(std::io::Error::other(crate::resolve::NoServer {
            domain: domain.to_owned(),
            attempts,
        })
        .into())
    }
}
