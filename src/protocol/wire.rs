//! The two wire protocols a socket may speak, and what differs between them when the shared
//! session core ([`crate::ws::core`]) writes to a socket: each [`WireKind`] encodes a channel event
//! its own way, and the hub encodes every broadcast once per kind, never once per socket.

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;

use crate::protocol::{
    ProtocolError,
    frames::{self, MEMBER_ADDED, MEMBER_REMOVED},
    socketio,
};

/// Which protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireKind {
    /// Pusher Channels protocol v7 at `/app/{key}`.
    Pusher,
    /// Socket.IO (laravel-echo-server's events) at `/socket.io/`.
    SocketIo,
}

/// Both kinds, in the order [`PerWire`] stores them.
pub const KINDS: [WireKind; 2] = [WireKind::Pusher, WireKind::SocketIo];

impl WireKind {
    fn index(self) -> usize {
        match self {
            Self::Pusher => 0,
            Self::SocketIo => 1,
        }
    }

    /// The frame confirming a subscription to a public or private channel (Socket.IO sends none,
    /// as laravel-echo-server).
    pub fn subscribed(self, channel: &str) -> Option<String> {
        match self {
            Self::Pusher => Some(frames::subscription_succeeded(channel, None)),
            Self::SocketIo => None,
        }
    }

    /// The frame refusing a subscription.
    pub fn subscription_error(self, channel: &str, status: u16, why: &str) -> String {
        match self {
            Self::Pusher => frames::subscription_error(channel, status, why),
            Self::SocketIo => socketio::subscription_error(channel, status),
        }
    }

    /// The frame reporting a refused frame that leaves the connection open; Socket.IO has no
    /// such event in laravel-echo-server's protocol, so nothing is written there.
    pub fn error(self, e: &ProtocolError) -> Option<String> {
        match self {
            Self::Pusher => Some(frames::error(e)),
            Self::SocketIo => None,
        }
    }

    /// One event on one channel (backlog messages, written by a single connection).
    pub fn event(self, event: &str, data_json: &str, channel: &str) -> String {
        match self {
            Self::Pusher => frames::EventFrame::new(event, data_json, None).for_channel(channel),
            Self::SocketIo => socketio::channel_event(event, data_json).for_channel(channel),
        }
    }
}

/// A value per wire kind.
#[derive(Debug, Clone)]
pub struct PerWire<T>([T; 2]);

impl<T> PerWire<T> {
    pub fn new(mut make: impl FnMut(WireKind) -> T) -> Self {
        Self(KINDS.map(&mut make))
    }

    pub fn get(&self, kind: WireKind) -> &T {
        &self.0[kind.index()]
    }
}

/// A broadcast's event, encoded for a wire kind the first time a socket of that kind needs it.
pub struct LazyEvent<'a> {
    event: &'a str,
    data: &'a str,
    user_id: Option<&'a str>,
    pusher: Option<frames::EventFrame>,
    socketio: Option<frames::EventFrame>,
}

impl<'a> LazyEvent<'a> {
    pub fn new(event: &'a str, data: &'a str, user_id: Option<&'a str>) -> Self {
        Self {
            event,
            data,
            user_id,
            pusher: None,
            socketio: None,
        }
    }

    /// The event addressed to `channel` for sockets of `kind`.
    pub fn for_channel(&mut self, kind: WireKind, channel: &str) -> String {
        match kind {
            WireKind::Pusher => self
                .pusher
                .get_or_insert_with(|| frames::EventFrame::new(self.event, self.data, self.user_id))
                .for_channel(channel),
            WireKind::SocketIo => {
                // laravel-echo-server's names for presence member changes; the payload
                // (`{user_id, user_info}`, `{user_id}`) is the same.
                let event = match self.event {
                    MEMBER_ADDED => "presence:joining",
                    MEMBER_REMOVED => "presence:leaving",
                    other => other,
                };
                self.socketio
                    .get_or_insert_with(|| socketio::channel_event(event, self.data))
                    .for_channel(channel)
            }
        }
    }
}

/// A channel event per wire kind, for each socket of a channel to take its own (a cheap clone).
#[derive(Default)]
pub struct ChannelFrames {
    frames: [Option<Utf8Bytes>; 2],
}

impl ChannelFrames {
    /// The frame for `kind` on `channel`, encoded on first use.
    pub fn get(&mut self, event: &mut LazyEvent<'_>, kind: WireKind, channel: &str) -> Utf8Bytes {
        self.frames[kind.index()]
            .get_or_insert_with(|| Utf8Bytes::from(event.for_channel(kind, channel)))
            .clone()
    }
}

/// `presence:subscribed` for a member list over the member limit: the subscriber alone.
pub fn socketio_counted(channel: &str, me: &str, info: &Value) -> String {
    socketio::presence_subscribed(channel, &[(me.to_owned(), info.clone())])
}
