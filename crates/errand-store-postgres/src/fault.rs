//! Internal error plumbing: driver and pool errors become [`StoreError`]s here and nowhere
//! else.

use errand_store::StoreError;
use tokio_postgres::error::SqlState;

/// An error inside a query function.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The driver failed.
    Db(tokio_postgres::Error),
    /// No connection could be had.
    Pool(String),
    /// A rule of the store said no.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(e: tokio_postgres::Error) -> Self {
        Fault::Db(e)
    }
}

impl From<deadpool_postgres::PoolError> for Fault {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Fault::Pool(e.to_string())
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Store(e)
    }
}

impl From<Fault> for StoreError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Store(e) => e,
            Fault::Pool(e) => StoreError::Unavailable(format!("no database connection: {e}")),
            Fault::Db(e) => db_error(&e),
        }
    }
}

/// Maps a driver error to the store's vocabulary.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    // The driver's own text for a server error is just "db error": say what the server said.
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::ConstraintViolated(text),
        Some(c)
            if *c == SqlState::INVALID_TEXT_REPRESENTATION
                || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
        {
            StoreError::Invalid(text)
        }
        _ => StoreError::Unavailable(text),
    }
}

/// Reading a column of a row the store selected. A column that does not decode into the
/// type the code expects is a bug in errand's SQL or a corrupt record, never a reason to
/// retry: it is `Corrupt`, as on SQLite, not the `Unavailable` a driver error would map to.
pub(crate) trait RowExt {
    /// The value of column `idx`.
    fn column<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> QResult<T>;
}

impl RowExt for tokio_postgres::Row {
    fn column<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, idx: usize) -> QResult<T> {
        self.try_get(idx).map_err(decode_error)
    }
}

/// A row that could not be read back: one classification on both stores.
fn decode_error(e: tokio_postgres::Error) -> Fault {
    corrupt(format!("cannot read a stored row: {e}"))
}

/// Shorthand for corrupt stored data.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault::Store(StoreError::Corrupt(what.to_string()))
}

/// Result of a query function.
pub(crate) type QResult<T> = Result<T, Fault>;
