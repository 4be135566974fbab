//! The Pusher HTTP API (PROTOCOL.md §1.9), so a backend that triggers events through a Pusher
//! server library (pusher-http-php, Laravel's `pusher` broadcaster, pusher-http-node, …) can use
//! chatbox unchanged: `POST /apps/{app_id}/events` and `POST /apps/{app_id}/batch_events` here,
//! the channel queries and `terminate_connections` in [`super::channels_api`].
//!
//! Requests are signed with the app secret: query parameters `auth_key`, `auth_timestamp` (at most
//! 600 s off), `auth_version=1.0`, `body_md5` and `auth_signature = HMAC-SHA256(secret,
//! "POST\n{path}\n{sorted params}")`. Events go straight onto the bus (at most once, like
//! Pusher's own triggers); chat messages keep their durable path through the store and queue.

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::{FromRequest, Request, State},
    http::Uri,
    routing::post,
};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{MAX_BODY_BYTES, extract::Json};
use crate::{
    broadcast::check_outside_event,
    bus::{Broadcast, Target},
    config::PusherApp,
    domain::{ChannelName, Invalid},
    error::ApiError,
    protocol::SocketId,
    state::AppState,
};

pub use crate::broadcast::MAX_EVENT_DATA;
/// Channels one trigger may name (Pusher: 100).
const MAX_CHANNELS: usize = 100;
/// Events one batch may carry (Pusher: 10).
const MAX_BATCH: usize = 10;
/// Longest event name.
const MAX_EVENT_NAME: usize = 200;
/// How far `auth_timestamp` may be from the server's clock.
const MAX_CLOCK_SKEW_SECS: u64 = 600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app_id}/events", post(trigger))
        .route("/apps/{app_id}/batch_events", post(batch))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct Trigger {
    pub name: String,
    /// The payload, a string (usually JSON text).
    pub data: String,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub channel: Option<String>,
    /// A socket that must not receive the event (the one whose action caused it).
    #[serde(default)]
    pub socket_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Batch {
    batch: Vec<Trigger>,
}

/// A request body signed with the app secret: the signature, key, clock and digest are checked
/// before the body is read as `T`.
pub(super) struct Signed<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Signed<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // The route is /apps/{app_id}/…
        let app_id = parts.uri.path().split('/').nth(2).unwrap_or_default();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::PayloadTooLarge)?;
        check_signature(&state.config.pusher, parts.method.as_str(), app_id, &parts.uri, &body)?;
        Ok(Self(parse(&body)?))
    }
}

/// A signed request without a body (the GET queries): the signature, key and clock are checked.
pub(super) struct SignedQuery;

impl axum::extract::FromRequestParts<AppState> for SignedQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, ApiError> {
        let app_id = parts.uri.path().split('/').nth(2).unwrap_or_default();
        check_signature(&state.config.pusher, parts.method.as_str(), app_id, &parts.uri, &[])?;
        Ok(Self)
    }
}

#[utoipa::path(post, path = "/apps/{app_id}/events", tag = "pusher http api", params(("app_id" = String, Path)), request_body = Trigger, responses((status = 200, description = "{}: published"), (status = 401, description = "missing or wrong signature"), (status = 404, description = "unknown app"), (status = 413, description = "data over 10 KB"), (status = 422, description = "invalid event")))]
async fn trigger(State(state): State<AppState>, Signed(event): Signed<Trigger>) -> Result<Json<Value>, ApiError> {
    publish(&state, &broadcasts(event)?).await?;
    Ok(Json(json!({})))
}

#[utoipa::path(post, path = "/apps/{app_id}/batch_events", tag = "pusher http api", params(("app_id" = String, Path)), request_body = Batch, responses((status = 200, description = "{}: published"), (status = 401, description = "missing or wrong signature"), (status = 404, description = "unknown app"), (status = 413, description = "data over 10 KB"), (status = 422, description = "invalid event or over 10 events")))]
async fn batch(State(state): State<AppState>, Signed(Batch { batch }): Signed<Batch>) -> Result<Json<Value>, ApiError> {
    if batch.len() > MAX_BATCH {
        return Err(Invalid::new("too_many_events", format!("a batch holds at most {MAX_BATCH} events")).into());
    }
    // Every event is checked before any is published: a bad one rejects the whole batch.
    let mut all = Vec::new();
    for event in batch {
        all.extend(broadcasts(event)?);
    }
    publish(&state, &all).await?;
    Ok(Json(json!({})))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))
}

pub(super) async fn publish(state: &AppState, broadcasts: &[Broadcast]) -> Result<(), ApiError> {
    for b in broadcasts {
        state
            .ws
            .bus
            .publish(b)
            .await
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("publishing a triggered event")))?;
    }
    Ok(())
}

/// One broadcast per channel of a validated trigger.
pub(super) fn broadcasts(t: Trigger) -> Result<Vec<Broadcast>, ApiError> {
    if t.name.is_empty() || t.name.len() > MAX_EVENT_NAME {
        return Err(Invalid::new(
            "invalid_event",
            format!("name must be 1 to {MAX_EVENT_NAME} characters"),
        )
        .into());
    }
    if t.data.len() > MAX_EVENT_DATA {
        return Err(ApiError::PayloadTooLarge);
    }
    let channels = match (t.channels, t.channel) {
        (Some(list), None) => list,
        (None, Some(one)) => vec![one],
        _ => return Err(Invalid::new("invalid_event", "give either channels (a list) or channel").into()),
    };
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(Invalid::new("invalid_event", format!("1 to {MAX_CHANNELS} channels per event")).into());
    }
    let except = match t.socket_id.as_deref() {
        None => None,
        Some(raw) => Some(
            SocketId::parse(raw).ok_or_else(|| Invalid::new("invalid_socket_id", "socket_id must be digits.digits"))?,
        ),
    };
    channels
        .into_iter()
        .map(|raw| {
            let channel = ChannelName::parse(&raw)?;
            check_outside_event(channel.as_str(), &t.name)
                .map_err(|e| ApiError::bad_request("reserved_event", e.to_string()))?;
            Ok(Broadcast {
                target: Target::Channel {
                    channel: channel.as_str().to_owned(),
                },
                event: t.name.clone(),
                data: t.data.clone(),
                user_id: None,
                except,
                message_id: None,
            })
        })
        .collect()
}

/// Checks the request signature, the key, the clock and the body digest.
fn check_signature(app: &PusherApp, method: &str, app_id: &str, uri: &Uri, body: &[u8]) -> Result<(), ApiError> {
    if app_id != app.id {
        return Err(ApiError::NotFound("app"));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|_| ApiError::BadSignature("the query string cannot be read".into()))?;
    let params: BTreeMap<String, String> = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let get = |k: &str| params.get(k).map(String::as_str);
    let bad = |why: &str| ApiError::BadSignature(why.to_owned());
    if get("auth_key") != Some(app.key.as_str()) {
        return Err(bad("unknown or missing auth_key"));
    }
    let timestamp: i64 = get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad("missing auth_timestamp"))?;
    // `abs_diff`: a subtraction would overflow for a timestamp near i64::MIN or i64::MAX, and
    // this runs before the signature is checked, so anyone can send one.
    if chrono::Utc::now().timestamp().abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err(bad("auth_timestamp is more than 600 s from the server's clock"));
    }
    if !body.is_empty() && get("body_md5") != Some(hex::encode(Md5::digest(body)).as_str()) {
        return Err(bad("body_md5 does not match the body"));
    }
    let signature = get("auth_signature")
        .and_then(|s| hex::decode(s).ok())
        .ok_or_else(|| bad("missing auth_signature"))?;
    let signed = string_to_sign(method, uri.path(), &params);
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app.secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature).map_err(|_| bad("invalid auth_signature"))
}

/// `"{method}\n{path}\n{k=v&…}"` over the parameters sorted by (lowercased) key, without
/// `auth_signature`, values not escaped.
pub fn string_to_sign(method: &str, path: &str, params: &BTreeMap<String, String>) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "auth_signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// Signs a POST the way Pusher server libraries do; returns the query string to append.
pub fn sign_request(app: &PusherApp, path: &str, body: &[u8], timestamp: i64) -> String {
    sign("POST", app, path, &[], body, timestamp)
}

/// Signs a request with its own query parameters `extra` (values not escaped: plain ones only);
/// returns the whole query string.
pub fn sign(method: &str, app: &PusherApp, path: &str, extra: &[(&str, &str)], body: &[u8], timestamp: i64) -> String {
    let mut params = BTreeMap::from([
        ("auth_key".to_owned(), app.key.clone()),
        ("auth_timestamp".to_owned(), timestamp.to_string()),
        ("auth_version".to_owned(), "1.0".to_owned()),
    ]);
    if !body.is_empty() {
        params.insert("body_md5".to_owned(), hex::encode(Md5::digest(body)));
    }
    params.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app.secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(string_to_sign(method, path, &params).as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{}&auth_signature={signature}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn app() -> PusherApp {
        PusherApp {
            id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: Secret::new("7ad3773142a6692b25b8"),
        }
    }

    /// Pusher's documented worked example (REST API reference, "Worked example").
    #[test]
    fn matches_the_documented_worked_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let query = sign_request(&app(), "/apps/3/events", body, 1353088179);
        assert!(query.contains("body_md5=ec365a775a4cd0599faeb73354201b6f"), "{query}");
        assert!(
            query.ends_with("auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"),
            "{query}"
        );
    }

    #[test]
    fn rejects_a_changed_body_or_a_stale_clock() {
        let body = br#"{"name":"e","channel":"c","data":"{}"}"#;
        let with = |query: &str| -> Uri { format!("/apps/3/events?{query}").parse().unwrap() };
        let now = chrono::Utc::now().timestamp();
        let query = sign_request(&app(), "/apps/3/events", body, now);
        assert!(check_signature(&app(), "POST", "3", &with(&query), body).is_ok());
        let other = br#"{"name":"e","channel":"d","data":"{}"}"#;
        assert!(check_signature(&app(), "POST", "3", &with(&query), other).is_err());
        let stale = sign_request(&app(), "/apps/3/events", body, now - 601);
        assert!(check_signature(&app(), "POST", "3", &with(&stale), body).is_err());
        for extreme in [i64::MIN, i64::MAX] {
            let query = sign_request(&app(), "/apps/3/events", body, extreme);
            assert!(matches!(
                check_signature(&app(), "POST", "3", &with(&query), body),
                Err(ApiError::BadSignature(_))
            ));
        }
        assert!(matches!(
            check_signature(&app(), "POST", "4", &with(&query), body),
            Err(ApiError::NotFound(_))
        ));
    }
}
