//! `settings.job`, the JSON settings file of an Azure WebJobs folder, read as the job.toml
//! it stands for, so one set of rules validates both.

use serde::Deserialize;

use super::job_toml::{JobToml, ParseFailure, ScheduleTable, ScheduleToml};
use super::Mode;

/// The keys of settings.job errand knows. Unknown keys are refused (a misspelt
/// `is_singelton` would otherwise be a silent default); the WebJobs keys that have no
/// meaning here are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsJob {
    is_singleton: Option<bool>,
    /// Seconds.
    stopping_wait_time: Option<u64>,
    /// NCRONTAB: six fields, seconds first.
    schedule: Option<String>,
    /// Azure runs a WebJob in place or from a copy; errand always runs it in place.
    #[allow(dead_code)]
    is_in_place: Option<bool>,
    /// Azure's hint for WebJobs SDK dashboards; nothing to do here.
    #[allow(dead_code)]
    using_sdk: Option<bool>,
}

/// Reads settings.job (an editor's byte-order mark is skipped) as job.toml settings of a
/// definition in `mode`.
pub(crate) fn parse(text: &str, mode: Mode) -> Result<JobToml, ParseFailure> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let settings: SettingsJob = if text.trim().is_empty() {
        SettingsJob::default()
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| ParseFailure {
            key: super::job_toml::key_of(&e.path().to_string(), &e.inner().to_string()),
            reason: e.inner().to_string(),
        })?
    };
    Ok(JobToml {
        mode: Some(mode),
        singleton: settings.is_singleton,
        stopping_wait_time: settings.stopping_wait_time.map(|s| format!("{s}s")),
        schedule: settings.schedule.map(|cron| ScheduleToml {
            short: true,
            table: ScheduleTable {
                cron: Some(cron),
                ..ScheduleTable::default()
            },
        }),
        ..JobToml::default()
    })
}

/// The settings.job key a job.toml key came from, so problems name what the operator
/// wrote.
pub(crate) fn key_name(job_toml_key: &str) -> String {
    match job_toml_key {
        "singleton" => "is_singleton".into(),
        other => other.into(),
    }
}
