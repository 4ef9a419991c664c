-- Issue 11: lock keys, concurrency keys and sessions (gates), fairness, queue and
-- kind/key limits, and consumer liveness.

-- A job's gate: `lock:K`, `key:K` or `session:K` (at most one per job). A job holds one of
-- the gate's places (admitted, parked = 0) or waits in its line (parked = 1), out of the
-- claim index: a million parked jobs cost a claim nothing.
ALTER TABLE jobs ADD COLUMN gate TEXT;
ALTER TABLE jobs ADD COLUMN gate_limit INTEGER;
ALTER TABLE jobs ADD COLUMN gate_seq INTEGER;
ALTER TABLE jobs ADD COLUMN session_on_dead TEXT;
ALTER TABLE jobs ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
-- Fair claiming across tenants (start-time fair queuing): rank is fixed at enqueue.
ALTER TABLE jobs ADD COLUMN fairness_key TEXT;
ALTER TABLE jobs ADD COLUMN fairness_weight INTEGER;
ALTER TABLE jobs ADD COLUMN fair_rank INTEGER;
-- The rate limit (limits scope 'key') the job's start counts against.
ALTER TABLE jobs ADD COLUMN rate_key TEXT;

-- The claim order: per queue, highest priority, then fair rank (NULL, the jobs of queues
-- without tenants, sorts first and leaves the old order), then oldest run_at. Parked jobs
-- are left out.
DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, fair_rank, run_at, id)
    WHERE state IN ('available', 'scheduled') AND parked = 0;
-- The lowest ready rank of a fair queue: a new job's rank starts from it.
CREATE INDEX jobs_fair ON jobs (queue, fair_rank)
    WHERE fair_rank IS NOT NULL AND state IN ('available', 'scheduled') AND parked = 0;
-- A gate's line and holders, in enqueue order.
CREATE INDEX jobs_gate ON jobs (gate, parked, gate_seq)
    WHERE gate IS NOT NULL AND state IN ('available', 'scheduled', 'running');
-- Running jobs per kind, for kind concurrency limits.
CREATE INDEX jobs_running_kind ON jobs (kind) WHERE state = 'running';

-- One row per gate that has jobs, and per session (which keeps its state).
CREATE TABLE gates (
    name        TEXT PRIMARY KEY,
    capacity    INTEGER NOT NULL,
    admitted    INTEGER NOT NULL DEFAULT 0,
    waiting     INTEGER NOT NULL DEFAULT 0,
    next_seq    INTEGER NOT NULL DEFAULT 0,
    blocked_by  BLOB,
    state       TEXT,
    version     INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Queue settings: concurrency, rate (and its token bucket), defaults for new jobs, and
-- fairness bookkeeping (whether the queue has tenants, and its virtual time).
ALTER TABLE queues ADD COLUMN concurrency INTEGER;
ALTER TABLE queues ADD COLUMN rate_limit INTEGER;
ALTER TABLE queues ADD COLUMN rate_period_ms INTEGER;
ALTER TABLE queues ADD COLUMN rate_burst INTEGER;
ALTER TABLE queues ADD COLUMN tokens REAL;
ALTER TABLE queues ADD COLUMN tokens_at INTEGER;
ALTER TABLE queues ADD COLUMN defaults TEXT;
ALTER TABLE queues ADD COLUMN fair INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN vtime INTEGER NOT NULL DEFAULT 0;

-- Each fairness key's last rank in its queue.
CREATE TABLE fair_keys (
    queue      TEXT NOT NULL,
    key        TEXT NOT NULL,
    last_rank  INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;

-- Limits of kinds (concurrency, rate) and rate keys (rate), with their token buckets.
CREATE TABLE limits (
    scope           TEXT NOT NULL,
    name            TEXT NOT NULL,
    concurrency     INTEGER,
    rate_limit      INTEGER,
    rate_period_ms  INTEGER,
    rate_burst      INTEGER,
    tokens          REAL,
    tokens_at       INTEGER,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

-- Workers seen claiming: the latest claim per worker name.
CREATE TABLE workers (
    name           TEXT PRIMARY KEY,
    node           BLOB NOT NULL,
    queues         TEXT NOT NULL,
    kinds          TEXT NOT NULL,
    last_claim_at  INTEGER NOT NULL
) WITHOUT ROWID;
