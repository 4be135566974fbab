//! Accounts (API.md § Accounts): register, login, logout, me. Passwords are hashed through the
//! bounded pool of [`super::passwords`]. Logins and registrations are rate-limited per client
//! address and failed logins per account ([`crate::limits`]), counted before the password is
//! checked so parallel guesses cannot pass a check none of them has counted in yet.
//!
//! Logging out revokes the bearer token and the session it came with and closes the user's
//! sockets (4009); `POST /api/logout/everywhere` revokes every token and session the user has.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::client_addr::ClientAddr;
use super::extract::{Credential, CurrentUser, Json, SESSION_TOKEN_KEY, SESSION_USER_KEY, token_hash};
use crate::{
    bus::{Broadcast, Target},
    domain::{Email, Password, UserId, UserName},
    error::ApiError,
    limits::{self, LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURES_PER_ADDRESS, REGISTRATIONS_PER_ADDRESS},
    state::AppState,
    store::User,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/logout/everywhere", post(logout_everywhere))
        .route("/api/me", get(me))
}

/// `user` as API.md shows it; `email` only to the user itself and admins.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: UserId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub is_admin: bool,
    #[serde(serialize_with = "crate::domain::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl UserView {
    /// The view of `user` for `viewer` (None: an anonymous viewer).
    pub fn of(user: &User, viewer: Option<&User>) -> Self {
        let viewer_admin = viewer.is_some_and(|v| v.is_admin);
        let shows_email = viewer.is_some_and(|v| v.id == user.id) || viewer_admin;
        Self {
            id: user.id,
            name: user.name.clone(),
            email: shows_email.then(|| user.email.clone()),
            is_admin: user.is_admin,
            created_at: user.created_at,
        }
    }
}

#[derive(Serialize)]
struct SignedIn {
    user: UserView,
    token: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RegisterBody {
    name: String,
    email: String,
    password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
struct LoginBody {
    email: String,
    password: String,
}

/// A fresh bearer token: 32 random bytes from the thread-local CSPRNG (ChaCha, OS-seeded), hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Signs `user` in: a new session id (no fixation) holding the user, and a new bearer token,
/// whose hash the session keeps so that logging out of the session revokes the token too.
pub(super) async fn sign_in(state: &AppState, session: &Session, user: &User) -> Result<String, ApiError> {
    let token = new_token();
    let hash = token_hash(&token);
    state.store.insert_token(user.id, &hash).await?;
    session.cycle_id().await.map_err(|e| ApiError::Internal(e.into()))?;
    session
        .insert(SESSION_USER_KEY, user.id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    session
        .insert(SESSION_TOKEN_KEY, hash)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(token)
}

/// 429 with the wait, from a limit that was hit.
fn throttled(wait: limits::RetryAfter) -> ApiError {
    ApiError::Throttled { retry_after: wait.0 }
}

/// `POST /api/register` → 201 `{user, token}`; the user is in "All" from now on and signed in.
/// 429 past [`REGISTRATIONS_PER_ADDRESS`]; 503 when the hashing pool is full.
#[utoipa::path(post, path = "/api/register", tag = "accounts", request_body = RegisterBody, responses((status = 201, description = "registered and signed in: {user, token}"), (status = 409, description = "e-mail or name taken"), (status = 422, description = "invalid input"), (status = 429, description = "too many registrations from this address"), (status = 503, description = "busy: retry after Retry-After seconds")))]
async fn register(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    session: Session,
    Json(body): Json<RegisterBody>,
) -> Result<(StatusCode, Json<SignedIn>), ApiError> {
    let address = client.to_string();
    state
        .limits
        .hit(&REGISTRATIONS_PER_ADDRESS, &address)
        .await
        .map_err(throttled)?;
    let name = UserName::parse(&body.name)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let hash = state.hashing.hash(password.expose().to_owned()).await?;
    let user = state.store.create_user(&name, &email, &hash).await?;
    tracing::info!(user_id = %user.id, "registered");
    let everyone = crate::queue::Job::Event {
        to: crate::queue::Audience::Everyone,
        event: crate::worker::USER_REGISTERED.to_owned(),
        data: serde_json::json!({ "user": { "id": user.id, "name": user.name } }),
    };
    state.announce(Some(everyone)).await;
    let token = sign_in(&state, &session, &user).await?;
    let user = UserView::of(&user, Some(&user));
    Ok((StatusCode::CREATED, Json(SignedIn { user, token })))
}

/// `POST /api/login` → 200 `{user, token}` + session cookie; 401 `invalid_credentials` for an
/// unknown e-mail or a wrong password alike; 429 after repeated failures for the account or from
/// the address; 503 when the hashing pool is full.
#[utoipa::path(post, path = "/api/login", tag = "accounts", request_body = LoginBody, responses((status = 200, description = "{user, token} and a session cookie"), (status = 401, description = "invalid credentials"), (status = 429, description = "too many failed attempts"), (status = 503, description = "busy: retry after Retry-After seconds")))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    session: Session,
    Json(body): Json<LoginBody>,
) -> Result<Json<SignedIn>, ApiError> {
    let address = client.to_string();
    let limits = &state.limits;
    // Counted as a failure up front, given back when the password turns out right.
    limits
        .hit(&LOGIN_FAILURES_PER_ADDRESS, &address)
        .await
        .map_err(throttled)?;
    let Ok(email) = Email::parse(&body.email) else {
        return Err(ApiError::InvalidCredentials);
    };
    let found = state.store.credentials(email.as_str()).await?;
    // The account found, not the text typed: every spelling that finds an account counts
    // against that account.
    let account = match &found {
        Some((user, _)) => format!("user:{}", user.id),
        None => format!("email:{}", email.as_str()),
    };
    limits
        .hit(&LOGIN_FAILURES_PER_ACCOUNT, &account)
        .await
        .map_err(throttled)?;
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let ok = match state.hashing.verify(body.password, hash).await {
        Ok(ok) => ok,
        Err(busy) => {
            // Nothing was guessed: the attempt does not count.
            limits.forgive(&LOGIN_FAILURES_PER_ACCOUNT, &account).await;
            limits.forgive(&LOGIN_FAILURES_PER_ADDRESS, &address).await;
            return Err(busy);
        }
    };
    let user = match found {
        Some((user, _)) if ok => user,
        _ => return Err(ApiError::InvalidCredentials),
    };
    limits.forgive(&LOGIN_FAILURES_PER_ADDRESS, &address).await;
    limits.reset(&LOGIN_FAILURES_PER_ACCOUNT, &account).await;
    let token = sign_in(&state, &session, &user).await?;
    tracing::info!(user_id = %user.id, "signed in");
    let user = UserView::of(&user, Some(&user));
    Ok(Json(SignedIn { user, token }))
}

/// `POST /api/logout` → 204. Revokes the bearer token used, or the session and the token issued
/// with it, and closes the user's sockets (4009). Answers 204 also when nobody was signed in.
#[utoipa::path(post, path = "/api/logout", tag = "accounts", responses((status = 204, description = "signed out")))]
async fn logout(
    State(state): State<AppState>,
    session: Session,
    caller: Option<CurrentUser>,
) -> Result<StatusCode, ApiError> {
    let Some(caller) = caller else {
        session.flush().await.map_err(|e| ApiError::Internal(e.into()))?;
        return Ok(StatusCode::NO_CONTENT);
    };
    let token = match &caller.credential {
        Credential::Bearer(hash) => Some(hash.clone()),
        Credential::Cookie => session
            .get::<String>(SESSION_TOKEN_KEY)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?,
    };
    if let Some(hash) = token {
        state.store.delete_token(&hash).await?;
    }
    if caller.credential == Credential::Cookie {
        session.flush().await.map_err(|e| ApiError::Internal(e.into()))?;
    }
    close_sockets(&state, caller.id()).await;
    tracing::info!(user_id = %caller.id(), "signed out");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/logout/everywhere` → 204: every token and every session of the caller is revoked
/// and all its sockets, on every node, are closed (4009).
#[utoipa::path(post, path = "/api/logout/everywhere", tag = "accounts", security(("bearer" = [])), responses((status = 204, description = "signed out on every device"), (status = 401, description = "not signed in")))]
async fn logout_everywhere(
    State(state): State<AppState>,
    session: Session,
    caller: CurrentUser,
) -> Result<StatusCode, ApiError> {
    state.store.revoke_everything_of(caller.id()).await?;
    session.flush().await.map_err(|e| ApiError::Internal(e.into()))?;
    close_sockets(&state, caller.id()).await;
    tracing::info!(user_id = %caller.id(), "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// Asks every node to close `user`'s sockets. The credentials are already revoked, so a socket
/// that reconnects cannot subscribe again; a lost bus message leaves sockets open only until
/// they next need a signature.
pub(super) async fn close_sockets(state: &AppState, user: UserId) {
    let b = Broadcast {
        target: Target::SignOut { user },
        event: String::new(),
        data: String::new(),
        user_id: None,
        except: None,
        message_id: None,
    };
    if let Err(e) = state.ws.bus.publish(&b).await {
        tracing::warn!(error = %e, user_id = %user, "sockets of a signed-out user not closed");
    }
}

/// `GET /api/me` → `{user}`; 401 when not signed in.
#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = [])), responses((status = 200, description = "{user}"), (status = 401, description = "not signed in")))]
async fn me(caller: CurrentUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user": UserView::of(&caller.user, Some(&caller.user)) }))
}
