// ==== NOTE FROM THE LEAD TO THE ENGINEER OF THIS BRANCH (read it, then delete this block) ====
// Your task prompt left out the project's common rules. They are in /work/wt/prompts/common.md:
// READ THAT FILE NOW. The most important points: your FINAL COMMIT must be in by 16:50 UTC today
// (run `date`); commit green increments to branch `membership` at least every 30-40 minutes;
// 2 cores are shared with 4 other engineers (targeted builds only); do not run `issues` to
// resolve/note; keep your tests under ~2 minutes in a debug build; system tests honour
// HALYARD_REQUIRE_SYSTEM=1; your last message is a report (format in common.md).
// ==== END OF NOTE ====
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
#![deny(unsafe_code)]

mod commit;
pub mod config;
pub mod configuration;
pub mod driver;
pub mod envelope;
mod error;
pub mod hook;
mod join;
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
pub use driver::{Node, NodeConfig, NodeEvent, NodeEvents, NodeHandle};
pub use envelope::{Envelope, Opened};
pub use error::{Error, Result};
pub use hook::{NoOrdering, OrderingHook};
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
