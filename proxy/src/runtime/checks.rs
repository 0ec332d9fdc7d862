//! Active checks (TCP connect, HTTP), the agent check and the slowstart
//! warmup tick. Each loop asks the pure core when to run next and reports
//! the result back to it.
//!
//! A server with `send_proxy` gets a PROXY header on its TCP and HTTP check
//! connections too (HAProxy: "the PROXY protocol is enabled for health
//! checks if it is already enabled for normal traffic"), carrying the check
//! connection's own addresses (source: the proxy's local address, destination:
//! the server). For v2 this is a PROXY command with those addresses, not the
//! LOCAL command HAProxy 2.6 sends on checks (its `pp2-never-send-local`
//! behaviour): the encoder has no LOCAL form. Agent checks send none, as in
//! HAProxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::{Shared, TaskGuard};
use crate::balance::ServerId;
use crate::config::{CheckKind, CheckSpec};
use crate::health::parse_agent_reply;
use crate::proxy_protocol::{self, Version};

/// The PROXY header for a check connection: its own addresses.
fn check_proxy_header(s: &TcpStream, version: Version) -> Option<Vec<u8>> {
    let (local, peer) = (s.local_addr().ok()?, s.peer_addr().ok()?);
    Some(proxy_protocol::encode(version, local, peer))
}

/// Result of one check: success, HAProxy-like status code.
async fn run_check(
    addr: SocketAddr,
    spec: &CheckSpec,
    send_proxy: Option<Version>,
) -> (bool, &'static str) {
    let work = async {
        let mut s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(_) => return (false, "L4CON"),
        };
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
                        let ok = match expect_status {
                            Some(e) => st == *e,
                            None => (200..400).contains(&st),
                        };
                        if ok {
                            (true, "L7OK")
                        } else {
                            (false, "L7STS")
                        }
                    }
                }
            }
        }
    };
    match tokio::time::timeout(spec.timeout, work).await {
        Ok(r) => r,
        Err(_) => match spec.kind {
            CheckKind::Tcp => (false, "L4TOUT"),
            CheckKind::Http { .. } => (false, "L7TOUT"),
        },
    }
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
    addr: SocketAddr,
    spec: CheckSpec,
    send_proxy: Option<Version>,
    recheck: Arc<Notify>,
) {
    let _guard = TaskGuard::new(&shared);
    // The first check runs at once, as HAProxy's (modulo its spread-checks).
    let mut delay = Duration::ZERO;
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
        let next = {
            let core = shared.lock();
            match core.backends.get(&backend) {
                None => return,
                Some(b) if !b.servers.contains_key(&id) => return,
                Some(b) => b.core.next_check_in(id),
            }
        };
        let Some(_) = next else {
            // Maintenance: no checks; look again later.
            delay = spec.params.inter;
            continue;
        };
        let start = Instant::now();
        let (ok, status) = run_check(addr, &spec, send_proxy).await;
        let took = start.elapsed();
        let mut core = shared.lock();
        let Some(b) = core.backends.get_mut(&backend) else {
            return;
        };
        if !b.servers.contains_key(&id) {
            return;
        }
        if b.core.in_maint(id) {
            delay = spec.params.inter;
            continue;
        }
        b.core.check_result(Instant::now(), id, ok, status, took);
        b.flush();
        delay = b.core.next_check_in(id).unwrap_or(spec.params.inter);
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

pub(super) async fn agent_loop(
    shared: Arc<Shared>,
    backend: String,
    id: ServerId,
    addr: SocketAddr,
    inter: Duration,
) {
    let _guard = TaskGuard::new(&shared);
    loop {
        let reply = tokio::time::timeout(inter, async {
            let mut s = TcpStream::connect(addr).await.ok()?;
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
        })
        .await;
        // An agent that cannot be reached changes nothing (HAProxy: the
        // regular check tests connectivity).
        if let Ok(Some(buf)) = reply {
            // A reply without a line end is ignored (HAProxy: "Ignoring
            // incomplete line from agent"): nothing changes.
            let Some(r) = parse_agent_reply(&buf) else {
                tracing::info!(backend = %backend, server = %id, "ignoring incomplete line from agent");
                tokio::time::sleep(inter).await;
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
        tokio::time::sleep(inter).await;
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
