//! The Pusher HTTP API's queries and `terminate_connections` (PROTOCOL.md §1.9), signed like
//! [`super::pusher_api`]'s triggers: `GET /apps/{id}/channels`, `GET /apps/{id}/channels/{name}`,
//! `GET /apps/{id}/channels/{name}/users`, `POST /apps/{id}/users/{user_id}/terminate_connections`.
//!
//! Answers are for the whole deployment: members from presence ([`crate::presence`]), subscription
//! counts from [`crate::presence::counts`] (other nodes' as of their last heartbeat, at most 2 s
//! old). laravel-echo-server's API ([`super::echo_api`]) answers from the same functions here.

use std::collections::{BTreeMap, HashMap};

use axum::{
    Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    extract::Json,
    pusher_api::{Signed, SignedQuery, publish},
};
use crate::{
    broadcast::{Broadcast, Target},
    domain::{ChannelKind, ChannelName},
    error::ApiError,
    state::AppState,
};

/// Longest user id `terminate_connections` takes (Pusher: 200).
const MAX_USER_ID: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{app_id}/channels", get(channels))
        .route("/apps/{app_id}/channels/{channel}", get(channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(users))
        .route("/apps/{app_id}/users/{user_id}/terminate_connections", post(terminate))
}

/// The channel named in the path (by name: the server-side APIs are routed under `/apps/` first).
#[derive(Deserialize)]
pub(super) struct ChannelPath {
    pub channel: String,
}

#[derive(Deserialize)]
pub(super) struct UserPath {
    pub user_id: String,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    pub filter_by_prefix: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
}

/// Which of `user_count` and `subscription_count` an `info` parameter asks for.
fn wanted(info: Option<&str>) -> Result<(bool, bool), ApiError> {
    let (mut users, mut subscriptions) = (false, false);
    for attribute in info
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match attribute {
            "user_count" => users = true,
            "subscription_count" => subscriptions = true,
            other => {
                return Err(ApiError::bad_request(
                    "invalid_info",
                    format!("unknown info attribute {other:?}: user_count, subscription_count"),
                ));
            }
        }
    }
    Ok((users, subscriptions))
}

/// A presence channel's name, or 400: only presence channels have users.
pub(super) fn presence_channel(raw: &str) -> Result<ChannelName, ApiError> {
    let name = ChannelName::parse(raw)?;
    if name.kind() != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "not_presence",
            "users are listed for presence channels only",
        ));
    }
    Ok(name)
}

/// Every occupied channel whose name starts with `prefix`, with its subscriptions over the
/// deployment.
pub(super) async fn occupied(state: &AppState, prefix: Option<&str>) -> Result<BTreeMap<String, usize>, ApiError> {
    let counts: HashMap<String, usize> = state
        .ws
        .presence
        .subscription_counts(state.ws.hub.channel_counts())
        .await?;
    Ok(counts
        .into_iter()
        .filter(|(c, _)| prefix.is_none_or(|p| c.starts_with(p)))
        .collect())
}

/// Sockets subscribed to `channel` over the deployment.
pub(super) async fn subscription_count(state: &AppState, channel: &ChannelName) -> Result<usize, ApiError> {
    let here = state.ws.hub.channel_count(channel);
    Ok(state.ws.presence.subscription_count(channel, here).await?)
}

/// Distinct users on a presence channel over the deployment.
pub(super) async fn user_count(state: &AppState, channel: &ChannelName) -> Result<usize, ApiError> {
    Ok(state.ws.presence.members(channel).await?.len())
}

#[utoipa::path(get, path = "/apps/{app_id}/channels", tag = "pusher http api", params(("app_id" = String, Path), ("filter_by_prefix" = Option<String>, Query), ("info" = Option<String>, Query, description = "user_count (with filter_by_prefix=presence-), subscription_count")), responses((status = 200, description = "{channels: {name: {user_count?, subscription_count?}}}"), (status = 400, description = "user_count without filter_by_prefix=presence-"), (status = 401, description = "missing or wrong signature")))]
pub(super) async fn channels(
    State(state): State<AppState>,
    _: SignedQuery,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (users, subscriptions) = wanted(q.info.as_deref())?;
    let prefix = q.filter_by_prefix.as_deref().filter(|p| !p.is_empty());
    if users && !prefix.is_some_and(|p| p.starts_with("presence-")) {
        return Err(ApiError::bad_request(
            "invalid_info",
            "user_count needs filter_by_prefix=presence-",
        ));
    }
    let mut out = Map::new();
    for (name, count) in occupied(&state, prefix).await? {
        let mut info = Map::new();
        if users && let Ok(channel) = ChannelName::parse(&name) {
            info.insert("user_count".into(), user_count(&state, &channel).await?.into());
        }
        if subscriptions {
            info.insert("subscription_count".into(), count.into());
        }
        out.insert(name, Value::Object(info));
    }
    Ok(Json(json!({ "channels": out })))
}

#[utoipa::path(get, path = "/apps/{app_id}/channels/{channel}", tag = "pusher http api", params(("app_id" = String, Path), ("channel" = String, Path), ("info" = Option<String>, Query, description = "user_count (presence channels), subscription_count")), responses((status = 200, description = "{occupied, user_count?, subscription_count?}"), (status = 401, description = "missing or wrong signature")))]
pub(super) async fn channel(
    State(state): State<AppState>,
    _: SignedQuery,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (users, subscriptions) = wanted(q.info.as_deref())?;
    let name = ChannelName::parse(&raw)?;
    if users && name.kind() != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "invalid_info",
            "user_count is for presence channels only",
        ));
    }
    let count = subscription_count(&state, &name).await?;
    let mut out = json!({ "occupied": count > 0 });
    if users {
        out["user_count"] = user_count(&state, &name).await?.into();
    }
    if subscriptions {
        out["subscription_count"] = count.into();
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/apps/{app_id}/channels/{channel}/users", tag = "pusher http api", params(("app_id" = String, Path), ("channel" = String, Path)), responses((status = 200, description = "{users: [{id}]}"), (status = 400, description = "not a presence channel"), (status = 401, description = "missing or wrong signature")))]
pub(super) async fn users(
    State(state): State<AppState>,
    _: SignedQuery,
    Path(ChannelPath { channel: raw }): Path<ChannelPath>,
) -> Result<Json<Value>, ApiError> {
    let name = presence_channel(&raw)?;
    let members = state.ws.presence.members(&name).await?;
    let users: Vec<Value> = members.into_iter().map(|m| json!({ "id": m.user_id })).collect();
    Ok(Json(json!({ "users": users })))
}

#[utoipa::path(post, path = "/apps/{app_id}/users/{user_id}/terminate_connections", tag = "pusher http api", params(("app_id" = String, Path), ("user_id" = String, Path)), responses((status = 200, description = "{}: every socket of the user, on every node, is being closed (4009)"), (status = 401, description = "missing or wrong signature"), (status = 422, description = "invalid user id")))]
pub(super) async fn terminate(
    State(state): State<AppState>,
    Path(UserPath { user_id: user }): Path<UserPath>,
    Signed(_): Signed<serde::de::IgnoredAny>,
) -> Result<Json<Value>, ApiError> {
    if user.is_empty() || user.len() > MAX_USER_ID || user.chars().any(char::is_control) {
        return Err(crate::domain::Invalid::new(
            "invalid_user_id",
            format!("a user id is 1 to {MAX_USER_ID} characters"),
        )
        .into());
    }
    let b = Broadcast {
        target: Target::Terminate { user },
        event: String::new(),
        data: String::new(),
        user_id: None,
        except: None,
        message_id: None,
    };
    publish(&state, &[b]).await?;
    Ok(Json(json!({})))
}
