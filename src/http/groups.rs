//! Groups (API.md § Groups).

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;
use serde_json::json;

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{GroupName, Invalid, UserId},
    error::ApiError,
    state::AppState,
    store::StoreError,
};

/// Most members named when creating a group.
const MAX_INITIAL_MEMBERS: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/groups", post(create))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    member_ids: Vec<UserId>,
}

/// `POST /api/groups` → 201 `{group}`; the caller becomes owner and member.
async fn create(
    State(state): State<AppState>,
    caller: CurrentUser,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(json!({ "group": group }))))
}
