//! `errand completions` and `errand man`: generated from the same clap definitions as the
//! command line itself, so they never disagree with it.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{CompletionsArgs, ManArgs};

/// Prints the completion script for a shell on stdout.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = without_hidden_commands(&crate::cli::command());
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    print(&script)
}

/// The command line less its hidden subcommands (`__run-limited`): clap_complete offers
/// every subcommand, hidden or not, so completions are made from this copy.
fn without_hidden_commands(full: &clap::Command) -> clap::Command {
    clap::Command::new("errand")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}

/// Writes to stdout; a reader that stopped early (`| head`) ends the command quietly.
fn print(bytes: &[u8]) -> anyhow::Result<()> {
    crate::output::write(format_args!("{}", String::from_utf8_lossy(bytes)))
}

/// Writes the man pages into a directory (created when missing): `errand.1` and one page
/// per visible subcommand at every depth (`errand-jobs-wait.1`); hidden commands get none.
pub fn man(args: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let mut cmd = crate::cli::command().disable_help_subcommand(true);
    // Building names each subcommand for its page (`errand-jobs-wait`).
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &args.out_dir, &mut written)?;
    let list: String = written
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    print(list.as_bytes())
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone());
    let path = page
        .generate_to(dir)
        .with_context(|| format!("writing {}", dir.join(page.get_filename()).display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
