//! `halyard-ocf PROVIDER TYPE ACTION INSTANCE [NAME=VALUE ...]`: runs one OCF
//! agent action through halyard's OCF adapter, honouring the runner contract of
//! `shared/anchors/agents/ocf-smoke.sh`:
//!
//! - `NAME=VALUE` becomes `OCF_RESKEY_NAME=VALUE`; names starting with `OCF_`
//!   (e.g. `OCF_CHECK_LEVEL=10`) are passed unchanged;
//! - env `TIMEOUT_MS` is the operation timeout (default 20000), env `OCF_ROOT_DIR`
//!   the OCF root (default `/usr/lib/ocf`);
//! - exits with the agent's exit code, or 124 on timeout (after killing the agent's
//!   whole process group); the agent's stdout/stderr are passed through;
//! - `start` and `validate-all` first check the parameters against the agent's
//!   meta-data: a missing required parameter exits 6 with an exit reason naming it.
//!
//! Other exits: 2 usage, 5 agent not found, 126 agent could not be executed.

use halyard_resources::agent::ocf::{OcfAgent, DEFAULT_OCF_ROOT};
use halyard_resources::agent::runner::Exit;
use halyard_resources::agent::{ActionContext, Status};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

fn usage() -> ExitCode {
    eprintln!("usage: halyard-ocf PROVIDER TYPE ACTION INSTANCE [NAME=VALUE ...]");
    ExitCode::from(2)
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return usage();
    }
    let (provider, kind, action, instance) = (&args[0], &args[1], &args[2], &args[3]);
    let mut ctx = ActionContext::new(instance.clone());
    for kv in &args[4..] {
        let Some((k, v)) = kv.split_once('=') else {
            eprintln!("halyard-ocf: argument {kv:?} is not NAME=VALUE");
            return usage();
        };
        ctx.params.insert(k.to_string(), v.to_string());
    }
    let timeout_ms = match std::env::var("TIMEOUT_MS") {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(ms) => ms,
            Err(_) => {
                eprintln!("halyard-ocf: TIMEOUT_MS={v:?} is not a number of milliseconds");
                return ExitCode::from(2);
            }
        },
        Err(_) => 20_000,
    };
    ctx.timeout = Duration::from_millis(timeout_ms);
    let root = std::env::var("OCF_ROOT_DIR").unwrap_or_else(|_| DEFAULT_OCF_ROOT.to_string());

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("halyard-ocf: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let agent = match OcfAgent::new(&root, provider, kind) {
            Ok(a) => a.with_capture_limit(64 << 20),
            Err(e) => {
                eprintln!("halyard-ocf: {e}");
                eprintln!("ocf-exit-reason:{e}");
                return ExitCode::from(5);
            }
        };
        if action == "start" || action == "validate-all" {
            if let Some(o) = agent.check_parameters(&ctx).await {
                eprintln!("ocf-exit-reason:{}", o.exit_reason.as_deref().unwrap_or(""));
                return code(o.status.exit_code());
            }
        }
        match agent.run_raw(action, &ctx).await {
            Ok((out, _promotion)) => {
                let _ = std::io::stdout().write_all(&out.stdout);
                let _ = std::io::stderr().write_all(&out.stderr);
                match out.exit {
                    Exit::Code(c) => code(c),
                    Exit::Signaled(s) => code(128 + s),
                    Exit::TimedOut => {
                        eprintln!(
                            "halyard-ocf: {} {action} timed out after {timeout_ms} ms; process group killed",
                            agent.id()
                        );
                        code(Status::TimedOut.exit_code())
                    }
                }
            }
            Err(o) => {
                eprintln!("halyard-ocf: {o}");
                code(o.status.exit_code())
            }
        }
    })
}
