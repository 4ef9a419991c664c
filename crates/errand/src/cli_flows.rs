//! The command line of workflows and batches.

use std::path::PathBuf;

use clap::Subcommand;

/// `errand workflows ...`.
#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Workflows, newest first.
    List {
        /// Only this state (running, failing, compensating, succeeded, failed,
        /// compensated, compensation_failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only workflows started from this template.
        #[arg(long)]
        template: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One workflow: its steps drawn as a graph, parents above children, each with its
    /// state, then the failed step, its error and the compensations.
    Show {
        /// Workflow id.
        id: String,
    },
    /// Start a workflow from a template or a JSON file (a `POST /v1/workflows` body).
    Start {
        /// The template to start.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        template: Option<String>,
        /// A JSON file with the body (`steps`, `input`, ...); `-` reads standard input.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The workflow's input (JSON).
        #[arg(long)]
        input: Option<String>,
        /// Idempotency key.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Cancel a running workflow (completed steps are compensated).
    Cancel {
        /// Workflow id.
        id: String,
    },
    /// Resume a failed, compensated or cancelled workflow from its failed steps.
    Retry {
        /// Workflow id.
        id: String,
    },
    /// Stored workflow templates.
    Templates,
}

/// `errand batches ...`.
#[derive(Debug, Subcommand)]
pub enum BatchesCommand {
    /// Batches, newest first.
    List,
    /// One batch with its counts.
    Show {
        /// Batch id.
        id: String,
    },
    /// Close an open batch: it completes when its last job ends.
    Close {
        /// Batch id.
        id: String,
    },
}
