//! A whole high-availability cluster in one process, assembled from the four
//! crates, the way Corosync + Pacemaker + HAProxy run an OpenStack controller:
//!
//! - three nodes form an encrypted Totem ring (`halyard-membership`) and join one
//!   closed process group, `control` (`halyard-ordering`): every node sees the same
//!   membership changes and the same messages, in the same order;
//! - each node reports which resources it runs; the lowest node in the group is the
//!   DC: it writes the cluster state as a Pacemaker CIB and runs the placement
//!   solver (`halyard-resources`): `web` is an active/active clone, `db` an
//!   active/passive primitive with stickiness, colocated with `web`;
//! - each node applies the DC's placement through its executor and a resource
//!   agent (here an in-process HTTP service, a `ResourceAgent` written by the
//!   application), and its monitor results drive the proxy's server states through
//!   a `HealthSource` (`halyard-proxy`), in front of both services;
//! - a client sends requests through the proxy the whole time. Node 1 (the DC,
//!   and where `db` runs) is killed: the ring re-forms, node 2 becomes DC, `db`
//!   moves, the proxy stops sending to node 1. Node 1 then restarts and rejoins;
//!   `db` stays where it is (stickiness), `web` runs on node 1 again.
//!
//! [`run`] plays the scenario and returns a [`Report`]; every wait is bounded
//! (10 s). `cargo run --release -p halyard-examples --example cluster` prints the
//! timeline, and `tests/cluster.rs` checks the report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use halyard_membership::crypto::next_epoch;
use halyard_membership::{ClusterKey, FileRingIdStore, NodeId, SecureEnvelope, TotemConfig};
use halyard_ordering::{Cluster, ClusterConfig, Delivery, Group, GroupEvent, OrderingConfig};
use halyard_proxy::config::Config as ProxyConfig;
use halyard_proxy::health::{ChannelHealthSource, HealthReport, Operational};
use halyard_proxy::Proxy;
use halyard_resources::agent::{Action, ActionContext, Metadata, Outcome, ResourceAgent, Status};
use halyard_resources::executor::{Executor, OpEvent, OpKey, OpResult, OpStream};
use halyard_resources::placement;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The resources every node can run, and the proxy backend of each.
const RESOURCES: [&str; 2] = ["web", "db"];
/// How long every wait of the scenario may take before the example gives up.
const WAIT: Duration = Duration::from_secs(10);
/// Recurring monitor interval of both resources.
const MONITOR: Duration = Duration::from_millis(200);

/// Where the timeline goes: stdout with the time since start, or nowhere.
#[derive(Debug, Clone, Copy)]
struct Log {
    t0: Instant,
    verbose: bool,
}

/// Prints one line of the timeline.
fn say(log: Log, who: &str, text: impl AsRef<str>) {
    if log.verbose {
        let ms = log.t0.elapsed().as_secs_f64() * 1e3;
        println!("{ms:8.1} ms  {who:<7} {}", text.as_ref());
    }
}

fn node_name(n: NodeId) -> String {
    format!("node{}", n.0)
}

// ---------------------------------------------------------------------------
// The resource agent: a tiny HTTP service running inside the process.
// ---------------------------------------------------------------------------

/// An in-process HTTP service: `start` binds `127.0.0.1:<port>` and answers every
/// request with `<instance>@<node>`; `stop` closes it; `monitor` reports whether it
/// serves. `crash` drops everything at once, as a dying machine would.
#[derive(Default)]
struct HttpServiceAgent {
    running: Mutex<BTreeMap<String, JoinHandle<()>>>,
}

impl HttpServiceAgent {
    fn crash(&self) {
        for (_, task) in std::mem::take(&mut *self.running.lock().expect("lock")) {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, body: String) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let body = body.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            // Read the request head (bounded), then answer and close.
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 8192 {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}

#[async_trait]
impl ResourceAgent for HttpServiceAgent {
    fn name(&self) -> String {
        "native:example-http".into()
    }

    async fn start(&self, ctx: &ActionContext) -> Outcome {
        let port = ctx.params.get("port").and_then(|p| p.parse::<u16>().ok());
        let node = ctx.params.get("node").cloned().unwrap_or_default();
        let Some(port) = port else {
            return Outcome::with_reason(Status::NotConfigured, "parameter port is required");
        };
        if let Some(task) = self.running.lock().expect("lock").get(&ctx.instance) {
            if !task.is_finished() {
                return Outcome::success();
            }
        }
        let listener = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => return Outcome::with_reason(Status::GenericError, e.to_string()),
        };
        let body = format!("{}@{node}", ctx.instance);
        let task = tokio::spawn(serve(listener, body));
        self.running
            .lock()
            .expect("lock")
            .insert(ctx.instance.clone(), task);
        Outcome::success()
    }

    async fn stop(&self, ctx: &ActionContext) -> Outcome {
        if let Some(task) = self.running.lock().expect("lock").remove(&ctx.instance) {
            task.abort();
        }
        Outcome::success()
    }

    async fn monitor(&self, ctx: &ActionContext) -> Outcome {
        match self.running.lock().expect("lock").get(&ctx.instance) {
            Some(task) if !task.is_finished() => Outcome::success(),
            _ => Outcome::not_running(),
        }
    }

    async fn metadata(&self) -> halyard_resources::Result<Metadata> {
        Ok(Metadata {
            name: "example-http".into(),
            agent_version: None,
            ocf_version: Some("1.1".into()),
            shortdesc: Some("An in-process HTTP service".into()),
            parameters: Vec::new(),
            actions: Vec::new(),
        })
    }
}

// ---------------------------------------------------------------------------
// The control group's messages.
// ---------------------------------------------------------------------------

/// What nodes say to each other in the `control` group (text, one per message).
#[derive(Debug, PartialEq)]
enum ControlMessage {
    /// "I run these resources" (sent after every membership change and every
    /// placement applied).
    Status { running: BTreeSet<String> },
    /// The DC's target placement: (resource, node) pairs.
    Placement { rows: BTreeSet<(String, String)> },
}

impl ControlMessage {
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Status { running } => format!(
                "status {}",
                Vec::from_iter(running.iter().cloned()).join(",")
            )
            .into(),
            Self::Placement { rows } => {
                let mut s = String::from("placement");
                for (rsc, node) in rows {
                    let _ = write!(s, " {rsc}={node}");
                }
                s.into()
            }
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (kind, rest) = text.split_once(' ').unwrap_or((text, ""));
        let words = rest.split([' ', ',']).filter(|w| !w.is_empty());
        match kind {
            "status" => Some(Self::Status {
                running: words.map(str::to_string).collect(),
            }),
            "placement" => Some(Self::Placement {
                rows: words
                    .filter_map(|w| w.split_once('='))
                    .map(|(r, n)| (r.to_string(), n.to_string()))
                    .collect(),
            }),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// The DC's input to the solver: a Pacemaker CIB.
// ---------------------------------------------------------------------------

/// The cluster as Pacemaker would see it: the configuration (resources and
/// constraints) and the status of the nodes in the group (what each runs).
fn cib(all_nodes: &[NodeId], status: &BTreeMap<NodeId, BTreeSet<String>>) -> String {
    let quorate = status.len() * 2 > all_nodes.len();
    let mut x = format!("<cib have-quorum=\"{}\"><configuration>", u8::from(quorate));
    x += "<crm_config><cluster_property_set id=\"options\">\
          <nvpair id=\"o-stonith\" name=\"stonith-enabled\" value=\"false\"/>\
          <nvpair id=\"o-quorum\" name=\"no-quorum-policy\" value=\"stop\"/>\
          </cluster_property_set></crm_config><nodes>";
    for n in all_nodes {
        let _ = write!(x, "<node id=\"{0}\" uname=\"{1}\"/>", n.0, node_name(*n));
    }
    x += "</nodes><resources>\
          <clone id=\"web-clone\"><meta_attributes id=\"web-clone-meta\">\
          <nvpair id=\"web-clone-max\" name=\"clone-max\" value=\"3\"/>\
          </meta_attributes>\
          <primitive id=\"web\" class=\"ocf\" provider=\"halyard\" type=\"example-http\"/></clone>\
          <primitive id=\"db\" class=\"ocf\" provider=\"halyard\" type=\"example-http\">\
          <meta_attributes id=\"db-meta\">\
          <nvpair id=\"db-stickiness\" name=\"resource-stickiness\" value=\"100\"/>\
          </meta_attributes></primitive></resources><constraints>\
          <rsc_location id=\"db-prefers-node1\" rsc=\"db\" node=\"node1\" score=\"50\"/>\
          <rsc_colocation id=\"db-with-web\" rsc=\"db\" with-rsc=\"web-clone\" score=\"INFINITY\"/>\
          <rsc_order id=\"web-then-db\" first=\"web-clone\" then=\"db\" kind=\"Mandatory\"/>\
          </constraints></configuration><status>";
    for (n, running) in status {
        let _ = write!(
            x,
            "<node_state id=\"{0}\" uname=\"{1}\" in_ccm=\"true\" crmd=\"online\" \
             join=\"member\" expected=\"member\"><lrm id=\"{0}\"><lrm_resources>",
            n.0,
            node_name(*n)
        );
        for rsc in running {
            let _ = write!(
                x,
                "<lrm_resource id=\"{rsc}\" class=\"ocf\" provider=\"halyard\" type=\"example-http\">\
                 <lrm_rsc_op id=\"{rsc}_last_0\" operation=\"start\" interval=\"0\" \
                 op-status=\"0\" rc-code=\"0\" call-id=\"1\"/></lrm_resource>"
            );
        }
        x += "</lrm_resources></lrm></node_state>";
    }
    x + "</status></cib>"
}

// ---------------------------------------------------------------------------
// One node's controller (Pacemaker's controld, much reduced).
// ---------------------------------------------------------------------------

/// Ports of every node's services: `ports[node][resource]`.
type Ports = BTreeMap<NodeId, BTreeMap<&'static str, u16>>;

struct Controller {
    me: NodeId,
    t0: Log,
    all_nodes: Vec<NodeId>,
    group: Group,
    executor: Executor,
    ops: OpStream,
    health: mpsc::Sender<HealthReport>,
    /// What every node in the group runs, as it last said (replicated at every
    /// node through the group's total order).
    status: BTreeMap<NodeId, BTreeSet<String>>,
    /// Nodes whose status arrived since the last membership change: the DC
    /// schedules only when it has heard from all (Pacemaker's DC join).
    fresh: BTreeSet<NodeId>,
    members: BTreeSet<NodeId>,
    /// The placement this node last published while DC.
    published: Option<BTreeSet<(String, String)>>,
    /// Local resources running, with their recurring monitor.
    running: BTreeMap<String, OpKey>,
}

impl Controller {
    fn who(&self) -> String {
        node_name(self.me)
    }

    fn is_dc(&self) -> bool {
        self.members.first() == Some(&self.me)
    }

    async fn send(&self, msg: ControlMessage) {
        // Safe delivery: a message is delivered only once every member has it,
        // so nobody acts on a placement that a survivor of a crash never saw.
        if let Err(e) = self.group.send(msg.encode(), Delivery::Safe).await {
            say(self.t0, &self.who(), format!("send failed: {e}"));
        }
    }

    async fn report_status(&self) {
        let running = self.running.keys().cloned().collect();
        self.send(ControlMessage::Status { running }).await;
    }

    async fn mark(&self, node: NodeId, rsc: &str, state: Operational) {
        let report = HealthReport {
            backend: rsc.to_string(),
            server: node_name(node),
            state,
        };
        let _ = self.health.send(report).await;
    }

    async fn run(mut self) {
        loop {
            tokio::select! {
                ev = self.group.recv() => match ev {
                    Some(ev) => self.on_group_event(ev).await,
                    None => return,
                },
                Some(ev) = self.ops.recv() => match ev {
                    OpEvent::Result(op) => self.on_op(&op).await,
                    // Fell behind: the notice carries each operation's missed
                    // failure and latest result, oldest first.
                    OpEvent::Lagged(lag) => {
                        for op in &lag.results {
                            self.on_op(op).await;
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// A monitor result drives the proxy's server state. Recurring monitors
    /// report only changes, so each call here is a transition.
    async fn on_op(&self, op: &OpResult) {
        if op.record.key.action == Action::Monitor && self.running.contains_key(&op.resource) {
            let up = op.outcome.status == Status::Success;
            let state = if up {
                Operational::Up
            } else {
                Operational::Down
            };
            self.mark(self.me, &op.resource, state).await;
        }
    }

    async fn on_group_event(&mut self, ev: GroupEvent) {
        match ev {
            GroupEvent::Membership { members, left, .. } => {
                self.members = members.iter().map(|m| m.node).collect();
                for (m, reason) in &left {
                    self.status.remove(&m.node);
                    if self.is_dc() {
                        say(
                            self.t0,
                            &self.who(),
                            format!("{} left the group ({reason:?})", node_name(m.node)),
                        );
                        // Its services are gone with it: stop routing to them now,
                        // without waiting for a proxy check to notice.
                        for rsc in RESOURCES {
                            self.mark(m.node, rsc, Operational::Down).await;
                        }
                    }
                }
                self.fresh.clear();
                self.published = None;
                self.report_status().await;
            }
            GroupEvent::Message { from, payload, .. } => match ControlMessage::decode(&payload) {
                Some(ControlMessage::Status { running }) => {
                    self.status.insert(from.node, running);
                    self.fresh.insert(from.node);
                    if self.is_dc() && self.fresh.is_superset(&self.members) {
                        self.schedule().await;
                    }
                }
                Some(ControlMessage::Placement { rows }) => {
                    if self.members.first() == Some(&from.node) {
                        self.apply(&rows).await;
                        self.report_status().await;
                    }
                }
                None => say(self.t0, &self.who(), "ignored an unknown control message"),
            },
            GroupEvent::Overflow { capacity } => {
                // This controller fell more than `capacity` events behind and was
                // removed from the group; a real controller would restart itself.
                say(
                    self.t0,
                    &self.who(),
                    format!("removed from the group: {capacity} events behind"),
                );
            }
        }
    }

    /// The DC's job: build the CIB, run the solver, publish a changed placement.
    async fn schedule(&mut self) {
        let status: BTreeMap<_, _> = self
            .status
            .iter()
            .filter(|(n, _)| self.members.contains(n))
            .map(|(n, s)| (*n, s.clone()))
            .collect();
        // The solver has no clock: the DC's wall clock is "now" for date rules and
        // failure expiry.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .ok();
        let cluster = match placement::read_cib(&cib(&self.all_nodes, &status), now) {
            Ok(c) => c,
            Err(e) => {
                say(self.t0, &self.who(), format!("CIB rejected: {e}"));
                return;
            }
        };
        let outcome = placement::schedule(&cluster);
        let rows: BTreeSet<(String, String)> = outcome
            .placement
            .iter()
            .filter(|r| r.role == "Started")
            .map(|r| {
                let rsc = r.path.rsplit('/').next().unwrap_or(&r.path);
                (rsc.to_string(), r.node.clone())
            })
            .collect();
        if self.published.as_ref() == Some(&rows) {
            return;
        }
        let actions: Vec<String> = outcome
            .actions
            .iter()
            .map(|a| format!("{} {} ({})", a.verb, a.rsc, a.detail))
            .collect();
        say(
            self.t0,
            &self.who(),
            format!(
                "DC: scheduled {} -> {}",
                if actions.is_empty() {
                    "no actions".to_string()
                } else {
                    actions.join(", ")
                },
                rows.iter()
                    .map(|(r, n)| format!("{r}@{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        self.published = Some(rows.clone());
        self.send(ControlMessage::Placement { rows }).await;
    }

    /// Starts and stops local resources to match the placement.
    async fn apply(&mut self, rows: &BTreeSet<(String, String)>) {
        let me = self.who();
        for rsc in RESOURCES {
            let wanted = rows.contains(&(rsc.to_string(), me.clone()));
            let running = self.running.contains_key(rsc);
            if wanted == running {
                continue;
            }
            let Ok(ctx) = self.executor.context(rsc) else {
                continue;
            };
            let ctx = ctx.timeout(Duration::from_secs(5));
            let action = if wanted { Action::Start } else { Action::Stop };
            let result = self.executor.execute(rsc, action, ctx.clone()).await;
            let ok = matches!(&result, Ok(r) if r.outcome.status == Status::Success);
            say(
                self.t0,
                &me,
                format!(
                    "{} {rsc}: {}",
                    action.as_str(),
                    if ok { "ok" } else { "FAILED" }
                ),
            );
            if wanted && ok {
                let monitor = ctx.interval(MONITOR);
                if let Ok((key, _)) = self.executor.start_recurring(rsc, Action::Monitor, monitor) {
                    self.running.insert(rsc.to_string(), key);
                }
                self.mark(self.me, rsc, Operational::Up).await;
            } else if !wanted {
                if let Some(key) = self.running.remove(rsc) {
                    let _ = self.executor.cancel_recurring(rsc, key);
                }
                self.mark(self.me, rsc, Operational::Down).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Starting and killing nodes.
// ---------------------------------------------------------------------------

struct RunningNode {
    cluster: Cluster,
    controller: JoinHandle<()>,
    agent: Arc<HttpServiceAgent>,
}

impl RunningNode {
    /// The machine dies: no leave message, its services vanish.
    fn kill(self) {
        self.controller.abort();
        self.agent.crash();
        self.cluster.kill();
    }
}

struct Setup {
    t0: Log,
    dir: PathBuf,
    key: ClusterKey,
    ring: BTreeMap<NodeId, SocketAddr>,
    ports: Ports,
    health: mpsc::Sender<HealthReport>,
}

async fn start_node(s: &Setup, me: NodeId) -> Result<RunningNode, String> {
    let totem = TotemConfig::lan_fast();
    let epoch = next_epoch(s.dir.join(format!("epoch-{}", me.0)))
        .map_err(|e| format!("epoch file: {e}"))?;
    let envelope = SecureEnvelope::new(
        &s.key,
        &totem.cluster_name,
        me,
        epoch,
        s.ring.keys().copied(),
    )
    .map_err(|e| e.to_string())?;
    let config = ClusterConfig::new(me, totem, OrderingConfig::default(), s.ring.clone());
    let store = FileRingIdStore::in_dir(&s.dir, me);
    let cluster = Cluster::start(config, Box::new(store), Box::new(envelope))
        .await
        .map_err(|e| format!("node{} starts: {e}", me.0))?;
    let group = cluster
        .join("control")
        .await
        .map_err(|e| format!("join the control group: {e}"))?;

    let agent = Arc::new(HttpServiceAgent::default());
    let (executor, ops) = Executor::new(node_name(me));
    for rsc in RESOURCES {
        let params = BTreeMap::from([
            ("port".to_string(), s.ports[&me][rsc].to_string()),
            ("node".to_string(), node_name(me)),
        ]);
        executor
            .register(rsc, agent.clone(), params)
            .map_err(|e| e.to_string())?;
    }
    let controller = Controller {
        me,
        t0: s.t0,
        all_nodes: s.ring.keys().copied().collect(),
        group,
        executor,
        ops,
        health: s.health.clone(),
        status: BTreeMap::new(),
        fresh: BTreeSet::new(),
        members: BTreeSet::new(),
        published: None,
        running: BTreeMap::new(),
    };
    say(s.t0, &node_name(me), "started, joined group control");
    Ok(RunningNode {
        cluster,
        controller: tokio::spawn(controller.run()),
        agent,
    })
}

// ---------------------------------------------------------------------------
// The client and the checks.
// ---------------------------------------------------------------------------

/// Requests answered per `<service>@<node>`, and failures.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Answers per `<service>@<node>` (the body the service sent).
    pub answers: BTreeMap<String, u32>,
    /// Requests without an answer, per frontend (`web`, `db`).
    pub failures: BTreeMap<String, u32>,
}

impl Tally {
    /// Answers from `service` (`web`, `db`), per node.
    pub fn answered_by(&self, service: &str) -> BTreeMap<String, u32> {
        self.answers
            .iter()
            .filter_map(|(k, v)| {
                let (s, node) = k.split_once('@')?;
                (s == service).then(|| (node.to_string(), *v))
            })
            .collect()
    }

    /// Requests to `frontend` that got no answer.
    pub fn failed(&self, frontend: &str) -> u32 {
        self.failures.get(frontend).copied().unwrap_or(0)
    }
}

/// One phase of the scenario and what the client saw during it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// `three nodes`, `failover`, `two nodes`, `three nodes again`.
    pub name: &'static str,
    /// The client's requests in this phase.
    pub tally: Tally,
}

/// What [`run`] observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// From the kill of node 1 until the proxy routed only to the survivors,
    /// with `db` running on one of them.
    pub failover: Duration,
}

impl Report {
    /// The phase called `name`.
    pub fn phase(&self, name: &str) -> Option<&Tally> {
        self.phases
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.tally)
    }
}

async fn request(addr: SocketAddr) -> Option<String> {
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await.ok()?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
            .await
            .ok()?;
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).await.ok()?;
        let text = String::from_utf8(reply).ok()?;
        let (_, body) = text.split_once("\r\n\r\n")?;
        (!body.is_empty()).then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// Sends one request to each frontend every 5 ms until aborted.
fn client(frontends: Vec<(&'static str, SocketAddr)>, tally: Arc<Mutex<Tally>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tick.tick().await;
            for (name, addr) in &frontends {
                let answer = request(*addr).await;
                let mut t = tally.lock().expect("lock");
                match answer {
                    Some(who) => *t.answers.entry(who).or_default() += 1,
                    None => *t.failures.entry(name.to_string()).or_default() += 1,
                }
            }
        }
    })
}

/// Servers the proxy routes to, as `backend@server`.
fn routed(proxy: &Proxy) -> BTreeSet<String> {
    proxy
        .stats()
        .backends
        .iter()
        .flat_map(|b| {
            b.servers
                .iter()
                .filter(|s| s.is_up())
                .map(move |s| format!("{}@{}", b.name, s.name))
        })
        .collect()
}

/// Polls the proxy's routing every 10 ms until `cond` holds, for at most [`WAIT`].
async fn until(
    log: Log,
    what: &str,
    proxy: &Proxy,
    cond: impl Fn(&BTreeSet<String>) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let up = routed(proxy);
        if cond(&up) {
            say(
                log,
                "proxy",
                format!("{what}: routing to {}", Vec::from_iter(up).join(" ")),
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "\"{what}\" did not happen within {WAIT:?}; the proxy routes to {up:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends a phase: takes the client's tally and prints it.
fn end_phase(log: Log, name: &'static str, tally: &Mutex<Tally>, phases: &mut Vec<Phase>) {
    let t = std::mem::take(&mut *tally.lock().expect("lock"));
    let answers: Vec<String> = t.answers.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    let failures: Vec<String> = t.failures.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    say(
        log,
        "client",
        format!(
            "{name}: answered {}; no answer {}",
            answers.join(" "),
            if failures.is_empty() {
                "0".to_string()
            } else {
                failures.join(" ")
            }
        ),
    );
    phases.push(Phase { name, tally: t });
}

fn free_tcp_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn proxy_config(ports: &Ports) -> String {
    let mut toml = String::from(
        "[defaults]\ntimeout_connect = \"500ms\"\ntimeout_client = \"5s\"\n\
         timeout_server = \"5s\"\nretries = 2\nredispatch = true\n\n\
         [frontends.web]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"web\"\n\n\
         [frontends.db]\nbinds = [\"127.0.0.1:0\"]\nbackend = \"db\"\n\n\
         [backends.web]\nbalance = \"roundrobin\"\n\n[backends.db]\nbalance = \"first\"\n",
    );
    for rsc in RESOURCES {
        for (node, p) in ports {
            let _ = write!(
                toml,
                "\n[backends.{rsc}.servers.{}]\naddress = \"127.0.0.1:{}\"\n",
                node_name(*node),
                p[rsc]
            );
        }
    }
    toml
}

/// Plays the scenario of the module docs: three nodes form the cluster, node 1 is
/// killed, node 1 restarts. With `verbose`, prints the timeline to stdout. Fails
/// (with what did not happen) if a step takes longer than 10 s.
pub async fn run(verbose: bool) -> Result<Report, String> {
    let log = Log {
        t0: Instant::now(),
        verbose,
    };
    let dir = std::env::temp_dir().join(format!(
        "halyard-cluster-example-{}-{}",
        std::process::id(),
        log.t0.elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("state directory: {e}"))?;
    let result = scenario(log, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn scenario(log: Log, dir: &std::path::Path) -> Result<Report, String> {
    let mut ring = BTreeMap::new();
    let mut ports = Ports::new();
    for i in 1..=3 {
        let s = std::net::UdpSocket::bind(format!("127.0.0.{i}:0"))
            .map_err(|e| format!("no free UDP port on 127.0.0.{i}: {e}"))?;
        ring.insert(NodeId(i), s.local_addr().map_err(|e| e.to_string())?);
        let mut p = BTreeMap::new();
        for r in RESOURCES {
            p.insert(r, free_tcp_port()?);
        }
        ports.insert(NodeId(i), p);
    }

    // The proxy: every server starts DOWN; only the cluster marks one UP.
    let config = ProxyConfig::from_toml(&proxy_config(&ports)).map_err(|e| e.to_string())?;
    let proxy = Proxy::start(config).await.map_err(|e| e.to_string())?;
    for rsc in RESOURCES {
        for node in ring.keys() {
            proxy
                .set_health(rsc, &node_name(*node), Operational::Down)
                .map_err(|e| e.to_string())?;
        }
    }
    let (health, reports) = mpsc::channel(64);
    let health_task = proxy.attach_health_source(ChannelHealthSource(reports));
    let frontends: Vec<(&'static str, SocketAddr)> = RESOURCES
        .iter()
        .map(|f| (*f, proxy.local_addrs(f)[0]))
        .collect();
    say(log, "proxy", format!("frontends {frontends:?}"));

    let setup = Setup {
        t0: log,
        dir: dir.to_path_buf(),
        key: ClusterKey::generate_os().map_err(|e| e.to_string())?,
        ring,
        ports,
        health,
    };
    let mut nodes = BTreeMap::new();
    for id in setup.ring.keys().copied().collect::<Vec<_>>() {
        nodes.insert(id, start_node(&setup, id).await?);
    }
    let all_web = |up: &BTreeSet<String>| (1..=3).all(|i| up.contains(&format!("web@node{i}")));
    let db_count = |up: &BTreeSet<String>| up.iter().filter(|s| s.starts_with("db@")).count();
    let mut phases = Vec::new();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let steps = async {
        until(log, "cluster formed, resources placed", &proxy, |up| {
            all_web(up) && up.contains("db@node1") && db_count(up) == 1
        })
        .await?;
        let load = client(frontends, tally.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        end_phase(log, "three nodes", &tally, &mut phases);

        say(log, "example", "killing node1 (the DC, running db)");
        let killed = Instant::now();
        if let Some(n) = nodes.remove(&NodeId(1)) {
            n.kill();
        }
        until(log, "failover done", &proxy, |up| {
            !up.iter().any(|s| s.ends_with("@node1"))
                && db_count(up) == 1
                && up.contains("web@node2")
                && up.contains("web@node3")
        })
        .await?;
        let failover = killed.elapsed();
        say(
            log,
            "example",
            format!(
                "failover took {:.0} ms from the kill",
                failover.as_secs_f64() * 1e3
            ),
        );
        end_phase(log, "failover", &tally, &mut phases);
        tokio::time::sleep(Duration::from_millis(500)).await;
        end_phase(log, "two nodes", &tally, &mut phases);

        say(log, "example", "restarting node1");
        nodes.insert(NodeId(1), start_node(&setup, NodeId(1)).await?);
        until(log, "node1 back", &proxy, |up| {
            all_web(up) && db_count(up) == 1 && !up.contains("db@node1")
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        end_phase(log, "three nodes again", &tally, &mut phases);
        load.abort();
        Ok::<_, String>(failover)
    };
    let result = steps.await;
    for (_, node) in nodes {
        node.kill();
    }
    health_task.abort();
    proxy.hard_stop();
    let failover = result?;
    say(log, "example", "done");
    Ok(Report { phases, failover })
}
