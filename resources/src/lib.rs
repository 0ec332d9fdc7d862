//! # halyard-resources
//!
//! Pacemaker's job in a library: the `ResourceAgent` trait with OCF, systemd, LSB
//! and native adapters, the local executor (Pacemaker's execd), and a
//! Pacemaker-compatible placement solver.
//!
//! The agents (`agent`, `executor`) and the solver (`placement`) live in separate modules.
//!
//! Running real OCF agents through the executor:
//!
//! ```no_run
//! use halyard_resources::agent::ocf::{OcfAgent, DEFAULT_OCF_ROOT};
//! use halyard_resources::agent::{Action, Status};
//! use halyard_resources::executor::{Executor, OpEvent};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # async fn demo() -> halyard_resources::Result<()> {
//! let (executor, mut results) = Executor::new("node1");
//! let dummy = Arc::new(OcfAgent::new(DEFAULT_OCF_ROOT, "heartbeat", "Dummy")?);
//! executor.register("db-lock", dummy, Default::default())?;
//!
//! let probe = executor.probe("db-lock").await?; // one-shot monitor: 7 = stopped
//! assert_eq!(probe.record.status, Status::NotRunning);
//! let ctx = executor.context("db-lock")?.timeout(Duration::from_secs(20));
//! executor.execute("db-lock", Action::Start, ctx.clone()).await?;
//! let (key, _call) = executor.start_recurring(
//!     "db-lock",
//!     Action::Monitor,
//!     ctx.interval(Duration::from_secs(10)),
//! )?;
//! // Recurring monitors report only changed results; a consumer that fell
//! // behind gets a Lagged notice carrying the missed failures and latest results.
//! while let Some(ev) = results.recv().await {
//!     let batch = match ev {
//!         OpEvent::Result(r) => vec![r],
//!         OpEvent::Lagged(lag) => lag.results,
//!         _ => continue,
//!     };
//!     if let Some(r) = batch.iter().find(|r| r.record.failed) {
//!         println!("{} {} failed: {}", r.resource, r.record.key, r.outcome);
//!         executor.cancel_recurring("db-lock", key)?;
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```
#![deny(unsafe_code)]

pub mod agent;
mod error;
pub mod executor;
pub mod placement;

pub use error::{Error, Result};
