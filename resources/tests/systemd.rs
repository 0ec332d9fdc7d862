//! The systemd adapter against a REAL systemd: a user manager started by
//! `shared/anchors/agents/systemd-user-sandbox.sh` (as root, private mount
//! namespace, its own bus), with the test units from `shared/anchors/agents/units/`
//! copied into the sandbox's config dir. Skipped with a reason when that cannot
//! run; failing under HALYARD_REQUIRE_SYSTEM=1. The sandbox is stopped at the end
//! and no process of it may remain.

mod common;

use common::*;
use halyard_resources::agent::systemd::{SystemdAgent, SystemdManager};
use halyard_resources::agent::{ActionContext, ResourceAgent, Status};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Sandbox {
    dir: TempDir,
    script: PathBuf,
}

impl Sandbox {
    fn start() -> Option<Self> {
        let script = shared().join("anchors/agents/systemd-user-sandbox.sh");
        let ok = is_root()
            && script.is_file()
            && Path::new("/lib/systemd/systemd").is_file()
            && Path::new("/usr/bin/busctl").is_file()
            && Path::new("/usr/bin/dbus-daemon").is_file();
        if !require(
            "root + systemd + dbus-user-session + shared/anchors/agents/systemd-user-sandbox.sh",
            ok,
        ) {
            return None;
        }
        let dir = TempDir::new("sdu");
        // Units first, so the manager loads them at start-up.
        let units = dir.path().join("config/systemd/user");
        std::fs::create_dir_all(&units).unwrap();
        for e in std::fs::read_dir(shared().join("anchors/agents/units")).unwrap() {
            let e = e.unwrap();
            let dst = units.join(e.file_name());
            let body = std::fs::read(e.path()).unwrap();
            if body.trim_ascii() == b"/dev/null" {
                // A masked unit is a symlink to /dev/null (the copy in shared/ lost it).
                std::os::unix::fs::symlink("/dev/null", &dst).unwrap();
            } else {
                std::fs::write(&dst, body).unwrap();
            }
        }
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        let sb = Self { dir, script };
        let up = out.status.success();
        if !require(
            &format!(
                "a systemd --user sandbox ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            up,
        ) {
            return None;
        }
        Some(sb)
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Processes whose environment mentions `needle` (everything the sandbox's
/// manager started inherits its XDG_RUNTIME_DIR).
fn pids_with_env(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if String::from_utf8_lossy(&env).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

async fn settles_to(a: &SystemdAgent, ctx: &ActionContext, want: Status) -> Status {
    let mut last = Status::CouldNotExecute;
    for _ in 0..100 {
        last = a.monitor(ctx).await.status;
        if last == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

#[tokio::test]
async fn systemd_user_manager_sandbox() {
    let Some(sb) = Sandbox::start() else { return };
    let run_dir = sb.run_dir();
    let marker = run_dir.to_string_lossy().into_owned();
    let result = tokio::time::timeout(Duration::from_secs(90), scenarios(&run_dir)).await;
    drop(sb);
    // The sandbox leaves nothing behind.
    let mut left = pids_with_env(&marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = pids_with_env(&marker);
    }
    result.expect("systemd scenarios did not finish within 90 s");
    assert!(left.is_empty(), "sandbox processes left: {left:?}");
}

async fn scenarios(run_dir: &Path) {
    let address = format!("unix:path={}", run_dir.join("bus").display());
    let mgr = SystemdManager::at_address(&address, run_dir.join("systemd/user"))
        .await
        .expect("connect to the sandbox's systemd");
    let ctx = ActionContext::new("svc").timeout(Duration::from_secs(20));

    // A simple long-running service: the full lifecycle, with the drop-in.
    let a = mgr.agent("hy-sleep");
    assert_eq!(a.name(), "systemd:hy-sleep.service");
    assert_eq!(a.monitor(&ctx).await.status, Status::NotRunning);
    let o = a.start(&ctx).await;
    assert_eq!(o.status, Status::Success, "{o}");
    let dropin = std::fs::read_to_string(a.dropin_path()).unwrap();
    assert!(dropin.contains("Restart=no"));
    assert_eq!(a.monitor(&ctx).await.status, Status::Success);
    assert_eq!(a.start(&ctx).await.status, Status::Success, "idempotent");
    assert_eq!(a.stop(&ctx).await.status, Status::Success);
    assert!(!a.dropin_path().exists());
    assert_eq!(a.monitor(&ctx).await.status, Status::NotRunning);
    assert_eq!(a.stop(&ctx).await.status, Status::Success, "idempotent");

    // A simple service that exits at once: the job is "done", the monitor then
    // sees it is not running; stop resets the failed state.
    let a = mgr.agent("hy-fail");
    let _ = a.start(&ctx).await;
    assert_eq!(
        settles_to(&a, &ctx, Status::NotRunning).await,
        Status::NotRunning
    );
    assert_eq!(a.stop(&ctx).await.status, Status::Success);

    // A failing oneshot: the job fails.
    let o = mgr.agent("hy-fail1").start(&ctx).await;
    assert_eq!(o.status, Status::GenericError, "{o}");
    assert!(o.exit_reason.unwrap().contains("failed"));
    // A unit whose dependency fails.
    let o = mgr.agent("hy-dep").start(&ctx).await;
    assert_eq!(o.status, Status::GenericError, "{o}");
    assert!(o.exit_reason.unwrap().contains("dependency"));
    assert_eq!(mgr.agent("hy-dep").stop(&ctx).await.status, Status::Success);
    assert_eq!(
        mgr.agent("hy-fail1").stop(&ctx).await.status,
        Status::Success
    );
    // A start that exceeds the unit's own TimeoutStartSec.
    let o = mgr.agent("hy-timeout").start(&ctx).await;
    assert_eq!(o.status, Status::GenericError, "{o}");
    assert!(o.exit_reason.unwrap().contains("timeout"));
    assert_eq!(
        mgr.agent("hy-timeout").stop(&ctx).await.status,
        Status::Success
    );

    // A slow oneshot: start waits for the job; a monitor meanwhile waits out
    // "activating" and reports running.
    let slow = mgr.agent("hy-slow");
    let (o, m) = tokio::join!(slow.start(&ctx), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        slow.monitor(&ctx).await
    });
    assert_eq!(o.status, Status::Success, "{o}");
    assert_eq!(m.status, Status::Success, "{m}");
    assert_eq!(slow.stop(&ctx).await.status, Status::Success);

    // Masked, missing, invalid: clear outcomes.
    let o = mgr.agent("hy-masked").start(&ctx).await;
    assert_eq!(o.status, Status::NotInstalled, "{o}");
    assert!(o.exit_reason.unwrap().contains("masked"));
    assert_eq!(
        mgr.agent("hy-masked").stop(&ctx).await.status,
        Status::Success
    );
    let nope = mgr.agent("hy-no-such-unit");
    assert_eq!(nope.start(&ctx).await.status, Status::NotInstalled);
    assert_eq!(nope.monitor(&ctx).await.status, Status::NotInstalled);
    assert_eq!(nope.stop(&ctx).await.status, Status::Success);
    let o = mgr.agent("in valid/name").start(&ctx).await;
    assert_eq!(o.status, Status::InvalidArgs, "{o}");
}
