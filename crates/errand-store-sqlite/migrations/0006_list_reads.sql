-- Bounded listings (GET /v1/jobs?tag= and ?kind=, GET /v1/queues). Triggers keep the side
-- tables in the same transaction as every write to `jobs`, whichever path makes it
-- (enqueue, claim, settle, rescue, restore, retention, dead purge), so no Rust path can
-- forget one.

-- Tag filter: one row per tag of a job. Keyed (tag, job_id) so that a tag's jobs are read
-- newest first straight from the key, and a listing stops after one page.
CREATE TABLE job_tags (
    tag     TEXT NOT NULL,
    job_id  BLOB NOT NULL,
    PRIMARY KEY (tag, job_id)
) WITHOUT ROWID;

INSERT OR IGNORE INTO job_tags (tag, job_id)
    SELECT value, jobs.id FROM jobs, json_each(jobs.tags);

-- Tags are written once, at insert; no path updates them. Most jobs have none: the WHEN
-- skips the trigger's work for them.
CREATE TRIGGER job_tags_insert AFTER INSERT ON jobs WHEN NEW.tags <> '[]' BEGIN
    INSERT OR IGNORE INTO job_tags (tag, job_id) SELECT value, NEW.id FROM json_each(NEW.tags);
END;

CREATE TRIGGER job_tags_delete AFTER DELETE ON jobs WHEN OLD.tags <> '[]' BEGIN
    DELETE FROM job_tags
        WHERE job_id = OLD.id AND tag IN (SELECT value FROM json_each(OLD.tags));
END;

-- Kind filter in the listing's order (newest first by id), so a page is one range read.
CREATE INDEX jobs_kind ON jobs (kind, id);

-- Jobs per queue and state, exact: GET /v1/queues reads a few rows instead of counting
-- every job. The single writer makes the counter rows uncontended.
CREATE TABLE queue_counts (
    queue  TEXT NOT NULL,
    state  TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;

INSERT INTO queue_counts (queue, state, n)
    SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state;

CREATE TRIGGER queue_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER queue_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;

CREATE TRIGGER queue_counts_update AFTER UPDATE OF queue, state ON jobs
    WHEN OLD.queue IS NOT NEW.queue OR OLD.state IS NOT NEW.state
BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
