//! `[[statics]]`: files of the release served by the edge under a URL prefix, streamed
//! from disk. A path that names no file falls through to the app, as on Fly. Only the
//! release's own files are served: a symbolic link out of the release (which a build can
//! make, `public/x -> /etc/passwd`) names no file here.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tokio_util::io::ReaderStream;

use super::answers::{empty, BoxError, EdgeBody};

/// One `[[statics]]` entry, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticDir {
    /// URL prefix without a trailing slash (`/static`).
    pub prefix: String,
    /// The directory in the release.
    pub dir: PathBuf,
    /// The release's directory, with no symbolic link in it: what is served is inside.
    pub root: PathBuf,
}

/// The file for `req` when a static prefix matches and it exists; else `None`.
pub async fn serve<B>(statics: &[StaticDir], req: &Request<B>) -> Option<Response<EdgeBody>> {
    if statics.is_empty() || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = percent_decode(req.uri().path())?;
    let (StaticDir { dir, root, .. }, rest) = locate(statics, &path)?;
    let relative = Path::new(rest.trim_start_matches('/'));
    // Only plain names: no `..`, no root, so nothing outside the directory is reachable.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let mut file = dir.join(relative);
    let mut meta = tokio::fs::metadata(&file).await.ok()?;
    if meta.is_dir() {
        file = file.join("index.html");
        meta = tokio::fs::metadata(&file).await.ok()?;
    }
    if !meta.is_file() {
        return None;
    }
    let real = tokio::fs::canonicalize(&file).await.ok()?;
    if !real.starts_with(root) {
        return None;
    }
    let body = if *req.method() == Method::HEAD {
        empty()
    } else {
        let opened = tokio::fs::File::open(&file).await.ok()?;
        let frames = futures_util::StreamExt::map(ReaderStream::new(opened), |chunk| {
            chunk
                .map(http_body::Frame::<Bytes>::data)
                .map_err(BoxError::from)
        });
        StreamBody::new(frames).boxed_unsync()
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    Some(resp)
}

/// Whether a `method` request for `path` (no query) may be a static file: the relay
/// leaves such requests to the full server, which serves files.
pub fn claims(statics: &[StaticDir], method: &Method, path: &str) -> bool {
    !statics.is_empty()
        && matches!(*method, Method::GET | Method::HEAD)
        && percent_decode(path).is_some_and(|path| locate(statics, &path).is_some())
}

/// The directory whose prefix `path` is under, and the rest of the path.
fn locate<'a>(statics: &'a [StaticDir], path: &'a str) -> Option<(&'a StaticDir, &'a str)> {
    statics.iter().find_map(|s| {
        let rest = path.strip_prefix(s.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/') || s.prefix == "/").then_some((s, rest))
    })
}

/// `%XX` sequences decoded; `None` when the result is not UTF-8 or holds a NUL.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    (!text.contains('\0')).then_some(text)
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).expect("request")
    }

    #[tokio::test]
    async fn files_under_the_prefix_are_served_and_nothing_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("sub")).expect("mkdir");
        std::fs::write(public.join("app.css"), "body{}").expect("write");
        std::fs::write(public.join("sub/index.html"), "<p>").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "no").expect("write");
        let release = dir.path().join("release");
        std::fs::create_dir(&release).expect("mkdir");
        let public = {
            let inside = release.join("public");
            std::fs::rename(&public, &inside).expect("move");
            inside
        };
        // Links: one to a file of the release, one out of it, one directory out of it.
        std::os::unix::fs::symlink(public.join("app.css"), public.join("same.css")).expect("link");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("out.txt"))
            .expect("link");
        std::os::unix::fs::symlink(dir.path(), public.join("up")).expect("link");
        let statics = vec![StaticDir {
            prefix: "/static".into(),
            dir: public,
            root: release.canonicalize().expect("canonical"),
        }];
        let resp = serve(&statics, &get("/static/app.css"))
            .await
            .expect("served");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert_eq!(resp.headers()[header::CONTENT_LENGTH], "6");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"body{}");
        assert!(serve(&statics, &get("/static/sub/")).await.is_some());
        assert!(serve(&statics, &get("/static/missing.css")).await.is_none());
        assert!(serve(&statics, &get("/static/../secret.txt"))
            .await
            .is_none());
        assert!(serve(&statics, &get("/static/%2e%2e/secret.txt"))
            .await
            .is_none());
        assert!(serve(&statics, &get("/staticky/app.css")).await.is_none());
        assert!(serve(&statics, &get("/static/same.css")).await.is_some());
        assert!(serve(&statics, &get("/static/out.txt")).await.is_none());
        assert!(serve(&statics, &get("/static/up/secret.txt"))
            .await
            .is_none());
        assert!(serve(&statics, &get("/other")).await.is_none());
        assert!(claims(&statics, &Method::GET, "/static/app.css"));
        assert!(claims(&statics, &Method::HEAD, "/static"));
        assert!(!claims(&statics, &Method::POST, "/static/app.css"));
        assert!(!claims(&statics, &Method::GET, "/staticky"));
        assert!(!claims(&[], &Method::GET, "/static/app.css"));
    }
}
