//! The PROXY protocol (HAProxy's `send-proxy` / `send-proxy-v2`) on the SSH listener:
//! behind a balancer every connection comes from the balancer's address, so the
//! limits by address (sign-in admission, the auth throttle, the logs) would see one
//! address for everyone. Balancers named in `SKILLSD_PROXY_PROTOCOL` send a header
//! first that names the client; from them the header is required, from anyone else it
//! is never read (a client cannot claim another address).
//!
//! The header is read exactly (v1: up to its CRLF, at most 107 bytes; v2: its 16 bytes
//! and the length they give), never beyond, so the SSH banner that may follow in the
//! same packet stays in the socket for russh. Parsing is `ppp`'s.

use std::net::{IpAddr, SocketAddr};
use tokio::io::AsyncReadExt;

/// Longest v1 header, CRLF included (the protocol's own bound).
const V1_MAX: usize = 107;
/// v2's fixed part: the 12-byte signature, version and command, family, length.
const V2_FIXED: usize = 16;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Most address and TLV bytes a v2 header may carry here (addresses of a UNIX socket
/// are 216; HAProxy's TLVs are small).
const V2_MAX_PAYLOAD: usize = 512;

/// Why a balancer's connection is closed before SSH starts.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection ended before its PROXY header")]
    Closed,
    #[error("no PROXY header, which this balancer must send (SKILLSD_PROXY_PROTOCOL)")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    #[error("I/O error reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// The balancers whose connections start with a PROXY header
/// (`SKILLSD_PROXY_PROTOCOL`: addresses or networks, comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted(Vec<ipnet::IpNet>);

impl Trusted {
    /// `"10.0.0.5, 10.1.0.0/16, ::1"`; an empty string trusts nobody.
    pub fn parse(text: &str) -> Result<Trusted, String> {
        let mut nets = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(n) => n,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| format!("`{item}` is not an address or a network (a.b.c.d/n)"))?,
            };
            nets.push(net);
        }
        Ok(Trusted(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Does a connection from `ip` start with a PROXY header? (An IPv4 peer on an
    /// IPv6 socket is matched as IPv4.)
    pub fn sends_header(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// Reads the PROXY header at the start of `socket` and returns the client it names;
/// `None` when the header names none (a v2 `LOCAL` command — the balancer's own health
/// check — or v1 `UNKNOWN`): the connection is the balancer's own.
pub async fn read_header<S>(socket: &mut S) -> Result<Option<SocketAddr>, ProxyError>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut head = [0u8; 6];
    read_exact(socket, &mut head).await?;
    let mut header = head.to_vec();
    if &head == b"PROXY " {
        // v1: text up to CRLF.
        while !header.ends_with(b"\r\n") {
            if header.len() >= V1_MAX {
                return Err(ProxyError::Malformed(
                    "a v1 header longer than 107 bytes".into(),
                ));
            }
            let mut b = [0u8; 1];
            read_exact(socket, &mut b).await?;
            header.push(b[0]);
        }
        return match ppp::v1::Header::try_from(&header[..]) {
            Ok(h) => Ok(match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            }),
            Err(e) => Err(ProxyError::Malformed(e.to_string())),
        };
    }
    if head[..] != V2_SIGNATURE[..6] {
        return Err(ProxyError::Missing);
    }
    header.resize(V2_FIXED, 0);
    read_exact(socket, &mut header[6..]).await?;
    if header[..12] != V2_SIGNATURE[..] {
        return Err(ProxyError::Missing);
    }
    let len = u16::from_be_bytes([header[14], header[15]]) as usize;
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::Malformed(format!(
            "a v2 header announcing {len} bytes of addresses"
        )));
    }
    header.resize(V2_FIXED + len, 0);
    read_exact(socket, &mut header[V2_FIXED..]).await?;
    let h =
        ppp::v2::Header::try_from(&header[..]).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    if h.command == ppp::v2::Command::Local {
        return Ok(None);
    }
    Ok(match h.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    })
}

async fn read_exact<S>(socket: &mut S, buf: &mut [u8]) -> Result<(), ProxyError>
where
    S: tokio::io::AsyncRead + Unpin,
{
    match socket.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyError::Closed),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(input: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(input.to_vec());
        let got = read_header(&mut cursor).await;
        let pos = cursor.position() as usize;
        (got, input[pos..].to_vec())
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn v1_names_the_client_and_leaves_the_banner() {
        let rt = rt();
        let (got, rest) = rt.block_on(read(
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 22\r\nSSH-2.0-OpenSSH_9.2\r\n",
        ));
        assert_eq!(got.unwrap(), Some("192.0.2.7:51234".parse().unwrap()));
        assert_eq!(rest, b"SSH-2.0-OpenSSH_9.2\r\n");
        let (got, _) = rt.block_on(read(b"PROXY TCP6 2001:db8::5 2001:db8::1 4000 22\r\n"));
        assert_eq!(got.unwrap(), Some("[2001:db8::5]:4000".parse().unwrap()));
        let (got, rest) = rt.block_on(read(b"PROXY UNKNOWN\r\nSSH-2.0-x\r\n"));
        assert_eq!(got.unwrap(), None);
        assert_eq!(rest, b"SSH-2.0-x\r\n");
    }

    #[test]
    fn v2_names_the_client_and_local_is_the_balancer_itself() {
        let rt = rt();
        let client: SocketAddr = "198.51.100.9:40000".parse().unwrap();
        let server: SocketAddr = "10.0.0.2:2222".parse().unwrap();
        let mut input = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, server),
        )
        .build()
        .unwrap();
        input.extend_from_slice(b"SSH-2.0-x\r\n");
        let (got, rest) = rt.block_on(read(&input));
        assert_eq!(got.unwrap(), Some(client));
        assert_eq!(rest, b"SSH-2.0-x\r\n");
        let local = ppp::v2::Builder::new(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::AddressFamily::Unspecified | ppp::v2::Protocol::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(rt.block_on(read(&local)).0.unwrap(), None);
    }

    #[test]
    fn anything_else_is_refused() {
        let rt = rt();
        for (input, want) in [
            (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], "no PROXY header"),
            (b"PROXY TCP4 nonsense\r\n", "malformed"),
            (b"PROXY TCP4 192.0.2.7 10.0.0.1 51234", "ended before"),
            (&[b'P'; 3][..], "ended before"),
        ] {
            let err = rt.block_on(read(input)).0.unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
        // A v1 line that never ends is cut at the protocol's bound.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend(std::iter::repeat_n(b'1', 200));
        let err = rt.block_on(read(&long)).0.unwrap_err().to_string();
        assert!(err.contains("longer than 107"), "{err}");
        // A v2 header announcing more than it may carry.
        let mut big = V2_SIGNATURE.to_vec();
        big.extend([0x21, 0x11, 0xff, 0xff]);
        let err = rt.block_on(read(&big)).0.unwrap_err().to_string();
        assert!(err.contains("announcing 65535 bytes"), "{err}");
    }

    #[test]
    fn trusted_addresses_and_networks() {
        let t = Trusted::parse("10.0.0.5, 10.1.0.0/16 ,::1").unwrap();
        assert!(t.sends_header("10.0.0.5".parse().unwrap()));
        assert!(t.sends_header("10.1.200.3".parse().unwrap()));
        assert!(t.sends_header("::ffff:10.1.0.9".parse().unwrap()));
        assert!(t.sends_header("::1".parse().unwrap()));
        assert!(!t.sends_header("10.0.0.6".parse().unwrap()));
        assert!(Trusted::parse("").unwrap().is_empty());
        let err = Trusted::parse("10.0.0.5, balancer").unwrap_err();
        assert!(err.contains("`balancer`"), "{err}");
    }
}
