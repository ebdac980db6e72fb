//! The owner of a socket from the kernel's tables of TCP sockets, `/proc/net/tcp` and
//! `/proc/net/tcp6` (what `netstat -e` and identd read): readable everywhere, but read
//! whole, so it takes longer the more sockets the host has.

use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::OwnerError;

/// The uid that owns the socket at `peer` connected to `local`, both on this host.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> Result<u32, OwnerError> {
    // An IPv6 socket talking IPv4 is listed in tcp6 with v4-mapped addresses.
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let table =
            std::fs::File::open(file).map_err(|source| OwnerError::Table { file, source })?;
        let found = find_owner(io::BufReader::new(table), local, peer)
            .map_err(|source| OwnerError::Table { file, source })?;
        if let Some(uid) = found {
            return Ok(uid);
        }
    }
    Err(OwnerError::NotFound { peer, local })
}

/// The uid on the line of `table` (the format of `/proc/net/tcp{,6}`) whose local address
/// is `peer` and whose remote address is `local`. Read line by line: a busy host lists
/// tens of thousands of sockets, and the one sought is often near the top.
fn find_owner(table: impl BufRead, local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let (local, peer) = (canonical(local), canonical(peer));
    // The first line is the column heads.
    for line in table.lines().skip(1) {
        let line = line?;
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
        let mut fields = line.split_whitespace().skip(1);
        let (Some(own), Some(remote), Some(state)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // A closed socket waiting out TIME_WAIT is listed as root's: it owns nothing.
        if state == TIME_WAIT || parse_addr(own) != Some(peer) || parse_addr(remote) != Some(local)
        {
            continue;
        }
        return Ok(fields.nth(3).and_then(|uid| uid.parse().ok()));
    }
    Ok(None)
}

/// The state column of a socket in TIME_WAIT (the kernel's `TCP_TIME_WAIT`).
const TIME_WAIT: &str = "06";

/// `addr` with a v4-mapped IPv6 address as the IPv4 one, as the table may list either.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// An address as the table prints it: the address's 32-bit words in hex, each as the
/// kernel holds it in memory (so in the host's byte order), a colon, the port in hex.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

// The tables below were read on x86_64, which holds words least significant byte first.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:10B8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 215 1 0000000000000000 100 0 0 10 0
   1: 0100007F:10B8 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000     0        0 9001 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D3A2 0100007F:10B8 01 00000000:00000000 00:00000000 00000000  1001        0 9002 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D3A4 0200007F:10B8 01 00000000:00000000 00:00000000 00000000  1002        0 9003 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:D3A6 0100007F:10B8 06 00000000:00000000 03:00001722 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:10B8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 300 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:E001 00000000000000000000000001000000:10B8 01 00000000:00000000 00:00000000 00000000  1003        0 301 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:E002 0000000000000000FFFF00000100007F:10B8 01 00000000:00000000 00:00000000 00000000  1004        0 302 1 0000000000000000 20 4 30 10 -1
";

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    fn owner_in(table: &str, local: &str, peer: &str) -> Option<u32> {
        find_owner(table.as_bytes(), at(local), at(peer)).expect("a table in memory")
    }

    #[test]
    fn the_owner_is_the_clients_socket_not_the_servers_end() {
        // Line 1 is the server's end of the same connection (owned by root here); line 2
        // is the client's, owned by uid 1001.
        assert_eq!(
            owner_in(TCP, "127.0.0.1:4280", "127.0.0.1:54178"),
            Some(1001)
        );
    }

    #[test]
    fn both_ends_must_match() {
        // Port 54180 connects to 127.0.0.2:4280, not to this server's address.
        assert_eq!(owner_in(TCP, "127.0.0.1:4280", "127.0.0.1:54180"), None);
        assert_eq!(
            owner_in(TCP, "127.0.0.2:4280", "127.0.0.1:54180"),
            Some(1002)
        );
        assert_eq!(owner_in(TCP, "127.0.0.1:4280", "127.0.0.1:1"), None);
    }

    #[test]
    fn ipv6_and_v4_mapped_sockets_are_found() {
        assert_eq!(owner_in(TCP6, "[::1]:4280", "[::1]:57345"), Some(1003));
        // An IPv6 client socket that reached an IPv4 server through a mapped address.
        assert_eq!(
            owner_in(TCP6, "127.0.0.1:4280", "127.0.0.1:57346"),
            Some(1004)
        );
    }

    #[test]
    fn a_socket_in_time_wait_is_no_ones() {
        // The kernel lists it with uid 0 once its owner closed it.
        assert_eq!(owner_in(TCP, "127.0.0.1:4280", "127.0.0.1:54182"), None);
    }

    #[test]
    fn lines_that_are_not_sockets_are_skipped() {
        let table = "heads\n\n   0: garbage\n   1: 0100007F:D3A2 zz:10B8 01\n";
        assert_eq!(owner_in(table, "127.0.0.1:4280", "127.0.0.1:54178"), None);
    }

    #[test]
    fn a_connection_of_this_process_is_owned_by_its_user() {
        super::super::tests::each_loopback_connection(|local, peer| {
            let uid = owner(local, peer).expect("the client's socket is listed");
            assert_eq!(uid, nix::unistd::geteuid().as_raw(), "{peer} -> {local}");
        });
    }
}
