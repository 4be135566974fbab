//! Typing indicators: `POST /api/typing {to_user | to_group}` tells the people of one conversation
//! that the caller is typing, on their own private channels, and nobody else.
//!
//! The server names the sender (the signed-in caller; a `from` in the body is ignored) and
//! publishes straight onto the bus, like the Pusher HTTP API: typing is ephemeral, so it is sent
//! at most once and never stored or queued. It wakes no long poll.

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;
use serde_json::json;

use super::extract::{CurrentUser, Json};
use crate::{
    bus::{Broadcast, Target},
    domain::{GroupId, Invalid, UserId},
    error::ApiError,
    state::AppState,
    worker::TYPING_EVENT,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/typing", post(typing))
}

/// Exactly one of the two. Other fields (a `from` sent by an older client) are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
struct TypingBody {
    /// The other participant of a one-to-one conversation.
    #[schema(value_type = Option<i64>)]
    to_user: Option<UserId>,
    /// A group the caller is a member of; not "All".
    #[schema(value_type = Option<i64>)]
    to_group: Option<GroupId>,
}

/// `POST /api/typing {to_user}` or `{to_group}` → 204: `App\Events\Typing` with
/// `{from: {id, name}, to_user}` on the recipient's `private-individual.message.{id}`, or with
/// `{from, group_id}` on every other member's `private-group.message.{id}`.
#[utoipa::path(post, path = "/api/typing", tag = "messages", security(("bearer" = [])), request_body = TypingBody, responses((status = 204, description = "announced to the conversation"), (status = 401, description = "not signed in"), (status = 403, description = "not_a_member of the group"), (status = 404, description = "no such user or group"), (status = 422, description = "invalid_typing_target (not exactly one of to_user and to_group), cannot_type_to_self, typing_not_in_all")))]
async fn typing(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<TypingBody>,
) -> Result<StatusCode, ApiError> {
    let from = json!({ "id": caller.id(), "name": caller.user.name });
    let (target, data) = match (body.to_user, body.to_group) {
        (Some(user), None) => {
            if user == caller.id() {
                return Err(Invalid::new("cannot_type_to_self", "typing needs another user as recipient").into());
            }
            if state.store.user(user).await?.is_none() {
                return Err(ApiError::NotFound("user"));
            }
            let data = json!({ "from": from, "to_user": user });
            (Target::Individual { users: vec![user] }, data)
        }
        (None, Some(GroupId::ALL)) => {
            return Err(Invalid::new(
                "typing_not_in_all",
                "typing is not announced in \"All\": it would go to everyone online",
            )
            .into());
        }
        (None, Some(group)) => {
            let group = super::groups::member_group(&state, &caller, &group.to_string()).await?;
            let users: Vec<UserId> = group.member_ids.into_iter().filter(|m| *m != caller.id()).collect();
            if users.is_empty() {
                return Ok(StatusCode::NO_CONTENT);
            }
            (Target::Group { users }, json!({ "from": from, "group_id": group.id }))
        }
        _ => {
            return Err(Invalid::new("invalid_typing_target", "give exactly one of to_user and to_group").into());
        }
    };
    // Counted per user (over every node with Redis): the UI sends one every 1.5 s while typing.
    state
        .limits
        .hit(&crate::limits::TYPING_PER_USER, &caller.id().to_string())
        .await
        .map_err(|wait| ApiError::Throttled { retry_after: wait.0 })?;
    let broadcast = Broadcast {
        target,
        event: TYPING_EVENT.to_owned(),
        data: data.to_string(),
        user_id: None,
        except: None,
        message_id: None,
    };
    state
        .ws
        .bus
        .publish(&broadcast)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("publishing a typing indicator")))?;
    Ok(StatusCode::NO_CONTENT)
}
