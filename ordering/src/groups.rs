//! Closed process groups (Corosync's CPG), sans IO, on top of [`Ordering`].
//!
//! A *member* is a local process id (`pid`, any `u32` the application picks)
//! on a node. Members join and leave named groups; a group's messages and its
//! membership changes travel in the one totally ordered stream, so every node
//! applies them in the same order:
//!
//! ```text
//!  join(g, pid) ──> JOIN control message ─┐
//!  leave(g, pid) ─> LEAVE control message ┼─ ordered stream ─> apply in order at every node:
//!  send(g, pid, bytes) ─> group message  ─┘     JOIN/LEAVE: view(g) ± member, Membership event
//!                                               message: delivered to local members of g,
//!                                                        only if its sender is in view(g)
//!  transitional configuration: members on nodes that left are removed (reason NodeDown)
//!  regular configuration with new nodes: every node sends SYNC (its local members) first
//!    in the new ring; a receiver adds members it did not know (reason NodeUp)
//! ```
//!
//! Control messages use the empty group name, which is therefore reserved;
//! application groups have names of 1 to 255 bytes. A group message's payload
//! starts with the sending pid (4 bytes).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use halyard_membership::configuration::ConfigurationKind;
use halyard_membership::{NodeId, RingId};

use crate::error::{Error, Result};
use crate::ordering::{Delivery, Event, Ordering};

/// A group member: a process on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The node.
    pub node: NodeId,
    /// The process id on that node.
    pub pid: u32,
}

/// Why a member joined or left (Corosync's `cpg_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// It joined.
    Join,
    /// It left.
    Leave,
    /// Its node left the configuration.
    NodeDown,
    /// Its node joined the configuration (learned from the node's SYNC).
    NodeUp,
    /// Its process stopped taking the group's events (Corosync's
    /// `CPG_REASON_PROCDOWN`): in the tokio API, its [`Group`](crate::Group)
    /// handle let its event queue fill up, so its node removed it.
    ProcDown,
}

/// What a local member receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A message of the group.
    Message {
        /// Who sent it.
        from: Member,
        /// Its guarantee.
        delivery: Delivery,
        /// The bytes.
        payload: Bytes,
    },
    /// The last event of a [`Group`](crate::Group) handle that did not keep up:
    /// its queue of `capacity` events was full, so its node removed it from the
    /// group (the others see it leave with [`Reason::ProcDown`]) rather than
    /// block the ring. The events before this one are a consistent prefix of
    /// the group's stream; nothing follows. Never produced by [`Groups`].
    Overflow {
        /// The handle's queue capacity ([`ClusterConfig::group_event_capacity`](crate::ClusterConfig::group_event_capacity)).
        capacity: usize,
    },
    /// The group's membership changed.
    Membership {
        /// Members after the change, ascending.
        members: Vec<Member>,
        /// Who joined, and why.
        joined: Vec<(Member, Reason)>,
        /// Who left, and why.
        left: Vec<(Member, Reason)>,
    },
}

/// A group event addressed to one local member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    /// The group.
    pub group: Bytes,
    /// The local member (pid) it is for.
    pub pid: u32,
    /// The event.
    pub event: GroupEvent,
}

const JOIN: u8 = 1;
const LEAVE: u8 = 2;
const SYNC: u8 = 3;
const PROC_DOWN: u8 = 4;

/// A control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `pid` joins `group`.
    Join(Bytes, u32),
    /// `pid` leaves `group`.
    Leave(Bytes, u32),
    /// The sender's local members (group, pid), for the configuration of a ring.
    Sync(RingId, Vec<(Bytes, u32)>),
    /// `pid` is removed from `group` because it stopped taking events.
    ProcDown(Bytes, u32),
}

impl Control {
    /// Encodes it.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Control::Join(g, p) | Control::Leave(g, p) | Control::ProcDown(g, p) => {
                b.put_u8(match self {
                    Control::Join(..) => JOIN,
                    Control::Leave(..) => LEAVE,
                    _ => PROC_DOWN,
                });
                b.put_u8(g.len() as u8);
                b.put_slice(g);
                b.put_u32(*p);
            }
            Control::Sync(ring, list) => {
                b.put_u8(SYNC);
                b.put_u32(ring.rep.0);
                b.put_u64(ring.seq);
                b.put_u32(list.len() as u32);
                for (g, p) in list {
                    b.put_u8(g.len() as u8);
                    b.put_slice(g);
                    b.put_u32(*p);
                }
            }
        }
        b.freeze()
    }

    /// Decodes it; never panics.
    pub fn decode(bytes: &Bytes) -> Result<Control> {
        let mut r = bytes.clone();
        fn entry(r: &mut Bytes) -> Result<(Bytes, u32)> {
            if r.remaining() < 1 {
                return Err(Error::Malformed("truncated control message"));
            }
            let n = usize::from(r.get_u8());
            if n == 0 || r.remaining() < n + 4 {
                return Err(Error::Malformed("bad group entry"));
            }
            let g = r.split_to(n);
            Ok((g, r.get_u32()))
        }
        if r.remaining() < 1 {
            return Err(Error::Malformed("empty control message"));
        }
        let c = match r.get_u8() {
            JOIN => {
                let (g, p) = entry(&mut r)?;
                Control::Join(g, p)
            }
            LEAVE => {
                let (g, p) = entry(&mut r)?;
                Control::Leave(g, p)
            }
            PROC_DOWN => {
                let (g, p) = entry(&mut r)?;
                Control::ProcDown(g, p)
            }
            SYNC => {
                if r.remaining() < 16 {
                    return Err(Error::Malformed("truncated sync"));
                }
                let ring = RingId::new(NodeId(r.get_u32()), r.get_u64());
                let n = r.get_u32() as usize;
                if n > r.remaining() / 6 {
                    return Err(Error::Malformed("sync longer than its bytes"));
                }
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    list.push(entry(&mut r)?);
                }
                Control::Sync(ring, list)
            }
            _ => return Err(Error::Malformed("unknown control message")),
        };
        if r.has_remaining() {
            return Err(Error::Malformed("trailing bytes in control message"));
        }
        Ok(c)
    }
}

/// The synchronisation after a configuration that brought new nodes: group
/// traffic waits until every member's SYNC has been delivered, then all SYNCs
/// apply at once, so every node has the same views from then on. If the
/// configuration ends first, the members of nodes whose SYNC did not come are
/// dropped everywhere (reason NodeDown), which keeps the views equal.
#[derive(Debug, Default)]
struct Syncing {
    ring: Option<RingId>,
    expect: BTreeSet<NodeId>,
    got: Vec<(NodeId, Vec<(Bytes, u32)>)>,
    deferred: Vec<Event>,
}

/// The process-group layer of one node.
#[derive(Debug)]
pub struct Groups {
    me: NodeId,
    views: BTreeMap<Bytes, BTreeSet<Member>>,
    syncing: Option<Syncing>,
    /// Nodes of the configuration being delivered (`None` before the first).
    config_nodes: Option<BTreeSet<NodeId>>,
    events: VecDeque<Addressed>,
}

fn check_group(group: &[u8]) -> Result<()> {
    if group.is_empty() {
        return Err(Error::InvalidConfig {
            field: "group",
            why: "group names must not be empty".into(),
        });
    }
    if group.len() > 255 {
        return Err(Error::GroupNameTooLong(group.len()));
    }
    Ok(())
}

impl Groups {
    /// The group layer of node `me`.
    pub fn new(me: NodeId) -> Self {
        Groups {
            me,
            views: BTreeMap::new(),
            syncing: None,
            config_nodes: None,
            events: VecDeque::new(),
        }
    }

    /// Asks for local `pid` to join `group`; it is a member once the
    /// Membership event that lists it is delivered.
    pub fn join(&mut self, ord: &mut Ordering, group: &[u8], pid: u32) -> Result<()> {
        check_group(group)?;
        ord.send(
            b"",
            Control::Join(Bytes::copy_from_slice(group), pid).encode(),
            Delivery::Agreed,
        )
    }

    /// Asks for local `pid` to leave `group`.
    pub fn leave(&mut self, ord: &mut Ordering, group: &[u8], pid: u32) -> Result<()> {
        check_group(group)?;
        ord.send(
            b"",
            Control::Leave(Bytes::copy_from_slice(group), pid).encode(),
            Delivery::Agreed,
        )
    }

    /// Removes local `pid` from `group` because it stopped taking events (the
    /// others see it leave with [`Reason::ProcDown`]).
    pub fn proc_down(&mut self, ord: &mut Ordering, group: &[u8], pid: u32) -> Result<()> {
        check_group(group)?;
        ord.send(
            b"",
            Control::ProcDown(Bytes::copy_from_slice(group), pid).encode(),
            Delivery::Agreed,
        )
    }

    /// Sends `payload` from local member `pid` to `group`. Members receive it
    /// only if `pid` is a member when it is delivered.
    pub fn send(
        &mut self,
        ord: &mut Ordering,
        group: &[u8],
        pid: u32,
        payload: &[u8],
        delivery: Delivery,
    ) -> Result<()> {
        check_group(group)?;
        let mut b = BytesMut::with_capacity(4 + payload.len());
        b.put_u32(pid);
        b.put_slice(payload);
        ord.send(group, b.freeze(), delivery)
    }

    /// The current view of a group at this node.
    pub fn members(&self, group: &[u8]) -> Vec<Member> {
        self.views
            .get(group)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every group with at least one member.
    pub fn groups(&self) -> Vec<Bytes> {
        self.views
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Whether local `pid` is a member of `group`.
    pub fn is_member(&self, group: &[u8], pid: u32) -> bool {
        self.views
            .get(group)
            .is_some_and(|v| v.contains(&Member { node: self.me, pid }))
    }

    /// The next event for a local member.
    pub fn poll_event(&mut self) -> Option<Addressed> {
        self.events.pop_front()
    }

    fn local_pids(&self, group: &Bytes) -> Vec<u32> {
        self.views
            .get(group)
            .map(|v| {
                v.iter()
                    .filter(|m| m.node == self.me)
                    .map(|m| m.pid)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn change(
        &mut self,
        group: &Bytes,
        joined: Vec<(Member, Reason)>,
        left: Vec<(Member, Reason)>,
    ) {
        if joined.is_empty() && left.is_empty() {
            return;
        }
        let view = self.views.entry(group.clone()).or_default();
        for (m, _) in &joined {
            view.insert(*m);
        }
        for (m, _) in &left {
            view.remove(m);
        }
        let members: Vec<Member> = view.iter().copied().collect();
        let mut to: BTreeSet<u32> = self.local_pids(group).into_iter().collect();
        to.extend(
            left.iter()
                .filter(|(m, _)| m.node == self.me)
                .map(|(m, _)| m.pid),
        );
        for pid in to {
            self.events.push_back(Addressed {
                group: group.clone(),
                pid,
                event: GroupEvent::Membership {
                    members: members.clone(),
                    joined: joined.clone(),
                    left: left.clone(),
                },
            });
        }
    }

    /// Whether group traffic waits for SYNCs after a configuration change.
    pub fn is_syncing(&self) -> bool {
        self.syncing.is_some()
    }

    /// Applies one event of the ordered stream. On a regular configuration that
    /// brings new nodes, queues this node's SYNC at the head of the send queue
    /// and holds group traffic until every member's SYNC is delivered.
    pub fn handle(&mut self, ord: &mut Ordering, ev: &Event) {
        match ev {
            Event::Configuration(c) => match c.kind {
                ConfigurationKind::Transitional => {
                    // A configuration that ends before its SYNCs are all in: apply
                    // what came (every node moving on together has the same).
                    self.finish_sync();
                    let keep: BTreeSet<NodeId> = c.members.iter().copied().collect();
                    self.config_nodes = Some(keep.clone());
                    let groups: Vec<Bytes> = self.views.keys().cloned().collect();
                    for g in groups {
                        let gone: Vec<(Member, Reason)> = self.views[&g]
                            .iter()
                            .filter(|m| !keep.contains(&m.node))
                            .map(|m| (*m, Reason::NodeDown))
                            .collect();
                        self.change(&g, Vec::new(), gone);
                    }
                }
                ConfigurationKind::Regular => {
                    self.config_nodes = Some(c.members.iter().copied().collect());
                    if !c.joined.is_empty() {
                        let mine: Vec<(Bytes, u32)> = self
                            .views
                            .iter()
                            .flat_map(|(g, v)| {
                                v.iter()
                                    .filter(|m| m.node == self.me)
                                    .map(|m| (g.clone(), m.pid))
                            })
                            .collect();
                        let sync = Control::Sync(c.ring_id, mine).encode();
                        if let Err(e) = ord.send_first(b"", sync, Delivery::Agreed) {
                            tracing::error!(node = self.me.0, error = %e, "could not queue the group SYNC");
                        }
                        self.syncing = Some(Syncing {
                            ring: Some(c.ring_id),
                            expect: c.members.iter().copied().collect(),
                            ..Syncing::default()
                        });
                    }
                }
            },
            Event::Message(m) => {
                if let Some(s) = &mut self.syncing {
                    if m.group.is_empty() {
                        if let Ok(Control::Sync(ring, list)) = Control::decode(&m.payload) {
                            if Some(ring) == s.ring && s.expect.remove(&m.sender) {
                                s.got.push((m.sender, list));
                            }
                            if s.expect.is_empty() {
                                self.finish_sync();
                            }
                            return;
                        }
                    }
                    s.deferred.push(ev.clone());
                    return;
                }
                self.apply_message(ev);
            }
        }
    }

    fn finish_sync(&mut self) {
        let Some(s) = self.syncing.take() else { return };
        // Cut short by a configuration change: nodes whose SYNC never came are
        // known differently on each side, so every node forgets their members
        // (even its own: its local members must join again). Every node moving
        // on together saw the same SYNCs, so they stay consistent.
        if !s.expect.is_empty() {
            let groups: Vec<Bytes> = self.views.keys().cloned().collect();
            for g in groups {
                let gone: Vec<(Member, Reason)> = self.views[&g]
                    .iter()
                    .filter(|m| s.expect.contains(&m.node))
                    .map(|m| (*m, Reason::NodeDown))
                    .collect();
                self.change(&g, Vec::new(), gone);
            }
        }
        let mut by_group: BTreeMap<Bytes, BTreeSet<Member>> = BTreeMap::new();
        for (node, list) in s.got {
            for (g, pid) in list {
                let who = Member { node, pid };
                if !self.views.get(&g).is_some_and(|v| v.contains(&who)) {
                    by_group.entry(g).or_default().insert(who);
                }
            }
        }
        for (g, joined) in by_group {
            self.change(
                &g,
                joined.into_iter().map(|m| (m, Reason::NodeUp)).collect(),
                Vec::new(),
            );
        }
        for ev in s.deferred {
            self.apply_message(&ev);
        }
    }

    fn apply_message(&mut self, ev: &Event) {
        let Event::Message(m) = ev else { return };
        if m.group.is_empty() {
            let Ok(c) = Control::decode(&m.payload) else {
                tracing::warn!(node = self.me.0, from = %m.sender, "malformed group control message");
                return;
            };
            let reason = if matches!(c, Control::ProcDown(..)) {
                Reason::ProcDown
            } else {
                Reason::Leave
            };
            match c {
                Control::Join(g, pid) => {
                    let who = Member {
                        node: m.sender,
                        pid,
                    };
                    // A JOIN from a node that has left (delivered in the
                    // transitional configuration) does not count.
                    let present = self
                        .config_nodes
                        .as_ref()
                        .is_some_and(|n| n.contains(&m.sender));
                    if present && !self.views.get(&g).is_some_and(|v| v.contains(&who)) {
                        self.change(&g, vec![(who, Reason::Join)], Vec::new());
                    }
                }
                Control::Leave(g, pid) | Control::ProcDown(g, pid) => {
                    let who = Member {
                        node: m.sender,
                        pid,
                    };
                    if self.views.get(&g).is_some_and(|v| v.contains(&who)) {
                        self.change(&g, Vec::new(), vec![(who, reason)]);
                    }
                }
                // A SYNC outside its synchronisation (sent for a configuration
                // that ended before it went out) is stale.
                Control::Sync(..) => {}
            }
            return;
        }
        if m.payload.len() < 4 {
            return;
        }
        let pid = u32::from_be_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]);
        let from = Member {
            node: m.sender,
            pid,
        };
        if !self.views.get(&m.group).is_some_and(|v| v.contains(&from)) {
            return;
        }
        let payload = m.payload.slice(4..);
        for to in self.local_pids(&m.group) {
            self.events.push_back(Addressed {
                group: m.group.clone(),
                pid: to,
                event: GroupEvent::Message {
                    from,
                    delivery: m.delivery,
                    payload: payload.clone(),
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn control_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Control::decode(&Bytes::from(b));
        }

        #[test]
        fn control_round_trips(g in proptest::collection::vec(any::<u8>(), 1..20), pid in any::<u32>(), n in 0usize..5) {
            let g = Bytes::from(g);
            for c in [Control::Join(g.clone(), pid), Control::Leave(g.clone(), pid), Control::ProcDown(g.clone(), pid), Control::Sync(RingId::new(NodeId(pid), 7), vec![(g.clone(), pid); n])] {
                prop_assert_eq!(Control::decode(&c.encode()).unwrap(), c);
            }
        }
    }
}
