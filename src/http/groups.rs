//! Groups (API.md § Groups): create, list, read, rename, delete, add and remove members, leave.
//! The rules (who may do what, "All") are in [`crate::domain::rules`]; every change is announced
//! live to the members concerned (AddedToGroup, RemovedFromGroup, GroupUpdated).

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json, path_id};
use crate::{
    domain::{GroupId, GroupName, Invalid, UserId, rules},
    error::ApiError,
    queue::Job,
    state::AppState,
    store::{Conversation, Group, StoreError, conversation_key},
    worker::{ADDED_TO_GROUP, GROUP_UPDATED, REMOVED_FROM_GROUP},
};

/// Most members named when creating a group.
const MAX_INITIAL_MEMBERS: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/groups", post(create).get(list))
        .route("/api/groups/{id}", get(show).patch(rename).delete(remove_group))
        .route("/api/groups/{id}/members", post(add_member))
        .route("/api/groups/{id}/members/{user}", delete(remove_member))
}

/// The id of the group `raw` names, if the caller is a member: 404 for no such group, 403
/// otherwise. One indexed lookup: for posting and reading, where the member list is not needed
/// ("All" has every user in it).
pub async fn member_of(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<GroupId, ApiError> {
    let id: GroupId = path_id(raw, "group")?;
    if state.store.is_member(id, caller.id()).await? {
        return Ok(id);
    }
    match state.store.group(id).await? {
        None => Err(ApiError::NotFound("group")),
        Some(_) => Err(not_a_member()),
    }
}

fn not_a_member() -> ApiError {
    ApiError::forbidden("not_a_member", "only members of this group may do that")
}

/// The group `raw` names with its members, if the caller is a member (see [`member_of`]).
pub async fn member_group(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<Group, ApiError> {
    let id: GroupId = path_id(raw, "group")?;
    let group = state.store.group(id).await?.ok_or(ApiError::NotFound("group"))?;
    if !group.member_ids.contains(&caller.id()) {
        return Err(not_a_member());
    }
    Ok(group)
}

fn refused(r: rules::Refusal) -> ApiError {
    ApiError::forbidden(r.code, r.message)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    #[schema(value_type = Vec<i64>)]
    member_ids: Vec<UserId>,
}

/// `POST /api/groups` → 201 `{group}`; the caller becomes owner and member.
#[utoipa::path(post, path = "/api/groups", tag = "groups", security(("bearer" = [])), request_body = CreateBody, responses((status = 201, description = "{group}"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = GroupName::parse(&body.name)?;
    if body.member_ids.len() > MAX_INITIAL_MEMBERS {
        return Err(Invalid::new("too_many_members", format!("at most {MAX_INITIAL_MEMBERS} member_ids")).into());
    }
    let group = match state.store.create_group(&name, caller.id(), &body.member_ids).await {
        Err(StoreError::UnknownReference) => {
            return Err(Invalid::new("unknown_user", "member_ids names a user that does not exist").into());
        }
        other => other?,
    };
    tracing::info!(group_id = %group.id, members = group.member_ids.len(), "group created");
    state
        .announce(Job::event_for(
            group.member_ids.clone(),
            ADDED_TO_GROUP,
            json!({ "group": group }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(json!({ "group": group }))))
}

/// `GET /api/groups` → `{groups: [group + unread]}`: the caller's groups, "All" first.
#[utoipa::path(get, path = "/api/groups", tag = "groups", security(("bearer" = [])), responses((status = 200, description = "{groups}"), (status = 401, description = "not signed in")))]
async fn list(State(state): State<AppState>, caller: CurrentUser) -> Result<Json<Value>, ApiError> {
    let marks = state.store.read_marks(caller.id()).await?;
    let mut groups = Vec::new();
    for group in state.store.groups_of(caller.id()).await? {
        let mark = marks
            .get(&conversation_key(Conversation::Group(group.id)))
            .copied()
            .unwrap_or(0);
        let unread = state
            .store
            .unread(caller.id(), Conversation::Group(group.id), mark)
            .await?;
        let mut v = json!(group);
        v["unread"] = json!(unread);
        groups.push(v);
    }
    Ok(Json(json!({ "groups": groups })))
}

/// `GET /api/groups/{id}` → `{group}` for members.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, description = "{group}"), (status = 403, description = "not a member"), (status = 404, description = "no such group")))]
async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let group = member_group(&state, &caller, &id).await?;
    Ok(Json(json!({ "group": group })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    #[serde(default)]
    name: Option<String>,
    /// Let members ask anonymously (`POST …/messages {anonymous: true}`).
    #[serde(default)]
    questions: Option<bool>,
}

/// `PATCH /api/groups/{id} {name?, questions?}` → `{group}` (owner only; never "All"): renames
/// the group and/or turns anonymous questions on or off.
#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = RenameBody, responses((status = 200, description = "{group}"), (status = 403, description = "not the owner"), (status = 404, description = "no such group"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn rename(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<RenameBody>,
) -> Result<Json<Value>, ApiError> {
    let mut group = member_group(&state, &caller, &id).await?;
    rules::may_manage(&group, caller.id()).map_err(refused)?;
    if body.name.is_none() && body.questions.is_none() {
        return Err(Invalid::new("nothing_to_change", "give name and/or questions").into());
    }
    let name = body.name.as_deref().map(GroupName::parse).transpose()?;
    if let Some(name) = &name {
        state.store.rename_group(group.id, name).await?;
        group.name = name.as_str().to_owned();
    }
    if let Some(on) = body.questions {
        state.store.set_questions(group.id, on).await?;
        group.questions = on;
    }
    state
        .announce(Job::event_for(
            group.member_ids.clone(),
            GROUP_UPDATED,
            json!({ "group": group }),
        ))
        .await;
    Ok(Json(json!({ "group": group })))
}

/// `DELETE /api/groups/{id}` → 204 (owner only; never "All").
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 204, description = "deleted"), (status = 403, description = "not the owner, or \"All\""), (status = 404, description = "no such group")))]
async fn remove_group(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let group = member_group(&state, &caller, &id).await?;
    rules::may_delete(&group, caller.id()).map_err(refused)?;
    state.store.delete_group(group.id).await?;
    tracing::info!(group_id = %group.id, "group deleted");
    state
        .announce(Job::event_for(
            group.member_ids,
            REMOVED_FROM_GROUP,
            json!({ "group_id": group.id }),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddBody {
    #[schema(value_type = i64)]
    user_id: UserId,
}

/// `POST /api/groups/{id}/members {user_id}` → `{group}` (owner only). Adding a member twice is
/// not an error.
#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path)), request_body = AddBody, responses((status = 200, description = "{group}"), (status = 403, description = "not the owner"), (status = 404, description = "no such group or user"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn add_member(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    Json(body): Json<AddBody>,
) -> Result<Json<Value>, ApiError> {
    let mut group = member_group(&state, &caller, &id).await?;
    rules::may_manage(&group, caller.id()).map_err(refused)?;
    let added = match state.store.add_member(&group, body.user_id).await {
        Err(StoreError::UnknownReference) => return Err(ApiError::NotFound("user")),
        other => other?,
    };
    if added {
        let others = group.member_ids.clone();
        group.member_ids.push(body.user_id);
        group.member_ids.sort_unstable();
        state
            .announce(Job::event_for(
                vec![body.user_id],
                ADDED_TO_GROUP,
                json!({ "group": group }),
            ))
            .await;
        state
            .announce(Job::event_for(others, GROUP_UPDATED, json!({ "group": group })))
            .await;
    }
    Ok(Json(json!({ "group": group })))
}

/// `DELETE /api/groups/{id}/members/{userId}` → 204: the owner removes a member, or a member
/// removes itself (leaves). Nobody leaves "All"; the owner deletes the group instead of leaving.
#[utoipa::path(delete, path = "/api/groups/{id}/members/{user}", tag = "groups", security(("bearer" = [])), params(("id" = i64, Path), ("user" = i64, Path)), responses((status = 204, description = "removed, or left"), (status = 403, description = "not allowed"), (status = 404, description = "no such group or member")))]
async fn remove_member(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut group = member_group(&state, &caller, &id).await?;
    let user: UserId = path_id(&user, "member")?;
    rules::may_remove(&group, caller.id(), user).map_err(refused)?;
    if !group.member_ids.contains(&user) {
        return Err(ApiError::NotFound("member"));
    }
    state.store.remove_member(group.id, user).await?;
    group.member_ids.retain(|m| *m != user);
    state
        .announce(Job::event_for(
            vec![user],
            REMOVED_FROM_GROUP,
            json!({ "group_id": group.id }),
        ))
        .await;
    state
        .announce(Job::event_for(
            group.member_ids.clone(),
            GROUP_UPDATED,
            json!({ "group": group }),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
