//! The crate's one error type.

use std::net::SocketAddr;

/// Everything that can go wrong in `halyard-proxy`.
///
/// Configuration errors name the field (a dotted path such as
/// `backends.web.servers.s1.weight`) and say how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is syntactically valid TOML but a value is wrong.
    #[error("config error at `{field}`: {problem}; fix: {fix}")]
    Config {
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong with it.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// The configuration could not be parsed as TOML (or has unknown fields).
    #[error("config could not be parsed: {0}")]
    ConfigSyntax(String),
    /// A PROXY protocol header was malformed; the connection is rejected.
    #[error("bad PROXY protocol header: {0}")]
    ProxyProtocol(&'static str),
    /// A runtime command referred to a backend that does not exist.
    #[error("no backend named `{0}`")]
    NoSuchBackend(String),
    /// A runtime command referred to a server that does not exist.
    #[error("no server named `{server}` in backend `{backend}`")]
    NoSuchServer {
        /// Backend name.
        backend: String,
        /// Server name.
        server: String,
    },
    /// A runtime command would create a second server with the same name.
    #[error("server `{server}` already exists in backend `{backend}`")]
    ServerExists {
        /// Backend name.
        backend: String,
        /// Server name.
        server: String,
    },
    /// A runtime command carried an invalid value.
    #[error("invalid runtime command: {0}")]
    Command(String),
    /// Binding a listener failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Builds an [`Error::Config`].
    pub fn config(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Error::Config {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Shorthand for `Result<T, halyard_proxy::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
