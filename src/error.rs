//! [`ApiError`]: every failure an HTTP handler can answer with, rendered as API.md's error shape
//! `{"error": {"code": "snake_case", "message": "human text"}}` with a fitting status.
//! Internal causes are logged here, never sent to the client.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{domain::Invalid, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, bad query string, bad path).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid session cookie or bearer token.
    #[error("sign in first")]
    Unauthenticated,
    /// 401: login with an unknown e-mail or a wrong password (one answer for both).
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// 401: a server-to-server request (Pusher HTTP API) whose signature does not check out.
    #[error("{0}")]
    BadSignature(String),
    /// 403: signed in, but not allowed to do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: names what was not found (`"user"`, `"group"`, `"route"`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: conflicts with what is stored (duplicate e-mail, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 408: the request body did not arrive within HTTP_BODY_TIMEOUT_SECS; the connection is closed.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 413: the body is over the size limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: well-formed, but a value is not acceptable.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// 429: too many attempts; retry after that many seconds.
    #[error("too many attempts, retry in {retry_after} s")]
    Throttled { retry_after: u64 },
    /// 503: the server is at a bound it keeps (password hashing); retry after that many seconds.
    #[error("the server is busy, retry in {retry_after} s")]
    Busy { retry_after: u64 },
    /// 429: the caller already has as many long polls waiting as one user may
    /// ([`crate::ws::waiters::MAX_POLLS_PER_USER`]); one must end before another is held.
    #[error("you already have {0} notification polls waiting; end one before starting another")]
    TooManyPolls(usize),
    /// 429: this client address holds as many WebSocket connections as allowed
    /// (MAX_CONNECTIONS_PER_IP); retry after that many seconds.
    #[error("too many connections from this address, retry in {retry_after} s")]
    TooManyConnections { retry_after: u64 },
    /// 429: the caller holds as many uploads that no message took as one user may
    /// ([`crate::http::attachments::MAX_PENDING`]); send or wait for the daily sweep.
    #[error("you have {0} uploads that no message uses yet; send them first")]
    TooManyUploads(i64),
    /// 503: the database is down or saturated.
    #[error("the store is unavailable, retry shortly")]
    StoreUnavailable(#[source] StoreError),
    /// 503: presence (Redis) is down, so who is online cannot be told.
    #[error("presence is unavailable, retry shortly")]
    PresenceUnavailable(#[from] crate::presence::PresenceError),
    /// 500: a bug or an unexpected failure; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Invalid(i) => (StatusCode::UNPROCESSABLE_ENTITY, i.code),
            Self::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::TooManyPolls(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_polls"),
            Self::TooManyConnections { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_connections"),
            Self::TooManyUploads(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_pending_uploads"),
            Self::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::PresenceUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "presence_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "request failed"),
            Self::StoreUnavailable(e) => tracing::warn!(error = %crate::telemetry::chain(e), "store unavailable"),
            Self::PresenceUnavailable(e) => tracing::warn!(error = %e, "presence unavailable"),
            _ => {}
        }
        let body = Json(json!({ "error": { "code": code, "message": self.to_string() } }));
        let mut response = (status, body).into_response();
        match self {
            Self::Throttled { retry_after } | Self::TooManyConnections { retry_after } | Self::Busy { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            // The rest of the body may still be on its way: reading the next request from this
            // connection would start in the middle of it.
            Self::RequestTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::StoreUnavailable(e),
            StoreError::Duplicate(field) => Self::Conflict {
                code: match field {
                    "email" => "email_taken",
                    "name" => "name_taken",
                    _ => "duplicate",
                },
                message: format!("this {field} is already taken"),
            },
            StoreError::UnknownReference => {
                Self::Invalid(Invalid::new("unknown_reference", "a referenced id does not exist"))
            }
            StoreError::UnusableAttachment => Self::Invalid(Invalid::new(
                "invalid_attachment",
                "attachment_ids must name your own uploads that no message has taken yet",
            )),
            StoreError::Files(e) => Self::Internal(e.into()),
            StoreError::Other(e) => Self::Internal(e.into()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonSyntaxError(e) => Self::bad_request("malformed_json", e.body_text()),
            JsonRejection::JsonDataError(e) => Self::Invalid(Invalid::new("invalid_body", e.body_text())),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            r => Self::bad_request("unreadable_body", r.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}
