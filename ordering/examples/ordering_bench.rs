//! Throughput, latency and CPU of halyard-ordering's process groups: 3 nodes on
//! UDP loopback (127.0.0.1–3) in one process, Corosync `cpgperf`-style.
//!
//! ```text
//! cargo run --release -p halyard-ordering --example ordering_bench -- [secs]
//! ```
//!
//! Prints one line per case: msg/s at the slowest receiver (one sender / all
//! three sending) for 64 B, 1 KiB, 64 KiB; one-way latency p50/p99 at 1000 msg/s
//! (1 KiB, node 1 → nodes 2 and 3, same clock); process CPU per delivered
//! message (the three nodes and their receivers together).
//!
//! `HALYARD_BENCH_RT` chooses how threads are shared: `shared` (default: nodes
//! and application tasks on one 2-worker tokio runtime), `node-threads` (each
//! node on its own thread with a single-threaded runtime, like one
//! single-threaded Corosync daemon per node; application tasks on a 2-worker
//! runtime), `node-local` (each node on its own thread with a single-threaded
//! runtime that also runs that node's sender and receiver tasks: one
//! single-threaded process per node, daemon and client together), `single`
//! (everything on one single-threaded runtime).
//! `HALYARD_BENCH_LATENCY_ONLY=1` runs only the latency case;
//! `HALYARD_BENCH_SOCKBUF=default` keeps the system's socket buffer sizes. The
//! last column of the throughput lines is the host's UDP `RcvbufErrors` during
//! the case (datagrams the kernel dropped for a full receive buffer). Every datagram is
//! authenticated and encrypted (`SecureEnvelope`, XChaCha20-Poly1305), so compare
//! with Corosync knet aes256; `HALYARD_BENCH_PLAIN=1` uses a plaintext envelope
//! instead, to compare with Corosync udpu.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use halyard_membership::{
    ClusterKey, Envelope, MemoryRingIdStore, NodeId, Opened, SecureEnvelope, TotemConfig,
};
use halyard_ordering::{
    Cluster, ClusterConfig, Delivery, Group, GroupEvent, OrderingConfig, SocketBuffers,
};

struct Plain(NodeId);

impl Envelope for Plain {
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + plaintext.len());
        v.extend_from_slice(&self.0 .0.to_be_bytes());
        v.extend_from_slice(plaintext);
        v
    }
    fn open(&mut self, d: &[u8]) -> halyard_membership::Result<Opened> {
        if d.len() < 4 {
            return Err(halyard_membership::Error::Malformed("short".into()));
        }
        Ok(Opened {
            sender: NodeId(u32::from_be_bytes([d[0], d[1], d[2], d[3]])),
            plaintext: d[4..].to_vec(),
        })
    }
}

fn cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

/// The kernel's UDP `RcvbufErrors` counter (datagrams dropped because a socket's
/// receive buffer was full), from `/proc/net/snmp`; whole host, all sockets.
fn rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = s.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

async fn members(g: &mut Group, n: usize) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), g.recv())
            .await
            .expect("membership in time")
        {
            Some(GroupEvent::Membership { members, .. }) if members.len() == n => return,
            Some(_) => {}
            None => panic!("stopped"),
        }
    }
}

async fn join_all(nodes: &BTreeMap<NodeId, Cluster>, name: &str) -> Vec<Group> {
    let mut gs = Vec::new();
    for c in nodes.values() {
        gs.push(c.join(name).await.expect("join"));
    }
    for g in &mut gs {
        members(g, nodes.len()).await;
    }
    gs
}

/// Returns (msg/s at the slowest receiver, CPU µs per delivered message).
async fn throughput(
    nodes: &BTreeMap<NodeId, Cluster>,
    rts: &[tokio::runtime::Handle],
    name: &str,
    size: usize,
    all: bool,
    secs: f64,
) -> (f64, f64) {
    let gs = join_all(nodes, name).await;
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let cpu0 = cpu_ticks();
    let mut tasks = Vec::new();
    let mut recv = Vec::new();
    for (i, g) in gs.into_iter().enumerate() {
        if all || i == 0 {
            let tx = g.sender();
            let (sent, stop) = (sent.clone(), stop.clone());
            tasks.push(spawn_on(rts, i, async move {
                let p = Bytes::from(vec![7u8; size]);
                while stop.load(AtomicOrdering::Relaxed) == 0 {
                    if tx.send(p.clone(), Delivery::Agreed).await.is_err() {
                        break;
                    }
                    sent.fetch_add(1, AtomicOrdering::Relaxed);
                }
            }));
        }
        let stop = stop.clone();
        let sent = sent.clone();
        recv.push(spawn_on(rts, i, async move {
            let mut g = g;
            let mut n = 0u64;
            let mut last = Instant::now();
            loop {
                let done = stop.load(AtomicOrdering::Relaxed) == 1
                    && n >= sent.load(AtomicOrdering::Relaxed);
                if done {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(200), g.recv()).await {
                    Ok(Some(GroupEvent::Message { .. })) => {
                        n += 1;
                        last = Instant::now();
                    }
                    Ok(Some(GroupEvent::Overflow { capacity })) => {
                        panic!("a receiver fell {capacity} events behind and was removed")
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        if stop.load(AtomicOrdering::Relaxed) == 1
                            && last.elapsed() > Duration::from_secs(5)
                        {
                            break;
                        }
                    }
                }
            }
            (n, last)
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(1, AtomicOrdering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut slowest = f64::INFINITY;
    let mut delivered = 0;
    for r in recv {
        let (n, last) = r.await.expect("receiver");
        delivered = n;
        slowest = slowest.min(n as f64 / (last - start).as_secs_f64());
    }
    let cpu = (cpu_ticks() - cpu0) as f64 / 100.0; // seconds (USER_HZ = 100)
    (slowest, cpu * 1e6 / delivered.max(1) as f64)
}

/// One-way latency p50/p99 (ms) of 1 KiB messages paced at 1000/s from node 1.
async fn latency(
    nodes: &BTreeMap<NodeId, Cluster>,
    rts: &[tokio::runtime::Handle],
    secs: f64,
) -> (f64, f64) {
    let gs = join_all(nodes, "latency").await;
    let base = Instant::now();
    let count = (secs * 1000.0) as u64;
    let mut it = gs.into_iter();
    let g1 = it.next().expect("node 1");
    let tx = g1.sender();
    let sender = spawn_on(rts, 0, async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for _ in 0..count {
            tick.tick().await;
            let mut p = vec![0u8; 1024];
            p[..16].copy_from_slice(&base.elapsed().as_nanos().to_be_bytes());
            if tx.send(p, Delivery::Agreed).await.is_err() {
                break;
            }
        }
    });
    let mut rx = Vec::new();
    for (i, mut g) in it.enumerate() {
        rx.push(spawn_on(rts, i + 1, async move {
            let mut lat = Vec::new();
            while (lat.len() as u64) < count {
                match tokio::time::timeout(Duration::from_secs(5), g.recv()).await {
                    Ok(Some(GroupEvent::Message { payload, .. })) => {
                        let sent = u128::from_be_bytes(payload[..16].try_into().expect("16 bytes"));
                        lat.push((base.elapsed().as_nanos() - sent) as f64 / 1e6);
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            lat
        }));
    }
    let _ = sender.await;
    let mut all = Vec::new();
    for r in rx {
        all.extend(r.await.expect("receiver"));
    }
    all.sort_by(f64::total_cmp);
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    (q(0.5), q(0.99))
}

/// How the nodes and the application tasks share threads (`HALYARD_BENCH_RT`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    /// Everything on one 2-worker multi-threaded runtime (the default).
    Shared,
    /// Each node on its own thread with a single-threaded runtime (like one
    /// single-threaded Corosync daemon per node); application tasks on a
    /// 2-worker runtime.
    NodeThreads,
    /// Everything on one single-threaded runtime.
    Single,
    /// Each node on its own thread with a single-threaded runtime that also runs
    /// that node's application tasks: one single-threaded process per node, as
    /// Corosync's daemon with its local cpgperf client.
    NodeLocal,
}

/// Spawns a node's application task: on that node's own runtime (`NodeLocal`),
/// else on the current one.
fn spawn_on<F>(
    rts: &[tokio::runtime::Handle],
    node: usize,
    f: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match rts.get(node) {
        Some(h) => h.spawn(f),
        None => tokio::spawn(f),
    }
}

fn main() {
    let layout = match std::env::var("HALYARD_BENCH_RT").as_deref() {
        Ok("node-threads") => Layout::NodeThreads,
        Ok("single") => Layout::Single,
        Ok("node-local") => Layout::NodeLocal,
        Ok("shared") | Err(_) => Layout::Shared,
        Ok(other) => {
            panic!("HALYARD_BENCH_RT={other}: use shared, node-threads, node-local or single")
        }
    };
    let rt = if layout == Layout::Single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    }
    .enable_all()
    .build()
    .expect("runtime");
    println!("runtime layout {layout:?}");
    rt.block_on(run(layout));
}

async fn run(layout: Layout) {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let mut sockets = BTreeMap::new();
    for i in 1..=3u32 {
        let s = tokio::net::UdpSocket::bind(format!("127.0.0.{i}:0"))
            .await
            .expect("bind");
        sockets.insert(NodeId(i), s);
    }
    let members: BTreeMap<NodeId, SocketAddr> = sockets
        .iter()
        .map(|(id, s)| (*id, s.local_addr().expect("addr")))
        .collect();
    let totem = TotemConfig {
        cluster_name: "ordering-bench".into(),
        ..TotemConfig::lan_fast()
    };
    // HALYARD_FRAME overrides the frame size (bytes); HALYARD_MAX_MESSAGES the per-visit limit.
    let mut ordering = OrderingConfig::loopback();
    if let Some(f) = std::env::var("HALYARD_FRAME")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        ordering.frame_size = f;
    }
    if let Some(m) = std::env::var("HALYARD_MAX_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        ordering.max_messages = m;
    }
    println!(
        "frame_size {} max_messages {} window_size {}",
        ordering.frame_size, ordering.max_messages, ordering.window_size
    );
    // HALYARD_BENCH_SOCKBUF=default keeps the system's socket buffer sizes
    // (instead of ClusterConfig's 8 MiB), to show what they change.
    let sockbuf_default = std::env::var("HALYARD_BENCH_SOCKBUF").as_deref() == Ok("default");
    let plain = std::env::var_os("HALYARD_BENCH_PLAIN").is_some();
    println!(
        "envelope {}",
        if plain {
            "plaintext"
        } else {
            "XChaCha20-Poly1305"
        }
    );
    let key = ClusterKey::generate_os().expect("operating system RNG");
    let mut nodes = BTreeMap::new();
    let mut threads = Vec::new();
    // Per-node runtimes for the application tasks (NodeLocal only).
    let mut rts = Vec::new();
    for (id, socket) in sockets {
        let envelope: Box<dyn Envelope> = if plain {
            Box::new(Plain(id))
        } else {
            // A fresh key per run, so epoch 1 never repeats a nonce.
            Box::new(
                SecureEnvelope::new(&key, &totem.cluster_name, id, 1, members.keys().copied())
                    .expect("envelope"),
            )
        };
        let mut cfg = ClusterConfig::new(id, totem.clone(), ordering.clone(), members.clone());
        // The throughput cases measure the ring, not the application: a receiver
        // task may lag behind (e.g. descheduled on a busy host) without being
        // removed from its group, as with the unbounded queues before.
        cfg.group_event_capacity = 1 << 24;
        if sockbuf_default {
            cfg.socket_buffers = SocketBuffers {
                recv: None,
                send: None,
            };
        }
        if !matches!(layout, Layout::NodeThreads | Layout::NodeLocal) {
            let c = Cluster::start_with_socket(
                cfg,
                socket,
                Box::new(MemoryRingIdStore::new()),
                envelope,
            )
            .expect("start");
            nodes.insert(id, c);
            continue;
        }
        // Each node on its own thread with a single-threaded runtime, as each
        // Corosync node is one single-threaded daemon; the application tasks
        // (cpgperf's clients) run on the main multi-threaded runtime.
        let socket = socket.into_std().expect("std socket");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        threads.push((
            stop_tx,
            std::thread::Builder::new()
                .name(format!("node-{}", id.0))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    let c = rt.block_on(async move {
                        let socket = tokio::net::UdpSocket::from_std(socket).expect("socket");
                        Cluster::start_with_socket(
                            cfg,
                            socket,
                            Box::new(MemoryRingIdStore::new()),
                            envelope,
                        )
                        .expect("start")
                    });
                    tx.send((c, rt.handle().clone())).expect("main thread");
                    let _ = rt.block_on(stop_rx);
                })
                .expect("thread"),
        ));
        let (c, handle) = rx.recv().expect("node started");
        if layout == Layout::NodeLocal {
            rts.push(handle);
        }
        nodes.insert(id, c);
    }
    println!("case,msgs_per_s_slowest,MB_per_s,cpu_us_per_msg,rcvbuf_errors");
    let sizes: &[usize] = if std::env::var_os("HALYARD_BENCH_LATENCY_ONLY").is_some() {
        &[]
    } else {
        &[64, 1024, 65536]
    };
    for &size in sizes {
        for all in [false, true] {
            let name = format!("t{size}{all}");
            let drops = rcvbuf_errors();
            let (rate, cpu) = throughput(&nodes, &rts, &name, size, all, secs).await;
            println!(
                "{} {} B,{:.0},{:.2},{:.1},{}",
                if all { "all" } else { "one" },
                size,
                rate,
                rate * size as f64 / 1e6,
                cpu,
                rcvbuf_errors() - drops
            );
        }
    }
    let (p50, p99) = latency(&nodes, &rts, secs).await;
    println!("latency 1 KiB at 1000 msg/s: p50 {p50:.3} ms, p99 {p99:.3} ms");
    drop(nodes);
    for (stop, t) in threads {
        let _ = stop.send(());
        let _ = t.join();
    }
}
