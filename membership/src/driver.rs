//! The tokio driver: one [`Totem`] engine over UDP unicast (like Corosync's udpu).
//!
//! The driver owns the socket, the clock and the task, and nothing else: every
//! datagram goes through the caller's [`Envelope`] (seal on the way out, open on
//! the way in; what `open` rejects never reaches the engine), a "multicast" is
//! one unicast per configured member, and timers are the engine's
//! `poll_timeout`. Events arrive on [`NodeEvents`]; [`NodeHandle`] asks for
//! status, leaves gracefully, or kills the node (as a crash would).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::{
    Destination, Envelope, Error, Event, NodeId, Result, RingIdStore, Stats, Status, Totem,
    TotemConfig,
};

/// What a node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node.
    pub node_id: NodeId,
    /// Timers and cluster name.
    pub totem: TotemConfig,
    /// Every member's UDP address, this node's included (it binds to its own).
    pub members: BTreeMap<NodeId, SocketAddr>,
}

/// An event with the time the engine produced it.
#[derive(Debug, Clone)]
pub struct NodeEvent {
    /// When it happened.
    pub at: Instant,
    /// What happened.
    pub event: Event,
}

/// The stream of a node's events.
#[derive(Debug)]
pub struct NodeEvents {
    rx: mpsc::UnboundedReceiver<NodeEvent>,
}

impl NodeEvents {
    /// The next event; `None` once the node has stopped.
    pub async fn next(&mut self) -> Option<NodeEvent> {
        self.rx.recv().await
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
    cmd: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The engine's status and counters.
    pub async fn status(&self) -> Result<(Status, Stats)> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Status(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Leaves the ring gracefully (multicasts LEAVE), then stops the node.
    pub async fn leave(self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Leave(tx))
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
        let addr = *config.members.get(&config.node_id).ok_or_else(|| {
            Error::InvalidNode(
                config.node_id.0,
                "this node has no address in the member list".into(),
            )
        })?;
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
        let engine = Totem::new(
            config.node_id,
            config.members.keys().copied(),
            &config.totem,
            store,
            Instant::now(),
        )?;
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(engine, socket, config.members, envelope, cmd_rx, ev_tx));
        Ok((
            NodeHandle {
                node_id: config.node_id,
                cmd: cmd_tx,
                task,
            },
            NodeEvents { rx: ev_rx },
        ))
    }
}

async fn run(
    mut engine: Totem,
    socket: UdpSocket,
    members: BTreeMap<NodeId, SocketAddr>,
    mut envelope: Box<dyn Envelope>,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ev_tx: mpsc::UnboundedSender<NodeEvent>,
) {
    let me = engine.node_id();
    let mut buf = vec![0u8; 70 * 1024];
    loop {
        flush(&mut engine, &socket, &members, envelope.as_mut(), &ev_tx).await;
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
                    flush(&mut engine, &socket, &members, envelope.as_mut(), &ev_tx).await;
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
    ev_tx: &mpsc::UnboundedSender<NodeEvent>,
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
        let _ = ev_tx.send(NodeEvent {
            at: Instant::now(),
            event,
        });
    }
}
