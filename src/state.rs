//! [`AppState`]: what handlers share. Small and cheap to clone: `Arc`s and pool handles only.

use std::sync::Arc;

use crate::{config::Config, http::throttle::LoginThrottle, store::Store};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub login_throttle: Arc<LoginThrottle>,
}
