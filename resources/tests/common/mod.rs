//! Helpers shared by the agent tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The shared material: `$HALYARD_SHARED` if set, else `<repo>/../shared`, found
/// as the first ancestor of the crate with a `shared/anchors` folder (so a git
/// worktree elsewhere finds it too).
pub fn shared() -> PathBuf {
    if let Some(p) = std::env::var_os("HALYARD_SHARED") {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared"))
        .find(|c| c.join("anchors").is_dir())
        .unwrap_or_else(|| manifest.join("../../shared"))
}

/// The folder of Pacemaker's scheduler regression cases, if present.
pub fn scheduler_corpus() -> Option<PathBuf> {
    let shared = shared();
    shared
        .join("data/pacemaker-scheduler/cases.tsv")
        .is_file()
        .then_some(shared)
}

/// True under `HALYARD_REQUIRE_SYSTEM=1` (CI): a missing dependency fails the test.
pub fn require_system() -> bool {
    std::env::var("HALYARD_REQUIRE_SYSTEM").as_deref() == Ok("1")
}

/// "Now" from a corpus case's `.args` (`-t DATE`, DATE possibly quoted).
pub fn now_from_args(args: &str) -> Option<i64> {
    let rest = args.trim().strip_prefix("-t")?.trim();
    let d = rest.trim_matches(|c| c == '\'' || c == '"');
    halyard_resources::placement::rules::parse_date(d)
}

/// True if the system has what a test needs. Otherwise prints why and returns
/// false (skip), or panics under HALYARD_REQUIRE_SYSTEM=1.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("HALYARD_REQUIRE_SYSTEM").as_deref() == Ok("1") {
        panic!("HALYARD_REQUIRE_SYSTEM=1 but {what} is not available");
    }
    eprintln!("SKIP: {what} is not available");
    false
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The real OCF agents (and root, which they need for /run).
pub fn have_ocf_agents() -> bool {
    let ok = [
        "heartbeat/Dummy",
        "heartbeat/anything",
        "heartbeat/IPaddr2",
        "pacemaker/Stateful",
    ]
    .iter()
    .all(|a| Path::new("/usr/lib/ocf/resource.d").join(a).is_file());
    require(
        "resource-agents + pacemaker-resource-agents, as root",
        ok && is_root(),
    )
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "halyard-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fake OCF root with provider `fake`: `agent(name, body)` writes an executable
/// shell script.
pub struct FakeRoot {
    pub dir: TempDir,
}

impl FakeRoot {
    pub fn new() -> Self {
        let dir = TempDir::new("ocfroot");
        std::fs::create_dir_all(dir.path().join("resource.d/fake")).unwrap();
        Self { dir }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn agent(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join("resource.d/fake").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Live (and zombie) child processes of this process.
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(d) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in d.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == me {
            out.push(pid);
        }
    }
    out
}

/// Pids whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let me = std::process::id();
    let Ok(d) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in d.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs every process whose command line contains `marker`.
pub fn kill_marked(marker: &str) {
    for pid in pids_with(marker) {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

/// Waits (bounded) until no process matches `marker`.
pub fn wait_gone(marker: &str) -> bool {
    for _ in 0..100 {
        if pids_with(marker).is_empty() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// A unique tag for instance names.
pub fn tag(name: &str) -> String {
    format!("hy-{name}-{}", std::process::id())
}

/// A `sleep` command line unique to this test process, findable with
/// [`pids_with`]: `sleep 1000.<pid><n>`.
pub fn unique_sleep() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "sleep 1000.{}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
