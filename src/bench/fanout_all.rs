//! `fanout-all`: N users online (each a connection on its own `private-group.message.N`), one
//! sender posting messages to "All" over HTTP; every message must reach every connection. Measures
//! deliveries per second and the latency from the POST being sent to each delivery, and counts
//! deliveries lost.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    Report,
    client::Server,
    connect::{Dialect, Opened, open_many},
    stats::Summary,
};
use crate::config::{PusherApp, Secret};

#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Base URL of the server under test (HTTP and WebSocket).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value = "chatbox-key")]
    pub app_key: String,
    /// The server's app secret (its `PUSHER_APP_SECRET`), to sign as the server would.
    #[arg(long, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    pub app_secret: String,
    /// Users online.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Messages to "All".
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread the connections over.
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// First user id used in channel names.
    #[arg(long, default_value_t = 1_000_000)]
    pub first_user: usize,
}

pub async fn run(args: FanoutArgs) -> anyhow::Result<Report> {
    let server = Server::new(&args.url);
    let ws_addr: SocketAddr = tokio::net::lookup_host(server.base.trim_start_matches("http://"))
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", server.base))?;
    let app = Arc::new(PusherApp {
        id: "bench".into(),
        key: args.app_key.clone(),
        secret: Secret::new(args.app_secret.clone()),
    });
    let (tx, mut arrivals) = mpsc::unbounded_channel::<(i64, Instant)>();
    let first_user = args.first_user;
    let Opened { sockets, .. } = open_many(ws_addr, Dialect::Pusher(app), args.connections, args.sources, |i| {
        vec![(format!("private-group.message.{}", first_user + i), None)]
    })
    .await?;
    let online = sockets.len();
    for mut conn in sockets {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(t) = conn.next_event().await {
                let at = Instant::now();
                let Ok(frame) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                let data: Value = frame["data"]
                    .as_str()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default();
                if let Some(id) = data["message"]["id"].as_i64() {
                    let _ = tx.send((id, at));
                }
            }
        });
    }
    drop(tx);
    eprintln!("fanout-all: {online} of {} connections online", args.connections);
    let sender = server.sign_up("bench-fanout").await?;
    let mut sent_at: HashMap<i64, Instant> = HashMap::new();
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(0.01)));
    let began = Instant::now();
    for n in 0..args.messages {
        every.tick().await;
        let started = Instant::now();
        let res = server
            .http
            .post(format!("{}/api/groups/1/messages", server.base))
            .bearer_auth(&sender.token)
            .json(&json!({ "body": format!("fanout {n}") }))
            .send()
            .await?
            .error_for_status()?;
        let id = res.json::<Value>().await?["message"]["id"].as_i64().unwrap_or_default();
        sent_at.insert(id, started);
    }
    let expected = online * sent_at.len();
    let mut latencies = Vec::with_capacity(expected);
    let mut last_delivery = began;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some((id, at))) => {
                if let Some(t0) = sent_at.get(&id) {
                    latencies.push(at - *t0);
                    last_delivery = last_delivery.max(at);
                }
            }
            _ => break,
        }
    }
    let delivered = latencies.len();
    let lost = expected - delivered;
    let per_second = delivered as f64 / (last_delivery - began).as_secs_f64().max(1e-6);
    let latency = Summary::of(&mut latencies);
    let table = format!(
        "fanout-all: {} messages to \"All\" × {online} users online = {expected} deliveries, {delivered} delivered, \
         {lost} lost, {per_second:.0} deliveries/s over the run\n{:<28} {:>9} {:>9} {:>9} {:>9}\n{}",
        sent_at.len(),
        "latency (ms)",
        "p50",
        "p90",
        "p99",
        "max",
        Summary::row("POST sent → delivery", latency),
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "fanout-all",
            "messages": sent_at.len(),
            "connections": online,
            "expected": expected,
            "delivered": delivered,
            "lost": lost,
            "deliveries_per_second": per_second,
            "latency": latency,
        }),
    })
}
