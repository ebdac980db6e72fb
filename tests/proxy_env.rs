//! The environment's HTTP proxy (`HTTP_PROXY` and the rest) is never used for this
//! host's loopback: `lakefly` reaches a local daemon, and lakeflyd health-checks and
//! calls its machines, directly (a proxy elsewhere cannot reach them); a daemon on
//! another host is reached through the proxy, which is named when it does not answer.
//! `[build] command` is handed the host's proxy settings; machines are not.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::TestDaemon;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An app whose every path answers 200 with the proxy its build and itself were given,
/// and whether it sees a variable of the daemon's own.
const APP: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
built = open("built-with-proxy").read()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        seen = f"ok {self.path} build={built} run={os.environ.get('HTTPS_PROXY')} daemon={os.environ.get('DAEMON_ONLY')}"
        self.wfile.write(seen.encode())
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

const FLY: &str = r#"
app = "behind-proxy"

[build]
  command = "printf %s \"$HTTP_PROXY\" > built-with-proxy"

[http_service]
  internal_port = 8080

  [[http_service.checks]]
    interval = "1s"
    timeout = "2s"
    path = "/health"

[experimental]
  cmd = ["python3", "app.py"]

[[jobs]]
  name = "tick"
  path = "/tick"
"#;

/// Every variable a proxy is named by, in both cases.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

#[test]
fn a_proxy_in_the_environment_is_not_used_for_this_hosts_loopback() {
    let temp = tempfile::tempdir().unwrap();
    // A proxy on a port nothing listens on: a request sent to it fails.
    let proxy = format!("http://127.0.0.1:{}", common::free_port());
    let env: Vec<(&str, &str)> = PROXY_VARS.iter().map(|v| (*v, proxy.as_str())).collect();
    let mut daemon_env = env.clone();
    daemon_env.push(("DAEMON_ONLY", "lakeflyd's own"));
    let d = TestDaemon::start_with_env(&temp.path().join("state"), &daemon_env);
    let dir = temp.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("fly.toml"), FLY).unwrap();
    let lakefly = |args: &[&str]| {
        let mut all = vec!["--remote", d.api.as_str()];
        all.extend_from_slice(args);
        common::lakefly_env(&dir, &all, &env)
    };

    // The deploy follows its events (SSE) and passes only if the daemon's http check
    // reached the machine.
    lakefly(&["deploy", "--wait-timeout", "20s"]).expect_code(0);
    let status = lakefly(&["status", "--json"]).expect_code(0).json();
    assert_eq!(status["machines"][0]["health"], "passing", "{status}");

    // A job's HTTP call goes to the machine, not to the proxy.
    lakefly(&["jobs", "trigger", "tick"]).expect_code(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let runs = lakefly(&["jobs", "runs", "tick", "--json"])
            .expect_code(0)
            .json();
        match runs.get(0) {
            Some(run) if run["finished_at"].is_string() => break run.clone(),
            _ if Instant::now() > deadline => panic!("the run did not finish: {runs}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["http_status"], 200, "{run}");
    // The host's proxy settings reach the build (which fetches dependencies), as Docker's
    // predefined build arguments do, and not the machine; nor do the daemon's other
    // variables.
    let answer = format!("\nok /tick build={proxy} run=None daemon=None");
    assert!(run["output"].as_str().unwrap().ends_with(&answer), "{run}");
}

#[tokio::test]
async fn a_daemon_on_another_host_is_reached_through_the_proxy() {
    let proxy = MockServer::start().await;
    // A proxy sees the request in absolute form; the path is the daemon's.
    Mock::given(method("GET"))
        .and(path("/v1/apps"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[]"))
        .expect(1)
        .mount(&proxy)
        .await;
    let temp = tempfile::tempdir().unwrap();
    let uri = proxy.uri();
    let listed = tokio::task::spawn_blocking({
        let dir = temp.path().to_path_buf();
        move || {
            common::lakefly_env(
                Path::new(&dir),
                &[
                    "--remote",
                    "http://daemon.invalid:4280",
                    "apps",
                    "list",
                    "--json",
                ],
                &[("HTTP_PROXY", uri.as_str()), ("NO_PROXY", "")],
            )
        }
    })
    .await
    .unwrap()
    .expect_code(0);
    assert_eq!(listed.json(), serde_json::json!([]));
    let seen = proxy.received_requests().await.unwrap();
    assert_eq!(
        seen[0].headers.get("host").map(|h| h.to_str().unwrap()),
        Some("daemon.invalid:4280"),
        "the proxy was asked for the daemon's host"
    );
}

#[test]
fn a_proxy_that_does_not_answer_is_named_without_its_credentials() {
    let temp = tempfile::tempdir().unwrap();
    let proxy = format!("http://deployer:hunter2@127.0.0.1:{}", common::free_port());
    let failed = common::lakefly_env(
        temp.path(),
        &[
            "--remote",
            "https://daemon.invalid:4280",
            "--json",
            "apps",
            "list",
        ],
        &[("HTTPS_PROXY", proxy.as_str()), ("NO_PROXY", "")],
    )
    .expect_code(8);
    let error: serde_json::Value = serde_json::from_str(failed.stderr.trim()).unwrap();
    let message = error["error"].as_str().unwrap();
    let shown = proxy.replace("deployer:hunter2@", "");
    assert!(
        message.starts_with(&format!(
            "cannot reach the lakefly daemon at https://daemon.invalid:4280 through the proxy {shown}:"
        )),
        "{error}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("NO_PROXY=daemon.invalid"),
        "{error}"
    );
    assert!(!failed.stderr.contains("hunter2"), "{}", failed.stderr);
}

/// A forward proxy as a company runs one: each `CONNECT host:port` opens a tunnel, here
/// always to 127.0.0.1 (the name asked for resolves nowhere); returns its address and
/// the targets of the tunnels it opened.
async fn connect_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let tunnels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut head = String::new();
                client.read_line(&mut head).await.unwrap();
                let mut line = String::new();
                while client.read_line(&mut line).await.unwrap() > 2 {
                    line.clear();
                }
                let target = head.strip_prefix("CONNECT ").unwrap().split(' ').next();
                let target = target.unwrap().to_string();
                let port = target.rsplit(':').next().unwrap().parse::<u16>().unwrap();
                seen.lock().unwrap().push(target);
                let mut daemon = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
            });
        }
    });
    (address, tunnels)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_to_an_https_daemon_behind_a_connect_proxy_follows_its_events_through_it() {
    let temp = tempfile::tempdir().unwrap();
    let tls = |name: &str| common::tls::fixture(name);
    let d = TestDaemon::start_in(
        &temp.path().join("state"),
        &[
            "--api-tls-cert",
            &tls("cert3.pem"),
            "--api-tls-key",
            &tls("key3.pem"),
        ],
    );
    let port = d.api.rsplit(':').next().unwrap().to_string();
    // A name of the certificate's, which only the proxy knows how to reach.
    let remote = format!("https://api.shop.test:{port}");
    let (proxy, tunnels) = connect_proxy().await;
    let dir = temp.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.py"), APP).unwrap();
    std::fs::write(dir.join("built-with-proxy"), "").unwrap();
    let config = "app = \"behind-proxy\"\n[http_service]\n  internal_port = 8080\n\
                  [experimental]\n  cmd = [\"python3\", \"app.py\"]\n";
    std::fs::write(dir.join("fly.toml"), config).unwrap();

    let ca = tls("ca3.pem");
    let deployed = tokio::task::spawn_blocking(move || {
        common::lakefly_env(
            &dir,
            &["--remote", &remote, "deploy", "--wait-timeout", "20s"],
            &[
                ("HTTPS_PROXY", proxy.as_str()),
                ("NO_PROXY", ""),
                ("SSL_CERT_FILE", ca.as_str()),
            ],
        )
    })
    .await
    .unwrap();
    // The deploy's requests and its live events (followed to the release's end) both
    // went through tunnels, TLS to the daemon inside them.
    let deployed = deployed.expect_code(0);
    assert!(deployed.stderr.contains("is live"), "{}", deployed.stderr);
    let tunnels = tunnels.lock().unwrap().clone();
    assert!(
        tunnels.len() >= 2,
        "requests and the event stream: {tunnels:?}"
    );
    assert!(
        tunnels
            .iter()
            .all(|t| *t == format!("api.shop.test:{port}")),
        "{tunnels:?}"
    );
}
