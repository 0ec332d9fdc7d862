//! The secure envelope: authentication, cluster and node checks, replay
//! protection, key files.

use halyard_membership::crypto::{
    cluster_name_hash, next_epoch, ClusterKey, EnvelopeCounters, SecureEnvelope, HEADER_LEN,
    KEY_LEN, OVERHEAD, REPLAY_WINDOW,
};
use halyard_membership::{Envelope, Error, NodeId};
use proptest::prelude::*;
use rand::SeedableRng;

const NODES: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

fn key(seed: u64) -> ClusterKey {
    ClusterKey::generate(&mut rand::rngs::StdRng::seed_from_u64(seed))
}

fn envelope(key: &ClusterKey, local: u32, epoch: u64) -> SecureEnvelope {
    SecureEnvelope::new(key, "alpha", NodeId(local), epoch, NODES).unwrap()
}

/// Node 1 (sender, epoch 5) and node 2 (receiver) with the same key.
fn pair() -> (SecureEnvelope, SecureEnvelope) {
    let k = key(1);
    (envelope(&k, 1, 5), envelope(&k, 2, 9))
}

#[test]
fn round_trip() {
    let (mut a, mut b) = pair();
    for payload in [&b""[..], b"x", &[0xAB; 1500][..], &vec![7u8; 70_000][..]] {
        let sealed = a.seal(payload);
        assert_eq!(sealed.len(), payload.len() + OVERHEAD);
        if payload.len() > 16 {
            assert!(
                !sealed.windows(16).any(|w| w == &payload[..16]),
                "plaintext visible on the wire"
            );
        }
        let opened = b.open(&sealed).unwrap();
        assert_eq!(opened.sender, NodeId(1));
        assert_eq!(opened.plaintext, payload);
    }
    // Both directions, and a node may open its own datagrams.
    let sealed = b.seal(b"reply");
    assert_eq!(a.open(&sealed).unwrap().plaintext, b"reply");
    let own = a.seal(b"self");
    assert_eq!(a.open(&own).unwrap().sender, NodeId(1));
    assert_eq!(
        b.counters(),
        EnvelopeCounters {
            sealed: 1,
            opened: 4,
            ..Default::default()
        }
    );
}

#[test]
fn same_key_same_plaintext_gives_different_ciphertexts() {
    let (mut a, _) = pair();
    let x = a.seal(b"hello");
    let y = a.seal(b"hello");
    assert_ne!(x[HEADER_LEN..], y[HEADER_LEN..]);
    // Two senders with the same epoch and counter still use different nonces.
    let k = key(1);
    let (mut n1, mut n3) = (envelope(&k, 1, 5), envelope(&k, 3, 5));
    assert_ne!(
        n1.seal(b"hello")[HEADER_LEN..],
        n3.seal(b"hello")[HEADER_LEN..]
    );
}

#[test]
fn wrong_key_is_unauthenticated() {
    let mut a = envelope(&key(1), 1, 1);
    let mut b = envelope(&key(2), 2, 1);
    let sealed = a.seal(b"secret");
    assert!(matches!(b.open(&sealed), Err(Error::Unauthenticated { from }) if from == "node 1"));
    assert_eq!(b.counters().unauthenticated, 1);
    assert_eq!(b.counters().opened, 0);
}

#[test]
fn every_tampered_byte_is_rejected() {
    let (mut a, mut b) = pair();
    let sealed = a.seal(b"configuration change: members 1 2 3");
    for pos in 0..sealed.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = sealed.clone();
            bad[pos] ^= flip;
            let err = b.open(&bad).expect_err("tampered datagram accepted");
            // Header fields fail their own check; anything else fails the tag.
            match pos {
                0..=3 => assert!(matches!(err, Error::Malformed(_)), "pos {pos}: {err}"),
                4..=7 => assert!(matches!(err, Error::ForeignCluster(_)), "pos {pos}: {err}"),
                8..=11 => assert!(
                    matches!(err, Error::UnknownNode(_) | Error::Unauthenticated { .. }),
                    "pos {pos}: {err}"
                ),
                _ => assert!(
                    matches!(err, Error::Unauthenticated { .. }),
                    "pos {pos}: {err}"
                ),
            }
        }
    }
    // Tampering moved no replay state: the original is still accepted, once.
    assert!(b.open(&sealed).is_ok());
    assert!(matches!(b.open(&sealed), Err(Error::Replayed(NodeId(1)))));
    let c = b.counters();
    assert_eq!(c.opened, 1);
    assert_eq!(c.dropped(), 3 * sealed.len() as u64 + 1);
}

#[test]
fn truncated_is_rejected() {
    let (mut a, mut b) = pair();
    let sealed = a.seal(b"0123456789abcdef");
    for len in 0..sealed.len() {
        let err = b
            .open(&sealed[..len])
            .expect_err("truncated datagram accepted");
        if len < OVERHEAD {
            assert!(matches!(err, Error::Malformed(_)), "len {len}: {err}");
        } else {
            assert!(
                matches!(err, Error::Unauthenticated { .. }),
                "len {len}: {err}"
            );
        }
    }
    // Extended is as bad as truncated.
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(matches!(
        b.open(&longer),
        Err(Error::Unauthenticated { .. })
    ));
    assert!(b.open(&sealed).is_ok());
}

#[test]
fn foreign_cluster_is_rejected() {
    let k = key(1);
    let mut other = SecureEnvelope::new(&k, "beta", NodeId(1), 1, NODES).unwrap();
    let mut b = envelope(&k, 2, 1);
    let sealed = other.seal(b"hi");
    match b.open(&sealed) {
        Err(Error::ForeignCluster(hash)) => assert_eq!(hash, cluster_name_hash("beta")),
        other => panic!("expected ForeignCluster, got {other:?}"),
    }
    assert_eq!(b.counters().foreign_cluster, 1);
    // Even with the hash forged to ours, the per-cluster key derivation rejects it.
    let mut forged = sealed.clone();
    forged[4..8].copy_from_slice(&cluster_name_hash("alpha").to_be_bytes());
    assert!(matches!(
        b.open(&forged),
        Err(Error::Unauthenticated { .. })
    ));
}

#[test]
fn unknown_node_is_rejected() {
    let k = key(1);
    let mut stranger =
        SecureEnvelope::new(&k, "alpha", NodeId(7), 1, [NodeId(1), NodeId(7)]).unwrap();
    let mut b = envelope(&k, 2, 1);
    assert!(matches!(
        b.open(&stranger.seal(b"hi")),
        Err(Error::UnknownNode(NodeId(7)))
    ));
    assert_eq!(b.counters().unknown_node, 1);
    // Claiming to be a known node with a valid datagram of another fails the tag.
    let mut sealed = stranger.seal(b"hi");
    sealed[8..12].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        b.open(&sealed),
        Err(Error::Unauthenticated { .. })
    ));
}

#[test]
fn replay_same_packet_twice() {
    let (mut a, mut b) = pair();
    let sealed = a.seal(b"token");
    assert!(b.open(&sealed).is_ok());
    assert!(matches!(b.open(&sealed), Err(Error::Replayed(NodeId(1)))));
    assert!(matches!(b.open(&sealed), Err(Error::Replayed(NodeId(1)))));
    assert_eq!(b.counters().replayed, 2);
}

#[test]
fn reordering_inside_the_window_is_accepted_once_each() {
    let (mut a, mut b) = pair();
    let packets: Vec<Vec<u8>> = (0..64).map(|i| a.seal(&[i as u8])).collect();
    // Deliver in a scrambled order, each twice.
    let order: Vec<usize> = (0..64).map(|i| (i * 37 + 11) % 64).collect();
    for &i in &order {
        assert_eq!(b.open(&packets[i]).unwrap().plaintext, [i as u8]);
    }
    for &i in &order {
        assert!(matches!(b.open(&packets[i]), Err(Error::Replayed(_))));
    }
    assert_eq!(b.counters().opened, 64);
}

#[test]
fn old_counter_outside_the_window_is_rejected() {
    let (mut a, mut b) = pair();
    let first = a.seal(b"first");
    let second = a.seal(b"second");
    assert!(b.open(&second).is_ok());
    for _ in 0..REPLAY_WINDOW {
        let p = a.seal(b"filler");
        assert!(b.open(&p).is_ok());
    }
    // `first` was never delivered, but it is now REPLAY_WINDOW + 1 behind.
    assert!(matches!(b.open(&first), Err(Error::Replayed(NodeId(1)))));
}

#[test]
fn restart_with_new_epoch_is_accepted_and_old_epoch_rejected() {
    let k = key(3);
    let mut b = envelope(&k, 2, 1);
    let mut a_old = envelope(&k, 1, 10);
    let old_packets: Vec<Vec<u8>> = (0..5).map(|_| a_old.seal(b"old life")).collect();
    assert!(b.open(&old_packets[0]).is_ok());
    assert!(b.open(&old_packets[1]).is_ok());
    // Node 1 restarts with a higher epoch: its counter restarts at 0 and is accepted.
    let mut a_new = envelope(&k, 1, 11);
    let fresh = a_new.seal(b"new life");
    assert_eq!(b.open(&fresh).unwrap().plaintext, b"new life");
    assert!(b.open(&a_new.seal(b"more")).is_ok());
    // Packets of the old incarnation, even never-seen ones, are now replays.
    for p in &old_packets {
        assert!(matches!(b.open(p), Err(Error::Replayed(NodeId(1)))));
    }
    assert!(matches!(b.open(&fresh), Err(Error::Replayed(NodeId(1)))));
    // An incarnation started with a lower epoch (a misconfigured node) is refused.
    let mut a_back = envelope(&k, 1, 3);
    assert!(matches!(
        b.open(&a_back.seal(b"x")),
        Err(Error::Replayed(NodeId(1)))
    ));
}

#[test]
fn construction_errors_name_the_field() {
    let k = key(1);
    match SecureEnvelope::new(&k, "alpha", NodeId(9), 1, NODES) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "nodelist"),
        other => panic!("{other:?}"),
    }
    match SecureEnvelope::new(&k, "", NodeId(1), 1, NODES) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "totem.cluster_name"),
        other => panic!("{other:?}"),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("halyard-crypto-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn key_file_save_load() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("key");
    let path = dir.join("authkey");
    let k = key(42);
    k.save(&path, false).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read(&path).unwrap().len(), KEY_LEN);
    let loaded = ClusterKey::load(&path).unwrap();
    assert_eq!(loaded.as_bytes(), k.as_bytes());
    assert_eq!(format!("{loaded:?}"), "ClusterKey(<redacted>)");
    // No silent replacement of a cluster's key.
    let err = key(43).save(&path, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    key(43).save(&path, true).unwrap();
    assert_ne!(ClusterKey::load(&path).unwrap().as_bytes(), k.as_bytes());
    // Exact length, and the error names the file.
    for len in [0usize, KEY_LEN - 1, KEY_LEN + 1, 256] {
        let bad = dir.join(format!("short-{len}"));
        std::fs::write(&bad, vec![1u8; len]).unwrap();
        match ClusterKey::load(&bad) {
            Err(Error::Config { field, reason }) => {
                assert_eq!(field, "totem.keyfile");
                assert!(reason.contains(&bad.display().to_string()), "{reason}");
                assert!(reason.contains(&format!("is {len} bytes")), "{reason}");
            }
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    let missing = dir.join("missing");
    let err = ClusterKey::load(&missing).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    // Two generated keys differ; the OS RNG works.
    assert_ne!(
        ClusterKey::generate_os().unwrap().as_bytes(),
        ClusterKey::generate_os().unwrap().as_bytes()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn epoch_file_increases() {
    let dir = temp_dir("epoch");
    let path = dir.join("epoch");
    assert_eq!(next_epoch(&path).unwrap(), 1);
    assert_eq!(next_epoch(&path).unwrap(), 2);
    std::fs::write(&path, "41\n").unwrap();
    assert_eq!(next_epoch(&path).unwrap(), 42);
    std::fs::write(&path, "garbage").unwrap();
    assert!(matches!(
        next_epoch(&path),
        Err(Error::Config {
            field: "epoch file",
            ..
        })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn open_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (_, mut b) = pair();
        let before = b.counters();
        prop_assert!(b.open(&bytes).is_err());
        prop_assert_eq!(b.counters().dropped(), before.dropped() + 1);
    }

    #[test]
    fn open_never_panics_on_mutated_datagrams(
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let (mut a, mut b) = pair();
        let mut sealed = a.seal(&payload);
        let original = sealed.clone();
        for (pos, value) in edits {
            let i = pos % sealed.len();
            sealed[i] = value;
        }
        sealed.truncate(cut % (sealed.len() + 1));
        match b.open(&sealed) {
            Ok(opened) => {
                prop_assert_eq!(&sealed, &original);
                prop_assert_eq!(opened.plaintext, payload);
            }
            Err(_) => prop_assert_ne!(&sealed, &original),
        }
    }
}

#[test]
fn keygen_binary_writes_a_loadable_key_and_refuses_to_overwrite() {
    let dir = temp_dir("keygen");
    let path = dir.join("authkey");
    let bin = env!("CARGO_BIN_EXE_halyard-keygen");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let out = run(&[path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let first = ClusterKey::load(&path).unwrap();
    let out = run(&[path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{out:?}"
    );
    assert_eq!(
        ClusterKey::load(&path).unwrap().as_bytes(),
        first.as_bytes()
    );
    let out = run(&["--force", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_ne!(
        ClusterKey::load(&path).unwrap().as_bytes(),
        first.as_bytes()
    );
    assert!(!run(&["--bogus"]).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
