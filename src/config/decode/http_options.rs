//! `http_options`: `h2_backend`, `idle_timeout`, `compress`, `response.headers` and
//! `response.pristine` are read and checked (header names and values must be ones HTTP
//! allows); Fly's other keys are kept.

use super::reader::{BareUnit, Decoder, Field};
use crate::config::model::HttpOptions;

pub(super) fn http_options(d: &mut Decoder, f: Field) -> HttpOptions {
    let mut options = HttpOptions::default();
    let Some(mut t) = d.table(f) else {
        return options;
    };
    options.h2_backend = t
        .get(d, "h2_backend")
        .and_then(|f| d.boolean(&f))
        .unwrap_or(false);
    options.idle_timeout = t
        .get(d, "idle_timeout")
        .and_then(|f| super::duration_above_zero(d, &f, BareUnit::Seconds, "idle_timeout = 600"));
    options.compress = t.get(d, "compress").and_then(|f| d.boolean(&f));
    let mut kept = Vec::new();
    if let Some(f) = t.get(d, "response") {
        if let Some(mut response) = d.table(f) {
            if let Some(f) = response.get(d, "headers") {
                options.response_headers = headers(d, f);
            }
            options.response_pristine = response
                .get(d, "pristine")
                .and_then(|f| d.boolean(&f))
                .unwrap_or(false);
            let rest = response.finish(d);
            if !rest.is_empty() {
                kept.push(("response".to_string(), serde_json::json!(rest)));
            }
        }
    }
    options.extra = t.finish(d);
    options.extra.extend(kept);
    options
}

/// `response.headers`: a name and a string (set) or `false` (removed).
fn headers(d: &mut Decoder, f: Field) -> std::collections::BTreeMap<String, Option<String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(mut t) = d.table(f) else {
        return out;
    };
    for (name, f) in t.entries() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            d.error(
                &f,
                format!("`{}`: {name:?} is not a header name", f.path),
                Some("use letters, digits and `-`, e.g. X-Frame-Options".into()),
            );
            continue;
        }
        let value = match (f.item.as_bool(), f.item.as_integer()) {
            (Some(false), _) => None,
            (_, Some(n)) => Some(n.to_string()),
            _ => match d.string(&f) {
                Some(value) => Some(value),
                None => continue,
            },
        };
        if let Some(text) = &value {
            if http::HeaderValue::from_str(text).is_err() {
                d.error(
                    &f,
                    format!("`{}`: {text:?} is not a header value", f.path),
                    Some("printable ASCII only, on one line".into()),
                );
                continue;
            }
        }
        out.insert(name, value);
    }
    out
}
