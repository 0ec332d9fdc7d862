//! # halyard-membership
//!
//! Totem single-ring membership, after Corosync's `totemsrp`: ring formation
//! (GATHER → COMMIT → RECOVERY → OPERATIONAL), failure detection by token loss,
//! configuration changes, quorum (votequorum semantics) and an authenticated,
//! encrypted transport.
//!
//! The protocol core is a sans-IO state machine; see `ARCHITECTURE.md` at the
//! repository root. Nothing public exists yet: the ring engine lands with issue 2.
#![deny(unsafe_code)]
