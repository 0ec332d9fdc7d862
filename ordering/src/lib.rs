//! # halyard-ordering
//!
//! Totally ordered messaging over the Totem ring: agreed and safe delivery,
//! extended virtual synchrony across configuration changes, packing and
//! fragmentation, after Corosync's `totemsrp` (ordering half) and `totempg`.
//!
//! The core, [`Ordering`], is a sans-IO [`OrderingHook`](halyard_membership::OrderingHook)
//! for the ring engine of `halyard-membership`: the engine owns the token's
//! circulation, the ordering layer owns what the token carries (see
//! `ARCHITECTURE.md` and the [`ordering`] module docs for the algorithm).
//!
//! ```text
//!   app ── send(group, bytes, Agreed|Safe) ──> Ordering ──(hook)── Totem<Ordering> ── datagrams
//!   app <── poll_event(): Message | Configuration (EVS order) ──┘
//! ```
//!
//! On top: [`Groups`], closed process groups (Corosync's CPG), also sans IO,
//! and [`Cluster`] / [`Group`], the tokio API over UDP:
//!
//! ```no_run
//! # async fn demo(cluster: halyard_ordering::Cluster) -> halyard_ordering::Result<()> {
//! use halyard_ordering::{Delivery, GroupEvent};
//! let mut group = cluster.join("locks").await?;
//! group.send(&b"hello"[..], Delivery::Safe).await?;
//! while let Some(ev) = group.recv().await {
//!     match ev {
//!         GroupEvent::Message { from, payload, .. } => println!("{from:?}: {payload:?}"),
//!         GroupEvent::Membership { members, joined, left } => println!("{members:?} +{joined:?} -{left:?}"),
//!         GroupEvent::Overflow { capacity } => eprintln!("fell {capacity} events behind: removed"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The simulator (`sim`, for tests and behind the `sim` feature) checks total
//! order, integrity, self-delivery, virtual synchrony, safe delivery and group
//! consistency over thousands of seeded runs with loss, duplication,
//! reordering, partitions, crashes and restarts.
#![deny(unsafe_code)]

pub mod cluster;
pub mod config;
mod error;
pub mod frame;
pub mod groups;
pub mod ordering;

#[cfg(any(test, feature = "sim"))]
pub mod sim;

pub use cluster::{Cluster, ClusterConfig, Group, GroupSender, SocketBuffers};
pub use config::OrderingConfig;
pub use error::{Error, Result};
pub use groups::{Addressed, GroupEvent, Groups, Member, Reason};
pub use ordering::{Delivery, Event, Message, Ordering, OrderingStats};
