-- Running errand serve processes. Status is judged at read time from heartbeat_at.
CREATE TABLE nodes (
    id            BLOB PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
