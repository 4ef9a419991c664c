//! The rows of a batch passed as parallel array parameters, written so that a batch of one
//! keeps a cached plan.
//!
//! PostgreSQL estimates `UNNEST` of a parameter at 10 rows (and `= ANY` of one at several
//! values), so for a batch of one the generic plan of such a statement always looks dearer
//! than a custom plan for the values at hand, and the statement was planned again on every
//! call: 21 % of the machine's samples (about a quarter of PostgreSQL's) in the
//! 16-in-flight claim-1 cycle, where every batch is of one (`perf record -a`, 2026-12-05).
//! Over the arrays' first elements the generic plan costs what a custom one does, and
//! PostgreSQL keeps it after its fifth call. An empty batch is written as a query of no rows
//! for the same reason: a custom plan for an empty array folds it away and looks cheaper
//! than the generic one. The parameters stay arrays in every form, so the caller binds the
//! same values.

/// Whether a batch of `len` rows is written over its whole arrays (`UNNEST`, `= ANY`),
/// whose plan PostgreSQL does not keep by itself (see [`crate::plan_mode::query_batch`]),
/// rather than over their first elements or none.
pub(crate) fn unnested(len: usize) -> bool {
    len > 1
}

/// A `FROM` item named `alias` holding the `len` rows of the parallel arrays `columns` (each
/// a typed placeholder such as `$1::uuid`, and its column name), plus `ord`, each row's place
/// in the batch from 1: the first elements for one row, none for none, `UNNEST` for more.
pub(crate) fn array_rows(len: usize, alias: &str, columns: &[(&str, &str)]) -> String {
    if !unnested(len) {
        let firsts: Vec<String> = columns
            .iter()
            .map(|(param, name)| format!("({param}[])[1] AS {name}"))
            .collect();
        let none = if len == 0 { " WHERE false" } else { "" };
        format!(
            "(SELECT {}, 1::bigint AS ord{none}) AS {alias}",
            firsts.join(", ")
        )
    } else {
        let params: Vec<String> = columns.iter().map(|(p, _)| format!("{p}[]")).collect();
        let names: Vec<&str> = columns.iter().map(|(_, n)| *n).collect();
        format!(
            "UNNEST({}) WITH ORDINALITY AS {alias}({}, ord)",
            params.join(", "),
            names.join(", ")
        )
    }
}

/// The right side of a membership test in the array `param` (a typed placeholder such as
/// `$1::uuid`) of `len` elements: `=` its first element for one, a test that is never true
/// for none, `= ANY(...)` for more.
pub(crate) fn in_array(len: usize, param: &str) -> String {
    match len {
        0 => format!("IN (SELECT ({param}[])[1] WHERE false)"),
        1 => format!("= ({param}[])[1]"),
        _ => format!("= ANY({param}[])"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_reads_the_first_elements_none_reads_nothing_and_many_unnest() {
        let cols = [("$1::uuid", "id"), ("$2::text", "kind")];
        assert_eq!(
            array_rows(1, "u", &cols),
            "(SELECT ($1::uuid[])[1] AS id, ($2::text[])[1] AS kind, 1::bigint AS ord) AS u"
        );
        assert_eq!(
            array_rows(0, "u", &cols),
            "(SELECT ($1::uuid[])[1] AS id, ($2::text[])[1] AS kind, 1::bigint AS ord \
             WHERE false) AS u"
        );
        assert_eq!(
            array_rows(2, "u", &cols),
            "UNNEST($1::uuid[], $2::text[]) WITH ORDINALITY AS u(id, kind, ord)"
        );
        assert_eq!(in_array(1, "$1::uuid"), "= ($1::uuid[])[1]");
        assert_eq!(
            in_array(0, "$1::uuid"),
            "IN (SELECT ($1::uuid[])[1] WHERE false)"
        );
        assert_eq!(in_array(2, "$1::uuid"), "= ANY($1::uuid[])");
    }
}

/// Against a real PostgreSQL: statements over a batch of one keep a generic plan.
#[cfg(test)]
mod plan_reuse {
    use std::time::Duration;

    use errand_core::throttle::{Limit, LimitScope, RateLimit};
    use errand_core::{QueueName, RetryPolicy};
    use errand_store::conformance::{complete_together, enqueue_ready};
    use errand_store::{
        ClaimTaker, ClaimedJob, JobClaimParams, JobClaimTogetherParams, JobSettleManyParams, Store,
    };

    use deadpool_postgres::Object;

    use crate::one_backend::{one_backend_store, report_statistics};
    use crate::PgStore;

    /// Statements of a claim of one on the planned path (a queue under limits) that bind
    /// arrays, by how their text starts. (Its lease by `id = ANY` and its bucket update over
    /// `UNNEST` keep a generic plan as they are.)
    const LIMITED_CLAIM_STATEMENTS: [&str; 2] = [
        "SELECT scope, name, concurrency",
        "SELECT errand_now(), CASE",
    ];

    /// Statements a single enqueue, claim and completion run, by how their text starts.
    const ONE_ROW_STATEMENTS: [&str; 5] = [
        "WITH f AS (SELECT (q.concurrency",
        "WITH new_queues AS",
        "WITH u AS (SELECT * FROM (SELECT",
        "WITH d AS (DELETE FROM job_deps",
        "INSERT INTO events",
    ];

    /// Enqueues one job of kind `k` on queue `default`.
    async fn insert_one(store: &PgStore) {
        enqueue_ready(store, "default", "k", 1).await;
    }

    /// Runs a dozen single enqueues, claims of one and completions on `store`, then checks
    /// that each statement in `statements` (by how its text starts) kept a generic plan.
    async fn cycle_and_check(store: &PgStore, statements: &[&str]) {
        for _ in 0..12 {
            let claimed = ready_and_claimed(store, 1).await;
            assert_eq!(complete_together(store, &claimed).await, 1);
        }
        assert_kept_generic(store, statements).await;
    }

    /// The generic and custom plans of the statement prepared on `store`'s one backend
    /// whose text holds `piece` (its start or a clause only it has).
    async fn plans_of(store: &PgStore, piece: &str) -> (i64, i64) {
        let client = store.client().await.expect("the store's backend");
        let rows = client
            .query(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements",
                &[],
            )
            .await
            .expect("prepared statements");
        rows.iter()
            .find(|r| r.get::<_, String>(0).contains(piece))
            .map(|r| (r.get(1), r.get(2)))
            .unwrap_or_else(|| panic!("no prepared statement holds {piece:?}"))
    }

    /// Checks that each statement in `statements` (by a piece of its text) kept a generic
    /// plan on `store`'s one backend.
    async fn assert_kept_generic(store: &PgStore, statements: &[&str]) {
        for piece in statements {
            let (generic, custom) = plans_of(store, piece).await;
            // PostgreSQL plans a statement's first five calls for their values, then keeps
            // the generic plan unless those looked cheaper.
            assert!(
                custom <= 5 && generic >= 1,
                "{piece:?}: {custom} custom plans, {generic} generic"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_of_one_is_not_planned_again_on_every_call() {
        let Some((_schema, store, held)) =
            one_backend_store("a_batch_of_one_is_not_planned_again").await
        else {
            return;
        };
        cycle_and_check(&store, &ONE_ROW_STATEMENTS).await;
        drop(held);
    }

    /// The same once the tables have statistics of thousands of jobs, as on any store
    /// autovacuum (or errand, as a table grows) has analyzed: a bound claim `LIMIT` made
    /// every plan for the value look cheaper than the generic one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_of_one_on_an_analyzed_store_is_not_planned_again_on_every_call() {
        let Some((_schema, store, held)) =
            one_backend_store("a_claim_of_one_on_an_analyzed_store").await
        else {
            return;
        };
        analyzed_backlog(&store, "waiting", "k").await;
        cycle_and_check(&store, &ONE_ROW_STATEMENTS).await;
        // The claim of one, by its written limit (other sizes are statements of their own).
        assert_kept_generic(&store, &["LIMIT 1 FOR UPDATE SKIP LOCKED"]).await;
        drop(held);
    }

    /// Enqueues 3,000 jobs of `kind` on `queue`, then analyzes the tables the claim and the
    /// settle read, on the store's one backend: an analyzed store with a backlog.
    async fn analyzed_backlog(store: &PgStore, queue: &str, kind: &str) {
        for _ in 0..6 {
            enqueue_ready(store, queue, kind, 500).await;
        }
        let client = store.client().await.expect("the store's backend");
        client
            .batch_execute("ANALYZE jobs; ANALYZE job_attempts; ANALYZE events")
            .await
            .expect("analyze");
    }

    /// Claims up to `max` jobs (of `kinds`, or any) from queue `default`.
    async fn claim_default(store: &PgStore, max: u32, kinds: &[&str]) -> Vec<ClaimedJob> {
        store
            .job_claim(JobClaimParams {
                queue: QueueName::parse("default").expect("queue"),
                worker: "w".into(),
                max,
                lease: Duration::from_secs(60),
                kinds: kinds
                    .iter()
                    .map(|k| errand_core::JobKind::parse(k).expect("kind"))
                    .collect(),
            })
            .await
            .expect("claim")
    }

    /// A claim of 16 on a queue that looks small beside another with a backlog keeps its
    /// generic plan too: left to itself, PostgreSQL went on planning it for its values.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_of_16_beside_a_backlog_keeps_its_plan() {
        let Some((_schema, store, held)) =
            one_backend_store("a_claim_of_16_beside_a_backlog").await
        else {
            return;
        };
        analyzed_backlog(&store, "busy", "k").await;
        for _ in 0..12 {
            insert_one(&store).await;
            claim_default(&store, 16, &[]).await;
        }
        assert_kept_generic(&store, &["LIMIT 16 FOR UPDATE SKIP LOCKED"]).await;
        drop(held);
    }

    /// A claim filtered by kind is planned for its kinds on every call, even on an analyzed
    /// store whose queue holds a backlog of other kinds: a generic plan cannot use the
    /// kinds, and walks the whole backlog looking for them. It shares its statement with the
    /// second rounds of large claims (a review's case: sixteen takers of a thousand), which
    /// keep a generic plan of their own ([`PlanMode::GenericByIndex`]): each kind's claim is
    /// still planned for its kinds, and each large round uses the kept plan.
    ///
    /// [`PlanMode::GenericByIndex`]: crate::plan_mode::PlanMode::GenericByIndex
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_by_kind_is_planned_for_its_kinds() {
        let Some((_schema, store, held)) =
            one_backend_store("a_claim_by_kind_is_planned_for_its_kinds").await
        else {
            return;
        };
        analyzed_backlog(&store, "default", "backlog").await;
        let takers = JobClaimTogetherParams {
            queue: QueueName::parse("default").expect("queue"),
            lease: Duration::from_secs(60),
            kinds: vec![],
            takers: (0..16)
                .map(|i| ClaimTaker {
                    worker: format!("w{i}"),
                    max: 1_000,
                })
                .collect(),
        };
        for _ in 0..6 {
            // More than a first round takes, so a second round binds its limit.
            for _ in 0..20 {
                insert_one(&store).await;
            }
            store
                .job_settle_and_claim_together(
                    JobSettleManyParams {
                        settlements: vec![],
                        retry_policy: RetryPolicy::default(),
                    },
                    takers.clone(),
                )
                .await
                .expect("claim together");
        }
        for _ in 0..12 {
            insert_one(&store).await;
            assert!(claim_default(&store, 1, &["other"]).await.is_empty());
        }
        let (generic, custom) = plans_of(&store, "LIMIT $5 FOR UPDATE SKIP LOCKED").await;
        assert_eq!(
            (generic, custom),
            (6, 12),
            "plans of the bound claims: the large rounds' and the kinds'"
        );
        drop(held);
    }

    /// How many sequential reads of `jobs` in `schema` PostgreSQL has counted, with the
    /// store's backend's pending statistics reported first; read on `held`.
    async fn sequential_reads_of_jobs(store: &PgStore, held: &Object, schema: &str) -> i64 {
        report_statistics(store).await;
        held.query_one(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'",
            &[&schema],
        )
        .await
        .expect("table statistics")
        .get(0)
    }

    /// A claim larger than its first round, on an analyzed store, looks the jobs it chose
    /// up by key: planned for its values (a `LIMIT` of 484 known), a hash join over a
    /// sequential read of all of `jobs` looked cheaper to PostgreSQL's default costs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_claim_looks_its_jobs_up_by_key() {
        let Some((schema, store, held)) =
            one_backend_store("a_large_claim_looks_its_jobs_up_by_key").await
        else {
            return;
        };
        // The claimed queue holds a sixth of the table.
        enqueue_ready(&store, "default", "k", 600).await;
        analyzed_backlog(&store, "other", "k").await;
        let before = sequential_reads_of_jobs(&store, &held, &schema.name).await;
        assert_eq!(claim_default(&store, 500, &[]).await.len(), 500);
        let after = sequential_reads_of_jobs(&store, &held, &schema.name).await;
        assert_eq!(after - before, 0, "sequential reads of jobs");
        drop(held);
    }

    /// A large claim's second round, whose `LIMIT` is bound, uses a kept generic plan
    /// instead of being planned for its values on every call (1.1 ms a bind at the median
    /// at the benchmark's schedule slots), and that plan does not read all of `jobs`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_claim_keeps_one_plan() {
        let Some((schema, store, held)) = one_backend_store("a_large_claim_keeps_one_plan").await
        else {
            return;
        };
        analyzed_backlog(&store, "other", "k").await;
        enqueue_ready(&store, "default", "k", 8 * 100).await;
        let before = sequential_reads_of_jobs(&store, &held, &schema.name).await;
        for _ in 0..8 {
            assert_eq!(claim_default(&store, 100, &[]).await.len(), 100);
        }
        let after = sequential_reads_of_jobs(&store, &held, &schema.name).await;
        assert_eq!(after - before, 0, "sequential reads of jobs");
        let (generic, custom) = plans_of(&store, "LIMIT $5 FOR UPDATE SKIP LOCKED").await;
        assert_eq!(
            (generic, custom),
            (8, 0),
            "the bound rounds' generic and custom plans"
        );
        drop(held);
    }

    /// Enqueues `n` jobs on queue `default` and claims them.
    async fn ready_and_claimed(store: &PgStore, n: u32) -> Vec<ClaimedJob> {
        enqueue_ready(store, "default", "k", n as usize).await;
        let claimed = claim_default(store, n, &[]).await;
        assert_eq!(claimed.len(), n as usize);
        claimed
    }

    /// A completion of 500 jobs under its generic plan (which takes the batch for 10 rows)
    /// reads the batch once: no scan of the batch or of the jobs it updated is repeated per
    /// job.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_completion_of_many_reads_its_batch_once() {
        let Some((_schema, store, held)) =
            one_backend_store("a_completion_of_many_reads_its_batch_once").await
        else {
            return;
        };
        // Statistics taken when most jobs had ended and none ran, as in service.
        for _ in 0..4 {
            let done = complete_together(&store, &ready_and_claimed(&store, 500).await).await;
            assert_eq!(done, 500);
        }
        // As errand's own housekeeping does (`planner_stats`).
        let client = store.client().await.expect("the store's backend");
        client.batch_execute("ANALYZE jobs").await.expect("analyze");
        drop(client);
        let claimed = ready_and_claimed(&store, 500).await;
        let array = |items: Vec<String>| format!("'{{{}}}'", items.join(","));
        let ids = array(claimed.iter().map(|c| c.job.id.0.to_string()).collect());
        let tokens = array(
            claimed
                .iter()
                .map(|c| c.lease_token.0.to_string())
                .collect(),
        );
        let nulls = array(vec!["NULL".to_string(); claimed.len()]);
        let client = store.client().await.expect("the store's backend");
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; \
                 PREPARE completion AS {}",
                crate::job_settle::complete_sql(claimed.len())
            ))
            .await
            .expect("prepare");
        let plan: Vec<String> = client
            .query(
                &format!(
                    "EXPLAIN (ANALYZE) \
                     EXECUTE completion({ids}, {tokens}, {nulls}, {nulls})"
                ),
                &[],
            )
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get(0))
            .collect();
        client.batch_execute("ROLLBACK").await.expect("rollback");
        // Any scan of the batch (`u`) or of the updated jobs (`done`), as a CTE or folded
        // into its reader, runs once.
        let rescans: Vec<&String> = plan
            .iter()
            .filter(|l| {
                (l.contains("Scan on u ") || l.contains("Scan on done ")) && !l.contains("loops=1)")
            })
            .collect();
        assert!(rescans.is_empty(), "{rescans:#?}\n{}", plan.join("\n"));
        assert!(plan.iter().any(|l| l.contains("rows=500 loops=1")));
        drop(held);
    }

    /// Enqueues and completions of several jobs in one call keep the generic plan of their
    /// statements over `UNNEST` and `= ANY`, on an analyzed store as on a new one: left to
    /// itself, PostgreSQL planned them for their values on every call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enqueues_and_completions_of_several_keep_their_plan() {
        let Some((_schema, store, held)) =
            one_backend_store("enqueues_and_completions_of_several_keep_their_plan").await
        else {
            return;
        };
        for round in 0..12 {
            if round == 6 {
                analyzed_backlog(&store, "waiting", "k").await;
            }
            let claimed = ready_and_claimed(&store, 3).await;
            assert_eq!(complete_together(&store, &claimed).await, 3);
        }
        for piece in [
            "SELECT DISTINCT unnest($3::text[])",
            "WITH u AS (SELECT * FROM UNNEST",
            "WITH d AS (DELETE FROM job_deps WHERE parent_id = ANY",
        ] {
            // (The backlog's enqueues share the enqueue's statement.)
            let (generic, custom) = plans_of(&store, piece).await;
            assert!(
                custom == 0 && generic >= 12,
                "{piece}: {custom} custom plans, {generic} generic"
            );
        }
        drop(held);
    }

    /// A queue's read (`GET /v1/queues/{queue}`, the autoscaling signal) keeps a generic
    /// plan: planned on every call it costs several times its execution.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_read_is_not_planned_again_on_every_call() {
        let Some((_schema, store, held)) =
            one_backend_store("a_queue_read_is_not_planned_again").await
        else {
            return;
        };
        insert_one(&store).await;
        let queue = QueueName::parse("default").expect("queue");
        for _ in 0..12 {
            let info = store.queue_get(&queue).await.expect("queue");
            assert_eq!(info.counts.available, 1);
        }
        // The one-queue form (all queues share its start but take no parameter).
        assert_kept_generic(&store, &[" WHERE q.name = $1"]).await;
        drop(held);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_of_one_under_limits_is_not_planned_again_on_every_call() {
        let Some((_schema, store, held)) =
            one_backend_store("a_claim_of_one_under_limits_is_not_planned_again").await
        else {
            return;
        };
        // A kind with a concurrency and a rate: claims take the planned path, which counts
        // the kind's running jobs and draws from its bucket.
        store
            .limit_put(Limit {
                scope: LimitScope::Kind,
                name: "k".into(),
                concurrency: Some(100),
                rate: Some(RateLimit {
                    limit: 1_000_000,
                    period_ms: 1_000,
                    burst: None,
                }),
            })
            .await
            .expect("limit");
        cycle_and_check(&store, &LIMITED_CLAIM_STATEMENTS).await;
        drop(held);
    }
}
