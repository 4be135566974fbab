//! A minimal Pusher-protocol client over tokio-tungstenite, for black-box WebSocket tests, and
//! the Pusher HTTP API's handling of hostile signatures.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::helpers::{Backend, TestApp, error_code};

/// How long a test waits for an expected frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PusherClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
    pub activity_timeout: u64,
}

/// A decoded server frame, with `data` parsed when it was a JSON string.
#[derive(Debug, Clone)]
pub struct Frame {
    pub event: String,
    pub channel: Option<String>,
    pub data: Value,
    pub raw: Value,
}

impl PusherClient {
    /// Connects to `/app/test-key?protocol=7` and reads the handshake.
    pub async fn connect(app: &TestApp) -> Self {
        let url = format!(
            "ws://{}/app/test-key?protocol=7&client=js&version=8.4.0&flash=false",
            app.addr
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Self::greeted(ws).await
    }

    /// Connects over a TCP socket whose receive buffer is about `bytes` (the kernel's minimum at
    /// least), so that a client that stops reading backs the server up quickly.
    pub async fn connect_with_receive_buffer(app: &TestApp, bytes: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
        let tcp = socket.connect(app.addr).await.expect("connect");
        let url = format!("ws://{}/app/test-key?protocol=7", app.addr);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket handshake");
        Self::greeted(ws).await
    }

    /// Reads the handshake frame of a fresh socket.
    async fn greeted(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut c = Self {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        let hello = c.next().await;
        assert_eq!(hello.event, "pusher:connection_established", "{:?}", hello.raw);
        assert!(hello.raw["data"].is_string(), "handshake data is a JSON string");
        c.socket_id = hello.data["socket_id"].as_str().expect("socket_id").to_owned();
        c.activity_timeout = hello.data["activity_timeout"].as_u64().expect("activity_timeout");
        c
    }

    /// Connects to a server at `addr`; `None` if it is not there (yet).
    pub async fn try_connect(addr: std::net::SocketAddr) -> Option<Self> {
        let url = format!("ws://{addr}/app/test-key?protocol=7");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        let mut c = Self {
            ws,
            socket_id: String::new(),
            activity_timeout: 0,
        };
        let hello = c.next_or_closed(FRAME_TIMEOUT).await.ok()??;
        c.socket_id = hello.data["socket_id"].as_str()?.to_owned();
        Some(c)
    }

    /// Asks the auth endpoint at `addr` to sign `channel` for this socket; `None` if the node is
    /// gone or refuses.
    pub async fn sign(&self, addr: std::net::SocketAddr, token: &str, channel: &str) -> Option<Value> {
        let res = reqwest::Client::new()
            .post(format!("http://{addr}/broadcasting/auth"))
            .bearer_auth(token)
            .form(&[("socket_id", self.socket_id.as_str()), ("channel_name", channel)])
            .send()
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.json::<Value>().await.ok()
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next text frame (panics after [`FRAME_TIMEOUT`] or on close).
    pub async fn next(&mut self) -> Frame {
        self.next_within(FRAME_TIMEOUT).await.expect("a frame arrives in time")
    }

    /// The next text frame, or `None` if none arrives within `wait`. Panics when the socket
    /// closes meanwhile: silence from a closed socket would prove nothing (use
    /// [`PusherClient::close_code`] where a close is expected).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Frame> {
        match self.next_or_closed(wait).await {
            Ok(frame) => frame,
            Err(why) => panic!("{why}"),
        }
    }

    /// The next text frame (`Ok(None)`: none within `wait`), or `Err` saying how the socket
    /// ended, for the tests where a server or its connections are killed on purpose.
    pub async fn next_or_closed(&mut self, wait: Duration) -> Result<Option<Frame>, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("the socket was closed: {frame:?}")),
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Err(format!("the socket failed: {e}")),
                Ok(None) => return Err("the socket was closed".into()),
            };
            if let Message::Text(text) = msg {
                let raw: Value = serde_json::from_str(&text).expect("server frames are JSON");
                let data = match &raw["data"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
                    other => other.clone(),
                };
                return Ok(Some(Frame {
                    event: raw["event"].as_str().unwrap_or_default().to_owned(),
                    channel: raw["channel"].as_str().map(str::to_owned),
                    data,
                    raw,
                }));
            }
        }
    }

    /// Skips frames until one named `event` arrives.
    pub async fn expect(&mut self, event: &str) -> Frame {
        loop {
            let f = self.next().await;
            if f.event == event {
                return f;
            }
        }
    }

    /// Asserts that nothing arrives within `wait` — no event, and no `pusher_internal:` frame
    /// either (a wrong `member_removed` is an error too) — and that the socket is still alive to
    /// receive: a ping sent afterwards gets its pong as the very next frame.
    pub async fn expect_no_event(&mut self, wait: Duration) {
        if let Some(f) = self.next_within(wait).await {
            panic!("unexpected frame {:?}", f.raw);
        }
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let next = self.next().await;
        assert_eq!(
            next.event, "pusher:pong",
            "alive and nothing queued before: {:?}",
            next.raw
        );
    }

    /// The close code the server ends the connection with (after any remaining frames).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await.ok()? {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    /// A socket subscribed to `user`'s own two channels (individual and group).
    pub async fn own_channels(app: &TestApp, user: &crate::helpers::TestUser) -> Self {
        let mut c = Self::connect(app).await;
        c.subscribe(app, &user.token, &format!("private-individual.message.{}", user.id))
            .await;
        c.subscribe(app, &user.token, &format!("private-group.message.{}", user.id))
            .await;
        c
    }

    /// Asks the auth endpoint (bearer `token`) to sign `channel` for this socket, then subscribes.
    /// Returns the `subscription_succeeded` data.
    pub async fn subscribe(&mut self, app: &TestApp, token: &str, channel: &str) -> Value {
        let res = app
            .client
            .post(app.url("/broadcasting/auth"))
            .bearer_auth(token)
            .form(&[("socket_id", self.socket_id.as_str()), ("channel_name", channel)])
            .send()
            .await
            .expect("auth request");
        assert_eq!(res.status(), StatusCode::OK, "auth for {channel}");
        let signed: Value = res.json().await.expect("auth json");
        let mut data = json!({ "channel": channel, "auth": signed["auth"] });
        if let Some(cd) = signed.get("channel_data") {
            data["channel_data"] = cd.clone();
        }
        self.send(json!({ "event": "pusher:subscribe", "data": data })).await;
        let ok = self.expect("pusher_internal:subscription_succeeded").await;
        assert_eq!(ok.channel.as_deref(), Some(channel));
        ok.data
    }
}

/// An `auth_timestamp` at either end of the 64-bit range is a stale clock like any other: 401,
/// not an overflow in the check that runs before the signature's; the server answers on.
#[tokio::test]
async fn extreme_auth_timestamps_are_refused_and_the_server_answers_on() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let pusher = chatbox::config::PusherApp {
        id: "test-app".into(),
        key: "test-key".into(),
        secret: chatbox::config::Secret::new("test-secret"),
    };
    let path = "/apps/test-app/events";
    let body = r#"{"name":"note","channel":"news","data":"{}"}"#;
    for timestamp in [i64::MIN, i64::MAX] {
        let query = chatbox::http::pusher_api::sign_request(&pusher, path, body.as_bytes(), timestamp);
        assert!(query.contains(&format!("auth_timestamp={timestamp}&")), "{query}");
        let res = app
            .client
            .post(app.url(&format!("{path}?{query}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answered, not dropped");
        assert_eq!(
            error_code(res, StatusCode::UNAUTHORIZED).await,
            "invalid_signature",
            "auth_timestamp={timestamp}"
        );
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Sends `body` to the Pusher HTTP API at `path`, signed with `secret` as a Pusher server library
/// signs it.
pub async fn trigger(app: &TestApp, path: &str, body: &Value, secret: &str) -> reqwest::Response {
    let body = body.to_string();
    let pusher = chatbox::config::PusherApp {
        id: "test-app".into(),
        key: "test-key".into(),
        secret: chatbox::config::Secret::new(secret.to_owned()),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let query = chatbox::http::pusher_api::sign_request(&pusher, path, body.as_bytes(), now);
    app.client
        .post(app.url(&format!("{path}?{query}")))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("trigger request")
}
