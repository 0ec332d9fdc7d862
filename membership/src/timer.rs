//! The engine's timers: a fixed table of deadlines (after quinn-proto).

use std::time::Instant;

/// The engine's timers (Corosync's names in the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// `token`: no token for this long means it is lost (OPERATIONAL, COMMIT, RECOVERY).
    TokenLoss = 0,
    /// `token_retransmit`: re-send the last token sent.
    TokenRetransmit = 1,
    /// `hold`: the representative releases a held token.
    TokenHold = 2,
    /// `merge`: the representative of an idle ring multicasts MERGE_DETECT.
    MergeDetect = 3,
    /// `join`: re-send the JOIN in GATHER.
    Join = 4,
    /// `consensus`: give up on nodes that have not agreed.
    Consensus = 5,
    /// Halyard's fast failover check.
    FastFailover = 6,
}

const ALL: [Timer; 7] = [
    Timer::TokenLoss,
    Timer::TokenRetransmit,
    Timer::TokenHold,
    Timer::MergeDetect,
    Timer::Join,
    Timer::Consensus,
    Timer::FastFailover,
];

/// Deadlines, one per [`Timer`].
#[derive(Debug, Clone, Default)]
pub struct Timers {
    deadlines: [Option<Instant>; 7],
}

impl Timers {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.deadlines[t as usize] = Some(at);
    }
    pub(crate) fn stop(&mut self, t: Timer) {
        self.deadlines[t as usize] = None;
    }
    pub(crate) fn clear_all(&mut self) {
        self.deadlines = [None; 7];
    }
    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
    /// Removes and returns the earliest expired timer (ties in table order).
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Timer> {
        let mut best: Option<(Instant, Timer)> = None;
        for t in ALL {
            if let Some(d) = self.deadlines[t as usize] {
                if d <= now && best.is_none_or(|(b, _)| d < b) {
                    best = Some((d, t));
                }
            }
        }
        let (_, t) = best?;
        self.deadlines[t as usize] = None;
        Some(t)
    }
}
