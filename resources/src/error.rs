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
    /// An agent's meta-data could not be parsed.
    #[error("meta-data of {agent} is not usable: {reason}")]
    MetaData {
        /// The agent (`ocf:provider:type`).
        agent: String,
        /// What is wrong with the document.
        reason: String,
    },
    /// A parameter the agent marks `required` was not given.
    #[error(
        "{agent} requires parameter {name:?}: add {name}=<value> to the resource's parameters"
    )]
    MissingParameter {
        /// The agent.
        agent: String,
        /// The missing parameter.
        name: String,
    },
    /// No agent of that name exists.
    #[error("agent {agent} not found (looked for {path}): check the provider and type, or install the agent's package")]
    AgentNotFound {
        /// The agent.
        agent: String,
        /// Where it was looked for.
        path: String,
    },
    /// A resource or agent name that cannot be used (empty, contains `/`, ...).
    #[error("invalid {what} {value:?}: {fix}")]
    InvalidName {
        /// What kind of name (`provider`, `type`, `instance`, `unit`).
        what: &'static str,
        /// The name given.
        value: String,
        /// What a valid one looks like.
        fix: &'static str,
    },
    /// The executor has shut down, or the resource is unknown to it.
    #[error("executor: {0}")]
    Executor(String),
    /// A D-Bus error talking to systemd.
    #[error("systemd: {context}: {source}")]
    Dbus {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Box<zbus::Error>,
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
