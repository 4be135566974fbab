//! The Redis bus: one pub/sub channel `{prefix}bus` that every node subscribes to on a dedicated
//! connection, read by a single task so broadcasts reach the hub in publish order (no task per
//! message). A dropped subscription is re-established with back-off, and then every local socket
//! catches up from the store on what was published meanwhile ([`Deliver::catch_up`]).

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use redis::{AsyncCommands, aio::ConnectionManager};
use tokio_util::sync::CancellationToken;

use super::{Broadcast, BusError, Deliver};

/// Longest wait between two attempts to re-subscribe: short, because events published while the
/// node is not subscribed must then be read back from the store.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Longest a publish waits for Redis: the client's default (500 ms) lost presence announcements
/// on a loaded machine (three nodes and the load tool on two cores), though Redis was up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisBus {
    conn: ConnectionManager,
    channel: Arc<str>,
}

/// The pub/sub channel name for a key prefix.
pub fn channel_name(prefix: &str) -> String {
    format!("{prefix}bus")
}

impl RedisBus {
    /// # Errors
    /// Redis cannot be reached.
    pub async fn connect(client: &redis::Client, prefix: &str) -> redis::RedisResult<Self> {
        Ok(Self {
            conn: ConnectionManager::new_with_config(
                client.clone(),
                redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(PUBLISH_TIMEOUT)),
            )
            .await?,
            channel: channel_name(prefix).into(),
        })
    }

    pub async fn publish(&self, b: &Broadcast) -> Result<(), BusError> {
        let payload = serde_json::to_string(b).expect("broadcasts always serialise");
        let mut conn = self.conn.clone();
        let receivers: i64 = conn.publish(&*self.channel, payload).await?;
        tracing::debug!(receivers, "published on the bus");
        Ok(())
    }
}

/// Feeds every broadcast published on the bus into `hub` until shutdown, re-subscribing after
/// any connection loss.
pub async fn subscribe(client: redis::Client, prefix: String, hub: Arc<dyn Deliver>, shutdown: CancellationToken) {
    let channel: Arc<str> = channel_name(&prefix).into();
    keep_subscribed(&client, "the bus", &shutdown, |pubsub, resumed| {
        read_bus(pubsub, resumed, channel.clone(), hub.clone())
    })
    .await;
}

/// One subscription to the bus: dispatches every broadcast until the connection ends.
async fn read_bus(
    mut pubsub: redis::aio::PubSub,
    resumed: bool,
    channel: Arc<str>,
    hub: Arc<dyn Deliver>,
) -> redis::RedisResult<()> {
    pubsub.subscribe(&*channel).await?;
    tracing::info!(channel = %channel, "subscribed to the bus");
    // Whatever was published while this node was not subscribed is in the store.
    if resumed {
        hub.catch_up();
    }
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        match serde_json::from_slice::<Broadcast>(msg.get_payload_bytes()) {
            Ok(b) => hub.dispatch(&b),
            Err(e) => tracing::warn!(error = %e, "undecodable message on the bus dropped"),
        }
    }
    Ok(())
}

/// Runs `session` on a fresh pub/sub connection until shutdown, again after every loss (the
/// connection failed, Redis restarted, the connection was killed), with back-off up to
/// [`MAX_BACKOFF`]. `session` subscribes and reads until the stream ends; it is told whether it
/// resumes after a loss (`false` the first time), when messages may have been missed. One task,
/// one connection: messages are handled in the order Redis sends them.
pub async fn keep_subscribed<F>(
    client: &redis::Client,
    what: &str,
    shutdown: &CancellationToken,
    mut session: impl FnMut(redis::aio::PubSub, bool) -> F,
) where
    F: Future<Output = redis::RedisResult<()>> + Send,
{
    let mut backoff = Duration::from_millis(100);
    let mut resumed = false;
    loop {
        let attempt = async {
            let pubsub = client.get_async_pubsub().await?;
            session(pubsub, std::mem::replace(&mut resumed, true)).await
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = attempt => {
                match result {
                    Ok(()) => {
                        tracing::warn!(what, "subscription ended; re-subscribing");
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => tracing::warn!(what, error = %e, "subscription failed; retrying"),
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(MAX_BACKOFF),
        }
    }
}
