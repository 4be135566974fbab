//! `GET /api/conversations`: the caller's one-to-one and group conversations with their last
//! message and unread count, newest activity first.

use axum::{Router, extract::State, routing::get};
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    error::ApiError,
    state::AppState,
    store::{Conversation, conversation_key},
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/conversations", get(list))
}

#[utoipa::path(get, path = "/api/conversations", tag = "messages", security(("bearer" = [])), responses((status = 200, description = "{conversations}"), (status = 401, description = "not signed in")))]
async fn list(State(state): State<AppState>, caller: CurrentUser) -> Result<Json<Value>, ApiError> {
    let me = caller.id();
    let store = &state.store;
    let marks = store.read_marks(me).await?;
    let mark = |c: Conversation| marks.get(&conversation_key(c)).copied().unwrap_or(0);
    let mut out: Vec<(i64, Value)> = Vec::new();
    for group in store.groups_of(me).await? {
        let c = Conversation::Group(group.id);
        let last = store.last_message(me, c).await?;
        let unread = store.unread(me, c, mark(c)).await?;
        let order = last.as_ref().map_or(0, |m| m.id.0);
        out.push((
            order,
            json!({ "kind": "group", "id": group.id, "name": group.name, "is_all": group.is_all,
                    "last_message": last, "unread": unread }),
        ));
    }
    let partners = store.partners(me).await?;
    let ids: Vec<_> = partners.iter().map(|(id, _)| *id).collect();
    let names = store.user_names(&ids).await?;
    for (other, last_id) in partners {
        let c = Conversation::User(other);
        let last = store.last_message(me, c).await?;
        let unread = store.unread(me, c, mark(c)).await?;
        let name = names.get(&other).cloned().unwrap_or_default();
        out.push((
            last_id,
            json!({ "kind": "user", "id": other, "name": name, "is_all": false, "last_message": last, "unread": unread }),
        ));
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(Json(
        json!({ "conversations": out.into_iter().map(|(_, v)| v).collect::<Vec<_>>() }),
    ))
}
