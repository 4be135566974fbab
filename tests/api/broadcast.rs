//! The broadcast pipeline end to end: HTTP → store → queue → worker → bus → socket, and who may
//! subscribe to what.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TEST_SECRET, TestApp, TestUser, backend_tests, error_code},
    pusher::{PusherClient, trigger},
};

const QUIET: Duration = Duration::from_millis(400);

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Posts and returns the stored message after checking the status.
async fn send(app: &TestApp, from: &TestUser, path: &str, body: &str) -> Value {
    let res = post(app, from, path, json!({ "body": body })).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{path}");
    res.json::<Value>().await.unwrap()["message"].clone()
}

async fn one_to_one_reaches_the_recipient_and_nobody_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let mut b_socket = PusherClient::own_channels(&app, &b).await;
    let mut c_socket = PusherClient::own_channels(&app, &c).await;
    let stored = send(&app, &a, &format!("/api/users/{}/messages", b.id), "  hello ben  ").await;
    assert_eq!(stored["body"], "hello ben");
    assert_eq!(stored["sender"], json!({"id": a.id, "name": "ann"}));
    assert_eq!(stored["recipient_id"], b.id);
    let event = b_socket.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(event.channel, Some(format!("private-individual.message.{}", b.id)));
    assert_eq!(event.data["message"], stored, "the event carries the stored message");
    c_socket.expect_no_event(QUIET).await;
}

async fn all_and_small_groups_reach_their_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let mut sockets = Vec::new();
    for u in [&a, &b, &c] {
        sockets.push(PusherClient::own_channels(&app, u).await);
    }
    let to_all = send(&app, &c, "/api/groups/1/messages", "hi all").await;
    assert_eq!(to_all["group_id"], 1);
    for (s, u) in sockets.iter_mut().zip([&a, &b, &c]) {
        let e = s.expect("App\\Events\\GroupMessage").await;
        assert_eq!(e.channel, Some(format!("private-group.message.{}", u.id)));
        assert_eq!(e.data["message"]["id"], to_all["id"]);
    }
    let res = post(&app, &a, "/api/groups", json!({"name": "pair", "member_ids": [b.id]})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let group: Value = res.json::<Value>().await.unwrap()["group"].clone();
    assert_eq!(group["owner_id"], a.id);
    assert_eq!(group["member_ids"], json!([a.id, b.id]));
    let gid = group["id"].as_i64().unwrap();
    let msg = send(&app, &b, &format!("/api/groups/{gid}/messages"), "just us").await;
    for s in &mut sockets[..2] {
        assert_eq!(
            s.expect("App\\Events\\GroupMessage").await.data["message"]["id"],
            msg["id"]
        );
    }
    sockets[2].expect_no_event(QUIET).await;
    let res = post(
        &app,
        &c,
        &format!("/api/groups/{gid}/messages"),
        json!({"body": "let me in"}),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_a_member");
    let res = post(&app, &c, "/api/groups/999999/messages", json!({"body": "x"})).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    let res = post(
        &app,
        &a,
        "/api/groups",
        json!({"name": "ghosts", "member_ids": [999999]}),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await, "unknown_user");
}

async fn bad_sends_are_refused_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut b_socket = PusherClient::own_channels(&app, &b).await;
    let to_b = format!("/api/users/{}/messages", b.id);
    for (path, body, status, code) in [
        (
            to_b.as_str(),
            json!({"body": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            to_b.as_str(),
            json!({"body": "x".repeat(4001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            to_b.as_str(),
            json!({"body": "x", "client_id": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_client_id",
        ),
        (
            to_b.as_str(),
            json!({"text": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/users/999999/messages",
            json!({"body": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/users/abc/messages",
            json!({"body": "x"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let res = post(&app, &a, path, body.clone()).await;
        assert_eq!(error_code(res, status).await, code, "{path} {body}");
    }
    let res = post(
        &app,
        &a,
        &format!("/api/users/{}/messages", a.id),
        json!({"body": "me"}),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "cannot_message_self"
    );
    let res = app
        .client
        .post(app.url(&to_b))
        .json(&json!({"body": "anon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "unauthenticated");
    b_socket.expect_no_event(QUIET).await;
}

async fn a_retried_send_is_stored_and_announced_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut b_socket = PusherClient::own_channels(&app, &b).await;
    let path = format!("/api/users/{}/messages", b.id);
    let first = post(&app, &a, &path, json!({"body": "once", "client_id": "c-1"})).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = post(&app, &a, &path, json!({"body": "once", "client_id": "c-1"})).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a retry answers with the stored message"
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["message"]["id"], again["message"]["id"]);
    assert_eq!(first["message"]["client_id"], "c-1");
    assert_eq!(
        b_socket.expect("App\\Events\\IndividualMessage").await.data["message"]["id"],
        first["message"]["id"]
    );
    b_socket.expect_no_event(QUIET).await;
    let elsewhere = post(
        &app,
        &a,
        "/api/groups/1/messages",
        json!({"body": "once", "client_id": "c-1"}),
    )
    .await;
    assert_eq!(error_code(elsewhere, StatusCode::CONFLICT).await, "client_id_reused");
}

async fn auth_endpoint_signs_own_channels_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let auth = |user: &TestUser, channel: String, json_body: bool| {
        let req = app.client.post(app.url("/broadcasting/auth")).bearer_auth(&user.token);
        let req = if json_body {
            req.json(&json!({"socket_id": "123.456", "channel_name": channel}))
        } else {
            req.form(&[("socket_id", "123.456"), ("channel_name", channel.as_str())])
        };
        req.send()
    };
    for json_body in [false, true] {
        let res = auth(&a, format!("private-individual.message.{}", a.id), json_body)
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let signed: Value = res.json().await.unwrap();
        assert!(signed["auth"].as_str().unwrap().starts_with("test-key:"));
        let res = auth(&a, format!("private-group.message.{}", b.id), json_body)
            .await
            .unwrap();
        assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "forbidden_channel");
    }
    let res = auth(&a, "presence-online".into(), false).await.unwrap();
    let signed: Value = res.json().await.unwrap();
    let data: Value = serde_json::from_str(signed["channel_data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"user_id": a.id, "user_info": {"id": a.id, "name": "ann"}}));
    for channel in ["private-other", "presence-elsewhere"] {
        let res = auth(&a, channel.into(), false).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{channel}");
    }
    for bad in [
        "private-individual.message.x",
        &format!("private-individual.message.0{}", a.id),
    ] {
        let res = auth(&a, bad.to_owned(), false).await.unwrap();
        assert_eq!(
            error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_channel",
            "{bad}"
        );
    }
    let res = auth(&a, "bad channel".into(), false).await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_channel"
    );
    let res = app
        .client
        .post(app.url("/broadcasting/auth"))
        .bearer_auth(&a.token)
        .form(&[("socket_id", "12"), ("channel_name", "presence-online")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_socket_id"
    );
    let res = app
        .client
        .post(app.url("/broadcasting/auth"))
        .form(&[("socket_id", "1.2"), ("channel_name", "presence-online")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "unauthenticated");
}

async fn presence_counts_users_not_sockets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut a_socket = PusherClient::connect(&app).await;
    let joined = a_socket.subscribe(&app, &a.token, "presence-online").await;
    assert_eq!(joined["presence"]["count"], 1);
    assert_eq!(joined["presence"]["ids"], json!([a.id.to_string()]));
    let mut b1 = PusherClient::connect(&app).await;
    let seen = b1.subscribe(&app, &b.token, "presence-online").await;
    assert_eq!(seen["presence"]["count"], 2);
    assert_eq!(seen["presence"]["hash"][a.id.to_string()]["name"], "ann");
    let added = a_socket.expect("pusher_internal:member_added").await;
    assert_eq!(added.data["user_id"], b.id.to_string());
    assert_eq!(added.data["user_info"]["name"], "ben");
    let mut b2 = PusherClient::connect(&app).await;
    assert_eq!(
        b2.subscribe(&app, &b.token, "presence-online").await["presence"]["count"],
        2
    );
    b1.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "presence-online"}}))
        .await;
    a_socket.expect_no_event(QUIET).await;
    assert!(
        a_socket.next_within(QUIET).await.is_none(),
        "no member_removed while one of ben's sockets stays"
    );
    drop(b2);
    let removed = a_socket.expect("pusher_internal:member_removed").await;
    assert_eq!(removed.data["user_id"], b.id.to_string());
}

async fn client_events_reach_others_never_the_sender(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut a_socket = PusherClient::connect(&app).await;
    a_socket.subscribe(&app, &a.token, "presence-online").await;
    let mut b_socket = PusherClient::connect(&app).await;
    b_socket.subscribe(&app, &b.token, "presence-online").await;
    a_socket.expect("pusher_internal:member_added").await;
    a_socket
        .send(json!({"event": "client-typing", "channel": "presence-online", "data": {"from": a.id}}))
        .await;
    let whisper = b_socket.expect("client-typing").await;
    assert_eq!(whisper.data, json!({"from": a.id}));
    assert_eq!(whisper.raw["user_id"], a.id.to_string(), "the server names the sender");
    assert!(a_socket.next_within(QUIET).await.is_none(), "not echoed to the sender");
    // Not subscribed, or a public channel: refused.
    a_socket
        .send(json!({"event": "client-x", "channel": "private-nope", "data": {}}))
        .await;
    assert_eq!(a_socket.expect("pusher:error").await.data["code"], 4301);
    // More than 10 per second: refused.
    for _ in 0..11 {
        a_socket
            .send(json!({"event": "client-x", "channel": "presence-online", "data": {}}))
            .await;
    }
    let limited = a_socket.expect("pusher:error").await;
    assert_eq!(limited.data["code"], 4301);
    assert!(limited.data["message"].as_str().unwrap().contains("rate"));
}

async fn two_nodes_share_the_pipeline(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return; // Nodes share Redis and MySQL; the embedded backend is one process by design.
    }
    let node1 = TestApp::spawn(backend).await;
    let node2 = node1.second_node().await;
    let (a, b) = (node1.user("ann").await, node1.user("ben").await);
    let mut b_on_node2 = PusherClient::own_channels(&node2, &b).await;
    let stored = send(&node1, &a, &format!("/api/users/{}/messages", b.id), "across nodes").await;
    let e = b_on_node2.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(e.data["message"]["id"], stored["id"]);
    let to_all = send(&node1, &a, "/api/groups/1/messages", "everyone").await;
    assert_eq!(
        b_on_node2.expect("App\\Events\\GroupMessage").await.data["message"]["id"],
        to_all["id"]
    );
}

async fn the_pusher_http_api_triggers_events_for_signed_requests_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut a_socket = PusherClient::own_channels(&app, &a).await;
    let mut b_socket = PusherClient::own_channels(&app, &b).await;
    let mut public = PusherClient::connect(&app).await;
    public
        .send(json!({ "event": "pusher:subscribe", "data": { "channel": "news" } }))
        .await;
    public.expect("pusher_internal:subscription_succeeded").await;
    let b_channel = format!("private-individual.message.{}", b.id);

    // Signed with the wrong secret, or for another app: refused, nothing delivered.
    let event = json!({ "name": "server-note", "channel": b_channel, "data": "{\"n\":0}" });
    let res = trigger(&app, "/apps/test-app/events", &event, "not-the-secret").await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_signature");
    let res = trigger(&app, "/apps/other-app/events", &event, TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    b_socket.expect_no_event(QUIET).await;

    // One event on two channels; the socket named by socket_id is left out.
    let event = json!({
        "name": "server-note",
        "channels": [b_channel, "news", format!("private-individual.message.{}", a.id)],
        "data": "{\"n\":1}",
        "socket_id": a_socket.socket_id,
    });
    let res = trigger(&app, "/apps/test-app/events", &event, TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({}));
    let got = b_socket.expect("server-note").await;
    assert_eq!(
        (got.channel.as_deref(), &got.data),
        (Some(b_channel.as_str()), &json!({"n": 1}))
    );
    assert_eq!(public.expect("server-note").await.data, json!({"n": 1}));
    a_socket.expect_no_event(QUIET).await;

    // A batch is checked whole: one bad channel name and none of its events go out.
    let bad = json!({ "batch": [
        { "name": "server-note", "channel": "news", "data": "{\"n\":2}" },
        { "name": "server-note", "channel": "bad channel!", "data": "{}" },
    ]});
    let res = trigger(&app, "/apps/test-app/batch_events", &bad, TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let too_big = json!({ "name": "server-note", "channel": "news", "data": "x".repeat(10 * 1024 + 1) });
    let res = trigger(&app, "/apps/test-app/events", &too_big, TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let good = json!({ "batch": [
        { "name": "first", "channel": "news", "data": "{}" },
        { "name": "second", "channel": "news", "data": "{}" },
    ]});
    let res = trigger(&app, "/apps/test-app/batch_events", &good, TEST_SECRET).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(public.next().await.event, "first", "the rejected batch sent nothing");
    assert_eq!(public.next().await.event, "second");
}

backend_tests!(
    the_pusher_http_api_triggers_events_for_signed_requests_only,
    one_to_one_reaches_the_recipient_and_nobody_else,
    all_and_small_groups_reach_their_members_only,
    bad_sends_are_refused_and_store_nothing,
    a_retried_send_is_stored_and_announced_once,
    auth_endpoint_signs_own_channels_only,
    presence_counts_users_not_sockets,
    client_events_reach_others_never_the_sender,
    two_nodes_share_the_pipeline,
);
