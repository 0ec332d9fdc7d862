//! The crate's one error type.

/// Everything that can go wrong in `halyard-ordering`.
///
/// Each variant says what was wrong and, where there is one, what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message is larger than [`OrderingConfig::max_message`](crate::OrderingConfig::max_message).
    #[error("message of {len} bytes is larger than the limit of {max} bytes; split it or raise `max_message`")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The send queue is full: the ring cannot take more now (back-pressure).
    /// Retry after some messages have been sent (the tokio API waits for room).
    #[error(
        "send queue full ({queued} of {limit} bytes queued); retry when the ring has drained some"
    )]
    WouldBlock {
        /// Bytes queued now.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A group name is longer than 255 bytes.
    #[error("group name of {0} bytes is longer than 255 bytes")]
    GroupNameTooLong(usize),
    /// A configuration value is out of range.
    #[error("invalid ordering configuration `{field}`: {why}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        why: String,
    },
    /// A frame received from the ring could not be decoded.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The group handle or the cluster is closed.
    #[error("closed: {0}")]
    Closed(&'static str),
    /// An error of the ring engine.
    #[error("ring engine: {0}")]
    Membership(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
