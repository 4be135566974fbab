//! `POST /broadcasting/auth`: signs a socket's subscription to a private or presence channel, as
//! laravel-echo and pusher-js ask for it (form-encoded `socket_id` + `channel_name`, or JSON).
//!
//! Rules: user N alone may join `private-individual.message.N` and `private-group.message.N`; any
//! signed-in user may join `presence-online` as itself; everything else is 403.

use axum::{
    Form, Router,
    extract::{FromRequest, Request, State},
    http::header,
    routing::post,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{ChannelKind, ChannelName, Invalid, channel::ONLINE},
    error::ApiError,
    protocol::{SocketId, auth},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/broadcasting/auth", post(authorize))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct AuthBody {
    socket_id: String,
    channel_name: String,
}

#[utoipa::path(post, path = "/broadcasting/auth", tag = "realtime", security(("bearer" = [])), request_body(content((AuthBody = "application/x-www-form-urlencoded"), (AuthBody = "application/json"))), responses((status = 200, description = "{auth} or {auth, channel_data}"), (status = 403, description = "channel not allowed"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn authorize(State(state): State<AppState>, caller: CurrentUser, req: Request) -> Result<Json<Value>, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body: AuthBody = if is_json {
        Json::from_request(req, &state).await?.0
    } else {
        Form::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_form", e.body_text()))?
            .0
    };
    let socket_id = SocketId::parse(&body.socket_id)
        .ok_or_else(|| Invalid::new("invalid_socket_id", "socket_id must look like 123.456"))?
        .to_string();
    let channel = ChannelName::parse(&body.channel_name)?;
    let app = &state.config.pusher;
    match grant(&channel, &caller.user) {
        Some(Grant::Private) => Ok(Json(
            json!({ "auth": auth::sign(app, &socket_id, channel.as_str(), None) }),
        )),
        Some(Grant::Presence(channel_data)) => {
            let channel_data = channel_data.to_string();
            let signature = auth::sign(app, &socket_id, channel.as_str(), Some(&channel_data));
            Ok(Json(json!({ "auth": signature, "channel_data": channel_data })))
        }
        None => {
            tracing::info!(user_id = %caller.id(), channel = %channel, "subscription refused");
            Err(ApiError::forbidden(
                "forbidden_channel",
                "you may not subscribe to this channel",
            ))
        }
    }
}

/// What chatbox's own rules let a user do on a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Grant {
    Private,
    /// Present as this member (`{user_id, user_info: {id, name}}`).
    Presence(Value),
}

/// Whether `channel` is one of chatbox's own chat channels, which chatbox alone authorises (for
/// Pusher and socket.io clients alike).
pub fn is_own_channel(channel: &ChannelName) -> bool {
    channel.user_channel().is_some() || channel.as_str() == ONLINE
}

/// The module's rules for `user` on `channel`; `None`: refused.
pub fn grant(channel: &ChannelName, user: &crate::store::User) -> Option<Grant> {
    let me = user.id;
    if channel.user_channel().is_some_and(|uc| uc.user() == me) {
        return Some(Grant::Private);
    }
    (channel.kind() == ChannelKind::Presence && channel.as_str() == ONLINE)
        .then(|| Grant::Presence(json!({ "user_id": me, "user_info": { "id": me, "name": user.name } })))
}
