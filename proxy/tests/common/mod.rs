//! Loopback helpers for the integration tests: small backends and a config builder.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use halyard_proxy::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every wait in the tests is bounded by this.
pub const BOUND: Duration = Duration::from_secs(20);

/// Runs `serve` on every connection `l` accepts, each in a task of its own.
pub async fn accept_each<F, Fut>(l: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    while let Ok((s, _)) = l.accept().await {
        tokio::spawn(serve(s));
    }
}

/// An HTTP/1.1 backend (hyper) on loopback that answers every request with
/// `answer(&request)`; its address.
pub async fn hyper_backend<F>(answer: F) -> SocketAddr
where
    F: Fn(&hyper::Request<hyper::body::Incoming>) -> hyper::Response<String>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let (a, _) = spawn_server(move |s| {
        let answer = answer.clone();
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = answer(&req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
        }
    })
    .await;
    a
}

/// A loopback backend running [`accept_each`]: its address and task.
pub async fn spawn_server<F, Fut>(serve: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (a, tokio::spawn(accept_each(l, serve)))
}

/// An echo backend; returns its address and task.
pub async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    spawn_server(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = w.shutdown().await;
    })
    .await
}

/// A backend that writes `name\n` and closes.
pub async fn name_server(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (a, tokio::spawn(serve_name(l, name)))
}

/// Serves `name\n` on an existing listener.
pub async fn serve_name(l: TcpListener, name: &'static str) {
    accept_each(l, move |mut s| async move {
        let _ = s.write_all(format!("{name}\n").as_bytes()).await;
        let _ = s.shutdown().await;
    })
    .await
}

/// An HTTP frontend `fe` (to backend `be`) with `extra_frontend` lines,
/// then `backends`.
pub fn http_config(extra_frontend: &str, backends: &str) -> Config {
    let text = format!(
        "[defaults]\ntimeout_connect = \"1s\"\ntimeout_client = \"2s\"\n[frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{extra_frontend}\n{backends}"
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `GET path` with `Host: host` on a kept-alive client connection: the
/// status and the body (bounded).
pub async fn http_get(
    tx: &mut hyper::client::conn::http1::SendRequest<String>,
    host: &str,
    path: &str,
) -> (u16, String) {
    use hyper::body::Body;
    tokio::time::timeout(BOUND, async {
        tx.ready().await.unwrap();
        let req = hyper::Request::get(path)
            .header("host", host)
            .body(String::new())
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(f) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(d) = f.unwrap().into_data() {
                out.extend_from_slice(&d);
            }
        }
        (status, String::from_utf8(out).unwrap())
    })
    .await
    .expect("request bounded")
}

/// The next request head a raw test server got on `s` (without its blank
/// line), taken from `buf`, which keeps what came after it; `None` once the
/// peer closed or failed.
pub async fn next_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads from `s` until what was read ends with `end` (bounded; the peer
/// must not close first).
pub async fn read_until_end(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    while !seen.ends_with(end) {
        let mut chunk = [0u8; 512];
        let n = tokio::time::timeout(BOUND, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    seen
}

/// A raw HTTP/1.1 server for the HTTP counters, answering by path: `/`
/// and others 200 `ok`, `/missing` 404 (keep-alive); `/close` closes
/// without answering (the proxy answers 502), `/half` closes after 3 of
/// its 100 body bytes (a server abort), `/stall` sends 3 of 100 body bytes
/// and keeps the connection open until the proxy closes it.
pub async fn raw_http_server() -> (SocketAddr, JoinHandle<()>) {
    spawn_server(|mut s| async move {
        let mut buf = Vec::new();
        while let Some(head) = next_head(&mut s, &mut buf).await {
            let path = head.split(' ').nth(1).unwrap_or("/");
            let partial = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc";
            let answer: &[u8] = match path {
                "/close" => return,
                "/half" => {
                    let _ = s.write_all(partial).await;
                    return;
                }
                "/stall" => {
                    let _ = s.write_all(partial).await;
                    let _ = s.read_to_end(&mut buf).await;
                    return;
                }
                "/missing" => b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno",
                _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            };
            if s.write_all(answer).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Sends `request` on a new connection and returns everything read until
/// the peer closes (bounded).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    tokio::time::timeout(BOUND, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("exchange bounded")
}

/// A loopback port that nothing listens on (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Connects, reads everything until EOF (bounded), returns it.
pub async fn fetch(addr: SocketAddr) -> String {
    tokio::time::timeout(BOUND, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    })
    .await
    .expect("fetch bounded")
}

/// `[frontends.fe]` on an ephemeral port to backend `be`, plus `backend_toml`.
pub fn config(frontend_extra: &str, backend_toml: &str) -> Config {
    let text = format!(
        "[defaults]\ntimeout_connect = \"1s\"\ntimeout_queue = \"2s\"\n\n[frontends.fe]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{frontend_extra}\n\n{backend_toml}\n"
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `[backends.be.servers.NAME] address = ADDR` lines plus `extra` for each.
pub fn servers(list: &[(&str, SocketAddr, &str)]) -> String {
    let mut out = String::new();
    for (n, a, extra) in list {
        out.push_str(&format!(
            "[backends.be.servers.{n}]\naddress = \"{a}\"\n{extra}\n"
        ));
    }
    out
}

/// Collects a child's stderr, line by line, into the returned text (read
/// by a thread of its own, which ends with the child's stderr).
pub fn collect_stderr(
    child: &mut std::process::Child,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log2 = log.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (log, reader)
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// True (after printing why) when the `haproxy` binary is missing and
/// `test` must skip; panics instead when HALYARD_REQUIRE_SYSTEM=1.
pub fn haproxy_missing(test: &str) -> bool {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("HALYARD_REQUIRE_SYSTEM").map_or(true, |v| v != "1"),
            "haproxy is required when HALYARD_REQUIRE_SYSTEM=1 (apt-get install haproxy)"
        );
        println!("SKIP {test}: haproxy not found");
    }
    !found
}

/// A child process killed and reaped on drop.
pub struct Killer(pub std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `haproxy -db -f cfg` until the returned guard drops.
pub fn spawn_haproxy(cfg: &std::path::Path) -> Killer {
    let child = std::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Killer(child)
}

/// A loopback port that is free now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 20 ms until it is true (bounded); panics with `what` otherwise.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Thread per core: runs [`halyard_proxy::Proxy::serve_here`] on a new OS
/// thread with its own single-threaded runtime, which keeps running until
/// the returned sender is used or dropped. Returns the worker number too.
pub fn per_core_worker(
    p: halyard_proxy::Proxy,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
    usize,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let r = p.serve_here().await.map_err(|e| e.to_string());
            let ok = r.is_ok();
            ready_tx.send(r).unwrap();
            if ok {
                let _ = stop_rx.await;
            }
        });
    });
    let n = ready_rx
        .recv_timeout(BOUND)
        .expect("worker started in time")
        .expect("serve_here");
    (stop_tx, h, n)
}

/// The RFC 6455 example key and its `Sec-WebSocket-Accept`.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// See [`WS_KEY`].
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket handshake request for `path` (`GET`, HTTP/1.1, with the key).
pub fn ws_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A raw-TCP fake WebSocket server (the handshake is plain HTTP/1.1; no
/// framing after it). By path: `/ws` answers `101` (with `welcome` in the
/// same write), then echoes until EOF and closes its side; `/die` answers
/// `101`, reads one byte and resets the connection; `/noaccept` answers
/// `101` without `Sec-WebSocket-Accept`, `/noconn` without `Connection:
/// upgrade`; anything else gets `200 ok` (keep-alive, the upgrade
/// ignored). Returns its address and the request heads it received, each
/// after the number of its connection (`"0 GET / HTTP/1.1..."`).
pub async fn ws_server() -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = heads.clone();
    let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (a, _t) = spawn_server(move |mut s| {
        let heads = h2.clone();
        let conn = conns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let mut buf = Vec::new();
            while let Some(head) = next_head(&mut s, &mut buf).await {
                heads.lock().unwrap().push(format!("{conn} {head}"));
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let switch = |extra: &str| {
                    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{extra}\r\n")
                };
                let accept = format!("Sec-WebSocket-Accept: {WS_ACCEPT}\r\n");
                let answer = match path.as_str() {
                    "/ws" => switch(&format!("Connection: Upgrade\r\n{accept}")) + "welcome",
                    "/die" => switch(&format!("Connection: Upgrade\r\n{accept}")),
                    "/noaccept" => switch("Connection: Upgrade\r\n"),
                    "/noconn" => switch(&accept),
                    _ => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string(),
                };
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                match path.as_str() {
                    "/ws" => {
                        // What came with the head first, then the rest.
                        if s.write_all(&buf).await.is_err() {
                            return;
                        }
                        let (mut r, mut w) = s.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                        let _ = w.shutdown().await;
                        return;
                    }
                    "/die" => {
                        if buf.is_empty() {
                            let _ = s.read(&mut [0u8; 1024]).await;
                        }
                        let _ = s.set_zero_linger();
                        return;
                    }
                    "/noaccept" | "/noconn" => return,
                    _ => {}
                }
            }
        }
    })
    .await;
    (a, heads)
}
