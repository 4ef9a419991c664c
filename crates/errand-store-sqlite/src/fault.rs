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

/// Maps a driver error to the store's vocabulary, by the classification documented on
/// [`StoreError`] and shared with PostgreSQL. Only a failure that asking again may cure is
/// `Unavailable` (503, "retry"): SQL that SQLite rejects (`SQLITE_ERROR`: a syntax error, no
/// such column) is errand's bug and fails the same way every time.
pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(C::ConstraintViolation) => StoreError::ConstraintViolated(text),
        // The file, the disk or the lock, not the statement: busy or locked past the busy
        // timeout, an I/O error, a full disk, no memory, a file that cannot be opened or
        // written any more.
        Some(
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::DiskFull
            | C::OutOfMemory
            | C::CannotOpen
            | C::ReadOnly
            | C::PermissionDenied
            | C::FileLockingProtocolFailed
            | C::NoLargeFileSupport
            | C::OperationInterrupted,
        ) => StoreError::Unavailable(text),
        Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Corrupt(text),
        Some(_) => StoreError::Internal(text),
        None => match e {
            // A stored value that does not read back as the type errand asks for.
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(text),
            // The driver used wrongly: a parameter count, a row count, a column name.
            _ => StoreError::Internal(text),
        },
    }
}

/// Result of a query function.
pub(crate) type QResult<T> = Result<T, Fault>;

#[cfg(test)]
mod tests {
    //! The classification, fed with errors a real SQLite produces.

    use errand_store::StoreError;
    use rusqlite::Connection;

    use super::db_error;

    fn failure(conn: &Connection, sql: &str) -> StoreError {
        db_error(conn.execute_batch(sql).expect_err("the statement fails"))
    }

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n > 0)); \
             INSERT INTO t VALUES (1, 1)",
        )
        .expect("table");
        conn
    }

    #[test]
    fn sql_sqlite_rejects_is_internal_not_a_retry() {
        let c = conn();
        for sql in [
            "SELEC 1",
            "SELECT no_such_column FROM t",
            "SELECT * FROM no_such_table",
        ] {
            let e = failure(&c, sql);
            assert!(matches!(e, StoreError::Internal(_)), "{sql}: {e:?}");
        }
    }

    #[test]
    fn constraint_violations_are_constraint_violated() {
        let c = conn();
        for sql in [
            "INSERT INTO t VALUES (1, 1)",
            "INSERT INTO t VALUES (2, NULL)",
            "INSERT INTO t VALUES (3, -1)",
        ] {
            let e = failure(&c, sql);
            assert!(
                matches!(e, StoreError::ConstraintViolated(_)),
                "{sql}: {e:?}"
            );
        }
    }

    #[test]
    fn driver_errors_without_a_code_are_internal_and_decode_errors_corrupt() {
        let c = conn();
        let none = c
            .query_row("SELECT n FROM t WHERE id = 99", [], |r| r.get::<_, i64>(0))
            .expect_err("no row");
        assert!(matches!(db_error(none), StoreError::Internal(_)));
        let count = c
            .execute("SELECT 1", [1])
            .expect_err("wrong parameter count");
        assert!(matches!(db_error(count), StoreError::Internal(_)));
        let decode = c
            .query_row("SELECT 'text'", [], |r| r.get::<_, i64>(0))
            .expect_err("not an integer");
        assert!(matches!(db_error(decode), StoreError::Corrupt(_)));
    }

    #[test]
    fn a_busy_database_is_unavailable() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db");
        let holder = Connection::open(&path).expect("open");
        holder
            .execute_batch("CREATE TABLE t (n INTEGER); BEGIN IMMEDIATE")
            .expect("hold the write lock");
        let other = Connection::open(&path).expect("open");
        other
            .busy_timeout(std::time::Duration::ZERO)
            .expect("no waiting");
        let e = failure(&other, "BEGIN IMMEDIATE");
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
}
