//! How many files lakeflyd may have open (`RLIMIT_NOFILE`). Every connection the edge
//! relays takes two descriptors, one to the client and one to the machine, so the soft
//! limit a service usually starts with (1024 under systemd) would stop it near 500
//! connections with "too many open files". lakeflyd raises its own soft limit to the
//! hard one at start, as Go programs do, and starts machines with the limits it was
//! given itself: a program that needs more raises its own, and one that still uses
//! `select(2)` must not see descriptors past 1024 (systemd's reasoning for the default).

use std::sync::OnceLock;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Below this many open files, lakeflyd warns at start.
const FEW: u64 = 4096;
/// macOS refuses a soft limit above `OPEN_MAX` whatever the hard limit says.
const MACOS_OPEN_MAX: u64 = 10240;

/// The limits (soft, hard) lakeflyd was started with, once [`raise`] changed them.
static STARTED_WITH: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft limit on open files to the hard limit. A limit that cannot be raised
/// is left as it is, and said so in the log, as is one that is still low.
pub fn raise() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the limit on open files");
            return;
        }
    };
    let mut now = soft;
    if soft < hard {
        let wanted = [hard, hard.min(MACOS_OPEN_MAX)];
        match wanted
            .into_iter()
            .find(|&to| setrlimit(Resource::RLIMIT_NOFILE, to, hard).is_ok())
        {
            Some(to) => {
                now = to;
                let _ = STARTED_WITH.set((soft, hard));
                tracing::debug!(from = soft, to, "raised the soft limit on open files");
            }
            None => tracing::warn!(soft, hard, "could not raise the limit on open files"),
        }
    }
    if now < FEW {
        tracing::warn!(
            limit = now,
            "lakeflyd may open only {now} files, which caps the edge near {} connections; \
             raise the hard limit (systemd: LimitNOFILE=, a shell: ulimit -Hn)",
            now / 2
        );
    }
}

/// The limits (soft, hard) lakeflyd was started with, when it raised them since: what
/// the programs it starts are given back.
pub fn started_with() -> Option<(u64, u64)> {
    STARTED_WITH.get().copied()
}
