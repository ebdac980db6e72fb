//! The PROXY protocol header (HAProxy's, versions 1 and 2) that a `[[services.ports]]`
//! port with `handlers = ["proxy_proto"]` sends a machine before the client's bytes, so
//! an app behind a raw TCP port (a database proxy, an SMTP server) learns the client's
//! address. `proxy_proto_options = { version = "v2" }` picks the binary form; Fly's
//! default is version 1.

use std::net::SocketAddr;

use crate::config::model::Extra;

/// Which form of the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProto {
    /// The text line: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// Version 2's fixed opening.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

impl ProxyProto {
    /// The version a port's `proxy_proto_options` asks for; an unknown one is an error
    /// naming it.
    pub fn from_options(extra: &Extra) -> Result<ProxyProto, String> {
        let version = extra
            .get("proxy_proto_options")
            .and_then(|options| options.get("version"))
            .and_then(|version| version.as_str());
        match version.map(str::to_ascii_lowercase).as_deref() {
            None | Some("v1") => Ok(ProxyProto::V1),
            Some("v2") => Ok(ProxyProto::V2),
            Some(other) => Err(format!(
                "proxy_proto_options.version = {other:?} is not \"v1\" or \"v2\""
            )),
        }
    }

    /// The header for a connection from `client` that arrived at `local`.
    pub fn header(self, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
        // A client on IPv4 seen through an IPv6 socket is written as IPv4.
        let (client, local) = (canonical(client), canonical(local));
        match self {
            ProxyProto::V1 => {
                let family = match (client, local) {
                    (SocketAddr::V4(_), SocketAddr::V4(_)) => "TCP4",
                    (SocketAddr::V6(_), SocketAddr::V6(_)) => "TCP6",
                    // Mixed families cannot be written; the spec's answer is UNKNOWN.
                    _ => return b"PROXY UNKNOWN\r\n".to_vec(),
                };
                format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    client.ip(),
                    local.ip(),
                    client.port(),
                    local.port()
                )
                .into_bytes()
            }
            ProxyProto::V2 => {
                let mut out = V2_SIGNATURE.to_vec();
                // Version 2, PROXY command.
                out.push(0x21);
                match (client, local) {
                    (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                        out.push(0x11); // TCP over IPv4
                        out.extend_from_slice(&12u16.to_be_bytes());
                        out.extend_from_slice(&c.ip().octets());
                        out.extend_from_slice(&l.ip().octets());
                    }
                    (SocketAddr::V6(c), SocketAddr::V6(l)) => {
                        out.push(0x21); // TCP over IPv6
                        out.extend_from_slice(&36u16.to_be_bytes());
                        out.extend_from_slice(&c.ip().octets());
                        out.extend_from_slice(&l.ip().octets());
                    }
                    _ => {
                        // UNSPEC, no addresses: the receiver uses the connection's own.
                        out.push(0x00);
                        out.extend_from_slice(&0u16.to_be_bytes());
                        return out;
                    }
                }
                out.extend_from_slice(&client.port().to_be_bytes());
                out.extend_from_slice(&local.port().to_be_bytes());
                out
            }
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn version_1_is_the_text_line() {
        let header = ProxyProto::V1.header(addr("192.0.2.7:51000"), addr("10.0.0.1:5432"));
        assert_eq!(header, b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 5432\r\n");
        let six = ProxyProto::V1.header(addr("[2001:db8::1]:4000"), addr("[::1]:5432"));
        assert_eq!(six, b"PROXY TCP6 2001:db8::1 ::1 4000 5432\r\n");
        let mapped = ProxyProto::V1.header(addr("[::ffff:192.0.2.7]:1"), addr("10.0.0.1:2"));
        assert_eq!(mapped, b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n");
    }

    #[test]
    fn version_2_is_the_binary_header() {
        let header = ProxyProto::V2.header(addr("192.0.2.7:51000"), addr("10.0.0.1:5432"));
        let mut expected = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        expected.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        expected.extend_from_slice(&[192, 0, 2, 7, 10, 0, 0, 1]);
        expected.extend_from_slice(&[0xc7, 0x38, 0x15, 0x38]);
        assert_eq!(header, expected);
        let six = ProxyProto::V2.header(addr("[::1]:1"), addr("[::2]:2"));
        assert_eq!(six.len(), 16 + 36);
        assert_eq!(&six[12..16], &[0x21, 0x21, 0x00, 0x24]);
    }

    #[test]
    fn the_version_comes_from_the_ports_options() {
        let options = |json: serde_json::Value| -> Extra {
            [("proxy_proto_options".to_string(), json)]
                .into_iter()
                .collect()
        };
        assert_eq!(ProxyProto::from_options(&Extra::new()), Ok(ProxyProto::V1));
        let v2 = options(serde_json::json!({ "version": "v2" }));
        assert_eq!(ProxyProto::from_options(&v2), Ok(ProxyProto::V2));
        let odd = options(serde_json::json!({ "version": "v3" }));
        assert!(ProxyProto::from_options(&odd).unwrap_err().contains("v3"));
    }
}
