//! HTTP: axum routers per area, merged here with the layers every route shares (tracing, body
//! limit, sessions) and a JSON 404 for unknown API routes.

pub mod accounts;
pub mod extract;
pub mod origin;
pub mod throttle;

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{error::ApiError, state::AppState};

/// Largest request body accepted (a message is at most 4,000 characters, so 64 KiB is ample).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Browser sessions end after this long without a request.
const SESSION_IDLE_DAYS: i64 = 14;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "chatbox_session";

/// Every route of the application.
pub fn router(state: AppState) -> Router {
    let sessions = SessionManagerLayer::new(state.store.clone())
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        // Strict: the browser never sends the cookie on a request another site started.
        .with_same_site(SameSite::Strict)
        .with_secure(state.config.cookie_secure)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::days(
            SESSION_IDLE_DAYS,
        )));
    Router::new()
        .merge(accounts::router())
        .route("/healthz", get(healthz))
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { ApiError::NotFound("route") }),
        )
        .layer(sessions)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /healthz`: 200 while the database answers, 503 otherwise.
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<extract::Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    Ok(extract::Json(serde_json::json!({ "status": "ok" })))
}

/// Serialises a timestamp as RFC 3339 UTC with milliseconds (`2026-11-21T20:08:55.123Z`).
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
