//! `http-reuse` (never | safe | aggressive | always) on loopback: which
//! server connection each request of two or three client connections
//! uses, and the `connect` / `reuse` counters.
//!
//! What HAProxy 2.6.12 does, observed with one thread (`nbthread 1`), a
//! Python HTTP/1.1 keep-alive server numbering its connections and raw
//! client sockets sending one request at a time (the server connection
//! each request used, by number):
//!
//! | requests (client, n-th) | never | safe | aggressive | always |
//! | --- | --- | --- | --- | --- |
//! | A1 B1 A2 B2 C1 | 1 2 1 2 3 | 1 2 1 2 3 | 1 2 1 2 1 | 1 1 1 1 1 |
//! | A1 A2 B1 C1 B2 C2 | 1 1 2 3 2 3 | 1 1 2 3 2 3 | 1 1 1 1 1 1 | 1 1 1 1 1 1 |
//! | A1 B1 B2 A2 | | 1 2 1 2 | | |
//!
//! (With `pool-low-conn 10`: without it HAProxy 2.6 also closes a
//! connection that would be a second one in the idle list while its
//! estimated need is 0, `srv_add_to_idle_list`, which halyard does not
//! copy.) A first request never takes another client's connection under
//! `safe`; under `aggressive` only one that already carried two requests
//! (A's after A2); under `always` any. HAProxy takes the oldest connection
//! of a list (the last row: B2 on A's connection), halyard the most
//! recently used, so a later request may land on another of the
//! connections the rule allows: the expectations below are halyard's, the
//! rule is the same.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A keep-alive HTTP/1.1 server answering each request with the number of
/// its connection (1, 2, ... in accept order); counts the connections the
/// proxy closed.
async fn numbering_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let (a, c) = (accepted.clone(), closed.clone());
    let (addr, _) = spawn_server(move |mut s| {
        let n = a.fetch_add(1, Ordering::Relaxed) + 1;
        let closed = c.clone();
        async move {
            let mut buf = Vec::new();
            while next_head(&mut s, &mut buf).await.is_some() {
                let body = n.to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
    (addr, closed)
}

/// A proxy with `http_reuse = mode` in front of a [`numbering_server`].
async fn proxy(mode: &str) -> (Proxy, SocketAddr, Arc<AtomicUsize>) {
    let (server, closed) = numbering_server().await;
    let backends = format!(
        "[backends.be]\nhttp_reuse = \"{mode}\"\n{}",
        servers(&[("s", server, "")])
    );
    let p = Proxy::start(http_config("", &backends)).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe, closed)
}

/// One request on a kept-alive client connection: the number of the
/// server connection that answered it.
async fn get(c: &mut TcpStream) -> u32 {
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let head = tokio::time::timeout(BOUND, next_head(c, &mut buf))
        .await
        .unwrap()
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .expect("content-length")
        .parse()
        .unwrap();
    let mut chunk = [0u8; 64];
    while buf.len() < len {
        let n = tokio::time::timeout(BOUND, c.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).unwrap().parse().unwrap()
}

/// Runs `steps` (client index per request, clients connecting at their
/// first request) through a proxy with `http_reuse = mode`: the server
/// connection of each request, and the proxy.
async fn run(mode: &str, steps: &[usize]) -> (Vec<u32>, Proxy, Arc<AtomicUsize>) {
    let (p, fe, closed) = proxy(mode).await;
    let mut clients: Vec<Option<TcpStream>> = (0..3).map(|_| None).collect();
    let mut used = Vec::new();
    for &c in steps {
        if clients[c].is_none() {
            clients[c] = Some(TcpStream::connect(fe).await.unwrap());
        }
        used.push(get(clients[c].as_mut().unwrap()).await);
    }
    (used, p, closed)
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// A1 B1 A2 B2 C1.
const INTERLEAVED: [usize; 5] = [A, B, A, B, C];
/// A1 A2 B1 C1 B2 C2.
const A_TWICE_FIRST: [usize; 6] = [A, A, B, C, B, C];

#[tokio::test]
async fn safe_is_the_default_and_gives_a_first_request_its_own_connection() {
    let (p, fe, _) = {
        let (server, closed) = numbering_server().await;
        let p = Proxy::start(http_config("", &servers(&[("s", server, "")])))
            .await
            .unwrap();
        let fe = p.local_addrs("fe")[0];
        (p, fe, closed)
    };
    // Default: A's first connection is idle when B arrives, yet B's first
    // request opens its own.
    let mut a = TcpStream::connect(fe).await.unwrap();
    let mut b = TcpStream::connect(fe).await.unwrap();
    assert_eq!(get(&mut a).await, 1);
    assert_eq!(get(&mut b).await, 2);
    drop(p);

    // Every first request (A1, B1, C1) opens a connection, even when the
    // pool has idle ones; later requests take idle ones.
    let (used, _p, _) = run("safe", &INTERLEAVED).await;
    assert_eq!(used, [1, 2, 2, 1, 3]);
    let (used, _p, _) = run("safe", &A_TWICE_FIRST).await;
    assert_eq!(used, [1, 1, 2, 3, 3, 2]);
}

#[tokio::test]
async fn aggressive_first_requests_take_only_connections_that_were_reused() {
    // B1: connection 1 carried one request only (idle, not safe): a new
    // one. C1: connections 1 and 2 carried two each: reused.
    let (used, _p, _) = run("aggressive", &INTERLEAVED).await;
    assert_eq!(used, [1, 2, 2, 1, 1]);
    // Connection 1 carried A1 and A2: B1 and C1 take it.
    let (used, _p, _) = run("aggressive", &A_TWICE_FIRST).await;
    assert_eq!(used, [1, 1, 1, 1, 1, 1]);
}

#[tokio::test]
async fn always_first_requests_take_any_idle_connection() {
    let (used, _p, _) = run("always", &INTERLEAVED).await;
    assert_eq!(used, [1, 1, 1, 1, 1]);
    let (used, _p, _) = run("always", &A_TWICE_FIRST).await;
    assert_eq!(used, [1; 6]);
}

#[tokio::test]
async fn never_shares_no_connection_and_closes_them_with_their_client() {
    let (used, p, closed) = run("never", &INTERLEAVED).await;
    // Each client keeps its own connection, and only it uses it.
    assert_eq!(used, [1, 2, 1, 2, 3]);
    let (used, _p, _) = run("never", &A_TWICE_FIRST).await;
    assert_eq!(used, [1, 1, 2, 3, 2, 3]);
    // The clients of the first run went away (dropped by `run`): their
    // server connections close with them, nothing waits in a pool.
    eventually("server connections closed", || {
        closed.load(Ordering::Relaxed) == 3
    })
    .await;
    assert_eq!(p.stats().backends[0].cur_sessions, 0);
}

/// HAProxy's `connect` (every connection attempt) and `reuse` (requests
/// sent over an idle connection), per server and backend, in the CSV at
/// HAProxy 2.6's positions (84, 85) and in the Prometheus families. HAProxy
/// 2.6.12 for A1 A2 B1 A3 under `safe`: `connect` 2, `reuse` 2.
#[tokio::test]
async fn connect_and_reuse_count_new_and_reused_connections() {
    let (_, p, _) = run("safe", &INTERLEAVED).await;
    let st = p.stats();
    let (b, s) = (&st.backends[0], &st.backends[0].servers[0]);
    assert_eq!((b.connects, b.reuses), (3, 2));
    assert_eq!((s.connects, s.reuses), (3, 2));
    let csv = st.to_csv();
    let header: Vec<&str> = csv.lines().next().unwrap()[2..].split(',').collect();
    assert_eq!((header[84], header[85]), ("connect", "reuse"));
    for line in csv.lines().filter(|l| l.starts_with("be,")) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!((f[84], f[85]), ("3", "2"), "{line}");
    }
    let prom = st.to_prometheus();
    for l in [
        "haproxy_backend_connection_attempts_total{proxy=\"be\"} 3",
        "haproxy_backend_connection_reuses_total{proxy=\"be\"} 2",
        "haproxy_server_connection_attempts_total{proxy=\"be\",server=\"s\"} 3",
        "haproxy_server_connection_reuses_total{proxy=\"be\",server=\"s\"} 2",
    ] {
        assert!(prom.lines().any(|x| x == l), "{l}");
    }
    let (_, p, _) = run("always", &INTERLEAVED).await;
    let b = &p.stats().backends[0];
    assert_eq!((b.connects, b.reuses), (1, 4));
}
