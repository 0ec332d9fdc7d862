//! The crate's one error type.

/// Everything that can go wrong in `halyard-resources`.
///
/// Each variant says what was wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- agents and executor (module `agent`, `executor`) ---
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    // --- placement (module `placement`) ---
    /// The CIB is not well-formed XML.
    #[error(
        "CIB is not well-formed XML: {detail}; fix the document (xmllint --noout shows the spot)"
    )]
    CibXml {
        /// What is wrong and where.
        detail: String,
    },
    /// The CIB is well-formed but semantically invalid.
    #[error("invalid CIB: {element}: {detail}")]
    CibInvalid {
        /// The offending element, e.g. `<rsc_colocation id="c1">`.
        element: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
