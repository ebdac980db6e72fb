//! Auto start from zero and auto stop of idle machines.

use serde_json::Value;

use super::common::edge::{Setup, APP, DEADLINE};
use super::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_app_scaled_to_zero_with_auto_start_is_served() {
    let s = Setup::new("", &[]);
    let config = s.app.join("fly.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  auto_start_machines = true\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    assert!(s.status().await["machines"].as_array().unwrap().is_empty());
    let resp = s.get("/woken").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["path"], "/woken");

    // The machine made for that request is the app's now: a deploy replaces it with one
    // of the new release, which serves at once, instead of stopping it and leaving none.
    s.deploy().await.expect_code(0);
    let machines = s.status().await["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(
        (
            machines[0]["state"].as_str(),
            machines[0]["release_version"].as_u64()
        ),
        (Some("started"), Some(2)),
        "{machines:?}"
    );
    let show = s.cli(&["scale", "show", "--json", "-a", APP]).await;
    assert_eq!(show.expect_code(0).json()[0]["count"], 1);
}

/// `text` (the hello config) with its HTTP service stopping idle machines, down to none,
/// and starting one for a request.
fn auto_stopping(text: &str) -> String {
    text.replace(
        "  processes = [\"app\"]\n",
        "  processes = [\"app\"]\n  auto_stop_machines = \"stop\"\n  auto_start_machines = true\n  min_machines_running = 0\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_machines_auto_stop_and_the_next_request_starts_one_again() {
    let s = Setup::new("", &["--auto-stop-after", "1s"]);
    let config = s.app.join("fly.toml");
    let text = auto_stopping(&std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    eventually("the idle machine stops", || async {
        s.status().await["machines"][0]["state"] == "stopped"
    })
    .await;
    let resp = s.get("/again").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(s.status().await["machines"][0]["state"], "started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_while_the_only_machine_auto_stops_starts_it_again_rather_than_a_new_one() {
    let s = Setup::new("", &["--auto-stop-after", "1s"]);
    let config = s.app.join("fly.toml");
    // It ignores its kill signal, so its stop takes the whole kill_timeout.
    let text = auto_stopping(&std::fs::read_to_string(&config).unwrap()).replace(
        "  app = \"python3 app.py\"\n",
        "  app = \"sh -c 'trap \\\"\\\" TERM; exec python3 app.py'\"\n",
    );
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    eventually("the idle machine is stopping", || async {
        s.status().await["machines"][0]["state"] == "stopping"
    })
    .await;
    let resp = s.get("/again").await;
    assert_eq!(resp.status(), 200);
    let machines = s.status().await["machines"].clone();
    assert_eq!(machines.as_array().unwrap().len(), 1, "{machines}");
    assert_eq!(machines[0]["state"], "started", "{machines}");
}

/// The hello app deployed auto-starting from zero, restarted up to `max_retries` times,
/// scaled to zero, and its machines exiting with code 3 from now on while the returned
/// file exists. Requests may wait 10 minutes for a machine: one held that long fails.
async fn scaled_to_zero_and_crashing(max_retries: u32) -> (Setup, std::path::PathBuf) {
    let s = Setup::new("", &["--auto-start-wait", "10m"]);
    let flag = s.app.with_file_name("crashing");
    let config = s.app.join("fly.toml");
    let command = format!(
        "  app = \"sh -c 'test -e {} && exit 3; exec python3 app.py'\"\n",
        flag.display()
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("  app = \"python3 app.py\"\n", &command)
        .replace(
            "  processes = [\"app\"]\n",
            "  processes = [\"app\"]\n  auto_start_machines = true\n  min_machines_running = 0\n",
        );
    let text =
        format!("{text}\n[[restart]]\n  policy = \"on-failure\"\n  max_retries = {max_retries}\n");
    std::fs::write(&config, text).unwrap();
    s.deploy().await.expect_code(0);
    s.cli(&["scale", "count", "0", "--yes", "-a", APP])
        .await
        .expect_code(0);
    std::fs::write(&flag, "").unwrap();
    (s, flag)
}

/// The 503 a request gets, with its JSON body; a request held past the deadline fails.
async fn refused(s: &Setup, path: &str) -> Value {
    let resp = tokio::time::timeout(DEADLINE, s.get(path))
        .await
        .expect("the request is answered, not held until --auto-start-wait");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_a_machine_that_crashes_as_it_auto_starts_are_answered_instead_of_held() {
    let (s, flag) = scaled_to_zero_and_crashing(10).await;

    let body = refused(&s, "/first").await;
    assert_eq!(body["code"], "no_healthy_machine");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("crashes before it is healthy"), "{error}");
    // The next request is answered the same while it goes on crashing, and starts no
    // second machine.
    let again = refused(&s, "/second").await;
    assert_eq!(again["error"], body["error"]);
    assert_eq!(s.status().await["machines"].as_array().unwrap().len(), 1);

    // Once it no longer crashes, the same machine serves.
    std::fs::remove_file(&flag).unwrap();
    eventually("the machine serves again", || async {
        s.get("/later").await.status() == 200
    })
    .await;
    let machines = s.status().await["machines"].clone();
    assert_eq!(machines.as_array().unwrap().len(), 1, "{machines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_starts_a_machine_that_gave_up_restarting_again_rather_than_a_new_one() {
    let (s, flag) = scaled_to_zero_and_crashing(1).await;

    let body = refused(&s, "/first").await;
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("exited before it was healthy"), "{error}");
    eventually("the machine gives up", || async {
        s.status().await["machines"][0]["state"] == "failed"
    })
    .await;
    std::fs::remove_file(&flag).unwrap();
    let resp = s.get("/again").await;
    assert_eq!(resp.status(), 200);
    let machines = s.status().await["machines"].clone();
    assert_eq!(machines.as_array().unwrap().len(), 1, "{machines}");
    assert_eq!(machines[0]["state"], "started", "{machines}");
}
