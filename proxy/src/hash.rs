//! Small deterministic hashes (no per-process random keys: the same input maps
//! to the same server in every run and on every node).

use std::net::IpAddr;

/// FNV-1a over `bytes`, finished with the murmur3 64-bit mixer so that nearby
/// inputs (consecutive addresses) spread over the whole range.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// The murmur3 `fmix64` finaliser.
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Hash of a client address (the address only, as HAProxy's `balance source`).
pub fn hash_ip(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => hash_bytes(&v4.octets()),
            None => hash_bytes(&v6.octets()),
        },
    }
}

/// HAProxy's `hash_sdbm` (`hash-type ... sdbm`, the default function):
/// `hash * 65599 + byte` in 32 bits.
pub fn sdbm(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |h, &c| {
        u32::from(c)
            .wrapping_add(h << 6)
            .wrapping_add(h << 16)
            .wrapping_sub(h)
    })
}

/// HAProxy's `hash_djb2`: `hash * 33 + byte` from 5381, in 32 bits.
pub fn djb2(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |h, &c| {
        (h << 5).wrapping_add(h).wrapping_add(u32::from(c))
    })
}

/// HAProxy's `hash_wt6`.
pub fn wt6(bytes: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in bytes {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        // A rotation (C's `(x << s) | (x >> (32 - s))`, which x86 reads as
        // `x` for s = 0, as `rotate_left` does).
        let t = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = t;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// HAProxy's `hash_crc32`: the CRC-32 of Ethernet, gzip and PNG.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut h = !0u32;
    for &c in bytes {
        h ^= u32::from(c);
        for _ in 0..8 {
            h = (h >> 1) ^ if h & 1 == 1 { 0xedb8_8320 } else { 0 };
        }
    }
    !h
}

/// HAProxy's `full_hash` (Bob Jenkins' 32-bit integer hash, then a
/// multiplication by a large prime): the `avalanche` modifier of
/// `hash-type`.
pub fn full_hash(mut a: u32) -> u32 {
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxys_hash_functions() {
        // The usual definitions of sdbm, djb2 and CRC-32 (zlib) over
        // "hello, world"; wt6 and full_hash from a model of HAProxy's that
        // placed 50 URIs as HAProxy 2.6.12 did (see balance.rs's table).
        assert_eq!(sdbm(b"hello, world"), 0xee6f_b30c);
        assert_eq!(djb2(b"hello, world"), 0xb0e4_250d);
        assert_eq!(crc32(b"hello, world"), 0xffab_723a);
        assert_eq!(wt6(b"hello, world"), 0x00e0_b528);
        assert_eq!(full_hash(12345), 0xf652_3c53);
        assert_eq!(sdbm(b""), 0);
        assert_eq!(crc32(b""), 0);
    }
}
