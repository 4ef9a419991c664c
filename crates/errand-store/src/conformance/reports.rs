//! Run reports kept on attempts.

use errand_core::RunReport;

use super::support::*;
use super::Ctx;
use crate::{JobSettleManyParams, Settlement};

fn report(exit_code: i32) -> RunReport {
    RunReport {
        exit_code: Some(exit_code),
        signal: None,
        duration_ms: 250,
        cpu_ms: 30,
        max_rss_bytes: 3 << 20,
    }
}

/// The report a settlement carries is kept on the attempt it ends, for failures and
/// completions, in a batch beside settlements without one (which keep none).
pub(crate) async fn a_run_report_is_kept_on_the_attempt_it_ends(Ctx { store, .. }: Ctx) {
    let (first, second) = second_attempt(&store, "rep").await;
    let id = first.job.id;
    // `second_attempt` failed the first attempt without a report; the second fails with
    // one, then a third completes with one beside a job completed without.
    settle(
        &store,
        Settlement::Fail {
            id,
            lease_token: second.lease_token,
            error: "exit 3".into(),
            retry_in: Some(std::time::Duration::ZERO),
            dead: false,
            report: Some(report(3)),
        },
    )
    .await
    .expect("fail");
    insert(&store, vec![new_job("rep", "k")]).await;
    let cs = claim(&store, "rep", 2).await;
    assert_eq!(cs.len(), 2);
    let settlements = cs
        .iter()
        .map(|c| Settlement::Complete {
            id: c.job.id,
            lease_token: c.lease_token,
            result: None,
            report: (c.job.id == id).then(|| report(0)),
            session_state: Default::default(),
        })
        .collect();
    let out = store
        .job_settle_many(JobSettleManyParams {
            settlements,
            retry_policy: no_jitter(),
        })
        .await
        .expect("settle");
    assert!(out.iter().all(Result::is_ok), "{out:?}");

    let attempts = store.job_attempt_list(id).await.expect("attempts");
    let reports: Vec<Option<RunReport>> = attempts.into_iter().map(|a| a.report).collect();
    assert_eq!(reports, vec![None, Some(report(3)), Some(report(0))]);
    let other = cs.iter().find(|c| c.job.id != id).expect("the other job");
    let attempts = store
        .job_attempt_list(other.job.id)
        .await
        .expect("attempts");
    assert_eq!(attempts[0].report, None);
}
