//! Scaling the current release: machine counts per group (`scale`), a group's memory limit
//! or size preset (`scale_memory`, `scale_vm`, applied by a new release), and what each
//! group has (`scale_show`).

use std::collections::BTreeMap;

use super::rollout::Rollout;
use super::{DeployError, Deployer, DEFAULT_MAX_UNAVAILABLE, DEFAULT_WAIT_TIMEOUT};
use crate::api::types::VmSize;
use crate::api::types::{kind, DeployRequest};
use crate::config::model::{Strategy, Vm};
use crate::config::plan;
use crate::daemon::events::NewEvent;
use crate::daemon::store::{self, releases};

/// A group's size before and after a resize, and the release that applies it.
struct Resized {
    group: String,
    from: VmSize,
    to: VmSize,
    release: Option<u64>,
}

/// `web: shared-cpu-2x, 2 CPUs, 512 MB; all: 256 MB`: what each `[[vm]]` sets.
fn describe_vms(vms: &[Vm]) -> String {
    vms.iter()
        .map(|vm| {
            let groups = match vm.processes.is_empty() {
                true => "every group".to_string(),
                false => vm.processes.join(", "),
            };
            let parts: Vec<String> = [
                vm.size.clone(),
                vm.cpus.map(|n| format!("{n} CPUs")),
                vm.memory_mb.map(|mb| format!("{mb} MB")),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("{groups}: {}", parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The size a `[[vm]]` gives.
fn size_of(vm: &Vm) -> VmSize {
    VmSize {
        size: vm.size.clone(),
        cpus: vm.cpus,
        memory_mb: vm.memory_mb,
    }
}

impl Deployer {
    /// Sets the machine count of groups of the current release: new machines start and must
    /// become healthy (else they are removed again); surplus ones stop, newest first.
    pub async fn scale(
        &self,
        app: &str,
        counts: BTreeMap<String, u32>,
    ) -> Result<BTreeMap<String, crate::api::types::ScaleChange>, DeployError> {
        // Held to the end: a destroy waits for it, and refuses it once begun.
        let _change = self.in_flight.begin_change(app)?;
        let a = app.to_string();
        let (current, running, specs) = self
            .store
            .run(move |conn, path| {
                let current = store::apps::current_release(conn, path, &a)?;
                let running = releases::running(conn, path, &a)?;
                let specs = match current {
                    Some(v) => releases::specs(conn, path, &a, v)?,
                    None => BTreeMap::new(),
                };
                Ok((current, running, specs))
            })
            .await?;
        if let Some(v) = running {
            return Err(DeployError::Running(v));
        }
        // New machines are created and must be seen healthy: neither goes through a full
        // disk, and a scale stopped halfway helps no one.
        self.store.writable().await?;
        if current.is_none() || specs.is_empty() {
            return Err(DeployError::NoRelease);
        }
        for group in counts.keys() {
            if !specs.contains_key(group) {
                return Err(DeployError::UnknownGroup {
                    group: group.clone(),
                    valid: specs.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            }
        }
        let mut events = self.machine_events(app);
        let mut changes = BTreeMap::new();
        for (group, &target) in &counts {
            let machines: Vec<_> = self
                .runtime
                .list(app)
                .await
                .map_err(DeployError::Store)?
                .into_iter()
                .filter(|m| &m.process_group == group)
                .collect();
            let from = machines.len() as u32;
            if target > from {
                let progress = |_: &'static str, _: String| {};
                let added = Rollout {
                    app,
                    runtime: &self.runtime,
                    events: &mut events,
                    wait_timeout: DEFAULT_WAIT_TIMEOUT,
                    // Added beside the machines that run: none stops for them.
                    smoke_time: std::time::Duration::ZERO,
                    max_unavailable: DEFAULT_MAX_UNAVAILABLE,
                    progress: &progress,
                    cancel: &mut super::in_flight::Cancel::never(),
                }
                .add(&specs[group], (target - from) as usize)
                .await
                .map_err(|f| f.reason);
                if let Err(mut reason) = added {
                    let current = self.current_source(app).await.ok().flatten();
                    if let Some(note) =
                        current.and_then(|c| super::group_notes::shared_ports(&c.config, group))
                    {
                        reason.push_str(&format!("; {note}"));
                    }
                    return Err(DeployError::ScaleFailed(reason));
                }
            } else {
                // Stopped ones first (they serve nothing, and what runs keeps running),
                // then the newest: they have served the least.
                let mut going: Vec<_> = machines.iter().rev().collect();
                going.sort_by_key(|m| m.state != crate::api::types::MachineState::Stopped);
                for machine in going.into_iter().take((from - target) as usize) {
                    let _ = self
                        .runtime
                        .act(app, &machine.id, crate::daemon::runtime::Action::Destroy)
                        .await;
                }
            }
            let (a, g) = (app.to_string(), group.clone());
            self.hub
                .change(move |tx, path| {
                    releases::set_scale(tx, path, &a, &g, target)?;
                    if from == target {
                        // Kept as the count to keep, but nothing changed to tell of.
                        return Ok(((), Vec::new()));
                    }
                    let data =
                        serde_json::json!({ "process_group": g, "from": from, "to": target });
                    Ok(((), vec![NewEvent::app(&a, kind::SCALE_CHANGED, data)]))
                })
                .await?;
            if from == target {
                continue;
            }
            changes.insert(
                group.clone(),
                crate::api::types::ScaleChange { from, to: target },
            );
        }
        Ok(changes)
    }

    /// A deploy of a client's fly.toml: as [`Deployer::start`], except that a config with
    /// no `[[vm]]` keeps the sizes the app runs with now (`scale memory`, `scale vm`), as
    /// Fly keeps a machine's size when fly.toml names none; the release says so.
    pub async fn deploy(&self, app: &str, mut req: DeployRequest) -> Result<u64, DeployError> {
        let mut kept = None;
        if req.config.vm.is_empty() {
            if let Some(current) = self.current_source(app).await? {
                if !current.config.vm.is_empty() {
                    kept = Some(describe_vms(&current.config.vm));
                    req.config.vm = current.config.vm;
                }
            }
        }
        let version = self.start(app, req).await?;
        if let Some(sizes) = kept {
            let note = format!(
                "fly.toml has no [[vm]]: the sizes the app ran with are kept ({sizes}); a [[vm]] \
                 section sets others"
            );
            self.progress(app, version, "scale", note).await;
        }
        Ok(version)
    }

    /// Sets a group's memory limit: a new release of the current one with `[[vm]] memory`
    /// changed, rolled out like any other. No release when the limit is already so.
    pub async fn scale_memory(
        &self,
        app: &str,
        group: Option<String>,
        memory_mb: u64,
    ) -> Result<crate::api::types::MemoryChange, DeployError> {
        crate::api::scale::memory_limit(memory_mb)?;
        let resized = self
            .resize(
                app,
                group,
                |group| format!("scale memory {group}={memory_mb}MB"),
                |vm| vm.memory_mb = Some(memory_mb),
            )
            .await?;
        Ok(crate::api::types::MemoryChange {
            process_group: resized.group,
            from: resized.from.memory_mb,
            to: memory_mb,
            release: resized.release,
        })
    }

    /// Sets a group's size preset (`fly scale vm`): its CPUs and memory (the size's, or
    /// `memory_mb`), by a new release as [`Deployer::scale_memory`] does.
    pub async fn scale_vm(
        &self,
        app: &str,
        request: crate::api::types::VmRequest,
    ) -> Result<crate::api::types::VmChange, DeployError> {
        let Some((cpus, size_mb)) = crate::config::sizes::preset(&request.size) else {
            return Err(DeployError::UnknownSize(request.size));
        };
        let memory_mb = crate::api::scale::memory_limit(request.memory_mb.unwrap_or(size_mb))?;
        let size = request.size;
        let resized = self
            .resize(
                app,
                request.process_group,
                |group| format!("scale vm {group}={size}"),
                |vm| {
                    vm.size = Some(size.clone());
                    vm.cpus = Some(cpus);
                    vm.memory_mb = Some(memory_mb);
                },
            )
            .await?;
        Ok(crate::api::types::VmChange {
            process_group: resized.group,
            from: resized.from,
            to: resized.to,
            release: resized.release,
        })
    }

    /// Starts a release of the current one with `group`'s `[[vm]]` changed by `change`
    /// (given its own `[[vm]]` if it shared one), unless that changes nothing.
    async fn resize(
        &self,
        app: &str,
        group: Option<String>,
        description: impl FnOnce(&str) -> String,
        change: impl FnOnce(&mut Vm),
    ) -> Result<Resized, DeployError> {
        let Some(super::Current {
            mut config, bundle, ..
        }) = self.current_source(app).await?
        else {
            return Err(self.without_release(app).await);
        };
        let groups: Vec<String> = config.group_names().iter().map(|g| g.to_string()).collect();
        let group = match group {
            Some(g) if groups.contains(&g) => g,
            Some(g) => {
                return Err(DeployError::UnknownGroup {
                    group: g,
                    valid: groups.join(", "),
                })
            }
            // `app`, or the only group; with several, which one is not guessed.
            None if groups.len() == 1 || groups.iter().any(|g| g == "app") => {
                config.default_group().to_string()
            }
            None => return Err(DeployError::GroupNeeded(groups.join(", "))),
        };
        let before = plan::vm_for(&config, &group).cloned().unwrap_or_default();
        let mut after = before.clone();
        change(&mut after);
        let (from, to) = (size_of(&before), size_of(&after));
        if from == to {
            return Ok(Resized {
                group,
                from,
                to,
                release: None,
            });
        }
        match config
            .vm
            .iter_mut()
            .find(|v| v.processes.iter().any(|p| p == &group))
        {
            Some(vm) => *vm = after,
            None => {
                // The group gets a [[vm]] of its own, sized like the shared one otherwise.
                after.processes = vec![group.clone()];
                config.vm.push(after);
            }
        }
        let request = DeployRequest {
            config,
            bundle,
            strategy: Some(Strategy::Rolling),
            wait_timeout: None,
            description: Some(description(&group)),
            rebuild: false,
            skip_smoke_checks: false,
        };
        let release = Some(self.start(app, request).await?);
        Ok(Resized {
            group,
            from,
            to,
            release,
        })
    }

    /// Each group of the current release with its machines and size.
    pub async fn scale_show(
        &self,
        app: &str,
    ) -> Result<Vec<crate::api::types::GroupScale>, DeployError> {
        let a = app.to_string();
        let (config, specs) = self
            .store
            .run(move |conn, path| {
                let current = store::apps::current_release(conn, path, &a)?;
                Ok(match current {
                    Some(v) => (
                        releases::source(conn, path, &a, v)?.map(|s| s.config),
                        releases::specs(conn, path, &a, v)?,
                    ),
                    None => (None, BTreeMap::new()),
                })
            })
            .await?;
        let Some(config) = config else {
            return Err(self.without_release(app).await);
        };
        let machines = self.runtime.list(app).await?;
        Ok(specs
            .keys()
            .map(|group| {
                let of_group: Vec<_> = machines
                    .iter()
                    .filter(|m| &m.process_group == group)
                    .collect();
                let vm = plan::vm_for(&config, group);
                let memory_mb = vm.and_then(|v| v.memory_mb);
                crate::api::types::GroupScale {
                    process_group: group.clone(),
                    count: of_group.len() as u32,
                    running: of_group
                        .iter()
                        .filter(|m| m.state == crate::api::types::MachineState::Started)
                        .count() as u32,
                    size: vm.and_then(|v| v.size.clone()),
                    memory_mb,
                    memory_enforced: memory_mb
                        .map(|_| self.runtime.memory_enforcement().to_string()),
                    cpus: vm.and_then(|v| v.cpus),
                    cpus_enforced: vm.and_then(|v| v.cpus).map(|_| self.runtime.limits_cpus()),
                }
            })
            .collect())
    }
}
