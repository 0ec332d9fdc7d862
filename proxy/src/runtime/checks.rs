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
use crate::health::{parse_agent_reply, spread_interval, CheckTimeouts};
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
/// for the rest of the check, or the failure status (`L4TOUT`, `L4CON`).
async fn connect(
    addr: SocketAddr,
    timeouts: CheckTimeouts,
) -> Result<(TcpStream, tokio::time::Instant), &'static str> {
    let start = tokio::time::Instant::now();
    match tokio::time::timeout(timeouts.connect, TcpStream::connect(addr)).await {
        Err(_) => Err("L4TOUT"),
        Ok(Err(_)) => Err("L4CON"),
        Ok(Ok(s)) => {
            let deadline = match timeouts.read {
                Some(read) => tokio::time::Instant::now() + read,
                None => start + timeouts.connect,
            };
            Ok((s, deadline))
        }
    }
}

/// The PROXY header for a check connection: its own addresses.
fn check_proxy_header(s: &TcpStream, version: Version) -> Option<Vec<u8>> {
    let (local, peer) = (s.local_addr().ok()?, s.peer_addr().ok()?);
    Some(proxy_protocol::encode(version, local, peer))
}

/// Result of one check: success, HAProxy-like status code.
async fn run_check(
    addr: SocketAddr,
    spec: &CheckSpec,
    timeouts: CheckTimeouts,
    send_proxy: Option<Version>,
) -> (bool, &'static str) {
    let (mut s, deadline) = match connect(addr, timeouts).await {
        Ok(c) => c,
        Err(status) => return (false, status),
    };
    if let CheckKind::TcpCheck(rules) = &spec.kind {
        let v = tcp_check(s, deadline, send_proxy, rules).await;
        if !v.ok {
            tracing::debug!(%addr, status = v.status, info = %v.info, "tcp-check failed");
        }
        return (v.ok, v.status);
    }
    let work = async {
        let mut out = Vec::new();
        if let Some(v) = send_proxy {
            match check_proxy_header(&s, v) {
                Some(h) => out = h,
                None => return (false, "L4CON"),
            }
        }
        match &spec.kind {
            CheckKind::Tcp => {
                if !out.is_empty() && s.write_all(&out).await.is_err() {
                    return (false, "L4CON");
                }
                (true, "L4OK")
            }
            CheckKind::TcpCheck(_) => unreachable!("run by tcp_check"),
            CheckKind::Http {
                method,
                path,
                expect_status,
            } => {
                let req = format!("{method} {path} HTTP/1.0\r\nConnection: close\r\n\r\n");
                out.extend_from_slice(req.as_bytes());
                if s.write_all(&out).await.is_err() {
                    return (false, "L7RSP");
                }
                let mut buf = [0u8; 512];
                let mut n = 0;
                // Read until the status line is complete (or 512 bytes / EOF).
                while n < buf.len() && !buf[..n].contains(&b'\n') {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                }
                match parse_status(&buf[..n]) {
                    None => (false, "L7RSP"),
                    Some(st) => {
                        if expect_status.matches(st) {
                            (true, "L7OK")
                        } else {
                            (false, "L7STS")
                        }
                    }
                }
            }
        }
    };
    match tokio::time::timeout_at(deadline, work).await {
        Ok(r) => r,
        Err(_) => match spec.kind {
            CheckKind::Tcp => (false, "L4TOUT"),
            CheckKind::Http { .. } | CheckKind::TcpCheck(_) => (false, "L7TOUT"),
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

/// `HTTP/1.x NNN ...` -> NNN.
pub(crate) fn parse_status(buf: &[u8]) -> Option<u16> {
    let line_end = buf.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&buf[..line_end]).ok()?;
    let mut it = line.split(' ');
    let ver = it.next()?;
    if !ver.starts_with("HTTP/1.") {
        return None;
    }
    let code = it.next()?.trim();
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
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
        let (ok, status) = run_check(addr, &spec, run.timeouts, send_proxy).await;
        let took = start.elapsed();
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
        b.core.check_result(Instant::now(), id, ok, status, took);
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
/// HAProxy) and reads the reply line; `None` when the agent could not be
/// reached or timed out.
async fn ask_agent(addr: SocketAddr, timeouts: CheckTimeouts, send: &[u8]) -> Option<Vec<u8>> {
    let (mut s, deadline) = connect(addr, timeouts).await.ok()?;
    let work = async {
        if !send.is_empty() {
            s.write_all(send).await.ok()?;
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
        Some(buf)
    };
    tokio::time::timeout_at(deadline, work).await.ok().flatten()
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
        // An agent that cannot be reached changes nothing (HAProxy: the
        // regular check tests connectivity).
        if let Some(buf) = reply {
            // A reply without a line end is ignored (HAProxy: "Ignoring
            // incomplete line from agent"): nothing changes.
            let Some(r) = parse_agent_reply(&buf) else {
                tracing::info!(backend = %backend, server = %id, "ignoring incomplete line from agent");
                tokio::time::sleep(delay).await;
                continue;
            };
            let mut core = shared.lock();
            let Some(b) = core.backends.get_mut(&backend) else {
                return;
            };
            if !b.servers.contains_key(&id) {
                return;
            }
            b.core.agent_result(Instant::now(), id, &r);
            b.flush();
        }
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(parse_status(b"HTTP/2 200\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 20\r\n"), None);
        assert_eq!(parse_status(b"HTTP/1.1 200"), None);
        assert_eq!(parse_status(b"\xff\xfe\n"), None);
    }
}
