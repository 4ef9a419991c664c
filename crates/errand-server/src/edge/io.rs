//! The connection's IO as hyper sees it: reads tell the connection's [`Activity`] that a
//! request head began, writes whether the client is taking its answers, and hyper's own
//! bodiless error answers are swapped for JSON on the way out (`hyper_errors`). Everything
//! else passes through untouched.

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
    /// The last write or flush found no room; the activity is told only of changes, so a
    /// client that takes its answers costs no lock here.
    stalled: bool,
}

impl<T> EdgeIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            pending: Vec::new(),
            pending_written: 0,
            stalled: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> EdgeIo<T> {
    /// Tells the activity when a write to the client starts or stops finding no room.
    fn noting_stall<R>(&mut self, poll: Poll<R>) -> Poll<R> {
        if poll.is_pending() != self.stalled {
            self.stalled = poll.is_pending();
            if self.stalled {
                self.activity.write_stalled();
            } else {
                self.activity.write_resumed();
            }
        }
        poll
    }

    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_written < self.pending.len() {
            let written =
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_written..]);
            let n = ready!(self.noting_stall(written))?;
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
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        let written = ready!(this.noting_stall(written));
        if matches!(written, Ok(n) if n > 0) {
            this.activity.bytes_written();
        }
        Poll::Ready(written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        // Over TLS a flush writes to the socket too.
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        this.noting_stall(flushed)
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

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_write_that_finds_no_room_starts_a_stall_and_one_that_goes_through_ends_it() {
        let activity = Activity::new();
        let _in_service = activity.request_started();
        let (near, mut far) = tokio::io::duplex(64);
        let mut io = EdgeIo::new(near, activity.clone());
        io.write_all(&[b'x'; 64]).await.expect("fill the pipe");
        assert_eq!(activity.deadline(TIMEOUT, TIMEOUT), None);
        let found_no_room =
            poll_fn(|cx| Poll::Ready(Pin::new(&mut io).poll_write(cx, b"y").is_pending())).await;
        assert!(found_no_room, "the pipe is full");
        assert!(
            activity.deadline(TIMEOUT, TIMEOUT).is_some(),
            "a write that found no room starts the stall deadline, in service too"
        );
        let mut taken = [0u8; 64];
        far.read_exact(&mut taken).await.expect("the client reads");
        io.write_all(b"y").await.expect("room again");
        assert_eq!(
            activity.deadline(TIMEOUT, TIMEOUT),
            None,
            "a write that went through ends the stall"
        );
    }
}
