//! `errand dead ...`.

use errand_api::DeadSelectionRequest;
use errand_client::Client;
use errand_core::JobId;

use crate::cli::{DeadCommand, DeadSelectArgs};
use crate::commands::jobs;
use crate::exit::usage;

/// The dead jobs the flags select; a usage error when they select none (the server would
/// refuse an empty selection, in terms of its JSON body).
fn selection(args: DeadSelectArgs, verb: &str) -> anyhow::Result<DeadSelectionRequest> {
    if args.queue.is_none() && args.ids.is_empty() && !args.all {
        return Err(usage(format!(
            "which dead jobs? give --queue QUEUE, --id ID (repeatable) or --all \
             (e.g. `errand dead {verb} --all`)"
        )));
    }
    let ids = args
        .ids
        .iter()
        .map(|raw| {
            raw.parse::<JobId>()
                .map_err(|e| usage(format!("--id: {}", e.message)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(DeadSelectionRequest {
        queue: args.queue,
        ids,
        all: args.all,
    })
}

/// Runs a `dead` subcommand.
pub async fn run(client: &Client, cmd: DeadCommand, json: bool) -> anyhow::Result<()> {
    let (verb, count) = match cmd {
        DeadCommand::List { filter } => {
            return jobs::print_page(&client.dead(&jobs::query(&filter, None)).await?, json);
        }
        DeadCommand::Requeue(args) => {
            // One call however many jobs: a spinner (on a terminal) while the server works.
            let selection = selection(args, "requeue")?;
            let spinner = crate::commands::progress::spinner("requeueing dead jobs");
            let answer = client.dead_requeue(&selection).await;
            spinner.finish_and_clear();
            ("requeued", answer?)
        }
        DeadCommand::Purge(args) => (
            "purged",
            client.dead_purge(&selection(args, "purge")?).await?,
        ),
    };
    if json {
        crate::output::json(&count)
    } else {
        crate::outln!("{verb} {} dead jobs", count.count);
        Ok(())
    }
}
