//! The executor: serialization per resource, concurrency across resources,
//! timeouts, cancellation, recurring monitors, probes, history and fail-counts.

mod common;

use async_trait::async_trait;
use common::*;
use halyard_resources::agent::native::FileLockAgent;
use halyard_resources::agent::ocf::{OcfAgent, DEFAULT_OCF_ROOT};
use halyard_resources::agent::{Action, ActionContext, Metadata, Outcome, ResourceAgent, Status};
use halyard_resources::executor::{Executor, Notify, OpEvent, OpResult};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// A native test agent: `monitor` waits on a barrier (if any), sleeps `delay`,
/// and tracks how many of its calls run at once.
struct Probe {
    barrier: Option<Arc<Barrier>>,
    delay: Duration,
    running: AtomicUsize,
    max_running: AtomicUsize,
    calls: AtomicUsize,
    result: Status,
    panic: bool,
}

impl Probe {
    fn new(result: Status) -> Self {
        Self {
            barrier: None,
            delay: Duration::ZERO,
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            result,
            panic: false,
        }
    }
}

#[async_trait]
impl ResourceAgent for Probe {
    fn name(&self) -> String {
        "native:probe".into()
    }
    async fn start(&self, _: &ActionContext) -> Outcome {
        Outcome::success()
    }
    async fn stop(&self, _: &ActionContext) -> Outcome {
        Outcome::success()
    }
    async fn monitor(&self, _: &ActionContext) -> Outcome {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.panic {
            panic!("probe agent panics on purpose");
        }
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        Outcome::new(self.result)
    }
    async fn metadata(&self) -> halyard_resources::Result<Metadata> {
        FileLockAgent::new().metadata().await
    }
}

fn reg(ex: &Executor, id: &str, a: Arc<dyn ResourceAgent>) {
    ex.register(id, a, BTreeMap::new()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_resource_is_serialized_different_resources_run_concurrently() {
    let (ex, _events) = Executor::new("n1");
    // Serialized: 5 monitors on one resource never overlap.
    let mut p = Probe::new(Status::Success);
    p.delay = Duration::from_millis(5);
    let p = Arc::new(p);
    reg(&ex, "serial", p.clone());
    let ctx = ex.context("serial").unwrap();
    let all = futures::future::join_all(
        (0..5).map(|_| ex.execute("serial", Action::Monitor, ctx.clone())),
    )
    .await;
    assert!(all
        .iter()
        .all(|r| r.as_ref().unwrap().record.status == Status::Success));
    assert_eq!(p.calls.load(Ordering::SeqCst), 5);
    assert_eq!(p.max_running.load(Ordering::SeqCst), 1);
    // Concurrent: two resources whose monitors can only finish together.
    let barrier = Arc::new(Barrier::new(2));
    for id in ["a", "b"] {
        let mut p = Probe::new(Status::Success);
        p.barrier = Some(barrier.clone());
        reg(&ex, id, Arc::new(p));
    }
    let ctx = |id| ex.context(id).unwrap().timeout(Duration::from_secs(20));
    let (a, b) = tokio::join!(
        ex.execute("a", Action::Monitor, ctx("a")),
        ex.execute("b", Action::Monitor, ctx("b"))
    );
    assert_eq!(a.unwrap().record.status, Status::Success);
    assert_eq!(b.unwrap().record.status, Status::Success);
}

#[tokio::test]
async fn a_hanging_agent_blocks_only_itself_and_can_be_cancelled_or_time_out() {
    let (ex, _events) = Executor::new("n1");
    let mut hang = Probe::new(Status::Success);
    hang.delay = Duration::from_secs(3600);
    reg(&ex, "hang", Arc::new(hang));
    reg(&ex, "ok", Arc::new(Probe::new(Status::Success)));
    let call = ex
        .submit(
            "hang",
            Action::Monitor,
            ex.context("hang")
                .unwrap()
                .timeout(Duration::from_secs(3600)),
        )
        .unwrap();
    // Others run while it hangs.
    for _ in 0..3 {
        let r = ex
            .execute("ok", Action::Monitor, ex.context("ok").unwrap())
            .await
            .unwrap();
        assert_eq!(r.record.status, Status::Success);
    }
    // Cancel the hanging call (retry until it is in flight).
    let mut cancelled = false;
    for _ in 0..200 {
        if ex.cancel_call("hang", call).unwrap() {
            cancelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(cancelled);
    // The next action on the same resource runs: a timeout this time.
    let r = ex
        .execute(
            "hang",
            Action::Monitor,
            ex.context("hang")
                .unwrap()
                .timeout(Duration::from_millis(50)),
        )
        .await
        .unwrap();
    assert_eq!(r.record.status, Status::TimedOut);
    let h = ex.history("hang").unwrap();
    assert_eq!(h.fail_counts["n1"], 1, "{h:?}");
    assert_eq!(h.last_failure.unwrap().status, Status::TimedOut);
    // The cancelled call is not a failure and is not in the history.
    assert_eq!(h.ops.len(), 1);
}

#[tokio::test]
async fn a_panicking_agent_is_a_generic_error() {
    let (ex, _events) = Executor::new("n1");
    let mut p = Probe::new(Status::Success);
    p.panic = true;
    reg(&ex, "boom", Arc::new(p));
    let r = ex
        .execute("boom", Action::Monitor, ex.context("boom").unwrap())
        .await
        .unwrap();
    assert_eq!(r.record.status, Status::GenericError);
    assert_eq!(r.record.exit_reason.as_deref(), Some("agent panicked"));
    // Still usable.
    let r = ex
        .execute("boom", Action::Start, ex.context("boom").unwrap())
        .await
        .unwrap();
    assert_eq!(r.record.status, Status::Success);
}

async fn next_for(events: &mut halyard_resources::executor::OpStream, id: &str) -> OpResult {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("no result within 30 s")
            .expect("stream ended");
        match e {
            OpEvent::Result(r) if r.resource == id => return r,
            OpEvent::Result(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn recurring_monitor_repeats_until_cancelled_and_results_stream() {
    let (ex, mut events) = Executor::new("n1");
    let p = Arc::new(Probe::new(Status::Success));
    reg(&ex, "r", p.clone());
    let ctx = ex.context("r").unwrap().interval(Duration::from_millis(10));
    let (key, call) = ex
        .start_recurring_with("r", Action::Monitor, ctx, Notify::Every)
        .unwrap();
    assert_eq!(key.to_string(), "monitor_10");
    for _ in 0..3 {
        let r = next_for(&mut events, "r").await;
        assert_eq!(r.record.call_id, call);
        assert_eq!(r.record.key, key);
        assert_eq!(r.record.status, Status::Success);
    }
    ex.cancel_recurring("r", key).unwrap();
    // A one-shot queued after the cancel: once it is done, no recurring run may follow.
    let one = ex
        .execute("r", Action::Start, ex.context("r").unwrap())
        .await
        .unwrap();
    let calls_then = p.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.calls.load(Ordering::SeqCst), calls_then);
    // Drain: the one-shot is the last result for "r".
    let mut last = None;
    while let Ok(Some(OpEvent::Result(r))) =
        tokio::time::timeout(Duration::from_millis(10), events.recv()).await
    {
        last = Some(r);
    }
    assert_eq!(last.unwrap().record.call_id, one.record.call_id);
    let h = ex.history("r").unwrap();
    assert_eq!(h.ops["monitor_10"].status, Status::Success);
    assert_eq!(h.last.unwrap().key.action, Action::Start);
}

#[tokio::test]
async fn probes_and_unknown_resources() {
    let (ex, _events) = Executor::new("n1");
    reg(&ex, "up", Arc::new(Probe::new(Status::Success)));
    reg(&ex, "down", Arc::new(Probe::new(Status::NotRunning)));
    reg(&ex, "bad", Arc::new(Probe::new(Status::NotConfigured)));
    let res = ex.probe_all().await;
    let got: Vec<(String, Status, bool)> = res
        .into_iter()
        .map(|(id, r)| {
            let r = r.unwrap();
            (id, r.record.status, r.record.failed)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("bad".into(), Status::NotConfigured, true),
            ("down".into(), Status::NotRunning, false),
            ("up".into(), Status::Success, false),
        ]
    );
    assert!(ex.probe("nope").await.is_err());
    assert!(ex
        .submit("nope", Action::Start, ActionContext::new("x"))
        .is_err());
    // Timeout 0 is refused with a clear result.
    let r = ex
        .execute(
            "up",
            Action::Monitor,
            ex.context("up").unwrap().timeout(Duration::ZERO),
        )
        .await
        .unwrap();
    assert_eq!(r.record.status, Status::CouldNotExecute);
    ex.unregister("up").unwrap();
    assert_eq!(ex.resources(), ["bad", "down"]);
}

#[tokio::test]
async fn ocf_dummy_through_the_executor_with_a_failing_recurring_monitor() {
    if !have_ocf_agents() {
        return;
    }
    let (ex, mut events) = Executor::new("n1");
    let dir = TempDir::new("exdummy");
    let state = dir.path().join("dummy.state");
    let mut params = BTreeMap::new();
    params.insert("state".to_string(), state.to_string_lossy().into_owned());
    let id = tag("exdummy");
    ex.register(
        &id,
        Arc::new(OcfAgent::new(DEFAULT_OCF_ROOT, "heartbeat", "Dummy").unwrap()),
        params,
    )
    .unwrap();
    assert_eq!(
        ex.probe(&id).await.unwrap().record.status,
        Status::NotRunning
    );
    let r = ex
        .execute(&id, Action::Start, ex.context(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(r.record.status, Status::Success);
    let ctx = ex.context(&id).unwrap().interval(Duration::from_millis(50));
    let (key, _) = ex.start_recurring(&id, Action::Monitor, ctx).unwrap();
    loop {
        let r = next_for(&mut events, &id).await;
        if r.record.key == key {
            assert_eq!(r.record.status, Status::Success);
            break;
        }
    }
    // The resource dies behind the executor's back: the next recurring monitor
    // reports "not running", a failure that counts.
    std::fs::remove_file(&state).unwrap();
    loop {
        let r = next_for(&mut events, &id).await;
        if r.record.key == key && r.record.status == Status::NotRunning {
            assert!(r.record.failed);
            break;
        }
    }
    ex.cancel_recurring(&id, key).unwrap();
    let h = ex.history(&id).unwrap();
    assert!(h.fail_counts["n1"] >= 1);
    assert_eq!(h.agent, "ocf:heartbeat:Dummy");
    ex.clear_failcount(&id).unwrap();
    assert!(ex.history(&id).unwrap().fail_counts.is_empty());
    let snap = ex.snapshot();
    assert!(snap.contains_key(&id));
}

#[tokio::test]
async fn a_queued_call_can_be_cancelled_before_it_runs() {
    let (ex, mut events) = Executor::new("n1");
    let mut hang = Probe::new(Status::Success);
    hang.delay = Duration::from_secs(3600);
    let hang = Arc::new(hang);
    reg(&ex, "q", hang.clone());
    let ctx = ex.context("q").unwrap().timeout(Duration::from_secs(3600));
    let first = ex.submit("q", Action::Monitor, ctx.clone()).unwrap();
    let second = ex.submit("q", Action::Monitor, ctx).unwrap();
    assert!(
        ex.cancel_call("q", second).unwrap(),
        "queued call not found"
    );
    // Now cancel the first once it runs.
    for _ in 0..400 {
        if hang.calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(hang.calls.load(Ordering::SeqCst), 1, "first call never ran");
    assert!(ex.cancel_call("q", first).unwrap());
    let mut got = BTreeMap::new();
    while got.len() < 2 {
        let r = next_for(&mut events, "q").await;
        got.insert(r.record.call_id, r);
    }
    assert_eq!(got[&first].record.status, Status::Cancelled);
    assert_eq!(got[&first].record.exit_reason.as_deref(), Some("cancelled"));
    assert_eq!(got[&second].record.status, Status::Cancelled);
    assert_eq!(
        got[&second].record.exit_reason.as_deref(),
        Some("cancelled before it ran")
    );
    assert_eq!(hang.calls.load(Ordering::SeqCst), 1, "the queued call ran");
    assert!(
        !ex.cancel_call("q", second).unwrap(),
        "finished calls are not cancellable"
    );
}

/// A native agent whose `monitor` answers `script(n)` on its n-th call
/// (1-based), counting calls and non-success answers.
struct Script {
    script: fn(usize) -> Status,
    calls: AtomicUsize,
    failed: AtomicUsize,
}

impl Script {
    fn new(script: fn(usize) -> Status) -> Arc<Self> {
        Arc::new(Self {
            script,
            calls: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        })
    }

    /// Waits (bounded) until `monitor` has been called at least `n` times.
    async fn wait_calls(&self, n: usize) {
        for _ in 0..6000 {
            if self.calls.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "only {} monitor calls within 30 s",
            self.calls.load(Ordering::SeqCst)
        );
    }
}

#[async_trait]
impl ResourceAgent for Script {
    fn name(&self) -> String {
        "native:script".into()
    }
    async fn start(&self, _: &ActionContext) -> Outcome {
        Outcome::success()
    }
    async fn stop(&self, _: &ActionContext) -> Outcome {
        Outcome::success()
    }
    async fn monitor(&self, _: &ActionContext) -> Outcome {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let s = (self.script)(n);
        if s != Status::Success {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        Outcome::new(s)
    }
    async fn metadata(&self) -> halyard_resources::Result<Metadata> {
        FileLockAgent::new().metadata().await
    }
}

/// Everything queued now, without waiting.
fn drain(events: &mut halyard_resources::executor::OpStream) -> Vec<OpEvent> {
    std::iter::from_fn(|| events.try_recv()).collect()
}

/// Stops the recurring `key` on `id` and waits until the worker has passed the
/// cancel (a one-shot queued after it has finished), so counters are final.
async fn stop_recurring(ex: &Executor, id: &str, key: halyard_resources::executor::OpKey) {
    ex.cancel_recurring(id, key).unwrap();
    ex.execute(id, Action::Start, ex.context(id).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_recurring_monitor_reports_only_changes_and_the_history_keeps_every_run() {
    let (ex, mut events) = Executor::new("n1");
    // 50 successes, then "not running" for ever.
    let agent = Script::new(|n| {
        if n <= 50 {
            Status::Success
        } else {
            Status::NotRunning
        }
    });
    reg(&ex, "r", agent.clone());
    let ctx = ex.context("r").unwrap().interval(Duration::from_millis(20));
    let (key, call) = ex.start_recurring("r", Action::Monitor, ctx).unwrap();
    agent.wait_calls(55).await;
    stop_recurring(&ex, "r", key).await;
    let monitors: Vec<OpResult> = drain(&mut events)
        .into_iter()
        .map(|e| match e {
            OpEvent::Result(r) => r,
            other => panic!("unexpected {other:?}"),
        })
        .filter(|r| r.record.key == key)
        // The cancel may catch a run in flight: that result is a change too.
        .filter(|r| r.record.status != Status::Cancelled)
        .collect();
    let got: Vec<(Status, bool)> = monitors
        .iter()
        .map(|r| (r.record.status, r.record.failed))
        .collect();
    assert_eq!(
        got,
        [(Status::Success, false), (Status::NotRunning, true)],
        "one notification for 50 equal results, one for the change"
    );
    assert!(monitors.iter().all(|r| r.record.call_id == call));
    // The history saw every run, but the fail count counts the one notified
    // failure, as Pacemaker's controller does (it counts notifications).
    let failed = agent.failed.load(Ordering::SeqCst);
    assert!(failed >= 5, "{failed}");
    let h = ex.history("r").unwrap();
    assert_eq!(h.fail_counts["n1"], 1, "{h:?}");
    assert_eq!(h.ops["monitor_20"].status, Status::NotRunning);
    assert_eq!(h.last_failure.unwrap().key, key);
}

#[tokio::test]
async fn a_stalled_consumer_leaves_the_stream_bounded_and_still_learns_of_the_failure() {
    const CAP: usize = 4;
    let (ex, mut events) = Executor::with_limits(
        "n1",
        halyard_resources::executor::DEFAULT_MAX_CONCURRENT,
        CAP,
    );
    assert_eq!(events.capacity(), CAP);
    // Flapping for 40 runs (every one a change), failed for 5, then healthy
    // again: the failure is superseded while the consumer is not reading.
    let agent = Script::new(|n| match n {
        n if n > 45 => Status::Success,
        n if n > 40 => Status::GenericError,
        n if n % 2 == 1 => Status::Success,
        _ => Status::NotRunning,
    });
    reg(&ex, "flap", agent.clone());
    let ctx = ex
        .context("flap")
        .unwrap()
        .interval(Duration::from_millis(2));
    let (key, _) = ex.start_recurring("flap", Action::Monitor, ctx).unwrap();
    // The consumer reads nothing while 50 runs (42 changes) happen.
    agent.wait_calls(50).await;
    assert!(events.queued() <= CAP, "{} queued", events.queued());
    stop_recurring(&ex, "flap", key).await;
    assert!(events.queued() <= CAP, "{} queued", events.queued());
    let got = drain(&mut events);
    // The oldest CAP results, then one notice, then nothing.
    assert_eq!(got.len(), CAP + 1, "{got:?}");
    for (i, e) in got[..CAP].iter().enumerate() {
        let OpEvent::Result(r) = e else {
            panic!("{e:?}")
        };
        let want = if i % 2 == 0 {
            Status::Success
        } else {
            Status::NotRunning
        };
        assert_eq!((r.record.key, r.record.status), (key, want));
    }
    let OpEvent::Lagged(lag) = &got[CAP] else {
        panic!("{:?}", got[CAP])
    };
    // 42 monitor changes (maybe a cancelled run) and the start: all but CAP missed.
    assert!(lag.missed >= 42 + 1 - CAP as u64, "{lag:?}");
    // At most two entries per (resource, operation): the monitor and the start.
    assert!(lag.results.len() <= 4, "{lag:?}");
    let failure = lag
        .results
        .iter()
        .find(|r| r.record.key == key && r.record.failed)
        .expect("the missed failure is in the notice");
    assert_eq!(failure.record.status, Status::GenericError);
    // And the monitor's latest state after it (healthy, or cancelled if the
    // cancel caught a run).
    let monitors: Vec<Status> = lag
        .results
        .iter()
        .filter(|r| r.record.key == key)
        .map(|r| r.record.status)
        .collect();
    assert!(
        monitors == [Status::GenericError, Status::Success]
            || monitors == [Status::GenericError, Status::Cancelled],
        "{monitors:?}"
    );
    assert_eq!(
        lag.results.last().unwrap().record.key.action,
        Action::Start,
        "oldest first: the start came after the monitor"
    );
    // The fail count counts notified failures, as Pacemaker's controller
    // does: each of the 20 flapping "not running" results was a change, the 5
    // generic errors in a row count once. The history keeps the last result
    // of each operation either way.
    let h = ex.history("flap").unwrap();
    assert_eq!(agent.failed.load(Ordering::SeqCst), 25);
    assert_eq!(h.fail_counts["n1"], 21, "{h:?}");
    // Read up, the consumer gets results again as they happen.
    let r = ex
        .execute("flap", Action::Stop, ex.context("flap").unwrap())
        .await
        .unwrap();
    match events.try_recv() {
        Some(OpEvent::Result(got)) => assert_eq!(got, r),
        other => panic!("{other:?}"),
    }
    assert!(events.try_recv().is_none());
}

/// A native agent whose `start` and `stop` each wait until the test opens the
/// gate once per call; counts the calls of each action.
struct Gate {
    gate: tokio::sync::Semaphore,
    starts: AtomicUsize,
    stops: AtomicUsize,
    monitors: AtomicUsize,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            gate: tokio::sync::Semaphore::new(0),
            starts: AtomicUsize::new(0),
            stops: AtomicUsize::new(0),
            monitors: AtomicUsize::new(0),
        })
    }

    async fn pass(&self) {
        self.gate.acquire().await.unwrap().forget();
    }

    /// Lets one waiting (or the next) `start`/`stop` through.
    fn open(&self) {
        self.gate.add_permits(1);
    }

    fn counts(&self) -> (usize, usize, usize) {
        (
            self.starts.load(Ordering::SeqCst),
            self.stops.load(Ordering::SeqCst),
            self.monitors.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl ResourceAgent for Gate {
    fn name(&self) -> String {
        "native:gate".into()
    }
    async fn start(&self, _: &ActionContext) -> Outcome {
        self.starts.fetch_add(1, Ordering::SeqCst);
        self.pass().await;
        Outcome::success()
    }
    async fn stop(&self, _: &ActionContext) -> Outcome {
        self.stops.fetch_add(1, Ordering::SeqCst);
        self.pass().await;
        Outcome::success()
    }
    async fn monitor(&self, _: &ActionContext) -> Outcome {
        self.monitors.fetch_add(1, Ordering::SeqCst);
        Outcome::success()
    }
    async fn metadata(&self) -> halyard_resources::Result<Metadata> {
        FileLockAgent::new().metadata().await
    }
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not within 30 s");
}

/// The results on the stream for `id` until (and with) call `last`.
async fn results_until(
    events: &mut halyard_resources::executor::OpStream,
    id: &str,
    last: u64,
) -> Vec<(Action, Status)> {
    let mut got = Vec::new();
    loop {
        let r = next_for(events, id).await;
        got.push((r.record.key.action, r.record.status));
        if r.record.call_id == last {
            return got;
        }
    }
}

#[tokio::test]
async fn execute_dropped_before_its_call_ran_leaves_nothing_queued_and_never_runs() {
    let (ex, mut events) = Executor::new("n1");
    let gate = Gate::new();
    reg(&ex, "g", gate.clone());
    let ctx = ex.context("g").unwrap().timeout(Duration::from_secs(3600));
    // The worker is busy with a slow start.
    let slow = ex.submit("g", Action::Start, ctx.clone()).unwrap();
    until("the slow start runs", || gate.counts().0 == 1).await;
    // An application retrying `stop` under a timeout: each attempt is polled
    // once (queued) and dropped.
    for _ in 0..100 {
        let r =
            tokio::time::timeout(Duration::ZERO, ex.execute("g", Action::Stop, ctx.clone())).await;
        assert!(r.is_err(), "answered while the worker was busy: {r:?}");
    }
    assert_eq!(ex.queued("g").unwrap(), 0, "abandoned calls stayed queued");
    gate.open();
    // The next call runs right after the slow one: nothing ran in between.
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        ex.execute("g", Action::Monitor, ctx.clone()),
    )
    .await
    .expect("the monitor never ran")
    .unwrap();
    assert_eq!(r.record.status, Status::Success);
    assert_eq!(gate.counts(), (1, 0, 1), "(starts, stops, monitors)");
    assert_eq!(
        results_until(&mut events, "g", r.record.call_id).await,
        [
            (Action::Start, Status::Success),
            (Action::Monitor, Status::Success)
        ],
    );
    assert_eq!(r.record.call_id, slow + 101);
    // The history is truthful: no stop ran, none is recorded.
    let h = ex.history("g").unwrap();
    assert_eq!(h.ops.keys().collect::<Vec<_>>(), ["monitor_0", "start_0"]);
    assert!(h.fail_counts.is_empty(), "{h:?}");
}

#[tokio::test]
async fn execute_dropped_while_waiting_for_a_slot_never_runs() {
    // One slot for the whole executor: "b"'s worker takes the stop and waits
    // for the slot "a" holds.
    let (ex, mut events) = Executor::with_max_concurrent("n1", 1);
    let (a, b) = (Gate::new(), Gate::new());
    reg(&ex, "a", a.clone());
    reg(&ex, "b", b.clone());
    let ctx = |id| ex.context(id).unwrap().timeout(Duration::from_secs(3600));
    ex.submit("a", Action::Start, ctx("a")).unwrap();
    until("a's start runs", || a.counts().0 == 1).await;
    let mut stop = Box::pin(ex.execute("b", Action::Stop, ctx("b")));
    assert!(futures::poll!(stop.as_mut()).is_pending());
    until("b's worker takes the stop", || ex.queued("b").unwrap() == 0).await;
    drop(stop);
    a.open();
    // Were the stop to run anyway, it would not hang the test: it fails below.
    b.open();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        ex.execute("b", Action::Monitor, ctx("b")),
    )
    .await
    .expect("b's monitor never ran")
    .unwrap();
    assert_eq!(b.counts(), (0, 0, 1), "the abandoned stop ran");
    assert_eq!(
        results_until(&mut events, "b", r.record.call_id).await,
        [(Action::Monitor, Status::Success)],
        "a withdrawn call leaves no result"
    );
    assert!(!ex.history("b").unwrap().ops.contains_key("stop_0"));
}

#[tokio::test]
async fn execute_dropped_while_its_call_runs_lets_it_finish_and_records_it() {
    let (ex, mut events) = Executor::new("n1");
    let gate = Gate::new();
    reg(&ex, "g", gate.clone());
    let ctx = ex.context("g").unwrap().timeout(Duration::from_secs(3600));
    let mut stop = Box::pin(ex.execute("g", Action::Stop, ctx.clone()));
    assert!(futures::poll!(stop.as_mut()).is_pending());
    until("the stop runs", || gate.counts().1 == 1).await;
    // The caller gives up on the running stop. It is not cancelled (the agent
    // is not killed, as pacemaker-execd does not kill a disconnected client's
    // operation): it finishes, and its result reaches the history and stream.
    drop(stop);
    gate.open();
    let r = next_for(&mut events, "g").await;
    assert_eq!(
        (r.record.key.action, r.record.status),
        (Action::Stop, Status::Success)
    );
    assert_eq!(
        ex.history("g").unwrap().ops["stop_0"].status,
        Status::Success
    );
    assert_eq!(gate.counts(), (0, 1, 0));
}

#[tokio::test]
async fn an_ocf_stop_whose_execute_is_dropped_is_not_killed() {
    let root = FakeRoot::new();
    let dir = TempDir::new("dropstop");
    let (running, release, done) = (
        dir.path().join("running"),
        dir.path().join("release"),
        dir.path().join("done"),
    );
    // `stop` says it runs, waits (bounded) for the test, then finishes its work.
    root.agent(
        "slowstop",
        &format!(
            "[ \"$1\" = stop ] || exit 0\n: > '{r}'\ni=0\n\
             while [ ! -e '{l}' ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done\n\
             : > '{d}'\nexit 0",
            r = running.display(),
            l = release.display(),
            d = done.display()
        ),
    );
    let (ex, mut events) = Executor::new("n1");
    let id = tag("slowstop");
    ex.register(
        &id,
        Arc::new(OcfAgent::new(root.root(), "fake", "slowstop").unwrap()),
        BTreeMap::new(),
    )
    .unwrap();
    let ctx = ex.context(&id).unwrap().timeout(Duration::from_secs(60));
    let mut stop = Box::pin(ex.execute(&id, Action::Stop, ctx));
    assert!(futures::poll!(stop.as_mut()).is_pending());
    until("the stop script runs", || running.exists()).await;
    drop(stop);
    std::fs::write(&release, b"").unwrap();
    let r = next_for(&mut events, &id).await;
    assert_eq!(
        (r.record.key.action, r.record.status),
        (Action::Stop, Status::Success),
        "{r:?}"
    );
    assert!(done.exists(), "the stop was killed before it finished");
    assert_eq!(
        ex.history(&id).unwrap().ops["stop_0"].status,
        Status::Success
    );
}

#[test]
fn calls_to_a_worker_gone_with_its_runtime_fail_instead_of_hanging() {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = rt();
    let (ex, _events) = first.block_on(async {
        let (ex, events) = Executor::new("n1");
        reg(&ex, "r", Arc::new(Probe::new(Status::Success)));
        (ex, events)
    });
    // The runtime goes and takes the worker task with it.
    drop(first);
    let r = rt().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            ex.execute("r", Action::Monitor, ex.context("r").unwrap()),
        )
        .await
    });
    assert!(matches!(r, Ok(Err(_))), "{r:?}");
    assert!(ex
        .submit("r", Action::Monitor, ex.context("r").unwrap())
        .is_err());
}
