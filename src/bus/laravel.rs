//! Laravel's Redis broadcaster as an input (`REDIS_BROADCAST_PREFIX`): a Laravel app with
//! `BROADCAST_DRIVER=redis` publishes every event to the Redis channel `{prefix}{channel}` (by an
//! `EVAL` script that PUBLISHes once per channel, or by PUBLISH), with the payload
//! `{"event", "data", "socket"}`. Each node PSUBSCRIBEs `{prefix}*` on one connection and hands
//! every event to its own hub only: every node has its own subscription, so each node delivers an
//! event exactly once, whatever the number of sockets. `socket` names a socket left out, which is
//! how Laravel's `toOthers()` works.
//!
//! Delivery is at most once, like Laravel's own echo server: what is published while the node is
//! not subscribed (Redis restarting) is lost; the subscription comes back by itself
//! ([`super::redis::keep_subscribed`]). Malformed, oversized or refused payloads are dropped with
//! a log line that never includes the payload.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Broadcast, Deliver, Target, redis::keep_subscribed};
use crate::{
    broadcast::{MAX_EVENT_DATA, check_outside_event},
    domain::ChannelName,
    protocol::SocketId,
};

/// Largest payload read: the event's `data` may be [`MAX_EVENT_DATA`] (Pusher's 10 KB), and the
/// event name and socket id around it take well under 1 KB more.
pub const MAX_PAYLOAD: usize = MAX_EVENT_DATA + 1024;

/// Longest event name (as the Pusher HTTP API takes).
const MAX_EVENT_NAME: usize = 200;

/// What Laravel's `RedisBroadcaster` publishes.
#[derive(Deserialize)]
struct Payload {
    event: String,
    data: Value,
    #[serde(default)]
    socket: Option<Value>,
}

/// Why a message was dropped (logged; never with the payload).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("payload over {MAX_PAYLOAD} bytes")]
    TooLarge,
    #[error("not a Laravel broadcast payload: {0}")]
    Malformed(String),
    #[error("invalid channel name")]
    BadChannel,
    #[error("{0}")]
    Refused(#[from] crate::broadcast::OutsideEventRefused),
}

/// Relays Laravel's broadcasts on `{prefix}*` into `hub` until shutdown. Channels under chatbox's
/// own `redis_prefix` (its bus) are not Laravel's and are skipped, should the prefixes overlap.
pub async fn relay(
    client: redis::Client,
    prefix: String,
    redis_prefix: String,
    hub: Arc<dyn Deliver>,
    shutdown: CancellationToken,
) {
    let names = Arc::new(Names { prefix, redis_prefix });
    keep_subscribed(&client, "Laravel's broadcasts", &shutdown, |pubsub, _| {
        read_broadcasts(pubsub, names.clone(), hub.clone())
    })
    .await;
}

/// Laravel's prefix and chatbox's own.
struct Names {
    prefix: String,
    redis_prefix: String,
}

/// One pattern subscription: relays every message until the connection ends.
async fn read_broadcasts(
    mut pubsub: redis::aio::PubSub,
    names: Arc<Names>,
    hub: Arc<dyn Deliver>,
) -> redis::RedisResult<()> {
    let pattern = format!("{}*", escape_pattern(&names.prefix));
    pubsub.psubscribe(&pattern).await?;
    tracing::info!(pattern, "relaying Laravel's Redis broadcasts");
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let full = msg.get_channel_name();
        if full.starts_with(&names.redis_prefix) {
            continue;
        }
        let channel = full.strip_prefix(names.prefix.as_str()).unwrap_or(full);
        match broadcast(channel, msg.get_payload_bytes(), &|raw| hub.resolve_socket(raw)) {
            Ok(b) => hub.dispatch(&b),
            Err(e) => tracing::warn!(channel, reason = %e, "Laravel broadcast dropped"),
        }
    }
    Ok(())
}

/// The broadcast for one message on `channel` (the name after the prefix). Laravel's `socket`
/// (its `X-Socket-ID`, for `toOthers()`) is left out as `resolve` finds it: a Pusher socket id or
/// socket.io 3/4 sid anywhere, a socket.io 2.x Engine.IO session id on the node holding it (each
/// node reads the input itself).
///
/// # Errors
/// [`Dropped`] says why the message cannot be relayed.
pub fn broadcast(
    channel: &str,
    payload: &[u8],
    resolve: &dyn Fn(&str) -> Option<SocketId>,
) -> Result<Broadcast, Dropped> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Dropped::TooLarge);
    }
    let name = ChannelName::parse(channel).map_err(|_| Dropped::BadChannel)?;
    // Only the kind of error and where: serde's own message may quote the payload.
    let p: Payload = serde_json::from_slice(payload).map_err(|e| {
        Dropped::Malformed(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if p.event.is_empty() || p.event.len() > MAX_EVENT_NAME {
        return Err(Dropped::Malformed(format!(
            "event must be 1 to {MAX_EVENT_NAME} characters"
        )));
    }
    check_outside_event(name.as_str(), &p.event)?;
    let data = match p.data {
        Value::String(s) => s,
        other => other.to_string(),
    };
    if data.len() > MAX_EVENT_DATA {
        return Err(Dropped::TooLarge);
    }
    let except = match &p.socket {
        Some(Value::String(s)) => resolve(s),
        _ => None,
    };
    Ok(Broadcast {
        target: Target::Channel {
            channel: name.as_str().to_owned(),
        },
        event: p.event,
        data,
        user_id: None,
        except,
        message_id: None,
    })
}

/// `prefix` with Redis glob characters escaped, so it matches only itself.
fn escape_pattern(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_laravels_payload() {
        let payload =
            br#"{"event":"App\\Events\\OrderShipped","data":{"order":{"id":7},"socket":null},"socket":"123.456"}"#;
        let b = broadcast("private-orders.7", payload, &SocketId::parse).unwrap();
        assert_eq!(b.event, "App\\Events\\OrderShipped");
        assert_eq!(b.data, r#"{"order":{"id":7},"socket":null}"#);
        assert_eq!(b.except, SocketId::parse("123.456"));
        assert_eq!(
            b.target,
            Target::Channel {
                channel: "private-orders.7".into()
            }
        );
        let no_socket = broadcast("news", br#"{"event":"e","data":{}}"#, &SocketId::parse).unwrap();
        assert_eq!(no_socket.except, None);
    }

    #[test]
    fn drops_what_it_cannot_relay() {
        assert!(matches!(
            broadcast("news", b"not json", &SocketId::parse),
            Err(Dropped::Malformed(_))
        ));
        assert!(matches!(
            broadcast("news", br#"{"data":{}}"#, &SocketId::parse),
            Err(Dropped::Malformed(_))
        ));
        assert_eq!(
            broadcast("bad channel", br#"{"event":"e","data":{}}"#, &SocketId::parse).unwrap_err(),
            Dropped::BadChannel
        );
        assert!(matches!(
            broadcast("news", br#"{"event":"pusher:subscribe","data":{}}"#, &SocketId::parse),
            Err(Dropped::Refused(_))
        ));
        let big = format!(r#"{{"event":"e","data":"{}"}}"#, "x".repeat(MAX_EVENT_DATA + 1));
        assert_eq!(
            broadcast("news", big.as_bytes(), &SocketId::parse).unwrap_err(),
            Dropped::TooLarge
        );
        let huge = format!(r#"{{"event":"e","data":"{}"}}"#, "x".repeat(MAX_PAYLOAD));
        assert_eq!(
            broadcast("news", huge.as_bytes(), &SocketId::parse).unwrap_err(),
            Dropped::TooLarge
        );
    }

    #[test]
    fn escapes_glob_characters() {
        assert_eq!(escape_pattern("laravel_database_"), "laravel_database_");
        assert_eq!(escape_pattern("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
