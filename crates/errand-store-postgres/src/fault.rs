//! Internal error plumbing: driver and pool errors become [`StoreError`]s here and nowhere
//! else.

use errand_store::StoreError;

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

/// Maps a driver error to the store's vocabulary, by the classification documented on
/// [`StoreError`] and shared with SQLite. Only a failure that asking again may cure is
/// `Unavailable` (503, "retry"): an SQL statement the server rejects is errand's bug and
/// fails the same way every time, so retrying it only hides it.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        // The driver's own text for a server error is just "db error": say what the server said.
        Some(db) => {
            let text = format!("{} ({})", db.message(), db.code().code());
            by_sqlstate(db.code().code(), text)
        }
        None if lost_connection(e) => StoreError::Unavailable(e.to_string()),
        // Parameters that do not serialise, a row count `query_one` did not expect, a
        // missing column: errand used the driver wrongly.
        None => StoreError::Internal(e.to_string()),
    }
}

/// Whether a driver error without a server code is the connection failing: the driver saw
/// it closed, or a socket read or write failed.
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Classifies a server error by its SQLSTATE (PostgreSQL's "Error Codes" appendix).
fn by_sqlstate(code: &str, text: String) -> StoreError {
    match code {
        // A deferred constraint that failed at commit: class 40 by number, 23 by meaning.
        "40002" => StoreError::ConstraintViolated(text),
        _ if transient(code) => StoreError::Unavailable(text),
        _ if code.starts_with("23") => StoreError::ConstraintViolated(text),
        // Text that cannot be stored as the type asked for (`\u0000` in `jsonb`): the
        // caller's input, refused before anything was kept, as SQLite's `Invalid`.
        "22P02" | "22P05" => StoreError::Invalid(text),
        // The server found a damaged page or index.
        "XX001" | "XX002" => StoreError::Corrupt(text),
        // SQL errand got wrong (42: syntax, undefined column, ...), a value out of range
        // for its column (the other 22s), a transaction misused (25): errand's bug.
        _ => StoreError::Internal(text),
    }
}

/// Whether a SQLSTATE says the server could not do the work right now rather than that the
/// work was wrong: asking again, later or on a new connection, may succeed.
fn transient(code: &str) -> bool {
    // 08 connection exception; 40 transaction rolled back by the server (serialization
    // failure, deadlock, completion unknown); 53 insufficient resources (disk full, out of
    // memory, too many connections); 58 a system or I/O error on the server.
    matches!(code.get(..2), Some("08" | "40" | "53" | "58"))
        // Operator intervention: shutdown, crash, restart, dropped database, idle timeout.
        || code.starts_with("57P")
        // A statement or lock timeout stopped the work, not a fault in it.
        || matches!(code, "57014" | "55P03")
        // A failover left the connection on a standby that refuses writes.
        || code == "25006"
}

/// Reading a column of a row the store selected. A column that does not decode into the
/// type the code expects is a bug in errand's SQL or a corrupt record, never a reason to
/// retry: it is `Corrupt`, as SQLite's decode errors are, not the `Internal` that
/// [`db_error`] gives a code-less driver error.
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

#[cfg(test)]
mod tests {
    //! The classification, fed with errors a real server and driver produce.

    use errand_store::StoreError;
    use tokio_postgres::{Client, NoTls};

    use super::db_error;

    /// A connection of its own, or `None` (after saying so) when no server is reachable.
    async fn client(test: &str) -> Option<Client> {
        // Reports the skip, or panics when the server is required.
        errand_testkit::PgSchema::create(test).await?;
        let client = errand_testkit::pg_connect(&errand_testkit::postgres_url())
            .await
            .expect("connect");
        Some(client)
    }

    /// What `sql` fails with, classified.
    async fn failure(client: &Client, sql: &str) -> StoreError {
        let e = client
            .batch_execute(sql)
            .await
            .expect_err("the statement fails");
        db_error(&e)
    }

    #[tokio::test]
    async fn sql_the_server_rejects_is_internal_not_a_retry() {
        let Some(c) = client("sql_the_server_rejects_is_internal_not_a_retry").await else {
            return;
        };
        for sql in [
            "SELEC 1",
            "SELECT no_such_column FROM pg_class",
            "SELECT * FROM no_such_table",
            // 22003, numeric value out of range.
            "SELECT 2147483647::int4 + 1",
        ] {
            let e = failure(&c, sql).await;
            assert!(matches!(e, StoreError::Internal(_)), "{sql}: {e:?}");
        }
    }

    #[tokio::test]
    async fn constraint_violations_are_constraint_violated() {
        let Some(c) = client("constraint_violations_are_constraint_violated").await else {
            return;
        };
        c.batch_execute(
            "CREATE TEMP TABLE p (id int PRIMARY KEY); \
             CREATE TEMP TABLE t (id int PRIMARY KEY, n int NOT NULL CHECK (n > 0), \
                 p int REFERENCES p (id)); \
             INSERT INTO t VALUES (1, 1, NULL)",
        )
        .await
        .expect("tables");
        for (what, sql) in [
            ("unique", "INSERT INTO t VALUES (1, 1, NULL)"),
            ("not null", "INSERT INTO t VALUES (2, NULL, NULL)"),
            ("check", "INSERT INTO t VALUES (3, -1, NULL)"),
            ("foreign key", "INSERT INTO t VALUES (4, 1, 99)"),
        ] {
            let e = failure(&c, sql).await;
            assert!(
                matches!(e, StoreError::ConstraintViolated(_)),
                "{what}: {e:?}"
            );
        }
    }

    #[tokio::test]
    async fn text_the_type_cannot_hold_is_invalid() {
        let Some(c) = client("text_the_type_cannot_hold_is_invalid").await else {
            return;
        };
        for sql in [r#"SELECT '"\u0000"'::jsonb"#, "SELECT 'x'::uuid"] {
            let e = failure(&c, sql).await;
            assert!(matches!(e, StoreError::Invalid(_)), "{sql}: {e:?}");
        }
    }

    #[tokio::test]
    async fn driver_errors_without_a_code_are_internal() {
        let Some(c) = client("driver_errors_without_a_code_are_internal").await else {
            return;
        };
        // `query_one` on no row.
        let e = c
            .query_one("SELECT 1 WHERE false", &[])
            .await
            .expect_err("no row");
        assert!(matches!(db_error(&e), StoreError::Internal(_)), "{e:?}");
        // A parameter the statement does not have.
        let e = c
            .query("SELECT 1", &[&1_i32])
            .await
            .expect_err("wrong parameter count");
        assert!(matches!(db_error(&e), StoreError::Internal(_)), "{e:?}");
        // A parameter of a type the column is not.
        let e = c
            .query("SELECT $1::int4", &[&"text"])
            .await
            .expect_err("wrong parameter type");
        assert!(matches!(db_error(&e), StoreError::Internal(_)), "{e:?}");
        // The connection is still fine: none of these was a reason to drop it.
        c.batch_execute("SELECT 1").await.expect("still connected");
    }

    #[tokio::test]
    async fn a_terminated_connection_is_unavailable() {
        let Some(c) = client("a_terminated_connection_is_unavailable").await else {
            return;
        };
        // The server ends this very session, as a restart or an operator would (57P01).
        let e = failure(&c, "SELECT pg_terminate_backend(pg_backend_pid())").await;
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        // Afterwards the driver knows the connection is closed: no code, not an I/O error.
        let e = failure(&c, "SELECT 1").await;
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_server_that_does_not_answer_is_unavailable() {
        // A port nothing listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let e =
            tokio_postgres::connect(&format!("postgres://postgres@127.0.0.1:{port}/test"), NoTls)
                .await
                .err()
                .expect("nothing listens");
        assert!(matches!(db_error(&e), StoreError::Unavailable(_)), "{e:?}");
    }
}
