//! The cluster model: nodes, resources (an arena of primitives, groups and clones with
//! their instances), constraints, options, and the current state derived from the
//! operation history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// (De)serialise a map keyed by an index as a list of pairs (TOML keys are strings).
mod index_map {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<usize, i64>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(usize, i64)> = m.iter().map(|(k, v)| (*k, *v)).collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<usize, i64>, D::Error> {
        let v: Vec<(usize, i64)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

/// Index of a node in [`Cluster::nodes`].
pub type NodeIx = usize;
/// Index of a resource in [`Cluster::resources`].
pub type RscIx = usize;

/// A resource role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Unknown (no opinion).
    Unknown,
    /// Stopped.
    Stopped,
    /// Started (for promotable instances: started but not yet promoted or unpromoted).
    Started,
    /// Unpromoted (Slave).
    Unpromoted,
    /// Promoted (Master).
    Promoted,
}

impl Role {
    /// Parse a role name as Pacemaker accepts it (case-insensitive, old names too).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "stopped" => Some(Role::Stopped),
            "started" => Some(Role::Started),
            "unpromoted" | "slave" => Some(Role::Unpromoted),
            "promoted" | "master" => Some(Role::Promoted),
            "unknown" => Some(Role::Unknown),
            _ => None,
        }
    }

    /// The name Pacemaker 2.1 prints.
    pub fn name(self) -> &'static str {
        match self {
            Role::Unknown => "Unknown",
            Role::Stopped => "Stopped",
            Role::Started => "Started",
            Role::Unpromoted => "Unpromoted",
            Role::Promoted => "Promoted",
        }
    }
}

/// Placement strategy (cluster option `placement-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// `default`: utilization ignored, balance by resource count.
    Default,
    /// `utilization`: capacity enforced, balance by resource count.
    Utilization,
    /// `balanced`: capacity enforced, prefer the node with most free capacity.
    Balanced,
    /// `minimal`: capacity enforced, no balancing.
    Minimal,
}

/// Cluster-wide options (`crm_config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// `symmetric-cluster` (default true).
    pub symmetric: bool,
    /// `stonith-enabled` (default true).
    pub stonith_enabled: bool,
    /// `no-quorum-policy` (default `stop`).
    pub no_quorum_policy: String,
    /// The CIB's `have-quorum`.
    pub have_quorum: bool,
    /// `start-failure-is-fatal` (default true).
    pub start_failure_is_fatal: bool,
    /// `stop-orphan-resources` (default true).
    pub stop_orphan_resources: bool,
    /// `placement-strategy`.
    pub strategy: Strategy,
    /// `maintenance-mode`.
    pub maintenance_mode: bool,
    /// `stop-all-resources`.
    pub stop_all_resources: bool,
    /// `enable-startup-probes` (default true): probe resources on nodes without
    /// history for them.
    #[serde(default = "default_true")]
    pub startup_probes: bool,
    /// `concurrent-fencing` (default false in 2.1.5): fence several nodes at once.
    #[serde(default)]
    pub concurrent_fencing: bool,
    /// `stop-orphan-actions` (default true): cancel recurring operations that are no
    /// longer configured.
    #[serde(default = "default_true")]
    pub stop_orphan_actions: bool,
}

fn default_true() -> bool {
    true
}

/// A cluster node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// `uname`.
    pub name: String,
    /// `id`.
    pub id: String,
    /// Online (member of the cluster, controller up, joined).
    pub online: bool,
    /// Unclean (must be fenced).
    pub unclean: bool,
    /// In standby.
    pub standby: bool,
    /// In maintenance.
    pub maintenance: bool,
    /// Shutting down.
    pub shutdown: bool,
    /// Node attributes (configuration and transient), plus `#uname`, `#id`, `#kind`.
    pub attrs: BTreeMap<String, String>,
    /// Utilization capacity.
    pub capacity: BTreeMap<String, i64>,
    /// Why the node is unclean, as crm_simulate prints it in the Fence line
    /// (e.g. `peer is no longer part of the cluster`).
    #[serde(default)]
    pub unclean_reason: Option<String>,
}

impl Node {
    /// Whether the node can run resources at all (online, clean, not in standby,
    /// maintenance or shutdown).
    pub fn available(&self) -> bool {
        self.online && !self.unclean && !self.standby && !self.maintenance && !self.shutdown
    }
}

/// What kind of resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A primitive (`class:provider:type`).
    Primitive {
        /// The agent, `class[:provider]:type`.
        agent: String,
    },
    /// A group: children are its members, in order.
    Group,
    /// A clone: children are its instances.
    Clone {
        /// `globally-unique`.
        unique: bool,
        /// Promotable.
        promotable: bool,
        /// `clone-max`.
        max: usize,
        /// `clone-node-max`.
        node_max: usize,
        /// `promoted-max`.
        promoted_max: usize,
        /// `promoted-node-max`.
        promoted_node_max: usize,
        /// `interleave`.
        interleave: bool,
    },
}

/// A resource: a primitive, a group, a clone, or a clone instance (a primitive or
/// group whose parent is a clone).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    /// The id as Pacemaker shows it (instances get `:N`).
    pub id: String,
    /// The id without an instance suffix.
    pub base: String,
    /// Kind.
    pub kind: Kind,
    /// Parent (group or clone).
    pub parent: Option<RscIx>,
    /// Children (group members or clone instances), in order.
    pub children: Vec<RscIx>,
    /// Meta attributes, own and inherited.
    pub meta: BTreeMap<String, String>,
    /// Utilization required.
    pub utilization: BTreeMap<String, i64>,
    /// `target-role` as configured (also inherited), for the placement flags.
    pub target_role_raw: Option<String>,
    /// Parsed target role (Unknown = no limit).
    pub target_role: Role,
    /// `resource-stickiness`.
    pub stickiness: i64,
    /// `migration-threshold` (0 = never ban).
    pub migration_threshold: i64,
    /// `priority`.
    pub priority: i64,
    /// `is-managed` (and not in maintenance).
    pub managed: bool,
    /// Present in the status section but not in the configuration.
    pub orphan: bool,
    // --- current state ---
    /// Nodes where the resource is active now.
    pub running_on: Vec<NodeIx>,
    /// Current role.
    pub role: Role,
    /// A failure is outstanding.
    pub failed: bool,
    /// Fail count per node.
    #[serde(with = "index_map")]
    pub failcount: BTreeMap<NodeIx, i64>,
    /// A failure with `on-fail=block` (or a stop failure without fencing) blocks it.
    pub blocked: bool,
    /// A failure was ignored (`on-fail=ignore`).
    pub failure_ignored: bool,
    /// Nodes banned by hard errors (not installed, invalid parameters, ...).
    pub hard_bans: Vec<NodeIx>,
    /// A fatal error (not configured): banned everywhere.
    pub fatal: bool,
    /// A failure with `on-fail=stop`: stays stopped.
    pub stop_on_fail: bool,
    /// The id the operation history knows an anonymous clone instance by, when it
    /// differs from `id` (`rsc`, or `rsc:M` from an older history; Pacemaker's
    /// `clone_name`).
    pub history_name: Option<String>,
    /// Nodes where the resource's operation history says a failed stop happened
    /// (the resource is blocked there without fencing).
    pub failed_stop: Vec<NodeIx>,
    /// Configured operations (`<op>`), for the transition graph's recurring monitors.
    #[serde(default)]
    pub ops: Vec<OpDef>,
    /// Nodes with an operation history for this resource (no probe needed there).
    #[serde(default)]
    pub known_on: Vec<NodeIx>,
    /// Recurring monitors the history shows on a node: (node, interval ms).
    #[serde(default)]
    pub monitors_on: Vec<(NodeIx, i64)>,
    /// What the operation history's digests say changed in the definition since
    /// (restart, reload, re-created or cancelled recurring operations), per node.
    #[serde(default)]
    pub definition_changes: Vec<super::digest::DefinitionChange>,
    /// Nodes where the definition of an operation in the history changed (a fail
    /// count there is cleared: `clear_failcount`).
    #[serde(default)]
    pub definition_changed_on: Vec<NodeIx>,
    /// Nodes where the resource's fail count is cleared: its failures expired
    /// (`failure-timeout`), or the parameters of its last failure changed since.
    #[serde(default)]
    pub clear_failcount_on: Vec<NodeIx>,
    /// What Pacemaker's operation digests are computed from (instance attributes and
    /// operation definitions), when read from a CIB.
    #[serde(default)]
    pub digest: Option<super::digest::Config>,
}

/// A configured operation of a primitive (`<op name interval role>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpDef {
    /// `name` (`monitor`, `start`, ...).
    pub name: String,
    /// `interval` in milliseconds.
    pub interval_ms: i64,
    /// `role` (Unknown when not given).
    pub role: Role,
}

impl Resource {
    /// Whether this is a primitive.
    pub fn is_primitive(&self) -> bool {
        matches!(self.kind, Kind::Primitive { .. })
    }

    /// Whether this is a clone.
    pub fn is_clone(&self) -> bool {
        matches!(self.kind, Kind::Clone { .. })
    }
}

/// A location constraint, already resolved into per-node scores (rules evaluated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Location {
    /// Constraint id.
    pub id: String,
    /// Resource.
    pub rsc: RscIx,
    /// Role filter (Unknown = any).
    pub role: Role,
    /// (node, score) pairs.
    pub nodes: Vec<(NodeIx, i64)>,
}

/// A colocation constraint: `dependent` with `primary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Colocation {
    /// Constraint id.
    pub id: String,
    /// The resource placed relative to the other (`rsc`).
    pub dependent: RscIx,
    /// The resource placed first (`with-rsc`).
    pub primary: RscIx,
    /// Score.
    pub score: i64,
    /// `rsc-role`.
    pub dependent_role: Role,
    /// `with-rsc-role`.
    pub primary_role: Role,
    /// `node-attribute` (default `#uname`).
    pub node_attribute: String,
    /// Whether the dependent influences the primary's placement.
    pub influence: bool,
}

/// Order kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    /// Mandatory.
    Mandatory,
    /// Optional.
    Optional,
    /// Serialize.
    Serialize,
}

/// An order constraint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Constraint id.
    pub id: String,
    /// First resource.
    pub first: RscIx,
    /// Then resource.
    pub then: RscIx,
    /// First action (`start`, `promote`, ...).
    pub first_action: String,
    /// Then action.
    pub then_action: String,
    /// Kind.
    pub kind: OrderKind,
    /// Symmetrical.
    pub symmetrical: bool,
}

/// The whole cluster: configuration and current state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cluster {
    /// Options.
    pub options: Options,
    /// Nodes, in configuration order.
    pub nodes: Vec<Node>,
    /// Every resource, including clone instances, group members and orphans.
    pub resources: Vec<Resource>,
    /// Top-level resources in configuration order (orphans at the end).
    pub top: Vec<RscIx>,
    /// Location constraints.
    pub locations: Vec<Location>,
    /// Colocation constraints.
    pub colocations: Vec<Colocation>,
    /// Order constraints.
    pub orders: Vec<Order>,
    /// History entries of anonymous clone members, in document order:
    /// (node, clone, member base id, active before the transition). Used to re-derive orphan rows of the revised
    /// status the way Pacemaker re-reads the history after the transition.
    pub anon_history: Vec<(NodeIx, RscIx, String, bool)>,
    /// Resources that may not be promoted (a lost ticket with `loss-policy=demote`).
    pub no_promote: Vec<RscIx>,
    /// Nodes in the order of their `<node_state>` entries (others after).
    pub status_order: Vec<NodeIx>,
    /// Histories of resources no longer configured and not active: (node, history
    /// id). Pacemaker deletes them (`<id>_delete_0` in the transition).
    #[serde(default)]
    pub orphan_history: Vec<(NodeIx, String)>,
}

impl Cluster {
    /// The index of the node named `name`.
    pub fn node_ix(&self, name: &str) -> Option<NodeIx> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The index of the resource with id `id` (instances with `:N`).
    pub fn rsc_ix(&self, id: &str) -> Option<RscIx> {
        self.resources.iter().position(|r| r.id == id)
    }

    /// The top-most ancestor of `r`.
    pub fn top_of(&self, mut r: RscIx) -> RscIx {
        while let Some(p) = self.resources[r].parent {
            r = p;
        }
        r
    }

    /// All primitives below (and including) `r`.
    pub fn primitives_of(&self, r: RscIx, out: &mut Vec<RscIx>) {
        if self.resources[r].is_primitive() {
            out.push(r);
        }
        for &c in &self.resources[r].children {
            self.primitives_of(c, out);
        }
    }
}
