//! Configuration: one validated [`Config`] built once at start-up from command-line flags, the
//! environment and an optional `.env` file (flags win over the environment, which wins over `.env`).
//!
//! Every value is checked here; a bad one stops start-up with a single line that names it
//! (`BIND: invalid socket address "x"`), so nothing below has to re-check.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use clap::{Args, ValueEnum};
use ipnet::IpNet;

/// Shortest Pusher app secret accepted: 32 bytes, as many as the HMAC-SHA256 key it becomes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Default of `PRESENCE_MAX_MEMBERS`, Pusher's own limit: a list of 100 members (user_info
/// `{id, name}`) is a frame of about 5 KB. Every joiner is written the list, and the socket keeps a
/// write buffer as large as the largest frame it wrote: with full lists of 1,000 members a
/// settled connection costs 36 KiB, of 10,000 members 332 KiB (BENCHMARKS.md § presence).
pub const DEFAULT_PRESENCE_MAX_MEMBERS: usize = 100;
/// Largest `PRESENCE_MAX_MEMBERS` accepted: a list frame must stay well under a few megabytes.
pub const MAX_PRESENCE_MAX_MEMBERS: usize = 50_000;

/// Secrets that are public: earlier defaults, documentation examples and the usual placeholders.
/// Anyone who knows the secret signs subscriptions to every user's private channels.
const KNOWN_SECRETS: &[&str] = &[
    "chatbox-dev-secret",
    "change-me",
    "changeme",
    "secret",
    "app-secret",
    "pusher-secret",
    "your-pusher-app-secret",
    "your-secret",
    "password",
];

/// Raw settings as clap reads them. Names are part of the public contract (API.md).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Database: `sqlite://path` (created when missing) or `mysql://user:pass@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://chatbox.db", global = true)]
    pub database_url: String,
    /// Redis for the queue and the bus across nodes; unset: in-process queue and bus.
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and pub/sub channel chatbox uses.
    #[arg(long, env = "REDIS_PREFIX", default_value = "chatbox:", global = true)]
    pub redis_prefix: String,
    /// Address the HTTP + WebSocket server listens on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: String,
    #[arg(long, env = "PUSHER_APP_ID", default_value = "chatbox", global = true)]
    pub pusher_app_id: String,
    #[arg(long, env = "PUSHER_APP_KEY", default_value = "chatbox-key", global = true)]
    pub pusher_app_key: String,
    /// Signs channel subscriptions: at least 32 bytes. Unset: required with MySQL or Redis; the
    /// embedded default generates one on first start and keeps it in the database.
    #[arg(long, env = "PUSHER_APP_SECRET", global = true, hide_env_values = true)]
    pub pusher_app_secret: Option<String>,
    /// No longer read: admin rights are granted with `chatbox admin grant` (SECURITY.md). Set, it
    /// stops start-up with that advice rather than being silently ignored.
    #[arg(long, env = "ADMIN_EMAILS", global = true, hide = true)]
    pub admin_emails: Option<String>,
    /// Comma-separated origins (`https://chat.example.com`) allowed besides the server's own.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "", global = true)]
    pub allowed_origins: String,
    /// Mark the session cookie `Secure` (set it when chatbox is served over HTTPS).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false, global = true)]
    pub cookie_secure: bool,
    /// Most database connections this process opens.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub db_max_connections: u32,
    /// Most WebSocket connections from one client address (0: no cap). Behind a reverse proxy,
    /// list it in TRUSTED_PROXIES so the address counted is the client's, not the proxy's.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 1000, global = true)]
    pub max_connections_per_ip: u32,
    /// Most TCP connections served at once, HTTP and WebSocket together (0: no cap); past it a new
    /// connection is closed at once. 50,000 is well above the 19,000 sockets one node held in the
    /// benchmarks (about 6 KiB each, so some 300 MiB at the cap) and leaves file descriptors for
    /// the database, Redis and logs under the usual open-files limits.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 50_000, global = true)]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers, counted from the connection's start or
    /// from the previous answer on a kept-alive connection; then the connection is closed. Without
    /// it, headers sent a byte at a time (slowloris) hold a connection for ever; 10 s is ample
    /// for a real client on a slow mobile link, whose headers are a few hundred bytes.
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub http_header_timeout_secs: u64,
    /// Seconds a client has to send a whole request body once its headers are in; then 408 and the
    /// connection is closed. Bodies are at most 64 KiB, which arrives within 30 s even at 2 KB/s.
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub http_body_timeout_secs: u64,
    /// Comma-separated addresses or CIDR ranges (`10.0.0.0/8`) of reverse proxies in front of
    /// chatbox. A request from one of them is counted under the right-most `X-Forwarded-For` entry
    /// that is not a trusted proxy; from any other peer, `X-Forwarded-For` is ignored (anyone can
    /// send it). Empty: no proxy is trusted.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Seconds after a worker's last heartbeat before its claimed jobs are handed to another
    /// worker (Redis queue).
    #[arg(long, env = "QUEUE_VISIBILITY_SECS", default_value_t = 30, global = true)]
    pub queue_visibility_secs: u64,
    /// Do not run a queue worker inside `chatbox serve` (run `chatbox worker` processes instead).
    #[arg(long, env = "NO_WORKER", default_value_t = false, global = true)]
    pub no_worker: bool,
    /// Days a bearer token stays valid after it is issued (login, registration); logging out
    /// revokes it at once.
    #[arg(long, env = "TOKEN_TTL_DAYS", default_value_t = 30, global = true)]
    pub token_ttl_days: u32,
    /// Folder for attachments and pictures. Unset: `attachments/` beside the SQLite file, or
    /// `./attachments` with MySQL (every node must then see the same folder: a shared volume).
    #[arg(long, env = "ATTACHMENTS_DIR", global = true)]
    pub attachments_dir: Option<String>,
    /// Largest attachment in bytes (default 10 MiB: a phone photo or a scanned document); larger
    /// uploads are cut off while they stream in and answered 413. An upload must also arrive
    /// within HTTP_BODY_TIMEOUT_SECS.
    #[arg(long, env = "MAX_ATTACHMENT_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    pub max_attachment_bytes: u64,
    /// OpenID Connect issuer (`https://accounts.google.com`): enables "Sign in with …". The four
    /// OIDC_* settings go together: all of them or none.
    #[arg(long, env = "OIDC_ISSUER", global = true)]
    pub oidc_issuer: Option<String>,
    /// The OAuth client id the provider gave this server.
    #[arg(long, env = "OIDC_CLIENT_ID", global = true)]
    pub oidc_client_id: Option<String>,
    /// The OAuth client secret that goes with OIDC_CLIENT_ID.
    #[arg(long, env = "OIDC_CLIENT_SECRET", global = true, hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// This server's callback as registered with the provider:
    /// `https://chat.example.com/auth/oidc/callback`.
    #[arg(long, env = "OIDC_REDIRECT_URL", global = true)]
    pub oidc_redirect_url: Option<String>,
    /// What the sign-in button names ("Sign in with Google"); unset: "Google" for Google's issuer,
    /// else the issuer's host.
    #[arg(long, env = "OIDC_NAME", global = true)]
    pub oidc_name: Option<String>,
    /// Seconds of silence on a WebSocket after which the server pings (told to clients as
    /// Pusher's `activity_timeout`); a client that does not answer within a quarter of it (at
    /// most 30 s) is closed with 4201.
    #[arg(long, env = "ACTIVITY_TIMEOUT_SECS", default_value_t = 120, global = true)]
    pub activity_timeout_secs: u64,
    /// Members of a presence channel up to which `subscription_succeeded` lists them all; past
    /// it, the count and the subscriber only (the list is paged over HTTP).
    #[arg(long, env = "PRESENCE_MAX_MEMBERS", default_value_t = DEFAULT_PRESENCE_MAX_MEMBERS, global = true)]
    pub presence_max_members: usize,
    /// The Laravel app that authorises subscriptions to channels that are not chatbox's own
    /// (`https://app.example.com`); unset: such private and presence channels are refused.
    #[arg(long, env = "AUTH_HOST", global = true)]
    pub auth_host: Option<String>,
    /// The path on AUTH_HOST that authorises a subscription.
    #[arg(long, env = "AUTH_ENDPOINT", default_value = "/broadcasting/auth", global = true)]
    pub auth_endpoint: String,
    /// Relay Laravel's Redis broadcaster: every pub/sub message on `{prefix}{channel}` in the
    /// Redis of REDIS_URL goes to `{channel}` (Laravel's own prefix, often `laravel_database_`).
    /// Unset: off.
    #[arg(long, env = "REDIS_BROADCAST_PREFIX", global = true)]
    pub redis_broadcast_prefix: Option<String>,
    /// Comma-separated `appId:key` pairs that may use laravel-echo-server's HTTP API
    /// (`/apps/{appId}/…?auth_key={key}`), as its `clients` list. Empty: that API is off.
    #[arg(
        long,
        env = "ECHO_CLIENTS",
        default_value = "",
        global = true,
        hide_env_values = true
    )]
    pub echo_clients: String,
    /// A `laravel-echo-server.json` to read settings from; settings given on the command line or
    /// in the environment win over it (README § Moving from laravel-echo-server).
    #[arg(long, env = "ECHO_CONFIG", global = true)]
    pub echo_config: Option<std::path::PathBuf>,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which relational database [`Config::database_url`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    MySql,
    Sqlite,
}

/// A secret that never shows up in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The Pusher application this server hosts (one app per deployment).
#[derive(Debug, Clone)]
pub struct PusherApp {
    pub id: String,
    pub key: String,
    /// Empty until [`Config::with_secret`] when it is generated (embedded default, unset).
    pub secret: Secret,
}

/// The OpenID Connect provider users may sign in with (README § Sign in with Google).
#[derive(Debug, Clone)]
pub struct Oidc {
    /// The issuer exactly as configured; discovery must name the same one.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Where the provider sends the browser back: this server's `/auth/oidc/callback`.
    pub redirect_url: String,
    /// The provider's name on the sign-in button.
    pub name: String,
}

/// Where the provider must send the browser back.
pub const OIDC_CALLBACK_PATH: &str = "/auth/oidc/callback";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: Secret,
    pub database_kind: DatabaseKind,
    pub redis_url: Option<Secret>,
    pub redis_prefix: String,
    pub bind: SocketAddr,
    pub pusher: PusherApp,
    /// `PUSHER_APP_SECRET` was not set: the embedded default keeps a generated one in the
    /// database, and `App::build` puts it in with [`Config::with_secret`].
    pub secret_generated: bool,
    pub allowed_origins: Vec<String>,
    pub cookie_secure: bool,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    /// Whether `chatbox serve` runs a queue worker in-process.
    pub run_worker: bool,
    /// A silent worker's jobs are re-queued after this long.
    pub queue_visibility: Duration,
    /// Most WebSocket connections per client address; `None`: no cap.
    pub max_connections_per_ip: Option<u32>,
    /// Bearer tokens expire this long after they are issued.
    pub token_ttl: std::time::Duration,
    /// WebSocket silence before the server pings.
    pub activity_timeout: Duration,
    /// Most TCP connections served at once; `None`: no cap.
    pub max_connections: Option<u32>,
    /// Time a client has to send a request's headers.
    pub http_header_timeout: Duration,
    /// Time a client has to send a whole request body.
    pub http_body_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Where attachments and pictures are stored.
    pub attachments_dir: std::path::PathBuf,
    /// Largest attachment accepted, in bytes.
    pub max_attachment_bytes: u64,
    /// Sign-in with OpenID Connect; `None`: not configured, `/auth/oidc/*` answer 404.
    pub oidc: Option<Oidc>,
    /// Members of a presence channel listed in full in `subscription_succeeded`.
    pub presence_max_members: usize,
    /// The Laravel app asked about channels that are not chatbox's own (`AUTH_HOST`).
    pub auth_host: Option<String>,
    /// Its authorisation path (`AUTH_ENDPOINT`).
    pub auth_endpoint: String,
    /// Laravel's Redis broadcaster is relayed from channels with this prefix; `None`: off.
    pub redis_broadcast_prefix: Option<String>,
    /// Who may use laravel-echo-server's HTTP API.
    pub echo_clients: Vec<EchoClient>,
}

/// One of laravel-echo-server's `clients`: an app id and the key its HTTP API takes.
#[derive(Debug, Clone)]
pub struct EchoClient {
    pub app_id: String,
    pub key: Secret,
}

/// Longest `REDIS_BROADCAST_PREFIX`.
const MAX_BROADCAST_PREFIX: usize = 64;

/// A setting that failed validation: names the setting and says what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl Config {
    /// Validates raw settings.
    ///
    /// # Errors
    /// The first setting that is not acceptable, by its environment name.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let database_kind = if s.database_url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if s.database_url.starts_with("mysql://") || s.database_url.starts_with("mariadb://") {
            DatabaseKind::MySql
        } else {
            return Err(invalid(
                "DATABASE_URL",
                "expected sqlite://<file> or mysql://user:password@host/database",
            ));
        };
        let database_url = s.database_url.replacen("mariadb://", "mysql://", 1);
        let redis_url = match s.redis_url.filter(|u| !u.trim().is_empty()) {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => Some(Secret(u)),
            Some(_) => return Err(invalid("REDIS_URL", "expected redis://host:port[/db]")),
            None => None,
        };
        let bind = SocketAddr::from_str(s.bind.trim())
            .map_err(|_| invalid("BIND", format!("invalid socket address {:?} (want host:port)", s.bind)))?;
        for (name, value) in [
            ("PUSHER_APP_ID", Some(&s.pusher_app_id)),
            ("PUSHER_APP_KEY", Some(&s.pusher_app_key)),
            ("PUSHER_APP_SECRET", s.pusher_app_secret.as_ref()),
        ] {
            if value.is_some_and(|v| v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic())) {
                return Err(invalid(name, "must be 1 to 128 printable ASCII characters"));
            }
        }
        let secret = s.pusher_app_secret.map(check_secret).transpose()?;
        if s.admin_emails.is_some_and(|a| !a.trim().is_empty()) {
            return Err(invalid(
                "ADMIN_EMAILS",
                "no longer read (whoever registered such an address first became admin): \
                 unset it and grant admin rights with `chatbox admin grant <email>` (see SECURITY.md)",
            ));
        }
        let allowed_origins = split_list(&s.allowed_origins)
            .map(parse_origin)
            .collect::<Result<_, _>>()?;
        let trusted_proxies = split_list(&s.trusted_proxies)
            .map(parse_proxy)
            .collect::<Result<_, _>>()?;
        if !(1..=1000).contains(&s.db_max_connections) {
            return Err(invalid("DB_MAX_CONNECTIONS", "must be between 1 and 1000"));
        }
        if !(3..=3600).contains(&s.queue_visibility_secs) {
            return Err(invalid("QUEUE_VISIBILITY_SECS", "must be between 3 and 3600 seconds"));
        }
        if !(1..=3600).contains(&s.activity_timeout_secs) {
            return Err(invalid("ACTIVITY_TIMEOUT_SECS", "must be between 1 and 3600 seconds"));
        }
        if !(1..=3650).contains(&s.token_ttl_days) {
            return Err(invalid("TOKEN_TTL_DAYS", "must be between 1 and 3650 days"));
        }
        for (name, secs) in [
            ("HTTP_HEADER_TIMEOUT_SECS", s.http_header_timeout_secs),
            ("HTTP_BODY_TIMEOUT_SECS", s.http_body_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                return Err(invalid(name, "must be between 1 and 3600 seconds"));
            }
        }
        if !(1024..=1024 * 1024 * 1024).contains(&s.max_attachment_bytes) {
            return Err(invalid(
                "MAX_ATTACHMENT_BYTES",
                "must be between 1 KiB (1024) and 1 GiB",
            ));
        }
        let attachments_dir = match s.attachments_dir.as_deref().map(str::trim) {
            Some("") => return Err(invalid("ATTACHMENTS_DIR", "must name a folder")),
            Some(dir) => std::path::PathBuf::from(dir),
            None => default_attachments_dir(&database_url, database_kind),
        };
        if !(1..=MAX_PRESENCE_MAX_MEMBERS).contains(&s.presence_max_members) {
            return Err(invalid(
                "PRESENCE_MAX_MEMBERS",
                format!("must be between 1 and {MAX_PRESENCE_MAX_MEMBERS}"),
            ));
        }
        if s.redis_prefix.len() > 64 || s.redis_prefix.chars().any(char::is_whitespace) {
            return Err(invalid("REDIS_PREFIX", "at most 64 characters, no white space"));
        }
        let auth_host = match s.auth_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) => Some(parse_auth_host(h)?),
        };
        if !s.auth_endpoint.starts_with('/')
            || s.auth_endpoint.len() > 256
            || s.auth_endpoint.contains(char::is_whitespace)
        {
            return Err(invalid(
                "AUTH_ENDPOINT",
                "must be a path starting with / (at most 256 characters)",
            ));
        }
        let oidc = parse_oidc(
            [
                ("OIDC_ISSUER", s.oidc_issuer),
                ("OIDC_CLIENT_ID", s.oidc_client_id),
                ("OIDC_CLIENT_SECRET", s.oidc_client_secret),
                ("OIDC_REDIRECT_URL", s.oidc_redirect_url),
            ],
            s.oidc_name,
        )?;
        let redis_broadcast_prefix = parse_broadcast_prefix(s.redis_broadcast_prefix, redis_url.is_some())?;
        let echo_clients = split_list(&s.echo_clients)
            .map(parse_echo_client)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            database_url: Secret(database_url),
            database_kind,
            redis_url,
            redis_prefix: s.redis_prefix,
            bind,
            secret_generated: secret.is_none(),
            pusher: PusherApp {
                id: s.pusher_app_id,
                key: s.pusher_app_key,
                secret: secret.unwrap_or_else(|| Secret(String::new())),
            },
            allowed_origins,
            cookie_secure: s.cookie_secure,
            db_max_connections: s.db_max_connections,
            log_format: s.log_format,
            run_worker: !s.no_worker,
            queue_visibility: Duration::from_secs(s.queue_visibility_secs),
            max_connections_per_ip: (s.max_connections_per_ip > 0).then_some(s.max_connections_per_ip),
            token_ttl: std::time::Duration::from_secs(u64::from(s.token_ttl_days) * 86_400),
            activity_timeout: Duration::from_secs(s.activity_timeout_secs),
            max_connections: (s.max_connections > 0).then_some(s.max_connections),
            http_header_timeout: Duration::from_secs(s.http_header_timeout_secs),
            http_body_timeout: Duration::from_secs(s.http_body_timeout_secs),
            trusted_proxies,
            attachments_dir,
            max_attachment_bytes: s.max_attachment_bytes,
            oidc,
            presence_max_members: s.presence_max_members,
            auth_host,
            auth_endpoint: s.auth_endpoint,
            redis_broadcast_prefix,
            echo_clients,
        })
    }

    /// Whether this runs on production services (MySQL or Redis), where nodes share one secret
    /// that an operator sets.
    pub fn is_production(&self) -> bool {
        self.database_kind == DatabaseKind::MySql || self.redis_url.is_some()
    }

    /// A serving node needs a secret: with MySQL or Redis the operator's own (nodes must agree
    /// and a generated one would be per database); embedded, one is generated when unset.
    ///
    /// # Errors
    /// `PUSHER_APP_SECRET` is unset with MySQL or Redis.
    pub fn check_secret_for_serving(&self) -> Result<(), ConfigError> {
        if self.secret_generated && self.is_production() {
            return Err(invalid(
                "PUSHER_APP_SECRET",
                format!(
                    "required with MySQL or Redis: set at least {MIN_SECRET_BYTES} random bytes \
                     (for example `openssl rand -hex 32`), the same on every node"
                ),
            ));
        }
        Ok(())
    }

    /// The configuration with the generated secret the store keeps (embedded default).
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.pusher.secret = secret;
        self
    }
}

/// `attachments/` beside the SQLite file (`sqlite://data/chat.db` → `data/attachments`), or
/// `./attachments` for MySQL and in-memory SQLite.
fn default_attachments_dir(database_url: &str, kind: DatabaseKind) -> std::path::PathBuf {
    let beside = std::path::PathBuf::from("attachments");
    if kind != DatabaseKind::Sqlite {
        return beside;
    }
    let path = database_url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return beside;
    }
    match std::path::Path::new(path).parent() {
        Some(parent) => parent.join("attachments"),
        None => beside,
    }
}

/// A configured secret: long enough and not a known value.
fn check_secret(secret: String) -> Result<Secret, ConfigError> {
    let known = KNOWN_SECRETS.iter().any(|k| secret.eq_ignore_ascii_case(k))
        || secret.bytes().all(|b| Some(b) == secret.bytes().next());
    if known {
        return Err(invalid(
            "PUSHER_APP_SECRET",
            "is a publicly known value: set your own random secret",
        ));
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            "PUSHER_APP_SECRET",
            format!(
                "must be at least {MIN_SECRET_BYTES} bytes (for example `openssl rand -hex 32`), not {}",
                secret.len()
            ),
        ));
    }
    Ok(Secret(secret))
}

/// The OIDC_* settings: all four or none (a partial set names what is missing). URLs are
/// `https://`, or `http://` on a loopback host (a provider or a server on this machine).
fn parse_oidc(
    settings: [(&'static str, Option<String>); 4],
    name: Option<String>,
) -> Result<Option<Oidc>, ConfigError> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    let missing: Vec<&str> = settings.iter().filter(|(_, v)| !present(v)).map(|(n, _)| *n).collect();
    if missing.len() == settings.len() {
        return Ok(None);
    }
    if !missing.is_empty() {
        return Err(invalid(
            missing[0],
            format!(
                "missing: OpenID Connect needs all four OIDC_* settings, {} not set",
                missing.join(", ")
            ),
        ));
    }
    let [issuer, client_id, client_secret, redirect_url] =
        settings.map(|(_, v)| v.map(|v| v.trim().to_owned()).unwrap_or_default());
    let issuer_url = parse_oidc_url("OIDC_ISSUER", &issuer)?;
    let redirect = parse_oidc_url("OIDC_REDIRECT_URL", &redirect_url)?;
    if redirect.path() != OIDC_CALLBACK_PATH || redirect.query().is_some() {
        return Err(invalid(
            "OIDC_REDIRECT_URL",
            format!("must be this server's {OIDC_CALLBACK_PATH}, like https://chat.example.com{OIDC_CALLBACK_PATH}"),
        ));
    }
    let host = issuer_url.host_str().unwrap_or_default();
    let name = match name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() <= 40 && !n.chars().any(char::is_control) => n,
        Some(_) => return Err(invalid("OIDC_NAME", "1 to 40 characters, no control characters")),
        None if host == "accounts.google.com" => "Google".to_owned(),
        None => host.to_owned(),
    };
    Ok(Some(Oidc {
        issuer,
        client_id,
        client_secret: Secret(client_secret),
        redirect_url,
        name,
    }))
}

fn parse_oidc_url(name: &'static str, raw: &str) -> Result<openidconnect::url::Url, ConfigError> {
    let url = openidconnect::url::Url::parse(raw).map_err(|_| {
        invalid(
            name,
            format!("{raw:?} is not an absolute URL like https://accounts.google.com"),
        )
    })?;
    let loopback = match url.host() {
        Some(openidconnect::url::Host::Domain(d)) => d == "localhost",
        Some(openidconnect::url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(invalid(
            name,
            "must be https:// (http:// only on this machine: localhost, 127.0.0.1)",
        )),
    }
}

/// `REDIS_BROADCAST_PREFIX`: needs Redis; any printable prefix (empty: every channel).
fn parse_broadcast_prefix(prefix: Option<String>, redis: bool) -> Result<Option<String>, ConfigError> {
    let Some(prefix) = prefix else { return Ok(None) };
    if !redis {
        return Err(invalid(
            "REDIS_BROADCAST_PREFIX",
            "needs REDIS_URL: Laravel's broadcaster publishes to Redis",
        ));
    }
    if prefix.len() > MAX_BROADCAST_PREFIX || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "REDIS_BROADCAST_PREFIX",
            format!("at most {MAX_BROADCAST_PREFIX} characters, no white space"),
        ));
    }
    Ok(Some(prefix))
}

/// One `ECHO_CLIENTS` entry: `appId:key`.
fn parse_echo_client(raw: &str) -> Result<EchoClient, ConfigError> {
    match raw.split_once(':') {
        Some((app_id, key)) if !app_id.is_empty() && !key.is_empty() => Ok(EchoClient {
            app_id: app_id.to_owned(),
            key: Secret(key.to_owned()),
        }),
        _ => Err(invalid("ECHO_CLIENTS", "expected appId:key pairs separated by commas")),
    }
}

fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// One ALLOWED_ORIGINS entry, lowercased: `http(s)://host[:port]`, ASCII only (browsers send a
/// non-ASCII host in its `xn--` form, so any other spelling could never match).
fn parse_origin(raw: &str) -> Result<String, ConfigError> {
    let origin = raw.trim_end_matches('/');
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains('/') && h.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(origin.to_ascii_lowercase())
        }
        _ => Err(invalid(
            "ALLOWED_ORIGINS",
            format!("{raw:?} is not an origin like https://host[:port] (ASCII; xn-- for other names)"),
        )),
    }
}

/// AUTH_HOST: `http(s)://host[:port]` (laravel-echo-server's `authHost`; a trailing `/` is
/// dropped, and so is a path: the endpoint comes from AUTH_ENDPOINT).
fn parse_auth_host(raw: &str) -> Result<String, ConfigError> {
    let host = raw.trim_end_matches('/');
    let rest = host.strip_prefix("https://").or_else(|| host.strip_prefix("http://"));
    match rest {
        Some(h) if !h.is_empty() && !h.contains('/') && h.bytes().all(|b| b.is_ascii_graphic()) => Ok(host.to_owned()),
        _ => Err(invalid(
            "AUTH_HOST",
            format!("{raw:?} is not a URL like http://app.example.com[:port]"),
        )),
    }
}

/// One TRUSTED_PROXIES entry: an address (a network of one) or a CIDR range.
fn parse_proxy(raw: &str) -> Result<IpNet, ConfigError> {
    raw.parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| raw.parse::<IpAddr>().map(|ip| IpNet::from(ip.to_canonical())))
        .map_err(|_| {
            invalid(
                "TRUSTED_PROXIES",
                format!("{raw:?} is not an IP address or a CIDR range like 10.0.0.0/8"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        s: Settings,
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["chatbox"];
        all.extend_from_slice(args);
        Config::from_settings(T::try_parse_from(all).unwrap().s)
    }

    #[test]
    fn defaults_are_embedded_sqlite_on_loopback() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.database_kind, DatabaseKind::Sqlite);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.redis_url.is_none());
        assert!(c.secret_generated, "embedded without a secret: one is generated");
    }

    #[test]
    fn attachments_live_beside_the_sqlite_file_unless_configured() {
        let dir = |args: &[&str]| parse(args).unwrap().attachments_dir;
        assert_eq!(dir(&[]), std::path::PathBuf::from("attachments"));
        let beside = dir(&["--database-url", "sqlite:///var/lib/chatbox/chat.db?mode=rwc"]);
        assert_eq!(beside, std::path::PathBuf::from("/var/lib/chatbox/attachments"));
        assert_eq!(
            dir(&["--database-url", "sqlite://data/chat.db"]),
            std::path::PathBuf::from("data/attachments")
        );
        assert_eq!(
            dir(&["--database-url", "mysql://root@127.0.0.1/chatbox"]),
            std::path::PathBuf::from("attachments")
        );
        assert_eq!(
            dir(&["--attachments-dir", "/srv/files"]),
            std::path::PathBuf::from("/srv/files")
        );
        assert_eq!(parse(&[]).unwrap().max_attachment_bytes, 10 * 1024 * 1024);
        let name = |args: &[&str]| parse(args).unwrap_err().name;
        assert_eq!(name(&["--max-attachment-bytes", "10"]), "MAX_ATTACHMENT_BYTES");
        assert_eq!(name(&["--attachments-dir", " "]), "ATTACHMENTS_DIR");
    }

    #[test]
    fn production_needs_a_long_unknown_secret() {
        let mysql = ["--database-url", "mysql://root@127.0.0.1/chatbox"];
        let unset = |args: &[&str]| parse(args).unwrap().check_secret_for_serving().unwrap_err().name;
        assert_eq!(unset(&mysql), "PUSHER_APP_SECRET");
        assert_eq!(unset(&["--redis-url", "redis://127.0.0.1"]), "PUSHER_APP_SECRET");
        assert!(
            parse(&[]).unwrap().check_secret_for_serving().is_ok(),
            "embedded generates one"
        );
        for bad in [
            "change-me",
            "chatbox-dev-secret",
            "short-but-random-3f9a",
            &"x".repeat(40),
        ] {
            let args = [&mysql[..], &["--pusher-app-secret", bad]].concat();
            assert_eq!(parse(&args).unwrap_err().name, "PUSHER_APP_SECRET", "{bad:?}");
            // An explicitly set secret is checked on the embedded default too.
            assert_eq!(
                parse(&["--pusher-app-secret", bad]).unwrap_err().name,
                "PUSHER_APP_SECRET"
            );
        }
        let good = "8c1f0e4b9a7d3c2e5f6a1b0c9d8e7f6a";
        let c = parse(&[&mysql[..], &["--pusher-app-secret", good]].concat()).unwrap();
        assert!(!c.secret_generated);
        assert!(c.check_secret_for_serving().is_ok());
        assert!(!format!("{c:?}").contains(good), "the secret is never logged");
    }

    #[test]
    fn oidc_takes_all_four_settings_or_none() {
        assert!(parse(&[]).unwrap().oidc.is_none());
        let all = [
            "--oidc-issuer",
            "https://accounts.google.com",
            "--oidc-client-id",
            "id.apps.googleusercontent.com",
            "--oidc-client-secret",
            "GOCSPX-very-secret",
            "--oidc-redirect-url",
            "https://chat.example.com/auth/oidc/callback",
        ];
        let c = parse(&all).unwrap();
        let oidc = c.oidc.as_ref().unwrap();
        assert_eq!(oidc.name, "Google");
        assert!(
            !format!("{c:?}").contains("very-secret"),
            "the client secret is never logged"
        );
        let e = parse(&all[..6]).unwrap_err();
        assert_eq!(e.name, "OIDC_REDIRECT_URL");
        assert!(
            e.problem.contains("missing") && e.problem.contains("OIDC_REDIRECT_URL"),
            "{e}"
        );
        let e = parse(&all[2..]).unwrap_err();
        assert_eq!(e.name, "OIDC_ISSUER");
        let plain_http = [&all[..1], &["http://accounts.example.com"], &all[2..]].concat();
        assert_eq!(parse(&plain_http).unwrap_err().name, "OIDC_ISSUER");
        let local = [&all[..1], &["http://127.0.0.1:9000"], &all[2..]].concat();
        assert_eq!(parse(&local).unwrap().oidc.unwrap().name, "127.0.0.1");
        let elsewhere = [&all[..7], &["https://chat.example.com/login"]].concat();
        assert_eq!(parse(&elsewhere).unwrap_err().name, "OIDC_REDIRECT_URL");
    }

    #[test]
    fn echo_inputs_are_checked() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.redis_broadcast_prefix, c.auth_host), (None, None));
        assert_eq!(c.auth_endpoint, "/broadcasting/auth");
        assert!(c.echo_clients.is_empty());
        let name = |args: &[&str]| parse(args).unwrap_err().name;
        assert_eq!(
            name(&["--redis-broadcast-prefix", "laravel_database_"]),
            "REDIS_BROADCAST_PREFIX",
            "needs Redis"
        );
        let redis = ["--redis-url", "redis://127.0.0.1"];
        assert_eq!(
            name(&[&redis[..], &["--redis-broadcast-prefix", "a b"]].concat()),
            "REDIS_BROADCAST_PREFIX"
        );
        let on = parse(&[&redis[..], &["--redis-broadcast-prefix", "laravel_database_"]].concat()).unwrap();
        assert_eq!(on.redis_broadcast_prefix.as_deref(), Some("laravel_database_"));
        assert_eq!(name(&["--echo-clients", "no-key"]), "ECHO_CLIENTS");
        assert_eq!(name(&["--echo-clients", "app:"]), "ECHO_CLIENTS");
        let c = parse(&["--echo-clients", "a1:key-one, a2:key-two"]).unwrap();
        assert_eq!(c.echo_clients.len(), 2);
        assert_eq!(
            (c.echo_clients[1].app_id.as_str(), c.echo_clients[1].key.expose()),
            ("a2", "key-two")
        );
        assert!(!format!("{c:?}").contains("key-one"), "keys are never logged");
        assert_eq!(name(&["--auth-host", "localhost"]), "AUTH_HOST");
        assert_eq!(name(&["--auth-endpoint", "broadcasting/auth"]), "AUTH_ENDPOINT");
        let c = parse(&["--auth-host", "http://app.test/"]).unwrap();
        assert_eq!(c.auth_host.as_deref(), Some("http://app.test"));
    }

    #[test]
    fn admin_emails_stop_start_up_with_advice() {
        let e = parse(&["--admin-emails", "boss@example.com"]).unwrap_err();
        assert_eq!(e.name, "ADMIN_EMAILS");
        assert!(e.problem.contains("chatbox admin grant"), "{e}");
        assert!(parse(&["--admin-emails", ""]).is_ok(), "empty is as unset");
    }

    #[test]
    fn bad_values_name_the_setting() {
        assert_eq!(parse(&["--bind", "nope"]).unwrap_err().name, "BIND");
        assert_eq!(
            parse(&["--database-url", "postgres://x"]).unwrap_err().name,
            "DATABASE_URL"
        );
        assert_eq!(parse(&["--redis-url", "http://x"]).unwrap_err().name, "REDIS_URL");
        assert_eq!(
            parse(&["--allowed-origins", "example.com"]).unwrap_err().name,
            "ALLOWED_ORIGINS"
        );
        assert_eq!(parse(&["--pusher-app-key", ""]).unwrap_err().name, "PUSHER_APP_KEY");
        assert_eq!(
            parse(&["--http-header-timeout-secs", "0"]).unwrap_err().name,
            "HTTP_HEADER_TIMEOUT_SECS"
        );
        assert_eq!(
            parse(&["--http-body-timeout-secs", "3601"]).unwrap_err().name,
            "HTTP_BODY_TIMEOUT_SECS"
        );
    }

    #[test]
    fn auth_host_is_a_url_and_auth_endpoint_a_path() {
        assert_eq!(parse(&[]).unwrap().auth_host, None, "off by default");
        assert_eq!(parse(&[]).unwrap().auth_endpoint, "/broadcasting/auth");
        for bad in ["app.example.com", "ftp://a", "http://", "http://a/b", "http://é"] {
            assert_eq!(parse(&["--auth-host", bad]).unwrap_err().name, "AUTH_HOST", "{bad}");
        }
        let c = parse(&["--auth-host", "http://app.test:8000/", "--auth-endpoint", "/api/auth"]).unwrap();
        assert_eq!(c.auth_host.as_deref(), Some("http://app.test:8000"));
        assert_eq!(c.auth_endpoint, "/api/auth");
        for bad in ["api/auth", "/a b", ""] {
            assert_eq!(
                parse(&["--auth-endpoint", bad]).unwrap_err().name,
                "AUTH_ENDPOINT",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn origins_must_be_ascii_scheme_and_host() {
        // Slicing at a byte offset used to panic inside the multi-byte `é`.
        for bad in [
            "http://é/",
            "https://bücher.example",
            "https://",
            "http://a/b",
            "ftp://a",
        ] {
            assert_eq!(
                parse(&["--allowed-origins", bad]).unwrap_err().name,
                "ALLOWED_ORIGINS",
                "{bad}"
            );
        }
        let c = parse(&[
            "--allowed-origins",
            "https://Chat.Example.com/, http://xn--bcher-kva.example:8080",
        ])
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://chat.example.com", "http://xn--bcher-kva.example:8080"]
        );
    }

    #[test]
    fn http_limits_default_and_parse() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.max_connections, Some(50_000));
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
        assert_eq!(c.http_body_timeout, Duration::from_secs(30));
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(parse(&["--max-connections", "0"]).unwrap().max_connections, None);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let c = parse(&["--trusted-proxies", "127.0.0.1, 10.1.2.3/8,::1, fd00::/8"]).unwrap();
        let nets: Vec<String> = c.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]);
        for bad in ["nginx", "10.0.0.0/33", "1.2.3.4:80", "10.0.0.0/8/8"] {
            assert_eq!(
                parse(&["--trusted-proxies", bad]).unwrap_err().name,
                "TRUSTED_PROXIES",
                "{bad}"
            );
        }
    }

    #[test]
    fn mysql_url_is_accepted_and_not_logged() {
        let c = parse(&[
            "--database-url",
            "mysql://root@127.0.0.1/chatbox",
            "--pusher-app-secret",
            "8c1f0e4b9a7d3c2e5f6a1b0c9d8e7f6a",
        ])
        .unwrap();
        assert_eq!(c.database_kind, DatabaseKind::MySql);
        assert!(
            !format!("{c:?}").contains("root@127.0.0.1"),
            "database URL must not be logged"
        );
    }
}
