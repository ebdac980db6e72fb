//! Why a rollout fails: `Failure`, and what the end of a machine that had passed its
//! checks means.

use std::time::Duration;

use super::Passed;
use crate::api::types::{kind, Event};
use crate::daemon::runtime::exits::how_it_ended;

/// How long after an exit is seen its last output may still arrive: less than the delay
/// before a crashed machine's second restart, so no line of a next run is taken for it.
const EXIT_OUTPUT_SLACK: Duration = Duration::from_millis(150);

/// Why a rollout stopped.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub reason: String,
    /// The machine it happened to.
    pub machine: Option<String>,
    /// The last output of its failing check.
    pub check_output: Option<String>,
    /// When it was seen (RFC 3339): the machine's log lines up to then tell why; later ones
    /// are its shutdown when the rollout stops it.
    pub seen_at: String,
}

impl Failure {
    /// A release cancelled while it rolled out (`why`: who asked).
    pub fn cancelled(why: &str) -> Self {
        Self::because(format!("cancelled: {why}"))
    }

    /// A failure of the release as a whole, not of one machine.
    pub fn because(reason: String) -> Self {
        Failure {
            reason,
            machine: None,
            check_output: None,
            seen_at: crate::daemon::events::now(),
        }
    }

    /// A failure of machine `id`, with its failing check's last output.
    pub(super) fn of_machine(id: &str, reason: String, check_output: Option<String>) -> Self {
        Failure {
            reason,
            machine: Some(id.to_string()),
            check_output,
            seen_at: crate::daemon::events::now(),
        }
    }

    /// A failure of machine `id` because its process ended: what it printed last may still
    /// be in its pipes when the exit is seen, and nothing of a stop follows (it is not
    /// running), so its lines count a little past now.
    pub(super) fn of_exit(id: &str, reason: String, check_output: Option<String>) -> Self {
        let later =
            chrono::Utc::now() + chrono::Duration::from_std(EXIT_OUTPUT_SLACK).unwrap_or_default();
        Failure {
            seen_at: crate::daemon::events::stamp(later),
            ..Failure::of_machine(id, reason, check_output)
        }
    }
}

/// The failure a `machine.exited` or `machine.failed` event of a machine in `passed` means:
/// a release whose machines pass their checks and then crash must not replace the ones
/// that run (flyctl's smoke checks catch the same).
pub(super) fn ended_after_passing(event: &Event, passed: &Passed) -> Option<Failure> {
    let id = event.data["machine"].as_str()?;
    if !passed.contains_key(id) {
        return None;
    }
    let how = match event.kind.as_str() {
        // A clean exit its restart policy (`always`) starts again is the app's own
        // recycling, as a worker that ends after a batch does: not a crash.
        kind::MACHINE_EXITED if recycled(&event.data) => return None,
        kind::MACHINE_EXITED => how_it_ended(&event.data),
        kind::MACHINE_FAILED => format!(
            "failed ({})",
            event.data["reason"].as_str().unwrap_or("unknown reason")
        ),
        _ => return None,
    };
    Some(Failure::of_exit(id, ended_reason(id, &how), None))
}

/// Whether a `machine.exited` event is a clean exit that its restart policy starts again.
pub(super) fn recycled(data: &serde_json::Value) -> bool {
    data["code"] == 0 && data["restarting"] == true
}

/// Why a rollout fails when machine `id`, which had passed its checks, ended (`how`).
pub(super) fn ended_reason(id: &str, how: &str) -> String {
    format!(
        "the app appears to be crashing: machine {id} {how} after it passed its checks, \
         before the release had rolled out"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(machine: &str, code: i64, restarting: bool) -> Event {
        Event {
            id: 1,
            time: String::new(),
            app: Some("a".into()),
            kind: kind::MACHINE_EXITED.into(),
            data: serde_json::json!({ "machine": machine, "code": code, "signal": null, "restarting": restarting }),
        }
    }

    #[test]
    fn only_an_end_of_a_machine_that_passed_fails_the_rollout_and_a_recycle_does_not() {
        let passed = Passed::from([("m1".to_string(), 0)]);
        let crash = ended_after_passing(&exited("m1", 1, true), &passed).expect("a crash");
        assert_eq!(crash.machine.as_deref(), Some("m1"));
        assert!(crash
            .reason
            .contains("exited with code 1 after it passed its checks"));
        assert!(ended_after_passing(&exited("m1", 0, false), &passed).is_some());
        assert!(ended_after_passing(&exited("m1", 0, true), &passed).is_none());
        assert!(ended_after_passing(&exited("m2", 1, true), &passed).is_none());
    }
}
