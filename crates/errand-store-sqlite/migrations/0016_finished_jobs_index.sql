-- Pruning reads a queue and state's finished jobs oldest first. It was served by
-- jobs_queue_state (queue, state, finished_at), an index over every job, so each enqueue,
-- claim and settle wrote it although only finished jobs are ever read through it (counts
-- come from queue_counts, listings and running counts from jobs_queue_list). This one holds
-- only jobs that have a finish time: a job's enqueue and claim no longer touch it, its end
-- adds one entry. The prune's `finished_at < ?` implies the condition, so SQLite uses it.
DROP INDEX IF EXISTS jobs_queue_state;
CREATE INDEX jobs_finished ON jobs (queue, state, finished_at) WHERE finished_at IS NOT NULL;
