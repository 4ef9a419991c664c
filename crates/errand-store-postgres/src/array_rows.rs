//! The rows of a batch passed as parallel array parameters, written so that a batch of one
//! keeps a cached plan.
//!
//! PostgreSQL estimates `UNNEST` of a parameter at 100 rows (and `= ANY` of one at several
//! values), so for a batch of one the generic plan of such a statement always looks dearer
//! than a custom plan for the values at hand, and the statement was planned again on every
//! call: 21 % of the machine's samples (about a quarter of PostgreSQL's) in the
//! 16-in-flight claim-1 cycle, where every batch is of one (`perf record -a`, 2026-12-05). Over the arrays' first elements the
//! generic plan costs what a custom one does, and PostgreSQL keeps it after its fifth call.
//! The parameters stay arrays either way, so the caller binds the same values.

/// A `FROM` item named `alias` holding the rows of the parallel arrays `columns` (each a
/// typed placeholder such as `$1::uuid`, and its column name), plus `ord`, each row's place
/// in the batch from 1: `UNNEST` for many rows, the first elements when `one`.
pub(crate) fn array_rows(one: bool, alias: &str, columns: &[(&str, &str)]) -> String {
    if one {
        let firsts: Vec<String> = columns
            .iter()
            .map(|(param, name)| format!("({param}[])[1] AS {name}"))
            .collect();
        format!(
            "(SELECT {}, 1::bigint AS ord) AS {alias}",
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
/// `$1::uuid`): `= ANY(...)` for many, `=` its first element when `one`.
pub(crate) fn in_array(one: bool, param: &str) -> String {
    if one {
        format!("= ({param}[])[1]")
    } else {
        format!("= ANY({param}[])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_reads_the_first_elements_and_many_unnest() {
        let cols = [("$1::uuid", "id"), ("$2::text", "kind")];
        assert_eq!(
            array_rows(true, "u", &cols),
            "(SELECT ($1::uuid[])[1] AS id, ($2::text[])[1] AS kind, 1::bigint AS ord) AS u"
        );
        assert_eq!(
            array_rows(false, "u", &cols),
            "UNNEST($1::uuid[], $2::text[]) WITH ORDINALITY AS u(id, kind, ord)"
        );
        assert_eq!(in_array(true, "$1::uuid"), "= ($1::uuid[])[1]");
        assert_eq!(in_array(false, "$1::uuid"), "= ANY($1::uuid[])");
    }
}

/// Against a real PostgreSQL: statements over a batch of one keep a generic plan.
#[cfg(test)]
mod plan_reuse {
    use std::time::Duration;

    use errand_core::{QueueName, RetryPolicy};
    use errand_store::conformance::new_job;
    use errand_store::{
        JobClaimParams, JobInsertManyParams, JobSettleManyParams, Settlement, Store,
    };

    use crate::one_backend::one_backend_store;

    /// Statements a single enqueue, claim and completion run, by how their text starts.
    const ONE_ROW_STATEMENTS: [&str; 4] = [
        "WITH new_queues AS",
        "WITH u AS (SELECT * FROM (SELECT",
        "WITH d AS (DELETE FROM job_deps",
        "INSERT INTO events",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_of_one_is_not_planned_again_on_every_call() {
        let Some((_schema, store, held)) =
            one_backend_store("a_batch_of_one_is_not_planned_again").await
        else {
            return;
        };
        for _ in 0..12 {
            store
                .job_insert_many(JobInsertManyParams {
                    jobs: vec![new_job("default", "k")],
                    idempotency_window: Duration::from_secs(60),
                })
                .await
                .expect("insert");
            let claimed = store
                .job_claim(JobClaimParams {
                    queue: QueueName::parse("default").expect("queue"),
                    worker: "w".into(),
                    max: 1,
                    lease: Duration::from_secs(60),
                    kinds: vec![],
                })
                .await
                .expect("claim");
            let job = claimed.first().expect("a claimed job");
            let settled = store
                .job_settle_many(JobSettleManyParams {
                    settlements: vec![Settlement::Complete {
                        id: job.job.id,
                        lease_token: job.lease_token,
                        result: None,
                        report: None,
                        session_state: Default::default(),
                    }],
                    retry_policy: RetryPolicy::default(),
                })
                .await
                .expect("settle");
            assert!(settled.iter().all(Result::is_ok), "{settled:?}");
        }
        let client = store.client().await.expect("the store's backend");
        let rows = client
            .query(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements",
                &[],
            )
            .await
            .expect("prepared statements");
        for start in ONE_ROW_STATEMENTS {
            let (generic, custom): (i64, i64) = rows
                .iter()
                .find(|r| r.get::<_, String>(0).starts_with(start))
                .map(|r| (r.get(1), r.get(2)))
                .unwrap_or_else(|| panic!("no prepared statement starts with {start:?}"));
            // PostgreSQL plans a statement's first five calls for their values, then keeps
            // the generic plan unless those looked cheaper.
            assert!(
                custom <= 5 && generic >= 1,
                "{start:?}: {custom} custom plans, {generic} generic"
            );
        }
        drop(held);
    }
}
