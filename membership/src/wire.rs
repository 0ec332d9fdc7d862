//! The Totem wire format: one versioned header and six message bodies.
//!
//! Every datagram the ring engine sends is one [`Message`]: a fixed [`Header`]
//! followed by the body of its [`MessageType`]. All integers are big-endian.
//!
//! ```text
//! header (28 bytes)
//! +--------+---------+------+--------------+--------+-----------------------+
//! | magic  | version | type | cluster hash | sender | ring id (rep u32,     |
//! | u16    | u8      | u8   | u32          | u32    |          seq u64)     |
//! +--------+---------+------+--------------+--------+-----------------------+
//!   plus 4 reserved bytes (must be zero) so the body starts 8-byte aligned.
//! ```
//!
//! | type | body |
//! |---|---|
//! | 0 ORF token | token_seq u64, seq u64, aru u64, aru_addr u32, backlog u32, fcc u32, retrans_flg u8, rtr count u16, rtr entries (ring id, seq u64) |
//! | 1 MCAST | seq u64, guarantee u8, encapsulated u8, payload len u32, payload |
//! | 2 MERGE_DETECT | (empty: the header's ring id is the point) |
//! | 3 JOIN / 6 LEAVE | ring_seq u64, proc count u16, failed count u16, node ids u32 (ascending, no duplicates) |
//! | 4 COMMIT token | token_seq u64, retrans_flg u8, memb_index u16, member count u16, members u32 (ascending), then per member: present u8 and, when present, old ring id, aru u64, high_delivered u64, received_flg u8 |
//! | 5 TOKEN_HOLD_CANCEL | (empty) |
//!
//! The header's ring id is the sender's current ring for every type except the
//! commit token, where it is the *new* ring being formed.
//!
//! Decoding never panics and never allocates more than the datagram justifies:
//! every list length is bounded ([`MAX_NODES`], [`MAX_RTR_ENTRIES`],
//! [`MAX_PAYLOAD`]) and checked against the bytes that remain, node lists must be
//! strictly ascending, flags must be 0 or 1, and trailing bytes are rejected.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ring::RingId;
use crate::{Error, NodeId, Result};

/// First two bytes of every datagram ("HY").
pub const MAGIC: u16 = 0x4859;
/// The wire format version this build speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 28;
/// Largest node list in a JOIN, LEAVE or commit token (Corosync's
/// `PROCESSOR_COUNT_MAX` is 384).
pub const MAX_NODES: usize = 384;
/// Largest retransmit list on an ORF token. Corosync uses 30
/// (`RETRANSMIT_ENTRIES_MAX`); the wire allows more so that `ordering` may tune it.
pub const MAX_RTR_ENTRIES: usize = 256;
/// Largest MCAST payload (one frame; `ordering` fragments larger messages).
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// The six Totem message types (Corosync's numbering) plus LEAVE, which Corosync
/// encodes as a JOIN with a dummy node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// The ordering, reliability and flow-control token.
    OrfToken = 0,
    /// A ring-ordered multicast message.
    Mcast = 1,
    /// "My ring is ...": merges partitions.
    MergeDetect = 2,
    /// Membership JOIN (proc and failed sets).
    Join = 3,
    /// The commit token that forms a new ring.
    CommitToken = 4,
    /// Asks the representative to release a held token.
    TokenHoldCancel = 5,
    /// Graceful leave.
    Leave = 6,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::OrfToken,
            1 => Self::Mcast,
            2 => Self::MergeDetect,
            3 => Self::Join,
            4 => Self::CommitToken,
            5 => Self::TokenHoldCancel,
            6 => Self::Leave,
            _ => return None,
        })
    }
}

/// The common header of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// FNV-1a hash of the cluster name ([`cluster_name_hash`]).
    pub cluster: u32,
    /// The sending node.
    pub sender: NodeId,
    /// The sender's ring (for the commit token: the new ring).
    pub ring_id: RingId,
}

/// One retransmit request on the ORF token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtrItem {
    /// Ring of the missing message.
    pub ring_id: RingId,
    /// Its sequence number.
    pub seq: u64,
}

/// The ORF token (Corosync's `struct orf_token`). The membership engine owns
/// `token_seq` and the hop; the ordering fields are maintained through the
/// [`OrderingHook`](crate::hook::OrderingHook).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrfToken {
    /// Hop counter; a node drops a token whose `token_seq` it has already seen.
    pub token_seq: u64,
    /// Highest message sequence number assigned on this ring.
    pub seq: u64,
    /// All-received-up-to, the minimum around the ring.
    pub aru: u64,
    /// The node that last lowered `aru` (`None` when `aru == seq`).
    pub aru_addr: Option<NodeId>,
    /// Messages queued but not yet sent, summed over the ring.
    pub backlog: u32,
    /// Messages sent during the last rotation (flow control).
    pub fcc: u32,
    /// Set in RECOVERY while some member still has old-ring messages to re-send.
    pub retrans_flg: bool,
    /// Retransmit requests.
    pub rtr_list: Vec<RtrItem>,
}

/// A ring-ordered multicast (Corosync's `struct mcast`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mcast {
    /// Sequence number assigned from the token.
    pub seq: u64,
    /// Requested delivery guarantee (0 agreed, 1 safe; interpreted by `ordering`).
    pub guarantee: u8,
    /// Set when this new-ring message carries an old-ring message during RECOVERY.
    pub encapsulated: bool,
    /// The message itself (opaque to membership).
    pub payload: Bytes,
}

/// A JOIN (or LEAVE) message's body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Join {
    /// Highest ring sequence number the sender knows.
    pub ring_seq: u64,
    /// Nodes the sender believes belong in the new ring (ascending).
    pub proc_list: Vec<NodeId>,
    /// Nodes the sender has given up on (ascending).
    pub failed_list: Vec<NodeId>,
}

/// One member's entry in the commit token, filled on the first rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitEntry {
    /// The member's previous (old) ring.
    pub old_ring_id: RingId,
    /// Its all-received-up-to on the old ring.
    pub aru: u64,
    /// Highest old-ring seq it delivered.
    pub high_delivered: u64,
    /// Whether it received every old-ring message up to its high seq.
    pub received_flg: bool,
}

/// The commit token (Corosync's `struct memb_commit_token`). Its new ring id is
/// the header's ring id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitToken {
    /// Hop counter.
    pub token_seq: u64,
    /// Retransmission flag carried for `ordering`.
    pub retrans_flg: bool,
    /// Index of the next member to fill its entry (`== members.len()` after the first rotation).
    pub memb_index: u16,
    /// The new ring's members, ascending.
    pub members: Vec<NodeId>,
    /// One entry per member, `None` until that member has filled it.
    pub entries: Vec<Option<CommitEntry>>,
}

/// A message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// ORF token.
    OrfToken(OrfToken),
    /// Multicast.
    Mcast(Mcast),
    /// Merge detect.
    MergeDetect,
    /// Join.
    Join(Join),
    /// Commit token.
    CommitToken(CommitToken),
    /// Token hold cancel.
    TokenHoldCancel,
    /// Leave (same body as a JOIN).
    Leave(Join),
}

impl Body {
    /// The body's message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::OrfToken(_) => MessageType::OrfToken,
            Body::Mcast(_) => MessageType::Mcast,
            Body::MergeDetect => MessageType::MergeDetect,
            Body::Join(_) => MessageType::Join,
            Body::CommitToken(_) => MessageType::CommitToken,
            Body::TokenHoldCancel => MessageType::TokenHoldCancel,
            Body::Leave(_) => MessageType::Leave,
        }
    }
}

/// One datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The body.
    pub body: Body,
}

/// FNV-1a (32-bit) of the cluster name, carried in every header.
pub fn cluster_name_hash(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn put_ring_id(buf: &mut BytesMut, r: RingId) {
    buf.put_u32(r.rep.0);
    buf.put_u64(r.seq);
}

fn put_nodes(buf: &mut BytesMut, nodes: &[NodeId]) {
    for n in nodes {
        buf.put_u32(n.0);
    }
}

impl Message {
    /// Encodes the message. Lists longer than the wire bounds are a programming
    /// error of the caller and are truncated to the bound (the engine never builds them).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + 64);
        buf.put_u16(MAGIC);
        buf.put_u8(VERSION);
        buf.put_u8(self.body.message_type() as u8);
        buf.put_u32(self.header.cluster);
        buf.put_u32(self.header.sender.0);
        put_ring_id(&mut buf, self.header.ring_id);
        buf.put_u32(0);
        match &self.body {
            Body::OrfToken(t) => {
                buf.put_u64(t.token_seq);
                buf.put_u64(t.seq);
                buf.put_u64(t.aru);
                buf.put_u32(t.aru_addr.map_or(0, |n| n.0));
                buf.put_u32(t.backlog);
                buf.put_u32(t.fcc);
                buf.put_u8(u8::from(t.retrans_flg));
                let n = t.rtr_list.len().min(MAX_RTR_ENTRIES);
                buf.put_u16(n as u16);
                for r in &t.rtr_list[..n] {
                    put_ring_id(&mut buf, r.ring_id);
                    buf.put_u64(r.seq);
                }
            }
            Body::Mcast(m) => {
                buf.put_u64(m.seq);
                buf.put_u8(m.guarantee);
                buf.put_u8(u8::from(m.encapsulated));
                let n = m.payload.len().min(MAX_PAYLOAD);
                buf.put_u32(n as u32);
                buf.put_slice(&m.payload[..n]);
            }
            Body::MergeDetect | Body::TokenHoldCancel => {}
            Body::Join(j) | Body::Leave(j) => {
                buf.put_u64(j.ring_seq);
                let p = j.proc_list.len().min(MAX_NODES);
                let f = j.failed_list.len().min(MAX_NODES);
                buf.put_u16(p as u16);
                buf.put_u16(f as u16);
                put_nodes(&mut buf, &j.proc_list[..p]);
                put_nodes(&mut buf, &j.failed_list[..f]);
            }
            Body::CommitToken(c) => {
                buf.put_u64(c.token_seq);
                buf.put_u8(u8::from(c.retrans_flg));
                buf.put_u16(c.memb_index);
                let n = c.members.len().min(MAX_NODES);
                buf.put_u16(n as u16);
                put_nodes(&mut buf, &c.members[..n]);
                for i in 0..n {
                    match c.entries.get(i).copied().flatten() {
                        None => buf.put_u8(0),
                        Some(e) => {
                            buf.put_u8(1);
                            put_ring_id(&mut buf, e.old_ring_id);
                            buf.put_u64(e.aru);
                            buf.put_u64(e.high_delivered);
                            buf.put_u8(u8::from(e.received_flg));
                        }
                    }
                }
            }
        }
        buf.freeze()
    }

    /// Decodes one datagram. Never panics; any malformed input is an
    /// [`Error::Malformed`] (or [`Error::UnsupportedVersion`]).
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let mut r = Reader { buf: bytes };
        if bytes.len() < HEADER_LEN {
            return Err(malformed("shorter than the header"));
        }
        if r.u16()? != MAGIC {
            return Err(malformed("bad magic"));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let ty = MessageType::from_u8(r.u8()?).ok_or_else(|| malformed("unknown message type"))?;
        let cluster = r.u32()?;
        let sender = NodeId(r.u32()?);
        let ring_id = r.ring_id()?;
        if r.u32()? != 0 {
            return Err(malformed("reserved header bytes are not zero"));
        }
        let header = Header {
            cluster,
            sender,
            ring_id,
        };
        let body = match ty {
            MessageType::OrfToken => {
                let token_seq = r.u64()?;
                let seq = r.u64()?;
                let aru = r.u64()?;
                let aru_addr = match r.u32()? {
                    0 => None,
                    n => Some(NodeId(n)),
                };
                let backlog = r.u32()?;
                let fcc = r.u32()?;
                let retrans_flg = r.flag()?;
                let n = usize::from(r.u16()?);
                if n > MAX_RTR_ENTRIES {
                    return Err(malformed("retransmit list too long"));
                }
                r.need(n * 20)?;
                let mut rtr_list = Vec::with_capacity(n);
                for _ in 0..n {
                    let ring_id = r.ring_id()?;
                    let seq = r.u64()?;
                    rtr_list.push(RtrItem { ring_id, seq });
                }
                Body::OrfToken(OrfToken {
                    token_seq,
                    seq,
                    aru,
                    aru_addr,
                    backlog,
                    fcc,
                    retrans_flg,
                    rtr_list,
                })
            }
            MessageType::Mcast => {
                let seq = r.u64()?;
                let guarantee = r.u8()?;
                let encapsulated = r.flag()?;
                let n = r.u32()? as usize;
                if n > MAX_PAYLOAD {
                    return Err(malformed("payload too long"));
                }
                r.need(n)?;
                let payload = Bytes::copy_from_slice(&r.buf[..n]);
                r.buf.advance(n);
                Body::Mcast(Mcast {
                    seq,
                    guarantee,
                    encapsulated,
                    payload,
                })
            }
            MessageType::MergeDetect => Body::MergeDetect,
            MessageType::TokenHoldCancel => Body::TokenHoldCancel,
            MessageType::Join | MessageType::Leave => {
                let ring_seq = r.u64()?;
                let p = usize::from(r.u16()?);
                let f = usize::from(r.u16()?);
                if p > MAX_NODES || f > MAX_NODES {
                    return Err(malformed("node list too long"));
                }
                let proc_list = r.nodes(p)?;
                let failed_list = r.nodes(f)?;
                let j = Join {
                    ring_seq,
                    proc_list,
                    failed_list,
                };
                if ty == MessageType::Join {
                    Body::Join(j)
                } else {
                    Body::Leave(j)
                }
            }
            MessageType::CommitToken => {
                let token_seq = r.u64()?;
                let retrans_flg = r.flag()?;
                let memb_index = r.u16()?;
                let n = usize::from(r.u16()?);
                if n == 0 || n > MAX_NODES {
                    return Err(malformed("commit token member count out of range"));
                }
                if usize::from(memb_index) > n {
                    return Err(malformed("commit token memb_index beyond its members"));
                }
                let members = r.nodes(n)?;
                r.need(n)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    if r.flag()? {
                        let old_ring_id = r.ring_id()?;
                        let aru = r.u64()?;
                        let high_delivered = r.u64()?;
                        let received_flg = r.flag()?;
                        entries.push(Some(CommitEntry {
                            old_ring_id,
                            aru,
                            high_delivered,
                            received_flg,
                        }));
                    } else {
                        entries.push(None);
                    }
                }
                Body::CommitToken(CommitToken {
                    token_seq,
                    retrans_flg,
                    memb_index,
                    members,
                    entries,
                })
            }
        };
        if !r.buf.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Message { header, body })
    }
}

fn malformed(what: &str) -> Error {
    Error::Malformed(what.to_string())
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<()> {
        if self.buf.len() < n {
            Err(malformed("truncated"))
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("flag byte is neither 0 nor 1")),
        }
    }
    fn u16(&mut self) -> Result<u16> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    fn u32(&mut self) -> Result<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }
    fn u64(&mut self) -> Result<u64> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }
    fn ring_id(&mut self) -> Result<RingId> {
        let rep = NodeId(self.u32()?);
        let seq = self.u64()?;
        Ok(RingId { rep, seq })
    }
    /// `n` node ids, strictly ascending, none zero.
    fn nodes(&mut self, n: usize) -> Result<Vec<NodeId>> {
        self.need(n * 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.u32()?;
            if id == 0 {
                return Err(malformed("node id 0 in a node list"));
            }
            if out.last().is_some_and(|l: &NodeId| l.0 >= id) {
                return Err(malformed("node list not strictly ascending"));
            }
            out.push(NodeId(id));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node() -> impl Strategy<Value = NodeId> {
        (1u32..20).prop_map(NodeId)
    }
    fn ring_id() -> impl Strategy<Value = RingId> {
        (node(), any::<u64>()).prop_map(|(rep, seq)| RingId { rep, seq })
    }
    fn node_set() -> impl Strategy<Value = Vec<NodeId>> {
        proptest::collection::btree_set(node(), 0..8).prop_map(|s| s.into_iter().collect())
    }
    fn body() -> impl Strategy<Value = Body> {
        let token = (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(node()),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec((ring_id(), any::<u64>()), 0..5),
        )
            .prop_map(
                |(token_seq, seq, aru, aru_addr, backlog, fcc, retrans_flg, rtr)| {
                    Body::OrfToken(OrfToken {
                        token_seq,
                        seq,
                        aru,
                        aru_addr,
                        backlog,
                        fcc,
                        retrans_flg,
                        rtr_list: rtr
                            .into_iter()
                            .map(|(ring_id, seq)| RtrItem { ring_id, seq })
                            .collect(),
                    })
                },
            );
        let mcast = (
            any::<u64>(),
            any::<u8>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(seq, guarantee, encapsulated, p)| {
                Body::Mcast(Mcast {
                    seq,
                    guarantee,
                    encapsulated,
                    payload: Bytes::from(p),
                })
            });
        let join = (any::<u64>(), node_set(), node_set(), any::<bool>()).prop_map(
            |(ring_seq, p, f, leave)| {
                let j = Join {
                    ring_seq,
                    proc_list: p,
                    failed_list: f,
                };
                if leave {
                    Body::Leave(j)
                } else {
                    Body::Join(j)
                }
            },
        );
        let commit = (
            any::<u64>(),
            any::<bool>(),
            proptest::collection::btree_set(node(), 1..8),
            proptest::collection::vec(
                proptest::option::of((ring_id(), any::<u64>(), any::<u64>(), any::<bool>())),
                8,
            ),
            any::<u16>(),
        )
            .prop_map(|(token_seq, retrans_flg, members, entries, idx)| {
                let members: Vec<NodeId> = members.into_iter().collect();
                let n = members.len();
                Body::CommitToken(CommitToken {
                    token_seq,
                    retrans_flg,
                    memb_index: idx % (n as u16 + 1),
                    members,
                    entries: entries[..n]
                        .iter()
                        .map(|e| {
                            e.map(
                                |(old_ring_id, aru, high_delivered, received_flg)| CommitEntry {
                                    old_ring_id,
                                    aru,
                                    high_delivered,
                                    received_flg,
                                },
                            )
                        })
                        .collect(),
                })
            });
        prop_oneof![
            token,
            mcast,
            Just(Body::MergeDetect),
            Just(Body::TokenHoldCancel),
            join,
            commit
        ]
    }

    proptest! {
        #[test]
        fn round_trip(cluster in any::<u32>(), sender in node(), ring_id in ring_id(), body in body()) {
            let m = Message { header: Header { cluster, sender, ring_id }, body };
            let bytes = m.encode();
            prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn corrupted_valid_messages_never_panic(
            sender in node(), ring_id in ring_id(), body in body(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let m = Message { header: Header { cluster: 7, sender, ring_id }, body };
            let mut bytes = m.encode().to_vec();
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            let _ = Message::decode(&bytes);
            let cut = cut % (bytes.len() + 1);
            let _ = Message::decode(&bytes[..cut]);
        }
    }

    #[test]
    fn rejects_wrong_version_and_trailing_bytes() {
        let m = Message {
            header: Header {
                cluster: 1,
                sender: NodeId(1),
                ring_id: RingId::new(NodeId(1), 4),
            },
            body: Body::MergeDetect,
        };
        let mut b = m.encode().to_vec();
        b.push(0);
        assert!(matches!(Message::decode(&b), Err(Error::Malformed(_))));
        let mut b = m.encode().to_vec();
        b[2] = 9;
        assert!(matches!(
            Message::decode(&b),
            Err(Error::UnsupportedVersion(9))
        ));
    }

    #[test]
    fn huge_declared_lengths_are_rejected_without_allocating() {
        let m = Message {
            header: Header {
                cluster: 1,
                sender: NodeId(1),
                ring_id: RingId::new(NodeId(1), 4),
            },
            body: Body::Join(Join::default()),
        };
        let mut b = m.encode().to_vec();
        // proc count = 0xffff
        b[HEADER_LEN + 8] = 0xff;
        b[HEADER_LEN + 9] = 0xff;
        assert!(Message::decode(&b).is_err());
    }
}
