//! Attachments: uploads typed by their bytes and capped while they stream, messages that carry
//! them (answer, history, backlog, live event), who may read them, the headers they are served
//! with, thumbnails, files deleted with their group and by the sweep. Pictures are in
//! `pictures.rs`.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, TestDb, TestUser, backend_tests, error_code, settings},
    pusher::PusherClient,
};

/// A multipart body with one part: `(Content-Type header, body)`.
pub(crate) fn multipart(field: &str, file_name: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "chatbox-test-boundary-7d1f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    app: &TestApp,
    user: &TestUser,
    file_name: &str,
    content_type: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let (ct, body) = multipart("file", file_name, content_type, bytes);
    user.client
        .post(app.url("/api/attachments"))
        .bearer_auth(&user.token)
        .header(header::CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .expect("upload")
}

/// Uploads and returns the `attachment` after checking for 201.
async fn uploaded(app: &TestApp, user: &TestUser, file_name: &str, content_type: &str, bytes: &[u8]) -> Value {
    let res = upload(app, user, file_name, content_type, bytes).await;
    assert_eq!(res.status(), StatusCode::CREATED, "upload {file_name}");
    res.json::<Value>().await.unwrap()["attachment"].clone()
}

pub(crate) async fn get(app: &TestApp, user: &TestUser, path: &str) -> reqwest::Response {
    user.client
        .get(app.url(path))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request")
}

pub(crate) async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> reqwest::Response {
    user.client
        .post(app.url(path))
        .bearer_auth(&user.token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Sends `attachment_ids` (and `body`) and returns the stored message after checking for 201.
async fn send(app: &TestApp, from: &TestUser, path: &str, body: &str, ids: &[&Value]) -> Value {
    let ids: Vec<&Value> = ids.iter().map(|a| &a["id"]).collect();
    let res = post(app, from, path, json!({ "body": body, "attachment_ids": ids })).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{path}");
    res.json::<Value>().await.unwrap()["message"].clone()
}

/// A photo-like PNG (a gradient, so it does not compress to nothing).
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7 % 256) as u8, (y * 13 % 256) as u8, ((x ^ y) % 256) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

pub(crate) fn header_of<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Stored files (not the temporary folder), by name.
pub(crate) fn stored_files(db: &TestDb) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&db.files)
        .expect("attachments folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn uploads_are_typed_by_their_bytes_and_served_safely(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("ann").await;
    let photo = png(800, 600);
    let a = uploaded(&app, &ann, "holiday.png", "text/html", &photo).await;
    assert_eq!(a["content_type"], "image/png", "sniffed, not the claimed text/html");
    assert_eq!(a["name"], "holiday.png");
    assert_eq!(a["size"], photo.len());
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["url"], format!("/api/attachments/{id}"));
    let res = get(&app, &ann, a["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, "content-type"), "image/png");
    assert_eq!(header_of(&res, "x-content-type-options"), "nosniff");
    assert!(header_of(&res, "content-security-policy").contains("sandbox"));
    assert!(header_of(&res, "content-disposition").starts_with("inline; filename=\"holiday.png\""));
    assert_eq!(res.bytes().await.unwrap().as_ref(), &photo[..], "served as uploaded");

    let thumb = get(
        &app,
        &ann,
        a["thumbnail_url"].as_str().expect("a picture has a thumbnail"),
    )
    .await;
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_eq!(header_of(&thumb, "x-content-type-options"), "nosniff");
    let thumb = thumb.bytes().await.unwrap();
    assert!(thumb.len() < photo.len(), "smaller: {} vs {}", thumb.len(), photo.len());
    let t = image::load_from_memory(&thumb).expect("the thumbnail is a picture");
    assert_eq!((t.width(), t.height()), (320, 240), "fits 320 px, keeps the aspect");

    let page = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>";
    let h = uploaded(&app, &ann, "r\u{e9}sum\u{e9} final.png", "image/png", page).await;
    let kind = h["content_type"].as_str().unwrap();
    assert!(kind == "text/plain" || kind == "application/octet-stream", "{kind}");
    assert!(h["thumbnail_url"].is_null(), "no thumbnail for what is not a picture");
    let res = get(&app, &ann, h["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let served = header_of(&res, "content-type");
    assert!(!served.contains("html") && !served.starts_with("image/"), "{served}");
    assert_eq!(header_of(&res, "x-content-type-options"), "nosniff");
    assert!(header_of(&res, "content-security-policy").contains("sandbox"));
    assert_eq!(
        header_of(&res, "content-disposition"),
        "attachment; filename=\"r_sum_ final.png\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20final.png"
    );
    let pdf = uploaded(&app, &ann, "../../notes.pdf", "image/png", b"%PDF-1.7\n%...").await;
    assert_eq!(pdf["content_type"], "application/pdf");
    assert_eq!(pdf["name"], "notes.pdf", "no path from the client's name");
    let res = get(&app, &ann, pdf["url"].as_str().unwrap()).await;
    assert!(header_of(&res, "content-disposition").starts_with("attachment;"));

    let code = error_code(
        upload(&app, &ann, "empty.txt", "text/plain", b"").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(code, "empty_file");
    let (ct, body) = multipart("other", "a.txt", "text/plain", b"hi");
    let res = ann
        .client
        .post(app.url("/api/attachments"))
        .bearer_auth(&ann.token)
        .header(header::CONTENT_TYPE, ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "missing_file");
    let anonymous = app.client.post(app.url("/api/attachments")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn uploads_over_the_cap_are_refused_and_leave_nothing(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.max_attachment_bytes = 64 * 1024;
    let app = TestApp::spawn_with(db, s).await;
    let ann = app.user("ann").await;
    let cap = 64 * 1024;
    for size in [cap + 1, 4 * cap] {
        let res = upload(&app, &ann, "big.bin", "application/octet-stream", &vec![7u8; size]).await;
        assert_eq!(
            error_code(res, StatusCode::PAYLOAD_TOO_LARGE).await,
            "payload_too_large",
            "{size} bytes"
        );
    }
    assert_eq!(stored_files(app.db()), Vec::<String>::new(), "nothing stored");
    let temps = std::fs::read_dir(app.db().files.join("tmp")).unwrap().count();
    assert_eq!(temps, 0, "no temporary file left");
    let exact = uploaded(&app, &ann, "exact.bin", "application/octet-stream", &vec![7u8; cap]).await;
    assert_eq!(exact["size"], cap, "exactly the cap is accepted");
    assert_eq!(stored_files(app.db()).len(), 1);
}

async fn pending_uploads_are_bounded_per_user(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let mut first = None;
    for i in 0..20 {
        let a = uploaded(&app, &ann, &format!("{i}.txt"), "text/plain", b"note").await;
        first.get_or_insert(a);
    }
    let res = upload(&app, &ann, "21.txt", "text/plain", b"note").await;
    assert_eq!(
        error_code(res, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_pending_uploads"
    );
    uploaded(&app, &ben, "mine.txt", "text/plain", b"note").await;
    send(
        &app,
        &ann,
        &format!("/api/users/{}/messages", ben.id),
        "",
        &[first.as_ref().unwrap()],
    )
    .await;
    uploaded(&app, &ann, "21.txt", "text/plain", b"note").await;
}

async fn messages_carry_their_attachments_everywhere(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let mut ben_socket = PusherClient::own_channels(&app, &ben).await;
    let photo = uploaded(&app, &ann, "cat.png", "image/png", &png(400, 300)).await;
    let notes = uploaded(&app, &ann, "notes.txt", "text/plain", b"bring snacks").await;
    let path = format!("/api/users/{}/messages", ben.id);
    let code = error_code(
        post(&app, &ann, &path, json!({ "body": "  " })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(code, "invalid_message", "an empty body needs an attachment");
    let message = send(&app, &ann, &path, "", &[&photo, &notes, &photo]).await;
    assert_eq!(message["body"], "");
    assert_eq!(
        message["attachments"],
        json!([photo, notes]),
        "in upload order, once each"
    );
    let event = ben_socket.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(event.data["message"], message, "the live event carries them");
    // Ben acknowledged nothing: a new socket gets the message again from the backlog.
    let mut later = PusherClient::connect(&app).await;
    later
        .subscribe(&app, &ben.token, &format!("private-individual.message.{}", ben.id))
        .await;
    let replayed = later.expect("App\\Events\\IndividualMessage").await;
    assert_eq!(replayed.data["backlog"], true);
    assert_eq!(replayed.data["message"], message, "the backlog carries them");
    for (reader, other) in [(&ann, ben.id), (&ben, ann.id)] {
        let history: Value = get(&app, reader, &format!("/api/users/{other}/messages"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(history["messages"][0], message, "history carries them");
    }
    let plain = send(&app, &ann, &path, "no files", &[]).await;
    assert_eq!(plain["attachments"], json!([]), "every message has the list");
}

async fn only_those_who_may_read_the_message_get_its_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben, cat) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let photo = uploaded(&app, &ann, "cat.png", "image/png", &png(500, 400)).await;
    let urls = [photo["url"].as_str().unwrap(), photo["thumbnail_url"].as_str().unwrap()];
    for url in urls {
        assert_eq!(
            get(&app, &ann, url).await.status(),
            StatusCode::OK,
            "the uploader before sending"
        );
        for other in [&ben, &cat] {
            assert_eq!(
                get(&app, other, url).await.status(),
                StatusCode::NOT_FOUND,
                "nobody else before sending"
            );
        }
    }
    send(
        &app,
        &ann,
        &format!("/api/users/{}/messages", ben.id),
        "look",
        &[&photo],
    )
    .await;
    for url in urls {
        assert_eq!(get(&app, &ann, url).await.status(), StatusCode::OK, "sender");
        assert_eq!(get(&app, &ben, url).await.status(), StatusCode::OK, "recipient");
        let res = get(&app, &cat, url).await;
        assert_eq!(
            error_code(res, StatusCode::NOT_FOUND).await,
            "not_found",
            "a third user"
        );
    }
    let unknown = format!("/api/attachments/{}", "0".repeat(32));
    assert_eq!(get(&app, &ann, &unknown).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&app, &ann, "/api/attachments/..%2F..%2Fchatbox.db").await.status(),
        StatusCode::NOT_FOUND
    );

    let res = post(
        &app,
        &ann,
        "/api/groups",
        json!({ "name": "pair", "member_ids": [ben.id] }),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    let doc = uploaded(&app, &ben, "plan.pdf", "application/pdf", b"%PDF-1.4\nplan").await;
    send(&app, &ben, &format!("/api/groups/{gid}/messages"), "the plan", &[&doc]).await;
    let url = doc["url"].as_str().unwrap();
    assert_eq!(get(&app, &ann, url).await.status(), StatusCode::OK, "a member");
    assert_eq!(get(&app, &ben, url).await.status(), StatusCode::OK, "the sender");
    assert_eq!(
        get(&app, &cat, url).await.status(),
        StatusCode::NOT_FOUND,
        "not a member"
    );
    let res = ann
        .client
        .delete(app.url(&format!("/api/groups/{gid}/members/{}", ben.id)))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, &ben, url).await.status(),
        StatusCode::NOT_FOUND,
        "no longer a member"
    );
}

async fn attachments_must_be_the_senders_own_and_unsent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let to_ben = format!("/api/users/{}/messages", ben.id);
    let to_ann = format!("/api/users/{}/messages", ann.id);
    let mine = uploaded(&app, &ann, "a.txt", "text/plain", b"ann's").await;
    let his = uploaded(&app, &ben, "b.txt", "text/plain", b"ben's").await;
    let code = |res| error_code(res, StatusCode::UNPROCESSABLE_ENTITY);
    let res = post(
        &app,
        &ben,
        &to_ann,
        json!({ "body": "x", "attachment_ids": [mine["id"]] }),
    )
    .await;
    assert_eq!(code(res).await, "invalid_attachment", "someone else's upload");
    let res = post(
        &app,
        &ann,
        &to_ben,
        json!({ "body": "x", "attachment_ids": [mine["id"], his["id"]] }),
    )
    .await;
    assert_eq!(code(res).await, "invalid_attachment", "one of them someone else's");
    let res = post(&app, &ann, &to_ben, json!({ "body": "x", "attachment_ids": ["nope"] })).await;
    assert_eq!(code(res).await, "invalid_attachment");
    let eleven: Vec<String> = (0..11).map(|i| format!("{i:032x}")).collect();
    let res = post(&app, &ann, &to_ben, json!({ "body": "x", "attachment_ids": eleven })).await;
    assert_eq!(code(res).await, "too_many_attachments");
    let history: Value = get(&app, &ann, &to_ben).await.json().await.unwrap();
    assert_eq!(history["messages"], json!([]), "refused sends stored nothing");
    let sent = send(&app, &ann, &to_ben, "mine", &[&mine]).await;
    assert_eq!(
        sent["attachments"][0]["id"], mine["id"],
        "the refused send left it unsent"
    );
    let res = post(
        &app,
        &ann,
        &to_ben,
        json!({ "body": "again", "attachment_ids": [mine["id"]] }),
    )
    .await;
    assert_eq!(code(res).await, "invalid_attachment", "already sent");
}

/// Deleting a message deletes its files at once (not only at the next sweep).
async fn files_go_with_their_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let photo = uploaded(&app, &ann, "view.png", "image/png", &png(640, 480)).await;
    let message = send(
        &app,
        &ann,
        &format!("/api/users/{}/messages", ben.id),
        "look",
        &[&photo],
    )
    .await;
    let id = photo["id"].as_str().unwrap().to_owned();
    assert!(stored_files(app.db()).contains(&id));
    let res = ann
        .client
        .delete(app.url(&format!("/api/messages/{}", message["id"])))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(stored_files(app.db()).is_empty(), "the file and its thumbnail are gone");
    assert_eq!(
        get(&app, &ben, photo["url"].as_str().unwrap()).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn files_go_with_their_group(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let res = post(
        &app,
        &ann,
        "/api/groups",
        json!({ "name": "trip", "member_ids": [ben.id] }),
    )
    .await;
    let gid = res.json::<Value>().await.unwrap()["group"]["id"].as_i64().unwrap();
    let photo = uploaded(&app, &ann, "view.png", "image/png", &png(640, 480)).await;
    let kept = uploaded(&app, &ann, "kept.txt", "text/plain", b"not sent").await;
    send(&app, &ann, &format!("/api/groups/{gid}/messages"), "", &[&photo]).await;
    let id = photo["id"].as_str().unwrap();
    let before = stored_files(app.db());
    assert!(
        before.contains(&id.to_owned()) && before.contains(&format!("{id}.thumb")),
        "{before:?}"
    );
    let res = ann
        .client
        .delete(app.url(&format!("/api/groups/{gid}")))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        stored_files(app.db()),
        vec![kept["id"].as_str().unwrap().to_owned()],
        "the group's files are gone"
    );
    assert_eq!(
        get(&app, &ann, photo["url"].as_str().unwrap()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &ann, kept["url"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
}

/// Moves an upload's creation `hours` into the past, straight in the database.
async fn age_upload(db: &TestDb, id: &str, hours: i64) {
    use sqlx::Connection;
    let at = chrono::Utc::now() - chrono::Duration::hours(hours);
    let sql = "UPDATE attachments SET created_at = ? WHERE id = ?";
    let done = if db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected()
    } else {
        let mut c = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected()
    };
    assert_eq!(done, 1);
}

/// Writes a file into the attachments folder, last modified `hours` ago.
fn stray_file(path: std::path::PathBuf, hours: u64) {
    let file = std::fs::File::create(&path).unwrap();
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
    file.set_modified(then).unwrap();
}

async fn the_sweep_removes_stale_uploads_and_stray_files(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ann = app.user("ann").await;
    let fresh = uploaded(&app, &ann, "fresh.txt", "text/plain", b"today").await;
    let stale = uploaded(&app, &ann, "stale.png", "image/png", &png(400, 400)).await;
    age_upload(app.db(), stale["id"].as_str().unwrap(), 25).await;
    let files = app.db().files.clone();
    let (old, new) = (format!("{:032x}", 1), format!("{:032x}", 2));
    stray_file(files.join(&old), 3);
    stray_file(files.join(&new), 0);
    stray_file(files.join("tmp").join("cut-off.part"), 3);
    stray_file(files.join("tmp").join("in-progress.part"), 0);
    // The sweep runs when a node starts, then hourly.
    let db = app.stop().await;
    let s = settings(&db);
    let app = TestApp::spawn_with(db, s).await;
    // Stray files are its last step.
    for _ in 0..200 {
        if !stored_files(app.db()).contains(&old) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut kept = vec![new.clone(), fresh["id"].as_str().unwrap().to_owned()];
    kept.sort();
    assert_eq!(
        stored_files(app.db()),
        kept,
        "the stale upload (and its thumbnail) and the old stray file are gone; the rest stays"
    );
    assert_eq!(
        get(&app, &ann, stale["url"].as_str().unwrap()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&app, &ann, fresh["url"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
    let temps: Vec<String> = std::fs::read_dir(files.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        temps,
        vec!["in-progress.part".to_owned()],
        "only the old temporary file is swept"
    );
    // Ann's bearer token is in the database: still signed in on the restarted node.
    assert_eq!(
        upload(&app, &ann, "again.txt", "text/plain", b"x").await.status(),
        StatusCode::CREATED
    );
    assert!(!stored_files(app.db()).contains(&old));
}

async fn the_openapi_document_has_every_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    for (path, method) in [
        ("/api/attachments", "post"),
        ("/api/attachments/{id}", "get"),
        ("/api/attachments/{id}/thumbnail", "get"),
        ("/api/me/avatar", "put"),
        ("/api/me/avatar", "delete"),
        ("/api/users/{id}/avatar/{avatar}", "get"),
        ("/api/groups/{id}/picture", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} documented");
    }
}

backend_tests!(
    files_go_with_their_message,
    the_openapi_document_has_every_route,
    the_sweep_removes_stale_uploads_and_stray_files,
    uploads_are_typed_by_their_bytes_and_served_safely,
    uploads_over_the_cap_are_refused_and_leave_nothing,
    pending_uploads_are_bounded_per_user,
    messages_carry_their_attachments_everywhere,
    only_those_who_may_read_the_message_get_its_files,
    attachments_must_be_the_senders_own_and_unsent,
    files_go_with_their_group,
);
