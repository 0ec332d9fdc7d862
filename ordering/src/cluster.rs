//! The tokio API: a node of the cluster over UDP, and closed process groups.
//!
//! ```text
//!  Cluster::start(config, store, envelope) ── one task: Totem<Ordering> + Groups + UDP socket
//!  cluster.join(group).await -> Group        (returns once this member is in the view)
//!  group.send(bytes, Agreed|Safe).await      (waits while the send queue is full: back-pressure)
//!  group.recv().await -> GroupEvent::{Message{from, ..}, Membership{members, joined, left}}
//! ```
//!
//! The task is thin: it moves datagrams between the socket and the engine
//! (through the caller's [`Envelope`], which authenticates and encrypts), fires
//! the engine's timers, and routes the group layer's events to the [`Group`]
//! handles. Each group handle has its own unbounded event channel: a member that
//! never calls `recv` makes its queue grow, as a Corosync CPG client that never
//! dispatches does.
//!
//! This driver mirrors `halyard_membership::driver` (udpu-style: a multicast is
//! one unicast per member) but runs a `Totem<Ordering>`; the membership driver
//! runs only the membership-only engine.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use halyard_membership::{Destination, Envelope, NodeId, RingIdStore, Totem, TotemConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::groups::{GroupEvent, Groups, Member};
use crate::ordering::{Delivery, Ordering};
use crate::OrderingConfig;

/// What a node needs to run.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node.
    pub node_id: NodeId,
    /// Ring timers and cluster name.
    pub totem: TotemConfig,
    /// Flow control, frame size and queue bounds.
    pub ordering: OrderingConfig,
    /// Every member's UDP address, this node's included (it binds to its own).
    pub members: BTreeMap<NodeId, SocketAddr>,
}

enum Command {
    Join {
        group: Bytes,
        pid: u32,
        events: mpsc::UnboundedSender<GroupEvent>,
        reply: oneshot::Sender<Result<()>>,
    },
    Leave {
        group: Bytes,
        pid: u32,
        reply: oneshot::Sender<Result<()>>,
    },
    Send {
        group: Bytes,
        pid: u32,
        payload: Bytes,
        delivery: Delivery,
        reply: oneshot::Sender<Result<()>>,
    },
    LeaveRing {
        reply: oneshot::Sender<()>,
    },
}

/// A running node. Dropping it stops the node (like [`kill`](Self::kill)).
#[derive(Debug)]
pub struct Cluster {
    node_id: NodeId,
    cmd: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
    next_pid: std::sync::atomic::AtomicU32,
}

/// Sends as one local member of a group; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupSender {
    group: Bytes,
    pid: u32,
    cmd: mpsc::UnboundedSender<Command>,
}

impl GroupSender {
    /// Sends a message to the group. Waits while the node's send queue is full
    /// (back-pressure); fails if the message is too large or the node stopped.
    pub async fn send(&self, payload: impl Into<Bytes>, delivery: Delivery) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Send {
                group: self.group.clone(),
                pid: self.pid,
                payload: payload.into(),
                delivery,
                reply,
            })
            .map_err(|_| Error::Closed("the node has stopped"))?;
        rx.await
            .map_err(|_| Error::Closed("the node has stopped"))?
    }
}

/// One local member of a process group.
#[derive(Debug)]
pub struct Group {
    group: Bytes,
    me: Member,
    cmd: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<GroupEvent>,
    left: bool,
}

impl Cluster {
    /// Binds this node's address and starts the node.
    pub async fn start(
        config: ClusterConfig,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<Cluster> {
        let addr = *config
            .members
            .get(&config.node_id)
            .ok_or(Error::InvalidConfig {
                field: "members",
                why: "this node has no address in the member list".into(),
            })?;
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| Error::Membership(format!("binding {addr}: {e}")))?;
        Self::start_with_socket(config, socket, store, envelope)
    }

    /// Starts the node on an already bound socket.
    pub fn start_with_socket(
        config: ClusterConfig,
        socket: UdpSocket,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<Cluster> {
        let ordering = Ordering::new(config.node_id, config.ordering.clone())?;
        let engine = Totem::with_hook(
            config.node_id,
            config.members.keys().copied(),
            &config.totem,
            store,
            ordering,
            Instant::now(),
        )
        .map_err(|e| Error::Membership(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            engine,
            groups: Groups::new(config.node_id),
            socket,
            members: config.members,
            envelope,
            routes: BTreeMap::new(),
            joining: BTreeMap::new(),
            waiting: VecDeque::new(),
            stopping: None,
        };
        let task = tokio::spawn(driver.run(rx));
        Ok(Cluster {
            node_id: config.node_id,
            cmd: tx,
            task,
            next_pid: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Joins `group` as a new local member; returns once the member is in the
    /// group's view (its first event, a Membership event, is then waiting in
    /// [`Group::recv`]).
    pub async fn join(&self, group: impl AsRef<[u8]>) -> Result<Group> {
        let group = Bytes::copy_from_slice(group.as_ref());
        let pid = self
            .next_pid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (etx, erx) = mpsc::unbounded_channel();
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Join {
                group: group.clone(),
                pid,
                events: etx,
                reply,
            })
            .map_err(|_| Error::Closed("the node has stopped"))?;
        rx.await
            .map_err(|_| Error::Closed("the node has stopped"))??;
        Ok(Group {
            group,
            me: Member {
                node: self.node_id,
                pid,
            },
            cmd: self.cmd.clone(),
            events: erx,
            left: false,
        })
    }

    /// Leaves the ring gracefully (Totem LEAVE, so the others re-form at once
    /// instead of waiting for token loss), then stops the node. Messages still
    /// queued are not sent.
    pub async fn leave(self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::LeaveRing { reply })
            .map_err(|_| Error::Closed("the node has stopped"))?;
        rx.await.map_err(|_| Error::Closed("the node has stopped"))
    }

    /// Stops the node at once, without a word to the others (like SIGKILL).
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Group {
    /// This member.
    pub fn member(&self) -> Member {
        self.me
    }

    /// The group's name.
    pub fn name(&self) -> &[u8] {
        &self.group
    }

    /// Sends a message to the group. Waits while the node's send queue is full
    /// (back-pressure); fails if the message is too large or the node stopped.
    pub async fn send(&self, payload: impl Into<Bytes>, delivery: Delivery) -> Result<()> {
        self.sender().send(payload, delivery).await
    }

    /// A handle that sends as this member, for another task (while this one receives).
    pub fn sender(&self) -> GroupSender {
        GroupSender {
            group: self.group.clone(),
            pid: self.me.pid,
            cmd: self.cmd.clone(),
        }
    }

    /// The next message or membership change of the group; `None` once the node has stopped.
    pub async fn recv(&mut self) -> Option<GroupEvent> {
        self.events.recv().await
    }

    /// Leaves the group (dropping the handle leaves too, without waiting).
    pub async fn leave(mut self) -> Result<()> {
        self.left = true;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Leave {
                group: self.group.clone(),
                pid: self.me.pid,
                reply,
            })
            .map_err(|_| Error::Closed("the node has stopped"))?;
        rx.await
            .map_err(|_| Error::Closed("the node has stopped"))?
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.left {
            let (reply, _) = oneshot::channel();
            let _ = self.cmd.send(Command::Leave {
                group: self.group.clone(),
                pid: self.me.pid,
                reply,
            });
        }
    }
}

/// Datagrams read in one go after a wake-up, before the engine's output is flushed.
const RECV_BATCH: usize = 256;

struct Waiting {
    group: Bytes,
    pid: u32,
    payload: Bytes,
    delivery: Delivery,
    reply: oneshot::Sender<Result<()>>,
}

struct Driver {
    engine: Totem<Ordering>,
    groups: Groups,
    socket: UdpSocket,
    members: BTreeMap<NodeId, SocketAddr>,
    envelope: Box<dyn Envelope>,
    routes: BTreeMap<(Bytes, u32), mpsc::UnboundedSender<GroupEvent>>,
    joining: BTreeMap<(Bytes, u32), oneshot::Sender<Result<()>>>,
    /// Sends waiting for room in the send queue, in order.
    waiting: VecDeque<Waiting>,
    /// Set by a graceful leave: flush the LEAVE, answer, stop.
    stopping: Option<oneshot::Sender<()>>,
}

impl Driver {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let me = self.engine.node_id();
        let mut buf = vec![0u8; 70 * 1024];
        loop {
            self.flush().await;
            let deadline = self
                .engine
                .poll_timeout()
                .map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        self.datagram(&buf[..n], from);
                        // Drain what else is waiting before flushing (bounded), so a
                        // burst does not overflow the socket's receive buffer.
                        for _ in 0..RECV_BATCH {
                            match self.socket.try_recv_from(&mut buf) {
                                Ok((n, from)) => self.datagram(&buf[..n], from),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => tracing::debug!(node = me.0, error = %e, "recv_from failed"),
                },
                () = sleep => self.engine.handle_timeout(Instant::now()),
                cmd = rx.recv() => match cmd {
                    Some(c) => {
                        self.command(c);
                        for _ in 0..RECV_BATCH {
                            match rx.try_recv() {
                                Ok(c) => self.command(c),
                                Err(_) => break,
                            }
                        }
                    }
                    None => return,
                },
            }
            if let Some(reply) = self.stopping.take() {
                self.flush().await;
                let _ = reply.send(());
                return;
            }
        }
    }

    fn datagram(&mut self, d: &[u8], from: SocketAddr) {
        match self.envelope.open(d) {
            Ok(o) => self
                .engine
                .handle_datagram(Instant::now(), o.sender, &o.plaintext),
            Err(e) => {
                tracing::debug!(node = self.engine.node_id().0, %from, error = %e, "envelope rejected a datagram")
            }
        }
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Join {
                group,
                pid,
                events,
                reply,
            } => match self.groups.join(self.engine.hook_mut(), &group, pid) {
                Ok(()) => {
                    self.routes.insert((group.clone(), pid), events);
                    self.joining.insert((group, pid), reply);
                    self.engine.request_token(now);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Leave { group, pid, reply } => {
                let r = self.groups.leave(self.engine.hook_mut(), &group, pid);
                if r.is_ok() {
                    self.engine.request_token(now);
                }
                let _ = reply.send(r);
            }
            Command::LeaveRing { reply } => {
                self.engine.leave(now);
                self.stopping = Some(reply);
            }
            Command::Send {
                group,
                pid,
                payload,
                delivery,
                reply,
            } => {
                self.waiting.push_back(Waiting {
                    group,
                    pid,
                    payload,
                    delivery,
                    reply,
                });
                self.retry_waiting();
            }
        }
    }

    /// Hands waiting sends to the ordering layer while it has room.
    fn retry_waiting(&mut self) {
        let mut sent = false;
        while let Some(w) = self.waiting.front() {
            if !self.engine.hook().has_room(w.payload.len() + 4) {
                break;
            }
            let w = self.waiting.pop_front().expect("peeked");
            let r = self.groups.send(
                self.engine.hook_mut(),
                &w.group,
                w.pid,
                &w.payload,
                w.delivery,
            );
            sent |= r.is_ok();
            let _ = w.reply.send(r);
        }
        if sent {
            self.engine.request_token(Instant::now());
        }
    }

    async fn flush(&mut self) {
        // Group events, in order.
        while let Some(ev) = self.engine.hook_mut().poll_event() {
            let Self { groups, engine, .. } = self;
            groups.handle(engine.hook_mut(), &ev);
        }
        while let Some(a) = self.groups.poll_event() {
            let key = (a.group.clone(), a.pid);
            if let GroupEvent::Membership { members, left, .. } = &a.event {
                let me = Member {
                    node: self.engine.node_id(),
                    pid: a.pid,
                };
                if members.contains(&me) {
                    if let Some(reply) = self.joining.remove(&key) {
                        let _ = reply.send(Ok(()));
                    }
                }
                let gone = left.iter().any(|(m, _)| *m == me);
                if let Some(tx) = self.routes.get(&key) {
                    let _ = tx.send(a.event.clone());
                }
                if gone {
                    self.routes.remove(&key);
                }
                continue;
            }
            if let Some(tx) = self.routes.get(&key) {
                if tx.send(a.event).is_err() {
                    self.routes.remove(&key);
                }
            }
        }
        while self.engine.poll_event().is_some() {}
        self.retry_waiting();
        let me = self.engine.node_id();
        while let Some(t) = self.engine.poll_transmit() {
            let sealed = self.envelope.seal(&t.payload);
            match t.dest {
                Destination::Node(to) => {
                    if let Some(addr) = self.members.get(&to) {
                        let _ = self.socket.send_to(&sealed, addr).await;
                    }
                }
                Destination::Multicast => {
                    for (id, addr) in &self.members {
                        if *id != me {
                            let _ = self.socket.send_to(&sealed, addr).await;
                        }
                    }
                }
            }
        }
    }
}
