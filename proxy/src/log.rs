//! Access logs: HAProxy 2.6's `option tcplog` and `option httplog` lines,
//! with its termination states (configuration manual, section 8 "Logging":
//! 8.2.2 TCP log format, 8.2.3 HTTP log format, 8.4 timing events, 8.5
//! session state at disconnection; `sess_build_logline` in `src/log.c`).
//!
//! Pure: the runtime fills a [`Record`] (its clock readings, counters and
//! how the session or request ended) and [`write_line`] formats it;
//! [`write_syslog_header`] frames it as HAProxy's default `format rfc3164`.
//! The termination state's two letters come from [`TermState`]: the
//! runtime says what happened in its own terms ([`Ended`], an
//! [`HttpEnd`], or a [`Cause`] and [`Phase`] for the failures before
//! forwarding) and gets HAProxy's letters back. The states were checked
//! against HAProxy 2.6.12 (see the tests).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::HttpEnd;

/// Which line a frontend logs (HAProxy's `option tcplog` / `option
/// httplog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `option tcplog`: one line per TCP session.
    Tcp,
    /// `option httplog`: one line per HTTP request.
    Http,
}

/// Where the lines go (HAProxy's global `log` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// UDP syslog, RFC 3164 framing (HAProxy's default `format rfc3164`).
    Udp(SocketAddr),
    /// Standard output, the message alone (HAProxy's `log stdout format raw`).
    Stdout,
    /// Standard error, the message alone.
    Stderr,
}

/// The global `log` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// Where.
    pub target: Target,
    /// The syslog facility's number (`local0` is 16).
    pub facility: u8,
    /// The syslog tag (HAProxy's `log-tag`, default the program name).
    pub tag: String,
}

/// HAProxy's facility names (`log_facilities` in `src/log.c`), by number.
pub const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// Syslog severity of the traffic logs: `info`, HAProxy's level for them
/// (without `option log-separate-errors`).
const SEVERITY_INFO: u8 = 6;

/// First letter of the termination state: what ended the session
/// (HAProxy's `SF_ERR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// `-`: normal end.
    Normal,
    /// `C`: the client aborted or its connection failed.
    ClientAbort,
    /// `S`: the server aborted, refused or failed.
    ServerAbort,
    /// `P`: the proxy ended it (a bad request or response).
    Proxy,
    /// `c`: `timeout client` (or `timeout tunnel`).
    ClientTimeout,
    /// `s`: `timeout server`, `timeout connect` or `timeout queue`.
    ServerTimeout,
    /// `K`: killed by the proxy (a hard stop).
    Killed,
    /// `D`: killed because its server went DOWN (`on-marked-down
    /// shutdown-sessions`).
    Down,
}

impl Cause {
    fn letter(self) -> char {
        match self {
            Cause::Normal => '-',
            Cause::ClientAbort => 'C',
            Cause::ServerAbort => 'S',
            Cause::Proxy => 'P',
            Cause::ClientTimeout => 'c',
            Cause::ServerTimeout => 's',
            Cause::Killed => 'K',
            Cause::Down => 'D',
        }
    }
}

/// Second letter: where the session was when it ended (HAProxy's
/// `SF_FINST_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `-`: it ended normally, or was killed (see [`TermState::new`]).
    None,
    /// `R`: waiting for the client's request.
    Request,
    /// `Q`: in a queue, waiting for a server.
    Queue,
    /// `C`: connecting to the server.
    Connect,
    /// `H`: waiting for the server's response headers.
    Headers,
    /// `D`: forwarding data.
    Data,
}

impl Phase {
    fn letter(self) -> char {
        match self {
            Phase::None => '-',
            Phase::Request => 'R',
            Phase::Queue => 'Q',
            Phase::Connect => 'C',
            Phase::Headers => 'H',
            Phase::Data => 'D',
        }
    }
}

/// HAProxy's two-letter termination state (`%ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermState {
    /// What ended it.
    pub cause: Cause,
    /// Where it was.
    pub phase: Phase,
}

/// How forwarding ended (a TCP session, an upgraded tunnel): the runtime's
/// reasons, without their errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both sides closed.
    Closed,
    /// The client's socket failed (reset, ...).
    ClientError,
    /// The server's socket failed.
    ServerError,
    /// `timeout client` (or `timeout tunnel`) passed.
    ClientTimeout,
    /// `timeout server` passed.
    ServerTimeout,
    /// `on-marked-down shutdown-sessions` (or `on-marked-up
    /// shutdown-backup-sessions`).
    MarkedDown,
    /// A hard stop.
    Stopping,
}

impl TermState {
    /// A normal end, `--`.
    pub const NORMAL: TermState = TermState {
        cause: Cause::Normal,
        phase: Phase::None,
    };

    /// `cause` in `phase`. A normal end is `--` whatever the phase, and a
    /// killed session shows no phase: HAProxy 2.6.12 logs `K-` for a hard
    /// stop or `shutdown sessions`, `D-` for `on-marked-down
    /// shutdown-sessions`, during the data phase too.
    pub fn new(cause: Cause, phase: Phase) -> TermState {
        let phase = match cause {
            Cause::Normal | Cause::Killed | Cause::Down => Phase::None,
            _ => phase,
        };
        TermState { cause, phase }
    }

    /// `timeout queue` passed: `sQ`.
    pub const QUEUE_TIMEOUT: TermState = TermState {
        cause: Cause::ServerTimeout,
        phase: Phase::Queue,
    };

    /// A malformed request, refused (400): `PR`.
    pub const BAD_REQUEST: TermState = TermState {
        cause: Cause::Proxy,
        phase: Phase::Request,
    };

    /// A request head not received within `timeout client` (HAProxy's
    /// `timeout http-request`), answered 408: `cR`.
    pub const REQUEST_TIMEOUT: TermState = TermState {
        cause: Cause::ClientTimeout,
        phase: Phase::Request,
    };

    /// No server for it: none usable `SC` (HAProxy 2.6.12 logs `<NOSRV>`
    /// then), or the server it must wait for has a full queue (`maxqueue`)
    /// `SQ` (HAProxy's `SRV_STATUS_FULL`).
    pub fn no_server(queue_full: bool) -> TermState {
        let phase = if queue_full {
            Phase::Queue
        } else {
            Phase::Connect
        };
        TermState::new(Cause::ServerAbort, phase)
    }

    /// Gave up connecting: the last attempt ended on `timeout connect`
    /// `sC`, else (refused, reset, unreachable) `SC`.
    pub fn connect_failed(timed_out: bool) -> TermState {
        let cause = if timed_out {
            Cause::ServerTimeout
        } else {
            Cause::ServerAbort
        };
        TermState::new(cause, Phase::Connect)
    }

    /// The state of a session whose forwarding ended so (TCP mode, or an
    /// upgraded HTTP request's tunnel): `--`, `CD`, `SD`, `cD`, `sD`, `D-`,
    /// `K-`.
    pub fn forwarding(e: Ended) -> TermState {
        let cause = match e {
            Ended::Closed => Cause::Normal,
            Ended::ClientError => Cause::ClientAbort,
            Ended::ServerError => Cause::ServerAbort,
            Ended::ClientTimeout => Cause::ClientTimeout,
            Ended::ServerTimeout => Cause::ServerTimeout,
            Ended::MarkedDown => Cause::Down,
            Ended::Stopping => Cause::Killed,
        };
        TermState::new(cause, Phase::Data)
    }

    /// The state of an HTTP request that had a server and ended as `end`
    /// (the proxy's own 503s without a server say their state themselves):
    /// a response forwarded whole `--`; the server cut its body `SD`; the
    /// client left before the response headers `CH`, during the body `CD`;
    /// the server closed or answered garbage before its headers `SH`
    /// (502), `timeout server` then `sH` (504); a tunnel's `timeout server`
    /// `sD`.
    pub fn http(end: HttpEnd) -> TermState {
        let (cause, phase) = match end {
            HttpEnd::Response(_) => (Cause::Normal, Phase::None),
            HttpEnd::ServerAbort(_) => (Cause::ServerAbort, Phase::Data),
            HttpEnd::ServerTimeout(_) => (Cause::ServerTimeout, Phase::Data),
            HttpEnd::ClientAbort(None) => (Cause::ClientAbort, Phase::Headers),
            HttpEnd::ClientAbort(Some(_)) => (Cause::ClientAbort, Phase::Data),
            HttpEnd::ServerError(504) => (Cause::ServerTimeout, Phase::Headers),
            HttpEnd::ServerError(_) => (Cause::ServerAbort, Phase::Headers),
            HttpEnd::Local(_) => (Cause::ServerAbort, Phase::Connect),
        };
        TermState::new(cause, phase)
    }
}

impl std::fmt::Display for TermState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_char(self.cause.letter())?;
        f.write_char(self.phase.letter())
    }
}

/// The timers of a line, each `None` (printed `-1`) when its phase never
/// happened (manual 8.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    /// `%TR` (HTTP): receiving the request headers.
    pub request: Option<Duration>,
    /// `%Tw`: waiting in the queues for a server.
    pub queue: Option<Duration>,
    /// `%Tc`: connecting to the server (0 for a reused connection).
    pub connect: Option<Duration>,
    /// `%Tr` (HTTP): the server's response headers, from the request sent.
    pub response: Option<Duration>,
    /// `%Tt` (TCP: the session, from the accept) or `%Ta` (HTTP: the
    /// request, from its date to the end of the response).
    pub total: Option<Duration>,
}

/// The concurrent connection counts and retries of a line
/// (`%ac/%fc/%bc/%sc/%rc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// `%ac`: connections on the whole process, this one included.
    pub process: u64,
    /// `%fc`: connections on the frontend, this one included.
    pub frontend: u64,
    /// `%bc`: sessions on the backend, this one no longer.
    pub backend: u64,
    /// `%sc`: sessions on the server, this one no longer (0 without one).
    pub server: u64,
    /// `%rc`: connect retries.
    pub retries: u32,
    /// The session was redispatched to another server (`+` before `%rc`).
    pub redispatched: bool,
}

/// An HTTP request line as the client sent it (`%r`).
#[derive(Clone, Copy)]
pub struct RequestLine<'a> {
    /// Method.
    pub method: &'a str,
    /// URI, as received.
    pub uri: &'a dyn std::fmt::Display,
    /// `HTTP/1.1`, ...
    pub version: &'a str,
}

/// Everything one line says.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// `%ci:%cp`: the client (its PROXY header's with `accept_proxy`).
    pub client: SocketAddr,
    /// `%t` (TCP: the accept) or `%tr` (HTTP: the request).
    pub date: SystemTime,
    /// `%ft`.
    pub frontend: &'a str,
    /// `%b`.
    pub backend: &'a str,
    /// `%s`; `None` prints `<NOSRV>`.
    pub server: Option<&'a str>,
    /// The timers.
    pub timers: Timers,
    /// `%ST` (HTTP): the status the client got; `None` prints `-1`.
    pub status: Option<u16>,
    /// `%B`: bytes sent to the client (TCP: from the server; HTTP: the
    /// response's head and body).
    pub bytes: u64,
    /// `%ts`.
    pub term: TermState,
    /// `%ac/%fc/%bc/%sc/%rc`.
    pub counts: Counts,
    /// `%sq/%bq`: the position in the server's and the backend's queue
    /// (0 when not queued there).
    pub queue: (u32, u32),
    /// `%r` (HTTP); `None` prints `<BADREQ>`.
    pub request: Option<RequestLine<'a>>,
}

/// Appends `-1` or the whole milliseconds of `d`.
fn timer(out: &mut String, d: Option<Duration>) {
    match d {
        None => out.push_str("-1"),
        Some(d) => {
            let _ = write!(out, "{}", d.as_millis());
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// UTC calendar fields of `t`: year, month (1..=12), day, hour, minute,
/// second, millisecond.
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// Appends HAProxy's log date, `27/Nov/2026:11:15:02.123` (UTC).
fn date(out: &mut String, t: SystemTime) {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    let _ = write!(
        out,
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02}.{ms:03}",
        MONTHS[mo as usize - 1]
    );
}

/// Appends `s` with the bytes HAProxy escapes in `%r` as `#XX` (control
/// characters, `"`, `#` and bytes beyond ASCII).
fn escaped(out: &mut String, s: std::fmt::Arguments<'_>) {
    struct Esc<'o>(&'o mut String);
    impl std::fmt::Write for Esc<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for b in s.bytes() {
                if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'#' {
                    write!(self.0, "#{b:02X}")?;
                } else {
                    self.0.push(b as char);
                }
            }
            Ok(())
        }
    }
    let _ = Esc(out).write_fmt(s);
}

/// Appends `r` as an `option tcplog` or `option httplog` line, without a
/// newline:
///
/// ```text
/// tcplog:  %ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq
/// httplog: %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc
///          %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r
/// ```
///
/// Without captures, `%CC` and `%CS` print `-`, and `%hr %hs` nothing,
/// with one space left between `%sq/%bq` and the request, as HAProxy
/// 2.6.12 prints them; the persistence cookie's two letters of `%tsc` are
/// `--`.
pub fn write_line(out: &mut String, format: LogFormat, r: &Record<'_>) {
    let _ = write!(out, "{}:{} [", r.client.ip(), r.client.port());
    date(out, r.date);
    let _ = write!(
        out,
        "] {} {}/{} ",
        r.frontend,
        r.backend,
        r.server.unwrap_or("<NOSRV>")
    );
    let t = &r.timers;
    let timers: &[Option<Duration>] = match format {
        LogFormat::Tcp => &[t.queue, t.connect, t.total],
        LogFormat::Http => &[t.request, t.queue, t.connect, t.response, t.total],
    };
    for (i, d) in timers.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        timer(out, *d);
    }
    if format == LogFormat::Http {
        match r.status {
            Some(s) => {
                let _ = write!(out, " {s}");
            }
            None => out.push_str(" -1"),
        }
    }
    match format {
        LogFormat::Tcp => {
            let _ = write!(out, " {} {}", r.bytes, r.term);
        }
        // `%CC %CS` without captures, then `%tsc`: the cookie's flags `--`.
        LogFormat::Http => {
            let _ = write!(out, " {} - - {}--", r.bytes, r.term);
        }
    }
    let c = &r.counts;
    let _ = write!(
        out,
        " {}/{}/{}/{}/{}{} {}/{}",
        c.process,
        c.frontend,
        c.backend,
        c.server,
        if c.redispatched { "+" } else { "" },
        c.retries,
        r.queue.0,
        r.queue.1
    );
    if format == LogFormat::Http {
        match &r.request {
            Some(q) => {
                out.push_str(" \"");
                escaped(out, format_args!("{} {} {}", q.method, q.uri, q.version));
                out.push('"');
            }
            None => out.push_str(" \"<BADREQ>\""),
        }
    }
}

/// Why a connection was closed before it became a session: its PROXY
/// header (`accept_proxy`) was bad or did not come (HAProxy's
/// `CO_ER_PRX_*` error codes, `conn_err_code_str` in `src/connection.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    /// The client closed before sending anything (`CO_ER_PRX_EMPTY`).
    Empty,
    /// The connection failed, reset (`CO_ER_PRX_ABORT`).
    Abort,
    /// `timeout client` passed first (`CO_ER_PRX_TIMEOUT`).
    Timeout,
    /// The client closed in the middle of the header (`CO_ER_PRX_TRUNCATED`).
    Truncated,
    /// Not a PROXY header at all (`CO_ER_PRX_NOT_HDR`).
    NotHeader,
    /// A PROXY header, but malformed (`CO_ER_PRX_BAD_HDR`).
    BadHeader,
}

impl ConnError {
    /// HAProxy's text for it.
    pub fn message(self) -> &'static str {
        match self {
            ConnError::Empty => "Connection closed while waiting for PROXY protocol header",
            ConnError::Abort => "Connection error while waiting for PROXY protocol header",
            ConnError::Timeout => "Timeout while waiting for PROXY protocol header",
            ConnError::Truncated => "Truncated PROXY protocol header received",
            ConnError::NotHeader => {
                "Received something which does not look like a PROXY protocol header"
            }
            ConnError::BadHeader => "Received an invalid PROXY protocol header",
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Appends the line HAProxy logs for a connection closed before it became
/// a session (`sess_log_embryonic`, `session_prepare_log_prefix` in
/// `src/session.c`), whatever the log format: `%ci:%cp [%t] %ft/<bind>:
/// <reason>`, `listener` being the number of the frontend's bind address
/// that accepted it, from 1 (HAProxy's listener `luid`), without a newline.
pub fn write_conn_error(
    out: &mut String,
    client: SocketAddr,
    at: SystemTime,
    frontend: &str,
    listener: usize,
    e: ConnError,
) {
    let _ = write!(out, "{}:{} [", client.ip(), client.port());
    date(out, at);
    let _ = write!(out, "] {frontend}/{listener}: {e}");
}

/// Appends HAProxy's RFC 3164 header, `<134>Nov 27 11:17:11 tag[pid]: `
/// (no hostname: HAProxy sends one only with `log-send-hostname`), for a
/// line logged at `info`.
pub fn write_syslog_header(out: &mut String, facility: u8, t: SystemTime, tag: &str, pid: u32) {
    let (_, mo, d, h, mi, s, _) = civil(t);
    let pri = u32::from(facility) * 8 + u32::from(SEVERITY_INFO);
    let _ = write!(
        out,
        "<{pri}>{} {d:2} {h:02}:{mi:02}:{s:02} {tag}[{pid}]: ",
        MONTHS[mo as usize - 1]
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 27/Nov/2026:11:15:02.123 UTC.
    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_778_102_123)
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn tcp(term: TermState) -> Record<'static> {
        Record {
            client: "127.0.0.1:60012".parse().unwrap(),
            date: at(),
            frontend: "ft_tcp",
            backend: "bk_tcp",
            server: Some("s1"),
            timers: Timers {
                queue: ms(1),
                connect: ms(0),
                total: ms(1001),
                ..Timers::default()
            },
            status: None,
            bytes: 6,
            term,
            counts: Counts {
                process: 1,
                frontend: 1,
                ..Counts::default()
            },
            queue: (0, 0),
            request: None,
        }
    }

    fn line(format: LogFormat, r: &Record<'_>) -> String {
        let mut s = String::new();
        write_line(&mut s, format, r);
        s
    }

    #[test]
    fn dates_are_haproxys() {
        let mut s = String::new();
        date(&mut s, at());
        assert_eq!(s, "27/Nov/2026:11:15:02.123");
        s.clear();
        date(&mut s, UNIX_EPOCH + Duration::from_millis(951_782_400_007));
        assert_eq!(s, "29/Feb/2000:00:00:00.007", "leap day");
        s.clear();
        date(&mut s, UNIX_EPOCH);
        assert_eq!(s, "01/Jan/1970:00:00:00.000");
    }

    /// The lines HAProxy 2.6.12 printed (`option tcplog`, `log stdout
    /// format raw`) for a client timeout in the data phase and for a
    /// refused connect with `retries 1`, with halyard's values in them.
    #[test]
    fn tcplog_lines() {
        let r = tcp(TermState::forwarding(Ended::ClientTimeout));
        assert_eq!(
            line(LogFormat::Tcp, &r),
            "127.0.0.1:60012 [27/Nov/2026:11:15:02.123] ft_tcp bk_tcp/s1 1/0/1001 6 cD 1/1/0/0/0 0/0"
        );
        let r = Record {
            timers: Timers {
                queue: ms(1),
                connect: None,
                total: ms(500),
                ..Timers::default()
            },
            bytes: 0,
            term: TermState::connect_failed(false),
            counts: Counts {
                retries: 1,
                ..r.counts
            },
            ..r
        };
        assert_eq!(
            line(LogFormat::Tcp, &r),
            "127.0.0.1:60012 [27/Nov/2026:11:15:02.123] ft_tcp bk_tcp/s1 1/-1/500 0 SC 1/1/0/0/1 0/0"
        );
        // No server at all: `<NOSRV>`, never queued nor connected.
        let r = Record {
            server: None,
            timers: Timers {
                total: ms(0),
                ..Timers::default()
            },
            counts: Counts {
                retries: 0,
                ..r.counts
            },
            ..r
        };
        assert_eq!(
            line(LogFormat::Tcp, &r),
            "127.0.0.1:60012 [27/Nov/2026:11:15:02.123] ft_tcp bk_tcp/<NOSRV> -1/-1/0 0 SC 1/1/0/0/0 0/0"
        );
    }

    #[test]
    fn redispatch_prefixes_the_retries_and_queue_positions_show() {
        let r = Record {
            counts: Counts {
                process: 3,
                frontend: 2,
                backend: 1,
                server: 1,
                retries: 1,
                redispatched: true,
            },
            queue: (0, 2),
            ..tcp(TermState::NORMAL)
        };
        assert!(line(LogFormat::Tcp, &r).ends_with(" 6 -- 3/2/1/1/+1 0/2"));
    }

    /// httplog lines as HAProxy 2.6.12 printed them: a 200, a refused
    /// connect (503 `SC--`), `timeout server` (504 `sH--`), a malformed
    /// request (400 `PR--`, `<BADREQ>`, the frontend as backend).
    #[test]
    fn httplog_lines() {
        let uri = "/ok";
        let r = Record {
            client: "127.0.0.1:52270".parse().unwrap(),
            frontend: "ft_http",
            backend: "bk_http",
            timers: Timers {
                request: ms(0),
                queue: ms(0),
                connect: ms(0),
                response: ms(0),
                total: ms(0),
            },
            status: Some(200),
            bytes: 54,
            term: TermState::http(HttpEnd::Response(200)),
            request: Some(RequestLine {
                method: "GET",
                uri: &uri,
                version: "HTTP/1.1",
            }),
            ..tcp(TermState::NORMAL)
        };
        assert_eq!(
            line(LogFormat::Http, &r),
            "127.0.0.1:52270 [27/Nov/2026:11:15:02.123] ft_http bk_http/s1 0/0/0/0/0 200 54 - - ---- 1/1/0/0/0 0/0 \"GET /ok HTTP/1.1\""
        );
        let refused = Record {
            timers: Timers {
                connect: None,
                response: None,
                total: ms(503),
                ..r.timers
            },
            status: Some(503),
            bytes: 217,
            term: TermState::new(Cause::ServerAbort, Phase::Connect),
            counts: Counts {
                retries: 1,
                ..r.counts
            },
            ..r
        };
        assert_eq!(
            line(LogFormat::Http, &refused),
            "127.0.0.1:52270 [27/Nov/2026:11:15:02.123] ft_http bk_http/s1 0/0/-1/-1/503 503 217 - - SC-- 1/1/0/0/1 0/0 \"GET /ok HTTP/1.1\""
        );
        let timeout = Record {
            status: Some(504),
            term: TermState::http(HttpEnd::ServerError(504)),
            ..r
        };
        assert!(line(LogFormat::Http, &timeout).contains(" 504 54 - - sH-- "));
        let bad = Record {
            backend: "ft_http",
            server: None,
            timers: Timers {
                total: ms(0),
                ..Timers::default()
            },
            status: Some(400),
            bytes: 0,
            term: TermState::BAD_REQUEST,
            request: None,
            ..r
        };
        assert_eq!(
            line(LogFormat::Http, &bad),
            "127.0.0.1:52270 [27/Nov/2026:11:15:02.123] ft_http ft_http/<NOSRV> -1/-1/-1/-1/0 400 0 - - PR-- 1/1/0/0/0 0/0 \"<BADREQ>\""
        );
        // No response at all: `-1`.
        let abort = Record {
            status: None,
            term: TermState::http(HttpEnd::ClientAbort(None)),
            ..r
        };
        assert!(line(LogFormat::Http, &abort).contains(" 0/0/0/0/0 -1 54 - - CH-- "));
    }

    #[test]
    fn request_lines_escape_quotes_and_controls() {
        let uri = "/a\"b#c\u{7f}";
        let r = Record {
            request: Some(RequestLine {
                method: "GET",
                uri: &uri,
                version: "HTTP/1.0",
            }),
            ..tcp(TermState::NORMAL)
        };
        assert!(line(LogFormat::Http, &r).ends_with(" \"GET /a#22b#23c#7F HTTP/1.0\""));
    }

    /// Checked against HAProxy 2.6.12 (`option tcplog`): a close by
    /// either side `--`; a reset by the client `CD`, by the server `SD`;
    /// `timeout client` `cD`, `timeout server` `sD` (with a shorter
    /// `timeout server`); `disable server` or `set server ... health down`
    /// with `on-marked-down shutdown-sessions` `D-`; `shutdown sessions
    /// server` and `hard-stop-after` `K-`; `timeout connect` `sC`;
    /// refused connects `SC`; no server `SC`; `timeout queue` `sQ`.
    #[test]
    fn termination_states() {
        let cases = [
            (TermState::forwarding(Ended::Closed), "--"),
            (TermState::forwarding(Ended::ClientError), "CD"),
            (TermState::forwarding(Ended::ServerError), "SD"),
            (TermState::forwarding(Ended::ClientTimeout), "cD"),
            (TermState::forwarding(Ended::ServerTimeout), "sD"),
            (TermState::forwarding(Ended::MarkedDown), "D-"),
            (TermState::forwarding(Ended::Stopping), "K-"),
            (TermState::connect_failed(true), "sC"),
            (TermState::connect_failed(false), "SC"),
            (TermState::no_server(false), "SC"),
            (TermState::no_server(true), "SQ"),
            (TermState::QUEUE_TIMEOUT, "sQ"),
            (TermState::BAD_REQUEST, "PR"),
            (TermState::REQUEST_TIMEOUT, "cR"),
            (TermState::new(Cause::Normal, Phase::Data), "--"),
            (TermState::http(HttpEnd::Response(200)), "--"),
            (TermState::http(HttpEnd::ServerAbort(200)), "SD"),
            (TermState::http(HttpEnd::ServerError(502)), "SH"),
            (TermState::http(HttpEnd::ServerError(504)), "sH"),
            (TermState::http(HttpEnd::ClientAbort(None)), "CH"),
            (TermState::http(HttpEnd::ClientAbort(Some(200))), "CD"),
            (TermState::http(HttpEnd::ServerTimeout(101)), "sD"),
        ];
        for (state, want) in cases {
            assert_eq!(state.to_string(), want, "{state:?}");
        }
    }

    /// The lines HAProxy 2.6.12 printed for connections refused for their
    /// PROXY header on a frontend's first bind line (`accept-proxy`).
    #[test]
    fn connection_error_lines() {
        let client = "127.0.0.1:60406".parse().unwrap();
        let cases = [
            (
                ConnError::NotHeader,
                "Received something which does not look like a PROXY protocol header",
            ),
            (
                ConnError::BadHeader,
                "Received an invalid PROXY protocol header",
            ),
            (
                ConnError::Empty,
                "Connection closed while waiting for PROXY protocol header",
            ),
            (
                ConnError::Truncated,
                "Truncated PROXY protocol header received",
            ),
            (
                ConnError::Timeout,
                "Timeout while waiting for PROXY protocol header",
            ),
        ];
        for (e, text) in cases {
            let mut s = String::new();
            write_conn_error(&mut s, client, at(), "fe_p", 1, e);
            assert_eq!(
                s,
                format!("127.0.0.1:60406 [27/Nov/2026:11:15:02.123] fe_p/1: {text}")
            );
        }
    }

    /// HAProxy 2.6.12 sent `<134>Nov 27 11:17:11 haproxy[482]: ` before
    /// the line over UDP with `log 127.0.0.1:21514 local0`; the day is
    /// padded with a space (RFC 3164).
    #[test]
    fn syslog_header() {
        let mut s = String::new();
        write_syslog_header(&mut s, 16, at(), "haproxy", 482);
        assert_eq!(s, "<134>Nov 27 11:15:02 haproxy[482]: ");
        s.clear();
        write_syslog_header(
            &mut s,
            1,
            UNIX_EPOCH + Duration::from_secs(86_400 * 3),
            "t",
            1,
        );
        assert_eq!(s, "<14>Jan  4 00:00:00 t[1]: ");
    }
}
