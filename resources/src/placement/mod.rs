//! The placement solver: a pure, deterministic re-creation of Pacemaker's scheduler.
//!
//! ```text
//!  CIB XML ──cib::read──> Cluster ──schedule(now)──> Outcome { placement, actions, explanations }
//! ```
//!
//! [`schedule`] is a pure function of the [`Cluster`] (configuration plus the current
//! state derived from the operation history): no IO, no clock (date rules use the
//! `now` given to [`read_cib`]), and byte-for-byte deterministic output.
//!
//! What is modelled follows Pacemaker 2.1.5: allowed-node scores with saturating
//! ±INFINITY arithmetic, location constraints (scores and simple rules), stickiness on
//! the current node, fail-count bans after `migration-threshold`, colocations (with
//! dependent-score propagation), groups, clones (anonymous and unique, clone-max,
//! clone-node-max, interleave), promotable clones (promotion scores, promoted-max),
//! utilization with the four placement strategies, target-role, unmanaged resources
//! and mandatory orders that leave a dependent unable to start. `COMPATIBILITY.md` at
//! the repository root lists what agrees with Pacemaker and what does not.

pub mod alloc;
pub mod cib;
pub mod model;
pub mod output;
pub mod rules;
pub mod score;
pub mod xml;

pub use alloc::{Assignment, Contribution};
pub use model::{Cluster, Role};
pub use output::{Action, Outcome, Row};

use crate::Error;

/// Read a CIB document. `now` (seconds since the Unix epoch) fixes the time for date
/// rules; `None` makes date expressions false.
pub fn read_cib(text: &str, now: Option<i64>) -> Result<Cluster, Error> {
    cib::read(text, now)
}

/// Compute the target placement and the transition for `cluster`.
pub fn schedule(cluster: &Cluster) -> Outcome {
    let assignment = alloc::Solver::new(cluster).run();
    output::outcome(cluster, assignment)
}
