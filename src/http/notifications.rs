//! The notification centre (API.md § Notification centre): `GET /api/notifications?after=&timeout=`
//! answers at once when something newer than the cursor is waiting, otherwise holds the request
//! until a notification arrives (on any node) or the timeout passes.
//!
//! Notifications are derived from what is stored: messages to the user (`new_private_message`),
//! messages in its groups by others (`new_group_message`), and rows written with group changes
//! (`group_created`, `added_to_group`, and `mention` with the message that named the user). One
//! message to "All" is one row, not one per user. The cursor is opaque (`{messageId}.{rowId}`); without `after`, the server continues from what the
//! user last fetched, so notifications wait in the store until fetched. A waiting poll holds no
//! thread and no database connection: only a wake-up handle in the hub, and one user holds at most
//! [`MAX_POLLS_PER_USER`] of them on a node. Only broadcasts that make a notification wake polls.

use std::time::Duration;

use axum::{
    Router,
    extract::{Query, State},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{GroupId, Invalid, UserId},
    error::ApiError,
    state::AppState,
    store::{Cursor, Message, Stream},
    ws::waiters::MAX_POLLS_PER_USER,
};

/// Longest (and default) hold, in seconds.
const MAX_TIMEOUT: u64 = 60;
/// Most items read per source per answer.
const BATCH: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/notifications", get(poll))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    after: Option<String>,
    timeout: Option<u64>,
}

/// Position in the two sources: newest message and newest notification row already returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    message: i64,
    event: i64,
}

impl Position {
    fn parse(raw: &str) -> Option<Self> {
        let (m, e) = raw.split_once('.')?;
        Some(Self {
            message: m.parse().ok().filter(|v: &i64| *v >= 0)?,
            event: e.parse().ok().filter(|v: &i64| *v >= 0)?,
        })
    }

    fn encode(self) -> String {
        format!("{}.{}", self.message, self.event)
    }
}

/// `GET /api/notifications?after=&timeout=` → `{notifications, cursor}`; 429 `too_many_polls`
/// (at once) when the caller already has [`MAX_POLLS_PER_USER`] polls waiting on this node.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])), params(PollQuery), responses((status = 200, description = "{notifications, cursor}"), (status = 401, description = "not signed in"), (status = 422, description = "invalid input"), (status = 429, description = "too_many_polls: the caller already has 4 polls waiting")))]
async fn poll(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(q): Query<PollQuery>,
) -> Result<Json<Value>, ApiError> {
    let timeout = q.timeout.unwrap_or(MAX_TIMEOUT);
    if timeout > MAX_TIMEOUT {
        return Err(Invalid::new("invalid_timeout", format!("timeout must be 0 to {MAX_TIMEOUT} seconds")).into());
    }
    let me = caller.id();
    let start = match q.after.as_deref() {
        Some(raw) => Position::parse(raw)
            .ok_or_else(|| Invalid::new("invalid_cursor", "after must be a cursor from an earlier answer"))?,
        None => Position {
            message: state.store.cursor(me, Cursor::NotifiedMessage).await?,
            event: state.store.cursor(me, Cursor::NotifiedEvent).await?,
        },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    // Held until this function returns or its future is dropped (the client went away): the
    // place is given back either way.
    let poll = state
        .ws
        .hub
        .waiters
        .enter(me)
        .ok_or(ApiError::TooManyPolls(MAX_POLLS_PER_USER))?;
    let (items, end) = loop {
        // Listen before looking, so a wake-up between the query and the wait is not lost.
        let woken = poll.notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (items, end) = fetch(&state, me, start).await?;
        if !items.is_empty() || tokio::time::Instant::now() >= deadline {
            break (items, end);
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            break (items, end);
        }
    };
    drop(poll);
    // Only what moved is written: every write is a commit, and a crowd of woken polls is a
    // crowd of commits.
    if end.message != start.message {
        state
            .store
            .advance_cursor(me, Cursor::NotifiedMessage, end.message)
            .await?;
    }
    if end.event != start.event {
        state.store.advance_cursor(me, Cursor::NotifiedEvent, end.event).await?;
    }
    Ok(Json(json!({ "notifications": items, "cursor": end.encode() })))
}

/// Notifications after `from`, oldest first, and the position after the last one returned.
async fn fetch(state: &AppState, me: UserId, from: Position) -> Result<(Vec<Value>, Position), ApiError> {
    let store = &state.store;
    let private = store
        .messages_after(me, Stream::Individual, from.message, BATCH, true)
        .await?;
    let group = store
        .messages_after(me, Stream::Group, from.message, BATCH, true)
        .await?;
    let events = store.events_after(me, from.event, BATCH).await?;
    // A source that filled its batch may hold more after its last id: return nothing beyond it,
    // so the cursor never skips an unreturned message.
    let full_bound =
        |list: &[Message]| (list.len() == BATCH as usize).then(|| list.last().map_or(i64::MAX, |m| m.id.0));
    let upto = [full_bound(&private), full_bound(&group)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(i64::MAX);
    let mut messages: Vec<Message> = private.into_iter().chain(group).filter(|m| m.id.0 <= upto).collect();
    messages.sort_by_key(|m| m.id);
    let group_ids: Vec<GroupId> = messages.iter().filter_map(|m| m.group_id).collect();
    let names = store.group_names(&group_ids).await?;
    let mut end = from;
    let mut items: Vec<(chrono::DateTime<chrono::Utc>, Value)> = Vec::new();
    for m in &messages {
        end.message = end.message.max(m.id.0);
        let created = crate::domain::rfc3339_string(&m.created_at);
        let mut item = match m.group_id {
            None => json!({ "id": format!("m{}", m.id), "type": "new_private_message", "from": m.sender,
                            "message_id": m.id, "created_at": created }),
            Some(g) => json!({ "id": format!("m{}", m.id), "type": "new_group_message", "from": m.sender,
                               "group": { "id": g, "name": names.get(&g) }, "message_id": m.id, "created_at": created }),
        };
        // An anonymous question: `from` is null (the store never read the sender).
        if let Some(p) = &m.pseudonym {
            item["pseudonym"] = json!(p);
        }
        items.push((m.created_at, item));
    }
    for e in events {
        end.event = end.event.max(e.id);
        let mut item: Value = serde_json::from_str(&e.payload).unwrap_or_else(|_| json!({}));
        item["id"] = json!(format!("n{}", e.id));
        item["created_at"] = json!(crate::domain::rfc3339_string(&e.created_at));
        items.push((e.created_at, item));
    }
    items.sort_by_key(|(at, _)| *at);
    Ok((items.into_iter().map(|(_, v)| v).collect(), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let p = Position { message: 12, event: 3 };
        assert_eq!(Position::parse(&p.encode()), Some(p));
        for bad in ["", "1", "a.b", "1.-2", "1.2.3"] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
    }
}
