//! The two ends of an `Upgrade:` handshake the API serves (a console, a proxied
//! connection): whether the request asks for a protocol, and the `101` answer.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// Whether `req` asks to switch to `protocol`.
pub fn asked_for(req: &Request, protocol: &str) -> bool {
    (req.headers().get(header::UPGRADE))
        .and_then(|value| value.to_str().ok())
        .is_some_and(|asked| asked.eq_ignore_ascii_case(protocol))
}

/// `101 Switching Protocols` to `protocol`.
pub fn switching_to(protocol: &'static str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(protocol));
    response
}
