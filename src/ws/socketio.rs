//! The Socket.IO server at `/socket.io/`, for laravel-echo's `socket.io` broadcaster as
//! laravel-echo-server serves it: Engine.IO 3 (socket.io-client 2.x) and 4 (3.x/4.x), HTTP
//! long-polling and WebSocket with upgrade, heartbeats as each version expects (Engine.IO 3: the
//! client pings; 4: the server does). The `engineioxide` crate runs the Engine.IO sessions; each
//! session's packets go to its own task, which owns a [`Core`] like a Pusher connection: the same
//! hub, channels, presence, limits and bounded outbox.
//!
//! A session opening counts against the client address's connection cap (the gate in
//! `crate::http::websocket`, before Engine.IO sees the request) and gives its place back when it
//! ends ([`Admission`]). Subscriptions to private and
//! presence channels are authorised per channel: chatbox's own chat channels by chatbox's own
//! credentials found in `auth.headers` (a bearer token or the session cookie) or the handshake's
//! Cookie, the others by the app at `AUTH_HOST` ([`super::app_auth`]).

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    extract::ws::Utf8Bytes,
    http::{HeaderMap, HeaderName, HeaderValue, header},
};
use engineioxide::{
    DisconnectReason, ProtocolVersion, Socket, Str, config::EngineIoConfig, handler::EngineIoHandler,
    service::EngineIoService,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    WsContext,
    core::{Core, Member, Wire, presence_member},
    hub::OutboxReader,
};
use crate::protocol::wire::WireKind;
use crate::{
    domain::{ChannelKind, ChannelName},
    error::ApiError,
    http::{broadcasting_auth, extract::user_from_headers},
    protocol::{
        MAX_CLIENT_MESSAGE, ProtocolError, SocketId,
        socketio::{self, ClientEvent, Packet, PacketError},
    },
};

/// Where socket.io clients connect (socket.io-client's default `path`).
pub const PATH: &str = "/socket.io/";
/// Packets a session may have waiting for its task. A client sends a few at a time (its
/// subscriptions at start); one that sends faster than its task can act on them is closed. With
/// packets of at most 10 KB, a session's waiting input is bounded to 640 KB.
const INBOX: usize = 64;
/// Largest HTTP long-polling body or WebSocket message Engine.IO accepts; each packet in it is
/// held to 10 KB besides ([`MAX_CLIENT_MESSAGE`]).
const MAX_PAYLOAD: usize = 64 * 1024;
/// Engine.IO packets waiting to be written (or polled) per session; beyond, the client is too slow
/// and is closed, as a Pusher socket whose outbox is full.
const ENGINE_BUFFER: usize = super::core::OUTBOX_FRAMES;
/// Bytes read from a WebSocket at a time (as for Pusher sockets: idle sockets cost little).
const READ_BUFFER: usize = 1024;
/// The longest Engine.IO waits between heartbeats: socket.io's own default (proxies commonly cut
/// connections idle for a minute). Shorter when `ACTIVITY_TIMEOUT_SECS` is.
const MAX_PING_INTERVAL: Duration = Duration::from_secs(25);
/// Time a socket.io 3/4 client has to connect the namespace after its session opened
/// (socket.io's own `connectTimeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// The Engine.IO service for [`PATH`], with heartbeats derived from the activity timeout.
pub fn service(ctx: WsContext) -> EngineIoService<Handler> {
    let activity = ctx.config.activity_timeout;
    let config = EngineIoConfig::builder()
        .req_path(PATH.trim_end_matches('/'))
        .ping_interval(activity.min(MAX_PING_INTERVAL))
        .ping_timeout(super::connection::pong_timeout(activity))
        .max_payload(MAX_PAYLOAD as u64)
        .max_buffer_size(ENGINE_BUFFER)
        .ws_read_buffer_size(READ_BUFFER)
        .ws_max_message_size(MAX_PAYLOAD)
        .ws_max_frame_size(MAX_PAYLOAD)
        .build();
    EngineIoService::with_config(Arc::new(Handler { ctx }), config)
}

/// One admitted session's place in its address's connection cap, given back when the last
/// reference to it goes (the session ended, or its handshake failed). The handshake's gate puts
/// it in the request's extensions, which the session keeps for its life.
pub struct Admission {
    presence: Arc<crate::presence::Presence>,
    ip: IpAddr,
}

impl Admission {
    /// A place `presence` admitted for `ip` ([`crate::presence::Presence::admit`]).
    pub fn new(presence: Arc<crate::presence::Presence>, ip: IpAddr) -> Self {
        Self { presence, ip }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let (presence, ip) = (self.presence.clone(), self.ip);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { presence.disconnected(ip).await });
        }
    }
}

/// Engine.IO's calls for every session.
pub struct Handler {
    ctx: WsContext,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("socketio::Handler")
    }
}

/// What a session's Engine.IO side holds: the way to its task, and the signal that it closed.
#[derive(Default)]
pub struct SessionData {
    inbox: std::sync::OnceLock<mpsc::Sender<Str>>,
    closed: CancellationToken,
}

impl EngineIoHandler for Handler {
    type Data = SessionData;

    fn on_connect(self: Arc<Self>, socket: Arc<Socket<SessionData>>) {
        let (tx, rx) = mpsc::channel(INBOX);
        if socket.data.inbox.set(tx).is_err() {
            return;
        }
        let ctx = self.ctx.clone();
        self.ctx.tasks.spawn(run(socket, rx, ctx));
    }

    fn on_disconnect(&self, socket: Arc<Socket<SessionData>>, reason: DisconnectReason) {
        tracing::debug!(sid = %socket.id, ?reason, "socket.io session ended by Engine.IO");
        socket.data.closed.cancel();
    }

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<SessionData>>) {
        if msg.len() > MAX_CLIENT_MESSAGE {
            tracing::debug!(sid = %socket.id, bytes = msg.len(), "socket.io packet over 10 KB: session closed");
            return socket.close(DisconnectReason::PacketParsingError);
        }
        let Some(inbox) = socket.data.inbox.get() else { return };
        if inbox.try_send(msg).is_err() {
            tracing::debug!(sid = %socket.id, "socket.io client sends faster than it is served: session closed");
            socket.close(DisconnectReason::PacketParsingError);
        }
    }

    fn on_binary(self: &Arc<Self>, _data: bytes::Bytes, socket: Arc<Socket<SessionData>>) {
        tracing::debug!(sid = %socket.id, "binary socket.io packet: session closed");
        socket.close(DisconnectReason::PacketParsingError);
    }
}

/// The Socket.IO side of a session: packets through Engine.IO.
pub struct SocketIoWire {
    socket: Arc<Socket<SessionData>>,
}

impl Wire for SocketIoWire {
    const KIND: WireKind = WireKind::SocketIo;

    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), ()> {
        // Engine.IO's buffer is bounded ([`ENGINE_BUFFER`]): full means the client is too slow.
        self.socket.emit(Str::from(frame.as_str().to_owned())).map_err(|_| ())
    }

    async fn flush(&mut self) -> Result<(), ()> {
        Ok(())
    }
}

struct Session {
    core: Core<SocketIoWire>,
    /// socket.io 3/4 (Engine.IO 4): the client connects the namespace itself and is told its sid.
    protocol5: bool,
    connected: bool,
    /// What the client knows its socket as (`X-Socket-ID` to its app): socket.io 3/4 the
    /// socket id, 2.x the Engine.IO session id.
    known_as: String,
    /// The Cookie header of the handshake.
    cookie: Option<String>,
}

async fn run(socket: Arc<Socket<SessionData>>, mut inbox: mpsc::Receiver<Str>, ctx: WsContext) {
    let protocol5 = socket.protocol == ProtocolVersion::V4;
    let id = SocketId::random();
    let engine_sid = socket.id.to_string();
    let known_as = if protocol5 { id.to_string() } else { engine_sid.clone() };
    if !protocol5 {
        ctx.hub.name_engine_sid(&engine_sid, id);
    }
    let cookie = socket
        .req_parts
        .headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .map(str::to_owned);
    let closed = socket.data.closed.clone();
    let (core, reader) = Core::new(SocketIoWire { socket: socket.clone() }, id, ctx.clone());
    let mut session = Session {
        core,
        protocol5,
        connected: !protocol5,
        known_as,
        cookie,
    };
    tracing::debug!(socket = %id, eio = if protocol5 { 4 } else { 3 }, "socket.io session opened");
    let ending = Box::pin(session.run(&reader, &mut inbox, &closed)).await;
    session.core.leave_all().await;
    if !protocol5 {
        ctx.hub.forget_engine_sid(&engine_sid);
    }
    match ending {
        End::Gone => {}
        End::Close => socket.close(DisconnectReason::PacketParsingError),
        End::Server(e) => {
            match e {
                ProtocolError::SlowClient => {
                    tracing::warn!(socket = %id, "socket.io client could not keep up with its events; disconnected")
                }
                // Told not to come back unchanged: a socket.io DISCONNECT (no reconnection).
                ProtocolError::SignedOut => {
                    let _ = socket.emit("1");
                }
                _ => {}
            }
            socket.close(DisconnectReason::ClosingServer);
        }
    }
    tracing::debug!(socket = %id, "socket.io session closed");
}

/// How a session ended.
enum End {
    /// The client went away: nothing left to close.
    Gone,
    /// The client broke the protocol, disconnected or never connected: close quietly.
    Close,
    /// The server ends it (shutdown, slow client, sign-out).
    Server(ProtocolError),
}

impl Session {
    /// Serves the session until it ends.
    async fn run(&mut self, reader: &OutboxReader, inbox: &mut mpsc::Receiver<Str>, closed: &CancellationToken) -> End {
        // socket.io 2.x is connected to the default namespace unasked.
        if !self.protocol5 && self.core.write(socketio::connected(None)).await.is_err() {
            return End::Gone;
        }
        let shutdown = self.core.ctx.shutdown.clone();
        let cancelled = shutdown.cancelled();
        let evicted = reader.evicted();
        let connect_deadline = tokio::time::sleep(CONNECT_TIMEOUT);
        tokio::pin!(cancelled, evicted, connect_deadline);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => return End::Server(ProtocolError::ShuttingDown),
                _ = &mut evicted => return End::Server(ProtocolError::SlowClient),
                _ = closed.cancelled() => return End::Gone,
                out = reader.recv() => {
                    if Box::pin(self.core.drain(out, reader)).await.is_err() {
                        return End::Server(self.core.closing.take().unwrap_or(ProtocolError::SlowClient));
                    }
                }
                msg = inbox.recv() => {
                    let Some(msg) = msg else { return End::Gone };
                    tracing::trace!(socket = %self.core.id, bytes = msg.len(), "socket.io packet");
                    match Box::pin(self.handle(&msg)).await {
                        Ok(true) => {}
                        Ok(false) => return End::Close,
                        Err(()) => return End::Server(ProtocolError::SlowClient),
                    }
                }
                _ = &mut connect_deadline, if !self.connected => {
                    tracing::debug!(socket = %self.core.id, "socket.io client never connected the namespace");
                    return End::Close;
                }
            }
        }
    }

    /// Acts on one packet; `Ok(false)` when the session is to end (the client disconnected or
    /// sent what cannot be a socket.io packet), `Err` when it can no longer be written.
    async fn handle(&mut self, text: &str) -> Result<bool, ()> {
        if !self.core.session.allow_frame() {
            if self.core.session.first_refusal_this_second() {
                tracing::debug!(socket = %self.core.id, "socket.io packets over the per-second budget ignored");
            }
            return Ok(true);
        }
        let packet = match socketio::decode(text) {
            Ok(p) => p,
            Err(e @ (PacketError::TooLarge | PacketError::Binary)) => {
                tracing::debug!(socket = %self.core.id, error = %e, "socket.io packet refused: session closed");
                return Ok(false);
            }
            Err(e) => {
                tracing::debug!(socket = %self.core.id, error = %e, "socket.io packet ignored");
                return Ok(true);
            }
        };
        match packet {
            Packet::Connect => {
                if self.protocol5 && !self.connected {
                    self.connected = true;
                    self.core.write(socketio::connected(Some(&self.known_as))).await?;
                }
            }
            Packet::ConnectOther => self.core.write(socketio::connect_error(self.protocol5)).await?,
            Packet::Disconnect => return Ok(false),
            Packet::Ack => {}
            Packet::Event { .. } if !self.connected => {}
            Packet::Event { ack, event } => self.on_event(ack, event).await?,
        }
        Ok(true)
    }

    async fn on_event(&mut self, ack: Option<u64>, event: ClientEvent) -> Result<(), ()> {
        let status = match event {
            ClientEvent::Subscribe { channel, headers } => self.subscribe(&channel, &headers).await?,
            ClientEvent::Unsubscribe { channel } => {
                self.core.unsubscribe(&channel).await;
                200
            }
            ClientEvent::Whisper { channel, event, data } => {
                if event.starts_with("client-") && event.len() > "client-".len() {
                    self.core.client_event(event, &channel, data).await?;
                }
                200
            }
            ClientEvent::Other(name) => {
                tracing::debug!(socket = %self.core.id, event = %name, "socket.io event ignored");
                return Ok(());
            }
        };
        // laravel-echo asks for no acknowledgement; a client that does learns the outcome.
        match ack {
            Some(id) => self.core.write(socketio::ack(id, &json!({ "status": status }))).await,
            None => Ok(()),
        }
    }

    /// Subscribes when authorised, else writes `subscription_error`; returns the status.
    async fn subscribe(&mut self, raw: &str, headers: &[(String, String)]) -> Result<u16, ()> {
        let channel = match ChannelName::parse(raw) {
            Ok(c) => c,
            Err(e) => return self.core.refuse(raw, 400, &e.message).await.map(|()| 400),
        };
        let authorised = match self.core.refusal(&channel) {
            Some((status, _)) => Err(status),
            None if !channel.needs_auth() => Ok(None),
            None => self.authorize(&channel, headers).await,
        };
        match authorised {
            Ok(member) => self.core.join(channel, member).await.map(|()| 200),
            Err(status) => self.core.refuse(raw, status, "").await.map(|()| status),
        }
    }

    /// Who authorises a private or presence channel: chatbox for its own chat channels, the app
    /// at `AUTH_HOST` for the rest. `Ok` with the member on a presence channel; `Err(status)`.
    async fn authorize(&self, channel: &ChannelName, headers: &[(String, String)]) -> Result<Option<Member>, u16> {
        let presence = channel.kind() == ChannelKind::Presence;
        if broadcasting_auth::is_own_channel(channel) {
            return self.authorize_own(channel, headers).await;
        }
        let Some(app) = &self.core.ctx.app_auth else {
            tracing::debug!(channel = %channel, "subscription refused: AUTH_HOST is not set");
            return Err(403);
        };
        app.authorize(
            channel.as_str(),
            &self.known_as,
            presence,
            headers,
            self.cookie.as_deref(),
        )
        .await
    }

    /// chatbox's own rules, as `POST /broadcasting/auth` applies them, for the user that the
    /// client's headers (or its handshake Cookie) sign in as.
    async fn authorize_own(&self, channel: &ChannelName, headers: &[(String, String)]) -> Result<Option<Member>, u16> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                map.insert(n, v);
            }
        }
        if !map.contains_key(header::COOKIE)
            && let Some(v) = self.cookie.as_deref().and_then(|c| HeaderValue::from_str(c).ok())
        {
            map.insert(header::COOKIE, v);
        }
        let ctx = &self.core.ctx;
        let user = match user_from_headers(&ctx.store, &ctx.config, &map).await {
            Ok(Some(user)) => user,
            Ok(None) | Err(ApiError::Unauthenticated) => return Err(401),
            Err(e) => {
                tracing::warn!(error = %e, "socket.io subscription not authorised: store unavailable");
                return Err(503);
            }
        };
        match broadcasting_auth::grant(channel, &user) {
            Some(broadcasting_auth::Grant::Private) => Ok(None),
            Some(broadcasting_auth::Grant::Presence(data)) => presence_member(&data).map(Some).ok_or(500),
            None => {
                tracing::info!(user_id = %user.id, channel = %channel, "subscription refused");
                Err(403)
            }
        }
    }
}
