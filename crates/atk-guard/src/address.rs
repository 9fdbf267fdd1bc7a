//! The caller's address: the TCP peer, or `X-Forwarded-For` when the peer
//! is a proxy the operator declared trusted.

use std::net::IpAddr;

use atk_core::limits::IpAllowlist;
use axum::http::HeaderMap;

/// The last address in `X-Forwarded-For` that is not a trusted proxy, when
/// the peer is one; otherwise the peer. A client can write anything in the
/// header, so it is read from the right and only as far as trusted proxies
/// appended: the first address they did not add is the client, and what is
/// left of it is never read. Something unreadable before that point gives
/// no address at all (a key with an IP allowlist is then refused), never
/// the proxy's own.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: Option<&IpAllowlist>,
) -> Option<IpAddr> {
    let Some(trusted) = trusted else {
        return peer;
    };
    if !peer.is_some_and(|ip| trusted.admits(ip)) {
        return peer;
    }
    let values: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    for value in values.into_iter().rev() {
        let text = value.to_str().ok()?;
        for entry in text.rsplit(',') {
            let ip: IpAddr = entry.trim().parse().ok()?;
            if !trusted.admits(ip) {
                return Some(ip);
            }
        }
    }
    // Only trusted proxies in the chain: the first of them is the client.
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = IpAllowlist::parse(&["10.0.0.0/8"]).unwrap();
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        let forged = headers("203.0.113.1, 192.0.2.7, 10.0.0.4");
        // Behind the trusted proxies: the last address they did not add.
        assert_eq!(
            client_ip(Some(proxy), &forged, Some(&trusted)),
            Some("192.0.2.7".parse().unwrap())
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(Some(stranger), &forged, Some(&trusted)),
            Some(stranger)
        );
        // With no trusted proxies configured, always the peer.
        assert_eq!(client_ip(Some(proxy), &forged, None), Some(proxy));
        // What the client wrote left of the proxies' part is never read,
        // even when it is not an address.
        assert_eq!(
            client_ip(Some(proxy), &headers("garbage, 192.0.2.7"), Some(&trusted)),
            Some("192.0.2.7".parse().unwrap())
        );
        // Garbage where a trusted proxy should have written: no address,
        // never the proxy's own.
        assert_eq!(
            client_ip(Some(proxy), &headers("192.0.2.7, garbage"), Some(&trusted)),
            None
        );
    }
}
