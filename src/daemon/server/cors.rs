//! CORS for browser clients of the API (a dashboard on another origin): off unless
//! `lakeflyd --cors-origin` lists origins. Preflights are answered before the token
//! check, which a browser's preflight cannot pass (it carries no `Authorization`).

use std::time::Duration;

use http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// A `--cors-origin` value: `*`, or `scheme://host[:port]` as browsers send it.
pub fn parse_origin(value: &str) -> Result<String, String> {
    if value == "*" {
        return Ok(value.into());
    }
    let bad = || {
        format!("`{value}` is not an origin: write scheme://host[:port] (no path), as in https://dash.example.com, or *")
    };
    let url = reqwest::Url::parse(value).map_err(|_| bad())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && !value.ends_with('/');
    if plain {
        Ok(value.into())
    } else {
        Err(bad())
    }
}

/// The layer for `origins` (checked by [`parse_origin`]); `None` when there are none.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in ["https://dash.example.com", "http://localhost:3000", "*"] {
            assert_eq!(parse_origin(good).as_deref(), Ok(good));
        }
        for bad in [
            "dash.example.com",
            "https://dash.example.com/",
            "https://x/path",
            "ftp://x",
            "",
        ] {
            let error = parse_origin(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
