//! The session core both wire protocols share: one socket's subscriptions, presence membership,
//! client events and their limits, its outbox, and the backlog of its user's own channels. The
//! Pusher connection ([`super::connection`]) and the Socket.IO session ([`super::socketio`]) each
//! own a [`Core`], decide themselves whether a subscription is authorised, and hand the rest here;
//! what they write goes through their [`Wire`].

use std::collections::BTreeSet;

use axum::extract::ws::Utf8Bytes;
use serde_json::{Value, json};

use super::{
    WsContext,
    hub::{Outbox, OutboxReader, Outgoing},
    session::{MAX_SUBSCRIPTIONS, Session},
};
use crate::protocol::wire::WireKind;
use crate::{
    broadcast::{
        Broadcast, Target,
        events::{GROUP_EVENT, INDIVIDUAL_EVENT},
    },
    domain::{ChannelKind, ChannelName, MessageId, UserChannel},
    limits,
    presence::Fresh,
    protocol::{MAX_CLIENT_EVENT_DATA, ProtocolError, SocketId},
    store::{Cursor, Stream},
};

/// Frames queued for one socket before it counts as too slow and is evicted with 4100.
pub const OUTBOX_FRAMES: usize = 256;
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

/// How a protocol puts frames on its socket.
pub trait Wire: Send {
    const KIND: WireKind;
    /// Queues one frame (written out when the buffer fills or on [`Wire::flush`]); `Err` when the
    /// socket can no longer be written.
    fn feed(&mut self, frame: Utf8Bytes) -> impl Future<Output = Result<(), ()>> + Send;
    fn flush(&mut self) -> impl Future<Output = Result<(), ()>> + Send;
}

/// A presence member: `(user_id, user_info)`.
pub type Member = (String, Value);

pub struct Core<W> {
    pub wire: W,
    pub id: SocketId,
    pub outbox: Outbox,
    pub session: Session,
    /// Ids of messages this connection delivered (bounded, see [`SEEN_IDS`]).
    seen: BTreeSet<MessageId>,
    /// Set when the hub asked this connection to close ([`Outgoing::Close`]).
    pub closing: Option<ProtocolError>,
    pub ctx: WsContext,
}

impl<W: Wire> Core<W> {
    /// A fresh session for socket `id` with its outbox (not in any channel yet).
    pub fn new(wire: W, id: SocketId, ctx: WsContext) -> (Self, OutboxReader) {
        let (outbox, reader) = Outbox::new(OUTBOX_FRAMES, W::KIND);
        let core = Self {
            wire,
            id,
            outbox,
            session: Session::default(),
            seen: BTreeSet::new(),
            closing: None,
            ctx,
        };
        (core, reader)
    }

    /// Writes one frame now.
    pub async fn write(&mut self, text: String) -> Result<(), ()> {
        self.wire.feed(text.into()).await?;
        self.wire.flush().await
    }

    /// Tells the client a frame was refused, where its protocol has a way to say so.
    pub async fn report(&mut self, e: &ProtocolError) -> Result<(), ()> {
        match W::KIND.error(e) {
            Some(frame) => self.write(frame).await,
            None => {
                tracing::debug!(socket = %self.id, error = %e, "frame refused");
                Ok(())
            }
        }
    }

    /// Refuses a subscription to `raw` with `status`.
    pub async fn refuse(&mut self, raw: &str, status: u16, why: &str) -> Result<(), ()> {
        self.write(W::KIND.subscription_error(raw, status, why)).await
    }

    /// Why a subscription is refused whoever authorised it (status, reason), if it is.
    pub fn refusal(&self, channel: &ChannelName) -> Option<(u16, &'static str)> {
        if self.session.subscriptions.len() >= MAX_SUBSCRIPTIONS && !self.session.subscriptions.contains_key(channel) {
            return Some((429, "too many subscriptions on this connection"));
        }
        (channel.kind() == ChannelKind::PrivateEncrypted).then_some((400, "encrypted channels are not supported"))
    }

    /// Subscribes to an authorised channel, `member` being who the socket is present as on a
    /// presence channel. Confirms (with the member list on presence channels), joins presence,
    /// and on the user's own channels writes the backlog first.
    pub async fn join(&mut self, channel: ChannelName, member: Option<Member>) -> Result<(), ()> {
        let raw = channel.as_str().to_owned();
        if let Some(present) = self.session.subscriptions.get(&channel) {
            // Already subscribed: confirm again, with the current members for presence.
            let Some(user) = present.clone() else {
                return match W::KIND.subscribed(&raw) {
                    Some(frame) => self.write(frame).await,
                    None => Ok(()),
                };
            };
            let info = member.map(|(_, i)| i).unwrap_or_default();
            return self.send_members(channel, &user, &info, 0).await;
        }
        if channel.kind() == ChannelKind::Presence {
            let Some((user, info)) = member else {
                let why = "channel_data must be {\"user_id\": …, \"user_info\": {…}} under 1 KB";
                return self.refuse(&raw, 400, why).await;
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
                return self.refuse(&raw, 429, &why).await;
            }
            self.session.identity.get_or_insert(key);
        }
        if let Some(frame) = W::KIND.subscribed(&raw) {
            self.write(frame).await?;
        }
        self.ctx.hub.subscribe(&channel, self.id, &self.outbox);
        self.session.subscriptions.insert(channel, None);
        match own {
            Some(uc) => self.send_backlog(uc, 0).await,
            None => Ok(()),
        }
    }

    /// Leaves `raw` if subscribed to it.
    pub async fn unsubscribe(&mut self, raw: &str) {
        if let Ok(name) = ChannelName::parse(raw)
            && let Some(user) = self.session.subscriptions.remove(&name)
        {
            self.leave(name, user).await;
        }
    }

    /// Writes the member list of `channel`, at least as current as version `at_least`, and
    /// remembers its version.
    async fn send_members(&mut self, channel: ChannelName, user: &str, info: &Value, at_least: u64) -> Result<(), ()> {
        let members = self.ctx.presence.snapshot(&channel, Fresh::AtLeast(at_least)).await;
        let frame = members.frame(W::KIND, &channel, user, info);
        self.session.member_lists.insert(channel, members.version);
        self.wire.feed(frame).await?;
        self.wire.flush().await
    }

    /// Sends the member list of `channel` again, read after `since` (a reset: clients replace
    /// their list), and takes on its version.
    async fn resend_members(&mut self, channel: ChannelName, user: &str, since: std::time::Instant) -> Result<(), ()> {
        let Some((version, frame)) = self.ctx.presence.reset_frame(W::KIND, &channel, user, since).await else {
            return Ok(());
        };
        self.session.member_lists.insert(channel, version);
        self.wire.feed(frame).await
    }

    /// Leaves `channel`; for a presence channel, counts this socket out of it.
    async fn leave(&mut self, channel: ChannelName, user: Option<String>) {
        self.ctx.hub.unsubscribe(&channel, self.id, user.as_deref());
        self.session.member_lists.remove(&channel);
        if let Some(user) = user {
            self.ctx.presence.leave(&channel, &user).await;
        }
    }

    /// Leaves every channel (the socket is closing).
    pub async fn leave_all(&mut self) {
        let subscriptions: Vec<_> = self.session.subscriptions.drain().collect();
        for (channel, user) in subscriptions {
            self.leave(channel, user).await;
        }
    }

    /// Writes `first` and whatever else is already queued (up to [`WRITE_BATCH`] frames), then
    /// flushes once: under load one system call carries many frames. `Err` when the socket can
    /// no longer be written or the hub asked it to close ([`Core::closing`] then says why).
    pub async fn drain(&mut self, first: Outgoing, reader: &OutboxReader) -> Result<(), ()> {
        let mut next = Some(first);
        let mut batched = 0;
        while let Some(out) = next.take() {
            match out {
                Outgoing::Frame { frame, message } => {
                    if message.is_none_or(|id| self.first_time(id)) {
                        self.wire.feed(frame).await?;
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
                            self.wire.feed(change.frames.get(W::KIND).clone()).await?;
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
                        batched += 1;
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
        self.wire.flush().await
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
                    self.wire.feed(W::KIND.event(event, &data, &name).into()).await?;
                    sent += 1;
                }
            }
            self.wire.flush().await?;
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

    /// Relays a client event (`client-…`, `data` JSON text) to the other subscribers of `raw`, on
    /// every node and over both protocols; refused unless this socket is subscribed to that
    /// private or presence channel, and within the size and rate limits.
    pub async fn client_event(&mut self, event: String, raw: &str, data: String) -> Result<(), ()> {
        let subscribed = ChannelName::parse(raw).ok().and_then(|c| {
            let user = self.session.subscriptions.get(&c)?.clone();
            matches!(c.kind(), ChannelKind::Private | ChannelKind::Presence).then_some(user)
        });
        let Some(user_id) = subscribed else {
            return self.report(&ProtocolError::ClientEventRefused).await;
        };
        if data.len() > MAX_CLIENT_EVENT_DATA {
            return self.report(&ProtocolError::ClientEventTooLarge).await;
        }
        if !self.session.allow_client_event() {
            return self.report(&ProtocolError::RateLimited).await;
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
            return self.report(&ProtocolError::RateLimited).await;
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
}

/// `(user_id, user_info)` from presence `channel_data`; the id may be a string or a number, and
/// `user_info` at most 1 KB.
pub fn presence_member(data: &Value) -> Option<Member> {
    let user = match data.get("user_id")? {
        Value::String(s) if !s.is_empty() && s.len() <= 128 => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let info = data.get("user_info").cloned().unwrap_or(Value::Null);
    (info.to_string().len() <= MAX_USER_INFO).then_some((user, info))
}
