//! The connection's IO as hyper sees it (above TLS, when there is TLS): reads tell the
//! connection's [`Activity`] that a request head began, and hyper's own bodiless error
//! answers are swapped for JSON on the way out (`hyper_errors`). Everything else passes
//! through untouched. Writes are watched on the socket itself (`socket::WatchedSocket`):
//! above TLS a write goes through as soon as TLS has taken it into its own buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::Activity;
use super::hyper_errors;

/// A client connection wrapped for hyper.
pub(crate) struct EdgeIo<T> {
    inner: T,
    activity: Arc<Activity>,
    /// A replacement answer still to be written, and how much of it has been.
    pending: Vec<u8>,
    pending_written: usize,
}

impl<T> EdgeIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            pending: Vec::new(),
            pending_written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> EdgeIo<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_written < self.pending.len() {
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_written += n;
        }
        self.pending = Vec::new();
        self.pending_written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EdgeIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.bytes_read();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EdgeIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if !this.activity.in_service() {
            if let Some(answer) = hyper_errors::replacement(buf) {
                this.pending = answer;
                // hyper's bytes are taken whole; the JSON answer goes out from here on.
                if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    /// Not vectored: hyper then gathers each message into one buffer, so its own error
    /// answer reaches `poll_write` whole and can be recognised.
    fn is_write_vectored(&self) -> bool {
        false
    }
}
