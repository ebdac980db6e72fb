//! `lakefly proxy LOCAL[:REMOTE]`: a local port carried through the daemon's API to a
//! port of one of the app's machines, as `fly proxy` does: the app's `internal_port`
//! reaches its `$PORT`, another port it listens on is raw TCP; without `--machine` each
//! connection goes to the app's started machine of the moment, so a deploy does not break
//! the proxy; a port the machine does not listen on, or a stopped app, fails plainly.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::daemon::TestDaemon;
use common::files::{app_with, get_text};
use serde_json::Value;

/// HTTP on `$PORT` naming the machine; a line echo on `$ECHO_PORT`.
const APP: &str = r#"import os, socket, threading
from http.server import BaseHTTPRequestHandler, HTTPServer

def echo(server):
    while True:
        conn, _ = server.accept()
        with conn, conn.makefile("rwb") as stream:
            for line in stream:
                stream.write(line)
                stream.flush()

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["FLY_MACHINE_ID"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

# Bound before the HTTP server, so a healthy machine listens on both; shared with the
# machine it replaces while both run (a rolling deploy).
echo_server = socket.create_server(("127.0.0.1", int(os.environ["ECHO_PORT"])), reuse_port=True)
threading.Thread(target=echo, args=(echo_server,), daemon=True).start()
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
"#;

fn config(echo_port: u16, release: u32) -> String {
    format!(
        r#"app = "tunnel"
[env]
  ECHO_PORT = "{echo_port}"
  RELEASE = "{release}"
[processes]
  app = "python3 app.py"
[http_service]
  internal_port = 8080
[[http_service.checks]]
  interval = "1s"
  timeout = "1s"
  path = "/"
"#
    )
}

/// A running `lakefly proxy` and the address it listens on (from its `--json` line).
struct Proxy {
    child: Child,
    listen: String,
}

impl Proxy {
    fn start(d: &TestDaemon, dir: &Path, ports: &str) -> Proxy {
        let mut child = common::lakefly_spawn(dir, &["--remote", &d.api, "proxy", ports, "--json"]);
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the proxy ended before it listened");
        let ready: Value = serde_json::from_str(&line).unwrap();
        Proxy {
            child,
            listen: ready["listen"].as_str().unwrap().to_string(),
        }
    }
}

impl Proxy {
    /// The next line it says on stderr (waited for, up to a deadline).
    fn next_said(&mut self) -> String {
        let stderr = self.child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stderr).read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the proxy said nothing on stderr")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // What it said about connections it could not carry, for a failing test.
        let mut said = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut said);
        }
        if !said.is_empty() {
            eprintln!("lakefly proxy said: {said}");
        }
    }
}

fn machine_id(d: &TestDaemon, dir: &Path) -> String {
    let list = d
        .cli(dir, &["machines", "list", "--json"])
        .expect_code(0)
        .json();
    let started: Vec<&Value> = (list.as_array().unwrap().iter())
        .filter(|m| m["state"] == "started")
        .collect();
    assert_eq!(started.len(), 1, "{list}");
    started[0]["id"].as_str().unwrap().to_string()
}

/// The app deployed on a daemon of its own.
struct Deployed {
    _temp: tempfile::TempDir,
    d: TestDaemon,
    dir: std::path::PathBuf,
    echo_port: u16,
    /// Its machine.
    first: String,
}

fn deployed() -> Deployed {
    let temp = tempfile::tempdir().unwrap();
    let echo_port = common::free_port();
    let files = [
        ("fly.toml", config(echo_port, 1)),
        ("app.py", APP.to_string()),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = app_with(temp.path(), "app", &files);
    let d = TestDaemon::start();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let first = machine_id(&d, &dir);
    Deployed {
        _temp: temp,
        d,
        dir,
        echo_port,
        first,
    }
}

#[test]
fn a_local_port_reaches_the_machines_ports_across_a_deploy() {
    let Deployed {
        _temp,
        d,
        dir,
        echo_port,
        first,
    } = deployed();

    // The internal_port reaches the machine's $PORT.
    let http = Proxy::start(&d, &dir, "0:8080");
    assert_eq!(get_text(&format!("http://{}/", http.listen)), first);

    // Another port it listens on is carried as raw TCP, both ways.
    let echo = Proxy::start(&d, &dir, &format!("0:{echo_port}"));
    let mut stream = TcpStream::connect(&echo.listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(b"ping\n").unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping\n");
    drop(stream);

    // A deploy replaces the machine; the same proxy reaches the new one.
    std::fs::write(dir.join("fly.toml"), config(echo_port, 2)).unwrap();
    d.cli(&dir, &["deploy"]).expect_code(0);
    let second = machine_id(&d, &dir);
    assert_ne!(first, second);
    assert_eq!(get_text(&format!("http://{}/", http.listen)), second);

    // A port the machine does not listen on is refused before anything listens, in the
    // app's terms.
    let refused = d.cli(&dir, &["proxy", "0:1"]).expect_code(5);
    assert!(
        refused
            .stderr
            .contains(&format!("machine {second} does not listen on port 1"))
            && refused.stderr.contains("8080 (its internal_port, at $PORT")
            && refused.stderr.contains(&echo_port.to_string()),
        "{}",
        refused.stderr
    );

    // With no started machine there is nothing to proxy to: a proxy already running
    // drops the connection and says why, under --json as an error object with the peer.
    let mut running = Proxy::start(&d, &dir, "0:8080");
    d.cli(&dir, &["machines", "stop", &second]).expect_code(0);
    let mut dropped = TcpStream::connect(&running.listen).unwrap();
    dropped
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let peer = dropped.local_addr().unwrap().to_string();
    assert_eq!(dropped.read(&mut [0u8; 1]).unwrap(), 0, "closed unanswered");
    let said = running.next_said();
    let line: Value = serde_json::from_str(said.trim()).unwrap_or_else(|e| panic!("{e}: {said}"));
    assert_eq!(
        (line["code"].as_str(), line["peer"].as_str()),
        (Some("no_started_machine"), Some(peer.as_str())),
        "{said}"
    );
    let stopped = d.cli(&dir, &["proxy", "0:8080"]).expect_code(5);
    assert!(
        stopped.stderr.contains("has no started machine"),
        "{}",
        stopped.stderr
    );
}

/// A proxied connection lasts as long as its use: the client's request timeout bounds the
/// handshake only, so a database connection idle for longer is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_connection_outlives_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Deployed {
        _temp,
        d,
        echo_port,
        first: id,
        ..
    } = tokio::task::block_in_place(deployed);
    let timeout = Duration::from_millis(500);
    let client = lakefly::api::client::Client::with_timeout(&d.api, timeout).unwrap();
    let mut stream = client
        .proxy_connect("tunnel", &id, echo_port)
        .await
        .unwrap();
    // Idle past the timeout (the point of the test, not a wait for something to happen).
    tokio::time::sleep(timeout * 3).await;
    stream.write_all(b"still here\n").await.unwrap();
    let mut back = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut back))
        .await
        .expect("the echo arrives")
        .unwrap();
    assert_eq!(&back, b"still here\n");
}

#[test]
fn watch_stdin_ends_the_proxy_with_its_input_and_quiet_says_nothing() {
    let Deployed { _temp, d, dir, .. } = deployed();
    let port = common::free_port();
    let ports = format!("{port}:8080");
    let args = ["--remote", &d.api, "proxy", &ports, "-q", "--watch-stdin"];
    let mut child = common::lakefly_spawn_with_stdin(&dir, &args);
    // Listening: a connection is taken.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The script holding its input ends: so does the proxy, with nothing said.
    drop(child.stdin.take());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy outlived its stdin"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let mut said = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut said)
        .unwrap();
    assert_eq!(said, "");
    // Picking the machine from a list (flyctl's -s) needs a terminal to ask on.
    let select = d.cli(&dir, &["proxy", "8080", "-s"]).expect_code(2);
    assert!(select.stderr.contains("terminal"), "{}", select.stderr);
}
