//! The client's TCP socket, under everything else (TLS included): set up when it is
//! accepted, and its writes watched, so that the connection's [`Activity`] knows when
//! bytes went out (which pushes its idle and header deadlines back while an answer drains)
//! and when the client stops taking what errand sends. Watched here and not above TLS,
//! because TLS takes a write into its own buffer even while the socket has no room: it
//! would hide a stalled client behind writes that seem to go through, and a deadline
//! counted from such a write could close the connection with the end of an answer still
//! in that buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::activity::Activity;

/// About how many bytes of an answer the kernel holds unsent for a client
/// (`TCP_NOTSENT_LOWAT`: a write is taken while fewer are unsent, so one write may go a
/// segment past it; bytes sent and awaiting acknowledgement are bounded by the client's
/// receive window instead). Without it, on fast paths (loopback, a proxy beside errand)
/// the kernel's send queue grows to megabytes, and a client that reads slowly takes bytes
/// for a long while before errand's next write goes through: a write that found no room
/// would not mean a client that stopped reading. With it, the socket takes writes again
/// once fewer than half of these bytes are left unsent (and the send buffer has room), so
/// a client that takes about 64–128 KiB per idle timeout keeps its connection. The
/// option's introduction in Linux (2013) calls 128 KB or less fine for most workloads. It
/// bounds only the unsent part of the kernel's memory per connection, and leaves the
/// bytes in flight, so the rate, alone.
const UNSENT_BYTES: u32 = 128 * 1024;

/// Sets up an accepted socket: the bound on its unsent bytes, where the system has one.
pub(crate) fn prepare(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(UNSENT_BYTES) {
        tracing::debug!(error = %e, "could not bound the connection's unsent bytes");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

/// A socket whose writes tell the connection's activity when they start and stop finding
/// no room.
pub(crate) struct WatchedSocket {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The last write found no room. The activity is told only when this changes (bytes
    /// that went out are counted on each write, as they were before the stall watch).
    stalled: bool,
}

impl WatchedSocket {
    pub(crate) fn new(inner: TcpStream, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            stalled: false,
        }
    }

    /// Tells the activity that bytes went out, and when writes start or stop finding no
    /// room.
    fn noting(&mut self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.bytes_written();
        }
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
}

impl AsyncRead for WatchedSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WatchedSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.noting(written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.noting(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    /// An accepted socket and its client, whose receive buffer is as small as the kernel
    /// allows.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = tokio::net::TcpSocket::new_v4().expect("socket");
        client.set_recv_buffer_size(4096).expect("receive buffer");
        let client = client
            .connect(listener.local_addr().expect("address"))
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        (accepted, client)
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn an_accepted_socket_holds_a_bounded_number_of_unsent_bytes() {
        let (accepted, _client) = pair().await;
        prepare(&accepted);
        assert_eq!(
            socket2::SockRef::from(&accepted)
                .tcp_notsent_lowat()
                .expect("read the option back"),
            UNSENT_BYTES
        );
    }

    #[tokio::test]
    async fn a_write_that_finds_no_room_starts_a_stall_and_one_that_goes_through_ends_it() {
        let (accepted, mut client) = pair().await;
        prepare(&accepted);
        let activity = Activity::new();
        let _in_service = activity.request_started();
        let mut socket = WatchedSocket::new(accepted, activity.clone());
        // Write until a write finds no room: the client reads nothing meanwhile.
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let wrote = poll_fn(|cx| match Pin::new(&mut socket).poll_write(cx, &chunk) {
                Poll::Ready(r) => Poll::Ready(Some(r.expect("write"))),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            match wrote {
                Some(n) => sent += n,
                None => break,
            }
            assert!(sent < 64 * 1024 * 1024, "the socket never filled");
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert!(
            sent >= UNSENT_BYTES as usize / 2,
            "only {sent} bytes went out before a write found no room"
        );
        assert!(
            activity.deadline(TIMEOUT, TIMEOUT).is_some(),
            "a write that found no room starts the stall deadline, in service too"
        );
        let mut taken = vec![0u8; sent];
        client
            .read_exact(&mut taken)
            .await
            .expect("the client reads");
        socket.write_all(b"y").await.expect("room again");
        assert_eq!(
            activity.deadline(TIMEOUT, TIMEOUT),
            None,
            "a write that went through ends the stall"
        );
    }
}
