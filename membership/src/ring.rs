//! Ring identity and its persistence.
//!
//! A ring is named by `(representative, seq)`. A new ring's `seq` is the largest
//! ring seq its representative has seen, plus 4, so ring ids only grow. Every node
//! stores the ring id it commits to (Corosync's `ringid_<nodeid>` file) through a
//! [`RingIdStore`], so a restarted node never reuses a ring id.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{Error, NodeId, Result};

/// A ring's identity: its representative and a sequence number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RingId {
    /// The representative (lowest node id of the ring when it formed).
    pub rep: NodeId,
    /// The ring's sequence number.
    pub seq: u64,
}

impl RingId {
    /// A ring id.
    pub fn new(rep: NodeId, seq: u64) -> Self {
        RingId { rep, seq }
    }
}

impl std::fmt::Display for RingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.rep.0, self.seq)
    }
}

/// Where a node keeps the highest ring seq it committed to.
pub trait RingIdStore: Send {
    /// The stored ring seq, or `None` on first start.
    fn load(&mut self) -> Result<Option<u64>>;
    /// Stores the ring id the node is committing to. Must be durable before it returns.
    fn store(&mut self, ring_id: RingId) -> Result<()>;
}

/// An in-memory store. Clones share the value, so a simulator can "restart" a
/// node with the store it had.
#[derive(Debug, Clone, Default)]
pub struct MemoryRingIdStore {
    seq: Arc<Mutex<Option<u64>>>,
}

impl MemoryRingIdStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// The stored seq.
    pub fn get(&self) -> Option<u64> {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RingIdStore for MemoryRingIdStore {
    fn load(&mut self) -> Result<Option<u64>> {
        Ok(self.get())
    }
    fn store(&mut self, ring_id: RingId) -> Result<()> {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner()) = Some(ring_id.seq);
        Ok(())
    }
}

/// A file store: one small text file holding the ring seq, replaced atomically
/// (write to a temporary file, fsync, rename).
#[derive(Debug, Clone)]
pub struct FileRingIdStore {
    path: PathBuf,
}

impl FileRingIdStore {
    /// A store at `path` (e.g. `/var/lib/halyard/ringid_3`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileRingIdStore { path: path.into() }
    }
    /// The conventional file name in `dir` for `node` (`ringid_<nodeid>`).
    pub fn in_dir(dir: impl AsRef<Path>, node: NodeId) -> Self {
        Self::new(dir.as_ref().join(format!("ringid_{}", node.0)))
    }
    fn io(&self, what: &str, source: std::io::Error) -> Error {
        Error::Io {
            context: format!("{what} ring id file {}", self.path.display()),
            source,
        }
    }
}

impl RingIdStore for FileRingIdStore {
    fn load(&mut self) -> Result<Option<u64>> {
        match std::fs::read_to_string(&self.path) {
            Ok(s) => s.trim().parse::<u64>().map(Some).map_err(|e| Error::Io {
                context: format!(
                    "ring id file {} is corrupt (delete it only if this node's ring history may be lost)",
                    self.path.display()
                ),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading", e)),
        }
    }
    fn store(&mut self, ring_id: RingId) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io("creating", e))?;
        writeln!(f, "{}", ring_id.seq).map_err(|e| self.io("writing", e))?;
        f.sync_all().map_err(|e| self.io("syncing", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io("renaming", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip() {
        let dir = std::env::temp_dir().join(format!("halyard-ringid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = FileRingIdStore::in_dir(&dir, NodeId(3));
        let _ = std::fs::remove_file(dir.join("ringid_3"));
        assert_eq!(s.load().unwrap(), None);
        s.store(RingId::new(NodeId(1), 44)).unwrap();
        assert_eq!(
            FileRingIdStore::in_dir(&dir, NodeId(3)).load().unwrap(),
            Some(44)
        );
        std::fs::write(dir.join("ringid_3"), "garbage").unwrap();
        assert!(s.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memory_store_clones_share() {
        let a = MemoryRingIdStore::new();
        let mut b = a.clone();
        b.store(RingId::new(NodeId(2), 8)).unwrap();
        assert_eq!(a.get(), Some(8));
    }
}
