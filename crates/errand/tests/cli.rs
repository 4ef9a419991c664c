//! The CLI against a real server: human output, `--json`, exit codes, graceful shutdown.

mod common;

use std::process::Output;

use serde_json::Value;

use common::{bin, server};

async fn errand(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin())
        .env("RUST_BACKTRACE", "1")
        .arg("--server")
        .arg(url)
        .args(args)
        .output()
        .await
        .expect("run errand")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

#[tokio::test]
async fn enqueue_show_pause_and_dead_commands() {
    let s = server().await;
    let url = s.url();
    let job = json(
        &errand(
            url,
            &[
                "--json",
                "enqueue",
                "report.build",
                "--payload",
                r#"{"month":"2026-10"}"#,
                "--queue",
                "reports",
                "--tag",
                "monthly",
            ],
        )
        .await,
    );
    assert_eq!(job["state"], "available");
    let id = job["id"].as_str().expect("id");
    let shown = json(&errand(url, &["--json", "jobs", "show", id]).await);
    assert_eq!(shown["payload"]["month"], "2026-10");
    let human = errand(url, &["jobs", "list", "--queue", "reports"]).await;
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("report.build") && text.contains("STATE"),
        "{text}"
    );
    let paused = json(&errand(url, &["--json", "queues", "pause", "reports"]).await);
    assert_eq!(paused[0]["paused"], true);
    let queues = json(&errand(url, &["--json", "queues", "list"]).await);
    assert_eq!(queues[0]["name"], "reports");
    let refused = errand(url, &["dead", "purge"]).await;
    assert_eq!(
        refused.status.code(),
        Some(2),
        "purging with no selection is a usage error"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));
    // A job named by id that is not dead is left alone, and the answer says why it may be.
    let alive = errand(url, &["dead", "requeue", "--id", id]).await;
    let text = String::from_utf8_lossy(&alive.stdout);
    assert!(
        text.contains("requeued 0 dead jobs")
            && text.contains("the job named was left alone: not dead, gone, or a workflow's step"),
        "{text}"
    );
    // Named twice, it is still one job.
    let twice = errand(url, &["dead", "purge", "--id", id, "--id", id]).await;
    let text = String::from_utf8_lossy(&twice.stdout);
    assert!(
        text.contains("purged 0 dead jobs") && text.contains("the job named was left alone"),
        "{text}"
    );
    let bad = errand(url, &["jobs", "show", "nope"]).await;
    assert_eq!(bad.status.code(), Some(2), "not a job id: a usage error");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_while_a_claim_waits() {
    let mut s = server().await;
    let client = s.client().expect("client");
    let mut waiting = tokio::spawn(async move {
        client
            .claim(
                "idle",
                &errand_api::ClaimRequest {
                    wait_ms: Some(60_000),
                    ..Default::default()
                },
            )
            .await
    });
    // The claim is long-polling: it has not returned after a while (nothing to claim).
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut waiting).await;
    assert!(
        early.is_err(),
        "the claim should still be waiting: {early:?}"
    );
    assert!(s.terminate().await, "errand serve exits 0 on SIGTERM");
    // Shutdown answers the waiting claim (empty) instead of cutting its connection.
    let answered = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the waiting claim is answered promptly at shutdown")
        .expect("join")
        .expect("an answer, not a broken connection");
    assert!(answered.jobs.is_empty());
}
