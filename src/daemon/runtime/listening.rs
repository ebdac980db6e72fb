//! The TCP sockets a machine's processes listen on, read from `/proc`: to tell an app
//! that ignores `$PORT`, or that listens where lakefly does not connect, what it did.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::process::group_members;

/// The addresses that processes of the group led by `pgid` listen on for TCP.
pub fn sockets(pgid: u32) -> Vec<SocketAddr> {
    let mut inodes = std::collections::BTreeSet::new();
    for pid in group_members(pgid) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|t| t.strip_suffix(']'))
                {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut found = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            found.extend(listening_in(&text, &inodes));
        }
    }
    found.into_iter().collect()
}

/// The TCP ports of `sockets`, each once.
pub fn ports(sockets: &[SocketAddr]) -> Vec<u16> {
    let ports: std::collections::BTreeSet<u16> = sockets.iter().map(SocketAddr::port).collect();
    ports.into_iter().collect()
}

/// Whether a connection to `127.0.0.1`, where lakefly's checks and edge connect, reaches
/// a socket listening at `addr`: the IPv4 loopback or wildcard, or the IPv6 wildcard
/// (dual-stack unless the app set `IPV6_V6ONLY`).
pub fn reached_from_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_unspecified(),
        IpAddr::V6(ip) => {
            ip.is_unspecified() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The listening sockets of a `/proc/net/tcp` or `tcp6` table whose inode is in `inodes`.
fn listening_in<'a>(
    table: &'a str,
    inodes: &'a std::collections::BTreeSet<String>,
) -> impl Iterator<Item = SocketAddr> + 'a {
    table.lines().skip(1).filter_map(move |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local_address is field 1 (ADDR:PORT in hex), st field 3 (0A = LISTEN), inode field 9.
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        if *state != "0A" || !inodes.contains(*inode) {
            return None;
        }
        let (addr, port) = local.split_once(':')?;
        Some(SocketAddr::new(
            address(addr)?,
            u16::from_str_radix(port, 16).ok()?,
        ))
    })
}

/// An address as `/proc/net/tcp*` writes it: hex, each 32-bit word in the host's order.
fn address(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(word.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_read_as_the_kernel_writes_them() {
        // As a little-endian host writes them (the machines this runs on).
        if cfg!(target_endian = "little") {
            assert_eq!(address("0100007F"), Some("127.0.0.1".parse().unwrap()));
            assert_eq!(address("00000000"), Some("0.0.0.0".parse().unwrap()));
            assert_eq!(
                address("00000000000000000000000001000000"),
                Some("::1".parse().unwrap())
            );
            assert_eq!(
                address("0000000000000000FFFF00000100007F"),
                Some("::ffff:127.0.0.1".parse().unwrap())
            );
        }
        assert_eq!(address("zz"), None);
    }

    #[test]
    fn only_listening_sockets_of_the_machine_are_read() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F92 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 20 4 30 10 -1
";
        let inodes = ["111".to_string()].into_iter().collect();
        let found: Vec<SocketAddr> = listening_in(table, &inodes).collect();
        if cfg!(target_endian = "little") {
            assert_eq!(found, vec!["127.0.0.1:8080".parse().unwrap()]);
        }
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn loopback_reaches_wildcards_and_loopback_but_not_ipv6_loopback() {
        for reached in ["127.0.0.1:1", "0.0.0.0:1", "[::]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(
                reached_from_loopback(&reached.parse().unwrap()),
                "{reached}"
            );
        }
        for not in ["[::1]:1", "10.1.2.3:1", "[fe80::1]:1"] {
            assert!(!reached_from_loopback(&not.parse().unwrap()), "{not}");
        }
    }
}
