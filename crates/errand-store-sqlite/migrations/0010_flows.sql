-- Issue 12: continuations (jobs that wait for other jobs), workflows (steps that form a
-- graph, with compensation and a supervisor for deadlines) and batches.

-- A job's place in a flow.
-- workflow_id/step/step_role: the workflow step it runs (role 'step') or undoes
-- ('compensate'). batch_id: the batch it counts in.
ALTER TABLE jobs ADD COLUMN workflow_id BLOB;
ALTER TABLE jobs ADD COLUMN step TEXT;
ALTER TABLE jobs ADD COLUMN step_role TEXT;
ALTER TABLE jobs ADD COLUMN batch_id BLOB;
-- The parents it was inserted with, as a JSON array of job id strings (what `Job.flow.after`
-- shows: cheaper to read with the job than a join on job_deps). NULL: none.
ALTER TABLE jobs ADD COLUMN after_jobs TEXT;
-- Any end of a parent releases it (continuations), not only success.
ALTER TABLE jobs ADD COLUMN after_any_end INTEGER NOT NULL DEFAULT 0;
-- Parents not yet satisfied; the job is 'blocked' while above 0.
ALTER TABLE jobs ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0;
-- JSON the flow hands the job when it becomes ready.
ALTER TABLE jobs ADD COLUMN context TEXT;
-- A step's deadline: when the supervisor acts, what it does ('fail' | 'retry'), the
-- step's deadline length (to set deadline_at when it becomes ready), and whether the
-- supervisor already granted its one retry.
ALTER TABLE jobs ADD COLUMN deadline_at INTEGER;
ALTER TABLE jobs ADD COLUMN on_deadline TEXT;
ALTER TABLE jobs ADD COLUMN deadline_ms INTEGER;
ALTER TABLE jobs ADD COLUMN deadline_retried INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX jobs_batch ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_deadline ON jobs (deadline_at)
    WHERE deadline_at IS NOT NULL AND state IN ('available', 'scheduled', 'running');

-- Generic job dependencies: the child waits for the parent. `counted`: the parent's end
-- was counted for the child already (at insert, or when it ended), so a parent revived and
-- ended again does not count twice; a workflow retry uncounts the edges of rerun steps.
-- The edge stays (unlike PostgreSQL's, which is deleted when counted): SQLite reads the
-- parents' results through it when the child becomes ready.
CREATE TABLE job_deps (
    parent_id  BLOB NOT NULL,
    child_id   BLOB NOT NULL,
    counted    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;
CREATE INDEX job_deps_child ON job_deps (child_id);

-- Workflows. steps / steps_succeeded: counts, so a step's success in a running workflow
-- is decided without loading every step.
CREATE TABLE workflows (
    id                      BLOB PRIMARY KEY,
    name                    TEXT,
    template                TEXT,
    state                   TEXT NOT NULL,
    input                   TEXT NOT NULL,
    on_failure              TEXT NOT NULL,
    cancel_requested        INTEGER NOT NULL DEFAULT 0,
    failed_step             TEXT,
    error                   TEXT,
    retries                 INTEGER NOT NULL DEFAULT 0,
    idempotency_key         TEXT,
    idempotency_expires_at  INTEGER,
    steps                   INTEGER NOT NULL,
    steps_succeeded         INTEGER NOT NULL DEFAULT 0,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    ended_at                INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX workflows_idempotency ON workflows (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflows_state ON workflows (state, id);
CREATE INDEX workflows_template ON workflows (template, id) WHERE template IS NOT NULL;

-- A workflow's steps. position: declaration order. depends_on: JSON array of step names.
-- compensate: JSON job template. kind, queue: the step job's (shown when the job was
-- pruned). max_attempts: the step's own (a retry grants that many more). state: the step job's last known state (shown when the job was pruned).
-- completed_seq: order of completion. compensation_job_id: its compensation, once
-- started. supervised: JSON array of what the supervisor did.
CREATE TABLE workflow_steps (
    workflow_id          BLOB NOT NULL,
    name                 TEXT NOT NULL,
    position             INTEGER NOT NULL,
    job_id               BLOB NOT NULL,
    kind                 TEXT NOT NULL,
    queue                TEXT NOT NULL,
    depends_on           TEXT NOT NULL,
    compensate           TEXT,
    max_attempts         INTEGER NOT NULL,
    deadline_ms          INTEGER,
    on_deadline          TEXT NOT NULL,
    state                TEXT NOT NULL,
    completed_seq        INTEGER,
    compensation_job_id  BLOB,
    supervised           TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (workflow_id, name)
) WITHOUT ROWID;
CREATE UNIQUE INDEX workflow_steps_position ON workflow_steps (workflow_id, position);

-- Stored workflow specs (JSON WorkflowSpec), by name.
CREATE TABLE workflow_templates (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Batches: counts of their jobs by end, and what follows their completion.
CREATE TABLE batches (
    id                  BLOB PRIMARY KEY,
    state               TEXT NOT NULL,
    total               INTEGER NOT NULL DEFAULT 0,
    pending             INTEGER NOT NULL DEFAULT 0,
    succeeded           INTEGER NOT NULL DEFAULT 0,
    dead                INTEGER NOT NULL DEFAULT 0,
    cancelled           INTEGER NOT NULL DEFAULT 0,
    on_complete         TEXT,
    callback_url        TEXT,
    on_complete_job_id  BLOB,
    created_at          INTEGER NOT NULL,
    closed_at           INTEGER,
    completed_at        INTEGER
) WITHOUT ROWID;
CREATE INDEX batches_state ON batches (state, id);
