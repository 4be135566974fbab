//! Groups and their members. "All" (`GroupId::ALL`) has every user as a member from registration.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{InsertedId, Store, StoreError, now, on_pool};
use crate::domain::{GroupId, GroupName, UserId};

/// A group as members see it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub owner_id: Option<UserId>,
    pub member_ids: Vec<UserId>,
    pub is_all: bool,
    #[serde(serialize_with = "crate::domain::rfc3339")]
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: GroupId,
    name: String,
    owner_id: Option<UserId>,
    is_all: bool,
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
            tx.commit().await?;
            id
        });
        Ok(Group {
            id: GroupId(id),
            name: name.as_str().to_owned(),
            owner_id: Some(owner),
            member_ids,
            is_all: false,
            created_at,
        })
    }

    /// The group with its member ids, if it exists.
    ///
    /// # Errors
    /// Database errors.
    pub async fn group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        let row: Option<GroupRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, owner_id, is_all, created_at FROM chat_groups WHERE id = ?")
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
            created_at: row.created_at,
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
}
