//! The tokio API: a node of the cluster over UDP, and closed process groups.
//!
//! ```text
//!  Cluster::start(config, store, envelope) ── one task: Totem<Ordering> + Groups + UDP socket
//!  cluster.join(group).await -> Group        (returns once this member is in the view)
//!  group.send(bytes, Agreed|Safe).await      (waits for room in the send budget: back-pressure)
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
//! **The send budget.** Everything an application can queue again and again
//! is bounded by one byte budget per node, [`OrderingConfig::send_queue_bytes`]
//! (4 MiB by default), as Corosync's CPG bounds `cpg_mcast_joined` by its
//! send queue. A send is charged its payload, the 4-byte member id and
//! [`REQUEST_OVERHEAD`] bytes of bookkeeping (so a flood of tiny messages is
//! bounded in count too); a join is charged its group name and the same
//! overhead. The charge is taken when the request is **accepted** and held
//! until the ring has taken the message (the ordering layer has packed it
//! into frames), covering the node's command queue, its wait for the
//! ordering layer and the ordering layer's send queue alike.
//! [`Cluster::queued_send_bytes`] reports it. A request that does not fit
//! waits, in arrival order (the budget is fair: a large message is not
//! starved by small ones), instead of failing: the CPG model of
//! `CS_ERR_TRY_AGAIN`, with the retry done for the caller. Leaving (a group
//! or the ring) is never charged, and never waits for the budget: it happens
//! once per handle.
//!
//! **Cancellation.** [`Group::send`] is cancel-safe: its future completes as
//! soon as the message is accepted, so a send whose future is dropped before
//! it completed (a `timeout`, a `select!`) accepted nothing and holds no
//! budget, and a send that returned `Ok` will go to the ring in order after
//! this member's earlier accepted sends and before its leave. Accepted
//! messages are delivered like any others: to the members of the group at
//! delivery time, unless this node stops (or this member is removed, see
//! below) first. Sends after the member left the group fail with
//! [`Error::Closed`]. A [`Cluster::join`] cancelled after it was accepted
//! joins and leaves again at once, so no member is left behind without a
//! handle.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use halyard_membership::{Destination, Envelope, NodeId, RingIdStore, Totem, TotemConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

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

/// Bytes of bookkeeping each accepted send or join is charged against the
/// send budget ([`OrderingConfig::send_queue_bytes`]) on top of its own bytes:
/// about what the node keeps per queued message, so the number of queued
/// messages is bounded as well as their bytes.
pub const REQUEST_OVERHEAD: usize = 128;

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

/// A request from the application to the node task. Joins and sends carry
/// their charge against the send budget (so the queue cannot grow beyond it);
/// leaves are not charged (one per handle).
enum Command {
    Join {
        group: Bytes,
        pid: u32,
        route: Route,
        reply: oneshot::Sender<Result<()>>,
        charge: Charge,
    },
    Leave {
        group: Bytes,
        pid: u32,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Accepted: the caller does not wait for an answer.
    Send {
        group: Bytes,
        pid: u32,
        payload: Bytes,
        delivery: Delivery,
        charge: Charge,
    },
    LeaveRing {
        reply: oneshot::Sender<()>,
    },
}

/// What the handles of one node share: the command queue and the send budget.
#[derive(Debug)]
struct Shared {
    cmd: mpsc::UnboundedSender<Command>,
    /// Bytes of accepted sends and joins not yet taken by the ring (see the
    /// module docs); closed when the node task ends.
    budget: Arc<Semaphore>,
    /// What the accepted requests' [`Charge`]s hold (the semaphore may also
    /// have given part of its permits to the oldest waiting request).
    used: Arc<AtomicUsize>,
    /// The budget's size.
    limit: usize,
    /// [`OrderingConfig::max_message`].
    max_message: usize,
}

impl Shared {
    /// What a request of `len` bytes is charged (never more than the whole
    /// budget, so every request that passes the size check fits eventually).
    fn charge(&self, len: usize) -> u32 {
        u32::try_from(len.saturating_add(REQUEST_OVERHEAD).min(self.limit)).unwrap_or(u32::MAX)
    }

    /// Waits for `len` bytes of budget (cancel-safe: dropped while waiting,
    /// it takes nothing).
    async fn reserve(&self, len: usize) -> Result<Charge> {
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(self.charge(len))
            .await
            .map_err(|_| Shared::closed())?;
        self.used
            .fetch_add(permit.num_permits(), AtomicOrdering::Relaxed);
        Ok(Charge {
            permit,
            used: self.used.clone(),
        })
    }

    fn closed() -> Error {
        Error::Closed("the node has stopped")
    }
}

/// An accepted request's share of the send budget, given back when dropped.
#[derive(Debug)]
struct Charge {
    permit: OwnedSemaphorePermit,
    used: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.used
            .fetch_sub(self.permit.num_permits(), AtomicOrdering::Relaxed);
    }
}

/// One local member's state shared by its [`Group`], its [`GroupSender`]s and
/// (for `overflowed`) the node task.
#[derive(Debug)]
struct MemberState {
    /// Set by the node when it removed the member for not keeping up.
    overflowed: Arc<AtomicBool>,
    /// Set, under the lock, when this member's LEAVE is queued: a send checks
    /// it and queues its message under the same lock, so no send is accepted
    /// behind the leave.
    left: Mutex<bool>,
}

fn lock(m: &Mutex<bool>) -> MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    shared: Arc<Shared>,
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
    shared: Arc<Shared>,
    state: Arc<MemberState>,
}

impl GroupSender {
    /// Sends a message to the group: waits for room in the node's send budget
    /// (back-pressure, see the module docs), and returns once the message is
    /// accepted; it then goes to the ring in order, without further waiting.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the message
    /// was not accepted and holds no budget. Fails with
    /// [`Error::MessageTooLarge`] above [`OrderingConfig::max_message`] less the
    /// 4-byte member id, and with [`Error::Closed`] once the member has left
    /// or was removed from the group, or the node has stopped.
    pub async fn send(&self, payload: impl Into<Bytes>, delivery: Delivery) -> Result<()> {
        let payload = payload.into();
        let max = self.shared.max_message.saturating_sub(4);
        if payload.len() > max {
            return Err(Error::MessageTooLarge {
                len: payload.len(),
                max,
            });
        }
        self.check_member(*lock(&self.state.left))?;
        let charge = self.shared.reserve(payload.len() + 4).await?;
        // Checked and queued under the lock: a leave is queued either before
        // this check (the send fails) or after this message.
        let left = lock(&self.state.left);
        self.check_member(*left)?;
        self.shared
            .cmd
            .send(Command::Send {
                group: self.group.clone(),
                pid: self.pid,
                payload,
                delivery,
                charge,
            })
            .map_err(|_| Shared::closed())
    }

    fn check_member(&self, left: bool) -> Result<()> {
        if self.state.overflowed.load(AtomicOrdering::Acquire) {
            return Err(Error::Closed(
                "this member was removed from the group: it did not keep up with its events",
            ));
        }
        if left {
            return Err(Error::Closed("this member has left the group"));
        }
        Ok(())
    }
}

/// One local member of a process group.
#[derive(Debug)]
pub struct Group {
    group: Bytes,
    me: Member,
    shared: Arc<Shared>,
    state: Arc<MemberState>,
    events: mpsc::Receiver<GroupEvent>,
    capacity: usize,
    overflow_reported: bool,
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
        let limit = config.ordering.send_queue_bytes.min(Semaphore::MAX_PERMITS);
        let max_message = config.ordering.max_message;
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
        // Unbounded as a channel, bounded by what goes in: sends and joins
        // hold their charge against `budget`, leaves come once per handle.
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(limit));
        let driver = Driver {
            engine,
            groups: Groups::new(config.node_id),
            socket,
            members: config.members,
            envelope,
            routes: BTreeMap::new(),
            joining: BTreeMap::new(),
            waiting: VecDeque::new(),
            taken: VecDeque::new(),
            taken_bytes: 0,
            removing: VecDeque::new(),
            removed: BTreeSet::new(),
            stopping: None,
            budget: budget.clone(),
        };
        let task = tokio::spawn(driver.run(rx));
        Ok(Cluster {
            node_id: config.node_id,
            shared: Arc::new(Shared {
                cmd: tx,
                budget,
                used: Arc::new(AtomicUsize::new(0)),
                limit,
                max_message,
            }),
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

    /// Bytes of the send budget ([`OrderingConfig::send_queue_bytes`]) held by
    /// accepted sends and joins the ring has not taken yet, each charged its
    /// bytes plus [`REQUEST_OVERHEAD`] (see the module docs). Never more than
    /// the budget; sends wait while the next one does not fit.
    pub fn queued_send_bytes(&self) -> usize {
        self.shared.used.load(AtomicOrdering::Relaxed)
    }

    /// Joins `group` as a new local member; returns once the member is in the
    /// group's view (its first event, a Membership event, is then waiting in
    /// [`Group::recv`]). Waits for room in the send budget first, like a send.
    /// If the future is dropped after the join was accepted, the member leaves
    /// again at once.
    pub async fn join(&self, group: impl AsRef<[u8]>) -> Result<Group> {
        let group = Bytes::copy_from_slice(group.as_ref());
        if group.len() > 255 {
            return Err(Error::GroupNameTooLong(group.len()));
        }
        let charge = self.shared.reserve(group.len()).await?;
        let pid = self
            .next_pid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (etx, erx) = mpsc::channel(self.capacity);
        let overflowed = Arc::new(AtomicBool::new(false));
        let (reply, rx) = oneshot::channel();
        self.shared
            .cmd
            .send(Command::Join {
                group: group.clone(),
                pid,
                route: Route {
                    tx: etx,
                    overflowed: overflowed.clone(),
                },
                reply,
                charge,
            })
            .map_err(|_| Shared::closed())?;
        // From here on the handle exists: dropping this future drops it, and
        // its drop queues the LEAVE behind the JOIN.
        let handle = Group {
            group,
            me: Member {
                node: self.node_id,
                pid,
            },
            shared: self.shared.clone(),
            state: Arc::new(MemberState {
                overflowed,
                left: Mutex::new(false),
            }),
            events: erx,
            capacity: self.capacity,
            overflow_reported: false,
        };
        let joined = match rx.await {
            Ok(r) => r,
            Err(_) => Err(Shared::closed()),
        };
        match joined {
            Ok(()) => Ok(handle),
            Err(e) => {
                // Not a member: nothing to leave.
                *lock(&handle.state.left) = true;
                Err(e)
            }
        }
    }

    /// Leaves the ring gracefully (Totem LEAVE, so the others re-form at once
    /// instead of waiting for token loss), then stops the node. Messages still
    /// queued are not sent.
    pub async fn leave(self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.shared
            .cmd
            .send(Command::LeaveRing { reply })
            .map_err(|_| Shared::closed())?;
        rx.await.map_err(|_| Shared::closed())
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

    /// Sends a message to the group; see [`GroupSender::send`] (waits for room
    /// in the send budget, returns once the message is accepted, cancel-safe).
    pub async fn send(&self, payload: impl Into<Bytes>, delivery: Delivery) -> Result<()> {
        self.sender().send(payload, delivery).await
    }

    /// A handle that sends as this member, for another task (while this one receives).
    pub fn sender(&self) -> GroupSender {
        GroupSender {
            group: self.group.clone(),
            pid: self.me.pid,
            shared: self.shared.clone(),
            state: self.state.clone(),
        }
    }

    /// The next message or membership change of the group; `None` once the node
    /// has stopped. If this handle fell [`ClusterConfig::group_event_capacity`]
    /// events behind, the node removed it from the group: it then gets the
    /// events queued until then, one [`GroupEvent::Overflow`], and `None`.
    pub async fn recv(&mut self) -> Option<GroupEvent> {
        match self.events.recv().await {
            Some(ev) => Some(ev),
            None if self.overflowed() && !self.overflow_reported => {
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
        self.state.overflowed.load(AtomicOrdering::Acquire)
    }

    /// Leaves the group after every send of this member that was accepted
    /// (dropping the handle leaves too, without waiting). Sends through a
    /// [`GroupSender`] that were still waiting for the budget then fail with
    /// [`Error::Closed`].
    pub async fn leave(self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if !self.queue_leave(reply) {
            return Err(Shared::closed());
        }
        rx.await.map_err(|_| Shared::closed())?
    }

    /// Queues this member's LEAVE once (under the `left` lock, see
    /// [`MemberState`]); false if the node has stopped.
    fn queue_leave(&self, reply: oneshot::Sender<Result<()>>) -> bool {
        let mut left = lock(&self.state.left);
        if *left {
            return true;
        }
        *left = true;
        self.shared
            .cmd
            .send(Command::Leave {
                group: self.group.clone(),
                pid: self.me.pid,
                reply,
            })
            .is_ok()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let (reply, _) = oneshot::channel();
        self.queue_leave(reply);
    }
}

/// Datagrams read in one go after a wake-up, before the engine's output is flushed.
const RECV_BATCH: usize = 256;

/// A local member's request waiting for room in the ordering layer's send queue.
struct Waiting {
    group: Bytes,
    pid: u32,
    request: Request,
    /// The request's charge against the send budget (leaves have none).
    charge: Option<Charge>,
}

/// What a [`Waiting`] entry asks for.
enum Request {
    Send {
        payload: Bytes,
        delivery: Delivery,
    },
    Join {
        route: Route,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Queued behind the member's earlier sends, so it never overtakes them,
    /// and kept until there is room, so a dropped handle's leave is never lost.
    Leave {
        reply: oneshot::Sender<Result<()>>,
    },
}

struct Driver {
    engine: Totem<Ordering>,
    groups: Groups,
    socket: UdpSocket,
    members: BTreeMap<NodeId, SocketAddr>,
    envelope: Box<dyn Envelope>,
    routes: BTreeMap<(Bytes, u32), Route>,
    joining: BTreeMap<(Bytes, u32), oneshot::Sender<Result<()>>>,
    /// Sends, joins and leaves waiting for room in the send queue, in order.
    waiting: VecDeque<Waiting>,
    /// Charges of sends and joins handed to the ordering layer, in its send
    /// queue's order, with the bytes each added to that queue: released once
    /// the queue holds fewer bytes than those still listed (see `release`).
    taken: VecDeque<(usize, Charge)>,
    /// Sum of the byte counts in `taken`.
    taken_bytes: usize,
    /// Members removed for not keeping up whose ProcDown is not queued yet.
    removing: VecDeque<(Bytes, u32)>,
    /// Members removed for not keeping up (their sends are refused).
    removed: BTreeSet<(Bytes, u32)>,
    /// Set by a graceful leave: flush the LEAVE, answer, stop.
    stopping: Option<oneshot::Sender<()>>,
    /// The send budget, closed when the task ends so that waiting callers
    /// fail instead of waiting forever.
    budget: Arc<Semaphore>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.budget.close();
    }
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
        let (group, pid, request, charge) = match c {
            Command::Join {
                group,
                pid,
                route,
                reply,
                charge,
            } => (group, pid, Request::Join { route, reply }, Some(charge)),
            Command::Leave { group, pid, reply } => (group, pid, Request::Leave { reply }, None),
            Command::LeaveRing { reply } => {
                self.engine.leave(Instant::now());
                self.stopping = Some(reply);
                return;
            }
            Command::Send {
                group,
                pid,
                payload,
                delivery,
                charge,
            } => {
                if self.removed.contains(&(group.clone(), pid)) {
                    // Accepted before the member's removal reached its handle;
                    // the others have seen it leave (ProcDown), so it could not
                    // be delivered anyway. Its charge is released here.
                    tracing::debug!(
                        node = self.engine.node_id().0,
                        group = %String::from_utf8_lossy(&group),
                        pid,
                        "dropping a message of a member removed for not keeping up"
                    );
                    return;
                }
                (
                    group,
                    pid,
                    Request::Send { payload, delivery },
                    Some(charge),
                )
            }
        };
        self.waiting.push_back(Waiting {
            group,
            pid,
            request,
            charge,
        });
        self.retry_waiting();
    }

    /// Hands waiting sends, joins and leaves to the ordering layer, in order,
    /// while it has room.
    fn retry_waiting(&mut self) {
        self.release();
        let mut sent = false;
        while let Some(w) = self.waiting.front() {
            let before = self.engine.hook().queued_bytes();
            let r = match &w.request {
                Request::Send { payload, delivery } => {
                    if !self.engine.hook().has_room(payload.len() + 4) {
                        break;
                    }
                    self.groups
                        .send(self.engine.hook_mut(), &w.group, w.pid, payload, *delivery)
                }
                Request::Join { .. } => self.groups.join(self.engine.hook_mut(), &w.group, w.pid),
                Request::Leave { .. } => self.groups.leave(self.engine.hook_mut(), &w.group, w.pid),
            };
            if matches!(r, Err(Error::WouldBlock { .. })) {
                break;
            }
            let added = self.engine.hook().queued_bytes().saturating_sub(before);
            let w = self.waiting.pop_front().expect("peeked");
            sent |= r.is_ok();
            if let (Ok(()), Some(charge)) = (&r, w.charge) {
                self.taken.push_back((added, charge));
                self.taken_bytes += added;
            }
            match w.request {
                Request::Send { .. } => {
                    if let Err(e) = r {
                        // Sizes are checked before a send is accepted.
                        tracing::warn!(node = self.engine.node_id().0, error = %e, "an accepted message was refused by the ordering layer");
                    }
                }
                Request::Join { route, reply } => {
                    if r.is_ok() {
                        let key = (w.group, w.pid);
                        self.routes.insert(key.clone(), route);
                        self.joining.insert(key, reply);
                    } else {
                        let _ = reply.send(r);
                    }
                }
                Request::Leave { reply } => {
                    let _ = reply.send(r);
                }
            }
        }
        if sent {
            self.engine.request_token(Instant::now());
        }
    }

    /// Releases the charges of messages the ring has taken. The ordering
    /// layer's send queue is first in, first out for everything in `taken`
    /// (only its own control messages go ahead), so while it holds fewer bytes
    /// than `taken` lists, the oldest entry has left it. Control messages in
    /// the queue only delay a release, never advance it.
    fn release(&mut self) {
        let queued = self.engine.hook().queued_bytes();
        while self.taken_bytes > queued {
            let (bytes, charge) = self.taken.pop_front().expect("taken_bytes > 0");
            self.taken_bytes -= bytes;
            drop(charge);
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
