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
//! handles.
//!
//! **Bounded event queues.** Each group handle has its own queue of at most
//! [`ClusterConfig::group_event_capacity`] events. The node never waits for a
//! handle (that would stall the ring for everyone): when a handle's queue is
//! full, the node removes that member from the group, as Corosync removes a CPG
//! client whose IPC is dead. Every member (this one's node included) sees it
//! leave with [`Reason::ProcDown`](crate::Reason::ProcDown), ordered with the
//! group's messages; the handle receives what was queued (a consistent prefix
//! of the group's stream), then [`GroupEvent::Overflow`], then `None`; its
//! sends fail with [`Error::Closed`]. Join the group again for a fresh member.
//!
//! **Socket buffers.** [`SocketBuffers`] sets `SO_RCVBUF` / `SO_SNDBUF` on the
//! node's UDP socket (default 8 MiB each, as knet does), so a burst from all
//! members does not overflow the kernel's receive buffer (`RcvbufErrors` in
//! `/proc/net/snmp`; every lost datagram costs a retransmission). Linux caps the
//! sizes at `net.core.rmem_max` / `net.core.wmem_max` unless the process has
//! `CAP_NET_ADMIN` (then `SO_RCVBUFFORCE` is used); a capped size is logged as a
//! warning naming the sysctl to raise.
//!
//! **Latency.** The node task sends as soon as the application's send reaches
//! it (no timer on the path), and an idle ring's held token is released with a
//! fresh visit (see `halyard_membership`'s `token` module). What remains in the
//! tail (on a busy host, and in some runs on an idle one) is thread scheduling: on tokio's multi-threaded runtime a
//! task woken by the node task (the one awaiting [`Group::recv`]) sits in that
//! worker's LIFO slot, which other workers cannot steal, so it waits whenever the
//! OS preempts that worker. Running the node and the tasks that consume its
//! groups on one current-thread runtime (or the process under `SCHED_RR`, as
//! Corosync runs) keeps the one-way p99 near 0.1–0.2 ms on loopback (see
//! `BENCHMARKS.md`).
//!
//! This driver mirrors `halyard_membership::driver` (udpu-style: a multicast is
//! one unicast per member) but runs a `Totem<Ordering>`; the membership driver
//! runs only the membership-only engine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use halyard_membership::{Destination, Envelope, NodeId, RingIdStore, Totem, TotemConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
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
    /// Events each [`Group`] handle may have waiting; a handle that falls this
    /// far behind is removed from its group (see the module docs). Memory per
    /// handle is bounded by this many events (each holds its message's bytes).
    pub group_event_capacity: usize,
    /// `SO_RCVBUF` / `SO_SNDBUF` of the node's UDP socket.
    pub socket_buffers: SocketBuffers,
}

/// Default [`ClusterConfig::group_event_capacity`]: 65 536 events (64 MiB of
/// 1 KiB messages), tens of milliseconds of the ring's full rate.
pub const DEFAULT_GROUP_EVENT_CAPACITY: usize = 65_536;

impl ClusterConfig {
    /// A configuration with the default event capacity and socket buffers.
    pub fn new(
        node_id: NodeId,
        totem: TotemConfig,
        ordering: OrderingConfig,
        members: BTreeMap<NodeId, SocketAddr>,
    ) -> Self {
        ClusterConfig {
            node_id,
            totem,
            ordering,
            members,
            group_event_capacity: DEFAULT_GROUP_EVENT_CAPACITY,
            socket_buffers: SocketBuffers::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.group_event_capacity == 0 {
            return Err(Error::InvalidConfig {
                field: "group_event_capacity",
                why: "must be at least 1 (the default is 65536 events)".into(),
            });
        }
        if !self.members.contains_key(&self.node_id) {
            return Err(Error::InvalidConfig {
                field: "members",
                why: "this node has no address in the member list".into(),
            });
        }
        Ok(())
    }
}

/// Kernel buffer sizes of the node's UDP socket; `None` keeps the system default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketBuffers {
    /// `SO_RCVBUF` in bytes (default 8 MiB).
    pub recv: Option<usize>,
    /// `SO_SNDBUF` in bytes (default 8 MiB).
    pub send: Option<usize>,
}

impl Default for SocketBuffers {
    fn default() -> Self {
        SocketBuffers {
            recv: Some(8 << 20),
            send: Some(8 << 20),
        }
    }
}

/// The buffer sizes the kernel reports after [`SocketBuffers`] were applied
/// (Linux reports twice the usable size, its bookkeeping overhead included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedBuffers {
    /// `SO_RCVBUF` as read back.
    pub recv: usize,
    /// `SO_SNDBUF` as read back.
    pub send: usize,
    /// The receive size asked for was capped (by `net.core.rmem_max`).
    pub recv_capped: bool,
    /// The send size asked for was capped (by `net.core.wmem_max`).
    pub send_capped: bool,
}

/// Sets the socket's buffer sizes: the plain option first, then the `FORCE`
/// variant (needs `CAP_NET_ADMIN`) if the kernel capped it; logs a warning
/// naming the sysctl when the size is still capped. Returns what the kernel reports.
pub fn apply_socket_buffers(
    socket: &impl std::os::fd::AsFd,
    want: SocketBuffers,
) -> std::io::Result<AppliedBuffers> {
    use rustix::net::sockopt;
    let fd = socket.as_fd();
    let mut recv_capped = false;
    if let Some(n) = want.recv {
        sockopt::set_socket_recv_buffer_size(fd, n)?;
        if sockopt::socket_recv_buffer_size(fd)? < n.saturating_mul(2) {
            let _ = sockopt::set_socket_recv_buffer_size_force(fd, n);
            let got = sockopt::socket_recv_buffer_size(fd)?;
            if got < n.saturating_mul(2) {
                recv_capped = true;
                tracing::warn!(
                    asked = n,
                    got = got / 2,
                    rmem_max = sysctl("net/core/rmem_max"),
                    "SO_RCVBUF capped by the kernel: raise net.core.rmem_max (sysctl -w net.core.rmem_max={n}) or run with CAP_NET_ADMIN"
                );
            }
        }
    }
    let mut send_capped = false;
    if let Some(n) = want.send {
        sockopt::set_socket_send_buffer_size(fd, n)?;
        if sockopt::socket_send_buffer_size(fd)? < n.saturating_mul(2) {
            let _ = sockopt::set_socket_send_buffer_size_force(fd, n);
            let got = sockopt::socket_send_buffer_size(fd)?;
            if got < n.saturating_mul(2) {
                send_capped = true;
                tracing::warn!(
                    asked = n,
                    got = got / 2,
                    wmem_max = sysctl("net/core/wmem_max"),
                    "SO_SNDBUF capped by the kernel: raise net.core.wmem_max (sysctl -w net.core.wmem_max={n}) or run with CAP_NET_ADMIN"
                );
            }
        }
    }
    Ok(AppliedBuffers {
        recv: sockopt::socket_recv_buffer_size(fd)?,
        send: sockopt::socket_send_buffer_size(fd)?,
        recv_capped,
        send_capped,
    })
}

fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

enum Command {
    Join {
        group: Bytes,
        pid: u32,
        route: Route,
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

/// Where a local member's events go.
struct Route {
    tx: mpsc::Sender<GroupEvent>,
    /// Set by the node when it removed the member for not keeping up.
    overflowed: Arc<AtomicBool>,
}

/// A running node. Dropping it stops the node (like [`kill`](Self::kill)).
#[derive(Debug)]
pub struct Cluster {
    node_id: NodeId,
    cmd: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
    next_pid: std::sync::atomic::AtomicU32,
    capacity: usize,
    buffers: Option<AppliedBuffers>,
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
    events: mpsc::Receiver<GroupEvent>,
    overflowed: Arc<AtomicBool>,
    capacity: usize,
    overflow_reported: bool,
    left: bool,
}

impl Cluster {
    /// Binds this node's address and starts the node.
    pub async fn start(
        config: ClusterConfig,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<Cluster> {
        config.validate()?;
        let addr = config.members[&config.node_id];
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| Error::Membership(format!("binding {addr}: {e}")))?;
        Self::start_with_socket(config, socket, store, envelope)
    }

    /// Starts the node on an already bound socket (its buffer sizes are set
    /// from [`ClusterConfig::socket_buffers`]).
    pub fn start_with_socket(
        config: ClusterConfig,
        socket: UdpSocket,
        store: Box<dyn RingIdStore>,
        envelope: Box<dyn Envelope>,
    ) -> Result<Cluster> {
        config.validate()?;
        let buffers = match apply_socket_buffers(&socket, config.socket_buffers) {
            Ok(b) => {
                tracing::debug!(node = config.node_id.0, ?b, "socket buffers");
                Some(b)
            }
            Err(e) => {
                tracing::warn!(node = config.node_id.0, error = %e, "could not set the socket buffer sizes; keeping the system defaults");
                None
            }
        };
        let capacity = config.group_event_capacity;
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
            removing: VecDeque::new(),
            removed: BTreeSet::new(),
            stopping: None,
        };
        let task = tokio::spawn(driver.run(rx));
        Ok(Cluster {
            node_id: config.node_id,
            cmd: tx,
            task,
            next_pid: std::sync::atomic::AtomicU32::new(1),
            capacity,
            buffers,
        })
    }

    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The socket buffer sizes the kernel reports (`None` if they could not be set).
    pub fn socket_buffers(&self) -> Option<AppliedBuffers> {
        self.buffers
    }

    /// Joins `group` as a new local member; returns once the member is in the
    /// group's view (its first event, a Membership event, is then waiting in
    /// [`Group::recv`]).
    pub async fn join(&self, group: impl AsRef<[u8]>) -> Result<Group> {
        let group = Bytes::copy_from_slice(group.as_ref());
        let pid = self
            .next_pid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (etx, erx) = mpsc::channel(self.capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Join {
                group: group.clone(),
                pid,
                route: Route {
                    tx: etx,
                    overflowed: overflowed.clone(),
                },
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
            overflowed,
            capacity: self.capacity,
            overflow_reported: false,
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

    /// The next message or membership change of the group; `None` once the node
    /// has stopped. If this handle fell [`ClusterConfig::group_event_capacity`]
    /// events behind, the node removed it from the group: it then gets the
    /// events queued until then, one [`GroupEvent::Overflow`], and `None`.
    pub async fn recv(&mut self) -> Option<GroupEvent> {
        match self.events.recv().await {
            Some(ev) => Some(ev),
            None if self.overflowed.load(AtomicOrdering::Acquire) && !self.overflow_reported => {
                self.overflow_reported = true;
                Some(GroupEvent::Overflow {
                    capacity: self.capacity,
                })
            }
            None => None,
        }
    }

    /// Whether the node removed this member for not keeping up with its events.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(AtomicOrdering::Acquire)
    }

    /// Leaves the group, after this member's sends that are still waiting for
    /// room in the send queue (dropping the handle leaves too, without waiting).
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

/// A local member's request waiting for room in the send queue.
struct Waiting {
    group: Bytes,
    pid: u32,
    request: Request,
    reply: oneshot::Sender<Result<()>>,
}

/// What a [`Waiting`] entry asks for.
enum Request {
    Send {
        payload: Bytes,
        delivery: Delivery,
    },
    /// Queued behind the member's earlier sends, so it never overtakes them,
    /// and kept until there is room, so a dropped handle's leave is never lost.
    Leave,
}

struct Driver {
    engine: Totem<Ordering>,
    groups: Groups,
    socket: UdpSocket,
    members: BTreeMap<NodeId, SocketAddr>,
    envelope: Box<dyn Envelope>,
    routes: BTreeMap<(Bytes, u32), Route>,
    joining: BTreeMap<(Bytes, u32), oneshot::Sender<Result<()>>>,
    /// Sends and leaves waiting for room in the send queue, in order.
    waiting: VecDeque<Waiting>,
    /// Members removed for not keeping up whose ProcDown is not queued yet.
    removing: VecDeque<(Bytes, u32)>,
    /// Members removed for not keeping up (their sends are refused).
    removed: BTreeSet<(Bytes, u32)>,
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
                route,
                reply,
            } => match self.groups.join(self.engine.hook_mut(), &group, pid) {
                Ok(()) => {
                    self.routes.insert((group.clone(), pid), route);
                    self.joining.insert((group, pid), reply);
                    self.engine.request_token(now);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Leave { group, pid, reply } => {
                self.waiting.push_back(Waiting {
                    group,
                    pid,
                    request: Request::Leave,
                    reply,
                });
                self.retry_waiting();
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
                if self.removed.contains(&(group.clone(), pid)) {
                    let _ = reply.send(Err(Error::Closed(
                        "this member was removed from the group: it did not keep up with its events",
                    )));
                    return;
                }
                self.waiting.push_back(Waiting {
                    group,
                    pid,
                    request: Request::Send { payload, delivery },
                    reply,
                });
                self.retry_waiting();
            }
        }
    }

    /// Hands waiting sends and leaves to the ordering layer, in order, while it
    /// has room.
    fn retry_waiting(&mut self) {
        let mut sent = false;
        while let Some(w) = self.waiting.front() {
            let r = match &w.request {
                Request::Send { payload, delivery } => {
                    if !self.engine.hook().has_room(payload.len() + 4) {
                        break;
                    }
                    self.groups
                        .send(self.engine.hook_mut(), &w.group, w.pid, payload, *delivery)
                }
                Request::Leave => self.groups.leave(self.engine.hook_mut(), &w.group, w.pid),
            };
            if matches!(r, Err(Error::WouldBlock { .. })) {
                break;
            }
            let w = self.waiting.pop_front().expect("peeked");
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
            let mut gone = false;
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
                gone = left.iter().any(|(m, _)| *m == me);
            }
            if let Some(route) = self.routes.get(&key) {
                match route.tx.try_send(a.event) {
                    Ok(()) => {}
                    // The handle is gone (its drop sent a LEAVE).
                    Err(TrySendError::Closed(_)) => gone = true,
                    Err(TrySendError::Full(_)) => {
                        // Never wait for a handle: remove the member instead.
                        route.overflowed.store(true, AtomicOrdering::Release);
                        tracing::warn!(
                            node = self.engine.node_id().0,
                            group = %String::from_utf8_lossy(&a.group),
                            pid = a.pid,
                            "a group member fell too far behind its events: removing it from the group"
                        );
                        self.removed.insert(key.clone());
                        self.removing.push_back(key.clone());
                        gone = true;
                    }
                }
            }
            if gone {
                // Dropping the sender closes the handle's queue after what it holds.
                self.routes.remove(&key);
            }
        }
        while let Some((group, pid)) = self.removing.front().cloned() {
            match self.groups.proc_down(self.engine.hook_mut(), &group, pid) {
                Ok(()) => {
                    self.removing.pop_front();
                    self.engine.request_token(Instant::now());
                }
                // The send queue is full: try again after the next flush.
                Err(Error::WouldBlock { .. }) => break,
                Err(e) => {
                    tracing::warn!(node = self.engine.node_id().0, error = %e, "could not announce a removed member");
                    self.removing.pop_front();
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
