//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! All writes go through one write connection, group-committed by a writer thread:
//! concurrent enqueues, claims and completions gathered while the previous commit ran are
//! committed together in one transaction, and each caller is answered only once that commit
//! is on disk. A write with no other in flight is committed the same way by its caller's
//! own thread (see `writer`). Reads use a
//! small pool of read-only connections and never wait for the writer.
//!
//! Statements bind a row limit or offset as `LIMIT +?N` / `OFFSET +?N`, never `LIMIT ?N`:
//! SQLite plans with a bare bound limit's value and so prepares the statement again on
//! every run, which cost a claim more than the claim itself.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod batch;
mod claim;
mod definition_switch;
mod delivery_queue;
mod delivery_record;
mod event_log;
mod explain;
mod fairness;
mod fault;
mod file_watch;
mod flow;
mod flow_end;
mod gate;
mod instance;
mod job_log;
mod job_read;
mod job_row;
mod job_settle;
mod job_write;
mod limit;
mod maintenance;
mod mark;
mod named_lease;
mod node;
mod queue;
mod queue_row;
mod read_pool;
mod restore;
mod schedule;
mod schema;
mod session;
mod store;
mod subscription;
mod token;
mod transition;
mod wake;
mod worker;
mod workflow;
mod writer;

pub use store::{Durability, SqliteOptions, SqliteStore};

#[cfg(test)]
mod statement_rules {
    /// See the crate's documentation: a bare bound `LIMIT ?` makes SQLite prepare the
    /// statement again on every run (`claim::tests` shows it for the claim).
    #[test]
    fn no_statement_binds_a_bare_limit_or_offset() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&src).expect("src") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                if line.contains(concat!("LIMIT", " ?")) || line.contains(concat!("OFFSET", " ?")) {
                    found.push(format!("{}:{}", path.display(), n + 1));
                }
            }
        }
        assert!(found.is_empty(), "bare bound LIMIT/OFFSET at {found:?}");
    }
}
