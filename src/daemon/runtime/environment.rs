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
    let platform = platform(app, spec.release_version, Some(id), spec);
    env.extend(
        platform
            .into_iter()
            .map(|(name, value)| (name.to_string(), value)),
    );
    if let Some(port) = port {
        env.insert("PORT".into(), port.to_string());
    }
    env
}

/// What lakefly sets for every process it runs for an app (a machine's, a job run's), under
/// its own names and under Fly's runtime-environment names, so an app written for Fly
/// finds there what it reads on Fly. `machine` is `None` for a job run, which has none.
/// This host is the app's one region, so a machine runs in its primary region
/// (`FLY_REGION` = `PRIMARY_REGION`, which the plan puts in `[env]` from `primary_region`):
/// an app that writes only from its primary region writes here.
pub(crate) fn platform(
    app: &str,
    release: Option<u64>,
    machine: Option<&str>,
    spec: &MachineSpec,
) -> Vec<(&'static str, String)> {
    let group = &spec.process_group;
    let release = release.map(|v| v.to_string()).unwrap_or_default();
    let mut vars = vec![
        ("LAKEFLY_APP_NAME", app.to_string()),
        ("LAKEFLY_PROCESS_GROUP", group.to_string()),
        ("LAKEFLY_RELEASE_VERSION", release),
        ("FLY_APP_NAME", app.to_string()),
        ("FLY_PROCESS_GROUP", group.to_string()),
    ];
    if let Some(id) = machine {
        vars.push((super::stragglers::MACHINE_VAR, id.to_string()));
        vars.push(("FLY_MACHINE_ID", id.to_string()));
        vars.push(("FLY_ALLOC_ID", id.to_string()));
    }
    if let Some(region) = spec.env.get("PRIMARY_REGION").filter(|r| !r.is_empty()) {
        vars.push(("FLY_REGION", region.clone()));
    }
    if let Some(mb) = spec.memory_mb {
        vars.push(("FLY_VM_MEMORY_MB", mb.to_string()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)], memory_mb: Option<u64>) -> MachineSpec {
        let mut spec: MachineSpec =
            serde_json::from_value(serde_json::json!({ "command": "true" })).unwrap();
        spec.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        spec.memory_mb = memory_mb;
        spec
    }

    fn names(vars: &[(&'static str, String)]) -> Vec<&'static str> {
        vars.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn a_job_run_has_no_machine_and_an_unsized_app_no_memory_figure() {
        let vars = platform("shop", Some(3), None, &spec(&[], None));
        let names = names(&vars);
        assert!(names.contains(&"FLY_APP_NAME"), "{names:?}");
        for absent in [
            "FLY_MACHINE_ID",
            "FLY_ALLOC_ID",
            "FLY_REGION",
            "FLY_VM_MEMORY_MB",
        ] {
            assert!(!names.contains(&absent), "{absent} in {names:?}");
        }
        assert!(vars.contains(&("LAKEFLY_RELEASE_VERSION", "3".to_string())));
    }

    #[test]
    fn the_region_is_the_primary_one() {
        let spec = spec(&[("PRIMARY_REGION", "ams")], Some(256));
        let vars = platform("shop", None, Some("m1"), &spec);
        assert!(vars.contains(&("FLY_REGION", "ams".to_string())));
        assert!(vars.contains(&("FLY_ALLOC_ID", "m1".to_string())));
        assert!(vars.contains(&("FLY_VM_MEMORY_MB", "256".to_string())));
        let blank = platform(
            "shop",
            None,
            None,
            &self::spec(&[("PRIMARY_REGION", "")], None),
        );
        assert!(!names(&blank).contains(&"FLY_REGION"));
    }
}
