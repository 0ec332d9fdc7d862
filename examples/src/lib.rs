//! # halyard-examples
//!
//! Whole clusters assembled from the halyard crates. The runnable programs are in
//! `examples/` (`cargo run --release -p halyard-examples --example NAME`).
#![deny(unsafe_code)]
