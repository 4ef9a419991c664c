-- The store's clock: every lease and schedule computation uses the database's time in
-- milliseconds since the epoch, never a node's.
CREATE FUNCTION errand_now() RETURNS bigint LANGUAGE sql STABLE
    AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

CREATE TABLE queues (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    created_at  bigint NOT NULL
);

CREATE TABLE jobs (
    id                      uuid PRIMARY KEY,
    kind                    text NOT NULL,
    queue                   text NOT NULL,
    state                   text NOT NULL,
    payload                 jsonb NOT NULL,
    priority                integer NOT NULL,
    run_at                  bigint NOT NULL,
    attempt                 integer NOT NULL DEFAULT 0,
    max_attempts            integer NOT NULL,
    timeout_ms              bigint,
    tags                    jsonb NOT NULL,
    idempotency_key         text,
    idempotency_expires_at  bigint,
    result                  jsonb,
    error                   text,
    progress                jsonb,
    checkpoint              jsonb,
    worker                  text,
    lease_token             uuid,
    lease_ms                bigint,
    lease_expires_at        bigint,
    created_at              bigint NOT NULL,
    updated_at              bigint NOT NULL,
    started_at              bigint,
    finished_at             bigint
);

CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled');
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_queue_state ON jobs (queue, state);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'cancelled', 'dead');
CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_attempts (
    job_id       uuid NOT NULL,
    attempt      integer NOT NULL,
    worker       text,
    started_at   bigint NOT NULL,
    finished_at  bigint,
    outcome      text NOT NULL,
    error        text,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE nodes (
    id            uuid PRIMARY KEY,
    host          text NOT NULL,
    pid           bigint NOT NULL,
    version       text NOT NULL,
    started_at    bigint NOT NULL,
    heartbeat_at  bigint NOT NULL,
    stopped       boolean NOT NULL DEFAULT false
);
