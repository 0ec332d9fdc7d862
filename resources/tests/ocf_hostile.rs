//! The OCF adapter and the process runner against hostile fake agents and bad
//! input. Needs only /bin/sh and coreutils.

mod common;

use common::*;
use halyard_resources::agent::lsb::LsbAgent;
use halyard_resources::agent::ocf::OcfAgent;
use halyard_resources::agent::{ActionContext, ResourceAgent, Status};
use halyard_resources::Error;
use std::collections::BTreeSet;
use std::time::Duration;

fn ctx(name: &str) -> ActionContext {
    ActionContext::new(tag(name)).timeout(Duration::from_secs(30))
}

#[tokio::test]
async fn hanging_agent_times_out_and_its_whole_group_dies() {
    let root = FakeRoot::new();
    let marker = unique_sleep();
    let dir = TempDir::new("hang");
    let pidf = dir.path().join("pid");
    // The agent forks a grandchild (same group), records it, and hangs itself.
    root.agent(
        "hang",
        &format!(
            "[ \"$1\" = meta-data ] && exit 1\n{marker} &\necho $! > '{}'\nsleep 1000",
            pidf.display()
        ),
    );
    let a = OcfAgent::new(root.root(), "fake", "hang").unwrap();
    let c = ctx("hang").timeout(Duration::from_millis(300));
    let o = a.start(&c).await;
    assert_eq!(o.status, Status::TimedOut, "{o}");
    assert!(pidf.exists(), "the grandchild was never started");
    assert!(wait_gone(&marker), "grandchild survived the timeout");
}

#[tokio::test]
async fn grandchild_holding_stdout_does_not_hang_the_operation() {
    let root = FakeRoot::new();
    let marker = unique_sleep();
    // A daemon keeps our stdout/stderr pipes open after the agent exits 0.
    root.agent("holder", &format!("{marker} &\necho started\nexit 0"));
    let a = OcfAgent::new(root.root(), "fake", "holder").unwrap();
    let (out, _) = a.run_raw("start", &ctx("holder")).await.unwrap();
    assert_eq!(out.exit, halyard_resources::agent::runner::Exit::Code(0));
    assert_eq!(out.stdout, b"started\n");
    // After a normal exit the group is left alone: the daemon still runs.
    assert!(!pids_with(&marker).is_empty());
    kill_marked(&marker);
    assert!(wait_gone(&marker));
}

#[tokio::test]
async fn ten_megabytes_of_output_are_bounded() {
    let root = FakeRoot::new();
    root.agent(
        "chatty",
        "head -c 10000000 /dev/zero\nhead -c 10000000 /dev/zero >&2\necho 'ocf-exit-reason:after the flood' >&2\nexit 0",
    );
    let a = OcfAgent::new(root.root(), "fake", "chatty")
        .unwrap()
        .with_capture_limit(4096);
    let (out, _) = a.run_raw("monitor", &ctx("chatty")).await.unwrap();
    assert_eq!(out.stdout.len(), 4096);
    assert_eq!(out.stdout_dropped, 10_000_000 - 4096);
    assert_eq!(out.stderr.len(), 4096);
    // The exit reason is found even past the capture bound.
    assert_eq!(out.exit_reason.as_deref(), Some("after the flood"));
}

#[tokio::test]
async fn exit_137_is_a_generic_error_keeping_the_code() {
    let root = FakeRoot::new();
    root.agent("exit137", "exit 137");
    let a = OcfAgent::new(root.root(), "fake", "exit137").unwrap();
    let o = a.monitor(&ctx("e137")).await;
    assert_eq!(o.status, Status::GenericError);
    assert_eq!(o.raw_exit_code, Some(137));
    // Killed by a signal (not ours) is a generic error too.
    root.agent("selfkill", "kill -9 $$");
    let a = OcfAgent::new(root.root(), "fake", "selfkill").unwrap();
    let o = a.monitor(&ctx("selfkill")).await;
    assert_eq!(o.status, Status::GenericError);
    assert_eq!(o.raw_exit_code, Some(128 + 9));
}

#[tokio::test]
async fn garbage_meta_data_is_an_error_and_start_still_runs() {
    let root = FakeRoot::new();
    root.agent(
        "garbage",
        "case $1 in meta-data) printf '<resource-agent name=\"x\"><parameters><\\xff\\x00 junk'; exit 0;; start) exit 0;; esac\nexit 3",
    );
    let a = OcfAgent::new(root.root(), "fake", "garbage").unwrap();
    let e = a.metadata().await.unwrap_err();
    assert!(matches!(e, Error::MetaData { .. }), "{e}");
    assert!(e.to_string().contains("fake:garbage"), "{e}");
    assert_eq!(a.start(&ctx("garbage")).await.status, Status::Success);
    // Meta-data that exits non-zero.
    root.agent("mdfail", "exit 1");
    let a = OcfAgent::new(root.root(), "fake", "mdfail").unwrap();
    assert!(a.metadata().await.is_err());
}

#[tokio::test]
async fn exact_environment() {
    let root = FakeRoot::new();
    let dir = TempDir::new("env");
    let envf = dir.path().join("env");
    root.agent("envdump", &format!("env > '{}'\nexit 0", envf.display()));
    let a = OcfAgent::new(root.root(), "fake", "envdump").unwrap();
    let c = ctx("env")
        .param("ip", "10.0.0.1")
        .param("multi", "a b")
        .interval(Duration::from_secs(10))
        .depth(10);
    assert_eq!(a.monitor(&c).await.status, Status::Success);
    let text = std::fs::read_to_string(&envf).unwrap();
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    let want: BTreeSet<&str> = [
        "PATH",
        "LC_ALL",
        "PWD",
        "OCF_ROOT",
        "OCF_RA_VERSION_MAJOR",
        "OCF_RA_VERSION_MINOR",
        "OCF_EXIT_REASON_PREFIX",
        "OCF_OUTPUT_FORMAT",
        "OCF_RESOURCE_INSTANCE",
        "OCF_RESOURCE_TYPE",
        "OCF_RESOURCE_PROVIDER",
        "HA_SBIN_DIR",
        "HALYARD_PROMOTION_REPORT",
        "OCF_RESKEY_CRM_meta_timeout",
        "OCF_RESKEY_CRM_meta_interval",
        "OCF_RESKEY_CRM_meta_name",
        "OCF_CHECK_LEVEL",
        "OCF_RESKEY_ip",
        "OCF_RESKEY_multi",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, want, "{text}");
    assert!(text.contains("OCF_RESKEY_multi=a b\n"));
    assert!(text.contains("OCF_RESKEY_CRM_meta_timeout=30000\n"));
    assert!(text.contains("OCF_RESKEY_CRM_meta_interval=10000\n"));
    assert!(text.contains("OCF_CHECK_LEVEL=10\n"));
    assert!(text.contains("OCF_EXIT_REASON_PREFIX=ocf-exit-reason:\n"));
    // A probe has no interval.
    assert_eq!(a.monitor(&ctx("env")).await.status, Status::Success);
    let text = std::fs::read_to_string(&envf).unwrap();
    assert!(!text.contains("CRM_meta_interval"), "{text}");
}

#[tokio::test]
async fn bad_input_gives_clear_results() {
    let root = FakeRoot::new();
    // Not found.
    let e = OcfAgent::new(root.root(), "fake", "nope").unwrap_err();
    assert!(matches!(e, Error::AgentNotFound { .. }), "{e}");
    assert!(e.to_string().contains("nope"));
    let e = OcfAgent::new(root.root(), "../etc", "passwd").unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    // Not executable.
    let p = root.agent("noexec", "exit 0");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let a = OcfAgent::new(root.root(), "fake", "noexec").unwrap();
    let o = a.monitor(&ctx("noexec")).await;
    assert_eq!(o.status, Status::CouldNotExecute);
    assert!(o.exit_reason.unwrap().contains("not executable"));
    // Non-UTF-8 output and exit reason.
    root.agent(
        "binary",
        "printf '\\377\\376 out'\nprintf 'ocf-exit-reason:bad \\377 bytes\\n' >&2\nexit 1",
    );
    let a = OcfAgent::new(root.root(), "fake", "binary").unwrap();
    let o = a.monitor(&ctx("binary")).await;
    assert_eq!(o.status, Status::GenericError);
    assert_eq!(o.exit_reason.as_deref(), Some("bad \u{fffd} bytes"));
    // A parameter value with newlines arrives intact.
    let dir = TempDir::new("nl");
    let f = dir.path().join("v");
    root.agent(
        "echo",
        &format!("printf '%s' \"$OCF_RESKEY_v\" > '{}'", f.display()),
    );
    let a = OcfAgent::new(root.root(), "fake", "echo").unwrap();
    let v = "line one\nline two\n\nend";
    assert_eq!(
        a.monitor(&ctx("nl").param("v", v)).await.status,
        Status::Success
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), v);
    // NUL in a value, '=' in a name: refused.
    let o = a.monitor(&ctx("nul").param("v", "a\0b")).await;
    assert_eq!(o.status, Status::CouldNotExecute);
    let o = a.monitor(&ctx("eq").param("a=b", "x")).await;
    assert_eq!(o.status, Status::CouldNotExecute);
    // Timeout 0: refused, not run.
    let o = a.monitor(&ctx("t0").timeout(Duration::ZERO)).await;
    assert_eq!(o.status, Status::CouldNotExecute);
    assert!(o.exit_reason.unwrap().contains("timeout"));
}

#[tokio::test]
async fn discovery_lists_agents_sorted() {
    let root = FakeRoot::new();
    root.agent("b", "exit 0");
    root.agent("a", "exit 0");
    std::fs::write(root.root().join("resource.d/fake/.hidden"), "").unwrap();
    let ids = OcfAgent::discover(root.root()).unwrap();
    let names: Vec<_> = ids.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[tokio::test]
async fn lsb_status_mapping_over_the_runner() {
    let dir = TempDir::new("lsb");
    let state = dir.path().join("state");
    let script = dir.path().join("svc");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nS='{}'\ncase $1 in\n start) touch $S;;\n stop) rm -f $S;;\n status) [ -f $S ] && exit 0; exit 3;;\n *) exit 3;;\nesac\nexit 0\n",
            state.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let a = LsbAgent::in_dir(dir.path(), "svc").unwrap();
    let c = ctx("lsb");
    assert_eq!(a.monitor(&c).await.status, Status::NotRunning);
    assert_eq!(a.start(&c).await.status, Status::Success);
    assert_eq!(a.monitor(&c).await.status, Status::Success);
    assert_eq!(a.stop(&c).await.status, Status::Success);
    assert_eq!(a.monitor(&c).await.status, Status::NotRunning);
    assert_eq!(a.promote(&c).await.status, Status::Unimplemented);
    // status 4 ("unknown") → generic error.
    std::fs::write(&script, "#!/bin/sh\nexit 4\n").unwrap();
    assert_eq!(a.monitor(&c).await.status, Status::GenericError);
    assert!(matches!(
        LsbAgent::in_dir(dir.path(), "missing"),
        Err(Error::AgentNotFound { .. })
    ));
}
