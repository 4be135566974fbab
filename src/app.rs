//! The application: [`App::build`] connects the store, applies migrations and binds the listener
//! (port 0 works: tests read the bound address back); [`App::run`] serves until the shutdown token
//! fires, then waits for every tracked task before returning.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{config::Config, http, state::AppState, store::Store};

/// How often expired browser sessions are swept from the database.
const SESSION_SWEEP_EVERY: Duration = Duration::from_secs(3600);

pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to the database, applies pending migrations and binds `config.bind`.
    ///
    /// # Errors
    /// The database is unreachable, a migration failed, or the address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config)
            .await
            .context("connecting to the database (DATABASE_URL)")?;
        store.migrate().await.context("applying database migrations")?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding {} (BIND)", config.bind))?;
        let state = AppState {
            config: Arc::new(config),
            store,
            login_throttle: Arc::default(),
        };
        Ok(Self { listener, state })
    }

    /// The address actually bound (differs from the configured one when that used port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves HTTP until `shutdown` is cancelled, then lets in-flight requests finish.
    ///
    /// # Errors
    /// The server failed to accept connections.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        let tasks = TaskTracker::new();
        tasks.spawn(sweep_sessions(state.store.clone(), shutdown.clone()));
        tracing::info!(
            addr = %listener.local_addr()?,
            database = ?state.store.kind(),
            "chatbox is serving"
        );
        let router = http::router(state.clone());
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .context("HTTP server failed")?;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn sweep_sessions(store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SESSION_SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => match store.delete_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "expired sessions swept"),
                Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "session sweep failed"),
            },
        }
    }
}
