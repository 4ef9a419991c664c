-- Issue 12: continuations (jobs that wait for other jobs), workflows (steps that form a
-- graph, with compensation and a supervisor for deadlines) and batches. Same tables and
-- columns as SQLite's 0010_flows.sql.

-- A job's place in a flow.
-- workflow_id/step/step_role: the workflow step it runs (role 'step') or undoes
-- ('compensate'). batch_id: the batch it counts in.
ALTER TABLE jobs ADD COLUMN workflow_id uuid;
ALTER TABLE jobs ADD COLUMN step text;
ALTER TABLE jobs ADD COLUMN step_role text;
ALTER TABLE jobs ADD COLUMN batch_id uuid;
-- The parents it was inserted with, as a JSON array of job id strings (what `Job.flow.after`
-- shows: cheaper to read with the job than a join on job_deps). NULL: none.
ALTER TABLE jobs ADD COLUMN after_jobs jsonb;
-- Any end of a parent releases it (continuations), not only success.
ALTER TABLE jobs ADD COLUMN after_any_end boolean NOT NULL DEFAULT false;
-- Parents not yet satisfied; the job is 'blocked' while above 0.
ALTER TABLE jobs ADD COLUMN waiting_for integer NOT NULL DEFAULT 0;
-- JSON the flow hands the job when it becomes ready.
ALTER TABLE jobs ADD COLUMN context jsonb;
-- A step's deadline: when the supervisor acts, what it does ('fail' | 'retry'), the
-- step's deadline length (to set deadline_at when it becomes ready), and whether the
-- supervisor already granted its one retry.
ALTER TABLE jobs ADD COLUMN deadline_at bigint;
ALTER TABLE jobs ADD COLUMN on_deadline text;
ALTER TABLE jobs ADD COLUMN deadline_ms bigint;
ALTER TABLE jobs ADD COLUMN deadline_retried boolean NOT NULL DEFAULT false;

CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
CREATE INDEX jobs_batch ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_deadline ON jobs (deadline_at)
    WHERE deadline_at IS NOT NULL AND state IN ('available', 'scheduled', 'running');

-- Generic job dependencies: the child waits for the parent.
CREATE TABLE job_deps (
    parent_id  uuid NOT NULL,
    child_id   uuid NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_deps_child ON job_deps (child_id);

-- Workflows. steps / steps_succeeded: counts, so a step's success in a running workflow
-- is decided without loading every step.
CREATE TABLE workflows (
    id                      uuid PRIMARY KEY,
    name                    text,
    template                text,
    state                   text NOT NULL,
    input                   jsonb NOT NULL,
    on_failure              text NOT NULL,
    cancel_requested        boolean NOT NULL DEFAULT false,
    failed_step             text,
    error                   text,
    retries                 integer NOT NULL DEFAULT 0,
    idempotency_key         text,
    idempotency_expires_at  bigint,
    steps                   integer NOT NULL,
    steps_succeeded         integer NOT NULL DEFAULT 0,
    created_at              bigint NOT NULL,
    updated_at              bigint NOT NULL,
    ended_at                bigint
);
CREATE UNIQUE INDEX workflows_idempotency ON workflows (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflows_state ON workflows (state, id);
CREATE INDEX workflows_template ON workflows (template, id) WHERE template IS NOT NULL;

-- A workflow's steps. position: declaration order. depends_on: JSON array of step names.
-- compensate: JSON job template. kind, queue: the step job's (shown when the job was
-- pruned). max_attempts: the step's own (a retry grants that many more). state: the step
-- job's last known state (shown when the job was pruned).
-- completed_seq: order of completion. compensation_job_id: its compensation, once
-- started. supervised: JSON array of what the supervisor did.
CREATE TABLE workflow_steps (
    workflow_id          uuid NOT NULL,
    name                 text NOT NULL,
    position             integer NOT NULL,
    job_id               uuid NOT NULL,
    kind                 text NOT NULL,
    queue                text NOT NULL,
    depends_on           jsonb NOT NULL,
    compensate           jsonb,
    max_attempts         integer NOT NULL,
    deadline_ms          bigint,
    on_deadline          text NOT NULL,
    state                text NOT NULL,
    completed_seq        bigint,
    compensation_job_id  uuid,
    supervised           jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (workflow_id, name)
);
CREATE UNIQUE INDEX workflow_steps_position ON workflow_steps (workflow_id, position);

-- Stored workflow specs (JSON WorkflowSpec), by name.
CREATE TABLE workflow_templates (
    name        text PRIMARY KEY,
    spec        jsonb NOT NULL,
    updated_at  bigint NOT NULL
);

-- Batches: counts of their jobs by end, and what follows their completion.
CREATE TABLE batches (
    id                  uuid PRIMARY KEY,
    state               text NOT NULL,
    total               bigint NOT NULL DEFAULT 0,
    pending             bigint NOT NULL DEFAULT 0,
    succeeded           bigint NOT NULL DEFAULT 0,
    dead                bigint NOT NULL DEFAULT 0,
    cancelled           bigint NOT NULL DEFAULT 0,
    on_complete         jsonb,
    callback_url        text,
    on_complete_job_id  uuid,
    created_at          bigint NOT NULL,
    closed_at           bigint,
    completed_at        bigint
);
CREATE INDEX batches_state ON batches (state, id);
