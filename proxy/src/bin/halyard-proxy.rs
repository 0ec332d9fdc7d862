//! `halyard-proxy --config proxy.toml [--check]`: runs the proxy described by
//! a TOML file (see `halyard_proxy::config`) until SIGINT/SIGTERM, then stops
//! gracefully (open sessions get 5 s to finish). `--check` only validates.
//! Logs go to stderr; filter with `RUST_LOG` (default `info`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use halyard_proxy::config::Config;
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
    let rt = if config.threads == 1 {
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
    rt.block_on(async move {
        let proxy = match Proxy::start(config).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("halyard-proxy: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!("halyard-proxy running");
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("halyard-proxy: cannot watch SIGTERM: {e}");
                    return ExitCode::from(1);
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: no new sessions, open ones get 5s");
        let left = proxy.shutdown(Duration::from_secs(5)).await;
        tracing::info!(closed = left, "stopped");
        ExitCode::SUCCESS
    })
}
