//! A restart that waits on health (`apps restart`, `machines restart ID...`), its steps
//! shown as the app's events tell them: each machine stopped, started, healthy.

use crate::api::restart::RestartRequest;
use crate::error::Error;

/// How long, once the restart is answered, its last events may take to arrive.
const LAST_EVENTS: std::time::Duration = std::time::Duration::from_secs(5);

/// Restarts `app`'s machines as `request` asks, showing each one's stop, start and health
/// as they happen.
pub(super) async fn restart(
    api: &crate::api::client::Client,
    app: &str,
    request: &RestartRequest,
    out: crate::output::Output,
) -> Result<Vec<crate::api::types::Machine>, Error> {
    use futures_util::StreamExt;
    let progress = crate::output::progress::Progress::new(out);
    progress.status(&format!("restarting {app}"));
    // Followed from before the request, so no machine's event is missed.
    let events = super::release_follow::subscribe(api, app).await?;
    futures_util::pin_mut!(events);
    let restarting = api.restart_app(app, request);
    futures_util::pin_mut!(restarting);
    let show = |event: &crate::api::types::Event| {
        // Named machines: only theirs (another's crash is not this restart's step).
        let theirs = request.machines.is_empty()
            || (event.data["machine"].as_str())
                .is_some_and(|id| request.machines.iter().any(|m| m == id));
        if let Some(line) = restart_step(event).filter(|_| theirs) {
            progress.line(&line);
            progress.status(line.trim());
        }
        event.kind == crate::api::types::kind::APP_RESTARTED
    };
    let mut ended = false;
    let restarted = loop {
        tokio::select! {
            restarted = &mut restarting => break restarted,
            item = events.next(), if !ended => match item {
                Some(crate::api::follow::Item::Event(event)) => ended = show(&event),
                Some(_) => {}
                None => ended = true,
            },
        }
    };
    // The steps not shown yet, up to the restart's last event (`app.restarted`), when a
    // restart ran (a refused one, of an unknown app say, has none).
    let ran = match &restarted {
        Ok(_) => true,
        Err(crate::api::client::ClientError::Api { error, .. }) => {
            error.code == crate::api::codes::RESTART_FAILED
        }
        Err(_) => false,
    };
    let deadline = tokio::time::Instant::now() + LAST_EVENTS;
    while ran && !ended {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(crate::api::follow::Item::Event(event))) => ended = show(&event),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    progress.finish();
    Ok(restarted?)
}

/// What a machine event says about a restart in progress, as a progress line.
fn restart_step(event: &crate::api::types::Event) -> Option<String> {
    use crate::api::types::{kind, HealthState};
    let d = &event.data;
    let machine = d["machine"].as_str()?;
    match event.kind.as_str() {
        kind::MACHINE_STOPPED => Some(format!("    machine {machine} stopped")),
        kind::MACHINE_STARTED => Some(format!("    machine {machine} started")),
        kind::MACHINE_HEALTH if d["health"] == HealthState::Passing.as_str() => {
            Some(format!("    machine {machine} is healthy"))
        }
        // Said as the check fails, not only when wait_timeout ends the restart: its first
        // line (an HTTP check's status and URL; the whole output comes with a failure).
        kind::MACHINE_HEALTH if d["health"] == HealthState::Critical.as_str() => {
            let check = d["check"].as_str().unwrap_or("a check");
            let said = d["output"].as_str().unwrap_or_default();
            let first = said.lines().next().unwrap_or_default();
            let more = if said.lines().nth(1).is_some() {
                " …"
            } else {
                ""
            };
            Some(format!(
                "    machine {machine} is not healthy yet: {check}: {first}{more}"
            ))
        }
        kind::MACHINE_EXITED => Some(format!("    machine {machine} exited")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: serde_json::Value) -> crate::api::types::Event {
        serde_json::from_value(serde_json::json!({
            "id": 1, "time": "2026-12-06T07:00:00Z", "app": "a", "kind": kind, "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn each_step_of_a_machine_is_a_line_and_a_failing_check_says_why() {
        let step = |kind, data| restart_step(&event(kind, data));
        let m = serde_json::json!({ "machine": "m1" });
        assert_eq!(
            step("machine.stopped", m.clone()).unwrap(),
            "    machine m1 stopped"
        );
        let passing = serde_json::json!({ "machine": "m1", "health": "passing" });
        assert_eq!(
            step("machine.health", passing).unwrap(),
            "    machine m1 is healthy"
        );
        let failing = serde_json::json!({
            "machine": "m1", "health": "critical", "check": "servicecheck-00-http-8080",
            "output": "503 from http://127.0.0.1:30001/health\nnot ready",
        });
        assert_eq!(
            step("machine.health", failing).unwrap(),
            "    machine m1 is not healthy yet: servicecheck-00-http-8080: 503 from http://127.0.0.1:30001/health …"
        );
        // Not a machine's step: nothing.
        assert_eq!(step("deploy.started", serde_json::json!({})), None);
        let unknown = serde_json::json!({ "machine": "m1", "health": "unknown" });
        assert_eq!(step("machine.health", unknown), None);
    }
}
