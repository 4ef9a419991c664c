//! The environment of a run: only what the definition asks for, and errand's own variables.

use std::collections::BTreeMap;

use crate::definition::Definition;
use crate::host::HostedJob;

use super::config::RunnerConfig;

/// The largest flow context (workflow input and parents' results, as JSON text) passed in
/// `ERRAND_CONTEXT`: one environment variable holds at most 128 KiB.
pub(crate) const MAX_CONTEXT_ENV_BYTES: usize = 64 * 1024;

/// Variables of errand's environment every run gets.
const ALWAYS_PASSED: [&str; 3] = ["PATH", "HOME", "LANG"];

/// `PATH`, `HOME`, `LANG` and the `pass_env` names from errand's environment, then the
/// definition's `env` (which wins), then the `ERRAND_*` variables of this attempt (which
/// win over everything: a definition cannot fake its job id).
pub(crate) fn definition_env(config: &RunnerConfig, def: &Definition) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for name in ALWAYS_PASSED
        .iter()
        .copied()
        .chain(def.pass_env.iter().map(String::as_str))
        .chain(def.secret_env.iter().map(String::as_str))
    {
        if let Some(value) = config.server_env.get(name) {
            env.insert(name.to_owned(), value.clone());
        }
    }
    for (k, v) in &def.env {
        env.insert(k.clone(), v.clone());
    }
    env.insert("ERRAND_DEFINITION".into(), def.name.clone());
    if let crate::definition::DefinitionSource::WebJobs { .. } = def.source {
        // What a WebJobs script reads about itself (its shutdown file is added with
        // errand's own, as `WEBJOBS_SHUTDOWN_FILE`).
        env.insert("WEBJOBS_NAME".into(), def.name.clone());
        env.insert(
            "WEBJOBS_TYPE".into(),
            match def.mode {
                crate::definition::Mode::Triggered => "triggered".into(),
                crate::definition::Mode::Continuous => "continuous".into(),
            },
        );
    }
    env
}

/// The variable a job secret named `name` becomes in its run: `ERRAND_SECRET_<name>`.
/// Whoever may enqueue chooses the names, and a name of their choosing could change how
/// the script's shell or interpreter starts (`BASH_ENV`, `NODE_OPTIONS`, `PERL5OPT`,
/// `LD_PRELOAD`, `IFS`, ...); no such variable starts with this prefix.
pub(crate) fn secret_variable(name: &str) -> String {
    format!("ERRAND_SECRET_{name}")
}

/// What a run's log lines must not show: the job's secret values and those of the
/// definition's `secret_env`.
pub(crate) fn redactor(
    config: &RunnerConfig,
    def: &Definition,
    hosted: &HostedJob,
) -> errand_core::secrets::Redactor {
    hosted
        .job
        .secrets
        .redactor()
        .with(secret_env_values(config, def))
}

/// Says, when a definition starts running on this process, which of its `secret_env`
/// names this process's environment does not hold: its runs do not get them, and a script
/// reading one would see it empty. (The server may load a definition only a remote worker
/// runs, with the secret in the worker's environment: so a warning where it runs, not a
/// load problem.)
pub(crate) fn warn_missing_secret_env(config: &RunnerConfig, def: &Definition) {
    for name in def
        .secret_env
        .iter()
        .filter(|n| !config.server_env.contains_key(n.as_str()))
    {
        tracing::warn!(
            definition = %def.name,
            variable = %name,
            "a secret_env variable is not set in this process's environment (as it was at start): the definition's runs do not get it"
        );
    }
}

/// The values of a definition's `secret_env`, which its runs' (and its continuous
/// instances') lines must not show.
pub(crate) fn secret_env_values(
    config: &RunnerConfig,
    def: &Definition,
) -> impl Iterator<Item = String> {
    def.secret_env
        .iter()
        .filter_map(|name| config.server_env.get(name).cloned())
        .collect::<Vec<_>>()
        .into_iter()
}

/// The environment of one attempt of a triggered definition: the definition's, then the
/// job's secrets (each as `ERRAND_SECRET_<name>`), then errand's `ERRAND_*` variables.
pub(crate) fn job_env(
    config: &RunnerConfig,
    def: &Definition,
    hosted: &HostedJob,
) -> Vec<(String, String)> {
    let job = &hosted.job;
    let mut env = definition_env(config, def);
    for (name, value) in job.secrets.reveal() {
        env.insert(secret_variable(name), value.clone());
    }
    env.insert("ERRAND_JOB_ID".into(), job.id.to_string());
    env.insert("ERRAND_ATTEMPT".into(), job.attempt.to_string());
    env.insert("ERRAND_MAX_ATTEMPTS".into(), job.max_attempts.to_string());
    env.insert("ERRAND_QUEUE".into(), job.queue.to_string());
    env.insert("ERRAND_KIND".into(), job.kind.to_string());
    env.insert("ERRAND_LEASE_TOKEN".into(), hosted.lease_token.to_string());
    if let Some(checkpoint) = &job.checkpoint {
        env.insert("ERRAND_CHECKPOINT".into(), checkpoint.to_string());
    }
    if let Some(context) = &job.flow.context {
        let text = context.to_string();
        if text.len() <= MAX_CONTEXT_ENV_BYTES {
            env.insert("ERRAND_CONTEXT".into(), text);
        } else {
            // One environment variable holds at most 128 KiB: a larger context is read
            // from the job (`GET /v1/jobs/$ERRAND_JOB_ID`, field `context`).
            env.insert("ERRAND_CONTEXT_OMITTED".into(), text.len().to_string());
        }
    }
    env.into_iter().collect()
}
