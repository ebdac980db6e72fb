//! Which machine a command works on when it is not named: the first started one
//! (`console`, `proxy`), or one asked for on the terminal from a list (`--select`, and a
//! `machines` command given no id, as flyctl's).

use std::io::IsTerminal;

use crate::api::client::Client;
use crate::api::types::{Machine, MachineState};
use crate::error::Error;
use crate::output::table::Table;

/// Which of an app's machines a list to choose from offers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Those that run (to stop, signal, open a console in).
    Started,
    /// Those that do not (to start).
    NotRunning,
    /// Every one.
    All,
}

impl Offer {
    fn takes(self, machine: &Machine) -> bool {
        self.takes_state(machine.state)
    }

    fn takes_state(self, state: MachineState) -> bool {
        match self {
            Offer::Started => state == MachineState::Started,
            Offer::NotRunning => matches!(
                state,
                MachineState::Created | MachineState::Stopped | MachineState::Failed
            ),
            Offer::All => true,
        }
    }
}

/// Machine `id` of `app`, or without one the first started machine (`console`, `proxy`).
pub(super) async fn chosen(api: &Client, app: &str, id: Option<&str>) -> Result<Machine, Error> {
    match id {
        Some(id) => Ok(api.machine(app, id).await?),
        None => (api.machines(app).await?)
            .into_iter()
            .find(|m| m.state == MachineState::Started)
            .ok_or_else(|| Error::NoStartedMachine {
                app: app.to_string(),
            }),
    }
}

/// `--select` (`console`, `proxy`, `logs`): asks on the terminal which machine of `app`,
/// offering the started ones first.
pub(super) async fn select_flag(api: &Client, app: &str) -> Result<Machine, Error> {
    select(api, app, Offer::Started, || Error::SelectNeedsTerminal).await
}

/// Asks on the terminal which machine of `app` to use, as flyctl's: those `offer` takes,
/// else all, by number or id. `unasked` is the error when stdin is no terminal to ask on.
pub(super) async fn select(
    api: &Client,
    app: &str,
    offer: Offer,
    unasked: impl FnOnce() -> Error,
) -> Result<Machine, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(unasked());
    }
    let all = api.machines(app).await?;
    let offered: Vec<Machine> = all.iter().filter(|m| offer.takes(m)).cloned().collect();
    let listed = if offered.is_empty() { all } else { offered };
    if listed.is_empty() {
        return Err(Error::NoMachines {
            app: app.to_string(),
        });
    }
    let mut table = Table::new(vec!["#", "ID", "GROUP", "STATE", "HEALTH", "RELEASE"]);
    for (n, m) in listed.iter().enumerate() {
        table.row(vec![
            (n + 1).to_string(),
            m.id.clone(),
            m.process_group.clone(),
            super::machines::state_shown(m).to_string(),
            m.health.to_string(),
            m.release_version
                .map_or_else(|| "-".into(), |v| format!("v{v}")),
        ]);
    }
    let answer = super::remote::ask(&format!(
        "{}\nmachine [1-{}]: ",
        table.render(),
        listed.len()
    ))?;
    let answer = answer.as_str();
    let chosen = match answer.parse::<usize>() {
        Ok(n) if (1..=listed.len()).contains(&n) => listed.get(n - 1),
        _ => listed.iter().find(|m| m.id == answer),
    };
    chosen.cloned().ok_or_else(|| Error::NotListed {
        answer: answer.to_string(),
        count: listed.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_offered_the_machines_that_do_not_run_and_a_stop_those_that_do() {
        let states = [
            "created", "starting", "started", "stopping", "stopped", "failed",
        ];
        let offered = |offer: Offer| -> Vec<&str> {
            let state = |name| MachineState::parse(name).expect("a state");
            (states.iter().copied())
                .filter(|name| offer.takes_state(state(name)))
                .collect()
        };
        assert_eq!(offered(Offer::NotRunning), ["created", "stopped", "failed"]);
        assert_eq!(offered(Offer::Started), ["started"]);
        assert_eq!(offered(Offer::All), states);
    }
}
