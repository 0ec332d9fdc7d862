//! The frame format: what travels in one MCAST payload (Corosync's `totempg`
//! packing and fragmentation, plus the RECOVERY encapsulation of `totemsrp`).
//!
//! ```text
//! frame        = origin u32 | item count u16 | item*
//! item         = group len u8 | group | total u32 | offset u32 | chunk len u32 | chunk
//! encapsulated = old ring rep u32 | old ring seq u64 | old seq u64 | old guarantee u8 | frame
//! ```
//!
//! Many small messages are packed as whole items (`offset == 0`, `chunk len ==
//! total`) into one frame. A larger message is cut into chunks, one item per
//! frame, sent back to back by its origin; receivers reassemble per origin and
//! drop a partial message whose next chunk does not follow on (which can only
//! happen across a configuration change). All integers are big-endian.
//! Decoding never panics and checks every length against the bytes that remain.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use halyard_membership::{NodeId, RingId};

use crate::config::MAX_MESSAGE_HARD;
use crate::error::{Error, Result};

/// Bytes of the frame header.
pub const FRAME_HEADER: usize = 6;
/// Bytes of an item header, without the group name.
pub const ITEM_HEADER: usize = 13;
/// Bytes of the encapsulation header.
pub const ENCAP_HEADER: usize = 21;

/// One item of a frame: a whole message or one chunk of a large one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The process group (empty: the ring's plain stream).
    pub group: Bytes,
    /// The whole message's length.
    pub total: u32,
    /// Where this chunk starts in the message.
    pub offset: u32,
    /// The bytes.
    pub chunk: Bytes,
}

impl Item {
    /// Whether this item is a whole message.
    pub fn is_whole(&self) -> bool {
        self.offset == 0 && self.chunk.len() as u64 == u64::from(self.total)
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The node that built the frame.
    pub origin: NodeId,
    /// Its items, in the origin's send order.
    pub items: Vec<Item>,
}

/// An old-ring message carried in a new-ring MCAST during RECOVERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulated {
    /// The old ring.
    pub ring_id: RingId,
    /// Its sequence number on the old ring.
    pub seq: u64,
    /// Its guarantee.
    pub guarantee: u8,
    /// The old frame.
    pub frame: Bytes,
}

/// Builds a frame in place.
pub struct FrameBuilder {
    buf: BytesMut,
    count: u16,
}

impl FrameBuilder {
    /// A frame of `origin`, with room for `capacity` bytes.
    pub fn new(origin: NodeId, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity);
        buf.put_u32(origin.0);
        buf.put_u16(0);
        FrameBuilder { buf, count: 0 }
    }
    /// Bytes used so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// Whether no item was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Appends an item (the caller checks room and bounds).
    pub fn push(&mut self, group: &[u8], total: u32, offset: u32, chunk: &[u8]) {
        self.buf.put_u8(group.len() as u8);
        self.buf.put_slice(group);
        self.buf.put_u32(total);
        self.buf.put_u32(offset);
        self.buf.put_u32(chunk.len() as u32);
        self.buf.put_slice(chunk);
        self.count += 1;
    }
    /// The finished frame.
    pub fn finish(mut self) -> Bytes {
        let c = self.count.to_be_bytes();
        self.buf[4] = c[0];
        self.buf[5] = c[1];
        self.buf.freeze()
    }
}

struct Reader {
    buf: Bytes,
}

impl Reader {
    fn need(&self, n: usize) -> Result<()> {
        if self.buf.remaining() < n {
            Err(Error::Malformed("truncated"))
        } else {
            Ok(())
        }
    }
    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
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
    fn bytes(&mut self, n: usize) -> Result<Bytes> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }
}

impl Frame {
    /// Decodes a frame (zero-copy: items share `bytes`).
    pub fn decode(bytes: &Bytes) -> Result<Frame> {
        let mut r = Reader { buf: bytes.clone() };
        let origin = NodeId(r.u32()?);
        if origin.0 == 0 {
            return Err(Error::Malformed("origin node 0"));
        }
        let count = usize::from(r.u16()?);
        // Every item takes at least ITEM_HEADER bytes.
        if count * ITEM_HEADER > r.buf.remaining() {
            return Err(Error::Malformed("more items than bytes"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let g = usize::from(r.u8()?);
            let group = r.bytes(g)?;
            let total = r.u32()?;
            let offset = r.u32()?;
            let len = r.u32()? as usize;
            if total as usize > MAX_MESSAGE_HARD {
                return Err(Error::Malformed("message larger than the hard limit"));
            }
            if u64::from(offset) + len as u64 > u64::from(total) {
                return Err(Error::Malformed("chunk beyond the message's end"));
            }
            let chunk = r.bytes(len)?;
            items.push(Item {
                group,
                total,
                offset,
                chunk,
            });
        }
        if r.buf.has_remaining() {
            return Err(Error::Malformed("trailing bytes"));
        }
        Ok(Frame { origin, items })
    }

    /// Reads only the origin of a frame.
    pub fn origin(bytes: &[u8]) -> Option<NodeId> {
        let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some(NodeId(u32::from_be_bytes(b)))
    }
}

impl Encapsulated {
    /// Encodes it as a new-ring MCAST payload.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(ENCAP_HEADER + self.frame.len());
        buf.put_u32(self.ring_id.rep.0);
        buf.put_u64(self.ring_id.seq);
        buf.put_u64(self.seq);
        buf.put_u8(self.guarantee);
        buf.put_slice(&self.frame);
        buf.freeze()
    }
    /// Decodes it (the inner frame is checked only when it is delivered).
    pub fn decode(bytes: &Bytes) -> Result<Encapsulated> {
        let mut r = Reader { buf: bytes.clone() };
        let rep = NodeId(r.u32()?);
        let rseq = r.u64()?;
        let seq = r.u64()?;
        let guarantee = r.u8()?;
        if seq == 0 {
            return Err(Error::Malformed("encapsulated seq 0"));
        }
        Ok(Encapsulated {
            ring_id: RingId::new(rep, rseq),
            seq,
            guarantee,
            frame: r.buf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frame_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Frame::decode(&Bytes::from(b.clone()));
            let _ = Encapsulated::decode(&Bytes::from(b.clone()));
            let _ = Frame::origin(&b);
        }

        #[test]
        fn frame_round_trips(origin in 1u32.., items in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<u8>(), 0..64), 0u32..100), 0..10)) {
            let mut fb = FrameBuilder::new(NodeId(origin), 64);
            let mut want = Vec::new();
            for (g, c, extra) in &items {
                let total = c.len() as u32 + extra;
                fb.push(g, total, *extra, c);
                want.push(Item { group: Bytes::from(g.clone()), total, offset: *extra, chunk: Bytes::from(c.clone()) });
            }
            let f = Frame::decode(&fb.finish()).unwrap();
            prop_assert_eq!(f.origin, NodeId(origin));
            prop_assert_eq!(f.items, want);
        }

        #[test]
        fn encapsulated_round_trips(rep in any::<u32>(), rs in any::<u64>(), seq in 1u64.., g in any::<u8>(),
                                    frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            let e = Encapsulated { ring_id: RingId::new(NodeId(rep), rs), seq, guarantee: g, frame: Bytes::from(frame) };
            prop_assert_eq!(Encapsulated::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn mutated_frames_never_panic(idx in 0usize..200, val in any::<u8>(), cut in 0usize..200) {
            let mut fb = FrameBuilder::new(NodeId(3), 64);
            fb.push(b"grp", 10, 0, b"0123456789");
            fb.push(b"", 100, 20, b"abc");
            let mut v = fb.finish().to_vec();
            if idx < v.len() { v[idx] = val; }
            v.truncate(cut.max(1));
            let _ = Frame::decode(&Bytes::from(v));
        }
    }
}
