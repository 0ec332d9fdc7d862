//! The PROXY protocol in HTTP mode on loopback: `accept_proxy` on an HTTP
//! frontend (the header's source is the client for X-Forwarded-For,
//! `source` balancing and what `send_proxy` sends on; bad headers are
//! closed and counted as denied), and `send_proxy` on the servers of an
//! HTTP backend (each server connection carries the header of the client it
//! serves, and is reused only for that client), plus interop with HAProxy's
//! `send-proxy-v2` in `mode http`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use halyard_proxy::proxy_protocol::{self, Version};
use halyard_proxy::Proxy;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An HTTP/1.1 keep-alive server (GET only) that takes a PROXY header first
/// if one comes. Each response body is `CONN SRC XFF`: the connection's
/// number (from 1, in accept order), the source of the connection's PROXY
/// header (`-` without one) and the request's X-Forwarded-For (`-`).
async fn pp_http_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = conns.clone();
    let (a, _t) = spawn_server(move |mut s| {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let mut src = None;
            loop {
                if src.is_none() && buf.first().is_some_and(|b| *b != b'G') {
                    match proxy_protocol::parse(&buf) {
                        Ok(Some((h, len))) => {
                            src = Some(h.addresses.map_or("local".into(), |(s, _)| s.to_string()));
                            buf.drain(..len);
                            continue;
                        }
                        Ok(None) => {}
                        Err(_) => return,
                    }
                } else if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let xff = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("x-forwarded-for")
                                .then(|| v.trim().to_string())
                        })
                        .unwrap_or_else(|| "-".into());
                    let body = format!("{n} {} {xff}", src.as_deref().unwrap_or("-"));
                    let r = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(r.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
        }
    })
    .await;
    (a, conns)
}

/// A keep-alive client connection to the proxy from `ip` (a loopback
/// address), which starts with `preamble` (a PROXY header, or nothing).
struct Client {
    tx: hyper::client::conn::http1::SendRequest<String>,
    local: SocketAddr,
}

impl Client {
    async fn new(fe: SocketAddr, ip: [u8; 4], preamble: &[u8]) -> Client {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((ip, 0))).unwrap();
        let mut s = sock.connect(fe).await.unwrap();
        let local = s.local_addr().unwrap();
        s.write_all(preamble).await.unwrap();
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { tx, local }
    }

    /// `GET /`: the status and body.
    async fn get(&mut self) -> (u16, String) {
        http_get(&mut self.tx, "x", "/").await
    }
}

fn v2(src: &str, dst: &str) -> Vec<u8> {
    proxy_protocol::encode(Version::V2, src.parse().unwrap(), dst.parse().unwrap())
}

#[tokio::test]
async fn an_http_frontend_accepts_proxy_headers() {
    let (srv, _) = pp_http_server().await;
    let p = Proxy::start(http_config(
        "accept_proxy = true",
        &servers(&[("s", srv, "")]),
    ))
    .await
    .unwrap();
    let fe = p.local_addrs("fe")[0];
    // v1 and v2; the header's source is the client for X-Forwarded-For,
    // on every request of the connection (the server gets no header:
    // `CONN - XFF`).
    let xff = |(status, body): (u16, String)| {
        assert_eq!(status, 200);
        body.rsplit_once(" - ").unwrap().1.to_string()
    };
    let mut c = Client::new(
        fe,
        [127, 0, 0, 1],
        b"PROXY TCP4 10.1.2.3 10.9.9.9 4242 80\r\n",
    )
    .await;
    assert_eq!(xff(c.get().await), "10.1.2.3");
    assert_eq!(xff(c.get().await), "10.1.2.3");
    let mut c = Client::new(
        fe,
        [127, 0, 0, 1],
        &v2("[2001:db8::7]:1000", "[2001:db8::1]:80"),
    )
    .await;
    assert_eq!(xff(c.get().await), "2001:db8::7");
    // A v2 LOCAL header (a health check of the proxy in front): the
    // connection's own address.
    let mut local = proxy_protocol::V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    let mut c = Client::new(fe, [127, 0, 0, 4], &local).await;
    assert_eq!(xff(c.get().await), "127.0.0.4");
    // The header and two pipelined requests in one write: nothing read
    // with the header is lost.
    let mut s = TcpStream::connect(fe).await.unwrap();
    s.write_all(
        b"PROXY TCP4 10.7.7.7 10.9.9.9 1 80\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = String::new();
    tokio::time::timeout(BOUND, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.matches("10.7.7.7").count(), 2, "{out}");

    // No header, a bad v1 header, a bad v2 version, a header cut short:
    // closed without an answer (as HAProxy 2.6.12 closes a connection
    // without a header), counted as denied, not as sessions or requests
    // (HAProxy counts a session once its header is in).
    let before = p.stats().frontends[0].clone();
    for garbage in [
        &b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"[..],
        b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\nGET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x99\x11\x00\x0c",
        b"PROXY TCP4 10.1.2.3",
    ] {
        let mut s = TcpStream::connect(fe).await.unwrap();
        s.write_all(garbage).await.unwrap();
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut out))
            .await
            .expect("closed");
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    }
    eventually("4 denied", || {
        p.stats().frontends[0].denied == before.denied + 4
    })
    .await;
    let f = p.stats().frontends[0].clone();
    assert_eq!(f.total_sessions, before.total_sessions);
    let (h, h0) = (f.http.unwrap(), before.http.unwrap());
    assert_eq!(
        (h.requests, h.request_errors),
        (h0.requests, h0.request_errors)
    );
    // A header that never ends is dropped at timeout client.
    let mut s = TcpStream::connect(fe).await.unwrap();
    s.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, s.read_to_end(&mut out))
        .await
        .expect("closed by timeout client");
    assert!(out.is_empty());
    eventually("5 denied", || {
        p.stats().frontends[0].denied == before.denied + 5
    })
    .await;
    eventually("no session left", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
}

#[tokio::test]
async fn source_balancing_hashes_the_proxy_header_source() {
    let (a, _) = pp_http_server().await;
    let (b, _) = pp_http_server().await;
    let p = Proxy::start(http_config(
        "accept_proxy = true",
        &format!(
            "[backends.be]\nbalance = \"source\"\n{}",
            servers(&[("a", a, ""), ("b", b, "")])
        ),
    ))
    .await
    .unwrap();
    let fe = p.local_addrs("fe")[0];
    // One real client address, 16 announced ones: both servers get some.
    for i in 1..=16u8 {
        let h = format!("PROXY TCP4 10.0.0.{i} 10.9.9.9 1000 80\r\n");
        let mut c = Client::new(fe, [127, 0, 0, 1], h.as_bytes()).await;
        assert_eq!(c.get().await.0, 200);
    }
    let st = p.stats();
    let sessions: Vec<u64> = st.backends[0]
        .servers
        .iter()
        .map(|s| s.total_sessions)
        .collect();
    assert!(sessions.iter().all(|n| *n > 0), "{sessions:?}");
}

#[tokio::test]
async fn server_connections_carry_their_clients_proxy_header() {
    let (srv, conns) = pp_http_server().await;
    let p = Proxy::start(http_config(
        "",
        &servers(&[("s", srv, "send_proxy = \"v1\"")]),
    ))
    .await
    .unwrap();
    let fe = p.local_addrs("fe")[0];
    // Two clients on one server, their requests in turns: each is served
    // on a connection whose header names it, which its next requests reuse;
    // the other client's idle connection is never taken.
    let mut c2 = Client::new(fe, [127, 0, 0, 2], b"").await;
    let mut c3 = Client::new(fe, [127, 0, 0, 3], b"").await;
    for _ in 0..3 {
        assert_eq!(c2.get().await.1, format!("1 {} 127.0.0.2", c2.local));
        assert_eq!(c3.get().await.1, format!("2 {} 127.0.0.3", c3.local));
    }
    assert_eq!(conns.load(Ordering::Relaxed), 2);
    // Another connection of the same client IP has another source port, so
    // another header: a connection of its own.
    let mut c2b = Client::new(fe, [127, 0, 0, 2], b"").await;
    assert_eq!(c2b.get().await.1, format!("3 {} 127.0.0.2", c2b.local));
    assert_eq!(c2.get().await.1, format!("1 {} 127.0.0.2", c2.local));

    // Behind accept_proxy, the announced client goes on (v2 in, v1 out).
    let p = Proxy::start(http_config(
        "accept_proxy = true",
        &servers(&[("s", srv, "send_proxy = \"v1\"")]),
    ))
    .await
    .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe, [127, 0, 0, 1], &v2("10.1.2.3:4242", "10.9.9.9:80")).await;
    let n = conns.load(Ordering::Relaxed) + 1;
    assert_eq!(c.get().await.1, format!("{n} 10.1.2.3:4242 10.1.2.3"));
}

#[tokio::test]
async fn haproxy_send_proxy_v2_in_front_of_an_http_frontend() {
    if haproxy_missing("haproxy_send_proxy_v2_in_front_of_an_http_frontend") {
        return;
    }
    let (srv, _) = pp_http_server().await;
    let p = Proxy::start(http_config(
        "accept_proxy = true",
        &servers(&[("s", srv, "send_proxy = \"v1\"")]),
    ))
    .await
    .unwrap();
    let ours = p.local_addrs("fe")[0];
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("halyard-pp-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
listen to_us\n    bind 127.0.0.1:{port}\n    server h {ours} send-proxy-v2\n"
        ),
    )
    .unwrap();
    let _k = spawn_haproxy(&cfg);
    let a = SocketAddr::from(([127, 0, 0, 1], port));
    eventually("haproxy listening", || {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(200)).is_ok()
    })
    .await;
    // HAProxy connects to us from 127.0.0.1; its v2 header names the
    // client (127.0.0.2 and its port), which X-Forwarded-For and our v1
    // header to the server carry.
    let mut c = Client::new(a, [127, 0, 0, 2], b"").await;
    let (status, body) = c.get().await;
    assert_eq!(status, 200);
    let (_, rest) = body.split_once(' ').unwrap();
    assert_eq!(rest, format!("{} 127.0.0.2", c.local));
    let _ = std::fs::remove_dir_all(&dir);
}
