//! `presence`: N sockets join `presence-online` as N distinct users, `--ramp` joins per second,
//! spread over the `--server` nodes. Each socket counts the members it knows (the `count` of its
//! `subscription_succeeded`, plus arrivals, minus departures) until it knows all N; the report
//! gives the time from the last join until every socket's list was complete, the frames and bytes
//! delivered, and the servers' resident memory per connection once settled.
//!
//! `channel_data` is signed here with the app secret, as the server's auth endpoint would, so the
//! workload runs against any Pusher-protocol server. Frames are read as text and only matched,
//! not parsed whole: the member lists are large and the tool shares the machine with the server.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpSocket, sync::Mutex};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

use super::{
    Report,
    connect::{proc_status, source_address},
};
use crate::{
    config::{PusherApp, Secret},
    protocol::auth,
};

#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// WebSocket endpoint(s) host:port, comma-separated: socket i goes to server i mod count.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub server: Vec<SocketAddr>,
    #[arg(long, default_value = "chatbox-key")]
    pub app_key: String,
    /// The server's app secret (its `PUSHER_APP_SECRET`), to sign as the server would.
    #[arg(long, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    pub app_secret: String,
    /// Process ids of the servers, for resident memory (VmRSS); optional.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Joins per second.
    #[arg(long, default_value_t = 500)]
    pub ramp: u32,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread the connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// First user id (users are first_user … first_user + connections − 1).
    #[arg(long, default_value_t = 1)]
    pub first_user: usize,
    /// Give up this many seconds after the last join.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// Shared tallies of every socket.
#[derive(Default)]
struct Tally {
    frames: AtomicU64,
    bytes: AtomicU64,
    complete: AtomicUsize,
    /// When each socket's list became complete.
    done_at: Mutex<Vec<Instant>>,
}

const MEMBER_ADDED: &str = "pusher_internal:member_added";
const MEMBER_REMOVED: &str = "pusher_internal:member_removed";
const SUCCEEDED: &str = "pusher_internal:subscription_succeeded";

/// The member `count` of a presence `subscription_succeeded`, read from its text (the data is
/// a JSON string inside the frame, so its quotes are escaped).
fn count_in(frame: &str) -> Option<usize> {
    let at = frame.find("\\\"count\\\":")? + "\\\"count\\\":".len();
    let digits: String = frame[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The event name of a frame, looked for near either end (servers put `event` first or, with
/// sorted keys, last) without reading the middle: member lists are large.
fn event_of(frame: &str) -> &'static str {
    let bytes = frame.as_bytes();
    let edge = bytes.len().min(96);
    let (head, tail) = (&bytes[..edge], &bytes[bytes.len() - edge..]);
    let holds = |part: &[u8], e: &str| part.windows(e.len()).any(|w| w == e.as_bytes());
    [MEMBER_ADDED, MEMBER_REMOVED, SUCCEEDED, "pusher:ping"]
        .into_iter()
        .find(|e| holds(head, e) || holds(tail, e))
        .unwrap_or("")
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Connects from `source` and sends the signed subscription for `user`.
async fn connect(server: SocketAddr, source: std::net::IpAddr, app: &PusherApp, user: usize) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    let url = format!(
        "ws://{server}/app/{}?protocol=7&client=chatbox-bench&version=1.0",
        app.key
    );
    // Member lists are large frames: allow them (the server bounds them).
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    let hello = super::connect::next_text(&mut ws).await?;
    let socket_id = serde_json::from_str::<Value>(hello["data"].as_str().unwrap_or("{}"))?["socket_id"]
        .as_str()
        .context("handshake without socket_id")?
        .to_owned();
    let data =
        json!({ "user_id": user.to_string(), "user_info": { "id": user, "name": format!("user {user}") } }).to_string();
    let signature = auth::sign(app, &socket_id, "presence-online", Some(&data));
    let frame = json!({ "event": "pusher:subscribe", "data": { "channel": "presence-online", "auth": signature, "channel_data": data } });
    ws.send(Message::text(frame.to_string())).await?;
    Ok(ws)
}

/// Reads one socket until `stop`: counts its members until it knows `want`; `joined` is sent
/// when its `subscription_succeeded` arrives.
async fn follow(
    mut ws: Ws,
    want: usize,
    tally: Arc<Tally>,
    joined: tokio::sync::oneshot::Sender<Instant>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut joined = Some(joined);
    let mut known: i64 = 0;
    let mut complete = false;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = ws.next() => m,
        };
        let Some(Ok(Message::Text(text))) = msg else {
            match msg {
                Some(Ok(_)) => continue,
                _ => return,
            }
        };
        tally.frames.fetch_add(1, Ordering::Relaxed);
        tally.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        match event_of(&text) {
            MEMBER_ADDED => known += 1,
            MEMBER_REMOVED => known -= 1,
            SUCCEEDED => {
                known = count_in(&text).map_or(0, |c| c as i64);
                if let Some(j) = joined.take() {
                    let _ = j.send(Instant::now());
                }
            }
            "pusher:ping" => {
                let _ = ws.send(Message::text(r#"{"event":"pusher:pong","data":{}}"#)).await;
            }
            _ => {}
        }
        if !complete && joined.is_none() && known >= want as i64 {
            complete = true;
            tally.complete.fetch_add(1, Ordering::Relaxed);
            tally.done_at.lock().await.push(Instant::now());
        }
    }
}

fn rss_total(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|p| Ok(proc_status(*p, "VmRSS:")? * 1024)).sum()
}

pub async fn run(args: PresenceArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        !args.server.is_empty() && args.ramp > 0,
        "give a --server and a --ramp above 0"
    );
    let app = Arc::new(PusherApp {
        id: "bench".into(),
        key: args.app_key.clone(),
        secret: Secret::new(args.app_secret.clone()),
    });
    let before = rss_total(&args.pid)?;
    let tally = Arc::new(Tally::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let n = args.connections;
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.ramp));
    let mut joins = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut last_progress = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let server = args.server[i % args.server.len()];
        let (app, each, stop) = (app.clone(), tally.clone(), stop.clone());
        let source = source_address(i, args.sources);
        let user = args.first_user + i;
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            match connect(server, source, &app, user).await {
                Ok(ws) => follow(ws, n, each, tx, stop).await,
                Err(e) => eprintln!("bench: socket for user {user} to {server} failed: {e:#}"),
            }
        });
        joins.push(rx);
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "bench: {} joining, {} complete, {} frames",
                i + 1,
                tally.complete.load(Ordering::Relaxed),
                tally.frames.load(Ordering::Relaxed)
            );
            last_progress = Instant::now();
        }
    }
    let mut last_join = started;
    for rx in joins {
        match rx.await {
            Ok(at) => last_join = last_join.max(at),
            Err(_) => failed += 1,
        }
    }
    let joined = n - failed;
    eprintln!(
        "bench: {joined} joined ({failed} failed) in {:.1} s",
        (last_join - started).as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    while tally.complete.load(Ordering::Relaxed) < joined && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "bench: {} of {joined} complete, {} frames",
                tally.complete.load(Ordering::Relaxed),
                tally.frames.load(Ordering::Relaxed)
            );
            last_progress = Instant::now();
        }
    }
    let complete = tally.complete.load(Ordering::Relaxed);
    let last_done = tally.done_at.lock().await.iter().max().copied().unwrap_or(last_join);
    let after_last_join = last_done.saturating_duration_since(last_join).as_secs_f64();
    let total = (last_done - started).as_secs_f64();
    // Settled: nothing more is on its way; then the servers' memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_total(&args.pid)?;
    let (frames, bytes) = (
        tally.frames.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed),
    );
    stop.cancel();
    let per_connection = (!args.pid.is_empty()).then(|| after.saturating_sub(before) as f64 / joined.max(1) as f64);
    let mut table = format!(
        "presence: {joined} of {n} sockets joined presence-online ({failed} failed) at {} joins/s over {} server(s); \
         joins took {:.1} s\n",
        args.ramp,
        args.server.len(),
        (last_join - started).as_secs_f64()
    );
    table.push_str(&format!(
        "  member lists complete: {complete} of {joined}; the last {after_last_join:.2} s after the last join ({total:.2} s from the first)\n"
    ));
    table.push_str(&format!(
        "  frames delivered: {frames} ({:.1} MiB)\n",
        bytes as f64 / 1048576.0
    ));
    if let Some(each) = per_connection {
        table.push_str(&format!(
            "  server RSS {:.1} → {:.1} MiB: {:.2} KiB per connection once settled",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            each / 1024.0
        ));
    }
    Ok(Report {
        table,
        json: json!({
            "workload": "presence",
            "connections": n,
            "joined": joined,
            "failed": failed,
            "ramp": args.ramp,
            "servers": args.server.len(),
            "join_seconds": (last_join - started).as_secs_f64(),
            "complete": complete,
            "complete_seconds_after_last_join": after_last_join,
            "complete_seconds_total": total,
            "frames": frames,
            "bytes": bytes,
            "rss_before": before,
            "rss_after": after,
            "bytes_per_connection": per_connection,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_and_event_from_frame_text() {
        let f = crate::protocol::frames::subscription_succeeded(
            "presence-online",
            Some(&[("1".to_owned(), json!({"name": "a"})), ("2".to_owned(), json!({}))]),
        );
        assert_eq!(count_in(&f), Some(2));
        assert_eq!(event_of(&f), SUCCEEDED);
        let counted = crate::protocol::frames::subscription_counted("presence-online", "7", &json!({}), 12345);
        assert_eq!(count_in(&counted), Some(12345));
        assert_eq!(
            event_of(r#"{"event":"pusher_internal:member_added","channel":"presence-online","data":"{}"}"#),
            MEMBER_ADDED
        );
    }
}
