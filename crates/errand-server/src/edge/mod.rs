//! The HTTP edge: errand's own accept loop over hyper, so that no client, however slow or
//! many, can take the server's memory, its file descriptors or its health check.
//!
//! What it bounds (docs/operations.md, "Connections and timeouts"):
//! - open connections: `max_connections` slots (kept below the open-files limit, which is
//!   raised to its hard limit at start). At the cap the loop stops taking ordinary
//!   connections; `reserve_connections` more are served with short timeouts and
//!   `connection: close`, answering `/healthz` and `/readyz` and 503 `busy` with
//!   `Retry-After` to anything else. Past those too, the listen backlog holds the rest.
//! - a request head must arrive whole within `header_timeout` of its first byte;
//! - a connection with no request in progress is closed after `idle_timeout`, and so is
//!   one whose writes to the client have found no room for that long (a stream nobody
//!   reads would otherwise hold its slot and a graceful shutdown for ever); on Linux the
//!   kernel holds about 128 KiB unsent per connection (`socket`), so a client that takes
//!   about 64–128 KiB per `idle_timeout` makes room in time;
//! - a request body must arrive within `body_timeout` of the handler starting to read it,
//!   else 408 and the connection closes;
//! - request bodies larger than 64 KiB share `body_budget_bytes` (a body declaring more
//!   than `max_request_bytes` gets 413 before a byte of it is read).
//!
//! With TLS (`tls_acceptor`), the handshake must end within `header_timeout` too; HTTP/1
//! then runs over the TLS stream with every bound above.
//!
//! A request in service has no other deadline here: long polls stay open until they end
//! (their number is bounded where they wait, `ServerLimits::max_waiting`). hyper's own
//! answers to malformed heads get the API's JSON error shape (`hyper_errors`).
//!
//! Each connection holds only hyper's buffers and a little state: the router is built once
//! and shared, where `axum::serve` rebuilt the whole route table for every connection
//! (about 1 MB each).

mod activity;
pub(crate) mod body;
mod fd_limit;
mod hyper_errors;
mod io;
mod request;
mod slots;
mod socket;
mod tls;

pub use tls::{acceptor as tls_acceptor, TlsConfigError};
/// What [`tls_acceptor`] gives and [`serve`] takes, named here so callers need not depend on
/// the TLS crate themselves.
pub use tokio_rustls::TlsAcceptor;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use activity::Activity;
use request::Shared;
use slots::{Slot, Slots};

/// A reserve connection (past the cap) gets at most this long for its head and between
/// requests: it exists to answer one health check.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// hyper's read buffer per connection at most (its default is 400 KiB). A request head must
/// fit in it, give or take one read, or gets `431`; a URI longer than 64 KiB still gets
/// `414` first. Bodies are read through it in pieces, so this bounds a connection's
/// buffer however large its body.
const MAX_READ_BUFFER: usize = 128 * 1024;

/// How long to pause accepting after `accept` fails (out of descriptors or memory), so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Limits of the HTTP edge; every one is a setting (`errand serve --help`).
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    /// Largest request body in bytes; a larger `Content-Length` gets 413 at once.
    pub max_request_bytes: usize,
    /// Time for a whole request head, from its first byte.
    pub header_timeout: Duration,
    /// Time for a whole request body, from when the handler starts reading it.
    pub body_timeout: Duration,
    /// A connection with no request in progress, or whose writes to the client have found
    /// no room, is closed after this long.
    pub idle_timeout: Duration,
    /// Open client connections at most (lowered to fit the open-files limit).
    pub max_connections: usize,
    /// Connections served past the cap, for health checks.
    pub reserve_connections: usize,
    /// Bytes of large request bodies read or held at once, all requests together.
    pub body_budget_bytes: usize,
}

impl Default for EdgeLimits {
    /// 10 s for a head and 60 s for a body are far more than any client on a working
    /// network needs (a 64 MiB batch at 60 s is 1.1 MB/s), yet bound what a slow client
    /// holds. 60 s idle keeps a worker's connection between polls. 10,000 connections
    /// (about 20 KiB each) fit easily in memory. A 128 MiB body budget is two largest
    /// batches at once: a parsed batch costs up to about 24 times its size, so about 3 GiB.
    fn default() -> Self {
        Self {
            max_request_bytes: 64 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 50_000,
            reserve_connections: 16,
            body_budget_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` resolves,
/// then stops accepting, lets every request in progress finish (idle connections close at
/// once) and returns.
///
/// # Errors
/// None today: a failed `accept` is logged and retried; the type leaves room for setup
/// errors.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let open_files = fd_limit::raise_open_files_limit();
    let cap = fd_limit::connection_cap(
        limits.max_connections,
        limits.reserve_connections,
        open_files,
    );
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            open_files = open_files.unwrap_or_default(),
            "connection cap lowered to fit the open-files limit"
        );
    }
    tracing::info!(
        max_connections = cap,
        reserve = limits.reserve_connections,
        "accepting connections"
    );
    let slots = Slots::new(cap, limits.reserve_connections);
    let shared = Arc::new(Shared::new(router, limits));
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    loop {
        let slot = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            slot = slots.next() => match slot {
                Some(slot) => slot,
                None => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        socket::prepare(&stream);
        // The connection's activity watches the socket itself, under TLS too.
        let activity = Activity::new();
        let stream = socket::WatchedSocket::new(stream, activity.clone());
        let client = Client {
            peer,
            slot: slots.settle(slot),
            activity,
        };
        match &tls {
            Some(acceptor) => tracker.spawn(tls_connection(
                acceptor.clone(),
                stream,
                client,
                shared.clone(),
                stop.clone(),
            )),
            None => tracker.spawn(connection(stream, client, shared.clone(), stop.clone())),
        };
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The TLS handshake (within the head's deadline; a failed one just closes), then HTTP/1
/// over the TLS stream.
async fn tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: socket::WatchedSocket,
    client: Client,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let peer = client.peer;
    let timeout = if client.slot.is_reserve() {
        shared.limits.header_timeout.min(RESERVE_TIMEOUT)
    } else {
        shared.limits.header_timeout
    };
    let stream = tokio::select! {
        handshake = tokio::time::timeout(timeout, acceptor.accept(stream)) => match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake past the header deadline");
                return;
            }
        },
        () = stop.cancelled() => return,
    };
    connection(stream, client, shared, stop).await;
}

/// Who is on the other end of a connection, and what it holds.
struct Client {
    peer: std::net::SocketAddr,
    /// Its place under the connection cap, given back when the connection ends.
    slot: Slot,
    /// What it is doing, for its deadlines.
    activity: Arc<Activity>,
}

/// Serves one connection until the client leaves, a deadline passes, or shutdown drains it.
async fn connection<S>(stream: S, client: Client, shared: Arc<Shared>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Client {
        peer,
        slot,
        activity,
    } = client;
    let reserve = slot.is_reserve();
    let (header_timeout, idle_timeout) = if reserve {
        (
            shared.limits.header_timeout.min(RESERVE_TIMEOUT),
            shared.limits.idle_timeout.min(RESERVE_TIMEOUT),
        )
    } else {
        (shared.limits.header_timeout, shared.limits.idle_timeout)
    };
    let io = TokioIo::new(io::EdgeIo::new(stream, activity.clone()));
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        // Handlers and the audit trail see who is on the other end.
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request::handle(shared.clone(), service_activity.clone(), reserve, req)
    });
    let mut builder = http1::Builder::new();
    // Head and idle deadlines are the watchdog's below: hyper's own header timer would
    // also run while a connection is idle.
    builder
        .header_read_timeout(None)
        .keep_alive(!reserve)
        .max_buf_size(MAX_READ_BUFFER);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    // The watchdog's timer, set to the connection's deadline whenever that changes.
    let timer = tokio::time::sleep(idle_timeout);
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    let mut draining = false;
    let ended = std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if !draining && stopped.as_mut().poll(cx).is_ready() {
            conn.as_mut().graceful_shutdown();
            draining = true;
            continue;
        }
        // Whatever the connection just did (read a head, started or finished a request)
        // is in `activity` now: its deadline is read after every poll, never notified.
        let Some(deadline) = activity.deadline(header_timeout, idle_timeout) else {
            return Poll::Pending;
        };
        if armed != Some(deadline) {
            timer.as_mut().reset(deadline);
            armed = Some(deadline);
        }
        return match timer.as_mut().poll(cx) {
            // A head that never completed, a silent client, or one whose answer found no
            // room for the idle timeout.
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        };
    })
    .await;
    match ended {
        Some(Err(e)) => tracing::debug!(error = %e, "connection ended with an error"),
        Some(Ok(())) => {}
        None if activity.stalled() => {
            tracing::debug!("closing a connection whose client stopped taking its answer");
        }
        None => tracing::debug!("closing a connection past its header or idle deadline"),
    }
    drop(slot);
}
