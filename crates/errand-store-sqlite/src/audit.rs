//! The audit trail: appended by the writer, so an entry's row id is the order it was
//! recorded in; read newest first by id.

use errand_core::time::to_timestamp;
use errand_core::{AuditEntry, Millis, NewAuditEntry};
use errand_store::{AuditListParams, StoreError};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::fault::{Fault, QResult};

const COLUMNS: &str = "id, at, actor, action, target, detail, origin";

fn from_row(row: &Row<'_>) -> QResult<AuditEntry> {
    let detail: String = row.get(5)?;
    Ok(AuditEntry {
        id: row.get(0)?,
        at: to_timestamp(row.get(1)?),
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| Fault::Store(StoreError::Corrupt(format!("audit detail: {e}"))))?,
        origin: row.get(6)?,
    })
}

/// Appends an entry recorded now.
pub(crate) fn append(conn: &Connection, now: Millis, entry: NewAuditEntry) -> QResult<AuditEntry> {
    let detail = serde_json::to_string(&entry.detail)
        .map_err(|e| Fault::Store(StoreError::Invalid(format!("audit detail: {e}"))))?;
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target, detail, origin) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        now,
        entry.actor,
        entry.action,
        entry.target,
        detail,
        entry.origin
    ])?;
    Ok(AuditEntry {
        id: conn.last_insert_rowid(),
        at: to_timestamp(now),
        actor: entry.actor,
        action: entry.action,
        target: entry.target,
        detail: entry.detail,
        origin: entry.origin,
    })
}

/// A page newest first. Only the filters asked for are in the statement, so a filter by
/// actor or action walks its own index instead of the whole trail.
pub(crate) fn list(conn: &Connection, p: &AuditListParams) -> QResult<Vec<AuditEntry>> {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for (column, value) in [("actor", &p.actor), ("action", &p.action)] {
        if let Some(v) = value {
            values.push(Value::Text(v.clone()));
            conditions.push(format!("{column} = ?{}", values.len()));
        }
    }
    if let Some(before) = p.before {
        values.push(Value::Integer(before));
        conditions.push(format!("id < ?{}", values.len()));
    }
    values.push(Value::Integer(i64::from(p.limit)));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log {filter}ORDER BY id DESC LIMIT +?{}",
        values.len()
    ))?;
    let mut rows = stmt.query(params_from_iter(values))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?);
    }
    Ok(out)
}
