//! The edge's own answers, as JSON or, for a browser, a small HTML page, and the body
//! type every answer and forwarded request has. Both HTTP paths (the relay and hyper's
//! full server) answer with these.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors a streamed body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the edge sends or forwards.
pub type EdgeBody = UnsyncBoxBody<Bytes, BoxError>;

/// The answer to a client that stopped sending its request body, as nginx's
/// `client_body_timeout` gives.
pub(super) const STALLED_BODY: (StatusCode, &str, &str) = (
    StatusCode::REQUEST_TIMEOUT,
    "request_timeout",
    "the request body stopped arriving",
);

/// A browser (asking for HTML first) gets a page; everything else gets JSON.
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// An empty body.
pub fn empty() -> EdgeBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> EdgeBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The edge's own error answer: `{"error","code"}` JSON, or a small page for a browser.
pub fn error(status: StatusCode, code: &str, message: &str, html: bool) -> Response<EdgeBody> {
    let (content_type, body) = error_page(status, code, message, html);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The content type and body of the edge's own error answer.
pub(super) fn error_page(
    status: StatusCode,
    code: &str,
    message: &str,
    html: bool,
) -> (&'static str, String) {
    if html {
        let escaped = message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let heading = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        // The code is for whoever reports the page; the title is what a tab shows.
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html>\n<html><head><title>{heading}</title></head>\
                 <body><h1>{heading}</h1><p>{escaped}</p><hr><p>lakefly edge ({code})</p></body></html>\n"
            ),
        )
    } else {
        (
            "application/json",
            serde_json::json!({ "error": message, "code": code }).to_string() + "\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_json_unless_a_browser_asks() {
        let resp = error(StatusCode::NOT_FOUND, "unknown_app", "no app <x>", false);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let resp = error(StatusCode::NOT_FOUND, "unknown_app", "no app <x>", true);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }

    #[test]
    fn a_page_is_titled_by_its_status_and_shows_the_message_as_text() {
        let (_, page) = error_page(StatusCode::NOT_FOUND, "unknown_app", "no app <x>", true);
        assert!(page.contains("<title>404 Not Found</title>"), "{page}");
        assert!(page.contains("<p>no app &lt;x&gt;</p>"), "{page}");
        assert!(page.contains("(unknown_app)"), "{page}");
    }
}
