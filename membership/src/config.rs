//! Totem timers and constants, with Corosync's names and 3.1.x defaults.
//!
//! [`TotemConfig`] holds what an operator writes (like the `totem {}` section of
//! `corosync.conf`); [`TotemConfig::effective`] derives what the engine runs with
//! for a given cluster size, like Corosync's `runtime.config.totem.*` keys:
//!
//! | field | default | effective value |
//! |---|---|---|
//! | `token` | 3000 ms | `token + token_coefficient × (nodes − 2)` when nodes ≥ 3 |
//! | `token_coefficient` | 650 ms | |
//! | `token_retransmits_before_loss_const` | 4 | |
//! | `token_retransmit` | derived | `token / (token_retransmits_before_loss_const + 0.2)` |
//! | `hold` | derived | `token_retransmit × 0.8 − 10 ms` (at least 1 ms) |
//! | `join` | 50 ms | |
//! | `consensus` | derived | `1.2 × token` |
//! | `merge` | 200 ms | |
//! | `downcheck` | 1000 ms | (kept for configuration compatibility; the UDP driver has no interface checks) |
//! | `fail_recv_const` | 2500 | rotations |
//! | `seqno_unchanged_const` | 30 | rotations |
//! | `max_messages` | 17 | |
//! | `window_size` | 50 | |
//! | `miss_count_const` | 5 | |
//! | `fast_failover` | on | halyard only, see `ARCHITECTURE.md` |
//! | `fast_failover_silence` | derived | `token_retransmit` |
//! | `fast_failover_wait` | derived | `join / 2` |

use std::time::Duration;

use crate::{Error, Result};

/// Totem configuration (what the operator sets). See the module docs for the table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TotemConfig {
    /// Cluster name; its hash is in every datagram header, and datagrams of other
    /// clusters are dropped.
    pub cluster_name: String,
    /// Token-loss timeout before the coefficient is added (Corosync `token`).
    pub token: Duration,
    /// Added to `token` for each node beyond two (Corosync `token_coefficient`).
    pub token_coefficient: Duration,
    /// Token retransmits before the token is declared lost.
    pub token_retransmits_before_loss_const: u32,
    /// Token retransmit timeout; `None` derives it from the effective token.
    pub token_retransmit: Option<Duration>,
    /// Idle token hold time at the representative; `None` derives it.
    pub hold: Option<Duration>,
    /// JOIN re-send period in GATHER.
    pub join: Duration,
    /// GATHER deadline for agreement; `None` means 1.2 × the effective token.
    pub consensus: Option<Duration>,
    /// MERGE_DETECT period of an idle ring's representative.
    pub merge: Duration,
    /// Interface re-check period (accepted for compatibility; unused by the UDP driver).
    pub downcheck: Duration,
    /// Token rotations without aru progress before a node declares itself failed to receive.
    pub fail_recv_const: u32,
    /// Idle rotations before the representative holds the token.
    pub seqno_unchanged_const: u32,
    /// Messages (new + retransmitted) one node may send per token visit.
    pub max_messages: u32,
    /// Messages the whole ring may send per rotation.
    pub window_size: u32,
    /// Token visits a gap must persist before it goes on the retransmit list.
    pub miss_count_const: u32,
    /// Halyard's fast failover: in GATHER, give up early on a node that has been
    /// silent while every other candidate already agrees (see `ARCHITECTURE.md`).
    pub fast_failover: bool,
    /// How long a node must have been silent before fast failover may fail it;
    /// `None` means the effective `token_retransmit`.
    pub fast_failover_silence: Option<Duration>,
    /// How long after entering GATHER fast failover waits at least; `None` means
    /// `join / 2` (a live node answers a JOIN within one round trip).
    pub fast_failover_wait: Option<Duration>,
}

impl Default for TotemConfig {
    fn default() -> Self {
        TotemConfig {
            cluster_name: "halyard".to_string(),
            token: Duration::from_millis(3000),
            token_coefficient: Duration::from_millis(650),
            token_retransmits_before_loss_const: 4,
            token_retransmit: None,
            hold: None,
            join: Duration::from_millis(50),
            consensus: None,
            merge: Duration::from_millis(200),
            downcheck: Duration::from_millis(1000),
            fail_recv_const: 2500,
            seqno_unchanged_const: 30,
            max_messages: 17,
            window_size: 50,
            miss_count_const: 5,
            fast_failover: true,
            fast_failover_silence: None,
            fast_failover_wait: None,
        }
    }
}

/// The values the engine runs with (Corosync's `runtime.config.totem.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveConfig {
    /// Token-loss timeout including the coefficient.
    pub token: Duration,
    /// Token retransmit timeout.
    pub token_retransmit: Duration,
    /// Idle token hold.
    pub hold: Duration,
    /// JOIN period.
    pub join: Duration,
    /// Consensus timeout.
    pub consensus: Duration,
    /// MERGE_DETECT period.
    pub merge: Duration,
    /// Fail-to-receive threshold (rotations).
    pub fail_recv_const: u32,
    /// Idle rotations before hold.
    pub seqno_unchanged_const: u32,
    /// Per-visit message limit.
    pub max_messages: u32,
    /// Per-rotation message limit.
    pub window_size: u32,
    /// Retransmit-list delay (visits).
    pub miss_count_const: u32,
    /// Fast failover on or off.
    pub fast_failover: bool,
    /// Silence needed before fast failover.
    pub fast_failover_silence: Duration,
    /// Minimum GATHER time before fast failover.
    pub fast_failover_wait: Duration,
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl TotemConfig {
    /// A preset for a quiet LAN or loopback: token 300 ms with no coefficient,
    /// join 30 ms, merge 100 ms. Failure is noticed within 300 ms and a new ring
    /// forms about one token-retransmit later.
    pub fn lan_fast() -> Self {
        TotemConfig {
            token: Duration::from_millis(300),
            token_coefficient: Duration::ZERO,
            join: Duration::from_millis(30),
            merge: Duration::from_millis(100),
            ..Self::default()
        }
    }

    /// Effective values for a ring configured with `nodes` nodes, validated.
    pub fn effective(&self, nodes: usize) -> Result<EffectiveConfig> {
        let err = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if self.token.is_zero() {
            return err(
                "token",
                "must be greater than 0 ms (Corosync's default is 3000)".into(),
            );
        }
        if self.join.is_zero() {
            return err(
                "join",
                "must be greater than 0 ms (Corosync's default is 50)".into(),
            );
        }
        if self.merge.is_zero() {
            return err(
                "merge",
                "must be greater than 0 ms (Corosync's default is 200)".into(),
            );
        }
        if self.token_retransmits_before_loss_const == 0 {
            return err(
                "token_retransmits_before_loss_const",
                "must be at least 1 (Corosync's default is 4)".into(),
            );
        }
        if self.window_size == 0 || self.max_messages == 0 {
            return err(
                "max_messages",
                "max_messages and window_size must both be at least 1".into(),
            );
        }
        if self.max_messages > self.window_size {
            return err(
                "max_messages",
                format!(
                    "max_messages ({}) may not be greater than window_size ({})",
                    self.max_messages, self.window_size
                ),
            );
        }
        if self.fail_recv_const == 0 || self.seqno_unchanged_const == 0 {
            return err(
                "fail_recv_const",
                "fail_recv_const and seqno_unchanged_const must be at least 1".into(),
            );
        }
        let extra = nodes.saturating_sub(2) as u32;
        let token = if nodes >= 3 {
            self.token + self.token_coefficient * extra
        } else {
            self.token
        };
        let token_retransmit = self.token_retransmit.unwrap_or_else(|| {
            token.div_f64(f64::from(self.token_retransmits_before_loss_const) + 0.2)
        });
        if token_retransmit.is_zero() || token_retransmit >= token {
            return err(
                "token_retransmit",
                format!(
                    "token_retransmit ({} ms) must be greater than 0 and less than the effective token ({} ms)",
                    ms(token_retransmit),
                    ms(token)
                ),
            );
        }
        let hold = self.hold.unwrap_or_else(|| {
            token_retransmit
                .mul_f64(0.8)
                .saturating_sub(Duration::from_millis(10))
                .max(Duration::from_millis(1))
        });
        if hold >= token_retransmit {
            return err(
                "hold",
                format!(
                    "hold ({} ms) must be less than token_retransmit ({} ms), or an idle ring retransmits its token",
                    ms(hold),
                    ms(token_retransmit)
                ),
            );
        }
        let consensus = self.consensus.unwrap_or_else(|| token.mul_f64(1.2));
        if consensus < token.mul_f64(1.2) {
            return err(
                "consensus",
                format!(
                    "consensus ({} ms) must be at least 1.2 × the effective token ({} ms), i.e. {} ms; raise consensus or leave it unset",
                    ms(consensus),
                    ms(token),
                    ms(token.mul_f64(1.2))
                ),
            );
        }
        if self.join >= consensus {
            return err(
                "join",
                format!(
                    "join ({} ms) must be less than consensus ({} ms)",
                    ms(self.join),
                    ms(consensus)
                ),
            );
        }
        let fast_failover_silence = self.fast_failover_silence.unwrap_or(token_retransmit);
        let fast_failover_wait = self.fast_failover_wait.unwrap_or(self.join / 2);
        if self.fast_failover && (fast_failover_wait.is_zero() || fast_failover_wait >= consensus) {
            return err(
                "fast_failover_wait",
                format!(
                    "fast_failover_wait ({} ms) must be greater than 0 and less than consensus ({} ms); it should exceed the network round trip",
                    ms(fast_failover_wait),
                    ms(consensus)
                ),
            );
        }
        Ok(EffectiveConfig {
            token,
            token_retransmit,
            hold,
            join: self.join,
            consensus,
            merge: self.merge,
            fail_recv_const: self.fail_recv_const,
            seqno_unchanged_const: self.seqno_unchanged_const,
            max_messages: self.max_messages,
            window_size: self.window_size,
            miss_count_const: self.miss_count_const,
            fast_failover: self.fast_failover,
            fast_failover_silence,
            fast_failover_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_defaults_for_three_and_five_nodes() {
        let c = TotemConfig::default();
        let e3 = c.effective(3).unwrap();
        assert_eq!(e3.token, Duration::from_millis(3650));
        assert_eq!(e3.consensus, Duration::from_millis(4380));
        assert_eq!(e3.token_retransmit.as_millis(), 869);
        assert_eq!(e3.hold.as_millis(), 685);
        assert_eq!(c.effective(5).unwrap().token, Duration::from_millis(4950));
        assert_eq!(c.effective(2).unwrap().token, Duration::from_millis(3000));
    }

    #[test]
    fn consensus_below_token_is_rejected_naming_both() {
        let c = TotemConfig {
            consensus: Some(Duration::from_millis(1000)),
            ..TotemConfig::default()
        };
        let e = c.effective(3).unwrap_err().to_string();
        assert!(e.contains("consensus (1000 ms)"), "{e}");
        assert!(e.contains("3650 ms"), "{e}");
    }

    #[test]
    fn other_validation_errors_name_the_field() {
        let c = TotemConfig {
            max_messages: 60,
            ..TotemConfig::default()
        };
        assert!(c
            .effective(3)
            .unwrap_err()
            .to_string()
            .contains("max_messages (60)"));
        let c = TotemConfig {
            token: Duration::ZERO,
            ..TotemConfig::default()
        };
        assert!(c.effective(3).unwrap_err().to_string().contains("token"));
        let c = TotemConfig {
            hold: Some(Duration::from_secs(5)),
            ..TotemConfig::default()
        };
        assert!(c.effective(3).unwrap_err().to_string().contains("hold"));
    }

    #[test]
    fn lan_fast_is_valid() {
        let e = TotemConfig::lan_fast().effective(5).unwrap();
        assert_eq!(e.token, Duration::from_millis(300));
        assert!(e.hold < e.token_retransmit);
    }
}
