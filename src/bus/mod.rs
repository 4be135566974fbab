//! The bus: carries [`Broadcast`]s from whoever produces them (workers, client events) to every
//! server node's [`Hub`]. In-process when embedded; Redis pub/sub across nodes in production.
//!
//! Delivery is at most once, in publish order per publisher: a node that is disconnected from
//! Redis misses what is published meanwhile (clients catch up from the store).

pub mod redis;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    domain::{MessageId, UserId},
    protocol::SocketId,
    ws::hub::Hub,
};

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

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus (Redis) is unavailable")]
    Unavailable(#[from] ::redis::RedisError),
}

/// The bus this process publishes to, chosen once at start-up.
#[derive(Clone)]
pub enum Bus {
    /// Straight into this process's hub.
    Local(Arc<Hub>),
    Redis(redis::RedisBus),
}

impl Bus {
    /// Hands `b` to every node (or to the local hub).
    ///
    /// # Errors
    /// [`BusError::Unavailable`] when Redis does not take it; nothing was delivered.
    pub async fn publish(&self, b: &Broadcast) -> Result<(), BusError> {
        match self {
            Self::Local(hub) => {
                hub.dispatch(b);
                Ok(())
            }
            Self::Redis(bus) => bus.publish(b).await,
        }
    }
}
