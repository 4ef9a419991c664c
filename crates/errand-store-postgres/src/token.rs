//! API tokens: what each token may do and the hash of its secret, never the secret.

use deadpool_postgres::GenericClient;
use errand_core::time::{to_millis, to_timestamp};
use errand_core::{ApiToken, Millis, NewToken, QueueName, Scope, StoredToken, TokenId};
use errand_store::StoreError;
use tokio_postgres::Row;

use crate::fault::{corrupt, Fault, QResult, RowExt};

const COLUMNS: &str = "id, name, secret_hash, scopes, queues, created_at, expires_at, \
                       last_used_at, revoked_at, sessions_ended_at";

/// The refusal for a token that does not exist.
fn not_found(id: TokenId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("token {id}"),
    })
}

fn from_row(row: &Row) -> QResult<StoredToken> {
    let hash: Vec<u8> = row.column(2)?;
    let scopes: Vec<String> = row.column(3)?;
    let queues: Vec<String> = row.column(4)?;
    let token = ApiToken {
        id: TokenId(row.column(0)?),
        name: row.column(1)?,
        scopes: scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        queues: queues
            .iter()
            .map(|q| QueueName::parse(q))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        created_at: to_timestamp(row.column(5)?),
        expires_at: row.column::<Option<Millis>>(6)?.map(to_timestamp),
        last_used_at: row.column::<Option<Millis>>(7)?.map(to_timestamp),
        revoked_at: row.column::<Option<Millis>>(8)?.map(to_timestamp),
    };
    Ok(StoredToken {
        token,
        secret_hash: hash
            .try_into()
            .map_err(|_| corrupt("token secret hash is not 32 bytes"))?,
        sessions_ended_at: row.column::<Option<Millis>>(9)?.map(to_timestamp),
    })
}

/// Stores a new token, created now. `AlreadyExists` when its id is taken or a token not
/// revoked has its name.
pub(crate) async fn create(client: &impl GenericClient, new: &NewToken) -> QResult<ApiToken> {
    // Any uniqueness conflict (the id, or the name among tokens not revoked) inserts
    // nothing; a racing insert of the same name is waited for, then conflicts.
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO api_tokens (id, name, secret_hash, scopes, queues, created_at, \
                 expires_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, errand_now(), $6, NULL, NULL) \
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
        ))
        .await?;
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    let queues: Vec<&str> = new.queues.iter().map(QueueName::as_str).collect();
    let row = client
        .query_opt(
            &stmt,
            &[
                &new.id.0,
                &new.name,
                &new.secret_hash.as_slice(),
                &scopes,
                &queues,
                &new.expires_at.map(to_millis),
            ],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)?.token),
        None => {
            let what = if find(client, new.id).await?.is_some() {
                format!("token {}", new.id)
            } else {
                format!("token {}", new.name)
            };
            Err(Fault::Store(StoreError::AlreadyExists { what }))
        }
    }
}

async fn find(client: &impl GenericClient, id: TokenId) -> QResult<Option<StoredToken>> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .await?;
    client
        .query_opt(&stmt, &[&id.0])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// One token with its secret's hash, revoked or not; `NotFound` when missing.
pub(crate) async fn get(client: &impl GenericClient, id: TokenId) -> QResult<StoredToken> {
    find(client, id).await?.ok_or_else(|| not_found(id))
}

/// Every token, revoked ones too, oldest first.
pub(crate) async fn list(client: &impl GenericClient) -> QResult<Vec<ApiToken>> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))
        .await?;
    client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(|row| Ok(from_row(row)?.token))
        .collect()
}

/// Revokes a token now, or keeps the time it was first revoked; `NotFound` when missing.
pub(crate) async fn revoke(client: &impl GenericClient, id: TokenId) -> QResult<ApiToken> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, errand_now()) \
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .await?;
    match client.query_opt(&stmt, &[&id.0]).await? {
        Some(row) => Ok(from_row(&row)?.token),
        None => Err(not_found(id)),
    }
}

/// Ends sessions up to `at` when it is later than what is stored; an unknown id changes
/// nothing.
pub(crate) async fn end_sessions(
    client: &impl GenericClient,
    id: TokenId,
    at: Millis,
) -> QResult<()> {
    raise(client, "sessions_ended_at", id, at).await
}

/// Records a use at `at` when it is later than the one stored; an unknown id changes nothing.
pub(crate) async fn used(client: &impl GenericClient, id: TokenId, at: Millis) -> QResult<()> {
    raise(client, "last_used_at", id, at).await
}

/// Sets time `column` (one of this module's names, never input) of token `id` to `at`
/// unless it already holds a later time: nodes reporting out of order never move it back.
async fn raise(
    client: &impl GenericClient,
    column: &'static str,
    id: TokenId,
    at: Millis,
) -> QResult<()> {
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE api_tokens SET {column} = $2 \
             WHERE id = $1 AND ({column} IS NULL OR {column} < $2)"
        ))
        .await?;
    client.execute(&stmt, &[&id.0, &at]).await?;
    Ok(())
}
