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

/// A tenant with 3 jobs behind another's 100 gets its turns within the first claims.
pub(crate) async fn a_small_tenant_is_not_starved_by_a_backlog(Ctx { store, .. }: Ctx) {
    insert(&store, (0..100).map(|_| tenant("q", "a", None)).collect()).await;
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 6).await;
    assert_eq!(
        keys.iter().filter(|k| *k == "b").count(),
        3,
        "b's jobs come within the first six claims: {keys:?}"
    );
    let rest = claim(&store, "q", 200).await;
    assert_eq!(rest.len(), 97, "a's backlog follows");
}

/// A key of weight 2 gets two turns per turn of a weight-1 key.
pub(crate) async fn fairness_weights_share_claims(Ctx { store, .. }: Ctx) {
    insert(&store, (0..10).map(|_| tenant("q", "a", Some(2))).collect()).await;
    insert(&store, (0..10).map(|_| tenant("q", "b", None)).collect()).await;
    let keys = serve(&store, "q", 9).await;
    assert_eq!(
        keys.iter().filter(|k| *k == "a").count(),
        6,
        "two turns for a per turn of b: {keys:?}"
    );
}

/// A tenant that was quiet starts level with the others: it does not get the turns it did
/// not use while another tenant was served.
pub(crate) async fn a_quiet_tenant_starts_level(Ctx { store, .. }: Ctx) {
    insert(&store, (0..10).map(|_| tenant("q", "a", None)).collect()).await;
    assert_eq!(serve(&store, "q", 5).await, vec!["a"; 5]);
    insert(&store, (0..3).map(|_| tenant("q", "b", None)).collect()).await;
    assert_eq!(
        serve(&store, "q", 6).await,
        vec!["a", "b", "a", "b", "a", "b"],
        "b takes turns with a rather than three in a row"
    );
}
