//! # halyard-membership
//!
//! Totem single-ring membership, after Corosync's `totemsrp`: ring formation
//! (GATHER → COMMIT → RECOVERY → OPERATIONAL), failure detection by token loss,
//! configuration changes, quorum (votequorum semantics) and an authenticated,
//! encrypted transport.
//!
//! The protocol core is a sans-IO state machine; see `ARCHITECTURE.md` at the
//! repository root.
#![deny(unsafe_code)]

pub mod crypto;
pub mod envelope;
mod error;
pub mod quorum;

pub use crypto::{ClusterKey, EnvelopeCounters, SecureEnvelope};
pub use envelope::{Envelope, Opened};
pub use error::{Error, Result};
pub use quorum::{Member, Quorum, QuorumConfig, QuorumEvent, QuorumStatus};

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
