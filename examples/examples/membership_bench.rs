//! Membership benchmarks, one `ring_node` process per node on loopback, measured
//! the way `shared/anchors/corosync/measure.py` measures Corosync:
//!
//! * `startup`: from the first node's exec to the last node delivering a regular
//!   configuration with all members;
//! * `failover`: SIGKILL of node N at a random phase 1–3 s after the last change,
//!   to the survivors' regular configuration without it (median over survivors);
//! * `idle`: a formed ring left alone; counts configuration changes (spurious).
//!
//! ```sh
//! cargo build --release -p halyard-examples --examples
//! target/release/examples/membership_bench startup  -n 3 --token 1000 -r 5
//! target/release/examples/membership_bench failover -n 5 --token 200 --coef 0 -r 7
//! target/release/examples/membership_bench idle     -n 3 --token 200 --coef 0 --secs 60
//! ```

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// One line of `ring_node` output.
#[derive(Debug, Clone)]
struct Conf {
    t: f64,
    node: u32,
    regular: bool,
    members: Vec<u32>,
}

fn parse(line: &str) -> Option<Conf> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 5 {
        return None;
    }
    Some(Conf {
        t: f[0].parse().ok()?,
        node: f[1].parse().ok()?,
        regular: f[2] == "Regular",
        members: f[4].split(',').filter_map(|s| s.parse().ok()).collect(),
    })
}

struct Cluster {
    members: String,
    extra: Vec<String>,
    dir: std::path::PathBuf,
    children: BTreeMap<u32, Child>,
    tx: mpsc::Sender<Conf>,
    rx: mpsc::Receiver<Conf>,
}

impl Cluster {
    fn new(n: u32, extra: Vec<String>) -> Cluster {
        let mut addrs = Vec::new();
        let mut hold = Vec::new();
        for i in 1..=n {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("free port");
            addrs.push(format!("{i}={}", s.local_addr().expect("addr")));
            hold.push(s);
        }
        drop(hold);
        let dir = std::env::temp_dir().join(format!("halyard-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("state dir");
        let (tx, rx) = mpsc::channel();
        Cluster {
            members: addrs.join(","),
            extra,
            dir,
            children: BTreeMap::new(),
            tx,
            rx,
        }
    }

    fn spawn(&mut self, i: u32) {
        let exe = std::env::current_exe()
            .expect("exe")
            .with_file_name("ring_node");
        let mut child = Command::new(&exe)
            .args([
                "--id",
                &i.to_string(),
                "--members",
                &self.members,
                "--state-dir",
            ])
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawning {} (build the examples first): {e}", exe.display())
            });
        let out = child.stdout.take().expect("stdout");
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(c) = parse(&line) {
                    let _ = tx.send(c);
                }
            }
        });
        self.children.insert(i, child);
    }

    fn kill(&mut self, i: u32) {
        if let Some(mut c) = self.children.remove(&i) {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn kill_all(&mut self) {
        for i in self.children.keys().copied().collect::<Vec<_>>() {
            self.kill(i);
        }
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits until each node in `nodes` delivered a regular configuration equal to
    /// `want`; returns each node's time. Also returns every other configuration seen.
    fn wait(
        &self,
        nodes: &[u32],
        want: &[u32],
        timeout: Duration,
    ) -> (BTreeMap<u32, f64>, Vec<Conf>) {
        let deadline = Instant::now() + timeout;
        let mut got = BTreeMap::new();
        let mut others = Vec::new();
        while got.len() < nodes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(c) = self.rx.recv_timeout(left) else {
                panic!("timed out waiting for {want:?} at {nodes:?}; got {got:?}");
            };
            if c.regular && c.members == want && nodes.contains(&c.node) {
                got.entry(c.node).or_insert(c.t);
            } else if c.regular {
                others.push(c);
            }
        }
        (got, others)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).cloned().unwrap_or_else(|| "all".into());
    let n: u32 = arg(&args, "-n").and_then(|s| s.parse().ok()).unwrap_or(3);
    let runs: u32 = arg(&args, "-r").and_then(|s| s.parse().ok()).unwrap_or(5);
    let secs: u64 = arg(&args, "--secs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut extra = Vec::new();
    for k in ["--token", "--coef"] {
        if let Some(v) = arg(&args, k) {
            extra.push(k.to_string());
            extra.push(v);
        }
    }
    if args.iter().any(|a| a == "--no-fast-failover") {
        extra.push("--no-fast-failover".into());
    }
    let label = format!(
        "n={n} token={} coef={}{}",
        arg(&args, "--token").unwrap_or_else(|| "default".into()),
        arg(&args, "--coef").unwrap_or_else(|| "default".into()),
        if args.iter().any(|a| a == "--no-fast-failover") {
            " no-fast-failover"
        } else {
            ""
        }
    );
    let all: Vec<u32> = (1..=n).collect();
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos() as u64
        | 1;
    let mut rand01 = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1_000_000) as f64 / 1e6
    };
    if what == "startup" {
        let mut xs = Vec::new();
        for r in 0..runs {
            let mut c = Cluster::new(n, extra.clone());
            let t0 = now();
            for i in 1..=n {
                c.spawn(i);
            }
            let (got, _) = c.wait(&all, &all, Duration::from_secs(30));
            let full = got.values().copied().fold(f64::MIN, f64::max) - t0;
            println!("{{\"run\":{r},\"n\":{n},\"full_membership_s\":{full:.4}}}");
            xs.push(full);
        }
        println!(
            "MEDIAN startup {label}: full_membership_s={:.4} (runs {runs})",
            median(xs)
        );
    } else if what == "failover" {
        let mut c = Cluster::new(n, extra.clone());
        for i in 1..=n {
            c.spawn(i);
        }
        c.wait(&all, &all, Duration::from_secs(30));
        let victim = n;
        let survivors: Vec<u32> = all.iter().copied().filter(|i| *i != victim).collect();
        let mut xs = Vec::new();
        let mut splits = 0;
        for r in 0..runs {
            std::thread::sleep(Duration::from_secs_f64(1.0 + 2.0 * rand01()));
            let t_kill = now();
            c.kill(victim);
            let (got, others) = c.wait(&survivors, &survivors, Duration::from_secs(60));
            let per: Vec<f64> = got.values().map(|t| t - t_kill).collect();
            let split = others
                .iter()
                .any(|o| o.t >= t_kill && !o.members.contains(&victim));
            splits += u32::from(split);
            let med = median(per.clone());
            let max = per.iter().copied().fold(f64::MIN, f64::max);
            println!("{{\"run\":{r},\"n\":{n},\"victim\":{victim},\"new_membership_s\":{med:.4},\"max_s\":{max:.4},\"transient_split\":{split}}}");
            xs.push(med);
            c.spawn(victim);
            c.wait(&all, &all, Duration::from_secs(30));
            std::thread::sleep(Duration::from_secs(1));
        }
        println!("MEDIAN failover {label}: new_membership_s={:.4} runs_with_transient_split={splits} (runs {runs})", median(xs));
    } else if what == "idle" {
        let mut c = Cluster::new(n, extra.clone());
        for i in 1..=n {
            c.spawn(i);
        }
        c.wait(&all, &all, Duration::from_secs(30));
        let end = Instant::now() + Duration::from_secs(secs);
        let mut changes = 0;
        while let Ok(conf) =
            c.rx.recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            if conf.regular {
                changes += 1;
                println!("spurious change: {conf:?}");
            }
        }
        println!("IDLE {label}: {secs} s, {changes} membership changes");
    } else {
        eprintln!("usage: membership_bench startup|failover|idle -n N [--token MS] [--coef MS] [-r RUNS] [--secs S] [--no-fast-failover]");
        std::process::exit(2);
    }
}
