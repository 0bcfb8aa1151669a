//! One client connection, from TCP accept to close: RFC 6120 stream negotiation (header,
//! features, SASL, stream restart, resource binding), then the session loop that reads
//! stanzas for the router and writes what the session's queue holds.
//!
//! Whatever a client does, only its own connection suffers: malformed XML gets a
//! `not-well-formed` stream error, a stanza over the size or depth limit a `policy-violation`
//! one, an unknown top-level element `unsupported-stanza-type`; then the stream is closed.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_xmpp::minidom::Element;
use tokio_xmpp::xmlstream::{
    accept_stream, AcceptedStream, ReadError, StreamHeader, Timeouts, XmlStream,
};
use xmpp_parsers::bind::BindFeature;
use xmpp_parsers::stream_error::{DefinedCondition, StreamError};
use xmpp_parsers::stream_features::StreamFeatures;

use crate::auth::{self, Exchange, Step};
use crate::guard::{Control, Guard};
use crate::router::{self, BindError};
use crate::state::{Outbound, Shared};
use crate::xml::{el, error_reply, iq_result, ns, Build, Condition};

type Io = BufStream<Guard<TcpStream>>;
type Stream = XmlStream<Io, Element>;

/// Time a client has from connecting to a bound resource.
const NEGOTIATION_TIME: Duration = Duration::from_secs(60);
/// Failed SASL attempts before the stream is closed (RFC 6120 §6.4.5 suggests 2 to 5).
const MAX_AUTH_FAILURES: usize = 5;
/// Stanzas written before flushing, when many are queued.
const BATCH: usize = 64;
/// How long closing a stream may take.
const CLOSE_TIME: Duration = Duration::from_secs(2);

/// Silence from a client is answered with a ping after `read_timeout`; the client then has
/// `response_timeout` to say anything.
fn timeouts() -> Timeouts {
    Timeouts {
        read_timeout: Duration::from_secs(300),
        response_timeout: Duration::from_secs(120),
    }
}

/// Serves one TCP connection until it closes or the server shuts down.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, conn: u64) {
    let mut shutdown = shared.shutdown.subscribe();
    if *shutdown.borrow() {
        return;
    }
    let _ = tcp.set_nodelay(true);
    let control = Arc::new(Control::default());
    let io = BufStream::new(Guard::new(tcp, shared.limits, control.clone()));
    let (tx, rx) = mpsc::unbounded_channel();
    let negotiated = tokio::select! {
        r = tokio::time::timeout(NEGOTIATION_TIME, negotiate(&shared, io, &control, conn, tx)) => r,
        _ = shutdown.changed() => return,
    };
    let (stream, user, full) = match negotiated {
        Ok(Some(done)) => done,
        Ok(None) => return,
        Err(_) => {
            log::debug!("connection {conn}: no session within {NEGOTIATION_TIME:?}");
            return;
        }
    };
    log::debug!("connection {conn}: {full} bound");
    run(&shared, stream, &user, &full, conn, &control, rx, shutdown).await;
    router::unbind(&shared, &full, conn);
    log::debug!("connection {conn}: {full} gone");
}

/// Stream header, SASL, restart, bind. Returns the stream, the user and the bound full JID.
async fn negotiate(
    shared: &Arc<Shared>,
    io: Io,
    control: &Control,
    conn: u64,
    tx: mpsc::UnboundedSender<Outbound>,
) -> Option<(Stream, String, String)> {
    let accepted = accept_stream(io, ns::CLIENT, timeouts()).await.ok()?;
    let features = StreamFeatures {
        sasl_mechanisms: auth::MECHANISMS.iter().map(|m| m.to_string()).collect(),
        ..StreamFeatures::default()
    };
    let mut stream = open(shared, accepted, &features).await?;
    let (user, success) = authenticate(shared, &mut stream, control).await?;
    control.expect_restart();
    let accepted = stream.accept_reset(&success).await.ok()?;
    let features = StreamFeatures {
        bind: Some(BindFeature { required: true }),
        others: vec![el("session", ns::SESSION).child(el("optional", ns::SESSION))],
        ..StreamFeatures::default()
    };
    let mut stream = open(shared, accepted, &features).await?;
    let full = bind(shared, &mut stream, control, &user, conn, tx).await?;
    Some((stream, user, full))
}

/// Answers a stream header with ours and the features.
async fn open(
    shared: &Shared,
    mut accepted: AcceptedStream<Io>,
    features: &StreamFeatures,
) -> Option<Stream> {
    let header = accepted.take_header();
    let ours = header
        .to
        .as_deref()
        .is_none_or(|to| to.eq_ignore_ascii_case(&shared.domain));
    let id = format!("{:016x}", rand::random::<u64>());
    let pending = accepted
        .send_header(StreamHeader {
            from: Some(shared.domain.as_str().into()),
            to: None,
            id: Some(id.into()),
        })
        .await
        .ok()?;
    if !ours {
        let error = StreamError {
            condition: DefinedCondition::HostUnknown,
            texts: Default::default(),
            application_specific: Vec::new(),
        };
        let _ = tokio::time::timeout(CLOSE_TIME, pending.send_error(&error)).await;
        return None;
    }
    pending.send_features::<Element>(features).await.ok()
}

/// Flushes what was written.
async fn flush(stream: &mut Stream) -> std::io::Result<()> {
    SinkExt::<&Element>::flush(stream).await
}

/// Sends the stream footer and shuts our side down.
async fn shut(stream: &mut Stream) -> std::io::Result<()> {
    SinkExt::<&Element>::close(stream).await
}

fn sasl(name: &str, data: Option<&[u8]>) -> Element {
    let e = el(name, ns::SASL);
    match data {
        Some(d) if !d.is_empty() => e.with_text(auth::encode(d)),
        _ => e,
    }
}

fn sasl_failure(condition: &str) -> Element {
    el("failure", ns::SASL).child(el(condition, ns::SASL))
}

/// The SASL exchange. Returns the user and the `<success/>` to send with the stream reset.
async fn authenticate(
    shared: &Arc<Shared>,
    stream: &mut Stream,
    control: &Control,
) -> Option<(String, Element)> {
    let mut exchange: Option<Exchange> = None;
    let mut failures = 0;
    loop {
        let element = next(shared, stream, control).await?;
        let step = if element.is("auth", ns::SASL) {
            exchange = element
                .attr("mechanism")
                .and_then(|m| Exchange::start(shared.clone(), m));
            let text = element.text();
            match exchange.as_mut() {
                None => Step::Failure("invalid-mechanism"),
                // No initial response: ask for it with an empty challenge (RFC 6120 §6.4.2).
                Some(_) if text.trim().is_empty() => Step::Challenge(Vec::new()),
                Some(ex) => match auth::decode(&text) {
                    Some(data) => ex.step(&data),
                    None => Step::Failure("incorrect-encoding"),
                },
            }
        } else if element.is("response", ns::SASL) {
            match (exchange.as_mut(), auth::decode(&element.text())) {
                (None, _) => Step::Failure("malformed-request"),
                (Some(_), None) => Step::Failure("incorrect-encoding"),
                (Some(ex), Some(data)) => ex.step(&data),
            }
        } else if element.is("abort", ns::SASL) {
            Step::Failure("aborted")
        } else {
            close_lingering(shared, stream, "not-authorized", Some("authenticate first")).await;
            return None;
        };
        match step {
            Step::Success(user, data) => return Some((user, sasl("success", Some(&data)))),
            Step::Challenge(data) => {
                stream.send(&sasl("challenge", Some(&data))).await.ok()?;
            }
            Step::Failure(condition) => {
                exchange = None;
                failures += 1;
                stream.send(&sasl_failure(condition)).await.ok()?;
                if failures >= MAX_AUTH_FAILURES {
                    close_lingering(
                        shared,
                        stream,
                        "policy-violation",
                        Some("too many failed logins"),
                    )
                    .await;
                    return None;
                }
            }
        }
    }
}

/// Resource binding (and the legacy session request) until a resource is bound.
async fn bind(
    shared: &Shared,
    stream: &mut Stream,
    control: &Control,
    user: &str,
    conn: u64,
    tx: mpsc::UnboundedSender<Outbound>,
) -> Option<String> {
    loop {
        let iq = next(shared, stream, control).await?;
        if !iq.is("iq", ns::CLIENT) {
            close_lingering(
                shared,
                stream,
                "not-authorized",
                Some("bind a resource first"),
            )
            .await;
            return None;
        }
        let request = matches!(iq.attr("type"), Some("get" | "set"));
        let reply = match iq.get_child("bind", ns::BIND) {
            Some(b) if iq.attr("type") == Some("set") => {
                let resource = b.get_child("resource", ns::BIND).map(|r| r.text());
                match router::bind(shared, user, resource.as_deref(), conn, tx.clone()) {
                    Ok(full) => {
                        let jid = el("bind", ns::BIND)
                            .child(el("jid", ns::BIND).with_text(full.as_str()));
                        if stream.send(&iq_result(&iq, Some(jid))).await.is_err() {
                            router::unbind(shared, &full, conn);
                            return None;
                        }
                        return Some(full);
                    }
                    Err(BindError::BadResource) => {
                        error_reply(&iq, Condition::BadRequest, None, Some("invalid resource"))
                    }
                }
            }
            _ if iq.has_child("session", ns::SESSION) && request => Some(iq_result(&iq, None)),
            _ if request => error_reply(&iq, Condition::NotAuthorized, None, Some("bind first")),
            _ => None,
        };
        if let Some(r) = reply {
            stream.send(&r).await.ok()?;
        }
    }
}

/// Reads the next element during negotiation (silence is bounded by the negotiation
/// deadline). `None` when the stream ended; a stream error was sent where one was due.
async fn next(shared: &Shared, stream: &mut Stream, control: &Control) -> Option<Element> {
    loop {
        match stream.next().await {
            Some(Ok(element)) => return Some(element),
            Some(Err(ReadError::SoftTimeout)) => continue,
            Some(Err(e)) => {
                read_failed(shared, stream, e, control).await;
                return None;
            }
            None => return None,
        }
    }
}

/// Ends a stream whose reading failed, with the stream error the failure deserves.
async fn read_failed(shared: &Shared, stream: &mut Stream, error: ReadError, control: &Control) {
    if let Some(v) = control.violation() {
        log::info!("closing a stream: {v}");
        close_lingering(shared, stream, "policy-violation", Some(&v.to_string())).await;
        return;
    }
    match error {
        ReadError::HardError(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            close_lingering(shared, stream, "not-well-formed", None).await;
        }
        ReadError::ParseError(_) => close_lingering(shared, stream, "invalid-xml", None).await,
        ReadError::StreamFooterReceived => {
            let _ = tokio::time::timeout(CLOSE_TIME, shut(stream)).await;
        }
        _ => {} // the connection is gone
    }
}

/// Sends a stream error and closes our side.
async fn close(stream: &mut Stream, condition: &str, text: Option<&str>) {
    let mut error = el("error", ns::STREAM).child(el(condition, ns::STREAM_ERRORS));
    if let Some(t) = text {
        error.append_child(el("text", ns::STREAM_ERRORS).with_text(t));
    }
    let _ = tokio::time::timeout(CLOSE_TIME, async {
        stream.send(&error).await?;
        shut(stream).await
    })
    .await;
}

/// [`close`] for a client that may still be sending: what it sends is read for a moment
/// (dropped), so the close does not turn into a reset before the client read the error.
async fn close_lingering(
    shared: &Shared,
    stream: &mut Stream,
    condition: &str,
    text: Option<&str>,
) {
    let mut stop = shared.shutdown.subscribe();
    close(stream, condition, text).await;
    if *stop.borrow_and_update() {
        return;
    }
    let drain = async {
        // Ends at the client's end of stream, or at the first error.
        while let Some(Ok(_)) = stream.next().await {}
    };
    tokio::select! {
        _ = tokio::time::timeout(CLOSE_TIME, drain) => {}
        _ = stop.changed() => {}
    }
}

/// The session loop.
#[allow(clippy::too_many_arguments)]
async fn run(
    shared: &Shared,
    mut stream: Stream,
    user: &str,
    full: &str,
    conn: u64,
    control: &Control,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                close(&mut stream, "system-shutdown", None).await;
                return;
            }
            out = rx.recv() => match out {
                Some(first) => {
                    if !write(&mut stream, first, &mut rx, control).await {
                        return;
                    }
                }
                None => return,
            },
            item = stream.next() => match item {
                Some(Ok(element)) => {
                    if element.has_ns(ns::CLIENT)
                        && matches!(element.name(), "message" | "presence" | "iq")
                    {
                        router::client_stanza(shared, full, user, conn, element);
                    } else {
                        close_lingering(shared, &mut stream, "unsupported-stanza-type", None).await;
                        return;
                    }
                }
                Some(Err(ReadError::SoftTimeout)) => {
                    // Silence: ask the client to say something (XEP-0199).
                    let ping = el("iq", ns::CLIENT)
                        .with("type", "get")
                        .with("id", shared.next_id("ping"))
                        .with("from", shared.domain.as_str())
                        .with("to", full)
                        .child(el("ping", ns::PING));
                    if stream.send(&ping).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    read_failed(shared, &mut stream, e, control).await;
                    return;
                }
                None => return,
            },
        }
    }
}

/// Writes `first` and whatever else is queued (up to a batch), then flushes. `false` when the
/// stream is done.
async fn write(
    stream: &mut Stream,
    first: Outbound,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
    control: &Control,
) -> bool {
    let mut next = Some(first);
    let mut written = 0;
    while let Some(out) = next.take() {
        match out {
            Outbound::Stanza(stanza) => match stream.feed(&stanza).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    log::warn!("a stanza could not be serialized ({e}); not sent");
                }
                Err(_) => return false,
            },
            Outbound::Raw(bytes) => {
                // Everything before goes out first, then the bytes, as they are.
                if flush(stream).await.is_err() {
                    return false;
                }
                control.push_raw(&bytes);
            }
            Outbound::Close(condition) => {
                close(stream, condition, None).await;
                return false;
            }
        }
        written += 1;
        if written < BATCH {
            next = rx.try_recv().ok();
        }
    }
    flush(stream).await.is_ok()
}
