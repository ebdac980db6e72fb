//! `lakefly machines wait ID`: until a machine reaches a state, as flyctl's `machine wait`
//! (a script starts or stops one, then waits for it). The machine's events are followed
//! from before it is first looked at, and each one, or a reconnect, has it looked at again,
//! so no change is missed and none is polled for.

use futures_util::StreamExt;

use crate::api::client::{Client, ClientError};
use crate::api::follow::{Follow, Item};
use crate::api::types::{Machine, MachineState};
use crate::config::units::Duration;
use crate::error::Error;
use crate::output::progress::Progress;

/// The state `machines wait --state` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// One a machine stays in until something asks otherwise (started, stopped, failed or
    /// destroyed): flyctl's default, `settled`.
    Settled,
    /// This one.
    State(MachineState),
}

impl Wanted {
    /// Reads `--state`: `settled` or a machine state's name.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim().to_ascii_lowercase();
        if name == "settled" {
            return Ok(Wanted::Settled);
        }
        if let Some(state) = MachineState::parse(&name) {
            return Ok(Wanted::State(state));
        }
        let hint = match name.as_str() {
            "suspended" | "suspending" => {
                " (lakefly's machines are stopped, never suspended: wait for `stopped`)"
            }
            _ => "",
        };
        Err(format!(
            "{name:?} is not a machine state{hint}; use settled, created, starting, started, stopping, stopped, failed or destroyed"
        ))
    }

    /// Whether a machine in `state` has reached it.
    fn reached_by(self, state: MachineState) -> bool {
        match self {
            Wanted::Settled => matches!(
                state,
                MachineState::Started
                    | MachineState::Stopped
                    | MachineState::Failed
                    | MachineState::Destroyed
            ),
            Wanted::State(wanted) => state == wanted,
        }
    }

    /// How it is said: `"started"`, or `a settled state`.
    pub fn shown(self) -> String {
        match self {
            Wanted::Settled => "a settled state".to_string(),
            Wanted::State(state) => format!("{:?}", state.as_str()),
        }
    }
}

/// How a wait ended well.
#[derive(Debug)]
pub enum Reached {
    /// The machine, as it then was.
    Machine(Box<Machine>),
    /// It had been destroyed before it was first looked at, which was waited for.
    Gone,
}

/// Waits until machine `id` of `app` reaches `wanted`, at most `limit` (none: for as long
/// as it takes), showing each state it passes through on `progress`. One destroyed
/// meanwhile, when that is not what was waited for, ends the wait at once: it reaches
/// nothing else.
pub(super) async fn wait(
    api: &Client,
    app: &str,
    id: &str,
    wanted: Wanted,
    limit: Option<Duration>,
    progress: &Progress,
) -> Result<Reached, Error> {
    let follow = Follow {
        app: Some(app.to_string()),
        kind: Some("machine.".to_string()),
        machine: Some(id.to_string()),
        since: None,
        tail: None,
    };
    // Followed before the first look, so a change between the two is not missed.
    let events = crate::api::follow::follow(api, &follow).await?;
    futures_util::pin_mut!(events);
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit.to_std());
    // An unknown id is the first look's error (not found), unless it was a machine's that
    // is destroyed, which may be what was waited for; later, a machine no longer found was
    // destroyed.
    let mut machine = match api.machine(app, id).await {
        Ok(machine) => machine,
        Err(e) if not_found(&e) && wanted.reached_by(MachineState::Destroyed) => {
            return match was_destroyed(api, app, id).await? {
                true => Ok(Reached::Gone),
                false => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    progress.status(&format!(
        "waiting for machine {id} to reach {}",
        wanted.shown()
    ));
    let mut shown = None;
    loop {
        if wanted.reached_by(machine.state) {
            return Ok(Reached::Machine(Box::new(machine)));
        }
        // The states on the way; the one reached is the command's to say.
        if shown != Some(machine.state) {
            progress.line(&format!("    machine {id} is {}", machine.state.as_str()));
            shown = Some(machine.state);
        }
        if machine.state == MachineState::Destroyed {
            return Err(not_reached(&machine, wanted, None));
        }
        let next = events.next();
        let item = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, next).await {
                Ok(item) => item,
                Err(_) => return Err(not_reached(&machine, wanted, limit)),
            },
            None => next.await,
        };
        match item {
            // Whatever changed, or may have while the stream was down: look again.
            Some(Item::Event(_) | Item::Reconnected) => machine = look_again(api, machine).await?,
            Some(Item::Reconnecting { .. }) => {}
            None => return Err(not_reached(&machine, wanted, None)),
        }
    }
}

/// `machine` as it is now: destroyed when it is no longer found.
async fn look_again(api: &Client, machine: Machine) -> Result<Machine, Error> {
    match api.machine(&machine.app, &machine.id).await {
        Ok(now) => Ok(now),
        Err(e) if not_found(&e) => Ok(Machine {
            state: MachineState::Destroyed,
            ..machine
        }),
        Err(e) => Err(e.into()),
    }
}

/// Whether `e` says there is no such machine.
fn not_found(e: &ClientError) -> bool {
    matches!(e, ClientError::Api { status: 404, error } if error.code == crate::api::codes::MACHINE_NOT_FOUND)
}

/// Whether the events kept say machine `id` of `app` was destroyed.
async fn was_destroyed(api: &Client, app: &str, id: &str) -> Result<bool, Error> {
    let destroyed = Follow {
        app: Some(app.to_string()),
        kind: Some(crate::api::types::kind::MACHINE_DESTROYED.to_string()),
        machine: Some(id.to_string()),
        since: None,
        tail: None,
    };
    Ok(!api.stored_events(&destroyed).await?.is_empty())
}

fn not_reached(machine: &Machine, wanted: Wanted, limit: Option<Duration>) -> Error {
    Error::NotReached {
        machine: machine.id.clone(),
        wanted: wanted.shown(),
        within: limit.map_or_else(String::new, |limit| format!(" within {limit}")),
        state: machine.state.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_is_any_state_a_machine_stays_in() {
        let settled = Wanted::parse("settled").expect("settled");
        for state in ["started", "stopped", "failed", "destroyed"] {
            let state = MachineState::parse(state).expect("a state");
            assert!(settled.reached_by(state), "{state:?}");
        }
        for state in ["created", "starting", "stopping"] {
            let state = MachineState::parse(state).expect("a state");
            assert!(!settled.reached_by(state), "{state:?}");
        }
    }

    #[test]
    fn a_state_is_reached_by_itself_alone() {
        let started = Wanted::parse("Started").expect("a state, in any case");
        assert!(started.reached_by(MachineState::Started));
        assert!(!started.reached_by(MachineState::Stopped));
        assert_eq!(started.shown(), "\"started\"");
    }

    #[test]
    fn an_unknown_state_is_refused_with_the_ones_there_are() {
        let err = Wanted::parse("running").expect_err("not a state");
        assert!(
            err.contains("use settled, created, starting, started"),
            "{err}"
        );
        let err = Wanted::parse("suspended").expect_err("not lakefly's");
        assert!(err.contains("wait for `stopped`"), "{err}");
    }
}
