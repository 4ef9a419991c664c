//! Job definitions run as real processes by a real server: success with a result, both
//! streams logged, the environment, failures and retries resumed from a checkpoint, a
//! failure without retry, timeouts that kill the whole process group, and cancels.

mod common;

use std::time::Duration;

use common::jobs_dir::{alive, finished, loaded, log_lines, run_to_end, JobsDir};
use common::server_with;
use errand_core::JobState;
use errand_testkit::eventually;
use serde_json::json;

#[tokio::test]
async fn a_run_gets_its_payload_and_environment_and_returns_a_result_with_its_lines_logged() {
    let jobs = JobsDir::new();
    jobs.add(
        "greet",
        "timeout = \"30s\"\n",
        "run.sh",
        r#"#!/bin/bash
payload=$(cat)
echo "payload=$payload"
echo "job=$ERRAND_JOB_ID attempt=$ERRAND_ATTEMPT of $ERRAND_MAX_ATTEMPTS queue=$ERRAND_QUEUE kind=$ERRAND_KIND"
echo "token-set=${ERRAND_LEASE_TOKEN:+yes}"
echo "oops on stderr" >&2
echo '{"progress": 50, "message": "half way"}' > "$ERRAND_CONTROL"
echo "{\"result\": {\"got\": $payload}}" > "$ERRAND_CONTROL"
"#,
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "greet").await;
    let job = run_to_end(&client, "greet", json!({"name": "ada"})).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result, Some(json!({"got": {"name": "ada"}})));
    let lines = log_lines(&client, job.id).await;
    assert!(
        lines.contains(&r#"INFO payload={"name":"ada"}"#.to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!(
            "INFO job={} attempt=1 of {} queue=default kind=greet",
            job.id, job.max_attempts
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"INFO token-set=yes".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"ERROR oops on stderr".to_string()),
        "{lines:?}"
    );
    let attempts = client.attempts(job.id).await.unwrap().attempts;
    let report = attempts[0]
        .report
        .clone()
        .expect("the attempt has a run report");
    assert_eq!(report.exit_code, Some(0));
    assert!(report.max_rss_bytes > 0, "{report:?}");
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_resumes_from_its_checkpoint() {
    let jobs = JobsDir::new();
    jobs.add(
        "resume",
        "max_attempts = 3\n[backoff]\nbase = \"100ms\"\nmax = \"200ms\"\n",
        "run.py",
        r#"import json, os, sys
cp = os.environ.get("ERRAND_CHECKPOINT")
ctl = os.environ["ERRAND_CONTROL"]
def send(obj):
    with open(ctl, "w") as f:
        f.write(json.dumps(obj) + "\n")
if cp is None:
    send({"checkpoint": {"step": 7}})
    print("saved step 7, now failing", flush=True)
    sys.exit(3)
send({"result": {"resumed_from": json.loads(cp)["step"], "attempt": int(os.environ["ERRAND_ATTEMPT"])}})
"#,
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "resume").await;
    let job = run_to_end(&client, "resume", json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result, Some(json!({"resumed_from": 7, "attempt": 2})));
    let attempts = client.attempts(job.id).await.unwrap().attempts;
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].report.as_ref().and_then(|r| r.exit_code),
        Some(3)
    );
    assert!(
        attempts[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("exit code 3")),
        "{:?}",
        attempts[0].error
    );
}

#[tokio::test]
async fn a_run_can_fail_without_retry() {
    let jobs = JobsDir::new();
    jobs.add(
        "refuse",
        "max_attempts = 5\n",
        "run.sh",
        "#!/bin/bash\necho '{\"fail\": \"the input is wrong\", \"retry\": false}' > \"$ERRAND_CONTROL\"\nexit 1\n",
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "refuse").await;
    let job = run_to_end(&client, "refuse", json!({})).await;
    assert_eq!(job.state, JobState::Dead, "{job:?}");
    assert_eq!(job.attempt, 1);
    assert_eq!(job.error.as_deref(), Some("the input is wrong"));
}

#[tokio::test]
async fn a_timeout_stops_the_whole_group_even_a_run_that_ignores_sigterm() {
    let jobs = JobsDir::new();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    jobs.add(
        "stubborn",
        "timeout = \"1s\"\nstopping_wait_time = \"1s\"\nmax_attempts = 1\n",
        "run.sh",
        &format!(
            r#"#!/bin/bash
trap '' TERM
sleep 300 &
echo $! > {m}/grandchild
( trap '' TERM; while true; do sleep 0.05; done ) &
echo $! > {m}/subshell
while true; do
  if [ -e "$ERRAND_SHUTDOWN_FILE" ]; then touch {m}/saw-shutdown-file; fi
  sleep 0.05
done
"#
        ),
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "stubborn").await;
    let job = run_to_end(&client, "stubborn", json!({})).await;
    assert_eq!(job.state, JobState::Dead, "{job:?}");
    assert!(
        job.error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{:?}",
        job.error
    );
    assert!(
        marks.path().join("saw-shutdown-file").exists(),
        "the run saw the shutdown file"
    );
    for name in ["grandchild", "subshell"] {
        let pid: u32 = std::fs::read_to_string(marks.path().join(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(pid), "{name} {pid} survived its run");
    }
    let attempts = client.attempts(job.id).await.unwrap().attempts;
    assert_eq!(
        attempts[0].report.as_ref().and_then(|r| r.signal),
        Some(9),
        "SIGKILL ended it"
    );
}

#[tokio::test]
async fn a_cancel_stops_a_running_run_at_once() {
    let jobs = JobsDir::new();
    let marks = tempfile::tempdir().unwrap();
    let m = marks.path().display();
    jobs.add(
        "long",
        "stopping_wait_time = \"5s\"\n",
        "run.sh",
        &format!("#!/bin/bash\necho $$ > {m}/pid\ntrap 'echo got TERM; exit 0' TERM\nwhile true; do sleep 0.05; done\n"),
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "long").await;
    let job = client
        .run_definition("long", &errand_api::RunDefinitionRequest::default())
        .await
        .unwrap();
    let pid_file = marks.path().join("pid");
    let pid: u32 = eventually("the run started", Duration::from_secs(20), || async {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;
    client.cancel(job.id).await.unwrap();
    eventually("the run stopped", Duration::from_secs(3), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    let lines = eventually("its last line logged", Duration::from_secs(5), || async {
        let lines = log_lines(&client, job.id).await;
        lines
            .contains(&"INFO got TERM".to_string())
            .then_some(lines)
    })
    .await;
    assert!(!lines.is_empty());
    assert_eq!(
        finished(&client, job.id, Duration::from_secs(5))
            .await
            .state,
        JobState::Cancelled
    );
}

#[tokio::test]
async fn only_named_variables_of_the_server_environment_reach_a_run() {
    let jobs = JobsDir::new();
    jobs.add(
        "envcheck",
        "pass_env = [\"APP_TEST_PASSED\"]\n[env]\nGREETING = \"hello\"\n",
        "run.sh",
        "#!/bin/bash\nenv | sort\n",
    );
    // Set in the test process: the server inherits them.
    std::env::set_var("APP_TEST_PASSED", "passed-value");
    std::env::set_var("APP_TEST_SECRET", "secret-value");
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "envcheck").await;
    let job = run_to_end(&client, "envcheck", json!({})).await;
    assert_eq!(job.state, JobState::Succeeded);
    let lines = log_lines(&client, job.id).await;
    assert!(
        lines.contains(&"INFO APP_TEST_PASSED=passed-value".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"INFO GREETING=hello".to_string()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("secret-value")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("INFO PATH=")),
        "{lines:?}"
    );
}
