-- Bounded listings (GET /v1/jobs?tag= and ?kind=, GET /v1/queues). Statement-level
-- triggers keep the side tables in the same transaction as every write to `jobs`,
-- whichever path makes it (enqueue, claim, settle, rescue, restore, retention, dead
-- purge), so no Rust path can forget one; a batch costs one extra statement per table,
-- not one per row.

-- Tag filter: one row per tag of a job, keyed (tag, job_id) so that a tag's jobs are read
-- newest first straight from the key and a listing stops after one page. (A GIN index on
-- `tags` finds the matching rows but not in id order: a common tag would still fetch and
-- sort every match for each page.)
CREATE TABLE job_tags (
    tag     text NOT NULL,
    job_id  uuid NOT NULL,
    PRIMARY KEY (tag, job_id)
);

INSERT INTO job_tags (tag, job_id)
    SELECT DISTINCT t, jobs.id FROM jobs, jsonb_array_elements_text(jobs.tags) AS t;

-- Kind filter in the listing's order (newest first by id), so a page is one range read.
CREATE INDEX jobs_kind ON jobs (kind, id);

-- Jobs per queue and state as signed deltas, exact: the count of (queue, state) is the sum
-- of its rows. Writers only append, so concurrent claims and settles never wait on a
-- shared counter row (as they would if each transaction updated one row per queue and
-- state until it commits); the engine's queue_count_folder folds them into one row per
-- (queue, state) every second (Store::queue_counts_fold), so a read sums a few rows.
CREATE TABLE queue_counts (
    queue  text NOT NULL,
    state  text NOT NULL,
    n      bigint NOT NULL
);
CREATE INDEX queue_counts_queue ON queue_counts (queue, state);

INSERT INTO queue_counts (queue, state, n)
    SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state;

CREATE FUNCTION errand_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_tags (tag, job_id)
        SELECT DISTINCT t, i.id FROM inserted_jobs i, jsonb_array_elements_text(i.tags) AS t
        ON CONFLICT DO NOTHING;
    INSERT INTO queue_counts (queue, state, n)
        SELECT queue, state, COUNT(*) FROM inserted_jobs GROUP BY queue, state;
    RETURN NULL;
END $$;

CREATE FUNCTION errand_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_tags USING
        (SELECT d.id, t FROM deleted_jobs d, jsonb_array_elements_text(d.tags) AS t) AS gone
        WHERE job_tags.tag = gone.t AND job_tags.job_id = gone.id;
    INSERT INTO queue_counts (queue, state, n)
        SELECT queue, state, -COUNT(*) FROM deleted_jobs GROUP BY queue, state;
    RETURN NULL;
END $$;

-- Tags are written once, at insert; no path updates them. (A trigger with transition
-- tables cannot name columns, so this runs after every UPDATE of jobs and writes only
-- when a queue or state changed.)
CREATE FUNCTION errand_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_counts (queue, state, n)
        SELECT queue, state, SUM(d) FROM (
            SELECT queue, state, -1 AS d FROM old_jobs
            UNION ALL
            SELECT queue, state, 1 AS d FROM new_jobs
        ) AS moves
        GROUP BY queue, state HAVING SUM(d) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_inserted();
CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_deleted();
CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION errand_jobs_updated();
