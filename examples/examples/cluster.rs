//! The main job: a whole high-availability cluster in one process (ring,
//! process group, placement solver, resource agents, proxy), with a node killed
//! and restarted under client load. See `halyard_examples::cluster` for the
//! scenario; this program prints its timeline.
//!
//! ```sh
//! cargo run --release -p halyard-examples --example cluster
//! ```

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match halyard_examples::cluster::run(true).await {
        Ok(report) => println!(
            "failover (kill to traffic on the survivors only): {:.0} ms",
            report.failover.as_secs_f64() * 1e3
        ),
        Err(e) => {
            eprintln!("cluster example failed: {e}");
            std::process::exit(1);
        }
    }
}
