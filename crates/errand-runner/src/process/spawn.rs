//! Starting a run's process: never through a shell, in a process group of its own, with
//! exactly the spec's environment plus the control channel's two variables, through the
//! limits helper only when limits or a user ask for it.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use nix::unistd::{geteuid, AccessFlags, Gid, Uid, User};
use tokio::net::unix::pipe;

use super::control::{ControlDir, CONTROL_ENV, SHUTDOWN_FILE_ENV};
use super::limits::helper_args;
use super::usage::ExitWatch;
use super::RunSpec;

/// Why a run could not be started. Each names the path or user at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The working directory does not exist.
    #[error("{}: the working directory does not exist", path.display())]
    WorkingDirMissing {
        /// The directory.
        path: PathBuf,
    },
    /// The working directory is something else than a directory, or cannot be entered.
    #[error("{}: cannot be the working directory: {reason}", path.display())]
    BadWorkingDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The program (or the interpreter its `#!` line names) is not there.
    #[error("{}: no such program (or its #! interpreter is missing)", path.display())]
    ProgramNotFound {
        /// The program.
        path: PathBuf,
    },
    /// The program is there but cannot be executed (no execute permission, not an
    /// executable format, a directory).
    #[error("{}: not executable: {source}", path.display())]
    NotExecutable {
        /// The program.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Any other failure to start it.
    #[error("{}: could not be started: {source}", path.display())]
    Spawn {
        /// The program.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The run's private directory or control FIFO could not be made.
    #[error("the run's control channel could not be made: {0}")]
    ControlChannel(#[source] io::Error),
    /// The process was started but could not be watched; it was killed.
    #[error("the run's process could not be watched: {0}")]
    Watch(#[source] io::Error),
    /// Limits or a user were asked for, but no limits helper was given.
    #[error(
        "resource limits and `user` need the errand binary as limits helper, and none was given"
    )]
    NoLimitsHelper,
    /// The user does not exist.
    #[error("user `{0}` does not exist on this machine")]
    UnknownUser(String),
    /// Running as another user takes root.
    #[error("running as user `{user}` needs errand to run as root (it runs as uid {uid})")]
    UserNeedsRoot {
        /// The user asked for.
        user: String,
        /// The uid errand runs as.
        uid: u32,
    },
}

/// A process just started, with everything the supervisor needs to see it through.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) pid: u32,
    pub(crate) child: Child,
    pub(crate) started_at: Instant,
    pub(crate) control: ControlDir,
    pub(crate) control_reader: pipe::Receiver,
    pub(crate) exit: ExitWatch,
    pub(crate) stdin: Option<tokio::process::ChildStdin>,
    pub(crate) stdout: tokio::process::ChildStdout,
    pub(crate) stderr: tokio::process::ChildStderr,
}

/// Starts the spec's process. Must be called within a tokio runtime.
pub(crate) fn spawn(spec: &RunSpec) -> Result<Started, SpawnError> {
    check_working_dir(&spec.working_dir)?;
    let switch_to = match &spec.user {
        Some(name) => target_user(name)?,
        None => None,
    };
    let control = ControlDir::create(switch_to).map_err(SpawnError::ControlChannel)?;
    let control_reader = control.open_reader().map_err(SpawnError::ControlChannel)?;

    let limited = !spec.limits.is_empty() || spec.user.is_some();
    let mut command = if limited {
        let helper = spec
            .limits_helper
            .as_ref()
            .ok_or(SpawnError::NoLimitsHelper)?;
        check_program(&spec.program, &spec.working_dir)?;
        let mut command = Command::new(helper);
        command
            .args(helper_args(&spec.limits, spec.user.as_deref()))
            .arg("--")
            .arg(&spec.program);
        command
    } else {
        Command::new(&spec.program)
    };
    command
        .args(&spec.args)
        .current_dir(&spec.working_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(CONTROL_ENV, control.fifo())
        .env(SHUTDOWN_FILE_ENV, control.shutdown_file())
        .envs(
            // A WebJobs script looks for its shutdown file under the WebJobs name.
            spec.env
                .iter()
                .any(|(k, _)| k == "WEBJOBS_NAME")
                .then(|| ("WEBJOBS_SHUTDOWN_FILE", control.shutdown_file())),
        )
        .process_group(0)
        .stdin(if spec.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started_at = Instant::now();
    let started_program = command.get_program().to_owned();
    let mut child = command
        .spawn()
        .map_err(|e| spawn_failed(PathBuf::from(started_program), e))?;
    let pid = child.id();

    let piped = take_pipes(&mut child).and_then(|pipes| Ok((pipes, ExitWatch::new(pid)?)));
    let ((stdin, stdout, stderr), exit) = match piped {
        Ok(ok) => ok,
        Err(e) => {
            // Started but not watchable: it must not run unsupervised.
            super::stop::kill_group(nix::unistd::Pid::from_raw(pid as i32));
            let _ = child.wait();
            return Err(SpawnError::Watch(e));
        }
    };
    Ok(Started {
        pid,
        child,
        started_at,
        control,
        control_reader,
        exit,
        stdin,
        stdout,
        stderr,
    })
}

type Pipes = (
    Option<tokio::process::ChildStdin>,
    tokio::process::ChildStdout,
    tokio::process::ChildStderr,
);

/// The child's pipes, registered with tokio.
fn take_pipes(child: &mut Child) -> io::Result<Pipes> {
    let missing = || io::Error::other("a pipe of the child is missing");
    let stdin = child
        .stdin
        .take()
        .map(tokio::process::ChildStdin::from_std)
        .transpose()?;
    let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().ok_or_else(missing)?)?;
    let stderr = tokio::process::ChildStderr::from_std(child.stderr.take().ok_or_else(missing)?)?;
    Ok((stdin, stdout, stderr))
}

fn check_working_dir(path: &Path) -> Result<(), SpawnError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SpawnError::BadWorkingDir {
            path: path.to_path_buf(),
            reason: "not a directory".to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpawnError::WorkingDirMissing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(SpawnError::BadWorkingDir {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Through the helper, a missing program would only show as exit code 127: look first, so
/// that it is the same typed error as without the helper. A bare name is left to `PATH`.
fn check_program(program: &Path, working_dir: &Path) -> Result<(), SpawnError> {
    if program.components().count() < 2 && !program.is_absolute() {
        return Ok(());
    }
    let path = working_dir.join(program);
    match nix::unistd::access(&path, AccessFlags::X_OK) {
        Ok(()) if path.is_dir() => Err(SpawnError::NotExecutable {
            path: program.to_path_buf(),
            source: io::Error::from(io::ErrorKind::IsADirectory),
        }),
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => {
            Err(SpawnError::ProgramNotFound {
                path: program.to_path_buf(),
            })
        }
        Err(e) => Err(SpawnError::NotExecutable {
            path: program.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn spawn_failed(path: PathBuf, e: io::Error) -> SpawnError {
    use nix::errno::Errno;
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) | Some(Errno::ENOTDIR) => SpawnError::ProgramNotFound { path },
        Some(Errno::EACCES) | Some(Errno::ENOEXEC) | Some(Errno::EISDIR) | Some(Errno::EPERM) => {
            SpawnError::NotExecutable { path, source: e }
        }
        _ => SpawnError::Spawn { path, source: e },
    }
}

/// The uid and gid to hand the run's control directory to, when the run will run as
/// another user: `None` when it runs as errand's own user.
fn target_user(name: &str) -> Result<Option<(Uid, Gid)>, SpawnError> {
    let user = User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| SpawnError::UnknownUser(name.to_string()))?;
    let euid = geteuid();
    if user.uid == euid {
        return Ok(None);
    }
    if !euid.is_root() {
        return Err(SpawnError::UserNeedsRoot {
            user: name.to_string(),
            uid: euid.as_raw(),
        });
    }
    Ok(Some((user.uid, user.gid)))
}
