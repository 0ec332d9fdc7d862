//! HTTP Upgrade (WebSocket) tunnelling in HTTP mode, against a raw-TCP
//! fake WebSocket server on loopback: the handshake, the tunnel both ways
//! with half-closes, `timeout tunnel`, server death, the stop paths, a
//! non-101 answer, the server connection pool, HAProxy's WebSocket key
//! checks and its counters (checked against HAProxy 2.6.12).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use halyard_proxy::config::Config;
use halyard_proxy::stats::HttpStats;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Heads = Arc<Mutex<Vec<String>>>;

/// An HTTP frontend to backend `be` holding the fake WebSocket server `ws`:
/// (proxy, frontend address, the request heads the server got).
async fn proxy(defaults: &str, server_extra: &str) -> (Proxy, SocketAddr, Heads) {
    let (ws, heads) = ws_server().await;
    let text = format!(
        "[defaults]\ntimeout_connect = \"1s\"\ntimeout_client = \"5s\"\n{defaults}\n\
         [frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("ws", ws, server_extra)])
    );
    let cfg = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let p = Proxy::start(cfg).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe, heads)
}

/// Sends `request` (and `early` in the same write) on a new connection;
/// returns the connection, the response head and what came after it.
async fn send(fe: SocketAddr, request: &str, early: &[u8]) -> (TcpStream, String, Vec<u8>) {
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(&[request.as_bytes(), early].concat())
        .await
        .unwrap();
    let (head, rest) = read_head(&mut c).await;
    (c, head, rest)
}

/// Reads a response head (bounded): the head and the bytes after it.
async fn read_head(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            return (head, buf[end + 4..].to_vec());
        }
        let n = tokio::time::timeout(BOUND, c.read(&mut chunk))
            .await
            .expect("response bounded")
            .unwrap();
        assert!(n > 0, "closed before the head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `have` holds `want` bytes (bounded).
async fn read_n(c: &mut TcpStream, have: &mut Vec<u8>, want: usize) {
    let mut chunk = [0u8; 1024];
    while have.len() < want {
        let n = tokio::time::timeout(BOUND, c.read(&mut chunk))
            .await
            .expect("echo bounded")
            .unwrap();
        assert!(n > 0, "closed early: {have:?}");
        have.extend_from_slice(&chunk[..n]);
    }
}

/// Reads to the end (bounded): the peer closed (or reset) its side.
async fn read_to_close(c: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut out))
        .await
        .expect("closed within the bound");
    out
}

fn fe_http(p: &Proxy) -> HttpStats {
    p.stats().frontends[0].http.clone().unwrap()
}

fn be_http(p: &Proxy) -> HttpStats {
    p.stats().backends[0].http.clone().unwrap()
}

fn server_http(p: &Proxy) -> HttpStats {
    p.stats().backends[0].servers[0].http.clone().unwrap()
}

/// A tunnel ended: the frontend session and the server slot are released.
async fn tunnel_closed(p: &Proxy) {
    eventually("session and slot released", || {
        let st = p.stats();
        st.frontends[0].cur_sessions == 0 && st.backends[0].cur_sessions == 0
    })
    .await;
}

#[tokio::test]
async fn websocket_handshake_then_echo_both_ways_with_half_close() {
    let (p, fe, heads) = proxy("", "").await;
    // Bytes right behind the request and right behind the 101 (read by
    // hyper with the heads) are not lost.
    let (mut c, head, mut got) = send(fe, &ws_request("/ws"), b"early").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    for h in [
        "upgrade: websocket",
        "connection: upgrade",
        &format!("sec-websocket-accept: {}", WS_ACCEPT.to_ascii_lowercase()),
    ] {
        assert!(head.contains(h), "{h}: {head}");
    }
    read_n(&mut c, &mut got, "welcomeearly".len()).await;
    assert_eq!(got, b"welcomeearly");
    // The server got the switch with its headers, and X-Forwarded-For.
    let seen = heads.lock().unwrap()[0].to_ascii_lowercase();
    for h in [
        "connection: upgrade",
        "upgrade: websocket",
        "sec-websocket-key: ",
        "x-forwarded-for: 127.0.0.1",
    ] {
        assert!(seen.contains(h), "{h}: {seen}");
    }
    // The session and the server slot are held while the tunnel is open.
    let st = p.stats();
    assert_eq!(st.frontends[0].cur_sessions, 1);
    assert_eq!(st.backends[0].cur_sessions, 1);
    // Both ways, several times.
    for msg in [&b"ping"[..], b"pong", &[7u8; 100_000]] {
        c.write_all(msg).await.unwrap();
        let mut echo = Vec::new();
        read_n(&mut c, &mut echo, msg.len()).await;
        assert_eq!(echo, msg);
    }
    // Half-close: the client's FIN reaches the server, which answers, then
    // closes; the client reads the rest and the end.
    c.write_all(b"last").await.unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(read_to_close(&mut c).await, b"last");
    tunnel_closed(&p).await;
    // HAProxy 2.6.12: the 101 is a request with a 1xx response on the
    // frontend, the backend and the server, and nothing else; the tunnel
    // bytes count as a TCP session's (halyard leaves out the heads).
    for h in [fe_http(&p), be_http(&p), server_http(&p)] {
        assert_eq!((h.requests, h.responses), (1, [0, 1, 0, 0, 0, 0]));
        assert_eq!(
            (
                h.request_errors,
                h.response_errors,
                h.client_aborts,
                h.server_aborts
            ),
            (0, 0, 0, 0)
        );
    }
    let st = p.stats();
    let bytes_in = ("early".len() + 4 + 4 + 100_000 + 4) as u64;
    let bytes_out = bytes_in + "welcome".len() as u64;
    assert_eq!(
        (st.frontends[0].bytes_in, st.frontends[0].bytes_out),
        (bytes_in, bytes_out)
    );
    assert_eq!(
        (st.backends[0].bytes_in, st.backends[0].bytes_out),
        (bytes_in, bytes_out)
    );
    let s = &st.backends[0].servers[0];
    assert_eq!((s.bytes_in, s.bytes_out), (bytes_in, bytes_out));
}

#[tokio::test]
async fn a_non_101_answer_keeps_the_client_connection_and_no_upgraded_connection_is_pooled() {
    let (p, fe, heads) = proxy("", "").await;
    // The server ignores the upgrade: an ordinary response, and the client
    // connection goes on.
    let (mut c, head, mut body) = send(fe, &ws_request("/plain"), b"").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    read_n(&mut c, &mut body, 2).await;
    assert_eq!(body, b"ok");
    c.write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, mut body) = read_head(&mut c).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    read_n(&mut c, &mut body, 2).await;
    // An upgraded tunnel, closed.
    let (mut t, head, _) = send(fe, &ws_request("/ws"), b"").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    t.shutdown().await.unwrap();
    read_to_close(&mut t).await;
    // `c` stays open.
    eventually("tunnel closed", || {
        let st = p.stats();
        st.frontends[0].cur_sessions == 1 && st.backends[0].cur_sessions == 0
    })
    .await;
    // Ordinary requests afterwards go to pooled HTTP connections, never to
    // the upgraded one (it would echo them back): each gets its 200, and
    // the server sees every request as a request head.
    for i in 0..3 {
        c.write_all(format!("GET /after{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, mut body) = read_head(&mut c).await;
        assert!(head.starts_with("http/1.1 200"), "{i}: {head}");
        read_n(&mut c, &mut body, 2).await;
        assert_eq!(body, b"ok");
    }
    let heads: Vec<String> = heads
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.split(" HTTP/1.1").next().unwrap().to_string())
        .collect();
    // The ignored upgrade's server connection was not pooled either: the
    // next request opened another one. The tunnel, the first request of
    // its client connection, opened one of its own (`http-reuse safe`),
    // and the requests after the tunnel went back to the pooled one.
    assert_eq!(
        heads,
        [
            "0 GET /plain",
            "1 GET /again",
            "2 GET /ws",
            "1 GET /after0",
            "1 GET /after1",
            "1 GET /after2"
        ]
    );
    assert_eq!(be_http(&p).responses, [0, 1, 5, 0, 0, 0]);
}

#[tokio::test]
async fn idle_tunnels_end_at_timeout_tunnel_else_client_or_server() {
    // HAProxy 2.6.12: `timeout tunnel` replaces both; without it, `timeout
    // client` and `timeout server` apply. A tunnel or client timeout counts
    // as the client's abort, a server timeout as the server's.
    for (defaults, client_abort, server_abort) in [
        ("timeout_tunnel = \"300ms\"\ntimeout_server = \"30s\"", 1, 0),
        ("timeout_server = \"300ms\"", 0, 1),
    ] {
        let (p, fe, _) = proxy(defaults, "").await;
        let (mut c, head, mut got) = send(fe, &ws_request("/ws"), b"").await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        // Closed by the proxy long before `timeout client` (5 s) or BOUND.
        let t0 = tokio::time::Instant::now();
        got.extend(read_to_close(&mut c).await);
        assert_eq!(got, b"welcome");
        assert!(t0.elapsed() < Duration::from_secs(4), "{defaults}");
        tunnel_closed(&p).await;
        let be = be_http(&p);
        assert_eq!(
            (be.client_aborts, be.server_aborts, be.response_errors),
            (client_abort, server_abort, 0),
            "{defaults}"
        );
    }
}

#[tokio::test]
async fn a_dying_server_closes_the_client_side() {
    let (p, fe, _) = proxy("", "").await;
    let (mut c, head, _) = send(fe, &ws_request("/die"), b"").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    c.write_all(b"x").await.unwrap();
    read_to_close(&mut c).await;
    tunnel_closed(&p).await;
    // HAProxy 2.6.12: a reset from the server is `srv_abrt` and `eresp`.
    for h in [be_http(&p), server_http(&p)] {
        assert_eq!(
            (
                h.responses[1],
                h.client_aborts,
                h.server_aborts,
                h.response_errors
            ),
            (1, 0, 1, 1)
        );
    }
}

#[tokio::test]
async fn shutdown_sessions_and_a_hard_stop_close_tunnels() {
    let (p, fe, _) = proxy("", "on_marked_down = \"shutdown-sessions\"").await;
    let (mut c, head, _) = send(fe, &ws_request("/ws"), b"").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    p.set_health("be", "ws", halyard_proxy::health::Operational::Down)
        .unwrap();
    read_to_close(&mut c).await;
    tunnel_closed(&p).await;
    // The proxy's own cut: no abort counted (as for a cut response).
    let be = be_http(&p);
    assert_eq!(
        (be.responses[1], be.client_aborts, be.server_aborts),
        (1, 0, 0)
    );

    p.set_health("be", "ws", halyard_proxy::health::Operational::Up)
        .unwrap();
    let (mut c, head, _) = send(fe, &ws_request("/ws"), b"").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    // A soft stop lets the tunnel run, as a TCP session; a hard stop
    // closes it.
    let soft = tokio::spawn(p.soft_stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!soft.is_finished(), "the soft stop waits for the tunnel");
    assert_eq!(p.hard_stop(), 1, "the tunnel is still open");
    read_to_close(&mut c).await;
    tunnel_closed(&p).await;
}

#[tokio::test]
async fn websocket_handshakes_without_their_keys_are_refused_as_haproxy_does() {
    let (p, fe, heads) = proxy("", "").await;
    // No Sec-WebSocket-Key: 400 and close, a request error (HAProxy's
    // h1_search_websocket_key); the server never sees it.
    let bad = ws_request("/ws").replace(&format!("Sec-WebSocket-Key: {WS_KEY}\r\n"), "");
    let answer = raw_exchange(fe, bad.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(heads.lock().unwrap().is_empty());
    let h = fe_http(&p);
    assert_eq!((h.requests, h.request_errors, h.responses[4]), (1, 1, 1));
    // A 101 without Sec-WebSocket-Accept, or without `Connection: upgrade`
    // (http_wait_for_response): 502, the server's response error.
    for path in ["/noaccept", "/noconn"] {
        let (_c, head, _) = send(fe, &ws_request(path), b"").await;
        assert!(head.starts_with("http/1.1 502"), "{path}: {head}");
    }
    eventually("slots released", || p.stats().backends[0].cur_sessions == 0).await;
    let be = be_http(&p);
    assert_eq!(
        (be.requests, be.responses[5], be.response_errors),
        (2, 2, 2)
    );
    assert_eq!(server_http(&p).responses, [0; 6]);
}

/// Behind `accept_proxy`, a PROXY header, the upgrade request and early
/// tunnel bytes in one write (as another proxy sends them): the header is
/// taken off the socket alone, so hyper, then the tunnel, get the rest.
#[tokio::test]
async fn a_websocket_behind_a_proxy_header_in_the_same_write() {
    let (ws, heads) = ws_server().await;
    let text = format!(
        "[defaults]\ntimeout_connect = \"1s\"\ntimeout_client = \"5s\"\n\
         [frontends.fe]\nmode = \"http\"\naccept_proxy = true\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("ws", ws, "")])
    );
    let p = Proxy::start(Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let request = format!(
        "PROXY TCP4 10.1.2.3 10.9.9.9 4242 80\r\n{}",
        ws_request("/ws")
    );
    let (mut c, head, mut got) = send(fe, &request, b"early").await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    read_n(&mut c, &mut got, "welcomeearly".len()).await;
    assert_eq!(got, b"welcomeearly");
    let seen = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(seen.contains("x-forwarded-for: 10.1.2.3"), "{seen}");
    c.write_all(b"ping").await.unwrap();
    let mut echo = Vec::new();
    read_n(&mut c, &mut echo, 4).await;
    assert_eq!(echo, b"ping");
    c.shutdown().await.unwrap();
    read_to_close(&mut c).await;
    tunnel_closed(&p).await;
}
