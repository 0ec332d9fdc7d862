//! One Totem node per process, for benchmarks against Corosync (which also runs
//! one process per node). Prints every configuration change as one line:
//! `<unix time, s> <node> <Transitional|Regular> <ring> <members,comma-separated>`.
//! If the output falls more than the event queue behind (a blocked stdout), the
//! changes it missed are replaced by one `Regular` line with the current ring,
//! and the number missed goes to stderr.
//!
//! ```sh
//! ring_node --id 1 --members 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
//!           --keyfile PATH [--token MS] [--coef MS] [--state-dir DIR] [--lan-fast]
//! ```
//!
//! Every datagram is authenticated and encrypted with the cluster key at `--keyfile`
//! (write one with `halyard-keygen PATH`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use halyard_membership::crypto::next_epoch;
use halyard_membership::{
    ClusterKey, ConfigurationChange, Event, FileRingIdStore, Node, NodeConfig, NodeEvent, NodeId,
    SecureEnvelope, TotemConfig,
};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let id = NodeId(
        arg(&args, "--id")
            .and_then(|s| s.parse().ok())
            .expect("--id N"),
    );
    let members: BTreeMap<NodeId, SocketAddr> = arg(&args, "--members")
        .expect("--members 1=ADDR,2=ADDR,...")
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ID=ADDR");
            (
                NodeId(k.parse().expect("node id")),
                v.parse().expect("socket address"),
            )
        })
        .collect();
    let mut totem = if args.iter().any(|a| a == "--lan-fast") {
        TotemConfig::lan_fast()
    } else {
        TotemConfig::default()
    };
    if let Some(t) = arg(&args, "--token") {
        totem.token = Duration::from_millis(t.parse().expect("token ms"));
    }
    if let Some(c) = arg(&args, "--coef") {
        totem.token_coefficient = Duration::from_millis(c.parse().expect("coefficient ms"));
    }
    if args.iter().any(|a| a == "--no-fast-failover") {
        totem.fast_failover = false;
    }
    let dir =
        arg(&args, "--state-dir").unwrap_or_else(|| std::env::temp_dir().display().to_string());
    std::fs::create_dir_all(&dir).expect("state dir");
    let eff = totem.effective(members.len()).expect("valid configuration");
    eprintln!(
        "node {}: token {:?} consensus {:?} token_retransmit {:?}",
        id.0, eff.token, eff.consensus, eff.token_retransmit
    );
    let key_path = arg(&args, "--keyfile").expect("--keyfile PATH (written by halyard-keygen)");
    let key = ClusterKey::load(&key_path).expect("cluster key");
    let epoch =
        next_epoch(std::path::Path::new(&dir).join(format!("epoch-{}", id.0))).expect("epoch file");
    let envelope = SecureEnvelope::new(
        &key,
        &totem.cluster_name,
        id,
        epoch,
        members.keys().copied(),
    )
    .expect("valid envelope");
    let config = NodeConfig::new(id, totem, members);
    let (_handle, mut events) = Node::start(
        config,
        Box::new(FileRingIdStore::in_dir(&dir, id)),
        Box::new(envelope),
    )
    .await
    .expect("node starts");
    let mut out = std::io::stdout().lock();
    while let Some(e) = events.next().await {
        let (at, c): (_, ConfigurationChange) = match e {
            NodeEvent::Engine {
                at,
                event: Event::Configuration(c),
            } => (at, c),
            NodeEvent::Engine { .. } => continue,
            // Missed changes: resynchronise with the current regular configuration.
            NodeEvent::Lagged(lag) => {
                eprintln!(
                    "node {}: output fell behind, {} events missed",
                    id.0, lag.missed
                );
                match lag.configuration {
                    Some(c) => (lag.at, c),
                    None => continue,
                }
            }
        };
        // Convert the event's monotonic time to wall-clock time.
        let age = at.elapsed();
        let t = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock") - age;
        let m: Vec<String> = c.members.iter().map(|n| n.0.to_string()).collect();
        let _ = writeln!(
            out,
            "{:.6} {} {:?} {} {}",
            t.as_secs_f64(),
            id.0,
            c.kind,
            c.ring_id,
            m.join(",")
        );
        let _ = out.flush();
    }
}
