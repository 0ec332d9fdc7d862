//! The Prometheus exposition (`Snapshot::to_prometheus`, `GET /metrics`):
//! valid text format 0.0.4, and HAProxy 2.6's exporter names, labels, types,
//! HELP texts and values for the same situation, against an excerpt of a
//! real HAProxy 2.6.12's output (`tests/data/haproxy-2.6.12-metrics.txt`)
//! and against a live `haproxy` (skipped with a printed reason when it is
//! missing, unless HALYARD_REQUIRE_SYSTEM=1).
//!
//! The situation: frontend `fe` to backend `be` with `up1` (checked, UP,
//! weight 3, maxconn 10, maxqueue 5), `down1` (checked, refused: DOWN,
//! weight 5), `nc` (not checked, weight 2), `dr` (drain, weight 7), `mt`
//! (maint, weight 9), `bk` (backup, weight 4), and backend `empty`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use halyard_proxy::backend::{AdminState, Backend, BackendOptions, ServerSpec};
use halyard_proxy::config::Config;
use halyard_proxy::health::CheckParams;
use halyard_proxy::stats::{FrontendStats, Snapshot};
use halyard_proxy::Proxy;

/// A real HAProxy 2.6.12's `/metrics` for the situation above, cut to the
/// proxies `fe`, `be` and `empty` (every family: a metric added to
/// `stats.rs` is compared without touching this file).
const HAPROXY_2_6_12: &str = include_str!("data/haproxy-2.6.12-metrics.txt");

/// Families whose values depend on timing: only their series are compared.
const VOLATILE: [&str; 3] = [
    "haproxy_backend_check_last_change_seconds",
    "haproxy_server_check_last_change_seconds",
    "haproxy_server_check_duration_seconds",
];

/// Servers without checks: HAProxy prints `NaN` for their check counters,
/// halyard 0 (README, "Prometheus").
const NOT_CHECKED: [&str; 4] = ["nc", "dr", "mt", "bk"];

/// The proxies compared: the situation's (TCP mode), and the live test's
/// HTTP ones (`h*`), whose traffic is compared in [`HTTP_FAMILIES`] only
/// (halyard counts no request bytes in HTTP mode, and the two proxies'
/// responses differ in size).
const PROXIES: [&str; 7] = ["fe", "be", "empty", "hfe", "hbe", "hnone", "hbad"];

/// HAProxy's HTTP counters.
const HTTP_FAMILIES: [&str; 12] = [
    "haproxy_frontend_http_requests_total",
    "haproxy_frontend_http_responses_total",
    "haproxy_frontend_request_errors_total",
    "haproxy_backend_http_requests_total",
    "haproxy_backend_http_responses_total",
    "haproxy_backend_response_errors_total",
    "haproxy_backend_client_aborts_total",
    "haproxy_backend_server_aborts_total",
    "haproxy_server_http_responses_total",
    "haproxy_server_response_errors_total",
    "haproxy_server_client_aborts_total",
    "haproxy_server_server_aborts_total",
];

/// Of [`HTTP_FAMILIES`], those HAProxy also exports for TCP-mode proxies,
/// where halyard measures nothing with their meaning (README,
/// "Prometheus"): compared on HTTP proxies only.
const HTTP_ONLY_HERE: [&str; 4] = [
    "_request_errors_total",
    "_response_errors_total",
    "_client_aborts_total",
    "_server_aborts_total",
];

/// Checks `text` against the Prometheus text format 0.0.4: every sample has
/// a TYPE line of its family before it, a family's samples are contiguous,
/// names and label names are valid, label values are quoted with only `\\`,
/// `\"` and `\n` escapes, values are numbers (or `NaN`, `+Inf`, `-Inf`), and
/// no series appears twice.
fn check_exposition(text: &str) -> Result<(), String> {
    let name_ok = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    };
    let label_ok = |n: &str| name_ok(n) && !n.contains(':') && !n.starts_with("__");
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut sampled: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<String> = BTreeSet::new();
    let mut open = |family: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if closed.contains(family) {
                return Err(format!("family {family} is not contiguous"));
            }
            if let Some(c) = current.take() {
                closed.insert(c);
            }
            *current = Some(family.to_string());
        }
        Ok(())
    };
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a newline".into());
    }
    for (i, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut w = rest.trim_start().splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !name_ok(name) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("bad type {kind}")));
                    }
                    if typed.insert(name.into(), kind.into()).is_some() {
                        return Err(at("second TYPE line".into()));
                    }
                    if sampled.contains(name) {
                        return Err(at("TYPE after the family's samples".into()));
                    }
                    open(name, &mut current).map_err(at)?;
                }
                (Some("HELP"), Some(name), help) => {
                    if !name_ok(name) || !helped.insert(name.into()) {
                        return Err(at("bad or second HELP line".into()));
                    }
                    let help = help.unwrap_or("");
                    let mut chars = help.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(at("bad escape in HELP".into()));
                        }
                    }
                    open(name, &mut current).map_err(at)?;
                }
                _ => {} // a comment
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        let kind = typed
            .get(name)
            .ok_or_else(|| at(format!("no TYPE line before {name}")))?;
        if kind != "counter" && kind != "gauge" {
            return Err(at("only counters and gauges are expected".into()));
        }
        open(name, &mut current).map_err(at)?;
        sampled.insert(name.to_string());
        let mut rest = &line[name_end..];
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| at("label without =".into()))?;
                let lname = &rest[..eq];
                if !label_ok(lname) {
                    return Err(at(format!("bad label name {lname:?}")));
                }
                rest = rest[eq + 1..]
                    .strip_prefix('"')
                    .ok_or_else(|| at("unquoted label value".into()))?;
                let mut value = String::new();
                let mut chars = rest.char_indices();
                let end = loop {
                    match chars.next() {
                        None => return Err(at("unterminated label value".into())),
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(at("bad escape in a label value".into())),
                        },
                        Some((_, c)) => value.push(c),
                    }
                };
                if labels.insert(lname.into(), value).is_some() {
                    return Err(at(format!("label {lname} twice")));
                }
                rest = &rest[end + 1..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?
            .split(' ');
        let value = fields.next().unwrap_or("");
        let number = value.parse::<f64>().is_ok()
            && value
                .chars()
                .all(|c| c.is_ascii_digit() || ".eE+-".contains(c));
        if !(number || ["NaN", "+Inf", "-Inf"].contains(&value)) {
            return Err(at(format!("bad value {value:?}")));
        }
        if let Some(ts) = fields.next() {
            if ts.parse::<i64>().is_err() || fields.next().is_some() {
                return Err(at("bad timestamp or trailing text".into()));
            }
        }
        if !series.insert(format!("{name}{labels:?}")) {
            return Err(at("duplicate series".into()));
        }
    }
    Ok(())
}

/// The families with a TYPE line in `text`, with their HELP and TYPE lines.
fn headers(text: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in text.lines() {
        let mut w = l.split(' ');
        if let (Some("#"), Some("HELP" | "TYPE"), Some(name)) = (w.next(), w.next(), w.next()) {
            out.entry(name).or_default().push(l);
        }
    }
    out
}

/// The samples of `text` for `families` and the proxies of the situation:
/// series -> value (`-` for a volatile family; none for the check counters
/// of a server without checks).
fn samples(text: &str, families: &BTreeSet<&str>) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let family = &series[..series.find('{')?];
            let proxy = PROXIES
                .iter()
                .find(|p| series.contains(&format!("{{proxy=\"{p}\"")))?;
            let http_proxy = proxy.starts_with('h');
            let proxy_ok = if http_proxy {
                HTTP_FAMILIES.contains(&family)
            } else {
                !HTTP_ONLY_HERE.iter().any(|f| family.ends_with(f))
            };
            let not_checked = (family.ends_with("check_failures_total")
                || family.ends_with("check_up_down_total"))
                && NOT_CHECKED
                    .iter()
                    .any(|s| series.contains(&format!("server=\"{s}\"")));
            if !families.contains(family) || !proxy_ok || not_checked {
                return None;
            }
            let v = if VOLATILE.contains(&family) {
                "-"
            } else {
                value
            };
            Some((series.to_string(), v.to_string()))
        })
        .collect()
}

/// `ours` exports the `haproxy_*` families of `reference` that it has with
/// the same HELP and TYPE lines, and, for the situation's proxies, the
/// same series with the same values (series only for the volatile ones).
fn assert_matches_haproxy(reference: &str, ours: &str) {
    let theirs = headers(reference);
    let mine = headers(ours);
    let families: BTreeSet<&str> = mine
        .keys()
        .copied()
        .filter(|f| f.starts_with("haproxy_"))
        .collect();
    assert!(families.len() >= 30, "{families:?}");
    for f in &families {
        assert_eq!(theirs.get(f), mine.get(f), "HELP/TYPE of {f}");
    }
    let (theirs, mine) = (samples(reference, &families), samples(ours, &families));
    let only = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (only(&theirs, &mine), only(&mine, &theirs)),
        (vec![], vec![]),
        "(only HAProxy's, only ours)"
    );
}

/// The situation built on the core directly.
fn situation() -> Snapshot {
    let now = Instant::now();
    let mut be = Backend::new("be", BackendOptions::default(), now);
    let add = |b: &mut Backend, name: &str, weight: u32, f: &dyn Fn(&mut ServerSpec)| {
        let mut s = ServerSpec::new(name, "127.0.0.1:1".parse().unwrap());
        s.weight = weight;
        f(&mut s);
        b.add_server(s, now).unwrap()
    };
    let up1 = add(&mut be, "up1", 3, &|s| {
        s.check = Some(CheckParams::default());
        s.maxconn = 10;
        s.maxqueue = 5;
    });
    let down1 = add(&mut be, "down1", 5, &|s| {
        s.check = Some(CheckParams::default())
    });
    add(&mut be, "nc", 2, &|_| {});
    add(&mut be, "dr", 7, &|_| {});
    add(&mut be, "mt", 9, &|_| {});
    add(&mut be, "bk", 4, &|s| s.backup = true);
    be.check_result(now, up1, true, "L4OK", "", Duration::ZERO);
    be.check_result(now, down1, false, "L4CON", "", Duration::ZERO);
    be.set_admin(now, "dr", AdminState::Drain).unwrap();
    be.set_admin(now, "mt", AdminState::Maint).unwrap();
    Snapshot {
        dropped_logs: 0,
        frontends: vec![FrontendStats {
            name: "fe".into(),
            ..Default::default()
        }],
        backends: vec![
            be.stats(now),
            Backend::new("empty", BackendOptions::default(), now).stats(now),
        ],
    }
}

#[test]
fn exposition_is_valid_text_format() {
    let mut snap = situation();
    // Names the configuration refuses but the snapshot can hold.
    snap.frontends[0].name = "f\"e\\\n".into();
    snap.backends[0].servers[0].name = "a\"b".into();
    let text = snap.to_prometheus();
    check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        text.contains("haproxy_frontend_current_sessions{proxy=\"f\\\"e\\\\\\n\"} 0\n"),
        "{text}"
    );
    assert!(text.contains("haproxy_server_status{proxy=\"be\",server=\"a\\\"b\",state=\"UP\"} 1\n"));
    // Nothing configured: the process family alone, as HAProxy prints it.
    assert_eq!(
        Snapshot::default().to_prometheus(),
        "# HELP haproxy_process_dropped_logs_total Total number of dropped logs for current worker process since started\n\
         # TYPE haproxy_process_dropped_logs_total counter\n\
         haproxy_process_dropped_logs_total 0\n"
    );
    // The validator itself refuses what it must.
    for bad in [
        "x 1\n",
        "# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",
        "# TYPE x gauge\nx{a=\"\\q\"} 1\n",
        "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx 2\n",
        "# TYPE x gauge\nx one\n",
        "# TYPE x gauge\nx{a=1} 1\n",
    ] {
        assert!(check_exposition(bad).is_err(), "{bad}");
    }
    check_exposition(HAPROXY_2_6_12).unwrap();
}

#[test]
fn names_labels_and_values_match_haproxy_2_6_12() {
    assert_matches_haproxy(HAPROXY_2_6_12, &situation().to_prometheus());
}

/// HAProxy's `/metrics` body (HTTP/1.1, chunked).
fn get_metrics(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, mut rest) = raw.split_once("\r\n\r\n")?;
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(rest.to_string());
    }
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(body);
        }
        body.push_str(after.get(..n)?);
        rest = after.get(n + 2..)?;
    }
}

#[tokio::test]
async fn live_output_matches_a_running_haproxy() {
    if haproxy_missing("live_output_matches_a_running_haproxy") {
        return;
    }
    let (up, _t) = echo_server().await;
    let (raw, _r) = raw_http_server().await;
    let down = dead_addr().await;
    let (metrics, fe, hfe) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("halyard-promex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("admin.sock");
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    nbthread 1\n    stats socket {} level admin\n\
defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
frontend stats\n    mode http\n    bind 127.0.0.1:{metrics}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n\
frontend fe\n    bind 127.0.0.1:{fe}\n    default_backend be\n\
backend be\n\
    server up1 {up} check inter 100ms weight 3 maxconn 10 maxqueue 5\n\
    server down1 {down} check inter 100ms weight 5\n\
    server nc {up} weight 2\n    server dr {up} weight 7\n    server mt {up} weight 9\n\
    server bk {up} backup weight 4\n\
backend empty\n\
frontend hfe\n    mode http\n    bind 127.0.0.1:{hfe}\n\
    use_backend hnone if {{ path_beg /none }}\n    use_backend hbad if {{ path_beg /close /half }}\n\
    default_backend hbe\n\
backend hbe\n    mode http\n    server a {raw}\n\
backend hnone\n    mode http\n\
backend hbad\n    mode http\n    server r {raw}\n",
            sock.display()
        ),
    )
    .unwrap();
    let _k = spawn_haproxy(&cfg);
    let ours = Proxy::start(
        Config::from_toml(&format!(
            r#"
[frontends.fe]
binds = ["127.0.0.1:0"]
backend = "be"
[backends.empty]
[backends.be.check]
inter = "100ms"
[backends.be.servers.up1]
address = "{up}"
check = true
weight = 3
maxconn = 10
maxqueue = 5
[backends.be.servers.down1]
address = "{down}"
check = true
weight = 5
[backends.be.servers.nc]
address = "{up}"
weight = 2
[backends.be.servers.dr]
address = "{up}"
weight = 7
[backends.be.servers.mt]
address = "{up}"
weight = 9
[backends.be.servers.bk]
address = "{up}"
backup = true
weight = 4
[frontends.hfe]
mode = "http"
binds = ["127.0.0.1:0"]
backend = "hbe"
[[frontends.hfe.routes]]
path_prefix = "/none"
backend = "hnone"
[[frontends.hfe.routes]]
path_prefix = "/close"
backend = "hbad"
[[frontends.hfe.routes]]
path_prefix = "/half"
backend = "hbad"
[backends.hbe.servers.a]
address = "{raw}"
[backends.hnone]
[backends.hbad.servers.r]
address = "{raw}"
"#
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    ours.set_state("be", "dr", AdminState::Drain).unwrap();
    ours.set_state("be", "mt", AdminState::Maint).unwrap();
    eventually("haproxy's admin socket", || sock.exists()).await;
    for cmd in [
        "set server be/dr state drain",
        "set server be/mt state maint",
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.trim().is_empty(), "{cmd}: {answer}");
    }
    // Both settled: up1's check passed and down1 went DOWN.
    let settled = |text: &str| {
        text.contains("haproxy_server_check_status{proxy=\"be\",server=\"up1\",state=\"L4OK\"} 1")
            && text
                .contains("haproxy_server_status{proxy=\"be\",server=\"down1\",state=\"DOWN\"} 1")
    };
    let mut theirs = String::new();
    eventually("haproxy's checks settled", || {
        theirs = get_metrics(metrics).unwrap_or_default();
        settled(&theirs)
    })
    .await;
    eventually("our checks settled", || {
        settled(&ours.stats().to_prometheus())
    })
    .await;
    // The same HTTP exchanges through both: 200, 404 (the server's), 503
    // (no server), 502 (the server closes), a server abort, a malformed
    // request.
    let hours = ours.local_addrs("hfe")[0];
    for addr in [std::net::SocketAddr::from(([127, 0, 0, 1], hfe)), hours] {
        for path in ["/", "/missing", "/none", "/close", "/half"] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            raw_exchange(addr, req.as_bytes()).await;
        }
        raw_exchange(addr, b"GARBAGE\r\n\r\n").await;
    }
    let done = |text: &str| {
        ["2xx\"} 2", "4xx\"} 2", "5xx\"} 2"].iter().all(|c| {
            text.contains(&format!(
                "haproxy_frontend_http_responses_total{{proxy=\"hfe\",code=\"{c}"
            ))
        }) && text.contains("haproxy_frontend_request_errors_total{proxy=\"hfe\"} 1")
    };
    eventually("haproxy counted the exchanges", || {
        theirs = get_metrics(metrics).unwrap_or_default();
        done(&theirs)
    })
    .await;
    eventually("we counted the exchanges", || {
        done(&ours.stats().to_prometheus())
    })
    .await;
    let mine = ours.stats().to_prometheus();
    let exported = headers(&mine);
    for f in HTTP_FAMILIES {
        assert!(exported.contains_key(f), "{f} is exported");
    }
    check_exposition(&theirs).unwrap();
    check_exposition(&mine).unwrap();
    assert_matches_haproxy(&theirs, &mine);
    let _ = std::fs::remove_dir_all(&dir);
}
