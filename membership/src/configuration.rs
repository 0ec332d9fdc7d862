//! Configuration changes, as extended virtual synchrony (EVS) needs them.
//!
//! On entering OPERATIONAL every node delivers two configurations, in this order:
//!
//! 1. **Transitional**: the members of the new ring that come from this node's
//!    old ring. `left` = old members not in it. Messages of the old ring that could
//!    not be delivered in the old regular configuration are delivered (by
//!    `ordering`) in this one.
//! 2. **Regular**: the new ring's members. `joined` = new members not in the
//!    transitional configuration; `left` = old members not in it (the same as the
//!    transitional configuration's `left`, repeated for convenience).
//!
//! All nodes that deliver a regular configuration with the same ring id agree on
//! its members (the commit token carried them). Transitional configurations carry
//! the new ring id too, but differ between nodes that came from different rings.

use crate::{NodeId, RingId};

/// Which half of the EVS pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigurationKind {
    /// The transitional configuration.
    Transitional,
    /// The regular configuration.
    Regular,
}

/// One configuration change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationChange {
    /// Transitional or regular.
    pub kind: ConfigurationKind,
    /// The new ring.
    pub ring_id: RingId,
    /// The ring this node was in before (its last regular configuration).
    pub old_ring_id: RingId,
    /// Members, ascending.
    pub members: Vec<NodeId>,
    /// Members that were not in this node's old ring (regular only).
    pub joined: Vec<NodeId>,
    /// Old members that are gone.
    pub left: Vec<NodeId>,
    /// Of `left`, those that announced a graceful LEAVE.
    pub left_gracefully: Vec<NodeId>,
}

/// What the engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A configuration change.
    Configuration(ConfigurationChange),
    /// This node has left the ring (after [`Totem::leave`](crate::Totem::leave)).
    Left,
}
