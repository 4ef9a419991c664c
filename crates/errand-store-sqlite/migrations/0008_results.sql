-- Who hears how a job ended: a reply queue (with the caller's correlation id) and a
-- callback URL.
ALTER TABLE jobs ADD COLUMN reply_to TEXT;
ALTER TABLE jobs ADD COLUMN correlation_id TEXT;
ALTER TABLE jobs ADD COLUMN callback_url TEXT;

-- The event log: one row per job transition (and schedule slot fired), written in the
-- transaction of the change. The single writer commits in order, so the row id is the
-- commit order; AUTOINCREMENT keeps ids from being reused once the newest row is pruned.
CREATE TABLE events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at    INTEGER NOT NULL,
    type  TEXT NOT NULL,
    data  TEXT NOT NULL
);

-- Cursors kept by name: `pruned_through` (the newest event pruned) and `fanout` (where
-- the subscription fan-out has read to).
CREATE TABLE event_cursors (
    name  TEXT PRIMARY KEY,
    tx    INTEGER NOT NULL,
    seq   INTEGER NOT NULL
) WITHOUT ROWID;

-- URLs that receive matching events.
CREATE TABLE subscriptions (
    id                    BLOB PRIMARY KEY,
    url                   TEXT NOT NULL,
    events                TEXT NOT NULL,  -- JSON array of event types
    queue                 TEXT,
    kind                  TEXT,
    tag                   TEXT,
    description           TEXT,
    state                 TEXT NOT NULL,  -- active | paused
    paused_reason         TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
) WITHOUT ROWID;

-- Webhooks to send (job callbacks and subscription events). `next_at` is when the next
-- attempt is due; a claim pushes it one lease ahead, so a sender that dies leaves the
-- delivery due again.
CREATE TABLE deliveries (
    id               BLOB PRIMARY KEY,
    subscription_id  BLOB,
    job_id           BLOB,
    event_type       TEXT NOT NULL,
    url              TEXT NOT NULL,
    body             TEXT NOT NULL,
    state            TEXT NOT NULL,  -- pending | succeeded | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_at          INTEGER NOT NULL,
    lease_token      BLOB,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_job ON deliveries (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, id)
    WHERE subscription_id IS NOT NULL;
CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE state <> 'pending';

CREATE TABLE delivery_attempts (
    delivery_id  BLOB NOT NULL,
    attempt      INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    duration_ms  INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    response     TEXT,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
