//! The README's "Five minutes" program, word for word (`tests/readme.rs` keeps the two the
//! same, so that the README's code is compiled): a typed job, its handler, a worker, and
//! a wait for the result. The worker runs until Ctrl-C.
//!
//! ```sh
//! errand serve &
//! cargo run -p errand-worker --example five_minutes
//! ```

use errand_client::{Client, EnqueueRequest, HttpJobHost, JobId, JobState, JobType};
use errand_worker::{HostError, JobContext, JobError, Worker};
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};

// 1. A job kind is a type. Only KIND is required.
#[derive(Serialize, Deserialize)]
struct Resize {
    url: String,
    width: u32,
}

impl JobType for Resize {
    const KIND: &'static str = "resize";
    // Optional: per-value enqueue options (queue, priority, idempotency key, ...).
    fn configure(&self, req: &mut EnqueueRequest) {
        req.idempotency_key = Some(format!("{}@{}", self.url, self.width));
    }
}

// 2. A handler is an async fn of the context and the typed job.
async fn resize(ctx: JobContext, job: Resize) -> Result<String, JobError> {
    // A heartbeat carrying progress. Progress is advice: go on when the server is away
    // for a moment (Unavailable); stop only when the lease is lost.
    let sent = ctx.progress(50.0, "downloading").await;
    if let Err(HostError::LeaseLost | HostError::NotFound) = sent {
        return Err(JobError::retry("lease lost")); // not settled: the job is elsewhere
    }
    if job.width == 0 {
        return Err(JobError::dead("width 0")); // never retried: dead now
    }
    // Any std error with `?` is a retryable failure (the server's backoff applies).
    Ok(format!("{}?w={}", job.url, job.width))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new("http://127.0.0.1:7878")?;

    // 3. A worker, 16 jobs at once. It runs until Ctrl-C, and so does this program.
    let host = HttpJobHost::new(client.clone(), "resizer-1", Duration::from_secs(30));
    let worker = Worker::new(Arc::new(host))
        .concurrency(16)
        .register::<Resize, _>(resize);
    let running = tokio::spawn(worker.run(async {
        let _ = tokio::signal::ctrl_c().await;
    }));

    // 4. Enqueue and wait for the typed result. What comes back is named with
    //    errand-client's re-exports (`Job`, `JobId`, `JobState`).
    let job = client
        .enqueue(Resize {
            url: "https://x/y.png".into(),
            width: 64,
        })
        .await?;
    let id: JobId = job.id;
    let out: String = client.wait_result(id, Duration::from_secs(30)).await?;
    println!("{out}");
    assert_eq!(client.job(id, None).await?.state, JobState::Succeeded);

    // 5. Press Ctrl-C: the worker stops claiming, lets running handlers finish (30 s of
    //    grace), gives back what still runs, and returns what it did.
    println!("done; press Ctrl-C to stop the worker");
    let report = running.await??;
    println!("gave back {:?}", report.given_back);
    Ok(())
}
