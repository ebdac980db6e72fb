//! Request and response heads as the relay reads and rewrites them: parsed in place with
//! `httparse`, checked for unambiguous framing, and written out again for the next hop
//! with this hop's headers dropped and the forwarding headers set.

use std::mem::MaybeUninit;

use http::{Method, StatusCode, Version};

use super::super::compress::{self, negotiate, Coding};
use super::super::forwarding::{push_forwarded_host, via, HopFields, SET_BY_EDGE};
use super::body::Framing;

/// Most header fields in one head (as hyper allows).
const MAX_HEADERS: usize = 100;
/// Room for a head's header fields, left uninitialised: httparse writes the fields it
/// finds, and setting all hundred first cost about as much as parsing a small head.
type Fields<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Empty room for a head's fields.
fn fields<'b>() -> Fields<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// Most bytes in one head, request or response, on the relay and the full server alike.
pub const MAX_HEAD: usize = 64 * 1024;

/// Headers that describe one connection, not the message; never forwarded. (A body's
/// `Transfer-Encoding` is kept: its bytes pass through in their own framing.)
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// A request head the relay can forward as it is framed.
#[derive(Debug)]
pub struct RequestHead {
    /// Its length in the buffer it was read from.
    pub len: usize,
    /// The method.
    pub method: Method,
    /// The request target (origin form: path and query).
    pub target: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// How its body is framed.
    pub framing: Framing,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    /// The client prefers HTML (for the edge's own error pages).
    pub html: bool,
    /// The coding the client takes that the edge compresses answers with (`None` too
    /// where the app's `http_options.compress` is off).
    pub coding: Option<Coding>,
    /// The head to send to the machine.
    pub upstream: Vec<u8>,
}

/// What reading a request head from the start of a buffer gave.
#[derive(Debug)]
pub enum ParsedRequest {
    /// A whole head the relay can forward.
    Head(RequestHead),
    /// More bytes are needed.
    Partial,
    /// Something the relay leaves to the full HTTP server (HTTP/1.0, upgrades,
    /// `Expect`, an absolute URI, odd framing or a malformed head, which it answers).
    HandOver,
}

/// Reads a request head at the start of `buf`, rewriting it for the machine as a
/// request on the connection whose forwarding fields are `hop`.
pub fn parse_request(buf: &[u8], hop: &HopFields) -> ParsedRequest {
    let mut fields = fields();
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        // Over the limit, however it arrived: the full server answers 431.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return ParsedRequest::HandOver,
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return ParsedRequest::Partial,
        Err(_) => return ParsedRequest::HandOver,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return ParsedRequest::HandOver;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return ParsedRequest::HandOver;
    };
    if !target.starts_with('/') {
        return ParsedRequest::HandOver;
    }
    let connection = Connection::of(req.headers);
    let mut host = None;
    let mut html = false;
    let mut coding = None;
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    let mut forwarded_port = false;
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                // Two hosts: which app is meant is ambiguous; the full server decides.
                return ParsedRequest::HandOver;
            }
            host = std::str::from_utf8(field.value).ok().map(str::to_owned);
        } else if name.eq_ignore_ascii_case("accept") {
            html = contains(field.value, b"text/html");
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            coding = coding.or(negotiate(field.value));
        } else if name.eq_ignore_ascii_case("expect") || name.eq_ignore_ascii_case("upgrade") {
            return ParsedRequest::HandOver;
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            let value = trim(field.value);
            if !value.is_empty() {
                forwarded_for.push(value);
            }
        } else if name.eq_ignore_ascii_case("x-forwarded-port") {
            forwarded_port = true;
        }
    }
    // Even where the port names the app, HTTP/1.1 names its host (RFC 9112 3.2): the full
    // server answers 400.
    let (Some(framing), Some(_)) = (request_framing(req.headers), &host) else {
        return ParsedRequest::HandOver;
    };

    let mut out = Vec::with_capacity(len + 192);
    for part in [method.as_str(), " ", target, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    copy_fields(&mut out, req.headers, &connection, &SET_BY_EDGE);
    out.extend_from_slice(b"x-forwarded-for: ");
    for earlier in forwarded_for {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(hop.ip.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(host) = &host {
        field(&mut out, "x-forwarded-host", host.as_bytes());
    }
    out.extend_from_slice(b"forwarded: ");
    out.extend_from_slice(hop.forwarded.as_bytes());
    if let Some(host) = &host {
        push_forwarded_host(&mut out, host.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if !forwarded_port {
        field(&mut out, "x-forwarded-port", hop.port.as_bytes());
    }
    out.extend_from_slice(&hop.fixed);
    // After the client's own `Via` lines, which were copied: the list grows in order.
    field(&mut out, "via", via(Version::HTTP_11).as_bytes());
    out.extend_from_slice(b"\r\n");

    ParsedRequest::Head(RequestHead {
        len,
        method,
        target: target.to_owned(),
        host,
        framing,
        close: connection.close,
        html,
        coding,
        upstream: out,
    })
}

/// The `Host` of a whole request head at the start of `buf` that the relay hands over
/// (of any HTTP/1 version), when it has exactly one.
pub fn host_of(buf: &[u8]) -> Option<String> {
    let mut fields = fields();
    let mut req = httparse::Request::new(&mut []);
    if !matches!(
        req.parse_with_uninit_headers(buf, &mut fields),
        Ok(httparse::Status::Complete(_))
    ) {
        return None;
    }
    let mut hosts = req
        .headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => std::str::from_utf8(host.value).ok().map(str::to_owned),
        _ => None,
    }
}

/// A machine's response head, rewritten for the client.
#[derive(Debug)]
pub struct ResponseHead {
    /// Its length in the buffer it was read from.
    pub len: usize,
    /// The status code.
    pub status: u16,
    /// How its body is framed.
    pub framing: Framing,
    /// The connection to the machine can take another request afterwards.
    pub reusable: bool,
    /// The client's connection closes after it.
    pub close: bool,
    /// The head to send to the client.
    pub client: Vec<u8>,
    /// The coding its body is compressed with on its way to the client (then sent
    /// chunked).
    pub coding: Option<Coding>,
}

/// A response head the relay cannot pass on.
#[derive(Debug, thiserror::Error)]
pub enum BadResponse {
    /// Not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// Conflicting or invalid `Content-Length`.
    #[error("invalid Content-Length in the response")]
    Length,
    /// Longer than the edge reads.
    #[error("response head over {MAX_HEAD} bytes")]
    TooLarge,
}

/// Reads a response head at the start of `buf`: `Ok(None)` when more bytes are needed.
/// `head_request` says the request was `HEAD` (no body follows whatever the head says);
/// `close` that the client's connection ends after this response; `coding` what the
/// client takes, for an answer worth compressing.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    close: bool,
    coding: Option<Coding>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut fields = fields();
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(BadResponse::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(BadResponse::Malformed(e)),
    };
    let status = resp.code.unwrap_or(502);
    let connection = Connection::of(resp.headers);
    let chunked = resp
        .headers
        .iter()
        .rfind(|f| f.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|f| last_coding_is_chunked(f.value));
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::Empty
    } else {
        match chunked {
            Some(true) => Framing::Chunked,
            Some(false) => Framing::UntilClose,
            None => match content_length(resp.headers) {
                Ok(Some(n)) => Framing::Length(n),
                Ok(None) => Framing::UntilClose,
                Err(()) => return Err(BadResponse::Length),
            },
        }
    };
    let coding = coding.filter(|_| compress::relay_compresses(status, resp.headers));
    let reusable = resp.version == Some(1) && !connection.close && framing != Framing::UntilClose;
    // A compressed answer goes out chunked, wherever its body ends.
    let close = close || (framing == Framing::UntilClose && coding.is_none());

    let mut out = Vec::with_capacity(len + 32);
    out.extend_from_slice(b"HTTP/1.1 ");
    match StatusCode::from_u16(status) {
        Ok(code) => out.extend_from_slice(code.as_str().as_bytes()),
        Err(_) => out.extend_from_slice(status.to_string().as_bytes()),
    }
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // A 1xx or 204 has no body, and must not say it has one (RFC 9112 6.1, RFC 9110
    // 8.6): a client that believed the field would read the next answer as this body.
    // With a Transfer-Encoding, a Content-Length is wrong and must not reach the client.
    let dropped: &[&str] = if coding.is_some() {
        &compress::RELAY_DROPPED
    } else if (100..200).contains(&status) || status == 204 {
        &["content-length", "transfer-encoding"]
    } else if chunked.is_some() {
        &["content-length"]
    } else {
        &[]
    };
    copy_fields(&mut out, resp.headers, &connection, dropped);
    if let Some(coding) = coding {
        compress::relay_fields(coding, resp.headers, head_request, &mut out);
    }
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    field(&mut out, "via", via(version).as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        status,
        framing,
        reusable,
        close,
        client: out,
        coding,
    }))
}

/// What a message's `Connection` headers say.
struct Connection<'a> {
    close: bool,
    /// Further headers named as this hop's.
    named: Vec<&'a [u8]>,
}

impl<'a> Connection<'a> {
    fn of(fields: &[httparse::Header<'a>]) -> Self {
        let mut connection = Connection {
            close: false,
            named: Vec::new(),
        };
        for field in fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        {
            for token in field.value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    connection.close = true;
                } else if !token.is_empty() && !is_hop_by_hop(token) {
                    // `keep-alive`, the usual token, is dropped anyway: no list to make.
                    connection.named.push(token);
                }
            }
        }
        connection
    }
}

/// Whether `name` is one of the fields every hop drops.
fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// Copies the fields that are not this hop's (nor in `dropped`) to `out`.
fn copy_fields(
    out: &mut Vec<u8>,
    fields: &[httparse::Header<'_>],
    connection: &Connection<'_>,
    dropped: &[&str],
) {
    for f in fields {
        let name = f.name;
        let skip = is_hop_by_hop(name.as_bytes())
            || dropped.iter().any(|h| name.eq_ignore_ascii_case(h))
            || connection
                .named
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()));
        if !skip {
            field(out, name, f.value);
        }
    }
}

fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request's framing when it is unambiguous: `None` for anything a smuggler could
/// read two ways (both headers, several or odd encodings, conflicting lengths).
fn request_framing(fields: &[httparse::Header<'_>]) -> Option<Framing> {
    let mut encodings = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("transfer-encoding"));
    match (encodings.next(), encodings.next()) {
        (None, _) => match content_length(fields) {
            Ok(Some(n)) => Some(Framing::Length(n)),
            Ok(None) => Some(Framing::Empty),
            Err(()) => None,
        },
        (Some(te), None)
            if trim(te.value).eq_ignore_ascii_case(b"chunked")
                && matches!(content_length(fields), Ok(None)) =>
        {
            Some(Framing::Chunked)
        }
        _ => None,
    }
}

/// The `Content-Length`, if any: every one present must be the same number.
fn content_length(fields: &[httparse::Header<'_>]) -> Result<Option<u64>, ()> {
    let mut length = None;
    for f in fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
    {
        for part in f.value.split(|&b| b == b',').map(trim) {
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    Ok(length)
}

fn last_coding_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|coding| trim(coding).eq_ignore_ascii_case(b"chunked"))
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop() -> HopFields {
        HopFields::of(&crate::daemon::edge::forwarding::ClientHop {
            peer: "127.0.0.9:5000".parse().expect("addr"),
            port: 8001,
            scheme: crate::daemon::edge::Scheme::Http,
        })
    }

    fn head(raw: &str) -> RequestHead {
        match parse_request(raw.as_bytes(), &hop()) {
            ParsedRequest::Head(head) => head,
            other => panic!("not forwardable: {other:?}"),
        }
    }

    #[test]
    fn a_request_is_rewritten_with_forwarding_headers_and_without_this_hops() {
        let raw = "GET /x?y=1 HTTP/1.1\r\nHost: hello.localhost\r\nX-Forwarded-For: 10.0.0.1\r\n\
                   Connection: keep-alive, x-private\r\nx-private: 1\r\nFly-Client-IP: 6.6.6.6\r\n\
                   Accept: text/html\r\nTE: trailers\r\nVia: 1.0 front\r\nX-Forwarded-Ssl: on\r\n\
                   Forwarded: for=6.6.6.6;proto=https\r\n\r\nNEXT";
        let req = head(raw);
        assert_eq!(req.len, raw.len() - 4);
        assert_eq!(req.target, "/x?y=1");
        assert_eq!(req.host.as_deref(), Some("hello.localhost"));
        assert_eq!(req.framing, Framing::Empty);
        assert!(req.html && !req.close);
        let out = String::from_utf8(req.upstream).expect("utf8");
        assert!(
            out.starts_with("GET /x?y=1 HTTP/1.1\r\nHost: hello.localhost\r\n"),
            "{out}"
        );
        assert!(
            out.contains("x-forwarded-for: 10.0.0.1, 127.0.0.9\r\n"),
            "{out}"
        );
        assert!(out.contains("fly-client-ip: 127.0.0.9\r\n"), "{out}");
        assert!(out.contains("x-real-ip: 127.0.0.9\r\n"), "{out}");
        assert!(out.contains("x-forwarded-proto: http\r\n"), "{out}");
        assert!(out.contains("x-forwarded-ssl: off\r\n"), "{out}");
        assert!(!out.contains("X-Forwarded-Ssl"), "{out}");
        assert!(
            out.contains("forwarded: for=127.0.0.9;proto=http;host=\"hello.localhost\"\r\n"),
            "{out}"
        );
        assert!(
            !out.contains("6.6.6.6"),
            "the client's own are replaced: {out}"
        );
        assert!(out.contains("x-forwarded-port: 8001\r\n"), "{out}");
        assert!(out.contains("fly-forwarded-port: 8001\r\n"), "{out}");
        let via = out
            .find("Via: 1.0 front\r\n")
            .expect("the client's Via is kept");
        assert!(
            out[via..].contains("via: 1.1 lakefly\r\n"),
            "the edge's entry comes after: {out}"
        );
        assert!(
            out.contains("x-forwarded-host: hello.localhost\r\n"),
            "{out}"
        );
        assert!(
            !out.contains("6.6.6.6") && !out.contains("x-private"),
            "{out}"
        );
        assert!(!out.to_ascii_lowercase().contains("connection"), "{out}");
        assert!(!out.contains("TE:"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    #[test]
    fn request_framing_must_be_unambiguous() {
        let framing = |fields: &str| match parse_request(
            format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n").as_bytes(),
            &hop(),
        ) {
            ParsedRequest::Head(h) => Some(h.framing),
            _ => None,
        };
        assert_eq!(framing("Content-Length: 5\r\n"), Some(Framing::Length(5)));
        assert_eq!(
            framing("Content-Length: 5, 5\r\n"),
            Some(Framing::Length(5))
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\n"),
            Some(Framing::Chunked)
        );
        assert_eq!(framing(""), Some(Framing::Empty));
        assert_eq!(framing("Content-Length: 5\r\nContent-Length: 6\r\n"), None);
        assert_eq!(framing("Content-Length: -1\r\n"), None);
        assert_eq!(
            framing("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            None
        );
        assert_eq!(framing("Transfer-Encoding: gzip, chunked\r\n"), None);
    }

    #[test]
    fn what_the_relay_does_not_handle_goes_to_the_full_server() {
        let hand_over = |raw: &str| {
            matches!(
                parse_request(raw.as_bytes(), &hop()),
                ParsedRequest::HandOver
            )
        };
        assert!(hand_over("GET / HTTP/1.0\r\n\r\n"));
        assert!(hand_over("GET / HTTP/1.1\r\n\r\n"));
        assert!(hand_over("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(hand_over(
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        ));
        assert!(hand_over(
            "PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
        ));
        assert!(hand_over("GARBAGE\r\n\r\n"));
        assert!(hand_over("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a", &hop()),
            ParsedRequest::Partial
        ));
    }

    #[test]
    fn a_mangled_head_is_never_forwarded_half_understood() {
        let valid = b"POST /a?b=c HTTP/1.1\r\nHost: x.localhost\r\nContent-Length: 3\r\nConnection: close\r\nX-Forwarded-For: 1.2.3.4\r\n\r\nabc";
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..5000 {
            let mut bytes = valid.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = b"\r\n :,;\t\0\x7fHa0"[(next() % 12) as usize];
            }
            if let ParsedRequest::Head(head) = parse_request(&bytes, &hop()) {
                // What goes on is one well-formed head, whatever came in.
                assert!(head.len <= bytes.len());
                let out = &head.upstream;
                assert!(out.ends_with(b"\r\n\r\n"));
                assert_eq!(out.windows(4).filter(|w| w == b"\r\n\r\n").count(), 1);
                assert!(!out.contains(&0));
            }
        }
    }

    #[test]
    fn a_handed_over_head_still_names_its_host() {
        let old = b"GET / HTTP/1.0\r\nHost: hello.localhost\r\nConnection: keep-alive\r\n\r\n";
        assert!(matches!(
            parse_request(old, &hop()),
            ParsedRequest::HandOver
        ));
        assert_eq!(host_of(old).as_deref(), Some("hello.localhost"));
        let two = b"GET / HTTP/1.1\r\nHost: a.localhost\r\nHost: b.localhost\r\n\r\n";
        assert_eq!(host_of(two), None);
        assert_eq!(host_of(b"GET / HTTP/1.0\r\nHost: a"), None);
    }

    #[test]
    fn a_response_is_framed_and_rewritten_for_the_client() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nKeep-Alive: timeout=5\r\n\r\nok\n";
        let resp = parse_response(raw, false, false, None)
            .expect("valid")
            .expect("complete");
        assert_eq!((resp.status, resp.framing), (200, Framing::Length(3)));
        assert!(resp.reusable && !resp.close);
        assert_eq!(
            resp.client,
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nvia: 1.1 lakefly\r\n\r\n"
        );

        let head = parse_response(raw, true, false, None)
            .expect("valid")
            .expect("complete");
        assert_eq!(head.framing, Framing::Empty);

        let stream = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        let resp = parse_response(stream, false, false, None)
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.framing, Framing::UntilClose);
        assert!(!resp.reusable && resp.close);
        assert!(resp
            .client
            .ends_with(b"via: 1.0 lakefly\r\nconnection: close\r\n\r\n"));

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let resp = parse_response(chunked, false, false, None)
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.framing, Framing::Chunked);
        assert!(!String::from_utf8_lossy(&resp.client).contains("Content-Length"));

        // No body, and no field that says otherwise.
        let none = b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n";
        let resp = parse_response(none, false, false, None)
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.framing, Framing::Empty);
        assert_eq!(
            resp.client,
            b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nvia: 1.1 lakefly\r\n\r\n"
        );

        // A code of the app's own, and one no registry knows, pass as they came.
        for (raw, line) in [
            (
                &b"HTTP/1.1 299 Mine\r\nContent-Length: 0\r\n\r\n"[..],
                "HTTP/1.1 299 Mine\r\n",
            ),
            (
                b"HTTP/1.1 999 \r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 999 \r\n",
            ),
        ] {
            let resp = parse_response(raw, false, false, None)
                .expect("valid")
                .expect("complete");
            assert!(resp.client.starts_with(line.as_bytes()), "{resp:?}");
        }

        assert!(parse_response(b"HTTP/1.1 200 OK\r\n", false, false, None)
            .expect("valid")
            .is_none());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            false,
            false,
            None
        )
        .is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n", false, false, None).is_err());
    }

    #[test]
    fn an_answer_to_compress_gets_its_coding_chunked_framing_vary_and_a_weak_etag() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 600\r\n\
                    ETag: \"a\"\r\nVary: Cookie\r\nAccept-Ranges: bytes\r\n\r\n";
        let resp = parse_response(raw, false, false, Some(Coding::Gzip))
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.coding, Some(Coding::Gzip));
        assert_eq!(resp.framing, Framing::Length(600), "the machine's framing");
        let head = String::from_utf8(resp.client).unwrap();
        for line in [
            "content-encoding: gzip\r\n",
            "transfer-encoding: chunked\r\n",
            "etag: W/\"a\"\r\n",
            "Vary: Cookie\r\n",
            "vary: Accept-Encoding\r\n",
        ] {
            assert!(head.contains(line), "{line:?} in {head}");
        }
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("accept-ranges"),
            "{head}"
        );
        // A HEAD's answer says what a GET's would, without a body to frame.
        let resp = parse_response(raw, true, false, Some(Coding::Gzip))
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.framing, Framing::Empty);
        let head = String::from_utf8(resp.client).unwrap();
        assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");

        // An image, or a client that takes no coding: as the machine sent it.
        let image = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 600\r\n\r\n";
        for (raw, coding) in [(&image[..], Some(Coding::Gzip)), (&raw[..], None)] {
            let resp = parse_response(raw, false, false, coding)
                .expect("valid")
                .expect("complete");
            assert_eq!(resp.coding, None);
            let head = String::from_utf8(resp.client).unwrap();
            assert!(head.contains("Content-Length: 600\r\n"), "{head}");
        }
        // A body in a transfer coding of the app's: passed as it came.
        let coded = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\
                      Transfer-Encoding: gzip, chunked\r\n\r\n";
        let resp = parse_response(coded, false, false, Some(Coding::Gzip))
            .expect("valid")
            .expect("complete");
        assert_eq!(resp.coding, None);
    }
}
