//! Sign-in with OpenID Connect against a fake provider these tests run on 127.0.0.1: discovery
//! document, key set, and a token endpoint that checks the client's secret and the PKCE verifier
//! against the challenge of the authorization request. The test plays the browser: it follows
//! `/auth/oidc/login` to the provider's authorization URL, reads `state`, `nonce` and
//! `code_challenge` there, has the provider issue a code with the ID token it chooses, and calls
//! the callback.

use std::collections::HashMap;

use chrono::Duration;
use openidconnect::url::Url;
use reqwest::{Client, StatusCode, header, redirect::Policy};
use serde_json::{Value, json};

use crate::fake_oidc::{CLIENT_ID, CLIENT_SECRET, Claims, FakeProvider, REDIRECT_URL};
use crate::helpers::{Backend, TestApp, TestDb, backend_tests, error_code, new_client, settings};

/// A browser: keeps cookies, does not follow redirects.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// A sign-in the browser started: the authorization request's parameters, and the
/// `chatbox_oidc` cookie it was given.
struct Started {
    state: String,
    nonce: String,
    challenge: String,
    cookie: String,
}

struct Oidc {
    app: TestApp,
    provider: FakeProvider,
}

impl Oidc {
    async fn spawn(backend: Backend) -> Self {
        let provider = FakeProvider::start().await;
        let db = TestDb::new(&backend);
        let mut s = settings(&db);
        s.oidc_issuer = Some(provider.issuer.clone());
        s.oidc_client_id = Some(CLIENT_ID.into());
        s.oidc_client_secret = Some(CLIENT_SECRET.into());
        s.oidc_redirect_url = Some(REDIRECT_URL.into());
        s.oidc_name = Some("Google".into());
        let app = TestApp::spawn_with(db, s).await;
        Self { app, provider }
    }

    /// `GET /auth/oidc/login` → the provider's authorization URL, checked and read.
    async fn start(&self, browser: &Client) -> Started {
        let res = browser.get(self.app.url("/auth/oidc/login")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND);
        let cookie = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("chatbox_oidc="))
            .expect("binding cookie")
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/auth/oidc"),
            "{cookie}"
        );
        let location = res.headers()[header::LOCATION].to_str().unwrap();
        let url = Url::parse(location).unwrap();
        assert!(
            location.starts_with(&format!("{}/authorize?", self.provider.issuer)),
            "{location}"
        );
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["redirect_uri"], REDIRECT_URL);
        assert_eq!(q["code_challenge_method"], "S256");
        let scopes: Vec<&str> = q["scope"].split(' ').collect();
        assert!(scopes.contains(&"openid") && scopes.contains(&"email"), "{scopes:?}");
        let value = cookie.split(';').next().unwrap().to_owned();
        Started {
            state: q["state"].clone(),
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            cookie: value,
        }
    }

    /// The provider's redirect back with `code` for `claims`, as `browser` follows it.
    async fn finish(&self, browser: &Client, started: &Started, code: &str, claims: &Claims) -> reqwest::Response {
        let token = claims.sign(&self.provider.issuer, &started.nonce);
        self.provider.grant(code, &started.challenge, token);
        self.callback(browser, code, &started.state).await
    }

    async fn callback(&self, browser: &Client, code: &str, state: &str) -> reqwest::Response {
        let url =
            Url::parse_with_params(&self.app.url("/auth/oidc/callback"), [("code", code), ("state", state)]).unwrap();
        browser.get(url).send().await.unwrap()
    }

    /// A whole sign-in for `claims` in a new browser: that browser, signed in.
    async fn sign_in(&self, code: &str, claims: &Claims) -> (Client, Value) {
        let browser = browser();
        let started = self.start(&browser).await;
        let res = self.finish(&browser, &started, code, claims).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(res.headers()[header::LOCATION], "/");
        let cookies: Vec<&str> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(cookies.iter().any(|c| c.starts_with("chatbox_session=")), "{cookies:?}");
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("chatbox_oidc=;") && c.contains("Max-Age=0")),
            "the binding cookie is spent: {cookies:?}"
        );
        let me = browser.get(self.app.url("/api/me")).send().await.unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        (browser, me["user"].clone())
    }

    /// How many bearer tokens `user` holds, read from the database (the callback keeps the
    /// token it issues in the session only, as a cookie login does).
    async fn tokens_of(&self, user: &Value) -> i64 {
        let (db, id) = (self.app.db(), user["id"].as_i64().expect("id"));
        let sql = "SELECT COUNT(*) FROM api_tokens WHERE user_id = ?";
        if db.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).bind(id).fetch_one(&pool).await.unwrap()
        } else {
            let pool = sqlx::MySqlPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).bind(id).fetch_one(&pool).await.unwrap()
        }
    }

    /// How many accounts exist, as a signed-in user sees them (the watcher included).
    async fn accounts(&self, watcher: &crate::helpers::TestUser) -> usize {
        let res = watcher.client.get(self.app.url("/api/users")).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        body["users"].as_array().expect("users").len()
    }
}

async fn a_new_user_is_created_signed_in_and_found_again(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let claims = Claims::of("sub-1").email("ann@example.com", true);
    let (browser, user) = oidc.sign_in("code-1", &claims).await;
    assert_eq!(user["name"], "Ann Lee");
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(
        oidc.tokens_of(&user).await,
        1,
        "a bearer token was issued with the session"
    );
    // The session works for what a signed-in page does next.
    let res = browser.get(oidc.app.url("/api/groups")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Signing out of that session revokes the token issued with it, as after a password login.
    let signed_out = browser.post(oidc.app.url("/api/logout")).send().await.unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    assert_eq!(oidc.tokens_of(&user).await, 0);
    // Such an account has no password: password login is refused cleanly, whatever is typed.
    for password in ["!no-password", "", "password123"] {
        let res = oidc
            .app
            .post("/api/login", json!({"email": "ann@example.com", "password": password}))
            .await;
        assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_credentials");
    }
    // The same subject signs in to the same account, even with another name and e-mail now.
    let mut again = Claims::of("sub-1").email("ann.lee@example.org", true);
    again.name = Some("Someone Else".into());
    let (_, user2) = oidc.sign_in("code-2", &again).await;
    assert_eq!(user2["id"], user["id"]);
    // Another subject with the same name gets an account of its own, with a free name and,
    // its e-mail being unverified, a placeholder address.
    let (_, other) = oidc
        .sign_in("code-3", &Claims::of("sub-2").email("x@example.com", false))
        .await;
    assert_ne!(other["id"], user["id"]);
    assert_eq!(other["name"], "Ann Lee 2");
    assert!(other["email"].as_str().unwrap().ends_with("@users.invalid"), "{other}");
    let res = oidc
        .app
        .post(
            "/api/register",
            json!({"name": "x", "email": "x@example.com", "password": "password-x"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "an unverified e-mail is not taken");
}

async fn a_verified_email_links_to_the_existing_account(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let bob = oidc.app.user("bob").await;
    let claims = Claims::of("google-bob").email("Bob@Example.com", true);
    let (browser, user) = oidc.sign_in("code-1", &claims).await;
    assert_eq!(user["id"], bob.id, "linked to the account with that e-mail");
    assert_eq!(user["name"], "bob");
    // The password whoever registered the address chose stops working, and what it issued ends.
    let res = oidc
        .app
        .post(
            "/api/login",
            json!({"email": "bob@example.com", "password": "password-bob"}),
        )
        .await;
    assert_eq!(error_code(res, StatusCode::UNAUTHORIZED).await, "invalid_credentials");
    let res = new_client()
        .get(oidc.app.url("/api/me"))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the old token is revoked");
    let res = bob.client.get(oidc.app.url("/api/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the old session is ended");
    let res = browser.get(oidc.app.url("/api/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the new session works");
    // From now on the identity finds it, whatever e-mail the provider reports.
    let (_, again) = oidc
        .sign_in("code-2", &Claims::of("google-bob").email("new@example.com", true))
        .await;
    assert_eq!(again["id"], bob.id);
}

async fn an_unverified_email_does_not_link(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let carol = oidc.app.user("carol").await;
    let (_, user) = oidc
        .sign_in("code-1", &Claims::of("someone").email("carol@example.com", false))
        .await;
    assert_ne!(user["id"], carol.id, "a new account, not carol's");
    assert_ne!(user["email"], "carol@example.com");
    // Carol's account is untouched.
    let res = oidc
        .app
        .post(
            "/api/login",
            json!({"email": "carol@example.com", "password": "password-carol"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(oidc.accounts(&carol).await, 2);
}

/// A callback for `claims` is refused with `code`: no session, no account.
async fn refused(oidc: &Oidc, watcher: &crate::helpers::TestUser, claims: Claims, code: &str) {
    let browser = browser();
    let started = oidc.start(&browser).await;
    let before = oidc.accounts(watcher).await;
    let res = oidc.finish(&browser, &started, "the-code", &claims).await;
    assert_refused(oidc, &browser, res, code).await;
    assert_eq!(oidc.accounts(watcher).await, before, "no account was created");
}

async fn assert_refused(oidc: &Oidc, browser: &Client, res: reqwest::Response, code: &str) {
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[header::LOCATION], format!("/?oidc_error={code}").as_str());
    let res = browser.get(oidc.app.url("/api/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no session");
}

async fn forged_and_unfit_id_tokens_are_refused(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let watcher = oidc.app.user("watcher").await;
    let claims = || Claims::of("mallory").email("watcher@example.com", true);
    let mut other_key = claims();
    other_key.key = 1;
    refused(&oidc, &watcher, other_key, "invalid").await;
    let mut wrong_audience = claims();
    wrong_audience.audience = "another-client".into();
    refused(&oidc, &watcher, wrong_audience, "invalid").await;
    let mut expired = claims();
    expired.expires_in = Duration::minutes(-2);
    refused(&oidc, &watcher, expired, "invalid").await;
    let mut wrong_nonce = claims();
    wrong_nonce.nonce = Some("a-nonce-from-another-sign-in".into());
    refused(&oidc, &watcher, wrong_nonce, "invalid").await;
    // None of these linked the watcher's account: its password still works.
    let res = oidc
        .app
        .post(
            "/api/login",
            json!({"email": "watcher@example.com", "password": "password-watcher"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn a_state_is_used_once_by_the_browser_that_started_it(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let watcher = oidc.app.user("watcher").await;
    let browser = browser();
    let started = oidc.start(&browser).await;
    let claims = Claims::of("sub-1").email("dan@example.com", true);
    // From another browser (no binding cookie): refused, and the sign-in is not spent.
    let stranger = self::browser();
    let token = claims.sign(&oidc.provider.issuer, &started.nonce);
    oidc.provider.grant("code-1", &started.challenge, token);
    let res = oidc.callback(&stranger, "code-1", &started.state).await;
    assert_refused(&oidc, &stranger, res, "expired").await;
    // The browser that started it signs in.
    let res = oidc.callback(&browser, "code-1", &started.state).await;
    assert_eq!(res.headers()[header::LOCATION], "/");
    assert_eq!(oidc.accounts(&watcher).await, 2);
    // The same callback replayed, with the binding cookie and a fresh code: refused.
    let replay = self::browser();
    let token = claims.sign(&oidc.provider.issuer, &started.nonce);
    oidc.provider.grant("code-2", &started.challenge, token);
    let url = Url::parse_with_params(
        &oidc.app.url("/auth/oidc/callback"),
        [("code", "code-2"), ("state", started.state.as_str())],
    )
    .unwrap();
    let res = replay
        .get(url)
        .header(header::COOKIE, &started.cookie)
        .send()
        .await
        .unwrap();
    assert_refused(&oidc, &replay, res, "expired").await;
    // An unknown state, and the provider's own refusal.
    let other = self::browser();
    let started = oidc.start(&other).await;
    let res = oidc.callback(&other, "code-3", "not-a-state-we-made").await;
    assert_refused(&oidc, &other, res, "expired").await;
    let url = Url::parse_with_params(
        &oidc.app.url("/auth/oidc/callback"),
        [("error", "access_denied"), ("state", started.state.as_str())],
    )
    .unwrap();
    let res = other.get(url).send().await.unwrap();
    assert_refused(&oidc, &other, res, "denied").await;
    // A code the provider does not know (or a wrong PKCE verifier): the provider refuses it.
    let started = oidc.start(&other).await;
    let res = oidc.callback(&other, "never-issued", &started.state).await;
    assert_refused(&oidc, &other, res, "refused").await;
    assert_eq!(oidc.accounts(&watcher).await, 2, "no account was created");
}

async fn rotated_provider_keys_are_fetched_again(backend: Backend) {
    let oidc = Oidc::spawn(backend).await;
    let (_, first) = oidc.sign_in("code-1", &Claims::of("sub-1")).await;
    // The provider replaces its key after the server discovered it: a token signed with the new
    // key names a key id the server has not seen, so it fetches the keys again, once.
    oidc.provider.rotate_to(1, "key-2");
    let mut rotated = Claims::of("sub-1");
    rotated.key = 1;
    rotated.kid = "key-2";
    let (_, again) = oidc.sign_in("code-2", &rotated).await;
    assert_eq!(again["id"], first["id"]);
    // The old key is gone from the provider's set: a token signed with it is refused.
    let watcher = oidc.app.user("watcher").await;
    refused(&oidc, &watcher, Claims::of("sub-1"), "invalid").await;
}

backend_tests!(
    rotated_provider_keys_are_fetched_again,
    a_new_user_is_created_signed_in_and_found_again,
    a_verified_email_links_to_the_existing_account,
    an_unverified_email_does_not_link,
    forged_and_unfit_id_tokens_are_refused,
    a_state_is_used_once_by_the_browser_that_started_it,
);

#[tokio::test]
async fn without_the_settings_the_routes_are_404_and_config_says_so() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"] {
        let res = browser().get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let config: Value = app.get("/api/config").await.json().await.unwrap();
    assert_eq!(config["oidc"], json!({"enabled": false}));
    let doc: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    for path in ["/auth/oidc/login", "/auth/oidc/callback"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} is documented");
    }
}

#[tokio::test]
async fn config_names_the_provider_and_an_unreachable_one_answers_503() {
    let oidc = Oidc::spawn(Backend::Sqlite).await;
    let config: Value = oidc.app.get("/api/config").await.json().await.unwrap();
    assert_eq!(
        config["oidc"],
        json!({"enabled": true, "name": "Google", "login_url": "/auth/oidc/login"})
    );
    // A provider nobody listens for.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let db = TestDb::new(&Backend::Sqlite);
    let mut s = settings(&db);
    s.oidc_issuer = Some(issuer);
    s.oidc_client_id = Some(CLIENT_ID.into());
    s.oidc_client_secret = Some(CLIENT_SECRET.into());
    s.oidc_redirect_url = Some(REDIRECT_URL.into());
    let app = TestApp::spawn_with(db, s).await;
    let res = browser().get(app.url("/auth/oidc/login")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(res.text().await.unwrap().contains("cannot be reached"));
}

/// Each sign-in started keeps a row for 10 minutes: one address starts at most 600 of them in
/// 10 minutes (`OIDC_LOGINS_PER_ADDRESS`), then 429 at once, without a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_started_are_limited_per_address() {
    let oidc = Oidc::spawn(Backend::Sqlite).await;
    let browser = browser();
    let url = oidc.app.url("/auth/oidc/login");
    for n in 0..600 {
        let res = browser.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "sign-in {n}");
    }
    let res = browser.get(&url).send().await.unwrap();
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        error_code(res, StatusCode::TOO_MANY_REQUESTS).await,
        "too_many_attempts"
    );
}
