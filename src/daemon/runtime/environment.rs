//! Where a machine's processes run and what they are given: the machine's own process
//! and commands exec'd beside it get the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::api::types::MachineSpec;

/// The directory a machine runs in: its spec's, else the app's `work` directory.
pub(crate) fn workdir(apps_dir: &Path, app: &str, spec: &MachineSpec) -> PathBuf {
    match &spec.workdir {
        Some(dir) => PathBuf::from(dir),
        None => apps_dir.join(app).join("work"),
    }
}

/// `[env]`, then the app's secrets (which win), then what lakefly sets for every machine.
pub(super) fn variables(
    app: &str,
    id: &str,
    spec: &MachineSpec,
    port: Option<u16>,
    secrets: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = spec.env.clone();
    env.extend(secrets);
    let release = spec
        .release_version
        .map(|v| v.to_string())
        .unwrap_or_default();
    let group = &spec.process_group;
    for (name, value) in [
        ("LAKEFLY_APP_NAME", app),
        ("LAKEFLY_MACHINE_ID", id),
        ("LAKEFLY_PROCESS_GROUP", group),
        ("LAKEFLY_RELEASE_VERSION", &release),
        ("FLY_APP_NAME", app),
        ("FLY_MACHINE_ID", id),
        ("FLY_PROCESS_GROUP", group),
    ] {
        env.insert(name.to_string(), value.to_string());
    }
    if let Some(port) = port {
        env.insert("PORT".into(), port.to_string());
    }
    env
}
