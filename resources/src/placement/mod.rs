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
pub mod digest;
pub mod ghash;
pub mod model;
pub mod output;
pub mod rules;
pub mod score;
pub mod transition;
pub mod xml;

pub use alloc::{Assignment, Contribution};
pub use model::{Cluster, Role};
pub use output::{Action, Outcome, Row};
pub use transition::{GraphSummary, Transition};

use crate::Error;

/// Read a CIB document. `now` (seconds since the Unix epoch) fixes the time for date
/// rules; `None` makes date expressions false. `now` is also the time failures are
/// expired against (`failure-timeout`); with `None` that is the CIB's
/// `execution-date`, else later than every recorded time (what crm_simulate's wall
/// clock is for a saved CIB): a live caller should pass the current time.
pub fn read_cib(text: &str, now: Option<i64>) -> Result<Cluster, Error> {
    cib::read(text, now)
}

/// Read halyard's own configuration: the [`Cluster`] model as TOML (what
/// [`to_toml`] writes). The model is validated the same way as a CIB's: every
/// index must name an existing node or resource.
pub fn read_toml(text: &str) -> Result<Cluster, Error> {
    let c: Cluster = toml::from_str(text).map_err(|e| Error::CibInvalid {
        element: "TOML configuration".into(),
        detail: e.to_string(),
    })?;
    validate(&c)?;
    Ok(c)
}

/// Write the [`Cluster`] model as TOML (halyard's configuration format).
pub fn to_toml(cluster: &Cluster) -> Result<String, Error> {
    toml::to_string(cluster).map_err(|e| Error::CibInvalid {
        element: "TOML configuration".into(),
        detail: e.to_string(),
    })
}

fn validate(c: &Cluster) -> Result<(), Error> {
    let (n, r) = (c.nodes.len(), c.resources.len());
    let bad = |what: &str, id: &str, detail: String| Error::CibInvalid {
        element: format!("{what} {id}"),
        detail,
    };
    for (i, rsc) in c.resources.iter().enumerate() {
        if rsc.parent.map(|p| p >= r).unwrap_or(false)
            || rsc.children.iter().any(|&ch| ch >= r || ch == i)
        {
            return Err(bad(
                "resource",
                &rsc.id,
                "parent or child index out of range".into(),
            ));
        }
        if rsc.running_on.iter().any(|&nd| nd >= n)
            || rsc.failcount.keys().any(|&nd| nd >= n)
            || rsc.known_on.iter().any(|&nd| nd >= n)
            || rsc.monitors_on.iter().any(|&(nd, _)| nd >= n)
        {
            return Err(bad("resource", &rsc.id, "node index out of range".into()));
        }
    }
    if c.top.iter().any(|&t| t >= r) {
        return Err(bad("top", "", "resource index out of range".into()));
    }
    for l in &c.locations {
        if l.rsc >= r || l.nodes.iter().any(|&(nd, _)| nd >= n) {
            return Err(bad("location", &l.id, "index out of range".into()));
        }
    }
    for col in &c.colocations {
        if col.dependent >= r || col.primary >= r {
            return Err(bad(
                "colocation",
                &col.id,
                "resource index out of range".into(),
            ));
        }
    }
    for o in &c.orders {
        if o.first >= r || o.then >= r {
            return Err(bad("order", &o.id, "resource index out of range".into()));
        }
    }
    if c.anon_history.iter().any(|h| h.0 >= n || h.1 >= r)
        || c.no_promote.iter().any(|&x| x >= r)
        || c.status_order.iter().any(|&x| x >= n)
        || c.orphan_history.iter().any(|h| h.0 >= n)
    {
        return Err(bad("status", "", "index out of range".into()));
    }
    Ok(())
}

/// Compute the target placement and the transition (summary and graph) for `cluster`.
pub fn schedule(cluster: &Cluster) -> Outcome {
    schedule_with(cluster, true)
}

/// [`schedule`], building the transition graph only when `graph` is true (the
/// summary is always computed); for measuring what the graph costs.
pub fn schedule_with(cluster: &Cluster, graph: bool) -> Outcome {
    let mut assignment = alloc::Solver::new(cluster).run();
    transition::apply_fencing_requirements(cluster, &mut assignment);
    output::outcome(cluster, assignment, graph)
}
