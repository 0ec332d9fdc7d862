//! Throughput of the secure envelope: seal + open of one datagram, for 64 B, 1 KiB
//! and 64 KiB payloads, against a plain envelope that only copies (same header
//! and allocations, no cryptography) measured in the same run.
//!
//! Run: `cargo bench -p halyard-membership --bench envelope`
//! (`HALYARD_BENCH_ROUNDS=N` changes the number of rounds, default 5; the median
//! round is reported).

use std::hint::black_box;
use std::time::{Duration, Instant};

use halyard_membership::crypto::{ClusterKey, SecureEnvelope, HEADER_LEN};
use halyard_membership::{Envelope, Error, NodeId, Opened, Result};

/// The baseline: a 28-byte header and a copy of the payload each way.
struct CopyEnvelope {
    local: NodeId,
}

impl Envelope for CopyEnvelope {
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + HEADER_LEN + 16);
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        out[8..12].copy_from_slice(&self.local.0.to_be_bytes());
        out.extend_from_slice(plaintext);
        out
    }

    fn open(&mut self, datagram: &[u8]) -> Result<Opened> {
        if datagram.len() < HEADER_LEN {
            return Err(Error::Malformed("short".into()));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&datagram[8..12]);
        Ok(Opened {
            sender: NodeId(u32::from_be_bytes(id)),
            plaintext: datagram[HEADER_LEN..].to_vec(),
        })
    }
}

fn round(tx: &mut dyn Envelope, rx: &mut dyn Envelope, payload: &[u8], n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let sealed = tx.seal(black_box(payload));
        let opened = rx.open(black_box(&sealed)).expect("opens");
        black_box(opened);
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("HALYARD_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let key = ClusterKey::from_bytes([7u8; 32]);
    let nodes = [NodeId(1), NodeId(2)];
    println!("| payload | packets/round | secure ns/pkt | secure MB/s | copy-only ns/pkt | copy-only MB/s | secure / copy-only |");
    println!("|---|---|---|---|---|---|---|");
    for (size, n) in [(64usize, 400_000u64), (1024, 200_000), (65536, 4_000)] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        // Fresh envelopes per size; the epoch differs so nothing is a replay.
        let mut tx = SecureEnvelope::new(&key, "bench", NodeId(1), size as u64, nodes).unwrap();
        let mut rx = SecureEnvelope::new(&key, "bench", NodeId(2), 1, nodes).unwrap();
        let mut ctx = CopyEnvelope { local: NodeId(1) };
        let mut crx = CopyEnvelope { local: NodeId(2) };
        // Warm-up.
        round(&mut tx, &mut rx, &payload, n / 10);
        round(&mut ctx, &mut crx, &payload, n / 10);
        let mut secure = Vec::new();
        let mut copy = Vec::new();
        for _ in 0..rounds {
            secure.push(round(&mut tx, &mut rx, &payload, n));
            copy.push(round(&mut ctx, &mut crx, &payload, n));
        }
        let (s, c) = (median(secure), median(copy));
        let ns = |d: Duration| d.as_nanos() as f64 / n as f64;
        let mbs = |d: Duration| (size as f64 * n as f64) / d.as_secs_f64() / 1e6;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1}x |",
            if size >= 1024 {
                format!("{} KiB", size / 1024)
            } else {
                format!("{size} B")
            },
            n,
            ns(s),
            mbs(s),
            ns(c),
            mbs(c),
            ns(s) / ns(c)
        );
        assert_eq!(rx.counters().dropped(), 0);
    }
}
