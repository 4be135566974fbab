//! The holes a security review found (SECURITY.md lists each with its test): the public default
//! secret, channel-name aliases, backlog re-reads, client-event floods, password hashing without
//! a bound, the login throttle, logout that left tokens and sockets alive, and invisible
//! characters in names. Each test failed on the main branch before its fix.

use std::time::Duration;

use chatbox::config::{PusherApp, Secret};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TEST_SECRET, TestApp, TestDb, TestUser, backend_tests, error_code, new_client, settings},
    pusher::PusherClient,
};

/// Signs a subscription the way a holder of `secret` could.
fn forge(secret: &str, socket_id: &str, channel: &str) -> String {
    let app = PusherApp {
        id: "test-app".into(),
        key: "test-key".into(),
        secret: Secret::new(secret),
    };
    chatbox::protocol::auth::sign(&app, socket_id, channel, None)
}

/// Subscribes with a signature made here; returns the server's answer frame.
async fn subscribe_signed(c: &mut PusherClient, channel: &str, auth: &str) -> crate::pusher::Frame {
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}))
        .await;
    loop {
        let f = c.next().await;
        if f.event.contains("subscription_") {
            return f;
        }
    }
}

/// Proves a socket is alive and answering: a ping gets its pong.
async fn assert_alive(c: &mut PusherClient) {
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    c.expect("pusher:pong").await;
}

async fn send(app: &TestApp, from: &TestUser, to: &TestUser, body: &str) -> Value {
    let res = from
        .client
        .post(app.url(&format!("/api/users/{}/messages", to.id)))
        .bearer_auth(&from.token)
        .json(&json!({ "body": body }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["message"].clone()
}

/// Item 1: a server started without `PUSHER_APP_SECRET` signs with a secret of its own, kept
/// across restarts, never the constant that used to be the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_the_server_generates_one_and_keeps_it() {
    let db = TestDb::new(&Backend::Sqlite);
    let mut s = settings(&db);
    s.pusher_app_secret = None;
    let app = TestApp::spawn_with(db, s.clone()).await;
    let ann = app.user("ann").await;
    let channel = format!("private-individual.message.{}", ann.id);
    let mut c = PusherClient::connect(&app).await;
    let old_default = forge("chatbox-dev-secret", &c.socket_id, &channel);
    let answer = subscribe_signed(&mut c, &channel, &old_default).await;
    assert_eq!(answer.event, "pusher:subscription_error", "{:?}", answer.raw);
    assert_eq!(answer.data["status"], 401);
    let signed = c.sign(app.addr, &ann.token, &channel).await.expect("signed");
    assert_eq!(
        subscribe_signed(&mut c, &channel, signed["auth"].as_str().unwrap())
            .await
            .event,
        "pusher_internal:subscription_succeeded"
    );
    // The same socket id and channel sign the same after a restart: the secret was kept.
    let socket_id = c.socket_id.clone();
    drop(c);
    let db = app.stop().await;
    let app = TestApp::spawn_with(db, s).await;
    let again = reqwest::Client::new()
        .post(app.url("/broadcasting/auth"))
        .bearer_auth(&ann.token)
        .form(&[("socket_id", socket_id.as_str()), ("channel_name", channel.as_str())])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(again["auth"], signed["auth"], "the generated secret survives a restart");
}

/// Item 7: `…message.01` is not another name of `…message.1`: it is refused everywhere, and a
/// socket that tried it keeps receiving on the real channel.
async fn channel_ids_have_one_spelling(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let real = format!("private-individual.message.{}", ann.id);
    let alias = format!("private-individual.message.0{}", ann.id);
    let mut c = PusherClient::connect(&app).await;
    c.subscribe(&app, &ann.token, &real).await;
    assert!(
        c.sign(app.addr, &ann.token, &alias).await.is_none(),
        "the auth endpoint refuses the alias"
    );
    // Even signed with the app secret, the alias is not a channel.
    let forged = forge(TEST_SECRET, &c.socket_id, &alias);
    let answer = subscribe_signed(&mut c, &alias, &forged).await;
    assert_eq!(answer.event, "pusher:subscription_error");
    assert_eq!(answer.data["status"], 400);
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": alias}}))
        .await;
    let sent = send(&app, &ben, &ann, "still here?").await;
    let got = c.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(
        got.data["message"]["id"], sent["id"],
        "unsubscribing the alias left the channel alone"
    );
    // Paths spell ids one way too.
    let res = ann
        .client
        .get(app.url(&format!("/api/users/0{}", ben.id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Item 8: every subscription to one's own channel reads its backlog from the store, so such
/// subscriptions are limited per user; past the limit they are refused with 429 and the socket
/// stays.
async fn own_channel_resubscriptions_are_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("ann").await;
    let channel = format!("private-group.message.{}", ann.id);
    let mut c = PusherClient::connect(&app).await;
    let limit = chatbox::limits::OWN_CHANNEL_SUBSCRIBES_PER_USER.max;
    let mut refused = None;
    for n in 1..=limit + 1 {
        let signed = c.sign(app.addr, &ann.token, &channel).await.expect("signed");
        let answer = subscribe_signed(&mut c, &channel, signed["auth"].as_str().unwrap()).await;
        if answer.event == "pusher:subscription_error" {
            refused = Some((n, answer));
            break;
        }
        c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
            .await;
    }
    let (n, answer) = refused.expect("a subscription past the limit is refused");
    assert_eq!(n, limit + 1, "the first {limit} pass");
    assert_eq!(answer.data["status"], 429);
    assert_alive(&mut c).await;
    // Another user is not affected.
    let ben = app.user("ben").await;
    c.subscribe(&app, &ben.token, &format!("private-group.message.{}", ben.id))
        .await;
}

/// Item 6: client events are limited per user over all its sockets, and their data is capped.
async fn client_events_are_limited_per_user_and_in_size(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let mut listener = PusherClient::connect(&app).await;
    listener.subscribe(&app, &ben.token, "presence-online").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut s = PusherClient::connect(&app).await;
        s.subscribe(&app, &ann.token, "presence-online").await;
        sockets.push(s);
    }
    let big = "x".repeat(chatbox::protocol::MAX_CLIENT_EVENT_DATA + 1);
    sockets[0]
        .send(json!({"event": "client-big", "channel": "presence-online", "data": big}))
        .await;
    let refused = sockets[0].expect("pusher:error").await;
    assert_eq!(refused.data["code"], 4301);
    // 3 sockets × 5 events in well under a second: each socket is under its own 10, the user
    // is not.
    for s in &mut sockets {
        for _ in 0..5 {
            s.send(json!({"event": "client-x", "channel": "presence-online", "data": "{}"}))
                .await;
        }
    }
    let mut errors = 0;
    for s in &mut sockets {
        while let Some(f) = s.next_within(Duration::from_millis(300)).await {
            if f.event == "pusher:error" {
                errors += 1;
            }
        }
    }
    let mut relayed = 0;
    while let Some(f) = listener.next_within(Duration::from_millis(500)).await {
        if f.event == "client-x" {
            relayed += 1;
        }
    }
    assert_eq!(relayed, 10, "one user: 10 a second over all its sockets");
    assert_eq!(errors, 5, "the others are refused");
    assert!(listener.next_within(Duration::from_millis(10)).await.is_none());
    assert_alive(&mut listener).await;
}

/// Items 3 and 4: parallel wrong passwords get no more guesses than the limit (they are counted
/// before the hash is checked), and every spelling that finds the account counts against it.
async fn parallel_guesses_are_counted_before_checking(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("dave").await;
    let guesses = (0..30).map(|n| {
        let client = new_client();
        let url = app.url("/api/login");
        let email = if n % 2 == 0 {
            "dave@example.com"
        } else {
            " DAVE@Example.com "
        };
        async move {
            client
                .post(url)
                .json(&json!({"email": email, "password": format!("guess-{n:04}")}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let tried = answers.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let limited = answers.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(tried, 10, "10 guesses, not 30: {answers:?}");
    assert_eq!(limited, 20);
    // A look-alike address is another (unknown) account, never a fresh count for dave's.
    let res = app
        .post(
            "/api/login",
            json!({"email": "dávé@example.com", "password": "password-dave"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Item 3: hashing is bounded. Past the pool and its queue, logins are answered 503 with
/// `Retry-After` at once; a huge e-mail is refused before it is used; the server still serves.
async fn password_hashing_is_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("ann").await;
    let many = (0..100).map(|n| {
        let client = new_client();
        let url = app.url("/api/login");
        async move {
            let res = client
                .post(url)
                .json(&json!({"email": format!("nobody{n}@example.com"), "password": "wrong-password"}))
                .send()
                .await
                .unwrap();
            (res.status(), res.headers().get(header::RETRY_AFTER).cloned())
        }
    });
    let answers = futures_util::future::join_all(many).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "more logins than the pool holds: some are told to come back"
    );
    assert!(busy.iter().all(|(_, retry)| retry.is_some()), "503 says when to retry");
    assert!(
        answers
            .iter()
            .all(|(s, _)| [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE].contains(s)),
        "{answers:?}"
    );
    let huge = "a".repeat(60_000) + "@example.com";
    let res = app
        .post("/api/login", json!({"email": huge, "password": "whatever-1"}))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .post(
            "/api/login",
            json!({"email": "ann@example.com", "password": "password-ann"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "the right password still signs in");
}

/// Item 3: a class of 30 signing up at once from one address passes; a script going on is
/// stopped.
async fn registrations_are_limited_per_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let class = (0..30).map(|n| {
        let client = new_client();
        let url = app.url("/api/register");
        async move {
            let body = json!({"name": format!("pupil{n}"), "email": format!("pupil{n}@school.example"), "password": "a-long-password"});
            client.post(url).json(&body).send().await.unwrap().status()
        }
    });
    let answers = futures_util::future::join_all(class).await;
    assert!(answers.iter().all(|s| *s == StatusCode::CREATED), "{answers:?}");
    let max = chatbox::limits::REGISTRATIONS_PER_ADDRESS.max;
    let mut stopped_at = None;
    for n in 30..max + 5 {
        let res = app
            .post(
                "/api/register",
                json!({"name": format!("bot{n}"), "email": format!("bot{n}@spam.example"), "password": "a-long-password"}),
            )
            .await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            stopped_at = Some(n);
            assert!(res.headers().contains_key(header::RETRY_AFTER));
            break;
        }
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    assert_eq!(stopped_at, Some(max), "stopped after {max} from one address");
}

/// Item 12: logging out of a browser session revokes the token issued with it and closes the
/// user's sockets with 4009; "sign out everywhere" ends every session and token.
async fn logout_revokes_everything_it_issued_and_closes_sockets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("ann").await;
    let mut socket = PusherClient::connect(&app).await;
    socket
        .subscribe(&app, &ann.token, &format!("private-individual.message.{}", ann.id))
        .await;
    let res = ann.client.post(app.url("/api/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let me = new_client()
        .get(app.url("/api/me"))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "the token issued with the session is revoked"
    );
    assert_eq!(socket.close_code().await, Some(4009), "the open socket is closed");

    // Two devices, then "sign out everywhere" from one of them.
    let login = || async {
        let client = new_client();
        let res = client
            .post(app.url("/api/login"))
            .json(&json!({"email": "ann@example.com", "password": "password-ann"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
        (client, token)
    };
    let (laptop, laptop_token) = login().await;
    let (phone, phone_token) = login().await;
    let mut phone_socket = PusherClient::connect(&app).await;
    phone_socket.subscribe(&app, &phone_token, "presence-online").await;
    let res = laptop
        .post(app.url("/api/logout/everywhere"))
        .bearer_auth(&laptop_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for (client, token) in [(&laptop, &laptop_token), (&phone, &phone_token)] {
        let by_token = new_client()
            .get(app.url("/api/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(by_token.status(), StatusCode::UNAUTHORIZED);
        let by_cookie = client.get(app.url("/api/me")).send().await.unwrap();
        assert_eq!(by_cookie.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(phone_socket.close_code().await, Some(4009));
}

/// Item 12: bearer tokens expire `TOKEN_TTL_DAYS` after they were issued.
async fn tokens_expire(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("ann").await;
    let me = || new_client().get(app.url("/api/me")).bearer_auth(&ann.token).send();
    assert_eq!(me().await.unwrap().status(), StatusCode::OK);
    let past = chrono::Utc::now() - chrono::Duration::days(31);
    age_tokens(app.db(), past).await;
    assert_eq!(
        me().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "30 days old: expired"
    );
}

/// Moves every token's issue date to `at`, as time passing would.
async fn age_tokens(db: &TestDb, at: chrono::DateTime<chrono::Utc>) {
    let sql = "UPDATE api_tokens SET created_at = ?";
    if db.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        sqlx::query(sql).bind(at).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
        sqlx::query(sql).bind(at).execute(&pool).await.unwrap();
    }
}

/// Item 13: names with zero-width or direction characters are refused.
async fn invisible_characters_in_names_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (n, name) in ["a\u{200B}nn", "\u{202E}nna", "ann\u{2066}"].into_iter().enumerate() {
        let res = app
            .post(
                "/api/register",
                json!({"name": name, "email": format!("x{n}@example.com"), "password": "a-long-password"}),
            )
            .await;
        assert_eq!(error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await, "invalid_name");
    }
    // Names are unique by one lower-case form on both backends.
    app.user("Zoë").await;
    let res = app
        .post(
            "/api/register",
            json!({"name": "ZOË", "email": "zoe2@example.com", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "name_taken");
}

/// Item 4: with Redis, failed logins are counted for the cluster: guesses spread over two nodes
/// get no more tries than on one.
async fn the_login_throttle_is_cluster_wide(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // one node by design: its counts are the cluster's
    }
    let a = TestApp::spawn(backend).await;
    let b = a.second_node().await;
    a.user("dave").await;
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        let res = node
            .post(
                "/api/login",
                json!({"email": "dave@example.com", "password": "guess-guess"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    for node in [&a, &b] {
        let res = node
            .post(
                "/api/login",
                json!({"email": "dave@example.com", "password": "password-dave"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "locked on every node");
    }
}

/// Item 6: the production Redis configuration bounds a subscriber's output buffer (it was
/// unlimited: a stalled node grew Redis without end).
#[test]
fn redis_conf_bounds_pubsub_buffers() {
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/redis.conf")).unwrap();
    let line = conf
        .lines()
        .find(|l| l.starts_with("client-output-buffer-limit pubsub"))
        .expect("a pubsub output-buffer limit");
    let limits: Vec<&str> = line.split_whitespace().skip(2).collect();
    assert_eq!(limits.len(), 3, "{line}");
    assert!(
        limits[0] != "0" && limits[1] != "0",
        "hard and soft limits are set: {line}"
    );
}

backend_tests!(
    the_login_throttle_is_cluster_wide,
    channel_ids_have_one_spelling,
    own_channel_resubscriptions_are_limited,
    client_events_are_limited_per_user_and_in_size,
    parallel_guesses_are_counted_before_checking,
    password_hashing_is_bounded,
    registrations_are_limited_per_address,
    logout_revokes_everything_it_issued_and_closes_sockets,
    tokens_expire,
    invisible_characters_in_names_are_refused,
);

/// Item 1: with MySQL or Redis, a node without its operator's secret does not start.
#[tokio::test]
async fn production_without_a_secret_does_not_start() {
    let db = TestDb::new(&Backend::Sqlite);
    let mut s = settings(&db);
    s.database_url = "mysql://nobody@127.0.0.1:1/never".into();
    s.pusher_app_secret = None;
    let config = chatbox::config::Config::from_settings(s).expect("parses");
    let err = chatbox::app::App::build(config).await.err().expect("refused");
    assert!(format!("{err:#}").contains("PUSHER_APP_SECRET"), "{err:#}");
}
