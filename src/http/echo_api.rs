//! laravel-echo-server's HTTP API, so scripts and dashboards written against it keep working:
//! `GET /apps/{appId}/status`, `/apps/{appId}/channels`, `/apps/{appId}/channels/{name}`,
//! `/apps/{appId}/channels/{name}/users` and `POST /apps/{appId}/events`. A request names one of
//! the configured clients (`ECHO_CLIENTS`, or `clients` of the echo configuration file) by its
//! `appId` in the path and its key in `auth_key` (or `Authorization: Bearer`), as
//! laravel-echo-server checks it; keys are compared in constant time.
//!
//! These paths are the Pusher HTTP API's too: [`super::apps_router`] sends a request here when
//! it carries a key but no Pusher signature ([`is_echo_request`]). Answers are the same
//! deployment-wide figures as [`super::channels_api`]'s; events take the same checks as the
//! Pusher triggers' ([`super::pusher_api`]).

use std::time::Instant;

use axum::{
    Router,
    extract::{FromRequest, Path, Query, Request, State},
    http::{HeaderMap, Uri, request::Parts},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::{
    MAX_BODY_BYTES,
    channels_api::{ChannelPath, ListQuery, occupied, presence_channel, subscription_count, user_count},
    extract::Json,
    pusher_api::{Trigger, broadcasts, publish},
};
use crate::{config::EchoClient, domain::ChannelKind, domain::ChannelName, error::ApiError, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app_id}/status", get(status))
        .route("/apps/{app_id}/channels", get(channels))
        .route("/apps/{app_id}/channels/{channel}", get(channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(users))
        .route("/apps/{app_id}/events", post(events))
}

/// The query parameters of `uri`, decoded.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default()
}

/// The key a request presents, as laravel-echo-server reads it: `Authorization: Bearer …`, else
/// the `auth_key` query parameter.
fn presented_key(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
    {
        return Some(bearer.to_owned());
    }
    query_pairs(uri)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("auth_key"))
        .map(|(_, v)| v)
}

/// Whether a request under `/apps/` is for this API: it presents a key and carries no Pusher
/// signature (`auth_signature`), and echo clients are configured.
pub fn is_echo_request(clients: &[EchoClient], uri: &Uri, headers: &HeaderMap) -> bool {
    let signed = query_pairs(uri)
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("auth_signature"));
    !clients.is_empty() && !signed && presented_key(uri, headers).is_some()
}

/// Whether `key` is the key of the client with `app_id` (constant time in the key's bytes).
fn allowed(clients: &[EchoClient], app_id: &str, key: &str) -> bool {
    clients
        .iter()
        .filter(|c| c.app_id == app_id)
        .any(|c| bool::from(c.key.expose().as_bytes().ct_eq(key.as_bytes())))
}

/// A request from a configured client (its app id and key match).
struct EchoClientAuth;

impl axum::extract::FromRequestParts<AppState> for EchoClientAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let app_id = parts.uri.path().split('/').nth(2).unwrap_or_default();
        let key = presented_key(&parts.uri, &parts.headers).unwrap_or_default();
        if !allowed(&state.config.echo_clients, app_id, &key) {
            return Err(ApiError::BadSignature("unknown app id or wrong auth_key".into()));
        }
        Ok(Self)
    }
}

/// When this process started, for `uptime`.
static STARTED: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Touches the start time (called when the router is built, at start-up).
pub fn mark_start() {
    std::sync::LazyLock::force(&STARTED);
}

#[utoipa::path(get, path = "/apps/{app_id}/status", tag = "laravel-echo-server http api", params(("app_id" = String, Path), ("auth_key" = String, Query)), responses((status = 200, description = "{subscription_count (connections over the deployment), uptime (s), memory_usage: {rss}}"), (status = 401, description = "unknown app id or wrong key")))]
async fn status(State(state): State<AppState>, _: EchoClientAuth) -> Result<Json<Value>, ApiError> {
    let nodes = state.ws.presence.nodes().await?;
    let connections: u64 = nodes.iter().filter_map(|n| n["connections"].as_u64()).sum();
    Ok(Json(json!({
        "subscription_count": connections,
        "uptime": STARTED.elapsed().as_secs_f64(),
        // This process's resident memory in bytes (Linux; `null` elsewhere).
        "memory_usage": { "rss": crate::telemetry::proc_status(std::process::id(), "VmRSS:").ok().map(|kib| kib * 1024) },
    })))
}

#[utoipa::path(get, path = "/apps/{app_id}/channels", tag = "laravel-echo-server http api", params(("app_id" = String, Path), ("auth_key" = String, Query), ("filter_by_prefix" = Option<String>, Query)), responses((status = 200, description = "{channels: {name: {subscription_count, occupied}}}"), (status = 401, description = "unknown app id or wrong key")))]
async fn channels(
    State(state): State<AppState>,
    _: EchoClientAuth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let prefix = q.filter_by_prefix.as_deref().filter(|p| !p.is_empty());
    let mut out = Map::new();
    for (name, count) in occupied(&state, prefix).await? {
        out.insert(name, json!({ "subscription_count": count, "occupied": true }));
    }
    Ok(Json(json!({ "channels": out })))
}

#[utoipa::path(get, path = "/apps/{app_id}/channels/{channel}", tag = "laravel-echo-server http api", params(("app_id" = String, Path), ("channel" = String, Path), ("auth_key" = String, Query)), responses((status = 200, description = "{subscription_count, occupied, user_count (presence channels)}"), (status = 401, description = "unknown app id or wrong key")))]
async fn channel(
    State(state): State<AppState>,
    _: EchoClientAuth,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
) -> Result<Json<Value>, ApiError> {
    let name = ChannelName::parse(&raw)?;
    let count = subscription_count(&state, &name).await?;
    let mut out = json!({ "subscription_count": count, "occupied": count > 0 });
    if name.kind() == ChannelKind::Presence {
        out["user_count"] = user_count(&state, &name).await?.into();
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/apps/{app_id}/channels/{channel}/users", tag = "laravel-echo-server http api", params(("app_id" = String, Path), ("channel" = String, Path), ("auth_key" = String, Query)), responses((status = 200, description = "{users: [{id, user_info}]}"), (status = 400, description = "not a presence channel"), (status = 401, description = "unknown app id or wrong key")))]
async fn users(
    State(state): State<AppState>,
    _: EchoClientAuth,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
) -> Result<Json<Value>, ApiError> {
    let name = presence_channel(&raw)?;
    let members = state.ws.presence.members(&name).await?;
    let users: Vec<Value> = members
        .into_iter()
        .map(|m| json!({ "id": m.user_id, "user_info": m.info }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// An event as laravel-echo-server takes it: `data` is JSON text or any JSON value.
#[derive(Deserialize, utoipa::ToSchema)]
struct EchoEvent {
    name: String,
    data: Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
}

#[utoipa::path(post, path = "/apps/{app_id}/events", tag = "laravel-echo-server http api", params(("app_id" = String, Path), ("auth_key" = String, Query)), request_body = EchoEvent, responses((status = 200, description = "{message: \"ok\"}: published"), (status = 400, description = "a reserved event name"), (status = 401, description = "unknown app id or wrong key"), (status = 413, description = "data over 10 KB"), (status = 422, description = "invalid event")))]
async fn events(State(state): State<AppState>, _: EchoClientAuth, req: Request) -> Result<Json<Value>, ApiError> {
    let bytes = axum::body::Bytes::from_request(req, &state)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let e: EchoEvent =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?;
    let data = match e.data {
        Value::String(s) => s,
        other => other.to_string(),
    };
    let trigger = Trigger {
        name: e.name,
        data,
        channels: e.channels,
        channel: e.channel,
        socket_id: e.socket_id,
    };
    publish(&state, &broadcasts(trigger)?).await?;
    Ok(Json(json!({ "message": "ok" })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn a_key_opens_only_its_own_app() {
        let clients = [EchoClient {
            app_id: "5e5d2b0c9d6e3c4a".into(),
            key: Secret::new("b0d7f1a1e0c4d2b9a8f7e6d5c4b3a291"),
        }];
        assert!(allowed(
            &clients,
            "5e5d2b0c9d6e3c4a",
            "b0d7f1a1e0c4d2b9a8f7e6d5c4b3a291"
        ));
        assert!(!allowed(
            &clients,
            "5e5d2b0c9d6e3c4a",
            "b0d7f1a1e0c4d2b9a8f7e6d5c4b3a290"
        ));
        assert!(!allowed(&clients, "5e5d2b0c9d6e3c4a", ""));
        assert!(!allowed(&clients, "other", "b0d7f1a1e0c4d2b9a8f7e6d5c4b3a291"));
        let headers = HeaderMap::new();
        let echo: Uri = "/apps/x/channels?auth_key=k".parse().unwrap();
        let pusher: Uri = "/apps/x/channels?auth_key=k&auth_signature=s".parse().unwrap();
        assert!(is_echo_request(&clients, &echo, &headers));
        assert!(!is_echo_request(&clients, &pusher, &headers));
        assert!(
            !is_echo_request(&[], &echo, &headers),
            "no clients: the Pusher API answers"
        );
    }
}
