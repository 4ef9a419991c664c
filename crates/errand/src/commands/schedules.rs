//! `errand schedules ...`.

use anyhow::Context;
use errand_api::{JobTemplateRequest, ScheduleRequest};
use errand_client::Client;
use errand_core::duration::FlexDuration;
use errand_core::schedule_spec::Schedule;

use crate::cli::{ScheduleAddArgs, SchedulesCommand};
use crate::commands::jobs;
use crate::exit::UsageError;
use crate::output;

/// The trigger in words: `0 3 * * * (Europe/Paris)` or `every 30s`.
fn trigger(s: &Schedule) -> String {
    match (&s.spec.cron, s.spec.every_ms) {
        (Some(c), _) => format!("{c} ({})", s.spec.timezone),
        (None, Some(ms)) => format!(
            "every {}",
            errand_core::duration::format(std::time::Duration::from_millis(ms))
        ),
        _ => "-".into(),
    }
}

fn status(s: &Schedule) -> &'static str {
    if s.paused {
        "paused"
    } else {
        "active"
    }
}

/// Schedules as a table, times in each schedule's own zone with its offset (UTC RFC 3339
/// in `--json`).
fn print(schedules: &[Schedule], json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&schedules);
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let zone = s.spec.timezone.as_str();
            vec![
                s.spec.name.to_string(),
                trigger(s),
                s.spec.job.kind.to_string(),
                status(s).into(),
                output::when_in(s.next_slot(jiff::Timestamp::now()), zone),
                output::when_in(s.last_fire_at, zone),
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
    )?;
    Ok(())
}

/// One schedule in detail (one object with `--json`).
fn print_one(s: &Schedule, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(s);
    }
    let zone = s.spec.timezone.as_str();
    let in_zone = |t: Option<jiff::Timestamp>| match t {
        Some(t) => format!(
            "{} ({zone}, {})",
            output::when_in(Some(t), zone),
            output::relative(t)
        ),
        None => "-".into(),
    };
    let mut rows = vec![
        ("name", s.spec.name.to_string()),
        ("trigger", trigger(s)),
        ("timezone", zone.to_string()),
        (
            "job",
            format!("{} on queue {}", s.spec.job.kind, s.spec.job.queue),
        ),
        ("status", status(s).into()),
        ("next", in_zone(s.next_slot(jiff::Timestamp::now()))),
        ("last", in_zone(s.last_fire_at)),
    ];
    if let Some(id) = s.last_job_id {
        let state = s
            .last_job_state
            .map(|st| st.to_string())
            .unwrap_or_else(|| "gone".into());
        rows.push(("last job", format!("{id} ({state})")));
    }
    if let Some(slot) = s.buffered_slot {
        rows.push(("buffered", output::when_in(Some(slot), zone)));
    }
    rows.push((
        "overlap",
        serde_json::to_value(s.spec.overlap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", s.spec.overlap)),
    ));
    rows.push((
        "catch-up",
        serde_json::to_value(s.spec.catch_up)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", s.spec.catch_up)),
    ));
    if s.spec.singleton {
        rows.push(("singleton", "yes".into()));
    }
    for (k, v) in rows {
        crate::outln!("{k:>9}  {v}");
    }
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
            .map(|e| crate::exit::duration("every", e).map(FlexDuration))
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
        SchedulesCommand::Show { name } => print_one(&client.schedule(&name).await?, json),
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
            print_one(&created, json)
        }
        SchedulesCommand::Rm { name } => {
            client.schedule_delete(&name).await?;
            if !json {
                crate::outln!("deleted schedule {name}");
            }
            Ok(())
        }
        SchedulesCommand::Pause { name } => {
            print_one(&client.schedule_set_paused(&name, true).await?, json)
        }
        SchedulesCommand::Resume { name } => {
            print_one(&client.schedule_set_paused(&name, false).await?, json)
        }
        SchedulesCommand::Trigger { name } => {
            jobs::print_job(&client.schedule_trigger(&name).await?, json)
        }
        SchedulesCommand::Next { name, count } => {
            let next = client.schedule_next(&name, count).await?;
            if json {
                return output::json(&next);
            }
            // The times in the schedule's own zone, as its cron reads them.
            let zone = client.schedule(&name).await?.spec.timezone;
            for t in next.next {
                crate::outln!("{} ({zone})", output::when_in(Some(t), &zone));
            }
            Ok(())
        }
    }
}
