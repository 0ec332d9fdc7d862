//! Bidirectional forwarding between two TCP streams.
//!
//! One future polls both directions. Reads go into a per-thread scratch
//! buffer and are written to the peer at once; only what the peer does not
//! take right away is kept in a per-direction heap buffer. An idle
//! connection therefore holds no buffer at all (see the memory figure in
//! BENCHMARKS.md). EOF on one side becomes a write shutdown on the other
//! (half-close); the session ends when both directions are closed and
//! flushed, or on the first error.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// Scratch buffer size (one per thread).
const SCRATCH: usize = 64 * 1024;
/// Reads per direction per poll before yielding to other tasks.
const BUDGET: usize = 16;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; SCRATCH]);
}

/// Byte counters, readable while forwarding runs (for idle timeouts).
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes client -> server.
    pub c2s: AtomicU64,
    /// Bytes server -> client.
    pub s2c: AtomicU64,
}

#[derive(Debug, Default)]
struct Dir {
    pending: Vec<u8>,
    off: usize,
    eof: bool,
    shut: bool,
}

impl Dir {
    fn done(&self) -> bool {
        self.shut
    }
}

/// Moves bytes `from -> to` until blocked; `Ready(Ok)` once this direction
/// is fully closed.
fn poll_dir(
    cx: &mut Context<'_>,
    d: &mut Dir,
    from: &mut TcpStream,
    to: &mut TcpStream,
    count: &AtomicU64,
) -> Poll<io::Result<()>> {
    let mut budget = BUDGET;
    loop {
        while d.off < d.pending.len() {
            match to.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r?,
            }
            match to.try_write(&d.pending[d.off..]) {
                Ok(n) => d.off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        if !d.pending.is_empty() {
            d.off = 0;
            d.pending.clear();
            if d.pending.capacity() > SCRATCH {
                d.pending = Vec::new();
            }
        }
        if d.eof {
            if !d.shut {
                match Pin::new(&mut *to).poll_shutdown(cx) {
                    Poll::Pending => return Poll::Pending,
                    // The peer may be gone already: the direction is closed either way.
                    Poll::Ready(_) => d.shut = true,
                }
            }
            return Poll::Ready(Ok(()));
        }
        if budget == 0 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        budget -= 1;
        match from.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r?,
        }
        let r = SCRATCH_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            match from.try_read(&mut buf) {
                Ok(0) => {
                    d.eof = true;
                    Ok(())
                }
                Ok(n) => {
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    match to.try_write(&buf[..n]) {
                        Ok(m) if m == n => Ok(()),
                        Ok(m) => {
                            d.pending.extend_from_slice(&buf[m..n]);
                            Ok(())
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            d.pending.extend_from_slice(&buf[..n]);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            }
        });
        r?;
    }
}

/// Forwards until both directions are closed or an error occurs. `initial`
/// is sent to the server first (bytes that arrived with a PROXY header).
pub async fn forward(
    client: &mut TcpStream,
    server: &mut TcpStream,
    initial: Vec<u8>,
    counters: &Counters,
) -> io::Result<()> {
    let mut c2s = Dir {
        pending: initial,
        ..Dir::default()
    };
    let mut s2c = Dir::default();
    poll_fn(|cx| {
        if !c2s.done() {
            if let Poll::Ready(Err(e)) = poll_dir(cx, &mut c2s, client, server, &counters.c2s) {
                return Poll::Ready(Err(e));
            }
        }
        if !s2c.done() {
            if let Poll::Ready(Err(e)) = poll_dir(cx, &mut s2c, server, client, &counters.s2c) {
                return Poll::Ready(Err(e));
            }
        }
        if c2s.done() && s2c.done() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}
