//! Ordered sessions: reading a session (head, length, state), compare-and-set of its
//! state, state written by a completing head, and moving a blocked session on.

use errand_core::ordering::Gate;
use errand_core::session::{Session, MAX_SESSION_STATE_BYTES};
use errand_core::time::to_timestamp;
use errand_core::{JobId, LeaseToken, Millis};
use errand_store::{SessionListParams, SessionStatePutParams, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::fault::{Fault, QResult};
use crate::gate::{self, id_of};

fn not_found(key: &str) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("session {key}"),
    })
}

/// The state as stored text, refused when it is too big.
fn state_text(v: &Value) -> QResult<String> {
    let text = v.to_string();
    if text.len() > MAX_SESSION_STATE_BYTES {
        return Err(Fault::Store(StoreError::Invalid(format!(
            "session state is {} bytes of JSON; at most {MAX_SESSION_STATE_BYTES}",
            text.len()
        ))));
    }
    Ok(text)
}

/// Checks, before a completion writes anything, that it may set session state: the state
/// is small enough and the job (if its lease still holds) is a session job.
pub(crate) fn check_state(
    id: JobId,
    v: &Value,
    conn: &Connection,
    now: Millis,
    token: LeaseToken,
) -> QResult<String> {
    let text = state_text(v)?;
    let gate: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT gate FROM jobs WHERE id = ?2 AND state = 'running' AND lease_token = ?3 \
             AND lease_expires_at > ?1",
        )?
        .query_row(
            params![now, id.as_bytes().as_slice(), token.as_bytes().as_slice()],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(g) = gate {
        if g.as_deref().and_then(Gate::session_key_of).is_none() {
            return Err(Fault::Store(StoreError::Invalid(format!(
                "job {id} has no session_key"
            ))));
        }
    }
    Ok(text)
}

/// Sets a session's state (the next version), creating the row when missing.
pub(crate) fn write_state(conn: &Connection, now: Millis, key: &str, text: &str) -> QResult<()> {
    conn.prepare_cached(
        "INSERT INTO gates (name, capacity, state, version, updated_at) VALUES (?1, 1, ?2, 1, ?3) \
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, version = version + 1, \
         updated_at = excluded.updated_at",
    )?
    .execute(params![Gate::session_name(key), text, now])?;
    Ok(())
}

const COLUMNS: &str = "name, blocked_by, state, version, updated_at";

fn from_row(conn: &Connection, row: &Row<'_>) -> QResult<Session> {
    let name: String = row.get(0)?;
    let key = Gate::session_key_of(&name)
        .ok_or_else(|| Fault::Store(StoreError::Corrupt(format!("`{name}` is not a session"))))?
        .to_string();
    let blocked_by = id_of(row.get(1)?)?;
    let state: Option<String> = row.get(2)?;
    let state = match state {
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("session state: {e}"))))?,
        None => Value::Null,
    };
    let version: i64 = row.get(3)?;
    let updated_at: Millis = row.get(4)?;
    let length: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM jobs INDEXED BY jobs_gate WHERE gate = ?1 \
             AND state IN ('available', 'scheduled', 'running')",
        )?
        .query_row([&name], |r| r.get(0))?;
    let head = match blocked_by {
        Some(id) => Some(id),
        None => id_of(
            conn.prepare_cached(
                "SELECT id FROM jobs INDEXED BY jobs_gate WHERE gate = ?1 \
                 AND state IN ('available', 'scheduled', 'running') ORDER BY parked, gate_seq LIMIT 1",
            )?
            .query_row([&name], |r| r.get(0))
            .optional()?,
        )?,
    };
    Ok(Session {
        key,
        state,
        version: version.max(0) as u64,
        head,
        length: length.max(0) as u64,
        blocked_by,
        updated_at: to_timestamp(updated_at),
    })
}

/// Reads one session, if any job named it or its state was set.
pub(crate) fn find(conn: &Connection, key: &str) -> QResult<Option<Session>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM gates WHERE name = ?1"))?;
    let mut rows = stmt.query([Gate::session_name(key)])?;
    match rows.next()? {
        Some(row) => from_row(conn, row).map(Some),
        None => Ok(None),
    }
}

/// One session; `NotFound` when no job named it and no state was set.
pub(crate) fn get(conn: &Connection, key: &str) -> QResult<Session> {
    find(conn, key)?.ok_or_else(|| not_found(key))
}

/// A page of sessions by key.
pub(crate) fn list(conn: &Connection, p: &SessionListParams) -> QResult<Vec<Session>> {
    // Session names sort between `session:` and `session;` (`;` follows `:`).
    let from = Gate::session_name(p.after.as_deref().unwrap_or(""));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM gates WHERE name > ?1 AND name < 'session;' \
         AND (?2 IS NULL OR (blocked_by IS NOT NULL) = ?2) ORDER BY name LIMIT +?3"
    ))?;
    let mut rows = stmt.query(params![from, p.blocked, p.limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(conn, row)?);
    }
    Ok(out)
}

/// Compare-and-set of a session's state on its version.
pub(crate) fn state_put(
    conn: &Connection,
    now: Millis,
    p: &SessionStatePutParams,
) -> QResult<Session> {
    let text = state_text(&p.state)?;
    let name = Gate::session_name(&p.key);
    let current: Option<i64> = conn
        .prepare_cached("SELECT version FROM gates WHERE name = ?1")?
        .query_row([&name], |r| r.get(0))
        .optional()?;
    let current = current.map_or(0, |v| v.max(0) as u64);
    if current != p.expected_version {
        return Err(Fault::Store(StoreError::VersionConflict {
            what: format!("session {}", p.key),
            expected: p.expected_version,
            current,
        }));
    }
    write_state(conn, now, &p.key, &text)?;
    get(conn, &p.key)
}

/// Moves a session past the dead job blocking it: its next job gets its turn.
pub(crate) fn unblock(conn: &Connection, now: Millis, key: &str) -> QResult<Session> {
    let name = Gate::session_name(key);
    let blocked: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT blocked_by FROM gates WHERE name = ?1")?
        .query_row([&name], |r| r.get(0))
        .optional()?;
    match blocked {
        None => return Err(not_found(key)),
        Some(None) => {
            return Err(Fault::Store(StoreError::WrongState(format!(
                "session {key} is not blocked"
            ))))
        }
        Some(Some(_)) => {}
    }
    conn.prepare_cached("UPDATE gates SET blocked_by = NULL, updated_at = ?2 WHERE name = ?1")?
        .execute(params![name, now])?;
    gate::admit_next(conn, now, &name)?;
    get(conn, key)
}
