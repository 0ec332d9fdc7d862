//! Executor overhead benchmark (a plain `--release` binary, no criterion).
//!
//! ```text
//! cargo bench -p halyard-resources --bench agents -- [OCF_OPS] [ANCHOR_OPS] [NATIVE_OPS]
//! ```
//!
//! Measures, in one run on this machine:
//! 1. `ocf:heartbeat:Dummy monitor` (resource started, rc 0) through the executor,
//!    one resource, ops one after another: OCF_OPS (default 10,000);
//! 2. the same agent and action run by the anchor `shared/anchors/agents/
//!    ocf-run-direct.sh` (bash + coreutils `timeout` + `env -i`), ANCHOR_OPS
//!    (default 1,000; per-op figures are compared, so fewer ops only scale);
//! 3. the same agent exec'd by a bare `std::process::Command` (no process group, no
//!    capture, no executor): the floor;
//! 4. a native Rust agent (`FileLockAgent`) monitor through the executor,
//!    NATIVE_OPS (default 10,000 x 10) ops: one at a time on one resource, and
//!    pipelined over 16 resources with results read from the stream.
//!
//! CPU per op is user+system time of this process and its waited-for children
//! (`/proc/self/stat` utime+stime+cutime+cstime, the same counters as
//! `getrusage(RUSAGE_SELF)+getrusage(RUSAGE_CHILDREN)`, 10 ms ticks).

use halyard_resources::agent::native::FileLockAgent;
use halyard_resources::agent::ocf::{OcfAgent, DEFAULT_OCF_ROOT};
use halyard_resources::agent::{Action, ResourceAgent, Status};
use halyard_resources::executor::{Executor, OpEvent, DEFAULT_MAX_CONCURRENT};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds used by this process and its reaped children.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|s| s.parse().unwrap_or(0))
        .collect();
    // After ") ": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    let ticks: u64 = f.get(11..15).map(|s| s.iter().sum()).unwrap_or(0);
    ticks as f64 / 100.0
}

struct Row {
    name: String,
    ops: usize,
    wall: Duration,
    cpu: f64,
}

impl Row {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }
    fn us_per_op(&self) -> f64 {
        self.wall.as_secs_f64() * 1e6 / self.ops as f64
    }
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu * 1e6 / self.ops as f64
    }
}

async fn measure<F, Fut>(name: &str, ops: usize, f: F) -> Row
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    f().await;
    let wall = t0.elapsed();
    let cpu = cpu_seconds() - c0;
    let r = Row {
        name: name.to_string(),
        ops,
        wall,
        cpu,
    };
    eprintln!(
        "{:<58} {:>8} ops {:>10.1} ops/s {:>9.1} us/op wall {:>9.1} us/op CPU",
        r.name,
        r.ops,
        r.ops_per_s(),
        r.us_per_op(),
        r.cpu_us_per_op()
    );
    r
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ocf_ops = arg(1, 10_000);
    let anchor_ops = arg(2, 1_000);
    let native_ops = arg(3, 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = rt.block_on(run_ocf(ocf_ops, anchor_ops));
    rows.extend(rt.block_on(run_native(native_ops, "multi-thread rt")));
    drop(rt);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rows.extend(rt.block_on(run_native(native_ops, "current-thread rt")));
    print_table(&rows);
}

fn temp_dir(tag: &str) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("halyard-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    tmp
}

async fn run_ocf(ocf_ops: usize, anchor_ops: usize) -> Vec<Row> {
    let shared = std::env::var_os("HALYARD_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let anchor = shared.join("anchors/agents/ocf-run-direct.sh");
    let tmp = temp_dir("ocf");
    let state = tmp.join("dummy.state").to_string_lossy().into_owned();
    let mut rows = Vec::new();

    let have_dummy = std::path::Path::new(DEFAULT_OCF_ROOT)
        .join("resource.d/heartbeat/Dummy")
        .is_file();
    if have_dummy && anchor.is_file() {
        let agent = Arc::new(OcfAgent::new(DEFAULT_OCF_ROOT, "heartbeat", "Dummy").expect("Dummy"));
        let (ex, _events) = Executor::new("bench");
        let mut params = BTreeMap::new();
        params.insert("state".to_string(), state.clone());
        ex.register("dummy", agent.clone(), params).unwrap();
        let ctx = ex.context("dummy").unwrap();
        let r = ex
            .execute("dummy", Action::Start, ctx.clone())
            .await
            .unwrap();
        assert_eq!(r.record.status, Status::Success);

        rows.push(
            measure(
                "ocf:heartbeat:Dummy monitor via executor",
                ocf_ops,
                || async {
                    for _ in 0..ocf_ops {
                        let r = ex
                            .execute("dummy", Action::Monitor, ctx.clone())
                            .await
                            .unwrap();
                        assert_eq!(r.record.status, Status::Success, "{:?}", r.outcome);
                    }
                },
            )
            .await,
        );
        let anchor_row = measure(
            "ocf:heartbeat:Dummy monitor via ocf-run-direct.sh (anchor)",
            anchor_ops,
            || async {
                for _ in 0..anchor_ops {
                    let st = std::process::Command::new("bash")
                        .arg(&anchor)
                        .args(["heartbeat", "Dummy", "monitor", "dummy"])
                        .arg(format!("state={state}"))
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .expect("anchor");
                    assert_eq!(st.code(), Some(0));
                }
            },
        )
        .await;
        rows.push(anchor_row);
        let env = agent.environment("monitor", &ctx, None);
        rows.push(
            measure(
                "ocf:heartbeat:Dummy monitor, bare Command (floor)",
                anchor_ops,
                || async {
                    for _ in 0..anchor_ops {
                        let st = std::process::Command::new(agent.path())
                            .arg("monitor")
                            .env_clear()
                            .envs(env.iter().map(|(k, v)| (k, v)))
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null())
                            .status()
                            .expect("bare");
                        assert_eq!(st.code(), Some(0));
                    }
                },
            )
            .await,
        );
        let _ = ex.execute("dummy", Action::Stop, ctx.clone()).await;
    } else {
        eprintln!(
            "SKIP OCF rows: need {DEFAULT_OCF_ROOT}/resource.d/heartbeat/Dummy and {}",
            anchor.display()
        );
    }

    let _ = std::fs::remove_dir_all(&tmp);
    rows
}

async fn run_native(native_ops: usize, flavor: &str) -> Vec<Row> {
    let tmp = temp_dir("native");
    let mut rows = Vec::new();
    // The pipelined run submits every call before reading a result: the stream
    // must hold them all, or the tail would arrive as a Lagged notice.
    let (ex, mut events) = Executor::with_limits("bench", DEFAULT_MAX_CONCURRENT, native_ops);
    let agent = Arc::new(FileLockAgent::new());
    let dir = tmp.to_string_lossy().into_owned();
    let lanes = 16;
    for i in 0..lanes {
        let mut p = BTreeMap::new();
        p.insert("dir".to_string(), dir.clone());
        ex.register(format!("lock{i}"), agent.clone(), p).unwrap();
        let ctx = ex.context(&format!("lock{i}")).unwrap();
        let r = ex
            .execute(&format!("lock{i}"), Action::Start, ctx)
            .await
            .unwrap();
        assert_eq!(r.record.status, Status::Success);
    }
    let ctx0 = ex.context("lock0").unwrap();
    rows.push(
        measure(
            &format!("native FileLockAgent monitor via executor, one at a time, {flavor}"),
            native_ops,
            || async {
                for _ in 0..native_ops {
                    let r = ex
                        .execute("lock0", Action::Monitor, ctx0.clone())
                        .await
                        .unwrap();
                    debug_assert_eq!(r.record.status, Status::Success);
                }
            },
        )
        .await,
    );
    // Drain the results of the sequential run.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), events.recv()).await {}
    let ctxs: Vec<_> = (0..lanes)
        .map(|i| ex.context(&format!("lock{i}")).unwrap())
        .collect();
    rows.push(
        measure(
            &format!("native FileLockAgent monitor via executor, 16 resources pipelined, {flavor}"),
            native_ops,
            || async {
                for n in 0..native_ops {
                    let i = n % lanes;
                    ex.submit(&format!("lock{i}"), Action::Monitor, ctxs[i].clone())
                        .unwrap();
                }
                let mut ok = 0;
                for _ in 0..native_ops {
                    let Some(OpEvent::Result(r)) = events.recv().await else {
                        panic!("the stream lagged or ended");
                    };
                    ok += usize::from(r.record.status == Status::Success);
                }
                assert_eq!(ok, native_ops);
            },
        )
        .await,
    );
    rows.push(
        measure(
            &format!("native FileLockAgent monitor, direct call (floor), {flavor}"),
            native_ops,
            || async {
                for _ in 0..native_ops {
                    let o = agent.monitor(&ctx0).await;
                    debug_assert_eq!(o.status, Status::Success);
                }
            },
        )
        .await,
    );
    for i in 0..lanes {
        let ctx = ex.context(&format!("lock{i}")).unwrap();
        let _ = ex.execute(&format!("lock{i}"), Action::Stop, ctx).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    rows
}

fn print_table(rows: &[Row]) {
    println!("| measurement | ops | ops/s | wall us/op | CPU us/op (incl. children) |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} |",
            r.name,
            r.ops,
            r.ops_per_s(),
            r.us_per_op(),
            r.cpu_us_per_op()
        );
    }
    if rows.len() >= 2 && rows[1].name.contains("anchor") {
        let (ours, anchor) = (&rows[0], &rows[1]);
        println!();
        println!(
            "OCF via executor / anchor: wall {:.3}x, CPU {:.3}x (goal <= 1.1x)",
            ours.us_per_op() / anchor.us_per_op(),
            ours.cpu_us_per_op() / anchor.cpu_us_per_op()
        );
        println!(
            "OCF via executor / bare Command: wall {:.3}x, CPU {:.3}x",
            ours.us_per_op() / rows[2].us_per_op(),
            ours.cpu_us_per_op() / rows[2].cpu_us_per_op()
        );
    }
}
