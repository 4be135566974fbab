//! The application: [`App::build`] connects the store (applying migrations), the queue and the
//! bus, and binds the listener (port 0 works: tests read the bound address back); [`App::run`]
//! serves HTTP and WebSockets, runs the outbox relay, the worker (unless `--no-worker`) and the bus
//! subscription, and on shutdown closes sockets with 4200 and waits for every tracked task.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    bus::{self, Bus},
    config::Config,
    http,
    limits::Limiter,
    presence::Presence,
    queue::{MemoryQueue, Queue, RedisQueue, relay},
    state::AppState,
    store::Store,
    worker::Worker,
    ws::{WsContext, hub::Hub},
};

/// Longest a stopping process waits for its tasks: a task stuck on an unreachable service (Redis,
/// the database) must not keep it from exiting. Work it leaves is safe in the outbox or the queue.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Waits for `tasks` at most [`SHUTDOWN_GRACE`].
async fn wait_for(tasks: &TaskTracker) {
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
        tracing::warn!("some tasks did not stop within 10 s (a backing service does not answer); exiting anyway");
    }
}

/// How often expired browser sessions and bearer tokens are swept from the database.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How often uploads never sent, attachments of deleted messages and files without rows are
/// swept (an upload waits a day for its message, so an hour more or less does not matter).
const ATTACHMENT_SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Where a server started without `PUSHER_APP_SECRET` keeps the secret it generated.
const GENERATED_SECRET: &str = "pusher_app_secret";

/// A fresh secret: 32 random bytes from the OS-seeded CSPRNG, hex.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// Queue and bus as configured: Redis when `REDIS_URL` is set, in-process otherwise.
pub struct Delivery {
    pub queue: Queue,
    pub bus: Bus,
    pub redis: Option<redis::Client>,
}

impl Delivery {
    /// # Errors
    /// `REDIS_URL` is set but Redis cannot be reached.
    pub async fn connect(config: &Config, hub: Arc<Hub>) -> anyhow::Result<Self> {
        let Some(url) = &config.redis_url else {
            return Ok(Self {
                queue: Queue::Memory(MemoryQueue::default()),
                bus: Bus::Local(hub),
                redis: None,
            });
        };
        let client = redis::Client::open(url.expose()).context("REDIS_URL")?;
        let worker_id = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let queue = RedisQueue::connect(client.clone(), &config.redis_prefix, worker_id, config.queue_visibility)
            .await
            .context("connecting to Redis (REDIS_URL)")?;
        let bus = bus::redis::RedisBus::connect(&client, &config.redis_prefix).await?;
        Ok(Self {
            queue: Queue::Redis(Arc::new(queue)),
            bus: Bus::Redis(bus),
            redis: Some(client),
        })
    }
}

pub struct App {
    listener: TcpListener,
    state: AppState,
    delivery: Delivery,
    relay_rx: mpsc::Receiver<(i64, String)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl App {
    /// Connects to the database (applying pending migrations) and to Redis when configured, and
    /// binds `config.bind`.
    ///
    /// # Errors
    /// A backing service is unreachable, a migration failed, or the address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.check_secret_for_serving()?;
        let store = Store::connect(&config)
            .await
            .context("connecting to the database (DATABASE_URL)")?;
        store.migrate().await.context("applying database migrations")?;
        let config = if config.secret_generated {
            let secret = store
                .setting_or_insert(GENERATED_SECRET, new_secret)
                .await
                .context("reading the generated Pusher secret")?;
            config.with_secret(crate::config::Secret::new(secret))
        } else {
            config
        };
        let hub = Arc::new(Hub::default());
        let delivery = Delivery::connect(&config, hub.clone()).await?;
        let limits = match &delivery.redis {
            Some(client) => Limiter::redis(
                redis::aio::ConnectionManager::new(client.clone())
                    .await
                    .context("connecting to Redis (REDIS_URL)")?,
                &config.redis_prefix,
            ),
            None => Limiter::local(),
        };
        let limits = Arc::new(limits);
        let presence_limits = crate::presence::Limits {
            max_members: config.presence_max_members,
            connections_per_ip: config.max_connections_per_ip,
        };
        let presence = match &delivery.redis {
            Some(client) => Presence::redis(
                redis::aio::ConnectionManager::new_with_config(
                    client.clone(),
                    crate::presence::redis::connection_config(),
                )
                .await
                .context("connecting to Redis (REDIS_URL)")?,
                &config.redis_prefix,
                delivery.bus.clone(),
                presence_limits,
            )
            .await
            .context("registering this node's presence in Redis (REDIS_URL)")?,
            None => Presence::local(delivery.bus.clone(), presence_limits),
        };
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {} (BIND)", config.bind))?;
        let oidc = match config.oidc.clone() {
            Some(settings) => Some(Arc::new(
                crate::oidc::Provider::new(settings).context("building the OpenID Connect client (OIDC_*)")?,
            )),
            None => None,
        };
        let app_auth = match &config.auth_host {
            Some(host) => Some(Arc::new(crate::ws::app_auth::AppAuth::new(
                host,
                &config.auth_endpoint,
            )?)),
            None => None,
        };
        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (relay, relay_rx) = relay::Relay::new();
        let state = AppState {
            config: config.clone(),
            store: store.clone(),
            limits: limits.clone(),
            hashing: Arc::default(),
            imaging: Arc::default(),
            pictures: Arc::default(),
            relay,
            ws: WsContext {
                config,
                store: store.clone(),
                hub,
                bus: delivery.bus.clone(),
                shutdown: shutdown.clone(),
                tasks: tasks.clone(),
                limits,
                presence: Arc::new(presence),
                app_auth,
            },
            queue: delivery.queue.clone(),
            metrics: Arc::default(),
            oidc,
        };
        Ok(Self {
            listener,
            state,
            delivery,
            relay_rx,
            shutdown,
            tasks,
        })
    }

    /// The HTTP router of this app, for driving it in-process (fuzzing, tower `oneshot`) without
    /// the listener or background tasks.
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// The address actually bound (differs from the configured one when that used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `signal` is cancelled, then stops accepting connections, closes sockets (4200),
    /// answers the requests in flight, finishes the job in hand and waits for every task (at most
    /// [`SHUTDOWN_GRACE`]).
    ///
    /// # Errors
    /// The bound address cannot be read back. Accept errors are not: they are logged and retried
    /// (see [`http::serve::serve`]).
    pub async fn run(self, signal: CancellationToken) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            delivery,
            relay_rx,
            shutdown,
            tasks,
        } = self;
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::select! { _ = signal.cancelled() => shutdown.cancel(), _ = shutdown.cancelled() => {} }
            }
        });
        let store = state.store.clone();
        tasks.spawn(relay::run(
            relay_rx,
            delivery.queue.clone(),
            store.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(relay::sweep(delivery.queue.clone(), store.clone(), shutdown.clone()));
        tasks.spawn(sweep_sessions(store.clone(), state.config.token_ttl, shutdown.clone()));
        tasks.spawn(sweep_attachments(store.clone(), shutdown.clone()));
        tasks.spawn(state.ws.hub.clone().batch_member_changes(shutdown.clone()));
        tasks.spawn(state.ws.presence.clone().run(state.ws.hub.clone(), shutdown.clone()));
        if let Some(client) = delivery.redis.clone() {
            let prefix = state.config.redis_prefix.clone();
            tasks.spawn(bus::redis::subscribe(
                client.clone(),
                prefix,
                state.ws.hub.clone(),
                shutdown.clone(),
            ));
            if let Some(laravel) = state.config.redis_broadcast_prefix.clone() {
                tasks.spawn(bus::laravel::relay(
                    client,
                    laravel,
                    state.config.redis_prefix.clone(),
                    state.ws.hub.clone(),
                    shutdown.clone(),
                ));
            }
        }
        if state.config.run_worker {
            let worker = Worker {
                queue: delivery.queue.clone(),
                store: store.clone(),
                bus: delivery.bus.clone(),
            };
            tasks.spawn(worker.run(shutdown.clone()));
        }
        tracing::info!(
            addr = %listener.local_addr()?,
            database = ?store.kind(),
            redis = delivery.redis.is_some(),
            worker = state.config.run_worker,
            "chatbox is serving"
        );
        let config = state.config.clone();
        http::serve::serve(listener, http::router(state), &config, &tasks, shutdown.clone()).await;
        shutdown.cancel();
        wait_for(&tasks).await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// `chatbox worker`: workers alone, for deployments that scale them apart from the nodes.
///
/// # Errors
/// Without `REDIS_URL` (an in-process queue would be empty), or when a service is unreachable.
pub async fn run_worker(config: Config, signal: CancellationToken) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.redis_url.is_some(),
        "REDIS_URL: `chatbox worker` takes jobs from Redis; without it, `chatbox serve` runs the worker"
    );
    let store = Store::connect(&config)
        .await
        .context("connecting to the database (DATABASE_URL)")?;
    store.migrate().await.context("applying database migrations")?;
    let delivery = Delivery::connect(&config, Arc::new(Hub::default())).await?;
    let tasks = TaskTracker::new();
    tasks.spawn(relay::sweep(delivery.queue.clone(), store.clone(), signal.clone()));
    let worker = Worker {
        queue: delivery.queue,
        store: store.clone(),
        bus: delivery.bus,
    };
    let stopping = signal.clone();
    tasks.spawn(worker.run(signal));
    stopping.cancelled().await;
    wait_for(&tasks).await;
    store.close().await;
    Ok(())
}

async fn sweep_sessions(store: Store, token_ttl: Duration, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SESSION_SWEEP_EVERY);
    let ttl = chrono::Duration::from_std(token_ttl).unwrap_or(chrono::Duration::MAX);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                match store.delete_expired_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "expired sessions swept"),
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "session sweep failed"),
                }
                match store.delete_expired_tokens(chrono::Utc::now() - ttl).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(tokens = n, "expired tokens swept"),
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "token sweep failed"),
                }
                let login_ttl = chrono::Duration::from_std(http::oidc::LOGIN_TTL).unwrap_or_default();
                match store.delete_expired_oidc_logins(chrono::Utc::now() - login_ttl).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(logins = n, "unfinished OpenID Connect sign-ins swept"),
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "OpenID Connect sign-in sweep failed"),
                }
            }
        }
    }
}

async fn sweep_attachments(store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(ATTACHMENT_SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let swept = async {
                    let mut stale = 0;
                    loop {
                        let n = store.delete_stale_uploads().await?;
                        stale += n;
                        if n == 0 || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    let orphans = store.delete_orphaned_attachments().await?;
                    let unrecorded = store.delete_unrecorded_files(crate::files::STALE_TEMP).await?;
                    Ok::<_, crate::store::StoreError>((stale, orphans, unrecorded))
                };
                match swept.await {
                    Ok((0, 0, 0)) => {}
                    Ok((stale, orphans, unrecorded)) => {
                        tracing::info!(stale, orphans, unrecorded, "attachments swept");
                    }
                    Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "attachment sweep failed"),
                }
            }
        }
    }
}
