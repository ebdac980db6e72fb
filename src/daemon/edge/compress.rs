//! Response compression, as Fly's proxy does by default: an answer the app did not encode
//! itself, of a type that compresses well, goes out as zstd or gzip when the client
//! accepts one (`http_options.compress = false` turns it off). Each piece of the body is
//! compressed and flushed as it comes, so an answer streamed in parts still arrives part
//! by part; server-sent events are left alone, as each event must arrive on its own.

use std::io::Write;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use super::answers::{BoxError, EdgeBody};

/// Bodies known to be shorter than this are sent as they are: the coding's framing
/// would eat most of the gain.
const MIN_LENGTH: u64 = 512;
/// zstd's default level: quick, and smaller than gzip's output.
const ZSTD_LEVEL: i32 = 3;
/// zstd's window (128 KiB, where level 3 takes 2 MiB): bounds what each answer being
/// compressed holds, at little cost for pages; every decoder reads it.
const ZSTD_WINDOW_LOG: u32 = 17;
/// gzip's level: nginx's `gzip_comp_level` spirit, most of the gain for little CPU.
const GZIP_LEVEL: u32 = 4;

/// A content coding the edge makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Zstandard, preferred where the client takes it (as Fly's proxy prefers it).
    Zstd,
    /// gzip, which every client that compresses takes.
    Gzip,
}

impl Coding {
    /// Its name in `Content-Encoding`.
    fn name(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }
}

/// The coding to answer with, from a request's `Accept-Encoding` value: zstd when it is
/// named with a weight at least gzip's, else gzip when it (or `*`) is accepted; none when
/// neither is, or every coding is refused (`q=0`).
pub fn negotiate(accept_encoding: &[u8]) -> Option<Coding> {
    let text = std::str::from_utf8(accept_encoding).ok()?;
    let (mut zstd, mut gzip, mut any) = (None, None, None);
    for item in text.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let weight = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        // Compared in place: every request through the relay that accepts a coding is
        // read here.
        let is = |coding: &str| name.eq_ignore_ascii_case(coding);
        if is("zstd") {
            zstd = Some(weight);
        } else if is("gzip") || is("x-gzip") {
            gzip = Some(weight);
        } else if name == "*" {
            any = Some(weight);
        }
    }
    // `*` stands for gzip when gzip is not named; zstd only counts when named, as a
    // client saying `*` may well not read it.
    let gzip = gzip.or(any).unwrap_or(0.0);
    match zstd {
        Some(z) if z > 0.0 && z >= gzip => Some(Coding::Zstd),
        _ if gzip > 0.0 => Some(Coding::Gzip),
        _ => None,
    }
}

/// The coding a request's headers ask for, if any.
pub fn asked(headers: &HeaderMap) -> Option<Coding> {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| negotiate(v.as_bytes()))
        .min_by_key(|c| match c {
            Coding::Zstd => 0,
            Coding::Gzip => 1,
        })
}

/// `resp` compressed with `coding` when that is worth doing and allowed, else as it is.
/// `head` says the request was a HEAD: its answer gets the headers a GET's would have,
/// and keeps its empty body.
pub fn response(resp: Response<EdgeBody>, coding: Coding, head: bool) -> Response<EdgeBody> {
    let length = match head {
        true => None,
        false => resp.body().size_hint().exact(),
    };
    if !compressible(resp.status(), resp.headers(), length) {
        return resp;
    }
    let encoder = match head {
        true => None,
        false => match Encoder::new(coding) {
            Ok(encoder) => Some(encoder),
            Err(_) => return resp,
        },
    };
    let (mut parts, body) = resp.into_parts();
    let headers = &mut parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.name()),
    );
    add_vary(headers);
    weaken_etag(headers);
    let Some(encoder) = encoder else {
        return Response::from_parts(parts, body);
    };
    let body = Compressing {
        inner: body,
        encoder: Some(encoder),
        trailers: None,
    };
    Response::from_parts(parts, body.boxed_unsync())
}

/// The fields of an app's answer head the relay leaves out of a head it compresses the
/// answer of: [`relay_fields`] writes what replaces them.
pub const RELAY_DROPPED: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "accept-ranges",
    "etag",
];

/// Whether the relay compresses an answer with this status and these raw head fields, by
/// the rule [`response`] applies.
pub fn relay_compresses(status: u16, fields: &[httparse::Header<'_>]) -> bool {
    let Ok(status) = StatusCode::from_u16(status) else {
        return false;
    };
    // A transfer coding besides chunked (`gzip, chunked`) stays on the body the relay
    // would read as the app's bytes: such an answer passes as it came.
    let other_transfer_coding = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("transfer-encoding"))
        .any(|f| !f.value.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    if other_transfer_coding {
        return false;
    }
    let mut headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CACHE_CONTROL,
        header::CONTENT_RANGE,
        header::CONTENT_LENGTH,
    ] {
        for f in fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name.as_str()))
        {
            if let Ok(value) = HeaderValue::from_bytes(f.value) {
                headers.append(name.clone(), value);
            }
        }
    }
    compressible(status, &headers, None)
}

/// Writes, as `name: value` lines, what a compressed answer's head has in place of
/// [`RELAY_DROPPED`]: its coding, chunked framing (none for a HEAD's answer), `Vary`
/// and a weak `ETag`, from the app's `fields`.
pub fn relay_fields(
    coding: Coding,
    fields: &[httparse::Header<'_>],
    head: bool,
    out: &mut Vec<u8>,
) {
    let mut headers = HeaderMap::new();
    for f in fields {
        let known = [header::VARY, header::ETAG]
            .into_iter()
            .find(|n| f.name.eq_ignore_ascii_case(n.as_str()));
        if let (Some(name), Ok(value)) = (known, HeaderValue::from_bytes(f.value)) {
            headers.append(name, value);
        }
    }
    let varied = headers.get_all(header::VARY).iter().count();
    add_vary(&mut headers);
    weaken_etag(&mut headers);
    let mut line = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    line("content-encoding", coding.name().as_bytes());
    if !head {
        line("transfer-encoding", b"chunked");
    }
    if let Some(tag) = headers.get(header::ETAG) {
        line("etag", tag.as_bytes());
    }
    // The app's own `Vary` lines were copied; only the one added, if any, is written.
    if let Some(added) = headers.get_all(header::VARY).iter().nth(varied) {
        line("vary", added.as_bytes());
    }
}

/// Whether an answer with this status and these headers (and, when known, this body
/// length) is one to compress.
fn compressible(status: StatusCode, headers: &HeaderMap, length: Option<u64>) -> bool {
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // A range is of the bytes as the app has them; a coding on top would not match it.
    let partial =
        status == StatusCode::PARTIAL_CONTENT || headers.contains_key(header::CONTENT_RANGE);
    let encoded = headers.contains_key(header::CONTENT_ENCODING);
    let no_transform = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    let short = length
        .or_else(|| content_length(headers))
        .is_some_and(|n| n < MIN_LENGTH);
    let type_compresses = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compresses_well);
    !bodiless && !partial && !encoded && !no_transform && !short && type_compresses
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Text, and the structured text types web apps send (JSON, JavaScript, XML, SVG, web
/// assembly, fonts without their own compression); not event streams, whose events
/// must each arrive as written.
fn compresses_well(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "text/event-stream" {
        return false;
    }
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => true,
        "application" => {
            sub.ends_with("+json")
                || sub.ends_with("+xml")
                || matches!(
                    sub,
                    "json"
                        | "javascript"
                        | "x-javascript"
                        | "ecmascript"
                        | "xml"
                        | "wasm"
                        | "graphql"
                        | "x-ndjson"
                        | "vnd.ms-fontobject"
                        | "x-font-ttf"
                )
        }
        "image" => matches!(sub, "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"),
        "font" => matches!(sub, "ttf" | "otf"),
        _ => false,
    }
}

/// Says in `Vary` that the answer depends on `Accept-Encoding`, so a cache between the
/// edge and the client keeps the codings apart.
fn add_vary(headers: &mut HeaderMap) {
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|v| v == "*" || v.eq_ignore_ascii_case("accept-encoding"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong `ETag` names the app's bytes, which the client no longer gets: it becomes
/// weak (`W/"..."`), as nginx makes it, so a conditional request still matches.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(tag) = headers.get(header::ETAG) else {
        return;
    };
    if tag.as_bytes().starts_with(b"W/") {
        return;
    }
    let mut weak = b"W/".to_vec();
    weak.extend_from_slice(tag.as_bytes());
    match HeaderValue::from_bytes(&weak) {
        Ok(weak) => headers.insert(header::ETAG, weak),
        Err(_) => headers.remove(header::ETAG),
    };
}

/// A streaming encoder writing into a buffer taken after each piece.
pub enum Encoder {
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Encoder {
    /// An encoder for `coding`.
    pub fn new(coding: Coding) -> std::io::Result<Self> {
        Ok(match coding {
            Coding::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                Encoder::Zstd(encoder)
            }
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
        })
    }

    /// `data` compressed and flushed: everything it holds, decodable on its own end.
    pub fn piece(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                e.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The coding's end (what is left, and its checksum).
    pub fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Gzip(e) => e.finish()?,
        }))
    }
}

/// A body compressed piece by piece as it is read.
struct Compressing {
    inner: EdgeBody,
    /// Until the body's end, when it is finished.
    encoder: Option<Encoder>,
    /// Trailers that came at the body's end, sent after the coding's end.
    trailers: Option<HeaderMap>,
}

impl Body for Compressing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.encoder.is_none() {
                return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(self.finish().map(|end| end.map(Frame::data))),
            };
            match frame.into_data() {
                Ok(data) => {
                    let Some(encoder) = self.encoder.as_mut() else {
                        continue;
                    };
                    match encoder.piece(&data) {
                        // Nothing to send yet (an empty piece): read on.
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    }
                }
                Err(frame) => {
                    // Trailers end the body: the coding ends first.
                    self.trailers = frame.into_trailers().ok();
                    return Poll::Ready(self.finish().map(|end| end.map(Frame::data)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none() && self.trailers.is_none()
    }
}

impl Compressing {
    /// Ends the coding; its last bytes, or the error that kept it from ending.
    fn finish(&mut self) -> Option<Result<Bytes, BoxError>> {
        let encoder = self.encoder.take()?;
        Some(encoder.finish().map_err(BoxError::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn the_coding_follows_accept_encoding_and_its_weights() {
        assert_eq!(negotiate(b"gzip, deflate, br, zstd"), Some(Coding::Zstd));
        assert_eq!(negotiate(b"gzip, deflate, br"), Some(Coding::Gzip));
        assert_eq!(negotiate(b"zstd;q=0.5, gzip"), Some(Coding::Gzip));
        assert_eq!(negotiate(b"zstd;q=0, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(negotiate(b"gzip;q=0"), None);
        assert_eq!(negotiate(b"*"), Some(Coding::Gzip));
        assert_eq!(negotiate(b"*;q=0"), None);
        assert_eq!(negotiate(b"identity"), None);
        assert_eq!(negotiate(b"br, deflate"), None);
        assert_eq!(negotiate(b""), None);
        assert_eq!(negotiate(b"X-GZIP"), Some(Coding::Gzip));
    }

    #[test]
    fn only_unencoded_text_of_some_length_is_compressed() {
        let with = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            headers
        };
        let ok = StatusCode::OK;
        let html = with(&[("content-type", "text/html; charset=utf-8")]);
        assert!(compressible(ok, &html, None));
        assert!(compressible(StatusCode::NOT_FOUND, &html, Some(4096)));
        assert!(!compressible(ok, &html, Some(100)), "too short");
        assert!(!compressible(StatusCode::NOT_MODIFIED, &html, None));
        assert!(!compressible(StatusCode::PARTIAL_CONTENT, &html, None));
        let json = with(&[("content-type", "application/vnd.api+json")]);
        assert!(compressible(ok, &json, None));
        for (name, value) in [
            ("content-encoding", "br"),
            ("cache-control", "public, No-Transform"),
            ("content-range", "bytes 0-9/100"),
        ] {
            let mut headers = html.clone();
            headers.append(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            assert!(!compressible(ok, &headers, None), "{name}: {value}");
        }
        for kind in [
            "text/event-stream",
            "image/png",
            "application/octet-stream",
            "video/mp4",
        ] {
            assert!(
                !compressible(ok, &with(&[("content-type", kind)]), None),
                "{kind}"
            );
        }
        assert!(!compressible(ok, &HeaderMap::new(), None), "no type");
    }

    async fn compressed(coding: Coding, headers: &[(&str, &str)], body: &[u8]) -> Response<Bytes> {
        answered(coding, headers, body, false).await
    }

    async fn answered(
        coding: Coding,
        headers: &[(&str, &str)],
        body: &[u8],
        head: bool,
    ) -> Response<Bytes> {
        let mut resp = Response::new(
            Full::new(Bytes::copy_from_slice(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        for (name, value) in headers {
            resp.headers_mut().append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (parts, body) = response(resp, coding, head).into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Response::from_parts(parts, bytes)
    }

    #[tokio::test]
    async fn a_page_is_compressed_both_ways_and_its_headers_say_so() {
        let page = "<p>hello, edge</p>\n".repeat(200);
        let headers = [
            ("content-type", "text/html"),
            ("content-length", "3800"),
            ("etag", "\"v1\""),
            ("vary", "Cookie"),
            ("accept-ranges", "bytes"),
        ];
        let gz = compressed(Coding::Gzip, &headers, page.as_bytes()).await;
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        assert_eq!(gz.headers()["etag"], "W/\"v1\"");
        assert!(!gz.headers().contains_key("content-length"));
        assert!(!gz.headers().contains_key("accept-ranges"));
        let vary: Vec<_> = gz.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["Cookie", "Accept-Encoding"]);
        let mut decoded = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&gz.body()[..]),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, page);
        assert!(gz.body().len() < page.len() / 10, "{}", gz.body().len());

        let zs = compressed(Coding::Zstd, &headers, page.as_bytes()).await;
        assert_eq!(zs.headers()["content-encoding"], "zstd");
        assert_eq!(zstd::decode_all(&zs.body()[..]).unwrap(), page.as_bytes());

        // A HEAD's answer says what a GET's would, and has no body.
        let head = answered(Coding::Gzip, &headers, b"", true).await;
        assert_eq!(head.headers()["content-encoding"], "gzip");
        assert!(!head.headers().contains_key("content-length"));
        assert!(head.body().is_empty());

        // An image is sent as it is.
        let png = compressed(
            Coding::Gzip,
            &[("content-type", "image/png")],
            page.as_bytes(),
        )
        .await;
        assert!(!png.headers().contains_key("content-encoding"));
        assert_eq!(png.body(), page.as_bytes());
    }
}
