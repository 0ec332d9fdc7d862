//! votequorum semantics, table-driven from the examples of `votequorum(5)`
//! (Corosync 3.1, sections named in each case), plus edge cases.

use std::time::{Duration, Instant};

use halyard_membership::quorum::{TieBreaker, DEFAULT_LAST_MAN_STANDING_WINDOW};
use halyard_membership::{Error, Member, NodeId, Quorum, QuorumConfig, QuorumEvent};

/// One step of a scenario: the members now (1 vote each unless `votes` says
/// otherwise), time advanced before the step, and the expected outcome.
struct Step {
    /// Milliseconds to advance the clock before this step (timeouts fire first).
    after_ms: u64,
    /// Members after this step; `None` keeps the previous membership (time only).
    members: Option<&'static [u32]>,
    quorate: bool,
    expected_votes: u32,
    quorum: u32,
}

const fn at(members: &'static [u32], quorate: bool, expected_votes: u32, quorum: u32) -> Step {
    Step {
        after_ms: 0,
        members: Some(members),
        quorate,
        expected_votes,
        quorum,
    }
}

const fn wait(ms: u64, quorate: bool, expected_votes: u32, quorum: u32) -> Step {
    Step {
        after_ms: ms,
        members: None,
        quorate,
        expected_votes,
        quorum,
    }
}

fn run(name: &str, config: QuorumConfig, steps: &[Step]) -> Quorum {
    let mut q = Quorum::new(config).unwrap_or_else(|e| panic!("{name}: config rejected: {e}"));
    let t0 = Instant::now();
    let mut now = t0;
    for (i, step) in steps.iter().enumerate() {
        now += Duration::from_millis(step.after_ms);
        while let Some(deadline) = q.poll_timeout() {
            if deadline > now {
                break;
            }
            q.handle_timeout(deadline.max(t0));
        }
        if let Some(ids) = step.members {
            let members: Vec<Member> = ids.iter().map(|id| Member::new(*id, 1)).collect();
            q.handle_membership(now, &members);
        }
        let s = q.status();
        assert_eq!(
            (s.quorate, s.expected_votes, s.quorum),
            (step.quorate, step.expected_votes, step.quorum),
            "{name}: step {i} (members {:?}): (quorate, expected_votes, quorum)",
            s.members
        );
    }
    q
}

fn nodes(n: u32) -> QuorumConfig {
    QuorumConfig::with_nodes(1..=n)
}

const ALL8: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn overview_expected_votes_and_majority() {
    // OVERVIEW: "Example (no nodelist) of an 8 node cluster": expected_votes: 8.
    // wait_for_all: "expected_votes is set to 8 and quorum is (50% + 1) 5. As soon as
    // 5 (or more) nodes are visible to each other, the partition ... becomes quorate".
    run(
        "8 nodes, expected_votes 8",
        QuorumConfig::with_expected_votes(8),
        &[
            at(&[1], false, 8, 5),
            at(&[1, 2, 3, 4], false, 8, 5),
            at(&[1, 2, 3, 4, 5], true, 8, 5),
            at(ALL8, true, 8, 5),
            // last_man_standing: "This condition allows a total failure of 3 nodes.
            // If a 4th node fails, the cluster becomes inquorate".
            at(&[1, 2, 3, 4, 5], true, 8, 5),
            at(&[1, 2, 3, 4], false, 8, 5),
        ],
    );
    // OVERVIEW: "Example (with nodelist) of a 3 node cluster (each node has 1 vote)".
    run(
        "3-node nodelist",
        nodes(3),
        &[
            at(&[1], false, 3, 2),
            at(&[1, 2], true, 3, 2),
            at(&[1, 2, 3], true, 3, 2),
            at(&[3], false, 3, 2),
        ],
    );
}

#[test]
fn two_node() {
    // SPECIAL FEATURES, two_node, "Example configuration 1" (expected_votes: 2) and
    // "2" (nodelist of two). "enabling two_node: 1 automatically enables
    // wait_for_all": a lone node at first start is not quorate.
    let by_expected = QuorumConfig {
        two_node: true,
        ..QuorumConfig::with_expected_votes(2)
    };
    let by_nodelist = QuorumConfig {
        two_node: true,
        ..nodes(2)
    };
    for (name, config) in [("expected_votes", by_expected), ("nodelist", by_nodelist)] {
        let q = run(
            name,
            config,
            &[
                at(&[1], false, 2, 1),
                at(&[1, 2], true, 2, 1),
                // "quorum is set artificially to 1": the survivor stays quorate.
                at(&[1], true, 2, 1),
                at(&[1, 2], true, 2, 1),
                at(&[2], true, 2, 1),
            ],
        );
        assert!(q.status().flags.two_node);
        assert_eq!(q.status().flags.to_string(), "2Node Quorate WaitForAll");
    }
    // "It is still possible to override wait_for_all by explicitly setting it to 0."
    run(
        "two_node, wait_for_all: 0",
        QuorumConfig {
            two_node: true,
            wait_for_all: Some(false),
            ..nodes(2)
        },
        &[at(&[1], true, 2, 1), at(&[1, 2], true, 2, 1)],
    );
    // "If more than 2 nodes join the cluster, the two_node option is automatically
    // disabled" (possible without a nodelist).
    let q = run(
        "two_node, a third node joins",
        QuorumConfig {
            two_node: true,
            wait_for_all: Some(false),
            ..QuorumConfig::with_expected_votes(2)
        },
        &[
            at(&[1, 2], true, 2, 1),
            at(&[1, 2, 3], true, 3, 2),
            at(&[1], true, 3, 1),
        ],
    );
    assert!(q.status().flags.two_node);
}

#[test]
fn wait_for_all() {
    // SPECIAL FEATURES, wait_for_all, "Example configuration": expected_votes 8,
    // wait_for_all 1: "the cluster will be quorate for the first time only after all
    // nodes have been visible at least once at the same time".
    let config = QuorumConfig {
        wait_for_all: Some(true),
        ..QuorumConfig::with_expected_votes(8)
    };
    run(
        "8 nodes, wait_for_all",
        config.clone(),
        &[
            at(&[1, 2, 3, 4, 5], false, 8, 5),
            at(&[1, 2, 3, 4, 5, 6, 7], false, 8, 5),
            at(ALL8, true, 8, 5),
            at(&[1, 2, 3, 4, 5], true, 8, 5),
            // Corosync re-arms the wait when quorum is lost (are_we_quorate):
            at(&[1, 2, 3, 4], false, 8, 5),
            at(&[1, 2, 3, 4, 5, 6], false, 8, 5),
            at(ALL8, true, 8, 5),
        ],
    );
    // A node restarting into a running, quorate partition follows it once a quorate
    // peer reports (Corosync's nodeinfo with the QUORATE flag).
    let mut q = Quorum::new(config.clone()).unwrap();
    let members: Vec<Member> = (1..=6).map(|id| Member::new(id, 1)).collect();
    q.handle_membership(Instant::now(), &members);
    assert!(!q.is_quorate());
    assert!(q.status().flags.waiting_for_all);
    q.handle_peer_quorate(NodeId(99), 8);
    assert!(!q.is_quorate(), "a non-member's word counts for nothing");
    q.handle_peer_quorate(NodeId(2), 8);
    assert!(q.is_quorate());
    assert!(!q.status().flags.waiting_for_all);
    // The operator override.
    let mut q = Quorum::new(config).unwrap();
    q.handle_membership(Instant::now(), &members);
    q.cancel_wait_for_all();
    assert!(q.is_quorate());
}

#[test]
fn last_man_standing_chain_of_events() {
    // SPECIAL FEATURES, last_man_standing, "Example chain of events" (steps 1-7),
    // "Example configuration 1" (expected_votes 8, default 10 s window).
    let window = DEFAULT_LAST_MAN_STANDING_WINDOW.as_millis() as u64;
    let config = QuorumConfig {
        last_man_standing: true,
        ..QuorumConfig::with_expected_votes(8)
    };
    let q = run(
        "LMS chain",
        config,
        &[
            // 1) fully operational with 8 nodes (expected_votes: 8 quorum: 5)
            at(ALL8, true, 8, 5),
            // 2) 3 nodes die, cluster is quorate with 5 nodes.
            at(&[1, 2, 3, 4, 5], true, 8, 5),
            wait(window - 1, true, 8, 5),
            // 3) after the window: expected_votes: 5 quorum: 3
            wait(1, true, 5, 3),
            // 4) 2 more nodes can die and the cluster is still quorate with 3.
            at(&[1, 2, 3], true, 5, 3),
            // 5) after the window again: expected_votes: 3 quorum: 2
            wait(window, true, 3, 2),
            // 6) 1 more node can die; quorate with 2.
            at(&[1, 2], true, 3, 2),
            // 7) one more window: expected_votes: 2 quorum: 2
            wait(window, true, 2, 2),
            // NOTES: "If auto_tie_breaker is not enabled, and one more failure
            // occurs, the remaining node will not be quorate."
            at(&[1], false, 2, 2),
        ],
    );
    assert_eq!(q.poll_timeout(), None);

    // "Example configuration 2 (increase timeout to 20 seconds)", and nodes leaving
    // in steps: every departure restarts the window.
    let config = QuorumConfig {
        last_man_standing: true,
        last_man_standing_window: Duration::from_millis(20_000),
        ..QuorumConfig::with_expected_votes(8)
    };
    run(
        "LMS 20 s window, restarted by a second departure",
        config,
        &[
            at(ALL8, true, 8, 5),
            at(&[1, 2, 3, 4, 5, 6, 7], true, 8, 5),
            wait(15_000, true, 8, 5),
            at(&[1, 2, 3, 4, 5, 6], true, 8, 5),
            wait(15_000, true, 8, 5),
            wait(5_000, true, 6, 4),
            // Nodes coming back raise expected votes again.
            at(&[1, 2, 3, 4, 5, 6, 7], true, 7, 4),
        ],
    );
}

#[test]
fn last_man_standing_with_auto_tie_breaker_goes_down_to_one() {
    // last_man_standing NOTES: "In order for the cluster to downgrade automatically
    // from 2 nodes to a 1 node cluster, the auto_tie_breaker feature must also be
    // enabled". Even expected votes, so wait_for_all is not required.
    let config = QuorumConfig {
        last_man_standing: true,
        auto_tie_breaker: true,
        ..nodes(4)
    };
    run(
        "LMS + ATB",
        config,
        &[
            at(&[1, 2, 3, 4], true, 4, 3),
            at(&[1, 2, 3], true, 4, 3),
            wait(10_000, true, 3, 2),
            at(&[1, 2], true, 3, 2),
            wait(10_000, true, 2, 2),
            // 1 of 2: an exact half, and node 1 is the lowest id: quorate; the LMS
            // window then makes it a one-node cluster.
            at(&[1], true, 2, 2),
            wait(10_000, true, 1, 1),
        ],
    );
    // The same, but the survivor is not the tie-breaker node.
    run(
        "LMS + ATB, survivor without the tie-breaker",
        QuorumConfig {
            last_man_standing: true,
            auto_tie_breaker: true,
            ..nodes(4)
        },
        &[
            at(&[1, 2, 3, 4], true, 4, 3),
            at(&[1, 2, 3], true, 4, 3),
            wait(10_000, true, 3, 2),
            at(&[1, 2], true, 3, 2),
            wait(10_000, true, 2, 2),
            at(&[2], false, 2, 2),
            wait(10_000, false, 2, 2),
        ],
    );
}

/// Runs an 8-node cluster that splits into `side` and the rest: returns whether
/// `side` is quorate and whether the rest is (each side computed by its own node).
fn split(config: &QuorumConfig, before: &[u32], side: &[u32]) -> (bool, bool) {
    let other: Vec<u32> = before
        .iter()
        .copied()
        .filter(|id| !side.contains(id))
        .collect();
    let outcome = |members: &[u32]| {
        let mut q = Quorum::new(config.clone()).unwrap();
        let now = Instant::now();
        let all: Vec<Member> = before.iter().map(|id| Member::new(*id, 1)).collect();
        let part: Vec<Member> = members.iter().map(|id| Member::new(*id, 1)).collect();
        q.handle_membership(now, &all);
        q.handle_membership(now, &part);
        q.is_quorate()
    };
    (outcome(side), outcome(&other))
}

#[test]
fn auto_tie_breaker() {
    // SPECIAL FEATURES, auto_tie_breaker, "Example configuration 1": expected_votes
    // 8, auto_tie_breaker_node: lowest. "the partition ... still in contact with the
    // node that has the lowest nodeid will remain quorate. The other nodes will be
    // inquorate."
    let lowest = QuorumConfig {
        auto_tie_breaker: true,
        ..QuorumConfig::with_expected_votes(8)
    };
    let highest = QuorumConfig {
        auto_tie_breaker_node: TieBreaker::Highest,
        ..lowest.clone()
    };
    // "Example configuration 2": auto_tie_breaker_node: 1 3 5.
    let list = QuorumConfig {
        auto_tie_breaker_node: TieBreaker::List(vec![NodeId(1), NodeId(3), NodeId(5)]),
        ..lowest.clone()
    };
    let no_atb = QuorumConfig::with_expected_votes(8);
    /// (name, config, members before, one side, (side quorate, rest quorate))
    type SplitCase<'a> = (
        &'a str,
        &'a QuorumConfig,
        &'a [u32],
        &'a [u32],
        (bool, bool),
    );
    let cases: &[SplitCase<'_>] = &[
        ("lowest", &lowest, ALL8, &[1, 2, 3, 4], (true, false)),
        ("lowest", &lowest, ALL8, &[2, 4, 6, 8], (false, true)),
        ("highest", &highest, ALL8, &[1, 2, 3, 4], (false, true)),
        ("highest", &highest, ALL8, &[5, 6, 7, 8], (true, false)),
        ("list 1 3 5", &list, ALL8, &[1, 6, 7, 8], (true, false)),
        // Node 1 was in the cluster before the split and is not here: it may be in
        // the other half, so node 3 may not decide for this half.
        ("list 1 3 5", &list, ALL8, &[2, 3, 4, 5], (false, true)),
        // "if that node is not in either half (ie was not in the cluster before the
        // split) then the second node ID will be checked".
        (
            "list 1 3 5, node 1 down before",
            &list,
            &[2, 3, 4, 5, 6, 7, 8],
            &[2, 3, 4, 5],
            (true, false),
        ),
        (
            "list 1 3 5, node 1 down before",
            &list,
            &[2, 3, 4, 5, 6, 7, 8],
            &[2, 4, 6, 8],
            (false, false),
        ),
        // Without ATB a 50/50 split leaves both halves inquorate.
        ("no ATB", &no_atb, ALL8, &[1, 2, 3, 4], (false, false)),
        // Not an exact half: 3 of 8 never, 5 of 8 always.
        ("lowest, 3/5", &lowest, ALL8, &[1, 2, 3], (false, true)),
    ];
    for (name, config, before, side, expected) in cases {
        assert_eq!(
            split(config, before, side),
            *expected,
            "{name}: {before:?} split into {side:?} and the rest: (side quorate, rest quorate)"
        );
    }
}

#[test]
fn auto_tie_breaker_only_rescues_a_split_not_a_cold_start() {
    let config = QuorumConfig {
        auto_tie_breaker: true,
        ..nodes(4)
    };
    // Half of the nodes start first: no quorate configuration was ever seen, and the
    // partition grew rather than split.
    run(
        "ATB cold start",
        config.clone(),
        &[at(&[1], false, 4, 3), at(&[1, 2], false, 4, 3)],
    );
    // A half that splits from a quorate whole keeps quorum.
    run(
        "ATB split",
        config,
        &[at(&[1, 2, 3, 4], true, 4, 3), at(&[1, 2], true, 4, 3)],
    );
}

#[test]
fn votes_and_expected_votes() {
    // VARIOUS NOTES: "nodelist { node { ring0_addr: ... quorum_votes: 3 } }".
    let mut config = nodes(3);
    config.nodelist.insert(NodeId(1), 3);
    let mut q = Quorum::new(config).unwrap();
    let now = Instant::now();
    assert_eq!(q.status().expected_votes, 5);
    q.handle_membership(now, &[Member::new(1, 3)]);
    assert!(q.is_quorate(), "3 of 5 votes");
    assert_eq!((q.status().total_votes, q.status().quorum), (3, 3));
    q.handle_membership(now, &[Member::new(2, 1), Member::new(3, 1)]);
    assert!(!q.is_quorate(), "2 of 5 votes");

    // quorum.expected_votes overrides the nodelist; expected votes are raised by the
    // highest total seen, and quorum never goes down on its own.
    let mut config = nodes(3);
    config.expected_votes = Some(2);
    let mut q = Quorum::new(config).unwrap();
    q.handle_membership(now, &[Member::new(1, 1), Member::new(2, 1)]);
    assert_eq!(
        (q.status().expected_votes, q.status().quorum, q.is_quorate()),
        (2, 2, true)
    );
    q.handle_membership(
        now,
        &[Member::new(1, 1), Member::new(2, 1), Member::new(3, 1)],
    );
    assert_eq!((q.status().expected_votes, q.status().quorum), (3, 2));
    q.handle_membership(now, &[Member::new(1, 1)]);
    assert_eq!(
        (q.status().expected_votes, q.status().quorum, q.is_quorate()),
        (3, 2, false)
    );
    let events: Vec<QuorumEvent> = std::iter::from_fn(|| q.poll_event()).collect();
    assert_eq!(
        events
            .iter()
            .map(|e| match e {
                QuorumEvent::Quorate(_) => "quorate".to_string(),
                QuorumEvent::Inquorate(_) => "inquorate".to_string(),
                QuorumEvent::ExpectedVotes { old, new } => format!("expected {old}->{new}"),
                _ => "other".to_string(),
            })
            .collect::<Vec<_>>(),
        ["quorate", "expected 2->3", "inquorate"]
    );
}

#[test]
fn last_man_standing_does_not_lower_an_inquorate_partition() {
    // The window only fires while quorate (votequorum_last_man_standing_timer_fn),
    // and is only armed when the survivors are at least a quorum.
    let config = QuorumConfig {
        last_man_standing: true,
        ..nodes(5)
    };
    let mut q = run(
        "LMS, quorum lost",
        config,
        &[at(&[1, 2, 3, 4, 5], true, 5, 3), at(&[1, 2], false, 5, 3)],
    );
    assert_eq!(q.poll_timeout(), None);
    q.handle_timeout(Instant::now() + Duration::from_secs(60));
    assert_eq!((q.is_quorate(), q.status().expected_votes), (false, 5));

    // A member with more than one vote switches last_man_standing off.
    let mut q = Quorum::new(QuorumConfig {
        last_man_standing: true,
        ..QuorumConfig::with_expected_votes(3)
    })
    .unwrap();
    let now = Instant::now();
    q.handle_membership(
        now,
        &[Member::new(1, 1), Member::new(2, 1), Member::new(3, 1)],
    );
    q.handle_membership(now, &[Member::new(1, 2)]);
    assert!(!q.status().flags.last_man_standing);
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn config_validation_names_the_field() {
    let cases: Vec<(&str, QuorumConfig, &str)> = vec![
        (
            "nothing configured",
            QuorumConfig::default(),
            "quorum.expected_votes",
        ),
        (
            "expected_votes 0",
            QuorumConfig::with_expected_votes(0),
            "quorum.expected_votes",
        ),
        (
            "all votes 0",
            QuorumConfig {
                nodelist: [(NodeId(1), 0), (NodeId(2), 0)].into_iter().collect(),
                ..QuorumConfig::default()
            },
            "nodelist.node.quorum_votes",
        ),
        (
            "two_node with 3 nodes",
            QuorumConfig {
                two_node: true,
                ..nodes(3)
            },
            "quorum.two_node",
        ),
        (
            "two_node with expected_votes 3",
            QuorumConfig {
                two_node: true,
                ..QuorumConfig::with_expected_votes(3)
            },
            "quorum.two_node",
        ),
        (
            "two_node + auto_tie_breaker",
            QuorumConfig {
                two_node: true,
                auto_tie_breaker: true,
                ..nodes(2)
            },
            "quorum.auto_tie_breaker",
        ),
        (
            "two_node + last_man_standing",
            QuorumConfig {
                two_node: true,
                last_man_standing: true,
                ..nodes(2)
            },
            "quorum.last_man_standing",
        ),
        (
            "last_man_standing with a 2-vote node",
            QuorumConfig {
                last_man_standing: true,
                nodelist: [(NodeId(1), 2), (NodeId(2), 1), (NodeId(3), 1)]
                    .into_iter()
                    .collect(),
                ..QuorumConfig::default()
            },
            "nodelist.node.quorum_votes",
        ),
        (
            "last_man_standing_window 0",
            QuorumConfig {
                last_man_standing: true,
                last_man_standing_window: Duration::ZERO,
                ..nodes(5)
            },
            "quorum.last_man_standing_window",
        ),
        (
            "auto_tie_breaker, odd cluster, no wait_for_all",
            QuorumConfig {
                auto_tie_breaker: true,
                ..nodes(5)
            },
            "quorum.wait_for_all",
        ),
        (
            "auto_tie_breaker + last_man_standing, odd cluster",
            QuorumConfig {
                auto_tie_breaker: true,
                last_man_standing: true,
                ..nodes(5)
            },
            "quorum.wait_for_all",
        ),
        (
            "auto_tie_breaker_node: empty list",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::List(vec![]),
                ..nodes(4)
            },
            "quorum.auto_tie_breaker_node",
        ),
        (
            "auto_tie_breaker_node: unknown node",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::List(vec![NodeId(1), NodeId(9)]),
                ..nodes(4)
            },
            "quorum.auto_tie_breaker_node",
        ),
        (
            "auto_tie_breaker_node: duplicate",
            QuorumConfig {
                auto_tie_breaker: true,
                auto_tie_breaker_node: TieBreaker::List(vec![NodeId(1), NodeId(1)]),
                ..nodes(4)
            },
            "quorum.auto_tie_breaker_node",
        ),
    ];
    for (name, config, field) in cases {
        match Quorum::new(config) {
            Err(Error::Config { field: f, reason }) => {
                assert_eq!(f, field, "{name}: wrong field ({reason})");
                assert!(!reason.is_empty());
            }
            other => panic!("{name}: expected a config error on {field}, got {other:?}"),
        }
    }
    // Accepted combinations.
    for config in [
        QuorumConfig {
            auto_tie_breaker: true,
            wait_for_all: Some(true),
            ..nodes(5)
        },
        QuorumConfig {
            auto_tie_breaker: true,
            last_man_standing: true,
            ..nodes(8)
        },
        QuorumConfig {
            wait_for_all: Some(true),
            last_man_standing: true,
            auto_tie_breaker: true,
            auto_tie_breaker_node: TieBreaker::List(vec![NodeId(3), NodeId(1)]),
            ..nodes(6)
        },
        QuorumConfig {
            two_node: true,
            ..QuorumConfig::with_expected_votes(2)
        },
    ] {
        Quorum::new(config.clone()).unwrap_or_else(|e| panic!("{config:?} rejected: {e}"));
    }
    let e = Quorum::new(QuorumConfig {
        two_node: true,
        ..nodes(3)
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("quorum.two_node") && e.to_string().contains("3 nodes"),
        "{e}"
    );
}

mod split_brain {
    //! Safety: after any common history, two disjoint halves of a membership are
    //! never both quorate (two_node excluded: it resolves splits by fencing, by
    //! design).

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// Members: a mask over the nodelist.
        Members(u8),
        /// Advance the clock (ms) and fire due timeouts.
        Wait(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            any::<u8>().prop_map(Step::Members),
            (0u64..25_000).prop_map(Step::Wait),
        ]
    }

    fn members(votes: &[u32], mask: u8) -> Vec<Member> {
        votes
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(i, v)| Member::new(i as u32 + 1, *v))
            .collect()
    }

    fn advance(q: &mut Quorum, now: &mut Instant, ms: u64) {
        *now += Duration::from_millis(ms);
        while let Some(d) = q.poll_timeout() {
            if d > *now {
                break;
            }
            q.handle_timeout(d);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn two_halves_are_never_both_quorate(
            votes in proptest::collection::vec(0u32..4, 2..=8),
            wait_for_all in any::<bool>(),
            auto_tie_breaker in any::<bool>(),
            tie_breaker in 0u8..3,
            last_man_standing in any::<bool>(),
            history in proptest::collection::vec(step(), 0..8),
            split_mask in any::<u8>(),
            after_ms in 0u64..40_000,
        ) {
            let n = votes.len();
            let config = QuorumConfig {
                nodelist: votes.iter().enumerate().map(|(i, v)| (NodeId(i as u32 + 1), *v)).collect(),
                wait_for_all: Some(wait_for_all),
                auto_tie_breaker,
                auto_tie_breaker_node: match tie_breaker {
                    0 => TieBreaker::Lowest,
                    1 => TieBreaker::Highest,
                    _ => TieBreaker::List((1..=n as u32).rev().map(NodeId).collect()),
                },
                last_man_standing,
                ..QuorumConfig::default()
            };
            let Ok(mut q) = Quorum::new(config) else {
                return Ok(()); // rejected combinations are tested elsewhere
            };
            let mut now = Instant::now();
            let all: u8 = ((1u16 << n) - 1) as u8;
            q.handle_membership(now, &members(&votes, all));
            for s in &history {
                match s {
                    Step::Members(mask) => q.handle_membership(now, &members(&votes, mask & all)),
                    Step::Wait(ms) => advance(&mut q, &mut now, *ms),
                }
            }
            let current: u8 = q.status().members.iter().fold(0u8, |m, id| m | 1 << (id.0 - 1));
            let side_a = current & split_mask;
            let side_b = current & !split_mask;
            let (mut a, mut b) = (q.clone(), q);
            let (mut now_a, mut now_b) = (now, now);
            a.handle_membership(now, &members(&votes, side_a));
            b.handle_membership(now, &members(&votes, side_b));
            prop_assert!(!(a.is_quorate() && b.is_quorate()), "both halves quorate right after the split: {:?} / {:?}", a.status(), b.status());
            advance(&mut a, &mut now_a, after_ms);
            advance(&mut b, &mut now_b, after_ms);
            prop_assert!(!(a.is_quorate() && b.is_quorate()), "both halves quorate after {after_ms} ms: {:?} / {:?}", a.status(), b.status());
        }
    }
}

#[test]
fn auto_tie_breaker_needs_an_exact_half() {
    // Corosync's test (`total == expected / 2`) would make {1, 2} (2 of 5 votes, with
    // the lowest node id) quorate while {3, 4} (3 of 5) is quorate by majority.
    let config = QuorumConfig {
        nodelist: [
            (NodeId(1), 1),
            (NodeId(2), 1),
            (NodeId(3), 2),
            (NodeId(4), 1),
        ]
        .into_iter()
        .collect(),
        auto_tie_breaker: true,
        wait_for_all: Some(true),
        ..QuorumConfig::default()
    };
    let all = [
        Member::new(1, 1),
        Member::new(2, 1),
        Member::new(3, 2),
        Member::new(4, 1),
    ];
    let now = Instant::now();
    let outcome = |side: &[Member]| {
        let mut q = Quorum::new(config.clone()).unwrap();
        q.handle_membership(now, &all);
        assert!(q.is_quorate());
        q.handle_membership(now, side);
        q.is_quorate()
    };
    assert!(outcome(&all[2..]), "{{3, 4}}: 3 of 5 votes");
    assert!(!outcome(&all[..2]), "{{1, 2}}: 2 of 5 votes is no tie");
}
