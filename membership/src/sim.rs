//! A deterministic simulator for the ring engine.
//!
//! Compiled for this crate's tests and, behind the `sim` feature, for other
//! crates. One thread, a virtual clock (a fixed base `Instant` plus virtual
//! elapsed time), a seeded [`SmallRng`], and a network with loss, delay,
//! duplication and reordering (from random delays) — a default profile plus
//! per directed link overrides (one-way failures) — partitions and heals,
//! plus node crashes and restarts (a restarted node keeps its [`MemoryRingIdStore`]).
//!
//! After every step the invariants are checked (see [`Sim::check_invariants`]):
//!
//! 1. nodes that deliver a regular configuration with the same ring id agree on
//!    its members, and the ring's representative is its lowest member;
//! 2. each node's regular ring ids strictly increase (across restarts too);
//! 3. a node is never in its own failed set;
//! 4. a transitional configuration is a subset of the regular one that follows it.
//!
//! [`run_seed`] adds the liveness check: after faults stop, all live nodes
//! converge to one ring containing all of them within [`CONVERGE_BOUND_TOKENS`]
//! effective token timeouts.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::configuration::{ConfigurationKind, Event};
use crate::{Destination, MembState, MemoryRingIdStore, NodeId, RingId, Totem, TotemConfig};

/// After faults stop, every live node must be in one common ring within this
/// many effective token timeouts.
pub const CONVERGE_BOUND_TOKENS: u32 = 8;

/// Link behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkProfile {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Minimum one-way delay.
    pub delay_min: Duration,
    /// Maximum one-way delay (uniform in between; overlapping delays reorder).
    pub delay_max: Duration,
}

impl LinkProfile {
    /// The one-way delays of the copies this link delivers of one datagram: none
    /// if it is lost, two if it is duplicated, each uniform in
    /// `delay_min..=delay_max`. Draws from `rng` in a fixed order (loss,
    /// duplication, then one delay per copy), so a seed replays exactly.
    pub fn deliveries<R: Rng>(&self, rng: &mut R) -> Vec<Duration> {
        if self.loss >= 1.0 || (self.loss > 0.0 && rng.gen_bool(self.loss)) {
            return Vec::new();
        }
        let copies = if self.duplicate > 0.0 && rng.gen_bool(self.duplicate) {
            2
        } else {
            1
        };
        let span = self.delay_max.saturating_sub(self.delay_min).as_micros() as u64;
        (0..copies)
            .map(|_| {
                self.delay_min
                    + Duration::from_micros(if span == 0 {
                        0
                    } else {
                        rng.gen_range(0..=span)
                    })
            })
            .collect()
    }
}

impl Default for LinkProfile {
    fn default() -> Self {
        LinkProfile {
            loss: 0.0,
            duplicate: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(600),
        }
    }
}

struct SimNode {
    engine: Option<Totem>,
    store: MemoryRingIdStore,
    /// Extra one-way delay on every datagram to or from this node ("slow node").
    slow: Duration,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    order: u64,
    from: NodeId,
    to: NodeId,
    payload: Bytes,
}

/// A simulated cluster.
pub struct Sim {
    base: Instant,
    now: Duration,
    rng: SmallRng,
    config: TotemConfig,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    /// Default link profile.
    pub link: LinkProfile,
    /// Per directed link overrides of `link`.
    pub links: BTreeMap<(NodeId, NodeId), LinkProfile>,
    /// Partition group of each node; datagrams cross only within a group.
    group: BTreeMap<NodeId, u32>,
    /// Every regular configuration seen: ring id -> members.
    rings: BTreeMap<RingId, Vec<NodeId>>,
    last_regular: BTreeMap<NodeId, RingId>,
    last_transitional: BTreeMap<NodeId, (RingId, Vec<NodeId>)>,
    /// The trace (one line per event), for determinism checks and replay output.
    pub trace: Vec<String>,
    /// Whether to record datagram-level lines in the trace.
    pub trace_datagrams: bool,
    /// Regular configurations delivered, per node, with their virtual time.
    pub regular: BTreeMap<NodeId, Vec<(Duration, RingId, Vec<NodeId>)>>,
}

impl Sim {
    /// A cluster of `n` nodes (ids 1..=n), all started at virtual time 0.
    pub fn new(seed: u64, n: u32, config: TotemConfig) -> Sim {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut sim = Sim {
            base: Instant::now(),
            now: Duration::ZERO,
            rng: SmallRng::seed_from_u64(seed),
            config,
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            link: LinkProfile::default(),
            links: BTreeMap::new(),
            group: ids.iter().map(|i| (*i, 0)).collect(),
            rings: BTreeMap::new(),
            last_regular: BTreeMap::new(),
            last_transitional: BTreeMap::new(),
            trace: Vec::new(),
            trace_datagrams: false,
            regular: BTreeMap::new(),
        };
        for id in &ids {
            sim.nodes.insert(
                *id,
                SimNode {
                    engine: None,
                    store: MemoryRingIdStore::new(),
                    slow: Duration::ZERO,
                },
            );
        }
        for id in ids {
            sim.start(id);
        }
        sim
    }

    /// Virtual time elapsed.
    pub fn now(&self) -> Duration {
        self.now
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    /// The engine of a live node.
    pub fn engine(&self, id: NodeId) -> Option<&Totem> {
        self.nodes.get(&id).and_then(|n| n.engine.as_ref())
    }

    /// Live node ids.
    pub fn live(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.engine.is_some())
            .map(|(i, _)| *i)
            .collect()
    }

    /// (Re)starts a node with the ring id store it had.
    pub fn start(&mut self, id: NodeId) {
        let now = self.instant();
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.engine.is_some() {
            return;
        }
        let engine = Totem::new(
            id,
            self.ids.clone(),
            &self.config,
            Box::new(node.store.clone()),
            now,
        )
        .expect("valid simulator configuration");
        node.engine = Some(engine);
        self.trace.push(format!(
            "{:>10.3} {} start",
            self.now.as_secs_f64() * 1e3,
            id.0
        ));
        self.flush(id);
    }

    /// Crashes a node (its in-flight datagrams still arrive; datagrams to it are lost).
    pub fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.engine.take().is_some() {
                self.trace.push(format!(
                    "{:>10.3} {} crash",
                    self.now.as_secs_f64() * 1e3,
                    id.0
                ));
            }
        }
    }

    /// Gracefully leaves, then stops the node.
    pub fn leave(&mut self, id: NodeId) {
        let now = self.instant();
        if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
            e.leave(now);
            self.flush(id);
            self.nodes.get_mut(&id).expect("known").engine = None;
        }
    }

    /// Splits the cluster: `groups[i]` is the partition of node `ids[i]`.
    pub fn partition(&mut self, groups: &BTreeMap<NodeId, u32>) {
        for (k, v) in groups {
            self.group.insert(*k, *v);
        }
        self.trace.push(format!(
            "{:>10.3} partition {:?}",
            self.now.as_secs_f64() * 1e3,
            self.group
        ));
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        for v in self.group.values_mut() {
            *v = 0;
        }
        self.trace
            .push(format!("{:>10.3} heal", self.now.as_secs_f64() * 1e3));
    }

    /// Makes a node slow: `extra` one-way delay on all its datagrams.
    pub fn set_slow(&mut self, id: NodeId, extra: Duration) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.slow = extra;
        }
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, payload: Bytes) {
        if from == to {
            // Loopback: no loss, no partition.
            self.order += 1;
            let at = self.now + Duration::from_micros(20);
            self.queue.push(Reverse(InFlight {
                at,
                order: self.order,
                from,
                to,
                payload,
            }));
            return;
        }
        if self.group.get(&from) != self.group.get(&to) {
            return;
        }
        let l = self.links.get(&(from, to)).copied().unwrap_or(self.link);
        let slow = self.nodes[&from].slow + self.nodes[&to].slow;
        for d in l.deliveries(&mut self.rng) {
            self.order += 1;
            let at = self.now + d + slow;
            self.queue.push(Reverse(InFlight {
                at,
                order: self.order,
                from,
                to,
                payload: payload.clone(),
            }));
        }
    }

    /// Drains one node's transmits into the network and its events into the checks.
    fn flush(&mut self, id: NodeId) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
            while let Some(t) = e.poll_transmit() {
                out.push(t);
            }
            while let Some(ev) = e.poll_event() {
                events.push(ev);
            }
        }
        for t in out {
            match t.dest {
                Destination::Node(to) => self.enqueue(id, to, t.payload),
                Destination::Multicast => {
                    for to in self.ids.clone() {
                        if to != id {
                            self.enqueue(id, to, t.payload.clone());
                        }
                    }
                }
            }
        }
        for ev in events {
            self.record(id, ev);
        }
    }

    fn record(&mut self, id: NodeId, ev: Event) {
        let t = self.now.as_secs_f64() * 1e3;
        match ev {
            Event::Left => self.trace.push(format!("{t:>10.3} {} left", id.0)),
            Event::Configuration(c) => {
                let members: Vec<u32> = c.members.iter().map(|n| n.0).collect();
                self.trace.push(format!(
                    "{t:>10.3} {} {:?} {} members {:?} joined {:?} left {:?}",
                    id.0, c.kind, c.ring_id, members, c.joined, c.left
                ));
                match c.kind {
                    ConfigurationKind::Transitional => {
                        self.last_transitional.insert(id, (c.ring_id, c.members));
                    }
                    ConfigurationKind::Regular => {
                        self.violation_if(
                            !c.members.contains(&id),
                            format!(
                                "{id} delivered ring {} without itself: {:?}",
                                c.ring_id, c.members
                            ),
                        );
                        self.violation_if(
                            c.members.first() != Some(&c.ring_id.rep),
                            format!(
                                "ring {} has representative other than its lowest member {:?}",
                                c.ring_id, c.members
                            ),
                        );
                        if let Some(prev) = self.rings.get(&c.ring_id) {
                            self.violation_if(
                                *prev != c.members,
                                format!(
                                    "ring {} members disagree: {:?} vs {:?} (at {id})",
                                    c.ring_id, prev, c.members
                                ),
                            );
                        } else {
                            self.rings.insert(c.ring_id, c.members.clone());
                        }
                        if let Some(prev) = self.last_regular.get(&id) {
                            self.violation_if(
                                c.ring_id.seq <= prev.seq,
                                format!("{id} ring ids not increasing: {prev} then {}", c.ring_id),
                            );
                        }
                        if let Some((tr, tm)) = self.last_transitional.get(&id) {
                            self.violation_if(
                                *tr != c.ring_id || !tm.iter().all(|m| c.members.contains(m)),
                                format!(
                                    "{id} transitional {tr} {tm:?} not a subset of regular {} {:?}",
                                    c.ring_id, c.members
                                ),
                            );
                        }
                        self.last_regular.insert(id, c.ring_id);
                        self.regular
                            .entry(id)
                            .or_default()
                            .push((self.now, c.ring_id, c.members));
                    }
                }
            }
        }
    }

    fn violation_if(&mut self, bad: bool, what: String) {
        if bad {
            panic!(
                "INVARIANT VIOLATED at {:.3} ms: {what}",
                self.now.as_secs_f64() * 1e3
            );
        }
    }

    /// Checks the per-node state invariants (events are checked as they happen).
    pub fn check_invariants(&mut self) {
        for (id, n) in &self.nodes {
            if let Some(e) = &n.engine {
                let s = e.status();
                assert!(
                    !s.failed_set.contains(id),
                    "INVARIANT VIOLATED at {:.3} ms: {id} is in its own failed set {:?}",
                    self.now.as_secs_f64() * 1e3,
                    s.failed_set
                );
            }
        }
    }

    /// The next moment something happens (a delivery or a timer).
    fn next_event_time(&self) -> Option<Duration> {
        let q = self.queue.peek().map(|Reverse(f)| f.at);
        let t = self
            .nodes
            .values()
            .filter_map(|n| n.engine.as_ref().and_then(|e| e.poll_timeout()))
            .min()
            .map(|i| i.saturating_duration_since(self.base));
        match (q, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs one step (one delivery, or the timers of one instant). Returns false
    /// when nothing is left to do before `until`.
    pub fn step(&mut self, until: Duration) -> bool {
        let Some(next) = self.next_event_time() else {
            self.now = until;
            return false;
        };
        if next > until {
            self.now = until;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.instant();
        let deliver = self.queue.peek().is_some_and(|Reverse(f)| f.at <= self.now);
        if deliver {
            let Reverse(f) = self.queue.pop().expect("peeked");
            if let Some(e) = self.nodes.get_mut(&f.to).and_then(|n| n.engine.as_mut()) {
                if self.trace_datagrams {
                    self.trace.push(format!(
                        "{:>10.3} {} <- {} {} bytes",
                        self.now.as_secs_f64() * 1e3,
                        f.to.0,
                        f.from.0,
                        f.payload.len()
                    ));
                }
                e.handle_datagram(now, f.from, &f.payload);
                self.flush(f.to);
            }
        } else {
            for id in self.ids.clone() {
                let due = self
                    .nodes
                    .get(&id)
                    .and_then(|n| n.engine.as_ref())
                    .and_then(|e| e.poll_timeout())
                    .is_some_and(|t| t <= now);
                if due {
                    if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
                        e.handle_timeout(now);
                    }
                    self.flush(id);
                }
            }
        }
        self.check_invariants();
        true
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Whether all live nodes are OPERATIONAL in one ring made of exactly them.
    pub fn converged(&self) -> Option<RingId> {
        let live = self.live();
        let mut ring = None;
        for id in &live {
            let e = self.engine(*id)?;
            let s = e.status();
            if s.state != MembState::Operational || s.members != live {
                return None;
            }
            match ring {
                None => ring = Some(s.ring_id),
                Some(r) if r != s.ring_id => return None,
                _ => {}
            }
        }
        ring
    }

    /// Runs until converged or `limit` elapses; returns the time it took.
    pub fn run_until_converged(&mut self, limit: Duration) -> Option<Duration> {
        let start = self.now;
        let until = self.now + limit;
        loop {
            if self.converged().is_some() {
                return Some(self.now - start);
            }
            if !self.step(until) {
                return self.converged().map(|_| self.now - start);
            }
        }
    }

    /// A hash of the trace (for the determinism test).
    pub fn trace_digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for line in &self.trace {
            for b in line.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }

    /// The effective token timeout of this cluster.
    pub fn token(&self) -> Duration {
        self.config.effective(self.ids.len()).expect("valid").token
    }

    /// The RNG (for scenario generators).
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

/// The outcome of one random scenario.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: u32,
    /// Time from the end of faults to convergence.
    pub converge: Duration,
    /// The effective token.
    pub token: Duration,
    /// The trace digest.
    pub digest: u64,
    /// Steps run.
    pub trace_len: usize,
}

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("HALYARD_SIM_SEED={seed} cargo test -p halyard-membership --lib sim::tests::replay -- --nocapture")
}

/// A random configuration for a seed: token 200–1000 ms, with or without the
/// coefficient, fast failover mostly on.
pub fn random_config(rng: &mut SmallRng) -> TotemConfig {
    let token = [200u64, 300, 500, 1000][rng.gen_range(0..4)];
    TotemConfig {
        token: Duration::from_millis(token),
        token_coefficient: if rng.gen_bool(0.5) {
            Duration::ZERO
        } else {
            Duration::from_millis(token / 4)
        },
        join: Duration::from_millis([20u64, 30, 50][rng.gen_range(0..3)]),
        merge: Duration::from_millis(100),
        fast_failover: rng.gen_bool(0.8),
        ..TotemConfig::default()
    }
}

/// Runs one random scenario: a fault phase (partitions, heals, crashes,
/// restarts, leaves, loss, duplication, delay, slow nodes), then a quiet phase
/// that must converge within [`CONVERGE_BOUND_TOKENS`] tokens. Panics on any
/// violation, with the command that replays the seed.
pub fn run_seed(seed: u64) -> SeedReport {
    let r = std::panic::catch_unwind(|| {
        let (mut sim, mut setup) = build(seed, false);
        faults(&mut sim, &mut setup);
        finish(seed, &mut sim)
    });
    match r {
        Ok(rep) => rep,
        Err(e) => {
            eprintln!(
                "simulation seed {seed} failed; replay with:\n  {}",
                replay_command(seed)
            );
            std::panic::resume_unwind(e)
        }
    }
}

fn build(seed: u64, trace_datagrams: bool) -> (Sim, SmallRng) {
    let mut setup = SmallRng::seed_from_u64(seed ^ 0x5eed_5eed_5eed_5eed);
    let n = setup.gen_range(2..=5u32);
    let config = random_config(&mut setup);
    let mut sim = Sim::new(seed, n, config);
    sim.trace_datagrams = trace_datagrams;
    (sim, setup)
}

fn faults(sim: &mut Sim, setup: &mut SmallRng) {
    let token = sim.token();
    // Start-up: form the first ring with a perfect network.
    sim.run_for(token * 2);
    // Fault phase.
    let fault_end = sim.now() + token * setup.gen_range(4..12u32);
    while sim.now() < fault_end {
        let gap =
            Duration::from_millis(setup.gen_range(10..(token.as_millis() as u64 * 2).max(20)));
        let until = (sim.now() + gap).min(fault_end);
        sim.run_until(until);
        let ids = sim.ids();
        match setup.gen_range(0..11) {
            0 | 1 => {
                let groups: BTreeMap<NodeId, u32> =
                    ids.iter().map(|i| (*i, setup.gen_range(0..3))).collect();
                sim.partition(&groups);
            }
            2 => sim.heal(),
            3 => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.crash(id);
            }
            4 => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.start(id);
            }
            5 => {
                sim.link.loss = [0.0, 0.01, 0.05, 0.2][setup.gen_range(0..4)];
            }
            6 => {
                sim.link.duplicate = [0.0, 0.05, 0.2][setup.gen_range(0..3)];
            }
            7 => {
                let max = [1u64, 5, 20][setup.gen_range(0..3)];
                sim.link.delay_max = Duration::from_millis(max);
            }
            8 => {
                let id = ids[setup.gen_range(0..ids.len())];
                let slow = Duration::from_millis([0u64, 5, 15][setup.gen_range(0..3)]);
                sim.set_slow(id, slow);
            }
            9 => {
                // One directed link turns lossy or fails outright (asymmetric faults).
                let a = ids[setup.gen_range(0..ids.len())];
                let b = ids[setup.gen_range(0..ids.len())];
                let loss = [0.3, 0.7, 1.0][setup.gen_range(0..3)];
                let profile = LinkProfile { loss, ..sim.link };
                sim.links.insert((a, b), profile);
            }
            _ => {
                if setup.gen_bool(0.3) {
                    let id = ids[setup.gen_range(0..ids.len())];
                    sim.leave(id);
                }
            }
        }
    }
    // Faults stop: heal, perfect links, restart every stopped node.
    sim.heal();
    sim.link = LinkProfile::default();
    sim.links.clear();
    for id in sim.ids() {
        sim.set_slow(id, Duration::ZERO);
        sim.start(id);
    }
    sim.trace.push(format!(
        "{:>10.3} faults stop",
        sim.now().as_secs_f64() * 1e3
    ));
}

fn finish(seed: u64, sim: &mut Sim) -> SeedReport {
    let token = sim.token();
    let bound = token * CONVERGE_BOUND_TOKENS;
    let fault_end = sim.now();
    // Run the whole bound: rings disturbed by the faults may still re-form, but
    // at the bound every live node must be in one ring of exactly the live nodes.
    sim.run_until(fault_end + bound);
    let Some(ring) = sim.converged() else {
        let mut s = String::new();
        for id in sim.live() {
            let _ = write!(s, "\n  {:?}", sim.engine(id).map(|e| e.status()));
        }
        panic!(
            "LIVENESS VIOLATED (seed {seed}): no common ring {bound:?} ({CONVERGE_BOUND_TOKENS} tokens) after faults stopped:{s}\nreplay: {}",
            replay_command(seed)
        );
    };
    let last_change = sim
        .live()
        .iter()
        .filter_map(|id| sim.regular.get(id).and_then(|v| v.last()).map(|x| x.0))
        .max()
        .unwrap_or(fault_end);
    let converge = last_change.saturating_sub(fault_end);
    // And it stays converged while idle (no spurious changes).
    sim.run_for(token * 3);
    assert_eq!(
        sim.converged(),
        Some(ring),
        "STABILITY VIOLATED (seed {seed}): the ring changed while idle\nreplay: {}",
        replay_command(seed)
    );
    SeedReport {
        seed,
        nodes: sim.ids().len() as u32,
        converge,
        token,
        digest: sim.trace_digest(),
        trace_len: sim.trace.len(),
    }
}

/// Replays one seed with datagram-level tracing, printing the trace.
pub fn replay(seed: u64) -> SeedReport {
    let (mut sim, mut setup) = build(seed, true);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        faults(&mut sim, &mut setup);
        finish(seed, &mut sim)
    }));
    for l in &sim.trace {
        println!("{l}");
    }
    match r {
        Ok(rep) => rep,
        Err(e) => std::panic::resume_unwind(e),
    }
}

#[cfg(test)]
mod tests;
