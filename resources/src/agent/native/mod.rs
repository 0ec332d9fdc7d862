//! Native agents: resource agents written in Rust against
//! [`ResourceAgent`](super::ResourceAgent), with no process per action.
//!
//! Two complete examples to copy from:
//! - [`FileLockAgent`]: a "virtual resource" whose state is a lock file: the
//!   smallest agent with real start/stop/monitor semantics and mutual exclusion.
//! - [`TcpServiceAgent`]: supervises a child process (in its own process group) and
//!   monitors that it accepts TCP connections on a port of 127.0.0.1.

mod lock;
mod tcp;

pub use lock::FileLockAgent;
pub use tcp::TcpServiceAgent;

use super::metadata::{ActionSpec, ContentType, ParameterSpec};
use std::time::Duration;

pub(crate) fn param(
    name: &str,
    required: bool,
    content: ContentType,
    default: Option<&str>,
    desc: &str,
) -> ParameterSpec {
    ParameterSpec {
        name: name.to_string(),
        required,
        unique: false,
        unique_group: None,
        reloadable: false,
        deprecated: false,
        content,
        default: default.map(str::to_string),
        shortdesc: Some(desc.to_string()),
    }
}

pub(crate) fn action(name: &str, timeout_s: u64, interval_s: Option<u64>) -> ActionSpec {
    ActionSpec {
        name: name.to_string(),
        timeout: Some(Duration::from_secs(timeout_s)),
        interval: interval_s.map(Duration::from_secs),
        depth: interval_s.map(|_| 0),
        role: None,
        start_delay: None,
    }
}
