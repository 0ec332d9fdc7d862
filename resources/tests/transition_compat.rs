//! The transition graph against Pacemaker 2.1.5: for every regression case of
//! `shared/data/pacemaker-scheduler/`, halyard's graph is compared with
//! `exp/<case>.exp`, and graph invariants are checked.
//!
//! Comparison (per case):
//! - actions: the multiset of normalised action names, `operation_key@node` with
//!   clone instance numbers removed (`child:2_stop_0@n1` → `child_stop_0@n1`), so the
//!   resource, task, interval and node must agree;
//! - edges: *reachability*, not the literal edge lists. Pacemaker's `<inputs>` are
//!   neither transitively reduced nor complete in a canonical way (it writes redundant
//!   inputs, e.g. a group member's start lists both the previous member's start and the
//!   group's start pseudo action), so two graphs that constrain execution identically can
//!   list different edges. Two graphs are equivalent as schedules when the same pairs of
//!   actions are ordered, i.e. their transitive closures agree; the closures are
//!   compared on the actions both graphs contain (an action only one side has is
//!   already counted as an action disagreement).
//!
//! Agreement per tier is printed; the test fails when it falls below the floors in
//! `resources/floors/transition_compat.txt` (only ever raised; `HALYARD_PRINT_FLOORS=1`
//! prints the current figures). Invariants on every case, whatever the agreement: the
//! graph is acyclic; every fence precedes the start of every resource recovered from
//! the fenced node; nothing that `requires=fencing` is started away from an unclean
//! node without a fence before it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use halyard_resources::placement::{self, transition, GraphSummary};

mod common;

use common::{now_from_args, require_system, scheduler_corpus as shared_dir};

fn read_floors(path: &Path) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    if let Ok(t) = std::fs::read_to_string(path) {
        for line in t.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            if let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Ok(v) = v.parse() {
                    m.insert(k.to_string(), v);
                }
            }
        }
    }
    m
}

/// Ordered pairs of action names.
type Pairs = BTreeSet<(String, String)>;

/// Reachable pairs restricted to names both graphs have.
fn common_reach(a: &GraphSummary, b: &GraphSummary) -> (Pairs, Pairs) {
    let na: BTreeSet<&String> = a.actions.iter().collect();
    let nb: BTreeSet<&String> = b.actions.iter().collect();
    let keep = |p: &(String, String)| {
        na.contains(&p.0) && nb.contains(&p.0) && na.contains(&p.1) && nb.contains(&p.1)
    };
    let ra = a.reachable_pairs().into_iter().filter(keep).collect();
    let rb = b.reachable_pairs().into_iter().filter(keep).collect();
    (ra, rb)
}

/// The kind of a normalised action name, for the tally of what disagrees:
/// `clear_failcount`, `do_shutdown`, `probe`, `monitor` (recurring), `start`, ...
fn kind_of(name: &str) -> String {
    let key = name.split('@').next().unwrap_or(name);
    for special in [
        "clear_failcount",
        "do_shutdown",
        "probe_again",
        "stonith",
        "load_stopped",
        "reload-agent",
        "_delete_0",
        "notify",
        "migrate_to",
        "migrate_from",
        "one-or-more",
    ] {
        if key.contains(special) {
            return special.trim_matches('_').to_string();
        }
    }
    if key.ends_with("_monitor_0") {
        return "probe".into();
    }
    if key.contains("_monitor_") {
        return "monitor".into();
    }
    let parts: Vec<&str> = key.rsplitn(3, '_').collect();
    match parts.as_slice() {
        [_, task, _] => (*task).to_string(),
        _ => key.to_string(),
    }
}

/// The invariants of the fencing semantics and of the graph's shape.
fn check_invariants(case: &str, c: &placement::Cluster, o: &placement::Outcome) -> Vec<String> {
    let t = &o.transition;
    let mut bad = Vec::new();
    if !t.is_acyclic() {
        bad.push(format!("{case}: the graph has a cycle"));
        return bad;
    }
    let reach = t.reachability();
    let reaches = |x: usize, y: usize| reach[x][y / 64] >> (y % 64) & 1 == 1;
    for (r, rsc) in c.resources.iter().enumerate() {
        if !rsc.is_primitive() {
            continue;
        }
        let starts: Vec<usize> = (0..t.actions.len())
            .filter(|&i| {
                let a = &t.actions[i];
                a.rsc == Some(r) && (a.task == "start" || a.task == "migrate_from")
            })
            .collect();
        for &n in &rsc.running_on {
            if !c.nodes[n].unclean {
                continue;
            }
            let needs = transition::requires_fencing(c, r);
            let fence = (0..t.actions.len())
                .find(|&i| t.actions[i].task == "stonith" && t.actions[i].node == Some(n));
            for &s in &starts {
                if t.actions[s].node == Some(n) {
                    continue;
                }
                match fence {
                    Some(f) if needs && !reaches(f, s) => bad.push(format!(
                        "{case}: {} starts before node {} is fenced",
                        rsc.id, c.nodes[n].name
                    )),
                    None if needs => bad.push(format!(
                        "{case}: {} (requires=fencing) recovered from unclean node {} without fencing",
                        rsc.id, c.nodes[n].name
                    )),
                    _ => {}
                }
            }
        }
        // Without stonith, requires=fencing resources on a node that is gone stay put.
        if !c.options.stonith_enabled
            && rsc.managed
            && rsc.meta.get("requires").map(|s| s.as_str()) == Some("fencing")
            && rsc.running_on.iter().any(|&n| !c.nodes[n].online)
            && !starts.is_empty()
        {
            bad.push(format!(
                "{case}: {} requires fencing but was recovered without it",
                rsc.id
            ));
        }
    }
    bad
}

#[test]
fn transition_compat() {
    let Some(shared) = shared_dir() else {
        if require_system() {
            panic!("shared/data/pacemaker-scheduler not found beside the repository (HALYARD_REQUIRE_SYSTEM=1)");
        }
        eprintln!("SKIP transition_compat: shared/data/pacemaker-scheduler not found (set HALYARD_SHARED)");
        return;
    };
    let data = shared.join("data/pacemaker-scheduler");
    let cases = std::fs::read_to_string(data.join("cases.tsv")).expect("cases.tsv");
    let only = std::env::var("HALYARD_CASE").ok();
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut disagree: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    // Per action kind: cases (T2-T4) where Pacemaker has it and halyard not, and the
    // other way round.
    let mut missing_kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut extra_kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in cases.lines().skip(1) {
        let mut f = line.split('\t');
        let (Some(case), Some(tier)) = (f.next(), f.next()) else {
            continue;
        };
        if only.as_deref().map(|o| o != case).unwrap_or(false) {
            continue;
        }
        let Ok(xml) = std::fs::read_to_string(data.join(format!("xml/{case}.xml"))) else {
            continue;
        };
        let now = std::fs::read_to_string(data.join(format!("xml/{case}.args")))
            .ok()
            .and_then(|a| now_from_args(&a));
        let exp = std::fs::read_to_string(data.join(format!("exp/{case}.exp"))).unwrap_or_default();
        let want = GraphSummary::from_pacemaker_xml(&exp).expect("exp parses");
        let (acts_ok, edges_ok) = match placement::read_cib(&xml, now) {
            Ok(c) => {
                let o = placement::schedule(&c);
                violations.extend(check_invariants(case, &c, &o));
                let got = o.transition.summary(&c);
                // The XML halyard-simulate --graph writes reads back to the same graph.
                let back = GraphSummary::from_pacemaker_xml(&o.transition.to_pacemaker_xml(&c))
                    .expect("halyard's graph XML parses");
                assert_eq!(
                    back.action_multiset(),
                    got.action_multiset(),
                    "{case}: graph XML round trip"
                );
                assert_eq!(
                    back.reachable_pairs(),
                    got.reachable_pairs(),
                    "{case}: graph XML round trip"
                );
                let acts_ok = got.action_multiset() == want.action_multiset();
                if !acts_ok && tier != "T0" && tier != "T1" {
                    let (ga, wa) = (got.action_multiset(), want.action_multiset());
                    let (gs, ws): (BTreeSet<&String>, BTreeSet<&String>) =
                        (ga.iter().collect(), wa.iter().collect());
                    for x in ws.difference(&gs) {
                        missing_kinds
                            .entry(kind_of(x))
                            .or_default()
                            .insert(case.to_string());
                    }
                    for x in gs.difference(&ws) {
                        extra_kinds
                            .entry(kind_of(x))
                            .or_default()
                            .insert(case.to_string());
                    }
                }
                let (rg, rw) = common_reach(&got, &want);
                if only.is_some() {
                    let (ga, wa) = (got.action_multiset(), want.action_multiset());
                    for x in ga.iter().filter(|x| !wa.contains(x)) {
                        println!("  extra action   {x}");
                    }
                    for x in wa.iter().filter(|x| !ga.contains(x)) {
                        println!("  missing action {x}");
                    }
                    for (a, b) in rg.difference(&rw) {
                        println!("  extra order    {a} -> {b}");
                    }
                    for (a, b) in rw.difference(&rg) {
                        println!("  missing order  {a} -> {b}");
                    }
                    println!("{}", o.transition.executed_text(&c));
                }
                (acts_ok, rg == rw)
            }
            Err(_) => (false, false),
        };
        for (what, ok) in [
            ("actions", acts_ok),
            ("edges", edges_ok),
            ("graph", acts_ok && edges_ok),
        ] {
            for t in [tier, "all"] {
                let e = tally.entry(format!("{what}-{t}")).or_insert((0, 0));
                e.1 += 1;
                if ok {
                    e.0 += 1;
                }
            }
        }
        if !(acts_ok && edges_ok) {
            disagree.entry(tier.to_string()).or_default().push(format!(
                "{case}{}",
                match (acts_ok, edges_ok) {
                    (false, false) => "(a,e)",
                    (false, true) => "(a)",
                    _ => "(e)",
                }
            ));
        }
    }
    println!(
        "transition graph agreement with Pacemaker 2.1.5 (exp/, actions multiset + reachability):"
    );
    for (k, (a, t)) in &tally {
        println!(
            "  {k:<14} {a:>4}/{t:<4} {:>6.1}%",
            100.0 * *a as f64 / (*t).max(1) as f64
        );
    }
    for t in ["T0", "T1", "T2", "T3", "T4"] {
        if let Some(v) = disagree.get(t) {
            println!("  disagreeing {t}: {}", v.join(" "));
        }
    }
    for (what, m) in [("missing", &missing_kinds), ("extra", &extra_kinds)] {
        let mut v: Vec<(usize, &String)> = m.iter().map(|(k, cs)| (cs.len(), k)).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        let line: Vec<String> = v.iter().map(|(n, k)| format!("{k}={n}")).collect();
        println!(
            "  T2-T4 cases with {what} actions, by kind: {}",
            line.join(" ")
        );
        if let Ok(k) = std::env::var("HALYARD_KIND") {
            if let Some(cs) = m.get(&k) {
                let cs: Vec<&str> = cs.iter().map(String::as_str).collect();
                println!("    {what} {k}: {}", cs.join(" "));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "graph invariants violated:\n{}",
        violations.join("\n")
    );
    if only.is_some() {
        return;
    }
    if std::env::var("HALYARD_PRINT_FLOORS").is_ok() {
        for (k, (a, _)) in &tally {
            println!("{k} {a}");
        }
    }
    let floors_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("floors/transition_compat.txt");
    let floors = read_floors(&floors_path);
    assert!(!floors.is_empty(), "no floors in {}", floors_path.display());
    let below: Vec<String> = floors
        .iter()
        .filter_map(|(k, floor)| {
            let got = tally.get(k).map(|x| x.0).unwrap_or(0);
            (got < *floor).then(|| format!("{k}: {got} < floor {floor}"))
        })
        .collect();
    assert!(
        below.is_empty(),
        "agreement fell below the floors: {below:?}"
    );
}

/// Compare halyard's graph for any CIB with a graph written by `crm_simulate -G`
/// (e.g. the benchmark CIBs): `HALYARD_CIB=cib.xml HALYARD_EXP=graph.xml cargo test
/// -p halyard-resources --test transition_compat compare_files -- --nocapture`.
#[test]
fn compare_files() {
    let (Ok(cib), Ok(exp)) = (std::env::var("HALYARD_CIB"), std::env::var("HALYARD_EXP")) else {
        eprintln!("SKIP compare_files: set HALYARD_CIB and HALYARD_EXP to compare one graph");
        return;
    };
    let xml = std::fs::read_to_string(&cib).expect("HALYARD_CIB readable");
    let c = placement::read_cib(&xml, None).expect("CIB reads");
    let o = placement::schedule(&c);
    let got = o.transition.summary(&c);
    let want = GraphSummary::from_pacemaker_xml(
        &std::fs::read_to_string(&exp).expect("HALYARD_EXP readable"),
    )
    .expect("graph parses");
    let (ga, wa) = (got.action_multiset(), want.action_multiset());
    let (rg, rw) = common_reach(&got, &want);
    println!(
        "actions: halyard {} pacemaker {} same multiset: {}; ordered pairs among common actions: halyard {} pacemaker {} common {}",
        ga.len(),
        wa.len(),
        ga == wa,
        rg.len(),
        rw.len(),
        rg.intersection(&rw).count()
    );
    for (a, b) in rg.symmetric_difference(&rw).take(20) {
        println!("  differs: {a} -> {b}");
    }
    assert!(o.transition.is_acyclic());
}

fn fixture(name: &str) -> String {
    fixture_in("fencing", name)
}

fn fixture_in(dir: &str, name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Fencing semantics against the real thing: node2 left the cluster with `a`
/// (requires=fencing) and `b` (requires=quorum) active there. With stonith, node2 is
/// fenced, `a` starts elsewhere only after the fence, `b` does not wait for it; the
/// graph equals crm_simulate's (actions and every ordered pair). Without stonith,
/// Pacemaker takes node2 as cleanly down: both start elsewhere, no fence.
#[test]
fn fencing_matches_crm_simulate() {
    for (cib, exp, fence) in [
        ("stonith-on.xml", "stonith-on.exp", true),
        ("stonith-off.xml", "stonith-off.exp", false),
    ] {
        let c = placement::read_cib(&fixture(cib), None).expect("fixture reads");
        let o = placement::schedule(&c);
        let got = o.transition.summary(&c);
        let want = GraphSummary::from_pacemaker_xml(&fixture(exp)).expect("exp parses");
        assert_eq!(
            got.action_multiset(),
            want.action_multiset(),
            "{cib}: actions"
        );
        assert_eq!(
            got.reachable_pairs(),
            want.reachable_pairs(),
            "{cib}: ordering"
        );
        let lines: Vec<String> = o.actions.iter().map(|a| a.line(0)).collect();
        let fence_line = "Fence (reboot) node2 'peer is no longer part of the cluster'".to_string();
        assert_eq!(lines.contains(&fence_line), fence, "{cib}: {lines:?}");
        assert!(check_invariants(cib, &c, &o).is_empty());
        let text = o.simulate_text(&c);
        assert!(text.contains("Executing Cluster Transition:"), "{text}");
        assert_eq!(text.contains("  * Fencing node2 (reboot)"), fence, "{text}");
    }
}

/// halyard's own model can describe what a CIB cannot: an unclean node with stonith
/// disabled. Then a resource that requires fencing is not recovered elsewhere (it
/// stays, blocked, and the explanation says why), while one that requires only quorum
/// is; nothing is fenced.
#[test]
fn requires_fencing_without_stonith_is_not_recovered() {
    let mut c = placement::read_cib(&fixture("stonith-on.xml"), None).expect("fixture reads");
    c.options.stonith_enabled = false;
    let toml = placement::to_toml(&c).expect("model serialises");
    let c = placement::read_toml(&toml).expect("model reads back");
    let node2 = c.node_ix("node2").expect("node2");
    assert!(c.nodes[node2].unclean);
    let o = placement::schedule(&c);
    let a = c.rsc_ix("a").expect("a");
    let b = c.rsc_ix("b").expect("b");
    let t = &o.transition;
    let starts = |r: usize| {
        t.actions
            .iter()
            .filter(|x| x.rsc == Some(r) && x.task == "start")
            .count()
    };
    assert_eq!(starts(a), 0, "a must not be recovered without fencing");
    assert_eq!(starts(b), 1, "b (requires=quorum) is recovered");
    assert!(t.actions.iter().all(|x| x.task != "stonith"));
    assert!(
        o.actions.iter().all(|x| x.verb != "Fence" && x.rsc != "a"),
        "{:?}",
        o.actions
    );
    let why = o.explain(&c, "a").expect("a explained");
    assert!(why.contains("requires=fencing"), "{why}");
    assert!(check_invariants("toml", &c, &o).is_empty());
}

/// A promoted instance restarted in place only because of a mandatory ordering: the
/// graph has its demote, stop and start but no promote (it equals crm_simulate's),
/// the revised status shows it unpromoted, and the summary names its role.
#[test]
fn promoted_instance_restarted_by_an_order_is_not_promoted_again() {
    let c =
        placement::read_cib(&fixture_in("restart", "by-order.xml"), None).expect("fixture reads");
    let o = placement::schedule(&c);
    let want = GraphSummary::from_pacemaker_xml(&fixture_in("restart", "by-order.exp"))
        .expect("exp parses");
    let got = o.transition.summary(&c);
    assert_eq!(got.action_multiset(), want.action_multiset(), "actions");
    assert_eq!(got.reachable_pairs(), want.reachable_pairs(), "ordering");
    let rows: Vec<String> = o
        .placement
        .iter()
        .map(|r| format!("{} {} {}", r.path, r.role, r.node))
        .collect();
    assert!(
        rows.contains(&"ms/st Unpromoted node1".to_string()),
        "{rows:?}"
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.contains("Promoted") && !r.contains("Unpromoted")),
        "{rows:?}"
    );
    let lines: Vec<String> = o.actions.iter().map(|a| a.line(0)).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Restart") && l.contains("Promoted node1")),
        "{lines:?}"
    );
    let text = o.simulate_text(&c);
    assert!(text.contains("Unpromoted: [ node1 node2 ]"), "{text}");
}
