//! Sends arbitrary bodies to the HTTP routes that read a JSON (or form) body.
//!
//! The application is built once, on first use, in a SQLite file in a temporary directory, with a
//! Tokio runtime kept in a static. Set-up registers the caller (whose bearer token is used) and a
//! second user, and the caller creates a group with that user, so paths naming a user or group id
//! reach their handlers.
//!
//! Input layout: the first byte picks a route (`ROUTES[byte % ROUTES.len()]`), the remaining bytes
//! are the request body. Each input is sent twice, with and without `Authorization: Bearer`.
//! A 5xx answer (or a panic anywhere in the stack) is a failure.

#![no_main]

use std::{
    net::SocketAddr,
    sync::{LazyLock, Mutex},
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::connect_info::MockConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use chatbox::{
    app::App,
    config::{Config, LogFormat, Settings},
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// How a route's body is labelled.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Json,
    Form,
}

/// Method, path template (`{me}`, `{other}`, `{group}` are replaced by the set-up's ids), body kind.
const ROUTES: &[(Method, &str, Kind)] = &[
    (Method::POST, "/api/register", Kind::Json),
    (Method::POST, "/api/login", Kind::Json),
    (Method::POST, "/api/users/{other}/messages", Kind::Json),
    (Method::POST, "/api/users/{me}/messages", Kind::Json),
    (Method::POST, "/api/groups", Kind::Json),
    (Method::POST, "/api/groups/{group}/messages", Kind::Json),
    (Method::POST, "/api/groups/{group}/members", Kind::Json),
    (Method::PATCH, "/api/groups/{group}", Kind::Json),
    (Method::POST, "/api/friends", Kind::Json),
    (Method::POST, "/api/delivery/ack", Kind::Json),
    (Method::POST, "/broadcasting/auth", Kind::Json),
    (Method::POST, "/broadcasting/auth", Kind::Form),
    (Method::POST, "/api/users/{other}/read", Kind::Json),
    (Method::POST, "/api/groups/{group}/read", Kind::Json),
];

struct Fixture {
    rt: Runtime,
    router: Router,
    token: String,
    /// `CHATBOX_FUZZ_VERBOSE` is set: print every request's status (to see which inputs get past
    /// validation when running a corpus or a crash input).
    verbose: bool,
    /// Each route's path with the ids filled in.
    paths: Vec<String>,
    /// Kept alive: the router's state shares the app's channels, and the database lives here.
    _app: Mutex<App>,
    _dir: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(setup);

fn settings(database_url: String) -> Settings {
    Settings {
        database_url,
        redis_url: None,
        redis_prefix: "chatbox:".into(),
        bind: "127.0.0.1:0".into(),
        pusher_app_id: "fuzz-app".into(),
        pusher_app_key: "fuzz-key".into(),
        pusher_app_secret: Some("fuzz-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
        admin_emails: None,
        token_ttl_days: 30,
        activity_timeout_secs: 120,
        allowed_origins: String::new(),
        cookie_secure: false,
        db_max_connections: 4,
        log_format: LogFormat::Text,
        no_worker: true,
        queue_visibility_secs: 3,
        max_connections_per_ip: 1000,
        max_connections: 50_000,
        http_header_timeout_secs: 10,
        http_body_timeout_secs: 30,
        trusted_proxies: String::new(),
        // Beside the fixture's SQLite file, in its temporary folder.
        attachments_dir: None,
        max_attachment_bytes: 10 * 1024 * 1024,
        oidc_issuer: None,
        oidc_client_id: None,
        oidc_client_secret: None,
        oidc_redirect_url: None,
        oidc_name: None,
        presence_max_members: chatbox::config::DEFAULT_PRESENCE_MAX_MEMBERS,
        auth_host: None,
        auth_endpoint: "/broadcasting/auth".into(),
        redis_broadcast_prefix: None,
        echo_clients: String::new(),
        echo_config: None,
    }
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let res = router.clone().oneshot(req).await.expect("the router is infallible");
    let status = res.status();
    let body = to_bytes(res.into_body(), usize::MAX).await.expect("response body");
    (status, body.to_vec())
}

async fn post_json(router: &Router, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Body::from(body.to_string())).expect("request");
    let (status, body) = call(router, req).await;
    assert!(
        status.is_success(),
        "set-up {path} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("set-up answer is JSON")
}

async fn register(router: &Router, name: &str) -> (i64, String) {
    let body = json!({ "name": name, "email": format!("{name}@example.com"), "password": format!("password-{name}") });
    let v = post_json(router, "/api/register", None, body).await;
    (
        v["user"]["id"].as_i64().expect("user id"),
        v["token"].as_str().expect("token").to_owned(),
    )
}

fn setup() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::Builder::new()
        .prefix("chatbox-fuzz-")
        .tempdir()
        .expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("chatbox.db").display());
    let config = Config::from_settings(settings(url)).expect("valid config");
    let (app, router, token, me, other, group) = rt.block_on(async {
        let app = App::build(config).await.expect("app builds");
        // Handlers that count the client's address need a peer, as the listener gives them.
        let router = app
            .router()
            .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let (me, token) = register(&router, "fuzzer").await;
        let (other, _) = register(&router, "other").await;
        let v = post_json(
            &router,
            "/api/groups",
            Some(&token),
            json!({ "name": "fuzz group", "member_ids": [other] }),
        )
        .await;
        let group = v["group"]["id"].as_i64().expect("group id");
        (app, router, token, me, other, group)
    });
    let paths = ROUTES
        .iter()
        .map(|(_, p, _)| {
            p.replace("{me}", &me.to_string())
                .replace("{other}", &other.to_string())
                .replace("{group}", &group.to_string())
        })
        .collect();
    Fixture {
        rt,
        router,
        token,
        verbose: std::env::var_os("CHATBOX_FUZZ_VERBOSE").is_some(),
        paths,
        _app: Mutex::new(app),
        _dir: dir,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let f = &*FIXTURE;
    let index = usize::from(selector) % ROUTES.len();
    let (method, _, kind) = &ROUTES[index];
    let path = &f.paths[index];
    let content_type = match kind {
        Kind::Json => "application/json",
        Kind::Form => "application/x-www-form-urlencoded",
    };
    for with_token in [true, false] {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path.as_str())
            .header(header::CONTENT_TYPE, content_type);
        if with_token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", f.token));
        }
        let req = req.body(Body::from(body.to_vec())).expect("request");
        let (status, answer) = f.rt.block_on(call(&f.router, req));
        if f.verbose {
            eprintln!(
                "{method} {path} ({kind:?}, bearer: {with_token}) -> {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        if status.is_server_error() {
            panic!(
                "{method} {path} ({kind:?}, bearer: {with_token}) answered {status}\n\
                 request body: {:?}\nresponse body: {}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&answer),
            );
        }
    }
});
