//! [`AppState`]: what handlers share. Small and cheap to clone: `Arc`s and pool handles only.

use std::sync::Arc;

use crate::{
    config::Config, http::passwords::Hashing, limits::Limiter, queue::relay::Relay, store::Store, ws::WsContext,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    /// Rate limits (logins, registrations), cluster-wide with Redis.
    pub limits: Arc<Limiter>,
    /// The bounded password-hashing pool.
    pub hashing: Arc<Hashing>,
    /// Hands committed broadcast jobs to the outbox relay.
    pub relay: Relay,
    /// Hub, bus and shutdown for WebSocket connections.
    pub ws: WsContext,
    /// The queue, for its depth on the admin page.
    pub queue: crate::queue::Queue,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The OpenID Connect provider; `None` when the OIDC_* settings are absent.
    pub oidc: Option<Arc<crate::oidc::Provider>>,
}

impl AppState {
    /// Hands a committed outbox row to the relay (never waits).
    pub fn hand_over(&self, outbox_id: i64, job_json: &str) {
        self.relay
            .hand_over(outbox_id, crate::queue::Envelope::raw(outbox_id, job_json));
    }

    /// Queues `job` through the outbox after a change that is already committed. A failure here
    /// loses only the live event, never data: it is logged, not returned.
    pub async fn announce(&self, job: Option<crate::queue::Job>) {
        let Some(job) = job else { return };
        let json = job.to_json();
        match self.store.insert_outbox(&json).await {
            Ok(outbox_id) => self.hand_over(outbox_id, &json),
            Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "event not queued"),
        }
    }
}
