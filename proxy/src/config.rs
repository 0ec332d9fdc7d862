//! Configuration: TOML in, validated typed structs out.
//!
//! ```toml
//! [global]
//! threads = 1                    # 1 = single-threaded runtime
//! thread_model = "per-core"      # threads > 1: "per-core" (one single-threaded runtime and
//!                                # SO_REUSEPORT listener per thread) or "work-stealing"
//! stats_listen = "127.0.0.1:9100" # optional: GET /metrics (Prometheus), GET /stats (CSV)
//! # seed = 1                     # seeds the balancers' and spread_checks' randomness
//! # spread_checks = 5            # 0..=50: +/- this percent of random jitter on check intervals
//! # hard_stop_after = "30s"      # bounds a soft stop (SIGUSR1); default: no bound
//! # noreuseport = false          # true: listeners without SO_REUSEPORT (no reload handover)
//! # log = { target = "udp://127.0.0.1:514", facility = "local0", tag = "haproxy" }
//! #                              # access logs (HAProxy's `log`): "udp://IP:PORT" (RFC 3164
//! #                              # syslog), "stdout" or "stderr" (the line alone)
//!
//! [defaults]
//! timeout_connect = "5s"         # durations: "500ms", "2s", "1m", or integer milliseconds;
//!                                # every timeout must be greater than 0
//! timeout_client = "30s"
//! timeout_server = "30s"
//! # timeout_tunnel = "1h"
//! # timeout_queue = "5s"        # default: the backend's timeout_connect (as HAProxy)
//! retries = 3
//! redispatch = true
//! splice = false                 # option splice-auto (Linux)
//! # log_format = "httplog"       # option tcplog / option httplog for every frontend
//!                                # (a TCP frontend logs "tcplog" for "httplog")
//!
//! [frontends.web]
//! binds = ["127.0.0.1:8080", "127.0.0.1:8081"]
//! backend = "web"
//! mode = "tcp"                   # or "http" (L7; then [[frontends.web.routes]])
//! accept_proxy = false           # require a PROXY v1/v2 header from clients (both modes)
//! # log_format = "tcplog"        # "tcplog" or "httplog" (mode http): one access log line
//!                                # per session or request, to global.log
//!
//! [backends.web]
//! balance = "roundrobin"         # static-rr, leastconn, first, source, consistent, random;
//!                                # HTTP mode: "uri [len N] [depth N] [whole]",
//!                                # "url_param NAME", "hdr(NAME) [use_domain_only]"
//! # hash_type = "map-based"      # or "consistent" [sdbm|djb2|wt6|crc32 [avalanche]]
//! # random_draws = 2             # random: the least loaded of this many draws
//! allbackups = false
//! # http_reuse = "safe"          # HTTP mode: "never", "safe", "aggressive" or "always":
//!                                # which idle server connections a request may take
//! [backends.web.check]           # active checks for servers with check = true
//! kind = "tcp"                   # or "http": method (default "OPTIONS", as option
//!                                # httpchk), path (default "/"), version ("HTTP/1.0"
//!                                # or "HTTP/1.1"), headers ({ Host = "a.example" }),
//!                                # body, expect_status (200 or "200,201,300-310";
//!                                # default any 2xx or 3xx), expect ("[!] string",
//!                                # "rstring" or "rstatus") with pattern;
//!                                # or "tcp-check" (option tcp-check) with rules:
//! # rules = [                    # one action per rule, run in order after the connect
//! #   { send = "PING\r\n" },                          # tcp-check send
//! #   { expect = "string", pattern = "+PONG" },       # tcp-check expect string
//! #   { send_binary = "50494e470d0a" },              # tcp-check send-binary (hex)
//! #   { expect = "! binary", pattern = "2d455252" },  # "!" negates; also "rstring"
//! #   { expect = "rstring", pattern = "role:(master|primary)", min_recv = 5,
//! #     comment = "role check" },                     # min-recv, comment
//! # ]
//! inter = "2s"
//! # timeout = "1s"               # timeout check: min(timeout_connect, inter) to connect,
//!                                # then this; unset: inter bounds the whole check
//! rise = 2                       # rise and fall: 1..=1000
//! fall = 3
//! [backends.web.servers.s1]
//! address = "127.0.0.1:9001"
//! weight = 1                     # 0..=256
//! check = true
//! # backup, disabled (starts in maintenance), maxconn, maxqueue,
//! # check_port, check_addr (checks go there),
//! # agent_port, agent_inter, agent_send ("hello\n"), agent_addr,
//! # slowstart (ramps the weight and maxconn after the server comes back),
//! # send_proxy = "v1" | "v2" (also on check connections),
//! # check_send_proxy = true (a PROXY header on checks even without
//! #   send_proxy or with check_port/check_addr),
//! # on_marked_down = "shutdown-sessions" (on a DOWN and on entering maint),
//! # on_marked_up = "shutdown-backup-sessions" (a primary coming UP closes the
//! #   sessions on the backup servers),
//! # error_limit = N (needs check = true: N connect errors in a row count
//! #   as one failed check, HAProxy's observe layer4 + on-error fail-check)
//! # HTTP mode: pool_max_conn (idle connections kept, default unlimited),
//! # pool_purge_delay (default "5s", "0" never purges)
//! ```
//!
//! Frontend, backend and server names follow HAProxy's rule: not empty, only
//! letters, digits, `_`, `.`, `:` and `-`.
//!
//! Every error names the field (`backends.web.servers.s1.weight`) and the fix;
//! a value of the wrong type (`timeout_connect = true`) is reported with its
//! key path, toml's line and column, and what was expected.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use crate::backend::{BackendOptions, ServerSpec, MAX_WEIGHT};
use crate::balance::{Algorithm, HashType};
use crate::health::{CheckParams, StatusMatch};
use crate::httpcheck::{HttpCheck, HttpExpect, HttpMatch, HttpRequest};
use crate::log::{LogFormat, LogTarget, Target, FACILITIES};
use crate::proxy_protocol::Version;
use crate::tcpcheck::{
    parse_hex, Expect, Pattern, Rstring, TcpCheckAction, TcpCheckRule, CHECK_BUFSIZE,
};
use crate::{Error, Result};

/// A duration as written: integer milliseconds or a string with a unit
/// (`us`, `ms`, `s`, `m`, `h`, `d`; HAProxy's units, bare numbers are ms).
#[derive(Debug, Clone)]
pub enum RawDuration {
    /// Milliseconds.
    Millis(u64),
    /// With a unit.
    Text(String),
}

/// What a duration field expects, for type errors.
const DURATION_EXPECTED: &str = "a duration such as \"500ms\", \"2s\" or integer milliseconds";

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawDuration;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Millis(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<RawDuration, E> {
                u64::try_from(v)
                    .map(RawDuration::Millis)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }

            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl RawDuration {
    fn parse(&self, field: &str) -> Result<Duration> {
        match self {
            RawDuration::Millis(ms) => Ok(Duration::from_millis(*ms)),
            RawDuration::Text(t) => parse_duration(t).ok_or_else(|| {
                Error::config(
                    field,
                    format!("`{t}` is not a duration"),
                    "write e.g. \"500ms\", \"2s\", \"1m\" or an integer of milliseconds",
                )
            }),
        }
    }
}

/// Parses `"500ms"`, `"2s"`, `"1m"`, `"1h"`, `"1d"`, `"10us"`, `"250"` (ms).
pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "ms" => Duration::from_millis(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    };
    Some(d)
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[global]`.
    #[serde(default)]
    pub global: RawGlobal,
    /// `[defaults]`.
    #[serde(default)]
    pub defaults: RawDefaults,
    /// `[frontends.NAME]`.
    #[serde(default)]
    pub frontends: BTreeMap<String, RawFrontend>,
    /// `[backends.NAME]`.
    #[serde(default)]
    pub backends: BTreeMap<String, RawBackend>,
}

/// `[global]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// Worker threads (1 = single-threaded runtime).
    pub threads: Option<usize>,
    /// How several threads share the work: `per-core` or `work-stealing`.
    pub thread_model: Option<String>,
    /// Stats/metrics HTTP listener.
    pub stats_listen: Option<String>,
    /// Seed of the balancers' RNG (and of `spread_checks`).
    pub seed: Option<u64>,
    /// `spread-checks`: random jitter on every check interval, in percent
    /// (0..=50).
    pub spread_checks: Option<u32>,
    /// `hard-stop-after`: how long a soft stop may last before the
    /// sessions left are closed (unset: no limit).
    pub hard_stop_after: Option<RawDuration>,
    /// `noreuseport`: bind listeners without `SO_REUSEPORT`.
    pub noreuseport: Option<bool>,
    /// `log`: where the access logs go.
    pub log: Option<RawLog>,
}

/// `[global] log = { target = ..., facility = ..., tag = ... }`: HAProxy's
/// global `log <target> <facility>` with `log-tag`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `"udp://IP:PORT"`, `"stdout"` or `"stderr"`.
    pub target: Option<String>,
    /// Syslog facility (default `local0`).
    pub facility: Option<String>,
    /// Syslog tag (default `haproxy`).
    pub tag: Option<String>,
}

/// `[defaults]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// `timeout connect`.
    pub timeout_connect: Option<RawDuration>,
    /// `timeout client`.
    pub timeout_client: Option<RawDuration>,
    /// `timeout server`.
    pub timeout_server: Option<RawDuration>,
    /// `timeout tunnel`.
    pub timeout_tunnel: Option<RawDuration>,
    /// `timeout queue`.
    pub timeout_queue: Option<RawDuration>,
    /// `retries`.
    pub retries: Option<u32>,
    /// `option redispatch`.
    pub redispatch: Option<bool>,
    /// `option splice-auto`: bulk directions switch to splice(2) (Linux).
    pub splice: Option<bool>,
    /// `option tcplog` / `option httplog` for every frontend.
    pub log_format: Option<String>,
}

/// `[frontends.NAME]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFrontend {
    /// Listen addresses.
    #[serde(default)]
    pub binds: Vec<String>,
    /// Default backend.
    pub backend: Option<String>,
    /// `accept-proxy`: require a PROXY protocol header (v1 or v2) from
    /// clients, in both modes; its source is the client from then on.
    #[serde(default)]
    pub accept_proxy: bool,
    /// Per-frontend `timeout client`.
    pub timeout_client: Option<RawDuration>,
    /// Concurrent sessions limit of this frontend (0 = none).
    pub maxconn: Option<u32>,
    /// Overrides `[defaults] splice`.
    pub splice: Option<bool>,
    /// `tcp` (default) or `http`.
    pub mode: Option<String>,
    /// HTTP mode: routes tried in order before `backend`.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `option tcplog` / `option httplog` (overrides `[defaults]`).
    pub log_format: Option<String>,
}

/// `[[frontends.NAME.routes]]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Exact host (case-insensitive, port ignored).
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Backend for matching requests.
    pub backend: Option<String>,
}

/// `[backends.NAME]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    /// Balancing algorithm, as HAProxy's `balance` line (`"uri depth 2"`,
    /// `"url_param userid"`, `"hdr(Host) use_domain_only"`).
    pub balance: Option<String>,
    /// HAProxy's `hash-type` (`"map-based"`, `"consistent"`, then
    /// optionally a function and `avalanche`).
    pub hash_type: Option<String>,
    /// `option allbackups`.
    #[serde(default)]
    pub allbackups: bool,
    /// `hash-balance-factor` (percent) for `consistent`.
    pub hash_balance_factor: Option<u32>,
    /// Draws of `random` (HAProxy `balance random(<draws>)`, default 2).
    pub random_draws: Option<u32>,
    /// HAProxy's `http-reuse`: `"never"`, `"safe"` (default),
    /// `"aggressive"` or `"always"`.
    pub http_reuse: Option<String>,
    /// Overrides `[defaults]`.
    pub retries: Option<u32>,
    /// Overrides `[defaults]`.
    pub redispatch: Option<bool>,
    /// Overrides `[defaults]`.
    pub timeout_connect: Option<RawDuration>,
    /// Overrides `[defaults]`.
    pub timeout_server: Option<RawDuration>,
    /// Overrides `[defaults]`.
    pub timeout_tunnel: Option<RawDuration>,
    /// Overrides `[defaults]`.
    pub timeout_queue: Option<RawDuration>,
    /// Active check settings.
    pub check: Option<RawCheck>,
    /// HTTP mode: cookie-based persistence (HAProxy's backend `cookie`).
    pub cookie: Option<RawCookie>,
    /// `option persist`: a cookie naming a DOWN (or MAINT) server still
    /// sends its request there.
    #[serde(default)]
    pub persist: bool,
    /// HAProxy's `stick-table` (`type`, `size`, `expire`).
    pub stick_table: Option<RawStickTable>,
    /// HAProxy's sticking rule: `"on src"`, `"match dst"`,
    /// `"store-request src"`, ...
    pub stick: Option<String>,
    /// Servers by name, in the order written: a server's id is its position
    /// (HAProxy's default `id`), which `first`, the backup used without
    /// `allbackups` and the hash placements follow.
    #[serde(default, deserialize_with = "in_written_order")]
    pub servers: Vec<(String, RawServer)>,
}

/// A TOML table's entries in the order they are written (the parser
/// rejects duplicate keys itself).
fn in_written_order<'de, D, V>(d: D) -> std::result::Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Entries<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Entries<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table of servers by name")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Entries(std::marker::PhantomData))
}

/// `[backends.NAME.cookie]`: HAProxy's `cookie <name> insert [indirect]
/// [nocache] [httponly] [secure] [domain <domain>]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    /// The cookie's name.
    pub name: Option<String>,
    /// Only `insert` (`rewrite` and `prefix` are not supported).
    pub mode: Option<String>,
    /// `indirect`.
    #[serde(default)]
    pub indirect: bool,
    /// `nocache`.
    #[serde(default)]
    pub nocache: bool,
    /// `httponly`.
    #[serde(default)]
    pub httponly: bool,
    /// `secure`.
    #[serde(default)]
    pub secure: bool,
    /// `domain`.
    pub domain: Option<String>,
}

/// `[backends.NAME.stick_table]`: HAProxy's `stick-table type <type> size
/// <size> [expire <expire>]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStickTable {
    /// `ip` or `ipv6`.
    #[serde(rename = "type")]
    pub table_type: Option<String>,
    /// Most entries.
    pub size: Option<u64>,
    /// Idle expiry; none: entries never expire.
    pub expire: Option<RawDuration>,
}

/// A backend's `stick_table` and `stick` (both or neither).
fn stick(
    bname: &str,
    table: Option<&RawStickTable>,
    rule: Option<&str>,
) -> Result<Option<crate::stick::StickSpec>> {
    use crate::stick::{Sample, StickRule, StickSpec, TableType};
    let tf = |k: &str| format!("backends.{bname}.stick_table.{k}");
    let rf = format!("backends.{bname}.stick");
    let (t, rule) = match (table, rule) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(Error::config(
                rf,
                "is missing: the stick table has no rule",
                "add stick = \"on src\" (or remove stick_table)",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::config(
                format!("backends.{bname}.stick_table"),
                "is missing: the stick rule needs a table",
                "add stick_table = { type = \"ip\", size = 1000, expire = \"30m\" }",
            ))
        }
        (Some(t), Some(r)) => (t, r),
    };
    let table_type = match t.table_type.as_deref() {
        Some("ip") => TableType::Ip,
        Some("ipv6") => TableType::Ipv6,
        None => return Err(Error::config(tf("type"), "is missing", "add type = \"ip\"")),
        Some(o) => {
            return Err(Error::config(
                tf("type"),
                format!("`{o}` is not supported (only address keys are)"),
                "use type = \"ip\" or \"ipv6\"",
            ))
        }
    };
    let size = match t.size {
        None => return Err(Error::config(tf("size"), "is missing", "add size = 1000")),
        Some(0) => {
            return Err(Error::config(
                tf("size"),
                "must be greater than 0",
                "give the most entries, e.g. size = 1000",
            ))
        }
        Some(n) => u32::try_from(n)
            .map_err(|_| Error::config(tf("size"), "is too large", "give at most 4294967295"))?
            as usize,
    };
    let expire = t
        .expire
        .as_ref()
        .map(|e| positive(&tf("expire"), e.parse(&tf("expire"))?))
        .transpose()?;
    let words: Vec<&str> = rule.split_whitespace().collect();
    let fix = "write \"on src\", \"on dst\", \"match src\" or \"store-request src\"";
    let (rule, sample) = match words.as_slice() {
        [kind, sample] => (kind, sample),
        _ => {
            return Err(Error::config(
                rf,
                format!("`{rule}` is not KIND SAMPLE"),
                fix,
            ))
        }
    };
    let rule = match *rule {
        "on" => StickRule::On,
        "match" => StickRule::Match,
        "store-request" => StickRule::StoreRequest,
        o => {
            return Err(Error::config(
                rf,
                format!("`{o}` is not supported (on, match and store-request are)"),
                fix,
            ))
        }
    };
    let sample = match *sample {
        "src" => Sample::Src,
        "dst" => Sample::Dst,
        o => {
            return Err(Error::config(
                rf,
                format!("sample `{o}` is not supported (src and dst are)"),
                fix,
            ))
        }
    };
    Ok(Some(StickSpec {
        table_type,
        size,
        expire,
        rule,
        sample,
    }))
}

/// Whether `v` can stand in a cookie as a name or value: not empty,
/// visible ASCII without `;`, `,`, `=`, `|` (the date separator), quotes or
/// a backslash.
fn cookie_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && !b";,=|\"\\".contains(&b))
}

/// `[backends.NAME.cookie]`.
fn cookie(field: &dyn Fn(&str) -> String, c: &RawCookie) -> Result<crate::cookie::Cookie> {
    let name = c
        .name
        .clone()
        .ok_or_else(|| Error::config(field("name"), "is missing", "add name = \"SERVERID\""))?;
    if !cookie_token(&name) {
        return Err(Error::config(
            field("name"),
            format!("`{name}` cannot be a cookie name"),
            "use letters, digits and `_` or `-`",
        ));
    }
    match c.mode.as_deref() {
        Some("insert") => {}
        None => {
            return Err(Error::config(
                field("mode"),
                "is missing",
                "add mode = \"insert\"",
            ))
        }
        Some(m @ ("rewrite" | "prefix")) => {
            return Err(Error::config(
                field("mode"),
                format!("`{m}` is not supported"),
                "use mode = \"insert\" (halyard inserts the cookie itself)",
            ))
        }
        Some(m) => {
            return Err(Error::config(
                field("mode"),
                format!("unknown mode `{m}`"),
                "use mode = \"insert\"",
            ))
        }
    }
    if let Some(d) = c.domain.as_deref().filter(|d| !cookie_token(d)) {
        return Err(Error::config(
            field("domain"),
            format!("`{d}` is not a domain"),
            "write a domain name, e.g. \".example.com\"",
        ));
    }
    Ok(crate::cookie::Cookie {
        name,
        indirect: c.indirect,
        nocache: c.nocache,
        httponly: c.httponly,
        secure: c.secure,
        domain: c.domain.clone(),
    })
}

/// `[backends.NAME.check]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// `tcp` (connect) or `http`.
    pub kind: Option<String>,
    /// HTTP method (default `OPTIONS`, as HAProxy's `option httpchk`).
    pub method: Option<String>,
    /// HTTP path (default `/`).
    pub path: Option<String>,
    /// HTTP version, `HTTP/1.0` (default) or `HTTP/1.1` (HAProxy's `ver`).
    pub version: Option<String>,
    /// Request headers (HAProxy's `http-check send hdr <name> <value>`).
    pub headers: Option<BTreeMap<String, String>>,
    /// Request body (HAProxy's `http-check send body <string>`).
    pub body: Option<String>,
    /// Expected statuses: one code or a string of codes and ranges
    /// (default: any 2xx or 3xx).
    pub expect_status: Option<RawStatus>,
    /// `http-check expect [!] rstatus|string|rstring`: what `pattern` is
    /// looked for in.
    pub expect: Option<String>,
    /// The `expect` rule's `<pattern>`.
    pub pattern: Option<String>,
    /// `inter`.
    pub inter: Option<RawDuration>,
    /// `fastinter`.
    pub fastinter: Option<RawDuration>,
    /// `downinter`.
    pub downinter: Option<RawDuration>,
    /// `rise`.
    pub rise: Option<u32>,
    /// `fall`.
    pub fall: Option<u32>,
    /// `timeout check` (default: none, `inter` bounds the whole check).
    pub timeout: Option<RawDuration>,
    /// `kind = "tcp-check"`: the `tcp-check` rules, in order.
    pub rules: Option<Vec<RawTcpCheckRule>>,
}

/// One entry of `rules` (`kind = "tcp-check"`): exactly one of `send`,
/// `send_binary` or `expect` (with `pattern`, optionally `min_recv`), and
/// optionally `comment`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTcpCheckRule {
    /// `tcp-check send <data>`.
    pub send: Option<String>,
    /// `tcp-check send-binary <hexstring>`.
    pub send_binary: Option<String>,
    /// `tcp-check expect [!] <match>`: `string`, `binary` or `rstring`,
    /// `!` in front negates.
    pub expect: Option<String>,
    /// The expect rule's `<pattern>`.
    pub pattern: Option<String>,
    /// `min-recv <n>`.
    pub min_recv: Option<u32>,
    /// `comment <msg>`.
    pub comment: Option<String>,
    /// `tcp-check connect`: refused with an explanation (the check always
    /// connects first).
    pub connect: Option<toml::Value>,
}

/// `expect_status` as written: `200` or `"200,201,300-310"`.
#[derive(Debug, Clone)]
pub enum RawStatus {
    /// One code.
    Code(i64),
    /// Codes and ranges.
    Text(String),
}

impl<'de> Deserialize<'de> for RawStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawStatus;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code such as 200 or a string such as \"200,201,300-310\"")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<RawStatus, E> {
                Ok(RawStatus::Code(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<RawStatus, E> {
                Ok(RawStatus::Code(i64::try_from(v).unwrap_or(i64::MAX)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawStatus, E> {
                Ok(RawStatus::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[backends.NAME.servers.NAME]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `IP:port`.
    pub address: Option<String>,
    /// 0..=256, default 1.
    pub weight: Option<u32>,
    /// Backup server.
    #[serde(default)]
    pub backup: bool,
    /// 0 = unlimited.
    #[serde(default)]
    pub maxconn: u32,
    /// 0 = unlimited.
    #[serde(default)]
    pub maxqueue: u32,
    /// Run active checks.
    #[serde(default)]
    pub check: bool,
    /// HAProxy's `disabled`: start in maintenance.
    #[serde(default)]
    pub disabled: bool,
    /// `slowstart`: ramps the weight and `maxconn` after the server comes
    /// back UP or leaves maintenance.
    pub slowstart: Option<RawDuration>,
    /// Passive health: consecutive connect errors that count as one failed
    /// check (0 = off; needs `check = true`).
    #[serde(default)]
    pub error_limit: u32,
    /// `port`: active checks go to this port instead of the server's.
    pub check_port: Option<u16>,
    /// `addr`: active checks (and the agent, without `agent_addr`) go to
    /// this IP instead of the server's.
    pub check_addr: Option<String>,
    /// Agent check port (on `agent_addr`, else `check_addr`, else the
    /// server's IP).
    pub agent_port: Option<u16>,
    /// Agent check interval (default: the check `inter`).
    pub agent_inter: Option<RawDuration>,
    /// `agent-send`: sent to the agent once connected (default: nothing).
    pub agent_send: Option<String>,
    /// `agent-addr`: the agent's IP.
    pub agent_addr: Option<String>,
    /// `send-proxy` (`v1`) / `send-proxy-v2` (`v2`).
    pub send_proxy: Option<String>,
    /// `check-send-proxy`: a PROXY header on the check connections even
    /// without `send_proxy`, or with `check_port`/`check_addr`.
    #[serde(default)]
    pub check_send_proxy: bool,
    /// `on-marked-down`: only `shutdown-sessions`.
    pub on_marked_down: Option<String>,
    /// `on-marked-up`: only `shutdown-backup-sessions`.
    pub on_marked_up: Option<String>,
    /// `pool-max-conn`: most idle HTTP connections kept (default unlimited).
    pub pool_max_conn: Option<u32>,
    /// `pool-purge-delay` (default 5s; 0 never purges).
    pub pool_purge_delay: Option<RawDuration>,
    /// HAProxy's server `cookie`: the persistence cookie's value for this
    /// server (needs the backend's `cookie` table).
    pub cookie: Option<String>,
}

/// Timeouts in force for a frontend/backend pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connect to a server.
    pub connect: Duration,
    /// Client inactivity.
    pub client: Duration,
    /// Server inactivity.
    pub server: Duration,
    /// Inactivity in both directions once connected; replaces client/server.
    pub tunnel: Option<Duration>,
    /// Longest wait in the queue (default: `connect`, as HAProxy).
    pub queue: Duration,
}

/// What an active check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// TCP connect.
    Tcp,
    /// `option httpchk`: a request, and expectations on the response.
    Http(HttpCheck),
    /// `option tcp-check`: connect, then these rules in order (never empty).
    TcpCheck(Vec<TcpCheckRule>),
}

/// Active check settings of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    /// What to do.
    pub kind: CheckKind,
    /// Timing.
    pub params: CheckParams,
    /// `timeout check`: once connected, the rest of the check must finish
    /// within it (and connecting within `min(timeout connect, inter)`);
    /// `None`: `inter` bounds the whole check. See
    /// [`crate::health::CheckTimeouts`].
    pub timeout: Option<Duration>,
}

/// A validated frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendConfig {
    /// Name.
    pub name: String,
    /// Listen addresses.
    pub binds: Vec<SocketAddr>,
    /// Backend name.
    pub backend: String,
    /// Require a PROXY header (its addresses are the client's).
    pub accept_proxy: bool,
    /// Client inactivity timeout.
    pub timeout_client: Duration,
    /// Concurrent sessions limit (0 = none).
    pub maxconn: u32,
    /// Bulk directions switch to splice(2).
    pub splice: bool,
    /// TCP or HTTP.
    pub mode: Mode,
    /// HTTP routes, tried in order; `backend` when none matches.
    pub routes: Vec<Route>,
    /// Access log lines (to [`Config::log`]); `None` logs nothing.
    pub log: Option<LogFormat>,
}

/// Frontend mode; a backend's is HTTP when an HTTP frontend uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// L4: bytes are forwarded opaquely.
    Tcp,
    /// L7: HTTP/1.1, balanced per request over kept-alive server connections.
    Http,
}

/// An HTTP route: every given condition must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host (lowercase, without port).
    pub host: Option<String>,
    /// Path prefix.
    pub path_prefix: Option<String>,
    /// Backend name.
    pub backend: String,
}

impl Route {
    /// True when `host` (already lowercased, without port) and `path` match.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        self.host.as_deref().is_none_or(|h| host == Some(h))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// HAProxy's `http-reuse`: which idle server connections an HTTP request
/// may take (HTTP mode only; a TCP session always opens its own, and
/// HAProxy ignores `http-reuse` in `mode tcp` as well). A connection that
/// carried one request is *idle*; once it carried a second one it is
/// *safe* (HAProxy's `idle_conns` and `safe_conns`: `mux_h1`'s `h1_detach`
/// puts it in the safe list when the request it just carried was not its
/// first). A request is *first* when it is the first one of its client
/// connection (HAProxy's `TX_NOT_FIRST` unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpReuse {
    /// No sharing: a server connection serves only the client connection
    /// that opened it (kept with that client connection, closed with it).
    Never,
    /// The default: a first request gets a new connection; the others may
    /// take any idle or safe one.
    #[default]
    Safe,
    /// As `Safe`, but a first request may also take a safe connection.
    Aggressive,
    /// Any request may take any idle connection, safe ones first for a
    /// first request.
    Always,
}

/// A server's list of idle connections (HAProxy's `idle_conns` and
/// `safe_conns`; see [`HttpReuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleList {
    /// Carried one request.
    Idle,
    /// Carried more than one (proved reusable).
    Safe,
}

impl HttpReuse {
    /// The lists of the server's shared idle connections a request may take
    /// from, in the order they are tried: HAProxy 2.6's `connect_server`
    /// table. Empty for a first request under `Safe` (a new connection) and
    /// for every request under `Never` (only the client connection's own).
    pub fn lists(self, first: bool) -> &'static [IdleList] {
        use IdleList::{Idle, Safe};
        match (self, first) {
            (HttpReuse::Never, _) | (HttpReuse::Safe, true) => &[],
            (HttpReuse::Aggressive, true) => &[Safe],
            (HttpReuse::Always, true) => &[Safe, Idle],
            (_, false) => &[Idle, Safe],
        }
    }
}

impl std::str::FromStr for HttpReuse {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "never" => Ok(HttpReuse::Never),
            "safe" => Ok(HttpReuse::Safe),
            "aggressive" => Ok(HttpReuse::Aggressive),
            "always" => Ok(HttpReuse::Always),
            _ => Err(format!("unknown mode `{s}`")),
        }
    }
}

/// How a server's idle kept-alive connections are kept (`pool-max-conn`,
/// `pool-purge-delay` in HAProxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Most idle connections kept for the server, over all threads; `None`
    /// is unlimited (HAProxy's default), `Some(0)` keeps none.
    pub max_conn: Option<usize>,
    /// How often idle connections beyond the recent need are closed; zero
    /// never purges.
    pub purge_delay: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_conn: None,
            purge_delay: Duration::from_secs(5),
        }
    }
}

/// A validated server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The pure part.
    pub spec: ServerSpec,
    /// PROXY header to send to the server: at the start of each session
    /// (TCP mode) or of each new server connection (HTTP mode, where an
    /// idle connection is reused only for the same header).
    pub send_proxy: Option<Version>,
    /// `check-send-proxy`: checks send a PROXY header even when
    /// [`ServerConfig::send_proxy`] alone would not give them one.
    pub send_proxy_on_checks: bool,
    /// `port`: active checks go to this port.
    pub check_port: Option<u16>,
    /// `addr`: active checks, and the agent without `agent_addr`, go to
    /// this IP.
    pub check_addr: Option<IpAddr>,
    /// Agent port.
    pub agent_port: Option<u16>,
    /// Agent interval.
    pub agent_inter: Duration,
    /// `agent-send`: bytes sent to the agent once connected.
    pub agent_send: Option<String>,
    /// `agent-addr`: the agent's IP.
    pub agent_addr: Option<IpAddr>,
    /// HTTP mode: idle kept-alive connections to the server.
    pub pool: PoolLimits,
}

impl ServerConfig {
    /// A server with the defaults for everything beyond `spec`: no PROXY
    /// header, no agent (interval 2 s), HAProxy's pool defaults.
    pub fn new(spec: ServerSpec) -> ServerConfig {
        ServerConfig {
            spec,
            send_proxy: None,
            send_proxy_on_checks: false,
            check_port: None,
            check_addr: None,
            agent_port: None,
            agent_inter: Duration::from_secs(2),
            agent_send: None,
            agent_addr: None,
            pool: PoolLimits::default(),
        }
    }

    /// Where active checks go: the server's address with `check_addr` and
    /// `check_port` applied.
    pub fn check_target(&self) -> CheckTarget {
        CheckTarget {
            ip: self.check_addr,
            port: self.check_port,
        }
    }

    /// The PROXY header of check connections: the server's `send_proxy`,
    /// but only while checks go to the server itself (HAProxy's
    /// `init_srv_check`: a check `port` or `addr` drops it). With
    /// `check-send-proxy` always, in the server's version, v1 when it has
    /// none (HAProxy's `make_proxy_line` picks v2 only for `send-proxy-v2`;
    /// checked against HAProxy 2.6.12).
    pub fn check_send_proxy(&self) -> Option<Version> {
        if self.send_proxy_on_checks {
            return Some(self.send_proxy.unwrap_or(Version::V1));
        }
        self.send_proxy
            .filter(|_| self.check_port.is_none() && self.check_addr.is_none())
    }

    /// Where the agent is: `agent_port` on `agent_addr`, else on
    /// `check_addr` (HAProxy's `addr` applies to the agent too), else on
    /// the server's IP. `None` without an agent.
    pub fn agent_target(&self) -> Option<CheckTarget> {
        self.agent_port.map(|port| CheckTarget {
            ip: self.agent_addr.or(self.check_addr),
            port: Some(port),
        })
    }
}

/// Where a check connects, relative to the server's address: HAProxy's
/// `addr` and `port` (or `agent-addr`, `agent-port`) replace parts of it;
/// the parts not set follow the server, also after `set server ... addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckTarget {
    /// The IP to use instead of the server's.
    pub ip: Option<IpAddr>,
    /// The port to use instead of the server's.
    pub port: Option<u16>,
}

impl CheckTarget {
    /// The address to connect to while the server is at `server`.
    pub fn resolve(self, server: SocketAddr) -> SocketAddr {
        SocketAddr::new(
            self.ip.unwrap_or(server.ip()),
            self.port.unwrap_or(server.port()),
        )
    }
}

/// A validated backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Name.
    pub name: String,
    /// Options of the pure core.
    pub options: BackendOptions,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Active checks.
    pub check: Option<CheckSpec>,
    /// Servers in the order written (their ids follow it).
    pub servers: Vec<ServerConfig>,
}

/// How `threads > 1` worker threads share the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreadModel {
    /// Thread per core: every thread runs its own single-threaded runtime
    /// with its own `SO_REUSEPORT` listener per bind address (the kernel
    /// spreads new connections); a session stays on the thread that
    /// accepted it. Backend state is shared (one short-held mutex).
    #[default]
    PerCore,
    /// One tokio multi-threaded (work-stealing) runtime with `threads` workers.
    WorkStealing,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Worker threads.
    pub threads: usize,
    /// `spread-checks` (0..=50 percent).
    pub spread_checks: u32,
    /// `global.seed`, if set: seeds the balancers (0 when unset) and
    /// the `spread_checks` jitter (the clock when unset).
    pub seed: Option<u64>,
    /// How several worker threads share the work.
    pub thread_model: ThreadModel,
    /// Stats listener.
    pub stats_listen: Option<SocketAddr>,
    /// `global.hard_stop_after` (HAProxy's `hard-stop-after`): a soft stop
    /// closes the sessions still open after this long; `None`: it waits
    /// for them however long they last.
    pub hard_stop_after: Option<Duration>,
    /// Listeners (frontends and the stats listener) are bound with
    /// `SO_REUSEPORT` (HAProxy's default), so that a new process can bind
    /// the same addresses while this one still listens (reload); `false`
    /// with `global.noreuseport = true`.
    pub reuseport: bool,
    /// `global.log`: where the frontends' access logs go.
    pub log: Option<LogTarget>,
    /// Frontends in name order.
    pub frontends: Vec<FrontendConfig>,
    /// Backends in name order.
    pub backends: Vec<BackendConfig>,
}

/// Validates `global.log`.
fn log_target(l: &RawLog) -> Result<LogTarget> {
    let t = l.target.as_deref().ok_or_else(|| {
        Error::config(
            "global.log.target",
            "is missing",
            "add target = \"udp://127.0.0.1:514\" (syslog), \"stdout\" or \"stderr\"",
        )
    })?;
    let target = match t {
        "stdout" => Target::Stdout,
        "stderr" => Target::Stderr,
        _ => match t.strip_prefix("udp://").map(str::parse) {
            Some(Ok(a)) => Target::Udp(a),
            _ => return Err(Error::config(
                "global.log.target",
                format!("`{t}` is not a log target"),
                "write \"udp://IP:PORT\" (e.g. \"udp://127.0.0.1:514\"), \"stdout\" or \"stderr\"",
            )),
        },
    };
    let facility = match l.facility.as_deref() {
        None => 16,
        Some(f) => FACILITIES.iter().position(|n| *n == f).ok_or_else(|| {
            Error::config(
                "global.log.facility",
                format!("unknown facility `{f}`"),
                format!("use one of {}", FACILITIES.join(", ")),
            )
        })? as u8,
    };
    let tag = l.tag.clone().unwrap_or_else(|| "haproxy".into());
    if tag.is_empty()
        || tag.len() > 32
        || !tag
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'[' && b != b':')
    {
        return Err(Error::config(
            "global.log.tag",
            format!("`{tag}` cannot be a syslog tag"),
            "use 1 to 32 visible characters without `[` or `:` (RFC 3164), e.g. \"haproxy\"",
        ));
    }
    Ok(LogTarget {
        target,
        facility,
        tag,
    })
}

/// A `log_format` value; `field` names it in errors.
fn log_format(field: &str, v: &str) -> Result<LogFormat> {
    match v {
        "tcplog" => Ok(LogFormat::Tcp),
        "httplog" => Ok(LogFormat::Http),
        o => Err(Error::config(
            field,
            format!("unknown log format `{o}`"),
            "use \"tcplog\" or \"httplog\" (custom log-format strings are not supported)",
        )),
    }
}

/// What to do about a bad name (see [`name_problem`]).
pub(crate) const NAME_FIX: &str =
    "use only letters, digits, '_', '.', ':' and '-' (HAProxy's rule for proxy and server names)";

/// HAProxy's rule for frontend, backend and server names (`invalid_char`):
/// not empty, only `[A-Za-z0-9_.:-]`. A `/` would make a server unreachable
/// by `BACKEND/SERVER` commands, a `,` would break the CSV stats. `None`
/// when `name` is fine, else what is wrong with it.
pub(crate) fn name_problem(kind: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("the {kind} name is empty"));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        .map(|c| format!("character {c:?} is not permitted in {kind} name `{name}`"))
}

/// An `on-marked-*` setting that knows one action: whether it is set.
fn only_action(field: &str, value: &Option<String>, action: &str) -> Result<bool> {
    match value.as_deref() {
        None => Ok(false),
        Some(v) if v == action => Ok(true),
        Some(o) => Err(Error::config(
            field,
            format!("unknown action `{o}`"),
            format!("use \"{action}\" or leave it out"),
        )),
    }
}

fn check_name(field: &str, kind: &str, name: &str) -> Result<()> {
    match name_problem(kind, name) {
        Some(problem) => Err(Error::config(field, problem, NAME_FIX)),
        None => Ok(()),
    }
}

/// Largest `rise` or `fall` accepted. HAProxy sets no upper bound, but the
/// health counter runs to `rise + fall - 1` and must not overflow; a
/// thousand consecutive check results (over half an hour at the default
/// `inter 2s`) is far beyond any useful threshold, so a larger value is
/// taken for a typo.
pub const MAX_RISE_FALL: u32 = 1000;

fn addr(field: &str, v: &str) -> Result<SocketAddr> {
    v.parse().map_err(|_| {
        Error::config(
            field,
            format!("`{v}` is not an IP:port address"),
            "write e.g. \"127.0.0.1:8080\"",
        )
    })
}

/// An IP address for a check target (`check_addr`, `agent_addr`).
fn ip(field: &str, v: &str) -> Result<IpAddr> {
    v.parse().map_err(|_| {
        Error::config(
            field,
            format!("`{v}` is not an IP address"),
            "write an IP without a port, e.g. \"127.0.0.2\"",
        )
    })
}

/// Validates `rules` (`kind = "tcp-check"`); `field` is
/// `backends.NAME.check.rules`.
fn tcp_check_rules(field: &str, raw: &[RawTcpCheckRule]) -> Result<Vec<TcpCheckRule>> {
    if raw.is_empty() {
        return Err(Error::config(
            field,
            "a tcp-check needs at least one rule",
            "add rules such as [{ send = \"PING\\r\\n\" }, { expect = \"string\", pattern = \"+PONG\" }], \
             or use kind = \"tcp\" for a connect-only check",
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let rf = |k: &str| format!("{field}[{i}].{k}");
        if r.connect.is_some() {
            return Err(Error::config(
                rf("connect"),
                "the check always connects first by itself (HAProxy's implicit \
                 `tcp-check connect`); other connects are not supported",
                "remove this rule; to check another port or address, set check_port or \
                 check_addr on the servers",
            ));
        }
        let actions: Vec<&str> = [
            ("send", r.send.is_some()),
            ("send_binary", r.send_binary.is_some()),
            ("expect", r.expect.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match actions.len() {
            1 => {}
            0 => {
                return Err(Error::config(
                    format!("{field}[{i}]"),
                    "the rule has no action",
                    "give it one of send, send_binary or expect (a comment goes on the rule \
                     it describes)",
                ))
            }
            n => {
                return Err(Error::config(
                    format!("{field}[{i}]"),
                    format!("the rule has {n} actions ({})", actions.join(", ")),
                    "give each rule one action: split it into one rule per action, in order",
                ))
            }
        }
        if r.expect.is_none() {
            if let Some(k) = [
                ("pattern", r.pattern.is_some()),
                ("min_recv", r.min_recv.is_some()),
            ]
            .into_iter()
            .find_map(|(k, set)| set.then_some(k))
            {
                return Err(Error::config(
                    rf(k),
                    "only expect rules take it",
                    format!("remove {k} from this rule or make it an expect rule"),
                ));
            }
        }
        let action = if let Some(data) = &r.send {
            TcpCheckAction::Send(send_data(&rf("send"), data.as_bytes().to_vec())?)
        } else if let Some(hex) = &r.send_binary {
            let data = parse_hex(hex).map_err(|problem| {
                Error::config(
                    rf("send_binary"),
                    problem,
                    "write pairs of hex digits, e.g. \"50494e470d0a\" for PING\\r\\n",
                )
            })?;
            TcpCheckAction::Send(send_data(&rf("send_binary"), data)?)
        } else {
            let kind = r.expect.as_deref().unwrap_or_default();
            TcpCheckAction::Expect(expect_rule(&rf, kind, r)?)
        };
        out.push(TcpCheckRule {
            action,
            comment: r.comment.clone(),
        });
    }
    Ok(out)
}

/// The bytes of a `send` rule: not empty, shorter than the check buffer
/// (HAProxy refuses larger ones at run time, `L7RSP`).
fn send_data(field: &str, data: Vec<u8>) -> Result<Vec<u8>> {
    if data.is_empty() {
        return Err(Error::config(
            field,
            "nothing to send",
            "give the bytes to send, or remove the rule",
        ));
    }
    if data.len() >= CHECK_BUFSIZE {
        return Err(Error::config(
            field,
            format!(
                "{} bytes do not fit the check buffer ({CHECK_BUFSIZE} bytes)",
                data.len()
            ),
            format!("send fewer than {CHECK_BUFSIZE} bytes per rule"),
        ));
    }
    Ok(data)
}

/// `expect = "[!] string|binary|rstring"` with its `pattern` and `min_recv`.
fn expect_rule(rf: &dyn Fn(&str) -> String, kind: &str, r: &RawTcpCheckRule) -> Result<Expect> {
    let (negate, name) = match kind.trim().strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, kind.trim()),
    };
    let Some(text) = &r.pattern else {
        return Err(Error::config(
            rf("pattern"),
            format!("expect \"{kind}\" needs a pattern"),
            "add pattern = \"...\" (the bytes, hex digits or regex to look for)",
        ));
    };
    if text.is_empty() {
        return Err(Error::config(
            rf("pattern"),
            "the pattern is empty",
            "give the content to look for",
        ));
    }
    let bad_pattern = |problem: String, fix: &str| Error::config(rf("pattern"), problem, fix);
    let pattern = match name {
        "string" => Pattern::String(text.as_bytes().to_vec()),
        "binary" => Pattern::Binary(parse_hex(text).map_err(|p| {
            bad_pattern(
                p,
                "write pairs of hex digits, e.g. \"2b504f4e47\" for +PONG",
            )
        })?),
        "rstring" => Pattern::Rstring(Rstring::new(text).map_err(|p| {
            bad_pattern(
                p,
                "write a regular expression in Rust regex syntax (byte-oriented, no \
                 look-around or back-references)",
            )
        })?),
        other => {
            return Err(Error::config(
                rf("expect"),
                format!("unknown match `{other}`"),
                "use \"string\", \"binary\" or \"rstring\", with \"!\" in front to negate \
                 (\"! string\")",
            ))
        }
    };
    Ok(Expect {
        pattern,
        negate,
        min_recv: r.min_recv.map(|m| m as usize),
    })
}

/// Validates an HTTP check (`kind = "http"`): the request (`method`,
/// `path`, `version`, `headers`, `body`: HAProxy's `option httpchk` and
/// `http-check send`) and the expectations (`expect_status`, then `expect`
/// with `pattern`: HAProxy's `http-check expect` rules, in that order).
fn http_check(cf: &dyn Fn(&str) -> String, c: &RawCheck) -> Result<HttpCheck> {
    // HAProxy's `option httpchk` default: OPTIONS.
    let method = c.method.clone().unwrap_or_else(|| "OPTIONS".into());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::config(
            cf("method"),
            format!("`{method}` is not an HTTP method"),
            "use e.g. \"GET\", \"HEAD\" or \"OPTIONS\"",
        ));
    }
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Error::config(
            cf("path"),
            format!("`{path}` is not a request path"),
            "start it with / and leave out spaces and control characters",
        ));
    }
    let version = c.version.clone().unwrap_or_else(|| "HTTP/1.0".into());
    if version != "HTTP/1.0" && version != "HTTP/1.1" {
        return Err(Error::config(
            cf("version"),
            format!("`{version}` is not a supported HTTP version"),
            "use \"HTTP/1.0\" (the default) or \"HTTP/1.1\" (then also set headers = { Host = \"...\" })",
        ));
    }
    let mut headers = Vec::new();
    for (name, value) in c.headers.iter().flatten() {
        let field = cf(&format!("headers.{name}"));
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(Error::config(
                field,
                format!("`{name}` is not a header name"),
                "use letters, digits and - (e.g. Host, User-Agent)",
            ));
        }
        if ["content-length", "transfer-encoding"].contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Error::config(
                field,
                "the check sets the body's length itself",
                "remove this header; set body = \"...\" for a body (Content-Length follows it)",
            ));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(Error::config(
                field,
                "the value holds a line break or a control character",
                "write the value on one line",
            ));
        }
        headers.push((name.clone(), value.clone()));
    }
    let expect_status = match &c.expect_status {
        None => None,
        Some(raw) => {
            let text = match raw {
                RawStatus::Code(n) => n.to_string(),
                RawStatus::Text(t) => t.clone(),
            };
            Some(StatusMatch::parse(&text).map_err(|problem| {
                Error::config(
                    cf("expect_status"),
                    problem,
                    "write one code (200) or a string of codes and ranges of 100..=599 \
                     (\"200,201,300-310\")",
                )
            })?)
        }
    };
    let expect = match (&c.expect, &c.pattern) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(Error::config(
                cf("pattern"),
                "a pattern needs expect = \"string\", \"rstring\" or \"rstatus\"",
                "add expect, or remove pattern",
            ))
        }
        (Some(kind), None) => {
            return Err(Error::config(
                cf("pattern"),
                format!("expect \"{kind}\" needs a pattern"),
                "add pattern = \"...\" (the text or regex to look for)",
            ))
        }
        (Some(_), Some(p)) if p.is_empty() => {
            return Err(Error::config(
                cf("pattern"),
                "the pattern is empty",
                "give the text or regex to look for",
            ))
        }
        (Some(kind), Some(p)) => {
            let (negate, name) = match kind.trim().strip_prefix('!') {
                Some(rest) => (true, rest.trim_start()),
                None => (false, kind.trim()),
            };
            let regex = || {
                Rstring::new(p).map_err(|problem| {
                    Error::config(
                        cf("pattern"),
                        problem,
                        "write a regular expression in Rust regex syntax (byte-oriented, no \
                         look-around or back-references)",
                    )
                })
            };
            let what = match name {
                "string" => HttpMatch::String(p.as_bytes().to_vec()),
                "rstring" => HttpMatch::Rstring(regex()?),
                "rstatus" => HttpMatch::Rstatus(regex()?),
                "status" => {
                    return Err(Error::config(
                        cf("expect"),
                        "status codes go in expect_status",
                        "write expect_status = \"200,300-310\"; to refuse codes, use \
                         expect = \"! rstatus\" with a regex (pattern = \"^5\")",
                    ))
                }
                other => {
                    return Err(Error::config(
                        cf("expect"),
                        format!("unknown match `{other}`"),
                        "use \"string\", \"rstring\" or \"rstatus\", with \"!\" in front to \
                         negate (\"! string\")",
                    ))
                }
            };
            Some(HttpExpect { what, negate })
        }
    };
    let check = HttpCheck {
        request: HttpRequest {
            method,
            path,
            version,
            headers,
            body: c.body.clone().unwrap_or_default().into_bytes(),
        },
        expect_status,
        expect,
    };
    let size = check.request().len();
    if size >= CHECK_BUFSIZE {
        return Err(Error::config(
            cf("body"),
            format!("the request is {size} bytes, the check buffer {CHECK_BUFSIZE}"),
            "shorten the body or the headers",
        ));
    }
    Ok(check)
}

fn dur(field: &str, v: &Option<RawDuration>, default: Duration) -> Result<Duration> {
    v.as_ref().map_or(Ok(default), |d| d.parse(field))
}

fn positive(field: &str, d: Duration) -> Result<Duration> {
    if d.is_zero() {
        return Err(Error::config(
            field,
            "must be greater than 0",
            "give a duration such as \"2s\"",
        ));
    }
    Ok(d)
}

/// A TOML or type error, with the dotted key path when there is one.
///
/// toml's message shows the offending line but not the table it sits in
/// (`timeout_connect` of `[defaults]` or of `[backends.x]`?). Deserializing
/// the already parsed table once more, without spans, makes toml name the
/// full key path (its message then ends with ``in `a.b.c` ``), which is put
/// in front.
fn syntax_error(text: &str, e: &toml::de::Error) -> Error {
    let message = e.to_string();
    let path = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.try_into::<RawConfig>().err())
        .and_then(|e2| {
            e2.to_string().lines().find_map(|l| {
                l.strip_prefix("in `")
                    .and_then(|p| p.strip_suffix('`'))
                    .map(str::to_string)
            })
        });
    Error::ConfigSyntax(match path {
        Some(p) => format!("at `{p}`: {}", message.trim_end()),
        None => message.trim_end().to_string(),
    })
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        Config::validate(&raw)
    }

    /// Reads, parses and validates a file.
    pub fn from_file(path: &std::path::Path) -> Result<Config> {
        Config::from_toml(&std::fs::read_to_string(path)?)
    }

    /// Validates a parsed file.
    pub fn validate(raw: &RawConfig) -> Result<Config> {
        let d = &raw.defaults;
        let threads = raw.global.threads.unwrap_or(1);
        if threads == 0 || threads > 256 {
            return Err(Error::config(
                "global.threads",
                format!("{threads} is out of range"),
                "use 1..=256 (1 = single-threaded)",
            ));
        }
        let thread_model = match raw.global.thread_model.as_deref() {
            None | Some("per-core") => ThreadModel::PerCore,
            Some("work-stealing") => ThreadModel::WorkStealing,
            Some(other) => {
                return Err(Error::config(
                    "global.thread_model",
                    format!("unknown thread model `{other}`"),
                    "use \"per-core\" or \"work-stealing\"",
                ))
            }
        };
        let stats_listen = raw
            .global
            .stats_listen
            .as_deref()
            .map(|s| addr("global.stats_listen", s))
            .transpose()?;
        let seed = raw.global.seed.unwrap_or(0);
        let spread_checks = raw.global.spread_checks.unwrap_or(0);
        if spread_checks > 50 {
            return Err(Error::config(
                "global.spread_checks",
                format!("{spread_checks} is out of range"),
                "use 0..=50 (percent of jitter on check intervals; 2 to 5 works well)",
            ));
        }
        let hard_stop_after = raw
            .global
            .hard_stop_after
            .as_ref()
            .map(|d| d.parse("global.hard_stop_after"))
            .transpose()?;
        let reuseport = !raw.global.noreuseport.unwrap_or(false);
        let log = raw.global.log.as_ref().map(log_target).transpose()?;
        let def_log = d
            .log_format
            .as_deref()
            .map(|v| log_format("defaults.log_format", v))
            .transpose()?;
        if !reuseport && threads > 1 && thread_model == ThreadModel::PerCore {
            return Err(Error::config(
                "global.noreuseport",
                "per-core threads each bind every address with SO_REUSEPORT",
                "remove `noreuseport`, or use `threads = 1` or `thread_model = \"work-stealing\"`",
            ));
        }
        let def_connect = positive(
            "defaults.timeout_connect",
            dur(
                "defaults.timeout_connect",
                &d.timeout_connect,
                Duration::from_secs(5),
            )?,
        )?;
        let def_client = positive(
            "defaults.timeout_client",
            dur(
                "defaults.timeout_client",
                &d.timeout_client,
                Duration::from_secs(30),
            )?,
        )?;
        let def_server = positive(
            "defaults.timeout_server",
            dur(
                "defaults.timeout_server",
                &d.timeout_server,
                Duration::from_secs(30),
            )?,
        )?;
        let def_tunnel = d
            .timeout_tunnel
            .as_ref()
            .map(|t| {
                positive(
                    "defaults.timeout_tunnel",
                    t.parse("defaults.timeout_tunnel")?,
                )
            })
            .transpose()?;
        // Unset: each backend's own timeout_connect (HAProxy "timeout queue").
        let def_queue = d
            .timeout_queue
            .as_ref()
            .map(|t| positive("defaults.timeout_queue", t.parse("defaults.timeout_queue")?))
            .transpose()?;
        if raw.frontends.is_empty() {
            return Err(Error::config(
                "frontends",
                "no frontend is defined",
                "add a [frontends.NAME] table with binds and backend",
            ));
        }

        let mut backends = Vec::new();
        for (bname, b) in &raw.backends {
            check_name(&format!("backends.{bname}"), "backend", bname)?;
            let f = |k: &str| format!("backends.{bname}.{k}");
            let algorithm = match &b.balance {
                None => Algorithm::RoundRobin,
                Some(a) => a.parse().map_err(|e: Error| {
                    Error::config(
                        f("balance"),
                        match e {
                            Error::Command(m) => m,
                            e => e.to_string(),
                        },
                        "use roundrobin, static-rr, leastconn, first, source, consistent, random, \
                         uri [len N] [depth N] [whole], url_param NAME or hdr(NAME) [use_domain_only]",
                    )
                })?,
            };
            let hash_type = match &b.hash_type {
                None => HashType::default(),
                Some(h) => h.parse().map_err(|e: String| {
                    Error::config(
                        f("hash_type"),
                        e,
                        "use \"map-based\" or \"consistent\", optionally followed by sdbm, djb2, \
                         wt6 or crc32 and then avalanche (e.g. \"consistent sdbm avalanche\")",
                    )
                })?,
            };
            let draws = b
                .random_draws
                .unwrap_or(BackendOptions::default().random_draws);
            if draws == 0 || draws > 100 {
                return Err(Error::config(
                    f("random_draws"),
                    format!("{draws} draws"),
                    "use 1..=100 (HAProxy's default is 2: the less loaded of two random servers)",
                ));
            }
            let http_reuse = match &b.http_reuse {
                None => HttpReuse::default(),
                Some(r) => r.parse().map_err(|e: String| {
                    Error::config(
                        f("http_reuse"),
                        e,
                        "use \"never\", \"safe\" (the default), \"aggressive\" or \"always\"",
                    )
                })?,
            };
            let hbf = b.hash_balance_factor.unwrap_or(125);
            if hbf != 0 && hbf < 100 {
                return Err(Error::config(
                    f("hash_balance_factor"),
                    format!("{hbf} is below 100"),
                    "use 0 (no bound) or a percentage >= 100, e.g. 125",
                ));
            }
            let retries = b.retries.or(d.retries).unwrap_or(3);
            if retries > 100 {
                return Err(Error::config(
                    f("retries"),
                    format!("{retries} is too many"),
                    "use 0..=100",
                ));
            }
            let connect = positive(
                &f("timeout_connect"),
                dur(&f("timeout_connect"), &b.timeout_connect, def_connect)?,
            )?;
            let timeouts = Timeouts {
                connect,
                client: def_client,
                server: positive(
                    &f("timeout_server"),
                    dur(&f("timeout_server"), &b.timeout_server, def_server)?,
                )?,
                tunnel: match &b.timeout_tunnel {
                    Some(t) => Some(positive(
                        &f("timeout_tunnel"),
                        t.parse(&f("timeout_tunnel"))?,
                    )?),
                    None => def_tunnel,
                },
                queue: positive(
                    &f("timeout_queue"),
                    dur(
                        &f("timeout_queue"),
                        &b.timeout_queue,
                        def_queue.unwrap_or(connect),
                    )?,
                )?,
            };
            let check = match &b.check {
                None => None,
                Some(c) => {
                    let cf = |k: &str| format!("backends.{bname}.check.{k}");
                    let inter = positive(
                        &cf("inter"),
                        dur(&cf("inter"), &c.inter, Duration::from_secs(2))?,
                    )?;
                    let params = CheckParams {
                        inter,
                        fastinter: positive(
                            &cf("fastinter"),
                            dur(&cf("fastinter"), &c.fastinter, inter)?,
                        )?,
                        downinter: positive(
                            &cf("downinter"),
                            dur(&cf("downinter"), &c.downinter, inter)?,
                        )?,
                        rise: c.rise.unwrap_or(2),
                        fall: c.fall.unwrap_or(3),
                    };
                    for (k, v, default) in [("rise", params.rise, 2), ("fall", params.fall, 3)] {
                        if !(1..=MAX_RISE_FALL).contains(&v) {
                            return Err(Error::config(
                                cf(k),
                                format!("{v} is out of range"),
                                format!(
                                    "use 1..={MAX_RISE_FALL}, e.g. {k} = {default} (HAProxy's default)"
                                ),
                            ));
                        }
                    }
                    let kind_name = c.kind.as_deref().unwrap_or("tcp");
                    if c.rules.is_some() && kind_name != "tcp-check" {
                        return Err(Error::config(
                            cf("rules"),
                            format!("rules are for kind = \"tcp-check\", not \"{kind_name}\""),
                            "set kind = \"tcp-check\" or remove rules",
                        ));
                    }
                    let kind = match kind_name {
                        "tcp" => CheckKind::Tcp,
                        "tcp-check" => CheckKind::TcpCheck(tcp_check_rules(
                            &cf("rules"),
                            c.rules.as_deref().unwrap_or_default(),
                        )?),
                        "http" => CheckKind::Http(http_check(&cf, c)?),
                        other => {
                            return Err(Error::config(
                                cf("kind"),
                                format!("unknown check kind `{other}`"),
                                "use \"tcp\", \"http\" or \"tcp-check\"",
                            ))
                        }
                    };
                    if kind_name != "http" {
                        if let Some(k) = [
                            ("method", c.method.is_some()),
                            ("path", c.path.is_some()),
                            ("version", c.version.is_some()),
                            ("headers", c.headers.is_some()),
                            ("body", c.body.is_some()),
                            ("expect_status", c.expect_status.is_some()),
                            ("expect", c.expect.is_some()),
                            ("pattern", c.pattern.is_some()),
                        ]
                        .into_iter()
                        .find_map(|(k, set)| set.then_some(k))
                        {
                            return Err(Error::config(
                                cf(k),
                                format!("only HTTP checks use it, this one is \"{kind_name}\""),
                                format!("set kind = \"http\" or remove {k}"),
                            ));
                        }
                    }
                    let timeout = c
                        .timeout
                        .as_ref()
                        .map(|t| positive(&cf("timeout"), t.parse(&cf("timeout"))?))
                        .transpose()?;
                    Some(CheckSpec {
                        kind,
                        params,
                        timeout,
                    })
                }
            };
            let cookie = b
                .cookie
                .as_ref()
                .map(|c| cookie(&|k| format!("backends.{bname}.cookie.{k}"), c))
                .transpose()?
                .map(std::sync::Arc::new);
            let stick = stick(bname, b.stick_table.as_ref(), b.stick.as_deref())?;
            let mut servers = Vec::new();
            for (sname, s) in &b.servers {
                check_name(
                    &format!("backends.{bname}.servers.{sname}"),
                    "server",
                    sname,
                )?;
                let sf = |k: &str| format!("backends.{bname}.servers.{sname}.{k}");
                let a = s.address.as_deref().ok_or_else(|| {
                    Error::config(sf("address"), "is missing", "add address = \"IP:port\"")
                })?;
                let address = addr(&sf("address"), a)?;
                let weight = s.weight.unwrap_or(1);
                if weight > MAX_WEIGHT {
                    return Err(Error::config(
                        sf("weight"),
                        format!("{weight} is out of range"),
                        "use 0..=256",
                    ));
                }
                if s.check && check.is_none() {
                    return Err(Error::config(
                        sf("check"),
                        "checks are enabled but the backend has no check settings",
                        format!("add a [backends.{bname}.check] table (kind = \"tcp\" is enough)"),
                    ));
                }
                if s.error_limit > 0 && !s.check {
                    return Err(Error::config(
                        sf("error_limit"),
                        "passive health needs active checks (as HAProxy's observe needs check): \
                         nothing would bring the server back",
                        "set check = true on this server or remove error_limit",
                    ));
                }
                let send_proxy = match s.send_proxy.as_deref() {
                    None => None,
                    Some("v1") => Some(Version::V1),
                    Some("v2") => Some(Version::V2),
                    Some(o) => {
                        return Err(Error::config(
                            sf("send_proxy"),
                            format!("unknown version `{o}`"),
                            "use \"v1\" or \"v2\"",
                        ))
                    }
                };
                let shutdown = only_action(
                    &sf("on_marked_down"),
                    &s.on_marked_down,
                    "shutdown-sessions",
                )?;
                let shutdown_backups = only_action(
                    &sf("on_marked_up"),
                    &s.on_marked_up,
                    "shutdown-backup-sessions",
                )?;
                let inter = check
                    .as_ref()
                    .map_or(Duration::from_secs(2), |c| c.params.inter);
                if s.check_port == Some(0) {
                    return Err(Error::config(
                        sf("check_port"),
                        "port 0 cannot be checked",
                        "use 1..=65535 or leave check_port out",
                    ));
                }
                if s.check_port.is_some() && !s.check {
                    return Err(Error::config(
                        sf("check_port"),
                        "only active checks use it",
                        "set check = true on this server or remove check_port",
                    ));
                }
                if s.check_addr.is_some() && !s.check && s.agent_port.is_none() {
                    return Err(Error::config(
                        sf("check_addr"),
                        "only active and agent checks use it",
                        "set check = true or agent_port on this server, or remove check_addr",
                    ));
                }
                for (k, set) in [
                    ("agent_send", s.agent_send.is_some()),
                    ("agent_addr", s.agent_addr.is_some()),
                ] {
                    if set && s.agent_port.is_none() {
                        return Err(Error::config(
                            sf(k),
                            "the server has no agent check",
                            format!("add agent_port = PORT to enable the agent or remove {k}"),
                        ));
                    }
                }
                let check_addr = s
                    .check_addr
                    .as_deref()
                    .map(|a| ip(&sf("check_addr"), a))
                    .transpose()?;
                let agent_addr = s
                    .agent_addr
                    .as_deref()
                    .map(|a| ip(&sf("agent_addr"), a))
                    .transpose()?;
                if let Some(v) = &s.cookie {
                    if cookie.is_none() {
                        return Err(Error::config(
                            sf("cookie"),
                            "the backend has no persistence cookie",
                            format!("add a [backends.{bname}.cookie] table or remove cookie"),
                        ));
                    }
                    if !cookie_token(v) {
                        return Err(Error::config(
                            sf("cookie"),
                            format!("`{v}` cannot be a cookie value"),
                            "use letters, digits and `_` or `-`",
                        ));
                    }
                }
                let spec = ServerSpec {
                    name: sname.clone(),
                    addr: address,
                    weight,
                    backup: s.backup,
                    maxconn: s.maxconn,
                    maxqueue: s.maxqueue,
                    check: if s.check {
                        check.as_ref().map(|c| c.params)
                    } else {
                        None
                    },
                    slowstart: dur(&sf("slowstart"), &s.slowstart, Duration::ZERO)?,
                    agent: s.agent_port.is_some(),
                    disabled: s.disabled,
                    error_limit: s.error_limit,
                    shutdown_sessions_on_down: shutdown,
                    shutdown_backup_sessions_on_up: shutdown_backups,
                    cookie: s.cookie.clone(),
                };
                if s.check_send_proxy && !s.check {
                    return Err(Error::config(
                        sf("check_send_proxy"),
                        "only active checks send it (agent checks never do)",
                        "set check = true on this server or remove check_send_proxy",
                    ));
                }
                servers.push(ServerConfig {
                    spec,
                    send_proxy,
                    send_proxy_on_checks: s.check_send_proxy,
                    check_port: s.check_port,
                    check_addr,
                    agent_port: s.agent_port,
                    agent_inter: positive(
                        &sf("agent_inter"),
                        dur(&sf("agent_inter"), &s.agent_inter, inter)?,
                    )?,
                    agent_send: s.agent_send.clone(),
                    agent_addr,
                    pool: PoolLimits {
                        max_conn: s.pool_max_conn.map(|m| m as usize),
                        purge_delay: dur(
                            &sf("pool_purge_delay"),
                            &s.pool_purge_delay,
                            PoolLimits::default().purge_delay,
                        )?,
                    },
                });
            }
            let options = BackendOptions {
                algorithm,
                hash_type,
                allbackups: b.allbackups,
                retries,
                redispatch: b.redispatch.or(d.redispatch).unwrap_or(true),
                timeout_queue: timeouts.queue,
                hash_balance_factor: hbf,
                random_draws: draws,
                seed,
                // Set below, from the frontends that use the backend.
                mode: Mode::Tcp,
                cookie,
                persist: b.persist,
                stick,
                http_reuse,
            };
            backends.push(BackendConfig {
                name: bname.clone(),
                options,
                timeouts,
                check,
                servers,
            });
        }

        let mut frontends = Vec::new();
        let mut seen: BTreeMap<SocketAddr, String> = BTreeMap::new();
        for (fname, fe) in &raw.frontends {
            check_name(&format!("frontends.{fname}"), "frontend", fname)?;
            let f = |k: &str| format!("frontends.{fname}.{k}");
            if fe.binds.is_empty() {
                return Err(Error::config(
                    f("binds"),
                    "is empty",
                    "add at least one address, e.g. binds = [\"127.0.0.1:8080\"]",
                ));
            }
            let mut binds = Vec::new();
            for (i, b) in fe.binds.iter().enumerate() {
                let a = addr(&format!("frontends.{fname}.binds[{i}]"), b)?;
                // Port 0 asks for an ephemeral port: never a clash.
                if let Some(other) = seen.insert(a, fname.clone()).filter(|_| a.port() != 0) {
                    return Err(Error::config(
                        format!("frontends.{fname}.binds[{i}]"),
                        format!("{a} is already bound by frontend `{other}`"),
                        "give each bind address to one frontend",
                    ));
                }
                binds.push(a);
            }
            let backend = fe.backend.clone().ok_or_else(|| {
                Error::config(
                    f("backend"),
                    "is missing",
                    "name one of the [backends.NAME] tables",
                )
            })?;
            if !raw.backends.contains_key(&backend) {
                let known: Vec<&str> = raw.backends.keys().map(String::as_str).collect();
                return Err(Error::config(
                    f("backend"),
                    format!("backend `{backend}` is not defined"),
                    format!("use one of {known:?} or add [backends.{backend}]"),
                ));
            }
            let mode = match fe.mode.as_deref() {
                None | Some("tcp") => Mode::Tcp,
                Some("http") => Mode::Http,
                Some(o) => {
                    return Err(Error::config(
                        f("mode"),
                        format!("unknown mode `{o}`"),
                        "use \"tcp\" or \"http\"",
                    ))
                }
            };
            if mode == Mode::Tcp && !fe.routes.is_empty() {
                return Err(Error::config(
                    f("routes"),
                    "routes need HTTP mode",
                    "set mode = \"http\" or remove the routes",
                ));
            }
            // As HAProxy: `option httplog` on a TCP frontend falls back to
            // `option tcplog` (HAProxy warns); written on the frontend
            // itself, it is refused.
            let flog = match fe.log_format.as_deref() {
                Some(v) => match (log_format(&f("log_format"), v)?, mode) {
                    (LogFormat::Http, Mode::Tcp) => {
                        return Err(Error::config(
                            f("log_format"),
                            "httplog needs mode = \"http\"",
                            "use log_format = \"tcplog\" or set mode = \"http\"",
                        ))
                    }
                    (lf, _) => Some(lf),
                },
                None => def_log.map(|lf| match mode {
                    Mode::Tcp => LogFormat::Tcp,
                    Mode::Http => lf,
                }),
            };
            if flog.is_some() && log.is_none() {
                return Err(Error::config(
                    if fe.log_format.is_some() {
                        f("log_format")
                    } else {
                        "defaults.log_format".into()
                    },
                    "access logs need a destination",
                    "add log = { target = \"udp://127.0.0.1:514\" } (or \"stdout\") to [global]",
                ));
            }
            let mut routes = Vec::new();
            for (i, r) in fe.routes.iter().enumerate() {
                let rf = |k: &str| format!("frontends.{fname}.routes[{i}].{k}");
                let backend = r.backend.clone().ok_or_else(|| {
                    Error::config(
                        rf("backend"),
                        "is missing",
                        "name the backend for this route",
                    )
                })?;
                if !raw.backends.contains_key(&backend) {
                    return Err(Error::config(
                        rf("backend"),
                        format!("backend `{backend}` is not defined"),
                        format!("add [backends.{backend}] or fix the name"),
                    ));
                }
                if r.host.is_none() && r.path_prefix.is_none() {
                    return Err(Error::config(
                        rf("host"),
                        "a route needs host or path_prefix",
                        "add host = \"example.com\" and/or path_prefix = \"/api\"",
                    ));
                }
                if let Some(p) = &r.path_prefix {
                    if !p.starts_with('/') {
                        return Err(Error::config(
                            rf("path_prefix"),
                            format!("`{p}` does not start with /"),
                            "write e.g. \"/api\"",
                        ));
                    }
                }
                routes.push(Route {
                    host: r.host.as_ref().map(|h| h.to_ascii_lowercase()),
                    path_prefix: r.path_prefix.clone(),
                    backend,
                });
            }
            frontends.push(FrontendConfig {
                name: fname.clone(),
                binds,
                backend,
                accept_proxy: fe.accept_proxy,
                timeout_client: positive(
                    &f("timeout_client"),
                    dur(&f("timeout_client"), &fe.timeout_client, def_client)?,
                )?,
                maxconn: fe.maxconn.unwrap_or(0),
                splice: fe.splice.or(d.splice).unwrap_or(false),
                mode,
                routes,
                log: flog,
            });
        }
        // HAProxy gives every backend a mode; here a backend is HTTP when
        // an HTTP frontend routes to it.
        for b in &mut backends {
            b.options.mode = if frontends.iter().any(|f| {
                f.mode == Mode::Http
                    && (f.backend == b.name || f.routes.iter().any(|r| r.backend == b.name))
            }) {
                Mode::Http
            } else {
                Mode::Tcp
            };
            if b.options.algorithm.needs_http() && b.options.mode == Mode::Tcp {
                return Err(Error::config(
                    format!("backends.{}.balance", b.name),
                    format!(
                        "balance {} needs mode http, and no HTTP frontend uses this backend",
                        b.options.algorithm.name()
                    ),
                    "route to it from a frontend with mode = \"http\" or use source or roundrobin",
                ));
            }
            if b.options.cookie.is_some() && b.options.mode == Mode::Tcp {
                return Err(Error::config(
                    format!("backends.{}.cookie", b.name),
                    "cookie persistence needs HTTP mode, and no HTTP frontend uses this backend",
                    "route to it from a frontend with mode = \"http\" or remove the cookie table",
                ));
            }
        }
        Ok(Config {
            threads,
            spread_checks,
            seed: raw.global.seed,
            thread_model,
            stats_listen,
            hard_stop_after,
            reuseport,
            log,
            frontends,
            backends,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[global]
stats_listen = "127.0.0.1:9100"
[defaults]
timeout_connect = "2s"
timeout_tunnel = 3600000
retries = 2
[frontends.web]
binds = ["127.0.0.1:8080", "127.0.0.1:8081"]
backend = "app"
accept_proxy = true
[backends.app]
balance = "leastconn"
allbackups = true
[backends.app.check]
kind = "http"
path = "/health"
expect_status = 204
inter = "1s"
fastinter = "200ms"
rise = 3
[backends.app.servers.a]
address = "127.0.0.1:9001"
weight = 10
check = true
slowstart = "10s"
send_proxy = "v2"
on_marked_down = "shutdown-sessions"
[backends.app.servers.b]
address = "127.0.0.1:9002"
backup = true
disabled = true
maxconn = 5
"#;

    #[test]
    fn good_config_parses() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.frontends[0].binds.len(), 2);
        let b = &c.backends[0];
        assert_eq!(b.options.algorithm, Algorithm::LeastConn);
        assert_eq!(b.options.retries, 2);
        assert_eq!(b.timeouts.connect, Duration::from_secs(2));
        assert_eq!(b.timeouts.tunnel, Some(Duration::from_secs(3600)));
        let chk = b.check.as_ref().unwrap();
        assert_eq!(
            chk.kind,
            CheckKind::Http(HttpCheck {
                request: HttpRequest {
                    path: "/health".into(),
                    ..HttpRequest::default()
                },
                expect_status: Some(StatusMatch::code(204)),
                expect: None,
            }),
            "option httpchk's default method"
        );
        assert_eq!(chk.params.fastinter, Duration::from_millis(200));
        assert_eq!(chk.params.downinter, Duration::from_secs(1));
        assert_eq!(chk.params.rise, 3);
        assert_eq!(b.servers[0].spec.weight, 10);
        assert_eq!(b.servers[0].send_proxy, Some(Version::V2));
        assert!(b.servers[0].spec.shutdown_sessions_on_down);
        assert!(b.servers[1].spec.backup && b.servers[1].spec.check.is_none());
        assert!(b.servers[1].spec.disabled && !b.servers[0].spec.disabled);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    /// `stick_table` + `stick` (HAProxy's `stick-table`, `stick on`):
    /// what is built parses, the rest is refused naming the field.
    #[test]
    fn stick_tables() {
        use crate::stick::{Sample, StickRule, TableType};
        let with =
            |extra: &str| GOOD.replace("allbackups = true", &format!("allbackups = true\n{extra}"));
        let c = Config::from_toml(&with(
            "stick_table = { type = \"ipv6\", size = 1000, expire = \"30m\" }\nstick = \"match dst\"",
        ))
        .unwrap();
        let s = c.backends[0].options.stick.clone().unwrap();
        assert_eq!(
            (s.table_type, s.size, s.expire, s.rule, s.sample),
            (
                TableType::Ipv6,
                1000,
                Some(Duration::from_secs(1800)),
                StickRule::Match,
                Sample::Dst
            )
        );
        let table = "stick_table = { type = \"ip\", size = 10 }";
        for (extra, field, says) in [
            (
                table.to_string(),
                "backends.app.stick",
                "add stick = \"on src\"",
            ),
            (
                "stick = \"on src\"".into(),
                "backends.app.stick_table",
                "needs a table",
            ),
            (
                format!("{table}\nstick = \"on req.hdr(x)\""),
                "backends.app.stick",
                "`req.hdr(x)`",
            ),
            (
                format!("{table}\nstick = \"store-response src\""),
                "backends.app.stick",
                "not supported",
            ),
            (
                format!("{table}\nstick = \"on src if x\""),
                "backends.app.stick",
                "KIND SAMPLE",
            ),
            (
                "stick_table = { type = \"string\", size = 10 }\nstick = \"on src\"".into(),
                "backends.app.stick_table.type",
                "\"ipv6\"",
            ),
            (
                "stick_table = { type = \"ip\", size = 0 }\nstick = \"on src\"".into(),
                "backends.app.stick_table.size",
                "greater than 0",
            ),
            (
                "stick_table = { type = \"ip\" }\nstick = \"on src\"".into(),
                "backends.app.stick_table.size",
                "missing",
            ),
            (
                "stick_table = { type = \"ip\", size = 1, expire = \"0s\" }\nstick = \"on src\""
                    .into(),
                "backends.app.stick_table.expire",
                "greater than 0",
            ),
        ] {
            let e = err(&with(&extra));
            assert!(e.contains(field) && e.contains(says), "{extra}: {e}");
        }
        let e = err(&with(
            "stick_table = { type = \"ip\", size = 1, peers = \"p\" }",
        ));
        assert!(e.contains("peers"), "{e}");
    }

    #[test]
    fn http_reuse_defaults_to_safe_and_names_its_errors() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.backends[0].options.http_reuse, HttpReuse::Safe);
        // Accepted in TCP mode too, where it does nothing (as HAProxy).
        for (word, mode) in [
            ("never", HttpReuse::Never),
            ("safe", HttpReuse::Safe),
            ("aggressive", HttpReuse::Aggressive),
            ("always", HttpReuse::Always),
        ] {
            let text = GOOD.replace(
                "balance = \"leastconn\"",
                &format!("balance = \"leastconn\"\nhttp_reuse = \"{word}\""),
            );
            let c = Config::from_toml(&text).unwrap();
            assert_eq!(c.backends[0].options.http_reuse, mode);
        }
        let e = err(&GOOD.replace(
            "balance = \"leastconn\"",
            "balance = \"leastconn\"\nhttp_reuse = \"sometimes\"",
        ));
        assert!(
            e.contains("backends.app.http_reuse")
                && e.contains("sometimes")
                && e.contains("\"aggressive\""),
            "{e}"
        );
    }

    /// HAProxy 2.6's `connect_server` table: which lists a request may
    /// take an idle connection from, in order.
    #[test]
    fn http_reuse_lists_follow_haproxys_table() {
        use IdleList::{Idle, Safe};
        let none: &[IdleList] = &[];
        for (mode, first, lists) in [
            (HttpReuse::Never, true, none),
            (HttpReuse::Never, false, none),
            (HttpReuse::Safe, true, none),
            (HttpReuse::Safe, false, &[Idle, Safe]),
            (HttpReuse::Aggressive, true, &[Safe]),
            (HttpReuse::Aggressive, false, &[Idle, Safe]),
            (HttpReuse::Always, true, &[Safe, Idle]),
            (HttpReuse::Always, false, &[Idle, Safe]),
        ] {
            assert_eq!(mode.lists(first), lists, "{mode:?} first={first}");
        }
    }

    #[test]
    fn request_hashes_need_http_and_name_their_errors() {
        let http = GOOD.replace("accept_proxy = true", "mode = \"http\"");
        let c = Config::from_toml(&http.replace(
            "balance = \"leastconn\"",
            "balance = \"hdr(Host) use_domain_only\"\nhash_type = \"consistent\"",
        ))
        .unwrap();
        let o = &c.backends[0].options;
        assert_eq!(
            o.algorithm,
            Algorithm::Hdr {
                name: "Host".into(),
                use_domain_only: true
            }
        );
        assert_eq!(o.hash_type.to_string(), "consistent sdbm avalanche");
        // TCP mode: refused, naming the field and the fix.
        let e = err(&GOOD.replace("balance = \"leastconn\"", "balance = \"uri\""));
        assert!(
            e.contains("backends.app.balance") && e.contains("balance uri needs mode http"),
            "{e}"
        );
        let e = err(&http.replace("balance = \"leastconn\"", "balance = \"url_param\""));
        assert!(
            e.contains("backends.app.balance") && e.contains("url_param userid"),
            "{e}"
        );
        let e = err(&http.replace(
            "balance = \"leastconn\"",
            "balance = \"uri\"\nhash_type = \"consistent md5\"",
        ));
        assert!(
            e.contains("backends.app.hash_type") && e.contains("crc32"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let e = err(&GOOD.replace("weight = 10", "weight = 300"));
        assert!(
            e.contains("backends.app.servers.a.weight") && e.contains("0..=256"),
            "{e}"
        );
        let e = err(&GOOD.replace("backend = \"app\"", "backend = \"nope\""));
        assert!(
            e.contains("frontends.web.backend") && e.contains("not defined"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"127.0.0.1:9002\"", "\"localhost\""));
        assert!(
            e.contains("backends.app.servers.b.address") && e.contains("127.0.0.1:8080"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"10s\"", "\"10 parsecs\""));
        assert!(e.contains("backends.app.servers.a.slowstart"), "{e}");
        let e = err(&GOOD.replace("rise = 3", "rise = 0"));
        assert!(e.contains("backends.app.check.rise"), "{e}");
        let e = err(&GOOD.replace("leastconn", "fastest"));
        assert!(
            e.contains("backends.app.balance") && e.contains("roundrobin"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"127.0.0.1:8081\"", "\"127.0.0.1:8080\""));
        assert!(e.contains("frontends.web.binds[1]"), "{e}");
        let e = err(&GOOD.replace("send_proxy = \"v2\"", "send_proxy = \"v3\""));
        assert!(e.contains("send_proxy") && e.contains("\"v1\""), "{e}");
        let e = err(&GOOD.replace(
            "[backends.app.check]\nkind = \"http\"",
            "[backends.app.check]\nkind = \"icmp\"",
        ));
        assert!(e.contains("backends.app.check.kind"), "{e}");
        let e = err(&GOOD.replace("allbackups = true", "allbackups = true\nbogus = 1"));
        assert!(e.contains("bogus"), "{e}");
        let e = err("[global]\nthreads = 0\n[frontends.x]\nbinds=[\"127.0.0.1:1\"]\nbackend=\"b\"\n[backends.b]\n");
        assert!(e.contains("global.threads"), "{e}");
        let e = err("[global]\nthread_model = \"fibers\"\n[frontends.x]\nbinds=[\"127.0.0.1:1\"]\nbackend=\"b\"\n[backends.b]\n");
        assert!(
            e.contains("global.thread_model") && e.contains("per-core"),
            "{e}"
        );
        let e = err("");
        assert!(e.contains("frontends"), "{e}");
        let e = err(&GOOD.replace("maxconn = 5", "maxconn = 5\nerror_limit = 3"));
        assert!(
            e.contains("backends.app.servers.b.error_limit") && e.contains("check = true"),
            "{e}"
        );
        Config::from_toml(&GOOD.replace("check = true", "check = true\nerror_limit = 3")).unwrap();
    }

    #[test]
    fn expect_status_takes_a_code_or_codes_and_ranges() {
        let kind = |text: &str| {
            let c = Config::from_toml(text).unwrap();
            c.backends[0].check.clone().unwrap().kind
        };
        let list = GOOD.replace("expect_status = 204", "expect_status = \"200,201,300-310\"");
        let CheckKind::Http(c) = kind(&list) else {
            panic!("http")
        };
        let expect_status = c.expect_status.unwrap();
        assert_eq!(
            expect_status,
            StatusMatch::parse("200,201,300-310").unwrap()
        );
        assert!(expect_status.matches(305) && !expect_status.matches(204));
        let none = GOOD.replace("expect_status = 204\n", "");
        let CheckKind::Http(c) = kind(&none) else {
            panic!("http")
        };
        assert_eq!(c.expect_status, None, "the implicit 2xx and 3xx");
        for bad in ["700", "-1", "\"200,abc\"", "\"310-300\"", "\"\""] {
            let e = err(&GOOD.replace("expect_status = 204", &format!("expect_status = {bad}")));
            assert!(
                e.contains("backends.app.check.expect_status") && e.contains("\"200,201,300-310\""),
                "{bad}: {e}"
            );
        }
        let e = err(&GOOD.replace("expect_status = 204", "expect_status = true"));
        assert!(e.contains("at `backends.app.check.expect_status`"), "{e}");
    }

    #[test]
    fn http_check_send_and_expect_keys_and_their_errors() {
        let with = |extra: &str| GOOD.replace("expect_status = 204\n", &format!("{extra}\n"));
        let http = |text: &str| match Config::from_toml(text).unwrap().backends[0]
            .check
            .clone()
            .unwrap()
            .kind
        {
            CheckKind::Http(c) => c,
            other => panic!("{other:?}"),
        };
        let c = http(&with(
            "version = \"HTTP/1.1\"\nheaders = { Host = \"example.com\", X-Check = \"1\" }\n\
             body = \"ping\"\nexpect_status = 200\nexpect = \"! rstring\"\npattern = \"maint(enance)?\"",
        ));
        assert_eq!(c.request.version, "HTTP/1.1");
        assert_eq!(
            c.request.headers,
            vec![
                ("Host".to_string(), "example.com".to_string()),
                ("X-Check".to_string(), "1".to_string())
            ]
        );
        assert_eq!(c.request.body, b"ping");
        assert_eq!(c.expect_status, Some(StatusMatch::code(200)));
        let e = c.expect.unwrap();
        assert!(e.negate && matches!(e.what, HttpMatch::Rstring(_)));
        for (kind, ok) in [("string", true), ("rstatus", true), ("!string", true)] {
            let c = http(&with(&format!("expect = \"{kind}\"\npattern = \"2\"")));
            assert_eq!(c.expect.is_some(), ok);
        }
        for (extra, field, hint) in [
            ("expect = \"string\"", "check.pattern", "needs a pattern"),
            ("pattern = \"OK\"", "check.pattern", "needs expect"),
            (
                "expect = \"string\"\npattern = \"\"",
                "check.pattern",
                "empty",
            ),
            (
                "expect = \"status\"\npattern = \"200\"",
                "check.expect",
                "expect_status",
            ),
            (
                "expect = \"hdr\"\npattern = \"x\"",
                "check.expect",
                "\"rstring\"",
            ),
            (
                "expect = \"rstring\"\npattern = \"(\"",
                "check.pattern",
                "regular expression",
            ),
            ("version = \"HTTP/2\"", "check.version", "HTTP/1.1"),
            (
                "headers = { \"Bad Name\" = \"x\" }",
                "check.headers.Bad Name",
                "header name",
            ),
            (
                "headers = { Host = \"a\\r\\nX: y\" }",
                "check.headers.Host",
                "one line",
            ),
            (
                "headers = { Content-Length = \"3\" }",
                "check.headers.Content-Length",
                "body",
            ),
        ] {
            let e = err(&with(extra));
            assert!(
                e.contains(&format!("backends.app.{field}")) && e.contains(hint),
                "{extra}: {e}"
            );
        }
        let big = format!("body = \"{}\"", "x".repeat(CHECK_BUFSIZE));
        assert!(err(&with(&big)).contains("backends.app.check.body"));
        // The HTTP keys on another kind of check.
        for key in [
            "path = \"/x\"",
            "expect = \"string\"\npattern = \"x\"",
            "body = \"x\"",
        ] {
            let text = GOOD
                .replace(
                    "kind = \"http\"\npath = \"/health\"\nexpect_status = 204\n",
                    "",
                )
                .replace("rise = 3\n", &format!("rise = 3\n{key}\n"));
            let e = err(&text);
            assert!(e.contains("only HTTP checks use it"), "{key}: {e}");
        }
    }

    #[test]
    fn check_send_proxy_forces_the_header_on_checks() {
        let server = |extra: &str| {
            let c =
                Config::from_toml(&GOOD.replace("send_proxy = \"v2\"\n", &format!("{extra}\n")))
                    .unwrap();
            c.backends[0].servers[0].check_send_proxy()
        };
        assert_eq!(server("check_send_proxy = true"), Some(Version::V1));
        assert_eq!(server(""), None);
        assert_eq!(
            server("send_proxy = \"v2\"\ncheck_port = 9\ncheck_send_proxy = true"),
            Some(Version::V2)
        );
        assert_eq!(server("send_proxy = \"v2\"\ncheck_port = 9"), None);
        let e = err(&GOOD.replace("maxconn = 5", "maxconn = 5\ncheck_send_proxy = true"));
        assert!(
            e.contains("servers.b.check_send_proxy") && e.contains("check = true"),
            "{e}"
        );
    }

    #[test]
    fn check_and_agent_targets() {
        let with =
            |extra: &str| GOOD.replace("check = true\n", &format!("check = true\n{extra}\n"));
        let c = Config::from_toml(&with(
            "check_port = 9100\ncheck_addr = \"127.0.0.2\"\nagent_port = 9200\nagent_send = \"hello\\n\"",
        ))
        .unwrap();
        let s = &c.backends[0].servers[0];
        let at = |t: CheckTarget| t.resolve(s.spec.addr);
        assert_eq!(at(s.check_target()), "127.0.0.2:9100".parse().unwrap());
        assert_eq!(s.check_send_proxy(), None, "checks go elsewhere: no header");
        assert_eq!(
            s.agent_target().map(at),
            Some("127.0.0.2:9200".parse().unwrap()),
            "addr"
        );
        // `set server ... addr`: the parts not overridden follow the server.
        assert_eq!(
            s.check_target().resolve("127.0.0.9:7".parse().unwrap()),
            "127.0.0.2:9100".parse().unwrap()
        );
        assert_eq!(s.agent_send.as_deref(), Some("hello\n"));
        let c = Config::from_toml(&with(
            "check_port = 9100\nagent_port = 9200\nagent_addr = \"127.0.0.3\"",
        ))
        .unwrap();
        let s = &c.backends[0].servers[0];
        let at = |t: CheckTarget| t.resolve(s.spec.addr);
        assert_eq!(at(s.check_target()), "127.0.0.1:9100".parse().unwrap());
        assert_eq!(
            s.check_target().resolve("127.0.0.9:7".parse().unwrap()),
            "127.0.0.9:9100".parse().unwrap()
        );
        assert_eq!(
            s.agent_target().map(at),
            Some("127.0.0.3:9200".parse().unwrap())
        );
        // Neither: the server itself, and its PROXY header on checks.
        let c = Config::from_toml(GOOD).unwrap();
        let s = &c.backends[0].servers[0];
        assert_eq!(s.check_target().resolve(s.spec.addr), s.spec.addr);
        assert_eq!(s.check_send_proxy(), Some(Version::V2));
        assert_eq!(s.agent_target(), None);

        let e = err(&with("check_addr = \"127.0.0.2:80\""));
        assert!(
            e.contains("servers.a.check_addr") && e.contains("without a port"),
            "{e}"
        );
        let e = err(&with("check_port = 0"));
        assert!(e.contains("servers.a.check_port"), "{e}");
        let e = err(&with("agent_send = \"x\""));
        assert!(
            e.contains("servers.a.agent_send") && e.contains("agent_port"),
            "{e}"
        );
        let e = err(&with("agent_addr = \"127.0.0.2\""));
        assert!(
            e.contains("servers.a.agent_addr") && e.contains("agent_port"),
            "{e}"
        );
        let e = err(&GOOD.replace("maxconn = 5", "maxconn = 5\ncheck_port = 9"));
        assert!(
            e.contains("servers.b.check_port") && e.contains("check = true"),
            "{e}"
        );
        let e = err(&GOOD.replace("maxconn = 5", "maxconn = 5\ncheck_addr = \"127.0.0.2\""));
        assert!(e.contains("servers.b.check_addr"), "{e}");
    }

    #[test]
    fn tcp_check_rules_parse_and_errors_name_the_rule() {
        let with = |rules: &str| {
            GOOD.replace(
                "kind = \"http\"\npath = \"/health\"\nexpect_status = 204",
                &format!("kind = \"tcp-check\"\nrules = {rules}"),
            )
        };
        // HAProxy's Redis recipe, with each kind of rule.
        let c = Config::from_toml(&with(
            r#"[
  { send = "PING\r\n", comment = "PING phase" },
  { expect = "string", pattern = "+PONG" },
  { send_binary = "696e666f207265706c69636174696f6e0d0a" },
  { expect = "! string", pattern = "role:slave", min_recv = 12 },
  { expect = "rstring", pattern = "role:(master|primary)" },
  { expect = "!binary", pattern = "2d455252" },
]"#,
        ))
        .unwrap();
        let CheckKind::TcpCheck(rules) = &c.backends[0].check.as_ref().unwrap().kind else {
            panic!("not a tcp-check");
        };
        assert_eq!(rules.len(), 6);
        assert_eq!(rules[0].action, TcpCheckAction::Send(b"PING\r\n".to_vec()));
        assert_eq!(rules[0].comment.as_deref(), Some("PING phase"));
        assert_eq!(
            rules[2].action,
            TcpCheckAction::Send(b"info replication\r\n".to_vec())
        );
        let TcpCheckAction::Expect(e) = &rules[3].action else {
            panic!()
        };
        assert_eq!(
            (e.negate, e.min_recv, &e.pattern),
            (true, Some(12), &Pattern::String(b"role:slave".to_vec()))
        );
        let TcpCheckAction::Expect(e) = &rules[4].action else {
            panic!()
        };
        assert!(matches!(&e.pattern, Pattern::Rstring(r) if r.as_str() == "role:(master|primary)"));
        let TcpCheckAction::Expect(e) = &rules[5].action else {
            panic!()
        };
        assert_eq!(
            (e.negate, &e.pattern),
            (true, &Pattern::Binary(b"-ERR".to_vec()))
        );

        for (rules, field, hint) in [
            ("[]", "check.rules`", "at least one rule"),
            (
                r#"[{ send = "a", expect = "string", pattern = "b" }]"#,
                "rules[0]`",
                "2 actions",
            ),
            (r#"[{ comment = "x" }]"#, "rules[0]`", "no action"),
            (
                r#"[{ send = "a" }, { expect = "string" }]"#,
                "rules[1].pattern",
                "needs a pattern",
            ),
            (
                r#"[{ expect = "string", pattern = "" }]"#,
                "rules[0].pattern",
                "empty",
            ),
            (
                r#"[{ expect = "regex", pattern = "a" }]"#,
                "rules[0].expect",
                "rstring",
            ),
            (
                r#"[{ expect = "binary", pattern = "2b5" }]"#,
                "rules[0].pattern",
                "odd number",
            ),
            (
                r#"[{ send_binary = "zz" }]"#,
                "rules[0].send_binary",
                "hex digit",
            ),
            (r#"[{ send = "" }]"#, "rules[0].send", "nothing to send"),
            (
                r#"[{ send = "a", pattern = "b" }]"#,
                "rules[0].pattern",
                "only expect rules",
            ),
            (
                r#"[{ expect = "rstring", pattern = "(" }]"#,
                "rules[0].pattern",
                "regular expression",
            ),
            (r#"[{ connect = true }]"#, "rules[0].connect", "check_port"),
        ] {
            let e = err(&with(rules));
            assert!(e.contains(field) && e.contains(hint), "{rules}: {e}");
        }
        let big = format!("[{{ send = \"{}\" }}]", "x".repeat(CHECK_BUFSIZE));
        assert!(err(&with(&big)).contains("check buffer"));
        // Rules need kind = "tcp-check"; tcp-check needs rules.
        let e = err(&GOOD.replace("path = \"/health\"", "rules = [{ send = \"a\" }]"));
        assert!(
            e.contains("backends.app.check.rules") && e.contains("tcp-check"),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"http\"", "kind = \"tcp-check\""));
        assert!(e.contains("backends.app.check.rules"), "{e}");
    }

    #[test]
    fn timeout_check_and_spread_checks() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!(c.backends[0].check.as_ref().unwrap().timeout, None);
        assert_eq!((c.spread_checks, c.seed), (0, None));
        let c = Config::from_toml(
            &GOOD
                .replace("rise = 3", "rise = 3\ntimeout = \"300ms\"")
                .replace("[global]", "[global]\nspread_checks = 5\nseed = 9"),
        )
        .unwrap();
        assert_eq!(
            c.backends[0].check.as_ref().unwrap().timeout,
            Some(Duration::from_millis(300))
        );
        assert_eq!((c.spread_checks, c.seed), (5, Some(9)));
        let e = err(&GOOD.replace("[global]", "[global]\nspread_checks = 51"));
        assert!(
            e.contains("global.spread_checks") && e.contains("0..=50"),
            "{e}"
        );
    }

    #[test]
    fn hard_stop_after_and_noreuseport() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!((c.hard_stop_after, c.reuseport), (None, true));
        let c = Config::from_toml(&GOOD.replace(
            "[global]",
            "[global]\nhard_stop_after = \"30s\"\nnoreuseport = true",
        ))
        .unwrap();
        assert_eq!(
            (c.hard_stop_after, c.reuseport),
            (Some(Duration::from_secs(30)), false)
        );
        let e = err(&GOOD.replace("[global]", "[global]\nhard_stop_after = \"soon\""));
        assert!(e.contains("global.hard_stop_after"), "{e}");
        // Per-core workers need SO_REUSEPORT; the other thread models do not.
        let e = err(&GOOD.replace("[global]", "[global]\nnoreuseport = true\nthreads = 2"));
        assert!(
            e.contains("global.noreuseport") && e.contains("work-stealing"),
            "{e}"
        );
        Config::from_toml(&GOOD.replace(
            "[global]",
            "[global]\nnoreuseport = true\nthreads = 2\nthread_model = \"work-stealing\"",
        ))
        .unwrap();
    }

    #[test]
    fn access_logs() {
        let c = Config::from_toml(GOOD).unwrap();
        assert_eq!((c.log.as_ref(), c.frontends[0].log), (None, None));
        let with = |global: &str, defaults: &str, frontend: &str| {
            GOOD.replace("[global]", &format!("[global]\n{global}"))
                .replace("[defaults]", &format!("[defaults]\n{defaults}"))
                .replace(
                    "accept_proxy = true",
                    &format!("accept_proxy = true\n{frontend}"),
                )
        };
        let udp = "log = { target = \"udp://127.0.0.1:514\" }";
        let c = Config::from_toml(&with(udp, "", "log_format = \"tcplog\"")).unwrap();
        assert_eq!(
            c.log,
            Some(LogTarget {
                target: Target::Udp("127.0.0.1:514".parse().unwrap()),
                facility: 16,
                tag: "haproxy".into(),
            })
        );
        assert_eq!(c.frontends[0].log, Some(LogFormat::Tcp));
        // `[defaults] httplog` on a TCP frontend: tcplog, HAProxy's fallback.
        let c = Config::from_toml(&with(
            "log = { target = \"stdout\", facility = \"daemon\", tag = \"lb\" }",
            "log_format = \"httplog\"",
            "",
        ))
        .unwrap();
        assert_eq!(c.frontends[0].log, Some(LogFormat::Tcp));
        let l = c.log.unwrap();
        assert_eq!(
            (l.target, l.facility, l.tag.as_str()),
            (Target::Stdout, 3, "lb")
        );
        for (text, field, fix) in [
            (
                with("", "", "log_format = \"tcplog\""),
                "frontends.web.log_format",
                "[global]",
            ),
            (
                with("", "log_format = \"tcplog\"", ""),
                "defaults.log_format",
                "[global]",
            ),
            (
                with(udp, "", "log_format = \"httplog\""),
                "frontends.web.log_format",
                "mode",
            ),
            (
                with(udp, "", "log_format = \"clf\""),
                "frontends.web.log_format",
                "tcplog",
            ),
            (with("log = { }", "", ""), "global.log.target", "udp://"),
            (
                with("log = { target = \"syslog\" }", "", ""),
                "global.log.target",
                "stdout",
            ),
            (
                with("log = { target = \"udp://localhost\" }", "", ""),
                "global.log.target",
                "udp://IP:PORT",
            ),
            (
                with(
                    "log = { target = \"stderr\", facility = \"local9\" }",
                    "",
                    "",
                ),
                "global.log.facility",
                "local7",
            ),
            (
                with("log = { target = \"stderr\", tag = \"a b\" }", "", ""),
                "global.log.tag",
                "visible",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(field) && e.contains(fix), "{field}: {e}");
        }
    }

    #[test]
    fn servers_keep_the_order_they_are_written_in() {
        let text = "[frontends.f]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"b\"\n\
            [backends.b]\nbalance = \"first\"\n\
            [backends.b.servers.zb]\naddress = \"127.0.0.1:9001\"\n\
            [backends.b.servers.s10]\naddress = \"127.0.0.1:9002\"\n\
            [backends.b.servers.s2]\naddress = \"127.0.0.1:9003\"\n\
            [backends.b.servers.aa]\naddress = \"127.0.0.1:9004\"\nbackup = true\n";
        let c = Config::from_toml(text).unwrap();
        let names: Vec<&str> = c.backends[0]
            .servers
            .iter()
            .map(|s| s.spec.name.as_str())
            .collect();
        assert_eq!(names, ["zb", "s10", "s2", "aa"]);
        // Inline tables too.
        let inline = "[frontends.f]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"b\"\n\
            [backends.b]\nservers = { y = { address = \"127.0.0.1:1\" }, x = { address = \"127.0.0.1:2\" } }\n";
        let c = Config::from_toml(inline).unwrap();
        assert_eq!(c.backends[0].servers[0].spec.name, "y");
    }

    #[test]
    fn type_errors_name_the_key_path_and_the_fix() {
        let e = err(&GOOD.replace("timeout_connect = \"2s\"", "timeout_connect = true"));
        assert!(
            e.contains("at `defaults.timeout_connect`")
                && e.contains(
                    "expected a duration such as \"500ms\", \"2s\" or integer milliseconds"
                )
                && e.contains("line 5"),
            "{e}"
        );
        let e = err(&GOOD.replace("slowstart = \"10s\"", "slowstart = -5"));
        assert!(
            e.contains("backends.app.servers.a.slowstart") && e.contains("integer milliseconds"),
            "{e}"
        );
        let e = err(&GOOD.replace("rise = 3", "rise = \"3\""));
        assert!(e.contains("at `backends.app.check.rise`"), "{e}");
        let e = err(&GOOD.replace("allbackups = true", "allbackups = true\nbogus = 1"));
        assert!(
            e.contains("at `backends.app`") && e.contains("bogus"),
            "{e}"
        );
        // Not a type error: TOML syntax, shown as toml reports it.
        let e = err("[defaults\n");
        assert!(e.contains("line 1"), "{e}");
        // Both forms still parse.
        let c = Config::from_toml(&GOOD.replace("\"2s\"", "2000")).unwrap();
        assert_eq!(c.backends[0].timeouts.connect, Duration::from_secs(2));
    }

    #[test]
    fn names_follow_haproxys_rule() {
        let e = err(&GOOD.replace("servers.a]", "servers.\"a/b\"]"));
        assert!(
            e.contains("backends.app.servers.a/b")
                && e.contains("'/' is not permitted in server name")
                && e.contains("letters, digits"),
            "{e}"
        );
        let e = err(&GOOD.replace("servers.b]", "servers.\"b,2\"]"));
        assert!(e.contains("',' is not permitted"), "{e}");
        let e = err(&GOOD.replace("servers.b]", "servers.\"\"]"));
        assert!(
            e.contains("backends.app.servers.`") && e.contains("server name is empty"),
            "{e}"
        );
        let e = err(&GOOD.replace("[frontends.web]", "[frontends.\"my web\"]"));
        assert!(
            e.contains("frontends.my web") && e.contains("frontend name"),
            "{e}"
        );
        let e = err(&GOOD
            .replace("[backends.app", "[backends.\"app!\"")
            .replace("backend = \"app\"", "backend = \"app!\""));
        assert!(e.contains("'!' is not permitted in backend name"), "{e}");
        let ok = GOOD
            .replace("servers.a]", "servers.\"A-1.x:y_z\"]")
            .replace("[frontends.web]", "[frontends.\"fe_1.0\"]");
        Config::from_toml(&ok).unwrap();
    }

    #[test]
    fn rise_and_fall_are_bounded() {
        let e = err(&GOOD.replace("rise = 3", "rise = 4294967295"));
        assert!(
            e.contains("backends.app.check.rise") && e.contains("1..=1000"),
            "{e}"
        );
        let e = err(&GOOD.replace("rise = 3", "rise = 3\nfall = 1001"));
        assert!(
            e.contains("backends.app.check.fall") && e.contains("fall = 3"),
            "{e}"
        );
        let c = Config::from_toml(&GOOD.replace("rise = 3", "rise = 1000\nfall = 1000")).unwrap();
        let p = c.backends[0].check.as_ref().unwrap().params;
        assert_eq!((p.rise, p.fall), (1000, 1000));
    }

    #[test]
    fn timeout_queue_defaults_to_the_backends_timeout_connect() {
        let queue = |text: &str| {
            let c = Config::from_toml(text).unwrap();
            let b = &c.backends[0];
            assert_eq!(b.options.timeout_queue, b.timeouts.queue);
            b.timeouts.queue
        };
        // [defaults] timeout_connect = "2s", no timeout_queue anywhere.
        assert_eq!(queue(GOOD), Duration::from_secs(2));
        let own_connect = GOOD.replace(
            "allbackups = true",
            "allbackups = true\ntimeout_connect = 700",
        );
        assert_eq!(queue(&own_connect), Duration::from_millis(700));
        let def_queue = GOOD.replace("retries = 2", "retries = 2\ntimeout_queue = \"9s\"");
        assert_eq!(queue(&def_queue), Duration::from_secs(9));
        let own_queue = own_connect.replace("timeout_connect = 700", "timeout_queue = \"3s\"");
        assert_eq!(queue(&own_queue), Duration::from_secs(3));
        let e = err(&GOOD.replace("retries = 2", "retries = 2\ntimeout_queue = 0"));
        assert!(e.contains("defaults.timeout_queue"), "{e}");
    }

    #[test]
    fn timeout_tunnel_zero_is_rejected() {
        let e = err(&GOOD.replace("timeout_tunnel = 3600000", "timeout_tunnel = 0"));
        assert!(
            e.contains("defaults.timeout_tunnel") && e.contains("greater than 0"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "allbackups = true",
            "allbackups = true\ntimeout_tunnel = \"0s\"",
        ));
        assert!(
            e.contains("backends.app.timeout_tunnel") && e.contains("\"2s\""),
            "{e}"
        );
    }

    #[test]
    fn http_routes() {
        let text = GOOD.replace("accept_proxy = true", "mode = \"http\"\n[[frontends.web.routes]]\nhost = \"API.example.com\"\npath_prefix = \"/v1\"\nbackend = \"app\"");
        let c = Config::from_toml(&text).unwrap();
        let fe = &c.frontends[0];
        assert_eq!(fe.mode, Mode::Http);
        assert!(fe.routes[0].matches(Some("api.example.com"), "/v1/x"));
        assert!(!fe.routes[0].matches(Some("api.example.com"), "/v2"));
        assert!(!fe.routes[0].matches(None, "/v1"));
        let e = err(&text.replace(
            "backend = \"app\"\n[backends",
            "backend = \"nope\"\n[backends",
        ));
        assert!(e.contains("frontends.web.routes[0].backend"), "{e}");
        let e = err(&GOOD.replace("accept_proxy = true", "mode = \"udp\""));
        assert!(e.contains("frontends.web.mode"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("5 years"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }
}
