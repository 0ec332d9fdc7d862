//! Piggybacked ACKs on server connections.
//!
//! A backend that sends a small response as two segments (nginx with
//! `sendfile on` and no `tcp_nopush`: headers by `writev`, then the body)
//! makes the proxy's kernel answer with a pure ACK segment the moment the
//! proxy's read empties the receive queue: two segments shorter than
//! `rcv_mss` set `ICSK_ACK_PUSHED2`, and `tcp_cleanup_rbuf` acknowledges at
//! once when that is set and the queue is drained, delayed-ACK mode or not.
//! That segment, and the backend's input processing of it (on loopback the
//! receiver's TCP input runs in the sender's context), cost the proxy about
//! a tenth of its CPU per request at c=50 (BENCHMARKS.md, "Piggybacked
//! ACKs").
//!
//! [`Piggyback`] avoids it while requests follow each other closely on a
//! connection: it reads the response with `MSG_PEEK`, so the bytes are
//! forwarded but stay queued in the kernel and no ACK is due. The next
//! request written to the server carries the ACK in its header; after that
//! write the peeked bytes are dropped with `MSG_TRUNC` (no copy), and no
//! ACK is pending any more. New bytes from the server also drop them first
//! (the queue is not empty then, so that does not send an ACK either).
//!
//! The risk is a server that waits for the ACK: with two unacknowledged
//! segments, its tail-loss probe retransmits after 2·SRTT plus 2 jiffies
//! (more than 2 ms after its send at `HZ=1000`, 8 ms at `HZ=250`), long
//! before the kernel's delayed-ACK timer (40 ms). So the deferral is
//! bounded twice:
//! - the proxy peeks only when the previous response on this connection was
//!   followed by a request within [`ACK_DELAY`]; at low request rates it
//!   reads as before and the kernel acknowledges at once;
//! - peeked bytes wait at most [`ACK_DELAY`], counted from the oldest
//!   unacknowledged peek (a timer, polled by the connection's task through
//!   [`Piggyback::poll_expire`]): at the end of a burst, or when the server
//!   streams small chunks and no request comes, the ACK goes out before the
//!   server's probe would, and peeking stops until a short gap shows again.
//!
//! A bulk read (one that fills the buffer) is dropped at once, and the
//! splice path never sees peeked bytes.
//!
//! Dropping costs a syscall of its own. Where the kernel has a peek offset
//! for TCP (`SO_PEEK_OFF`, Linux 6.10 and later), a peek continues after
//! the bytes peeked before, so acknowledged bytes need not go before the
//! next peek: they are dropped in batches of [`DISCARD_BATCH`] bytes (about
//! one request in six for nginx's 383-byte answers), or after [`HOLD_MAX`]
//! on an idle connection. That saves about one `recvfrom` per request
//! (`perf stat` of the syscalls at c=50: 3.2 -> 2.3 per request) and 8-9% of
//! the proxy's CPU per request at c=50 (BENCHMARKS.md, "Peek offset").
//! Setting the option is the crate's one `unsafe` call (rustix has no
//! wrapper for it); without it, every request's write drops the bytes.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How long peeked bytes may wait for a request to carry their ACK, and the
/// longest gap between a response and the next request for which the next
/// response is peeked. With tokio's 1 ms timer resolution the ACK goes out
/// 1-2 ms after the oldest peek, before a Linux backend's earliest
/// tail-loss probe (2·SRTT rounded up to a jiffy, plus 2 jiffies: more
/// than 2 ms after its send at `HZ=1000`, 8 ms at `HZ=250`). At `HZ=1000`
/// the margin is thin: a late timer (a busy thread) can let a probe
/// through at the end of a burst, which costs one spurious retransmission
/// of a small segment (undone by the DSACK), never data. Measured on the
/// wire, the timer path acknowledges 2.0-2.6 ms after the backend's
/// segment; an `HZ=1000` backend whose SRTT the deferral has raised to
/// ~0.6 ms probes at ~3.2 ms (BENCHMARKS.md, "ACK delay to the backend").
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(1);

thread_local! {
    /// Target of `MSG_TRUNC` reads; TCP does not write to it.
    static DISCARD_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// The receive side of one server connection: whether responses are
/// peeked, and how many peeked bytes the kernel still holds.
#[derive(Debug, Default)]
pub(crate) struct Piggyback {
    /// Bytes already handed on that are still in the kernel's queue.
    unread: usize,
    /// When the last response bytes were read, until the next write.
    read_at: Option<Instant>,
    /// When the oldest peeked bytes whose ACK is still due were read.
    unacked_since: Option<Instant>,
    /// When acknowledged peeked bytes were first left queued for a later,
    /// batched drop (with a peek offset only).
    held_since: Option<Instant>,
    /// Peek the next response (the last gap was short).
    peek: bool,
    /// Bounds how long peeked bytes wait (made at the first peek).
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the socket has a peek offset (`SO_PEEK_OFF`), so that peeks
    /// continue after the bytes already peeked.
    offset: PeekOffset,
}

/// `SO_PEEK_OFF` on a server socket: tried at the first peek.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum PeekOffset {
    #[default]
    Untried,
    On,
    Off,
}

/// With a peek offset, acknowledged peeked bytes are dropped in batches
/// once this many have piled up, rather than after every request.
const DISCARD_BATCH: usize = 2048;

/// Longest time acknowledged peeked bytes stay queued when no batch fills
/// (an idle connection): bounds the kernel memory they hold.
const HOLD_MAX: Duration = Duration::from_millis(100);

impl Piggyback {
    /// Reads what `server` has into `buf`, like [`read_drain`]. First drops
    /// the bytes an earlier peek left queued, unless this read peeks past
    /// them (peek offset). Call only once tokio reports the socket readable
    /// (new bytes or EOF), or the drop may empty the queue and send the ACK
    /// after all.
    pub(crate) fn read(&mut self, server: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if self.peek && self.offset == PeekOffset::Untried {
            self.offset = if set_peek_offset(server) {
                PeekOffset::On
            } else {
                PeekOffset::Off
            };
        }
        if !(self.peek && self.offset == PeekOffset::On) {
            self.discard(server)?;
        }
        let n = read_drain(server, buf, self.peek)?;
        if n > 0 {
            let now = Instant::now();
            self.read_at = Some(now);
            if !self.peek {
                // A plain read: the kernel's own ACK rules apply.
                self.unacked_since = None;
            } else if n == buf.len() {
                // Bulk: dropping a full buffer acknowledges it (more than
                // one segment is unacknowledged), so nothing waits.
                self.unread += n;
                self.discard(server)?;
                self.unacked_since = None;
            } else {
                // Earlier peeked bytes, dropped or still queued, sent no
                // ACK: the wait runs from the oldest of them.
                self.unread += n;
                self.unacked_since.get_or_insert(now);
            }
        }
        Ok(n)
    }

    /// Call after bytes were written to `server`: their segment carried the
    /// ACK, so what was peeked can go. Also decides whether the next
    /// response is peeked.
    pub(crate) fn wrote(&mut self, server: &TcpStream) -> io::Result<()> {
        let now = Instant::now();
        if let Some(at) = self.read_at.take() {
            self.peek = now.saturating_duration_since(at) < ACK_DELAY;
        }
        self.unacked_since = None;
        if self.offset == PeekOffset::On && self.unread < DISCARD_BATCH {
            // Acknowledged now; later peeks start after them, so they can
            // wait for a batch (or HOLD_MAX).
            if self.unread > 0 {
                self.held_since.get_or_insert(now);
            }
            return Ok(());
        }
        self.discard(server)
    }

    /// Sends the ACK (drops the peeked bytes) once the oldest of them have
    /// waited [`ACK_DELAY`], and stops peeking: no request followed, so the
    /// traffic is not request/response (a stream of small chunks from the
    /// server, say) until a short gap shows again. Until then registers
    /// `cx` to be woken at that time. Call whenever the connection's task
    /// is about to wait.
    pub(crate) fn poll_expire(
        &mut self,
        cx: &mut Context<'_>,
        server: &TcpStream,
    ) -> io::Result<()> {
        let deadline = match (self.unacked_since, self.held_since) {
            (Some(since), _) => since + ACK_DELAY,
            (None, Some(since)) => since + HOLD_MAX,
            (None, None) => return Ok(()),
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            // Usually later than before: tokio only moves the deadline then.
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            if self.unacked_since.take().is_some() {
                self.peek = false;
            }
            self.discard(server)?;
        }
        Ok(())
    }

    /// Drops the peeked bytes before the connection is closed: a socket
    /// closed with unread bytes sends the server a reset instead of a FIN.
    pub(crate) fn release(&mut self, server: &TcpStream) {
        let _ = self.discard(server);
    }

    /// Drops the peeked bytes from the kernel's queue (`MSG_TRUNC`: TCP
    /// discards them without copying).
    fn discard(&mut self, server: &TcpStream) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        while self.unread > 0 {
            use rustix::net::{recv, RecvFlags};
            let n = DISCARD_BUF.with(|cell| {
                let mut buf = cell.borrow_mut();
                let len = self.unread.min(buf.len());
                recv(
                    server,
                    &mut buf[..len],
                    RecvFlags::TRUNC | RecvFlags::DONTWAIT,
                )
                .map(|(_, n)| n)
                .map_err(io::Error::from)
            })?;
            if n == 0 {
                break;
            }
            self.unread -= n.min(self.unread);
        }
        self.unread = 0;
        self.held_since = None;
        Ok(())
    }
}

/// Reads like `try_read` (or peeks, with `peek`), but a short read (fewer
/// bytes than asked) also clears tokio's read readiness: the kernel queue
/// was empty at that moment, so the next poll waits for epoll instead of
/// paying for a read that would return EAGAIN (HAProxy does the same). Data
/// that arrives after the read raises a new readiness event (a new tick),
/// which this clear cannot erase. After a peek the queue is not empty, so
/// the clear is what keeps the next poll from returning the same bytes.
pub(crate) fn read_drain(from: &TcpStream, buf: &mut [u8], peek: bool) -> io::Result<usize> {
    let mut got = None;
    let r = from.try_io(Interest::READABLE, || {
        let n = if peek {
            peek_into(from, buf)?
        } else {
            from.try_read(buf)?
        };
        got = Some(n);
        if n > 0 && n < buf.len() {
            // Report "would block" so the readiness is cleared; the bytes are in `got`.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (r, got) {
        (Ok(n), _) => Ok(n),
        (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (Err(e), _) => Err(e),
    }
}

/// Sets a peek offset of 0 on `s` (`SO_PEEK_OFF`, TCP since Linux 6.10);
/// false when the kernel does not support it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_peek_offset(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let zero: libc::c_int = 0;
    // SAFETY: `s` is an open socket for the whole call, and the option
    // value is a live c_int whose size is passed alongside it.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEEK_OFF,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn set_peek_offset(_: &TcpStream) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn peek_into(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use rustix::net::{recv, RecvFlags};
    recv(from, buf, RecvFlags::PEEK | RecvFlags::DONTWAIT)
        .map(|(n, _)| n)
        .map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn peek_into(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // Without MSG_TRUNC there is nothing to gain: read normally.
    from.try_read(buf)
}

/// A server connection for hyper's client side, whose responses are read
/// through [`Piggyback`].
#[derive(Debug)]
pub(crate) struct ServerIo {
    stream: TcpStream,
    ack: Piggyback,
}

impl ServerIo {
    pub(crate) fn new(stream: TcpStream) -> ServerIo {
        ServerIo {
            stream,
            ack: Piggyback::default(),
        }
    }

    /// The socket, for a tunnel after an HTTP upgrade: the peeked bytes
    /// (what hyper already read) are dropped first, so the tunnel reads
    /// only what comes after them.
    pub(crate) fn tunnel(&mut self) -> &mut TcpStream {
        self.ack.release(&self.stream);
        &mut self.stream
    }

    fn wrote(&mut self, r: &io::Result<usize>) -> io::Result<()> {
        match r {
            Ok(n) if *n > 0 => self.ack.wrote(&self.stream),
            _ => Ok(()),
        }
    }
}

impl Drop for ServerIo {
    fn drop(&mut self) {
        self.ack.release(&self.stream);
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Poll::Ready(r) = this.stream.poll_read_ready(cx) {
                r?;
            } else {
                this.ack.poll_expire(cx, &this.stream)?;
                return Poll::Pending;
            }
            match this.ack.read(&this.stream, buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.stream).poll_write(cx, buf));
        this.wrote(&r)?;
        Poll::Ready(r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs));
        this.wrote(&r)?;
        Poll::Ready(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A connected pair on loopback: (proxy's server connection, backend).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (backend, _) = l.accept().await.unwrap();
        proxy.set_nodelay(true).unwrap();
        backend.set_nodelay(true).unwrap();
        (proxy, backend)
    }

    /// Reads through `ack` until `want` bytes arrived (bounded).
    async fn read_n(ack: &mut Piggyback, s: &TcpStream, buf: &mut [u8], want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < want {
            tokio::time::timeout_at(deadline, s.readable())
                .await
                .expect("bytes in time")
                .unwrap();
            match ack.read(s, buf) {
                Ok(0) => panic!("EOF after {} of {want} bytes", got.len()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    /// Segments sent so far by the socket bound to `port` (`ss -ti`), or
    /// `None` when `ss` (iproute2) is missing.
    fn segs_out(port: u16) -> Option<u64> {
        ss_field(port, "segs_out:")
    }

    /// Segments the socket with local port `port` has sent and not seen
    /// acknowledged (`ss` prints `unacked:` only when there are some).
    fn unacked(port: u16) -> Option<u64> {
        ss_field(port, "segs_out:")?;
        Some(ss_field(port, "unacked:").unwrap_or(0))
    }

    /// Bytes in the receive queue of the established socket with local port
    /// `port` (`ss`'s first column).
    fn recv_q(port: u16) -> Option<u64> {
        let out = std::process::Command::new("ss")
            .args([
                "-tnH",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// A numeric `ss -ti` field of the established socket with local port `port`.
    fn ss_field(port: u16, name: &str) -> Option<u64> {
        let out = std::process::Command::new("ss")
            .args([
                "-tinH",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = text.split_whitespace().find_map(|w| w.strip_prefix(name))?;
        field.parse().ok()
    }

    fn ss_missing() -> bool {
        if std::process::Command::new("ss").arg("-V").output().is_ok() {
            return false;
        }
        if std::env::var("HALYARD_REQUIRE_SYSTEM").is_ok_and(|v| v == "1") {
            panic!("ss not found (install iproute2); HALYARD_REQUIRE_SYSTEM=1");
        }
        eprintln!("skipped: ss not found (install iproute2)");
        true
    }

    #[tokio::test]
    async fn peeked_bytes_arrive_once_and_in_order() {
        let (proxy, mut backend) = pair().await;
        let mut ack = Piggyback::default();
        let mut sent = Vec::new();
        let mut got = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..300 {
            // Peek or not, small or large reads, one or two writes, a
            // request written back or not: every mix of the two paths.
            ack.peek = next() % 3 != 0;
            let mut buf = vec![0u8; [16, 700, 4096][(next() % 3) as usize]];
            let len = 1 + (next() % 3000) as usize;
            let chunk: Vec<u8> = (0..len).map(|i| (round * 7 + i) as u8).collect();
            let cut = (next() as usize) % len;
            backend.write_all(&chunk[..cut]).await.unwrap();
            backend.write_all(&chunk[cut..]).await.unwrap();
            sent.extend_from_slice(&chunk);
            got.extend(read_n(&mut ack, &proxy, &mut buf, len).await);
            if next() % 2 == 0 {
                proxy.writable().await.unwrap();
                assert_eq!(proxy.try_write(b"r").unwrap(), 1);
                ack.wrote(&proxy).unwrap();
                let mut one = [0u8; 1];
                backend.read_exact(&mut one).await.unwrap();
            }
        }
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes differ");
        // Nothing is left behind: the backend's EOF is the next thing read.
        drop(backend);
        let mut buf = [0u8; 64];
        loop {
            proxy.readable().await.unwrap();
            match ack.read(&proxy, &mut buf) {
                Ok(0) => break,
                Ok(n) => panic!("{n} bytes read twice"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn a_short_gap_turns_peeking_on_and_a_long_one_off() {
        let (proxy, _backend) = pair().await;
        let mut ack = Piggyback::default();
        assert!(!ack.peek, "a new connection reads");
        ack.read_at = Some(Instant::now());
        ack.wrote(&proxy).unwrap();
        assert!(ack.peek, "a request right after the response");
        ack.read_at = Some(Instant::now() - 5 * ACK_DELAY);
        ack.wrote(&proxy).unwrap();
        assert!(!ack.peek, "a request long after the response");
        // A write with no response read since leaves the choice alone.
        ack.peek = true;
        ack.wrote(&proxy).unwrap();
        assert!(ack.peek);
    }

    /// One request/response exchange: the backend answers in two segments,
    /// and the proxy reads the first before the second lands (as it does
    /// under load: nginx's `writev` of the head, then `sendfile`).
    /// `peek` overrides the gap rule for the response.
    async fn exchange(
        ack: &mut Piggyback,
        proxy: &TcpStream,
        backend: &mut TcpStream,
        peek: Option<bool>,
    ) {
        proxy.writable().await.unwrap();
        assert_eq!(proxy.try_write(b"GET").unwrap(), 3);
        ack.wrote(proxy).unwrap();
        if let Some(p) = peek {
            ack.peek = p;
        }
        let mut req = [0u8; 3];
        backend.read_exact(&mut req).await.unwrap();
        let mut buf = vec![0u8; 4096];
        backend.write_all(&[b'h'; 255]).await.unwrap();
        read_n(ack, proxy, &mut buf, 255).await;
        backend.write_all(&[b'b'; 128]).await.unwrap();
        read_n(ack, proxy, &mut buf, 128).await;
    }

    /// Segments the proxy's socket sends for 50 exchanges, responses peeked
    /// or not.
    async fn segments_for_50(peek: bool) -> Option<u64> {
        let (proxy, mut backend) = pair().await;
        let port = proxy.local_addr().unwrap().port();
        let mut ack = Piggyback::default();
        // Past the kernel's quick-ACK start of a connection.
        for _ in 0..50 {
            exchange(&mut ack, &proxy, &mut backend, Some(false)).await;
        }
        let before = segs_out(port)?;
        for _ in 0..50 {
            exchange(&mut ack, &proxy, &mut backend, Some(peek)).await;
        }
        Some(segs_out(port)? - before)
    }

    /// A connection past the quick-ACK start whose last response was
    /// peeked: (proxy side, backend side, the proxy side's port, its state).
    async fn peeked_after_warm_up() -> (TcpStream, TcpStream, u16, Piggyback) {
        let (proxy, mut backend) = pair().await;
        let port = proxy.local_addr().unwrap().port();
        let mut ack = Piggyback::default();
        for _ in 0..50 {
            exchange(&mut ack, &proxy, &mut backend, Some(false)).await;
        }
        exchange(&mut ack, &proxy, &mut backend, Some(true)).await;
        (proxy, backend, port, ack)
    }

    #[tokio::test]
    async fn the_next_request_carries_the_ack() {
        if ss_missing() {
            return;
        }
        let read = segments_for_50(false).await.expect("ss reads segs_out");
        let peeked = segments_for_50(true).await.expect("ss reads segs_out");
        eprintln!("segments for 50 exchanges: read {read}, peeked {peeked}");
        assert!(
            peeked < read,
            "peeking saved no ACK: {peeked} segments vs {read} when reading"
        );
    }

    #[tokio::test]
    async fn a_stream_of_small_chunks_is_acknowledged_and_ends_the_peeking() {
        if ss_missing() {
            return;
        }
        let (proxy, mut backend, port, mut ack) = peeked_after_warm_up().await;
        let before = segs_out(port).unwrap();
        // The server streams small chunks and no request comes: every new
        // chunk drops the one peeked before without an ACK, so only the
        // timer, counted from the oldest peek, acknowledges them.
        let mut buf = vec![0u8; 4096];
        let mut got = 0;
        for i in 0..40u8 {
            backend.write_all(&[i; 100]).await.unwrap();
            tokio::time::sleep(Duration::from_micros(300)).await;
            got += read_n(&mut ack, &proxy, &mut buf, 100).await.len();
            poll_fn(|cx| Poll::Ready(ack.poll_expire(cx, &proxy)))
                .await
                .unwrap();
        }
        assert_eq!(got, 40 * 100);
        assert!(!ack.peek, "the timer ended the peeking");
        assert!(segs_out(port).unwrap() > before, "no ACK was sent");
    }

    #[tokio::test]
    async fn closing_after_a_peek_sends_a_fin_not_a_reset() {
        let (proxy, mut backend) = pair().await;
        let mut ack = Piggyback::default();
        exchange(&mut ack, &proxy, &mut backend, Some(true)).await;
        assert!(ack.unread > 0, "the response was peeked");
        ack.release(&proxy);
        drop(proxy);
        let mut buf = [0u8; 16];
        let end = tokio::time::timeout(Duration::from_secs(5), backend.read(&mut buf))
            .await
            .expect("the close arrives");
        assert_eq!(end.expect("a FIN, not a reset"), 0);
    }

    /// Polls `ack`'s timer until it has dropped every peeked byte (bounded).
    async fn until_dropped(ack: &mut Piggyback, proxy: &TcpStream) {
        tokio::time::timeout(
            Duration::from_secs(5),
            poll_fn(|cx| {
                ack.poll_expire(cx, proxy).unwrap();
                if ack.unread == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }),
        )
        .await
        .expect("the timer drops the peeked bytes");
    }

    #[tokio::test]
    async fn acknowledged_peeks_are_dropped_in_batches_and_when_idle() {
        let (proxy, mut backend, _, mut ack) = peeked_after_warm_up().await;
        if ack.offset != PeekOffset::On {
            eprintln!("skipped: no SO_PEEK_OFF for TCP here (Linux before 6.10)");
            return;
        }
        // Each exchange peeks 383 bytes; the request after it carries their
        // ACK, but they stay queued until a batch has piled up.
        let mut drops = 0;
        let mut last = ack.unread;
        for _ in 0..20 {
            exchange(&mut ack, &proxy, &mut backend, Some(true)).await;
            if ack.unread < last {
                drops += 1;
            }
            assert!(
                ack.unread < DISCARD_BATCH + 383,
                "{} bytes held",
                ack.unread
            );
            last = ack.unread;
        }
        assert!(
            (2..=4).contains(&drops),
            "{drops} batched drops in 20 exchanges of 383 bytes"
        );
        // A request acknowledges the last response; then the connection is idle.
        proxy.writable().await.unwrap();
        assert_eq!(proxy.try_write(b"GET").unwrap(), 3);
        ack.wrote(&proxy).unwrap();
        assert!(ack.unread > 0 && ack.unacked_since.is_none());
        let due = ack.held_since.expect("bytes are held") + HOLD_MAX;
        until_dropped(&mut ack, &proxy).await;
        assert!(Instant::now() >= due, "dropped before HOLD_MAX");
        // Nothing was lost or doubled: the next response reads whole.
        let mut req = [0u8; 3];
        backend.read_exact(&mut req).await.unwrap();
        backend.write_all(b"next").await.unwrap();
        let mut buf = vec![0u8; 64];
        assert_eq!(read_n(&mut ack, &proxy, &mut buf, 4).await, b"next");
    }

    #[tokio::test]
    async fn a_peek_left_waiting_is_acknowledged() {
        if ss_missing() {
            return;
        }
        let (proxy, backend, port, mut ack) = peeked_after_warm_up().await;
        let backend_port = backend.local_addr().unwrap().port();
        assert!(ack.unread > 0, "the response was peeked");
        assert!(recv_q(port).unwrap() > 0, "the peeked bytes are queued");
        // No request follows: the timer drops the bytes (bounded wait)...
        until_dropped(&mut ack, &proxy).await;
        assert_eq!(recv_q(port), Some(0), "the timer emptied the queue");
        // ...and the kernel acknowledges at that drop (or its own delayed-ACK
        // timer did already, if this thread was late): the backend ends up
        // with nothing unacknowledged.
        let deadline = Instant::now() + Duration::from_secs(5);
        while unacked(backend_port).unwrap() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(unacked(backend_port), Some(0), "no ACK was sent");
    }
}
