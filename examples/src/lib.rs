//! # halyard-examples
//!
//! Whole clusters assembled from the halyard crates. The runnable programs are in
//! `examples/` (`cargo run --release -p halyard-examples --example NAME`):
//!
//! | example | what |
//! |---|---|
//! | `cluster` | the main job: three nodes with ring, process group, placement, agents and a proxy; a node is killed and comes back ([`cluster`]) |
//! | `ring` | three Totem nodes on loopback: form, kill one, restart it |
//! | `ring_node` | one Totem node per process (used by `membership_bench`) |
//! | `membership_bench` | start-up and failover times, and an idle stability run |
#![deny(unsafe_code)]

pub mod cluster;
