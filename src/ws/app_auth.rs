//! The Laravel app's own channel authorisation (`AUTH_HOST` + `AUTH_ENDPOINT`), asked for
//! socket.io clients subscribing to private and presence channels that are not chatbox's own, as
//! laravel-echo-server asks it: a form POST of `channel_name` (and `socket_id`) carrying the
//! client's `auth.headers` and the Cookie of its handshake. 200 lets the socket join (a presence
//! channel as the `channel_data` the app answers); any other status is the client's
//! `subscription_error`.
//!
//! One HTTP client, built at start-up; every request has a deadline and a bounded answer.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::core::{Member, presence_member};

/// Longest the app may take to answer one authorisation: a client waits this long for its
/// subscription at worst, and its other frames wait behind it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read: Laravel's is `true` or `{"channel_data": {…}}`, well under 1 KB.
const MAX_ANSWER: usize = 16 * 1024;
/// Most header bytes (names and values) forwarded with one request.
const MAX_FORWARDED: usize = 8 * 1024;
/// Headers never taken from a client's `auth.headers`: they describe the request chatbox makes,
/// not the client's credentials.
const NOT_FORWARDED: [&str; 12] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

/// Status answered when the app cannot be reached or answers nonsense (laravel-echo-server
/// reports no status then; laravel-echo ignores it either way).
pub const UNREACHABLE: u16 = 503;
pub const BAD_ANSWER: u16 = 502;

pub struct AppAuth {
    client: reqwest::Client,
    url: String,
}

impl AppAuth {
    /// The client for `{host}{endpoint}`.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(host: &str, endpoint: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the AUTH_HOST client")?;
        Ok(Self {
            client,
            url: format!("{host}{endpoint}"),
        })
    }

    /// Asks the app whether socket `socket_id` may join `channel`.
    ///
    /// # Errors
    /// The status to report in `subscription_error`: the app's own when it is not 200,
    /// [`UNREACHABLE`] when it did not answer in time, [`BAD_ANSWER`] for an answer too large or,
    /// on a presence channel, without usable `channel_data`; 431 when the client's headers are
    /// too large to forward.
    pub async fn authorize(
        &self,
        channel: &str,
        socket_id: &str,
        presence: bool,
        headers: &[(String, String)],
        cookie: Option<&str>,
    ) -> Result<Option<Member>, u16> {
        let forwarded = forwarded_headers(headers, cookie)?;
        let form = [("channel_name", channel), ("socket_id", socket_id)];
        let sent = self.client.post(&self.url).headers(forwarded).form(&form).send().await;
        let mut answer = match sent {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "AUTH_HOST did not answer a channel authorisation");
                return Err(UNREACHABLE);
            }
        };
        let status = answer.status().as_u16();
        if status != 200 {
            tracing::debug!(status, channel, "AUTH_HOST refused a subscription");
            return Err(status);
        }
        let mut body = Vec::new();
        loop {
            match answer.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_ANSWER => body.extend_from_slice(&chunk),
                Ok(Some(_)) => return Err(BAD_ANSWER),
                Ok(None) => break,
                Err(_) => return Err(UNREACHABLE),
            }
        }
        if !presence {
            return Ok(None);
        }
        channel_data(&body).map(Some).ok_or(BAD_ANSWER)
    }
}

/// The member a presence answer names: `{"channel_data": {user_id, user_info}}` as Laravel's
/// Redis broadcaster answers, or `channel_data` as a JSON string as its Pusher broadcaster does.
fn channel_data(body: &[u8]) -> Option<Member> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let data = match answer.get("channel_data")? {
        Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    presence_member(&data)
}

/// The client's headers minus [`NOT_FORWARDED`], its handshake Cookie unless it gave one, and
/// `X-Requested-With: XMLHttpRequest` (Laravel answers 401 rather than redirecting to a login
/// page then), all within [`MAX_FORWARDED`] bytes.
fn forwarded_headers(headers: &[(String, String)], cookie: Option<&str>) -> Result<HeaderMap, u16> {
    let mut map = HeaderMap::new();
    let mut size = 0;
    let handshake_cookie = cookie.map(|c| ("cookie".to_owned(), c.to_owned()));
    let given = headers.iter().cloned();
    for (name, value) in given.chain(handshake_cookie) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if NOT_FORWARDED.contains(&name.as_str()) || (name == reqwest::header::COOKIE && map.contains_key(&name)) {
            continue;
        }
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        size += name.as_str().len() + value.len();
        if size > MAX_FORWARDED {
            return Err(431);
        }
        map.insert(name, value);
    }
    map.entry("x-requested-with")
        .or_insert(HeaderValue::from_static("XMLHttpRequest"));
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_credentials_but_not_the_request_framing() {
        let given = vec![
            ("Authorization".to_owned(), "Bearer t".to_owned()),
            ("Host".to_owned(), "evil".to_owned()),
            ("Content-Length".to_owned(), "1".to_owned()),
            ("X-CSRF-TOKEN".to_owned(), "c".to_owned()),
            ("bad name".to_owned(), "x".to_owned()),
        ];
        let map = forwarded_headers(&given, Some("laravel_session=s")).unwrap();
        assert_eq!(map["authorization"], "Bearer t");
        assert_eq!(map["x-csrf-token"], "c");
        assert_eq!(map["cookie"], "laravel_session=s");
        assert_eq!(map["x-requested-with"], "XMLHttpRequest");
        assert!(!map.contains_key("host") && !map.contains_key("content-length"));
        let own_cookie = vec![("Cookie".to_owned(), "mine=1".to_owned())];
        assert_eq!(
            forwarded_headers(&own_cookie, Some("hs=1")).unwrap()["cookie"],
            "mine=1"
        );
        let huge = vec![("X-Big".to_owned(), "x".repeat(MAX_FORWARDED))];
        assert_eq!(forwarded_headers(&huge, None), Err(431));
    }

    #[test]
    fn reads_channel_data_as_laravel_answers_it() {
        let redis = br#"{"channel_data":{"user_id":7,"user_info":{"name":"g"}}}"#;
        assert_eq!(
            channel_data(redis),
            Some(("7".into(), serde_json::json!({"name": "g"})))
        );
        let pusher = br#"{"auth":"k:s","channel_data":"{\"user_id\":\"u\",\"user_info\":{}}"}"#;
        assert_eq!(channel_data(pusher).unwrap().0, "u");
        assert_eq!(channel_data(b"true"), None);
        assert_eq!(channel_data(br#"{"channel_data":{"user_info":{}}}"#), None);
    }
}
