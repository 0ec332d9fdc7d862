//! The LSB adapter: init scripts with `start`, `stop` and `status`, over the same
//! [process runner](super::runner) as OCF.
//!
//! LSB scripts take no parameters. `status` codes map as Pacemaker maps them:
//! 0 → running, 1/2/3 → not running, 4 → generic error (unknown), anything else →
//! generic error. `start`/`stop` codes 0–7 share the OCF numbering; others are a
//! generic error. Stopping a script whose `stop` reports "not running" (7) is a
//! success.

use super::context::ActionContext;
use super::metadata::{ActionSpec, Metadata};
use super::ocf::{check_context, outcome_of, spawn_outcome};
use super::outcome::{Outcome, Status};
use super::runner::{self, Exit, RunSpec, DEFAULT_CAPTURE_LIMIT};
use super::ResourceAgent;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Where init scripts live.
pub const DEFAULT_INIT_DIR: &str = "/etc/init.d";

/// An LSB init script.
#[derive(Debug, Clone)]
pub struct LsbAgent {
    name: String,
    path: PathBuf,
}

/// Maps an LSB `status` exit code.
pub fn status_code(code: i32) -> Status {
    match code {
        0 => Status::Success,
        1..=3 => Status::NotRunning,
        _ => Status::GenericError,
    }
}

impl LsbAgent {
    /// The script `name` in [`DEFAULT_INIT_DIR`].
    pub fn new(name: &str) -> Result<Self> {
        Self::in_dir(DEFAULT_INIT_DIR, name)
    }

    /// The script `name` in `dir`. Fails if it does not exist.
    pub fn in_dir(dir: impl AsRef<Path>, name: &str) -> Result<Self> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::InvalidName {
                what: "LSB script",
                value: name.to_string(),
                fix: "use the file name of a script in the init directory",
            });
        }
        let path = dir.as_ref().join(name);
        if !path.is_file() {
            return Err(Error::AgentNotFound {
                agent: format!("lsb:{name}"),
                path: path.display().to_string(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            path,
        })
    }

    async fn run(&self, action: &str, ctx: &ActionContext) -> Result<runner::RunOutput, Outcome> {
        if let Some(o) = check_context(ctx) {
            return Err(o);
        }
        let spec = RunSpec {
            program: self.path.clone(),
            args: vec![action.into()],
            env: vec![
                ("PATH".into(), super::ocf::AGENT_PATH.into()),
                ("LC_ALL".into(), "C".into()),
            ],
            timeout: ctx.timeout,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
        };
        runner::run(&spec).await.map_err(|e| spawn_outcome(&e))
    }

    async fn start_stop(&self, action: &str, ctx: &ActionContext) -> Outcome {
        match self.run(action, ctx).await {
            Ok(out) => match out.exit {
                Exit::Code(c @ 0..=7) => {
                    let mut o = outcome_of(&out, ctx);
                    if action == "stop" && c == 7 {
                        o = Outcome::success();
                    }
                    o
                }
                Exit::Code(c) => {
                    let mut o = Outcome::with_reason(
                        Status::GenericError,
                        format!("LSB {action} exited with {c}"),
                    );
                    o.raw_exit_code = Some(c);
                    o
                }
                _ => outcome_of(&out, ctx),
            },
            Err(o) => o,
        }
    }
}

#[async_trait]
impl ResourceAgent for LsbAgent {
    fn name(&self) -> String {
        format!("lsb:{}", self.name)
    }

    async fn start(&self, ctx: &ActionContext) -> Outcome {
        self.start_stop("start", ctx).await
    }

    async fn stop(&self, ctx: &ActionContext) -> Outcome {
        self.start_stop("stop", ctx).await
    }

    async fn monitor(&self, ctx: &ActionContext) -> Outcome {
        match self.run("status", ctx).await {
            Ok(out) => match out.exit {
                Exit::Code(c) => {
                    let mut o = Outcome::new(status_code(c));
                    o.exit_reason = out.exit_reason.clone();
                    if !(0..=4).contains(&c) {
                        o.raw_exit_code = Some(c);
                    }
                    o
                }
                _ => outcome_of(&out, ctx),
            },
            Err(o) => o,
        }
    }

    async fn metadata(&self) -> Result<Metadata> {
        let action = |name: &str| ActionSpec {
            name: name.to_string(),
            timeout: Some(std::time::Duration::from_secs(15)),
            interval: None,
            depth: None,
            role: None,
            start_delay: None,
        };
        Ok(Metadata {
            name: self.name.clone(),
            agent_version: None,
            ocf_version: None,
            shortdesc: Some(format!("LSB init script {}", self.path.display())),
            parameters: Vec::new(),
            actions: vec![
                action("start"),
                action("stop"),
                action("status"),
                action("meta-data"),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_pacemaker() {
        assert_eq!(status_code(0), Status::Success);
        for c in 1..=3 {
            assert_eq!(status_code(c), Status::NotRunning);
        }
        assert_eq!(status_code(4), Status::GenericError);
        assert_eq!(status_code(150), Status::GenericError);
    }
}
