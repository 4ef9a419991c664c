-- How a hosted process ended and what it used, per attempt.
ALTER TABLE job_attempts ADD COLUMN report jsonb;

-- Lines hosted runs printed, per owner (a job, or a continuous instance) and attempt.
CREATE TABLE job_logs (
    owner    uuid NOT NULL,
    attempt  integer NOT NULL,
    seq      bigint NOT NULL,
    at       bigint NOT NULL,
    stream   text NOT NULL,
    line     text NOT NULL,
    PRIMARY KEY (owner, attempt, seq)
);
-- Instance logs are pruned by age.
CREATE INDEX job_logs_at ON job_logs (at);

-- Named leases: one holder at a time until expires_at (store clock).
CREATE TABLE named_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  bigint NOT NULL
);

-- Continuous instances of every node.
CREATE TABLE instances (
    node          uuid NOT NULL,
    instance      uuid NOT NULL,
    definition    text NOT NULL,
    pid           bigint,
    state         text NOT NULL,
    since         bigint NOT NULL,
    restarts      bigint NOT NULL,
    last_exit     jsonb,
    last_exit_at  bigint,
    updated_at    bigint NOT NULL,
    PRIMARY KEY (node, instance)
);
CREATE INDEX instances_definition ON instances (definition);

-- Whether a job definition is stopped, across nodes and restarts.
CREATE TABLE definition_switches (
    name        text PRIMARY KEY,
    stopped     boolean NOT NULL,
    updated_at  bigint NOT NULL
);

-- Marks: a watched file's version enqueues once, ever, even after its job was pruned.
CREATE TABLE job_marks (
    scope       text NOT NULL,
    key         text NOT NULL,
    job_id      uuid NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (scope, key)
);
