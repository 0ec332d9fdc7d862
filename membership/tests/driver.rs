//! The tokio driver on loopback: 3 and 5 nodes form a ring; killing one gives
//! the survivors a new configuration; restarting it rejoins with a higher ring id.
//! Every datagram goes through the secure envelope, as in production.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use halyard_membership::{
    ClusterKey, ConfigurationKind, Envelope, Event, MemoryRingIdStore, Node, NodeConfig,
    NodeEvents, NodeHandle, NodeId, RingId, SecureEnvelope, TotemConfig,
};

/// The secure envelope every node uses: authenticated encryption under one
/// cluster key; `epoch` grows on every (re)start of a node, as in production.
fn envelope(
    key: &ClusterKey,
    config: &TotemConfig,
    members: &BTreeMap<NodeId, SocketAddr>,
    id: NodeId,
    epoch: u64,
) -> Box<dyn Envelope> {
    Box::new(
        SecureEnvelope::new(
            key,
            &config.cluster_name,
            id,
            epoch,
            members.keys().copied(),
        )
        .unwrap(),
    )
}

struct Cluster {
    members: BTreeMap<NodeId, SocketAddr>,
    stores: BTreeMap<NodeId, MemoryRingIdStore>,
    nodes: BTreeMap<NodeId, (NodeHandle, NodeEvents)>,
    config: TotemConfig,
    key: ClusterKey,
    epochs: BTreeMap<NodeId, u64>,
}

impl Cluster {
    async fn start(n: u32) -> Cluster {
        // Reserve distinct ports on 127.0.0.1.
        let mut sockets = BTreeMap::new();
        for i in 1..=n {
            let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            sockets.insert(NodeId(i), s);
        }
        let members: BTreeMap<NodeId, SocketAddr> = sockets
            .iter()
            .map(|(id, s)| (*id, s.local_addr().unwrap()))
            .collect();
        let config = TotemConfig {
            cluster_name: "driver-test".into(),
            ..TotemConfig::lan_fast()
        };
        let mut c = Cluster {
            members,
            stores: BTreeMap::new(),
            nodes: BTreeMap::new(),
            config,
            key: ClusterKey::from_bytes([7; 32]),
            epochs: BTreeMap::new(),
        };
        for (id, sock) in sockets {
            let store = MemoryRingIdStore::new();
            c.stores.insert(id, store.clone());
            let nc = NodeConfig {
                node_id: id,
                totem: c.config.clone(),
                members: c.members.clone(),
            };
            c.epochs.insert(id, 1);
            let env = envelope(&c.key, &c.config, &c.members, id, 1);
            let n = Node::start_with_socket(nc, sock, Box::new(store), env).unwrap();
            c.nodes.insert(id, n);
        }
        c
    }

    async fn restart(&mut self, id: NodeId) {
        let nc = NodeConfig {
            node_id: id,
            totem: self.config.clone(),
            members: self.members.clone(),
        };
        let epoch = self.epochs.entry(id).or_insert(0);
        *epoch += 1;
        let env = envelope(&self.key, &self.config, &self.members, id, *epoch);
        let n = Node::start(nc, Box::new(self.stores[&id].clone()), env)
            .await
            .unwrap();
        self.nodes.insert(id, n);
    }

    /// Waits until every live node delivered a regular configuration with exactly `want`.
    async fn wait_regular(&mut self, want: &[NodeId], within: Duration) -> RingId {
        let deadline = tokio::time::Instant::now() + within;
        let mut rings = BTreeMap::new();
        for (id, (_, events)) in self.nodes.iter_mut() {
            loop {
                let ev = tokio::time::timeout_at(deadline, events.next())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{id}: no regular configuration {want:?} within {within:?}")
                    })
                    .expect("node running");
                if let Event::Configuration(c) = ev.event {
                    if c.kind == ConfigurationKind::Regular && c.members == want {
                        rings.insert(*id, c.ring_id);
                        break;
                    }
                }
            }
        }
        let first = *rings.values().next().unwrap();
        assert!(
            rings.values().all(|r| *r == first),
            "nodes disagree on the ring: {rings:?}"
        );
        first
    }
}

async fn kill_and_restart(n: u32, victim: u32) {
    let mut c = Cluster::start(n).await;
    let all: Vec<NodeId> = (1..=n).map(NodeId).collect();
    let r0 = c.wait_regular(&all, Duration::from_secs(5)).await;
    let (h, _) = c.nodes.remove(&NodeId(victim)).unwrap();
    h.kill();
    let started = std::time::Instant::now();
    let survivors: Vec<NodeId> = all.iter().copied().filter(|i| i.0 != victim).collect();
    let r1 = c.wait_regular(&survivors, Duration::from_secs(5)).await;
    let took = started.elapsed();
    eprintln!("{n} nodes: failover {took:?}");
    assert!(r1.seq > r0.seq);
    // lan_fast: token 300 ms; failover is detection plus about one token_retransmit.
    assert!(took < Duration::from_millis(1500), "failover took {took:?}");
    c.restart(NodeId(victim)).await;
    let r2 = c.wait_regular(&all, Duration::from_secs(5)).await;
    assert!(r2.seq > r1.seq, "{r2} after {r1}");
    for (h, _) in c.nodes.values() {
        let (status, _) = h.status().await.unwrap();
        assert_eq!(status.ring_id, r2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_kill_one_and_restart() {
    kill_and_restart(3, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_kill_the_representative_and_restart() {
    kill_and_restart(5, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave() {
    let mut c = Cluster::start(3).await;
    let all: Vec<NodeId> = (1..=3).map(NodeId).collect();
    c.wait_regular(&all, Duration::from_secs(5)).await;
    let (h, _) = c.nodes.remove(&NodeId(3)).unwrap();
    let started = std::time::Instant::now();
    h.leave().await.unwrap();
    c.wait_regular(&[NodeId(1), NodeId(2)], Duration::from_secs(5))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "leave took {:?}",
        started.elapsed()
    );
}
