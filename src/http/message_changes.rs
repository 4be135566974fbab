//! Editing and deleting one's own messages (API.md § Richer messages): `PATCH /api/messages/{id}
//! {body}` and `DELETE /api/messages/{id}`, by the sender only. The change and its broadcast job
//! are committed together; the worker then sends `App\Events\MessageUpdated {message}` or
//! `App\Events\MessageDeleted {message_id, user_id | group_id}` on the channels the message went
//! to: both participants' individual channels, or the members' group channels.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::patch,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json, path_id};
use crate::{
    domain::{GroupId, MessageBody, MessageId, chat_features},
    error::ApiError,
    queue::{Audience, Job},
    state::AppState,
    store::{Authored, Destination},
    worker::{MESSAGE_DELETED, MESSAGE_UPDATED},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/messages/{id}", patch(edit).delete(remove))
}

/// The message `raw` names, if the caller sent it: 404 for no such message, 403 `not_sender`.
async fn own_message(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<(MessageId, Authored), ApiError> {
    let id: MessageId = path_id(raw, "message")?;
    let authored = state.store.authored(id).await?.ok_or(ApiError::NotFound("message"))?;
    if authored.sender != caller.id() {
        return Err(ApiError::forbidden(
            "not_sender",
            "only the sender may change a message",
        ));
    }
    Ok((id, authored))
}

/// Who hears of a change to a message sent `to` by `sender`: everyone it reached.
async fn audience(state: &AppState, authored: Authored) -> Result<Audience, ApiError> {
    Ok(match authored.to {
        Destination::User(recipient) => Audience::Individuals {
            users: vec![authored.sender, recipient],
        },
        Destination::Group(GroupId::ALL) => Audience::Everyone,
        Destination::Group(group) => Audience::Users {
            users: state.store.member_ids(group).await?,
        },
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EditBody {
    body: String,
}

/// `PATCH /api/messages/{id} {body}` → `{message}` with `edited_at` (sender only). The mentions
/// follow the new body; an edit notifies nobody.
#[utoipa::path(patch, path = "/api/messages/{id}", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path)), request_body = EditBody, responses((status = 200, description = "{message}, as it is now"), (status = 403, description = "not_sender"), (status = 404, description = "no such message"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn edit(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<EditBody>,
) -> Result<Json<Value>, ApiError> {
    let (id, authored) = own_message(&state, &caller, &id).await?;
    let text = MessageBody::parse(&body.body)?;
    let mentions = match authored.to {
        Destination::Group(group) => {
            let candidates = chat_features::mention_candidates(text.as_str());
            let anonymous = state.store.message(id).await?.is_some_and(|m| m.pseudonym.is_some());
            let skip = (!anonymous).then(|| caller.id());
            state.store.members_named(group, &candidates, skip).await?
        }
        Destination::User(_) => Vec::new(),
    };
    let to = audience(&state, authored).await?;
    let job = |m: &crate::store::Message| {
        Job::Event {
            to,
            event: MESSAGE_UPDATED.to_owned(),
            data: json!({ "message": m }),
        }
        .to_json()
    };
    let changed = state
        .store
        .update_message(id, &text, mentions, job)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    state.hand_over(changed.outbox_id, &changed.job);
    Ok(Json(json!({ "message": changed.message })))
}

/// `DELETE /api/messages/{id}` → 204 (sender only): the message leaves history, backlog,
/// conversations and notifications for good.
#[utoipa::path(delete, path = "/api/messages/{id}", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 204, description = "deleted"), (status = 403, description = "not_sender"), (status = 404, description = "no such message"), (status = 401, description = "not signed in")))]
async fn remove(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (id, authored) = own_message(&state, &caller, &id).await?;
    let data = match authored.to {
        Destination::User(recipient) => json!({ "message_id": id, "user_id": recipient }),
        Destination::Group(group) => json!({ "message_id": id, "group_id": group }),
    };
    let job = Job::Event {
        to: audience(&state, authored).await?,
        event: MESSAGE_DELETED.to_owned(),
        data,
    }
    .to_json();
    // Its files go with it: read them before the row goes (their rows then lose the message).
    let files = state.store.attachment_ids_of(id).await?;
    let changed = state
        .store
        .delete_message(id, &job)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    state.hand_over(changed.outbox_id, &changed.job);
    if let Err(e) = state.store.delete_attachments(&files).await {
        // The hourly sweep deletes attachments whose message is gone.
        tracing::warn!(error = %crate::telemetry::chain(&e), "files of a deleted message left to the sweep");
    }
    Ok(StatusCode::NO_CONTENT)
}
