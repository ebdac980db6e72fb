//! Releases a daemon crash (or a `kill -9`) cut short mid-rollout. They end `failed`, as a
//! rollout that fails ends itself: the release's new machines go and the old ones its
//! rollout stopped run again, so the app comes back on the release it ran before, whole,
//! instead of a mix of both. The one exception is a group an `immediate` rollout had
//! already emptied of old machines: its new ones stay, rather than leave it with none. A
//! client still following the deploy sees `deploy.failed`.

use crate::api::types::kind;
use crate::daemon::events::{now, EventHub, NewEvent};
use crate::daemon::store::{apps, releases, rollouts, StoreError};

/// Marks every release left rolling out as failed and undoes its rollout in the store,
/// before the runtime starts: it destroys the machines left to destroy and starts the
/// others as recorded.
pub async fn fail_interrupted(hub: &EventHub) -> Result<(), StoreError> {
    hub.change(|tx, path| {
        let mut events = Vec::new();
        for (app, version) in releases::fail_interrupted(tx, path, &now())? {
            let undone = rollouts::undo_rollout(tx, path, &app, version)?;
            let mut reason = if undone.destroyed.is_empty()
                && undone.started.is_empty()
                && undone.kept.is_empty()
            {
                "lakeflyd stopped before the release changed any machine; the previous \
                 release is kept"
                    .to_string()
            } else {
                format!(
                    "lakeflyd stopped during the rollout; the previous release is kept \
                     ({} new machine{} removed, {} old one{} started again)",
                    undone.destroyed.len(),
                    plural(undone.destroyed.len()),
                    undone.started.len(),
                    plural(undone.started.len()),
                )
            };
            if !undone.kept.is_empty() {
                reason.push_str(&format!(
                    "; kept its machine{} {}: the old ones of {} were already gone",
                    plural(undone.kept.len()),
                    undone.kept.join(", "),
                    if undone.kept.len() == 1 {
                        "its group"
                    } else {
                        "their groups"
                    },
                ));
            }
            tracing::warn!(%app, version, "release v{version} was interrupted: {reason}");
            events.push(NewEvent::app(
                &app,
                kind::DEPLOY_FAILED,
                serde_json::json!({
                    "version": version,
                    "reason": reason,
                    "removed": undone.destroyed,
                    "restarted": undone.started,
                    "kept": undone.kept,
                    "running": apps::current_release(tx, path, &app)?,
                }),
            ));
        }
        Ok(((), events))
    })
    .await
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
