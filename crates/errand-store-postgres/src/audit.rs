//! The audit trail: appended in autocommit, read newest first by id.

use deadpool_postgres::GenericClient;
use errand_core::time::to_timestamp;
use errand_core::{AuditEntry, NewAuditEntry};
use errand_store::AuditListParams;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::fault::{QResult, RowExt};

const COLUMNS: &str = "id, at, actor, action, target, detail, origin";

fn from_row(row: &Row) -> QResult<AuditEntry> {
    Ok(AuditEntry {
        id: row.column(0)?,
        at: to_timestamp(row.column(1)?),
        actor: row.column(2)?,
        action: row.column(3)?,
        target: row.column(4)?,
        detail: row.column(5)?,
        origin: row.column(6)?,
    })
}

/// Appends an entry recorded now.
pub(crate) async fn append(
    client: &impl GenericClient,
    entry: &NewAuditEntry,
) -> QResult<AuditEntry> {
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO audit_log (at, actor, action, target, detail, origin) \
             VALUES (errand_now(), $1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        ))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &entry.actor,
                &entry.action,
                &entry.target,
                &entry.detail,
                &entry.origin,
            ],
        )
        .await?;
    from_row(&row)
}

/// A page newest first. Only the filters asked for are in the statement, so a filter by
/// actor or action walks its own index instead of the whole trail.
pub(crate) async fn list(
    client: &impl GenericClient,
    p: &AuditListParams,
) -> QResult<Vec<AuditEntry>> {
    let limit = i64::from(p.limit);
    let mut conditions = Vec::new();
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::new();
    for (column, value) in [("actor", &p.actor), ("action", &p.action)] {
        if let Some(v) = value {
            values.push(v);
            conditions.push(format!("{column} = ${}", values.len()));
        }
    }
    if let Some(before) = &p.before {
        values.push(before);
        conditions.push(format!("id < ${}", values.len()));
    }
    values.push(&limit);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {} ", conditions.join(" AND "))
    };
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_log {filter}ORDER BY id DESC LIMIT ${}",
            values.len()
        ))
        .await?;
    client
        .query(&stmt, &values)
        .await?
        .iter()
        .map(from_row)
        .collect()
}
