//! `errand schedules ...`.

use anyhow::Context;
use errand_api::{JobTemplateRequest, ScheduleRequest};
use errand_client::Client;
use errand_core::duration::{parse, FlexDuration};
use errand_core::schedule_spec::Schedule;

use crate::cli::{ScheduleAddArgs, SchedulesCommand};
use crate::commands::jobs;
use crate::exit::{usage, UsageError};
use crate::output;

fn print(schedules: &[Schedule], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&schedules);
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let trigger = match (&s.spec.cron, s.spec.every_ms) {
                (Some(c), _) => format!("{c} ({})", s.spec.timezone),
                (None, Some(ms)) => format!(
                    "every {}",
                    errand_core::duration::format(std::time::Duration::from_millis(ms))
                ),
                _ => "-".into(),
            };
            vec![
                s.spec.name.to_string(),
                trigger,
                s.spec.job.kind.to_string(),
                if s.paused {
                    "paused".into()
                } else {
                    "active".into()
                },
                output::when(s.next_fire_at),
                output::when(s.last_fire_at),
                s.last_job_state
                    .map(|st| st.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME", "TRIGGER", "KIND", "STATUS", "NEXT", "LAST", "LAST JOB",
        ],
        &rows,
    );
    Ok(())
}

fn enum_value<T: serde::de::DeserializeOwned>(
    field: &str,
    raw: &Option<String>,
) -> anyhow::Result<Option<T>> {
    raw.as_deref()
        .map(|v| {
            serde_json::from_value(serde_json::Value::String(v.to_string()))
                .with_context(|| UsageError(format!("--{field} {v}")))
        })
        .transpose()
}

fn request(args: ScheduleAddArgs) -> anyhow::Result<ScheduleRequest> {
    Ok(ScheduleRequest {
        name: args.name,
        cron: args.cron,
        every: args
            .every
            .as_deref()
            .map(|e| {
                parse("every", e)
                    .map(FlexDuration)
                    .map_err(|e| usage(format!("--{e}")))
            })
            .transpose()?,
        timezone: Some(args.timezone),
        job: Some(JobTemplateRequest {
            kind: args.kind,
            queue: args.queue,
            payload: args
                .payload
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .context(UsageError("--payload is not JSON".into()))?,
            ..JobTemplateRequest::default()
        }),
        overlap: enum_value("overlap", &args.overlap)?,
        catch_up: enum_value("catch-up", &args.catch_up)?,
        catch_up_window: None,
        jitter: None,
        singleton: args.singleton,
        workflow: None,
    })
}

/// Runs a `schedules` subcommand.
pub async fn run(client: &Client, cmd: SchedulesCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        SchedulesCommand::List => print(&client.schedules().await?.schedules, json),
        SchedulesCommand::Show { name } => print(&[client.schedule(&name).await?], json),
        SchedulesCommand::Add(args) => {
            let name = args.name.clone();
            let created =
                client
                    .schedule_create(&request(args)?)
                    .await
                    .map_err(|e| match e.code() {
                        Some("already_exists") => anyhow::Error::new(e).context(format!(
                            "schedule `{name}` already exists (remove it with \
                         `errand schedules rm {name}`, or pick another name)"
                        )),
                        _ => e.into(),
                    })?;
            print(&[created], json)
        }
        SchedulesCommand::Rm { name } => {
            client.schedule_delete(&name).await?;
            if !json {
                println!("deleted schedule {name}");
            }
            Ok(())
        }
        SchedulesCommand::Pause { name } => {
            print(&[client.schedule_set_paused(&name, true).await?], json)
        }
        SchedulesCommand::Resume { name } => {
            print(&[client.schedule_set_paused(&name, false).await?], json)
        }
        SchedulesCommand::Trigger { name } => {
            jobs::print_job(&client.schedule_trigger(&name).await?, json)
        }
        SchedulesCommand::Next { name, count } => {
            let next = client.schedule_next(&name, count).await?;
            if json {
                return output::json(&next);
            }
            for t in next.next {
                println!("{t}");
            }
            Ok(())
        }
    }
}
