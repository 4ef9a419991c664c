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
    let (verb, named, count) = match cmd {
        DeadCommand::List { filter } => {
            return jobs::print_page(&client.dead(&jobs::query(&filter, None)).await?, json);
        }
        DeadCommand::Requeue(args) => {
            // One call however many jobs: a spinner (on a terminal) while the server works.
            let selection = selection(args, "requeue")?;
            let spinner = crate::commands::progress::spinner("requeueing dead jobs");
            let answer = client.dead_requeue(&selection).await;
            spinner.finish_and_clear();
            ("requeued", selection.ids.len(), answer?)
        }
        DeadCommand::Purge(args) => {
            let selection = selection(args, "purge")?;
            let answer = client.dead_purge(&selection).await?;
            ("purged", selection.ids.len(), answer)
        }
    };
    if json {
        crate::output::json(&count)
    } else {
        crate::outln!("{verb} {} dead jobs", count.count);
        // Jobs named by id that were left alone: say why they may have been.
        let left = named.saturating_sub(usize::try_from(count.count).unwrap_or(usize::MAX));
        if left > 0 && verb == "requeued" {
            crate::outln!(
                "{left} of the {named} named were left alone: not dead, gone, or a workflow's step (run those again with `errand workflows retry`)"
            );
        } else if left > 0 {
            crate::outln!("{left} of the {named} named were left alone: not dead, or gone");
        }
        Ok(())
    }
}
