//! Every recorded event as a line of lakeflyd's own log, so `journalctl -u lakeflyd` tells
//! what happened (a release that failed, a machine that crashed) without the API. Events
//! never hold a secret's value, so neither do these lines.

use crate::api::types::{kind, Event, HealthState};

/// Longest details part of a line: a check's output can be a page of HTML.
const MAX_DETAILS: usize = 600;

/// Logs `event` under the `lakefly::events` target (so `LAKEFLY_LOG=info,lakefly::events=warn`
/// keeps only what went wrong); a deploy's step-by-step progress is left to the event log.
pub(super) fn log(event: &Event) {
    if event.kind == kind::DEPLOY_PROGRESS || event.kind == kind::GAP {
        return;
    }
    let details = details(event);
    // Left out for the daemon's own events.
    let app = event.app.as_deref();
    let (id, kind) = (event.id, event.kind.as_str());
    if went_wrong(event) {
        tracing::warn!(target: "lakefly::events", id, app, "{kind} {details}");
    } else {
        tracing::info!(target: "lakefly::events", id, app, "{kind} {details}");
    }
}

/// The event's details on one line (`Event::details` quotes a check's output or a
/// failure's last lines, which hold newlines), cut to [`MAX_DETAILS`].
fn details(event: &Event) -> String {
    let mut details = event.details();
    super::excerpt::head(&mut details, MAX_DETAILS);
    details
}

/// Whether an operator reading only warnings wants to see it.
fn went_wrong(event: &Event) -> bool {
    match event.kind.as_str() {
        kind::DEPLOY_FAILED | kind::MACHINE_FAILED | kind::TLS_RELOAD_FAILED => true,
        kind::MACHINE_HEALTH => event.data["health"] == HealthState::Critical.as_str(),
        // An exit nobody asked for (a stop lakefly asked for is `machine.stopped`): a
        // crash unless it exited 0, whether by a code or a signal (the OOM killer's).
        kind::MACHINE_EXITED => event.data["code"] != 0,
        kind::JOB_RUN_FINISHED => event.data["status"] != "succeeded",
        kind::JOB_RUN_RETRYING => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: serde_json::Value) -> Event {
        Event {
            id: 1,
            time: "2026-12-03T10:00:00Z".into(),
            app: Some("shop".into()),
            kind: kind.into(),
            data,
        }
    }

    #[test]
    fn details_are_one_bounded_line() {
        let long = "x".repeat(2 * MAX_DETAILS);
        let failed = event(
            kind::DEPLOY_FAILED,
            serde_json::json!({ "reason": "not healthy\nlast output:\n  500", "tail": long }),
        );
        let line = details(&failed);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains(r#"reason="not healthy\nlast output:\n  500""#),
            "{line}"
        );
        assert!(line.len() <= MAX_DETAILS + '…'.len_utf8() && line.ends_with('…'));
    }

    #[test]
    fn failures_and_crashes_are_warnings_and_asked_for_stops_are_not() {
        use serde_json::json;
        assert!(went_wrong(&event(
            kind::DEPLOY_FAILED,
            json!({ "version": 3 })
        )));
        assert!(went_wrong(&event(
            kind::MACHINE_EXITED,
            json!({ "code": 3 })
        )));
        assert!(!went_wrong(&event(
            kind::MACHINE_EXITED,
            json!({ "code": 0 })
        )));
        assert!(went_wrong(&event(
            kind::MACHINE_EXITED,
            json!({ "code": null, "signal": "SIGKILL" })
        )));
        assert!(!went_wrong(&event(
            kind::MACHINE_STOPPED,
            json!({ "code": null, "signal": "SIGTERM" })
        )));
        assert!(went_wrong(&event(
            kind::MACHINE_HEALTH,
            json!({ "health": "critical" })
        )));
        assert!(!went_wrong(&event(
            kind::MACHINE_HEALTH,
            json!({ "health": "passing" })
        )));
        assert!(went_wrong(&event(
            kind::JOB_RUN_RETRYING,
            json!({ "attempt": 2, "status": "failed", "exit_code": 3 })
        )));
        assert!(!went_wrong(&event(
            kind::DEPLOY_COMPLETE,
            json!({ "version": 3 })
        )));
    }
}
