-- API tokens: the SHA-256 of each token's secret and what the token may do, never the
-- secret. A token's name is unique among tokens not revoked; a revoked token keeps its row
-- (and its name, which a new token may take).
CREATE TABLE api_tokens (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,  -- SHA-256 of the secret, 32 bytes
    scopes        TEXT NOT NULL,  -- JSON array of scopes: enqueue | work | read | admin
    queues        TEXT NOT NULL,  -- JSON array of queue names; empty: every queue
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) WITHOUT ROWID;
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- The audit trail: who did which admin or destructive action, when, and from where.
-- The single writer commits in order, so the row id is the order entries were recorded
-- in; AUTOINCREMENT keeps ids from being reused once the newest row is deleted. Pages go
-- newest first by id, alone or by actor or action.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL,  -- JSON
    origin  TEXT NOT NULL
);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
