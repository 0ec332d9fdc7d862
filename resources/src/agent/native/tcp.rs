//! A native agent that supervises a TCP service.

use super::{action, param};
use crate::agent::{ActionContext, ContentType, Metadata, Outcome, ResourceAgent, Status};
use crate::error::Result;
use async_trait::async_trait;
use rustix::process::{kill_process_group, Pid, Signal};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How often `start` checks whether the port accepts connections.
const POLL: Duration = Duration::from_millis(20);
/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Supervises a child process that serves TCP, one per resource instance.
///
/// Parameters:
/// - `binary` (required): the program to run;
/// - `args`: its arguments, separated by whitespace;
/// - `port` (required): the TCP port it listens on;
/// - `address` (default `127.0.0.1`): the address monitored.
///
/// `start` spawns the program in its own process group (stdin, stdout and stderr
/// on `/dev/null`) and succeeds once the port accepts a connection; it fails if
/// the program exits first. `monitor` is `NotRunning` if there is no child or it
/// exited, `Success` if the port accepts a connection, and a generic error if the
/// child runs but the port refuses. `stop` sends SIGTERM to the group, then SIGKILL
/// after 5 s (or half the stop timeout), and reaps the child.
///
/// ```no_run
/// use halyard_resources::agent::{native::TcpServiceAgent, ActionContext, ResourceAgent, Status};
/// # async fn demo() {
/// let agent = TcpServiceAgent::new();
/// let ctx = ActionContext::new("web")
///     .param("binary", "/usr/bin/python3")
///     .param("args", "-m http.server --bind 127.0.0.1 18080")
///     .param("port", "18080");
/// assert_eq!(agent.start(&ctx).await.status, Status::Success);
/// assert_eq!(agent.monitor(&ctx).await.status, Status::Success);
/// assert_eq!(agent.stop(&ctx).await.status, Status::Success);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct TcpServiceAgent {
    children: Mutex<BTreeMap<String, Child>>,
}

struct Config {
    binary: String,
    args: Vec<String>,
    addr: SocketAddr,
}

fn config(ctx: &ActionContext) -> std::result::Result<Config, Outcome> {
    let bad = |s: Status, m: String| Outcome::with_reason(s, m);
    let binary = ctx.params.get("binary").cloned().ok_or_else(|| {
        bad(
            Status::NotConfigured,
            "parameter \"binary\" is required".into(),
        )
    })?;
    let port = ctx.params.get("port").ok_or_else(|| {
        bad(
            Status::NotConfigured,
            "parameter \"port\" is required".into(),
        )
    })?;
    let port: u16 = port.trim().parse().map_err(|_| {
        bad(
            Status::InvalidArgs,
            format!("port {port:?} is not a TCP port number"),
        )
    })?;
    let ip: IpAddr = match ctx.params.get("address") {
        Some(a) => a.trim().parse().map_err(|_| {
            bad(
                Status::InvalidArgs,
                format!("address {a:?} is not an IP address"),
            )
        })?,
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let args = ctx
        .params
        .get("args")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Config {
        binary,
        args,
        addr: SocketAddr::new(ip, port),
    })
}

async fn accepts(addr: SocketAddr) -> std::io::Result<()> {
    match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await {
        Ok(r) => r.map(drop),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timed out",
        )),
    }
}

fn group_of(child: &Child) -> Option<Pid> {
    child.id().and_then(|id| Pid::from_raw(id as i32))
}

impl TcpServiceAgent {
    /// The agent (no children yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some(exit)` if the instance's child has exited (and forgets it), `None`
    /// if it runs; `Err` if there is no child.
    fn reap(&self, instance: &str) -> std::result::Result<Option<String>, ()> {
        let mut m = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let child = m.get_mut(instance).ok_or(())?;
        match child.try_wait() {
            Ok(None) => Ok(None),
            Ok(Some(st)) => {
                m.remove(instance);
                Ok(Some(st.to_string()))
            }
            Err(e) => {
                m.remove(instance);
                Ok(Some(e.to_string()))
            }
        }
    }
}

impl Drop for TcpServiceAgent {
    fn drop(&mut self) {
        let m = self.children.get_mut().unwrap_or_else(|p| p.into_inner());
        for child in m.values() {
            if let Some(pg) = group_of(child) {
                let _ = kill_process_group(pg, Signal::KILL);
            }
        }
        // kill_on_drop + tokio's orphan reaper reap them.
    }
}

#[async_trait]
impl ResourceAgent for TcpServiceAgent {
    fn name(&self) -> String {
        "native:tcp-service".to_string()
    }

    async fn start(&self, ctx: &ActionContext) -> Outcome {
        let cfg = match config(ctx) {
            Ok(c) => c,
            Err(o) => return o,
        };
        if self.reap(&ctx.instance).is_err() {
            let spawned = Command::new(&cfg.binary)
                .args(&cfg.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(true)
                .spawn();
            match spawned {
                Ok(child) => {
                    let mut m = self.children.lock().unwrap_or_else(|p| p.into_inner());
                    m.insert(ctx.instance.clone(), child);
                }
                Err(e) => {
                    let status = match e.kind() {
                        std::io::ErrorKind::NotFound => Status::NotInstalled,
                        std::io::ErrorKind::PermissionDenied => Status::InsufficientPrivilege,
                        _ => Status::GenericError,
                    };
                    return Outcome::with_reason(status, format!("cannot run {}: {e}", cfg.binary));
                }
            }
        }
        // Wait until it listens (the executor's timeout bounds this), or exits.
        loop {
            match self.reap(&ctx.instance) {
                Ok(None) => {}
                Ok(Some(exit)) => {
                    return Outcome::with_reason(
                        Status::GenericError,
                        format!("{} exited before listening: {exit}", cfg.binary),
                    )
                }
                Err(()) => {
                    return Outcome::with_reason(Status::GenericError, "stopped while starting")
                }
            }
            if accepts(cfg.addr).await.is_ok() {
                return Outcome::success();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn stop(&self, ctx: &ActionContext) -> Outcome {
        let child = {
            let mut m = self.children.lock().unwrap_or_else(|p| p.into_inner());
            m.remove(&ctx.instance)
        };
        let Some(mut child) = child else {
            return Outcome::success();
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Outcome::success();
        }
        let grace = STOP_GRACE.min(ctx.timeout / 2);
        if let Some(pg) = group_of(&child) {
            let _ = kill_process_group(pg, Signal::TERM);
            if tokio::time::timeout(grace, child.wait()).await.is_ok() {
                return Outcome::success();
            }
            let _ = kill_process_group(pg, Signal::KILL);
        }
        match child.wait().await {
            Ok(_) => Outcome::success(),
            Err(e) => Outcome::with_reason(Status::GenericError, format!("reaping child: {e}")),
        }
    }

    async fn monitor(&self, ctx: &ActionContext) -> Outcome {
        let cfg = match config(ctx) {
            Ok(c) => c,
            Err(o) => return o,
        };
        match self.reap(&ctx.instance) {
            Err(()) => Outcome::not_running(),
            Ok(Some(exit)) => {
                Outcome::with_reason(Status::NotRunning, format!("{} exited: {exit}", cfg.binary))
            }
            Ok(None) => match accepts(cfg.addr).await {
                Ok(()) => Outcome::success(),
                Err(e) => Outcome::with_reason(
                    Status::GenericError,
                    format!("running but {} does not accept: {e}", cfg.addr),
                ),
            },
        }
    }

    async fn validate(&self, ctx: &ActionContext) -> Outcome {
        match config(ctx) {
            Ok(c) if std::path::Path::new(&c.binary).is_file() || !c.binary.contains('/') => {
                Outcome::success()
            }
            Ok(c) => {
                Outcome::with_reason(Status::NotInstalled, format!("{} does not exist", c.binary))
            }
            Err(o) => o,
        }
    }

    async fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata {
            name: "tcp-service".into(),
            agent_version: Some(env!("CARGO_PKG_VERSION").into()),
            ocf_version: Some("1.1".into()),
            shortdesc: Some("Supervises a process serving TCP".into()),
            parameters: vec![
                param("binary", true, ContentType::String, None, "Program to run"),
                param("args", false, ContentType::String, None, "Its arguments"),
                param("port", true, ContentType::Integer, None, "TCP port"),
                param(
                    "address",
                    false,
                    ContentType::String,
                    Some("127.0.0.1"),
                    "Address to monitor",
                ),
            ],
            actions: vec![
                action("start", 20, None),
                action("stop", 20, None),
                action("monitor", 20, Some(10)),
                action("validate-all", 5, None),
                action("meta-data", 5, None),
            ],
        })
    }
}
