//! `lakefly deploy` end to end against a real daemon: a release goes live; a broken one
//! fails with exit 7 and the previous release keeps running, untouched. One test binary,
//! its tests split by theme.

#[path = "../common/mod.rs"]
mod common;

mod dockerfile;
mod failures;
mod listening;
mod live;
mod scale;
mod strategies;

use std::path::Path;

use common::daemon::TestDaemon;
use common::Run;
use serde_json::Value;

fn deploy(d: &TestDaemon, app: &Path, extra: &[&str]) -> Run {
    let config = app.join("fly.toml");
    let mut args = vec!["--remote", &d.api, "deploy", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::lakefly(Path::new("."), &args)
}

fn status(d: &TestDaemon) -> Value {
    common::lakefly(
        Path::new("."),
        &["--remote", &d.api, "status", "-a", "hello", "--json"],
    )
    .expect_code(0)
    .json()
}

/// Deploys the example `name` as it is in the repository.
fn deploy_example(d: &TestDaemon, name: &str, extra: &[&str]) -> Run {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("fly.toml");
    let mut args = vec![
        "--remote",
        d.api.as_str(),
        "deploy",
        "-c",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::lakefly(Path::new("."), &args)
}

/// Deploys `app` detached, its machines waiting for the file `gate` before they serve: the
/// release rolls out until the test writes it.
fn deploy_gated(d: &TestDaemon, app: &Path, gate: &Path) {
    common::files::edit_file(
        &app.join("fly.toml"),
        "app = \"python3 app.py\"",
        "app = \"while [ ! -e \\\"$GATE\\\" ]; do sleep 0.05; done; exec python3 app.py\"",
    );
    let gate_env = format!("GATE={}", gate.display());
    deploy(d, app, &["--detach", "-e", &gate_env]).expect_code(0);
}
