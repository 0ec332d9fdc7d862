//! The local executor: Pacemaker's `pacemaker-execd` for one node.
//!
//! ```text
//!  register(id, agent) ─┐           one worker task per resource
//!  execute / submit ────┼──> queue ──> [serialized: one action at a time] ──┐
//!  start_recurring ─────┤              recurring monitors due by interval    │
//!  cancel ──────────────┘              (timeout, cancellation, panics)       │
//!                                                                             v
//!         history + fail-counts (plain serde structs)  <──  OpResult ──> OpStream
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
//!   per operation, last failure, fail-count for this node) and is streamed to the
//!   caller through [`OpStream`]. Which results are failures is decided by the pure
//!   [`is_failure`].

use crate::agent::{Action, ActionContext, Outcome, PromotionUpdate, ResourceAgent, Role, Status};
use crate::error::{Error, Result};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Failures per node (this executor only counts its own node).
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

/// Applies one finished operation to a history (pure).
pub fn record_result(h: &mut ResourceHistory, node: &str, rec: &OpRecord, outcome: &Outcome) {
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
        *h.fail_counts.entry(node.to_string()).or_insert(0) += 1;
    }
}

/// The stream of finished operations.
#[derive(Debug)]
pub struct OpStream(mpsc::UnboundedReceiver<OpResult>);

impl OpStream {
    /// The next result, or `None` once the executor and every worker are gone.
    pub async fn recv(&mut self) -> Option<OpResult> {
        self.0.recv().await
    }
}

impl futures::Stream for OpStream {
    type Item = OpResult;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OpResult>> {
        self.0.poll_recv(cx)
    }
}

struct Op {
    call_id: CallId,
    action: Action,
    ctx: ActionContext,
    reply: Option<oneshot::Sender<OpResult>>,
}

enum Cmd {
    Run(Op),
    AddRecurring(CallId, Action, ActionContext),
    CancelRecurring(OpKey),
}

struct Inflight {
    call_id: CallId,
    key: OpKey,
    recurring: bool,
    cancel: Option<oneshot::Sender<()>>,
}

struct Shared {
    history: Mutex<ResourceHistory>,
    inflight: Mutex<Option<Inflight>>,
    /// Calls queued and not started, and those of them cancelled. Lock order:
    /// `queue`, then `inflight`.
    queue: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    queued: std::collections::BTreeSet<CallId>,
    cancelled: std::collections::BTreeSet<CallId>,
}

struct Handle {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
    agent: Arc<dyn ResourceAgent>,
    params: BTreeMap<String, String>,
}

/// Default bound on actions running at once (processes, file descriptors).
pub const DEFAULT_MAX_CONCURRENT: usize = 128;

struct Inner {
    node: String,
    permits: Arc<Semaphore>,
    next_call: AtomicU64,
    events: mpsc::UnboundedSender<OpResult>,
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
        let (events, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            node: node.into(),
            permits: Arc::new(Semaphore::new(max.max(1))),
            next_call: AtomicU64::new(1),
            events,
            resources: Mutex::new(BTreeMap::new()),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            OpStream(rx),
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
            history: Mutex::new(ResourceHistory {
                resource: id.clone(),
                agent: agent.name(),
                ..ResourceHistory::default()
            }),
            inflight: Mutex::new(None),
            queue: Mutex::new(QueueState::default()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            resource: id.clone(),
            node: self.inner.node.clone(),
            agent: agent.clone(),
            shared: shared.clone(),
            events: self.inner.events.clone(),
            permits: self.inner.permits.clone(),
            recurring: BTreeMap::new(),
        };
        tokio::spawn(worker.run(rx));
        lock(&self.inner.resources).insert(
            id,
            Handle {
                tx,
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

    fn tx(&self, id: &str) -> Result<mpsc::UnboundedSender<Cmd>> {
        let g = lock(&self.inner.resources);
        Ok(g.get(id).ok_or_else(|| unknown(id))?.tx.clone())
    }

    /// Queues a one-shot call on `id`'s worker.
    fn enqueue(&self, id: &str, op: Op) -> Result<()> {
        let (tx, shared) = {
            let g = lock(&self.inner.resources);
            let h = g.get(id).ok_or_else(|| unknown(id))?;
            (h.tx.clone(), h.shared.clone())
        };
        let call_id = op.call_id;
        lock(&shared.queue).queued.insert(call_id);
        tx.send(Cmd::Run(op)).map_err(|_| {
            lock(&shared.queue).queued.remove(&call_id);
            Error::Executor(format!("worker of {id} has stopped"))
        })
    }

    fn call_id(&self) -> CallId {
        self.inner.next_call.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `action` on `id`; the result goes to the stream only.
    pub fn submit(&self, id: &str, action: Action, ctx: ActionContext) -> Result<CallId> {
        let call_id = self.call_id();
        self.enqueue(
            id,
            Op {
                call_id,
                action,
                ctx,
                reply: None,
            },
        )?;
        Ok(call_id)
    }

    /// Runs `action` on `id` (after the actions queued before it) and returns its
    /// result (also sent to the stream).
    pub async fn execute(&self, id: &str, action: Action, ctx: ActionContext) -> Result<OpResult> {
        let (reply, rx) = oneshot::channel();
        let call_id = self.call_id();
        self.enqueue(
            id,
            Op {
                call_id,
                action,
                ctx,
                reply: Some(reply),
            },
        )?;
        rx.await
            .map_err(|_| Error::Executor(format!("worker of {id} stopped before call {call_id}")))
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
    /// operation with the same key. Every run reports the same call id.
    pub fn start_recurring(
        &self,
        id: &str,
        action: Action,
        ctx: ActionContext,
    ) -> Result<(OpKey, CallId)> {
        if ctx.interval.is_zero() {
            return Err(Error::Executor(format!(
                "recurring {action} on {id} needs a positive interval"
            )));
        }
        let key = key_of(action, &ctx);
        let call_id = self.call_id();
        self.tx(id)?
            .send(Cmd::AddRecurring(call_id, action, ctx))
            .map_err(|_| Error::Executor(format!("worker of {id} has stopped")))?;
        Ok((key, call_id))
    }

    /// Cancels the recurring operation `key` on `id`; if it is running now, it is
    /// cancelled too (its result is [`Status::Cancelled`]).
    pub fn cancel_recurring(&self, id: &str, key: OpKey) -> Result<()> {
        let (tx, shared) = {
            let g = lock(&self.inner.resources);
            let h = g.get(id).ok_or_else(|| unknown(id))?;
            (h.tx.clone(), h.shared.clone())
        };
        tx.send(Cmd::CancelRecurring(key))
            .map_err(|_| Error::Executor(format!("worker of {id} has stopped")))?;
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
        let shared = {
            let g = lock(&self.inner.resources);
            g.get(id).ok_or_else(|| unknown(id))?.shared.clone()
        };
        let mut q = lock(&shared.queue);
        if q.queued.contains(&call_id) {
            q.cancelled.insert(call_id);
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
}

struct Worker {
    resource: String,
    node: String,
    agent: Arc<dyn ResourceAgent>,
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<OpResult>,
    permits: Arc<Semaphore>,
    recurring: BTreeMap<OpKey, Recurring>,
}

impl Worker {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            let next = self
                .recurring
                .iter()
                .min_by_key(|(_, r)| r.due)
                .map(|(k, r)| (*k, r.due));
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    // Unregistered: queued actions ran; recurring ones end here.
                    None => break,
                    Some(Cmd::Run(op)) => {
                        let res = self.run_op(op.call_id, op.action, op.ctx, false).await;
                        if let Some(r) = op.reply { let _ = r.send(res); }
                    }
                    Some(Cmd::AddRecurring(call_id, action, ctx)) => {
                        let key = key_of(action, &ctx);
                        self.recurring.insert(key, Recurring {
                            call_id, action, ctx, due: tokio::time::Instant::now(),
                        });
                    }
                    Some(Cmd::CancelRecurring(key)) => { self.recurring.remove(&key); }
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
                    let res = self.run_op(call_id, action, ctx.clone(), true).await;
                    if let Some(r) = self.recurring.get_mut(&key) {
                        if res.outcome.status == Status::Cancelled {
                            self.recurring.remove(&key);
                        } else {
                            r.due = tokio::time::Instant::now() + ctx.interval;
                        }
                    }
                }
            }
        }
    }

    async fn run_op(
        &mut self,
        call_id: CallId,
        action: Action,
        ctx: ActionContext,
        recurring: bool,
    ) -> OpResult {
        let key = key_of(action, &ctx);
        let (cancel_tx, mut cancel_rx) = oneshot::channel();
        let precancelled = {
            let mut q = lock(&self.shared.queue);
            q.queued.remove(&call_id);
            let c = q.cancelled.remove(&call_id);
            *lock(&self.shared.inflight) = Some(Inflight {
                call_id,
                key,
                recurring,
                cancel: Some(cancel_tx),
            });
            c
        };
        let permit = if precancelled {
            None
        } else {
            tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                Ok(()) = &mut cancel_rx => None,
            }
        };
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
        record_result(
            &mut lock(&self.shared.history),
            &self.node,
            &record,
            &outcome,
        );
        if record.failed {
            tracing::info!(resource = %self.resource, op = %key, result = %outcome, "operation failed");
        }
        let res = OpResult {
            resource: self.resource.clone(),
            node: self.node.clone(),
            record,
            outcome,
        };
        let _ = self.events.send(res.clone());
        res
    }
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
        record_result(&mut h, "n1", &rec(Status::Success, false), &o);
        assert_eq!(h.promotion_score, Some(10));
        record_result(
            &mut h,
            "n1",
            &rec(Status::NotRunning, true),
            &Outcome::not_running(),
        );
        record_result(
            &mut h,
            "n1",
            &rec(Status::Cancelled, false),
            &Outcome::new(Status::Cancelled),
        );
        assert_eq!(h.fail_counts["n1"], 1);
        assert_eq!(h.last.as_ref().unwrap().status, Status::NotRunning);
        assert_eq!(h.ops["monitor_10000"].status, Status::NotRunning);
        let o = Outcome::success().with_promotion(PromotionUpdate::Delete);
        record_result(&mut h, "n1", &rec(Status::Success, false), &o);
        assert_eq!(h.promotion_score, None);
    }
}
