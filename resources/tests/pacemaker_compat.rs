//! The acceptance test of the placement solver: every Pacemaker 2.1.5 regression
//! case of `shared/data/pacemaker-scheduler/` is scheduled by halyard and the revised
//! placement is compared (as a multiset of rows) with `expected/<case>.placement.tsv`.
//! For T0 and T1 the transition summary (`summary/<case>.summary`) is compared too.
//!
//! Agreement per tier is printed; the test fails when it falls below the floors in
//! `resources/floors/pacemaker_compat.txt` (floors only ever go up: raise them when
//! the solver improves; `HALYARD_PRINT_FLOORS=1` prints the current figures in the
//! file's format).

use std::collections::BTreeMap;
use std::path::Path;

use halyard_resources::placement;

mod common;

use common::{now_from_args, require_system, scheduler_corpus as shared_dir};

fn expected_actions(summary: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in summary.lines() {
        if line.starts_with("Transition Summary:") {
            inside = true;
            continue;
        }
        if inside {
            let t = line.trim();
            if t.is_empty() {
                break;
            }
            if let Some(a) = t.strip_prefix("* ") {
                out.push(normalise_action(a));
            }
        }
    }
    out.sort();
    out
}

/// `Verb rsc:N ( detail )  due to ...` -> `Verb rsc ( detail )`.
fn normalise_action(a: &str) -> String {
    if a.starts_with("Fence") {
        return a.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let a = match a.find(')') {
        Some(i) => &a[..=i],
        None => a,
    };
    let mut words = a.split_whitespace();
    let verb = words.next().unwrap_or("");
    let rsc = words.next().unwrap_or("");
    let rsc = match rsc.rfind(':') {
        Some(i) if rsc[i + 1..].chars().all(|c| c.is_ascii_digit()) => &rsc[..i],
        _ => rsc,
    };
    let rest: Vec<&str> = words.collect();
    format!("{verb} {rsc} {}", rest.join(" "))
}

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

#[test]
fn pacemaker_compat() {
    let Some(shared) = shared_dir() else {
        if require_system() {
            panic!("shared/data/pacemaker-scheduler not found beside the repository (HALYARD_REQUIRE_SYSTEM=1)");
        }
        eprintln!(
            "SKIP pacemaker_compat: shared/data/pacemaker-scheduler not found (set HALYARD_SHARED)"
        );
        return;
    };
    let data = shared.join("data/pacemaker-scheduler");
    let cases = std::fs::read_to_string(data.join("cases.tsv")).expect("cases.tsv");
    // tier -> (agree, total); "S-<tier>" for summaries.
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut disagree: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors = 0;
    for line in cases.lines().skip(1) {
        let mut f = line.split('\t');
        let (Some(case), Some(tier)) = (f.next(), f.next()) else {
            continue;
        };
        let xml = match std::fs::read_to_string(data.join(format!("xml/{case}.xml"))) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let now = std::fs::read_to_string(data.join(format!("xml/{case}.args")))
            .ok()
            .and_then(|a| now_from_args(&a));
        let expected = std::fs::read_to_string(data.join(format!("expected/{case}.placement.tsv")))
            .unwrap_or_default();
        let mut exp_rows: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        exp_rows.sort_unstable();
        let outcome = placement::read_cib(&xml, now).map(|c| {
            let o = placement::schedule(&c);
            // halyard's own TOML configuration holds the same model: same answer.
            let toml = placement::to_toml(&c).expect("model serialises to TOML");
            let back = placement::read_toml(&toml).expect("TOML reads back");
            assert_eq!(
                placement::schedule(&back).placement_tsv(),
                o.placement_tsv(),
                "{case}: TOML round trip changed the placement"
            );
            (o.placement_tsv(), o.actions)
        });
        let (ok, actions) = match outcome {
            Ok((tsv, actions)) => {
                let mut got: Vec<&str> = tsv.lines().collect();
                got.sort_unstable();
                (got == exp_rows, Some(actions))
            }
            Err(_) => {
                errors += 1;
                (false, None)
            }
        };
        for key in [tier.to_string(), "all".to_string()] {
            let e = tally.entry(key).or_insert((0, 0));
            e.1 += 1;
            if ok {
                e.0 += 1;
            }
        }
        if !ok {
            disagree
                .entry(tier.to_string())
                .or_default()
                .push(case.to_string());
        }
        if tier == "T0" || tier == "T1" {
            let summary = std::fs::read_to_string(data.join(format!("summary/{case}.summary")))
                .unwrap_or_default();
            let want = expected_actions(&summary);
            let mut got: Vec<String> = actions
                .unwrap_or_default()
                .iter()
                .map(|a| normalise_action(&a.line(0)))
                .collect();
            got.sort();
            let e = tally.entry(format!("summary-{tier}")).or_insert((0, 0));
            e.1 += 1;
            if got == want {
                e.0 += 1;
            } else {
                disagree
                    .entry(format!("summary-{tier}"))
                    .or_default()
                    .push(case.to_string());
                if std::env::var("HALYARD_CASE").as_deref() == Ok(case) {
                    for x in got.iter().filter(|x| !want.contains(x)) {
                        println!("  extra   {x}");
                    }
                    for x in want.iter().filter(|x| !got.contains(x)) {
                        println!("  missing {x}");
                    }
                }
            }
        }
    }
    println!("placement agreement with Pacemaker 2.1.5 (revised placement, multiset):");
    for (k, (a, t)) in &tally {
        println!(
            "  {k:<12} {a:>4}/{t:<4} {:>6.1}%",
            100.0 * *a as f64 / (*t).max(1) as f64
        );
    }
    println!("  ({errors} cases rejected as invalid input)");
    for t in ["T0", "T1", "summary-T0", "summary-T1"] {
        if let Some(v) = disagree.get(t) {
            println!("  disagreeing {t}: {}", v.join(" "));
        }
    }
    let floors_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("floors/pacemaker_compat.txt");
    if std::env::var("HALYARD_PRINT_FLOORS").is_ok() {
        for (k, (a, _)) in &tally {
            println!("{k} {a}");
        }
    }
    let floors = read_floors(&floors_path);
    assert!(!floors.is_empty(), "no floors in {}", floors_path.display());
    let mut below = Vec::new();
    for (k, floor) in &floors {
        let got = tally.get(k).map(|x| x.0).unwrap_or(0);
        if got < *floor {
            below.push(format!("{k}: {got} < floor {floor}"));
        }
    }
    assert!(
        below.is_empty(),
        "agreement fell below the floors: {below:?}"
    );
}

#[test]
fn actions_are_normalised() {
    assert_eq!(
        normalise_action("Stop       child-2:0     ( pcmk-1 )  due to node availability"),
        "Stop child-2 ( pcmk-1 )"
    );
    assert_eq!(
        normalise_action("Promote    fake:0     ( Unpromoted -> Promoted rhel7-auto1 )"),
        "Promote fake ( Unpromoted -> Promoted rhel7-auto1 )"
    );
}
