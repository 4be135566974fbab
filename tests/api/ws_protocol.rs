//! The Pusher protocol at the socket: handshake, ping, refusals, bad frames, signatures.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::{
    helpers::{Backend, TEST_SECRET, TestApp, backend_tests},
    pusher::{PusherClient, trigger},
};

async fn handshake_gives_a_socket_id_and_answers_ping(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut c = PusherClient::connect(&app).await;
    let (a, b) = c.socket_id.split_once('.').expect("digits.digits");
    assert!(!a.is_empty() && a.bytes().all(|x| x.is_ascii_digit()) && b.bytes().all(|x| x.is_ascii_digit()));
    assert!(c.activity_timeout > 0);
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(c.next().await.event, "pusher:pong");
    let other = PusherClient::connect(&app).await;
    assert_ne!(c.socket_id, other.socket_id);
}

async fn connect_raw(app: &TestApp, path: &str, origin: Option<&str>) -> PusherlessSocket {
    let mut req = format!("ws://{}{}", app.addr, path).into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", HeaderValue::from_str(o).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    ws
}

type PusherlessSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `pusher:error` code and the close code a refused handshake ends with.
async fn refusal(mut ws: PusherlessSocket) -> (u64, u16) {
    use futures_util::StreamExt;
    let mut error_code = 0;
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["event"], "pusher:error");
                let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                error_code = data["code"].as_u64().unwrap();
            }
            Message::Close(f) => return (error_code, f.map(|f| f.code.into()).unwrap_or(0)),
            _ => {}
        }
    }
    panic!("socket ended without a close frame");
}

async fn refused_handshakes_close_with_their_codes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ws = connect_raw(&app, "/app/wrong-key?protocol=7", None).await;
    assert_eq!(refusal(ws).await, (4001, 4001), "unknown app key");
    let ws = connect_raw(&app, "/app/test-key?protocol=3", None).await;
    assert_eq!(refusal(ws).await, (4007, 4007), "unsupported protocol");
    let ws = connect_raw(&app, "/app/test-key?protocol=7", Some("https://evil.example")).await;
    assert_eq!(refusal(ws).await, (4009, 4009), "origin not allowed");
    // The server's own origin is allowed.
    let own = format!("http://{}", app.addr);
    let mut ws = connect_raw(&app, "/app/test-key?protocol=7", Some(&own)).await;
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("pusher:connection_established"));
}

async fn bad_frames_get_an_error_and_the_connection_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut c = PusherClient::connect(&app).await;
    for bad in [
        Message::text("not json"),
        Message::text(r#"{"event":"pusher:subscribe"}"#),
        Message::text(r#"{"event":"whatever","data":{}}"#),
        Message::binary(vec![1u8, 2, 3]),
        Message::text(format!(
            r#"{{"event":"client-x","channel":"private-a","data":"{}"}}"#,
            "x".repeat(11_000)
        )),
    ] {
        c.send_raw(bad).await;
        let e = c.expect("pusher:error").await;
        assert_eq!(e.data["code"], 4301, "{:?}", e.raw);
        assert!(e.data["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c.send(json!({"event": "pusher:ping"})).await;
    assert_eq!(c.expect("pusher:pong").await.event, "pusher:pong");
}

async fn forged_or_missing_signatures_are_refused_with_the_channel(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.user("zoe").await;
    let mut c = PusherClient::connect(&app).await;
    let channel = format!("private-individual.message.{}", user.id);
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": "test-key:0000"}}))
        .await;
    let e = c.expect("pusher:subscription_error").await;
    assert_eq!(e.channel.as_deref(), Some(channel.as_str()));
    assert_eq!(e.data["status"], 401);
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "presence-online"}}))
        .await;
    assert_eq!(
        c.expect("pusher:subscription_error").await.channel.as_deref(),
        Some("presence-online")
    );
    // A signature made for another socket does not work here (no replay).
    let mut other = PusherClient::connect(&app).await;
    let res = app
        .client
        .post(app.url("/broadcasting/auth"))
        .bearer_auth(&user.token)
        .form(&[
            ("socket_id", other.socket_id.as_str()),
            ("channel_name", channel.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let auth: serde_json::Value = res.json().await.unwrap();
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth["auth"]}}))
        .await;
    assert_eq!(c.expect("pusher:subscription_error").await.data["status"], 401);
    other
        .send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth["auth"]}}))
        .await;
    other.expect("pusher_internal:subscription_succeeded").await;
    // Public channels need no signature.
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "news"}}))
        .await;
    assert_eq!(
        c.expect("pusher_internal:subscription_succeeded")
            .await
            .channel
            .as_deref(),
        Some("news")
    );
}

async fn shutdown_closes_sockets_with_4200(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut c = PusherClient::connect(&app).await;
    let stopping = tokio::spawn(async move { app.stop().await });
    let e = c.expect("pusher:error").await;
    assert_eq!(e.data["code"], 4200);
    assert_eq!(c.close_code().await, Some(4200), "clients reconnect after 4200");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops")
        .unwrap();
}

async fn floods_of_frames_are_refused_and_the_connection_stays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut c = PusherClient::connect(&app).await;
    for _ in 0..250 {
        c.send(json!({"event": "pusher:ping", "data": {}})).await;
    }
    let (mut pongs, mut refusals) = (0, 0);
    while let Some(f) = c.next_within(Duration::from_millis(500)).await {
        match f.event.as_str() {
            "pusher:pong" => pongs += 1,
            "pusher:error" => {
                assert_eq!(f.data["code"], 4301);
                refusals += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (100..250).contains(&pongs),
        "{pongs} pongs: the budget is 100 frames a second"
    );
    assert!(
        (1..=3).contains(&refusals),
        "refusal said once a second, not per frame: {refusals}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(
        c.expect("pusher:pong").await.event,
        "pusher:pong",
        "served again the next second"
    );
}

async fn connections_per_address_are_capped(backend: Backend) {
    let db = crate::helpers::TestDb::new(&backend);
    let mut s = crate::helpers::settings(&db);
    s.max_connections_per_ip = 3;
    let app = TestApp::spawn_with(db, s).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(PusherClient::connect(&app).await);
    }
    let url = format!("ws://{}/app/test-key?protocol=7", app.addr);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(
                res.status(),
                429,
                "the fourth from one address is refused before upgrading"
            );
        }
        Ok(_) => panic!("the fourth from one address was upgraded"),
        Err(e) => panic!("the fourth from one address failed otherwise: {e}"),
    }
    for c in &mut open {
        c.send(json!({"event": "pusher:ping", "data": {}})).await;
        assert_eq!(c.expect("pusher:pong").await.event, "pusher:pong");
    }
    drop(open.pop());
    // The freed slot is given back once the server has seen the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while PusherClient::try_connect(app.addr).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that stops answering the server's pings is closed with 4201 after the pong timeout;
/// one that answers stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_answer_pings_is_closed_with_4201() {
    let db = crate::helpers::TestDb::new(&Backend::Sqlite);
    let mut s = crate::helpers::settings(&db);
    s.activity_timeout_secs = 1;
    let app = TestApp::spawn_with(db, s).await;
    let mut silent = PusherClient::connect(&app).await;
    let mut answering = PusherClient::connect(&app).await;
    assert_eq!(silent.activity_timeout, 1, "the handshake tells the configured timeout");
    // The answering client answers each ping as it comes, while the silent one is watched.
    let answers = tokio::spawn(async move {
        for _ in 0..3 {
            answering.expect("pusher:ping").await;
            answering.send(json!({"event": "pusher:pong", "data": {}})).await;
        }
        answering.send(json!({"event": "pusher:ping", "data": {}})).await;
        answering.expect("pusher:pong").await;
    });
    assert_eq!(silent.expect("pusher:ping").await.event, "pusher:ping");
    assert_eq!(silent.close_code().await, Some(4201), "no pong: closed");
    answers
        .await
        .expect("the client that answers its pings stays connected");
}

/// A client that stops reading while events pile up is disconnected with 4100 once its bounded
/// outbox fills, instead of growing the server's memory; the server keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_evicted_with_4100() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut slow = PusherClient::connect_with_receive_buffer(&app, 4096).await;
    let mut other = PusherClient::connect(&app).await;
    for c in [&mut slow, &mut other] {
        c.send(json!({"event": "pusher:subscribe", "data": {"channel": "news"}}))
            .await;
        c.expect("pusher_internal:subscription_succeeded").await;
    }
    // 1,002 events of 9 KB (6 per request: the body limit is 64 KiB): far more than the outbox
    // (256 frames) and the sockets' buffers hold.
    let data = "x".repeat(9000);
    for _ in 0..167 {
        let batch: Vec<_> = (0..6)
            .map(|_| json!({"name": "big", "channel": "news", "data": data}))
            .collect();
        let res = trigger(
            &app,
            "/apps/test-app/batch_events",
            &json!({ "batch": batch }),
            TEST_SECRET,
        )
        .await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        // The fast client reads along; only the slow one backs up.
        while other.next_within(Duration::from_millis(1)).await.is_some() {}
    }
    let mut events = 0;
    let ended = loop {
        match slow.next_or_closed(Duration::from_secs(15)).await {
            Ok(Some(f)) if f.event == "big" => events += 1,
            Ok(Some(f)) => {
                assert_eq!(f.event, "pusher:error", "{:?}", f.raw);
                assert_eq!(f.data["code"], 4100);
                break slow.close_code().await;
            }
            Ok(None) => panic!("no eviction after {events} events"),
            Err(why) => panic!("closed without the 4100 error after {events} events: {why}"),
        }
    };
    assert_eq!(ended, Some(4100));
    assert!(events < 1002, "the slow client did not get everything: {events}");
    other.send(json!({"event": "pusher:ping", "data": {}})).await;
    other.expect("pusher:pong").await;
}

backend_tests!(
    floods_of_frames_are_refused_and_the_connection_stays,
    connections_per_address_are_capped,
    handshake_gives_a_socket_id_and_answers_ping,
    refused_handshakes_close_with_their_codes,
    bad_frames_get_an_error_and_the_connection_stays,
    forged_or_missing_signatures_are_refused_with_the_channel,
    shutdown_closes_sockets_with_4200,
);
