-- Listing a queue's jobs newest first (GET /v1/jobs?queue=..., the dashboard's jobs page)
-- without sorting the queue: a queue and state's jobs are one range of this index in id
-- order, and a queue alone is its states' ranges merged (job_read::list), so a page reads
-- about `limit` entries per state whether the queue holds a hundred jobs or a million.
-- IF NOT EXISTS: an operator may build it beforehand with CREATE INDEX CONCURRENTLY
-- (docs/operations.md, Upgrading).
CREATE INDEX IF NOT EXISTS jobs_queue_list ON jobs (queue, state, id);
-- jobs_queue_state (queue, state) of 0001 is a prefix of this index, which serves every
-- lookup it served (counts and reads by queue, or queue and state): keeping both would
-- only slow every write.
DROP INDEX IF EXISTS jobs_queue_state;
