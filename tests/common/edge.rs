//! The edge test app deployed on a test daemon, with a client that reaches it by name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::daemon::TestDaemon;
use super::Run;

/// The test app's name.
pub const APP: &str = "edgy";
/// Its host name on the edge.
pub const HOST: &str = "edgy.localhost";
/// How long anything a test waits for may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A daemon and a copy of the edge test app, with more fly.toml appended.
pub struct Setup {
    pub d: TestDaemon,
    _dir: tempfile::TempDir,
    pub app: PathBuf,
    pub client: reqwest::Client,
}

impl Setup {
    /// Starts a daemon with `daemon_flags` and copies the app, `extra_toml` appended.
    pub fn new(extra_toml: &str, daemon_flags: &[&str]) -> Self {
        Self::with_daemon(extra_toml, |state| {
            TestDaemon::start_in(state, daemon_flags)
        })
    }

    /// As [`Setup::new`], with the daemon `start` starts on the state directory it is given.
    pub fn with_daemon(extra_toml: &str, start: impl FnOnce(&Path) -> TestDaemon) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let d = start(&temp.path().join("state"));
        let app = temp.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apps/edge");
        std::fs::copy(source.join("app.py"), app.join("app.py")).unwrap();
        let base = std::fs::read_to_string(source.join("fly.toml")).unwrap();
        std::fs::write(app.join("fly.toml"), format!("{base}\n{extra_toml}")).unwrap();
        let edge: std::net::SocketAddr = d.edge_addr().parse().unwrap();
        let client = super::http_builder()
            .resolve(HOST, edge)
            .no_proxy()
            .build()
            .unwrap();
        Setup {
            d,
            _dir: temp,
            app,
            client,
        }
    }

    /// `lakefly deploy`, run off the async runtime.
    pub async fn deploy(&self) -> Run {
        self.cli(&["deploy"]).await
    }

    /// `lakefly --remote <api> ARGS` in the app's directory, run off the async runtime.
    pub async fn cli(&self, args: &[&str]) -> Run {
        let (api, app) = (self.d.api.clone(), self.app.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let mut all = vec!["--remote".to_string(), api];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            super::lakefly(&app, &refs)
        })
        .await
        .unwrap()
    }

    /// The edge URL of `path` for the app.
    pub fn url(&self, path: &str) -> String {
        format!("http://{HOST}:{}{path}", self.edge_port())
    }

    /// The edge's port.
    pub fn edge_port(&self) -> u16 {
        self.d
            .edge_addr()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// GET `path` from the app through the edge.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// The daemon's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let resp = reqwest::get(self.d.url("/metrics")).await.unwrap();
        resp.text().await.unwrap()
    }

    /// `lakefly status --json` of the app.
    pub async fn status(&self) -> Value {
        self.cli(&["status", "-a", APP, "--json"])
            .await
            .expect_code(0)
            .json()
    }
}

/// Asks for the app's `/health` on `stream` (HTTP/1.1, kept alive) and reads its answer,
/// to the body's end or until the stream closes.
pub async fn health_on(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET /health HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await.unwrap() {
            0 => break,
            n => answer.extend_from_slice(&chunk[..n]),
        }
    }
    answer
}

/// fly.toml for a raw TCP service (no handler) on public `port`, to the app's 8080.
pub fn raw_tcp_service(port: u16) -> String {
    format!(
        "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n\
         [[services.ports]]\n  port = {port}\n"
    )
}
