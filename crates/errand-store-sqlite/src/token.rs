//! API tokens: what each token may do and the hash of its secret, never the secret.

use errand_core::time::{to_millis, to_timestamp};
use errand_core::{ApiToken, Millis, NewToken, QueueName, Scope, StoredToken, TokenId};
use errand_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::fault::{Fault, QResult};

const COLUMNS: &str = "id, name, secret_hash, scopes, queues, created_at, expires_at, \
                       last_used_at, revoked_at, sessions_ended_at";

fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// The refusal for a token that does not exist.
fn not_found(id: TokenId) -> Fault {
    Fault::Store(StoreError::NotFound {
        what: format!("token {id}"),
    })
}

/// Stored text of a list of names: a JSON array.
fn names_text<'a>(names: impl Iterator<Item = &'a str>) -> QResult<String> {
    serde_json::to_string(&names.collect::<Vec<_>>())
        .map_err(|e| Fault::Store(StoreError::Internal(format!("names as JSON: {e}"))))
}

fn names_of(text: &str, what: &str) -> QResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("token {what}: {e}")))
}

fn from_row(row: &Row<'_>) -> QResult<StoredToken> {
    let id: Vec<u8> = row.get(0)?;
    let hash: Vec<u8> = row.get(2)?;
    let scopes: String = row.get(3)?;
    let queues: String = row.get(4)?;
    let token = ApiToken {
        id: TokenId::from_slice(&id).ok_or_else(|| corrupt("token id is not 16 bytes"))?,
        name: row.get(1)?,
        scopes: names_of(&scopes, "scopes")?
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        queues: names_of(&queues, "queues")?
            .iter()
            .map(|q| QueueName::parse(q))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?,
        created_at: to_timestamp(row.get(5)?),
        expires_at: row.get::<_, Option<Millis>>(6)?.map(to_timestamp),
        last_used_at: row.get::<_, Option<Millis>>(7)?.map(to_timestamp),
        revoked_at: row.get::<_, Option<Millis>>(8)?.map(to_timestamp),
    };
    Ok(StoredToken {
        token,
        secret_hash: hash
            .try_into()
            .map_err(|_| corrupt("token secret hash is not 32 bytes"))?,
        sessions_ended_at: row.get::<_, Option<Millis>>(9)?.map(to_timestamp),
    })
}

/// Stores a new token, created now. `AlreadyExists` when its id is taken or a token not
/// revoked has its name.
pub(crate) fn create(conn: &Connection, now: Millis, new: &NewToken) -> QResult<ApiToken> {
    // Any uniqueness conflict (the id, or the name among tokens not revoked) inserts nothing;
    // which one it was is asked after, on the same writer, so nothing can change between.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO api_tokens (id, name, secret_hash, scopes, queues, created_at, \
                 expires_at, last_used_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            new.id.as_bytes().as_slice(),
            new.name,
            new.secret_hash.as_slice(),
            names_text(new.scopes.iter().map(|s| s.as_str()))?,
            names_text(new.queues.iter().map(QueueName::as_str))?,
            now,
            new.expires_at.map(to_millis),
        ])?;
    if inserted == 0 {
        let what = if find(conn, new.id)?.is_some() {
            format!("token {}", new.id)
        } else {
            format!("token {}", new.name)
        };
        return Err(Fault::Store(StoreError::AlreadyExists { what }));
    }
    Ok(get(conn, new.id)?.token)
}

fn find(conn: &Connection, id: TokenId) -> QResult<Option<StoredToken>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = ?1"))?
        .query_row([id.as_bytes().as_slice()], |row| Ok(from_row(row)))
        .optional()?
        .transpose()
}

/// One token with its secret's hash, revoked or not; `NotFound` when missing.
pub(crate) fn get(conn: &Connection, id: TokenId) -> QResult<StoredToken> {
    find(conn, id)?.ok_or_else(|| not_found(id))
}

/// Every token, revoked ones too, oldest first.
pub(crate) fn list(conn: &Connection) -> QResult<Vec<ApiToken>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?.token);
    }
    Ok(out)
}

/// Revokes a token now, or keeps the time it was first revoked; `NotFound` when missing.
pub(crate) fn revoke(conn: &Connection, now: Millis, id: TokenId) -> QResult<ApiToken> {
    let n = conn
        .prepare_cached(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        )?
        .execute(params![id.as_bytes().as_slice(), now])?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(get(conn, id)?.token)
}

/// Ends sessions up to `at` when it is later than what is stored; an unknown id changes
/// nothing.
pub(crate) fn end_sessions(conn: &Connection, id: TokenId, at: Millis) -> QResult<()> {
    raise(conn, "sessions_ended_at", id, at)
}

/// Records a use at `at` when it is later than the one stored; an unknown id changes nothing.
pub(crate) fn used(conn: &Connection, id: TokenId, at: Millis) -> QResult<()> {
    raise(conn, "last_used_at", id, at)
}

/// Sets time `column` (one of this module's names, never input) of token `id` to `at`
/// unless it already holds a later time: nodes reporting out of order never move it back.
fn raise(conn: &Connection, column: &'static str, id: TokenId, at: Millis) -> QResult<()> {
    conn.prepare_cached(&format!(
        "UPDATE api_tokens SET {column} = ?2 \
         WHERE id = ?1 AND ({column} IS NULL OR {column} < ?2)"
    ))?
    .execute(params![id.as_bytes().as_slice(), at])?;
    Ok(())
}
