//! Three Totem nodes on loopback: they form a ring, one is killed, the other two
//! form a new ring, the killed one restarts and rejoins with a higher ring id.
//! Every configuration change is printed with its time since start. Uses the
//! `lan_fast()` timers (token 300 ms) and exits by itself in about two seconds.
//!
//! ```sh
//! cargo run --release -p halyard-examples --example ring
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use halyard_membership::crypto::next_epoch;
use halyard_membership::{
    ClusterKey, ConfigurationKind, Event, FileRingIdStore, Node, NodeConfig, NodeEvent, NodeHandle,
    NodeId, RingId, SecureEnvelope, TotemConfig,
};
use tokio::sync::mpsc;

type Tx = mpsc::UnboundedSender<(NodeId, Instant, Event)>;

async fn start(
    id: NodeId,
    members: &BTreeMap<NodeId, SocketAddr>,
    dir: &std::path::Path,
    key: &ClusterKey,
    tx: &Tx,
) -> NodeHandle {
    let totem = TotemConfig::lan_fast();
    // Every datagram is authenticated and encrypted with the cluster key; the
    // epoch (persisted, +1 per start) keeps nonces unique across restarts.
    let epoch = next_epoch(dir.join(format!("epoch-{}", id.0))).expect("epoch file");
    let envelope =
        SecureEnvelope::new(key, &totem.cluster_name, id, epoch, members.keys().copied())
            .expect("valid envelope");
    let config = NodeConfig::new(id, totem, members.clone());
    let store = FileRingIdStore::in_dir(dir, id);
    let (handle, mut events) = Node::start(config, Box::new(store), Box::new(envelope))
        .await
        .expect("node starts");
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            match e {
                NodeEvent::Engine { at, event } => {
                    let _ = tx.send((id, at, event));
                }
                // This loop keeps up, but if it ever fell behind, the current
                // regular configuration stands in for the changes it missed.
                NodeEvent::Lagged(lag) => {
                    if let Some(c) = lag.configuration {
                        let _ = tx.send((id, lag.at, Event::Configuration(c)));
                    }
                }
            }
        }
    });
    handle
}

/// Prints events until every node in `nodes` has delivered a regular
/// configuration with exactly `want`; returns its ring id.
async fn until_regular(
    rx: &mut mpsc::UnboundedReceiver<(NodeId, Instant, Event)>,
    t0: Instant,
    nodes: &[NodeId],
    want: &[NodeId],
) -> RingId {
    let mut done = BTreeMap::new();
    while done.len() < nodes.len() {
        let (id, at, event) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a configuration change within 10 s")
            .expect("event stream open");
        let Event::Configuration(c) = event else {
            continue;
        };
        let ms = at.duration_since(t0).as_secs_f64() * 1e3;
        let show = |v: &[NodeId]| {
            v.iter()
                .map(|n| n.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{ms:9.1} ms  node {}  {:<12} ring {:<8} members [{}]  joined [{}]  left [{}]",
            id.0,
            format!("{:?}", c.kind),
            c.ring_id.to_string(),
            show(&c.members),
            show(&c.joined),
            show(&c.left),
        );
        if c.kind == ConfigurationKind::Regular && c.members == want && nodes.contains(&id) {
            done.insert(id, c.ring_id);
        }
    }
    *done.values().next().expect("at least one node")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("halyard-ring-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("state directory");
    // Three distinct loopback ports.
    let mut members = BTreeMap::new();
    for i in 1..=3 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        members.insert(NodeId(i), s.local_addr().expect("address"));
    }
    let all: Vec<NodeId> = members.keys().copied().collect();
    let eff = TotemConfig::lan_fast().effective(3).expect("valid");
    println!(
        "halyard ring example: 3 nodes on {:?}; token {:?}, consensus {:?}, join {:?}",
        members.values().collect::<Vec<_>>(),
        eff.token,
        eff.consensus,
        eff.join
    );
    // The pre-shared cluster key (what `halyard-keygen` writes to a file).
    let key = ClusterKey::generate_os().expect("operating system RNG");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let mut nodes = BTreeMap::new();
    for id in &all {
        nodes.insert(*id, start(*id, &members, &dir, &key, &tx).await);
    }
    let r1 = until_regular(&mut rx, t0, &all, &all).await;
    let formed = t0.elapsed();
    println!(
        "--- ring {r1} formed after {:.1} ms; killing node 3",
        formed.as_secs_f64() * 1e3
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    nodes.remove(&NodeId(3)).expect("node 3").kill();
    let survivors = [NodeId(1), NodeId(2)];
    let r2 = until_regular(&mut rx, t0, &survivors, &survivors).await;
    let failover = killed.elapsed();
    println!(
        "--- survivors formed ring {r2} {:.1} ms after the kill; restarting node 3",
        failover.as_secs_f64() * 1e3
    );

    let restarted = Instant::now();
    nodes.insert(NodeId(3), start(NodeId(3), &members, &dir, &key, &tx).await);
    let r3 = until_regular(&mut rx, t0, &all, &all).await;
    println!(
        "--- node 3 rejoined: ring {r3} ({:.1} ms after restart); ring seq {} > {} > {}",
        restarted.elapsed().as_secs_f64() * 1e3,
        r3.seq,
        r2.seq,
        r1.seq
    );
    assert!(r3.seq > r2.seq && r2.seq > r1.seq);
    for (_, h) in nodes {
        h.kill();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
