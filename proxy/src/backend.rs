//! The pure core of one backend: servers, their admin and health states,
//! session accounting, `maxconn` and the backend queue (`maxqueue`,
//! `timeout queue`), `retries` and `redispatch`, and the balancer.
//!
//! ```text
//!  inputs (all take `now`)                       outputs
//!  acquire(key) ──────────────┐           ┌── Acquire::{Assigned, Queued, NoServer, QueueFull}
//!  release(server, bytes)     │           ├── connect_failed -> Retry::{Same, Redispatch, GiveUp}
//!  connect_ok / connect_failed├─> Backend ├── take_dispatched(): queued tickets now assigned
//!  check_result / agent_result│           ├── take_events(): ServerUp / ServerDown{shutdown_sessions} / CheckSoon
//!  set_weight/admin/algorithm │           └── poll_timeout(): next queue deadline
//!  expire_queue(now) ─────────┘
//! ```
//!
//! Which servers may take a new session: those UP, in admin state READY, with
//! an effective weight above 0. If no primary server may, the backup servers
//! do: only the first usable one (by id), or all of them with `allbackups`.
//!
//! A session holds a slot on its server from [`Backend::acquire`] until
//! [`Backend::release`] (or [`Backend::connect_failed`]). When every candidate
//! is at its `maxconn` (ramped by `slowstart` while a server warms up, as
//! HAProxy's `srv_dynamic_maxconn` does; see [`Backend::warmup`]), the
//! client waits in the backend queue (FIFO, unbounded: `timeout queue` ends
//! the wait) until a slot frees. The hash algorithms (`source`,
//! `consistent`, `uri`, `url_param`, `hdr`), given a key (the caller's:
//! [`Backend::client_key`], [`Backend::request_key`]), bind a client to
//! its server whether it is full or not, as
//! HAProxy's do: the client then waits in that server's queue, which holds
//! at most the server's `maxqueue` (0 = unlimited; beyond it the client gets
//! [`Acquire::QueueFull`]). `random` queues a client whose least loaded
//! draw is full in the backend queue (HAProxy's `get_server_rnd`), even if
//! another server has room. One deque holds both kinds in arrival order, so
//! a freed slot goes to the oldest client that can use it.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::balance::{Algorithm, Balancer, Candidate, HashType, ServerId};
use crate::config::{HttpReuse, Mode};
use crate::health::{
    slowstart_maxconn, slowstart_weight, AgentAdmin, AgentReply, CheckParams, Health, Operational,
    Transition,
};
use crate::stats::{BackendStats, EventRate, HttpStats, ServerStats};
use crate::stick::StickTable;
use crate::{Error, Result};

/// Largest server weight (HAProxy's range is 0..=256).
pub const MAX_WEIGHT: u32 = 256;

/// Admin state of a server (HAProxy `set server ... state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// Normal operation.
    Ready,
    /// No new sessions; existing ones finish; checks continue.
    Drain,
    /// Maintenance: no new sessions, no checks. Entering it takes a
    /// running server DOWN ([`Event::ServerDown`]); leaving it restarts the
    /// health at `rise` (UP, one failed check from DOWN), as HAProxy does.
    Maint,
}

impl std::str::FromStr for AdminState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ready" => Ok(AdminState::Ready),
            "drain" => Ok(AdminState::Drain),
            "maint" => Ok(AdminState::Maint),
            _ => Err(Error::Command(format!(
                "unknown state `{s}`; use ready, drain or maint"
            ))),
        }
    }
}

/// The static description of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Name, unique in the backend.
    pub name: String,
    /// Address to connect to.
    pub addr: SocketAddr,
    /// Weight 0..=256.
    pub weight: u32,
    /// A backup server (used only when no primary is usable).
    pub backup: bool,
    /// Concurrent sessions limit; 0 = unlimited.
    pub maxconn: u32,
    /// Most clients waiting for this server in its own queue (the hash
    /// algorithms bind clients to a server); 0 = unlimited. HAProxy's `maxqueue`.
    pub maxqueue: u32,
    /// Check timing; `None` = no active checks (always UP unless told otherwise).
    pub check: Option<CheckParams>,
    /// Weight ramp after the server comes back UP.
    pub slowstart: Duration,
    /// An agent check is configured (HAProxy `agent-check`): a drained
    /// server then shows `DRAIN (agent)`, whoever set the drain, as in
    /// HAProxy's stats.
    pub agent: bool,
    /// HAProxy's `disabled`: the server starts in maintenance (`MAINT`, no
    /// checks, no traffic) until `set server ... state ready` or `enable
    /// server`.
    pub disabled: bool,
    /// Passive health (HAProxy `observe layer4`, `error-limit`, default
    /// `on-error fail-check`): this many consecutive connect errors count as
    /// one failed active check; 0 = off. Needs `check` (as HAProxy's
    /// `observe` needs health checks): [`Backend::add_server`] rejects it
    /// otherwise.
    pub error_limit: u32,
    /// `on-marked-down shutdown-sessions`.
    pub shutdown_sessions_on_down: bool,
    /// `on-marked-up shutdown-backup-sessions`: when this (primary) server
    /// comes UP, the sessions on every backup server are closed, so that
    /// their clients come back to the primaries.
    pub shutdown_backup_sessions_on_up: bool,
    /// HAProxy's server `cookie <value>`: the value of the backend's
    /// persistence cookie that names this server (several servers may
    /// share one); `None`: no persistence to this server.
    pub cookie: Option<String>,
}

impl ServerSpec {
    /// A server with HAProxy's defaults (weight 1, no limits, no checks).
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        ServerSpec {
            name: name.into(),
            addr,
            weight: 1,
            backup: false,
            maxconn: 0,
            maxqueue: 0,
            check: None,
            slowstart: Duration::ZERO,
            agent: false,
            disabled: false,
            error_limit: 0,
            shutdown_sessions_on_down: false,
            shutdown_backup_sessions_on_up: false,
            cookie: None,
        }
    }
}

/// Backend-wide options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendOptions {
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// HAProxy's `hash-type`: how `source`, `uri`, `url_param` and `hdr`
    /// map keys to servers.
    pub hash_type: HashType,
    /// Use all usable backups at once instead of the first one.
    pub allbackups: bool,
    /// Connect retries after the first failure.
    pub retries: u32,
    /// Redispatch to another server on the last retry (or when the server is unusable).
    pub redispatch: bool,
    /// Longest wait in the queue.
    pub timeout_queue: Duration,
    /// Bounded-load factor of the consistent and random algorithms,
    /// percent (0 = unbounded; HAProxy `hash-balance-factor`).
    pub hash_balance_factor: u32,
    /// Draws of the `random` algorithm (HAProxy `random(<draws>)`, default 2).
    pub random_draws: u32,
    /// Seed of the balancer's RNG.
    pub seed: u64,
    /// HTTP when an HTTP frontend uses the backend (HAProxy's backend
    /// `mode`): its stats then show the HTTP counters.
    pub mode: Mode,
    /// HTTP mode's persistence cookie (HAProxy's backend `cookie`).
    pub cookie: Option<std::sync::Arc<crate::cookie::Cookie>>,
    /// `option persist`: a cookie sends its request to its server whatever
    /// the server's state (DOWN and, as in HAProxy 2.6.12, MAINT too).
    /// The stick table's entries too.
    pub persist: bool,
    /// The stick table and its rule (HAProxy's `stick-table` and `stick
    /// on|match|store-request`).
    pub stick: Option<crate::stick::StickSpec>,
    /// HAProxy's `http-reuse` (HTTP mode): which idle server connections a
    /// request may take. Used by the IO layer's pool, not by the core.
    pub http_reuse: HttpReuse,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            algorithm: Algorithm::RoundRobin,
            hash_type: HashType::default(),
            allbackups: false,
            retries: 3,
            redispatch: true,
            timeout_queue: Duration::from_secs(5),
            hash_balance_factor: 125,
            random_draws: 2,
            seed: 0,
            mode: Mode::Tcp,
            cookie: None,
            persist: false,
            stick: None,
            http_reuse: HttpReuse::Safe,
        }
    }
}

/// How an HTTP request of a backend ended, for HAProxy's HTTP counters
/// ([`Backend::http_end`]). `u16`: the status the client got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpEnd {
    /// The server's response, forwarded to its end.
    Response(u16),
    /// The server's response, whose body the server aborted (HAProxy:
    /// `srv_abrt` and `eresp`).
    ServerAbort(u16),
    /// An upgraded connection's tunnel ended on `timeout server` (HAProxy:
    /// `srv_abrt` only).
    ServerTimeout(u16),
    /// The client went away: before the response headers (`None`: no
    /// response, nothing counted but `cli_abrt`) or during the server's
    /// response body.
    ClientAbort(Option<u16>),
    /// The server failed before its response headers: closed, reset or
    /// answered garbage (the proxy answered 502), or `timeout server`
    /// passed (504) (HAProxy: `eresp`).
    ServerError(u16),
    /// The proxy answered itself without the server's fault (503: no
    /// server, queue full or timed out, connects failed, server marked
    /// down).
    Local(u16),
}

impl HttpEnd {
    /// The status the client got, if it got a response.
    pub fn status(self) -> Option<u16> {
        match self {
            HttpEnd::Response(s)
            | HttpEnd::ServerAbort(s)
            | HttpEnd::ServerTimeout(s)
            | HttpEnd::ServerError(s)
            | HttpEnd::Local(s)
            | HttpEnd::ClientAbort(Some(s)) => Some(s),
            HttpEnd::ClientAbort(None) => None,
        }
    }
}

/// Where a session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// The server.
    pub server: ServerId,
    /// Its address.
    pub addr: SocketAddr,
}

/// A place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// Result of [`Backend::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Connect to this server now.
    Assigned(Assignment),
    /// Wait: the ticket shows up in [`Backend::take_dispatched`] or expires.
    Queued(Ticket),
    /// No server can take sessions (all down / drained / maint).
    NoServer,
    /// All servers full and the queue too.
    QueueFull,
}

/// What to do after a failed connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry the same server.
    Same(Assignment),
    /// Try this other server.
    Redispatch(Assignment),
    /// Stop: report the failure to the client.
    GiveUp,
}

/// Something the IO layer must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Passive health counted a failed check (HAProxy `on-error
    /// fail-check`): run the server's next active check within `fastinter`
    /// if it is due later (HAProxy requeues the check task at `fastinter`).
    CheckSoon {
        /// Which.
        server: ServerId,
    },
    /// A server went UP.
    ServerUp {
        /// Which.
        server: ServerId,
    },
    /// Close this server's sessions now: it is a backup, and a primary with
    /// `on-marked-up shutdown-backup-sessions` came UP.
    ShutdownSessions {
        /// Which.
        server: ServerId,
    },
    /// A server went DOWN.
    ServerDown {
        /// Which.
        server: ServerId,
        /// Close its sessions now (`on-marked-down shutdown-sessions`).
        shutdown_sessions: bool,
    },
}

#[derive(Debug, Clone, Default)]
struct Counters {
    cur: u32,
    max: u32,
    total: u64,
    bytes_in: u64,
    bytes_out: u64,
    connect_errors: u64,
    retries: u64,
    redispatches: u64,
    /// Connection attempts (HAProxy's `connect`).
    connects: u64,
    /// Requests sent over an idle connection (HAProxy's `reuse`).
    reuses: u64,
    check_failures: u64,
    down_transitions: u64,
    /// Times the balancer selected the server (HAProxy's `cum_lbconn`).
    lbtot: u64,
    /// Sessions per second (`sess_per_sec`), counted with `total`.
    sessions: EventRate,
    /// HTTP mode's counters.
    http: HttpStats,
}

#[derive(Debug, Clone)]
struct Server {
    spec: ServerSpec,
    weight: u32,
    admin: AdminState,
    health: Health,
    /// The agent reported `down`, `fail` or `stopped` and has not reported
    /// `up` since: active checks alone cannot bring the server UP.
    agent_down: bool,
    agent_maxconn: Option<u32>,
    ramp_from: Option<Instant>,
    errors_in_row: u32,
    last_change: Instant,
    check_status: String,
    /// HAProxy's `check.desc` of the last check (CSV `last_chk`).
    check_desc: String,
    /// HAProxy's `agent.desc` of the last agent check (CSV `last_agt`).
    agent_desc: String,
    check_duration: Option<Duration>,
    c: Counters,
    /// Most clients waiting for this server at once.
    queue_max: u32,
}

impl Server {
    /// A failed check (or `HANA`) is about to be fed to the health counter:
    /// `chkfail` counts it only while the counter is above 0, i.e. while the
    /// server is UP or on its way back UP (HAProxy 2.6
    /// `set_server_check_status`: `failed_checks` moves with `health--`,
    /// which happens only when `health > 0`). The manual's "only counts
    /// checks failed when the server is up" leaves out the second case; the
    /// code (and a run of HAProxy 2.6.12) counts it.
    fn count_check_failure(&mut self) {
        if self.health.counter() > 0 {
            self.c.check_failures += 1;
        }
    }

    fn maxconn(&self) -> u32 {
        self.agent_maxconn.unwrap_or(self.spec.maxconn)
    }

    /// `maxconn` in force now: ramped while the server warms up after
    /// coming back (HAProxy's `srv_dynamic_maxconn`).
    fn dyn_maxconn(&self, now: Instant) -> u32 {
        let m = self.maxconn();
        match self.ramp_from {
            Some(t) => slowstart_maxconn(m, now.saturating_duration_since(t), self.spec.slowstart),
            None => m,
        }
    }

    fn full(&self, now: Instant) -> bool {
        let m = self.dyn_maxconn(now);
        m != 0 && self.c.cur >= m
    }

    fn eff_weight(&self, now: Instant) -> u32 {
        if self.admin != AdminState::Ready || self.health.state() != Operational::Up {
            return 0;
        }
        let w = self.weight;
        match self.ramp_from {
            Some(t) => slowstart_weight(w, now.saturating_duration_since(t), self.spec.slowstart),
            None => w,
        }
    }
}

#[derive(Debug, Clone)]
struct Waiter {
    ticket: Ticket,
    /// The hash key ([`Backend::acquire`]).
    key: Option<u64>,
    deadline: Instant,
    /// The server it waits for (hash algorithms, a persistence cookie);
    /// `None`: any server.
    server: Option<ServerId>,
    /// Sent to `server` by its cookie (HAProxy's `SF_DIRECT`).
    direct: bool,
}

/// How the balancer sees server `id` at `now`.
fn candidate(now: Instant, id: ServerId, s: &Server) -> Candidate {
    let weight = s.eff_weight(now);
    Candidate {
        id,
        weight,
        static_weight: if weight > 0 { s.spec.weight.max(1) } else { 0 },
        user_weight: if weight > 0 { s.weight } else { 0 },
        sessions: s.c.cur,
        full: s.full(now),
    }
}

/// `percent` of `initial`, clamped to the weight range (HAProxy caps the
/// percentage at 25600 first).
fn percent_of(initial: u32, percent: u32) -> u32 {
    let w = u64::from(initial) * u64::from(percent.min(25_600)) / 100;
    u32::try_from(w.min(u64::from(MAX_WEIGHT))).unwrap_or(MAX_WEIGHT)
}

/// Whether a static algorithm refuses `weight` for a server configured with
/// `initial` (HAProxy: "only accepts weights '0%' and '100%'").
fn static_refuses(balancer: &Balancer, initial: u32, weight: u32) -> bool {
    balancer.is_static() && weight != 0 && weight != initial
}

/// One backend's pure state. See the module docs.
#[derive(Debug, Clone)]
pub struct Backend {
    name: String,
    opts: BackendOptions,
    balancer: Balancer,
    servers: BTreeMap<ServerId, Server>,
    next_id: u32,
    queue: VecDeque<Waiter>,
    next_ticket: u64,
    dispatched: Vec<(Ticket, Assignment)>,
    events: Vec<Event>,
    c: Counters,
    queue_max: u32,
    no_server: u64,
    queue_timeouts: u64,
    last_change: Instant,
    stick: Option<StickTable>,
}

impl Backend {
    /// An empty backend.
    pub fn new(name: impl Into<String>, opts: BackendOptions, now: Instant) -> Self {
        let mut balancer = Balancer::new(opts.algorithm.clone(), opts.seed);
        balancer.set_hash_method(opts.hash_type.method);
        balancer.set_balance_factor(opts.hash_balance_factor);
        balancer.set_random_draws(opts.random_draws);
        let stick = opts.stick.clone().map(StickTable::new);
        Backend {
            name: name.into(),
            opts,
            balancer,
            servers: BTreeMap::new(),
            next_id: 1,
            queue: VecDeque::new(),
            next_ticket: 1,
            dispatched: Vec::new(),
            events: Vec::new(),
            c: Counters::default(),
            queue_max: 0,
            no_server: 0,
            queue_timeouts: 0,
            last_change: now,
            stick,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The options.
    pub fn options(&self) -> &BackendOptions {
        &self.opts
    }

    /// Adds a server (effective for the next connection).
    pub fn add_server(&mut self, spec: ServerSpec, now: Instant) -> Result<ServerId> {
        if self.servers.values().any(|s| s.spec.name == spec.name) {
            return Err(Error::ServerExists {
                backend: self.name.clone(),
                server: spec.name,
            });
        }
        if spec.weight > MAX_WEIGHT {
            return Err(Error::Command(format!(
                "weight {} out of range 0..=256",
                spec.weight
            )));
        }
        if spec.error_limit > 0 && spec.check.is_none() {
            return Err(Error::Command(format!(
                "server `{}`: error_limit needs active checks; enable checks or set error_limit 0",
                spec.name
            )));
        }
        let id = ServerId(self.next_id);
        self.next_id += 1;
        let mut health = Health::new(spec.check.unwrap_or_default());
        let admin = if spec.disabled {
            // Down from the start: no transition, nothing counted (HAProxy
            // shows chkdown 0 for a server that starts disabled).
            let _ = health.force(Operational::Down);
            AdminState::Maint
        } else {
            AdminState::Ready
        };
        let server = Server {
            weight: spec.weight,
            spec,
            admin,
            health,
            agent_down: false,
            agent_maxconn: None,
            ramp_from: None,
            errors_in_row: 0,
            last_change: now,
            check_status: String::new(),
            check_desc: String::new(),
            agent_desc: String::new(),
            check_duration: None,
            c: Counters::default(),
            queue_max: 0,
        };
        self.servers.insert(id, server);
        self.dispatch(now);
        Ok(id)
    }

    /// Removes a server. Its open sessions finish; their release is ignored.
    pub fn remove_server(&mut self, name: &str, now: Instant) -> Result<ServerId> {
        let id = self.id_of(name)?;
        self.servers.remove(&id);
        self.dispatch(now);
        Ok(id)
    }

    /// The id of the server called `name`.
    pub fn server_id(&self, name: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .find(|(_, s)| s.spec.name == name)
            .map(|(id, _)| *id)
    }

    fn id_of(&self, name: &str) -> Result<ServerId> {
        self.server_id(name).ok_or_else(|| Error::NoSuchServer {
            backend: self.name.clone(),
            server: name.to_string(),
        })
    }

    /// A server's spec.
    pub fn server_spec(&self, id: ServerId) -> Option<&ServerSpec> {
        self.servers.get(&id).map(|s| &s.spec)
    }

    /// All server ids, in order.
    pub fn server_ids(&self) -> Vec<ServerId> {
        self.servers.keys().copied().collect()
    }

    /// The candidates for a new session (the primary/backup rule applied),
    /// without `exclude` (a redispatch never turns to the backups while a
    /// primary is usable).
    fn candidates(&self, now: Instant, exclude: Option<ServerId>) -> Vec<Candidate> {
        let mk = |(id, s): (&ServerId, &Server)| candidate(now, *id, s);
        let usable = |s: &Server| s.eff_weight(now) > 0;
        let prim: Vec<Candidate> = self
            .servers
            .iter()
            .filter(|(_, s)| !s.spec.backup && usable(s))
            .map(mk)
            .collect();
        let mut out = if !prim.is_empty() {
            prim
        } else {
            let mut backups = self
                .servers
                .iter()
                .filter(|(_, s)| s.spec.backup && usable(s));
            if self.opts.allbackups {
                backups.map(mk).collect()
            } else {
                backups.next().map(mk).into_iter().collect()
            }
        };
        out.retain(|c| Some(c.id) != exclude);
        out
    }

    fn take_slot(&mut self, now: Instant, id: ServerId) -> Option<Assignment> {
        let s = self.servers.get_mut(&id)?;
        s.c.cur += 1;
        s.c.max = s.c.max.max(s.c.cur);
        s.c.total += 1;
        s.c.sessions.add(now);
        let a = Assignment {
            server: id,
            addr: s.spec.addr,
        };
        self.c.cur += 1;
        self.c.max = self.c.max.max(self.c.cur);
        self.c.total += 1;
        self.c.sessions.add(now);
        self.requeue(now, id);
        Some(a)
    }

    /// Tells the balancer that server `id`'s session count changed
    /// (HAProxy's `server_take_conn` / `server_drop_conn`).
    fn requeue(&mut self, now: Instant, id: ServerId) {
        if let Some(s) = self.servers.get(&id) {
            self.balancer.requeue(&candidate(now, id, s));
        }
    }

    /// The balancer selected server `id` for a new session or a
    /// redispatch (HAProxy's `cum_lbconn`, counted in `assign_server`).
    fn count_lb(&mut self, id: ServerId) {
        self.c.lbtot += 1;
        if let Some(s) = self.servers.get_mut(&id) {
            s.c.lbtot += 1;
        }
    }

    fn try_assign(
        &mut self,
        now: Instant,
        key: Option<u64>,
        exclude: Option<ServerId>,
    ) -> Option<Assignment> {
        let cands = self.candidates(now, exclude);
        self.assign_from(now, &cands, key)
    }

    /// [`Backend::try_assign`] over candidates already computed.
    fn assign_from(
        &mut self,
        now: Instant,
        cands: &[Candidate],
        key: Option<u64>,
    ) -> Option<Assignment> {
        let id = self.balancer.pick(cands, key)?;
        // A hash algorithm names the client's server even when it is full,
        // and `random` the least loaded of its draws.
        if self.servers.get(&id)?.full(now) {
            return None;
        }
        self.take_slot(now, id)
    }

    /// Whether the algorithm binds this client to one server (the hash
    /// algorithms, given a key).
    fn binds(&self, key: Option<u64>) -> bool {
        key.is_some() && self.balancer.algorithm().hashes()
    }

    fn enqueue(
        &mut self,
        now: Instant,
        key: Option<u64>,
        server: Option<ServerId>,
        direct: bool,
    ) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.queue.push_back(Waiter {
            ticket,
            key,
            deadline: now + self.opts.timeout_queue,
            server,
            direct,
        });
        self.queue_max = self
            .queue_max
            .max(u32::try_from(self.queue.len()).unwrap_or(u32::MAX));
        if let Some(id) = server {
            let waiting = self.waiting_for(id);
            if let Some(s) = self.servers.get_mut(&id) {
                s.queue_max = s.queue_max.max(u32::try_from(waiting).unwrap_or(u32::MAX));
            }
        }
        ticket
    }

    /// Clients waiting for server `id` in its own queue.
    fn waiting_for(&self, id: ServerId) -> usize {
        self.queue.iter().filter(|w| w.server == Some(id)).count()
    }

    /// The server a queued client waits for: its hashed server (the hash
    /// algorithms), or `None` when any server will do or the ticket is not
    /// queued.
    pub fn waits_for(&self, ticket: Ticket) -> Option<ServerId> {
        self.queue
            .iter()
            .find(|w| w.ticket == ticket)
            .and_then(|w| w.server)
    }

    /// The hash key of a TCP session from `client` (`source`,
    /// `consistent`; `None` for the other algorithms, at no cost).
    pub fn client_key(&self, client: IpAddr) -> Option<u64> {
        self.opts.algorithm.client_key(client)
    }

    /// The hash key of an HTTP request ([`Algorithm::request_key`] with
    /// the backend's `hash_type`): `uri` is its origin form (path and
    /// query), `header` looks a request header up.
    pub fn request_key<'r>(
        &self,
        client: IpAddr,
        uri: &'r str,
        header: impl FnOnce(&str) -> Option<&'r [u8]>,
    ) -> Option<u64> {
        self.opts
            .algorithm
            .request_key(self.opts.hash_type, client, uri, header)
    }

    /// A new session asks for a server; `key` is its hash key
    /// ([`Backend::client_key`], [`Backend::request_key`]).
    pub fn acquire(&mut self, now: Instant, key: Option<u64>) -> Acquire {
        let cands = self.candidates(now, None);
        if cands.is_empty() {
            self.no_server += 1;
            self.c.connect_errors += 1;
            return Acquire::NoServer;
        }
        if self.binds(key) {
            // HAProxy's hash algorithms: the client's server, full or not.
            let Some(id) = self.balancer.pick(&cands, key) else {
                self.no_server += 1;
                self.c.connect_errors += 1;
                return Acquire::NoServer;
            };
            self.count_lb(id);
            let waiting = self.waiting_for(id);
            let Some((full, maxqueue)) = self
                .servers
                .get(&id)
                .map(|s| (s.full(now), s.spec.maxqueue as usize))
            else {
                return Acquire::NoServer;
            };
            if waiting == 0 && !full {
                if let Some(a) = self.take_slot(now, id) {
                    return Acquire::Assigned(a);
                }
            }
            if maxqueue > 0 && waiting >= maxqueue {
                self.count_failed_conn(Some(id));
                return Acquire::QueueFull;
            }
            return Acquire::Queued(self.enqueue(now, key, Some(id), false));
        }
        // FIFO fairness: nobody overtakes the backend queue. `random` runs
        // its draws all the same, as HAProxy's assign_server skips the
        // balancer for a non-empty backend queue only with first,
        // roundrobin and static-rr: a client queued because its draw was
        // full must not hold up the others.
        let random = *self.balancer.algorithm() == Algorithm::Random;
        if random || !self.queue.iter().any(|w| w.server.is_none()) {
            if let Some(a) = self.assign_from(now, &cands, key) {
                self.count_lb(a.server);
                return Acquire::Assigned(a);
            }
        }
        Acquire::Queued(self.enqueue(now, key, None, false))
    }

    /// Whether `s` takes a request its persistence cookie sends (HAProxy's
    /// `http_manage_client_side_cookies`: a server not STOPPED, or any with
    /// `option persist`): UP, also DRAIN (set or by the agent) and weight 0
    /// — that is what draining is for — but not DOWN or MAINT.
    fn takes_persistent(&self, s: &Server) -> bool {
        self.opts.persist || (s.admin != AdminState::Maint && s.health.state() == Operational::Up)
    }

    /// The server a persistence cookie's `value` names: the first (by id)
    /// whose `cookie` is `value` and that takes persistent requests. `None`:
    /// the request is balanced as any other (HAProxy does not answer 503
    /// for a cookie naming a DOWN server, with or without `redispatch`).
    pub fn cookie_server(&self, value: &str) -> Option<ServerId> {
        self.servers
            .iter()
            .find(|(_, s)| s.spec.cookie.as_deref() == Some(value) && self.takes_persistent(s))
            .map(|(id, _)| *id)
    }

    /// The server the stick table names for a session from `src` to `dst`
    /// (HAProxy's `process_sticking_rules` with `stick on` or `stick
    /// match`), if it still exists and takes persistent sessions as a
    /// cookie's server does (UP or DRAIN; any state with `persist`): send
    /// the session there with [`Backend::acquire_direct`]. A found entry is
    /// refreshed whatever its server's state. `None` (no table, no entry,
    /// a removed, DOWN or MAINT server): balance it.
    pub fn stick_match(&mut self, now: Instant, src: IpAddr, dst: IpAddr) -> Option<ServerId> {
        let t = self.stick.as_mut()?;
        if !t.spec().rule.matches() {
            return None;
        }
        let id = t.lookup(now, t.spec().key(src, dst)?)?;
        self.servers
            .get(&id)
            .filter(|s| self.takes_persistent(s))
            .map(|_| id)
    }

    /// The session from `src` to `dst` is connected to `server`: with
    /// `stick on` or `stick store-request`, the table remembers it (HAProxy's
    /// `process_store_rules`, which runs once the server connection is
    /// established, or the response head is in, in HTTP mode).
    pub fn stick_store(&mut self, now: Instant, src: IpAddr, dst: IpAddr, server: ServerId) {
        if let Some(t) = self.stick.as_mut().filter(|t| t.spec().rule.stores()) {
            if let Some(key) = t.spec().key(src, dst) {
                t.store(now, key, server);
            }
        }
    }

    /// The stick table, if the backend has one.
    pub fn stick_table(&mut self) -> Option<&mut StickTable> {
        self.stick.as_mut()
    }

    /// `show table` for this backend's table (`only`: one key), with the
    /// servers' names; `None` without a table.
    pub fn show_table(&mut self, now: Instant, only: Option<IpAddr>) -> Option<String> {
        let servers = &self.servers;
        let t = self.stick.as_mut()?;
        Some(t.show(&self.name, now, only, |id| {
            servers.get(&id).map(|s| s.spec.name.as_str())
        }))
    }

    /// A request for `server`, named by its persistence cookie
    /// ([`Backend::cookie_server`]; HAProxy's `SF_DIRECT`), skipping the
    /// balancer (`lbtot` is not counted). As HAProxy's
    /// `assign_server_and_queue`: when the server has a `maxconn` and is
    /// full or has clients waiting, the request waits in the server's queue;
    /// if that queue holds `maxqueue` already, the request is balanced
    /// normally with `redispatch` (`srv_redispatch_connect`), else refused
    /// ([`Acquire::QueueFull`], counted in `econ`).
    pub fn acquire_direct(&mut self, now: Instant, server: ServerId, key: Option<u64>) -> Acquire {
        let waiting = self.waiting_for(server);
        let Some(s) = self.servers.get(&server) else {
            return self.acquire(now, key);
        };
        if s.maxconn() != 0 && (waiting > 0 || s.full(now)) {
            let maxqueue = s.spec.maxqueue as usize;
            if maxqueue > 0 && waiting >= maxqueue {
                if self.opts.redispatch {
                    return self.acquire(now, key);
                }
                self.count_failed_conn(Some(server));
                return Acquire::QueueFull;
            }
            return Acquire::Queued(self.enqueue(now, key, Some(server), true));
        }
        match self.take_slot(now, server) {
            Some(a) => Acquire::Assigned(a),
            None => Acquire::NoServer,
        }
    }

    /// Hands free slots to queued clients, oldest first: a client bound to a
    /// server takes a slot of that server; the others (and a client whose
    /// server no longer takes sessions, as HAProxy redistributes a down
    /// server's queue) take the slot the balancer gives, or any free one.
    fn dispatch(&mut self, now: Instant) {
        // Every change of a server's state or weight ends here: `leastconn`
        // moves the servers whose key changed, or that left or came back.
        if *self.balancer.algorithm() == Algorithm::LeastConn {
            for (id, s) in &self.servers {
                self.balancer.requeue(&candidate(now, *id, s));
            }
        }
        let mut any_blocked = false;
        // Once no client may take any slot, only bound ones can still go.
        let any_bound = self.queue.iter().any(|w| w.server.is_some());
        let mut i = 0;
        while i < self.queue.len() {
            let w = &self.queue[i];
            let (key, bound, direct) = (w.key, w.server, w.direct);
            let usable = |s: &Server| {
                if direct {
                    self.takes_persistent(s)
                } else {
                    s.eff_weight(now) > 0
                }
            };
            let own = bound.filter(|id| self.servers.get(id).is_some_and(usable));
            // A client sent by its cookie to a server that went DOWN or into
            // MAINT waits on without `redispatch` (until `timeout queue`);
            // with it, it is balanced (HAProxy's `pendconn_redistribute`).
            let stays = direct && own.is_none() && !self.opts.redispatch;
            let a = match own {
                None if stays => None,
                Some(id) => match self.servers.get(&id) {
                    Some(s) if !s.full(now) => self.take_slot(now, id),
                    _ => None,
                },
                None if any_blocked => None,
                None => {
                    // The balancer's choice; if it names a full server (a
                    // hash algorithm, `random`), the least loaded server with
                    // room (HAProxy hands a freed slot to the backend
                    // queue's head).
                    let a = self
                        .try_assign(now, key, None)
                        .or_else(|| self.assign_least_loaded(now));
                    any_blocked = a.is_none();
                    a
                }
            };
            match a {
                Some(a) => {
                    if let Some(w) = self.queue.remove(i) {
                        self.dispatched.push((w.ticket, a));
                    }
                }
                None => {
                    if any_blocked && !any_bound {
                        break;
                    }
                    i += 1;
                }
            }
        }
    }

    /// A slot on the least loaded (sessions / weight, then id) candidate
    /// with room, whatever the algorithm.
    fn assign_least_loaded(&mut self, now: Instant) -> Option<Assignment> {
        let cands = self.candidates(now, None);
        let best = cands
            .iter()
            .filter(|c| c.weight > 0 && !c.full)
            .reduce(|b, c| {
                if u64::from(c.sessions) * u64::from(b.weight)
                    < u64::from(b.sessions) * u64::from(c.weight)
                {
                    c
                } else {
                    b
                }
            })?
            .id;
        self.take_slot(now, best)
    }

    /// Hands queued clients the slots that warming servers gained since:
    /// the slowstart ramp raises `maxconn` with time alone, so the IO layer
    /// calls this every [`crate::health::warmup_interval`] (HAProxy's
    /// `server_warmup` task, which grabs pending connections from the
    /// backend queue).
    pub fn warmup(&mut self, now: Instant) {
        self.dispatch(now);
    }

    /// The `maxconn` of `server` in force at `now` (0 = unlimited): the
    /// configured or agent-set one, ramped by slowstart while the server
    /// warms up. `None` if the server is gone.
    pub fn effective_maxconn(&self, server: ServerId, now: Instant) -> Option<u32> {
        self.servers.get(&server).map(|s| s.dyn_maxconn(now))
    }

    /// Queued clients that got a server since the last call.
    pub fn take_dispatched(&mut self) -> Vec<(Ticket, Assignment)> {
        std::mem::take(&mut self.dispatched)
    }

    /// Server state changes since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Removes a ticket from the queue (the client left); false if it was not queued.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        let before = self.queue.len();
        self.queue.retain(|w| w.ticket != ticket);
        self.queue.len() != before
    }

    /// Drops the tickets whose `timeout queue` passed.
    pub fn expire_queue(&mut self, now: Instant) -> Vec<Ticket> {
        let mut out = Vec::new();
        let mut bound = Vec::new();
        self.queue.retain(|w| {
            if w.deadline <= now {
                out.push(w.ticket);
                bound.push(w.server);
                false
            } else {
                true
            }
        });
        for server in bound {
            self.note_queue_timeout(server);
        }
        out
    }

    /// Counts a queue timeout detected by the IO layer; `server`: the
    /// server the client waited for ([`Backend::waits_for`]), if any.
    pub fn note_queue_timeout(&mut self, server: Option<ServerId>) {
        self.queue_timeouts += 1;
        self.count_failed_conn(server);
    }

    /// One session got no connection (HAProxy's `failed_conns`, `econ`:
    /// counted once per session that gives up after its retries, finds no
    /// server, finds its server's queue full, or times out in the queue),
    /// on the backend and on `server` when one was involved.
    fn count_failed_conn(&mut self, server: Option<ServerId>) {
        self.c.connect_errors += 1;
        if let Some(s) = server.and_then(|id| self.servers.get_mut(&id)) {
            s.c.connect_errors += 1;
        }
    }

    /// The next queue deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.iter().map(|w| w.deadline).min()
    }

    /// Clients waiting.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Where `ticket` waits, as the access log's `%sq/%bq`: one more than
    /// the clients ahead of it in its server's queue (a client bound to
    /// its server) or in the backend's, and 0 for the other queue.
    pub fn queue_position(&self, ticket: Ticket) -> (u32, u32) {
        let Some(i) = self.queue.iter().position(|w| w.ticket == ticket) else {
            return (0, 0);
        };
        let server = self.queue[i].server;
        let ahead = self.queue.iter().take(i).filter(|w| w.server == server);
        let pos = ahead.count() as u32 + 1;
        if server.is_some() {
            (pos, 0)
        } else {
            (0, pos)
        }
    }

    /// Sessions on the backend and on `server` now (HAProxy's `beconn`
    /// and `cur_sess`, the access log's `%bc` and `%sc`; 0 without a
    /// server).
    pub fn current_sessions(&self, server: Option<ServerId>) -> (u32, u32) {
        let s = server.and_then(|id| self.servers.get(&id));
        (self.c.cur, s.map_or(0, |s| s.c.cur))
    }

    /// A session ended: frees its slot and records its bytes.
    pub fn release(&mut self, now: Instant, server: ServerId, bytes_in: u64, bytes_out: u64) {
        self.c.cur = self.c.cur.saturating_sub(1);
        self.c.bytes_in += bytes_in;
        self.c.bytes_out += bytes_out;
        if let Some(s) = self.servers.get_mut(&server) {
            s.c.cur = s.c.cur.saturating_sub(1);
            s.c.bytes_in += bytes_in;
            s.c.bytes_out += bytes_out;
        }
        self.requeue(now, server);
        self.dispatch(now);
    }

    /// An HTTP request of this backend ended, on `server` if it had one,
    /// counted as HAProxy 2.6 counts it. The backend counts every request
    /// that got a response in `requests` and its status class (HAProxy's
    /// stream end: `be_counters.p.http.rsp[n]` and `cum_req`, responses the
    /// proxy generated included); a server counts only the responses it
    /// sent (`http_wait_for_response`: `rsp[n]`, `cum_req`), never the
    /// proxy's 502/503/504. Response errors, client and server aborts count
    /// on both.
    pub fn http_end(&mut self, server: Option<ServerId>, end: HttpEnd) {
        let status = end.status();
        // The proxy's own answers count on the backend only.
        let from_server = !matches!(end, HttpEnd::ServerError(_) | HttpEnd::Local(_));
        let mut srv = server.and_then(|id| self.servers.get_mut(&id));
        for h in std::iter::once(&mut self.c.http).chain(srv.as_mut().map(|s| &mut s.c.http)) {
            match end {
                HttpEnd::ServerAbort(_) => {
                    h.server_aborts += 1;
                    h.response_errors += 1;
                }
                HttpEnd::ServerTimeout(_) => h.server_aborts += 1,
                HttpEnd::ServerError(_) => h.response_errors += 1,
                HttpEnd::ClientAbort(_) => h.client_aborts += 1,
                HttpEnd::Response(_) | HttpEnd::Local(_) => {}
            }
        }
        if let Some(s) = status {
            self.c.http.requests += 1;
            self.c.http.count_response(s);
            if let Some(srv) = srv.filter(|_| from_server) {
                srv.c.http.requests += 1;
                srv.c.http.count_response(s);
            }
        }
    }

    /// The connect to `server` succeeded (resets the passive error count).
    /// Counts the attempt (HAProxy's `connect`, as [`Backend::connect_failed`]).
    pub fn connect_ok(&mut self, server: ServerId) {
        self.c.connects += 1;
        if let Some(s) = self.servers.get_mut(&server) {
            s.c.connects += 1;
            s.errors_in_row = 0;
        }
    }

    /// An HTTP request went to `server` over an idle kept-alive connection
    /// instead of a new one (HAProxy's `reuse`, counted where
    /// `connect_server` finds `SF_SRV_REUSED`).
    pub fn connection_reused(&mut self, server: ServerId) {
        self.c.reuses += 1;
        if let Some(s) = self.servers.get_mut(&server) {
            s.c.reuses += 1;
        }
    }

    /// The connect to `server` failed; `failures` counts the failures of this
    /// session so far (1 on the first); `direct`: the request's persistence
    /// cookie sent it there ([`Backend::acquire_direct`]): it is retried
    /// there while the server takes persistent requests, and redispatched
    /// only on the last retry (HAProxy's `stream_choose_redispatch` leaves
    /// out its round-robin rule for `SF_DIRECT`). Frees the slot, applies passive
    /// health, and decides about the retry (HAProxy: `retries` more attempts,
    /// the last one redispatched to another server with `redispatch`).
    pub fn connect_failed(
        &mut self,
        now: Instant,
        server: ServerId,
        failures: u32,
        key: Option<u64>,
        direct: bool,
    ) -> Retry {
        self.c.cur = self.c.cur.saturating_sub(1);
        self.c.total = self.c.total.saturating_sub(1);
        // A failed attempt counts in `connect` too, as in HAProxy.
        self.c.connects += 1;
        let mut usable = false;
        if let Some(s) = self.servers.get_mut(&server) {
            s.c.connects += 1;
            s.c.cur = s.c.cur.saturating_sub(1);
            s.c.total = s.c.total.saturating_sub(1);
            s.errors_in_row += 1;
            self.balancer.requeue(&candidate(now, server, s));
            if s.spec.error_limit > 0
                && s.spec.check.is_some()
                && s.errors_in_row >= s.spec.error_limit
            {
                s.errors_in_row = 0;
                self.passive_check_failed(now, server);
            }
            usable = self.servers.get(&server).is_some_and(|s| {
                let takes = if direct {
                    self.takes_persistent(s)
                } else {
                    s.eff_weight(now) > 0
                };
                takes && !s.full(now)
            });
        }
        // HAProxy (stream_choose_redispatch) redispatches at once, not only
        // on the last retry, when the algorithm does not care which server
        // (the round-robin kind: roundrobin, static-rr, random) and more
        // than one active server is usable; not for a request its cookie
        // sent (`SF_DIRECT`).
        let spread = !direct
            && matches!(
                self.balancer.algorithm(),
                Algorithm::RoundRobin | Algorithm::StaticRr | Algorithm::Random
            )
            && self
                .servers
                .values()
                .filter(|s| !s.spec.backup && s.eff_weight(now) > 0)
                .count()
                > 1;
        let retry = if failures > self.opts.retries {
            Retry::GiveUp
        } else if self.opts.redispatch && (failures == self.opts.retries || !usable || spread) {
            match self.try_assign(now, key, Some(server)) {
                Some(a) => Retry::Redispatch(a),
                None if usable => self
                    .take_slot(now, server)
                    .map_or(Retry::GiveUp, Retry::Same),
                None => Retry::GiveUp,
            }
        } else if usable {
            self.take_slot(now, server)
                .map_or(Retry::GiveUp, Retry::Same)
        } else {
            Retry::GiveUp
        };
        match retry {
            Retry::Same(_) => {
                self.c.retries += 1;
                if let Some(s) = self.servers.get_mut(&server) {
                    s.c.retries += 1;
                }
            }
            Retry::Redispatch(a) => {
                self.count_lb(a.server);
                self.c.redispatches += 1;
                if let Some(s) = self.servers.get_mut(&server) {
                    s.c.redispatches += 1;
                }
            }
            Retry::GiveUp => self.count_failed_conn(Some(server)),
        }
        self.dispatch(now);
        retry
    }

    /// `error_limit` consecutive connect errors: HAProxy's default `on-error
    /// fail-check` (check.c `__health_adjust`) simulates one failed health
    /// check (status `HANA`: the counter drops by one, so `fall` such bursts
    /// take a fully healthy server DOWN) and forces `fastinter` for the next
    /// check.
    fn passive_check_failed(&mut self, now: Instant, id: ServerId) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        if s.admin == AdminState::Maint {
            return;
        }
        s.check_status = "HANA".into();
        // HAProxy's `__health_adjust` (the only error observed here is a
        // failed connect).
        s.check_desc = format!(
            "Detected {} consecutive errors, last one was: L4 unsuccessful connection",
            s.spec.error_limit
        );
        s.count_check_failure();
        let t = s.health.observe(false);
        self.events.push(Event::CheckSoon { server: id });
        if let Some(t) = t {
            self.transition(now, id, t);
        }
    }

    fn set_health(&mut self, now: Instant, id: ServerId, state: Operational) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        // HAProxy's srv_set_running/srv_set_stopped do nothing in
        // maintenance; leaving it restarts the health anyway.
        if s.admin == AdminState::Maint {
            return;
        }
        if let Some(t) = s.health.force(state) {
            self.transition(now, id, t);
        }
    }

    fn transition(&mut self, now: Instant, id: ServerId, t: Transition) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        s.last_change = now;
        self.last_change = now;
        match t {
            Transition::WentUp => {
                if !s.spec.slowstart.is_zero() {
                    s.ramp_from = Some(now);
                }
                tracing::info!(backend = %self.name, server = %s.spec.name, "server UP");
                self.events.push(Event::ServerUp { server: id });
                // HAProxy srv_shutdown_backup_streams.
                if !s.spec.backup && s.spec.shutdown_backup_sessions_on_up {
                    let backups = self.servers.iter().filter(|(_, b)| b.spec.backup);
                    self.events
                        .extend(backups.map(|(b, _)| Event::ShutdownSessions { server: *b }));
                }
            }
            Transition::WentDown => {
                s.ramp_from = None;
                s.c.down_transitions += 1;
                tracing::warn!(backend = %self.name, server = %s.spec.name, "server DOWN");
                self.events.push(Event::ServerDown {
                    server: id,
                    shutdown_sessions: s.spec.shutdown_sessions_on_down,
                });
            }
        }
        self.dispatch(now);
    }

    /// An active check finished. `status` is HAProxy's check status
    /// (`L4OK`, `L4CON`, `L7STS`, ...), `desc` its description (stats
    /// `last_chk`: "Connection refused", an HTTP reason phrase, ...).
    pub fn check_result(
        &mut self,
        now: Instant,
        server: ServerId,
        ok: bool,
        status: &str,
        desc: &str,
        duration: Duration,
    ) {
        let Some(s) = self.servers.get_mut(&server) else {
            return;
        };
        // Checks are paused in maintenance: a late result changes nothing.
        if s.admin == AdminState::Maint {
            return;
        }
        s.check_status = status.to_string();
        s.check_desc = desc.to_string();
        s.check_duration = Some(duration);
        if !ok {
            s.count_check_failure();
        }
        // HAProxy: only an agent reporting `up` can turn a server the agent
        // took down up again; successful checks still refill the counter.
        let t = if s.agent_down {
            s.health.observe_held_down(ok)
        } else {
            s.health.observe(ok)
        };
        if let Some(t) = t {
            self.transition(now, server, t);
        }
    }

    /// An agent replied (HAProxy `agent-check`); a reply that says nothing
    /// ([`AgentReply::noted`]) only records its description.
    pub fn agent_result(&mut self, now: Instant, server: ServerId, reply: &AgentReply) {
        let Some(s) = self.servers.get_mut(&server) else {
            return;
        };
        s.agent_desc.clone_from(&reply.info);
        if let Some(p) = reply.weight_percent {
            // HAProxy (server_parse_weight_change_request): a percentage of
            // the *initial* weight, clamped to 256, that replaces the
            // current weight; a later `set weight` replaces it in turn. A
            // static algorithm refuses it (the agent's weight is ignored).
            let w = percent_of(s.spec.weight, p);
            if static_refuses(&self.balancer, s.spec.weight, w) {
                tracing::warn!(backend = %self.name, server = %s.spec.name, "agent weight {p}% ignored: static algorithm");
            } else {
                s.weight = w;
            }
        }
        if let Some(m) = reply.maxconn {
            s.agent_maxconn = Some(m);
        }
        let admin = reply.admin.map(|a| match a {
            AgentAdmin::Ready => AdminState::Ready,
            AgentAdmin::Drain => AdminState::Drain,
            AgentAdmin::Maint => AdminState::Maint,
        });
        if let Some(a) = admin {
            self.apply_admin(now, server, a);
        }
        if let Some(op) = reply.operational {
            if let Some(s) = self.servers.get_mut(&server) {
                s.agent_down = op == Operational::Down;
            }
            self.set_health(now, server, op);
        }
        self.dispatch(now);
    }

    fn apply_admin(&mut self, now: Instant, id: ServerId, admin: AdminState) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        if s.admin == admin {
            return;
        }
        let leaving_maint = s.admin == AdminState::Maint;
        s.admin = admin;
        s.last_change = now;
        self.last_change = now;
        tracing::info!(backend = %self.name, server = %s.spec.name, ?admin, "server admin state");
        let t = if admin == AdminState::Maint {
            // HAProxy (srv_update_status): a running server that enters
            // maintenance goes DOWN like a failed one: its streams are shut
            // down with `on-marked-down shutdown-sessions`, and a down
            // transition is counted. Its health is 0 until it leaves.
            s.health.force(Operational::Down)
        } else if leaving_maint {
            // HAProxy (srv_clr_admin_flag): `health = rise`, "start OK but
            // check immediately": UP (with slowstart), one failed check from
            // DOWN, unless the agent's `down` verdict holds it.
            s.health.leave_maint(s.agent_down)
        } else {
            None
        };
        match t {
            Some(t) => self.transition(now, id, t),
            None => self.dispatch(now),
        }
    }

    /// Sets a server's weight (0..=256), effective for the next connection.
    /// A static algorithm (`static-rr`, the `source` map) takes only 0 or
    /// the configured weight, as HAProxy's.
    pub fn set_weight(&mut self, now: Instant, name: &str, weight: u32) -> Result<()> {
        if weight > MAX_WEIGHT {
            return Err(Error::Command(format!(
                "weight {weight} out of range; use 0..=256"
            )));
        }
        let id = self.id_of(name)?;
        if let Some(s) = self.servers.get_mut(&id) {
            if static_refuses(&self.balancer, s.spec.weight, weight) {
                return Err(Error::Command(format!(
                    "backend `{}` uses the static algorithm {}, which takes only weight 0 or the configured {} (0% or 100%)",
                    self.name,
                    self.balancer.algorithm(),
                    s.spec.weight
                )));
            }
            s.weight = weight;
        }
        self.dispatch(now);
        Ok(())
    }

    /// Sets a server's weight to `percent` of its configured weight
    /// (HAProxy `set weight B/S N%`), clamped to 256.
    pub fn set_weight_percent(&mut self, now: Instant, name: &str, percent: u32) -> Result<()> {
        let id = self.id_of(name)?;
        let w = self
            .servers
            .get(&id)
            .map_or(0, |s| percent_of(s.spec.weight, percent));
        self.set_weight(now, name, w)
    }

    /// Moves a server to `addr` (HAProxy's `set server ... addr`): the next
    /// connections and checks go there; open sessions stay where they are.
    /// Returns the old address.
    pub fn set_addr(&mut self, name: &str, addr: SocketAddr) -> Result<SocketAddr> {
        let old = self.server_addr(name)?;
        let id = self.id_of(name)?;
        if let Some(s) = self.servers.get_mut(&id) {
            s.spec.addr = addr;
        }
        tracing::info!(backend = %self.name, server = %name, %old, new = %addr, "server address changed");
        Ok(old)
    }

    /// A server's address.
    pub fn server_addr(&self, name: &str) -> Result<SocketAddr> {
        let id = self.id_of(name)?;
        self.server_spec(id)
            .map(|s| s.addr)
            .ok_or_else(|| Error::NoSuchServer {
                backend: self.name.clone(),
                server: name.to_string(),
            })
    }

    /// Sets a server's `maxconn` (0: unlimited), effective at once: clients
    /// waiting in the queue get the slots it frees (HAProxy's `set maxconn
    /// server`). Replaces a limit an agent set, as HAProxy's last writer wins.
    pub fn set_maxconn(&mut self, now: Instant, name: &str, maxconn: u32) -> Result<()> {
        let id = self.id_of(name)?;
        if let Some(s) = self.servers.get_mut(&id) {
            s.spec.maxconn = maxconn;
            s.agent_maxconn = None;
        }
        self.dispatch(now);
        Ok(())
    }

    /// A server's current (set) and configured weight, HAProxy's `get weight`.
    pub fn weights(&self, name: &str) -> Result<(u32, u32)> {
        let id = self.id_of(name)?;
        Ok(self
            .servers
            .get(&id)
            .map_or((0, 0), |s| (s.weight, s.spec.weight)))
    }

    /// Sets a server's admin state.
    pub fn set_admin(&mut self, now: Instant, name: &str, admin: AdminState) -> Result<()> {
        let id = self.id_of(name)?;
        self.apply_admin(now, id, admin);
        Ok(())
    }

    /// Forces a server UP or DOWN (a [`crate::health::HealthSource`] report,
    /// HAProxy's `set server ... health`). An agent's `down` verdict stays:
    /// after the next DOWN, only the agent's `up` brings the server back.
    pub fn set_operational(&mut self, now: Instant, name: &str, state: Operational) -> Result<()> {
        let id = self.id_of(name)?;
        self.set_health(now, id, state);
        Ok(())
    }

    /// Switches the balancing algorithm, effective for the next connection.
    /// A request-hashing algorithm (`uri`, `url_param`, `hdr`) needs an
    /// HTTP backend.
    pub fn set_algorithm(&mut self, algorithm: Algorithm) -> Result<()> {
        if algorithm.needs_http() && self.opts.mode != Mode::Http {
            return Err(Error::Command(format!(
                "balance {} needs mode http, and backend `{}` serves TCP frontends",
                algorithm.name(),
                self.name
            )));
        }
        self.opts.algorithm = algorithm.clone();
        self.balancer.set_algorithm(algorithm);
        Ok(())
    }

    /// When to run the next active check of `server`; `None` if it has no
    /// checks, is in maintenance, or is gone.
    pub fn next_check_in(&self, server: ServerId) -> Option<Duration> {
        let s = self.servers.get(&server)?;
        if s.spec.check.is_none() || s.admin == AdminState::Maint {
            return None;
        }
        Some(s.health.next_interval())
    }

    /// True while `server` exists and is in maintenance.
    pub fn in_maint(&self, server: ServerId) -> bool {
        self.servers
            .get(&server)
            .is_some_and(|s| s.admin == AdminState::Maint)
    }

    /// The HTTP counters of `c`, shown in HTTP mode only.
    fn http_stats(&self, c: &Counters) -> Option<HttpStats> {
        (self.opts.mode == Mode::Http).then(|| c.http.clone())
    }

    /// A snapshot of the counters and states.
    pub fn stats(&self, now: Instant) -> BackendStats {
        let servers: Vec<ServerStats> = self
            .servers
            .iter()
            .map(|(id, s)| {
                // HAProxy's stats_fill_sv_computestate. NOLB (HAProxy's
                // STOPPING state, from `http-check disable-on-404`) has no
                // counterpart here.
                let (checked, h, p) = (s.spec.check.is_some(), &s.health, s.health.params());
                let full = p.rise.saturating_add(p.fall) - 1;
                let status = match (s.admin, h.state()) {
                    (AdminState::Maint, _) => "MAINT".to_string(),
                    (admin, Operational::Up) => {
                        let going_down = checked && h.counter() < full;
                        let n = format!("{}/{}", (h.counter() + 1).saturating_sub(p.rise), p.fall);
                        match (admin == AdminState::Drain, going_down) {
                            (true, _) if s.spec.agent => "DRAIN (agent)".to_string(),
                            (true, true) => format!("DRAIN {n}"),
                            (true, false) => "DRAIN".to_string(),
                            (false, true) => format!("UP {n}"),
                            (false, false) if checked => "UP".to_string(),
                            (false, false) => "no check".to_string(),
                        }
                    }
                    (_, Operational::Down) if s.agent_down => "DOWN (agent)".to_string(),
                    (_, Operational::Down) if checked && h.counter() > 0 => {
                        format!("DOWN {}/{}", h.counter(), p.rise)
                    }
                    (_, Operational::Down) => "DOWN".to_string(),
                };
                ServerStats {
                    id: *id,
                    name: s.spec.name.clone(),
                    addr: s.spec.addr,
                    status,
                    backup: s.spec.backup,
                    weight: s.weight,
                    effective_weight: s.eff_weight(now),
                    cur_sessions: s.c.cur,
                    max_sessions: s.c.max,
                    total_sessions: s.c.total,
                    session_rate: s.c.sessions.current(now),
                    session_rate_max: s.c.sessions.max(),
                    bytes_in: s.c.bytes_in,
                    bytes_out: s.c.bytes_out,
                    connect_errors: s.c.connect_errors,
                    retries: s.c.retries,
                    redispatches: s.c.redispatches,
                    connects: s.c.connects,
                    reuses: s.c.reuses,
                    check_status: s.check_status.clone(),
                    last_chk: s.check_desc.clone(),
                    last_agt: s.agent_desc.clone(),
                    check_duration_ms: s.check_duration.map(|d| d.as_millis() as u64),
                    check_failures: s.c.check_failures,
                    down_transitions: s.c.down_transitions,
                    lbtot: s.c.lbtot,
                    last_change_secs: now.saturating_duration_since(s.last_change).as_secs(),
                    maxconn: s.maxconn(),
                    maxqueue: s.spec.maxqueue,
                    queue_cur: u32::try_from(self.waiting_for(*id)).unwrap_or(u32::MAX),
                    queue_max: s.queue_max,
                    http: self.http_stats(&s.c),
                    cookie: s.spec.cookie.clone(),
                }
            })
            .collect();
        // HAProxy: `(px->lbprm.tot_weight > 0 || !px->srv) ? "UP" : "DOWN"`.
        let cands = self.candidates(now, None);
        let weight = cands.iter().fold(0u32, |w, c| w.saturating_add(c.weight));
        let up = self.servers.is_empty() || !cands.is_empty();
        BackendStats {
            name: self.name.clone(),
            status: if up { "UP" } else { "DOWN" }.to_string(),
            weight,
            algorithm: self.opts.algorithm.clone(),
            cur_sessions: self.c.cur,
            max_sessions: self.c.max,
            total_sessions: self.c.total,
            session_rate: self.c.sessions.current(now),
            session_rate_max: self.c.sessions.max(),
            bytes_in: self.c.bytes_in,
            bytes_out: self.c.bytes_out,
            connect_errors: self.c.connect_errors,
            retries: self.c.retries,
            redispatches: self.c.redispatches,
            connects: self.c.connects,
            reuses: self.c.reuses,
            lbtot: self.c.lbtot,
            queue_cur: u32::try_from(self.queue.len()).unwrap_or(u32::MAX),
            queue_max: self.queue_max,
            queue_timeouts: self.queue_timeouts,
            no_server: self.no_server,
            last_change_secs: now.saturating_duration_since(self.last_change).as_secs(),
            http: self.http_stats(&self.c),
            cookie: self.opts.cookie.as_ref().map(|c| c.name.clone()),
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_ip;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn backend(opts: BackendOptions, specs: Vec<ServerSpec>) -> (Backend, Instant) {
        let now = Instant::now();
        let mut b = Backend::new("b", opts, now);
        for s in specs {
            b.add_server(s, now).unwrap();
        }
        (b, now)
    }

    /// A complete agent line.
    fn reply(text: &str) -> AgentReply {
        crate::health::parse_agent_reply(format!("{text}\n").as_bytes()).unwrap()
    }

    fn assigned(a: Acquire) -> ServerId {
        match a {
            Acquire::Assigned(a) => a.server,
            other => panic!("expected assignment, got {other:?}"),
        }
    }

    /// HAProxy's `connect` counts every attempt (`connect_server`), failed
    /// ones too; `reuse` the requests sent over an idle connection.
    #[test]
    fn connect_counts_every_attempt_and_reuse_every_reused_connection() {
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![ServerSpec::new("a", addr(1))],
        );
        let a = assigned(b.acquire(now, None));
        assert!(matches!(
            b.connect_failed(now, a, 1, None, false),
            Retry::Same(_)
        ));
        b.connect_ok(a);
        b.release(now, a, 0, 0);
        let a = assigned(b.acquire(now, None));
        b.connection_reused(a);
        b.release(now, a, 0, 0);
        let st = b.stats(now);
        assert_eq!((st.connects, st.reuses), (2, 1));
        assert_eq!((st.servers[0].connects, st.servers[0].reuses), (2, 1));
    }

    #[test]
    fn backups_only_when_no_primary_and_allbackups() {
        let mut p = ServerSpec::new("p", addr(1));
        p.check = Some(CheckParams::default());
        let mut b1 = ServerSpec::new("b1", addr(2));
        b1.backup = true;
        let mut b2 = ServerSpec::new("b2", addr(3));
        b2.backup = true;
        let (mut b, now) = backend(BackendOptions::default(), vec![p, b1, b2]);
        for _ in 0..4 {
            assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
        }
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        assert_eq!(
            b.take_events(),
            vec![Event::ServerDown {
                server: ServerId(1),
                shutdown_sessions: false
            }]
        );
        for _ in 0..4 {
            assert_eq!(
                assigned(b.acquire(now, None)),
                ServerId(2),
                "first backup only"
            );
        }
        b.set_algorithm(Algorithm::RoundRobin).unwrap();
        let mut all = b.clone();
        all.opts.allbackups = true;
        let picks: Vec<ServerId> = (0..4).map(|_| assigned(all.acquire(now, None))).collect();
        assert!(
            picks.contains(&ServerId(2)) && picks.contains(&ServerId(3)),
            "{picks:?}"
        );
        // A drained primary counts as unusable too.
        b.set_operational(now, "p", Operational::Up).unwrap();
        assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
        b.set_admin(now, "p", AdminState::Drain).unwrap();
        assert_eq!(assigned(b.acquire(now, None)), ServerId(2));
    }

    /// Cookie persistence (HAProxy 2.6.12, `cookie SERVERID insert`): a
    /// cookie for a DRAIN or weight-0 server still goes there, one for a
    /// DOWN or MAINT server names nothing (the request is balanced, with or
    /// without `redispatch`), and with `option persist` both go there. A
    /// full server queues its direct clients up to `maxqueue`; beyond it
    /// HAProxy answered 503 without `redispatch` and balanced the request
    /// (new cookie) with it. No `lbtot` for direct requests.
    #[test]
    fn cookies_send_requests_to_their_server() {
        let specs: Vec<ServerSpec> = (1..=3)
            .map(|i| {
                let mut s = ServerSpec::new(format!("s{i}"), addr(i as u16));
                s.cookie = (i < 3).then(|| format!("c{i}"));
                s.maxconn = 1;
                s.maxqueue = 1;
                s
            })
            .collect();
        let opts = BackendOptions {
            redispatch: false,
            ..Default::default()
        };
        let (mut b, now) = backend(opts, specs);
        let s1 = ServerId(1);
        assert_eq!(b.cookie_server("c1"), Some(s1));
        assert_eq!(b.cookie_server("zz"), None);
        b.set_admin(now, "s1", AdminState::Drain).unwrap();
        assert_eq!(
            b.cookie_server("c1"),
            Some(s1),
            "drain keeps sticky clients"
        );
        assert_eq!(assigned(b.acquire_direct(now, s1, None)), s1);
        let Acquire::Queued(t) = b.acquire_direct(now, s1, None) else {
            panic!("full: waits for its server")
        };
        assert_eq!(b.waits_for(t), Some(s1));
        assert_eq!(b.acquire_direct(now, s1, None), Acquire::QueueFull);
        assert_eq!(b.stats(now).servers[0].connect_errors, 1);
        assert_eq!(b.stats(now).lbtot, 0, "no balancing");
        b.release(now, s1, 0, 0);
        assert_eq!(b.take_dispatched()[0].1.server, s1, "drained, still served");
        b.opts.redispatch = true;
        b.acquire_direct(now, s1, None);
        let a = assigned(b.acquire_direct(now, s1, None));
        assert_ne!(a, s1, "maxqueue full + redispatch: balanced");
        assert_eq!(b.stats(now).lbtot, 1);
        b.set_admin(now, "s1", AdminState::Ready).unwrap();
        b.set_weight(now, "s2", 0).unwrap();
        assert_eq!(b.cookie_server("c2"), Some(ServerId(2)), "weight 0");
        b.set_operational(now, "s2", Operational::Down).unwrap();
        assert_eq!(b.cookie_server("c2"), None, "DOWN");
        b.set_admin(now, "s1", AdminState::Maint).unwrap();
        assert_eq!(b.cookie_server("c1"), None, "MAINT");
        b.opts.persist = true;
        assert_eq!(b.cookie_server("c2"), Some(ServerId(2)), "persist: DOWN");
        assert_eq!(b.cookie_server("c1"), Some(s1), "persist: MAINT");
    }

    /// Stick tables (HAProxy 2.6.12, `stick-table type ip` + `stick on
    /// src`, roundrobin): an entry sends its client to a DRAIN server, not
    /// to a DOWN or MAINT one (balanced, and the store points the entry at
    /// the new server), nor to a removed one; `persist` takes DOWN and MAINT
    /// too. `stick match` never stores, `store-request` never matches, and
    /// a client from ::1 has no key in a `type ip` table.
    #[test]
    fn stick_tables_send_sessions_to_their_server() {
        use crate::stick::{Sample, StickRule, StickSpec, TableType};
        use std::net::Ipv4Addr;
        let spec = |rule| StickSpec {
            table_type: TableType::Ip,
            size: 10,
            expire: None,
            rule,
            sample: Sample::Src,
        };
        let opts = BackendOptions {
            stick: Some(spec(StickRule::On)),
            ..Default::default()
        };
        let specs = (1..=3)
            .map(|i| ServerSpec::new(format!("s{i}"), addr(i as u16)))
            .collect();
        let (mut b, now) = backend(opts, specs);
        let (c, dst) = (
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
        let s1 = ServerId(1);
        assert_eq!(b.stick_match(now, c, dst), None, "nothing stored yet");
        b.stick_store(now, c, dst, s1);
        assert_eq!(b.stick_match(now, c, dst), Some(s1));
        b.set_admin(now, "s1", AdminState::Drain).unwrap();
        assert_eq!(b.stick_match(now, c, dst), Some(s1), "drain keeps it");
        b.set_admin(now, "s1", AdminState::Maint).unwrap();
        assert_eq!(b.stick_match(now, c, dst), None, "MAINT");
        b.stick_store(now, c, dst, ServerId(2));
        b.set_admin(now, "s1", AdminState::Ready).unwrap();
        assert_eq!(b.stick_match(now, c, dst), Some(ServerId(2)), "moved");
        b.set_operational(now, "s2", Operational::Down).unwrap();
        assert_eq!(b.stick_match(now, c, dst), None, "DOWN");
        b.opts.persist = true;
        assert_eq!(b.stick_match(now, c, dst), Some(ServerId(2)), "persist");
        b.stick_store(now, c, dst, ServerId(3));
        b.remove_server("s3", now).unwrap();
        assert_eq!(b.stick_match(now, c, dst), None, "removed server");
        let v6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        b.stick_store(now, v6, dst, s1);
        assert_eq!(b.stick_table().unwrap().len(now), 1, "::1 has no ip key");
        let show = b.show_table(now, None).unwrap();
        assert_eq!(
            show,
            "# table: b, type: ip, size:10, used:1\n0x1: key=127.0.0.2 use=0 exp=0 server_id=3\n"
        );

        b.stick = Some(StickTable::new(spec(StickRule::Match)));
        b.stick_store(now, c, dst, s1);
        assert_eq!(b.stick_table().unwrap().len(now), 0, "match never stores");
        b.stick = Some(StickTable::new(spec(StickRule::StoreRequest)));
        b.stick_store(now, c, dst, s1);
        assert_eq!(b.stick_table().unwrap().len(now), 1);
        assert_eq!(
            b.stick_match(now, c, dst),
            None,
            "store-request never matches"
        );
    }

    /// A client queued on its cookie's server: when the server goes DOWN it
    /// waits on without `redispatch` and is balanced with it (HAProxy's
    /// `pendconn_redistribute`). A failed connect of a direct request is
    /// retried on its server under roundrobin (no early redispatch for
    /// `SF_DIRECT`), and redispatched on the last retry.
    #[test]
    fn direct_clients_wait_or_move_when_their_server_goes() {
        let specs: Vec<ServerSpec> = (1..=2)
            .map(|i| {
                let mut s = ServerSpec::new(format!("s{i}"), addr(i as u16));
                s.cookie = Some(format!("c{i}"));
                s.maxconn = 1;
                s
            })
            .collect();
        for redispatch in [false, true] {
            let opts = BackendOptions {
                redispatch,
                retries: 2,
                ..Default::default()
            };
            let (mut b, now) = backend(opts, specs.clone());
            let s1 = ServerId(1);
            assigned(b.acquire_direct(now, s1, None));
            let Acquire::Queued(_) = b.acquire_direct(now, s1, None) else {
                panic!("queued")
            };
            b.set_operational(now, "s1", Operational::Down).unwrap();
            let moved = b.take_dispatched();
            assert_eq!(moved.len(), usize::from(redispatch), "{redispatch}");
            if redispatch {
                assert_eq!(moved[0].1.server, ServerId(2));
                b.set_operational(now, "s1", Operational::Up).unwrap();
                b.release(now, s1, 0, 0);
                assigned(b.acquire_direct(now, s1, None));
                assert!(matches!(
                    b.connect_failed(now, s1, 1, None, true),
                    Retry::Same(_)
                ));
                b.release(now, ServerId(2), 0, 0);
                assert!(matches!(
                    b.connect_failed(now, s1, 2, None, true),
                    Retry::Redispatch(_)
                ));
            }
        }
    }

    #[test]
    fn hash_algorithms_wait_for_their_server_within_maxqueue() {
        let ip = |n| Some(hash_ip(IpAddr::from([10, 0, 0, n])));
        let specs: Vec<ServerSpec> = (1..=2)
            .map(|i| {
                let mut s = ServerSpec::new(format!("s{i}"), addr(i as u16));
                s.maxconn = 1;
                s.maxqueue = 1;
                s
            })
            .collect();
        let opts = BackendOptions {
            algorithm: Algorithm::Source,
            ..Default::default()
        };
        let (mut b, now) = backend(opts, specs);
        let a = assigned(b.acquire(now, ip(1)));
        // The same client again: its server is full, so it waits for it
        // (not for the other, free server), within that server's maxqueue.
        let Acquire::Queued(t) = b.acquire(now, ip(1)) else {
            panic!()
        };
        assert_eq!(b.waits_for(t), Some(a));
        assert_eq!(b.acquire(now, ip(1)), Acquire::QueueFull);
        let st = b.stats(now);
        let s = st.servers.iter().find(|s| s.id == a).unwrap();
        assert_eq!(
            (st.connect_errors, s.connect_errors),
            (1, 1),
            "queue full: econ"
        );
        assert_eq!((s.queue_cur, s.queue_max, st.queue_cur), (1, 1, 1));
        // A client hashed to the other server is not held up by that queue.
        let other = (2..=255)
            .find(|n| {
                let mut probe = b.clone();
                matches!(probe.acquire(now, ip(*n)), Acquire::Assigned(x) if x.server != a)
            })
            .expect("some client hashes to the other server");
        assert_ne!(assigned(b.acquire(now, ip(other))), a);
        // The slot of its server goes to the waiting client.
        b.release(now, a, 0, 0);
        let d = b.take_dispatched();
        assert_eq!((d[0].0, d[0].1.server), (t, a));
    }

    /// Traces recorded from HAProxy 2.6.12 (`balance leastconn`, TCP
    /// sessions held open; `rN` ends a session on server N).
    #[test]
    fn leastconn_follows_haproxys_tree_order() {
        let trace = |weights: &[u32], ops: &str| {
            let specs = weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let mut s = ServerSpec::new(format!("s{i}"), addr(i as u16 + 1));
                    s.weight = *w;
                    s
                })
                .collect();
            let opts = BackendOptions {
                algorithm: Algorithm::LeastConn,
                ..Default::default()
            };
            let (mut b, now) = backend(opts, specs);
            let mut out = Vec::new();
            for op in ops.split(' ') {
                match op.strip_prefix('r') {
                    Some(n) => b.release(now, ServerId(n.parse().unwrap()), 0, 0),
                    None => out.push(assigned(b.acquire(now, None)).0),
                }
            }
            out
        };
        assert_eq!(
            trace(&[1, 2, 3], "c c c c c c c c"),
            [1, 2, 3, 3, 2, 3, 3, 2]
        );
        assert_eq!(trace(&[1, 1, 1], "c c c r1 r2 c c c"), [1, 2, 3, 1, 2, 3]);
        assert_eq!(trace(&[1, 1, 1], "c c c r2 r1 c c c"), [1, 2, 3, 2, 1, 3]);
        assert_eq!(trace(&[1, 1, 1], "c r1 c c"), [1, 2, 3]);
        assert_eq!(trace(&[2, 1, 1], "c c c c r1 c c"), [1, 2, 3, 1, 1, 1]);
    }

    /// HAProxy's fwlc: a server avoided by a redispatch keeps its place in
    /// the tree; one that leaves it (drain, down, maint) comes back behind
    /// the servers with the same key.
    #[test]
    fn leastconn_places_after_redispatch_and_state_changes() {
        let opts = BackendOptions {
            algorithm: Algorithm::LeastConn,
            retries: 2,
            ..Default::default()
        };
        let specs = (1..=3)
            .map(|i| ServerSpec::new(format!("s{i}"), addr(i)))
            .collect();
        let (mut b, now) = backend(opts, specs);
        for _ in 0..3 {
            let a = assigned(b.acquire(now, None));
            assert_eq!(a, ServerId(1));
            assert!(matches!(
                b.connect_failed(now, a, 1, None, false),
                Retry::Same(_)
            ));
            let Retry::Redispatch(r) = b.connect_failed(now, a, 2, None, false) else {
                panic!()
            };
            // s1 went back to key 0 behind s2 and s3; the redispatch takes
            // s2, which goes back to key 0 behind s1 when it ends.
            assert_eq!(r.server, ServerId(2));
            b.release(now, r.server, 0, 0);
            // Now s3, s1, s2 at key 0: take and free s3 so s1 leads again.
            assert_eq!(assigned(b.acquire(now, None)), ServerId(3));
            b.release(now, ServerId(3), 0, 0);
        }
        b.set_admin(now, "s1", AdminState::Drain).unwrap();
        b.set_admin(now, "s1", AdminState::Ready).unwrap();
        let picks: Vec<u32> = (0..3).map(|_| assigned(b.acquire(now, None)).0).collect();
        assert_eq!(picks, [2, 3, 1]);
    }

    /// HAProxy's `get_server_rnd`: when the least loaded of the draws is
    /// full, the client waits in the backend queue (not for that server),
    /// and the next clients still draw.
    #[test]
    fn random_queues_in_the_backend_queue_when_its_draw_is_full() {
        let specs = (1..=2)
            .map(|i| {
                let mut s = ServerSpec::new(format!("s{i}"), addr(i));
                s.maxconn = 1;
                s
            })
            .collect();
        let opts = BackendOptions {
            algorithm: Algorithm::Random,
            random_draws: 1,
            hash_balance_factor: 0,
            ..Default::default()
        };
        let (mut b, now) = backend(opts, specs);
        let first = assigned(b.acquire(now, None));
        // Draw until one lands on the full server.
        let ticket = (0..100)
            .find_map(|_| match b.acquire(now, None) {
                Acquire::Queued(t) => Some(t),
                Acquire::Assigned(a) => {
                    assert_ne!(a.server, first);
                    b.release(now, a.server, 0, 0);
                    None
                }
                other => panic!("{other:?}"),
            })
            .expect("a draw on the full server");
        assert_eq!(b.waits_for(ticket), None, "the backend queue");
        let st = b.stats(now);
        assert_eq!((st.queue_cur, st.servers[0].queue_cur), (1, 0));
        // Not counted as a selection: HAProxy counts lbtot only when
        // assign_server returns a server.
        assert_eq!(st.lbtot, st.total_sessions);
        // The queued client does not hold up the others: they still draw,
        // and a draw on the free server is served.
        let other = ServerId(3 - first.0);
        let a = (0..100)
            .find_map(|_| match b.acquire(now, None) {
                Acquire::Assigned(a) => Some(a),
                Acquire::Queued(t) => {
                    assert!(b.cancel(t));
                    None
                }
                x => panic!("{x:?}"),
            })
            .expect("a draw on the free server");
        assert_eq!(a.server, other);
        // A freed slot goes to the queued client.
        b.release(now, first, 0, 0);
        assert_eq!(
            b.take_dispatched(),
            vec![(
                ticket,
                Assignment {
                    server: first,
                    addr: addr(first.0 as u16)
                }
            )]
        );
    }

    #[test]
    fn http_ends_count_as_haproxy_does() {
        let now = Instant::now();
        let opts = BackendOptions {
            mode: Mode::Http,
            ..Default::default()
        };
        let mut b = Backend::new("b", opts, now);
        let s = b
            .add_server(ServerSpec::new("s", "127.0.0.1:1".parse().unwrap()), now)
            .unwrap();
        for end in [
            HttpEnd::Response(200),
            HttpEnd::Response(404),
            HttpEnd::ServerAbort(200),
            HttpEnd::ServerTimeout(101),
            HttpEnd::ClientAbort(Some(302)),
            HttpEnd::ClientAbort(None),
            HttpEnd::ServerError(502),
            HttpEnd::ServerError(504),
            HttpEnd::Local(503),
        ] {
            b.http_end(Some(s), end);
        }
        b.http_end(None, HttpEnd::Local(503));
        let st = b.stats(now);
        let be = st.http.unwrap();
        // Every request with a response, the proxy's own 5xx included.
        assert_eq!((be.requests, be.responses), (9, [0, 1, 2, 1, 1, 4]));
        let srv = st.servers[0].http.clone().unwrap();
        // Only the server's own responses.
        assert_eq!((srv.requests, srv.responses), (5, [0, 1, 2, 1, 1, 0]));
        for h in [&be, &srv] {
            assert_eq!(
                (h.response_errors, h.server_aborts, h.client_aborts),
                (3, 2, 2)
            );
        }
        // A TCP-mode backend shows none.
        let t = Backend::new("t", BackendOptions::default(), now);
        assert_eq!(t.stats(now).http, None);
    }

    #[test]
    fn lbtot_counts_selections_for_new_sessions_and_redispatches() {
        let mut hashed = ServerSpec::new("h", addr(3));
        hashed.maxconn = 1;
        hashed.maxqueue = 1;
        let opts = BackendOptions {
            retries: 1,
            ..Default::default()
        };
        let (mut b, now) = backend(
            opts,
            vec![ServerSpec::new("a", addr(1)), ServerSpec::new("b", addr(2))],
        );
        let first = assigned(b.acquire(now, None));
        // The only retry redispatches: the other server is selected.
        let Retry::Redispatch(r) = b.connect_failed(now, first, 1, None, false) else {
            panic!()
        };
        let st = b.stats(now);
        let lb = |st: &BackendStats| (st.lbtot, st.servers[0].lbtot, st.servers[1].lbtot);
        assert_eq!(lb(&st), (2, 1, 1));
        assert_ne!(r.server, first);
        // A retry on the same server is no new selection.
        let (mut h, now) = backend(
            BackendOptions {
                algorithm: Algorithm::Source,
                retries: 2,
                redispatch: false,
                ..Default::default()
            },
            vec![hashed],
        );
        let ip = Some(hash_ip(IpAddr::from([10, 0, 0, 1])));
        let s = assigned(h.acquire(now, ip));
        assert!(matches!(
            h.connect_failed(now, s, 1, ip, false),
            Retry::Same(_)
        ));
        // Hashing selects the server even when the client then waits for
        // it or is refused (HAProxy counts in assign_server).
        assert!(matches!(h.acquire(now, ip), Acquire::Queued(_)));
        assert_eq!(h.acquire(now, ip), Acquire::QueueFull);
        let st = h.stats(now);
        assert_eq!((st.lbtot, st.servers[0].lbtot), (3, 3));
        // A queued client handed a slot later is not selected again.
        h.release(now, s, 0, 0);
        assert_eq!(h.take_dispatched().len(), 1);
        assert_eq!(h.stats(now).lbtot, 3);
    }

    #[test]
    fn a_primary_coming_up_can_shut_down_the_backup_sessions() {
        let mut p = ServerSpec::new("p", addr(1));
        p.check = Some(CheckParams {
            rise: 1,
            fall: 1,
            ..CheckParams::default()
        });
        p.shutdown_backup_sessions_on_up = true;
        let mut b1 = ServerSpec::new("b1", addr(2));
        b1.backup = true;
        let mut b2 = ServerSpec::new("b2", addr(3));
        b2.backup = true;
        let (mut b, now) = backend(BackendOptions::default(), vec![p, b1, b2]);
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        let _ = b.take_events();
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(
            b.take_events(),
            vec![
                Event::ServerUp {
                    server: ServerId(1)
                },
                Event::ShutdownSessions {
                    server: ServerId(2)
                },
                Event::ShutdownSessions {
                    server: ServerId(3)
                },
            ]
        );
    }

    #[test]
    fn set_weight_percent_and_the_static_algorithms() {
        let mut s = ServerSpec::new("a", addr(1));
        s.weight = 10;
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        b.set_weight_percent(now, "a", 250).unwrap();
        assert_eq!(b.stats(now).servers[0].weight, 25);
        b.set_weight_percent(now, "a", 100_000).unwrap();
        assert_eq!(b.stats(now).servers[0].weight, 256, "clamped");
        for algorithm in [Algorithm::StaticRr, Algorithm::Source] {
            b.set_algorithm(algorithm.clone()).unwrap();
            assert!(b.set_weight(now, "a", 7).is_err(), "{algorithm:?}");
            assert!(b.set_weight_percent(now, "a", 50).is_err());
            b.set_weight(now, "a", 0).unwrap();
            b.set_weight_percent(now, "a", 100).unwrap();
            assert_eq!(b.stats(now).servers[0].weight, 10);
            // An agent's other percentage is ignored there.
            b.agent_result(now, ServerId(1), &reply("50%"));
            assert_eq!(b.stats(now).servers[0].weight, 10);
        }
        b.set_algorithm(Algorithm::RoundRobin).unwrap();
        b.set_weight(now, "a", 7).unwrap();
        assert_eq!(b.stats(now).servers[0].weight, 7);
    }

    #[test]
    fn a_disabled_server_starts_in_maintenance() {
        let mut d = ServerSpec::new("d", addr(1));
        d.disabled = true;
        d.check = Some(CheckParams::default());
        let (mut b, now) = backend(BackendOptions::default(), vec![d]);
        let st = b.stats(now);
        assert_eq!(
            (
                st.servers[0].status.as_str(),
                st.servers[0].down_transitions
            ),
            ("MAINT", 0)
        );
        assert_eq!(b.acquire(now, None), Acquire::NoServer);
        assert_eq!(b.next_check_in(ServerId(1)), None, "no checks in maint");
        // Enabled: UP at once with health = rise, one failed check from
        // DOWN ("UP 1/3", HAProxy's srv_clr_admin_flag), checked again.
        b.set_admin(now, "d", AdminState::Ready).unwrap();
        assert_eq!(b.stats(now).servers[0].status, "UP 1/3");
        assert!(b.next_check_in(ServerId(1)).is_some());
        assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
    }

    #[test]
    fn set_addr_moves_the_next_connections() {
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![ServerSpec::new("a", addr(1))],
        );
        let Acquire::Assigned(first) = b.acquire(now, None) else {
            panic!()
        };
        assert_eq!(b.set_addr("a", addr(2)).unwrap(), addr(1));
        let Acquire::Assigned(next) = b.acquire(now, None) else {
            panic!()
        };
        assert_eq!((first.addr, next.addr), (addr(1), addr(2)));
        assert_eq!(b.server_spec(ServerId(1)).unwrap().addr, addr(2));
        assert!(b.set_addr("nope", addr(3)).is_err());
    }

    #[test]
    fn set_maxconn_frees_queued_clients_and_replaces_the_agents_limit() {
        let mut s = ServerSpec::new("a", addr(1));
        s.maxconn = 1;
        s.weight = 3;
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        assigned(b.acquire(now, None));
        let Acquire::Queued(t) = b.acquire(now, None) else {
            panic!("full: the second client waits");
        };
        b.set_maxconn(now, "a", 2).unwrap();
        let d = b.take_dispatched();
        assert_eq!((d.len(), d[0].0), (1, t), "the new slot goes to it");
        assert_eq!(b.stats(now).servers[0].maxconn, 2);
        // An agent's `maxconn:` replaces it, and the next set replaces that.
        b.agent_result(now, ServerId(1), &reply("maxconn:5"));
        assert_eq!(b.stats(now).servers[0].maxconn, 5);
        b.set_maxconn(now, "a", 0).unwrap();
        assert_eq!(b.stats(now).servers[0].maxconn, 0, "0: unlimited");
        b.set_weight(now, "a", 2).unwrap();
        assert_eq!(b.weights("a").unwrap(), (2, 3));
        assert!(b.set_maxconn(now, "nope", 1).is_err());
    }

    #[test]
    fn maxconn_queue_dispatch_and_timeout() {
        let mut s = ServerSpec::new("s", addr(1));
        s.maxconn = 2;
        s.maxqueue = 2;
        let opts = BackendOptions {
            timeout_queue: Duration::from_secs(1),
            ..Default::default()
        };
        let (mut b, now) = backend(opts, vec![s]);
        let a1 = assigned(b.acquire(now, None));
        let _a2 = assigned(b.acquire(now, None));
        let Acquire::Queued(t1) = b.acquire(now, None) else {
            panic!()
        };
        let Acquire::Queued(t2) = b.acquire(now, None) else {
            panic!()
        };
        // The backend queue has no cap (maxqueue bounds a server's own
        // queue, used by the hash algorithms): timeout queue ends the wait.
        let Acquire::Queued(t3) = b.acquire(now, None) else {
            panic!()
        };
        assert!(b.cancel(t3));
        assert_eq!(b.stats(now).queue_cur, 2);
        b.release(now, a1, 10, 20);
        let d = b.take_dispatched();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, t1, "FIFO");
        assert_eq!(b.poll_timeout(), Some(now + Duration::from_secs(1)));
        assert_eq!(b.expire_queue(now + Duration::from_millis(999)), vec![]);
        assert_eq!(b.expire_queue(now + Duration::from_secs(1)), vec![t2]);
        let st = b.stats(now);
        assert_eq!(
            (
                st.cur_sessions,
                st.queue_cur,
                st.queue_timeouts,
                st.bytes_out,
                st.connect_errors
            ),
            (2, 0, 1, 20, 1),
            "a queue timeout is a failed connection (HAProxy's econ)"
        );
        assert!(!b.cancel(t2));
    }

    #[test]
    fn no_server_when_all_down() {
        let mut s = ServerSpec::new("s", addr(1));
        s.check = Some(CheckParams::default());
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        assert_eq!(b.acquire(now, None), Acquire::NoServer);
        assert_eq!(b.stats(now).status, "DOWN");
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(b.acquire(now, None), Acquire::NoServer, "rise 2");
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
    }

    #[test]
    fn retries_then_redispatch_on_last_retry() {
        // leastconn cares which server: only the last retry redispatches.
        let opts = BackendOptions {
            retries: 2,
            algorithm: Algorithm::LeastConn,
            ..Default::default()
        };
        let (mut b, now) = backend(
            opts,
            vec![ServerSpec::new("a", addr(1)), ServerSpec::new("b", addr(2))],
        );
        let first = assigned(b.acquire(now, None));
        let Retry::Same(r1) = b.connect_failed(now, first, 1, None, false) else {
            panic!()
        };
        assert_eq!(r1.server, first);
        let Retry::Redispatch(r2) = b.connect_failed(now, first, 2, None, false) else {
            panic!()
        };
        assert_ne!(r2.server, first);
        assert_eq!(
            b.connect_failed(now, r2.server, 3, None, false),
            Retry::GiveUp
        );
        let st = b.stats(now);
        assert_eq!(
            (
                st.cur_sessions,
                st.connect_errors,
                st.retries,
                st.redispatches
            ),
            (0, 1, 1, 1),
            "econ: one session gave up"
        );
        let econ = |b: &Backend| {
            let st = b.stats(now);
            (
                st.connect_errors,
                st.servers[0].connect_errors,
                st.servers[1].connect_errors,
            )
        };
        assert_eq!(
            econ(&b),
            if r2.server == ServerId(1) {
                (1, 1, 0)
            } else {
                (1, 0, 1)
            }
        );
        // No server at all: the backend counts it, no server does.
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        b.set_admin(now, "b", AdminState::Maint).unwrap();
        assert_eq!(b.acquire(now, None), Acquire::NoServer);
        assert_eq!(econ(&b).0, 2);
    }

    #[test]
    fn round_robin_kinds_redispatch_at_the_first_failure() {
        for algorithm in [
            Algorithm::RoundRobin,
            Algorithm::StaticRr,
            Algorithm::Random,
        ] {
            let opts = BackendOptions {
                retries: 3,
                algorithm: algorithm.clone(),
                ..Default::default()
            };
            let mut backup = ServerSpec::new("c", addr(3));
            backup.backup = true;
            let (mut b, now) = backend(
                opts,
                vec![
                    ServerSpec::new("a", addr(1)),
                    ServerSpec::new("b", addr(2)),
                    backup,
                ],
            );
            let first = assigned(b.acquire(now, None));
            let Retry::Redispatch(r) = b.connect_failed(now, first, 1, None, false) else {
                panic!("{algorithm:?}: two active servers, redispatch at once")
            };
            assert_ne!(r.server, first);
            // One active server left: it is retried (the backup is not active).
            b.set_admin(now, "a", AdminState::Maint).unwrap();
            b.release(now, r.server, 0, 0);
            let only = assigned(b.acquire(now, None));
            assert_eq!(only, ServerId(2));
            assert!(
                matches!(b.connect_failed(now, only, 1, None, false), Retry::Same(a) if a.server == only),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn no_redispatch_option_stays_on_server() {
        let opts = BackendOptions {
            retries: 1,
            redispatch: false,
            ..Default::default()
        };
        let (mut b, now) = backend(
            opts,
            vec![ServerSpec::new("a", addr(1)), ServerSpec::new("b", addr(2))],
        );
        let first = assigned(b.acquire(now, None));
        assert!(
            matches!(b.connect_failed(now, first, 1, None, false), Retry::Same(a) if a.server == first)
        );
        assert_eq!(b.connect_failed(now, first, 2, None, false), Retry::GiveUp);
    }

    #[test]
    fn chkfail_counts_failures_while_health_is_above_zero() {
        // The sequence run against HAProxy 2.6.12 (`option httpchk`, rise 3
        // fall 1): 500 500 200 500 500 200 200 200 gave chkfail 2, chkdown
        // 1. The first 500 takes it DOWN (counted), the second finds health
        // 0 (not counted), 200 makes it DOWN 1/3, the next 500 is counted
        // (health 1 > 0), the last one is not.
        let mut s = ServerSpec::new("a", addr(1));
        s.check = Some(CheckParams {
            rise: 3,
            fall: 1,
            ..CheckParams::default()
        });
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        let a = ServerId(1);
        for ok in [false, false, true, false, false, true, true, true] {
            b.check_result(
                now,
                a,
                ok,
                if ok { "L7OK" } else { "L7STS" },
                "",
                Duration::ZERO,
            );
        }
        let st = &b.stats(now).servers[0];
        assert_eq!(st.status, "UP");
        assert_eq!((st.check_failures, st.down_transitions), (2, 1));
        // HANA (passive health) follows the same rule.
        b.passive_check_failed(now, a);
        b.passive_check_failed(now, a);
        let st = &b.stats(now).servers[0];
        assert_eq!((st.check_failures, st.down_transitions), (3, 2));
        // chkdown counts UP -> DOWN, entering maint included (HAProxy
        // 2.6.12: `set server state maint` on an UP server: chkdown + 1, on
        // a DOWN one: unchanged); leaving maint is UP, one failure DOWN.
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        b.check_result(now, a, false, "L4CON", "", Duration::ZERO);
        let st = &b.stats(now).servers[0];
        assert_eq!((st.check_failures, st.down_transitions), (4, 3));
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        assert_eq!(b.stats(now).servers[0].down_transitions, 3);
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        b.check_result(now, a, true, "L4OK", "", Duration::ZERO);
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        assert_eq!(b.stats(now).servers[0].down_transitions, 4);
    }

    #[test]
    fn passive_health_counts_as_one_failed_check() {
        let mut s = ServerSpec::new("a", addr(1));
        s.error_limit = 2;
        s.shutdown_sessions_on_down = true;
        s.check = Some(CheckParams {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            ..CheckParams::default() // rise 2, fall 3
        });
        let opts = BackendOptions {
            retries: 5,
            redispatch: false,
            ..Default::default()
        };
        let (mut b, now) = backend(opts, vec![s]);
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO); // full health
        assert_eq!(b.next_check_in(ServerId(1)), Some(Duration::from_secs(2)));
        // One burst of error_limit errors = one failed check, not DOWN.
        let a = assigned(b.acquire(now, None));
        assert!(matches!(
            b.connect_failed(now, a, 1, None, false),
            Retry::Same(_)
        ));
        assert_eq!(b.take_events(), vec![]);
        assert!(matches!(
            b.connect_failed(now, a, 2, None, false),
            Retry::Same(_)
        ));
        assert_eq!(b.take_events(), vec![Event::CheckSoon { server: a }]);
        let st = &b.stats(now).servers[0];
        assert_eq!(
            (st.status.as_str(), st.check_status.as_str()),
            ("UP 2/3", "HANA")
        );
        assert_eq!(st.check_failures, 1);
        assert_eq!(
            b.next_check_in(a),
            Some(Duration::from_millis(500)),
            "fastinter"
        );
        // A successful connect resets the count of errors in a row.
        b.connect_ok(a);
        b.release(now, a, 0, 0);
        let a = assigned(b.acquire(now, None));
        assert!(matches!(
            b.connect_failed(now, a, 1, None, false),
            Retry::Same(_)
        ));
        assert_eq!(b.stats(now).servers[0].status, "UP 2/3");
        // `fall` bursts from full health take it DOWN.
        for failures in 2..=5 {
            let _ = b.connect_failed(now, a, failures, None, false);
        }
        assert_eq!(
            b.take_events(),
            vec![
                Event::CheckSoon { server: a },
                Event::CheckSoon { server: a },
                Event::ServerDown {
                    server: a,
                    shutdown_sessions: true
                }
            ]
        );
        assert_eq!(b.acquire(now, None), Acquire::NoServer);
        // The active checks bring it back.
        b.check_result(now, a, true, "L4OK", "", Duration::ZERO);
        b.check_result(now, a, true, "L4OK", "", Duration::ZERO);
        assert_eq!(assigned(b.acquire(now, None)), a);
    }

    #[test]
    fn passive_health_needs_checks() {
        let mut s = ServerSpec::new("a", addr(1));
        s.error_limit = 2;
        let mut b = Backend::new("b", BackendOptions::default(), Instant::now());
        let e = b.add_server(s, Instant::now()).unwrap_err().to_string();
        assert!(e.contains("error_limit") && e.contains("checks"), "{e}");
    }

    #[test]
    fn slowstart_ramps_after_recovery() {
        let mut s = ServerSpec::new("a", addr(1));
        s.weight = 100;
        s.slowstart = Duration::from_secs(10);
        s.check = Some(CheckParams {
            rise: 1,
            fall: 1,
            ..Default::default()
        });
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        assert_eq!(
            b.stats(now).servers[0].effective_weight,
            100,
            "no ramp at startup"
        );
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(
            b.stats(now + Duration::from_secs(2)).servers[0].effective_weight,
            20
        );
        assert_eq!(
            b.stats(now + Duration::from_secs(11)).servers[0].effective_weight,
            100
        );
    }

    #[test]
    fn slowstart_ramps_maxconn_too() {
        let mut s = ServerSpec::new("a", addr(1));
        s.maxconn = 10;
        s.slowstart = Duration::from_secs(10);
        s.check = Some(CheckParams {
            rise: 1,
            fall: 1,
            ..Default::default()
        });
        let opts = BackendOptions {
            timeout_queue: Duration::from_secs(60),
            ..Default::default()
        };
        let (mut b, t0) = backend(opts, vec![s]);
        assert_eq!(
            b.effective_maxconn(ServerId(1), t0),
            Some(10),
            "no ramp at startup"
        );
        b.check_result(t0, ServerId(1), false, "L4CON", "", Duration::ZERO);
        b.check_result(t0, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(b.effective_maxconn(ServerId(1), t0), Some(1));
        // 3 s into a 10 s slowstart: max(1, 10 * 30 / 100) = 3 sessions.
        let t3 = t0 + Duration::from_secs(3);
        for _ in 0..3 {
            assert_eq!(assigned(b.acquire(t3, None)), ServerId(1));
        }
        let Acquire::Queued(q1) = b.acquire(t3, None) else {
            panic!("the 4th session waits")
        };
        let Acquire::Queued(q2) = b.acquire(t3, None) else {
            panic!()
        };
        assert_eq!(
            b.stats(t3).servers[0].maxconn,
            10,
            "stats show the configured limit"
        );
        // Time alone raises the limit; the warmup tick hands the slots over.
        let t5 = t0 + Duration::from_secs(5);
        b.warmup(t5);
        let got: Vec<Ticket> = b.take_dispatched().into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, vec![q1, q2]);
        assert!(matches!(b.acquire(t5, None), Acquire::Queued(_)), "5 of 5");
        b.warmup(t0 + Duration::from_secs(10));
        assert_eq!(b.take_dispatched().len(), 1);
        assert_eq!(
            b.effective_maxconn(ServerId(1), t0 + Duration::from_secs(10)),
            Some(10)
        );
    }

    #[test]
    fn runtime_weight_admin_add_remove_and_algorithm() {
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![ServerSpec::new("a", addr(1))],
        );
        let c = b.add_server(ServerSpec::new("c", addr(3)), now).unwrap();
        assert!(matches!(
            b.add_server(ServerSpec::new("c", addr(3)), now),
            Err(Error::ServerExists { .. })
        ));
        b.set_weight(now, "a", 0).unwrap();
        assert_eq!(assigned(b.acquire(now, None)), c);
        assert!(b.set_weight(now, "a", 257).is_err());
        b.set_weight(now, "a", 1).unwrap();
        b.set_admin(now, "c", AdminState::Maint).unwrap();
        assert_eq!(b.next_check_in(c), None);
        assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
        assert_eq!(b.stats(now).servers[1].status, "MAINT");
        b.set_admin(now, "c", AdminState::Ready).unwrap();
        // A request hash needs HTTP mode (this backend serves TCP).
        assert!(b.set_algorithm("uri".parse().unwrap()).is_err());
        b.set_algorithm(Algorithm::First).unwrap();
        for _ in 0..3 {
            assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
        }
        assert_eq!(b.stats(now).algorithm, Algorithm::First);
        b.remove_server("a", now).unwrap();
        assert_eq!(assigned(b.acquire(now, None)), c);
        b.release(now, ServerId(1), 0, 0); // a gone: ignored per server, counted per backend
        assert!(matches!(
            b.set_weight(now, "a", 1),
            Err(Error::NoSuchServer { .. })
        ));
    }

    #[test]
    fn agent_reply_changes_weight_admin_and_state() {
        let mut s = ServerSpec::new("a", addr(1));
        s.weight = 10;
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![s, ServerSpec::new("b", addr(2))],
        );
        b.agent_result(now, ServerId(1), &reply("50%"));
        assert_eq!(b.stats(now).servers[0].effective_weight, 5);
        b.agent_result(now, ServerId(1), &reply("drain"));
        assert_eq!(b.stats(now).servers[0].status, "DRAIN");
        b.agent_result(now, ServerId(1), &reply("ready down"));
        assert_eq!(b.stats(now).servers[0].status, "DOWN (agent)");
        b.agent_result(now, ServerId(1), &reply("up 100%"));
        assert_eq!(b.stats(now).servers[0].effective_weight, 10);
    }

    #[test]
    fn only_an_agent_up_brings_back_a_server_the_agent_took_down() {
        let mut s = ServerSpec::new("a", addr(1));
        s.check = Some(CheckParams::default()); // rise 2, fall 3
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        for word in ["down", "fail", "stopped"] {
            b.agent_result(now, ServerId(1), &reply(word));
            assert_eq!(b.stats(now).servers[0].status, "DOWN (agent)", "{word}");
            for _ in 0..5 {
                b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
            }
            assert_eq!(b.stats(now).servers[0].status, "DOWN (agent)", "{word}");
            assert_eq!(b.acquire(now, None), Acquire::NoServer, "{word}");
            // A reply without a health word leaves the agent's verdict.
            b.agent_result(now, ServerId(1), &reply("ready 100%"));
            b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
            assert_eq!(b.acquire(now, None), Acquire::NoServer, "{word}");
            b.take_events();
            b.agent_result(now, ServerId(1), &reply("up"));
            assert_eq!(b.stats(now).servers[0].status, "UP", "{word}");
            assert_eq!(
                b.take_events(),
                vec![Event::ServerUp {
                    server: ServerId(1)
                }]
            );
            assert_eq!(assigned(b.acquire(now, None)), ServerId(1));
            b.release(now, ServerId(1), 0, 0);
        }
        // Once the agent said up, checks rule again: fall 3 failures, rise 2 successes.
        for _ in 0..3 {
            b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        }
        assert_eq!(b.stats(now).servers[0].status, "DOWN");
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO);
        assert_eq!(b.stats(now).servers[0].status, "UP");
    }

    #[test]
    fn leaving_maint_starts_up_one_failure_from_down() {
        let mut s = ServerSpec::new("a", addr(1));
        s.check = Some(CheckParams::default()); // rise 2, fall 3
        s.weight = 100;
        s.slowstart = Duration::from_secs(10);
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![s, ServerSpec::new("plain", addr(2))],
        );
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        assert_eq!(b.stats(now).servers[0].status, "DOWN");
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        b.check_result(now, ServerId(1), true, "L4OK", "", Duration::ZERO); // paused: ignored
        b.set_admin(now, "plain", AdminState::Maint).unwrap();
        assert_eq!(b.stats(now).servers[0].status, "MAINT");
        b.take_events();
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        assert_eq!(
            b.take_events(),
            vec![Event::ServerUp {
                server: ServerId(1)
            }]
        );
        let st = &b.stats(now).servers[0];
        assert_eq!(st.status, "UP 1/3", "health == rise");
        assert_eq!(st.effective_weight, 1, "slowstart ramp begins");
        assert_eq!(
            b.stats(now + Duration::from_secs(5)).servers[0].effective_weight,
            50
        );
        assert_eq!(
            b.next_check_in(ServerId(1)),
            Some(CheckParams::default().fastinter)
        );
        b.check_result(now, ServerId(1), false, "L4CON", "", Duration::ZERO);
        assert_eq!(b.stats(now).servers[0].status, "DOWN", "one failure");
        // A server without checks just comes back UP (HAProxy: "no check").
        b.set_admin(now, "plain", AdminState::Ready).unwrap();
        assert_eq!(b.stats(now).servers[1].status, "no check");
        assert_eq!(assigned(b.acquire(now, None)), ServerId(2));
        // An agent's down verdict still holds after maintenance.
        b.agent_result(now, ServerId(2), &reply("maint down"));
        b.agent_result(now, ServerId(2), &reply("ready"));
        assert_eq!(b.stats(now).servers[1].status, "DOWN (agent)");
        b.agent_result(now, ServerId(2), &reply("up"));
        assert_eq!(b.stats(now).servers[1].status, "no check");
    }

    #[test]
    fn entering_maint_marks_a_running_server_down() {
        let mut s = ServerSpec::new("a", addr(1));
        s.shutdown_sessions_on_down = true;
        let mut c = ServerSpec::new("c", addr(3));
        c.check = Some(CheckParams::default());
        let (mut b, now) = backend(
            BackendOptions::default(),
            vec![s, ServerSpec::new("b", addr(2)), c],
        );
        b.set_admin(now, "a", AdminState::Maint).unwrap();
        assert_eq!(
            b.take_events(),
            vec![Event::ServerDown {
                server: ServerId(1),
                shutdown_sessions: true
            }]
        );
        assert_eq!(b.stats(now).servers[0].down_transitions, 1);
        // Through the agent too, and without shutdown-sessions.
        b.agent_result(now, ServerId(2), &reply("maint"));
        assert_eq!(
            b.take_events(),
            vec![Event::ServerDown {
                server: ServerId(2),
                shutdown_sessions: false
            }]
        );
        // A server already DOWN enters maintenance without a transition.
        b.check_result(now, ServerId(3), false, "L4CON", "", Duration::ZERO);
        b.take_events();
        b.set_admin(now, "c", AdminState::Maint).unwrap();
        assert_eq!(b.take_events(), vec![]);
        assert_eq!(b.stats(now).servers[2].down_transitions, 1);
        // Drain is not a DOWN.
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        b.take_events();
        b.set_admin(now, "a", AdminState::Drain).unwrap();
        assert_eq!(b.take_events(), vec![]);
    }

    #[test]
    fn agent_percent_replaces_the_weight_relative_to_the_initial_one() {
        let mut s = ServerSpec::new("a", addr(1));
        s.weight = 10;
        let (mut b, now) = backend(BackendOptions::default(), vec![s]);
        b.set_weight(now, "a", 20).unwrap();
        // 50% of the configured 10, not of the current 20.
        b.agent_result(now, ServerId(1), &reply("50%"));
        let st = &b.stats(now).servers[0];
        assert_eq!((st.weight, st.effective_weight), (5, 5));
        // A later `set weight` overrides the agent's weight.
        b.set_weight(now, "a", 7).unwrap();
        let st = &b.stats(now).servers[0];
        assert_eq!((st.weight, st.effective_weight), (7, 7));
        // Clamped to 256.
        b.agent_result(now, ServerId(1), &reply("25600%"));
        assert_eq!(b.stats(now).servers[0].weight, 256);
        b.agent_result(now, ServerId(1), &reply("0%"));
        assert_eq!(b.stats(now).servers[0].effective_weight, 0);
    }
}
