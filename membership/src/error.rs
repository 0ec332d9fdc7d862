//! The crate's one error type.

use crate::NodeId;

/// Everything that can go wrong in `halyard-membership`.
///
/// Each variant says what was wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A datagram failed authentication (wrong key, tampering, truncation).
    #[error("datagram from {from} failed authentication (wrong cluster key or tampered packet); dropped")]
    Unauthenticated {
        /// The sender the packet claimed to come from, if it could be read.
        from: String,
    },
    /// A datagram claimed to come from a node that is not in the configured node list.
    #[error("datagram from unknown node {0}; dropped (add it to the node list if it belongs to this cluster)")]
    UnknownNode(NodeId),
    /// A datagram belongs to another cluster (different cluster name).
    #[error("datagram for another cluster (name hash {0:#010x}); dropped")]
    ForeignCluster(u32),
    /// A datagram was seen before (replay protection).
    #[error("replayed datagram from {0}; dropped")]
    Replayed(NodeId),
    /// A datagram could not be decoded.
    #[error("malformed datagram: {0}")]
    Malformed(String),
    /// A datagram speaks a wire format version this build does not.
    #[error("datagram with unsupported wire version {0}; dropped (upgrade every node to the same halyard release)")]
    UnsupportedVersion(u8),
    /// A node id that cannot be used (0 is reserved) or that is missing from the node list.
    #[error("invalid node id {0}: {1}")]
    InvalidNode(u32, String),
    /// The node has left the ring (after `leave`) and accepts no more commands.
    #[error("the node has left the ring; start a new node to rejoin")]
    Left,
    /// The driver task has stopped.
    #[error("the node's driver task has stopped")]
    Stopped,
    /// An invalid configuration value. Names the field and the fix.
    #[error("invalid configuration: {field}: {reason}")]
    Config {
        /// The configuration field, with Corosync's name where there is one.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An I/O error from a driver or from persistent storage.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
