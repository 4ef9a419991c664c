//! What starts a definition besides an enqueue: a continuous instance restarted with
//! backoff, a signed webhook, and a watched directory (files written while errand runs
//! and while it was down).

mod common;

use std::time::Duration;

use common::jobs_dir::{alive, finished, loaded, JobsDir};
use common::{server_with, Raw};
use errand_core::instance::InstanceState;
use errand_core::JobState;
use errand_testkit::eventually;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[tokio::test]
async fn a_continuous_instance_that_keeps_crashing_is_restarted_with_backoff_then_marked_failed() {
    let jobs = JobsDir::new();
    jobs.add(
        "crashy",
        "mode = \"continuous\"\n[restart]\nbase = \"100ms\"\nmax = \"200ms\"\nmax_restarts = 3\nwindow = \"1m\"\n",
        "run.sh",
        "#!/bin/bash\necho starting instance $ERRAND_INSTANCE_ID\nexit 4\n",
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "crashy").await;
    let failed = eventually(
        "the instance marked failed",
        Duration::from_secs(20),
        || async {
            let d = client.definition("crashy").await.ok()?;
            let i = d.instances.first()?.clone();
            (i.state == InstanceState::Failed).then_some(i)
        },
    )
    .await;
    assert_eq!(
        failed.restarts, 4,
        "three restarts allowed, the fourth exit fails it"
    );
    assert_eq!(failed.last_exit.as_ref().and_then(|r| r.exit_code), Some(4));
    // Its lines are kept per restart.
    let raw = Raw::new(&server);
    let (status, page) = raw
        .get(&format!(
            "/v1/definitions/crashy/instances/{}/logs",
            failed.instance
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    let lines = page["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "{page}");
    assert!(lines
        .iter()
        .all(|l| l["line"].as_str().unwrap().starts_with("starting instance")));
    // Each restart waited its backoff (at least `base`, 100 ms, less 10 % jitter).
    let times: Vec<jiff::Timestamp> = lines
        .iter()
        .map(|l| l["at"].as_str().unwrap().parse().unwrap())
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= jiff::SignedDuration::from_millis(85),
            "restarted after {gap:?}: {times:?}"
        );
    }
    // Start brings a failed instance back.
    client.definition_switch("crashy", false).await.unwrap();
    eventually("restarted after start", Duration::from_secs(20), || async {
        let d = client.definition("crashy").await.ok()?;
        (d.instances.first()?.restarts > 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn stop_ends_a_continuous_instance_gracefully_and_start_runs_it_again() {
    let jobs = JobsDir::new();
    jobs.add(
        "daemon",
        "mode = \"continuous\"\nstopping_wait_time = \"5s\"\n",
        "run.sh",
        "#!/bin/bash\ntrap 'echo stopping; exit 0' TERM\necho up\nwhile true; do sleep 0.05; done\n",
    );
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "daemon").await;
    let pid = eventually("the instance runs", Duration::from_secs(20), || async {
        let d = client.definition("daemon").await.ok()?;
        let i = d.instances.first()?.clone();
        (i.state == InstanceState::Running).then_some(i.pid?)
    })
    .await;
    let stopped = client.definition_switch("daemon", true).await.unwrap();
    assert!(stopped.stopped);
    eventually("the process ended", Duration::from_secs(10), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    let i = eventually(
        "the instance shows stopped",
        Duration::from_secs(10),
        || async {
            let d = client.definition("daemon").await.ok()?;
            let i = d.instances.first()?.clone();
            (i.state == InstanceState::Stopped).then_some(i)
        },
    )
    .await;
    assert_eq!(
        i.last_exit.and_then(|r| r.exit_code),
        Some(0),
        "it exited on SIGTERM by itself"
    );
    client.definition_switch("daemon", false).await.unwrap();
    eventually("running again", Duration::from_secs(20), || async {
        let d = client.definition("daemon").await.ok()?;
        let i = d.instances.first()?.clone();
        (i.state == InstanceState::Running && i.pid? != pid).then_some(())
    })
    .await;
}

fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn standard_signature(secret_b64: &str, id: &str, ts: i64, body: &[u8]) -> String {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn a_hook_enqueues_only_signed_requests() {
    let jobs = JobsDir::new();
    jobs.add(
        "deploy",
        "[[triggers.hook]]\nname = \"github\"\nsecret_env = \"ERRAND_TEST_HOOK_SECRET\"\n",
        "run.sh",
        "#!/bin/bash\ncat\n",
    );
    // Standard Webhooks secrets are `whsec_` + base64.
    let secret_b64 = "c2VjcmV0LWtleS1mb3ItdGVzdHM=";
    let secret = format!("whsec_{secret_b64}");
    std::env::set_var("ERRAND_TEST_HOOK_SECRET", &secret);
    let (server, _data) = server_with(&["--jobs-dir", &jobs.path_str()]).await;
    let client = server.client().unwrap();
    loaded(&client, "deploy").await;
    let http = common::http_client();
    let url = format!("{}/v1/hooks/github", server.url());
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let count = || async {
        client
            .jobs(&errand_api::JobListQuery {
                kind: Some("deploy".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .jobs
            .len()
    };

    let unsigned = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let bad = http
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            github_signature("wrong secret", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    assert_eq!(
        count().await,
        0,
        "nothing enqueued for bad or missing signatures"
    );

    let good = http
        .post(&url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", github_signature(&secret, &body))
        .header("x-github-delivery", "delivery-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 202);
    let job: errand_core::Job = good.json().await.unwrap();
    let job = finished(&client, job.id, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.payload, serde_json::json!({"ref": "refs/heads/main"}));

    let ts = jiff::Timestamp::now().as_second();
    let std_ok = http
        .post(&url)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            standard_signature(secret_b64, "msg_1", ts, &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(std_ok.status().as_u16(), 202);
    let std_stale = http
        .post(&url)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_2")
        .header("webhook-timestamp", (ts - 3600).to_string())
        .header(
            "webhook-signature",
            standard_signature(secret_b64, "msg_2", ts - 3600, &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        std_stale.status().as_u16(),
        401,
        "an hour-old signature is refused"
    );
    assert_eq!(count().await, 2);
}

#[tokio::test]
async fn a_watched_directory_enqueues_each_file_version_once_including_files_from_while_errand_was_down(
) {
    let jobs = JobsDir::new();
    let inbox = tempfile::tempdir().unwrap();
    jobs.add(
        "ingest",
        &format!(
            "[[triggers.watch]]\ndir = \"{}\"\nglob = \"*.csv\"\ndebounce = \"200ms\"\n",
            inbox.path().display()
        ),
        "run.sh",
        "#!/bin/bash\ncat\n",
    );
    std::fs::write(inbox.path().join("early.csv"), "a,b\n").unwrap();
    std::fs::write(inbox.path().join("ignored.txt"), "no\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut server = errand_testkit::ServerProcess::start_in(
        &common::bin(),
        data.path(),
        &["--jobs-dir", &jobs.path_str()],
    )
    .await
    .unwrap();
    let client = server.client().unwrap();
    let jobs_of = |client: errand_client::Client| async move {
        client
            .jobs(&errand_api::JobListQuery {
                kind: Some("ingest".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .jobs
    };
    eventually(
        "the file from before the start",
        Duration::from_secs(20),
        || async {
            let jobs = jobs_of(client.clone()).await;
            jobs.iter()
                .any(|j| {
                    j.payload["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("early.csv"))
                })
                .then_some(())
        },
    )
    .await;
    // Written in pieces: one job after the debounce.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(inbox.path().join("live.csv")).unwrap();
        for _ in 0..5 {
            f.write_all(b"1,2\n").unwrap();
            f.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eventually(
        "the file written while running",
        Duration::from_secs(20),
        || async {
            let jobs = jobs_of(client.clone()).await;
            jobs.iter()
                .any(|j| {
                    j.payload["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("live.csv"))
                })
                .then_some(())
        },
    )
    .await;
    assert!(server.terminate().await);
    std::fs::write(inbox.path().join("while-down.csv"), "x\n").unwrap();
    server.restart().await.unwrap();
    let client = server.client().unwrap();
    let all = eventually(
        "the file written while down",
        Duration::from_secs(20),
        || async {
            let jobs = jobs_of(client.clone()).await;
            jobs.iter()
                .any(|j| {
                    j.payload["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("while-down.csv"))
                })
                .then_some(jobs)
        },
    )
    .await;
    let names: Vec<&str> = all
        .iter()
        .filter_map(|j| j.payload["path"].as_str())
        .collect();
    for name in ["early.csv", "live.csv", "while-down.csv"] {
        assert_eq!(
            names.iter().filter(|p| p.ends_with(name)).count(),
            1,
            "{name} once: {names:?}"
        );
    }
    assert!(!names.iter().any(|p| p.ends_with(".txt")), "{names:?}");
    assert!(
        all[0].payload["size"].is_u64() && all[0].payload["modified"].is_string(),
        "{:?}",
        all[0].payload
    );
}
