//! Real UDP on loopback: 3 nodes on 127.0.0.1–3, all sending to one group
//! concurrently, node 3 killed mid-stream. Checks invariants 1–3 on what the
//! survivors and the victim delivered: the survivors delivered the same
//! sequence (total order; they moved together through every configuration),
//! the victim's sequence is a prefix of it, nothing is duplicated or invented,
//! each sender's messages arrive in order, and each survivor delivered every
//! message it sent.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use halyard_membership::{Envelope, MemoryRingIdStore, NodeId, Opened, TotemConfig};
use halyard_ordering::cluster::apply_socket_buffers;
use halyard_ordering::{
    Cluster, ClusterConfig, Delivery, Error, Group, GroupEvent, OrderingConfig, Reason,
    SocketBuffers,
};

/// Test-only envelope: no crypto, just the sender id in front.
struct Plain(NodeId);

impl Envelope for Plain {
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut v = self.0 .0.to_be_bytes().to_vec();
        v.extend_from_slice(plaintext);
        v
    }
    fn open(&mut self, d: &[u8]) -> halyard_membership::Result<Opened> {
        if d.len() < 4 {
            return Err(halyard_membership::Error::Malformed("short".into()));
        }
        let sender = NodeId(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
        Ok(Opened {
            sender,
            plaintext: d[4..].to_vec(),
        })
    }
}

const PER_NODE: u64 = 400;

fn payload(node: u32, i: u64) -> Bytes {
    let mut v = Vec::with_capacity(64 + (i as usize % 5) * 700);
    v.extend_from_slice(&node.to_be_bytes());
    v.extend_from_slice(&i.to_be_bytes());
    v.resize(12 + (i as usize % 5) * 700, (i % 251) as u8);
    Bytes::from(v)
}

fn parse(p: &[u8]) -> (u32, u64) {
    assert!(p.len() >= 12, "invented message");
    let node = u32::from_be_bytes(p[0..4].try_into().unwrap());
    let i = u64::from_be_bytes(p[4..12].try_into().unwrap());
    assert_eq!(*p, *payload(node, i), "corrupted message");
    (node, i)
}

/// Receives until `done` says so or 30 s pass; returns the message ids in order.
async fn collect(
    mut g: Group,
    mut done: impl FnMut(&[(u32, u64)], &[GroupEvent]) -> bool,
) -> (Vec<(u32, u64)>, Vec<GroupEvent>) {
    let mut msgs = Vec::new();
    let mut changes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&msgs, &changes) {
        match tokio::time::timeout_at(deadline, g.recv()).await {
            Ok(Some(GroupEvent::Message { from, payload, .. })) => {
                let id = parse(&payload);
                assert_eq!(id.0, from.node.0, "message attributed to the wrong sender");
                msgs.push(id);
            }
            Ok(Some(ev)) => changes.push(ev),
            Ok(None) | Err(_) => break,
        }
    }
    (msgs, changes)
}

/// Starts `n` nodes (node i on a UDP socket on 127.0.0.i) with plaintext
/// envelopes and in-memory ring ids; `configure` adjusts each node's config.
async fn start_nodes(
    n: u32,
    cluster_name: &str,
    configure: impl Fn(NodeId, &mut ClusterConfig),
) -> BTreeMap<NodeId, Cluster> {
    let mut sockets = BTreeMap::new();
    for i in 1..=n {
        let s = tokio::net::UdpSocket::bind(format!("127.0.0.{i}:0"))
            .await
            .unwrap();
        sockets.insert(NodeId(i), s);
    }
    let members: BTreeMap<NodeId, SocketAddr> = sockets
        .iter()
        .map(|(id, s)| (*id, s.local_addr().unwrap()))
        .collect();
    let totem = TotemConfig {
        cluster_name: cluster_name.into(),
        ..TotemConfig::lan_fast()
    };
    let mut nodes = BTreeMap::new();
    for (id, socket) in sockets {
        let mut cfg = ClusterConfig::new(
            id,
            totem.clone(),
            OrderingConfig::default(),
            members.clone(),
        );
        configure(id, &mut cfg);
        let c = Cluster::start_with_socket(
            cfg,
            socket,
            Box::new(MemoryRingIdStore::new()),
            Box::new(Plain(id)),
        )
        .unwrap();
        nodes.insert(id, c);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_concurrent_senders_one_killed() {
    let mut nodes = start_nodes(3, "ordering-udp-test", |_, cfg| {
        cfg.ordering.send_queue_bytes = 1 << 20
    })
    .await;
    // Everyone joins; wait until each sees all three members.
    let mut groups = BTreeMap::new();
    for (id, c) in &nodes {
        let g = tokio::time::timeout(Duration::from_secs(10), c.join("g"))
            .await
            .expect("join in time")
            .unwrap();
        groups.insert(*id, g);
    }
    for g in groups.values_mut() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, g.recv())
                .await
                .expect("all three join in time")
            {
                Some(GroupEvent::Membership { members, .. }) if members.len() == 3 => break,
                Some(_) => {}
                None => panic!("node stopped"),
            }
        }
    }
    // Concurrent senders (a task per node), and a collector per node.
    let mut senders = BTreeMap::new();
    let mut collectors = BTreeMap::new();
    let victim_midway = std::sync::Arc::new(tokio::sync::Notify::new());
    for (id, g) in groups {
        let tx = g.sender();
        let node = id.0;
        let midway = victim_midway.clone();
        senders.insert(
            id,
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..PER_NODE {
                    let d = if i % 4 == 0 {
                        Delivery::Safe
                    } else {
                        Delivery::Agreed
                    };
                    match tx.send(payload(node, i), d).await {
                        Ok(()) => sent.push(i),
                        Err(_) => break,
                    }
                    if node == 3 && i == PER_NODE / 4 {
                        midway.notify_one();
                    }
                    if i % 2 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                sent
            }),
        );
        // Survivors stop once they have every message of nodes 1 and 2 and the
        // change that removed node 3; the victim's collector ends when it is killed.
        collectors.insert(
            id,
            tokio::spawn(async move {
                collect(g, move |m, c| {
                    let n = m.iter().filter(|(s, _)| *s != 3).count() as u64;
                    n >= 2 * PER_NODE && node != 3 && c.iter().any(node3_down)
                })
                .await
            }),
        );
    }
    // Kill node 3 mid-stream: once it has sent a quarter of its messages.
    tokio::time::timeout(Duration::from_secs(20), victim_midway.notified())
        .await
        .expect("node 3 sends");
    nodes.remove(&NodeId(3)).unwrap().kill();
    let mut sent = BTreeMap::new();
    for (id, h) in senders {
        let s = tokio::time::timeout(Duration::from_secs(30), h)
            .await
            .expect("senders finish")
            .unwrap();
        sent.insert(id.0, s);
    }
    let mut got = BTreeMap::new();
    let mut changes = BTreeMap::new();
    for (id, h) in collectors {
        let (m, c) = tokio::time::timeout(Duration::from_secs(40), h)
            .await
            .expect("collectors finish")
            .unwrap();
        got.insert(id.0, m);
        changes.insert(id.0, c);
    }
    // Invariant 2: no duplicates, nothing invented (checked in parse), FIFO per sender.
    for (node, msgs) in &got {
        let set: BTreeSet<_> = msgs.iter().collect();
        assert_eq!(
            set.len(),
            msgs.len(),
            "node {node} delivered a message twice"
        );
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        for (s, i) in msgs {
            if let Some(p) = last.insert(*s, *i) {
                assert!(p < *i, "node {node} broke FIFO of sender {s}: {p} then {i}");
            }
        }
    }
    // Invariant 3: survivors delivered everything they sent.
    for node in [1u32, 2] {
        assert_eq!(
            sent[&node].len() as u64,
            PER_NODE,
            "node {node} could not send everything"
        );
        let mine: BTreeSet<u64> = got[&node]
            .iter()
            .filter(|(s, _)| *s == node)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(
            mine.len() as u64,
            PER_NODE,
            "node {node} did not deliver all its own messages"
        );
    }
    // Invariant 1: survivors moved together, so they delivered the same sequence;
    // the victim's sequence is a prefix of it.
    assert_eq!(got[&1], got[&2], "survivors delivered different sequences");
    let v = &got[&3];
    assert!(
        v.len() <= got[&1].len() && got[&1][..v.len()] == v[..],
        "the victim's sequence is not a prefix"
    );
    // Node 3 is seen to go down at both survivors.
    for node in [1u32, 2] {
        let down = changes[&node].iter().any(node3_down);
        assert!(down, "node {node} never saw node 3 go down");
    }
}

fn node3_down(c: &GroupEvent) -> bool {
    match c {
        GroupEvent::Membership { left, .. } => left
            .iter()
            .any(|(m, r)| m.node == NodeId(3) && *r == Reason::NodeDown),
        GroupEvent::Message { .. } | GroupEvent::Overflow { .. } => false,
    }
}

/// Waits (bounded) for a Membership event matching `f`.
async fn wait_change(g: &mut Group, f: impl Fn(&GroupEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, g.recv())
            .await
            .expect("membership change in time")
        {
            Some(ev) if f(&ev) => return,
            Some(_) => {}
            None => panic!("node stopped"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_leave_and_graceful_node_leave() {
    let mut nodes = start_nodes(3, "ordering-leave-test", |_, _| {}).await;
    let mut groups = BTreeMap::new();
    for (id, c) in &nodes {
        groups.insert(
            *id,
            tokio::time::timeout(Duration::from_secs(10), c.join("g"))
                .await
                .expect("join")
                .unwrap(),
        );
    }
    for g in groups.values_mut() {
        wait_change(
            g,
            |e| matches!(e, GroupEvent::Membership { members, .. } if members.len() == 3),
        )
        .await;
    }
    // Node 2's member leaves the group: the others see it leave with reason Leave.
    groups.remove(&NodeId(2)).unwrap().leave().await.unwrap();
    for id in [1u32, 3] {
        let g = groups.get_mut(&NodeId(id)).unwrap();
        wait_change(g, |e| {
            matches!(e, GroupEvent::Membership { left, members, .. }
                if members.len() == 2 && left.iter().any(|(m, r)| m.node == NodeId(2) && *r == Reason::Leave))
        })
        .await;
    }
    // Node 3 leaves the ring gracefully: node 1 sees its member go down.
    nodes.remove(&NodeId(3)).unwrap().leave().await.unwrap();
    let g = groups.get_mut(&NodeId(1)).unwrap();
    wait_change(g, |e| {
        matches!(e, GroupEvent::Membership { left, members, .. }
            if members.len() == 1 && left.iter().any(|(m, r)| m.node == NodeId(3) && *r == Reason::NodeDown))
    })
    .await;
    // And the group still works for who is left.
    g.send(&b"still here"[..], Delivery::Safe).await.unwrap();
    wait_change(
        g,
        |e| matches!(e, GroupEvent::Message { payload, .. } if &payload[..] == b"still here"),
    )
    .await;
}

/// Joins group "g" on node 1, then on node 2; returns once node 2's member sees
/// both (node 1's member, first returned, has not read anything yet).
async fn join_pair(nodes: &BTreeMap<NodeId, Cluster>) -> (Group, Group) {
    let first = tokio::time::timeout(Duration::from_secs(10), nodes[&NodeId(1)].join("g"))
        .await
        .expect("join")
        .unwrap();
    let mut second = tokio::time::timeout(Duration::from_secs(10), nodes[&NodeId(2)].join("g"))
        .await
        .expect("join")
        .unwrap();
    wait_change(
        &mut second,
        |e| matches!(e, GroupEvent::Membership { members, .. } if members.len() == 2),
    )
    .await;
    (first, second)
}

/// A member that never reads: once its queue (8 events) is full its node
/// removes it (the other member sees it leave with ProcDown), it gets what was
/// queued, then Overflow, then None, and its sends fail; the ring goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_does_not_keep_up_is_removed_not_waited_for() {
    let nodes = start_nodes(2, "ordering-overflow-test", |id, cfg| {
        if id == NodeId(1) {
            cfg.group_event_capacity = 8;
        }
    })
    .await;
    let (mut slow, mut fast) = join_pair(&nodes).await;
    let slow_member = slow.member();
    const N: u64 = 40;
    for i in 0..N {
        fast.send(Bytes::from(i.to_be_bytes().to_vec()), Delivery::Agreed)
            .await
            .unwrap();
    }
    // The fast member sees the slow one removed (ProcDown) and all its own messages.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut own = 0;
    let mut removed = false;
    while !(removed && own == N) {
        match tokio::time::timeout_at(deadline, fast.recv())
            .await
            .expect("events in time")
            .expect("node running")
        {
            GroupEvent::Message { .. } => own += 1,
            GroupEvent::Membership { left, members, .. } => {
                if left.contains(&(slow_member, Reason::ProcDown)) {
                    assert_eq!(members.len(), 1);
                    removed = true;
                }
            }
            GroupEvent::Overflow { .. } => panic!("the fast member overflowed"),
        }
    }
    // The slow handle: at most 8 queued events, a prefix of the stream, then
    // Overflow, then None.
    let mut got = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(10), slow.recv())
        .await
        .expect("slow handle closes in time")
    {
        got.push(ev);
    }
    assert!(slow.overflowed());
    assert_eq!(got.last(), Some(&GroupEvent::Overflow { capacity: 8 }));
    assert!(got.len() <= 9, "{got:?}");
    let msgs: Vec<u64> = got
        .iter()
        .filter_map(|e| match e {
            GroupEvent::Message { payload, .. } => {
                Some(u64::from_be_bytes(payload[..].try_into().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(msgs, (0..msgs.len() as u64).collect::<Vec<_>>(), "a prefix");
    assert!(matches!(
        slow.send(&b"late"[..], Delivery::Agreed).await,
        Err(Error::Closed(_))
    ));
}

/// SO_RCVBUF / SO_SNDBUF are applied and read back; a size above
/// net.core.rmem_max is reported as capped unless the FORCE option works
/// (CAP_NET_ADMIN, e.g. root).
#[tokio::test]
async fn socket_buffers_are_applied_and_capping_is_reported() {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let small = 96 * 1024;
    let a = apply_socket_buffers(
        &s,
        SocketBuffers {
            recv: Some(small),
            send: Some(small),
        },
    )
    .unwrap();
    // Linux reports twice the size asked for.
    assert!(a.recv >= 2 * small && a.send >= 2 * small, "{a:?}");
    assert!(!a.recv_capped && !a.send_capped);

    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let big = rmem_max + (1 << 20);
    let a = apply_socket_buffers(
        &s,
        SocketBuffers {
            recv: Some(big),
            send: None,
        },
    )
    .unwrap();
    assert_eq!(a.recv_capped, a.recv < 2 * big, "{a:?}");
    if rustix::process::geteuid().is_root() {
        assert!(!a.recv_capped, "root should get SO_RCVBUFFORCE: {a:?}");
    }
    // The defaults reach the socket a Cluster starts on.
    let c = ClusterConfig::new(
        NodeId(1),
        TotemConfig::lan_fast(),
        OrderingConfig::default(),
        BTreeMap::from([(NodeId(1), s.local_addr().unwrap())]),
    );
    assert_eq!(c.socket_buffers, SocketBuffers::default());
    let cluster = Cluster::start_with_socket(
        c,
        s,
        Box::new(MemoryRingIdStore::new()),
        Box::new(Plain(NodeId(1))),
    )
    .unwrap();
    let applied = cluster.socket_buffers().expect("applied");
    assert!(
        applied.recv_capped || applied.recv >= 2 * (8 << 20),
        "{applied:?}"
    );
}

/// Dropping a handle while its sends wait for room in a full send budget:
/// the LEAVE goes behind every send that was accepted (never lost, never
/// overtaking them), so the other member gets every accepted message, in
/// order, then sees the member leave; the sends still waiting for the budget
/// (not accepted) fail with Closed, and so does any later send: no send
/// returns Ok for a message that would not be delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_handle_leaves_after_its_accepted_sends() {
    let nodes = start_nodes(2, "ordering-drop-leave-test", |id, cfg| {
        if id == NodeId(1) {
            cfg.ordering.send_queue_bytes = 4096;
            cfg.ordering.max_message = 4096;
        }
    })
    .await;
    let (leaving, mut watcher) = join_pair(&nodes).await;
    let leaving_member = leaving.member();
    // 40 sends of 1000 B against a 4096 B budget: most of them must wait.
    const N: u64 = 40;
    let sender = leaving.sender();
    let mut sends: Vec<_> = (0..N)
        .map(|i| {
            let mut p = i.to_be_bytes().to_vec();
            p.resize(1000, 0);
            Box::pin(sender.send(Bytes::from(p), Delivery::Agreed))
        })
        .collect();
    // Poll each once, in order: the first ones are accepted, the rest wait.
    let mut results: Vec<Option<Result<(), Error>>> = (0..N).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, r) in sends.iter_mut().zip(results.iter_mut()) {
            if let std::task::Poll::Ready(x) = f.as_mut().poll(cx) {
                *r = Some(x);
            }
        }
        std::task::Poll::Ready(())
    })
    .await;
    let accepted_before_drop = results.iter().filter(|r| r.is_some()).count();
    assert!(accepted_before_drop >= 1, "{results:?}");
    drop(leaving);
    for (f, r) in sends.iter_mut().zip(results.iter_mut()) {
        if r.is_none() {
            *r = Some(
                tokio::time::timeout(Duration::from_secs(10), f)
                    .await
                    .expect("send answered in time"),
            );
        }
    }
    // Accepted sends are a prefix (the budget is fair); the others were refused.
    let ok = results
        .iter()
        .take_while(|r| matches!(r, Some(Ok(()))))
        .count();
    assert!(ok >= accepted_before_drop, "{results:?}");
    assert!(
        results[ok..]
            .iter()
            .all(|r| matches!(r, Some(Err(Error::Closed(_))))),
        "{results:?}"
    );
    assert!(matches!(
        sender.send(&b"after the leave"[..], Delivery::Agreed).await,
        Err(Error::Closed(_))
    ));
    // The watcher gets the accepted messages in order, then the member's leave.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, watcher.recv())
            .await
            .expect("events in time")
            .expect("node running")
        {
            GroupEvent::Message { from, payload, .. } => {
                assert_eq!(from, leaving_member);
                got.push(u64::from_be_bytes(payload[..8].try_into().unwrap()));
            }
            GroupEvent::Membership { left, .. } => {
                if left.contains(&(leaving_member, Reason::Leave)) {
                    break;
                }
            }
            GroupEvent::Overflow { .. } => panic!("the watcher overflowed"),
        }
    }
    assert_eq!(got, (0..ok as u64).collect::<Vec<_>>());
}

/// Polls `f` once with a waker that does nothing, then drops it: a send or
/// join cancelled at its first await.
fn poll_once<F: Future>(f: F) -> std::task::Poll<F::Output> {
    let f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    f.poll(&mut std::task::Context::from_waker(waker))
}

/// A message of `len` bytes carrying `i` in front.
fn numbered(i: u64, len: usize) -> Bytes {
    let mut p = i.to_be_bytes().to_vec();
    p.resize(len, (i % 251) as u8);
    Bytes::from(p)
}

/// Receives messages until the one numbered `last`; returns their numbers.
async fn numbers_until(g: &mut Group, last: u64) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, g.recv())
            .await
            .expect("messages in time")
            .expect("node running")
        {
            GroupEvent::Message { payload, .. } => {
                let i = u64::from_be_bytes(payload[..8].try_into().unwrap());
                got.push(i);
                if i == last {
                    return got;
                }
            }
            GroupEvent::Membership { .. } => {}
            GroupEvent::Overflow { .. } => panic!("overflowed"),
        }
    }
}

/// Waits (bounded) until the ring has taken every accepted message and the
/// whole budget is free again (no charge leaked).
async fn budget_drains(c: &Cluster) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.queued_send_bytes() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} bytes of budget never released",
            c.queued_send_bytes()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const BUDGET: usize = 64 * 1024;
/// What a 1000-byte send is charged: payload, member id, bookkeeping.
const CHARGE_1000: usize = 1000 + 4 + halyard_ordering::cluster::REQUEST_OVERHEAD;

/// Loops of cancelled sends: first polled once and dropped while the node
/// cannot drain (its task does not run: one thread, never yielded to), where
/// exactly what fits in the budget is accepted; then under a zero timeout
/// (which yields, so the ring drains in between), where the budget is never
/// exceeded. Exactly the accepted messages are delivered, in order: a
/// cancelled send queued nothing.
#[tokio::test(flavor = "current_thread")]
async fn cancelled_sends_queue_nothing_beyond_the_budget() {
    let nodes = start_nodes(1, "ordering-cancelled-sends-test", |_, cfg| {
        cfg.ordering.send_queue_bytes = BUDGET;
        cfg.ordering.max_message = BUDGET;
    })
    .await;
    let node = &nodes[&NodeId(1)];
    let mut g = tokio::time::timeout(Duration::from_secs(10), node.join("g"))
        .await
        .expect("join in time")
        .unwrap();
    const TRIES: u64 = 1000;
    let mut accepted = Vec::new();
    for i in 0..TRIES {
        if let std::task::Poll::Ready(r) = poll_once(g.send(numbered(i, 1000), Delivery::Agreed)) {
            r.unwrap();
            accepted.push(i);
        }
    }
    assert_eq!(accepted.len(), BUDGET / CHARGE_1000);
    assert_eq!(node.queued_send_bytes(), accepted.len() * CHARGE_1000);
    for i in TRIES..2 * TRIES {
        let send = g.send(numbered(i, 1000), Delivery::Agreed);
        if let Ok(r) = tokio::time::timeout(Duration::ZERO, send).await {
            r.unwrap();
            accepted.push(i);
        }
        assert!(node.queued_send_bytes() <= BUDGET);
    }
    // A marker, awaited: before it come exactly the accepted messages, in
    // order; nothing that was cancelled.
    g.send(numbered(2 * TRIES, 1000), Delivery::Agreed)
        .await
        .unwrap();
    let got = numbers_until(&mut g, 2 * TRIES).await;
    accepted.push(2 * TRIES);
    assert_eq!(got, accepted);
    budget_drains(node).await;
}

/// A sender far faster than the ring (200 sends of 1000 B in flight at once
/// against a 64 KiB budget): it gets back-pressure, not a growing queue. On
/// the first poll only what fits is accepted and the rest wait, fairly (in
/// order); in the end every send is accepted and the other node delivers all
/// of them, in order.
#[tokio::test(flavor = "current_thread")]
async fn a_fast_sender_waits_for_the_budget_and_loses_nothing() {
    let nodes = start_nodes(2, "ordering-fast-sender-test", |id, cfg| {
        if id == NodeId(1) {
            cfg.ordering.send_queue_bytes = BUDGET;
            cfg.ordering.max_message = BUDGET;
        }
    })
    .await;
    let (fast, mut other) = join_pair(&nodes).await;
    let node = &nodes[&NodeId(1)];
    const N: u64 = 200;
    let mut sends: Vec<_> = (0..N)
        .map(|i| Box::pin(fast.send(numbered(i, 1000), Delivery::Agreed)))
        .collect();
    let mut done = vec![false; N as usize];
    std::future::poll_fn(|cx| {
        for (f, d) in sends.iter_mut().zip(done.iter_mut()) {
            if let std::task::Poll::Ready(r) = f.as_mut().poll(cx) {
                r.unwrap();
                *d = true;
            }
        }
        std::task::Poll::Ready(())
    })
    .await;
    let first = done.iter().filter(|d| **d).count();
    assert_eq!(first, BUDGET / CHARGE_1000);
    assert!(done[..first].iter().all(|d| *d), "accepted in order");
    assert_eq!(node.queued_send_bytes(), first * CHARGE_1000);
    // Drive the rest; the budget is never exceeded on the way.
    let rest = async {
        for (f, d) in sends.iter_mut().zip(done.iter()) {
            if !*d {
                f.await.unwrap();
            }
            assert!(node.queued_send_bytes() <= BUDGET);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), rest)
        .await
        .expect("every send accepted in time");
    let got = numbers_until(&mut other, N - 1).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    budget_drains(node).await;
}

/// Joins cancelled after they were accepted leave again: a loop of them leaves
/// no member without a handle in the group, so a later member sees itself alone.
#[tokio::test(flavor = "current_thread")]
async fn cancelled_joins_leave_no_member_behind() {
    let nodes = start_nodes(1, "ordering-cancelled-joins-test", |_, _| {}).await;
    let node = &nodes[&NodeId(1)];
    // Let the ring form (a member that joins is then in the view).
    let first = tokio::time::timeout(Duration::from_secs(10), node.join("warm-up"))
        .await
        .expect("join in time")
        .unwrap();
    drop(first);
    for i in 0..200 {
        if i % 2 == 0 {
            let _ = tokio::time::timeout(Duration::ZERO, node.join("g")).await;
        } else {
            let _ = poll_once(node.join("g"));
        }
    }
    let mut g = tokio::time::timeout(Duration::from_secs(10), node.join("g"))
        .await
        .expect("join in time")
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), g.recv())
        .await
        .expect("first event in time")
    {
        Some(GroupEvent::Membership { members, .. }) => {
            assert_eq!(members, vec![g.member()], "members without a handle remain")
        }
        other => panic!("expected the first view, got {other:?}"),
    }
    budget_drains(node).await;
}

/// A send waiting for the budget when the node stops fails with Closed
/// instead of waiting forever.
#[tokio::test(flavor = "current_thread")]
async fn a_send_waiting_for_the_budget_fails_when_the_node_stops() {
    let mut nodes = start_nodes(1, "ordering-stop-test", |_, cfg| {
        cfg.ordering.send_queue_bytes = BUDGET;
        cfg.ordering.max_message = BUDGET;
    })
    .await;
    let g = tokio::time::timeout(Duration::from_secs(10), nodes[&NodeId(1)].join("g"))
        .await
        .expect("join in time")
        .unwrap();
    // Fill the budget (the node task does not run in between), then one more.
    let mut i = 0;
    while poll_once(g.send(numbered(i, 1000), Delivery::Agreed)).is_ready() {
        i += 1;
    }
    let waiting = g.send(numbered(i, 1000), Delivery::Agreed);
    nodes.remove(&NodeId(1)).unwrap().kill();
    let r = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered in time");
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    assert!(matches!(
        g.send(&b"late"[..], Delivery::Agreed).await,
        Err(Error::Closed(_))
    ));
}
