//! A deterministic simulator for ordering over the ring, with a workload and
//! the invariants of issue 3 checked after every run.
//!
//! It reuses the membership simulator's pieces ([`LinkProfile`],
//! [`random_config`]) and runs `Totem<Ordering>` nodes over the same kind of
//! virtual network: one thread, a virtual clock, a seeded RNG, per-link loss,
//! duplication, delay (hence reordering), partitions, crashes, restarts and
//! graceful leaves. A workload sends messages of random sizes (many packed, some
//! fragmented), agreed or safe, from random live nodes.
//!
//! Invariants (a *segment* is what a node delivers between two configuration
//! events; each segment belongs to one configuration: a regular one, named by
//! its ring id, or a transitional one, named by new and old ring id):
//!
//! 1. **total order**: for every configuration, the sequences of messages any two
//!    nodes delivered in it are one a prefix of the other;
//! 2. **integrity**: no message is delivered twice by one node, none is invented
//!    or corrupted, and each sender's messages are delivered in the order sent;
//! 3. **self-delivery**: a node that does not fail delivers every message it sent;
//! 4. **virtual synchrony**: nodes that deliver the same two configurations
//!    one after the other delivered the same set of messages in the first;
//! 5. **safe delivery**: when a node delivers a Safe message in a configuration,
//!    every member of that configuration has received it (checked at that moment).
//!
//! Checks 1, 2 and 4 run over the whole logs at the end of a run (and on
//! demand); 5 runs at every delivery; 3 after the quiet phase has drained.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use halyard_membership::configuration::ConfigurationKind;
use halyard_membership::sim::{random_config, LinkProfile};
use halyard_membership::{
    Destination, MembState, MemoryRingIdStore, NodeId, RingId, Totem, TotemConfig,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{Delivery, Error, Event, GroupEvent, Groups, Member, Ordering, OrderingConfig};

/// The group name of the workload's plain (non-group) messages.
pub const PLAIN: &[u8] = b"p";

/// A message's identity in the simulator: (sender, incarnation, index).
pub type MsgId = (u32, u32, u64);

/// A node incarnation: (node, how many times it was started).
pub type Who = (NodeId, u32);

/// Every group's members at one node.
type GroupViews = Vec<(Bytes, Vec<Member>)>;

/// An incarnation and the set of messages it delivered in one configuration.
type WhoSet = (Who, BTreeSet<MsgId>);

/// What one node incarnation delivered, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A configuration event.
    Config(ConfigKey),
    /// A message.
    Msg {
        /// Its identity.
        id: MsgId,
        /// Its guarantee.
        delivery: Delivery,
    },
}

/// A configuration's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKey {
    /// A regular configuration (its ring).
    Regular(RingId),
    /// A transitional configuration (new ring, old ring).
    Transitional(RingId, RingId),
}

struct SimNode {
    engine: Option<Totem<Ordering>>,
    groups: Groups,
    store: MemoryRingIdStore,
    incarnation: u32,
    slow: Duration,
    /// Members of each configuration this incarnation delivered.
    current: Option<(ConfigKey, Vec<NodeId>)>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    order: u64,
    from: NodeId,
    to: NodeId,
    payload: Bytes,
}

/// A simulated cluster running ordering.
pub struct OrderingSim {
    base: Instant,
    now: Duration,
    rng: SmallRng,
    config: TotemConfig,
    ocfg: OrderingConfig,
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, SimNode>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    /// Link behaviour.
    pub link: LinkProfile,
    group: BTreeMap<NodeId, u32>,
    /// Delivery log per (node, incarnation).
    pub logs: BTreeMap<(NodeId, u32), Vec<Entry>>,
    /// Messages each incarnation had accepted by `send`, in order.
    pub sent: BTreeMap<(NodeId, u32), Vec<MsgId>>,
    /// Payload length of every message sent.
    lens: BTreeMap<MsgId, usize>,
    next_index: u64,
    received: BTreeMap<NodeId, BTreeSet<(RingId, u64)>>,
    /// Sends refused with `WouldBlock`.
    pub would_block: u64,
    /// Messages delivered (all nodes).
    pub delivered: u64,
    /// The trace, one line per notable event.
    pub trace: Vec<String>,
    /// Each local member's view of its group, as its Membership events say.
    group_views: BTreeMap<(Who, Bytes, u32), BTreeSet<Member>>,
    /// The view the first receiver had when a group message was delivered.
    msg_views: BTreeMap<(MsgId, ConfigKey), BTreeSet<Member>>,
    /// Who received each group message, per configuration.
    msg_receivers: BTreeMap<(MsgId, ConfigKey), BTreeSet<Member>>,
    /// Group messages delivered to local members (all nodes).
    pub group_delivered: u64,
    /// Group membership events delivered.
    pub group_changes: u64,
}

fn violation(now: Duration, what: String) -> ! {
    panic!(
        "INVARIANT VIOLATED at {:.3} ms: {what}",
        now.as_secs_f64() * 1e3
    )
}

impl OrderingSim {
    /// A cluster of `n` nodes (ids 1..=n), all started at virtual time 0.
    pub fn new(seed: u64, n: u32, config: TotemConfig, ocfg: OrderingConfig) -> Self {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut sim = OrderingSim {
            base: Instant::now(),
            now: Duration::ZERO,
            rng: SmallRng::seed_from_u64(seed),
            config,
            ocfg,
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            link: LinkProfile::default(),
            group: ids.iter().map(|i| (*i, 0)).collect(),
            logs: BTreeMap::new(),
            sent: BTreeMap::new(),
            lens: BTreeMap::new(),
            next_index: 0,
            received: BTreeMap::new(),
            would_block: 0,
            delivered: 0,
            trace: Vec::new(),
            group_views: BTreeMap::new(),
            msg_views: BTreeMap::new(),
            msg_receivers: BTreeMap::new(),
            group_delivered: 0,
            group_changes: 0,
        };
        for id in &ids {
            sim.nodes.insert(
                *id,
                SimNode {
                    engine: None,
                    groups: Groups::new(*id),
                    store: MemoryRingIdStore::new(),
                    incarnation: 0,
                    slow: Duration::ZERO,
                    current: None,
                },
            );
        }
        for id in ids {
            sim.start(id);
        }
        sim
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    fn t(&self) -> f64 {
        self.now.as_secs_f64() * 1e3
    }

    /// Virtual time elapsed.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    /// Live node ids.
    pub fn live(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.engine.is_some())
            .map(|(i, _)| *i)
            .collect()
    }

    /// The engine of a live node.
    pub fn engine(&self, id: NodeId) -> Option<&Totem<Ordering>> {
        self.nodes.get(&id).and_then(|n| n.engine.as_ref())
    }

    /// The effective token timeout.
    pub fn token(&self) -> Duration {
        self.config.effective(self.ids.len()).expect("valid").token
    }

    /// (Re)starts a node as a new incarnation.
    pub fn start(&mut self, id: NodeId) {
        let now = self.instant();
        let ids = self.ids.clone();
        let node = self.nodes.get_mut(&id).expect("known node");
        if node.engine.is_some() {
            return;
        }
        let mut ord = Ordering::new(id, self.ocfg.clone()).expect("valid ordering configuration");
        ord.record_receipts();
        let engine = Totem::with_hook(
            id,
            ids,
            &self.config,
            Box::new(node.store.clone()),
            ord,
            now,
        )
        .expect("valid simulator configuration");
        node.engine = Some(engine);
        node.groups = Groups::new(id);
        node.incarnation += 1;
        node.current = None;
        let inc = node.incarnation;
        self.logs.insert((id, inc), Vec::new());
        self.sent.insert((id, inc), Vec::new());
        self.trace
            .push(format!("{:>10.3} {} start #{inc}", self.t(), id.0));
        self.flush(id);
    }

    /// Crashes a node.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.engine.take().is_some() {
                self.trace
                    .push(format!("{:>10.3} {} crash", self.t(), id.0));
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
            self.trace
                .push(format!("{:>10.3} {} leave", self.t(), id.0));
        }
    }

    /// Sets partition groups.
    pub fn partition(&mut self, groups: &BTreeMap<NodeId, u32>) {
        for (k, v) in groups {
            self.group.insert(*k, *v);
        }
        self.trace
            .push(format!("{:>10.3} partition {:?}", self.t(), self.group));
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        for v in self.group.values_mut() {
            *v = 0;
        }
        self.trace.push(format!("{:>10.3} heal", self.t()));
    }

    /// Extra one-way delay on all datagrams of a node.
    pub fn set_slow(&mut self, id: NodeId, extra: Duration) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.slow = extra;
        }
    }

    /// Sends a message of `len` bytes from `id` (if live). Returns whether it was
    /// accepted; a full queue counts in [`would_block`](Self::would_block).
    pub fn send(&mut self, id: NodeId, len: usize, delivery: Delivery) -> bool {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let inc = node.incarnation;
        let Some(e) = node.engine.as_mut() else {
            return false;
        };
        self.next_index += 1;
        let mid: MsgId = (id.0, inc, self.next_index);
        let payload = encode_payload(mid, len);
        match e.hook_mut().send(PLAIN, payload, delivery) {
            Ok(()) => {
                e.request_token(now);
                self.sent.get_mut(&(id, inc)).expect("started").push(mid);
                self.lens.insert(mid, len);
                self.flush(id);
                true
            }
            Err(Error::WouldBlock { .. }) => {
                self.would_block += 1;
                false
            }
            Err(e) => panic!("unexpected send error: {e}"),
        }
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, payload: Bytes) {
        if from == to {
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
        let slow = self.nodes[&from].slow + self.nodes[&to].slow;
        for d in self.link.deliveries(&mut self.rng) {
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

    fn flush(&mut self, id: NodeId) {
        let inc = self.nodes[&id].incarnation;
        let now = self.instant();
        let mut events = Vec::new();
        let mut pending_before = false;
        if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
            while e.poll_event().is_some() {}
            pending_before = e.hook().has_pending();
            while let Some(ev) = e.hook_mut().poll_event() {
                events.push(ev);
            }
        }
        // In lockstep: the ordering event, then what the group layer makes of it.
        for ev in events {
            self.record(id, inc, ev.clone());
            let mut addressed = Vec::new();
            if let Some(n) = self.nodes.get_mut(&id) {
                if let Some(e) = n.engine.as_mut() {
                    n.groups.handle(e.hook_mut(), &ev);
                    while let Some(a) = n.groups.poll_event() {
                        addressed.push(a);
                    }
                }
            }
            for a in addressed {
                self.record_group(id, inc, a);
            }
        }
        let mut out = Vec::new();
        let mut receipts = Vec::new();
        if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
            receipts = e.hook_mut().take_receipts();
            if !pending_before && e.hook().has_pending() {
                // The group layer queued its SYNC: ask for a held token.
                e.request_token(now);
            }
            while let Some(t) = e.poll_transmit() {
                out.push(t);
            }
        }
        self.received.entry(id).or_default().extend(receipts);
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
    }

    /// Invariant 6, as events arrive: each Membership event is the previous view
    /// plus `joined` minus `left`; a group message comes from a member, reaches
    /// only members, and every receiver has the same view when it arrives.
    fn record_group(&mut self, id: NodeId, inc: u32, a: crate::Addressed) {
        let now = self.now;
        let me = Member {
            node: id,
            pid: a.pid,
        };
        let key = ((id, inc), a.group.clone(), a.pid);
        match a.event {
            GroupEvent::Membership {
                members,
                joined,
                left,
            } => {
                self.group_changes += 1;
                let listed: BTreeSet<Member> = members.iter().copied().collect();
                let Some(mut view) = self.group_views.get(&key).cloned() else {
                    // Its first event: its own join, listing everyone.
                    if !joined.iter().any(|(m, _)| *m == me) || !listed.contains(&me) {
                        violation(
                            now,
                            format!(
                                "{me:?} got a membership event of {:?} before its own join",
                                a.group
                            ),
                        );
                    }
                    self.group_views.insert(key, listed);
                    return;
                };
                for (m, _) in &joined {
                    if !view.insert(*m) {
                        violation(now, format!("{me:?}: {m:?} joined {:?} twice", a.group));
                    }
                }
                for (m, _) in &left {
                    if !view.remove(m) {
                        violation(
                            now,
                            format!("{me:?}: {m:?} left {:?} without being a member", a.group),
                        );
                    }
                }
                if listed != view {
                    violation(
                        now,
                        format!("{me:?}: members {listed:?} of {:?} disagree with the joins and leaves {view:?}", a.group),
                    );
                }
                if left.iter().any(|(m, _)| *m == me) {
                    self.group_views.remove(&key);
                } else {
                    self.group_views.insert(key, view);
                }
            }
            GroupEvent::Overflow { .. } => {
                violation(now, format!("{me:?} got an Overflow event from Groups"))
            }
            GroupEvent::Message { from, payload, .. } => {
                self.group_delivered += 1;
                let Some(mid) = decode_payload(&payload) else {
                    violation(now, format!("{me:?} got a corrupt group message"))
                };
                let view = self.group_views.get(&key).cloned().unwrap_or_default();
                if !view.contains(&me) || !view.contains(&from) {
                    violation(
                        now,
                        format!(
                            "{me:?} got {mid:?} from {from:?} in {:?} outside the view {view:?}",
                            a.group
                        ),
                    );
                }
                // Receivers in the same configuration must agree on the view.
                let Some((cfg, _)) = self.nodes[&id].current.clone() else {
                    violation(
                        now,
                        format!("{me:?} got a group message before any configuration"),
                    )
                };
                let k = (mid, cfg);
                if !self.msg_receivers.entry(k).or_default().insert(me) {
                    violation(now, format!("{me:?} got {mid:?} twice"));
                }
                match self.msg_views.get(&k) {
                    Some(v) if *v != view => violation(
                        now,
                        format!("{me:?} got {mid:?} in {:?} with view {view:?}, another member with {v:?}", a.group),
                    ),
                    Some(_) => {}
                    None => {
                        self.msg_views.insert(k, view);
                    }
                }
            }
        }
    }

    /// Group operation for the workload: local `pid` of `id` joins `group` if it
    /// is not a member, else sends to it (or, one time in four, leaves).
    pub fn group_op(&mut self, id: NodeId, group: &[u8], pid: u32, len: usize) {
        let now = self.instant();
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let inc = node.incarnation;
        let Some(e) = node.engine.as_mut() else {
            return;
        };
        let member = node.groups.is_member(group, pid);
        // One time in four a member leaves; one leave in two is a ProcDown
        // (what the tokio API sends for a handle that overflowed).
        let roll = self.rng.gen_range(0..8u32);
        let leave = member && roll < 2;
        let r = if !member {
            node.groups.join(e.hook_mut(), group, pid)
        } else if leave && roll == 0 {
            node.groups.proc_down(e.hook_mut(), group, pid)
        } else if leave {
            node.groups.leave(e.hook_mut(), group, pid)
        } else {
            self.next_index += 1;
            let mid: MsgId = (id.0, inc, self.next_index);
            let payload = encode_payload(mid, len);
            let r = node
                .groups
                .send(e.hook_mut(), group, pid, &payload, Delivery::Agreed);
            if r.is_ok() {
                self.sent.get_mut(&(id, inc)).expect("started").push(mid);
                self.lens.insert(mid, payload.len() + 4);
            }
            r
        };
        match r {
            Ok(()) => {
                e.request_token(now);
                self.flush(id);
            }
            Err(Error::WouldBlock { .. }) => self.would_block += 1,
            Err(e) => panic!("unexpected group error: {e}"),
        }
    }

    /// Checks that every live node ended with the same views of every group,
    /// and that every group message of the final configuration reached every
    /// member of its view (all of them are live and drained by then).
    pub fn check_group_views(&self) {
        if let Some(ring) = self.converged() {
            let fin = ConfigKey::Regular(ring);
            for ((mid, cfg), view) in &self.msg_views {
                if *cfg != fin {
                    continue;
                }
                let got = &self.msg_receivers[&(*mid, *cfg)];
                if got != view {
                    violation(
                        self.now,
                        format!(
                            "group message {mid:?} reached {got:?}, not its whole view {view:?}"
                        ),
                    );
                }
            }
        }
        let mut first: Option<(NodeId, GroupViews)> = None;
        for id in self.live() {
            let g = &self.nodes[&id].groups;
            if g.is_syncing() {
                violation(
                    self.now,
                    format!("{id} is still synchronising groups at the end"),
                );
            }
            let views: GroupViews = g
                .groups()
                .into_iter()
                .map(|n| (n.clone(), g.members(&n)))
                .collect();
            match &first {
                None => first = Some((id, views)),
                Some((f, v)) if *v != views => violation(
                    self.now,
                    format!("group views differ at the end: {f}: {v:?} vs {id}: {views:?}"),
                ),
                Some(_) => {}
            }
        }
    }

    /// Drains every node's receipts (so a delivery is checked against all receipts so far).
    fn drain_receipts(&mut self) {
        for id in self.ids.clone() {
            if let Some(e) = self.nodes.get_mut(&id).and_then(|n| n.engine.as_mut()) {
                let r = e.hook_mut().take_receipts();
                self.received.entry(id).or_default().extend(r);
            }
        }
    }

    fn record(&mut self, id: NodeId, inc: u32, ev: Event) {
        let now = self.now;
        match ev {
            Event::Configuration(c) => {
                let key = match c.kind {
                    ConfigurationKind::Regular => ConfigKey::Regular(c.ring_id),
                    ConfigurationKind::Transitional => {
                        ConfigKey::Transitional(c.ring_id, c.old_ring_id)
                    }
                };
                self.trace.push(format!(
                    "{:>10.3} {} {:?} members {:?}",
                    self.t(),
                    id.0,
                    key,
                    c.members
                ));
                self.nodes.get_mut(&id).expect("known").current = Some((key, c.members.clone()));
                self.logs
                    .get_mut(&(id, inc))
                    .expect("started")
                    .push(Entry::Config(key));
            }
            Event::Message(m) => {
                if m.group.is_empty() {
                    // A group control message (JOIN, LEAVE, SYNC).
                    return;
                }
                // Plain messages travel in group "p"; group messages start with the pid.
                let body = if &m.group[..] == PLAIN {
                    m.payload.clone()
                } else {
                    m.payload.slice(4.min(m.payload.len())..)
                };
                self.delivered += 1;
                let Some(mid) = decode_payload(&body) else {
                    violation(
                        now,
                        format!("{id} delivered a message that was never sent (bad payload)"),
                    )
                };
                if NodeId(mid.0) != m.sender {
                    violation(
                        now,
                        format!("{id} delivered {mid:?} attributed to {}", m.sender),
                    );
                }
                if self.lens.get(&mid) != Some(&m.payload.len()) {
                    violation(
                        now,
                        format!(
                            "{id} delivered {mid:?} which was not sent or has the wrong length"
                        ),
                    );
                }
                let Some((key, members)) = self.nodes[&id].current.clone() else {
                    violation(
                        now,
                        format!("{id} delivered {mid:?} before any configuration"),
                    )
                };
                let expect = match m.configuration {
                    ConfigurationKind::Regular => ConfigKey::Regular(m.ring_id),
                    ConfigurationKind::Transitional => match key {
                        ConfigKey::Transitional(_, old) => ConfigKey::Transitional(
                            match key {
                                ConfigKey::Transitional(n, _) => n,
                                ConfigKey::Regular(r) => r,
                            },
                            old,
                        ),
                        ConfigKey::Regular(_) => {
                            violation(now, format!("{id}: transitional message in {key:?}"))
                        }
                    },
                };
                if expect != key {
                    violation(
                        now,
                        format!(
                            "{id} delivered {mid:?} of ring {} ({:?}) in {key:?}",
                            m.ring_id, m.configuration
                        ),
                    );
                }
                if m.delivery == Delivery::Safe {
                    self.drain_receipts();
                    for mem in &members {
                        let has = self
                            .received
                            .get(mem)
                            .is_some_and(|r| r.contains(&(m.ring_id, m.seq)));
                        if !has {
                            violation(
                                now,
                                format!(
                                    "{id} delivered safe {mid:?} (ring {} seq {}) in {key:?} but member {mem} never received it",
                                    m.ring_id, m.seq
                                ),
                            );
                        }
                    }
                }
                self.logs
                    .get_mut(&(id, inc))
                    .expect("started")
                    .push(Entry::Msg {
                        id: mid,
                        delivery: m.delivery,
                    });
            }
        }
    }

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

    /// One step; false when nothing is left before `until`.
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
        if self.queue.peek().is_some_and(|Reverse(f)| f.at <= self.now) {
            let Reverse(f) = self.queue.pop().expect("peeked");
            if let Some(e) = self.nodes.get_mut(&f.to).and_then(|n| n.engine.as_mut()) {
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
        self.check_bounded();
        true
    }

    /// Bounded memory: frames held for retransmission and delivery stay within
    /// the retransmit queue (old and new ring together), and the send queue
    /// within its limit (plus the group layer's few small SYNCs).
    fn check_bounded(&self) {
        let frames =
            2 * (self.ocfg.retransmit_frames() + u64::from(self.ocfg.window_size)) as usize;
        for (id, n) in &self.nodes {
            if let Some(e) = &n.engine {
                let h = e.hook();
                if h.held_frames() > frames
                    || h.queued_bytes() > self.ocfg.send_queue_bytes + 64 * 1024
                {
                    violation(
                        self.now,
                        format!(
                            "{id} holds {} frames and {} queued bytes: unbounded",
                            h.held_frames(),
                            h.queued_bytes()
                        ),
                    );
                }
            }
        }
    }

    /// Runs until `until`.
    pub fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
    }

    /// Runs for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Whether all live nodes are OPERATIONAL in one ring of exactly them.
    pub fn converged(&self) -> Option<RingId> {
        let live = self.live();
        let mut ring = None;
        for id in &live {
            let s = self.engine(*id)?.status();
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

    /// Whether every live node has sent everything it queued.
    pub fn drained(&self) -> bool {
        self.live()
            .iter()
            .all(|id| self.engine(*id).is_some_and(|e| !e.hook().has_pending()))
    }

    /// The RNG.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Checks invariants 1, 2 and 4 over the logs so far.
    pub fn check_logs(&self) {
        let now = self.now;
        // Segments: per incarnation, (config, following config, messages).
        let mut by_config: BTreeMap<ConfigKey, Vec<(Who, Vec<MsgId>)>> = BTreeMap::new();
        let mut by_pair: BTreeMap<(ConfigKey, ConfigKey), Vec<WhoSet>> = BTreeMap::new();
        let sent_set: BTreeMap<MsgId, ()> =
            self.sent.values().flatten().map(|m| (*m, ())).collect();
        for (who, log) in &self.logs {
            let mut seen = BTreeSet::new();
            let mut last_index: BTreeMap<(u32, u32), u64> = BTreeMap::new();
            let mut cur: Option<ConfigKey> = None;
            let mut msgs: Vec<MsgId> = Vec::new();
            for e in log {
                match e {
                    Entry::Config(k) => {
                        if let Some(c) = cur {
                            by_config
                                .entry(c)
                                .or_default()
                                .push((*who, std::mem::take(&mut msgs)));
                            let set = by_config[&c]
                                .last()
                                .expect("pushed")
                                .1
                                .iter()
                                .copied()
                                .collect();
                            by_pair.entry((c, *k)).or_default().push((*who, set));
                        }
                        cur = Some(*k);
                    }
                    Entry::Msg { id, .. } => {
                        if !seen.insert(*id) {
                            violation(now, format!("{who:?} delivered {id:?} twice"));
                        }
                        if !sent_set.contains_key(id) {
                            violation(now, format!("{who:?} delivered {id:?} which nobody sent"));
                        }
                        let k = (id.0, id.1);
                        if let Some(prev) = last_index.get(&k) {
                            if *prev >= id.2 {
                                violation(
                                    now,
                                    format!(
                                        "{who:?} broke FIFO of sender {k:?}: {prev} then {}",
                                        id.2
                                    ),
                                );
                            }
                        }
                        last_index.insert(k, id.2);
                        msgs.push(*id);
                    }
                }
            }
            if let Some(c) = cur {
                by_config.entry(c).or_default().push((*who, msgs));
            }
        }
        // Safe: a message delivered Safe in a regular configuration is delivered
        // by every member that goes on to the next configuration, in that
        // configuration or in the transitional one right after it.
        let mut safe_in: BTreeMap<RingId, BTreeSet<MsgId>> = BTreeMap::new();
        for log in self.logs.values() {
            let mut cur = None;
            for e in log {
                match e {
                    Entry::Config(ConfigKey::Regular(r)) => cur = Some(*r),
                    Entry::Config(_) => cur = None,
                    Entry::Msg {
                        id,
                        delivery: Delivery::Safe,
                    } => {
                        if let Some(r) = cur {
                            safe_in.entry(r).or_default().insert(*id);
                        }
                    }
                    Entry::Msg { .. } => {}
                }
            }
        }
        for (who, log) in &self.logs {
            let mut i = 0;
            while i < log.len() {
                if let Entry::Config(ConfigKey::Regular(r)) = log[i] {
                    let mut got = BTreeSet::new();
                    let mut j = i + 1;
                    let mut moved_on = false;
                    let mut in_trans = false;
                    while j < log.len() {
                        match log[j] {
                            Entry::Msg { id, .. } => {
                                got.insert(id);
                            }
                            Entry::Config(ConfigKey::Transitional(_, old))
                                if old == r && !in_trans =>
                            {
                                in_trans = true
                            }
                            Entry::Config(_) => {
                                moved_on = true;
                                break;
                            }
                        }
                        j += 1;
                    }
                    if moved_on {
                        if let Some(safe) = safe_in.get(&r) {
                            if let Some(m) = safe.difference(&got).next() {
                                violation(now, format!("{who:?} moved on from ring {r} without delivering safe {m:?}"));
                            }
                        }
                    }
                }
                i += 1;
            }
        }
        for (c, segs) in &by_config {
            for (a, sa) in segs {
                for (b, sb) in segs {
                    let n = sa.len().min(sb.len());
                    if sa[..n] != sb[..n] {
                        let at = (0..n).find(|i| sa[*i] != sb[*i]).unwrap_or(0);
                        violation(
                            now,
                            format!(
                                "total order in {c:?}: {a:?} and {b:?} differ at position {at}: {:?} vs {:?}",
                                sa[at], sb[at]
                            ),
                        );
                    }
                }
            }
        }
        for ((c1, c2), sets) in &by_pair {
            for (a, sa) in sets {
                for (b, sb) in sets {
                    if sa != sb {
                        let only_a: Vec<_> = sa.difference(sb).take(5).collect();
                        let only_b: Vec<_> = sb.difference(sa).take(5).collect();
                        violation(
                            now,
                            format!(
                                "virtual synchrony {c1:?} -> {c2:?}: {a:?} and {b:?} delivered different sets (only {a:?}: {only_a:?}, only {b:?}: {only_b:?})"
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Checks invariant 3: every live incarnation delivered all it sent.
    pub fn check_self_delivery(&self) {
        for id in self.live() {
            let inc = self.nodes[&id].incarnation;
            let delivered: BTreeSet<MsgId> = self.logs[&(id, inc)]
                .iter()
                .filter_map(|e| match e {
                    Entry::Msg { id, .. } => Some(*id),
                    Entry::Config(_) => None,
                })
                .collect();
            let missing: Vec<_> = self.sent[&(id, inc)]
                .iter()
                .filter(|m| !delivered.contains(m))
                .take(5)
                .collect();
            if !missing.is_empty() {
                violation(
                    self.now,
                    format!("{id} did not deliver its own messages {missing:?}"),
                );
            }
        }
    }
}

/// The payload of a simulated message: its identity, then a pattern derived from it.
pub fn encode_payload(id: MsgId, len: usize) -> Bytes {
    let len = len.max(16);
    let mut b = BytesMut::with_capacity(len);
    b.put_u32(id.0);
    b.put_u32(id.1);
    b.put_u64(id.2);
    for i in 16..len {
        b.put_u8((id.2 as usize).wrapping_add(i).wrapping_mul(31) as u8);
    }
    b.freeze()
}

/// Decodes and verifies a simulated payload.
pub fn decode_payload(b: &[u8]) -> Option<MsgId> {
    if b.len() < 16 {
        return None;
    }
    let id = (
        u32::from_be_bytes(b[0..4].try_into().ok()?),
        u32::from_be_bytes(b[4..8].try_into().ok()?),
        u64::from_be_bytes(b[8..16].try_into().ok()?),
    );
    for (i, x) in b.iter().enumerate().skip(16) {
        if *x != (id.2 as usize).wrapping_add(i).wrapping_mul(31) as u8 {
            return None;
        }
    }
    Some(id)
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: u32,
    /// Messages accepted by `send`.
    pub sent: usize,
    /// Messages delivered (all nodes).
    pub delivered: u64,
    /// Sends refused with `WouldBlock`.
    pub would_block: u64,
    /// Group messages delivered to local members.
    pub group_delivered: u64,
    /// Group membership events.
    pub group_changes: u64,
    /// Held tokens the representative released with a fresh visit (live nodes at the end).
    pub held_token_releases: u64,
    /// A digest of the delivery logs and trace (determinism).
    pub digest: u64,
}

/// The command that replays one seed.
pub fn replay_command(seed: u64) -> String {
    format!("HALYARD_SIM_SEED={seed} cargo test -p halyard-ordering --lib sim::tests::replay -- --nocapture")
}

/// The ordering configuration the random runs use: small frames so that
/// packing and fragmentation happen with small messages, and a small send
/// queue so that back-pressure happens too.
pub fn sim_ordering_config() -> OrderingConfig {
    OrderingConfig {
        frame_size: 1024,
        max_message: 64 * 1024,
        send_queue_bytes: 128 * 1024,
        retransmit_queue_bytes: 4 * 1024 * 1024,
        ..OrderingConfig::default()
    }
}

fn random_len(rng: &mut SmallRng) -> usize {
    match rng.gen_range(0..100) {
        0..=69 => rng.gen_range(16..200),
        70..=94 => rng.gen_range(200..3000),
        _ => rng.gen_range(3000..40_000),
    }
}

fn build(seed: u64) -> (OrderingSim, SmallRng) {
    let mut setup = SmallRng::seed_from_u64(seed ^ 0x0bde_5eed_0bde_5eed);
    let n = setup.gen_range(2..=5u32);
    let mut config = random_config(&mut setup);
    let mut ocfg = sim_ordering_config();
    if setup.gen_bool(0.3) {
        ocfg.window_size = setup.gen_range(4..50);
        ocfg.max_messages = setup.gen_range(1..=ocfg.window_size.min(17));
    }
    config.window_size = ocfg.window_size;
    config.max_messages = ocfg.max_messages;
    (OrderingSim::new(seed, n, config, ocfg), setup)
}

/// Sends a burst of messages from random live nodes.
fn workload(sim: &mut OrderingSim, setup: &mut SmallRng) {
    let live = sim.live();
    if live.is_empty() {
        return;
    }
    for _ in 0..setup.gen_range(1..6) {
        let id = live[setup.gen_range(0..live.len())];
        let len = random_len(setup);
        let d = if setup.gen_bool(0.3) {
            Delivery::Safe
        } else {
            Delivery::Agreed
        };
        if setup.gen_bool(0.3) {
            let group: &[u8] = if setup.gen_bool(0.5) { b"a" } else { b"b" };
            let pid = setup.gen_range(1..=2);
            sim.group_op(id, group, pid, len.min(2000));
        } else {
            sim.send(id, len, d);
        }
    }
}

fn faults(sim: &mut OrderingSim, setup: &mut SmallRng) {
    let token = sim.token();
    sim.run_for(token * 2);
    let fault_end = sim.now() + token * setup.gen_range(3..8u32);
    while sim.now() < fault_end {
        // Traffic in small steps, a fault now and then.
        for _ in 0..setup.gen_range(1..6) {
            let gap = Duration::from_millis(setup.gen_range(1..40));
            let until = (sim.now() + gap).min(fault_end);
            sim.run_until(until);
            workload(sim, setup);
        }
        let ids = sim.ids();
        match setup.gen_range(0..14) {
            0 => {
                let groups: BTreeMap<NodeId, u32> =
                    ids.iter().map(|i| (*i, setup.gen_range(0..3))).collect();
                sim.partition(&groups);
            }
            1 => sim.heal(),
            2 => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.crash(id);
            }
            3 => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.start(id);
            }
            4 => sim.link.loss = [0.0, 0.01, 0.05, 0.2][setup.gen_range(0..4)],
            5 => sim.link.duplicate = [0.0, 0.05, 0.2][setup.gen_range(0..3)],
            6 => sim.link.delay_max = Duration::from_millis([1u64, 5, 20][setup.gen_range(0..3)]),
            7 => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.set_slow(
                    id,
                    Duration::from_millis([0u64, 5, 15][setup.gen_range(0..3)]),
                );
            }
            8 if setup.gen_bool(0.3) => {
                let id = ids[setup.gen_range(0..ids.len())];
                sim.leave(id);
            }
            _ => {}
        }
    }
    sim.heal();
    sim.link = LinkProfile::default();
    for id in sim.ids() {
        sim.set_slow(id, Duration::ZERO);
        sim.start(id);
    }
    sim.trace.push(format!("{:>10.3} faults stop", sim.t()));
}

fn finish(seed: u64, sim: &mut OrderingSim, setup: &mut SmallRng) -> SeedReport {
    let token = sim.token();
    // Traffic goes on while the partitions merge (groups synchronise under load).
    let traffic_end = sim.now() + token * 2;
    while sim.now() < traffic_end {
        let until = sim.now() + Duration::from_millis(setup.gen_range(1..10));
        sim.run_until(until);
        workload(sim, setup);
    }
    let limit = sim.now() + token * 12;
    // Converge and drain every send queue.
    loop {
        sim.run_for(token / 2);
        if (sim.converged().is_some() && sim.drained()) || sim.now() >= limit {
            break;
        }
    }
    // A few more rotations so everything sent is delivered everywhere.
    sim.run_for(token);
    assert!(
        sim.converged().is_some() && sim.drained(),
        "LIVENESS VIOLATED (seed {seed}): not converged and drained after 12 tokens"
    );
    sim.check_logs();
    sim.check_self_delivery();
    sim.check_group_views();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for line in &sim.trace {
        for b in line.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    for log in sim.logs.values() {
        for e in log {
            if let Entry::Msg { id, .. } = e {
                h ^= id.2;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    SeedReport {
        seed,
        nodes: sim.ids().len() as u32,
        sent: sim.sent.values().map(Vec::len).sum(),
        delivered: sim.delivered,
        would_block: sim.would_block,
        group_delivered: sim.group_delivered,
        group_changes: sim.group_changes,
        held_token_releases: sim
            .live()
            .iter()
            .filter_map(|id| sim.engine(*id))
            .map(|e| e.stats().held_token_releases)
            .sum(),
        digest: h,
    }
}

/// Runs one random scenario; panics with the replay command on any violation.
pub fn run_seed(seed: u64) -> SeedReport {
    let r = std::panic::catch_unwind(|| {
        let (mut sim, mut setup) = build(seed);
        faults(&mut sim, &mut setup);
        finish(seed, &mut sim, &mut setup)
    });
    match r {
        Ok(rep) => rep,
        Err(e) => {
            eprintln!(
                "ordering simulation seed {seed} failed; replay with:\n  {}",
                replay_command(seed)
            );
            std::panic::resume_unwind(e)
        }
    }
}

/// Replays one seed, printing the trace.
pub fn replay(seed: u64) -> SeedReport {
    let (mut sim, mut setup) = build(seed);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        faults(&mut sim, &mut setup);
        finish(seed, &mut sim, &mut setup)
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
