//! Typing indicators (`POST /api/typing`): they reach the people of the conversation on their own
//! private channels, name the sender as the server knows it, and reach nobody else.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    chat::{call, send},
    helpers::{Backend, TestApp, TestUser, backend_tests, error_code},
    pusher::{Frame, PusherClient},
};

const TYPING: &str = "App\\Events\\Typing";

async fn typing(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    call(app, user, reqwest::Method::POST, "/api/typing", Some(body)).await
}

/// The next event that is not a protocol frame (`pusher:…`, `pusher_internal:…`).
async fn next_event(s: &mut PusherClient) -> Frame {
    loop {
        let f = s.next().await;
        if !f.event.starts_with("pusher") {
            return f;
        }
    }
}

async fn one_to_one_typing_reaches_the_recipient_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let mut ben = PusherClient::own_channels(&app, &b).await;
    // Cat is online: on presence-online, where typing used to be whispered, and on its own channels.
    let mut cat = PusherClient::own_channels(&app, &c).await;
    cat.subscribe(&app, &c.token, "presence-online").await;

    let res = typing(&app, &a, json!({ "to_user": b.id })).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let e = next_event(&mut ben).await;
    assert_eq!(e.event, TYPING);
    assert_eq!(e.channel, Some(format!("private-individual.message.{}", b.id)));
    assert_eq!(
        e.data,
        json!({ "from": { "id": a.id, "name": "ann" }, "to_user": b.id })
    );

    // A `from` in the body is not believed: the event names the caller.
    let res = typing(
        &app,
        &a,
        json!({ "to_user": b.id, "from": { "id": c.id, "name": "cat" } }),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let e = next_event(&mut ben).await;
    assert_eq!(e.event, TYPING);
    assert_eq!(e.data["from"], json!({ "id": a.id, "name": "ann" }));

    // Cat learnt nothing: the next event on Cat's socket is a message sent to Cat afterwards.
    let to_cat = send(&app, &a, &format!("/api/users/{}/messages", c.id), "hi cat").await;
    let e = next_event(&mut cat).await;
    assert_eq!(e.event, "App\\Events\\IndividualMessage", "{:?}", e.raw);
    assert_eq!(e.data["message"]["id"], to_cat);
}

async fn group_typing_reaches_the_other_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let dan = app.user("dan").await;
    let mut sockets = Vec::new();
    for u in [&a, &b, &c] {
        sockets.push(PusherClient::own_channels(&app, u).await);
    }
    let res = call(
        &app,
        &a,
        reqwest::Method::POST,
        "/api/groups",
        Some(json!({ "name": "trio", "member_ids": [b.id, c.id] })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    for s in &mut sockets {
        assert_eq!(next_event(s).await.event, "App\\Events\\AddedToGroup");
    }

    let res = typing(&app, &a, json!({ "to_group": gid })).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for (s, u) in sockets[1..].iter_mut().zip([&b, &c]) {
        let e = next_event(s).await;
        assert_eq!(e.event, TYPING);
        assert_eq!(e.channel, Some(format!("private-group.message.{}", u.id)));
        assert_eq!(
            e.data,
            json!({ "from": { "id": a.id, "name": "ann" }, "group_id": gid })
        );
    }
    // Not to the sender: Ann's next event is the message Ben sends to the group afterwards.
    let reply = send(&app, &b, &format!("/api/groups/{gid}/messages"), "hi").await;
    let e = next_event(&mut sockets[0]).await;
    assert_eq!(e.event, "App\\Events\\GroupMessage", "{:?}", e.raw);
    assert_eq!(e.data["message"]["id"], reply);

    // Only members may announce typing in a group, as only they may post there.
    let res = typing(&app, &dan, json!({ "to_group": gid })).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_a_member");
}

/// A script announcing typing in a loop is stopped: a few per two seconds, then 429.
async fn typing_is_rate_limited_per_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let max = chatbox::limits::TYPING_PER_USER.max;
    for _ in 0..max {
        let res = typing(&app, &a, json!({ "to_user": b.id })).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    let res = typing(&app, &a, json!({ "to_user": b.id })).await;
    assert_eq!(
        error_code(res, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
    let res = typing(&app, &b, json!({ "to_user": a.id })).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "others are not affected");
}

async fn typing_is_refused_in_all_to_oneself_and_to_nobody(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    for (body, status, code) in [
        (
            json!({ "to_group": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "typing_not_in_all",
        ),
        (
            json!({ "to_user": a.id }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_type_to_self",
        ),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_typing_target"),
        (
            json!({ "to_user": b.id, "to_group": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_typing_target",
        ),
        (
            json!({ "to_user": "ben" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!({ "to_user": 999_999 }), StatusCode::NOT_FOUND, "not_found"),
        (json!({ "to_group": 999_999 }), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let res = typing(&app, &a, body.clone()).await;
        assert_eq!(error_code(res, status).await, code, "{body}");
    }
    let res = app.post("/api/typing", json!({ "to_user": b.id })).await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "unauthenticated");
}

backend_tests!(
    group_typing_reaches_the_other_members_only,
    one_to_one_typing_reaches_the_recipient_only,
    typing_is_refused_in_all_to_oneself_and_to_nobody,
    typing_is_rate_limited_per_user,
);
