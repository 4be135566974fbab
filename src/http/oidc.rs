//! Sign-in with OpenID Connect (API.md § Sign-in with OpenID Connect): `GET /auth/oidc/login`
//! sends the browser to the provider, `GET /auth/oidc/callback` signs it in as `POST /api/login`
//! does and sends it to `/`. Both answer 404 when the OIDC_* settings are absent.
//!
//! The sign-in under way (PKCE verifier, `nonce`) is kept in the database under the hash of its
//! `state` and bound to the browser by the hash of a `chatbox_oidc` cookie; the callback takes it
//! once, within [`LOGIN_TTL`]. That cookie is `SameSite=Lax` because the callback is a navigation
//! another site (the provider) starts, on which the browser withholds the `Strict` session
//! cookie.
//!
//! The account is found by the provider's (issuer, subject); failing that, a verified e-mail
//! links the identity to the account with that e-mail; otherwise a new account is made. Every
//! failure ends in a redirect to `/?oidc_error={code}`, which the page shows, and a log line at
//! info naming the cause (never a token, a code or an e-mail).

use axum::{
    Router,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use rand::RngCore;
use serde::Deserialize;
use tower_sessions::{
    Session,
    cookie::{Cookie, SameSite},
};

use super::{accounts, client_addr::ClientAddr, extract::token_hash, passwords::NO_PASSWORD};
use crate::{
    domain::{Email, UserName},
    error::ApiError,
    limits::OIDC_LOGINS_PER_ADDRESS,
    oidc::{Identity, OidcError},
    state::AppState,
    store::{StoreError, User},
};

/// How long a sign-in may take between the redirect to the provider and its callback: ample for
/// typing a password and a second factor, short enough that a leaked `state` is soon worthless.
pub const LOGIN_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The cookie binding a sign-in under way to the browser that started it.
pub const OIDC_COOKIE: &str = "chatbox_oidc";

/// New accounts named after a taken name get " 2", " 3", … up to this; past it a random suffix.
const NAME_SUFFIXES: u32 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/login", get(login))
        .route("/auth/oidc/callback", get(callback))
}

/// `GET /auth/oidc/login` → 302 to the provider's authorization endpoint.
#[utoipa::path(get, path = "/auth/oidc/login", tag = "accounts", responses((status = 302, description = "to the provider's authorization endpoint (code flow, PKCE S256, state, nonce); sets the chatbox_oidc cookie"), (status = 404, description = "OpenID Connect is not configured"), (status = 429, description = "too many sign-ins started from this address"), (status = 503, description = "the provider cannot be reached (an HTML page)")))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(provider) = state.oidc.clone() else {
        return Err(ApiError::NotFound("route"));
    };
    state
        .limits
        .hit(&OIDC_LOGINS_PER_ADDRESS, &client.to_string())
        .await
        .map_err(|wait| ApiError::Throttled { retry_after: wait.0 })?;
    let started = match provider.start().await {
        Ok(started) => started,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect sign-in not started");
            return Ok(unavailable_page(provider.name()));
        }
    };
    // One cookie per browser, kept across sign-ins started in two tabs.
    let browser = browser_id(&headers).unwrap_or_else(random_hex);
    state
        .store
        .insert_oidc_login(
            &token_hash(&started.state),
            &token_hash(&browser),
            &started.nonce,
            &started.pkce_verifier,
        )
        .await?;
    let cookie = browser_cookie(browser, state.config.cookie_secure, LOGIN_TTL);
    Ok(redirect(&started.url, Some(cookie)))
}

/// What the provider sends back: `code` and `state`, or `error`.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback?code&state` → session cookie and 302 to `/`; any failure → 302 to
/// `/?oidc_error={code}`.
#[utoipa::path(get, path = "/auth/oidc/callback", tag = "accounts", params(("code" = String, Query, description = "the authorization code"), ("state" = String, Query, description = "the state of the sign-in this browser started")), responses((status = 302, description = "signed in: session cookie, to /; or to /?oidc_error=expired|denied|refused|invalid|unavailable|failed"), (status = 404, description = "OpenID Connect is not configured")))]
async fn callback(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    if state.oidc.is_none() {
        return Err(ApiError::NotFound("route"));
    }
    // The binding cookie is spent whatever happens next.
    let spent = browser_cookie(String::new(), state.config.cookie_secure, std::time::Duration::ZERO);
    let user = match signed_in_user(&state, &headers, query).await {
        Ok(user) => user,
        Err(Failure::Refused(code, reason)) => {
            tracing::info!(reason = %reason, "OpenID Connect sign-in refused");
            return Ok(redirect(&format!("/?oidc_error={code}"), Some(spent)));
        }
        Err(Failure::Store(e)) => return Err(e.into()),
    };
    accounts::sign_in(&state, &session, &user).await?;
    tracing::info!(user_id = %user.id, "signed in with OpenID Connect");
    Ok(redirect("/", Some(spent)))
}

/// Why a callback did not sign anyone in.
enum Failure {
    /// The `oidc_error` code for the page, and the cause for the log.
    Refused(&'static str, String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The account the callback signs in: checks the state, exchanges the code, then finds, links
/// or creates the account.
async fn signed_in_user(
    state: &AppState,
    headers: &HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Result<User, Failure> {
    let provider = state
        .oidc
        .clone()
        .ok_or_else(|| Failure::Refused("failed", "not configured".into()))?;
    let Ok(Query(q)) = query else {
        return Err(Failure::Refused("failed", "unreadable query string".into()));
    };
    if let Some(error) = q.error {
        let error: String = error.chars().take(64).collect();
        return Err(Failure::Refused("denied", format!("the provider answered {error:?}")));
    }
    let (Some(code), Some(login_state)) = (q.code, q.state) else {
        return Err(Failure::Refused("failed", "no code or no state".into()));
    };
    let expired = |why: &str| Failure::Refused("expired", why.to_owned());
    let browser = browser_id(headers).ok_or_else(|| expired("no sign-in cookie"))?;
    let since = chrono::Utc::now() - chrono::Duration::from_std(LOGIN_TTL).unwrap_or_default();
    let pending = state
        .store
        .take_oidc_login(&token_hash(&login_state), &token_hash(&browser), since)
        .await?
        .ok_or_else(|| expired("unknown, used or expired state, or another browser"))?;
    let identity = provider
        .finish(code, pending.pkce_verifier, pending.nonce)
        .await
        .map_err(|e| {
            let code = match e {
                OidcError::Unavailable(_) => "unavailable",
                OidcError::Refused(_) => "refused",
                OidcError::InvalidToken(_) => "invalid",
            };
            Failure::Refused(code, e.to_string())
        })?;
    Ok(account_of(state, &identity).await?)
}

/// The account `identity` signs in to: the one it is linked to, else the one with its verified
/// e-mail (linked from now on), else a new one.
async fn account_of(state: &AppState, identity: &Identity) -> Result<User, StoreError> {
    let store = &state.store;
    if let Some(user) = linked_user(state, identity).await? {
        return Ok(user);
    }
    let verified = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(|e| Email::parse(e).ok());
    if let Some(email) = &verified
        && let Some((user, _)) = store.credentials(email.as_str()).await?
    {
        match store
            .link_oidc_identity(&identity.issuer, &identity.subject, user.id, NO_PASSWORD)
            .await
        {
            Ok(()) => {
                tracing::info!(user_id = %user.id, "OpenID Connect identity linked by its verified e-mail");
                accounts::close_sockets(state, user.id).await;
                return Ok(user);
            }
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e),
        }
        // A parallel callback linked it first.
        return linked_user(state, identity).await?.ok_or(StoreError::UnknownReference);
    }
    create_user(state, identity, verified).await
}

async fn linked_user(state: &AppState, identity: &Identity) -> Result<Option<User>, StoreError> {
    match state.store.oidc_identity(&identity.issuer, &identity.subject).await? {
        Some(id) => state.store.user(id).await,
        None => Ok(None),
    }
}

/// A new account for `identity`, named after it (a number added while the name is taken), with
/// its verified e-mail or, without one, a placeholder nobody can receive mail at or guess. An
/// unverified e-mail is never stored: it could block its real owner's registration.
async fn create_user(state: &AppState, identity: &Identity, verified: Option<Email>) -> Result<User, StoreError> {
    let base = base_name(identity);
    let mut email = verified;
    let mut attempt = 1;
    loop {
        let name = match attempt {
            1 => base.clone(),
            n if n <= NAME_SUFFIXES => format!("{base} {n}"),
            _ => format!("{base} {}", &random_hex()[..6]),
        };
        let name = UserName::parse(&name).unwrap_or_else(|_| unreachable!("base_name leaves a valid name"));
        let address = match &email {
            Some(e) => e.clone(),
            None => placeholder_email(),
        };
        let created = state
            .store
            .create_oidc_user(&name, &address, NO_PASSWORD, &identity.issuer, &identity.subject)
            .await;
        match created {
            Ok(user) => {
                tracing::info!(user_id = %user.id, "registered with OpenID Connect");
                let everyone = crate::queue::Job::Event {
                    to: crate::queue::Audience::Everyone,
                    event: crate::worker::USER_REGISTERED.to_owned(),
                    data: serde_json::json!({ "user": { "id": user.id, "name": user.name } }),
                };
                state.announce(Some(everyone)).await;
                return Ok(user);
            }
            Err(StoreError::Duplicate("name")) if attempt <= NAME_SUFFIXES + 3 => attempt += 1,
            // Registered by someone else since it was looked up: this account goes without it.
            Err(StoreError::Duplicate("email")) if email.is_some() => email = None,
            Err(StoreError::Duplicate("identity")) => {
                return linked_user(state, identity).await?.ok_or(StoreError::UnknownReference);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A valid name from the `name` / `given_name` claim, else the e-mail's local part, else "user":
/// characters a name may not hold are dropped, white space collapsed, room left for a suffix.
fn base_name(identity: &Identity) -> String {
    let from_email = identity.email.as_deref().and_then(|e| e.split('@').next());
    let candidates = [identity.name.as_deref(), from_email];
    for raw in candidates.into_iter().flatten() {
        let kept: String = raw
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c })
            .filter(|&c| c == ' ' || UserName::parse(c.encode_utf8(&mut [0; 4])).is_ok())
            .collect();
        let name: String = kept
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(UserName::MAX_CHARS - 7)
            .collect();
        if UserName::parse(&name).is_ok() {
            return name.trim().to_owned();
        }
    }
    "user".to_owned()
}

/// `oidc-{32 hex}@users.invalid`: `.invalid` can never receive mail (RFC 2606), and 128 random
/// bits cannot be registered ahead by someone else.
fn placeholder_email() -> Email {
    let raw = format!("oidc-{}@users.invalid", &random_hex()[..32]);
    Email::parse(&raw).unwrap_or_else(|_| unreachable!("the placeholder has the shape of an e-mail"))
}

/// 32 random bytes from the thread-local CSPRNG, hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The browser's `chatbox_oidc` value, when it is one this server could have set.
fn browser_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == OIDC_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `chatbox_oidc` cookie: sent back only to `/auth/oidc/…`, `Lax` so the provider's
/// redirect carries it, for `max_age` (zero: deleted).
fn browser_cookie(value: String, secure: bool, max_age: std::time::Duration) -> Cookie<'static> {
    let max_age = tower_sessions::cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(0));
    Cookie::build((OIDC_COOKIE, value))
        .path("/auth/oidc")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build()
}

/// 302 to `location`, never cached, setting `cookie`.
fn redirect(location: &str, cookie: Option<Cookie<'static>>) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        headers.append(header::SET_COOKIE, v);
    }
    response
}

/// 503: a short page saying the provider cannot be reached, with the way back.
fn unavailable_page(provider: &str) -> Response {
    let mut name = String::new();
    for c in provider.chars() {
        match c {
            '&' => name.push_str("&amp;"),
            '<' => name.push_str("&lt;"),
            '>' => name.push_str("&gt;"),
            '"' => name.push_str("&quot;"),
            c => name.push(c),
        }
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Sign-in unavailable</title>\
         <p>Signing in with {name} is not possible right now: {name} cannot be reached. Please try again in a minute.</p>\
         <p><a href=\"/\">Back to chatbox</a></p></html>"
    );
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: Option<&str>, email: Option<&str>) -> Identity {
        Identity {
            issuer: "https://issuer.example".into(),
            subject: "1".into(),
            email: email.map(str::to_owned),
            email_verified: false,
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn names_are_made_valid_and_leave_room_for_a_suffix() {
        assert_eq!(base_name(&identity(Some("  Ann \t Lee "), None)), "Ann Lee");
        assert_eq!(base_name(&identity(Some("A\u{200B}nn\u{0007}"), None)), "Ann");
        assert_eq!(
            base_name(&identity(Some("\u{200B}"), Some("bob.k@example.com"))),
            "bob.k"
        );
        assert_eq!(base_name(&identity(None, None)), "user");
        let long = base_name(&identity(Some(&"x".repeat(100)), None));
        assert_eq!(long.chars().count(), UserName::MAX_CHARS - 7);
        assert!(UserName::parse(&format!("{long} {}", "abcdef")).is_ok());
    }

    #[test]
    fn placeholders_are_unique_and_undeliverable() {
        let (a, b) = (placeholder_email(), placeholder_email());
        assert_ne!(a, b);
        assert!(a.as_str().ends_with("@users.invalid"), "{a:?}");
    }
}
