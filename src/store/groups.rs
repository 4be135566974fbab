//! Groups and their members. "All" (`GroupId::ALL`) has every user as a member from registration.

use chrono::{DateTime, Utc};
use serde::Serialize;

use serde_json::json;

use super::{Conversation, InsertedId, Store, StoreError, conversation_key, now, on_pool};
use crate::domain::{GroupId, GroupName, UserId};

/// Records in one transaction that `users` joined `group`: a notification row each
/// (`group_created` for the owner who created it, `added_to_group` otherwise) and a read mark at
/// the newest message, so earlier history is readable but not counted unread.
macro_rules! record_joins {
    ($tx:expr, $group:expr, $name:expr, $users:expr, $creator:expr, $at:expr) => {{
        let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM messages").fetch_one(&mut *$tx).await?;
        for user in $users {
            let kind = if Some(*user) == $creator { "group_created" } else { "added_to_group" };
            let payload = json!({ "type": kind, "group": { "id": $group, "name": $name } }).to_string();
            sqlx::query("INSERT INTO notifications (user_id, payload, created_at) VALUES (?, ?, ?)")
                .bind(*user)
                .bind(payload)
                .bind($at)
                .execute(&mut *$tx)
                .await?;
            sqlx::query("DELETE FROM read_marks WHERE user_id = ? AND conversation = ?")
                .bind(*user)
                .bind(conversation_key(Conversation::Group($group)))
                .execute(&mut *$tx)
                .await?;
            sqlx::query("INSERT INTO read_marks (user_id, conversation, last_read_id) VALUES (?, ?, ?)")
                .bind(*user)
                .bind(conversation_key(Conversation::Group($group)))
                .bind(newest)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// A group as members see it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub owner_id: Option<UserId>,
    pub member_ids: Vec<UserId>,
    pub is_all: bool,
    /// Whether members may ask anonymously (set by the owner; never in "All").
    pub questions: bool,
    #[serde(serialize_with = "crate::domain::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The group's picture, made of members' avatars (`GET` answers an SVG).
    pub picture_url: String,
}

/// The URL of a group's picture.
pub fn picture_url(group: GroupId) -> String {
    format!("/api/groups/{group}/picture")
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: GroupId,
    name: String,
    owner_id: Option<UserId>,
    is_all: bool,
    questions: bool,
    created_at: DateTime<Utc>,
}

impl Store {
    /// Creates a group owned by `owner` with `owner` and `members` as its members.
    ///
    /// # Errors
    /// [`StoreError::UnknownReference`] when a member id names no user; database errors.
    pub async fn create_group(&self, name: &GroupName, owner: UserId, members: &[UserId]) -> Result<Group, StoreError> {
        let created_at = now();
        let mut member_ids: Vec<UserId> = std::iter::once(owner).chain(members.iter().copied()).collect();
        member_ids.sort_unstable();
        member_ids.dedup();
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query("INSERT INTO chat_groups (name, owner_id, is_all, created_at) VALUES (?, ?, FALSE, ?)")
                .bind(name.as_str())
                .bind(owner)
                .bind(created_at)
                .execute(&mut *tx)
                .await?
                .inserted_id();
            let mut q = sqlx::QueryBuilder::new("INSERT INTO group_members (group_id, user_id, joined_at) ");
            q.push_values(&member_ids, |mut row, user| {
                row.push_bind(id).push_bind(*user).push_bind(created_at);
            });
            q.build().execute(&mut *tx).await?;
            record_joins!(tx, GroupId(id), name.as_str(), &member_ids, Some(owner), created_at);
            tx.commit().await?;
            id
        });
        Ok(Group {
            id: GroupId(id),
            name: name.as_str().to_owned(),
            owner_id: Some(owner),
            member_ids,
            is_all: false,
            questions: false,
            created_at,
            picture_url: picture_url(GroupId(id)),
        })
    }

    /// The group with its member ids, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        let row: Option<GroupRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, owner_id, is_all, questions, created_at FROM chat_groups WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let member_ids = self.member_ids(id).await?;
        Ok(Some(Group {
            id: row.id,
            name: row.name,
            owner_id: row.owner_id,
            member_ids,
            is_all: row.is_all,
            questions: row.questions,
            created_at: row.created_at,
            picture_url: picture_url(row.id),
        }))
    }

    /// Whether `user` is a member of `group` (false for an unknown group).
    ///
    /// # Errors
    /// Database errors.
    pub async fn is_member(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?")
                .bind(group)
                .bind(user)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Member ids of `group`, ascending.
    ///
    /// # Errors
    /// Database errors.
    pub async fn member_ids(&self, group: GroupId) -> Result<Vec<UserId>, StoreError> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id")
                .bind(group)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The groups `member` belongs to ("All" first, then by name), with their member ids.
    ///
    /// # Errors
    /// Database errors.
    pub async fn groups_of(&self, member: UserId) -> Result<Vec<Group>, StoreError> {
        let (rows, members): (Vec<GroupRow>, Vec<(GroupId, UserId)>) = on_pool!(self, pool => {
            let rows = sqlx::query_as(
                "SELECT g.id, g.name, g.owner_id, g.is_all, g.questions, g.created_at FROM chat_groups g \
                 JOIN group_members gm ON gm.group_id = g.id AND gm.user_id = ? ORDER BY g.is_all DESC, g.name, g.id",
            )
            .bind(member)
            .fetch_all(pool)
            .await?;
            let members = sqlx::query_as(
                "SELECT gm.group_id, gm.user_id FROM group_members gm \
                 JOIN group_members mine ON mine.group_id = gm.group_id AND mine.user_id = ? ORDER BY gm.user_id",
            )
            .bind(member)
            .fetch_all(pool)
            .await?;
            (rows, members)
        });
        let mut by_group: std::collections::HashMap<GroupId, Vec<UserId>> = Default::default();
        for (g, u) in members {
            by_group.entry(g).or_default().push(u);
        }
        Ok(rows
            .into_iter()
            .map(|r| Group {
                member_ids: by_group.remove(&r.id).unwrap_or_default(),
                picture_url: picture_url(r.id),
                id: r.id,
                name: r.name,
                owner_id: r.owner_id,
                is_all: r.is_all,
                questions: r.questions,
                created_at: r.created_at,
            })
            .collect())
    }

    /// Renames a group.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rename_group(&self, group: GroupId, name: &GroupName) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("UPDATE chat_groups SET name = ? WHERE id = ?").bind(name.as_str()).bind(group).execute(pool).await.map(drop)?
        });
        Ok(())
    }

    /// Deletes a group with its members and messages, and the messages' attachments with their
    /// files.
    ///
    /// # Errors
    /// Database errors. Attachments that cannot be deleted at once are logged and left to the
    /// hourly sweep: the group is deleted either way.
    pub async fn delete_group(&self, group: GroupId) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM chat_groups WHERE id = ? AND is_all = FALSE").bind(group).execute(pool).await.map(drop)?
        });
        if let Err(e) = self.delete_orphaned_attachments().await {
            tracing::warn!(error = %crate::telemetry::chain(&e), group_id = %group, "attachments of a deleted group left to the sweep");
        }
        Ok(())
    }

    /// Adds `user` to `group`; false if it already was a member.
    ///
    /// # Errors
    /// [`StoreError::UnknownReference`] for an unknown user; database errors.
    pub async fn add_member(&self, group: &Group, user: UserId) -> Result<bool, StoreError> {
        let at = now();
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let present: Option<i64> = sqlx::query_scalar("SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?")
                .bind(group.id)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
            if present.is_some() {
                false
            } else {
                sqlx::query("INSERT INTO group_members (group_id, user_id, joined_at) VALUES (?, ?, ?)")
                    .bind(group.id)
                    .bind(user)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                record_joins!(tx, group.id, group.name.as_str(), &[user], None::<UserId>, at);
                tx.commit().await?;
                true
            }
        }))
    }

    /// Removes `user` from `group`; false if it was not a member.
    ///
    /// # Errors
    /// Database errors.
    pub async fn remove_member(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        let n = on_pool!(self, pool => {
            sqlx::query("DELETE FROM group_members WHERE group_id = ? AND user_id = ?")
                .bind(group)
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
