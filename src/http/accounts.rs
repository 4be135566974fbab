//! Accounts (API.md § Accounts): register, login, logout, me. Passwords are hashed with Argon2id
//! (OWASP parameters: 19 MiB, 2 passes, 1 lane) on the blocking pool; a login for an unknown
//! e-mail verifies against a dummy hash so timing does not tell which accounts exist.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
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

use super::extract::{Credential, CurrentUser, Json, SESSION_USER_KEY, token_hash};
use crate::{
    domain::{Email, Password, UserId, UserName},
    error::ApiError,
    state::AppState,
    store::User,
    telemetry::spawn_blocking_in_span,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
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
    pub fn of(user: &User, viewer: Option<&User>, state: &AppState) -> Self {
        let viewer_admin = viewer.is_some_and(|v| state.config.is_admin(&v.email));
        let shows_email = viewer.is_some_and(|v| v.id == user.id) || viewer_admin;
        Self {
            id: user.id,
            name: user.name.clone(),
            email: shows_email.then(|| user.email.clone()),
            is_admin: state.config.is_admin(&user.email),
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

/// A hash to verify against when the e-mail is unknown, so both paths cost the same.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("not the password of anyone").unwrap_or_default());

fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default().hash_password(password.as_bytes())?.to_string())
}

fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A fresh bearer token: 32 random bytes from the thread-local CSPRNG (ChaCha, OS-seeded), hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Signs `user` in: a new session id (no fixation) holding the user, and a new bearer token.
async fn sign_in(state: &AppState, session: &Session, user: &User) -> Result<String, ApiError> {
    session.cycle_id().await.map_err(|e| ApiError::Internal(e.into()))?;
    session
        .insert(SESSION_USER_KEY, user.id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let token = new_token();
    state.store.insert_token(user.id, &token_hash(&token)).await?;
    Ok(token)
}

/// `POST /api/register` → 201 `{user, token}`; the user is in "All" from now on and signed in.
#[utoipa::path(post, path = "/api/register", tag = "accounts", request_body = RegisterBody, responses((status = 201, description = "registered and signed in: {user, token}"), (status = 409, description = "e-mail or name taken"), (status = 422, description = "invalid input")))]
async fn register(
    State(state): State<AppState>,
    session: Session,
    Json(body): Json<RegisterBody>,
) -> Result<(StatusCode, Json<SignedIn>), ApiError> {
    let name = UserName::parse(&body.name)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let hash = spawn_blocking_in_span(move || hash_password(password.expose()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing failed: {e}")))?;
    let user = state.store.create_user(&name, &email, &hash).await?;
    tracing::info!(user_id = %user.id, "registered");
    let everyone = crate::queue::Job::Event {
        to: crate::queue::Audience::Everyone,
        event: crate::worker::USER_REGISTERED.to_owned(),
        data: serde_json::json!({ "user": { "id": user.id, "name": user.name } }),
    };
    state.announce(Some(everyone)).await;
    let token = sign_in(&state, &session, &user).await?;
    let user = UserView::of(&user, Some(&user), &state);
    Ok((StatusCode::CREATED, Json(SignedIn { user, token })))
}

/// `POST /api/login` → 200 `{user, token}` + session cookie; 401 `invalid_credentials` for an
/// unknown e-mail or a wrong password alike; 429 after repeated failures.
#[utoipa::path(post, path = "/api/login", tag = "accounts", request_body = LoginBody, responses((status = 200, description = "{user, token} and a session cookie"), (status = 401, description = "invalid credentials"), (status = 429, description = "too many failed attempts")))]
async fn login(
    State(state): State<AppState>,
    session: Session,
    Json(body): Json<LoginBody>,
) -> Result<Json<SignedIn>, ApiError> {
    let key = body.email.trim().to_lowercase();
    state
        .login_throttle
        .check(&key)
        .map_err(|retry_after| ApiError::Throttled { retry_after })?;
    let found = match Email::parse(&key) {
        Ok(email) => state.store.credentials(email.as_str()).await?,
        Err(_) => None,
    };
    let hash = found.as_ref().map_or_else(|| DUMMY_HASH.clone(), |(_, h)| h.clone());
    let password = body.password;
    let ok = spawn_blocking_in_span(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = match found {
        Some((user, _)) if ok => user,
        _ => {
            state.login_throttle.failed(&key);
            return Err(ApiError::InvalidCredentials);
        }
    };
    state.login_throttle.succeeded(&key);
    let token = sign_in(&state, &session, &user).await?;
    tracing::info!(user_id = %user.id, "signed in");
    let user = UserView::of(&user, Some(&user), &state);
    Ok(Json(SignedIn { user, token }))
}

/// `POST /api/logout` → 204. Ends the session and revokes the bearer token used, if any.
/// Answers 204 also when nobody was signed in.
#[utoipa::path(post, path = "/api/logout", tag = "accounts", responses((status = 204, description = "signed out")))]
async fn logout(
    State(state): State<AppState>,
    session: Session,
    caller: Option<CurrentUser>,
) -> Result<StatusCode, ApiError> {
    if let Some(CurrentUser {
        credential: Credential::Bearer(hash),
        ..
    }) = &caller
    {
        state.store.delete_token(hash).await?;
    }
    session.flush().await.map_err(|e| ApiError::Internal(e.into()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/me` → `{user}`; 401 when not signed in.
#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = [])), responses((status = 200, description = "{user}"), (status = 401, description = "not signed in")))]
async fn me(State(state): State<AppState>, caller: CurrentUser) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user": UserView::of(&caller.user, Some(&caller.user), &state) }))
}
