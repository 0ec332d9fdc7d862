//! `kind = "tcp-check"` on loopback: HAProxy's Redis master recipe against
//! tiny fake Redis servers, with the PROXY header and `check_port`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use halyard_proxy::proxy_protocol;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// HAProxy's manual example, as rules.
const REDIS_RULES: &str = r#"rules = [
  { send = "PING\r\n" },
  { expect = "string", pattern = "+PONG" },
  { send = "info replication\r\n", comment = "role check" },
  { expect = "string", pattern = "role:master" },
  { send = "QUIT\r\n" },
  { expect = "string", pattern = "+OK" },
]"#;

/// A fake Redis: `PING`, `INFO replication` (role from `master`), `QUIT`,
/// one command per CRLF line, in pieces to exercise reassembly; `-ERR` for
/// anything else. It keeps the connection open until `QUIT` or the peer
/// closes, as Redis does. With `proxy`, a PROXY header must come first (the
/// connection is closed otherwise); `headers` counts the ones seen (without
/// `proxy`, the v1 header lines that came as commands).
struct FakeRedis {
    addr: SocketAddr,
    master: Arc<AtomicBool>,
    headers: Arc<AtomicUsize>,
}

async fn fake_redis(master: bool, proxy: bool) -> FakeRedis {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let role = Arc::new(AtomicBool::new(master));
    let headers = Arc::new(AtomicUsize::new(0));
    let (role2, headers2) = (role.clone(), headers.clone());
    tokio::spawn(accept_each(l, move |s| {
        serve(s, role2.clone(), headers2.clone(), proxy)
    }));
    FakeRedis {
        addr,
        master: role,
        headers,
    }
}

async fn serve(mut s: TcpStream, master: Arc<AtomicBool>, headers: Arc<AtomicUsize>, proxy: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    if proxy {
        loop {
            match proxy_protocol::parse(&buf) {
                Ok(Some((_, n))) => {
                    headers.fetch_add(1, Ordering::Relaxed);
                    buf.drain(..n);
                    break;
                }
                Ok(None) => {}
                Err(_) => return,
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 2);
            let reply = match line.as_str() {
                "ping" => "+PONG\r\n".to_string(),
                "info replication" => {
                    let role = if master.load(Ordering::Relaxed) {
                        "master"
                    } else {
                        "slave"
                    };
                    let body = format!("# Replication\r\nrole:{role}\r\nconnected_slaves:0\r\n");
                    format!("${}\r\n{body}\r\n", body.len())
                }
                "quit" => {
                    let _ = s.write_all(b"+OK\r\n").await;
                    return;
                }
                l if l.starts_with("proxy ") => {
                    // A v1 PROXY header where none is expected.
                    headers.fetch_add(1, Ordering::Relaxed);
                    "-ERR unknown command\r\n".to_string()
                }
                _ => "-ERR unknown command\r\n".to_string(),
            };
            // Two writes: the checker must accumulate the reply.
            let (a, b) = reply.as_bytes().split_at(reply.len() / 2);
            if s.write_all(a).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
            if s.write_all(b).await.is_err() {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn backend(servers_toml: &str) -> String {
    // timeout check: a replica never says role:master and keeps the
    // connection open, so its checks end in L7TOUT after 200 ms.
    format!(
        "[backends.be.check]\nkind = \"tcp-check\"\ninter = \"50ms\"\ntimeout = \"200ms\"\nrise = 1\nfall = 1\n{REDIS_RULES}\n{servers_toml}"
    )
}

async fn start(backend: &str) -> Proxy {
    Proxy::start(config("", backend)).await.unwrap()
}

fn status(p: &Proxy, server: usize) -> (String, String) {
    let s = &p.stats().backends[0].servers[server];
    (s.status.clone(), s.check_status.clone())
}

#[tokio::test]
async fn only_the_redis_master_is_up_and_the_status_follows_a_failover() {
    let a = fake_redis(true, false).await;
    let b = fake_redis(false, false).await;
    let p = start(&backend(&servers(&[
        ("a", a.addr, "check = true"),
        ("b", b.addr, "check = true"),
    ])))
    .await;
    eventually("a UP (L7OK), b DOWN (L7TOUT)", || {
        let (sa, sb) = (status(&p, 0), status(&p, 1));
        sa == ("UP".into(), "L7OK".into()) && sb.0 == "DOWN" && sb.1 == "L7TOUT"
    })
    .await;
    // As HAProxy 2.6.12 words them: the passed ruleset, the step timed out.
    let servers = &p.stats().backends[0].servers;
    assert_eq!(servers[0].last_chk, "(tcp-check)");
    assert_eq!(
        servers[1].last_chk,
        " at step 4 of tcp-check (expect string 'role:master')"
    );
    // Failover: b is promoted, a becomes its replica.
    a.master.store(false, Ordering::Relaxed);
    b.master.store(true, Ordering::Relaxed);
    eventually("roles swapped: a DOWN, b UP", || {
        let (sa, sb) = (status(&p, 0), status(&p, 1));
        sa.0 == "DOWN" && sb == ("UP".into(), "L7OK".into())
    })
    .await;
}

#[tokio::test]
async fn a_server_that_closes_before_the_match_is_down_with_l7rsp() {
    // Answers every line with -ERR and closes: the first expect sees the
    // close before +PONG.
    let (addr, _server) = spawn_server(|mut s| async move {
        let mut chunk = [0u8; 64];
        let _ = s.read(&mut chunk).await;
        let _ = s.write_all(b"-ERR\r\n").await;
    })
    .await;
    let p = start(&backend(&servers(&[("s", addr, "check = true")]))).await;
    eventually("DOWN with L7RSP", || {
        status(&p, 0) == ("DOWN".into(), "L7RSP".into())
    })
    .await;
    // HAProxy's description, shown as `last_chk`.
    assert_eq!(
        p.stats().backends[0].servers[0].last_chk,
        "TCPCHK did not match content '+PONG' at step 2"
    );
}

#[tokio::test]
async fn tcp_checks_send_the_proxy_header_unless_they_go_to_check_port() {
    // a: checked on its own address, which requires a PROXY header.
    let a = fake_redis(true, true).await;
    // b: traffic to a plain server with send_proxy; checks to check_port,
    // a Redis that would answer a header line with -ERR (so it must not get
    // one, as HAProxy's init_srv_check drops send-proxy with `port`).
    let (plain, _t) = name_server("b").await;
    let b_checks = fake_redis(true, false).await;
    let b_extra = format!(
        "check = true\nsend_proxy = \"v1\"\ncheck_port = {}",
        b_checks.addr.port()
    );
    let p = start(&backend(&servers(&[
        ("a", a.addr, "check = true\nsend_proxy = \"v2\""),
        ("b", plain, &b_extra),
    ])))
    .await;
    eventually("both UP with L7OK", || {
        status(&p, 0) == ("UP".into(), "L7OK".into())
            && status(&p, 1) == ("UP".into(), "L7OK".into())
    })
    .await;
    assert!(a.headers.load(Ordering::Relaxed) >= 1);
    assert_eq!(b_checks.headers.load(Ordering::Relaxed), 0);
    // b's check target goes replica: b DOWN although its address answers.
    b_checks.master.store(false, Ordering::Relaxed);
    eventually("b DOWN by its check port", || status(&p, 1).0 == "DOWN").await;
}
