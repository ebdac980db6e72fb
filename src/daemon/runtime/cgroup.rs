//! Machine memory and CPU limits through cgroup v2, when lakeflyd has a cgroup of its own
//! to manage (systemd `Delegate=`). Because of cgroup v2's "no internal processes" rule the
//! daemon first moves itself into `<own>/daemon`, then enables the memory controller (and
//! the cpu one, when delegated) below `<own>` and gives each machine
//! `<own>/machines/<id>` with `memory.max`, `memory.swap.max` (`swap_size_mb`), `memory.oom.group` (an out-of-memory kill takes
//! the machine's whole process tree) and `cpu.max` (`[[vm]] cpus` worth of CPU time per
//! period). Without such a cgroup, the supervisor holds memory limits by watching the
//! machine's resident memory (`resident.rs`), and CPU limits are not held.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The daemon's delegated cgroup, set up for machines.
#[derive(Debug, Clone)]
pub struct Cgroups {
    machines: PathBuf,
    /// Whether the cpu controller is enabled for machines.
    cpu: bool,
}

/// The period `cpu.max` is given in, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// One machine's cgroup: its process joins it between fork and exec.
#[derive(Debug)]
pub struct MachineCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork, so the child only has to write to it.
    pub procs: File,
}

impl Cgroups {
    /// The daemon's cgroup if it is cgroup v2, has the memory controller, holds no other
    /// process, and is writable; `None` (and why, in the log) otherwise.
    pub fn detect() -> Option<Self> {
        let own = match std::fs::read_to_string("/proc/self/cgroup") {
            Ok(text) => own_v2_path(&text)?,
            Err(_) => return None,
        };
        match Self::prepare(Path::new(CGROUP_ROOT), &own, std::process::id()) {
            Ok(cgroups) => {
                tracing::info!(cgroup = %cgroups.machines.display(), cpu = cgroups.cpu, "machine memory (and, with cpu, CPU) limits use cgroup v2");
                Some(cgroups)
            }
            Err(reason) => {
                tracing::info!(%reason, "machine memory limits are held by watching resident memory");
                None
            }
        }
    }

    /// Sets up `<root>/<own>` for machines, the daemon (`pid`) being its only process.
    fn prepare(root: &Path, own: &str, pid: u32) -> Result<Self, String> {
        let base = root.join(own.trim_start_matches('/'));
        let controllers = read(&base.join("cgroup.controllers"))?;
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(format!("{} has no memory controller", base.display()));
        }
        let procs = read(&base.join("cgroup.procs"))?;
        let others = procs
            .split_whitespace()
            .filter(|p| *p != pid.to_string())
            .count();
        if others > 0 {
            return Err(format!(
                "{} holds {others} other process(es): it is not delegated to lakeflyd",
                base.display()
            ));
        }
        let daemon = base.join("daemon");
        create_dir(&daemon)?;
        write(&daemon.join("cgroup.procs"), &pid.to_string())?;
        let machines = base.join("machines");
        // CPU limits are a bonus: a unit that delegates only memory (or where the kernel
        // refuses the cpu controller) still gets memory limits.
        let with_cpu = controllers.split_whitespace().any(|c| c == "cpu")
            && enable(&base, &machines, "+memory +cpu").is_ok();
        if !with_cpu {
            enable(&base, &machines, "+memory")?;
        }
        Ok(Cgroups {
            machines,
            cpu: with_cpu,
        })
    }

    /// Whether machines' `[[vm]] cpus` is held.
    pub fn limits_cpus(&self) -> bool {
        self.cpu
    }

    /// A cgroup for machine `id`, held to `limits` (each written either way, so a cgroup
    /// kept from a run with a limit loses it).
    pub fn machine(&self, id: &str, limits: Limits) -> Result<MachineCgroup, String> {
        let dir = self.machines.join(id);
        create_dir(&dir)?;
        write(&dir.join("memory.max"), &bytes_or_max(limits.memory_mb))?;
        // Only with the kernel's swap accounting; without it swap is the host's, as
        // without a cgroup.
        let swap_max = dir.join("memory.swap.max");
        if swap_max.exists() {
            write(&swap_max, &bytes_or_max(limits.swap_mb))?;
        }
        if self.cpu {
            let quota = limits.cpus.map_or("max".to_string(), |n| {
                (u64::from(n) * CPU_PERIOD_US).to_string()
            });
            write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        // Best effort: older kernels lack it, and the limit holds without it.
        let _ = write(&dir.join("memory.oom.group"), "1");
        let path = dir.join("cgroup.procs");
        let procs = File::options()
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(MachineCgroup { dir, procs })
    }
}

impl MachineCgroup {
    /// Whether the kernel killed anything in it for going over `memory.max`: the
    /// `oom_kill` count of its `memory.events` (a cgroup lasts one run of its machine).
    pub fn oom_killed(&self) -> bool {
        std::fs::read_to_string(self.dir.join("memory.events")).is_ok_and(|events| {
            events.lines().any(|line| {
                line.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    }

    /// Removes the cgroup once its processes are gone (the kernel refuses before).
    pub fn remove(self) {
        drop(self.procs);
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// Kills whatever is still in the cgroup, then removes it: a process can leave its
    /// process group and session but not its cgroup, so this catches every straggler, even
    /// one that cleared its environment. `cgroup.kill` (Linux 5.14) kills them at once;
    /// before it, each listed pid gets SIGKILL. Waits a second at most for them to go.
    pub async fn kill_and_remove(self) {
        let procs = self.dir.join("cgroup.procs");
        if write(&self.dir.join("cgroup.kill"), "1").is_err() {
            super::process::signal_each(&pids_in(&procs), nix::sys::signal::Signal::SIGKILL);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        super::process::wait_none(move || pids_in(&procs), deadline).await;
        self.remove();
    }
}

/// The line for a machine's log when the kernel killed it in its cgroup for its memory
/// (as `MemoryWatch::kill_note` for the watch's kills).
pub fn oom_kill_note(limit_mb: Option<u64>) -> String {
    let limit = limit_mb.map_or(String::new(), |mb| format!(" {mb} MB"));
    format!(
        "lakeflyd: the kernel killed the machine: it went over its{limit} memory limit ([[vm]] memory, `lakefly scale memory`)"
    )
}

/// The processes a cgroup's `cgroup.procs` lists now.
fn pids_in(procs: &Path) -> Vec<u32> {
    std::fs::read_to_string(procs)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// What a machine's cgroup holds it to; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory in MiB (`[[vm]] memory`): `memory.max`.
    pub memory_mb: Option<u64>,
    /// Swap in MiB (`swap_size_mb`): `memory.swap.max`.
    pub swap_mb: Option<u64>,
    /// CPUs (`[[vm]] cpus`): `cpu.max`.
    pub cpus: Option<u32>,
}

/// A size in MiB as a cgroup file takes it: bytes, or `max`.
fn bytes_or_max(mb: Option<u64>) -> String {
    mb.map_or("max".to_string(), |mb| {
        mb.saturating_mul(1024 * 1024).to_string()
    })
}

/// The path of a process's cgroup on a pure cgroup v2 system (one `0::/path` line).
fn own_v2_path(proc_self_cgroup: &str) -> Option<String> {
    let mut lines = proc_self_cgroup.lines().filter(|l| !l.is_empty());
    let path = lines.next()?.strip_prefix("0::")?.to_string();
    // Any other line is a cgroup v1 hierarchy: a hybrid system, where v2 has no controllers.
    lines.next().is_none().then_some(path)
}

/// Enables `controllers` below `base` and below its `machines` cgroup (created here).
fn enable(base: &Path, machines: &Path, controllers: &str) -> Result<(), String> {
    write(&base.join("cgroup.subtree_control"), controllers)?;
    create_dir(machines)?;
    write(&machines.join("cgroup.subtree_control"), controllers)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    // As `echo value > file` opens it: the kernel ignores the truncation, a test's plain
    // file needs it.
    File::options()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

fn create_dir(path: &Path) -> Result<(), String> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup directory as the kernel shows one: the files exist and take writes.
    fn fake_cgroup(dir: &Path, controllers: &str, procs: &str) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("cgroup.controllers"), controllers).expect("write");
        std::fs::write(dir.join("cgroup.procs"), procs).expect("write");
        std::fs::write(dir.join("cgroup.subtree_control"), "").expect("write");
    }

    /// lakeflyd's delegated cgroup (`controllers` delegated to it) with machine 7's
    /// directory in it, prepared; and the directory of lakeflyd's cgroup.
    fn delegated_with_machine_7(controllers: &str) -> (tempfile::TempDir, PathBuf, Cgroups) {
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path().join("lakeflyd.service");
        fake_cgroup(&base, controllers, "42\n");
        for sub in ["daemon", "machines", "machines/7"] {
            fake_cgroup(&base.join(sub), "memory", "");
        }
        std::fs::write(base.join("machines/7/memory.max"), "max").expect("write");
        let cgroups = Cgroups::prepare(root.path(), "/lakeflyd.service", 42).expect("prepared");
        (root, base, cgroups)
    }

    #[test]
    fn only_a_pure_v2_hierarchy_is_used() {
        assert_eq!(
            own_v2_path("0::/system.slice/lakeflyd.service\n").as_deref(),
            Some("/system.slice/lakeflyd.service")
        );
        assert_eq!(own_v2_path("4:memory:/x\n0::/\n"), None);
        assert_eq!(own_v2_path(""), None);
    }

    #[test]
    fn a_delegated_cgroup_is_split_into_daemon_and_machines() {
        let root = tempfile::tempdir().expect("tempdir");
        let base = root.path().join("system.slice/lakeflyd.service");
        fake_cgroup(&base, "cpu memory pids", "42\n");
        // The kernel creates these files with the directory; the fake needs them first.
        for sub in ["daemon", "machines"] {
            fake_cgroup(&base.join(sub), "memory", "");
        }
        let cgroups =
            Cgroups::prepare(root.path(), "/system.slice/lakeflyd.service", 42).expect("prepared");
        let read = |p: &str| std::fs::read_to_string(base.join(p)).expect("read");
        assert_eq!(read("daemon/cgroup.procs"), "42");
        assert_eq!(read("cgroup.subtree_control"), "+memory +cpu");
        assert_eq!(read("machines/cgroup.subtree_control"), "+memory +cpu");
        assert!(cgroups.limits_cpus());

        let machine_dir = base.join("machines/7");
        fake_cgroup(&machine_dir, "cpu memory", "");
        std::fs::write(machine_dir.join("memory.max"), "max").expect("write");
        std::fs::write(machine_dir.join("cpu.max"), "max 100000").expect("write");
        std::fs::write(machine_dir.join("memory.swap.max"), "max").expect("write");
        let limits = Limits {
            memory_mb: Some(128),
            swap_mb: Some(512),
            cpus: Some(2),
        };
        let machine = cgroups.machine("7", limits).expect("machine cgroup");
        assert_eq!(read("machines/7/memory.max"), (128u64 << 20).to_string());
        assert_eq!(
            read("machines/7/memory.swap.max"),
            (512u64 << 20).to_string()
        );
        assert_eq!(read("machines/7/cpu.max"), "200000 100000");
        machine.remove();
        // Without a limit, none is left from an earlier run.
        let machine = cgroups
            .machine("7", Limits::default())
            .expect("machine cgroup");
        assert_eq!(read("machines/7/memory.max"), "max");
        assert_eq!(read("machines/7/memory.swap.max"), "max");
        assert_eq!(read("machines/7/cpu.max"), "max 100000");
        machine.remove();
    }

    #[tokio::test]
    async fn a_machines_cgroup_is_killed_whole_before_it_is_removed() {
        let (_root, base, cgroups) = delegated_with_machine_7("memory");
        std::fs::write(base.join("machines/7/cgroup.kill"), "").expect("write");
        let machine = cgroups
            .machine("7", Limits::default())
            .expect("machine cgroup");
        machine.kill_and_remove().await;
        let killed = std::fs::read_to_string(base.join("machines/7/cgroup.kill")).expect("read");
        assert_eq!(killed, "1");
    }

    #[test]
    fn a_machine_is_known_to_be_killed_for_its_memory_by_its_oom_kill_count() {
        let (_root, base, cgroups) = delegated_with_machine_7("memory");
        let machine = cgroups
            .machine("7", Limits::default())
            .expect("machine cgroup");
        let events = base.join("machines/7/memory.events");
        assert!(!machine.oom_killed(), "no memory.events: not known to be");
        // `oom` counts the times the limit was hit, which reclaim may have survived.
        std::fs::write(&events, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 0\n").expect("write");
        assert!(!machine.oom_killed());
        std::fs::write(&events, "low 0\nhigh 0\nmax 9\noom 1\noom_kill 2\n").expect("write");
        assert!(machine.oom_killed());
    }

    #[test]
    fn a_cgroup_delegated_memory_only_limits_memory_only() {
        let (_root, base, cgroups) = delegated_with_machine_7("memory pids");
        assert!(!cgroups.limits_cpus());
        let read = |p: &str| std::fs::read_to_string(base.join(p)).expect("read");
        assert_eq!(read("machines/cgroup.subtree_control"), "+memory");
        let limits = Limits {
            memory_mb: Some(64),
            swap_mb: Some(64),
            cpus: Some(1),
        };
        cgroups
            .machine("7", limits)
            .expect("machine cgroup")
            .remove();
        assert!(!base.join("machines/7/cpu.max").exists());
        // Nor swap without the kernel's swap accounting.
        assert!(!base.join("machines/7/memory.swap.max").exists());
    }

    #[test]
    fn a_shared_or_memoryless_cgroup_is_not_used() {
        let root = tempfile::tempdir().expect("tempdir");
        fake_cgroup(&root.path().join("a"), "cpu pids", "42\n");
        let no_memory = Cgroups::prepare(root.path(), "/a", 42).expect_err("no memory");
        assert!(no_memory.contains("no memory controller"), "{no_memory}");
        fake_cgroup(&root.path().join("b"), "memory", "42\n43\n");
        let shared = Cgroups::prepare(root.path(), "/b", 42).expect_err("shared");
        assert!(shared.contains("1 other process"), "{shared}");
    }
}
