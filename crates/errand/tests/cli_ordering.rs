//! The ordering commands against a real server: `queues set`, `limits`, `sessions`,
//! enqueue's key flags, `jobs explain` in words and `--json`, and `workers`.

mod common;

use std::process::Output;

use serde_json::{json, Value};

use common::{bin, server};

async fn errand(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin())
        .arg("--server")
        .arg(url)
        .args(args)
        .output()
        .await
        .expect("run errand")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("json output")
}

#[tokio::test]
async fn queue_settings_limits_sessions_explain_and_workers_from_the_command_line() {
    let s = server().await;
    let url = s.url();

    let q = json_of(
        &errand(
            url,
            &[
                "--json",
                "queues",
                "set",
                "billing",
                "--concurrency",
                "4",
                "--rate",
                "100/1s",
                "--burst",
                "150",
                "--max-attempts",
                "5",
                "--timeout",
                "30s",
                "--backoff",
                "1s..1h",
            ],
        )
        .await,
    );
    assert_eq!(
        q["settings"],
        json!({
            "concurrency": 4,
            "rate": {"limit": 100, "period": "1s", "burst": 150},
            "defaults": {"max_attempts": 5, "timeout": "30s", "backoff": {"base": "1s", "max": "1h"}}
        })
    );
    let q = json_of(
        &errand(
            url,
            &[
                "--json",
                "queues",
                "set",
                "billing",
                "--concurrency",
                "none",
            ],
        )
        .await,
    );
    assert!(q["settings"].get("concurrency").is_none(), "{q}");
    let bad = errand(url, &["queues", "set", "billing", "--concurrency", "0"]).await;
    assert!(!bad.status.success());

    ok(&errand(url, &["limits", "set", "key", "partner", "--rate", "10/1s"]).await);
    let limits = json_of(&errand(url, &["--json", "limits", "list"]).await);
    assert_eq!(limits[0]["name"], "partner", "{limits}");
    ok(&errand(url, &["limits", "delete", "key", "partner"]).await);

    let first = json_of(
        &errand(
            url,
            &[
                "--json",
                "enqueue",
                "charge",
                "-q",
                "billing",
                "--lock-key",
                "acct-1",
            ],
        )
        .await,
    );
    let second = json_of(
        &errand(
            url,
            &[
                "--json",
                "enqueue",
                "charge",
                "-q",
                "billing",
                "--lock-key",
                "acct-1",
            ],
        )
        .await,
    );
    assert_eq!(first["lock_key"], "acct-1");
    let claimed = s
        .client()
        .expect("client")
        .claim(
            "billing",
            &errand_api::ClaimRequest {
                worker: Some("cli-w".into()),
                max: Some(5),
                ..Default::default()
            },
        )
        .await
        .expect("claim");
    assert_eq!(claimed.jobs.len(), 1);
    let second_id = second["id"].as_str().expect("id");
    let words = ok(&errand(url, &["jobs", "explain", second_id]).await);
    assert!(
        words.contains("lock key `acct-1` is held by job")
            && words.contains(first["id"].as_str().expect("id")),
        "{words}"
    );
    let why = json_of(&errand(url, &["--json", "jobs", "explain", second_id]).await);
    assert_eq!(why["reasons"][0]["code"], "lock_held");

    let workers = ok(&errand(url, &["workers"]).await);
    assert!(
        workers.contains("cli-w") && workers.contains("billing"),
        "{workers}"
    );

    let session = json_of(
        &errand(
            url,
            &[
                "--json",
                "sessions",
                "set-state",
                "s-1",
                r#"{"step":2}"#,
                "--expected-version",
                "0",
            ],
        )
        .await,
    );
    assert_eq!(session["version"], 1);
    let stale = errand(
        url,
        &[
            "sessions",
            "set-state",
            "s-1",
            "{}",
            "--expected-version",
            "0",
        ],
    )
    .await;
    assert!(!stale.status.success());
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("version"),
        "{}",
        String::from_utf8_lossy(&stale.stderr)
    );
    let shown = ok(&errand(url, &["sessions", "show", "s-1"]).await);
    assert!(shown.contains(r#"{"step":2}"#), "{shown}");
}
