//! `$PORT` for machines: handed out from a range of its own (Nomad's dynamic ports,
//! 20000-32000 by default) rather than by the kernel's "bind port 0".
//!
//! Port 0 picks from the kernel's ephemeral range, which every outgoing connection on
//! the host draws its local port from too: between the daemon noting a free port and the
//! machine binding it, a connection could take it, and the machine would fail to start
//! with "address in use". A range outside the ephemeral one has no such race, and a
//! cursor that moves on after each port keeps two machines starting at once, and a
//! machine restarting, from being handed the same port. The cursor starts at a random
//! place, so that two daemons on one host (a system one and a developer's local one) do
//! not walk the range in step. A port stays held by its machine while its process runs,
//! so a range the cursor wraps around (a narrow one, or a host that started many machines)
//! never hands out a port a machine has not bound yet, or is between two binds of.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Where the kernel says which local ports outgoing connections use.
const EPHEMERAL_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// An inclusive range of TCP ports, written `FIRST-LAST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Nomad's default dynamic port range, below Linux's default ephemeral ports.
    pub const DEFAULT: PortRange = PortRange {
        first: 20000,
        last: 32000,
    };

    /// How many ports the range holds.
    fn len(self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    /// Whether the two ranges share a port.
    fn overlaps(self, other: PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}` is not a port range: write FIRST-LAST, as in 20000-32000");
        let (first, last) = s.trim().split_once('-').ok_or_else(usage)?;
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| usage());
        let (first, last) = (port(first)?, port(last)?);
        if first == 0 || first > last {
            return Err(format!(
                "`{s}` is not a port range: FIRST must be at least 1 and at most LAST"
            ));
        }
        Ok(PortRange { first, last })
    }
}

/// No port of the range could be bound.
#[derive(Debug, thiserror::Error)]
#[error("no free port in the machine port range {range} (each is a running machine's, or in use); widen it with `lakeflyd --machine-ports`")]
pub struct NoFreePort {
    range: PortRange,
}

/// Hands out machine ports; clones share the cursor and the held ports.
#[derive(Debug, Clone)]
pub struct PortPool {
    range: PortRange,
    // Offset into the range of the next port to try.
    cursor: Arc<AtomicU32>,
    held: Held,
}

/// The ports machines hold now.
type Held = Arc<Mutex<HashSet<u16>>>;

/// A port held for one machine's process; it goes back to the pool when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    held: Held,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.held).remove(&self.port);
    }
}

/// The held ports: a set of numbers, whole after any panic.
fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashSet<u16>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PortPool {
    /// A pool over `range`, starting at a random port of it.
    pub fn new(range: PortRange) -> Self {
        // std's hasher keys are random per process: enough to spread daemons apart.
        let random = RandomState::new().build_hasher().finish();
        Self::starting_at(range, (random % u64::from(range.len())) as u32)
    }

    /// A pool over `range` whose first port is `offset` into it.
    fn starting_at(range: PortRange, offset: u32) -> Self {
        PortPool {
            range,
            cursor: Arc::new(AtomicU32::new(offset)),
            held: Held::default(),
        }
    }

    /// The next port of the range that no machine holds and nothing listens on, on any
    /// address, held until the lease is dropped.
    pub fn take(&self) -> Result<PortLease, NoFreePort> {
        let len = self.range.len();
        let mut held = lock(&self.held);
        for _ in 0..len {
            let offset = self.cursor.fetch_add(1, Ordering::Relaxed) % len;
            // `offset < len <= 65535`, and `first + offset <= last`, so this cannot fail.
            let Ok(port) = u16::try_from(u32::from(self.range.first) + offset) else {
                continue;
            };
            if held.contains(&port) {
                continue;
            }
            // Binding the wildcard address fails when anything listens on the port on
            // any address (or holds it without SO_REUSEADDR), which is what an app
            // binding 0.0.0.0 or 127.0.0.1 would run into; UDP too, for apps that serve
            // `protocol = "udp"` on `$PORT`.
            let wildcard = (Ipv4Addr::UNSPECIFIED, port);
            if TcpListener::bind(wildcard).is_ok() && UdpSocket::bind(wildcard).is_ok() {
                held.insert(port);
                return Ok(PortLease {
                    port,
                    held: self.held.clone(),
                });
            }
        }
        Err(NoFreePort { range: self.range })
    }

    /// Holds `port` for a machine that listens on it already (one taken back under live
    /// restore), so no other machine is given it.
    pub fn hold(&self, port: u16) -> PortLease {
        lock(&self.held).insert(port);
        PortLease {
            port,
            held: self.held.clone(),
        }
    }

    /// A warning when the host's ephemeral ports overlap the range, which brings back
    /// the race the range exists to avoid.
    pub fn ephemeral_overlap(&self) -> Option<String> {
        let text = std::fs::read_to_string(EPHEMERAL_RANGE_FILE).ok()?;
        let ephemeral = parse_ephemeral(&text)?;
        self.range.overlaps(ephemeral).then(|| {
            format!(
                "machine ports {} overlap the kernel's ephemeral ports {ephemeral} ({EPHEMERAL_RANGE_FILE}): \
                 an outgoing connection can take a port a machine is about to bind; \
                 pick a range outside it with --machine-ports",
                self.range
            )
        })
    }
}

/// `ip_local_port_range`'s two tab-separated numbers.
fn parse_ephemeral(text: &str) -> Option<PortRange> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    let (first, last) = (numbers.next()?.ok()?, numbers.next()?.ok()?);
    (first <= last).then_some(PortRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_print_as_first_dash_last() {
        let range: PortRange = "20000-32000".parse().unwrap();
        assert_eq!(range, PortRange::DEFAULT);
        assert_eq!(range.to_string(), "20000-32000");
        assert_eq!(" 8000 - 8000 ".parse::<PortRange>().unwrap().len(), 1);
    }

    #[test]
    fn bad_ranges_say_how_to_write_one() {
        for bad in ["20000", "a-b", "1-70000", "-5", "0-10", "300-200"] {
            let error = bad.parse::<PortRange>().unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
        assert!("20000"
            .parse::<PortRange>()
            .unwrap_err()
            .contains("FIRST-LAST"));
    }

    #[test]
    fn the_pool_moves_on_after_each_port_and_skips_ports_in_use() {
        // Ask the kernel for a port, keep it bound, and build a range around it.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = held.local_addr().unwrap().port();
        // The cursor starts on the busy port; a few spare ones make the test immune to
        // other processes using one of them.
        let range = PortRange {
            first: busy,
            last: busy.saturating_add(16),
        };
        let pool = PortPool::starting_at(range, 0);
        let taken: Vec<u16> = (0..2).map(|_| pool.take().unwrap().port()).collect();
        assert!(
            !taken.contains(&busy),
            "{taken:?} includes the bound {busy}"
        );
        assert_ne!(taken[0], taken[1], "the same port twice in a row");
    }

    #[test]
    fn a_held_port_is_not_handed_out_again_until_its_lease_ends() {
        // Ports nothing here binds: only the leases keep them apart. Another process may
        // use one of them; the pool skips it, as it should.
        let start = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let first = start.local_addr().unwrap().port().min(u16::MAX - 8);
        drop(start);
        let range = PortRange {
            first,
            last: first + 7,
        };
        let pool = PortPool::starting_at(range, 0);
        let mut leases = Vec::new();
        // The cursor wraps around the range; every port is then held (or in use).
        let full = loop {
            match pool.take() {
                Ok(lease) => leases.push(lease),
                Err(e) => break e.to_string(),
            }
            assert!(leases.len() <= 8, "a port was handed out twice");
        };
        assert!(full.contains("running machine's"), "{full}");
        let ports: std::collections::BTreeSet<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports.len(), leases.len(), "{ports:?}");
        let freed = leases.pop().expect("a free port in eight").port();
        assert_eq!(pool.take().unwrap().port(), freed);
        // A taken-back machine's port is held as a taken one is.
        leases.clear();
        let adopted = pool.hold(first);
        for _ in 0..8 {
            let next = pool.take().unwrap();
            assert_ne!(next.port(), adopted.port());
        }
    }

    #[test]
    fn pools_start_anywhere_in_the_range() {
        let range = PortRange::DEFAULT;
        let starts: std::collections::BTreeSet<u32> = (0..8)
            .map(|_| PortPool::new(range).cursor.load(Ordering::Relaxed))
            .collect();
        assert!(starts.iter().all(|&s| s < range.len()), "{starts:?}");
        assert!(starts.len() > 1, "eight pools all started at {starts:?}");
    }

    #[test]
    fn a_range_with_every_port_in_use_is_an_error_naming_the_flag() {
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = held.local_addr().unwrap().port();
        let pool = PortPool::new(PortRange {
            first: busy,
            last: busy,
        });
        let error = pool.take().unwrap_err().to_string();
        assert!(error.contains(&format!("{busy}-{busy}")), "{error}");
        assert!(error.contains("--machine-ports"), "{error}");
    }

    #[test]
    fn overlap_is_read_from_the_kernels_two_numbers() {
        let ephemeral = parse_ephemeral("32768\t60999\n").unwrap();
        assert_eq!(ephemeral.to_string(), "32768-60999");
        assert!(!PortRange::DEFAULT.overlaps(ephemeral));
        assert!(PortRange {
            first: 30000,
            last: 40000
        }
        .overlaps(ephemeral));
        assert_eq!(parse_ephemeral("garbage"), None);
    }
}
