//! The OCF adapter: runs `<OCF_ROOT>/resource.d/<provider>/<type> <action>` with
//! exactly Pacemaker's environment (see `shared/notes/AGENTS.md`), through the
//! shared [process runner](super::runner).
//!
//! ```text
//!  ActionContext ──> env (OCF_*, OCF_RESKEY_<param>, OCF_RESKEY_CRM_meta_*,
//!                         OCF_CHECK_LEVEL, PATH with the promotion stand-ins)
//!                 ──> runner (own process group, timeout → SIGKILL to the group)
//!                 ──> Outcome (exit code 1:1, exit reason, promotion updates)
//! ```
//!
//! Promotable agents call `crm_attribute --promotion` or `crm_master`. The adapter
//! puts stand-ins for both first on the agent's `PATH` and in `HA_SBIN_DIR`; they
//! append `set <score>` / `delete` to a per-operation report file whose path is in
//! `HALYARD_PROMOTION_REPORT`, and the adapter returns those updates in
//! [`Outcome::promotion`]. Any other use of those commands (and the other
//! Pacemaker tools agents call from `HA_SBIN_DIR`) goes to the real tool when it is
//! installed.

use super::context::{Action, ActionContext};
use super::metadata::{validate_params, Metadata, MAX_METADATA_BYTES};
use super::outcome::{Outcome, PromotionUpdate, Status};
use super::runner::{self, Exit, RunOutput, RunSpec, SpawnError, DEFAULT_CAPTURE_LIMIT};
use super::ResourceAgent;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OnceCell;

/// The default OCF root.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// Timeout of the `meta-data` action (and at most that long before `start`).
pub const METADATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `PATH` given to agents (after the stand-in directory).
pub const AGENT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the real Pacemaker tools live.
const REAL_SBIN: &str = "/usr/sbin";

/// Tools agents call as `${HA_SBIN_DIR}/<tool>`; the stand-in directory links
/// them to the real ones.
const PASSTHROUGH_TOOLS: &[&str] = &[
    "attrd_updater",
    "crm_node",
    "crm_mon",
    "crm_resource",
    "cibadmin",
];

const STANDIN: &str = r#"#!/bin/sh
# halyard stand-in for `crm_attribute --promotion` and `crm_master`: reports the
# promotion score to the halyard executor instead of the CIB. Other uses go to the
# real tool.
me=${0##*/}
promo=0; val=; have_val=0; del=0; query=0
[ "$me" = crm_master ] && promo=1
parse() {
  while [ $# -gt 0 ]; do
    case $1 in
      -p|--promotion|--promotion=*|-p*) promo=1 ;;
      -v|--update|--attr-value) val=${2-}; have_val=1; [ $# -gt 1 ] && shift ;;
      --update=*|--attr-value=*) val=${1#*=}; have_val=1 ;;
      -D|--delete) del=1 ;;
      -G|--query) query=1 ;;
      -l|--lifetime|-N|--node|-n|--name|-t|--type|-r|--resource|-i|--id|-s|--set-name) [ $# -gt 1 ] && shift ;;
    esac
    shift
  done
}
parse "$@"
if [ $promo = 0 ]; then
  [ "$me" = crm_attribute ] && [ -x /usr/sbin/crm_attribute ] && exec /usr/sbin/crm_attribute "$@"
  echo "halyard: $me without --promotion is not available here" >&2; exit 1
fi
if [ -z "${HALYARD_PROMOTION_REPORT:-}" ]; then
  echo "halyard: $me: no executor to report the promotion score to" >&2; exit 1
fi
if [ $query = 1 ]; then
  echo "halyard: $me: querying promotion scores is not supported" >&2; exit 1
elif [ $del = 1 ]; then
  echo delete >> "$HALYARD_PROMOTION_REPORT"
elif [ $have_val = 1 ]; then
  printf 'set %s\n' "$val" >> "$HALYARD_PROMOTION_REPORT"
else
  echo "halyard: $me: nothing to do (give -v SCORE or -D)" >&2; exit 1
fi
exit 0
"#;

/// The directory holding the promotion stand-ins (one per process, removed when the
/// last agent using it is dropped).
#[derive(Debug)]
pub struct PromotionStandIns {
    dir: PathBuf,
    next: AtomicU64,
}

static STANDINS: Mutex<Weak<PromotionStandIns>> = Mutex::new(Weak::new());

impl PromotionStandIns {
    /// The process-wide stand-in directory, created on first use.
    pub fn shared() -> Result<Arc<Self>> {
        let mut g = STANDINS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.upgrade() {
            return Ok(s);
        }
        let s = Arc::new(Self::create()?);
        *g = Arc::downgrade(&s);
        Ok(s)
    }

    fn create() -> Result<Self> {
        use std::os::unix::fs::{symlink, PermissionsExt};
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "halyard-ocf-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |context: String| move |source| Error::Io { context, source };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))
            .map_err(io(format!("creating {}", dir.display())))?;
        std::fs::create_dir_all(dir.join("reports"))
            .map_err(io(format!("creating {}/reports", dir.display())))?;
        for name in ["crm_attribute", "crm_master"] {
            let p = dir.join("bin").join(name);
            std::fs::write(&p, STANDIN).map_err(io(format!("writing {}", p.display())))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(io(format!("chmod {}", p.display())))?;
        }
        for tool in PASSTHROUGH_TOOLS {
            let real = Path::new(REAL_SBIN).join(tool);
            if real.exists() {
                let _ = symlink(&real, dir.join("bin").join(tool));
            }
        }
        Ok(Self {
            dir,
            next: AtomicU64::new(0),
        })
    }

    /// The directory to put first on `PATH` and in `HA_SBIN_DIR`.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    fn report_path(&self) -> PathBuf {
        self.dir
            .join("reports")
            .join(self.next.fetch_add(1, Ordering::Relaxed).to_string())
    }
}

impl Drop for PromotionStandIns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads and removes a promotion report file.
fn take_report(path: &Path) -> Vec<PromotionUpdate> {
    let Ok(text) = std::fs::read(path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(path);
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            if l == "delete" {
                return Some(PromotionUpdate::Delete);
            }
            let v = l.strip_prefix("set ")?.trim();
            // Pacemaker scores: integers, or +/-INFINITY.
            let score = match v {
                "INFINITY" | "+INFINITY" => 1_000_000,
                "-INFINITY" => -1_000_000,
                v => v.parse::<i64>().ok()?.clamp(-1_000_000, 1_000_000),
            };
            Some(PromotionUpdate::Set(score))
        })
        .collect()
}

/// An OCF resource agent `ocf:<provider>:<type>`.
#[derive(Debug)]
pub struct OcfAgent {
    root: PathBuf,
    provider: String,
    kind: String,
    path: PathBuf,
    standins: Option<Arc<PromotionStandIns>>,
    metadata: OnceCell<Metadata>,
    capture_limit: usize,
    launcher: Vec<OsString>,
}

fn check_name(what: &'static str, v: &str) -> Result<()> {
    if v.is_empty() || v == "." || v == ".." || v.contains('/') || v.contains('\0') {
        return Err(Error::InvalidName {
            what,
            value: v.to_string(),
            fix: "use a non-empty name without '/' or NUL",
        });
    }
    Ok(())
}

/// An agent found by [`OcfAgent::discover`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OcfAgentId {
    /// The provider directory name.
    pub provider: String,
    /// The agent file name.
    pub kind: String,
}

impl OcfAgent {
    /// The agent `ocf:<provider>:<kind>` under `root` (normally
    /// [`DEFAULT_OCF_ROOT`]). Fails if the file does not exist.
    pub fn new(root: impl Into<PathBuf>, provider: &str, kind: &str) -> Result<Self> {
        check_name("provider", provider)?;
        check_name("type", kind)?;
        let root = root.into();
        let path = root.join("resource.d").join(provider).join(kind);
        if !path.is_file() {
            return Err(Error::AgentNotFound {
                agent: format!("ocf:{provider}:{kind}"),
                path: path.display().to_string(),
            });
        }
        let standins = match PromotionStandIns::shared() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no promotion stand-ins: promotable agents cannot report scores");
                None
            }
        };
        Ok(Self {
            root,
            provider: provider.to_string(),
            kind: kind.to_string(),
            path,
            standins,
            metadata: OnceCell::new(),
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            launcher: Vec::new(),
        })
    }

    /// Sets the bound on captured bytes per stream (default 64 KiB).
    pub fn with_capture_limit(mut self, limit: usize) -> Self {
        self.capture_limit = limit;
        self
    }

    /// Runs the agent through a launcher that `exec`s it, such as
    /// `["ip", "netns", "exec", "<ns>"]` to run it inside a network namespace. The
    /// launcher must exec (not fork) the agent, so that the process group and
    /// timeout semantics still hold.
    pub fn with_launcher<I, S>(mut self, launcher: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.launcher = launcher.into_iter().map(Into::into).collect();
        self
    }

    /// Lists the agents under `root`, sorted (files directly in
    /// `resource.d/<provider>/`, not starting with `.`).
    pub fn discover(root: impl AsRef<Path>) -> Result<Vec<OcfAgentId>> {
        let base = root.as_ref().join("resource.d");
        let io = |p: &Path| {
            let context = format!("listing {}", p.display());
            move |source| Error::Io { context, source }
        };
        let mut out = Vec::new();
        for prov in std::fs::read_dir(&base).map_err(io(&base))? {
            let prov = prov.map_err(io(&base))?;
            let pname = prov.file_name().to_string_lossy().into_owned();
            if pname.starts_with('.') || !prov.path().is_dir() {
                continue;
            }
            let Ok(entries) = std::fs::read_dir(prov.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !e.path().is_file() {
                    continue;
                }
                out.push(OcfAgentId {
                    provider: pname.clone(),
                    kind: name,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// `ocf:<provider>:<type>`.
    pub fn id(&self) -> String {
        format!("ocf:{}:{}", self.provider, self.kind)
    }

    /// The agent's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment Pacemaker gives the agent for `action` (by OCF name).
    /// Parameters whose name starts with `OCF_` (such as `OCF_CHECK_LEVEL`) are
    /// passed unchanged, as the command-line runner contract asks.
    pub fn environment(
        &self,
        action: &str,
        ctx: &ActionContext,
        report: Option<&Path>,
    ) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = Vec::with_capacity(16 + ctx.params.len());
        let mut put = |k: &str, v: &str| env.push((k.into(), v.into()));
        let path = match &self.standins {
            Some(s) => format!("{}:{AGENT_PATH}", s.bin_dir().display()),
            None => AGENT_PATH.to_string(),
        };
        put("PATH", &path);
        put("LC_ALL", "C");
        put("OCF_ROOT", &self.root.to_string_lossy());
        put("OCF_RA_VERSION_MAJOR", "1");
        put("OCF_RA_VERSION_MINOR", "1");
        put("OCF_EXIT_REASON_PREFIX", runner::EXIT_REASON_PREFIX);
        put("OCF_OUTPUT_FORMAT", "text");
        put("OCF_RESOURCE_INSTANCE", &ctx.instance);
        put("OCF_RESOURCE_TYPE", &self.kind);
        put("OCF_RESOURCE_PROVIDER", &self.provider);
        if let Some(s) = &self.standins {
            put("HA_SBIN_DIR", &s.bin_dir().to_string_lossy());
        }
        if let Some(r) = report {
            put("HALYARD_PROMOTION_REPORT", &r.to_string_lossy());
        }
        let op = action.parse::<Action>().unwrap_or(Action::Monitor);
        for (k, v) in ctx.meta(op) {
            put(&format!("OCF_RESKEY_CRM_meta_{k}"), &v);
        }
        if ctx.depth > 0 {
            put("OCF_CHECK_LEVEL", &ctx.depth.to_string());
        }
        for (k, v) in &ctx.params {
            if k.starts_with("OCF_") {
                put(k, v);
            } else {
                put(&format!("OCF_RESKEY_{k}"), v);
            }
        }
        env
    }

    /// Runs `action` (any name, as the CLI allows) and returns the raw process
    /// result, with the promotion updates it reported.
    pub async fn run_raw(
        &self,
        action: &str,
        ctx: &ActionContext,
    ) -> std::result::Result<(RunOutput, Vec<PromotionUpdate>), Outcome> {
        if let Some(bad) = check_context(ctx) {
            return Err(bad);
        }
        let report = self.standins.as_ref().map(|s| s.report_path());
        let limit = if action == "meta-data" {
            MAX_METADATA_BYTES
        } else {
            self.capture_limit
        };
        let (program, args) = match self.launcher.split_first() {
            None => (self.path.clone(), vec![action.into()]),
            Some((first, rest)) => {
                let mut args = rest.to_vec();
                args.push(self.path.clone().into_os_string());
                args.push(action.into());
                (PathBuf::from(first), args)
            }
        };
        let spec = RunSpec {
            program,
            args,
            env: self.environment(action, ctx, report.as_deref()),
            timeout: ctx.timeout,
            capture_limit: limit,
        };
        let res = runner::run(&spec).await;
        let promo = report.as_deref().map(take_report).unwrap_or_default();
        match res {
            Ok(out) => Ok((out, promo)),
            Err(e) => Err(spawn_outcome(&e)),
        }
    }

    /// Runs `action` by OCF name and maps the result to an [`Outcome`].
    pub async fn run_action(&self, action: &str, ctx: &ActionContext) -> Outcome {
        match self.run_raw(action, ctx).await {
            Ok((out, promo)) => {
                let mut o = outcome_of(&out, ctx);
                o.promotion = promo;
                o
            }
            Err(o) => o,
        }
    }

    /// Checks `ctx.params` against the agent's meta-data (done before `start` and
    /// `validate-all`): `None` when fine (warnings are logged), else the outcome to
    /// return: `NotConfigured` with an exit reason naming the missing required
    /// parameter. If the meta-data cannot be had, the check is skipped (logged).
    pub async fn check_parameters(&self, ctx: &ActionContext) -> Option<Outcome> {
        match self
            .metadata_within(ctx.timeout.min(METADATA_TIMEOUT))
            .await
        {
            Ok(md) => {
                let params: std::collections::BTreeMap<String, String> = ctx
                    .params
                    .iter()
                    .filter(|(k, _)| !k.starts_with("OCF_") && !k.starts_with("CRM_meta_"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                match validate_params(&self.id(), &md, &params) {
                    Ok(warnings) => {
                        for w in warnings {
                            tracing::warn!(agent = %self.id(), instance = %ctx.instance, parameter = %w.name, "{}", w.message);
                        }
                        None
                    }
                    Err(e) => Some(Outcome::with_reason(Status::NotConfigured, e.to_string())),
                }
            }
            Err(e) => {
                tracing::warn!(agent = %self.id(), error = %e, "cannot validate parameters");
                None
            }
        }
    }
}

/// Refuses contexts no agent can be run with. `None` if `ctx` is usable.
pub fn check_context(ctx: &ActionContext) -> Option<Outcome> {
    if ctx.timeout.is_zero() {
        return Some(Outcome::could_not_execute(
            "operation timeout is 0: give a positive timeout",
        ));
    }
    if ctx.instance.is_empty() || ctx.instance.contains('\0') {
        return Some(Outcome::could_not_execute(
            "resource instance name is empty or contains NUL",
        ));
    }
    for (k, v) in &ctx.params {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Some(Outcome::could_not_execute(format!(
                "parameter name {k:?} cannot be an environment variable (empty, '=' or NUL)"
            )));
        }
        if v.contains('\0') {
            return Some(Outcome::could_not_execute(format!(
                "value of parameter {k:?} contains NUL"
            )));
        }
    }
    None
}

/// The outcome of a failed spawn.
pub fn spawn_outcome(e: &SpawnError) -> Outcome {
    Outcome::could_not_execute(e.to_string())
}

/// Maps a finished process to an outcome.
pub fn outcome_of(out: &RunOutput, ctx: &ActionContext) -> Outcome {
    match out.exit {
        Exit::Code(c) => Outcome::from_exit_code(c, out.exit_reason.clone()),
        Exit::Signaled(s) => {
            let mut o = Outcome::with_reason(
                Status::GenericError,
                out.exit_reason
                    .clone()
                    .unwrap_or_else(|| format!("agent killed by signal {s}")),
            );
            o.raw_exit_code = Some(128 + s);
            o
        }
        Exit::TimedOut => Outcome::with_reason(
            Status::TimedOut,
            format!(
                "timed out after {} ms; process group killed",
                ctx.timeout.as_millis()
            ),
        ),
    }
}

#[async_trait]
impl ResourceAgent for OcfAgent {
    fn name(&self) -> String {
        self.id()
    }

    async fn start(&self, ctx: &ActionContext) -> Outcome {
        if let Some(o) = check_context(ctx) {
            return o;
        }
        if let Some(o) = self.check_parameters(ctx).await {
            return o;
        }
        self.run_action("start", ctx).await
    }
    async fn stop(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("stop", ctx).await
    }
    async fn monitor(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("monitor", ctx).await
    }
    async fn promote(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("promote", ctx).await
    }
    async fn demote(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("demote", ctx).await
    }
    async fn notify(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("notify", ctx).await
    }
    async fn reload(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("reload", ctx).await
    }
    async fn migrate_to(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("migrate_to", ctx).await
    }
    async fn migrate_from(&self, ctx: &ActionContext) -> Outcome {
        self.run_action("migrate_from", ctx).await
    }
    async fn validate(&self, ctx: &ActionContext) -> Outcome {
        if let Some(o) = check_context(ctx) {
            return o;
        }
        if let Some(o) = self.check_parameters(ctx).await {
            return o;
        }
        self.run_action("validate-all", ctx).await
    }

    async fn metadata(&self) -> Result<Metadata> {
        self.metadata_within(METADATA_TIMEOUT).await
    }
}

impl OcfAgent {
    /// The meta-data, fetched once (with `timeout`) and cached; a failure is not
    /// cached.
    pub async fn metadata_within(&self, timeout: std::time::Duration) -> Result<Metadata> {
        self.metadata
            .get_or_try_init(|| async {
                let ctx = ActionContext::new(self.kind.clone()).timeout(timeout);
                let id = self.id();
                let err = |reason: String| Error::MetaData {
                    agent: id.clone(),
                    reason,
                };
                let (out, _) = self
                    .run_raw("meta-data", &ctx)
                    .await
                    .map_err(|o| err(o.to_string()))?;
                match out.exit {
                    Exit::Code(0) => {}
                    _ => {
                        return Err(err(format!(
                            "meta-data action failed: {}",
                            outcome_of(&out, &ctx)
                        )))
                    }
                }
                if out.stdout_dropped > 0 {
                    return Err(err(format!(
                        "meta-data larger than {MAX_METADATA_BYTES} bytes"
                    )));
                }
                Metadata::parse(&id, &out.stdout)
            })
            .await
            .cloned()
    }
}
