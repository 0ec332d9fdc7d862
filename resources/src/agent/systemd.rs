//! The systemd adapter: units driven over D-Bus (`org.freedesktop.systemd1`) with
//! zbus, as Pacemaker 3 does (see `shared/notes/AGENTS.md`):
//!
//! - every action starts with `LoadUnit` (`.service` appended when the name has no
//!   unit suffix); `LoadState=not-found` → not installed (stop: success);
//!   `masked` → not installed; an invalid name → invalid parameter;
//! - start: a drop-in `<dropin root>/<unit>.d/50-halyard.conf` with `Restart=no`
//!   (the cluster, not systemd, restarts services), `Reload`, then the `JobRemoved`
//!   stream is opened (the connection is `Subscribe`d once, before any job) and
//!   `StartUnit(name, "replace")`; the job's `JobRemoved` result `done` → check
//!   `ActiveState`; `failed`, `dependency`, `timeout`, `canceled` → error;
//! - monitor: `ActiveState` active/reloading → running, activating/deactivating →
//!   re-checked until it settles (within the timeout), anything else → not running;
//! - stop: remove the drop-in, `Reload`, `StopUnit`, wait for its job, then
//!   `ResetFailedUnit`.

use super::context::ActionContext;
use super::metadata::{ActionSpec, Metadata};
use super::outcome::{Outcome, Status};
use super::ResourceAgent;
use crate::error::{Error, Result};
use async_trait::async_trait;
use futures::StreamExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::Connection;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";

/// The drop-in directory root of the system manager.
pub const SYSTEM_DROPIN_ROOT: &str = "/run/systemd/system";

/// How often a pending (activating/deactivating) unit is re-checked.
const RECHECK: Duration = Duration::from_millis(50);

/// The name of the drop-in halyard writes.
pub const DROPIN_NAME: &str = "50-halyard.conf";

const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".mount",
    ".automount",
    ".timer",
    ".path",
    ".swap",
    ".slice",
    ".scope",
    ".device",
];

/// A connection to a systemd manager, shared by the unit agents made from it.
#[derive(Debug, Clone)]
pub struct SystemdManager {
    conn: Connection,
    dropin_root: PathBuf,
}

fn dbus(context: impl Into<String>) -> impl FnOnce(zbus::Error) -> Error {
    let context = context.into();
    move |e| Error::Dbus {
        context,
        source: Box::new(e),
    }
}

impl SystemdManager {
    /// The system manager on the system bus; drop-ins go to
    /// [`SYSTEM_DROPIN_ROOT`].
    pub async fn system() -> Result<Self> {
        let conn = Connection::system()
            .await
            .map_err(dbus("connecting to the system bus"))?;
        Self::with_connection(conn, SYSTEM_DROPIN_ROOT).await
    }

    /// The manager reachable at a D-Bus `address` (such as a user manager's
    /// `unix:path=$XDG_RUNTIME_DIR/bus`), with drop-ins under `dropin_root` (for a
    /// user manager: `$XDG_RUNTIME_DIR/systemd/user`).
    pub async fn at_address(address: &str, dropin_root: impl Into<PathBuf>) -> Result<Self> {
        let conn = zbus::connection::Builder::address(address)
            .map_err(dbus(format!("D-Bus address {address:?}")))?
            .build()
            .await
            .map_err(dbus(format!("connecting to {address}")))?;
        Self::with_connection(conn, dropin_root).await
    }

    /// Uses an existing connection; subscribes it to job signals.
    pub async fn with_connection(
        conn: Connection,
        dropin_root: impl Into<PathBuf>,
    ) -> Result<Self> {
        // Without Subscribe, JobRemoved for jobs that finish later may never arrive.
        match conn
            .call_method(Some(DEST), PATH, Some(MANAGER), "Subscribe", &())
            .await
        {
            Ok(_) => {}
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.systemd1.AlreadySubscribed" => {}
            Err(e) => return Err(dbus("Subscribe")(e)),
        }
        Ok(Self {
            conn,
            dropin_root: dropin_root.into(),
        })
    }

    /// An agent for `unit` (`.service` appended if it has no unit suffix).
    pub fn agent(&self, unit: &str) -> SystemdAgent {
        SystemdAgent {
            mgr: Arc::new(self.clone()),
            unit: unit_name(unit),
        }
    }

    async fn call<B, R>(&self, method: &str, body: &B) -> zbus::Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let msg = self
            .conn
            .call_method(Some(DEST), PATH, Some(MANAGER), method, body)
            .await?;
        msg.body().deserialize::<R>()
    }

    async fn unit_prop(&self, path: &OwnedObjectPath, prop: &str) -> zbus::Result<String> {
        let msg = self
            .conn
            .call_method(
                Some(DEST),
                path.as_ref(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(UNIT, prop),
            )
            .await?;
        let v: OwnedValue = msg.body().deserialize()?;
        String::try_from(v).map_err(zbus::Error::Variant)
    }
}

/// `name` with `.service` appended when it has no unit suffix.
pub fn unit_name(name: &str) -> String {
    if UNIT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// A systemd unit as a resource agent (`systemd:<unit>`).
#[derive(Debug, Clone)]
pub struct SystemdAgent {
    mgr: Arc<SystemdManager>,
    unit: String,
}

/// Where a unit stands after `LoadUnit`.
enum Loaded {
    Unit(OwnedObjectPath),
    Outcome(Outcome),
}

fn method_error(e: &zbus::Error) -> Option<&str> {
    match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str()),
        _ => None,
    }
}

fn error_outcome(unit: &str, what: &str, e: &zbus::Error) -> Outcome {
    let status = match method_error(e) {
        Some("org.freedesktop.systemd1.NoSuchUnit") => Status::NotInstalled,
        Some("org.freedesktop.systemd1.UnitMasked") => Status::NotInstalled,
        Some("org.freedesktop.DBus.Error.InvalidArgs") => Status::InvalidArgs,
        Some("org.freedesktop.DBus.Error.AccessDenied")
        | Some("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired") => {
            Status::InsufficientPrivilege
        }
        _ => Status::GenericError,
    };
    Outcome::with_reason(status, format!("{what} {unit}: {e}"))
}

impl SystemdAgent {
    /// The unit name.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    fn dropin_dir(&self) -> PathBuf {
        self.mgr.dropin_root.join(format!("{}.d", self.unit))
    }

    async fn load(&self, for_stop: bool) -> Loaded {
        let path: OwnedObjectPath = match self.mgr.call("LoadUnit", &(self.unit.as_str(),)).await {
            Ok(p) => p,
            Err(e)
                if for_stop && method_error(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") =>
            {
                return Loaded::Outcome(Outcome::success())
            }
            Err(e) => return Loaded::Outcome(error_outcome(&self.unit, "loading", &e)),
        };
        match self.mgr.unit_prop(&path, "LoadState").await.as_deref() {
            Ok("loaded") => Loaded::Unit(path),
            Ok("not-found") if for_stop => Loaded::Outcome(Outcome::success()),
            Ok("not-found") => Loaded::Outcome(Outcome::with_reason(
                Status::NotInstalled,
                format!("unit {} not found", self.unit),
            )),
            Ok("masked") if for_stop => Loaded::Outcome(Outcome::success()),
            Ok("masked") => Loaded::Outcome(Outcome::with_reason(
                Status::NotInstalled,
                format!("unit {} is masked", self.unit),
            )),
            Ok(other) => Loaded::Outcome(Outcome::with_reason(
                Status::NotConfigured,
                format!("unit {} has LoadState {other}", self.unit),
            )),
            Err(e) => Loaded::Outcome(error_outcome(&self.unit, "reading LoadState of", e)),
        }
    }

    async fn reload(&self) -> std::result::Result<(), Outcome> {
        self.mgr
            .call::<_, ()>("Reload", &())
            .await
            .map_err(|e| error_outcome(&self.unit, "daemon-reload for", &e))
    }

    /// Runs `StartUnit`/`StopUnit` and waits for the job's `JobRemoved` result.
    async fn job(&self, method: &str) -> std::result::Result<String, Outcome> {
        let manager = zbus::Proxy::new(&self.mgr.conn, DEST, PATH, MANAGER)
            .await
            .map_err(|e| error_outcome(&self.unit, "proxy for", &e))?;
        // Open the signal stream BEFORE the job exists.
        let mut removed = manager
            .receive_signal("JobRemoved")
            .await
            .map_err(|e| error_outcome(&self.unit, "subscribing to JobRemoved for", &e))?;
        let job: OwnedObjectPath = self
            .mgr
            .call(method, &(self.unit.as_str(), "replace"))
            .await
            .map_err(|e| error_outcome(&self.unit, method, &e))?;
        while let Some(msg) = removed.next().await {
            let Ok((_id, path, _unit, result)) = msg
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == job {
                return Ok(result);
            }
        }
        Err(Outcome::with_reason(
            Status::GenericError,
            format!("D-Bus connection closed waiting for {method} {}", self.unit),
        ))
    }

    async fn active_state(&self, path: &OwnedObjectPath) -> std::result::Result<String, Outcome> {
        self.mgr
            .unit_prop(path, "ActiveState")
            .await
            .map_err(|e| error_outcome(&self.unit, "reading ActiveState of", &e))
    }

    /// ActiveState → outcome, re-checking pending states until they settle (the
    /// caller's timeout bounds this).
    async fn settle(&self, path: &OwnedObjectPath) -> Outcome {
        loop {
            match self.active_state(path).await {
                Ok(s) => match s.as_str() {
                    "active" | "reloading" => return Outcome::success(),
                    "activating" | "deactivating" => tokio::time::sleep(RECHECK).await,
                    "failed" => {
                        return Outcome::with_reason(
                            Status::NotRunning,
                            format!("unit {} failed", self.unit),
                        )
                    }
                    _ => return Outcome::not_running(),
                },
                Err(o) => return o,
            }
        }
    }

    async fn write_dropin(&self) -> std::result::Result<(), Outcome> {
        let dir = self.dropin_dir();
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join(DROPIN_NAME),
                "# Written by halyard: the cluster, not systemd, restarts this unit.\n[Service]\nRestart=no\n",
            )
        };
        write().map_err(|e| {
            Outcome::with_reason(
                Status::InsufficientPrivilege,
                format!("writing drop-in in {}: {e}", dir.display()),
            )
        })
    }

    fn remove_dropin(&self) -> bool {
        let dir = self.dropin_dir();
        let existed = std::fs::remove_file(dir.join(DROPIN_NAME)).is_ok();
        let _ = std::fs::remove_dir(&dir);
        existed
    }

    /// The drop-in directory of this unit.
    pub fn dropin_path(&self) -> PathBuf {
        self.dropin_dir().join(DROPIN_NAME)
    }
}

#[async_trait]
impl ResourceAgent for SystemdAgent {
    fn name(&self) -> String {
        format!("systemd:{}", self.unit)
    }

    async fn start(&self, _ctx: &ActionContext) -> Outcome {
        let path = match self.load(false).await {
            Loaded::Unit(p) => p,
            Loaded::Outcome(o) => return o,
        };
        if let Err(o) = self.write_dropin().await {
            return o;
        }
        if let Err(o) = self.reload().await {
            return o;
        }
        match self.job("StartUnit").await {
            Ok(r) if r == "done" => {}
            Ok(r) => {
                return Outcome::with_reason(
                    Status::GenericError,
                    format!("start job of {} ended: {r}", self.unit),
                )
            }
            Err(o) => return o,
        }
        match self.settle(&path).await {
            o if o.status == Status::Success => o,
            o => Outcome::with_reason(
                Status::GenericError,
                o.exit_reason
                    .unwrap_or_else(|| format!("{} is not active after start", self.unit)),
            ),
        }
    }

    async fn stop(&self, _ctx: &ActionContext) -> Outcome {
        let path = match self.load(true).await {
            Loaded::Unit(p) => p,
            Loaded::Outcome(o) => return o,
        };
        if self.remove_dropin() {
            if let Err(o) = self.reload().await {
                return o;
            }
        }
        let res = match self.job("StopUnit").await {
            Ok(r) if r == "done" => Outcome::success(),
            Ok(r) => Outcome::with_reason(
                Status::GenericError,
                format!("stop job of {} ended: {r}", self.unit),
            ),
            Err(o) if o.status == Status::NotInstalled => Outcome::success(),
            Err(o) => o,
        };
        // Forget a "failed" state so the next probe sees a clean "inactive".
        let _ = self
            .mgr
            .call::<_, ()>("ResetFailedUnit", &(self.unit.as_str(),))
            .await;
        if res.status == Status::Success {
            if let Ok(s) = self.active_state(&path).await {
                if s == "active" {
                    return Outcome::with_reason(
                        Status::GenericError,
                        format!("{} still active after stop", self.unit),
                    );
                }
            }
        }
        res
    }

    async fn monitor(&self, _ctx: &ActionContext) -> Outcome {
        match self.load(false).await {
            Loaded::Unit(p) => self.settle(&p).await,
            Loaded::Outcome(o) => o,
        }
    }

    async fn metadata(&self) -> Result<Metadata> {
        let action = |name: &str, t: u64, i: Option<u64>| ActionSpec {
            name: name.to_string(),
            timeout: Some(Duration::from_secs(t)),
            interval: i.map(Duration::from_secs),
            depth: None,
            role: None,
            start_delay: None,
        };
        Ok(Metadata {
            name: self.unit.clone(),
            agent_version: None,
            ocf_version: None,
            shortdesc: Some(format!("systemd unit {}", self.unit)),
            parameters: Vec::new(),
            actions: vec![
                action("start", 100, None),
                action("stop", 100, None),
                action("monitor", 100, Some(60)),
                action("meta-data", 5, None),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_get_service_appended() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("a.socket"), "a.socket");
        assert_eq!(unit_name("getty@tty1"), "getty@tty1.service");
        assert_eq!(unit_name("x.service"), "x.service");
    }
}
