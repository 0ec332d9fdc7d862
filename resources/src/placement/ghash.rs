//! The slot layout of GLib 2.74's `GHashTable` for string keys, so that halyard
//! visits a node table in the order Pacemaker 2.1.5 does.
//!
//! Pacemaker keeps a resource's allowed nodes in a `GHashTable` keyed by the node
//! id string, case-insensitively (`pcmk__strikey_table`: [`strcase_hash`]). Where its result depends on the order
//! in which that table is walked (`g_hash_table_iter_next`, or
//! `g_hash_table_get_values` feeding a merge sort whose comparator is not a total
//! order), halyard needs the same order. GLib's layout is a pure function of the
//! sequence of insertions: open addressing with quadratic (triangular) probing from
//! `(hash * 11) % mod`, where `mod` is the largest prime below the power-of-two
//! table size; the table starts at 8 slots and is rehashed in place after an
//! insertion into a never-used slot fills it to 15/16 (or when it is under a
//! quarter full), to the smallest power of two above `nnodes * 1.333`.
//!
//! Only insertion is modelled (Pacemaker never removes nodes from these tables in
//! the paths halyard emulates), so there are no tombstones.

/// `prime_mod[shift]` of `ghash.c`.
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
    268435399, 536870909, 1073741789, 2147483647,
];

const MIN_SHIFT: u32 = 3;

/// `pcmk__strcase_hash`, the hash of Pacemaker's case-insensitive string tables
/// (`pcmk__strikey_table`, which holds the allowed nodes keyed by node id):
/// `h = h * 31 + tolower(c)` from 0, over signed chars.
pub fn strcase_hash(s: &str) -> u32 {
    let mut h: u32 = 0;
    for &b in s.as_bytes() {
        let c = b.to_ascii_lowercase();
        h = h
            .wrapping_shl(5)
            .wrapping_sub(h)
            .wrapping_add(c as i8 as i32 as u32);
    }
    h
}

/// `g_str_hash`: djb2 (`h = h * 33 + c`) over the bytes as *signed* chars.
pub fn str_hash(s: &str) -> u32 {
    let mut h: u32 = 5381;
    for &b in s.as_bytes() {
        h = h
            .wrapping_shl(5)
            .wrapping_add(h)
            .wrapping_add(b as i8 as i32 as u32);
    }
    h
}

/// A `GHashTable` reduced to what decides its iteration order: the stored hash of
/// each slot (0 = unused) and the caller's key for it.
#[derive(Debug, Clone)]
pub struct GHashLayout {
    hashes: Vec<u32>,
    keys: Vec<u32>,
    modulo: u32,
    nnodes: usize,
    noccupied: usize,
}

/// Equal when the same keys sit in the same slots (stale keys of unused slots
/// do not count).
impl PartialEq for GHashLayout {
    fn eq(&self, other: &Self) -> bool {
        self.modulo == other.modulo
            && self.nnodes == other.nnodes
            && self.hashes == other.hashes
            && self
                .hashes
                .iter()
                .zip(self.keys.iter().zip(&other.keys))
                .all(|(h, (a, b))| *h <= 1 || a == b)
    }
}

impl Eq for GHashLayout {}

impl Default for GHashLayout {
    fn default() -> Self {
        Self::new()
    }
}

impl GHashLayout {
    /// An empty table (`g_hash_table_new`: 8 slots).
    pub fn new() -> Self {
        let mut t = GHashLayout {
            hashes: Vec::new(),
            keys: Vec::new(),
            modulo: 0,
            nnodes: 0,
            noccupied: 0,
        };
        t.set_shift(MIN_SHIFT);
        t.hashes = vec![0; 1 << MIN_SHIFT];
        t.keys = vec![0; 1 << MIN_SHIFT];
        t
    }

    fn set_shift(&mut self, shift: u32) {
        self.modulo = PRIME_MOD[shift as usize];
    }

    fn mask(&self) -> usize {
        self.hashes.len() - 1
    }

    fn to_index(&self, hash: u32) -> usize {
        (hash.wrapping_mul(11) % self.modulo) as usize
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.nnodes
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.nnodes == 0
    }

    /// `g_hash_table_insert` of a key whose `g_str_hash` is `hash` and whose identity
    /// (for `g_str_equal`) is `key`. Returns false when the key was already present.
    pub fn insert(&mut self, hash: u32, key: u32) -> bool {
        let hash = if hash <= 1 { 2 } else { hash };
        let mut ix = self.to_index(hash);
        let mut step = 0;
        while self.hashes[ix] != 0 {
            if self.hashes[ix] == hash && self.keys[ix] == key {
                return false;
            }
            step += 1;
            ix = (ix + step) & self.mask();
        }
        self.hashes[ix] = hash;
        self.keys[ix] = key;
        self.nnodes += 1;
        self.noccupied += 1;
        self.maybe_resize();
        true
    }

    fn maybe_resize(&mut self) {
        let size = self.hashes.len();
        let occ = self.noccupied;
        if (size > self.nnodes * 4 && size > 1 << MIN_SHIFT) || size <= occ + occ / 16 {
            self.resize();
        }
    }

    fn resize(&mut self) {
        let old_size = self.hashes.len();
        // g_hash_table_set_shift_from_size (nnodes * 1.333): the number of bits.
        let want = (self.nnodes as f64 * 1.333) as u64;
        let shift = (64 - want.leading_zeros()).max(MIN_SHIFT);
        self.set_shift(shift);
        let new_size = 1usize << shift;
        if new_size > old_size {
            self.hashes.resize(new_size, 0);
            self.keys.resize(new_size, 0);
        }
        let mut done = vec![false; new_size.max(old_size)];
        let mask = new_size - 1;
        for i in 0..old_size {
            let mut node_hash = self.hashes[i];
            if node_hash <= 1 {
                self.hashes[i] = 0;
                continue;
            }
            if done[i] {
                continue;
            }
            self.hashes[i] = 0;
            let mut key = self.keys[i];
            loop {
                let mut ix = self.to_index(node_hash);
                let mut step = 0;
                while done[ix] {
                    step += 1;
                    ix = (ix + step) & mask;
                }
                done[ix] = true;
                let replaced = self.hashes[ix];
                self.hashes[ix] = node_hash;
                if replaced <= 1 {
                    self.keys[ix] = key;
                    break;
                }
                node_hash = replaced;
                std::mem::swap(&mut self.keys[ix], &mut key);
            }
        }
        if new_size < old_size {
            self.hashes.truncate(new_size);
            self.keys.truncate(new_size);
        }
        self.noccupied = self.nnodes;
    }

    /// Keys in `GHashTableIter` order (slot order).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.hashes
            .iter()
            .zip(&self.keys)
            .filter(|(h, _)| **h > 1)
            .map(|(_, k)| *k)
    }

    /// `pcmk__copy_node_table`: a new table with the keys inserted in this table's
    /// iteration order (the hashes come along).
    pub fn copy(&self) -> GHashLayout {
        let mut t = GHashLayout::new();
        for (h, k) in self.hashes.iter().zip(&self.keys) {
            if *h > 1 {
                t.insert(*h, *k);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(keys: &[&str]) -> (GHashLayout, Vec<String>) {
        let mut t = GHashLayout::new();
        for (i, k) in keys.iter().enumerate() {
            t.insert(str_hash(k), i as u32);
        }
        let order = t.iter().map(|i| keys[i as usize].to_string()).collect();
        (t, order)
    }

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| i.to_string()).collect()
    }

    #[test]
    fn str_hash_is_djb2_over_signed_chars() {
        assert_eq!(str_hash(""), 5381);
        assert_eq!(str_hash("1"), 5381 * 33 + 49);
        // A byte >= 0x80 counts as negative (GLib reads `signed char`).
        assert_eq!(str_hash("\u{e9}"), {
            let h = 5381u32
                .wrapping_mul(33)
                .wrapping_add(0xc3u8 as i8 as i32 as u32);
            h.wrapping_mul(33).wrapping_add(0xa9u8 as i8 as i32 as u32)
        });
    }

    // The expected orders below were read from GLib 2.74.6 itself
    // (g_hash_table_new (g_str_hash, g_str_equal), keys "1".."N" inserted in order,
    // g_hash_table_get_keys reversed = iteration order).
    #[test]
    fn iteration_order_matches_glib() {
        let k = ids(3);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        assert_eq!(build(&refs).1.join(" "), "1 3 2");
        let k = ids(16);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        assert_eq!(
            build(&refs).1.join(" "),
            "9 12 15 1 4 7 10 13 16 2 5 8 11 14 3 6"
        );
        let k = ids(64);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        assert_eq!(
            build(&refs).1.join(" "),
            "6 29 64 41 18 53 30 7 42 19 54 8 31 43 20 55 9 32 44 21 56 33 10 45 22 57 34 \
             11 46 23 58 35 12 47 1 24 59 36 13 48 2 25 60 37 14 49 3 26 61 38 15 50 4 27 \
             62 39 16 51 5 28 63 40 52 17"
        );
    }

    #[test]
    fn copy_reinserts_in_iteration_order() {
        let k = ids(64);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let (t, _) = build(&refs);
        let c = t.copy();
        let order: Vec<&str> = c.iter().map(|i| refs[i as usize]).collect();
        assert_eq!(
            order.join(" "),
            "6 64 29 41 53 18 30 7 42 54 19 31 8 43 20 55 32 9 44 21 56 33 10 45 22 57 34 \
             11 46 23 58 35 12 47 1 24 59 36 13 48 2 25 60 37 14 49 3 61 26 38 15 50 4 62 \
             27 39 16 51 5 28 63 40 52 17"
        );
        assert_eq!(c.copy(), c);
    }

    #[test]
    fn duplicate_insert_is_ignored() {
        let mut t = GHashLayout::new();
        assert!(t.insert(str_hash("a"), 0));
        assert!(!t.insert(str_hash("a"), 0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn larger_tables_match_glib() {
        // 256 ids: several in-place rehashes with evictions.
        let k = ids(256);
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let got: Vec<u32> = build(&refs).1.iter().map(|s| s.parse().unwrap()).collect();
        let want: Vec<u32> = vec![
            34, 118, 142, 189, 35, 119, 143, 36, 60, 144, 37, 61, 145, 220, 38, 62, 146, 221, 39,
            170, 100, 63, 147, 222, 171, 101, 64, 148, 223, 172, 102, 65, 149, 224, 173, 103, 66,
            225, 90, 174, 20, 104, 67, 226, 91, 175, 250, 21, 105, 68, 227, 92, 176, 251, 22, 106,
            69, 228, 130, 93, 177, 252, 23, 107, 229, 131, 94, 178, 253, 24, 108, 132, 95, 179,
            254, 25, 109, 133, 96, 255, 26, 50, 134, 97, 256, 27, 51, 210, 98, 135, 28, 52, 211,
            99, 136, 160, 29, 53, 212, 137, 161, 54, 213, 138, 162, 55, 214, 139, 163, 56, 215, 80,
            164, 10, 57, 216, 81, 165, 240, 11, 58, 217, 82, 166, 241, 12, 190, 59, 218, 120, 83,
            167, 242, 13, 191, 219, 121, 84, 168, 243, 14, 192, 122, 85, 169, 1, 15, 193, 244, 123,
            86, 2, 245, 16, 194, 40, 124, 87, 3, 246, 17, 195, 41, 125, 88, 4, 200, 18, 196, 247,
            42, 126, 89, 5, 201, 19, 150, 197, 248, 43, 127, 202, 6, 249, 151, 198, 44, 203, 128,
            7, 152, 199, 45, 204, 129, 8, 153, 46, 205, 9, 70, 154, 47, 206, 71, 230, 155, 48, 207,
            72, 231, 156, 49, 208, 180, 110, 73, 232, 157, 181, 209, 111, 74, 233, 158, 182, 112,
            75, 159, 234, 183, 113, 76, 235, 184, 30, 114, 77, 236, 185, 31, 115, 78, 237, 186, 32,
            116, 79, 238, 140, 187, 33, 117, 239, 141, 188,
        ];
        assert_eq!(got, want);
        // Other key shapes (node names).
        let k: Vec<String> = (1..=40).map(|i| format!("node{i}")).collect();
        let refs: Vec<&str> = k.iter().map(String::as_str).collect();
        let got: Vec<u32> = build(&refs)
            .1
            .iter()
            .map(|s| s.trim_start_matches("node").parse().unwrap())
            .collect();
        let want: Vec<u32> = vec![
            18, 33, 23, 7, 39, 13, 29, 2, 19, 34, 24, 8, 14, 3, 35, 25, 9, 30, 15, 20, 4, 36, 10,
            40, 26, 16, 31, 21, 5, 37, 11, 27, 17, 32, 22, 6, 38, 12, 28, 1,
        ];
        assert_eq!(got, want);
    }

    // Node tables as Pacemaker 2.1.5 builds them: ids "1".."N" inserted in order
    // with pcmk__strcase_hash (read from GLib 2.74.6 with that hash function, and,
    // for 5 and 16 nodes, from crm_simulate's own allocation-score traces).
    #[test]
    fn pacemaker_node_tables_match() {
        let order = |n: usize| -> Vec<u32> {
            let mut t = GHashLayout::new();
            for i in 1..=n {
                t.insert(strcase_hash(&i.to_string()), i as u32);
            }
            if n <= 16 {
                assert_eq!(t.copy(), t, "copying this table keeps its layout");
            }
            t.iter().collect()
        };
        assert_eq!(order(5), vec![1, 3, 5, 2, 4]);
        assert_eq!(
            order(16),
            vec![10, 3, 13, 16, 6, 9, 1, 11, 4, 14, 7, 2, 12, 15, 5, 8]
        );
        let want: Vec<u32> = vec![
            27, 43, 57, 14, 30, 28, 44, 60, 58, 15, 31, 29, 45, 61, 16, 1, 32, 59, 46, 62, 2, 17,
            33, 47, 20, 18, 3, 63, 34, 50, 48, 21, 19, 4, 64, 35, 51, 49, 22, 5, 36, 52, 23, 6, 37,
            10, 53, 24, 7, 40, 38, 54, 11, 25, 8, 41, 39, 55, 12, 26, 9, 42, 56, 13,
        ];
        assert_eq!(order(64), want);
        let want: Vec<u32> = vec![
            46, 167, 108, 223, 76, 197, 138, 253, 17, 47, 168, 109, 224, 77, 18, 139, 254, 198, 48,
            169, 225, 78, 19, 1, 255, 199, 49, 226, 79, 2, 256, 227, 3, 228, 4, 229, 5, 6, 120,
            150, 7, 180, 121, 30, 151, 8, 60, 181, 122, 90, 31, 152, 9, 61, 182, 123, 91, 32, 153,
            62, 183, 124, 92, 33, 154, 210, 63, 184, 240, 125, 93, 34, 155, 211, 64, 185, 241, 126,
            94, 35, 156, 212, 65, 186, 127, 242, 95, 36, 157, 213, 66, 187, 128, 243, 96, 37, 158,
            214, 67, 188, 129, 244, 97, 38, 159, 215, 68, 189, 245, 98, 39, 216, 69, 246, 99, 217,
            247, 218, 248, 219, 249, 110, 140, 170, 111, 20, 141, 50, 171, 112, 80, 21, 142, 51,
            172, 113, 81, 22, 143, 52, 173, 114, 82, 23, 144, 200, 53, 174, 230, 115, 83, 24, 145,
            201, 54, 175, 231, 116, 84, 25, 146, 202, 55, 176, 117, 232, 85, 26, 147, 203, 56, 177,
            233, 118, 86, 27, 148, 204, 57, 178, 234, 119, 87, 28, 149, 205, 58, 179, 235, 88, 29,
            206, 59, 236, 89, 207, 237, 208, 238, 209, 239, 100, 130, 160, 101, 190, 131, 10, 40,
            161, 102, 70, 11, 132, 191, 41, 162, 103, 71, 192, 133, 12, 42, 163, 104, 72, 13, 134,
            193, 43, 164, 105, 220, 73, 194, 135, 250, 14, 44, 165, 106, 221, 74, 195, 136, 251,
            15, 45, 166, 107, 222, 75, 196, 137, 252, 16,
        ];
        assert_eq!(order(256), want);
        assert_eq!(strcase_hash("AbC"), strcase_hash("abc"));
    }
}
