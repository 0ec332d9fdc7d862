//! Server health: the rise/fall state machine, check intervals, slowstart,
//! the agent-check reply parser, the expected HTTP check statuses, check
//! timeouts, the spreading of checks in time, and the [`HealthSource`] seam.
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

use std::ops::RangeInclusive;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
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

/// The HTTP statuses that pass a check (HAProxy 2.2+ `http-check expect
/// status <codes>`): a comma-separated list of codes and ranges such as
/// `200,201,300-310`. Without one, any 2xx or 3xx passes, as `option
/// httpchk` without `http-check expect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMatch(Vec<RangeInclusive<u16>>);

impl Default for StatusMatch {
    /// 2xx and 3xx.
    fn default() -> Self {
        StatusMatch(vec![200..=399])
    }
}

impl StatusMatch {
    /// One status code.
    pub fn code(code: u16) -> Self {
        StatusMatch(vec![code..=code])
    }

    /// Parses `200,201,300-310` (codes 100..=599, a range low to high);
    /// the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let code = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!("`{}` is not an HTTP status (100..=599)", t.trim())),
            }
        };
        let mut out = Vec::new();
        for item in text.split(',') {
            let range = match item.split_once('-') {
                None => code(item)?..=code(item)?,
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(format!("range `{}` runs backwards", item.trim()));
                    }
                    lo..=hi
                }
            };
            out.push(range);
        }
        Ok(StatusMatch(out))
    }

    /// True when `status` passes.
    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }
}

/// How long one check may take (HAProxy's `timeout check`, manual section
/// "timeout check"; `process_chk_conn` / `tcpcheck_main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTimeouts {
    /// Limit on establishing the connection.
    pub connect: Duration,
    /// Limit on the rest of the check (send, then read the reply), counted
    /// from the moment the connection is established; `None` when the
    /// `connect` deadline bounds the whole check.
    pub read: Option<Duration>,
}

impl CheckTimeouts {
    /// With `timeout check` set: `min(timeout connect, inter)` to connect,
    /// then `timeout check` to finish. Without: `inter` for the whole check.
    /// `inter` is the check's configured interval (`agent-inter` for the
    /// agent).
    pub fn new(
        inter: Duration,
        timeout_connect: Duration,
        timeout_check: Option<Duration>,
    ) -> Self {
        match timeout_check {
            Some(read) => CheckTimeouts {
                connect: timeout_connect.min(inter),
                read: Some(read),
            },
            None => CheckTimeouts {
                connect: inter,
                read: None,
            },
        }
    }
}

/// Checks with an interval below this do not set the span over which the
/// first checks are spread (HAProxy's `SRV_CHK_INTER_THRES`).
pub const CHECK_INTER_THRES: Duration = Duration::from_secs(1);

/// The delay before the first run of each check (HAProxy's `start_checks`
/// and `start_check_task`): `intervals` holds the interval each check
/// starts with, in start order (every health and agent check of every
/// server). Check number `pos` of `n` waits `max(mininter, its interval) *
/// pos / n`, where `mininter` is the smallest interval of at least
/// [`CHECK_INTER_THRES`], so the first checks spread evenly over one
/// interval instead of all running at once.
pub fn first_check_delays(intervals: &[Duration]) -> Vec<Duration> {
    let n = intervals.len() as u128;
    let min = intervals
        .iter()
        .filter(|i| **i >= CHECK_INTER_THRES)
        .min()
        .copied()
        .unwrap_or(Duration::ZERO);
    intervals
        .iter()
        .enumerate()
        .map(|(pos, i)| {
            let span = min.max(*i);
            let nanos = span.as_nanos() * pos as u128 / n;
            u64::try_from(nanos).map_or(span, Duration::from_nanos)
        })
        .collect()
}

/// The delay to the next check with HAProxy's global `spread-checks`
/// (0..=50 percent, `process_chk_conn`): `interval` plus or minus a random
/// share of up to `spread_checks` percent of it. The randomness comes in.
pub fn spread_interval(interval: Duration, spread_checks: u32, rng: &mut impl Rng) -> Duration {
    if spread_checks == 0 {
        return interval;
    }
    let rv = interval.mul_f64(f64::from(spread_checks.min(50)) / 100.0);
    let u: f64 = rng.gen_range(0.0..=1.0);
    interval + rv - rv.mul_f64(2.0 * u)
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
    /// Text after a word starting with `#`.
    pub description: Option<String>,
    /// HAProxy's description of the agent's last answer (its `last_agt`,
    /// from `tcpcheck_agent_expect_reply`): `via agent : down (disk
    /// full)`, `agent reports an error : bogus`, or empty.
    pub info: String,
}

impl AgentReply {
    /// A reply that changes nothing and only carries a description: the
    /// agent could not be reached ("Connection refused"), timed out (""),
    /// or sent no line end ("Ignoring incomplete line from agent").
    pub fn noted(info: &str) -> Self {
        AgentReply {
            info: info.to_string(),
            ..AgentReply::default()
        }
    }
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
    let mut out = AgentReply::default();
    // The health word as written, and the first word not understood.
    let (mut health, mut error) = (None, None);
    let mut rest = line.as_ref();
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        if rest.is_empty() {
            break;
        }
        // A word starting with `#` starts the description (a `#` inside a
        // word is part of it, as in HAProxy).
        if let Some(desc) = rest.strip_prefix('#') {
            out.description = Some(desc.trim().to_string());
            break;
        }
        let end = rest.find([' ', ',', '\t']).unwrap_or(rest.len());
        let (w, after) = rest.split_at(end);
        rest = after;
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
                _ => {
                    error.get_or_insert(w);
                    continue;
                }
            }
            if matches!(lw.as_str(), "up" | "down" | "fail" | "stopped") {
                health = Some(w);
            }
        }
    }
    let desc = out.description.as_deref().filter(|d| !d.is_empty());
    out.info = match (health, desc.or(error)) {
        (Some(h), Some(m)) => format!("via agent : {h} ({m})"),
        (Some(h), None) => format!("via agent : {h}"),
        (None, _) => error.map_or_else(String::new, |e| format!("agent reports an error : {e}")),
    };
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
            Some(AgentReply::noted(
                "agent reports an error : \u{fffd}\u{fffd}"
            ))
        );
    }

    #[test]
    fn agent_replies_are_described_as_haproxy_2_6_12_does() {
        // `last_agt` of a live HAProxy 2.6.12 for each reply.
        for (reply, info) in [
            ("up\n", "via agent : up"),
            ("down\n", "via agent : down"),
            ("fail\n", "via agent : fail"),
            ("up 75%\n", "via agent : up"),
            ("stopped hi there\n", "via agent : stopped (hi)"),
            ("DOWN bad #disk full\n", "via agent : DOWN (disk full)"),
            ("up bogus\n", "via agent : up (bogus)"),
            ("50%\n", ""),
            ("drain\n", ""),
            ("maint\n", ""),
            ("ready\n", ""),
            ("bogus\n", "agent reports an error : bogus"),
            ("down#oops\n", "agent reports an error : down#oops"),
        ] {
            assert_eq!(
                parse_agent_reply(reply.as_bytes()).unwrap().info,
                info,
                "{reply:?}"
            );
        }
        // A `#` inside a word is no description: HAProxy 2.6.12 leaves such
        // a server UP.
        let r = parse_agent_reply(b"down#oops\n").unwrap();
        assert_eq!((r.operational, r.description), (None, None));
    }

    #[test]
    fn expected_statuses_are_codes_and_ranges() {
        let m = StatusMatch::parse("200,201,300-310").unwrap();
        for (code, ok) in [
            (200, true),
            (201, true),
            (202, false),
            (300, true),
            (305, true),
        ] {
            assert_eq!(m.matches(code), ok, "{code}");
        }
        assert!(m.matches(310) && !m.matches(311) && !m.matches(299));
        assert_eq!(StatusMatch::parse(" 204 ").unwrap(), StatusMatch::code(204));
        let d = StatusMatch::default();
        assert!(d.matches(200) && d.matches(399) && !d.matches(404) && !d.matches(199));
        for bad in ["", "20x", "200,", "99", "600", "300-200", "200-", "2-3-4"] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad:?}");
        }
        assert!(StatusMatch::parse("300-200")
            .unwrap_err()
            .contains("backwards"));
    }

    #[test]
    fn check_timeouts_follow_timeout_check() {
        let s = Duration::from_secs;
        // Unset: inter bounds the whole check.
        assert_eq!(
            CheckTimeouts::new(s(2), s(5), None),
            CheckTimeouts {
                connect: s(2),
                read: None
            }
        );
        // Set: min(timeout connect, inter) to connect, then timeout check.
        assert_eq!(
            CheckTimeouts::new(s(2), s(5), Some(s(1))),
            CheckTimeouts {
                connect: s(2),
                read: Some(s(1))
            }
        );
        assert_eq!(
            CheckTimeouts::new(s(10), s(3), Some(s(7))),
            CheckTimeouts {
                connect: s(3),
                read: Some(s(7))
            }
        );
    }

    #[test]
    fn first_checks_spread_over_the_smallest_interval() {
        let ms = Duration::from_millis;
        // Four 2 s checks: 0, 0.5 s, 1 s, 1.5 s.
        assert_eq!(
            first_check_delays(&[ms(2000); 4]),
            [ms(0), ms(500), ms(1000), ms(1500)]
        );
        // mininter is the smallest interval >= 1 s; a longer one keeps its
        // own, a shorter one is spread over mininter.
        assert_eq!(
            first_check_delays(&[ms(4000), ms(2000), ms(100), ms(8000)]),
            [ms(0), ms(500), ms(1000), ms(6000)]
        );
        // All below the threshold: each over its own interval.
        assert_eq!(first_check_delays(&[ms(100), ms(100)]), [ms(0), ms(50)]);
        assert!(first_check_delays(&[]).is_empty());
    }

    #[test]
    fn spread_checks_jitters_within_the_percentage() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let inter = Duration::from_secs(2);
        assert_eq!(spread_interval(inter, 0, &mut rng), inter);
        let draws: Vec<Duration> = (0..1000)
            .map(|_| spread_interval(inter, 10, &mut rng))
            .collect();
        let (lo, hi) = (Duration::from_millis(1800), Duration::from_millis(2200));
        assert!(draws.iter().all(|d| (lo..=hi).contains(d)));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(1850)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(2150)));
        // Same seed, same draws.
        let mut a = rand::rngs::SmallRng::seed_from_u64(1);
        let mut b = rand::rngs::SmallRng::seed_from_u64(1);
        assert_eq!(
            spread_interval(inter, 50, &mut a),
            spread_interval(inter, 50, &mut b)
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
