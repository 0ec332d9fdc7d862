//! A "virtual resource" agent whose state is a lock file.

use super::{action, param};
use crate::agent::{ActionContext, ContentType, Metadata, Outcome, ResourceAgent, Status};
use crate::error::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A resource that is "running" while it holds a lock file: the smallest useful
/// native agent.
///
/// Parameters:
/// - `dir` (required): the directory holding the lock files;
/// - `lock` (default: the instance name): the lock's name. Two instances that
///   name the same lock exclude each other: the second `start` fails while the
///   first holds it.
///
/// `start` creates `<dir>/<lock>.lock` atomically (`O_CREAT|O_EXCL`) holding the
/// instance name, and succeeds if this instance already holds it; `stop` removes it
/// if this instance holds it; `monitor` reports `Success` while this instance holds
/// it and `NotRunning` otherwise.
///
/// ```no_run
/// use halyard_resources::agent::{native::FileLockAgent, ActionContext, ResourceAgent, Status};
/// # async fn demo() {
/// let agent = FileLockAgent::new();
/// let ctx = ActionContext::new("vip-lock").param("dir", "/run/halyard");
/// assert_eq!(agent.start(&ctx).await.status, Status::Success);
/// assert_eq!(agent.monitor(&ctx).await.status, Status::Success);
/// assert_eq!(agent.stop(&ctx).await.status, Status::Success);
/// assert_eq!(agent.monitor(&ctx).await.status, Status::NotRunning);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct FileLockAgent {
    /// Lock files this agent created or confirmed, kept open so that their inode
    /// cannot be reused, with their (device, inode): a monitor then needs one
    /// `stat`, not an open and a read. Unknown files are read.
    held: Mutex<BTreeMap<PathBuf, Held>>,
}

impl FileLockAgent {
    /// The agent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `instance` holds `path` (open as `file`), or forgets what
    /// `instance` held there (`file` None).
    fn remember(&self, path: &Path, instance: &str, file: Option<std::fs::File>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match file.and_then(|f| f.metadata().ok().map(|md| (f, file_id(&md)))) {
            Some((file, id)) => {
                let holder = instance.to_string();
                held.insert(
                    path.to_path_buf(),
                    Held {
                        _file: file,
                        id,
                        holder,
                    },
                );
            }
            None => {
                if held.get(path).is_some_and(|h| h.holder == instance) {
                    held.remove(path);
                }
            }
        }
    }

    fn known(&self, path: &Path, instance: &str) -> Option<FileId> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(path)
            .filter(|h| h.holder == instance)
            .map(|h| h.id)
    }

    fn lock_path(ctx: &ActionContext) -> std::result::Result<PathBuf, Outcome> {
        let dir = ctx.params.get("dir").ok_or_else(|| {
            Outcome::with_reason(
                Status::NotConfigured,
                "parameter \"dir\" is required: the directory for lock files",
            )
        })?;
        let name = ctx.params.get("lock").unwrap_or(&ctx.instance);
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(Outcome::with_reason(
                Status::InvalidArgs,
                format!("lock name {name:?} must be non-empty without '/'"),
            ));
        }
        Ok(Path::new(dir).join(format!("{name}.lock")))
    }

    /// Who holds the lock: `Ok(None)` if nobody.
    fn holder(path: &Path) -> std::io::Result<Option<String>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

type FileId = (u64, u64);

/// A lock file this agent knows is held by `holder`; the open file pins the inode.
#[derive(Debug)]
struct Held {
    _file: std::fs::File,
    id: FileId,
    holder: String,
}

fn file_id(md: &std::fs::Metadata) -> FileId {
    (md.dev(), md.ino())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Outcome {
    let status = match e.kind() {
        std::io::ErrorKind::PermissionDenied => Status::InsufficientPrivilege,
        std::io::ErrorKind::NotFound => Status::NotInstalled,
        _ => Status::GenericError,
    };
    Outcome::with_reason(status, format!("{what} {}: {e}", path.display()))
}

#[async_trait]
impl ResourceAgent for FileLockAgent {
    fn name(&self) -> String {
        "native:file-lock".to_string()
    }

    async fn start(&self, ctx: &ActionContext) -> Outcome {
        let path = match Self::lock_path(ctx) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match created {
            Ok(mut f) => match f.write_all(ctx.instance.as_bytes()) {
                Ok(()) => {
                    self.remember(&path, &ctx.instance, Some(f));
                    Outcome::success()
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    io_error("writing", &path, e)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match Self::holder(&path) {
                Ok(Some(h)) if h == ctx.instance => {
                    self.remember(&path, &ctx.instance, std::fs::File::open(&path).ok());
                    Outcome::success()
                }
                Ok(Some(h)) => Outcome::with_reason(
                    Status::GenericError,
                    format!("lock {} is held by {h}", path.display()),
                ),
                Ok(None) => Outcome::with_reason(
                    Status::GenericError,
                    format!("lock {} vanished while starting; retry", path.display()),
                ),
                Err(e) => io_error("reading", &path, e),
            },
            Err(e) => io_error("creating", &path, e),
        }
    }

    async fn stop(&self, ctx: &ActionContext) -> Outcome {
        let path = match Self::lock_path(ctx) {
            Ok(p) => p,
            Err(o) => return o,
        };
        self.remember(&path, &ctx.instance, None);
        match Self::holder(&path) {
            Ok(Some(h)) if h == ctx.instance => match std::fs::remove_file(&path) {
                Ok(()) => Outcome::success(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Outcome::success(),
                Err(e) => io_error("removing", &path, e),
            },
            // Not ours or not there: this instance is stopped.
            Ok(_) => Outcome::success(),
            Err(e) => io_error("reading", &path, e),
        }
    }

    async fn monitor(&self, ctx: &ActionContext) -> Outcome {
        let path = match Self::lock_path(ctx) {
            Ok(p) => p,
            Err(o) => return o,
        };
        if let Some(id) = self.known(&path, &ctx.instance) {
            // Fast path: the very file this agent created is still there.
            match std::fs::symlink_metadata(&path) {
                Ok(md) if file_id(&md) == id => return Outcome::success(),
                Ok(_) => self.remember(&path, &ctx.instance, None), // replaced: read below
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.remember(&path, &ctx.instance, None);
                    return Outcome::not_running();
                }
                Err(e) => return io_error("checking", &path, e),
            }
        }
        match Self::holder(&path) {
            Ok(Some(h)) if h == ctx.instance => Outcome::success(),
            Ok(_) => Outcome::not_running(),
            Err(e) => io_error("reading", &path, e),
        }
    }

    async fn validate(&self, ctx: &ActionContext) -> Outcome {
        let path = match Self::lock_path(ctx) {
            Ok(p) => p,
            Err(o) => return o,
        };
        match path.parent().map(Path::is_dir) {
            Some(true) => Outcome::success(),
            _ => Outcome::with_reason(
                Status::NotInstalled,
                format!("lock directory of {} does not exist", path.display()),
            ),
        }
    }

    async fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata {
            name: "file-lock".into(),
            agent_version: Some(env!("CARGO_PKG_VERSION").into()),
            ocf_version: Some("1.1".into()),
            shortdesc: Some("A virtual resource that holds a lock file".into()),
            parameters: vec![
                param(
                    "dir",
                    true,
                    ContentType::String,
                    None,
                    "Directory for lock files",
                ),
                param(
                    "lock",
                    false,
                    ContentType::String,
                    None,
                    "Lock name (default: the instance name)",
                ),
            ],
            actions: vec![
                action("start", 5, None),
                action("stop", 5, None),
                action("monitor", 5, Some(10)),
                action("validate-all", 5, None),
                action("meta-data", 5, None),
            ],
        })
    }
}
