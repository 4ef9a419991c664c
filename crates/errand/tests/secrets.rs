//! Secret job fields end to end, on a real server with a real store: only the claim answer
//! and the run's environment hold the values; every other answer shows `***`.

mod common;

use std::time::Duration;

use common::jobs_dir::{finished, loaded, log_lines, JobsDir};
use common::{bin, Raw};
use errand_core::event::EventId;
use errand_core::{JobId, JobState};
use serde_json::{json, Value};

/// The body of any answer as text (JSON, HTML, Prometheus text).
/// The `result` of a job answer.
fn got_result(body: &str) -> Value {
    serde_json::from_str::<Value>(body).expect("job json")["result"].clone()
}

async fn text(http: &reqwest::Client, url: &str) -> String {
    let resp = http.get(url).send().await.expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.text().await.expect("body")
}

/// What the event stream of `job` sends from the first event, read for a moment.
async fn event_stream(http: &reqwest::Client, base: &str, job: JobId) -> String {
    let url = format!("{base}/v1/events?job={job}&after={}", EventId::default());
    let mut resp = http.get(&url).send().await.expect("events");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        out.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn errand(args: &[&str]) -> String {
    let out = tokio::process::Command::new(bin())
        .args(args)
        .output()
        .await
        .expect("run errand");
    assert!(
        out.status.success(),
        "errand {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn secrets_reach_only_the_lease_holder_and_the_script_and_are_redacted_everywhere_else() {
    let secret = format!("s3cr3t-{}", JobId::new());
    let env_secret = format!("envsecret-{}", JobId::new());
    // A value of several lines (a key file) reaches the log one line at a time.
    let pem_lines = [
        format!("pem-line-one-{}", JobId::new()),
        format!("pem-line-two-{}", JobId::new()),
    ];
    let pem = format!(
        "-----BEGIN-----\n{}\n{}\n-----END-----",
        pem_lines[0], pem_lines[1]
    );
    let jobs = JobsDir::new();
    let got_file = jobs.path().join("got");
    jobs.add(
        "secretive",
        &format!(
            "secret_env = [\"APP_SECRETS_TEST_ENV\", \"APP_SECRETS_TEST_UNSET\"]\n[env]\nGOT_FILE = \"{}\"\n",
            got_file.display()
        ),
        "run.sh",
        "#!/bin/bash\necho \"key=$ERRAND_SECRET_API_KEY\"\necho \"env=$APP_SECRETS_TEST_ENV\" >&2\n\
         echo \"$ERRAND_SECRET_PEM\"\n\
         echo \"{\\\"message\\\": \\\"using $ERRAND_SECRET_API_KEY\\\"}\" > \"$ERRAND_CONTROL\"\n\
         echo \"{\\\"checkpoint\\\": {\\\"key\\\": \\\"$ERRAND_SECRET_API_KEY\\\"}}\" > \"$ERRAND_CONTROL\"\n\
         sleep 0.8\n\
         echo \"{\\\"result\\\": {\\\"token\\\": \\\"$ERRAND_SECRET_API_KEY\\\"}}\" > \"$ERRAND_CONTROL\"\n\
         printf '%s' \"$ERRAND_SECRET_API_KEY\" > \"$GOT_FILE\"\n",
    );
    // The server inherits it: a definition's secret_env reads errand's environment.
    std::env::set_var("APP_SECRETS_TEST_ENV", &env_secret);
    // errand's own log, at debug level, is searched too.
    let data = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let log_path = logs.path().join("errand.log");
    let mut server = errand_testkit::ServerProcess::start_logging_in(
        &common::bin(),
        data.path(),
        &["--jobs-dir", &jobs.path_str()],
        &log_path,
    )
    .await
    .expect("start errand serve");
    let client = server.client().expect("client");
    let raw = Raw::new(&server);
    let base = server.url().to_string();
    let http = common::http_client();
    loaded(&client, "secretive").await;
    // A secret_env variable errand's environment lacks is named when the runs start.
    let warned = errand_testkit::eventually(
        "the missing secret_env variable named in the log",
        std::time::Duration::from_secs(20),
        || async {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            log.lines()
                .find(|l| l.contains("a secret_env variable is not set"))
                .map(str::to_string)
        },
    )
    .await;
    assert!(warned.contains("APP_SECRETS_TEST_UNSET"), "{warned}");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.lines()
            .any(|l| l.contains("a secret_env variable is not set")
                && l.contains("APP_SECRETS_TEST_ENV")),
        "a variable that is set is not named: {log}"
    );

    // Bad secrets are refused with the field named.
    let (status, body) = raw
        .post("/v1/jobs", r#"{"kind":"x","secrets":{"1BAD":"v"}}"#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("secrets"), "{body}");
    let big = "x".repeat(8 * 1024 + 1);
    let (status, body) = raw
        .post(
            "/v1/jobs",
            &json!({"kind": "x", "secrets": {"BIG": big}}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("secrets.BIG"), "{body}");
    let (status, body) = raw
        .post(
            "/v1/jobs/batch",
            &json!({"jobs": [{"kind": "x", "secrets": {"A-B": "v"}}]}).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("jobs[0].secrets"), "{body}");

    // A worker's claim answer has the values.
    let (status, manual) = raw
        .post(
            "/v1/jobs",
            &json!({"kind": "manual", "queue": "manual", "secrets": {"API_KEY": secret}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{manual}");
    assert_eq!(manual["secrets"], json!({"API_KEY": "***"}), "{manual}");
    let manual_id = manual["id"].as_str().expect("id").to_string();
    let (status, claimed) = raw
        .post("/v1/queues/manual/claim", r#"{"worker":"w1"}"#)
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["jobs"][0]["secrets"]["API_KEY"], json!(secret));

    // A definition's script gets it as a variable; its log shows ***.
    let (status, job) = raw
        .post(
            "/v1/jobs",
            &json!({"kind": "secretive", "secrets": {"API_KEY": secret, "PEM": pem}}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id: JobId = job["id"].as_str().expect("id").parse().expect("job id");
    let done = finished(&client, id, Duration::from_secs(60)).await;
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(
        std::fs::read_to_string(&got_file).expect("the script wrote it"),
        secret
    );
    let lines = log_lines(&client, id).await;
    assert!(lines.contains(&"INFO key=***".to_string()), "{lines:?}");
    assert!(lines.iter().any(|l| l.ends_with("env=***")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("checkpoint not saved: it holds a secret value")),
        "a checkpoint holding a secret is refused: {lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.as_str() == "INFO ***").count(),
        4,
        "each line (of 8 characters or more) of a multi-line secret is redacted: {lines:?}"
    );

    // Every answer a reader can reach.
    let mut answers: Vec<(String, String)> = Vec::new();
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}?wait=1s"),
        format!("/v1/jobs/{manual_id}"),
        "/v1/jobs".to_string(),
        "/v1/jobs?queue=manual".to_string(),
        format!("/v1/jobs/{id}/logs"),
        format!("/v1/jobs/{id}/attempts"),
        "/ui/jobs".to_string(),
        format!("/ui/jobs/{id}"),
        format!("/ui/jobs/{manual_id}"),
        "/metrics".to_string(),
    ] {
        let body = text(&http, &format!("{base}{path}")).await;
        answers.push((path, body));
    }
    answers.push(("events".into(), event_stream(&http, &base, id).await));
    for (path, body) in &answers {
        assert!(!body.contains(&secret), "{path} shows the secret: {body}");
        assert!(!body.contains(&env_secret), "{path} shows the env secret");
        for line in &pem_lines {
            assert!(
                !body.contains(line),
                "{path} shows a line of a secret: {body}"
            );
        }
    }
    assert_eq!(
        got_result(&answers[0].1),
        json!({"token": "***"}),
        "the result is redacted"
    );
    let got: Value = serde_json::from_str(&answers[0].1).expect("job json");
    assert_eq!(got["secrets"], json!({"API_KEY": "***", "PEM": "***"}));
    assert!(
        answers.last().is_some_and(|(_, b)| b.contains("job.")),
        "no events read"
    );

    // Export: without the flag no value (and the header says so); with it, the value.
    assert!(server.terminate().await);
    let log = std::fs::read_to_string(&log_path).expect("errand's log");
    assert!(log.contains("DEBUG"), "the log was written at debug level");
    for value in [&secret, &env_secret, &pem_lines[0], &pem_lines[1]] {
        assert!(!log.contains(value.as_str()), "errand's log shows a secret");
    }
    let dir = data.path().to_str().expect("path");
    let plain = errand(&["export", "--data-dir", dir]).await;
    assert!(!plain.contains(&secret), "export without --include-secrets");
    assert!(
        plain
            .lines()
            .next()
            .is_some_and(|l| l.contains("\"secrets\":\"omitted\"")),
        "{}",
        plain.lines().next().unwrap_or_default()
    );
    let full = errand(&["export", "--data-dir", dir, "--include-secrets"]).await;
    assert!(full.contains(&secret), "export with --include-secrets");
    // A file export is readable by its owner only, even over a file that was not.
    let file = data.path().join("export.jsonl");
    std::fs::write(&file, "old").expect("write");
    let file_str = file.to_str().expect("path");
    errand(&[
        "export",
        "--data-dir",
        dir,
        "--include-secrets",
        "--file",
        file_str,
    ])
    .await;
    assert!(std::fs::read_to_string(&file)
        .expect("read")
        .contains(&secret));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("metadata").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the export is private: {mode:o}");
}
