//! Fair claiming: a queue's jobs are handed out round-robin across fairness keys, in
//! proportion to their weights, so one tenant's backlog cannot starve another.

use super::support::*;
use super::Ctx;
use crate::SharedStore;

/// Claims and completes one job at a time, `n` times: the fairness keys in claim order.
async fn serve(store: &SharedStore, q: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for _ in 0..n {
        let c = claim(store, q, 1).await.remove(0);
        keys.push(c.job.ordering.fairness_key.clone().unwrap_or_default());
        settled(store, complete(&c)).await;
    }
    keys
}

/// A tenant with 3 jobs behind another's 100 gets its turns within the first claims: a new
/// key starts one step behind the queue's lowest ready rank.
pub(crate) async fn a_small_tenant_is_not_starved_by_a_backlog(Ctx { store, .. }: Ctx) {
    insert(&store, (0..100).map(|_| tenant("q", "a", None)).collect()).await;
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 7).await;
    assert_eq!(
        keys.iter().filter(|k| *k == "b").count(),
        3,
        "b's jobs come within the first seven claims (a step behind a's first): {keys:?}"
    );
    let rest = claim(&store, "q", 200).await;
    assert_eq!(rest.len(), 96, "a's backlog follows");
}

/// A key of weight 2 gets two turns per turn of a weight-1 key.
pub(crate) async fn fairness_weights_share_claims(Ctx { store, .. }: Ctx) {
    insert(&store, (0..10).map(|_| tenant("q", "a", Some(2))).collect()).await;
    insert(&store, (0..10).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 12).await;
    assert_eq!(
        keys[3], "b",
        "b starts a step behind a's first job: {keys:?}"
    );
    assert_eq!(
        keys[3..].iter().filter(|k| *k == "a").count(),
        6,
        "from b's first turn on, two turns for a per turn of b: {keys:?}"
    );
}

/// A tenant that was quiet starts level with the others: it does not get the turns it did
/// not use while another tenant was served.
pub(crate) async fn a_quiet_tenant_starts_level(Ctx { store, .. }: Ctx) {
    insert(&store, (0..10).map(|_| tenant("q", "a", None)).collect()).await;
    assert_eq!(serve(&store, "q", 5).await, vec!["a"; 5]);
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    assert_eq!(
        serve(&store, "q", 7).await,
        vec!["a", "a", "b", "a", "b", "a", "b"],
        "b starts a step behind a's next job and takes turns with a rather than three in a row"
    );
}

/// A high-priority job of one tenant, claimed ahead of its backlog, does not push another
/// tenant's new jobs behind that whole backlog.
pub(crate) async fn a_high_priority_job_does_not_push_tenants_back(Ctx { store, .. }: Ctx) {
    insert(&store, (0..20).map(|_| tenant("q", "a", None)).collect()).await;
    let mut urgent = tenant("q", "a", None);
    urgent.priority = 10;
    insert(&store, vec![urgent.clone()]).await;
    let c = claim(&store, "q", 1).await.remove(0);
    assert_eq!(c.job.id, urgent.id);
    settled(&store, complete(&c)).await;
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 8).await;
    assert_eq!(
        keys.iter().filter(|k| *k == "b").count(),
        3,
        "b takes turns with a's backlog: {keys:?}"
    );
}

/// A tenant's delayed backlog falling due does not starve another tenant's new jobs.
pub(crate) async fn a_delayed_backlog_does_not_starve_new_tenants(Ctx { store, clock }: Ctx) {
    let hour = std::time::Duration::from_secs(3600);
    let delayed = (0..20).map(|_| {
        let mut j = tenant("q", "a", None);
        j.run_at = errand_core::job::RunAt::After(hour);
        j
    });
    insert(&store, delayed.collect()).await;
    insert(&store, vec![tenant("q", "a", None)]).await;
    assert_eq!(serve(&store, "q", 1).await, vec!["a"]);
    clock
        .advance(hour + std::time::Duration::from_secs(1))
        .await;
    promote(&store).await;
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 8).await;
    assert_eq!(
        keys.iter().filter(|k| *k == "b").count(),
        3,
        "b takes turns with a's backlog: {keys:?}"
    );
}
