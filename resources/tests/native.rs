//! The two native example agents.

mod common;

use common::*;
use halyard_resources::agent::native::{FileLockAgent, TcpServiceAgent};
use halyard_resources::agent::{ActionContext, ResourceAgent, Status};
use std::time::Duration;

#[tokio::test]
async fn file_lock_agent_lifecycle_and_mutual_exclusion() {
    let dir = TempDir::new("lock");
    let d = dir.path().to_string_lossy().into_owned();
    let a = FileLockAgent::new();
    let one = ActionContext::new("one")
        .param("dir", &d)
        .param("lock", "vip");
    let two = ActionContext::new("two")
        .param("dir", &d)
        .param("lock", "vip");
    assert_eq!(a.validate(&one).await.status, Status::Success);
    assert_eq!(a.monitor(&one).await.status, Status::NotRunning);
    assert_eq!(a.start(&one).await.status, Status::Success);
    assert_eq!(a.start(&one).await.status, Status::Success, "idempotent");
    assert_eq!(a.monitor(&one).await.status, Status::Success);
    // The other instance cannot take the same lock.
    let o = a.start(&two).await;
    assert_eq!(o.status, Status::GenericError);
    assert!(o.exit_reason.unwrap().contains("held by one"));
    assert_eq!(a.monitor(&two).await.status, Status::NotRunning);
    assert_eq!(
        a.stop(&two).await.status,
        Status::Success,
        "not ours: stopped"
    );
    assert_eq!(a.monitor(&one).await.status, Status::Success);
    assert_eq!(a.stop(&one).await.status, Status::Success);
    assert_eq!(a.stop(&one).await.status, Status::Success, "idempotent");
    assert_eq!(a.start(&two).await.status, Status::Success);
    // Someone replaces the lock file behind the agent's back: not ours any more.
    let lockf = dir.path().join("vip.lock");
    std::fs::remove_file(&lockf).unwrap();
    std::fs::write(&lockf, "intruder").unwrap();
    assert_eq!(a.monitor(&two).await.status, Status::NotRunning);
    std::fs::remove_file(&lockf).unwrap();
    assert_eq!(a.monitor(&two).await.status, Status::NotRunning);
    // A fresh agent (no memory) still recognises a lock it did not create.
    assert_eq!(a.start(&two).await.status, Status::Success);
    assert_eq!(
        FileLockAgent::new().monitor(&two).await.status,
        Status::Success
    );
    assert_eq!(a.stop(&two).await.status, Status::Success);
    // Missing dir parameter.
    let o = a.start(&ActionContext::new("x")).await;
    assert_eq!(o.status, Status::NotConfigured);
    let md = a.metadata().await.unwrap();
    assert!(md.parameter("dir").unwrap().required);
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn tcp_service_agent_supervises_a_child_and_its_port() {
    let python = std::path::Path::new("/usr/bin/python3");
    if !require(
        "/usr/bin/python3 (a TCP server to supervise)",
        python.is_file(),
    ) {
        return;
    }
    let port = free_port();
    let a = TcpServiceAgent::new();
    let ctx = ActionContext::new(tag("web"))
        .param("binary", "/usr/bin/python3")
        .param("args", format!("-m http.server --bind 127.0.0.1 {port}"))
        .param("port", port.to_string())
        .timeout(Duration::from_secs(30));
    assert_eq!(a.monitor(&ctx).await.status, Status::NotRunning);
    let o = tokio::time::timeout(Duration::from_secs(30), a.start(&ctx))
        .await
        .expect("start did not finish");
    assert_eq!(o.status, Status::Success, "{o}");
    assert_eq!(a.monitor(&ctx).await.status, Status::Success);
    assert_eq!(a.start(&ctx).await.status, Status::Success, "idempotent");
    assert_eq!(a.stop(&ctx).await.status, Status::Success);
    assert_eq!(a.monitor(&ctx).await.status, Status::NotRunning);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // A program that exits at once fails the start with a reason.
    let bad = ActionContext::new(tag("bad"))
        .param("binary", "/bin/false")
        .param("port", free_port().to_string());
    let o = a.start(&bad).await;
    assert_eq!(o.status, Status::GenericError);
    assert!(o.exit_reason.unwrap().contains("exited before listening"));
    let o = a
        .start(
            &ActionContext::new("x")
                .param("binary", "/nonexistent")
                .param("port", "1"),
        )
        .await;
    assert_eq!(o.status, Status::NotInstalled);
    let o = a
        .start(&ActionContext::new("x").param("binary", "/bin/true"))
        .await;
    assert_eq!(o.status, Status::NotConfigured);
}
