//! The inputs a laravel-echo-server deployment brings along: Laravel's Redis broadcaster
//! (REDIS_BROADCAST_PREFIX, Redis only), laravel-echo-server's HTTP API (`auth_key`) beside the
//! Pusher HTTP API's channel queries and `terminate_connections`, and `--echo-config`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TEST_SECRET, TestApp, TestDb, backend_tests, error_code, settings},
    pusher::{PusherClient, trigger},
};

/// How long a test waits for a relay to (re)subscribe or for counts to spread.
const WITHIN: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(400);
/// The script Laravel's RedisBroadcaster runs (Illuminate\Broadcasting\Broadcasters\RedisBroadcaster).
const LARAVEL_SCRIPT: &str =
    "local payload = ARGV[1]\nfor i = 2, #ARGV do\n  redis.call('publish', ARGV[i], payload)\nend";
const ECHO_APP: &str = "5c2d4a4f0bbd3c0a";
const ECHO_KEY: &str = "7b2f1c9a8e3d4b5f6a7c8d9e0f1a2b3c";

async fn subscribe_public(c: &mut PusherClient, channel: &str) {
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel}}))
        .await;
    let ok = c.expect("pusher_internal:subscription_succeeded").await;
    assert_eq!(ok.channel.as_deref(), Some(channel));
}

/// A Laravel payload as RedisBroadcaster encodes it.
fn payload(event: &str, data: Value, socket: Option<&str>) -> String {
    json!({ "event": event, "data": data, "socket": socket }).to_string()
}

/// Publishes `payload` on `channels` as Laravel's EVAL script does (one PUBLISH per channel).
async fn eval(conn: &mut redis::aio::MultiplexedConnection, payload: &str, channels: &[String]) {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(LARAVEL_SCRIPT).arg(0).arg(payload);
    for c in channels {
        cmd.arg(c);
    }
    let () = cmd.query_async(conn).await.expect("EVAL");
}

async fn publish(conn: &mut redis::aio::MultiplexedConnection, channel: &str, payload: &str) {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(conn)
        .await
        .expect("PUBLISH");
}

/// Publishes a probe until `c` receives one: the relay is subscribed.
async fn until_relayed(conn: &mut redis::aio::MultiplexedConnection, c: &mut PusherClient, channel: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        publish(conn, channel, &payload("Probe", json!({}), None)).await;
        if let Some(f) = c.next_within(Duration::from_millis(200)).await {
            assert_eq!(f.event, "Probe", "{:?}", f.raw);
            // Later probes may still be on their way: drain them.
            while let Some(f) = c.next_within(Duration::from_millis(300)).await {
                assert_eq!(f.event, "Probe", "{:?}", f.raw);
            }
            return;
        }
        assert!(Instant::now() < deadline, "the Laravel relay never delivered");
    }
}

/// Laravel's broadcasts in both of its shapes reach Pusher clients on every node once; `socket`
/// leaves that socket out; reserved names, chat events on chat channels, malformed and oversized
/// payloads are dropped and the next good event arrives; a killed subscription comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_redis_broadcasts_reach_pusher_clients() {
    let Some(backend) = Backend::mysql() else { return };
    let db = TestDb::new(&backend);
    let laravel = format!("laravel_{}_", db.redis_prefix.trim_end_matches(':'));
    let mut s = settings(&db);
    s.redis_broadcast_prefix = Some(laravel.clone());
    let app = TestApp::spawn_with(db, s).await;
    let redis = redis::Client::open(app.db().redis_url.clone().unwrap()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let on = |c: &str| format!("{laravel}{c}");

    let (mut a, mut b) = (PusherClient::connect(&app).await, PusherClient::connect(&app).await);
    subscribe_public(&mut a, "orders").await;
    subscribe_public(&mut b, "orders").await;
    until_relayed(&mut conn, &mut a, &on("orders")).await;
    while b.next_within(QUIET).await.is_some() {}

    // The EVAL script, to two channels at once.
    let shipped = payload("App\\Events\\OrderShipped", json!({"order": {"id": 7}}), None);
    eval(&mut conn, &shipped, &[on("orders"), on("private-orders.7")]).await;
    for c in [&mut a, &mut b] {
        let f = c.expect("App\\Events\\OrderShipped").await;
        assert_eq!(f.channel.as_deref(), Some("orders"));
        assert_eq!(f.data, json!({"order": {"id": 7}}));
        assert!(f.raw["data"].is_string(), "data is JSON text, as Pusher sends it");
    }

    // PUBLISH, leaving out `a` (toOthers).
    let others = payload("App\\Events\\OrderPaid", json!({"id": 8}), Some(&a.socket_id));
    publish(&mut conn, &on("orders"), &others).await;
    assert_eq!(b.expect("App\\Events\\OrderPaid").await.data, json!({"id": 8}));
    a.expect_no_event(QUIET).await;

    // Dropped: each is followed by a good event, which is the next frame.
    let user = app.user("ann").await;
    let mut own = PusherClient::own_channels(&app, &user).await;
    let chat = format!("private-individual.message.{}", user.id);
    let too_big = payload("Big", json!("x".repeat(11 * 1024)), None);
    for (channel, bad) in [
        ("orders".to_owned(), payload("pusher:subscribe", json!({}), None)),
        (
            "orders".to_owned(),
            payload("pusher_internal:member_added", json!({}), None),
        ),
        ("orders".to_owned(), "{not json".to_owned()),
        ("orders".to_owned(), json!({"data": {}}).to_string()),
        ("orders".to_owned(), too_big),
        (
            chat.clone(),
            payload("App\\Events\\IndividualMessage", json!({"message": {}}), None),
        ),
    ] {
        publish(&mut conn, &on(&channel), &bad).await;
        publish(
            &mut conn,
            &on(&channel),
            &payload("Good", json!({"after": channel}), None),
        )
        .await;
        let c = if channel == chat { &mut own } else { &mut a };
        let next = c.next().await;
        assert_eq!(next.event, "Good", "dropped before it: {bad:.60}, got {:?}", next.raw);
        if channel != chat {
            assert_eq!(b.next().await.event, "Good");
        }
    }

    // Every node relays once, on its own subscription.
    let shared = app.db().shared();
    let mut s2 = settings(&shared);
    s2.redis_broadcast_prefix = Some(laravel.clone());
    let node2 = TestApp::spawn_with(shared, s2).await;
    let mut c = PusherClient::connect(&node2).await;
    subscribe_public(&mut c, "orders").await;
    until_relayed(&mut conn, &mut c, &on("orders")).await;
    while a.next_within(QUIET).await.is_some() {}
    while b.next_within(QUIET).await.is_some() {}
    publish(&mut conn, &on("orders"), &payload("Once", json!({}), None)).await;
    for s in [&mut a, &mut c] {
        assert_eq!(s.next().await.event, "Once");
        s.expect_no_event(QUIET).await;
    }

    // A killed pattern subscription (Redis side) is taken up again.
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    let pattern_subscribers: Vec<&str> = list
        .lines()
        .filter(|l| l.split(' ').any(|f| f.starts_with("psub=") && f != "psub=0"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert!(pattern_subscribers.len() >= 2, "both nodes' relays: {list}");
    for id in pattern_subscribers {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    until_relayed(&mut conn, &mut a, &on("orders")).await;
    until_relayed(&mut conn, &mut c, &on("orders")).await;
}

/// Settings with one laravel-echo-server client.
fn with_echo_client(db: &TestDb) -> chatbox::config::Settings {
    let mut s = settings(db);
    s.echo_clients = format!("{ECHO_APP}:{ECHO_KEY}");
    s
}

/// A GET signed as Pusher server libraries sign it.
async fn signed_get(app: &TestApp, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
    let pusher = chatbox::config::PusherApp {
        id: "test-app".into(),
        key: "test-key".into(),
        secret: chatbox::config::Secret::new(TEST_SECRET),
    };
    let now = chrono::Utc::now().timestamp();
    let query = chatbox::http::pusher_api::sign("GET", &pusher, path, params, b"", now);
    app.client
        .get(app.url(&format!("{path}?{query}")))
        .send()
        .await
        .unwrap()
}

async fn echo_get(app: &TestApp, path: &str) -> reqwest::Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.get(&format!("{path}{sep}auth_key={ECHO_KEY}")).await
}

async fn json_of(res: reqwest::Response) -> Value {
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("a JSON answer")
}

/// Both API families answer on the shared paths, each with its own authentication, from the
/// deployment-wide counts and presence; outside events are checked by both.
async fn channel_apis_answer_both_auth_schemes(backend: Backend) {
    let db = TestDb::new(&backend);
    let s = with_echo_client(&db);
    let app = TestApp::spawn_with(db, s).await;
    let user = app.user("ann").await;
    let mut present = PusherClient::connect(&app).await;
    present.subscribe(&app, &user.token, "presence-online").await;
    let (mut n1, mut n2) = (PusherClient::connect(&app).await, PusherClient::connect(&app).await);
    subscribe_public(&mut n1, "news").await;
    subscribe_public(&mut n2, "news").await;

    // Pusher, signed.
    let all = json_of(signed_get(&app, "/apps/test-app/channels", &[("info", "subscription_count")]).await).await;
    assert_eq!(all["channels"]["news"], json!({"subscription_count": 2}), "{all}");
    assert_eq!(all["channels"]["presence-online"], json!({"subscription_count": 1}));
    let params = [("filter_by_prefix", "presence-"), ("info", "user_count")];
    let presence = json_of(signed_get(&app, "/apps/test-app/channels", &params).await).await;
    assert_eq!(presence, json!({"channels": {"presence-online": {"user_count": 1}}}));
    let res = signed_get(&app, "/apps/test-app/channels", &[("info", "user_count")]).await;
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "invalid_info");
    let params = [("info", "subscription_count")];
    let news = json_of(signed_get(&app, "/apps/test-app/channels/news", &params).await).await;
    assert_eq!(news, json!({"occupied": true, "subscription_count": 2}));
    let empty = json_of(signed_get(&app, "/apps/test-app/channels/empty", &[]).await).await;
    assert_eq!(empty, json!({"occupied": false}));
    let users = json_of(signed_get(&app, "/apps/test-app/channels/presence-online/users", &[]).await).await;
    assert_eq!(users, json!({"users": [{"id": user.id.to_string()}]}));
    let res = signed_get(&app, "/apps/test-app/channels/news/users", &[]).await;
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "not_presence");
    // Unsigned, or signed with another secret.
    let res = app.get("/apps/test-app/channels").await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_signature");
    let res = app
        .get("/apps/test-app/channels?auth_key=test-key&auth_timestamp=1&auth_version=1.0&auth_signature=00")
        .await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_signature");

    // laravel-echo-server's, with auth_key.
    let status = json_of(echo_get(&app, &format!("/apps/{ECHO_APP}/status")).await).await;
    assert_eq!(status["subscription_count"], 3, "three sockets: {status}");
    assert!(status["uptime"].as_f64().is_some());
    let channels = json_of(echo_get(&app, &format!("/apps/{ECHO_APP}/channels?filter_by_prefix=ne")).await).await;
    assert_eq!(
        channels,
        json!({"channels": {"news": {"subscription_count": 2, "occupied": true}}})
    );
    let online = json_of(echo_get(&app, &format!("/apps/{ECHO_APP}/channels/presence-online")).await).await;
    assert_eq!(
        online,
        json!({"subscription_count": 1, "occupied": true, "user_count": 1})
    );
    let users = json_of(echo_get(&app, &format!("/apps/{ECHO_APP}/channels/presence-online/users")).await).await;
    assert_eq!(users["users"][0]["id"], user.id.to_string());
    assert_eq!(users["users"][0]["user_info"]["name"], "ann");
    for wrong in [
        format!("/apps/{ECHO_APP}/status?auth_key=7b2f1c9a8e3d4b5f6a7c8d9e0f1a2b3d"),
        format!("/apps/{ECHO_APP}/status?auth_key="),
        format!("/apps/other-app/status?auth_key={ECHO_KEY}"),
        format!("/apps/{ECHO_APP}/channels?auth_key=nope"),
    ] {
        let res = app.get(&wrong).await;
        assert_eq!(
            error_code(res, StatusCode::UNAUTHORIZED).await,
            "invalid_signature",
            "{wrong}"
        );
    }

    // Events through both, checked alike.
    let url = app.url(&format!("/apps/{ECHO_APP}/events?auth_key={ECHO_KEY}"));
    let sent = app
        .client
        .post(&url)
        .json(&json!({"channel": "news", "name": "Published", "data": {"n": 1}, "socket_id": n2.socket_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(sent).await, json!({"message": "ok"}));
    assert_eq!(n1.expect("Published").await.data, json!({"n": 1}));
    n2.expect_no_event(QUIET).await;
    let reserved = json!({"channel": "news", "name": "pusher:subscribe", "data": "{}"});
    let res = app.client.post(&url).json(&reserved).send().await.unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "reserved_event");
    let res = trigger(&app, "/apps/test-app/events", &reserved, TEST_SECRET).await;
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "reserved_event");
    let chat = json!({"channel": format!("private-individual.message.{}", user.id),
        "name": "App\\Events\\IndividualMessage", "data": "{}"});
    let res = app.client.post(&url).json(&chat).send().await.unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "reserved_event");
    let res = trigger(&app, "/apps/test-app/events", &chat, TEST_SECRET).await;
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "reserved_event");
    n1.expect_no_event(QUIET).await;

    // With Redis, another node's sockets count too (written at its next heartbeat).
    if matches!(backend, Backend::MySql(..)) {
        let shared = app.db().shared();
        let s2 = with_echo_client(&shared);
        let node2 = TestApp::spawn_with(shared, s2).await;
        let mut n3 = PusherClient::connect(&node2).await;
        subscribe_public(&mut n3, "news").await;
        let deadline = Instant::now() + WITHIN;
        loop {
            let params = [("info", "subscription_count")];
            let news = json_of(signed_get(&app, "/apps/test-app/channels/news", &params).await).await;
            if news["subscription_count"] == 3 {
                break;
            }
            assert!(Instant::now() < deadline, "node 2's socket never counted: {news}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = json_of(echo_get(&node2, &format!("/apps/{ECHO_APP}/status")).await).await;
        assert!(status["subscription_count"].as_u64() >= Some(3), "{status}");
    }
}

/// `terminate_connections` closes every socket of the user, on every node, and no other.
async fn terminate_connections_closes_a_users_sockets_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let mut sockets = vec![PusherClient::own_channels(&app, &ann).await];
    let mut present = PusherClient::connect(&app).await;
    present.subscribe(&app, &ann.token, "presence-online").await;
    sockets.push(present);
    let node2 = match backend {
        Backend::MySql(..) => Some(app.second_node().await),
        Backend::Sqlite => None,
    };
    if let Some(node2) = &node2 {
        sockets.push(PusherClient::own_channels(node2, &ann).await);
    }
    let mut other = PusherClient::own_channels(&app, &ben).await;
    let path = format!("/apps/test-app/users/{}/terminate_connections", ann.id);
    let res = trigger(&app, &path, &json!({}), TEST_SECRET).await;
    assert_eq!(json_of(res).await, json!({}));
    for s in &mut sockets {
        assert_eq!(s.close_code().await, Some(4009));
    }
    other.expect_no_event(QUIET).await;
    let res = trigger(&app, &path, &json!({}), "not-the-secret").await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_signature");
}

backend_tests!(
    channel_apis_answer_both_auth_schemes,
    terminate_connections_closes_a_users_sockets_everywhere,
);

/// `chatbox serve --echo-config laravel-echo-server.json` reads the file (its clients open the
/// echo API), names the fields it does not use in one warning, and an environment setting wins
/// over the file (BIND here: the file's port is not where it listens).
#[tokio::test]
async fn echo_config_file_is_read_by_a_real_start() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (file_port, env_port) = (free(), free());
    let file = dir.path().join("laravel-echo-server.json");
    std::fs::write(
        &file,
        json!({
            "authHost": "http://localhost",
            "authEndpoint": "/broadcasting/auth",
            "clients": [{"appId": ECHO_APP, "key": ECHO_KEY}],
            "database": "redis",
            "devMode": true,
            "host": "127.0.0.1",
            "port": file_port.to_string(),
            "protocol": "http",
            "sslCertPath": "",
            "subscribers": {"http": true, "redis": true},
        })
        .to_string(),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .arg("serve")
        .arg("--echo-config")
        .arg(&file)
        .current_dir(dir.path())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("chatbox.db").display()),
        )
        .env("BIND", format!("127.0.0.1:{env_port}"))
        .env_remove("REDIS_URL")
        .env_remove("ECHO_CLIENTS")
        .env_remove("AUTH_HOST")
        .env_remove("PUSHER_APP_SECRET")
        .env_remove("ADMIN_EMAILS")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start chatbox serve");
    let status_url = format!("http://127.0.0.1:{env_port}/apps/{ECHO_APP}/status?auth_key={ECHO_KEY}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if let Ok(res) = reqwest::get(&status_url).await {
            break res;
        }
        assert!(Instant::now() < deadline, "chatbox serve did not start on {env_port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer.status(), StatusCode::OK, "the file's client opens the echo API");
    let on_file_port = reqwest::get(format!("http://127.0.0.1:{file_port}/healthz")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        on_file_port.is_err(),
        "BIND from the environment wins over the file's port"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("does not use")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    for field in ["database", "devMode", "protocol", "sslCertPath", "subscribers.http"] {
        assert!(warnings[0].contains(field), "{field}: {}", warnings[0]);
    }
}
