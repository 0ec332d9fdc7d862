//! COMMIT: the commit token goes round the new ring twice.
//!
//! The representative builds the token: the new ring id (rep, highest seq seen
//! plus 4) and the members (proc − failed, ascending). On the **first rotation**
//! each member, on receiving it in GATHER with exactly its own proc − failed,
//! fills in its entry (old ring id, old-ring aru, high delivered, received flag),
//! stores the new ring id durably, enters COMMIT and passes the token on. When
//! the token is back with every entry filled (`memb_index == members`), the
//! **second rotation** starts: each member enters RECOVERY and passes it on; when
//! the representative gets it in RECOVERY it sends the new ring's first ORF
//! token. A lost commit token is retransmitted by the token-retransmit timer; if
//! the token-loss timer expires in COMMIT the node returns to GATHER.

use std::time::Instant;

use crate::hook::OrderingHook;
use crate::ring::RingId;
use crate::srp::{MembState, Totem};
use crate::timer::Timer;
use crate::wire::{CommitEntry, CommitToken, Header};
use crate::NodeId;

impl<H: OrderingHook> Totem<H> {
    /// The representative builds the commit token (Corosync's `memb_state_commit_token_create`).
    pub(crate) fn commit_token_create(&mut self, now: Instant, members: Vec<NodeId>) {
        let seq = self
            .highest_seq
            .max(self.my_ring_id.seq)
            .max(self.oper_ring_id.seq)
            + 4;
        let ring_id = RingId::new(self.me, seq);
        let n = members.len();
        let ct = CommitToken {
            token_seq: 0,
            retrans_flg: false,
            memb_index: 0,
            members,
            entries: vec![None; n],
        };
        tracing::debug!(node = self.me.0, %ring_id, members = ?ct.members, "consensus: creating commit token");
        self.commit_enter(now, ring_id, ct);
    }

    /// Corosync's `memb_state_commit_enter`: fill our entry, store the ring id, pass the token on.
    fn commit_enter(&mut self, now: Instant, ring_id: RingId, mut ct: CommitToken) {
        let idx = usize::from(ct.memb_index);
        self.hook.on_commit_enter(self.oper_ring_id);
        ct.entries[idx] = Some(CommitEntry {
            old_ring_id: self.oper_ring_id,
            aru: self.hook.my_aru(),
            high_delivered: self.hook.high_delivered(),
            received_flg: self.hook.received_flg(),
        });
        ct.memb_index += 1;
        ct.token_seq += 1;
        self.my_ring_id = ring_id;
        self.highest_seq = self.highest_seq.max(ring_id.seq);
        self.store_ring_id(ring_id);
        self.new_memb = ct.members.clone();
        self.state = MembState::Commit;
        self.timers.stop(Timer::Join);
        self.timers.stop(Timer::Consensus);
        self.timers.stop(Timer::FastFailover);
        self.my_token_seq = None;
        let n = ct.members.len();
        let next = ct.members[usize::from(ct.memb_index) % n];
        let payload = self.commit_token_payload(ring_id, &ct);
        self.send_token(next, payload, true);
        self.timers.set(Timer::TokenLoss, now + self.cfg.token);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
    }

    /// A commit token arrived (Corosync's `message_handler_memb_commit_token`).
    pub(crate) fn handle_commit_token(&mut self, now: Instant, header: Header, ct: CommitToken) {
        let ring_id = header.ring_id;
        let n = ct.members.len();
        if ct.entries.len() != n || !ct.members.contains(&self.me) || ring_id.rep != ct.members[0] {
            return;
        }
        if ct.members.iter().any(|m| !self.nodes.contains(m)) {
            return;
        }
        if ring_id.seq < self.my_ring_id.seq {
            return;
        }
        match self.state {
            MembState::Gather => {
                let idx = usize::from(ct.memb_index);
                if idx < n
                    && ct.members[idx] == self.me
                    && ct.members == self.candidates()
                    && ring_id.seq > self.my_ring_id.seq
                {
                    self.commit_enter(now, ring_id, ct);
                }
            }
            MembState::Commit => {
                if ring_id == self.my_ring_id
                    && usize::from(ct.memb_index) == n
                    && ct.entries.iter().all(Option::is_some)
                {
                    self.recovery_enter(now, ct);
                }
            }
            MembState::Recovery => {
                if ring_id == self.my_ring_id
                    && self.me == ring_id.rep
                    && !self.originated_orf_token
                {
                    self.originated_orf_token = true;
                    self.orf_token_send_initial(now);
                }
            }
            MembState::Operational | MembState::Left => {}
        }
    }
}
