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
//! representative keeps the token and releases it when the `hold` timer expires.
//! When a node wants to send (TOKEN_HOLD_CANCEL from another node, or
//! [`Totem::request_token`] here), the representative releases it at once with a
//! fresh visit of its own, so its queued messages go out without waiting for
//! another rotation (see `release_held_token`). The same idleness starts the
//! `merge` timer, on whose expiry the representative multicasts MERGE_DETECT.
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
    pub(crate) fn handle_orf_token(&mut self, now: Instant, header: Header, token: OrfToken) {
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
        // The representative holds the token after more than
        // `seqno_unchanged_const` idle visits of its own; the others' counts are
        // equal to or one ahead of its count, hence `>=` (as totemsrp.c).
        self.token_held_elsewhere = self.my_ring_id.rep != self.me
            && self.my_seq_unchanged >= self.cfg.seqno_unchanged_const;
        self.token_visit(now, token, false);
    }

    /// One token visit: the ordering layer's part, `aru`/`aru_addr` and
    /// fail-to-receive, `token_seq`, and the hand-over to the next member (or the
    /// idle hold). `revisit` is a visit on a token this node held and never sent
    /// on ([`Self::release_held_token`]): no other node has seen it since this
    /// node's last visit.
    fn token_visit(&mut self, now: Instant, mut token: OrfToken, revisit: bool) {
        let rep = self.my_ring_id.rep == self.me;
        let hold = rep && self.my_seq_unchanged > self.cfg.seqno_unchanged_const;
        self.held_token = None;

        // The ordering layer's part of the visit.
        let mut mcasts = Vec::new();
        self.hook.on_token(TokenVisit {
            state: self.state,
            me: self.me,
            ring_id: self.my_ring_id,
            token: &mut token,
            mcasts: &mut mcasts,
            revisit,
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
        if revisit {
            // Not a rotation: fail-to-receive counts rotations.
        } else if token.aru == self.my_last_aru && token.aru_addr.is_some() {
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
        let held = hold.then(|| token.clone());
        let payload = self.message(self.my_ring_id, Body::OrfToken(token));
        self.send_token(next, payload, !hold);
        self.timers.set(Timer::TokenLoss, now + self.cfg.token);
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
        if hold {
            self.held_token = held;
            self.timers.set(Timer::TokenHold, now + self.cfg.hold);
        } else {
            self.timers.stop(Timer::TokenHold);
        }
    }

    /// The representative releases the token it holds because a node wants to
    /// send (its own ordering layer, or a TOKEN_HOLD_CANCEL from another node).
    ///
    /// Corosync re-sends the token as it was when held, so a message queued here
    /// waits one more rotation. Halyard instead takes a fresh visit on the held
    /// token (which no other node has seen: every path that sends it takes it
    /// from `held_token` first, so there is only ever one token on the ring): the
    /// queued messages are stamped and multicast at once, and the token goes on
    /// with `token_seq` one higher. In RECOVERY (where visits count rotations) it
    /// re-sends the held token as Corosync does.
    pub(crate) fn release_held_token(&mut self, now: Instant) {
        self.my_seq_unchanged = 0;
        if self.held_token.is_none() {
            return;
        }
        if self.state == MembState::Operational {
            let token = self.held_token.take().expect("checked above");
            self.stats.held_token_releases += 1;
            self.token_visit(now, token, true);
        } else {
            self.send_held_token();
        }
    }

    /// Sends the held token on unchanged (hold timer, RECOVERY).
    fn send_held_token(&mut self) {
        self.held_token = None;
        self.timers.stop(Timer::TokenHold);
        if let Some((to, payload)) = self.last_token.clone() {
            self.unicast(to, payload);
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
        // A held token goes out now, so it is no longer held.
        self.held_token = None;
        self.timers.stop(Timer::TokenHold);
        if let Some((to, payload)) = self.last_token.clone() {
            self.unicast(to, payload);
        }
        self.timers
            .set(Timer::TokenRetransmit, now + self.cfg.token_retransmit);
    }

    pub(crate) fn token_hold_timeout(&mut self, _now: Instant) {
        if matches!(self.state, MembState::Operational | MembState::Recovery)
            && self.held_token.is_some()
        {
            self.send_held_token();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use crate::hook::{OrderingHook, TokenVisit};
    use crate::wire::{Body, Mcast, Message};
    use crate::{Destination, MembState, MemoryRingIdStore, NodeId, Totem, TotemConfig, Transmit};

    /// Messages to stamp on the next visit, and every visit as (revisit, token seq).
    type Visits = (u32, Vec<(bool, u64)>);

    /// Stamps the pending messages on the next visit and records every visit.
    #[derive(Default, Clone)]
    struct Queue(Arc<Mutex<Visits>>);

    impl OrderingHook for Queue {
        fn on_token(&mut self, visit: TokenVisit<'_>) {
            let mut q = self.0.lock().unwrap();
            if visit.state == MembState::Operational {
                while q.0 > 0 {
                    q.0 -= 1;
                    visit.token.seq += 1;
                    visit.mcasts.push(Mcast {
                        seq: visit.token.seq,
                        ..Mcast::default()
                    });
                }
            }
            q.1.push((visit.revisit, visit.token.seq));
        }
        fn my_aru(&self) -> u64 {
            0
        }
    }

    struct Ring {
        now: Instant,
        nodes: Vec<NodeId>,
        engines: Vec<Totem<Queue>>,
        hooks: Vec<Queue>,
    }

    fn is_token(t: &Transmit) -> bool {
        matches!(Message::decode(&t.payload).unwrap().body, Body::OrfToken(_))
    }

    impl Ring {
        fn new() -> Ring {
            let now = Instant::now();
            let nodes = vec![NodeId(1), NodeId(2), NodeId(3)];
            let hooks: Vec<Queue> = (0..3).map(|_| Queue::default()).collect();
            let engines = (0..3)
                .map(|i| {
                    Totem::with_hook(
                        nodes[i],
                        nodes.clone(),
                        &TotemConfig::lan_fast(),
                        Box::new(MemoryRingIdStore::new()),
                        hooks[i].clone(),
                        now,
                    )
                    .unwrap()
                })
                .collect();
            Ring {
                now,
                nodes,
                engines,
                hooks,
            }
        }
        /// Delivers everything in flight (zero delay); returns the tokens seen.
        fn settle(&mut self) -> usize {
            let mut tokens = 0;
            for _ in 0..100_000 {
                let mut moved = false;
                for i in 0..3 {
                    while let Some(t) = self.engines[i].poll_transmit() {
                        moved = true;
                        tokens += usize::from(is_token(&t));
                        let to: Vec<NodeId> = match t.dest {
                            Destination::Node(n) => vec![n],
                            Destination::Multicast => self
                                .nodes
                                .iter()
                                .copied()
                                .filter(|n| *n != self.nodes[i])
                                .collect(),
                        };
                        for n in to {
                            let j = self.nodes.iter().position(|x| *x == n).unwrap();
                            self.engines[j].handle_datagram(self.now, self.nodes[i], &t.payload);
                        }
                    }
                }
                if !moved {
                    return tokens;
                }
            }
            panic!("the ring never went idle");
        }
        fn advance(&mut self) {
            self.now = self
                .engines
                .iter()
                .filter_map(Totem::poll_timeout)
                .min()
                .unwrap()
                .max(self.now);
            for e in &mut self.engines {
                e.handle_timeout(self.now);
            }
        }
        /// Runs until the representative holds the token.
        fn until_held(&mut self) {
            for _ in 0..1000 {
                self.settle();
                if self.engines[0].state() == MembState::Operational
                    && self.engines[0].held_token.is_some()
                {
                    return;
                }
                self.advance();
            }
            panic!("the token was never held");
        }
    }

    #[test]
    fn the_representative_releases_a_held_token_with_a_fresh_visit() {
        let mut r = Ring::new();
        r.until_held();
        let visits_before = r.hooks[0].0.lock().unwrap().1.len();
        // Node 1 (the representative) has something to send.
        r.hooks[0].0.lock().unwrap().0 = 1;
        r.engines[0].request_token(r.now);
        let out: Vec<Transmit> = std::iter::from_fn(|| r.engines[0].poll_transmit()).collect();
        // At once: the message and the token (no rotation first).
        assert_eq!(out.iter().filter(|t| is_token(t)).count(), 1);
        assert_eq!(out.len(), 2);
        let q = r.hooks[0].0.lock().unwrap().clone();
        assert_eq!(q.1.len(), visits_before + 1);
        assert!(q.1.last().unwrap().0, "the release is a revisit");
        assert!(r.engines[0].held_token.is_none());
        assert_eq!(r.engines[0].stats().held_token_releases, 1);
        // Asking again releases nothing more: one token on the ring.
        r.engines[0].request_token(r.now);
        assert!(r.engines[0].poll_transmit().is_none());
        for t in out {
            if let Destination::Node(n) = t.dest {
                let j = r.nodes.iter().position(|x| *x == n).unwrap();
                r.engines[j].handle_datagram(r.now, NodeId(1), &t.payload);
            } else {
                for j in 1..3 {
                    r.engines[j].handle_datagram(r.now, NodeId(1), &t.payload);
                }
            }
        }
        r.settle();
        assert!(r
            .engines
            .iter()
            .all(|e| e.state() == MembState::Operational));
    }

    #[test]
    fn a_token_released_by_the_hold_timer_is_not_released_again() {
        let mut r = Ring::new();
        r.until_held();
        // The hold timer (the earliest deadline) sends the held token on.
        let hold_at = r.now + r.engines[0].effective_config().hold;
        r.now = hold_at;
        r.engines[0].handle_timeout(hold_at);
        let out: Vec<Transmit> = std::iter::from_fn(|| r.engines[0].poll_transmit()).collect();
        assert_eq!(out.iter().filter(|t| is_token(t)).count(), 1);
        assert!(r.engines[0].held_token.is_none());
        // A send request now must not put a second token on the ring.
        r.hooks[0].0.lock().unwrap().0 = 1;
        r.engines[0].request_token(r.now);
        assert!(r.engines[0].poll_transmit().is_none());
        assert_eq!(r.engines[0].stats().held_token_releases, 0);
    }

    #[test]
    fn token_hold_cancel_from_another_node_releases_the_token() {
        let mut r = Ring::new();
        r.until_held();
        r.hooks[2].0.lock().unwrap().0 = 1;
        r.engines[2].request_token(r.now);
        // TOKEN_HOLD_CANCEL reaches the representative, which takes a fresh
        // visit and forwards the token; node 3's message goes out on its visit.
        let tokens = r.settle();
        assert!(tokens >= 2);
        assert_eq!(r.engines[0].stats().held_token_releases, 1);
        let q = r.hooks[2].0.lock().unwrap().clone();
        assert_eq!(q.0, 0, "node 3 sent its message");
        assert!(r
            .engines
            .iter()
            .all(|e| e.state() == MembState::Operational));
    }

    fn is_hold_cancel(t: &Transmit) -> bool {
        matches!(
            Message::decode(&t.payload).unwrap().body,
            Body::TokenHoldCancel
        )
    }

    #[test]
    fn token_hold_cancel_only_when_the_ring_looks_idle_and_once() {
        let mut r = Ring::new();
        // Idle long enough that the representative holds it: node 3 believes so,
        // multicasts TOKEN_HOLD_CANCEL on its first request, and not on the next.
        r.until_held();
        assert!(r.engines[2].token_held_elsewhere);
        r.engines[2].request_token(r.now);
        let first: Vec<Transmit> = std::iter::from_fn(|| r.engines[2].poll_transmit()).collect();
        assert_eq!(first.iter().filter(|t| is_hold_cancel(t)).count(), 1);
        r.engines[2].request_token(r.now);
        assert!(
            r.engines[2].poll_transmit().is_none(),
            "one TOKEN_HOLD_CANCEL per idle period"
        );
    }
}
