//! The `errand` binary: the server and the CLI over its API.

mod cli;
mod cli_flows;
mod cli_ordering;
mod commands;
mod declared;
mod exit;
mod output;
mod serve;
mod settings;
mod store_open;

use clap::FromArgMatches;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// mimalloc: a server allocates and frees small buffers for every request; measured here it
/// cut the cost of an enqueue noticeably against the system allocator (docs/PERFORMANCE.md).
/// Built with the crate's `no_thp`: mimalloc no longer asks the kernel for transparent huge
/// pages (`madvise(MADV_HUGEPAGE)` on its arenas), which kept every region it touched
/// resident in 2 MiB pages. Where THP is `madvise` (as on the machine measured) or `never`,
/// a server holding 1,000,000 queued jobs measured 81 MiB instead of 124 MiB,
/// for no measurable CPU difference; where it is `always`, the kernel still decides.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs go to stderr. `human`: colour only when stderr is a terminal and `NO_COLOR` is
/// unset (or empty), so logs written to a file or a journal carry no escape codes. `json`:
/// one object per line with the event's fields at the top level, so a collector indexes
/// `status` or `route` without digging into a nested object.
fn init_tracing(format: cli::LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("ERRAND_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Human => {
            let no_color = matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        cli::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = match cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(err) => return exit::report_parse_error(err, cli::json_requested()),
    };
    let (json, debug) = (cli.json, cli.debug);
    if debug {
        exit::enable_backtraces();
    }
    let outcome = match cli.command {
        // Before any runtime thread exists: this process becomes the run's program.
        Command::RunLimited(args) => run_limited(args),
        _ => run(cli),
    };
    match outcome {
        Ok(()) => exit::Exit::Success.into(),
        Err(err) => exit::report(&err, json, debug),
    }
}

/// `__run-limited`: sets the limits, switches user and becomes the program; on failure says
/// why on stderr (the run's log) and exits as a shell would (127 not found, 126 otherwise).
fn run_limited(args: cli::RunLimitedArgs) -> ! {
    use errand_runner::process::limits::{run_limited, LimitedRun};
    let mut command = args.command.into_iter();
    let run = LimitedRun {
        limits: errand_runner::definition::ResourceLimits {
            cpu_seconds: args.cpu,
            memory_bytes: args.memory,
            open_files: args.open_files,
            processes: args.processes,
        },
        user: args.user,
        program: command.next().unwrap_or_default(),
        args: command.collect(),
    };
    match run_limited(&run) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("errand: {e}");
            std::process::exit(e.exit_code())
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = || {
        errand_client::Client::new(&cli.server)
            .map(|c| match &cli.token {
                Some(t) => c.with_token(t.clone()),
                None => c,
            })
            .map_err(|e| match e {
                errand_client::ClientError::BadUrl(_) => {
                    exit::usage(format!("{e} (given by --server or ERRAND_SERVER)"))
                }
                e => exit::usage(e.to_string()),
            })
    };
    match cli.command {
        Command::Serve(ref args) => {
            init_tracing(args.log_format);
            serve::run(settings::Settings::resolve(args)?).await
        }
        Command::Enqueue(args) if args.file.is_some() => {
            commands::enqueue_file::run(&client()?, *args, cli.json).await
        }
        Command::Enqueue(args) => commands::enqueue::run(&client()?, *args, cli.json).await,
        Command::Jobs(cmd) => commands::jobs::run(&client()?, cmd, cli.json).await,
        Command::Queues(cmd) => commands::queues::run(&client()?, cmd, cli.json).await,
        Command::Limits(cmd) => commands::ordering::limits(&client()?, cmd, cli.json).await,
        Command::Sessions(cmd) => commands::ordering::sessions(&client()?, cmd, cli.json).await,
        Command::Workers => commands::ordering::workers(&client()?, cli.json).await,
        Command::Dead(cmd) => commands::dead::run(&client()?, cmd, cli.json).await,
        Command::Schedules(cmd) => commands::schedules::run(&client()?, cmd, cli.json).await,
        Command::Workflows(cmd) => commands::workflows::run(&client()?, cmd, cli.json).await,
        Command::Batches(cmd) => commands::workflows::batches(&client()?, cmd, cli.json).await,
        Command::Subscriptions(cmd) => {
            commands::subscriptions::run(&client()?, cmd, cli.json).await
        }
        Command::Definitions(cmd) => commands::definitions::run(&client()?, cmd, cli.json).await,
        Command::Run(args) => commands::definitions::run_now(&client()?, args, cli.json).await,
        Command::Logs(args) => commands::definitions::logs(&client()?, args, cli.json).await,
        Command::Events(args) => commands::events::run(&client()?, args, cli.json).await,
        Command::Worker(args) => {
            init_tracing(args.log_format);
            commands::worker::run(&cli.server, cli.token.as_deref(), args).await
        }
        Command::Export(args) => commands::transfer::export(args, cli.json).await,
        Command::Import(args) => commands::transfer::import(args, cli.json).await,
        Command::Status(args) => commands::status::run(&client()?, args, cli.json).await,
        Command::Tokens(cmd) => commands::tokens::run(cmd, cli.json).await,
        Command::Audit(args) => commands::tokens::audit(&client()?, args, cli.json).await,
        Command::Completions(args) => commands::generate::completions(args),
        Command::Man(args) => commands::generate::man(args),
        Command::RunLimited(args) => run_limited(args),
    }
}
