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
