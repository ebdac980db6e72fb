//! Where a new machine listens, looked at while a rollout waits for it to be healthy: an
//! app that ignores `$PORT`, or listens where lakefly does not connect, is told so long
//! before `wait_timeout`; and one that listens on its `internal_port` instead of `$PORT`
//! (a Dockerfile's `EXPOSE`d port, a hard-coded `:8080`), or on `$PORT` only where
//! 127.0.0.1 does not reach, cannot become healthy, so the release fails at once.

use std::net::SocketAddr;

use crate::daemon::runtime::{listening, Runtime};

/// A machine listening where its checks and the edge do not connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misplaced {
    /// `"; it listens on ..., not on $PORT (M): make the app ..."`.
    pub hint: String,
    /// It will not move: the app took its `internal_port`, or `$PORT` on an address
    /// 127.0.0.1 does not reach. Otherwise it may yet open `$PORT` (one that opens an admin
    /// port before its main one).
    pub settled: bool,
}

/// Where machine `id` of `app` listens, when that is not where lakefly connects.
pub async fn look(runtime: &Runtime, app: &str, id: &str) -> Option<Misplaced> {
    let (sockets, port, internal_port) = sockets_of(runtime, app, id).await?;
    judge(&sockets, port, internal_port)
}

/// Why machine `id` was never found healthy, as far as where it listens tells: its
/// [`Misplaced`] hint, or that it listens on no TCP port at all (an app that never got
/// to serving, or that serves no TCP); empty when it listens where lakefly connects.
pub async fn why_not(runtime: &Runtime, app: &str, id: &str) -> String {
    let Some((sockets, port, internal_port)) = sockets_of(runtime, app, id).await else {
        return String::new();
    };
    match judge(&sockets, port, internal_port) {
        Some(misplaced) => misplaced.hint,
        None if sockets.is_empty() => format!(
            "; it listens on no TCP port, and lakefly waited for one on $PORT ({port}); see \
             its log lines for how far it got"
        ),
        None => String::new(),
    }
}

/// The sockets machine `id` listens on, its `$PORT` and its `internal_port`; `None` when
/// it has no process or no port.
async fn sockets_of(
    runtime: &Runtime,
    app: &str,
    id: &str,
) -> Option<(Vec<SocketAddr>, u16, Option<u16>)> {
    let machine = runtime.get(app, id).await.ok()?;
    let (pid, port) = (machine.pid?, machine.port?);
    let sockets = tokio::task::spawn_blocking(move || listening::sockets(pid))
        .await
        .unwrap_or_default();
    Some((sockets, port, machine.spec.internal_port))
}

/// What listening on `sockets` means for a machine given `port` (`$PORT`), onto which
/// lakefly maps `internal_port`.
fn judge(sockets: &[SocketAddr], port: u16, internal_port: Option<u16>) -> Option<Misplaced> {
    let on_port: Vec<&SocketAddr> = sockets.iter().filter(|s| s.port() == port).collect();
    if !on_port.is_empty() {
        if on_port.iter().any(|s| listening::reached_from_loopback(s)) {
            return None;
        }
        let listed: Vec<String> = on_port.iter().map(|s| s.to_string()).collect();
        return Some(Misplaced {
            hint: format!(
                "; it listens on {} only, which lakefly's checks and edge do not reach (they \
                 connect to 127.0.0.1:{port}): make the app listen on 0.0.0.0, 127.0.0.1 or \
                 [::] (Node: `listen(port)` with no host, or \"0.0.0.0\", not \"localhost\")",
                listed.join(" and ")
            ),
            settled: true,
        });
    }
    let ports = listening::ports(sockets);
    if ports.is_empty() {
        return None;
    }
    let listed: Vec<String> = ports.iter().map(u16::to_string).collect();
    let (internal, settled) = match internal_port {
        Some(p) if ports.contains(&p) => (
            format!(
                " (lakefly maps internal_port {p} onto it: machines share the host, so each \
                 gets a port of its own; e.g. `--bind :${{PORT:-{p}}}` keeps {p} outside lakefly)"
            ),
            true,
        ),
        Some(p) => (format!(" (lakefly maps internal_port {p} onto it)"), false),
        None => (String::new(), false),
    };
    Some(Misplaced {
        hint: format!(
            "; it listens on port {}, not on $PORT ({port}): make the app listen on the port in $PORT{internal}",
            listed.join(", ")
        ),
        settled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addrs: &[&str]) -> Vec<SocketAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn listening_on_port_where_loopback_reaches_is_fine() {
        for sockets in [
            &["127.0.0.1:4000"][..],
            &["0.0.0.0:4000"],
            &["[::]:4000"],
            &["[::1]:4000", "127.0.0.1:4000"],
        ] {
            assert_eq!(judge(&at(sockets), 4000, Some(8080)), None, "{sockets:?}");
        }
        assert_eq!(judge(&[], 4000, Some(8080)), None, "nothing listens yet");
    }

    #[test]
    fn the_internal_port_taken_or_an_unreached_address_is_settled() {
        let own = judge(&at(&["0.0.0.0:8080"]), 4000, Some(8080)).unwrap();
        assert!(own.settled);
        assert!(
            own.hint
                .contains("it listens on port 8080, not on $PORT (4000)"),
            "{}",
            own.hint
        );
        assert!(own.hint.contains("`--bind :${PORT:-8080}`"), "{}", own.hint);
        let v6 = judge(&at(&["[::1]:4000"]), 4000, Some(8080)).unwrap();
        assert!(v6.settled && v6.hint.contains("[::1]:4000 only"), "{v6:?}");
    }

    #[test]
    fn another_port_may_come_before_port() {
        let admin = judge(&at(&["127.0.0.1:9091"]), 4000, Some(8080)).unwrap();
        assert!(!admin.settled);
        assert!(
            admin
                .hint
                .contains("it listens on port 9091, not on $PORT (4000)"),
            "{}",
            admin.hint
        );
    }
}
