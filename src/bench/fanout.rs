//! `fanout`: N subscribers on one channel, M events triggered through the Pusher HTTP API
//! (`POST /apps/{id}/events`, signed with the app secret), so it runs against any Pusher-protocol
//! server. Each event's data carries the time it was sent and its number; every subscriber records
//! the latency of each delivery. Measures deliveries per second, latency percentiles, and counts
//! deliveries lost.
//!
//! With `--protocol socketio` the subscribers are socket.io connections (laravel-echo's protocol)
//! on a public channel and the events are published through Redis as Laravel's Redis broadcaster
//! publishes them (`--redis-url`, `--redis-prefix`): the same run then measures chatbox's
//! socket.io side or laravel-echo-server itself.
//!
//! Two ways to pace: `--rate R` sends R events per second on a schedule; `--rate 0` sends as fast
//! as the server delivers, keeping at most `--window` events not yet delivered to every subscriber
//! (so the figure is what the server sustains, not how deep its queues are).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    Report,
    connect::{Opened, Protocol, ProtocolArgs, open_many},
    socketio::{LaravelPublisher, resolve},
    stats::Summary,
};
use crate::{
    config::{PusherApp, Secret},
    http::pusher_api::sign_request,
};

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Base URL of the server under test (Pusher HTTP API and WebSocket on the same port).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value = "chatbox")]
    pub app_id: String,
    #[arg(long, default_value = "chatbox-key")]
    pub app_key: String,
    /// The server's app secret (its `PUSHER_APP_SECRET`), to sign as the server would.
    #[arg(long, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    pub app_secret: String,
    /// Subscribers of the channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Events to trigger.
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// Events per second; 0 for as fast as the server delivers them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// With `--rate 0`: events sent but not yet delivered to every subscriber, at most.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Size of each event's data in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// The channel (a private one is signed with the app secret); default
    /// `private-bench.fanout`, or `bench.fanout` with `--protocol socketio` (public).
    #[arg(long)]
    pub channel: Option<String>,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Publish through this Redis as Laravel's Redis broadcaster does, instead of the Pusher
    /// HTTP API (needed with `--protocol socketio`).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The prefix the server reads Laravel's broadcasts under (chatbox: `REDIS_BROADCAST_PREFIX`;
    /// laravel-echo-server: `databaseConfig.redis.keyPrefix`).
    #[arg(long, default_value = "")]
    pub redis_prefix: String,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread the connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// How long to wait for stragglers after the last event.
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
}

/// The event name the subscribers look for.
const EVENT: &str = "bench-fanout";
/// Published before the run until every subscriber received one.
const WARM_UP: &str = "bench-warm-up";

/// Microseconds since the Unix epoch (the tool and the server share a clock here).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The number after `\"{key}\":` in a frame's text, or after `"{key}":` when not `escaped` (a
/// Pusher frame carries its data as a JSON string, so its quotes are escaped; a socket.io packet
/// carries it as JSON). A scan, not a parse: the tool must read frames faster than the server
/// under test writes them.
fn number_after(text: &str, key: &str, escaped: bool) -> Option<u64> {
    let pattern = if escaped {
        format!("\\\"{key}\\\":")
    } else {
        format!("\"{key}\":")
    };
    let at = text.find(&pattern)? + pattern.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// Deliveries per event, and a wake-up for the sender when an event reached everyone.
struct Progress {
    delivered: Vec<AtomicU32>,
    subscribers: u32,
    complete: AtomicUsize,
    changed: Notify,
}

impl Progress {
    fn record(&self, n: usize) {
        if let Some(count) = self.delivered.get(n)
            && count.fetch_add(1, Ordering::Relaxed) + 1 == self.subscribers
        {
            self.complete.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.subscribers > 0 && args.events > 0,
        "--subscribers and --events must be positive"
    );
    anyhow::ensure!(args.size >= 64, "--size must be at least 64 bytes");
    let socketio = args.protocol.protocol == Protocol::Socketio;
    let channel = args.channel.clone().unwrap_or_else(|| {
        if socketio {
            "bench.fanout"
        } else {
            "private-bench.fanout"
        }
        .to_owned()
    });
    let laravel = match &args.redis_url {
        Some(url) => Some(LaravelPublisher::connect(url, &args.redis_prefix, &channel).await?),
        None => None,
    };
    anyhow::ensure!(
        !socketio || (laravel.is_some() && !channel.starts_with("private-") && !channel.starts_with("presence-")),
        "--protocol socketio subscribes a public channel and publishes through Redis: give --redis-url \
         (and --redis-prefix) and a public --channel"
    );
    let base = args.url.trim_end_matches('/').to_owned();
    let ws_addr: SocketAddr = resolve(&base).await?;
    let app = Arc::new(PusherApp {
        id: args.app_id.clone(),
        key: args.app_key.clone(),
        secret: Secret::new(args.app_secret.clone()),
    });
    let stop = CancellationToken::new();
    let dialect = args.protocol.dialect(&app);
    let Opened { sockets, failed, .. } = open_many(ws_addr, dialect, args.subscribers, args.sources, |_| {
        vec![(channel.clone(), None)]
    })
    .await?;
    anyhow::ensure!(!sockets.is_empty(), "no subscriber could connect");
    let subscribers = sockets.len();
    eprintln!("fanout: {subscribers} subscribers on {channel} ({failed} failed)");
    let progress = Arc::new(Progress {
        delivered: (0..args.events).map(|_| AtomicU32::new(0)).collect(),
        subscribers: subscribers as u32,
        complete: AtomicUsize::new(0),
        changed: Notify::new(),
    });
    // Subscribers that saw a warm-up event (socket.io confirms no public subscription: the
    // run starts once every subscriber is seen to receive).
    let warm = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut conn| {
            let (progress, stop, warm) = (progress.clone(), stop.clone(), warm.clone());
            tokio::spawn(async move {
                let (mut latencies, mut last, mut warmed) = (Vec::<u32>::new(), 0u64, false);
                loop {
                    let text = tokio::select! {
                        _ = stop.cancelled() => break,
                        text = conn.next_event() => text,
                    };
                    let Some(text) = text else { break };
                    if !text.contains(EVENT) {
                        if !warmed && text.contains(WARM_UP) {
                            warmed = true;
                            warm.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let at = now_micros();
                    last = at;
                    let number = |key| number_after(&text, key, !socketio);
                    if let (Some(sent), Some(n)) = (number("t"), number("n")) {
                        latencies.push(at.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                        progress.record(n as usize);
                    }
                }
                (latencies, last)
            })
        })
        .collect();
    if let Some(laravel) = &laravel
        && socketio
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        while warm.load(Ordering::Relaxed) < subscribers {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {subscribers} subscribers received anything in 30 s: are they subscribed?",
                warm.load(Ordering::Relaxed)
            );
            laravel.publish(WARM_UP, "{}").await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let laravel = laravel.map(Arc::new);

    let http = reqwest::Client::new();
    let path = format!("/apps/{}/events", app.id);
    let padding = "x".repeat(args.size);
    let mut schedule = (args.rate > 0.0).then(|| {
        let mut s = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
        s.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        s
    });
    let began = now_micros();
    let mut last_progress = Instant::now();
    let refused = Arc::new(AtomicUsize::new(0));
    let mut triggers = Vec::with_capacity(args.events);
    for n in 0..args.events {
        match schedule.as_mut() {
            Some(s) => {
                s.tick().await;
            }
            None => {
                // Wait until the event `window` places back reached every subscriber (or give it
                // up after a second: it counts as lost at the end).
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                while n >= args.window + progress.complete.load(Ordering::Relaxed) {
                    if tokio::time::timeout_at(deadline, progress.changed.notified())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let head = format!("{{\"t\":{},\"n\":{n},\"p\":\"", now_micros());
        let pad = args.size.saturating_sub(head.len() + 2);
        let data = format!("{head}{}\"}}", &padding[..pad]);
        let refused = refused.clone();
        if let Some(laravel) = &laravel {
            let laravel = laravel.clone();
            triggers.push(tokio::spawn(async move {
                if let Err(e) = laravel.publish(EVENT, &data).await
                    && refused.fetch_add(1, Ordering::Relaxed) < 3
                {
                    eprintln!("fanout: publish failed: {e:#}");
                }
            }));
        } else {
            let body = json!({ "name": EVENT, "channel": channel, "data": data }).to_string();
            let query = sign_request(&app, &path, body.as_bytes(), (now_micros() / 1_000_000) as i64);
            // Triggers go out concurrently: a server that answers slowly must not pace the run.
            let request = http
                .post(format!("{base}{path}?{query}"))
                .header("content-type", "application/json")
                .body(body);
            triggers.push(tokio::spawn(async move {
                let failure = match request.send().await {
                    Ok(res) if res.status().is_success() => return,
                    Ok(res) => format!("{}: {}", res.status(), res.text().await.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                if refused.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("fanout: trigger failed: {failure}");
                }
            }));
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "fanout: {} of {} events sent, {} delivered to everyone",
                n + 1,
                args.events,
                progress.complete.load(Ordering::Relaxed)
            );
            last_progress = Instant::now();
        }
    }
    for t in triggers {
        t.await?;
    }
    let refused = refused.load(Ordering::Relaxed);
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(args.drain_secs);
    while progress.complete.load(Ordering::Relaxed) < args.events
        && tokio::time::timeout_at(drain_until, progress.changed.notified())
            .await
            .is_ok()
    {}
    stop.cancel();
    let (mut samples, mut last_delivery) = (Vec::<Duration>::new(), began);
    for r in readers {
        let (latencies, last) = r.await?;
        samples.extend(latencies.into_iter().map(|us| Duration::from_micros(u64::from(us))));
        last_delivery = last_delivery.max(last);
    }
    let delivered = samples.len();
    let expected = subscribers * args.events;
    let lost = expected.saturating_sub(delivered);
    // From the first event sent to the last delivery.
    let per_second = delivered as f64 / ((last_delivery - began) as f64 / 1e6).max(1e-6);
    let latency = Summary::of(&mut samples);
    let pace = if args.rate > 0.0 {
        format!("{} events/s", args.rate)
    } else {
        format!("maximal rate (window {})", args.window)
    };
    let via = if socketio {
        format!("socket.io (Engine.IO {}), published through Redis", args.protocol.eio)
    } else if laravel.is_some() {
        "Pusher protocol, published through Redis".to_owned()
    } else {
        "Pusher protocol, triggered through the HTTP API".to_owned()
    };
    let table = format!(
        "fanout ({via}): {} events of {} B on one channel × {subscribers} subscribers at {pace}\n\
         {expected} deliveries expected, {delivered} delivered, {lost} lost, {refused} triggers refused; \
         {per_second:.0} deliveries/s ({:.0} events/s)\n{:<28} {:>9} {:>9} {:>9} {:>9}\n{}",
        args.events,
        args.size,
        per_second / subscribers as f64,
        "latency (ms)",
        "p50",
        "p90",
        "p99",
        "max",
        Summary::row("sent → delivery", latency),
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "fanout",
            "via": via,
            "events": args.events,
            "size": args.size,
            "subscribers": subscribers,
            "rate": args.rate,
            "expected": expected,
            "delivered": delivered,
            "lost": lost,
            "refused": refused,
            "deliveries_per_second": per_second,
            "latency": latency,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_from_the_escaped_data() {
        let frame = r#"{"event":"bench-fanout","channel":"c","data":"{\"t\":1732000000123456,\"n\":42,\"p\":\"xx\"}"}"#;
        assert_eq!(number_after(frame, "t", true), Some(1_732_000_000_123_456));
        assert_eq!(number_after(frame, "n", true), Some(42));
        assert_eq!(number_after(frame, "q", true), None);
        let packet = r#"42["bench-fanout","bench.fanout",{"t":1732000000123456,"n":7,"p":"xx"}]"#;
        assert_eq!(number_after(packet, "t", false), Some(1_732_000_000_123_456));
        assert_eq!(number_after(packet, "n", false), Some(7));
        assert_eq!(number_after(packet, "n", true), None);
    }
}
