//! The local executor: Pacemaker's `pacemaker-execd` for one node.
//!
//! ```text
//!  register(id, agent) ─┐           one worker task per resource
//!  execute / submit ────┼──> queue ──> [serialized: one action at a time] ──┐
//!  start_recurring ─────┤              recurring monitors due by interval    │
//!  cancel ──────────────┘              (timeout, cancellation, panics)       │
//!                                                                             v
//!         history + fail-counts (plain serde structs)  <── every OpResult    │
//!                       changed results only (recurring) ──> OpStream (bounded, Lagged)
//! ```
//!
//! - Actions on one resource run one at a time, in submission order; different
//!   resources run concurrently. A hanging or failing agent only delays its own
//!   resource.
//! - Every action runs under its timeout: when it passes the future is dropped (the
//!   OCF/LSB runner then kills the agent's process group) and the result is
//!   [`Status::TimedOut`]. A panicking native agent gives a generic error.
//! - Recurring monitors run first at once, then `interval` after each completion,
//!   until cancelled. Probes are one-shot monitors (interval 0).
//! - Each result updates the resource's [`ResourceHistory`] (last op, last result
//!   per operation, last failure, fail-count for this node). Which results are
//!   failures is decided by the pure [`is_failure`]. Results are streamed to the
//!   caller through [`OpStream`] as described next.
//!
//! # What reaches the stream
//!
//! Every one-shot result (`execute`, `submit`, probes) is sent. A recurring
//! operation is sent **only when its result changes**, as pacemaker-execd does
//! for a client that asked for `lrmd_opt_notify_changes_only`
//! (`send_cmd_complete_notify` in `daemons/execd/execd_commands.c`): the first
//! result of a recurring operation is always sent, and a later one only when its
//! [`Status`] differs from the last one sent for that operation. [`Status`]
//! carries both of what Pacemaker compares, the (mapped) OCF exit code and the
//! execution status (done, timed out, cancelled, could not execute); like
//! Pacemaker, a changed exit reason alone is not a change. Pacemaker's controller
//! passes that option on every operation it asks of the executor, recurring or
//! not (`do_lrm_rsc_op` in `daemons/controld/controld_execd.c` calls
//! `controld_execute_resource_agent` in `controld_execd_state.c`, named
//! `controld_execd_state_exec` on Pacemaker's main branch, which hardcodes the
//! option; for a one-shot call it changes nothing), so
//! [`Executor::start_recurring`] does the same; [`Executor::start_recurring_with`]
//! and [`Notify::Every`] give every result (lrmd's default, `cts-exec-helper`
//! without `-o`), for callers that need a heartbeat. Starting a recurring
//! operation again with the same key starts over (Pacemaker's
//! `merge_recurring_duplicate` clears `first_notify_sent`): its next result is
//! sent. The history is not filtered: it records every run.
//!
//! # A consumer that does not keep up
//!
//! Change-only notification bounds the rate by how often results change, but a
//! consumer that stops reading would still accumulate without bound (a flapping
//! monitor, a loop of `submit`). The stream is therefore a bounded queue
//! ([`DEFAULT_STREAM_CAPACITY`], [`Executor::with_limits`]) that **never makes a
//! worker wait**. Waiting (backpressure) was rejected: a worker blocked on a full
//! stream also blocks every `execute` queued on that resource, and a caller that
//! awaits `execute` in the same task that reads the stream (as the cluster
//! example's controller does) would deadlock with it. Instead, as tokio's
//! `broadcast` (`Lagged(n)`) and halyard's own membership driver do, a result
//! that finds the queue full is not queued and is counted, and from then on every
//! result is counted instead of queued until the consumer has read everything
//! that was queued; then it receives one [`OpEvent::Lagged`]:
//!
//! ```text
//! r1 .. rk  Lagged { missed, results }  r(k+missed+1) ..  (Lagged ..)
//! ```
//!
//! A failure is never dropped silently: the notice carries, for every
//! (resource, operation) with missed results, the last missed **failure** and the
//! last missed result (one entry when they are the same), oldest first, so a
//! consumer that handles `results` like ordinary results learns that a monitor
//! failed and ends with every operation's latest state. What the notice leaves out
//! (intermediate results) is in the history ([`Executor::history`],
//! [`Executor::snapshot`]: last result per operation, last failure, fail-counts),
//! which records every result whatever the stream does. A fail-count counts the
//! failures a consumer with room in the stream would be told of, as Pacemaker's
//! controller counts the failures it is notified of: a recurring monitor that
//! keeps failing the same way counts once, a flapping one at every failure.
//! The queue holds at most its capacity of results plus that one notice, whose
//! size is bounded by the number of (resource, operation) pairs, not by time.
//! `execute`'s own answer never goes through the stream and is never dropped.
//!
//! # The command queues
//!
//! Each resource's worker takes commands from an unbounded queue, but only this
//! [`Executor`]'s own methods feed it (`execute`, `submit`, `start_recurring`,
//! `cancel_*`), one entry per call: it does not grow by itself over time as the
//! result stream did, only as fast as the application asks (pipelining many
//! `submit`s is a supported use), as pacemaker-execd's per-resource
//! `pending_ops` list. [`Executor::queued`] tells how many one-shot calls wait.
//!
//! # A dropped `execute`
//!
//! [`Executor::execute`] is cancel-safe, so that an application retrying it
//! under a `timeout` (or losing a `select!`) neither piles up calls nor has an
//! agent run an action it gave up on:
//!
//! - **Not started yet** (queued, or taken by the worker and waiting for a slot
//!   under [`Executor::with_max_concurrent`]'s bound): the call is taken out of
//!   the queue at once and never runs. It has no result: nothing in the
//!   history, nothing on the stream (it did not happen).
//! - **Running** (the agent was invoked): the call is **not** cancelled. It
//!   finishes under its own timeout; its result is recorded in the history and
//!   sent to the stream like any one-shot result; only the answer to the gone
//!   caller is lost. Cancelling would kill an OCF/LSB agent's process group
//!   mid-action, and a `stop` or `start` killed half-way leaves the resource in
//!   an unknown state, worse than the one the caller gave up on.
//!   pacemaker-execd does the same: when a client disconnects,
//!   `client_disconnect_cleanup` (`daemons/execd/execd_commands.c`) only calls
//!   `cancel_all_recurring`, which skips one-shot operations
//!   (`interval_ms == 0`), and even an explicit `lrmd_api_cancel` cannot stop
//!   an in-flight one-shot operation (`services_action_cancel` in
//!   `lib/services/services.c`: "We can only cancel a recurring action"). A
//!   caller that wants a running call killed asks for it with
//!   [`Executor::cancel_call`] (result [`Status::Cancelled`]).
//!
//! Pacemaker goes further the other way: a disconnected client's *queued*
//! one-shot operations stay in `pending_ops` and still run. halyard withdraws
//! them because here the caller is in-process and a dropped future is its
//! explicit "no longer wanted", not a lost connection. [`Executor::submit`] is
//! not affected: a submitted call belongs to the executor, runs unless
//! cancelled with [`Executor::cancel_call`], and reports on the stream.

use crate::agent::{Action, ActionContext, Outcome, PromotionUpdate, ResourceAgent, Role, Status};
use crate::error::{Error, Result};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Identifies one submitted action.
pub type CallId = u64;

/// An operation's key, as Pacemaker names it: action and interval
/// (`monitor_10000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpKey {
    /// The action.
    pub action: Action,
    /// The interval in milliseconds (0 for one-shot actions and probes).
    pub interval_ms: u64,
}

impl std::fmt::Display for OpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.action, self.interval_ms)
    }
}

/// One finished operation, as kept in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The call.
    pub call_id: CallId,
    /// The operation (action + interval).
    pub key: OpKey,
    /// The result.
    pub status: Status,
    /// The OCF exit code, when the result is one.
    pub rc: Option<i32>,
    /// The exit reason.
    pub exit_reason: Option<String>,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Whether [`is_failure`] judged it a failure.
    pub failed: bool,
}

/// What the executor knows about one resource: the data the placement solver
/// reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceHistory {
    /// The resource id.
    pub resource: String,
    /// The agent's name.
    pub agent: String,
    /// The last operation that finished.
    pub last: Option<OpRecord>,
    /// The last result of each operation (by `action_interval`).
    pub ops: BTreeMap<String, OpRecord>,
    /// The last failed operation.
    pub last_failure: Option<OpRecord>,
    /// Failures per node (this executor only counts its own node): every failed
    /// one-shot operation, and each failure of a recurring one that is notified
    /// (see the module docs).
    pub fail_counts: BTreeMap<String, u32>,
    /// The promotion score last reported by the agent on this node (None: none or
    /// deleted).
    pub promotion_score: Option<i64>,
}

/// A finished operation, as streamed to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    /// The resource.
    pub resource: String,
    /// The node this executor runs on.
    pub node: String,
    /// The record (also kept in the history).
    pub record: OpRecord,
    /// The full outcome (with promotion updates).
    pub outcome: Outcome,
}

/// True if `status` is a failure for `action` with this context, as Pacemaker
/// judges it: probes may find the resource running (0, 8) or stopped (7);
/// monitors expect running (8 when `role` is Promoted); every other action expects
/// success. Degraded results count as their non-degraded twins. Cancelled is never
/// a failure.
pub fn is_failure(action: Action, ctx: &ActionContext, status: Status) -> bool {
    use Status::*;
    match (action, status) {
        (_, Cancelled) => false,
        (Action::Monitor, s) if ctx.is_probe() => !matches!(
            s,
            Success | NotRunning | RunningPromoted | Degraded | DegradedPromoted
        ),
        (Action::Monitor, s) => match ctx.role {
            Some(Role::Promoted) => !matches!(s, RunningPromoted | DegradedPromoted),
            Some(Role::Unpromoted) => !matches!(s, Success | Degraded),
            None => !matches!(s, Success | Degraded | RunningPromoted | DegradedPromoted),
        },
        (_, s) => !matches!(s, Success | Degraded),
    }
}

/// Applies one finished operation to a history (pure). `count_failure`: a
/// failed result adds to the node's fail count. Pacemaker's controller counts a
/// failure when it is notified of one, so a recurring operation that keeps
/// failing the same way counts once (its later runs are not notified, see the
/// module docs); every result is still recorded.
pub fn record_result(
    h: &mut ResourceHistory,
    node: &str,
    rec: &OpRecord,
    outcome: &Outcome,
    count_failure: bool,
) {
    for p in &outcome.promotion {
        h.promotion_score = match p {
            PromotionUpdate::Set(s) => Some(*s),
            PromotionUpdate::Delete => None,
        };
    }
    if rec.status == Status::Cancelled {
        return;
    }
    h.ops.insert(rec.key.to_string(), rec.clone());
    h.last = Some(rec.clone());
    if rec.failed {
        h.last_failure = Some(rec.clone());
        if count_failure {
            *h.fail_counts.entry(node.to_string()).or_insert(0) += 1;
        }
    }
}

/// One item of the [`OpStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpEvent {
    /// A finished operation (for a recurring one: a changed result, see the
    /// module docs).
    Result(OpResult),
    /// The consumer fell behind and results were not queued; see the module
    /// docs.
    Lagged(Lagged),
}

/// What a consumer that fell behind missed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lagged {
    /// How many results were not queued. They came after every result received
    /// before this notice and before every result after it.
    pub missed: u64,
    /// The missed results that must not be lost, oldest first: for each
    /// (resource, operation) with missed results, the last missed failure (if
    /// any) and the last missed result (once if it is that failure). Handle them
    /// as ordinary results; the history has the rest.
    pub results: Vec<OpResult>,
}

/// Default capacity of the [`OpStream`]: 1024 results. With recurring results
/// sent only on change, a consumer that reads at all never comes near it.
pub const DEFAULT_STREAM_CAPACITY: usize = 1024;

/// Which results of a recurring operation reach the [`OpStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// The first result, then only results whose [`Status`] changed
    /// (Pacemaker's `lrmd_opt_notify_changes_only`, which its controller always
    /// uses).
    #[default]
    Changes,
    /// Every result.
    Every,
}

/// Missed results kept for the notice: per (resource, operation), the last
/// failure and the last result, each with its arrival order.
#[derive(Default)]
struct LagState {
    missed: u64,
    seq: u64,
    ops: BTreeMap<(String, OpKey), MissedOp>,
}

struct MissedOp {
    last: (u64, OpResult),
    last_failure: Option<(u64, OpResult)>,
}

impl LagState {
    fn add(&mut self, res: OpResult) {
        self.missed += 1;
        self.seq += 1;
        let seq = self.seq;
        let k = (res.resource.clone(), res.record.key);
        let failure = res.record.failed.then(|| (seq, res.clone()));
        match self.ops.get_mut(&k) {
            Some(m) => {
                if failure.is_some() {
                    m.last_failure = failure;
                }
                m.last = (seq, res);
            }
            None => {
                self.ops.insert(
                    k,
                    MissedOp {
                        last: (seq, res),
                        last_failure: failure,
                    },
                );
            }
        }
    }

    fn into_notice(self) -> Lagged {
        let mut all: Vec<(u64, OpResult)> = Vec::new();
        for m in self.ops.into_values() {
            if let Some(f) = m.last_failure {
                if f.0 != m.last.0 {
                    all.push(f);
                }
            }
            all.push(m.last);
        }
        all.sort_by_key(|(seq, _)| *seq);
        Lagged {
            missed: self.missed,
            results: all.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// The workers' end of the stream: never waits; counts and summarises when
/// the queue is full.
#[derive(Clone)]
struct EventSender {
    tx: mpsc::Sender<OpResult>,
    lag: Arc<Mutex<Option<LagState>>>,
}

impl EventSender {
    fn send(&self, res: OpResult) {
        // Queue or summarise under the lock, so that the receiver's "queue empty
        // and a notice pending" means every queued result was read.
        let mut lag = lock(&self.lag);
        if let Some(l) = lag.as_mut() {
            l.add(res);
            return;
        }
        match self.tx.try_send(res) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(res)) => {
                tracing::warn!(
                    capacity = self.tx.max_capacity(),
                    "the operation result consumer is not keeping up: summarising results \
                     until it has read the queue, then it gets a Lagged notice"
                );
                let mut l = LagState::default();
                l.add(res);
                *lag = Some(l);
            }
            // The application dropped its `OpStream`: nobody to tell.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The stream of finished operations (see the module docs for what is sent and
/// what happens when it is not read).
#[derive(Debug)]
pub struct OpStream {
    rx: mpsc::Receiver<OpResult>,
    lag: Arc<Mutex<Option<LagState>>>,
}

impl std::fmt::Debug for LagState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagState")
            .field("missed", &self.missed)
            .finish_non_exhaustive()
    }
}

impl OpStream {
    /// The next event, or `None` once the executor and every worker are gone and
    /// everything queued, a pending [`OpEvent::Lagged`] included, has been read.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<OpEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event if one is ready now, without waiting.
    pub fn try_recv(&mut self) -> Option<OpEvent> {
        let mut lag = lock(&self.lag);
        match self.rx.try_recv() {
            Ok(r) => Some(OpEvent::Result(r)),
            Err(_) => lag.take().map(|l| OpEvent::Lagged(l.into_notice())),
        }
    }

    /// How many results are queued now (at most [`capacity`](Self::capacity)),
    /// not counting a pending [`OpEvent::Lagged`].
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.rx.max_capacity()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<OpEvent>> {
        if let Some(e) = self.try_recv() {
            return Poll::Ready(Some(e));
        }
        // Nothing queued and no notice pending. A notice only becomes pending
        // when the queue is full, so a result arrives before any notice can.
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(r)) => Poll::Ready(Some(OpEvent::Result(r))),
            Poll::Ready(None) => Poll::Ready(self.try_recv()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::Stream for OpStream {
    type Item = OpEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OpEvent>> {
        self.poll_event(cx)
    }
}

struct Op {
    call_id: CallId,
    action: Action,
    ctx: ActionContext,
    reply: Option<oneshot::Sender<OpResult>>,
    /// Cancelled by `cancel_call` while queued: settled as cancelled, not run.
    cancelled: bool,
}

enum Cmd {
    Run(Op),
    AddRecurring(CallId, Action, ActionContext, Notify),
    CancelRecurring(OpKey),
}

struct Inflight {
    call_id: CallId,
    key: OpKey,
    recurring: bool,
    cancel: Option<oneshot::Sender<()>>,
    /// The agent was invoked (or the call was settled without it).
    started: bool,
    /// Its `execute` future was dropped before it started: it must not run and
    /// leaves no result.
    withdrawn: bool,
}

struct Shared {
    resource: String,
    history: Mutex<ResourceHistory>,
    inflight: Mutex<Option<Inflight>>,
    /// The worker's command queue. Lock order: `queue`, then `inflight`.
    queue: Mutex<QueueState>,
    /// Wakes the worker when a command is queued or the queue is closed.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    /// Commands not yet taken by the worker, in submission order. A queue the
    /// executor can take entries out of, so that an abandoned `execute` leaves
    /// nothing behind (see the module docs).
    cmds: VecDeque<Cmd>,
    /// The resource was unregistered or replaced, or the executor dropped: the
    /// worker runs what is queued, then ends.
    closed: bool,
}

/// What the worker took from its queue.
enum Next {
    /// A one-shot call, already in flight (so that it is always either queued or
    /// in flight for `cancel_call` and a dropped `execute`), and its cancel signal.
    Run(Op, oneshot::Receiver<()>),
    AddRecurring(CallId, Action, ActionContext, Notify),
    CancelRecurring(OpKey),
}

impl Shared {
    /// Queues `cmd`, unless the queue is closed.
    fn push(&self, cmd: Cmd) -> Result<()> {
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(Error::Executor(format!(
                "worker of {} has stopped",
                self.resource
            )));
        }
        q.cmds.push_back(cmd);
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Closes the queue: what is queued still runs, then the worker ends.
    fn close(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }

    /// The next command, waiting for one; `None` once the queue is closed and
    /// empty. Cancel-safe: a command is taken only when this returns it.
    async fn next(&self) -> Option<Next> {
        loop {
            {
                let mut q = lock(&self.queue);
                match q.cmds.pop_front() {
                    Some(Cmd::Run(op)) => {
                        let key = key_of(op.action, &op.ctx);
                        let cancel = self.begin(op.call_id, key, false);
                        return Some(Next::Run(op, cancel));
                    }
                    Some(Cmd::AddRecurring(c, a, ctx, n)) => {
                        return Some(Next::AddRecurring(c, a, ctx, n))
                    }
                    Some(Cmd::CancelRecurring(k)) => return Some(Next::CancelRecurring(k)),
                    None if q.closed => return None,
                    None => {}
                }
            }
            // `notify_one` keeps a permit when the worker is not waiting yet, so a
            // command queued between the check above and this wait is not missed.
            self.wake.notified().await;
        }
    }

    /// Marks `call_id` in flight and returns its cancel signal.
    fn begin(&self, call_id: CallId, key: OpKey, recurring: bool) -> oneshot::Receiver<()> {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        *lock(&self.inflight) = Some(Inflight {
            call_id,
            key,
            recurring,
            cancel: Some(cancel_tx),
            started: false,
            withdrawn: false,
        });
        cancel_rx
    }

    /// The caller of `execute` went away before its answer. A call still queued
    /// is taken out of the queue; one the worker has taken but not started (it
    /// waits for a slot under the concurrency bound) is withdrawn. Neither ever
    /// runs, and neither leaves a result (history, stream). A call whose agent
    /// was already invoked is left to finish, as pacemaker-execd leaves a
    /// disconnected client's in-flight operation (see the module docs).
    fn withdraw(&self, call_id: CallId) {
        let mut q = lock(&self.queue);
        let queued = q
            .cmds
            .iter()
            .position(|c| matches!(c, Cmd::Run(op) if op.call_id == call_id));
        if let Some(i) = queued {
            q.cmds.remove(i);
            tracing::debug!(
                resource = %self.resource,
                call_id,
                "execute dropped before its call ran: taken out of the queue"
            );
            return;
        }
        let mut g = lock(&self.inflight);
        let Some(inf) = g.as_mut().filter(|inf| inf.call_id == call_id) else {
            return;
        };
        if inf.started {
            tracing::debug!(
                resource = %self.resource,
                call_id,
                op = %inf.key,
                "execute dropped while its call runs: it finishes and is recorded, unanswered"
            );
        } else {
            inf.withdrawn = true;
            if let Some(c) = inf.cancel.take() {
                let _ = c.send(());
            }
            tracing::debug!(
                resource = %self.resource,
                call_id,
                "execute dropped while its call waited for a slot: withdrawn"
            );
        }
    }
}

/// Withdraws an `execute` call whose future is dropped before its answer.
struct PendingCall {
    shared: Arc<Shared>,
    call_id: CallId,
    answered: bool,
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if !self.answered {
            self.shared.withdraw(self.call_id);
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
    agent: Arc<dyn ResourceAgent>,
    params: BTreeMap<String, String>,
}

impl Drop for Handle {
    // Unregistered, replaced, or the executor is gone: the worker runs what is
    // queued and ends (recurring operations end with it).
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// Default bound on actions running at once (processes, file descriptors).
pub const DEFAULT_MAX_CONCURRENT: usize = 128;

struct Inner {
    node: String,
    permits: Arc<Semaphore>,
    next_call: AtomicU64,
    events: EventSender,
    resources: Mutex<BTreeMap<String, Handle>>,
}

/// The local executor. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key_of(action: Action, ctx: &ActionContext) -> OpKey {
    OpKey {
        action,
        interval_ms: u64::try_from(ctx.interval.as_millis()).unwrap_or(u64::MAX),
    }
}

impl Executor {
    /// An executor for `node`, and the stream of every operation result. Must be
    /// called inside a tokio runtime.
    pub fn new(node: impl Into<String>) -> (Self, OpStream) {
        Self::with_max_concurrent(node, DEFAULT_MAX_CONCURRENT)
    }

    /// Like [`Executor::new`], with at most `max` actions running at once across
    /// all resources (each OCF/LSB action is a process with two pipes); further
    /// actions wait for a slot, and their timeout starts when they get one.
    pub fn with_max_concurrent(node: impl Into<String>, max: usize) -> (Self, OpStream) {
        Self::with_limits(node, max, DEFAULT_STREAM_CAPACITY)
    }

    /// Like [`Executor::with_max_concurrent`], with an [`OpStream`] that queues at
    /// most `stream_capacity` results (at least 1) before the consumer gets an
    /// [`OpEvent::Lagged`] (see the module docs).
    pub fn with_limits(
        node: impl Into<String>,
        max_concurrent: usize,
        stream_capacity: usize,
    ) -> (Self, OpStream) {
        let (tx, rx) = mpsc::channel(stream_capacity.max(1));
        let lag = Arc::new(Mutex::new(None));
        let inner = Inner {
            node: node.into(),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            next_call: AtomicU64::new(1),
            events: EventSender {
                tx,
                lag: lag.clone(),
            },
            resources: Mutex::new(BTreeMap::new()),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            OpStream { rx, lag },
        )
    }

    /// The node this executor runs on.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Registers resource `id`, run by `agent` with `params`. Re-registering an id
    /// replaces its agent and parameters (queued actions of the old registration
    /// still finish).
    pub fn register(
        &self,
        id: impl Into<String>,
        agent: Arc<dyn ResourceAgent>,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        let id = id.into();
        if id.is_empty() || id.contains('\0') {
            return Err(Error::InvalidName {
                what: "resource id",
                value: id,
                fix: "use a non-empty id without NUL",
            });
        }
        let shared = Arc::new(Shared {
            resource: id.clone(),
            history: Mutex::new(ResourceHistory {
                resource: id.clone(),
                agent: agent.name(),
                ..ResourceHistory::default()
            }),
            inflight: Mutex::new(None),
            queue: Mutex::new(QueueState::default()),
            wake: tokio::sync::Notify::new(),
        });
        let worker = Worker {
            resource: id.clone(),
            node: self.inner.node.clone(),
            agent: agent.clone(),
            shared: shared.clone(),
            events: self.inner.events.clone(),
            permits: self.inner.permits.clone(),
            recurring: BTreeMap::new(),
        };
        tokio::spawn(worker.run());
        lock(&self.inner.resources).insert(
            id,
            Handle {
                shared,
                agent,
                params,
            },
        );
        Ok(())
    }

    /// Forgets resource `id`: cancels its recurring operations and its in-flight
    /// one; queued one-shot actions still run.
    pub fn unregister(&self, id: &str) -> Result<()> {
        let h = lock(&self.inner.resources)
            .remove(id)
            .ok_or_else(|| unknown(id))?;
        if let Some(inf) = lock(&h.shared.inflight).as_mut() {
            if inf.recurring {
                if let Some(c) = inf.cancel.take() {
                    let _ = c.send(());
                }
            }
        }
        Ok(())
    }

    /// The registered resource ids, sorted.
    pub fn resources(&self) -> Vec<String> {
        lock(&self.inner.resources).keys().cloned().collect()
    }

    /// A context for `id`: its instance name, registered parameters and this node;
    /// the default timeout.
    pub fn context(&self, id: &str) -> Result<ActionContext> {
        let g = lock(&self.inner.resources);
        let h = g.get(id).ok_or_else(|| unknown(id))?;
        let mut ctx = ActionContext::new(id);
        ctx.params = h.params.clone();
        ctx.node = Some(self.inner.node.clone());
        Ok(ctx)
    }

    /// The agent of `id`.
    pub fn agent(&self, id: &str) -> Result<Arc<dyn ResourceAgent>> {
        let g = lock(&self.inner.resources);
        Ok(g.get(id).ok_or_else(|| unknown(id))?.agent.clone())
    }

    fn shared(&self, id: &str) -> Result<Arc<Shared>> {
        let g = lock(&self.inner.resources);
        Ok(g.get(id).ok_or_else(|| unknown(id))?.shared.clone())
    }

    /// How many one-shot calls (`execute`, `submit`) on `id` are queued and not
    /// yet taken by its worker. An `execute` whose future was dropped is not
    /// counted: it left the queue.
    pub fn queued(&self, id: &str) -> Result<usize> {
        let shared = self.shared(id)?;
        let q = lock(&shared.queue);
        Ok(q.cmds.iter().filter(|c| matches!(c, Cmd::Run(_))).count())
    }

    fn call_id(&self) -> CallId {
        self.inner.next_call.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `action` on `id`; the result goes to the stream only. The call is
    /// the executor's from then on: it runs unless cancelled with
    /// [`Executor::cancel_call`].
    pub fn submit(&self, id: &str, action: Action, ctx: ActionContext) -> Result<CallId> {
        let call_id = self.call_id();
        self.shared(id)?.push(Cmd::Run(Op {
            call_id,
            action,
            ctx,
            reply: None,
            cancelled: false,
        }))?;
        Ok(call_id)
    }

    /// Runs `action` on `id` (after the actions queued before it) and returns its
    /// result (also sent to the stream).
    ///
    /// Cancel-safe: if the future is dropped before the answer (a `timeout`
    /// around it, a `select!`), a call that has not started is taken back and
    /// never runs (no result in the history or on the stream); a call whose
    /// agent is already running finishes under its own timeout, its result is
    /// recorded and streamed, only the answer is lost. A running agent is never
    /// killed because its caller went away (see the module docs).
    pub async fn execute(&self, id: &str, action: Action, ctx: ActionContext) -> Result<OpResult> {
        let (reply, rx) = oneshot::channel();
        let call_id = self.call_id();
        let shared = self.shared(id)?;
        shared.push(Cmd::Run(Op {
            call_id,
            action,
            ctx,
            reply: Some(reply),
            cancelled: false,
        }))?;
        let mut pending = PendingCall {
            shared,
            call_id,
            answered: false,
        };
        let res = rx.await;
        pending.answered = true;
        res.map_err(|_| Error::Executor(format!("worker of {id} stopped before call {call_id}")))
    }

    /// Probes `id`: a one-shot monitor (no interval) to learn its state.
    pub async fn probe(&self, id: &str) -> Result<OpResult> {
        let ctx = self.context(id)?;
        self.execute(id, Action::Monitor, ctx).await
    }

    /// Probes every registered resource concurrently; results in id order.
    pub async fn probe_all(&self) -> Vec<(String, Result<OpResult>)> {
        let ids = self.resources();
        let results = futures::future::join_all(ids.iter().map(|id| self.probe(id))).await;
        ids.into_iter().zip(results).collect()
    }

    /// Starts a recurring `action` (normally `Monitor`) on `id` every
    /// `ctx.interval` (must be positive), first at once. Replaces a recurring
    /// operation with the same key. Every run reports the same call id. Its
    /// results reach the stream only when they change ([`Notify::Changes`], as
    /// Pacemaker's controller asks); every run is in the history.
    pub fn start_recurring(
        &self,
        id: &str,
        action: Action,
        ctx: ActionContext,
    ) -> Result<(OpKey, CallId)> {
        self.start_recurring_with(id, action, ctx, Notify::Changes)
    }

    /// Like [`Executor::start_recurring`], choosing which results reach the
    /// stream.
    pub fn start_recurring_with(
        &self,
        id: &str,
        action: Action,
        ctx: ActionContext,
        notify: Notify,
    ) -> Result<(OpKey, CallId)> {
        if ctx.interval.is_zero() {
            return Err(Error::Executor(format!(
                "recurring {action} on {id} needs a positive interval"
            )));
        }
        let key = key_of(action, &ctx);
        let call_id = self.call_id();
        self.shared(id)?
            .push(Cmd::AddRecurring(call_id, action, ctx, notify))?;
        Ok((key, call_id))
    }

    /// Cancels the recurring operation `key` on `id`; if it is running now, it is
    /// cancelled too (its result is [`Status::Cancelled`]).
    pub fn cancel_recurring(&self, id: &str, key: OpKey) -> Result<()> {
        let shared = self.shared(id)?;
        shared.push(Cmd::CancelRecurring(key))?;
        if let Some(inf) = lock(&shared.inflight).as_mut() {
            if inf.recurring && inf.key == key {
                if let Some(c) = inf.cancel.take() {
                    let _ = c.send(());
                }
            }
        }
        Ok(())
    }

    /// Cancels call `call_id` on `id`: if it is running, the agent is stopped
    /// (its process group killed); if it is still queued, it will not run. Either
    /// way its result is [`Status::Cancelled`]. Returns false if the call is
    /// neither queued nor running (unknown, or already finished).
    pub fn cancel_call(&self, id: &str, call_id: CallId) -> Result<bool> {
        let shared = self.shared(id)?;
        let mut q = lock(&shared.queue);
        let queued = q.cmds.iter_mut().find_map(|c| match c {
            Cmd::Run(op) if op.call_id == call_id => Some(op),
            _ => None,
        });
        if let Some(op) = queued {
            op.cancelled = true;
            return Ok(true);
        }
        let mut g = lock(&shared.inflight);
        match g.as_mut() {
            Some(inf) if inf.call_id == call_id => Ok(inf
                .cancel
                .take()
                .map(|c| c.send(()).is_ok())
                .unwrap_or(false)),
            _ => Ok(false),
        }
    }

    /// A copy of `id`'s history.
    pub fn history(&self, id: &str) -> Result<ResourceHistory> {
        let g = lock(&self.inner.resources);
        let h = g.get(id).ok_or_else(|| unknown(id))?;
        let hist = lock(&h.shared.history).clone();
        Ok(hist)
    }

    /// Every resource's history, by id.
    pub fn snapshot(&self) -> BTreeMap<String, ResourceHistory> {
        let g = lock(&self.inner.resources);
        g.iter()
            .map(|(id, h)| (id.clone(), lock(&h.shared.history).clone()))
            .collect()
    }

    /// Resets `id`'s fail-count on this node (`crm_resource --cleanup`).
    pub fn clear_failcount(&self, id: &str) -> Result<()> {
        let g = lock(&self.inner.resources);
        let h = g.get(id).ok_or_else(|| unknown(id))?;
        let mut hist = lock(&h.shared.history);
        hist.fail_counts.remove(&self.inner.node);
        hist.last_failure = None;
        Ok(())
    }
}

fn unknown(id: &str) -> Error {
    Error::Executor(format!("no resource {id:?} is registered"))
}

struct Recurring {
    call_id: CallId,
    action: Action,
    ctx: ActionContext,
    due: tokio::time::Instant,
    notify: Notify,
    /// The status last sent to the stream (Pacemaker's `last_notify_rc` and
    /// `last_notify_op_status`); `None` until the first result
    /// (`first_notify_sent`).
    last_notified: Option<Status>,
}

/// Whether a recurring operation's result goes to the stream (pure): always the
/// first, then only a changed [`Status`] unless every result was asked for.
fn should_notify(notify: Notify, last_notified: Option<Status>, status: Status) -> bool {
    notify == Notify::Every || last_notified != Some(status)
}

struct Worker {
    resource: String,
    node: String,
    agent: Arc<dyn ResourceAgent>,
    shared: Arc<Shared>,
    events: EventSender,
    permits: Arc<Semaphore>,
    recurring: BTreeMap<OpKey, Recurring>,
}

impl Drop for Worker {
    // However the worker ends (its queue closed and empty, or its task dropped
    // with the runtime or by a panic), nothing may wait on it: the queue is
    // closed and what is left in it dropped, so each waiting `execute` gets an
    // error instead of hanging, and later calls are refused.
    fn drop(&mut self) {
        let left = {
            let mut q = lock(&self.shared.queue);
            q.closed = true;
            std::mem::take(&mut q.cmds)
        };
        if !left.is_empty() {
            tracing::warn!(
                resource = %self.resource,
                dropped = left.len(),
                "the resource's worker ended with calls queued: they will not run"
            );
        }
    }
}

impl Worker {
    async fn run(mut self) {
        let shared = self.shared.clone();
        loop {
            let next = self
                .recurring
                .iter()
                .min_by_key(|(_, r)| r.due)
                .map(|(k, r)| (*k, r.due));
            tokio::select! {
                biased;
                cmd = shared.next() => match cmd {
                    // Unregistered: queued actions ran; recurring ones end here.
                    None => break,
                    Some(Next::Run(op, cancel)) => {
                        let started = Start { cancel, precancelled: op.cancelled };
                        let res = self.run_op(op.call_id, op.action, op.ctx, None, started).await;
                        // None: withdrawn by a dropped `execute` before it started.
                        if let Some(res) = res {
                            self.events.send(res.clone());
                            if let Some(r) = op.reply { let _ = r.send(res); }
                        }
                    }
                    Some(Next::AddRecurring(call_id, action, ctx, notify)) => {
                        let key = key_of(action, &ctx);
                        // A new or replaced recurring operation starts over: its
                        // first result is always sent.
                        self.recurring.insert(key, Recurring {
                            call_id, action, ctx, due: tokio::time::Instant::now(),
                            notify, last_notified: None,
                        });
                    }
                    Some(Next::CancelRecurring(key)) => { self.recurring.remove(&key); }
                },
                _ = async {
                    match next {
                        Some((_, due)) => tokio::time::sleep_until(due).await,
                        None => futures::future::pending().await,
                    }
                } => {
                    let Some((key, _)) = next else { continue };
                    let Some(r) = self.recurring.get_mut(&key) else { continue };
                    // As in Pacemaker, every run of a recurring operation keeps the
                    // call id start_recurring gave it.
                    let call_id = r.call_id;
                    let (action, ctx) = (r.action, r.ctx.clone());
                    let notified = Some((r.notify, r.last_notified));
                    let started = Start {
                        cancel: self.shared.begin(call_id, key, true),
                        precancelled: false,
                    };
                    let res = self.run_op(call_id, action, ctx.clone(), notified, started).await;
                    // Only a one-shot call can be withdrawn.
                    let Some(res) = res else { continue };
                    let status = res.outcome.status;
                    let send = match self.recurring.get_mut(&key) {
                        Some(r) => {
                            let send = should_notify(r.notify, r.last_notified, status);
                            if send {
                                r.last_notified = Some(status);
                            }
                            r.due = tokio::time::Instant::now() + ctx.interval;
                            send
                        }
                        None => true,
                    };
                    if status == Status::Cancelled {
                        self.recurring.remove(&key);
                    }
                    if send {
                        self.events.send(res);
                    }
                }
            }
        }
    }

    /// Runs one call, already marked in flight ([`Shared::begin`]). `None`: a
    /// one-shot call withdrawn by its dropped `execute` before it started.
    async fn run_op(
        &mut self,
        call_id: CallId,
        action: Action,
        ctx: ActionContext,
        // A recurring operation's notification mode and last notified status.
        recurring: Option<(Notify, Option<Status>)>,
        start: Start,
    ) -> Option<OpResult> {
        let key = key_of(action, &ctx);
        let Start {
            cancel: mut cancel_rx,
            precancelled,
        } = start;
        let permit = if precancelled {
            None
        } else {
            tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                Ok(()) = &mut cancel_rx => None,
            }
        };
        // Started or withdrawn, decided under the lock `withdraw` takes, so a
        // dropped `execute` either stops the call here or finds it started.
        let withdrawn = match lock(&self.shared.inflight).as_mut() {
            Some(inf) if inf.call_id == call_id => {
                inf.started = !inf.withdrawn;
                inf.withdrawn
            }
            _ => false,
        };
        if withdrawn {
            drop(permit);
            *lock(&self.shared.inflight) = None;
            return None;
        }
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let t0 = Instant::now();
        let outcome = if permit.is_none() {
            Outcome::with_reason(Status::Cancelled, "cancelled before it ran")
        } else if ctx.timeout.is_zero() {
            Outcome::could_not_execute("operation timeout is 0: give a positive timeout")
        } else {
            let fut = AssertUnwindSafe(self.agent.execute(action, &ctx)).catch_unwind();
            tokio::select! {
                r = tokio::time::timeout(ctx.timeout, fut) => match r {
                    Ok(Ok(o)) => o,
                    Ok(Err(_)) => Outcome::with_reason(Status::GenericError, "agent panicked"),
                    Err(_) => Outcome::with_reason(
                        Status::TimedOut,
                        format!("{action} timed out after {} ms", ctx.timeout.as_millis()),
                    ),
                },
                Ok(()) = &mut cancel_rx => Outcome::with_reason(Status::Cancelled, "cancelled"),
            }
        };
        drop(permit);
        *lock(&self.shared.inflight) = None;
        let duration = t0.elapsed();
        let record = OpRecord {
            call_id,
            key,
            status: outcome.status,
            rc: outcome.status.ocf_code(),
            exit_reason: outcome.exit_reason.clone(),
            started_unix_ms,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            failed: is_failure(action, &ctx, outcome.status),
        };
        let notified = recurring.is_none_or(|(n, last)| should_notify(n, last, record.status));
        record_result(
            &mut lock(&self.shared.history),
            &self.node,
            &record,
            &outcome,
            notified,
        );
        if record.failed {
            tracing::info!(resource = %self.resource, op = %key, result = %outcome, "operation failed");
        }
        Some(OpResult {
            resource: self.resource.clone(),
            node: self.node.clone(),
            record,
            outcome,
        })
    }
}

/// How a call begins: its cancel signal, and whether `cancel_call` cancelled it
/// while it was queued.
struct Start {
    cancel: oneshot::Receiver<()>,
    precancelled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    #[test]
    fn failure_rules() {
        let probe = ActionContext::new("r");
        let rec = ActionContext::new("r").interval(Duration::from_secs(10));
        let promoted = rec.clone().role(Role::Promoted);
        use Status::*;
        assert!(!is_failure(Action::Monitor, &probe, NotRunning));
        assert!(!is_failure(Action::Monitor, &probe, RunningPromoted));
        assert!(is_failure(Action::Monitor, &probe, GenericError));
        assert!(is_failure(Action::Monitor, &rec, NotRunning));
        assert!(!is_failure(Action::Monitor, &rec, Degraded));
        assert!(is_failure(Action::Monitor, &promoted, Success));
        assert!(!is_failure(Action::Monitor, &promoted, DegradedPromoted));
        assert!(is_failure(Action::Start, &probe, TimedOut));
        assert!(is_failure(Action::Stop, &probe, NotRunning));
        assert!(!is_failure(Action::Start, &probe, Cancelled));
    }

    #[test]
    fn recurring_results_are_notified_first_and_on_change_only() {
        use Status::*;
        // Pacemaker's send_cmd_complete_notify: the first result always ...
        assert!(should_notify(Notify::Changes, None, Success));
        // ... then only a different (rc, execution status).
        assert!(!should_notify(Notify::Changes, Some(Success), Success));
        assert!(should_notify(Notify::Changes, Some(Success), NotRunning));
        assert!(should_notify(Notify::Changes, Some(GenericError), TimedOut));
        assert!(should_notify(Notify::Changes, Some(Success), Cancelled));
        assert!(should_notify(Notify::Every, Some(Success), Success));
    }

    fn result(resource: &str, action: Action, status: Status, failed: bool) -> OpResult {
        OpResult {
            resource: resource.into(),
            node: "n1".into(),
            record: OpRecord {
                call_id: 1,
                key: OpKey {
                    action,
                    interval_ms: 10,
                },
                status,
                rc: status.ocf_code(),
                exit_reason: None,
                started_unix_ms: 0,
                duration_ms: 0,
                failed,
            },
            outcome: Outcome::new(status),
        }
    }

    #[test]
    fn a_lag_notice_keeps_each_operations_last_failure_and_last_result() {
        use Status::*;
        let mut l = LagState::default();
        l.add(result("a", Action::Monitor, Success, false));
        l.add(result("a", Action::Monitor, NotRunning, true)); // 2
        l.add(result("b", Action::Monitor, GenericError, true)); // 3
        l.add(result("a", Action::Monitor, Success, false)); // 4
        l.add(result("b", Action::Monitor, TimedOut, true)); // 5
        l.add(result("a", Action::Start, Success, false)); // 6
        let n = l.into_notice();
        assert_eq!(n.missed, 6);
        let got: Vec<(&str, Action, Status)> = n
            .results
            .iter()
            .map(|r| (r.resource.as_str(), r.record.key.action, r.record.status))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Action::Monitor, NotRunning),
                ("a", Action::Monitor, Success),
                ("b", Action::Monitor, TimedOut),
                ("a", Action::Start, Success),
            ]
        );
    }

    #[tokio::test]
    async fn the_stream_never_waits_and_gives_the_notice_after_what_was_queued() {
        use Status::*;
        let (tx, rx) = mpsc::channel(2);
        let lag = Arc::new(Mutex::new(None));
        let sender = EventSender {
            tx,
            lag: lag.clone(),
        };
        let mut stream = OpStream { rx, lag };
        for i in 0..10 {
            let s = if i == 5 { NotRunning } else { Success };
            sender.send(result("a", Action::Monitor, s, s != Success));
        }
        assert_eq!(stream.queued(), 2);
        assert!(matches!(stream.try_recv(), Some(OpEvent::Result(_))));
        // Room again, but a notice is pending: results keep being summarised
        // until the queue is read, so nothing overtakes the notice.
        sender.send(result("a", Action::Stop, Success, false));
        assert!(matches!(stream.recv().await, Some(OpEvent::Result(_))));
        let Some(OpEvent::Lagged(n)) = stream.recv().await else {
            panic!("no notice")
        };
        assert_eq!(n.missed, 9);
        assert_eq!(n.results.len(), 3, "{n:?}");
        assert!(n.results[0].record.failed);
        drop(sender);
        assert_eq!(stream.recv().await, None);
    }

    #[test]
    fn history_counts_failures_per_node_and_tracks_scores() {
        let mut h = ResourceHistory::default();
        let rec = |status, failed| OpRecord {
            call_id: 1,
            key: OpKey {
                action: Action::Monitor,
                interval_ms: 10_000,
            },
            status,
            rc: None,
            exit_reason: None,
            started_unix_ms: 0,
            duration_ms: 0,
            failed,
        };
        let o = Outcome::success().with_promotion(PromotionUpdate::Set(10));
        record_result(&mut h, "n1", &rec(Status::Success, false), &o, true);
        assert_eq!(h.promotion_score, Some(10));
        record_result(
            &mut h,
            "n1",
            &rec(Status::NotRunning, true),
            &Outcome::not_running(),
            true,
        );
        // The same failure again, not notified: recorded, not counted.
        record_result(
            &mut h,
            "n1",
            &rec(Status::NotRunning, true),
            &Outcome::not_running(),
            false,
        );
        record_result(
            &mut h,
            "n1",
            &rec(Status::Cancelled, false),
            &Outcome::new(Status::Cancelled),
            true,
        );
        assert_eq!(h.fail_counts["n1"], 1);
        assert_eq!(h.last.as_ref().unwrap().status, Status::NotRunning);
        assert_eq!(h.ops["monitor_10000"].status, Status::NotRunning);
        let o = Outcome::success().with_promotion(PromotionUpdate::Delete);
        record_result(&mut h, "n1", &rec(Status::Success, false), &o, true);
        assert_eq!(h.promotion_score, None);
    }
}
