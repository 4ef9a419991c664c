-- API tokens: the SHA-256 of each token's secret and what the token may do, never the
-- secret. A token's name is unique among tokens not revoked; a revoked token keeps its row
-- (and its name, which a new token may take).
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    secret_hash   bytea NOT NULL,  -- SHA-256 of the secret, 32 bytes
    scopes        text[] NOT NULL,  -- enqueue | work | read | admin
    queues        text[] NOT NULL,  -- empty: every queue
    created_at    bigint NOT NULL,
    expires_at    bigint,
    last_used_at  bigint,
    revoked_at    bigint
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- The audit trail: who did which admin or destructive action, when, and from where. Ids
-- are handed out before commit, so two entries recorded at the same moment on two nodes
-- may commit out of id order; pages go newest first by id, alone or by actor or action.
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      bigint NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    detail  jsonb NOT NULL,
    origin  text NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
