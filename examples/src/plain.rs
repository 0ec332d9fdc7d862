//! A plaintext [`Envelope`] for the examples: it only puts the sender's node id
//! in front of each datagram. **No authentication, no encryption** — it exists
//! so the examples run before the secure envelope (`halyard_membership::crypto`)
//! is wired in; use that one for anything real.

use halyard_membership::{Envelope, Error, NodeId, Opened, Result};

/// Sender id + plaintext.
#[derive(Debug, Clone, Copy)]
pub struct PlainEnvelope(pub NodeId);

impl Envelope for PlainEnvelope {
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(plaintext.len() + 4);
        v.extend_from_slice(&self.0 .0.to_be_bytes());
        v.extend_from_slice(plaintext);
        v
    }

    fn open(&mut self, datagram: &[u8]) -> Result<Opened> {
        let Some((id, rest)) = datagram.split_first_chunk::<4>() else {
            return Err(Error::Malformed(
                "datagram shorter than the sender id".into(),
            ));
        };
        Ok(Opened {
            sender: NodeId(u32::from_be_bytes(*id)),
            plaintext: rest.to_vec(),
        })
    }
}
