//! `spawn_app`: the real application on a random port, with an isolated database.

use std::net::SocketAddr;

use chatbox::{
    app::App,
    config::{Config, LogFormat, Settings},
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Which backing services a test runs on: the embedded default (SQLite, in-process queue and
/// bus) or production (MySQL and Redis).
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// MySQL server URL without a database (`mysql://root@127.0.0.1:3306`) and Redis URL.
    MySql(String, String),
}

impl Backend {
    /// The production backend from `CHATBOX_TEST_MYSQL_URL` and `CHATBOX_TEST_REDIS_URL`. Unset:
    /// `None` with a loud note, or a panic under `CI=true`, where skipping would hide that MySQL
    /// and Redis were never tested.
    pub fn mysql() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("CHATBOX_TEST_MYSQL_URL"), var("CHATBOX_TEST_REDIS_URL")) {
            (Some(mysql), Some(redis)) => Some(Self::MySql(mysql.trim_end_matches('/').to_owned(), redis)),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                "CI=true but CHATBOX_TEST_MYSQL_URL or CHATBOX_TEST_REDIS_URL is not set: \
                 the MySQL + Redis suite must run in CI"
            ),
            _ => {
                eprintln!(
                    "SKIPPED on MySQL + Redis: set CHATBOX_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 \
                     and CHATBOX_TEST_REDIS_URL=redis://127.0.0.1:6379 to run it"
                );
                None
            }
        }
    }
}

/// Declares `async fn name(backend: Backend)` tests to run on both backends: generates
/// `sqlite::name` and `mysql::name`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(chatbox_without_mysql_redis, ignore = "SKIPPED: set CHATBOX_TEST_MYSQL_URL and CHATBOX_TEST_REDIS_URL to run it on MySQL + Redis")]
                async fn $name() {
                    if let Some(backend) = $crate::helpers::Backend::mysql() {
                        super::$name(backend).await
                    }
                }
            )*
        }
    };
}
pub(crate) use backend_tests;

/// A database for one test: a fresh SQLite file, or a uniquely named MySQL database that is
/// dropped when the test ends.
pub struct TestDb {
    pub url: String,
    /// Redis for the production backend, and the key prefix isolating this test.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// ATTACHMENTS_DIR of this test's servers (every node shares it, as a shared volume would).
    pub files: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
    mysql_server: Option<String>,
    name: String,
}

impl TestDb {
    pub fn new(backend: &Backend) -> Self {
        let name = format!("chatbox_test_{:016x}", rand_u64());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("chatbox.db").display());
                Self {
                    url,
                    redis_url: None,
                    redis_prefix: String::new(),
                    files: dir.path().join("attachments"),
                    _dir: Some(dir),
                    mysql_server: None,
                    name,
                }
            }
            Backend::MySql(server, redis) => {
                let dir = tempfile::tempdir().expect("temp dir");
                Self {
                    url: format!("{server}/{name}"),
                    redis_url: Some(redis.clone()),
                    redis_prefix: format!("{name}:"),
                    files: dir.path().join("attachments"),
                    _dir: Some(dir),
                    mysql_server: Some(server.clone()),
                    name,
                }
            }
        }
    }
}

impl TestDb {
    /// The same database and Redis for another node; the original keeps ownership (and drops it).
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            files: self.files.clone(),
            _dir: None,
            mysql_server: None,
            name: String::new(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(server) = self.mysql_server.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        // Drop runs outside async code paths: use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::MySqlConnection::connect(&server).await.ok()?;
                sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{name}`")),
                )
                .await
                .ok()
            })
        })
        .join();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The Pusher app secret test servers sign with.
pub const TEST_SECRET: &str = "test-secret-5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f";

/// Runs `chatbox {args}` on `db` (as an operator would on the server's database) and returns its
/// standard output; panics with its standard error when it fails.
pub fn chatbox_cli(db: &TestDb, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("ATTACHMENTS_DIR", &db.files)
        .env_remove("REDIS_URL")
        .env_remove("ADMIN_EMAILS")
        .env_remove("PUSHER_APP_SECRET")
        .env("RUST_LOG", "error")
        .output()
        .expect("run chatbox");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chatbox {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Settings as the command line would give them, for a test server on a random port.
pub fn settings(db: &TestDb) -> Settings {
    Settings {
        database_url: db.url.clone(),
        redis_url: db.redis_url.clone(),
        redis_prefix: if db.redis_prefix.is_empty() {
            "chatbox:".into()
        } else {
            db.redis_prefix.clone()
        },
        bind: "127.0.0.1:0".into(),
        pusher_app_id: "test-app".into(),
        pusher_app_key: "test-key".into(),
        pusher_app_secret: Some(TEST_SECRET.into()),
        admin_emails: None,
        token_ttl_days: 30,
        activity_timeout_secs: 120,
        allowed_origins: String::new(),
        cookie_secure: false,
        db_max_connections: 8,
        log_format: LogFormat::Text,
        no_worker: false,
        queue_visibility_secs: 3,
        max_connections_per_ip: 1000,
        max_connections: 50_000,
        http_header_timeout_secs: 10,
        http_body_timeout_secs: 30,
        trusted_proxies: String::new(),
        attachments_dir: Some(db.files.display().to_string()),
        max_attachment_bytes: 10 * 1024 * 1024,
        oidc_issuer: None,
        oidc_client_id: None,
        oidc_client_secret: None,
        oidc_redirect_url: None,
        oidc_name: None,
        presence_max_members: chatbox::config::DEFAULT_PRESENCE_MAX_MEMBERS,
        auth_host: None,
        auth_endpoint: "/broadcasting/auth".into(),
    }
}

impl TestApp {
    /// Registers `name` like [`TestApp::user`] and makes it an admin with `chatbox admin grant`.
    pub async fn admin(&self, name: &str) -> TestUser {
        let user = self.user(name).await;
        chatbox_cli(self.db(), &["admin", "grant", &format!("{name}@example.com")]);
        user
    }
}

/// A running server and a cookie-keeping HTTP client pointed at it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    db: Option<TestDb>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        let db = TestDb::new(&backend);
        let s = settings(&db);
        Self::spawn_with(db, s).await
    }

    /// Starts a server on `db` with `settings` (see [`settings`]).
    pub async fn spawn_with(db: TestDb, settings: Settings) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            chatbox::telemetry::init(LogFormat::Text);
        }
        let config = Config::from_settings(settings).expect("valid test config");
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { app.run(shutdown).await.expect("app runs") }
        });
        Self {
            addr,
            client: new_client(),
            shutdown,
            task: Some(task),
            db: Some(db),
        }
    }

    /// Stops the server and waits until it has shut down; returns the database for a restart.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.db.take().expect("the database is held until stop")
    }

    /// Another server on the same database and Redis (a second node).
    pub async fn second_node(&self) -> Self {
        let shared = self.db().shared();
        let s = settings(&shared);
        Self::spawn_with(shared, s).await
    }

    /// The database this server runs on.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Registers `name` (`{name}@example.com`, password `password-{name}`) with a fresh client
    /// and returns that user, signed in.
    pub async fn user(&self, name: &str) -> TestUser {
        let client = new_client();
        let res = client
            .post(self.url("/api/register"))
            .json(&json!({ "name": name, "email": format!("{name}@example.com"), "password": format!("password-{name}") }))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), StatusCode::CREATED, "register {name}");
        let body: Value = res.json().await.expect("json");
        TestUser {
            id: body["user"]["id"].as_i64().expect("id"),
            token: body["token"].as_str().expect("token").to_owned(),
            client,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn new_client() -> Client {
    Client::builder().cookie_store(true).build().expect("client")
}

/// A registered, signed-in user: its id, bearer token and a client holding its session cookie.
pub struct TestUser {
    pub id: i64,
    pub token: String,
    pub client: Client,
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failing test leaves no
/// process behind.
pub struct Killed(std::process::Child);

impl Killed {
    /// SIGTERM, then wait up to `within` for the process to exit; true if it did.
    pub fn terminate_and_wait(&mut self, within: std::time::Duration) -> bool {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// SIGKILL now, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `chatbox worker` as its own process on `db`, taking jobs from the Redis at `redis`.
pub fn worker_process(db: &TestDb, redis: &str) -> Killed {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .arg("worker")
        .env("DATABASE_URL", &db.url)
        .env("ATTACHMENTS_DIR", &db.files)
        .env("REDIS_URL", redis)
        .env("REDIS_PREFIX", &db.redis_prefix)
        .env("QUEUE_VISIBILITY_SECS", "3")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chatbox worker");
    Killed(child)
}

/// `chatbox serve` as its own process on `db` and its Redis, listening on a free port of
/// 127.0.0.1: the process (killed when dropped) and its address, once it answers `/healthz`.
pub async fn serve_process(db: &TestDb) -> (Killed, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chatbox"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env(
            "REDIS_URL",
            db.redis_url.as_deref().expect("a node process needs Redis"),
        )
        .env("REDIS_PREFIX", &db.redis_prefix)
        .env("BIND", addr.to_string())
        .env("PUSHER_APP_ID", "test-app")
        .env("PUSHER_APP_KEY", "test-key")
        .env("PUSHER_APP_SECRET", TEST_SECRET)
        .env("NO_WORKER", "true")
        .env_remove("ADMIN_EMAILS")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chatbox serve");
    let node = Killed(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(res) = reqwest::get(format!("http://{addr}/healthz")).await
            && res.status().is_success()
        {
            return (node, addr);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "chatbox serve did not start on {addr}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A GET with a bearer token, running in the background (a long poll): its JSON answer and how
/// long it took.
pub fn spawn_get(client: Client, url: String, token: &str) -> tokio::task::JoinHandle<(Value, std::time::Duration)> {
    let token = token.to_owned();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let res = client.get(url).bearer_auth(token).send().await.expect("request");
        let v: Value = res.json().await.expect("JSON answer");
        (v, started.elapsed())
    })
}

/// The `{"error": {"code": …}}` code of an error answer, after checking its status.
pub async fn error_code(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status, "status");
    let body: Value = res.json().await.expect("error body is JSON");
    assert!(body["error"]["message"].is_string(), "error has a message: {body}");
    body["error"]["code"].as_str().expect("error has a code").to_owned()
}
