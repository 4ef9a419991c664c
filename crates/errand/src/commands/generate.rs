//! `errand completions` and `errand man`: generated from the same clap definitions as the
//! command line itself, so they never disagree with it.

use crate::cli::{CompletionsArgs, ManArgs};

/// Prints the completion script for a shell on stdout.
pub fn completions(_args: CompletionsArgs) -> anyhow::Result<()> {
    anyhow::bail!("errand completions is not built yet")
}

/// Writes the man pages into a directory.
pub fn man(_args: ManArgs) -> anyhow::Result<()> {
    anyhow::bail!("errand man is not built yet")
}
