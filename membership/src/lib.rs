//! # halyard-membership
//!
//! Totem single-ring membership, after Corosync's `totemsrp`: ring formation
//! (GATHER → COMMIT → RECOVERY → OPERATIONAL), failure detection by token loss,
//! configuration changes, quorum (votequorum semantics) and an authenticated,
//! encrypted transport.
//!
//! The protocol core is a sans-IO state machine, [`Totem`] (module [`srp`]):
//! feed it datagrams and timeouts, take transmits, events and the next deadline.
//! [`driver::Node`] runs it over UDP with tokio; [`sim`] (tests and the `sim`
//! feature) runs many of them deterministically under injected faults. See
//! `ARCHITECTURE.md` at the repository root for the module map, the seam with
//! `halyard-ordering` ([`hook::OrderingHook`]) and halyard's fast failover.
//!
//! [`driver::Node`]'s event queue is bounded
//! ([`NodeConfig::event_capacity`], 1024 by default) and the driver never waits
//! for the application: an application that stops reading [`NodeEvents`] loses
//! events, not the ring, and when it reads again it gets a
//! [`NodeEvent::Lagged`] with the number of events it missed, the current
//! regular configuration and the engine's status, from which it resynchronises
//! (see the [`driver`] module).
#![deny(unsafe_code)]

mod commit;
pub mod config;
pub mod configuration;
pub mod crypto;
pub mod driver;
pub mod envelope;
mod error;
pub mod hook;
mod join;
pub mod quorum;
mod recovery;
pub mod ring;
pub mod srp;
pub mod timer;
mod token;
pub mod wire;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use config::{EffectiveConfig, TotemConfig};
pub use configuration::{ConfigurationChange, ConfigurationKind, Event};
pub use crypto::{ClusterKey, EnvelopeCounters, SecureEnvelope};
pub use driver::{Lagged, Node, NodeConfig, NodeEvent, NodeEvents, NodeHandle};
pub use envelope::{Envelope, Opened};
pub use error::{Error, Result};
pub use hook::{NoOrdering, OrderingHook};
pub use quorum::{Member, Quorum, QuorumConfig, QuorumEvent, QuorumStatus};
pub use ring::{FileRingIdStore, MemoryRingIdStore, RingId, RingIdStore};
pub use srp::{Destination, MembState, Stats, Status, Totem, Transmit};

/// A node's identity in the cluster (Corosync's `nodeid`). The ring runs in
/// ascending node id order; the lowest id in a configuration is its representative.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {}", self.0)
    }
}
