//! The load tool's own Pusher-protocol client: HTTP for accounts and messages, and a WebSocket
//! that subscribes through the server's auth endpoint and reports event arrival times.

use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::connect::next_text;

/// A signed-up user of the server under test.
pub struct Account {
    pub id: i64,
    pub token: String,
}

/// Source addresses sign-ups are spread over when the server is on this machine: the server
/// limits registrations per client address (50 per 10 minutes), and a run signs up thousands.
const SIGN_UP_ADDRESSES: u32 = 256;

/// HTTP side of the server under test.
#[derive(Clone)]
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    /// Clients bound to distinct loopback addresses (127.0.1.x) for sign-ups, when the server
    /// is on loopback; otherwise just `http`.
    sign_ups: std::sync::Arc<Vec<reqwest::Client>>,
    /// The next sign-up client (round robin, so no address gets more than its share).
    turn: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Server {
    pub fn new(base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let http = reqwest::Client::new();
        let host = base.split("://").nth(1).unwrap_or_default();
        let loopback = host.starts_with("127.") || host.starts_with("localhost");
        let sign_ups = if loopback {
            (0..SIGN_UP_ADDRESSES)
                .filter_map(|n| {
                    let from = std::net::Ipv4Addr::new(127, 0, 1 + (n / 250) as u8, 1 + (n % 250) as u8);
                    reqwest::Client::builder()
                        .local_address(std::net::IpAddr::V4(from))
                        .build()
                        .ok()
                })
                .collect()
        } else {
            vec![http.clone()]
        };
        Self {
            base,
            http,
            sign_ups: std::sync::Arc::new(sign_ups),
            turn: std::sync::Arc::default(),
        }
    }

    /// Registers a fresh user (random name).
    pub async fn sign_up(&self, label: &str) -> anyhow::Result<Account> {
        let name = format!("{label}-{:08x}", rand::random::<u32>());
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = self
            .sign_ups
            .get(turn % self.sign_ups.len().max(1))
            .unwrap_or(&self.http);
        let res = client
            .post(format!("{}/api/register", self.base))
            .json(&json!({ "name": name, "email": format!("{name}@bench.example"), "password": "bench-password" }))
            .send()
            .await
            .context("POST /api/register")?;
        if !res.status().is_success() {
            bail!(
                "register answered {}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        let v: Value = res.json().await?;
        Ok(Account {
            id: v["user"]["id"].as_i64().context("user.id")?,
            token: v["token"].as_str().context("token")?.to_owned(),
        })
    }

    /// The WebSocket URL from `/api/config`.
    pub async fn ws_url(&self) -> anyhow::Result<String> {
        let v: Value = self
            .http
            .get(format!("{}/api/config", self.base))
            .send()
            .await?
            .json()
            .await?;
        let key = v["pusher"]["key"].as_str().context("pusher.key")?;
        let host = self.base.trim_start_matches("http://").trim_start_matches("https://");
        Ok(format!(
            "ws://{host}/app/{key}?protocol=7&client=chatbox-bench&version=1.0"
        ))
    }
}

/// An event as the listener saw it: message id (if the data carries one) and arrival time.
pub struct Arrival {
    pub message_id: Option<i64>,
    pub at: Instant,
}

/// Connects, subscribes `channels` for `account`, then forwards every channel event's arrival on
/// the returned receiver until the socket closes.
pub async fn listen(
    server: &Server,
    account: &Account,
    channels: &[String],
) -> anyhow::Result<mpsc::UnboundedReceiver<Arrival>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url().await?)
        .await
        .context("WebSocket connect")?;
    let hello = next_text(&mut ws).await?;
    let socket_id = serde_json::from_str::<Value>(hello["data"].as_str().unwrap_or("{}"))?["socket_id"]
        .as_str()
        .context("handshake without socket_id")?
        .to_owned();
    for channel in channels {
        let signed: Value = server
            .http
            .post(format!("{}/broadcasting/auth", server.base))
            .bearer_auth(&account.token)
            .form(&[("socket_id", socket_id.as_str()), ("channel_name", channel.as_str())])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let data = json!({ "channel": channel, "auth": signed["auth"], "channel_data": signed.get("channel_data") });
        ws.send(Message::text(
            json!({ "event": "pusher:subscribe", "data": data }).to_string(),
        ))
        .await?;
        loop {
            let f = next_text(&mut ws).await?;
            match f["event"].as_str() {
                Some("pusher_internal:subscription_succeeded") => break,
                Some("pusher:subscription_error") => bail!("subscription to {channel} refused: {f}"),
                _ => {}
            }
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let at = Instant::now();
            let Message::Text(text) = msg else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if frame["event"].as_str().is_some_and(|e| e.starts_with("pusher")) {
                continue;
            }
            let data: Value = frame["data"]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            let message_id = data["message"]["id"].as_i64();
            if tx.send(Arrival { message_id, at }).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
