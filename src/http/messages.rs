//! Sending messages (API.md § Messages): validate, authorise, store the message with its broadcast
//! job in one transaction, answer 201 once committed, and hand the job to the outbox relay.
//! Nothing here waits for delivery.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::post,
};
use serde::Deserialize;
use serde_json::json;

use super::extract::{CurrentUser, Json, path_id};
use crate::{
    domain::{ClientId, GroupId, Invalid, MessageBody, MessageId, UserId, chat_features},
    error::ApiError,
    queue::Job,
    state::AppState,
    store::{Conversation, Destination, Extras, Inserted, Message, Page, Sender, Stream},
    worker::MESSAGES_READ,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/{id}/messages", post(send_to_user).get(user_history))
        .route("/api/groups/{id}/messages", post(send_to_group).get(group_history))
        .route("/api/users/{id}/read", post(read_user))
        .route("/api/groups/{id}/read", post(read_group))
        .route("/api/delivery/ack", post(acknowledge))
}

/// Default and largest history page.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

impl PageQuery {
    fn parse(&self) -> Result<(Option<MessageId>, u32), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Invalid::new("invalid_limit", format!("limit must be 1 to {MAX_PAGE}")).into());
        }
        let before = match self.before {
            None => None,
            Some(b) if b > 0 => Some(MessageId(b)),
            Some(_) => return Err(Invalid::new("invalid_before", "before must be a message id").into()),
        };
        Ok((before, limit))
    }
}

/// The other participant of a one-to-one conversation with the caller: an existing user.
async fn other_user(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<UserId, ApiError> {
    let other: UserId = path_id(raw, "user")?;
    if other != caller.id() && state.store.user(other).await?.is_none() {
        return Err(ApiError::NotFound("user"));
    }
    Ok(other)
}

/// `GET /api/users/{id}/messages?before=&limit=` → `{messages: [oldest … newest], has_more}`:
/// the caller's conversation with user `id` (only its two participants can read it).
#[utoipa::path(get, path = "/api/users/{id}/messages", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path, description = "the other participant"), PageQuery), responses((status = 200, description = "{messages, has_more}"), (status = 404, description = "no such user"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn user_history(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page>, ApiError> {
    let (before, limit) = q.parse()?;
    let other = other_user(&state, &caller, &id).await?;
    let mut page = state.store.history_between(caller.id(), other, before, limit).await?;
    if other != caller.id() {
        let marks = state
            .store
            .read_marks_of_others(caller.id(), Conversation::User(other))
            .await?;
        page.read_marks = (!marks.is_empty()).then_some(marks);
    }
    Ok(Json(page))
}

/// `GET /api/groups/{id}/messages?before=&limit=`: members read the whole history, also what was
/// sent before they joined.
#[utoipa::path(get, path = "/api/groups/{id}/messages", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path), PageQuery), responses((status = 200, description = "{messages, has_more}"), (status = 403, description = "not a member"), (status = 404, description = "no such group"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn group_history(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page>, ApiError> {
    let (before, limit) = q.parse()?;
    let group = super::groups::member_of(&state, &caller, &id).await?;
    let mut page = state.store.group_history(group, before, limit).await?;
    if shares_read_marks(&state, group).await? {
        let marks = state
            .store
            .read_marks_of_others(caller.id(), Conversation::Group(group))
            .await?;
        page.read_marks = (!marks.is_empty()).then_some(marks);
    }
    Ok(Json(page))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    message_id: Option<i64>,
}

/// `POST /api/users/{id}/read {message_id?}` → 204: the conversation is read up to that message
/// (default: its newest; clamped to the newest message of the conversation at or below it). A
/// mark that moves forward is announced to the partner as `App\Events\MessagesRead`.
#[utoipa::path(post, path = "/api/users/{id}/read", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path)), request_body(content = Option<ReadBody>, description = "optional"), responses((status = 204, description = "marked read"), (status = 404, description = "no such user"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn read_user(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let other = other_user(&state, &caller, &id).await?;
    mark_read(&state, &caller, Conversation::User(other), body).await
}

/// `POST /api/groups/{id}/read {message_id?}` → 204; a mark that moves forward is announced to the
/// other members as `App\Events\MessagesRead`, except in "All" and in groups with questions on.
#[utoipa::path(post, path = "/api/groups/{id}/read", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path)), request_body(content = Option<ReadBody>, description = "optional"), responses((status = 204, description = "marked read"), (status = 403, description = "not a member"), (status = 404, description = "no such group"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn read_group(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let group = super::groups::member_of(&state, &caller, &id).await?;
    mark_read(&state, &caller, Conversation::Group(group), body).await
}

async fn mark_read(
    state: &AppState,
    caller: &CurrentUser,
    conversation: Conversation,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: empty means "up to the newest message".
    let body: ReadBody = if body.iter().all(u8::is_ascii_whitespace) {
        ReadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?
    };
    let upto = match body.message_id {
        Some(id) => state.store.newest_up_to(caller.id(), conversation, id).await?,
        None => state
            .store
            .last_message(caller.id(), conversation)
            .await?
            .map_or(0, |m| m.id.0),
    };
    if state.store.advance_read_mark(caller.id(), conversation, upto).await? {
        announce_read(state, caller.id(), conversation, upto).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Whether a group's members see each other's read marks ("seen by"): not in "All" (every user is
/// in it: the marks would be the whole user list, and every read an event to everyone online), and
/// not where anonymous questions are on (the moment a mark reaches a question could tell who asked
/// it).
async fn shares_read_marks(state: &AppState, group: GroupId) -> Result<bool, ApiError> {
    if group == GroupId::ALL {
        return Ok(false);
    }
    Ok(state.store.group(group).await?.is_some_and(|g| !g.questions))
}

/// Tells the other participants that `reader` read `conversation` up to `upto`: the partner on
/// its individual channel, the other members on their group channels. Not for "All": every
/// online user would get an event for every read of anyone.
async fn announce_read(
    state: &AppState,
    reader: UserId,
    conversation: Conversation,
    upto: i64,
) -> Result<(), ApiError> {
    let job = match conversation {
        Conversation::User(other) if other == reader => None,
        Conversation::User(other) => Job::individual_event(
            vec![other],
            MESSAGES_READ,
            json!({ "reader_id": reader, "up_to": upto, "user_id": other }),
        ),
        Conversation::Group(group) if !shares_read_marks(state, group).await? => None,
        Conversation::Group(group) => {
            let others: Vec<UserId> = state
                .store
                .member_ids(group)
                .await?
                .into_iter()
                .filter(|m| *m != reader)
                .collect();
            Job::event_for(
                others,
                MESSAGES_READ,
                json!({ "reader_id": reader, "up_to": upto, "group_id": group }),
            )
        }
    };
    state.announce(job).await;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AckBody {
    individual: Option<i64>,
    group: Option<i64>,
}

/// `POST /api/delivery/ack {individual?, group?}` → 204: the caller has received everything up to
/// these message ids on its individual / group channel; backlog on the next subscription starts
/// after them. Each id counts only up to the newest message that exists and was addressed to the
/// caller on that channel (a made-up or foreign id acknowledges nothing beyond that). Cursors never
/// move backwards.
#[utoipa::path(post, path = "/api/delivery/ack", tag = "messages", security(("bearer" = [])), request_body = AckBody, responses((status = 204, description = "acknowledged"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn acknowledge(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<AckBody>,
) -> Result<StatusCode, ApiError> {
    if body.individual.is_none() && body.group.is_none() {
        return Err(Invalid::new("nothing_to_acknowledge", "give individual and/or group message ids").into());
    }
    for (stream, upto) in [(Stream::Individual, body.individual), (Stream::Group, body.group)] {
        if let Some(id) = upto {
            state.store.acknowledge(caller.id(), stream, id).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SendBody {
    /// May be empty (or left out) when the message has attachments.
    #[serde(default)]
    body: String,
    #[serde(default)]
    client_id: Option<String>,
    /// Ids of the sender's own uploads (`POST /api/attachments`) to send with it; at most 10.
    #[serde(default)]
    attachment_ids: Vec<String>,
    /// Groups with questions on only: ask without being named (`sender: null`, a pseudonym).
    #[serde(default)]
    anonymous: bool,
}

/// `POST /api/users/{id}/messages` → 201 `{message}` (200 for a retry with a known `client_id`).
#[utoipa::path(post, path = "/api/users/{id}/messages", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path, description = "recipient")), request_body = SendBody, responses((status = 201, description = "{message}, stored"), (status = 200, description = "a retry: the stored message"), (status = 404, description = "no such user"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn send_to_user(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let recipient = other_user(&state, &caller, &id).await?;
    if recipient == caller.id() {
        return Err(Invalid::new("cannot_message_self", "a message needs another user as recipient").into());
    }
    if body.anonymous {
        return Err(super::questions::questions_off());
    }
    let (text, attachments) = text_and_attachments(&body)?;
    let extras = Extras {
        attachments,
        ..Extras::default()
    };
    send(&state, &caller, Destination::User(recipient), text, body, extras).await
}

/// `POST /api/groups/{id}/messages` → 201 `{message}`; 403 for non-members. `@name`s of members
/// become mentions. With `anonymous: true`: 422 `questions_off` unless the owner turned questions
/// on, 403 `muted` for an asker the owner muted.
#[utoipa::path(post, path = "/api/groups/{id}/messages", tag = "messages", security(("bearer" = [])), params(("id" = i64, Path)), request_body = SendBody, responses((status = 201, description = "{message}"), (status = 403, description = "not a member"), (status = 404, description = "no such group"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn send_to_group(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<SendBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let group = super::groups::member_of(&state, &caller, &id).await?;
    let (text, attachments) = text_and_attachments(&body)?;
    let pseudonym = if body.anonymous {
        Some(super::questions::asker_pseudonym(&state, group, caller.id()).await?)
    } else {
        None
    };
    let candidates = chat_features::mention_candidates(text.as_str());
    let skip = pseudonym.is_none().then(|| caller.id());
    let mentions = state.store.members_named(group, &candidates, skip).await?;
    let extras = Extras {
        pseudonym,
        mentions,
        attachments,
    };
    send(&state, &caller, Destination::Group(group), text, body, extras).await
}

/// The body and the uploads sent with it: a message may be empty only when it carries files.
fn text_and_attachments(body: &SendBody) -> Result<(MessageBody, Vec<crate::domain::FileId>), ApiError> {
    let attachments = super::attachments::parse_ids(&body.attachment_ids)?;
    let text = match MessageBody::parse(&body.body) {
        Err(_) if !attachments.is_empty() && body.body.trim().is_empty() => MessageBody::empty(),
        parsed => parsed?,
    };
    Ok((text, attachments))
}

async fn send(
    state: &AppState,
    caller: &CurrentUser,
    to: Destination,
    text: MessageBody,
    body: SendBody,
    extras: Extras,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let client_id = body.client_id.as_deref().map(ClientId::parse).transpose()?;
    let sender = Sender {
        id: caller.id(),
        name: caller.user.name.clone(),
    };
    let job = |m: &Message| Job::Message { message: m.clone() }.to_json();
    match state
        .store
        .insert_message(&sender, to, &text, client_id.as_ref(), extras, job)
        .await
    {
        Ok(Inserted::New {
            message,
            outbox_id,
            job,
        }) => {
            state.hand_over(outbox_id, &job);
            state.metrics.message_stored();
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
