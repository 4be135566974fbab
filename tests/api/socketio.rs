//! Socket.IO at `/socket.io/`: a minimal socket.io client over a raw WebSocket (Engine.IO 3 as
//! socket.io-client 2.x speaks it, and 4 as 3.x/4.x do) against laravel-echo-server's events, a
//! stub "Laravel" app answering `AUTH_HOST` authorisations, and chatbox's own chat channels.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Form, Router, http::HeaderMap, routing::post};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::{
    helpers::{Backend, TestApp, TestDb, backend_tests, settings},
    pusher::{PusherClient, trigger},
};

const WAIT: Duration = Duration::from_secs(10);

backend_tests!(
    both_versions_connect_and_keep_alive,
    public_channels_get_events_published_over_the_pusher_api,
    other_apps_channels_are_authorised_by_auth_host,
    presence_through_auth_host_joins_and_leaves,
    own_chat_channels_use_chatbox_credentials,
    whispers_reach_the_other_sockets_of_both_protocols,
    oversize_packets_close_the_session,
    sessions_count_against_the_address_cap,
    a_client_flooding_a_busy_session_is_closed,
    allowed_origins_get_cors_for_long_polling,
    an_answer_of_the_app_over_16_kb_is_refused,
);

struct SioClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    eio: u8,
    /// The socket id the client knows (socket.io 3/4: from CONNECT; 2.x: the Engine.IO sid).
    sid: String,
    ping_interval: u64,
    next_ack: u64,
    /// Packets read while waiting for an acknowledgement, to be read again.
    pending: std::collections::VecDeque<String>,
}

impl SioClient {
    async fn connect(app: &TestApp, eio: u8) -> Self {
        let url = format!("ws://{}/socket.io/?EIO={eio}&transport=websocket", app.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket.io websocket");
        let mut c = Self {
            ws,
            eio,
            sid: String::new(),
            ping_interval: 0,
            next_ack: 0,
            pending: Default::default(),
        };
        let open = c.next_raw().await.expect("open packet");
        let open: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet")).unwrap();
        c.sid = open["sid"].as_str().expect("sid").to_owned();
        c.ping_interval = open["pingInterval"].as_u64().expect("pingInterval");
        if eio == 4 {
            c.send("40").await;
            let connected = c.next_packet().await.expect("CONNECT answer");
            let body: Value = serde_json::from_str(
                connected
                    .strip_prefix("40")
                    .unwrap_or_else(|| panic!("CONNECT: {connected}")),
            )
            .unwrap();
            c.sid = body["sid"].as_str().expect("socket sid").to_owned();
        } else {
            assert_eq!(c.next_raw().await.as_deref(), Some("40"), "2.x is connected unasked");
        }
        c
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text message; `None` when the connection closed.
    async fn next_raw(&mut self) -> Option<String> {
        if let Some(p) = self.pending.pop_front() {
            return Some(p);
        }
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next message that is not a server ping (Engine.IO 4), answering pings meanwhile.
    async fn next_packet(&mut self) -> Option<String> {
        loop {
            let text = self.next_raw().await?;
            if self.eio == 4 && text == "2" {
                self.send("3").await;
                continue;
            }
            return Some(text);
        }
    }

    /// The next socket.io event (`42[…]`) as its array, answering server pings meanwhile.
    async fn next_event(&mut self) -> Value {
        loop {
            let text = self.next_packet().await.expect("still open");
            if let Some(event) = text.strip_prefix("42") {
                return serde_json::from_str(event).expect("event JSON");
            }
        }
    }

    /// The next event named `name`.
    async fn expect(&mut self, name: &str) -> Value {
        loop {
            let e = self.next_event().await;
            if e[0] == name {
                return e;
            }
        }
    }

    /// Emits `[args…]` with an acknowledgement and returns its answer, skipping other packets.
    async fn emit_acked(&mut self, args: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        self.send(&format!("42{id}{args}")).await;
        let prefix = format!("43{id}");
        let mut skipped = Vec::new();
        loop {
            let text = self.next_packet().await.expect("ack before close");
            if let Some(ack) = text.strip_prefix(&prefix) {
                self.pending.extend(skipped);
                return serde_json::from_str::<Value>(ack).expect("ack JSON")[0].clone();
            }
            skipped.push(text);
        }
    }

    /// Subscribes with `auth.headers` and returns the status the server acknowledged.
    async fn subscribe(&mut self, channel: &str, headers: Value) -> u64 {
        let ack = self
            .emit_acked(json!(["subscribe", { "channel": channel, "auth": { "headers": headers } }]))
            .await;
        ack["status"].as_u64().expect("status")
    }

    /// Proves the session alive: a round trip through the session task (an acknowledged unknown
    /// channel's unsubscribe) and, on Engine.IO 3, a ping.
    async fn alive(&mut self) {
        let ack = self
            .emit_acked(json!(["unsubscribe", { "channel": "nothing-here" }]))
            .await;
        assert_eq!(ack["status"], 200);
        if self.eio == 3 {
            self.send("2").await;
            assert_eq!(self.next_packet().await.as_deref(), Some("3"));
        }
    }

    /// Asserts nothing but heartbeats arrives within `wait`, then that the session is alive.
    async fn expect_no_event(&mut self, wait: Duration) {
        assert!(self.pending.is_empty(), "unexpected packets {:?}", self.pending);
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(m) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => self.send("3").await,
                Some(Ok(Message::Text(t))) => panic!("unexpected packet {t}"),
                Some(Ok(_)) => {}
                other => panic!("closed while waiting: {other:?}"),
            }
        }
        self.alive().await;
        assert!(self.pending.is_empty(), "unexpected packets {:?}", self.pending);
    }

    /// Whether the server closed the connection within [`WAIT`].
    async fn closes(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// What the stub app was asked: `(channel_name, socket_id, authorization, cookie, x-requested-with)`.
type Asked = Arc<Mutex<Vec<(String, String, String, String, String)>>>;

/// A stub Laravel app at `/broadcasting/auth`: `Bearer good` may join anything (presence as user
/// 1 "ann"), `Bearer second` presence as user 2 "bob", anything else is 403.
async fn stub_app() -> (SocketAddr, Asked) {
    let asked: Asked = Arc::default();
    let log = asked.clone();
    let router = Router::new().route(
        "/broadcasting/auth",
        post(
            move |headers: HeaderMap, Form(form): Form<std::collections::HashMap<String, String>>| {
                let log = log.clone();
                async move {
                    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let channel = form.get("channel_name").cloned().unwrap_or_default();
                    log.lock().unwrap().push((
                        channel.clone(),
                        form.get("socket_id").cloned().unwrap_or_default(),
                        h("authorization"),
                        h("cookie"),
                        h("x-requested-with"),
                    ));
                    if channel == "private-slow" {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    if channel == "private-huge" {
                        // Past the 16 KB chatbox reads of an answer.
                        return (StatusCode::OK, format!("\"{}\"", "x".repeat(17 * 1024)));
                    }
                    let user = match h("authorization").as_str() {
                        "Bearer good" => json!({ "user_id": 1, "user_info": { "name": "ann" } }),
                        "Bearer second" => json!({ "user_id": 2, "user_info": { "name": "bob" } }),
                        _ => return (StatusCode::FORBIDDEN, "{}".to_owned()),
                    };
                    let body = if channel.starts_with("presence-") {
                        json!({ "channel_data": user }).to_string()
                    } else {
                        "true".to_owned()
                    };
                    (StatusCode::OK, body)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, asked)
}

async fn app_with_auth_host(backend: Backend, stub: SocketAddr) -> TestApp {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.auth_host = Some(format!("http://{stub}"));
    TestApp::spawn_with(db, s).await
}

async fn publish(app: &TestApp, channel: &str, event: &str, data: Value) {
    let body = json!({ "name": event, "channel": channel, "data": data.to_string() });
    let res = trigger(app, "/apps/test-app/events", &body, crate::helpers::TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

async fn both_versions_connect_and_keep_alive(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.activity_timeout_secs = 1;
    let app = TestApp::spawn_with(db, s).await;
    // Engine.IO 3: the client pings, the server answers.
    let mut v3 = SioClient::connect(&app, 3).await;
    assert_eq!(v3.ping_interval, 1000, "the heartbeat follows ACTIVITY_TIMEOUT_SECS");
    for _ in 0..2 {
        v3.send("2").await;
        assert_eq!(v3.next_raw().await.as_deref(), Some("3"));
    }
    // A namespace other than `/` is refused; the session stays.
    v3.send("40/admin,").await;
    let refused = v3.next_raw().await.unwrap();
    assert!(refused.starts_with("44"), "{refused}");
    v3.alive().await;
    // A 2.x client that stops pinging is dropped.
    assert!(v3.closes().await, "no ping: the session ends");
    // Engine.IO 4: the server pings, the client answers; twice, so the first answer counted.
    let mut v4 = SioClient::connect(&app, 4).await;
    assert!(
        SocketIdLike::is(&v4.sid),
        "socket.io 3/4 sids are socket ids: {}",
        v4.sid
    );
    for _ in 0..2 {
        assert_eq!(v4.next_raw().await.as_deref(), Some("2"));
        v4.send("3").await;
    }
    v4.alive().await;
    // A 3/4 client that stops answering is dropped.
    assert!(v4.closes().await, "no pong: the session ends");
}

/// `digits.digits`, as Pusher socket ids.
struct SocketIdLike;
impl SocketIdLike {
    fn is(s: &str) -> bool {
        s.split_once('.').is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        })
    }
}

async fn public_channels_get_events_published_over_the_pusher_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut v3 = SioClient::connect(&app, 3).await;
    let mut v4 = SioClient::connect(&app, 4).await;
    assert_eq!(v3.subscribe("news", json!({})).await, 200);
    assert_eq!(v4.subscribe("news", json!({})).await, 200);
    publish(&app, "news", "Headline", json!({ "title": "hi" })).await;
    for c in [&mut v3, &mut v4] {
        assert_eq!(c.next_event().await, json!(["Headline", "news", { "title": "hi" }]));
    }
    // Unsubscribed: nothing more.
    assert_eq!(
        v4.emit_acked(json!(["unsubscribe", { "channel": "news" }])).await["status"],
        200
    );
    publish(&app, "news", "Headline", json!({ "title": "again" })).await;
    assert_eq!(v3.next_event().await[2]["title"], "again");
    v4.expect_no_event(Duration::from_millis(500)).await;
}

async fn other_apps_channels_are_authorised_by_auth_host(backend: Backend) {
    let (stub, asked) = stub_app().await;
    let app = app_with_auth_host(backend, stub).await;
    let mut ok = SioClient::connect(&app, 4).await;
    let mut refused = SioClient::connect(&app, 3).await;
    let good = json!({ "Authorization": "Bearer good", "Host": "elsewhere" });
    assert_eq!(ok.subscribe("private-orders", good).await, 200);
    assert_eq!(
        refused
            .subscribe("private-orders", json!({ "Authorization": "Bearer bad" }))
            .await,
        403
    );
    assert_eq!(
        refused.next_event().await,
        json!(["subscription_error", "private-orders", 403])
    );
    {
        let asked = asked.lock().unwrap();
        assert_eq!(asked.len(), 2, "{asked:?}");
        let (channel, socket_id, authorization, _, xrw) = &asked[0];
        assert_eq!(
            (
                channel.as_str(),
                socket_id.as_str(),
                authorization.as_str(),
                xrw.as_str()
            ),
            ("private-orders", ok.sid.as_str(), "Bearer good", "XMLHttpRequest")
        );
        assert_eq!(asked[1].1, refused.sid, "2.x clients are known by their Engine.IO sid");
    }
    publish(&app, "private-orders", "App\\Events\\Shipped", json!({ "id": 7 })).await;
    assert_eq!(
        ok.next_event().await,
        json!(["App\\Events\\Shipped", "private-orders", { "id": 7 }])
    );
    refused.expect_no_event(Duration::from_millis(500)).await;

    // Without AUTH_HOST such channels are refused, and the app is never asked.
    let plain = TestApp::spawn(Backend::Sqlite).await;
    let mut c = SioClient::connect(&plain, 4).await;
    assert_eq!(
        c.subscribe("private-orders", json!({ "Authorization": "Bearer good" }))
            .await,
        403
    );
    assert_eq!(asked.lock().unwrap().len(), 2);
}

async fn presence_through_auth_host_joins_and_leaves(backend: Backend) {
    let (stub, _) = stub_app().await;
    let app = app_with_auth_host(backend, stub).await;
    let mut ann = SioClient::connect(&app, 4).await;
    ann.send(r#"42["subscribe",{"channel":"presence-room","auth":{"headers":{"Authorization":"Bearer good"}}}]"#)
        .await;
    let here = ann.expect("presence:subscribed").await;
    assert_eq!(here[1], "presence-room");
    assert_eq!(here[2], json!([{ "user_id": "1", "user_info": { "name": "ann" } }]));
    // A socket.io 2.x client joins the same presence.
    let mut bob = SioClient::connect(&app, 3).await;
    bob.send(r#"42["subscribe",{"channel":"presence-room","auth":{"headers":{"Authorization":"Bearer second"}}}]"#)
        .await;
    let bob_here = bob.expect("presence:subscribed").await;
    assert_eq!(bob_here[2].as_array().unwrap().len(), 2, "{bob_here}");
    let joining = ann.expect("presence:joining").await;
    assert_eq!(
        joining,
        json!(["presence:joining", "presence-room", { "user_id": "2", "user_info": { "name": "bob" } }])
    );
    drop(bob);
    let leaving = ann.expect("presence:leaving").await;
    assert_eq!(
        leaving,
        json!(["presence:leaving", "presence-room", { "user_id": "2", "user_info": { "name": "bob" } }])
    );
}

async fn own_chat_channels_use_chatbox_credentials(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("sio-ann").await;
    let bob = app.user("sio-bob").await;
    let mut c = SioClient::connect(&app, 4).await;
    let own = format!("private-individual.message.{}", bob.id);
    assert_eq!(c.subscribe(&own, json!({})).await, 401, "no credentials");
    let anns = json!({ "Authorization": format!("Bearer {}", ann.token) });
    assert_eq!(c.subscribe(&own, anns).await, 403, "another user's channel");
    let bobs = json!({ "Authorization": format!("Bearer {}", bob.token) });
    assert_eq!(c.subscribe(&own, bobs.clone()).await, 200);
    let res = ann
        .client
        .post(app.url(&format!("/api/users/{}/messages", bob.id)))
        .json(&json!({ "body": "hello over socket.io" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let sent: Value = res.json().await.unwrap();
    let event = c.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(event[1], own.as_str());
    assert_eq!(event[2]["message"]["id"], sent["message"]["id"]);
    assert_eq!(event[2]["message"]["body"], "hello over socket.io");
    // presence-online as chatbox's own presence, the same member list Pusher clients see.
    c.send(&format!(
        "42{}",
        json!(["subscribe", { "channel": "presence-online", "auth": { "headers": bobs } }])
    ))
    .await;
    let here = c.expect("presence:subscribed").await;
    assert_eq!(here[2][0]["user_id"], bob.id.to_string());
    assert_eq!(here[2][0]["user_info"]["id"], bob.id);
    // The session cookie of a signed-in browser works as well as a bearer token.
    let cookie = app
        .client
        .post(app.url("/api/login"))
        .json(&json!({ "email": "sio-ann@example.com", "password": "password-sio-ann" }))
        .send()
        .await
        .unwrap()
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .find(|c| c.starts_with("chatbox_session="))
        .expect("session cookie");
    let anns_own = format!("private-group.message.{}", ann.id);
    assert_eq!(c.subscribe(&anns_own, json!({ "Cookie": cookie })).await, 200);
}

async fn whispers_reach_the_other_sockets_of_both_protocols(backend: Backend) {
    let (stub, _) = stub_app().await;
    let app = app_with_auth_host(backend, stub).await;
    let good = json!({ "Authorization": "Bearer good" });
    let mut a = SioClient::connect(&app, 4).await;
    let mut b = SioClient::connect(&app, 3).await;
    assert_eq!(a.subscribe("private-chat", good.clone()).await, 200);
    assert_eq!(b.subscribe("private-chat", good).await, 200);
    // A Pusher client on the same channel, signed by this server as Pusher clients are.
    let mut p = PusherClient::connect(&app).await;
    let pusher_app = chatbox::config::PusherApp {
        id: "test-app".into(),
        key: "test-key".into(),
        secret: chatbox::config::Secret::new(crate::helpers::TEST_SECRET),
    };
    let auth = chatbox::protocol::auth::sign(&pusher_app, &p.socket_id, "private-chat", None);
    p.send(json!({ "event": "pusher:subscribe", "data": { "channel": "private-chat", "auth": auth } }))
        .await;
    p.expect("pusher_internal:subscription_succeeded").await;

    a.send(r#"42["client event",{"channel":"private-chat","event":"client-typing","data":{"who":"a"}}]"#)
        .await;
    assert_eq!(
        b.next_event().await,
        json!(["client-typing", "private-chat", { "who": "a" }])
    );
    let f = p.expect("client-typing").await;
    assert_eq!(f.data, json!({ "who": "a" }));
    a.expect_no_event(Duration::from_millis(300)).await;
    // A Pusher whisper reaches the socket.io sockets.
    p.send(json!({ "event": "client-typing", "channel": "private-chat", "data": { "who": "p" } }))
        .await;
    assert_eq!(a.next_event().await[2], json!({ "who": "p" }));
    assert_eq!(b.next_event().await[2], json!({ "who": "p" }));
    // Not a client-… event, or a channel it is not on: not relayed.
    a.send(r#"42["client event",{"channel":"private-chat","event":"App\\Events\\Fake","data":{}}]"#)
        .await;
    a.send(r#"42["client event",{"channel":"private-other","event":"client-x","data":{}}]"#)
        .await;
    b.expect_no_event(Duration::from_millis(300)).await;
}

async fn oversize_packets_close_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for eio in [3, 4] {
        let mut c = SioClient::connect(&app, eio).await;
        let small = json!(["client event", { "channel": "private-x", "event": "client-x", "data": "x".repeat(9_000) }]);
        c.send(&format!("42{small}")).await;
        c.alive().await;
        let big = json!(["client event", { "channel": "private-x", "event": "client-x", "data": "x".repeat(20_000) }]);
        c.send(&format!("42{big}")).await;
        assert!(c.closes().await, "EIO{eio}: a packet over 10 KB ends the session");
    }
}

async fn sessions_count_against_the_address_cap(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.max_connections_per_ip = 2;
    let app = TestApp::spawn_with(db, s).await;
    let mut pusher = PusherClient::connect(&app).await;
    let sio = SioClient::connect(&app, 4).await;
    let poll = |app: &TestApp| app.client.get(app.url("/socket.io/?EIO=4&transport=polling")).send();
    let refused = poll(&app).await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the Pusher and socket.io sockets count together"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let url = format!("ws://{}/socket.io/?EIO=3&transport=websocket", app.addr);
    assert!(
        tokio_tungstenite::connect_async(url).await.is_err(),
        "a WebSocket session too"
    );
    // A closed session gives its place back.
    drop(sio);
    let mut opened = None;
    for _ in 0..50 {
        let res = poll(&app).await.unwrap();
        if res.status() == StatusCode::OK {
            opened = Some(res.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = opened.expect("a place again once the session closed");
    assert!(body.starts_with("0{"), "a polling handshake: {body}");
    pusher.expect_no_event(Duration::from_millis(100)).await;
    // A browser on another site is refused before any session opens.
    let res = app
        .client
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// While a subscription waits for the app, the session's packets queue; past the inbox bound the
/// session is closed instead of growing.
async fn a_client_flooding_a_busy_session_is_closed(backend: Backend) {
    let (stub, _) = stub_app().await;
    let app = app_with_auth_host(backend, stub).await;
    let mut c = SioClient::connect(&app, 4).await;
    c.alive().await;
    c.send(r#"42["subscribe",{"channel":"private-slow","auth":{"headers":{"Authorization":"Bearer good"}}}]"#)
        .await;
    // A few packets behind a slow authorisation are fine: they are acted on once it answers.
    let mut calm = SioClient::connect(&app, 4).await;
    calm.send(r#"42["subscribe",{"channel":"private-slow","auth":{"headers":{"Authorization":"Bearer good"}}}]"#)
        .await;
    for _ in 0..10 {
        calm.send(r#"42["unsubscribe",{"channel":"nothing-here"}]"#).await;
    }
    for _ in 0..100 {
        c.send(r#"42["unsubscribe",{"channel":"nothing-here"}]"#).await;
    }
    assert!(c.closes().await, "over 64 waiting packets: closed");
    calm.alive().await;
}

async fn allowed_origins_get_cors_for_long_polling(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.allowed_origins = "http://app.test".into();
    let app = TestApp::spawn_with(db, s).await;
    let url = app.url("/socket.io/?EIO=3&transport=polling");
    let res = app
        .client
        .get(&url)
        .header("origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://app.test");
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://app.test")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://app.test");
    assert_eq!(preflight.headers()["access-control-allow-headers"], "content-type");
    let evil = app
        .client
        .get(&url)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert!(!evil.headers().contains_key("access-control-allow-origin"));
}

async fn an_answer_of_the_app_over_16_kb_is_refused(backend: Backend) {
    let (stub, _) = stub_app().await;
    let app = app_with_auth_host(backend, stub).await;
    let mut c = SioClient::connect(&app, 4).await;
    let good = json!({ "Authorization": "Bearer good" });
    assert_eq!(c.subscribe("private-huge", good.clone()).await, 502);
    assert_eq!(c.next_event().await, json!(["subscription_error", "private-huge", 502]));
    // The session stays and the next answer within the bound is taken.
    assert_eq!(c.subscribe("private-orders", good).await, 200);
}
