//! Simulator tests: scripted scenarios, the random-seed sweep, replay and determinism.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn lan(token_ms: u64, fast: bool) -> TotemConfig {
    TotemConfig {
        token: Duration::from_millis(token_ms),
        token_coefficient: Duration::ZERO,
        fast_failover: fast,
        ..TotemConfig::default()
    }
}

fn ring_of(sim: &Sim, id: u32) -> (RingId, Vec<NodeId>) {
    let s = sim.engine(NodeId(id)).unwrap().status();
    (s.ring_id, s.members)
}

#[test]
fn three_nodes_form_one_ring() {
    let mut sim = Sim::new(1, 3, lan(1000, true));
    let t = sim
        .run_until_converged(Duration::from_secs(5))
        .expect("converges");
    assert!(t < Duration::from_millis(200), "took {t:?}");
    let (r, m) = ring_of(&sim, 2);
    assert_eq!(m, vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(r.rep, NodeId(1));
    // Idle for a minute of virtual time: no change.
    sim.run_for(Duration::from_secs(60));
    assert_eq!(ring_of(&sim, 3).0, r);
}

/// Crash one node and return (time to new ring at survivors).
fn failover(n: u32, victim: u32, cfg: TotemConfig, seed: u64) -> Duration {
    let mut sim = Sim::new(seed, n, cfg);
    sim.run_until_converged(Duration::from_secs(5))
        .expect("forms");
    // Kill at a seed-dependent phase of the idle token rotation.
    let phase = Duration::from_millis(1000 + seed % 97 * 7);
    sim.run_for(phase);
    let before = ring_of(&sim, if victim == 1 { 2 } else { 1 }).0;
    sim.crash(NodeId(victim));
    let t0 = sim.now();
    let d = sim
        .run_until_converged(Duration::from_secs(30))
        .expect("survivors converge");
    let after = ring_of(&sim, if victim == 1 { 2 } else { 1 });
    assert!(after.0.seq > before.seq);
    assert!(!after.1.contains(&NodeId(victim)));
    let _ = t0;
    d
}

#[test]
fn fast_failover_beats_consensus_wait() {
    for victim in [1, 3] {
        for seed in 0..5 {
            let slow = failover(3, victim, lan(1000, false), seed);
            let fast = failover(3, victim, lan(1000, true), seed);
            // Corosync: detection (<= token) + consensus (1.2 token).
            assert!(
                slow >= Duration::from_millis(1200),
                "without fast failover: {slow:?}"
            );
            assert!(
                slow <= Duration::from_millis(2300),
                "without fast failover: {slow:?}"
            );
            // Fast: detection + one token_retransmit at most.
            assert!(
                fast <= Duration::from_millis(1000 + 260),
                "with fast failover: {fast:?}"
            );
            assert!(
                fast.as_secs_f64() <= 0.6 * slow.as_secs_f64(),
                "fast {fast:?} vs slow {slow:?}"
            );
        }
    }
}

/// Crashes node 4 of 4 three times (restarting it in between) with node 3
/// slowed by `slow` each way; returns how many rings node 3 saw without node 1.
fn slow_node_splits(seed: u64, slow: Duration) -> usize {
    let cfg = TotemConfig {
        join: Duration::from_millis(30),
        ..lan(300, true)
    };
    let mut sim = Sim::new(seed, 4, cfg);
    sim.set_slow(NodeId(3), slow);
    sim.run_until_converged(Duration::from_secs(5))
        .expect("forms");
    for round in 0..3 {
        sim.crash(NodeId(4));
        sim.run_until_converged(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("seed {seed} round {round}: no ring"));
        assert_eq!(
            ring_of(&sim, 1).1,
            vec![NodeId(1), NodeId(2), NodeId(3)],
            "seed {seed} round {round}"
        );
        sim.start(NodeId(4));
        if sim.run_until_converged(Duration::from_secs(10)).is_none() {
            for l in sim.trace.iter() {
                println!("{l}");
            }
            for id in sim.live() {
                println!("{:?}", sim.engine(id).unwrap().status());
            }
            panic!("seed {seed} round {round} slow {slow:?}: no rejoin");
        }
    }
    // Split episodes: a ring with node 1 followed by one without.
    let rings = &sim.regular[&NodeId(3)];
    let n = rings
        .windows(2)
        .filter(|w| w[0].2.contains(&NodeId(1)) && !w[1].2.contains(&NodeId(1)))
        .count();
    n
}

#[test]
fn slow_node_is_not_failed_by_fast_failover() {
    for seed in 0..20 {
        // Round trip 2 x 6 ms < fast_failover_wait (join / 2 = 15 ms): never split off.
        assert_eq!(
            slow_node_splits(seed, Duration::from_millis(6)),
            0,
            "seed {seed}"
        );
        // Round trip 2 x 25 ms > 15 ms: fast failover may split it off, then
        // exempts it (it still speaks for the old ring); every round converges
        // to the full ring (checked inside) and splits stay rare.
        assert!(
            slow_node_splits(seed, Duration::from_millis(25)) <= 2,
            "seed {seed}"
        );
    }
}

#[test]
fn partition_heals_into_one_ring() {
    let mut sim = Sim::new(7, 5, lan(500, true));
    sim.run_until_converged(Duration::from_secs(5))
        .expect("forms");
    let groups: BTreeMap<NodeId, u32> = [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
        .map(|(a, b)| (NodeId(a), b))
        .into();
    sim.partition(&groups);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(ring_of(&sim, 1).1, vec![NodeId(1), NodeId(2)]);
    assert_eq!(ring_of(&sim, 4).1, vec![NodeId(3), NodeId(4), NodeId(5)]);
    sim.heal();
    let t = sim
        .run_until_converged(Duration::from_secs(10))
        .expect("merges");
    assert!(t < sim.token() * 2, "merge took {t:?}");
}

#[test]
fn restart_rejoins_with_higher_ring_id() {
    let mut sim = Sim::new(3, 3, lan(300, true));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    let r0 = ring_of(&sim, 1).0;
    sim.crash(NodeId(2));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    let r1 = ring_of(&sim, 1).0;
    sim.start(NodeId(2));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    let r2 = ring_of(&sim, 2).0;
    assert!(r0.seq < r1.seq && r1.seq < r2.seq, "{r0} {r1} {r2}");
    assert_eq!(ring_of(&sim, 3).1.len(), 3);
}

#[test]
fn restart_before_token_loss_is_noticed() {
    // Node 3 crashes and restarts before anyone saw the token loss.
    let mut sim = Sim::new(4, 3, lan(1000, true));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    let r0 = ring_of(&sim, 1).0;
    sim.crash(NodeId(3));
    sim.run_for(Duration::from_millis(50));
    sim.start(NodeId(3));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    assert!(ring_of(&sim, 3).0.seq > r0.seq);
}

#[test]
fn graceful_leave_reconfigures_without_token_loss() {
    let mut sim = Sim::new(5, 3, lan(3000, true));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    sim.run_for(Duration::from_millis(500));
    let t0 = sim.now();
    sim.leave(NodeId(3));
    let d = sim.run_until_converged(Duration::from_secs(10)).unwrap();
    assert!(d < Duration::from_millis(100), "leave took {d:?}");
    let last = sim.regular[&NodeId(1)].last().unwrap();
    assert!(last.0 >= t0);
    assert_eq!(last.2, vec![NodeId(1), NodeId(2)]);
}

#[test]
fn lossy_network_keeps_one_ring() {
    // 2% loss and duplication: token retransmits cover it, no membership change.
    let mut sim = Sim::new(11, 4, lan(1000, true));
    sim.run_until_converged(Duration::from_secs(5)).unwrap();
    let r = ring_of(&sim, 1).0;
    sim.link.loss = 0.02;
    sim.link.duplicate = 0.02;
    sim.run_for(Duration::from_secs(30));
    assert_eq!(ring_of(&sim, 1).0, r);
}

#[test]
fn same_seed_same_trace() {
    for seed in [1u64, 42, 31337] {
        let a = run_seed(seed);
        let b = run_seed(seed);
        assert_eq!(a.digest, b.digest, "seed {seed} is not deterministic");
        assert_eq!(a.trace_len, b.trace_len);
    }
    assert_ne!(run_seed(1).digest, run_seed(2).digest);
}

#[test]
fn random_seeds() {
    let count: u64 = std::env::var("HALYARD_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let first: u64 = std::env::var("HALYARD_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8) as u64;
    let start = std::time::Instant::now();
    let worst = std::sync::Mutex::new((0.0f64, 0u64));
    std::thread::scope(|s| {
        for t in 0..threads {
            let worst = &worst;
            s.spawn(move || {
                let mut seed = first + t;
                while seed < first + count {
                    let r = run_seed(seed);
                    let ratio = r.converge.as_secs_f64() / r.token.as_secs_f64();
                    let mut w = worst.lock().unwrap();
                    if ratio > w.0 {
                        *w = (ratio, seed);
                    }
                    seed += threads;
                }
            });
        }
    });
    let (ratio, seed) = *worst.lock().unwrap();
    println!(
        "{count} seeds in {:?}; slowest convergence after faults: {ratio:.2} tokens (seed {seed}); bound {CONVERGE_BOUND_TOKENS}",
        start.elapsed()
    );
}

#[test]
fn replay() {
    let Some(seed) = std::env::var("HALYARD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    else {
        return;
    };
    let r = super::replay(seed);
    println!("{r:?}");
}
