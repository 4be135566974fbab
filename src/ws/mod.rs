//! The real-time servers: the Pusher Channels protocol v7 at `GET /app/{key}` ([`connection`])
//! and Socket.IO at `/socket.io/` ([`socketio`]), sharing one session core ([`core`]), one hub and
//! one presence.
//!
//! The HTTP side of both handshakes (the app key, the protocol version, the `Origin` allow-list and
//! the client address's connection cap, refused with HTTP 429 before upgrading) is
//! `crate::http::websocket`; each accepted socket then runs in its own task ([`connection`],
//! [`socketio`]) with a bounded outbox registered in the [`hub::Hub`].

pub mod app_auth;
pub mod connection;
pub mod core;
pub mod hub;
mod session;
pub mod socketio;
pub mod waiters;

use std::sync::Arc;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{bus::Bus, config::Config};

/// Largest WebSocket message or frame accepted at all. Messages over Pusher's 10 KB but under this
/// get a `pusher:error` and the connection stays; larger ones close it (1009).
pub const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Bytes read from the socket at a time. tungstenite's default is 128 KiB per socket, allocated
/// up front: for many idle connections that is the whole memory bill. Client frames are small
/// (at most 10 KB are accepted) and the buffer grows for a larger one.
pub const READ_BUFFER: usize = 1024;

/// Bytes of frames gathered before they are written to the socket; queued frames are written
/// together (and flushed when the outbox is empty), a lone frame at once. The buffer is allocated
/// only as frames pass through it, but tungstenite keeps its capacity (this much plus the largest
/// frame) for the connection's life: with presence every socket writes batches of member changes,
/// and at 16 KiB that retained buffer was half of a settled connection's memory (BENCHMARKS.md).
pub const WRITE_BUFFER: usize = 4 * 1024;

/// What every connection task shares.
#[derive(Clone)]
pub struct WsContext {
    pub config: Arc<Config>,
    /// Backlog is read from the store when a client subscribes to its own channels.
    pub store: crate::store::Store,
    pub hub: Arc<hub::Hub>,
    pub bus: Bus,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// Per-user limits on client events and on subscriptions that read a backlog.
    pub limits: Arc<crate::limits::Limiter>,
    /// Who is present on presence channels (cluster-wide with Redis).
    pub presence: Arc<crate::presence::Presence>,
    /// The app that authorises socket.io subscriptions to channels that are not chatbox's own
    /// (`AUTH_HOST`); `None`: such subscriptions are refused.
    pub app_auth: Option<Arc<app_auth::AppAuth>>,
}
