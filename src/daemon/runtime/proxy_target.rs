//! Where `lakefly proxy` connects for a port of a machine: the app's `internal_port` is
//! the machine's `$PORT`; another port must be one its processes listen on, so a token
//! for the API does not open every port of the host.

use super::{listening, Runtime, RuntimeError};
use crate::api::proxy::ProxyTarget;
use crate::api::types::MachineState;

impl Runtime {
    /// Where a connection to `port` of machine `id` goes.
    pub async fn proxy_target(
        &self,
        app: &str,
        id: &str,
        port: u16,
    ) -> Result<ProxyTarget, RuntimeError> {
        let machine = self.get(app, id).await?;
        let pid = match (machine.state, machine.pid) {
            (MachineState::Starting | MachineState::Started, Some(pid)) => pid,
            (state, _) => {
                return Err(RuntimeError::NotRunning {
                    id: machine.id,
                    state: state.as_str(),
                })
            }
        };
        let listening =
            tokio::task::spawn_blocking(move || listening::ports(&listening::sockets(pid)))
                .await
                .unwrap_or_default();
        let internal = machine.spec.internal_port == Some(port);
        let host_port = match machine.port {
            // `$PORT`, where the app listens as it is asked to; else (an app that binds
            // its internal_port itself, or one still starting) whatever listens.
            Some(assigned) if internal && listening.contains(&assigned) => assigned,
            _ if listening.contains(&port) => port,
            Some(assigned) if internal => assigned,
            _ => {
                // In the app's terms: its $PORT is its internal_port.
                let shown = listening
                    .iter()
                    .map(|&p| match machine.spec.internal_port {
                        Some(internal) if Some(p) == machine.port => {
                            format!("{internal} (its internal_port, at $PORT {p})")
                        }
                        _ => p.to_string(),
                    })
                    .collect();
                return Err(RuntimeError::NotListening {
                    id: machine.id,
                    port,
                    listening: shown,
                });
            }
        };
        Ok(ProxyTarget {
            machine: machine.id,
            port,
            host_port,
        })
    }
}
