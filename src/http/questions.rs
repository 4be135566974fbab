//! Anonymous questions (API.md § Richer messages): the owner of a group turns them on
//! (`PATCH /api/groups/{id} {questions: true}`, in `groups`), members then post with
//! `anonymous: true`. Such a message keeps its sender in the store for abuse handling, but every
//! answer, event and notification shows it as `sender: null` with a per-group `pseudonym`; the
//! owner can mute an asker by that pseudonym without learning who it is.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{GroupId, Invalid, UserId, chat_features, rules},
    error::ApiError,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/groups/{id}/muted", post(mute).get(list_muted))
        .route("/api/groups/{id}/muted/{pseudonym}", delete(unmute))
}

/// 422 `questions_off`: anonymous posts where questions are not on (one-to-one, "All", or a group
/// whose owner did not turn them on).
pub fn questions_off() -> ApiError {
    Invalid::new(
        "questions_off",
        "anonymous questions are only for groups whose owner turned questions on",
    )
    .into()
}

/// The pseudonym `asker` posts under in `group`, after checking that questions are on there
/// (422 `questions_off`) and that the owner did not mute it (403 `muted`).
pub async fn asker_pseudonym(state: &AppState, group: GroupId, asker: UserId) -> Result<String, ApiError> {
    let questions = state
        .store
        .group(group)
        .await?
        .is_some_and(|g| g.questions && !g.is_all);
    if !questions {
        return Err(questions_off());
    }
    let key = state.store.pseudonym_key().await?;
    let pseudonym = chat_features::pseudonym(&key, group, asker);
    if state.store.muted(group).await?.contains(&pseudonym) {
        return Err(ApiError::forbidden(
            "muted",
            "the owner of this group muted your anonymous questions",
        ));
    }
    Ok(pseudonym)
}

/// The group `raw` names, if the caller owns it (404, 403 `not_a_member` / `not_owner`).
async fn owned(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<GroupId, ApiError> {
    let group = super::groups::member_group(state, caller, raw).await?;
    rules::may_manage(&group, caller.id()).map_err(|r| ApiError::forbidden(r.code, r.message))?;
    Ok(group.id)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    /// As anonymous messages show it: `anon-` and 12 hex digits.
    pseudonym: String,
}

/// `POST /api/groups/{id}/muted {pseudonym}` → 204 (owner only): that asker's anonymous posts in
/// this group get 403 `muted` from now on (its named posts still work). 404 for a pseudonym no
/// anonymous message of this group carries. Muting twice is not an error.
#[utoipa::path(post, path = "/api/groups/{id}/muted", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = MuteBody, responses((status = 204, description = "muted"), (status = 403, description = "not the owner"), (status = 404, description = "no such group or pseudonym"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn mute(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<MuteBody>,
) -> Result<StatusCode, ApiError> {
    let group = owned(&state, &caller, &id).await?;
    let pseudonym = chat_features::parse_pseudonym(&body.pseudonym)?;
    if !state.store.pseudonym_in(group, &pseudonym).await? {
        return Err(ApiError::NotFound("pseudonym"));
    }
    state.store.set_muted(group, &pseudonym, true).await?;
    tracing::info!(group_id = %group, "anonymous asker muted");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/groups/{id}/muted/{pseudonym}` → 204 (owner only); 404 if it was not muted.
#[utoipa::path(delete, path = "/api/groups/{id}/muted/{pseudonym}", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), ("pseudonym" = String, Path)), responses((status = 204, description = "unmuted"), (status = 403, description = "not the owner"), (status = 404, description = "not muted")))]
async fn unmute(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path((id, pseudonym)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let group = owned(&state, &caller, &id).await?;
    let pseudonym = chat_features::parse_pseudonym(&pseudonym)?;
    if !state.store.set_muted(group, &pseudonym, false).await? {
        return Err(ApiError::NotFound("pseudonym"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/groups/{id}/muted` → `{muted: [pseudonym]}` (owner only).
#[utoipa::path(get, path = "/api/groups/{id}/muted", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, description = "{muted: [pseudonym]}"), (status = 403, description = "not the owner"), (status = 404, description = "no such group")))]
async fn list_muted(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let group = owned(&state, &caller, &id).await?;
    Ok(Json(json!({ "muted": state.store.muted(group).await? })))
}
