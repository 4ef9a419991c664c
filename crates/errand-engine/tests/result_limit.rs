//! `max_result_bytes` in the engine, which every way of completing a job goes through (the
//! HTTP worker protocol, batch settles, and script runs inside `errand serve`), on a real
//! SQLite store.

use std::sync::Arc;
use std::time::Duration;

use errand_core::{JobState, QueueName};
use errand_engine::{ClaimRequest, Engine, EngineConfig};
use errand_store::{Settlement, StoreError};
use errand_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn a_result_over_the_limit_fails_the_job_for_good_and_says_both_sizes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&SqliteOptions::in_dir(dir.path())).expect("open");
    let engine = Engine::new(
        Arc::new(store),
        EngineConfig {
            max_result_bytes: 50,
            ..EngineConfig::default()
        },
    );
    let new = || {
        let mut j = errand_store::conformance::new_job("q", "k");
        j.max_attempts = 5;
        j
    };
    engine
        .enqueue_many(vec![new(), new()])
        .await
        .expect("enqueue");
    let claimed = engine
        .claim(ClaimRequest {
            queue: QueueName::parse("q").expect("queue"),
            worker: "w".into(),
            max: 2,
            lease: Duration::from_secs(60),
            kinds: vec![],
            wait: Duration::ZERO,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let big = serde_json::json!({ "text": "y".repeat(60) });
    let size = serde_json::to_vec(&big).expect("json").len();
    let out = engine
        .settle_many(vec![
            Settlement::Complete {
                id: claimed[0].job.id,
                lease_token: claimed[0].lease_token,
                result: Some(big),
                report: None,
                session_state: Default::default(),
            },
            Settlement::Complete {
                id: claimed[1].job.id,
                lease_token: claimed[1].lease_token,
                result: Some(serde_json::json!("small")),
                report: None,
                session_state: Default::default(),
            },
        ])
        .await
        .expect("settle");
    assert_eq!(
        out[0],
        Err(StoreError::ResultTooLarge {
            bytes: size as u64,
            max: 50
        })
    );
    assert_eq!(out[1].as_ref().map(|j| j.state), Ok(JobState::Succeeded));
    let dead = engine
        .job(claimed[0].job.id, Duration::ZERO)
        .await
        .expect("job");
    assert_eq!(
        dead.state,
        JobState::Dead,
        "not retried: the result would be the same"
    );
    assert_eq!(dead.result, None, "nothing truncated is kept");
    let error = dead.error.unwrap_or_default();
    assert!(
        error.contains("result_too_large")
            && error.contains(&size.to_string())
            && error.contains("50"),
        "{error}"
    );
}
