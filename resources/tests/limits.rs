//! Limits: 1,000 concurrent monitors through the executor, timeouts and bad
//! agents; nothing leaks (open fds and child processes counted before and after).
//! One test in its own binary, so no other test's processes are counted.

mod common;

use common::*;
use halyard_resources::agent::ocf::OcfAgent;
use halyard_resources::agent::{Action, ResourceAgent, Status};
use halyard_resources::executor::Executor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_monitors_and_bad_agents_leak_nothing() {
    let root = FakeRoot::new();
    root.agent("cheap", "exit 7");
    let grandchild = unique_sleep();
    root.agent(
        "hang",
        &format!("[ \"$1\" = meta-data ] && exit 1\n{grandchild} & sleep 1000"),
    );
    root.agent("chatty", "head -c 1000000 /dev/urandom; exit 0");
    let noexec = root.agent("noexec", "exit 0");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // Warm up the runtime (signal driver, blocking pool) before counting.
    let cheap = Arc::new(OcfAgent::new(root.root(), "fake", "cheap").unwrap());
    let _ = cheap
        .monitor(&halyard_resources::agent::ActionContext::new("warm"))
        .await;

    let fds_before = open_fds();
    let children_before = children();

    let (ex, _events) = Executor::new("n1");
    let n = 1000;
    for i in 0..n {
        ex.register(format!("r{i:04}"), cheap.clone(), BTreeMap::new())
            .unwrap();
    }
    let results = ex.probe_all().await;
    assert_eq!(results.len(), n);
    for (id, r) in &results {
        let r = r.as_ref().unwrap();
        assert_eq!(r.record.status, Status::NotRunning, "{id}: {:?}", r.outcome);
    }
    // Hostile agents next to it, each with a clear result.
    let bad: [(&str, Status); 3] = [
        ("hang", Status::TimedOut),
        ("chatty", Status::Success),
        ("noexec", Status::CouldNotExecute),
    ];
    for (kind, _) in bad {
        let a = Arc::new(OcfAgent::new(root.root(), "fake", kind).unwrap());
        for i in 0..10 {
            let id = format!("{kind}{i}");
            ex.register(&id, a.clone(), BTreeMap::new()).unwrap();
        }
    }
    let mut waits = Vec::new();
    for (kind, want) in bad {
        for i in 0..10 {
            let id = format!("{kind}{i}");
            let ctx = ex.context(&id).unwrap().timeout(Duration::from_millis(300));
            let ex = ex.clone();
            waits.push(tokio::spawn(async move {
                let r = ex.execute(&id, Action::Monitor, ctx).await.unwrap();
                assert_eq!(r.record.status, want, "{id}: {:?}", r.outcome);
            }));
        }
    }
    for w in waits {
        w.await.unwrap();
    }
    // Cancelled while running: the agent's group is killed and reaped too.
    let hang = Arc::new(OcfAgent::new(root.root(), "fake", "hang").unwrap());
    for i in 0..5 {
        let id = format!("cancel{i}");
        ex.register(&id, hang.clone(), BTreeMap::new()).unwrap();
        let ctx = ex.context(&id).unwrap().timeout(Duration::from_secs(3600));
        let call = ex.submit(&id, Action::Monitor, ctx).unwrap();
        let mut cancelled = false;
        for _ in 0..500 {
            if ex.cancel_call(&id, call).unwrap() {
                cancelled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(cancelled, "{id} never ran");
    }
    // Each resource's next action runs once the cancelled one is gone.
    for i in 0..5 {
        let id = format!("cancel{i}");
        let ctx = ex.context(&id).unwrap().timeout(Duration::from_millis(100));
        let r = ex.execute(&id, Action::Monitor, ctx).await.unwrap();
        assert_eq!(r.record.status, Status::TimedOut);
        assert_eq!(ex.history(&id).unwrap().fail_counts["n1"], 1);
    }
    for id in ex.resources() {
        ex.unregister(&id).unwrap();
    }
    drop(ex);
    drop(cheap);
    // Workers end asynchronously; give them a bounded moment.
    let mut fds_after = 0;
    for _ in 0..100 {
        fds_after = open_fds();
        if fds_after <= fds_before && children() == children_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
    assert_eq!(children(), children_before, "child processes left");
    assert!(
        wait_gone(&grandchild),
        "a timed-out agent's grandchild survived"
    );
}
