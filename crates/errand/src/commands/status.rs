//! `errand status`: one screen with the server, its store, nodes, queues and the schedules
//! due next; `--watch` redraws it.

use errand_client::Client;

use crate::cli::StatusArgs;

/// Runs `errand status`.
pub async fn run(_client: &Client, _args: StatusArgs, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("errand status is not built yet")
}
