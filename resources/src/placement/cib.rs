//! Reading a Pacemaker CIB (XML) into the [`Cluster`] model, deriving the current
//! state from the operation history the way Pacemaker's `unpack.c` does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::digest;
use super::model::*;
use super::rules;
use super::score;
use super::xml::{self, Element};
use crate::Error;

fn invalid(e: &Element<'_>, detail: impl Into<String>) -> Error {
    Error::CibInvalid {
        element: e.describe(),
        detail: detail.into(),
    }
}

fn truthy(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "on" | "yes" | "y" | "1"
    )
}

/// Parse a duration in Pacemaker's forms (`10s`, `5min`, `1h`, `2000ms`, plain seconds)
/// into milliseconds.
pub fn parse_interval_ms(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(iso) = t.strip_prefix('p') {
        // ISO 8601 duration: P[nY][nM][nW][nD][T[nH][nM][nS]] (P30S accepted too).
        let mut total: i64 = 0;
        let mut num = String::new();
        let mut in_time = false;
        for ch in iso.chars() {
            match ch {
                '0'..='9' => num.push(ch),
                't' => in_time = true,
                u => {
                    let n: i64 = num.parse().ok()?;
                    num.clear();
                    let secs = match (u, in_time) {
                        ('y', false) => 365 * 86400,
                        ('m', false) => 30 * 86400,
                        ('w', false) => 7 * 86400,
                        ('d', false) => 86400,
                        ('h', _) => 3600,
                        ('m', true) => 60,
                        ('s', _) => 1,
                        _ => return None,
                    };
                    total += n * secs;
                }
            }
        }
        if !num.is_empty() {
            return None;
        }
        return Some(total * 1000);
    }
    if t.is_empty() {
        return Some(0);
    }
    let idx = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(idx);
    let n: i64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1000,
        "ms" | "msec" | "msecs" => 1,
        "us" | "usec" | "usecs" => return Some(n / 1000),
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hrs" => 3_600_000,
        _ => return None,
    };
    Some(n * mult)
}

/// Every `id` in the configuration section is unique, as Pacemaker's schema
/// requires (`xsd:ID`): a constraint and an nvpair sharing an id, or two resources
/// with one id, are rejected naming the second element. Elements whose `id` refers
/// to another element (`id-ref`, `resource_ref`, `obj_ref`) and those the schema
/// types as plain text (`node`, ACL targets and groups) are not definitions.
fn check_unique_ids(config: &Element<'_>) -> Result<(), Error> {
    fn walk<'a>(
        e: &'a Element<'a>,
        seen: &mut HashMap<&'a str, &'a Element<'a>>,
    ) -> Result<(), Error> {
        let reference = matches!(
            e.name.as_ref(),
            "resource_ref" | "obj_ref" | "node" | "acl_target" | "acl_group"
        ) || e.attr("id-ref").is_some();
        if let (false, Some(id)) = (reference, e.attr("id")) {
            if let Some(first) = seen.insert(id, e) {
                return Err(invalid(
                    e,
                    format!(
                        "duplicate id \"{id}\", already used by {}; every id in the configuration must be unique: rename one of them",
                        first.describe()
                    ),
                ));
            }
        }
        e.children.iter().try_for_each(|c| walk(c, seen))
    }
    let mut seen = HashMap::new();
    config.children.iter().try_for_each(|c| walk(c, &mut seen))
}

/// Index of elements carrying an id, for `id-ref` resolution.
struct Ids<'a> {
    by_id: HashMap<&'a str, &'a Element<'a>>,
}

impl<'a> Ids<'a> {
    fn new(root: &'a Element<'a>) -> Self {
        let mut by_id = HashMap::new();
        let mut stack = vec![root];
        while let Some(e) = stack.pop() {
            if e.attr("id-ref").is_none() {
                if let Some(id) = e.attr("id") {
                    by_id.insert(id, e);
                }
            }
            stack.extend(e.children.iter());
        }
        Ids { by_id }
    }

    fn resolve(&self, e: &'a Element<'a>) -> &'a Element<'a> {
        match e.attr("id-ref") {
            Some(r) => self.by_id.get(r).copied().unwrap_or(e),
            None => e,
        }
    }

    /// nvpairs of all `set_name` sets under `parent`, first set wins per name (sets
    /// are sorted by `score` descending as Pacemaker does).
    fn nvpairs(
        &self,
        parent: &'a Element<'a>,
        set_name: &'a str,
        out: &mut BTreeMap<String, String>,
    ) {
        let mut sets: Vec<&Element<'a>> = parent.kids(set_name).map(|s| self.resolve(s)).collect();
        sets.sort_by_key(|s| {
            std::cmp::Reverse(s.attr("score").and_then(score::parse).unwrap_or(0))
        });
        for set in sets {
            // Sets with rules are only honoured when the rule has no expressions
            // that need a node (we cannot evaluate them here).
            if set.kid("rule").is_some() {
                continue;
            }
            for nv in set.kids("nvpair") {
                let nv = self.resolve(nv);
                if let (Some(n), Some(v)) = (nv.attr("name"), nv.attr("value")) {
                    out.entry(n.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
    }
}

/// What one operation-history entry says.
#[derive(Debug, Clone)]
struct Op<'a> {
    task: String,
    interval: i64,
    rc: i32,
    status: i32,
    call_id: i64,
    target_rc: i32,
    /// For the configuration check (operation digests).
    history: digest::HistoryOp<'a>,
}

fn target_rc(op: &Element<'_>) -> Option<i32> {
    let key = op.attr("transition-key").or_else(|| {
        op.attr("transition-magic")
            .and_then(|m| m.split_once(';').map(|(_, k)| k))
    })?;
    key.split(':').nth(2)?.parse().ok()
}

/// Build the model from CIB text; `now` (seconds since the epoch) is used for date rules.
pub fn read(text: &str, now: Option<i64>) -> Result<Cluster, Error> {
    let root = xml::parse(text)?;
    from_element(&root, now)
}

/// Build the model from an already-parsed CIB root element.
pub fn from_element(root: &Element<'_>, now: Option<i64>) -> Result<Cluster, Error> {
    if root.name != "cib" {
        return Err(invalid(root, "the root element must be <cib>"));
    }
    let ids = Ids::new(root);
    let config = root
        .kid("configuration")
        .ok_or_else(|| invalid(root, "no <configuration> section"))?;
    check_unique_ids(config)?;
    let empty = Element::default();
    let status = root.kid("status").unwrap_or(&empty);

    // --- options ---
    let mut props = BTreeMap::new();
    if let Some(c) = config.kid("crm_config") {
        ids.nvpairs(c, "cluster_property_set", &mut props);
    }
    let prop = |k: &str| props.get(k).map(String::as_str);
    let options = Options {
        symmetric: prop("symmetric-cluster").map(truthy).unwrap_or(true),
        stonith_enabled: prop("stonith-enabled").map(truthy).unwrap_or(true),
        no_quorum_policy: prop("no-quorum-policy").unwrap_or("stop").to_string(),
        have_quorum: root.attr("have-quorum").map(truthy).unwrap_or(false),
        start_failure_is_fatal: prop("start-failure-is-fatal").map(truthy).unwrap_or(true),
        stop_orphan_resources: prop("stop-orphan-resources").map(truthy).unwrap_or(true),
        strategy: match prop("placement-strategy").unwrap_or("default") {
            "utilization" => Strategy::Utilization,
            "balanced" => Strategy::Balanced,
            "minimal" => Strategy::Minimal,
            _ => Strategy::Default,
        },
        maintenance_mode: prop("maintenance-mode").map(truthy).unwrap_or(false),
        stop_all_resources: prop("stop-all-resources").map(truthy).unwrap_or(false),
        startup_probes: prop("enable-startup-probes").map(truthy).unwrap_or(true),
        concurrent_fencing: prop("concurrent-fencing").map(truthy).unwrap_or(false),
        stop_orphan_actions: prop("stop-orphan-actions").map(truthy).unwrap_or(true),
    };

    // --- nodes ---
    let mut nodes: Vec<Node> = Vec::new();
    if let Some(ns) = config.kid("nodes") {
        for n in ns.kids("node") {
            let id = n.attr("id").ok_or_else(|| invalid(n, "node without id"))?;
            let name = n.attr("uname").unwrap_or(id).to_string();
            if n.attr("type") == Some("ping") {
                continue;
            }
            let mut attrs = BTreeMap::new();
            ids.nvpairs(n, "instance_attributes", &mut attrs);
            let mut util = BTreeMap::new();
            ids.nvpairs(n, "utilization", &mut util);
            let capacity = util
                .iter()
                .map(|(k, v)| (k.clone(), v.trim().parse().unwrap_or(0)))
                .collect();
            nodes.push(Node {
                name: name.clone(),
                id: id.to_string(),
                online: false,
                unclean: false,
                standby: false,
                maintenance: false,
                shutdown: false,
                attrs,
                capacity,
                unclean_reason: None,
            });
        }
    }
    let node_by_id: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| [(n.id.clone(), i), (n.name.clone(), i)])
        .collect();

    // Node state from <node_state>.
    let mut transient: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); nodes.len()];
    let mut seen = vec![false; nodes.len()];
    for ns in status.kids("node_state") {
        let Some(&ix) = ns
            .attr("id")
            .and_then(|i| node_by_id.get(i))
            .or_else(|| ns.attr("uname").and_then(|u| node_by_id.get(u)))
        else {
            continue;
        };
        seen[ix] = true;
        let in_ccm = ns
            .attr("in_ccm")
            .map(|v| truthy(v) || v.parse::<i64>().map(|x| x > 0).unwrap_or(false))
            .unwrap_or(false);
        let crmd = ns
            .attr("crmd")
            .map(|v| v == "online" || v.parse::<i64>().map(|x| x > 0).unwrap_or(false))
            .unwrap_or(false);
        let join = ns.attr("join").unwrap_or("down");
        let expected = ns.attr("expected").unwrap_or("down");
        let node = &mut nodes[ix];
        if options.stonith_enabled {
            if in_ccm && crmd && join == "member" {
                node.online = true;
            } else if (!in_ccm || !crmd) && expected == "member" {
                node.unclean = true;
                node.unclean_reason = Some(if in_ccm {
                    "peer process is no longer available".into()
                } else {
                    "peer is no longer part of the cluster".into()
                });
            }
        } else {
            node.online = in_ccm && crmd && join == "member";
        }
        if let Some(ta) = ns.kid("transient_attributes") {
            ids.nvpairs(ta, "instance_attributes", &mut transient[ix]);
        }
    }
    for (ix, node) in nodes.iter_mut().enumerate() {
        for (k, v) in &transient[ix] {
            node.attrs.insert(k.clone(), v.clone());
        }
        if !seen[ix] && options.stonith_enabled {
            // Never seen: unclean (startup fencing) but offline either way.
            node.unclean = true;
            node.unclean_reason = Some("node is unclean".into());
        }
        node.standby = node
            .attrs
            .get("standby")
            .map(|v| truthy(v))
            .unwrap_or(false);
        node.maintenance = node
            .attrs
            .get("maintenance")
            .map(|v| truthy(v))
            .unwrap_or(false);
        node.shutdown = node
            .attrs
            .get("shutdown")
            .map(|v| v != "0" && !v.is_empty())
            .unwrap_or(false);
        let (name, id) = (node.name.clone(), node.id.clone());
        node.attrs.insert("#uname".into(), name);
        node.attrs.insert("#id".into(), id);
        node.attrs.insert("#kind".into(), "cluster".into());
        let is_dc = root.attr("dc-uuid") == Some(node.id.as_str());
        node.attrs
            .insert("#is_dc".into(), if is_dc { "true" } else { "false" }.into());
    }

    // --- resources ---
    let mut defaults = BTreeMap::new();
    if let Some(d) = config.kid("rsc_defaults") {
        ids.nvpairs(d, "meta_attributes", &mut defaults);
    }
    let mut b = Builder {
        ids: &ids,
        defaults,
        nodes_len: nodes.len(),
        resources: Vec::new(),
        ops: HashMap::new(),
        maintenance: options.maintenance_mode,
        inst_params: HashMap::new(),
        op_timeout: config.kid("op_defaults").and_then(|d| {
            let mut m = BTreeMap::new();
            ids.nvpairs(d, "meta_attributes", &mut m);
            m.get("timeout").and_then(|t| parse_interval_ms(t))
        }),
    };
    let mut top = Vec::new();
    if let Some(rs) = config.kid("resources") {
        for r in &rs.children {
            if let Some(ix) = b.resource(r, None, None)? {
                top.push(ix);
            }
        }
    }
    let ops = std::mem::take(&mut b.ops);
    let mut resources = b.resources;

    let mut cluster = Cluster {
        options,
        nodes,
        resources: Vec::new(),
        top,
        locations: Vec::new(),
        colocations: Vec::new(),
        orders: Vec::new(),
        anon_history: Vec::new(),
        no_promote: Vec::new(),
        status_order: Vec::new(),
        orphan_history: Vec::new(),
    };
    std::mem::swap(&mut cluster.resources, &mut resources);

    // The effective "now" for failure expiry: -t, else the CIB's execution-date,
    // else (crm_simulate's wall clock) later than anything recorded.
    let effective_now = now
        .or_else(|| root.attr("execution-date").and_then(|v| v.parse().ok()))
        .unwrap_or(i64::MAX);
    unpack_status(&mut cluster, status, &ops, effective_now)?;

    // --- constraints ---
    if let Some(cs) = config.kid("constraints") {
        let lk = RscLookup::new(&cluster);
        for c in &cs.children {
            match c.name.as_ref() {
                "rsc_location" => location(&mut cluster, &lk, c, now)?,
                "rsc_colocation" => colocation(&mut cluster, &lk, c)?,
                "rsc_order" => order(&mut cluster, &lk, c)?,
                "rsc_ticket" => ticket(&mut cluster, &lk, c, status)?,
                _ => {}
            }
        }
    }
    drop_shadowed_orders(&mut cluster);
    check_colocation_cycles(&cluster)?;
    Ok(cluster)
}

/// The inverse of an action for a symmetrical ordering (`invert_action`).
fn inverse_action(a: &str) -> Option<&'static str> {
    match a {
        "start" => Some("stop"),
        "stop" => Some("start"),
        "promote" => Some("demote"),
        "demote" => Some("promote"),
        _ => None,
    }
}

/// Drop an ordering whose every action pair an earlier ordering already orders.
///
/// Pacemaker applies orderings in the order they were created, and `order_actions`
/// skips an ordering between two actions that already have one whose flags share a
/// bit with it ("Filter dups"); every ordering kind sets `pe_order_optional`, so
/// the first ordering between two actions is the only one that counts (an Optional
/// `A then B` followed by a Mandatory one leaves `B` free to start without `A`).
/// A symmetrical ordering is dropped only when its inverse pair is taken as well;
/// one with just its forward pair taken is kept whole (a known approximation).
fn drop_shadowed_orders(c: &mut Cluster) {
    let mut seen: BTreeSet<(RscIx, String, RscIx, String)> = BTreeSet::new();
    let mut keep = Vec::with_capacity(c.orders.len());
    for o in &c.orders {
        let forward = (
            o.first,
            o.first_action.clone(),
            o.then,
            o.then_action.clone(),
        );
        let inverse = if o.symmetrical {
            match (
                inverse_action(&o.then_action),
                inverse_action(&o.first_action),
            ) {
                (Some(t), Some(f)) => Some((o.then, t.to_string(), o.first, f.to_string())),
                _ => None,
            }
        } else {
            None
        };
        let shadowed = seen.contains(&forward) && inverse.as_ref().is_none_or(|i| seen.contains(i));
        keep.push(!shadowed);
        seen.insert(forward);
        if let Some(i) = inverse {
            seen.insert(i);
        }
    }
    let mut k = keep.into_iter();
    c.orders.retain(|_| k.next().unwrap_or(true));
}

/// Per-primitive operation settings from the configuration.
#[derive(Debug, Clone, Default)]
struct OpConf {
    /// on-fail per (task, interval ms).
    on_fail: Vec<(String, i64, String)>,
}

impl OpConf {
    /// Whether `ops` hold a failure of an operation configured `on-fail=block`
    /// (such a failure never expires: block_failure in failcounts.c).
    fn blocking_failure(&self, ops: &[Op<'_>]) -> bool {
        self.on_fail.iter().any(|(task, iv, of)| {
            of == "block"
                && ops.iter().any(|o| {
                    &o.task == task
                        && o.interval == *iv
                        && o.status != -1
                        && (o.status != 0 || o.rc != o.target_rc)
                })
        })
    }
}

struct Builder<'a> {
    ids: &'a Ids<'a>,
    defaults: BTreeMap<String, String>,
    nodes_len: usize,
    resources: Vec<Resource>,
    ops: HashMap<RscIx, OpConf>,
    maintenance: bool,
    /// Instance attributes per resource, for operation digests (`None`: rule-based).
    inst_params: HashMap<RscIx, Option<BTreeMap<String, String>>>,
    /// `timeout` of `op_defaults` (ms), for operation digests.
    op_timeout: Option<i64>,
}

impl<'a> Builder<'a> {
    fn new_rsc(
        &mut self,
        e: &Element<'_>,
        id: String,
        kind: Kind,
        parent: Option<RscIx>,
    ) -> Result<RscIx, Error> {
        let mut meta = BTreeMap::new();
        self.ids.nvpairs(e, "meta_attributes", &mut meta);
        if let Some(p) = parent {
            for (k, v) in &self.resources[p].meta {
                meta.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for (k, v) in &self.defaults {
            meta.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if matches!(kind, Kind::Clone { .. }) && !meta.contains_key("resource-stickiness") {
            meta.insert("resource-stickiness".into(), "1".into());
        }
        let mut util = BTreeMap::new();
        self.ids.nvpairs(e, "utilization", &mut util);
        let utilization = util
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().parse().unwrap_or(0)))
            .collect();
        let target_role_raw = meta.get("target-role").cloned();
        let target_role = match &target_role_raw {
            // Pacemaker ignores values it does not know (e.g. "#default").
            Some(v) => Role::parse(v).unwrap_or(Role::Unknown),
            None => Role::Unknown,
        };
        let sc = |k: &str, d: i64| -> Result<i64, Error> {
            match meta.get(k) {
                Some(v) if v != "default" => score::parse(v)
                    .ok_or_else(|| invalid(e, format!("bad score '{v}' for meta attribute {k}"))),
                _ => Ok(d),
            }
        };
        let stickiness = sc("resource-stickiness", 0)?;
        let migration_threshold = sc("migration-threshold", score::INFINITY)?;
        let priority = sc("priority", 0)?;
        let managed = meta.get("is-managed").map(|v| truthy(v)).unwrap_or(true)
            && !self.maintenance
            && !meta.get("maintenance").map(|v| truthy(v)).unwrap_or(false);
        let base = id.split(':').next().unwrap_or(&id).to_string();
        self.resources.push(Resource {
            id,
            base,
            kind,
            parent,
            children: Vec::new(),
            meta,
            utilization,
            target_role_raw,
            target_role,
            stickiness,
            migration_threshold,
            priority,
            managed,
            orphan: false,
            running_on: Vec::new(),
            role: Role::Unknown,
            failed: false,
            failcount: BTreeMap::new(),
            blocked: false,
            failure_ignored: false,
            hard_bans: Vec::new(),
            fatal: false,
            stop_on_fail: false,
            history_name: None,
            failed_stop: Vec::new(),
            ops: Vec::new(),
            known_on: Vec::new(),
            monitors_on: Vec::new(),
            definition_changes: Vec::new(),
            definition_changed_on: Vec::new(),
            clear_failcount_on: Vec::new(),
            digest: None,
        });
        let ix = self.resources.len() - 1;
        if let Some(p) = parent {
            self.resources[p].children.push(ix);
        }
        self.inst_params.insert(ix, instance_params(self.ids, e));
        Ok(ix)
    }

    /// Build the resource `e` (suffix = instance number for clone instances).
    fn resource(
        &mut self,
        e: &Element<'_>,
        parent: Option<RscIx>,
        inst: Option<usize>,
    ) -> Result<Option<RscIx>, Error> {
        let e = self.ids.resolve(e);
        let Some(id) = e.attr("id") else {
            if matches!(e.name.as_ref(), "primitive" | "group" | "clone" | "master") {
                return Err(invalid(e, "resource without id; add id=\"...\""));
            }
            return Ok(None);
        };
        let full = match inst {
            Some(n) => format!("{id}:{n}"),
            None => id.to_string(),
        };
        match e.name.as_ref() {
            "primitive" => {
                let class = e.attr("class").unwrap_or("ocf");
                let ty = e.attr("type").unwrap_or("");
                let agent = match e.attr("provider") {
                    Some(p) => format!("{class}:{p}:{ty}"),
                    None => format!("{class}:{ty}"),
                };
                let ix = self.new_rsc(e, full, Kind::Primitive { agent }, parent)?;
                let mut conf = OpConf::default();
                if let Some(ops) = e.kid("operations") {
                    for op in ops.kids("op") {
                        let op = self.ids.resolve(op);
                        if let (Some(name), Some(of)) = (op.attr("name"), op.attr("on-fail")) {
                            let iv = op.attr("interval").and_then(parse_interval_ms).unwrap_or(0);
                            conf.on_fail.push((name.to_string(), iv, of.to_string()));
                        }
                    }
                }
                // Instance attributes for digests: own first, then the parents'.
                let mut params = self.inst_params.get(&ix).cloned().flatten();
                let mut up = parent;
                while let Some(p) = up {
                    match (&mut params, self.inst_params.get(&p).cloned().flatten()) {
                        (Some(mine), Some(theirs)) => {
                            for (k, v) in theirs {
                                mine.entry(k).or_insert(v);
                            }
                        }
                        _ => params = None,
                    }
                    up = self.resources[p].parent;
                }
                self.resources[ix].digest = Some(digest::Config {
                    params,
                    ops: digest_ops(self.ids, e, self.op_timeout),
                    fencing: class == "stonith",
                });
                self.ops.insert(ix, conf);
                self.resources[ix].ops = op_defs(self.ids, e);
                Ok(Some(ix))
            }
            "group" => {
                let ix = self.new_rsc(e, full, Kind::Group, parent)?;
                for c in e.kids("primitive") {
                    self.resource(c, Some(ix), inst)?;
                }
                if self.resources[ix].children.is_empty() {
                    // An empty group has nothing to place.
                }
                Ok(Some(ix))
            }
            "clone" | "master" => {
                let mut meta = BTreeMap::new();
                self.ids.nvpairs(e, "meta_attributes", &mut meta);
                for (k, v) in &self.defaults {
                    meta.entry(k.clone()).or_insert_with(|| v.clone());
                }
                let num = |keys: &[&str], d: usize| -> Result<usize, Error> {
                    for k in keys {
                        if let Some(v) = meta.get(*k) {
                            return v.trim().parse::<i64>().map(|x| x.max(0) as usize).map_err(
                                |_| invalid(e, format!("bad number '{v}' for meta attribute {k}")),
                            );
                        }
                    }
                    Ok(d)
                };
                let promotable = e.name == "master"
                    || meta.get("promotable").map(|v| truthy(v)).unwrap_or(false);
                let max = num(&["clone-max"], self.nodes_len)?;
                let node_max = num(&["clone-node-max"], 1)?;
                let promoted_max = num(&["promoted-max", "master-max"], 1)?;
                let promoted_node_max = num(&["promoted-node-max", "master-node-max"], 1)?;
                let unique = meta
                    .get("globally-unique")
                    .map(|v| truthy(v))
                    .unwrap_or(false);
                let interleave = meta.get("interleave").map(|v| truthy(v)).unwrap_or(false);
                let ix = self.new_rsc(
                    e,
                    full,
                    Kind::Clone {
                        unique,
                        promotable,
                        max,
                        node_max,
                        promoted_max,
                        promoted_node_max,
                        interleave,
                    },
                    parent,
                )?;
                let child = e
                    .children
                    .iter()
                    .find(|c| matches!(c.name.as_ref(), "primitive" | "group"))
                    .ok_or_else(|| invalid(e, "clone without a primitive or group inside"))?;
                for n in 0..max.max(1) {
                    self.resource(child, Some(ix), Some(n))?;
                }
                if max == 0 {
                    // Pacemaker keeps a single orphan :0 to match history against.
                    let mut stack = vec![self.resources[ix].children[0]];
                    while let Some(x) = stack.pop() {
                        self.resources[x].orphan = true;
                        stack.extend(self.resources[x].children.iter().copied());
                    }
                }
                Ok(Some(ix))
            }
            _ => Ok(None),
        }
    }
}

/// The instance attributes of resource `e` for operation digests (first set wins
/// per name, sets by descending score); `None` when a set has a rule (Pacemaker
/// evaluates those per node; the digests are then not checked).
fn instance_params(ids: &Ids<'_>, e: &Element<'_>) -> Option<BTreeMap<String, String>> {
    let mut sets: Vec<&Element<'_>> = e
        .kids("instance_attributes")
        .map(|s| ids.resolve(s))
        .collect();
    if sets.iter().any(|s| s.kid("rule").is_some()) {
        return None;
    }
    sets.sort_by_key(|s| std::cmp::Reverse(s.attr("score").and_then(score::parse).unwrap_or(0)));
    let mut out = BTreeMap::new();
    for set in sets {
        for nv in set.kids("nvpair") {
            let nv = ids.resolve(nv);
            if let (Some(n), Some(v)) = (nv.attr("name"), nv.attr("value")) {
                // "#default" means unset (populate_hash).
                if !v.eq_ignore_ascii_case("#default") {
                    out.entry(n.to_string()).or_insert_with(|| v.to_string());
                }
            }
        }
    }
    Some(out)
}

/// The operations of primitive `e` as the digests see them (disabled ones too):
/// timeout from the `<op>`, its meta attributes, `op_defaults`, or 20 s.
fn digest_ops(
    ids: &Ids<'_>,
    e: &Element<'_>,
    default_timeout: Option<i64>,
) -> Vec<digest::OpConfig> {
    let Some(ops) = e.kid("operations").map(|o| ids.resolve(o)) else {
        return Vec::new();
    };
    ops.kids("op")
        .map(|op| ids.resolve(op))
        .filter_map(|op| {
            let mut meta = BTreeMap::new();
            ids.nvpairs(op, "meta_attributes", &mut meta);
            let timeout_ms = op
                .attr("timeout")
                .or(meta.get("timeout").map(String::as_str))
                .and_then(parse_interval_ms)
                .or(default_timeout)
                .unwrap_or(digest::DEFAULT_TIMEOUT_MS);
            let mut params = BTreeMap::new();
            ids.nvpairs(op, "instance_attributes", &mut params);
            Some(digest::OpConfig {
                name: op.attr("name")?.to_string(),
                interval_ms: op.attr("interval").and_then(parse_interval_ms).unwrap_or(0),
                timeout_ms,
                params,
                enabled: op.attr("enabled").map(truthy).unwrap_or(true),
            })
        })
        .collect()
}

/// What the configuration check needs of one `<lrm_rsc_op>`.
fn history_op<'a>(o: &'a Element<'_>) -> digest::HistoryOp<'a> {
    let s = |k: &str| o.attr(k);
    digest::HistoryOp {
        task: o.attr("operation").unwrap_or(""),
        interval_ms: o.attr("interval").and_then(|v| v.parse().ok()).unwrap_or(0),
        call_id: o.attr("call-id").and_then(|v| v.parse().ok()).unwrap_or(0),
        status: o
            .attr("op-status")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        rc: o.attr("rc-code").and_then(|v| v.parse().ok()).unwrap_or(0),
        digest: s("op-digest"),
        restart_digest: s("op-restart-digest"),
        force_restart: s("op-force-restart"),
        secure_digest: s("op-secure-digest"),
        secure_params: s("op-secure-params"),
        feature_set: s("crm_feature_set"),
        last_rc_change: o.attr("last-rc-change").and_then(|v| v.parse().ok()),
        last_failure: o.attr("id").is_some_and(|i| i.ends_with("_last_failure_0")),
    }
}

/// The `<op>` definitions of primitive `e`.
fn op_defs(ids: &Ids<'_>, e: &Element<'_>) -> Vec<OpDef> {
    let Some(ops) = e.kid("operations").map(|o| ids.resolve(o)) else {
        return Vec::new();
    };
    ops.kids("op")
        .map(|op| ids.resolve(op))
        .filter(|op| op.attr("enabled").map(truthy).unwrap_or(true))
        .filter_map(|op| {
            Some(OpDef {
                name: op.attr("name")?.to_string(),
                interval_ms: op.attr("interval").and_then(parse_interval_ms).unwrap_or(0),
                role: op
                    .attr("role")
                    .and_then(Role::parse)
                    .unwrap_or(Role::Unknown),
            })
        })
        .collect()
}

fn on_fail_for(conf: Option<&OpConf>, task: &str, interval: i64, stonith: bool) -> String {
    if let Some(c) = conf {
        for (t, iv, of) in &c.on_fail {
            if t == task && (*iv == interval || task != "monitor") {
                return of.clone();
            }
        }
    }
    match task {
        "stop" => {
            if stonith {
                "fence".into()
            } else {
                "block".into()
            }
        }
        _ => "restart".into(),
    }
}

/// Derive the current state of every resource from `<lrm_resource>` histories and
/// fail counts from transient attributes.
fn unpack_status(
    c: &mut Cluster,
    status: &Element<'_>,
    ops_conf: &HashMap<RscIx, OpConf>,
    now: i64,
) -> Result<(), Error> {
    let stonith = c.options.stonith_enabled;
    let mut fence_nodes: Vec<(NodeIx, String)> = Vec::new();
    let mut by_id: HashMap<String, RscIx> = HashMap::new();
    let mut clone_child_base: HashMap<String, RscIx> = HashMap::new();
    for (i, r) in c.resources.iter().enumerate() {
        by_id.insert(r.id.clone(), i);
        let top = c.top_of(i);
        if i != top && c.resources[top].is_clone() && r.is_primitive() {
            clone_child_base.entry(r.base.clone()).or_insert(top);
        }
    }
    // The first primitive of each base name inside its clone (looked up per
    // history entry; searching the instances each time was quadratic).
    let mut clone_first_prim: HashMap<&str, RscIx> = HashMap::new();
    {
        let mut prims_of: HashMap<RscIx, Vec<RscIx>> = HashMap::new();
        for (base, &cl) in &clone_child_base {
            let prims = prims_of.entry(cl).or_insert_with(|| {
                let mut v = Vec::new();
                c.primitives_of(cl, &mut v);
                v
            });
            if let Some(&p) = prims.iter().find(|&&p| c.resources[p].base == *base) {
                clone_first_prim.insert(base.as_str(), p);
            }
        }
    }
    for ns in status.kids("node_state") {
        if let Some(nix) = ns.attr("uname").and_then(|u| c.node_ix(u)).or_else(|| {
            ns.attr("id")
                .and_then(|i| c.nodes.iter().position(|n| n.id == i))
        }) {
            if !c.status_order.contains(&nix) {
                c.status_order.push(nix);
            }
        }
    }
    for nix in 0..c.nodes.len() {
        if !c.status_order.contains(&nix) {
            c.status_order.push(nix);
        }
    }
    for ns in status.kids("node_state") {
        let Some(nix) = ns.attr("uname").and_then(|u| c.node_ix(u)).or_else(|| {
            ns.attr("id")
                .and_then(|i| c.nodes.iter().position(|n| n.id == i))
        }) else {
            continue;
        };
        let Some(lrm) = ns.kid("lrm") else { continue };
        if !stonith && !c.nodes[nix].online && !c.nodes[nix].unclean {
            // Without fencing, a node that is down is taken as cleanly down: what
            // its history says ran there is not running (crm_simulate 2.1.5 agrees).
            continue;
        }
        let Some(lrs) = lrm.kid("lrm_resources") else {
            continue;
        };
        for lr in lrs.kids("lrm_resource") {
            let Some(rid) = lr.attr("id") else { continue };
            // Operation history, in call order.
            let mut ops: Vec<Op<'_>> = lr
                .kids("lrm_rsc_op")
                .map(|o| Op {
                    task: o.attr("operation").unwrap_or("").to_string(),
                    interval: o.attr("interval").and_then(|v| v.parse().ok()).unwrap_or(0),
                    rc: o.attr("rc-code").and_then(|v| v.parse().ok()).unwrap_or(0),
                    status: o
                        .attr("op-status")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    call_id: o.attr("call-id").and_then(|v| v.parse().ok()).unwrap_or(0),
                    target_rc: target_rc(o).unwrap_or(0),
                    history: history_op(o),
                })
                .collect();
            ops.sort_by_key(|o| if o.call_id < 0 { i64::MAX } else { o.call_id });
            // Replay.
            let mut role = Role::Unknown;
            let mut on_fail: Option<String> = None;
            let mut failed_stop = false;
            let mut hard = false;
            let mut fatal = false;
            let mut ignored = false;
            let base = rid.split(':').next().unwrap_or(rid);
            let not_anon = |i: RscIx| {
                c.resources[i].is_primitive()
                    && !matches!(
                        c.resources[c.top_of(i)].kind,
                        Kind::Clone { unique: false, .. }
                    )
            };
            let target_ix: Option<RscIx> = by_id
                .get(rid)
                .copied()
                .filter(|&i| not_anon(i))
                .or_else(|| by_id.get(base).copied().filter(|&i| not_anon(i)));
            let conf_ix = target_ix.or_else(|| clone_first_prim.get(base).copied());
            let conf = conf_ix.and_then(|i| ops_conf.get(&i));
            // Failures older than failure-timeout are ignored when no fail count is
            // still in effect (check_operation_expiry, unpack_rsc_op); never for an
            // operation configured on-fail=block (block_failure).
            let expiry_timeout_s = conf_ix
                .and_then(|i| c.resources[i].meta.get("failure-timeout"))
                .and_then(|v| parse_interval_ms(v))
                .unwrap_or(0)
                / 1000;
            let failures_may_expire = expiry_timeout_s > 0 && {
                let (count, last) = digest::fail_count(&c.nodes[nix].attrs, &[rid, base]);
                let effective =
                    count > 0 && !(last > 0 && now > last.saturating_add(expiry_timeout_s));
                let blocks = conf.is_some_and(|cf| cf.blocking_failure(&ops));
                !effective && !blocks
            };
            let mut expired_monitors: Vec<i64> = Vec::new();
            for op in &ops {
                if op.status == 1 {
                    continue; // cancelled
                }
                if op.task == "monitor" && op.interval > 0 && op.status == 0 && op.rc == 0 {
                    // A recurring monitor that is fine says nothing new.
                    if role == Role::Stopped || role == Role::Unknown {
                        role = Role::Started;
                    }
                    continue;
                }
                if op.status == -1 || op.call_id < 0 {
                    // Pending: a start or promote in flight counts as active.
                    match op.task.as_str() {
                        "start" | "migrate_from" => role = Role::Started,
                        "promote" => role = Role::Promoted,
                        _ => {}
                    }
                    continue;
                }
                let probe = op.task == "monitor" && op.interval == 0;
                let success = if probe {
                    op.rc == 0 || op.rc == 7 || op.rc == 8
                } else {
                    op.status == 0 && op.rc == op.target_rc
                        || (op.status == 0
                            && op.task == "monitor"
                            && op.rc == 8
                            && op.target_rc == 0)
                };
                if success {
                    let clear = match op.task.as_str() {
                        "start" | "migrate_from" => {
                            role = Role::Started;
                            true
                        }
                        "stop" => {
                            role = Role::Stopped;
                            true
                        }
                        "promote" => {
                            role = Role::Promoted;
                            true
                        }
                        "demote" => {
                            role = Role::Unpromoted;
                            true
                        }
                        "migrate_to" => {
                            role = Role::Stopped;
                            true
                        }
                        "monitor" => {
                            match op.rc {
                                7 => role = Role::Stopped,
                                8 => role = Role::Promoted,
                                _ => {
                                    if role < Role::Started {
                                        role = Role::Started
                                    }
                                }
                            }
                            false
                        }
                        _ => {
                            if role == Role::Unknown {
                                role = Role::Started;
                            }
                            false
                        }
                    };
                    if clear {
                        if let Some(of) = &on_fail {
                            if !matches!(of.as_str(), "stop" | "fence" | "standby" | "migrate") {
                                on_fail = None;
                            }
                        }
                        failed_stop = false;
                    }
                } else {
                    let expired = failures_may_expire
                        && op.status != 7
                        && op
                            .history
                            .last_rc_change
                            .is_some_and(|t| now >= t.saturating_add(expiry_timeout_s));
                    if expired {
                        // A recurring monitor whose own record holds the expired
                        // failure is scheduled again (inferred: failcount-block
                        // re-creates it; expire-non-blocked-failure, where the
                        // failure is only in the _last_failure_0 record, does not).
                        if op.interval > 0 && op.task == "monitor" && !op.history.last_failure {
                            expired_monitors.push(op.interval);
                        }
                        continue;
                    }
                    let of = on_fail_for(conf, &op.task, op.interval, stonith);
                    // Unimplemented recurring monitors are ordinary failures.
                    let unimplemented_recurring = op.rc == 3 && op.interval > 0;
                    if (matches!(op.rc, 2..=5) && !unimplemented_recurring) || op.status == 7 {
                        hard = true;
                        if probe {
                            continue;
                        }
                    }
                    if op.rc == 6 {
                        fatal = true;
                        if probe {
                            continue;
                        }
                    }
                    // Hard errors are not ignorable.
                    if of == "ignore" && !matches!(op.rc, 2..=6) && op.status != 7 {
                        ignored = true;
                        // An ignored failure counts as if the action had succeeded.
                        match op.task.as_str() {
                            "stop" | "migrate_to" => role = Role::Stopped,
                            "start" | "migrate_from" => role = Role::Started,
                            "promote" => role = Role::Promoted,
                            "demote" => role = Role::Unpromoted,
                            _ => {
                                if role < Role::Started {
                                    role = Role::Started;
                                }
                            }
                        }
                        continue;
                    }
                    match op.task.as_str() {
                        "stop" => {
                            role = Role::Started;
                            failed_stop = true;
                        }
                        "promote" => role = Role::Promoted,
                        "demote" => {
                            role = if of == "block" {
                                // A blocked demote leaves it promoted.
                                Role::Promoted
                            } else if op.rc == 7 {
                                Role::Stopped
                            } else {
                                Role::Unpromoted
                            }
                        }
                        "monitor" if op.rc == 8 => role = Role::Promoted,
                        "monitor" if op.rc == 7 => {
                            if role < Role::Started {
                                role = Role::Started
                            }
                        }
                        _ => {
                            if role < Role::Started {
                                role = Role::Started;
                            }
                        }
                    }
                    if of != "ignore" {
                        on_fail = Some(of);
                    }
                }
            }
            let active = matches!(role, Role::Started | Role::Unpromoted | Role::Promoted);
            // Map to a resource instance.
            let rix = match target_ix {
                Some(i) => Some(i),
                None => match clone_child_base.get(base).copied() {
                    Some(clone) => {
                        let unique =
                            matches!(c.resources[clone].kind, Kind::Clone { unique: true, .. });
                        if unique {
                            by_id.get(rid).copied()
                        } else {
                            c.anon_history.push((nix, clone, base.to_string(), active));
                            Some(match find_anon(c, clone, nix, base) {
                                Some(i) => i,
                                None => new_orphan_instance(c, clone, base),
                            })
                        }
                    }
                    None => None,
                },
            };
            let rix = match rix {
                Some(r) => r,
                None => {
                    if clone_child_base.contains_key(base) {
                        if !active {
                            continue;
                        }
                        // More active instances than configured.
                        continue;
                    }
                    // Orphan: in the status but not in the configuration.
                    if !active {
                        c.orphan_history.push((nix, rid.to_string()));
                        continue;
                    }
                    let ix = match by_id.get(rid) {
                        Some(&i) => i,
                        None => {
                            let class = lr.attr("class").unwrap_or("ocf");
                            let ty = lr.attr("type").unwrap_or("");
                            let agent = match lr.attr("provider") {
                                Some(p) => format!("{class}:{p}:{ty}"),
                                None => format!("{class}:{ty}"),
                            };
                            c.resources.push(Resource {
                                id: rid.to_string(),
                                base: rid.to_string(),
                                kind: Kind::Primitive { agent },
                                parent: None,
                                children: Vec::new(),
                                meta: BTreeMap::new(),
                                utilization: BTreeMap::new(),
                                target_role_raw: None,
                                target_role: Role::Unknown,
                                stickiness: 0,
                                migration_threshold: score::INFINITY,
                                priority: 0,
                                managed: c.options.stop_orphan_resources
                                    && !c.options.maintenance_mode,
                                orphan: true,
                                running_on: Vec::new(),
                                role: Role::Unknown,
                                failed: false,
                                failcount: BTreeMap::new(),
                                blocked: false,
                                failure_ignored: false,
                                hard_bans: Vec::new(),
                                fatal: false,
                                stop_on_fail: false,
                                history_name: None,
                                failed_stop: Vec::new(),
                                ops: Vec::new(),
                                known_on: Vec::new(),
                                monitors_on: Vec::new(),
                                definition_changes: Vec::new(),
                                definition_changed_on: Vec::new(),
                                clear_failcount_on: Vec::new(),
                                digest: None,
                            });
                            let i = c.resources.len() - 1;
                            c.top.push(i);
                            by_id.insert(rid.to_string(), i);
                            i
                        }
                    };
                    ix
                }
            };
            // A node that will be fenced resolves any failure there (its resources
            // are stopped by the fencing): on-fail=block does not block.
            let node_fenced = stonith && c.nodes[nix].unclean;
            let hist: Vec<&digest::HistoryOp<'_>> = ops.iter().map(|o| &o.history).collect();
            // The configuration check of the history (operation digests), on nodes
            // that can run actions (pcmk__handle_rsc_config_changes).
            let mut def_changes = (Vec::new(), false);
            if active {
                let node = &c.nodes[nix];
                let checked = node.maintenance
                    || (node.online && !node.shutdown && !node.unclean && !node.standby);
                if let (true, Some(conf)) =
                    (checked, c.resources[conf_ix.unwrap_or(rix)].digest.as_ref())
                {
                    let maintenance = node.maintenance
                        || c.options.maintenance_mode
                        || c.resources[rix]
                            .meta
                            .get("maintenance")
                            .map(|v| truthy(v))
                            .unwrap_or(false);
                    def_changes = digest::check_history(
                        conf,
                        nix,
                        &hist,
                        maintenance,
                        c.options.stop_orphan_actions,
                    );
                }
            }
            let params_changed = hist.iter().any(|o| o.last_failure)
                && c.resources[conf_ix.unwrap_or(rix)]
                    .digest
                    .as_ref()
                    .is_some_and(|cf| {
                        hist.iter()
                            .any(|o| digest::last_failure_params_changed(cf, o))
                    });
            // A changed agent (class, provider or type) since the history: the history
            // is deleted, after a stop where it is active (pcmk__rsc_agent_changed,
            // pcmk__schedule_cleanup). Orphans are cleaned up where they ran.
            {
                let node = &c.nodes[nix];
                let available = node.online
                    && !node.shutdown
                    && !node.unclean
                    && !node.standby
                    && !node.maintenance;
                let rsc = &c.resources[rix];
                let history_agent = {
                    let class = lr.attr("class").unwrap_or("");
                    let ty = lr.attr("type").unwrap_or("");
                    match lr.attr("provider") {
                        Some(p) => format!("{class}:{p}:{ty}"),
                        None => format!("{class}:{ty}"),
                    }
                };
                let changed = match &rsc.kind {
                    Kind::Primitive { agent } => *agent != history_agent,
                    _ => false,
                };
                let anon_instance = rsc.parent.is_some()
                    && matches!(
                        c.resources[c.top_of(rix)].kind,
                        Kind::Clone { unique: false, .. }
                    );
                let cleanup = (changed && !rsc.orphan)
                    || (rsc.orphan && !anon_instance && c.options.stop_orphan_resources);
                if cleanup && (available || (node.maintenance && node.online)) {
                    let kind = digest::ChangeKind::Delete;
                    def_changes.0.push(digest::DefinitionChange {
                        node: nix,
                        kind,
                        interval_ms: 0,
                        task_is_monitor: false,
                    });
                    if active && changed && !rsc.orphan {
                        def_changes.0.push(digest::DefinitionChange {
                            node: nix,
                            kind: digest::ChangeKind::Restart,
                            interval_ms: 0,
                            task_is_monitor: false,
                        });
                    }
                }
            }
            let r = &mut c.resources[rix];
            // A history of nothing but pending probes leaves the role unknown: the
            // resource is not known there and is probed again (process_rsc_state
            // adds to known_on only when the role is not Unknown).
            let only_pending_probes = !ops.is_empty()
                && ops.iter().all(|o| {
                    o.task == "monitor" && o.interval == 0 && (o.status == -1 || o.call_id < 0)
                });
            if !r.known_on.contains(&nix) && !only_pending_probes {
                r.known_on.push(nix);
            }
            // Recurring monitors running now: those recorded since the last
            // start-like operation (process_recurring).
            for (task, iv) in digest::active_recurring(&hist) {
                if task == "monitor" {
                    r.monitors_on.push((nix, iv));
                }
            }
            // Pacemaker's `clone_name` (unpack_find_resource): the id of the
            // instance's history, also one without an instance number (`rsc` for
            // `rsc:2`); `promotion_score` looks it up first. The active entry's
            // name wins; an id equal to the instance's is kept too (it is the
            // lookup's default anyway) and stops a later inactive entry renaming it.
            if (rid.contains(':') || rid != r.id) && (active || r.history_name.is_none()) {
                r.history_name = Some(rid.to_string());
            }
            // Fail counts whose failures all expired are cleared.
            let timeout_s = r
                .meta
                .get("failure-timeout")
                .and_then(|v| parse_interval_ms(v))
                .unwrap_or(0)
                / 1000;
            // A failure of an operation configured with on-fail=block never expires
            // (block_failure in failcounts.c).
            let blocks = conf.map(|cf| cf.blocking_failure(&ops));
            if params_changed && !r.clear_failcount_on.contains(&nix) {
                r.clear_failcount_on.push(nix);
            }
            if timeout_s > 0 && !blocks.unwrap_or(false) && !r.clear_failcount_on.contains(&nix) {
                let names = [rid, base];
                if digest::failure_expired(&hist, &c.nodes[nix].attrs, &names, timeout_s, now) {
                    r.clear_failcount_on.push(nix);
                }
            }
            r.definition_changes.extend(def_changes.0);
            for iv in expired_monitors {
                r.definition_changes.push(digest::DefinitionChange {
                    node: nix,
                    kind: digest::ChangeKind::Reschedule,
                    interval_ms: iv,
                    task_is_monitor: true,
                });
            }
            if def_changes.1 && !r.definition_changed_on.contains(&nix) {
                r.definition_changed_on.push(nix);
            }
            if hard && !r.hard_bans.contains(&nix) {
                r.hard_bans.push(nix);
            }
            if fatal {
                r.fatal = true;
            }
            if ignored {
                r.failure_ignored = true;
            }
            if active {
                match on_fail.as_deref() {
                    Some("block") if !node_fenced => {
                        r.blocked = true;
                        r.managed = false;
                    }
                    Some("stop") => r.stop_on_fail = true,
                    Some("fence") if failed_stop => fence_nodes.push((nix, r.id.clone())),
                    _ => {}
                }
                if !r.running_on.contains(&nix) {
                    r.running_on.push(nix);
                }
                if role > r.role || r.role == Role::Unknown || r.role == Role::Stopped {
                    r.role = role;
                }
                if on_fail.is_some() {
                    r.failed = true;
                }
                if failed_stop {
                    r.failed_stop.push(nix);
                }
            } else if r.role == Role::Unknown {
                r.role = Role::Stopped;
            }
        }
    }
    for (nix, rsc) in fence_nodes {
        let node = &mut c.nodes[nix];
        if !node.unclean {
            node.unclean_reason = Some(format!("{rsc} failed there"));
        }
        node.unclean = true;
    }
    // Fail counts from transient attributes.
    let names: Vec<(RscIx, String, String)> = c
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_primitive())
        .map(|(i, r)| (i, r.id.clone(), r.base.clone()))
        .collect();
    for nix in 0..c.nodes.len() {
        let attrs = c.nodes[nix].attrs.clone();
        for (k, v) in attrs.range("fail-count-".to_string()..) {
            let Some(rest) = k.strip_prefix("fail-count-") else {
                break;
            };
            let rname = rest.split('#').next().unwrap_or(rest);
            let count = score::parse(v).unwrap_or(0);
            for (i, id, base) in &names {
                let r = &c.resources[*i];
                let in_clone = r
                    .parent
                    .map(|_| c.resources[c.top_of(*i)].is_clone())
                    .unwrap_or(false);
                let hit = if in_clone {
                    let unique = matches!(
                        c.resources[c.top_of(*i)].kind,
                        Kind::Clone { unique: true, .. }
                    );
                    if unique {
                        id == rname
                    } else {
                        base == rname || id == rname
                    }
                } else {
                    id == rname
                };
                if hit {
                    let e = c.resources[*i].failcount.entry(nix).or_insert(0);
                    *e = score::add(*e, count);
                    if in_clone && base == rname {
                        // Anonymous: count it once, on the first instance.
                        break;
                    }
                }
            }
        }
    }
    // A fail count whose last failure is older than failure-timeout is not in
    // effect (pe_get_failcount with pe_fc_effective).
    for i in 0..c.resources.len() {
        let timeout_s = c.resources[i]
            .meta
            .get("failure-timeout")
            .and_then(|v| parse_interval_ms(v))
            .unwrap_or(0)
            / 1000;
        if timeout_s <= 0 || c.resources[i].failcount.is_empty() {
            continue;
        }
        let (id, base) = (c.resources[i].id.clone(), c.resources[i].base.clone());
        let nodes: Vec<NodeIx> = c.resources[i].failcount.keys().copied().collect();
        for nix in nodes {
            let (_, last) = digest::fail_count(&c.nodes[nix].attrs, &[&id, &base]);
            if last > 0 && now > last.saturating_add(timeout_s) {
                c.resources[i].failcount.remove(&nix);
            }
        }
    }
    // Roles of clones/groups follow their children for display purposes.
    Ok(())
}

/// Create an orphan instance of anonymous clone `clone` (history for more instances
/// than are configured) and return its primitive named `base`.
fn new_orphan_instance(c: &mut Cluster, clone: RscIx, base: &str) -> RscIx {
    let template = c.resources[clone].children[0];
    let n = c.resources[clone].children.len();
    let new_top = copy_subtree(c, template, Some(clone), n);
    c.resources[clone].children.push(new_top);
    let mut prims = Vec::new();
    c.primitives_of(new_top, &mut prims);
    prims
        .into_iter()
        .find(|&p| c.resources[p].base == base)
        .unwrap_or(new_top)
}

fn copy_subtree(c: &mut Cluster, src: RscIx, parent: Option<RscIx>, n: usize) -> RscIx {
    let mut r = c.resources[src].clone();
    r.id = format!("{}:{n}", r.base);
    r.parent = parent;
    r.children = Vec::new();
    r.orphan = true;
    r.running_on = Vec::new();
    r.role = Role::Unknown;
    r.failed = false;
    r.failcount = BTreeMap::new();
    r.history_name = None;
    r.failed_stop = Vec::new();
    r.hard_bans = Vec::new();
    r.known_on = Vec::new();
    r.monitors_on = Vec::new();
    r.definition_changes = Vec::new();
    r.definition_changed_on = Vec::new();
    r.clear_failcount_on = Vec::new();
    c.resources.push(r);
    let ix = c.resources.len() - 1;
    let kids = c.resources[src].children.clone();
    for k in kids {
        let ch = copy_subtree(c, k, Some(ix), n);
        c.resources[ix].children.push(ch);
    }
    ix
}

/// `find_anonymous_clone`: the instance of anonymous clone `clone` that the history
/// entry for primitive `base` on `node` belongs to; `None` means an orphan.
fn find_anon(c: &Cluster, clone: RscIx, node: NodeIx, base: &str) -> Option<RscIx> {
    let member = |inst: RscIx| {
        let mut prims = Vec::new();
        c.primitives_of(inst, &mut prims);
        prims.into_iter().find(|&p| c.resources[p].base == base)
    };
    let mut inactive = None;
    for &inst in &c.resources[clone].children {
        let mut prims = Vec::new();
        c.primitives_of(inst, &mut prims);
        let loc = prims
            .iter()
            .find_map(|&p| c.resources[p].running_on.first().copied());
        match loc {
            Some(l) if l == node => {
                let m = member(inst)?;
                if c.resources[m].running_on.is_empty() {
                    return Some(m);
                }
                return None;
            }
            Some(_) => {}
            None => {
                if inactive.is_none() {
                    inactive = member(inst);
                }
            }
        }
    }
    inactive
}

/// Resolve a resource id used by a constraint: clone children map to their clone.
/// Resource ids for constraint references, indexed once (a linear search per
/// reference was quadratic on large CIBs).
struct RscLookup {
    /// First non-orphan resource with this id.
    by_id: HashMap<String, RscIx>,
    /// First child resource with this base name.
    by_base: HashMap<String, RscIx>,
}

impl RscLookup {
    fn new(c: &Cluster) -> Self {
        let mut by_id = HashMap::new();
        let mut by_base = HashMap::new();
        for (i, r) in c.resources.iter().enumerate() {
            if !r.orphan {
                by_id.entry(r.id.clone()).or_insert(i);
            }
            if r.parent.is_some() {
                by_base.entry(r.base.clone()).or_insert(i);
            }
        }
        RscLookup { by_id, by_base }
    }
}

fn constraint_rsc(
    c: &Cluster,
    lk: &RscLookup,
    id: &str,
    e: &Element<'_>,
    attr: &str,
) -> Result<RscIx, Error> {
    if let Some(&i) = lk.by_id.get(id) {
        return Ok(i);
    }
    if let Some(&i) = lk.by_base.get(id) {
        return Ok(c.top_of(i));
    }
    Err(invalid(
        e,
        format!(
            "{attr}=\"{id}\" names no resource in <resources>; fix the id or remove the constraint"
        ),
    ))
}

fn parse_role(e: &Element<'_>, attr: &str) -> Result<Role, Error> {
    match e.attr(attr) {
        None => Ok(Role::Unknown),
        Some(v) => match Role::parse(v) {
            Some(Role::Started) => Ok(Role::Unknown),
            Some(r) => Ok(r),
            None => Err(invalid(e, format!("bad {attr} '{v}'"))),
        },
    }
}

fn location(
    c: &mut Cluster,
    lk: &RscLookup,
    e: &Element<'_>,
    now: Option<i64>,
) -> Result<(), Error> {
    let id = e.attr("id").unwrap_or("").to_string();
    let rscs: Vec<RscIx> = if let Some(r) = e.attr("rsc") {
        vec![constraint_rsc(c, lk, r, e, "rsc")?]
    } else if let Some(p) = e.attr("rsc-pattern") {
        // Only literal prefixes and '.*' suffix forms are supported.
        let prefix = p
            .trim_start_matches('^')
            .trim_end_matches(".*")
            .trim_end_matches('$');
        c.top
            .iter()
            .copied()
            .filter(|&i| c.resources[i].id.starts_with(prefix))
            .collect()
    } else if e.kid("resource_set").is_some() {
        let mut v = Vec::new();
        for set in e.kids("resource_set") {
            for rr in set.kids("resource_ref") {
                if let Some(r) = rr.attr("id") {
                    v.push(constraint_rsc(c, lk, r, e, "resource_ref")?);
                }
            }
        }
        v
    } else {
        return Err(invalid(
            e,
            "location constraint without rsc; add rsc=\"ID\"",
        ));
    };
    let role = parse_role(e, "role")?;
    let mut entries: Vec<(NodeIx, i64)> = Vec::new();
    if let Some(node) = e.attr("node") {
        let sc = e
            .attr("score")
            .ok_or_else(|| invalid(e, "location with node but no score"))?;
        let sc = score::parse(sc).ok_or_else(|| {
            invalid(
                e,
                format!("bad score '{sc}'; use an integer or [-]INFINITY"),
            )
        })?;
        if let Some(n) = c.node_ix(node) {
            entries.push((n, sc));
        }
        for rsc in rscs {
            c.locations.push(Location {
                id: id.clone(),
                rsc,
                role,
                nodes: entries.clone(),
            });
        }
        return Ok(());
    }
    for rule in e.kids("rule") {
        let rule_role = parse_role(rule, "role")?;
        let role = if rule_role != Role::Unknown {
            rule_role
        } else {
            role
        };
        let fixed = match rule.attr("score") {
            Some(s) => {
                Some(score::parse(s).ok_or_else(|| invalid(rule, format!("bad score '{s}'")))?)
            }
            None => None,
        };
        let score_attr = rule.attr("score-attribute");
        let mut entries = Vec::new();
        for (nix, node) in c.nodes.iter().enumerate() {
            if rules::eval(rule, node, now)? {
                let s = match (fixed, score_attr) {
                    (Some(s), _) => s,
                    (None, Some(a)) => match node.attrs.get(a).and_then(|v| score::parse(v)) {
                        Some(v) => v,
                        None => continue,
                    },
                    (None, None) => 0,
                };
                entries.push((nix, s));
            }
        }
        for &rsc in &rscs {
            c.locations.push(Location {
                id: id.clone(),
                rsc,
                role,
                nodes: entries.clone(),
            });
        }
    }
    Ok(())
}

fn colocation(c: &mut Cluster, lk: &RscLookup, e: &Element<'_>) -> Result<(), Error> {
    let id = e.attr("id").unwrap_or("").to_string();
    let sc = e.attr("score").unwrap_or("INFINITY");
    let score = score::parse(sc).ok_or_else(|| {
        invalid(
            e,
            format!("bad score '{sc}'; use an integer or [-]INFINITY"),
        )
    })?;
    let node_attribute = e.attr("node-attribute").unwrap_or("#uname").to_string();
    if e.kid("resource_set").is_some() {
        // Sets: members of a set with sequential=true (default) are colocated one
        // after another; sets are colocated with the previous set's first member.
        let mut prev_set: Vec<RscIx> = Vec::new();
        for set in e.kids("resource_set") {
            let members: Vec<RscIx> = set
                .kids("resource_ref")
                .filter_map(|r| r.attr("id"))
                .map(|r| constraint_rsc(c, lk, r, e, "resource_ref"))
                .collect::<Result<_, _>>()?;
            let role = parse_role(set, "role")?;
            let sequential = set.attr("sequential").map(truthy).unwrap_or(true);
            let set_score = match set.attr("score") {
                Some(s) => {
                    score::parse(s).ok_or_else(|| invalid(set, format!("bad score '{s}'")))?
                }
                None => score,
            };
            if sequential {
                for w in members.windows(2) {
                    c.colocations.push(Colocation {
                        id: id.clone(),
                        dependent: w[1],
                        primary: w[0],
                        score: set_score,
                        dependent_role: role,
                        primary_role: role,
                        node_attribute: node_attribute.clone(),
                        influence: true,
                    });
                }
            }
            if let (Some(&last_prev), Some(&first)) = (prev_set.last(), members.first()) {
                let _ = last_prev;
                for &p in &prev_set {
                    let _ = p;
                }
                // The previous set's first member is placed relative to this set's last.
                let dep = prev_set[0];
                let prim = *members.last().unwrap_or(&first);
                c.colocations.push(Colocation {
                    id: id.clone(),
                    dependent: dep,
                    primary: prim,
                    score,
                    dependent_role: Role::Unknown,
                    primary_role: role,
                    node_attribute: node_attribute.clone(),
                    influence: true,
                });
            }
            prev_set = members;
        }
        return Ok(());
    }
    let dep = e
        .attr("rsc")
        .ok_or_else(|| invalid(e, "colocation without rsc; add rsc=\"ID\""))?;
    let prim = e
        .attr("with-rsc")
        .ok_or_else(|| invalid(e, "colocation without with-rsc; add with-rsc=\"ID\""))?;
    let dependent = constraint_rsc(c, lk, dep, e, "rsc")?;
    let primary = constraint_rsc(c, lk, prim, e, "with-rsc")?;
    if dependent == primary {
        return Err(invalid(e, "a resource cannot be colocated with itself"));
    }
    let influence = e.attr("influence").map(truthy).unwrap_or_else(|| {
        c.resources[dependent]
            .meta
            .get("critical")
            .map(|v| truthy(v))
            .unwrap_or(true)
    });
    c.colocations.push(Colocation {
        id,
        dependent,
        primary,
        score,
        dependent_role: parse_role(e, "rsc-role")?,
        primary_role: parse_role(e, "with-rsc-role")?,
        node_attribute,
        influence,
    });
    Ok(())
}

/// `rsc_ticket`: what a resource does while its ticket is not granted (or in standby).
fn ticket(
    c: &mut Cluster,
    lk: &RscLookup,
    e: &Element<'_>,
    status: &Element<'_>,
) -> Result<(), Error> {
    let id = e.attr("id").unwrap_or("").to_string();
    let t = e
        .attr("ticket")
        .ok_or_else(|| invalid(e, "rsc_ticket without ticket; add ticket=\"NAME\""))?;
    let mut rscs = Vec::new();
    if let Some(r) = e.attr("rsc") {
        rscs.push((
            constraint_rsc(c, lk, r, e, "rsc")?,
            parse_role(e, "rsc-role")?,
        ));
    }
    for set in e.kids("resource_set") {
        let role = parse_role(set, "role")?;
        for rr in set.kids("resource_ref") {
            if let Some(r) = rr.attr("id") {
                rscs.push((constraint_rsc(c, lk, r, e, "resource_ref")?, role));
            }
        }
    }
    let state = status
        .kid("tickets")
        .and_then(|ts| ts.kids("ticket_state").find(|s| s.attr("id") == Some(t)));
    let granted = state
        .and_then(|s| s.attr("granted"))
        .map(truthy)
        .unwrap_or(false);
    let standby = state
        .and_then(|s| s.attr("standby"))
        .map(truthy)
        .unwrap_or(false);
    if granted && !standby {
        return Ok(());
    }
    let policy = e.attr("loss-policy").unwrap_or("stop").to_ascii_lowercase();
    let n = c.nodes.len();
    for (r, role) in rscs {
        let mut prims = Vec::new();
        c.primitives_of(r, &mut prims);
        let running: Vec<NodeIx> = prims
            .iter()
            .flat_map(|&p| c.resources[p].running_on.clone())
            .collect();
        let promoted_now = prims.iter().any(|&p| {
            c.resources[p].role == Role::Promoted && !c.resources[p].running_on.is_empty()
        });
        // What happens: ban everywhere, pin to the current nodes, or only no promotion.
        enum Effect {
            Ban,
            Pin,
            NoPromote,
            BanAndFence,
        }
        let effect = if granted {
            // Ticket in standby.
            if role == Role::Promoted && policy != "stop" {
                Effect::NoPromote
            } else {
                Effect::Ban
            }
        } else if role == Role::Promoted {
            match policy.as_str() {
                "stop" => Effect::Ban,
                "fence" if promoted_now => Effect::BanAndFence,
                _ => Effect::NoPromote,
            }
        } else {
            match policy.as_str() {
                "freeze" if !running.is_empty() => Effect::Pin,
                "fence" if !running.is_empty() => Effect::BanAndFence,
                _ => Effect::Ban,
            }
        };
        let mut ban: Vec<(NodeIx, i64)> = Vec::new();
        match effect {
            Effect::NoPromote => c.no_promote.push(r),
            Effect::Ban => ban = (0..n).map(|x| (x, -score::INFINITY)).collect(),
            Effect::BanAndFence => {
                for &nd in &running {
                    c.nodes[nd].unclean = true;
                    c.nodes[nd].unclean_reason = Some("deadman ticket was lost".into());
                }
                ban = (0..n).map(|x| (x, -score::INFINITY)).collect();
            }
            Effect::Pin => {
                ban = (0..n)
                    .filter(|x| !running.contains(x))
                    .map(|x| (x, -score::INFINITY))
                    .collect();
            }
        }
        if !ban.is_empty() {
            c.locations.push(Location {
                id: id.clone(),
                rsc: r,
                role: Role::Unknown,
                nodes: ban,
            });
        }
    }
    Ok(())
}

fn order(c: &mut Cluster, lk: &RscLookup, e: &Element<'_>) -> Result<(), Error> {
    let id = e.attr("id").unwrap_or("").to_string();
    let kind = match e.attr("kind") {
        Some(k) => match k.to_ascii_lowercase().as_str() {
            "mandatory" => OrderKind::Mandatory,
            "optional" => OrderKind::Optional,
            "serialize" => OrderKind::Serialize,
            other => {
                // Pacemaker logs a configuration error and treats it as Mandatory.
                tracing::warn!("rsc_order {id}: unknown kind '{other}', using Mandatory");
                OrderKind::Mandatory
            }
        },
        None => match e.attr("score") {
            Some(s) => {
                let v = score::parse(s).ok_or_else(|| invalid(e, format!("bad score '{s}'")))?;
                if v > 0 {
                    OrderKind::Mandatory
                } else {
                    OrderKind::Optional
                }
            }
            None => OrderKind::Mandatory,
        },
    };
    let symmetrical = e
        .attr("symmetrical")
        .map(truthy)
        .unwrap_or(kind != OrderKind::Serialize);
    if e.kid("resource_set").is_some() {
        let mut prev: Vec<RscIx> = Vec::new();
        let mut prev_action = "start".to_string();
        for set in e.kids("resource_set") {
            let members: Vec<RscIx> = set
                .kids("resource_ref")
                .filter_map(|r| r.attr("id"))
                .map(|r| constraint_rsc(c, lk, r, e, "resource_ref"))
                .collect::<Result<_, _>>()?;
            let action = set.attr("action").unwrap_or("start").to_string();
            let sequential = set.attr("sequential").map(truthy).unwrap_or(true);
            if sequential {
                for w in members.windows(2) {
                    c.orders.push(Order {
                        id: id.clone(),
                        first: w[0],
                        then: w[1],
                        first_action: action.clone(),
                        then_action: action.clone(),
                        kind,
                        symmetrical,
                    });
                }
            }
            if let (Some(&p), Some(&f)) = (prev.last(), members.first()) {
                c.orders.push(Order {
                    id: id.clone(),
                    first: p,
                    then: f,
                    first_action: prev_action.clone(),
                    then_action: action.clone(),
                    kind,
                    symmetrical,
                });
            }
            prev = members;
            prev_action = action;
        }
        return Ok(());
    }
    let first = e
        .attr("first")
        .ok_or_else(|| invalid(e, "order without first; add first=\"ID\""))?;
    let then = e
        .attr("then")
        .ok_or_else(|| invalid(e, "order without then; add then=\"ID\""))?;
    let first = constraint_rsc(c, lk, first, e, "first")?;
    let then = constraint_rsc(c, lk, then, e, "then")?;
    c.orders.push(Order {
        id,
        first,
        then,
        first_action: e.attr("first-action").unwrap_or("start").to_string(),
        then_action: e
            .attr("then-action")
            .or(e.attr("first-action"))
            .unwrap_or("start")
            .to_string(),
        kind,
        symmetrical,
    });
    Ok(())
}

/// Mandatory colocation cycles have no placement: reject them, naming a constraint.
fn check_colocation_cycles(c: &Cluster) -> Result<(), Error> {
    let n = c.resources.len();
    let mut adj: Vec<Vec<(RscIx, usize)>> = vec![Vec::new(); n];
    for (i, col) in c.colocations.iter().enumerate() {
        if col.score >= score::INFINITY
            && col.dependent_role == Role::Unknown
            && col.primary_role == Role::Unknown
        {
            adj[col.dependent].push((col.primary, i));
        }
    }
    // Iterative DFS with colours.
    let mut colour = vec![0u8; n];
    for s in 0..n {
        if colour[s] != 0 {
            continue;
        }
        let mut stack: Vec<(RscIx, usize)> = vec![(s, 0)];
        colour[s] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if *k < adj[v].len() {
                let (w, ci) = adj[v][*k];
                *k += 1;
                if colour[w] == 1 {
                    let col = &c.colocations[ci];
                    return Err(Error::CibInvalid {
                        element: format!("<rsc_colocation id=\"{}\">", col.id),
                        detail: format!(
                            "mandatory colocation cycle through {} and {}; remove one of the INFINITY colocations",
                            c.resources[col.dependent].id, c.resources[col.primary].id
                        ),
                    });
                }
                if colour[w] == 0 {
                    colour[w] = 1;
                    stack.push((w, 0));
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}
