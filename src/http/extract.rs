//! Extractors that answer in our error shape: [`Json`] for bodies and [`CurrentUser`] for the
//! signed-in caller (bearer token or session cookie, with the cross-site check for cookie writes).

use axum::{
    extract::{FromRequest, FromRequestParts},
    http::{HeaderMap, Method, header, request::Parts},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::{
    config::Config,
    domain::UserId,
    error::ApiError,
    state::AppState,
    store::{Store, User},
};

/// `axum::Json`, but a rejection answers `{"error": …}` (400 malformed, 422 wrong shape, 413, 415).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

pub use crate::store::SESSION_USER_KEY;
/// Session key holding the hash of the bearer token issued with the session, revoked with it.
pub const SESSION_TOKEN_KEY: &str = "token_hash";

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer …`; holds the token's hash.
    Bearer(String),
    Cookie,
}

/// The signed-in caller. Extracting it answers 401 when nobody is signed in, and 403
/// `cross_site_request` for a cookie-authenticated write that another site started.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub credential: Credential,
}

/// SHA-256 (hex) of a bearer token: how tokens are stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The user a bearer token names (`Err(Unauthenticated)` for an unknown or expired token).
async fn bearer_user(store: &Store, config: &Config, token: &str) -> Result<(User, String), ApiError> {
    let hash = token_hash(token);
    let issued_after =
        chrono::Utc::now() - chrono::Duration::from_std(config.token_ttl).unwrap_or(chrono::Duration::MAX);
    match store.user_by_token(&hash, issued_after).await? {
        Some(user) => Ok((user, hash)),
        None => Err(ApiError::Unauthenticated),
    }
}

/// The user that request headers sign in as, by the same credentials as [`CurrentUser`]: a bearer
/// token, else the session cookie. For a socket.io subscription, whose headers come in its
/// `auth.headers` (and the Cookie of its handshake) rather than in an HTTP request. `Ok(None)`:
/// no credential names a user.
///
/// # Errors
/// [`ApiError::Unauthenticated`] for an unknown or expired token; the store's errors.
pub async fn user_from_headers(store: &Store, config: &Config, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    if let Some(token) = bearer(headers) {
        return bearer_user(store, config, token).await.map(|(user, _)| Some(user));
    }
    let session_id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == super::SESSION_COOKIE)
        .and_then(|(_, value)| value.parse::<tower_sessions::session::Id>().ok());
    let Some(id) = session_id else { return Ok(None) };
    let session = Session::new(Some(id), std::sync::Arc::new(store.clone()), None);
    let user = session
        .get::<UserId>(SESSION_USER_KEY)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match user {
        Some(id) => Ok(store.user(id).await?),
        None => Ok(None),
    }
}

impl CurrentUser {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    /// The caller, if any: `Ok(None)` when neither a token nor a session names a user.
    async fn resolve(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, ApiError> {
        if let Some(token) = bearer(&parts.headers) {
            let (user, hash) = bearer_user(&state.store, &state.config, token).await?;
            return Ok(Some(Self {
                user,
                credential: Credential::Bearer(hash),
            }));
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, msg)| ApiError::Internal(anyhow::anyhow!(msg)))?;
        let Some(id) = session
            .get::<UserId>(SESSION_USER_KEY)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
        else {
            return Ok(None);
        };
        let Some(user) = state.store.user(id).await? else {
            // The account is gone: forget the stale session.
            let _ = session.flush().await;
            return Ok(None);
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !super::origin::same_site_request(&parts.headers, &state.config) {
            return Err(ApiError::forbidden(
                "cross_site_request",
                "cookie-authenticated writes must come from this site",
            ));
        }
        Ok(Some(Self {
            user,
            credential: Credential::Cookie,
        }))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::resolve(parts, state).await?.ok_or(ApiError::Unauthenticated)
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, ApiError> {
        Self::resolve(parts, state).await
    }
}

/// An id from the path; anything that is not a positive id is "not found" (`what`).
pub fn path_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}
