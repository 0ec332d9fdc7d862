//! The process runner shared by the OCF and LSB adapters.
//!
//! Runs one agent process the way `pacemaker-execd` does:
//! - a clean environment (only what the caller sets), stdin from `/dev/null`;
//! - the child leads its own process group (`setpgid(0, 0)` via
//!   [`CommandExt::process_group`](std::os::unix::process::CommandExt::process_group));
//! - on timeout, or when the future is dropped (cancellation), `SIGKILL` goes to the
//!   whole group at once, then the child is reaped;
//! - after a normal exit the group is left alone (a daemon the agent started keeps
//!   running), and stdout/stderr are drained for a short grace period only, not to
//!   EOF, so a daemon holding the pipes cannot hang the operation;
//! - output is captured up to a bound per stream, the rest is read and counted;
//! - the exit reason is the text after the last `ocf-exit-reason:` on stderr, to end
//!   of line, at most 128 bytes.
//!
//! All descriptors Rust opens are close-on-exec, so the child inherits only its
//! three standard streams.

use super::outcome::{truncate_reason, EXIT_REASON_MAX};
use rustix::process::{kill_process_group, Pid, Signal};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// How often a spawn that failed with `ETXTBSY` is retried (5, 10, ... ms apart).
const SPAWN_BUSY_RETRIES: u64 = 8;

/// The prefix agents put before their exit reason on stderr.
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// Default bound on captured bytes per stream.
pub const DEFAULT_CAPTURE_LIMIT: usize = 64 * 1024;

/// How long stdout/stderr are still read after the agent exited.
pub const DRAIN_GRACE: Duration = Duration::from_millis(50);

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments (without argv\[0\]).
    pub args: Vec<OsString>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// Kill the group after this long. Must be positive.
    pub timeout: Duration,
    /// Bytes captured per stream; more is read and counted but dropped.
    pub capture_limit: usize,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal killed it (not ours).
    Signaled(i32),
    /// It ran past its timeout; its group was killed.
    TimedOut,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// How it ended.
    pub exit: Exit,
    /// Captured stdout (at most `capture_limit` bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most `capture_limit` bytes).
    pub stderr: Vec<u8>,
    /// Bytes read from stdout and dropped over the limit.
    pub stdout_dropped: u64,
    /// Bytes read from stderr and dropped over the limit.
    pub stderr_dropped: u64,
    /// The exit reason found on stderr.
    pub exit_reason: Option<String>,
    /// Wall time from spawn to the end.
    pub elapsed: Duration,
}

/// Why a process could not be started.
#[derive(Debug)]
pub struct SpawnError {
    /// The program.
    pub program: PathBuf,
    /// The error from `execve` / `fork`.
    pub source: std::io::Error,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.source.kind() {
            std::io::ErrorKind::NotFound => " (no such file)",
            std::io::ErrorKind::PermissionDenied => " (not executable, or no permission)",
            _ => "",
        };
        write!(
            f,
            "cannot execute {}: {}{hint}",
            self.program.display(),
            self.source
        )
    }
}

/// One captured stream.
#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    dropped: u64,
    limit: usize,
    eof: bool,
    // exit-reason scanning (stderr only)
    scan: bool,
    line: Vec<u8>,
    reason: Option<String>,
}

const MAX_LINE: usize = 4096;

impl Capture {
    fn new(limit: usize, scan: bool) -> Self {
        Self {
            limit,
            scan,
            ..Self::default()
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.buf.len());
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
        if self.scan {
            for chunk in data.split_inclusive(|b| *b == b'\n') {
                let (body, ends) = match chunk.split_last() {
                    Some((b'\n', body)) => (body, true),
                    _ => (chunk, false),
                };
                self.line.extend_from_slice(body);
                if self.line.len() > MAX_LINE {
                    self.compact_line();
                }
                if ends {
                    self.finish_line();
                }
            }
        }
    }

    /// Keeps a long line bounded without losing an exit reason in it: from the
    /// first prefix on (enough for a 128-byte reason), or else just the tail that
    /// could be the start of a prefix.
    fn compact_line(&mut self) {
        let p = EXIT_REASON_PREFIX.as_bytes();
        match self.line.windows(p.len()).position(|w| w == p) {
            Some(pos) => {
                self.line.drain(..pos);
                self.line.truncate(p.len() + 2 * EXIT_REASON_MAX);
            }
            None => {
                let keep = p.len() - 1;
                let cut = self.line.len() - keep;
                self.line.drain(..cut);
            }
        }
    }

    fn finish_line(&mut self) {
        if let Some(r) = parse_exit_reason_line(&self.line) {
            self.reason = Some(r);
        }
        self.line.clear();
    }
}

/// The exit reason in one line: the text after `ocf-exit-reason:`, to end of line,
/// at most 128 bytes. `None` if the line has no prefix.
pub fn parse_exit_reason_line(line: &[u8]) -> Option<String> {
    let p = EXIT_REASON_PREFIX.as_bytes();
    let pos = line.windows(p.len()).position(|w| w == p)?;
    let rest = &line[pos + p.len()..];
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    let cut = &rest[..rest.len().min(EXIT_REASON_MAX + 4)];
    Some(truncate_reason(String::from_utf8_lossy(cut).into_owned()))
}

/// The exit reason in a whole stderr text (the last one wins).
pub fn parse_exit_reason(stderr: &[u8]) -> Option<String> {
    stderr
        .split(|b| *b == b'\n')
        .rev()
        .find_map(parse_exit_reason_line)
}

/// Kills the process group on drop unless disarmed (the child was reaped).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // The leader is not reaped yet, so the group id is still ours.
            if let Err(e) = kill_process_group(pid, Signal::KILL) {
                tracing::debug!(pgid = pid.as_raw_nonzero().get(), error = %e, "killpg");
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signaled(s),
        (None, None) => Exit::Code(-1),
    }
}

/// Runs `spec` to completion (or timeout). Dropping the returned future kills the
/// process group (cancellation).
pub async fn run(spec: &RunSpec) -> Result<RunOutput, SpawnError> {
    let started = Instant::now();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // ETXTBSY: the executable is still open for writing somewhere, typically for
    // an instant while another thread of this process forks (the forked child holds
    // a copy of the writer's fd until its own exec), or while a package upgrade
    // replaces the agent. It clears by itself; retry a few times before giving up.
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
                    && attempts < SPAWN_BUSY_RETRIES =>
            {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 * attempts)).await;
            }
            Err(source) => {
                return Err(SpawnError {
                    program: spec.program.clone(),
                    source,
                })
            }
        }
    };
    let mut guard = GroupGuard(child.id().and_then(|id| Pid::from_raw(id as i32)));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Capture::new(spec.capture_limit, false);
    let mut err = Capture::new(spec.capture_limit, true);
    let mut obuf = vec![0u8; 16 * 1024];
    let mut ebuf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + spec.timeout;

    let mut exit = None;
    // Phase 1: until the child exits or the deadline passes.
    while exit.is_none() {
        tokio::select! {
            st = child.wait() => {
                match st {
                    Ok(st) => { guard.0 = None; exit = Some(exit_of(st)); }
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for agent");
                        guard.kill();
                        let _ = child.wait().await;
                        exit = Some(Exit::Code(-1));
                    }
                }
            }
            n = read_some(&mut stdout, &mut obuf), if !out.eof => feed(&mut out, &obuf, n, &mut stdout),
            n = read_some(&mut stderr, &mut ebuf), if !err.eof => feed(&mut err, &ebuf, n, &mut stderr),
            _ = tokio::time::sleep_until(deadline) => {
                guard.kill();
                // SIGKILL cannot be ignored: the leader dies and is reaped now.
                let _ = child.wait().await;
                exit = Some(Exit::TimedOut);
            }
        }
    }
    // Phase 2: drain what is there, for a short grace only.
    let grace = tokio::time::Instant::now() + DRAIN_GRACE;
    while !(out.eof && err.eof) {
        tokio::select! {
            n = read_some(&mut stdout, &mut obuf), if !out.eof => feed(&mut out, &obuf, n, &mut stdout),
            n = read_some(&mut stderr, &mut ebuf), if !err.eof => feed(&mut err, &ebuf, n, &mut stderr),
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    if !err.line.is_empty() {
        err.finish_line();
    }
    Ok(RunOutput {
        exit: exit.unwrap_or(Exit::Code(-1)),
        stdout: out.buf,
        stderr: err.buf,
        stdout_dropped: out.dropped,
        stderr_dropped: err.dropped,
        exit_reason: err.reason,
        elapsed: started.elapsed(),
    })
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => Ok(0),
    }
}

fn feed<R>(cap: &mut Capture, buf: &[u8], n: std::io::Result<usize>, stream: &mut Option<R>) {
    match n {
        Ok(0) | Err(_) => {
            cap.eof = true;
            *stream = None; // close our end now
        }
        Ok(n) => cap.push(&buf[..n]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    #[test]
    fn exit_reason_is_the_last_one_cut_to_128() {
        let e = b"x\nocf-exit-reason:first\nnoise ocf-exit-reason:second\r\nmore";
        assert_eq!(parse_exit_reason(e).as_deref(), Some("second"));
        assert_eq!(parse_exit_reason(b"nothing here"), None);
        let long = format!("ocf-exit-reason:{}", "y".repeat(500));
        assert_eq!(parse_exit_reason(long.as_bytes()).unwrap().len(), 128);
        assert_eq!(
            parse_exit_reason(b"ocf-exit-reason:\xff\xfebad").as_deref(),
            Some("\u{fffd}\u{fffd}bad")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// For any stderr and any chunking, the streaming scan finds the same exit
        /// reason as a scan of the whole text (lines up to 4 KiB), and keeps at
        /// most the capture limit.
        #[test]
        fn streaming_scan_agrees_with_whole_scan(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    "[a-z ]{0,20}".prop_map(String::into_bytes),
                    "[a-z ]{0,8}ocf-exit-reason:[a-z \\xff]{0,200}".prop_map(String::into_bytes),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                ],
                0..12,
            ),
            chunk in 1usize..64,
            limit in 0usize..300,
        ) {
            let text: Vec<u8> = lines.join(&b'\n');
            let mut c = Capture::new(limit, true);
            for part in text.chunks(chunk) {
                c.push(part);
            }
            if !c.line.is_empty() {
                c.finish_line();
            }
            proptest::prop_assert_eq!(c.reason, parse_exit_reason(&text));
            proptest::prop_assert_eq!(c.buf.len(), limit.min(text.len()));
            proptest::prop_assert_eq!(c.buf.len() as u64 + c.dropped, text.len() as u64);
        }
    }

    #[test]
    fn streaming_scan_matches_whole_text_scan() {
        let text = b"a\nocf-exit-reason:one\nb ocf-exit-reason:two words\nc";
        for split in 1..text.len() {
            let mut c = Capture::new(8, true);
            c.push(&text[..split]);
            c.push(&text[split..]);
            c.finish_line();
            assert_eq!(c.reason.as_deref(), Some("two words"), "split {split}");
            assert_eq!(c.buf.len(), 8);
            assert_eq!(c.dropped as usize, text.len() - 8);
        }
    }
}
