//! Resource limits and another user for a run, applied by the errand binary itself.
//!
//! Limits must be set, and the user switched, in the run's own process between fork and
//! exec. Doing that in errand's process would take `unsafe` (`pre_exec`), so a run with
//! limits or a user starts the errand binary's hidden subcommand instead:
//!
//! ```text
//! errand __run-limited --cpu N --memory N --open-files N --processes N --user NAME -- program args...
//! ```
//!
//! which calls [`run_limited`]: setrlimit for each limit given, then (as root) the user's
//! groups, group and user, then `execvp` of the program. The process, its id, its group and
//! its environment stay the same; only the program changes. A run without limits or user
//! never pays for this second exec.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{geteuid, initgroups, setgid, setuid, User};

use crate::definition::ResourceLimits;

/// The hidden subcommand of the errand binary that runs [`run_limited`].
pub const SUBCOMMAND: &str = "__run-limited";

/// What `__run-limited` is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitedRun {
    /// The limits to set.
    pub limits: ResourceLimits,
    /// The user to become, when not the current one.
    pub user: Option<String>,
    /// The program (found on `PATH` when it has no `/`).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Why `__run-limited` could not start the program. Its text goes to the run's stderr,
/// so it is what the operator reads in the run's log.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// setrlimit refused a limit (above the hard limit errand itself runs under).
    #[error(
        "cannot set the {name} limit to {value}: {source} (errand's own hard limit is {hard})"
    )]
    SetLimit {
        /// The setting in job.toml.
        name: &'static str,
        /// The value asked for.
        value: u64,
        /// The hard limit errand runs under.
        hard: String,
        /// What setrlimit said.
        source: Errno,
    },
    /// No such user on this machine.
    #[error("user `{0}` does not exist on this machine")]
    UnknownUser(String),
    /// The user database could not be read.
    #[error("cannot look up user `{user}`: {source}")]
    LookUpUser {
        /// The user.
        user: String,
        /// What the lookup said.
        source: Errno,
    },
    /// Switching users takes root.
    #[error("running as user `{user}` needs errand to run as root (it runs as uid {uid})")]
    NotRoot {
        /// The user asked for.
        user: String,
        /// The uid errand runs as.
        uid: u32,
    },
    /// setgroups, setgid or setuid failed.
    #[error("cannot switch to user `{user}`: {source}")]
    SwitchUser {
        /// The user.
        user: String,
        /// What the system said.
        source: Errno,
    },
    /// The program or an argument holds a NUL byte.
    #[error("the program or an argument contains a NUL byte")]
    NulByte,
    /// The program is not there.
    #[error("{program}: no such program (or its #! interpreter is missing)")]
    ProgramNotFound {
        /// The program.
        program: String,
    },
    /// The program could not be executed.
    #[error("{program}: cannot execute: {source}")]
    Exec {
        /// The program.
        program: String,
        /// What execvp said.
        source: Errno,
    },
}

impl LimitError {
    /// The exit code `__run-limited` ends with, as a shell would: 127 when the program is
    /// not there, 126 when it could not be started for another reason.
    pub fn exit_code(&self) -> i32 {
        match self {
            LimitError::ProgramNotFound { .. } => 127,
            _ => 126,
        }
    }
}

/// The arguments of `__run-limited` before `--`, for these limits and user.
pub fn helper_args(limits: &ResourceLimits, user: Option<&str>) -> Vec<String> {
    let mut args = vec![SUBCOMMAND.to_string()];
    let flags = [
        ("--cpu", limits.cpu_seconds),
        ("--memory", limits.memory_bytes),
        ("--open-files", limits.open_files),
        ("--processes", limits.processes),
    ];
    for (flag, value) in flags {
        if let Some(value) = value {
            args.push(flag.to_string());
            args.push(value.to_string());
        }
    }
    if let Some(user) = user {
        args.push("--user".to_string());
        args.push(user.to_string());
    }
    args
}

/// Applies the limits, switches user, and replaces this process with the program. Returns
/// only on failure.
///
/// # Errors
/// [`LimitError`] saying which step failed.
pub fn run_limited(run: &LimitedRun) -> Result<Infallible, LimitError> {
    apply_limits(&run.limits)?;
    if let Some(user) = &run.user {
        switch_user(user)?;
    }
    let program = CString::new(run.program.as_bytes()).map_err(|_| LimitError::NulByte)?;
    let mut argv = Vec::with_capacity(run.args.len() + 1);
    argv.push(program.clone());
    for arg in &run.args {
        argv.push(CString::new(arg.as_bytes()).map_err(|_| LimitError::NulByte)?);
    }
    let shown = run.program.to_string_lossy().into_owned();
    Err(match nix::unistd::execvp(&program, &argv) {
        Err(Errno::ENOENT) => LimitError::ProgramNotFound { program: shown },
        Err(source) => LimitError::Exec {
            program: shown,
            source,
        },
        Ok(never) => match never {},
    })
}

fn apply_limits(limits: &ResourceLimits) -> Result<(), LimitError> {
    if let Some(cpu) = limits.cpu_seconds {
        // SIGXCPU at the soft limit, which a run may catch to stop cleanly; SIGKILL a
        // second later.
        set_limit("cpu", Resource::RLIMIT_CPU, cpu, cpu.saturating_add(1))?;
    }
    if let Some(memory) = limits.memory_bytes {
        set_limit("memory", Resource::RLIMIT_AS, memory, memory)?;
    }
    if let Some(files) = limits.open_files {
        set_limit("open_files", Resource::RLIMIT_NOFILE, files, files)?;
    }
    if let Some(processes) = limits.processes {
        set_limit("processes", Resource::RLIMIT_NPROC, processes, processes)?;
    }
    Ok(())
}

/// Sets `soft` and `hard`, keeping `hard` within the current hard limit when only the
/// soft one needed to go under it.
fn set_limit(
    name: &'static str,
    resource: Resource,
    soft: u64,
    hard: u64,
) -> Result<(), LimitError> {
    let current_hard = getrlimit(resource).map(|(_, h)| h).ok();
    let hard = match current_hard {
        Some(current) if !geteuid().is_root() && hard > current && soft <= current => current,
        _ => hard,
    };
    setrlimit(resource, soft, hard).map_err(|source| LimitError::SetLimit {
        name,
        value: soft,
        hard: match current_hard {
            Some(nix::sys::resource::RLIM_INFINITY) => "unlimited".to_string(),
            Some(h) => h.to_string(),
            None => "unknown".to_string(),
        },
        source,
    })
}

fn switch_user(name: &str) -> Result<(), LimitError> {
    let user = User::from_name(name)
        .map_err(|source| LimitError::LookUpUser {
            user: name.to_string(),
            source,
        })?
        .ok_or_else(|| LimitError::UnknownUser(name.to_string()))?;
    let euid = geteuid();
    if user.uid == euid {
        return Ok(());
    }
    if !euid.is_root() {
        return Err(LimitError::NotRoot {
            user: name.to_string(),
            uid: euid.as_raw(),
        });
    }
    let failed = |source| LimitError::SwitchUser {
        user: name.to_string(),
        source,
    };
    let c_name = CString::new(name).map_err(|_| LimitError::NulByte)?;
    initgroups(&c_name, user.gid).map_err(failed)?;
    setgid(user.gid).map_err(failed)?;
    setuid(user.uid).map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_args_name_only_what_is_set() {
        let limits = ResourceLimits {
            memory_bytes: Some(1000),
            open_files: Some(8),
            ..ResourceLimits::default()
        };
        assert_eq!(
            helper_args(&limits, Some("nobody")),
            vec![
                "__run-limited",
                "--memory",
                "1000",
                "--open-files",
                "8",
                "--user",
                "nobody"
            ]
        );
    }
}
