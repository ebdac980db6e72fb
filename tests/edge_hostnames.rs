//! Host names added to an app (`lakefly certs`): routed by the edge over HTTP and HTTPS,
//! one app per name, kept across a restart, gone with their app; HTTPS for each name
//! served with the certificate that covers it.

mod common;

use std::net::SocketAddr;

use common::daemon::TestDaemon;
use common::edge::{Setup, APP, DEADLINE, HOST};
use common::follow::Follower;
use common::tls;
use serde_json::Value;

/// GET `/named` through the edge at `edge` as `host`: the status and the body.
async fn get_as(edge: SocketAddr, host: &str) -> (u16, String) {
    let client = common::http_builder()
        .resolve(host, edge)
        .no_proxy()
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://{host}:{}/named", edge.port()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Runs `lakefly ARGS`, which must exit with `code` and say each of `says` on stderr.
async fn refused(s: &Setup, args: &[&str], code: i32, says: &[&str]) {
    let run = s.cli(args).await.expect_code(code);
    for said in says {
        assert!(run.stderr.contains(said), "{said:?} in:\n{}", run.stderr);
    }
}

/// The names `lakefly certs list --json` shows for `app`.
async fn names_of(s: &Setup, app: &str) -> Vec<String> {
    let list = s
        .cli(&["certs", "list", "-a", app, "--json"])
        .await
        .expect_code(0)
        .json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|h| h["hostname"].as_str().unwrap().to_string())
        .collect()
}

fn edge_of(d: &TestDaemon) -> SocketAddr {
    d.edge_addr().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_names_and_wildcards_route_to_their_app_until_removed() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    let edge = edge_of(&s.d);
    assert_eq!(get_as(edge, "www.shop.test").await.0, 404);

    // Names are kept lowercase, without a trailing dot.
    let run = s
        .cli(&["certs", "add", "WWW.Shop.Test."])
        .await
        .expect_code(0);
    assert!(
        run.stderr.contains("www.shop.test routes to app edgy"),
        "{}",
        run.stderr
    );
    // Without an edge certificate, HTTPS for it is not served: the note says how.
    assert!(run.stderr.contains("--edge-tls-cert"), "{}", run.stderr);
    let (status, body) = get_as(edge, "www.shop.test").await;
    assert_eq!(status, 200, "{body}");
    let echoed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/named");
    let host = format!("www.shop.test:{}", edge.port());
    assert_eq!(
        echoed["headers"]["x-forwarded-host"],
        host.as_str(),
        "{echoed}"
    );

    // A wildcard covers any one label under it that has no name of its own.
    let added = s
        .cli(&["certs", "add", "*.shop.test", "--json"])
        .await
        .expect_code(0);
    assert_eq!(added.json()["hostname"], "*.shop.test");
    assert_eq!(added.json()["app"], APP);
    assert_eq!(get_as(edge, "acme.shop.test").await.0, 200);
    assert_eq!(get_as(edge, "a.b.shop.test").await.0, 404);
    // The API takes a name in any of the forms `add` does.
    let shown = common::http_client()
        .get(s.d.url(&format!("/v1/apps/{APP}/certs/WWW.Shop.Test.")))
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    // Adding a name the app has already is fine.
    s.cli(&["certs", "add", "www.shop.test"])
        .await
        .expect_code(0);

    assert_eq!(names_of(&s, APP).await, ["*.shop.test", "www.shop.test"]);

    // One app per name: another app is refused, and told who has it.
    s.cli(&["apps", "create", "other"]).await.expect_code(0);
    refused(
        &s,
        &["certs", "add", "www.shop.test", "-a", "other"],
        6,
        &[
            "already routes to app \"edgy\"",
            "lakefly certs remove www.shop.test -a edgy",
        ],
    )
    .await;

    // Names under the edge's domain are the apps' own (the daemon's refusal, a usage error
    // as the CLI's own); malformed names never leave the CLI.
    refused(
        &s,
        &["certs", "add", "shop.localhost"],
        2,
        &["<app>.localhost"],
    )
    .await;
    let bad = ["certs", "add", "https://www.shop.test/"];
    refused(&s, &bad, 2, &["is not a bare host name", "www.example.com"]).await;

    // Removing the wildcard leaves the exact name; removing that, nothing routes.
    s.cli(&["certs", "remove", "*.shop.test"])
        .await
        .expect_code(0);
    assert_eq!(get_as(edge, "acme.shop.test").await.0, 404);
    assert_eq!(get_as(edge, "www.shop.test").await.0, 200);
    s.cli(&["certs", "remove", "www.shop.test"])
        .await
        .expect_code(0);
    assert_eq!(get_as(edge, "www.shop.test").await.0, 404);
    refused(&s, &["certs", "show", "www.shop.test"], 5, &["certs list"]).await;
    refused(
        &s,
        &["certs", "remove", "www.shop.test"],
        5,
        &["has no host name"],
    )
    .await;

    // Each change is an event.
    let events = Follower::start(
        &s.d.api,
        &["--all-apps", "--kind", "hostname.", "--since", "0"],
    );
    let seen: Vec<(Value, Value)> = events
        .until(|e| e["kind"] == "hostname.removed" && e["data"]["hostname"] == "www.shop.test")
        .iter()
        .map(|e| (e["kind"].clone(), e["data"]["hostname"].clone()))
        .collect();
    let expected = [
        ("hostname.added", "www.shop.test"),
        ("hostname.added", "*.shop.test"),
        ("hostname.removed", "*.shop.test"),
        ("hostname.removed", "www.shop.test"),
    ]
    .map(|(k, h)| (Value::from(k), Value::from(h)));
    assert_eq!(seen, expected);
}

/// Which app answered `path` on `host` through the edge, over HTTP/1.1 (the relay) or
/// HTTP/1.0 (handed to the full server), with the path it was given.
async fn app_at(edge: SocketAddr, host: &str, path: &str, http10: bool) -> (String, String) {
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let request = format!("GET {path} {version}\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let answer = common::edge::raw_exchange(&edge.to_string(), &request).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if !head.contains(" 200 ") {
        return (
            head.lines().next().unwrap_or_default().to_string(),
            body.to_string(),
        );
    }
    let echoed: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        echoed["app"].as_str().unwrap().to_string(),
        echoed["path"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_under_a_host_routes_to_another_app_as_an_nginx_location_does() {
    let s = Setup::new("", &[]);
    s.deploy().await.expect_code(0);
    s.cli(&["deploy", "-a", "discovery"]).await.expect_code(0);
    let edge = edge_of(&s.d);
    s.cli(&["certs", "add", "www.shop.test"])
        .await
        .expect_code(0);

    // `location /discovery/` of one server block: under the app's own name and another.
    for name in [
        format!("{HOST}/discovery/"),
        "www.shop.test/discovery".into(),
    ] {
        let run = s
            .cli(&["certs", "add", &name, "-a", "discovery"])
            .await
            .expect_code(0);
        let shown = name.trim_end_matches('/');
        assert!(
            run.stderr
                .contains(&format!("{shown} routes to app discovery")),
            "{}",
            run.stderr
        );
        // A certificate covers the host, not a path under it.
        let host = shown.split('/').next().unwrap();
        assert!(
            run.stderr
                .contains(&format!("no edge certificate covers {host}:")),
            "{}",
            run.stderr
        );
    }
    for http10 in [false, true] {
        for host in [HOST, "www.shop.test"] {
            let at = |path: &'static str| app_at(edge, host, path, http10);
            // The path goes on as the client sent it.
            assert_eq!(
                at("/discovery/peers?x=1").await,
                ("discovery".into(), "/discovery/peers?x=1".into())
            );
            assert_eq!(at("/discovery").await.0, "discovery");
            assert_eq!(at("/discoveryx").await.0, APP);
            assert_eq!(at("/").await.0, APP);
        }
    }
    // Listed and shown with the path; deploy's addresses name it.
    assert_eq!(
        names_of(&s, "discovery").await,
        [
            format!("{HOST}/discovery"),
            "www.shop.test/discovery".into()
        ]
    );
    let status = s
        .cli(&["status", "-a", "discovery", "--json"])
        .await
        .expect_code(0)
        .json();
    let port = edge.port();
    assert!(
        status
            .to_string()
            .contains(&format!("http://www.shop.test:{port}/discovery/")),
        "{status}"
    );
    // The app's own name, without a path, may not go to another app.
    refused(
        &s,
        &["certs", "add", HOST, "-a", "discovery"],
        2,
        &["<app>.localhost"],
    )
    .await;
    refused(
        &s,
        &["certs", "add", "www.shop.test/"],
        2,
        &["is the whole host"],
    )
    .await;

    // Removed, the path is its host's app's again.
    s.cli(&[
        "certs",
        "remove",
        "www.shop.test/discovery/",
        "-a",
        "discovery",
    ])
    .await
    .expect_code(0);
    assert_eq!(
        app_at(edge, "www.shop.test", "/discovery/x", false).await.0,
        APP
    );
    assert_eq!(
        app_at(edge, HOST, "/discovery/x", false).await.0,
        "discovery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_shown_by_deploy_outlive_a_restart_and_go_with_their_app() {
    let mut s = Setup::new("", &[]);
    // A name may be added before the app's first release; the deploy shows where to go.
    s.cli(&["apps", "create", APP]).await.expect_code(0);
    s.cli(&["certs", "add", "api.example.test"])
        .await
        .expect_code(0);
    let run = s.deploy().await.expect_code(0);
    let port = edge_of(&s.d).port();
    for url in [
        format!("http://{HOST}:{port}/"),
        format!("http://api.example.test:{port}/"),
    ] {
        assert!(
            run.stderr.contains(&format!("visit {url}")),
            "{}",
            run.stderr
        );
    }
    s.d.stop();
    let state = s.app.parent().unwrap().join("state");
    s.d = TestDaemon::start_in(&state, &[]);
    let edge = edge_of(&s.d);

    // The app's machine comes back; its name routes to it again.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = get_as(edge, "api.example.test").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    s.cli(&["apps", "destroy", APP, "--yes"])
        .await
        .expect_code(0);
    assert_eq!(get_as(edge, "api.example.test").await.0, 404);
    s.cli(&["apps", "create", "next"]).await.expect_code(0);
    s.cli(&["certs", "add", "api.example.test", "-a", "next"])
        .await
        .expect_code(0);
}

/// The certificate the edge's HTTPS address presents to a client asking for `name`, and
/// the answer to a request for `/named` there.
async fn https_as(port: u16, name: &str) -> (Vec<u8>, String) {
    https_get(port, name, "/named").await
}

/// GET `path` over HTTPS as `name`: the certificate presented and the answer.
async fn https_get(port: u16, name: &str, path: &str) -> (Vec<u8>, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    let (answer, presented) = tls::exchange(port, name, &request).await;
    (presented.to_vec(), answer)
}

fn pem_der(file: &str) -> Vec<u8> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    CertificateDer::from_pem_file(tls::fixture(file))
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_gives_each_name_the_certificate_that_covers_it() {
    let https = common::free_port();
    let mut flags = tls::edge_flags().to_vec();
    flags.extend([
        "--edge-tls-cert".to_string(),
        tls::fixture("cert3.pem"),
        "--edge-tls-key".to_string(),
        tls::fixture("key3.pem"),
        "--edge-https".to_string(),
        format!("127.0.0.1:{https}"),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let s = Setup::new("", &flags);
    s.deploy().await.expect_code(0);
    let added = s
        .cli(&["certs", "add", "www.shop.test", "--json"])
        .await
        .expect_code(0);
    assert_eq!(
        added.json()["certificate"].as_str(),
        Some(tls::fixture("cert3.pem").as_str())
    );
    // With its expiry (the fixture's notAfter): lakeflyd renews nothing.
    assert_eq!(
        added.json()["certificate_expires"].as_str(),
        Some("2126-11-01T02:32:55Z")
    );
    let run = s
        .cli(&["certs", "show", "www.shop.test"])
        .await
        .expect_code(0);
    assert!(
        run.stdout.contains("cert3.pem") && run.stdout.contains("2126-11-01T02:32:55Z"),
        "{}",
        run.stdout
    );
    // And for monitoring: each edge certificate's expiry in /metrics.
    let metrics = s.metrics().await;
    let series = format!(
        "lakefly_edge_certificate_expiry_timestamp_seconds{{file=\"{}\"}} 4949173975",
        tls::fixture("cert3.pem")
    );
    assert!(metrics.contains(&series), "{series} in:\n{metrics}");

    // Each client gets the certificate for the name it asks for (the test client
    // verifies the name), and the request goes to the app the name routes to.
    let (cert, answer) = https_as(https, "www.shop.test").await;
    assert_eq!(cert, pem_der("cert3.pem"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\"x-forwarded-proto\": \"https\""),
        "{answer}"
    );
    let (cert, answer) = https_as(https, HOST).await;
    assert_eq!(cert, pem_der("cert.pem"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A path under the name goes to its own app, with the host's certificate.
    s.cli(&["deploy", "-a", "discovery"]).await.expect_code(0);
    let added = s
        .cli(&[
            "certs",
            "add",
            "www.shop.test/discovery",
            "-a",
            "discovery",
            "--json",
        ])
        .await
        .expect_code(0);
    assert_eq!(
        added.json()["certificate"].as_str(),
        Some(tls::fixture("cert3.pem").as_str())
    );
    let (cert, answer) = https_get(https, "www.shop.test", "/discovery/x").await;
    assert_eq!(cert, pem_der("cert3.pem"));
    assert!(answer.contains("\"app\": \"discovery\""), "{answer}");
    let (_, answer) = https_get(https, "www.shop.test", "/other").await;
    assert!(answer.contains(&format!("\"app\": \"{APP}\"")), "{answer}");

    // A name no certificate covers gets the first one, and `certs` says so.
    let added = s
        .cli(&["certs", "add", "api.example.test", "--json"])
        .await
        .expect_code(0);
    assert!(
        added.json().get("certificate").is_none(),
        "{}",
        added.stdout
    );
}

#[test]
fn certificates_and_keys_must_come_in_pairs() {
    let temp = tempfile::tempdir().unwrap();
    let (cert, key, cert3) = (
        tls::fixture("cert.pem"),
        tls::fixture("key.pem"),
        tls::fixture("cert3.pem"),
    );
    let run = common::lakeflyd_in(
        &temp.path().join("state"),
        &[
            "--edge-tls-cert",
            &cert,
            "--edge-tls-key",
            &key,
            "--edge-tls-cert",
            &cert3,
        ],
    )
    .expect_code(2);
    assert!(
        run.stderr
            .contains("2 --edge-tls-cert given with 1 --edge-tls-key"),
        "{}",
        run.stderr
    );
}
