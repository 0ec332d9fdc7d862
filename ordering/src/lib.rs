//! # halyard-ordering
//!
//! Totally ordered messaging over the Totem ring: agreed and safe delivery,
//! extended virtual synchrony across configuration changes, packing and
//! fragmentation, after Corosync's `totemsrp` (ordering half) and `totempg`.
//!
//! The core, [`Ordering`], is a sans-IO [`OrderingHook`](halyard_membership::OrderingHook)
//! for the ring engine of `halyard-membership`: the engine owns the token's
//! circulation, the ordering layer owns what the token carries (see
//! `ARCHITECTURE.md` and the [`ordering`] module docs for the algorithm).
//!
//! ```text
//!   app ── send(group, bytes, Agreed|Safe) ──> Ordering ──(hook)── Totem<Ordering> ── datagrams
//!   app <── poll_event(): Message | Configuration (EVS order) ──┘
//! ```
#![deny(unsafe_code)]

pub mod cluster;
pub mod config;
mod error;
pub mod frame;
pub mod groups;
pub mod ordering;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use cluster::{Cluster, ClusterConfig, Group, GroupSender};
pub use config::OrderingConfig;
pub use error::{Error, Result};
pub use groups::{Addressed, GroupEvent, Groups, Member, Reason};
pub use ordering::{Delivery, Event, Message, Ordering, OrderingStats};
