-- Issue 11: lock keys, concurrency keys and sessions (gates), fairness, queue and
-- kind/key limits, and consumer liveness. Same model as SQLite's 0009_ordering.sql.

-- A job's gate: `lock:K`, `key:K` or `session:K` (at most one per job). A job holds one of
-- the gate's places (admitted, not parked) or waits in its line (parked), out of the
-- claim index: a million parked jobs cost a claim nothing.
ALTER TABLE jobs ADD COLUMN gate text;
ALTER TABLE jobs ADD COLUMN gate_limit integer;
ALTER TABLE jobs ADD COLUMN gate_seq bigint;
ALTER TABLE jobs ADD COLUMN session_on_dead text;
ALTER TABLE jobs ADD COLUMN parked boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN fairness_key text;
ALTER TABLE jobs ADD COLUMN fairness_weight integer;
ALTER TABLE jobs ADD COLUMN fair_rank bigint;
ALTER TABLE jobs ADD COLUMN rate_key text;

-- The claim order: per queue, highest priority, then fair rank (NULL first: queues
-- without tenants keep the old order), then oldest run_at. Parked jobs are left out.
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, fair_rank NULLS FIRST, run_at, id)
    WHERE state IN ('available', 'scheduled') AND NOT parked;
-- The lowest ready rank of a fair queue: a new job's rank starts from it.
CREATE INDEX jobs_fair ON jobs (queue, fair_rank)
    WHERE fair_rank IS NOT NULL AND state IN ('available', 'scheduled') AND NOT parked;
CREATE INDEX jobs_gate ON jobs (gate, parked, gate_seq)
    WHERE gate IS NOT NULL AND state IN ('available', 'scheduled', 'running');
CREATE INDEX jobs_running_kind ON jobs (kind) WHERE state = 'running';

CREATE TABLE gates (
    name        text PRIMARY KEY,
    capacity    integer NOT NULL,
    admitted    integer NOT NULL DEFAULT 0,
    waiting     bigint NOT NULL DEFAULT 0,
    next_seq    bigint NOT NULL DEFAULT 0,
    blocked_by  uuid,
    state       jsonb,
    version     bigint NOT NULL DEFAULT 0,
    updated_at  bigint NOT NULL
);

ALTER TABLE queues ADD COLUMN concurrency integer;
ALTER TABLE queues ADD COLUMN rate_limit integer;
ALTER TABLE queues ADD COLUMN rate_period_ms bigint;
ALTER TABLE queues ADD COLUMN rate_burst integer;
ALTER TABLE queues ADD COLUMN tokens double precision;
ALTER TABLE queues ADD COLUMN tokens_at bigint;
ALTER TABLE queues ADD COLUMN defaults jsonb;
ALTER TABLE queues ADD COLUMN fair boolean NOT NULL DEFAULT false;
ALTER TABLE queues ADD COLUMN vtime bigint NOT NULL DEFAULT 0;

CREATE TABLE fair_keys (
    queue      text NOT NULL,
    key        text NOT NULL,
    last_rank  bigint NOT NULL,
    PRIMARY KEY (queue, key)
);

CREATE TABLE limits (
    scope           text NOT NULL,
    name            text NOT NULL,
    concurrency     integer,
    rate_limit      integer,
    rate_period_ms  bigint,
    rate_burst      integer,
    tokens          double precision,
    tokens_at       bigint,
    PRIMARY KEY (scope, name)
);

CREATE TABLE workers (
    name           text PRIMARY KEY,
    node           uuid NOT NULL,
    queues         jsonb NOT NULL,
    kinds          jsonb NOT NULL,
    last_claim_at  bigint NOT NULL
);
