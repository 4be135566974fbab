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
    let me = caller.id();
    if channel.user_channel().is_some_and(|uc| uc.user() == me) {
        return Ok(Json(
            json!({ "auth": auth::sign(app, &socket_id, channel.as_str(), None) }),
        ));
    }
    if channel.kind() == ChannelKind::Presence && channel.as_str() == ONLINE {
        let channel_data = json!({ "user_id": me, "user_info": { "id": me, "name": caller.user.name } }).to_string();
        let signature = auth::sign(app, &socket_id, channel.as_str(), Some(&channel_data));
        return Ok(Json(json!({ "auth": signature, "channel_data": channel_data })));
    }
    tracing::info!(user_id = %me, channel = %channel, "subscription refused");
    Err(ApiError::forbidden(
        "forbidden_channel",
        "you may not subscribe to this channel",
    ))
}
