//! Stanza size and depth limits, enforced on the raw bytes before the XML parser sees them.
//!
//! tokio-xmpp's XML stream builds a whole element in memory before handing it over, so a
//! limit checked on parsed elements would come too late: a client could make the server buffer
//! gigabytes. The [`Guard`] sits between the TCP socket and the parser and runs a small XML
//! tokenizer (`hush_wire::limits::Scanner`, which the client uses the other way round) over
//! every byte read: it knows the element depth and how many bytes the current
//! top-level element (stanza or nonza) has taken, and fails the read as soon as either exceeds
//! its limit. The connection task then sees the recorded [`Violation`] and closes the stream
//! with a `policy-violation` stream error.
//!
//! The guard also carries the raw bytes of [`crate::DevServer::inject_raw`] to the socket, in
//! order with what the XML stream writes.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) use hush_wire::limits::{Scanner, StreamLimits as Limits, Violation};

/// What the connection task shares with its guard.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// A new stream header is expected (set just before sending SASL `<success/>`).
    restart: AtomicBool,
    /// The limit the client broke, once it did.
    violation: Mutex<Option<Violation>>,
    /// Raw bytes to write before anything else that is written from now on.
    raw: Mutex<VecDeque<u8>>,
}

impl Control {
    /// Announces a stream restart.
    pub(crate) fn expect_restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
    }

    /// The limit the client broke, if it did.
    pub(crate) fn violation(&self) -> Option<Violation> {
        crate::state::lock(&self.violation).clone()
    }

    /// Queues raw bytes; they go out on the next write or flush.
    pub(crate) fn push_raw(&self, bytes: &[u8]) {
        crate::state::lock(&self.raw).extend(bytes);
    }
}

/// The socket wrapper: limits on reading, raw injections on writing.
pub(crate) struct Guard<S> {
    inner: S,
    scanner: Scanner,
    control: Arc<Control>,
    /// Raw bytes taken from [`Control::raw`] and not yet written.
    pending: Vec<u8>,
    written: usize,
    /// Bytes dropped after a violation.
    discarded: usize,
}

/// At most this much is read and dropped after a violation.
const MAX_DISCARD: usize = 16 << 20;

impl<S> Guard<S> {
    pub(crate) fn new(inner: S, limits: Limits, control: Arc<Control>) -> Self {
        Self {
            inner,
            scanner: Scanner::new(limits),
            control,
            pending: Vec::new(),
            written: 0,
            discarded: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Guard<S> {
    /// Writes the queued raw bytes, if any.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.written >= self.pending.len() {
                self.pending.clear();
                self.written = 0;
                let mut queued = crate::state::lock(&self.control.raw);
                if queued.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                self.pending.extend(queued.drain(..));
            }
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.violation().is_some() {
            // The stream is being closed for a violation: what the client still sends is read
            // and dropped (boundedly), so that closing the socket with unread data does not
            // reset the connection before the client has read the stream error.
            let mut scratch = [0u8; 4096];
            loop {
                let mut rb = ReadBuf::new(&mut scratch);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(()));
                }
                this.discarded = this.discarded.saturating_add(n);
                if this.discarded > MAX_DISCARD {
                    return Poll::Ready(Err(io::ErrorKind::InvalidData.into()));
                }
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let mut restart = this.control.restart.load(Ordering::SeqCst);
        let fed = this.scanner.feed(&buf.filled()[before..], &mut restart);
        if !restart {
            this.control.restart.store(false, Ordering::SeqCst);
        }
        if let Err(v) = fed {
            let message = v.to_string();
            *crate::state::lock(&this.control.violation) = Some(v);
            // Nothing of this read reaches the parser.
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, message)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
