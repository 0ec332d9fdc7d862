//! Stats: a snapshot struct, HAProxy-like CSV, and Prometheus text exposition.

use std::fmt::Write as _;
use std::net::SocketAddr;

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
    /// `DRAIN 1/3` (draining and going down), `MAINT`. See [`ServerStats::is_up`].
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
    /// Bytes from clients to this server.
    pub bytes_in: u64,
    /// Bytes from this server to clients.
    pub bytes_out: u64,
    /// Failed connects.
    pub connect_errors: u64,
    /// Connect retries on this server.
    pub retries: u64,
    /// Sessions redispatched away from this server.
    pub redispatches: u64,
    /// Last check status (`L4OK`, `L4CON`, `L7STS`, ...), empty before the first.
    pub check_status: String,
    /// Last check duration.
    pub check_duration_ms: Option<u64>,
    /// Failed checks.
    pub check_failures: u64,
    /// UP -> DOWN transitions.
    pub down_transitions: u64,
    /// Seconds since the last state change.
    pub last_change_secs: u64,
    /// Concurrent sessions limit (0 = none).
    pub maxconn: u32,
}

impl ServerStats {
    /// True while the server is operationally up: `UP`, `UP x/y`,
    /// `no check`, `DRAIN`, `DRAIN x/y` (draining servers are up, they just
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
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// Current sessions.
    pub cur_sessions: u32,
    /// Highest concurrent sessions.
    pub max_sessions: u32,
    /// Sessions served.
    pub total_sessions: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Failed connects.
    pub connect_errors: u64,
    /// Connect retries.
    pub retries: u64,
    /// Redispatches.
    pub redispatches: u64,
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
    /// Servers, by id.
    pub servers: Vec<ServerStats>,
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
    /// Sessions accepted.
    pub total_sessions: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes to clients.
    pub bytes_out: u64,
    /// Connections rejected (bad PROXY header, no server, queue full or timeout).
    pub denied: u64,
    /// `accept()` errors (e.g. out of file descriptors).
    pub accept_errors: u64,
}

/// Everything, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Frontends by name.
    pub frontends: Vec<FrontendStats>,
    /// Backends by name.
    pub backends: Vec<BackendStats>,
}

impl Snapshot {
    /// HAProxy-like CSV (`show stat`): the first columns are HAProxy's
    /// (`pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,...`), then ours.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,check_status,check_duration,algo\n",
        );
        for f in &self.frontends {
            let _ = writeln!(
                out,
                "{},FRONTEND,,,{},{},,{},{},{},{},,{},,,,,OPEN,,,,,,,,,",
                f.name,
                f.cur_sessions,
                f.max_sessions,
                f.total_sessions,
                f.bytes_in,
                f.bytes_out,
                f.denied,
                f.accept_errors
            );
        }
        for b in &self.backends {
            let (mut act, mut bck, mut w) = (0, 0, 0);
            for s in &b.servers {
                let chk = s
                    .check_duration_ms
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},,,{},{},{},{},{},{},,,,{},,{},{},{},{},{},{},{},{},{},{},{},",
                    b.name,
                    s.name,
                    s.cur_sessions,
                    s.max_sessions,
                    if s.maxconn == 0 {
                        String::new()
                    } else {
                        s.maxconn.to_string()
                    },
                    s.total_sessions,
                    s.bytes_in,
                    s.bytes_out,
                    s.connect_errors,
                    s.retries,
                    s.redispatches,
                    s.status,
                    s.effective_weight,
                    u8::from(!s.backup),
                    u8::from(s.backup),
                    s.check_failures,
                    s.down_transitions,
                    s.last_change_secs,
                    s.check_status,
                    chk
                );
                if s.effective_weight > 0 {
                    w += s.effective_weight;
                    if s.backup {
                        bck += 1;
                    } else {
                        act += 1;
                    }
                }
            }
            let _ = writeln!(
                out,
                "{},BACKEND,{},{},{},{},,{},{},{},,,,{},,{},{},{},{},{},{},,,{},,,{}",
                b.name,
                b.queue_cur,
                b.queue_max,
                b.cur_sessions,
                b.max_sessions,
                b.total_sessions,
                b.bytes_in,
                b.bytes_out,
                b.connect_errors,
                b.retries,
                b.redispatches,
                b.status,
                w,
                act,
                bck,
                b.last_change_secs,
                b.algorithm
            );
        }
        out
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(
                out,
                "# HELP halyard_{name} {help}\n# TYPE halyard_{name} {kind}"
            );
            for (labels, v) in rows {
                let _ = writeln!(out, "halyard_{name}{{{labels}}} {v}");
            }
        };
        let fl = |f: &FrontendStats| format!("frontend=\"{}\"", esc(&f.name));
        let bl = |b: &BackendStats| format!("backend=\"{}\"", esc(&b.name));
        let sl = |b: &BackendStats, s: &ServerStats| {
            format!("backend=\"{}\",server=\"{}\"", esc(&b.name), esc(&s.name))
        };
        let fr = &self.frontends;
        let be = &self.backends;
        let srv = || {
            be.iter()
                .flat_map(|b| b.servers.iter().map(move |s| (b, s)))
        };
        metric(
            "frontend_current_sessions",
            "gauge",
            "Current sessions.",
            fr.iter()
                .map(|f| (fl(f), u64::from(f.cur_sessions)))
                .collect(),
        );
        metric(
            "frontend_sessions_total",
            "counter",
            "Sessions accepted.",
            fr.iter().map(|f| (fl(f), f.total_sessions)).collect(),
        );
        metric(
            "frontend_bytes_in_total",
            "counter",
            "Bytes from clients.",
            fr.iter().map(|f| (fl(f), f.bytes_in)).collect(),
        );
        metric(
            "frontend_bytes_out_total",
            "counter",
            "Bytes to clients.",
            fr.iter().map(|f| (fl(f), f.bytes_out)).collect(),
        );
        metric(
            "frontend_denied_total",
            "counter",
            "Connections rejected.",
            fr.iter().map(|f| (fl(f), f.denied)).collect(),
        );
        metric(
            "frontend_accept_errors_total",
            "counter",
            "accept() errors.",
            fr.iter().map(|f| (fl(f), f.accept_errors)).collect(),
        );
        metric(
            "backend_up",
            "gauge",
            "1 while a server can take sessions (or the backend has none).",
            be.iter()
                .map(|b| (bl(b), u64::from(b.status == "UP")))
                .collect(),
        );
        metric(
            "backend_current_sessions",
            "gauge",
            "Current sessions.",
            be.iter()
                .map(|b| (bl(b), u64::from(b.cur_sessions)))
                .collect(),
        );
        metric(
            "backend_sessions_total",
            "counter",
            "Sessions served.",
            be.iter().map(|b| (bl(b), b.total_sessions)).collect(),
        );
        metric(
            "backend_current_queue",
            "gauge",
            "Clients queued.",
            be.iter().map(|b| (bl(b), u64::from(b.queue_cur))).collect(),
        );
        metric(
            "backend_queue_timeouts_total",
            "counter",
            "Clients dropped by timeout queue.",
            be.iter().map(|b| (bl(b), b.queue_timeouts)).collect(),
        );
        metric(
            "backend_connection_errors_total",
            "counter",
            "Failed connects.",
            be.iter().map(|b| (bl(b), b.connect_errors)).collect(),
        );
        metric(
            "backend_retries_total",
            "counter",
            "Connect retries.",
            be.iter().map(|b| (bl(b), b.retries)).collect(),
        );
        metric(
            "backend_redispatches_total",
            "counter",
            "Redispatches.",
            be.iter().map(|b| (bl(b), b.redispatches)).collect(),
        );
        metric(
            "server_up",
            "gauge",
            "1 while up (UP, no check, DRAIN; not DOWN or MAINT).",
            srv()
                .map(|(b, s)| (sl(b, s), u64::from(s.is_up())))
                .collect(),
        );
        metric(
            "server_weight",
            "gauge",
            "Effective weight.",
            srv()
                .map(|(b, s)| (sl(b, s), u64::from(s.effective_weight)))
                .collect(),
        );
        metric(
            "server_current_sessions",
            "gauge",
            "Current sessions.",
            srv()
                .map(|(b, s)| (sl(b, s), u64::from(s.cur_sessions)))
                .collect(),
        );
        metric(
            "server_sessions_total",
            "counter",
            "Sessions served.",
            srv().map(|(b, s)| (sl(b, s), s.total_sessions)).collect(),
        );
        metric(
            "server_bytes_in_total",
            "counter",
            "Bytes from clients.",
            srv().map(|(b, s)| (sl(b, s), s.bytes_in)).collect(),
        );
        metric(
            "server_bytes_out_total",
            "counter",
            "Bytes to clients.",
            srv().map(|(b, s)| (sl(b, s), s.bytes_out)).collect(),
        );
        metric(
            "server_connection_errors_total",
            "counter",
            "Failed connects.",
            srv().map(|(b, s)| (sl(b, s), s.connect_errors)).collect(),
        );
        metric(
            "server_check_failures_total",
            "counter",
            "Failed checks.",
            srv().map(|(b, s)| (sl(b, s), s.check_failures)).collect(),
        );
        metric(
            "server_check_duration_milliseconds",
            "gauge",
            "Last check duration.",
            srv()
                .map(|(b, s)| (sl(b, s), s.check_duration_ms.unwrap_or(0)))
                .collect(),
        );
        metric(
            "server_last_change_seconds",
            "gauge",
            "Seconds since the last state change.",
            srv().map(|(b, s)| (sl(b, s), s.last_change_secs)).collect(),
        );
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, BackendOptions, ServerSpec};
    use std::time::Instant;

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
        let check = |b: &mut Backend, ok: bool| b.check_result(now, c, ok, "L4OK", Duration::ZERO);
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
            b.check_result(now, id, ok, "L4OK", std::time::Duration::ZERO);
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
        assert!(lines[2].starts_with("web,s1,,,0,0,,0,"));
        assert!(lines[4].starts_with("web,BACKEND,0,0,0,0,"));
        let prom = snap.to_prometheus();
        assert!(prom.contains("halyard_frontend_sessions_total{frontend=\"fe\"} 3"));
        assert!(prom.contains("halyard_server_up{backend=\"web\",server=\"s\\\"2\"} 1"));
    }
}
