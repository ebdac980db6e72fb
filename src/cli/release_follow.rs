//! Following a release the client started: its steps as progress lines (or NDJSON), until
//! it is live or failed; shared by deploy, rollback, secrets, scale, `apps restart` and
//! `releases cancel`.

use futures_util::{Stream, StreamExt};

use crate::api::client::Client;
use crate::api::follow::{self, Follow, Item};
use crate::api::types::{kind, Event};
use crate::error::Error;
use crate::output::progress::Progress;
use crate::output::Output;

/// The app's events from now on (a release's steps are `deploy.*`, `release.*` and
/// `machine.replaced`; [`watch`] keeps those of its version; `lakefly watch` redraws on
/// any).
pub(super) async fn subscribe(api: &Client, app: &str) -> Result<impl Stream<Item = Item>, Error> {
    let spec = Follow {
        app: Some(app.to_string()),
        kind: None,
        machine: None,
        since: None,
        tail: None,
    };
    Ok(follow::follow(api, &spec).await?)
}

/// Says where a release that is not followed can be watched.
pub(super) fn detached(out: Output, app: &str, version: u64) -> Result<(), Error> {
    if out.json {
        return out.json(&serde_json::json!({ "app": app, "version": version }));
    }
    out.note(&format!(
        "==> release v{version} started; follow it with `lakefly events -a {app}`"
    ));
    Ok(())
}

/// Follows release `version` until it is complete (Ok) or failed (exit 7). Ctrl-C stops
/// following, never the release, and says how to follow again.
pub(super) async fn watch(
    out: Output,
    app: &str,
    version: u64,
    stream: impl Stream<Item = Item>,
) -> Result<(), Error> {
    let progress = Progress::new(out);
    progress.line(&format!("==> release v{version} started"));
    progress.status(&format!("release v{version}: starting"));
    match follow_release(out, &progress, app, version, stream).await? {
        Ended::Complete => Ok(()),
        Ended::Failed {
            reason,
            running,
            app_said,
        } => Err(Error::DeployFailed {
            app: app.to_string(),
            version,
            reason,
            running,
            app_said,
        }),
    }
}

/// How a followed release ended.
pub(super) enum Ended {
    /// It is live.
    Complete,
    /// It failed; `running` is the release that keeps running.
    Failed {
        /// Why.
        reason: String,
        /// The release that runs instead, if any.
        running: Option<u64>,
        /// Whether the release's machines (or its commands) ran and may have logged why:
        /// not so when it failed before anything of it started (a port taken).
        app_said: bool,
    },
}

/// How long a followed release waits for a daemon out of reach (a restart, a reboot)
/// before it gives up, so a script is not held forever by one that is gone.
const LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(120);
/// When a daemon out of reach is said to be so, beyond the line of the drop.
const STILL_TRYING_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Shows release `version`'s steps from `stream` until it ends (also when the stream does:
/// `Complete`, as the daemon stopped). Ctrl-C stops following, never the release; a daemon
/// out of reach for [`LOST_AFTER`] is given up on.
pub(super) async fn follow_release(
    out: Output,
    progress: &Progress,
    app: &str,
    version: u64,
    stream: impl Stream<Item = Item>,
) -> Result<Ended, Error> {
    use tokio::time::{sleep_until, Instant};
    futures_util::pin_mut!(stream);
    // While the daemon is out of reach: since when, and whether that was said again.
    let mut lost: Option<(Instant, bool)> = None;
    loop {
        let said = lost.is_some_and(|(_, said)| said);
        let next_word =
            lost.map(|(since, said)| since + if said { LOST_AFTER } else { STILL_TRYING_AFTER });
        let waiting = async {
            match next_word {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let item = tokio::select! {
            item = stream.next() => item,
            _ = tokio::signal::ctrl_c() => {
                return Err(Error::Detached { app: app.to_string(), version });
            }
            () = waiting => {
                if said {
                    return Err(Error::LostDaemon {
                        app: app.to_string(),
                        version,
                        waited: format!("{}s", LOST_AFTER.as_secs()),
                    });
                }
                progress.line(&format!(
                    "lakeflyd has not answered for {}s; trying for up to {}s in all (Ctrl-C stops following, not the release)",
                    STILL_TRYING_AFTER.as_secs(),
                    LOST_AFTER.as_secs()
                ));
                lost = lost.map(|(since, _)| (since, true));
                continue;
            }
        };
        let Some(item) = item else {
            return Ok(Ended::Complete);
        };
        let event = match item {
            Item::Event(event) => event,
            Item::Reconnecting { reason } => {
                progress.line(&format!("{reason}; reconnecting"));
                lost.get_or_insert((Instant::now(), false));
                continue;
            }
            Item::Reconnected => {
                if lost.take().is_some_and(|(_, said)| said) {
                    progress.line("reconnected");
                }
                continue;
            }
        };
        if event.data["version"].as_u64() != Some(version) {
            continue;
        }
        report_event(out, progress, &event)?;
        match event.kind.as_str() {
            kind::DEPLOY_COMPLETE => return Ok(Ended::Complete),
            kind::DEPLOY_FAILED => {
                let data = &event.data;
                return Ok(Ended::Failed {
                    reason: data["reason"].as_str().unwrap_or("unknown").to_string(),
                    running: data["running"].as_u64(),
                    app_said: data["machine"].is_string()
                        || data["check_output"].is_string()
                        || data["logs"].as_array().is_some_and(|l| !l.is_empty()),
                });
            }
            _ => {}
        }
    }
}

fn report_event(out: Output, progress: &Progress, event: &Event) -> Result<(), Error> {
    if out.json {
        return out.ndjson(event);
    }
    let d = &event.data;
    match event.kind.as_str() {
        kind::DEPLOY_PROGRESS
        | kind::RELEASE_UNPACKED
        | kind::RELEASE_BUILD
        | kind::RELEASE_COMMAND
        | kind::RELEASE_DOCKERFILE
        | kind::MACHINE_REPLACED => {
            let (step, detail) = (
                d["step"].as_str().unwrap_or("?"),
                d["detail"].as_str().unwrap_or(""),
            );
            progress.line(&format!("    {step}: {detail}"));
            progress.status(&format!("release v{}: {detail}", d["version"]));
        }
        kind::DEPLOY_COMPLETE => progress.line(&format!("==> release v{} is live", d["version"])),
        kind::DEPLOY_FAILED => {
            progress.line(&format!(
                "==> release v{} failed: {}",
                d["version"],
                d["reason"].as_str().unwrap_or("?")
            ));
            if let Some(machine) = d["machine"].as_str() {
                progress.line(&format!("    machine: {machine}"));
            }
            if let Some(output) = d["check_output"].as_str() {
                // A machine's failing check, or else the build or release command's output.
                let label = match d["machine"].is_string() {
                    true => "last check output",
                    false => "last output",
                };
                let mut lines = output.lines();
                progress.line(&format!("    {label}: {}", lines.next().unwrap_or("")));
                for line in lines {
                    progress.line(&format!("      {line}"));
                }
            }
            if let Some(lines) = d["logs"].as_array().filter(|l| !l.is_empty()) {
                progress.line("    last log lines:");
                for line in lines {
                    progress.line(&format!("      {}", line.as_str().unwrap_or("")));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use tokio::time::Instant;

    use super::*;

    const OUT: Output = Output { json: false };

    fn dropped() -> Item {
        Item::Reconnecting {
            reason: "the daemon closed the stream".into(),
        }
    }

    /// `items`, each after its delay.
    fn paced(items: Vec<(Duration, Item)>) -> impl Stream<Item = Item> {
        stream::unfold(items.into_iter(), |mut rest| async move {
            let (delay, item) = rest.next()?;
            tokio::time::sleep(delay).await;
            Some((item, rest))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_out_of_reach_is_given_up_on_with_exit_8() {
        let progress = Progress::new(OUT);
        let gone = stream::iter([dropped()]).chain(stream::pending());
        let start = Instant::now();
        let error = follow_release(OUT, &progress, "hello", 3, gone)
            .await
            .err()
            .expect("given up");
        assert_eq!(start.elapsed(), LOST_AFTER);
        assert!(
            matches!(&error, Error::LostDaemon { version: 3, .. }),
            "{error}"
        );
        assert_eq!(error.exit_code(), 8);
        assert!(
            error.to_string().contains("has not answered for 120s"),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_daemon_back_in_time_is_followed_to_the_end_of_the_release() {
        let progress = Progress::new(OUT);
        let complete = Event {
            id: 9,
            time: String::new(),
            app: Some("hello".into()),
            kind: kind::DEPLOY_COMPLETE.into(),
            data: serde_json::json!({ "version": 3 }),
        };
        let almost = LOST_AFTER - Duration::from_secs(1);
        // Out of reach twice, each time for nearly as long as is waited: each reconnect
        // starts the wait afresh.
        let back = paced(vec![
            (Duration::ZERO, dropped()),
            (almost, Item::Reconnected),
            (Duration::ZERO, dropped()),
            (almost, Item::Reconnected),
            (Duration::ZERO, Item::Event(complete)),
        ]);
        let ended = follow_release(OUT, &progress, "hello", 3, back).await;
        assert!(matches!(ended, Ok(Ended::Complete)));
    }
}
