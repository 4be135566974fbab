//! Sending messages (API.md § Messages): validate, authorise, store the message with its broadcast
//! job in one transaction, answer 201 once committed, and hand the job to the outbox relay.
//! Nothing here waits for delivery.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use serde::Deserialize;
use serde_json::json;

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{ClientId, GroupId, MessageBody, UserId},
    error::ApiError,
    queue::Job,
    state::AppState,
    store::{Destination, Inserted, Message, Sender},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/{id}/messages", post(send_to_user))
        .route("/api/groups/{id}/messages", post(send_to_group))
}

#[derive(Deserialize)]
struct SendBody {
    body: String,
    #[serde(default)]
    client_id: Option<String>,
}

/// `POST /api/users/{id}/messages` → 201 `{message}` (200 for a retry with a known `client_id`).
async fn send_to_user(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let recipient: UserId = id.parse().map_err(|()| ApiError::NotFound("user"))?;
    if recipient == caller.id() {
        return Err(ApiError::Invalid(crate::domain::Invalid::new(
            "cannot_message_self",
            "a message needs another user as recipient",
        )));
    }
    if state.store.user(recipient).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    send(&state, &caller, Destination::User(recipient), body).await
}

/// `POST /api/groups/{id}/messages` → 201 `{message}`; 403 for non-members.
async fn send_to_group(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let group: GroupId = id.parse().map_err(|()| ApiError::NotFound("group"))?;
    if !state.store.is_member(group, caller.id()).await? {
        return Err(match state.store.group(group).await? {
            None => ApiError::NotFound("group"),
            Some(_) => ApiError::forbidden("not_a_member", "only members may post to this group"),
        });
    }
    send(&state, &caller, Destination::Group(group), body).await
}

async fn send(
    state: &AppState,
    caller: &CurrentUser,
    to: Destination,
    body: SendBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let text = MessageBody::parse(&body.body)?;
    let client_id = body.client_id.as_deref().map(ClientId::parse).transpose()?;
    let sender = Sender {
        id: caller.id(),
        name: caller.user.name.clone(),
    };
    let job = |m: &Message| Job::Message { message: m.clone() }.to_json();
    match state
        .store
        .insert_message(&sender, to, &text, client_id.as_ref(), job)
        .await
    {
        Ok(Inserted::New {
            message,
            outbox_id,
            job,
        }) => {
            state.hand_over(outbox_id, &job);
            Ok((StatusCode::CREATED, Json(json!({ "message": message }))))
        }
        Ok(Inserted::Replay(message)) => Ok((StatusCode::OK, Json(json!({ "message": message })))),
        Err(crate::store::StoreError::Duplicate(_)) => Err(ApiError::Conflict {
            code: "client_id_reused",
            message: "this client_id was used for a message to another conversation".into(),
        }),
        Err(e) => Err(e.into()),
    }
}
