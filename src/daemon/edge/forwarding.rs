//! The headers a request carries to a machine: `X-Forwarded-For`, `-Proto`, `-Host`,
//! `-Port`, `-Ssl`, `X-Real-IP`, `Fly-Client-IP` and `Fly-Forwarded-Port` set as Fly's
//! proxy sets them, RFC 7239's `Forwarded` said the same way, a `Via` entry added (to
//! responses too), and the headers that belong to the client's connection dropped (an
//! upgrade's kept). The hyper path sets them here;
//! the relay writes the same into its heads (`relay/message.rs`) from `HopFields`.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

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

/// Headers only the edge sets: a client's own are replaced (`X-Forwarded-For` is
/// extended). `X-Forwarded-Port` is not among them: as on Fly, a client (another proxy
/// in front) may say which port it set out to reach, and the edge's port is the default.
/// `Forwarded` is replaced, not extended: frameworks that read it take its first element
/// (Spring) or prefer it to `X-Forwarded-For` (Rack 3), so a client's own would tell them
/// its address and scheme.
pub(super) const SET_BY_EDGE: [&str; 8] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-ssl",
    "x-real-ip",
    "fly-client-ip",
    "fly-forwarded-port",
];

/// Where a client's connection came from and where it arrived: what the forwarding
/// headers tell a machine.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClientHop {
    /// The client's address.
    pub peer: SocketAddr,
    /// The edge's port the client connected to.
    pub port: u16,
    /// Whether the edge ended TLS for it.
    pub scheme: Scheme,
}

impl ClientHop {
    /// `X-Forwarded-Ssl`: `on` when the client came over TLS.
    fn ssl(&self) -> &'static str {
        match self.scheme {
            Scheme::Http => "off",
            Scheme::Https => "on",
        }
    }
}

/// A `Via` entry for the edge, for a message that reached it over `version` (the edge
/// names itself `lakefly`, as Fly's proxy says `fly.io`).
pub(super) fn via(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9 lakefly",
        Version::HTTP_10 => "1.0 lakefly",
        Version::HTTP_2 => "2 lakefly",
        Version::HTTP_3 => "3 lakefly",
        _ => "1.1 lakefly",
    }
}

/// `Forwarded`'s (RFC 7239) start for requests from `hop`: `for` the client (an IPv6
/// address quoted and bracketed) and `proto`; [`push_forwarded_host`] ends it.
fn forwarded_from(hop: &ClientHop) -> String {
    match hop.peer.ip() {
        std::net::IpAddr::V4(ip) => format!("for={ip};proto={}", hop.scheme.as_str()),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={}", hop.scheme.as_str()),
    }
}

/// Appends `Forwarded`'s `host`, the one the request asked for, quoted (a port's colon is
/// no token character).
pub(super) fn push_forwarded_host(value: &mut Vec<u8>, host: &[u8]) {
    value.extend_from_slice(b";host=\"");
    for &byte in host {
        if byte == b'"' || byte == b'\\' {
            value.push(b'\\');
        }
        value.push(byte);
    }
    value.push(b'"');
}

/// The forwarding header lines of a connection's requests, made once per connection for
/// the relay, which writes request heads as bytes.
#[derive(Debug)]
pub(super) struct HopFields {
    /// `Forwarded` up to the host each request names.
    pub forwarded: String,
    /// The client's address, the last entry of `X-Forwarded-For`.
    pub ip: String,
    /// The edge's port, for an `X-Forwarded-Port` the client did not send.
    pub port: String,
    /// The lines every request on the connection gets alike, each ending in CRLF.
    pub fixed: Vec<u8>,
}

impl HopFields {
    /// The fields of `hop`'s requests.
    pub fn of(hop: &ClientHop) -> Self {
        let ip = hop.peer.ip().to_string();
        let port = hop.port.to_string();
        let mut fixed = Vec::with_capacity(160);
        for (name, value) in [
            ("x-forwarded-proto", hop.scheme.as_str()),
            ("x-forwarded-ssl", hop.ssl()),
            ("fly-forwarded-port", &port),
            ("x-real-ip", &ip),
            ("fly-client-ip", &ip),
        ] {
            for part in [name, ": ", value, "\r\n"] {
                fixed.extend_from_slice(part.as_bytes());
            }
        }
        HopFields {
            forwarded: forwarded_from(hop),
            ip,
            port,
            fixed,
        }
    }
}

/// Sets the forwarding headers of a request that reached the edge over `version`, drops
/// hop-by-hop ones (keeping an upgrade's).
pub(super) fn prepare_headers(
    headers: &mut HeaderMap,
    hop: &ClientHop,
    version: Version,
    upgrade: bool,
) {
    let ip = hop.peer.ip().to_string();
    let host = headers.get(header::HOST).cloned();
    let upgrade_to = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) if !earlier.trim().is_empty() => format!("{earlier}, {ip}"),
        _ => ip.clone(),
    };
    for name in SET_BY_EDGE {
        headers.remove(name);
    }
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    let port = hop.port.to_string();
    set(headers, "x-forwarded-for", &forwarded_for);
    set(headers, "x-forwarded-proto", hop.scheme.as_str());
    set(headers, "x-forwarded-ssl", hop.ssl());
    set(headers, "fly-forwarded-port", &port);
    if !headers.contains_key("x-forwarded-port") {
        set(headers, "x-forwarded-port", &port);
    }
    set(headers, "x-real-ip", &ip);
    set(headers, "fly-client-ip", &ip);
    let mut forwarded = forwarded_from(hop).into_bytes();
    if let Some(host) = &host {
        push_forwarded_host(&mut forwarded, host.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&forwarded) {
        headers.insert(header::FORWARDED, value);
    }
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    // After the client's own entries (other proxies before the edge), as a list grows.
    headers.append(header::VIA, HeaderValue::from_static(via(version)));
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
    // Read by its Transfer-Encoding (RFC 9112 6.3), a message's Content-Length is wrong,
    // and would frame the next hop's copy of the body, re-framed here, short or long.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
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

    fn hop(peer: &str, port: u16, scheme: Scheme) -> ClientHop {
        ClientHop {
            peer: peer.parse().expect("addr"),
            port,
            scheme,
        }
    }

    #[test]
    fn forwarded_quotes_an_ipv6_client_and_the_host() {
        let client = hop("[2001:db8::17]:5000", 443, Scheme::Https);
        let mut value = forwarded_from(&client).into_bytes();
        push_forwarded_host(&mut value, br#"shop.example:8443"#);
        assert_eq!(
            String::from_utf8(value).expect("utf8"),
            r#"for="[2001:db8::17]";proto=https;host="shop.example:8443""#
        );
        let mut odd = Vec::new();
        push_forwarded_host(&mut odd, br#"a"b\c"#);
        assert_eq!(odd, br#";host="a\"b\\c""#);
    }

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
        headers.insert(
            header::FORWARDED,
            HeaderValue::from_static("for=6.6.6.6;proto=https"),
        );
        headers.insert("fly-forwarded-port", HeaderValue::from_static("1"));
        headers.insert("x-forwarded-ssl", HeaderValue::from_static("on"));
        headers.insert(header::VIA, HeaderValue::from_static("1.1 front"));
        let client = hop("127.0.0.9:5000", 8001, Scheme::Http);
        prepare_headers(&mut headers, &client, Version::HTTP_11, false);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(headers["x-real-ip"], "127.0.0.9");
        assert_eq!(headers["fly-client-ip"], "127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-ssl"], "off");
        assert_eq!(headers["x-forwarded-host"], "hello.localhost");
        assert_eq!(
            headers
                .get_all(header::FORWARDED)
                .iter()
                .collect::<Vec<_>>(),
            ["for=127.0.0.9;proto=http;host=\"hello.localhost\""],
            "the client's own is replaced"
        );
        assert_eq!(headers["fly-forwarded-port"], "8001");
        assert_eq!(headers["x-forwarded-port"], "8001");
        let via: Vec<_> = headers.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.1 front", "1.1 lakefly"]);
        assert!(!headers.contains_key("x-private"));
        assert!(!headers.contains_key(header::CONNECTION));
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));
    }

    #[test]
    fn a_length_beside_a_transfer_encoding_is_dropped_and_kept_alone() {
        let mut both = HeaderMap::new();
        both.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        both.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut both);
        assert!(both.is_empty(), "{both:?}");
        let mut length = HeaderMap::new();
        length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        strip_hop_by_hop(&mut length);
        assert_eq!(length[header::CONTENT_LENGTH], "5");
    }

    #[test]
    fn a_port_the_client_names_is_kept_and_a_forged_host_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-port", HeaderValue::from_static("443"));
        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        let client = hop("[::1]:5000", 8443, Scheme::Https);
        prepare_headers(&mut headers, &client, Version::HTTP_2, false);
        assert_eq!(headers["x-forwarded-port"], "443");
        assert_eq!(headers["fly-forwarded-port"], "8443");
        assert_eq!(headers["x-forwarded-ssl"], "on");
        assert_eq!(headers["fly-client-ip"], "::1");
        assert_eq!(headers[header::VIA], "2 lakefly");
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn the_relays_fixed_fields_say_what_the_hyper_path_sets() {
        let client = hop("127.0.0.9:5000", 80, Scheme::Http);
        let fields = HopFields::of(&client);
        assert_eq!(fields.ip, "127.0.0.9");
        assert_eq!(fields.port, "80");
        let mut headers = HeaderMap::new();
        prepare_headers(&mut headers, &client, Version::HTTP_11, false);
        let text = String::from_utf8(fields.fixed).expect("ascii");
        for line in text.split_terminator("\r\n") {
            let (name, value) = line.split_once(": ").expect("a field line");
            assert_eq!(headers[name], value, "{name}");
        }
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn an_upgrade_keeps_its_connection_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        let client = hop("127.0.0.1:1", 443, Scheme::Https);
        prepare_headers(&mut headers, &client, Version::HTTP_11, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers["x-forwarded-proto"], "https");
    }
}
