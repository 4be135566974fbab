//! Accounts: register, login, logout, me; their refusals; sessions and tokens.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestUser, backend_tests, chatbox_cli, error_code, new_client, settings};

async fn register_then_me_with_token_and_with_cookie(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .post(
            "/api/register",
            json!({"name": "Ann", "email": " Ann@Example.com ", "password": "correct horse"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["name"], "Ann");
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["is_admin"], false);
    assert!(body["user"]["created_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 64);

    // Bearer token, from a client without the cookie.
    let me: Value = new_client()
        .get(app.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], body["user"]["id"]);
    // Session cookie (the app's client kept it).
    let me: Value = app.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "ann@example.com");
}

async fn me_without_credentials_is_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(
        error_code(app.get("/api/me").await, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    let res = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth("f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "unauthenticated");
}

async fn duplicate_email_and_name_are_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("bob").await;
    let res = app
        .post(
            "/api/register",
            json!({"name": "other", "email": "BOB@example.com", "password": "password1"}),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "email_taken");
    let res = app
        .post(
            "/api/register",
            json!({"name": "BOB", "email": "bob2@example.com", "password": "password1"}),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "name_taken");
}

async fn invalid_registrations_are_422_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (body, code) in [
        (
            json!({"name": "a", "email": "not-an-email", "password": "password1"}),
            "invalid_email",
        ),
        (
            json!({"name": "a", "email": "a@example.com", "password": "short"}),
            "invalid_password",
        ),
        (
            json!({"name": "x".repeat(41), "email": "a@example.com", "password": "password1"}),
            "invalid_name",
        ),
        (
            json!({"name": "  ", "email": "a@example.com", "password": "password1"}),
            "invalid_name",
        ),
        (json!({"name": "a", "email": "a@example.com"}), "invalid_body"),
        (
            json!({"name": 5, "email": "a@example.com", "password": "password1"}),
            "invalid_body",
        ),
    ] {
        let res = app.post("/api/register", body.clone()).await;
        assert_eq!(error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await, code, "{body}");
    }
    // Nothing was half-written: the e-mail is still free.
    app.user("a").await;
}

async fn unreadable_bodies_get_clear_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let post = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/register"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let res = post("{\"name\": ", "application/json").await.unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "malformed_json");
    let res = post("name=a", "application/x-www-form-urlencoded").await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await,
        "unsupported_media_type"
    );
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(200_000));
    let res = app
        .client
        .post(app.url("/api/register"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::PAYLOAD_TOO_LARGE).await,
        "payload_too_large"
    );
    // A fresh connection: the server closes the one it refused the over-size body on.
    let res = new_client()
        .post(app.url("/api/register"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "malformed_json");
}

async fn wrong_password_and_unknown_email_get_the_same_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("carol").await;
    let wrong = app
        .post(
            "/api/login",
            json!({"email": "carol@example.com", "password": "not her password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = app
        .post(
            "/api/login",
            json!({"email": "nobody@example.com", "password": "password-carol"}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"]["code"], "invalid_credentials");
}

async fn repeated_failures_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.user("dave").await;
    for _ in 0..10 {
        let res = app
            .post(
                "/api/login",
                json!({"email": "dave@example.com", "password": "guess-guess"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked now, even with the right password.
    let res = app
        .post(
            "/api/login",
            json!({"email": "DAVE@example.com", "password": "password-dave"}),
        )
        .await;
    let retry_after: u64 = res.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0);
    assert_eq!(
        error_code(res, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
    // Other accounts are not affected.
    app.user("erin").await;
    let res = app
        .post(
            "/api/login",
            json!({"email": "erin@example.com", "password": "password-erin"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

fn session_cookie(res: &reqwest::Response) -> String {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("chatbox_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned()
}

async fn login_rotates_the_session_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .post(
            "/api/register",
            json!({"name": "fay", "email": "fay@example.com", "password": "password-fay"}),
        )
        .await;
    let before = session_cookie(&res);
    // Log in presenting the old session id (as a fixation attacker would have planted it).
    let res = new_client()
        .post(app.url("/api/login"))
        .header(header::COOKIE, &before)
        .json(&json!({"email": "fay@example.com", "password": "password-fay"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let after = session_cookie(&res);
    assert_ne!(before, after, "login must issue a new session id");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["name"], "fay");
    // The new id is signed in.
    let me = new_client()
        .get(app.url("/api/me"))
        .header(header::COOKIE, &after)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

async fn logout_ends_the_session_and_revokes_the_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.user("gus").await;
    let me: Value = user
        .client
        .get(app.url("/api/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["id"], user.id);
    // Bearer logout revokes that token only.
    let res = new_client()
        .post(app.url("/api/logout"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = new_client()
        .get(app.url("/api/me"))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The browser session is still on until it logs out itself.
    assert_eq!(
        user.client.get(app.url("/api/me")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let res = user.client.post(app.url("/api/logout")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        user.client.get(app.url("/api/me")).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn cross_site_cookie_writes_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.user("hal").await;
    let res = user
        .client
        .post(app.url("/api/logout"))
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "cross_site_request");
    let res = user
        .client
        .post(app.url("/api/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res, StatusCode::FORBIDDEN).await, "cross_site_request");
    // Still signed in: the forged request changed nothing.
    assert_eq!(
        user.client.get(app.url("/api/me")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // The server's own origin is fine.
    let res = user
        .client
        .post(app.url("/api/logout"))
        .header(header::ORIGIN, format!("http://{}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

async fn sessions_survive_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .post(
            "/api/register",
            json!({"name": "ivy", "email": "ivy@example.com", "password": "password-ivy"}),
        )
        .await;
    let cookie = session_cookie(&res);
    let db = app.stop().await;
    let s = settings(&db);
    let app = TestApp::spawn_with(db, s).await;
    let me = new_client()
        .get(app.url("/api/me"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the session is kept in the database, not in memory"
    );
}

/// Admin rights come from an operator (`chatbox admin grant`), never from registering an address
/// (on the previous main, registering an `ADMIN_EMAILS` address first made anyone admin).
async fn admin_rights_are_granted_by_the_operator_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boss = app.user("boss").await;
    let me = |u: &TestUser| u.client.get(app.url("/api/me")).bearer_auth(&u.token).send();
    let body: Value = me(&boss).await.unwrap().json().await.unwrap();
    assert_eq!(body["user"]["is_admin"], false, "registering makes nobody admin");
    let stats = || {
        boss.client
            .get(app.url("/api/admin/stats"))
            .bearer_auth(&boss.token)
            .send()
    };
    assert_eq!(stats().await.unwrap().status(), StatusCode::FORBIDDEN);

    let out = chatbox_cli(app.db(), &["admin", "grant", "Boss@Example.com"]);
    assert!(out.contains("is now an admin"), "{out}");
    let body: Value = me(&boss).await.unwrap().json().await.unwrap();
    assert_eq!(body["user"]["is_admin"], true);
    assert_eq!(stats().await.unwrap().status(), StatusCode::OK);
    let list = chatbox_cli(app.db(), &["admin", "list"]);
    assert!(list.contains("boss@example.com"), "{list}");

    chatbox_cli(app.db(), &["admin", "revoke", &boss.id.to_string()]);
    assert_eq!(
        stats().await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "revoked at once"
    );
    assert!(chatbox_cli(app.db(), &["admin", "list"]).contains("no admins"));
}

backend_tests!(
    register_then_me_with_token_and_with_cookie,
    me_without_credentials_is_401,
    duplicate_email_and_name_are_409,
    invalid_registrations_are_422_and_store_nothing,
    unreadable_bodies_get_clear_errors,
    wrong_password_and_unknown_email_get_the_same_401,
    repeated_failures_are_throttled,
    login_rotates_the_session_id,
    logout_ends_the_session_and_revokes_the_token,
    cross_site_cookie_writes_are_refused,
    sessions_survive_a_restart,
    admin_rights_are_granted_by_the_operator_only,
);
