//! `errand queues ...`.

use errand_client::Client;
use errand_core::QueueInfo;

use crate::cli::QueuesCommand;
use crate::output;

fn print(queues: &[QueueInfo], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&queues);
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let c = &q.counts;
            vec![
                q.name.to_string(),
                if q.paused {
                    "paused".into()
                } else {
                    "active".into()
                },
                c.available.to_string(),
                c.scheduled.to_string(),
                c.running.to_string(),
                c.succeeded.to_string(),
                c.dead.to_string(),
                c.cancelled.to_string(),
                q.oldest_available_age_ms
                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &[
            "QUEUE",
            "STATUS",
            "AVAILABLE",
            "SCHEDULED",
            "RUNNING",
            "SUCCEEDED",
            "DEAD",
            "CANCELLED",
            "OLDEST",
        ],
        &rows,
    )?;
    Ok(())
}

/// Runs a `queues` subcommand.
pub async fn run(client: &Client, cmd: QueuesCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        QueuesCommand::List => print(&client.queues().await?.queues, json),
        QueuesCommand::Pause { queue } => print(&[client.set_paused(&queue, true).await?], json),
        QueuesCommand::Resume { queue } => print(&[client.set_paused(&queue, false).await?], json),
        QueuesCommand::Set(args) => crate::commands::ordering::queue_set(client, args, json).await,
    }
}
