//! Stick tables: HAProxy 2.6's `stick-table type ip|ipv6` with one `stick
//! on|match|store-request src|dst` rule (`src/stick_table.c`, and
//! `process_sticking_rules` / `process_store_rules` in `src/stream.c`).
//!
//! A table maps a client's address (its source, or the address it
//! connected to) to the server that served it. [`StickTable::lookup`] is
//! the match (it refreshes the entry's expiry, as `stktable_touch_local`
//! does on a match), [`StickTable::store`] the store of the server the
//! session was connected to (a new entry, or the known one pointed at that
//! server). Entries go idle-expired (`expire`, counted from the last match
//! or store) and, when the table holds `size` entries and a new key comes,
//! the least recently used go first (`stktable_trash_oldest`). The caller
//! passes the time in; there is no clock here.
//!
//! Entries name servers by [`ServerId`], which a backend never reuses: an
//! entry of a removed server names no server and is ignored by the
//! backend, as HAProxy ignores a `server_id` it does not find.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::balance::ServerId;

/// The key type of a table (`stick-table type ip` or `type ipv6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableType {
    /// IPv4 keys. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts
    /// as its IPv4 address; any other IPv6 address has no key (the rule is
    /// skipped, as HAProxy's `v6tov4` conversion fails).
    Ip,
    /// IPv6 keys; an IPv4 address is stored IPv4-mapped (`::ffff:a.b.c.d`).
    Ipv6,
}

impl TableType {
    /// HAProxy's name of the type, as `show table` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TableType::Ip => "ip",
            TableType::Ipv6 => "ipv6",
        }
    }

    /// `ip` as a key of this type, if it converts.
    pub fn key(self, ip: IpAddr) -> Option<IpAddr> {
        match (self, ip) {
            (TableType::Ip, IpAddr::V4(_)) | (TableType::Ipv6, IpAddr::V6(_)) => Some(ip),
            (TableType::Ip, IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4),
            (TableType::Ipv6, IpAddr::V4(v4)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        }
    }
}

/// What the rule does (HAProxy's `stick on`, `stick match`, `stick
/// store-request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickRule {
    /// `stick on`: match, then store.
    On,
    /// `stick match`: look up only; never stores.
    Match,
    /// `stick store-request`: store only; never sends a session anywhere.
    StoreRequest,
}

impl StickRule {
    /// The rule looks the key up.
    pub fn matches(self) -> bool {
        matches!(self, StickRule::On | StickRule::Match)
    }

    /// The rule stores the session's server.
    pub fn stores(self) -> bool {
        matches!(self, StickRule::On | StickRule::StoreRequest)
    }
}

/// The sample the key is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// `src`: the client's address (the PROXY header's with `accept_proxy`).
    Src,
    /// `dst`: the address the client connected to (the PROXY header's with
    /// `accept_proxy`).
    Dst,
}

/// A backend's table and its rule, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickSpec {
    /// Key type.
    pub table_type: TableType,
    /// Most entries (HAProxy's `size`), at least 1.
    pub size: usize,
    /// Idle expiry (HAProxy's `expire`); `None`: entries never expire.
    pub expire: Option<Duration>,
    /// `on`, `match` or `store-request`.
    pub rule: StickRule,
    /// `src` or `dst`.
    pub sample: Sample,
}

impl StickSpec {
    /// The key of a session from `src` to `dst`, if the sample converts to
    /// the table's type.
    pub fn key(&self, src: IpAddr, dst: IpAddr) -> Option<IpAddr> {
        self.table_type.key(match self.sample {
            Sample::Src => src,
            Sample::Dst => dst,
        })
    }
}

#[derive(Debug, Clone)]
struct Entry {
    server: ServerId,
    touched: Instant,
    /// Place in the use order ([`StickTable::lru`]).
    seq: u64,
    /// Stands for HAProxy's entry address in `show table`.
    id: u64,
}

/// One stick table. See the module docs.
#[derive(Debug, Clone)]
pub struct StickTable {
    spec: StickSpec,
    entries: BTreeMap<IpAddr, Entry>,
    /// Keys by last use, least recent first.
    lru: BTreeMap<u64, IpAddr>,
    next: u64,
}

impl StickTable {
    /// An empty table.
    pub fn new(spec: StickSpec) -> Self {
        StickTable {
            spec,
            entries: BTreeMap::new(),
            lru: BTreeMap::new(),
            next: 1,
        }
    }

    /// The configuration.
    pub fn spec(&self) -> &StickSpec {
        &self.spec
    }

    /// The server stored for `key`, refreshing the entry's expiry.
    pub fn lookup(&mut self, now: Instant, key: IpAddr) -> Option<ServerId> {
        self.expire(now);
        let e = self.entries.get_mut(&key)?;
        let seq = self.next;
        self.next += 1;
        self.lru.remove(&e.seq);
        self.lru.insert(seq, key);
        e.seq = seq;
        e.touched = now;
        Some(e.server)
    }

    /// Stores `server` for `key` (a known key is pointed at it) and
    /// refreshes the entry. A new key in a full table first evicts the
    /// `size / 256 + 1` least recently used entries (HAProxy's
    /// `stksess_new`).
    pub fn store(&mut self, now: Instant, key: IpAddr, server: ServerId) {
        self.expire(now);
        let seq = self.next;
        self.next += 1;
        if let Some(e) = self.entries.get_mut(&key) {
            self.lru.remove(&e.seq);
            self.lru.insert(seq, key);
            e.seq = seq;
            e.touched = now;
            e.server = server;
            return;
        }
        if self.entries.len() >= self.spec.size {
            for _ in 0..(self.spec.size >> 8) + 1 {
                let Some((_, old)) = self.lru.pop_first() else {
                    break;
                };
                self.entries.remove(&old);
            }
        }
        self.lru.insert(seq, key);
        self.entries.insert(
            key,
            Entry {
                server,
                touched: now,
                seq,
                id: seq,
            },
        );
    }

    /// Removes `key`'s entry (`clear table ... key`); whether there was one.
    pub fn remove(&mut self, key: IpAddr) -> bool {
        match self.entries.remove(&key) {
            Some(e) => {
                self.lru.remove(&e.seq);
                true
            }
            None => false,
        }
    }

    /// Removes every entry (`clear table`).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
    }

    /// Entries not expired at `now`.
    pub fn len(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.entries.len()
    }

    /// Whether no entry is left at `now`.
    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// HAProxy's `show table NAME` header line.
    pub fn header(&mut self, name: &str, now: Instant) -> String {
        let used = self.len(now);
        format!(
            "# table: {name}, type: {}, size:{}, used:{used}\n",
            self.spec.table_type.name(),
            self.spec.size,
        )
    }

    /// HAProxy's `show table NAME [key K]`: the header, then one line per
    /// entry in key order, `0x<id>: key=<key> use=0 exp=<ms left>
    /// server_id=<id> server_key=<name>`. The `0x` number stands for
    /// HAProxy's entry address (stable for the entry's life); `use` is
    /// always 0 (no session holds an entry); `exp` is 0 without `expire`;
    /// `server_key` is left out when `name` finds no server (removed).
    pub fn show<'a>(
        &mut self,
        name: &str,
        now: Instant,
        only: Option<IpAddr>,
        server_name: impl Fn(ServerId) -> Option<&'a str>,
    ) -> String {
        let mut out = self.header(name, now);
        let expire = self.spec.expire;
        for (key, e) in &self.entries {
            if only.is_some_and(|k| k != *key) {
                continue;
            }
            let exp = expire.map_or(0, |x| {
                (e.touched + x).saturating_duration_since(now).as_millis()
            });
            let _ = write!(
                out,
                "0x{:x}: key={key} use=0 exp={exp} server_id={}",
                e.id, e.server
            );
            if let Some(n) = server_name(e.server) {
                let _ = write!(out, " server_key={n}");
            }
            out.push('\n');
        }
        out
    }

    /// Drops the entries idle for `expire` or longer (HAProxy's
    /// `stktable_trash_expired`; done on every access rather than by a
    /// task).
    fn expire(&mut self, now: Instant) {
        let Some(x) = self.spec.expire else {
            return;
        };
        while let Some((&seq, &key)) = self.lru.first_key_value() {
            match self.entries.get(&key) {
                Some(e) if now.saturating_duration_since(e.touched) < x => break,
                _ => {
                    self.lru.remove(&seq);
                    self.entries.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn spec(size: usize, expire: Option<u64>) -> StickSpec {
        StickSpec {
            table_type: TableType::Ip,
            size,
            expire: expire.map(Duration::from_secs),
            rule: StickRule::On,
            sample: Sample::Src,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn keys_convert_as_haproxy() {
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped());
        assert_eq!(TableType::Ip.key(ip(2)), Some(ip(2)));
        assert_eq!(TableType::Ip.key(mapped), Some(ip(2)));
        // HAProxy 2.6.12: a client from ::1 on a `type ip` table is not stored.
        assert_eq!(TableType::Ip.key(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
        assert_eq!(TableType::Ipv6.key(ip(2)), Some(mapped));
        assert_eq!(mapped.to_string(), "::ffff:127.0.0.2");
        let s = StickSpec {
            sample: Sample::Dst,
            ..spec(1, None)
        };
        assert_eq!(s.key(ip(2), ip(9)), Some(ip(9)));
    }

    #[test]
    fn store_then_match() {
        let t0 = Instant::now();
        let mut t = StickTable::new(spec(10, None));
        assert_eq!(t.lookup(t0, ip(2)), None);
        t.store(t0, ip(2), ServerId(1));
        assert_eq!(t.lookup(t0, ip(2)), Some(ServerId(1)));
        // A known key is pointed at the session's server (the client moved).
        t.store(t0, ip(2), ServerId(3));
        assert_eq!(t.lookup(t0, ip(2)), Some(ServerId(3)));
        assert_eq!(t.len(t0), 1);
        assert!(t.remove(ip(2)));
        assert!(!t.remove(ip(2)));
        assert!(t.is_empty(t0));
    }

    #[test]
    fn idle_entries_expire_and_a_match_refreshes() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut t = StickTable::new(spec(10, Some(10)));
        t.store(t0, ip(2), ServerId(1));
        t.store(t0, ip(3), ServerId(2));
        // HAProxy 2.6.12: a match alone resets `exp` to the full expire.
        assert_eq!(t.lookup(t0 + s(6), ip(2)), Some(ServerId(1)));
        assert_eq!(t.lookup(t0 + s(10), ip(3)), None, "expired at 10 s");
        assert_eq!(t.lookup(t0 + s(15), ip(2)), Some(ServerId(1)));
        assert_eq!(t.len(t0 + s(25)), 0);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let mut t = StickTable::new(spec(3, None));
        for k in 2..=4 {
            t.store(t0, ip(k), ServerId(1));
        }
        // .2 used again: .3 is now the oldest, and goes for .5 (as with
        // HAProxy 2.6.12, size 3).
        assert!(t.lookup(t0, ip(2)).is_some());
        t.store(t0, ip(5), ServerId(2));
        assert_eq!(t.len(t0), 3);
        assert_eq!(t.lookup(t0, ip(3)), None);
        // A known key in a full table evicts nothing.
        t.store(t0, ip(4), ServerId(3));
        assert_eq!(t.len(t0), 3);
        // Bigger tables evict size / 256 + 1 at a time.
        let mut big = StickTable::new(spec(512, None));
        for k in 0..512u32 {
            big.store(t0, IpAddr::V4(Ipv4Addr::from(k)), ServerId(1));
        }
        big.store(t0, ip(9), ServerId(1));
        assert_eq!(big.len(t0), 510);
        assert_eq!(big.lookup(t0, IpAddr::V4(Ipv4Addr::from(2))), None);
        assert!(big.lookup(t0, IpAddr::V4(Ipv4Addr::from(3))).is_some());
    }

    #[test]
    fn show_prints_haproxy_lines_in_key_order() {
        let t0 = Instant::now();
        let mut t = StickTable::new(spec(3, Some(10)));
        t.store(t0, ip(3), ServerId(2));
        t.store(t0, ip(2), ServerId(1));
        let names = |id: ServerId| (id == ServerId(1)).then_some("s1");
        let out = t.show("bk", t0 + Duration::from_millis(1500), None, names);
        assert_eq!(
            out,
            "# table: bk, type: ip, size:3, used:2\n\
             0x2: key=127.0.0.2 use=0 exp=8500 server_id=1 server_key=s1\n\
             0x1: key=127.0.0.3 use=0 exp=8500 server_id=2\n"
        );
        let one = t.show("bk", t0, Some(ip(3)), names);
        assert!(one.ends_with("used:2\n0x1: key=127.0.0.3 use=0 exp=10000 server_id=2\n"));
        t.clear();
        assert_eq!(
            t.header("bk", t0),
            "# table: bk, type: ip, size:3, used:0\n"
        );
    }
}
