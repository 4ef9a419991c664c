-- The fencing token of the lease each attempt ran under. A settle repeated after a lost
-- answer carries the token of an attempt that is already closed; the token tells that
-- repeat from a stale worker, so the repeat is answered with the job instead of a conflict.
ALTER TABLE job_attempts ADD COLUMN lease_token uuid;
