//! `[[services.ports]]` listeners: raw TCP, PROXY protocol, a port in use, a port taken
//! while the daemon was down.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::daemon::TestDaemon;
use super::common::edge::{Setup, APP, DEADLINE, HOST};
use super::{eventually, raw_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_tcp_port_with_no_machine_closes_at_once_or_auto_starts_one() {
    let tcp_port = super::common::free_port();
    let service = |auto_start: bool| {
        format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n  \
             auto_start_machines = {auto_start}\n[[services.ports]]\n  port = {tcp_port}\n"
        )
    };
    let s = Setup::new(&service(false), &[]);
    s.deploy().await.expect_code(0);
    assert!(raw_get(tcp_port, DEADLINE)
        .await
        .starts_with("HTTP/1.1 200"));
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    // No machine could become healthy: closed at once, well before the 10 s a
    // connection waits for a machine that is starting.
    assert_eq!(raw_get(tcp_port, Duration::from_secs(5)).await, "");

    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&service(false), &service(true));
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    assert!(s.status().await["machines"].as_array().unwrap().is_empty());
    let answer = raw_get(tcp_port, DEADLINE).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\": \"/raw\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_proto_port_tells_the_app_who_connected() {
    let (echo, v1, v2) = (
        super::common::free_port(),
        super::common::free_port(),
        super::common::free_port(),
    );
    let s = Setup::new(
        &format!(
            r#"
[env]
  ECHO_PORT = "{echo}"

[[services]]
  internal_port = {echo}
  protocol = "tcp"
  processes = ["app"]
  [[services.ports]]
    port = {v1}
    handlers = ["proxy_proto"]
  [[services.ports]]
    port = {v2}
    handlers = ["proxy_proto"]
    proxy_proto_options = {{ version = "v2" }}
"#
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    // What comes back on a connection to `port` after "hello\n": the app echoes what it
    // read, header included; `header_len` gives the header's length from the client's
    // port and the edge's.
    let echoed = |port: u16, header_len: fn(u16, u16) -> usize| async move {
        let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let client = raw.local_addr().unwrap().port();
        raw.write_all(b"hello\n").await.unwrap();
        let mut got = vec![0u8; header_len(client, port) + 6];
        tokio::time::timeout(DEADLINE, raw.read_exact(&mut got))
            .await
            .expect("the echo arrives in time")
            .unwrap();
        (client, got)
    };
    // "PROXY TCP4 127.0.0.1 127.0.0.1 <client> <port>\r\n"
    let v1_len = |client: u16, port: u16| 34 + client.to_string().len() + port.to_string().len();
    let (client, got) = echoed(v1, v1_len).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with(&format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {client} {v1}\r\nhello"
        )),
        "{text:?}"
    );

    let (client, got) = echoed(v2, |_, _| 28).await;
    assert_eq!(&got[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(&got[12..16], &[0x21, 0x11, 0x00, 0x0c]);
    assert_eq!(&got[16..24], &[127, 0, 0, 1, 127, 0, 0, 1]);
    assert_eq!(&got[24..26], &client.to_be_bytes());
    assert_eq!(&got[26..28], &v2.to_be_bytes());
    assert_eq!(&got[28..], b"hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_in_use_fails_the_deploy_naming_it_and_the_app() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n\
             [[services.ports]]\n  port = {port}\n  handlers = [\"http\"]\n"
        ),
        &[],
    );
    let run = s.deploy().await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("port {port} of app {APP}")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    // Nothing of the release started, so there are no logs to send the user to.
    assert!(
        run.stderr
            .contains("it failed before any of it started: fix what the error says")
            && !run.stderr.contains("lakefly logs"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_that_is_the_apis_is_named_as_lakeflyds_own() {
    let s = Setup::new("", &[]);
    let api_port = s.d.api.rsplit(':').next().unwrap().to_string();
    let config = s.app.join("fly.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n\
         [[services.ports]]\n  port = {api_port}\n"
    ));
    std::fs::write(&config, text).unwrap();
    let run = s.deploy().await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "port {api_port} of app {APP} ([[services.ports]]) is lakeflyd's own API port (--api)"
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_while_the_daemon_was_down_does_not_take_the_app_offline() {
    let port = super::common::free_port();
    let mut s = Setup::new(
        &format!(
            "[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n\
             [[services.ports]]\n  port = {port}\n  handlers = [\"http\"]\n"
        ),
        &[],
    );
    s.deploy().await.expect_code(0);
    let state = s.d.state.clone();
    s.d.stop();
    // Something else takes the port before the daemon comes back.
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    s.d = TestDaemon::start_in(&state, &[]);
    let http = super::common::http_client();
    eventually("the app answers on its host route again", || async {
        http.get(format!("http://{}/", s.d.edge_addr()))
            .header("Host", HOST)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // Only what is served is advertised: the host route, not the taken port.
    let url = format!("http://{HOST}:{}/", s.edge_port());
    assert_eq!(s.status().await["urls"], serde_json::json!([url]));
}

/// `[[services.ports]]` on the edge's own port (a fly.toml's `port = 80` with lakeflyd's
/// edge on :80) is served by the edge by Host, for every app that asks for it: it failed
/// the deploy of each with "in use" (the edge itself held it). Raw TCP there is refused,
/// naming the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_that_is_the_edges_own_is_served_there_by_host_for_every_app() {
    let s = Setup::new("", &[]);
    let port = s.edge_port();
    let fly_toml = s.app.join("fly.toml");
    let base = std::fs::read_to_string(&fly_toml).unwrap();
    let service_on = |port: u16, handlers: &str| {
        format!(
            "{base}\n[[services]]\n  protocol = \"tcp\"\n  internal_port = 8080\n  processes = [\"app\"]\n\
             [[services.ports]]\n  port = {port}\n  handlers = [{handlers}]\n"
        )
    };
    let service = |handlers: &str| service_on(port, handlers);
    std::fs::write(&fly_toml, service("\"http\"")).unwrap();
    for app in [APP, "second"] {
        let run = s.cli(&["deploy", "-a", app]).await.expect_code(0);
        assert!(
            run.stderr.contains(&format!(
                "port {port} is the edge's own HTTP port: the app is served there by Host ({app}.localhost"
            )),
            "{}",
            run.stderr
        );
    }
    for app in [APP, "second"] {
        let answer: Value = s
            .client
            .get(format!("http://127.0.0.1:{port}/who"))
            .header("Host", format!("{app}.localhost"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["app"], app, "{answer}");
    }
    std::fs::write(&fly_toml, service("")).unwrap();
    let run = s.cli(&["deploy", "-a", "third"]).await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "port {port} of app third ([[services.ports]]) is the edge's own HTTP port"
        )),
        "{}",
        run.stderr
    );
    // Two apps on an HTTP port that is not the edge's: the second is told how they could
    // share it.
    let other = super::common::free_port();
    std::fs::write(&fly_toml, service_on(other, "\"http\"")).unwrap();
    s.cli(&["deploy", "-a", "fourth"]).await.expect_code(0);
    let run = s.cli(&["deploy", "-a", "fifth"]).await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "port {other} of app fifth is already served for app fourth; pick another port in \
             [[services.ports]], or make it the edge's own (lakeflyd --edge ADDRESS:{other}), \
             which serves every app there by Host"
        )),
        "{}",
        run.stderr
    );
}
