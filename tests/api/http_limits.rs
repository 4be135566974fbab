//! The bounds at the listener: header and body read timeouts, the global connection cap
//! (`MAX_CONNECTIONS`), the per-address WebSocket cap refused before the upgrade, and
//! `TRUSTED_PROXIES`. None of them depends on the backend: they run on the embedded one.
//!
//! Each refusal is checked next to proof that the server was alive and serving at that moment,
//! so a crashed or stuck server cannot pass for a refusing one.

use std::time::{Duration, Instant};

use chatbox::config::Settings;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::{
    helpers::{Backend, TestApp, TestDb, settings},
    pusher::PusherClient,
};

/// A server on SQLite with `edit` applied to the test settings.
async fn app_with(edit: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new(&Backend::Sqlite);
    let mut s = settings(&db);
    edit(&mut s);
    TestApp::spawn_with(db, s).await
}

/// Everything the server sends until it closes the connection (end of stream or reset), and when
/// it closed; panics if it is still open after `within`.
async fn read_until_closed(tcp: &mut (impl AsyncReadExt + Unpin), within: Duration) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {within:?}; received {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0) | Err(_)) => return (got, Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `GET path` on `tcp` and returns the status line of the answer (the connection stays
/// open; the answer must have no body or a `Content-Length` one, read whole).
async fn get_on(tcp: &mut TcpStream, path: &str) -> String {
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("request sent");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(n > 0, "closed before answering: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .map_or(0, |v| v.parse().expect("numeric content-length"));
    while got.len() < head_end + length {
        let n = tcp.read(&mut buf).await.expect("read body");
        assert!(n > 0, "closed mid-body");
        got.extend_from_slice(&buf[..n]);
    }
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn headers_sent_a_byte_a_second_are_cut_at_the_header_timeout() {
    let app = app_with(|s| s.http_header_timeout_secs = 2).await;
    let started = Instant::now();
    let (mut from_server, mut to_server) = TcpStream::connect(app.addr).await.unwrap().into_split();
    to_server.write_all(b"GET /api/config HTTP/1.1\r\n").await.unwrap();
    let drip = tokio::spawn(async move {
        for byte in b"Host: test\r\nX-Slow: 0123456789abcdefghijklmnopqrstuvwxyz\r\n\r\n" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if to_server.write_all(&[*byte]).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let res = app.get("/api/config").await;
    assert_eq!(res.status(), StatusCode::OK, "another client is served meanwhile");
    let (answer, closed_at) = read_until_closed(&mut from_server, Duration::from_secs(6)).await;
    let after = closed_at - started;
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&after),
        "closed after {after:?}, the header timeout is 2 s"
    );
    assert!(answer.is_empty(), "no answer to a request never completed");
    drip.abort();
}

#[tokio::test]
async fn idle_connections_fresh_or_kept_alive_are_closed_at_the_header_timeout() {
    let app = app_with(|s| s.http_header_timeout_secs = 2).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    assert_eq!(get_on(&mut kept, "/api/config").await, "HTTP/1.1 200 OK");
    let answered = Instant::now();
    let (_, closed_at) = read_until_closed(&mut silent, Duration::from_secs(6)).await;
    let after = closed_at - started;
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&after),
        "a connection that never sent a byte closed after {after:?}"
    );
    let (_, closed_at) = read_until_closed(&mut kept, Duration::from_secs(6)).await;
    let after = closed_at - answered;
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&after),
        "a kept-alive connection closed {after:?} after its last answer"
    );
}

/// Starts `POST /apps/test-app/events` announcing a 100-byte body; the body itself is up to the
/// caller.
async fn post_head(tcp: &mut (impl AsyncWriteExt + Unpin)) {
    let head = "POST /apps/test-app/events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
}

fn assert_request_timeout(answer: &[u8]) {
    let text = String::from_utf8_lossy(answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 408"), "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
}

#[tokio::test]
async fn a_body_that_stops_or_trickles_gets_408_at_the_body_timeout() {
    let app = app_with(|s| s.http_body_timeout_secs = 2).await;
    let started = Instant::now();
    // Ten bytes of a hundred, then nothing.
    let mut stopped = TcpStream::connect(app.addr).await.unwrap();
    post_head(&mut stopped).await;
    stopped.write_all(br#"{"name":"e"#).await.unwrap();
    // A byte every 200 ms: never idle long, but not done by the deadline either.
    let (mut trickled, mut to_server) = TcpStream::connect(app.addr).await.unwrap().into_split();
    post_head(&mut to_server).await;
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if to_server.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let stopped = read_until_closed(&mut stopped, Duration::from_secs(6)).await;
    let trickled = read_until_closed(&mut trickled, Duration::from_secs(6)).await;
    for (name, (answer, closed_at)) in [("stopped", stopped), ("trickled", trickled)] {
        assert_request_timeout(&answer);
        let after = closed_at - started;
        assert!(
            (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&after),
            "{name}: answered and closed after {after:?}, the body timeout is 2 s"
        );
    }
    trickle.abort();
}

#[tokio::test]
async fn past_max_connections_a_new_connection_is_closed_at_once() {
    let app = app_with(|s| s.max_connections = 5).await;
    // Five places: two WebSockets (upgraded sockets keep theirs) and three idle connections.
    let mut sockets = vec![PusherClient::connect(&app).await, PusherClient::connect(&app).await];
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let mut sixth = TcpStream::connect(app.addr).await.unwrap();
    let connected = Instant::now();
    let (answer, closed_at) = read_until_closed(&mut sixth, Duration::from_secs(2)).await;
    assert!(answer.is_empty());
    assert!(
        closed_at - connected < Duration::from_millis(500),
        "closed at once, not after a timeout: {:?}",
        closed_at - connected
    );
    // The five are served all along.
    assert_eq!(get_on(&mut idle[0], "/api/config").await, "HTTP/1.1 200 OK");
    for socket in &mut sockets {
        socket
            .send(serde_json::json!({"event": "pusher:ping", "data": {}}))
            .await;
        assert_eq!(socket.expect("pusher:pong").await.event, "pusher:pong");
    }
    // A WebSocket that ends gives its place back.
    drop(sockets.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served(&app).await {
        assert!(Instant::now() < deadline, "the place was never given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a new connection gets `GET /api/config` answered.
async fn served(app: &TestApp) -> bool {
    let mut tcp = TcpStream::connect(app.addr).await.expect("the listener accepts");
    let request = b"GET /api/config HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request).await.is_err() {
        return false;
    }
    let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    answer.starts_with(b"HTTP/1.1 200")
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/app/test-key` with `X-Forwarded-For: forwarded` (if any) and reads the handshake;
/// the HTTP answer when the upgrade is refused.
async fn open(app: &TestApp, forwarded: Option<&str>) -> Result<Socket, tungstenite::http::Response<Option<Vec<u8>>>> {
    let mut req = format!("ws://{}/app/test-key?protocol=7", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(f) = forwarded {
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(f).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => {
            let hello = next_event(&mut ws).await;
            assert_eq!(hello["event"], "pusher:connection_established");
            Ok(ws)
        }
        Err(tungstenite::Error::Http(res)) => Err(*res),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn next_event(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON frame");
        }
    }
}

async fn assert_pongs(ws: &mut Socket) {
    ws.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#))
        .await
        .expect("send ping");
    assert_eq!(next_event(ws).await["event"], "pusher:pong");
}

/// The answer is the cap's refusal: 429 `too_many_connections` with `Retry-After`.
fn assert_capped(res: tungstenite::http::Response<Option<Vec<u8>>>) {
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "10");
    let body: Value = serde_json::from_slice(res.body().as_deref().expect("a body")).expect("JSON body");
    assert_eq!(body["error"]["code"], "too_many_connections");
}

#[tokio::test]
async fn the_per_address_cap_answers_429_instead_of_upgrading() {
    let app = app_with(|s| s.max_connections_per_ip = 2).await;
    let mut first = open(&app, None).await.expect("first accepted");
    let mut second = open(&app, None).await.expect("second accepted");
    assert_capped(open(&app, None).await.expect_err("the third is refused"));
    assert_pongs(&mut first).await;
    assert_pongs(&mut second).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_capped_apart() {
    let app = app_with(|s| {
        s.trusted_proxies = "127.0.0.1".into();
        s.max_connections_per_ip = 1;
    })
    .await;
    let mut a = open(&app, Some("203.0.113.1")).await.expect("client a");
    let mut b = open(&app, Some("203.0.113.2")).await.expect("client b, same proxy");
    // The proxy appended the address it saw; what the client wrote to its left is not believed.
    let spoofed = open(&app, Some("203.0.113.7, 203.0.113.1")).await;
    assert_capped(spoofed.expect_err("a second connection of client a"));
    assert_pongs(&mut a).await;
    assert_pongs(&mut b).await;
}

#[tokio::test]
async fn from_an_untrusted_peer_x_forwarded_for_is_ignored() {
    let app = app_with(|s| s.max_connections_per_ip = 1).await;
    let mut a = open(&app, Some("203.0.113.1")).await.expect("first from 127.0.0.1");
    assert_capped(open(&app, Some("203.0.113.2")).await.expect_err("counted as 127.0.0.1"));
    assert_capped(open(&app, None).await.expect_err("counted as 127.0.0.1"));
    assert_pongs(&mut a).await;
}

#[tokio::test]
async fn on_shutdown_a_request_in_flight_is_answered_and_the_listener_closes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let addr = app.addr;
    let user = app.user("ann").await;
    let poll = crate::helpers::spawn_get(
        user.client.clone(),
        app.url("/api/notifications?timeout=2"),
        &user.token,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    app.stop().await;
    let (answer, took) = poll.await.expect("the poll is answered, not dropped");
    assert!(answer["notifications"].is_array(), "{answer}");
    assert!(took >= Duration::from_millis(1900), "it ran its course: {took:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "stopped once it was answered"
    );
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
}
