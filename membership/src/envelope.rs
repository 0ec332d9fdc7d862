//! The seam between the ring engine's plaintext datagrams and the wire.
//!
//! The protocol core exchanges plaintext datagrams (see the wire format). Before a
//! datagram leaves the node, the driver passes it through an [`Envelope`], which
//! authenticates and encrypts it; every datagram that arrives goes through
//! [`Envelope::open`] first, and only what it accepts reaches the core. Packets
//! that fail authentication, come from unknown nodes or another cluster, or are
//! replays are dropped and counted, never acted on.

use crate::{NodeId, Result};

/// A datagram that passed [`Envelope::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The authenticated sender.
    pub sender: NodeId,
    /// The plaintext the sender sealed.
    pub plaintext: Vec<u8>,
}

/// Wraps outgoing datagrams and unwraps incoming ones.
pub trait Envelope: Send {
    /// Wraps one plaintext datagram of this node for the wire.
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8>;
    /// Unwraps one datagram from the wire: checks cluster, sender, authenticity and
    /// freshness. An error means the datagram must be dropped.
    fn open(&mut self, datagram: &[u8]) -> Result<Opened>;
}
