//! The `cluster` example's scenario, checked: placement, failover and rejoin as
//! the proxy's client sees them.

use halyard_examples::cluster::run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_places_fails_over_and_rejoins() {
    let report = run(false)
        .await
        .expect("every step of the scenario happens");

    // Three nodes: web answered from all three, db from node1 only (its preferred node).
    let three = report.phase("three nodes").expect("phase");
    let web = three.answered_by("web");
    assert_eq!(
        web.keys().collect::<Vec<_>>(),
        ["node1", "node2", "node3"],
        "{three:?}"
    );
    assert_eq!(
        three.answered_by("db").keys().collect::<Vec<_>>(),
        ["node1"],
        "{three:?}"
    );
    assert_eq!(three.failed("web") + three.failed("db"), 0, "{three:?}");

    // After the failover: the survivors serve everything, nothing fails.
    let two = report.phase("two nodes").expect("phase");
    assert_eq!(
        two.answered_by("web").keys().collect::<Vec<_>>(),
        ["node2", "node3"],
        "{two:?}"
    );
    let db = two.answered_by("db");
    assert_eq!(db.len(), 1, "db runs on exactly one node: {two:?}");
    assert!(!db.contains_key("node1"), "{two:?}");
    assert_eq!(two.failed("web") + two.failed("db"), 0, "{two:?}");

    // Node 1 back: web runs there again, db stays where it moved (stickiness 100
    // beats the location preference 50).
    let again = report.phase("three nodes again").expect("phase");
    assert_eq!(again.answered_by("web").len(), 3, "{again:?}");
    assert_eq!(
        again.answered_by("db").keys().collect::<Vec<_>>(),
        db.keys().collect::<Vec<_>>(),
        "{again:?}"
    );
    assert_eq!(again.failed("web") + again.failed("db"), 0, "{again:?}");
}
