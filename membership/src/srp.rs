//! The Totem single-ring protocol engine (Corosync's `totemsrp`), sans IO.
//!
//! ```text
//!  handle_datagram(now, from, bytes) ─┐                        ┌─ poll_transmit() -> Transmit (unicast or multicast)
//!  handle_timeout(now)               ─┼─> Totem state machine ─┼─ poll_event()    -> configuration changes
//!  leave(now), request_token(now)    ─┘                        └─ poll_timeout()  -> next deadline
//!
//!            token loss / foreign ring / JOIN / fail-to-receive
//!  OPERATIONAL ──────────────────────────────────────────────> GATHER <──────────┐
//!      ^                                                       │ consensus       │ token loss,
//!      │ 2 quiet rotations                                     v (rep builds     │ JOIN of a new
//!  RECOVERY <───────── commit token back, 2nd rotation ───── COMMIT  token)      │ member
//!      └─────────────────────────────────────────────────────────┴───────────────┘
//! ```
//!
//! The engine is split by protocol phase: [`crate::join`] (GATHER, JOIN,
//! consensus, fast failover), [`crate::commit`] (COMMIT and the commit token),
//! [`crate::token`] (the ORF token: rotation, hold, retransmit, fail-to-receive),
//! [`crate::recovery`] (RECOVERY and the entry into OPERATIONAL). This file has the
//! state, the inputs and outputs, the dispatch and the timers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::config::{EffectiveConfig, TotemConfig};
use crate::configuration::Event;
use crate::hook::{NoOrdering, OrderingHook};
use crate::ring::{RingId, RingIdStore};
use crate::timer::{Timer, Timers};
use crate::wire::{self, Body, CommitToken, Header, Join, Message, OrfToken};
use crate::{Error, NodeId, Result};

/// The membership state (Corosync's `memb_state`), plus `Left` after a graceful leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MembState {
    /// The ring is formed; the token circulates.
    Operational,
    /// Collecting JOINs to agree on a new membership.
    Gather,
    /// The commit token is on its first rotation.
    Commit,
    /// The new ring's token circulates; old-ring messages are recovered.
    Recovery,
    /// This node has left (after `leave`).
    Left,
}

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// One node (may be this node itself, e.g. the token of a one-node ring).
    Node(NodeId),
    /// Every configured node except this one (udpu-style multicast).
    Multicast,
}

/// One datagram to send (plaintext; the driver seals it with its envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: Destination,
    /// The encoded [`Message`].
    pub payload: Bytes,
}

/// Counters of datagrams the engine dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Could not be decoded.
    pub malformed: u64,
    /// Other cluster name.
    pub foreign_cluster: u64,
    /// Header sender is not the authenticated sender, or not a configured node.
    pub bad_sender: u64,
    /// Datagrams accepted.
    pub received: u64,
    /// Rings this node formed or joined (regular configurations delivered).
    pub rings: u64,
    /// Times fast failover failed a silent node early.
    pub fast_failovers: u64,
    /// Times this node, as the idle representative, released the token it held
    /// with a fresh visit because a node wanted to send.
    pub held_token_releases: u64,
}

/// A snapshot of the engine for status displays and invariant checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub node: NodeId,
    /// Current state.
    pub state: MembState,
    /// The ring this node is in, or forming (in COMMIT/RECOVERY: the new one).
    pub ring_id: RingId,
    /// The members of the last operational ring.
    pub members: Vec<NodeId>,
    /// The GATHER proc set.
    pub proc_set: Vec<NodeId>,
    /// The GATHER failed set.
    pub failed_set: Vec<NodeId>,
}

/// The Totem ring engine of one node.
pub struct Totem<H: OrderingHook = NoOrdering> {
    pub(crate) me: NodeId,
    pub(crate) nodes: BTreeSet<NodeId>,
    pub(crate) cfg: EffectiveConfig,
    pub(crate) cluster: u32,
    pub(crate) store: Box<dyn RingIdStore>,
    pub(crate) hook: H,
    pub(crate) state: MembState,
    /// Current ring (in COMMIT/RECOVERY, the ring being formed).
    pub(crate) my_ring_id: RingId,
    /// The last operational ring ("old ring").
    pub(crate) oper_ring_id: RingId,
    /// Highest ring seq seen anywhere (Corosync's `token_ring_id_seq`).
    pub(crate) highest_seq: u64,
    /// Members of the last operational ring.
    pub(crate) memb: BTreeSet<NodeId>,
    pub(crate) proc_set: BTreeSet<NodeId>,
    pub(crate) failed_set: BTreeSet<NodeId>,
    pub(crate) consensus: BTreeSet<NodeId>,
    pub(crate) new_memb: Vec<NodeId>,
    pub(crate) trans_memb: Vec<NodeId>,
    pub(crate) leave_set: BTreeSet<NodeId>,
    /// The last token (ORF or commit) this node sent, for retransmission.
    pub(crate) last_token: Option<(NodeId, Bytes)>,
    pub(crate) my_token_seq: Option<u64>,
    pub(crate) my_last_seq: u64,
    pub(crate) my_seq_unchanged: u32,
    /// The ORF token the idle representative holds (already visited, never
    /// sent); `None` whenever the token is not held here.
    pub(crate) held_token: Option<OrfToken>,
    /// On a node that is not the representative: the ring looked idle for
    /// `seqno_unchanged_const` visits, so the representative probably holds the
    /// token (Corosync's `my_token_held` on the other nodes). A send multicasts
    /// TOKEN_HOLD_CANCEL only then, once per belief: while the token circulates,
    /// a send needs no message of its own.
    pub(crate) token_held_elsewhere: bool,
    pub(crate) merge_detect_outstanding: bool,
    pub(crate) my_last_aru: u64,
    pub(crate) my_aru_count: u32,
    pub(crate) failed_to_recv: bool,
    pub(crate) retrans_flg_count: u32,
    pub(crate) my_set_retrans_flg: bool,
    pub(crate) install_seq: u64,
    pub(crate) recovery_received_flg: bool,
    pub(crate) rotation_counter: u32,
    pub(crate) originated_orf_token: bool,
    /// When this node last entered GATHER from another state.
    pub(crate) gather_started: Instant,
    /// When each node was last heard from (any valid datagram).
    pub(crate) last_heard: BTreeMap<NodeId, Instant>,
    /// Until when the first GATHER after start waits for other nodes' JOINs
    /// before forming a ring (one `join` period).
    pub(crate) startup_grace: Option<Instant>,
    /// Nodes this node failed by fast failover: when, and the ring they were
    /// members of then.
    pub(crate) ff_failed: BTreeMap<NodeId, (Instant, RingId)>,
    /// Nodes heard from soon after being fast-failed (slow, not dead): exempt
    /// from fast failover until a consensus timeout fails them.
    pub(crate) ff_exempt: BTreeSet<NodeId>,
    pub(crate) timers: Timers,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
}

impl Totem<NoOrdering> {
    /// A membership-only engine (no ordering layer).
    pub fn new(
        me: NodeId,
        nodes: impl IntoIterator<Item = NodeId>,
        config: &TotemConfig,
        store: Box<dyn RingIdStore>,
        now: Instant,
    ) -> Result<Self> {
        Self::with_hook(me, nodes, config, store, NoOrdering, now)
    }
}

impl<H: OrderingHook> Totem<H> {
    /// An engine with an ordering hook. `nodes` is the configured node list (it
    /// must contain `me`); the engine starts in GATHER, as Corosync does.
    pub fn with_hook(
        me: NodeId,
        nodes: impl IntoIterator<Item = NodeId>,
        config: &TotemConfig,
        mut store: Box<dyn RingIdStore>,
        hook: H,
        now: Instant,
    ) -> Result<Self> {
        let nodes: BTreeSet<NodeId> = nodes.into_iter().collect();
        if me.0 == 0 || nodes.contains(&NodeId(0)) {
            return Err(Error::InvalidNode(0, "node id 0 is reserved".into()));
        }
        if !nodes.contains(&me) {
            return Err(Error::InvalidNode(
                me.0,
                "this node is not in the node list".into(),
            ));
        }
        let cfg = config.effective(nodes.len())?;
        let stored = store.load()?.unwrap_or(0);
        // A ring id no ring ever had: rings this node formed have seq <= stored.
        let initial = RingId::new(me, stored + 1);
        let mut t = Totem {
            me,
            nodes,
            cfg,
            cluster: wire::cluster_name_hash(&config.cluster_name),
            store,
            hook,
            state: MembState::Gather,
            my_ring_id: initial,
            oper_ring_id: initial,
            highest_seq: initial.seq,
            memb: BTreeSet::new(),
            proc_set: BTreeSet::new(),
            failed_set: BTreeSet::new(),
            consensus: BTreeSet::new(),
            new_memb: Vec::new(),
            trans_memb: Vec::new(),
            leave_set: BTreeSet::new(),
            last_token: None,
            my_token_seq: None,
            my_last_seq: 0,
            my_seq_unchanged: 0,
            held_token: None,
            token_held_elsewhere: false,
            merge_detect_outstanding: false,
            my_last_aru: 0,
            my_aru_count: 0,
            failed_to_recv: false,
            retrans_flg_count: 0,
            my_set_retrans_flg: false,
            install_seq: 0,
            recovery_received_flg: false,
            rotation_counter: 0,
            originated_orf_token: false,
            gather_started: now,
            last_heard: BTreeMap::new(),
            startup_grace: Some(now + cfg.join),
            ff_failed: BTreeMap::new(),
            ff_exempt: BTreeSet::new(),
            timers: Timers::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        };
        // Force the "entered from another state" bookkeeping.
        t.state = MembState::Operational;
        t.gather_enter(now, "startup");
        Ok(t)
    }

    // ----- outputs -----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout) must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ----- queries -----

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.me
    }
    /// The current state.
    pub fn state(&self) -> MembState {
        self.state
    }
    /// The current ring id.
    pub fn ring_id(&self) -> RingId {
        self.my_ring_id
    }
    /// The effective configuration.
    pub fn effective_config(&self) -> &EffectiveConfig {
        &self.cfg
    }
    /// Drop and activity counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }
    /// The ordering hook.
    pub fn hook(&self) -> &H {
        &self.hook
    }
    /// The ordering hook, mutably.
    pub fn hook_mut(&mut self) -> &mut H {
        &mut self.hook
    }
    /// A snapshot.
    pub fn status(&self) -> Status {
        Status {
            node: self.me,
            state: self.state,
            ring_id: self.my_ring_id,
            members: self.memb.iter().copied().collect(),
            proc_set: self.proc_set.iter().copied().collect(),
            failed_set: self.failed_set.iter().copied().collect(),
        }
    }

    // ----- inputs -----

    /// A datagram arrived from `from` (the sender its envelope authenticated).
    pub fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        if self.state == MembState::Left {
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(node = self.me.0, %from, error = %e, "dropping datagram");
                return;
            }
        };
        if msg.header.cluster != self.cluster {
            self.stats.foreign_cluster += 1;
            return;
        }
        let sender = msg.header.sender;
        if sender != from || !self.nodes.contains(&sender) {
            self.stats.bad_sender += 1;
            return;
        }
        self.stats.received += 1;
        if sender != self.me {
            self.last_heard.insert(sender, now);
            if let Some((t, ring)) = self.ff_failed.get(&sender).copied() {
                if now.saturating_duration_since(t) > self.cfg.consensus {
                    self.ff_failed.remove(&sender);
                } else if msg.header.ring_id == ring {
                    // Soon after we gave up on it, it still speaks for the ring we
                    // shared: slow, not dead (a restarted node has a new ring id).
                    self.ff_failed.remove(&sender);
                    self.ff_exempt.insert(sender);
                    tracing::info!(node = self.me.0, %sender, "fast failover exempts a node that proved slow, not dead");
                }
            }
        }
        let header = msg.header;
        match msg.body {
            Body::OrfToken(t) => self.handle_orf_token(now, header, t),
            Body::Mcast(m) => self.handle_mcast(now, header, m),
            Body::MergeDetect => self.handle_merge_detect(now, header),
            Body::Join(j) => self.handle_join(now, header, j),
            Body::Leave(j) => self.handle_leave(now, header, j),
            Body::CommitToken(c) => self.handle_commit_token(now, header, c),
            Body::TokenHoldCancel => self.handle_token_hold_cancel(now, header),
        }
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expired(now) {
            if self.state == MembState::Left {
                return;
            }
            match timer {
                Timer::TokenLoss => self.token_loss_timeout(now),
                Timer::TokenRetransmit => self.token_retransmit_timeout(now),
                Timer::TokenHold => self.token_hold_timeout(now),
                Timer::MergeDetect => self.merge_detect_timeout(now),
                Timer::Join => self.join_timeout(now),
                Timer::Consensus => self.consensus_timeout(now),
                Timer::FastFailover => self.fast_failover_check(now),
            }
        }
    }

    /// Leaves the ring gracefully: multicasts LEAVE (twice, against a single
    /// loss) so the others form a new ring at once instead of waiting for token
    /// loss. The engine then ignores everything.
    pub fn leave(&mut self, now: Instant) {
        if self.state == MembState::Left {
            return;
        }
        let _ = now;
        let mut proc: BTreeSet<NodeId> = self.proc_set.union(&self.memb).copied().collect();
        proc.insert(self.me);
        let join = Join {
            ring_seq: self.my_ring_id.seq,
            proc_list: proc.into_iter().collect(),
            failed_list: self.failed_set.iter().copied().collect(),
        };
        for _ in 0..2 {
            self.multicast(Body::Leave(join.clone()));
        }
        self.state = MembState::Left;
        self.timers.clear_all();
        self.events.push_back(Event::Left);
        tracing::info!(node = self.me.0, "left the ring");
    }

    /// Asks for the token now (the ordering layer has something to send). If this
    /// node is the representative holding the token it releases it at once with a
    /// fresh visit (so what is queued here goes out now, see the `token` module);
    /// otherwise, if the ring has looked idle long enough that the representative
    /// probably holds the token, it multicasts TOKEN_HOLD_CANCEL (once).
    pub fn request_token(&mut self, now: Instant) {
        if !matches!(self.state, MembState::Operational | MembState::Recovery) {
            return;
        }
        if self.my_ring_id.rep == self.me {
            self.release_held_token(now);
        } else if self.token_held_elsewhere {
            self.token_held_elsewhere = false;
            self.multicast(Body::TokenHoldCancel);
        }
    }

    // ----- helpers shared by the phase modules -----

    pub(crate) fn message(&self, ring_id: RingId, body: Body) -> Bytes {
        Message {
            header: Header {
                cluster: self.cluster,
                sender: self.me,
                ring_id,
            },
            body,
        }
        .encode()
    }

    pub(crate) fn multicast(&mut self, body: Body) {
        let payload = self.message(self.my_ring_id, body);
        self.transmits.push_back(Transmit {
            dest: Destination::Multicast,
            payload,
        });
    }

    pub(crate) fn unicast(&mut self, to: NodeId, payload: Bytes) {
        self.transmits.push_back(Transmit {
            dest: Destination::Node(to),
            payload,
        });
    }

    /// Sends a token (ORF or commit) and keeps it for retransmission.
    pub(crate) fn send_token(&mut self, to: NodeId, payload: Bytes, forward: bool) {
        self.last_token = Some((to, payload.clone()));
        if forward {
            self.unicast(to, payload);
        }
    }

    /// The member after this node in ascending order, wrapping round.
    pub(crate) fn next_in(&self, members: &[NodeId]) -> NodeId {
        members
            .iter()
            .copied()
            .find(|n| *n > self.me)
            .or_else(|| members.first().copied())
            .unwrap_or(self.me)
    }

    pub(crate) fn handle_merge_detect(&mut self, now: Instant, header: Header) {
        if header.ring_id == self.my_ring_id || header.sender == self.me {
            return;
        }
        self.foreign_ring_seen(now, header.sender, "MERGE_DETECT from another ring");
    }

    /// A message of another ring: merge (Corosync's handling of foreign MCAST and MERGE_DETECT).
    pub(crate) fn foreign_ring_seen(&mut self, now: Instant, sender: NodeId, why: &str) {
        match self.state {
            MembState::Operational => {
                self.proc_set.insert(sender);
                self.gather_enter(now, why);
            }
            MembState::Gather
                if !self.proc_set.contains(&sender) && !self.failed_set.contains(&sender) =>
            {
                self.proc_set.insert(sender);
                self.gather_enter(now, why);
            }
            _ => {}
        }
    }

    pub(crate) fn merge_detect_timeout(&mut self, _now: Instant) {
        self.merge_detect_outstanding = false;
        if self.state == MembState::Operational && self.my_ring_id.rep == self.me {
            self.multicast(Body::MergeDetect);
        }
    }

    pub(crate) fn handle_token_hold_cancel(&mut self, now: Instant, header: Header) {
        if header.ring_id != self.my_ring_id {
            return;
        }
        self.my_seq_unchanged = 0;
        if self.my_ring_id.rep == self.me
            && matches!(self.state, MembState::Operational | MembState::Recovery)
        {
            self.release_held_token(now);
        }
    }

    pub(crate) fn handle_leave(&mut self, now: Instant, header: Header, _join: Join) {
        let s = header.sender;
        if s == self.me {
            return;
        }
        self.leave_set.insert(s);
        match self.state {
            MembState::Operational => {
                if self.memb.contains(&s) {
                    self.failed_set.insert(s);
                    self.gather_enter(now, "LEAVE from a member");
                }
            }
            MembState::Gather => {
                if self.proc_set.contains(&s) && !self.failed_set.contains(&s) {
                    self.failed_set.insert(s);
                    self.gather_enter(now, "LEAVE during GATHER");
                }
            }
            MembState::Commit | MembState::Recovery => {
                if self.new_memb.contains(&s) {
                    if self.state == MembState::Recovery {
                        self.hook.on_recovery_abort();
                    }
                    self.failed_set.insert(s);
                    self.gather_enter(now, "LEAVE during COMMIT/RECOVERY");
                }
            }
            MembState::Left => {}
        }
    }

    pub(crate) fn store_ring_id(&mut self, ring_id: RingId) {
        if let Err(e) = self.store.store(ring_id) {
            tracing::error!(node = self.me.0, error = %e, "could not persist the ring id");
        }
    }

    pub(crate) fn commit_token_payload(&self, ring_id: RingId, ct: &CommitToken) -> Bytes {
        self.message(ring_id, Body::CommitToken(ct.clone()))
    }
}
