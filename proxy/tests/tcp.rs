//! L4 behaviour on loopback: forwarding, half-close, balancing, retries,
//! health, queueing, timeouts, PROXY protocol, runtime control and stats.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use halyard_proxy::backend::AdminState;
use halyard_proxy::balance::Algorithm;
use halyard_proxy::health::{ChannelHealthSource, HealthReport, Operational};
use halyard_proxy::proxy_protocol::{self, Version};
use halyard_proxy::runtime::parse_command;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(frontend_extra: &str, backend: &str) -> (Proxy, std::net::SocketAddr) {
    let p = Proxy::start(config(frontend_extra, backend)).await.unwrap();
    let a = p.local_addrs("fe")[0];
    (p, a)
}

#[tokio::test]
async fn forwards_both_ways_and_handles_half_close() {
    let (echo, _t) = echo_server().await;
    let (p, fe) = start("", &servers(&[("e", echo, "")])).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.write_all(&payload).await.unwrap();
    // Half-close: we stop sending; the echo must still flow back in full.
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    tokio::time::timeout(BOUND, c.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, payload);
    eventually("session released", || {
        p.stats().backends[0].cur_sessions == 0
    })
    .await;
    let st = p.stats();
    assert_eq!(st.backends[0].bytes_in, 200_000);
    assert_eq!(st.backends[0].bytes_out, 200_000);
    assert_eq!(st.frontends[0].total_sessions, 1);
}

#[tokio::test]
async fn splice_path_forwards_bulk_intact() {
    let (echo, _t) = echo_server().await;
    let (p, fe) = start("splice = true", &servers(&[("e", echo, "")])).await;
    let before = halyard_proxy::runtime::spliced_directions();
    let mut c = TcpStream::connect(fe).await.unwrap();
    let payload: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&payload).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let recv = r.read_to_end(&mut back);
    let (_, got) = tokio::time::timeout(BOUND, async { tokio::join!(send, recv) })
        .await
        .unwrap();
    got.unwrap();
    assert!(
        back == payload,
        "payload corrupted ({} bytes back)",
        back.len()
    );
    eventually("session released", || {
        p.stats().backends[0].cur_sessions == 0
    })
    .await;
    assert_eq!(p.stats().backends[0].bytes_out, 8_000_000);
    if cfg!(target_os = "linux") {
        assert!(
            halyard_proxy::runtime::spliced_directions() > before,
            "bulk never switched to splice"
        );
    }
}

#[tokio::test]
async fn roundrobin_spreads_and_weight_changes_apply_to_next_connection() {
    let (a, _ta) = name_server("a").await;
    let (b, _tb) = name_server("b").await;
    let (c, _tc) = name_server("c").await;
    let (p, fe) = start("", &servers(&[("a", a, ""), ("b", b, ""), ("c", c, "")])).await;
    let mut seen = BTreeMap::new();
    for _ in 0..6 {
        *seen.entry(fetch(fe).await).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("a\n".into(), 2), ("b\n".into(), 2), ("c\n".into(), 2)])
    );
    p.set_weight("be", "b", 0).unwrap();
    p.set_state("be", "c", AdminState::Maint).unwrap();
    for _ in 0..3 {
        assert_eq!(fetch(fe).await, "a\n");
    }
    let st = p.stats();
    assert_eq!(st.backends[0].servers[1].effective_weight, 0);
    assert_eq!(st.backends[0].servers[2].status, "MAINT");
    // Add a server, drop another, switch algorithm: all effective at once.
    let (d, _td) = name_server("d").await;
    p.execute(parse_command(&format!("add server be/d {d} weight 3")).unwrap())
        .unwrap();
    // Names follow the configuration's rule (HAProxy's).
    for bad in ["d,2", "d/2"] {
        let e = p
            .execute(parse_command(&format!("add server be/{bad} {d}")).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not permitted in server name"), "{e}");
    }
    p.remove_server("be", "a").unwrap();
    assert_eq!(fetch(fe).await, "d\n");
    p.set_state("be", "c", AdminState::Ready).unwrap();
    p.set_algorithm("be", Algorithm::First).unwrap();
    for _ in 0..3 {
        assert_eq!(fetch(fe).await, "c\n", "first: lowest id with a free slot");
    }
    let st = p.stats();
    assert_eq!(st.backends[0].algorithm, Algorithm::First);
    assert_eq!(
        st.backends[0]
            .servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["b", "c", "d"]
    );
    assert!(p
        .execute(parse_command("set weight be/nope 1").unwrap())
        .is_err());
    // HAProxy's other runtime spellings.
    let run = |line: &str| p.execute(parse_command(line).unwrap()).unwrap();
    run("set server be/d weight 5");
    assert_eq!(run("get weight be/d"), "5 (initial 3)\n");
    run("disable server be/c");
    assert_eq!(
        fetch(fe).await,
        "d\n",
        "first, with c in maintenance (b has weight 0)"
    );
    assert_eq!(p.stats().backends[0].servers[1].status, "MAINT");
    run("enable server be/c");
    assert_eq!(fetch(fe).await, "c\n");
    run("set maxconn server be/c 7");
    assert_eq!(p.stats().backends[0].servers[1].maxconn, 7);
    assert_eq!(run("show backend"), "# name\nbe\n");
    // set server addr: the next connections go to the new address.
    let (e, _te) = name_server("e").await;
    let answer = run(&format!(
        "set server be/c addr {} port {}",
        e.ip(),
        e.port()
    ));
    assert!(answer.contains("port changed from"), "{answer}");
    assert_eq!(fetch(fe).await, "e\n", "c now answers at e's address");
}

#[tokio::test]
async fn connect_failures_retry_then_redispatch() {
    let dead = dead_addr().await;
    let (ok, _t) = name_server("ok").await;
    let backend = format!(
        "[backends.be]\nbalance = \"leastconn\"\nretries = 2\ntimeout_connect = \"200ms\"\n{}",
        servers(&[("a_dead", dead, ""), ("b_ok", ok, "")])
    );
    let (p, fe) = start("", &backend).await;
    let t0 = std::time::Instant::now();
    for _ in 0..4 {
        assert_eq!(fetch(fe).await, "ok\n");
    }
    let st = p.stats();
    let b = &st.backends[0];
    // In leastconn's tree (HAProxy's), b_ok goes back to key 0 behind
    // a_dead when its session ends, so every session went to the dead
    // server first: each failed, retried once on it, then was redispatched
    // (leastconn cares which server, so only the last retry redispatches).
    // No session gave up, so no failed connection (HAProxy's econ counts
    // sessions, not attempts).
    assert_eq!((b.connect_errors, b.retries, b.redispatches), (0, 4, 4));
    // Each retry on the refusing server waited MIN(1 s, timeout connect).
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(b.servers[0].connect_errors, 0);
}

#[tokio::test]
async fn all_servers_down_closes_clearly_and_recovers() {
    let dead = dead_addr().await;
    let backend = format!(
        "[backends.be]\nretries = 0\n[backends.be.check]\ninter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", dead, "check = true")])
    );
    let (p, fe) = start("", &backend).await;
    eventually("server marked down", || {
        p.stats().backends[0].servers[0].status == "DOWN"
    })
    .await;
    assert_eq!(fetch(fe).await, "", "closed without data");
    assert_eq!(p.stats().backends[0].status, "DOWN");
    // HAProxy 2.6.12's `last_chk` for a refused connect: strerror's text.
    assert_eq!(
        p.stats().backends[0].servers[0].last_chk,
        "Connection refused"
    );
    assert!(p.stats().backends[0].no_server >= 1);
    // The server comes back on the same port.
    let l = TcpListener::bind(dead).await.unwrap();
    let _t = tokio::spawn(serve_name(l, "back"));
    eventually("server back up", || {
        p.stats().backends[0].servers[0].status == "UP"
    })
    .await;
    assert_eq!(fetch(fe).await, "back\n");
    let s = &p.stats().backends[0].servers[0];
    assert_eq!(s.check_status, "L4OK");
    assert!(s.down_transitions >= 1 && s.check_failures >= 1);
}

#[tokio::test]
async fn http_check_follows_status() {
    // A backend that answers checks with a status read from a shared cell.
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(503));
    let first_line = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let st2 = status.clone();
    let fl2 = first_line.clone();
    let _t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let code = st2.load(std::sync::atomic::Ordering::Relaxed);
            let fl = fl2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                *fl.lock().unwrap() = text.lines().next().unwrap_or("").to_string();
                let _ = s
                    .write_all(format!("HTTP/1.0 {code} X\r\n\r\n").as_bytes())
                    .await;
            });
        }
    });
    let backend = format!(
        "[backends.be.check]\nkind = \"http\"\npath = \"/health\"\nexpect_status = \"200,205-206\"\ninter = \"50ms\"\nrise = 2\nfall = 1\n{}",
        servers(&[("s", a, "check = true")])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("503 -> DOWN", || {
        p.stats().backends[0].servers[0].status.starts_with("DOWN")
    })
    .await;
    assert_eq!(p.stats().backends[0].servers[0].check_status, "L7STS");
    // No method configured: HAProxy's `option httpchk` default.
    assert_eq!(*first_line.lock().unwrap(), "OPTIONS /health HTTP/1.0");
    // A code inside a range of `expect_status` passes, one outside fails.
    status.store(205, std::sync::atomic::Ordering::Relaxed);
    eventually("205 -> UP", || {
        p.stats().backends[0].servers[0].status == "UP"
    })
    .await;
    assert_eq!(p.stats().backends[0].servers[0].check_status, "L7OK");
    status.store(204, std::sync::atomic::Ordering::Relaxed);
    eventually("204 -> DOWN", || {
        p.stats().backends[0].servers[0].status.starts_with("DOWN")
    })
    .await;
}

/// A listener on `ip` and what its connections sent (see [`serve_recording`]).
async fn recording_listener(
    ip: &str,
) -> (
    TcpListener,
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let a = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    (l, a, seen)
}

/// Records what each connection sends until its first LF (or EOF), then
/// writes `reply` and closes.
async fn serve_recording(
    l: TcpListener,
    reply: &'static str,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    accept_each(l, move |mut s| {
        let seen = seen.clone();
        async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 256];
            while !got.contains(&b'\n') {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            seen.lock().unwrap().push(got);
            let _ = s.write_all(reply.as_bytes()).await;
        }
    })
    .await
}

#[tokio::test]
async fn checks_follow_set_server_addr() {
    // A TCP-checked server moves: its checks go to the new address, and a
    // check_port keeps replacing the port there.
    let (la, a, seen_a) = recording_listener("127.0.0.1").await;
    let (lb, b, seen_b) = recording_listener("127.0.0.2").await;
    let _ta = tokio::spawn(serve_recording(la, "", seen_a.clone()));
    let _tb = tokio::spawn(serve_recording(lb, "", seen_b.clone()));
    let backend = format!(
        "[backends.be.check]\ninter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", a, "check = true")])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("checks at the first address", || {
        !seen_a.lock().unwrap().is_empty()
    })
    .await;
    p.execute(
        parse_command(&format!(
            "set server be/s addr {} port {}",
            b.ip(),
            b.port()
        ))
        .unwrap(),
    )
    .unwrap();
    eventually("checks at the new address", || {
        seen_b.lock().unwrap().len() >= 2
    })
    .await;
    assert_eq!(p.stats().backends[0].servers[0].status, "UP");
}

#[tokio::test]
async fn checks_go_to_check_addr_and_check_port() {
    // Traffic goes to the server's address; checks to 127.0.0.2 on another
    // port, without the server's PROXY header (HAProxy's init_srv_check).
    let (srv, _t) = name_server("s").await;
    let (l, check_at, seen) = recording_listener("127.0.0.2").await;
    let checks = tokio::spawn(serve_recording(l, "", seen.clone()));
    let extra = format!(
        "check = true\nsend_proxy = \"v1\"\ncheck_addr = \"127.0.0.2\"\ncheck_port = {}",
        check_at.port()
    );
    let backend = format!(
        "[backends.be.check]\ninter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", srv, &extra)])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("checks reach the check address", || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    assert!(
        seen.lock().unwrap().iter().all(|got| got.is_empty()),
        "no PROXY header on checks that go elsewhere"
    );
    assert_eq!(p.stats().backends[0].servers[0].status, "UP");
    // The check target goes away: the server is DOWN although its own
    // address still answers.
    checks.abort();
    let _ = checks.await;
    eventually("DOWN by its check port", || {
        p.stats().backends[0].servers[0].status == "DOWN"
    })
    .await;
}

#[tokio::test]
async fn agent_gets_agent_send_at_agent_addr() {
    let (srv, _t) = name_server("s").await;
    // The agent answers only once it has read a line: agent_send must come.
    let (l, agent, seen) = recording_listener("127.0.0.3").await;
    tokio::spawn(serve_recording(l, "50%\n", seen.clone()));
    let extra = format!(
        "weight = 10\ncheck_addr = \"127.0.0.2\"\nagent_addr = \"127.0.0.3\"\nagent_port = {}\nagent_inter = \"50ms\"\nagent_send = \"hello backend be\\n\"",
        agent.port()
    );
    let (p, _fe) = start("", &servers(&[("s", srv, &extra)])).await;
    eventually("agent 50%", || {
        p.stats().backends[0].servers[0].effective_weight == 5
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0], b"hello backend be\n");
}

#[tokio::test]
async fn agent_check_sets_weight_and_drain() {
    let (srv, _t) = name_server("s").await;
    let reply = std::sync::Arc::new(std::sync::Mutex::new("50%\n".to_string()));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = l.local_addr().unwrap().port();
    let r2 = reply.clone();
    let _ta = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let text = r2.lock().unwrap().clone();
            let _ = s.write_all(text.as_bytes()).await;
        }
    });
    let extra = format!("weight = 10\nagent_port = {agent_port}\nagent_inter = \"50ms\"");
    let (p, _fe) = start("", &servers(&[("s", srv, &extra)])).await;
    eventually("agent 50%", || {
        p.stats().backends[0].servers[0].effective_weight == 5
    })
    .await;
    assert_eq!(
        p.stats().backends[0].servers[0].last_agt,
        "",
        "no health word"
    );
    *reply.lock().unwrap() = "drain\n".into();
    eventually("agent drain", || {
        // HAProxy shows a drained server with an agent check this way.
        p.stats().backends[0].servers[0].status == "DRAIN (agent)"
    })
    .await;
    *reply.lock().unwrap() = "ready 100% down\n".into();
    eventually("agent down", || {
        p.stats().backends[0].servers[0].status == "DOWN (agent)"
    })
    .await;
    // HAProxy's `last_agt`, in its CSV column too.
    assert_eq!(
        p.stats().backends[0].servers[0].last_agt,
        "via agent : down"
    );
    assert_eq!(csv_field(&p, "s", "last_agt"), "via agent : down");
    *reply.lock().unwrap() = "up\n".into();
    eventually("agent up", || {
        p.stats().backends[0].servers[0].effective_weight == 10
    })
    .await;
}

#[tokio::test]
async fn backend_dying_mid_stream_closes_the_client() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let _t = tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let _ = s.write_all(&[7u8; 10_000]).await;
        // Die abruptly: RST instead of FIN.
        #[allow(deprecated)] // linger 0 does not block: it is the point (RST)
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    });
    let (p, fe) = start("", &servers(&[("s", a, "")])).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    let mut got = Vec::new();
    // Whatever arrived before the death, the read ends (EOF or reset), bounded.
    let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut got))
        .await
        .expect("client released");
    assert!(got.len() <= 10_000);
    eventually("session released", || {
        p.stats().backends[0].cur_sessions == 0
    })
    .await;
    // The proxy still works.
    let (b, _tb) = name_server("b").await;
    p.add_server(
        "be",
        halyard_proxy::config::ServerConfig::new(halyard_proxy::backend::ServerSpec::new("b", b)),
    )
    .unwrap();
    p.set_state("be", "s", AdminState::Maint).unwrap();
    assert_eq!(fetch(fe).await, "b\n");
}

#[tokio::test]
async fn slowloris_is_held_only_until_timeout_client() {
    // The backend never speaks; the client never speaks.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let _t = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let (p, fe) = start("timeout_client = \"200ms\"", &servers(&[("s", a, "")])).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(BOUND, c.read(&mut buf))
        .await
        .expect("closed by timeout client");
    assert!(matches!(n, Ok(0) | Err(_)));
    eventually("session released", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
    // A PROXY-header frontend also drops a client that never finishes its header.
    let (p2, fe2) = start(
        "accept_proxy = true\ntimeout_client = \"200ms\"",
        &servers(&[("s", a, "")]),
    )
    .await;
    let mut c = TcpStream::connect(fe2).await.unwrap();
    c.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    let n = tokio::time::timeout(BOUND, c.read(&mut buf))
        .await
        .expect("closed by timeout client");
    assert!(matches!(n, Ok(0) | Err(_)));
    eventually("denied", || p2.stats().frontends[0].denied == 1).await;
}

#[tokio::test]
async fn proxy_protocol_in_and_out() {
    // The server reads the PROXY header we send and replies with the source it saw.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let _t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 128];
                loop {
                    match proxy_protocol::parse(&buf) {
                        // Reply once the header and some data behind it arrived.
                        Ok(Some((h, n))) if buf.len() > n => {
                            let rest = String::from_utf8_lossy(&buf[n..]).to_string();
                            let src = h.addresses.map(|(s, _)| s.to_string()).unwrap_or_default();
                            let _ = s
                                .write_all(format!("{:?} {src} {rest}", h.version).as_bytes())
                                .await;
                            return;
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    let (p, fe) = start(
        "accept_proxy = true",
        &servers(&[("s", a, "send_proxy = \"v2\"")]),
    )
    .await;
    // A well-formed v1 header with data right behind it.
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"PROXY TCP4 10.1.2.3 10.9.9.9 4242 80\r\nhello")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(BOUND, c.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, "V2 10.1.2.3:4242 hello");
    // Garbage is rejected, counted, and does not reach the server.
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x99\x11\x00\x0c",
    ] {
        let mut c = TcpStream::connect(fe).await.unwrap();
        c.write_all(garbage).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut out))
            .await
            .unwrap();
        assert!(out.is_empty());
    }
    eventually("3 denied", || p.stats().frontends[0].denied == 3).await;
    assert_eq!(p.stats().backends[0].total_sessions, 1);
    // As HAProxy 2.6.12 counts them: 4 connections, of which 1 session (a
    // refused PROXY header makes no session).
    let f = &p.stats().frontends[0];
    assert_eq!((f.total_connections, f.total_sessions), (4, 1));
    assert!((1..=4).contains(&f.connection_rate_max) && f.session_rate_max == 1);
    // v1 out, from a frontend without accept_proxy: the server sees the real client.
    let (_p1, fe1) = start("", &servers(&[("s", a, "send_proxy = \"v1\"")])).await;
    let mut c = TcpStream::connect(fe1).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"hi").await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(BOUND, c.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, format!("{:?} {me} hi", Version::V1));
}

/// A check target that requires a PROXY header first and closes without
/// one; after it, it answers an HTTP request with 200 (or just closes for a
/// TCP check). Returns its address and the headers it accepted, with the
/// addresses of the connection they came on (peer, local).
#[allow(clippy::type_complexity)]
async fn proxy_requiring_check_target() -> (
    std::net::SocketAddr,
    std::sync::Arc<
        std::sync::Mutex<
            Vec<(
                proxy_protocol::Header,
                (std::net::SocketAddr, std::net::SocketAddr),
            )>,
        >,
    >,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, peer)) = l.accept().await else {
                return;
            };
            let local = s.local_addr().unwrap();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 256];
                let rest = loop {
                    match proxy_protocol::parse(&buf) {
                        Ok(Some((h, n))) => {
                            seen.lock().unwrap().push((h, (peer, local)));
                            break buf.split_off(n);
                        }
                        Ok(None) => {}
                        Err(_) => return, // no PROXY header: close
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let mut req = rest;
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
            });
        }
    });
    (a, seen)
}

#[tokio::test]
async fn checks_send_a_proxy_header_when_the_server_gets_one() {
    // HTTP check, v2: the target closes check connections without a header.
    let (a, seen) = proxy_requiring_check_target().await;
    let backend = format!(
        "[backends.be.check]\nkind = \"http\"\ninter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", a, "check = true\nsend_proxy = \"v2\"")])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("HTTP check through the PROXY header", || {
        let s = &p.stats().backends[0].servers[0];
        s.status == "UP" && s.check_status == "L7OK"
    })
    .await;
    let (h, (peer, local)) = seen.lock().unwrap()[0];
    assert_eq!(h.version, Version::V2);
    assert_eq!(
        h.addresses,
        Some((peer, local)),
        "the check connection's own addresses"
    );
    assert_eq!(p.stats().backends[0].servers[0].check_failures, 0);

    // TCP check, v1: the header is sent before the check connection closes.
    let (a, seen) = proxy_requiring_check_target().await;
    let backend = format!(
        "[backends.be.check]\ninter = \"50ms\"\n{}",
        servers(&[("s", a, "check = true\nsend_proxy = \"v1\"")])
    );
    let (_p, _fe) = start("", &backend).await;
    eventually("v1 header on a TCP check", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let (h, (peer, local)) = seen.lock().unwrap()[0];
    assert_eq!(h.version, Version::V1);
    assert_eq!(h.addresses, Some((peer, local)));

    // `check_send_proxy` (HAProxy's check-send-proxy): v1 on the checks of
    // a server without send_proxy, as HAProxy 2.6.12 sends it.
    let (a, seen) = proxy_requiring_check_target().await;
    let backend = format!(
        "[backends.be.check]\ninter = \"50ms\"\n{}",
        servers(&[("s", a, "check = true\ncheck_send_proxy = true")])
    );
    let (_p, _fe) = start("", &backend).await;
    eventually("v1 header from check_send_proxy", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0].0.version, Version::V1);

    // With check_port, send_proxy alone gives the checks no header;
    // check_send_proxy does, in the server's version (v2).
    let (a, seen) = proxy_requiring_check_target().await;
    let (traffic, _t) = name_server("s").await;
    let extra = format!(
        "check = true\nsend_proxy = \"v2\"\ncheck_send_proxy = true\ncheck_port = {}",
        a.port()
    );
    let backend = format!(
        "[backends.be.check]\ninter = \"50ms\"\n{}",
        servers(&[("s", traffic, &extra)])
    );
    let (_p, _fe) = start("", &backend).await;
    eventually("v2 header to check_port", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(seen.lock().unwrap()[0].0.version, Version::V2);
}

/// One field of a server's line in the CSV stats, by column name.
fn csv_field(p: &Proxy, server: &str, column: &str) -> String {
    let csv = p.stats().to_csv();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap()[2..].split(',').collect();
    let i = header.iter().position(|c| *c == column).unwrap();
    let line = lines
        .find(|l| l.split(',').nth(1) == Some(server))
        .expect("the server's line");
    line.split(',').nth(i).unwrap().to_string()
}

/// An HTTP server for checks: records each request, answers with the
/// response in `reply`, then closes.
async fn http_check_target(
    reply: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(accept_each(l, move |mut s| {
        let (reply, seen) = (reply.clone(), seen2.clone());
        async move {
            let mut req = Vec::new();
            let mut chunk = [0u8; 512];
            // The head, then a body of Content-Length bytes (if any).
            loop {
                if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&chunk[..n]),
                }
            }
            seen.lock().unwrap().push(req);
            let out = reply.lock().unwrap().clone();
            let _ = s.write_all(&out).await;
        }
    }));
    (a, seen)
}

#[tokio::test]
async fn http_check_sends_headers_and_body_and_expects_body_content() {
    let reply = std::sync::Arc::new(std::sync::Mutex::new(
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall OK".to_vec(),
    ));
    let (a, seen) = http_check_target(reply.clone()).await;
    let backend = format!(
        "[backends.be.check]\nkind = \"http\"\nmethod = \"POST\"\npath = \"/h\"\n\
         version = \"HTTP/1.1\"\nheaders = {{ Host = \"example.com\" }}\nbody = \"hi\"\n\
         expect = \"string\"\npattern = \"OK\"\ninter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", a, "check = true")])
    );
    let (p, _fe) = start("", &backend).await;
    let server = |p: &Proxy| p.stats().backends[0].servers[0].clone();
    eventually("body OK -> L7OK", || server(&p).check_status == "L7OK").await;
    assert_eq!(
        seen.lock().unwrap()[0],
        b"POST /h HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    );
    assert_eq!(server(&p).last_chk, "");
    // The body no longer holds the pattern: L7RSP, HAProxy's description.
    *reply.lock().unwrap() = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope".to_vec();
    eventually("no match -> DOWN", || server(&p).status == "DOWN").await;
    let s = server(&p);
    assert_eq!(
        (s.check_status.as_str(), s.last_chk.as_str()),
        ("L7RSP", "HTTP content check did not match")
    );
    assert_eq!(
        csv_field(&p, "s", "last_chk"),
        "HTTP content check did not match"
    );
    // A body rule alone does not look at the status (as HAProxy 2.6.12).
    *reply.lock().unwrap() = b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\nOK".to_vec();
    eventually("503 with OK -> UP", || server(&p).status == "UP").await;
}

#[tokio::test]
async fn http_check_wrong_status_is_described_by_the_reason_phrase() {
    let reply = std::sync::Arc::new(std::sync::Mutex::new(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ));
    let (a, _seen) = http_check_target(reply.clone()).await;
    let backend = format!(
        "[backends.be.check]\nkind = \"http\"\nexpect = \"! rstatus\"\npattern = \"^5\"\n\
         inter = \"50ms\"\nrise = 1\nfall = 1\n{}",
        servers(&[("s", a, "check = true")])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("5xx -> L7STS", || {
        let s = &p.stats().backends[0].servers[0];
        s.status == "DOWN" && s.check_status == "L7STS"
    })
    .await;
    assert_eq!(
        p.stats().backends[0].servers[0].last_chk,
        "Internal Server Error"
    );
    *reply.lock().unwrap() = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec();
    eventually("404 passes ! rstatus ^5", || {
        p.stats().backends[0].servers[0].status == "UP"
    })
    .await;
}

#[tokio::test]
async fn maxconn_queues_and_timeout_queue_drops() {
    // The backend holds each connection until the client closes.
    let (echo, _t) = echo_server().await;
    let backend = format!(
        "[backends.be]\ntimeout_queue = \"300ms\"\n{}",
        servers(&[("s", echo, "maxconn = 1")])
    );
    let (p, fe) = start("", &backend).await;
    let mut first = TcpStream::connect(fe).await.unwrap();
    first.write_all(b"1").await.unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).await.unwrap();
    // Second client queues; it is served once the first leaves.
    let mut second = TcpStream::connect(fe).await.unwrap();
    second.write_all(b"2").await.unwrap();
    eventually("queued", || p.stats().backends[0].queue_cur == 1).await;
    drop(first);
    tokio::time::timeout(BOUND, second.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"2");
    // Third client waits past timeout queue and is closed.
    let mut third = TcpStream::connect(fe).await.unwrap();
    let n = tokio::time::timeout(BOUND, third.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    let st = p.stats();
    assert_eq!(st.backends[0].queue_timeouts, 1);
    assert_eq!(st.backends[0].queue_max, 1);
    assert_eq!(st.backends[0].servers[0].max_sessions, 1);
}

#[tokio::test]
async fn removing_a_server_lets_its_sessions_finish() {
    let (echo, _t) = echo_server().await;
    let (other, _t2) = name_server("other").await;
    let backend = servers(&[
        ("a", echo, "on_marked_down = \"shutdown-sessions\""),
        ("b", other, "weight = 0"),
    ]);
    let (p, fe) = start("", &backend).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    let mut b = [0u8; 1];
    c.write_all(b"x").await.unwrap();
    c.read_exact(&mut b).await.unwrap();
    p.remove_server("be", "a").unwrap();
    // The session still echoes after its server left the backend.
    for x in [b'y', b'z'] {
        c.write_all(&[x]).await.unwrap();
        tokio::time::timeout(BOUND, c.read_exact(&mut b))
            .await
            .expect("session still open")
            .unwrap();
        assert_eq!(b[0], x);
    }
}

#[tokio::test]
async fn a_primary_coming_up_shuts_down_backup_sessions() {
    let (a, _ta) = name_server("a").await;
    let (backup, _tb) = echo_server().await;
    let backend = servers(&[
        ("a", a, "on_marked_up = \"shutdown-backup-sessions\""),
        ("b", backup, "backup = true"),
    ]);
    let (p, fe) = start("", &backend).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _h = p.attach_health_source(ChannelHealthSource(rx));
    let report = |state| HealthReport {
        backend: "be".into(),
        server: "a".into(),
        state,
    };
    tx.send(report(Operational::Down)).await.unwrap();
    eventually("a down", || {
        p.stats().backends[0].servers[0].status.starts_with("DOWN")
    })
    .await;
    // A session on the backup (it echoes)...
    let mut c = TcpStream::connect(fe).await.unwrap();
    let mut b = [0u8; 1];
    c.write_all(b"x").await.unwrap();
    c.read_exact(&mut b).await.unwrap();
    // ...is closed when the primary comes back.
    tx.send(report(Operational::Up)).await.unwrap();
    let n = tokio::time::timeout(BOUND, c.read(&mut b))
        .await
        .expect("backup session shut down");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(fetch(fe).await, "a\n");
}

#[tokio::test]
async fn health_source_and_shutdown_sessions_on_marked_down() {
    let (echo, _t) = echo_server().await;
    let (other, _t2) = name_server("other").await;
    let backend = servers(&[
        ("a", echo, "on_marked_down = \"shutdown-sessions\""),
        ("b", other, "backup = true"),
    ]);
    let (p, fe) = start("", &backend).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();
    // The cluster says: a is down.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let _h = p.attach_health_source(ChannelHealthSource(rx));
    tx.send(HealthReport {
        backend: "be".into(),
        server: "a".into(),
        state: Operational::Down,
    })
    .await
    .unwrap();
    let n = tokio::time::timeout(BOUND, c.read(&mut b))
        .await
        .expect("session shut down");
    assert!(matches!(n, Ok(0) | Err(_)));
    // The backup takes over while the primary is down.
    assert_eq!(fetch(fe).await, "other\n");
    tx.send(HealthReport {
        backend: "be".into(),
        server: "a".into(),
        state: Operational::Up,
    })
    .await
    .unwrap();
    // Not checked: HAProxy shows an up server without checks as "no check".
    eventually("a up", || {
        p.stats().backends[0].servers[0].status == "no check"
    })
    .await;
}

#[tokio::test]
async fn entering_maint_shuts_down_sessions_with_on_marked_down() {
    let (echo, _t) = echo_server().await;
    let backend = servers(&[("a", echo, "on_marked_down = \"shutdown-sessions\"")]);
    let (p, fe) = start("", &backend).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();
    // HAProxy: a running server entering maintenance goes DOWN, and
    // on-marked-down shutdown-sessions closes its sessions.
    p.set_state("be", "a", AdminState::Maint).unwrap();
    let n = tokio::time::timeout(BOUND, c.read(&mut b))
        .await
        .expect("session shut down");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(p.stats().backends[0].servers[0].down_transitions, 1);
    // Leaving maintenance brings it back for new sessions.
    p.set_state("be", "a", AdminState::Ready).unwrap();
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"y").await.unwrap();
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"y");
}

#[tokio::test]
async fn stats_listener_serves_metrics_csv_and_commands() {
    let (a, _t) = name_server("a").await;
    let text = format!(
        "[global]\nstats_listen = \"127.0.0.1:0\"\n[frontends.fe]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("a", a, "")])
    );
    let p = Proxy::start(halyard_proxy::config::Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let stats = p.stats_addr().unwrap();
    let get = |req: String| async move {
        let mut s = TcpStream::connect(stats).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(BOUND, s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    };
    let m = get("GET /metrics HTTP/1.0\r\n\r\n".into()).await;
    assert!(
        m.starts_with("HTTP/1.0 200")
            && m.contains("haproxy_server_status{proxy=\"be\",server=\"a\",state=\"UP\"} 1"),
        "{m}"
    );
    let cmd = "set weight be/a 7";
    let r = get(format!(
        "POST /command HTTP/1.0\r\nContent-Length: {}\r\n\r\n{cmd}",
        cmd.len()
    ))
    .await;
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    let csv = get("GET /stats HTTP/1.0\r\n\r\n".into()).await;
    assert!(csv.contains("be,a,"), "{csv}");
    assert_eq!(p.stats().backends[0].servers[0].weight, 7);
    let bad = get("POST /command HTTP/1.0\r\nContent-Length: 3\r\n\r\nfoo".into()).await;
    assert!(
        bad.starts_with("HTTP/1.0 400") && bad.contains("unknown command"),
        "{bad}"
    );
}

#[tokio::test]
async fn graceful_shutdown_lets_sessions_finish() {
    let (echo, _t) = echo_server().await;
    let (p, fe) = start("", &servers(&[("e", echo, "")])).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"a").await.unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await.unwrap();
    let stop = tokio::spawn(p.soft_stop());
    // No new sessions...
    eventually("listener closed", || {
        std::net::TcpStream::connect_timeout(&fe, Duration::from_millis(200)).is_err()
    })
    .await;
    // ...but the open one still works, and ends on its own.
    c.write_all(b"b").await.unwrap();
    c.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"b");
    drop(c);
    assert_eq!(tokio::time::timeout(BOUND, stop).await.unwrap().unwrap(), 0);
}

#[tokio::test]
async fn frontend_maxconn_leaves_extra_clients_in_the_backlog() {
    let (echo, _t) = echo_server().await;
    let (p, fe) = start("maxconn = 1", &servers(&[("e", echo, "")])).await;
    let mut first = TcpStream::connect(fe).await.unwrap();
    first.write_all(b"1").await.unwrap();
    let mut b = [0u8; 1];
    first.read_exact(&mut b).await.unwrap();
    // The second connection completes in the kernel but is not accepted yet.
    let mut second = TcpStream::connect(fe).await.unwrap();
    second.write_all(b"2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.stats().frontends[0].total_sessions,
        1,
        "accepted past maxconn"
    );
    drop(first);
    tokio::time::timeout(BOUND, second.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"2");
    assert_eq!(p.stats().frontends[0].max_sessions, 1);
}

#[tokio::test]
async fn per_core_workers_share_the_listen_address() {
    let (echo, _t) = echo_server().await;
    let text = format!(
        "[global]\nthreads = 2\n[defaults]\ntimeout_connect = \"1s\"\n[frontends.fe]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("e", echo, "")])
    );
    let p = Proxy::start(halyard_proxy::config::Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let (stop, worker, n) = per_core_worker(p.clone());
    assert_eq!(n, 1);
    // 64 sessions, 4 at a time; SO_REUSEPORT hashes each one to a worker.
    const SESSIONS: u64 = 64;
    for round in 0..SESSIONS / 4 {
        let mut all = Vec::new();
        for i in 0..4 {
            all.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(fe).await.unwrap();
                let msg = format!("hello {round}/{i}");
                c.write_all(msg.as_bytes()).await.unwrap();
                c.shutdown().await.unwrap();
                let mut back = String::new();
                tokio::time::timeout(BOUND, c.read_to_string(&mut back))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(back, msg);
            }));
        }
        for t in all {
            t.await.unwrap();
        }
    }
    let per_worker = p.accepted_per_worker();
    assert_eq!(per_worker.len(), 2);
    assert_eq!(per_worker.iter().sum::<u64>(), SESSIONS, "{per_worker:?}");
    // P(all 64 on one listener) = 2^-63 with the kernel's 4-tuple hash.
    assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");
    eventually("sessions released", || p.task_count() == 0).await;
    let st = p.stats();
    assert_eq!(st.frontends[0].total_sessions, SESSIONS);
    assert_eq!(st.backends[0].bytes_in, st.backends[0].bytes_out);
    assert_eq!(tokio::time::timeout(BOUND, p.soft_stop()).await.unwrap(), 0);
    // Both workers' listeners close (the worker's on its own thread, soon).
    let deadline = tokio::time::Instant::now() + BOUND;
    while TcpStream::connect(fe).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a listener stayed open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    worker.join().unwrap();
}

#[tokio::test]
async fn serve_here_needs_reuseport() {
    let (echo, _t) = echo_server().await;
    // noreuseport: the address is bound without SO_REUSEPORT.
    let text = format!(
        "[global]\nnoreuseport = true\n[frontends.fe]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("e", echo, "")])
    );
    let p = Proxy::start(halyard_proxy::config::Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let e = p.serve_here().await.unwrap_err();
    assert!(matches!(e, halyard_proxy::Error::Bind { .. }), "{e}");
}

/// A backend that answers each 3-byte request with a head and a body in
/// two writes (as nginx does), the shape whose ACK the proxy piggybacks.
async fn two_segment_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut req = [0u8; 3];
                let mut n = 0u32;
                while s.read_exact(&mut req).await.is_ok() {
                    n += 1;
                    let head = format!("head {n:>6} {}", "h".repeat(200));
                    let body = format!("body {n:>6} {}", "b".repeat(100));
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn keep_alive_exchanges_arrive_whole_whether_peeked_or_read() {
    let server = two_segment_server().await;
    let (_p, fe) = start("", &servers(&[("s", server, "")])).await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.set_nodelay(true).unwrap();
    let check = |n: u32, got: &[u8]| {
        let want = format!(
            "head {n:>6} {}body {n:>6} {}",
            "h".repeat(200),
            "b".repeat(100)
        );
        assert_eq!(got, want.as_bytes(), "response {n}");
    };
    let len = 2 * 12 + 300;
    let mut buf = vec![0u8; len];
    // Back to back (the proxy peeks), then with pauses longer than the
    // ACK delay (it reads, and a peek left waiting is acknowledged by the
    // timer), then back to back again.
    for n in 1..=600u32 {
        c.write_all(b"GET").await.unwrap();
        tokio::time::timeout(BOUND, c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        check(n, &buf);
        if (300..330).contains(&n) {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
}

#[tokio::test]
async fn first_checks_are_spread_over_the_interval() {
    // HAProxy's start_checks: two checks with inter 60s start 30 s apart
    // (position 1 of 2), so the second server is not checked right after
    // the first one.
    let (a, _ta) = name_server("a").await;
    let (b, _tb) = name_server("b").await;
    let backend = format!(
        "[backends.be.check]\ninter = \"60s\"\n{}",
        servers(&[("a", a, "check = true"), ("b", b, "check = true")])
    );
    let (p, _fe) = start("", &backend).await;
    eventually("the first server is checked at once", || {
        p.stats().backends[0].servers[0].check_status == "L4OK"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        p.stats().backends[0].servers[1].check_status,
        "",
        "the second check waits half an interval"
    );
}
