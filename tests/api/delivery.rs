//! Delivery guarantees users notice: backlog at sign-in (in order, once, then live with no gap)
//! and the long-polling notification centre.

use std::{collections::HashMap, time::Duration};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    chat::{call, get_json, send},
    helpers::{Backend, TestApp, TestUser, backend_tests, error_code},
    pusher::PusherClient,
};

/// Reads events until `count` message events arrived; returns (message id, backlog flag) in
/// arrival order.
async fn collect(socket: &mut PusherClient, count: usize) -> Vec<(i64, bool)> {
    let mut got = Vec::new();
    while got.len() < count {
        let f = socket.next().await;
        if f.event.starts_with("App\\Events\\") && f.data.get("message").is_some() {
            got.push((f.data["message"]["id"].as_i64().unwrap(), f.data["backlog"] == true));
        }
    }
    got
}

async fn backlog_comes_first_in_order_then_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut direct = Vec::new();
    let mut to_all = Vec::new();
    for i in 0..30 {
        direct.push(send(&app, &a, &format!("/api/users/{}/messages", b.id), &format!("d{i}")).await);
        to_all.push(send(&app, &a, "/api/groups/1/messages", &format!("g{i}")).await);
    }
    let mut s = PusherClient::connect(&app).await;
    s.subscribe(&app, &b.token, &format!("private-individual.message.{}", b.id))
        .await;
    let got = collect(&mut s, 30).await;
    assert_eq!(got, direct.iter().map(|id| (*id, true)).collect::<Vec<_>>());
    s.subscribe(&app, &b.token, &format!("private-group.message.{}", b.id))
        .await;
    let got = collect(&mut s, 30).await;
    assert_eq!(got, to_all.iter().map(|id| (*id, true)).collect::<Vec<_>>());
    let live = send(&app, &a, &format!("/api/users/{}/messages", b.id), "now").await;
    assert_eq!(collect(&mut s, 1).await, vec![(live, false)]);
    // Acknowledged: the next sign-in has no backlog.
    let res = call(
        &app,
        &b,
        reqwest::Method::POST,
        "/api/delivery/ack",
        Some(json!({"individual": live, "group": to_all[29]})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(&app, &b, reqwest::Method::POST, "/api/delivery/ack", Some(json!({}))).await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "nothing_to_acknowledge"
    );
    drop(s);
    let mut again = PusherClient::connect(&app).await;
    again
        .subscribe(&app, &b.token, &format!("private-individual.message.{}", b.id))
        .await;
    again
        .subscribe(&app, &b.token, &format!("private-group.message.{}", b.id))
        .await;
    again.expect_no_event(Duration::from_millis(400)).await;
}

async fn ack(app: &TestApp, user: &TestUser, body: Value) {
    let res = call(app, user, reqwest::Method::POST, "/api/delivery/ack", Some(body)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

/// Subscribes to both of `user`'s own channels and returns what each sends before going quiet.
async fn backlog_of(
    app: &TestApp,
    user: &TestUser,
    individual: usize,
    group: usize,
) -> (Vec<(i64, bool)>, Vec<(i64, bool)>) {
    let mut s = PusherClient::connect(app).await;
    s.subscribe(app, &user.token, &format!("private-individual.message.{}", user.id))
        .await;
    let direct = collect(&mut s, individual).await;
    s.subscribe(app, &user.token, &format!("private-group.message.{}", user.id))
        .await;
    let grouped = collect(&mut s, group).await;
    s.expect_no_event(Duration::from_millis(300)).await;
    (direct, grouped)
}

async fn acknowledging_the_future_does_not_turn_the_backlog_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    send(&app, &a, &format!("/api/users/{}/messages", b.id), "before").await;
    send(&app, &a, "/api/groups/1/messages", "before").await;
    ack(
        &app,
        &b,
        json!({"individual": 9_000_000_000_i64, "group": 9_000_000_000_i64}),
    )
    .await;
    // Sent while Ben has no socket: backlog when he subscribes. What existed is acknowledged.
    let direct = send(&app, &a, &format!("/api/users/{}/messages", b.id), "after").await;
    let to_all = send(&app, &a, "/api/groups/1/messages", "after").await;
    let (got_direct, got_group) = backlog_of(&app, &b, 1, 1).await;
    assert_eq!(got_direct, [(direct, true)]);
    assert_eq!(got_group, [(to_all, true)]);
}

async fn acknowledging_someone_elses_message_keeps_ones_own(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let res = call(
        &app,
        &a,
        reqwest::Method::POST,
        "/api/groups",
        Some(json!({"name": "without ben", "member_ids": [c.id]})),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    let to_ben = format!("/api/users/{}/messages", b.id);
    // Ben's messages on both streams, with somebody else's in between.
    send(&app, &a, &to_ben, "one").await;
    send(&app, &a, "/api/groups/1/messages", "one").await;
    let to_cat = send(&app, &a, &format!("/api/users/{}/messages", c.id), "not for ben").await;
    let in_other_group = send(&app, &a, &format!("/api/groups/{gid}/messages"), "not for ben").await;
    let direct = send(&app, &a, &to_ben, "two").await;
    let to_all = send(&app, &a, "/api/groups/1/messages", "two").await;
    ack(&app, &b, json!({"individual": to_cat, "group": in_other_group})).await;
    // What came before the foreign ids is acknowledged; Ben's later messages are still backlog.
    let (got_direct, got_group) = backlog_of(&app, &b, 1, 1).await;
    assert_eq!(got_direct, [(direct, true)]);
    assert_eq!(got_group, [(to_all, true)]);
}

async fn no_gap_and_no_repeat_at_the_seam(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let path = format!("/api/users/{}/messages", b.id);
    let mut sent = Vec::new();
    for i in 0..200 {
        sent.push(send(&app, &a, &path, &format!("offline {i}")).await);
    }
    let mut s = PusherClient::connect(&app).await;
    // Messages keep coming while the backlog is read and written.
    let sender = {
        let (client, url, token) = (app.client.clone(), app.url(&path), a.token.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let res = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"body": format!("live {i}")}))
                    .send()
                    .await
                    .unwrap();
                ids.push(res.json::<Value>().await.unwrap()["message"]["id"].as_i64().unwrap());
            }
            ids
        })
    };
    s.subscribe(&app, &b.token, &format!("private-individual.message.{}", b.id))
        .await;
    sent.extend(sender.await.unwrap());
    let got = collect(&mut s, sent.len()).await;
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (id, _) in &got {
        *seen.entry(*id).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "no message twice");
    let mut got_ids: Vec<i64> = got.iter().map(|(id, _)| *id).collect();
    let backlog: Vec<i64> = got.iter().filter(|(_, b)| *b).map(|(id, _)| *id).collect();
    assert!(backlog.windows(2).all(|w| w[0] < w[1]), "backlog in order");
    assert!(backlog.len() >= 200, "everything sent before subscribing is backlog");
    got_ids.sort_unstable();
    sent.sort_unstable();
    assert_eq!(got_ids, sent, "nothing missing");
    s.expect_no_event(Duration::from_millis(300)).await;
}

async fn poll(app: &TestApp, user: &TestUser, query: &str) -> (Value, Duration) {
    let started = std::time::Instant::now();
    let v = get_json(app, user, &format!("/api/notifications{query}")).await;
    (v, started.elapsed())
}

async fn long_polls_answer_at_once_hold_and_wake(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    // Nothing waiting: held for the timeout, then an empty answer.
    let (v, took) = poll(&app, &b, "?timeout=1").await;
    assert_eq!(v["notifications"], json!([]));
    assert!(took >= Duration::from_millis(900), "held {took:?}");
    let cursor = v["cursor"].as_str().unwrap().to_owned();
    // Waiting notifications are answered at once, oldest first, with every type.
    let direct = send(&app, &a, &format!("/api/users/{}/messages", b.id), "hi").await;
    let res = call(
        &app,
        &a,
        reqwest::Method::POST,
        "/api/groups",
        Some(json!({"name": "pair", "member_ids": [b.id]})),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    let in_group = send(&app, &a, &format!("/api/groups/{gid}/messages"), "in pair").await;
    let (v, took) = poll(&app, &b, &format!("?after={cursor}&timeout=30")).await;
    assert!(took < Duration::from_secs(5), "answered at once, took {took:?}");
    let list = v["notifications"].as_array().unwrap();
    let types: Vec<&str> = list.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["new_private_message", "added_to_group", "new_group_message"]);
    assert_eq!(list[0]["from"], json!({"id": a.id, "name": "ann"}));
    assert_eq!(list[0]["message_id"], direct);
    assert_eq!(list[1]["group"], json!({"id": gid, "name": "pair"}));
    assert_eq!(list[2]["group"], json!({"id": gid, "name": "pair"}));
    assert_eq!(list[2]["message_id"], in_group);
    let (own, _) = poll(&app, &a, "?timeout=0").await;
    let own_types: Vec<&str> = own["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(own_types, ["group_created"], "own messages are not notifications");
    // Held, then woken by a message.
    let next = v["cursor"].as_str().unwrap().to_owned();
    let waiting = crate::helpers::spawn_get(
        app.client.clone(),
        app.url(&format!("/api/notifications?after={next}&timeout=30")),
        &b.token,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let woke_by = send(&app, &c, "/api/groups/1/messages", "wake up").await;
    let (v, took) = waiting.await.unwrap();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(10),
        "held then woken: {took:?}"
    );
    assert_eq!(v["notifications"][0]["message_id"], woke_by);
    // Without a cursor the server continues from what was fetched: fetched ones do not repeat.
    let (v, _) = poll(&app, &b, "?timeout=0").await;
    assert_eq!(v["notifications"], json!([]));
    for bad in ["?timeout=61", "?after=nope", "?timeout=-1"] {
        let res = call(
            &app,
            &b,
            reqwest::Method::GET,
            &format!("/api/notifications{bad}"),
            None,
        )
        .await;
        assert!(res.status().is_client_error(), "{bad}");
    }
}

async fn notifications_wait_until_fetched(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    // Ben is away: nothing polls while messages arrive.
    let first = send(&app, &a, &format!("/api/users/{}/messages", b.id), "while away 1").await;
    let second = send(&app, &a, &format!("/api/users/{}/messages", b.id), "while away 2").await;
    let db = app.stop().await;
    let s = crate::helpers::settings(&db);
    let app = TestApp::spawn_with(db, s).await;
    let (v, _) = poll(&app, &b, "?timeout=0").await;
    let got: Vec<i64> = v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [first, second], "kept in the store across a restart until fetched");
}

/// Threads of this process (the test and the server it runs).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn a_thousand_long_polls_hold_no_thread_or_connection_each(backend: Backend) {
    const POLLS: usize = 1000;
    // 1,000 polls and the server's side of them are 2,000 sockets in this one process.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
    let app = TestApp::spawn(backend).await;
    let admin = app.admin("admin").await;
    let sender = app.user("sender").await;
    // Users straight through the store: 1,000 password hashes would dominate the test.
    let store = chatbox::store::Store::connect(
        &chatbox::config::Config::from_settings(crate::helpers::settings(app.db())).unwrap(),
    )
    .await
    .unwrap();
    let mut users = Vec::new();
    for i in 0..POLLS {
        let name = chatbox::domain::UserName::parse(&format!("poller{i}")).unwrap();
        let email = chatbox::domain::Email::parse(&format!("poller{i}@example.com")).unwrap();
        let user = store.create_user(&name, &email, "not-a-real-hash").await.unwrap();
        let token = format!("{:064x}", i + 1);
        store
            .insert_token(user.id, &chatbox::http::extract::token_hash(&token))
            .await
            .unwrap();
        users.push((user.id.0, token));
    }
    store.close().await;
    let polls: Vec<_> = users
        .iter()
        .map(|(_, token)| {
            crate::helpers::spawn_get(reqwest::Client::new(), app.url("/api/notifications?timeout=60"), token)
        })
        .collect();
    // Wait until every poll is held by the server.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stats = loop {
        let stats = get_json(&app, &admin, "/api/admin/stats").await;
        if stats["long_polls"] == POLLS {
            break stats;
        }
        assert!(std::time::Instant::now() < deadline, "polls not all waiting: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pool = stats["db_connections"].as_u64().unwrap();
    assert!(
        pool <= 8,
        "{POLLS} waiting polls use at most the pool's 8 connections, not one each: {stats}"
    );
    let t = threads();
    assert!(t < 100, "{POLLS} waiting polls hold no thread each: {t} threads");
    eprintln!("{POLLS} long polls waiting: {t} threads in the process, {pool} database connections open");
    // One message each wakes each poll with its own notification.
    let mut expected = HashMap::new();
    for (id, token) in &users {
        let message = send(&app, &sender, &format!("/api/users/{id}/messages"), "wake").await;
        expected.insert(token.clone(), message);
    }
    let answers = join_all(polls).await;
    for ((_, token), answer) in users.iter().zip(answers) {
        let (answer, _) = answer.unwrap();
        assert_eq!(answer["notifications"][0]["message_id"], expected[token], "{answer}");
    }
}

/// An administrator, for `GET /api/admin/stats`.
async fn admin(app: &TestApp) -> TestUser {
    app.admin("admin").await
}

/// A poll that answers at once: 200 when a place was free (it was taken and given back), else the
/// 429 answer. Panics unless it answered within a second.
async fn probe(app: &TestApp, user: &TestUser) -> reqwest::Response {
    let started = std::time::Instant::now();
    let res = call(app, user, reqwest::Method::GET, "/api/notifications?timeout=0", None).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "answered at once, took {took:?}");
    res
}

/// Waits until exactly `n` polls are held (`long_polls` in the admin figures); returns the figures.
async fn until_polls(app: &TestApp, admin: &TestUser, n: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats = get_json(app, admin, "/api/admin/stats").await;
        if stats["long_polls"] == n {
            return stats;
        }
        assert!(std::time::Instant::now() < deadline, "not {n} polls waiting: {stats}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_user_holds_at_most_four_polls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = admin(&app).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let poll = |timeout: u64| {
        let url = app.url(&format!("/api/notifications?timeout={timeout}"));
        crate::helpers::spawn_get(reqwest::Client::new(), url, &b.token)
    };
    // Three polls that wait long, and a fourth that ends by itself after 2 s.
    let mut held: Vec<_> = (0..3).map(|_| poll(30)).collect();
    let short = poll(2);
    until_polls(&app, &admin, 4).await;
    // A fifth is refused at once; another user is not affected.
    let res = probe(&app, &b).await;
    assert_eq!(error_code(res, StatusCode::TOO_MANY_REQUESTS).await, "too_many_polls");
    assert_eq!(probe(&app, &a).await.status(), StatusCode::OK);
    // The short poll ends with its timeout: its place comes back.
    let (answer, took) = short.await.unwrap();
    assert_eq!(answer["notifications"], json!([]), "{answer}");
    assert!(
        took >= Duration::from_millis(1900),
        "held for its timeout, took {took:?}"
    );
    until_polls(&app, &admin, 3).await;
    assert_eq!(probe(&app, &b).await.status(), StatusCode::OK, "a new poll is accepted");
    // Full again, then a client gives up mid-poll: its place comes back long before its timeout.
    held.push(poll(30));
    until_polls(&app, &admin, 4).await;
    assert_eq!(probe(&app, &b).await.status(), StatusCode::TOO_MANY_REQUESTS);
    held.pop().unwrap().abort();
    until_polls(&app, &admin, 3).await;
    assert_eq!(probe(&app, &b).await.status(), StatusCode::OK, "a new poll is accepted");
    // A message answers the polls still held.
    let id = send(&app, &a, &format!("/api/users/{}/messages", b.id), "wake").await;
    for poll in held {
        let (answer, _) = poll.await.unwrap();
        assert_eq!(answer["notifications"][0]["message_id"], id, "{answer}");
    }
}

async fn only_notifications_wake_long_polls(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = admin(&app).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    // Ben's socket sees the broadcasts that pass through the hub, after their polls were (or were
    // not) woken: the same dispatch wakes polls first, then queues the frames.
    let mut socket = PusherClient::connect(&app).await;
    socket
        .subscribe(&app, &b.token, &format!("private-group.message.{}", b.id))
        .await;
    socket
        .subscribe(&app, &b.token, &format!("private-individual.message.{}", b.id))
        .await;
    let waiting = crate::helpers::spawn_get(app.client.clone(), app.url("/api/notifications?timeout=30"), &b.token);
    let before = until_polls(&app, &admin, 1).await["long_poll_wakeups"]
        .as_u64()
        .expect("long_poll_wakeups is a count");
    // A registration reaches everyone's group channel but makes no notification: no poll woken.
    let dan = app.user("dan").await;
    let registered = socket.expect("App\\Events\\UserRegistered").await;
    assert_eq!(registered.data["user"]["id"], dan.id);
    let stats = get_json(&app, &admin, "/api/admin/stats").await;
    assert_eq!(
        stats["long_poll_wakeups"], before,
        "a registration woke a poll: {stats}"
    );
    assert_eq!(stats["long_polls"], 1, "the poll is still waiting: {stats}");
    // A message to Ben wakes his poll, which answers with it.
    let id = send(&app, &a, &format!("/api/users/{}/messages", b.id), "wake up").await;
    let (answer, _) = waiting.await.unwrap();
    assert_eq!(answer["notifications"][0]["message_id"], id, "{answer}");
    assert_eq!(
        socket.expect("App\\Events\\IndividualMessage").await.data["message"]["id"],
        id
    );
    let stats = get_json(&app, &admin, "/api/admin/stats").await;
    assert_eq!(stats["long_poll_wakeups"], before + 1, "{stats}");
}

backend_tests!(
    a_thousand_long_polls_hold_no_thread_or_connection_each,
    acknowledging_someone_elses_message_keeps_ones_own,
    acknowledging_the_future_does_not_turn_the_backlog_off,
    a_user_holds_at_most_four_polls,
    only_notifications_wake_long_polls,
    backlog_comes_first_in_order_then_live,
    no_gap_and_no_repeat_at_the_seam,
    long_polls_answer_at_once_hold_and_wake,
    notifications_wait_until_fetched,
);
