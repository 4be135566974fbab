//! One socket's task: the only reader and the only writer of its socket. It answers the client's
//! frames itself, writes what other tasks queued on its bounded outbox, and on a subscription to
//! the user's own channel first writes the backlog from the store, then the live stream, never the
//! same message twice. Ends on close, error, eviction (4100), missing pong (4201) or shutdown
//! (4200), and then removes the socket from every channel.

use std::{collections::BTreeSet, time::Duration};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    WsContext,
    hub::{Outbox, OutboxReader, Outgoing},
    session::Session,
};
use crate::{
    broadcast::{
        Broadcast, Target,
        events::{GROUP_EVENT, INDIVIDUAL_EVENT},
    },
    domain::{ChannelKind, ChannelName, MessageId, UserChannel},
    limits,
    presence::Fresh,
    protocol::{ClientFrame, MAX_CLIENT_EVENT_DATA, ProtocolError, SocketId, auth, decode, frames},
    store::{Cursor, Stream},
};

/// Frames queued for one socket before it counts as too slow and is evicted with 4100.
const OUTBOX_FRAMES: usize = 256;
/// Time a client has to answer the server's ping: a quarter of the activity timeout
/// (`ACTIVITY_TIMEOUT_SECS`, 120 s by default: 30 s), at least a second and at most 30 s.
fn pong_timeout(activity: Duration) -> Duration {
    (activity / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}
/// Longest a single write may take before the client is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames written before one flush when several are queued.
const WRITE_BATCH: usize = 64;
/// Largest presence `user_info` accepted (Pusher: 1 KB).
const MAX_USER_INFO: usize = 1024;
/// Backlog messages read from the store per query.
const BACKLOG_PAGE: u32 = 500;
/// Most backlog messages one subscription writes (20 pages): a user away for long gets the
/// newest after acknowledging these and subscribing again, and the whole history over HTTP.
/// Subscriptions that read a backlog are themselves limited per user
/// ([`limits::OWN_CHANNEL_SUBSCRIBES_PER_USER`]).
const BACKLOG_MAX: usize = 10_000;
/// Message ids remembered per connection to drop repeats (backlog/live seam, redelivered jobs).
/// Repeats come from the newest messages, so the oldest ids are forgotten first.
const SEEN_IDS: usize = 4096;

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

/// Serves one accepted socket until it ends.
pub async fn serve(socket: WebSocket, ctx: WsContext, ip: std::net::IpAddr) {
    let (outbox, reader) = Outbox::new(OUTBOX_FRAMES);
    let mut conn = Connection {
        socket,
        id: SocketId::random(),
        outbox,
        session: Session::default(),
        seen: BTreeSet::new(),
        closing: None,
        ctx,
    };
    tracing::debug!(socket = %conn.id, "connected");
    let ending = conn.run(&reader).await;
    conn.leave_all().await;
    conn.ctx.presence.disconnected(ip).await;
    if let Some(e) = ending {
        if e == ProtocolError::SlowClient {
            tracing::warn!(socket = %conn.id, "client could not keep up with its events; disconnected (4100)");
        }
        let _ = conn.write(frames::error(&e)).await;
        close(&mut conn.socket, &e).await;
    }
    tracing::debug!(socket = %conn.id, "disconnected");
}

struct Connection {
    socket: WebSocket,
    id: SocketId,
    outbox: Outbox,
    session: Session,
    /// Ids of messages this connection delivered (bounded, see [`SEEN_IDS`]).
    seen: BTreeSet<MessageId>,
    /// Set when the hub asked this connection to close ([`Outgoing::Close`]).
    closing: Option<ProtocolError>,
    ctx: WsContext,
}

impl Connection {
    async fn run(&mut self, reader: &OutboxReader) -> Ending {
        // Every write and every frame's handling below is boxed: an idle connection's task then
        // holds only the waits of the loop, not room for the largest of those futures.
        let activity = self.ctx.config.activity_timeout;
        let hello = frames::connection_established(self.id, activity.as_secs());
        Box::pin(self.write(hello)).await.ok()?;
        // The futures that live as long as the connection are made once, not on every turn of
        // the loop: the timer is re-armed only when it fires (from the time a frame last came).
        let shutdown = self.ctx.shutdown.clone();
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
                    if Box::pin(self.drain(out, reader)).await.is_err() {
                        return self.closing.take();
                    }
                }
                msg = self.socket.recv() => {
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
                    Box::pin(self.write(frames::ping())).await.ok()?;
                    pinged = true;
                    timer.as_mut().reset(Instant::now() + pong_timeout(activity));
                }
            }
        }
    }

    async fn write(&mut self, text: String) -> Result<(), ()> {
        write(&mut self.socket, text.into()).await
    }

    /// Acts on one frame from the client (not a close).
    async fn on_message(&mut self, msg: Message) -> Result<(), ()> {
        if !self.session.allow_frame() {
            // Over the frame budget: refused, once per second, and not acted on.
            if self.session.first_refusal_this_second() {
                self.write(frames::error(&ProtocolError::Flooding)).await?;
            }
            return Ok(());
        }
        match msg {
            Message::Text(text) => self.handle(&text).await,
            Message::Binary(_) => self.write(frames::error(&ProtocolError::BinaryFrame)).await,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(()),
        }
    }

    /// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`] frames), then
    /// flushes once: under load one system call carries many frames.
    async fn drain(&mut self, first: Outgoing, reader: &OutboxReader) -> Result<(), ()> {
        let mut next = Some(first);
        let mut batched = 0;
        while let Some(out) = next.take() {
            match out {
                Outgoing::Frame { frame, message } => {
                    if message.is_none_or(|id| self.first_time(id)) {
                        self.feed(frame).await?;
                        batched += 1;
                    }
                }
                Outgoing::Members { channel, frames } => {
                    let (Some(&seen), Some(Some(me))) = (
                        self.session.member_lists.get(&channel),
                        self.session.subscriptions.get(&channel),
                    ) else {
                        continue;
                    };
                    let me = me.clone();
                    for change in frames.iter() {
                        if change.version > seen && *change.user != *me {
                            self.feed(change.frame.clone()).await?;
                            batched += 1;
                        }
                    }
                }
                Outgoing::Close(e) => {
                    self.closing = Some(e);
                    return Err(());
                }
                Outgoing::Resync { channel, since } => {
                    if let Some(Some(me)) = self.session.subscriptions.get(&channel) {
                        let me = me.clone();
                        Box::pin(self.resend_members(channel, &me, since)).await?;
                    }
                }
                Outgoing::CatchUp { after } => {
                    let own: Vec<UserChannel> = self
                        .session
                        .subscriptions
                        .keys()
                        .filter_map(ChannelName::user_channel)
                        .collect();
                    for channel in own {
                        Box::pin(self.send_backlog(channel, after)).await?;
                    }
                }
            }
            if batched < WRITE_BATCH {
                next = reader.try_recv();
            }
        }
        self.flush().await
    }

    /// Queues one frame in the socket's write buffer (written out when it fills or on flush).
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), ()> {
        within_write_timeout(self.socket.feed(Message::Text(text))).await
    }

    async fn flush(&mut self) -> Result<(), ()> {
        within_write_timeout(self.socket.flush()).await
    }

    /// Records a delivered message id; false if this connection already had it.
    fn first_time(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        if self.seen.len() > SEEN_IDS {
            self.seen.pop_first();
        }
        true
    }

    /// Acts on one client frame; `Err` when the socket can no longer be written.
    async fn handle(&mut self, text: &str) -> Result<(), ()> {
        match decode(text) {
            Err(e) => self.write(frames::error(&e)).await,
            Ok(ClientFrame::Ping) => self.write(frames::pong()).await,
            Ok(ClientFrame::Pong) => Ok(()),
            Ok(ClientFrame::Subscribe {
                channel,
                auth,
                channel_data,
            }) => self.subscribe(&channel, auth.as_deref(), channel_data.as_deref()).await,
            Ok(ClientFrame::Unsubscribe { channel }) => {
                if let Ok(name) = ChannelName::parse(&channel)
                    && let Some(user) = self.session.subscriptions.remove(&name)
                {
                    self.leave(name, user).await;
                }
                Ok(())
            }
            Ok(ClientFrame::ClientEvent { event, channel, data }) => self.client_event(event, &channel, data).await,
        }
    }

    async fn subscribe(&mut self, raw: &str, signature: Option<&str>, channel_data: Option<&str>) -> Result<(), ()> {
        let channel = match ChannelName::parse(raw) {
            Ok(c) => c,
            Err(e) => return self.write(frames::subscription_error(raw, 400, &e.message)).await,
        };
        if let Some(refusal) = self.refusal(&channel, signature, channel_data) {
            return self.write(frames::subscription_error(raw, refusal.0, refusal.1)).await;
        }
        if let Some(present) = self.session.subscriptions.get(&channel) {
            // Already subscribed: confirm again, with the current members for presence.
            let Some(user) = present.clone() else {
                return self.write(frames::subscription_succeeded(raw, None)).await;
            };
            let info = channel_data
                .and_then(presence_member)
                .map(|(_, i)| i)
                .unwrap_or_default();
            return self.send_members(channel, &user, &info, 0).await;
        }
        if channel.kind() == ChannelKind::Presence {
            let Some((user, info)) = channel_data.and_then(presence_member) else {
                let why = "channel_data must be {\"user_id\": …, \"user_info\": {…}} under 1 KB";
                return self.write(frames::subscription_error(raw, 400, why)).await;
            };
            self.session.identity.get_or_insert_with(|| user.clone());
            // Listening first: member changes from now on queue in the outbox, and those the
            // member list already holds are dropped by version when drained.
            self.ctx.hub.subscribe_present(&channel, self.id, &self.outbox, &user);
            self.session.subscriptions.insert(channel.clone(), Some(user.clone()));
            let joined = self.ctx.presence.join(&channel, &user, &info).await;
            return self.send_members(channel, &user, &info, joined).await;
        }
        let own = channel.user_channel();
        if let Some(uc) = own {
            // Each such subscription reads a backlog from the store.
            let key = uc.user().to_string();
            if let Err(wait) = self
                .ctx
                .limits
                .hit(&limits::OWN_CHANNEL_SUBSCRIBES_PER_USER, &key)
                .await
            {
                let why = format!("too many subscriptions to your own channels: retry in {} s", wait.0);
                return self.write(frames::subscription_error(raw, 429, &why)).await;
            }
            self.session.identity.get_or_insert(key);
        }
        self.write(frames::subscription_succeeded(raw, None)).await?;
        self.ctx.hub.subscribe(&channel, self.id, &self.outbox);
        self.session.subscriptions.insert(channel, None);
        match own {
            Some(uc) => self.send_backlog(uc, 0).await,
            None => Ok(()),
        }
    }

    /// Writes `subscription_succeeded` with the member list of `channel`, at least as current as
    /// version `at_least`, and remembers its version.
    async fn send_members(&mut self, channel: ChannelName, user: &str, info: &Value, at_least: u64) -> Result<(), ()> {
        let members = self.ctx.presence.snapshot(&channel, Fresh::AtLeast(at_least)).await;
        let frame = members.frame(&channel, user, info);
        self.session.member_lists.insert(channel, members.version);
        write(&mut self.socket, frame).await
    }

    /// Sends the member list of `channel` again, read after `since` (a reset: clients replace
    /// their list), and takes on its version.
    async fn resend_members(&mut self, channel: ChannelName, user: &str, since: std::time::Instant) -> Result<(), ()> {
        let Some((version, frame)) = self.ctx.presence.reset_frame(&channel, user, since).await else {
            return Ok(());
        };
        self.session.member_lists.insert(channel, version);
        write(&mut self.socket, frame).await
    }

    /// Leaves `channel`; for a presence channel, counts this socket out of it.
    async fn leave(&mut self, channel: ChannelName, user: Option<String>) {
        self.ctx.hub.unsubscribe(&channel, self.id, user.as_deref());
        self.session.member_lists.remove(&channel);
        if let Some(user) = user {
            self.ctx.presence.leave(&channel, &user).await;
        }
    }

    /// Why this subscription is refused (status, reason), if it is.
    fn refusal(
        &self,
        channel: &ChannelName,
        signature: Option<&str>,
        channel_data: Option<&str>,
    ) -> Option<(u16, &'static str)> {
        if self.session.subscriptions.len() >= super::session::MAX_SUBSCRIPTIONS
            && !self.session.subscriptions.contains_key(channel)
        {
            return Some((429, "too many subscriptions on this connection"));
        }
        if channel.kind() == ChannelKind::PrivateEncrypted {
            return Some((400, "encrypted channels are not supported"));
        }
        let presence_data = (channel.kind() == ChannelKind::Presence).then_some(channel_data.unwrap_or(""));
        let signed = !channel.needs_auth()
            || signature.is_some_and(|s| {
                auth::verify(
                    &self.ctx.config.pusher,
                    &self.id.to_string(),
                    channel.as_str(),
                    presence_data,
                    s,
                )
            });
        (!signed).then_some((401, "invalid or missing signature for this socket and channel"))
    }

    /// Writes the messages on `channel` after the user's acknowledged cursor (and after `from`),
    /// oldest first, marked `"backlog": true`. The socket is already subscribed, so live events
    /// queue meanwhile and any that repeat a message written here are dropped when drained.
    async fn send_backlog(&mut self, channel: UserChannel, from: i64) -> Result<(), ()> {
        let (cursor, stream, event) = match channel {
            UserChannel::Individual(_) => (Cursor::Individual, Stream::Individual, INDIVIDUAL_EVENT),
            UserChannel::Group(_) => (Cursor::Group, Stream::Group, GROUP_EVENT),
        };
        let name = channel.name();
        let store = self.ctx.store.clone();
        let user = channel.user();
        let mut after = match store.cursor(user, cursor).await {
            Ok(c) => c.max(from),
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "backlog unavailable");
                return Ok(());
            }
        };
        let mut sent = 0usize;
        let mut read = 0usize;
        loop {
            let page = match store.messages_after(user, stream, after, BACKLOG_PAGE, false).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "backlog interrupted");
                    return Ok(());
                }
            };
            let full = page.len() == BACKLOG_PAGE as usize;
            read += page.len();
            for message in page {
                after = message.id.0;
                if self.first_time(message.id) {
                    let data = json!({ "message": message, "backlog": true }).to_string();
                    let frame = frames::EventFrame::new(event, &data, None).for_channel(&name);
                    self.feed(frame.into()).await?;
                    sent += 1;
                }
            }
            self.flush().await?;
            if !full {
                break;
            }
            if read >= BACKLOG_MAX {
                tracing::info!(socket = %self.id, channel = %name, messages = read, "backlog cut at its bound; the rest follows the next subscription");
                break;
            }
        }
        if sent > 0 {
            tracing::debug!(socket = %self.id, channel = %name, messages = sent, "backlog sent");
        }
        Ok(())
    }

    async fn client_event(&mut self, event: String, raw: &str, data: String) -> Result<(), ()> {
        let subscribed = ChannelName::parse(raw).ok().and_then(|c| {
            let user = self.session.subscriptions.get(&c)?.clone();
            matches!(c.kind(), ChannelKind::Private | ChannelKind::Presence).then_some(user)
        });
        let Some(user_id) = subscribed else {
            return self.write(frames::error(&ProtocolError::ClientEventRefused)).await;
        };
        if data.len() > MAX_CLIENT_EVENT_DATA {
            return self.write(frames::error(&ProtocolError::ClientEventTooLarge)).await;
        }
        if !self.session.allow_client_event() {
            return self.write(frames::error(&ProtocolError::RateLimited)).await;
        }
        // Per user over all its sockets (cluster-wide with Redis); a socket that proved no user
        // counts alone.
        let key = self
            .session
            .identity
            .clone()
            .unwrap_or_else(|| format!("socket:{}", self.id));
        if self
            .ctx
            .limits
            .hit(&limits::CLIENT_EVENTS_PER_USER, &key)
            .await
            .is_err()
        {
            return self.write(frames::error(&ProtocolError::RateLimited)).await;
        }
        let b = Broadcast {
            target: Target::Channel {
                channel: raw.to_owned(),
            },
            event,
            data,
            user_id,
            except: Some(self.id),
            message_id: None,
        };
        if let Err(e) = self.ctx.bus.publish(&b).await {
            tracing::warn!(error = %e, "client event not relayed");
        }
        Ok(())
    }

    async fn leave_all(&mut self) {
        let subscriptions: Vec<_> = self.session.subscriptions.drain().collect();
        for (channel, user) in subscriptions {
            self.leave(channel, user).await;
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
