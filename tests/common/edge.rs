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
        let resp = super::http_client()
            .get(self.d.url("/metrics"))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// Adds a machine to the app's `app` group running `command`, with `internal_port`
    /// 8080 and a TCP check on `health_port` (every 100 ms), and waits until it passes;
    /// its id. For machines that misbehave on `$PORT` while their check says they are well.
    pub async fn add_machine_checked_on(&self, command: &str, health_port: u16) -> String {
        let api = super::api::Api::new(&self.d);
        let created = api
            .create_machine(
                APP,
                serde_json::json!({
                    "process_group": "app",
                    "command": command,
                    "internal_port": 8080,
                    "checks": { "alive": { "type": "tcp", "port": health_port, "interval": "100ms", "grace_period": "0s" } },
                }),
            )
            .await;
        let id = created["id"].as_str().expect("a machine id").to_string();
        let until = std::time::Instant::now() + DEADLINE;
        while api.machine(APP, &id).await["health"] != "passing" {
            assert!(
                std::time::Instant::now() < until,
                "machine {id} does not pass its check within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        id
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

/// Connects to `port` on loopback, asks for `/health` and checks the answer is a 200,
/// leaving the connection open.
pub async fn answered_connection(port: u16) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let answer = tokio::time::timeout(DEADLINE, health_on(&mut stream))
        .await
        .unwrap_or_else(|_| panic!("port {port} answers within {DEADLINE:?}"));
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "port {port}: {}",
        String::from_utf8_lossy(&answer)
    );
    stream
}

/// Sends `request` as it is to the edge at `edge` (`ADDR`) and reads the answer until the
/// edge closes the connection (the request should ask it to).
pub async fn raw_exchange(edge: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut answer))
        .await
        .expect("the answer in time")
        .unwrap();
    answer
}

/// Sends `request` on an HTTP/2 connection and waits, up to the tests' deadline, for its
/// answer's head.
pub async fn h2_answer<B>(
    sender: &mut hyper::client::conn::http2::SendRequest<B>,
    request: hyper::Request<B>,
) -> hyper::Response<hyper::body::Incoming>
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::time::timeout(DEADLINE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an answer")
}
