//! The headers a request carries to a machine: `X-Forwarded-For`, `-Proto`, `-Host`,
//! `X-Real-IP` and `Fly-Client-IP` set, the ones that belong to the client's connection
//! dropped (an upgrade's kept). The relay writes the same into its heads (`relay/message.rs`).

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::Scheme;

/// Headers that describe one connection, not the request; never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Sets the forwarding headers, drops hop-by-hop ones (keeping an upgrade's).
pub(super) fn prepare_headers(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    scheme: Scheme,
    upgrade: bool,
) {
    let ip = peer.ip().to_string();
    let host = headers.get(header::HOST).cloned();
    let upgrade_to = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {ip}"),
        _ => ip.clone(),
    };
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(headers, "x-forwarded-for", &forwarded_for);
    set(headers, "x-forwarded-proto", scheme.as_str());
    set(headers, "x-real-ip", &ip);
    set(headers, "fly-client-ip", &ip);
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    if upgrade {
        if let Some(to) = upgrade_to {
            headers.insert(header::UPGRADE, to);
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
}

/// Drops the headers that belong to one connection, and those its `Connection` names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are this hop's too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

/// Whether the request asks to switch protocols (`Connection: upgrade` and `Upgrade`).
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_are_set_and_hop_by_hop_ones_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("hello.localhost"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("fly-client-ip", HeaderValue::from_static("6.6.6.6"));
        let peer: SocketAddr = "127.0.0.9:5000".parse().expect("addr");
        prepare_headers(&mut headers, peer, Scheme::Http, false);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(headers["x-real-ip"], "127.0.0.9");
        assert_eq!(headers["fly-client-ip"], "127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "hello.localhost");
        assert!(!headers.contains_key("x-private"));
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));
    }

    #[test]
    fn an_upgrade_keeps_its_connection_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        prepare_headers(
            &mut headers,
            "127.0.0.1:1".parse().expect("addr"),
            Scheme::Https,
            true,
        );
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers["x-forwarded-proto"], "https");
    }
}
