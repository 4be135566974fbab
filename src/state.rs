//! [`AppState`]: what handlers share. Small and cheap to clone: `Arc`s and pool handles only.

use std::sync::Arc;

use crate::{config::Config, http::throttle::LoginThrottle, queue::relay::Relay, store::Store, ws::WsContext};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub login_throttle: Arc<LoginThrottle>,
    /// Hands committed broadcast jobs to the outbox relay.
    pub relay: Relay,
    /// Hub, bus and shutdown for WebSocket connections.
    pub ws: WsContext,
}
