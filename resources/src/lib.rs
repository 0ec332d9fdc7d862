//! # halyard-resources
//!
//! Pacemaker's job in a library: the `ResourceAgent` trait with OCF, systemd, LSB
//! and native adapters, the local executor (Pacemaker's execd), and a
//! Pacemaker-compatible placement solver.
//!
//! Nothing public exists yet: the agents and the solver land with their issues.
#![deny(unsafe_code)]
