//! The OCF adapter against the REAL agents from Debian's resource-agents and
//! pacemaker-resource-agents (skipped with a reason when they are missing, failing
//! under HALYARD_REQUIRE_SYSTEM=1).

mod common;

use common::*;
use halyard_resources::agent::ocf::{OcfAgent, DEFAULT_OCF_ROOT};
use halyard_resources::agent::{
    Action, ActionContext, PromotionUpdate, ResourceAgent, Role, Status,
};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn agent(provider: &str, kind: &str) -> OcfAgent {
    OcfAgent::new(DEFAULT_OCF_ROOT, provider, kind).unwrap()
}

async fn expect(a: &OcfAgent, action: Action, ctx: &ActionContext, want: Status) {
    let o = a.execute(action, ctx).await;
    assert_eq!(o.status, want, "{} {action}: {o}", a.id());
}

#[tokio::test]
async fn heartbeat_dummy_lifecycle() {
    if !have_ocf_agents() {
        return;
    }
    let a = agent("heartbeat", "Dummy");
    let ctx = ActionContext::new(tag("dummy"));
    use Status::*;
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
    expect(&a, Action::Start, &ctx, Success).await;
    expect(&a, Action::Monitor, &ctx, Success).await;
    expect(&a, Action::Start, &ctx, Success).await;
    expect(&a, Action::Stop, &ctx, Success).await;
    expect(&a, Action::Stop, &ctx, Success).await;
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
    expect(&a, Action::Validate, &ctx, Success).await;
    assert_eq!(
        a.run_action("no-such-action", &ctx).await.status,
        Unimplemented
    );
    let md = a.metadata().await.unwrap();
    assert_eq!(md.name, "Dummy");
    assert!(md.parameter("state").is_some());
    assert!(md.action("monitor").unwrap().timeout.is_some());
}

#[tokio::test]
async fn pacemaker_dummy_exit_reason_and_depth() {
    if !have_ocf_agents() {
        return;
    }
    let a = agent("pacemaker", "Dummy");
    let ctx = ActionContext::new(tag("pd"));
    expect(&a, Action::Start, &ctx, Status::Success).await;
    // OCF_CHECK_LEVEL=30 is pacemaker:Dummy's "always fails" monitor depth.
    let o = a.monitor(&ctx.clone().depth(30)).await;
    assert_eq!(o.status, Status::GenericError);
    assert_eq!(o.exit_reason.as_deref(), Some("hyperdrive quota reached"));
    expect(&a, Action::Stop, &ctx, Status::Success).await;
}

#[tokio::test]
async fn stateful_promote_demote_and_scores() {
    if !have_ocf_agents() {
        return;
    }
    let a = agent("pacemaker", "Stateful");
    let ctx = ActionContext::new(tag("st"));
    use Status::*;
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
    let start = a.start(&ctx).await;
    assert_eq!(start.status, Success, "{start}");
    // Stateful reports its unpromoted score through `crm_attribute --promotion`.
    assert!(
        matches!(start.promotion.last(), Some(PromotionUpdate::Set(_))),
        "{start:?}"
    );
    expect(&a, Action::Monitor, &ctx, Success).await;
    let promote = a.promote(&ctx).await;
    assert_eq!(promote.status, Success);
    let (PromotionUpdate::Set(unpromoted), Some(PromotionUpdate::Set(promoted))) = (
        start.promotion[start.promotion.len() - 1],
        promote.promotion.last().copied(),
    ) else {
        panic!("no promotion scores: {start:?} {promote:?}");
    };
    assert!(promoted > unpromoted, "{promoted} > {unpromoted}");
    let rec = ctx
        .clone()
        .interval(Duration::from_secs(10))
        .role(Role::Promoted);
    expect(&a, Action::Monitor, &rec, RunningPromoted).await;
    expect(&a, Action::Demote, &ctx, Success).await;
    expect(&a, Action::Monitor, &ctx, Success).await;
    let stop = a.stop(&ctx).await;
    assert_eq!(stop.status, Success);
    assert_eq!(stop.promotion.last(), Some(&PromotionUpdate::Delete));
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
}

#[tokio::test]
async fn anything_leaves_its_daemon_after_a_normal_exit() {
    if !have_ocf_agents() {
        return;
    }
    let dir = TempDir::new("anything");
    let marker = tag("anyloop");
    let bin = dir.path().join(&marker);
    std::fs::write(&bin, "#!/bin/sh\nwhile :; do sleep 1; done\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let a = agent("heartbeat", "anything");
    let ctx = ActionContext::new(tag("any")).param("binfile", bin.to_string_lossy());
    expect(&a, Action::Monitor, &ctx, Status::NotRunning).await;
    expect(&a, Action::Start, &ctx, Status::Success).await;
    expect(&a, Action::Monitor, &ctx, Status::Success).await;
    // The daemon lives in the agent's process group: it must survive the agent.
    assert!(!pids_with(&marker).is_empty(), "daemon was killed");
    expect(&a, Action::Stop, &ctx, Status::Success).await;
    assert!(wait_gone(&marker), "daemon survived stop");
    expect(&a, Action::Monitor, &ctx, Status::NotRunning).await;
    kill_marked(&marker);
}

struct Netns(String);
impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", cmd])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn ipaddr2_inside_a_private_network_namespace() {
    if !have_ocf_agents() {
        return;
    }
    let ns = Netns(format!("hy-test-{}", std::process::id()));
    let n = &ns.0;
    let made = sh(&format!(
        "ip netns add {n} && ip -n {n} link set lo up && \
         ip -n {n} link add hv0 type veth peer name hv1 && \
         ip -n {n} link set hv0 up && ip -n {n} link set hv1 up && \
         ip -n {n} addr add 10.250.0.1/24 dev hv0"
    ));
    if !require("network namespaces (ip netns add)", made) {
        return;
    }
    let a = agent("heartbeat", "IPaddr2").with_launcher(["ip", "netns", "exec", n.as_str()]);
    let ctx = ActionContext::new(tag("vip"))
        .param("ip", "10.250.0.10")
        .param("cidr_netmask", "24")
        .param("nic", "hv0");
    use Status::*;
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
    expect(&a, Action::Validate, &ctx, Success).await;
    expect(&a, Action::Start, &ctx, Success).await;
    assert!(sh(&format!(
        "ip -n {n} -4 -o addr show dev hv0 | grep -q 'inet 10.250.0.10/24'"
    )));
    assert!(sh("! ip -4 -o addr | grep -q 'inet 10.250.0.10/'"));
    expect(&a, Action::Monitor, &ctx, Success).await;
    expect(&a, Action::Stop, &ctx, Success).await;
    assert!(sh(&format!(
        "! ip -n {n} -4 -o addr | grep -q 'inet 10.250.0.10/'"
    )));
    expect(&a, Action::Monitor, &ctx, NotRunning).await;
    // Without the required `ip`: refused before the agent runs, naming it.
    let o = a.start(&ActionContext::new(tag("vip2"))).await;
    assert_eq!(o.status, NotConfigured);
    assert!(o.exit_reason.unwrap().contains("\"ip\""));
}

/// Every installed agent whose `meta-data` action succeeds has meta-data our
/// parser accepts, with a name, parameters that have names, and a start or
/// monitor action (OCF 1.0 heartbeat agents and OCF 1.1 pacemaker agents alike).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_data_of_every_installed_agent_parses() {
    if !have_ocf_agents() {
        return;
    }
    let ids = OcfAgent::discover(DEFAULT_OCF_ROOT).unwrap();
    assert!(ids.len() > 50, "{} agents", ids.len());
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for id in ids {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.unwrap();
            let a = OcfAgent::new(DEFAULT_OCF_ROOT, &id.provider, &id.kind).unwrap();
            let (out, _) = a
                .run_raw("meta-data", &ActionContext::new(id.kind.clone()))
                .await
                .unwrap();
            let ran = out.exit == halyard_resources::agent::runner::Exit::Code(0)
                && !out.stdout.is_empty();
            (
                a.id(),
                ran,
                if ran { Some(a.metadata().await) } else { None },
            )
        }));
    }
    let (mut parsed, mut versions) = (0, std::collections::BTreeSet::new());
    for t in tasks {
        let (id, ran, md) = t.await.unwrap();
        let Some(md) = md else {
            eprintln!("{id}: meta-data action did not succeed here (skipped)");
            assert!(!ran);
            continue;
        };
        let md = md.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(!md.name.is_empty(), "{id}");
        assert!(md.parameters.iter().all(|p| !p.name.is_empty()), "{id}");
        assert!(
            md.action("start").is_some() || md.action("monitor").is_some(),
            "{id}"
        );
        versions.extend(md.ocf_version.clone());
        parsed += 1;
    }
    assert!(parsed > 50, "only {parsed} agents parsed");
    assert!(
        versions.contains("1.0") && versions.contains("1.1"),
        "{versions:?}"
    );
}
