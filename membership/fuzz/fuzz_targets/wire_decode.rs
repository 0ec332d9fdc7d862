//! Fuzzes the Totem wire decoder: any bytes must decode or fail cleanly, and
//! whatever decodes must re-encode to the same bytes (the format has exactly one
//! encoding per message). Also feeds the bytes to a live engine.
#![no_main]

use std::time::Instant;

use halyard_membership::wire::Message;
use halyard_membership::{MemoryRingIdStore, NodeId, Totem, TotemConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        assert_eq!(m.encode().as_ref(), data, "decode/encode is not a bijection");
    }
    let now = Instant::now();
    let nodes = [NodeId(1), NodeId(2), NodeId(3)];
    let mut t = Totem::new(NodeId(2), nodes, &TotemConfig::default(), Box::new(MemoryRingIdStore::new()), now)
        .expect("valid config");
    let sender = data.get(11).map_or(NodeId(1), |b| NodeId(u32::from(*b % 4)));
    t.handle_datagram(now, sender, data);
    while t.poll_transmit().is_some() {}
});
