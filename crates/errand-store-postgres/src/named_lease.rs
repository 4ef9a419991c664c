//! Named leases: one holder at a time, judged on the database clock.

use deadpool_postgres::GenericClient;
use errand_store::LeaseAcquireParams;

use crate::fault::QResult;
use crate::job_row::millis;

/// Takes the lease when it is free, expired or already the holder's; says whether it did.
/// One statement: two nodes asking at once are ordered by the row lock, and the second sees
/// the first's holder.
pub(crate) async fn acquire(client: &impl GenericClient, p: &LeaseAcquireParams) -> QResult<bool> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO named_leases (name, holder, expires_at) VALUES ($1, $2, errand_now() + $3) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
             WHERE named_leases.holder = EXCLUDED.holder OR named_leases.expires_at <= errand_now()",
        )
        .await?;
    let n = client
        .execute(&stmt, &[&p.name, &p.holder, &millis(p.ttl)])
        .await?;
    Ok(n == 1)
}

/// Gives the lease up when `holder` has it.
pub(crate) async fn release(client: &impl GenericClient, name: &str, holder: &str) -> QResult<()> {
    let stmt = client
        .prepare_cached("DELETE FROM named_leases WHERE name = $1 AND holder = $2")
        .await?;
    client.execute(&stmt, &[&name, &holder]).await?;
    Ok(())
}
