//! Bidirectional forwarding between two TCP streams.
//!
//! One future polls both directions. Reads go into a per-thread scratch
//! buffer and are written to the peer at once; only what the peer does not
//! take right away is kept in a per-direction heap buffer. An idle
//! connection therefore holds no buffer at all (see the memory figure in
//! BENCHMARKS.md). EOF on one side becomes a write shutdown on the other
//! (half-close); the session ends when both directions are closed and
//! flushed, or on the first error. Reads from the server go through
//! [`Piggyback`], which lets the next request carry a response's ACK.
//!
//! With `splice` on (Linux), a direction that fills the whole scratch buffer
//! in one read is bulk: it switches to `splice(2)` through a pipe (socket ->
//! pipe -> socket, no copy to user space), as HAProxy's `option splice-auto`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use super::ack::{read_drain, Piggyback};
use super::Cut;

/// Scratch buffer size (one per thread).
const SCRATCH: usize = 64 * 1024;
/// Reads per direction per poll before yielding to other tasks.
const BUDGET: usize = 16;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; SCRATCH]);
}

/// Directions that switched to splice(2) since the process started.
pub(crate) static SPLICED: AtomicU64 = AtomicU64::new(0);

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
    /// May switch to splice when bulk.
    splice_ok: bool,
    #[cfg(target_os = "linux")]
    pipe: Option<splice::Pipe>,
}

#[cfg(target_os = "linux")]
mod splice {
    //! The splice(2) path, through rustix's safe wrappers.
    use std::io;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};

    use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// A pipe and how many bytes sit in it.
    #[derive(Debug)]
    pub(super) struct Pipe {
        r: OwnedFd,
        w: OwnedFd,
        pub(super) len: usize,
    }

    impl Pipe {
        pub(super) fn new() -> Option<Pipe> {
            let (r, w) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
            Some(Pipe { r, w, len: 0 })
        }
    }

    const CHUNK: usize = 1 << 20;
    const FLAGS: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

    /// Empties the pipe into `to`.
    pub(super) fn flush(
        cx: &mut Context<'_>,
        p: &mut Pipe,
        to: &TcpStream,
    ) -> Poll<io::Result<()>> {
        while p.len > 0 {
            match to.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r?,
            }
            match to.try_io(Interest::WRITABLE, || {
                splice(&p.r, None, to, None, p.len, FLAGS).map_err(io::Error::from)
            }) {
                Ok(n) => p.len -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Moves what `from` has into the (empty) pipe; `Ok(0)` is EOF.
    pub(super) fn fill(p: &mut Pipe, from: &TcpStream, count: &AtomicU64) -> io::Result<usize> {
        let n = from.try_io(Interest::READABLE, || {
            splice(from, None, &p.w, None, CHUNK, FLAGS).map_err(io::Error::from)
        })?;
        p.len += n;
        count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Dir {
    fn done(&self) -> bool {
        self.shut
    }
}

/// Which end of a direction is the server connection, whose ACKs
/// [`Piggyback`] handles.
#[derive(Clone, Copy, PartialEq)]
enum ServerEnd {
    /// Client -> server: writes to the server carry the ACK.
    To,
    /// Server -> client: reads from the server may peek.
    From,
}

impl ServerEnd {
    /// An error of the `from` socket, as whose it is.
    fn source_err(self, e: io::Error) -> Cut {
        match self {
            ServerEnd::From => Cut::Server(e),
            ServerEnd::To => Cut::Client(e),
        }
    }

    /// An error of the `to` socket, as whose it is.
    fn sink_err(self, e: io::Error) -> Cut {
        match self {
            ServerEnd::To => Cut::Server(e),
            ServerEnd::From => Cut::Client(e),
        }
    }
}

/// Moves bytes `from -> to` until blocked; `Ready(Ok)` once this direction
/// is fully closed. An error says whose socket failed.
fn poll_dir(
    cx: &mut Context<'_>,
    d: &mut Dir,
    from: &mut TcpStream,
    to: &mut TcpStream,
    count: &AtomicU64,
    ack: &mut Piggyback,
    server: ServerEnd,
) -> Poll<Result<(), Cut>> {
    let (from_err, to_err) = (|e| server.source_err(e), |e| server.sink_err(e));
    let mut budget = BUDGET;
    #[cfg(target_os = "linux")]
    if let Some(p) = d.pipe.as_mut() {
        loop {
            match splice::flush(cx, p, to) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map_err(to_err)?,
            }
            if d.eof {
                if !d.shut {
                    match Pin::new(&mut *to).poll_shutdown(cx) {
                        Poll::Pending => return Poll::Pending,
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
                Poll::Ready(r) => r.map_err(from_err)?,
            }
            match splice::fill(p, from, count) {
                Ok(0) => d.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(from_err(e))),
            }
        }
    }
    loop {
        while d.off < d.pending.len() {
            match to.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r.map_err(to_err)?,
            }
            match to.try_write(&d.pending[d.off..]) {
                Ok(n) => {
                    d.off += n;
                    if server == ServerEnd::To {
                        ack.wrote(to).map_err(to_err)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(to_err(e))),
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
            Poll::Ready(r) => r.map_err(from_err)?,
        }
        let r = SCRATCH_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let got = match server {
                ServerEnd::From => ack.read(from, &mut buf),
                ServerEnd::To => read_drain(from, &mut buf, false),
            };
            match got {
                Ok(0) => {
                    d.eof = true;
                    Ok(())
                }
                Ok(n) => {
                    count.fetch_add(n as u64, Ordering::Relaxed);
                    let written = to.try_write(&buf[..n]);
                    if server == ServerEnd::To && matches!(written, Ok(m) if m > 0) {
                        ack.wrote(to).map_err(to_err)?;
                    }
                    match written {
                        Ok(m) if m == n => {
                            #[cfg(target_os = "linux")]
                            if n == buf.len() && d.splice_ok {
                                // Bulk: switch this direction to splice.
                                d.pipe = splice::Pipe::new();
                                d.splice_ok = false;
                                if d.pipe.is_some() {
                                    SPLICED.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(())
                        }
                        Ok(m) => {
                            d.pending.extend_from_slice(&buf[m..n]);
                            Ok(())
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            d.pending.extend_from_slice(&buf[..n]);
                            Ok(())
                        }
                        Err(e) => Err(to_err(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(from_err(e)),
            }
        });
        r?;
        #[cfg(target_os = "linux")]
        if d.pipe.is_some() && d.pending.is_empty() {
            // Continue on the splice path (re-entering sets up nothing new).
            return poll_dir(cx, d, from, to, count, ack, server);
        }
    }
}

/// Forwards until both directions are closed or a socket fails (the error
/// says whose: [`Cut::Client`] or [`Cut::Server`]). `initial` holds bytes
/// hyper already read past an upgrade's heads, which go first: to the
/// server (behind the upgrade request) and to the client (behind the
/// server's `101`).
pub(super) async fn forward(
    client: &mut TcpStream,
    server: &mut TcpStream,
    initial: [Vec<u8>; 2],
    counters: &Counters,
    splice: bool,
) -> Result<(), Cut> {
    let [to_server, to_client] = initial;
    let mut c2s = Dir {
        pending: to_server,
        splice_ok: splice,
        ..Dir::default()
    };
    let mut s2c = Dir {
        pending: to_client,
        splice_ok: splice,
        ..Dir::default()
    };
    let mut ack = Piggyback::default();
    let result = poll_fn(|cx| {
        if !c2s.done() {
            let r = poll_dir(
                cx,
                &mut c2s,
                client,
                server,
                &counters.c2s,
                &mut ack,
                ServerEnd::To,
            );
            if let Poll::Ready(Err(e)) = r {
                return Poll::Ready(Err(e));
            }
        }
        if !s2c.done() {
            let r = poll_dir(
                cx,
                &mut s2c,
                server,
                client,
                &counters.s2c,
                &mut ack,
                ServerEnd::From,
            );
            if let Poll::Ready(Err(e)) = r {
                return Poll::Ready(Err(e));
            }
        }
        if c2s.done() && s2c.done() {
            Poll::Ready(Ok(()))
        } else {
            if let Err(e) = ack.poll_expire(cx, server) {
                return Poll::Ready(Err(Cut::Server(e)));
            }
            Poll::Pending
        }
    })
    .await;
    ack.release(server);
    result
}
