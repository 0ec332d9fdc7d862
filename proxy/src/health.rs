//! Server health: the rise/fall state machine, check intervals, slowstart,
//! the agent-check reply parser, and the [`HealthSource`] seam.
//!
//! ```text
//!   check result (now, ok) ──> Health ──> Transition::{WentUp, WentDown} | None
//!                               │
//!                               └──> next_interval(): inter | fastinter | downinter
//! ```
//!
//! HAProxy's counter: `health` runs from 0 to `rise + fall - 1`; the server is
//! UP while `health >= rise`. A success while UP refills the counter, a failure
//! decrements it, so `fall` consecutive failures take a fully healthy server
//! down; while DOWN a failure resets the counter, so `rise` consecutive
//! successes bring it up. As in HAProxy 2.6, a server starts UP but one failed
//! check is enough to mark it DOWN (`health == rise` at start).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Check timing and thresholds (HAProxy `inter`, `fastinter`, `downinter`,
/// `rise`, `fall`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckParams {
    /// Interval between checks while the server is fully UP.
    pub inter: Duration,
    /// Interval while the server is transitioning (UP going down, DOWN going up).
    pub fastinter: Duration,
    /// Interval while the server is fully DOWN.
    pub downinter: Duration,
    /// Consecutive successes to go UP.
    pub rise: u32,
    /// Consecutive failures to go DOWN.
    pub fall: u32,
}

impl Default for CheckParams {
    /// HAProxy's defaults: `inter 2s rise 2 fall 3`, fastinter/downinter = inter.
    fn default() -> Self {
        CheckParams {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_secs(2),
            downinter: Duration::from_secs(2),
            rise: 2,
            fall: 3,
        }
    }
}

/// Operational health of a server (independent of the admin state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operational {
    /// Takes traffic.
    Up,
    /// Takes none.
    Down,
}

/// A change the state machine reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// DOWN -> UP.
    WentUp,
    /// UP -> DOWN.
    WentDown,
}

/// The rise/fall state machine of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    params: CheckParams,
    health: u32,
    state: Operational,
}

impl Health {
    /// A server that starts UP, one failure away from DOWN (HAProxy 2.6).
    pub fn new(params: CheckParams) -> Self {
        let params = CheckParams {
            rise: params.rise.max(1),
            fall: params.fall.max(1),
            ..params
        };
        Health {
            params,
            health: params.rise,
            state: Operational::Up,
        }
    }

    /// A server that starts DOWN and needs `rise` successes.
    pub fn new_down(params: CheckParams) -> Self {
        let mut h = Health::new(params);
        h.health = 0;
        h.state = Operational::Down;
        h
    }

    /// Current state.
    pub fn state(&self) -> Operational {
        self.state
    }

    /// The counter (0..=rise+fall-1), for stats.
    pub fn counter(&self) -> u32 {
        self.health
    }

    /// The parameters.
    pub fn params(&self) -> CheckParams {
        self.params
    }

    fn full(&self) -> u32 {
        // rise, fall >= 1 (see `new`); saturating for any `CheckParams`.
        self.params.rise.saturating_add(self.params.fall) - 1
    }

    /// Feeds one check result.
    pub fn observe(&mut self, ok: bool) -> Option<Transition> {
        match (self.state, ok) {
            (Operational::Up, true) => {
                self.health = self.full();
                None
            }
            (Operational::Up, false) => {
                self.health = self.health.saturating_sub(1);
                if self.health < self.params.rise {
                    self.health = 0;
                    self.state = Operational::Down;
                    Some(Transition::WentDown)
                } else {
                    None
                }
            }
            (Operational::Down, true) => {
                self.health += 1;
                if self.health >= self.params.rise {
                    self.health = self.full();
                    self.state = Operational::Up;
                    Some(Transition::WentUp)
                } else {
                    None
                }
            }
            (Operational::Down, false) => {
                self.health = 0;
                None
            }
        }
    }

    /// Feeds one check result while something else holds the server DOWN
    /// (an agent that reported `down`: HAProxy's agent health is then 0, and
    /// `check_notify_success` will not set the server running). The counter
    /// moves as in [`Health::observe`], up to full health, but a DOWN server
    /// stays DOWN; an UP one goes DOWN as usual.
    pub fn observe_held_down(&mut self, ok: bool) -> Option<Transition> {
        match (self.state, ok) {
            (Operational::Down, true) => {
                self.health += 1;
                if self.health >= self.params.rise {
                    self.health = self.full();
                }
                None
            }
            _ => self.observe(ok),
        }
    }

    /// Forces a state (agent `up`/`down`, a [`HealthSource`], a runtime
    /// command); returns the transition if the state changed.
    pub fn force(&mut self, state: Operational) -> Option<Transition> {
        let prev = self.state;
        self.state = state;
        self.health = match state {
            Operational::Up => self.full(),
            Operational::Down => 0,
        };
        match (prev, state) {
            (Operational::Down, Operational::Up) => Some(Transition::WentUp),
            (Operational::Up, Operational::Down) => Some(Transition::WentDown),
            _ => None,
        }
    }

    /// Leaves maintenance (HAProxy's `srv_clr_admin_flag`): the counter
    /// restarts at `rise`, "start OK but check immediately", so the server is
    /// UP and one failed check takes it DOWN; with `held_down` (an agent's
    /// `down` verdict) it stays DOWN. Returns the transition, if any.
    pub fn leave_maint(&mut self, held_down: bool) -> Option<Transition> {
        let prev = self.state;
        self.health = self.params.rise;
        self.state = if held_down {
            Operational::Down
        } else {
            Operational::Up
        };
        match (prev, self.state) {
            (Operational::Down, Operational::Up) => Some(Transition::WentUp),
            (Operational::Up, Operational::Down) => Some(Transition::WentDown),
            _ => None,
        }
    }

    /// Delay until the next check: `inter` at full health, `downinter` when
    /// fully DOWN, `fastinter` in between (HAProxy's `srv_getinter`).
    pub fn next_interval(&self) -> Duration {
        if self.health == self.full() {
            self.params.inter
        } else if self.state == Operational::Down && self.health == 0 {
            self.params.downinter
        } else {
            self.params.fastinter
        }
    }
}

/// The `slowstart` weight ramp: linear from 1/`weight` to the full weight over
/// `slowstart` after a server comes (back) UP.
pub fn slowstart_weight(weight: u32, elapsed: Duration, slowstart: Duration) -> u32 {
    if weight == 0 || slowstart.is_zero() || elapsed >= slowstart {
        return weight;
    }
    let num = u128::from(weight) * elapsed.as_nanos();
    let w = num.div_ceil(slowstart.as_nanos());
    u32::try_from(w).unwrap_or(weight).clamp(1, weight)
}

/// The `slowstart` ramp of `maxconn` (HAProxy's `srv_dynamic_maxconn`):
/// while warming up, `max(1, maxconn * ratio / 100)` where `ratio` is the
/// elapsed share of `slowstart` in whole percent (rounded down). HAProxy
/// counts in whole seconds; this counts in nanoseconds. 0 (no limit) stays 0.
pub fn slowstart_maxconn(maxconn: u32, elapsed: Duration, slowstart: Duration) -> u32 {
    if maxconn == 0 || slowstart.is_zero() || elapsed >= slowstart {
        return maxconn;
    }
    let ratio = 100 * elapsed.as_nanos() / slowstart.as_nanos();
    let max = u128::from(maxconn) * ratio / 100;
    u32::try_from(max).unwrap_or(maxconn).clamp(1, maxconn)
}

/// How often the slowstart ramp steps, so that queued clients get the
/// slots a warming server gains (HAProxy's `server_warmup` task: every
/// `max(1 s, slowstart / 20)`, 5% steps).
pub fn warmup_interval(slowstart: Duration) -> Duration {
    (slowstart / 20).max(Duration::from_secs(1))
}

/// What an agent said (HAProxy `agent-check`): a line of words separated by
/// spaces, commas or tabs, e.g. `"75% drain"`, `"up ready"`, `"maint"`,
/// `"down #disk full"`. Words not understood are ignored, as HAProxy does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReply {
    /// Weight in percent of the configured weight (`75%`); it replaces the
    /// current weight (capped at 25600%, the result at 256).
    pub weight_percent: Option<u32>,
    /// Admin state request (`ready`, `drain`, `maint`).
    pub admin: Option<AgentAdmin>,
    /// Operational state request (`up`; `down`, `fail`, `stopped`).
    pub operational: Option<Operational>,
    /// `maxconn:N`.
    pub maxconn: Option<u32>,
    /// Text after `#`.
    pub description: Option<String>,
}

/// The admin states an agent can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAdmin {
    /// `ready`.
    Ready,
    /// `drain`.
    Drain,
    /// `maint`.
    Maint,
}

/// Parses an agent reply (never panics). The reply is one line ended by CR
/// or LF, looked for in the first 1 KiB. Without a line end the reply is
/// incomplete and `None` comes back: HAProxy (`tcpcheck_agent_expect_reply`)
/// ignores such a reply ("Ignoring incomplete line from agent") and changes
/// nothing.
pub fn parse_agent_reply(input: &[u8]) -> Option<AgentReply> {
    let input = &input[..input.len().min(1024)];
    let line_end = input.iter().position(|b| *b == b'\n' || *b == b'\r')?;
    let line = String::from_utf8_lossy(&input[..line_end]);
    let (words, desc) = match line.split_once('#') {
        Some((w, d)) => (w.to_string(), Some(d.trim().to_string())),
        None => (line.to_string(), None),
    };
    let mut out = AgentReply {
        description: desc,
        ..AgentReply::default()
    };
    for w in words.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
        let lw = w.to_ascii_lowercase();
        if let Some(p) = lw.strip_suffix('%') {
            if let Ok(p) = p.parse::<u32>() {
                out.weight_percent = Some(p.min(25_600));
            }
        } else if let Some(m) = lw.strip_prefix("maxconn:") {
            if let Ok(m) = m.parse::<u32>() {
                out.maxconn = Some(m);
            }
        } else {
            match lw.as_str() {
                "ready" => out.admin = Some(AgentAdmin::Ready),
                "drain" => out.admin = Some(AgentAdmin::Drain),
                "maint" => out.admin = Some(AgentAdmin::Maint),
                "up" => out.operational = Some(Operational::Up),
                "down" | "fail" | "stopped" => out.operational = Some(Operational::Down),
                _ => {}
            }
        }
    }
    Some(out)
}

/// What a [`HealthSource`] reports about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Backend name.
    pub backend: String,
    /// Server name.
    pub server: String,
    /// The new state.
    pub state: Operational,
}

/// An external source of server health: the cluster (a resource's monitor
/// result) drives servers UP or DOWN directly, alongside or instead of
/// active checks. The proxy runtime consumes reports until `None`.
#[async_trait]
pub trait HealthSource: Send + 'static {
    /// The next report, or `None` when the source is finished.
    async fn next_report(&mut self) -> Option<HealthReport>;
}

/// A [`HealthSource`] fed through a tokio channel (the simplest adapter).
#[derive(Debug)]
pub struct ChannelHealthSource(pub tokio::sync::mpsc::Receiver<HealthReport>);

#[async_trait]
impl HealthSource for ChannelHealthSource {
    async fn next_report(&mut self) -> Option<HealthReport> {
        self.0.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CheckParams {
        CheckParams {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            downinter: Duration::from_secs(5),
            rise: 2,
            fall: 3,
        }
    }

    #[test]
    fn starts_up_and_one_failure_marks_down() {
        let mut h = Health::new(params());
        assert_eq!(h.state(), Operational::Up);
        assert_eq!(h.observe(false), Some(Transition::WentDown));
        assert_eq!(h.next_interval(), Duration::from_secs(5));
    }

    #[test]
    fn fall_consecutive_failures_take_a_healthy_server_down() {
        let mut h = Health::new(params());
        assert_eq!(h.observe(true), None); // now fully healthy
        assert_eq!(h.next_interval(), Duration::from_secs(2));
        assert_eq!(h.observe(false), None);
        assert_eq!(h.next_interval(), Duration::from_millis(500)); // fastinter
        assert_eq!(h.observe(true), None); // refilled
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), None);
        assert_eq!(h.observe(false), Some(Transition::WentDown));
        assert_eq!(h.state(), Operational::Down);
        assert_eq!(h.next_interval(), Duration::from_secs(5)); // downinter
    }

    #[test]
    fn rise_consecutive_successes_bring_it_up() {
        let mut h = Health::new_down(params());
        assert_eq!(h.observe(true), None);
        assert_eq!(h.next_interval(), Duration::from_millis(500));
        assert_eq!(h.observe(false), None); // reset
        assert_eq!(h.observe(true), None);
        assert_eq!(h.observe(true), Some(Transition::WentUp));
        assert_eq!(h.counter(), 4);
    }

    #[test]
    fn held_down_counts_successes_but_stays_down() {
        let mut h = Health::new_down(params());
        for _ in 0..5 {
            assert_eq!(h.observe_held_down(true), None);
        }
        assert_eq!(h.state(), Operational::Down);
        assert_eq!(h.counter(), 4, "full health, still DOWN");
        assert_eq!(h.next_interval(), Duration::from_secs(2), "inter");
        assert_eq!(h.observe_held_down(false), None);
        assert_eq!(h.counter(), 0);
        // An UP server goes down as usual.
        let mut h = Health::new(params());
        assert_eq!(h.observe_held_down(false), Some(Transition::WentDown));
    }

    #[test]
    fn force_reports_only_changes() {
        let mut h = Health::new(params());
        assert_eq!(h.force(Operational::Up), None);
        assert_eq!(h.force(Operational::Down), Some(Transition::WentDown));
        assert_eq!(h.force(Operational::Up), Some(Transition::WentUp));
    }

    #[test]
    fn slowstart_ramps_linearly() {
        let ss = Duration::from_secs(10);
        assert_eq!(slowstart_weight(100, Duration::ZERO, ss), 1);
        assert_eq!(slowstart_weight(100, Duration::from_secs(5), ss), 50);
        assert_eq!(slowstart_weight(100, Duration::from_secs(10), ss), 100);
        assert_eq!(slowstart_weight(100, Duration::from_secs(60), ss), 100);
        assert_eq!(slowstart_weight(0, Duration::from_secs(5), ss), 0);
        assert_eq!(
            slowstart_weight(7, Duration::from_secs(1), Duration::ZERO),
            7
        );
    }

    #[test]
    fn slowstart_ramps_maxconn_like_srv_dynamic_maxconn() {
        let ss = Duration::from_secs(10);
        let at = |ms: u64| slowstart_maxconn(10, Duration::from_millis(ms), ss);
        assert_eq!(at(0), 1, "never below 1");
        assert_eq!(at(1_999), 1, "19% of 10 = 1.9 -> 1");
        assert_eq!(at(3_000), 3, "30%");
        assert_eq!(at(3_999), 3, "39% of 10 = 3.9 -> 3");
        assert_eq!(at(9_999), 9);
        assert_eq!(at(10_000), 10);
        assert_eq!(
            slowstart_maxconn(0, Duration::from_secs(3), ss),
            0,
            "unlimited"
        );
        assert_eq!(
            slowstart_maxconn(u32::MAX, Duration::from_secs(5), ss),
            u32::MAX / 2
        );
        assert_eq!(
            slowstart_maxconn(7, Duration::from_secs(1), Duration::ZERO),
            7
        );
        assert_eq!(
            warmup_interval(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            warmup_interval(Duration::from_secs(60)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn agent_replies_parse_like_haproxy() {
        let r = parse_agent_reply(b"75% drain\n").unwrap();
        assert_eq!(r.weight_percent, Some(75));
        assert_eq!(r.admin, Some(AgentAdmin::Drain));
        let r = parse_agent_reply(b"up,ready,maxconn:30 #all good\r\n").unwrap();
        assert_eq!(r.operational, Some(Operational::Up));
        assert_eq!(r.admin, Some(AgentAdmin::Ready));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(r.description.as_deref(), Some("all good"));
        assert_eq!(
            parse_agent_reply(b"FAIL\r").unwrap().operational,
            Some(Operational::Down)
        );
        assert_eq!(
            parse_agent_reply(b"\xff\xfe garbage 1x%\n"),
            Some(AgentReply::default())
        );
    }

    #[test]
    fn agent_reply_without_a_line_end_is_ignored() {
        // HAProxy: "Ignoring incomplete line from agent"; nothing changes.
        assert_eq!(parse_agent_reply(b"down"), None);
        assert_eq!(parse_agent_reply(b"50% maint #no newline"), None);
        assert_eq!(parse_agent_reply(b""), None);
        // The line end must be within the first KiB.
        let mut long = vec![b' '; 1024];
        long.extend_from_slice(b"down\n");
        assert_eq!(parse_agent_reply(&long), None);
        assert_eq!(parse_agent_reply(b"\n"), Some(AgentReply::default()));
    }
}
