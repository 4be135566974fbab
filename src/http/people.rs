//! People (API.md § People and search): the user list with online state, one user, search by
//! name prefix, and the caller's friends.

use std::collections::HashSet;

use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{delete, get},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    accounts::UserView,
    extract::{CurrentUser, Json, path_id},
};
use crate::{
    domain::{ChannelName, Invalid, UserId, channel::ONLINE},
    error::ApiError,
    state::AppState,
    store::Person,
};

/// Most results per kind in a search.
const SEARCH_LIMIT: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list))
        .route("/api/users/{id}", get(show))
        .route("/api/search", get(search))
        .route("/api/friends", get(friends).post(add_friend))
        .route("/api/friends/{id}", delete(remove_friend))
        .route("/api/presence/members", get(members))
}

/// Users on `presence-online`, on any node (this node's own view while Redis is unavailable).
pub async fn online(state: &AppState) -> HashSet<UserId> {
    let channel = ChannelName::parse(ONLINE).expect("a valid channel name");
    state
        .ws
        .presence
        .user_ids(&channel)
        .await
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect()
}

fn people_json(people: &[Person], online: &HashSet<UserId>) -> Vec<Value> {
    people
        .iter()
        .map(|p| {
            json!({ "id": p.id, "name": p.name, "online": online.contains(&p.id),
                    "avatar_url": crate::store::avatar_url(p.id, p.avatar.as_ref()) })
        })
        .collect()
}

/// `GET /api/users` → `{users: [{id, name, online}]}`.
#[utoipa::path(get, path = "/api/users", tag = "people", security(("bearer" = [])), responses((status = 200, description = "{users: [{id, name, online}]}"), (status = 401, description = "not signed in")))]
async fn list(State(state): State<AppState>, _caller: CurrentUser) -> Result<Json<Value>, ApiError> {
    let people = state.store.people().await?;
    Ok(Json(json!({ "users": people_json(&people, &online(&state).await) })))
}

/// `GET /api/users/{id}` → `{user}` (e-mail only for the user itself and admins).
#[utoipa::path(get, path = "/api/users/{id}", tag = "people", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 200, description = "{user}"), (status = 404, description = "no such user")))]
async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .store
        .user(path_id(&id, "user")?)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(json!({ "user": UserView::of(&user, Some(&caller.user)) })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `cursor` of the previous page; absent for the first.
    cursor: Option<String>,
    /// Members per page, 1 to 1,000 (default 500).
    limit: Option<usize>,
}

/// `GET /api/presence/members?cursor=&limit=` → `{members: [{user_id, user_info}], cursor}`:
/// `presence-online`'s members page by page (for channels past `PRESENCE_MAX_MEMBERS`, whose
/// `subscription_succeeded` carries the count only). `cursor` is `null` after the last page; a
/// member present throughout the walk appears in it at least once.
#[utoipa::path(get, path = "/api/presence/members", tag = "people", security(("bearer" = [])), params(PageQuery), responses((status = 200, description = "{members, cursor}"), (status = 401, description = "not signed in"), (status = 503, description = "presence (Redis) unavailable")))]
async fn members(
    State(state): State<AppState>,
    _caller: CurrentUser,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let channel = ChannelName::parse(ONLINE).expect("a valid channel name");
    let limit = q.limit.unwrap_or(500);
    if !(1..=crate::presence::MAX_PAGE).contains(&limit) {
        return Err(Invalid::new("invalid_limit", "limit must be 1 to 1000").into());
    }
    let (page, cursor) = state.ws.presence.page(&channel, q.cursor.as_deref(), limit).await?;
    let members: Vec<Value> = page
        .into_iter()
        .map(|(user_id, user_info)| json!({ "user_id": user_id, "user_info": user_info }))
        .collect();
    Ok(Json(json!({ "members": members, "cursor": cursor })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    name: String,
    #[serde(default, rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
}

/// `GET /api/search?name=…&type=user|group` → `{users, groups}`: names starting with `name`,
/// case-insensitive; groups only those the caller is a member of.
#[utoipa::path(get, path = "/api/search", tag = "people", security(("bearer" = [])), params(SearchQuery), responses((status = 200, description = "{users, groups}"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn search(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let prefix = q.name.trim();
    if prefix.is_empty() || prefix.chars().count() > 100 {
        return Err(Invalid::new("invalid_search", "name must be 1 to 100 characters").into());
    }
    let (users, groups) = match q.kind.as_deref() {
        None | Some("") => (true, true),
        Some("user") => (true, false),
        Some("group") => (false, true),
        Some(_) => return Err(Invalid::new("invalid_type", "type must be user or group").into()),
    };
    let users = if users {
        people_json(
            &state.store.search_people(prefix, SEARCH_LIMIT).await?,
            &online(&state).await,
        )
    } else {
        Vec::new()
    };
    let groups: Vec<Value> = if groups {
        state
            .store
            .search_groups(caller.id(), prefix, SEARCH_LIMIT)
            .await?
            .into_iter()
            .map(|(id, name)| json!({ "id": id, "name": name }))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(json!({ "users": users, "groups": groups })))
}

/// `GET /api/friends` → `{friends: [{id, name, online}]}`.
#[utoipa::path(get, path = "/api/friends", tag = "people", security(("bearer" = [])), responses((status = 200, description = "{friends}"), (status = 401, description = "not signed in")))]
async fn friends(State(state): State<AppState>, caller: CurrentUser) -> Result<Json<Value>, ApiError> {
    let friends = state.store.friends(caller.id()).await?;
    Ok(Json(json!({ "friends": people_json(&friends, &online(&state).await) })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FriendBody {
    username: String,
}

/// `POST /api/friends {username}` → 201 `{friends}`; 404 for an unknown name; adding a friend
/// twice is not an error.
#[utoipa::path(post, path = "/api/friends", tag = "people", security(("bearer" = [])), request_body = FriendBody, responses((status = 201, description = "{friends}"), (status = 404, description = "no such user"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input")))]
async fn add_friend(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<FriendBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let friend = state
        .store
        .person_named(body.username.trim())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    if friend.id == caller.id() {
        return Err(Invalid::new("cannot_befriend_self", "you cannot add yourself as a friend").into());
    }
    state.store.add_friend(caller.id(), friend.id).await?;
    let Json(list) = friends(State(state), caller).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

/// `DELETE /api/friends/{id}` → 204; 404 if that user is not a friend.
#[utoipa::path(delete, path = "/api/friends/{id}", tag = "people", security(("bearer" = [])), params(("id" = i64, Path)), responses((status = 204, description = "removed"), (status = 404, description = "not a friend")))]
async fn remove_friend(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.remove_friend(caller.id(), path_id(&id, "friend")?).await? {
        return Err(ApiError::NotFound("friend"));
    }
    Ok(StatusCode::NO_CONTENT)
}
