//! HTTP (L7) mode: HTTP/1.1 from clients (hyper server connections with
//! keep-alive), each request routed (host / path prefix) to a backend,
//! balanced on its own, and sent over a kept-alive connection from a
//! per-server pool. `X-Forwarded-For` is appended; hop-by-hop headers are
//! dropped. The server slot is held from the request until the response
//! body has been sent (or dropped), then the connection goes back to the pool
//! ([`Pool`]: HAProxy's `pool-max-conn` and `pool-purge-delay`). Which idle
//! connection a request may take is the backend's `http-reuse`
//! ([`HttpReuse`]): by default a client connection's first request opens a
//! connection of its own; under `never` connections stay with the client
//! connection that opened them ([`Session`]).
//!
//! PROXY protocol: the client's addresses come in with the connection (its
//! header's with `accept_proxy`, read before hyper sees the stream); a
//! server with `send_proxy` gets the header at the start of each new
//! connection, which is then reused only under the same header
//! ([`ProxyLine`]).
//!
//! Answers of the proxy itself: 503 when no server is usable, the queue is
//! full or `timeout queue` passes, or every connect attempt failed; 502 when
//! the server fails mid-request; 504 on `timeout server` before the response
//! headers; 408 when a request head does not come within `timeout client`
//! (slowloris), which also bounds the keep-alive idle time (closed without
//! an answer, as HAProxy's `timeout http-keep-alive`).
//!
//! Upgrades (WebSocket): a request with `Connection: upgrade` and an
//! `Upgrade` header keeps both, and its server connection is never pooled
//! again. A `101` answer goes to the client, then the two connections
//! become a byte tunnel ([`relay`](super::relay), as a TCP session: half
//! closes, `timeout tunnel`, kill switches), run by the client connection's
//! task after hyper hands both sockets over; the server slot is held until
//! the tunnel ends. Any other answer is an ordinary response.
//!
//! Cookie persistence (a backend's `cookie`, [`crate::cookie`]): a request
//! whose cookie names a usable server goes there
//! ([`Backend::acquire_direct`](crate::backend::Backend::acquire_direct)),
//! and the response of any other gets the cookie. A stick table
//! ([`crate::stick`]) is looked up per request, after the cookie, and
//! learns the request's server when its response head arrives.
//!
//! HTTP counters (HAProxy's `req_tot`, `hrsp_*`, `ereq`, `eresp`,
//! `cli_abrt`, `srv_abrt`) are counted under the locks a request takes
//! anyway: the frontend's request when the backend core is asked for a
//! server, the rest when the request ends ([`Release`], or the lock of a
//! local answer), by [`Backend::http_end`](crate::backend::Backend::http_end).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, PROXY_AUTHORIZATION,
    SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, TE, TRAILER, UPGRADE,
};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use tokio::sync::{oneshot, watch};

use super::ack::ServerIo;
use super::forward::Counters;
use super::logger::{self, Trace};
use super::{marked_down, relay, retry_pause, wait_queue, Core, Cut, Shared};
use crate::backend::{Acquire, Assignment, HttpEnd, Retry};
use crate::balance::ServerId;
use crate::config::{FrontendConfig, HttpReuse, IdleList, PoolLimits};
use crate::log::{Cause, Ended, Phase, TermState};
use crate::proxy_protocol::{self, Version};

/// The PROXY header a server connection started with (`send_proxy`):
/// its version and the client's `(source, destination)`. An idle
/// connection is reused only for a request that would send the same header,
/// as HAProxy 2.6 hashes the PROXY line into a server connection's key
/// (`connect_server`: `hash_params.proxy_prehash`, `conn_calculate_hash`),
/// so that a connection never carries one client's request under another
/// client's header: in effect, it serves the client connection it was
/// opened for (and clients whose own PROXY headers announce the same
/// addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProxyLine {
    version: Version,
    src: SocketAddr,
    dst: SocketAddr,
}

/// An idle connection and the PROXY header it started with (`None`
/// without `send_proxy`).
type IdleConn = (Option<ProxyLine>, SendRequest<Incoming>);

/// One server's connections on one thread.
#[derive(Default)]
struct ThreadPool {
    /// Idle connections, indexed by [`IdleList`] (HAProxy's `idle_conns`
    /// and `safe_conns`), each the most recently used last (taken first).
    lists: [Vec<IdleConn>; 2],
    /// Connections carrying a request now.
    used: usize,
    /// Most connections in use at once since the last purge.
    max_used: usize,
    /// Estimated need: at least `max_used`, halving towards it each purge.
    est_need: usize,
}

impl ThreadPool {
    /// Idle connections in both lists.
    fn idle_len(&self) -> usize {
        self.lists[0].len() + self.lists[1].len()
    }

    /// One more connection carries a request.
    fn use_one(&mut self) {
        self.used += 1;
        self.max_used = self.max_used.max(self.used);
        self.est_need = self.est_need.max(self.used);
    }
}

/// One server's pool.
struct ServerPool {
    limits: PoolLimits,
    /// The server's `send_proxy`.
    send_proxy: Option<Version>,
    /// The server's address: a connection opened to another one (before
    /// `set server ... addr`) is not pooled again.
    addr: SocketAddr,
    /// Idle connections over all threads (for `max_conn`).
    idle_total: usize,
    /// When the next purge runs (set while anything is idle).
    next_purge: Option<Instant>,
    threads: HashMap<ThreadId, ThreadPool>,
}

impl ServerPool {
    /// HAProxy's purge (`srv_cleanup_idle_conns`): on each thread, close the
    /// idle connections beyond the larger of the most used at once since
    /// the last purge and the estimated need, then let the estimate decay
    /// halfway towards that maximum. Under steady load nothing is closed;
    /// once the load stops, the idle connections halve each period after
    /// two periods. The oldest connections of the idle list go first, then
    /// the safe list's (HAProxy kills from `idle_conns` before
    /// `safe_conns`).
    fn purge(&mut self, now: Instant) {
        for t in self.threads.values_mut() {
            for l in &mut t.lists {
                l.retain(|(_, s)| !s.is_closed());
            }
            let needed = t.max_used.max(t.est_need);
            let mut exceed = (t.used + t.idle_len()).saturating_sub(needed);
            t.est_need = ((t.est_need + t.max_used) / 2).max(t.max_used);
            t.max_used = t.used;
            for l in &mut t.lists {
                let close = exceed.min(l.len());
                l.drain(..close);
                exceed -= close;
            }
        }
        self.threads
            .retain(|_, t| t.used > 0 || t.idle_len() > 0 || t.est_need > 0);
        self.idle_total = self.threads.values().map(ThreadPool::idle_len).sum();
        self.next_purge = (self.idle_total > 0).then(|| now + self.limits.purge_delay);
    }
}

/// Idle kept-alive server connections, per (backend, server, thread), and
/// how many each server's threads use (backend -> server, looked up by
/// `&str`, no allocation per request). Pooled connections are per thread:
/// a connection's task runs on the runtime that opened it, so reusing it
/// from another worker thread (thread-per-core mode) would cost a
/// cross-thread wakeup per request.
#[derive(Default)]
pub(super) struct Pool {
    servers: Mutex<HashMap<String, HashMap<ServerId, ServerPool>>>,
    /// Wakes the purge task when a purge is scheduled earlier than it sleeps.
    purge_changed: tokio::sync::Notify,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<ServerId, ServerPool>>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or changes) a server's limits; its idle connections are kept.
    /// `send_proxy` is the server's (new connections start with the
    /// client's PROXY header).
    pub(super) fn configure(
        &self,
        backend: &str,
        server: ServerId,
        limits: PoolLimits,
        addr: SocketAddr,
        send_proxy: Option<Version>,
    ) {
        let mut all = self.lock();
        let per_backend = match all.get_mut(backend) {
            Some(m) => m,
            None => all.entry(backend.to_string()).or_default(),
        };
        per_backend
            .entry(server)
            .and_modify(|p| p.limits = limits)
            .or_insert(ServerPool {
                limits,
                send_proxy,
                addr,
                idle_total: 0,
                next_purge: None,
                threads: HashMap::new(),
            });
    }

    /// Drops a removed server's idle connections; connections still in use
    /// are closed when their request ends.
    pub(super) fn remove_server(&self, backend: &str, server: ServerId) {
        if let Some(m) = self.lock().get_mut(backend) {
            m.remove(&server);
        }
    }

    /// The server moved to `addr` (`set server ... addr`): its idle
    /// connections are closed, and those in use are not pooled again.
    pub(super) fn readdress(&self, backend: &str, server: ServerId, addr: SocketAddr) {
        let mut all = self.lock();
        if let Some(sp) = all.get_mut(backend).and_then(|m| m.get_mut(&server)) {
            sp.addr = addr;
            for t in sp.threads.values_mut() {
                t.lists = Default::default();
            }
            sp.idle_total = 0;
        }
    }

    /// The PROXY header a connection to `server` carries for a client
    /// with addresses `client`, and an idle connection with that header
    /// from thread `home`'s `lists`, tried in order ([`HttpReuse::lists`]),
    /// now counted as used there (in a list, the most recently used;
    /// without `send_proxy`, simply the last). `home` is the thread the
    /// request started on: the three calls of one request name the same
    /// one, even if a work-stealing runtime moves the request between them.
    fn take(
        &self,
        backend: &str,
        server: ServerId,
        home: ThreadId,
        (src, dst): (SocketAddr, SocketAddr),
        lists: &[IdleList],
    ) -> (Option<ProxyLine>, Option<SendRequest<Incoming>>) {
        let mut all = self.lock();
        let Some(sp) = all.get_mut(backend).and_then(|m| m.get_mut(&server)) else {
            return (None, None);
        };
        let line = sp.send_proxy.map(|version| ProxyLine { version, src, dst });
        let Some(t) = sp.threads.get_mut(&home) else {
            return (line, None);
        };
        for &list in lists {
            let idle = &mut t.lists[list as usize];
            while let Some(i) = idle.iter().rposition(|(l, _)| *l == line) {
                let (_, s) = idle.remove(i);
                sp.idle_total -= 1;
                if !s.is_closed() {
                    t.use_one();
                    return (line, Some(s));
                }
            }
        }
        (line, None)
    }

    /// A connection not from [`Pool::take`] (new, or a client connection's
    /// own under `http-reuse never`) carries a request to `server`: counted
    /// as used on thread `home`.
    fn opened(&self, backend: &str, server: ServerId, home: ThreadId) {
        let mut all = self.lock();
        let Some(sp) = all.get_mut(backend).and_then(|m| m.get_mut(&server)) else {
            return;
        };
        sp.threads.entry(home).or_default().use_one();
    }

    /// A connection from [`Pool::take`] or [`Pool::opened`] is done with
    /// its request. When `reusable` is given and still goes to the server's
    /// address `addr`: into list `to` (under its PROXY header `line`) if
    /// `pool_max_conn` allows, or, with no list (`http-reuse never`),
    /// returned to the caller, its client connection's own; closed
    /// (dropped) otherwise.
    #[allow(clippy::too_many_arguments)]
    fn released(
        &self,
        backend: &str,
        server: ServerId,
        home: ThreadId,
        addr: SocketAddr,
        line: Option<ProxyLine>,
        reusable: Option<SendRequest<Incoming>>,
        to: Option<IdleList>,
    ) -> Option<SendRequest<Incoming>> {
        let now = Instant::now();
        let mut all = self.lock();
        let sp = all.get_mut(backend).and_then(|m| m.get_mut(&server))?;
        let t = sp.threads.entry(home).or_default();
        t.used = t.used.saturating_sub(1);
        let s = reusable.filter(|s| !s.is_closed() && sp.addr == addr)?;
        let Some(to) = to else {
            return Some(s);
        };
        if sp.limits.max_conn.is_some_and(|m| sp.idle_total >= m) {
            return None;
        }
        t.lists[to as usize].push((line, s));
        sp.idle_total += 1;
        if sp.next_purge.is_none() && !sp.limits.purge_delay.is_zero() {
            sp.next_purge = Some(now + sp.limits.purge_delay);
            self.purge_changed.notify_one();
        }
        None
    }

    /// Runs the purges that are due; returns when the next one is.
    fn purge_due(&self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for sp in self.lock().values_mut().flat_map(|m| m.values_mut()) {
            if sp.next_purge.is_some_and(|at| at <= now) {
                sp.purge(now);
            }
            if let Some(at) = sp.next_purge {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Purges idle connections for as long as the proxy runs (one task).
    pub(super) async fn purge_loop(shared: Arc<Shared>) {
        loop {
            let next = shared.pool.purge_due(Instant::now());
            let changed = shared.pool.purge_changed.notified();
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// Resolves when the server is marked down with `shutdown-sessions`.
type KillSwitch = Pin<Box<dyn Future<Output = ()> + Send>>;

fn kill_switch(rx: watch::Receiver<u64>) -> KillSwitch {
    Box::pin(marked_down(rx))
}

/// Errors of the response body.
type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The response body: the server's, tracked, or a short local one.
// One per response, moved once into hyper: boxing the large variant would
// cost an allocation per request to save a few hundred bytes of move.
#[allow(clippy::large_enum_variant)]
pub(super) enum ProxyBody {
    /// From the server; the guard releases the slot when dropped; the
    /// switch aborts the response (`on-marked-down shutdown-sessions`).
    Server(Incoming, Option<Release>, Option<KillSwitch>),
    /// Generated here.
    Local(Option<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Server(inner, guard, kill) => {
                if let Some(k) = kill.as_mut() {
                    if k.as_mut().poll(cx).is_ready() {
                        // The proxy's own abort: neither side's.
                        if let Some(g) = guard.as_mut() {
                            g.end = HttpEnd::Response(g.status);
                            if let Some(t) = g.log.as_deref_mut() {
                                t.term = Some(TermState::forwarding(Ended::MarkedDown));
                            }
                        }
                        guard.take();
                        return Poll::Ready(Some(Err(
                            "server marked down: shutdown-sessions".into()
                        )));
                    }
                }
                let r = Pin::new(&mut *inner).poll_frame(cx).map_err(|e| e.into());
                match &r {
                    Poll::Ready(Some(Ok(f))) => {
                        if let (Some(d), Some(g)) = (f.data_ref(), guard.as_mut()) {
                            g.bytes_out += d.len() as u64;
                        }
                        if inner.is_end_stream() {
                            // hyper will not poll again after the last frame.
                            if let Some(g) = guard.as_mut() {
                                g.complete();
                            }
                            guard.take();
                        }
                    }
                    Poll::Ready(None) => {
                        // Complete: the server connection can serve the next request.
                        if let Some(g) = guard.as_mut() {
                            g.complete();
                        }
                        guard.take();
                    }
                    Poll::Ready(Some(Err(_))) => {
                        // The server cut its response body short.
                        if let Some(g) = guard.as_mut() {
                            g.end = HttpEnd::ServerAbort(g.status);
                        }
                        guard.take();
                    }
                    Poll::Pending => {}
                }
                r
            }
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Server(inner, _, _) => inner.is_end_stream(),
            ProxyBody::Local(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Server(inner, _, _) => inner.size_hint(),
            ProxyBody::Local(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Local(None) => SizeHint::with_exact(0),
        }
    }
}

/// Releases the server slot (and pools the connection if the response was
/// complete) when the response body is done or dropped, and counts how the
/// request ended.
pub(super) struct Release {
    shared: Arc<Shared>,
    fe: Arc<FrontendConfig>,
    backend: String,
    server: ServerId,
    /// Where the connection goes.
    addr: SocketAddr,
    /// The PROXY header the connection started with.
    line: Option<ProxyLine>,
    /// The thread whose pool counts the connection.
    home: ThreadId,
    /// The connection carried a request before (HAProxy's `reuse`); it
    /// goes to the safe list, else to the idle list ([`IdleList`]).
    reused: bool,
    /// `http-reuse never`: the client connection that keeps it.
    session: Option<Arc<Session>>,
    sender: Option<SendRequest<Incoming>>,
    /// Tunnel bytes client -> server (0 without an upgrade).
    bytes_in: u64,
    /// Response body bytes, or tunnel bytes server -> client.
    bytes_out: u64,
    /// The request was upgraded: its bytes count on the frontend too.
    tunnel: bool,
    complete: bool,
    /// The server's status, once its response headers came.
    status: u16,
    /// How the request ended: until told otherwise, the client went away
    /// (the future or the response body was dropped).
    end: HttpEnd,
    /// The access log's trace, when the frontend logs.
    log: Option<Box<Trace>>,
}

impl Release {
    /// The server's response was forwarded to its end.
    fn complete(&mut self) {
        self.complete = true;
        self.end = HttpEnd::Response(self.status);
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let reusable = self.sender.take().filter(|_| self.complete);
        let to = match (&self.session, self.reused) {
            (Some(_), _) => None,
            (None, true) => Some(IdleList::Safe),
            (None, false) => Some(IdleList::Idle),
        };
        let own = self.shared.pool.released(
            &self.backend,
            self.server,
            self.home,
            self.addr,
            self.line,
            reusable,
            to,
        );
        if let (Some(session), Some(s)) = (&self.session, own) {
            let backend = self.backend.clone();
            session.keep((backend, self.server, self.addr, self.line, s));
        }
        let mut locked = self.shared.lock();
        let core = &mut *locked;
        if let Some(b) = core.backends.get_mut(&self.backend) {
            if self.reused {
                b.core.connection_reused(self.server);
            }
            b.core
                .release(Instant::now(), self.server, self.bytes_in, self.bytes_out);
            b.core.http_end(Some(self.server), self.end);
            b.flush();
        }
        if let Some(s) = self.end.status() {
            count_frontend(core, &self.fe.name, s);
        }
        if let (true, Some(f)) = (self.tunnel, core.frontends.get_mut(&self.fe.name)) {
            f.stats.bytes_in += self.bytes_in;
            f.stats.bytes_out += self.bytes_out;
        }
        let Some(t) = self.log.take() else { return };
        let counts = t.counts(core, &self.fe.name, &self.backend);
        drop(locked);
        // A hard stop cuts requests as their clients' aborts; HAProxy
        // logs it as a kill (`K-`).
        let mut term = TermState::http(self.end);
        if term.cause == Cause::ClientAbort && *self.shared.stop.borrow() == super::Stop::Hard {
            term = TermState::forwarding(Ended::Stopping);
        }
        if let (Some(logger), Some(format)) = (&self.shared.log, self.fe.log) {
            let bytes = t.head + self.bytes_out;
            t.emit(logger, format, &self.fe, &self.backend, counts, bytes, term);
        }
    }
}

/// A request waiting for a server (queued) or a server connection: if
/// hyper drops the request's future then (its client left), this guard
/// gives the server slot back and logs the request as HAProxy 2.6.12 does
/// with `option abortonclose` (`CQ` / `CC`, status -1, 0 bytes), which the
/// [`Release`] guard does once the request has its connection. Borrows
/// what it needs: a frontend that does not log pays no allocation and no
/// lock for it.
struct Waiting<'a> {
    shared: &'a Shared,
    fe: &'a FrontendConfig,
    backend: &'a str,
    /// The access log's trace, when the frontend logs.
    trace: Option<Box<Trace>>,
    /// Set while the request awaits: queued (no server), or connecting
    /// to the server whose slot it holds.
    awaiting: Option<(Phase, Option<ServerId>)>,
}

impl Waiting<'_> {
    /// The request is queued, or connects to `server` (holding its slot).
    fn awaits(&mut self, server: Option<ServerId>) {
        let phase = if server.is_some() {
            Phase::Connect
        } else {
            Phase::Queue
        };
        self.awaiting = Some((phase, server));
    }

    /// The request goes on (or ends) on the normal path, with its trace.
    fn done(mut self) -> Option<Box<Trace>> {
        self.awaiting = None;
        self.trace.take()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some((phase, server)) = self.awaiting else {
            return;
        };
        let mut locked = self.shared.lock();
        let core = &mut *locked;
        if let (Some(server), Some(b)) = (server, core.backends.get_mut(self.backend)) {
            b.core.release(Instant::now(), server, 0, 0);
            b.core.http_end(Some(server), HttpEnd::ClientAbort(None));
            b.flush();
        }
        let Some(mut t) = self.trace.take() else {
            return;
        };
        if phase == Phase::Queue {
            t.assigned(None);
        }
        let counts = t.counts(core, &self.fe.name, self.backend);
        drop(locked);
        if let (Some(logger), Some(format)) = (&self.shared.log, self.fe.log) {
            let term = TermState::new(Cause::ClientAbort, phase);
            t.term = Some(term);
            t.emit(logger, format, self.fe, self.backend, counts, 0, term);
        }
    }
}

/// The proxy's own answer `r`, noted in the access log's trace: its
/// status and size.
fn answered(trace: Option<&mut Trace>, r: Response<ProxyBody>) -> Response<ProxyBody> {
    if let Some(t) = trace {
        t.answered(r.status().as_u16(), r.headers());
        t.head += r.body().size_hint().exact().unwrap_or(0);
    }
    r
}

/// Counts a response the client got on its frontend (HAProxy counts every
/// one there, the proxy's own included).
fn count_frontend(core: &mut Core, fe: &str, status: u16) {
    if let Some(h) = core
        .frontends
        .get_mut(fe)
        .and_then(|f| f.stats.http.as_mut())
    {
        h.count_response(status);
    }
}

fn local(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Local(Some(Bytes::from_static(text.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

const HOP_BY_HOP: [HeaderName; 7] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    UPGRADE,
    PROXY_AUTHORIZATION,
];

fn strip_hop_by_hop(h: &mut hyper::HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        if h.contains_key(n) {
            h.remove(n);
        }
    }
}

/// The options of the `Connection` headers and the protocols of the
/// `Upgrade` headers, as bytes (no allocation).
fn tokens<'a>(h: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    h.get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Whether a message asks for (a request) or agrees to (a `101`) a
/// protocol switch: an `Upgrade` header and the `upgrade` option in
/// `Connection` (HAProxy's `HTTP_MSGF_CONN_UPG`). An ordinary message stops
/// at the first lookup.
fn wants_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(UPGRADE) && tokens(h, &CONNECTION).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

/// For a message that [`wants_upgrade`]: whether it is a WebSocket
/// handshake without its key (`Sec-WebSocket-Key` of 24 characters in a
/// request, `Sec-WebSocket-Accept` in a response), which HAProxy's
/// `h1_search_websocket_key` rejects (400 to a client, 502 for a server).
fn websocket_without_key(h: &HeaderMap, response: bool) -> bool {
    let key_ok = if response {
        h.contains_key(SEC_WEBSOCKET_ACCEPT)
    } else {
        h.get(SEC_WEBSOCKET_KEY).is_some_and(|k| k.len() == 24)
    };
    !key_ok && tokens(h, &UPGRADE).any(|t| t.eq_ignore_ascii_case(b"websocket"))
}

/// Strips the hop-by-hop headers of an upgrade request or its `101`, then
/// puts back the switch itself: `Upgrade` and `Connection: upgrade`.
fn strip_keeping_upgrade(h: &mut HeaderMap) {
    let protocols = h.remove(UPGRADE);
    strip_hop_by_hop(h);
    if let Some(p) = protocols {
        h.insert(UPGRADE, p);
        h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// A client connection's tunnel, once its request was upgraded: run by
/// [`serve`] after hyper hands the connection over.
type Tunnel = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Most idle server connections a client connection keeps as its own
/// under `http-reuse never` (HAProxy's `max-session-srv-conns` default):
/// one more is closed.
const MAX_SESSION_SRV_CONNS: usize = 10;

/// A server connection a client connection keeps as its own (`http-reuse
/// never`): backend, server, address and PROXY header it was opened for.
type OwnConn = (
    String,
    ServerId,
    SocketAddr,
    Option<ProxyLine>,
    SendRequest<Incoming>,
);

/// What the requests of one client connection share (HAProxy's session).
#[derive(Default)]
struct Session {
    /// A request came before (HAProxy's `TX_NOT_FIRST`): what
    /// [`HttpReuse`] decides by.
    not_first: AtomicBool,
    /// `http-reuse never`: its idle server connections (HAProxy's session
    /// server list), closed with it.
    own: Mutex<Vec<OwnConn>>,
    /// Where an upgraded request leaves its [`Tunnel`].
    tunnel: Mutex<Option<Tunnel>>,
}

impl Session {
    /// One of its own idle connections to `server` at `addr` with the
    /// PROXY header `line`.
    fn take_own(
        &self,
        backend: &str,
        server: ServerId,
        addr: SocketAddr,
        line: Option<ProxyLine>,
    ) -> Option<SendRequest<Incoming>> {
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        own.retain(|c| !c.4.is_closed());
        let i = own
            .iter()
            .position(|c| c.0 == backend && c.1 == server && c.2 == addr && c.3 == line)?;
        Some(own.swap_remove(i).4)
    }

    /// Keeps an idle connection as its own, unless it has
    /// [`MAX_SESSION_SRV_CONNS`] already (HAProxy's
    /// `session_check_idle_conn`).
    fn keep(&self, conn: OwnConn) {
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        if own.len() < MAX_SESSION_SRV_CONNS {
            own.push(conn);
        }
    }
}

/// HAProxy's answer to a request head not received within `timeout
/// client` (its `timeout http-request`), then a close.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Time-out\r\ncontent-type: text/plain\r\n\
content-length: 20\r\nconnection: close\r\n\r\n408 request timeout\n";

/// How a client connection ended, for its frontend's counters and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConnEnd {
    /// Closed, or every request went its way.
    Done,
    /// A malformed request head, which hyper answered (400, 414 or 431).
    BadRequest,
    /// A request head not received within `timeout client` (the first
    /// one, or one begun later), answered 408.
    RequestTimeout,
}

/// Serves one client connection, whose client has the `(source,
/// destination)` addresses `addrs` (its PROXY header's with
/// `accept_proxy`), and says how it ended.
pub(super) async fn serve(
    shared: Arc<Shared>,
    fe: Arc<FrontendConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    addrs: (SocketAddr, SocketAddr),
) -> ConnEnd {
    let _ = stream.set_nodelay(true);
    // The client's address as an X-Forwarded-For value, built once per connection.
    let client = Client {
        addrs,
        xff: HeaderValue::from_maybe_shared(Bytes::from(addrs.0.ip().to_string())).ok(),
    };
    let svc_shared = shared.clone();
    let svc_fe = fe.clone();
    let session = Arc::new(Session::default());
    let svc_session = session.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let fe = svc_fe.clone();
        let client = client.clone();
        let session = svc_session.clone();
        async move { Ok::<_, Infallible>(handle(&shared, fe, req, client, &session).await) }
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(fe.timeout_client)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut stop = shared.stop.subscribe();
    let mut next = super::Stop::Soft;
    let r = loop {
        tokio::select! {
            r = &mut conn => break r,
            _ = super::stopped(&mut stop, next) => {
                if *stop.borrow() == super::Stop::Hard {
                    return ConnEnd::Done;
                }
                // Soft stop (HAProxy's mux_h1 `h1_set_cli_conn_mode`: a
                // stopping frontend switches keep-alive to close): an idle
                // connection closes now, a busy one after its response,
                // sent with `Connection: close`.
                Pin::new(&mut conn).graceful_shutdown();
                next = super::Stop::Hard;
            }
        }
    };
    if let Err(e) = r {
        tracing::debug!(frontend = %fe.name, %peer, error = %e, "http connection ended");
        // hyper wrote a 4xx for these (`on_error`), not for an HTTP/2
        // preface, a timeout or a close.
        if e.is_parse() && !e.is_parse_version_h2() && !e.is_parse_status() {
            return ConnEnd::BadRequest;
        }
        // hyper's header read timeout closes without a word. HAProxy
        // (`h1_handle_req_tout`) answers 408 unless the connection waited
        // idle for its next request (`timeout http-keep-alive`).
        if e.is_timeout() {
            let first = !session.not_first.load(Ordering::Relaxed);
            if let Some(parts) = conn.into_parts() {
                if first || !parts.read_buf.is_empty() {
                    // Best effort, never waiting: the socket is idle.
                    let _ = parts.io.inner().try_write(REQUEST_TIMEOUT);
                    return ConnEnd::RequestTimeout;
                }
            }
        }
    }
    // The connection ended, or was handed over to an upgraded request's
    // tunnel: the session lasts until the tunnel ends.
    let tunnel = session
        .tunnel
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(t) = tunnel {
        t.await;
    }
    ConnEnd::Done
}

fn pick_backend<'a>(fe: &'a FrontendConfig, req: &Request<Incoming>) -> &'a str {
    if fe.routes.is_empty() {
        return &fe.backend;
    }
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .map(|h| {
            // Strip the port (keep IPv6 brackets intact).
            let h = match h.rfind(':') {
                Some(i) if !h[i..].contains(']') => h[..i].to_string(),
                _ => h,
            };
            h.to_ascii_lowercase()
        });
    let path = req.uri().path();
    fe.routes
        .iter()
        .find(|r| r.matches(host.as_deref(), path))
        .map_or(fe.backend.as_str(), |r| r.backend.as_str())
}

/// The client of a connection.
#[derive(Clone)]
struct Client {
    /// `(source, destination)`: the connection's, or its PROXY header's.
    addrs: (SocketAddr, SocketAddr),
    /// The source IP as a header value (cheap to clone).
    xff: Option<HeaderValue>,
}

async fn handle(
    shared: &Arc<Shared>,
    fe: Arc<FrontendConfig>,
    mut req: Request<Incoming>,
    client: Client,
    session: &Arc<Session>,
) -> Response<ProxyBody> {
    // HAProxy's TX_NOT_FIRST: whether an earlier request came on this
    // client connection.
    let first_request = !session.not_first.swap(true, Ordering::Relaxed);
    let backend = pick_backend(&fe, &req).to_string();
    // The access log's trace (the request line as received), logged if
    // the client leaves while the request waits.
    let mut waiting = Waiting {
        shared,
        fe: &fe,
        backend: &backend,
        trace: fe.log.map(|_| Trace::http(client.addrs.0, &req)),
        awaiting: None,
    };
    // An upgrade (HTTP/1.1 only, as hyper): the client connection, once
    // hyper hands it over.
    let upgrade = (req.version() == hyper::Version::HTTP_11 && wants_upgrade(req.headers()))
        .then(|| hyper::upgrade::on(&mut req));
    if upgrade.is_some() && websocket_without_key(req.headers(), false) {
        return bad_websocket_request(shared, &fe);
    }
    // Request rewriting: hop-by-hop out, X-Forwarded-For in, origin-form URI.
    if upgrade.is_some() {
        strip_keeping_upgrade(req.headers_mut());
    } else {
        strip_hop_by_hop(req.headers_mut());
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    let value = match req.headers().get(&xff).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", client.addrs.0.ip())).ok(),
        None => client.xff,
    };
    if let Some(v) = value {
        req.headers_mut().insert(xff, v);
    }
    let (client, addrs) = (client.addrs.0.ip(), client.addrs);
    if req.uri().authority().is_some() {
        if let Some(a) = req.uri().authority().cloned() {
            if !req.headers().contains_key(HOST) {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    req.headers_mut().insert(HOST, v);
                }
            }
        }
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        if let Ok(u) = pq.parse() {
            *req.uri_mut() = u;
        }
    }

    // A server for this request.
    let (timeouts, first) = {
        let mut core = shared.lock();
        let core = &mut *core;
        let now = Instant::now();
        // HAProxy counts the request when it is parsed (proxy_inc_fe_req_ctr).
        if let Some(f) = core.frontends.get_mut(&fe.name) {
            f.request_received(now);
        }
        let Some(b) = core.backends.get_mut(&backend) else {
            count_frontend(core, &fe.name, 503);
            return local(StatusCode::SERVICE_UNAVAILABLE, "503 no such backend\n");
        };
        let t = b.timeouts;
        // Cookie persistence (HAProxy's SF_DIRECT): nothing to do, nothing
        // scanned, without a backend `cookie`.
        let cookie = b.core.options().cookie.clone();
        let named = cookie.as_ref().and_then(|c| {
            c.values(req.headers())
                .find_map(|v| b.core.cookie_server(v))
        });
        // The hash key (`source`, `uri`, `url_param`, `hdr`; nothing is
        // computed for the other algorithms), over the origin form.
        let uri = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let key = b.core.request_key(client, uri, |name| {
            req.headers().get(name).map(HeaderValue::as_bytes)
        });
        // The sticking rule runs after the cookie (HAProxy's analysers'
        // order): its entry is refreshed but the cookie's server wins.
        let stuck = b.core.stick_match(now, addrs.0.ip(), addrs.1.ip());
        let stores = b
            .core
            .options()
            .stick
            .as_ref()
            .is_some_and(|s| s.rule.stores());
        let acquired = match named.or(stuck) {
            Some(id) => b.core.acquire_direct(now, id, key),
            None => b.core.acquire(now, key),
        };
        let r = match acquired {
            Acquire::Queued(ticket) => {
                if let Some(t) = waiting.trace.as_deref_mut() {
                    t.queued(&b.core, ticket);
                }
                let (tx, rx) = oneshot::channel();
                b.waiters.insert(ticket, tx);
                Err((ticket, rx))
            }
            other => Ok(other),
        };
        b.flush();
        let reuse = b.core.options().http_reuse;
        (t, (r, cookie, named, stuck, stores, key, reuse))
    };
    let (first, cookie, named, stuck, stores, key, reuse) = first;
    if let Some(c) = cookie.as_ref().filter(|c| c.indirect) {
        c.strip_request(req.headers_mut());
    }
    let got = match first {
        Ok(Acquire::Assigned(a)) => Ok(a),
        Ok(other) => Err((super::no_server_state(other), "503 no server available\n")),
        Err((ticket, rx)) => {
            waiting.awaits(None);
            match wait_queue(shared, &backend, ticket, rx, timeouts.queue).await {
                Some(a) => Ok(a),
                None => Err((TermState::QUEUE_TIMEOUT, "503 timeout queue\n")),
            }
        }
    };
    if let Some(t) = waiting.trace.as_deref_mut() {
        t.assigned(got.as_ref().ok().map(|a| a.server));
        t.term = got.as_ref().err().map(|e| e.0);
    }
    let mut assignment: Assignment = match got {
        Ok(a) => a,
        Err((_, text)) => return denied(shared, &fe, &backend, text, waiting.done()),
    };
    waiting.awaits(Some(assignment.server));

    // Sent where its cookie said (a redispatch below breaks it).
    let mut direct = named == Some(assignment.server);
    // HAProxy's SF_DIRECT: sent by its cookie or its stick table entry.
    let mut persistent = direct || stuck == Some(assignment.server);
    // A connection: an idle one `http-reuse` allows (the pool's, or
    // this client connection's own under `never`), or a new one (with
    // retries and redispatch), counted on this thread's pool until the
    // response is done.
    let home = std::thread::current().id();
    let mut failures = 0u32;
    let private = reuse == HttpReuse::Never;
    let lists = reuse.lists(first_request);
    let (mut sender, line, reused) = loop {
        let (line, mut idle) = shared
            .pool
            .take(&backend, assignment.server, home, addrs, lists);
        if private {
            idle = session.take_own(&backend, assignment.server, assignment.addr, line);
            if idle.is_some() {
                shared.pool.opened(&backend, assignment.server, home);
            }
        }
        if let Some(mut s) = idle {
            if s.ready().await.is_ok() {
                if let Some(t) = waiting.trace.as_deref_mut() {
                    t.connected(true);
                }
                break (s, line, true);
            }
            shared.pool.released(
                &backend,
                assignment.server,
                home,
                assignment.addr,
                line,
                None,
                None,
            );
            continue;
        }
        if let Some(t) = waiting.trace.as_deref_mut() {
            t.connecting();
        }
        match connect(assignment.addr, timeouts.connect, line).await {
            Ok(s) => {
                if let Some(t) = waiting.trace.as_deref_mut() {
                    t.connected(false);
                }
                shared.pool.opened(&backend, assignment.server, home);
                let mut core = shared.lock();
                if let Some(b) = core.backends.get_mut(&backend) {
                    b.core.connect_ok(assignment.server);
                }
                break (s, line, false);
            }
            Err(e) => {
                tracing::debug!(backend, server = %assignment.server, error = %e, "connect failed");
                failures += 1;
                let pause = {
                    let mut core = shared.lock();
                    let Some(b) = core.backends.get_mut(&backend) else {
                        count_frontend(&mut core, &fe.name, 503);
                        drop(core);
                        waiting.done();
                        return local(StatusCode::SERVICE_UNAVAILABLE, "503\n");
                    };
                    let retry = b.core.connect_failed(
                        Instant::now(),
                        assignment.server,
                        failures,
                        key,
                        persistent,
                    );
                    b.flush();
                    let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                    let pause = retry_pause(&retry, timed_out, timeouts.connect);
                    direct &= matches!(retry, Retry::Same(_));
                    persistent &= matches!(retry, Retry::Same(_));
                    if let Some(t) = waiting.trace.as_deref_mut() {
                        t.retry(&retry);
                        t.connect_failed(timed_out);
                    }
                    match retry {
                        Retry::Same(a) | Retry::Redispatch(a) => {
                            assignment = a;
                            waiting.awaits(Some(a.server));
                        }
                        Retry::GiveUp => {
                            drop(core);
                            return denied(
                                shared,
                                &fe,
                                &backend,
                                "503 no server could be reached\n",
                                waiting.done(),
                            );
                        }
                    }
                    pause
                };
                if let Some(d) = pause {
                    tokio::time::sleep(d).await;
                }
            }
        }
    };
    let trace = waiting.done();
    let mut guard = Release {
        shared: shared.clone(),
        fe,
        backend,
        server: assignment.server,
        addr: assignment.addr,
        line,
        home,
        reused,
        session: private.then(|| session.clone()),
        sender: None,
        bytes_in: 0,
        bytes_out: 0,
        tunnel: false,
        complete: false,
        status: 0,
        end: HttpEnd::ClientAbort(None),
        log: trace,
    };
    // on-marked-down shutdown-sessions (and on-marked-up
    // shutdown-backup-sessions for a backup): in-flight requests end too,
    // and a tunnel (which, as a TCP session, always listens). With a
    // backend cookie: the server's value (if any) to answer with, and
    // whether the response may be cached (HAProxy's TX_CACHEABLE).
    let (mut kill, tunnel_kill, cookie) = {
        let core = shared.lock();
        let b = core.backends.get(&guard.backend);
        let spec = b.and_then(|b| b.core.server_spec(assignment.server));
        let cookie = cookie.map(|c| {
            let value = spec.and_then(|s| s.cookie.clone());
            (c, value, crate::cookie::cacheable_method(req.method()))
        });
        let rx = b.zip(spec).and_then(|(b, spec)| {
            let wanted = spec.shutdown_sessions_on_down || spec.backup;
            if !wanted && upgrade.is_none() {
                return None;
            }
            let rx = b.servers.get(&assignment.server)?.kill.subscribe();
            Some((wanted, rx))
        });
        match rx {
            Some((wanted, rx)) => {
                let tunnel_kill = upgrade.is_some().then(|| rx.clone());
                (wanted.then(|| kill_switch(rx)), tunnel_kill, cookie)
            }
            None => (None, None, cookie),
        }
    };
    if let Some(t) = guard.log.as_deref_mut() {
        t.sending();
    }
    let sent = async {
        match kill.as_mut() {
            Some(k) => tokio::select! {
                r = tokio::time::timeout(timeouts.server, sender.send_request(req)) => Some(r),
                _ = k.as_mut() => None,
            },
            None => Some(tokio::time::timeout(timeouts.server, sender.send_request(req)).await),
        }
    };
    let Some(sent) = sent.await else {
        guard.end = HttpEnd::Local(503);
        if let Some(t) = guard.log.as_deref_mut() {
            t.term = Some(TermState::forwarding(Ended::MarkedDown));
        }
        let r = local(StatusCode::SERVICE_UNAVAILABLE, "503 server marked down\n");
        return answered(guard.log.as_deref_mut(), r);
    };
    // `stick on` / `store-request`: the table learns the server once its
    // response head is in (HAProxy's `process_store_rules`).
    if stores && matches!(sent, Ok(Ok(_))) {
        if let Some(b) = shared.lock().backends.get_mut(&guard.backend) {
            let (src, dst) = (addrs.0.ip(), addrs.1.ip());
            b.core.stick_store(Instant::now(), src, dst, guard.server);
        }
    }
    match sent {
        Ok(Ok(resp)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
            // HAProxy's http_wait_for_response: a 101 needs the request's
            // and its own `Connection: upgrade`, else it is a bad response.
            let tunnel = upgrade.filter(|_| {
                wants_upgrade(resp.headers()) && !websocket_without_key(resp.headers(), true)
            });
            let Some(on_client) = tunnel else {
                guard.end = HttpEnd::ServerError(502);
                let r = local(StatusCode::BAD_GATEWAY, "502 bad gateway\n");
                return answered(guard.log.as_deref_mut(), r);
            };
            guard.status = 101;
            guard.end = HttpEnd::ClientAbort(Some(101));
            let mut resp = resp;
            let on_server = hyper::upgrade::on(&mut resp);
            let (mut parts, _) = resp.into_parts();
            strip_keeping_upgrade(&mut parts.headers);
            if let Some(t) = guard.log.as_deref_mut() {
                t.responded(101, &parts.headers);
            }
            let kill_rx = tunnel_kill.unwrap_or_else(|| watch::channel(0).1);
            let t = run_tunnel(guard, on_client, on_server, timeouts, kill_rx);
            *session.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::pin(t));
            Response::from_parts(parts, ProxyBody::Local(None))
        }
        Ok(Ok(resp)) => {
            // An upgrade request's connection is not pooled again.
            guard.sender = upgrade.is_none().then_some(sender);
            guard.status = resp.status().as_u16();
            guard.end = HttpEnd::ClientAbort(Some(guard.status));
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some((c, value, cacheable)) = &cookie {
                c.respond(
                    &mut parts.headers,
                    value.as_deref(),
                    direct,
                    *cacheable,
                    guard.status,
                );
            }
            if let Some(t) = guard.log.as_deref_mut() {
                t.responded(guard.status, &parts.headers);
            }
            // An empty body may never be polled: the exchange is complete already.
            if body.is_end_stream() {
                guard.complete();
            }
            Response::from_parts(parts, ProxyBody::Server(body, Some(guard), kill))
        }
        Ok(Err(e)) => {
            tracing::debug!(backend = %guard.backend, error = %e, "server failed mid-request");
            guard.end = HttpEnd::ServerError(502);
            let r = local(StatusCode::BAD_GATEWAY, "502 bad gateway\n");
            answered(guard.log.as_deref_mut(), r)
        }
        Err(_) => {
            guard.end = HttpEnd::ServerError(504);
            let r = local(StatusCode::GATEWAY_TIMEOUT, "504 timeout server\n");
            answered(guard.log.as_deref_mut(), r)
        }
    }
}

/// Joins an upgraded client connection and its server connection, once
/// hyper hands both over, as a TCP session does (half-close, `timeout
/// tunnel`, kill switches, byte counts), and counts how the tunnel ended
/// as HAProxy 2.6.12 does: a clean close or the proxy's own cut as the
/// `101`; `timeout tunnel` (or `timeout client`) and client errors as
/// `cli_abrt`; server errors as `srv_abrt` and `eresp`; `timeout server`
/// as `srv_abrt`.
async fn run_tunnel(
    mut guard: Release,
    on_client: OnUpgrade,
    on_server: OnUpgrade,
    timeouts: crate::config::Timeouts,
    kill: watch::Receiver<u64>,
) {
    let (c, s) = tokio::join!(on_client, on_server);
    let (c, s) = match (c, s) {
        (Ok(c), Ok(s)) => (c, s),
        (c, s) => {
            tracing::debug!(backend = %guard.backend, client = ?c.err(), server = ?s.err(), "upgrade failed");
            return;
        }
    };
    let (Ok(c), Ok(s)) = (
        c.downcast::<TokioIo<TcpStream>>(),
        s.downcast::<TokioIo<ServerIo>>(),
    ) else {
        return;
    };
    let mut client = c.io.into_inner();
    let mut server = s.io.into_inner();
    // What hyper read past the request and the 101 goes first.
    let initial = [c.read_buf.to_vec(), s.read_buf.to_vec()];
    let (early_in, early_out) = (initial[0].len() as u64, initial[1].len() as u64);
    let counters = Counters::default();
    let shared = guard.shared.clone();
    let fe = guard.fe.clone();
    let r = relay(
        &shared,
        &mut client,
        server.tunnel(),
        initial,
        &counters,
        &fe,
        timeouts,
        kill,
    )
    .await;
    guard.tunnel = true;
    guard.bytes_in = early_in + counters.c2s.load(std::sync::atomic::Ordering::Relaxed);
    guard.bytes_out = early_out + counters.s2c.load(std::sync::atomic::Ordering::Relaxed);
    guard.end = match r {
        Ok(()) | Err(Cut::MarkedDown | Cut::Stopping) => HttpEnd::Response(101),
        Err(Cut::Client(_) | Cut::ClientTimeout) => HttpEnd::ClientAbort(Some(101)),
        Err(Cut::Server(_)) => HttpEnd::ServerAbort(101),
        Err(Cut::ServerTimeout) => HttpEnd::ServerTimeout(101),
    };
    if let Some(t) = guard.log.as_deref_mut() {
        t.term = Some(TermState::forwarding(logger::ended(&r)));
    }
    if let Err(e) = r {
        tracing::debug!(backend = %guard.backend, cut = %e, "tunnel ended");
    }
}

/// HAProxy's answer to a WebSocket handshake without its key: 400 and
/// close, counted as a request error on the frontend
/// (`h1_handle_parsing_error`).
fn bad_websocket_request(shared: &Arc<Shared>, fe: &FrontendConfig) -> Response<ProxyBody> {
    if let Some(h) = shared
        .lock()
        .frontends
        .get_mut(&fe.name)
        .and_then(|f| f.request_received(Instant::now()))
    {
        h.request_errors += 1;
        h.count_response(400);
    }
    let mut r = local(StatusCode::BAD_REQUEST, "400 bad request\n");
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A 503 without a server (none usable, queue full or timed out, every
/// connect failed): counted on the frontend and the backend.
fn denied(
    shared: &Arc<Shared>,
    fe: &FrontendConfig,
    backend: &str,
    text: &'static str,
    mut trace: Option<Box<Trace>>,
) -> Response<ProxyBody> {
    let mut locked = shared.lock();
    let core = &mut *locked;
    if let Some(f) = core.frontends.get_mut(&fe.name) {
        f.stats.denied += 1;
    }
    count_frontend(core, &fe.name, 503);
    if let Some(b) = core.backends.get_mut(backend) {
        b.core.http_end(None, HttpEnd::Local(503));
    }
    let counts = trace.as_ref().map(|t| t.counts(core, &fe.name, backend));
    drop(locked);
    let r = answered(
        trace.as_deref_mut(),
        local(StatusCode::SERVICE_UNAVAILABLE, text),
    );
    if let (Some(t), Some(c), Some(logger), Some(format)) = (trace, counts, &shared.log, fe.log) {
        let end = TermState::http(HttpEnd::Local(503));
        t.emit(logger, format, fe, backend, c, t.head, end);
    }
    r
}

/// A new connection to `addr`, which starts with the PROXY header `line`
/// if there is one (as HAProxy's, before the first request; the header
/// goes in its own write, which the request's write follows at once).
async fn connect(
    addr: SocketAddr,
    timeout: Duration,
    line: Option<ProxyLine>,
) -> std::io::Result<SendRequest<Incoming>> {
    let mut s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout connect"))??;
    let _ = s.set_nodelay(true);
    if let Some(l) = line {
        s.write_all(&proxy_protocol::encode(l.version, l.src, l.dst))
            .await?;
    }
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ServerIo::new(s)))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "server connection ended");
        }
    });
    Ok(sender)
}
