//! Loading one folder of the jobs directory: which files it has, which one holds its
//! settings, and the definition they make (or every problem found in them).

use std::path::Path;

use errand_core::names::MAX_QUEUE_NAME_LEN;
use errand_core::QueueName;

use super::build::{build, Folder};
use super::entry::SearchPath;
use super::job_toml::{self, JobToml, ParseFailure};
use super::{webjobs, Definition, DefinitionProblem, DefinitionSource, Mode, SCHEDULE_PREFIX};

/// How a folder holds its definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FolderLayout {
    /// `<jobs-dir>/<name>/job.toml`.
    JobToml,
    /// `<jobs-dir>/triggered/<name>/` or `<jobs-dir>/continuous/<name>/`.
    WebJobs(Mode),
}

/// What loading reads from errand's own process: where interpreters are found.
#[derive(Debug, Clone)]
pub(crate) struct LoadEnv {
    pub search_path: SearchPath,
}

impl LoadEnv {
    /// Interpreters are found on errand's own `PATH`.
    pub(crate) fn from_process() -> Self {
        Self {
            search_path: SearchPath(std::env::var_os("PATH")),
        }
    }

    /// Interpreters are found on this `PATH` (tests use one without `python3`).
    #[cfg(test)]
    pub(crate) fn with_path(path: impl Into<std::ffi::OsString>) -> Self {
        Self {
            search_path: SearchPath(Some(path.into())),
        }
    }
}

/// The longest definition name: its schedule, `definition:<name>`, must be a legal
/// schedule name.
pub(crate) const MAX_NAME_LEN: usize = MAX_QUEUE_NAME_LEN - SCHEDULE_PREFIX.len();

/// Loads the definition in `dir`, named `name`.
pub(crate) fn load_folder(
    name: &str,
    dir: &Path,
    layout: FolderLayout,
    env: &LoadEnv,
) -> Result<Definition, Vec<DefinitionProblem>> {
    let problem = |file: &Path, key: Option<String>, reason: String| {
        vec![DefinitionProblem {
            name: name.to_string(),
            file: file.to_path_buf(),
            key,
            reason,
        }]
    };
    if name.chars().count() > MAX_NAME_LEN || name.contains(':') || QueueName::parse(name).is_err()
    {
        return Err(problem(
            dir,
            None,
            format!("the folder name is not a definition name: use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 _ - ."),
        ));
    }
    let toml_path = dir.join("job.toml");
    let settings_path = dir.join("settings.job");
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| problem(path, None, format!("cannot be read: {e}")))
    };
    let parse_failure = |path: &Path, f: ParseFailure| problem(path, f.key, f.reason);

    let (raw, source, file, settings_job): (JobToml, _, _, _) = match layout {
        FolderLayout::JobToml => {
            if !toml_path.is_file() {
                return Err(problem(
                    dir,
                    None,
                    "no job.toml: a definition folder needs one (WebJobs folders go under triggered/ or continuous/)".into(),
                ));
            }
            let raw =
                job_toml::parse(&read(&toml_path)?).map_err(|f| parse_failure(&toml_path, f))?;
            let source = DefinitionSource::JobToml {
                path: toml_path.clone(),
            };
            (raw, source, toml_path, false)
        }
        FolderLayout::WebJobs(mode) if toml_path.is_file() => {
            if settings_path.is_file() {
                return Err(problem(
                    &settings_path,
                    None,
                    "the folder has both job.toml and settings.job: move the settings into job.toml (is_singleton is `singleton`) and delete settings.job".into(),
                ));
            }
            let mut raw =
                job_toml::parse(&read(&toml_path)?).map_err(|f| parse_failure(&toml_path, f))?;
            match raw.mode {
                Some(m) if m != mode => {
                    return Err(problem(
                        &toml_path,
                        Some("mode".into()),
                        format!(
                            "the folder is under {}/: leave `mode` out or make it match",
                            mode_dir(mode)
                        ),
                    ));
                }
                _ => raw.mode = Some(mode),
            }
            let source = DefinitionSource::JobToml {
                path: toml_path.clone(),
            };
            (raw, source, toml_path, false)
        }
        FolderLayout::WebJobs(mode) if settings_path.is_file() => {
            let raw = webjobs::parse(&read(&settings_path)?, mode)
                .map_err(|f| parse_failure(&settings_path, f))?;
            let source = DefinitionSource::WebJobs {
                settings: Some(settings_path.clone()),
            };
            (raw, source, settings_path, true)
        }
        FolderLayout::WebJobs(mode) => {
            let raw = JobToml {
                mode: Some(mode),
                ..JobToml::default()
            };
            let source = DefinitionSource::WebJobs { settings: None };
            (raw, source, dir.to_path_buf(), false)
        }
    };
    let webjobs = matches!(layout, FolderLayout::WebJobs(_));
    build(
        raw,
        &Folder {
            name,
            dir,
            source,
            file,
            settings_job,
            webjobs,
            search_path: &env.search_path,
        },
    )
}

/// Parses and checks the text of a settings file as [`load_folder`] does once it has read
/// it: `job.toml` when `webjobs` is `None`, else the `settings.job` of a WebJobs folder of
/// that mode. `dir` is the definition's folder (entry files, `working_dir` and watched
/// directories are looked up in it); `name` is taken as a legal definition name. Interpreters
/// are found on errand's own `PATH`. Nothing is read from the settings file itself, so the
/// fuzz targets (`fuzz/`) feed it arbitrary text.
///
/// # Errors
/// Every problem found, as loading the folder reports them.
pub fn parse_settings_text(
    name: &str,
    dir: &Path,
    webjobs: Option<Mode>,
    text: &str,
) -> Result<Definition, Vec<DefinitionProblem>> {
    let (file, parsed) = match webjobs {
        None => (dir.join("job.toml"), job_toml::parse(text)),
        Some(mode) => (dir.join("settings.job"), webjobs::parse(text, mode)),
    };
    let raw = parsed.map_err(|f| {
        vec![DefinitionProblem {
            name: name.to_string(),
            file: file.clone(),
            key: f.key,
            reason: f.reason,
        }]
    })?;
    let source = match webjobs {
        None => DefinitionSource::JobToml { path: file.clone() },
        Some(_) => DefinitionSource::WebJobs {
            settings: Some(file.clone()),
        },
    };
    let env = LoadEnv::from_process();
    build(
        raw,
        &Folder {
            name,
            dir,
            source,
            file,
            settings_job: webjobs.is_some(),
            webjobs: webjobs.is_some(),
            search_path: &env.search_path,
        },
    )
}

/// The WebJobs folder of a mode.
pub(crate) fn mode_dir(mode: Mode) -> &'static str {
    match mode {
        Mode::Triggered => "triggered",
        Mode::Continuous => "continuous",
    }
}
