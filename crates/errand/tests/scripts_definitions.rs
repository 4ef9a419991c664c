//! The jobs directory as an operator uses it: a bad folder next to a good one, a WebJobs
//! folder copied over unchanged, hot reload while a run is in progress, and a graceful
//! shutdown that stops runs within their stopping_wait_time and gives them back.

mod common;

use std::time::{Duration, Instant};

use common::jobs_dir::{finished, loaded, log_lines, run_to_end, write_script, JobsDir};
use common::server_with;
use errand_core::JobState;
use errand_testkit::eventually;
use serde_json::json;

#[tokio::test]
async fn an_invalid_job_toml_is_reported_and_the_valid_one_next_to_it_runs() {
    let jobs = JobsDir::new();
    jobs.add("good", "", "run.sh", "#!/bin/bash\necho fine\n");
    jobs.add("bad", "concurrency = 0\n", "run.sh", "#!/bin/bash\n");
    jobs.add("typo", "timeuot = \"5s\"\n", "run.sh", "#!/bin/bash\n");
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "good").await;
    let list = client.definitions().await.unwrap();
    let bad = list
        .problems
        .iter()
        .find(|p| p.name == "bad")
        .expect("bad is a problem");
    assert_eq!(bad.key.as_deref(), Some("concurrency"), "{bad:?}");
    assert!(bad.file.ends_with("bad/job.toml"), "{bad:?}");
    let typo = list
        .problems
        .iter()
        .find(|p| p.name == "typo")
        .expect("typo is a problem");
    assert!(
        typo.reason.contains("timeuot") || typo.key.as_deref() == Some("timeuot"),
        "{typo:?}"
    );
    assert!(!list
        .definitions
        .iter()
        .any(|d| d.name == "bad" || d.name == "typo"));
    let job = run_to_end(&client, "good", json!({})).await;
    assert_eq!(job.state, JobState::Succeeded);
}

#[tokio::test]
async fn a_webjobs_folder_with_settings_job_runs_unchanged_on_its_schedule() {
    let jobs = JobsDir::new();
    let folder = jobs.path().join("triggered").join("tick");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("settings.job"),
        r#"{"schedule": "*/1 * * * * *", "is_singleton": true, "stopping_wait_time": 3}"#,
    )
    .unwrap();
    write_script(
        &folder.join("run.sh"),
        "#!/bin/bash\necho \"tick $WEBJOBS_NAME $WEBJOBS_TYPE ${WEBJOBS_SHUTDOWN_FILE:+with-shutdown-file}\"\n",
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "tick").await;
    let def = client.definition("tick").await.unwrap();
    assert_eq!(def.format, "webjobs");
    assert!(def.singleton);
    assert_eq!(def.stopping_wait_ms, 3000);
    let done = eventually(
        "scheduled runs of the WebJobs folder",
        Duration::from_secs(20),
        || async {
            let page = client
                .jobs(&errand_api::JobListQuery {
                    kind: Some("tick".into()),
                    state: Some("succeeded".into()),
                    ..Default::default()
                })
                .await
                .ok()?;
            (page.jobs.len() >= 2).then_some(page.jobs)
        },
    )
    .await;
    assert!(
        done.iter().all(|j| j.schedule.is_some()),
        "fired by its schedule"
    );
    assert_eq!(
        log_lines(&client, done[0].id).await,
        vec!["INFO tick tick triggered with-shutdown-file".to_string()],
        "a WebJobs script finds what WebJobs gives it"
    );
}

#[tokio::test]
async fn editing_a_definition_while_it_runs_lets_the_run_finish_as_it_started() {
    let jobs = JobsDir::new();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    let script = |version: u32| {
        format!(
            "#!/bin/bash\necho started > {m}/started-{version}\nwhile [ ! -e {m}/go ]; do sleep 0.05; done\necho version {version}\n"
        )
    };
    let folder = jobs.add("edit", "concurrency = 1\n", "run.sh", &script(1));
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "edit").await;
    let first = client
        .run_definition("edit", &errand_api::RunDefinitionRequest::default())
        .await
        .unwrap();
    let started = marks.path().join("started-1");
    eventually("the first run started", Duration::from_secs(20), || async {
        started.exists().then_some(())
    })
    .await;
    // A new version, with a setting that changes the definition.
    write_script(&folder.join("run.sh"), &script(2));
    std::fs::write(folder.join("job.toml"), "concurrency = 2\n").unwrap();
    eventually("the edit reloaded", Duration::from_secs(15), || async {
        let d = client.definition("edit").await.ok()?;
        (d.concurrency == 2).then_some(())
    })
    .await;
    std::fs::write(marks.path().join("go"), "").unwrap();
    let first = finished(&client, first.id, Duration::from_secs(20)).await;
    assert_eq!(first.state, JobState::Succeeded);
    assert_eq!(first.attempt, 1, "the edit did not restart the run");
    assert_eq!(
        log_lines(&client, first.id).await,
        vec!["INFO version 1".to_string()],
        "the run finished as it started"
    );
    let second = run_to_end(&client, "edit", json!({})).await;
    assert_eq!(
        log_lines(&client, second.id).await,
        vec!["INFO version 2".to_string()]
    );
    // Removing the folder removes the definition.
    std::fs::remove_dir_all(&folder).unwrap();
    eventually("the removal reloaded", Duration::from_secs(15), || async {
        let d = client.definitions().await.ok()?;
        (!d.definitions.iter().any(|d| d.name == "edit")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_graceful_shutdown_stops_runs_within_their_wait_and_gives_them_back() {
    let jobs = JobsDir::new();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    jobs.add(
        "slow",
        "stopping_wait_time = \"2s\"\nmax_attempts = 1\n",
        "run.sh",
        &format!(
            "#!/bin/bash\nif [ -e {m}/second ]; then echo second run; exit 0; fi\ntouch {m}/second\ntrap '' TERM\necho first run\nwhile true; do sleep 0.05; done\n"
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let mut server = errand_testkit::ServerProcess::start_in(
        &common::bin(),
        data.path(),
        &["--jobs-dir", &jobs.path_str()],
    )
    .await
    .unwrap();
    let client = server.client().unwrap();
    loaded(&client, "slow").await;
    let job = client
        .run_definition("slow", &errand_api::RunDefinitionRequest::default())
        .await
        .unwrap();
    eventually("the run started", Duration::from_secs(20), || async {
        marks.path().join("second").exists().then_some(())
    })
    .await;
    let asked = Instant::now();
    assert!(server.terminate().await, "errand stopped on SIGTERM");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "shutdown took {took:?} with a 2 s stopping wait"
    );
    server.restart().await.unwrap();
    let client = server.client().unwrap();
    // max_attempts 1: only a run given back uncounted can run again.
    let job = finished(&client, job.id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert!(log_lines(&client, job.id)
        .await
        .contains(&"INFO second run".to_string()));
}
