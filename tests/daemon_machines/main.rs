//! The supervisor through the real daemon: crashes are restarted and recorded, stops reach
//! the whole process group within the kill timeout, and a `kill -9` of the daemon leaves no
//! orphan, no duplicate, and never signals a pid that now belongs to another program.
//!
//! One test binary, its tests split by theme.

#[path = "../common/mod.rs"]
mod common;

mod daemon_crash;
mod lifecycle;
mod output;
mod resources;
mod restarts;
mod stopping;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use common::api::Api;
use common::daemon::TestDaemon;
use common::sse::{Message, Sse};

const WAIT: Duration = Duration::from_secs(15);

/// Reads events until one of `kind` about machine `id` arrives.
async fn wait_for(sse: &mut Sse, kind: &str, id: &str) -> Message {
    loop {
        let m = sse
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("stream ended waiting for {kind}"));
        if m.event == kind && m.data["data"]["machine"] == id {
            return m;
        }
    }
}

/// Creates a `sleep` machine in `app`, SIGKILLs its process, and waits for the restart;
/// returns the machine id, the stream, and the exit event.
async fn crash_and_restart(
    d: &TestDaemon,
    api: &Api,
    app: &str,
) -> (String, Sse, Message, Message) {
    api.create_app(app).await;
    let mut sse = Sse::connect(&d.url(&format!("/v1/events?app={app}&kind=machine.")), None).await;
    let machine = api
        .create_machine(app, json!({ "command": "exec sleep 600" }))
        .await;
    let id = machine["id"].as_str().unwrap().to_string();
    let started = wait_for(&mut sse, "machine.started", &id).await;
    let pid = started.data["data"]["pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let exited = wait_for(&mut sse, "machine.exited", &id).await;
    let restarted = wait_for(&mut sse, "machine.started", &id).await;
    assert_ne!(restarted.data["data"]["pid"].as_u64().unwrap(), pid);
    (id, sse, exited, restarted)
}

/// Waits until `file` holds one pid per line, `n` lines, and returns them.
fn wait_pids(file: &Path, n: usize) -> Vec<u64> {
    common::process::wait_pids(file, n, WAIT)
}
