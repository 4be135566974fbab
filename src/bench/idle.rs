//! `idle`: N connections, each subscribed to its two private channels and `presence-online`, held
//! open; the server's resident memory before and after gives bytes per idle connection.
//! Subscriptions are signed here with the app secret (as a server-side auth endpoint would), so
//! the workload runs against any Pusher-protocol server. Connections are spread over 127.0.0.x
//! source addresses (a per-address connection cap, and ephemeral ports, are per address).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpSocket, sync::Semaphore};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::Report;
use crate::{
    config::{PusherApp, Secret},
    protocol::auth,
};

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// WebSocket endpoint host:port of the server under test.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub server: SocketAddr,
    #[arg(long, default_value = "chatbox-key")]
    pub app_key: String,
    #[arg(long, default_value = "chatbox-dev-secret")]
    pub app_secret: String,
    /// Process id of the server, for its resident memory (VmRSS in /proc).
    #[arg(long)]
    pub pid: u32,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread the connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// First user id used in channel names (run several tool processes with disjoint ranges).
    #[arg(long, default_value_t = 1)]
    pub first_user: usize,
    /// Subscribe only the two private channels, not `presence-online` (every join on a presence
    /// channel is announced to every member: its cost grows with the square of the members).
    #[arg(long)]
    pub no_presence: bool,
    /// Seconds to keep the connections open after the measurement.
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
}

/// Connections being opened at once.
const OPENING: usize = 256;

/// The loopback address connection `i` is opened from: 127.0.0.1 … 127.0.0.`sources`, in turn.
pub(super) fn source_address(i: usize, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(sources.max(1))) as u8))
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("no process {pid}"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

pub async fn run(args: IdleArgs) -> anyhow::Result<Report> {
    let app = Arc::new(PusherApp {
        id: "bench".into(),
        key: args.app_key.clone(),
        secret: Secret::new(args.app_secret.clone()),
    });
    let before = rss(args.pid)?;
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(Semaphore::new(OPENING));
    let started = Instant::now();
    let mut held = Vec::with_capacity(args.connections);
    let mut last_progress = Instant::now();
    for i in 0..args.connections {
        let permit = limit.clone().acquire_owned().await?;
        let source = source_address(i, args.sources);
        let (app, opened_here, failed_here, server) = (app.clone(), opened.clone(), failed.clone(), args.server);
        let user = args.first_user + i;
        let presence = !args.no_presence;
        held.push(tokio::spawn(async move {
            let (opened, failed) = (opened_here, failed_here);
            let socket = open(server, source, &app, &user_subscriptions(user, presence)).await;
            drop(permit);
            match socket {
                Ok(mut ws) => {
                    opened.fetch_add(1, Ordering::Relaxed);
                    // Stay connected: answer pings until the run ends.
                    while let Some(Ok(msg)) = ws.next().await {
                        if let Message::Text(t) = msg
                            && t.contains("pusher:ping")
                        {
                            let _ = ws.send(Message::text(r#"{"event":"pusher:pong","data":{}}"#)).await;
                        }
                    }
                }
                Err(e) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("idle: connection {user} failed: {e:#}");
                    }
                }
            }
        }));
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "idle: {} open, {} failed",
                opened.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed)
            );
            last_progress = Instant::now();
        }
    }
    let _ = limit.acquire_many(OPENING as u32).await?;
    let establish = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the server settle
    let after = rss(args.pid)?;
    let open = opened.load(Ordering::Relaxed);
    let failures = failed.load(Ordering::Relaxed);
    let per_connection = after.saturating_sub(before) as f64 / open.max(1) as f64;
    if args.hold_secs > 0 {
        tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    }
    held.iter().for_each(|h| h.abort());
    let table = format!(
        "idle: {open} connections open ({failures} failed) in {:.2} s, each on 2 private channels{}\n\
         server RSS: {:.1} MiB before, {:.1} MiB after → {:.0} bytes ({:.2} KiB) per connection",
        establish.as_secs_f64(),
        if args.no_presence { "" } else { " + presence" },
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per_connection,
        per_connection / 1024.0
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "idle",
            "connections": open,
            "failed": failures,
            "establish_seconds": establish.as_secs_f64(),
            "rss_before": before,
            "rss_after": after,
            "bytes_per_connection": per_connection,
        }),
    })
}

pub(super) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// User `user`'s two private channels, and `presence-online` with its channel data if `presence`.
pub(super) fn user_subscriptions(user: usize, presence: bool) -> Vec<(String, Option<String>)> {
    let mut subscriptions = vec![
        (format!("private-individual.message.{user}"), None),
        (format!("private-group.message.{user}"), None),
    ];
    if presence {
        let channel_data =
            json!({ "user_id": user.to_string(), "user_info": { "name": format!("user {user}") } }).to_string();
        subscriptions.push(("presence-online".to_owned(), Some(channel_data)));
    }
    subscriptions
}

/// Connects from `source`, then subscribes `subscriptions` (channel, presence channel data),
/// signing each with the app secret.
pub(super) async fn open(
    server: SocketAddr,
    source: IpAddr,
    app: &PusherApp,
    subscriptions: &[(String, Option<String>)],
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    let url = format!(
        "ws://{server}/app/{}?protocol=7&client=chatbox-bench&version=1.0",
        app.key
    );
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
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

async fn next_text(ws: &mut Ws) -> anyhow::Result<Value> {
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
