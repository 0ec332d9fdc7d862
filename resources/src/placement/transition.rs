//! The transition graph: the actions that take the cluster from its current state to
//! the scheduled placement, with the ordering edges between them, after Pacemaker's
//! scheduler (`pcmk__create_graph`).
//!
//! ```text
//!  Cluster + Assignment ──build──> Transition { actions, edges (before, after) }
//!                                     ├─ to_pacemaker_xml()   <transition_graph> as crm_simulate -G writes it
//!                                     └─ topological_order()  the "Executing Cluster Transition" list
//! ```
//!
//! What is built: probes (`monitor` interval 0 on nodes without history for the
//! resource), `start`, `stop`, `promote`, `demote`, `migrate_to`/`migrate_from` with
//! the pseudo `start`, recurring monitors from the `<op>` definitions (per role,
//! `role=Stopped` monitors on the nodes where the resource is not), clone
//! notifications (`pre`/`post` with their pseudo and `confirmed-` actions), the pseudo
//! actions of groups and clones (`_start_0`, `_running_0`, `_stop_0`, `_stopped_0`,
//! `_promote_0`, `_promoted_0`, `_demote_0`, `_demoted_0`), fencing of unclean nodes
//! (`stonith-<node>-reboot`) with the implied pseudo stops of what ran there, and
//! `load_stopped_<node>` for utilization-aware placement strategies.
//!
//! Edges: implicit ones (stop before start, demote before stop, start before promote,
//! probe before start, start/promote before the recurring monitor, migrate_to →
//! migrate_from → stop of the source → pseudo start, group members in sequence,
//! instances ↔ clone pseudo actions, notifications around the clone action, fencing
//! before every start of a resource that `requires=fencing`) and the order
//! constraints (first/then actions, symmetrical inverses, interleaved clones per
//! node). Everything is a pure function of its inputs and deterministic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use super::alloc::Assignment;
use super::digest::ChangeKind;
use super::model::*;
use crate::Error;

/// What kind of graph action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionKind {
    /// An operation a resource agent executes on a node (`rsc_op`).
    Resource,
    /// A pseudo action (`pseudo_event`): a synchronisation point, nothing runs.
    Pseudo,
    /// A cluster event (`crm_event`): fencing.
    Fence,
    /// Another cluster event (`crm_event`): a node's clean shutdown
    /// (`do_shutdown`), clearing a fail count (`clear_failcount`).
    NodeEvent,
}

/// One action of the transition graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphAction {
    /// Pacemaker's operation key, e.g. `rsc_start_0`, `rsc_monitor_10000`,
    /// `grp_running_0`, `cl_confirmed-pre_notify_start_0`, `stonith-node1-reboot`.
    pub key: String,
    /// The task (`start`, `stop`, `monitor`, `notify`, `running`, `stonith`, ...).
    pub task: String,
    /// Interval in milliseconds (recurring monitors), 0 otherwise.
    pub interval_ms: i64,
    /// The resource, if any.
    pub rsc: Option<RscIx>,
    /// The node it runs on (none for pseudo actions).
    pub node: Option<NodeIx>,
    /// Kind.
    pub kind: ActionKind,
    /// The expected return code of a probe (7, "not running").
    pub target_rc: Option<i32>,
}

/// The transition graph.
#[derive(Debug, Clone, Default)]
pub struct Transition {
    /// Actions, in creation order (their index is their id).
    pub actions: Vec<GraphAction>,
    /// Ordering edges `(before, after)` between action indices, sorted.
    pub edges: Vec<(usize, usize)>,
}

/// Whether a meta attribute is set to a true value.
fn truthy(v: Option<&String>) -> bool {
    v.map(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "on" | "yes" | "y" | "1"
        )
    })
    .unwrap_or(false)
}

/// Whether primitive `p` needs fencing of the nodes it may have run on before it can
/// start elsewhere (`requires=fencing`; the default when stonith is enabled, quorum
/// otherwise).
pub fn requires_fencing(c: &Cluster, p: RscIx) -> bool {
    match c.resources[p].meta.get("requires").map(|s| s.as_str()) {
        Some("fencing") | Some("unfencing") => true,
        Some(_) => false,
        None => c.options.stonith_enabled,
    }
}

/// The nodes that get fenced in this transition (unclean, with stonith enabled).
pub fn fenced_nodes(c: &Cluster) -> Vec<NodeIx> {
    if !c.options.stonith_enabled {
        return Vec::new();
    }
    // pe_can_fence: a fence device must be configured, and without quorum only a
    // node still in the membership can be fenced (unless no-quorum-policy=ignore);
    // needs_fencing: only when some resource is managed.
    let have_device = c
        .resources
        .iter()
        .any(|r| matches!(&r.kind, Kind::Primitive { agent } if agent.starts_with("stonith:")));
    let have_managed = c.resources.iter().any(|r| r.is_primitive() && r.managed);
    if !have_device || !have_managed {
        return Vec::new();
    }
    let quorum = c.options.have_quorum || c.options.no_quorum_policy == "ignore";
    (0..c.nodes.len())
        .filter(|&n| c.nodes[n].unclean && (quorum || c.nodes[n].online))
        .collect()
}

/// Fencing semantics applied to an assignment: with stonith disabled a resource that
/// `requires=fencing` and is active on an unclean node cannot be recovered elsewhere,
/// since nothing guarantees it stopped there. It stays where it was (blocked), with the
/// reason recorded in the explanation. (A CIB never yields an unclean node without
/// stonith: like Pacemaker 2.1.5, halyard then takes a node that is down as cleanly
/// down. halyard's own TOML model can say so, and then this applies.)
pub fn apply_fencing_requirements(c: &Cluster, a: &mut Assignment) {
    // Unclean nodes that cannot be fenced (no device, or no quorum: pe_can_fence).
    let fenced = fenced_nodes(c);
    let unfenceable = |n: NodeIx| c.nodes[n].unclean && !fenced.contains(&n);
    if c.options.stonith_enabled && !c.nodes.iter().enumerate().any(|(n, _)| unfenceable(n)) {
        return;
    }
    for (p, rsc) in c.resources.iter().enumerate() {
        let needs = if c.options.stonith_enabled {
            requires_fencing(c, p)
        } else {
            rsc.meta.get("requires").map(|s| s.as_str()) == Some("fencing")
        };
        if !rsc.is_primitive() || !rsc.managed || !needs {
            continue;
        }
        let Some(&gone) = rsc.running_on.iter().find(|&&n| unfenceable(n)) else {
            continue;
        };
        if a.node[p] == Some(gone) {
            continue;
        }
        a.node[p] = Some(gone);
        a.next_role[p] = rsc.role;
        a.stop_reason[p] = Some(format!(
            "requires=fencing, and node {} left uncleanly but cannot be fenced (stonith disabled, no fence device, or no quorum): not recovered elsewhere",
            c.nodes[gone].name
        ));
    }
}

/// Promotable instances whose promotion is scheduled but unrunnable: a mandatory
/// Promoted-role colocation with a primary whose start an order blocked
/// (`Assignment::blocked_start`). crm_simulate lists "Promote ... (blocked)"; the
/// instance starts but is not promoted, and gets no recurring monitor (the promoted
/// one depends on the promote, the unpromoted one is not its next role).
/// promoted-with-blocked; the choice of the instance (the clone's one on the
/// primary's node, when the clone has a promotion slot left) is inferred.
pub fn blocked_promotions(c: &Cluster, a: &Assignment) -> Vec<RscIx> {
    let mut out = Vec::new();
    for col in &c.colocations {
        if col.score < super::score::INFINITY || col.dependent_role != Role::Promoted {
            continue;
        }
        let Some(n) = a.blocked_start.get(col.primary).copied().flatten() else {
            continue;
        };
        let cl = col.dependent;
        let Kind::Clone {
            promotable: true,
            promoted_max,
            ..
        } = c.resources[cl].kind
        else {
            continue;
        };
        let mut prims = Vec::new();
        c.primitives_of(cl, &mut prims);
        let promoted = prims
            .iter()
            .filter(|&&p| a.next_role[p] == Role::Promoted)
            .count();
        if promoted >= promoted_max {
            continue;
        }
        if let Some(&p) = prims
            .iter()
            .find(|&&p| a.node[p] == Some(n) && a.next_role[p] != Role::Stopped)
        {
            out.push(p);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What one primitive does in the transition.
#[derive(Debug, Clone, Default)]
struct Plan {
    /// Stops: (node, pseudo because the node is fenced).
    stop: Vec<(NodeIx, bool)>,
    /// Demotes: (node, pseudo).
    demote: Vec<(NodeIx, bool)>,
    /// Start node.
    start: Option<NodeIx>,
    /// Promote node.
    promote: Option<NodeIx>,
    /// Live migration (source, target).
    migrate: Option<(NodeIx, NodeIx)>,
}

/// Whether managed primitive `p` migrates live (`allow-migrate`) from its current
/// node to its target: a top-level primitive moving between two healthy nodes, not
/// failed, not restarted for another reason.
pub fn migration(c: &Cluster, a: &Assignment, p: RscIx, restart: bool) -> Option<(NodeIx, NodeIx)> {
    let m = basic_migration(c, a, p, restart)?;
    // Not when something it must start after is itself stopped and started again.
    for o in &c.orders {
        if o.then != p
            || o.kind != OrderKind::Mandatory
            || o.first_action != "start"
            || o.then_action != "start"
        {
            continue;
        }
        let mut firsts = Vec::new();
        c.primitives_of(o.first, &mut firsts);
        let restarts_first = firsts.iter().any(|&x| {
            let r = &c.resources[x];
            let target = a.node[x].filter(|_| a.next_role[x] != Role::Stopped);
            let changes = r.managed && (r.running_on.first().copied() != target || r.failed);
            changes && target.is_some() && basic_migration(c, a, x, false).is_none()
        });
        if restarts_first {
            return None;
        }
    }
    Some(m)
}

fn basic_migration(
    c: &Cluster,
    a: &Assignment,
    p: RscIx,
    restart: bool,
) -> Option<(NodeIx, NodeIx)> {
    let rsc = &c.resources[p];
    if !rsc.is_primitive()
        || !rsc.managed
        || rsc.parent.is_some()
        || rsc.failed
        || restart
        || rsc.running_on.len() != 1
        || !truthy(rsc.meta.get("allow-migrate"))
        || a.next_role[p] == Role::Stopped
        || matches!(rsc.role, Role::Promoted)
    {
        return None;
    }
    let src = rsc.running_on[0];
    let dst = a.node[p]?;
    let healthy = |n: NodeIx| c.nodes[n].online && !c.nodes[n].unclean;
    (src != dst && healthy(src) && healthy(dst)).then_some((src, dst))
}

fn plan(c: &Cluster, a: &Assignment, p: RscIx, restart: bool) -> Plan {
    let rsc = &c.resources[p];
    let mut pl = Plan::default();
    if !rsc.managed {
        return pl;
    }
    let target = a.node[p].filter(|_| a.next_role[p] != Role::Stopped);
    let next = a.next_role[p];
    if let Some(m) = migration(c, a, p, restart) {
        pl.migrate = Some(m);
        pl.stop.push((m.0, false));
        return pl;
    }
    let fenced = |n: NodeIx| c.nodes[n].unclean;
    // Active on several nodes: stopped everywhere, started once (multiple-active=stop_start).
    let multiple = rsc.running_on.len() > 1;
    for &n in &rsc.running_on {
        if !c.nodes[n].online && !fenced(n) {
            // Gone cleanly: nothing can run there, and nothing needs to.
            continue;
        }
        if Some(n) != target || rsc.failed || restart || multiple {
            pl.stop.push((n, fenced(n) || !c.nodes[n].online));
            if rsc.role == Role::Promoted {
                pl.demote.push((n, fenced(n) || !c.nodes[n].online));
            }
        } else if rsc.role == Role::Promoted && next != Role::Promoted {
            pl.demote.push((n, false));
        }
    }
    if let Some(t) = target.filter(|&t| c.nodes[t].online && !c.nodes[t].unclean) {
        let stopped_here = pl.stop.iter().any(|&(n, _)| n == t);
        let running_here = rsc.running_on.contains(&t) && c.nodes[t].online;
        if !running_here || stopped_here {
            pl.start = Some(t);
        }
        // A promoted instance restarted in place only because of an ordering gets
        // no promote: it was created optional (the instance stays promoted), and
        // `start then promote` (pe_order_runnable_left) does not make it mandatory;
        // the revised status shows it unpromoted (output.rs, rows_revised).
        let restarted_by_order = restart
            && running_here
            && rsc.role == Role::Promoted
            && !super::output::definition_restart(c, p);
        if next == Role::Promoted
            && !restarted_by_order
            && (pl.start.is_some() || rsc.role != Role::Promoted || !running_here)
        {
            pl.promote = Some(t);
        }
    }
    pl
}

/// The builder's hash maps are only looked up, never iterated (so the order does not
/// matter), and their keys are the cluster's own action keys: FxHash, as SipHash's
/// flood resistance costs more than it buys here.
type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

struct Builder<'a> {
    c: &'a Cluster,
    a: &'a Assignment,
    actions: Vec<GraphAction>,
    /// Actions by node, then key (looked up by `&str`, without a copy of the key).
    index: FastMap<Option<NodeIx>, FastMap<String, usize>>,
    edges: BTreeSet<(usize, usize)>,
    /// Per primitive: its actions by task.
    by_rsc: BTreeMap<RscIx, Vec<usize>>,
    /// The node a (pseudo) instance action concerns, for interleaved orders.
    host: FastMap<usize, NodeIx>,
    /// Actions dropped from the graph (unrunnable).
    removed: BTreeSet<usize>,
    /// Primitives restarted in place.
    restart: &'a [bool],
    /// Instances whose promotion is blocked ([`blocked_promotions`]).
    blocked_promotions: Vec<RscIx>,
}

impl<'a> Builder<'a> {
    fn add(
        &mut self,
        key: String,
        task: &str,
        interval_ms: i64,
        rsc: Option<RscIx>,
        node: Option<NodeIx>,
        kind: ActionKind,
    ) -> usize {
        if let Some(&i) = self.index.get(&node).and_then(|m| m.get(&key)) {
            return i;
        }
        let i = self.actions.len();
        self.actions.push(GraphAction {
            key: key.clone(),
            task: task.to_string(),
            interval_ms,
            rsc,
            node,
            kind,
            target_rc: None,
        });
        self.index.entry(node).or_default().insert(key, i);
        if let Some(r) = rsc {
            self.by_rsc.entry(r).or_default().push(i);
        }
        if let Some(n) = node {
            self.host.insert(i, n);
        }
        i
    }

    /// Drop action `i` (and its edges) from the graph: it stays in `actions` as a
    /// tombstone until [`Builder::finish`] compacts the graph.
    fn remove(&mut self, i: usize) {
        self.removed.insert(i);
    }

    fn find(&self, key: &str, node: Option<NodeIx>) -> Option<usize> {
        let i = self.index.get(&node).and_then(|m| m.get(key)).copied();
        if i.map(|i| self.removed.contains(&i)).unwrap_or(false) {
            return None;
        }
        i
    }

    fn edge(&mut self, before: usize, after: usize) {
        if before != after && !self.removed.contains(&before) && !self.removed.contains(&after) {
            self.edges.insert((before, after));
        }
    }

    /// Actions of resource `r` (primitive) with `task`.
    fn of(&self, r: RscIx, task: &str) -> Vec<usize> {
        self.by_rsc
            .get(&r)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|&i| self.actions[i].task == task && self.actions[i].interval_ms == 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The probes of every primitive under `r`.
    fn probes_of(&self, r: RscIx) -> Vec<usize> {
        let mut prims = Vec::new();
        self.c.primitives_of(r, &mut prims);
        prims
            .iter()
            .filter_map(|p| self.by_rsc.get(p))
            .flatten()
            .copied()
            .filter(|&i| self.actions[i].target_rc == Some(7))
            .collect()
    }

    /// The stops of every primitive under `r`.
    fn stops_of(&self, r: RscIx) -> Vec<usize> {
        let mut prims = Vec::new();
        self.c.primitives_of(r, &mut prims);
        prims.iter().flat_map(|&p| self.of(p, "stop")).collect()
    }

    /// Probes of `first` before `then` when `first`'s stop is ordered before
    /// `then` (Pacemaker's "order first probes imply stops": the probe might find
    /// `first` active where it must be stopped first).
    fn probes_before(&mut self, first: RscIx, then: &[usize]) {
        for pr in self.probes_of(first) {
            for &t in then {
                self.edge(pr, t);
            }
        }
    }

    /// The name a resource's operations go by: anonymous clone instances drop `:N`.
    fn name(&self, r: RscIx) -> &'a str {
        let rsc = &self.c.resources[r];
        let top = self.c.top_of(r);
        if rsc.is_primitive()
            && top != r
            && matches!(
                self.c.resources[top].kind,
                Kind::Clone { unique: false, .. }
            )
        {
            &rsc.base
        } else {
            &rsc.id
        }
    }

    fn op(&mut self, p: RscIx, task: &str, node: NodeIx) -> usize {
        let key = format!("{}_{task}_0", self.name(p));
        self.add(key, task, 0, Some(p), Some(node), ActionKind::Resource)
    }

    fn pseudo(&mut self, r: RscIx, task: &str) -> usize {
        let key = format!("{}_{task}_0", self.c.resources[r].id);
        self.add(key, task, 0, Some(r), None, ActionKind::Pseudo)
    }
}

/// The "-ed" form of a collective action (`start` → `running`).
fn done_of(task: &str) -> &'static str {
    match task {
        "start" => "running",
        "stop" => "stopped",
        "promote" => "promoted",
        _ => "demoted",
    }
}

fn invert(task: &str) -> Option<&'static str> {
    match task {
        "start" => Some("stop"),
        "stop" => Some("start"),
        "promote" => Some("demote"),
        "demote" => Some("promote"),
        _ => None,
    }
}

/// Build the transition graph for `c` scheduled as `a`; `restart[p]` marks the
/// primitives restarted in place (see [`super::output`]).
pub fn build(c: &Cluster, a: &Assignment, restart: &[bool]) -> Transition {
    let mut b = Builder {
        c,
        a,
        actions: Vec::new(),
        index: FastMap::default(),
        edges: BTreeSet::new(),
        by_rsc: BTreeMap::new(),
        host: FastMap::default(),
        removed: BTreeSet::new(),
        restart,
        blocked_promotions: blocked_promotions(c, a),
    };
    let fenced = fenced_nodes(c);
    let fence_ix: Vec<usize> = fenced
        .iter()
        .map(|&n| {
            b.add(
                format!("stonith-{}-reboot", c.nodes[n].name),
                "stonith",
                0,
                None,
                Some(n),
                ActionKind::Fence,
            )
        })
        .collect();
    // Fencing is serialised unless concurrent-fencing is set; the DC is fenced last
    // either way.
    let is_dc = |n: NodeIx| is_dc(c, n);
    let mut seq: Vec<usize> = (0..fenced.len()).filter(|&k| !is_dc(fenced[k])).collect();
    let dc: Vec<usize> = (0..fenced.len()).filter(|&k| is_dc(fenced[k])).collect();
    if !c.options.concurrent_fencing {
        for w in seq.windows(2) {
            b.edge(fence_ix[w[0]], fence_ix[w[1]]);
        }
    }
    for &d in &dc {
        for &k in &seq {
            b.edge(fence_ix[k], fence_ix[d]);
        }
    }
    seq.extend(dc);
    let mut prims: Vec<RscIx> = Vec::new();
    for &t in &c.top {
        c.primitives_of(t, &mut prims);
    }
    let plans: BTreeMap<RscIx, Plan> = prims
        .iter()
        .map(|&p| (p, plan(c, a, p, restart.get(p).copied().unwrap_or(false))))
        .collect();

    // A node whose (pre-1.1.14) `probe_complete` attribute is false is re-probed as a
    // whole (`probe_again-<node>`, pcmk__schedule_probes) instead of per resource.
    let reprobe = |n: NodeIx| {
        c.nodes[n]
            .attrs
            .get("probe_complete")
            .map(|v| !truthy(Some(v)))
            .unwrap_or(false)
    };
    for n in 0..c.nodes.len() {
        if c.nodes[n].online && !c.nodes[n].unclean && reprobe(n) {
            b.add(
                format!("probe_again-{}", c.nodes[n].name),
                "probe_again",
                0,
                None,
                Some(n),
                ActionKind::Resource,
            );
        }
    }
    // Probes: one per primitive (per anonymous clone and member) and node without history.
    let mut probed: BTreeSet<(RscIx, String, NodeIx)> = BTreeSet::new();
    for &p in prims.iter().filter(|_| c.options.startup_probes) {
        let rsc = &c.resources[p];
        if rsc.orphan {
            continue;
        }
        let top = c.top_of(p);
        let anon = top != p && matches!(c.resources[top].kind, Kind::Clone { unique: false, .. });
        for nd in 0..c.nodes.len() {
            let node = &c.nodes[nd];
            if !node.online
                || node.unclean
                || node.maintenance
                || c.options.maintenance_mode
                || reprobe(nd)
            {
                continue;
            }
            let known = if anon {
                let mut all = Vec::new();
                c.primitives_of(top, &mut all);
                all.iter().any(|&x| {
                    c.resources[x].base == rsc.base
                        && (c.resources[x].known_on.contains(&nd)
                            || c.resources[x].running_on.contains(&nd))
                })
            } else {
                rsc.known_on.contains(&nd) || rsc.running_on.contains(&nd)
            };
            if known {
                continue;
            }
            if anon && !probed.insert((top, rsc.base.clone(), nd)) {
                continue;
            }
            let key = format!("{}_monitor_0", b.name(p));
            let i = b.add(key, "monitor", 0, Some(p), Some(nd), ActionKind::Resource);
            b.actions[i].target_rc = Some(7);
        }
    }

    // Per-primitive actions and their own orderings.
    let mut top_probes: Vec<(usize, RscIx)> = Vec::new();
    for (&p, pl) in &plans {
        let rsc = &c.resources[p];
        let mut demotes = Vec::new();
        for &(n, pseudo) in &pl.demote {
            demotes.push(if pseudo {
                b.pseudo(p, "demote")
            } else {
                b.op(p, "demote", n)
            });
            if pseudo {
                if let Some(k) = fenced.iter().position(|&f| f == n) {
                    let d = *demotes.last().unwrap_or(&0);
                    b.edge(fence_ix[k], d);
                }
            }
        }
        let mut stops = Vec::new();
        for &(n, pseudo) in &pl.stop {
            let s = if pseudo {
                b.pseudo(p, "stop")
            } else {
                b.op(p, "stop", n)
            };
            b.host.insert(s, n);
            // The fence stops it; only what requires fencing waits for it.
            if pseudo && requires_fencing(c, p) {
                if let Some(k) = fenced.iter().position(|&f| f == n) {
                    b.edge(fence_ix[k], s);
                }
            }
            for &d in &demotes {
                b.edge(d, s);
            }
            stops.push(s);
        }
        let mut starts = Vec::new();
        if let Some((src, dst)) = pl.migrate {
            let to = b.op(p, "migrate_to", src);
            let from = b.op(p, "migrate_from", dst);
            let start = b.pseudo(p, "start");
            b.host.insert(start, dst);
            b.edge(to, from);
            b.edge(from, start);
            for &s in &stops {
                b.edge(from, s);
                b.edge(s, start);
            }
            starts.push(start);
        }
        if let Some(t) = pl.start {
            let s = b.op(p, "start", t);
            for &x in &stops {
                b.edge(x, s);
            }
            starts.push(s);
        }
        if let Some(t) = pl.promote {
            let pr = b.op(p, "promote", t);
            for &s in &starts {
                b.edge(s, pr);
            }
            for &d in &demotes {
                b.edge(d, pr);
            }
        }
        // Probes before the start (and the migration); for clone instances, before
        // the clone's start (added below).
        let probes = b.probes_of(p);
        for &pr in &probes {
            for &s in &starts {
                b.edge(pr, s);
            }
            if let Some((src, _)) = pl.migrate {
                if let Some(to) = b.find(&format!("{}_migrate_to_0", b.name(p)), Some(src)) {
                    b.edge(pr, to);
                }
            }
            let top = c.top_of(p);
            if top != p && c.resources[top].is_clone() {
                top_probes.push((pr, top));
            }
        }
        // Fencing before any start of what requires it, and of what has no history
        // on the fenced node (it cannot be probed there: the fence tells).
        for (k, &n) in fenced.iter().enumerate() {
            if requires_fencing(c, p) || !rsc.known_on.contains(&n) {
                for &s in &starts {
                    b.edge(fence_ix[k], s);
                }
            }
        }
        clear_failcounts(&mut b, p, &stops);
        cancels(&mut b, p, pl, &stops);
        let reload = reload(&mut b, p, pl, &stops);
        definition_cancels(&mut b, p, &stops);
        recurring_monitors(&mut b, p, pl, &starts, &stops, reload);
        let _ = rsc;
    }

    // The history of what is no longer configured (and not active) is deleted.
    if c.options.stop_orphan_resources {
        for (n, id) in &c.orphan_history {
            if c.nodes[*n].online && !c.nodes[*n].unclean {
                b.add(
                    format!("{id}_delete_0"),
                    "delete",
                    0,
                    None,
                    Some(*n),
                    ActionKind::Resource,
                );
            }
        }
    }
    history_deletes(&mut b);
    groups(&mut b, &plans);
    clones(&mut b);
    for (pr, top) in top_probes {
        if let Some(st) = b.find(&format!("{}_start_0", c.resources[top].id), None) {
            b.edge(pr, st);
        }
    }
    orders(&mut b);
    load_stopped(&mut b, &plans);
    shutdowns(&mut b, &fence_ix, &fenced);

    b.finish()
}

impl Builder<'_> {
    /// Compact: drop removed actions, renumber, sort the edges.
    fn finish(self) -> Transition {
        let mut map = vec![usize::MAX; self.actions.len()];
        let mut actions = Vec::with_capacity(self.actions.len());
        for (i, a) in self.actions.into_iter().enumerate() {
            if !self.removed.contains(&i) {
                map[i] = actions.len();
                actions.push(a);
            }
        }
        let mut edges: Vec<(usize, usize)> = self
            .edges
            .into_iter()
            .filter(|&(x, y)| map[x] != usize::MAX && map[y] != usize::MAX)
            .map(|(x, y)| (map[x], map[y]))
            .collect();
        edges.sort_unstable();
        Transition { actions, edges }
    }
}

/// A role change in place cancels the recurring monitors of the old role first
/// (`cancel` actions carry the monitor's key).
fn cancels(b: &mut Builder<'_>, p: RscIx, pl: &Plan, stops: &[usize]) {
    let c = b.c;
    let rsc = &c.resources[p];
    let name = b.name(p);
    let stopping = |n: NodeIx| stops.iter().any(|s| b.host.get(s) == Some(&n));
    let mut changes: Vec<(NodeIx, Role, &str)> = Vec::new();
    if let Some(t) = pl.promote {
        if pl.start.is_none() && rsc.running_on.contains(&t) {
            changes.push((t, Role::Unpromoted, "promote"));
        }
    }
    for &(n, pseudo) in &pl.demote {
        if !pseudo && !stopping(n) {
            changes.push((n, Role::Promoted, "demote"));
        }
    }
    for (n, old_role, task) in changes {
        let Some(x) = b
            .of(p, task)
            .into_iter()
            .find(|&x| b.actions[x].node == Some(n))
        else {
            continue;
        };
        let mut ivs: Vec<i64> = rsc
            .monitors_on
            .iter()
            .filter(|&&(nd, _)| nd == n)
            .map(|&(_, iv)| iv)
            .filter(|iv| {
                let same: Vec<&OpDef> = rsc
                    .ops
                    .iter()
                    .filter(|o| o.name == "monitor" && o.interval_ms == *iv)
                    .collect();
                same.len() == 1
                    && (same[0].role == old_role
                        || (same[0].role == Role::Unknown && old_role == Role::Unpromoted))
            })
            .collect();
        ivs.sort_unstable();
        ivs.dedup();
        for iv in ivs {
            let k = b.add(
                format!("{name}_monitor_{iv}"),
                "cancel",
                iv,
                Some(p),
                Some(n),
                ActionKind::Resource,
            );
            b.edge(k, x);
        }
    }
}

/// The agent reload a changed definition asks for (`schedule_reload` in
/// pcmk_sched_actions.c): only for a managed, healthy resource that stays where it is
/// and is neither stopped nor demoted there (a required stop or demote cancels it).
/// Probes come first, as for a start.
fn reload(b: &mut Builder<'_>, p: RscIx, pl: &Plan, stops: &[usize]) -> Option<usize> {
    let c = b.c;
    let rsc = &c.resources[p];
    let n = rsc
        .definition_changes
        .iter()
        .find(|d| d.kind == ChangeKind::Reload)?
        .node;
    let stays = b.a.node[p] == Some(n) && b.a.next_role[p] != Role::Stopped;
    if !rsc.managed
        || rsc.failed
        || !stays
        || b.restart.get(p).copied().unwrap_or(false)
        || pl.start.is_some()
        || pl.demote.iter().any(|&(d, _)| d == n)
        || stops.iter().any(|s| b.host.get(s) == Some(&n))
    {
        return None;
    }
    let name = b.name(p);
    let r = b.add(
        format!("{name}_reload-agent_0"),
        "reload-agent",
        0,
        Some(p),
        Some(n),
        ActionKind::Resource,
    );
    let probes = b.probes_of(p);
    for pr in probes {
        b.edge(pr, r);
    }
    Some(r)
}

/// History clean-ups (`pcmk__schedule_cleanup`): `<rsc>_delete_0` on the node, after
/// every stop of the resource and before every start of it.
fn history_deletes(b: &mut Builder<'_>) {
    let c = b.c;
    for p in 0..c.resources.len() {
        let rsc = &c.resources[p];
        for d in &rsc.definition_changes {
            if d.kind != ChangeKind::Delete {
                continue;
            }
            let x = b.add(
                format!("{}_delete_0", rsc.id),
                "delete",
                0,
                Some(p),
                Some(d.node),
                ActionKind::Resource,
            );
            for s in b.of(p, "stop") {
                b.edge(s, x);
            }
            for s in b.of(p, "start") {
                b.edge(x, s);
            }
        }
    }
}

/// `clear_failcount` (`pe__clear_failcount`): where the resource's failures expired
/// (`failure-timeout`), or where an operation's definition changed and a fail count
/// is in effect; and of an orphan (top-level, with stop-orphan-resources) on every
/// online node where it has a fail count, before its stop
/// (`clear_failcounts_if_orphaned` in pcmk_sched_allocate.c). Otherwise no ordering.
fn clear_failcounts(b: &mut Builder<'_>, p: RscIx, stops: &[usize]) {
    let c = b.c;
    let rsc = &c.resources[p];
    let mut nodes: Vec<NodeIx> = rsc.clear_failcount_on.clone();
    let orphan = rsc.orphan && rsc.parent.is_none() && c.options.stop_orphan_resources;
    if orphan {
        nodes.extend(
            rsc.failcount
                .iter()
                .filter(|(_, &v)| v != 0)
                .map(|(&n, _)| n),
        );
    }
    for &n in &rsc.definition_changed_on {
        if rsc.failcount.get(&n).copied().unwrap_or(0) != 0 {
            nodes.push(n);
        }
    }
    nodes.sort_unstable();
    nodes.dedup();
    for n in nodes {
        if !c.nodes[n].online || c.nodes[n].unclean {
            continue;
        }
        let x = b.add(
            format!("{}_clear_failcount_0", rsc.id),
            "clear_failcount",
            0,
            Some(p),
            Some(n),
            ActionKind::NodeEvent,
        );
        if orphan {
            for &s in stops {
                b.edge(x, s);
            }
        }
    }
}

/// Recurring operations that the history runs but the configuration no longer has
/// (or that maintenance suspends) are cancelled (`pcmk__schedule_cancel`), after a
/// stop of the resource on that node (`pcmk__new_ordering(rsc, stop_key, ..., cancel)`).
fn definition_cancels(b: &mut Builder<'_>, p: RscIx, stops: &[usize]) {
    let c = b.c;
    let rsc = &c.resources[p];
    let name = b.name(p);
    for d in &rsc.definition_changes {
        if d.kind != ChangeKind::Cancel || !d.task_is_monitor {
            continue;
        }
        let x = b.add(
            format!("{name}_monitor_{}", d.interval_ms),
            "cancel",
            d.interval_ms,
            Some(p),
            Some(d.node),
            ActionKind::Resource,
        );
        for &st in stops {
            if b.host.get(&st) == Some(&d.node) {
                b.edge(st, x);
            }
        }
    }
}

fn recurring_monitors(
    b: &mut Builder<'_>,
    p: RscIx,
    pl: &Plan,
    starts: &[usize],
    stops: &[usize],
    reload: Option<usize>,
) {
    let c = b.c;
    let rsc = &c.resources[p];
    if !rsc.managed || b.blocked_promotions.contains(&p) {
        return;
    }
    let target = b.a.node[p].filter(|_| b.a.next_role[p] != Role::Stopped);
    let next = b.a.next_role[p];
    let promotable = matches!(
        c.resources[c.top_of(p)].kind,
        Kind::Clone {
            promotable: true,
            ..
        }
    );
    let name = b.name(p);
    let mut seen = BTreeSet::new();
    for op in &rsc.ops {
        if op.name != "monitor" || op.interval_ms <= 0 || !seen.insert((op.interval_ms, op.role)) {
            continue;
        }
        // Two monitors with the same interval are a configuration error Pacemaker
        // refuses: neither is scheduled.
        let same = rsc
            .ops
            .iter()
            .filter(|o| o.name == "monitor" && o.interval_ms == op.interval_ms)
            .count();
        if same > 1 {
            continue;
        }
        let key = format!("{name}_monitor_{}", op.interval_ms);
        if op.role == Role::Stopped {
            for nd in 0..c.nodes.len() {
                let node = &c.nodes[nd];
                if !node.online || node.unclean || Some(nd) == target {
                    continue;
                }
                let stops_here = pl.stop.iter().any(|&(n, _)| n == nd);
                if rsc.monitors_on.contains(&(nd, op.interval_ms)) && !stops_here {
                    continue;
                }
                let m = b.add(
                    key.clone(),
                    "monitor",
                    op.interval_ms,
                    Some(p),
                    Some(nd),
                    ActionKind::Resource,
                );
                for &s in stops {
                    if b.host.get(&s) == Some(&nd) {
                        b.edge(s, m);
                    }
                }
                if let Some(pr) = b.find(&format!("{name}_monitor_0"), Some(nd)) {
                    b.edge(pr, m);
                }
            }
            continue;
        }
        let Some(t) = target else { continue };
        let matches_role = match op.role {
            // A monitor without a role, on a promotable resource, is the unpromoted
            // one (the promoted instance reports rc 8 to it).
            Role::Unknown => !promotable || next != Role::Promoted,
            Role::Promoted => next == Role::Promoted,
            Role::Unpromoted => promotable && next != Role::Promoted,
            Role::Started => !promotable && next != Role::Promoted,
            Role::Stopped => false,
        };
        if !matches_role {
            continue;
        }
        // A monitor the history already runs on that node is kept unless the
        // resource (re)starts or changes role there.
        let role_changes = pl.promote.is_some() || pl.demote.iter().any(|&(n, _)| n == t);
        // A changed definition re-creates the monitor (its digest differs, or the
        // resource is reloaded).
        let rescheduled = reload.is_some()
            || rsc.definition_changes.iter().any(|d| {
                d.kind == ChangeKind::Reschedule && d.node == t && d.interval_ms == op.interval_ms
            });
        let fresh = !starts.is_empty() || role_changes || rescheduled;
        if !fresh && rsc.monitors_on.contains(&(t, op.interval_ms)) {
            continue;
        }
        let m = b.add(
            key,
            "monitor",
            op.interval_ms,
            Some(p),
            Some(t),
            ActionKind::Resource,
        );
        for &s in starts.iter().chain(reload.iter()) {
            b.edge(s, m);
        }
        for task in ["promote", "demote"] {
            for x in b.of(p, task) {
                if b.actions[x].node == Some(t) {
                    b.edge(x, m);
                }
            }
        }
    }
}

/// Group pseudo actions and the members' sequence.
fn groups(b: &mut Builder<'_>, plans: &BTreeMap<RscIx, Plan>) {
    let c = b.c;
    for g in 0..c.resources.len() {
        if c.resources[g].kind != Kind::Group {
            continue;
        }
        let members = c.resources[g].children.clone();
        let acts = |b: &Builder<'_>, m: RscIx, task: &str| b.of(m, task);
        let any =
            |b: &Builder<'_>, task: &str| members.iter().any(|&m| !acts(b, m, task).is_empty());
        let will_run = members.iter().any(|&m| {
            b.a.node[m].is_some() && b.a.next_role[m] != Role::Stopped && c.resources[m].managed
        });
        let has_stop = any(b, "stop");
        let has_start = any(b, "start");
        let _ = plans;
        let anchor = |b: &mut Builder<'_>, task: &str, reverse: bool| {
            let begin = b.pseudo(g, task);
            let end = b.pseudo(g, done_of(task));
            b.edge(begin, end);
            let mut prev: Vec<usize> = Vec::new();
            let order: Vec<RscIx> = if reverse {
                members.iter().rev().copied().collect()
            } else {
                members.clone()
            };
            for m in order {
                let xs = acts(b, m, task);
                if xs.is_empty() {
                    continue;
                }
                for &x in &xs {
                    b.edge(begin, x);
                    b.edge(x, end);
                    if let Some(&h) = b.host.get(&x) {
                        b.host.insert(begin, h);
                        b.host.insert(end, h);
                    }
                    for &pv in &prev {
                        b.edge(pv, x);
                    }
                }
                prev = xs;
            }
            (begin, end)
        };
        let stop = if has_stop {
            Some(anchor(b, "stop", true))
        } else {
            None
        };
        // A member stopped by its target-role keeps the group's start pseudo action
        // (group stopped → start); one that just cannot run anywhere does not.
        let disabled_stop = members
            .iter()
            .any(|&m| c.resources[m].target_role == Role::Stopped && !b.of(m, "stop").is_empty());
        let all_run = members.iter().all(|&m| {
            !c.resources[m].managed || (b.a.node[m].is_some() && b.a.next_role[m] != Role::Stopped)
        });
        let start = if has_start
            || (has_stop && will_run && disabled_stop && c.resources[g].parent.is_none())
        {
            let (st, running) = anchor(b, "start", false);
            if !all_run {
                // A member that cannot start makes `running` unrunnable: Pacemaker
                // leaves it out of the graph.
                b.remove(running);
            }
            Some((st, running))
        } else {
            None
        };
        if let (Some((_, stopped)), Some((st, _))) = (stop, start) {
            b.edge(stopped, st);
        }
        for (i, &m0) in members.iter().enumerate() {
            for &m1 in &members[i + 1..] {
                let s1 = b.stops_of(m1);
                b.probes_before(m0, &s1);
            }
            if let Some(&m1) = members.get(i + 1) {
                let s0 = b.stops_of(m0);
                b.probes_before(m1, &s0);
            }
        }
        if let Some((_, stopped)) = stop {
            for &m in &members {
                b.probes_before(m, &[stopped]);
            }
        }
    }
}

/// The action an instance (primitive or group) of a clone exposes for `task`:
/// (then-side, first-side) anchors.
fn instance_anchor(b: &Builder<'_>, inst: RscIx, task: &str) -> (Vec<usize>, Vec<usize>) {
    let c = b.c;
    if c.resources[inst].is_primitive() {
        let v = b.of(inst, task);
        return (v.clone(), v);
    }
    let key = |t: &str| format!("{}_{t}_0", c.resources[inst].id);
    let begin = b.find(&key(task), None);
    let end = b.find(&key(done_of(task)), None);
    let mut prims = Vec::new();
    c.primitives_of(inst, &mut prims);
    if begin.is_none() {
        // No group pseudo action (promote/demote of groups): the members' actions.
        let v: Vec<usize> = prims.iter().flat_map(|&p| b.of(p, task)).collect();
        return (v.clone(), v);
    }
    (begin.into_iter().collect(), end.into_iter().collect())
}

/// Clone pseudo actions, their internal orderings and notifications.
fn clones(b: &mut Builder<'_>) {
    let c = b.c;
    for cl in 0..c.resources.len() {
        let Kind::Clone { .. } = c.resources[cl].kind else {
            continue;
        };
        let insts = c.resources[cl].children.clone();
        let notify = truthy(c.resources[cl].meta.get("notify"));
        let will_run = insts.iter().any(|&i| {
            let mut ps = Vec::new();
            c.primitives_of(i, &mut ps);
            ps.iter().any(|&p| {
                b.a.node[p].is_some() && b.a.next_role[p] != Role::Stopped && c.resources[p].managed
            })
        });
        let mut present: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let has = |b: &Builder<'_>, task: &str| {
            insts
                .iter()
                .any(|&i| !instance_anchor(b, i, task).0.is_empty())
        };
        let has_stop = has(b, "stop");
        // A clone that only stops instances still gets its start/running pseudo
        // actions when a resource ordered after its start restarts for it.
        let restarts_then = c.orders.iter().any(|o| {
            o.first == cl && o.first_action == "start" && o.kind == OrderKind::Mandatory && {
                let mut ps = Vec::new();
                c.primitives_of(o.then, &mut ps);
                ps.iter()
                    .any(|&p| b.restart.get(p).copied().unwrap_or(false))
            }
        });
        for task in ["stop", "demote", "start", "promote"] {
            let needed = has(b, task) || (task == "start" && has_stop && will_run && restarts_then);
            if !needed {
                continue;
            }
            let begin = b.pseudo(cl, task);
            let end = b.pseudo(cl, done_of(task));
            b.edge(begin, end);
            for &i in &insts {
                let (then_side, first_side) = instance_anchor(b, i, task);
                for x in then_side {
                    b.edge(begin, x);
                }
                for x in first_side {
                    b.edge(x, end);
                }
            }
            present.insert(task, (begin, end));
        }
        // ordered=true: instances start one after the other, stop in reverse.
        if truthy(c.resources[cl].meta.get("ordered")) {
            for (task, rev) in [("start", false), ("stop", true)] {
                let mut seq: Vec<RscIx> = insts.clone();
                if rev {
                    seq.reverse();
                }
                let mut prev: Vec<usize> = Vec::new();
                for i in seq {
                    let (then_side, first_side) = instance_anchor(b, i, task);
                    if then_side.is_empty() {
                        continue;
                    }
                    for &p in &prev {
                        for &x in &then_side {
                            b.edge(p, x);
                        }
                    }
                    prev = first_side;
                }
            }
        }
        // Probes of the instances come before the clone counts as stopped.
        if let Some(&(_, stopped)) = present.get("stop") {
            b.probes_before(cl, &[stopped]);
        }
        // Internal orderings: (first done, then begin).
        let internal = [
            ("stop", "start"),
            ("stop", "promote"),
            ("demote", "start"),
            ("start", "promote"),
            ("demote", "stop"),
            ("demote", "promote"),
        ];
        for (f, t) in internal {
            if let (Some(&(_, fe)), Some(&(tb, _))) = (present.get(f), present.get(t)) {
                b.edge(fe, tb);
            }
        }
        // Instances: demote before stop, start before promote (already per primitive).
        if !notify {
            continue;
        }
        let id = c.resources[cl].id.clone();
        let mut chain: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
        for (&task, &(begin, end)) in &present {
            let done = done_of(task);
            let pre = b.add(
                format!("{id}_pre_notify_{task}_0"),
                "notify",
                0,
                Some(cl),
                None,
                ActionKind::Pseudo,
            );
            let cpre = b.add(
                format!("{id}_confirmed-pre_notify_{task}_0"),
                "notified",
                0,
                Some(cl),
                None,
                ActionKind::Pseudo,
            );
            let post = b.add(
                format!("{id}_post_notify_{done}_0"),
                "notify",
                0,
                Some(cl),
                None,
                ActionKind::Pseudo,
            );
            let cpost = b.add(
                format!("{id}_confirmed-post_notify_{done}_0"),
                "notified",
                0,
                Some(cl),
                None,
                ActionKind::Pseudo,
            );
            b.edge(pre, cpre);
            b.edge(cpre, begin);
            b.edge(end, post);
            b.edge(post, cpost);
            b.edge(cpre, post);
            let mut prims = Vec::new();
            for &i in &insts {
                c.primitives_of(i, &mut prims);
            }
            for &p in &prims {
                let rsc = &c.resources[p];
                let name = b.name(p);
                // Who is notified: before stop/demote, the instances active now;
                // after stop/demote and before start, those that keep running;
                // before promote and after start/promote, those active afterwards.
                let now: Vec<NodeIx> = if rsc.managed {
                    rsc.running_on
                        .iter()
                        .copied()
                        .filter(|&n| c.nodes[n].online && !c.nodes[n].unclean)
                        .collect()
                } else {
                    Vec::new()
                };
                let stopping: Vec<NodeIx> = b
                    .of(p, "stop")
                    .iter()
                    .filter_map(|x| b.host.get(x).copied())
                    .collect();
                let kept: Vec<NodeIx> = now
                    .iter()
                    .copied()
                    .filter(|n| !stopping.contains(n))
                    .collect();
                let after_set: Vec<NodeIx> = if rsc.managed {
                    b.a.node[p]
                        .filter(|_| b.a.next_role[p] != Role::Stopped)
                        .into_iter()
                        .collect()
                } else {
                    rsc.running_on.first().copied().into_iter().collect()
                };
                let (pre_set, post_set) = match task {
                    "stop" | "demote" => (now.clone(), kept.clone()),
                    "start" => (kept.clone(), after_set),
                    _ => (after_set.clone(), after_set),
                };
                for n in pre_set {
                    let x = b.add(
                        format!("{name}_pre_notify_{task}_0"),
                        "notify",
                        0,
                        Some(p),
                        Some(n),
                        ActionKind::Resource,
                    );
                    b.edge(pre, x);
                    b.edge(x, cpre);
                }
                for n in post_set {
                    let after = Some(n);
                    if let Some(n) = after {
                        if c.nodes[n].online && !c.nodes[n].unclean {
                            let x = b.add(
                                format!("{name}_post_notify_{task}_0"),
                                "notify",
                                0,
                                Some(p),
                                Some(n),
                                ActionKind::Resource,
                            );
                            b.edge(post, x);
                            b.edge(x, cpost);
                        }
                    }
                }
            }
            chain.insert(task, (pre, cpre, post, cpost));
        }
        // Recurring monitors of the instances wait for the notifications.
        let mut prims = Vec::new();
        for &i in &insts {
            c.primitives_of(i, &mut prims);
        }
        for &p in &prims {
            let mons: Vec<usize> = b
                .by_rsc
                .get(&p)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&x| b.actions[x].interval_ms > 0 && b.actions[x].task == "monitor")
                        .collect()
                })
                .unwrap_or_default();
            for m in mons {
                for &(_, _, _, cpost) in chain.values() {
                    b.edge(cpost, m);
                }
            }
        }
        for (f, t) in internal {
            if let (Some(&(_, _, _, fcpost)), Some(&(tpre, _, _, _))) = (chain.get(f), chain.get(t))
            {
                b.edge(fcpost, tpre);
            }
        }
    }
}

/// Anchors of an order constraint's side: `first` uses the completed form of
/// collective actions (`running`, `stopped`, notifications confirmed), `then` the
/// beginning.
fn side(b: &Builder<'_>, r: RscIx, task: &str, first: bool) -> Vec<usize> {
    let c = b.c;
    let rsc = &c.resources[r];
    if rsc.is_primitive() {
        return b.of(r, task);
    }
    let id = &rsc.id;
    if first {
        if rsc.is_clone() && truthy(rsc.meta.get("notify")) {
            if let Some(x) = b.find(
                &format!("{id}_confirmed-post_notify_{}_0", done_of(task)),
                None,
            ) {
                return vec![x];
            }
        }
        b.find(&format!("{id}_{}_0", done_of(task)), None)
            .into_iter()
            .collect()
    } else {
        b.find(&format!("{id}_{task}_0"), None)
            .into_iter()
            .collect()
    }
}

/// Per-node anchors of a clone's instances for interleaved orders.
fn per_node(b: &Builder<'_>, cl: RscIx, task: &str, first: bool) -> Vec<(NodeIx, usize)> {
    let c = b.c;
    let mut out = Vec::new();
    for &i in &c.resources[cl].children {
        let (then_side, first_side) = instance_anchor(b, i, task);
        for x in if first { first_side } else { then_side } {
            if let Some(&n) = b.host.get(&x) {
                out.push((n, x));
            }
        }
    }
    out
}

fn orders(b: &mut Builder<'_>) {
    let c = b.c;
    // -INFINITY colocations of primitives: on a node, what leaves it (stop) or is
    // looked for there (probe) comes before the other starts there.
    for col in &c.colocations {
        if col.score > -super::score::INFINITY
            || !c.resources[col.dependent].is_primitive()
            || !c.resources[col.primary].is_primitive()
        {
            continue;
        }
        for (x, y) in [(col.dependent, col.primary), (col.primary, col.dependent)] {
            let starts = b.of(y, "start");
            let befores: Vec<usize> = b
                .by_rsc
                .get(&x)
                .map(|v| {
                    v.iter()
                        .copied()
                        .filter(|&i| {
                            b.actions[i].task == "stop" || b.actions[i].target_rc == Some(7)
                        })
                        .collect()
                })
                .unwrap_or_default();
            for &s in &starts {
                for &x in &befores {
                    if b.host.contains_key(&x) && b.host.get(&x) == b.actions[s].node.as_ref() {
                        b.edge(x, s);
                    }
                }
            }
        }
    }
    // -INFINITY colocations involving the promoted role order the loss of one role
    // before the gain of the other (Pacemaker's anti_colocation_order).
    for col in &c.colocations {
        let special = |r: Role| matches!(r, Role::Promoted | Role::Unpromoted);
        if col.score > -super::score::INFINITY
            || !(special(col.dependent_role) || special(col.primary_role))
        {
            continue;
        }
        let lose = |r: Role| match r {
            Role::Promoted => vec!["demote"],
            Role::Unpromoted => vec!["stop", "promote"],
            _ => vec!["stop"],
        };
        let gain = |r: Role| match r {
            Role::Promoted => vec!["promote"],
            Role::Unpromoted => vec!["start", "demote"],
            _ => vec!["start"],
        };
        for (f, fr, t, tr) in [
            (
                col.dependent,
                col.dependent_role,
                col.primary,
                col.primary_role,
            ),
            (
                col.primary,
                col.primary_role,
                col.dependent,
                col.dependent_role,
            ),
        ] {
            for fa in lose(fr) {
                for ta in gain(tr) {
                    let fs = side(b, f, fa, true);
                    let ts = side(b, t, ta, false);
                    for &x in &fs {
                        for &y in &ts {
                            b.edge(x, y);
                        }
                    }
                }
            }
        }
    }
    for o in &c.orders {
        if o.kind == OrderKind::Serialize {
            continue;
        }
        let mut pairs = vec![(
            o.first,
            o.first_action.as_str(),
            o.then,
            o.then_action.as_str(),
        )];
        // A migrating `then` stops only after its migrate_from, which already follows
        // `first`: Pacemaker drops the inverse order (it would be a cycle).
        let then_migrates = !b.of(o.then, "migrate_to").is_empty();
        if o.symmetrical && !then_migrates {
            if let (Some(fi), Some(ti)) = (invert(&o.first_action), invert(&o.then_action)) {
                pairs.push((o.then, ti, o.first, fi));
            }
        }
        // The deprecated `restart-type=restart` of `then` makes even an optional order
        // imply `then` (pe_order_implies_then in unpack_simple_rsc_order), so the
        // probes of `first` come before `then`'s stops too (order6).
        let restart_type = {
            let mut ps = Vec::new();
            c.primitives_of(o.then, &mut ps);
            !ps.is_empty()
                && ps.iter().all(|&p| {
                    c.resources[p].meta.get("restart-type").map(String::as_str) == Some("restart")
                })
        };
        if (o.kind == OrderKind::Mandatory || restart_type)
            && o.first_action == "start"
            && o.then_action == "start"
        {
            let stops = b.stops_of(o.then);
            if c.resources[o.first].is_clone() && c.resources[o.then].is_clone() {
                // Clone instances: only the probe on the node of the stop.
                for pr in b.probes_of(o.first) {
                    for &st in &stops {
                        if b.actions[pr].node.is_some()
                            && b.actions[pr].node == b.host.get(&st).copied()
                        {
                            b.edge(pr, st);
                        }
                    }
                }
            } else {
                b.probes_before(o.first, &stops);
            }
        }
        for (f, fa, t, ta) in pairs {
            let interleave = c.resources[f].is_clone()
                && matches!(
                    c.resources[t].kind,
                    Kind::Clone {
                        interleave: true,
                        ..
                    }
                );
            if interleave {
                let fs = per_node(b, f, fa, true);
                let ts = per_node(b, t, ta, false);
                for &(fn_, x) in &fs {
                    for &(tn, y) in &ts {
                        if fn_ == tn {
                            b.edge(x, y);
                        }
                    }
                }
            }
            let fs = side(b, f, fa, true);
            let ts = side(b, t, ta, false);
            for &x in &fs {
                for &y in &ts {
                    b.edge(x, y);
                }
            }
            if fa == "stop" && ta == "stop" {
                b.probes_before(f, &ts);
            }
            // A migrating `then` starts with migrate_to: it waits for the first's
            // migrate_from (both migrating) or start.
            if fa == "start" && ta == "start" && c.resources[t].is_primitive() {
                let to = b.of(t, "migrate_to");
                if !to.is_empty() {
                    let from = b.of(f, "migrate_from");
                    let before = if from.is_empty() {
                        b.of(f, "start")
                    } else {
                        from
                    };
                    for &x in &before {
                        for &y in &to {
                            b.edge(x, y);
                        }
                    }
                }
            }
        }
    }
}

/// Nodes shutting down cleanly (online, `shutdown` attribute set) get
/// Whether node `n` is the DC (its `#is_dc` attribute).
fn is_dc(c: &Cluster, n: NodeIx) -> bool {
    c.nodes[n].attrs.get("#is_dc").is_some_and(|v| v == "true")
}

/// `do_shutdown-<node>` after every stop there of a managed resource not in
/// maintenance (`pcmk__new_shutdown_action`, `pcmk__order_stops_before_shutdown`);
/// the DC's shutdown comes after the other shutdowns and after the last fencing
/// (`schedule_fencing_and_shutdowns`).
fn shutdowns(b: &mut Builder<'_>, fence_ix: &[usize], fenced: &[NodeIx]) {
    let c = b.c;
    let is_dc = |n: NodeIx| is_dc(c, n);
    let mut others = Vec::new();
    let mut dc = None;
    for n in 0..c.nodes.len() {
        let node = &c.nodes[n];
        if !node.online || node.unclean || !node.shutdown {
            continue;
        }
        let x = b.add(
            format!("do_shutdown-{}", node.name),
            "do_shutdown",
            0,
            None,
            Some(n),
            ActionKind::NodeEvent,
        );
        let stops: Vec<usize> = (0..b.actions.len())
            .filter(|&i| {
                let a = &b.actions[i];
                a.task == "stop"
                    && a.kind == ActionKind::Resource
                    && a.node == Some(n)
                    && !b.removed.contains(&i)
                    && a.rsc
                        .map(|r| {
                            let rsc = &c.resources[r];
                            (rsc.managed || rsc.blocked)
                                && !rsc
                                    .meta
                                    .get("maintenance")
                                    .map(|v| truthy(Some(v)))
                                    .unwrap_or(false)
                        })
                        .unwrap_or(false)
            })
            .collect();
        if !node.maintenance {
            for s in stops {
                b.edge(s, x);
            }
        }
        if is_dc(n) {
            dc = Some(x);
        } else {
            others.push(x);
        }
    }
    if let Some(d) = dc {
        for &o in &others {
            b.edge(o, d);
        }
        // After the last non-DC fencing (the chain's end without concurrent fencing).
        let non_dc: Vec<usize> = (0..fenced.len())
            .filter(|&k| !is_dc(fenced[k]))
            .map(|k| fence_ix[k])
            .collect();
        if c.options.concurrent_fencing {
            for &f in &non_dc {
                b.edge(f, d);
            }
        } else if let Some(&f) = non_dc.last() {
            b.edge(f, d);
        }
    }
}

/// `load_stopped_<node>`: with a utilization-aware strategy, what stops on a node
/// comes before what starts there.
fn load_stopped(b: &mut Builder<'_>, plans: &BTreeMap<RscIx, Plan>) {
    let c = b.c;
    if c.options.strategy == Strategy::Default {
        return;
    }
    let mut per_node: BTreeMap<NodeIx, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for n in 0..c.nodes.len() {
        if c.nodes[n].online && !c.nodes[n].unclean {
            per_node.insert(n, (Vec::new(), Vec::new()));
        }
    }
    for (&p, pl) in plans {
        if c.resources[p].utilization.is_empty() {
            continue;
        }
        for (i, &(n, _)) in pl.stop.iter().enumerate() {
            let _ = i;
            for s in b.of(p, "stop") {
                if b.host.get(&s) == Some(&n) {
                    per_node.entry(n).or_default().0.push(s);
                }
            }
        }
        if let Some(t) = pl.start {
            for s in b.of(p, "start") {
                per_node.entry(t).or_default().1.push(s);
            }
        }
    }
    for (n, (stops, starts)) in per_node {
        let key = format!("load_stopped_{}", c.nodes[n].name);
        let l = b.add(
            key,
            &format!("load_stopped_{}", c.nodes[n].name),
            0,
            None,
            None,
            ActionKind::Pseudo,
        );
        for s in stops {
            b.edge(s, l);
        }
        for s in starts {
            b.edge(l, s);
        }
    }
}

impl Transition {
    /// The actions in a valid execution order: a topological order of the edges,
    /// ties broken by action index. `None` if the graph has a cycle.
    pub fn topological_order(&self) -> Option<Vec<usize>> {
        let n = self.actions.len();
        let mut indeg = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &self.edges {
            indeg[b] += 1;
            out[a].push(b);
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &out[i] {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// Whether the graph has no cycle.
    pub fn is_acyclic(&self) -> bool {
        self.topological_order().is_some()
    }

    /// For every action, the set of actions reachable from it (transitive closure),
    /// as bitsets of `actions.len()` bits.
    pub fn reachability(&self) -> Vec<Vec<u64>> {
        let n = self.actions.len();
        let words = n.div_ceil(64);
        let mut reach = vec![vec![0u64; words]; n];
        let Some(order) = self.topological_order() else {
            return reach;
        };
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &self.edges {
            out[a].push(b);
        }
        for &i in order.iter().rev() {
            let mut acc = vec![0u64; words];
            for &j in &out[i] {
                acc[j / 64] |= 1 << (j % 64);
                for (w, x) in acc.iter_mut().zip(&reach[j]) {
                    *w |= *x;
                }
            }
            reach[i] = acc;
        }
        reach
    }

    /// The "Executing Cluster Transition" lines of `crm_simulate -S`, in
    /// [`Self::topological_order`].
    pub fn executed_text(&self, c: &Cluster) -> String {
        let mut s = String::new();
        let order = self
            .topological_order()
            .unwrap_or_else(|| (0..self.actions.len()).collect());
        for i in order {
            let a = &self.actions[i];
            match a.kind {
                ActionKind::Fence => {
                    let node = a.node.map(|n| c.nodes[n].name.as_str()).unwrap_or("");
                    let _ = writeln!(s, "  * Fencing {node} (reboot)");
                }
                ActionKind::NodeEvent => {
                    let node = a.node.map(|n| c.nodes[n].name.as_str()).unwrap_or("");
                    match a.rsc {
                        Some(r) => {
                            let rsc = &c.resources[r].id;
                            let _ =
                                writeln!(s, "  * Cluster action:  {} for {rsc} on {node}", a.task);
                        }
                        None => {
                            let _ = writeln!(s, "  * Cluster action:  {} on {node}", a.task);
                        }
                    }
                }
                ActionKind::Pseudo => {
                    let _ = writeln!(s, "  * Pseudo action:   {}", a.key);
                }
                ActionKind::Resource => {
                    let rsc = a.rsc.map(|r| c.resources[r].id.as_str()).unwrap_or("");
                    let node = a.node.map(|n| c.nodes[n].name.as_str()).unwrap_or("");
                    let task = if a.interval_ms > 0 {
                        format!("{}={}", a.task, a.interval_ms)
                    } else {
                        a.task.clone()
                    };
                    let _ = writeln!(s, "  * Resource action: {rsc:<15} {task} on {node}");
                }
            }
        }
        s
    }

    /// The graph in Pacemaker's `<transition_graph>` XML form (one synapse per action,
    /// its inputs being the actions ordered directly before it).
    pub fn to_pacemaker_xml(&self, c: &Cluster) -> String {
        let mut s = String::from(
            "<transition_graph cluster-delay=\"60s\" stonith-timeout=\"60s\" failed-stop-offset=\"INFINITY\" failed-start-offset=\"INFINITY\"  transition_id=\"0\">\n",
        );
        let mut inputs: Vec<Vec<usize>> = vec![Vec::new(); self.actions.len()];
        for &(a, b) in &self.edges {
            inputs[b].push(a);
        }
        for (syn, i) in (0..self.actions.len()).rev().enumerate() {
            let _ = writeln!(s, "  <synapse id=\"{syn}\">\n    <action_set>");
            self.xml_action(&mut s, c, i, true);
            s.push_str("    </action_set>\n");
            if inputs[i].is_empty() {
                s.push_str("    <inputs/>\n");
            } else {
                s.push_str("    <inputs>\n");
                for &j in &inputs[i] {
                    s.push_str("      <trigger>\n");
                    self.xml_action(&mut s, c, j, false);
                    s.push_str("      </trigger>\n");
                }
                s.push_str("    </inputs>\n");
            }
            s.push_str("  </synapse>\n");
        }
        s.push_str("</transition_graph>\n");
        s
    }

    fn xml_action(&self, s: &mut String, c: &Cluster, i: usize, full: bool) {
        let a = &self.actions[i];
        let tag = match a.kind {
            ActionKind::Resource => "rsc_op",
            ActionKind::Pseudo => "pseudo_event",
            ActionKind::Fence | ActionKind::NodeEvent => "crm_event",
        };
        let indent = if full { "      " } else { "        " };
        let _ = write!(
            s,
            "{indent}<{tag} id=\"{i}\" operation=\"{}\" operation_key=\"{}\"",
            esc(&a.task),
            esc(&a.key)
        );
        if let Some(n) = a.node {
            let _ = write!(
                s,
                " on_node=\"{}\" on_node_uuid=\"{}\"",
                esc(&c.nodes[n].name),
                esc(&c.nodes[n].id)
            );
        }
        if !full {
            s.push_str("/>\n");
            return;
        }
        s.push_str(">\n");
        if let (ActionKind::Resource, Some(r)) = (a.kind, a.rsc) {
            if let Kind::Primitive { agent } = &c.resources[r].kind {
                let parts: Vec<&str> = agent.split(':').collect();
                let (class, provider, ty) = match parts.as_slice() {
                    [cl, p, t] => (*cl, Some(*p), *t),
                    [cl, t] => (*cl, None, *t),
                    _ => ("", None, agent.as_str()),
                };
                let rsc = &c.resources[r];
                let _ = write!(s, "{indent}  <primitive id=\"{}\"", esc(&rsc.base));
                if rsc.base != rsc.id {
                    let _ = write!(s, " long-id=\"{}\"", esc(&rsc.id));
                }
                let _ = write!(s, " class=\"{}\"", esc(class));
                if let Some(p) = provider {
                    let _ = write!(s, " provider=\"{}\"", esc(p));
                }
                let _ = writeln!(s, " type=\"{}\"/>", esc(ty));
            }
        }
        let _ = write!(s, "{indent}  <attributes");
        if let Some(n) = a.node {
            let _ = write!(
                s,
                " CRM_meta_on_node=\"{}\" CRM_meta_on_node_uuid=\"{}\"",
                esc(&c.nodes[n].name),
                esc(&c.nodes[n].id)
            );
        }
        if a.interval_ms > 0 {
            let _ = write!(s, " CRM_meta_interval=\"{}\"", a.interval_ms);
        }
        if let Some(rc) = a.target_rc {
            let _ = write!(s, " CRM_meta_op_target_rc=\"{rc}\"");
        }
        if a.kind == ActionKind::Fence {
            s.push_str(" CRM_meta_stonith_action=\"reboot\"");
        }
        s.push_str(" CRM_meta_timeout=\"20000\" />\n");
        let _ = writeln!(s, "{indent}</{tag}>");
    }
}

fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            _ => o.push(ch),
        }
    }
    o
}

/// A transition graph read back from Pacemaker's XML (`exp/<case>.exp`, or
/// `crm_simulate -G`), reduced to what is compared: normalised action names and
/// ordering edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphSummary {
    /// Normalised action names (see [`normalise_key`]), one per action.
    pub actions: Vec<String>,
    /// Edges `(before, after)` between indices of `actions`.
    pub edges: Vec<(usize, usize)>,
}

/// `operation_key` + `@node` with clone instance numbers (`:N`) removed: the name an
/// action is compared by.
pub fn normalise_key(key: &str, node: Option<&str>) -> String {
    let mut out = String::with_capacity(key.len() + 16);
    let mut chars = key.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == ':' && chars.peek().map(|c| c.is_ascii_digit()).unwrap_or(false) {
            while chars.peek().map(|c| c.is_ascii_digit()).unwrap_or(false) {
                chars.next();
            }
            continue;
        }
        out.push(ch);
    }
    if let Some(n) = node {
        out.push('@');
        out.push_str(n);
    }
    out
}

impl Transition {
    /// This graph reduced for comparison.
    pub fn summary(&self, c: &Cluster) -> GraphSummary {
        GraphSummary {
            actions: self
                .actions
                .iter()
                .map(|a| normalise_key(&a.key, a.node.map(|n| c.nodes[n].name.as_str())))
                .collect(),
            edges: self.edges.clone(),
        }
    }
}

impl GraphSummary {
    /// Read Pacemaker's `<transition_graph>` XML.
    pub fn from_pacemaker_xml(text: &str) -> Result<GraphSummary, Error> {
        use quick_xml::events::Event;
        use quick_xml::Reader;
        let mut reader = Reader::from_str(text);
        let mut g = GraphSummary::default();
        let mut ids: HashMap<String, usize> = HashMap::new();
        // State: inside action_set (the synapse's action) or inputs.
        let mut in_action_set = false;
        let mut in_inputs = false;
        let mut current: Option<usize> = None;
        let mut pending_inputs: Vec<(usize, String)> = Vec::new();
        let bad = |d: String| Error::CibXml { detail: d };
        loop {
            let ev = reader
                .read_event()
                .map_err(|e| bad(format!("transition graph: {e}")))?;
            match ev {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    match name.as_str() {
                        "action_set" => in_action_set = true,
                        "inputs" => in_inputs = true,
                        "rsc_op" | "pseudo_event" | "crm_event" if in_action_set || in_inputs => {
                            let mut id = None;
                            let mut key = None;
                            let mut node = None;
                            for a in e.attributes() {
                                let a = a.map_err(|err| bad(format!("transition graph: {err}")))?;
                                let v = a
                                    .unescape_value()
                                    .map_err(|err| bad(format!("transition graph: {err}")))?
                                    .into_owned();
                                match a.key.as_ref() {
                                    b"id" => id = Some(v),
                                    b"operation_key" => key = Some(v),
                                    b"on_node" => node = Some(v),
                                    _ => {}
                                }
                            }
                            let id = id.ok_or_else(|| bad(format!("<{name}> without id")))?;
                            if in_action_set {
                                let key = key.ok_or_else(|| {
                                    bad(format!("<{name} id={id}> without operation_key"))
                                })?;
                                let ix = g.actions.len();
                                g.actions.push(normalise_key(&key, node.as_deref()));
                                ids.insert(id, ix);
                                current = Some(ix);
                            } else if let Some(cur) = current {
                                pending_inputs.push((cur, id));
                            }
                        }
                        _ => {}
                    }
                }
                Event::End(e) => match e.name().as_ref() {
                    b"action_set" => in_action_set = false,
                    b"inputs" => in_inputs = false,
                    b"synapse" => current = None,
                    _ => {}
                },
                _ => {}
            }
        }
        for (after, id) in pending_inputs {
            // Inputs naming actions that are not in the graph are dropped (Pacemaker
            // does not write those).
            if let Some(&before) = ids.get(&id) {
                g.edges.push((before, after));
            }
        }
        g.edges.sort_unstable();
        g.edges.dedup();
        Ok(g)
    }

    /// Reachability between distinct action names: the set of (before, after) name
    /// pairs such that a path of edges leads from one to the other.
    pub fn reachable_pairs(&self) -> BTreeSet<(String, String)> {
        let t = Transition {
            actions: self
                .actions
                .iter()
                .map(|k| GraphAction {
                    key: k.clone(),
                    task: String::new(),
                    interval_ms: 0,
                    rsc: None,
                    node: None,
                    kind: ActionKind::Pseudo,
                    target_rc: None,
                })
                .collect(),
            edges: self.edges.clone(),
        };
        let reach = t.reachability();
        let mut out = BTreeSet::new();
        for (i, bits) in reach.iter().enumerate() {
            for (w, &word) in bits.iter().enumerate() {
                let mut x = word;
                while x != 0 {
                    let j = w * 64 + x.trailing_zeros() as usize;
                    x &= x - 1;
                    if self.actions[i] != self.actions[j] {
                        out.insert((self.actions[i].clone(), self.actions[j].clone()));
                    }
                }
            }
        }
        out
    }

    /// The action names as a sorted multiset.
    pub fn action_multiset(&self) -> Vec<String> {
        let mut v = self.actions.clone();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_normalised() {
        assert_eq!(
            normalise_key("child-2:2_stop_0", Some("pcmk-1")),
            "child-2_stop_0@pcmk-1"
        );
        assert_eq!(
            normalise_key("clone-3_running_0", None),
            "clone-3_running_0"
        );
        assert_eq!(normalise_key("a:b_start_0", None), "a:b_start_0");
    }

    #[test]
    fn pacemaker_xml_is_read_and_reachability_is_transitive() {
        let xml = r#"<transition_graph>
  <synapse id="0"><action_set><pseudo_event id="3" operation="running" operation_key="g_running_0"/></action_set>
    <inputs><trigger><rsc_op id="1" operation="start" operation_key="a:0_start_0" on_node="n1"/></trigger></inputs></synapse>
  <synapse id="1"><action_set><rsc_op id="1" operation="start" operation_key="a:0_start_0" on_node="n1"/></action_set>
    <inputs><trigger><pseudo_event id="2" operation="start" operation_key="g_start_0"/></trigger></inputs></synapse>
  <synapse id="2"><action_set><pseudo_event id="2" operation="start" operation_key="g_start_0"/></action_set><inputs/></synapse>
</transition_graph>"#;
        let g = GraphSummary::from_pacemaker_xml(xml).expect("parses");
        assert_eq!(
            g.action_multiset(),
            vec!["a_start_0@n1", "g_running_0", "g_start_0"]
        );
        let r = g.reachable_pairs();
        assert!(r.contains(&("g_start_0".to_string(), "g_running_0".to_string())));
        assert!(!r.contains(&("g_running_0".to_string(), "g_start_0".to_string())));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn malformed_graphs_are_errors_not_panics() {
        let bad = [
            "",
            "<transition_graph>",
            "<transition_graph><synapse><action_set><rsc_op operation_key=\"x\"/></action_set></synapse></transition_graph>",
            "<transition_graph><synapse><action_set><rsc_op id=\"1\"/></action_set></synapse></transition_graph>",
            "<a b=\"&bogus;\"/>",
            "<<<>>>",
            "<transition_graph><synapse><inputs><trigger><rsc_op id=\"9\"/></trigger></inputs></synapse></transition_graph>",
        ];
        for text in bad {
            let _ = GraphSummary::from_pacemaker_xml(text);
        }
        // Inputs naming actions that are not in the graph are dropped.
        let g = GraphSummary::from_pacemaker_xml(bad[6]).expect("parses");
        assert!(g.actions.is_empty() && g.edges.is_empty());
        assert!(GraphSummary::from_pacemaker_xml(bad[3]).is_err());
    }

    #[test]
    fn a_cycle_has_no_order() {
        let act = |k: &str| GraphAction {
            key: k.into(),
            task: "start".into(),
            interval_ms: 0,
            rsc: None,
            node: None,
            kind: ActionKind::Pseudo,
            target_rc: None,
        };
        let t = Transition {
            actions: vec![act("a"), act("b")],
            edges: vec![(0, 1), (1, 0)],
        };
        assert!(!t.is_acyclic());
    }
}
