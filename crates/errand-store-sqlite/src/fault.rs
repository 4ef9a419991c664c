//! Internal error plumbing: query functions see driver errors and store errors alike, and
//! only [`StoreError`] leaves the crate.

use errand_store::StoreError;

/// An error inside a query function.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The driver failed.
    Db(rusqlite::Error),
    /// A rule of the store said no.
    Store(StoreError),
}

impl From<rusqlite::Error> for Fault {
    fn from(e: rusqlite::Error) -> Self {
        Fault::Db(e)
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
            Fault::Db(e) => db_error(e),
        }
    }
}

/// Maps a driver error to the store's vocabulary.
pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::ConstraintViolated(e.to_string()),
        Some(_) => StoreError::Unavailable(e.to_string()),
        None => StoreError::Corrupt(e.to_string()),
    }
}

/// Result of a query function.
pub(crate) type QResult<T> = Result<T, Fault>;
