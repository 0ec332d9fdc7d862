//! Resource agents: the [`ResourceAgent`] trait and its adapters.
//!
//! | adapter | runs |
//! |---|---|
//! | [`ocf::OcfAgent`] | OCF scripts under `OCF_ROOT`, with Pacemaker's exact environment |
//! | [`lsb::LsbAgent`] | LSB init scripts (`start`/`stop`/`status`) |
//! | [`systemd::SystemdAgent`] | systemd units over D-Bus |
//! | [`native`] | agents written in Rust against the trait (two documented examples) |
//!
//! An action gets an [`ActionContext`] and returns an [`Outcome`], whose
//! [`Status`] maps 1:1 to the OCF exit codes, plus timed-out, cancelled and
//! could-not-execute.
//!
//! # Writing a native agent
//!
//! Implement `start`, `stop` and `monitor` (and `metadata`); the other actions
//! default to "unimplemented" (`validate` to success). Timeouts and cancellation are
//! the executor's job: it drops the future when the timeout passes, so an agent
//! only has to be cancel-safe (no half-done state that a later `monitor` would
//! misread). See [`native::FileLockAgent`] for the smallest complete agent.

pub mod context;
pub mod lsb;
pub mod metadata;
pub mod native;
pub mod ocf;
pub mod outcome;
pub mod runner;
pub mod systemd;

pub use context::{Action, ActionContext, CloneInfo, NotifyInfo, NotifyType, Role};
pub use metadata::{ActionSpec, ContentType, Metadata, ParameterSpec};
pub use outcome::{Outcome, PromotionUpdate, Status};

use crate::error::Result;
use async_trait::async_trait;

/// A resource agent: something that can start, stop and monitor one kind of
/// resource. Every method gets the action's [`ActionContext`] and returns an
/// [`Outcome`]; none returns `Err`, because a failing agent is a result, not an
/// error of the caller.
#[async_trait]
pub trait ResourceAgent: Send + Sync + 'static {
    /// The agent's name (`ocf:heartbeat:Dummy`, `systemd:nginx`, `native:tcp`).
    fn name(&self) -> String;

    /// Starts the resource. Must be idempotent: starting a running resource
    /// succeeds.
    async fn start(&self, ctx: &ActionContext) -> Outcome;

    /// Stops the resource. Must be idempotent: stopping a stopped resource
    /// succeeds (never `NotRunning`).
    async fn stop(&self, ctx: &ActionContext) -> Outcome;

    /// Checks the resource at `ctx.depth` (0 = cheapest). Returns `Success` (or
    /// `RunningPromoted` when promoted), `NotRunning` when cleanly stopped, or an
    /// error. `ctx.role` is the role a recurring monitor expects;
    /// `ctx.is_probe()` tells a probe from a recurring monitor.
    async fn monitor(&self, ctx: &ActionContext) -> Outcome;

    /// Promotes a running instance. Default: unimplemented.
    async fn promote(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Demotes a promoted instance. Default: unimplemented.
    async fn demote(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Handles a clone notification (`ctx.notify`). Default: unimplemented.
    async fn notify(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Applies changed reloadable parameters without a restart. Default:
    /// unimplemented.
    async fn reload(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Live-migrates to `ctx.migrate`'s target (run on the source). Default:
    /// unimplemented.
    async fn migrate_to(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Completes a live migration (run on the target). Default: unimplemented.
    async fn migrate_from(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::unimplemented()
    }

    /// Checks the parameters without touching the resource. Default: success.
    async fn validate(&self, _ctx: &ActionContext) -> Outcome {
        Outcome::success()
    }

    /// The agent's meta-data (parameters, advised timeouts).
    async fn metadata(&self) -> Result<Metadata>;

    /// Runs `action` by dispatching to the matching method. `MetaData` returns
    /// success when the meta-data is available, else a generic error with why.
    async fn execute(&self, action: Action, ctx: &ActionContext) -> Outcome {
        match action {
            Action::Start => self.start(ctx).await,
            Action::Stop => self.stop(ctx).await,
            Action::Monitor => self.monitor(ctx).await,
            Action::Promote => self.promote(ctx).await,
            Action::Demote => self.demote(ctx).await,
            Action::Notify => self.notify(ctx).await,
            Action::Reload => self.reload(ctx).await,
            Action::MigrateTo => self.migrate_to(ctx).await,
            Action::MigrateFrom => self.migrate_from(ctx).await,
            Action::Validate => self.validate(ctx).await,
            Action::MetaData => match self.metadata().await {
                Ok(_) => Outcome::success(),
                Err(e) => Outcome::with_reason(Status::GenericError, e.to_string()),
            },
        }
    }
}
