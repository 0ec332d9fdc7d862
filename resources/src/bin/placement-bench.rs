//! `placement-bench`: time halyard's placement solver on CIB files (build with
//! `--release`). For each file: parse + schedule, repeated `-n` times (default 3);
//! prints the best and mean wall time, the process CPU time spent, and the peak RSS
//! so far (VmHWM). Run one file per process to attribute peak RSS to one size.
//!
//! ```text
//! placement-bench [-n N] [--no-graph] [--placement OUT.tsv] CIB.xml...
//! placement-bench --node-failure [-n N] [--no-graph] CIB.xml...
//! ```
//!
//! `--no-graph` skips building the transition graph (the summary is still made), to
//! measure what the graph costs.
//!
//! `--node-failure`: parse and schedule the CIB once, then mark one node that runs
//! resources as lost (the first such node in configuration order: unclean when
//! `stonith-enabled`, as Pacemaker sees a node that left the membership, otherwise
//! offline) and schedule again from the in-memory model, `-n` times; prints the
//! CPU time of that re-scheduling (per repetition) besides the first full
//! parse + schedule.
#![deny(unsafe_code)]

use halyard_resources::placement;
use std::process::ExitCode;
use std::time::Instant;

/// User+system CPU seconds of this process, from /proc/self/stat (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut reps = 3usize;
    let mut files = Vec::new();
    let mut placement_out: Option<String> = None;
    let mut graph = true;
    let mut node_failure = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-n" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => reps = n,
                _ => {
                    eprintln!("placement-bench: -n needs a positive number");
                    return ExitCode::from(2);
                }
            },
            "--placement" => placement_out = args.next(),
            "--no-graph" => graph = false,
            "--node-failure" => node_failure = true,
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: placement-bench [-n N] [--no-graph] [--placement OUT.tsv] CIB.xml...");
        return ExitCode::from(2);
    }
    if node_failure {
        return failover(&files, reps, graph);
    }
    println!("file\treps\tbest_wall_s\tmean_wall_s\tcpu_s_per_rep\tpeak_rss_mb\trows");
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("placement-bench: {f}: {e}");
                return ExitCode::from(1);
            }
        };
        let cpu0 = cpu_seconds().unwrap_or(0.0);
        let mut best = f64::MAX;
        let mut total = 0.0;
        let mut rows = 0;
        let mut tsv = String::new();
        for _ in 0..reps {
            let t = Instant::now();
            let cluster = match placement::read_cib(&text, None) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("placement-bench: {f}: {e}");
                    return ExitCode::from(1);
                }
            };
            if std::env::var("HALYARD_BENCH_MEM").is_ok() {
                eprintln!("after parse: peak {:.1} MB", peak_rss_mb().unwrap_or(0.0));
            }
            let out = placement::schedule_with(&cluster, graph);
            let dt = t.elapsed().as_secs_f64();
            rows = out.placement.len();
            tsv = out.placement_tsv();
            best = best.min(dt);
            total += dt;
        }
        let cpu = (cpu_seconds().unwrap_or(0.0) - cpu0) / reps as f64;
        println!(
            "{f}\t{reps}\t{best:.4}\t{:.4}\t{cpu:.3}\t{:.1}\t{rows}",
            total / reps as f64,
            peak_rss_mb().unwrap_or(0.0)
        );
        if let Some(p) = &placement_out {
            if let Err(e) = std::fs::write(p, &tsv) {
                eprintln!("placement-bench: {p}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `--node-failure`: full parse + schedule, then re-scheduling after one node is lost.
fn failover(files: &[String], reps: usize, graph: bool) -> ExitCode {
    println!(
        "file\tfailed_node\tfull_cpu_s\treschedule_reps\treschedule_best_wall_s\treschedule_cpu_s_per_rep\tmoved_rows\tpeak_rss_mb"
    );
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("placement-bench: {f}: {e}");
                return ExitCode::from(1);
            }
        };
        let cpu0 = cpu_seconds().unwrap_or(0.0);
        let cluster = match placement::read_cib(&text, None) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("placement-bench: {f}: {e}");
                return ExitCode::from(1);
            }
        };
        let before = placement::schedule_with(&cluster, graph).placement_tsv();
        let full_cpu = cpu_seconds().unwrap_or(0.0) - cpu0;
        let Some(lost) = (0..cluster.nodes.len()).find(|&nd| {
            cluster.nodes[nd].available()
                && cluster.resources.iter().any(|r| r.running_on.contains(&nd))
        }) else {
            eprintln!("placement-bench: {f}: no node runs resources");
            return ExitCode::from(1);
        };
        let mut failed = cluster.clone();
        let stonith = failed.options.stonith_enabled;
        let node = &mut failed.nodes[lost];
        node.online = false;
        node.unclean = stonith;
        let cpu1 = cpu_seconds().unwrap_or(0.0);
        let mut best = f64::MAX;
        let mut after = String::new();
        for _ in 0..reps {
            let t = Instant::now();
            after = placement::schedule_with(&failed, graph).placement_tsv();
            best = best.min(t.elapsed().as_secs_f64());
        }
        let cpu = (cpu_seconds().unwrap_or(0.0) - cpu1) / reps as f64;
        let b: std::collections::BTreeSet<&str> = before.lines().collect();
        let moved = after.lines().filter(|l| !b.contains(l)).count();
        println!(
            "{f}\t{}\t{full_cpu:.3}\t{reps}\t{best:.4}\t{cpu:.4}\t{moved}\t{:.1}",
            cluster.nodes[lost].name,
            peak_rss_mb().unwrap_or(0.0)
        );
    }
    ExitCode::SUCCESS
}
