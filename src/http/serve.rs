//! The listener: accepts TCP connections and serves each with hyper (HTTP/1.1, with upgrades so
//! WebSockets work), under the bounds `axum::serve` does not offer:
//!
//! - `MAX_CONNECTIONS`: past it, a new connection is closed as soon as it is accepted and the
//!   others are served on. A connection holds its place for as long as its socket lives, which
//!   for a WebSocket is until its task ends (hyper hands the socket itself to the upgrade).
//! - `HTTP_HEADER_TIMEOUT_SECS`: a request's headers must arrive within it, counted from the
//!   connection's start and again after each answer, or the connection is closed (slowloris).
//!
//! Each handler sees the peer as `ConnectInfo<SocketAddr>`, as with `axum::serve`. On shutdown
//! the listener closes, idle connections close, and requests in flight are answered first;
//! connection tasks are tracked with the application's other tasks, whose wait is bounded.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{Router, extract::ConnectInfo, serve::Listener};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::config::Config;

/// Shortest interval between two warnings that connections are being refused at the cap: a
/// flood of refusals must not become a flood of log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` is cancelled, spawning one task per connection
/// on `tasks`. Returns once the listener is closed; the caller waits for `tasks`.
///
/// Accept errors never end it: a connection reset before it was accepted is skipped, and any
/// other error (out of file descriptors) is logged and retried after a second.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    config: &Config,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    let places = config
        .max_connections
        .map(|cap| (cap, Arc::new(Semaphore::new(cap as usize))));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.http_header_timeout);
    let mut refusals = Refusals::default();
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = Listener::accept(&mut listener) => accepted,
        };
        let place = match &places {
            None => None,
            Some((cap, places)) => match places.clone().try_acquire_owned() {
                Ok(place) => Some(place),
                Err(_) => {
                    drop(tcp);
                    refusals.count(*cap);
                    continue;
                }
            },
        };
        // Events are small frames written back to back: without TCP_NODELAY, Nagle's algorithm
        // holds each one until the client's delayed ACK (up to 40 ms) once they come faster than
        // every few milliseconds.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let io = TokioIo::new(Counted { tcp, _place: place });
        let conn = http
            .serve_connection(io, TowerToHyperService::new(service))
            .with_upgrades();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
}

/// Connections refused at the cap since the last warning, and when that was.
#[derive(Default)]
struct Refusals {
    unsaid: u64,
    said_at: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, cap: u32) {
        self.unsaid += 1;
        if self.said_at.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
            tracing::warn!(
                refused = self.unsaid,
                max_connections = cap,
                "at MAX_CONNECTIONS: new connections are being closed"
            );
            self.unsaid = 0;
            self.said_at = Some(Instant::now());
        }
    }
}

/// An accepted socket and its place under `MAX_CONNECTIONS`, given back when the socket is
/// dropped.
struct Counted {
    tcp: TcpStream,
    _place: Option<OwnedSemaphorePermit>,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
