//! HTTP: axum routers per area, merged here with the layers every route shares (tracing, body
//! limit and deadline, sessions) and a JSON 404 for unknown API routes; [`serve`] is the listener.

pub mod accounts;
pub mod admin;
pub mod attachments;
pub mod body_deadline;
pub mod broadcasting_auth;
pub mod channels_api;
pub mod client_addr;
pub mod conversations;
pub mod echo_api;
pub mod extract;
pub mod groups;
pub mod imaging;
pub mod message_changes;
pub mod messages;
pub mod notifications;
pub mod oidc;
pub mod openapi;
pub mod origin;
pub mod passwords;
pub mod people;
pub mod pictures;
pub mod pusher_api;
pub mod questions;
pub mod serve;
pub mod static_files;
pub mod typing;
pub mod websocket;

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use tower_http::trace::TraceLayer;
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{error::ApiError, state::AppState};

/// Largest request body accepted (a message is at most 4,000 characters, so 64 KiB is ample);
/// uploads (attachments, avatars) have their own limit, `MAX_ATTACHMENT_BYTES`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Browser sessions end after this long without a request.
const SESSION_IDLE_DAYS: i64 = 14;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "chatbox_session";

/// The server-side HTTP APIs under `/apps/`, which share paths: laravel-echo-server's
/// ([`echo_api`]) for a request that presents a key without a Pusher signature, the Pusher HTTP
/// API ([`pusher_api`], [`channels_api`]) for every other.
fn apps_router(state: &AppState) -> axum::routing::MethodRouter<AppState> {
    use tower::ServiceExt;
    let unknown = || async { ApiError::NotFound("route") };
    let pusher = pusher_api::router()
        .merge(channels_api::router())
        .fallback(unknown)
        .with_state(state.clone());
    let echo = echo_api::router().fallback(unknown).with_state(state.clone());
    echo_api::mark_start();
    let clients: std::sync::Arc<[crate::config::EchoClient]> = state.config.echo_clients.clone().into();
    axum::routing::any(move |req: axum::extract::Request| async move {
        let api = if echo_api::is_echo_request(&clients, req.uri(), req.headers()) {
            echo
        } else {
            pusher
        };
        match api.oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    })
}

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
        .merge(messages::router())
        .merge(message_changes::router())
        .merge(questions::router())
        .merge(groups::router())
        .merge(broadcasting_auth::router())
        .merge(people::router())
        .merge(conversations::router())
        .merge(notifications::router())
        .merge(typing::router())
        .merge(admin::router())
        .merge(attachments::router(state.config.max_attachment_bytes))
        .merge(pictures::router(state.config.max_attachment_bytes))
        .route("/apps/{*rest}", apps_router(&state))
        .merge(oidc::router())
        .route("/app/{key}", get(websocket::upgrade))
        .route_service(
            crate::ws::socketio::PATH,
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    websocket::socketio_gate,
                ))
                .service(crate::ws::socketio::service(state.ws.clone())),
        )
        .route("/api/config", get(client_config))
        .route("/api/openapi.json", get(openapi::document))
        .route("/healthz", get(healthz))
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { ApiError::NotFound("route") }),
        )
        .fallback(static_files::serve)
        .layer(sessions)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.config.http_body_timeout,
            body_deadline::enforce,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// `GET /healthz`: 200 while the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the database answers"), (status = 503, description = "the database does not answer")))]
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<extract::Json<serde_json::Value>, ApiError> {
    state.store.ping().await?;
    Ok(extract::Json(serde_json::json!({ "status": "ok" })))
}

/// `GET /api/config` (public): what a Pusher or socket.io client needs to connect to this server, and whether
/// the sign-in page offers OpenID Connect (`oidc.name` labels its button).
#[utoipa::path(get, path = "/api/config", tag = "realtime", responses((status = 200, description = "{pusher: {key, ws_host, ws_port, force_tls}, socketio: {path}, oidc: {enabled: false} | {enabled: true, name, login_url}}")))]
async fn client_config(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> extract::Json<serde_json::Value> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.bind.to_string());
    let https =
        headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https") || state.config.cookie_secure;
    let default_port: u16 = if https { 443 } else { 80 };
    let (ws_host, ws_port) = match host.rsplit_once(':') {
        Some((h, p)) if !host.ends_with(']') => (h.to_owned(), p.parse().unwrap_or(default_port)),
        _ => (host.clone(), default_port),
    };
    let oidc = match &state.oidc {
        Some(provider) => {
            serde_json::json!({ "enabled": true, "name": provider.name(), "login_url": "/auth/oidc/login" })
        }
        None => serde_json::json!({ "enabled": false }),
    };
    extract::Json(serde_json::json!({
        "pusher": { "key": state.config.pusher.key, "ws_host": ws_host, "ws_port": ws_port, "force_tls": https },
        "socketio": { "path": crate::ws::socketio::PATH },
        "oidc": oidc,
    }))
}
