//! Ordering configuration: flow control, packing, size limits and queue bounds.
//!
//! | field | default | Corosync equivalent |
//! |---|---|---|
//! | `window_size` | 50 | `window_size`: frames the whole ring may send per rotation |
//! | `max_messages` | 17 | `max_messages`: frames one node may send per token visit |
//! | `miss_count_const` | 5 | token visits a gap must persist before it is put on the retransmit list |
//! | `rtr_entries_max` | 30 | `RETRANSMIT_ENTRIES_MAX` |
//! | `frame_size` | 1400 | about `netmtu` (1500) less headers: bytes of one frame on the ring |
//! | `max_message` | 1 MiB | `MESSAGE_SIZE_MAX` |
//! | `send_queue_bytes` | 4 MiB | `MESSAGE_QUEUE_MAX` × netmtu: back-pressure threshold |
//! | `retransmit_queue_bytes` | 24 MiB | `QUEUE_RTR_ITEMS_SIZE_MAX` (16384) × netmtu: bound of unreleased frames |

use halyard_membership::TotemConfig;

use crate::error::{Error, Result};

/// Largest message the wire format can describe (a hard cap on `max_message`).
pub const MAX_MESSAGE_HARD: usize = 64 * 1024 * 1024;
/// Largest frame: the ring's largest MCAST payload minus room for encapsulation.
pub const MAX_FRAME: usize = halyard_membership::wire::MAX_PAYLOAD - 64;
/// Smallest frame (so that every frame can carry a header and some bytes).
pub const MIN_FRAME: usize = 512;

/// Ordering configuration. See the module docs for the table of defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderingConfig {
    /// Frames (new + retransmitted) the whole ring may send per rotation.
    pub window_size: u32,
    /// Frames one node may send per token visit.
    pub max_messages: u32,
    /// Token visits a missing frame must stay missing before it is requested.
    pub miss_count_const: u32,
    /// Largest retransmit list this node lets the token carry.
    pub rtr_entries_max: usize,
    /// Bytes of one frame (the payload of one MCAST). Small messages are packed
    /// into frames; larger ones are fragmented across frames.
    pub frame_size: usize,
    /// Largest application message.
    pub max_message: usize,
    /// Bytes of application messages that may wait to be sent; beyond it `send`
    /// returns [`Error::WouldBlock`].
    pub send_queue_bytes: usize,
    /// Bytes of frames kept for retransmission before sending pauses.
    pub retransmit_queue_bytes: usize,
}

impl Default for OrderingConfig {
    fn default() -> Self {
        OrderingConfig {
            window_size: 50,
            max_messages: 17,
            miss_count_const: 5,
            rtr_entries_max: 30,
            frame_size: 1400,
            max_message: 1024 * 1024,
            send_queue_bytes: 4 * 1024 * 1024,
            retransmit_queue_bytes: 24 * 1024 * 1024,
        }
    }
}

impl OrderingConfig {
    /// The defaults, with the flow-control values of a Totem configuration.
    pub fn from_totem(totem: &TotemConfig) -> Self {
        OrderingConfig {
            window_size: totem.window_size,
            max_messages: totem.max_messages,
            miss_count_const: totem.miss_count_const,
            ..OrderingConfig::default()
        }
    }

    /// A preset for loopback: 16 KiB frames (a token visit moves far more
    /// bytes than with MTU-sized frames) and at most 4 frames per visit, so a
    /// visit's burst stays well below a default socket receive buffer (208 KiB).
    pub fn loopback() -> Self {
        OrderingConfig {
            frame_size: 16 * 1024,
            max_messages: 4,
            retransmit_queue_bytes: 64 * 1024 * 1024,
            ..OrderingConfig::default()
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, why: String| Err(Error::InvalidConfig { field, why });
        if self.window_size == 0 || self.max_messages == 0 {
            return bad(
                "window_size",
                "window_size and max_messages must be at least 1".into(),
            );
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&self.frame_size) {
            return bad(
                "frame_size",
                format!("must be within {MIN_FRAME}..={MAX_FRAME} bytes"),
            );
        }
        if self.max_message == 0 || self.max_message > MAX_MESSAGE_HARD {
            return bad(
                "max_message",
                format!("must be within 1..={MAX_MESSAGE_HARD} bytes"),
            );
        }
        if self.send_queue_bytes < self.max_message {
            return bad(
                "send_queue_bytes",
                "must be at least max_message, or the largest message never fits".into(),
            );
        }
        if self.rtr_entries_max == 0
            || self.rtr_entries_max > halyard_membership::wire::MAX_RTR_ENTRIES
        {
            return bad(
                "rtr_entries_max",
                format!(
                    "must be within 1..={}",
                    halyard_membership::wire::MAX_RTR_ENTRIES
                ),
            );
        }
        if self.retransmit_frames() < 2 * u64::from(self.window_size) {
            return bad(
                "retransmit_queue_bytes",
                "must hold at least two windows of frames".into(),
            );
        }
        Ok(())
    }

    /// How many frames may be unreleased at once.
    pub fn retransmit_frames(&self) -> u64 {
        (self.retransmit_queue_bytes / self.frame_size.max(1)) as u64
    }
}
