//! [`ClientAddr`]: the address a request is counted under for per-address limits (WebSocket
//! connections, login and register throttles). It is the TCP peer, unless that peer is one of
//! `TRUSTED_PROXIES`: then it is the right-most `X-Forwarded-For` entry that is not itself a
//! trusted proxy, since each proxy appends the address it received the request from and only
//! what the trusted ones appended can be believed (a client writes anything to the left).

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};
use ipnet::IpNet;

use crate::{error::ApiError, state::AppState};

/// The client's address (IPv4-mapped IPv6 addresses in their IPv4 form), as above.
///
/// Extracting it fails (500) only when the request carries no peer address: the listener in
/// [`super::serve`] always gives one, and a router driven in-process needs axum's
/// `MockConnectInfo` layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("no peer address: {e}")))?;
        Ok(Self(client_ip(
            peer.ip(),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client address of a request from `peer` with `headers`, trusting `proxies`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    // Several X-Forwarded-For headers form one list, in order; walk it from the right.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|value| value.to_str().unwrap_or_default().rsplit(','))
        .filter_map(forwarded_ip)
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
}

/// One `X-Forwarded-For` entry: an address, or an address with a port as some proxies write it
/// (`203.0.113.7:41234`, `[2001:db8::1]:41234`); anything else is ignored.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
        let proxies = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &proxies), ip("198.51.100.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let proxies = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client wrote 1.1.1.1 itself; the proxy appended what it saw.
        let h = forwarded(&["1.1.1.1, 203.0.113.9"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &proxies), ip("203.0.113.9"));
        // Two proxies in a row: the inner one's address is skipped.
        let h = forwarded(&["1.1.1.1, 203.0.113.9, 10.0.0.5"]);
        assert_eq!(client_ip(ip("10.0.0.6"), &h, &proxies), ip("203.0.113.9"));
        // Repeated headers are one list, in order.
        let h = forwarded(&["1.1.1.1", "203.0.113.9", "10.0.0.5"]);
        assert_eq!(client_ip(ip("10.0.0.6"), &h, &proxies), ip("203.0.113.9"));
    }

    #[test]
    fn garbage_is_skipped_and_ports_are_dropped() {
        let proxies = nets(&["127.0.0.1/32"]);
        let h = forwarded(&["203.0.113.9:5000, unknown, , [2001:db8::7]:443, not an ip"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &proxies), ip("2001:db8::7"));
        let h = forwarded(&["203.0.113.9, ::ffff:198.51.100.4"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &proxies), ip("198.51.100.4"));
    }

    #[test]
    fn without_a_usable_entry_the_proxy_itself_is_the_client() {
        let proxies = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &HeaderMap::new(), &proxies), ip("127.0.0.1"));
        let h = forwarded(&["garbage, 10.0.0.1"]);
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &proxies), ip("127.0.0.1"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff203.0.113.9").unwrap());
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &proxies), ip("127.0.0.1"));
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_an_ipv4_proxy() {
        let proxies = nets(&["127.0.0.1/32"]);
        let h = forwarded(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), &h, &proxies), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("::ffff:192.0.2.1"), &h, &[]), ip("192.0.2.1"));
    }
}
