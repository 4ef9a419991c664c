//! Whether each job definition is stopped, kept for every node and across restarts.

use errand_core::Millis;
use rusqlite::{params, Connection};

use crate::fault::QResult;

/// Records a definition's switch.
pub(crate) fn put(conn: &Connection, now: Millis, name: &str, stopped: bool) -> QResult<()> {
    conn.prepare_cached(
        "INSERT INTO definition_switches (name, stopped, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET stopped = excluded.stopped, updated_at = excluded.updated_at",
    )?
    .execute(params![name, stopped, now])?;
    Ok(())
}

/// Every switch by name.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<(String, bool)>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, stopped FROM definition_switches ORDER BY name")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
