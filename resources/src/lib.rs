//! # halyard-resources
//!
//! Pacemaker's job in a library: the `ResourceAgent` trait with OCF, systemd, LSB
//! and native adapters, the local executor (Pacemaker's execd), and a
//! Pacemaker-compatible placement solver.
//!
//! The agents (`agent`, `executor`) and the solver (`placement`) live in separate modules.
#![deny(unsafe_code)]

mod error;
pub mod placement;

pub use error::{Error, Result};
