//! A worker process: runs `send_welcome` jobs, 16 at once, until SIGTERM or Ctrl-C; then
//! lets running emails finish for up to 20 s and gives back what still runs.
//!
//! ```sh
//! ERRAND_URL=http://127.0.0.1:7878 cargo run -p errand-worker --example worker
//! ```

#[path = "shared/mod.rs"]
mod shared;

use std::sync::Arc;
use std::time::Duration;

use errand_client::{Client, HttpJobHost};
use errand_worker::{HostError, JobContext, JobError, Worker};
use shared::{SendWelcome, Sent};

/// The handler: a plain async fn of the context and the typed job.
async fn send_welcome(ctx: JobContext, job: SendWelcome) -> Result<Sent, JobError> {
    if !job.to.contains('@') {
        // No retry will make this address valid: the job goes dead at once.
        return Err(JobError::dead(format!(
            "`{}` is not an email address",
            job.to
        )));
    }
    // Progress is advice: a server away for a moment must not fail the email; a lost
    // lease means the job is no longer ours (another worker has it, or it was cancelled).
    if let Err(HostError::LeaseLost | HostError::NotFound) = ctx.progress(10.0, "rendering").await {
        return Err(JobError::retry("lease lost"));
    }
    // ... render and send; an error here (`?`) is retried with the server's backoff.
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("welcome sent to {} (attempt {})", job.to, ctx.attempt());
    Ok(Sent {
        message_id: format!("msg-{}", ctx.id()),
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new(&shared::server_url())?;
    let host = HttpJobHost::new(client, "welcome-worker", Duration::from_secs(30));
    let report = Worker::new(Arc::new(host))
        .concurrency(16)
        .grace(Duration::from_secs(20))
        .register::<SendWelcome, _>(send_welcome)
        .run(stop_signal())
        .await?;
    println!(
        "stopped; gave back {:?}, could not give back {:?}",
        report.given_back, report.not_given_back
    );
    Ok(())
}
