//! Chat rules end to end: history paging, groups and "All", read marks and unread counts,
//! search and friends.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, TestUser, backend_tests, error_code},
    pusher::PusherClient,
};

pub async fn call(
    app: &TestApp,
    user: &TestUser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(&user.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("request")
}

pub async fn get_json(app: &TestApp, user: &TestUser, path: &str) -> Value {
    let res = call(app, user, reqwest::Method::GET, path, None).await;
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.json().await.unwrap()
}

pub async fn send(app: &TestApp, from: &TestUser, path: &str, body: &str) -> i64 {
    let res = call(app, from, reqwest::Method::POST, path, Some(json!({ "body": body }))).await;
    assert_eq!(res.status(), StatusCode::CREATED, "POST {path}");
    res.json::<Value>().await.unwrap()["message"]["id"].as_i64().unwrap()
}

fn ids(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

async fn history_pages_twenty_at_a_time_newest_last(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, c) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let path = format!("/api/users/{}/messages", b.id);
    let empty = get_json(&app, &a, &path).await;
    assert_eq!(empty, json!({"messages": [], "has_more": false}));
    let mut sent = Vec::new();
    for i in 0..20 {
        let from = if i % 2 == 0 { &a } else { &b };
        let to = if i % 2 == 0 { b.id } else { a.id };
        sent.push(send(&app, from, &format!("/api/users/{to}/messages"), &format!("m{i}")).await);
    }
    let page = get_json(&app, &a, &path).await;
    assert_eq!(ids(&page), sent, "exactly 20: one page, oldest first");
    assert_eq!(page["has_more"], false);
    for i in 20..25 {
        sent.push(send(&app, &a, &path, &format!("m{i}")).await);
    }
    let newest = get_json(&app, &b, &format!("/api/users/{}/messages", a.id)).await;
    assert_eq!(ids(&newest), sent[5..], "both participants read the same conversation");
    assert_eq!(newest["has_more"], true);
    let older = get_json(&app, &a, &format!("{path}?before={}", sent[5])).await;
    assert_eq!(ids(&older), sent[..5]);
    assert_eq!(older["has_more"], false);
    let before_first = get_json(&app, &a, &format!("{path}?before={}", sent[0])).await;
    assert_eq!(before_first, json!({"messages": [], "has_more": false}));
    let small = get_json(&app, &a, &format!("{path}?limit=3")).await;
    assert_eq!(ids(&small), sent[22..]);
    // A third user only ever sees its own conversations.
    assert_eq!(
        ids(&get_json(&app, &c, &format!("/api/users/{}/messages", a.id)).await),
        Vec::<i64>::new()
    );
    for bad in ["?limit=0", "?limit=101", "?before=-1", "?limit=x"] {
        let res = call(&app, &a, reqwest::Method::GET, &format!("{path}{bad}"), None).await;
        assert!(res.status().is_client_error(), "{bad}: {}", res.status());
    }
    let res = call(&app, &a, reqwest::Method::GET, "/api/users/99999/messages", None).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
}

async fn groups_follow_their_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, member, late, outsider) = (
        app.user("own").await,
        app.user("mem").await,
        app.user("late").await,
        app.user("out").await,
    );
    let res = call(
        &app,
        &owner,
        reqwest::Method::POST,
        "/api/groups",
        Some(json!({"name": "Team", "member_ids": [member.id]})),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    let g = format!("/api/groups/{gid}");
    let early = send(&app, &member, &format!("{g}/messages"), "before you came").await;

    // Outsiders can neither read, post, see it, nor search it.
    for (method, path) in [
        (reqwest::Method::GET, g.clone()),
        (reqwest::Method::GET, format!("{g}/messages")),
    ] {
        let res = call(&app, &outsider, method, &path, None).await;
        assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_a_member");
    }
    let found = get_json(&app, &outsider, "/api/search?name=te&type=group").await;
    assert_eq!(found["groups"], json!([]));
    let found = get_json(&app, &member, "/api/search?name=te&type=group").await;
    assert_eq!(found["groups"], json!([{"id": gid, "name": "Team"}]));

    // Only the owner renames and adds; the added member is told live and sees earlier history.
    let res = call(&app, &member, reqwest::Method::PATCH, &g, Some(json!({"name": "Mine"}))).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(
        &app,
        &owner,
        reqwest::Method::PATCH,
        &g,
        Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["group"]["name"], "Renamed");
    let mut late_socket = PusherClient::connect(&app).await;
    late_socket
        .subscribe(&app, &late.token, &format!("private-group.message.{}", late.id))
        .await;
    let res = call(
        &app,
        &member,
        reqwest::Method::POST,
        &format!("{g}/members"),
        Some(json!({"user_id": late.id})),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(
        &app,
        &owner,
        reqwest::Method::POST,
        &format!("{g}/members"),
        Some(json!({"user_id": late.id})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let added = late_socket.expect("App\\Events\\AddedToGroup").await;
    assert_eq!(added.data["group"]["id"], gid);
    assert_eq!(ids(&get_json(&app, &late, &format!("{g}/messages")).await), vec![early]);
    let res = call(
        &app,
        &owner,
        reqwest::Method::POST,
        &format!("{g}/members"),
        Some(json!({"user_id": 99999})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Members leave; the owner removes anyone; the owner cannot leave.
    let res = call(
        &app,
        &late,
        reqwest::Method::DELETE,
        &format!("{g}/members/{}", late.id),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        late_socket.expect("App\\Events\\RemovedFromGroup").await.data["group_id"],
        gid
    );
    let res = call(
        &app,
        &late,
        reqwest::Method::POST,
        &format!("{g}/messages"),
        Some(json!({"body": "still here?"})),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_a_member");
    let res = call(
        &app,
        &member,
        reqwest::Method::DELETE,
        &format!("{g}/members/{}", owner.id),
        None,
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(
        &app,
        &owner,
        reqwest::Method::DELETE,
        &format!("{g}/members/{}", owner.id),
        None,
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "owner_cannot_leave");

    // Only the owner deletes; then it is gone.
    let res = call(&app, &member, reqwest::Method::DELETE, &g, None).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(&app, &owner, reqwest::Method::DELETE, &g, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(&app, &owner, reqwest::Method::GET, &g, None).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn nobody_leaves_deletes_or_renames_all(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let groups = get_json(&app, &b, "/api/groups").await;
    assert_eq!(groups["groups"][0]["id"], 1, "\"All\" comes first");
    assert_eq!(groups["groups"][0]["is_all"], true);
    assert_eq!(
        groups["groups"][0]["member_ids"],
        json!([a.id, b.id]),
        "every user is in \"All\""
    );
    for (method, path, body) in [
        (reqwest::Method::DELETE, format!("/api/groups/1/members/{}", a.id), None),
        (reqwest::Method::DELETE, "/api/groups/1".to_owned(), None),
        (
            reqwest::Method::PATCH,
            "/api/groups/1".to_owned(),
            Some(json!({"name": "Some"})),
        ),
        (
            reqwest::Method::POST,
            "/api/groups/1/members".to_owned(),
            Some(json!({"user_id": b.id})),
        ),
    ] {
        let res = call(&app, &a, method, &path, body).await;
        assert_eq!(
            error_code(res, StatusCode::FORBIDDEN).await,
            "all_group_is_fixed",
            "{path}"
        );
    }
}

async fn unread_counts_and_conversations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    send(&app, &a, &format!("/api/users/{}/messages", b.id), "one").await;
    let two = send(&app, &a, &format!("/api/users/{}/messages", b.id), "two").await;
    let all = send(&app, &a, "/api/groups/1/messages", "to all").await;
    let list = get_json(&app, &b, "/api/conversations").await;
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[0]["kind"], "group", "newest activity first");
    assert_eq!(convs[0]["last_message"]["id"], all);
    assert_eq!(convs[0]["unread"], 1);
    assert_eq!(convs[1]["kind"], "user");
    assert_eq!(convs[1]["id"], a.id);
    assert_eq!(convs[1]["name"], "ann");
    assert_eq!(convs[1]["last_message"]["id"], two);
    assert_eq!(convs[1]["unread"], 2);
    assert_eq!(
        get_json(&app, &a, "/api/conversations").await["conversations"][1]["unread"],
        0,
        "own messages are read"
    );
    let res = call(
        &app,
        &b,
        reqwest::Method::POST,
        &format!("/api/users/{}/read", a.id),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(
        &app,
        &b,
        reqwest::Method::POST,
        "/api/groups/1/read",
        Some(json!({"message_id": all})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list = get_json(&app, &b, "/api/conversations").await;
    assert!(
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["unread"] == 0),
        "{list}"
    );
    assert_eq!(get_json(&app, &b, "/api/groups").await["groups"][0]["unread"], 0);
    // A user who registers later does not inherit old messages as unread.
    let c = app.user("cat").await;
    assert_eq!(get_json(&app, &c, "/api/groups").await["groups"][0]["unread"], 0);
}

async fn search_people_and_friends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, _b) = (app.user("Annabel").await, app.user("annie").await);
    let c = app.user("bob_1").await;
    let found = get_json(&app, &c, "/api/search?name=ANN&type=user").await;
    let names: Vec<&str> = found["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Annabel", "annie"], "prefix, case-insensitive");
    assert_eq!(found["groups"], json!([]));
    let both = get_json(&app, &c, "/api/search?name=al").await;
    assert_eq!(both["groups"], json!([{"id": 1, "name": "All"}]));
    assert_eq!(
        get_json(&app, &c, "/api/search?name=bob_").await["users"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get_json(&app, &c, "/api/search?name=b%25").await["users"],
        json!([]),
        "wildcards are literal"
    );
    let res = call(&app, &c, reqwest::Method::GET, "/api/search?name=a&type=cat", None).await;
    assert_eq!(error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await, "invalid_type");

    let res = call(
        &app,
        &c,
        reqwest::Method::POST,
        "/api/friends",
        Some(json!({"username": "annabel"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let friends = get_json(&app, &c, "/api/friends").await;
    assert_eq!(
        friends["friends"],
        json!([{"id": a.id, "name": "Annabel", "online": false, "avatar_url": null}])
    );
    let res = call(
        &app,
        &c,
        reqwest::Method::POST,
        "/api/friends",
        Some(json!({"username": "nobody"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = call(
        &app,
        &c,
        reqwest::Method::POST,
        "/api/friends",
        Some(json!({"username": "bob_1"})),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "cannot_befriend_self"
    );
    let res = call(
        &app,
        &c,
        reqwest::Method::DELETE,
        &format!("/api/friends/{}", a.id),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = call(
        &app,
        &c,
        reqwest::Method::DELETE,
        &format!("/api/friends/{}", a.id),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The user list shows who is online.
    let mut online = PusherClient::connect(&app).await;
    online.subscribe(&app, &a.token, "presence-online").await;
    let users = get_json(&app, &c, "/api/users").await;
    let annabel = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == a.id)
        .unwrap()
        .clone();
    assert_eq!(annabel["online"], true);
}

async fn new_users_are_announced_to_everyone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.user("ann").await;
    let mut s = PusherClient::connect(&app).await;
    s.subscribe(&app, &a.token, &format!("private-group.message.{}", a.id))
        .await;
    let b = app.user("ben").await;
    let e = s.expect("App\\Events\\UserRegistered").await;
    assert_eq!(e.data["user"], json!({"id": b.id, "name": "ben"}));
    s.expect_no_event(Duration::from_millis(200)).await;
}

backend_tests!(
    history_pages_twenty_at_a_time_newest_last,
    groups_follow_their_rules,
    nobody_leaves_deletes_or_renames_all,
    unread_counts_and_conversations,
    search_people_and_friends,
    new_users_are_announced_to_everyone,
    nobody_reads_what_is_not_theirs_on_any_path,
    session_cookies_are_secure_when_configured,
    misspelt_fields_are_refused_not_ignored,
);

/// A user never reads another's one-to-one messages, nor a group's without membership: over
/// REST, the auth endpoint, WebSocket subscriptions and long polling.
async fn nobody_reads_what_is_not_theirs_on_any_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b, eve) = (app.user("ann").await, app.user("ben").await, app.user("eve").await);
    let res = call(
        &app,
        &a,
        reqwest::Method::POST,
        "/api/groups",
        Some(json!({"name": "pair", "member_ids": [b.id]})),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    // Eve's long poll starts before anything is sent.
    let poll = crate::helpers::spawn_get(app.client.clone(), app.url("/api/notifications?timeout=3"), &eve.token);
    let mut eve_socket = PusherClient::connect(&app).await;
    eve_socket
        .subscribe(&app, &eve.token, &format!("private-individual.message.{}", eve.id))
        .await;
    eve_socket
        .subscribe(&app, &eve.token, &format!("private-group.message.{}", eve.id))
        .await;
    let secret = send(&app, &a, &format!("/api/users/{}/messages", b.id), "for ben only").await;
    send(&app, &a, &format!("/api/groups/{gid}/messages"), "for the pair only").await;
    // REST: Eve's own conversation with Ann is empty; the group is closed to her.
    assert_eq!(
        ids(&get_json(&app, &eve, &format!("/api/users/{}/messages", a.id)).await),
        Vec::<i64>::new()
    );
    let res = call(
        &app,
        &eve,
        reqwest::Method::GET,
        &format!("/api/groups/{gid}/messages"),
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Auth endpoint: no signature for Ben's channels.
    for channel in [
        format!("private-individual.message.{}", b.id),
        format!("private-group.message.{}", b.id),
    ] {
        let res = app
            .client
            .post(app.url("/broadcasting/auth"))
            .bearer_auth(&eve.token)
            .form(&[
                ("socket_id", eve_socket.socket_id.as_str()),
                ("channel_name", channel.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    // WebSocket: a subscription without the server's signature is refused, and nothing arrives.
    let ben_channel = format!("private-individual.message.{}", b.id);
    eve_socket
        .send(json!({"event": "pusher:subscribe", "data": {"channel": ben_channel, "auth": "test-key:00"}}))
        .await;
    assert_eq!(
        eve_socket.expect("pusher:subscription_error").await.channel,
        Some(ben_channel)
    );
    eve_socket.expect_no_event(Duration::from_millis(300)).await;
    // Long polling: Eve is told nothing about either message.
    let (answer, _) = poll.await.unwrap();
    assert_eq!(answer["notifications"], json!([]), "{answer}");
    let ben_poll = get_json(&app, &b, "/api/notifications?timeout=0").await;
    assert!(
        ben_poll["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["message_id"] == secret)
    );
}

async fn session_cookies_are_secure_when_configured(backend: Backend) {
    let db = crate::helpers::TestDb::new(&backend);
    let mut s = crate::helpers::settings(&db);
    s.cookie_secure = true;
    let app = TestApp::spawn_with(db, s).await;
    let res = app
        .client
        .post(app.url("/api/register"))
        .json(&json!({"name": "sec", "email": "sec@example.com", "password": "password-sec"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()[reqwest::header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

/// Where a misspelt field would silently change the meaning, it is refused instead of ignored.
async fn misspelt_fields_are_refused_not_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    for (path, body) in [
        ("/api/groups".to_owned(), json!({"name": "typo", "members": [b.id]})),
        (
            format!("/api/users/{}/messages", b.id),
            json!({"body": "x", "client_ld": "1"}),
        ),
        ("/api/groups/1/messages".to_owned(), json!({"body": "x", "group_id": 2})),
    ] {
        let res = call(&app, &a, reqwest::Method::POST, &path, Some(body.clone())).await;
        assert_eq!(
            error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_body",
            "{path} {body}"
        );
    }
    assert_eq!(
        get_json(&app, &a, "/api/groups").await["groups"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was created"
    );
}
