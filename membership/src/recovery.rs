//! RECOVERY and the entry into OPERATIONAL.
//!
//! On entering RECOVERY a node computes the **transitional configuration**: the
//! new ring's members whose old ring (from the commit token) is its own old ring.
//! The ordering layer re-sends old-ring messages under the new ring's token
//! (`retrans_flg` stays set while any node still has some). Once the flag has
//! been clear for 2 of this node's visits, `install_seq = token.seq`; after 2
//! more visits with `install_seq <= token.aru` the node enters OPERATIONAL and
//! delivers the transitional then the regular configuration (see
//! [`crate::configuration`]). A token loss in RECOVERY restores the old ring's
//! state (through the hook) and returns to GATHER.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::configuration::{ConfigurationChange, ConfigurationKind, Event};
use crate::hook::{OperationalInfo, OrderingHook, RecoveryInfo};
use crate::srp::{MembState, Totem};
use crate::timer::Timer;
use crate::wire::{Body, CommitToken, OrfToken};
use crate::NodeId;

impl<H: OrderingHook> Totem<H> {
    /// Corosync's `memb_state_recovery_enter`.
    pub(crate) fn recovery_enter(&mut self, now: Instant, mut ct: CommitToken) {
        let old = self.oper_ring_id;
        self.trans_memb = ct
            .members
            .iter()
            .zip(&ct.entries)
            .filter(|(_, e)| e.is_some_and(|e| e.old_ring_id == old))
            .map(|(m, _)| *m)
            .collect();
        if !self.trans_memb.contains(&self.me) {
            // Cannot happen: our own entry carries our old ring.
            self.trans_memb.push(self.me);
            self.trans_memb.sort();
        }
        self.state = MembState::Recovery;
        self.my_token_seq = None;
        self.retrans_flg_count = 0;
        self.my_set_retrans_flg = false;
        self.install_seq = 0;
        self.recovery_received_flg = false;
        self.rotation_counter = 0;
        self.originated_orf_token = false;
        self.my_last_seq = 0;
        self.my_seq_unchanged = 0;
        self.held_token = None;
        self.token_held_elsewhere = false;
        self.my_last_aru = 0;
        self.my_aru_count = 0;
        self.hook.on_recovery_enter(&RecoveryInfo {
            ring_id: self.my_ring_id,
            old_ring_id: old,
            members: &ct.members,
            transitional: &self.trans_memb,
            entries: &ct.entries,
        });
        // Second rotation: pass the commit token on.
        ct.token_seq += 1;
        let next = self.next_in(&ct.members);
        let payload = self.commit_token_payload(self.my_ring_id, &ct);
        self.send_token(next, payload, true);
        self.timers.set(Timer::TokenLoss, now + self.cfg.token);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
    }

    /// The representative starts the new ring's ORF token (Corosync's `orf_token_send_initial`).
    pub(crate) fn orf_token_send_initial(&mut self, now: Instant) {
        let token = OrfToken {
            token_seq: 0,
            seq: 0,
            aru: 0,
            aru_addr: Some(self.me),
            backlog: 0,
            fcc: 0,
            retrans_flg: true,
            rtr_list: Vec::new(),
        };
        self.my_set_retrans_flg = true;
        let next = self.next_in(&self.new_memb.clone());
        let payload = self.message(self.my_ring_id, Body::OrfToken(token));
        self.send_token(next, payload, true);
        self.timers.set(Timer::TokenLoss, now + self.cfg.token);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
    }

    /// RECOVERY's per-visit bookkeeping; may enter OPERATIONAL.
    pub(crate) fn recovery_token_visit(&mut self, now: Instant, token: &mut OrfToken) {
        if self.hook.retrans_pending() {
            if !token.retrans_flg {
                token.retrans_flg = true;
                self.my_set_retrans_flg = true;
            }
        } else if token.retrans_flg && self.my_set_retrans_flg {
            token.retrans_flg = false;
            self.my_set_retrans_flg = false;
        }
        if token.retrans_flg {
            self.retrans_flg_count = 0;
        } else {
            self.retrans_flg_count += 1;
        }
        if self.retrans_flg_count == 2 {
            self.install_seq = token.seq;
        }
        if self.retrans_flg_count >= 2
            && !self.recovery_received_flg
            && self.install_seq <= self.hook.my_aru()
        {
            self.recovery_received_flg = true;
        }
        if self.retrans_flg_count >= 3 && self.install_seq <= token.aru {
            self.rotation_counter += 1;
        } else {
            self.rotation_counter = 0;
        }
        if self.rotation_counter == 2 {
            self.rotation_counter = 0;
            self.retrans_flg_count = 0;
            self.operational_enter(now);
        }
    }

    /// Corosync's `memb_state_operational_enter`: deliver the EVS pair.
    pub(crate) fn operational_enter(&mut self, _now: Instant) {
        let old_memb = std::mem::take(&mut self.memb);
        let new: BTreeSet<NodeId> = self.new_memb.iter().copied().collect();
        let trans: BTreeSet<NodeId> = self.trans_memb.iter().copied().collect();
        let left: Vec<NodeId> = old_memb.difference(&trans).copied().collect();
        let left_gracefully: Vec<NodeId> = left
            .iter()
            .copied()
            .filter(|n| self.leave_set.contains(n))
            .collect();
        let joined: Vec<NodeId> = new.difference(&trans).copied().collect();
        self.hook.on_operational_enter(&OperationalInfo {
            ring_id: self.my_ring_id,
            members: &self.new_memb,
            transitional: &self.trans_memb,
        });
        let old_ring_id = self.oper_ring_id;
        self.events
            .push_back(Event::Configuration(ConfigurationChange {
                kind: ConfigurationKind::Transitional,
                ring_id: self.my_ring_id,
                old_ring_id,
                members: self.trans_memb.clone(),
                joined: Vec::new(),
                left: left.clone(),
                left_gracefully: left_gracefully.clone(),
            }));
        self.events
            .push_back(Event::Configuration(ConfigurationChange {
                kind: ConfigurationKind::Regular,
                ring_id: self.my_ring_id,
                old_ring_id,
                members: self.new_memb.clone(),
                joined: joined.clone(),
                left: left.clone(),
                left_gracefully,
            }));
        tracing::info!(
            node = self.me.0,
            ring = %self.my_ring_id,
            members = ?self.new_memb,
            ?joined,
            ?left,
            "a new membership was formed"
        );
        self.stats.rings += 1;
        self.memb = new.clone();
        self.proc_set = new;
        self.failed_set.clear();
        self.consensus.clear();
        self.leave_set.retain(|n| !self.memb.contains(n));
        self.oper_ring_id = self.my_ring_id;
        self.failed_to_recv = false;
        self.state = MembState::Operational;
        self.my_aru_count = 0;
        self.startup_grace = None;
    }
}
