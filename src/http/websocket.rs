//! The HTTP side of the real-time handshakes, before a socket exists: `GET /app/{key}` (the Pusher
//! protocol) and the gate in front of `/socket.io/`. Both check the `Origin` against the
//! allow-list and count the client address against `MAX_CONNECTIONS_PER_IP` (cluster-wide with
//! Redis), refusing with HTTP 429 and `Retry-After` before any socket task or Engine.IO session
//! exists; the sockets themselves are [`crate::ws`]'s.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, Query, Request, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{client_addr::ClientAddr, origin::origin_allowed};
use crate::{
    config::Config,
    error::ApiError,
    protocol::ProtocolError,
    state::AppState,
    ws::{MAX_WS_MESSAGE, READ_BUFFER, WRITE_BUFFER, connection, socketio::Admission},
};

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

/// Before Engine.IO: the `Origin` check of the Pusher handshake (a browser on another site is
/// refused with 403; an allowed one gets the CORS headers its long-polling requests need, and its
/// preflight is answered here), and for a request that opens a session (no `sid`), the address's
/// connection cap (429 with `Retry-After`, as for `/app/{key}`). The admitted place rides in the
/// request's extensions, which the session keeps for its life.
pub async fn socketio_gate(
    State(state): State<AppState>,
    ClientAddr(ip): ClientAddr,
    mut req: Request,
    next: Next,
) -> Response {
    let ctx = &state.ws;
    let origin = req.headers().get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, req.headers(), &ctx.config));
        if !allowed {
            return ApiError::forbidden("origin_not_allowed", "this origin may not connect").into_response();
        }
        if req.method() == axum::http::Method::OPTIONS {
            let mut res = axum::http::StatusCode::NO_CONTENT.into_response();
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            }
            return with_cors(res, origin.clone());
        }
    }
    let opens_session = !req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .any(|pair| pair.starts_with("sid="));
    if opens_session {
        if !ctx.presence.admit(ip).await {
            tracing::debug!(%ip, "socket.io session refused: address at MAX_CONNECTIONS_PER_IP");
            return ApiError::TooManyConnections {
                retry_after: CAP_RETRY_AFTER_SECS,
            }
            .into_response();
        }
        let admission = Arc::new(Admission::new(ctx.presence.clone(), ip));
        req.extensions_mut().insert(admission);
    }
    let res = next.run(req).await;
    match origin {
        Some(origin) => with_cors(res, origin),
        None => res,
    }
}

/// The CORS headers for an allowed `origin` (with credentials: the session cookie rides along).
fn with_cors(mut res: Response, origin: HeaderValue) -> Response {
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    res
}
