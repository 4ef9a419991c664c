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
//! triggers run (`errand_jobs_updated`, which has no joins and no parameters).

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
    /// The generic plan, made once per connection with only index walks and lookups by key
    /// allowed (no sequential or bitmap reads, no sorts where an index gives the order, no
    /// hash or merge joins): for a statement whose `LIMIT` is bound, which a generic plan
    /// costs at a tenth of the table and could read that way. Planning such a statement
    /// for its values on every call ([`PlanMode::Custom`]) took 1.5–6 ms a bind for a claim
    /// of 484 at a slot of 1,000 schedules on the busy machine (session 23's statement log).
    /// A plan kind switched off but unavoidable (a table with no index is still read
    /// sequentially) is costed at ten billion, past `jit_above_cost`: this store's
    /// connections run with `jit = off` (`store.rs`), without which compiling the claim
    /// took about a second a call in `psql`.
    GenericByIndex,
}

impl PlanMode {
    /// The statements that set the mode until [`RESET`].
    fn set(self) -> &'static str {
        match self {
            PlanMode::Generic => "SET LOCAL plan_cache_mode = force_generic_plan",
            PlanMode::Custom => {
                "SET LOCAL plan_cache_mode = force_custom_plan; \
                 SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
            }
            PlanMode::GenericByIndex => {
                "SET LOCAL plan_cache_mode = force_generic_plan; \
                 SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; \
                 SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
                 SET LOCAL enable_sort = off"
            }
        }
    }
}

/// Puts the transaction's planner settings back to the server's.
const RESET: &str = "SET LOCAL plan_cache_mode TO DEFAULT; \
     SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT; \
     SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT; \
     SET LOCAL enable_sort TO DEFAULT";

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
    let (set, rows, reset) = futures_util::join!(
        client.batch_execute(mode.set()),
        client.query(stmt, params),
        client.batch_execute(RESET),
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
