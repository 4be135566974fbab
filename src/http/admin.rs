//! Admin (API.md § Admin): the admin page and its data, for accounts in `ADMIN_EMAILS` only.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{ChannelName, channel::ONLINE},
    error::ApiError,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(page))
        .route("/api/admin/presence", get(presence))
        .route("/api/admin/stats", get(stats))
}

/// The caller, if it is an admin: 401 when not signed in, 403 otherwise.
fn admin(caller: Option<CurrentUser>) -> Result<CurrentUser, ApiError> {
    let caller = caller.ok_or(ApiError::Unauthenticated)?;
    if !caller.user.is_admin {
        return Err(ApiError::forbidden("not_admin", "this is for administrators only"));
    }
    Ok(caller)
}

/// `GET /admin`: the admin page; a short HTML page with the status for everyone else (this is
/// opened in a browser, where a JSON error would read poorly).
async fn page(caller: Option<CurrentUser>) -> Response {
    let refusal = match admin(caller) {
        Ok(_) => return super::static_files::file("admin.html").await,
        Err(ApiError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            "Sign in first, with an administrator account.",
        ),
        Err(_) => (StatusCode::FORBIDDEN, "This page is for administrators only."),
    };
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>chatbox admin</title>\
         <body style=\"font-family:sans-serif;margin:3em\"><h1>{} {}</h1><p>{}</p><p><a href=\"/\">Back to chat</a></p>",
        refusal.0.as_u16(),
        refusal.0.canonical_reason().unwrap_or_default(),
        refusal.1
    );
    (refusal.0, Html(body)).into_response()
}

/// `GET /api/admin/presence` → `{online: [{user_id, name, connections, since}], count, nodes}`:
/// the whole cluster's view (connections summed over the nodes; `nodes` the live ones).
#[utoipa::path(get, path = "/api/admin/presence", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "{online, count, nodes}"), (status = 401, description = "not signed in"), (status = 403, description = "not an admin"), (status = 503, description = "presence (Redis) unavailable")))]
async fn presence(State(state): State<AppState>, caller: Option<CurrentUser>) -> Result<Json<Value>, ApiError> {
    admin(caller)?;
    let channel = ChannelName::parse(ONLINE).expect("a valid channel name");
    let nodes = state.ws.presence.nodes().await?;
    let mut online: Vec<Value> = state
        .ws
        .presence
        .members(&channel)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "user_id": p.user_id.parse::<i64>().map(Value::from).unwrap_or(Value::String(p.user_id)),
                "name": p.info.get("name").cloned().unwrap_or(Value::Null),
                "connections": p.connections,
                "since": crate::domain::rfc3339_string(&p.since),
            })
        })
        .collect();
    online.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let count = online.len();
    Ok(Json(json!({ "online": online, "count": count, "nodes": nodes })))
}

/// `GET /api/admin/stats` → `{connections, messages_per_second, queue_depth, uptime_seconds, long_polls,
/// long_poll_wakeups}`; `long_poll_wakeups` counts polls woken on this node since it started.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "live figures"), (status = 401, description = "not signed in"), (status = 403, description = "not an admin")))]
async fn stats(State(state): State<AppState>, caller: Option<CurrentUser>) -> Result<Json<Value>, ApiError> {
    admin(caller)?;
    let (db_connections, db_connections_idle) = state.store.pool_usage();
    let queue_depth = match state.queue.depth().await {
        Ok(d) => Value::from(d),
        Err(_) => Value::Null,
    };
    Ok(Json(json!({
        "connections": state.ws.presence.connections(),
        "channels": state.ws.hub.channels(),
        "messages_per_second": state.metrics.messages_per_second(),
        "messages_total": state.metrics.messages_total(),
        "queue_depth": queue_depth,
        "long_polls": state.ws.hub.waiters.len(),
        "long_poll_wakeups": state.ws.hub.waiters.wakeups(),
        "db_connections": db_connections,
        "db_connections_idle": db_connections_idle,
        "uptime_seconds": state.metrics.uptime().as_secs(),
    })))
}
