//! The tokio driver on loopback: 3 and 5 nodes form a ring; killing one gives
//! the survivors a new configuration; restarting it rejoins with a higher ring id;
//! a node whose application stops reading its events stays in the ring and,
//! when the application reads again, gets a lag notice with the current
//! configuration. Every datagram goes through the secure envelope, as in production.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use halyard_membership::{
    ClusterKey, ConfigurationKind, Envelope, Event, MembState, MemoryRingIdStore, Node, NodeConfig,
    NodeEvent, NodeEvents, NodeHandle, NodeId, RingId, SecureEnvelope, TotemConfig,
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
    /// Event queue capacities other than the default.
    capacities: BTreeMap<NodeId, usize>,
}

impl Cluster {
    async fn start(n: u32) -> Cluster {
        Self::start_with(n, BTreeMap::new()).await
    }

    async fn start_with(n: u32, capacities: BTreeMap<NodeId, usize>) -> Cluster {
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
            capacities,
        };
        for (id, sock) in sockets {
            let store = MemoryRingIdStore::new();
            c.stores.insert(id, store.clone());
            let nc = c.node_config(id);
            c.epochs.insert(id, 1);
            let env = envelope(&c.key, &c.config, &c.members, id, 1);
            let n = Node::start_with_socket(nc, sock, Box::new(store), env).unwrap();
            c.nodes.insert(id, n);
        }
        c
    }

    fn node_config(&self, id: NodeId) -> NodeConfig {
        let mut nc = NodeConfig::new(id, self.config.clone(), self.members.clone());
        if let Some(cap) = self.capacities.get(&id) {
            nc.event_capacity = *cap;
        }
        nc
    }

    async fn restart(&mut self, id: NodeId) {
        let nc = self.node_config(id);
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
        let readers: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.wait_regular_on(&readers, want, within).await
    }

    /// Waits until each of `readers` delivered a regular configuration with
    /// exactly `want` (a lag notice counts with its current configuration).
    async fn wait_regular_on(
        &mut self,
        readers: &[NodeId],
        want: &[NodeId],
        within: Duration,
    ) -> RingId {
        let deadline = tokio::time::Instant::now() + within;
        let mut rings = BTreeMap::new();
        for (id, (_, events)) in self.nodes.iter_mut() {
            if !readers.contains(id) {
                continue;
            }
            loop {
                let ev = tokio::time::timeout_at(deadline, events.next())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{id}: no regular configuration {want:?} within {within:?}")
                    })
                    .expect("node running");
                let regular = match ev {
                    NodeEvent::Engine {
                        event: Event::Configuration(c),
                        ..
                    } if c.kind == ConfigurationKind::Regular => Some(c),
                    NodeEvent::Lagged(lag) => lag.configuration,
                    NodeEvent::Engine { .. } => None,
                };
                if let Some(c) = regular.filter(|c| c.members == want) {
                    rings.insert(*id, c.ring_id);
                    break;
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

/// Node 1's application reads nothing while node 3 is killed and restarted
/// three times (at least 12 more configuration changes at node 1) with an
/// event queue of 2: the queue never holds more than 2, node 1 stays in every
/// ring the others form, and when the application reads again it gets the 2
/// queued events, then one lag notice carrying the current ring, then the
/// next change as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_lags_but_stays_in_the_ring() {
    const CAPACITY: usize = 2;
    const CYCLES: u64 = 3;
    let mut c = Cluster::start_with(3, BTreeMap::from([(NodeId(1), CAPACITY)])).await;
    let all: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let others = [NodeId(2), NodeId(3)];
    let within = Duration::from_secs(5);
    let mut ring = c.wait_regular_on(&others, &all, within).await;
    for _ in 0..CYCLES {
        let (h, _) = c.nodes.remove(&NodeId(3)).unwrap();
        h.kill();
        // Node 2 sees node 1 in the survivors' ring: node 1 kept up the protocol.
        c.wait_regular_on(&[NodeId(2)], &[NodeId(1), NodeId(2)], within)
            .await;
        assert!(c.nodes[&NodeId(1)].1.queued() <= CAPACITY);
        c.restart(NodeId(3)).await;
        ring = c.wait_regular_on(&others, &all, within).await;
        assert!(c.nodes[&NodeId(1)].1.queued() <= CAPACITY);
    }
    // Node 1 itself reports the ring (once it is operational in it, its
    // events for it have been produced).
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, _) = c.nodes[&NodeId(1)].0.status().await.unwrap();
        if status.ring_id == ring && status.state == MembState::Operational {
            assert_eq!(status.members, all);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 1 not operational in {ring}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let events = &mut c.nodes.get_mut(&NodeId(1)).unwrap().1;
    assert_eq!(events.queued(), CAPACITY);
    for _ in 0..CAPACITY {
        match events.try_next() {
            Some(NodeEvent::Engine { .. }) => {}
            other => panic!("expected one of the queued events, got {other:?}"),
        }
    }
    let lag = match events.try_next() {
        Some(NodeEvent::Lagged(lag)) => lag,
        other => panic!("expected the lag notice, got {other:?}"),
    };
    assert!(lag.missed >= 4 * CYCLES, "missed {}", lag.missed);
    let current = lag.configuration.expect("a configuration");
    assert_eq!(current.kind, ConfigurationKind::Regular);
    assert_eq!(current.ring_id, ring);
    assert_eq!(current.members, all);
    assert_eq!(lag.status.ring_id, ring);
    assert_eq!(lag.status.members, all);
    assert!(events.try_next().is_none(), "nothing after the notice yet");

    // Reading again: the next change arrives as an ordinary event.
    let (h, _) = c.nodes.remove(&NodeId(3)).unwrap();
    h.kill();
    let events = &mut c.nodes.get_mut(&NodeId(1)).unwrap().1;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("node 1 sees node 3 go")
            .expect("node running");
        match ev {
            NodeEvent::Engine {
                event: Event::Configuration(c),
                ..
            } if c.kind == ConfigurationKind::Regular => {
                assert_eq!(c.members, [NodeId(1), NodeId(2)]);
                assert!(c.ring_id.seq > ring.seq);
                break;
            }
            NodeEvent::Engine { .. } => {}
            NodeEvent::Lagged(lag) => panic!("lagged again while reading: {lag:?}"),
        }
    }
}
