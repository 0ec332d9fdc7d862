//! Results: the revised placement (as the normalised TSV rows of the data README),
//! the transition summary, explanations, and the `crm_simulate -S`-like text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::alloc::{Assignment, Contribution};
use super::digest::ChangeKind;
use super::model::*;
use super::score;
use super::transition::{self, Transition};

/// One placement row: `path<TAB>role<TAB>node<TAB>flags`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    /// `rsc`, `group/rsc`, `clone/rsc`, `clone/group/rsc`.
    pub path: String,
    /// `Started`, `Stopped`, `Promoted`, `Unpromoted`.
    pub role: String,
    /// Node name, `-` when inactive.
    pub node: String,
    /// Comma-separated flags or `-`.
    pub flags: String,
}

impl Row {
    /// The TSV line (without newline).
    pub fn tsv(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.path, self.role, self.node, self.flags
        )
    }
}

/// One transition-summary action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Action {
    /// `Start`, `Stop`, `Move`, `Migrate`, `Recover`, `Promote`, `Demote`, `Restart`,
    /// `Fence`.
    pub verb: String,
    /// Resource id (with instance number for clone instances); the node for `Fence`.
    pub rsc: String,
    /// The parenthesised detail as crm_simulate prints it, e.g. `node1 -> node2`; the
    /// reason for `Fence`.
    pub detail: String,
}

impl Action {
    /// The summary line as `crm_simulate -S` prints it (without the leading `  * `),
    /// `w` being the width of the resource column.
    pub fn line(&self, w: usize) -> String {
        if self.verb == "Fence" {
            format!("Fence (reboot) {} '{}'", self.rsc, self.detail)
        } else {
            format!(
                "{:<10} {:<w$}  ( {} )",
                self.verb,
                self.rsc,
                self.detail,
                w = w
            )
        }
    }
}

/// Everything [`super::schedule`] computes.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Placement before the transition.
    pub initial: Vec<Row>,
    /// Placement after the transition (sorted).
    pub placement: Vec<Row>,
    /// The transition summary.
    pub actions: Vec<Action>,
    /// The transition graph (actions and ordering edges).
    pub transition: Transition,
    /// The raw assignment (scores and contributions), for explanations.
    pub assignment: Assignment,
    /// Each resource's role after the transition, as the revised status shows it:
    /// the assignment's next role, except that a promoted instance restarted in
    /// place only because of an ordering comes back unpromoted (see [`revised_roles`]).
    pub revised_role: Vec<Role>,
}

fn path_of(c: &Cluster, r: RscIx) -> String {
    let mut s = String::with_capacity(32);
    push_path(c, r, &mut s);
    s
}

/// Append `r`'s path (ancestors first, `/`-separated) to `s`.
fn push_path(c: &Cluster, r: RscIx, s: &mut String) {
    if let Some(p) = c.resources[r].parent {
        push_path(c, p, s);
        s.push('/');
    }
    s.push_str(&c.resources[r].base);
}

fn flags(c: &Cluster, r: RscIx, revised: bool) -> String {
    let rsc = &c.resources[r];
    let mut f: Vec<String> = Vec::new();
    if !rsc.managed {
        f.push("unmanaged".into());
    }
    let failed = rsc.failed && (!revised || !rsc.managed);
    if failed {
        f.push("failed".into());
    }
    if rsc.orphan {
        f.push("orphaned".into());
    }
    if rsc.blocked {
        f.push("blocked".into());
    }
    if rsc.failure_ignored {
        f.push("failure_ignored".into());
    }
    if let Some(t) = rsc
        .target_role_raw
        .as_ref()
        .filter(|t| Role::parse(t).is_some())
    {
        f.push(format!("target_role={t}"));
    }
    f.sort();
    if f.is_empty() {
        "-".into()
    } else {
        f.join(",")
    }
}

fn display_role(c: &Cluster, r: RscIx, role: Role) -> Role {
    // Started instances of promotable clones are shown as Unpromoted.
    let top = c.top_of(r);
    if role == Role::Started
        && matches!(
            c.resources[top].kind,
            Kind::Clone {
                promotable: true,
                ..
            }
        )
    {
        Role::Unpromoted
    } else {
        role
    }
}

/// Each primitive's path (empty for the others), built once for both placements.
fn paths(c: &Cluster) -> Vec<String> {
    (0..c.resources.len())
        .map(|r| {
            if c.resources[r].is_primitive() {
                path_of(c, r)
            } else {
                String::new()
            }
        })
        .collect()
}

fn rows_initial(c: &Cluster, paths: &[String]) -> Vec<Row> {
    let mut rows = Vec::with_capacity(c.resources.len());
    for (r, rsc) in c.resources.iter().enumerate() {
        if !rsc.is_primitive() {
            continue;
        }
        let path = paths[r].clone();
        let fl = flags(c, r, false);
        if rsc.running_on.is_empty() {
            rows.push(Row {
                path,
                role: "Stopped".into(),
                node: "-".into(),
                flags: fl,
            });
        } else {
            for &nd in &rsc.running_on {
                rows.push(Row {
                    path: path.clone(),
                    role: display_role(c, r, rsc.role).name().into(),
                    node: c.nodes[nd].name.clone(),
                    flags: fl.clone(),
                });
            }
        }
    }
    // Rows equal in every field are indistinguishable: unstable is enough.
    rows.sort_unstable();
    rows
}

fn is_anon_clone(c: &Cluster, cl: RscIx) -> bool {
    matches!(c.resources[cl].kind, Kind::Clone { unique: false, .. })
}

/// The orphan rows Pacemaker shows after re-reading the history once the transition
/// has run: history entries of anonymous clones that find no free instance.
fn revised_orphans(c: &Cluster, a: &Assignment, rows: &mut Vec<Row>) {
    let mut clones: Vec<RscIx> = c.anon_history.iter().map(|h| h.1).collect();
    clones.sort_unstable();
    clones.dedup();
    for cl in clones {
        let insts: Vec<RscIx> = c.resources[cl]
            .children
            .iter()
            .copied()
            .filter(|&i| !c.resources[i].orphan)
            .collect();
        // Final activity: node -> member bases active there.
        let mut active: BTreeMap<(NodeIx, String), bool> = BTreeMap::new();
        for &i in &c.resources[cl].children {
            let mut prims = Vec::new();
            c.primitives_of(i, &mut prims);
            for p in prims {
                let rsc = &c.resources[p];
                let nodes: Vec<NodeIx> = if !rsc.managed {
                    rsc.running_on.clone()
                } else {
                    a.node[p]
                        .filter(|_| a.next_role[p] != Role::Stopped)
                        .into_iter()
                        .collect()
                };
                for nd in nodes {
                    active.insert((nd, rsc.base.clone()), true);
                }
            }
        }
        // Entries per node in document order, then new ones; per (node, base) at
        // most one entry is active afterwards: the one active before, else the first.
        let mut per_node: BTreeMap<NodeIx, Vec<(String, bool)>> = BTreeMap::new();
        for (nd, hcl, base, was) in &c.anon_history {
            if *hcl == cl {
                per_node.entry(*nd).or_default().push((base.clone(), *was));
            }
        }
        for (nd, base) in active.keys() {
            let v = per_node.entry(*nd).or_default();
            let had_active = v.iter().any(|(b, w)| b == base && *w);
            let mut done = false;
            // Without an active entry, the last one is taken (no orphan after it).
            let last = v.iter().rposition(|(b, _)| b == base);
            if !had_active {
                if let Some(k) = last {
                    v[k].1 = true;
                    done = true;
                }
            }
            for (b, w) in v.iter_mut() {
                if b == base && had_active {
                    if *w && !done {
                        done = true;
                    } else {
                        *w = false;
                    }
                }
            }
            if !done {
                v.push((base.clone(), true));
            }
        }
        for (nd, v) in per_node.iter_mut() {
            for (b, w) in v.iter_mut() {
                if !active.contains_key(&(*nd, b.clone())) {
                    *w = false;
                }
            }
        }
        let mut loc: Vec<Option<NodeIx>> = vec![None; insts.len()];
        let mut running: Vec<Vec<String>> = vec![Vec::new(); insts.len()];
        for &nd in &c.status_order {
            let Some(entries) = per_node.get(&nd) else {
                continue;
            };
            for (base, is_active) in entries {
                let is_active = *is_active;
                let here = (0..loc.len()).find(|&k| loc[k] == Some(nd));
                let slot = match here {
                    Some(k) => {
                        if running[k].contains(base) {
                            None
                        } else {
                            Some(k)
                        }
                    }
                    None => (0..loc.len()).find(|&k| loc[k].is_none()),
                };
                match slot {
                    Some(k) => {
                        if is_active {
                            loc[k] = Some(nd);
                            running[k].push(base.clone());
                        }
                    }
                    None => {
                        // An orphan instance: shown stopped, flags of the member. It
                        // joins the clone's children (`create_child_clone`), so a later
                        // entry can be matched to it as an inactive instance.
                        loc.push(is_active.then_some(nd));
                        running.push(if is_active {
                            vec![base.clone()]
                        } else {
                            Vec::new()
                        });
                        let mut prims = Vec::new();
                        c.primitives_of(insts.first().copied().unwrap_or(cl), &mut prims);
                        if let Some(&p) = prims.iter().find(|&&p| c.resources[p].base == *base) {
                            let mut fl = flags(c, p, true);
                            fl = if fl == "-" {
                                "orphaned".to_string()
                            } else {
                                let mut v: Vec<&str> = fl.split(',').collect();
                                v.retain(|x| *x != "orphaned");
                                v.push("orphaned");
                                v.sort_unstable();
                                v.join(",")
                            };
                            rows.push(Row {
                                path: path_of(c, p),
                                role: "Stopped".into(),
                                node: "-".into(),
                                flags: fl,
                            });
                        }
                    }
                }
            }
        }
    }
}

fn rows_revised(
    c: &Cluster,
    a: &Assignment,
    revised_role: &[Role],
    mut paths: Vec<String>,
) -> Vec<Row> {
    let mut rows = Vec::with_capacity(c.resources.len());
    revised_orphans(c, a, &mut rows);
    for (r, rsc) in c.resources.iter().enumerate() {
        if !rsc.is_primitive() {
            continue;
        }
        if rsc.orphan {
            let top = c.top_of(r);
            if top != r && is_anon_clone(c, top) {
                continue;
            }
        }
        let path = std::mem::take(&mut paths[r]);
        let fl = flags(c, r, true);
        if !rsc.managed {
            if rsc.running_on.is_empty() {
                rows.push(Row {
                    path,
                    role: "Stopped".into(),
                    node: "-".into(),
                    flags: fl,
                });
            } else {
                for &nd in &rsc.running_on {
                    rows.push(Row {
                        path: path.clone(),
                        role: display_role(c, r, rsc.role).name().into(),
                        node: c.nodes[nd].name.clone(),
                        flags: fl.clone(),
                    });
                }
            }
            continue;
        }
        let role = revised_role[r];
        match a.node[r] {
            Some(nd) if a.next_role[r] != Role::Stopped => rows.push(Row {
                path,
                role: display_role(c, r, role).name().into(),
                node: c.nodes[nd].name.clone(),
                flags: fl,
            }),
            _ => rows.push(Row {
                path,
                role: "Stopped".into(),
                node: "-".into(),
                flags: fl,
            }),
        }
    }
    // Rows equal in every field are indistinguishable: unstable is enough.
    rows.sort_unstable();
    rows
}

fn actions(c: &Cluster, a: &Assignment, restart: &[bool]) -> Vec<Action> {
    let mut out = Vec::new();
    for n in transition::fenced_nodes(c) {
        let node = &c.nodes[n];
        out.push(Action {
            verb: "Fence".into(),
            rsc: node.name.clone(),
            detail: node
                .unclean_reason
                .clone()
                .unwrap_or_else(|| "node is unclean".into()),
        });
    }
    for (r, rsc) in c.resources.iter().enumerate() {
        if !rsc.is_primitive() || !rsc.managed {
            continue;
        }
        let cur = rsc.running_on.first().copied();
        let target = a.node[r].filter(|_| a.next_role[r] != Role::Stopped);
        let name = |n: NodeIx| c.nodes[n].name.clone();
        let cur_role = display_role(c, r, rsc.role);
        let next_role = display_role(c, r, a.next_role[r]);
        let push = |out: &mut Vec<Action>, verb: &str, detail: String| {
            out.push(Action {
                verb: verb.into(),
                rsc: rsc.id.clone(),
                detail,
            })
        };
        match (cur, target) {
            (None, None) => {}
            (None, Some(t)) => {
                if next_role == Role::Promoted {
                    push(
                        &mut out,
                        "Promote",
                        format!("Stopped -> Promoted {}", name(t)),
                    );
                } else {
                    push(&mut out, "Start", name(t));
                }
            }
            (Some(cn), None) => {
                if matches!(cur_role, Role::Promoted | Role::Unpromoted) {
                    push(
                        &mut out,
                        "Stop",
                        format!("{} {}", cur_role.name(), name(cn)),
                    );
                } else {
                    push(&mut out, "Stop", name(cn));
                }
            }
            (Some(cn), Some(t)) if cn != t => {
                let verb = if rsc.failed {
                    "Recover"
                } else if transition::migration(c, a, r, restart[r]).is_some() {
                    "Migrate"
                } else {
                    "Move"
                };
                if cur_role == Role::Promoted || next_role == Role::Promoted {
                    push(
                        &mut out,
                        verb,
                        format!(
                            "{} {} -> {} {}",
                            cur_role.name(),
                            name(cn),
                            next_role.name(),
                            name(t)
                        ),
                    );
                } else {
                    push(&mut out, verb, format!("{} -> {}", name(cn), name(t)));
                }
            }
            (Some(cn), Some(t)) if rsc.running_on.len() > 1 && rsc.running_on.contains(&t) => {
                // Active on several nodes: stopped everywhere, started again here.
                let _ = cn;
                push(&mut out, "Restart", name(t));
            }
            (Some(cn), Some(_)) if restart[r] && cur_role != next_role => {
                // A restart that also changes the role is one line.
                push(
                    &mut out,
                    "Restart",
                    format!("{} -> {} {}", cur_role.name(), next_role.name(), name(cn)),
                );
            }
            (Some(cn), Some(_)) => {
                if rsc.failed {
                    if cur_role != next_role {
                        push(
                            &mut out,
                            "Recover",
                            format!("{} -> {} {}", cur_role.name(), next_role.name(), name(cn)),
                        );
                    } else {
                        push(&mut out, "Recover", name(cn));
                    }
                } else if cur_role != Role::Promoted && next_role == Role::Promoted {
                    push(
                        &mut out,
                        "Promote",
                        format!("{} -> Promoted {}", cur_role.name(), name(cn)),
                    );
                } else if cur_role == Role::Promoted && next_role != Role::Promoted {
                    push(
                        &mut out,
                        "Demote",
                        format!("Promoted -> {} {}", next_role.name(), name(cn)),
                    );
                }
            }
        }
    }
    for (p, &r) in restart.iter().enumerate() {
        let role_changes =
            display_role(c, p, c.resources[p].role) != display_role(c, p, a.next_role[p]);
        if r && !role_changes {
            if let Some(nd) = a.node[p] {
                // Pacemaker names the role of a promotable instance (`rsc_action_item`:
                // the role is shown when it is above Started).
                let role = display_role(c, p, c.resources[p].role);
                let detail = if matches!(role, Role::Promoted | Role::Unpromoted) {
                    format!("{} {}", role.name(), c.nodes[nd].name)
                } else {
                    c.nodes[nd].name.clone()
                };
                out.push(Action {
                    verb: "Restart".into(),
                    rsc: c.resources[p].id.clone(),
                    detail,
                });
            }
        }
    }
    // Promotions a blocked colocation primary leaves unrunnable: listed as promotions.
    for p in transition::blocked_promotions(c, a) {
        let Some(nd) = a.node[p] else { continue };
        let rsc = &c.resources[p];
        let cur = display_role(c, p, rsc.role);
        let from = if rsc.running_on.is_empty() {
            Role::Stopped
        } else {
            cur
        };
        out.retain(|x| !(x.rsc == rsc.id && (x.verb == "Start" || x.verb == "Promote")));
        out.push(Action {
            verb: "Promote".into(),
            rsc: rsc.id.clone(),
            detail: format!("{} -> Promoted {}", from.name(), c.nodes[nd].name),
        });
    }
    // Starts an order left unrunnable: crm_simulate lists them ("due to unrunnable
    // ... (blocked)"); nothing runs.
    for (p, rsc) in c.resources.iter().enumerate() {
        if let (Some(nd), true) = (a.blocked_start[p], rsc.is_primitive() && rsc.managed) {
            if a.node[p].is_none() && rsc.running_on.is_empty() {
                out.push(Action {
                    verb: "Start".into(),
                    rsc: rsc.id.clone(),
                    detail: c.nodes[nd].name.clone(),
                });
            }
        }
    }
    // Agent reloads for a changed definition (see transition::reload).
    for (p, rsc) in c.resources.iter().enumerate() {
        if !rsc.is_primitive() || !rsc.managed || rsc.failed || restart[p] {
            continue;
        }
        let Some(d) = rsc
            .definition_changes
            .iter()
            .find(|d| d.kind == ChangeKind::Reload)
        else {
            continue;
        };
        let stays = rsc.running_on.len() == 1
            && rsc.running_on[0] == d.node
            && a.node[p] == Some(d.node)
            && a.next_role[p] != Role::Stopped
            && !(rsc.role == Role::Promoted && a.next_role[p] != Role::Promoted);
        if stays {
            out.push(Action {
                verb: "Reload".into(),
                rsc: rsc.id.clone(),
                detail: c.nodes[d.node].name.clone(),
            });
        }
    }
    out.sort();
    out
}

/// Whether primitive `p` changes in this transition (starts, stops, moves, recovers).
fn changes(c: &Cluster, a: &Assignment, p: RscIx) -> bool {
    let rsc = &c.resources[p];
    if !rsc.managed {
        return false;
    }
    let cur = rsc.running_on.first().copied();
    let target = a.node[p].filter(|_| a.next_role[p] != Role::Stopped);
    cur != target || (rsc.failed && target.is_some())
}

/// Whether a changed definition (operation digests) of `p` on the node it runs on
/// asks for a restart there.
pub(crate) fn definition_restart(c: &Cluster, p: RscIx) -> bool {
    let rsc = &c.resources[p];
    rsc.definition_changes
        .iter()
        .any(|d| d.kind == ChangeKind::Restart && Some(d.node) == rsc.running_on.first().copied())
}

/// Restarts forced by mandatory orders and group membership: a resource that stays
/// where it is restarts when something it is ordered after starts, moves, recovers
/// or restarts (for a clone `first`, when any instance starts, moves, or had a
/// restart an order left unrunnable; an instance that only stops counts too, except
/// for a `then` that is a clone without interleave).
fn restarts(c: &Cluster, a: &Assignment) -> Vec<bool> {
    let n = c.resources.len();
    let mut restart = vec![false; n];
    let stays = |p: RscIx| {
        let rsc = &c.resources[p];
        rsc.managed
            && !rsc.failed
            && rsc.running_on.len() == 1
            && a.node[p] == rsc.running_on.first().copied()
            && a.next_role[p] != Role::Stopped
    };
    let prims = |r: RscIx| {
        let mut v = Vec::new();
        c.primitives_of(r, &mut v);
        v
    };
    // A changed resource definition (operation digests) restarts a resource that
    // stays where it is (force_restart in pcmk_sched_actions.c).
    for (p, r) in restart.iter_mut().enumerate() {
        if stays(p) && definition_restart(c, p) {
            *r = true;
        }
    }
    loop {
        let mut changed = false;
        let moving = |x: RscIx, restart: &Vec<bool>| changes(c, a, x) || restart[x];
        for o in &c.orders {
            if o.kind != OrderKind::Mandatory
                || o.first_action != "start"
                || o.then_action != "start"
            {
                continue;
            }
            let first_changes = prims(o.first).iter().any(|&x| {
                let rsc = &c.resources[x];
                if transition::migration(c, a, x, restart[x]).is_some() {
                    // A live migration does not restart what is ordered after it.
                    return false;
                }
                let starting = a.node[x].is_some() && a.next_role[x] != Role::Stopped;
                if c.resources[o.first].is_clone() {
                    // `then` is ordered after the clone's `_running_0`
                    // (`action_for_ordering`), required when an instance's start is
                    // (`child_starting` in `clone_create_pseudo_actions`): one that
                    // starts or moves, or one that was to restart where it runs
                    // before an order left that start unrunnable (clone-interleave-2,
                    // seed 8 #64). An instance that only stops makes the clone's stop
                    // mandatory, and the inverse order (`pe_order_implies_first`) the
                    // stop of a primitive or interleaved instance after it; a clone
                    // that is not interleaved has only its stop pseudo-action made
                    // mandatory that way, which stops none of its instances (seed 10
                    // #193).
                    let then_whole_clone = matches!(
                        c.resources[o.then].kind,
                        Kind::Clone {
                            interleave: false,
                            ..
                        }
                    );
                    let unrunnable_here =
                        a.unrunnable_start[x].is_some_and(|nd| rsc.running_on.contains(&nd));
                    (moving(x, &restart) && (starting || !then_whole_clone)) || unrunnable_here
                } else {
                    starting && (moving(x, &restart) || rsc.failed)
                }
            });
            if !first_changes {
                continue;
            }
            // Interleaved clones: an instance restarts only for the first clone's
            // instance on its own node.
            // Interleaved clones, and anything after a clone that is not a clone
            // itself: only a change of the first clone's instance on the same node
            // restarts it.
            let interleave = c.resources[o.first].is_clone()
                && (matches!(
                    c.resources[o.then].kind,
                    Kind::Clone {
                        interleave: true,
                        ..
                    }
                ) || !c.resources[o.then].is_clone());
            for p in prims(o.then) {
                if interleave {
                    let here = a.node[p];
                    let local = prims(o.first).iter().any(|&x| {
                        moving(x, &restart)
                            && (c.resources[x].running_on.first().copied() == here
                                || a.node[x] == here)
                    });
                    if !local {
                        continue;
                    }
                }
                if stays(p) && !restart[p] {
                    restart[p] = true;
                    changed = true;
                }
            }
        }
        for rsc in &c.resources {
            if rsc.kind != Kind::Group {
                continue;
            }
            let mut before = false;
            for &m in &rsc.children {
                if before && stays(m) && !restart[m] {
                    restart[m] = true;
                    changed = true;
                }
                let starting = a.node[m].is_some() && a.next_role[m] != Role::Stopped;
                if starting && (changes(c, a, m) || restart[m]) {
                    before = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    restart
}

pub(crate) fn outcome(c: &Cluster, a: Assignment, with_graph: bool) -> Outcome {
    let restart = restarts(c, &a);
    let transition = if with_graph {
        transition::build(c, &a, &restart)
    } else {
        Transition::default()
    };
    let revised_role = revised_roles(c, &a, &restart);
    let paths = paths(c);
    Outcome {
        initial: rows_initial(c, &paths),
        placement: rows_revised(c, &a, &revised_role, paths),
        actions: actions(c, &a, &restart),
        transition,
        assignment: a,
        revised_role,
    }
}

/// Each resource's role after the transition. A promoted instance restarted in
/// place only because of an ordering comes back unpromoted: its promote action was
/// created optional (it stays promoted) and the order makes only its start
/// mandatory — `start then promote` is `pe_order_runnable_left`, which does not
/// carry that on, so the graph has no promote (transition.rs, `plan`). A restart
/// for a changed definition is not one of those (bug-1572-1).
fn revised_roles(c: &Cluster, a: &Assignment, restart: &[bool]) -> Vec<Role> {
    (0..c.resources.len())
        .map(|r| {
            let role = a.next_role[r];
            if role == Role::Promoted
                && c.resources[r].role == Role::Promoted
                && restart.get(r).copied().unwrap_or(false)
                && !definition_restart(c, r)
            {
                Role::Unpromoted
            } else {
                role
            }
        })
        .collect()
}

impl Outcome {
    /// The revised placement as TSV text (one line per row, sorted).
    pub fn placement_tsv(&self) -> String {
        let mut s = String::new();
        for r in &self.placement {
            s.push_str(&r.tsv());
            s.push('\n');
        }
        s
    }

    /// Why `rsc` is where it is: per-node final scores and their contributions.
    /// Returns `None` when there is no such resource.
    pub fn explain(&self, c: &Cluster, rsc: &str) -> Option<String> {
        let ixs: Vec<RscIx> = c
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.id == rsc || r.base == rsc)
            .map(|(i, _)| i)
            .collect();
        if ixs.is_empty() {
            return None;
        }
        let mut s = String::new();
        for r in ixs {
            let mut prims = Vec::new();
            c.primitives_of(r, &mut prims);
            for p in prims {
                explain_one(&mut s, c, &self.assignment, p);
            }
        }
        Some(s)
    }

    /// Text in the layout of `crm_simulate -S`: current status, transition summary,
    /// revised status.
    pub fn simulate_text(&self, c: &Cluster) -> String {
        let mut s = String::new();
        s.push_str("Current cluster status:\n");
        status_layout(&mut s, c, None);
        s.push_str("\nTransition Summary:\n");
        let w = self
            .actions
            .iter()
            .filter(|a| a.verb != "Fence")
            .map(|a| a.rsc.len())
            .max()
            .unwrap_or(0);
        let fence_first = self
            .actions
            .iter()
            .filter(|a| a.verb == "Fence")
            .chain(self.actions.iter().filter(|a| a.verb != "Fence"));
        for a in fence_first {
            let _ = writeln!(s, "  * {}", a.line(w));
        }
        if !self.transition.actions.is_empty() {
            s.push_str("\nExecuting Cluster Transition:\n");
            s.push_str(&self.transition.executed_text(c));
        }
        s.push_str("\nRevised Cluster Status:\n");
        status_layout(&mut s, c, Some((&self.assignment, &self.revised_role)));
        s
    }
}

fn explain_one(s: &mut String, c: &Cluster, a: &Assignment, r: RscIx) {
    let rsc = &c.resources[r];
    let where_ = match a.node[r] {
        Some(n) if a.next_role[r] != Role::Stopped => {
            format!("{} on {}", a.next_role[r].name(), c.nodes[n].name)
        }
        _ => "Stopped".to_string(),
    };
    let _ = writeln!(s, "{}: {}", rsc.id, where_);
    if let Some(reason) = &a.stop_reason[r] {
        if a.node[r].is_none() || reason.starts_with("requires=fencing") {
            let _ = writeln!(s, "  reason: {reason}");
        }
    }
    if !rsc.managed {
        let _ = writeln!(s, "  unmanaged: stays where it is");
    }
    let table = &a.final_scores[r];
    for (nd, node) in c.nodes.iter().enumerate() {
        let sc = table.get(nd).and_then(|w| w.get());
        let avail = if node.available() {
            ""
        } else {
            " (node unavailable)"
        };
        match sc {
            Some(v) => {
                let _ = writeln!(s, "  {}: {}{}", node.name, score::show(v), avail);
            }
            None => {
                let _ = writeln!(s, "  {}: not allowed{}", node.name, avail);
            }
        }
        let mut per: BTreeMap<std::sync::Arc<str>, i64> = BTreeMap::new();
        let mut list: Vec<&Contribution> = Vec::new();
        for x in &a.contributions[r] {
            if x.node.is_none() || x.node == Some(nd) {
                list.push(x);
            }
        }
        // Also what the parents contributed (clone/group constraints).
        let mut p = rsc.parent;
        while let Some(pp) = p {
            for x in &a.contributions[pp] {
                if x.node.is_none() || x.node == Some(nd) {
                    list.push(x);
                }
            }
            p = c.resources[pp].parent;
        }
        for x in list {
            let e = per.entry(x.reason.clone()).or_insert(0);
            *e = score::add(*e, x.score);
        }
        for (reason, v) in per {
            let _ = writeln!(s, "    {:>10}  {}", score::show(v), reason);
        }
    }
    if let Some(ps) = a.promotion_score.get(r).copied().flatten() {
        let _ = writeln!(s, "  promotion score: {}", score::show(ps));
    }
}

/// Where each primitive is, as (role, node) pairs, before or after the transition.
fn placements(c: &Cluster, a: Option<(&Assignment, &[Role])>, r: RscIx) -> Vec<(Role, NodeIx)> {
    let rsc = &c.resources[r];
    match a {
        Some((a, roles)) if rsc.managed => match a.node[r] {
            Some(nd) if a.next_role[r] != Role::Stopped => {
                vec![(display_role(c, r, roles[r]), nd)]
            }
            _ => Vec::new(),
        },
        _ => rsc
            .running_on
            .iter()
            .map(|&nd| (display_role(c, r, rsc.role), nd))
            .collect(),
    }
}

fn agent(c: &Cluster, r: RscIx) -> &str {
    match &c.resources[r].kind {
        Kind::Primitive { agent } => agent,
        _ => "",
    }
}

fn primitive_line(
    s: &mut String,
    c: &Cluster,
    a: Option<(&Assignment, &[Role])>,
    r: RscIx,
    indent: &str,
) {
    let rsc = &c.resources[r];
    let mut extra = String::new();
    if !rsc.managed {
        extra.push_str(" (unmanaged)");
    }
    if rsc.failed && (a.is_none() || !rsc.managed) {
        extra.push_str(" FAILED");
    }
    if rsc.orphan {
        extra.push_str(" (ORPHANED)");
    }
    let p = placements(c, a, r);
    if p.is_empty() {
        let _ = writeln!(
            s,
            "{indent}* {}\t({}):\t Stopped{extra}",
            rsc.id,
            agent(c, r)
        );
    } else {
        for (role, nd) in p {
            let _ = writeln!(
                s,
                "{indent}* {}\t({}):\t {} {}{extra}",
                rsc.id,
                agent(c, r),
                role.name(),
                c.nodes[nd].name
            );
        }
    }
}

/// Status in the layout of crm_simulate 2.1.5 (`* Node List:`, `* Full List of
/// Resources:`, groups and clone sets).
fn status_layout(s: &mut String, c: &Cluster, a: Option<(&Assignment, &[Role])>) {
    s.push_str("  * Node List:\n");
    let mut online = Vec::new();
    let mut offline = Vec::new();
    for n in &c.nodes {
        if n.online && n.standby {
            let _ = writeln!(s, "    * Node {}: standby", n.name);
        } else if n.online && n.maintenance {
            let _ = writeln!(s, "    * Node {}: maintenance", n.name);
        } else if n.online {
            online.push(n.name.clone());
        } else if n.unclean {
            let _ = writeln!(s, "    * Node {}: UNCLEAN (offline)", n.name);
        } else {
            offline.push(n.name.clone());
        }
    }
    if !online.is_empty() {
        let _ = writeln!(s, "    * Online: [ {} ]", online.join(" "));
    }
    if !offline.is_empty() {
        let _ = writeln!(s, "    * OFFLINE: [ {} ]", offline.join(" "));
    }
    s.push_str("\n  * Full List of Resources:\n");
    for &t in &c.top {
        let rsc = &c.resources[t];
        match &rsc.kind {
            Kind::Primitive { .. } => primitive_line(s, c, a, t, "    "),
            Kind::Group => {
                let _ = writeln!(s, "    * Resource Group: {}:", rsc.id);
                for &m in &rsc.children {
                    primitive_line(s, c, a, m, "      ");
                }
            }
            Kind::Clone { promotable, .. } => {
                let template = rsc.children.first().map(|&i| c.resources[i].base.clone());
                let _ = writeln!(
                    s,
                    "    * Clone Set: {} [{}]{}:",
                    rsc.id,
                    template.unwrap_or_default(),
                    if *promotable { " (promotable)" } else { "" }
                );
                let mut by_role: BTreeMap<Role, Vec<String>> = BTreeMap::new();
                let mut active_nodes = Vec::new();
                for &inst in &rsc.children {
                    let mut prims = Vec::new();
                    c.primitives_of(inst, &mut prims);
                    if let Some(&p) = prims.first() {
                        for (role, nd) in placements(c, a, p) {
                            by_role
                                .entry(role)
                                .or_default()
                                .push(c.nodes[nd].name.clone());
                            active_nodes.push(nd);
                        }
                    }
                }
                for role in [Role::Promoted, Role::Unpromoted, Role::Started] {
                    if let Some(mut v) = by_role.remove(&role) {
                        v.sort();
                        let _ = writeln!(s, "      * {}: [ {} ]", role.name(), v.join(" "));
                    }
                }
                let mut stopped: Vec<String> = (0..c.nodes.len())
                    .filter(|nd| !active_nodes.contains(nd))
                    .map(|nd| c.nodes[nd].name.clone())
                    .collect();
                stopped.sort();
                if !stopped.is_empty() {
                    let _ = writeln!(s, "      * Stopped: [ {} ]", stopped.join(" "));
                }
            }
        }
    }
}
