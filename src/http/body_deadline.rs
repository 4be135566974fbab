//! The request-body deadline (`HTTP_BODY_TIMEOUT_SECS`): a body must have arrived in full within
//! that time of its headers, or the request is answered 408 and its connection closed.
//!
//! A hard deadline rather than an idle timeout, so a body sent a byte at a time is cut as well as
//! one that stops. Handlers read bodies with different extractors (JSON, form, raw bytes), each
//! with its own rejection; this layer notes when the deadline was what failed the read and answers
//! 408 in place of whatever the handler made of it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    body::{Body, HttpBody},
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;
use tower_http::timeout::{DeadlineBody, TimeoutError};

use crate::error::ApiError;

/// Middleware (`axum::middleware::from_fn_with_state(limit, enforce)`): bounds the time to read
/// the body by `limit`. Requests without a body (most GETs, WebSocket upgrades) pass untouched.
pub async fn enforce(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let seen = expired.clone();
    let req = req.map(|body| {
        Body::new(DeadlineBody::new(limit, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let response = next.run(req).await;
    if expired.load(Ordering::Relaxed) {
        tracing::debug!(limit_secs = limit.as_secs(), "request body not received in time");
        return ApiError::RequestTimeout.into_response();
    }
    response
}
