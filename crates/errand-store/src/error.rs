//! Errors a store reports. Driver errors never leak: each backend maps its own into these.

/// What went wrong in a store operation.
///
/// Both stores classify a database failure the same way, because the HTTP answer (and with
/// it whether clients retry) follows from the variant:
///
/// | failure | variant |
/// | --- | --- |
/// | the database cannot be reached or cannot do the work now: connection lost or refused, I/O error, disk full, out of memory, busy/locked, shutting down, serialization failure, deadlock, statement timeout | `Unavailable` |
/// | a uniqueness, NOT NULL, CHECK or foreign-key constraint | `ConstraintViolated` |
/// | input the database cannot store as asked (PostgreSQL 22P02, 22P05) | `Invalid` |
/// | a stored value that does not decode, a damaged page or index | `Corrupt` |
/// | anything else: SQL the database rejects, a value out of range, the driver used wrongly, a panic | `Internal` |
///
/// A retry cures only the first row; answering any other as `Unavailable` would turn a bug
/// into endless retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The job, queue or other record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `job 0190…`.
        what: String,
    },
    /// The operation does not fit the record's current state (cancel a finished job, retry
    /// a running one). Asking again changes nothing until the state changes.
    #[error("{0}")]
    WrongState(String),
    /// The record kept changing under the operation (other nodes' scheduler passes); asking
    /// again will likely succeed.
    #[error("{0}")]
    Contended(String),
    /// Creating a record whose name is taken (a schedule created twice).
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was to be created, e.g. `schedule nightly`.
        what: String,
    },
    /// The database refused a write for breaking a uniqueness or other constraint that the
    /// operation did not expect: a bug or an unhandled race, never a retryable condition.
    #[error("constraint violated: {0}")]
    ConstraintViolated(String),
    /// The lease token is not the job's current lease (it expired, or another worker holds
    /// the job now). Fencing: nothing was changed.
    #[error("lease lost: the lease token does not hold job {job}")]
    LeaseLost {
        /// The job the stale token named.
        job: String,
    },
    /// The input breaks a rule the store enforces.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The store cannot be reached or refused to work (disk full, connection lost). The
    /// operation may be retried; nothing half-done was kept.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back; a bug or a corrupted record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store hit a bug in errand while running the operation: it panicked, sent SQL the
    /// database rejects (a syntax error, an unknown column, a value out of range), or used
    /// the driver wrongly. The operation was rolled back; retrying the same request will
    /// most likely fail again.
    #[error("internal store error: {0}")]
    Internal(String),
    /// A compare-and-set write named a version the record no longer has (a session's state
    /// changed since the writer read it). Nothing was changed; read again and retry.
    #[error("version conflict: {what} is at version {current}, not {expected}")]
    VersionConflict {
        /// What was written, e.g. `session orders-42`.
        what: String,
        /// The version the writer expected.
        expected: u64,
        /// The version it has.
        current: u64,
    },
    /// A completion's result is longer than the server keeps (`max_result_bytes`): the
    /// engine failed the job for good instead of keeping a truncated result.
    #[error("result_too_large: the result is {bytes} bytes of JSON; max_result_bytes is {max}")]
    ResultTooLarge {
        /// The result's length.
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

impl StoreError {
    /// Whether this is a rule of the store refusing one operation (a stale lease, a missing
    /// record, a wrong state, bad input) while the database itself worked: such an error
    /// belongs to one entry of a batch, and the batch's other entries stand. Every other
    /// error (unavailable, a constraint, a corrupt record, a bug) is the database or errand
    /// failing, and fails the whole call: PostgreSQL cannot go on in a transaction after an
    /// error, and both stores must answer alike.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::NotFound { .. }
            | StoreError::WrongState(_)
            | StoreError::Contended(_)
            | StoreError::AlreadyExists { .. }
            | StoreError::LeaseLost { .. }
            | StoreError::Invalid(_)
            | StoreError::ResultTooLarge { .. }
            | StoreError::VersionConflict { .. } => true,
            StoreError::ConstraintViolated(_)
            | StoreError::Unavailable(_)
            | StoreError::Corrupt(_)
            | StoreError::Internal(_) => false,
        }
    }

    /// Shorthand for a missing job.
    pub fn job_not_found(id: impl std::fmt::Display) -> Self {
        StoreError::NotFound {
            what: format!("job {id}"),
        }
    }

    /// The conflict of retrying a job in a state that cannot be retried.
    pub fn not_retryable(id: impl std::fmt::Display, state: errand_core::JobState) -> Self {
        StoreError::WrongState(format!(
            "job {id} is {state}; only dead, cancelled or scheduled jobs can be retried"
        ))
    }

    /// The conflict of cancelling a finished job.
    pub fn already_finished(id: impl std::fmt::Display, state: errand_core::JobState) -> Self {
        StoreError::WrongState(format!("job {id} is already {state}"))
    }

    /// Shorthand for a missing queue.
    pub fn queue_not_found(name: impl std::fmt::Display) -> Self {
        StoreError::NotFound {
            what: format!("queue {name}"),
        }
    }
}
