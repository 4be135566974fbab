//! Opening the load tool's own WebSocket connections: from a chosen 127.0.0.x source address,
//! subscribed to channels signed locally with the app secret, many at a time with a bound on how
//! many are being opened at once.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpSocket, sync::Semaphore};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use crate::{config::PusherApp, protocol::auth};

pub(super) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connections being opened at once, per process.
const OPENING: usize = 256;

/// The loopback address connection `i` is opened from: 127.0.0.1 … 127.0.0.`sources`, in turn.
pub(super) fn source_address(i: usize, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(sources.max(1))) as u8))
}

pub(super) use crate::telemetry::proc_status;

/// Which protocol a workload's connections speak (`--protocol`, `--eio`).
#[derive(Debug, Clone, clap::Args)]
pub struct ProtocolArgs {
    /// `pusher` (`/app/{key}`, private channels signed with the app secret) or `socketio`
    /// (`/socket.io/`, laravel-echo's socket.io protocol over the WebSocket transport, public
    /// channels: it runs against laravel-echo-server as well).
    #[arg(long, value_enum, default_value_t = Protocol::Pusher)]
    pub protocol: Protocol,
    /// With `--protocol socketio`: the Engine.IO version, 3 (socket.io 2.x servers such as
    /// laravel-echo-server) or 4 (socket.io 3 and 4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=4))]
    pub eio: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Pusher,
    Socketio,
}

impl ProtocolArgs {
    pub(super) fn dialect(&self, app: &Arc<PusherApp>) -> Dialect {
        match self.protocol {
            Protocol::Pusher => Dialect::Pusher(app.clone()),
            Protocol::Socketio => Dialect::SocketIo { eio: self.eio },
        }
    }

    /// The same flags, for a helper process of the tool.
    pub(super) fn to_args(&self) -> [String; 4] {
        let protocol = match self.protocol {
            Protocol::Pusher => "pusher",
            Protocol::Socketio => "socketio",
        };
        [
            "--protocol".into(),
            protocol.into(),
            "--eio".into(),
            self.eio.to_string(),
        ]
    }
}

/// How the tool's connections speak.
#[derive(Clone)]
pub(super) enum Dialect {
    /// The Pusher protocol at `/app/{key}`; private and presence channels signed with the app's
    /// secret.
    Pusher(Arc<PusherApp>),
    /// laravel-echo's socket.io protocol at `/socket.io/` over Engine.IO `eio` (3 or 4), public
    /// channels only.
    SocketIo { eio: u8 },
}

/// An open connection of either dialect.
pub(super) enum Conn {
    Pusher(Ws),
    SocketIo(super::socketio::SocketIo),
}

impl Conn {
    /// The next event's text, with keep-alives answered (and, for Engine.IO 3, sent) meanwhile;
    /// `None` once the connection closed.
    pub async fn next_event(&mut self) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
        match self {
            Self::SocketIo(s) => s.next_event().await,
            Self::Pusher(ws) => loop {
                let Ok(Message::Text(text)) = ws.next().await? else {
                    continue;
                };
                if text.contains("pusher:ping") {
                    ws.send(Message::text(r#"{"event":"pusher:pong","data":{}}"#))
                        .await
                        .ok()?;
                    continue;
                }
                return Some(text);
            },
        }
    }
}

/// What opening many connections gave.
pub(super) struct Opened {
    pub sockets: Vec<Conn>,
    pub failed: usize,
    pub seconds: f64,
}

/// Opens `count` connections to `server`, connection `i` from [`source_address`]`(i)` and
/// subscribed to `subscriptions(i)`, at most [`OPENING`] at a time; progress every second on
/// stderr, the first failures too.
pub(super) async fn open_many(
    server: SocketAddr,
    dialect: Dialect,
    count: usize,
    sources: u8,
    subscriptions: impl Fn(usize) -> Vec<(String, Option<String>)>,
) -> anyhow::Result<Opened> {
    let limit = Arc::new(Semaphore::new(OPENING));
    let started = Instant::now();
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let permit = limit.clone().acquire_owned().await?;
        let (dialect, channels) = (dialect.clone(), subscriptions(i));
        opening.push(tokio::spawn(async move {
            let source = source_address(i, sources);
            let ws = match dialect {
                Dialect::Pusher(app) => open(server, source, &app, &channels).await.map(Conn::Pusher),
                Dialect::SocketIo { eio } => {
                    let channels: Vec<String> = channels.into_iter().map(|(c, _)| c).collect();
                    let ws = upgrade(server, source, &super::socketio::path(eio)).await;
                    match ws {
                        Ok(ws) => super::socketio::handshake(ws, eio, &channels).await.map(Conn::SocketIo),
                        Err(e) => Err(e),
                    }
                }
            };
            drop(permit);
            ws
        }));
    }
    let mut opened = Opened {
        sockets: Vec::with_capacity(count),
        failed: 0,
        seconds: 0.0,
    };
    let mut last_progress = Instant::now();
    for attempt in opening {
        match attempt.await? {
            Ok(ws) => opened.sockets.push(ws),
            Err(e) => {
                if opened.failed < 3 {
                    eprintln!("bench: a connection to {server} failed: {e:#}");
                }
                opened.failed += 1;
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "bench: {} open, {} failed ({server})",
                opened.sockets.len(),
                opened.failed
            );
            last_progress = Instant::now();
        }
    }
    opened.seconds = started.elapsed().as_secs_f64();
    Ok(opened)
}

/// Connects from `source`, then subscribes `subscriptions` (channel, presence channel data),
/// signing each with the app secret.
pub(super) async fn open(
    server: SocketAddr,
    source: IpAddr,
    app: &PusherApp,
    subscriptions: &[(String, Option<String>)],
) -> anyhow::Result<Ws> {
    let path = format!("/app/{}?protocol=7&client=chatbox-bench&version=1.0", app.key);
    let mut ws = upgrade(server, source, &path).await?;
    let hello = next_text(&mut ws).await?;
    let socket_id = serde_json::from_str::<Value>(hello["data"].as_str().unwrap_or("{}"))?["socket_id"]
        .as_str()
        .context("handshake without socket_id")?
        .to_owned();
    for (channel, data) in subscriptions {
        let signature = auth::sign(app, &socket_id, channel, data.as_deref());
        let frame = json!({ "event": "pusher:subscribe", "data": { "channel": channel, "auth": signature, "channel_data": data } });
        ws.send(Message::text(frame.to_string())).await?;
    }
    let mut confirmed = 0;
    while confirmed < subscriptions.len() {
        let f = next_text(&mut ws).await?;
        match f["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") => confirmed += 1,
            Some("pusher:subscription_error") | Some("pusher:error") => anyhow::bail!("refused: {f}"),
            _ => {}
        }
    }
    Ok(ws)
}

/// A WebSocket to `path` on `server`, from `source`.
async fn upgrade(server: SocketAddr, source: IpAddr, path: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(format!("ws://{server}{path}"), stream, Some(config)).await?;
    Ok(ws)
}

/// The next text frame as JSON, within 30 s; an error when the socket closes.
pub(super) async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> anyhow::Result<Value>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no answer in 30 s")?
        {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(f))) => anyhow::bail!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed"),
        }
    }
}
