//! The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's
//! `proxy-protocol.txt` specifies: a strict incremental parser that never
//! panics, and encoders.
//!
//! [`parse`] takes the bytes received so far and answers: need more bytes,
//! a header and its length, or an error (the connection must be closed).
//! A first byte that can start neither signature is rejected at once, so a
//! client that does not speak PROXY fails fast instead of waiting for a
//! timeout.
//!
//! As HAProxy's receiver: a v1 line is at most 107 bytes with its CRLF; a v2
//! `LOCAL` header is skipped whole (family and block ignored); addresses
//! are taken only from v2 TCP over IPv4/IPv6 (`0x11`, `0x21`) and v1
//! `TCP4`/`TCP6`, any other family (UDP, unix, unspecified) keeps the
//! connection's real addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::{Error, Result};

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 header, CRLF included.
pub const V1_MAX: usize = 107;
/// Longest v2 header this parser accepts (16 + 65535 would be allowed by the
/// spec; addresses plus reasonable TLVs fit in far less).
pub const V2_MAX: usize = 16 + 4096;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Text.
    V1,
    /// Binary.
    V2,
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Which version it was.
    pub version: Version,
    /// `(source, destination)` for a proxied TCP connection; `None` for
    /// v1 `UNKNOWN`, v2 `LOCAL` (whatever its family byte), or v2 families
    /// other than TCP over IPv4/IPv6 (UDP, unix, unspecified: as in HAProxy,
    /// the connection's real addresses are kept).
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Parses the start of `buf`. `Ok(None)`: need more bytes.
/// `Ok(Some((header, n)))`: the header used the first `n` bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return parse_v1(buf);
    }
    Err(Error::ProxyProtocol(NO_SIGNATURE))
}

/// The error of [`parse`] for bytes that start neither header version.
pub const NO_SIGNATURE: &str = "no PROXY signature";

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    // The CR may sit at index V1_MAX - 2 at the latest: the line, CRLF
    // included, is at most V1_MAX bytes.
    let window = &buf[..buf.len().min(V1_MAX - 1)];
    let Some(cr) = window.iter().position(|b| *b == b'\r') else {
        if window.contains(&b'\n') {
            return Err(Error::ProxyProtocol("v1: LF without CR"));
        }
        if buf.len() >= V1_MAX - 1 {
            return Err(Error::ProxyProtocol("v1: header longer than 107 bytes"));
        }
        return Ok(None);
    };
    if cr + 1 >= buf.len() {
        return Ok(None);
    }
    if buf[cr + 1] != b'\n' {
        return Err(Error::ProxyProtocol("v1: CR not followed by LF"));
    }
    let line =
        std::str::from_utf8(&window[..cr]).map_err(|_| Error::ProxyProtocol("v1: not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Header {
            version: Version::V1,
            addresses: None,
        },
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *fam == "TCP6";
            let ip = |s: &str| -> Result<IpAddr> {
                if v6 {
                    s.parse::<Ipv6Addr>()
                        .map(IpAddr::V6)
                        .map_err(|_| Error::ProxyProtocol("v1: bad IPv6 address"))
                } else {
                    s.parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| Error::ProxyProtocol("v1: bad IPv4 address"))
                }
            };
            let port = |s: &str| -> Result<u16> {
                if s.is_empty()
                    || s.len() > 5
                    || !s.bytes().all(|b| b.is_ascii_digit())
                    || (s.len() > 1 && s.starts_with('0'))
                {
                    return Err(Error::ProxyProtocol("v1: bad port"));
                }
                s.parse()
                    .map_err(|_| Error::ProxyProtocol("v1: port out of range"))
            };
            let s = SocketAddr::new(ip(src)?, port(sport)?);
            let d = SocketAddr::new(ip(dst)?, port(dport)?);
            Header {
                version: Version::V1,
                addresses: Some((s, d)),
            }
        }
        ["PROXY", "TCP4" | "TCP6", ..] => {
            return Err(Error::ProxyProtocol("v1: wrong number of fields"))
        }
        _ => return Err(Error::ProxyProtocol("v1: unknown protocol family")),
    };
    Ok(Some((header, cr + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(Error::ProxyProtocol("v2: version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(Error::ProxyProtocol("v2: unknown command")),
    };
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > V2_MAX {
        return Err(Error::ProxyProtocol("v2: header too long"));
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    if local {
        // LOCAL: "the receiver must accept this connection as valid and
        // must use the real connection endpoints and discard the protocol
        // block including the family" (proxy-protocol.txt 2.2).
        return Ok(Some((
            Header {
                version: Version::V2,
                addresses: None,
            },
            16 + len,
        )));
    }
    let body = &buf[16..16 + len];
    let transport = fam & 0x0f;
    if transport > 2 {
        return Err(Error::ProxyProtocol("v2: unknown transport protocol"));
    }
    let block = match fam >> 4 {
        0 => None, // AF_UNSPEC
        1 => {
            if body.len() < 12 {
                return Err(Error::ProxyProtocol("v2: IPv4 address block too short"));
            }
            let ip = |o: usize| Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]);
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::V4(SocketAddrV4::new(ip(0), port(8))),
                SocketAddr::V4(SocketAddrV4::new(ip(4), port(10))),
            ))
        }
        2 => {
            if body.len() < 36 {
                return Err(Error::ProxyProtocol("v2: IPv6 address block too short"));
            }
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                Ipv6Addr::from(a)
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            Some((
                SocketAddr::V6(SocketAddrV6::new(ip(0), port(32), 0, 0)),
                SocketAddr::V6(SocketAddrV6::new(ip(16), port(34), 0, 0)),
            ))
        }
        3 => {
            if body.len() < 216 {
                return Err(Error::ProxyProtocol("v2: unix address block too short"));
            }
            None
        }
        _ => return Err(Error::ProxyProtocol("v2: unknown address family")),
    };
    // As HAProxy (conn_recv_proxy): only TCP over IPv4/IPv6 (0x11, 0x21)
    // replaces the connection's addresses; UDP, an unspecified transport
    // and unix sockets keep the real ones.
    let addresses = if transport == 1 { block } else { None };
    Ok(Some((
        Header {
            version: Version::V2,
            addresses,
        },
        16 + len,
    )))
}

fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    let to6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        v6 => v6,
    };
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (to6(src), to6(dst))
    }
}

/// Encodes a header for `src -> dst` (mixed families become IPv6).
pub fn encode(version: Version, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = same_family(src, dst);
    match version {
        Version::V1 => {
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut out = Vec::with_capacity(52);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21);
            match (src, dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    out.push(0x11);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.ip().octets());
                    out.extend_from_slice(&d.ip().octets());
                }
                (s, d) => {
                    let ip6 = |a: SocketAddr| match a.ip() {
                        IpAddr::V6(v6) => v6.octets(),
                        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    };
                    out.push(0x21);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&ip6(s));
                    out.extend_from_slice(&ip6(d));
                }
            }
            out.extend_from_slice(&src.port().to_be_bytes());
            out.extend_from_slice(&dst.port().to_be_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_trips() {
        for (s, d) in [
            (a("10.0.0.1:1234"), a("127.0.0.1:80")),
            (a("[2001:db8::1]:5"), a("[::1]:443")),
        ] {
            for v in [Version::V1, Version::V2] {
                let mut bytes = encode(v, s, d);
                let len = bytes.len();
                bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
                let (h, n) = parse(&bytes).unwrap().unwrap();
                assert_eq!((h.version, h.addresses, n), (v, Some((s, d)), len));
                // Every strict prefix asks for more bytes.
                for cut in 0..len {
                    assert!(parse(&bytes[..cut]).unwrap().is_none(), "{v:?} cut {cut}");
                }
            }
        }
    }

    #[test]
    fn known_v1_forms() {
        let (h, n) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!((h.addresses, n), (None, 15));
        assert!(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
            .unwrap()
            .is_some());
        let (h, _) = parse(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            h.addresses,
            Some((a("192.168.0.1:56324"), a("192.168.0.11:443")))
        );
    }

    #[test]
    fn garbage_is_rejected_clearly() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x2f\x11\x00\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04abcd",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x51\x00\x00",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(parse(&long).is_err());
    }

    #[test]
    fn v2_local_has_no_addresses() {
        let mut b = V2_SIGNATURE.to_vec();
        b.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let (h, n) = parse(&b).unwrap().unwrap();
        assert_eq!((h.addresses, n), (None, 16));
    }

    #[test]
    fn v1_line_is_at_most_107_bytes_crlf_included() {
        let line = |len: usize| {
            let mut l = b"PROXY UNKNOWN ".to_vec();
            l.resize(len - 2, b'x');
            l.extend_from_slice(b"\r\n");
            l
        };
        let ok = line(V1_MAX);
        let (h, n) = parse(&ok).unwrap().unwrap();
        assert_eq!((h.addresses, n), (None, 107));
        for cut in 0..ok.len() {
            assert!(parse(&ok[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let long = line(V1_MAX + 1);
        assert!(parse(&long).is_err());
        // Known to be too long once 106 bytes hold no CR.
        assert!(parse(&long[..V1_MAX - 1]).is_err());
    }

    #[test]
    fn v2_local_discards_the_block_whatever_the_family() {
        for fam in [0x00, 0x11, 0x21, 0x51, 0x13, 0xff] {
            let mut b = V2_SIGNATURE.to_vec();
            b.extend_from_slice(&[0x20, fam, 0x00, 0x00]);
            let (h, n) = parse(&b).unwrap().unwrap();
            assert_eq!((h.addresses, n), (None, 16), "family {fam:#04x}");
        }
        // A block that would be too short for its family is skipped too.
        let mut b = V2_SIGNATURE.to_vec();
        b.extend_from_slice(&[0x20, 0x21, 0x00, 0x04, 1, 2, 3, 4]);
        b.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, n) = parse(&b).unwrap().unwrap();
        assert_eq!((h.addresses, n), (None, 20));
    }

    #[test]
    fn v2_addresses_only_from_tcp_over_ip() {
        let v2 = |fam: u8, block: &[u8]| {
            let mut b = V2_SIGNATURE.to_vec();
            b.extend_from_slice(&[0x21, fam]);
            b.extend_from_slice(&(block.len() as u16).to_be_bytes());
            b.extend_from_slice(block);
            b
        };
        let v4 = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        let mut v6 = [0u8; 36];
        v6[15] = 1;
        v6[31] = 2;
        v6[33] = 1;
        v6[35] = 2;
        let (h, _) = parse(&v2(0x11, &v4)).unwrap().unwrap();
        assert_eq!(h.addresses, Some((a("10.0.0.1:1"), a("10.0.0.2:2"))));
        let (h, _) = parse(&v2(0x21, &v6)).unwrap().unwrap();
        assert_eq!(h.addresses, Some((a("[::1]:1"), a("[::2]:2"))));
        // UDP (0x12, 0x22) and an unspecified transport (0x10, 0x20):
        // accepted, the connection keeps its real addresses.
        for (fam, block) in [(0x12, &v4[..]), (0x10, &v4[..]), (0x22, &v6), (0x20, &v6)] {
            let (h, n) = parse(&v2(fam, block)).unwrap().unwrap();
            assert_eq!((h.addresses, n), (None, 16 + block.len()), "{fam:#04x}");
        }
        // Still malformed: a UDP block too short for its family.
        assert!(parse(&v2(0x12, &v4[..8])).is_err());
        assert!(parse(&v2(0x13, &v4)).is_err());
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parser_never_panics_after_a_signature(v2 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = if v2 { V2_SIGNATURE.to_vec() } else { b"PROXY ".to_vec() };
            b.extend_from_slice(&tail);
            if let Ok(Some((_, n))) = parse(&b) {
                prop_assert!(n <= b.len());
            }
        }

        #[test]
        fn encoded_headers_parse_back(
            s4 in any::<[u8; 4]>(), d4 in any::<[u8; 4]>(), sp in any::<u16>(), dp in any::<u16>(), v2 in any::<bool>()
        ) {
            let s = SocketAddr::from((s4, sp));
            let d = SocketAddr::from((d4, dp));
            let v = if v2 { Version::V2 } else { Version::V1 };
            let bytes = encode(v, s, d);
            let (h, n) = parse(&bytes).unwrap().unwrap();
            prop_assert_eq!(h.addresses, Some((s, d)));
            prop_assert_eq!(n, bytes.len());
        }
    }
}
