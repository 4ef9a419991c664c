-- How a hosted process ended and what it used (JSON), per attempt.
ALTER TABLE job_attempts ADD COLUMN report TEXT;

-- Lines hosted runs printed, per owner (a job, or a continuous instance) and attempt.
CREATE TABLE job_logs (
    owner    BLOB NOT NULL,
    attempt  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    stream   TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (owner, attempt, seq)
) WITHOUT ROWID;
-- Instance logs are pruned by age.
CREATE INDEX job_logs_at ON job_logs (at);

-- A job's lines go with it, whichever path deletes it (retention, dead purge), in the same
-- transaction.
CREATE TRIGGER job_logs_with_job AFTER DELETE ON jobs BEGIN
    DELETE FROM job_logs WHERE owner = OLD.id;
END;

-- Named leases: one holder at a time until expires_at (store clock).
CREATE TABLE named_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Continuous instances of every node.
CREATE TABLE instances (
    node          BLOB NOT NULL,
    instance      BLOB NOT NULL,
    definition    TEXT NOT NULL,
    pid           INTEGER,
    state         TEXT NOT NULL,
    since         INTEGER NOT NULL,
    restarts      INTEGER NOT NULL,
    last_exit     TEXT,
    last_exit_at  INTEGER,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (node, instance)
) WITHOUT ROWID;
CREATE INDEX instances_definition ON instances (definition);

-- Whether a job definition is stopped, across nodes and restarts.
CREATE TABLE definition_switches (
    name        TEXT PRIMARY KEY,
    stopped     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Marks: a watched file's version enqueues once, ever, even after its job was pruned.
CREATE TABLE job_marks (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    job_id      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
