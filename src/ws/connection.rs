//! One socket's task: the only reader and the only writer of its socket. It answers the client's
//! frames itself, writes what other tasks queued on its bounded outbox, and on a subscription to
//! the user's own channel first writes the backlog from the store, then the live stream, never the
//! same message twice. Ends on close, error, eviction (4100), missing pong (4201) or shutdown
//! (4200), and then removes the socket from every channel.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde_json::Value;
use tokio::time::Instant;

use super::{
    WsContext,
    core::{Core, Wire, presence_member},
    hub::OutboxReader,
};
use crate::protocol::wire::WireKind;
use crate::{
    domain::{ChannelKind, ChannelName},
    protocol::{ClientFrame, ProtocolError, SocketId, auth, decode, frames},
};

/// Time a client has to answer the server's ping: a quarter of the activity timeout
/// (`ACTIVITY_TIMEOUT_SECS`, 120 s by default: 30 s), at least a second and at most 30 s.
pub(super) fn pong_timeout(activity: Duration) -> Duration {
    (activity / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}
/// Longest a single write may take before the client is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends the handshake error and closes (unknown app key, bad protocol, origin not allowed).
pub async fn refuse(mut socket: WebSocket, e: ProtocolError) {
    tracing::debug!(error = %e, "websocket refused at handshake");
    let _ = write(&mut socket, frames::error(&e).into()).await;
    close(&mut socket, &e).await;
}

async fn close(socket: &mut WebSocket, e: &ProtocolError) {
    let frame = CloseFrame {
        code: e.code().0,
        reason: e.to_string().into(),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

/// Writes one text frame within [`WRITE_TIMEOUT`].
async fn write(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), ()> {
    within_write_timeout(socket.send(Message::Text(text))).await
}

/// `Err` when the socket operation fails or takes longer than [`WRITE_TIMEOUT`].
async fn within_write_timeout<E>(op: impl Future<Output = Result<(), E>>) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, op).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Why the loop stopped: the peer went away (nothing to send), or a protocol error to report.
type Ending = Option<ProtocolError>;

/// The Pusher side of a socket: text frames on a WebSocket, batched and flushed.
pub struct PusherWire {
    socket: WebSocket,
}

impl Wire for PusherWire {
    const KIND: WireKind = WireKind::Pusher;

    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), ()> {
        within_write_timeout(self.socket.feed(Message::Text(frame))).await
    }

    async fn flush(&mut self) -> Result<(), ()> {
        within_write_timeout(self.socket.flush()).await
    }
}

/// Serves one accepted socket until it ends.
pub async fn serve(socket: WebSocket, ctx: WsContext, ip: std::net::IpAddr) {
    let (core, reader) = Core::new(PusherWire { socket }, SocketId::random(), ctx);
    let mut conn = Connection { core };
    tracing::debug!(socket = %conn.core.id, "connected");
    let ending = conn.run(&reader).await;
    conn.core.leave_all().await;
    conn.core.ctx.presence.disconnected(ip).await;
    if let Some(e) = ending {
        if e == ProtocolError::SlowClient {
            tracing::warn!(socket = %conn.core.id, "client could not keep up with its events; disconnected (4100)");
        }
        let _ = conn.core.write(frames::error(&e)).await;
        close(&mut conn.core.wire.socket, &e).await;
    }
    tracing::debug!(socket = %conn.core.id, "disconnected");
}

struct Connection {
    core: Core<PusherWire>,
}

impl Connection {
    async fn run(&mut self, reader: &OutboxReader) -> Ending {
        // Every write and every frame's handling below is boxed: an idle connection's task then
        // holds only the waits of the loop, not room for the largest of those futures.
        let activity = self.core.ctx.config.activity_timeout;
        let hello = frames::connection_established(self.core.id, activity.as_secs());
        Box::pin(self.core.write(hello)).await.ok()?;
        // The futures that live as long as the connection are made once, not on every turn of
        // the loop: the timer is re-armed only when it fires (from the time a frame last came).
        let shutdown = self.core.ctx.shutdown.clone();
        let cancelled = shutdown.cancelled();
        let evicted = reader.evicted();
        let timer = tokio::time::sleep(activity);
        tokio::pin!(cancelled, evicted, timer);
        let mut last_heard = Instant::now();
        let mut pinged = false;
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => return Some(ProtocolError::ShuttingDown),
                _ = &mut evicted => return Some(ProtocolError::SlowClient),
                out = reader.recv() => {
                    if Box::pin(self.core.drain(out, reader)).await.is_err() {
                        return self.core.closing.take();
                    }
                }
                msg = self.core.wire.socket.recv() => {
                    let Some(Ok(msg)) = msg else { return None };
                    last_heard = Instant::now();
                    pinged = false;
                    if matches!(msg, Message::Close(_)) {
                        return None;
                    }
                    Box::pin(self.on_message(msg)).await.ok()?;
                }
                _ = &mut timer => {
                    if pinged {
                        return Some(ProtocolError::PongTimeout);
                    }
                    let quiet_until = last_heard + activity;
                    if Instant::now() < quiet_until {
                        timer.as_mut().reset(quiet_until);
                        continue;
                    }
                    Box::pin(self.core.write(frames::ping())).await.ok()?;
                    pinged = true;
                    timer.as_mut().reset(Instant::now() + pong_timeout(activity));
                }
            }
        }
    }

    /// Acts on one frame from the client (not a close).
    async fn on_message(&mut self, msg: Message) -> Result<(), ()> {
        if !self.core.session.allow_frame() {
            // Over the frame budget: refused, once per second, and not acted on.
            if self.core.session.first_refusal_this_second() {
                self.core.report(&ProtocolError::Flooding).await?;
            }
            return Ok(());
        }
        match msg {
            Message::Text(text) => self.handle(&text).await,
            Message::Binary(_) => self.core.report(&ProtocolError::BinaryFrame).await,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
        }
    }

    /// Acts on one client frame; `Err` when the socket can no longer be written.
    async fn handle(&mut self, text: &str) -> Result<(), ()> {
        match decode(text) {
            Err(e) => self.core.report(&e).await,
            Ok(ClientFrame::Ping) => self.core.write(frames::pong()).await,
            Ok(ClientFrame::Pong) => Ok(()),
            Ok(ClientFrame::Subscribe {
                channel,
                auth,
                channel_data,
            }) => self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()).await,
            Ok(ClientFrame::Unsubscribe { channel }) => {
                self.core.unsubscribe(&channel).await;
                Ok(())
            }
            Ok(ClientFrame::ClientEvent { event, channel, data }) => {
                self.core.client_event(event, &channel, data).await
            }
        }
    }

    async fn subscribe(&mut self, raw: &str, signature: Option<&str>, channel_data: Option<&str>) -> Result<(), ()> {
        let channel = match ChannelName::parse(raw) {
            Ok(c) => c,
            Err(e) => return self.core.refuse(raw, 400, &e.message).await,
        };
        if let Some((status, why)) = self
            .core
            .refusal(&channel)
            .or_else(|| self.unsigned(&channel, signature, channel_data))
        {
            return self.core.refuse(raw, status, why).await;
        }
        let member = channel_data
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| presence_member(&d));
        let member = if channel.kind() == ChannelKind::Presence {
            member
        } else {
            None
        };
        self.core.join(channel, member).await
    }

    /// Refuses a private or presence subscription this server did not sign for this socket.
    fn unsigned(
        &self,
        channel: &ChannelName,
        signature: Option<&str>,
        channel_data: Option<&str>,
    ) -> Option<(u16, &'static str)> {
        let presence_data = (channel.kind() == ChannelKind::Presence).then_some(channel_data.unwrap_or(""));
        let signed = !channel.needs_auth()
            || signature.is_some_and(|s| {
                auth::verify(
                    &self.core.ctx.config.pusher,
                    &self.core.id.to_string(),
                    channel.as_str(),
                    presence_data,
                    s,
                )
            });
        (!signed).then_some((401, "invalid or missing signature for this socket and channel"))
    }
}
