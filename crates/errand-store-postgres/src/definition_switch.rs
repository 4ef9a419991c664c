//! Whether each job definition is stopped, kept for every node and across restarts.

use deadpool_postgres::GenericClient;

use crate::fault::{QResult, RowExt};

/// Records a definition's switch.
pub(crate) async fn put(client: &impl GenericClient, name: &str, stopped: bool) -> QResult<()> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO definition_switches (name, stopped, updated_at) VALUES ($1, $2, errand_now()) \
             ON CONFLICT (name) DO UPDATE SET stopped = EXCLUDED.stopped, updated_at = EXCLUDED.updated_at",
        )
        .await?;
    client.execute(&stmt, &[&name, &stopped]).await?;
    Ok(())
}

/// Every switch by name.
pub(crate) async fn list(client: &impl GenericClient) -> QResult<Vec<(String, bool)>> {
    let stmt = client
        .prepare_cached("SELECT name, stopped FROM definition_switches ORDER BY name")
        .await?;
    let rows = client.query(&stmt, &[]).await?;
    rows.iter()
        .map(|r| Ok((r.column(0)?, r.column(1)?)))
        .collect()
}
