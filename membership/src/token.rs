//! The ORF token: rotation, idle hold, retransmission, loss, fail-to-receive,
//! and the MCAST path.
//!
//! A node accepts a token only in OPERATIONAL or RECOVERY, only of its own ring,
//! and only with a `token_seq` above the last one it saw (so a retransmitted
//! duplicate is dropped). On each visit it hands the token to the ordering hook,
//! updates `aru`/`aru_addr`, checks fail-to-receive, increments `token_seq` and
//! sends it to the next member in ascending node id order. Then it restarts the
//! token-loss timer (`token`) and the token-retransmit timer (`token_retransmit`,
//! which re-sends the last token if nothing is heard).
//!
//! **Idle hold**: after `seqno_unchanged_const` visits without new messages the
//! representative keeps the token and releases it when the `hold` timer expires
//! (or at once on TOKEN_HOLD_CANCEL). The same idleness starts the `merge` timer,
//! on whose expiry the representative multicasts MERGE_DETECT.
//!
//! **Fail-to-receive**: if `aru` has not moved for more than `fail_recv_const`
//! visits while this node is the one holding it down (`aru_addr`), this node
//! cannot receive what the others send. Corosync puts itself in its own failed
//! list; halyard instead gives up on every other node (so a node is never in its
//! own failed set) and forms a one-node ring, which merges back once it hears
//! the others again.

use std::time::Instant;

use crate::hook::{OrderingHook, TokenVisit};
use crate::srp::{MembState, Totem};
use crate::timer::Timer;
use crate::wire::{Body, Header, Mcast, OrfToken};

impl<H: OrderingHook> Totem<H> {
    /// Corosync's `message_handler_orf_token`.
    pub(crate) fn handle_orf_token(&mut self, now: Instant, header: Header, mut token: OrfToken) {
        if !matches!(self.state, MembState::Operational | MembState::Recovery) {
            return;
        }
        if header.ring_id != self.my_ring_id {
            return;
        }
        if self.my_token_seq.is_some_and(|m| token.token_seq <= m) {
            return;
        }
        // Idle bookkeeping: merge detection and token hold.
        if token.seq == self.my_last_seq {
            if !self.merge_detect_outstanding {
                self.merge_detect_outstanding = true;
                self.timers.set(Timer::MergeDetect, now + self.cfg.merge);
            }
            self.my_seq_unchanged = self.my_seq_unchanged.saturating_add(1);
        } else {
            self.merge_detect_outstanding = false;
            self.timers.stop(Timer::MergeDetect);
            self.timers.stop(Timer::TokenHold);
            self.my_seq_unchanged = 0;
        }
        self.my_last_seq = token.seq;
        let rep = self.my_ring_id.rep == self.me;
        self.token_held = rep && self.my_seq_unchanged > self.cfg.seqno_unchanged_const;
        let forward = !self.token_held;

        // The ordering layer's part of the visit.
        let mut mcasts = Vec::new();
        self.hook.on_token(TokenVisit {
            state: self.state,
            me: self.me,
            ring_id: self.my_ring_id,
            token: &mut token,
            mcasts: &mut mcasts,
        });
        for m in mcasts {
            self.multicast(Body::Mcast(m));
        }

        // aru / aru_addr and fail-to-receive.
        let my_aru = self.hook.my_aru();
        if my_aru < token.aru || token.aru_addr == Some(self.me) || token.aru_addr.is_none() {
            token.aru = my_aru;
            token.aru_addr = if token.aru == token.seq {
                None
            } else {
                Some(self.me)
            };
        }
        if token.aru == self.my_last_aru && token.aru_addr.is_some() {
            self.my_aru_count += 1;
        } else {
            self.my_aru_count = 0;
        }
        if self.my_aru_count > self.cfg.fail_recv_const && token.aru_addr == Some(self.me) {
            tracing::warn!(
                node = self.me.0,
                "failed to receive: forming a ring on my own"
            );
            self.failed_to_recv = true;
            if self.state == MembState::Recovery {
                self.hook.on_recovery_abort();
            }
            let others: Vec<_> = self
                .proc_set
                .union(&self.memb)
                .copied()
                .filter(|n| *n != self.me)
                .collect();
            self.failed_set.extend(others);
            self.gather_enter(now, "fail to receive");
            return;
        }
        self.my_last_aru = token.aru;

        self.my_token_seq = Some(token.token_seq);
        token.token_seq += 1;
        if self.state == MembState::Recovery {
            self.recovery_token_visit(now, &mut token);
        }
        let members: Vec<_> = if self.state == MembState::Recovery {
            self.new_memb.clone()
        } else {
            self.memb.iter().copied().collect()
        };
        let next = self.next_in(&members);
        let payload = self.message(self.my_ring_id, Body::OrfToken(token));
        self.send_token(next, payload, forward);
        self.timers.set(Timer::TokenLoss, now + self.cfg.token);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
        if self.token_held {
            self.timers.set(Timer::TokenHold, now + self.cfg.hold);
        }
    }

    /// Corosync's `message_handler_mcast`.
    pub(crate) fn handle_mcast(&mut self, now: Instant, header: Header, mcast: Mcast) {
        if header.sender == self.me {
            return;
        }
        if header.ring_id != self.my_ring_id {
            self.foreign_ring_seen(now, header.sender, "MCAST from another ring");
            return;
        }
        // Someone else holds the token and is sending new messages: no need to
        // retransmit ours. A retransmission of an older message (seq at or below
        // the token's seq at our last visit) proves nothing: it may be a late copy
        // sent before our visit, and our token may still be lost.
        if mcast.seq > self.my_last_seq {
            self.timers.stop(Timer::TokenRetransmit);
        }
        if matches!(self.state, MembState::Operational | MembState::Recovery) {
            self.hook
                .on_mcast(self.state, header.sender, header.ring_id, &mcast);
        }
    }

    pub(crate) fn token_loss_timeout(&mut self, now: Instant) {
        match self.state {
            MembState::Operational => {
                tracing::info!(node = self.me.0, ring = %self.my_ring_id, "token lost: a processor failed, forming a new configuration");
                self.gather_enter(now, "token loss");
            }
            MembState::Commit => self.gather_enter(now, "token loss in COMMIT"),
            MembState::Recovery => {
                self.hook.on_recovery_abort();
                self.gather_enter(now, "token loss in RECOVERY");
            }
            MembState::Gather | MembState::Left => {}
        }
    }

    pub(crate) fn token_retransmit_timeout(&mut self, now: Instant) {
        if !matches!(
            self.state,
            MembState::Operational | MembState::Commit | MembState::Recovery
        ) {
            return;
        }
        if let Some((to, payload)) = self.last_token.clone() {
            self.unicast(to, payload);
        }
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
    }

    pub(crate) fn token_hold_timeout(&mut self, _now: Instant) {
        if matches!(self.state, MembState::Operational | MembState::Recovery) {
            if let Some((to, payload)) = self.last_token.clone() {
                self.unicast(to, payload);
            }
        }
    }
}
