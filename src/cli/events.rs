//! `lakefly events`: follow the daemon's event stream, live, or print what is stored.

use clap::Args;
use futures_util::StreamExt;

use super::remote::{app_name, block_on, client};
use super::GlobalArgs;
use crate::api::follow::{self, Follow, Item};
use crate::api::types::{Event, MAX_EVENTS_PAGE};
use crate::error::Error;

/// Follow events as they happen; NDJSON with --json.
#[derive(Debug, Args)]
#[command(
    after_help = "Reconnects by itself after a dropped connection or a daemon restart, and\nresumes after the last event shown: no event is missed or shown twice.\n\nExamples:\n  lakefly events\n  lakefly events --kind machine. --tail 20\n  lakefly events --machine 3779b97f4a7c15 --no-tail\n  lakefly events --all-apps --since 120 --json | jq .kind\n  lakefly events --no-tail --kind deploy. --json     # what is stored, then exit"
)]
pub struct EventsArgs {
    /// Events of every app (and of the daemon), not just this one's.
    #[arg(long)]
    pub all_apps: bool,
    /// Only kinds starting with this (`machine.`, `deploy.`).
    #[arg(long, value_name = "PREFIX")]
    pub kind: Option<String>,
    /// Only events about this machine (its starts, exits, health, ...).
    #[arg(long, value_name = "ID")]
    pub machine: Option<String>,
    /// Start after this event id, replaying what is stored.
    #[arg(long, value_name = "ID", conflicts_with = "tail")]
    pub since: Option<u64>,
    /// Show the last N events first (`-n`, as `logs -n`).
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// Print the stored events and exit instead of following: those after `--since`, the
    /// last `--tail`, else every one the daemon keeps.
    #[arg(long, visible_alias = "no-follow")]
    pub no_tail: bool,
}

/// Follows until interrupted, or prints what is stored with `--no-tail`.
pub fn run(global: &GlobalArgs, args: EventsArgs) -> Result<(), Error> {
    let out = global.output();
    // The app first: a command that cannot name one starts no local daemon.
    let app = if args.all_apps {
        None
    } else {
        Some(app_name(global)?)
    };
    let api = client(global)?;
    let spec = Follow {
        app,
        kind: args.kind,
        machine: args.machine,
        since: args.since,
        tail: args.tail,
    };
    let show = |event: &Event| {
        if out.json {
            out.ndjson(event)
        } else {
            out.text(&human(event))
        }
    };
    if args.no_tail {
        return block_on(async move {
            let mut page = spec;
            loop {
                let events = api.stored_events(&page).await?;
                for event in &events {
                    show(event)?;
                    page.since = Some(event.id);
                }
                if events.len() < MAX_EVENTS_PAGE {
                    return Ok(());
                }
            }
        });
    }
    block_on(async move {
        let stream = follow::follow(&api, &spec).await?;
        futures_util::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Item::Event(event) => show(&event)?,
                Item::Reconnecting { reason } => out.note(&format!("{reason}; reconnecting")),
                Item::Reconnected => out.note("reconnected"),
            }
        }
        Ok(())
    })
}

/// `time  #id  app  kind  details`.
pub(super) fn human(event: &Event) -> String {
    let app = event.app.as_deref().unwrap_or("-");
    format!(
        "{}  #{}  {app}  {}  {}",
        event.time,
        event.id,
        event.kind,
        event.details()
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_show_time_id_app_kind_and_details() {
        let event = Event {
            id: 7,
            time: "2026-11-24T13:42:14.340Z".into(),
            app: Some("hello".into()),
            kind: "machine.exited".into(),
            data: serde_json::json!({ "machine": "abc", "code": null, "signal": "SIGKILL", "restarts": 1 }),
        };
        assert_eq!(
            human(&event),
            "2026-11-24T13:42:14.340Z  #7  hello  machine.exited  machine=abc restarts=1 signal=SIGKILL"
        );
    }

    #[test]
    fn a_value_with_line_breaks_or_escapes_stays_on_the_line_quoted() {
        let event = Event {
            id: 8,
            time: "2026-11-24T13:42:15.000Z".into(),
            app: Some("hello".into()),
            kind: "machine.health".into(),
            data: serde_json::json!({
                "machine": "abc",
                "health": "passing",
                "output": "200 http://127.0.0.1:8080/: <html>\n<b>\u{1b}[2Jhi</b>",
            }),
        };
        assert_eq!(
            human(&event),
            r#"2026-11-24T13:42:15.000Z  #8  hello  machine.health  health=passing machine=abc output="200 http://127.0.0.1:8080/: <html>\n<b>\u{1b}[2Jhi</b>""#
        );
    }
}
