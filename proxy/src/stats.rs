//! Stats: a snapshot struct, HAProxy 2.6's `show stat` CSV (HAProxy's
//! column positions, see [`CSV_COLUMNS`]), and Prometheus text exposition.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::balance::{Algorithm, ServerId};

/// Counters and state of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// Id in its backend.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// Address.
    pub addr: SocketAddr,
    /// HAProxy's strings: `UP` (checked), `no check` (up, not checked),
    /// `UP 1/3` (going down), `DOWN`, `DOWN 1/2` (going up), `DOWN (agent)`, `DRAIN`,
    /// `DRAIN 1/3` (draining and going down), `DRAIN (agent)` (draining, with
    /// an agent check configured), `MAINT`. See [`ServerStats::is_up`].
    pub status: String,
    /// Backup server.
    pub backup: bool,
    /// Weight set by config or at runtime.
    pub weight: u32,
    /// Weight used now (admin, health, agent, slowstart applied).
    pub effective_weight: u32,
    /// Current sessions.
    pub cur_sessions: u32,
    /// Highest concurrent sessions.
    pub max_sessions: u32,
    /// Sessions served.
    pub total_sessions: u64,
    /// Sessions per second now (HAProxy's `rate`; see [`EventRate`]).
    pub session_rate: u32,
    /// Most sessions in one second (`rate_max`).
    pub session_rate_max: u32,
    /// Bytes from clients to this server.
    pub bytes_in: u64,
    /// Bytes from this server to clients.
    pub bytes_out: u64,
    /// Sessions that got no connection on this server (HAProxy's
    /// `failed_conns`): gave up after their retries, or found its queue
    /// full or timed out in it; not each failed attempt.
    pub connect_errors: u64,
    /// Connect retries on this server.
    pub retries: u64,
    /// Sessions redispatched away from this server.
    pub redispatches: u64,
    /// Connection attempts to this server, failed ones included
    /// (HAProxy's `connect`).
    pub connects: u64,
    /// HTTP requests sent over an idle kept-alive connection instead of a
    /// new one (HAProxy's `reuse`).
    pub reuses: u64,
    /// Last check status (`L4OK`, `L4CON`, `L7STS`, ...), empty before the first.
    pub check_status: String,
    /// HAProxy's description of the last check (CSV `last_chk`): empty when
    /// it passed or timed out, else e.g. "Connection refused", the HTTP
    /// reason phrase of a wrong status, "HTTP content check did not match",
    /// or the `tcp-check` step that failed.
    pub last_chk: String,
    /// HAProxy's description of the last agent check (CSV `last_agt`), e.g.
    /// "via agent : down", "agent reports an error : bogus".
    pub last_agt: String,
    /// Last check duration.
    pub check_duration_ms: Option<u64>,
    /// Failed checks.
    pub check_failures: u64,
    /// UP -> DOWN transitions.
    pub down_transitions: u64,
    /// Times the balancer selected this server, for a new session or a
    /// redispatch (HAProxy's `lbtot`).
    pub lbtot: u64,
    /// Seconds since the last state change.
    pub last_change_secs: u64,
    /// Concurrent sessions limit (0 = none).
    pub maxconn: u32,
    /// Configured `maxqueue` (0 = none).
    pub maxqueue: u32,
    /// Clients waiting for this server now (the hash algorithms bind a
    /// client to its server).
    pub queue_cur: u32,
    /// Most clients waiting for this server at once.
    pub queue_max: u32,
    /// HTTP counters; `None` in a TCP-mode backend (HAProxy leaves them
    /// out there too).
    pub http: Option<HttpStats>,
    /// HAProxy's server `cookie` value (CSV `cookie`).
    pub cookie: Option<String>,
}

impl ServerStats {
    /// True while the server is operationally up: `UP`, `UP x/y`,
    /// `no check`, `DRAIN`, `DRAIN x/y`, `DRAIN (agent)` (draining servers are up, they just
    /// take no new sessions); false for `DOWN`, `DOWN x/y`, `DOWN (agent)`
    /// and `MAINT`.
    pub fn is_up(&self) -> bool {
        self.status == "no check"
            || self.status == "UP"
            || self.status.starts_with("UP ")
            || self.status == "DRAIN"
            || self.status.starts_with("DRAIN ")
    }
}

/// Counters and state of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    /// Name.
    pub name: String,
    /// `UP` while some server can take sessions or the backend has no
    /// server at all (HAProxy's rule), else `DOWN`.
    pub status: String,
    /// Total effective weight of the servers that take new sessions now:
    /// the usable primaries', else the backups' in use (HAProxy's
    /// `tot_weight`).
    pub weight: u32,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// Current sessions.
    pub cur_sessions: u32,
    /// Highest concurrent sessions.
    pub max_sessions: u32,
    /// Sessions served.
    pub total_sessions: u64,
    /// Sessions per second now (HAProxy's `rate`; see [`EventRate`]).
    pub session_rate: u32,
    /// Most sessions in one second (`rate_max`).
    pub session_rate_max: u32,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Sessions that got no connection (HAProxy's `failed_conns`): gave up
    /// after their retries, found no server, found a queue full or timed
    /// out in the queue; not each failed attempt.
    pub connect_errors: u64,
    /// Connect retries.
    pub retries: u64,
    /// Redispatches.
    pub redispatches: u64,
    /// Connection attempts to its servers, failed ones included (HAProxy's
    /// `connect`).
    pub connects: u64,
    /// HTTP requests sent over an idle kept-alive connection (HAProxy's
    /// `reuse`).
    pub reuses: u64,
    /// Times the balancer selected a server, for a new session or a
    /// redispatch (HAProxy's `lbtot`; the sum of the servers').
    pub lbtot: u64,
    /// Clients queued now.
    pub queue_cur: u32,
    /// Most clients queued at once.
    pub queue_max: u32,
    /// Clients dropped by `timeout queue`.
    pub queue_timeouts: u64,
    /// Sessions refused because no server was usable.
    pub no_server: u64,
    /// Seconds since the last state change.
    pub last_change_secs: u64,
    /// HTTP counters; `None` in a TCP-mode backend.
    pub http: Option<HttpStats>,
    /// Servers, by id.
    pub servers: Vec<ServerStats>,
    /// The persistence cookie's name (CSV `cookie`, as HAProxy prints it
    /// on the backend line).
    pub cookie: Option<String>,
}

/// Counters of one frontend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendStats {
    /// Name.
    pub name: String,
    /// Current sessions.
    pub cur_sessions: u32,
    /// Highest concurrent sessions.
    pub max_sessions: u32,
    /// Sessions: connections accepted that got past the PROXY header, when
    /// the frontend requires one (HAProxy's `stot`).
    pub total_sessions: u64,
    /// Sessions per second now (HAProxy's `rate`; see [`EventRate`]).
    pub session_rate: u32,
    /// Most sessions in one second (`rate_max`).
    pub session_rate_max: u32,
    /// Connections accepted (`conn_tot`), the ones refused for their
    /// PROXY header included. [`FrontendStats::cur_sessions`] counts them
    /// from their accept, as HAProxy's `scur` does.
    pub total_connections: u64,
    /// Connections accepted per second now (`conn_rate`).
    pub connection_rate: u32,
    /// Most connections accepted in one second (`conn_rate_max`).
    pub connection_rate_max: u32,
    /// HTTP requests received per second now (`req_rate`); 0 in TCP mode.
    pub request_rate: u32,
    /// Most HTTP requests received in one second (`req_rate_max`).
    pub request_rate_max: u32,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Connections rejected (bad PROXY header, no server, queue full or timeout).
    pub denied: u64,
    /// `accept()` errors (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// HTTP counters; `None` in TCP mode.
    pub http: Option<HttpStats>,
}

/// HAProxy's HTTP counters of a frontend, backend or server (HTTP mode),
/// with HAProxy 2.6's meanings (README, "HTTP counters"). Each object shows
/// the ones HAProxy shows for its kind: `requests` on frontends, backends
/// and servers (CSV only for servers), `responses` on all three,
/// `request_errors` on frontends, the response errors and aborts on
/// backends and servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// HTTP requests (`req_tot`, HAProxy's `cum_req`). Frontend: every
    /// request received, malformed ones included; backend: every request
    /// that ended with a response (the sum of `responses`); server: every
    /// response it sent.
    pub requests: u64,
    /// Responses by status class, indexed as HAProxy's `rsp[]`: 1 to 5 for
    /// `1xx`..`5xx`, 0 for any other status (`hrsp_other`). See
    /// [`status_class`].
    pub responses: [u64; 6],
    /// Frontend: malformed requests answered 400, 414 or 431 (`ereq`).
    pub request_errors: u64,
    /// Backend, server: responses that failed (`eresp`): the server closed
    /// or answered garbage before its response headers (502), `timeout
    /// server` passed (504), or the server aborted its response body
    /// (also in `server_aborts`).
    pub response_errors: u64,
    /// Backend, server: exchanges the client abandoned before the end of
    /// the response (`cli_abrt`).
    pub client_aborts: u64,
    /// Backend, server: response bodies the server aborted (`srv_abrt`).
    pub server_aborts: u64,
}

impl HttpStats {
    /// Counts one response with this status in its class.
    pub fn count_response(&mut self, status: u16) {
        self.responses[status_class(status)] += 1;
    }
}

/// The index of a status in [`HttpStats::responses`], as HAProxy computes
/// it (`n = status / 100`, 0 unless 1 to 5).
pub fn status_class(status: u16) -> usize {
    match status / 100 {
        n @ 1..=5 => usize::from(n),
        _ => 0,
    }
}

/// Events per second over a sliding second, as HAProxy 2.6's `freq_ctr`
/// (`include/haproxy/freq_ctr.h`, `src/freq_ctr.c`) counts sessions and
/// requests for the `rate` and `req_rate` columns: the events of the current
/// one-second period, plus the previous period's in proportion to the part
/// of it still inside the last second. [`EventRate::max`] is the most
/// events seen in one period (HAProxy's `sps_max`, `rps_max`: the count
/// returned by `update_freq_ctr`). Time is passed in, so the counter is
/// pure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRate {
    /// Start of the current period; `None` before the first event.
    period_start: Option<Instant>,
    /// Events in the current period.
    curr: u32,
    /// Events in the period before it.
    prev: u32,
    /// Most events in one period.
    max: u32,
}

/// [`EventRate`]'s period.
const RATE_PERIOD: Duration = Duration::from_secs(1);

impl EventRate {
    /// Counts one event at `now` (`update_freq_ctr(ctr, 1)`): a new period
    /// starts one period after the last one, or at `now` when two or more
    /// periods passed without an event.
    pub fn add(&mut self, now: Instant) {
        match self.period_start {
            Some(start) if now.saturating_duration_since(start) < RATE_PERIOD => {}
            Some(start) => {
                let next = start + RATE_PERIOD;
                if now.saturating_duration_since(next) >= RATE_PERIOD {
                    self.prev = 0;
                    self.period_start = Some(now);
                } else {
                    self.prev = self.curr;
                    self.period_start = Some(next);
                }
                self.curr = 0;
            }
            None => self.period_start = Some(now),
        }
        self.curr = self.curr.saturating_add(1);
        self.max = self.max.max(self.curr);
    }

    /// Events per second at `now` (`read_freq_ctr`): the current period's
    /// events plus the previous period's times the share of it still within
    /// the last second, in whole events. As HAProxy, a rate below 2 with no
    /// event in the current period reads as the previous period's count, so
    /// that a slow trickle does not flap between 0 and 1.
    pub fn current(&self, now: Instant) -> u32 {
        let Some(start) = self.period_start else {
            return 0;
        };
        let period = RATE_PERIOD.as_millis() as u64;
        let elapsed = now.saturating_duration_since(start).as_millis() as u64;
        let (curr, past, remain) = if elapsed <= period {
            (self.curr, self.prev, period - elapsed)
        } else if elapsed <= 2 * period {
            (0, self.curr, 2 * period - elapsed)
        } else {
            (0, 0, 0)
        };
        if curr == 0 && past <= 1 {
            return past;
        }
        curr.saturating_add((u64::from(past) * remain / period) as u32)
    }

    /// The most events counted in one period.
    pub fn max(&self) -> u32 {
        self.max
    }
}

/// Everything: frontends and backends in name order, each backend's
/// servers in id (written) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Frontends by name.
    pub frontends: Vec<FrontendStats>,
    /// Backends by name.
    pub backends: Vec<BackendStats>,
    /// Access log lines dropped since the start (HAProxy's `show info`
    /// `DroppedLogs`).
    pub dropped_logs: u64,
}

/// The columns of [`Snapshot::to_csv`]: HAProxy 2.6's `show stat` fields 0
/// to 85 (management.txt, "9.1. CSV format"), in order. Tools read them by
/// position, so new columns may only be appended.
pub const CSV_COLUMNS: [&str; 86] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
    "comp_in",
    "comp_out",
    "comp_byp",
    "comp_rsp",
    "lastsess",
    "last_chk",
    "last_agt",
    "qtime",
    "ctime",
    "rtime",
    "ttime",
    "agent_status",
    "agent_code",
    "agent_duration",
    "check_desc",
    "agent_desc",
    "check_rise",
    "check_fall",
    "check_health",
    "agent_rise",
    "agent_fall",
    "agent_health",
    "addr",
    "cookie",
    "mode",
    "algo",
    "conn_rate",
    "conn_rate_max",
    "conn_tot",
    "intercepted",
    "dcon",
    "dses",
    "wrew",
    "connect",
    "reuse",
];

/// The `algo` column as HAProxy spells it (`backend_lb_algo_str`: the
/// name without its options, `hdr` for `hdr(<name>)`); `consistent`
/// (source hash on a bounded-load ring) is halyard's own name.
fn haproxy_algo(a: &Algorithm) -> &'static str {
    match a {
        Algorithm::RoundRobin => "roundrobin",
        Algorithm::LeastConn => "leastconn",
        a => a.name(),
    }
}

/// The response class columns, indexed by [`status_class`].
const HRSP_COLUMNS: [&str; 6] = [
    "hrsp_other",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
];

/// One CSV line being filled by column name; unset columns stay empty.
struct Row(Vec<String>);

impl Row {
    fn new() -> Self {
        Row(vec![String::new(); CSV_COLUMNS.len()])
    }

    fn set(&mut self, column: &str, value: impl ToString) -> &mut Self {
        let i = CSV_COLUMNS.iter().position(|c| *c == column);
        debug_assert!(i.is_some(), "no CSV column {column}");
        if let Some(i) = i {
            self.0[i] = value.to_string();
        }
        self
    }

    /// `hrsp_1xx`..`hrsp_other`.
    fn responses(&mut self, h: &HttpStats) -> &mut Self {
        for (class, column) in HRSP_COLUMNS.iter().enumerate() {
            self.set(column, h.responses[class]);
        }
        self
    }

    /// A backend's or server's HTTP columns.
    fn http_be(&mut self, h: &HttpStats) -> &mut Self {
        self.responses(h)
            .set("req_tot", h.requests)
            .set("eresp", h.response_errors)
            .set("cli_abrt", h.client_aborts)
            .set("srv_abrt", h.server_aborts)
    }

    fn write(&self, out: &mut String) {
        for v in &self.0 {
            // HAProxy's cstr(): quote a value holding a comma or a quote.
            if v.contains([',', '"']) {
                out.push('"');
                out.push_str(&v.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(v);
            }
            out.push(',');
        }
        out.push('\n');
    }
}

impl Snapshot {
    /// HAProxy 2.6's `show stat` CSV: the header line `# pxname,svname,...,`
    /// then one line per frontend, server and backend, with the columns of
    /// [`CSV_COLUMNS`] at HAProxy's positions and a trailing comma on every
    /// line, as HAProxy prints it. What halyard does not measure is left
    /// empty. `type` is 0 (frontend), 1 (backend) or 2 (server); `pid` is 1;
    /// `iid` numbers the frontends then the backends from 1 in snapshot
    /// (name) order, so it is stable for a given configuration; `sid` is
    /// the server's id in its backend (0 on frontend and backend lines);
    /// `qlimit` is the server's `maxqueue` (empty when unlimited); `algo`
    /// is the backend's algorithm as HAProxy names it (`roundrobin`,
    /// `leastconn`, ...; `consistent` is halyard's). The HTTP columns
    /// (`hrsp_*`, `req_tot`, `ereq`, `eresp`, `cli_abrt`, `srv_abrt`) are
    /// filled for HTTP-mode objects ([`HttpStats`]); a TCP frontend shows
    /// `req_tot` 0, as HAProxy's does.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("# ");
        for c in CSV_COLUMNS {
            out.push_str(c);
            out.push(',');
        }
        out.push('\n');
        let opt = |v: u32| if v == 0 { String::new() } else { v.to_string() };
        let mut iid = 0u32;
        for f in &self.frontends {
            iid += 1;
            let mut r = Row::new();
            r.set("pxname", &f.name)
                .set("svname", "FRONTEND")
                .set("scur", f.cur_sessions)
                .set("smax", f.max_sessions)
                .set("stot", f.total_sessions)
                .set("bin", f.bytes_in)
                .set("bout", f.bytes_out)
                .set("status", "OPEN")
                .set("rate", f.session_rate)
                // No `rate-limit sessions`: HAProxy prints its 0.
                .set("rate_lim", 0)
                .set("rate_max", f.session_rate_max)
                .set("req_rate", f.request_rate)
                .set("req_rate_max", f.request_rate_max)
                .set("conn_rate", f.connection_rate)
                .set("conn_rate_max", f.connection_rate_max)
                .set("conn_tot", f.total_connections)
                .set("pid", 1)
                .set("iid", iid)
                .set("sid", 0)
                .set("type", 0)
                // HAProxy prints a TCP frontend's 0 too.
                .set("req_tot", f.http.as_ref().map_or(0, |h| h.requests));
            if let Some(h) = &f.http {
                r.responses(h).set("ereq", h.request_errors);
            }
            r.write(&mut out);
        }
        for b in &self.backends {
            iid += 1;
            for s in &b.servers {
                let mut r = Row::new();
                r.set("pxname", &b.name)
                    .set("svname", &s.name)
                    .set("qcur", s.queue_cur)
                    .set("qmax", s.queue_max)
                    .set("scur", s.cur_sessions)
                    .set("smax", s.max_sessions)
                    .set("slim", opt(s.maxconn))
                    .set("stot", s.total_sessions)
                    .set("rate", s.session_rate)
                    .set("rate_max", s.session_rate_max)
                    .set("bin", s.bytes_in)
                    .set("bout", s.bytes_out)
                    .set("econ", s.connect_errors)
                    .set("wretr", s.retries)
                    .set("wredis", s.redispatches)
                    .set("connect", s.connects)
                    .set("reuse", s.reuses)
                    .set("status", &s.status)
                    .set("weight", haproxy_weight(s))
                    .set("act", u8::from(!s.backup))
                    .set("bck", u8::from(s.backup))
                    .set("chkfail", s.check_failures)
                    .set("chkdown", s.down_transitions)
                    .set("lastchg", s.last_change_secs)
                    .set("qlimit", opt(s.maxqueue))
                    .set("lbtot", s.lbtot)
                    .set("pid", 1)
                    .set("iid", iid)
                    .set("sid", s.id.0)
                    .set("type", 2)
                    .set("check_status", &s.check_status)
                    .set("last_chk", &s.last_chk)
                    .set("last_agt", &s.last_agt)
                    .set("cookie", s.cookie.as_deref().unwrap_or(""))
                    .set(
                        "check_duration",
                        s.check_duration_ms
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                    );
                if let Some(h) = &s.http {
                    r.http_be(h);
                }
                r.write(&mut out);
            }
            let mut r = Row::new();
            r.set("pxname", &b.name)
                .set("svname", "BACKEND")
                .set("qcur", b.queue_cur)
                .set("qmax", b.queue_max)
                .set("scur", b.cur_sessions)
                .set("smax", b.max_sessions)
                .set("stot", b.total_sessions)
                .set("rate", b.session_rate)
                .set("rate_max", b.session_rate_max)
                .set("bin", b.bytes_in)
                .set("bout", b.bytes_out)
                .set("econ", b.connect_errors)
                .set("wretr", b.retries)
                .set("wredis", b.redispatches)
                .set("connect", b.connects)
                .set("reuse", b.reuses)
                .set("status", &b.status)
                .set("weight", b.weight)
                .set("act", usable(b, false))
                .set("bck", usable(b, true))
                .set("lastchg", b.last_change_secs)
                .set("lbtot", b.lbtot)
                .set("pid", 1)
                .set("iid", iid)
                .set("sid", 0)
                .set("type", 1)
                .set("cookie", b.cookie.as_deref().unwrap_or(""))
                .set("algo", haproxy_algo(&b.algorithm));
            if let Some(h) = &b.http {
                r.http_be(h);
            }
            r.write(&mut out);
        }
        out
    }

    /// Prometheus text exposition (format 0.0.4) under the names, labels,
    /// units, types and HELP texts of HAProxy 2.6's exporter
    /// (`addons/promex/service-prometheus.c`): `haproxy_frontend_*`
    /// (label `proxy`), `haproxy_backend_*` (`proxy`) and `haproxy_server_*`
    /// (`proxy`, `server`), the status gauges with one sample per `state`,
    /// durations in seconds. Only what halyard measures with HAProxy's
    /// meaning is exported (the tables `FRONTEND_METRICS`, `BACKEND_METRICS`
    /// and `SERVER_METRICS`; README, "Prometheus"), after the one process
    /// metric, `haproxy_process_dropped_logs_total`; the few counters HAProxy
    /// has no name for are `halyard_*`. A family without a sample is left
    /// out, as HAProxy does.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let label = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let fe: Vec<(String, &FrontendStats)> = self
            .frontends
            .iter()
            .map(|f| (format!("proxy=\"{}\"", label(&f.name)), f))
            .collect();
        let be: Vec<(String, &BackendStats)> = self
            .backends
            .iter()
            .map(|b| (format!("proxy=\"{}\"", label(&b.name)), b))
            .collect();
        let srv: Vec<(String, &ServerStats)> = self
            .backends
            .iter()
            .flat_map(|b| {
                b.servers.iter().map(move |s| {
                    let l = format!("proxy=\"{}\",server=\"{}\"", label(&b.name), label(&s.name));
                    (l, s)
                })
            })
            .collect();
        // The one process metric halyard has: HAProxy's exporter prints
        // the process families first.
        let _ = write!(
            out,
            "# HELP haproxy_process_dropped_logs_total {DROPPED_LOGS_HELP}\n\
             # TYPE haproxy_process_dropped_logs_total counter\n\
             haproxy_process_dropped_logs_total {}\n",
            self.dropped_logs
        );
        write_families(&mut out, FRONTEND_METRICS, &fe);
        write_families(&mut out, BACKEND_METRICS, &be);
        write_families(&mut out, SERVER_METRICS, &srv);
        out
    }
}

/// Writes each family's HELP and TYPE lines then its samples, one per
/// object (and `state`), skipping a family without samples.
fn write_families<T>(out: &mut String, families: &[Family<T>], objects: &[(String, &T)]) {
    for f in families {
        let samples: Vec<Vec<Sample>> = objects.iter().map(|(_, o)| (f.samples)(o)).collect();
        // (object, sample) in object order, or sample-major for the `code`
        // families, as HAProxy prints them.
        let mut order: Vec<(usize, usize)> = samples
            .iter()
            .enumerate()
            .flat_map(|(o, s)| (0..s.len()).map(move |i| (o, i)))
            .collect();
        if order.is_empty() {
            continue;
        }
        if f.sample_major {
            order.sort_by_key(|&(o, i)| (i, o));
        }
        let kind = if f.counter { "counter" } else { "gauge" };
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {kind}",
            f.name, f.help, f.name
        );
        for (o, i) in order {
            let labels = &objects[o].0;
            match samples[o][i] {
                (Some((name, value)), v) => {
                    let _ = writeln!(out, "{}{{{labels},{name}=\"{value}\"}} {v}", f.name);
                }
                (None, v) => {
                    let _ = writeln!(out, "{}{{{labels}}} {v}", f.name);
                }
            }
        }
    }
}

/// One sample's value as HAProxy's exporter prints it: an integer, a
/// duration in seconds with six decimals (`%f`), or `NaN` for an empty
/// stats field (no `maxconn`, no `maxqueue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Int(u64),
    Millis(u64),
    NaN,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Millis(ms) => write!(f, "{}.{:06}", ms / 1000, (ms % 1000) * 1000),
            Value::NaN => f.write_str("NaN"),
        }
    }
}

/// One sample of a family for one object: its extra label (`state` or
/// `code`: name and value), if any, and its value.
type Sample = (Option<(&'static str, &'static str)>, Value);

/// One metric family of [`Snapshot::to_prometheus`]: full name, counter or
/// gauge, HELP text, and the samples of one object (none: the object has no
/// such sample, e.g. `check_duration_seconds` before a check finished).
/// Adding a metric is adding one line to a table below.
struct Family<T> {
    name: &'static str,
    counter: bool,
    help: &'static str,
    samples: fn(&T) -> Vec<Sample>,
    /// Samples printed by sample index first, then by object (HAProxy's
    /// `http_responses_total`: every object's `1xx`, then every `2xx`...).
    sample_major: bool,
}

const fn family<T>(
    name: &'static str,
    help: &'static str,
    samples: fn(&T) -> Vec<Sample>,
    counter: bool,
    sample_major: bool,
) -> Family<T> {
    Family {
        name,
        counter,
        help,
        samples,
        sample_major,
    }
}

const fn gauge<T>(
    name: &'static str,
    help: &'static str,
    samples: fn(&T) -> Vec<Sample>,
) -> Family<T> {
    family(name, help, samples, false, false)
}

const fn counter<T>(
    name: &'static str,
    help: &'static str,
    samples: fn(&T) -> Vec<Sample>,
) -> Family<T> {
    family(name, help, samples, true, false)
}

/// `http_responses_total`: a counter per status class (label `code`).
const fn by_code<T>(
    name: &'static str,
    help: &'static str,
    samples: fn(&T) -> Vec<Sample>,
) -> Family<T> {
    family(name, help, samples, true, true)
}

/// HAProxy's HELP text of every `http_responses_total` (its first field's,
/// `1xx`, stands for the family).
/// `DroppedLogs`'s description in HAProxy 2.6's `info_fields`, which its
/// exporter uses as HELP text.
const DROPPED_LOGS_HELP: &str =
    "Total number of dropped logs for current worker process since started";

const HTTP_RESPONSES_HELP: &str = "Total number of HTTP responses with status 100-199 returned by this object since the worker process started";

/// One sample of an HTTP counter; none without HTTP counters (TCP mode).
fn http_one(h: Option<&HttpStats>, v: fn(&HttpStats) -> u64) -> Vec<Sample> {
    h.map(|h| one(v(h))).unwrap_or_default()
}

/// The responses by class, `code="1xx"`..`"5xx"` then `"other"` (HAProxy's
/// `promex_hrsp_code`); none without HTTP counters.
fn http_responses(h: Option<&HttpStats>) -> Vec<Sample> {
    const CODES: [(usize, &str); 6] = [
        (1, "1xx"),
        (2, "2xx"),
        (3, "3xx"),
        (4, "4xx"),
        (5, "5xx"),
        (0, "other"),
    ];
    h.map(|h| {
        CODES
            .iter()
            .map(|&(class, code)| (Some(("code", code)), Value::Int(h.responses[class])))
            .collect()
    })
    .unwrap_or_default()
}

/// One plain sample.
fn one(v: impl Into<u64>) -> Vec<Sample> {
    vec![(None, Value::Int(v.into()))]
}

/// A limit: `NaN` when unset (0), as HAProxy prints an empty field.
fn limit(v: u32) -> Vec<Sample> {
    vec![(
        None,
        if v == 0 {
            Value::NaN
        } else {
            Value::Int(v.into())
        },
    )]
}

/// One sample per state of `all`: 1 for `current`, 0 for the others.
fn states(all: &[&'static str], current: &str) -> Vec<Sample> {
    all.iter()
        .map(|s| (Some(("state", *s)), Value::Int(u64::from(*s == current))))
        .collect()
}

/// Per state of `all`, how many of `current` are in it.
fn counts<'a>(all: &[&'static str], current: impl Iterator<Item = &'a str> + Clone) -> Vec<Sample> {
    all.iter()
        .map(|s| {
            (
                Some(("state", *s)),
                Value::Int(current.clone().filter(|c| c == s).count() as u64),
            )
        })
        .collect()
}

/// HAProxy's server states (`promex_srv_st`), in its order.
const SRV_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// The check statuses HAProxy's exporter lists (those whose result is at
/// least `CHK_RES_FAILED`), in its order.
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

/// A server's state as HAProxy's exporter names it (`promex_srv_status`):
/// `MAINT`, `DRAIN` while up and draining, `UP` while up (checked, not
/// checked, or going down), else `DOWN`. halyard has no `NOLB`.
fn srv_state(s: &ServerStats) -> &'static str {
    if s.status == "MAINT" {
        "MAINT"
    } else if s.status.starts_with("DRAIN") {
        "DRAIN"
    } else if s.is_up() {
        "UP"
    } else {
        "DOWN"
    }
}

/// A server's weight as HAProxy reports it (`weight` column and
/// `haproxy_server_weight`): the slowstart-ramped weight while the server
/// takes sessions, else its weight (HAProxy keeps `cur_eweight` of a DOWN,
/// MAINT or DRAIN server).
fn haproxy_weight(s: &ServerStats) -> u32 {
    if s.effective_weight > 0 {
        s.effective_weight
    } else {
        s.weight
    }
}

/// Servers HAProxy counts in `act` / `bck` (`srv_act`, `srv_bck`): up with
/// a non-zero weight, active or backup.
fn usable(b: &BackendStats, backup: bool) -> u32 {
    b.servers
        .iter()
        .filter(|s| s.backup == backup && s.effective_weight > 0)
        .count() as u32
}

/// `haproxy_frontend_*`.
const FRONTEND_METRICS: &[Family<FrontendStats>] = &[
    gauge("haproxy_frontend_current_sessions", "Number of current sessions on the frontend, backend or server", |f| one(f.cur_sessions)),
    gauge("haproxy_frontend_max_sessions", "Highest value of current sessions encountered since process started", |f| one(f.max_sessions)),
    counter("haproxy_frontend_sessions_total", "Total number of sessions since process started", |f| one(f.total_sessions)),
    // No `rate-limit sessions`: HAProxy exports its 0.
    gauge("haproxy_frontend_limit_session_rate", "Limit on the number of sessions accepted in a second (frontend only, 'rate-limit sessions' setting)", |_| one(0u32)),
    gauge("haproxy_frontend_max_session_rate", "Highest value of sessions per second observed since the worker process started", |f| one(f.session_rate_max)),
    counter("haproxy_frontend_bytes_in_total", "Total number of request bytes since process started", |f| one(f.bytes_in)),
    counter("haproxy_frontend_bytes_out_total", "Total number of response bytes since process started", |f| one(f.bytes_out)),
    counter("haproxy_frontend_request_errors_total", "Total number of invalid requests since process started", |f| http_one(f.http.as_ref(), |h| h.request_errors)),
    gauge("haproxy_frontend_status", "Current status of the service, per state label value.", |_| states(&["DOWN", "UP"], "UP")),
    by_code("haproxy_frontend_http_responses_total", HTTP_RESPONSES_HELP, |f| http_responses(f.http.as_ref())),
    gauge("haproxy_frontend_connections_rate_max", "Highest value of connections per second observed since the worker process started", |f| one(f.connection_rate_max)),
    counter("haproxy_frontend_connections_total", "Total number of new connections accepted on this frontend since the worker process started", |f| one(f.total_connections)),
    gauge("haproxy_frontend_http_requests_rate_max", "Highest value of http requests observed since the worker process started", |f| if f.http.is_some() { one(f.request_rate_max) } else { Vec::new() }),
    counter("haproxy_frontend_http_requests_total", "Total number of HTTP requests processed by this object since the worker process started", |f| http_one(f.http.as_ref(), |h| h.requests)),
    counter("halyard_frontend_denied_total", "Connections refused: bad PROXY header, no server, queue full or timeout (no HAProxy equivalent)", |f| one(f.denied)),
    counter("halyard_frontend_accept_errors_total", "accept() errors, e.g. out of file descriptors (no HAProxy equivalent)", |f| one(f.accept_errors)),
];

/// `haproxy_backend_*`.
const BACKEND_METRICS: &[Family<BackendStats>] = &[
    gauge("haproxy_backend_current_queue", "Number of current queued connections", |b| one(b.queue_cur)),
    gauge("haproxy_backend_max_queue", "Highest value of queued connections encountered since process started", |b| one(b.queue_max)),
    gauge("haproxy_backend_current_sessions", "Number of current sessions on the frontend, backend or server", |b| one(b.cur_sessions)),
    gauge("haproxy_backend_max_sessions", "Highest value of current sessions encountered since process started", |b| one(b.max_sessions)),
    counter("haproxy_backend_sessions_total", "Total number of sessions since process started", |b| one(b.total_sessions)),
    gauge("haproxy_backend_max_session_rate", "Highest value of sessions per second observed since the worker process started", |b| one(b.session_rate_max)),
    counter("haproxy_backend_bytes_in_total", "Total number of request bytes since process started", |b| one(b.bytes_in)),
    counter("haproxy_backend_bytes_out_total", "Total number of response bytes since process started", |b| one(b.bytes_out)),
    counter("haproxy_backend_connection_errors_total", "Total number of failed connections to server since the worker process started", |b| one(b.connect_errors)),
    counter("haproxy_backend_response_errors_total", "Total number of invalid responses since the worker process started", |b| http_one(b.http.as_ref(), |h| h.response_errors)),
    counter("haproxy_backend_retry_warnings_total", "Total number of server connection retries since the worker process started", |b| one(b.retries)),
    counter("haproxy_backend_redispatch_warnings_total", "Total number of server redispatches due to connection failures since the worker process started", |b| one(b.redispatches)),
    counter("haproxy_backend_loadbalanced_total", "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)", |b| one(b.lbtot)),
    by_code("haproxy_backend_http_responses_total", HTTP_RESPONSES_HELP, |b| http_responses(b.http.as_ref())),
    counter("haproxy_backend_http_requests_total", "Total number of HTTP requests processed by this object since the worker process started", |b| http_one(b.http.as_ref(), |h| h.requests)),
    counter("haproxy_backend_client_aborts_total", "Total number of requests or connections aborted by the client since the worker process started", |b| http_one(b.http.as_ref(), |h| h.client_aborts)),
    counter("haproxy_backend_server_aborts_total", "Total number of requests or connections aborted by the server since the worker process started", |b| http_one(b.http.as_ref(), |h| h.server_aborts)),
    counter("haproxy_backend_connection_attempts_total", "Total number of outgoing connection attempts on this backend/server since the worker process started", |b| one(b.connects)),
    counter("haproxy_backend_connection_reuses_total", "Total number of reused connection on this backend/server since the worker process started", |b| one(b.reuses)),
    gauge("haproxy_backend_status", "Current status of the service, per state label value.", |b| states(&["DOWN", "UP"], &b.status)),
    gauge("haproxy_backend_weight", "Server's effective weight, or sum of active servers' effective weights for a backend", |b| one(b.weight)),
    gauge("haproxy_backend_active_servers", "Total number of active UP servers with a non-zero weight", |b| one(usable(b, false))),
    gauge("haproxy_backend_backup_servers", "Total number of backup UP servers with a non-zero weight", |b| one(usable(b, true))),
    gauge("haproxy_backend_check_last_change_seconds", "How long ago the last server state changed, in seconds", |b| one(b.last_change_secs)),
    gauge("haproxy_backend_agg_server_status", "Backend's aggregated gauge of servers' status", agg_server_status),
    gauge("haproxy_backend_agg_server_check_status", "Backend's aggregated gauge of servers' state check status", agg_server_status),
    gauge("haproxy_backend_agg_check_status", "Backend's aggregated gauge of servers' state check status", agg_check_status),
    counter("halyard_backend_queue_timeouts_total", "Clients dropped by timeout queue (no HAProxy equivalent)", |b| one(b.queue_timeouts)),
    counter("halyard_backend_no_server_total", "Sessions refused because no server was usable (no HAProxy equivalent)", |b| one(b.no_server)),
];

/// `haproxy_server_*`.
const SERVER_METRICS: &[Family<ServerStats>] = &[
    gauge("haproxy_server_current_queue", "Number of current queued connections", |s| one(s.queue_cur)),
    gauge("haproxy_server_max_queue", "Highest value of queued connections encountered since process started", |s| one(s.queue_max)),
    gauge("haproxy_server_current_sessions", "Number of current sessions on the frontend, backend or server", |s| one(s.cur_sessions)),
    gauge("haproxy_server_max_sessions", "Highest value of current sessions encountered since process started", |s| one(s.max_sessions)),
    gauge("haproxy_server_limit_sessions", "Frontend/listener/server's maxconn, backend's fullconn", |s| limit(s.maxconn)),
    counter("haproxy_server_sessions_total", "Total number of sessions since process started", |s| one(s.total_sessions)),
    gauge("haproxy_server_max_session_rate", "Highest value of sessions per second observed since the worker process started", |s| one(s.session_rate_max)),
    counter("haproxy_server_bytes_in_total", "Total number of request bytes since process started", |s| one(s.bytes_in)),
    counter("haproxy_server_bytes_out_total", "Total number of response bytes since process started", |s| one(s.bytes_out)),
    counter("haproxy_server_connection_errors_total", "Total number of failed connections to server since the worker process started", |s| one(s.connect_errors)),
    counter("haproxy_server_response_errors_total", "Total number of invalid responses since the worker process started", |s| http_one(s.http.as_ref(), |h| h.response_errors)),
    counter("haproxy_server_retry_warnings_total", "Total number of server connection retries since the worker process started", |s| one(s.retries)),
    counter("haproxy_server_redispatch_warnings_total", "Total number of server redispatches due to connection failures since the worker process started", |s| one(s.redispatches)),
    counter("haproxy_server_loadbalanced_total", "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)", |s| one(s.lbtot)),
    by_code("haproxy_server_http_responses_total", HTTP_RESPONSES_HELP, |s| http_responses(s.http.as_ref())),
    counter("haproxy_server_client_aborts_total", "Total number of requests or connections aborted by the client since the worker process started", |s| http_one(s.http.as_ref(), |h| h.client_aborts)),
    counter("haproxy_server_server_aborts_total", "Total number of requests or connections aborted by the server since the worker process started", |s| http_one(s.http.as_ref(), |h| h.server_aborts)),
    counter("haproxy_server_connection_attempts_total", "Total number of outgoing connection attempts on this backend/server since the worker process started", |s| one(s.connects)),
    counter("haproxy_server_connection_reuses_total", "Total number of reused connection on this backend/server since the worker process started", |s| one(s.reuses)),
    gauge("haproxy_server_status", "Current status of the service, per state label value.", |s| states(&SRV_STATES, srv_state(s))),
    gauge("haproxy_server_weight", "Server's effective weight, or sum of active servers' effective weights for a backend", |s| one(haproxy_weight(s))),
    counter("haproxy_server_check_failures_total", "Total number of failed individual health checks per server/backend, since the worker process started", |s| one(s.check_failures)),
    counter("haproxy_server_check_up_down_total", "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started", |s| one(s.down_transitions)),
    gauge("haproxy_server_check_last_change_seconds", "How long ago the last server state changed, in seconds", |s| one(s.last_change_secs)),
    gauge("haproxy_server_queue_limit", "Limit on the number of connections in queue, for servers only (maxqueue argument)", |s| limit(s.maxqueue)),
    gauge("haproxy_server_check_status", "Status of last health check, per state label value.", check_status),
    gauge("haproxy_server_check_duration_seconds", "Total duration of the latest server health check, in seconds.", check_duration),
    gauge("haproxy_server_uweight", "Server's user weight, or sum of active servers' user weights for a backend", |s| one(s.weight)),
];

/// The last check's status; none before the first check or without checks
/// (HAProxy: none for a server without checks, all 0 before the first).
fn check_status(s: &ServerStats) -> Vec<Sample> {
    if s.check_status.is_empty() {
        return vec![];
    }
    states(&CHECK_STATES, &s.check_status)
}

/// The last check's duration; none before a check finished.
fn check_duration(s: &ServerStats) -> Vec<Sample> {
    s.check_duration_ms
        .map(|ms| vec![(None, Value::Millis(ms))])
        .unwrap_or_default()
}

/// Servers per HAProxy server state; none for a backend without servers.
fn agg_server_status(b: &BackendStats) -> Vec<Sample> {
    if b.servers.is_empty() {
        return vec![];
    }
    counts(&SRV_STATES, b.servers.iter().map(srv_state))
}

/// Servers per last check status; none for a backend without servers.
fn agg_check_status(b: &BackendStats) -> Vec<Sample> {
    if b.servers.is_empty() {
        return vec![];
    }
    counts(
        &CHECK_STATES,
        b.servers.iter().map(|s| s.check_status.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence of the HAProxy 2.6.12 run recorded in the README
    /// ("Rates"): 3 sessions and 7 requests at once, then read at once,
    /// 1.5 s and 3 s later. HAProxy showed `rate` 3 / 0 / 0 and `req_rate`
    /// 7 / 2 / 0 (the previous second's count times the 0.3 s of it still
    /// in the last second, rounded down), `rate_max` 3, `req_rate_max` 7.
    #[test]
    fn event_rate_reads_as_haproxy_freq_ctr() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (mut sessions, mut requests) = (EventRate::default(), EventRate::default());
        assert_eq!(sessions.current(t0), 0);
        for i in 0..3 {
            sessions.add(ms(i));
        }
        for i in 0..7 {
            requests.add(ms(i));
        }
        assert_eq!(
            (sessions.current(ms(200)), requests.current(ms(200))),
            (3, 7)
        );
        assert_eq!(
            (sessions.current(ms(1700)), requests.current(ms(1700))),
            (0, 2)
        );
        assert_eq!(
            (sessions.current(ms(3200)), requests.current(ms(3200))),
            (0, 0)
        );
        assert_eq!((sessions.max(), requests.max()), (3, 7));
    }

    #[test]
    fn event_rate_periods_follow_on_and_restart_after_a_gap() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = EventRate::default();
        // 10 events in the first second, 4 in the next.
        for i in 0..10 {
            r.add(ms(i * 90));
        }
        for i in 0..4 {
            r.add(ms(1000 + i * 100));
        }
        // At 1.25 s: 4 now, plus 10 x 0.75 of the previous second.
        assert_eq!(r.current(ms(1250)), 4 + 7);
        assert_eq!(r.max(), 10);
        // One period later the 4 are the previous second's.
        assert_eq!(r.current(ms(2500)), 2);
        // After two idle periods a new period starts at the event.
        r.add(ms(5300));
        assert_eq!(r.current(ms(5300)), 1);
        assert_eq!(r.current(ms(6299)), 1);
        // A trickle below 2 per second reads as the last count, no flapping.
        assert_eq!(r.current(ms(6800)), 1);
        assert_eq!(r.current(ms(7400)), 0);
        assert_eq!(r.max(), 10);
    }
    use crate::backend::{Backend, BackendOptions, ServerSpec};
    use std::time::Instant;

    /// HAProxy 2.6, management.txt "9.1. CSV format", fields 0..=38.
    const HAPROXY_THROUGH_CHECK_DURATION: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,";

    #[test]
    fn csv_columns_are_at_haproxys_positions() {
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        let mut s1 = ServerSpec::new("s1", "127.0.0.1:1".parse().unwrap());
        s1.maxqueue = 7;
        s1.maxconn = 3;
        s1.check = Some(crate::health::CheckParams::default());
        let id1 = b.add_server(s1, now).unwrap();
        let mut s2 = ServerSpec::new("s2", "127.0.0.1:2".parse().unwrap());
        s2.backup = true;
        b.add_server(s2, now).unwrap();
        b.check_result(
            now,
            id1,
            true,
            "L4OK",
            "",
            std::time::Duration::from_millis(12),
        );
        for _ in 0..2 {
            assert!(matches!(
                b.acquire(now, None),
                crate::backend::Acquire::Assigned(_)
            ));
        }
        let snap = Snapshot {
            dropped_logs: 0,
            frontends: vec![FrontendStats {
                name: "fe".into(),
                total_sessions: 3,
                denied: 4,
                accept_errors: 5,
                ..Default::default()
            }],
            backends: vec![
                b.stats(now),
                Backend::new("empty", BackendOptions::default(), now).stats(now),
            ],
        };
        let csv = snap.to_csv();
        let header = csv.lines().next().unwrap();
        assert!(
            header.starts_with(&format!("# {HAPROXY_THROUGH_CHECK_DURATION}")),
            "{header}"
        );
        assert_eq!((CSV_COLUMNS[76], CSV_COLUMNS[79]), ("algo", "conn_tot"));
        let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(
            (col("status"), col("type"), col("check_duration")),
            (17, 32, 38)
        );
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| {
                assert!(l.ends_with(','), "trailing comma: {l}");
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f.len(), CSV_COLUMNS.len() + 1, "{l}");
                f
            })
            .collect();
        assert!(header.ends_with(',') && header.split(',').count() == CSV_COLUMNS.len() + 1);
        let get = |r: usize, name: &str| rows[r][col(name)];
        // fe, web/s1, web/s2, web BACKEND, empty BACKEND
        let kinds: Vec<(&str, &str)> = (0..rows.len())
            .map(|r| (get(r, "svname"), get(r, "type")))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("FRONTEND", "0"),
                ("s1", "2"),
                ("s2", "2"),
                ("BACKEND", "1"),
                ("BACKEND", "1")
            ]
        );
        for r in 0..rows.len() {
            assert_eq!(get(r, "pid"), "1");
        }
        let ids: Vec<(&str, &str)> = (0..rows.len())
            .map(|r| (get(r, "iid"), get(r, "sid")))
            .collect();
        assert_eq!(
            ids,
            vec![("1", "0"), ("2", "1"), ("2", "2"), ("2", "0"), ("3", "0")]
        );
        assert_eq!(get(0, "stot"), "3");
        assert_eq!(get(0, "status"), "OPEN");
        assert_eq!(
            (get(1, "status"), get(1, "slim"), get(1, "qlimit")),
            ("UP", "3", "7")
        );
        assert_eq!((get(1, "act"), get(1, "bck")), ("1", "0"));
        assert_eq!((get(2, "act"), get(2, "bck")), ("0", "1"));
        assert_eq!(
            (get(1, "check_status"), get(1, "check_duration")),
            ("L4OK", "12")
        );
        assert_eq!((get(2, "status"), get(2, "qlimit")), ("no check", ""));
        assert_eq!((get(2, "lbtot"), get(2, "check_status")), ("0", ""));
        assert_eq!((get(1, "lbtot"), get(3, "lbtot")), ("2", "2"));
        // No deny rules, and client request errors are not counted: empty,
        // not the rejected connections or accept() errors.
        assert_eq!((get(0, "dreq"), get(0, "ereq")), ("", ""));
        assert_eq!((get(3, "status"), get(3, "algo")), ("UP", "roundrobin"));
        // weight: the primaries' in use (HAProxy's tot_weight); bck counts
        // the usable backup all the same (srv_bck).
        assert_eq!(
            (get(3, "weight"), get(3, "act"), get(3, "bck")),
            ("1", "1", "1")
        );
        assert_eq!((get(4, "status"), get(4, "weight")), ("UP", "0"));
        assert_eq!(get(1, "algo"), "");
    }

    #[test]
    fn status_classes_are_haproxys() {
        let classes: Vec<usize> = [0, 99, 100, 199, 200, 302, 404, 503, 599, 600, 999]
            .iter()
            .map(|s| status_class(*s))
            .collect();
        assert_eq!(classes, [0, 0, 1, 1, 2, 3, 4, 5, 5, 0, 0]);
    }

    /// HTTP counters at HAProxy's columns (39-44 `hrsp_*`, 48 `req_tot`, 12
    /// `ereq`, 14 `eresp`, 49 `cli_abrt`, 50 `srv_abrt`) and in Prometheus
    /// with a `code` label, every object's `1xx` first as HAProxy prints
    /// them; nothing HTTP for TCP objects but the frontend's `req_tot` 0.
    #[test]
    fn http_counters_in_csv_and_prometheus() {
        let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(
            [
                "ereq",
                "eresp",
                "hrsp_1xx",
                "hrsp_other",
                "req_tot",
                "cli_abrt",
                "srv_abrt"
            ]
            .map(col),
            [12, 14, 39, 44, 48, 49, 50]
        );
        let http = |n: u64| HttpStats {
            requests: n,
            responses: [6, 1, 2, 3, 4, 5],
            request_errors: 7,
            response_errors: 8,
            client_aborts: 9,
            server_aborts: 10,
        };
        let fe = |name: &str, h: Option<HttpStats>| FrontendStats {
            name: name.into(),
            http: h,
            ..Default::default()
        };
        let snap = Snapshot {
            dropped_logs: 0,
            frontends: vec![
                fe("a", Some(http(21))),
                fe("b", Some(http(22))),
                fe("t", None),
            ],
            backends: vec![],
        };
        let csv = snap.to_csv();
        let rows: Vec<Vec<&str>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let cols = |r: usize| {
            [
                "req_tot",
                "hrsp_1xx",
                "hrsp_5xx",
                "hrsp_other",
                "ereq",
                "eresp",
                "cli_abrt",
            ]
            .map(|c| rows[r][col(c)])
        };
        assert_eq!(cols(0), ["21", "1", "5", "6", "7", "", ""]);
        assert_eq!(cols(2), ["0", "", "", "", "", "", ""]);
        let prom = snap.to_prometheus();
        let family: Vec<&str> = prom
            .lines()
            .filter(|l| l.starts_with("haproxy_frontend_http_responses_total"))
            .collect();
        assert_eq!(family.len(), 12, "{prom}");
        assert_eq!(
            &family[..3],
            [
                "haproxy_frontend_http_responses_total{proxy=\"a\",code=\"1xx\"} 1",
                "haproxy_frontend_http_responses_total{proxy=\"b\",code=\"1xx\"} 1",
                "haproxy_frontend_http_responses_total{proxy=\"a\",code=\"2xx\"} 2",
            ]
        );
        assert_eq!(
            family[11],
            "haproxy_frontend_http_responses_total{proxy=\"b\",code=\"other\"} 6"
        );
        assert!(prom.contains("haproxy_frontend_request_errors_total{proxy=\"b\"} 7\n"));
        assert!(
            !prom.contains("proxy=\"t\",code")
                && !prom.contains("request_errors_total{proxy=\"t\"}")
        );
    }

    #[test]
    fn csv_weight_of_a_server_out_of_service_is_its_weight() {
        // HAProxy keeps the eweight of a DOWN, MAINT or DRAIN server: `show
        // stat` prints 7 for a drained `weight 7` server, not 0.
        use crate::backend::AdminState;
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        for n in ["a", "d"] {
            let mut s = ServerSpec::new(n, "127.0.0.1:1".parse().unwrap());
            s.weight = 7;
            b.add_server(s, now).unwrap();
        }
        b.set_admin(now, "d", AdminState::Drain).unwrap();
        let snap = Snapshot {
            dropped_logs: 0,
            frontends: vec![],
            backends: vec![b.stats(now)],
        };
        let csv = snap.to_csv();
        let col = |l: &str, name: &str| {
            let i = CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
            l.split(',').nth(i).unwrap().to_string()
        };
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(
            (col(rows[1], "status"), col(rows[1], "weight")),
            ("DRAIN".into(), "7".into())
        );
        // The backend counts only the server that takes sessions.
        assert_eq!(
            (col(rows[2], "weight"), col(rows[2], "act")),
            ("7".into(), "1".into())
        );
    }

    #[test]
    fn csv_quotes_commas_and_quotes() {
        let snap = Snapshot {
            dropped_logs: 0,
            frontends: vec![FrontendStats {
                name: "a,\"b".into(),
                ..Default::default()
            }],
            backends: vec![],
        };
        let csv = snap.to_csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"a,\"\"b\",FRONTEND,"),
            "{csv}"
        );
    }

    #[test]
    fn status_strings_are_haproxys() {
        use crate::backend::AdminState;
        use std::time::Duration;
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        assert_eq!(b.stats(now).status, "UP", "a backend without servers is UP");
        let mut spec = ServerSpec::new("c", "127.0.0.1:1".parse().unwrap());
        spec.check = Some(crate::health::CheckParams::default()); // rise 2, fall 3
        let c = b.add_server(spec, now).unwrap();
        b.add_server(ServerSpec::new("n", "127.0.0.1:2".parse().unwrap()), now)
            .unwrap();
        let status = |b: &Backend| {
            let st = b.stats(now);
            (st.servers[0].status.clone(), st.servers[0].is_up())
        };
        let check =
            |b: &mut Backend, ok: bool| b.check_result(now, c, ok, "L4OK", "", Duration::ZERO);
        assert_eq!(b.stats(now).servers[1].status, "no check");
        assert!(b.stats(now).servers[1].is_up());
        // Starts one failure away from DOWN (health = rise = 2 of 0..=4).
        assert_eq!(status(&b), ("UP 1/3".into(), true));
        check(&mut b, true);
        assert_eq!(status(&b), ("UP".into(), true));
        b.set_admin(now, "c", AdminState::Drain).unwrap();
        assert_eq!(status(&b), ("DRAIN".into(), true));
        check(&mut b, false);
        assert_eq!(status(&b), ("DRAIN 2/3".into(), true));
        b.set_admin(now, "c", AdminState::Ready).unwrap();
        assert_eq!(status(&b), ("UP 2/3".into(), true));
        check(&mut b, false);
        check(&mut b, false);
        assert_eq!(status(&b), ("DOWN".into(), false));
        check(&mut b, true);
        assert_eq!(status(&b), ("DOWN 1/2".into(), false));
        b.set_admin(now, "c", AdminState::Maint).unwrap();
        assert_eq!(status(&b), ("MAINT".into(), false));
        b.set_admin(now, "n", AdminState::Maint).unwrap();
        assert_eq!(b.stats(now).status, "DOWN");
    }

    /// As HAProxy 2.6.12 shows them (checked against the binary): a drained
    /// server with an agent check is `DRAIN (agent)` whoever set the drain,
    /// also while going down; weight 0 is no drain.
    #[test]
    fn drain_with_an_agent_check_is_drain_agent() {
        use crate::backend::AdminState;
        use std::time::Duration;
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        let mut spec = ServerSpec::new("a", "127.0.0.1:1".parse().unwrap());
        spec.agent = true;
        spec.check = Some(crate::health::CheckParams::default());
        let a = b.add_server(spec, now).unwrap();
        let status = |b: &Backend| b.stats(now).servers[0].status.clone();
        b.check_result(now, a, true, "L4OK", "", Duration::ZERO);
        b.set_admin(now, "a", AdminState::Drain).unwrap();
        assert_eq!(status(&b), "DRAIN (agent)");
        assert!(b.stats(now).servers[0].is_up());
        b.check_result(now, a, false, "L4CON", "", Duration::ZERO);
        assert_eq!(status(&b), "DRAIN (agent)", "going down");
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        assert_eq!(status(&b), "UP 2/3");
        let reply = crate::health::parse_agent_reply(b"drain\n").unwrap();
        b.agent_result(now, a, &reply);
        assert_eq!(status(&b), "DRAIN (agent)");
        b.set_admin(now, "a", AdminState::Ready).unwrap();
        b.set_weight(now, "a", 0).unwrap();
        assert_eq!(status(&b), "UP 2/3", "weight 0 is not a drain");
    }

    #[test]
    fn extreme_rise_and_fall_do_not_overflow() {
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        let mut spec = ServerSpec::new("s1", "127.0.0.1:1".parse().unwrap());
        spec.check = Some(crate::health::CheckParams {
            rise: u32::MAX,
            fall: u32::MAX,
            ..Default::default()
        });
        let id = b.add_server(spec, now).unwrap();
        for ok in [true, false, true] {
            b.check_result(now, id, ok, "L4OK", "", std::time::Duration::ZERO);
            let st = b.stats(now);
            assert!(!st.servers[0].status.is_empty());
            let _ = b.next_check_in(id);
        }
    }

    #[test]
    fn csv_and_prometheus_contain_every_server() {
        let now = Instant::now();
        let mut b = Backend::new("web", BackendOptions::default(), now);
        b.add_server(ServerSpec::new("s1", "127.0.0.1:1".parse().unwrap()), now)
            .unwrap();
        b.add_server(ServerSpec::new("s\"2", "127.0.0.1:2".parse().unwrap()), now)
            .unwrap();
        let snap = Snapshot {
            dropped_logs: 0,
            frontends: vec![FrontendStats {
                name: "fe".into(),
                total_sessions: 3,
                ..Default::default()
            }],
            backends: vec![b.stats(now)],
        };
        let csv = snap.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        let ncols = lines[0].split(',').count();
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), ncols, "{l}");
        }
        assert!(lines[2].starts_with("web,s1,0,0,0,0,,0,"));
        assert!(lines[4].starts_with("web,BACKEND,0,0,0,0,"));
        let prom = snap.to_prometheus();
        assert!(prom.contains("haproxy_frontend_sessions_total{proxy=\"fe\"} 3\n"));
        assert!(prom
            .contains("haproxy_server_status{proxy=\"web\",server=\"s\\\"2\",state=\"UP\"} 1\n"));
    }
}
