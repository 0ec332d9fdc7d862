//! HTTP (L7) mode on loopback: per-request balancing over kept-alive server
//! connections, X-Forwarded-For, host/path routing, 503s and recovery,
//! slowloris headers, and HTTP checks.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use halyard_proxy::config::Config;
use halyard_proxy::Proxy;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A hyper backend answering `name|x-forwarded-for|path`; counts its TCP connections.
async fn http_backend(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let (a, accepted, _open) = http_backend_open(name).await;
    (a, accepted)
}

/// [`http_backend`], also counting the connections open now. Path `/slow`
/// answers after 100 ms.
async fn http_backend_open(name: &'static str) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (c2, o2) = (conns.clone(), open.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            c2.fetch_add(1, Ordering::Relaxed);
            o2.fetch_add(1, Ordering::Relaxed);
            let o3 = o2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                    if req.uri().path() == "/slow" {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    Ok::<_, Infallible>(Response::new(format!("{name}|{xff}|{}", req.uri().path())))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
                o3.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    (a, conns, open)
}

/// `n` clients, each sending one `/slow` request at the same time.
async fn slow_burst(fe: SocketAddr, n: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        set.spawn(async move {
            let mut c = Client::new(fe).await;
            assert_eq!(c.get("x", "/slow").await.0, 200);
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

/// A proxy in front of one [`http_backend_open`] server with `server_extra`
/// settings: (proxy, frontend address, accepted, open connections). With
/// `http_reuse = "always"`, so that the new client connections of a burst
/// may take the idle connections of the previous one (under the default
/// `safe`, their first requests would each open a connection).
async fn one_counted_server(
    server_extra: &str,
) -> (Proxy, SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (a, accepted, open) = http_backend_open("a").await;
    let backends = format!(
        "[backends.be]\nhttp_reuse = \"always\"\n{}",
        servers(&[("a", a, server_extra)])
    );
    let p = Proxy::start(http_config("", &backends)).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe, accepted, open)
}

#[tokio::test]
async fn the_pool_keeps_what_was_needed_then_purges_by_halves() {
    let (_p, fe, accepted, open) = one_counted_server("pool_purge_delay = \"200ms\"").await;
    // 80 requests at once need 80 connections; all stay pooled (no cap by
    // default), so a second burst opens none.
    slow_burst(fe, 80).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 80);
    slow_burst(fe, 80).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 80, "all reused");
    // Idle from now: after two periods, half of the idle connections go
    // each period (HAProxy's purge), not all at once.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let n = open.load(Ordering::Relaxed);
        if seen.last() != Some(&n) {
            seen.push(n);
        }
        if n == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "purged: {seen:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen.first(), Some(&80), "{seen:?}");
    assert!(seen.contains(&40), "halved, not closed at once: {seen:?}");
}

#[tokio::test]
async fn pool_max_conn_bounds_the_idle_connections() {
    let (_p, fe, accepted, open) =
        one_counted_server("pool_max_conn = 2\npool_purge_delay = 0").await;
    slow_burst(fe, 6).await;
    eventually("2 idle kept", || open.load(Ordering::Relaxed) == 2).await;
    slow_burst(fe, 6).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 10, "2 reused, 4 new");
    // Sequential requests reuse the kept ones; no purge ever runs.
    let mut c = Client::new(fe).await;
    for _ in 0..5 {
        assert_eq!(c.get("x", "/").await.0, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(accepted.load(Ordering::Relaxed), 10);
    assert_eq!(open.load(Ordering::Relaxed), 2);
}

/// A keep-alive client connection to the proxy.
struct Client(hyper::client::conn::http1::SendRequest<String>);

impl Client {
    async fn new(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client(tx)
    }

    async fn get(&mut self, host: &str, path: &str) -> (u16, String) {
        http_get(&mut self.0, host, path).await
    }
}

#[tokio::test]
async fn per_request_balancing_over_kept_alive_connections() {
    let (a, ca) = http_backend("a").await;
    let (b, cb) = http_backend("b").await;
    let p = Proxy::start(http_config("", &servers(&[("a", a, ""), ("b", b, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe).await;
    let mut names = Vec::new();
    for i in 0..10 {
        let (st, body) = c.get("x", &format!("/r{i}")).await;
        assert_eq!(st, 200);
        let parts: Vec<&str> = body.split('|').collect();
        assert_eq!(parts[1], "127.0.0.1", "X-Forwarded-For");
        assert_eq!(parts[2], format!("/r{i}"));
        names.push(parts[0].to_string());
    }
    // One client connection, requests alternate between servers...
    assert_eq!(names, ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
    // ...over kept-alive server connections (sequential requests: one each).
    assert_eq!(
        (ca.load(Ordering::Relaxed), cb.load(Ordering::Relaxed)),
        (1, 1)
    );
    let st = p.stats();
    assert_eq!(st.frontends[0].total_sessions, 1);
    assert_eq!(st.backends[0].total_sessions, 10);
    eventually("slots released", || p.stats().backends[0].cur_sessions == 0).await;
}

#[tokio::test]
async fn host_and_path_routing() {
    let (d, _) = http_backend("default").await;
    let (api, _) = http_backend("api").await;
    let (st, _) = http_backend("static").await;
    let routes = "[[frontends.fe.routes]]\nhost = \"api.test\"\nbackend = \"api\"\n[[frontends.fe.routes]]\npath_prefix = \"/static/\"\nbackend = \"st\"\n";
    let backends = format!(
        "[backends.be.servers.d]\naddress = \"{d}\"\n[backends.api.servers.a]\naddress = \"{api}\"\n[backends.st.servers.s]\naddress = \"{st}\"\n"
    );
    let p = Proxy::start(http_config(routes, &backends)).await.unwrap();
    let mut c = Client::new(p.local_addrs("fe")[0]).await;
    assert!(
        c.get("API.test:8080", "/static/x")
            .await
            .1
            .starts_with("api|"),
        "host route first"
    );
    assert!(c
        .get("www.test", "/static/x")
        .await
        .1
        .starts_with("static|"));
    assert!(c.get("www.test", "/other").await.1.starts_with("default|"));
}

#[tokio::test]
async fn all_down_is_503_and_recovers() {
    let dead = dead_addr().await;
    let p = Proxy::start(http_config(
        "",
        &format!(
            "[backends.be]\nretries = 1\n{}",
            servers(&[("s", dead, "")])
        ),
    ))
    .await
    .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe).await;
    let (st, body) = c.get("x", "/").await;
    assert_eq!(
        (st, body.as_str()),
        (503, "503 no server could be reached\n")
    );
    // A server is added at runtime; the same client connection works again.
    let (b, _) = http_backend("b").await;
    p.execute(halyard_proxy::runtime::parse_command(&format!("add server be/b {b}")).unwrap())
        .unwrap();
    p.set_state("be", "s", halyard_proxy::backend::AdminState::Maint)
        .unwrap();
    assert_eq!(c.get("x", "/").await.0, 200);
    assert_eq!(p.stats().frontends[0].denied, 1);
}

#[tokio::test]
async fn set_server_addr_leaves_the_pooled_connections_behind() {
    let (a, _) = http_backend("a").await;
    let (b, _) = http_backend("b").await;
    let p = Proxy::start(http_config("", &servers(&[("s", a, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe).await;
    assert_eq!(c.get("x", "/").await.1, "a|127.0.0.1|/");
    // A slow request takes that pooled connection and holds it; the next
    // request opens a second one, pooled when it is done.
    let mut slow = Client::new(fe).await;
    let held = tokio::spawn(async move { slow.get("x", "/slow").await });
    eventually("the slow request is at the server", || {
        p.stats().backends[0].servers[0].cur_sessions == 1
    })
    .await;
    assert_eq!(c.get("x", "/").await.1, "a|127.0.0.1|/");
    let answer = p
        .execute(
            halyard_proxy::runtime::parse_command(&format!(
                "set server be/s addr {} port {}",
                b.ip(),
                b.port()
            ))
            .unwrap(),
        )
        .unwrap();
    assert!(answer.contains("port changed"), "{answer}");
    // The request in flight finishes at a; neither connection to a is
    // used again.
    assert_eq!(held.await.unwrap().1, "a|127.0.0.1|/slow");
    for _ in 0..3 {
        assert_eq!(c.get("x", "/").await.1, "b|127.0.0.1|/");
    }
}

#[tokio::test]
async fn slow_headers_are_dropped_at_timeout_client() {
    let (a, _) = http_backend("a").await;
    let p = Proxy::start(http_config(
        "timeout_client = \"300ms\"",
        &servers(&[("a", a, "")]),
    ))
    .await
    .unwrap();
    let mut s = TcpStream::connect(p.local_addrs("fe")[0]).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, s.read_to_end(&mut out))
        .await
        .expect("closed by timeout client")
        .ok();
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));
    eventually("session closed", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
}

#[tokio::test]
async fn request_bodies_flow_and_a_dying_server_gives_502() {
    // Backend: replies with the number of body bytes it received; path /die
    // makes it drop the connection without answering.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    if req.uri().path() == "/die" {
                        return Err("die");
                    }
                    let mut body = req.into_body();
                    let mut n = 0usize;
                    while let Some(f) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                        if let Ok(d) = f.map_err(|_| "body")?.into_data() {
                            n += d.len();
                        }
                    }
                    Ok::<_, &str>(Response::new(n.to_string()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let p = Proxy::start(http_config("", &servers(&[("a", a, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe).await;
    let body = "x".repeat(300_000);
    let (st, n) = tokio::time::timeout(BOUND, async {
        c.0.ready().await.unwrap();
        let req = Request::post("/upload")
            .header("host", "x")
            .body(body)
            .unwrap();
        let resp = c.0.send_request(req).await.unwrap();
        let st = resp.status().as_u16();
        let mut b = resp.into_body();
        let mut out = Vec::new();
        while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut b).poll_frame(cx)).await {
            if let Ok(d) = f.unwrap().into_data() {
                out.extend_from_slice(&d);
            }
        }
        (st, String::from_utf8(out).unwrap())
    })
    .await
    .unwrap();
    assert_eq!((st, n.as_str()), (200, "300000"));
    let mut c2 = Client::new(fe).await;
    assert_eq!(c2.get("x", "/die").await.0, 502);
    // The proxy and the server connection pool recover.
    assert_eq!(c2.get("x", "/ok").await, (200, "0".to_string()));
    eventually("slots released", || p.stats().backends[0].cur_sessions == 0).await;
}

/// A response body fed by a channel (the test holds the sender).
struct ChanBody(tokio::sync::mpsc::Receiver<hyper::body::Bytes>);

impl Body for ChanBody {
    type Data = hyper::body::Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<hyper::body::Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn shutdown_sessions_aborts_in_flight_http_responses() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let senders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = senders.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let s2 = s2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let s2 = s2.clone();
                    async move {
                        let (tx, rx) = tokio::sync::mpsc::channel(4);
                        tx.send(hyper::body::Bytes::from_static(b"first"))
                            .await
                            .unwrap();
                        s2.lock().unwrap().push(tx); // never finishes on its own
                        Ok::<_, Infallible>(Response::new(ChanBody(rx)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let backend = servers(&[("a", a, "on_marked_down = \"shutdown-sessions\"")]);
    let p = Proxy::start(http_config("", &backend)).await.unwrap();
    let mut c = Client::new(p.local_addrs("fe")[0]).await;
    c.0.ready().await.unwrap();
    let req = Request::get("/stream")
        .header("host", "x")
        .body(String::new())
        .unwrap();
    let resp = tokio::time::timeout(BOUND, c.0.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    p.set_health("be", "a", halyard_proxy::health::Operational::Down)
        .unwrap();
    let next = tokio::time::timeout(
        BOUND,
        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)),
    )
    .await
    .expect("aborted, not hanging");
    assert!(
        matches!(next, Some(Err(_)) | None),
        "the response must not continue"
    );
    eventually("slot released", || p.stats().backends[0].cur_sessions == 0).await;
    drop(senders);
}

#[tokio::test]
async fn per_core_workers_serve_http_with_their_own_server_connections() {
    let (a, ca) = http_backend("a").await;
    let text = format!(
        "[global]\nthreads = 2\n[defaults]\ntimeout_connect = \"1s\"\ntimeout_client = \"2s\"\n[frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n[backends.be]\nhttp_reuse = \"always\"\n{}",
        servers(&[("a", a, "")])
    );
    let p = Proxy::start(Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let (stop, worker, _) = per_core_worker(p.clone());
    // Sequential keep-alive clients until both workers have served some.
    let mut clients = 0;
    while p.accepted_per_worker().contains(&0) {
        assert!(clients < 200, "{:?}", p.accepted_per_worker());
        clients += 1;
        let mut c = Client::new(fe).await;
        for i in 0..3 {
            let (st, body) = c.get("x", &format!("/c{clients}/{i}")).await;
            assert_eq!(st, 200);
            assert_eq!(body, format!("a|127.0.0.1|/c{clients}/{i}"));
        }
    }
    eventually("slots released", || p.stats().backends[0].cur_sessions == 0).await;
    // Requests are sequential, so each worker thread needed one server
    // connection of its own (pools are per thread), reused afterwards
    // (`http_reuse = "always"`: also by the first request of each client).
    assert_eq!(ca.load(Ordering::Relaxed), 2);
    assert_eq!(p.stats().backends[0].total_sessions, 3 * clients as u64);
    tokio::time::timeout(BOUND, p.soft_stop()).await.unwrap();
    stop.send(()).unwrap();
    worker.join().unwrap();
}

/// A backend that answers one request per connection with a kept-alive
/// response (no `Connection: close`), then closes the connection when told
/// to: the proxy has pooled it by then, and must see the close before
/// reusing it.
async fn one_shot_backend() -> (SocketAddr, Arc<AtomicUsize>, Arc<tokio::sync::Notify>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let close_now = Arc::new(tokio::sync::Notify::new());
    let (c2, n2) = (closed.clone(), close_now.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (c2, n2) = (c2.clone(), n2.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                n2.notified().await;
                drop(s);
                c2.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    (a, closed, close_now)
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_not_reused() {
    let (a, closed, close_now) = one_shot_backend().await;
    let p = Proxy::start(http_config("", &servers(&[("a", a, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = Client::new(fe).await;
    for i in 0..5 {
        let (st, body) = c.get("x", "/").await;
        assert_eq!((st, body.as_str()), (200, "ok"), "request {i}");
        // The server closes the connection the proxy has pooled.
        close_now.notify_one();
        eventually("backend closed", || closed.load(Ordering::Relaxed) == i + 1).await;
    }
    let st = p.stats();
    assert_eq!(st.backends[0].total_sessions, 5);
    eventually("slots released", || p.stats().backends[0].cur_sessions == 0).await;
}

/// The `cols` of `show stat`'s line for `px`/`sv`.
fn csv_row(csv: &str, px: &str, sv: &str, cols: &[&str]) -> Vec<String> {
    let header: Vec<&str> = csv.lines().next().unwrap()[2..].split(',').collect();
    let line = csv
        .lines()
        .find(|l| l.starts_with(&format!("{px},{sv},")))
        .unwrap_or_else(|| panic!("no line {px}/{sv}:\n{csv}"));
    let fields: Vec<&str> = line.split(',').collect();
    cols.iter()
        .map(|c| fields[header.iter().position(|h| h == c).unwrap()].to_string())
        .collect()
}

/// Session and request rates (HAProxy's `rate`, `rate_max`, `req_rate`,
/// `req_rate_max`): five requests on one kept-alive connection and two
/// more connections count 3 sessions and 7 requests on the frontend and 7
/// sessions (one per request, as `stot`) on the backend and its server.
/// Read within the second of the first event, the rates are the counts.
#[tokio::test]
async fn session_and_request_rates_in_csv() {
    let (raw, _t) = raw_http_server().await;
    let p = Proxy::start(http_config("", &servers(&[("a", raw, "")])))
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(fe).await.unwrap();
    for _ in 0..5 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_until_end(&mut s, b"ok").await;
    }
    for _ in 0..2 {
        let answer = raw_exchange(
            fe,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let csv = p.stats().to_csv();
    let cols = [
        "stot",
        "rate",
        "rate_lim",
        "rate_max",
        "req_rate",
        "req_rate_max",
    ];
    let row = |px: &str, sv: &str| csv_row(&csv, px, sv, &cols).join(" ");
    if started.elapsed() < std::time::Duration::from_millis(900) {
        assert_eq!(row("fe", "FRONTEND"), "3 3 0 3 7 7");
        assert_eq!(row("be", "a"), "7 7  7  ");
        assert_eq!(row("be", "BACKEND"), "7 7  7  ");
    } else {
        println!("exchanges took {:?}: rates not compared", started.elapsed());
    }
    // Whatever the timing, the maxima saw every event in some second.
    let st = p.stats();
    assert!((1..=3).contains(&st.frontends[0].session_rate_max));
    assert!((1..=7).contains(&st.frontends[0].request_rate_max));
    assert!((1..=7).contains(&st.backends[0].session_rate_max));
}

/// HAProxy's HTTP counters, as HAProxy 2.6.12 counts the same exchanges
/// (checked against the binary): every response on the frontend (the
/// proxy's own 400, 502, 503 too) and on the backend that had the request;
/// on a server only the responses it sent; `eresp` for a server that
/// closed before answering and for a cut response body (also `srv_abrt`);
/// `cli_abrt` for a client gone during the body; `ereq` for a malformed
/// request. TCP objects show no HTTP counters.
#[tokio::test]
async fn http_counters_in_csv_and_prometheus() {
    let (raw, _t) = raw_http_server().await;
    let (echo, _e) = echo_server().await;
    let routes = "[[frontends.fe.routes]]\npath_prefix = \"/none\"\nbackend = \"none\"\n\
        [[frontends.fe.routes]]\npath_prefix = \"/close\"\nbackend = \"bad\"\n\
        [[frontends.fe.routes]]\npath_prefix = \"/half\"\nbackend = \"bad\"\n\
        [[frontends.fe.routes]]\npath_prefix = \"/stall\"\nbackend = \"bad\"\n";
    let backends = format!(
        "{}[backends.none]\n[backends.bad.servers.r]\naddress = \"{raw}\"\n\
         [frontends.t]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"tb\"\n\
         [backends.tb.servers.e]\naddress = \"{echo}\"\n",
        servers(&[("a", raw, "")])
    );
    let p = Proxy::start(http_config(routes, &backends)).await.unwrap();
    let fe = p.local_addrs("fe")[0];
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for (path, status) in [
        ("/", "200"),
        ("/missing", "404"),
        ("/none", "503"),
        ("/close", "502"),
        ("/half", "200"),
    ] {
        let answer = raw_exchange(fe, get(path).as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer}"
        );
    }
    let bad = raw_exchange(fe, b"GARBAGE\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // The client leaves during the body.
    let mut s = TcpStream::connect(fe).await.unwrap();
    s.write_all(get("/stall").as_bytes()).await.unwrap();
    read_until_end(&mut s, b"abc").await;
    drop(s);
    // Both counted when their connections end, maybe after the client saw it.
    eventually("the client abort and the malformed request counted", || {
        let st = p.stats();
        let fe_errors = st
            .frontends
            .iter()
            .map(|f| f.http.as_ref().map_or(0, |h| h.request_errors));
        st.backends
            .iter()
            .any(|b| b.name == "bad" && b.http.as_ref().is_some_and(|h| h.client_aborts == 1))
            && fe_errors.sum::<u64>() == 1
    })
    .await;

    let csv = p.stats().to_csv();
    let cols = [
        "req_tot",
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
        "ereq",
        "eresp",
        "cli_abrt",
        "srv_abrt",
    ];
    let row = |px: &str, sv: &str| csv_row(&csv, px, sv, &cols).join(" ");
    assert_eq!(row("fe", "FRONTEND"), "7 0 3 0 2 2 0 1   ");
    assert_eq!(row("be", "a"), "2 0 1 0 1 0 0  0 0 0");
    assert_eq!(row("be", "BACKEND"), "2 0 1 0 1 0 0  0 0 0");
    assert_eq!(row("none", "BACKEND"), "1 0 0 0 0 1 0  0 0 0");
    // The 502 is the proxy's: on the backend, not on the server.
    assert_eq!(row("bad", "r"), "2 0 2 0 0 0 0  2 1 1");
    assert_eq!(row("bad", "BACKEND"), "3 0 2 0 0 1 0  2 1 1");
    // TCP mode: only a frontend's req_tot, 0, as HAProxy prints it.
    assert_eq!(row("t", "FRONTEND"), "0          ");
    assert_eq!(row("tb", "e"), "          ");
    assert_eq!(row("tb", "BACKEND"), "          ");

    let prom = p.stats().to_prometheus();
    for sample in [
        "haproxy_frontend_http_requests_total{proxy=\"fe\"} 7",
        "haproxy_frontend_request_errors_total{proxy=\"fe\"} 1",
        "haproxy_frontend_http_responses_total{proxy=\"fe\",code=\"4xx\"} 2",
        "haproxy_frontend_http_responses_total{proxy=\"fe\",code=\"5xx\"} 2",
        "haproxy_backend_http_requests_total{proxy=\"bad\"} 3",
        "haproxy_backend_http_responses_total{proxy=\"none\",code=\"5xx\"} 1",
        "haproxy_backend_http_responses_total{proxy=\"bad\",code=\"other\"} 0",
        "haproxy_backend_response_errors_total{proxy=\"bad\"} 2",
        "haproxy_backend_client_aborts_total{proxy=\"bad\"} 1",
        "haproxy_backend_server_aborts_total{proxy=\"bad\"} 1",
        "haproxy_server_http_responses_total{proxy=\"be\",server=\"a\",code=\"4xx\"} 1",
        "haproxy_server_http_responses_total{proxy=\"bad\",server=\"r\",code=\"5xx\"} 0",
        "haproxy_server_response_errors_total{proxy=\"bad\",server=\"r\"} 2",
        "haproxy_server_client_aborts_total{proxy=\"bad\",server=\"r\"} 1",
        "haproxy_server_server_aborts_total{proxy=\"bad\",server=\"r\"} 1",
    ] {
        assert!(prom.contains(&format!("{sample}\n")), "{sample}\n{prom}");
    }
    // As in HAProxy: TCP proxies have no HTTP families, servers no
    // http_requests_total.
    for l in prom.lines().filter(|l| l.contains("proxy=\"t")) {
        assert!(
            !["http_", "request_errors", "response_errors", "aborts"]
                .iter()
                .any(|f| l.contains(f)),
            "{l}"
        );
    }
    assert!(!prom.contains("haproxy_server_http_requests_total"));
}
