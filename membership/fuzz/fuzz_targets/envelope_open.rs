//! Fuzzes `SecureEnvelope::open`.
//!
//! 1. The raw input is opened as a datagram: it must be rejected (it cannot carry a
//!    valid tag) and must never panic.
//! 2. The input is then read as a script of two-byte operations against authentic
//!    senders, to reach the replay window and the AEAD with well-formed headers:
//!    seal and open, seal and hold back, deliver a held-back datagram (reordering),
//!    replay a datagram, tamper with one byte, restart a sender with a higher or a
//!    lower epoch. Invariants: a fresh datagram of a sender's newest incarnation is
//!    accepted; a datagram accepted once is never accepted again; a tampered one
//!    is never accepted.
#![no_main]

use halyard_membership::crypto::{ClusterKey, SecureEnvelope};
use halyard_membership::{Envelope, NodeId};
use libfuzzer_sys::fuzz_target;

const NODES: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

struct Sender {
    node: u32,
    epoch: u64,
    newest_epoch: u64,
    envelope: SecureEnvelope,
}

fuzz_target!(|data: &[u8]| {
    let key = ClusterKey::from_bytes([0x42; 32]);
    let mut rx = SecureEnvelope::new(&key, "fuzz", NodeId(2), 1, NODES).unwrap();
    assert!(rx.open(data).is_err(), "forged datagram accepted");

    let mut senders: Vec<Sender> = [1u32, 3]
        .into_iter()
        .map(|node| Sender {
            node,
            epoch: 100,
            newest_epoch: 100,
            envelope: SecureEnvelope::new(&key, "fuzz", NodeId(node), 100, NODES).unwrap(),
        })
        .collect();
    // (datagram, accepted once already)
    let mut sent: Vec<(Vec<u8>, bool)> = Vec::new();
    for op in data.chunks_exact(2).take(256) {
        let (code, arg) = (op[0], op[1] as usize);
        match code % 6 {
            0 | 1 => {
                let s = &mut senders[arg % 2];
                let payload = vec![code; arg % 64];
                let datagram = s.envelope.seal(&payload);
                if code % 6 == 0 {
                    let result = rx.open(&datagram);
                    let accepted = result.is_ok();
                    if s.epoch == s.newest_epoch {
                        let opened = result.expect("fresh authentic datagram rejected");
                        assert_eq!(opened.plaintext, payload);
                        assert_eq!(opened.sender, NodeId(s.node));
                    }
                    sent.push((datagram, accepted));
                } else {
                    sent.push((datagram, false));
                }
            }
            2 => {
                if let Some((datagram, accepted)) = pick(&mut sent, arg) {
                    let result = rx.open(datagram);
                    if *accepted {
                        assert!(result.is_err(), "datagram accepted twice");
                    }
                    *accepted |= result.is_ok();
                }
            }
            3 => {
                if let Some((datagram, _)) = pick(&mut sent, arg) {
                    let mut bad = datagram.clone();
                    let pos = (arg * 7 + usize::from(code)) % bad.len();
                    bad[pos] ^= code | 1;
                    assert!(rx.open(&bad).is_err(), "tampered datagram accepted");
                }
            }
            4 => {
                // Restart: a higher epoch, or (misconfiguration) a lower one.
                let s = &mut senders[arg % 2];
                let epoch = if arg & 2 == 0 {
                    s.newest_epoch + 1
                } else {
                    s.epoch.saturating_sub(1)
                };
                s.epoch = epoch;
                s.newest_epoch = s.newest_epoch.max(epoch);
                s.envelope =
                    SecureEnvelope::new(&key, "fuzz", NodeId(s.node), epoch, NODES).unwrap();
            }
            _ => {
                // A truncated copy.
                if let Some((datagram, _)) = pick(&mut sent, arg) {
                    let cut = datagram.len() - 1 - (arg % datagram.len());
                    assert!(
                        rx.open(&datagram[..cut]).is_err(),
                        "truncated datagram accepted"
                    );
                }
            }
        }
    }
});

fn pick(sent: &mut [(Vec<u8>, bool)], arg: usize) -> Option<&mut (Vec<u8>, bool)> {
    if sent.is_empty() {
        None
    } else {
        let n = sent.len();
        sent.get_mut(arg % n)
    }
}
