//! The secure transport: every datagram authenticated and encrypted with a
//! pre-shared cluster key (Corosync's `authkey`), with replay protection.
//!
//! # Datagram layout
//!
//! ```text
//!  offset 0      2     3      4            8           12              20              28
//!         +------+-----+------+------------+-----------+---------------+---------------+------------+-----+
//!         | "HY" | 1   | 0    | cluster    | sender    | epoch         | counter       | ciphertext | tag |
//!         | magic| ver | flags| name hash  | node id   | (incarnation) | (in epoch)    | len(plain) | 16  |
//!         +------+-----+------+------------+-----------+---------------+---------------+------------+-----+
//!         \____ clear text, authenticated as associated data (28 bytes) ______________/
//! ```
//!
//! All integers are big-endian. The overhead is [`OVERHEAD`] = 44 bytes.
//!
//! # Cipher, keys and nonces
//!
//! * AEAD: **XChaCha20-Poly1305** (RustCrypto `chacha20poly1305`), 256-bit key,
//!   192-bit nonce, 128-bit tag.
//! * The AEAD key is not the cluster key itself but
//!   `HKDF-SHA256(ikm = cluster key, salt = "halyard-membership/envelope/v1",
//!   info = cluster name)`: two clusters that (wrongly) share one key file still
//!   encrypt under different keys, so their nonces can never collide.
//! * The nonce is **deterministic** and built from the header, so it costs no bytes
//!   on the wire: `sender (4) ‖ epoch (8) ‖ counter (8) ‖ cluster hash (4)` = 24
//!   bytes. All nodes share one key; the sender id in the nonce keeps their nonce
//!   spaces disjoint. Within one sender, `(epoch, counter)` never repeats as long
//!   as **the epoch given to [`SecureEnvelope::new`] is strictly greater on every
//!   start of that node** (the counter restarts at 0 in each envelope). A repeated
//!   `(sender, epoch, counter)` would reuse a nonce, which breaks both
//!   confidentiality and authenticity, so the epoch is not a detail: pass a
//!   persisted incarnation number incremented and synced to disk before the
//!   envelope is built (see [`next_epoch`]), or a time-derived value such as UNIX
//!   milliseconds when the clock is known never to step back. Node ids must be
//!   unique in the cluster (as Corosync requires anyway).
//! * There is no clock and no RNG inside the envelope.
//!
//! # What `open` checks, in order
//!
//! 1. length and `magic` / `version` / `flags` → [`Error::Malformed`];
//! 2. cluster name hash → [`Error::ForeignCluster`];
//! 3. sender in the configured node list → [`Error::UnknownNode`];
//! 4. freshness (without touching state) → [`Error::Replayed`];
//! 5. AEAD decryption with the header as associated data →
//!    [`Error::Unauthenticated`] (wrong key, any flipped bit, truncation);
//! 6. only then is the sender's replay state updated and the plaintext returned.
//!
//! Every drop is counted by reason ([`SecureEnvelope::counters`]). Forged packets
//! cannot move replay state, because state changes only after authentication.
//!
//! # Replay protection
//!
//! Per sender: the highest epoch seen, and in it a sliding window of
//! [`REPLAY_WINDOW`] counters (a bitmap, RFC 6479 style). A packet is accepted
//! once if its counter is above the highest seen or inside the window and not yet
//! seen; older counters and repeats are replays. A packet with a *newer* epoch
//! (the sender restarted) resets the window; a packet with an *older* epoch than
//! one already seen is a replay.
//!
//! A node accepts its own datagrams like any member's (the sender id is
//! authenticated); the ring engine decides what to do with them.
//!
//! Limitation: replay state is in memory. A receiver that restarts accepts, from
//! each sender, the first authentic epoch it sees; a recorded packet from an older
//! incarnation of a sender could be replayed to it until it hears that sender's
//! current epoch (normally within one token rotation). The ring engine tolerates
//! such stale messages (old ring ids are ignored), as it tolerates any duplicate.
//!
//! # Cost
//!
//! One seal + open of a 1 KiB datagram takes a few microseconds on one core (see
//! `BENCHMARKS.md`, "membership: secure transport and quorum";
//! `cargo bench -p halyard-membership --bench envelope`).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::envelope::{Envelope, Opened};
use crate::{Error, NodeId, Result};

/// Length of a cluster key file, in bytes.
pub const KEY_LEN: usize = 32;
/// The first two bytes of every sealed datagram.
pub const MAGIC: [u8; 2] = *b"HY";
/// Envelope format version.
pub const VERSION: u8 = 1;
/// Length of the clear-text header.
pub const HEADER_LEN: usize = 28;
/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed datagram adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Counters accepted out of order behind the highest one seen, per sender.
pub const REPLAY_WINDOW: u64 = 1024;

const HKDF_SALT: &[u8] = b"halyard-membership/envelope/v1";
const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// The pre-shared cluster key (Corosync's `authkey`): 32 random bytes, wiped from
/// memory on drop, never printed.
#[derive(Clone)]
pub struct ClusterKey([u8; KEY_LEN]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

impl Drop for ClusterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ClusterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        ClusterKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A new key from the given cryptographic RNG (inject a seeded one in tests).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        ClusterKey(bytes)
    }

    /// A new key from the operating system's RNG (`getrandom`), for `halyard-keygen`.
    pub fn generate_os() -> Result<Self> {
        let mut bytes = [0u8; KEY_LEN];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| Error::Io {
                context: "reading the operating system's random number generator".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(ClusterKey(bytes))
    }

    /// Reads a key file: exactly [`KEY_LEN`] raw bytes. Warns (but loads) when the
    /// file is readable by group or others.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut data = std::fs::read(path).map_err(|source| Error::Io {
            context: format!("reading cluster key {}", path.display()),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format_args!("{mode:o}"),
                        "cluster key is readable by group or others; chmod 600 it"
                    );
                }
            }
        }
        if data.len() != KEY_LEN {
            let found = data.len();
            data.zeroize();
            return Err(Error::Config {
                field: "totem.keyfile",
                reason: format!(
                    "{}: is {found} bytes, but a halyard cluster key is exactly {KEY_LEN} bytes \
                     (a Corosync authkey is not one); generate one with `halyard-keygen {}` and \
                     copy it to every node",
                    path.display(),
                    path.display()
                ),
            });
        }
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(&data);
        data.zeroize();
        Ok(ClusterKey(bytes))
    }

    /// Writes the key file with mode 0600 (atomically: a temporary file in the same
    /// directory, then a rename). Refuses to replace an existing file unless
    /// `overwrite`: replacing the key of a running cluster splits it.
    pub fn save(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let path = path.as_ref();
        let io = |what: &str, source| Error::Io {
            context: format!("{what} cluster key {}", path.display()),
            source,
        };
        if !overwrite && path.exists() {
            return Err(Error::Io {
                context: format!("writing cluster key {}", path.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the file already exists; remove it first (or pass --force to halyard-keygen)",
                ),
            });
        }
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let result = (|| {
            let mut file = options.open(&tmp)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            file.write_all(&self.0)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("writing", e));
        }
        Ok(())
    }
}

/// Reads the incarnation number stored at `path` (0 if the file does not exist),
/// stores it plus one (synced to disk) and returns the new value: a strictly
/// increasing epoch for [`SecureEnvelope::new`] across restarts.
pub fn next_epoch(path: impl AsRef<Path>) -> Result<u64> {
    let path = path.as_ref();
    let previous = match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| Error::Config {
            field: "epoch file",
            reason: format!(
                "{}: does not hold a number ({e}); remove it only if the cluster key is \
                 replaced at the same time",
                path.display()
            ),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => {
            return Err(Error::Io {
                context: format!("reading epoch file {}", path.display()),
                source,
            })
        }
    };
    let next = previous.checked_add(1).ok_or_else(|| Error::Config {
        field: "epoch file",
        reason: format!(
            "{}: the epoch is exhausted; generate a new cluster key",
            path.display()
        ),
    })?;
    let write = || -> std::io::Result<()> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{next}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|source| Error::Io {
        context: format!("writing epoch file {}", path.display()),
        source,
    })?;
    Ok(next)
}

/// The 32-bit hash of a cluster name carried in every header: the first four bytes
/// of SHA-256 of the name, big-endian.
pub fn cluster_name_hash(cluster_name: &str) -> u32 {
    let digest = Sha256::digest(cluster_name.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Datagrams dropped by reason, and accepted ones (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvelopeCounters {
    /// Datagrams sealed.
    pub sealed: u64,
    /// Datagrams that passed every check.
    pub opened: u64,
    /// Dropped: authentication failed (wrong key, tampered, truncated).
    pub unauthenticated: u64,
    /// Dropped: sender not in the node list.
    pub unknown_node: u64,
    /// Dropped: another cluster's name hash.
    pub foreign_cluster: u64,
    /// Dropped: already seen, too old, or from an older incarnation.
    pub replayed: u64,
    /// Dropped: too short, bad magic, unknown version or flags.
    pub malformed: u64,
}

impl EnvelopeCounters {
    /// All drops together.
    pub fn dropped(&self) -> u64 {
        self.unauthenticated
            + self.unknown_node
            + self.foreign_cluster
            + self.replayed
            + self.malformed
    }
}

/// Replay state of one sender: its highest epoch, the highest counter in it and a
/// ring bitmap of the last [`REPLAY_WINDOW`] counters (bit `c % REPLAY_WINDOW`).
#[derive(Debug, Clone)]
struct ReplayWindow {
    epoch: u64,
    highest: u64,
    seen: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    fn new(epoch: u64, counter: u64) -> Self {
        let mut w = ReplayWindow {
            epoch,
            highest: counter,
            seen: [0; WINDOW_WORDS],
        };
        w.set(counter);
        w
    }

    fn bit(counter: u64) -> (usize, u64) {
        let i = counter % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn set(&mut self, counter: u64) {
        let (word, mask) = Self::bit(counter);
        self.seen[word] |= mask;
    }

    /// Whether `(epoch, counter)` would be accepted. No state change.
    fn is_fresh(&self, epoch: u64, counter: u64) -> bool {
        if epoch != self.epoch {
            return epoch > self.epoch;
        }
        if counter > self.highest {
            return true;
        }
        if self.highest - counter >= REPLAY_WINDOW {
            return false;
        }
        let (word, mask) = Self::bit(counter);
        self.seen[word] & mask == 0
    }

    /// Records an accepted `(epoch, counter)` (after [`Self::is_fresh`]).
    fn accept(&mut self, epoch: u64, counter: u64) {
        if epoch > self.epoch {
            *self = ReplayWindow::new(epoch, counter);
            return;
        }
        if counter > self.highest {
            let advance = counter - self.highest;
            if advance >= REPLAY_WINDOW {
                self.seen = [0; WINDOW_WORDS];
            } else {
                // Forget the counters that fall out of the window; they share bits
                // with the new ones.
                for c in self.highest + 1..counter {
                    let (word, mask) = Self::bit(c);
                    self.seen[word] &= !mask;
                }
            }
            self.highest = counter;
            let (word, mask) = Self::bit(counter);
            self.seen[word] = (self.seen[word] & !mask) | mask;
        } else {
            self.set(counter);
        }
    }
}

/// The parsed clear-text header.
#[derive(Debug, Clone, Copy)]
struct Header {
    cluster: u32,
    sender: NodeId,
    epoch: u64,
    counter: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&MAGIC);
        h[2] = VERSION;
        h[3] = 0;
        h[4..8].copy_from_slice(&self.cluster.to_be_bytes());
        h[8..12].copy_from_slice(&self.sender.0.to_be_bytes());
        h[12..20].copy_from_slice(&self.epoch.to_be_bytes());
        h[20..28].copy_from_slice(&self.counter.to_be_bytes());
        h
    }

    fn decode(datagram: &[u8]) -> Result<Header> {
        if datagram.len() < OVERHEAD {
            return Err(Error::Malformed(format!(
                "sealed datagram of {} bytes is shorter than the {OVERHEAD}-byte envelope",
                datagram.len()
            )));
        }
        let h = &datagram[..HEADER_LEN];
        if h[0..2] != MAGIC {
            return Err(Error::Malformed(
                "not a halyard datagram (bad magic)".into(),
            ));
        }
        if h[2] != VERSION {
            return Err(Error::Malformed(format!(
                "envelope version {} is not supported (this node speaks {VERSION})",
                h[2]
            )));
        }
        if h[3] != 0 {
            return Err(Error::Malformed(format!(
                "unknown envelope flags {:#04x}",
                h[3]
            )));
        }
        let be32 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&h[r]);
            u32::from_be_bytes(b)
        };
        let be64 = |r: std::ops::Range<usize>| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[r]);
            u64::from_be_bytes(b)
        };
        Ok(Header {
            cluster: be32(4..8),
            sender: NodeId(be32(8..12)),
            epoch: be64(12..20),
            counter: be64(20..28),
        })
    }

    fn nonce(&self) -> XNonce {
        let mut n = [0u8; 24];
        n[0..4].copy_from_slice(&self.sender.0.to_be_bytes());
        n[4..12].copy_from_slice(&self.epoch.to_be_bytes());
        n[12..20].copy_from_slice(&self.counter.to_be_bytes());
        n[20..24].copy_from_slice(&self.cluster.to_be_bytes());
        XNonce::from(n)
    }
}

/// The authenticated, encrypted [`Envelope`] of one node (see the module docs).
pub struct SecureEnvelope {
    cipher: XChaCha20Poly1305,
    cluster: u32,
    local: NodeId,
    epoch: u64,
    next_counter: u64,
    peers: BTreeMap<NodeId, Option<ReplayWindow>>,
    counters: EnvelopeCounters,
}

impl fmt::Debug for SecureEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureEnvelope")
            .field("cluster", &format_args!("{:#010x}", self.cluster))
            .field("local", &self.local)
            .field("epoch", &self.epoch)
            .field("next_counter", &self.next_counter)
            .field("nodes", &self.peers.keys().collect::<Vec<_>>())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SecureEnvelope {
    /// The envelope of node `local` in cluster `cluster_name`, accepting datagrams
    /// from `nodes` (the configured node list; `local` must be in it).
    ///
    /// `epoch` must be strictly greater than on any previous start of `local` with
    /// this key and cluster name (see the module docs: nonce uniqueness depends on
    /// it). Use [`next_epoch`] or a clock value that never steps back.
    pub fn new(
        key: &ClusterKey,
        cluster_name: &str,
        local: NodeId,
        epoch: u64,
        nodes: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self> {
        if cluster_name.is_empty() {
            return Err(Error::Config {
                field: "totem.cluster_name",
                reason: "is empty; every node of a cluster needs the same non-empty name".into(),
            });
        }
        let peers: BTreeMap<NodeId, Option<ReplayWindow>> =
            nodes.into_iter().map(|n| (n, None)).collect();
        if !peers.contains_key(&local) {
            return Err(Error::Config {
                field: "nodelist",
                reason: format!("this node ({local}) is not in the node list; add it"),
            });
        }
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), key.as_bytes());
        let mut okm = [0u8; 32];
        hk.expand(cluster_name.as_bytes(), &mut okm)
            .map_err(|_| Error::Config {
                field: "totem.keyfile",
                reason: "key derivation failed".into(),
            })?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&okm));
        okm.zeroize();
        Ok(SecureEnvelope {
            cipher,
            cluster: cluster_name_hash(cluster_name),
            local,
            epoch,
            next_counter: 0,
            peers,
            counters: EnvelopeCounters::default(),
        })
    }

    /// Drops by reason and totals so far.
    pub fn counters(&self) -> EnvelopeCounters {
        self.counters
    }

    /// This node.
    pub fn local(&self) -> NodeId {
        self.local
    }

    /// This node's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The hash of the cluster name carried in every header.
    pub fn cluster_hash(&self) -> u32 {
        self.cluster
    }

    fn check(&self, datagram: &[u8]) -> Result<(Header, Vec<u8>)> {
        let header = Header::decode(datagram)?;
        if header.cluster != self.cluster {
            return Err(Error::ForeignCluster(header.cluster));
        }
        let Some(window) = self.peers.get(&header.sender) else {
            return Err(Error::UnknownNode(header.sender));
        };
        if let Some(w) = window {
            if !w.is_fresh(header.epoch, header.counter) {
                return Err(Error::Replayed(header.sender));
            }
        }
        let body = &datagram[HEADER_LEN..];
        let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
        let mut plaintext = ciphertext.to_vec();
        self.cipher
            .decrypt_in_place_detached(
                &header.nonce(),
                &datagram[..HEADER_LEN],
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| Error::Unauthenticated {
                from: header.sender.to_string(),
            })?;
        Ok((header, plaintext))
    }
}

impl Envelope for SecureEnvelope {
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let header = Header {
            cluster: self.cluster,
            sender: self.local,
            epoch: self.epoch,
            counter: self.next_counter,
        };
        // 2^64 datagrams per epoch is out of reach (585 000 years at 10^6/s); if it
        // ever happened, stopping beats reusing a nonce.
        self.next_counter = self
            .next_counter
            .checked_add(1)
            .expect("envelope counter exhausted: restart the node with a new epoch");
        let head = header.encode();
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&head);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&header.nonce(), &head, &mut out[HEADER_LEN..])
            .expect("XChaCha20-Poly1305 encrypts any datagram that fits in memory");
        out.extend_from_slice(&tag);
        self.counters.sealed += 1;
        out
    }

    fn open(&mut self, datagram: &[u8]) -> Result<Opened> {
        match self.check(datagram) {
            Ok((header, plaintext)) => {
                let slot = self
                    .peers
                    .get_mut(&header.sender)
                    .expect("check() accepted only configured senders");
                match slot {
                    Some(w) => w.accept(header.epoch, header.counter),
                    None => *slot = Some(ReplayWindow::new(header.epoch, header.counter)),
                }
                self.counters.opened += 1;
                Ok(Opened {
                    sender: header.sender,
                    plaintext,
                })
            }
            Err(e) => {
                let c = &mut self.counters;
                match &e {
                    Error::Unauthenticated { .. } => c.unauthenticated += 1,
                    Error::UnknownNode(_) => c.unknown_node += 1,
                    Error::ForeignCluster(_) => c.foreign_cluster += 1,
                    Error::Replayed(_) => c.replayed += 1,
                    _ => c.malformed += 1,
                }
                tracing::trace!(error = %e, "dropped datagram");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_each_counter_once_and_forgets_old_ones() {
        let mut w = ReplayWindow::new(1, 0);
        for c in [5u64, 3, 4, 1, 2] {
            assert!(w.is_fresh(1, c), "counter {c}");
            w.accept(1, c);
            assert!(!w.is_fresh(1, c), "counter {c} twice");
        }
        // Jump far ahead: everything at or below highest - WINDOW is too old.
        w.accept(1, 5 + REPLAY_WINDOW);
        assert!(!w.is_fresh(1, 5));
        assert!(w.is_fresh(1, 6), "inside the window and never seen");
        // A bit reused by the ring must have been cleared.
        assert!(w.is_fresh(1, 4 + REPLAY_WINDOW));
        w.accept(1, 6 + 2 * REPLAY_WINDOW);
        assert!(w.is_fresh(1, 7 + REPLAY_WINDOW));
        assert!(!w.is_fresh(1, 6 + REPLAY_WINDOW));
        // Epochs.
        assert!(!w.is_fresh(0, u64::MAX));
        assert!(w.is_fresh(2, 0));
    }
}
