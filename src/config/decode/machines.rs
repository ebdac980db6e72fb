//! `[[vm]]`, `[[mounts]]`, `[[metrics]]` and `[[restart]]`: per-group machine settings.

use super::build::required_string;
use super::reader::{Decoder, Field};
use super::section_groups;
use crate::config::model::{Metrics, Mount, Restart, RestartPolicy, Vm};

pub(super) fn vms(d: &mut Decoder, f: Field, start: usize) -> Vec<Vm> {
    let mut out = Vec::new();
    for mut t in d.tables(f, start) {
        let mut vm = Vm::default();
        // Later settings win, as in flyctl: the size's memory, then `memory`, then `memory_mb`.
        if let Some(f) = t.get(d, "size") {
            if let Some(size) = d.string(&f) {
                match crate::config::sizes::preset(&size) {
                    Some((cpus, mb)) => {
                        vm.cpus = Some(cpus);
                        vm.memory_mb = Some(mb);
                    }
                    None => {
                        d.warn(
                            &f,
                            format!(
                                "vm size {size:?} is not a size lakefly knows; it sets no memory"
                            ),
                            Some(format!("known sizes: {}", crate::config::sizes::names())),
                        );
                    }
                }
                vm.size = Some(size);
            }
        }
        if let Some(f) = t.get(d, "memory") {
            vm.memory_mb = d.size_mb(&f, 1).or(vm.memory_mb);
        }
        if let Some(f) = t.get(d, "memory_mb") {
            vm.memory_mb = d.size_mb(&f, 1).or(vm.memory_mb);
        }
        if vm.memory_mb == Some(0) {
            let table = t.field.clone();
            d.error(
                &table,
                format!("`{}` memory cannot be zero", table.path),
                None,
            );
        }
        if let Some(f) = t.get(d, "cpus") {
            vm.cpus = d.count(&f).or(vm.cpus);
        }
        if let Some(f) = t.get(d, "cpu_kind") {
            vm.cpu_kind = d
                .choice(&f, &[("shared", "shared"), ("performance", "performance")])
                .map(str::to_string);
        }
        if let Some(f) = t.get(d, "gpus") {
            vm.gpus = d.count(&f);
        }
        if let Some(f) = t.get(d, "gpu_kind") {
            vm.gpu_kind = d.string(&f);
        }
        // Unlike other sections, a [[vm]] without `processes` is the fallback size of every
        // group that has no [[vm]] of its own (flyctl's "most specific compute").
        vm.processes = t
            .get(d, "processes")
            .and_then(|f| d.string_list(&f))
            .unwrap_or_default();
        t.pass_through(&["host_dedication_id", "kernel_args", "persist_rootfs"]);
        vm.extra = t.finish(d);
        out.push(vm);
    }
    out
}

pub(super) fn mounts(d: &mut Decoder, f: Field, start: usize, group: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for mut t in d.tables(f, start) {
        let source = required_string(d, &mut t, "source", "data");
        let destination = match t.get(d, "destination") {
            Some(f) => d.string(&f).filter(|dest| {
                let absolute = dest.starts_with('/');
                if !absolute {
                    d.error(
                        &f,
                        format!("mount destination {dest:?} is not an absolute path"),
                        Some(format!(
                            "write destination = \"/{}\"",
                            dest.trim_start_matches("./")
                        )),
                    );
                }
                absolute
            }),
            None => required_string(d, &mut t, "destination", "/data"),
        };
        // A bare number is gigabytes, as `fly volumes create --size` takes it.
        let initial_size_mb = t.get(d, "initial_size").and_then(|f| d.size_mb(&f, 1024));
        let processes = section_groups(d, &mut t, group);
        t.pass_through(&[
            "snapshot_retention",
            "scheduled_snapshots",
            "auto_extend_size_threshold",
            "auto_extend_size_increment",
            "auto_extend_size_limit",
            "encrypted",
        ]);
        let extra = t.finish(d);
        if let (Some(source), Some(destination)) = (source, destination) {
            out.push(Mount {
                source,
                destination,
                initial_size_mb,
                processes,
                extra,
            });
        }
    }
    out
}

pub(super) fn metrics(d: &mut Decoder, f: Field, start: usize, group: &str) -> Vec<Metrics> {
    let mut out = Vec::new();
    for mut t in d.tables(f, start) {
        let port = t
            .require(d, "port", "add port = 9091")
            .and_then(|f| d.port(&f));
        let path = t
            .get(d, "path")
            .and_then(|f| d.string(&f))
            .unwrap_or_else(|| "/metrics".into());
        let processes = section_groups(d, &mut t, group);
        t.pass_through(&["https"]);
        let extra = t.finish(d);
        if let Some(port) = port {
            out.push(Metrics {
                port,
                path,
                processes,
                extra,
            });
        }
    }
    out
}

pub(super) fn restarts(d: &mut Decoder, f: Field, group: &str) -> Vec<Restart> {
    let mut out = Vec::new();
    for mut t in d.tables(f, 0) {
        let policy = match t.get(d, "policy") {
            Some(f) => d.choice(&f, &RestartPolicy::ALL),
            None => Some(RestartPolicy::OnFailure),
        };
        let mut max_retries = None;
        for key in ["retries", "max_retries"] {
            if let Some(f) = t.get_as(d, key, "max_retries") {
                max_retries = d.count(&f).or(max_retries);
            }
        }
        let processes = section_groups(d, &mut t, group);
        let extra = t.finish(d);
        if let Some(policy) = policy {
            out.push(Restart {
                policy,
                max_retries,
                processes,
                extra,
            });
        }
    }
    out
}
