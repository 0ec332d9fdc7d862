//! The typed result of one agent action.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest exit reason kept, in bytes (Pacemaker's limit).
pub const EXIT_REASON_MAX: usize = 128;

/// What an action ended with: one variant per OCF exit code (0–9, 190, 191), plus
/// the three results an executor produces itself (timed out, cancelled, could not
/// execute).
///
/// [`Status::from_ocf_code`] and [`Status::ocf_code`] map 1:1 between the OCF codes
/// and the first twelve variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// 0 `OCF_SUCCESS`.
    Success,
    /// 1 `OCF_ERR_GENERIC`: soft error, recover in place.
    GenericError,
    /// 2 `OCF_ERR_ARGS`: invalid parameter (hard: ban from this node).
    InvalidArgs,
    /// 3 `OCF_ERR_UNIMPLEMENTED`: the agent does not implement the action (hard).
    Unimplemented,
    /// 4 `OCF_ERR_PERM`: insufficient privilege (hard).
    InsufficientPrivilege,
    /// 5 `OCF_ERR_INSTALLED`: something the agent needs is not installed (hard).
    NotInstalled,
    /// 6 `OCF_ERR_CONFIGURED`: the configuration is wrong (fatal: stop everywhere).
    NotConfigured,
    /// 7 `OCF_NOT_RUNNING`: cleanly stopped (expected from a probe, a failure from a
    /// recurring monitor).
    NotRunning,
    /// 8 `OCF_RUNNING_PROMOTED`: running in the promoted role.
    RunningPromoted,
    /// 9 `OCF_FAILED_PROMOTED`: failed in the promoted role.
    FailedPromoted,
    /// 190 `OCF_DEGRADED`: running but degraded (treated as success).
    Degraded,
    /// 191 `OCF_DEGRADED_PROMOTED`: promoted but degraded (treated as 8).
    DegradedPromoted,
    /// The action did not finish within its timeout (the agent was killed).
    TimedOut,
    /// The action was cancelled before it finished (the agent was killed).
    Cancelled,
    /// The agent could not be run at all (not found, not executable, bad request).
    CouldNotExecute,
}

impl Status {
    /// The status for an OCF exit code, or `None` for a code outside 0–9, 190, 191.
    pub fn from_ocf_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::GenericError,
            2 => Self::InvalidArgs,
            3 => Self::Unimplemented,
            4 => Self::InsufficientPrivilege,
            5 => Self::NotInstalled,
            6 => Self::NotConfigured,
            7 => Self::NotRunning,
            8 => Self::RunningPromoted,
            9 => Self::FailedPromoted,
            190 => Self::Degraded,
            191 => Self::DegradedPromoted,
            _ => return None,
        })
    }

    /// The OCF exit code, or `None` for the executor's own results.
    pub fn ocf_code(self) -> Option<i32> {
        Some(match self {
            Self::Success => 0,
            Self::GenericError => 1,
            Self::InvalidArgs => 2,
            Self::Unimplemented => 3,
            Self::InsufficientPrivilege => 4,
            Self::NotInstalled => 5,
            Self::NotConfigured => 6,
            Self::NotRunning => 7,
            Self::RunningPromoted => 8,
            Self::FailedPromoted => 9,
            Self::Degraded => 190,
            Self::DegradedPromoted => 191,
            Self::TimedOut | Self::Cancelled | Self::CouldNotExecute => return None,
        })
    }

    /// The code a command-line runner exits with: the OCF code, 124 for a timeout
    /// (as coreutils `timeout`), 125 for cancelled and 126 for could-not-execute.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::TimedOut => 124,
            Self::Cancelled => 125,
            Self::CouldNotExecute => 126,
            other => other.ocf_code().unwrap_or(1),
        }
    }

    /// True for the results that mean "running" (0, 8, 190, 191).
    pub fn is_running(self) -> bool {
        matches!(
            self,
            Self::Success | Self::RunningPromoted | Self::Degraded | Self::DegradedPromoted
        )
    }

    /// The lower-case OCF name (`ok`, `error`, `not running`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "ok",
            Self::GenericError => "error",
            Self::InvalidArgs => "invalid parameter",
            Self::Unimplemented => "unimplemented feature",
            Self::InsufficientPrivilege => "insufficient privileges",
            Self::NotInstalled => "not installed",
            Self::NotConfigured => "not configured",
            Self::NotRunning => "not running",
            Self::RunningPromoted => "promoted",
            Self::FailedPromoted => "promoted (failed)",
            Self::Degraded => "degraded",
            Self::DegradedPromoted => "promoted (degraded)",
            Self::TimedOut => "timed out",
            Self::Cancelled => "cancelled",
            Self::CouldNotExecute => "could not execute",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ocf_code() {
            Some(code) => write!(f, "{} ({code})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// The result of one action: a [`Status`], the agent's exit reason, and for
/// promotable agents any promotion score it reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// What the action ended with.
    pub status: Status,
    /// Why (the agent's `ocf-exit-reason:` text, or the executor's explanation),
    /// at most [`EXIT_REASON_MAX`] bytes.
    pub exit_reason: Option<String>,
    /// The raw exit status when the agent exited with a code outside the OCF set
    /// (mapped to [`Status::GenericError`]); `None` otherwise.
    pub raw_exit_code: Option<i32>,
    /// Promotion score changes the agent reported during the action (in order).
    pub promotion: Vec<PromotionUpdate>,
}

/// A promotion score change reported by a promotable agent (through the
/// `crm_attribute --promotion` / `crm_master` stand-ins, or natively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionUpdate {
    /// Set the score of this instance on this node.
    Set(i64),
    /// Delete the score (the instance may not be promoted here).
    Delete,
}

impl Outcome {
    /// An outcome with a status and no exit reason.
    pub fn new(status: Status) -> Self {
        Self {
            status,
            exit_reason: None,
            raw_exit_code: None,
            promotion: Vec::new(),
        }
    }

    /// `OCF_SUCCESS`.
    pub fn success() -> Self {
        Self::new(Status::Success)
    }

    /// `OCF_NOT_RUNNING`.
    pub fn not_running() -> Self {
        Self::new(Status::NotRunning)
    }

    /// `OCF_ERR_UNIMPLEMENTED`, the default for optional actions.
    pub fn unimplemented() -> Self {
        Self::new(Status::Unimplemented)
    }

    /// A status with an exit reason (truncated to [`EXIT_REASON_MAX`] bytes).
    pub fn with_reason(status: Status, reason: impl Into<String>) -> Self {
        let mut o = Self::new(status);
        o.exit_reason = Some(truncate_reason(reason.into()));
        o
    }

    /// The executor could not run the agent, and why.
    pub fn could_not_execute(reason: impl Into<String>) -> Self {
        Self::with_reason(Status::CouldNotExecute, reason)
    }

    /// Adds a promotion score update.
    pub fn with_promotion(mut self, update: PromotionUpdate) -> Self {
        self.promotion.push(update);
        self
    }

    /// The outcome for a process exit code: OCF codes map 1:1; anything else is a
    /// generic error that keeps the raw code.
    pub fn from_exit_code(code: i32, exit_reason: Option<String>) -> Self {
        match Status::from_ocf_code(code) {
            Some(status) => Self {
                status,
                exit_reason,
                raw_exit_code: None,
                promotion: Vec::new(),
            },
            None => Self {
                status: Status::GenericError,
                exit_reason: exit_reason
                    .or_else(|| Some(format!("agent exited with status {code}, not an OCF code"))),
                raw_exit_code: Some(code),
                promotion: Vec::new(),
            },
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(r) = &self.exit_reason {
            write!(f, ": {r}")?;
        }
        Ok(())
    }
}

/// Cuts a reason to [`EXIT_REASON_MAX`] bytes on a character boundary, and to its
/// first line.
pub fn truncate_reason(mut s: String) -> String {
    if let Some(nl) = s.find('\n') {
        s.truncate(nl);
    }
    if s.len() > EXIT_REASON_MAX {
        let mut end = EXIT_REASON_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocf_codes_round_trip() {
        for code in (0..=9).chain([190, 191]) {
            let s = Status::from_ocf_code(code).unwrap();
            assert_eq!(s.ocf_code(), Some(code));
            assert_eq!(s.exit_code(), code);
        }
        for code in [10, 11, 124, 137, 189, 192, 255, -1] {
            assert_eq!(Status::from_ocf_code(code), None);
        }
        assert_eq!(Status::TimedOut.exit_code(), 124);
    }

    #[test]
    fn unknown_code_is_a_generic_error_keeping_the_raw_code() {
        let o = Outcome::from_exit_code(137, None);
        assert_eq!(o.status, Status::GenericError);
        assert_eq!(o.raw_exit_code, Some(137));
        assert!(o.exit_reason.unwrap().contains("137"));
    }

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        let r = truncate_reason("é".repeat(100));
        assert!(r.len() <= EXIT_REASON_MAX);
        assert_eq!(r.chars().count(), 64);
        assert_eq!(truncate_reason("a\nb".into()), "a");
    }
}
