//! Statements bound under a plan mode chosen for them rather than by PostgreSQL.
//!
//! PostgreSQL plans a prepared statement's first five calls for their values and then keeps
//! its generic plan only if that costs no more than those did. Two kinds of statement lose
//! that comparison every time and were planned again on every call, measured in the bind:
//! a claim whose `LIMIT` is bound (see `job_write::claim`; its generic plan is now made
//! with index walks only, [`PlanMode::GenericByIndex`]), and a statement over a batch's
//! rows as arrays (`UNNEST`, `= ANY`), whose length a plan for the values knows and the
//! generic plan guesses. The mode is set with `SET LOCAL` just before the statement and
//! reset just after it, pipelined with it in one round trip, so the transaction's other
//! statements plan as usual. It takes effect only inside a transaction block, which is
//! where every write of this store runs. It also holds for statements the statement's
//! triggers run (`errand_jobs_updated`, which has no joins and no parameters), and PL/pgSQL
//! keeps a trigger statement's plan for the session: a plan first made under a mode keeps
//! that mode's choices until it is made again. So the SQL that triggers on `jobs`,
//! `job_attempts` and `queues` run must stay free of joins and sorts a mode would steer.

use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::fault::QResult;

/// How PostgreSQL plans one call of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanMode {
    /// The generic plan, made once per connection and kept: for statements whose plan does
    /// not depend on their values.
    Generic,
    /// A plan made for the values of this call, joining rows by key (nested loops): for
    /// statements a kept plan would serve badly for some values, and that join the rows
    /// they chose to a large table. With a claim round's `LIMIT` of 500 known, PostgreSQL's
    /// default costs (which assume reads from disk, where the tables are cached) found a
    /// hash join over a sequential read of `jobs` cheaper than 500 lookups by key: on a
    /// table of 22,000 jobs it spent 9 ms building the hash, against 2.5 ms looking up.
    Custom,
    /// The generic plan, made on a connection's first call (and again after PostgreSQL drops
    /// it, as an `ANALYZE` of a table it reads does) with only index walks and lookups by key
    /// allowed (no sequential or bitmap reads, no sorts where an index gives the order, no
    /// hash or merge joins): for a statement whose `LIMIT` is bound, which a generic plan
    /// costs at a tenth of the table and could read that way. Planning such a statement
    /// for its values on every call ([`PlanMode::Custom`]) took 1.1 ms a bind at the median
    /// and up to 8 ms for the claims at the slots of 1,000 schedules on the busy benchmark
    /// machine (session 23's statement log).
    ///
    /// A plan kind switched off but unavoidable (the claim's window and its answer's order
    /// still sort) is costed at ten billion, past `jit_above_cost`, so the mode also turns
    /// JIT compilation off (as this store's connections do, `store.rs`): compiling the
    /// claim took about a second a call in `psql`.
    GenericByIndex,
}

// `PlanMode::statements` finds a mode's statements at its discriminant in `ALL`.
const _: () = {
    let mut i = 0;
    while i < PlanMode::ALL.len() {
        assert!(
            PlanMode::ALL[i] as usize == i,
            "PlanMode::ALL follows the declaration"
        );
        i += 1;
    }
};

impl PlanMode {
    /// The planner settings the mode changes, with the values it gives them.
    fn settings(self) -> &'static [(&'static str, &'static str)] {
        match self {
            PlanMode::Generic => &[("plan_cache_mode", "force_generic_plan")],
            PlanMode::Custom => &[
                ("plan_cache_mode", "force_custom_plan"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
            ],
            PlanMode::GenericByIndex => &[
                ("plan_cache_mode", "force_generic_plan"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
                ("enable_seqscan", "off"),
                ("enable_bitmapscan", "off"),
                ("enable_sort", "off"),
                ("jit", "off"),
            ],
        }
    }

    /// Every mode, in the order [`PlanMode::statements`] keeps their statements.
    const ALL: [PlanMode; 3] = [
        PlanMode::Generic,
        PlanMode::Custom,
        PlanMode::GenericByIndex,
    ];

    /// The statements that set the mode, and those that put what it changed back to the
    /// connection's defaults (`TO DEFAULT`: the server's settings and the connection's
    /// start-up options; this store never changes them for a whole session). Written once
    /// per process: a moded statement runs on every claim and batch.
    fn statements(self) -> (&'static str, &'static str) {
        static STATEMENTS: LazyLock<[(String, String); 3]> = LazyLock::new(|| {
            PlanMode::ALL.map(|mode| {
                let settings = mode.settings().iter();
                (
                    settings
                        .clone()
                        .map(|(name, value)| format!("SET LOCAL {name} = {value}; "))
                        .collect(),
                    settings
                        .map(|(name, _)| format!("SET LOCAL {name} TO DEFAULT; "))
                        .collect(),
                )
            })
        });
        let (set, reset) = &STATEMENTS[self as usize];
        (set, reset)
    }
}

/// Runs `stmt` with `params` under `mode`, in one round trip with the mode's set and reset.
pub(crate) async fn query_as(
    client: &impl GenericClient,
    mode: PlanMode,
    stmt: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> QResult<Vec<Row>> {
    // Sent together, in this order: PostgreSQL chooses the plan when the statement is
    // bound, under the mode set just before it. All three are always sent (a query that
    // fails before it is sent still leaves the reset to follow the set); the first error
    // is the one that tells, as a later statement of a failed transaction only says so.
    let (set, reset) = mode.statements();
    let (set, rows, reset) = futures_util::join!(
        client.batch_execute(set),
        client.query(stmt, params),
        client.batch_execute(reset),
    );
    set?;
    let rows = rows?;
    reset?;
    Ok(rows)
}

/// Runs `stmt`, written over a batch of `len` rows with [`crate::array_rows`], with
/// `params`: a batch of several under the generic plan. Over `UNNEST` or `= ANY` a plan
/// for the values knows the batch's length and always looked cheaper, so such statements
/// were planned on every call (a completion of a few jobs spent 484 µs a call binding, more
/// than it spent running, in the enqueue-to-start benchmark), and for a batch of 500 that
/// plan was a hash join over a sequential scan of `jobs` where the generic plan looks each
/// job up by its key. A batch of one or none is written so that PostgreSQL keeps the
/// generic plan by itself.
pub(crate) async fn query_batch(
    client: &impl GenericClient,
    len: usize,
    stmt: &Statement,
    params: &[&(dyn ToSql + Sync)],
) -> QResult<Vec<Row>> {
    if crate::array_rows::unnested(len) {
        query_as(client, PlanMode::Generic, stmt, params).await
    } else {
        Ok(client.query(stmt, params).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::{query_as, PlanMode};
    use crate::one_backend::one_backend_store;

    /// Under each mode the statement plans with the mode's settings, and the transaction's
    /// next statement with the connection's again. (The store's connections start with
    /// `jit` off, so for that one setting only the putting back is shown.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mode_holds_for_its_statement_only() {
        let Some((_schema, store, held)) =
            one_backend_store("a_mode_holds_for_its_statement_only").await
        else {
            return;
        };
        let mut client = store.client().await.expect("the store's backend");
        for mode in PlanMode::ALL {
            let tx = client.transaction().await.expect("begin");
            for (name, value) in mode.settings() {
                let show = tx
                    .prepare(&format!("SELECT current_setting('{name}')"))
                    .await
                    .expect("prepare");
                let before: String = tx.query_one(&show, &[]).await.expect("show").get(0);
                let during: String = query_as(&tx, mode, &show, &[])
                    .await
                    .expect("show under the mode")[0]
                    .get(0);
                let after: String = tx.query_one(&show, &[]).await.expect("show").get(0);
                assert_eq!(&during, value, "{mode:?}: {name} for its statement");
                assert_eq!(after, before, "{mode:?}: {name} after its statement");
            }
            tx.commit().await.expect("commit");
        }
        drop(held);
    }
}
