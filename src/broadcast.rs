//! What travels from producers (the worker, the HTTP inputs, client events, presence) through the
//! bus to every node's hub: [`Broadcast`], its [`Target`], and the event names clients listen
//! for. Bus, worker, hub and presence all use these types; none of them owns them.

use serde::{Deserialize, Serialize};

use crate::{
    domain::{MessageId, UserId},
    protocol::SocketId,
};

/// Event names, as laravel-echo's default namespace expects them.
pub mod events {
    /// Event name of a one-to-one message (laravel-echo: `.listen('IndividualMessage')`).
    pub const INDIVIDUAL_EVENT: &str = "App\\Events\\IndividualMessage";
    /// Event name of a group message (laravel-echo: `.listen('GroupMessage')`).
    pub const GROUP_EVENT: &str = "App\\Events\\GroupMessage";
    /// The user was added to a group, or a group it is in was created: `{group}`.
    pub const ADDED_TO_GROUP: &str = "App\\Events\\AddedToGroup";
    /// The user left, was removed, or the group was deleted: `{group_id}`.
    pub const REMOVED_FROM_GROUP: &str = "App\\Events\\RemovedFromGroup";
    /// A group the user is in was renamed or changed members: `{group}`.
    pub const GROUP_UPDATED: &str = "App\\Events\\GroupUpdated";
    /// Someone signed up: `{user: {id, name}}`, to everyone.
    pub const USER_REGISTERED: &str = "App\\Events\\UserRegistered";
    /// Someone set or removed their avatar: `{user: {id, name, avatar_url}}`, to everyone.
    pub const USER_UPDATED: &str = "App\\Events\\UserUpdated";
    /// Someone is typing to the user (`{from: {id, name}, to_user}`) or in one of its groups
    /// (`{from, group_id}`); published by `POST /api/typing`, not by the worker.
    pub const TYPING_EVENT: &str = "App\\Events\\Typing";
    /// A message was edited: `{message}` (its current state), on the channels it went to.
    pub const MESSAGE_UPDATED: &str = "App\\Events\\MessageUpdated";
    /// A message was deleted: `{message_id, user_id | group_id}`, on the channels it went to.
    pub const MESSAGE_DELETED: &str = "App\\Events\\MessageDeleted";
    /// A participant read a conversation further: `{reader_id, up_to, user_id | group_id}`, to
    /// the other participants (not in "All", nor where anonymous questions are on).
    pub const MESSAGES_READ: &str = "App\\Events\\MessagesRead";
    /// The user was named in a group message: `{from, pseudonym?, group: {id, name},
    /// message_id}` (the `mention` notification), on its group channel.
    pub const MENTIONED: &str = "App\\Events\\Mentioned";
    /// A user's first socket on a presence channel anywhere: `{user_id, user_info}`.
    pub const MEMBER_ADDED: &str = "pusher_internal:member_added";
    /// A user's last socket on a presence channel closed: `{user_id, user_info}` (Pusher clients
    /// read the id; Socket.IO clients hand the `user_info` to laravel-echo's `leaving`).
    pub const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
}

/// Who receives a broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Target {
    /// Subscribers of one channel.
    Channel { channel: String },
    /// Each listed user's `private-individual.message.{id}`.
    Individual { users: Vec<UserId> },
    /// Each listed user's `private-group.message.{id}`.
    Group { users: Vec<UserId> },
    /// Every user's `private-group.message.{id}` (the "All" group), without listing them.
    EveryGroupChannel,
    /// A presence channel's `member_added` / `member_removed` about `user`, with the version of
    /// the change: queued per node and written to the channel's sockets in batches, each socket
    /// leaving out those its member list already reflects and those about its own user.
    Members {
        channel: String,
        version: u64,
        user: String,
    },
    /// Not an event: every socket of this user (on its own channels or present as it) is closed
    /// with 4009, after its credentials were revoked (logout).
    SignOut { user: UserId },
}

/// One event for many sockets, encoded once for all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    pub target: Target,
    pub event: String,
    /// The event payload as JSON text.
    pub data: String,
    /// Set on client events in presence channels: the sender's user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// A socket that must not receive it (the sender of a client event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<SocketId>,
    /// The message this event announces, so a connection never shows one message twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
}
