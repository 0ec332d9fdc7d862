//! `placement-bench`: time halyard's placement solver on CIB files (build with
//! `--release`). For each file: parse + schedule, repeated `-n` times (default 3);
//! prints the best and mean wall time, the process CPU time spent, and the peak RSS
//! so far (VmHWM). Run one file per process to attribute peak RSS to one size.
//!
//! ```text
//! placement-bench [-n N] [--no-graph] [--placement OUT.tsv] CIB.xml...
//! ```
//!
//! `--no-graph` skips building the transition graph (the summary is still made), to
//! measure what the graph costs.
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
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: placement-bench [-n N] [--no-graph] [--placement OUT.tsv] CIB.xml...");
        return ExitCode::from(2);
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
