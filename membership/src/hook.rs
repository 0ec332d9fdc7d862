//! The seam between the ring engine and `halyard-ordering`.
//!
//! One engine owns the ORF token and the MCAST path, because the token is both
//! the failure detector and the ordering vehicle (as in Corosync's `totemsrp`).
//! The membership engine owns the token's *circulation*: its ring id, its hop
//! counter (`token_seq`), where it goes next, its loss and retransmit timers, the
//! idle hold, and the `aru`/`aru_addr` bookkeeping that drives fail-to-receive.
//! The ordering layer owns what the token *carries*: it assigns message sequence
//! numbers (`token.seq`), keeps the sort queue, fills and serves the retransmit
//! list (`rtr_list`), does flow control (`fcc`, `backlog`), re-sends old-ring
//! messages in RECOVERY and delivers under EVS. It plugs in through
//! [`OrderingHook`], which the engine calls on every token visit, every MCAST of
//! its ring, and on commit / recovery / operational entry.
//!
//! Membership alone uses [`NoOrdering`]: no messages, so `seq == aru == 0` and
//! RECOVERY completes after the usual few rotations.

use crate::wire::{CommitEntry, Mcast, OrfToken};
use crate::{MembState, NodeId, RingId};

/// One token visit, handed to [`OrderingHook::on_token`].
pub struct TokenVisit<'a> {
    /// OPERATIONAL or RECOVERY.
    pub state: MembState,
    /// This node.
    pub me: NodeId,
    /// The ring the token belongs to.
    pub ring_id: RingId,
    /// The token; the hook may change `seq`, `rtr_list`, `fcc`, `backlog`
    /// (the engine owns `token_seq`, `aru`, `aru_addr` and `retrans_flg`).
    pub token: &'a mut OrfToken,
    /// MCASTs to multicast on this visit (already numbered from `token.seq`).
    pub mcasts: &'a mut Vec<Mcast>,
    /// The representative releases a token it held, with a second visit of its
    /// own: no other node has seen the token since this node's last visit, so
    /// its `aru` brings no news and this visit must not count as a rotation
    /// (e.g. for safe delivery, which needs the aru of two rotations).
    pub revisit: bool,
}

/// What the hook learns on entering RECOVERY.
#[derive(Debug, Clone)]
pub struct RecoveryInfo<'a> {
    /// The new ring.
    pub ring_id: RingId,
    /// This node's previous (operational) ring.
    pub old_ring_id: RingId,
    /// Members of the new ring.
    pub members: &'a [NodeId],
    /// Members that come from this node's old ring (the transitional configuration).
    pub transitional: &'a [NodeId],
    /// Every member's commit-token entry (same order as `members`).
    pub entries: &'a [Option<CommitEntry>],
}

/// What the hook learns on entering OPERATIONAL (just before the configuration events).
#[derive(Debug, Clone)]
pub struct OperationalInfo<'a> {
    /// The new ring.
    pub ring_id: RingId,
    /// Members of the new ring.
    pub members: &'a [NodeId],
    /// The transitional configuration.
    pub transitional: &'a [NodeId],
}

/// Callbacks from the ring engine to the ordering layer. Every method has a
/// do-nothing default, which is what membership alone needs.
pub trait OrderingHook: Send {
    /// A valid token of this node's ring arrived in OPERATIONAL or RECOVERY.
    fn on_token(&mut self, visit: TokenVisit<'_>) {
        let _ = visit;
    }
    /// An MCAST of this node's ring arrived (from another node).
    fn on_mcast(&mut self, state: MembState, sender: NodeId, ring_id: RingId, mcast: &Mcast) {
        let _ = (state, sender, ring_id, mcast);
    }
    /// This node's all-received-up-to on the current ring.
    fn my_aru(&self) -> u64 {
        0
    }
    /// Highest seq delivered on the current ring.
    fn high_delivered(&self) -> u64 {
        0
    }
    /// Whether every message up to the highest seq received has been received.
    fn received_flg(&self) -> bool {
        true
    }
    /// Whether this node still has old-ring messages to re-send in RECOVERY.
    fn retrans_pending(&self) -> bool {
        false
    }
    /// The node entered COMMIT; `old_ring_id` is its last operational ring.
    fn on_commit_enter(&mut self, old_ring_id: RingId) {
        let _ = old_ring_id;
    }
    /// The node entered RECOVERY.
    fn on_recovery_enter(&mut self, info: &RecoveryInfo<'_>) {
        let _ = info;
    }
    /// RECOVERY (or COMMIT) was abandoned for GATHER: restore the old ring's state.
    fn on_recovery_abort(&mut self) {}
    /// The node entered OPERATIONAL on a new ring.
    fn on_operational_enter(&mut self, info: &OperationalInfo<'_>) {
        let _ = info;
    }
}

/// The hook membership uses alone: no messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOrdering;

impl OrderingHook for NoOrdering {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::{Destination, MemoryRingIdStore, Totem, TotemConfig};

    #[derive(Default, Clone)]
    struct Counting(Arc<Mutex<BTreeMap<&'static str, u32>>>);

    impl Counting {
        fn bump(&self, k: &'static str) {
            *self.0.lock().unwrap().entry(k).or_default() += 1;
        }
        fn get(&self, k: &'static str) -> u32 {
            self.0.lock().unwrap().get(k).copied().unwrap_or(0)
        }
    }

    impl OrderingHook for Counting {
        fn on_token(&mut self, visit: TokenVisit<'_>) {
            self.bump("token");
            // Send one message on the first visit of the operational ring.
            if visit.state == MembState::Operational && self.get("sent") == 0 {
                self.bump("sent");
                visit.token.seq += 1;
                visit.mcasts.push(Mcast {
                    seq: visit.token.seq,
                    payload: bytes::Bytes::from_static(b"hi"),
                    ..Mcast::default()
                });
            }
        }
        fn on_mcast(&mut self, _: MembState, _: NodeId, _: RingId, m: &Mcast) {
            assert_eq!(&m.payload[..], b"hi");
            self.bump("mcast");
        }
        fn on_commit_enter(&mut self, _: RingId) {
            self.bump("commit");
        }
        fn on_recovery_enter(&mut self, info: &RecoveryInfo<'_>) {
            assert_eq!(info.members.len(), 2);
            assert!(info.entries.iter().all(Option::is_some));
            self.bump("recovery");
        }
        fn on_operational_enter(&mut self, _: &OperationalInfo<'_>) {
            self.bump("operational");
        }
    }

    /// Two engines wired by hand: the hook sees commit, recovery, operational,
    /// token visits, and the MCAST it sent arrives at the other node.
    #[test]
    fn the_engine_calls_the_ordering_hook() {
        let base = Instant::now();
        let mut now = base;
        let nodes = [NodeId(1), NodeId(2)];
        let hooks = [Counting::default(), Counting::default()];
        let mut engines: Vec<Totem<Counting>> = (0..2)
            .map(|i| {
                Totem::with_hook(
                    nodes[i],
                    nodes,
                    &TotemConfig::lan_fast(),
                    Box::new(MemoryRingIdStore::new()),
                    hooks[i].clone(),
                    now,
                )
                .unwrap()
            })
            .collect();
        while now < base + Duration::from_secs(2) {
            let mut moved = true;
            while moved {
                moved = false;
                for i in 0..2 {
                    while let Some(t) = engines[i].poll_transmit() {
                        moved = true;
                        let to = match t.dest {
                            Destination::Node(n) => n,
                            Destination::Multicast => nodes[1 - i],
                        };
                        let j = if to == nodes[0] { 0 } else { 1 };
                        engines[j].handle_datagram(now, nodes[i], &t.payload);
                    }
                }
            }
            now = engines
                .iter()
                .filter_map(|e| e.poll_timeout())
                .min()
                .unwrap()
                .max(now);
            for e in &mut engines {
                e.handle_timeout(now);
            }
        }
        for h in &hooks {
            assert_eq!(h.get("commit"), 1);
            assert_eq!(h.get("recovery"), 1);
            assert_eq!(h.get("operational"), 1);
            assert!(h.get("token") > 10);
        }
        // Each node sent one message; each received the other's.
        assert_eq!((hooks[0].get("mcast"), hooks[1].get("mcast")), (1, 1));
        assert_eq!(engines[0].state(), MembState::Operational);
    }

    /// Node 2's ordering layer never receives anything (its aru stays 0 while
    /// node 1 keeps numbering messages): after `fail_recv_const` rotations it
    /// declares itself failed to receive, forms a ring on its own (never putting
    /// itself in its failed set), and merges back.
    #[test]
    fn fail_to_receive_forms_a_ring_alone_then_merges_back() {
        #[derive(Default)]
        struct Deaf {
            sender: bool,
            ring: Option<RingId>,
            seq: u64,
        }
        impl OrderingHook for Deaf {
            fn on_token(&mut self, visit: TokenVisit<'_>) {
                if Some(visit.ring_id) != self.ring {
                    self.ring = Some(visit.ring_id);
                    self.seq = 0;
                }
                if self.sender && visit.state == MembState::Operational {
                    visit.token.seq += 1;
                }
                if self.sender {
                    self.seq = visit.token.seq;
                }
            }
            fn my_aru(&self) -> u64 {
                self.seq
            }
        }
        let base = Instant::now();
        let mut now = base;
        let nodes = [NodeId(1), NodeId(2)];
        let cfg = TotemConfig {
            fail_recv_const: 10,
            ..TotemConfig::lan_fast()
        };
        let mut engines: Vec<Totem<Deaf>> = (0..2)
            .map(|i| {
                let hook = Deaf {
                    sender: i == 0,
                    ..Deaf::default()
                };
                Totem::with_hook(
                    nodes[i],
                    nodes,
                    &cfg,
                    Box::new(MemoryRingIdStore::new()),
                    hook,
                    now,
                )
                .unwrap()
            })
            .collect();
        let mut alone = 0;
        let mut together = 0;
        while now < base + Duration::from_secs(5) {
            let mut moved = true;
            while moved {
                moved = false;
                for i in 0..2 {
                    assert!(!engines[i].status().failed_set.contains(&nodes[i]));
                    while let Some(ev) = engines[i].poll_event() {
                        if let crate::Event::Configuration(c) = ev {
                            if c.kind == crate::ConfigurationKind::Regular && i == 1 {
                                if c.members == [NodeId(2)] {
                                    alone += 1;
                                } else {
                                    together += 1;
                                }
                            }
                        }
                    }
                    while let Some(t) = engines[i].poll_transmit() {
                        moved = true;
                        let to = match t.dest {
                            Destination::Node(n) => n,
                            Destination::Multicast => nodes[1 - i],
                        };
                        let j = if to == nodes[0] { 0 } else { 1 };
                        engines[j].handle_datagram(now, nodes[i], &t.payload);
                    }
                }
            }
            now = engines
                .iter()
                .filter_map(|e| e.poll_timeout())
                .min()
                .unwrap()
                .max(now);
            for e in &mut engines {
                e.handle_timeout(now);
            }
        }
        assert!(alone >= 1, "node 2 never declared itself failed to receive");
        assert!(together >= 2, "node 2 never merged back");
    }
}
