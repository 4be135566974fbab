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
    /// Every event chatbox itself publishes on a user's own channels.
    pub const CHAT: &[&str] = &[
        INDIVIDUAL_EVENT,
        GROUP_EVENT,
        ADDED_TO_GROUP,
        REMOVED_FROM_GROUP,
        GROUP_UPDATED,
        USER_REGISTERED,
        USER_UPDATED,
        TYPING_EVENT,
        MESSAGE_UPDATED,
        MESSAGE_DELETED,
        MESSAGES_READ,
        MENTIONED,
    ];
    pub use crate::protocol::frames::{MEMBER_ADDED, MEMBER_REMOVED};
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
    /// Not an event: a member change of this presence channel (every presence channel: `None`)
    /// may not have reached every node, or Redis lost the channel's versions; each node sends its
    /// subscribers there a fresh member list, which clients take as a reset.
    MembersReset { channel: Option<String> },
    /// Not an event: every socket of this user id (present as it on a presence channel, or on
    /// its own channels when it is a chatbox user id) is closed with 4009, as the Pusher HTTP
    /// API's `terminate_connections` asks.
    Terminate { user: String },
}

/// Largest `data` of one event from an outside publisher (Pusher: 10 KB).
pub const MAX_EVENT_DATA: usize = 10 * 1024;

/// Where the bus hands what it carries: a node's hub. The bus knows it only by this contract.
pub trait Deliver: Send + Sync {
    /// Delivers `b` to the local sockets it targets; never blocks.
    fn dispatch(&self, b: &Broadcast);
    /// Broadcasts were missed (the node's bus subscription was cut): recover what they carried.
    fn catch_up(&self);
    /// The local socket a client knows as `raw` (a Pusher socket id, a socket.io sid), to leave
    /// it out of a broadcast (`toOthers()`).
    fn resolve_socket(&self, raw: &str) -> Option<SocketId>;
}

/// Why an outside publisher's event was refused ([`check_outside_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutsideEventRefused {
    #[error("event names starting with pusher: or pusher_internal: are reserved for the protocol")]
    Reserved,
    #[error("chatbox's own chat events cannot be published on its chat channels from outside")]
    ChatEvent,
}

/// The check every outside publisher (the Pusher and laravel-echo-server HTTP APIs, Laravel's
/// Redis broadcaster) passes an event through before it reaches the bus: protocol event names are
/// refused on every channel, and chatbox's own chat event names on its chat channels (a user's
/// `private-individual.message.N` / `private-group.message.N`), so nothing from outside can
/// pass for a stored message or a member change.
///
/// # Errors
/// [`OutsideEventRefused`] says which rule the event broke.
pub fn check_outside_event(channel: &str, event: &str) -> Result<(), OutsideEventRefused> {
    if event.starts_with("pusher:") || event.starts_with("pusher_internal:") {
        return Err(OutsideEventRefused::Reserved);
    }
    let chat_channel = crate::domain::ChannelName::parse(channel).is_ok_and(|c| c.user_channel().is_some());
    if chat_channel && events::CHAT.contains(&event) {
        return Err(OutsideEventRefused::ChatEvent);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_events_cannot_pass_for_protocol_or_chat_events() {
        for channel in [
            "news",
            "private-orders.7",
            "presence-online",
            "private-individual.message.7",
        ] {
            for event in ["pusher:subscribe", "pusher_internal:member_added", "pusher:"] {
                assert_eq!(
                    check_outside_event(channel, event),
                    Err(OutsideEventRefused::Reserved),
                    "{channel} {event}"
                );
            }
        }
        for channel in ["private-individual.message.7", "private-group.message.12"] {
            for event in events::CHAT {
                assert_eq!(
                    check_outside_event(channel, event),
                    Err(OutsideEventRefused::ChatEvent),
                    "{channel} {event}"
                );
            }
            assert_eq!(check_outside_event(channel, "App\\Events\\OrderShipped"), Ok(()));
        }
        assert_eq!(
            check_outside_event("news", events::INDIVIDUAL_EVENT),
            Ok(()),
            "not a chat channel"
        );
        assert_eq!(check_outside_event("private-orders.7", "client-typing"), Ok(()));
    }
}
