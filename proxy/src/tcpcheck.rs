//! HAProxy's `option tcp-check`: a sequence of `send` and `expect` rules run
//! on the check connection (HAProxy 2.6 `src/tcpcheck.c`), as a pure engine.
//!
//! ```text
//!                 ┌──────────────── TcpCheckRun ────────────────┐
//!  received(b) ──>│ reply buffer (<= CHECK_BUFSIZE, emptied      │──> poll(): Next::Send(bytes)
//!  closed()    ──>│ before each send), eof / error flags,        │           Next::Recv(room)
//!  failed()    ──>│ current rule, head of the current expects    │           Next::Done(Verdict)
//!                 └──────────────────────────────────────────────┘
//! ```
//!
//! The IO layer (`runtime/checks.rs`) connects (HAProxy's implicit first
//! `tcp-check connect`), sends the PROXY header when the server has one,
//! then does what [`TcpCheckRun::poll`] says until it is done; the check
//! timeout is its business ([`TcpCheckRun::timeout_verdict`]).
//!
//! How an `expect` reads (`tcpcheck_main`, `tcpcheck_eval_recv`,
//! `tcpcheck_eval_expect`): the first `expect` after a `send` (or after the
//! connect) reads at least once; the reply accumulates until the rule is
//! conclusive. A rule is conclusive when the pattern matches, or when no more
//! data can come: the peer closed, the read failed, or the buffer is full
//! ([`CHECK_BUFSIZE`], HAProxy's `tune.bufsize`). Until then a `string` or
//! `binary` rule waits for at least as many bytes as its pattern and, with
//! `min_recv`, for that many bytes; a non-matching rule waits for more unless
//! `min_recv` is set (then the first evaluation with enough bytes decides).
//! Consecutive `expect` rules look at the same buffer; when one of them
//! waits, the group is evaluated again from its first rule once more data
//! came. Hence a negated rule (`! string`) without `min_recv` only passes
//! when the server closes (or fills the buffer): on a server that keeps the
//! connection open it ends in `L7TOUT`, as in HAProxy.
//!
//! Statuses (HAProxy 2.6.12, checked against a live one): all rules passed:
//! `L7OK`; a rule did not match (or matched with `!`): `L7RSP`; the server
//! closed with nothing to read: `L7RSP` ("got an empty response"); a read
//! error (reset) with nothing read: `SOCKERR`; the check timed out once
//! connected: `L7TOUT`. Connect failures (`L4CON`, `L4TOUT`) and send errors
//! (`SOCKERR`) are reported by the IO layer.

use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::syntax;
use regex_automata::Input;

/// The largest reply an `expect` looks at (HAProxy's default
/// `tune.bufsize`, 16384): a full buffer makes the rule conclusive. A `send`
/// must be smaller.
pub const CHECK_BUFSIZE: usize = 16384;

/// Largest compiled DFA for one `rstring` pattern; a pattern beyond it is
/// refused at configuration time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One `tcp-check` rule: an action and its optional `comment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheckRule {
    /// What the rule does.
    pub action: TcpCheckAction,
    /// HAProxy's `comment <msg>`: reported when the rule fails.
    pub comment: Option<String>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TcpCheckAction {
    /// `tcp-check send` / `send-binary`: these bytes (not empty, shorter
    /// than [`CHECK_BUFSIZE`]).
    Send(Vec<u8>),
    /// `tcp-check expect`.
    Expect(Expect),
}

/// `tcp-check expect [min-recv <n>] [!] <match> <pattern>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// What to look for.
    pub pattern: Pattern,
    /// `!`: the rule passes when the pattern is *not* found.
    pub negate: bool,
    /// `min-recv`: evaluate only once this many bytes arrived (or no more
    /// can come); a mismatch is then conclusive. `None` is HAProxy's -1.
    pub min_recv: Option<usize>,
}

/// The `<match> <pattern>` of an `expect` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `string`: these bytes somewhere in the reply.
    String(Vec<u8>),
    /// `binary`: these bytes (written in hex) somewhere in the reply.
    Binary(Vec<u8>),
    /// `rstring`: a regular expression found somewhere in the reply.
    Rstring(Rstring),
}

/// A compiled `rstring` pattern: a byte-oriented DFA (no Unicode classes,
/// `.` matches any byte but `\n`, `^`/`$` are the ends of the reply), built
/// with the `regex-automata` crate.
#[derive(Debug, Clone)]
pub struct Rstring {
    source: String,
    /// Boxed: a DFA is large and rules are many.
    dfa: Box<dense::DFA<Vec<u32>>>,
}

impl PartialEq for Rstring {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Rstring {}

impl Rstring {
    /// Compiles `source`; the error says what is wrong.
    pub fn new(source: &str) -> Result<Self, String> {
        let dfa = dense::Builder::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(
                dense::Config::new()
                    .dfa_size_limit(Some(REGEX_SIZE_LIMIT))
                    .determinize_size_limit(Some(REGEX_SIZE_LIMIT)),
            )
            .build(source)
            .map_err(|e| format!("`{source}` is not a usable regular expression: {e}"))?;
        Ok(Rstring {
            source: source.to_string(),
            dfa: Box::new(dfa),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern matches somewhere in `haystack`.
    pub fn is_match(&self, haystack: &[u8]) -> bool {
        let input = Input::new(haystack).earliest(true);
        // No quit bytes and no Unicode word boundaries (Unicode is off): the
        // search cannot fail.
        matches!(self.dfa.try_search_fwd(&input), Ok(Some(_)))
    }
}

/// Decodes HAProxy's hex strings (`send-binary`, `expect binary`): pairs of
/// hex digits, either case, nothing else. The error says what is wrong.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!(
            "`{text}` has an odd number of hex digits ({})",
            text.len()
        ));
    }
    let digit = |i: usize, c: u8| -> Result<u8, String> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("`{}` at position {} is not a hex digit", c as char, i + 1))
    };
    text.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, p)| Ok(digit(2 * i, p[0])? << 4 | digit(2 * i + 1, p[1])?))
        .collect()
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Passed.
    pub ok: bool,
    /// HAProxy's check status (`L7OK`, `L7RSP`, `L7TOUT`, `SOCKERR`, ...).
    pub status: &'static str,
    /// HAProxy's check description (its `last_chk`), for logs.
    pub info: String,
}

impl Verdict {
    fn fail(status: &'static str, info: String) -> Self {
        Verdict {
            ok: false,
            status,
            info,
        }
    }
}

/// What the IO layer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// Write all these bytes, then poll again (a write error is `SOCKERR`).
    Send(&'a [u8]),
    /// Read at most this many bytes and report them ([`TcpCheckRun::received`],
    /// [`TcpCheckRun::closed`] or [`TcpCheckRun::failed`]), then poll again.
    Recv(usize),
    /// The check is over.
    Done(Verdict),
}

/// One run of a rule sequence on one connection (HAProxy's `tcpcheck_main`).
#[derive(Debug)]
pub struct TcpCheckRun<'a> {
    rules: &'a [TcpCheckRule],
    /// The rule being evaluated.
    step: usize,
    /// The first of the consecutive `expect` rules `step` belongs to (HAProxy's
    /// `expect.head`): evaluation restarts there after a read.
    head: usize,
    /// The rule last handed out or evaluated (HAProxy's `current_step`),
    /// named when the check fails outside a rule's evaluation.
    current: Option<usize>,
    buf: Vec<u8>,
    must_read: bool,
    eof: bool,
    error: bool,
}

impl<'a> TcpCheckRun<'a> {
    /// Starts a run, just after the connection (and its PROXY header).
    pub fn new(rules: &'a [TcpCheckRule]) -> Self {
        TcpCheckRun {
            rules,
            step: 0,
            head: 0,
            current: None,
            buf: Vec::new(),
            must_read: true,
            eof: false,
            error: false,
        }
    }

    /// Data read from the server (beyond the room asked for is dropped).
    pub fn received(&mut self, data: &[u8]) {
        let room = CHECK_BUFSIZE - self.buf.len();
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        if !data.is_empty() {
            self.must_read = false;
        }
    }

    /// The server closed its side (a read returned 0).
    pub fn closed(&mut self) {
        self.eof = true;
    }

    /// A read failed (e.g. the server reset the connection).
    pub fn failed(&mut self) {
        self.error = true;
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Next<'a> {
        let rules = self.rules;
        loop {
            let Some(rule) = rules.get(self.step) else {
                // HAProxy: the last rule passed (expect or send): L7OK.
                return Next::Done(Verdict {
                    ok: true,
                    status: "L7OK",
                    info: "(tcp-check)".into(),
                });
            };
            match &rule.action {
                TcpCheckAction::Send(data) => {
                    // HAProxy releases the input buffer on every new send.
                    self.buf.clear();
                    self.must_read = true;
                    self.current = Some(self.step);
                    self.step += 1;
                    self.head = self.step;
                    return Next::Send(data);
                }
                TcpCheckAction::Expect(expect) => {
                    self.current = Some(self.step);
                    let last_read = self.eof || self.error;
                    if self.must_read {
                        if !last_read {
                            return Next::Recv(CHECK_BUFSIZE - self.buf.len());
                        }
                        // Nothing more will come (`tcpcheck_eval_recv`).
                        self.must_read = false;
                        if self.buf.is_empty() {
                            return Next::Done(if self.error {
                                Verdict::fail("SOCKERR", format!("read error{}", self.context()))
                            } else {
                                Verdict::fail(
                                    "L7RSP",
                                    format!(
                                        "TCPCHK got an empty response at step {}{}",
                                        self.step + 1,
                                        comment(rule, true)
                                    ),
                                )
                            });
                        }
                    }
                    match self.eval(expect, last_read || self.buf.len() == CHECK_BUFSIZE) {
                        None => {
                            // Wait for more data, then start over at the head.
                            self.step = self.head;
                            self.must_read = true;
                        }
                        Some(true) => self.step += 1,
                        Some(false) => {
                            let matched = expect.negate;
                            return Next::Done(Verdict::fail(
                                "L7RSP",
                                format!(
                                    "{}{} at step {}{}",
                                    if matched {
                                        "TCPCHK matched unwanted content"
                                    } else {
                                        "TCPCHK did not match content"
                                    },
                                    describe(&expect.pattern),
                                    self.step + 1,
                                    comment(rule, false)
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// `tcpcheck_eval_expect`: `Some(passed)` when conclusive, `None` to wait.
    fn eval(&self, expect: &Expect, last_read: bool) -> Option<bool> {
        let have = self.buf.len();
        if !last_read {
            let needed = match &expect.pattern {
                Pattern::String(p) | Pattern::Binary(p) => p.len(),
                Pattern::Rstring(_) => 0,
            };
            if have < needed || expect.min_recv.is_some_and(|m| have < m) {
                return None;
            }
        }
        let matched = match &expect.pattern {
            Pattern::String(p) | Pattern::Binary(p) => find(&self.buf, p),
            // HAProxy's `regex_exec2` on at most `size - 1` bytes.
            Pattern::Rstring(r) => r.is_match(&self.buf[..have.min(CHECK_BUFSIZE - 1)]),
        };
        if !matched && !last_read && expect.min_recv.is_none() {
            return None;
        }
        Some(matched != expect.negate)
    }

    /// The verdict when the check timed out once connected (HAProxy's
    /// `chk_report_conn_err` with `expired`: `L7TOUT`).
    pub fn timeout_verdict(&self) -> Verdict {
        Verdict::fail("L7TOUT", self.context())
    }

    /// The verdict when a write failed (`SOCKERR`: an I/O error once
    /// connected).
    pub fn send_failed_verdict(&self) -> Verdict {
        Verdict::fail("SOCKERR", format!("write error{}", self.context()))
    }

    /// ` at step N of tcp-check (expect string 'x')`, as HAProxy words it
    /// (`chk_report_conn_err`), for the current rule.
    fn context(&self) -> String {
        let Some((n, rule)) = self.current.and_then(|n| Some((n, self.rules.get(n)?))) else {
            return " at initial connection step of tcp-check".into();
        };
        let what = match &rule.action {
            TcpCheckAction::Send(_) => "send".to_string(),
            TcpCheckAction::Expect(e) => match &e.pattern {
                Pattern::String(p) => format!("expect string '{}'", String::from_utf8_lossy(p)),
                Pattern::Binary(p) => format!("expect binary '{}'", hex(p)),
                Pattern::Rstring(_) => "expect regex".to_string(),
            },
        };
        format!(
            " at step {} of tcp-check ({what}){}",
            n + 1,
            comment(rule, true)
        )
    }
}

fn comment(rule: &TcpCheckRule, quoted: bool) -> String {
    match (&rule.comment, quoted) {
        (None, _) => String::new(),
        (Some(c), true) => format!(" comment: '{c}'"),
        (Some(c), false) => format!(" comment: {c}"),
    }
}

fn describe(p: &Pattern) -> String {
    match p {
        Pattern::String(s) => format!(" '{}'", String::from_utf8_lossy(s)),
        Pattern::Binary(_) => " (binary)".into(),
        Pattern::Rstring(_) => " (regex)".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// HAProxy's `my_memmem`: `needle` somewhere in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(s: &str) -> TcpCheckRule {
        TcpCheckRule {
            action: TcpCheckAction::Send(s.as_bytes().to_vec()),
            comment: None,
        }
    }

    fn expect(pattern: Pattern, negate: bool, min_recv: Option<usize>) -> TcpCheckRule {
        TcpCheckRule {
            action: TcpCheckAction::Expect(Expect {
                pattern,
                negate,
                min_recv,
            }),
            comment: None,
        }
    }

    fn string(s: &str) -> TcpCheckRule {
        expect(Pattern::String(s.as_bytes().to_vec()), false, None)
    }

    /// The Redis master recipe of HAProxy's manual.
    fn redis() -> Vec<TcpCheckRule> {
        vec![
            send("PING\r\n"),
            string("+PONG"),
            send("info replication\r\n"),
            string("role:master"),
            send("QUIT\r\n"),
            string("+OK"),
        ]
    }

    /// Drives a run with scripted replies: each `Recv` takes the next
    /// element (`Some(bytes)`, or `None` for a close); returns what was sent
    /// and the verdict, or `None` if the run still waits when the script
    /// ends (the IO layer would then time out).
    fn drive(rules: &[TcpCheckRule], replies: &[Option<&str>]) -> (String, Option<Verdict>) {
        let mut run = TcpCheckRun::new(rules);
        let mut sent = String::new();
        let mut replies = replies.iter();
        loop {
            match run.poll() {
                Next::Send(b) => sent.push_str(std::str::from_utf8(b).unwrap()),
                Next::Recv(room) => {
                    assert!(room > 0);
                    match replies.next() {
                        None => return (sent, None),
                        Some(Some(b)) => run.received(b.as_bytes()),
                        Some(None) => run.closed(),
                    }
                }
                Next::Done(v) => return (sent, Some(v)),
            }
        }
    }

    #[test]
    fn redis_master_passes_and_replica_waits_for_the_timeout() {
        let master = [
            Some("+PONG\r\n"),
            Some("$40\r\n# Replication\r\nrole:master\r\n\r\n"),
            Some("+OK\r\n"),
        ];
        let (sent, v) = drive(&redis(), &master);
        assert_eq!(sent, "PING\r\ninfo replication\r\nQUIT\r\n");
        let v = v.unwrap();
        assert!(v.ok);
        assert_eq!(v.status, "L7OK");
        // A replica answers role:slave and keeps the connection open: the
        // rule waits for more (HAProxy shows L7TOUT for its replicas).
        let replica = [Some("+PONG\r\n"), Some("# Replication\r\nrole:slave\r\n")];
        let (_, v) = drive(&redis(), &replica);
        assert_eq!(v, None, "still waiting");
        let rules = redis();
        let mut run = TcpCheckRun::new(&rules);
        let _ = run.poll();
        let _ = run.poll();
        run.received(b"+PONG\r\n");
        let _ = run.poll();
        run.received(b"role:slave\r\n");
        assert_eq!(run.poll(), Next::Recv(CHECK_BUFSIZE - 12));
        let v = run.timeout_verdict();
        assert_eq!(v.status, "L7TOUT");
        assert_eq!(
            v.info,
            " at step 4 of tcp-check (expect string 'role:master')"
        );
    }

    #[test]
    fn a_reply_split_over_reads_accumulates() {
        let rules = [send("info\r\n"), string("role:master")];
        let (_, v) = drive(&rules, &[Some("ro"), Some("le:mas"), Some("ter\r\n")]);
        assert!(v.unwrap().ok);
        // The pattern can straddle reads anywhere, and junk before it is fine.
        let (_, v) = drive(&rules, &[Some("xxxxxxxxxxxxxxxrole:m"), Some("aster")]);
        assert!(v.unwrap().ok);
    }

    #[test]
    fn close_before_a_match_fails_with_l7rsp() {
        let rules = [send("info\r\n"), string("role:master")];
        let (_, v) = drive(&rules, &[Some("role:sl"), Some("ave\r\n"), None]);
        let v = v.unwrap();
        assert_eq!((v.ok, v.status), (false, "L7RSP"));
        assert_eq!(
            v.info,
            "TCPCHK did not match content 'role:master' at step 2"
        );
        // Shorter than the pattern: waits, then the close decides.
        let (_, v) = drive(&rules, &[Some("role"), None]);
        assert_eq!(v.unwrap().status, "L7RSP");
        // Nothing at all.
        let (_, v) = drive(&rules, &[None]);
        let v = v.unwrap();
        assert_eq!(v.status, "L7RSP");
        assert_eq!(v.info, "TCPCHK got an empty response at step 2");
    }

    #[test]
    fn a_reset_with_nothing_read_is_sockerr_with_data_it_decides() {
        let rules = [send("info\r\n"), string("role:master")];
        let mut run = TcpCheckRun::new(&rules);
        assert_eq!(run.poll(), Next::Send(b"info\r\n"));
        assert!(matches!(run.poll(), Next::Recv(_)));
        run.failed();
        let Next::Done(v) = run.poll() else { panic!() };
        assert_eq!(v.status, "SOCKERR");
        let mut run = TcpCheckRun::new(&rules);
        let _ = run.poll();
        let _ = run.poll();
        run.received(b"role:master\r\n");
        run.failed();
        let Next::Done(v) = run.poll() else { panic!() };
        assert!(v.ok);
    }

    #[test]
    fn negation_fails_on_a_match_and_passes_only_when_the_reply_is_complete() {
        let neg = expect(Pattern::String(b"role:slave".to_vec()), true, None);
        let rules = [send("info\r\n"), neg.clone()];
        let (_, v) = drive(&rules, &[Some("role:slave\r\n")]);
        let v = v.unwrap();
        assert_eq!((v.ok, v.status), (false, "L7RSP"));
        assert_eq!(
            v.info,
            "TCPCHK matched unwanted content 'role:slave' at step 2"
        );
        // No match yet: it waits (the server might still send it) ...
        let (_, v) = drive(&rules, &[Some("role:master\r\n")]);
        assert_eq!(v, None);
        // ... until the server closes.
        let (_, v) = drive(&rules, &[Some("role:master\r\n"), None]);
        assert!(v.unwrap().ok);
        // With min_recv the first evaluation is conclusive.
        let neg_min = expect(Pattern::String(b"role:slave".to_vec()), true, Some(5));
        let rules = [send("info\r\n"), neg_min];
        let (_, v) = drive(&rules, &[Some("rol"), Some("e:master\r\n")]);
        assert!(v.unwrap().ok);
    }

    #[test]
    fn min_recv_waits_for_that_many_bytes_then_decides() {
        let rules = [expect(Pattern::String(b"OK".to_vec()), false, Some(6))];
        // "OK" is there but only 4 bytes: wait.
        let (_, v) = drive(&rules, &[Some("OK\r\n")]);
        assert_eq!(v, None);
        let (_, v) = drive(&rules, &[Some("OK\r\n"), Some("ab")]);
        assert!(v.unwrap().ok);
        // Enough bytes, no match: fails at once.
        let (_, v) = drive(&rules, &[Some("NOPE\r\n")]);
        assert_eq!(v.unwrap().status, "L7RSP");
    }

    #[test]
    fn consecutive_expects_share_the_buffer_and_restart_at_the_head() {
        // A banner check in two rules: the second may need more data, and
        // the first is evaluated again over the whole reply.
        let rules = [string("+OK"), string("ready")];
        let (sent, v) = drive(&rules, &[Some("+OK POP3 "), Some("ready\r\n")]);
        assert_eq!(sent, "");
        assert!(v.unwrap().ok);
        // The restart is observable with a negated rule that passed early
        // (min_recv makes it conclusive): the data that came later for the
        // second rule makes the first one fail, as in HAProxy.
        let rules = [
            expect(Pattern::String(b"-ERR".to_vec()), true, Some(1)),
            string("ready"),
        ];
        let (_, v) = drive(&rules, &[Some("+OK "), Some("-ERR not ready")]);
        let v = v.unwrap();
        assert_eq!(v.info, "TCPCHK matched unwanted content '-ERR' at step 1");
        // A send empties the buffer: the +PONG of the first reply does not
        // count for the second expect.
        let rules = [
            send("PING\r\n"),
            string("+PONG"),
            send("PING\r\n"),
            string("+PONG"),
        ];
        let (_, v) = drive(&rules, &[Some("+PONG\r\n"), Some("-ERR\r\n"), None]);
        assert_eq!(v.unwrap().status, "L7RSP");
    }

    #[test]
    fn binary_patterns_and_sends() {
        assert_eq!(parse_hex("50494e470d0a").unwrap(), b"PING\r\n");
        assert_eq!(parse_hex("2b504F4e47").unwrap(), b"+PONG");
        assert_eq!(parse_hex("").unwrap(), b"");
        assert!(parse_hex("abc").unwrap_err().contains("odd number"));
        assert!(parse_hex("0g").unwrap_err().contains("`g` at position 2"));
        let rules = [
            TcpCheckRule {
                action: TcpCheckAction::Send(parse_hex("50494e470d0a").unwrap()),
                comment: None,
            },
            expect(Pattern::Binary(vec![0x00, 0xff, 0x2b]), false, None),
        ];
        let mut run = TcpCheckRun::new(&rules);
        assert_eq!(run.poll(), Next::Send(b"PING\r\n"));
        assert!(matches!(run.poll(), Next::Recv(_)));
        run.received(&[0x01, 0x00]);
        assert!(matches!(run.poll(), Next::Recv(_)));
        run.received(&[0xff, 0x2b, 0x00]);
        let Next::Done(v) = run.poll() else { panic!() };
        assert!(v.ok, "matched past a NUL byte");
    }

    #[test]
    fn rstring_is_an_unanchored_byte_regex() {
        let re = Rstring::new(r"HTTP/1\..\ (2..|3..)").unwrap();
        assert!(re.is_match(b"HTTP/1.1 204 No Content\r\n"));
        assert!(!re.is_match(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(Rstring::new("role:(master|slave)")
            .unwrap()
            .is_match(b"\xff\xferole:master"));
        assert!(Rstring::new("^role").unwrap().is_match(b"role:x"));
        assert!(!Rstring::new("^role").unwrap().is_match(b"x role"));
        assert!(Rstring::new("(")
            .unwrap_err()
            .contains("not a usable regular expression"));
        // A regex waits for more data while it does not match.
        let rules = [expect(
            Pattern::Rstring(Rstring::new("role:master").unwrap()),
            false,
            None,
        )];
        let (_, v) = drive(&rules, &[Some("role:"), Some("master")]);
        assert!(v.unwrap().ok);
        let (_, v) = drive(&rules, &[Some("role:slave"), None]);
        assert_eq!(
            v.unwrap().info,
            "TCPCHK did not match content (regex) at step 1"
        );
    }

    #[test]
    fn a_full_buffer_is_conclusive() {
        let rules = [string("needle")];
        let mut run = TcpCheckRun::new(&rules);
        let junk = vec![b'x'; CHECK_BUFSIZE + 10];
        assert_eq!(run.poll(), Next::Recv(CHECK_BUFSIZE));
        run.received(&junk[..CHECK_BUFSIZE - 1]);
        assert_eq!(run.poll(), Next::Recv(1));
        run.received(&junk);
        let Next::Done(v) = run.poll() else { panic!() };
        assert_eq!(v.status, "L7RSP");
    }

    #[test]
    fn a_closed_connection_stays_closed_for_later_rules() {
        // The negated rule passes on the close; the next expect must not
        // read again (the script has nothing more) and finds no reply.
        let rules = [
            send("QUIT\r\n"),
            expect(Pattern::String(b"-ERR".to_vec()), true, None),
            send("PING\r\n"),
            string("+PONG"),
        ];
        let (sent, v) = drive(&rules, &[Some("+OK\r\n"), None]);
        assert_eq!(sent, "QUIT\r\nPING\r\n");
        let v = v.unwrap();
        assert_eq!(v.status, "L7RSP");
        assert_eq!(v.info, "TCPCHK got an empty response at step 4");
    }

    #[test]
    fn send_only_sequences_pass_and_failures_carry_the_comment() {
        let (sent, v) = drive(&[send("PING\r\n")], &[]);
        assert_eq!(sent, "PING\r\n");
        assert_eq!(v.unwrap().status, "L7OK");
        let mut rule = string("+PONG");
        rule.comment = Some("PING phase".into());
        let (_, v) = drive(&[send("PING\r\n"), rule], &[Some("-ERR\r\n"), None]);
        assert_eq!(
            v.unwrap().info,
            "TCPCHK did not match content '+PONG' at step 2 comment: PING phase"
        );
        let rules = [send("PING\r\n"), string("+PONG")];
        let mut run = TcpCheckRun::new(&rules);
        assert_eq!(
            run.timeout_verdict().info,
            " at initial connection step of tcp-check"
        );
        let _ = run.poll();
        assert_eq!(
            run.send_failed_verdict().info,
            "write error at step 1 of tcp-check (send)"
        );
    }
}
