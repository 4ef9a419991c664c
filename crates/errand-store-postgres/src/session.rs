//! Sessions: the `session:K` gate rows read as sessions (head, length, state, version),
//! compare-and-set of their state, unblocking, and the state a claim hands its jobs.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use errand_core::ordering::Gate;
use errand_core::session::{Session, SessionState, MAX_SESSION_STATE_BYTES};
use errand_core::time::to_timestamp;
use errand_core::{Job, JobId};
use errand_store::{SessionListParams, SessionStatePutParams, StoreError};
use serde_json::Value;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};
use crate::gate;

const COLUMNS: &str = "g.name, g.state, g.version, g.blocked_by, g.updated_at, \
     COALESCE(g.blocked_by, (SELECT id FROM jobs WHERE gate = g.name \
         AND state IN ('available', 'scheduled', 'running') ORDER BY gate_seq LIMIT 1)), \
     (SELECT COUNT(*) FROM jobs WHERE gate = g.name AND state IN ('available', 'scheduled', 'running'))";

fn session_from_row(row: &Row) -> QResult<Session> {
    let name: String = row.column(0)?;
    let key = Gate::session_key_of(&name)
        .ok_or_else(|| corrupt(format!("gate {name} is not a session")))?
        .to_string();
    let length: i64 = row.column(6)?;
    Ok(Session {
        key,
        state: row.column::<Option<Value>>(1)?.unwrap_or(Value::Null),
        version: row.column::<i64>(2)?.max(0) as u64,
        blocked_by: row.column::<Option<uuid::Uuid>>(3)?.map(JobId),
        updated_at: to_timestamp(row.column(4)?),
        head: row.column::<Option<uuid::Uuid>>(5)?.map(JobId),
        length: length.max(0) as u64,
    })
}

fn not_found(key: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("session {key}"),
    })
}

/// One session.
pub(crate) async fn get(client: &impl GenericClient, key: &str) -> QResult<Session> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM gates g WHERE g.name = $1"))
        .await?;
    let row = client
        .query_opt(&stmt, &[&Gate::session_name(key)])
        .await?
        .ok_or_else(|| not_found(key))?;
    session_from_row(&row)
}

/// Sessions by key after the cursor, optionally only blocked (or unblocked) ones.
pub(crate) async fn list(
    client: &impl GenericClient,
    p: &SessionListParams,
) -> QResult<Vec<Session>> {
    // Keys in byte order whatever the database's collation (as SQLite orders them).
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM gates g WHERE starts_with(g.name, 'session:') \
             AND ($1::text IS NULL OR g.name COLLATE \"C\" > $1) \
             AND ($2::bool IS NULL OR (g.blocked_by IS NOT NULL) = $2) \
             ORDER BY g.name COLLATE \"C\" LIMIT $3"
        ))
        .await?;
    let after = p.after.as_deref().map(Gate::session_name);
    client
        .query(&stmt, &[&after, &p.blocked, &i64::from(p.limit)])
        .await?
        .iter()
        .map(session_from_row)
        .collect()
}

/// Refuses a state larger than a session may keep.
pub(crate) fn check_size(state: &Value) -> QResult<()> {
    let n = serde_json::to_vec(state)
        .map_err(|e| Fault::Store(StoreError::Invalid(e.to_string())))?
        .len();
    if n > MAX_SESSION_STATE_BYTES {
        return Err(Fault::Store(StoreError::Invalid(format!(
            "session state is {n} bytes; at most {MAX_SESSION_STATE_BYTES}"
        ))));
    }
    Ok(())
}

/// Compare-and-set of a session's state: `expected_version` 0 creates a missing session.
pub(crate) async fn state_put(
    client: &impl GenericClient,
    p: &SessionStatePutParams,
) -> QResult<Session> {
    check_size(&p.state)?;
    let name = Gate::session_name(&p.key);
    let expected = i64::try_from(p.expected_version).unwrap_or(i64::MAX);
    let conflict = |current: i64| {
        Fault::Store(StoreError::VersionConflict {
            what: format!("session {}", p.key),
            expected: p.expected_version,
            current: current.max(0) as u64,
        })
    };
    let lock = client
        .prepare_cached("SELECT version FROM gates WHERE name = $1 FOR UPDATE")
        .await?;
    match client.query_opt(&lock, &[&name]).await? {
        Some(row) => {
            let current: i64 = row.column(0)?;
            if current != expected {
                return Err(conflict(current));
            }
            let stmt = client
                .prepare_cached(
                    "UPDATE gates SET state = $2, version = version + 1, updated_at = errand_now() \
                     WHERE name = $1",
                )
                .await?;
            client.execute(&stmt, &[&name, &p.state]).await?;
        }
        None if expected == 0 => {
            if !create_with_state(client, &name, &p.state).await? {
                return Err(conflict(1));
            }
        }
        None => return Err(conflict(0)),
    }
    get(client, &p.key).await
}

/// Creates session row `name` with `state` at version 1; false when it appeared meanwhile.
pub(crate) async fn create_with_state(
    client: &impl GenericClient,
    name: &str,
    state: &Value,
) -> QResult<bool> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO gates (name, capacity, state, version, updated_at) \
             VALUES ($1, 1, $2, 1, errand_now()) ON CONFLICT DO NOTHING",
        )
        .await?;
    Ok(client.execute(&stmt, &[&name, state]).await? == 1)
}

/// Lifts the block a dead job left on a session and admits its next job.
pub(crate) async fn unblock(client: &impl GenericClient, key: &str) -> QResult<Session> {
    let name = Gate::session_name(key);
    let lock = client
        .prepare_cached("SELECT blocked_by IS NOT NULL FROM gates WHERE name = $1 FOR UPDATE")
        .await?;
    let was_blocked: bool = client
        .query_opt(&lock, &[&name])
        .await?
        .ok_or_else(|| not_found(key))?
        .column(0)?;
    if !was_blocked {
        return Err(Fault::Store(StoreError::WrongState(format!(
            "session {key} is not blocked"
        ))));
    }
    let clear = client
        .prepare_cached(
            "UPDATE gates SET blocked_by = NULL, updated_at = errand_now() WHERE name = $1",
        )
        .await?;
    client.execute(&clear, &[&name]).await?;
    gate::admit_next(client, &name, true).await?;
    get(client, key).await
}

/// The states of the sessions of claimed `jobs`, by session key (one statement, none when
/// no job has a session).
pub(crate) async fn states_for(
    client: &impl GenericClient,
    jobs: &[Job],
) -> QResult<HashMap<String, SessionState>> {
    let names: Vec<String> = jobs
        .iter()
        .filter_map(|j| j.ordering.session_key.as_deref())
        .map(Gate::session_name)
        .collect();
    let mut out = HashMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let stmt = client
        .prepare_cached("SELECT name, state, version FROM gates WHERE name = ANY($1)")
        .await?;
    for row in client.query(&stmt, &[&names]).await? {
        let name: String = row.column(0)?;
        if let Some(key) = Gate::session_key_of(&name) {
            out.insert(
                key.to_string(),
                SessionState {
                    key: key.to_string(),
                    state: row.column::<Option<Value>>(1)?.unwrap_or(Value::Null),
                    version: row.column::<i64>(2)?.max(0) as u64,
                },
            );
        }
    }
    Ok(out)
}
