//! The client's side of the stream limits: its connection wrapped in [`Guarded`], whose reads
//! go through the [`Scanner`] of `hush-wire` before tokio-xmpp's parser sees them (see
//! [`hush_wire::limits`] for why).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use hush_wire::limits::{Scanner, StreamLimits, Violation, SERVER_LIMITS};

/// A connection whose reads are checked by a [`Scanner`]: a violation fails the read with
/// `InvalidData` (nothing of that read reaches the parser), so the stream is dropped and the
/// client reconnects instead of buffering without bound or overflowing its stack.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
}

impl<S> Guarded<S> {
    /// Wraps `inner` with a fresh scanner.
    pub fn new(inner: S, limits: StreamLimits) -> Self {
        Self {
            inner,
            scanner: Scanner::new(limits),
        }
    }

    /// The wrapped connection (for STARTTLS, which continues below the XML layer).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        // A server may restart the stream (after SASL) at any time; a nested `stream:stream`
        // is then depth-neutral, which keeps the bound.
        let mut restart = true;
        if let Err(v) = this.scanner.feed(&buf.filled()[before..], &mut restart) {
            buf.set_filled(before);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server sent a {v}; dropping the connection"),
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
