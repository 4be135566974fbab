//! The real-time servers: the Pusher Channels protocol v7 at `GET /app/{key}` ([`connection`])
//! and Socket.IO at `/socket.io/` ([`socketio`]), sharing one session core ([`core`]), one hub and
//! one presence.
//!
//! The Pusher handshake checks the app key, the protocol version and the `Origin` (allow-list),
//! then the client address's connection cap (refused with HTTP 429, before upgrading); each
//! accepted socket then runs in its own task ([`connection`]) with a bounded outbox registered in
//! the [`hub::Hub`].

pub mod app_auth;
pub mod connection;
pub mod core;
pub mod hub;
mod session;
pub mod socketio;
pub mod waiters;

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, State, WebSocketUpgrade},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    bus::Bus,
    config::Config,
    error::ApiError,
    http::{client_addr::ClientAddr, origin::origin_allowed},
    protocol::ProtocolError,
    state::AppState,
};

/// Largest WebSocket message or frame accepted at all. Messages over Pusher's 10 KB but under this
/// get a `pusher:error` and the connection stays; larger ones close it (1009).
const MAX_WS_MESSAGE: usize = 64 * 1024;
/// Bytes read from the socket at a time. tungstenite's default is 128 KiB per socket, allocated
/// up front: for many idle connections that is the whole memory bill. Client frames are small
/// (at most 10 KB are accepted) and the buffer grows for a larger one.
const READ_BUFFER: usize = 1024;

/// Bytes of frames gathered before they are written to the socket; queued frames are written
/// together (and flushed when the outbox is empty), a lone frame at once. The buffer is allocated
/// only as frames pass through it, but tungstenite keeps its capacity (this much plus the largest
/// frame) for the connection's life: with presence every socket writes batches of member changes,
/// and at 16 KiB that retained buffer was half of a settled connection's memory (BENCHMARKS.md).
const WRITE_BUFFER: usize = 4 * 1024;

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

/// Seconds a client refused for its address's connection cap is asked to wait (`Retry-After`):
/// long enough that a reconnect loop does not hammer the handshake, short enough that a place
/// freed by a closed tab is soon used.
const CAP_RETRY_AFTER_SECS: u64 = 10;

/// `GET /app/{key}`: refuse with 429 when the client address is at `MAX_CONNECTIONS_PER_IP`
/// (before upgrading, so a refused client costs no socket task); otherwise upgrade, then either
/// serve the socket or close it with the handshake error.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ctx = state.ws.clone();
    let refused = handshake_error(&ctx.config, &key, &params, &headers);
    if refused.is_none() && !ctx.presence.admit(ip).await {
        tracing::debug!(%ip, "websocket refused: address at MAX_CONNECTIONS_PER_IP");
        return ApiError::TooManyConnections {
            retry_after: CAP_RETRY_AFTER_SECS,
        }
        .into_response();
    }
    let tasks = ctx.tasks.clone();
    // An admitted socket whose upgrade then fails (the client left mid-handshake) never reaches
    // `serve`: give its place back here, or its address would creep towards the cap.
    let admitted = refused.is_none().then(|| ctx.presence.clone());
    ws.on_failed_upgrade(move |e| {
        tracing::debug!(error = %e, "websocket upgrade failed");
        if let Some(presence) = admitted {
            tokio::spawn(async move { presence.disconnected(ip).await });
        }
    })
    .read_buffer_size(READ_BUFFER)
    .write_buffer_size(WRITE_BUFFER)
    .max_message_size(MAX_WS_MESSAGE)
    .max_frame_size(MAX_WS_MESSAGE)
    .on_upgrade(move |socket| {
        tasks.track_future(async move {
            match refused {
                Some(e) => connection::refuse(socket, e).await,
                None => connection::serve(socket, ctx, ip).await,
            }
        })
    })
}

fn handshake_error(
    config: &Config,
    key: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Option<ProtocolError> {
    if key != config.pusher.key {
        return Some(ProtocolError::AppNotFound);
    }
    // pusher-js sends protocol=7; clients that omit it are served protocol 7 as well.
    if let Some(p) = params.get("protocol")
        && !matches!(p.parse::<u32>(), Ok(5..=7))
    {
        return Some(ProtocolError::UnsupportedProtocol);
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => None,
        Some(Ok(origin)) if origin_allowed(origin, headers, config) => None,
        Some(_) => Some(ProtocolError::OriginNotAllowed),
    }
}
