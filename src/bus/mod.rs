//! The bus: carries [`Broadcast`]s ([`crate::broadcast`]) from whoever produces them (workers, client events) to every
//! server node's hub ([`Deliver`]). In-process when embedded; Redis pub/sub across nodes in production.
//!
//! Delivery is at most once, in publish order per publisher: a node that is disconnected from
//! Redis misses what is published meanwhile (clients catch up from the store).

pub mod laravel;
pub mod redis;

use std::sync::Arc;

pub use crate::broadcast::{Broadcast, Deliver, Target};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus (Redis) is unavailable")]
    Unavailable(#[from] ::redis::RedisError),
}

/// The bus this process publishes to, chosen once at start-up.
#[derive(Clone)]
pub enum Bus {
    /// Straight into this process's hub.
    Local(Arc<dyn Deliver>),
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
