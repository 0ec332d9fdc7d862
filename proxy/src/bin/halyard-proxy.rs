//! `halyard-proxy --config proxy.toml`: placeholder until the runtime lands.
fn main() {}
