//! Definitions across processes: a singleton continuous job that moves to another
//! PostgreSQL node when its node is killed, and `errand worker` running definitions (and a
//! bare command) on a second process over the worker protocol.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::jobs_dir::{alive, finished, log_lines, JobsDir};
use common::{bin, server_with};
use errand_core::instance::InstanceState;
use errand_core::JobState;
use errand_testkit::{eventually, PgSchema, ServerProcess};

/// Kills a process this test caused to exist (an instance orphaned by a killed node).
fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status();
}

#[tokio::test]
async fn a_singleton_continuous_job_moves_to_another_node_when_its_node_is_killed() {
    let Some(schema) = PgSchema::create("scripts_singleton").await else {
        return;
    };
    let jobs = JobsDir::new();
    jobs.add(
        "leader",
        "mode = \"continuous\"\nsingleton = true\n",
        "run.sh",
        "#!/bin/bash\necho leading on $ERRAND_NODE_ID\nexec sleep 600\n",
    );
    let args = |dir: &str| {
        vec![
            "--store".to_string(),
            schema.url.clone(),
            "--pg-schema".to_string(),
            schema.name.clone(),
            "--jobs-dir".to_string(),
            dir.to_string(),
        ]
    };
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let jd = jobs.path_str();
    let a_args = args(&jd);
    let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let mut a = ServerProcess::start_in(&bin(), a_dir.path(), &a_refs)
        .await
        .unwrap();
    let client = a.client().unwrap();
    let first = eventually("one instance runs", Duration::from_secs(30), || async {
        let d = client.definition("leader").await.ok()?;
        let running: Vec<_> = d
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .cloned()
            .collect();
        (running.len() == 1).then(|| running[0].clone())
    })
    .await;
    let mut b = ServerProcess::start_in(&bin(), b_dir.path(), &a_refs)
        .await
        .unwrap();
    let client_b = b.client().unwrap();
    // B stands by while A holds the lease.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = client_b.definition("leader").await.unwrap();
    assert_eq!(
        d.instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .count(),
        1,
        "{:?}",
        d.instances
    );
    a.kill9().await;
    let orphan = first.pid.unwrap();
    let second = eventually(
        "another node took over",
        Duration::from_secs(45),
        || async {
            let d = client_b.definition("leader").await.ok()?;
            d.instances
                .iter()
                .find(|i| i.state == InstanceState::Running && i.node != first.node)
                .cloned()
        },
    )
    .await;
    kill_pid(orphan);
    let pid = second.pid.unwrap();
    assert!(b.terminate().await);
    assert!(!alive(pid), "a clean stop ends the instance");
}

#[tokio::test]
async fn errand_worker_runs_definitions_and_commands_on_another_process() {
    let jobs = JobsDir::new();
    jobs.add(
        "remote",
        "",
        "run.sh",
        "#!/bin/bash\necho \"on the worker: $(cat)\"\necho '{\"result\": {\"ok\": true}}' > \"$ERRAND_CONTROL\"\n",
    );
    // A continuous definition runs on server nodes only: the worker says so, once.
    jobs.add(
        "listener",
        "mode = \"continuous\"\n",
        "run.sh",
        "#!/bin/bash\nexec sleep 300\n",
    );
    // The server loads the same folder (to know the definition) but does not run jobs.
    let (server, _data) =
        server_with(&["--jobs-dir", &jobs.path_str(), "--roles", "api,scheduler"]).await;
    let client = server.client().unwrap();
    common::jobs_dir::loaded(&client, "remote").await;
    let job = client
        .run_definition(
            "remote",
            &errand_api::RunDefinitionRequest {
                payload: Some(serde_json::json!({"n": 1})),
                idempotency_key: None,
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        client.job(job.id, None).await.unwrap().state,
        JobState::Available,
        "no worker role on the server"
    );

    let worker_log = tempfile::NamedTempFile::new().expect("the worker's log");
    let mut worker = tokio::process::Command::new(bin())
        .args([
            "worker",
            "--server",
            server.url(),
            "--jobs-dir",
            &jobs.path_str(),
        ])
        .stdin(Stdio::null())
        .stderr(worker_log.reopen().expect("the worker's log"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let job = finished(&client, job.id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result, Some(serde_json::json!({"ok": true})));
    assert_eq!(
        log_lines(&client, job.id).await,
        vec![r#"INFO on the worker: {"n":1}"#.to_string()]
    );
    let report = client.attempts(job.id).await.unwrap().attempts[0]
        .report
        .clone();
    assert_eq!(report.and_then(|r| r.exit_code), Some(0));
    // A definition added later: once the worker runs its job, it has gone over its
    // definitions again since it first skipped the continuous one.
    jobs.add(
        "later",
        "",
        "run.sh",
        "#!/bin/bash\necho '{\"result\": {\"later\": true}}' > \"$ERRAND_CONTROL\"\n",
    );
    common::jobs_dir::loaded(&client, "later").await;
    let later = client
        .run_definition("later", &errand_api::RunDefinitionRequest::default())
        .await
        .unwrap();
    let later = finished(&client, later.id, Duration::from_secs(30)).await;
    assert_eq!(later.state, JobState::Succeeded, "{later:?}");
    let _ = worker.kill().await;
    let said = std::fs::read_to_string(worker_log.path()).expect("the worker's log");
    let skipped = said
        .lines()
        .filter(|l| l.contains("continuous definitions run on server nodes only"))
        .count();
    assert_eq!(skipped, 1, "named once: {said}");

    // One command for a whole queue, without a definition folder.
    let mut cmd_worker = tokio::process::Command::new(bin())
        .args([
            "worker",
            "--server",
            server.url(),
            "--queue",
            "shell",
            "--concurrency",
            "2",
            "--",
            "/bin/sh",
            "-c",
            "echo from-command; exit 5",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut req = errand_api::EnqueueRequest::new("anything");
    req.queue = Some("shell".into());
    req.max_attempts = Some(1);
    let job = client.enqueue(&req).await.unwrap();
    let job = finished(&client, job.id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.error
            .as_deref()
            .is_some_and(|e| e.contains("exit code 5")),
        "{:?}",
        job.error
    );
    assert_eq!(
        log_lines(&client, job.id).await,
        vec!["INFO from-command".to_string()]
    );
    let _ = cmd_worker.kill().await;
}
