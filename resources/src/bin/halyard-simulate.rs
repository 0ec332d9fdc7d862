//! `halyard-simulate`: run halyard's placement solver on a Pacemaker CIB.
//!
//! ```text
//! halyard-simulate [-t DATE] CIB.xml               # status, transition summary, executed actions, revised status
//! halyard-simulate [-t DATE] --graph OUT.xml CIB.xml  # also write the transition graph (Pacemaker's XML form)
//! halyard-simulate [-t DATE] --placement CIB.xml   # normalised placement TSV
//! halyard-simulate [-t DATE] --explain RSC CIB.xml # why RSC is where it is
//! halyard-simulate --to-toml CIB.xml                # the model as halyard's TOML
//! ```
//!
//! A file ending in `.toml` is read as halyard's own configuration instead of a CIB.
#![deny(unsafe_code)]

use halyard_resources::placement;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: halyard-simulate [-t DATE] [--graph OUT.xml] [--placement | --explain RSC | --to-toml] CIB.xml|CONFIG.toml"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut placement_only = false;
    let mut to_toml = false;
    let mut explain: Option<String> = None;
    let mut now: Option<i64> = None;
    let mut file: Option<String> = None;
    let mut graph_out: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--placement" => placement_only = true,
            "--to-toml" => to_toml = true,
            "--graph" | "-G" => match args.next() {
                Some(f) => graph_out = Some(f),
                None => return usage(),
            },
            "--explain" => match args.next() {
                Some(r) => explain = Some(r),
                None => return usage(),
            },
            "-t" | "--set-datetime" => {
                match args.next().and_then(|d| placement::rules::parse_date(&d)) {
                    Some(t) => now = Some(t),
                    None => {
                        eprintln!("halyard-simulate: -t needs an ISO 8601 date (YYYY-MM-DD[ hh:mm:ss] or YYYY-DDD)");
                        return ExitCode::from(2);
                    }
                }
            }
            "-h" | "--help" => {
                let _ = usage();
                return ExitCode::SUCCESS;
            }
            f if !f.starts_with('-') && file.is_none() => file = Some(f.to_string()),
            _ => return usage(),
        }
    }
    let Some(file) = file else { return usage() };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("halyard-simulate: cannot read {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let read = if file.ends_with(".toml") {
        placement::read_toml(&text)
    } else {
        placement::read_cib(&text, now)
    };
    let cluster = match read {
        Ok(c) => c,
        Err(e) => {
            eprintln!("halyard-simulate: {file}: {e}");
            return ExitCode::from(1);
        }
    };
    if to_toml {
        return match placement::to_toml(&cluster) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("halyard-simulate: {e}");
                ExitCode::from(1)
            }
        };
    }
    let out = placement::schedule(&cluster);
    if let Some(g) = &graph_out {
        if let Err(e) = std::fs::write(g, out.transition.to_pacemaker_xml(&cluster)) {
            eprintln!("halyard-simulate: cannot write {g}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(r) = explain {
        match out.explain(&cluster, &r) {
            Some(t) => print!("{t}"),
            None => {
                eprintln!("halyard-simulate: no resource named {r}");
                return ExitCode::from(1);
            }
        }
    } else if placement_only {
        print!("{}", out.placement_tsv());
    } else {
        print!("{}", out.simulate_text(&cluster));
    }
    ExitCode::SUCCESS
}
