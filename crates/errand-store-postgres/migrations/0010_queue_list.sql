-- Listing a queue's jobs newest first (GET /v1/jobs?queue=..., the dashboard's jobs page)
-- without sorting the queue: a queue and state's jobs are one range of this index in id
-- order, and a queue alone is its states' ranges merged (job_read::list), so a page reads
-- about `limit` entries per state whether the queue holds a hundred jobs or a million.
CREATE INDEX jobs_queue_list ON jobs (queue, state, id);
