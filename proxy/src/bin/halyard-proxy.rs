//! `halyard-proxy --config proxy.toml [--check]`: runs the proxy described by
//! a TOML file (see `halyard_proxy::config`). `--check` only validates.
//! Logs go to stderr; filter with `RUST_LOG` (default `info`).
//!
//! Stopping, as HAProxy 2.6 (management guide, "Stopping and restarting
//! HAProxy"):
//! - SIGUSR1: soft stop (`Proxy::soft_stop`). The listeners close and the
//!   checks stop at once; open sessions finish, however long they take,
//!   unless `global.hard_stop_after` is set (then the ones left are closed);
//!   the process then exits with status 0. Later SIGUSR1s are ignored.
//! - SIGTERM, SIGINT: hard stop. As HAProxy (which installs no handler for
//!   them), the default action ends the process at once and the kernel
//!   closes every socket.
//!
//! Reload without refusing clients: start the new process with the new
//! configuration (it binds the same addresses: listeners use `SO_REUSEPORT`
//! unless `global.noreuseport`), then send SIGUSR1 to the old one. See
//! "Stopping and reloading" in `proxy/README.md` for `tcp_migrate_req`.
//!
//! `threads = N > 1` with `thread_model = "per-core"` (the default) runs N
//! single-threaded runtimes, one per OS thread: this thread starts the proxy
//! (listeners, checks, stats), the others call `Proxy::serve_here` to accept
//! on their own `SO_REUSEPORT` listeners.

use std::path::PathBuf;
use std::process::ExitCode;

use halyard_proxy::config::{Config, ThreadModel};
use halyard_proxy::Proxy;

fn usage() -> ExitCode {
    eprintln!("usage: halyard-proxy --config FILE.toml [--check]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut path: Option<PathBuf> = None;
    let mut check_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-f" => match args.next() {
                Some(p) => path = Some(p.into()),
                None => return usage(),
            },
            "--check" => check_only = true,
            _ => return usage(),
        }
    }
    let Some(path) = path else { return usage() };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("halyard-proxy: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    if check_only {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let per_core = config.threads > 1 && config.thread_model == ThreadModel::PerCore;
    let rt = if config.threads == 1 || per_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("halyard-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let threads = config.threads;
    let hard_stop_after = config.hard_stop_after;
    rt.block_on(async move {
        // Installed first: a SIGUSR1 during the start soft-stops right after it.
        let mut usr1 =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("halyard-proxy: cannot watch SIGUSR1: {e}");
                    return ExitCode::from(1);
                }
            };
        let proxy = match Proxy::start(config).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("halyard-proxy: {e}");
                return ExitCode::from(1);
            }
        };
        // Thread per core: the other workers, stopped once the soft stop is over.
        let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        if per_core {
            for i in 1..threads {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let handle = proxy.clone();
                let mut stopped = stopped_rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("halyard-worker-{i}"))
                    .spawn(move || {
                        let rt = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(rt) => rt,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e.to_string()));
                                return;
                            }
                        };
                        rt.block_on(async move {
                            let r = handle.serve_here().await.map_err(|e| e.to_string());
                            let ok = r.is_ok();
                            let _ = ready_tx.send(r.map(|_| ()));
                            if ok {
                                // Sessions of this worker run until the soft stop is over.
                                while !*stopped.borrow_and_update() {
                                    if stopped.changed().await.is_err() {
                                        break;
                                    }
                                }
                            }
                        });
                    });
                let started = match spawned {
                    Ok(h) => {
                        workers.push(h);
                        ready_rx.await.unwrap_or_else(|_| Err("worker exited".into()))
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = started {
                    eprintln!("halyard-proxy: cannot start worker thread {i}: {e}");
                    proxy.hard_stop();
                    let _ = stopped_tx.send(true);
                    return ExitCode::from(1);
                }
            }
        }
        tracing::info!(threads, per_core, "halyard-proxy running");
        usr1.recv().await;
        tracing::info!(hard_stop_after = ?hard_stop_after, "SIGUSR1: soft stop, no new sessions, open ones finish");
        let left = proxy.soft_stop().await;
        let _ = stopped_tx.send(true);
        for w in workers {
            let _ = w.join();
        }
        tracing::info!(closed = left, accepted_per_worker = ?proxy.accepted_per_worker(), "stopped");
        ExitCode::SUCCESS
    })
}
