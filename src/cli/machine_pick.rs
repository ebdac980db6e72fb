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
    let listed = listed(api, app, offer, unasked).await?;
    let answer = super::remote::ask(&format!(
        "{}\nmachine [1-{}]: ",
        table(&listed),
        listed.len()
    ))?;
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    match place(&answer, &ids) {
        Some(n) => Ok(listed[n].clone()),
        None => Err(Error::NotListed {
            answer,
            count: listed.len(),
        }),
    }
}

/// As [`select`], for a command that takes several machines (`start`, `stop`, `restart`,
/// `destroy`): numbers, ranges and ids, as `1,3`, `1-3` or `all`, as flyctl's multi-select.
pub(super) async fn select_many(
    api: &Client,
    app: &str,
    offer: Offer,
    unasked: impl FnOnce() -> Error,
) -> Result<Vec<Machine>, Error> {
    let listed = listed(api, app, offer, unasked).await?;
    let prompt = match listed.len() {
        1 => "machine [1-1]: ".to_string(),
        n => format!("machines [1-{n}; several as 1,2 or 1-{n} or all]: "),
    };
    let answer = super::remote::ask(&format!("{}\n{prompt}", table(&listed)))?;
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    let chosen = pick(&answer, &ids).ok_or_else(|| Error::NotListed {
        answer: answer.clone(),
        count: listed.len(),
    })?;
    Ok(chosen.into_iter().map(|n| listed[n].clone()).collect())
}

/// The machines of `app` to choose from: those `offer` takes, else every one.
async fn listed(
    api: &Client,
    app: &str,
    offer: Offer,
    unasked: impl FnOnce() -> Error,
) -> Result<Vec<Machine>, Error> {
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
    Ok(listed)
}

/// The numbered list the machines are chosen from.
fn table(listed: &[Machine]) -> String {
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
    table.render()
}

/// The places in `listed` (machine ids) an answer names, in the order named and each
/// once: numbers, ranges (`2-4`), ids and `all`, apart by commas or spaces. `None` when
/// any part names no machine listed, or none is named: nothing is done on a
/// half-understood answer.
fn pick(answer: &str, listed: &[&str]) -> Option<Vec<usize>> {
    let number = |part: &str| number(part, listed.len());
    let mut chosen = Vec::new();
    for part in answer.split([',', ' ']).filter(|p| !p.is_empty()) {
        let places: Vec<usize> = if part.eq_ignore_ascii_case("all") {
            (0..listed.len()).collect()
        } else if let Some((from, to)) = part.split_once('-') {
            match (number(from), number(to)) {
                (Some(from), Some(to)) if from <= to => (from..=to).collect(),
                // Not a range of numbers: an id cannot hold a dash, so nothing listed.
                _ => return None,
            }
        } else {
            vec![place(part, listed)?]
        };
        for place in places {
            if !chosen.contains(&place) {
                chosen.push(place);
            }
        }
    }
    (!chosen.is_empty()).then_some(chosen)
}

/// The place in `listed` (machine ids) of the one machine `answer` names, by its number
/// in the list or its id.
fn place(answer: &str, listed: &[&str]) -> Option<usize> {
    number(answer, listed.len()).or_else(|| listed.iter().position(|id| *id == answer))
}

/// The place a list number (from 1) names in a list of `count`.
fn number(answer: &str, count: usize) -> Option<usize> {
    answer
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=count).contains(n))
        .map(|n| n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_machines_are_named_by_numbers_ranges_ids_or_all_each_once() {
        let pick = |answer: &str| pick(answer, &["a1", "b2", "c3", "d4"]);
        assert_eq!(pick("2"), Some(vec![1]));
        assert_eq!(pick("3, 1"), Some(vec![2, 0]));
        assert_eq!(pick("1-3 c3 4"), Some(vec![0, 1, 2, 3]));
        assert_eq!(pick("b2,2"), Some(vec![1]));
        assert_eq!(pick("ALL"), Some(vec![0, 1, 2, 3]));
        for nothing in ["", " , ", "0", "5", "3-1", "1-9", "x", "1,x", "a-b"] {
            assert_eq!(pick(nothing), None, "{nothing:?}");
        }
    }

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
