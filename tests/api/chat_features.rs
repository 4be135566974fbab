//! Richer messages end to end: read marks announced live ("seen"), mentions, editing and
//! deleting one's own messages, anonymous questions that name their asker nowhere.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    chat::{call, get_json},
    helpers::{Backend, TestApp, TestUser, backend_tests, error_code},
    pusher::{Frame, PusherClient},
};

const READ: &str = "App\\Events\\MessagesRead";
const UPDATED: &str = "App\\Events\\MessageUpdated";
const DELETED: &str = "App\\Events\\MessageDeleted";
const MENTIONED: &str = "App\\Events\\Mentioned";
const GROUP_MESSAGE: &str = "App\\Events\\GroupMessage";
const INDIVIDUAL_MESSAGE: &str = "App\\Events\\IndividualMessage";

/// Posts `body` (JSON) and returns the answer after checking the status.
async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value, status: StatusCode) -> Value {
    let res = call(app, user, Method::POST, path, Some(body)).await;
    assert_eq!(res.status(), status, "POST {path}");
    res.json().await.unwrap_or(Value::Null)
}

/// Sends a message and returns it.
async fn say(app: &TestApp, user: &TestUser, path: &str, body: &str) -> Value {
    post(app, user, path, json!({ "body": body }), StatusCode::CREATED).await["message"].clone()
}

async fn group(app: &TestApp, owner: &TestUser, name: &str, members: &[&TestUser]) -> i64 {
    let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    let g = post(
        app,
        owner,
        "/api/groups",
        json!({ "name": name, "member_ids": ids }),
        StatusCode::CREATED,
    )
    .await;
    g["group"]["id"].as_i64().unwrap()
}

/// The next event that is not a protocol frame, and every frame that came before it.
async fn next_event(socket: &mut PusherClient) -> (Frame, Vec<Frame>) {
    let mut before = Vec::new();
    loop {
        let f = socket.next().await;
        if !f.event.starts_with("pusher") {
            return (f, before);
        }
        before.push(f);
    }
}

/// Asserts that the next event on `socket` is `event` (nothing else came first) and returns it.
async fn next_is(socket: &mut PusherClient, event: &str) -> Frame {
    let (f, _) = next_event(socket).await;
    assert_eq!(f.event, event, "next event: {:?}", f.raw);
    f
}

/// A one-to-one message from `from` that `to` must receive next: proves `to`'s socket was alive
/// and that nothing else was sent to it before.
async fn probe(app: &TestApp, from: &TestUser, to: &TestUser, socket: &mut PusherClient) {
    let m = say(app, from, &format!("/api/users/{}/messages", to.id), "probe").await;
    let f = next_is(socket, INDIVIDUAL_MESSAGE).await;
    assert_eq!(f.data["message"]["id"], m["id"]);
}

/// A socket on `user`'s individual channel alone, so its backlog follows the subscription.
async fn individual_socket(app: &TestApp, user: &TestUser) -> PusherClient {
    let mut s = PusherClient::connect(app).await;
    s.subscribe(app, &user.token, &format!("private-individual.message.{}", user.id))
        .await;
    s
}

async fn read_marks_are_announced_to_the_other_participants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben, cat) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let mut ann_s = PusherClient::own_channels(&app, &ann).await;
    let mut ben_s = PusherClient::own_channels(&app, &ben).await;
    let mut cat_s = PusherClient::own_channels(&app, &cat).await;
    let m1 = say(&app, &ann, &format!("/api/users/{}/messages", ben.id), "one").await["id"].clone();
    next_is(&mut ben_s, INDIVIDUAL_MESSAGE).await;

    // One-to-one: the partner hears it on its individual channel; the reader does not.
    let read_ann = format!("/api/users/{}/read", ann.id);
    let res = call(&app, &ben, Method::POST, &read_ann, Some(json!({ "message_id": m1 }))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let f = next_is(&mut ann_s, READ).await;
    assert_eq!(f.channel, Some(format!("private-individual.message.{}", ann.id)));
    assert_eq!(f.data, json!({ "reader_id": ben.id, "up_to": m1, "user_id": ann.id }));
    probe(&app, &cat, &ben, &mut ben_s).await;
    // A mark that does not move is not announced; one past the newest message is clamped to it.
    for upto in [m1.clone(), json!(1_000_000_000_000_i64)] {
        let res = call(&app, &ben, Method::POST, &read_ann, Some(json!({ "message_id": upto }))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    probe(&app, &cat, &ann, &mut ann_s).await;
    let page = get_json(&app, &ann, &format!("/api/users/{}/messages", ben.id)).await;
    assert_eq!(
        page["read_marks"],
        json!([{ "user_id": ben.id, "name": "ben", "up_to": m1 }]),
        "history carries the partner's read mark"
    );

    // A group: the other members hear it on their group channels; the reader does not.
    let gid = group(&app, &ann, "trio", &[&ben, &cat]).await;
    for s in [&mut ann_s, &mut ben_s, &mut cat_s] {
        next_is(s, "App\\Events\\AddedToGroup").await;
    }
    let g1 = say(&app, &ann, &format!("/api/groups/{gid}/messages"), "hello trio").await["id"].clone();
    for s in [&mut ann_s, &mut ben_s, &mut cat_s] {
        next_is(s, GROUP_MESSAGE).await;
    }
    let res = call(&app, &cat, Method::POST, &format!("/api/groups/{gid}/read"), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for (s, u) in [(&mut ann_s, &ann), (&mut ben_s, &ben)] {
        let f = next_is(s, READ).await;
        assert_eq!(f.channel, Some(format!("private-group.message.{}", u.id)));
        assert_eq!(f.data, json!({ "reader_id": cat.id, "up_to": g1, "group_id": gid }));
    }
    probe(&app, &ann, &cat, &mut cat_s).await;
    let page = get_json(&app, &ann, &format!("/api/groups/{gid}/messages")).await;
    let marks = page["read_marks"].as_array().expect("read_marks in a group's history");
    assert!(
        marks.contains(&json!({ "user_id": cat.id, "name": "cat", "up_to": g1 })),
        "{page}"
    );
    assert!(
        marks.iter().all(|m| m["user_id"] != ann.id),
        "the caller's own mark is left out"
    );

    // "All": read marks are kept but not announced, and its history lists none.
    let all = say(&app, &ann, "/api/groups/1/messages", "to everyone").await["id"].clone();
    for s in [&mut ann_s, &mut ben_s, &mut cat_s] {
        next_is(s, GROUP_MESSAGE).await;
    }
    let res = call(
        &app,
        &ben,
        Method::POST,
        "/api/groups/1/read",
        Some(json!({ "message_id": all })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    probe(&app, &cat, &ann, &mut ann_s).await;
    probe(&app, &ann, &cat, &mut cat_s).await;
    let page = get_json(&app, &ann, "/api/groups/1/messages").await;
    assert!(page.get("read_marks").is_none(), "{page}");
    assert_eq!(get_json(&app, &ben, "/api/groups").await["groups"][0]["unread"], 0);
}

async fn mentions_notify_named_members_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben, cat, dan) = (
        app.user("ann").await,
        app.user("Ben.Bell").await,
        app.user("cat").await,
        app.user("dan").await,
    );
    let mut sockets = Vec::new();
    for u in [&ben, &cat, &dan] {
        sockets.push(PusherClient::own_channels(&app, u).await);
    }
    let gid = group(&app, &ann, "crew", &[&ben, &cat]).await;
    for s in &mut sockets[..2] {
        next_is(s, "App\\Events\\AddedToGroup").await;
    }
    let body = "hi @ben.bell, @DAN and @nobody: ask @ann (and mail cat@example.com)";
    let m = say(&app, &ann, &format!("/api/groups/{gid}/messages"), body).await;
    assert_eq!(
        m["mentions"],
        json!([{ "id": ben.id, "name": "Ben.Bell" }]),
        "members only, by name key, never the sender"
    );
    let expected = json!({ "type": "mention", "from": { "id": ann.id, "name": "ann" },
                           "group": { "id": gid, "name": "crew" }, "message_id": m["id"] });
    // Live: the group message, then Mentioned, to the named member only.
    let g = next_is(&mut sockets[0], GROUP_MESSAGE).await;
    assert_eq!(g.data["message"]["mentions"], m["mentions"]);
    let f = next_is(&mut sockets[0], MENTIONED).await;
    assert_eq!(f.channel, Some(format!("private-group.message.{}", ben.id)));
    assert_eq!(f.data, expected);
    next_is(&mut sockets[1], GROUP_MESSAGE).await;
    probe(&app, &ann, &cat, &mut sockets[1]).await;
    probe(&app, &ann, &dan, &mut sockets[2]).await;
    // By long poll: a `mention` notification for the named member only.
    let mentions = |v: &Value| -> Vec<Value> {
        v["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "mention")
            .map(|n| {
                let mut n = n.clone();
                let o = n.as_object_mut().unwrap();
                o.remove("id");
                o.remove("created_at");
                n
            })
            .collect()
    };
    let poll = "/api/notifications?timeout=0";
    assert_eq!(mentions(&get_json(&app, &ben, poll).await), vec![expected]);
    let cat_n = get_json(&app, &cat, poll).await;
    assert!(
        cat_n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["message_id"] == m["id"]),
        "cat's poll answered with the group message: {cat_n}"
    );
    assert!(mentions(&cat_n).is_empty(), "{cat_n}");
    let dan_n = get_json(&app, &dan, poll).await;
    assert!(
        !dan_n["notifications"].as_array().unwrap().is_empty(),
        "dan got the probe: {dan_n}"
    );
    assert!(mentions(&dan_n).is_empty(), "a non-member named is plain text: {dan_n}");
    // At most 20 members per message: the rest stay plain text.
    let mut crowd = Vec::new();
    for i in 0..21 {
        crowd.push(app.user(&format!("m{i:02}")).await);
    }
    let crowd_gid = group(&app, &ann, "crowd", &crowd.iter().collect::<Vec<_>>()).await;
    let names: Vec<String> = (0..21).map(|i| format!("@m{i:02}")).collect();
    let m = say(
        &app,
        &ann,
        &format!("/api/groups/{crowd_gid}/messages"),
        &names.join(" "),
    )
    .await;
    let named: Vec<&str> = m["mentions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    let first_twenty: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    assert_eq!(named, first_twenty, "the first 20 names, in order");
    let last = get_json(&app, &crowd[20], poll).await;
    assert!(
        last["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["message_id"] == m["id"]),
        "the 21st got the message: {last}"
    );
    assert!(mentions(&last).is_empty(), "but no mention: {last}");
    assert!(!mentions(&get_json(&app, &crowd[19], poll).await).is_empty());
    // "All" counts as a group: everyone is a member there.
    let to_all = say(&app, &ann, "/api/groups/1/messages", "welcome @dan").await;
    assert_eq!(to_all["mentions"], json!([{ "id": dan.id, "name": "dan" }]));
    let dan_n = get_json(&app, &dan, poll).await;
    assert_eq!(mentions(&dan_n).len(), 1, "{dan_n}");
    assert_eq!(mentions(&dan_n)[0]["group"]["id"], 1);
}

async fn only_the_sender_edits_and_deletes_and_everyone_sees_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben, cat, dan) = (
        app.user("ann").await,
        app.user("ben").await,
        app.user("cat").await,
        app.user("dan").await,
    );
    let mut ann_s = PusherClient::own_channels(&app, &ann).await;
    let mut ben_s = PusherClient::own_channels(&app, &ben).await;
    let to_ben = format!("/api/users/{}/messages", ben.id);
    let keep = say(&app, &ann, &to_ben, "first").await;
    let m = say(&app, &ann, &to_ben, "teh typo").await;
    let id = m["id"].as_i64().unwrap();
    for _ in 0..2 {
        next_is(&mut ben_s, INDIVIDUAL_MESSAGE).await;
    }
    let path = format!("/api/messages/{id}");

    // Nobody but the sender; unknown messages are 404.
    let res = call(&app, &ben, Method::PATCH, &path, Some(json!({ "body": "mine now" }))).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_sender");
    let res = call(&app, &ben, Method::DELETE, &path, None).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_sender");
    let res = call(
        &app,
        &ann,
        Method::PATCH,
        "/api/messages/999999",
        Some(json!({ "body": "x" })),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    let res = call(&app, &ann, Method::PATCH, &path, Some(json!({ "body": "  " }))).await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_message"
    );

    // The edit reaches both participants live, although both sockets already had the message.
    let res = call(&app, &ann, Method::PATCH, &path, Some(json!({ "body": "the typo" }))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let edited = res.json::<Value>().await.unwrap()["message"].clone();
    assert_eq!(edited["body"], "the typo");
    assert!(edited["edited_at"].is_string(), "{edited}");
    assert_eq!(
        (edited["id"].clone(), edited["created_at"].clone()),
        (m["id"].clone(), m["created_at"].clone())
    );
    for (s, u) in [(&mut ben_s, &ben), (&mut ann_s, &ann)] {
        let f = next_is(s, UPDATED).await;
        assert_eq!(f.channel, Some(format!("private-individual.message.{}", u.id)));
        assert_eq!(f.data["message"], edited);
    }
    // History and backlog carry the current state.
    let page = get_json(&app, &ben, &format!("/api/users/{}/messages", ann.id)).await;
    assert_eq!(page["messages"][1], edited);
    let mut backlog = individual_socket(&app, &ben).await;
    let (first, _) = next_event(&mut backlog).await;
    assert_eq!(first.data["message"]["id"], keep["id"]);
    let (second, _) = next_event(&mut backlog).await;
    assert_eq!(
        (second.data["backlog"].clone(), second.data["message"].clone()),
        (json!(true), edited.clone())
    );

    // Deleting: gone live, from history, from the backlog and from the conversations list.
    let res = call(&app, &ann, Method::DELETE, &path, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for s in [&mut ben_s, &mut ann_s] {
        let f = next_is(s, DELETED).await;
        assert_eq!(f.data, json!({ "message_id": id, "user_id": ben.id }));
    }
    let page = get_json(&app, &ben, &format!("/api/users/{}/messages", ann.id)).await;
    let ids: Vec<&Value> = page["messages"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, vec![&keep["id"]]);
    let convs = get_json(&app, &ben, "/api/conversations").await;
    let with_ann = convs["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "user")
        .unwrap();
    assert_eq!(with_ann["last_message"]["id"], keep["id"]);
    let mut backlog = individual_socket(&app, &ben).await;
    let (first, _) = next_event(&mut backlog).await;
    assert_eq!(first.data["message"]["id"], keep["id"]);
    probe(&app, &cat, &ben, &mut backlog).await;
    next_is(&mut ben_s, INDIVIDUAL_MESSAGE).await;
    let res = call(&app, &ann, Method::PATCH, &path, Some(json!({ "body": "back?" }))).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");

    // A group: the members hear of the edit and the deletion on their group channels; others not.
    let gid = group(&app, &ann, "pair", &[&ben]).await;
    let mut dan_s = PusherClient::own_channels(&app, &dan).await;
    for s in [&mut ann_s, &mut ben_s] {
        next_is(s, "App\\Events\\AddedToGroup").await;
    }
    let g = say(&app, &ben, &format!("/api/groups/{gid}/messages"), "hey @ann").await;
    for s in [&mut ann_s, &mut ben_s] {
        next_is(s, GROUP_MESSAGE).await;
    }
    next_is(&mut ann_s, MENTIONED).await;
    let path = format!("/api/messages/{}", g["id"]);
    let res = call(&app, &ben, Method::PATCH, &path, Some(json!({ "body": "hey all" }))).await;
    assert_eq!(res.status(), StatusCode::OK);
    for (s, u) in [(&mut ann_s, &ann), (&mut ben_s, &ben)] {
        let f = next_is(s, UPDATED).await;
        assert_eq!(f.channel, Some(format!("private-group.message.{}", u.id)));
        assert_eq!(f.data["message"]["body"], "hey all");
        assert!(f.data["message"].get("mentions").is_none(), "mentions follow the body");
    }
    let res = call(&app, &ben, Method::DELETE, &path, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for s in [&mut ann_s, &mut ben_s] {
        let f = next_is(s, DELETED).await;
        assert_eq!(f.data, json!({ "message_id": g["id"], "group_id": gid }));
    }
    probe(&app, &cat, &dan, &mut dan_s).await;
    let n = get_json(&app, &ann, "/api/notifications?timeout=0").await;
    assert!(
        n["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["message_id"] != g["id"]),
        "the deleted message's notifications went with it: {n}"
    );
}

/// Fields that name a person in answers and events.
const PERSON_KEYS: [&str; 8] = [
    "sender",
    "from",
    "user",
    "user_id",
    "sender_id",
    "reader_id",
    "owner_id",
    "users",
];

/// Whether `v` names user `id` in a field that says who someone is.
fn names_user(v: &Value, id: i64) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| {
            let here = PERSON_KEYS.contains(&k.as_str())
                && (v == &json!(id) || v.get("id") == Some(&json!(id)) || v.get("user_id") == Some(&json!(id)));
            here || names_user(v, id)
        }),
        Value::Array(a) => a.iter().any(|v| names_user(v, id)),
        _ => false,
    }
}

/// Asserts that `what` (an answer or a frame) neither names `asker` nor carries its name.
fn hides(what: &str, v: &Value, asker: &TestUser, name: &str) {
    let text = v.to_string().to_lowercase();
    assert!(!text.contains(name), "{what} carries the asker's name: {text}");
    assert!(!names_user(v, asker.id), "{what} names the asker: {text}");
}

async fn anonymous_questions_hide_the_asker_from_everyone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.user("olga").await;
    let asker = app.user("quentin").await;
    let mia = app.user("mia").await;
    let admin = app.admin("adam").await;
    let viewers = [&owner, &mia, &admin];
    let mut sockets = Vec::new();
    for u in viewers {
        sockets.push(PusherClient::own_channels(&app, u).await);
    }
    let gid = group(&app, &owner, "lecture", &[&asker, &mia, &admin]).await;
    for s in &mut sockets {
        next_is(s, "App\\Events\\AddedToGroup").await;
    }
    let to_group = format!("/api/groups/{gid}/messages");
    let ask = |body: &str| json!({ "body": body, "anonymous": true, "client_id": format!("q-{}", body.len()) });

    // Off until the owner turns questions on; never in "All" or one-to-one.
    for path in [
        to_group.clone(),
        "/api/groups/1/messages".into(),
        format!("/api/users/{}/messages", mia.id),
    ] {
        let res = call(&app, &asker, Method::POST, &path, Some(ask("why?"))).await;
        assert_eq!(
            error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
            "questions_off",
            "{path}"
        );
    }
    let res = call(
        &app,
        &mia,
        Method::PATCH,
        &format!("/api/groups/{gid}"),
        Some(json!({ "questions": true })),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("/api/groups/{gid}"),
        Some(json!({ "questions": true })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["group"]["questions"], true);

    for s in &mut sockets {
        next_is(s, "App\\Events\\GroupUpdated").await;
    }
    let posted = post(
        &app,
        &asker,
        &to_group,
        ask("what does @mia think?"),
        StatusCode::CREATED,
    )
    .await;
    let q = posted["message"].clone();
    assert_eq!(q["sender"], Value::Null);
    let pseudonym = q["pseudonym"].as_str().expect("a pseudonym").to_owned();
    assert!(pseudonym.starts_with("anon-"), "{pseudonym}");
    assert!(q["client_id"].is_string(), "the asker's own answer keeps its client id");
    hides("the send answer", &q, &asker, "quentin");

    // Every frame each viewer's socket receives up to the question (and mia's mention).
    for s in &mut sockets {
        let (f, before) = next_event(s).await;
        assert_eq!(f.event, GROUP_MESSAGE);
        assert_eq!(f.data["message"]["pseudonym"], json!(pseudonym));
        assert!(f.data["message"].get("client_id").is_none(), "{:?}", f.raw);
        for frame in before.iter().chain([&f]) {
            hides("a frame", &frame.raw, &asker, "quentin");
            hides("a frame's data", &frame.data, &asker, "quentin");
        }
    }
    let mentioned = next_is(&mut sockets[1], MENTIONED).await;
    // Where questions are on, read marks are not shared: when a mark reaches a question could
    // tell who asked it.
    let res = call(&app, &asker, Method::POST, &format!("/api/groups/{gid}/read"), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        (mentioned.data["from"].clone(), mentioned.data["pseudonym"].clone()),
        (Value::Null, json!(pseudonym))
    );
    hides("Mentioned", &mentioned.data, &asker, "quentin");
    probe(&app, &mia, &owner, &mut sockets[0]).await;
    // The asker edits its own question: the update names nobody either.
    let res = call(
        &app,
        &asker,
        Method::PATCH,
        &format!("/api/messages/{}", q["id"]),
        Some(json!({ "body": "what does @mia think now?" })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    for s in &mut sockets {
        let f = next_is(s, UPDATED).await;
        assert_eq!(f.data["message"]["pseudonym"], json!(pseudonym));
        hides("MessageUpdated", &f.data, &asker, "quentin");
    }

    // Every answer the owner, a member and an admin can get about it.
    for viewer in viewers {
        for path in [
            to_group.clone(),
            format!("/api/groups/{gid}"),
            "/api/groups".into(),
            "/api/conversations".into(),
            "/api/notifications?timeout=0".into(),
            "/api/search?name=lect".into(),
        ] {
            let v = get_json(&app, viewer, &path).await;
            hides(&path, &v, &asker, "quentin");
            if path == to_group || path == "/api/conversations" || path.starts_with("/api/notifications") {
                assert!(v.to_string().contains(&pseudonym), "{path} shows the question: {v}");
            }
        }
    }
    let presence = get_json(&app, &admin, "/api/admin/presence").await;
    hides("admin presence", &presence, &asker, "quentin");
    let n = get_json(&app, &mia, "/api/notifications?after=0.0&timeout=0").await;
    let mention = n["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "mention")
        .cloned();
    let mention = mention.expect("mia was mentioned");
    assert_eq!(
        (mention["from"].clone(), mention["pseudonym"].clone()),
        (Value::Null, json!(pseudonym))
    );

    // An asker who names itself is mentioned as anyone naming it would be: a missing mention
    // would give it away.
    let own = post(&app, &asker, &to_group, ask("is @quentin here?"), StatusCode::CREATED).await["message"].clone();
    assert_eq!(own["mentions"], json!([{ "id": asker.id, "name": "quentin" }]));

    // Muting by pseudonym: the owner only; the asker's anonymous posts stop, its named ones work.
    let muted = format!("/api/groups/{gid}/muted");
    let res = call(
        &app,
        &mia,
        Method::POST,
        &muted,
        Some(json!({ "pseudonym": pseudonym })),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "not_owner");
    let res = call(
        &app,
        &owner,
        Method::POST,
        &muted,
        Some(json!({ "pseudonym": "anon-000000000000" })),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    let res = call(
        &app,
        &owner,
        Method::POST,
        &muted,
        Some(json!({ "pseudonym": pseudonym })),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list = get_json(&app, &owner, &muted).await;
    assert_eq!(list, json!({ "muted": [pseudonym] }));
    let res = call(&app, &asker, Method::POST, &to_group, Some(ask("again?"))).await;
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "muted");
    let other = post(&app, &mia, &to_group, ask("me too?"), StatusCode::CREATED).await["message"].clone();
    assert_ne!(other["pseudonym"], json!(pseudonym), "another asker, another pseudonym");
    let named = say(&app, &asker, &to_group, "named, I am quentin").await;
    assert!(
        names_user(&named, asker.id),
        "the check above can see an asker when there is one"
    );
    let res = call(&app, &owner, Method::DELETE, &format!("{muted}/{pseudonym}"), None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let again = post(&app, &asker, &to_group, ask("and now?"), StatusCode::CREATED).await["message"].clone();
    assert_eq!(
        again["pseudonym"],
        json!(pseudonym),
        "the same asker keeps its pseudonym in a group"
    );
}

backend_tests!(
    read_marks_are_announced_to_the_other_participants,
    mentions_notify_named_members_only,
    only_the_sender_edits_and_deletes_and_everyone_sees_it,
    anonymous_questions_hide_the_asker_from_everyone,
);
