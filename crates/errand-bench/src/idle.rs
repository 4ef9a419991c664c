//! What a server costs when nothing happens: its CPU time per second of wall time, after it
//! has settled from starting.

use std::time::{Duration, Instant};

use super::Deployment;

/// Time given to the server to finish starting (migrations, first passes) before the
/// measurement.
const SETTLE: Duration = Duration::from_secs(2);

/// The shortest measurement: `/proc` counts CPU time in 10 ms ticks, so 60 s of idle reads
/// to about 0.17 ms of CPU per second, fine enough for a 2 ms/s target.
pub const MIN_DURATION: Duration = Duration::from_secs(60);

/// Prints the servers' CPU per second over `duration`.
pub async fn run(d: &Deployment, duration: Duration) -> anyhow::Result<()> {
    tokio::time::sleep(SETTLE).await;
    let before = d
        .server_cpu()
        .ok_or_else(|| anyhow::anyhow!("the idle scenario starts its own server"))?;
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let elapsed = start.elapsed();
    let after = d.server_cpu().unwrap_or(before);
    let per_second = after.saturating_sub(before).as_secs_f64() * 1e3 / elapsed.as_secs_f64();
    println!(
        "{:<40} {per_second:>10.2} ms CPU per second  ({:.0} ms in {:.1}s, {} node(s))",
        "idle server",
        after.saturating_sub(before).as_secs_f64() * 1e3,
        elapsed.as_secs_f64(),
        d.servers.len()
    );
    Ok(())
}
