//! Named leases: one holder at a time, judged on the store's clock.

use errand_core::Millis;
use errand_store::LeaseAcquireParams;
use rusqlite::{params, Connection};

use crate::fault::QResult;

/// Takes the lease when it is free, expired or already the holder's; says whether it did.
pub(crate) fn acquire(conn: &Connection, now: Millis, p: &LeaseAcquireParams) -> QResult<bool> {
    let ttl = i64::try_from(p.ttl.as_millis()).unwrap_or(i64::MAX);
    let n = conn
        .prepare_cached(
            "INSERT INTO named_leases (name, holder, expires_at) VALUES (?1, ?2, ?3 + ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE named_leases.holder = excluded.holder OR named_leases.expires_at <= ?3",
        )?
        .execute(params![p.name, p.holder, now, ttl])?;
    Ok(n == 1)
}

/// Gives the lease up when `holder` has it.
pub(crate) fn release(conn: &Connection, name: &str, holder: &str) -> QResult<()> {
    conn.prepare_cached("DELETE FROM named_leases WHERE name = ?1 AND holder = ?2")?
        .execute(params![name, holder])?;
    Ok(())
}
