//! A seeded model test of the pure backend core: random sequences of
//! sessions, failures, checks, agent replies, runtime changes and time, with
//! the invariants checked after every step. proptest prints the failing
//! sequence (shrunk) and stores its seed for replay.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use halyard_proxy::backend::{
    Acquire, AdminState, Backend, BackendOptions, Retry, ServerSpec, Ticket,
};
use halyard_proxy::balance::{Algorithm, HashMethod, HashType, ServerId, UriHash};
use halyard_proxy::config::Mode;
use halyard_proxy::health::{parse_agent_reply, CheckParams};
use halyard_proxy::stats::BackendStats;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Acquire(u8),
    /// A request with a persistence cookie: client, value.
    Cookie(u8, u8),
    Release(usize),
    ConnectFail(usize),
    Check(usize, bool),
    Weight(usize, u32),
    Admin(usize, u8),
    Agent(usize, u8),
    Algorithm(usize),
    Tick(u64),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Acquire),
        2 => (any::<u8>(), 0u8..3).prop_map(|(c, v)| Op::Cookie(c, v)),
        3 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::ConnectFail),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Check(i, ok)),
        1 => (any::<usize>(), 0u32..=4).prop_map(|(i, w)| Op::Weight(i, w)),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, a)| Op::Admin(i, a)),
        1 => (any::<usize>(), 0u8..5).prop_map(|(i, a)| Op::Agent(i, a)),
        1 => any::<usize>().prop_map(Op::Algorithm),
        1 => (1u64..3000).prop_map(Op::Tick),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// The servers that may take a new session, from a stats snapshot.
fn candidates(st: &BackendStats, allbackups: bool) -> Vec<ServerId> {
    let prim: Vec<ServerId> = st
        .servers
        .iter()
        .filter(|s| !s.backup && s.effective_weight > 0)
        .map(|s| s.id)
        .collect();
    if !prim.is_empty() {
        return prim;
    }
    let b = st
        .servers
        .iter()
        .filter(|s| s.backup && s.effective_weight > 0)
        .map(|s| s.id);
    if allbackups {
        b.collect()
    } else {
        b.take(1).collect()
    }
}

/// The algorithms tried: those without parameters and the request hashes
/// (to the backend core, a request's key is a key like a client's).
fn algorithms() -> Vec<Algorithm> {
    let mut all = Algorithm::ALL.to_vec();
    all.extend([
        Algorithm::Uri(UriHash::default()),
        Algorithm::UrlParam("user".into()),
        Algorithm::Hdr {
            name: "Host".into(),
            use_domain_only: true,
        },
    ]);
    all
}

/// Client `c`'s hash key: every eighth client's request lacks the hashed
/// part (no header, no parameter), so the hash algorithms fall back to
/// round robin for it.
fn key(c: u8) -> Option<u64> {
    (!c.is_multiple_of(8)).then(|| u64::from(c).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

struct Model {
    /// Sessions: server, client's key, failures so far, sent by its cookie.
    held: Vec<(ServerId, Option<u64>, u32, bool)>,
    /// Queued clients in arrival order, with the server each waits for
    /// (hash algorithms, a cookie) or `None` (any server), and whether a
    /// cookie sent it.
    queue: Vec<(Ticket, Option<u64>, Option<ServerId>, bool)>,
    /// `random` queued a client whose draw was full while another server
    /// had room (HAProxy's get_server_rnd): until a slot frees, a client
    /// may wait for any server while one has room.
    random_wait: bool,
    /// Selections by the balancer (HAProxy's lbtot): new sessions given a
    /// server (or bound to one) and redispatches.
    lbtot: u64,
}

impl Model {
    /// A queued client got a server: it must be the oldest of its kind
    /// (the same server waited for, by hash or cookie, or any server).
    fn dispatched(&mut self, t: Ticket, a: ServerId) {
        let pos = self
            .queue
            .iter()
            .position(|w| w.0 == t)
            .expect("dispatched ticket was queued");
        let (_, ip, bound, direct) = self.queue.remove(pos);
        assert!(
            self.queue[..pos]
                .iter()
                .all(|w| (w.2, w.3) != (bound, direct)),
            "dispatch out of FIFO order"
        );
        self.held.push((a, ip, 0, direct && bound == Some(a)));
    }

    fn waiting_for(&self, id: ServerId) -> usize {
        self.queue.iter().filter(|w| w.2 == Some(id)).count()
    }
}

fn check_invariants(b: &Backend, m: &mut Model, now: Instant, allbackups: bool) {
    let st = b.stats(now);
    assert_eq!(st.lbtot, m.lbtot, "lbtot");
    assert_eq!(
        st.servers.iter().map(|s| s.lbtot).sum::<u64>(),
        st.lbtot,
        "backend lbtot is the servers' sum"
    );
    assert_eq!(st.cur_sessions as usize, m.held.len(), "backend sessions");
    let mut per: BTreeMap<ServerId, u32> = BTreeMap::new();
    for (s, _, _, _) in &m.held {
        *per.entry(*s).or_insert(0) += 1;
    }
    for s in &st.servers {
        assert_eq!(
            s.cur_sessions,
            per.get(&s.id).copied().unwrap_or(0),
            "sessions of {}",
            s.name
        );
        if s.maxconn > 0 {
            assert!(s.cur_sessions <= s.maxconn, "{} over maxconn", s.name);
        }
    }
    assert_eq!(st.queue_cur as usize, m.queue.len(), "queue length");
    let cands = candidates(&st, allbackups);
    let room = |id: ServerId| {
        let s = st.servers.iter().find(|s| s.id == id).unwrap();
        let max = b.effective_maxconn(id, now).unwrap();
        max == 0 || s.cur_sessions < max
    };
    // A client waiting for its server waits only while that server is full.
    for (_, _, bound, _) in &m.queue {
        if let Some(id) = bound.filter(|id| cands.contains(id)) {
            assert!(!room(id), "a client waits for {id:?}, which has room");
        }
    }
    if m.queue.iter().any(|w| w.2.is_none()) {
        // Nobody waits for any server while a candidate has a free slot
        // (its maxconn ramped by slowstart while it warms up), except after
        // a full `random` draw, until a slot frees.
        let roomy = cands.iter().copied().find(|id| room(*id));
        m.random_wait &= roomy.is_some();
        assert!(
            roomy.is_none() || m.random_wait,
            "queue non-empty but {roomy:?} has room"
        );
    }
}

/// The checks of a balanced request (no cookie, or one naming no usable server).
#[allow(clippy::too_many_arguments)]
fn balanced(
    m: &mut Model,
    b: &Backend,
    res: Acquire,
    before: &BackendStats,
    allbackups: bool,
    algorithm: &Algorithm,
    ip: Option<u64>,
) {
    let binds = algorithm.hashes() && ip.is_some();
    let random = *algorithm == Algorithm::Random;
    match res {
        Acquire::Assigned(a) => {
            m.lbtot += 1;
            // `random` draws even when clients wait for any
            // server (HAProxy skips the balancer only for first,
            // roundrobin and static-rr).
            let overtaken = if binds { Some(a.server) } else { None };
            assert!(
                random || m.queue.iter().all(|w| w.2 != overtaken),
                "overtook the queue"
            );
            assert!(
                candidates(before, allbackups).contains(&a.server),
                "{a:?} not a candidate"
            );
            m.held.push((a.server, ip, 0, false));
        }
        Acquire::Queued(t) => {
            let bound = b.waits_for(t);
            assert_eq!(bound.is_some(), binds, "bound only by hashing");
            m.lbtot += u64::from(binds);
            m.random_wait |= random;
            m.queue.push((t, ip, bound, false));
        }
        Acquire::NoServer => assert!(candidates(before, allbackups).is_empty()),
        Acquire::QueueFull => {
            // Only a server's own queue is bounded (maxqueue 2).
            assert!(binds);
            m.lbtot += 1;
            let mut per: BTreeMap<ServerId, usize> = BTreeMap::new();
            for w in &m.queue {
                if let Some(s) = w.2 {
                    *per.entry(s).or_default() += 1;
                }
            }
            assert!(per.values().any(|&n| n >= 2), "QueueFull below maxqueue");
        }
    }
}

fn specs_cookie(id: ServerId) -> Option<&'static str> {
    ["a", "b", "a"].get(id.0 as usize - 1).copied()
}

fn run(seed: u64, allbackups: bool, ops: Vec<Op>) {
    let t0 = Instant::now();
    let mut now = t0;
    let (redispatch, persist) = (seed.is_multiple_of(2), seed.is_multiple_of(3));
    let all = algorithms();
    let mut algorithm = all[(seed % all.len() as u64) as usize].clone();
    // hash-type consistent on some seeds: the hashes then use the ring.
    let hash_type = if seed.is_multiple_of(5) {
        "consistent".parse::<HashType>().unwrap()
    } else {
        HashType::default()
    };
    let opts = BackendOptions {
        algorithm: algorithm.clone(),
        hash_type,
        mode: Mode::Http,
        allbackups,
        retries: 2,
        timeout_queue: Duration::from_secs(1),
        seed,
        redispatch,
        persist,
        ..Default::default()
    };
    let mut b = Backend::new("m", opts, now);
    let params = CheckParams {
        rise: 2,
        fall: 2,
        ..Default::default()
    };
    let specs = [(1, 2, false), (2, 0, false), (1, 1, true), (3, 3, true)];
    for (i, (w, maxconn, backup)) in specs.iter().enumerate() {
        let mut s = ServerSpec::new(
            format!("s{i}"),
            SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
        );
        s.weight = *w;
        s.maxconn = *maxconn;
        s.maxqueue = 2;
        s.backup = *backup;
        s.check = Some(params);
        s.slowstart = Duration::from_secs(2);
        // s0 and the backup s2 share a value, as HAProxy allows.
        s.cookie = ["a", "b", "a"].get(i).map(|v| v.to_string());
        b.add_server(s, now).unwrap();
    }
    let ids = b.server_ids();
    let mut m = Model {
        held: Vec::new(),
        queue: Vec::new(),
        random_wait: false,
        lbtot: 0,
    };
    for op in ops {
        let before = b.stats(now);
        match op {
            Op::Acquire(c) => {
                let ip = key(c);
                let res = b.acquire(now, ip);
                balanced(&mut m, &b, res, &before, allbackups, &algorithm, ip);
            }
            Op::Cookie(c, v) => {
                let ip = key(c);
                let value = ["a", "b", "zz"][v as usize];
                match b.cookie_server(value) {
                    None => {
                        let res = b.acquire(now, ip);
                        balanced(&mut m, &b, res, &before, allbackups, &algorithm, ip);
                    }
                    Some(id) => {
                        let st = before.servers.iter().find(|s| s.id == id).unwrap();
                        let stopped = st.status.starts_with("DOWN") || st.status == "MAINT";
                        assert!(persist || !stopped, "{} takes no persistence", st.status);
                        assert_eq!(specs_cookie(id), Some(value));
                        let full_queue = specs[id.0 as usize - 1].1 != 0 && m.waiting_for(id) >= 2;
                        let res = b.acquire_direct(now, id, ip);
                        if full_queue && redispatch {
                            balanced(&mut m, &b, res, &before, allbackups, &algorithm, ip);
                        } else {
                            match res {
                                Acquire::Assigned(a) => {
                                    assert_eq!(a.server, id);
                                    m.held.push((id, ip, 0, true));
                                }
                                Acquire::Queued(t) => {
                                    assert_eq!(b.waits_for(t), Some(id));
                                    m.queue.push((t, ip, Some(id), true));
                                }
                                Acquire::QueueFull => assert!(full_queue && !redispatch),
                                Acquire::NoServer => panic!("no server for a direct request"),
                            }
                        }
                    }
                }
            }
            Op::Release(i) if !m.held.is_empty() => {
                let (s, _, _, _) = m.held.remove(i % m.held.len());
                b.release(now, s, 1, 1);
            }
            Op::ConnectFail(i) if !m.held.is_empty() => {
                let k = i % m.held.len();
                let (s, ip, f, direct) = m.held.remove(k);
                match b.connect_failed(now, s, f + 1, ip, direct) {
                    Retry::Same(a) => {
                        assert_eq!(a.server, s);
                        m.held.push((a.server, ip, f + 1, direct));
                    }
                    Retry::Redispatch(a) => {
                        assert_ne!(a.server, s, "redispatch to the same server");
                        m.lbtot += 1;
                        m.held.push((a.server, ip, f + 1, false));
                    }
                    Retry::GiveUp => {}
                }
            }
            Op::Check(i, ok) => b.check_result(
                now,
                ids[i % ids.len()],
                ok,
                if ok { "L4OK" } else { "L4CON" },
                "",
                Duration::ZERO,
            ),
            Op::Weight(i, w) => {
                if let Err(e) = b.set_weight(now, &format!("s{}", i % ids.len()), w) {
                    // Only a static algorithm refuses a weight in range:
                    // static-rr and the map-based hashes.
                    let ring = algorithm == Algorithm::Consistent
                        || hash_type.method == HashMethod::Consistent;
                    assert!(
                        algorithm == Algorithm::StaticRr || (algorithm.hashes() && !ring),
                        "{e}"
                    );
                }
            }
            Op::Admin(i, a) => {
                let st = [AdminState::Ready, AdminState::Drain, AdminState::Maint][a as usize];
                b.set_admin(now, &format!("s{}", i % ids.len()), st)
                    .unwrap();
            }
            Op::Agent(i, a) => {
                let text: &[u8] = [
                    &b"50%\n"[..],
                    b"drain\n",
                    b"ready 100%\n",
                    b"down\n",
                    b"up\n",
                ][a as usize];
                let reply = parse_agent_reply(text).expect("a complete line");
                b.agent_result(now, ids[i % ids.len()], &reply);
            }
            Op::Algorithm(i) => {
                algorithm = all[i % all.len()].clone();
                b.set_algorithm(algorithm.clone()).unwrap();
            }
            Op::Tick(ms) => {
                now += Duration::from_millis(ms);
                let expired = b.expire_queue(now);
                let mut expected: Vec<Ticket> = Vec::new();
                m.queue.retain(|(t, _, _, _)| {
                    if expired.contains(t) {
                        expected.push(*t);
                        false
                    } else {
                        true
                    }
                });
                assert_eq!(expired, expected, "expired in order");
                // The runtime's warmup tick: slowstart raised some maxconn.
                b.warmup(now);
            }
            Op::Cancel(i) if !m.queue.is_empty() => {
                let (t, _, _, _) = m.queue.remove(i % m.queue.len());
                assert!(b.cancel(t));
            }
            _ => {}
        }
        // Queued clients that got a server: FIFO per kind, and now hold a session.
        for (t, a) in b.take_dispatched() {
            m.dispatched(t, a.server);
        }
        let _ = b.take_events();
        check_invariants(&b, &mut m, now, allbackups);
    }
    // Release everything (queued clients get served and leave too).
    while let Some((s, _, _, _)) = m.held.pop() {
        b.release(now, s, 0, 0);
        for (t, a) in b.take_dispatched() {
            m.dispatched(t, a.server);
        }
    }
    for (t, _, _, _) in m.queue.drain(..) {
        assert!(b.cancel(t));
    }
    let st = b.stats(now);
    assert_eq!(st.cur_sessions, 0);
    assert!(st.servers.iter().all(|s| s.cur_sessions == 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn backend_core_keeps_its_invariants(seed in any::<u64>(), allbackups in any::<bool>(), ops in proptest::collection::vec(op(), 1..300)) {
        run(seed, allbackups, ops);
    }
}

/// The same seed and inputs give the same decisions.
#[test]
fn same_seed_same_trace() {
    let trace = |seed| {
        let now = Instant::now();
        let opts = BackendOptions {
            algorithm: Algorithm::Random,
            seed,
            ..Default::default()
        };
        let mut b = Backend::new("d", opts, now);
        for i in 0..5u16 {
            b.add_server(
                ServerSpec::new(
                    format!("s{i}"),
                    SocketAddr::from(([127, 0, 0, 1], 2000 + i)),
                ),
                now,
            )
            .unwrap();
        }
        (0..200)
            .map(|i| match b.acquire(now, None) {
                Acquire::Assigned(a) => {
                    if i % 3 == 0 {
                        b.release(now, a.server, 0, 0);
                    }
                    a.server.0
                }
                other => panic!("{other:?}"),
            })
            .collect::<Vec<u32>>()
    };
    assert_eq!(trace(9), trace(9));
    assert_ne!(trace(9), trace(10));
}
