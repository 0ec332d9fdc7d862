//! HAProxy's `option httpchk` with `http-check send` and `http-check
//! expect` (HAProxy 2.6 `src/tcpcheck.c`: `tcpcheck_eval_send` builds the
//! request, `tcpcheck_eval_expect_http` judges the response), as a pure
//! engine next to [`crate::tcpcheck`], whose [`Next`], [`Verdict`],
//! [`Rstring`] and buffer size it shares.
//!
//! ```text
//!                 ┌──────────── HttpCheckRun ─────────────┐
//!  received(b) ──>│ response buffer (<= CHECK_BUFSIZE,    │──> poll(): Next::Recv(room)
//!  closed()    ──>│ head and body), eof / error flags     │           Next::Done(Verdict)
//!                 └───────────────────────────────────────┘
//! ```
//!
//! The IO layer (`runtime/checks.rs`) connects, sends the PROXY header if
//! any and [`HttpCheck::request`], then reads as [`HttpCheckRun::poll`]
//! says; the check timeout is its business (`L7TOUT`).
//!
//! How the response is judged (checked against HAProxy 2.6.12):
//!
//! - The status line decides as soon as the head is in: `expect_status`
//!   (a list of codes and ranges) and `rstatus` (a regex on the three
//!   digits) fail with `L7STS`, described by the reason phrase. Without any
//!   expectation, 2xx and 3xx pass (`option httpchk`'s implicit rule); with
//!   only a body expectation the status is not looked at.
//! - `string` and `rstring` look at the body (de-chunked, up to
//!   `Content-Length`), and wait for more while it does not match and more
//!   can come: the body is complete (its length, its last chunk, the server
//!   closed) or the buffer is full. So a body arriving in pieces is judged
//!   whole, and a server that never finishes a body that does not match ends
//!   in `L7TOUT`. A mismatch (or, with `!`, a match) fails with `L7RSP`
//!   "HTTP content check did not match" ("HTTP check matched unwanted
//!   content"); a complete empty body with "HTTP content check could not
//!   find a response body". A `!` rule passes only on a complete body.
//! - The buffer holds [`CHECK_BUFSIZE`] bytes of response, head included
//!   (HAProxy's `tune.bufsize`): a pattern beyond that is not seen. HAProxy
//!   stores the response in its HTX form, whose framing takes about 100
//!   more bytes, so a pattern in the last ~100 bytes of that window passes
//!   here and not in HAProxy.
//! - A response that is not HTTP/1.x, or a connection closed before the
//!   head is complete, is `L7RSP` with no description.

use crate::health::StatusMatch;
use crate::tcpcheck::{Next, Rstring, Verdict, CHECK_BUFSIZE};

/// `http-check send`: the request of an HTTP check. Defaults are `option
/// httpchk`'s: `OPTIONS / HTTP/1.0`, no header, no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `meth`.
    pub method: String,
    /// `uri`.
    pub path: String,
    /// `ver`: `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// `hdr <name> <value>`, in order.
    pub headers: Vec<(String, String)>,
    /// `body` (empty: none).
    pub body: Vec<u8>,
}

impl Default for HttpRequest {
    fn default() -> Self {
        HttpRequest {
            method: "OPTIONS".into(),
            path: "/".into(),
            version: "HTTP/1.0".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

/// What an `http-check expect` beyond the status list looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpMatch {
    /// `rstatus <regex>`: on the status code as text (`"503"`).
    Rstatus(Rstring),
    /// `string <s>`: the body contains these bytes.
    String(Vec<u8>),
    /// `rstring <regex>`: the body matches.
    Rstring(Rstring),
}

/// `http-check expect [!] rstatus|string|rstring <pattern>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExpect {
    /// What to look for.
    pub what: HttpMatch,
    /// `!`: the check passes when the pattern is *not* found.
    pub negate: bool,
}

/// An HTTP check: its request and its expectations, evaluated in order (as
/// HAProxy's `http-check expect` rules): `expect_status`, then `expect`.
/// With neither, 2xx and 3xx pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpCheck {
    /// What is sent.
    pub request: HttpRequest,
    /// `http-check expect status <codes>`.
    pub expect_status: Option<StatusMatch>,
    /// `http-check expect [!] rstatus|string|rstring <pattern>`.
    pub expect: Option<HttpExpect>,
}

impl HttpCheck {
    /// The request bytes, as HAProxy 2.6.12 writes them: the request line,
    /// the configured headers, `Content-Length` when there is a body and,
    /// for HTTP/1.1, `Connection: close` unless a `Connection` header was
    /// configured (HTTP/1.0 closes anyway).
    pub fn request(&self) -> Vec<u8> {
        let r = &self.request;
        let mut out = format!("{} {} {}\r\n", r.method, r.path, r.version);
        for (name, value) in &r.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if !r.body.is_empty() {
            out.push_str(&format!("Content-Length: {}\r\n", r.body.len()));
        }
        let has_connection = r
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("connection"));
        if r.version == "HTTP/1.1" && !has_connection {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&r.body);
        out
    }
}

/// One run of an HTTP check on one connection, once the request is sent.
#[derive(Debug)]
pub struct HttpCheckRun<'a> {
    check: &'a HttpCheck,
    buf: Vec<u8>,
    /// The server closed or a read failed: nothing more will come.
    done: bool,
}

/// The parsed response head.
struct Head<'b> {
    status: u16,
    code: &'b [u8],
    reason: String,
    /// Where the body starts in the buffer.
    body_at: usize,
    content_length: Option<usize>,
    chunked: bool,
}

impl<'a> HttpCheckRun<'a> {
    /// Starts reading the response to `check`'s request.
    pub fn new(check: &'a HttpCheck) -> Self {
        HttpCheckRun {
            check,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Data read from the server (beyond the room asked for is dropped).
    pub fn received(&mut self, data: &[u8]) {
        let room = CHECK_BUFSIZE - self.buf.len();
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The server closed its side, or a read failed.
    pub fn closed(&mut self) {
        self.done = true;
    }

    /// The next thing to do: read more, or the verdict.
    pub fn poll(&self) -> Next<'static> {
        let last_read = self.done || self.buf.len() == CHECK_BUFSIZE;
        let more = || Next::Recv(CHECK_BUFSIZE - self.buf.len());
        let head = match parse_head(&self.buf) {
            Err(()) => return Next::Done(fail("L7RSP", String::new())),
            Ok(None) if last_read => return Next::Done(fail("L7RSP", String::new())),
            Ok(None) => return more(),
            Ok(Some(h)) => h,
        };
        let status_fails = match (&self.check.expect_status, &self.check.expect) {
            (Some(m), _) => !m.matches(head.status),
            (None, None) => !StatusMatch::default().matches(head.status),
            (None, Some(_)) => false,
        };
        if status_fails {
            return Next::Done(fail("L7STS", head.reason));
        }
        let Some(expect) = &self.check.expect else {
            return Next::Done(pass());
        };
        let pattern = match &expect.what {
            HttpMatch::Rstatus(r) => {
                return Next::Done(if r.is_match(head.code) != expect.negate {
                    pass()
                } else {
                    fail("L7STS", head.reason)
                });
            }
            HttpMatch::String(p) => Some(p.as_slice()),
            HttpMatch::Rstring(_) => None,
        };
        let bodyless = self.check.request.method == "HEAD"
            || head.status < 200
            || head.status == 204
            || head.status == 304;
        let (body, complete) = if bodyless {
            (Vec::new(), true)
        } else {
            body(&self.buf[head.body_at..], &head)
        };
        let last_read = last_read || complete;
        if body.is_empty() {
            return if last_read {
                Next::Done(fail(
                    "L7RSP",
                    "HTTP content check could not find a response body".into(),
                ))
            } else {
                more()
            };
        }
        if !last_read && pattern.is_some_and(|p| body.len() < p.len()) {
            return more();
        }
        let matched = match &expect.what {
            HttpMatch::String(p) => crate::tcpcheck::find(&body, p),
            HttpMatch::Rstring(r) | HttpMatch::Rstatus(r) => r.is_match(&body),
        };
        if !matched && !last_read {
            return more();
        }
        Next::Done(match (matched, expect.negate) {
            (true, false) | (false, true) => pass(),
            (false, false) => fail("L7RSP", "HTTP content check did not match".into()),
            (true, true) => fail("L7RSP", "HTTP check matched unwanted content".into()),
        })
    }
}

fn pass() -> Verdict {
    Verdict {
        ok: true,
        status: "L7OK",
        info: String::new(),
    }
}

fn fail(status: &'static str, info: String) -> Verdict {
    Verdict {
        ok: false,
        status,
        info,
    }
}

/// The response head once complete (`Ok(None)` before); `Err` when the
/// status line is complete but not HTTP/1.x's.
fn parse_head(buf: &[u8]) -> Result<Option<Head<'_>>, ()> {
    let Some(line_end) = buf.iter().position(|b| *b == b'\n') else {
        return Ok(None);
    };
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    let rest = line.strip_prefix(b"HTTP/1.").ok_or(())?;
    let (code, reason) = match rest.get(1..) {
        Some([b' ', c @ ..]) if c.len() >= 3 && c[..3].iter().all(u8::is_ascii_digit) => {
            if c.len() > 3 && c[3] != b' ' {
                return Err(());
            }
            (&c[..3], c.get(4..).unwrap_or_default())
        }
        _ => return Err(()),
    };
    let status = std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or(())?;
    let mut content_length = None;
    let mut chunked = false;
    let mut at = line_end + 1;
    loop {
        let Some(n) = buf[at..].iter().position(|b| *b == b'\n') else {
            return Ok(None);
        };
        let header = &buf[at..at + n];
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        at += n + 1;
        if header.is_empty() {
            break;
        }
        let Some(colon) = header.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&header[..colon], header[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value.to_ascii_lowercase().ends_with(b"chunked");
        }
    }
    Ok(Some(Head {
        status,
        code,
        reason: String::from_utf8_lossy(reason).into_owned(),
        body_at: at,
        content_length,
        chunked,
    }))
}

/// The body received so far and whether it is complete: de-chunked (up to
/// the last chunk), else up to `Content-Length`, else all of it (complete
/// only when the server closes).
fn body(raw: &[u8], head: &Head<'_>) -> (Vec<u8>, bool) {
    if head.chunked {
        return dechunk(raw);
    }
    match head.content_length {
        Some(n) => (raw[..raw.len().min(n)].to_vec(), raw.len() >= n),
        None => (raw.to_vec(), false),
    }
}

/// Chunked transfer coding: the data so far, and whether the last chunk
/// arrived.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(n) = raw.iter().position(|b| *b == b'\n') else {
            return (out, false);
        };
        let line = &raw[..n];
        let size = line.split(|b| *b == b';').next().unwrap_or_default();
        let Some(size) = std::str::from_utf8(size)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
        else {
            // Not chunked after all: judge what came.
            return (out, true);
        };
        if size == 0 {
            return (out, true);
        }
        raw = &raw[n + 1..];
        let take = raw.len().min(size);
        out.extend_from_slice(&raw[..take]);
        if take < size {
            return (out, false);
        }
        raw = &raw[size..];
        raw = raw.strip_prefix(b"\r").unwrap_or(raw);
        raw = raw.strip_prefix(b"\n").unwrap_or(raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect: Option<(&str, bool)>, kind: &str) -> HttpCheck {
        let expect = expect.map(|(p, negate)| HttpExpect {
            what: match kind {
                "string" => HttpMatch::String(p.as_bytes().to_vec()),
                "rstring" => HttpMatch::Rstring(Rstring::new(p).unwrap()),
                _ => HttpMatch::Rstatus(Rstring::new(p).unwrap()),
            },
            negate,
        });
        HttpCheck {
            expect,
            ..HttpCheck::default()
        }
    }

    /// Feeds `pieces` (`None`: the server closes) and returns the verdict,
    /// or `None` when the run still waits for data.
    fn run(c: &HttpCheck, pieces: &[Option<&[u8]>]) -> Option<Verdict> {
        let mut r = HttpCheckRun::new(c);
        for p in pieces {
            if let Next::Done(v) = r.poll() {
                return Some(v);
            }
            match p {
                Some(b) => r.received(b),
                None => r.closed(),
            }
        }
        match r.poll() {
            Next::Done(v) => Some(v),
            Next::Recv(_) => None,
            Next::Send(_) => unreachable!(),
        }
    }

    fn verdict(v: Option<Verdict>) -> (bool, &'static str, String) {
        let v = v.expect("a verdict");
        (v.ok, v.status, v.info)
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nhello OK world";
    const E500: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nOK";

    #[test]
    fn requests_are_written_as_haproxy_writes_them() {
        let mut c = HttpCheck::default();
        assert_eq!(c.request(), b"OPTIONS / HTTP/1.0\r\n\r\n");
        c.request = HttpRequest {
            method: "GET".into(),
            path: "/h".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("Host".into(), "example.com".into())],
            body: b"hi".to_vec(),
        };
        assert_eq!(
            c.request(),
            b"GET /h HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
        c.request
            .headers
            .push(("connection".into(), "keep-alive".into()));
        c.request.body.clear();
        c.request.version = "HTTP/1.1".into();
        assert_eq!(
            c.request(),
            b"GET /h HTTP/1.1\r\nHost: example.com\r\nconnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn statuses_fail_with_l7sts_and_the_reason_phrase() {
        let default = HttpCheck::default();
        assert_eq!(
            verdict(run(&default, &[Some(OK)])),
            (true, "L7OK", "".into())
        );
        assert_eq!(
            verdict(run(&default, &[Some(E500)])),
            (false, "L7STS", "Internal Server Error".into())
        );
        // Decided on the head, without waiting for the body.
        let head_only = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc";
        assert!(run(&default, &[Some(head_only)]).unwrap().ok);
        let no_reason = HttpCheck {
            expect_status: Some(StatusMatch::code(201)),
            ..HttpCheck::default()
        };
        assert_eq!(
            verdict(run(&no_reason, &[Some(b"HTTP/1.1 200\r\n\r\n")])),
            (false, "L7STS", "".into())
        );
        // rstatus: a regex on the code, `!` negates.
        assert!(
            run(&check(Some(("^2", false)), "rstatus"), &[Some(OK)])
                .unwrap()
                .ok
        );
        assert_eq!(
            verdict(run(&check(Some(("^2", false)), "rstatus"), &[Some(E500)])),
            (false, "L7STS", "Internal Server Error".into())
        );
        assert!(
            !run(&check(Some(("^5", true)), "rstatus"), &[Some(E500)])
                .unwrap()
                .ok
        );
        assert!(
            run(&check(Some(("^5", true)), "rstatus"), &[Some(OK)])
                .unwrap()
                .ok
        );
    }

    #[test]
    fn a_body_rule_alone_ignores_the_status_and_with_expect_status_both_apply() {
        let string_ok = check(Some(("OK", false)), "string");
        assert!(
            run(&string_ok, &[Some(E500)]).unwrap().ok,
            "HAProxy: 503 + OK passes"
        );
        let both = HttpCheck {
            expect_status: Some(StatusMatch::code(200)),
            ..string_ok
        };
        assert_eq!(verdict(run(&both, &[Some(E500)])).1, "L7STS");
        assert!(run(&both, &[Some(OK)]).unwrap().ok);
    }

    #[test]
    fn body_matches_mismatches_and_negations_have_haproxys_descriptions() {
        let miss = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nno match here";
        assert_eq!(
            verdict(run(&check(Some(("OK", false)), "string"), &[Some(miss)])),
            (false, "L7RSP", "HTTP content check did not match".into())
        );
        assert_eq!(
            verdict(run(&check(Some(("OK", true)), "string"), &[Some(OK)])),
            (false, "L7RSP", "HTTP check matched unwanted content".into())
        );
        assert!(
            run(&check(Some(("ERR", true)), "string"), &[Some(OK)])
                .unwrap()
                .ok
        );
        // rstring: anchored at the start of the body, not of the response.
        assert!(
            run(&check(Some(("O[K] w", false)), "rstring"), &[Some(OK)])
                .unwrap()
                .ok
        );
        assert_eq!(
            verdict(run(&check(Some(("^OK", false)), "rstring"), &[Some(OK)])).2,
            "HTTP content check did not match"
        );
        assert_eq!(
            verdict(run(
                &check(Some(("E.R", true)), "rstring"),
                &[Some(b"HTTP/1.0 200 OK\r\n\r\nERROR"), None]
            ))
            .2,
            "HTTP check matched unwanted content"
        );
        let empty = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            verdict(run(&check(Some(("OK", false)), "string"), &[Some(empty)])),
            (
                false,
                "L7RSP",
                "HTTP content check could not find a response body".into()
            )
        );
    }

    #[test]
    fn a_body_in_pieces_is_awaited_until_complete() {
        let c = check(Some(("OK", false)), "string");
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 22\r\n\r\nfirst part ... ";
        assert!(run(&c, &[Some(head)]).is_none(), "no match yet: waits");
        assert!(run(&c, &[Some(head), Some(b"then OK")]).unwrap().ok);
        // Without a length, until the server closes.
        let c10 = b"HTTP/1.0 200 OK\r\n\r\nfirst part ... ";
        assert!(run(&c, &[Some(c10)]).is_none());
        assert!(run(&c, &[Some(c10), Some(b"then OK"), None]).unwrap().ok);
        assert!(!run(&c, &[Some(c10), None]).unwrap().ok);
        // A negated rule passes only on a complete body.
        let neg = check(Some(("ERR", true)), "string");
        assert!(run(&neg, &[Some(c10)]).is_none());
        assert!(run(&neg, &[Some(c10), None]).unwrap().ok);
        // The head itself in pieces.
        assert!(
            run(
                &c,
                &[
                    Some(b"HTTP/1.1 200 OK\r\nContent-"),
                    Some(b"Length: 2\r\n\r\nOK")
                ]
            )
            .unwrap()
            .ok
        );
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let c = check(Some(("lo OK", false)), "string");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n OK\r\n0\r\n\r\n";
        assert!(run(&c, &[Some(r)]).unwrap().ok);
        let raw = check(Some(("3\r\n", false)), "string");
        assert_eq!(verdict(run(&raw, &[Some(r)])).1, "L7RSP");
        // A chunk cut short waits for the rest.
        assert!(run(&c, &[Some(&r[..50])]).is_none());
    }

    #[test]
    fn only_the_first_bufsize_bytes_are_looked_at() {
        let c = check(Some(("NEEDLE", false)), "string");
        let response = |at: usize| {
            let mut body = vec![b'x'; 20_000];
            body[at..at + 6].copy_from_slice(b"NEEDLE");
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(&body);
            r
        };
        // 42 bytes of head: the body's first 16342 bytes fit.
        let near = response(16_000);
        assert!(run(&c, &[Some(&near)]).unwrap().ok);
        let far = response(16_340);
        assert_eq!(
            verdict(run(&c, &[Some(&far[..8000]), Some(&far[8000..])])).2,
            "HTTP content check did not match",
            "a full buffer is conclusive"
        );
    }

    #[test]
    fn bodyless_responses_and_garbage() {
        let head = HttpCheck {
            request: HttpRequest {
                method: "HEAD".into(),
                ..HttpRequest::default()
            },
            ..check(Some(("x", false)), "string")
        };
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(
            verdict(run(&head, &[Some(r)])).2,
            "HTTP content check could not find a response body"
        );
        let d = HttpCheck::default();
        assert_eq!(
            verdict(run(&d, &[Some(b"hello there\r\n")])),
            (false, "L7RSP", "".into())
        );
        assert_eq!(verdict(run(&d, &[Some(b"HTTP/2 200\r\n")])).1, "L7RSP");
        assert_eq!(verdict(run(&d, &[Some(b"HTTP/1.1 20\r\n")])).1, "L7RSP");
        assert_eq!(
            verdict(run(&d, &[Some(b"HTTP/1.1 200 OK\r\n"), None])).1,
            "L7RSP"
        );
        assert_eq!(verdict(run(&d, &[None])), (false, "L7RSP", "".into()));
        assert!(run(&d, &[Some(b"HTTP/1.0 204\r\n\r\n")]).unwrap().ok);
    }
}
