//! GATHER: JOIN messages, consensus, and halyard's fast failover.
//!
//! In GATHER a node multicasts a JOIN with its *proc* set (nodes it believes
//! belong in the new ring) and *failed* set (nodes it has given up on), then
//! again every `join` ms. On each JOIN (Corosync's `memb_join_process`):
//!
//! * equal sets → the sender agrees (is put in the consensus set);
//! * subsets of ours → nothing new, ignored;
//! * the sender is in our failed set → ignored;
//! * otherwise merge: proc ∪= theirs; if they list us as failed we fail them,
//!   else failed ∪= theirs (only nodes outside our own ring when the sender is
//!   not of our ring, so a foreign node cannot make us drop our ring's members);
//!   then re-enter GATHER (new JOIN, consensus timer restarted).
//!
//! **Consensus**: every node of proc − failed has sent a JOIN with our sets. The
//! lowest node id of proc − failed, the representative, then builds the commit
//! token. If the `consensus` timer expires first, every node that has not agreed
//! is put in the failed set and GATHER starts again.
//!
//! **Fast failover** (halyard, not in Corosync): Corosync waits out the whole
//! consensus timeout for a crashed node even when every other node agreed after
//! one JOIN round. Here a node *c* of proc − failed is failed early when
//!
//! 0. *c* was a member of this node's last ring (failover, not a merge: nodes
//!    of other rings always get the full consensus timeout);
//! 1. *c* is **silent**: nothing at all has been heard from it since this node
//!    entered GATHER, and nothing for at least `fast_failover_silence`
//!    (default `token_retransmit`, longer than the idle token hold, so a live
//!    member of a held ring is always heard within it);
//! 2. this node has been in GATHER for at least `fast_failover_wait` (default
//!    `join / 2`), so a live *c* has had many round trips to answer our JOIN; and
//! 3. **every** other node of proc − failed has already sent a JOIN with exactly
//!    our sets (so all the nodes we hear agree, and none of them has news of *c*).
//!
//! A node that, within `consensus` after being failed this way, sends anything
//! still stamped with the ring we shared proved slow, not dead (a crashed and
//! restarted node speaks with a new ring id): it is exempt from fast failover until a consensus timeout
//! fails it (then it was really unresponsive).
//!
//! This is the consensus timeout's own action (fail those that have not agreed),
//! applied earlier and only to silent nodes. It cannot break Totem's safety,
//! which never depends on when the consensus timer fires: membership agreement
//! comes from the commit token. The cost of a wrong guess (a live node that was
//! merely slow) is a transient extra ring that merge detection heals, the same
//! outcome as a Corosync consensus timeout; the simulator checks both.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::hook::OrderingHook;
use crate::srp::{MembState, Totem};
use crate::timer::Timer;
use crate::wire::{Body, Header, Join};
use crate::NodeId;

impl<H: OrderingHook> Totem<H> {
    /// Enters (or re-enters) GATHER (Corosync's `memb_state_gather_enter`).
    pub(crate) fn gather_enter(&mut self, now: Instant, why: &str) {
        if self.state != MembState::Gather {
            self.gather_started = now;
            tracing::debug!(node = self.me.0, from = ?self.state, why, "entering GATHER");
        }
        self.proc_set.insert(self.me);
        self.failed_set.remove(&self.me);
        debug_assert!(!self.failed_set.contains(&self.me));
        self.state = MembState::Gather;
        self.send_join();
        self.timers.set(Timer::Join, now + self.cfg.join);
        self.timers.set(Timer::Consensus, now + self.cfg.consensus);
        self.timers.stop(Timer::TokenLoss);
        self.timers.stop(Timer::TokenRetransmit);
        self.timers.stop(Timer::TokenHold);
        self.timers.stop(Timer::MergeDetect);
        self.timers.stop(Timer::FastFailover);
        self.merge_detect_outstanding = false;
        self.held_token = None;
        self.token_held_elsewhere = false;
        self.consensus.clear();
        self.consensus.insert(self.me);
        // Our own JOIN "arrives" at once: this is where a one-node ring forms.
        self.check_consensus(now);
        self.fast_failover_check(now);
    }

    fn send_join(&mut self) {
        let join = Join {
            ring_seq: self.my_ring_id.seq,
            proc_list: self.proc_set.iter().copied().collect(),
            failed_list: self.failed_set.iter().copied().collect(),
        };
        self.multicast(Body::Join(join));
    }

    pub(crate) fn join_timeout(&mut self, now: Instant) {
        if self.state == MembState::Gather {
            self.send_join();
            self.timers
                .set(crate::timer::Timer::Join, now + self.cfg.join);
            self.check_consensus(now);
        }
    }

    /// A JOIN arrived (Corosync's `message_handler_memb_join`).
    pub(crate) fn handle_join(&mut self, now: Instant, header: Header, mut join: Join) {
        let s = header.sender;
        if s == self.me {
            return;
        }
        // Only configured nodes can be members.
        join.proc_list.retain(|n| self.nodes.contains(n));
        join.failed_list.retain(|n| self.nodes.contains(n));
        self.leave_set.remove(&s);
        self.highest_seq = self.highest_seq.max(join.ring_seq);
        let p: BTreeSet<NodeId> = join.proc_list.iter().copied().collect();
        let f: BTreeSet<NodeId> = join.failed_list.iter().copied().collect();
        // A JOIN that gives up on us but was sent from an older ring than ours is
        // stale (it predates the ring we formed since): acting on it would fail
        // the sender in return and let the two sides keep failing each other
        // with delayed JOINs. If the sender really excludes us, it will not agree
        // with us and the consensus timeout settles it.
        if f.contains(&self.me) && join.ring_seq < self.my_ring_id.seq {
            return;
        }
        match self.state {
            MembState::Operational => {
                // A stale JOIN from a member of our ring (it has not seen this ring yet).
                if self.memb.contains(&s) && join.ring_seq < self.my_ring_id.seq {
                    return;
                }
                // A node that has already given up on us (or, if it is of another
                // ring, on any member of ours) will form its ring without us; we
                // merge with it later through MERGE_DETECT, when its failed set is
                // empty. Reacting now would let stale JOINs cascade into mutual
                // failures.
                if f.contains(&self.me)
                    || (!self.memb.contains(&s) && f.iter().any(|n| self.memb.contains(n)))
                {
                    return;
                }
                self.merge_join(s, &p, &f);
                self.gather_enter(now, "JOIN during OPERATIONAL");
                self.record_agreement(now, s, &p, &f);
            }
            MembState::Gather => self.join_process(now, s, &p, &f),
            MembState::Commit | MembState::Recovery => {
                if self.new_memb.contains(&s) && join.ring_seq >= self.my_ring_id.seq {
                    if self.state == MembState::Recovery {
                        self.hook.on_recovery_abort();
                    }
                    if !self.failed_set.contains(&s) {
                        self.merge_join(s, &p, &f);
                    }
                    self.gather_enter(now, "JOIN of a new member during COMMIT/RECOVERY");
                    self.record_agreement(now, s, &p, &f);
                }
            }
            MembState::Left => {}
        }
    }

    /// Corosync's `memb_join_process`, in GATHER.
    fn join_process(
        &mut self,
        now: Instant,
        s: NodeId,
        p: &BTreeSet<NodeId>,
        f: &BTreeSet<NodeId>,
    ) {
        if *p == self.proc_set && *f == self.failed_set {
            self.record_agreement(now, s, p, f);
            return;
        }
        if p.is_subset(&self.proc_set) && f.is_subset(&self.failed_set) {
            return;
        }
        if self.failed_set.contains(&s) {
            return;
        }
        if self.merge_join(s, p, f) {
            self.gather_enter(now, "JOIN with new proc/failed nodes");
            // If their sets were a superset of ours, we now hold exactly their sets.
            self.record_agreement(now, s, p, f);
        }
    }

    /// Merges a JOIN's sets into ours; returns whether ours changed.
    fn merge_join(&mut self, s: NodeId, p: &BTreeSet<NodeId>, f: &BTreeSet<NodeId>) -> bool {
        let before = (self.proc_set.len(), self.failed_set.len());
        self.proc_set.extend(p.iter().copied());
        self.proc_set.insert(s);
        if f.contains(&self.me) {
            self.failed_set.insert(s);
        } else if self.memb.contains(&s) {
            self.failed_set.extend(f.iter().copied());
        } else {
            self.failed_set
                .extend(f.iter().copied().filter(|n| !self.memb.contains(n)));
        }
        self.failed_set.remove(&self.me);
        (self.proc_set.len(), self.failed_set.len()) != before
    }

    /// The sender's JOIN carried exactly our sets: it agrees.
    fn record_agreement(
        &mut self,
        now: Instant,
        s: NodeId,
        p: &BTreeSet<NodeId>,
        f: &BTreeSet<NodeId>,
    ) {
        if self.state != MembState::Gather || *p != self.proc_set || *f != self.failed_set {
            return;
        }
        self.consensus.insert(s);
        self.check_consensus(now);
        if self.state == MembState::Gather {
            self.fast_failover_check(now);
        }
    }

    /// The candidates for the new ring: proc − failed.
    pub(crate) fn candidates(&self) -> Vec<NodeId> {
        self.proc_set
            .difference(&self.failed_set)
            .copied()
            .collect()
    }

    /// Corosync's `memb_consensus_agreed` + `memb_lowest_in_config`.
    pub(crate) fn check_consensus(&mut self, now: Instant) {
        if self.state != MembState::Gather {
            return;
        }
        if self.startup_grace.is_some_and(|g| now < g) {
            return;
        }
        let cands = self.candidates();
        if cands.iter().all(|n| self.consensus.contains(n)) && cands.first() == Some(&self.me) {
            self.commit_token_create(now, cands);
        }
    }

    pub(crate) fn consensus_timeout(&mut self, now: Instant) {
        if self.state != MembState::Gather {
            return;
        }
        let cands = self.candidates();
        let missing: Vec<NodeId> = cands
            .iter()
            .copied()
            .filter(|n| !self.consensus.contains(n))
            .collect();
        if missing.is_empty() {
            // Everyone agreed but no commit token came: try again, and give up
            // on the silent representative at the next expiry.
            self.consensus.clear();
            self.consensus.insert(self.me);
            self.timers.set(Timer::Consensus, now + self.cfg.consensus);
            return;
        }
        tracing::info!(
            node = self.me.0,
            ?missing,
            "consensus timeout: failing nodes that did not agree"
        );
        for m in &missing {
            self.ff_exempt.remove(m);
        }
        self.failed_set.extend(missing);
        self.failed_set.remove(&self.me);
        self.gather_enter(now, "consensus timeout");
    }

    /// Halyard's fast failover (see the module docs). Fails the silent nodes
    /// when the rule holds now, or arms the timer for when it could.
    pub(crate) fn fast_failover_check(&mut self, now: Instant) {
        self.timers.stop(Timer::FastFailover);
        if self.state != MembState::Gather || !self.cfg.fast_failover {
            return;
        }
        let mut silent = Vec::new();
        let mut eligible_at = self.gather_started + self.cfg.fast_failover_wait;
        for c in self.candidates() {
            if c == self.me || self.consensus.contains(&c) {
                continue;
            }
            if !self.memb.contains(&c) {
                return; // not of our ring (a merge): normal consensus
            }
            if self.ff_exempt.contains(&c) {
                return; // proven slow, not dead: normal consensus
            }
            match self.last_heard.get(&c) {
                Some(t) if *t >= self.gather_started => return, // heard, not agreeing: normal consensus
                Some(t) => eligible_at = eligible_at.max(*t + self.cfg.fast_failover_silence),
                None => {}
            }
            silent.push(c);
        }
        if silent.is_empty() {
            return;
        }
        if eligible_at > now {
            self.timers.set(Timer::FastFailover, eligible_at);
            return;
        }
        tracing::info!(
            node = self.me.0,
            ?silent,
            "fast failover: failing silent nodes, all others agree"
        );
        self.stats.fast_failovers += 1;
        for c in &silent {
            self.ff_failed.insert(*c, (now, self.oper_ring_id));
        }
        self.failed_set.extend(silent);
        self.gather_enter(now, "fast failover");
    }
}
