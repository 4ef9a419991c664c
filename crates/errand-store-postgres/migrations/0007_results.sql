-- Who hears how a job ended: a reply queue (with the caller's correlation id) and a
-- callback URL.
ALTER TABLE jobs ADD COLUMN reply_to text;
ALTER TABLE jobs ADD COLUMN correlation_id text;
ALTER TABLE jobs ADD COLUMN callback_url text;

-- The event log: one row per job transition (and schedule slot fired), written in the
-- transaction of the change. Sequence numbers are handed out before commit, so they are
-- not commit order; readers order by (tx, seq) and read only events whose transaction is
-- older than every transaction still running (pg_snapshot_xmin), which makes the order
-- final: nothing can commit later in front of what was read.
CREATE TABLE events (
    tx    xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq   bigint GENERATED ALWAYS AS IDENTITY,
    at    bigint NOT NULL,
    type  text NOT NULL,
    data  text NOT NULL,
    PRIMARY KEY (tx, seq)
);

-- Cursors kept by name: `pruned_through` (the newest event pruned) and `fanout` (where
-- the subscription fan-out has read to).
CREATE TABLE event_cursors (
    name  text PRIMARY KEY,
    tx    xid8 NOT NULL,
    seq   bigint NOT NULL
);

-- URLs that receive matching events.
CREATE TABLE subscriptions (
    id                    uuid PRIMARY KEY,
    url                   text NOT NULL,
    events                text[] NOT NULL,
    queue                 text,
    kind                  text,
    tag                   text,
    description           text,
    state                 text NOT NULL,  -- active | paused
    paused_reason         text,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    created_at            bigint NOT NULL,
    updated_at            bigint NOT NULL
);

-- Webhooks to send (job callbacks and subscription events). `next_at` is when the next
-- attempt is due; a claim pushes it one lease ahead, so a sender that dies leaves the
-- delivery due again.
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    subscription_id  uuid,
    job_id           uuid,
    event_type       text NOT NULL,
    url              text NOT NULL,
    body             text NOT NULL,
    state            text NOT NULL,  -- pending | succeeded | failed
    attempts         integer NOT NULL DEFAULT 0,
    next_at          bigint NOT NULL,
    lease_token      uuid,
    last_error       text,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE state = 'pending';
CREATE INDEX deliveries_job ON deliveries (job_id, id) WHERE job_id IS NOT NULL;
CREATE INDEX deliveries_subscription ON deliveries (subscription_id, id)
    WHERE subscription_id IS NOT NULL;
CREATE INDEX deliveries_finished ON deliveries (updated_at) WHERE state <> 'pending';

CREATE TABLE delivery_attempts (
    delivery_id  uuid NOT NULL,
    attempt      integer NOT NULL,
    at           bigint NOT NULL,
    duration_ms  bigint NOT NULL,
    status       integer,
    error        text,
    response     text,
    PRIMARY KEY (delivery_id, attempt)
);
