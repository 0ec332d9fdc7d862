//! The `OCF_RESKEY_CRM_meta_*` variables the OCF adapter builds from a typed
//! `ActionContext`, compared with Pacemaker's own, printed by
//! `shared/anchors/agents/pcmk-meta-env.sh` (crm_simulate on the shared CIBs).
//! Needs pacemaker-cli-utils and python3; skipped with a reason otherwise.

mod common;

use common::*;
use halyard_resources::agent::ocf::OcfAgent;
use halyard_resources::agent::{Action, ActionContext, CloneInfo, NotifyInfo, NotifyType, Role};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

type Golden = BTreeMap<String, BTreeMap<String, String>>;

/// `== <op_key> on <node> ...` headers and `   NAME='value'` lines.
fn golden() -> Option<Golden> {
    let script = shared().join("anchors/agents/pcmk-meta-env.sh");
    let ok = script.is_file()
        && std::path::Path::new("/usr/sbin/crm_simulate").is_file()
        && std::path::Path::new("/usr/bin/python3").is_file();
    if !require(
        "crm_simulate (pacemaker-cli-utils), python3 and pcmk-meta-env.sh",
        ok,
    ) {
        return None;
    }
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut g = Golden::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("== ") {
            let mut w = h.split_whitespace();
            let key = format!("{} {}", w.next().unwrap(), w.nth(1).unwrap());
            // The first occurrence of an op on a node wins (the script dedups).
            cur = if g.contains_key(&key) {
                None
            } else {
                Some(key.clone())
            };
            if let Some(k) = &cur {
                g.insert(k.clone(), BTreeMap::new());
            }
        } else if let (Some(k), Some((name, val))) = (&cur, line.trim().split_once('=')) {
            let val = val.trim_matches('\'').to_string();
            g.get_mut(k).unwrap().insert(name.to_string(), val);
        }
    }
    Some(g)
}

/// Our meta variables (and OCF_CHECK_LEVEL) for `action` in `ctx`.
fn ours(action: &str, ctx: &ActionContext) -> BTreeMap<String, String> {
    let root = FakeRoot::new();
    root.agent("x", "exit 0");
    let a = OcfAgent::new(root.root(), "fake", "x").unwrap();
    a.environment(action, ctx, None)
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .filter(|(k, _)| k.starts_with("OCF_RESKEY_CRM_meta_") || k == "OCF_CHECK_LEVEL")
        .collect()
}

/// Pacemaker's meta variables, less `op_target_rc` (the controller drops it
/// before the executor sees it).
fn theirs(g: &Golden, key: &str) -> BTreeMap<String, String> {
    g.get(key)
        .unwrap_or_else(|| panic!("no {key} in the golden output"))
        .iter()
        .filter(|(k, _)| {
            (k.starts_with("OCF_RESKEY_CRM_meta_") || *k == "OCF_CHECK_LEVEL")
                && *k != "OCF_RESKEY_CRM_meta_op_target_rc"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn on(node: &str, uuid: &str, timeout_ms: u64) -> ActionContext {
    let mut c = ActionContext::new("rsc").timeout(Duration::from_millis(timeout_ms));
    c.node = Some(node.to_string());
    // Passed through unchanged: the node's id in the CIB.
    c.extra_meta.insert("on_node_uuid".into(), uuid.into());
    c
}

fn stateful_clone(c: &mut ActionContext, instance: u32) {
    c.clone = Some(CloneInfo {
        instance,
        clone_max: 2,
        clone_node_max: 1,
        globally_unique: false,
        notify: true,
        promoted_max: Some(1),
        promoted_node_max: Some(1),
    });
}

fn lists(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let all = [
        "active",
        "inactive",
        "start",
        "stop",
        "promote",
        "demote",
        "promoted",
        "unpromoted",
    ];
    let mut m = BTreeMap::new();
    for l in all {
        for s in ["resource", "uname"] {
            if l == "inactive" && s == "uname" {
                continue;
            }
            m.insert(format!("{l}_{s}"), Vec::new());
        }
    }
    m.insert("all_uname".into(), vec!["node1".into(), "node2".into()]);
    m.insert(
        "available_uname".into(),
        vec!["node1".into(), "node2".into()],
    );
    for (k, v) in pairs {
        m.insert(k.to_string(), v.split(' ').map(str::to_string).collect());
    }
    m
}

#[test]
fn meta_variables_match_pacemaker() {
    let Some(g) = golden() else { return };
    let mut checked = 0;
    let mut check = |key: &str, action: Action, ctx: &ActionContext| {
        assert_eq!(ours(action.as_str(), ctx), theirs(&g, key), "{key}");
        checked += 1;
    };

    // Recurring monitor with depth, recurring monitor, probe, start.
    let c = on("node1", "1", 30_000)
        .interval(Duration::from_secs(60))
        .depth(10);
    check("vip_monitor_60000 node1", Action::Monitor, &c);
    let c = on("node1", "1", 20_000).interval(Duration::from_secs(10));
    check("vip_monitor_10000 node1", Action::Monitor, &c);
    check(
        "vip_monitor_0 node2",
        Action::Monitor,
        &on("node2", "2", 20_000),
    );
    check(
        "vip_start_0 node1",
        Action::Start,
        &on("node1", "1", 20_000),
    );

    // Promotable clone: role-specific recurring monitors.
    let mut c = on("node1", "1", 20_000)
        .interval(Duration::from_secs(10))
        .role(Role::Promoted);
    stateful_clone(&mut c, 0);
    check("st:0_monitor_10000 node1", Action::Monitor, &c);
    let mut c = on("node2", "2", 20_000)
        .interval(Duration::from_secs(11))
        .role(Role::Unpromoted);
    stateful_clone(&mut c, 1);
    check("st:1_monitor_11000 node2", Action::Monitor, &c);

    // Notifications around the promotion of st:0 (both instances starting).
    let starting = [
        ("inactive_resource", "st:0 st:1"),
        ("start_resource", "st:0 st:1"),
        ("start_uname", "node1 node2"),
        ("promote_resource", "st:0"),
        ("promote_uname", "node1"),
    ];
    for (key, kind, op) in [
        (
            "st:0_pre_notify_promote_0 node1",
            NotifyType::Pre,
            "promote",
        ),
        (
            "st:0_post_notify_promote_0 node1",
            NotifyType::Post,
            "promote",
        ),
        ("st:0_post_notify_start_0 node1", NotifyType::Post, "start"),
    ] {
        let mut c = on("node1", "1", 20_000);
        stateful_clone(&mut c, 0);
        c.notify = Some(NotifyInfo {
            kind,
            operation: op.into(),
            lists: lists(&starting),
        });
        check(key, Action::Notify, &c);
    }

    // Live migration.
    let mut c = on("node1", "1", 20_000);
    c.migrate = Some(("node1".into(), "node2".into()));
    c.extra_meta.insert("record_pending".into(), "true".into());
    check("vip_migrate_to_0 node1", Action::MigrateTo, &c);
    assert_eq!(checked, 10);
}
