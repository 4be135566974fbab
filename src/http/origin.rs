//! Where a request comes from: the allow-list check shared by cookie-authenticated writes and
//! the WebSocket handshake. A request is same-site when its `Origin` is the server's own (the
//! `Host` it was sent to) or in `ALLOWED_ORIGINS`; a request without `Origin` is a non-browser
//! client and is accepted, unless the browser's `Sec-Fetch-Site` says another site started it.

use axum::http::{HeaderMap, header};

use crate::config::Config;

/// Whether `origin` (`scheme://host[:port]`) is the server's own or explicitly allowed.
pub fn origin_allowed(origin: &str, headers: &HeaderMap, config: &Config) -> bool {
    let origin = origin.trim_end_matches('/').to_ascii_lowercase();
    if config.allowed_origins.contains(&origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// The CSRF rule for cookie-authenticated writes (see the module docs).
pub fn same_site_request(headers: &HeaderMap, config: &Config) -> bool {
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return false;
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => origin_allowed(origin, headers, config),
        Some(Err(_)) => false,
    }
}
