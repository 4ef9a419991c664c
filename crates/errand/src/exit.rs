//! How the CLI ends: one table of exit codes, and how an error is printed (its message and
//! causes, never a backtrace unless `--debug`; a JSON object on stderr with `--json`).
//!
//! The table is documented in `docs/cli.md`; a script can rely on it.

use std::process::ExitCode;

use errand_core::{JobId, JobState};

/// Why the CLI exits: each has its own code, the same for every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for a command that waits, the job succeeded.
    Success = 0,
    /// The server refused the request, or something else failed (the message says what).
    Failure = 1,
    /// Bad flags or arguments: nothing was sent (clap uses the same code).
    Usage = 2,
    /// No answer from the server at `--server`.
    Unreachable = 3,
    /// The job waited for ended dead (failed, out of attempts).
    JobDead = 4,
    /// The job waited for was cancelled.
    JobCancelled = 5,
    /// The wait's `--timeout` passed before the job ended.
    TimedOut = 6,
    /// `import` got to the end of its file, but some of it did not arrive as the file has
    /// it (the lines before say what).
    Incomplete = 7,
}

impl Exit {
    /// The stable name scripts see in the `--json` error object.
    pub fn code_name(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Failure => "failure",
            Exit::Usage => "usage",
            Exit::Unreachable => "unreachable",
            Exit::JobDead => "job_dead",
            Exit::JobCancelled => "job_cancelled",
            Exit::TimedOut => "timed_out",
            Exit::Incomplete => "incomplete",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// A job waited for ended in a state other than succeeded (`dead` or `cancelled`).
#[derive(Debug, thiserror::Error)]
#[error("job {id} ended {state}")]
pub struct JobEnded {
    /// The job.
    pub id: JobId,
    /// Its final state.
    pub state: JobState,
}

/// An import that got to the end of its file, with things it did not bring as the file
/// has them (said before it ends).
#[derive(Debug, thiserror::Error)]
#[error("the import did not bring everything as the file has it: {problems} problem{} (see above)", if *.problems == 1 { "" } else { "s" })]
pub struct Incomplete {
    /// How many kinds of problem were said.
    pub problems: usize,
}

/// A wait's timeout passed with the job still not ended.
#[derive(Debug, thiserror::Error)]
#[error("job {id} is still {state} after {waited}{because}")]
pub struct WaitTimedOut {
    /// The job.
    pub id: JobId,
    /// Its state at the timeout.
    pub state: JobState,
    /// The timeout, as given.
    pub waited: String,
    /// Why it has not started or ended, when known (with a leading separator), else empty.
    pub because: String,
}

/// Flags or arguments that make no sense together, found after clap parsed them.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A duration given on the command line (`--timeout`, `--watch`, `--every`, ...): a number
/// with a unit (`250ms`, `30s`, `5m`, `1h`). A bare number is refused (exit 2) rather than
/// guessed at: the API reads one as milliseconds, a person often means seconds.
pub fn duration(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    let bare = text.trim();
    if bare.parse::<u64>().is_ok() {
        return Err(usage(format!(
            "--{flag} {text}: give the unit, e.g. {bare}s, {bare}ms or {bare}m"
        )));
    }
    errand_core::duration::parse(flag, text).map_err(|e| usage(format!("--{e}")))
}

/// A [`UsageError`] (exit 2) saying `message`: a flag's value that clap accepted as text but
/// the command cannot use (a bad id, duration, JSON payload, ...).
pub fn usage(message: impl std::fmt::Display) -> anyhow::Error {
    UsageError(message.to_string()).into()
}

/// How a command that waited for `job` ends: `Ok` when it succeeded, else [`JobEnded`]
/// (exit 4 dead, 5 cancelled). The same for `jobs wait`, `enqueue --wait` and `run --wait`.
pub fn job_outcome(job: &errand_core::Job) -> anyhow::Result<()> {
    if job.state == JobState::Succeeded {
        return Ok(());
    }
    Err(JobEnded {
        id: job.id,
        state: job.state,
    }
    .into())
}

/// What to try when the server does not answer (printed after the error).
const UNREACHABLE_HINT: &str =
    "is `errand serve` running there? (--server or ERRAND_SERVER picks another server)";

/// What to try when the server wants a token (401) the command did not carry or that it
/// refused.
const TOKEN_HINT: &str = "give errand a token with --token or ERRAND_TOKEN";

/// What to try when the server's certificate is refused.
const CERTIFICATE_HINT: &str = "errand's client trusts public CAs and the PEM file ERRAND_CA_CERT names: set it to the CA (or self-signed certificate) of the server's certificate, and call the server by a name the certificate holds";

/// Which exit an error means: a job's end, a timeout, a usage mistake, an unreachable
/// server, else a failure.
pub fn classify(err: &anyhow::Error) -> Exit {
    // A type given as `.context(...)` is found by anyhow's own downcast, not in the chain.
    if let Some(ended) = err.downcast_ref::<JobEnded>() {
        return ended_exit(ended);
    }
    if err.downcast_ref::<WaitTimedOut>().is_some() {
        return Exit::TimedOut;
    }
    if err.downcast_ref::<UsageError>().is_some() {
        return Exit::Usage;
    }
    if err.downcast_ref::<Incomplete>().is_some() {
        return Exit::Incomplete;
    }
    for cause in err.chain() {
        if let Some(ended) = cause.downcast_ref::<JobEnded>() {
            return ended_exit(ended);
        }
        if cause.downcast_ref::<WaitTimedOut>().is_some() {
            return Exit::TimedOut;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        if let Some(client) = cause.downcast_ref::<errand_client::ClientError>() {
            match client {
                errand_client::ClientError::Transport { .. } => return Exit::Unreachable,
                errand_client::ClientError::BadUrl(_)
                | errand_client::ClientError::CaCert { .. } => return Exit::Usage,
                _ => {}
            }
        }
    }
    Exit::Failure
}

fn ended_exit(ended: &JobEnded) -> Exit {
    match ended.state {
        JobState::Cancelled => Exit::JobCancelled,
        _ => Exit::JobDead,
    }
}

/// Prints `err` on stderr as people read it (message, then each cause, then a hint when the
/// server did not answer), or as one JSON object with `json`; with `debug` the backtrace
/// follows. Returns the exit code.
pub fn report(err: &anyhow::Error, json: bool, debug: bool) -> ExitCode {
    // The reader of stdout went away (`| head -1`): what it read is all it wanted.
    if err.chain().any(|c| c.is::<crate::output::StdoutClosed>()) {
        return Exit::Success.into();
    }
    let exit = classify(err);
    let unauthorized = err
        .chain()
        .filter_map(|c| c.downcast_ref::<errand_client::ClientError>())
        .any(|c| c.status() == Some(401));
    let hint = (exit == Exit::Unreachable)
        .then(|| {
            // The server answered, but its certificate was refused: it is running.
            let text = err.chain().map(ToString::to_string).collect::<String>();
            if text.contains("certificate") || text.contains("UnknownIssuer") {
                CERTIFICATE_HINT
            } else {
                UNREACHABLE_HINT
            }
        })
        .or(unauthorized.then_some(TOKEN_HINT));
    if json {
        let causes: Vec<String> = err.chain().skip(1).map(|c| c.to_string()).collect();
        let mut body = serde_json::json!({
            "code": exit.code_name(),
            "message": err.to_string(),
            "causes": causes,
            "exit_code": exit as u8,
        });
        if let Some(client) = err
            .chain()
            .find_map(|c| c.downcast_ref::<errand_client::ClientError>())
        {
            if let (Some(status), Some(code)) = (client.status(), client.code()) {
                body["status"] = status.into();
                body["server_code"] = code.into();
            }
        }
        if let Some(hint) = hint {
            body["hint"] = hint.into();
        }
        eprintln!("{}", serde_json::json!({ "error": body }));
    } else {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        if let Some(hint) = hint {
            eprintln!("  hint: {hint}");
        }
    }
    if debug {
        print_backtrace(err);
    }
    exit.into()
}

/// With `--debug`: where the error was made. [`enable_backtraces`] ran first, so anyhow
/// captured one whatever `RUST_BACKTRACE` says.
fn print_backtrace(err: &anyhow::Error) {
    use std::backtrace::BacktraceStatus;
    let backtrace = err.backtrace();
    match backtrace.status() {
        BacktraceStatus::Captured => eprintln!("stack backtrace:\n{backtrace}"),
        _ => eprintln!("(no backtrace: this platform or build cannot capture one)"),
    }
}

/// `--debug`: makes anyhow capture a backtrace for every error from here on. Called in
/// `main` after parsing the flags and before any thread or error exists (anyhow reads
/// `RUST_LIB_BACKTRACE` once, at the first capture). Without `--debug` nothing is printed
/// even when `RUST_BACKTRACE=1` is set: a backtrace is for a bug report, not for a mistake.
pub fn enable_backtraces() {
    // Sound: `main` calls this before the runtime starts, while the process has one thread.
    std::env::set_var("RUST_LIB_BACKTRACE", "1");
}

/// The command given without its subcommand (its path, as `errand jobs`, from clap's
/// context of the error or its usage line), and that command as clap knows it.
fn missing_command(err: &clap::Error) -> (String, clap::Command) {
    use clap::error::{ContextKind, ContextValue};
    let path = match err.get(ContextKind::InvalidSubcommand) {
        Some(ContextValue::String(c)) => c.clone(),
        _ => {
            let text = err.render().to_string();
            text.lines()
                .find_map(|l| l.trim().strip_prefix("Usage: "))
                .map(|usage| {
                    usage
                        .split_whitespace()
                        .take_while(|w| !w.starts_with(['[', '<', '-']))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "errand".to_string())
        }
    };
    let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
    for name in path.split_whitespace().skip(1) {
        match command.find_subcommand(name) {
            Some(sub) => command = sub.clone(),
            None => break,
        }
    }
    (path, command)
}

/// What a command given without its subcommand says in `--json`: which command, and its
/// visible subcommands.
fn missing_subcommand(err: &clap::Error) -> String {
    let (path, command) = missing_command(err);
    let names: Vec<&str> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(clap::Command::get_name)
        .collect();
    if names.is_empty() {
        return format!("`{path}` needs a subcommand (`{path} --help` lists them)");
    }
    format!(
        "`{path}` needs a subcommand: {} (`{path} --help` says what each does)",
        names.join(", ")
    )
}

/// Reports a command-line parse error (clap's): with `--json` among the arguments as the
/// same JSON object as other errors (code `usage`, exit 2); otherwise, and for `--help` and
/// `--version`, as clap prints it. A missing subcommand prints the command's help however
/// the command was given (clap prints it only when nothing else was, and counts an
/// ERRAND_* variable as given).
pub fn report_parse_error(err: clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    let shows_text = matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    // clap's own text for a missing subcommand lists hidden ones (`__run-limited`).
    let missing = matches!(
        err.kind(),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !json && err.kind() == ErrorKind::MissingSubcommand {
        // The help clap prints for `<command> --help`, with its full usage line and the
        // global flags.
        let (path, _) = missing_command(&err);
        let mut args: Vec<&str> = path.split_whitespace().collect();
        args.push("--help");
        let command = <crate::cli::Cli as clap::CommandFactory>::command();
        match command.try_get_matches_from(args) {
            Err(help) => eprint!("{}", help.render()),
            Ok(_) => eprintln!("error: {}", missing_subcommand(&err)),
        }
        return Exit::Usage.into();
    }
    if !json || shows_text {
        // clap prints to stdout or stderr as fits the kind; its exit code is 0 or 2.
        let code = err.exit_code();
        let _ = err.print();
        return ExitCode::from(u8::try_from(code).unwrap_or(Exit::Usage as u8));
    }
    if missing {
        let body = serde_json::json!({
            "code": Exit::Usage.code_name(),
            "message": missing_subcommand(&err),
            "causes": [],
            "exit_code": Exit::Usage as u8,
        });
        eprintln!("{}", serde_json::json!({ "error": body }));
        return Exit::Usage.into();
    }
    let text = err.render().to_string();
    let message = text
        .trim()
        .trim_start_matches("error: ")
        .lines()
        .take_while(|l| !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = serde_json::json!({
        "code": Exit::Usage.code_name(),
        "message": message.trim(),
        "causes": [],
        "exit_code": Exit::Usage as u8,
    });
    eprintln!("{}", serde_json::json!({ "error": body }));
    Exit::Usage.into()
}
