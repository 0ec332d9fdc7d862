//! # halyard-proxy
//!
//! A load-balancing proxy core that does HAProxy's high-availability job:
//! frontends, backends and servers, balancing algorithms, health checks,
//! backup servers, connection limits and queues.
//!
//! The interesting parts are pure state machines with no IO, clock or RNG of
//! their own ([`balance`], [`health`], [`tcpcheck`], [`backend`],
//! [`proxy_protocol`], [`stick`]); the
//! tokio layer ([`runtime`]) only drives them. See `proxy/README.md`.
#![deny(unsafe_code)]

pub mod backend;
pub mod balance;
pub mod config;
pub mod cookie;
mod error;
pub mod hash;
pub mod health;
pub mod httpcheck;
pub mod log;
pub mod proxy_protocol;
pub mod runtime;
pub mod stats;
pub mod stick;
pub mod tcpcheck;

pub use error::{Error, Result};
pub use runtime::Proxy;
