//! Access logs on loopback: a UDP socket on 127.0.0.1 is the syslog
//! receiver; TCP sessions and HTTP requests must produce HAProxy 2.6's
//! `option tcplog` / `option httplog` lines with the termination states
//! HAProxy 2.6.12 printed for the same cases (`log stdout format raw`,
//! `haproxy -db -f cfg`; the cases and HAProxy's lines are in each test's
//! doc comment). The variable parts (dates, ports, timers, pid) are matched
//! by their shape, the rest exactly.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use halyard_proxy::config::Config;
use halyard_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `s` with every run of digits replaced by `N`.
fn shape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A syslog receiver and the `[global]` line that sends to it.
async fn receiver() -> (UdpSocket, String) {
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let line = format!(
        "[global]\nlog = {{ target = \"udp://{}\", facility = \"local0\" }}\n",
        u.local_addr().unwrap()
    );
    (u, line)
}

/// The next datagram's message, after checking its RFC 3164 header
/// (`<134>Nov 27 11:17:11 haproxy[482]: `, HAProxy's) and its newline.
async fn next_line(u: &UdpSocket) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), u.recv(&mut buf))
        .await
        .expect("a log line within 10 s")
        .unwrap();
    let text = String::from_utf8(buf[..n].to_vec()).unwrap();
    let (header, msg) = text.split_once("]: ").expect("a syslog header");
    let month = &header[5..8];
    assert!(MONTHS.contains(&month), "{text}");
    assert_eq!(
        shape(&header.replace(month, "Mon")).replace("Mon  N", "Mon N"),
        "<N>Mon N N:N:N haproxy[N",
        "{text}"
    );
    assert!(header.starts_with("<134>"), "local0.info: {text}");
    msg.strip_suffix('\n')
        .expect("newline-terminated")
        .to_string()
}

/// The line's fields, its client (`%ci:%cp`) and date (`[%t]`) checked by
/// shape; returns the fields from `%ft` on.
fn fields(line: &str, client: SocketAddr) -> Vec<String> {
    let f: Vec<String> = line.split(' ').map(str::to_string).collect();
    assert_eq!(f[0], client.to_string(), "{line}");
    let date = shape(&f[1]);
    assert!(
        MONTHS.iter().any(|m| date == format!("[N/{m}/N:N:N:N.N]")),
        "{line}"
    );
    f[2..].to_vec()
}

async fn start(text: &str) -> (Proxy, SocketAddr) {
    let c = Config::from_toml(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let p = Proxy::start(c).await.unwrap();
    let a = p.local_addrs("fe")[0];
    (p, a)
}

fn tcp_config(global: &str, defaults: &str, server: SocketAddr) -> String {
    format!(
        "{global}[defaults]\ntimeout_connect = \"1s\"\n{defaults}\n[frontends.fe]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\nlog_format = \"tcplog\"\n[backends.be.servers.s1]\naddress = \"{server}\"\n"
    )
}

/// A TCP session closed normally: HAProxy 2.6.12 printed
/// `127.0.0.1:60012 [27/Nov/2026:11:15:15.310] ft_tcp bk_tcp/s1 1/0/0 4 --
/// 1/1/0/0/0 0/0` (`%B` the server's bytes; `%ac`/`%fc` count the session
/// itself, `%bc`/`%sc` no longer).
#[tokio::test]
async fn tcp_session_logs_a_tcplog_line() {
    let (u, global) = receiver().await;
    let (echo, _) = echo_server().await;
    let (p, addr) = start(&tcp_config(&global, "", echo)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"hello").await.unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"hello");
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[..2], ["fe", "be/s1"], "{line}");
    assert_eq!(shape(&f[2]), "N/N/N", "{line}");
    assert_eq!(f[3..], ["5", "--", "1/1/0/0/0", "0/0"], "{line}");
    assert_eq!(p.dropped_logs(), 0);
}

/// `timeout client` in the data phase: `cD` (HAProxy 2.6.12: `1/0/1001 6
/// cD 1/1/0/0/0 0/0` with `timeout client 1s`).
#[tokio::test]
async fn client_timeout_is_cd() {
    let (u, global) = receiver().await;
    // A server that says hello and then waits for the client.
    let (server, _) = spawn_server(|mut s| async move {
        let _ = s.write_all(b"hi").await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    })
    .await;
    let (_p, addr) = start(&tcp_config(&global, "timeout_client = \"200ms\"", server)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[3..], ["2", "cD", "1/1/0/0/0", "0/0"], "{line}");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
}

/// A server that dies mid-stream (a reset after sending a byte): `SD`
/// (HAProxy 2.6.12: `1/0/201 1 SD 1/1/0/0/0 0/0`).
#[tokio::test]
async fn server_reset_mid_stream_is_sd() {
    let (u, global) = receiver().await;
    let (server, _) = spawn_server(|mut s| async move {
        let _ = s.write_all(b"x").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        #[allow(deprecated)] // linger 0 does not block: it is the point (RST)
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    })
    .await;
    let (_p, addr) = start(&tcp_config(&global, "", server)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out).await;
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[..2], ["fe", "be/s1"], "{line}");
    assert_eq!(f[3..], ["1", "SD", "1/1/0/0/0", "0/0"], "{line}");
}

/// Refused connects in TCP mode with `retries 1`: `SC`, the server named,
/// `%Tc` -1 and one retry (HAProxy 2.6.12: `bk_refused/s1 1/-1/500 0 SC
/// 1/1/0/0/1 0/0`).
#[tokio::test]
async fn refused_connects_are_sc() {
    let (u, global) = receiver().await;
    let dead = dead_addr().await;
    let (_p, addr) = start(&tcp_config(
        &global,
        "retries = 1\nredispatch = false",
        dead,
    ))
    .await;
    let c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[1], "be/s1", "{line}");
    assert_eq!(shape(&f[2]), "N/-N/N", "{line}");
    assert_eq!(f[3..], ["0", "SC", "1/1/0/0/1", "0/0"], "{line}");
}

fn http_text(global: &str, defaults: &str, server: SocketAddr) -> String {
    format!(
        "{global}[defaults]\ntimeout_connect = \"1s\"\n{defaults}\n[frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\nlog_format = \"httplog\"\n[backends.be.servers.s1]\naddress = \"{server}\"\n"
    )
}

/// A 200: HAProxy 2.6.12 printed `ft_http bk_http/s1 0/0/0/0/0 200 54 - -
/// ---- 1/1/0/0/0 0/0 "GET /ok HTTP/1.1"` (no captures: `- -` for `%CC
/// %CS`, and one space before the request where `%hr %hs` print nothing).
/// halyard's `%B` is the head as forwarded plus the body, not HAProxy's
/// HTX count. The second request on the connection reuses the server
/// connection (`%Tc` 0).
#[tokio::test]
async fn http_requests_log_httplog_lines() {
    let (u, global) = receiver().await;
    let (server, _) = raw_http_server().await;
    let (_p, addr) = start(&http_text(&global, "", server)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"GET /ok?a=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    for (status, bytes, uri) in [("200", "40", "/ok?a=1"), ("404", "47", "/missing")] {
        let line = next_line(&u).await;
        let f = fields(&line, me);
        assert_eq!(f[..2], ["fe", "be/s1"], "{line}");
        assert_eq!(shape(&f[2]), "N/N/N/N/N", "{line}");
        let want = [status, bytes, "-", "-", "----", "1/1/0/0/0", "0/0"];
        assert_eq!(f[3..10], want, "{line}");
        assert_eq!(
            f[10..].join(" "),
            format!("\"GET {uri} HTTP/1.1\""),
            "{line}"
        );
        if status == "404" {
            assert!(f[2].starts_with("0/0/0/"), "a reused connection: {line}");
        }
    }
}

/// A server that refuses: 503 `SC--` with the server named, `%Tc` and
/// `%Tr` -1 (HAProxy 2.6.12: `bk_refused_http/s1 0/0/-1/-1/503 503 217 - -
/// SC-- 1/1/0/0/1 0/0 "GET / HTTP/1.1"`).
#[tokio::test]
async fn http_refused_is_sc_503() {
    let (u, global) = receiver().await;
    let dead = dead_addr().await;
    let (_p, addr) = start(&http_text(&global, "retries = 1\nredispatch = false", dead)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"HTTP/1.1 503"));
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[1], "be/s1", "{line}");
    assert_eq!(shape(&f[2]), "N/N/-N/-N/N", "{line}");
    assert_eq!(f[3], "503", "{line}");
    assert_eq!(f[5..10], ["-", "-", "SC--", "1/1/0/0/1", "0/0"], "{line}");
    assert_eq!(f[10..].join(" "), "\"GET / HTTP/1.1\"", "{line}");
}

/// A server that closes without answering: 502 `SH--`; one that cuts its
/// body: the status it sent and `SD--` (HAProxy 2.6.12: `0/0/0/-1/0 502
/// 209 - - SH--` and `0/0/0/0/100 200 54 - - SD--`).
#[tokio::test]
async fn http_server_failures_are_sh_and_sd() {
    let (u, global) = receiver().await;
    let (server, _) = raw_http_server().await;
    let (_p, addr) = start(&http_text(&global, "", server)).await;
    for (path, status, term, timers) in [
        ("/close", "502", "SH--", "N/N/N/-N/N"),
        ("/half", "200", "SD--", "N/N/N/N/N"),
    ] {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut out)).await;
        let line = next_line(&u).await;
        let f = fields(&line, me);
        assert_eq!(
            (shape(&f[2]).as_str(), f[3].as_str()),
            (timers, status),
            "{line}"
        );
        assert_eq!(f[7], term, "{line}");
    }
}

/// `timeout queue` with the server full (`maxconn 1`): `<NOSRV>`, `sQ`,
/// `%Tc` -1, and `%bq` 1 (HAProxy 2.6.12: `bk_tcp_q/<NOSRV> 402/-1/401 0
/// sQ 2/2/1/0/0 0/1`: both connections on the process and the frontend,
/// the first one's session on the backend).
#[tokio::test]
async fn queue_timeout_is_sq() {
    let (u, global) = receiver().await;
    let (echo, _) = echo_server().await;
    let text = tcp_config(&global, "timeout_queue = \"200ms\"", echo) + "maxconn = 1\n";
    let (_p, addr) = start(&text).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"a").await.unwrap();
    let mut one = [0u8; 1];
    first.read_exact(&mut one).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    let me = second.local_addr().unwrap();
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[1], "be/<NOSRV>", "{line}");
    assert_eq!(shape(&f[2]), "N/-N/N", "{line}");
    assert_eq!(f[3..], ["0", "sQ", "2/2/1/0/0", "0/1"], "{line}");
}

/// The proxy's own cuts (HAProxy 2.6.12, `option tcplog`): `set server
/// ... health down` with `on-marked-down shutdown-sessions` logs `D-`, a
/// hard stop (`hard-stop-after`) `K-`, both without a phase.
#[tokio::test]
async fn marked_down_and_hard_stop_are_d_and_k() {
    let (u, global) = receiver().await;
    let (echo, _) = echo_server().await;
    let text = tcp_config(&global, "", echo) + "on_marked_down = \"shutdown-sessions\"\n";
    let (p, addr) = start(&text).await;
    for (cut, term) in [("down", "D-"), ("stop", "K-")] {
        if cut == "stop" {
            p.set_health("be", "s1", halyard_proxy::health::Operational::Up)
                .unwrap();
        }
        let mut c = TcpStream::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        c.write_all(b"a").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        if cut == "down" {
            p.set_health("be", "s1", halyard_proxy::health::Operational::Down)
                .unwrap();
        } else {
            p.hard_stop();
        }
        let line = next_line(&u).await;
        let f = fields(&line, me);
        assert_eq!(f[3..5], ["1", term], "{line}");
    }
}

/// A malformed request, which hyper answers with 400: HAProxy 2.6.12
/// printed `ft_http ft_http/<NOSRV> -1/-1/-1/-1/0 400 0 - - PR-- 1/1/0/0/0
/// 0/0 "<BADREQ>"`.
#[tokio::test]
async fn bad_request_is_pr() {
    let (u, global) = receiver().await;
    let (server, _) = raw_http_server().await;
    let (_p, addr) = start(&http_text(&global, "", server)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut out)).await;
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[..2], ["fe", "fe/<NOSRV>"], "{line}");
    assert_eq!(shape(&f[2]), "-N/-N/-N/-N/N", "{line}");
    let want = [
        "400",
        "0",
        "-",
        "-",
        "PR--",
        "1/1/0/0/0",
        "0/0",
        "\"<BADREQ>\"",
    ];
    assert_eq!(f[3..], want, "{line}");
}

/// A refused connect redispatched to another server: the response's
/// state (`----`), not the failed attempt's, and `+1` retries (HAProxy's
/// `%rc` with a redispatch; roundrobin redispatches every retry).
#[tokio::test]
async fn redispatched_request_logs_plus_one_and_its_own_state() {
    let (u, global) = receiver().await;
    let dead = dead_addr().await;
    let (live, _) = raw_http_server().await;
    let text = http_text(&global, "retries = 1\nredispatch = true", dead)
        + &format!("[backends.be.servers.s2]\naddress = \"{live}\"\n");
    let (_p, addr) = start(&text).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let out = raw_exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        seen.push(next_line(&u).await);
    }
    let line = seen
        .iter()
        .find(|l| l.contains("/+1 "))
        .unwrap_or_else(|| panic!("a redispatch in {seen:?}"));
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f[3], "be/s2", "{line}");
    assert_eq!(f[5..10], ["200", "40", "-", "-", "----"], "{line}");
    assert_eq!(f[10], "1/1/0/0/+1", "{line}");
}

/// No usable server (the only one in maintenance): `<NOSRV>`, `%Tw` and
/// `%Tc` -1, `SC` (HAProxy 2.6.12, a backend without servers:
/// `bk_tcp_nosrv/<NOSRV> -1/-1/0 0 SC 1/1/0/0/0 0/0`).
#[tokio::test]
async fn no_server_is_sc_without_a_wait() {
    let (u, global) = receiver().await;
    let (echo, _) = echo_server().await;
    let (_p, addr) = start(&(tcp_config(&global, "", echo) + "disabled = true\n")).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let me = c.local_addr().unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut out)).await;
    let line = next_line(&u).await;
    let f = fields(&line, me);
    assert_eq!(f[1], "be/<NOSRV>", "{line}");
    assert_eq!(shape(&f[2]), "-N/-N/N", "{line}");
    assert_eq!(f[3..], ["0", "SC", "1/1/0/0/0", "0/0"], "{line}");
}

/// `target = "stdout"` in the binary: the line alone on standard output
/// (HAProxy's `log stdout format raw`), the binary's own logs staying on
/// standard error.
#[tokio::test]
async fn the_binary_logs_to_stdout() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let (echo, _) = echo_server().await;
    let fe = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = std::env::temp_dir().join(format!("halyard-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("stdout.toml");
    let text = tcp_config("[global]\nlog = { target = \"stdout\" }\n", "", echo)
        .replace("127.0.0.1:0", &fe.to_string());
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_halyard-proxy"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stderr, _) = collect_stderr(&mut child);
    let stdout = child.stdout.take().unwrap();
    let _child = Killer(child);
    eventually("halyard-proxy running", || {
        stderr.lock().unwrap().contains("halyard-proxy running")
    })
    .await;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut c = TcpStream::connect(fe).await.unwrap();
    let me = c.local_addr().unwrap();
    c.write_all(b"hey").await.unwrap();
    c.shutdown().await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let line = rx.recv_timeout(BOUND).expect("a line on stdout");
    let f = fields(&line, me);
    assert_eq!(f[..2], ["fe", "be/s1"], "{line}");
    assert_eq!(f[3..], ["3", "--", "1/1/0/0/0", "0/0"], "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose connects hang: a listener with a full accept queue
/// (backlog 0 and connections nobody accepts), so that further SYNs are
/// dropped. Keep the returned sockets alive.
async fn hanging_server() -> (
    SocketAddr,
    Vec<tokio::net::TcpStream>,
    tokio::net::TcpListener,
) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = s.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(c) => fillers.push(c.unwrap()),
            Err(_) => return (addr, fillers, l),
        }
    }
    panic!("the accept queue of {addr} never filled");
}

/// A client that leaves while its request is queued or connecting: the
/// request is cancelled (halyard's `option abortonclose`) and logged as
/// HAProxy 2.6.12 with `option abortonclose` logs it, status -1 and no
/// bytes: `be_q/<NOSRV> 0/501/-1/-1/501 -1 0 - - CQ-- 2/2/1/0/0 0/1` (the
/// first request holding the only slot, `maxconn 1`), and `be_c/s1
/// 0/0/-1/-1/500 -1 0 - - CC-- 2/1/0/0/0 0/0` (without `abortonclose`,
/// HAProxy 2.6.12 kept both requests and logged their outcome). The slot
/// of the request that was connecting is given back.
#[tokio::test]
async fn client_leaving_while_queued_or_connecting_is_cq_and_cc() {
    let (u, global) = receiver().await;
    let (server, _fillers, _l) = hanging_server().await;
    let text = http_text(&global, "timeout_connect = \"30s\"", server) + "maxconn = 1\n";
    let text = text.replace("timeout_connect = \"1s\"\n", "");
    let (p, addr) = start(&text).await;
    let be = |p: &Proxy| p.stats().backends[0].clone();
    let mut connecting = TcpStream::connect(addr).await.unwrap();
    let me_c = connecting.local_addr().unwrap();
    connecting
        .write_all(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the first request connecting", || be(&p).cur_sessions == 1).await;
    let mut queued = TcpStream::connect(addr).await.unwrap();
    let me_q = queued.local_addr().unwrap();
    queued
        .write_all(b"GET /q HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the second request queued", || be(&p).queue_cur == 1).await;
    drop(queued);
    let line = next_line(&u).await;
    let f = fields(&line, me_q);
    assert_eq!(f[..2], ["fe", "be/<NOSRV>"], "{line}");
    assert_eq!(shape(&f[2]), "N/N/-N/-N/N", "{line}");
    let want = ["-1", "0", "-", "-", "CQ--", "2/2/1/0/0", "0/1"];
    assert_eq!(f[3..10], want, "{line}");
    assert_eq!(f[10..].join(" "), "\"GET /q HTTP/1.1\"", "{line}");
    // It left the queue at once, not when the slot it waited for freed.
    eventually("the queue empty, the slot still held", || {
        let b = be(&p);
        (b.queue_cur, b.cur_sessions) == (0, 1)
    })
    .await;
    drop(connecting);
    let line = next_line(&u).await;
    let f = fields(&line, me_c);
    assert_eq!(f[..2], ["fe", "be/s1"], "{line}");
    assert_eq!(shape(&f[2]), "N/N/-N/-N/N", "{line}");
    let want = ["-1", "0", "-", "-", "CC--", "1/1/0/0/0", "0/0"];
    assert_eq!(f[3..10], want, "{line}");
    assert_eq!(f[10..].join(" "), "\"GET /c HTTP/1.1\"", "{line}");
    eventually("the slot given back, the queue empty", || {
        let b = be(&p);
        (b.cur_sessions, b.queue_cur, b.servers[0].cur_sessions) == (0, 0, 0)
    })
    .await;
}

/// Lines the log socket refuses are dropped and counted: a UDP target
/// with nobody listening answers ICMP port unreachable, which fails the
/// next `send`. The count is `Proxy::dropped_logs()`, the stats
/// snapshot's `dropped_logs` and HAProxy 2.6's
/// `haproxy_process_dropped_logs_total` (`DroppedLogs` in `show info`).
#[tokio::test]
async fn dropped_lines_are_counted_in_the_stats() {
    let gone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = gone.local_addr().unwrap();
    drop(gone);
    let global = format!("[global]\nlog = {{ target = \"udp://{target}\" }}\n");
    let (echo, _) = echo_server().await;
    let (p, addr) = start(&tcp_config(&global, "", echo)).await;
    for _ in 0..50 {
        if p.dropped_logs() > 0 {
            break;
        }
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"a").await.unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await.unwrap();
        drop(c);
        eventually("the session ended", || {
            p.stats().frontends[0].cur_sessions == 0
        })
        .await;
    }
    let dropped = p.dropped_logs();
    assert!(dropped > 0, "no line dropped");
    let snap = p.stats();
    assert_eq!(snap.dropped_logs, dropped);
    let metrics = snap.to_prometheus();
    assert!(
        metrics.contains(&format!(
            "# TYPE haproxy_process_dropped_logs_total counter\nhaproxy_process_dropped_logs_total {dropped}\n"
        )),
        "{metrics}"
    );
}

/// Connections closed for their PROXY header (`accept_proxy`) are not
/// sessions; HAProxy 2.6.12 (`bind ... accept-proxy`, `option httplog` or
/// `tcplog`) logs each in a line of its own, the bind line's number after
/// the frontend: `127.0.0.1:60406 [27/Nov/2026:12:06:05.535] fe_p/1:
/// Received something which does not look like a PROXY protocol header`,
/// `... Received an invalid PROXY protocol header` (`PROXY TCP4
/// 1.2.3.4\r\n`), `... Connection closed while waiting for PROXY protocol
/// header` (closed without a byte), `... Truncated PROXY protocol header
/// received` (closed in the middle) and `... Timeout while waiting for
/// PROXY protocol header` (`timeout client`).
#[tokio::test]
async fn refused_proxy_headers_log_why() {
    let (u, global) = receiver().await;
    let (echo, _) = echo_server().await;
    for mode in ["tcp", "http"] {
        let text = http_text(&global, "timeout_client = \"300ms\"", echo)
            .replace("mode = \"http\"", &format!("mode = \"{mode}\""))
            .replace(
                "log_format = \"httplog\"",
                &format!("log_format = \"{mode}log\"\naccept_proxy = true"),
            );
        let (p, addr) = start(&text).await;
        let cases: [(&[u8], &str); 5] = [
            (
                b"GARBAGE\r\n",
                "Received something which does not look like a PROXY protocol header",
            ),
            (
                b"PROXY TCP4 1.2.3.4\r\n",
                "Received an invalid PROXY protocol header",
            ),
            (
                b"",
                "Connection closed while waiting for PROXY protocol header",
            ),
            (b"PROXY TCP4 ", "Truncated PROXY protocol header received"),
            (b"-", "Timeout while waiting for PROXY protocol header"),
        ];
        for (sent, why) in cases {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let me = c.local_addr().unwrap();
            if sent == b"-" {
                // Nothing, until halyard gives up.
                let mut out = Vec::new();
                c.read_to_end(&mut out).await.unwrap();
            } else {
                c.write_all(sent).await.unwrap();
                c.shutdown().await.unwrap();
            }
            let line = next_line(&u).await;
            let (head, text) = line.split_once(": ").expect("a reason");
            let f = fields(head, me);
            assert_eq!(f, ["fe/1"], "{mode}: {line}");
            assert_eq!(text, why, "{mode}: {line}");
        }
        assert_eq!(p.stats().frontends[0].denied, 5, "{mode}");
    }
}

/// A request head that does not come within `timeout client` (HAProxy's
/// `timeout http-request`, slowloris): HAProxy 2.6.12 answered `408
/// Request Time-out` and logged `fe fe/<NOSRV> -1/-1/-1/-1/2002 408 0 - -
/// cR-- 2/2/0/0/0 0/0 "<BADREQ>"`, for a head begun and for one never
/// begun on a new connection (`%Ta` from the accept, `%B` 0 although the
/// 408 went out), and closed an idle kept-alive connection without a word
/// or a line (`timeout http-keep-alive`); a request begun after one served
/// timed out as the first did.
#[tokio::test]
async fn request_head_timeout_is_cr_408() {
    let (u, global) = receiver().await;
    let (server, _) = raw_http_server().await;
    let (p, addr) = start(&http_text(&global, "timeout_client = \"300ms\"", server)).await;
    // Kept alive, then idle: closed, one line (the request's).
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    idle.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(!out.contains("408"), "{out}");
    let line = next_line(&u).await;
    assert!(line.contains(" 200 "), "{line}");
    // Begun and not finished; never begun; begun after one served.
    let sends: [&[u8]; 3] = [
        b"GET /slow HTTP/1.1\r\nHost: x\r\n",
        b"",
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\n",
    ];
    for sent in sends {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let me = c.local_addr().unwrap();
        c.write_all(sent).await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.ends_with("HTTP/1.1 408 Request Time-out\r\ncontent-type: text/plain\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 request timeout\n"),
            "{out}"
        );
        let mut line = next_line(&u).await;
        if sent.len() > 40 {
            assert!(line.contains(" 200 "), "{line}");
            line = next_line(&u).await;
        }
        let f = fields(&line, me);
        assert_eq!(f[..2], ["fe", "fe/<NOSRV>"], "{line}");
        assert_eq!(shape(&f[2]), "-N/-N/-N/-N/N", "{line}");
        let want = [
            "408",
            "0",
            "-",
            "-",
            "cR--",
            "1/1/0/0/0",
            "0/0",
            "\"<BADREQ>\"",
        ];
        assert_eq!(f[3..], want, "{line}");
    }
    let h = p.stats().frontends[0].http.clone().unwrap();
    assert_eq!((h.requests, h.request_errors, h.responses[4]), (5, 3, 3));
}
