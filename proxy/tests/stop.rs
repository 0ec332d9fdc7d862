//! Stopping and reloading, as HAProxy 2.6: `Proxy::soft_stop` /
//! `Proxy::hard_stop` and `global.hard_stop_after` in the library; SIGUSR1,
//! SIGTERM and SIGINT sent to the binary (a child process); and the reload
//! handover (a second process on the same port, then SIGUSR1 to the first)
//! in a network namespace of its own, with `net.ipv4.tcp_migrate_req` at 0
//! and at 1. The handover needs root, `unshare` and `ip`; without them it
//! skips with a printed reason, unless HALYARD_REQUIRE_SYSTEM=1.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use halyard_proxy::config::Config;
use halyard_proxy::{Error, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP frontend `fe` on `bind` to one echo server, with `global` lines.
fn echo_config(global: &str, bind: &str, echo: SocketAddr) -> String {
    format!(
        "[global]\n{global}\n[defaults]\ntimeout_connect = \"1s\"\n[frontends.fe]\nbinds = [\"{bind}\"]\nbackend = \"be\"\n{}",
        servers(&[("e", echo, "")])
    )
}

async fn start_echo(global: &str) -> (Proxy, SocketAddr) {
    let (echo, _t) = echo_server().await;
    // The echo server's task lives on the test's runtime (dropping the
    // handle detaches it).
    let p = Proxy::start(Config::from_toml(&echo_config(global, "127.0.0.1:0", echo)).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    (p, fe)
}

/// One byte through the session and back.
async fn ping(c: &mut TcpStream, b: u8) {
    c.write_all(&[b]).await.unwrap();
    let mut r = [0u8; 1];
    tokio::time::timeout(BOUND, c.read_exact(&mut r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0], b);
}

/// Reads until the proxy closes the connection (EOF or reset), bounded.
async fn closed(c: &mut TcpStream) {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, c.read_to_end(&mut rest))
        .await
        .expect("the proxy closed the connection");
}

#[tokio::test]
async fn hard_stop_closes_open_sessions_at_once() {
    let (p, fe) = start_echo("").await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    ping(&mut c, b'a').await;
    assert_eq!(p.hard_stop(), 1);
    closed(&mut c).await;
    assert!(TcpStream::connect(fe).await.is_err(), "still listening");
    eventually("session ended", || p.stats().frontends[0].cur_sessions == 0).await;
}

/// A connection still sending its PROXY header is closed by a hard stop,
/// not left to `timeout client` (an hour here).
#[tokio::test]
async fn hard_stop_closes_a_connection_waiting_for_its_proxy_header() {
    let (echo, _t) = echo_server().await;
    let cfg = echo_config("", "127.0.0.1:0", echo).replace(
        "backend = \"be\"\n",
        "backend = \"be\"\naccept_proxy = true\ntimeout_client = \"1h\"\n",
    );
    let p = Proxy::start(Config::from_toml(&cfg).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut c = TcpStream::connect(fe).await.unwrap();
    c.write_all(b"PROXY TCP4 ").await.unwrap();
    eventually("connection accepted", || {
        p.stats().frontends[0].cur_sessions == 1
    })
    .await;
    p.hard_stop();
    closed(&mut c).await;
    eventually("connection gone", || {
        p.stats().frontends[0].cur_sessions == 0
    })
    .await;
}

/// A client waiting in the queue for a full server is closed by a hard
/// stop, not left to `timeout queue` (an hour here): the stop frees the
/// held slot, the queued session gets it and ends where every session
/// watches the stop.
#[tokio::test]
async fn hard_stop_closes_a_queued_session() {
    let (echo, _t) = echo_server().await;
    let cfg = echo_config("", "127.0.0.1:0", echo)
        .replace("[defaults]\n", "[defaults]\ntimeout_queue = \"1h\"\n")
        .replace(
            &format!("address = \"{echo}\"\n"),
            &format!("address = \"{echo}\"\nmaxconn = 1\n"),
        );
    let p = Proxy::start(Config::from_toml(&cfg).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    let mut held = TcpStream::connect(fe).await.unwrap();
    ping(&mut held, b'a').await;
    let mut queued = TcpStream::connect(fe).await.unwrap();
    eventually("second client queued", || {
        p.stats().backends[0].queue_cur == 1
    })
    .await;
    p.hard_stop();
    closed(&mut queued).await;
    closed(&mut held).await;
    eventually("sessions gone", || p.stats().frontends[0].cur_sessions == 0).await;
    assert_eq!(p.stats().backends[0].queue_cur, 0);
}

#[tokio::test]
async fn hard_stop_after_bounds_a_soft_stop() {
    let (p, fe) = start_echo("hard_stop_after = \"200ms\"").await;
    let mut c = TcpStream::connect(fe).await.unwrap();
    ping(&mut c, b'a').await;
    let stop = tokio::spawn(p.soft_stop());
    // Still served during the soft stop...
    ping(&mut c, b'b').await;
    // ...until hard_stop_after closes it.
    assert_eq!(tokio::time::timeout(BOUND, stop).await.unwrap().unwrap(), 1);
    closed(&mut c).await;
}

/// A backend answering `ok` (keep-alive) to each request once `go` is
/// notified for it.
async fn gated_http_server(go: Arc<tokio::sync::Semaphore>) -> SocketAddr {
    spawn_server(move |mut s| {
        let go = go.clone();
        async move {
            let mut buf = Vec::new();
            while next_head(&mut s, &mut buf).await.is_some() {
                go.acquire().await.unwrap().forget();
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if s.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
    .0
}

/// Sends a GET and reads one `ok` response; returns its head, lowercased.
async fn get(c: &mut TcpStream) -> String {
    c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    while !got.ends_with(b"\r\n\r\nok") {
        let n = tokio::time::timeout(BOUND, c.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

#[tokio::test]
async fn soft_stop_closes_idle_http_connections_and_busy_ones_after_their_response() {
    let go = Arc::new(tokio::sync::Semaphore::new(1));
    let server = gated_http_server(go.clone()).await;
    let text = format!(
        "[defaults]\ntimeout_connect = \"1s\"\ntimeout_client = \"30s\"\n[frontends.fe]\nmode = \"http\"\nbinds = [\"127.0.0.1:0\"]\nbackend = \"be\"\n{}",
        servers(&[("a", server, "")])
    );
    let p = Proxy::start(Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    let fe = p.local_addrs("fe")[0];
    // An idle keep-alive connection (one request answered)...
    let mut idle = TcpStream::connect(fe).await.unwrap();
    let head = get(&mut idle).await;
    assert!(!head.contains("connection: close"), "{head}");
    // ...and one whose request waits for the server.
    let mut busy = TcpStream::connect(fe).await.unwrap();
    busy.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("request at the server", || {
        p.stats().backends[0].cur_sessions == 1
    })
    .await;
    let stop = tokio::spawn(p.soft_stop());
    // The idle one closes at once (HAProxy closes idle front connections).
    closed(&mut idle).await;
    assert!(!stop.is_finished());
    // The busy one gets its response, marked close, then the close.
    go.add_permits(1);
    let mut rest = Vec::new();
    tokio::time::timeout(BOUND, busy.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8_lossy(&rest).to_ascii_lowercase();
    assert!(
        rest.starts_with("http/1.1 200")
            && rest.contains("connection: close")
            && rest.ends_with("ok"),
        "{rest}"
    );
    assert_eq!(tokio::time::timeout(BOUND, stop).await.unwrap().unwrap(), 0);
}

#[tokio::test]
async fn listeners_share_their_port_unless_noreuseport() {
    let (echo, _t) = echo_server().await;
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    // HAProxy's default: a second process (here a second proxy) binds too.
    let cfg = || Config::from_toml(&echo_config("", &bind, echo)).unwrap();
    let a = Proxy::start(cfg()).await.unwrap();
    let b = Proxy::start(cfg()).await.unwrap();
    let mut c = TcpStream::connect(a.local_addrs("fe")[0]).await.unwrap();
    ping(&mut c, b'a').await;
    drop(c);
    a.hard_stop();
    b.hard_stop();
    // The listeners close when their cancelled tasks are dropped.
    eventually("port released", || {
        refused(SocketAddr::from(([127, 0, 0, 1], port)))
    })
    .await;
    // `noreuseport`: the second bind fails, naming the address.
    let cfg = || Config::from_toml(&echo_config("noreuseport = true", &bind, echo)).unwrap();
    let a = Proxy::start(cfg()).await.unwrap();
    match Proxy::start(cfg()).await {
        Err(Error::Bind { addr, .. }) => assert_eq!(addr.port(), port),
        other => panic!("second bind: {other:?}"),
    }
    a.hard_stop();
}

/// The binary as a child process, its stderr collected.
struct Bin {
    child: Child,
    log: Arc<Mutex<String>>,
    /// The stderr reader: joined once the process has exited, so `log`
    /// holds everything it wrote.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Bin {
    /// Starts `halyard-proxy --config cfg` and waits until it runs (its
    /// SIGUSR1 handler is installed by then).
    fn start(cfg: &std::path::Path) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_halyard-proxy"))
            .arg("--config")
            .arg(cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (log, reader) = collect_stderr(&mut child);
        let bin = Bin {
            child,
            log,
            reader: Some(reader),
        };
        bin.wait_log("halyard-proxy running");
        bin
    }

    fn wait_log(&self, what: &str) {
        let deadline = Instant::now() + BOUND;
        while !self.log.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no `{what}` in the log: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    /// The exit status, waiting at most BOUND.
    fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Its last lines may still be in the pipe.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "still running: {}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config file for the binary; returns its path (in a directory
/// of this test's own) and the frontend's address.
fn bin_config(test: &str, global: &str, echo: SocketAddr) -> (std::path::PathBuf, SocketAddr) {
    let dir = std::env::temp_dir().join(format!("halyard-stop-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fe = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = dir.join("proxy.toml");
    std::fs::write(&path, echo_config(global, &fe.to_string(), echo)).unwrap();
    (path, fe)
}

fn refused(fe: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&fe, Duration::from_secs(1)).is_err()
}

fn sync_ping(c: &mut std::net::TcpStream, b: u8) -> std::io::Result<()> {
    c.set_read_timeout(Some(BOUND))?;
    c.write_all(&[b])?;
    let mut r = [0u8; 1];
    c.read_exact(&mut r)?;
    assert_eq!(r[0], b);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn sigusr1_soft_stops_the_binary() {
    let (echo, _t) = echo_server().await;
    let (cfg, fe) = bin_config("usr1", "", echo);
    let mut bin = tokio::task::block_in_place(|| Bin::start(&cfg));
    tokio::task::block_in_place(|| {
        let mut c = std::net::TcpStream::connect(fe).unwrap();
        sync_ping(&mut c, b'a').unwrap();
        bin.signal("USR1");
        bin.wait_log("soft stop");
        // New connections are refused, the open session goes on...
        let deadline = Instant::now() + BOUND;
        while !refused(fe) {
            assert!(Instant::now() < deadline, "still accepting");
            std::thread::sleep(Duration::from_millis(20));
        }
        sync_ping(&mut c, b'b').unwrap();
        assert!(bin.child.try_wait().unwrap().is_none(), "exited early");
        // ...and the process exits once it ends.
        drop(c);
        let st = bin.exit();
        assert!(st.success(), "{st:?}: {}", bin.log.lock().unwrap());
    });
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn sigusr1_with_hard_stop_after_closes_what_is_left() {
    let (echo, _t) = echo_server().await;
    let (cfg, fe) = bin_config("hsa", "hard_stop_after = \"300ms\"", echo);
    let mut bin = tokio::task::block_in_place(|| Bin::start(&cfg));
    tokio::task::block_in_place(|| {
        let mut c = std::net::TcpStream::connect(fe).unwrap();
        sync_ping(&mut c, b'a').unwrap();
        bin.signal("USR1");
        // The session is closed by the hard stop, the process exits.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        let st = bin.exit();
        assert!(st.success(), "{st:?}");
        let log = bin.log.lock().unwrap().clone();
        assert!(log.contains("performing a hard-stop"), "{log}");
    });
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn sigterm_and_sigint_stop_the_binary_at_once() {
    use std::os::unix::process::ExitStatusExt;
    let (echo, _t) = echo_server().await;
    for (sig, num) in [("TERM", 15), ("INT", 2)] {
        let (cfg, fe) = bin_config(&format!("sig{num}"), "", echo);
        let mut bin = tokio::task::block_in_place(|| Bin::start(&cfg));
        tokio::task::block_in_place(|| {
            let mut c = std::net::TcpStream::connect(fe).unwrap();
            sync_ping(&mut c, b'a').unwrap();
            bin.signal(sig);
            // The open session is closed with the process (HAProxy: no
            // handler, the default action).
            let st = bin.exit();
            assert_eq!(st.signal(), Some(num), "{st:?}");
            assert!(
                sync_ping(&mut c, b'b').is_err(),
                "session survived SIG{sig}"
            );
            assert!(refused(fe));
        });
        let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
    }
}

/// Set in the child that runs inside the network namespace: the value of
/// `net.ipv4.tcp_migrate_req` there.
const NETNS_ENV: &str = "HALYARD_STOP_NETNS";

/// Client threads hammering the port during the handover.
const CLIENTS: usize = 8;
/// Connections per client thread, at most (the loop also ends soon after
/// the handover).
const MAX_PER_CLIENT: usize = 3000;

/// The reload handover, measured: process A serves a port, a client loop
/// connects all the time, process B starts on the same port (SO_REUSEPORT),
/// A gets SIGUSR1 and exits. Every connection either gets its echo or
/// counts as refused (connect failed) or reset (closed without the echo:
/// Linux resets the connections left in a closed listener's accept queue
/// unless `tcp_migrate_req` moves them to another listener of the group).
#[test]
fn reload_handover_with_and_without_tcp_migrate_req() {
    if let Ok(v) = std::env::var(NETNS_ENV) {
        return handover_in_this_namespace(&v);
    }
    let require = std::env::var("HALYARD_REQUIRE_SYSTEM").is_ok_and(|v| v == "1");
    let usable = Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && std::path::Path::new("/proc/sys/net/ipv4/tcp_migrate_req").exists();
    if !usable {
        assert!(
            !require,
            "the handover test needs root, `unshare -n`, `ip` and Linux 5.14+ (tcp_migrate_req) when HALYARD_REQUIRE_SYSTEM=1"
        );
        println!("SKIP reload_handover_with_and_without_tcp_migrate_req: needs root, `unshare -n`, `ip` and Linux 5.14+");
        return;
    }
    let me = std::env::current_exe().unwrap();
    for migrate in ["0", "1"] {
        let out = Command::new("unshare")
            .args(["-n", "sh", "-c"])
            .arg(format!(
                "ip link set lo up && echo {migrate} > /proc/sys/net/ipv4/tcp_migrate_req && exec \"$0\" reload_handover_with_and_without_tcp_migrate_req --exact --nocapture --test-threads=1"
            ))
            .arg(&me)
            .env(NETNS_ENV, migrate)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("HANDOVER").map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no result: {stdout}"));
        println!("{line}");
        if migrate == "1" {
            assert!(line.contains(" refused=0 reset=0 "), "{line}");
        }
    }
}

/// Runs in the child, inside the new network namespace.
fn handover_in_this_namespace(migrate: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (echo, _t) = rt.block_on(echo_server());
    let (cfg, fe) = bin_config(&format!("netns{migrate}"), "", echo);
    let a = Bin::start(&cfg);
    let done = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default()); // ok, refused, reset
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (done, counts) = (done.clone(), counts.clone());
            std::thread::spawn(move || {
                for _ in 0..MAX_PER_CLIENT {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = match std::net::TcpStream::connect_timeout(&fe, BOUND) {
                        Err(_) => 1,
                        Ok(mut c) => match sync_ping(&mut c, b'x') {
                            Ok(()) => 0,
                            Err(_) => 2,
                        },
                    };
                    counts[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let total = || {
        counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + BOUND;
        while total() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(200);
    let mut b = Bin::start(&cfg);
    let before = total();
    let mut a = a;
    a.signal("USR1");
    let st = a.exit();
    assert!(st.success(), "{st:?}");
    // Some more connections after the handover, all to B.
    wait_for(total() + 200);
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let [ok, refused, reset] = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
    println!(
        "HANDOVER tcp_migrate_req={migrate} connections={} refused={refused} reset={reset} ok={ok} (before the SIGUSR1: {before})",
        ok + refused + reset
    );
    b.signal("USR1");
    assert!(b.exit().success());
    let _ = std::fs::remove_dir_all(cfg.parent().unwrap());
}
