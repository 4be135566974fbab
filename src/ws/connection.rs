//! One socket's task: reads client frames and acts on them, and is the only writer of the socket,
//! draining its bounded outbox. Ends on close, error, eviction (4100), missing pong (4201) or
//! shutdown (4200), and then removes the socket from every channel.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use serde_json::Value;
use tokio::time::{Instant, sleep_until};

use super::{WsContext, hub::Outbox, session::Session};
use crate::{
    bus::{Broadcast, Target},
    domain::{ChannelKind, ChannelName},
    protocol::{ClientFrame, ProtocolError, SocketId, auth, decode, frames},
};

/// Frames queued for one socket before it counts as too slow and is evicted with 4100.
const OUTBOX_FRAMES: usize = 256;
/// Silence after which the server pings; told to clients in the handshake.
pub const ACTIVITY_TIMEOUT: Duration = Duration::from_secs(120);
/// Time a client has to answer the server's ping.
const PONG_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a single write may take before the client is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest presence `user_info` accepted (Pusher: 1 KB).
const MAX_USER_INFO: usize = 1024;

/// Sends the handshake error and closes (unknown app key, bad protocol, origin not allowed).
pub async fn refuse(mut socket: WebSocket, e: ProtocolError) {
    tracing::debug!(error = %e, "websocket refused at handshake");
    close(&mut socket, &e).await;
}

async fn close(socket: &mut WebSocket, e: &ProtocolError) {
    let _ = write(socket, Message::Text(frames::error(e).into())).await;
    let frame = CloseFrame {
        code: e.code().0,
        reason: e.to_string().into(),
    };
    let _ = write(socket, Message::Close(Some(frame))).await;
}

async fn write(socket: &mut WebSocket, msg: Message) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Serves one accepted socket until it ends.
pub async fn serve(mut socket: WebSocket, ctx: WsContext) {
    let (outbox, mut rx, evicted) = Outbox::new(OUTBOX_FRAMES);
    let mut conn = Connection {
        id: SocketId::random(),
        outbox,
        session: Session::default(),
        ctx,
    };
    conn.ctx.hub.connected();
    tracing::debug!(socket = %conn.id, "connected");
    let ending = async {
        if write(
            &mut socket,
            Message::Text(frames::connection_established(conn.id, ACTIVITY_TIMEOUT.as_secs()).into()),
        )
        .await
        .is_err()
        {
            return None;
        }
        let mut deadline = Instant::now() + ACTIVITY_TIMEOUT;
        let mut pinged = false;
        loop {
            tokio::select! {
                biased;
                _ = conn.ctx.shutdown.cancelled() => return Some(ProtocolError::ShuttingDown),
                _ = evicted.notified() => return Some(ProtocolError::SlowClient),
                Some(frame) = rx.recv() => {
                    if write(&mut socket, Message::Text(frame)).await.is_err() {
                        return None;
                    }
                }
                msg = socket.recv() => {
                    let Some(Ok(msg)) = msg else { return None };
                    deadline = Instant::now() + ACTIVITY_TIMEOUT;
                    pinged = false;
                    match msg {
                        Message::Text(text) => conn.handle(&text).await,
                        Message::Binary(_) => conn.reply_error(&ProtocolError::BinaryFrame),
                        Message::Ping(_) | Message::Pong(_) => {}
                        Message::Close(_) => return None,
                    }
                }
                _ = sleep_until(deadline) => {
                    if pinged {
                        return Some(ProtocolError::PongTimeout);
                    }
                    conn.outbox.send(frames::ping().into());
                    pinged = true;
                    deadline = Instant::now() + PONG_TIMEOUT;
                }
            }
        }
    }
    .await;
    conn.leave_all();
    conn.ctx.hub.disconnected();
    if let Some(e) = ending {
        if e == ProtocolError::SlowClient {
            tracing::warn!(socket = %conn.id, "client could not keep up with its events; disconnected (4100)");
        }
        close(&mut socket, &e).await;
    }
    tracing::debug!(socket = %conn.id, "disconnected");
}

struct Connection {
    id: SocketId,
    outbox: Outbox,
    session: Session,
    ctx: WsContext,
}

impl Connection {
    fn reply(&self, frame: String) {
        self.outbox.send(Utf8Bytes::from(frame));
    }

    fn reply_error(&self, e: &ProtocolError) {
        self.reply(frames::error(e));
    }

    async fn handle(&mut self, text: &str) {
        match decode(text) {
            Err(e) => self.reply_error(&e),
            Ok(ClientFrame::Ping) => self.reply(frames::pong()),
            Ok(ClientFrame::Pong) => {}
            Ok(ClientFrame::Subscribe {
                channel,
                auth,
                channel_data,
            }) => self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()),
            Ok(ClientFrame::Unsubscribe { channel }) => {
                if let Ok(name) = ChannelName::parse(&channel)
                    && let Some(user) = self.session.subscriptions.remove(&name)
                {
                    self.ctx.hub.unsubscribe(&name, self.id, user.as_deref());
                }
            }
            Ok(ClientFrame::ClientEvent { event, channel, data }) => self.client_event(event, &channel, data).await,
        }
    }

    fn subscribe(&mut self, raw: &str, signature: Option<&str>, channel_data: Option<&str>) {
        let refuse = |status: u16, why: &str| self.reply(frames::subscription_error(raw, status, why));
        let channel = match ChannelName::parse(raw) {
            Ok(c) => c,
            Err(e) => return refuse(400, &e.message),
        };
        if self.session.subscriptions.contains_key(&channel) {
            // Already subscribed: confirm again, with the current members for presence.
            let members: Option<Vec<(String, Value)>> = (channel.kind() == ChannelKind::Presence).then(|| {
                self.ctx
                    .hub
                    .presence(&channel)
                    .into_iter()
                    .map(|(id, info, _)| (id, info))
                    .collect()
            });
            return self.reply(frames::subscription_succeeded(raw, members.as_deref()));
        }
        if self.session.subscriptions.len() >= super::session::MAX_SUBSCRIPTIONS {
            return refuse(429, "too many subscriptions on this connection");
        }
        if channel.kind() == ChannelKind::PrivateEncrypted {
            return refuse(400, "encrypted channels are not supported");
        }
        let presence_data = (channel.kind() == ChannelKind::Presence).then_some(channel_data.unwrap_or(""));
        if channel.needs_auth() {
            let signed = signature
                .is_some_and(|s| auth::verify(&self.ctx.config.pusher, &self.id.to_string(), raw, presence_data, s));
            if !signed {
                return refuse(401, "invalid or missing signature for this socket and channel");
            }
        }
        match presence_data {
            Some(data) => {
                let Some((user, info)) = presence_member(data) else {
                    return refuse(
                        400,
                        "channel_data must be {\"user_id\": …, \"user_info\": {…}} under 1 KB",
                    );
                };
                self.ctx.hub.join_presence(&channel, self.id, &self.outbox, &user, info);
                self.session.subscriptions.insert(channel, Some(user));
            }
            None => {
                self.reply(frames::subscription_succeeded(raw, None));
                self.ctx.hub.subscribe(&channel, self.id, &self.outbox);
                self.session.subscriptions.insert(channel, None);
            }
        }
    }

    async fn client_event(&mut self, event: String, raw: &str, data: String) {
        let subscribed = ChannelName::parse(raw).ok().and_then(|c| {
            let user = self.session.subscriptions.get(&c)?.clone();
            matches!(c.kind(), ChannelKind::Private | ChannelKind::Presence).then_some(user)
        });
        let Some(user_id) = subscribed else {
            return self.reply_error(&ProtocolError::ClientEventRefused);
        };
        if !self.session.allow_client_event() {
            return self.reply_error(&ProtocolError::RateLimited);
        }
        let b = Broadcast {
            target: Target::Channel {
                channel: raw.to_owned(),
            },
            event,
            data,
            user_id,
            except: Some(self.id),
        };
        if let Err(e) = self.ctx.bus.publish(&b).await {
            tracing::warn!(error = %e, "client event not relayed");
        }
    }

    fn leave_all(&mut self) {
        for (channel, user) in self.session.subscriptions.drain() {
            self.ctx.hub.unsubscribe(&channel, self.id, user.as_deref());
        }
    }
}

/// `(user_id, user_info)` from presence `channel_data`; the id may be a string or a number.
fn presence_member(data: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(data).ok()?;
    let user = match v.get("user_id")? {
        Value::String(s) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let info = v.get("user_info").cloned().unwrap_or(Value::Null);
    (info.to_string().len() <= MAX_USER_INFO).then_some((user, info))
}
