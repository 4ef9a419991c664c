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
    // An id given twice is one job: counted once, as the server counts it.
    let mut seen = std::collections::BTreeSet::new();
    let ids: Vec<JobId> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
    Ok(DeadSelectionRequest {
        queue: args.queue,
        ids,
        all: args.all,
    })
}

/// Runs a `dead` subcommand.
pub async fn run(client: &Client, cmd: DeadCommand, json: bool) -> anyhow::Result<()> {
    let (action, selection, count) = match cmd {
        DeadCommand::List { filter } => {
            return jobs::print_page(&client.dead(&jobs::query(&filter, None)).await?, json);
        }
        DeadCommand::Requeue(args) => {
            // One call however many jobs: a spinner (on a terminal) while the server works.
            let selection = selection(args, "requeue")?;
            let spinner = crate::commands::progress::spinner("requeueing dead jobs");
            let answer = client.dead_requeue(&selection).await;
            spinner.finish_and_clear();
            (Action::Requeue, selection, answer?)
        }
        DeadCommand::Purge(args) => {
            let selection = selection(args, "purge")?;
            let answer = client.dead_purge(&selection).await?;
            (Action::Purge, selection, answer)
        }
    };
    if json {
        return crate::output::json(&count);
    }
    let done = count.count;
    crate::outln!(
        "{} {done} dead job{}",
        action.done(),
        if done == 1 { "" } else { "s" }
    );
    if let Some(note) = left_alone(action, &selection, done) {
        crate::outln!("{note}");
    }
    Ok(())
}

/// What a bulk command did to the dead jobs it selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Requeue,
    Purge,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::Requeue => "requeued",
            Action::Purge => "purged",
        }
    }
}

/// For jobs named by id: how many were left alone and why they may have been (`None` when
/// none was, or none was named).
fn left_alone(action: Action, selection: &DeadSelectionRequest, done: u64) -> Option<String> {
    let named = selection.ids.len();
    let left = named.saturating_sub(usize::try_from(done).unwrap_or(usize::MAX));
    if left == 0 {
        return None;
    }
    let mut reasons = vec!["not dead".to_string(), "gone".to_string()];
    if let Some(queue) = &selection.queue {
        reasons.push(format!("not in queue {queue}"));
    }
    if action == Action::Requeue {
        reasons.push("a workflow's step (run those again with `errand workflows retry`)".into());
    }
    let last = reasons.pop().unwrap_or_default();
    let which = match (named, left) {
        (1, _) => "the job named was".to_string(),
        (_, 1) => format!("1 of the {named} named was"),
        _ => format!("{left} of the {named} named were"),
    };
    Some(format!(
        "{which} left alone: {}, or {last}",
        reasons.join(", ")
    ))
}
