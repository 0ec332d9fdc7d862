//! Access logs, the IO half ([`crate::log`] formats): a [`Trace`] collects
//! a session's or request's clock readings and outcome as it goes (only
//! when its frontend logs), and the [`Logger`] sends its line without
//! ever waiting: a non-blocking UDP `send` (syslog), or a bounded channel to
//! one writer thread (stdout, stderr). A line that cannot go at once is
//! dropped and counted, as HAProxy counts its dropped logs.

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

use hyper::{Method, Uri, Version};

use super::{Core, Cut};
use crate::backend::{Retry, Ticket};
use crate::balance::ServerId;
use crate::config::FrontendConfig;
use crate::log::{
    write_conn_error, write_line, write_syslog_header, ConnError, Counts, Ended, LogFormat,
    LogTarget, Record, RequestLine, Target, TermState, Timers,
};

/// Lines waiting for the stdout/stderr writer; more are dropped.
const WRITER_QUEUE: usize = 4096;

thread_local! {
    /// The line being built (reused: no allocation per UDP line).
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

enum Out {
    /// Connected and non-blocking.
    Udp(UdpSocket),
    /// To the writer thread.
    Writer(SyncSender<String>),
}

/// Sends access log lines to `global.log`.
pub(super) struct Logger {
    out: Out,
    facility: u8,
    tag: String,
    pid: u32,
    dropped: AtomicU64,
}

impl Logger {
    /// Opens the target: a UDP socket, or the writer thread.
    pub(super) fn new(t: &LogTarget) -> std::io::Result<Logger> {
        let out = match t.target {
            Target::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("an address")
                } else {
                    "[::]:0".parse().expect("an address")
                };
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Out::Udp(s)
            }
            Target::Stdout | Target::Stderr => {
                let (tx, rx) = sync_channel::<String>(WRITER_QUEUE);
                let stderr = t.target == Target::Stderr;
                // Ends when the proxy (every sender) is gone.
                std::thread::Builder::new()
                    .name("halyard-log".into())
                    .spawn(move || {
                        for line in rx {
                            let _ = if stderr {
                                std::io::stderr().lock().write_all(line.as_bytes())
                            } else {
                                std::io::stdout().lock().write_all(line.as_bytes())
                            };
                        }
                    })?;
                Out::Writer(tx)
            }
        };
        Ok(Logger {
            out,
            facility: t.facility,
            tag: t.tag.clone(),
            pid: std::process::id(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Lines dropped so far (the socket or the writer could not take them).
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Formats and sends one line; never waits.
    fn send(&self, format: LogFormat, r: &Record<'_>) {
        self.send_with(|line| write_line(line, format, r));
    }

    /// Logs a connection of `fe`'s `listener`-th bind address (from 1)
    /// closed for its PROXY header, accepted at `at` from `client`
    /// (HAProxy's `sess_log_embryonic` line).
    pub(super) fn conn_error(
        &self,
        client: SocketAddr,
        at: SystemTime,
        fe: &str,
        listener: usize,
        e: ConnError,
    ) {
        self.send_with(|line| write_conn_error(line, client, at, fe, listener, e));
    }

    /// Sends the line `body` writes; never waits.
    fn send_with(&self, body: impl FnOnce(&mut String)) {
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            let sent = match &self.out {
                Out::Udp(s) => {
                    write_syslog_header(
                        &mut line,
                        self.facility,
                        SystemTime::now(),
                        &self.tag,
                        self.pid,
                    );
                    body(&mut line);
                    line.push('\n');
                    s.send(line.as_bytes()).is_ok()
                }
                Out::Writer(tx) => {
                    body(&mut line);
                    line.push('\n');
                    !matches!(
                        tx.try_send(line.clone()),
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
                    )
                }
            };
            if !sent {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// How forwarding ended, for the termination state.
pub(super) fn ended(r: &Result<(), Cut>) -> Ended {
    match r {
        Ok(()) => Ended::Closed,
        Err(Cut::Client(_)) => Ended::ClientError,
        Err(Cut::Server(_)) => Ended::ServerError,
        Err(Cut::ClientTimeout) => Ended::ClientTimeout,
        Err(Cut::ServerTimeout) => Ended::ServerTimeout,
        Err(Cut::MarkedDown) => Ended::MarkedDown,
        Err(Cut::Stopping) => Ended::Stopping,
    }
}

/// What a line needs from the session or request, collected as it goes.
pub(super) struct Trace {
    date: SystemTime,
    start: Instant,
    /// `%ci:%cp`: the connection's peer, or its PROXY header's source.
    pub(super) client: SocketAddr,
    server: Option<ServerId>,
    queue: Option<Duration>,
    connect_start: Option<Instant>,
    connect: Option<Duration>,
    sent: Option<Instant>,
    response: Option<Duration>,
    retries: u32,
    redispatched: bool,
    queue_pos: (u32, u32),
    /// Set when known; an HTTP request's otherwise follows its `HttpEnd`.
    pub(super) term: Option<TermState>,
    /// HTTP: the status the client got.
    pub(super) status: Option<u16>,
    /// HTTP: the response head's bytes (the body's are counted apart).
    pub(super) head: u64,
    request: Option<(Method, Uri, Version)>,
}

impl Trace {
    /// Starts now, for a client at `client`.
    pub(super) fn new(client: SocketAddr) -> Trace {
        Trace {
            date: SystemTime::now(),
            start: Instant::now(),
            client,
            server: None,
            queue: None,
            connect_start: None,
            connect: None,
            sent: None,
            response: None,
            retries: 0,
            redispatched: false,
            queue_pos: (0, 0),
            term: None,
            status: None,
            head: 0,
            request: None,
        }
    }

    /// Starts an HTTP request's trace (its request line as received).
    pub(super) fn http<B>(client: SocketAddr, req: &hyper::Request<B>) -> Box<Trace> {
        let mut t = Trace::new(client);
        t.request = Some((req.method().clone(), req.uri().clone(), req.version()));
        Box::new(t)
    }

    /// Logs the connection as closed for its PROXY header (`e`), on
    /// `fe`'s `listener`-th bind address (from 1).
    pub(super) fn refused(&self, logger: &Logger, fe: &str, listener: usize, e: ConnError) {
        logger.conn_error(self.client, self.date, fe, listener, e);
    }

    /// Queued as `ticket` (under the backend lock).
    pub(super) fn queued(&mut self, b: &crate::backend::Backend, ticket: Ticket) {
        self.queue_pos = b.queue_position(ticket);
    }

    /// Got `server`, or none: `%Tw` is the time until now, -1 when no
    /// server was found without waiting (as HAProxy 2.6.12 logs it).
    pub(super) fn assigned(&mut self, server: Option<ServerId>) {
        self.server = server;
        let waited = server.is_some() || self.queue_pos != (0, 0);
        self.queue = waited.then(|| self.start.elapsed());
    }

    /// A connect attempt starts.
    pub(super) fn connecting(&mut self) {
        self.connect_start = Some(Instant::now());
    }

    /// Connected (`%Tc`); `reused`: an idle connection, 0 ms. Failed
    /// attempts before no longer make the state.
    pub(super) fn connected(&mut self, reused: bool) {
        self.term = None;
        self.connect = Some(match (reused, self.connect_start) {
            (false, Some(t)) => t.elapsed(),
            _ => Duration::ZERO,
        });
    }

    /// A connect failed and `retry` says what next.
    pub(super) fn retry(&mut self, retry: &Retry) {
        match retry {
            Retry::Same(a) => self.server = Some(a.server),
            Retry::Redispatch(a) => {
                self.server = Some(a.server);
                self.redispatched = true;
            }
            Retry::GiveUp => return,
        }
        self.retries += 1;
    }

    /// A connect failed: the state if it was the last.
    pub(super) fn connect_failed(&mut self, timed_out: bool) {
        self.term = Some(TermState::connect_failed(timed_out));
    }

    /// The request goes to the server now.
    pub(super) fn sending(&mut self) {
        self.sent = Some(Instant::now());
    }

    /// The response head came (`%Tr`), with `status` and its head's size.
    pub(super) fn responded(&mut self, status: u16, headers: &hyper::HeaderMap) {
        self.response = self.sent.map(|t| t.elapsed());
        self.answered(status, headers);
    }

    /// The client gets `status` with `headers` (the server's or the
    /// proxy's own): `%ST`, and the head's part of `%B` (status line and
    /// headers as forwarded, before the ones hyper adds).
    pub(super) fn answered(&mut self, status: u16, headers: &hyper::HeaderMap) {
        self.status = Some(status);
        // "HTTP/1.1 200 OK\r\n" for the usual reason phrases, "\r\n" at the end.
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .map_or(0, str::len);
        let fields: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        self.head = (15 + reason + fields + 2) as u64;
    }

    /// Counts under the lock the session's end takes anyway: `%ac` and
    /// `%fc` with this connection, `%bc` and `%sc` without it (released),
    /// and the server's name.
    pub(super) fn counts(&self, core: &Core, fe: &str, backend: &str) -> (Counts, Option<String>) {
        let process = core
            .frontends
            .values()
            .map(|f| u64::from(f.stats.cur_sessions))
            .sum();
        let frontend = core
            .frontends
            .get(fe)
            .map_or(0, |f| f.stats.cur_sessions.into());
        let b = core.backends.get(backend).map(|b| &b.core);
        let (bc, sc) = b.map_or((0, 0), |b| b.current_sessions(self.server));
        let name = self
            .server
            .and_then(|id| b?.server_spec(id))
            .map(|s| s.name.clone());
        let counts = Counts {
            process,
            frontend,
            backend: bc.into(),
            server: sc.into(),
            retries: self.retries,
            redispatched: self.redispatched,
        };
        (counts, name)
    }

    /// Sends the line: `bytes` to the client, `term` unless set.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        &self,
        logger: &Logger,
        format: LogFormat,
        fe: &FrontendConfig,
        backend: &str,
        (counts, server): (Counts, Option<String>),
        bytes: u64,
        term: TermState,
    ) {
        let total = Some(self.start.elapsed());
        let request = self.request.as_ref().map(|(m, u, v)| RequestLine {
            method: m.as_str(),
            uri: u,
            version: version(*v),
        });
        let r = Record {
            client: self.client,
            date: self.date,
            frontend: &fe.name,
            backend,
            server: server.as_deref(),
            timers: Timers {
                request: self.request.as_ref().map(|_| Duration::ZERO),
                queue: self.queue,
                connect: self.connect,
                response: self.response,
                total,
            },
            status: self.status,
            bytes,
            term: self.term.unwrap_or(term),
            counts,
            queue: self.queue_pos,
            request,
        };
        logger.send(format, &r);
    }
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}
