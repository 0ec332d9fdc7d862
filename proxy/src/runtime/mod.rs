//! The tokio layer: listeners, sessions, active checks, runtime control and
//! the stats listener. It owns sockets, clocks and tasks and asks the pure
//! [`Backend`] cores every question (under one short-held mutex).
//!
//! Start with [`Proxy::start`]; the returned [`Proxy`] is the control handle.

mod ack;
mod checks;
mod control;
mod forward;
mod http;
mod logger;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;

pub use control::{parse_command, Command};

use crate::backend::{Acquire, AdminState, Assignment, Backend, Event, Retry, Ticket};
use crate::balance::{Algorithm, ServerId};
use crate::config::{
    BackendConfig, CheckSpec, Config, FrontendConfig, Mode, ServerConfig, Timeouts,
};
use crate::health::{CheckTimeouts, HealthSource, Operational};
use crate::log::{ConnError, TermState};
use crate::proxy_protocol::{self, Version};
use crate::stats::{EventRate, FrontendStats, HttpStats, Snapshot};
use crate::{Error, Result};

struct ServerRt {
    send_proxy: Option<Version>,
    kill: watch::Sender<u64>,
    /// Wakes the check loop to run its next check within `fastinter`.
    recheck: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

struct BackendRt {
    core: Backend,
    timeouts: Timeouts,
    check: Option<CheckSpec>,
    servers: BTreeMap<ServerId, ServerRt>,
    waiters: HashMap<Ticket, oneshot::Sender<Assignment>>,
}

impl BackendRt {
    /// Delivers queue dispatches and acts on state events.
    fn flush(&mut self) {
        for (t, a) in self.core.take_dispatched() {
            match self.waiters.remove(&t) {
                Some(tx) => {
                    if let Err(a) = tx.send(a) {
                        // The waiter left between dispatch and delivery.
                        self.core.release(Instant::now(), a.server, 0, 0);
                    }
                }
                None => self.core.release(Instant::now(), a.server, 0, 0),
            }
        }
        for ev in self.core.take_events() {
            match ev {
                Event::ServerDown {
                    server,
                    shutdown_sessions: true,
                }
                | Event::ShutdownSessions { server } => {
                    if let Some(s) = self.servers.get(&server) {
                        s.kill.send_modify(|g| *g += 1);
                    }
                }
                Event::CheckSoon { server } => {
                    if let Some(s) = self.servers.get(&server) {
                        s.recheck.notify_one();
                    }
                }
                _ => {}
            }
        }
    }
}

struct Core {
    backends: BTreeMap<String, BackendRt>,
    frontends: BTreeMap<String, FrontendRt>,
}

/// A frontend's counters, and the rates its snapshot reads from.
struct FrontendRt {
    stats: FrontendStats,
    /// Connections accepted per second (HAProxy's `fe_conn_per_sec`).
    connections: EventRate,
    /// Sessions per second (`fe_sess_per_sec`).
    sessions: EventRate,
    /// HTTP requests received per second (`fe_req_per_sec`).
    requests: EventRate,
}

impl FrontendRt {
    fn new(stats: FrontendStats) -> Self {
        FrontendRt {
            stats,
            connections: EventRate::default(),
            sessions: EventRate::default(),
            requests: EventRate::default(),
        }
    }

    /// A connection was accepted (HAProxy's `proxy_inc_fe_conn_ctr`, and
    /// `feconn`, which `scur` shows, from the accept on).
    fn connection_accepted(&mut self, now: Instant) {
        let f = &mut self.stats;
        f.cur_sessions += 1;
        f.max_sessions = f.max_sessions.max(f.cur_sessions);
        f.total_connections += 1;
        self.connections.add(now);
    }

    /// The connection became a session: its PROXY header, if the frontend
    /// requires one, was accepted (`proxy_inc_fe_sess_ctr`).
    fn session_started(&mut self, now: Instant) {
        self.stats.total_sessions += 1;
        self.sessions.add(now);
    }

    /// An HTTP request was received (HAProxy's `proxy_inc_fe_req_ctr`);
    /// `None` in TCP mode.
    fn request_received(&mut self, now: Instant) -> Option<&mut HttpStats> {
        let h = self.stats.http.as_mut()?;
        h.requests += 1;
        self.requests.add(now);
        Some(h)
    }

    fn snapshot(&self, now: Instant) -> FrontendStats {
        FrontendStats {
            session_rate: self.sessions.current(now),
            session_rate_max: self.sessions.max(),
            connection_rate: self.connections.current(now),
            connection_rate_max: self.connections.max(),
            request_rate: self.requests.current(now),
            request_rate_max: self.requests.max(),
            ..self.stats.clone()
        }
    }
}

struct Shared {
    core: Mutex<Core>,
    /// Live session and check tasks (for leak checks).
    tasks: AtomicUsize,
    /// Running, soft-stopping or hard-stopped: sessions watch it.
    stop: watch::Sender<Stop>,
    /// `global.hard_stop_after`: bounds a soft stop.
    hard_stop_after: Option<Duration>,
    /// Listeners are bound with `SO_REUSEPORT` (unless `global.noreuseport`).
    reuseport: bool,
    /// HTTP mode: idle kept-alive server connections.
    pool: http::Pool,
    /// Sessions accepted by each worker (index = worker number).
    accepted: Mutex<Vec<Arc<AtomicU64>>>,
    /// `spread_checks` percent.
    spread_checks: u32,
    /// `global.seed`: seeds each check loop's jitter.
    seed: Option<u64>,
    /// `global.log`: where the frontends' access logs go.
    log: Option<logger::Logger>,
}

/// Where the proxy is in stopping (ordered: a hard stop follows a soft one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Running,
    /// [`Proxy::soft_stop`]: no new sessions; HTTP client connections close
    /// once idle.
    Soft,
    /// [`Proxy::hard_stop`]: every session closes now.
    Hard,
}

/// Resolves once the proxy's stop state reaches `at_least`.
async fn stopped(rx: &mut watch::Receiver<Stop>, at_least: Stop) {
    if rx.wait_for(|s| *s >= at_least).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct TaskGuard(Arc<Shared>);
impl TaskGuard {
    fn new(s: &Arc<Shared>) -> Self {
        s.tasks.fetch_add(1, Ordering::Relaxed);
        TaskGuard(s.clone())
    }
}
impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A frontend as bound by the first worker (what further workers bind again).
struct BoundFrontend {
    fe: Arc<FrontendConfig>,
    limit: Option<Arc<Semaphore>>,
    addrs: Vec<SocketAddr>,
}

/// A running proxy and its control handle (cheap to clone).
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
    listeners: Arc<Mutex<Vec<JoinHandle<()>>>>,
    local_addrs: Arc<BTreeMap<String, Vec<SocketAddr>>>,
    stats_addr: Option<SocketAddr>,
    bound: Arc<Vec<BoundFrontend>>,
}

/// Binds a listener like `TcpListener::bind` (`SO_REUSEADDR`), plus
/// `SO_REUSEPORT` unless `global.noreuseport` (as HAProxy's listeners):
/// per-core workers share an address with it, and so does a new process
/// started for a reload while the old one still listens.
fn bind_listener(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    if reuseport {
        sock.set_reuseport(true)?;
    }
    sock.bind(addr)?;
    sock.listen(LISTEN_BACKLOG)
}

/// listen(2) backlog of frontend sockets.
const LISTEN_BACKLOG: u32 = 1024;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Binds every frontend (and the stats listener) and starts serving.
    /// Must be called inside a tokio runtime. A bind address with port 0
    /// gets an ephemeral port: see [`Proxy::local_addrs`].
    pub async fn start(config: Config) -> Result<Proxy> {
        let now = Instant::now();
        let (stop, _) = watch::channel(Stop::Running);
        let shared = Arc::new(Shared {
            core: Mutex::new(Core {
                backends: BTreeMap::new(),
                frontends: BTreeMap::new(),
            }),
            tasks: AtomicUsize::new(0),
            stop,
            hard_stop_after: config.hard_stop_after,
            reuseport: config.reuseport,
            pool: http::Pool::default(),
            accepted: Mutex::new(vec![Arc::new(AtomicU64::new(0))]),
            spread_checks: config.spread_checks,
            seed: config.seed,
            log: config.log.as_ref().map(logger::Logger::new).transpose()?,
        });
        let accepted = shared.accepted.lock().unwrap_or_else(|e| e.into_inner())[0].clone();
        let mut bound = Vec::new();
        // HAProxy's start_checks: the first run of every check (health,
        // then agent, server by server, backend by backend) is spread over
        // the smallest check interval by its position.
        let intervals: Vec<Duration> = config
            .backends
            .iter()
            .flat_map(|b| {
                b.servers
                    .iter()
                    .flat_map(|s| first_intervals(b.check.as_ref(), s))
            })
            .flatten()
            .collect();
        let mut first = crate::health::first_check_delays(&intervals).into_iter();
        for b in &config.backends {
            add_backend(&shared, b, now, &mut first)?;
        }
        let mut listeners = vec![tokio::spawn(http::Pool::purge_loop(shared.clone()))];
        let mut local_addrs = BTreeMap::new();
        for fe in &config.frontends {
            shared.lock().frontends.insert(
                fe.name.clone(),
                FrontendRt::new(FrontendStats {
                    name: fe.name.clone(),
                    http: (fe.mode == Mode::Http).then(Default::default),
                    ..Default::default()
                }),
            );
            let fe = Arc::new(fe.clone());
            let limit = (fe.maxconn > 0).then(|| Arc::new(Semaphore::new(fe.maxconn as usize)));
            let mut addrs = Vec::new();
            for (i, a) in fe.binds.iter().enumerate() {
                let l = bind_listener(*a, config.reuseport)
                    .map_err(|source| Error::Bind { addr: *a, source })?;
                addrs.push(l.local_addr()?);
                listeners.push(tokio::spawn(accept_loop(
                    shared.clone(),
                    fe.clone(),
                    (l, i + 1),
                    limit.clone(),
                    accepted.clone(),
                )));
            }
            local_addrs.insert(fe.name.clone(), addrs.clone());
            bound.push(BoundFrontend { fe, limit, addrs });
        }
        let mut proxy = Proxy {
            shared,
            listeners: Arc::new(Mutex::new(listeners)),
            local_addrs: Arc::new(local_addrs),
            stats_addr: None,
            bound: Arc::new(bound),
        };
        if let Some(a) = config.stats_listen {
            let l = bind_listener(a, config.reuseport)
                .map_err(|source| Error::Bind { addr: a, source })?;
            proxy.stats_addr = Some(l.local_addr()?);
            let p = proxy.clone();
            proxy
                .listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tokio::spawn(control::stats_listener(p, l)));
        }
        Ok(proxy)
    }

    /// Thread per core: also serves every frontend on the calling (usually
    /// single-threaded) tokio runtime, through a new `SO_REUSEPORT` listener
    /// on each of the addresses the first worker bound, so the kernel spreads
    /// new connections over the workers. Sessions stay on the worker that
    /// accepted them; checks, the stats listener and the backend state stay
    /// shared. With `global.noreuseport` the addresses are bound without
    /// `SO_REUSEPORT` and this fails with [`Error::Bind`]. The runtime must
    /// keep running until the stop is over ([`Proxy::soft_stop`]'s future
    /// resolved, or the sessions closed after [`Proxy::hard_stop`]).
    /// Returns the new worker's number (the index in [`Proxy::accepted_per_worker`]).
    pub async fn serve_here(&self) -> Result<usize> {
        let accepted = Arc::new(AtomicU64::new(0));
        let mut listeners = Vec::new();
        for b in self.bound.iter() {
            for a in &b.addrs {
                let l = bind_listener(*a, self.shared.reuseport)
                    .map_err(|source| Error::Bind { addr: *a, source })?;
                listeners.push(l);
            }
        }
        let mut handles = Vec::new();
        let mut it = listeners.into_iter();
        for b in self.bound.iter() {
            for i in 0..b.addrs.len() {
                if let Some(l) = it.next() {
                    handles.push(tokio::spawn(accept_loop(
                        self.shared.clone(),
                        b.fe.clone(),
                        (l, i + 1),
                        b.limit.clone(),
                        accepted.clone(),
                    )));
                }
            }
        }
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(handles);
        let mut all = self
            .shared
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.push(accepted);
        Ok(all.len() - 1)
    }

    /// Sessions (TCP) or client connections (HTTP) accepted so far by each
    /// worker: index 0 is the runtime that called [`Proxy::start`], then one
    /// entry per [`Proxy::serve_here`].
    pub fn accepted_per_worker(&self) -> Vec<u64> {
        self.shared
            .accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    /// The bound addresses of each frontend.
    pub fn local_addrs(&self, frontend: &str) -> Vec<SocketAddr> {
        self.local_addrs.get(frontend).cloned().unwrap_or_default()
    }

    /// The stats listener's address.
    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_addr
    }

    /// Access log lines dropped because the log socket or the stdout
    /// writer could not take them at once (HAProxy's `DroppedLogs`).
    pub fn dropped_logs(&self) -> u64 {
        self.shared.log.as_ref().map_or(0, logger::Logger::dropped)
    }

    /// Live session and check tasks.
    pub fn task_count(&self) -> usize {
        self.shared.tasks.load(Ordering::Relaxed)
    }

    /// A stats snapshot, in name order.
    pub fn stats(&self) -> Snapshot {
        let now = Instant::now();
        let core = self.shared.lock();
        Snapshot {
            frontends: core.frontends.values().map(|f| f.snapshot(now)).collect(),
            backends: core.backends.values().map(|b| b.core.stats(now)).collect(),
            dropped_logs: self.dropped_logs(),
        }
    }

    fn with_backend<T>(
        &self,
        backend: &str,
        f: impl FnOnce(&mut BackendRt) -> Result<T>,
    ) -> Result<T> {
        let mut core = self.shared.lock();
        let b = core
            .backends
            .get_mut(backend)
            .ok_or_else(|| Error::NoSuchBackend(backend.to_string()))?;
        let r = f(b);
        b.flush();
        r
    }

    /// Moves a server to `addr` (HAProxy's `set server ... addr`): the next
    /// sessions, requests and checks go there, open ones finish where they
    /// are, and HTTP mode's idle connections to the old address are closed.
    /// Returns the old address.
    pub fn set_server_addr(
        &self,
        backend: &str,
        server: &str,
        addr: SocketAddr,
    ) -> Result<SocketAddr> {
        let (id, old) = self.with_backend(backend, |b| {
            let old = b.core.set_addr(server, addr)?;
            Ok((b.core.server_id(server), old))
        })?;
        if let Some(id) = id {
            self.shared.pool.readdress(backend, id, addr);
        }
        Ok(old)
    }

    /// Sets a server's weight (0..=256).
    pub fn set_weight(&self, backend: &str, server: &str, weight: u32) -> Result<()> {
        self.with_backend(backend, |b| {
            b.core.set_weight(Instant::now(), server, weight)
        })
    }

    /// Sets a server's admin state (ready, drain, maint).
    pub fn set_state(&self, backend: &str, server: &str, state: AdminState) -> Result<()> {
        self.with_backend(backend, |b| b.core.set_admin(Instant::now(), server, state))
    }

    /// Forces a server UP or DOWN (what a [`HealthSource`] does).
    pub fn set_health(&self, backend: &str, server: &str, state: Operational) -> Result<()> {
        self.with_backend(backend, |b| {
            b.core.set_operational(Instant::now(), server, state)
        })
    }

    /// Changes a backend's balancing algorithm (`uri`, `url_param` and
    /// `hdr` only on a backend of HTTP frontends).
    pub fn set_algorithm(&self, backend: &str, algorithm: Algorithm) -> Result<()> {
        self.with_backend(backend, |b| b.core.set_algorithm(algorithm))
    }

    /// Adds a server (its checks start at once if it has any: the start
    /// spreading applies to the configured servers). Its name follows the
    /// configuration's rule: not empty, only letters, digits, `_`, `.`, `:`
    /// and `-`.
    pub fn add_server(&self, backend: &str, server: ServerConfig) -> Result<()> {
        if let Some(problem) = crate::config::name_problem("server", &server.spec.name) {
            return Err(Error::Command(format!(
                "{problem}; fix: {}",
                crate::config::NAME_FIX
            )));
        }
        let shared = self.shared.clone();
        self.with_backend(backend, |b| {
            add_server_rt(
                &shared,
                backend,
                b,
                server,
                Instant::now(),
                &mut std::iter::empty(),
            )
        })
    }

    /// Removes a server; its sessions finish, its checks stop.
    pub fn remove_server(&self, backend: &str, server: &str) -> Result<()> {
        self.with_backend(backend, |b| {
            let id = b.core.remove_server(server, Instant::now())?;
            self.shared.pool.remove_server(backend, id);
            if let Some(rt) = b.servers.remove(&id) {
                for t in rt.tasks {
                    t.abort();
                }
            }
            Ok(())
        })
    }

    /// Runs a text command (see [`parse_command`]); returns the reply text.
    pub fn execute(&self, cmd: Command) -> Result<String> {
        control::execute(self, cmd)
    }

    /// Feeds server states from a [`HealthSource`] until it ends.
    pub fn attach_health_source(&self, mut source: impl HealthSource) -> JoinHandle<()> {
        let p = self.clone();
        tokio::spawn(async move {
            while let Some(r) = source.next_report().await {
                if let Err(e) = p.set_health(&r.backend, &r.server, r.state) {
                    tracing::warn!(error = %e, "health source report ignored");
                }
            }
        })
    }

    /// HAProxy's soft stop (SIGUSR1; `soft_stop()` in src/proxy.c): at
    /// once, the listeners (frontends and the stats listener) close, so new
    /// connections are refused, and the checks stop; open sessions go on,
    /// and an HTTP client connection closes once its request in progress is
    /// answered (with `Connection: close`), or at once when idle. The
    /// returned future resolves when no session is left, however long that
    /// takes, unless `global.hard_stop_after` is set: then the sessions
    /// still open that long after the call are closed ([`Proxy::hard_stop`]).
    /// It resolves to the number of sessions closed that way. Dropping it
    /// does not undo the stop; bound it with `tokio::time::timeout` and call
    /// [`Proxy::hard_stop`] for a deadline of the caller's own.
    pub fn soft_stop(&self) -> impl std::future::Future<Output = usize> + Send + 'static {
        self.stop_listening(Stop::Soft);
        let p = self.clone();
        let deadline = self
            .shared
            .hard_stop_after
            .map(|d| tokio::time::Instant::now() + d);
        async move {
            while p.open_sessions() > 0 {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    tracing::warn!("soft-stop running for too long, performing a hard-stop");
                    return p.hard_stop();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            0
        }
    }

    /// HAProxy's hard stop: the listeners and checks stop, and every open
    /// session (TCP session, HTTP client connection and its requests) is
    /// closed now. Returns how many were open. The sessions' tasks end soon
    /// after, on their own runtimes.
    pub fn hard_stop(&self) -> usize {
        self.stop_listening(Stop::Hard);
        self.open_sessions()
    }

    /// Closes the listeners, stops the checks and moves to `stop`.
    fn stop_listening(&self, stop: Stop) {
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            l.abort();
        }
        {
            let mut core = self.shared.lock();
            for b in core.backends.values_mut() {
                for s in b.servers.values_mut() {
                    for t in s.tasks.drain(..) {
                        t.abort();
                    }
                }
            }
        }
        self.shared.stop.send_if_modified(|s| {
            let later = stop > *s;
            if later {
                *s = stop;
            }
            later
        });
    }

    /// Open sessions (TCP) and client connections (HTTP), over all frontends.
    fn open_sessions(&self) -> usize {
        self.shared
            .lock()
            .frontends
            .values()
            .map(|f| f.stats.cur_sessions as usize)
            .sum()
    }
}

/// How many forwarding directions switched to splice(2) in this process
/// (a diagnostic: shows the zero-copy path is taken).
pub fn spliced_directions() -> u64 {
    forward::SPLICED.load(Ordering::Relaxed)
}

/// The intervals a server's health check and agent check start with (HAProxy's
/// `srv_getinter` at start), `None` for a check it does not have.
fn first_intervals(check: Option<&CheckSpec>, s: &ServerConfig) -> [Option<Duration>; 2] {
    let health = match (check, s.spec.check) {
        (Some(_), Some(params)) => Some(crate::health::Health::new(params).next_interval()),
        _ => None,
    };
    [health, s.agent_port.map(|_| s.agent_inter)]
}

/// A check loop's RNG for `spread_checks`: from `global.seed` when set (so
/// runs repeat), else from the clock; mixed with the check's identity so
/// that loops do not draw in step.
fn check_rng(seed: Option<u64>, backend: &str, id: ServerId, agent: bool) -> SmallRng {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (backend, id.0, agent).hash(&mut h);
    let base = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    SmallRng::seed_from_u64(base ^ h.finish())
}

fn add_backend(
    shared: &Arc<Shared>,
    b: &BackendConfig,
    now: Instant,
    first: &mut impl Iterator<Item = Duration>,
) -> Result<()> {
    let mut rt = BackendRt {
        core: Backend::new(b.name.clone(), b.options.clone(), now),
        timeouts: b.timeouts,
        check: b.check.clone(),
        servers: BTreeMap::new(),
        waiters: HashMap::new(),
    };
    for s in &b.servers {
        add_server_rt(shared, &b.name, &mut rt, s.clone(), now, first)?;
    }
    shared.lock().backends.insert(b.name.clone(), rt);
    Ok(())
}

fn add_server_rt(
    shared: &Arc<Shared>,
    backend: &str,
    b: &mut BackendRt,
    s: ServerConfig,
    now: Instant,
    first: &mut impl Iterator<Item = Duration>,
) -> Result<()> {
    if s.spec.check.is_some() && b.check.is_none() {
        return Err(Error::Command(format!(
            "backend `{backend}` has no check settings; add the server without checks"
        )));
    }
    let id = b.core.add_server(s.spec.clone(), now)?;
    shared
        .pool
        .configure(backend, id, s.pool, s.spec.addr, s.send_proxy);
    let (kill, _) = watch::channel(0u64);
    let recheck = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    let [health_first, agent_first] = first_intervals(b.check.as_ref(), &s)
        .map(|i| i.map(|_| first.next().unwrap_or(Duration::ZERO)));
    let timeout_check = b.check.as_ref().and_then(|c| c.timeout);
    let run = |target, inter, first: Option<Duration>, agent| checks::CheckRun {
        target,
        timeouts: CheckTimeouts::new(inter, b.timeouts.connect, timeout_check),
        first: first.unwrap_or(Duration::ZERO),
        spread: shared.spread_checks,
        rng: check_rng(shared.seed, backend, id, agent),
    };
    // The tokio handle may be absent when building before the runtime runs.
    if tokio::runtime::Handle::try_current().is_ok() {
        if let (Some(chk), true) = (&b.check, s.spec.check.is_some()) {
            tasks.push(tokio::spawn(checks::check_loop(
                shared.clone(),
                backend.to_string(),
                id,
                run(s.check_target(), chk.params.inter, health_first, false),
                chk.clone(),
                s.check_send_proxy(),
                recheck.clone(),
            )));
        }
        if !s.spec.slowstart.is_zero() {
            tasks.push(tokio::spawn(checks::warmup_loop(
                shared.clone(),
                backend.to_string(),
                id,
                crate::health::warmup_interval(s.spec.slowstart),
            )));
        }
        if let Some(a) = s.agent_target() {
            tasks.push(tokio::spawn(checks::agent_loop(
                shared.clone(),
                backend.to_string(),
                id,
                run(a, s.agent_inter, agent_first, true),
                s.agent_inter,
                s.agent_send.clone(),
            )));
        }
    }
    b.servers.insert(
        id,
        ServerRt {
            send_proxy: s.send_proxy,
            kill,
            recheck,
            tasks,
        },
    );
    b.flush();
    Ok(())
}

/// Accepts on `listener`, the frontend's bind address number `luid` (from
/// 1, HAProxy's listener id, which its logs name).
async fn accept_loop(
    shared: Arc<Shared>,
    fe: Arc<FrontendConfig>,
    (listener, luid): (TcpListener, usize),
    limit: Option<Arc<Semaphore>>,
    accepted: Arc<AtomicU64>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = match &limit {
            Some(sem) => match sem.clone().acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            },
            None => None,
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                accepted.fetch_add(1, Ordering::Relaxed);
                let guard = TaskGuard::new(&shared);
                let shared = shared.clone();
                let fe = fe.clone();
                // Two spawns, not one future with a match: a TCP session's
                // task then stays as small as its own state (idle memory).
                match fe.mode {
                    Mode::Tcp => tokio::spawn(async move {
                        session(&shared, &fe, stream, (peer, luid)).await;
                        drop(permit);
                        drop(guard);
                    }),
                    Mode::Http => tokio::spawn(async move {
                        http_session(&shared, &fe, stream, (peer, luid)).await;
                        drop(permit);
                        drop(guard);
                    }),
                };
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS...: log, count, back off, keep listening.
                if let Some(f) = shared.lock().frontends.get_mut(&fe.name) {
                    f.stats.accept_errors += 1;
                }
                tracing::warn!(frontend = %fe.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Why a session ended (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Denied,
}

async fn session(
    shared: &Arc<Shared>,
    fe: &FrontendConfig,
    mut client: TcpStream,
    (peer, luid): (SocketAddr, usize),
) {
    count_accept(shared, fe);
    // The access log's trace, from the accept (only when the frontend logs).
    let mut trace = fe.log.map(|_| logger::Trace::new(peer));
    let (end, bin, bout) = match client_addrs(shared, fe, &mut client, peer).await {
        Err(e) => {
            // Not a session: HAProxy logs why, in a line of its own.
            log_refused(shared, fe, luid, trace.take(), e);
            (End::Denied, 0, 0)
        }
        Ok(addrs) => {
            if let Some(t) = trace.as_mut() {
                t.client = addrs.0;
            }
            match session_inner(shared, fe, &mut client, peer, addrs, trace.as_mut()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(frontend = %fe.name, %peer, error = %e, "session error");
                    (End::Done, 0, 0)
                }
            }
        }
    };
    let mut core = shared.lock();
    let line = trace.map(|t| {
        let counts = t.counts(&core, &fe.name, &fe.backend);
        (t, counts)
    });
    if let Some(f) = core.frontends.get_mut(&fe.name) {
        let f = &mut f.stats;
        f.cur_sessions = f.cur_sessions.saturating_sub(1);
        f.bytes_in += bin;
        f.bytes_out += bout;
        if end == End::Denied {
            f.denied += 1;
        }
    }
    drop(core);
    if let (Some((t, counts)), Some(logger), Some(format)) = (line, &shared.log, fe.log) {
        t.emit(
            logger,
            format,
            fe,
            &fe.backend,
            counts,
            bout,
            TermState::NORMAL,
        );
    }
}

async fn http_session(
    shared: &Arc<Shared>,
    fe: &Arc<FrontendConfig>,
    mut stream: TcpStream,
    (peer, luid): (SocketAddr, usize),
) {
    count_accept(shared, fe);
    // For the line of a malformed request (`<BADREQ>`), when the frontend logs.
    let mut trace = fe.log.map(|_| logger::Trace::new(peer));
    let served = match client_addrs(shared, fe, &mut stream, peer).await {
        Ok(addrs) => {
            if let Some(t) = trace.as_mut() {
                t.client = addrs.0;
            }
            Some(http::serve(shared.clone(), fe.clone(), stream, peer, addrs).await)
        }
        Err(e) => {
            log_refused(shared, fe, luid, trace.take(), e);
            None
        }
    };
    // HAProxy's h1_handle_parsing_error and h1_handle_req_tout: a request
    // hyper refused (400, `PR--`) or whose head did not come in time (408,
    // `cR--`) is one more request, a request error and its 4xx, logged
    // with no backend (the frontend's name), no server and `<BADREQ>`.
    let refused = match served {
        Some(http::ConnEnd::BadRequest) => Some((400, TermState::BAD_REQUEST)),
        Some(http::ConnEnd::RequestTimeout) => Some((408, TermState::REQUEST_TIMEOUT)),
        _ => None,
    };
    let mut core = shared.lock();
    let line = trace.zip(refused).map(|(mut t, (status, term))| {
        t.status = Some(status);
        t.term = Some(term);
        let counts = t.counts(&core, &fe.name, "");
        (t, counts)
    });
    if let Some(f) = core.frontends.get_mut(&fe.name) {
        f.stats.cur_sessions = f.stats.cur_sessions.saturating_sub(1);
        if served.is_none() {
            f.stats.denied += 1;
        }
        if let Some((status, _)) = refused {
            if let Some(h) = f.request_received(Instant::now()) {
                h.request_errors += 1;
                h.count_response(status);
            }
        }
    }
    drop(core);
    if let (Some((t, counts)), Some(logger), Some(format)) = (line, &shared.log, fe.log) {
        t.emit(logger, format, fe, &fe.name, counts, 0, TermState::NORMAL);
    }
}

/// Logs a connection closed for its PROXY header (`e`; none for a hard
/// stop, which HAProxy does not log either) with `trace`, its accept's,
/// when the frontend logs.
fn log_refused(
    shared: &Shared,
    fe: &FrontendConfig,
    luid: usize,
    trace: Option<logger::Trace>,
    e: Option<ConnError>,
) {
    if let (Some(t), Some(e), Some(logger)) = (trace, e, &shared.log) {
        t.refused(logger, &fe.name, luid, e);
    }
}

/// Counts an accepted client connection on its frontend: as a connection
/// (and in `scur`) at once, as a session at once too unless a PROXY header
/// must come first ([`client_addrs`] counts it then). As HAProxy:
/// `session_new` counts the connection (`feconn`), `conn_complete_session`
/// the session once the PROXY header is in, so a rejected header is not a
/// session.
fn count_accept(shared: &Shared, fe: &FrontendConfig) {
    let now = Instant::now();
    let mut core = shared.lock();
    if let Some(f) = core.frontends.get_mut(&fe.name) {
        f.connection_accepted(now);
        if !fe.accept_proxy {
            f.session_started(now);
        }
    }
}

/// The client's `(source, destination)` addresses for everything after the
/// accept (balancing, X-Forwarded-For, what `send_proxy` sends on): with
/// `accept_proxy`, those its PROXY header names (the connection's own for
/// v1 `UNKNOWN`, v2 `LOCAL` and families without addresses), else the
/// connection's. An error: the header was bad, missing or not complete
/// within `timeout client` (why, as HAProxy logs it), or a hard stop came
/// first (`None`); the caller closes the connection and counts it as
/// denied.
async fn client_addrs(
    shared: &Shared,
    fe: &FrontendConfig,
    client: &mut TcpStream,
    peer: SocketAddr,
) -> std::result::Result<(SocketAddr, SocketAddr), Option<ConnError>> {
    let local = match client.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(frontend = %fe.name, %peer, error = %e, "no local address");
            return Err(Some(ConnError::Abort));
        }
    };
    if !fe.accept_proxy {
        return Ok((peer, local));
    }
    let mut stop = shared.stop.subscribe();
    let header = tokio::select! {
        r = read_proxy_header(client, fe.timeout_client) => r,
        // A hard stop does not wait for `timeout client`.
        _ = stopped(&mut stop, Stop::Hard) => return Err(None),
    };
    match header {
        Ok(addrs) => {
            if let Some(f) = shared.lock().frontends.get_mut(&fe.name) {
                f.session_started(Instant::now());
            }
            let addrs = addrs.unwrap_or((peer, local));
            tracing::debug!(frontend = %fe.name, %peer, client = %addrs.0, "PROXY header");
            Ok(addrs)
        }
        Err(e) => {
            tracing::info!(frontend = %fe.name, %peer, error = %e, "rejected");
            Err(Some(e))
        }
    }
}

/// Takes a PROXY header off `client`, as HAProxy's `conn_recv_proxy` does:
/// peeks at what has arrived, waits for more while the header is
/// incomplete, and reads exactly the header once it is whole, so that the
/// bytes behind it stay in the socket for whoever reads next (hyper, the
/// forwarder, an upgraded tunnel). Fails with HAProxy's reason for the
/// log; unlike HAProxy, which gives up on a header cut in two segments
/// (`Truncated`), it waits for the rest within `timeout client`.
async fn read_proxy_header(
    client: &mut TcpStream,
    timeout: Duration,
) -> std::result::Result<Option<(SocketAddr, SocketAddr)>, ConnError> {
    use rustix::net::{recv, RecvFlags};
    // Room for the longest header the parser accepts.
    let mut buf = vec![0u8; proxy_protocol::V2_MAX];
    let deadline = tokio::time::Instant::now() + timeout;
    let failed = |e: std::io::Error| {
        tracing::debug!(error = %e, "reading the PROXY header");
        ConnError::Abort
    };
    loop {
        let ready = tokio::time::timeout_at(deadline, client.ready(Interest::READABLE))
            .await
            .map_err(|_| ConnError::Timeout)?
            .map_err(failed)?;
        let mut parsed = None;
        let peeked = client.try_io(Interest::READABLE, || {
            let (_, n) = recv(
                &*client,
                &mut buf[..],
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            )?;
            let p = proxy_protocol::parse(&buf[..n]);
            let incomplete = n > 0 && matches!(p, Ok(None));
            parsed = Some(p);
            if incomplete {
                // Clears the readiness: wait for more bytes, not the same ones.
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match peeked {
            Ok(0) => return Err(ConnError::Empty),
            Ok(_) => {}
            // Incomplete: everything queued was peeked, so after the
            // client's FIN (a closed state tokio never clears) nothing
            // more can come.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if ready.is_read_closed() && matches!(parsed, Some(Ok(None))) {
                    return Err(ConnError::Truncated);
                }
                continue;
            }
            Err(e) => return Err(failed(e)),
        }
        match parsed {
            Some(Ok(Some((header, n)))) => {
                tokio::time::timeout_at(deadline, client.read_exact(&mut buf[..n]))
                    .await
                    .map_err(|_| ConnError::Timeout)?
                    .map_err(failed)?;
                return Ok(header.addresses);
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "bad PROXY header");
                let not_one = matches!(e, Error::ProxyProtocol(proxy_protocol::NO_SIGNATURE));
                return Err(if not_one {
                    ConnError::NotHeader
                } else {
                    ConnError::BadHeader
                });
            }
            _ => continue,
        }
    }
}

/// Waits for a queued ticket or the queue timeout.
async fn wait_queue(
    shared: &Arc<Shared>,
    backend: &str,
    ticket: Ticket,
    rx: oneshot::Receiver<Assignment>,
    timeout: Duration,
) -> Option<Assignment> {
    let mut wait = QueueWait {
        shared,
        backend,
        ticket,
        rx: Some(rx),
    };
    let r = match wait.rx.as_mut() {
        Some(rx) => tokio::time::timeout(timeout, rx).await,
        None => return None,
    };
    // Done waiting: the guard has nothing left to undo.
    let mut rx = wait.rx.take()?;
    match r {
        Ok(r) => r.ok(),
        Err(_) => {
            let mut core = shared.lock();
            let b = core.backends.get_mut(backend)?;
            let server = b.core.waits_for(ticket);
            if b.core.cancel(ticket) {
                b.waiters.remove(&ticket);
                b.core.note_queue_timeout(server);
                None
            } else {
                // Dispatched at the last moment: the assignment is in the channel.
                rx.try_recv().ok()
            }
        }
    }
}

/// A queued session or request whose future is dropped before its turn
/// came (an HTTP client that left, HAProxy's `abortonclose`): its ticket
/// leaves the queue at once, or, when it was dispatched between the drop
/// and this guard, the slot its assignment holds in the channel is given
/// back (dropped unread, it would stay counted on the server for good).
struct QueueWait<'a> {
    shared: &'a Arc<Shared>,
    backend: &'a str,
    ticket: Ticket,
    /// `None` once the wait is over.
    rx: Option<oneshot::Receiver<Assignment>>,
}

impl Drop for QueueWait<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        // From here on a dispatch fails to send and `flush` gives the slot
        // back; one sent before is read below.
        rx.close();
        let mut core = self.shared.lock();
        let Some(b) = core.backends.get_mut(self.backend) else {
            return;
        };
        if b.core.cancel(self.ticket) {
            b.waiters.remove(&self.ticket);
        } else if let Ok(a) = rx.try_recv() {
            b.core.release(Instant::now(), a.server, 0, 0);
        }
        b.flush();
    }
}

async fn session_inner(
    shared: &Arc<Shared>,
    fe: &FrontendConfig,
    client: &mut TcpStream,
    peer: SocketAddr,
    (src, dst): (SocketAddr, SocketAddr),
    mut trace: Option<&mut logger::Trace>,
) -> Result<(End, u64, u64)> {
    let _ = client.set_nodelay(true);
    let backend = fe.backend.as_str();

    // Acquire a server (maybe after queueing).
    let (timeouts, first) = {
        let now = Instant::now();
        let mut core = shared.lock();
        let Some(b) = core.backends.get_mut(backend) else {
            return Ok((End::Denied, 0, 0));
        };
        let t = b.timeouts;
        let key = b.core.client_key(src.ip());
        // A stick table's server (HAProxy's SF_DIRECT); nothing is looked
        // at without a table.
        let stuck = b.core.stick_match(now, src.ip(), dst.ip());
        let r = match stuck {
            Some(id) => b.core.acquire_direct(now, id, key),
            None => b.core.acquire(now, key),
        };
        let r = match r {
            Acquire::Queued(ticket) => {
                if let Some(t) = trace.as_deref_mut() {
                    t.queued(&b.core, ticket);
                }
                let (tx, rx) = oneshot::channel();
                b.waiters.insert(ticket, tx);
                Err((ticket, rx))
            }
            other => Ok(other),
        };
        b.flush();
        (t, (r, stuck, key))
    };
    let (first, stuck, key) = first;
    let got = match first {
        Ok(Acquire::Assigned(a)) => Ok(a),
        Ok(other) => {
            tracing::info!(frontend = %fe.name, %peer, backend, "no server available");
            Err(no_server_state(other))
        }
        Err((ticket, rx)) => match wait_queue(shared, backend, ticket, rx, timeouts.queue).await {
            Some(a) => Ok(a),
            None => {
                tracing::info!(frontend = %fe.name, %peer, backend, "timeout queue");
                Err(TermState::QUEUE_TIMEOUT)
            }
        },
    };
    if let Some(t) = trace.as_deref_mut() {
        t.assigned(got.as_ref().ok().map(|a| a.server));
        t.term = got.err();
    }
    let Ok(mut assignment) = got else {
        return Ok((End::Denied, 0, 0));
    };

    // Connect, with retries and redispatch.
    let mut direct = stuck == Some(assignment.server);
    let mut failures = 0u32;
    let (mut server, kill_rx, send_proxy) = loop {
        if let Some(t) = trace.as_deref_mut() {
            t.connecting();
        }
        let r = tokio::time::timeout(timeouts.connect, TcpStream::connect(assignment.addr)).await;
        let server_refused = matches!(&r, Ok(Err(e)) if refused(e));
        let timed_out = r.is_err();
        let pause = {
            let mut core = shared.lock();
            let Some(b) = core.backends.get_mut(backend) else {
                return Ok((End::Denied, 0, 0));
            };
            match r {
                Ok(Ok(s)) => {
                    if let Some(t) = trace.as_deref_mut() {
                        t.connected(false);
                    }
                    b.core.connect_ok(assignment.server);
                    b.core
                        .stick_store(Instant::now(), src.ip(), dst.ip(), assignment.server);
                    let (kill, sp) = match b.servers.get(&assignment.server) {
                        Some(rt) => (rt.kill.subscribe(), rt.send_proxy),
                        None => (watch::channel(0).1, None),
                    };
                    break (s, kill, sp);
                }
                Ok(Err(e)) => {
                    tracing::debug!(backend, server = %assignment.server, error = %e, "connect failed")
                }
                Err(_) => tracing::debug!(backend, server = %assignment.server, "timeout connect"),
            }
            failures += 1;
            let retry =
                b.core
                    .connect_failed(Instant::now(), assignment.server, failures, key, direct);
            b.flush();
            let pause = retry_pause(&retry, server_refused, timeouts.connect);
            direct &= matches!(retry, Retry::Same(_));
            if let Some(t) = trace.as_deref_mut() {
                t.retry(&retry);
                t.connect_failed(timed_out);
            }
            match retry {
                Retry::Same(a) | Retry::Redispatch(a) => assignment = a,
                Retry::GiveUp => {
                    tracing::info!(frontend = %fe.name, %peer, backend, failures, "connect failed, giving up");
                    return Ok((End::Denied, 0, 0));
                }
            }
            pause
        };
        if let Some(d) = pause {
            tokio::time::sleep(d).await;
        }
    };
    let _ = server.set_nodelay(true);
    let counters = forward::Counters::default();
    let res = async {
        if let Some(v) = send_proxy {
            server
                .write_all(&proxy_protocol::encode(v, src, dst))
                .await
                .map_err(Cut::Server)?;
        }
        relay(
            shared,
            client,
            &mut server,
            [Vec::new(), Vec::new()],
            &counters,
            fe,
            timeouts,
            kill_rx,
        )
        .await
    }
    .await;
    let bin = counters.c2s.load(Ordering::Relaxed);
    let bout = counters.s2c.load(Ordering::Relaxed);
    {
        let mut core = shared.lock();
        if let Some(b) = core.backends.get_mut(backend) {
            b.core.release(Instant::now(), assignment.server, bin, bout);
            b.flush();
        }
    }
    if let Some(t) = trace {
        t.term = Some(TermState::forwarding(logger::ended(&res)));
    }
    if let Err(e) = res {
        tracing::debug!(frontend = %fe.name, %peer, cut = %e, "session ended");
    }
    Ok((End::Done, bin, bout))
}

/// The termination state when the backend found no server.
fn no_server_state(a: Acquire) -> TermState {
    TermState::no_server(a == Acquire::QueueFull)
}

/// How long to wait before the next connect attempt. As HAProxy
/// (`back_handle_st_cer`): when the server or the network refused the
/// connection (`refused`: see [`refused`]), a retry on the same server waits
/// MIN(1 s, `timeout connect`), since an immediate one would likely fail the
/// same way. A connect timeout has waited already, a local error (out of
/// file descriptors or ports) is retried at once, and a redispatch goes to
/// another server at once.
fn retry_pause(retry: &Retry, refused: bool, timeout_connect: Duration) -> Option<Duration> {
    (matches!(retry, Retry::Same(_)) && refused)
        .then(|| timeout_connect.min(Duration::from_secs(1)))
}

/// Whether a connect error came from the server or the network (refused,
/// reset, unreachable) rather than from this host's resources.
fn refused(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | HostUnreachable
            | NetworkUnreachable
    )
}

/// Resolves when the server's kill switch fires (`on-marked-down
/// shutdown-sessions`). A removed server drops its switch: then it never
/// fires, and the sessions still on that server finish normally.
async fn marked_down(mut kill: watch::Receiver<u64>) {
    if kill.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why [`relay`] ended before both sides closed.
#[derive(Debug)]
enum Cut {
    /// The client's socket failed.
    Client(std::io::Error),
    /// The server's socket failed.
    Server(std::io::Error),
    /// `timeout tunnel` (both directions idle), or `timeout client` without
    /// it: HAProxy counts it as the client's abort.
    ClientTimeout,
    /// `timeout server` (without `timeout tunnel`): the server's abort.
    ServerTimeout,
    /// `on-marked-down shutdown-sessions` (or `shutdown-backup-sessions`).
    MarkedDown,
    /// A hard stop (`Proxy::hard_stop`, or `hard_stop_after` ending a soft
    /// stop).
    Stopping,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cut::Client(e) => write!(f, "client: {e}"),
            Cut::Server(e) => write!(f, "server: {e}"),
            Cut::ClientTimeout => f.write_str("timeout client or tunnel"),
            Cut::ServerTimeout => f.write_str("timeout server"),
            Cut::MarkedDown => f.write_str("server marked down: shutdown-sessions"),
            Cut::Stopping => f.write_str("proxy stopping"),
        }
    }
}

/// Forwards with idle timeouts, the server kill switch and the global one.
/// `initial`: bytes already read, to the server and to the client.
#[allow(clippy::too_many_arguments)]
async fn relay(
    shared: &Arc<Shared>,
    client: &mut TcpStream,
    server: &mut TcpStream,
    initial: [Vec<u8>; 2],
    counters: &forward::Counters,
    fe: &FrontendConfig,
    t: Timeouts,
    kill: watch::Receiver<u64>,
) -> Result<(), Cut> {
    let mut stop = shared.stop.subscribe();
    let timeout_client = fe.timeout_client;
    let fwd = forward::forward(client, server, initial, counters, fe.splice);
    tokio::pin!(fwd);
    let kill = marked_down(kill);
    tokio::pin!(kill);
    // Idle detection: a direction is idle when its byte count did not move
    // for its whole timeout (checked when the timer fires).
    let (tc, ts) = match t.tunnel {
        Some(tun) => (tun, tun),
        None => (timeout_client, t.server),
    };
    // Each timer remembers the byte count when it was armed.
    let (mut seen_c, mut seen_s) = (0u64, 0u64);
    let now = tokio::time::Instant::now();
    let (mut dc, mut ds) = (now + tc, now + ts);
    loop {
        let wake = if t.tunnel.is_some() { dc } else { dc.min(ds) };
        tokio::select! {
            r = &mut fwd => return r,
            _ = &mut kill => return Err(Cut::MarkedDown),
            _ = stopped(&mut stop, Stop::Hard) => return Err(Cut::Stopping),
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                let c = counters.c2s.load(Ordering::Relaxed);
                let s = counters.s2c.load(Ordering::Relaxed);
                if t.tunnel.is_some() {
                    if (c, s) == (seen_c, seen_s) {
                        return Err(Cut::ClientTimeout);
                    }
                    dc = now + tc;
                    (seen_c, seen_s) = (c, s);
                    continue;
                }
                if now >= dc {
                    if c == seen_c {
                        return Err(Cut::ClientTimeout);
                    }
                    dc = now + tc;
                    seen_c = c;
                }
                if now >= ds {
                    if s == seen_s {
                        return Err(Cut::ServerTimeout);
                    }
                    ds = now + ts;
                    seen_s = s;
                }
            }
        }
    }
}
