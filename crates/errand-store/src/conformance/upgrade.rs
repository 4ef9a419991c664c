//! What a backend's migration test checks after opening a store the previous version
//! wrote: the jobs it holds are found by tag and kind and counted per queue, and a new job
//! joins both. Each backend writes the old store its own way; the checks live here once.

use errand_core::{JobId, JobKind};

use super::support::{insert, new_job, queue};
use crate::{JobListParams, SharedStore};

/// A job as the previous version stored it: id, queue, state and its tags as JSON.
pub type OldJob = (JobId, &'static str, &'static str, &'static str);

/// Jobs of kind `old` for a backend to write with plain SQL into a previous-version store:
/// two queues, several states, a job without tags and one with a tag given twice.
pub fn previous_version_jobs() -> Vec<OldJob> {
    vec![
        (JobId::new(), "a", "available", r#"["red"]"#),
        (JobId::new(), "a", "available", r#"["red","blue"]"#),
        (JobId::new(), "a", "running", r#"[]"#),
        (JobId::new(), "a", "dead", r#"["blue"]"#),
        (JobId::new(), "b", "succeeded", r#"["red","red"]"#),
    ]
}

async fn list_tag(store: &SharedStore, tag: &str) -> Vec<JobId> {
    store
        .job_list(JobListParams {
            tag: Some(tag.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .iter()
        .map(|j| j.id)
        .collect()
}

/// Checks an upgraded store holding exactly `jobs` (written before the upgrade).
///
/// # Panics
/// When the upgrade left the tag index, the kind index or the queue counts wrong.
pub async fn assert_upgraded(store: &SharedStore, jobs: &[OldJob]) {
    for tag in ["red", "blue"] {
        let tagged: Vec<JobId> = jobs
            .iter()
            .rev()
            .filter(|(_, _, _, tags)| tags.contains(&format!("\"{tag}\"")))
            .map(|(id, ..)| *id)
            .collect();
        assert_eq!(list_tag(store, tag).await, tagged, "jobs tagged {tag}");
    }
    let old_kind = store
        .job_list(JobListParams {
            kind: Some(JobKind::parse("old").expect("kind")),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(old_kind.len(), jobs.len());
    let queues = store.queue_list().await.expect("queues");
    let a = &queues[0].counts;
    assert_eq!((a.available, a.running, a.dead), (2, 1, 1));
    assert_eq!(queues[1].counts.succeeded, 1);

    // From here on the store keeps both: a new job joins its tag and its queue's count.
    let mut job = new_job("a", "new");
    job.tags = vec!["red".into()];
    let id = job.id;
    insert(store, vec![job]).await;
    assert_eq!(list_tag(store, "red").await.first(), Some(&id));
    let a = store.queue_get(&queue("a")).await.expect("queue");
    assert_eq!(a.counts.available, 3);
}
