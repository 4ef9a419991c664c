//! Which program a definition starts: `command` from job.toml, or else the first entry
//! file found in its folder, with its interpreter found on `PATH` when the folder loads
//! (so a missing interpreter is a load problem, not a failure of every run).

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Entry;

/// Entry files in the order they are looked for, each with the interpreter that runs it
/// and the arguments before the script (`java -jar run.jar`).
pub(crate) const ENTRY_FILES: &[(&str, Option<&str>, &[&str])] = &[
    ("run", None, &[]),
    ("run.sh", Some("bash"), &[]),
    ("run.py", Some("python3"), &[]),
    ("run.js", Some("node"), &[]),
    ("run.php", Some("php"), &[]),
    ("run.jar", Some("java"), &["-jar"]),
];

/// Extensions WebJobs folders may use for an entry file of any name, when none is named
/// `run*`, with the interpreter that runs each (WebJobs' Linux set).
const WEBJOBS_EXTENSIONS: &[(&str, &str, &[&str])] = &[
    ("sh", "bash", &[]),
    ("py", "python3", &[]),
    ("js", "node", &[]),
    ("php", "php", &[]),
    ("jar", "java", &["-jar"]),
];

/// WebJobs entry files errand does not run: they need Windows.
const WINDOWS_EXTENSIONS: &[&str] = &["cmd", "bat", "exe", "ps1", "fsx"];

/// Why no entry point could be settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryProblem {
    /// The file at fault: the script, or the folder when none was found.
    pub file: Option<PathBuf>,
    /// `command` when the problem is in it.
    pub key: Option<String>,
    pub reason: String,
}

/// Where programs named without a slash are looked for.
#[derive(Debug, Clone)]
pub(crate) struct SearchPath(pub Option<std::ffi::OsString>);

impl SearchPath {
    /// The absolute path of `program` found on this search path.
    fn find(&self, program: &str, cwd: &Path) -> Option<PathBuf> {
        which::which_in(program, self.0.as_ref(), cwd).ok()
    }

    fn describe(&self) -> String {
        match &self.0 {
            Some(p) if !p.is_empty() => format!("PATH ({})", p.to_string_lossy()),
            _ => "PATH (empty)".to_string(),
        }
    }
}

/// The entry point given as `command = ["prog", "arg", ...]`: `prog` is found on `PATH`
/// when it has no slash, and read from the folder when it has one (or taken as is when
/// absolute). `args` come after the command's own arguments.
pub(crate) fn from_command(
    dir: &Path,
    command: &[String],
    args: &[String],
    path: &SearchPath,
) -> Result<Entry, EntryProblem> {
    let problem = |reason: String| EntryProblem {
        file: None,
        key: Some("command".into()),
        reason,
    };
    let Some((program, rest)) = command.split_first() else {
        return Err(problem(
            "is empty: give the program and its arguments, e.g. [\"python3\", \"main.py\"]".into(),
        ));
    };
    if program.is_empty() || program.contains('\0') {
        return Err(problem("the program name is empty or holds a NUL".into()));
    }
    let program = if program.contains('/') {
        let file = dir.join(program);
        if !file.is_file() {
            return Err(problem(format!("`{}` does not exist", file.display())));
        }
        if !is_executable(&file) {
            return Err(problem(format!(
                "`{}` is not executable (chmod +x it)",
                file.display()
            )));
        }
        file
    } else {
        path.find(program, dir).ok_or_else(|| {
            problem(format!(
                "`{program}` was not found on {}: install it or give its full path",
                path.describe()
            ))
        })?
    };
    Ok(Entry {
        program,
        args: rest.iter().chain(args).cloned().collect(),
    })
}

/// The first entry file of the folder, in [`ENTRY_FILES`] order; for a WebJobs folder
/// with none of those, the first file (by name) with a WebJobs script extension.
pub(crate) fn detect(
    dir: &Path,
    webjobs: bool,
    args: &[String],
    path: &SearchPath,
) -> Result<Entry, EntryProblem> {
    for (file_name, interpreter, before) in ENTRY_FILES {
        let file = dir.join(file_name);
        if !file.is_file() {
            continue;
        }
        return match interpreter {
            None if is_executable(&file) => Ok(Entry {
                program: file,
                args: args.to_vec(),
            }),
            None => Err(EntryProblem {
                file: Some(file),
                key: None,
                reason: "`run` is not executable: chmod +x it, or rename it to say how it runs (run.sh, run.py, ...)".into(),
            }),
            Some(interpreter) => interpreted(dir, file, interpreter, before, args, path),
        };
    }
    if webjobs {
        if let Some(found) = first_webjobs_script(dir) {
            return found.and_then(|(file, interpreter, before)| {
                interpreted(dir, file, interpreter, before, args, path)
            });
        }
    }
    let names: Vec<&str> = ENTRY_FILES.iter().map(|(n, _, _)| *n).collect();
    Err(EntryProblem {
        file: None,
        key: None,
        reason: format!(
            "no entry point: add one of {} or set `command` in job.toml",
            names.join(", ")
        ),
    })
}

type WebJobsScript = (PathBuf, &'static str, &'static [&'static str]);

/// The first file by name with a WebJobs script extension; a problem when the folder only
/// holds Windows entry files.
fn first_webjobs_script(dir: &Path) -> Option<Result<WebJobsScript, EntryProblem>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let extension = |p: &Path| {
        p.extension()
            .and_then(OsStr::to_str)
            .map(str::to_ascii_lowercase)
    };
    for file in &files {
        if let Some(ext) = extension(file) {
            if let Some((_, interpreter, before)) =
                WEBJOBS_EXTENSIONS.iter().find(|(e, _, _)| *e == ext)
            {
                return Some(Ok((file.clone(), interpreter, before)));
            }
        }
    }
    let windows = files
        .iter()
        .find(|f| extension(f).is_some_and(|ext| WINDOWS_EXTENSIONS.contains(&ext.as_str())))?;
    Some(Err(EntryProblem {
        file: Some(windows.clone()),
        key: None,
        reason: "Windows entry files (.cmd, .bat, .exe, .ps1, .fsx) are not run: add run.sh (or another run.* file) or a job.toml with `command`".into(),
    }))
}

fn interpreted(
    dir: &Path,
    file: PathBuf,
    interpreter: &str,
    before: &[&str],
    args: &[String],
    path: &SearchPath,
) -> Result<Entry, EntryProblem> {
    let Some(program) = path.find(interpreter, dir) else {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Err(EntryProblem {
            file: Some(file),
            key: None,
            reason: format!(
                "{name} needs `{interpreter}`, which was not found on {}: install it, or set `command` in job.toml",
                path.describe()
            ),
        });
    };
    let script = file.to_string_lossy().into_owned();
    Ok(Entry {
        program,
        args: before
            .iter()
            .map(|s| s.to_string())
            .chain(std::iter::once(script))
            .chain(args.iter().cloned())
            .collect(),
    })
}

/// Whether a regular file has an execute bit.
pub(crate) fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
