//! Reliability on loopback: connection churn without leaks, and fd
//! exhaustion in a child process with a lowered RLIMIT_NOFILE.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 10,000 short sessions through the proxy, 50 at a time: every one gets its
/// echo, and afterwards the process has the fds and tasks it had before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connection_churn_leaks_nothing() {
    const TOTAL: usize = 10_000;
    const CONC: usize = 50;
    let (echo, _t) = echo_server().await;
    let p = Proxy::start(config("", &servers(&[("e", echo, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    // Warm up so lazily created runtime fds exist before the baseline.
    for _ in 0..10 {
        one_exchange(fe).await;
    }
    eventually("warm-up sessions closed", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
    let fds_before = fd_count();
    let tasks_before = p.task_count();
    assert_eq!(churn(TOTAL, CONC, move |_| one_exchange(fe)).await, TOTAL);
    eventually("all sessions closed", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
    eventually("tasks back to baseline", || p.task_count() == tasks_before).await;
    eventually("fds back to baseline", || fd_count() <= fds_before).await;
    let st = p.stats();
    assert_eq!(st.frontends[0].total_sessions, (TOTAL + 10) as u64);
    assert_eq!(st.backends[0].cur_sessions, 0);
    assert_eq!(st.backends[0].connect_errors, 0);
}

/// Runs `one(i)` for `i` in `0..total`, `conc` at a time (each of `conc`
/// tasks takes every `conc`-th `i`), bounded by 120 s; returns how many
/// returned true.
async fn churn<F, Fut>(total: usize, conc: usize, one: F) -> usize
where
    F: Fn(usize) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let work = async {
        let mut handles = Vec::new();
        for w in 0..conc {
            handles.push(tokio::spawn(async move {
                let mut ok = 0;
                for i in (w..total).step_by(conc) {
                    ok += usize::from(one(i).await);
                }
                ok
            }));
        }
        let mut ok = 0;
        for h in handles {
            ok += h.await.unwrap();
        }
        ok
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("churn bounded")
}

async fn one_exchange(fe: std::net::SocketAddr) -> bool {
    let Ok(mut c) = TcpStream::connect(fe).await else {
        return false;
    };
    if c.write_all(b"ping").await.is_err() {
        return false;
    }
    let _ = c.shutdown().await;
    let mut out = Vec::new();
    matches!(
        tokio::time::timeout(BOUND, c.read_to_end(&mut out)).await,
        Ok(Ok(_))
    ) && out == b"ping"
}

/// 500 WebSocket tunnels through an HTTP frontend, 25 at a time, each
/// upgraded, echoed and closed by one side or the other (the client's
/// half-close, or a server reset): afterwards the process has the fds and
/// tasks it had before, and no session or server slot is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_tunnel_churn_leaks_nothing() {
    const TOTAL: usize = 500;
    const CONC: usize = 25;
    let (ws, _heads) = ws_server().await;
    let text = format!(
        "[frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("ws", ws, "")])
    );
    let p = Proxy::start(halyard_proxy::config::Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    for i in 0..4 {
        assert!(one_tunnel(fe, i).await);
    }
    let idle = || {
        let st = p.stats();
        st.frontends[0].cur_sessions == 0 && st.backends[0].cur_sessions == 0
    };
    eventually("warm-up tunnels closed", idle).await;
    let fds_before = fd_count();
    let tasks_before = p.task_count();
    assert_eq!(churn(TOTAL, CONC, move |i| one_tunnel(fe, i)).await, TOTAL);
    eventually("all tunnels closed", idle).await;
    eventually("tasks back to baseline", || p.task_count() == tasks_before).await;
    eventually("fds back to baseline", || fd_count() <= fds_before).await;
    let h = p.stats().backends[0].http.clone().unwrap();
    assert_eq!(h.responses[1], (TOTAL + 4) as u64);
}

/// One WebSocket tunnel: even `i` echoes and half-closes, odd `i` has its
/// server reset the connection after one byte.
async fn one_tunnel(fe: std::net::SocketAddr, i: usize) -> bool {
    let echo = i.is_multiple_of(2);
    let path = if echo { "/ws" } else { "/die" };
    let Ok(mut c) = TcpStream::connect(fe).await else {
        return false;
    };
    if c.write_all(ws_request(path).as_bytes()).await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let exchange = async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match c.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
        if !got.starts_with(b"HTTP/1.1 101") || c.write_all(b"ping").await.is_err() {
            return false;
        }
        let _ = c.shutdown().await;
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest).await;
        got.extend_from_slice(&rest);
        !echo || got.ends_with(b"welcomeping")
    };
    tokio::time::timeout(BOUND, exchange).await.unwrap_or(false)
}

fn require_system() -> bool {
    std::env::var("HALYARD_REQUIRE_SYSTEM").is_ok_and(|v| v == "1")
}

/// The binary runs under `prlimit --nofile=32`; 40 clients exhaust its fds.
/// accept() errors are logged and retried, the listener stays up, and once
/// the clients leave a new client is served. This test process keeps its
/// own limit.
#[test]
fn fd_exhaustion_keeps_the_listener_up() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(
            !require_system(),
            "prlimit (util-linux) is required when HALYARD_REQUIRE_SYSTEM=1"
        );
        println!("SKIP fd_exhaustion_keeps_the_listener_up: prlimit not found");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (echo, _t) = rt.block_on(echo_server());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("halyard-proxy-fd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("proxy.toml");
    std::fs::write(
        &cfg,
        format!(
            "[frontends.fe]\nbinds = [\"127.0.0.1:{port}\"]\nbackend = \"be\"\n[backends.be.servers.e]\naddress = \"{echo}\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("prlimit")
        .arg("--nofile=32:32")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_halyard-proxy"))
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, reader) = collect_stderr(&mut child);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    let connect = || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    while connect().is_err() {
        assert!(
            Instant::now() < deadline,
            "proxy did not start: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Hold 40 client connections: the proxy needs 2 fds each, so it runs out.
    let mut held = Vec::new();
    for _ in 0..40 {
        if let Ok(s) = connect() {
            held.push(s);
        }
    }
    while !log.lock().unwrap().contains("accept failed") {
        assert!(
            Instant::now() < deadline,
            "no accept error logged: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
    // The listener is still up and serves again.
    let mut served = false;
    while !served && Instant::now() < deadline {
        if let Ok(mut s) = connect() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"again");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut out = String::new();
            served = s.read_to_string(&mut out).is_ok() && out == "again";
        }
        if !served {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(served, "proxy did not recover: {}", log.lock().unwrap());
    assert!(
        !log.lock().unwrap().contains("panicked"),
        "{}",
        log.lock().unwrap()
    );
}
