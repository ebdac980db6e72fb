//! The owner of a socket asked of the kernel over netlink (`NETLINK_SOCK_DIAG`, as `ss`
//! does): one request naming the socket by its addresses, one answer, however many
//! sockets the host has. The messages are `linux/inet_diag.h`'s, laid out by hand: a
//! fixed request and two fields read from the answer.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

/// `nlmsghdr`: length, type, flags, sequence number, port id.
const HEADER_LEN: usize = 16;
/// `inet_diag_req_v2`: family, protocol, extensions, padding, states, `inet_diag_sockid`.
const REQUEST_LEN: usize = HEADER_LEN + 8 + SOCKID_LEN;
/// `inet_diag_sockid`: source and destination ports (big-endian), source and destination
/// addresses (16 bytes each), interface, cookie (two words).
const SOCKID_LEN: usize = 48;
/// `SOCK_DIAG_BY_FAMILY`: the request's type, and the answer's.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR`: the answer when there is no such socket (`ENOENT`).
const NLMSG_ERROR: u16 = 2;
/// `NLM_F_REQUEST`, without `NLM_F_DUMP`: the one socket named.
const NLM_F_REQUEST: u16 = 1;
/// Where `inet_diag_msg` holds the state (after the family) and the owner's uid (after
/// the state, timer, retransmits, `inet_diag_sockid`, expiry and the two queues).
const STATE_AT: usize = 1;
const UID_AT: usize = 4 + SOCKID_LEN + 12;
/// `TCP_TIME_WAIT`: a closed socket waiting out its last packets, answered as root's.
const TCP_TIME_WAIT: u8 = 6;
/// How long the kernel may take to answer (it answers at once).
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The uid that owns the TCP socket at `peer` connected to `local`; `Ok(None)` when the
/// kernel has no such socket. An error means netlink could not be asked (not allowed
/// here, or an answer not understood): look elsewhere.
pub fn owner(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?;
    let wait = TimeVal::new(ANSWER_WAIT.as_secs() as _, 0);
    socket::setsockopt(&fd, sockopt::ReceiveTimeout, &wait)?;
    let kernel = NetlinkAddr::new(0, 0);
    socket::sendto(
        fd.as_raw_fd(),
        &request(local, peer),
        &kernel,
        MsgFlags::empty(),
    )?;
    let mut answer = [0u8; 512];
    let len = socket::recv(fd.as_raw_fd(), &mut answer, MsgFlags::empty())?;
    read_answer(&answer[..len])
}

/// The request for the socket whose own address is `peer` and whose far end is `local`.
fn request(local: SocketAddr, peer: SocketAddr) -> [u8; REQUEST_LEN] {
    let mut req = [0u8; REQUEST_LEN];
    req[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let family = match peer.ip() {
        IpAddr::V4(_) => nix::libc::AF_INET,
        IpAddr::V6(_) => nix::libc::AF_INET6,
    };
    let body = &mut req[HEADER_LEN..];
    body[0] = family as u8;
    body[1] = nix::libc::IPPROTO_TCP as u8;
    // Every state: which one it is in is read from the answer.
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let id = &mut body[8..];
    id[0..2].copy_from_slice(&peer.port().to_be_bytes());
    id[2..4].copy_from_slice(&local.port().to_be_bytes());
    put_ip(&mut id[4..20], peer.ip());
    put_ip(&mut id[20..36], local.ip());
    // No interface; `INET_DIAG_NOCOOKIE`: any socket with these addresses.
    id[40..48].fill(0xff);
    req
}

/// `ip` in network order at the start of an address field (IPv4 takes its first word).
fn put_ip(field: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => field[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => field.copy_from_slice(&v6.octets()),
    }
}

/// The owner in the kernel's answer; `None` for no such socket, or one in TIME_WAIT.
fn read_answer(answer: &[u8]) -> io::Result<Option<u32>> {
    let unexpected = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sock_diag answered {what}"),
        )
    };
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(answer.get(at..at + 4)?.try_into().ok()?))
    };
    let kind = answer
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(|| unexpected("a short message"))?;
    match kind {
        NLMSG_ERROR => {
            // The negated errno, then the request it answers.
            let errno = word(HEADER_LEN).ok_or_else(|| unexpected("a short error"))? as i32;
            if -errno == nix::libc::ENOENT {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(-errno))
            }
        }
        SOCK_DIAG_BY_FAMILY => {
            let state = *answer
                .get(HEADER_LEN + STATE_AT)
                .ok_or_else(|| unexpected("a short message"))?;
            let uid = word(HEADER_LEN + UID_AT).ok_or_else(|| unexpected("a short message"))?;
            Ok((state != TCP_TIME_WAIT).then_some(uid))
        }
        other => Err(unexpected(&format!("a message of type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_of_this_process_is_owned_by_its_user() {
        super::super::tests::each_loopback_connection(|local, peer| {
            let uid = owner(local, peer).expect("netlink answers here");
            assert_eq!(
                uid,
                Some(nix::unistd::geteuid().as_raw()),
                "{peer} -> {local}"
            );
        });
    }

    #[test]
    fn a_socket_the_kernel_has_not_is_none() {
        let local = "127.0.0.1:9".parse().unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        assert_eq!(owner(local, peer).expect("netlink answers here"), None);
    }

    #[test]
    fn a_socket_in_time_wait_is_no_ones() {
        let mut answer = vec![0u8; HEADER_LEN + UID_AT + 8];
        answer[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        answer[HEADER_LEN + UID_AT..HEADER_LEN + UID_AT + 4]
            .copy_from_slice(&1001u32.to_ne_bytes());
        answer[HEADER_LEN + STATE_AT] = 1; // ESTABLISHED
        assert_eq!(read_answer(&answer).unwrap(), Some(1001));
        answer[HEADER_LEN + STATE_AT] = TCP_TIME_WAIT;
        assert_eq!(read_answer(&answer).unwrap(), None);
        assert!(read_answer(&answer[..3]).is_err());
    }
}
