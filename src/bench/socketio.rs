//! The load tool's Socket.IO side: laravel-echo's `socket.io` broadcaster as laravel-echo-server
//! serves it, over the WebSocket transport only (no polling: a load tool wants the steady state),
//! Engine.IO 3 (socket.io 2.x servers, laravel-echo-server among them) or 4 (socket.io 3/4).
//! Subscriptions are to public channels (no auth endpoint is involved), and publishing goes
//! through Redis in the format of Laravel's Redis broadcaster, which both chatbox and
//! laravel-echo-server read: one workload runs unchanged against either.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::connect::Ws;

/// Engine.IO packets the tool reads or writes.
const OPEN: char = '0';
const PING: &str = "2";
const PONG: &str = "3";
/// Socket.IO CONNECT and EVENT packets (an Engine.IO message, `4`, carrying one).
const CONNECT: &str = "40";
const EVENT: &str = "42";

/// One held socket.io connection: the socket and what its keep-alive needs.
pub(super) struct SocketIo {
    pub ws: Ws,
    /// Engine.IO 3: the client pings every `pingInterval`; 4: the server does and the client
    /// answers.
    eio: u8,
    ping: Interval,
}

/// Subscribes over a connection already upgraded to `/socket.io/?EIO={eio}&transport=websocket`:
/// reads the open packet, connects the default namespace, then emits `subscribe` for each
/// channel (public channels: laravel-echo-server confirms nothing for them).
pub(super) async fn handshake(mut ws: Ws, eio: u8, channels: &[String]) -> anyhow::Result<SocketIo> {
    let open = next_packet(&mut ws).await?;
    let body = open
        .strip_prefix(OPEN)
        .with_context(|| format!("expected an Engine.IO open packet, got {open:?}"))?;
    let open: Value = serde_json::from_str(body).context("the open packet is not JSON")?;
    let interval = open["pingInterval"].as_u64().unwrap_or(25_000);
    if eio >= 4 {
        ws.send(Message::text(CONNECT)).await?;
    }
    // socket.io 2.x connects the default namespace by itself; 3/4 answer ours: `40{"sid":…}`.
    loop {
        let packet = next_packet(&mut ws).await?;
        if packet.starts_with(CONNECT) {
            break;
        }
        if packet.starts_with("44") {
            anyhow::bail!("connection refused: {packet}");
        }
    }
    for channel in channels {
        let subscribe = json!(["subscribe", { "channel": channel, "auth": { "headers": {} } }]);
        ws.send(Message::text(format!("{EVENT}{subscribe}"))).await?;
    }
    // A little before the server expects it, so a busy tool is not dropped.
    let period = Duration::from_millis(interval)
        .mul_f64(0.8)
        .max(Duration::from_millis(100));
    let mut ping = tokio::time::interval_at(Instant::now() + period, period);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Ok(SocketIo { ws, eio, ping })
}

impl SocketIo {
    /// The next Socket.IO event packet's text (`42[…]`), keeping the connection alive meanwhile;
    /// `None` when it closed.
    pub async fn next_event(&mut self) -> Option<Utf8Bytes> {
        use futures_util::StreamExt;
        loop {
            let msg = tokio::select! {
                msg = self.ws.next() => msg,
                _ = self.ping.tick(), if self.eio < 4 => {
                    self.ws.send(Message::text(PING)).await.ok()?;
                    continue;
                }
            };
            let Ok(Message::Text(text)) = msg? else { continue };
            if text.as_str() == PING {
                self.ws.send(Message::text(PONG)).await.ok()?;
            } else if text.starts_with(EVENT) {
                return Some(text);
            }
        }
    }
}

/// The next text packet, within 30 s.
async fn next_packet(ws: &mut Ws) -> anyhow::Result<String> {
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no answer in 30 s")?
        {
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(f))) => anyhow::bail!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed"),
        }
    }
}

/// The URL path a socket.io client opens for the WebSocket transport.
pub(super) fn path(eio: u8) -> String {
    format!("/socket.io/?EIO={eio}&transport=websocket")
}

/// Publishes as Laravel's Redis broadcaster does: `PUBLISH {prefix}{channel}` with
/// `{"event","data","socket"}`.
pub(super) struct LaravelPublisher {
    redis: redis::aio::MultiplexedConnection,
    topic: String,
}

impl LaravelPublisher {
    pub async fn connect(url: &str, prefix: &str, channel: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("bad --redis-url {url}"))?;
        let redis = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("cannot reach Redis at {url}"))?;
        Ok(Self {
            redis,
            topic: format!("{prefix}{channel}"),
        })
    }

    /// `data` is the event's data as JSON text (an object).
    pub async fn publish(&self, event: &str, data: &str) -> anyhow::Result<()> {
        let payload = format!(r#"{{"event":{},"data":{data},"socket":null}}"#, json!(event));
        let mut redis = self.redis.clone();
        redis::cmd("PUBLISH")
            .arg(&self.topic)
            .arg(payload)
            .query_async::<i64>(&mut redis)
            .await?;
        Ok(())
    }
}

/// The server a `--url` names, as a socket address.
pub(super) async fn resolve(base: &str) -> anyhow::Result<SocketAddr> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    tokio::net::lookup_host(host)
        .await?
        .next()
        .with_context(|| format!("cannot resolve {base}"))
}
