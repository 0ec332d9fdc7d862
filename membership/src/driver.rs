//! The tokio driver: one [`Totem`] engine over UDP unicast (like Corosync's udpu).
//!
//! The driver owns the socket, the clock and the task, and nothing else: every
//! datagram goes through the caller's [`Envelope`] (seal on the way out, open on
//! the way in; what `open` rejects never reaches the engine), a "multicast" is
//! one unicast per configured member, and timers are the engine's
//! `poll_timeout`. Events arrive on [`NodeEvents`]; [`NodeHandle`] asks for
//! status, leaves gracefully, or kills the node (as a crash would).
//!
//! # A consumer that does not keep up
//!
//! The event queue is bounded ([`NodeConfig::event_capacity`], default
//! [`DEFAULT_EVENT_CAPACITY`]) and the driver never waits for it: it must keep
//! running the token protocol, or this node would fall out of the ring. When
//! the queue is full, the driver drops the event and counts it; from then on it
//! drops (and counts) every event until the consumer has read everything that
//! was queued. The consumer then receives one [`NodeEvent::Lagged`] (like
//! tokio's `broadcast` `RecvError::Lagged(n)`, and Corosync's answer to a slow
//! IPC client: flow control plus state it can re-read) carrying how many events
//! it missed and the state to resynchronise from: the last regular
//! configuration the engine delivered and the engine's [`Status`] and [`Stats`]
//! (what [`NodeHandle::status`] returns). So the stream a consumer sees is
//! always
//!
//! ```text
//! e1 .. ek  Lagged { missed, configuration, status, stats }  ek+missed+1 ..  (Lagged ..)
//! ```
//!
//! with every event it did receive in order and nothing missing between two of
//! them except where a notice stands.
//!
//! and a consumer that treats `Lagged` as "replace my view by this
//! configuration" (not as a delta: the transitional configurations and the
//! `joined`/`left` lists of the missed changes are gone; compare the new
//! members with the old view if you need them) is exactly in sync again. The
//! queue holds at most `event_capacity` events plus that one pending notice,
//! whatever the consumer does. If the node stops while a notice is pending
//! (after [`NodeHandle::leave`], [`Event::Left`] may be among the missed
//! events: `status.state` is then [`MembState::Left`](crate::MembState::Left)),
//! the notice comes after the queued events and before the end of the stream.
//!
//! # Commands
//!
//! Only the local application sends commands ([`NodeHandle::status`] and
//! [`NodeHandle::leave`]; the network cannot), and each waits for its answer,
//! but a status call that is cancelled (a timeout around it, a `select!`) leaves
//! its command queued, so a loop of cancelled calls could still grow an
//! unbounded queue. The command queue therefore holds at most
//! [`COMMAND_CAPACITY`] commands; a caller waits for a free slot (the driver
//! never waits on it: it only receives), and gets [`Error::Stopped`] if the node
//! has stopped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio::sync::{mpsc, oneshot};

use crate::{
    ConfigurationChange, ConfigurationKind, Destination, Envelope, Error, Event, NodeId, Result,
    RingIdStore, Stats, Status, Totem, TotemConfig,
};

/// Default [`NodeConfig::event_capacity`]: 1024 events. Events are
/// configuration changes (two per ring change) and [`Event::Left`], a handful a
/// second even under heavy churn, so a consumer that reads at all never comes
/// near it; a stalled one costs at most 1024 configurations of memory.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// How many commands ([`NodeHandle::status`], [`NodeHandle::leave`]) can wait
/// for the driver at once; further callers wait for a slot.
pub const COMMAND_CAPACITY: usize = 64;

/// What a node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node.
    pub node_id: NodeId,
    /// Timers and cluster name.
    pub totem: TotemConfig,
    /// Every member's UDP address, this node's included (it binds to its own).
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// How many events [`NodeEvents`] holds before the driver starts dropping
    /// them and owes the consumer a [`NodeEvent::Lagged`] (see the module
    /// docs). At least 1; [`DEFAULT_EVENT_CAPACITY`] by default.
    pub event_capacity: usize,
}

impl NodeConfig {
    /// A configuration with the default [`event_capacity`](Self::event_capacity).
    pub fn new(node_id: NodeId, totem: TotemConfig, members: BTreeMap<NodeId, SocketAddr>) -> Self {
        NodeConfig {
            node_id,
            totem,
            members,
            event_capacity: DEFAULT_EVENT_CAPACITY,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.event_capacity == 0 {
            return Err(Error::Config {
                field: "event_capacity",
                reason: "must be at least 1 (the default is 1024)".into(),
            });
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(Error::InvalidNode(
                self.node_id.0,
                "this node has no address in the member list".into(),
            ));
        }
        Ok(())
    }
}

/// One item of a node's event stream.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// An event of the engine.
    Engine {
        /// When the engine produced it.
        at: Instant,
        /// What happened.
        event: Event,
    },
    /// The consumer fell behind and events were dropped; resynchronise from
    /// this (see the module docs).
    Lagged(Box<Lagged>),
}

/// What a consumer that fell behind needs to resynchronise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lagged {
    /// When the driver last updated this notice (the last missed event).
    pub at: Instant,
    /// How many events the consumer missed (they came after every event it
    /// received before this notice, and before every event after it).
    pub missed: u64,
    /// The last regular configuration the engine delivered, missed or not:
    /// the current membership. `None` if the node never formed a ring.
    pub configuration: Option<ConfigurationChange>,
    /// The engine's status when the last missed event was produced.
    pub status: Status,
    /// The engine's counters then.
    pub stats: Stats,
}

/// The stream of a node's events.
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::Receiver<NodeEvent>,
    lag: Arc<Mutex<Option<Lagged>>>,
}

impl NodeEvents {
    /// The next event; `None` once the node has stopped and everything queued,
    /// a pending [`NodeEvent::Lagged`] included, has been read. Cancel-safe:
    /// dropping the future loses no event.
    pub async fn next(&mut self) -> Option<NodeEvent> {
        if let Some(e) = self.try_next() {
            return Some(e);
        }
        // Nothing queued and no notice pending. A notice only becomes pending
        // when the queue is full, so an event arrives before any notice can.
        match self.rx.recv().await {
            Some(e) => Some(e),
            None => self.try_next(),
        }
    }

    /// The next event if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<NodeEvent> {
        // The driver queues or drops events under this lock, so "the queue is
        // empty and a notice is pending" means every queued event has been read.
        let mut lag = lock(&self.lag);
        match self.rx.try_recv() {
            Ok(e) => Some(e),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                lag.take().map(|l| NodeEvent::Lagged(Box::new(l)))
            }
        }
    }

    /// How many events are queued now (at most [`capacity`](Self::capacity)),
    /// not counting a pending [`NodeEvent::Lagged`].
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// The queue's capacity ([`NodeConfig::event_capacity`]).
    pub fn capacity(&self) -> usize {
        self.rx.max_capacity()
    }
}

fn lock(m: &Mutex<Option<Lagged>>) -> MutexGuard<'_, Option<Lagged>> {
    // Nothing panics while holding the lock, but a poisoned lock still holds a
    // consistent value.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The driver's end of the event queue: never waits, drops and counts when full.
struct EventSender {
    tx: mpsc::Sender<NodeEvent>,
    lag: Arc<Mutex<Option<Lagged>>>,
    /// The last regular configuration the engine produced.
    configuration: Option<ConfigurationChange>,
}

fn event_queue(capacity: usize) -> (EventSender, NodeEvents) {
    let (tx, rx) = mpsc::channel(capacity);
    let lag = Arc::new(Mutex::new(None));
    (
        EventSender {
            tx,
            lag: lag.clone(),
            configuration: None,
        },
        NodeEvents { rx, lag },
    )
}

impl EventSender {
    /// Queues `event`, or drops and counts it when the queue is full or a
    /// notice is pending; `snapshot` gives the engine's status after it.
    fn send(&mut self, at: Instant, event: Event, snapshot: impl FnOnce() -> (Status, Stats)) {
        if let Event::Configuration(c) = &event {
            if c.kind == ConfigurationKind::Regular {
                self.configuration = Some(c.clone());
            }
        }
        let mut lag = lock(&self.lag);
        if let Some(l) = lag.as_mut() {
            let (status, stats) = snapshot();
            l.at = at;
            l.missed += 1;
            l.configuration = self.configuration.clone();
            l.status = status;
            l.stats = stats;
            return;
        }
        match self.tx.try_send(NodeEvent::Engine { at, event }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let (status, stats) = snapshot();
                tracing::warn!(
                    node = status.node.0,
                    capacity = self.tx.max_capacity(),
                    "the event consumer is not keeping up: dropping events until it has read \
                     the queue, then it gets a Lagged notice with the current configuration"
                );
                *lag = Some(Lagged {
                    at,
                    missed: 1,
                    configuration: self.configuration.clone(),
                    status,
                    stats,
                });
            }
            // The application dropped its `NodeEvents`: nobody to tell.
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

enum Command {
    Status(oneshot::Sender<(Status, Stats)>),
    Leave(oneshot::Sender<()>),
}

/// Controls a running node. Dropping the handle kills the node.
#[derive(Debug)]
pub struct NodeHandle {
    node_id: NodeId,
    cmd: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The engine's status and counters. Waits for a free command slot if
    /// [`COMMAND_CAPACITY`] commands are already waiting.
    pub async fn status(&self) -> Result<(Status, Stats)> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Status(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Leaves the ring gracefully (multicasts LEAVE), then stops the node.
    pub async fn leave(self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Leave(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Stops the node at once, without a word to the others (like SIGKILL).
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Totem node over UDP.
pub struct Node;

impl Node {
    /// Binds this node's address (retrying for up to a second, so a node can be
    /// restarted on the address a killed one just released) and starts the node.
    pub async fn start(
        config: NodeConfig,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<(NodeHandle, NodeEvents)> {
        config.validate()?;
        let addr = config.members[&config.node_id];
        let mut tries = 0;
        let socket = loop {
            match UdpSocket::bind(addr).await {
                Ok(s) => break s,
                Err(e) if tries < 100 && e.kind() == std::io::ErrorKind::AddrInUse => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("binding {addr}"),
                        source: e,
                    })
                }
            }
        };
        Self::start_with_socket(config, socket, store, envelope)
    }

    /// Starts the node on an already bound socket.
    pub fn start_with_socket(
        config: NodeConfig,
        socket: UdpSocket,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<(NodeHandle, NodeEvents)> {
        config.validate()?;
        let engine = Totem::new(
            config.node_id,
            config.members.keys().copied(),
            &config.totem,
            store,
            Instant::now(),
        )?;
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (ev_tx, events) = event_queue(config.event_capacity);
        let task = tokio::spawn(run(engine, socket, config.members, envelope, cmd_rx, ev_tx));
        Ok((
            NodeHandle {
                node_id: config.node_id,
                cmd: cmd_tx,
                task,
            },
            events,
        ))
    }
}

async fn run(
    mut engine: Totem,
    socket: UdpSocket,
    members: BTreeMap<NodeId, SocketAddr>,
    mut envelope: Box<dyn Envelope>,
    mut cmd_rx: mpsc::Receiver<Command>,
    mut ev_tx: EventSender,
) {
    let me = engine.node_id();
    let mut buf = vec![0u8; 70 * 1024];
    loop {
        flush(
            &mut engine,
            &socket,
            &members,
            envelope.as_mut(),
            &mut ev_tx,
        )
        .await;
        let deadline = engine.poll_timeout().map(tokio::time::Instant::from_std);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => match envelope.open(&buf[..n]) {
                    Ok(opened) => engine.handle_datagram(Instant::now(), opened.sender, &opened.plaintext),
                    Err(e) => tracing::debug!(node = me.0, %from, error = %e, "envelope rejected a datagram"),
                },
                Err(e) => tracing::debug!(node = me.0, error = %e, "recv_from failed"),
            },
            () = sleep => engine.handle_timeout(Instant::now()),
            cmd = cmd_rx.recv() => match cmd {
                Some(Command::Status(reply)) => {
                    let _ = reply.send((engine.status(), engine.stats()));
                }
                Some(Command::Leave(reply)) => {
                    engine.leave(Instant::now());
                    flush(&mut engine, &socket, &members, envelope.as_mut(), &mut ev_tx).await;
                    let _ = reply.send(());
                    return;
                }
                None => return,
            },
        }
    }
}

async fn flush(
    engine: &mut Totem,
    socket: &UdpSocket,
    members: &BTreeMap<NodeId, SocketAddr>,
    envelope: &mut dyn Envelope,
    ev_tx: &mut EventSender,
) {
    let me = engine.node_id();
    while let Some(t) = engine.poll_transmit() {
        let sealed = envelope.seal(&t.payload);
        match t.dest {
            Destination::Node(to) => {
                if let Some(addr) = members.get(&to) {
                    let _ = socket.send_to(&sealed, addr).await;
                }
            }
            Destination::Multicast => {
                for (id, addr) in members {
                    if *id != me {
                        let _ = socket.send_to(&sealed, addr).await;
                    }
                }
            }
        }
    }
    while let Some(event) = engine.poll_event() {
        ev_tx.send(Instant::now(), event, || (engine.status(), engine.stats()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    use crate::{MembState, RingId};

    fn regular(seq: u64, members: &[u32]) -> Event {
        Event::Configuration(ConfigurationChange {
            kind: ConfigurationKind::Regular,
            ring_id: RingId {
                rep: NodeId(members[0]),
                seq,
            },
            old_ring_id: RingId {
                rep: NodeId(members[0]),
                seq: seq.saturating_sub(1),
            },
            members: members.iter().copied().map(NodeId).collect(),
            joined: Vec::new(),
            left: Vec::new(),
            left_gracefully: Vec::new(),
        })
    }

    fn status(seq: u64, state: MembState) -> (Status, Stats) {
        let status = Status {
            node: NodeId(1),
            state,
            ring_id: RingId {
                rep: NodeId(1),
                seq,
            },
            members: vec![NodeId(1)],
            proc_set: Vec::new(),
            failed_set: Vec::new(),
        };
        (status, Stats::default())
    }

    fn seq_of(e: &NodeEvent) -> Option<u64> {
        match e {
            NodeEvent::Engine {
                event: Event::Configuration(c),
                ..
            } => Some(c.ring_id.seq),
            _ => None,
        }
    }

    /// The queue never holds more than its capacity; the consumer gets the
    /// queued prefix, then one notice with the count and the latest state,
    /// then the events after it, in order.
    #[test]
    fn overflow_gives_prefix_then_one_notice_then_the_rest() {
        let (mut tx, mut rx) = event_queue(3);
        let now = Instant::now();
        for seq in 1..=10 {
            tx.send(now, regular(seq, &[1, 2]), || {
                status(seq, MembState::Operational)
            });
            assert!(rx.queued() <= 3);
        }
        let got: Vec<_> = (0..3).map(|_| seq_of(&rx.try_next().unwrap())).collect();
        assert_eq!(got, [Some(1), Some(2), Some(3)]);
        // Space is free again, but the notice is owed first: still dropping.
        tx.send(now, regular(11, &[1, 2, 3]), || {
            status(11, MembState::Operational)
        });
        assert_eq!(rx.queued(), 0);
        let Some(NodeEvent::Lagged(lag)) = rx.try_next() else {
            panic!("expected the lag notice");
        };
        assert_eq!(lag.missed, 8);
        assert_eq!(lag.status.ring_id.seq, 11);
        let c = lag.configuration.expect("a configuration");
        assert_eq!(c.ring_id.seq, 11);
        assert_eq!(c.members, [NodeId(1), NodeId(2), NodeId(3)]);
        assert!(rx.try_next().is_none());
        tx.send(now, regular(12, &[1, 2]), || {
            status(12, MembState::Operational)
        });
        assert_eq!(seq_of(&rx.try_next().unwrap()), Some(12));
        assert!(rx.try_next().is_none());
    }

    /// The notice carries the last regular configuration even when that one
    /// was delivered and only later (transitional, Left) events were missed.
    #[test]
    fn notice_carries_the_last_regular_configuration_even_if_delivered() {
        let (mut tx, mut rx) = event_queue(1);
        let now = Instant::now();
        tx.send(now, regular(4, &[1, 2]), || {
            status(4, MembState::Operational)
        });
        tx.send(now, Event::Left, || status(4, MembState::Left));
        assert_eq!(seq_of(&rx.try_next().unwrap()), Some(4));
        let Some(NodeEvent::Lagged(lag)) = rx.try_next() else {
            panic!("expected the lag notice");
        };
        assert_eq!(lag.missed, 1);
        assert_eq!(lag.status.state, MembState::Left);
        assert_eq!(lag.configuration.unwrap().ring_id.seq, 4);
    }

    /// A node that stops while a notice is pending: the consumer still gets
    /// the queued events, then the notice, then the end of the stream.
    #[tokio::test]
    async fn notice_survives_the_driver_stopping() {
        let (mut tx, mut rx) = event_queue(2);
        let now = Instant::now();
        for seq in 1..=5 {
            tx.send(now, regular(seq, &[1]), || {
                status(seq, MembState::Operational)
            });
        }
        drop(tx);
        assert_eq!(seq_of(&rx.next().await.unwrap()), Some(1));
        assert_eq!(seq_of(&rx.next().await.unwrap()), Some(2));
        match rx.next().await {
            Some(NodeEvent::Lagged(lag)) => assert_eq!(lag.missed, 3),
            other => panic!("expected the lag notice, got {other:?}"),
        }
        assert!(rx.next().await.is_none());
    }

    /// Cancelled status calls (their command stays queued while the driver
    /// is busy) cannot grow the command queue beyond its bound.
    #[tokio::test(flavor = "current_thread")]
    async fn cancelled_status_calls_do_not_grow_the_command_queue() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let config = NodeConfig::new(
            NodeId(1),
            TotemConfig::lan_fast(),
            BTreeMap::from([(NodeId(1), addr)]),
        );
        let envelope = crate::SecureEnvelope::new(
            &crate::ClusterKey::from_bytes([7; 32]),
            &config.totem.cluster_name,
            NodeId(1),
            1,
            [NodeId(1)],
        )
        .unwrap();
        let (handle, _events) = Node::start_with_socket(
            config,
            socket,
            Box::new(crate::MemoryRingIdStore::new()),
            Box::new(envelope),
        )
        .unwrap();
        // The driver task cannot run until this task yields: every call
        // below sends its command (if there is room) and is then cancelled.
        for _ in 0..10 * COMMAND_CAPACITY {
            let call = std::pin::pin!(handle.status());
            let waker = std::task::Waker::noop();
            let _ = call.poll(&mut std::task::Context::from_waker(waker));
        }
        let queued = handle.cmd.max_capacity() - handle.cmd.capacity();
        assert_eq!(queued, COMMAND_CAPACITY);
        // The driver drains them and answers the next call.
        let (status, _) = handle.status().await.unwrap();
        assert_eq!(status.node, NodeId(1));
    }
}
