//! `lakefly machines status ID`: one machine in full, as `fly machine status` shows it:
//! its state and process, how it runs, its checks' latest results and its recent events.

use super::checks::checks_table;
use super::events::human;
use super::machines::{state_shown, uptime};
use super::remote::block_on;
use crate::api::checks::CheckStatus;
use crate::api::client::Client;
use crate::api::follow::Follow;
use crate::api::types::{Event, Machine};
use crate::error::Error;
use crate::output::Output;

/// How many of the machine's latest events are shown.
const RECENT_EVENTS: usize = 10;

/// Prints machine `id` of `app`: as text, or one JSON object with `machine`, `checks`
/// and `events`.
pub(super) fn run(out: &Output, api: &Client, app: &str, id: &str) -> Result<(), Error> {
    let (machine, checks, events) = block_on(async {
        let machine = api.machine(app, id).await?;
        let mut checks = api.checks(app).await?;
        checks.retain(|c| c.machine == machine.id);
        let recent = Follow {
            app: Some(app.to_string()),
            kind: None,
            machine: Some(machine.id.clone()),
            since: None,
            tail: Some(RECENT_EVENTS),
        };
        let events = api.stored_events(&recent).await?;
        Ok((machine, checks, events))
    })?;
    if out.json {
        return out.json(&serde_json::json!({
            "machine": machine,
            "checks": checks,
            "events": events,
        }));
    }
    out.text(&render(&machine, &checks, &events, chrono::Utc::now()))
}

/// The text of `machines status`.
fn render(
    machine: &Machine,
    checks: &[CheckStatus],
    events: &[Event],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let spec = &machine.spec;
    let mut lines = vec![
        ("Machine", machine.id.clone()),
        ("App", machine.app.clone()),
        ("Group", machine.process_group.clone()),
        (
            "State",
            format!("{}, health {}", state_shown(machine), machine.health),
        ),
    ];
    if let Some(version) = machine.release_version {
        lines.push(("Release", format!("v{version}")));
    }
    if let Some(pid) = machine.pid {
        let up = machine.started_at.as_deref().and_then(|t| uptime(t, now));
        let up = up.map_or(String::new(), |up| format!(", up {up}"));
        lines.push(("Process", format!("pid {pid}{up}")));
    }
    lines.push(("Restarts", machine.restarts.to_string()));
    if let Some(exit) = &machine.last_exit {
        let how = match (exit.code, &exit.signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => signal.clone(),
            (None, None) => "unknown".to_string(),
        };
        let oom = if exit.oom_killed {
            " (over its memory limit)"
        } else {
            ""
        };
        lines.push(("Last exit", format!("{how}{oom} at {}", exit.time)));
    }
    match (machine.port, spec.internal_port) {
        (Some(port), Some(internal)) => {
            lines.push(("Port", format!("{port} ($PORT; internal_port {internal})")))
        }
        (Some(port), None) => lines.push(("Port", port.to_string())),
        _ => {}
    }
    lines.push(("Command", spec.command.clone()));
    if let Some(workdir) = &spec.workdir {
        lines.push(("Directory", workdir.clone()));
    }
    if let Some(mb) = spec.memory_mb {
        lines.push(("Memory", format!("{mb} MB")));
    }
    if let Some(cpus) = spec.cpus {
        lines.push(("CPUs", cpus.to_string()));
    }
    if let Some(mb) = spec.swap_mb {
        lines.push(("Swap", format!("{mb} MB")));
    }
    let mut text: String = lines
        .iter()
        .map(|(label, value)| format!("{label:<10} {value}\n"))
        .collect();
    text.push_str("\nChecks\n");
    if checks.is_empty() {
        text.push_str("  none running (the machine is not started)\n");
    } else {
        text.push_str(&checks_table(checks, now));
        text.push('\n');
    }
    text.push_str(&format!(
        "\nRecent events (`lakefly events --machine {}`)\n",
        machine.id
    ));
    for event in events {
        text.push_str(&human(event));
        text.push('\n');
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{ExitInfo, MachineSpec, MachineState};

    #[test]
    fn a_crashed_machine_shows_its_exit_command_checks_and_events() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let spec: MachineSpec = serde_json::from_value(serde_json::json!({
            "command": "python3 app.py",
            "workdir": "/srv/releases/web/3",
            "internal_port": 8080,
            "memory_mb": 256,
        }))
        .expect("spec");
        let machine = Machine {
            id: "m1".into(),
            app: "web".into(),
            process_group: "app".into(),
            state: MachineState::Starting,
            health: crate::api::types::HealthState::Unknown,
            release_version: Some(3),
            pid: None,
            port: Some(28128),
            restarts: 2,
            last_exit: Some(ExitInfo {
                code: Some(3),
                signal: None,
                time: "2026-12-03T11:59:59Z".into(),
                oom_killed: false,
            }),
            started_at: None,
            created_at: "2026-12-03T11:00:00Z".into(),
            spec,
        };
        let events = [Event {
            id: 9,
            time: "2026-12-03T11:59:59Z".into(),
            app: Some("web".into()),
            kind: "machine.exited".into(),
            data: serde_json::json!({ "machine": "m1", "code": 3 }),
        }];
        let table = crate::cli::machines::machine_table(std::slice::from_ref(&machine));
        assert!(table.contains("m1  app    restarting  unknown"), "{table}");
        let text = render(&machine, &[], &events, now);
        for expected in [
            "State      restarting, health unknown\n",
            "Restarts   2\n",
            "Last exit  code 3 at 2026-12-03T11:59:59Z\n",
            "Port       28128 ($PORT; internal_port 8080)\n",
            "Command    python3 app.py\n",
            "Memory     256 MB\n",
            "none running",
            "#9  web  machine.exited  code=3 machine=m1",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
        assert!(!text.contains("Process"), "{text}");
    }
}
