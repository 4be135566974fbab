//! Who may do what to a group. Kept apart from HTTP so the rules read as one list:
//! - anyone may create a group and becomes its owner;
//! - the owner renames, adds and removes members, and deletes the group;
//! - a member may leave (remove itself); the owner deletes the group instead of leaving;
//! - "All" has no owner: nobody renames it, deletes it, manages its members or leaves it.

use crate::{domain::UserId, store::Group};

/// A refused action: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

const ALL_IS_FIXED: Refusal = Refusal {
    code: "all_group_is_fixed",
    message: "\"All\" includes every user: it cannot be changed, deleted or left",
};
const NOT_OWNER: Refusal = Refusal {
    code: "not_owner",
    message: "only the group's owner may do that",
};

/// Rename, add members.
pub fn may_manage(group: &Group, actor: UserId) -> Result<(), Refusal> {
    if group.is_all {
        return Err(ALL_IS_FIXED);
    }
    if group.owner_id != Some(actor) {
        return Err(NOT_OWNER);
    }
    Ok(())
}

/// Delete the group.
pub fn may_delete(group: &Group, actor: UserId) -> Result<(), Refusal> {
    may_manage(group, actor)
}

/// Remove `member` (leave, when `member == actor`).
pub fn may_remove(group: &Group, actor: UserId, member: UserId) -> Result<(), Refusal> {
    if group.is_all {
        return Err(ALL_IS_FIXED);
    }
    match (group.owner_id == Some(actor), actor == member) {
        (true, true) => Err(Refusal {
            code: "owner_cannot_leave",
            message: "the owner cannot leave the group; delete it instead",
        }),
        (true, false) | (false, true) => Ok(()),
        (false, false) => Err(NOT_OWNER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GroupId;

    fn group(owner: Option<i64>, is_all: bool) -> Group {
        Group {
            id: GroupId(if is_all { 1 } else { 2 }),
            name: "g".into(),
            owner_id: owner.map(UserId),
            member_ids: vec![UserId(1), UserId(2), UserId(3)],
            is_all,
            questions: false,
            created_at: chrono::Utc::now(),
            picture_url: String::new(),
        }
    }

    #[test]
    fn owner_manages_members_leave_nobody_touches_all() {
        let g = group(Some(1), false);
        assert!(may_manage(&g, UserId(1)).is_ok());
        assert_eq!(may_manage(&g, UserId(2)).unwrap_err().code, "not_owner");
        assert!(may_remove(&g, UserId(1), UserId(2)).is_ok(), "owner removes a member");
        assert!(may_remove(&g, UserId(2), UserId(2)).is_ok(), "a member leaves");
        assert_eq!(may_remove(&g, UserId(2), UserId(3)).unwrap_err().code, "not_owner");
        assert_eq!(
            may_remove(&g, UserId(1), UserId(1)).unwrap_err().code,
            "owner_cannot_leave"
        );
        let all = group(None, true);
        for user in [1, 2] {
            assert_eq!(
                may_remove(&all, UserId(user), UserId(user)).unwrap_err().code,
                "all_group_is_fixed"
            );
            assert_eq!(may_delete(&all, UserId(user)).unwrap_err().code, "all_group_is_fixed");
            assert_eq!(may_manage(&all, UserId(user)).unwrap_err().code, "all_group_is_fixed");
        }
    }
}
