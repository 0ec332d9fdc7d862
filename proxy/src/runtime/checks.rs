//! Active checks (TCP connect, HTTP, `tcp-check` rules), the agent check
//! and the slowstart warmup tick. Each loop asks the pure core when to run next and reports
//! the result back to it.
//!
//! Timing (HAProxy's `start_checks` and `process_chk_conn`): each loop's
//! first run waits the delay [`crate::health::first_check_delays`] gave it,
//! every later delay gets the `spread_checks` jitter from the loop's own
//! seeded RNG; a check connects within [`CheckTimeouts::connect`] and then
//! finishes within [`CheckTimeouts::read`] (or the connect deadline).
//!
//! A `tcp-check` connects (HAProxy's implicit first `tcp-check connect`,
//! to the same target as the other kinds), sends the PROXY header if any,
//! then only does what [`TcpCheckRun`] asks: write these bytes, read at
//! most that many; the timeout gives `L7TOUT`, a write error `SOCKERR`.
//!
//! A server with `send_proxy` gets a PROXY header on its TCP, HTTP and
//! `tcp-check` check connections too (HAProxy: "the PROXY protocol is enabled for health
//! checks if it is already enabled for normal traffic"), carrying the check
//! connection's own addresses (source: the proxy's local address, destination:
//! the server). For v2 this is a PROXY command with those addresses, not the
//! LOCAL command HAProxy 2.6 sends on checks (its `pp2-never-send-local`
//! behaviour): the encoder has no LOCAL form. Agent checks send none, as in
//! HAProxy. A server with `check_port` or `check_addr` gets no header on
//! its checks (HAProxy's `init_srv_check`: the checks then go elsewhere),
//! unless it has `check_send_proxy` (HAProxy's `check-send-proxy`: always,
//! v1 unless the server sends v2); see
//! [`crate::config::ServerConfig::check_send_proxy`].
//!
//! An HTTP check writes [`crate::httpcheck::HttpCheck::request`] and reads
//! as [`HttpCheckRun`] asks. Every check ends in a [`Verdict`]: HAProxy's
//! status and description (stats `last_chk`; a failed connect is described
//! by the system's error text, "Connection refused"). The agent's
//! description (`last_agt`) comes with its [`AgentReply`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::{Shared, TaskGuard};
use crate::balance::ServerId;
use crate::config::{CheckKind, CheckSpec, CheckTarget};
use crate::health::{parse_agent_reply, spread_interval, AgentReply, CheckTimeouts};
use crate::httpcheck::HttpCheckRun;
use crate::proxy_protocol::{self, Version};
use crate::tcpcheck::{Next, TcpCheckRule, TcpCheckRun, Verdict, CHECK_BUFSIZE};

/// How one check loop (active or agent) runs.
pub(super) struct CheckRun {
    /// Where the check connects, resolved against the server's current
    /// address at every run (`set server ... addr` moves the checks too).
    pub target: CheckTarget,
    /// Connect and read limits.
    pub timeouts: CheckTimeouts,
    /// Delay before the first run.
    pub first: Duration,
    /// `spread_checks` percent.
    pub spread: u32,
    /// This loop's randomness for `spread_checks`.
    pub rng: SmallRng,
}

/// Connects within `timeouts.connect`; returns the stream and the deadline
/// for the rest of the check, or the failure: `L4TOUT`, or `L4CON` with the
/// error's text (HAProxy's `strerror(errno)`, e.g. "Connection refused").
async fn connect(
    addr: SocketAddr,
    timeouts: CheckTimeouts,
) -> Result<(TcpStream, tokio::time::Instant), Verdict> {
    let start = tokio::time::Instant::now();
    match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
        Err(_) => Err(failed("L4TOUT", String::new())),
        Ok(Err(e)) => Err(failed("L4CON", os_error_text(&e))),
        Ok(Ok(s)) => {
            let deadline = match timeouts.read {
                Some(read) => tokio::time::Instant::now() + read,
                None => start + timeouts.connect,
            };
            Ok((s, deadline))
        }
    }
}

fn failed(status: &'static str, info: String) -> Verdict {
    Verdict {
        ok: false,
        status,
        info,
    }
}

/// An IO error as C's `strerror` words it: without Rust's " (os error N)".
fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .unwrap_or(&text)
            .to_string(),
        None => text,
    }
}

/// The PROXY header for a check connection: its own addresses.
fn check_proxy_header(s: &TcpStream, version: Version) -> Option<Vec<u8>> {
    let (local, peer) = (s.local_addr().ok()?, s.peer_addr().ok()?);
    Some(proxy_protocol::encode(version, local, peer))
}

/// Runs one check: HAProxy's status and description (its `last_chk`).
async fn run_check(
    addr: SocketAddr,
    spec: &CheckSpec,
    timeouts: CheckTimeouts,
    send_proxy: Option<Version>,
) -> Verdict {
    let (mut s, deadline) = match connect(addr, timeouts).await {
        Ok(c) => c,
        Err(mut v) => {
            if let CheckKind::TcpCheck(_) = spec.kind {
                // HAProxy's `chk_report_conn_err` names the step.
                v.info.push_str(" at initial connection step of tcp-check");
            }
            return v;
        }
    };
    if let CheckKind::TcpCheck(rules) = &spec.kind {
        return tcp_check(s, deadline, send_proxy, rules).await;
    }
    let work = async {
        let mut out = Vec::new();
        if let Some(v) = send_proxy {
            match check_proxy_header(&s, v) {
                Some(h) => out = h,
                None => return failed("L4CON", String::new()),
            }
        }
        match &spec.kind {
            CheckKind::Tcp => {
                if !out.is_empty() && s.write_all(&out).await.is_err() {
                    return failed("L4CON", String::new());
                }
                Verdict {
                    ok: true,
                    status: "L4OK",
                    info: String::new(),
                }
            }
            CheckKind::TcpCheck(_) => unreachable!("run by tcp_check"),
            CheckKind::Http(check) => {
                out.extend_from_slice(&check.request());
                if s.write_all(&out).await.is_err() {
                    return failed("L7RSP", String::new());
                }
                let mut run = HttpCheckRun::new(check);
                let mut chunk = vec![0u8; CHECK_BUFSIZE];
                loop {
                    match run.poll() {
                        Next::Recv(room) => match s.read(&mut chunk[..room]).await {
                            Ok(0) | Err(_) => run.closed(),
                            Ok(n) => run.received(&chunk[..n]),
                        },
                        Next::Done(v) => return v,
                        Next::Send(_) => unreachable!("an HTTP check sends only its request"),
                    }
                }
            }
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(v) => v,
        Err(_) => match spec.kind {
            CheckKind::Tcp => failed("L4TOUT", String::new()),
            CheckKind::Http(_) | CheckKind::TcpCheck(_) => failed("L7TOUT", String::new()),
        },
    }
}

/// Runs `tcp-check` rules on a connected check connection (HAProxy's
/// `tcpcheck_main`), until `deadline`.
async fn tcp_check(
    mut s: TcpStream,
    deadline: tokio::time::Instant,
    send_proxy: Option<Version>,
    rules: &[TcpCheckRule],
) -> Verdict {
    let mut run = TcpCheckRun::new(rules);
    let work = async {
        if let Some(v) = send_proxy {
            let sent = match check_proxy_header(&s, v) {
                Some(h) => s.write_all(&h).await.is_ok(),
                None => false,
            };
            if !sent {
                return Verdict {
                    ok: false,
                    status: "L4CON",
                    info: "could not send the PROXY header".into(),
                };
            }
        }
        let mut chunk = vec![0u8; CHECK_BUFSIZE];
        loop {
            match run.poll() {
                Next::Send(data) => {
                    if s.write_all(data).await.is_err() {
                        return run.send_failed_verdict();
                    }
                }
                Next::Recv(room) => match s.read(&mut chunk[..room]).await {
                    Ok(0) => run.closed(),
                    Ok(n) => run.received(&chunk[..n]),
                    Err(_) => run.failed(),
                },
                Next::Done(v) => return v,
            }
        }
    };
    let outcome = tokio::time::timeout_at(deadline, work).await;
    outcome.unwrap_or_else(|_| run.timeout_verdict())
}

pub(super) async fn check_loop(
    shared: Arc<Shared>,
    backend: String,
    id: ServerId,
    mut run: CheckRun,
    spec: CheckSpec,
    send_proxy: Option<Version>,
    recheck: Arc<Notify>,
) {
    let _guard = TaskGuard::new(&shared);
    let mut delay = run.first;
    loop {
        // Passive health may bring the next check forward to `fastinter`.
        let mut deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = recheck.notified() => {
                    deadline = deadline.min(tokio::time::Instant::now() + spec.params.fastinter);
                }
            }
        }
        let (next, server_addr) = {
            let core = shared.lock();
            match core.backends.get(&backend) {
                None => return,
                Some(b) if !b.servers.contains_key(&id) => return,
                Some(b) => (
                    b.core.next_check_in(id),
                    b.core.server_spec(id).map(|s| s.addr),
                ),
            }
        };
        let (Some(_), Some(server_addr)) = (next, server_addr) else {
            // Maintenance: no checks; look again later.
            delay = spread_interval(spec.params.inter, run.spread, &mut run.rng);
            continue;
        };
        let start = Instant::now();
        let addr = run.target.resolve(server_addr);
        let v = run_check(addr, &spec, run.timeouts, send_proxy).await;
        let took = start.elapsed();
        if !v.ok {
            tracing::debug!(%addr, status = v.status, info = %v.info, "check failed");
        }
        let mut core = shared.lock();
        let Some(b) = core.backends.get_mut(&backend) else {
            return;
        };
        if !b.servers.contains_key(&id) {
            return;
        }
        if b.core.in_maint(id) {
            delay = spread_interval(spec.params.inter, run.spread, &mut run.rng);
            continue;
        }
        b.core
            .check_result(Instant::now(), id, v.ok, v.status, &v.info, took);
        b.flush();
        let next = b.core.next_check_in(id).unwrap_or(spec.params.inter);
        delay = spread_interval(next, run.spread, &mut run.rng);
    }
}

/// The slowstart warmup tick of one server (HAProxy's `server_warmup`):
/// hands queued clients the slots its ramping `maxconn` gained.
pub(super) async fn warmup_loop(
    shared: Arc<Shared>,
    backend: String,
    id: ServerId,
    period: Duration,
) {
    let _guard = TaskGuard::new(&shared);
    loop {
        tokio::time::sleep(period).await;
        let mut core = shared.lock();
        let Some(b) = core.backends.get_mut(&backend) else {
            return;
        };
        if !b.servers.contains_key(&id) {
            return;
        }
        if b.core.queue_len() > 0 {
            b.core.warmup(Instant::now());
            b.flush();
        }
    }
}

/// Connects, sends `send` (HAProxy's `agent-send`; nothing when unset, as
/// HAProxy) and reads the reply line; `Err` with HAProxy's description
/// (its `last_agt`) when the agent could not be reached or timed out.
async fn ask_agent(
    addr: SocketAddr,
    timeouts: CheckTimeouts,
    send: &[u8],
) -> Result<Vec<u8>, String> {
    let (mut s, deadline) = connect(addr, timeouts).await.map_err(|v| v.info)?;
    let work = async {
        if !send.is_empty() {
            s.write_all(send).await.map_err(|e| os_error_text(&e))?;
        }
        let mut buf = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        // One line, ended by LF or CR (as HAProxy reads it).
        while buf.len() < 1024 && !buf.iter().any(|b| *b == b'\n' || *b == b'\r') {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(buf)
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(String::new()))
}

pub(super) async fn agent_loop(
    shared: Arc<Shared>,
    backend: String,
    id: ServerId,
    mut run: CheckRun,
    inter: Duration,
    send: Option<String>,
) {
    let _guard = TaskGuard::new(&shared);
    let send = send.unwrap_or_default().into_bytes();
    tokio::time::sleep(run.first).await;
    loop {
        let server_addr = {
            let core = shared.lock();
            match core.backends.get(&backend) {
                Some(b) if b.servers.contains_key(&id) => b.core.server_spec(id).map(|s| s.addr),
                _ => return,
            }
        };
        let Some(server_addr) = server_addr else {
            return;
        };
        let reply = ask_agent(run.target.resolve(server_addr), run.timeouts, &send).await;
        let delay = spread_interval(inter, run.spread, &mut run.rng);
        // An agent that cannot be reached, or a reply without a line end
        // ("Ignoring incomplete line from agent"), changes nothing (HAProxy:
        // the regular check tests connectivity); only its description is
        // kept, for `last_agt`.
        let reply = match reply {
            Ok(buf) => parse_agent_reply(&buf).unwrap_or_else(|| {
                tracing::info!(backend = %backend, server = %id, "ignoring incomplete line from agent");
                AgentReply::noted("Ignoring incomplete line from agent")
            }),
            Err(info) => AgentReply::noted(&info),
        };
        {
            let mut core = shared.lock();
            let Some(b) = core.backends.get_mut(&backend) else {
                return;
            };
            if !b.servers.contains_key(&id) {
                return;
            }
            b.core.agent_result(Instant::now(), id, &reply);
            b.flush();
        }
        tokio::time::sleep(delay).await;
    }
}
