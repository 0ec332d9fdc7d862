//! # halyard-ordering
//!
//! Totally ordered messaging over the Totem ring: agreed and safe delivery,
//! extended virtual synchrony across configuration changes, packing and
//! fragmentation, and closed process groups (Corosync's CPG).
//!
//! Nothing public exists yet: this crate is filled by the ordering issue, on top of
//! the ring engine in `halyard-membership` (see `ARCHITECTURE.md`).
#![deny(unsafe_code)]
