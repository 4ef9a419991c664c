//! A job's secrets: kept with the job and given back, with their real values, by every
//! read (the store does not redact; the API's types do).

use std::collections::BTreeMap;

use errand_core::{JobState, Secrets};

use super::restore::exported;
use super::support::*;
use super::Ctx;
use crate::JobListParams;

fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    Secrets::new(
        "secrets",
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .expect("valid secrets")
}

pub(crate) async fn secrets_are_kept_and_returned_by_insert_get_list_claim_and_restore(
    Ctx { store, .. }: Ctx,
) {
    let mut with = new_job("secrets", "uses-secrets");
    with.secrets = secrets(&[("API_KEY", "s3cr3t-value"), ("OTHER", "two")]);
    let without = new_job("secrets", "plain");
    let inserted = insert(&store, vec![with.clone(), without.clone()]).await;
    assert_eq!(inserted[0].job.secrets, with.secrets, "the insert's answer");
    assert!(inserted[1].job.secrets.is_empty());

    let got = store.job_get(with.id).await.expect("get");
    assert_eq!(got.secrets.reveal()["API_KEY"], "s3cr3t-value");
    assert_eq!(got.secrets, with.secrets);
    assert!(store
        .job_get(without.id)
        .await
        .expect("get")
        .secrets
        .is_empty());

    let listed = store
        .job_list(JobListParams {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let found = listed.iter().find(|j| j.id == with.id).expect("listed");
    assert_eq!(found.secrets, with.secrets);

    let claimed = claim(&store, "secrets", 2).await;
    let c = claimed
        .iter()
        .find(|c| c.job.id == with.id)
        .expect("claimed");
    assert_eq!(c.job.secrets, with.secrets, "the claim carries them");

    // An export made with --include-secrets restores them; one without restores none (its
    // job shows only "***").
    let mut kept = exported(JobState::Succeeded, &[]);
    kept.secrets = Some(BTreeMap::from([(
        "TOKEN".to_owned(),
        "restored-value".to_owned(),
    )]));
    kept.job.secrets =
        Secrets::from_stored(BTreeMap::from([("TOKEN".to_owned(), "***".to_owned())]));
    let mut left_out = exported(JobState::Succeeded, &[]);
    left_out.job.secrets = kept.job.secrets.clone();
    store
        .job_restore_many(vec![kept.clone(), left_out.clone()])
        .await
        .expect("restore");
    let got = store.job_get(kept.job.id).await.expect("get");
    assert_eq!(got.secrets.reveal()["TOKEN"], "restored-value");
    let got = store.job_get(left_out.job.id).await.expect("get");
    assert!(
        got.secrets.is_empty(),
        "a redacted export restores no values"
    );
}
