//! Helpers for tests that look at apps' files: writing an app's directory, what a daemon
//! keeps on disk, what a machine answers.

use std::path::{Path, PathBuf};

/// `GET url` as text, from a synchronous test.
pub fn get_text(url: &str) -> String {
    let url = url.to_string();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let answer = super::http_client().get(&url).send().await.unwrap();
                answer.text().await.unwrap()
            })
    })
    .join()
    .unwrap()
}

/// A copy of the hello example to change, in a directory `hello` of its own.
pub fn hello_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("hello");
    std::fs::create_dir(&app).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello");
    for file in ["fly.toml", "app.py"] {
        std::fs::copy(example.join(file), app.join(file)).unwrap();
    }
    (dir, app)
}

/// Replaces `from` with `to` in the file at `path`, failing the test when `from` is not
/// there (the file changed under the test).
pub fn edit_file(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "{} no longer holds {from:?}",
        path.display()
    );
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// `ok.py`, for a test app's `app.py` to import: `Ok`, a handler that answers every GET
/// with 200 "ok" and logs nothing, and `serve(handler)`, which serves one on `$PORT` until
/// the process ends.
pub const OK_PY: (&str, &str) = (
    "ok.py",
    r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass

def serve(handler=Ok):
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), handler).serve_forever()
"#,
);

/// A directory `name` under `root` holding `files` (name and text).
pub fn app_with(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let app = root.join(name);
    std::fs::create_dir_all(&app).unwrap();
    for (file, text) in files {
        std::fs::write(app.join(file), text).unwrap();
    }
    app
}

/// App `name` in `root/app`: `app.py` run as its one group, with `$MARK` naming the file
/// `root/mark` for the app to write what it saw; `top` goes before fly.toml's tables
/// (`kill_timeout = "60s"`). Returns the app's directory and the mark's path.
pub fn marked_app(root: &Path, name: &str, top: &str, app_py: &str) -> (PathBuf, PathBuf) {
    let mark = root.join("mark");
    let config = format!(
        "app = \"{name}\"\n{top}[env]\n  MARK = \"{}\"\n[processes]\n  app = \"python3 app.py\"\n",
        mark.display()
    );
    let dir = app_with(root, "app", &[("fly.toml", &config), ("app.py", app_py)]);
    (dir, mark)
}

/// The names in `dir`, sorted (none when it does not exist).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Waits until the names in `dir` are `expected` (lakeflyd removes old files just after a
/// release ends), or fails at a deadline.
pub fn wait_for_names(dir: &Path, expected: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let names = names_in(dir);
        if names == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {names:?}, expected {expected:?}",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A Python app answering every GET with `body`, a Python expression (`os` and `sys` are
/// imported), on `$PORT`: run it as `server.py` with [`PYTHON_WEB`].
pub fn python_server(body: &str) -> String {
    format!(
        r#"import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ({body}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    )
}

/// fly.toml lines that run `python3 server.py` as group `web` behind the HTTP edge.
pub const PYTHON_WEB: &str = "[processes]\n  web = \"python3 server.py\"\n[http_service]\n  internal_port = 8080\n  processes = [\"web\"]\n";

/// fly.toml lines that run `python3 app.py` as group `web` behind the HTTP edge, healthy
/// once `/` answers (checked every second), as [`OK_PY`]'s `serve` does.
pub const CHECKED_APP_PY: &str = r#"[processes]
  web = "python3 app.py"
[http_service]
  internal_port = 8080
  processes = ["web"]
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/"
"#;

/// A plain recursive copy (files and directories only; modes kept), as of a stopped
/// daemon's state directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
