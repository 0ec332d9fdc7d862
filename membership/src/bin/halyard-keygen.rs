//! `halyard-keygen [--force] [PATH]`: writes a new random cluster key (like
//! `corosync-keygen`), 32 bytes from the operating system's RNG, mode 0600.
//! Copy the file to every node of the cluster. The default path is
//! `/etc/halyard/authkey`.

use std::process::ExitCode;

use halyard_membership::ClusterKey;

const DEFAULT_PATH: &str = "/etc/halyard/authkey";
const USAGE: &str = "usage: halyard-keygen [--force] [PATH]\n\
  Writes a new random 32-byte cluster key to PATH (default /etc/halyard/authkey), mode 0600.\n\
  --force  replace an existing key file (every node then needs the new key)";

fn main() -> ExitCode {
    let mut force = false;
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-f" | "--force" => force = true,
            _ if arg.starts_with('-') => {
                eprintln!("halyard-keygen: unknown option {arg}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ if path.is_none() => path = Some(arg),
            _ => {
                eprintln!("halyard-keygen: only one PATH may be given\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let path = path.unwrap_or_else(|| DEFAULT_PATH.to_string());
    let result = ClusterKey::generate_os().and_then(|key| key.save(&path, force));
    match result {
        Ok(()) => {
            println!(
                "Wrote a new halyard cluster key to {path} (mode 0600). Copy it to every node."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("halyard-keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
