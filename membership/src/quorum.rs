//! Quorum with Corosync's votequorum semantics, as a pure state machine.
//!
//! Every node runs one [`Quorum`] and feeds it the configurations the ring engine
//! delivers (the members of its partition with their votes). From them it computes,
//! like `votequorum(5)`:
//!
//! * **total votes**: the sum of the votes of the current members;
//! * **expected votes**: configured (`quorum.expected_votes`, or the sum of the
//!   nodelist's `quorum_votes`), raised to the highest total ever seen, and lowered
//!   only by `last_man_standing` or by adopting a quorate peer's value;
//! * **quorum** `= expected_votes / 2 + 1` (never decreasing on its own): the
//!   partition is *quorate* when `total_votes >= quorum`, i.e. when it holds more
//!   than half of the expected votes;
//! * the special features `two_node`, `wait_for_all`, `last_man_standing` (+ window)
//!   and `auto_tie_breaker` (+ `auto_tie_breaker_node`).
//!
//! ```text
//!  inputs                                   outputs
//!  handle_membership(now, members) ─┐   ┌─ status()        quorate, votes, quorum, flags
//!  handle_timeout(now)             ─┼──>├─ poll_event()    Quorate / Inquorate / ExpectedVotes
//!  handle_peer_quorate(peer, ev)   ─┤   └─ poll_timeout()  last_man_standing window deadline
//!  cancel_wait_for_all()           ─┘
//! ```
//!
//! There is no clock inside: `now` is an argument, and the only timer (the
//! `last_man_standing_window`) is reported through [`Quorum::poll_timeout`] and fired
//! by [`Quorum::handle_timeout`].
//!
//! # What follows Corosync exactly, and what is simplified
//!
//! The arithmetic (`calculate_quorum`, `are_we_quorate` and the
//! `last_man_standing` trigger in `votequorum_sync_init` of Corosync 3's
//! `exec/votequorum.c`) is reproduced rule for rule, with one deliberate deviation
//! (the first point), including behaviours that surprise people:
//!
//! * with `wait_for_all`, losing quorum re-arms the wait: a partition that became
//!   inquorate needs all expected votes present at once again (or a quorate peer, see
//!   [`Quorum::handle_peer_quorate`], or [`Quorum::cancel_wait_for_all`]);
//! * `auto_tie_breaker` applies to an exact half of the expected votes only
//!   (Corosync's test, `total == expected / 2`, also admits half − 1 when expected
//!   votes are odd, which with unequal votes lets both sides of a split be quorate:
//!   votes {1, 1} against {2, 1} of 5; this module does not);
//! * `auto_tie_breaker` only rescues a partition that *split off* from a larger
//!   configuration (fewer members than before, and the missing part too small to be
//!   quorate itself). A partition that *grew* to exactly half at cold start is not
//!   rescued; with `lowest`/`highest` the tie-breaker node is the lowest/highest node
//!   id of the last configuration in which this node was quorate.
//!
//! Corosync exchanges a `nodeinfo` message per node (votes, expected votes, flags)
//! over the ring after each configuration change; here the caller passes each
//! member's votes with the configuration, and reports quorate peers with
//! [`Quorum::handle_peer_quorate`]. Quorum devices, `allow_downscale` and
//! `expected_votes_tracking` are not implemented.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::{Error, NodeId, Result};

/// Corosync's default `last_man_standing_window`: 10 seconds.
pub const DEFAULT_LAST_MAN_STANDING_WINDOW: Duration = Duration::from_millis(10_000);

/// Which partition wins an exact 50/50 split (`quorum.auto_tie_breaker_node`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TieBreaker {
    /// `lowest` (default): the partition with the lowest node id of the last quorate
    /// configuration.
    #[default]
    Lowest,
    /// `highest`: the partition with the highest node id of the last quorate
    /// configuration.
    Highest,
    /// A list of node ids, evaluated in order: the first listed node present in this
    /// partition decides, unless an earlier listed node was in the previous
    /// configuration (it may be in the other half, so quorum is denied).
    List(Vec<NodeId>),
}

impl fmt::Display for TieBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TieBreaker::Lowest => f.write_str("lowest"),
            TieBreaker::Highest => f.write_str("highest"),
            TieBreaker::List(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", id.0)?;
                }
                Ok(())
            }
        }
    }
}

/// The `quorum { }` section (and the nodelist's `quorum_votes`) of `corosync.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `nodelist { node { nodeid, quorum_votes } }`: every configured node with its
    /// votes (Corosync's default is 1 vote per node). Expected votes default to the
    /// sum. May be empty when `expected_votes` is set.
    pub nodelist: BTreeMap<NodeId, u32>,
    /// `quorum.expected_votes`: overrides the sum of the nodelist's votes.
    pub expected_votes: Option<u32>,
    /// `quorum.two_node`: a two-node cluster stays quorate with one vote. Implies
    /// `wait_for_all` unless that is set to `Some(false)` explicitly. Only active
    /// while at most two nodes are members.
    pub two_node: bool,
    /// `quorum.wait_for_all`: `None` means the default (on with `two_node`, else
    /// off). When on, the cluster becomes quorate for the first time only after all
    /// expected votes were present at once.
    pub wait_for_all: Option<bool>,
    /// `quorum.last_man_standing`: after `last_man_standing_window` without further
    /// change, recalculate expected votes down to the current member count.
    pub last_man_standing: bool,
    /// `quorum.last_man_standing_window` (default 10 s).
    pub last_man_standing_window: Duration,
    /// `quorum.auto_tie_breaker`: on an exact 50/50 split, the half holding the
    /// tie-breaker node stays quorate.
    pub auto_tie_breaker: bool,
    /// `quorum.auto_tie_breaker_node`: `lowest` (default), `highest` or a list.
    pub auto_tie_breaker_node: TieBreaker,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            nodelist: BTreeMap::new(),
            expected_votes: None,
            two_node: false,
            wait_for_all: None,
            last_man_standing: false,
            last_man_standing_window: DEFAULT_LAST_MAN_STANDING_WINDOW,
            auto_tie_breaker: false,
            auto_tie_breaker_node: TieBreaker::Lowest,
        }
    }
}

impl QuorumConfig {
    /// A configuration from a nodelist where every node has one vote.
    pub fn with_nodes(ids: impl IntoIterator<Item = u32>) -> Self {
        QuorumConfig {
            nodelist: ids.into_iter().map(|id| (NodeId(id), 1)).collect(),
            ..QuorumConfig::default()
        }
    }

    /// A configuration without nodelist: `quorum.expected_votes` only.
    pub fn with_expected_votes(expected_votes: u32) -> Self {
        QuorumConfig {
            expected_votes: Some(expected_votes),
            ..QuorumConfig::default()
        }
    }

    /// `wait_for_all` as in effect: explicit value, else on with `two_node`.
    pub fn effective_wait_for_all(&self) -> bool {
        self.wait_for_all.unwrap_or(self.two_node)
    }

    /// Expected votes at start: `quorum.expected_votes`, else the nodelist's sum.
    pub fn initial_expected_votes(&self) -> u32 {
        self.expected_votes.unwrap_or_else(|| {
            self.nodelist
                .values()
                .fold(0u32, |a, v| a.saturating_add(*v))
        })
    }

    /// Checks the combination of options; every error names the field and the fix.
    pub fn validate(&self) -> Result<()> {
        let cfg = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if self.nodelist.is_empty() && self.expected_votes.is_none() {
            return cfg(
                "quorum.expected_votes",
                "neither a nodelist nor quorum.expected_votes is configured; set one of them"
                    .into(),
            );
        }
        if self.expected_votes == Some(0) {
            return cfg(
                "quorum.expected_votes",
                "is 0; it must be at least 1 (or leave it unset to use the nodelist's votes)"
                    .into(),
            );
        }
        let expected = self.initial_expected_votes();
        if expected == 0 {
            return cfg(
                "nodelist.node.quorum_votes",
                "all nodes have 0 votes; at least one node needs a vote".into(),
            );
        }
        if self.two_node {
            if self.nodelist.len() > 2 {
                return cfg(
                    "quorum.two_node",
                    format!(
                        "is set but the nodelist has {} nodes; two_node is only for exactly 2 \
                         nodes (remove it: a cluster of 3 or more keeps quorum by majority)",
                        self.nodelist.len()
                    ),
                );
            }
            if expected != 2 {
                return cfg(
                    "quorum.two_node",
                    format!(
                        "is set but expected votes are {expected}; two_node needs exactly 2 \
                         (two nodes with one vote each)"
                    ),
                );
            }
            if self.auto_tie_breaker {
                return cfg(
                    "quorum.auto_tie_breaker",
                    "cannot be combined with two_node: two_node decides a split by a fence \
                     race, auto_tie_breaker by node id; remove one of them"
                        .into(),
                );
            }
            if self.last_man_standing {
                return cfg(
                    "quorum.last_man_standing",
                    "cannot be combined with two_node: two_node already keeps the survivor \
                     quorate, there is nothing left to recalculate; remove last_man_standing"
                        .into(),
                );
            }
        }
        if self.last_man_standing {
            if let Some((id, votes)) = self.nodelist.iter().find(|(_, v)| **v != 1) {
                return cfg(
                    "nodelist.node.quorum_votes",
                    format!(
                        "{id} has {votes} votes, but last_man_standing requires every node to \
                         have exactly 1 vote; set quorum_votes: 1 or disable last_man_standing"
                    ),
                );
            }
            if self.last_man_standing_window.is_zero() {
                return cfg(
                    "quorum.last_man_standing_window",
                    "is 0 ms; use a window longer than a failover (Corosync's default is \
                     10000 ms)"
                        .into(),
                );
            }
        }
        if self.auto_tie_breaker {
            if expected % 2 == 1 && !self.effective_wait_for_all() {
                let also = if self.last_man_standing {
                    " (with last_man_standing too, Corosync refuses to start)"
                } else {
                    ""
                };
                return cfg(
                    "quorum.wait_for_all",
                    format!(
                        "auto_tie_breaker with an odd number of expected votes ({expected}) \
                         needs wait_for_all: 1, so that an isolated half+1 without the \
                         tie-breaker node cannot take quorum after a restart{also}"
                    ),
                );
            }
            if let TieBreaker::List(ids) = &self.auto_tie_breaker_node {
                if ids.is_empty() {
                    return cfg(
                        "quorum.auto_tie_breaker_node",
                        "is an empty list; use lowest, highest or a list of node ids".into(),
                    );
                }
                let mut seen = BTreeSet::new();
                for id in ids {
                    if !seen.insert(*id) {
                        return cfg(
                            "quorum.auto_tie_breaker_node",
                            format!("lists {id} twice; list each node once"),
                        );
                    }
                    if !self.nodelist.is_empty() && !self.nodelist.contains_key(id) {
                        return cfg(
                            "quorum.auto_tie_breaker_node",
                            format!("lists {id}, which is not in the nodelist"),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// One member of a configuration, with the votes it casts (`quorum_votes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The member.
    pub node: NodeId,
    /// Its votes.
    pub votes: u32,
}

impl Member {
    /// A member with the given votes.
    pub fn new(node: u32, votes: u32) -> Self {
        Member {
            node: NodeId(node),
            votes,
        }
    }
}

/// The flags `corosync-quorumtool -s` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuorumFlags {
    /// `2Node`: two_node is configured and in effect (at most two members).
    pub two_node: bool,
    /// `Quorate`.
    pub quorate: bool,
    /// `WaitForAll`: wait_for_all is configured.
    pub wait_for_all: bool,
    /// Still waiting for all nodes (`wait_for_all_status`).
    pub waiting_for_all: bool,
    /// `LastManStanding`: configured and in effect (it switches itself off when a
    /// member has more than one vote).
    pub last_man_standing: bool,
    /// `AutoTieBreaker`.
    pub auto_tie_breaker: bool,
}

impl fmt::Display for QuorumFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if self.two_node {
            names.push("2Node");
        }
        if self.quorate {
            names.push("Quorate");
        }
        if self.wait_for_all {
            names.push("WaitForAll");
        }
        if self.last_man_standing {
            names.push("LastManStanding");
        }
        if self.auto_tie_breaker {
            names.push("AutoTieBreaker");
        }
        f.write_str(&names.join(" "))
    }
}

/// A snapshot of the quorum state (what `corosync-quorumtool -s` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// Whether this partition may operate.
    pub quorate: bool,
    /// Sum of the current members' votes.
    pub total_votes: u32,
    /// Expected votes in effect.
    pub expected_votes: u32,
    /// Votes needed to be quorate.
    pub quorum: u32,
    /// Current members, ascending.
    pub members: Vec<NodeId>,
    /// Flags.
    pub flags: QuorumFlags,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumEvent {
    /// The partition became quorate.
    Quorate(QuorumStatus),
    /// The partition lost quorum (or is still waiting for all nodes).
    Inquorate(QuorumStatus),
    /// Expected votes changed (raised by the votes present, lowered by
    /// last_man_standing or by a quorate peer).
    ExpectedVotes {
        /// Before.
        old: u32,
        /// After.
        new: u32,
    },
}

/// The votequorum state machine of one node.
#[derive(Debug, Clone)]
pub struct Quorum {
    config: QuorumConfig,
    wait_for_all: bool,
    last_man_standing: bool,
    members: BTreeMap<NodeId, u32>,
    previous_members: BTreeSet<NodeId>,
    expected_votes: u32,
    quorum: u32,
    quorate: bool,
    wait_for_all_status: bool,
    lowest_node_id: Option<NodeId>,
    highest_node_id: Option<NodeId>,
    lms_deadline: Option<Instant>,
    events: VecDeque<QuorumEvent>,
}

impl Quorum {
    /// Validates the configuration and starts with no members (inquorate).
    pub fn new(config: QuorumConfig) -> Result<Self> {
        config.validate()?;
        let expected_votes = config.initial_expected_votes();
        let mut q = Quorum {
            wait_for_all: config.effective_wait_for_all(),
            last_man_standing: config.last_man_standing,
            members: BTreeMap::new(),
            previous_members: BTreeSet::new(),
            expected_votes,
            quorum: 0,
            quorate: false,
            wait_for_all_status: config.effective_wait_for_all(),
            lowest_node_id: None,
            highest_node_id: None,
            lms_deadline: None,
            events: VecDeque::new(),
            config,
        };
        q.quorum = q.calculate_quorum(false, None, 0);
        Ok(q)
    }

    /// The configuration in force.
    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }

    /// A new configuration was installed: `members` are all members of this
    /// partition (including this node) with their votes. Duplicate ids: the last wins.
    pub fn handle_membership(&mut self, now: Instant, members: &[Member]) {
        let new: BTreeMap<NodeId, u32> = members.iter().map(|m| (m.node, m.votes)).collect();
        let left = self.members.keys().any(|id| !new.contains_key(id));

        if self.last_man_standing {
            if let Some(m) = new.values().find(|v| **v > 1) {
                tracing::warn!(
                    votes = *m,
                    "last_man_standing needs every node to have 1 vote; disabling it"
                );
                self.last_man_standing = false;
                self.lms_deadline = None;
            }
        }

        // votequorum_sync_init: (re)arm the LMS timer with the quorum in force
        // before this change.
        if self.last_man_standing {
            let count = u32::try_from(new.len()).unwrap_or(u32::MAX);
            let current: BTreeSet<NodeId> = new.keys().copied().collect();
            let previous: BTreeSet<NodeId> = self.members.keys().copied().collect();
            if (count >= self.quorum && left)
                || (count <= self.quorum
                    && self.config.auto_tie_breaker
                    && self.tie_breaker_present(&current, &previous))
            {
                self.lms_deadline = Some(now + self.config.last_man_standing_window);
            }
        }

        self.previous_members = self.members.keys().copied().collect();
        self.members = new;
        self.recalculate(false, false);
    }

    /// A quorate peer reported its expected votes (Corosync's `nodeinfo` with the
    /// QUORATE flag, sent by every node after each configuration change). If this
    /// node is not quorate it adopts the peer's expected votes (which may be lower,
    /// after last_man_standing) and stops waiting for all nodes, so that a node
    /// rejoining a running cluster follows it. Ignored if `peer` is not a member.
    pub fn handle_peer_quorate(&mut self, peer: NodeId, peer_expected_votes: u32) {
        if !self.members.contains_key(&peer) || peer_expected_votes == 0 {
            return;
        }
        let mut allow_decrease = false;
        if !self.quorate {
            allow_decrease = true;
            self.set_expected(peer_expected_votes);
        }
        self.wait_for_all_status = false;
        self.recalculate(allow_decrease, false);
    }

    /// Operator override (`corosync-cmapctl -s quorum.cancel_wait_for_all u8 1`):
    /// stop waiting for all nodes.
    pub fn cancel_wait_for_all(&mut self) {
        self.wait_for_all_status = false;
        self.recalculate(false, false);
    }

    /// Fires the last_man_standing window if it is due: if still quorate, expected
    /// votes are recalculated down to the current member count.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.lms_deadline {
            Some(deadline) if deadline <= now => {
                self.lms_deadline = None;
                if self.quorate {
                    self.recalculate(true, true);
                }
            }
            _ => {}
        }
    }

    /// The next deadline (the last_man_standing window), if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lms_deadline
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<QuorumEvent> {
        self.events.pop_front()
    }

    /// Whether this partition is quorate.
    pub fn is_quorate(&self) -> bool {
        self.quorate
    }

    /// The current state.
    pub fn status(&self) -> QuorumStatus {
        QuorumStatus {
            quorate: self.quorate,
            total_votes: self.total_votes(),
            expected_votes: self.expected_votes,
            quorum: self.quorum,
            members: self.members.keys().copied().collect(),
            flags: QuorumFlags {
                two_node: self.config.two_node && self.members.len() <= 2,
                quorate: self.quorate,
                wait_for_all: self.wait_for_all,
                waiting_for_all: self.wait_for_all && self.wait_for_all_status,
                last_man_standing: self.last_man_standing,
                auto_tie_breaker: self.config.auto_tie_breaker,
            },
        }
    }

    fn total_votes(&self) -> u32 {
        self.members
            .values()
            .fold(0u32, |a, v| a.saturating_add(*v))
    }

    fn set_expected(&mut self, new: u32) {
        if new != self.expected_votes {
            self.events.push_back(QuorumEvent::ExpectedVotes {
                old: self.expected_votes,
                new,
            });
            self.expected_votes = new;
        }
    }

    /// `calculate_quorum`: `max_expected` forces expected votes (last_man_standing).
    fn calculate_quorum(&self, allow_decrease: bool, max_expected: Option<u32>, total: u32) -> u32 {
        let highest_expected = max_expected.unwrap_or(self.expected_votes);
        // "This quorum calculation is taken from the OpenVMS Cluster Systems manual."
        let q1 = highest_expected / 2 + 1;
        let q2 = total / 2 + 1;
        let mut quorum = q1.max(q2);
        if !allow_decrease {
            quorum = quorum.max(self.quorum);
        }
        if self.config.two_node && self.members.len() <= 2 {
            quorum = 1;
        }
        quorum
    }

    /// `recalculate_quorum` + `are_we_quorate`.
    fn recalculate(&mut self, allow_decrease: bool, by_current_nodes: bool) {
        let total = self.total_votes();
        // Keep expected votes at the highest number of votes seen.
        if total > self.expected_votes {
            self.set_expected(total);
        }
        let max_expected = if by_current_nodes {
            Some(u32::try_from(self.members.len()).unwrap_or(u32::MAX))
        } else {
            None
        };
        self.quorum = self.calculate_quorum(allow_decrease, max_expected, total);
        if let Some(n) = max_expected {
            self.set_expected(n);
        }
        let quorate = self.are_we_quorate(total);
        if quorate != self.quorate {
            self.quorate = quorate;
            let status = self.status();
            tracing::info!(
                quorate,
                total_votes = status.total_votes,
                expected_votes = status.expected_votes,
                quorum = status.quorum,
                "quorum {}",
                if quorate { "regained" } else { "lost" }
            );
            self.events.push_back(if quorate {
                QuorumEvent::Quorate(status)
            } else {
                QuorumEvent::Inquorate(status)
            });
        }
    }

    fn are_we_quorate(&mut self, total: u32) -> bool {
        if self.wait_for_all && self.wait_for_all_status {
            if total != self.expected_votes {
                return false;
            }
            self.wait_for_all_status = false;
        }
        let mut quorate = total >= self.quorum;
        if quorate {
            self.lowest_node_id = self.members.keys().next().copied();
            self.highest_node_id = self.members.keys().next_back().copied();
        }
        // Corosync tests `total == expected / 2`, which with an odd expected count
        // also admits "half - 1"; with unequal votes that side and a quorate other
        // side can coexist (votes 1,1 | 2,1 of 5). Only an exact half is a tie.
        if !quorate
            && self.config.auto_tie_breaker
            && u64::from(total) * 2 == u64::from(self.expected_votes)
        {
            // Only a split: this partition shrank, and the missing part is too small
            // to be quorate on its own.
            let previous = self.previous_members.len();
            let current = self.members.len();
            let current_set: BTreeSet<NodeId> = self.members.keys().copied().collect();
            if current <= previous
                && u32::try_from(previous - current).unwrap_or(u32::MAX) < self.quorum
                && self.tie_breaker_present(&current_set, &self.previous_members)
            {
                quorate = true;
            }
        }
        if self.wait_for_all {
            self.wait_for_all_status = !quorate;
        }
        quorate
    }

    /// `check_auto_tie_breaker`.
    fn tie_breaker_present(&self, current: &BTreeSet<NodeId>, previous: &BTreeSet<NodeId>) -> bool {
        match &self.config.auto_tie_breaker_node {
            TieBreaker::Lowest => self.lowest_node_id.is_some_and(|id| current.contains(&id)),
            TieBreaker::Highest => self.highest_node_id.is_some_and(|id| current.contains(&id)),
            TieBreaker::List(ids) => {
                for (i, id) in ids.iter().enumerate() {
                    if current.contains(id) {
                        // An earlier listed node that was with us before may be in
                        // the other half: we cannot be sure we hold the tie-breaker.
                        return !ids[..i].iter().any(|earlier| previous.contains(earlier));
                    }
                }
                false
            }
        }
    }
}
