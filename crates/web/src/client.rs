//! Who is calling: the client IP (honouring `X-Forwarded-For` only from configured proxies)
//! and the user agent.

use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use twofold_core::model::RequestMeta;

pub struct Client(pub RequestMeta);

impl FromRequestParts<AppState> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect::<Vec<_>>();
        let ip = peer.map(|p| client_ip(p, &forwarded, &state.settings().trusted_proxies));
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Client(RequestMeta { ip, user_agent }))
    }
}

/// Walks `X-Forwarded-For` from the right while hops are trusted proxies; the first untrusted
/// address is the client. An untrusted peer's header is ignored entirely, so it cannot be spoofed.
fn client_ip(peer: IpAddr, forwarded: &[String], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let xff = vec!["6.6.6.6".to_string(), "203.0.113.9".to_string()];
        // Untrusted peer: header ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &xff, &trusted),
            ip("198.51.100.1")
        );
        // Trusted peer: the rightmost untrusted hop, not the spoofable leftmost one.
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &trusted), ip("203.0.113.9"));
        // No trusted proxies configured: header ignored.
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &[]), ip("10.1.2.3"));
        // Garbage stops the walk.
        assert_eq!(
            client_ip(ip("10.1.2.3"), &["nonsense".to_string()], &trusted),
            ip("10.1.2.3")
        );
    }
}
