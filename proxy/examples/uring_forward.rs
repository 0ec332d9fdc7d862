//! An io_uring TCP forwarder, to measure what an io_uring data path could
//! save against the tokio/epoll path of `halyard-proxy` (see BENCHMARKS.md
//! `## proxy`). It is an experiment, not part of the proxy: round-robin over
//! fixed backends per connection, no health, no timeouts, blocking connect.
//!
//! One thread, one ring. Every connection keeps one `recv` in flight per
//! direction (into its own 16 KiB buffer); a completed `recv` becomes a
//! `send` of those bytes to the peer, a completed `send` re-arms the `recv`.
//! All new submissions and all reaped completions of a loop turn share one
//! `io_uring_enter`, whatever the number of connections.
//!
//! Result (2026-11-26, kernel 6.18, wrk -t1 128 B responses through nginx,
//! 5 s runs interleaved with halyard-tcp and haproxy-tcp): user CPU falls to
//! ~0.2 us/request, but the kernel time does not: median 17.2 us/req at c=50
//! (halyard-tcp on tokio 13.3, HAProxy 16.4) and 14.8 at c=200 (15.0, 15.9).
//! perf: io_send -> tcp_sendmsg 48%, io_recv -> tcp_recvmsg 33%, loopback
//! softirq 33%, task_work 31%: the same TCP work as with epoll, plus io_uring's
//! own. No win, so the proxy keeps the tokio path.
//!
//! ```text
//! cargo run --release -p halyard-proxy --example uring_forward -- \
//!     127.0.0.1:28189 127.0.0.1:18081,127.0.0.1:18082,127.0.0.1:18083
//! ```
#![allow(unsafe_code)] // io_uring submissions reference buffers the kernel writes to: see SAFETY below.

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    imp::run()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring_forward: Linux only");
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    use io_uring::{opcode, squeue, types, IoUring};

    const BUF: usize = 16 * 1024;
    const ACCEPT: u64 = u64::MAX;

    /// One direction: bytes read from `from`, being written to the peer.
    struct Dir {
        buf: Box<[u8]>,
        /// Bytes in `buf` (0: a recv is in flight).
        len: usize,
        /// Bytes of `buf[..len]` already sent.
        sent: usize,
    }

    struct Pair {
        /// 0 = client, 1 = server.
        socks: [TcpStream; 2],
        /// Direction d reads `socks[d]` and writes `socks[1 - d]`.
        dirs: [Dir; 2],
        /// Operations in flight: the buffers live until this is 0.
        inflight: u32,
        closing: bool,
    }

    fn ud(conn: usize, dir: usize, send: bool) -> u64 {
        ((conn as u64) << 2) | ((dir as u64) << 1) | u64::from(send)
    }

    fn recv_entry(p: &mut Pair, conn: usize, d: usize) -> squeue::Entry {
        let fd = types::Fd(p.socks[d].as_raw_fd());
        let buf = p.dirs[d].buf.as_mut_ptr();
        opcode::Recv::new(fd, buf, BUF as u32)
            .build()
            .user_data(ud(conn, d, false))
    }

    fn send_entry(p: &mut Pair, conn: usize, d: usize) -> squeue::Entry {
        let fd = types::Fd(p.socks[1 - d].as_raw_fd());
        let dir = &p.dirs[d];
        // SAFETY (pointer arithmetic): sent < len <= BUF.
        let buf = dir.buf[dir.sent..dir.len].as_ptr();
        opcode::Send::new(fd, buf, (dir.len - dir.sent) as u32)
            .build()
            .user_data(ud(conn, d, true))
    }

    pub fn run() -> io::Result<()> {
        let mut args = std::env::args().skip(1);
        let (Some(listen), Some(backends)) = (args.next(), args.next()) else {
            eprintln!("usage: uring_forward LISTEN_ADDR BACKEND[,BACKEND...]");
            std::process::exit(2);
        };
        let listen: SocketAddr = listen.parse().map_err(io::Error::other)?;
        let backends: Vec<SocketAddr> = backends
            .split(',')
            .map(|b| b.parse().map_err(io::Error::other))
            .collect::<io::Result<_>>()?;
        let listener = TcpListener::bind(listen)?;
        let mut ring = IoUring::new(4096)?;
        let mut conns: Vec<Option<Pair>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut next_backend = 0usize;
        let mut queue: Vec<squeue::Entry> = vec![opcode::Accept::new(
            types::Fd(listener.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .build()
        .user_data(ACCEPT)];
        loop {
            {
                let mut sq = ring.submission();
                for e in queue.drain(..) {
                    // SAFETY: every entry points into a `Pair`'s boxed buffer
                    // (or at nothing, for accept). A pair is dropped only when
                    // its `inflight` count is 0, i.e. after the kernel
                    // completed every operation that references its buffers,
                    // and boxed buffers never move while the Vec of pairs grows.
                    while unsafe { sq.push(&e) }.is_err() {
                        sq.sync();
                        drop(sq);
                        ring.submit()?;
                        sq = ring.submission();
                    }
                }
            }
            ring.submit_and_wait(1)?;
            let done: Vec<(u64, i32)> = ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (data, res) in done {
                if data == ACCEPT {
                    queue.push(
                        opcode::Accept::new(
                            types::Fd(listener.as_raw_fd()),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        )
                        .build()
                        .user_data(ACCEPT),
                    );
                    if res < 0 {
                        continue;
                    }
                    // SAFETY: the kernel just handed us this new descriptor.
                    let client: TcpStream = unsafe { std::os::fd::FromRawFd::from_raw_fd(res) };
                    let b = backends[next_backend % backends.len()];
                    next_backend += 1;
                    let Ok(server) = TcpStream::connect(b) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let dir = || Dir {
                        buf: vec![0u8; BUF].into_boxed_slice(),
                        len: 0,
                        sent: 0,
                    };
                    let mut p = Pair {
                        socks: [client, server],
                        dirs: [dir(), dir()],
                        inflight: 2,
                        closing: false,
                    };
                    let idx = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    queue.push(recv_entry(&mut p, idx, 0));
                    queue.push(recv_entry(&mut p, idx, 1));
                    conns[idx] = Some(p);
                    continue;
                }
                let idx = (data >> 2) as usize;
                let d = ((data >> 1) & 1) as usize;
                let is_send = data & 1 == 1;
                let Some(p) = conns.get_mut(idx).and_then(Option::as_mut) else {
                    continue;
                };
                p.inflight -= 1;
                if res <= 0 || p.closing {
                    // EOF or error on either side: close the pair (no half-close here).
                    if !p.closing {
                        p.closing = true;
                        let _ = p.socks[0].shutdown(Shutdown::Both);
                        let _ = p.socks[1].shutdown(Shutdown::Both);
                    }
                    if p.inflight == 0 {
                        conns[idx] = None;
                        free.push(idx);
                    }
                    continue;
                }
                let n = res as usize;
                if is_send {
                    p.dirs[d].sent += n;
                    if p.dirs[d].sent < p.dirs[d].len {
                        queue.push(send_entry(p, idx, d));
                    } else {
                        p.dirs[d].len = 0;
                        p.dirs[d].sent = 0;
                        queue.push(recv_entry(p, idx, d));
                    }
                } else {
                    p.dirs[d].len = n;
                    p.dirs[d].sent = 0;
                    queue.push(send_entry(p, idx, d));
                }
                p.inflight += 1;
            }
        }
    }
}
